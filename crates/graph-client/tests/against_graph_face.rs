//! The Graph backend against the simulator's Graph face over loopback: the
//! initial load, a Cloud Voicemail-style deposit with its audio, mark
//! heard, voicemail a rule files in other folders and moves between them,
//! rounds of throttling, expiry and outage with each item announced
//! exactly once (through the inbox core the engine uses), and a revoked
//! token as "sign in again". Polling is fast here (50–100 ms) so the tests
//! wait for events, not for the default 6 s.

use lamplighter_ews_sim::{AuthSchemes, SimConfig, Simulator, Voicemail};
use lamplighter_graph_client::{GraphBackend, GraphConfig, TokenSource};
use lamplighter_graph_sync::PollConfig;
use lamplighter_mailbox::{Backend, Connection, MailboxEvent, MemoryState};
use lamplighter_mailbox_sync::Change;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const TOKEN: &str = "graph-client-token";

async fn sim() -> Simulator {
    Simulator::start(SimConfig {
        auth: AuthSchemes {
            basic: false,
            ntlm: false,
            negotiate_only: false,
            bearer_tokens: vec![TOKEN.into()],
            kerberos: None,
        },
        ..SimConfig::default()
    })
    .await
    .expect("sim")
}

fn token() -> TokenSource {
    Arc::new(|_fresh| Box::pin(async { Ok(TOKEN.to_string()) }))
}

fn config(sim: &Simulator) -> GraphConfig {
    let mut c = GraphConfig::new(sim.graph_url(), token());
    c.poll = PollConfig {
        active_interval: Duration::from_millis(50),
        idle_interval: Duration::from_millis(100),
        retry_initial: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
        max_retry_after: Duration::from_secs(2),
        folders_every: Duration::from_millis(500),
        ..PollConfig::default()
    };
    c
}

fn voicemail(n: u32) -> Voicemail {
    Voicemail {
        caller_number: format!("+49 5251 30{n:04}"),
        duration_secs: 20 + n,
        audio: Some(("audio.mp3".into(), "audio/mpeg".into(), vec![(n % 251) as u8; 4096])),
        transcription: Some(format!("Nachricht {n}")),
        ..Voicemail::default()
    }
}

/// Everything the backend reported, and waiting for what a test needs.
struct Seen {
    rx: mpsc::Receiver<MailboxEvent>,
    events: Vec<MailboxEvent>,
}

impl Seen {
    async fn until(&mut self, what: &str, want: impl Fn(&[MailboxEvent]) -> bool) {
        let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(60));
        while !want(&self.events) {
            let left = end.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.rx.recv()).await {
                Ok(Some(e)) => self.events.push(e),
                _ => panic!("never {what}; last events: {:?}", self.events.iter().rev().take(5).collect::<Vec<_>>()),
            }
        }
    }
}

fn live(events: &[MailboxEvent]) -> bool {
    matches!(
        events.iter().rev().find(|e| matches!(e, MailboxEvent::Connection(_))),
        Some(MailboxEvent::Connection(Connection::Live))
    )
}

fn items(events: &[MailboxEvent]) -> Vec<&lamplighter_ews_wire::Item> {
    events
        .iter()
        .filter_map(|e| match e {
            MailboxEvent::Change(c) => match &**c {
                Change::Added(i) | Change::Updated(i) => Some(i),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_load_then_a_voicemail_plays_and_is_marked_heard() {
    let sim = sim().await;
    for n in 0..5000 {
        sim.deposit_voicemail(Voicemail { audio: None, ..voicemail(n) });
    }
    let backend = Arc::new(GraphBackend::new(config(&sim)).expect("backend"));
    let (tx, rx) = mpsc::channel(256);
    let tracking = backend.clone().track(Arc::new(MemoryState::default()), tx);
    let mut seen = Seen { rx, events: Vec::new() };
    let started = Instant::now();
    seen.until("the initial load", live).await;
    let loaded = items(&seen.events).len();
    println!("initial load of {loaded} messages in {:?}", started.elapsed());
    assert_eq!(loaded, 5000);
    let pages = sim.served().iter().filter(|s| s.op.contains("/delta")).count();
    assert!(pages >= 100, "paged by 50: {pages} requests");

    // a voicemail with audio: announced as one change, with its attachment from the batch
    let id = sim.deposit_voicemail(voicemail(7));
    let rest = id.replace('+', "-").replace('/', "_");
    seen.until("the deposit", |e| items(e).iter().any(|i| i.id.id == rest && !i.attachments.is_empty())).await;
    let item = (*items(&seen.events).into_iter().rev().find(|i| i.id.id == rest).expect("item")).clone();
    assert_eq!(
        (item.um.duration_secs, item.item_class.as_deref()),
        (Some(27), Some("IPM.Note.Microsoft.Voicemail.UM.CA"))
    );
    assert_eq!(items(&seen.events).iter().filter(|i| i.id.id == rest).count(), 1, "reported once");
    assert!(sim.served().iter().any(|s| s.op.ends_with("/$batch")), "attachments came by $batch");

    let dir = tempfile::tempdir().expect("tmp");
    let dest = dir.path().join("vm.audio");
    let mut progress = Vec::new();
    backend
        .download_attachment(&item.attachments[0].id, &dest, Box::new(|n| progress.push(n)))
        .await
        .expect("download");
    assert_eq!(std::fs::read(&dest).expect("file"), vec![7u8; 4096]);
    assert_eq!(progress.last(), Some(&4096));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&dest).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    // a handle of another backend is refused and leaves no file
    let bad = dir.path().join("bad.audio");
    assert!(backend.download_attachment("AAMkNoSuchThing", &bad, Box::new(|_| {})).await.is_err());
    assert!(!bad.exists());

    backend.mark_read(&item.id).await.expect("mark heard");
    assert!(sim.items().iter().any(|(i, _, read)| *i == id && *read), "isRead on the server");
    seen.until("the read flag back", |e| items(e).iter().any(|i| i.id.id == rest && i.is_read == Some(true))).await;

    let check = backend.check().await;
    assert!(check.steps.iter().all(|s| s.ok), "{:?}", check.steps);
    tracking.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_rounds_of_throttling_expiry_and_outage_announce_each_voicemail_once() {
    let sim = sim().await;
    for n in 0..5 {
        sim.deposit_voicemail(voicemail(n));
    }
    let backend = Arc::new(GraphBackend::new(config(&sim)).expect("backend"));
    let (tx, rx) = mpsc::channel(256);
    let tracking = backend.clone().track(Arc::new(MemoryState::default()), tx);
    let mut seen = Seen { rx, events: Vec::new() };
    seen.until("live", live).await;
    // the inbox core the engine uses, fed as the runner feeds it
    let mut inbox = inbox_core();
    let mut fed = 0;
    let mut announced: Vec<String> = Vec::new();
    announced.extend(feed(&seen.events, &mut fed, &mut inbox));
    assert!(announced.is_empty(), "nothing at start-up");
    let mut deposited = Vec::new();
    for round in 0..20u32 {
        match round % 3 {
            0 => sim.throttle(1, Duration::from_millis(1000)),
            1 => sim.forget_sync_states(),
            _ => sim.fail_http(2, 503),
        }
        let id = sim.deposit_voicemail(voicemail(100 + round));
        deposited.push(id.replace('+', "-").replace('/', "_"));
        let want = deposited.clone();
        seen.until(&format!("round {round}'s voicemail"), |e| {
            live(e) && want.iter().all(|w| items(e).iter().any(|i| &i.id.id == w))
        })
        .await;
        announced.extend(feed(&seen.events, &mut fed, &mut inbox));
    }
    announced.sort();
    let mut want = deposited.clone();
    want.sort();
    assert_eq!(announced, want, "each of the 20 announced exactly once");
    assert_eq!(inbox.summary().voicemail.new, 25);
    let expiries =
        seen.events.iter().filter(|e| matches!(e, MailboxEvent::Change(c) if matches!(**c, Change::Reset))).count();
    println!("20 rounds: {expiries} resets, {} requests", sim.served().len());
    assert_eq!(expiries, 7, "rounds 1, 4, …, 19 expired");
    tracking.stop().await;
}

/// The inbox core the engine uses, for the simulator's mailbox.
fn inbox_core() -> lamplighter_inbox::MailboxState {
    let user = lamplighter_missed_calls::UserIdentity::new(&["mara@example.test".to_string()], &[]).expect("user");
    lamplighter_inbox::MailboxState::new(user, false)
}

/// Feeds `events[*fed..]` to the inbox core the engine uses, as the runner
/// does; returns the items announced.
fn feed(events: &[MailboxEvent], fed: &mut usize, inbox: &mut lamplighter_inbox::MailboxState) -> Vec<String> {
    let mut announced = Vec::new();
    for e in &events[*fed..] {
        match e {
            MailboxEvent::Change(c) => inbox.apply((**c).clone()),
            MailboxEvent::Connection(Connection::Live) if !inbox.is_live() || inbox.reloading() => inbox.caught_up(),
            MailboxEvent::Connection(_) => {}
        }
        while let Some(o) = inbox.poll_output() {
            if let lamplighter_inbox::Output::Notify(n) = o {
                announced.push(n.item_id.clone());
            }
        }
    }
    *fed = events.len();
    announced
}

fn rest(ews_id: &str) -> String {
    ews_id.replace('+', "-").replace('/', "_")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voicemail_a_rule_files_elsewhere_is_announced_once_and_moves_are_no_news() {
    use lamplighter_ews_sim::{DELETED_ID, INBOX_ID};
    let sim = sim().await;
    let filed_to = sim.create_folder("Voicemail", Some(INBOX_ID)).expect("folder");
    for n in 0..6 {
        sim.create_folder(&format!("Project {n}"), None).expect("folder");
    }
    let old = sim.deposit_voicemail_in(voicemail(1), &filed_to).expect("deposit");
    let backend = Arc::new(GraphBackend::new(config(&sim)).expect("backend"));
    let (tx, rx) = mpsc::channel(256);
    let tracking = backend.clone().track(Arc::new(MemoryState::default()), tx);
    let mut seen = Seen { rx, events: Vec::new() };
    seen.until("live", live).await;
    let mut inbox = inbox_core();
    let mut fed = 0;
    assert!(feed(&seen.events, &mut fed, &mut inbox).is_empty(), "the first load is no news");
    assert_eq!(inbox.summary().voicemail.new, 1, "the voicemail the rule filed counts");
    // eight folders (the Inbox, Voicemail under it, six projects) polled four to a $batch
    assert!(sim.served().iter().any(|s| s.op == "graph POST /$batch"));
    let deltas = sim.served().iter().filter(|s| s.op.contains("/messages/delta")).count();
    assert!(deltas <= 2, "the folders' deltas go in batches, not one by one: {deltas}");

    // a rule files a new one: announced once
    let new = sim.deposit_voicemail_in(voicemail(2), &filed_to).expect("deposit");
    seen.until("the filed voicemail", |e| items(e).iter().any(|i| i.id.id == rest(&new))).await;
    assert_eq!(feed(&seen.events, &mut fed, &mut inbox), [rest(&new)]);
    // the user moves it to the Inbox: seen there, no news, still counted
    let before = items(&seen.events).len();
    assert!(sim.move_item(&new, INBOX_ID));
    seen.until("the move", |e| items(e)[before..].iter().any(|i| i.id.id == rest(&new))).await;
    // and the old one from a folder made while running: found, no news
    let made = sim.create_folder("Calls", None).expect("folder");
    let before = items(&seen.events).len();
    assert!(sim.move_item(&old, &made));
    seen.until("the move to a new folder", |e| items(e)[before..].iter().any(|i| i.id.id == rest(&old))).await;
    // a voicemail filed into that new folder is news
    let third = sim.deposit_voicemail_in(voicemail(3), &made).expect("deposit");
    seen.until("the voicemail in the new folder", |e| items(e).iter().any(|i| i.id.id == rest(&third))).await;
    assert_eq!(feed(&seen.events, &mut fed, &mut inbox), [rest(&third)], "only the new one is news");
    assert_eq!(inbox.summary().voicemail.new, 3);
    // deleted (to Deleted Items, which is not followed): gone
    assert!(sim.move_item(&new, DELETED_ID));
    let removed = |e: &[MailboxEvent]| {
        e.iter()
            .any(|e| matches!(e, MailboxEvent::Change(c) if matches!(&**c, Change::Removed(id) if id.id == rest(&new))))
    };
    // (eight folders: rounds every 1.9 s at the least, the request budget's floor)
    seen.until("the removal", removed).await;
    assert!(feed(&seen.events, &mut fed, &mut inbox).is_empty());
    assert_eq!(inbox.summary().voicemail.new, 2);
    let removals = seen
        .events
        .iter()
        .filter(|e| matches!(e, MailboxEvent::Change(c) if matches!(**c, Change::Removed(_))))
        .count();
    assert_eq!(removals, 1, "the moves were not removals");
    tracking.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_is_sign_in_again_not_a_loop() {
    let sim = sim().await;
    sim.deposit_voicemail(voicemail(1));
    let backend = Arc::new(GraphBackend::new(config(&sim)).expect("backend"));
    let (tx, rx) = mpsc::channel(256);
    let tracking = backend.clone().track(Arc::new(MemoryState::default()), tx);
    let mut seen = Seen { rx, events: Vec::new() };
    seen.until("live", live).await;
    sim.revoke_token(TOKEN);
    seen.until("signed out", |e| {
        e.iter().any(|e| matches!(e, MailboxEvent::Connection(Connection::SignInRefused { reason }) if reason.contains("sign in again")))
    })
    .await;
    // a refused token is tried twice (once refreshed), then nothing more
    let refused = sim.auth_failures();
    let after = sim.served().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sim.served().len(), after, "no request while signed out");
    assert_eq!(refused, 2, "the token and its one refresh");
    // signed in again: tracking goes on from where it was
    sim.accept_token(TOKEN);
    tracking.retry_now();
    seen.until("live again", live).await;
    tracking.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_finds_exchange_online_hybrid_on_premises_and_foreign_domains() {
    use lamplighter_graph_client::locate::{Home, locate};
    let sim = Simulator::start(SimConfig {
        entra: lamplighter_ews_sim::EntraConfig { on_premises: vec!["ben@contoso.com".into()], ..Default::default() },
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    let authority = sim.authority("organizations");
    let home = |email: &'static str| {
        let (root, authority) = (sim.graph_url(), authority.clone());
        async move { locate(email, &root, &authority, None).await.expect("an answer") }
    };
    assert_eq!(home("mara@contoso.onmicrosoft.com").await, Home::ExchangeOnline);
    assert_eq!(home("MARA@Contoso.com").await, Home::ExchangeOnline, "any domain of the tenant, any case");
    // hybrid: the tenant exists, but Autodiscover v2 sends this mailbox to the organisation's server
    match home("ben@contoso.com").await {
        Home::OnPremises { ews_url, why } => {
            assert_eq!(ews_url.as_deref(), Some(sim.ews_url().as_str()));
            assert!(why.contains("of the organisation's own"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    // a domain of no tenant is on-premises, although Autodiscover v2 would name Exchange Online for it
    match home("anna@example.test").await {
        Home::OnPremises { ews_url: None, why } => assert!(why.contains("no Microsoft Entra tenant"), "{why}"),
        other => panic!("{other:?}"),
    }
    // both questions went unauthenticated to the discovery endpoints
    let asked: Vec<String> = sim.served().into_iter().filter(|s| s.op.starts_with("discovery")).map(|s| s.op).collect();
    assert!(
        asked.iter().any(|o| o.contains("/autodiscover/autodiscover.json/v1.0/mara%40contoso.onmicrosoft.com")),
        "{asked:?}"
    );
    assert!(asked.iter().any(|o| o.ends_with("/example.test/v2.0/.well-known/openid-configuration")), "{asked:?}");
    assert!(!asked.iter().any(|o| o.contains("anna%40example.test")), "no Autodiscover question for a foreign domain");
}
