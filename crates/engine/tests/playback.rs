//! Playing a voicemail for real: the engine fetches it from the simulated
//! Exchange, plays it into a PulseAudio null sink started for this test, the
//! position advances, the sink's monitor carries the tone (recorded from
//! outside with `parec`), and after a few seconds of listening the item is
//! read on the server. Also: the notifications the engine raises.

mod common;

use common::wait;
use lamplighter_engine::{Alert, AlertKind, Connection, Engine, PlaybackPhase};
use lamplighter_ews_sim::{MissedCall, SimConfig, Simulator, Voicemail};
use lamplighter_testkit::audio::{NullSink, rms};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn engine(dir: &std::path::Path, ews_url: &str) -> Engine {
    common::engine(dir, &common::mailbox(ews_url), "Sommer2026!")
}

/// Every alert the engine raises, in order.
fn record_alerts(e: &Engine) -> Arc<Mutex<Vec<Alert>>> {
    let alerts = Arc::new(Mutex::new(Vec::new()));
    let seen = alerts.clone();
    e.subscribe_alerts(move |a| seen.lock().expect("lock").push(a.clone()));
    alerts
}

/// Waits until at least `n` alerts were raised.
fn wait_alerts(alerts: &Mutex<Vec<Alert>>, n: usize, what: &str) {
    let end = Instant::now() + Duration::from_secs(120);
    while alerts.lock().expect("lock").len() < n {
        assert!(Instant::now() < end, "{what}: {:?}", alerts.lock().expect("lock"));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_voicemail_plays_into_a_null_sink_and_turns_heard() {
    let sink = NullSink::start();
    #[allow(unsafe_code)]
    // SAFETY: set before any thread of this test binary reads the environment (one test here touches it first)
    unsafe {
        std::env::set_var("PULSE_SERVER", &sink.server);
        std::env::remove_var("LAMPLIGHTER_AUDIO_SINK");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    let id = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        duration_secs: 8,
        audio: Some(("voicemail.wav".into(), "audio/wav".into(), lamplighter_demo::tone_wav(8))),
        ..Voicemail::default()
    });
    let dir = tempfile::tempdir().expect("tmp");
    let e = engine(dir.path(), &sim.ews_url());
    let _live = e.start_live().expect("live");
    wait(&e, "connected with one new voicemail", |s| {
        s.counts.voicemails == 1 && s.connection == Some(Connection::Live)
    });
    let row = e.lists().voicemails.into_iter().next().expect("listed");
    assert_eq!(row.item_id, id);
    assert!(row.unheard);

    // over a slow link (100 kB/s) the download's progress shows, growing, before it plays
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    e.subscribe(move |s| {
        if let Some(p) = &s.playback {
            log.lock().expect("lock").push((p.phase, p.downloaded_bytes));
        }
    });
    sim.limit_attachment_rate(Some(100_000));
    rt.block_on(e.play(&id)).expect("plays");
    sim.limit_attachment_rate(None);
    {
        let seen = seen.lock().expect("lock");
        let progress: Vec<u64> =
            seen.iter().filter(|(phase, _)| *phase == PlaybackPhase::Downloading).map(|(_, b)| *b).collect();
        let wav = 64_058;
        assert!(
            progress.iter().filter(|b| **b > 0 && **b < wav).count() >= 3,
            "the download's progress was reported: {progress:?}"
        );
        assert!(progress.windows(2).all(|w| w[0] <= w[1]), "progress only grows: {progress:?}");
    }
    let first = wait(&e, "playing", |s| {
        s.playback.as_ref().is_some_and(|p| p.phase == PlaybackPhase::Playing && p.position_ms > 0)
    });
    let p1 = first.playback.expect("playback");
    assert_eq!(p1.duration_ms, Some(8000));
    // from outside: the null sink plays our stream, and it is not silence
    assert!(!sink.pactl(&["list", "short", "sink-inputs"]).trim().is_empty(), "no stream on the sink");
    // (parec needs a moment to start under load: judge what it got)
    let heard = sink.record(Duration::from_millis(1200));
    assert!(heard.len() > 1600, "recorded {} samples", heard.len());
    assert!(rms(&heard) > 1000.0, "the sink carried silence (rms {})", rms(&heard));
    // the position advances in real time (the engine reports it every 250 ms)
    // (judged against the time that really passed, so a loaded machine cannot fail it)
    let mid = e.snapshot().playback.expect("playback").position_ms;
    let t = Instant::now();
    let later = wait(&e, "the position moves on", |s| s.playback.as_ref().is_some_and(|p| p.position_ms >= mid + 1000))
        .playback
        .expect("playback")
        .position_ms;
    let passed = t.elapsed().as_millis() as u64;
    assert!(mid >= p1.position_ms, "{} → {mid}", p1.position_ms);
    assert!(later - mid <= passed + 300, "the position ran ahead of the clock: {mid} → {later} in {passed} ms");

    // a few seconds of listening mark it heard, on the server too
    let s =
        wait(&e, "marked heard", |s| s.counts.voicemails == 0 && s.playback.as_ref().is_some_and(|p| p.marked_heard));
    assert!(s.playback.expect("playback").position_ms >= 3000);
    assert!(sim.items().iter().any(|(i, _, read)| *i == id && *read), "read on the server");
    assert_eq!(sim.served().iter().filter(|r| r.op == "UpdateItem").count(), 1);
    assert!(!e.lists().voicemails[0].unheard);

    // stop clears it
    e.stop_playback();
    assert!(e.snapshot().playback.is_none());
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.pactl(&["list", "short", "sink-inputs"]).trim().is_empty(), "stream left on the sink");

    // Stop while a Play is still starting, at several moments: it always wins
    for delay in [0, 1, 3, 10, 30] {
        let (e2, id2) = (e.clone(), id.clone());
        let pending = rt.spawn(async move { e2.play(&id2).await });
        wait(&e, "the play begun", |s| s.playback.is_some());
        std::thread::sleep(Duration::from_millis(delay));
        e.stop_playback();
        let _ = rt.block_on(pending).expect("task");
        std::thread::sleep(Duration::from_millis(400));
        assert!(e.snapshot().playback.is_none(), "after {delay} ms: {:?}", e.snapshot().playback);
        assert!(
            sink.pactl(&["list", "short", "sink-inputs"]).trim().is_empty(),
            "after {delay} ms the sound went on after Stop"
        );
    }
}

#[test]
fn new_items_raise_one_notification_each_and_start_up_one_summary() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    for n in 0..5 {
        sim.deposit_voicemail(Voicemail {
            caller_number: format!("+49 30 {n}"),
            duration_secs: 5,
            ..Voicemail::default()
        });
    }
    let dir = tempfile::tempdir().expect("tmp");
    let e = engine(dir.path(), &sim.ews_url());
    let alerts = record_alerts(&e);
    let _live = e.start_live().expect("live");
    wait(&e, "connected", |s| s.counts.voicemails == 5 && s.connection == Some(Connection::Live));
    wait_alerts(&alerts, 1, "no start-up summary");
    {
        let a = alerts.lock().expect("lock");
        assert_eq!(a.len(), 1, "one summary, not five: {a:?}");
        assert_eq!(a[0].kind, AlertKind::Summary);
        assert!(a[0].body.starts_with("5 new voicemails and 0 missed calls"), "{}", a[0].body);
    }
    let id = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        caller_name: Some("Jörg Brinkmann".into()),
        duration_secs: 42,
        transcription: Some("Hallo, hier ist Jörg. Bitte ruf mich zurück.".into()),
        ..Voicemail::default()
    });
    wait_alerts(&alerts, 2, "no notification for the new voicemail");
    let a = alerts.lock().expect("lock")[1].clone();
    assert_eq!(a.kind, AlertKind::Voicemail);
    assert_eq!(a.item_id.as_deref(), Some(id.as_str()));
    assert_eq!(a.title, "Voicemail from Jörg Brinkmann (+49 5251 304613), 0:42");
    assert_eq!(a.body, "Hallo, hier ist Jörg. Bitte ruf mich zurück.");
    assert_eq!(a.actions.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["play", "mark-heard"]);

    // a missed call: Call back (its tel: URI) and Dismiss; the caller's second try says so
    let call = |id: &str| MissedCall {
        caller_number: "+49 5251 304613".into(),
        caller_name: Some("Jörg Brinkmann".into()),
        call_id: Some(id.into()),
        ..MissedCall::default()
    };
    let first_call = sim.deposit_missed_call(call("c1@pbx"));
    let second_call = sim.deposit_missed_call(call("c2@pbx"));
    wait_alerts(&alerts, 4, "missed calls not announced");
    let calls: Vec<_> = alerts.lock().expect("lock")[2..4].to_vec();
    for (a, id) in calls.iter().zip([&first_call, &second_call]) {
        assert_eq!(a.kind, AlertKind::MissedCall);
        assert_eq!(a.item_id.as_deref(), Some(id.as_str()));
        assert_eq!(a.title, "Missed call from Jörg Brinkmann");
        assert_eq!(a.call_back.as_deref(), Some("tel:+495251304613"));
        assert_eq!(a.actions.iter().map(|x| x.id.as_str()).collect::<Vec<_>>(), ["call-back", "dismiss"]);
    }
    assert_eq!(calls[0].body, "");
    assert_eq!(calls[1].body, "2 attempts");

    // paused: the badge counts, nobody is disturbed
    e.set_notifications_paused(true);
    assert!(e.snapshot().notifications_paused);
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 9".into(), duration_secs: 5, ..Voicemail::default() });
    wait(&e, "counted while paused", |s| s.counts.voicemails == 7);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(alerts.lock().expect("lock").len(), 4);
}

/// An outage, for real: the stream drops and the server answers 503 for a
/// while; ten voicemails arrive meanwhile. When the engine is back, the
/// resynchronisation brings all ten, and the user gets one summary, not ten
/// notifications.
#[test]
fn after_an_outage_one_summary_instead_of_a_storm() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    let dir = tempfile::tempdir().expect("tmp");
    let e = engine(dir.path(), &sim.ews_url());
    let alerts = record_alerts(&e);
    let _live = e.start_live().expect("live");
    wait(&e, "connected", |s| s.connection == Some(Connection::Live));
    let end = Instant::now() + Duration::from_secs(120);
    while sim.open_streams() != 1 {
        assert!(Instant::now() < end, "no stream");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(alerts.lock().expect("lock").is_empty(), "nothing waited at start");

    // the outage may heal quickly on a busy machine: record from before it starts
    let seen = common::Snapshots::record(&e);
    sim.fail_http(8, 503);
    sim.drop_streams();
    seen.wait("the outage seen", |s| matches!(s.connection, Some(Connection::Reconnecting { .. })));
    for n in 0..10 {
        sim.deposit_voicemail(Voicemail {
            caller_number: format!("+49 30 {n}"),
            duration_secs: 5,
            ..Voicemail::default()
        });
    }
    wait(&e, "back with all ten", |s| s.connection == Some(Connection::Live) && s.counts.voicemails == 10);
    // the policy holds what the resync brought for a moment, then decides
    std::thread::sleep(lamplighter_engine::alerts::SETTLE + Duration::from_millis(1500));
    let a = alerts.lock().expect("lock").clone();
    assert_eq!(a.len(), 1, "one notification after the outage: {a:?}");
    assert_eq!(a[0].kind, AlertKind::Summary);
    assert_eq!(a[0].body, "10 new voicemails and 0 missed calls while you were away");
}
