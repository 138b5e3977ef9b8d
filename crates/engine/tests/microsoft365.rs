//! The engine over Microsoft Graph, as the tray runs it: signed in through
//! the browser step (curl playing the user at the simulator's Entra-like
//! sign-in page), a Cloud Voicemail's MP3 plays into a PulseAudio null sink
//! and is marked heard on the server (`isRead` by PATCH); a revoked grant
//! becomes "sign in again" in the snapshot, and signing in again heals it.
//! Also a PBX's voicemail e-mail (Asterisk's headers, a GSM WAV) over EWS
//! and over Graph: listed with the caller from its headers, its recording fetched, while
//! ordinary mail with a WAV attached stays mail.

mod common;

use common::wait;
use lamplighter_engine::{Connection, Engine, PlaybackPhase};
use lamplighter_ews_sim::{EntraConfig, NewItem, SimConfig, Simulator, Voicemail};
use lamplighter_testkit::audio::{NullSink, rms};
use std::time::Duration;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/audio").join(name))
        .expect("fixture")
}

fn graph_engine(dir: &std::path::Path, sim: &Simulator) -> Engine {
    m365_engine(dir, sim, "mara@contoso.onmicrosoft.com", "graph", "oauth2")
}

/// The browser sign-in, the user being curl following the sign-in page's redirects.
fn sign_in(rt: &tokio::runtime::Runtime, e: &Engine) -> lamplighter_signin::Grant {
    rt.block_on(e.browser_login(|url| {
        let url = url.to_string();
        std::thread::spawn(move || {
            let _ = std::process::Command::new("curl").args(["-s", "-L", "-o", "/dev/null", &url]).status();
        });
    }))
    .expect("signed in")
}

/// The device code sign-in, the user approving in curl as soon as the code shows.
fn device_sign_in(rt: &tokio::runtime::Runtime, e: &Engine) {
    let session = e.microsoft_session().expect("session").expect("oauth2");
    let (tx, rx) = std::sync::mpsc::channel::<(String, String)>();
    std::thread::spawn(move || {
        if let Ok((uri, code)) = rx.recv() {
            let _ =
                std::process::Command::new("curl").args(["-s", "--data", &format!("user_code={code}"), &uri]).output();
        }
    });
    rt.block_on(session.device_login(move |d| {
        let _ = tx.send((d.verification_uri.clone(), d.user_code.clone()));
    }))
    .expect("signed in");
}

/// Asterisk app_voicemail's e-mail with its GSM recording.
fn asterisk_mail() -> NewItem {
    NewItem {
        item_class: "IPM.Note".into(),
        subject: "[PBX]: New message 1 in mailbox 613".into(),
        importance: "Normal".into(),
        from_name: Some("Asterisk PBX".into()),
        from_email: Some("asterisk@pbx.example.com".into()),
        headers: vec![
            ("X-Asterisk-CallerID".into(), "+49 5251 304613".into()),
            ("X-Asterisk-CallerIDName".into(), "Empfang".into()),
        ],
        attachments: vec![("msg0000.WAV".into(), "audio/x-wav".into(), fixture("gsm610.wav"))],
        body_text: Some("Dear Mara:\n\n\tjust wanted to let you know you were just left a 0:02 long message (number 1)\nin mailbox 613 from \"Empfang\" <+49 5251 304613>.\n".into()),
        ..NewItem::default()
    }
}

fn ordinary_mail_with_a_wav() -> NewItem {
    NewItem {
        item_class: "IPM.Note".into(),
        subject: "the recording from the meeting".into(),
        importance: "Normal".into(),
        from_name: Some("Anna".into()),
        from_email: Some("anna@example.com".into()),
        attachments: vec![("meeting.wav".into(), "audio/x-wav".into(), fixture("g711-alaw.wav"))],
        ..NewItem::default()
    }
}

#[test]
fn over_graph_a_cloud_voicemail_plays_is_heard_and_a_revoked_grant_asks_to_sign_in_again() {
    let sink = NullSink::start();
    #[allow(unsafe_code)]
    // SAFETY: set before any thread of this test binary reads the environment (the first thing this test does);
    // BROWSER=true: the engine "opens" the browser with a command that does nothing, the test plays the user
    unsafe {
        std::env::set_var("PULSE_SERVER", &sink.server);
        std::env::remove_var("LAMPLIGHTER_AUDIO_SINK");
        std::env::set_var("BROWSER", "true");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    let dir = tempfile::tempdir().expect("tmp");
    let e = graph_engine(dir.path(), &sim);
    let _live = e.start_live().expect("live");
    wait(&e, "not signed in yet", |s| s.problems.iter().any(|p| p.message.contains("not signed in")));

    let grant = sign_in(&rt, &e);
    assert_eq!(grant.account.as_deref(), Some("mara@contoso.onmicrosoft.com"));
    assert_eq!(
        e.settings_view().microsoft_account.and_then(|a| a.account).as_deref(),
        Some("mara@contoso.onmicrosoft.com")
    );
    wait(&e, "connected over Graph", |s| s.connection == Some(Connection::Live) && s.sign_in_url.is_none());

    let id = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        caller_name: Some("Jörg Müller".into()),
        duration_secs: 2,
        audio: Some(("audio.mp3".into(), "audio/mpeg".into(), fixture("mp3.mp3"))),
        transcription: Some("Bitte ruf mich zurück.".into()),
        ..Voicemail::default()
    });
    wait(&e, "the voicemail", |s| s.counts.voicemails == 1);
    let row = e.lists().voicemails.into_iter().next().expect("listed");
    assert_eq!((row.caller.as_str(), row.number.as_deref()), ("Jörg Müller", Some("+49 5251 304613")));
    rt.block_on(e.play(&row.item_id)).expect("plays");
    wait(&e, "playing", |s| s.playback.as_ref().is_some_and(|p| p.phase == PlaybackPhase::Playing));
    let heard = sink.record(Duration::from_millis(800));
    assert!(rms(&heard) > 300.0, "the MP3 reached the sink (rms {})", rms(&heard));
    wait(&e, "heard", |s| s.counts.voicemails == 0);
    assert!(sim.items().iter().any(|(i, _, read)| *i == id && *read), "isRead on the server");
    assert!(sim.served().iter().any(|s| s.op.starts_with("graph PATCH /me/messages/")), "by PATCH");

    // an admin revokes the sign-in: one clear "sign in again", not a loop
    sim.revoke_grants();
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 1".into(), ..Voicemail::default() });
    let s = wait(&e, "sign in again", |s| matches!(&s.connection, Some(Connection::SignInRefused { .. })));
    let Some(Connection::SignInRefused { reason }) = s.connection else { unreachable!() };
    assert!(reason.contains("sign in again"), "{reason}");
    let asked = sim.grants_issued();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sim.grants_issued(), asked, "nothing is retried by itself");

    sign_in(&rt, &e);
    wait(&e, "connected again, the new voicemail there", |s| {
        s.connection == Some(Connection::Live) && s.counts.voicemails == 1
    });
    e.stop_playback();
}

#[test]
fn a_pbx_voicemail_mail_is_voicemail_over_ews_and_over_graph_with_its_recording() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    sim.deposit(ordinary_mail_with_a_wav());
    let pbx = sim.deposit(asterisk_mail());

    // EWS: the mail with attachments is read in full; Asterisk's is voicemail, Anna's is not
    let dir = tempfile::tempdir().expect("tmp");
    let e = common::engine(dir.path(), &common::mailbox(&sim.ews_url()), "Sommer2026!");
    let _live = e.start_live().expect("live");
    wait(&e, "the PBX's voicemail over EWS", |s| s.connection == Some(Connection::Live) && s.counts.voicemails == 1);
    let row = e.lists().voicemails.into_iter().next().expect("listed");
    assert_eq!(row.item_id, pbx);
    assert_eq!((row.caller.as_str(), row.number.as_deref()), ("Empfang", Some("+49 5251 304613")));
    assert_eq!(row.duration.as_deref(), Some("0:02"), "from the body");
    // its GSM recording is the one fetched
    let file = rt.block_on(e.audio_file(&pbx)).expect("the recording");
    assert_eq!(std::fs::read(&file).expect("file"), fixture("gsm610.wav"));

    // Graph: the same two mails, the same answer
    let sim2 = rt
        .block_on(Simulator::start(SimConfig {
            entra: EntraConfig { device_interval: Duration::from_secs(1), ..EntraConfig::default() },
            ..SimConfig::default()
        }))
        .expect("sim");
    sim2.deposit(ordinary_mail_with_a_wav());
    sim2.deposit(asterisk_mail());
    let dir2 = tempfile::tempdir().expect("tmp");
    let e2 = graph_engine(dir2.path(), &sim2);
    // signed in by device code, the user approving in curl
    device_sign_in(&rt, &e2);
    let _live2 = e2.start_live().expect("live");
    wait(&e2, "the PBX's voicemail over Graph", |s| s.connection == Some(Connection::Live) && s.counts.voicemails == 1);
    let row = e2.lists().voicemails.into_iter().next().expect("listed");
    assert_eq!((row.caller.as_str(), row.number.as_deref()), ("Empfang", Some("+49 5251 304613")));
    let file = rt.block_on(e2.audio_file(&row.item_id)).expect("the recording");
    assert_eq!(std::fs::read(&file).expect("file"), fixture("gsm610.wav"));
}

/// `backend = "auto"` as a user writes it, with no URL: the mailbox's home decides.
fn auto_engine(dir: &std::path::Path, sim: &Simulator, email: &str, auth: &str) -> Engine {
    m365_engine(dir, sim, email, "auto", auth)
}

/// An engine for `email` at the simulator's Microsoft 365 (and EWS, with the
/// password for Basic) through `backend`.
fn m365_engine(dir: &std::path::Path, sim: &Simulator, email: &str, backend: &str, auth: &str) -> Engine {
    common::engine(
        dir,
        &format!(
            "[mailbox]\nemail = \"{email}\"\nbackend = \"{backend}\"\nauth = \"{auth}\"\nusername = \"mara\"\n\
             graph_url = \"{}\"\nauthority = \"{}\"\nclient_id = \"{}\"\n",
            sim.graph_url(),
            sim.authority("organizations"),
            EntraConfig::default().client_id
        ),
        "Sommer2026!",
    )
}

#[test]
fn backend_auto_takes_graph_for_exchange_online_and_ews_for_a_hybrid_on_premises_mailbox() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt
        .block_on(Simulator::start(SimConfig {
            entra: EntraConfig {
                on_premises: vec!["ben@contoso.com".into()],
                device_interval: Duration::from_secs(1),
                ..EntraConfig::default()
            },
            ..SimConfig::default()
        }))
        .expect("sim");
    sim.deposit_voicemail(Voicemail { caller_number: "+49 5251 304613".into(), ..Voicemail::default() });

    // on-premises in a hybrid organisation: EWS at the URL Autodiscover v2 gave, the password as usual
    let dir = tempfile::tempdir().expect("tmp");
    let e = auto_engine(dir.path(), &sim, "ben@contoso.com", "basic");
    let live = e.start_live().expect("live");
    wait(&e, "connected over EWS", |s| s.connection == Some(Connection::Live) && s.counts.voicemails == 1);
    assert!(sim.served().iter().any(|s| s.op == "SyncFolderItems"), "EWS was used");
    drop(live);

    // an Exchange Online mailbox with a password: told what to choose, nothing sent with the password
    let dir = tempfile::tempdir().expect("tmp");
    let e = auto_engine(dir.path(), &sim, "mara@contoso.onmicrosoft.com", "basic");
    let before = sim.served().iter().filter(|s| s.op == "SyncFolderItems").count();
    let live = e.start_live().expect("live");
    wait(&e, "the choice named", |s| {
        s.problems.iter().any(|p| p.message.contains("is in Exchange Online") && p.message.contains("oauth2"))
    });
    assert_eq!(sim.served().iter().filter(|s| s.op == "SyncFolderItems").count(), before);
    drop(live);

    // and with the Microsoft sign-in: Microsoft Graph
    let dir = tempfile::tempdir().expect("tmp");
    let e = auto_engine(dir.path(), &sim, "mara@contoso.onmicrosoft.com", "oauth2");
    device_sign_in(&rt, &e);
    let _live = e.start_live().expect("live");
    wait(&e, "connected over Graph", |s| s.connection == Some(Connection::Live) && s.counts.voicemails == 1);
    assert!(sim.served().iter().any(|s| s.op.contains("/messages/delta")), "Graph was used");
}
