//! What the agent's end-to-end tests share: its `run --json` lines, read on
//! a thread as they come, and waiting for the event a test needs (an event,
//! not a span of time; the bound only ends a hung test).

use std::io::BufRead as _;
use std::time::{Duration, Instant};

/// The JSON lines of a running agent.
pub(crate) struct JsonLines {
    rx: std::sync::mpsc::Receiver<serde_json::Value>,
    /// Everything read so far.
    pub(crate) seen: Vec<serde_json::Value>,
}

impl JsonLines {
    /// Reads `child`'s standard output (piped) from now on.
    pub(crate) fn read(child: &mut std::process::Child) -> JsonLines {
        let out = std::io::BufReader::new(child.stdout.take().expect("a piped stdout"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        JsonLines { rx, seen: Vec::new() }
    }

    /// Waits for an event `want` accepts, after the ones seen before.
    pub(crate) fn wait(&mut self, what: &str, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(120));
        while Instant::now() < end {
            if let Ok(v) = self.rx.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(v.clone());
                if want(&v) {
                    return v;
                }
            }
        }
        panic!("never {what}; saw {:#?}", self.seen);
    }
}
