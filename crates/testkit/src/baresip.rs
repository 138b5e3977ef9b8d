//! baresip (Debian `baresip-core`) as a real softphone for tests: it
//! registers and subscribes for message-summary at whatever it is pointed
//! at, and prints the body of every NOTIFY it accepts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kills a child process however the test ends, so a failure leaks no process.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A UDP port free at the moment of asking.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("port")
}

/// baresip as a subscribing phone `sip:613@127.0.0.1` with `password`,
/// registered straight at `ours`; its output is collected for [`Softphone::wait_for`].
pub struct Softphone {
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
    output: Arc<Mutex<String>>,
}

impl Softphone {
    pub fn start(ours: std::net::SocketAddr, password: &str) -> Softphone {
        let dir = tempfile::tempdir().expect("config dir");
        let port = free_udp_port();
        std::fs::write(
            dir.path().join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{port}\nmodule_path /usr/lib/baresip/modules\n\
                 module_app account.so\nmodule_app menu.so\nmodule_app mwi.so\n"
            ),
        )
        .expect("config");
        std::fs::write(
            dir.path().join("accounts"),
            format!("<sip:613@127.0.0.1>;auth_pass={password};outbound=\"sip:{ours}\";regint=600\n"),
        )
        .expect("accounts");
        let mut child = Command::new("baresip")
            .args(std::env::var("BARESIP_TRACE").map(|_| vec!["-s"]).unwrap_or_default())
            .arg("-f")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map(KillOnDrop)
            .expect("baresip not found: run ./dev.sh setup");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            child.0.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.0.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = output.lock().expect("lock");
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Softphone { _child: child, _dir: dir, output }
    }

    /// Waits until baresip printed `needle` after byte `after`; returns the end of it.
    pub fn wait_for(&self, needle: &str, after: usize) -> usize {
        let end = Instant::now() + crate::guard(Duration::from_secs(30));
        loop {
            let text = self.text();
            if let Some(pos) = text[after.min(text.len())..].find(needle) {
                return after + pos + needle.len();
            }
            assert!(Instant::now() < end, "baresip never reported {needle:?}; its output:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything baresip printed so far.
    pub fn text(&self) -> String {
        self.output.lock().expect("lock").clone()
    }
}
