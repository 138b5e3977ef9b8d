//! One mailbox and its phones, running: a mailbox backend
//! ([`lamplighter_mailbox::Backend`], EWS today) feeds the state core
//! (`lamplighter-inbox`), whose lamp counts go to the MWI relay and
//! the subscription server (`lamplighter-sip-notify`); what happens comes out
//! as typed [`RunEvent`]s. The engine runs one `Runner` per configured
//! mailbox (the gateway will run many); front ends never see it. Counts and
//! notifications come from the state core, retries from the backend and the
//! relay; the runner only joins them and reports one state line per batch.

pub mod check;
pub mod setup;

pub use setup::{RunSecrets, SetupError, from_settings};

use lamplighter_ews_client::driver::DriverConfig;
use lamplighter_ews_client::{ClientConfig, ClientError, EwsBackend};
use lamplighter_inbox::{Counts, MailboxState, Notification, Output, Summary};
use lamplighter_mailbox::{Backend, Connection, MailboxError, MailboxEvent, MemoryState, Tracking};
use lamplighter_sip_mwi::relay::{LampResult, RelayConfig, RelayEvent};
use lamplighter_sip_notify::NotifySender;
use lamplighter_sip_notify::driver::{PhoneTarget, RelayHandle};
use lamplighter_sip_notify::subscriptions::{SubscriptionEvent, SubscriptionHandle};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, watch};

/// Which mailbox backend a run uses, and how to reach it.
pub enum MailboxSetup {
    /// Exchange over EWS (on-premises, or Exchange Online while it still allows EWS).
    Ews {
        /// Server, credentials, timeouts.
        client: ClientConfig,
        /// Change tracking (streaming or pull, page size).
        driver: DriverConfig,
    },
    /// Microsoft 365 over Microsoft Graph, signed in with OAuth2.
    Graph {
        /// Service root, token source, polling.
        config: lamplighter_graph_client::GraphConfig,
    },
    /// `backend = "auto"`: where the mailbox lives decides, at connection.
    Auto(Box<AutoSetup>),
}

/// Both backends' settings, for a mailbox whose home is found at connection
/// (`lamplighter_graph_client::locate`): Graph for Exchange Online, EWS otherwise.
pub struct AutoSetup {
    /// EWS, for a mailbox on an Exchange server (Autodiscover v2's URL when it gave one).
    pub ews: ClientConfig,
    /// Its change tracking.
    pub driver: DriverConfig,
    /// Graph, when signed in with OAuth2.
    pub graph: Option<Box<lamplighter_graph_client::GraphConfig>>,
    /// Graph's service root (Autodiscover v2's host follows from it).
    pub graph_root: String,
    /// The sign-in authority (its origin answers the tenant question).
    pub authority: String,
    /// An extra CA for both questions.
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl MailboxSetup {
    /// An EWS mailbox with the default change tracking.
    pub fn ews(client: ClientConfig) -> MailboxSetup {
        MailboxSetup::Ews { client, driver: DriverConfig::default() }
    }

    /// Reaches the backend (Autodiscover, for EWS without a URL).
    pub async fn connect(self) -> Result<Arc<dyn Backend>, ConnectError> {
        match self {
            MailboxSetup::Ews { client, driver } => Ok(Arc::new(EwsBackend::connect(client, driver).await?)),
            MailboxSetup::Graph { config } => Ok(Arc::new(lamplighter_graph_client::GraphBackend::new(config)?)),
            MailboxSetup::Auto(auto) => {
                let AutoSetup { mut ews, driver, graph, graph_root, authority, extra_ca_pem } = *auto;
                use lamplighter_graph_client::locate::{Home, locate};
                let home = locate(&ews.email, &graph_root, &authority, extra_ca_pem.as_deref()).await?;
                match (home, graph) {
                    (Home::ExchangeOnline, Some(config)) => {
                        log::info!("{} is in Exchange Online: Microsoft Graph", ews.email);
                        Ok(Arc::new(lamplighter_graph_client::GraphBackend::new(*config)?))
                    }
                    (Home::ExchangeOnline, None) => Err(ConnectError::Placement(format!(
                        "{} is in Exchange Online, which Lamplighter reaches through Microsoft Graph: choose the Microsoft sign-in (auth = \"oauth2\")",
                        ews.email
                    ))),
                    (Home::OnPremises { why, .. }, Some(_)) => Err(ConnectError::Placement(format!(
                        "the mailbox is on-premises ({why}): set backend = \"ews\" and a sign-in the server takes (Kerberos, NTLM, or OAuth2 with hybrid modern authentication)"
                    ))),
                    (Home::OnPremises { ews_url, why }, None) => {
                        log::info!("{why}: EWS");
                        if ews.ews_url.is_none() {
                            ews.ews_url = ews_url;
                        }
                        Ok(Arc::new(EwsBackend::connect(ews, driver).await?))
                    }
                }
            }
        }
    }
}

/// Why the mailbox could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Ews(#[from] ClientError),
    #[error(transparent)]
    Graph(#[from] lamplighter_graph_client::GraphClientError),
    /// `backend = "auto"` found the mailbox where the sign-in method cannot reach it.
    #[error("{0}")]
    Placement(String),
}

impl ConnectError {
    /// What to do about it, in a sentence.
    pub fn hint(&self) -> String {
        match self {
            ConnectError::Ews(e) => lamplighter_ews_client::hint_for(e),
            ConnectError::Graph(_) => "check [mailbox] graph_url, the network, and that you are signed in".into(),
            ConnectError::Placement(_) => "or set [mailbox] backend explicitly".into(),
        }
    }
}

impl From<ConnectError> for MailboxError {
    fn from(e: ConnectError) -> MailboxError {
        match e {
            ConnectError::Ews(e) => e.into(),
            ConnectError::Graph(e) => e.into(),
            ConnectError::Placement(message) => MailboxError::Failed { operation: "finding the mailbox", message },
        }
    }
}

/// Everything a run needs.
pub struct RunConfig {
    pub mailbox: MailboxSetup,
    /// Who the user is, for the missed-call analysis.
    pub user: lamplighter_missed_calls::UserIdentity,
    /// Add unseen missed calls to the lamp.
    pub include_missed_calls: bool,
    /// Which items are voicemail and calls (the admin's PBX rules, then the built-in ones).
    pub recogniser: lamplighter_recognise::Recogniser,
    /// Phones whose lamp follows (unsolicited NOTIFYs).
    pub phones: Vec<PhoneTarget>,
    /// Phones that SUBSCRIBE for message-summary, with how each proves who it is; served on `sip`'s addresses.
    pub subscribers: Vec<lamplighter_sip_notify::subscriptions::Subscriber>,
    /// The SIP side's sockets: UDP (port 0: any), the TCP/TLS listeners
    /// subscribing phones need, the CA for TLS phones.
    pub sip: lamplighter_sip_notify::SenderConfig,
    /// Relay timing.
    pub relay: RelayConfig,
    /// Where voicemail audio is cached, and for how long (purged at start and daily).
    pub audio_cache: Option<AudioCache>,
    /// Events kept for a reader that falls behind ([`EVENT_BUFFER`] for a
    /// desktop; a service with thousands of runners that follows only the
    /// state keeps a few, as each slot is allocated up front).
    pub event_buffer: usize,
}

/// The events a runner keeps for a slow reader by default.
pub const EVENT_BUFFER: usize = 1024;

/// The voicemail audio cache.
#[derive(Debug, Clone)]
pub struct AudioCache {
    /// The directory.
    pub dir: std::path::PathBuf,
    /// Older recordings are deleted.
    pub max_age: std::time::Duration,
}

/// What happens, for front ends: typed from the mailbox and the phones to the
/// window. Serialized, it is the agent's JSON line (`"event"` names the kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The counts or the connection changed.
    State {
        /// Voicemail counts (UM semantics), missed and secondary calls.
        #[serde(flatten)]
        summary: Summary,
        /// The mailbox connection.
        connection: Connection,
    },
    /// A new voicemail or missed call, with everything its notification says.
    Notify(Notification),
    /// A NOTIFY to a phone got its final answer (or none).
    Mwi {
        /// The phone's URI.
        phone: String,
        /// How it went.
        result: LampResult,
        /// What the phone now shows, when it took the state.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        counts: Option<Counts>,
    },
    /// The SIP side is open: subscribing phones send to `address`, and NOTIFYs come from it.
    Listening {
        /// `udp:IP:port`.
        address: String,
        /// The stream listeners, `tcp:IP:port` and `tls:IP:port`, when a phone subscribes over them.
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        streams: Vec<String>,
        /// Whether phones subscribe to this address (otherwise it only sends).
        serving_subscriptions: bool,
    },
    /// A phone's SUBSCRIBE for message-summary was answered.
    Subscribe {
        /// The subscriber (its From URI).
        phone: String,
        /// The status code sent (200, 403 for a phone that is not paired, …).
        code: u16,
    },
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The mailbox could not be reached or found.
    #[error(transparent)]
    Mailbox(#[from] ConnectError),
    /// The SIP side could not bind.
    #[error("cannot open the SIP socket: {0}")]
    Sip(String),
}

/// A running engine.
pub struct Runner {
    events: broadcast::Sender<RunEvent>,
    /// Subscribed before anything ran: the first [`Runner::events`] caller gets
    /// every event from the start, however late it asks on a busy machine.
    first_events: Mutex<Option<broadcast::Receiver<RunEvent>>>,
    backend: Arc<dyn Backend>,
    state: Arc<Mutex<MailboxState>>,
    tracking: Box<dyn Tracking>,
    relay: Option<RelayHandle>,
    lamp: watch::Receiver<Option<Counts>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    purger: Option<tokio::task::JoinHandle<()>>,
}

impl Runner {
    /// Connects to the mailbox (Autodiscover if needed), opens the SIP side and starts.
    pub async fn start(config: RunConfig) -> Result<Runner, RunError> {
        let backend = config.mailbox.connect().await?;
        let purger = config.audio_cache.clone().map(|cache| {
            tokio::spawn(async move {
                let mut daily = tokio::time::interval(std::time::Duration::from_secs(86_400));
                loop {
                    daily.tick().await;
                    match purge_audio_cache(&cache.dir, cache.max_age) {
                        Ok(0) => {}
                        Ok(n) => log::info!("audio cache: {n} old recording(s) deleted"),
                        Err(e) => log::warn!("audio cache {}: {e}", cache.dir.display()),
                    }
                }
            })
        });
        let mut listening = None;
        let (relay, subscriptions) = if config.phones.is_empty() && config.subscribers.is_empty() {
            (None, None)
        } else {
            let sender =
                Arc::new(NotifySender::start(config.sip.clone()).await.map_err(|e| RunError::Sip(e.to_string()))?);
            let bound = sender.listening();
            let address = format!("udp:{}", bound.udp);
            let streams: Vec<String> = [bound.tcp.map(|a| format!("tcp:{a}")), bound.tls.map(|a| format!("tls:{a}"))]
                .into_iter()
                .flatten()
                .collect();
            log::info!("SIP: {address} {streams:?} ({} subscribing phone(s))", config.subscribers.len());
            listening =
                Some(RunEvent::Listening { address, streams, serving_subscriptions: !config.subscribers.is_empty() });
            let relay = (!config.phones.is_empty())
                .then(|| lamplighter_sip_notify::driver::spawn(sender.clone(), config.phones.clone(), config.relay));
            let subs = if config.subscribers.is_empty() {
                None
            } else {
                Some(
                    lamplighter_sip_notify::subscriptions::serve(
                        sender,
                        config.subscribers.clone(),
                        lamplighter_sip_notify::subscriptions::ListenerConfig::default(),
                    )
                    .map_err(|e| RunError::Sip(e.to_string()))?,
                )
            };
            (relay, subs)
        };
        let (events, first_events) = broadcast::channel(config.event_buffer.clamp(8, 65_536));
        if let Some(e) = listening {
            let _ = events.send(e);
        }
        let state = Arc::new(Mutex::new(
            MailboxState::new(config.user, config.include_missed_calls).with_recogniser(config.recogniser),
        ));
        let (tx, rx) = mpsc::channel(1024);
        // the whole folder is read at start (silently), so counts are right and nothing is re-announced
        let tracking = backend.clone().track(Arc::new(MemoryState::default()), tx);
        let (stop, stopped) = watch::channel(false);
        let phones: Vec<String> = config.phones.iter().map(|p| p.uri.clone()).collect();
        let (lamp_tx, lamp) = watch::channel(None);
        let outputs = Outputs { relay: relay.clone(), subscriptions, lamp: lamp_tx };
        let task = tokio::spawn(run(rx, state.clone(), outputs, events.clone(), phones, stopped));
        let first_events = Mutex::new(Some(first_events));
        Ok(Runner { events, first_events, backend, state, tracking, relay, lamp, stop, task, purger })
    }

    /// The events: for the first caller (the engine's live loop, or a one-shot
    /// sync) every event since the run started, so the first state lines are
    /// never lost to a race with the run's own tasks; for later callers, events
    /// from now on.
    pub fn events(&self) -> broadcast::Receiver<RunEvent> {
        self.first_events.lock().unwrap_or_else(|p| p.into_inner()).take().unwrap_or_else(|| self.events.subscribe())
    }

    /// What the lamp should show: `None` until the mailbox has loaded, then
    /// the counts after every change (for deliveries the runner does not own,
    /// such as the gateway's).
    pub fn lamp(&self) -> watch::Receiver<Option<Counts>> {
        self.lamp.clone()
    }

    /// The counts now.
    pub fn summary(&self) -> Summary {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).summary()
    }

    /// Reads the state core (for the window's lists): `f` runs under its lock, so keep it short.
    pub fn with_state<T>(&self, f: impl FnOnce(&MailboxState) -> T) -> T {
        f(&self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Where the mailbox is (the EWS URL).
    pub fn mailbox_location(&self) -> String {
        self.backend.location()
    }

    /// Marks a voicemail heard on the server; the counts follow when the change comes back.
    pub async fn mark_heard(&self, item_id: &str) -> Result<(), MailboxError> {
        let id = self.state.lock().unwrap_or_else(|p| p.into_inner()).voicemail(item_id).map(|v| v.id.clone());
        let Some(id) = id else {
            return Err(MailboxError::NotFound { what: format!("voicemail {item_id}") });
        };
        self.backend.mark_read(&id).await
    }

    /// Marks a missed call seen: every report of it (one per device) is marked read.
    pub async fn mark_call_seen(&self, item_id: &str) -> Result<(), MailboxError> {
        let ids: Vec<String> = {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.calls()
                .into_iter()
                .find(|c| s.items_of(c).iter().any(|i| i == item_id))
                .map(|c| s.items_of(&c))
                .unwrap_or_default()
        };
        if ids.is_empty() {
            return Err(MailboxError::NotFound { what: format!("missed call {item_id}") });
        }
        for id in ids {
            let item = lamplighter_mailbox::ItemId { id, change_key: String::new() };
            self.backend.mark_read(&item).await?;
        }
        Ok(())
    }

    /// Fetches a voicemail's audio into `cache_dir` (mode 0600; fetched once, then reused)
    /// and returns its path. `progress` gets the bytes decoded so far.
    pub async fn fetch_audio(
        &self,
        item_id: &str,
        cache_dir: &std::path::Path,
        progress: impl FnMut(u64) + Send,
    ) -> Result<std::path::PathBuf, MailboxError> {
        let attachment = {
            let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.voicemail(item_id).and_then(|v| v.audio_attachment.clone())
        };
        let Some(attachment) = attachment else {
            return Err(MailboxError::NotFound { what: format!("the audio of voicemail {item_id}") });
        };
        let file_err =
            |e: std::io::Error| MailboxError::File { path: cache_dir.display().to_string(), reason: e.to_string() };
        std::fs::create_dir_all(cache_dir).map_err(file_err)?;
        // the name is derived from the attachment id, never from server-given file names
        let name: String = attachment
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
            .to_string();
        let path = cache_dir.join(format!("voicemail-{name}.audio"));
        if path.exists() {
            return Ok(path);
        }
        self.backend.download_attachment(&attachment, &path, Box::new(progress)).await?;
        Ok(path)
    }

    /// Sends the lamp again now.
    pub fn resend_lamp(&self) {
        if let Some(r) = &self.relay {
            r.resend_now(None);
        }
    }

    /// Reconnects now (after "Retry now" or new credentials).
    pub fn retry_now(&self) {
        self.tracking.retry_now();
    }

    /// Stops: the subscription is ended on the server, then everything stops.
    pub async fn stop(self) {
        if let Some(p) = &self.purger {
            p.abort();
        }
        self.tracking.stop().await;
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Where the state core's lamp counts go.
struct Outputs {
    relay: Option<RelayHandle>,
    subscriptions: Option<SubscriptionHandle>,
    lamp: watch::Sender<Option<Counts>>,
}

async fn run(
    mut rx: mpsc::Receiver<MailboxEvent>,
    state: Arc<Mutex<MailboxState>>,
    outputs_to: Outputs,
    events: broadcast::Sender<RunEvent>,
    phones: Vec<String>,
    mut stopped: watch::Receiver<bool>,
) {
    let Outputs { relay, subscriptions, lamp } = outputs_to;
    let mut relay_events = relay.as_ref().map(|r| r.events());
    let mut sub_events = subscriptions.as_ref().map(|s| s.events());
    let mut connection = Connection::Connecting;
    let mut last_state: Option<(Summary, Connection)> = None;
    // when a notification's sync that has not ended counts as syncing
    let mut syncing_at: Option<tokio::time::Instant> = None;
    loop {
        let grace_over = syncing_at.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            e = rx.recv() => {
                let Some(first) = e else { break };
                // take what is queued as one batch: one state line per batch, not per item
                let mut batch = vec![first];
                while let Ok(more) = rx.try_recv() {
                    batch.push(more);
                }
                let mut outputs = Vec::new();
                let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                for e in batch {
                    match e {
                        MailboxEvent::Change(c) => s.apply(*c),
                        MailboxEvent::Connection(c) => {
                            if c == Connection::Live && (!s.is_live() || s.reloading()) {
                                s.caught_up();
                            }
                            // a sync that a notification started is part of being
                            // connected, unless it is still going after SYNC_GRACE
                            if c == Connection::Syncing && connection == Connection::Live {
                                syncing_at.get_or_insert_with(|| tokio::time::Instant::now() + SYNC_GRACE);
                            } else {
                                syncing_at = None;
                                connection = c;
                            }
                        }
                    }
                }
                while let Some(o) = s.poll_output() {
                    outputs.push(o);
                }
                let summary = s.summary();
                let live = s.is_live();
                drop(s);
                for o in outputs {
                    match o {
                        Output::Notify(n) => {
                            let _ = events.send(RunEvent::Notify(n));
                        }
                        Output::Lamp(c) => {
                            lamp.send_replace(Some(c));
                            if let Some(r) = &relay {
                                r.set_counts(c);
                            }
                            if let Some(s) = &subscriptions {
                                s.set_counts(c);
                            }
                        }
                        Output::Changed(_) => {}
                    }
                }
                report(&events, &mut last_state, summary, live, &connection);
            }
            _ = tokio::time::sleep_until(grace_over), if syncing_at.is_some() => {
                syncing_at = None;
                connection = Connection::Syncing;
                let (summary, live) = {
                    let s = state.lock().unwrap_or_else(|p| p.into_inner());
                    (s.summary(), s.is_live())
                };
                report(&events, &mut last_state, summary, live, &connection);
            }
            r = recv_any(&mut relay_events) => {
                let Some(ev) = r else { relay_events = None; continue };
                let ev = match ev {
                    RelayEvent::Delivered { phone, counts } => RunEvent::Mwi {
                        phone: phones.get(phone.0).cloned().unwrap_or_default(),
                        result: LampResult::Delivered,
                        counts: Some(counts),
                    },
                    RelayEvent::Failed { phone, failure, retry_in } => RunEvent::Mwi {
                        phone: phones.get(phone.0).cloned().unwrap_or_default(),
                        result: LampResult::failed(&failure, Some(retry_in)),
                        counts: None,
                    },
                };
                let _ = events.send(ev);
            }
            e = recv_any(&mut sub_events) => {
                let Some(e) = e else { sub_events = None; continue };
                let ev = match e {
                    SubscriptionEvent::Notified { to, code, .. } => RunEvent::Mwi {
                        phone: to,
                        result: match code {
                            Some(c) if (200..300).contains(&c) => LampResult::Delivered,
                            Some(c) => LampResult::Refused { code: c, reason: String::new(), retry_in_secs: None },
                            None => LampResult::NoAnswer { retry_in_secs: None },
                        },
                        counts: None,
                    },
                    SubscriptionEvent::Answered { from, code } => RunEvent::Subscribe { phone: from, code },
                    SubscriptionEvent::Registered { .. } => continue,
                };
                let _ = events.send(ev);
            }
            _ = stopped.changed() => break,
        }
    }
}

/// How long a sync that a notification started may take before the status
/// says "syncing" instead of "connected" (a hung request shows within seconds).
pub const SYNC_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends the state line when it changed; during the initial catch-up only
/// the connection is news.
fn report(
    events: &broadcast::Sender<RunEvent>,
    last_state: &mut Option<(Summary, Connection)>,
    summary: Summary,
    live: bool,
    connection: &Connection,
) {
    let news = live || last_state.as_ref().is_none_or(|(_, c)| c != connection);
    let now = (summary, connection.clone());
    if news && last_state.as_ref() != Some(&now) {
        *last_state = Some(now);
        let _ = events.send(RunEvent::State { summary, connection: connection.clone() });
    }
}

async fn recv_any<T: Clone>(rx: &mut Option<broadcast::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => loop {
            match r.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        },
        None => std::future::pending().await,
    }
}

/// Deletes cached audio files older than `max_age`; returns how many went.
pub fn purge_audio_cache(cache_dir: &std::path::Path, max_age: std::time::Duration) -> std::io::Result<usize> {
    let mut n = 0;
    let Ok(entries) = std::fs::read_dir(cache_dir) else { return Ok(0) };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("voicemail-") && (name.ends_with(".audio") || name.ends_with(".part"))) {
            continue;
        }
        let old = e.metadata()?.modified()?.elapsed().map(|a| a > max_age).unwrap_or(false);
        if old {
            std::fs::remove_file(e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The state lines `run` sends, on tokio's paused clock.
    #[tokio::test(start_paused = true)]
    async fn a_notification_sync_that_hangs_shows_as_syncing_after_the_grace() {
        let user = lamplighter_missed_calls::UserIdentity::new(&["mara@example.test".to_string()], &[]).expect("user");
        let state = Arc::new(Mutex::new(MailboxState::new(user, false)));
        let (tx, rx) = mpsc::channel(16);
        let (events, mut lines) = broadcast::channel(16);
        let (_stop, stopped) = watch::channel(false);
        let outputs = Outputs { relay: None, subscriptions: None, lamp: watch::channel(None).0 };
        tokio::spawn(run(rx, state, outputs, events, Vec::new(), stopped));
        let connection = |e: RunEvent| match e {
            RunEvent::State { connection, .. } => connection,
            other => panic!("not a state line: {other:?}"),
        };
        tx.send(MailboxEvent::Connection(Connection::Live)).await.expect("send");
        assert_eq!(connection(lines.recv().await.expect("line")), Connection::Live);

        // a sync that ends within the grace is part of being connected: no line at all
        tx.send(MailboxEvent::Connection(Connection::Syncing)).await.expect("send");
        tokio::time::sleep(SYNC_GRACE - Duration::from_millis(100)).await;
        tx.send(MailboxEvent::Connection(Connection::Live)).await.expect("send");
        tokio::time::sleep(SYNC_GRACE * 2).await;
        assert!(matches!(lines.try_recv(), Err(broadcast::error::TryRecvError::Empty)));

        // one that hangs says so once the grace is over, not before
        tx.send(MailboxEvent::Connection(Connection::Syncing)).await.expect("send");
        tokio::time::sleep(SYNC_GRACE - Duration::from_millis(100)).await;
        assert!(matches!(lines.try_recv(), Err(broadcast::error::TryRecvError::Empty)));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(connection(lines.try_recv().expect("syncing line")), Connection::Syncing);
        // and connected again when it ends
        tx.send(MailboxEvent::Connection(Connection::Live)).await.expect("send");
        assert_eq!(connection(lines.recv().await.expect("line")), Connection::Live);
        // a failure meanwhile is shown at once, and cancels the pending "syncing"
        tx.send(MailboxEvent::Connection(Connection::Syncing)).await.expect("send");
        let down = Connection::Reconnecting { in_secs: 2, reason: "connection reset".into() };
        tx.send(MailboxEvent::Connection(down.clone())).await.expect("send");
        assert_eq!(connection(lines.recv().await.expect("line")), down);
        tokio::time::sleep(SYNC_GRACE * 2).await;
        assert!(matches!(lines.try_recv(), Err(broadcast::error::TryRecvError::Empty)));
    }
}
