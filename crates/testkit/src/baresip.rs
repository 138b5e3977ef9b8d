//! baresip (Debian `baresip-core`) as a real softphone for tests: it
//! registers and subscribes for message-summary at whatever it is pointed
//! at, and prints the body of every NOTIFY it accepts.

pub use crate::process::{KillOnDrop, free_udp_port};
use crate::process::{OutputLog, free_port, spawn_peer};
use std::process::Command;

/// baresip as a subscribing phone `sip:613@127.0.0.1` with `password`,
/// registered straight at `ours`; its output is collected for [`Softphone::wait_for`].
pub struct Softphone {
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
    output: OutputLog,
}

/// How baresip reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over<'a> {
    Udp,
    Tcp,
    /// TLS, trusting the CA certificate in this file.
    Tls(&'a std::path::Path),
}

impl Softphone {
    /// Over UDP.
    pub fn start(ours: std::net::SocketAddr, password: &str) -> Softphone {
        Self::start_over(ours, password, Over::Udp)
    }

    /// Over `over`, to our listener of that transport at `ours`.
    ///
    /// The account is created only once baresip runs, through its UDP
    /// console: baresip 1.0's `mwi` module starts a 1 ms timer at load that
    /// walks its subscription list and subscribes each entry again,
    /// appending to the list it walks; a registration that completes before
    /// that timer fired (two round trips within 1 ms on loopback, or later
    /// when a loaded machine deschedules baresip) puts one entry there and
    /// the loop never ends (tens of thousands of SUBSCRIBEs, its main loop
    /// stuck). Sent 50 ms after "baresip is ready.", the account's REGISTER
    /// goes out in a main-loop pass whose timers run after it, so the timer
    /// fires before any answer can be read, however loaded the machine.
    pub fn start_over(ours: std::net::SocketAddr, password: &str, over: Over<'_>) -> Softphone {
        // a port free when asked may be taken before baresip binds it (any
        // client socket's ephemeral port): then baresip says so and we try others
        for _ in 0..4 {
            if let Some(phone) = Self::try_start(ours, password, &over) {
                return phone;
            }
        }
        panic!("baresip found no free port in four tries");
    }

    fn try_start(ours: std::net::SocketAddr, password: &str, over: &Over<'_>) -> Option<Softphone> {
        let dir = tempfile::tempdir().expect("config dir");
        // baresip listens on UDP and TCP at sip_listen
        // two ports free for UDP and TCP (the console listens on both), and not
        // the same one twice: a port freed at once can be handed out again
        let port = free_port();
        let console = loop {
            let c = free_port();
            if c != port {
                break c;
            }
        };
        let (param, ca) = match over {
            Over::Udp => ("", String::new()),
            Over::Tcp => (";transport=tcp", String::new()),
            Over::Tls(ca) => (";transport=tls", format!("sip_cafile {}\n", ca.display())),
        };
        std::fs::write(
            dir.path().join("config"),
            format!(
                "poll_method epoll\nsip_listen 127.0.0.1:{port}\n{ca}module_path /usr/lib/baresip/modules\n\
                 module cons.so\ncons_listen 127.0.0.1:{console}\n\
                 module_app account.so\nmodule_app menu.so\nmodule_app mwi.so\n"
            ),
        )
        .expect("config");
        std::fs::write(dir.path().join("accounts"), "").expect("accounts");
        let account =
            format!("<sip:613@127.0.0.1{param}>;auth_pass={password};outbound=\"sip:{ours}{param}\";regint=600");
        let (child, output) = spawn_peer(
            Command::new("baresip")
                .args(std::env::var("BARESIP_TRACE").map(|_| vec!["-s"]).unwrap_or_default())
                .arg("-f")
                .arg(dir.path()),
            "baresip",
        );
        let end = std::time::Instant::now() + crate::guard(std::time::Duration::from_secs(30));
        loop {
            let text = output.text();
            // a port taken shows before "ready" (the console, the listener): another pair then
            if text.contains("Address already in use") {
                return None;
            }
            if text.contains("baresip is ready.") {
                break;
            }
            assert!(
                std::time::Instant::now() < end,
                "baresip never reported \"baresip is ready.\"; its output:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("console socket");
        socket.send_to(format!("/uanew {account}\n").as_bytes(), ("127.0.0.1", console)).expect("console");
        Some(Softphone { _child: child, _dir: dir, output })
    }

    /// Waits until baresip printed `needle` after byte `after`; returns the end of it.
    pub fn wait_for(&self, needle: &str, after: usize) -> usize {
        self.output.wait_for("baresip", needle, after)
    }

    /// Everything baresip printed so far.
    pub fn text(&self) -> String {
        self.output.text()
    }
}
