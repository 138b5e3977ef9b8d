//! The engine's actions against the Exchange simulator: mark heard, mark a
//! missed call seen (every device's report), fetch audio to the cache, purge.

use lamplighter_ews_client::driver::DriverConfig;
use lamplighter_ews_client::{ClientConfig, Credentials, Password};
use lamplighter_ews_sim::{MissedCall, SimConfig, Simulator, Voicemail};
use lamplighter_mailbox::Connection;
use lamplighter_mailbox_sync::SyncConfig;
use lamplighter_runner::{MailboxSetup, RunConfig, RunEvent, Runner, purge_audio_cache};
use std::time::Duration;

/// A run against `sim` with these phones.
fn run_config(
    sim: &Simulator,
    phones: Vec<lamplighter_sip_notify::driver::PhoneTarget>,
    subscribers: Vec<lamplighter_sip_notify::subscriptions::Subscriber>,
    sip_bind: &str,
) -> RunConfig {
    let mut client = ClientConfig::new(
        "mara@example.test",
        Credentials::Basic { user: "mara".into(), password: Password::new("Sommer2026!") },
    );
    client.ews_url = Some(sim.ews_url());
    RunConfig {
        mailbox: MailboxSetup::ews(client),
        user: lamplighter_missed_calls::UserIdentity::new(&["mara@example.test"], &["+49 5251 304600"]).expect("user"),
        include_missed_calls: false,
        recogniser: Default::default(),
        phones,
        subscribers,
        audio_cache: None,
        event_buffer: lamplighter_runner::EVENT_BUFFER,
        sip: lamplighter_sip_notify::SenderConfig::udp(sip_bind.parse().expect("addr")),
        relay: Default::default(),
    }
}

/// Waits for a connected state line for which `want(new, old, missed)` holds
/// (the guard only ends a hung test).
async fn wait_state(rx: &mut tokio::sync::broadcast::Receiver<RunEvent>, want: impl Fn(u32, u32, u32) -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Ok(RunEvent::State { summary, connection })) => {
                if connection == Connection::Live
                    && want(summary.voicemail.new, summary.voicemail.old, summary.missed_calls)
                {
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
    let runner = Runner::start(run_config(&sim, vec![], vec![], "127.0.0.1:0")).await.expect("runner");
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

/// A subscribing phone without credentials: admitted from its own address only.
fn address_phone(uri: &str) -> lamplighter_sip_notify::subscriptions::Subscriber {
    lamplighter_sip_notify::subscriptions::Subscriber {
        uri: uri.into(),
        auth: lamplighter_sip_mwi::guard::PhoneAuth::Address("127.0.0.1".parse().expect("ip")),
        urgent: Default::default(),
    }
}

/// A phone in `mode = "subscribe"`: it SUBSCRIBEs to the runner, which answers
/// and keeps it NOTIFYed in the subscription's dialog as the counts change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribing_phone_is_notified_in_its_dialog() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        duration_secs: 7,
        ..Voicemail::default()
    });
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("port");
        s.local_addr().expect("addr").port()
    };
    let runner =
        Runner::start(run_config(&sim, vec![], vec![address_phone("sip:613@127.0.0.1")], &format!("127.0.0.1:{port}")))
            .await
            .expect("runner");
    // the first event says where phones subscribe
    match runner.events().recv().await.expect("event") {
        lamplighter_runner::RunEvent::Listening { address, streams, serving_subscriptions } => {
            assert_eq!((address, serving_subscriptions), (format!("udp:127.0.0.1:{port}"), true));
            assert!(streams.is_empty(), "no phone subscribes over TCP or TLS: {streams:?}")
        }
        other => panic!("{other:?}"),
    }
    let phone = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("phone");
    let me = phone.local_addr().expect("addr");
    let subscribe = format!(
        "SUBSCRIBE sip:613@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-sub1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:613@127.0.0.1>;tag=phone1\r\nTo: <sip:613@127.0.0.1>\r\nCall-ID: sub-1@127.0.0.1\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:613@{me}>\r\nEvent: message-summary\r\nAccept: application/simple-message-summary\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
    );
    phone.send_to(subscribe.as_bytes(), ("127.0.0.1", port)).await.expect("send");
    let mut answered = None;
    let mut lamps: Vec<String> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut deposited = false;
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while !lamps.iter().any(|l| l.contains("2/0")) {
        let Ok(Ok((n, from))) = tokio::time::timeout_at(end, phone.recv_from(&mut buf)).await else {
            panic!("no NOTIFY with 2/0; answered {answered:?}, lamps {lamps:?}");
        };
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some(status) = msg.strip_prefix("SIP/2.0 ") {
            answered.get_or_insert_with(|| status.lines().next().unwrap_or("").to_string());
            continue;
        }
        assert!(msg.starts_with("NOTIFY "), "{msg}");
        assert!(msg.contains("sub-1@127.0.0.1"), "in the subscription's dialog: {msg}");
        let mut reply = String::from("SIP/2.0 200 OK\r\n");
        for line in msg.lines() {
            let l = line.to_ascii_lowercase();
            if ["via:", "from:", "to:", "call-id:", "cseq:"].iter().any(|h| l.starts_with(h)) {
                reply += &format!("{line}\r\n");
            }
        }
        reply += "Content-Length: 0\r\n\r\n";
        phone.send_to(reply.as_bytes(), from).await.expect("reply");
        if let Some(v) = msg.lines().find(|l| l.to_ascii_lowercase().starts_with("voice-message:")) {
            lamps.push(v.to_string());
        }
        if !deposited && lamps.iter().any(|l| l.contains("1/0")) {
            sim.deposit_voicemail(Voicemail {
                caller_number: "+49 30 1".into(),
                duration_secs: 3,
                ..Voicemail::default()
            });
            deposited = true;
        }
    }
    let answered = answered.expect("the SUBSCRIBE was answered");
    assert!(answered.starts_with("200") || answered.starts_with("202"), "{answered}");
    runner.stop().await;
}

/// "Resend lamp to phone": the phone gets the current state again at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resend_lamp_sends_the_current_state_again() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 1".into(), duration_secs: 3, ..Voicemail::default() });
    let phone = lamplighter_testkit::phone::DemoPhone::start("200 OK").expect("phone");
    let target = lamplighter_sip_notify::driver::PhoneTarget {
        uri: format!("sip:613@{}", phone.addr),
        transport: lamplighter_sip_notify::Transport::Udp,
        credentials: None,
        account: "sip:mara@example.test".into(),
        refresh: Duration::from_secs(3600),
        delivery: lamplighter_sip_notify::driver::Delivery::Notify,
        urgent: Default::default(),
    };
    let runner = Runner::start(run_config(&sim, vec![target], vec![], "127.0.0.1:0")).await.expect("runner");
    let next_notify = || {
        phone
            .lamps
            .recv_timeout(Duration::from_secs(180))
            .map(|l| format!("Voice-Message: {}", l.voice_message))
            .expect("a NOTIFY")
    };
    assert_eq!(next_notify(), "Voice-Message: 1/0 (0/0)");
    // right away, maybe while the first NOTIFY's transaction is still open: the resend must not be lost
    runner.resend_lamp();
    assert_eq!(next_notify(), "Voice-Message: 1/0 (0/0)", "sent again on request");
    runner.stop().await;
}

/// "Retry now" after an outage: the server comes back, and the run connects
/// because it was asked to, not because a back-off ran out. The back-off here
/// is an hour, so nothing but the retry can explain a connection within the
/// test's guard, however loaded the machine is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_now_connects_as_soon_as_the_server_is_back() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    let mut client = ClientConfig::new(
        "mara@example.test",
        Credentials::Basic { user: "mara".into(), password: Password::new("Sommer2026!") },
    );
    client.ews_url = Some(format!("http://{addr}/EWS/Exchange.asmx"));
    let hour = Duration::from_secs(3600);
    let driver = DriverConfig {
        sync: SyncConfig { retry_initial: hour, retry_max: hour, ..SyncConfig::default() },
        ..DriverConfig::default()
    };
    let mut config =
        run_config(&Simulator::start(SimConfig::default()).await.expect("sim"), vec![], vec![], "127.0.0.1:0");
    config.mailbox = MailboxSetup::Ews { client, driver };
    let runner = Runner::start(config).await.expect("runner");
    let mut rx = runner.events();
    // nothing listens yet: the run waits its hour
    let end = tokio::time::Instant::now() + Duration::from_secs(180);
    loop {
        match tokio::time::timeout_at(end, rx.recv()).await.expect("an outage is reported").expect("event") {
            RunEvent::State { connection: Connection::Reconnecting { in_secs, .. }, .. } => {
                assert!(in_secs > 600, "the back-off is the configured hour: {in_secs} s");
                break;
            }
            _ => continue,
        }
    }
    let sim = Simulator::start(SimConfig { listen: addr, ..SimConfig::default() }).await.expect("sim on the same port");
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 1".into(), duration_secs: 5, ..Voicemail::default() });
    runner.retry_now();
    wait_state(&mut rx, |new, _, _| new == 1).await;
    runner.stop().await;
}

/// The first events of a run (the catch-up's state lines) reach the first
/// listener however late it subscribes: here it asks only after the run has
/// long been live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_first_listener_still_gets_the_run_from_its_start() {
    let sim = Simulator::start(SimConfig::default()).await.expect("sim");
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 1".into(), duration_secs: 3, ..Voicemail::default() });
    let runner = Runner::start(run_config(&sim, vec![], vec![], "127.0.0.1:0")).await.expect("runner");
    // the run goes live without anyone listening
    let end = tokio::time::Instant::now() + Duration::from_secs(180);
    while sim.open_streams() == 0 {
        assert!(tokio::time::Instant::now() < end, "never streamed");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut rx = runner.events();
    match rx.try_recv() {
        Ok(RunEvent::State { connection, .. }) => {
            assert_ne!(connection, Connection::Live, "the first line is the start")
        }
        other => panic!("the run's first state line was lost: {other:?}"),
    }
    wait_state(&mut rx, |new, _, _| new == 1).await;
    runner.stop().await;
}
