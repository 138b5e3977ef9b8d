//! NOTIFYs to a real SIP peer: sipp (Debian `sip-tester`) playing the phone on
//! 127.0.0.1, with scenarios under tests/fixtures/sipp that check our
//! headers and body themselves (a failed check fails sipp's call and its
//! exit status).

use lamplighter_sip_mwi::summary::{Counts, MessageSummary};
use lamplighter_sip_notify::{Credentials, NotifyError, NotifySender, Transport};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lamplighter_testkit::sipp::{Sipp, free_port, scenario};

fn summary(new: u32, old: u32, urgent_new: u32, port: u16) -> MessageSummary {
    MessageSummary::voice(&format!("sip:613@127.0.0.1:{port}"), Counts { new, old, urgent_new, urgent_old: 0 })
}

#[tokio::test(flavor = "multi_thread")]
async fn the_phone_checks_and_accepts_the_notify_over_udp() {
    let sipp =
        Sipp::start("notify-uas-ok.xml", false, &[("summary", r"Voice-Message: 2/5 \(1/0\)"), ("waiting", "yes")]);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let delivered = sender.send(&sipp.uri(), Transport::Udp, "lamplighter", &summary(2, 5, 1, sipp.port), None).await;
    let (ok, log) = sipp.finish();
    let delivered = delivered.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!(delivered.code, 200);
    assert!(!delivered.authenticated);
    assert!(ok, "sipp's checks of our NOTIFY failed:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn lamp_off_over_tcp() {
    let sipp = Sipp::start("notify-uas-ok.xml", true, &[("summary", r"Voice-Message: 0/7 \(0/0\)"), ("waiting", "no")]);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let delivered = sender.send(&sipp.uri(), Transport::Tcp, "lamplighter", &summary(0, 7, 0, sipp.port), None).await;
    let (ok, log) = sipp.finish();
    assert_eq!(delivered.map(|d| d.code), Ok(200), "{log}");
    assert!(ok, "sipp's checks failed:\n{log}");
    assert!(log.contains("SIP/2.0/TCP"), "sent over TCP:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_challenge_is_answered_and_accepted() {
    let sipp = Sipp::start("notify-uas-digest.xml", false, &[("password", "s3cret-613")]);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let creds = Credentials { username: "613".into(), password: "s3cret-613".into() };
    let delivered =
        sender.send(&sipp.uri(), Transport::Udp, "lamplighter", &summary(1, 0, 0, sipp.port), Some(&creds)).await;
    let (ok, log) = sipp.finish();
    let delivered = delivered.unwrap_or_else(|e| panic!("{e}\n{log}"));
    assert_eq!((delivered.code, delivered.authenticated), (200, true), "{log}");
    assert!(ok, "{log}");
    assert!(log.contains("qop=auth, nc=00000001"), "qop and nc are unquoted tokens:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_refused_once_not_retried() {
    let sipp = Sipp::start("notify-uas-digest.xml", false, &[("password", "the-right-one")]);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let creds = Credentials { username: "613".into(), password: "a-wrong-one".into() };
    let result =
        sender.send(&sipp.uri(), Transport::Udp, "lamplighter", &summary(1, 0, 0, sipp.port), Some(&creds)).await;
    let (_, log) = sipp.finish();
    assert_eq!(result.as_ref().map_err(NotifyError::code), Err(Some(403)), "{result:?}\n{log}");
    assert!(matches!(result, Err(NotifyError::AuthFailed { .. })), "told as refused credentials: {result:?}");
    let text = result.expect_err("refused").to_string();
    assert!(text.contains("refused the credentials"), "{text}");
    assert_eq!(log.matches("NOTIFY sip:").count(), 2, "exactly one retry with credentials:\n{log}");
}

/// Nothing listens on the phone's TCP port: the connection is refused, and
/// that is the error, at once, not a timeout after Timer F (32 s).
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_tcp_connection_is_a_clear_error_at_once() {
    let port = free_port();
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    for transport in [Transport::Tcp, Transport::Tls] {
        let started = Instant::now();
        let result = sender
            .send(&format!("sip:613@127.0.0.1:{port}"), transport, "lamplighter", &summary(1, 0, 0, port), None)
            .await;
        let elapsed = started.elapsed();
        eprintln!("{transport:?} refused: {result:?} after {elapsed:?}");
        match result {
            Err(NotifyError::Transport(text)) => {
                assert!(text.contains(&format!("127.0.0.1:{port}")), "names the target: {text}");
                assert!(text.to_ascii_lowercase().contains("refused"), "says why: {text}");
            }
            other => panic!("{transport:?}: a refused connection is a transport error, not {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_credentials_a_challenge_is_a_clear_error() {
    let sipp = Sipp::start("notify-uas-digest.xml", false, &[("password", "x")]);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let result = sender.send(&sipp.uri(), Transport::Udp, "lamplighter", &summary(1, 0, 0, sipp.port), None).await;
    assert!(matches!(result, Err(NotifyError::AuthRequired { code: 401, .. })), "{result:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phone_that_never_answers_times_out_after_timer_f_with_retransmissions() {
    let sipp = Sipp::start("notify-uas-silent.xml", false, &[]);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let started = Instant::now();
    let result = sender.send(&sipp.uri(), Transport::Udp, "lamplighter", &summary(1, 0, 0, sipp.port), None).await;
    let waited = started.elapsed();
    assert_eq!(result, Err(NotifyError::Timeout));
    let log = sipp.log();
    let sends = log.matches("NOTIFY sip:").count();
    // Timer E: 0, 0.5, 1.5, 3.5, 7.5, then every 4 s up to Timer F at 32 s: 11 transmissions
    assert!((9..=12).contains(&sends), "{sends} transmissions seen by the phone:\n{log}");
    assert!(waited >= Duration::from_secs(30), "gave up after {waited:?}, before Timer F");
}

/// The driver with two phones: one shows the new counts, the other refuses
/// unsolicited NOTIFYs (481); each gets its own outcome.
#[tokio::test(flavor = "multi_thread")]
async fn the_relay_lights_each_phone_and_reports_each_failure() {
    use lamplighter_sip_mwi::relay::{RelayConfig, RelayEvent, SendFailure};
    use lamplighter_sip_notify::driver::{PhoneTarget, spawn};
    // the first NOTIFY carries the counts set before it is sent (coalescing)
    let ok = Sipp::start("notify-uas-ok.xml", false, &[("summary", r"Voice-Message: 3/2 \(1/0\)"), ("waiting", "yes")]);
    let refusing = Sipp::start("notify-uas-481.xml", false, &[]);
    let sender = std::sync::Arc::new(NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind"));
    let phone = |s: &Sipp| PhoneTarget {
        uri: s.uri(),
        transport: Transport::Udp,
        credentials: None,
        account: s.uri(),
        refresh: Duration::from_secs(3600),
        delivery: lamplighter_sip_notify::driver::Delivery::Notify,
        urgent: Default::default(),
    };
    let config = RelayConfig { coalesce: Duration::from_millis(200), ..RelayConfig::default() };
    let relay = spawn(sender, vec![phone(&ok), phone(&refusing)], config);
    let mut events = relay.events();
    relay.set_counts(Counts { new: 3, old: 2, urgent_new: 1, urgent_old: 0 });
    let mut delivered = None;
    let mut refused = None;
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while delivered.is_none() || refused.is_none() {
        let e = tokio::time::timeout_at(end, events.recv()).await.expect("events in time").expect("event");
        match e {
            RelayEvent::Delivered { phone, counts } => delivered = Some((phone.0, counts)),
            RelayEvent::Failed { phone, failure, retry_in } => refused = Some((phone.0, failure, retry_in)),
        }
    }
    assert_eq!(delivered, Some((0, Counts { new: 3, old: 2, urgent_new: 1, urgent_old: 0 })));
    let (phone, failure, retry_in) = refused.expect("refused");
    assert_eq!(phone, 1);
    assert!(matches!(failure, SendFailure::Rejected { code: 481, .. }), "{failure:?}");
    assert_eq!(retry_in, Duration::from_secs(5));
    let (ok_passed, log) = ok.finish();
    assert!(ok_passed, "{log}");
}

/// Malformed and oversized datagrams at our endpoint change nothing: the
/// next NOTIFY still goes through.
#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_the_wire_does_not_disturb_the_sender() {
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let us = sender.local_addr();
    let noise = std::net::UdpSocket::bind("127.0.0.1:0").expect("noise");
    let mut junk: Vec<Vec<u8>> = vec![
        b"\x00\x01\x02 not sip at all".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n".to_vec(),
        b"NOTIFY sip:x SIP/2.0\r\nContent-Length: 99999\r\n\r\nshort".to_vec(),
        b"INVITE sip:a@b SIP/2.0\r\nCall-ID: \xff\xfe\r\n\r\n".to_vec(),
        vec![b'A'; 65_000],
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..50 {
        let len = (seed % 1500) as usize;
        let mut d = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            d.push(seed as u8);
        }
        junk.push(d);
    }
    for d in &junk {
        let _ = noise.send_to(d, us);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sipp =
        Sipp::start("notify-uas-ok.xml", false, &[("summary", r"Voice-Message: 1/0 \(0/0\)"), ("waiting", "yes")]);
    let delivered = sender.send(&sipp.uri(), Transport::Udp, "lamplighter", &summary(1, 0, 0, sipp.port), None).await;
    let (ok, log) = sipp.finish();
    assert_eq!(delivered.map(|d| d.code), Ok(200), "{log}");
    assert!(ok, "{log}");
}

/// The notifier's refusals, on the wire, to a sipp client.
#[tokio::test(flavor = "multi_thread")]
async fn subscriptions_are_refused_as_rfc_6665_says() {
    use lamplighter_sip_mwi::guard::PhoneAuth;
    use lamplighter_sip_notify::subscriptions::{ListenerConfig, Subscriber, serve};
    let sender = std::sync::Arc::new(NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind"));
    let us = sender.local_addr();
    let phone = Subscriber {
        uri: "sip:613@127.0.0.1".into(),
        auth: PhoneAuth::Address("127.0.0.1".parse().expect("ip")),
        urgent: Default::default(),
    };
    let _subs = serve(sender.clone(), vec![phone], ListenerConfig::default()).expect("serve");
    for (what, user, event, expires, to_tag, code) in [
        ("another event package", "613", "presence", "600", "", "489"),
        ("a phone that is not paired", "666", "message-summary", "600", "", "403"),
        ("an unknown dialog", "613", "message-summary", "600", ";tag=nosuchdialog", "481"),
        ("too brief an interval", "613", "message-summary", "5", "", "423"),
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let text = std::fs::read_to_string(scenario("subscribe-uac-refused.xml"))
            .expect("scenario")
            .replace("@USER@", user)
            .replace("@EVENT@", event)
            .replace("@EXPIRES@", expires)
            .replace("@TOTAG@", to_tag)
            .replace("@CODE@", code);
        let file = dir.path().join("uac.xml");
        std::fs::write(&file, text).expect("write");
        let port = free_port();
        let status = tokio::process::Command::new("sipp")
            .arg(us.to_string())
            .arg("-sf")
            .arg(&file)
            .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1", "-nostdin", "-timeout", "15s"])
            .args(["-trace_err", "-error_file"])
            .arg(dir.path().join("errors.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("sipp");
        let errors = std::fs::read_to_string(dir.path().join("errors.log")).unwrap_or_default();
        assert!(status.success(), "{what}: expected {code}\n{errors}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_nonce_is_reused_so_the_next_notify_is_not_challenged() {
    let first_phone = Sipp::start("notify-uas-digest.xml", false, &[("password", "pw-613")]);
    let port = first_phone.port;
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let creds = Credentials { username: "613".into(), password: "pw-613".into() };
    let first =
        sender.send(&first_phone.uri(), Transport::Udp, "lamplighter", &summary(1, 0, 0, port), Some(&creds)).await;
    let (ok, log) = first_phone.finish();
    assert_eq!(first.map(|d| (d.code, d.authenticated)), Ok((200, true)), "{log}");
    assert!(ok, "{log}");
    // the same phone (same address) now never challenges: only a pre-authorised NOTIFY passes
    let second_phone = Sipp::start_on(port, "notify-uas-digest-required.xml", &[("password", "pw-613")]);
    let second =
        sender.send(&second_phone.uri(), Transport::Udp, "lamplighter", &summary(2, 0, 0, port), Some(&creds)).await;
    let (ok, log) = second_phone.finish();
    assert_eq!(second.map(|d| (d.code, d.authenticated)), Ok((200, true)), "{log}");
    assert!(ok, "{log}");
    assert!(log.contains("nc=00000002"), "the nonce is reused with nc 2:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_name_in_the_phone_uri_resolves() {
    let sipp =
        Sipp::start("notify-uas-ok.xml", false, &[("summary", r"Voice-Message: 4/0 \(0/0\)"), ("waiting", "yes")]);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let uri = format!("sip:613@localhost:{}", sipp.port);
    let delivered = sender.send(&uri, Transport::Udp, "lamplighter", &summary(4, 0, 0, sipp.port), None).await;
    let (ok, log) = sipp.finish();
    assert_eq!(delivered.map(|d| d.code), Ok(200), "{log}");
    assert!(ok, "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provisional_answer_is_followed_by_waiting_for_the_final_one() {
    let sipp = Sipp::start("notify-uas-trying.xml", false, &[]);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let delivered = sender.send(&sipp.uri(), Transport::Udp, "lamplighter", &summary(1, 0, 0, sipp.port), None).await;
    let (ok, log) = sipp.finish();
    assert_eq!(delivered.map(|d| d.code), Ok(200), "{log}");
    assert!(ok, "{log}");
    // RFC 3261 §17.1.2.2: Timer E still fires once at T1 (0.5 s), then every
    // T2 (4 s) in Proceeding; without the 1xx a third send would follow at 1.5 s.
    let sends = log.matches("NOTIFY sip:").count();
    assert!((1..=2).contains(&sends), "{sends} transmissions within 2 s after the 100 Trying:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_challenge_is_answered_with_proxy_authorization() {
    let sipp = Sipp::start("notify-uas-proxy-auth.xml", false, &[]);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let creds = Credentials { username: "613".into(), password: "proxy-pw".into() };
    let delivered =
        sender.send(&sipp.uri(), Transport::Udp, "lamplighter", &summary(1, 0, 0, sipp.port), Some(&creds)).await;
    let (ok, log) = sipp.finish();
    assert_eq!(delivered.map(|d| (d.code, d.authenticated)), Ok((200, true)), "{log}");
    assert!(ok, "{log}");
    assert!(log.contains("Proxy-Authorization: Digest"), "{log}");
}

/// How a NOTIFY names its sender and its target, per transport, checked by
/// sipp's own regexps: the Via's transport and port (the UDP socket's for
/// UDP, the TCP or TLS listener's over a stream, the connection's own port
/// when nothing listens), the address the socket uses toward the phone even
/// when bound to 0.0.0.0, the Contact's `transport=`, and the configured
/// URI's `;user=phone` kept in the Request-URI, To and Message-Account.
/// TLS: Debian's sipp has no OpenSSL, so socat terminates TLS in front of it.
#[tokio::test(flavor = "multi_thread")]
async fn the_notify_names_sender_and_phone_right_over_udp_tcp_and_tls() {
    use lamplighter_sip_notify::{SenderConfig, TlsIdentity};
    use lamplighter_testkit::tls::{TestCa, TlsTerminator};
    let ca = TestCa::new();
    let (tcp_port, tls_port) = (free_port(), free_port());
    let identity = TlsIdentity { cert_pem: ca.cert_pem.clone().into_bytes(), key_pem: ca.key_pem.clone().into_bytes() };
    let listening = NotifySender::start(SenderConfig {
        tcp: Some(([127, 0, 0, 1], tcp_port).into()),
        tls: Some((([127, 0, 0, 1], tls_port).into(), identity)),
        ca_pem: Some(ca.ca_pem.clone().into_bytes()),
        ..SenderConfig::udp("0.0.0.0:0".parse().expect("addr"))
    })
    .await
    .expect("start");
    let udp_port = listening.local_addr().port();
    let bare = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let bare_udp = bare.local_addr().port();
    for (what, sender, transport, via_port, contact_param) in [
        ("udp from 0.0.0.0", &listening, Transport::Udp, udp_port.to_string(), ""),
        ("tcp to a listener", &listening, Transport::Tcp, tcp_port.to_string(), ";transport=tcp"),
        ("tls to a listener", &listening, Transport::Tls, tls_port.to_string(), ";transport=tls"),
        ("tcp, nothing listening", &bare, Transport::Tcp, "[0-9]+".to_string(), ";transport=tcp"),
    ] {
        let proto = format!("{transport:?}").to_ascii_uppercase();
        let sipp_port = free_port();
        let terminator;
        let phone_port = if transport == Transport::Tls {
            terminator = TlsTerminator::start(&ca, free_port(), ([127, 0, 0, 1], sipp_port).into());
            terminator.port
        } else {
            sipp_port
        };
        let uri = format!("sip:613@127.0.0.1:{phone_port};user=phone");
        let escaped_uri = uri.replace('.', r"\.");
        let vars = [
            ("via", format!(r"^ *SIP/2\.0/{proto} 127\.0\.0\.1:{via_port};branch=z9hG4bK")),
            ("contact", format!(r"^ *<sip:lamplighter@127\.0\.0\.1:{via_port}{contact_param}>")),
            ("to", format!("^ *<{escaped_uri}>")),
            ("ruri", format!("{escaped_uri}(;transport=(tcp|tls|TCP|TLS))?")),
            ("account", escaped_uri.clone()),
        ];
        // the regexps go into XML attributes
        let vars: Vec<(&str, String)> =
            vars.iter().map(|(k, v)| (*k, v.replace('<', "&lt;").replace('>', "&gt;"))).collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sipp = Sipp::start_at(sipp_port, "notify-uas-headers.xml", transport != Transport::Udp, &vars);
        let summary = MessageSummary::voice(&uri, Counts { new: 1, old: 0, urgent_new: 0, urgent_old: 0 });
        let delivered = sender.send(&uri, transport, "lamplighter", &summary, None).await;
        let (ok, log) = sipp.finish();
        assert_eq!(delivered.map(|d| d.code), Ok(200), "{what}:\n{log}");
        assert!(ok, "{what}: sipp's header checks failed:\n{log}");
        if via_port.starts_with('[') {
            let port = log
                .split(&format!("SIP/2.0/{proto} 127.0.0.1:"))
                .nth(1)
                .and_then(|rest| rest.split(';').next())
                .and_then(|p| p.parse::<u16>().ok())
                .expect("Via port");
            assert_ne!(port, bare_udp, "{what}: the Via names the TCP connection's port, not the UDP socket's");
        }
    }
}

/// A 403 is not retried into a storm (PBXs ban hosts for less): while the
/// lamp changes five more times, each change delivered to a second phone
/// (the clock of this test), the forbidding phone gets no NOTIFY after its
/// first; the next try is an hour away. The forbidding phone counts what it
/// receives; a last datagram of the test's own, read after everything the
/// relay could have sent before it, closes the count.
#[tokio::test(flavor = "multi_thread")]
async fn a_403_is_not_retried_while_the_lamp_keeps_changing() {
    use lamplighter_sip_mwi::relay::{RelayConfig, RelayEvent, SendFailure};
    use lamplighter_sip_notify::demo_phone::DemoPhone;
    use lamplighter_sip_notify::driver::{Delivery, PhoneTarget, spawn};
    let forbidding = DemoPhone::start("403 Forbidden").expect("phone");
    let clock = DemoPhone::start("200 OK").expect("phone");
    let sender = std::sync::Arc::new(NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind"));
    let phone = |uri: String| PhoneTarget {
        uri: uri.clone(),
        transport: Transport::Udp,
        credentials: None,
        account: uri,
        refresh: Duration::from_secs(3600),
        delivery: Delivery::Notify,
        urgent: Default::default(),
    };
    let targets = vec![phone(format!("sip:613@{}", forbidding.addr)), phone(format!("sip:614@{}", clock.addr))];
    let relay = spawn(sender, targets, RelayConfig { coalesce: Duration::ZERO, ..RelayConfig::default() });
    let mut events = relay.events();
    let mut failures = Vec::new();
    for new in 1..=6 {
        relay.set_counts(Counts { new, old: 0, urgent_new: 0, urgent_old: 0 });
        let end = tokio::time::Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
        let mut delivered = false;
        // the first round also waits for the refusal
        while !delivered || (new == 1 && failures.is_empty()) {
            match tokio::time::timeout_at(end, events.recv()).await.expect("events in time").expect("event") {
                RelayEvent::Delivered { phone, counts } if phone.0 == 1 && counts.new == new => delivered = true,
                RelayEvent::Failed { phone, failure, retry_in } if phone.0 == 0 => failures.push((failure, retry_in)),
                _ => {}
            }
        }
    }
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("probe");
    let last = "NOTIFY sip:613@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKlast\r\nCall-ID: last\r\n\
                CSeq: 1 NOTIFY\r\nMessages-Waiting: no\r\nVoice-Message: 99/99\r\n\r\n";
    probe.send_to(last.as_bytes(), forbidding.addr).expect("send");
    let mut received = Vec::new();
    loop {
        let lamp = forbidding.lamps.recv_timeout(lamplighter_testkit::guard(Duration::from_secs(10))).expect("lamp");
        if lamp.voice_message == "99/99" {
            break;
        }
        received.push(lamp.voice_message);
    }
    assert_eq!(received, vec!["1/0 (0/0)".to_string()], "one NOTIFY to the forbidding phone in six changes");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(matches!(failures[0].0, SendFailure::Rejected { code: 403, .. }), "{failures:?}");
    assert_eq!(failures[0].1, Duration::from_secs(3600), "next try in an hour");
}
