//! The tokio driver of the mailbox's delta polling core: sends what
//! [`MailboxSync`] asks for (the folder list, and the folders due, one
//! request for one folder, a `$batch` for up to four), hands the changes on
//! (voicemails first given their attachment list, fetched in `$batch`es of
//! 20), stores the state once its changes are out, and reports the
//! connection. A stop ends it at once, in flight or waiting.

use crate::GraphClient;
use lamplighter_graph_sync::{MailboxSync, Status, Step};
use lamplighter_mailbox::{Connection, MailboxEvent, StateStore};
use lamplighter_mailbox_sync::Change;
use std::sync::Arc;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

/// A running tracking; stop it to end it.
pub struct GraphTracking {
    stop: watch::Sender<bool>,
    retry: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl GraphTracking {
    /// Polls now (after "Retry now", a new token, the network back).
    pub fn retry_now(&self) {
        self.retry.notify_one();
    }

    /// Stops; nothing on the server needs ending (delta has no subscription).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl lamplighter_mailbox::Tracking for GraphTracking {
    fn retry_now(&self) {
        GraphTracking::retry_now(self);
    }
    fn stop(self: Box<Self>) -> lamplighter_mailbox::BoxFuture<'static, ()> {
        Box::pin(GraphTracking::stop(*self))
    }
}

/// Starts tracking.
pub fn spawn(
    client: Arc<GraphClient>,
    state: Arc<dyn StateStore>,
    events: mpsc::Sender<MailboxEvent>,
) -> GraphTracking {
    let (stop, stopped) = watch::channel(false);
    let retry = Arc::new(Notify::new());
    let task = tokio::spawn(run(client, state, events, stopped, retry.clone()));
    GraphTracking { stop, retry, task }
}

fn connection(status: Status, now: std::time::Instant) -> Connection {
    match status {
        Status::Syncing => Connection::Syncing,
        Status::Live => Connection::Live,
        Status::Waiting { until, reason } => {
            Connection::Reconnecting { in_secs: until.saturating_duration_since(now).as_secs(), reason }
        }
        Status::SignedOut { reason } => Connection::SignInRefused { reason },
    }
}

/// Gives the voicemails (and other UM items) of `changes` their attachments.
async fn enrich(client: &GraphClient, changes: &mut [Change]) -> Result<(), crate::GraphClientError> {
    let wanted: Vec<String> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Added(i) | Change::Updated(i)
                if i.has_attachments == Some(true) && lamplighter_mailbox_sync::needs_details(i) =>
            {
                Some(i.id.id.clone())
            }
            _ => None,
        })
        .collect();
    for ids in wanted.chunks(lamplighter_graph_wire::batch::MAX_REQUESTS) {
        for (id, list) in client.attachments_of(ids).await? {
            for c in changes.iter_mut() {
                if let Change::Added(i) | Change::Updated(i) = c
                    && i.id.id == id
                {
                    i.attachments = list
                        .iter()
                        .filter(|a| a.is_file())
                        .map(|a| lamplighter_ews_wire::Attachment {
                            id: format!("{id}|{}", a.id),
                            name: a.name.clone(),
                            content_type: a.content_type.clone(),
                            size: u64::try_from(a.size).ok(),
                        })
                        .collect();
                }
            }
        }
    }
    Ok(())
}

/// How often the clocks are compared for a sleep of the machine.
const CLOCK_CHECK: std::time::Duration = std::time::Duration::from_secs(15);

/// Notices that the machine slept: the wall clock runs on through a
/// suspend, the monotonic clock (tokio's, `CLOCK_MONOTONIC`) does not, so
/// after a resume the wall clock is ahead by the time asleep.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SleepWatch {
    wall: std::time::SystemTime,
    mono: std::time::Instant,
}

impl SleepWatch {
    /// More wall time than monotonic time by this much is a sleep (NTP's
    /// corrections are far smaller).
    pub(crate) const SLEPT: std::time::Duration = std::time::Duration::from_secs(30);

    pub(crate) fn new(wall: std::time::SystemTime, mono: std::time::Instant) -> SleepWatch {
        SleepWatch { wall, mono }
    }

    /// Whether the machine slept since the last look; the look is kept.
    pub(crate) fn slept(&mut self, wall: std::time::SystemTime, mono: std::time::Instant) -> bool {
        let walked = wall.duration_since(self.wall).unwrap_or_default();
        let ran = mono.saturating_duration_since(self.mono);
        *self = SleepWatch { wall, mono };
        walked > ran + SleepWatch::SLEPT
    }
}

/// Notices that the machine's network changed (another Wi-Fi, a VPN up or
/// down, a cable plugged in): the set of its addresses, loopback left out,
/// is not the one seen last. A kept-alive connection may be dead after
/// that, and Graph has had news the poll interval would make us wait for.
#[derive(Debug, Default)]
pub(crate) struct NetWatch {
    seen: Option<Vec<(String, std::net::IpAddr)>>,
}

impl NetWatch {
    /// Whether `addresses` differ from the last look (the first look is no
    /// change); the look is kept.
    pub(crate) fn changed(&mut self, addresses: Vec<(String, std::net::IpAddr)>) -> bool {
        let mut now: Vec<(String, std::net::IpAddr)> =
            addresses.into_iter().filter(|(_, ip)| !ip.is_loopback()).collect();
        now.sort();
        now.dedup();
        match self.seen.replace(now) {
            Some(before) => Some(&before) != self.seen.as_ref(),
            None => false,
        }
    }
}

/// The machine's addresses by interface (none when they cannot be read).
fn addresses() -> Vec<(String, std::net::IpAddr)> {
    match if_addrs::get_if_addrs() {
        Ok(list) => list.into_iter().map(|i| (i.name.clone(), i.ip())).collect(),
        Err(e) => {
            log::debug!("cannot read the network addresses: {e}");
            Vec::new()
        }
    }
}

async fn run(
    client: Arc<GraphClient>,
    state: Arc<dyn StateStore>,
    events: mpsc::Sender<MailboxEvent>,
    mut stopped: watch::Receiver<bool>,
    retry: Arc<Notify>,
) {
    let mut sync = MailboxSync::new(client.config.poll, state.load(), Instant::now().into_std());
    if events.send(MailboxEvent::Connection(Connection::Connecting)).await.is_err() {
        return;
    }
    let mut last: Option<Connection> = None;
    let mut followed = Vec::new();
    let mut watch = SleepWatch::new(std::time::SystemTime::now(), std::time::Instant::now());
    let mut net = NetWatch::default();
    net.changed(addresses());
    let nudge = client.config.nudge.clone();
    let mut flowing = nudge.as_ref().map(|n| n.flowing());
    let mut clock_check = tokio::time::interval(CLOCK_CHECK);
    clock_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut changes: Vec<Change> = std::iter::from_fn(|| sync.poll_change()).collect();
        if !changes.is_empty() {
            if let Err(e) = enrich(&client, &mut changes).await {
                // the items still count; only their audio waits for the next change
                log::warn!("Graph: cannot list the attachments of new voicemails: {e}");
            }
            for c in changes {
                if events.send(MailboxEvent::Change(Box::new(c))).await.is_err() {
                    return;
                }
            }
        }
        while let Some(s) = sync.poll_state() {
            if let Err(e) = state.save(&s) {
                log::error!("cannot store the delta links: {e}");
            }
        }
        let now_followed = sync.followed();
        if now_followed != followed {
            let paths: Vec<&str> = now_followed.iter().map(|f| f.path.as_str()).collect();
            log::info!("Graph: following {} folder(s): {}", paths.len(), paths.join(", "));
            followed = now_followed;
        }
        let now = connection(sync.status(), std::time::Instant::now());
        if last.as_ref() != Some(&now) {
            last = Some(now.clone());
            if events.send(MailboxEvent::Connection(now)).await.is_err() {
                return;
            }
        }
        if *stopped.borrow() {
            return;
        }
        let steps = sync.poll_requests(std::time::Instant::now());
        if !steps.is_empty() {
            let mut deltas = Vec::new();
            for step in steps {
                match step {
                    Step::Discover => {
                        let found = tokio::select! {
                            f = client.discover() => f,
                            _ = stopped.changed() => return,
                        };
                        if let Err(e) = &found {
                            log::warn!("Graph: cannot list the mail folders: {e}");
                        }
                        sync.discovered(std::time::Instant::now(), found.map_err(|e| e.to_string()));
                    }
                    Step::Delta { folder, request } => deltas.push((folder, request)),
                }
            }
            for chunk in deltas.chunks(crate::MAX_CONCURRENT) {
                let answers = tokio::select! {
                    a = async {
                        if let [(folder, request)] = chunk {
                            vec![client.delta(folder, request).await]
                        } else {
                            client.delta_batch(chunk).await
                        }
                    } => a,
                    _ = stopped.changed() => return,
                };
                for ((folder, _), answer) in chunk.iter().zip(answers) {
                    sync.handle(std::time::Instant::now(), folder, answer);
                }
            }
            continue;
        }
        let wake = sync.next_wake().map(Instant::from_std);
        tokio::select! {
            _ = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
            _ = retry.notified() => sync.wake(std::time::Instant::now()),
            _ = async {
                match &nudge {
                    Some(n) => n.wait_changed().await,
                    None => std::future::pending().await,
                }
            } => sync.notified(std::time::Instant::now()),
            changed = async {
                match flowing.as_mut() {
                    Some(f) => f.changed().await.map(|_| *f.borrow_and_update()),
                    None => std::future::pending().await,
                }
            } => match changed {
                Ok(on) => {
                    let every = nudge.as_ref().map(|n| n.pushed_every);
                    sync.set_pushed(std::time::Instant::now(), if on { every } else { None });
                }
                // the sender is gone: no more notifications
                Err(_) => {
                    flowing = None;
                    sync.set_pushed(std::time::Instant::now(), None);
                }
            },
            _ = clock_check.tick() => {
                if watch.slept(std::time::SystemTime::now(), std::time::Instant::now()) {
                    log::info!("Graph: the machine woke up; polling now");
                    sync.resumed(std::time::Instant::now());
                } else if net.changed(addresses()) {
                    log::info!("Graph: the network changed; polling now");
                    sync.resumed(std::time::Instant::now());
                }
            }
            _ = stopped.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{NetWatch, SleepWatch};

    #[test]
    fn a_network_change_is_another_set_of_addresses() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        let home = vec![("lo".to_string(), ip("127.0.0.1")), ("wlan0".to_string(), ip("192.168.1.20"))];
        let mut net = NetWatch::default();
        assert!(!net.changed(home.clone()), "the first look is no change");
        assert!(!net.changed(home.iter().rev().cloned().collect()), "the order is no change");
        // loopback coming and going is no change
        assert!(!net.changed(vec![home[1].clone()]));
        // a VPN up, then down again; another Wi-Fi; offline
        let mut vpn = home.clone();
        vpn.push(("tun0".to_string(), ip("10.8.0.5")));
        assert!(net.changed(vpn));
        assert!(net.changed(home.clone()));
        assert!(net.changed(vec![("wlan0".to_string(), ip("172.20.10.3"))]));
        assert!(net.changed(vec![]));
        assert!(!net.changed(vec![]));
        // the addresses of this machine read, loopback among them
        assert!(super::addresses().iter().any(|(_, ip)| ip.is_loopback()));
    }
    use std::time::{Duration, Instant, SystemTime};

    #[test]
    fn a_sleep_is_wall_time_the_monotonic_clock_did_not_see() {
        let (w0, m0) = (SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000), Instant::now());
        let mut watch = SleepWatch::new(w0, m0);
        // awake: both clocks move together (a second of NTP slew is no sleep)
        assert!(!watch.slept(w0 + Duration::from_secs(16), m0 + Duration::from_secs(15)));
        // an hour asleep: the wall clock jumped, the monotonic one moved 15 s
        assert!(watch.slept(w0 + Duration::from_secs(3616), m0 + Duration::from_secs(30)));
        // and then awake again
        assert!(!watch.slept(w0 + Duration::from_secs(3631), m0 + Duration::from_secs(45)));
        // the wall clock set back is no sleep
        assert!(!watch.slept(w0, m0 + Duration::from_secs(60)));
    }
}
