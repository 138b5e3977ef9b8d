//! Grouped streaming against the simulator with several mailbox servers:
//! a service account impersonating 450 mailboxes (about 225 a server) keeps them all on
//! `ceil(n / 200)` GetStreamingEvents connections per server, each sent
//! with that server's backend cookie; every deposit reaches its own
//! mailbox's tracking, and after a server restart (every subscription lost)
//! they all come back.

use lamplighter_ews_client::driver::{self, DriverConfig};
use lamplighter_ews_client::group::{HubConfig, StreamHub};
use lamplighter_ews_client::{ClientConfig, Credentials, EwsClient, Password, RetryPolicy};
use lamplighter_ews_sim::{SimConfig, Simulator, Voicemail, backend_of};
use lamplighter_mailbox::{Connection, MailboxEvent, MemoryState};
use lamplighter_mailbox_sync::{Change, SyncConfig};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const N: usize = 450;
const BACKENDS: u32 = 2;
/// Requests in flight at once, for all the mailboxes together.
const SLOTS: usize = 6;

fn address(n: usize) -> String {
    format!("user{n:04}@example.test")
}

type Seen = HashMap<usize, HashSet<String>>;

fn apply((n, e): (usize, MailboxEvent), live: &mut HashSet<usize>, seen: &mut Seen) {
    match e {
        MailboxEvent::Connection(Connection::Live) => {
            live.insert(n);
        }
        MailboxEvent::Connection(_) => {
            live.remove(&n);
        }
        MailboxEvent::Change(c) => {
            if let Change::Added(i) = *c {
                seen.entry(n).or_default().insert(i.id.id);
            }
        }
    }
}

async fn wait_streams(sim: &Simulator, want: u32, guard: Duration) {
    let end = tokio::time::Instant::now() + guard;
    while sim.open_streams() != want {
        assert!(tokio::time::Instant::now() < end, "open streams {} != {want}", sim.open_streams());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_hundred_and_fifty_mailboxes_share_a_connection_per_200_per_server_and_recover_from_a_restart() {
    let sim = Simulator::start(SimConfig {
        users: vec![("svc-lamp".into(), "Dienst-2026!".into())],
        email: "postmaster@example.test".into(),
        mailboxes: (0..N).map(address).collect(),
        impersonators: vec!["svc-lamp".into()],
        backends: BACKENDS,
        heartbeat: Duration::from_secs(2),
        // 450 mailboxes' requests: xmllint per request would take minutes; the
        // group request's schema validity is ews-wire's getstreamingevents-group fixture
        validation: lamplighter_ews_sim::Validation::Off,
        // a server that takes a while per request, so the shared request slots show
        latency: Some(Duration::from_millis(5)),
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let hub = StreamHub::new(HubConfig { settle: Duration::from_millis(200), ..HubConfig::default() });
    let slots = lamplighter_ews_client::RequestSlots::new(SLOTS);
    // the account's connections, shared by every mailbox
    let pool = lamplighter_ews_client::ConnectionPool::new(SLOTS);
    let (tx, mut rx) = mpsc::channel::<(usize, MailboxEvent)>(16 * 1024);
    let mut handles = Vec::new();
    for n in 0..N {
        let mut c = ClientConfig::new(
            address(n),
            Credentials::Basic { user: "svc-lamp".into(), password: Password::new("Dienst-2026!") },
        );
        c.ews_url = Some(sim.ews_url());
        c.impersonate = true;
        c.stream_hub = Some(hub.clone());
        c.request_slots = Some(slots.clone());
        c.connection_pool = Some(pool.clone());
        c.retry = RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_server_back_off: Duration::from_secs(10),
        };
        let client = Arc::new(EwsClient::connect(c).await.expect("client"));
        let (mtx, mut mrx) = mpsc::channel(64);
        let cfg = DriverConfig {
            sync: SyncConfig {
                retry_initial: Duration::from_millis(100),
                retry_max: Duration::from_secs(1),
                ..SyncConfig::default()
            },
            ..DriverConfig::default()
        };
        handles.push(driver::spawn(client, Arc::new(MemoryState::default()), cfg, mtx));
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(e) = mrx.recv().await {
                if tx.send((n, e)).await.is_err() {
                    break;
                }
            }
        });
    }
    let mut live: HashSet<usize> = HashSet::new();
    let mut seen: Seen = HashMap::new();
    let guard = lamplighter_testkit::guard(Duration::from_secs(60));
    let end = tokio::time::Instant::now() + guard;
    while live.len() < N {
        let e = tokio::time::timeout_at(end, rx.recv()).await.expect("every mailbox live in time").expect("events");
        apply(e, &mut live, &mut seen);
    }
    // per server: ceil(n / 200) connections
    let per_backend = (0..BACKENDS).map(|b| (0..N).filter(|n| backend_of(&address(*n), BACKENDS) == b).count());
    let want: u32 = per_backend.map(|k| k.div_ceil(200) as u32).sum();
    wait_streams(&sim, want, guard).await;
    let stats = hub.stats();
    assert_eq!(stats.len(), BACKENDS as usize, "{stats:?}");
    assert_eq!(stats.iter().map(|g| g.subscriptions).sum::<usize>(), N, "{stats:?}");

    // deposits into 20 mailboxes reach exactly their own trackers
    let targets: Vec<usize> = (0..20).map(|k| (k * 37 + 5) % N).collect();
    let mut ids = HashMap::new();
    for &n in &targets {
        let id = sim.mailbox(&address(n)).expect("mailbox").deposit_voicemail(Voicemail {
            caller_number: format!("+49 {n}"),
            duration_secs: 3,
            ..Voicemail::default()
        });
        ids.insert(n, id);
    }
    let end = tokio::time::Instant::now() + guard;
    while !ids.iter().all(|(n, id)| seen.get(n).is_some_and(|s| s.contains(id))) {
        let e = tokio::time::timeout_at(end, rx.recv()).await.expect("every deposit announced").expect("events");
        apply(e, &mut live, &mut seen);
    }
    for (n, items) in &seen {
        for id in items {
            assert_eq!(ids.get(n), Some(id), "mailbox {n} saw only its own item");
        }
    }
    let streams: Vec<_> = sim.served().into_iter().filter(|s| s.op == "GetStreamingEvents").collect();
    assert!(
        streams.iter().all(|s| s.ids <= 200 && s.cookie),
        "{:?}",
        streams.iter().map(|s| s.ids).collect::<Vec<_>>()
    );
    assert!(streams.len() < N / 4, "connections are shared, not one per mailbox: {} GetStreamingEvents", streams.len());
    // about one connection per request in flight and one per stream, not one per mailbox
    let opened = sim.connections();
    assert!((opened as usize) < N / 4, "{opened} connections for {N} mailboxes ({} streams)", streams.len());
    assert!(
        (2..=SLOTS as u32).contains(&sim.max_in_flight()),
        "450 mailboxes kept at most {SLOTS} requests in flight, and did use several: {}",
        sim.max_in_flight()
    );

    // a restart loses every subscription: all come back, still grouped, and a new deposit arrives
    sim.restart();
    live.clear();
    let end = tokio::time::Instant::now() + guard;
    while live.len() < N {
        let e = tokio::time::timeout_at(end, rx.recv()).await.expect("live again").expect("events");
        apply(e, &mut live, &mut seen);
    }
    wait_streams(&sim, want, guard).await;
    let again = sim.mailbox(&address(7)).expect("mailbox").deposit_voicemail(Voicemail::default());
    let end = tokio::time::Instant::now() + guard;
    while !seen.get(&7).is_some_and(|s| s.contains(&again)) {
        let e = tokio::time::timeout_at(end, rx.recv()).await.expect("announced after the restart").expect("events");
        apply(e, &mut live, &mut seen);
    }
    for h in handles {
        h.stop().await;
    }
    assert_eq!(sim.subscriptions(), 0, "every subscription ended on stop");
}

async fn service_client(sim: &Simulator, mailbox: &str) -> EwsClient {
    let mut c = ClientConfig::new(
        mailbox,
        Credentials::Basic { user: "svc-lamp".into(), password: Password::new("Dienst-2026!") },
    );
    c.ews_url = Some(sim.ews_url());
    c.impersonate = true;
    EwsClient::connect(c).await.expect("client")
}

async fn subscribe(c: &EwsClient) -> String {
    let m = c.subscribe(lamplighter_ews_wire::SubscriptionKind::Streaming).await.expect("subscribe");
    m[0].body.as_ref().expect("subscription").id.clone()
}

async fn first_frame(
    c: &EwsClient,
    ids: &[String],
) -> lamplighter_ews_wire::ResponseMessage<lamplighter_ews_wire::StreamingBody> {
    let mut s = c.open_group_stream(ids, 1).await.expect("stream");
    s.next().await.expect("a frame").expect("frame")[0].clone()
}

/// The simulator's rules for groups, as Exchange's: a server holds only
/// its own mailboxes' subscriptions, a connection carries at most 200, an
/// account has its `HangingConnectionLimit` of open streams and its
/// `EWSMaxSubscriptions`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_one_server_s_at_most_200_within_the_account_s_budget() {
    use lamplighter_ews_wire::ResponseCode;
    let on = |b: u32| (0..).map(address).find(|a| backend_of(a, 2) == b).expect("an address on each server");
    let (a, b) = (on(0), on(1));
    let sim = Simulator::start(SimConfig {
        users: vec![("svc-lamp".into(), "Dienst-2026!".into())],
        mailboxes: vec![a.clone(), b.clone()],
        impersonators: vec!["svc-lamp".into()],
        backends: 2,
        hanging_connection_limit: Some(1),
        max_subscriptions: Some(2),
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let (ca, cb) = (service_client(&sim, &a).await, service_client(&sim, &b).await);
    let (sa, sb) = (subscribe(&ca).await, subscribe(&cb).await);
    assert_ne!(ca.backend_cookie(), cb.backend_cookie(), "two servers, two cookies");
    // b's subscription is not on a's server
    let m = first_frame(&ca, &[sa.clone(), sb.clone()]).await;
    assert_eq!(m.code, ResponseCode::SubscriptionNotFound);
    assert_eq!(m.body.expect("body").error_subscription_ids, vec![sb.clone()]);
    // 201 ids are too many for one connection
    let many: Vec<String> = std::iter::repeat_n(sa.clone(), 201).collect();
    let m = first_frame(&ca, &many).await;
    assert_eq!(
        (m.class, m.code.clone()),
        (lamplighter_ews_wire::ResponseClass::Error, ResponseCode::Other("ErrorInvalidRequest".into())),
        "{m:?}"
    );
    // one open stream per account here: a second is refused while the first lasts
    let mut first = ca.open_group_stream(std::slice::from_ref(&sa), 1).await.expect("stream");
    let m = first_frame(&ca, std::slice::from_ref(&sa)).await;
    assert_eq!(m.code, ResponseCode::Other("ErrorExceededConnectionCount".into()), "{m:?}");
    drop(first.next());
    drop(first);
    // EWSMaxSubscriptions 2: a third subscription of a is refused
    subscribe(&ca).await;
    let third = ca.subscribe(lamplighter_ews_wire::SubscriptionKind::Streaming).await.expect("answer");
    assert_eq!(third[0].code, ResponseCode::Other("ErrorExceededSubscriptionCount".into()), "{third:?}");
}
