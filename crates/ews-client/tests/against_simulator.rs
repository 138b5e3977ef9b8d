//! The client against the Exchange simulator over real sockets (loopback).
//! Every request the client sends is validated by the simulator against the
//! official EWS schema with xmllint; each test ends by checking that none
//! was refused.

use lamplighter_ews_client::driver::{self, DriverConfig};
use lamplighter_ews_client::{ClientConfig, ClientError, Credentials, EwsClient, Password, RetryPolicy, SignIn};
use lamplighter_ews_sim::{AuthSchemes, MissedCall, SimConfig, Simulator, Validation, Voicemail};
use lamplighter_mailbox::{Connection, FileState, MailboxEvent, MemoryState, StateStore};
use lamplighter_mailbox_sync::{Change, Mode, SyncConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const USER: &str = "mara";
const PASSWORD: &str = "Sommer2026!";

fn sim_config() -> SimConfig {
    let v = Validation::embedded();
    assert!(matches!(v, Validation::Schema(_)), "the vendored schema must be found");
    SimConfig { heartbeat: Duration::from_secs(2), ..SimConfig::default() }
}

fn client_config(sim: &Simulator, creds: Credentials) -> ClientConfig {
    let mut c = ClientConfig::new("mara@example.test", creds);
    c.ews_url = Some(sim.ews_url());
    c.stream_idle_timeout = Duration::from_secs(10);
    c.retry = RetryPolicy {
        attempts: 4,
        initial: Duration::from_millis(100),
        max: Duration::from_secs(1),
        max_server_back_off: Duration::from_secs(10),
    };
    c
}

fn basic() -> Credentials {
    Credentials::Basic { user: USER.into(), password: Password::new(PASSWORD) }
}

fn fast_driver() -> DriverConfig {
    DriverConfig {
        sync: SyncConfig {
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            ..SyncConfig::default()
        },
        ..DriverConfig::default()
    }
}

fn assert_all_valid(sim: &Simulator) {
    let served = sim.served();
    let bad: Vec<_> = served.iter().filter(|s| !s.schema_valid).collect();
    assert!(bad.is_empty(), "requests refused by the schema: {bad:?}");
}

fn voicemail(n: u32) -> Voicemail {
    Voicemail {
        caller_number: format!("+49 5251 30{n:04}"),
        caller_name: Some(format!("Caller {n}")),
        duration_secs: 5 + n % 60,
        urgent: n.is_multiple_of(7),
        audio: Some(("audio.wav".into(), "audio/wav".into(), vec![(n % 251) as u8; 64])),
        ..Voicemail::default()
    }
}

/// Applies the driver's events to a model of the mailbox.
struct Model {
    rx: mpsc::Receiver<MailboxEvent>,
    items: HashMap<String, bool>,
    added: HashMap<String, u32>,
    statuses: Vec<Connection>,
    resets: u32,
}

impl Model {
    fn new(rx: mpsc::Receiver<MailboxEvent>) -> Self {
        Model { rx, items: HashMap::new(), added: HashMap::new(), statuses: Vec::new(), resets: 0 }
    }

    fn apply(&mut self, e: MailboxEvent) {
        let e = match e {
            MailboxEvent::Change(c) => Ok(*c),
            MailboxEvent::Connection(s) => Err(s),
        };
        match e {
            Ok(Change::Added(i)) => {
                *self.added.entry(i.id.id.clone()).or_default() += 1;
                self.items.insert(i.id.id, i.is_read.unwrap_or(false));
            }
            Ok(Change::Updated(i)) => {
                self.items.insert(i.id.id, i.is_read.unwrap_or(false));
            }
            Ok(Change::ReadChanged { id, is_read }) => {
                self.items.insert(id.id, is_read);
            }
            Ok(Change::Removed(id)) => {
                self.items.remove(&id.id);
            }
            Ok(Change::Reset) => {
                self.resets += 1;
                self.items.clear();
            }
            Err(s) => self.statuses.push(s),
        }
    }

    /// Processes events until `done` holds (true) or `limit` passes (false).
    async fn until(&mut self, limit: Duration, done: impl Fn(&Model) -> bool) -> bool {
        let end = tokio::time::Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            match tokio::time::timeout_at(end, self.rx.recv()).await {
                Ok(Some(e)) => self.apply(e),
                Ok(None) | Err(_) => return done(self),
            }
        }
    }

    fn live(&self) -> bool {
        self.statuses.last() == Some(&Connection::Live)
    }

    fn matches(&self, sim: &Simulator) -> bool {
        let want: HashMap<String, bool> = sim.items().into_iter().map(|(id, _, read)| (id, read)).collect();
        self.items == want
    }
}

async fn start(
    sim: &Simulator,
    creds: Credentials,
    state: Arc<dyn StateStore>,
    cfg: DriverConfig,
) -> (Arc<EwsClient>, driver::SyncHandle, Model) {
    let client = Arc::new(EwsClient::connect(client_config(sim, creds)).await.expect("client"));
    let (tx, rx) = mpsc::channel(1024);
    let handle = driver::spawn(client.clone(), state, cfg, tx);
    (client, handle, Model::new(rx))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_load_of_5000_items_is_complete_and_paged() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    for n in 0..5000 {
        if n % 5 < 3 {
            sim.deposit_voicemail(voicemail(n));
        } else {
            sim.deposit_missed_call(MissedCall { caller_number: format!("+49 30 {n:06}"), ..MissedCall::default() });
        }
    }
    let (client, handle, mut model) = start(&sim, basic(), Arc::new(MemoryState::default()), fast_driver()).await;
    assert!(
        model.until(Duration::from_secs(240), |m| m.live() && m.items.len() == 5000).await,
        "loaded {}",
        model.items.len()
    );
    assert!(model.matches(&sim));
    assert!(model.added.values().all(|&n| n == 1), "each item announced once");
    let syncs = sim.served().iter().filter(|s| s.op == "SyncFolderItems").count();
    assert!(syncs >= 10, "5,000 changes need at least 10 pages of 512, saw {syncs}");
    // FindItem pages through the voicemail search folder too
    let vms = client.find_all("voicemail", 1000).await.expect("find");
    assert_eq!(vms.len(), 3000);
    assert!(vms.iter().all(|i| i.item_class.as_deref() == Some("IPM.Note.Microsoft.Voicemail.UM.CA")));
    handle.stop().await;
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voicemail_deposited_while_streaming_is_announced_with_its_properties() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let (_client, handle, mut model) = start(&sim, basic(), Arc::new(MemoryState::default()), fast_driver()).await;
    assert!(model.until(Duration::from_secs(20), Model::live).await);
    assert!(model.until(Duration::from_secs(10), |_| sim.open_streams() == 1).await, "the stream is open");
    let id =
        sim.deposit_voicemail(Voicemail { transcription: Some("Bitte rufen Sie zurück.".into()), ..voicemail(7) });
    let mut seen = None;
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    while seen.is_none() && Instant::now() < end {
        if let Ok(Some(MailboxEvent::Change(c))) = tokio::time::timeout(Duration::from_secs(10), model.rx.recv()).await
            && let Change::Added(i) = *c
        {
            seen = Some(i);
        }
    }
    let item = seen.expect("announced");
    assert_eq!(item.id.id, id);
    assert_eq!(item.um.duration_secs, Some(12));
    assert_eq!(item.um.caller_number.as_deref(), Some("+49 5251 300007"));
    assert_eq!(item.importance.as_deref(), Some("High"));
    assert_eq!(item.attachments.len(), 1, "GetItem enriched the item with its audio attachment");
    assert_eq!(item.text_body.as_deref(), Some("Bitte rufen Sie zurück."), "and its body (the transcription)");
    handle.stop().await;
    assert_eq!(sim.subscriptions(), 0, "stopping unsubscribes");
    // affinity: the stream went with X-AnchorMailbox, X-PreferServerAffinity and the backend cookie of Subscribe
    let streams: Vec<_> = sim.served().into_iter().filter(|s| s.op == "GetStreamingEvents").collect();
    assert!(!streams.is_empty() && streams.iter().all(|s| s.anchor && s.cookie), "{streams:?}");
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_dropped_connections_while_items_arrive_are_read_and_deleted() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let mut ids: Vec<String> = (0..10).map(|n| sim.deposit_voicemail(voicemail(n))).collect();
    let (_client, handle, mut model) = start(&sim, basic(), Arc::new(MemoryState::default()), fast_driver()).await;
    assert!(model.until(Duration::from_secs(20), |m| m.live() && m.items.len() == 10).await);
    let streams_served = |sim: &Simulator| sim.served().iter().filter(|s| s.op == "GetStreamingEvents").count();
    let mut dropped_at = 0;
    for round in 0..20u32 {
        // each round drops a stream the client opened after the last drop
        assert!(
            model
                .until(Duration::from_secs(20), |_| streams_served(&sim) > dropped_at && sim.open_streams() == 1)
                .await,
            "round {round}: no new stream"
        );
        dropped_at = streams_served(&sim);
        ids.push(sim.deposit_voicemail(voicemail(100 + round)));
        sim.drop_streams();
        ids.push(
            sim.deposit_missed_call(MissedCall {
                caller_number: format!("+49 89 {round:04}"),
                ..MissedCall::default()
            }),
        );
        sim.set_read(&ids[round as usize], true);
        if round % 3 == 0 {
            let victim = ids.remove(0);
            sim.delete(&victim);
        }
    }
    assert!(
        model
            .until(Duration::from_secs(60), |m| m.live()
                && m.matches(&sim)
                && streams_served(&sim) > dropped_at
                && sim.open_streams() == 1)
            .await,
        "client {} items, simulator {}",
        model.items.len(),
        sim.items().len()
    );
    let twice: Vec<_> = model.added.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "announced more than once: {twice:?}");
    assert_eq!(model.added.len(), 10 + 40, "every item that ever existed was announced");
    let streams = sim.served().iter().filter(|s| s.op == "GetStreamingEvents").count();
    assert!(streams >= 21, "the stream was dropped 20 times and reopened: {streams}");
    assert!(model.statuses.iter().any(|s| matches!(s, Connection::Reconnecting { .. })));
    assert_eq!(sim.subscriptions(), 1, "each resubscription ended the subscription before it");
    handle.stop().await;
    assert_eq!(sim.subscriptions(), 0);
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_forgets_subscriptions_and_the_client_recovers() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let (_client, handle, mut model) = start(&sim, basic(), Arc::new(MemoryState::default()), fast_driver()).await;
    assert!(model.until(Duration::from_secs(20), Model::live).await);
    let subscribes_before = sim.served().iter().filter(|s| s.op == "Subscribe").count();
    sim.restart();
    let id = sim.deposit_voicemail(voicemail(1));
    assert!(model.until(Duration::from_secs(20), |m| m.items.contains_key(&id) && m.live()).await);
    let subscribes_after = sim.served().iter().filter(|s| s.op == "Subscribe").count();
    assert!(subscribes_after > subscribes_before, "subscribed anew");
    assert_eq!(sim.subscriptions(), 1);
    assert!(
        model.statuses.iter().any(|s| matches!(s, Connection::Reconnecting { .. })),
        "the outage was reported: {:?}",
        model.statuses
    );
    handle.stop().await;
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_waits_at_least_the_servers_back_off() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    sim.deposit_voicemail(voicemail(1));
    let client = EwsClient::connect(client_config(&sim, basic())).await.expect("client");
    sim.throttle(2, Duration::from_millis(1200));
    let t = Instant::now();
    let items = client.find_all("voicemail", 100).await.expect("after the back-off");
    assert_eq!(items.len(), 1);
    assert!(t.elapsed() >= Duration::from_millis(2400), "waited {:?}", t.elapsed());
    let finds: Vec<u16> = sim.served().iter().filter(|s| s.op == "FindItem").map(|s| s.status).collect();
    assert_eq!(finds, [500, 500, 200]);
    // a back-off longer than we wait inside a call comes back as a typed error, after one request
    sim.throttle(1, Duration::from_secs(300));
    let before = sim.served().len();
    match client.find_all("voicemail", 100).await {
        Err(ClientError::Throttled(d)) => assert_eq!(d, Duration::from_secs(300)),
        other => panic!("expected Throttled, got {other:?}"),
    }
    assert_eq!(sim.served().len(), before + 1);
    assert_all_valid(&sim);
}

/// Exchange Online's form of throttling: HTTP 200 with an ErrorServerBusy
/// response message and its BackOffMilliseconds; honoured like the fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_body_throttling_waits_the_back_off_too() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    sim.deposit_voicemail(voicemail(1));
    let client = EwsClient::connect(client_config(&sim, basic())).await.expect("client");
    sim.throttle_in_body(1, Duration::from_millis(1500));
    let t = Instant::now();
    let items = client.find_all("voicemail", 100).await.expect("after the back-off");
    assert_eq!(items.len(), 1);
    assert!(t.elapsed() >= Duration::from_millis(1500), "waited {:?}", t.elapsed());
    let finds: Vec<u16> = sim.served().iter().filter(|s| s.op == "FindItem").map(|s| s.status).collect();
    assert_eq!(finds, [200, 200], "the busy answer (HTTP 200), then the result");
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_one_auth_error_and_no_retry_storm() {
    for (scheme, ntlm) in [("basic", false), ("ntlm", true)] {
        let sim = Simulator::start(sim_config()).await.expect("sim");
        let wrong = if ntlm {
            Credentials::Ntlm { user: "EXAMPLE\\mara".into(), password: Password::new("Winter2026!") }
        } else {
            Credentials::Basic { user: USER.into(), password: Password::new("Winter2026!") }
        };
        let client = EwsClient::connect(client_config(&sim, wrong.clone())).await.expect("client");
        assert!(matches!(client.find_all("inbox", 10).await, Err(ClientError::Auth { .. })), "{scheme}");
        assert_eq!(sim.auth_failures(), 1, "{scheme}: one attempt");
        // the driver stops at the refusal and waits for new credentials
        let (_c, handle, mut model) = start(&sim, wrong, Arc::new(MemoryState::default()), fast_driver()).await;
        assert!(
            model
                .until(Duration::from_secs(10), |m| matches!(m.statuses.last(), Some(Connection::SignInRefused { .. })))
                .await
        );
        model.until(Duration::from_secs(2), |_| false).await;
        assert_eq!(sim.auth_failures(), 2, "{scheme}: the driver tried once and waits");
        handle.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_sign_in_works_for_requests_and_the_stream() {
    let sim = Simulator::start(SimConfig {
        auth: AuthSchemes { basic: false, ntlm: true, negotiate_only: false, bearer_tokens: vec![], kerberos: None },
        ..sim_config()
    })
    .await
    .expect("sim");
    let creds = Credentials::Ntlm { user: "EXAMPLE\\mara".into(), password: Password::new(PASSWORD) };
    // Basic is not offered: said so, with what is
    let plain = EwsClient::connect(client_config(&sim, basic())).await.expect("client");
    let e = plain.find_all("inbox", 10).await.expect_err("refused");
    assert!(matches!(e, ClientError::SchemeNotOffered { .. }), "{e:?}");
    assert!(e.to_string().ends_with("does not offer Basic sign-in; it offers Negotiate, NTLM"), "{e}");
    let (_client, handle, mut model) = start(&sim, creds, Arc::new(MemoryState::default()), fast_driver()).await;
    assert!(model.until(Duration::from_secs(20), Model::live).await);
    let id = sim.deposit_voicemail(voicemail(3));
    assert!(model.until(Duration::from_secs(10), |m| m.items.contains_key(&id)).await);
    // one handshake per connection: the request connection and the stream's
    let challenges = sim.served().iter().filter(|s| s.status == 401).count();
    assert!((2..=4).contains(&challenges), "NTLM handshakes: {challenges}");
    handle.stop().await;
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth2_bearer_refreshes_a_stale_token_once() {
    let sim = Simulator::start(SimConfig {
        auth: AuthSchemes {
            basic: false,
            ntlm: false,
            negotiate_only: false,
            bearer_tokens: vec!["fresh-token".into()],
            kerberos: None,
        },
        ..sim_config()
    })
    .await
    .expect("sim");
    sim.deposit_voicemail(voicemail(1));
    let provider: lamplighter_ews_client::TokenProvider = Arc::new(|refresh| {
        Box::pin(async move { Ok(Password::new(if refresh { "fresh-token" } else { "stale-token" })) })
    });
    let client = EwsClient::connect(client_config(&sim, Credentials::Bearer(provider))).await.expect("client");
    assert_eq!(client.find_all("inbox", 10).await.expect("find").len(), 1);
    let bad: lamplighter_ews_client::TokenProvider = Arc::new(|_| Box::pin(async { Ok(Password::new("revoked")) }));
    let client = EwsClient::connect(client_config(&sim, Credentials::Bearer(bad))).await.expect("client");
    assert!(matches!(client.find_all("inbox", 10).await, Err(ClientError::Auth { .. })));
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_read_and_download_the_audio() {
    for layout_2007 in [false, true] {
        mark_read_and_download(layout_2007).await;
    }
}

/// `layout_2007`: the server answers GetAttachment as Exchange 2007 does.
async fn mark_read_and_download(layout_2007: bool) {
    let sim = Simulator::start(SimConfig { attachments_2007: layout_2007, ..sim_config() }).await.expect("sim");
    let audio: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let id = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        duration_secs: 42,
        audio: Some(("vm.wav".into(), "audio/wav".into(), audio.clone())),
        ..Voicemail::default()
    });
    let client = EwsClient::connect(client_config(&sim, basic())).await.expect("client");
    let item = client.find_all("voicemail", 10).await.expect("find").remove(0);
    let full = client.get_items(std::slice::from_ref(&item.id)).await.expect("get").remove(0);
    let dir = tempfile::tempdir().expect("tmp");
    let dest = dir.path().join("vm.wav");
    let mut progress = Vec::new();
    let meta =
        client.download_attachment(&full.attachments[0].id, &dest, |n| progress.push(n)).await.expect("download");
    assert_eq!(std::fs::read(&dest).expect("file"), audio);
    assert_eq!(meta.content_type.as_deref(), Some("audio/wav"));
    assert_eq!(progress.last(), Some(&200_000));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&dest).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    // an unknown attachment is an error and leaves no file behind
    let missing = dir.path().join("missing.wav");
    assert!(client.download_attachment("AAMkNoSuchAttachment=", &missing, |_| {}).await.is_err());
    assert!(!missing.exists() && !missing.with_extension("part").exists());
    let new_id = client.mark_read(&item.id, true).await.expect("mark read");
    assert_ne!(new_id.change_key, item.id.change_key);
    assert!(sim.items().iter().any(|(i, _, read)| *i == id && *read));
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_lamplighter_neither_misses_nor_reannounces() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let old: Vec<String> = (0..5).map(|n| sim.deposit_voicemail(voicemail(n))).collect();
    let dir = tempfile::tempdir().expect("tmp");
    let state: Arc<dyn StateStore> = Arc::new(FileState(dir.path().join("sync-state")));
    let (_c, handle, mut model) = start(&sim, basic(), state.clone(), fast_driver()).await;
    assert!(model.until(Duration::from_secs(20), |m| m.live() && m.items.len() == 5).await);
    handle.stop().await;
    // while Lamplighter is not running
    let new: Vec<String> = (10..12).map(|n| sim.deposit_voicemail(voicemail(n))).collect();
    sim.set_read(&old[0], true);
    sim.delete(&old[1]);
    let (_c, handle, mut model) = start(&sim, basic(), state, fast_driver()).await;
    assert!(model.until(Duration::from_secs(20), |m| m.live() && m.added.len() == 2).await);
    model.until(Duration::from_millis(500), |_| false).await;
    let mut added: Vec<&String> = model.added.keys().collect();
    added.sort();
    let mut want: Vec<&String> = new.iter().collect();
    want.sort();
    assert_eq!(added, want, "only what arrived meanwhile is new");
    assert_eq!(model.items.get(&old[0]), Some(&true), "the read flag changed meanwhile");
    handle.stop().await;
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_sync_state_resets_instead_of_reannouncing_silently() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    for n in 0..3 {
        sim.deposit_voicemail(voicemail(n));
    }
    let (_c, handle, mut model) = start(&sim, basic(), Arc::new(MemoryState::default()), fast_driver()).await;
    assert!(model.until(Duration::from_secs(20), |m| m.live() && m.items.len() == 3).await);
    sim.forget_sync_states();
    sim.deposit_voicemail(voicemail(9));
    assert!(model.until(Duration::from_secs(20), |m| m.resets == 1 && m.matches(&sim) && m.live()).await);
    handle.stop().await;
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_subscriptions_poll_with_watermarks() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    let cfg = DriverConfig {
        sync: SyncConfig { mode: Mode::Pull { interval: Duration::from_millis(200) }, ..fast_driver().sync },
        ..DriverConfig::default()
    };
    let (_c, handle, mut model) = start(&sim, basic(), Arc::new(MemoryState::default()), cfg).await;
    assert!(model.until(Duration::from_secs(20), Model::live).await);
    let id = sim.deposit_voicemail(voicemail(1));
    assert!(model.until(Duration::from_secs(10), |m| m.items.contains_key(&id)).await);
    sim.set_read(&id, true);
    assert!(model.until(Duration::from_secs(10), |m| m.items.get(&id) == Some(&true)).await);
    assert!(sim.served().iter().any(|s| s.op == "GetEvents" && s.status == 200));
    assert_eq!(sim.open_streams(), 0);
    handle.stop().await;
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autodiscover_over_verified_https_with_redirects() {
    let sim = Simulator::start(SimConfig {
        tls: true,
        tls_names: vec!["example.test".into(), "autodiscover.example.test".into()],
        redirect_addresses: vec![("m.whitley@example.test".into(), "mara@example.test".into())],
        ..sim_config()
    })
    .await
    .expect("sim");
    // example.test itself does not answer; autodiscover.example.test is the simulator
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    let mut cfg = ClientConfig::new("m.whitley@example.test", basic());
    cfg.resolve.insert("example.test".into(), closed);
    cfg.resolve.insert("autodiscover.example.test".into(), sim.addr());
    cfg.extra_ca_pem = Some(sim.ca_pem().expect("ca").as_bytes().to_vec());
    cfg.connect_timeout = Duration::from_secs(2);
    let client = EwsClient::connect(cfg.clone()).await.expect("autodiscover");
    assert_eq!(client.ews_url(), sim.ews_url());
    let ops: Vec<String> = sim.served().iter().map(|s| s.op.clone()).collect();
    assert!(ops.iter().any(|o| o.ends_with("autodiscover.svc")), "SOAP first: {ops:?}");
    sim.deposit_voicemail(voicemail(1));
    assert_eq!(client.find_all("voicemail", 10).await.expect("find over https").len(), 1);
    // verification is never off: without the simulator's CA, nothing is sent
    let mut untrusted = cfg.clone();
    untrusted.extra_ca_pem = None;
    match EwsClient::connect(untrusted).await {
        Err(ClientError::Autodiscover { tried, .. }) => assert!(tried.contains("TLS"), "{tried}"),
        Err(other) => panic!("expected an Autodiscover error naming TLS, got {other}"),
        Ok(_) => panic!("an untrusted certificate must not be accepted"),
    }
    // an unknown address is a clear error
    let mut unknown = cfg;
    unknown.email = "nobody@example.test".into();
    assert!(matches!(EwsClient::connect(unknown).await, Err(ClientError::Autodiscover { .. })));
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_travel_over_plain_http_to_other_hosts() {
    let mut cfg = ClientConfig::new("mara@example.test", basic());
    cfg.ews_url = Some("http://mail.example.test/EWS/Exchange.asmx".into());
    let client = EwsClient::connect(cfg).await.expect("client");
    assert!(matches!(client.find_all("inbox", 1).await, Err(ClientError::Insecure { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_failures_are_typed_and_retried_within_bounds() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    sim.deposit_voicemail(voicemail(1));
    let client = EwsClient::connect(client_config(&sim, basic())).await.expect("client");
    // an overloaded server: two 503s, then it answers
    sim.fail_http(2, 503);
    assert_eq!(client.find_all("inbox", 10).await.expect("after retries").len(), 1);
    // 429 with Retry-After: 1 s is waited
    sim.fail_http(1, 429);
    let t = Instant::now();
    client.find_all("inbox", 10).await.expect("after Retry-After");
    assert!(t.elapsed() >= Duration::from_secs(1));
    // a server that keeps failing: the attempts are bounded (4) and the error is typed
    let before = sim.served().len();
    sim.fail_http(10, 502);
    match client.find_all("inbox", 10).await {
        Err(ClientError::Http { status: 502, .. }) => {}
        other => panic!("expected HTTP 502, got {other:?}"),
    }
    assert_eq!(sim.served().len() - before, 4);
    sim.fail_http(0, 0);
    // 403 is not retried
    let before = sim.served().len();
    sim.fail_http(1, 403);
    assert!(matches!(client.find_all("inbox", 10).await, Err(ClientError::Forbidden { .. })));
    assert_eq!(sim.served().len() - before, 1);
    assert_all_valid(&sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_autodiscover_result_is_cached() {
    let sim =
        Simulator::start(SimConfig { tls: true, tls_names: vec!["autodiscover.example.test".into()], ..sim_config() })
            .await
            .expect("sim");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = ClientConfig::new("mara@example.test", basic());
    cfg.resolve.insert("example.test".into(), closed);
    cfg.resolve.insert("autodiscover.example.test".into(), sim.addr());
    cfg.extra_ca_pem = Some(sim.ca_pem().expect("ca").as_bytes().to_vec());
    cfg.autodiscover_cache = Some(dir.path().join("autodiscover.cache"));
    let first = EwsClient::connect(cfg.clone()).await.expect("discovered");
    let asked = |sim: &Simulator| sim.served().iter().filter(|s| s.op.starts_with("/autodiscover")).count();
    let n = asked(&sim);
    assert!(n >= 1);
    let second = EwsClient::connect(cfg).await.expect("cached");
    assert_eq!(second.ews_url(), first.ews_url());
    assert_eq!(asked(&sim), n, "the second start asked nobody");
}

/// A server that offers only `Negotiate` (IIS with the NTLM provider
/// removed): NTLM credentials sign in with the NTLM tokens under Negotiate,
/// for requests and the stream; Basic is told it is not offered, and a
/// wrong password names what was tried and what is offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negotiate_only_server_takes_ntlm_under_negotiate() {
    let sim = Simulator::start(SimConfig {
        auth: AuthSchemes { basic: false, ntlm: true, negotiate_only: true, bearer_tokens: vec![], kerberos: None },
        ..sim_config()
    })
    .await
    .expect("sim");
    let creds = Credentials::Ntlm { user: "EXAMPLE\\mara".into(), password: Password::new(PASSWORD) };
    let client = EwsClient::connect(client_config(&sim, creds.clone())).await.expect("client");
    client.find_all("inbox", 10).await.expect("signed in with Negotiate");
    let (_c, handle, mut model) = start(&sim, creds, Arc::new(MemoryState::default()), fast_driver()).await;
    assert!(model.until(Duration::from_secs(20), Model::live).await, "the stream signs in too");
    handle.stop().await;

    let plain = EwsClient::connect(client_config(&sim, basic())).await.expect("client");
    let e = plain.find_all("inbox", 10).await.expect_err("no Basic");
    assert!(e.to_string().ends_with("does not offer Basic sign-in; it offers Negotiate"), "{e}");
    let wrong = Credentials::Ntlm { user: "EXAMPLE\\mara".into(), password: Password::new("Winter2026!") };
    let e = EwsClient::connect(client_config(&sim, wrong)).await.expect("client").find_all("inbox", 10).await;
    let text = e.expect_err("wrong password").to_string();
    assert!(text.contains("refused (NTLM under Negotiate; the server offers Negotiate)"), "{text}");
    assert_all_valid(&sim);
}

/// `negotiate` and `auto` without a Kerberos ticket (this test process has
/// no ticket cache; the real-KDC tests are in `lamplighter-cli`'s
/// `kerberos.rs`): the saved password signs in with what the server offers,
/// best first, and the client says which; nothing offered is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negotiate_and_auto_fall_back_to_what_the_server_offers() {
    let schemes = |basic, ntlm, negotiate_only| AuthSchemes {
        basic,
        ntlm,
        negotiate_only,
        bearer_tokens: vec![],
        kerberos: None,
    };
    let password = || Some(Password::new(PASSWORD));
    let negotiate = Credentials::Negotiate { user: "EXAMPLE\\mara".into(), password: password() };
    let auto = Credentials::Auto { user: "EXAMPLE\\mara".into(), password: password() };
    for (offered, creds, want) in [
        (schemes(false, true, true), negotiate.clone(), Ok(SignIn::NtlmUnderNegotiate)),
        (schemes(true, true, false), negotiate.clone(), Ok(SignIn::Ntlm)),
        (schemes(true, true, false), auto.clone(), Ok(SignIn::Ntlm)),
        (schemes(true, false, false), auto.clone(), Ok(SignIn::Basic)),
        (
            schemes(true, false, false),
            negotiate.clone(),
            Err("does not offer Kerberos or NTLM sign-in; it offers Basic"),
        ),
    ] {
        let sim = Simulator::start(SimConfig { auth: offered.clone(), ..sim_config() }).await.expect("sim");
        let client = EwsClient::connect(client_config(&sim, creds.clone())).await.expect("client");
        match (client.find_all("voicemail", 10).await, want) {
            (Ok(_), Ok(how)) => assert_eq!(client.sign_in(), Some(how), "{offered:?} {creds:?}"),
            (Err(e), Err(text)) => assert!(e.to_string().ends_with(text), "{offered:?} {creds:?}: {e}"),
            (got, want) => panic!("{offered:?} {creds:?}: got {:?}, want {want:?}", got.map(|_| ())),
        }
        assert_all_valid(&sim);
    }
    // a wrong saved password under `auto` is a refused sign-in, not a loop through the schemes
    let sim = Simulator::start(SimConfig { auth: schemes(true, true, false), ..sim_config() }).await.expect("sim");
    let wrong = Credentials::Auto { user: "EXAMPLE\\mara".into(), password: Some(Password::new("Winter2026!")) };
    let e = EwsClient::connect(client_config(&sim, wrong)).await.expect("client").find_all("inbox", 10).await;
    assert!(matches!(e, Err(ClientError::Auth { scheme: "NTLM", .. })), "{e:?}");
    assert_eq!(sim.auth_failures(), 1, "one attempt");
}

/// What a reverse proxy with pre-authentication (or a captive portal) does
/// to a POST: a login page with 200, or a redirect to one.
async fn login_page_server(answer: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_login_page_is_named_as_such() {
    const PAGE: &str = "<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>…</form></body></html>";
    let ok_html = Box::leak(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
            PAGE.len()
        )
        .into_boxed_str(),
    );
    let redirect = "HTTP/1.1 302 Found\r\nLocation: https://login.example.test/adfs/ls/?wa=wsignin1.0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    for (answer, detail) in [
        (&*ok_html, "(HTTP 200, text/html; charset=utf-8)"),
        (redirect, "(HTTP 302 to https://login.example.test/adfs/ls/?wa=wsignin1.0)"),
    ] {
        let addr = login_page_server(answer).await;
        let mut c = ClientConfig::new("mara@example.test", basic());
        c.ews_url = Some(format!("http://{addr}/EWS/Exchange.asmx"));
        let client = EwsClient::connect(c).await.expect("client");
        let e = client.find_all("inbox", 10).await.expect_err("not Exchange");
        assert!(matches!(e, ClientError::NotExchange { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.starts_with("a proxy or login page answered instead of Exchange"), "{text}");
        assert!(text.ends_with(detail), "{text}");
        assert!(!text.contains("DTD"), "{text}");
        assert!(lamplighter_ews_client::hint_for(&e).contains("without pre-authentication"));
    }
}

/// A stop while a request hangs (the server took SyncFolderItems and never
/// answers): the request is abandoned at once, the subscription is ended
/// with one Unsubscribe, and nothing else is sent after the stop. Before,
/// the stop waited for the hung call and its retries (384.7 s measured
/// against such a server, with 3 more requests after SIGTERM). The stop
/// cannot depend on the hung request here: it is never answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_a_hung_request_ends_at_once_with_one_unsubscribe() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    sim.hang("SyncFolderItems");
    let (_client, handle, _model) = start(&sim, basic(), Arc::new(MemoryState::default()), fast_driver()).await;
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    while !sim.served().iter().any(|s| s.op == "SyncFolderItems") {
        assert!(Instant::now() < end, "SyncFolderItems never sent: {:?}", sim.served());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = sim.served().len();
    let stopping = Instant::now();
    tokio::time::timeout(lamplighter_testkit::guard(Duration::from_secs(10)), handle.stop())
        .await
        .expect("the stop does not wait for the hung request");
    eprintln!("stopped {:?} after the stop was asked, with a request hung", stopping.elapsed());
    let after: Vec<String> = sim.served()[before..].iter().map(|s| s.op.clone()).collect();
    assert_eq!(after, vec!["Unsubscribe".to_string()], "one Unsubscribe, nothing else");
    assert_eq!(sim.subscriptions(), 0, "the subscription is gone on the server");
}

/// A server or proxy that takes GetStreamingEvents and sends no headers (a
/// buffering proxy): the status is never "live" meanwhile, and after the
/// second stall the driver polls with a pull subscription, which notices a
/// deposit. Before, it cycled for ever, "syncing", 100 s per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_starts_falls_back_to_polling() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    sim.hang("GetStreamingEvents");
    let cfg = DriverConfig {
        sync: SyncConfig { fallback_poll_interval: Duration::from_millis(200), ..fast_driver().sync },
        stream_start: Duration::from_secs(2),
        ..DriverConfig::default()
    };
    let (_c, handle, mut model) = start(&sim, basic(), Arc::new(MemoryState::default()), cfg).await;
    assert!(model.until(Duration::from_secs(20), |m| m.live()).await, "{:?}", model.statuses);
    let stalls = sim.served().iter().filter(|s| s.op == "GetStreamingEvents").count();
    assert!(stalls <= 2, "at most two stalled streams, then polling: {:?}", model.statuses);
    assert!(
        !model
            .statuses
            .iter()
            .take_while(|c| !matches!(c, Connection::Reconnecting { .. }))
            .any(|c| *c == Connection::Live),
        "never live while the first stream had not started: {:?}",
        model.statuses
    );
    let id = sim.deposit_voicemail(voicemail(1));
    assert!(model.until(Duration::from_secs(10), |m| m.items.contains_key(&id)).await);
    assert!(sim.served().iter().any(|s| s.op == "GetEvents" && s.status == 200));
    handle.stop().await;
    assert_all_valid(&sim);
}

/// A SOAP fault in the stream (ErrorServerBusy with BackOffMilliseconds, as
/// a throttled Exchange sends it) is read, not taken for a dropped line: the
/// driver waits the server's back-off, says why, and streams again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_in_the_stream_is_read_for_its_code_and_back_off() {
    let sim = Simulator::start(sim_config()).await.expect("sim");
    sim.fault_streams(1, Duration::from_secs(4));
    let (_c, handle, mut model) = start(&sim, basic(), Arc::new(MemoryState::default()), fast_driver()).await;
    let waited = |m: &Model| {
        m.statuses.iter().any(|c| {
            matches!(c, Connection::Reconnecting { in_secs, reason } if *in_secs >= 3 && reason.contains("ErrorServerBusy"))
        })
    };
    assert!(model.until(Duration::from_secs(20), waited).await, "{:?}", model.statuses);
    assert!(model.until(Duration::from_secs(30), Model::live).await, "{:?}", model.statuses);
    let id = sim.deposit_voicemail(voicemail(1));
    assert!(model.until(Duration::from_secs(10), |m| m.items.contains_key(&id)).await, "streaming again");
    handle.stop().await;
    assert_all_valid(&sim);
}

/// A service account with the ApplicationImpersonation role reaches each
/// user's mailbox through `ExchangeImpersonation` (and `X-AnchorMailbox`
/// naming that mailbox), sees only that mailbox's items, and without the
/// role gets Exchange's `ErrorImpersonateUserDenied` with what to grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_impersonates_each_mailbox_and_without_the_role_is_told_what_to_grant() {
    let sim = Simulator::start(SimConfig {
        users: vec![("mara".into(), PASSWORD.into()), ("svc-lamp".into(), "Dienst-2026!".into())],
        mailboxes: vec!["ben@example.test".into(), "cem@example.test".into()],
        impersonators: vec!["EXAMPLE\\svc-lamp".into()],
        ..sim_config()
    })
    .await
    .expect("sim");
    let ben = sim.mailbox("Ben@example.test").expect("ben's mailbox");
    let ben_vm = ben.deposit_voicemail(voicemail(1));
    sim.deposit_voicemail(voicemail(2)); // mara's, the primary
    let service = || Credentials::Basic { user: "svc-lamp".into(), password: Password::new("Dienst-2026!") };
    let as_ben = |creds: Credentials| {
        let mut c = client_config(&sim, creds);
        c.email = "ben@example.test".into();
        c.impersonate = true;
        c
    };

    let client = Arc::new(EwsClient::connect(as_ben(service())).await.expect("client"));
    let (tx, rx) = mpsc::channel(64);
    let handle = driver::spawn(client.clone(), Arc::new(MemoryState::default()), fast_driver(), tx);
    let mut model = Model::new(rx);
    assert!(model.until(Duration::from_secs(20), |m| m.live() && m.items.len() == 1).await);
    assert_eq!(model.items.keys().collect::<Vec<_>>(), vec![&ben_vm], "ben's item, not mara's");
    // a deposit into ben's mailbox reaches the stream; one into cem's does not
    sim.mailbox("cem@example.test").expect("cem").deposit_voicemail(voicemail(3));
    let second = ben.deposit_voicemail(voicemail(4));
    assert!(model.until(Duration::from_secs(20), |m| m.items.contains_key(&second)).await, "announced");
    assert_eq!(model.items.len(), 2);
    handle.stop().await;
    let ews: Vec<_> = sim.served().into_iter().filter(|s| !s.op.starts_with('/')).collect();
    assert!(ews.len() >= 4, "{ews:?}");
    assert!(
        ews.iter().all(|s| s.mailbox == "ben@example.test" && s.anchor_mailbox.as_deref() == Some("ben@example.test")),
        "every request reached ben's mailbox and was anchored on it: {ews:?}"
    );
    assert_eq!(sim.subscriptions(), 0, "stopping unsubscribed in ben's mailbox");

    // mara is a user, not the service: impersonation is refused with Exchange's code, and the hint says what to grant
    let denied = EwsClient::connect(as_ben(basic())).await.expect("client");
    let e = denied.find_all("inbox", 10).await.expect_err("denied");
    assert!(e.to_string().contains("ErrorImpersonateUserDenied"), "{e}");
    assert!(lamplighter_ews_client::hint_for(&e).contains("ApplicationImpersonation"), "{e}");
    assert!(!e.is_retryable(), "a missing role is not retried");
    // a mailbox that does not exist is named as such
    let mut nobody = as_ben(service());
    nobody.email = "nobody@example.test".into();
    let e = EwsClient::connect(nobody).await.expect("client").find_all("inbox", 10).await.expect_err("no mailbox");
    assert!(e.to_string().contains("ErrorNonExistentMailbox"), "{e}");
    assert_all_valid(&sim);
}
