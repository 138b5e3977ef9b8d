//! A peer process under test: killed however the test ends, its output
//! collected line by line for waiting on what it reports.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Kills a child process however the test ends, so a failure leaks no process.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a peer program with its stdin closed and its output collected;
/// `name` is what `./dev.sh setup` installs it as, for the message when it is missing.
pub fn spawn_peer(cmd: &mut std::process::Command, name: &str) -> (KillOnDrop, OutputLog) {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .unwrap_or_else(|e| panic!("{name} cannot start ({e}): run ./dev.sh setup"));
    let log = OutputLog::collect(&mut child.0);
    (child, log)
}

/// A UDP port free at the moment of asking.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("port")
}

/// A port free for both UDP and TCP on loopback at the moment of asking.
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A TCP port free at the moment of asking.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("port")
}

/// Everything a child printed on stdout and stderr, as it comes.
#[derive(Clone, Default)]
pub struct OutputLog(Arc<Mutex<String>>);

impl OutputLog {
    /// Starts collecting the child's piped stdout and stderr.
    pub fn collect(child: &mut Child) -> OutputLog {
        let log = OutputLog::default();
        for stream in [
            child.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = log.0.lock().unwrap_or_else(|p| p.into_inner());
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        log
    }

    /// Waits until `needle` appears after byte `after`; returns the end of it.
    /// `who` names the peer in the failure message.
    pub fn wait_for(&self, who: &str, needle: &str, after: usize) -> usize {
        let end = Instant::now() + crate::guard(Duration::from_secs(30));
        loop {
            let text = self.text();
            if let Some(pos) = text[after.min(text.len())..].find(needle) {
                return after + pos + needle.len();
            }
            assert!(Instant::now() < end, "{who} never reported {needle:?}; its output:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything so far.
    pub fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
