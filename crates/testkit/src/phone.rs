//! A minimal SIP phone on UDP for tests and benchmarks: it answers every
//! request with one fixed status (200 OK, or 486 Busy Here to play a phone
//! that refuses) and reports each `Voice-Message` line it is sent, with the
//! time it arrived. sipp is the real peer where its checks matter; this one
//! serves stories with many NOTIFYs from one socket, which sipp cannot take.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Instant;

/// A running phone; it stops with the test process.
pub struct UdpPhone {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Each `Voice-Message` value (`3/2 (1/0)`) with its arrival time.
    pub lamps: mpsc::Receiver<(Instant, String)>,
}

impl UdpPhone {
    /// A phone answering `status` (e.g. `200 OK`) on 127.0.0.1.
    pub fn start(status: &str) -> UdpPhone {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("phone socket");
        let addr = socket.local_addr().expect("addr");
        let status = status.to_string();
        let (tx, lamps) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let at = Instant::now();
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.starts_with("SIP/2.0") {
                    continue;
                }
                let _ = socket.send_to(reply(&msg, &status).as_bytes(), from);
                if let Some(v) = msg.lines().find(|l| l.to_ascii_lowercase().starts_with("voice-message:")) {
                    let value = v.split_once(':').map(|x| x.1.trim().to_string()).unwrap_or_default();
                    if tx.send((at, value)).is_err() {
                        return;
                    }
                }
            }
        });
        UdpPhone { addr, lamps }
    }
}

/// The response to `request` with `status`: its Via, From, To (tagged), Call-ID and CSeq.
pub fn reply(request: &str, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in request.lines() {
        let l = line.to_ascii_lowercase();
        if ["via:", "from:", "call-id:", "cseq:"].iter().any(|h| l.starts_with(h)) {
            out += &format!("{line}\r\n");
        } else if l.starts_with("to:") {
            out += line;
            if !l.contains("tag=") {
                out += ";tag=test-phone";
            }
            out += "\r\n";
        }
    }
    out + "Content-Length: 0\r\n\r\n"
}
