//! Kamailio 5.6 (Debian `kamailio`, `kamailio-presence-modules`) as a real
//! presence server for message-summary: `presence` + `presence_mwi` on
//! loopback with db_text tables in a temporary directory
//! (tests/fixtures/kamailio/presence-mwi.cfg). Its log (every request with
//! its `SIP-If-Match`) is collected for [`Kamailio::wait_for`].

use crate::process::{KillOnDrop, OutputLog, free_port, spawn_peer};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running Kamailio; killed on drop.
pub struct Kamailio {
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
    log: OutputLog,
    /// Its address, UDP and TCP.
    pub addr: std::net::SocketAddr,
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/kamailio").join(name)
}

impl Kamailio {
    /// Starts it and waits until it answers.
    pub fn start() -> Kamailio {
        let dir = tempfile::tempdir().expect("dir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("db dir");
        let tables = std::path::Path::new("/usr/share/kamailio/dbtext/kamailio");
        for entry in std::fs::read_dir(tables).expect("kamailio not found: run ./dev.sh setup") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), db.join(entry.file_name())).expect("copy table");
        }
        let port = free_port();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let cfg = std::fs::read_to_string(fixture("presence-mwi.cfg"))
            .expect("presence-mwi.cfg")
            .replace("@LISTEN@", &addr.to_string())
            .replace("@DB@", &db.display().to_string());
        let file = dir.path().join("kamailio.cfg");
        std::fs::write(&file, cfg).expect("cfg");
        let (child, log) = spawn_peer(
            Command::new("kamailio").arg("-f").arg(&file).args(["-DD", "-E", "-n", "1", "-Y"]).arg(dir.path()),
            "kamailio",
        );
        let k = Kamailio { _child: child, _dir: dir, log, addr };
        // it answers an OPTIONS (404 by its script) once it serves
        let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe");
        probe.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
        let me = probe.local_addr().expect("addr");
        let end = Instant::now() + crate::guard(Duration::from_secs(10));
        let mut buf = [0u8; 4096];
        loop {
            let options = format!(
                "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-probe{}\r\nMax-Forwards: 70\r\n\
                 From: <sip:probe@{me}>;tag=p\r\nTo: <sip:{addr}>\r\nCall-ID: probe@{me}\r\nCSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                Instant::now().elapsed().as_nanos()
            );
            let _ = probe.send_to(options.as_bytes(), addr);
            if probe.recv_from(&mut buf).is_ok() {
                return k;
            }
            assert!(Instant::now() < end, "kamailio did not answer; its log:\n{}", k.log());
        }
    }

    /// Waits until its log has `needle` after byte `after`; returns the end of it.
    pub fn wait_for(&self, needle: &str, after: usize) -> usize {
        self.log.wait_for("kamailio", needle, after)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.log.text()
    }
}
