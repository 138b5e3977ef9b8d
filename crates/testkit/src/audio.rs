//! A private PulseAudio server with one null sink, for tests that play
//! audio: nothing reaches a loudspeaker, and the test can record what was
//! played from the sink's monitor (`parec`) and list the streams (`pactl`),
//! i.e. check from outside the program that sound really went out.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The name of the null sink.
pub const SINK: &str = "lamplighter_test";

/// A running PulseAudio with a null sink; stopped on drop.
pub struct NullSink {
    _dir: tempfile::TempDir,
    child: Child,
    /// `unix:/…/native`: the value for `PULSE_SERVER`.
    pub server: String,
    /// The server's log.
    pub log: PathBuf,
}

impl NullSink {
    /// Starts PulseAudio (no configuration of its own, no D-Bus, no
    /// autospawn) with a null sink as its default. Panics with the log when
    /// it does not come up within 10 s.
    pub fn start() -> NullSink {
        let dir = tempfile::tempdir().expect("temp dir");
        let socket = dir.path().join("native");
        let log = dir.path().join("pulseaudio.log");
        let child = Command::new("pulseaudio")
            .args(["-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no", "--disable-shm=yes"])
            .arg(format!("--load=module-native-protocol-unix socket={} auth-anonymous=1", socket.display()))
            .arg(format!("--load=module-null-sink sink_name={SINK} rate=8000 channels=1"))
            .env("HOME", dir.path())
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("PULSE_RUNTIME_PATH", dir.path())
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("pulseaudio (Debian: pulseaudio) must be installed");
        let sink = NullSink { server: format!("unix:{}", socket.display()), _dir: dir, child, log };
        let end = Instant::now() + Duration::from_secs(10);
        while !sink.pactl(&["list", "short", "sinks"]).contains(SINK) {
            assert!(
                Instant::now() < end,
                "pulseaudio did not start: {}",
                std::fs::read_to_string(&sink.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        sink
    }

    /// `pactl …` against this server; its standard output.
    pub fn pactl(&self, args: &[&str]) -> String {
        Command::new("pactl")
            .args(args)
            .env("PULSE_SERVER", &self.server)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Records `how_long` worth of what the sink plays (its monitor), as 16-bit
    /// mono samples at 8 kHz. The monitor delivers only once the sink renders,
    /// which can take a moment after parec connects: it reads until it has that
    /// many samples, or gives up 5 s later with what it got.
    pub fn record(&self, how_long: Duration) -> Vec<i16> {
        use std::io::Read as _;
        let mut child = Command::new("parec")
            .args(["--raw", "--format=s16le", "--rate=8000", "--channels=1", "--latency-msec=50"])
            .arg(format!("--device={SINK}.monitor"))
            .env("PULSE_SERVER", &self.server)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("parec (Debian: pulseaudio-utils)");
        let want = (how_long.as_millis() as usize * 8) * 2;
        let mut stdout = child.stdout.take().expect("parec's output");
        let reader = std::thread::spawn(move || {
            let mut out = Vec::with_capacity(want);
            let mut buf = [0u8; 4096];
            while out.len() < want {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
            out
        });
        let end = Instant::now() + how_long + Duration::from_secs(5);
        while !reader.is_finished() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let out = reader.join().unwrap_or_default();
        out.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
    }
}

/// The RMS level of samples (0 for silence).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

impl Drop for NullSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
