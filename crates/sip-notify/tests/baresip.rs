//! A real softphone that subscribes for message-summary: baresip (Debian,
//! with its `mwi` module) registers with us, SUBSCRIBEs, and prints the body
//! of every NOTIFY it accepts. The test reads baresip's own report of the
//! waiting-message state as the counts go on and off again.

use lamplighter_sip_mwi::notifier::NotifierConfig;
use lamplighter_sip_mwi::summary::Counts;
use lamplighter_sip_notify::NotifySender;
use lamplighter_sip_notify::subscriptions::{SubscriptionEvent, serve};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A stretch of network between the softphone and us: a UDP relay that
/// delays every datagram by `delay` both ways. baresip 1.0.0 loops on
/// SUBSCRIBE forever when its REGISTER succeeds within 1 ms of starting
/// (its mwi start timer iterates a list it appends to), which only a
/// registrar on the same host can answer; a real network never does.
async fn network(to: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("front"));
    let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("back"));
    let addr = front.local_addr().expect("addr");
    let client: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::new(Mutex::new(None));
    let (f, b, c) = (front.clone(), back.clone(), client.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = f.recv_from(&mut buf).await {
            *c.lock().expect("lock") = Some(from);
            let (data, b) = (buf[..n].to_vec(), b.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = b.send_to(&data, to).await;
            });
        }
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = back.recv_from(&mut buf).await {
            let Some(dest) = *client.lock().expect("lock") else { continue };
            let (data, f) = (buf[..n].to_vec(), front.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = f.send_to(&data, dest).await;
            });
        }
    });
    addr
}

/// Kills the softphone however the test ends, so a failure leaks no process.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()).expect("port")
}

#[tokio::test(flavor = "multi_thread")]
async fn baresip_subscribes_and_shows_the_lamp_on_and_off() {
    let sender = Arc::new(NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind"));
    let ours = network(sender.local_addr(), Duration::from_millis(5)).await;
    let subs = serve(sender.clone(), vec!["sip:613@127.0.0.1".into()], NotifierConfig::default()).expect("serve");
    let mut events = subs.events();
    subs.set_counts(Counts { new: 3, old: 2, urgent_new: 1, urgent_old: 0 });

    let dir = tempfile::tempdir().expect("config dir");
    let port = free_udp_port();
    std::fs::write(
        dir.path().join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\nmodule_path /usr/lib/baresip/modules\n\
             module_app account.so\nmodule_app menu.so\nmodule_app mwi.so\n"
        ),
    )
    .expect("config");
    std::fs::write(
        dir.path().join("accounts"),
        format!("<sip:613@127.0.0.1>;auth_pass=unused;outbound=\"sip:{ours}\";regint=600\n"),
    )
    .expect("accounts");
    let mut baresip = Command::new("baresip")
        .args(std::env::var("BARESIP_TRACE").map(|_| vec!["-s"]).unwrap_or_default())
        .arg("-f")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .expect("baresip not found: run ./dev.sh setup");
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        baresip.0.stdout.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        baresip.0.stderr.take().map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut o = output.lock().expect("lock");
                o.push_str(&line);
                o.push('\n');
            }
        });
    }
    let wait_for = |needle: &str, after: usize| {
        let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(30));
        loop {
            let text = output.lock().expect("lock").clone();
            if let Some(pos) = text[after.min(text.len())..].find(needle) {
                return after + pos + needle.len();
            }
            assert!(Instant::now() < end, "baresip never reported {needle:?}; its output:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let on = wait_for("Voice-Message: 3/2 (1/0)", 0);
    let text = output.lock().expect("lock").clone();
    assert!(text[..on].contains("Messages-Waiting: yes"), "{text}");
    subs.set_counts(Counts { new: 0, old: 5, urgent_new: 0, urgent_old: 0 });
    let off = wait_for("Voice-Message: 0/5 (0/0)", on);
    let text = output.lock().expect("lock").clone();
    assert!(text[on..off].contains("Messages-Waiting: no"), "{text}");

    // our side saw the REGISTER, a 200 to the SUBSCRIBE and 2xx to the NOTIFYs
    // (baresip prints a NOTIFY before our side has its 200: wait for both answers)
    let mut seen = Vec::new();
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    while seen.iter().filter(|e| matches!(e, SubscriptionEvent::Notified { code: Some(200..=299), .. })).count() < 2
        && Instant::now() < end
    {
        match events.try_recv() {
            Ok(e) => seen.push(e),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    assert!(seen.iter().any(|e| matches!(e, SubscriptionEvent::Registered { .. })), "{seen:?}");
    assert!(seen.iter().any(|e| matches!(e, SubscriptionEvent::Answered { code: 200, .. })), "{seen:?}");
    assert!(
        seen.iter().filter(|e| matches!(e, SubscriptionEvent::Notified { code: Some(200..=299), .. })).count() >= 2,
        "{seen:?}"
    );
    drop(baresip);
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

/// baresip listening for TLS (on its SIP port + 1) with `cert`; returns the TLS port.
fn baresip_tls(dir: &std::path::Path, cert: &std::path::Path) -> (KillOnDrop, u16) {
    let port = free_udp_port();
    let conf = dir.join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(
        conf.join("config"),
        format!("poll_method epoll\nsip_listen 127.0.0.1:{port}\nsip_certificate {}\nmodule_path /usr/lib/baresip/modules\nmodule_app account.so\n", cert.display()),
    )
    .expect("config");
    std::fs::write(conf.join("accounts"), "<sip:613@127.0.0.1>;regint=0\n").expect("accounts");
    let child = Command::new("baresip")
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
    while std::net::TcpStream::connect(("127.0.0.1", tls)).is_err() {
        assert!(Instant::now() < end, "baresip did not listen for TLS on {tls}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, tls)
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
