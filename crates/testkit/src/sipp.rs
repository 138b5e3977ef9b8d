//! sipp (Debian `sip-tester`) as a phone on 127.0.0.1: one call per run,
//! from a scenario under `tests/fixtures/sipp` whose `@NAME@` placeholders
//! are filled in a copy (sipp does not expand variables inside `ereg`). A
//! failed check in the scenario fails the call and sipp's exit status.
//! Debian's sipp answers only one call from a given socket per run, so a
//! test that expects several NOTIFYs starts one sipp after another on the
//! same port ([`Sipp::start_on`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A scenario file by name.
pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sipp").join(name)
}

pub use crate::process::free_port;

/// A running sipp phone.
pub struct Sipp {
    child: Child,
    pub port: u16,
    trace: tempfile::TempDir,
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sipp {
    /// A phone on a fresh port.
    pub fn start(name: &str, tcp: bool, vars: &[(&str, &str)]) -> Sipp {
        Self::start_at(free_port(), name, tcp, vars)
    }

    /// A new phone on a port an earlier one used (the same address to the sender).
    pub fn start_on(port: u16, name: &str, vars: &[(&str, &str)]) -> Sipp {
        Self::start_at(port, name, false, vars)
    }

    /// A phone on `port`, over TCP or UDP.
    pub fn start_at(port: u16, name: &str, tcp: bool, vars: &[(&str, &str)]) -> Sipp {
        Self::spawn(port, name, tcp, 1, vars)
    }

    /// A PBX trunk or SIP gateway on `port` that takes up to `calls`
    /// requests, each with its own Call-ID (every unsolicited NOTIFY is one),
    /// all from one socket.
    pub fn start_trunk(port: u16, name: &str, tcp: bool, calls: u32) -> Sipp {
        Self::spawn(port, name, tcp, calls, &[])
    }

    /// Every message sipp received and sent so far.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.trace.path().join("messages.log")).unwrap_or_default()
    }

    fn spawn(port: u16, name: &str, tcp: bool, calls: u32, vars: &[(&str, &str)]) -> Sipp {
        let trace = tempfile::tempdir().expect("trace dir");
        let mut text = std::fs::read_to_string(scenario(name)).expect("scenario");
        for (k, v) in vars {
            text = text.replace(&format!("@{}@", k.to_ascii_uppercase()), v);
        }
        let file = trace.path().join(name);
        std::fs::write(&file, text).expect("scenario copy");
        let mut cmd = Command::new("sipp");
        cmd.arg("-sf").arg(&file);
        cmd.args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            if tcp { "t1" } else { "u1" },
            "-m",
            &calls.to_string(),
            "-nostdin",
        ]);
        cmd.args(["-trace_msg", "-message_file"]).arg(trace.path().join("messages.log"));
        cmd.args(["-trace_err", "-error_file"]).arg(trace.path().join("errors.log"));
        for (k, v) in vars.iter().filter(|(k, _)| *k == "password") {
            cmd.args(["-set", k, v]);
        }
        let child =
            cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("sipp not found: run ./dev.sh setup");
        let sipp = Sipp { child, port, trace };
        if tcp {
            // listening before we connect (UDP needs no wait: Timer E retransmits)
            let end = Instant::now() + Duration::from_secs(10);
            while !Command::new("ss")
                .args(["-ltn", &format!("sport = :{port}")])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!(":{port}")))
                .unwrap_or(false)
            {
                assert!(Instant::now() < end, "sipp did not listen on TCP {port}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        sipp
    }

    /// Its SIP URI.
    pub fn uri(&self) -> String {
        format!("sip:613@127.0.0.1:{}", self.port)
    }

    /// Waits for sipp to finish its one call; its exit status says whether every check passed.
    pub fn finish(mut self) -> (bool, String) {
        let end = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s;
            }
            assert!(Instant::now() < end, "sipp did not finish:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        };
        (status.success(), self.log())
    }

    /// Its message and error logs.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.trace.path().join(f)).unwrap_or_default();
        format!("--- messages\n{}\n--- errors\n{}", read("messages.log"), read("errors.log"))
    }
}
