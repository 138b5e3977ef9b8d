//! The built-in demo: an Exchange simulator with a sample mailbox and a
//! demo phone, both in this process, and a short story played against them
//! step by step ([`Demo::tell`]). The engine runs it when no account is
//! configured, so the tray and the agent's `run`/`demo` show the same
//! thing, clearly labelled "Demo mailbox". Everything it needs is in the
//! binary: the simulator carries the EWS schema it validates with, and the
//! team call's SIP headers are `data/invite-team-call.sip`.

use lamplighter_ews_client::{ClientConfig, Credentials, Password};
use lamplighter_ews_sim::{MissedCall, SimConfig, Simulator, Validation, Voicemail};
use lamplighter_runner::{MailboxSetup, RunConfig, RunEvent, Runner};
use lamplighter_sip_notify::demo_phone::DemoPhone;
use lamplighter_sip_notify::driver::PhoneTarget;
use std::net::SocketAddr;
use std::time::Duration;

/// What the demo is labelled with wherever it shows.
pub const LABEL: &str = "Demo mailbox";

/// A call to the user's team that rang at the user's phone: the demo's
/// secondary call (History-Info with `ms-retarget-reason=team-call`).
const TEAM_CALL: &str = include_str!("../data/invite-team-call.sip");

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

/// A line of the demo's story, for front ends to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Narration {
    /// A step of the story, in words.
    Step(String),
    /// The demo phone's lamp: on or off, and the `Voice-Message` line it got.
    Lamp {
        /// `Messages-Waiting: yes`.
        on: bool,
        /// `Voice-Message: 3/2 (1/0)`.
        line: String,
    },
}

/// The running demo's pieces.
pub struct Demo {
    /// The simulated Exchange.
    pub sim: Simulator,
    /// The demo phone's address.
    pub phone: SocketAddr,
    step: u32,
    last_voicemail: Option<String>,
    /// Requests already checked against the schema's verdict.
    checked: usize,
    lamps: Option<std::sync::mpsc::Receiver<lamplighter_sip_notify::demo_phone::Lamp>>,
}

/// Which of the simulator's faces the demo's run reads the mailbox through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Backend {
    /// EWS, as an on-premises Exchange (NTLM).
    #[default]
    Ews,
    /// Microsoft Graph, as Exchange Online (a bearer token the simulator takes; delta polling).
    Graph,
}

impl Demo {
    /// Starts the simulator with the sample mailbox (3 unheard voicemails, one urgent, and 2
    /// heard) and the demo phone; returns the demo and the run that uses them over EWS.
    pub async fn start() -> std::io::Result<(Demo, RunConfig)> {
        Demo::start_on(Backend::Ews).await
    }

    /// [`Demo::start`], the run reading the mailbox through `backend`.
    pub async fn start_on(backend: Backend) -> std::io::Result<(Demo, RunConfig)> {
        let sim = Simulator::start(SimConfig { validation: Validation::if_available(), ..SimConfig::default() })
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        sim.deposit_voicemail(voicemail("+49 5251 304613", Some("Jörg Brandt"), 42, true, false));
        sim.deposit_voicemail(voicemail("+49 30 1234567", None, 12, false, false));
        sim.deposit_voicemail(voicemail("+49 89 7654321", Some("Anna Weber"), 65, false, false));
        sim.deposit_voicemail(voicemail("+49 40 5550000", Some("Paketdienst"), 20, false, true));
        sim.deposit_voicemail(voicemail("+49 221 987654", None, 8, false, true));
        let phone = DemoPhone::start("200 OK")?;
        let mut client = ClientConfig::new(
            "mara@example.test",
            Credentials::Ntlm { user: "EXAMPLE\\mara".into(), password: Password::new("Sommer2026!") },
        );
        client.ews_url = Some(sim.ews_url());
        let user = lamplighter_missed_calls::UserIdentity::new(&["frank.carius@netatwork.de"], &["+49 5251 304600"])
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let mailbox = match backend {
            Backend::Ews => MailboxSetup::ews(client),
            Backend::Graph => {
                // the demo's own sign-in: a token only this simulator takes, never stored
                use std::hash::BuildHasher as _;
                let token =
                    format!("demo-{:016x}", std::collections::hash_map::RandomState::new().hash_one(sim.graph_url()));
                sim.accept_token(&token);
                let source: lamplighter_graph_client::TokenSource = std::sync::Arc::new(move |_fresh| {
                    let token = token.clone();
                    Box::pin(async move { Ok(token) })
                });
                MailboxSetup::Graph { config: lamplighter_graph_client::GraphConfig::new(sim.graph_url(), source) }
            }
        };
        let config = RunConfig {
            mailbox,
            user,
            include_missed_calls: false,
            recogniser: Default::default(),
            phones: vec![PhoneTarget {
                uri: format!("sip:demo@{}", phone.addr),
                transport: lamplighter_sip_notify::Transport::Udp,
                credentials: None,
                account: "sip:mara@example.test".into(),
                refresh: Duration::from_secs(3600),
                delivery: lamplighter_sip_notify::driver::Delivery::Notify,
                urgent: Default::default(),
            }],
            subscribers: Vec::new(),
            audio_cache: None,
            event_buffer: lamplighter_runner::EVENT_BUFFER,
            sip: lamplighter_sip_notify::SenderConfig::udp(SocketAddr::from(([127, 0, 0, 1], 0))),
            relay: lamplighter_sip_mwi::relay::RelayConfig {
                coalesce: Duration::from_millis(200),
                ..Default::default()
            },
        };
        let demo = Demo { sim, phone: phone.addr, step: 0, last_voicemail: None, checked: 0, lamps: Some(phone.lamps) };
        Ok((demo, config))
    }

    /// Tells the story against `runner`: a step every `every`, each told to
    /// `narrate`, and so is every lamp the demo phone gets. Runs until the
    /// future is dropped (or the run ends).
    pub async fn tell(&mut self, runner: &Runner, every: Duration, narrate: impl Fn(Narration)) {
        let mut events = runner.events();
        let (lamp_tx, mut lamps) = tokio::sync::mpsc::unbounded_channel();
        if let Some(rx) = self.lamps.take() {
            // the phone reports on a plain channel; a thread hands it to this task
            std::thread::spawn(move || {
                for lamp in rx {
                    if lamp_tx.send(lamp).is_err() {
                        return;
                    }
                }
            });
        }
        // the story starts once the phone shows the mailbox as it is (the first
        // lamp), so a slow start never has a step overtake the start-up lamp
        let started = tokio::time::Instant::now();
        loop {
            let wait = tokio::time::sleep_until(started + Duration::from_secs(30));
            tokio::select! {
                e = events.recv() => match e {
                    Ok(RunEvent::Mwi { .. }) => break,
                    Ok(RunEvent::Notify(n)) if n.kind == lamplighter_inbox::Kind::Voicemail => {
                        self.last_voicemail = Some(n.item_id);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                // a phone that never answers does not hold the story back for ever
                _ = wait => break,
            }
        }
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Ok(RunEvent::Notify(n)) if n.kind == lamplighter_inbox::Kind::Voicemail => {
                        self.last_voicemail = Some(n.item_id);
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                Some(lamp) = lamps.recv() => narrate(Narration::Lamp {
                    on: lamp.waiting,
                    line: format!("Voice-Message: {}", lamp.voice_message),
                }),
                _ = tick.tick() => {
                    if let Some(what) = self.step(runner).await {
                        narrate(Narration::Step(what));
                    }
                    let served = self.sim.served();
                    for s in served.iter().skip(self.checked).filter(|s| !s.schema_valid) {
                        // the demo is also a check of the client: say so loudly
                        narrate(Narration::Step(format!("the demo mailbox refused a request as invalid: {}", s.op)));
                    }
                    self.checked = served.len();
                }
            }
        }
    }

    /// Plays the next step of the story; returns what happened, in words.
    async fn step(&mut self, runner: &Runner) -> Option<String> {
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
                let id = self.last_voicemail.take()?;
                Some(match runner.mark_heard(&id).await {
                    Ok(()) => "you listen to the newest voicemail: it is marked heard".into(),
                    Err(e) => format!("marking the newest voicemail heard failed: {e}"),
                })
            }
        }
    }
}
