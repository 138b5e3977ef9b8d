//! A minimal SIP phone on UDP: the demo's phone and the tests' and
//! benchmarks' fake one. It answers every request with one fixed status
//! (200 OK, or 486 Busy Here to play a phone that refuses) and reports each
//! message-summary it is sent: whether the lamp is on, and the
//! `Voice-Message` value, with the time it arrived. sipp and baresip are the
//! real peers where their checks matter; this one serves stories with many
//! NOTIFYs from one socket, which sipp cannot take, and runs inside the demo.

use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::Instant;

/// One message-summary as the phone received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lamp {
    /// When it arrived.
    pub at: Instant,
    /// `Messages-Waiting: yes`.
    pub waiting: bool,
    /// The `Voice-Message` value, e.g. `3/2 (1/0)`.
    pub voice_message: String,
}

/// A running phone on 127.0.0.1; its thread ends when the receiver of
/// [`DemoPhone::lamps`] is dropped and the next request arrives.
pub struct DemoPhone {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Each message-summary received.
    pub lamps: mpsc::Receiver<Lamp>,
}

impl DemoPhone {
    /// A phone answering `status` (e.g. `200 OK`) to every request.
    pub fn start(status: &str) -> std::io::Result<DemoPhone> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        let addr = socket.local_addr()?;
        let status = status.to_string();
        let (tx, lamps) = mpsc::channel();
        std::thread::Builder::new().name("demo-phone".into()).spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let at = Instant::now();
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                if msg.starts_with("SIP/2.0") {
                    continue;
                }
                let _ = socket.send_to(reply(&msg, &status).as_bytes(), from);
                if let Some(lamp) = lamp_of(&msg, at)
                    && tx.send(lamp).is_err()
                {
                    return;
                }
            }
        })?;
        Ok(DemoPhone { addr, lamps })
    }
}

/// The message-summary in a request, if it carries one.
fn lamp_of(request: &str, at: Instant) -> Option<Lamp> {
    let value = |name: &str| {
        request.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let voice_message = value("Voice-Message")?;
    let waiting = value("Messages-Waiting").is_some_and(|v| v.eq_ignore_ascii_case("yes"));
    Some(Lamp { at, waiting, voice_message })
}

/// The response to `request` with `status`: its Via, From, To (tagged),
/// Call-ID and CSeq, in full or compact form.
pub fn reply(request: &str, status: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for line in request.lines() {
        let l = line.to_ascii_lowercase();
        if ["via:", "v:", "from:", "f:", "call-id:", "i:", "cseq:"].iter().any(|h| l.starts_with(h)) {
            out += &format!("{line}\r\n");
        } else if l.starts_with("to:") || l.starts_with("t:") {
            out += line;
            if !l.contains("tag=") {
                out += ";tag=demo-phone";
            }
            out += "\r\n";
        }
    }
    out + "Content-Length: 0\r\n\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_the_request_s_dialog_headers_and_reads_the_lamp() {
        let notify = "NOTIFY sip:613@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
                      From: <sip:um@example.test>;tag=a\r\nTo: <sip:613@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 NOTIFY\r\n\
                      Messages-Waiting: yes\r\nVoice-Message: 2/1 (1/0)\r\n\r\n";
        let r = reply(notify, "200 OK");
        assert!(r.starts_with("SIP/2.0 200 OK\r\n"), "{r}");
        assert!(r.contains("To: <sip:613@127.0.0.1>;tag=demo-phone\r\n") && r.contains("CSeq: 1 NOTIFY\r\n"), "{r}");
        let lamp = lamp_of(notify, Instant::now()).expect("lamp");
        assert!(lamp.waiting);
        assert_eq!(lamp.voice_message, "2/1 (1/0)");
        assert_eq!(lamp_of("OPTIONS sip:x SIP/2.0\r\n\r\n", Instant::now()), None);
    }

    #[test]
    fn a_phone_on_loopback_answers_and_reports() {
        let phone = DemoPhone::start("486 Busy Here").expect("phone");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
        let notify = "NOTIFY sip:613@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK2\r\nTo: <sip:613@x>\r\n\
                      Call-ID: c2\r\nCSeq: 7 NOTIFY\r\nMessages-Waiting: no\r\nVoice-Message: 0/3 (0/0)\r\n\r\n";
        socket.send_to(notify.as_bytes(), phone.addr).expect("send");
        let mut buf = [0u8; 2048];
        let (n, _) = socket.recv_from(&mut buf).expect("answer");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("SIP/2.0 486 Busy Here"));
        let lamp = phone.lamps.recv().expect("reported");
        assert_eq!((lamp.waiting, lamp.voice_message.as_str()), (false, "0/3 (0/0)"));
    }
}
