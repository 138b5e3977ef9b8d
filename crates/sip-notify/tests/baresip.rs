//! A real softphone that subscribes for message-summary: baresip (Debian,
//! with its `mwi` module) registers with us, SUBSCRIBEs, and prints the body
//! of every NOTIFY it accepts. The test reads baresip's own report of the
//! waiting-message state as the counts go on and off again.

use lamplighter_sip_mwi::guard::PhoneAuth;
use lamplighter_sip_mwi::summary::Counts;
use lamplighter_sip_notify::NotifySender;
use lamplighter_sip_notify::subscriptions::{ListenerConfig, Subscriber, SubscriptionEvent, serve};
use lamplighter_testkit::baresip::{KillOnDrop, Softphone};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn digest_phone() -> Subscriber {
    Subscriber {
        uri: "sip:613@127.0.0.1".into(),
        auth: PhoneAuth::Digest { username: "613".into(), password: "pw-613".into() },
        urgent: Default::default(),
    }
}

/// Waits for events until `done` holds for what was seen.
fn collect(
    events: &mut tokio::sync::broadcast::Receiver<SubscriptionEvent>,
    done: impl Fn(&[SubscriptionEvent]) -> bool,
) -> Vec<SubscriptionEvent> {
    let mut seen = Vec::new();
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    while !done(&seen) && Instant::now() < end {
        match events.try_recv() {
            Ok(e) => seen.push(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    seen
}

fn notified_ok(seen: &[SubscriptionEvent]) -> usize {
    seen.iter().filter(|e| matches!(e, SubscriptionEvent::Notified { code: Some(200..=299), .. })).count()
}

/// No relay in between: baresip's REGISTER is challenged and answered at
/// loopback speed, and its SUBSCRIBE too, with digest.
#[tokio::test(flavor = "multi_thread")]
async fn baresip_registers_and_subscribes_with_digest_straight_at_us_and_shows_the_lamp_on_and_off() {
    let sender = Arc::new(NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind"));
    let subs = serve(sender.clone(), vec![digest_phone()], ListenerConfig::default()).expect("serve");
    let mut events = subs.events();
    subs.set_counts(Counts { new: 3, old: 2, urgent_new: 1, urgent_old: 0 });
    let phone = Softphone::start(sender.local_addr(), "pw-613");
    let on = phone.wait_for("Voice-Message: 3/2 (1/0)", 0);
    assert!(phone.text()[..on].contains("Messages-Waiting: yes"), "{}", phone.text());
    subs.set_counts(Counts { new: 0, old: 5, urgent_new: 0, urgent_old: 0 });
    let off = phone.wait_for("Voice-Message: 0/5 (0/0)", on);
    assert!(phone.text()[on..off].contains("Messages-Waiting: no"), "{}", phone.text());

    // our side challenged, then saw the REGISTER, a 200 to the SUBSCRIBE and
    // 2xx to the NOTIFYs (baresip prints a NOTIFY before our side has its 200)
    let seen = collect(&mut events, |s| notified_ok(s) >= 2);
    assert!(seen.iter().any(|e| matches!(e, SubscriptionEvent::Answered { code: 401, .. })), "challenged: {seen:?}");
    assert!(seen.iter().any(|e| matches!(e, SubscriptionEvent::Registered { .. })), "{seen:?}");
    assert!(seen.iter().any(|e| matches!(e, SubscriptionEvent::Answered { code: 200, .. })), "{seen:?}");
    assert!(notified_ok(&seen) >= 2, "{seen:?}");
    let stats = subs.stats();
    assert_eq!((stats.subscriptions, stats.dropped), (1, 0), "one subscription, nothing dropped: {stats:?}");
}

/// A wrong password: baresip's REGISTER gets 403 and it never holds a subscription.
#[tokio::test(flavor = "multi_thread")]
async fn baresip_with_a_wrong_password_gets_no_subscription_and_no_notify() {
    let sender = Arc::new(NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind"));
    let subs = serve(sender.clone(), vec![digest_phone()], ListenerConfig::default()).expect("serve");
    let mut events = subs.events();
    subs.set_counts(Counts { new: 1, old: 0, urgent_new: 0, urgent_old: 0 });
    let phone = Softphone::start(sender.local_addr(), "wrong");
    let seen = collect(&mut events, |s| s.iter().any(|e| matches!(e, SubscriptionEvent::Answered { code: 403, .. })));
    assert!(seen.iter().any(|e| matches!(e, SubscriptionEvent::Answered { code: 403, .. })), "{seen:?}");
    assert!(!seen.iter().any(|e| matches!(e, SubscriptionEvent::Notified { .. })), "{seen:?}");
    assert_eq!(subs.stats().subscriptions, 0);
    assert!(!phone.text().contains("Messages-Waiting"), "{}", phone.text());
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Spoofing and reflection: requests claiming the paired phone from another
/// address (127.0.0.2), with a Contact aiming at a third party (127.0.0.3),
/// get at most one answer each, never larger than the request, and the third
/// party gets nothing. Then 10,000 SUBSCRIBEs from that source: the tables stay
/// bounded, and the real phone (baresip) still gets its lamp on and off.
#[tokio::test(flavor = "multi_thread")]
async fn spoofed_and_flooding_requests_get_small_answers_or_none_and_the_real_phone_its_lamp() {
    let sender = Arc::new(NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind"));
    let ours = sender.local_addr();
    let address_phone = Subscriber {
        uri: "sip:614@127.0.0.1".into(),
        auth: PhoneAuth::Address("127.0.0.1".parse().expect("ip")),
        urgent: Default::default(),
    };
    let subs = serve(sender.clone(), vec![digest_phone(), address_phone], ListenerConfig::default()).expect("serve");
    subs.set_counts(Counts { new: 2, old: 1, urgent_new: 1, urgent_old: 0 });
    let attacker = tokio::net::UdpSocket::bind("127.0.0.2:0").await.expect("127.0.0.2");
    let victim = tokio::net::UdpSocket::bind("127.0.0.3:0").await.expect("127.0.0.3");
    let (me, target) = (attacker.local_addr().expect("addr"), victim.local_addr().expect("addr"));
    let request = |i: usize, method: &str, user: &str| {
        format!(
            "{method} sip:{user}@{ours} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-spoof{i}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=s{i}\r\nTo: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: spoof-{i}@127.0.0.1\r\nCSeq: 1 {method}\r\nContact: <sip:{user}@{target}>\r\n\
             Event: message-summary\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let (mut sent, mut sent_bytes) = (0usize, 0usize);
    for i in 0..20 {
        for (method, user) in [("SUBSCRIBE", "613"), ("REGISTER", "613"), ("SUBSCRIBE", "614"), ("REGISTER", "614")] {
            let r = request(i * 4 + sent % 4, method, user);
            attacker.send_to(r.as_bytes(), ours).await.expect("send");
            sent += 1;
            sent_bytes += r.len();
        }
    }
    // each request is answered at most once (rsipstack answers a retransmission
    // from its finished transaction, but nothing here retransmits)
    let mut answers: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; 65536];
    let largest_request = (0..4).map(|k| request(0, ["SUBSCRIBE", "REGISTER"][k % 2], "613").len()).max().unwrap_or(0);
    while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(500), attacker.recv_from(&mut buf)).await {
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("SIP/2.0 401") || text.starts_with("SIP/2.0 403"), "{text}");
        assert!(!text.contains("Voice-Message"), "{text}");
        answers.push(n);
    }
    assert!(answers.len() <= sent, "{} answers to {sent} requests", answers.len());
    assert!(
        answers.iter().all(|&n| n <= largest_request + 16),
        "answers {answers:?} vs requests of ≤ {largest_request} bytes"
    );
    let answered_bytes: usize = answers.iter().sum();
    assert!(answered_bytes <= sent_bytes, "{answered_bytes} bytes answered to {sent_bytes} sent");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), victim.recv_from(&mut buf)).await.is_err(),
        "the third party got a datagram"
    );
    assert_eq!(subs.stats().subscriptions, 0, "{:?}", subs.stats());
    eprintln!(
        "spoof: {sent} requests ({sent_bytes} B) from {me} → {} answers ({answered_bytes} B), 0 to {target}",
        answers.len()
    );

    // the flood
    let before = rss_kib();
    let mut flood_bytes = 0usize;
    for i in 0..10_000 {
        let r = request(1000 + i, "SUBSCRIBE", "613");
        flood_bytes += r.len();
        let _ = attacker.send_to(r.as_bytes(), ours).await;
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let mut flood_answers = (0usize, 0usize);
    while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(500), attacker.recv_from(&mut buf)).await {
        flood_answers.0 += 1;
        flood_answers.1 += n;
    }
    let after = rss_kib();
    let stats = subs.stats();
    eprintln!(
        "flood: 10000 SUBSCRIBEs ({flood_bytes} B) → {} answers ({} B); RSS {before} → {after} KiB; {stats:?}",
        flood_answers.0, flood_answers.1
    );
    assert!(flood_answers.1 <= flood_bytes && flood_answers.0 <= 10_000, "{flood_answers:?}");
    assert!(stats.dropped > 0, "the source's rate limit held: {stats:?}");
    assert_eq!(stats.subscriptions, 0, "{stats:?}");
    assert!(stats.sources <= 4, "{stats:?}");

    let phone = Softphone::start(ours, "pw-613");
    let on = phone.wait_for("Voice-Message: 2/1 (1/0)", 0);
    subs.set_counts(Counts { new: 0, old: 3, urgent_new: 0, urgent_old: 0 });
    phone.wait_for("Voice-Message: 0/3 (0/0)", on);
    assert_eq!(subs.stats().subscriptions, 1, "{:?}", subs.stats());
}

/// A private CA and a phone certificate signed by it (CA:FALSE, SAN
/// 127.0.0.1), made with the openssl command line; returns (ca.pem, phone
/// cert+key for baresip).
fn certificates(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl not found: run ./dev.sh setup");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Lamplighter Test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "phone.key",
        "-out",
        "phone.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "phone.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "phone.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let both =
        [std::fs::read(dir.join("phone.pem")).expect("cert"), std::fs::read(dir.join("phone.key")).expect("key")]
            .concat();
    std::fs::write(dir.join("baresip.pem"), both).expect("pem");
    (dir.join("ca.pem"), dir.join("baresip.pem"))
}

/// A SIP port free for UDP and TCP whose next port is free for TCP too (baresip's TLS).
fn free_sip_and_tls_port() -> u16 {
    loop {
        let port = lamplighter_testkit::process::free_port();
        if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// baresip listening for TLS (on its SIP port + 1) with `cert`; returns the TLS port.
/// The ports are free when chosen, but another test may take one before
/// baresip binds it: then baresip does not listen, and a new pair is tried.
fn baresip_tls(dir: &std::path::Path, cert: &std::path::Path) -> (KillOnDrop, u16) {
    for attempt in 0..3 {
        let port = free_sip_and_tls_port();
        let conf = dir.join(format!("conf{attempt}"));
        std::fs::create_dir_all(&conf).expect("conf");
        std::fs::write(
            conf.join("config"),
            format!("poll_method epoll\nsip_listen 127.0.0.1:{port}\nsip_certificate {}\nmodule_path /usr/lib/baresip/modules\nmodule_app account.so\n", cert.display()),
        )
        .expect("config");
        std::fs::write(conf.join("accounts"), "<sip:613@127.0.0.1>;regint=0\n").expect("accounts");
        let mut child = Command::new("baresip")
            .arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(KillOnDrop)
            .expect("baresip");
        let tls = port + 1;
        let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", tls)).is_ok() {
                return (child, tls);
            }
            // baresip gave up (a port was taken) or never listened in time: another pair
            if child.0.try_wait().ok().flatten().is_some() || Instant::now() >= end {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("baresip did not listen for TLS in three tries");
}

/// An unsolicited NOTIFY over TLS reaches a real TLS peer and its final
/// answer comes back (baresip takes MWI only on its own subscription, so it
/// answers 481): the request went out and the response was matched over TLS.
#[tokio::test(flavor = "multi_thread")]
async fn notify_over_tls_to_a_phone_with_a_certificate_from_our_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let (ca, cert) = certificates(dir.path());
    let (_phone, tls) = baresip_tls(dir.path(), &cert);
    let sender =
        NotifySender::bind_with_ca("127.0.0.1:0".parse().expect("addr"), Some(std::fs::read(&ca).expect("ca")))
            .await
            .expect("bind");
    let summary = lamplighter_sip_mwi::summary::MessageSummary::voice(
        "sip:613@127.0.0.1",
        Counts { new: 1, old: 0, urgent_new: 0, urgent_old: 0 },
    );
    let result = sender
        .send(
            &format!("sip:613@127.0.0.1:{tls}"),
            lamplighter_sip_notify::Transport::Tls,
            "lamplighter",
            &summary,
            None,
        )
        .await;
    assert_eq!(result.map_err(|e| e.code()), Err(Some(481)), "baresip's own answer over TLS");
}

/// A phone whose certificate does not chain to the configured CA gets nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_phone_with_an_untrusted_certificate_is_not_sent_to() {
    let dir = tempfile::tempdir().expect("dir");
    let (_, cert) = certificates(dir.path());
    let other = tempfile::tempdir().expect("other");
    let (other_ca, _) = certificates(other.path());
    let (_phone, tls) = baresip_tls(dir.path(), &cert);
    let sender =
        NotifySender::bind_with_ca("127.0.0.1:0".parse().expect("addr"), Some(std::fs::read(&other_ca).expect("ca")))
            .await
            .expect("bind");
    let summary = lamplighter_sip_mwi::summary::MessageSummary::voice("sip:613@127.0.0.1", Counts::default());
    let result = sender
        .send(
            &format!("sip:613@127.0.0.1:{tls}"),
            lamplighter_sip_notify::Transport::Tls,
            "lamplighter",
            &summary,
            None,
        )
        .await;
    assert!(result.is_err(), "{result:?}");
}

/// baresip registers and subscribes over TCP, then over TLS (trusting the
/// listener's CA), at our stream listeners; the lamp goes on and off over
/// each, the NOTIFYs going back over the connection the phone opened.
#[tokio::test(flavor = "multi_thread")]
async fn baresip_subscribes_over_tcp_and_tls_and_shows_the_lamp() {
    use lamplighter_sip_notify::{SenderConfig, TlsIdentity};
    use lamplighter_testkit::baresip::Over;
    use lamplighter_testkit::tls::TestCa;
    let ca = TestCa::new();
    let identity = TlsIdentity { cert_pem: ca.cert_pem.clone().into_bytes(), key_pem: ca.key_pem.clone().into_bytes() };
    let (tcp, tls) = (lamplighter_testkit::process::free_tcp_port(), lamplighter_testkit::process::free_tcp_port());
    let sender = Arc::new(
        NotifySender::start(SenderConfig {
            tcp: Some(([127, 0, 0, 1], tcp).into()),
            tls: Some((([127, 0, 0, 1], tls).into(), identity)),
            ..SenderConfig::udp("127.0.0.1:0".parse().expect("addr"))
        })
        .await
        .expect("start"),
    );
    let bound = sender.listening();
    let subs = serve(sender.clone(), vec![digest_phone()], ListenerConfig::default()).expect("serve");
    for (what, over, at, new) in
        [("tcp", Over::Tcp, bound.tcp.expect("tcp"), 4), ("tls", Over::Tls(&ca.ca_file()), bound.tls.expect("tls"), 6)]
    {
        let mut events = subs.events();
        subs.set_counts(Counts { new, old: 1, urgent_new: 0, urgent_old: 0 });
        let phone = Softphone::start_over(at, "pw-613", over);
        let on = phone.wait_for(&format!("Voice-Message: {new}/1 (0/0)"), 0);
        assert!(phone.text()[..on].contains("Messages-Waiting: yes"), "{what}: {}", phone.text());
        subs.set_counts(Counts { new: 0, old: new + 1, urgent_new: 0, urgent_old: 0 });
        let off = phone.wait_for(&format!("Voice-Message: 0/{} (0/0)", new + 1), on);
        assert!(phone.text()[on..off].contains("Messages-Waiting: no"), "{what}: {}", phone.text());
        let seen = collect(&mut events, |s| notified_ok(s) >= 2);
        assert!(seen.iter().any(|e| matches!(e, SubscriptionEvent::Answered { code: 401, .. })), "{what}: {seen:?}");
        assert!(notified_ok(&seen) >= 2, "{what}: {seen:?}");
        let streams = sender.stream_connections();
        let open = if what == "tcp" { streams.tcp_open } else { streams.tls_open };
        assert!(open >= 1, "{what}: baresip's connection is held open: {streams:?}");
    }
}

/// 300 TCP connections from one stranger (127.0.0.2) that send nothing:
/// at most 8 stay open, the rest are closed on accept, the idle ones are
/// closed after the idle time, and a real phone subscribing over TCP
/// meanwhile still gets its lamp.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_flood_is_bounded_and_the_phone_still_gets_its_lamp() {
    use lamplighter_sip_notify::{SenderConfig, StreamLimits};
    use lamplighter_testkit::baresip::Over;
    let tcp = lamplighter_testkit::process::free_tcp_port();
    let limits = StreamLimits { idle: Duration::from_secs(2), ..StreamLimits::default() };
    let sender = Arc::new(
        NotifySender::start(SenderConfig {
            tcp: Some(([127, 0, 0, 1], tcp).into()),
            limits,
            ..SenderConfig::udp("127.0.0.1:0".parse().expect("addr"))
        })
        .await
        .expect("start"),
    );
    let subs = serve(sender.clone(), vec![digest_phone()], ListenerConfig::default()).expect("serve");
    let mut flood = Vec::new();
    for _ in 0..300 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.2:0".parse().expect("addr")).expect("bind");
        if let Ok(s) = socket.connect(([127, 0, 0, 1], tcp).into()).await {
            flood.push(s);
        }
    }
    // every connection is either held (a slot) or closed on accept
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    let mut stats = sender.stream_connections();
    while (stats.tcp_open as u64 + stats.refused) < 300 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
        stats = sender.stream_connections();
    }
    eprintln!("after 300 connections from 127.0.0.2: {stats:?}");
    assert!(stats.tcp_open <= limits.per_source, "{stats:?}");
    assert!(stats.refused >= (300 - limits.per_source) as u64, "{stats:?}");

    subs.set_counts(Counts { new: 2, old: 0, urgent_new: 0, urgent_old: 0 });
    let phone = Softphone::start_over(([127, 0, 0, 1], tcp).into(), "pw-613", Over::Tcp);
    phone.wait_for("Voice-Message: 2/0 (0/0)", 0);

    // the stranger's silent connections are closed after the idle time; the phone's stays
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    while sender.stream_connections().tcp_open > 1 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = sender.stream_connections();
    eprintln!("after the idle time: {after:?}");
    assert!(after.tcp_open <= 1, "idle connections closed: {after:?}");
    drop(flood);
}
