//! The engine's actions against the Exchange simulator: mark heard, mark a
//! missed call seen (every device's report), fetch audio to the cache, purge.

use lamplighter_ews_client::{ClientConfig, Credentials, Password};
use lamplighter_ews_sim::{MissedCall, SimConfig, Simulator, Voicemail};
use lamplighter_runner::{RunConfig, RunEvent, Runner, purge_audio_cache};
use std::time::Duration;

async fn wait_state(rx: &mut tokio::sync::broadcast::Receiver<RunEvent>, want: impl Fn(u32, u32, u32) -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Ok(RunEvent::State { voicemail, missed_calls, connection, .. })) => {
                if connection == "connected" && want(voicemail.new, voicemail.old, missed_calls) {
                    return;
                }
            }
            Ok(Ok(_)) => {}
            other => panic!("no such state: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_heard_mark_seen_fetch_and_purge() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    let audio: Vec<u8> = (0..50_000u32).map(|i| (i % 199) as u8).collect();
    let vm = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        duration_secs: 7,
        audio: Some(("a.wav".into(), "audio/wav".into(), audio.clone())),
        ..Voicemail::default()
    });
    for device in ["desk", "mobile"] {
        sim.deposit_missed_call(MissedCall {
            caller_number: "+49 30 1234567".into(),
            call_id: Some("c@pbx".into()),
            headers: vec![("User-Agent".into(), device.into())],
            ..MissedCall::default()
        });
    }
    let mut client = ClientConfig::new(
        "mara@example.test",
        Credentials::Basic { user: "mara".into(), password: Password::new("Sommer2026!") },
    );
    client.ews_url = Some(sim.ews_url());
    let runner = Runner::start(RunConfig {
        client,
        user: lamplighter_missed_calls::UserIdentity::new(&["mara@example.test"], &["+49 5251 304600"]).expect("user"),
        include_missed_calls: false,
        phones: vec![],
        sip_bind: "127.0.0.1:0".parse().expect("addr"),
        sip_ca_pem: None,
        driver: Default::default(),
        relay: Default::default(),
    })
    .await
    .expect("runner");
    let mut rx = runner.events();
    wait_state(&mut rx, |new, _, missed| new == 1 && missed == 1).await;

    let dir = tempfile::tempdir().expect("tmp");
    let mut progress = 0;
    let path = runner.fetch_audio(&vm, dir.path(), |n| progress = n).await.expect("audio");
    assert_eq!(std::fs::read(&path).expect("read"), audio);
    assert_eq!(progress, 50_000);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    // cached: a second fetch asks the server nothing
    let before = sim.served().iter().filter(|s| s.op == "GetAttachment").count();
    assert_eq!(runner.fetch_audio(&vm, dir.path(), |_| {}).await.expect("again"), path);
    assert_eq!(sim.served().iter().filter(|s| s.op == "GetAttachment").count(), before);
    assert_eq!(purge_audio_cache(dir.path(), Duration::from_secs(3600)).expect("purge"), 0, "fresh files stay");
    assert_eq!(purge_audio_cache(dir.path(), Duration::ZERO).expect("purge"), 1);
    assert!(!path.exists());

    runner.mark_heard(&vm).await.expect("heard");
    wait_state(&mut rx, |new, old, _| new == 0 && old == 1).await;
    assert!(sim.items().iter().any(|(id, _, read)| *id == vm && *read));

    let missed_item = sim.items().into_iter().find(|(_, c, _)| c.contains("Missed")).expect("missed").0;
    runner.mark_call_seen(&missed_item).await.expect("seen");
    wait_state(&mut rx, |_, _, missed| missed == 0).await;
    assert!(
        sim.items().iter().filter(|(_, c, _)| c.contains("Missed")).all(|(_, _, read)| *read),
        "both devices' reports"
    );
    runner.stop().await;
    assert!(sim.served().iter().all(|s| s.schema_valid));
}
