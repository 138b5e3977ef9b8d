//! The built-in demo: an Exchange simulator with a sample mailbox and a
//! demo phone, both in this process, and a short story played against them
//! step by step. The agent's `demo` and the tray (with no account
//! configured) run the same thing, clearly labelled "Demo mailbox".

use crate::{RunConfig, RunEvent, Runner};
use lamplighter_ews_client::{ClientConfig, Credentials, Password};
use lamplighter_ews_sim::{MissedCall, SimConfig, Simulator, Validation, Voicemail};
use lamplighter_sip_notify::driver::PhoneTarget;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the demo is labelled with wherever it shows.
pub const LABEL: &str = "Demo mailbox";

const TEAM_CALL: &str = include_str!("../../../tests/fixtures/sip/invite-team-call.sip");

/// G.711 µ-law of one 16-bit sample.
fn mulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(CLIP) + BIAS;
    let mut exponent = 7;
    let mut mask = 0x4000;
    while exponent > 0 && s & mask == 0 {
        exponent -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) | mantissa) as u8
}

/// `secs` seconds of a soft two-tone chime as 8 kHz G.711 µ-law WAV, the
/// format Exchange UM records in: the demo's (and the tests') voicemail audio.
pub fn tone_wav(secs: u32) -> Vec<u8> {
    let n = 8000 * secs as usize;
    let data: Vec<u8> = (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let f = if (i / 4000) % 2 == 0 { 523.25 } else { 659.25 };
            mulaw((f64::sin(2.0 * std::f64::consts::PI * f * t) * 6000.0) as i16)
        })
        .collect();
    let mut w = Vec::with_capacity(58 + n);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(4 + 26 + 12 + 8 + data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&18u32.to_le_bytes());
    w.extend_from_slice(&7u16.to_le_bytes()); // WAVE_FORMAT_MULAW
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&8000u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&8u16.to_le_bytes());
    w.extend_from_slice(&0u16.to_le_bytes());
    w.extend_from_slice(b"fact");
    w.extend_from_slice(&4u32.to_le_bytes());
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&(data.len() as u32).to_le_bytes());
    w.extend_from_slice(&data);
    w
}

fn voicemail(number: &str, name: Option<&str>, secs: u32, urgent: bool, read: bool) -> Voicemail {
    const SAID: [&str; 4] = [
        "Hallo, hier ist Jörg. Bitte ruf mich wegen des Angebots zurück, es eilt.",
        "Guten Tag, Ihre Lieferung kommt morgen zwischen 10 und 12 Uhr.",
        "Hi, just checking whether Thursday still works for you. Call me back.",
        "Kurze Frage zur Rechnung vom Oktober, ich melde mich noch einmal.",
    ];
    Voicemail {
        transcription: Some(SAID[(secs as usize / 4) % SAID.len()].to_string()),
        caller_number: number.into(),
        caller_name: name.map(str::to_string),
        duration_secs: secs,
        urgent,
        is_read: read,
        audio: Some(("voicemail.wav".into(), "audio/wav".into(), tone_wav(secs.min(6)))),
        ..Voicemail::default()
    }
}

/// The running demo's pieces.
pub struct Demo {
    /// The simulated Exchange.
    pub sim: Simulator,
    /// The demo phone's address.
    pub phone: SocketAddr,
    step: u32,
    last_voicemail: Arc<Mutex<Option<String>>>,
}

/// A demo phone: answers every request with 200 OK and tells `on_lamp` each Voice-Message line.
async fn demo_phone(on_lamp: Arc<dyn Fn(bool, String) + Send + Sync>) -> std::io::Result<SocketAddr> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else { return };
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if msg.starts_with("SIP/2.0") {
                continue;
            }
            let mut reply = String::from("SIP/2.0 200 OK\r\n");
            for line in msg.lines() {
                let lower = line.to_ascii_lowercase();
                if ["via:", "v:", "from:", "f:", "call-id:", "i:", "cseq:"].iter().any(|h| lower.starts_with(h)) {
                    reply.push_str(line);
                    reply.push_str("\r\n");
                } else if lower.starts_with("to:") || lower.starts_with("t:") {
                    reply.push_str(line);
                    if !lower.contains("tag=") {
                        reply.push_str(";tag=demo-phone");
                    }
                    reply.push_str("\r\n");
                }
            }
            reply.push_str("Content-Length: 0\r\n\r\n");
            let _ = socket.send_to(reply.as_bytes(), from).await;
            if let Some(line) = msg.lines().find(|l| l.to_ascii_lowercase().starts_with("voice-message:")) {
                let waiting = msg.lines().any(|l| l.trim().eq_ignore_ascii_case("messages-waiting: yes"));
                on_lamp(waiting, line.trim().to_string());
            }
        }
    });
    Ok(addr)
}

impl Demo {
    /// Starts the simulator with the sample mailbox (3 unheard voicemails, one urgent, and 2
    /// heard) and the demo phone; returns the demo and the run that uses them.
    pub async fn start(on_lamp: Arc<dyn Fn(bool, String) + Send + Sync>) -> std::io::Result<(Demo, RunConfig)> {
        let sim = Simulator::start(SimConfig { validation: Validation::if_available(), ..SimConfig::default() })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        sim.deposit_voicemail(voicemail("+49 5251 304613", Some("Jörg Brandt"), 42, true, false));
        sim.deposit_voicemail(voicemail("+49 30 1234567", None, 12, false, false));
        sim.deposit_voicemail(voicemail("+49 89 7654321", Some("Anna Weber"), 65, false, false));
        sim.deposit_voicemail(voicemail("+49 40 5550000", Some("Paketdienst"), 20, false, true));
        sim.deposit_voicemail(voicemail("+49 221 987654", None, 8, false, true));
        let phone = demo_phone(on_lamp).await?;
        let mut client = ClientConfig::new(
            "mara@example.test",
            Credentials::Ntlm { user: "EXAMPLE\\mara".into(), password: Password::new("Sommer2026!") },
        );
        client.ews_url = Some(sim.ews_url());
        let user = lamplighter_missed_calls::UserIdentity::new(&["frank.carius@netatwork.de"], &["+49 5251 304600"])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let config = RunConfig {
            client,
            user,
            include_missed_calls: false,
            phones: vec![PhoneTarget {
                uri: format!("sip:demo@{phone}"),
                transport: lamplighter_sip_notify::Transport::Udp,
                credentials: None,
                account: "sip:mara@example.test".into(),
                refresh: Duration::from_secs(3600),
            }],
            subscribers: Vec::new(),
            audio_cache: None,
            sip_bind: "127.0.0.1:0".parse().expect("address"),
            sip_ca_pem: None,
            driver: Default::default(),
            relay: lamplighter_sip_mwi::relay::RelayConfig {
                coalesce: Duration::from_millis(200),
                ..Default::default()
            },
        };
        Ok((Demo { sim, phone, step: 0, last_voicemail: Arc::new(Mutex::new(None)) }, config))
    }

    /// Watches the run's events (the story marks the newest voicemail heard).
    pub fn observe(&self, e: &RunEvent) {
        if let RunEvent::Notify { kind: lamplighter_mailbox_state::Kind::Voicemail, item_id, .. } = e {
            *self.last_voicemail.lock().unwrap_or_else(|p| p.into_inner()) = Some(item_id.clone());
        }
    }

    /// Plays the next step of the story; returns what happened, in words.
    pub async fn step(&mut self, runner: &Runner) -> Option<String> {
        let step = self.step;
        self.step += 1;
        match step % 4 {
            0 => {
                self.sim.deposit_voicemail(voicemail(
                    &format!("+49 5251 30{:04}", 4700 + step),
                    Some("Demo Caller"),
                    15 + step,
                    false,
                    false,
                ));
                Some("a caller leaves a voicemail".into())
            }
            1 => {
                for device in ["Desk phone", "Softphone", "Mobile"] {
                    self.sim.deposit_missed_call(MissedCall {
                        caller_number: "+49 30 1234567".into(),
                        caller_name: Some("Carl Caller".into()),
                        call_id: Some(format!("demo-call-{step}@pbx.example.test")),
                        headers: vec![("User-Agent".into(), device.into())],
                        ..MissedCall::default()
                    });
                }
                Some("a missed call, reported by desk phone, softphone and mobile".into())
            }
            2 => {
                self.sim.deposit_missed_call(MissedCall {
                    caller_number: "+49 5251 304613".into(),
                    headers: lamplighter_missed_calls::headers(TEAM_CALL),
                    ..MissedCall::default()
                });
                Some("a team call rings for a colleague (not your missed call)".into())
            }
            _ => {
                let id = self.last_voicemail.lock().unwrap_or_else(|p| p.into_inner()).take()?;
                Some(match runner.mark_heard(&id).await {
                    Ok(()) => "you listen to the newest voicemail: it is marked heard".into(),
                    Err(e) => format!("marking the newest voicemail heard failed: {e}"),
                })
            }
        }
    }
}
