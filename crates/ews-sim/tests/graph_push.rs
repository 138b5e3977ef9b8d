//! The Graph face's change notifications with curl as the subscriber (a
//! client we did not write) and a bare HTTPS webhook written here that
//! records what the simulator posts: the validation request, then
//! notification collections checked against the v1.0 CSDL, lifecycle
//! events, renewal, deletion, and Graph's refusals (no HTTPS, a webhook that
//! does not echo, an expiry too far, a mailbox the token may not read).

use lamplighter_ews_sim::{AuthSchemes, LifecycleEvent, SimConfig, Simulator, Voicemail};
use lamplighter_graph_csdl::Csdl;
use serde_json::Value;
use std::sync::{Arc, Mutex};

const TOKEN: &str = "graph-push-token";

/// What the webhook received: (query, body) of each POST.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTPS webhook on loopback; `echo` false answers validation wrongly.
async fn webhook(echo: bool) -> (String, String, Seen) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    params.is_ca = rcgen::IsCa::NoCa;
    let cert = params.self_signed(&key).expect("cert");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .expect("config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://127.0.0.1:{}/hook", listener.local_addr().expect("addr").port());
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let (acceptor, s) = (acceptor.clone(), s.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let s = s.clone();
                    async move {
                        use http_body_util::BodyExt as _;
                        let query = req.uri().query().unwrap_or("").to_string();
                        let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                        s.lock().expect("lock").push((query.clone(), String::from_utf8_lossy(&body).into_owned()));
                        let token = query.strip_prefix("validationToken=").map(percent_decode);
                        let (status, text) = match token {
                            Some(t) if echo => (200, t),
                            Some(_) => (200, "not the token".to_string()),
                            None => (202, String::new()),
                        };
                        let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(text)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (url, cert.pem(), seen)
}

fn percent_decode(t: &str) -> String {
    let b = t.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&t[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn sim(ca: &str) -> Simulator {
    Simulator::start(SimConfig {
        auth: AuthSchemes {
            basic: false,
            ntlm: false,
            negotiate_only: false,
            bearer_tokens: vec![TOKEN.into()],
            kerberos: None,
        },
        mailboxes: vec!["ben@example.test".into()],
        webhook_ca_pem: Some(ca.as_bytes().to_vec()),
        ..SimConfig::default()
    })
    .await
    .expect("sim")
}

/// curl with the token: (status, body).
async fn curl(method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let mut args = vec!["-s", "-w", "\n%{http_code}", "-X", method, "-H"];
    let auth = format!("Authorization: Bearer {TOKEN}");
    args.push(&auth);
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data", b]);
    }
    args.push(url);
    let out = tokio::process::Command::new("curl").args(&args).output().await.expect("curl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), serde_json::from_str(body).unwrap_or(Value::Null))
}

fn in_hours(h: u64) -> String {
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(h * 3600);
    lamplighter_graph_wire::subscription::iso_utc(t)
}

async fn wait_for(seen: &Seen, what: &str, n: usize) -> Vec<(String, String)> {
    let end = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got: Vec<_> = seen.lock().expect("lock").iter().filter(|(q, _)| q.is_empty()).cloned().collect();
        if got.len() >= n {
            return got;
        }
        assert!(tokio::time::Instant::now() < end, "{what}: {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_is_validated_then_notified_renewed_and_told_of_lifecycle_events() {
    let (url, ca, seen) = webhook(true).await;
    let sim = sim(&ca).await;
    let csdl = Csdl::graph_v1();
    let root = sim.graph_url();
    let create = serde_json::json!({
        "changeType": "created,updated,deleted",
        "notificationUrl": url,
        "lifecycleNotificationUrl": url,
        "resource": "/me/messages",
        "expirationDateTime": in_hours(48),
        "clientState": "curl-secret",
    })
    .to_string();
    let (status, sub) = curl("POST", &format!("{root}/subscriptions"), Some(&create)).await;
    assert_eq!(status, 201, "{sub}");
    let mut entity = sub.clone();
    entity.as_object_mut().expect("object").remove("@odata.context");
    csdl.check("microsoft.graph.subscription", &entity).expect("a subscription as the CSDL has it");
    let id = sub["id"].as_str().expect("id").to_string();
    // it was validated first: one POST with a token and no body
    let first = seen.lock().expect("lock")[0].clone();
    assert!(first.0.starts_with("validationToken=") && first.1.is_empty(), "{first:?}");

    // a deposit: one collection, our clientState, a created message
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 1".into(), duration_secs: 3, ..Voicemail::default() });
    let got = wait_for(&seen, "a notification", 1).await;
    let body: Value = serde_json::from_str(&got[0].1).expect("JSON");
    // Graph writes resourceData's type as "#Microsoft.Graph.Message", a name the CSDL does not
    // derive from resourceData: the one deviation, as the real service sends it
    let problems = csdl.check("microsoft.graph.changeNotificationCollection", &body).expect_err("Graph's own naming");
    assert!(
        problems.iter().all(|p| p.contains(".resourceData.@odata.type: \"#Microsoft.Graph.Message\"")),
        "{problems:?}"
    );
    assert_eq!(body["value"].as_array().map(Vec::len), Some(1), "one notification for one new message");
    let n = &body["value"][0];
    assert_eq!((n["subscriptionId"].as_str(), n["clientState"].as_str()), (Some(id.as_str()), Some("curl-secret")));
    assert_eq!(n["changeType"], "created");
    let ours = lamplighter_graph_wire::subscription::parse_notifications(got[0].1.as_bytes()).expect("our reader");
    assert_eq!(ours[0].subscription_id, id);

    // renewal by PATCH; too far is refused as Graph refuses it
    let (status, renewed) = curl(
        "PATCH",
        &format!("{root}/subscriptions/{id}"),
        Some(&format!("{{\"expirationDateTime\":\"{}\"}}", in_hours(72))),
    )
    .await;
    assert_eq!(status, 200, "{renewed}");
    let (status, e) = curl(
        "PATCH",
        &format!("{root}/subscriptions/{id}"),
        Some(&format!("{{\"expirationDateTime\":\"{}\"}}", in_hours(24 * 8))),
    )
    .await;
    assert_eq!(status, 400);
    assert!(e["error"]["message"].as_str().is_some_and(|m| m.contains("10070 minutes")), "{e}");

    // lifecycle: missed, then removed; each a collection the CSDL takes, with no change in it
    assert_eq!(sim.graph_lifecycle("mara@contoso.com", LifecycleEvent::Missed), 0, "not the primary's address");
    let primary = SimConfig::default().email;
    assert_eq!(sim.graph_lifecycle(&primary, LifecycleEvent::Missed), 1);
    let got = wait_for(&seen, "missed", 2).await;
    let body: Value = serde_json::from_str(&got[1].1).expect("JSON");
    csdl.check("microsoft.graph.changeNotificationCollection", &body).expect("CSDL");
    assert_eq!(body["value"][0]["lifecycleEvent"], "missed");
    assert_eq!(sim.graph_lifecycle(&primary, LifecycleEvent::SubscriptionRemoved), 1);
    wait_for(&seen, "subscriptionRemoved", 3).await;
    assert!(sim.graph_subscriptions().is_empty());
    let (status, _) = curl("GET", &format!("{root}/subscriptions/{id}"), None).await;
    assert_eq!(status, 404, "gone");
    // each collection was taken (the count follows the webhook's answer)
    let end = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while sim.graph_deliveries() != (3, 0) {
        assert!(tokio::time::Instant::now() < end, "{:?}", sim.graph_deliveries());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_refuses_what_it_would_refuse() {
    let (bad_url, ca, _) = webhook(false).await;
    let sim = sim(&ca).await;
    let root = format!("{}/subscriptions", sim.graph_url());
    let body = |url: &str, resource: &str, hours: u64| {
        serde_json::json!({
            "changeType": "created",
            "notificationUrl": url,
            "resource": resource,
            "expirationDateTime": in_hours(hours),
        })
        .to_string()
    };
    // a webhook that does not echo the token
    let (status, e) = curl("POST", &root, Some(&body(&bad_url, "/me/messages", 1))).await;
    assert_eq!(status, 400);
    assert!(e["error"]["message"].as_str().is_some_and(|m| m.contains("validation request failed")), "{e}");
    // plain HTTP
    let (status, _) = curl("POST", &root, Some(&body("http://127.0.0.1:9/hook", "/me/messages", 1))).await;
    assert_eq!(status, 400);
    // another user's mailbox with a delegated token
    let (good, _, _) = webhook(true).await;
    let (status, e) = curl("POST", &root, Some(&body(&good, "/users/ben@example.test/messages", 1))).await;
    assert_eq!((status, e["error"]["code"].as_str()), (403, Some("ErrorAccessDenied")), "{e}");
    // no body, a past expiry
    let (status, _) = curl("POST", &root, Some("{}")).await;
    assert_eq!(status, 400);
    let past = serde_json::json!({"changeType":"created","notificationUrl":good,"resource":"/me/messages","expirationDateTime":"2020-01-01T00:00:00Z"});
    let (status, _) = curl("POST", &root, Some(&past.to_string())).await;
    assert_eq!(status, 400);
    assert!(sim.graph_subscriptions().is_empty(), "nothing was made");
}
