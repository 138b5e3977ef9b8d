//! The running gateway: the directory, re-read on a schedule; one
//! [`Runner`] per mailbox with MWI on, reaching its mailbox through the
//! service account's impersonation; each runner's lamp to [`Lamps`].
//!
//! A directory that does not read keeps the last good one (and says so in
//! the metrics). A mailbox that leaves stops being watched and its lamp is
//! turned off once; one whose line or group changed has its old lamp turned
//! off and its new one set. EWS requests of all mailboxes share 16 slots, so
//! a start with thousands of mailboxes stays inside Exchange's concurrency
//! budget (`EWSMaxConcurrency`, 27 by default).

use crate::config::{Auth, DirectorySource, GatewayConfig, MailboxAccess};
use crate::lamps::{Lamps, LampsError, LineRef};
use crate::metrics::{Health, Metrics};
use lamplighter_directory::{Directory, Entry};
use lamplighter_ews_client::group::{HubConfig, StreamHub};
use lamplighter_ews_client::{ClientConfig, Credentials as EwsCredentials, Password};
use lamplighter_mailbox::Connection;
use lamplighter_runner::{MailboxSetup, RunConfig, RunEvent, Runner};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// EWS requests in flight at once for all mailboxes together: below the
/// service account's `EWSMaxConcurrency` (27 by default), so a start with
/// thousands of mailboxes is never throttled for concurrency.
pub const REQUESTS_AT_ONCE: usize = 16;

/// Why the gateway cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the directory {path}: {reason}")]
    Directory { path: String, reason: String },
    #[error(transparent)]
    Credentials(#[from] crate::credentials::CredentialError),
    #[error(transparent)]
    Lamps(#[from] LampsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot serve /metrics on {addr}: {source}")]
    Http { addr: SocketAddr, source: std::io::Error },
    #[error("the CA file {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("the app's certificate: {0}")]
    AppCertificate(#[from] lamplighter_signin::SignInError),
    #[error(transparent)]
    Graph(#[from] lamplighter_graph_client::GraphClientError),
    #[error(transparent)]
    Push(#[from] lamplighter_graph_push::PushError),
}

/// How the mailboxes are reached, once the secrets are read.
enum Access {
    /// EWS through the service account; streaming shared per mailbox server.
    Ews {
        credentials: EwsCredentials,
        ews_url: String,
        /// Every mailbox's streaming, on shared connections per mailbox server.
        hub: StreamHub,
        /// Every ErrorServerBusy of every mailbox.
        throttled: lamplighter_ews_client::ThrottleCount,
        /// The service account's concurrent requests, for every mailbox together.
        slots: lamplighter_ews_client::RequestSlots,
        /// The service account's idle connections, for every mailbox together.
        pool: lamplighter_ews_client::ConnectionPool,
    },
    /// App-only Graph: one token for every mailbox; change notifications when configured.
    Graph {
        root: String,
        token: lamplighter_graph_client::TokenSource,
        poll_every: Duration,
        push: Option<(Arc<lamplighter_graph_push::Push>, Duration)>,
    },
}

/// A running gateway.
pub struct Gateway {
    metrics: Arc<Metrics>,
    http: Option<SocketAddr>,
    sip: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    hub_task: tokio::task::JoinHandle<()>,
    push: Option<Arc<lamplighter_graph_push::Push>>,
}

struct Watched {
    entry: Entry,
    runner: Runner,
    follow: tokio::task::JoinHandle<()>,
}

/// What `/healthz` reads.
#[derive(Default)]
struct State {
    connections: HashMap<String, Connection>,
    directory_loaded: bool,
    last_directory_error: Option<String>,
}

struct HealthOf(Arc<Mutex<State>>);

impl Health for HealthOf {
    fn health(&self) -> Result<String, String> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let live = s.connections.values().filter(|c| **c == Connection::Live).count();
        let refused = s.connections.values().filter(|c| matches!(c, Connection::SignInRefused { .. })).count();
        let detail = format!("{live} of {} mailboxes live", s.connections.len());
        if !s.directory_loaded {
            return Err(format!("no directory yet: {}", s.last_directory_error.clone().unwrap_or_default()));
        }
        if refused > 0 && refused == s.connections.len() {
            return Err(format!("Exchange refuses the service account for every mailbox; {detail}"));
        }
        Ok(detail)
    }
}

impl Gateway {
    /// Reads the directory and secrets, opens the SIP endpoint and `/metrics`, and starts watching.
    pub async fn start(
        config: GatewayConfig,
        secrets: crate::credentials::Credentials,
    ) -> Result<Gateway, GatewayError> {
        let ldap_password = match &config.directory {
            DirectorySource::Ldap(l) if l.bind_dn.is_some() => Some(secrets.read("ldap-password")?),
            _ => None,
        };
        let directory = read_directory(&config.directory, ldap_password.as_deref())
            .await
            .map_err(|reason| GatewayError::Directory { path: config.directory.to_string(), reason })?;
        let phone_passwords = secrets.phone_passwords()?;
        let ca = match &config.ca_file {
            Some(p) => Some(
                std::fs::read(p)
                    .map_err(|e| GatewayError::Ca { path: p.display().to_string(), reason: e.to_string() })?,
            ),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        // subscribing phones are served from the start's directory
        let mut subscribers = Vec::new();
        for e in directory.entries().filter(|e| e.mwi) {
            let Some(g) = config.group(&e.group) else { continue };
            if matches!(g.delivery, crate::config::Delivery::Subscribe { .. }) && g.mwi {
                match phone_passwords.get(&e.line) {
                    Some(p) => subscribers.push((LineRef { group: e.group.clone(), line: e.line.clone() }, p.clone())),
                    None => log::warn!(
                        "line {} subscribes but has no digest password in phone-passwords: it is refused",
                        e.line
                    ),
                }
            }
        }
        let store = Arc::new(crate::store::LampStore::open(&config.state_dir)?);
        let current: std::collections::HashSet<LineRef> = directory
            .entries()
            .filter(|e| e.mwi && config.group(&e.group).is_some_and(|g| g.mwi))
            .map(line_of)
            .collect();
        let lamps = Lamps::start(&config, subscribers, store, &current, metrics.clone()).await?;
        let state = Arc::new(Mutex::new(State { directory_loaded: true, ..State::default() }));
        let http = match config.http_listen {
            Some(addr) => Some(
                crate::metrics::serve(addr, metrics.clone(), Arc::new(HealthOf(state.clone())))
                    .await
                    .map_err(|source| GatewayError::Http { addr, source })?,
            ),
            None => None,
        };
        let access = match &config.access {
            MailboxAccess::Ews { ews_url, account, auth } => {
                let password = secrets.read("ews-password")?;
                let credentials = match auth {
                    Auth::Basic => EwsCredentials::Basic { user: account.clone(), password: Password::new(&password) },
                    Auth::Ntlm => EwsCredentials::Ntlm { user: account.clone(), password: Password::new(&password) },
                };
                Access::Ews {
                    credentials,
                    ews_url: ews_url.clone(),
                    hub: StreamHub::new(HubConfig::default()),
                    throttled: lamplighter_ews_client::ThrottleCount::default(),
                    slots: lamplighter_ews_client::RequestSlots::new(REQUESTS_AT_ONCE),
                    pool: lamplighter_ews_client::ConnectionPool::new(REQUESTS_AT_ONCE),
                }
            }
            MailboxAccess::Graph(g) => graph_access(g, &secrets, ca.clone()).await?,
        };
        let (stop, stopped) = watch::channel(false);
        let sip = lamps.listening.clone();
        log::info!("SIP endpoint {sip}; {} directory entries", directory.len());
        let hub_task = tokio::spawn(figures(&access, metrics.clone()));
        let push = match &access {
            Access::Graph { push: Some((p, _)), .. } => Some(p.clone()),
            _ => None,
        };
        let service = Service {
            config,
            access,
            ca,
            lamps,
            metrics: metrics.clone(),
            state,
            watched: HashMap::new(),
            ldap_password,
            recogniser: lamplighter_recognise::Recogniser::default(),
        };
        let task = tokio::spawn(service.run(directory, stopped));
        Ok(Gateway { metrics, http, sip, stop, task, hub_task, push })
    }

    /// Where `/metrics` is served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// The SIP endpoint (`udp:IP:port`).
    pub fn sip(&self) -> &str {
        &self.sip
    }

    /// The figures.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Where Graph's change notifications are taken, when they are.
    pub fn webhook_addr(&self) -> Option<SocketAddr> {
        self.push.as_ref().map(|p| p.local_addr())
    }

    /// Stops watching (every subscription ended on the server).
    pub async fn stop(self) {
        self.hub_task.abort();
        let _ = self.stop.send(true);
        let _ = self.task.await;
        if let Some(p) = &self.push {
            p.stop().await;
        }
    }
}

/// The app's sign-in and, when configured, the change notification service.
async fn graph_access(
    g: &crate::config::GraphAccess,
    secrets: &crate::credentials::Credentials,
    ca: Option<Vec<u8>>,
) -> Result<Access, GatewayError> {
    use lamplighter_signin::app::{AppAuthority, AppCertificate, AppSession};
    let cert = secrets.read("graph-certificate")?;
    let key = secrets.read("graph-key")?;
    let mut authority = AppAuthority::new(&g.authority, &g.client_id);
    authority.extra_ca_pem = ca.clone();
    let session = AppSession::new(authority, AppCertificate::from_pem(&cert, &key)?)?;
    let token: lamplighter_graph_client::TokenSource = Arc::new(move |fresh| {
        let session = session.clone();
        Box::pin(async move { session.access_token(fresh).await.map_err(|e| e.to_string()) })
    });
    let push = match &g.notifications {
        None => None,
        Some(n) => {
            let tls = if n.tls {
                let c = secrets.read("webhook-certificate")?;
                let k = secrets.read("webhook-key")?;
                Some((c.into_bytes(), k.into_bytes()))
            } else {
                None
            };
            let keeper = lamplighter_graph_push::KeeperConfig { lifetime: n.lifetime, ..Default::default() };
            let mut clients = Vec::new();
            for _ in 0..keeper.max_in_flight {
                let mut c = lamplighter_graph_client::GraphConfig::new(&g.graph_url, token.clone());
                c.extra_ca_pem = ca.clone();
                clients.push(Arc::new(lamplighter_graph_client::GraphClient::new(c)?));
            }
            let config = lamplighter_graph_push::PushConfig {
                listen: n.listen,
                public_url: n.url.clone(),
                tls,
                keeper,
                pushed_every: n.poll_every,
            };
            let push = lamplighter_graph_push::Push::start(config, clients).await?;
            log::info!("Graph change notifications: {} (listening on {})", n.url, push.local_addr());
            Some((Arc::new(push), n.poll_every))
        }
    };
    Ok(Access::Graph { root: g.graph_url.clone(), token, poll_every: g.poll_every, push })
}

/// Each second: the streaming groups' figures (EWS) or the subscriptions' (Graph).
fn figures(access: &Access, figures: Arc<Metrics>) -> impl Future<Output = ()> + Send + 'static {
    enum Source {
        Ews(StreamHub, lamplighter_ews_client::ThrottleCount),
        Push(Arc<lamplighter_graph_push::Push>),
        None,
    }
    let source = match access {
        Access::Ews { hub, throttled, .. } => Source::Ews(hub.clone(), throttled.clone()),
        Access::Graph { push: Some((p, _)), .. } => Source::Push(p.clone()),
        Access::Graph { .. } => Source::None,
    };
    async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        let mut counted = 0;
        let mut before = lamplighter_graph_push::KeeperStats::default();
        loop {
            every.tick().await;
            match &source {
                Source::Ews(hub, throttled) => {
                    let now = throttled.get();
                    figures.throttled.inc_by(now.saturating_sub(counted));
                    counted = now;
                    for g in hub.stats() {
                        let label = crate::metrics::GroupLabels { group: g.group.clone() };
                        figures.streaming_connections.get_or_create(&label).set(g.connections as i64);
                        figures.streaming_subscriptions.get_or_create(&label).set(g.subscriptions as i64);
                    }
                }
                Source::Push(p) => {
                    let s = p.stats();
                    figures.graph_subscriptions_live.set(s.live as i64);
                    figures.graph_notifications.inc_by(s.accepted.saturating_sub(before.accepted));
                    figures.graph_notifications_refused.inc_by(s.refused.saturating_sub(before.refused));
                    figures.graph_subscription_failures.inc_by(s.failed.saturating_sub(before.failed));
                    for (event, now, was) in [
                        ("missed", s.missed, before.missed),
                        ("subscriptionRemoved", s.removed, before.removed),
                        ("reauthorizationRequired", s.reauthorizations, before.reauthorizations),
                    ] {
                        let label = crate::metrics::LifecycleLabels { event: event.into() };
                        figures.graph_lifecycle.get_or_create(&label).inc_by(now.saturating_sub(was));
                    }
                    before = s;
                }
                Source::None => {}
            }
        }
    }
}

struct Service {
    config: GatewayConfig,
    access: Access,
    ca: Option<Vec<u8>>,
    lamps: Lamps,
    metrics: Arc<Metrics>,
    state: Arc<Mutex<State>>,
    watched: HashMap<String, Watched>,
    ldap_password: Option<String>,
    recogniser: lamplighter_recognise::Recogniser,
}

/// Reads the directory from its source: a file, or an LDAP search (its
/// skipped entries logged).
pub async fn read_directory(source: &DirectorySource, ldap_password: Option<&str>) -> Result<Directory, String> {
    match source {
        DirectorySource::File(path) => Directory::load(path).map_err(|e| e.to_string()),
        DirectorySource::Ldap(l) => {
            let reading = l.read(ldap_password).await.map_err(|e| e.to_string())?;
            for (dn, why) in reading.skipped.iter().take(20) {
                log::info!("LDAP entry {dn} skipped: {why}");
            }
            if reading.skipped.len() > 20 {
                log::info!("… and {} more LDAP entries skipped", reading.skipped.len() - 20);
            }
            Ok(reading.directory)
        }
    }
}

fn line_of(e: &Entry) -> LineRef {
    LineRef { group: e.group.clone(), line: e.line.clone() }
}

impl Service {
    async fn run(mut self, first: Directory, mut stopped: watch::Receiver<bool>) {
        let mut current = Directory::default();
        self.apply(&current, &first).await;
        current = first;
        let mut every = tokio::time::interval(self.config.directory_every);
        every.tick().await;
        loop {
            tokio::select! {
                _ = every.tick() => {
                    match read_directory(&self.config.directory, self.ldap_password.as_deref()).await {
                        Ok(next) => {
                            self.metrics.directory_stale.set(0);
                            self.apply(&current, &next).await;
                            current = next;
                        }
                        Err(e) => {
                            self.metrics.directory_errors.inc();
                            self.metrics.directory_stale.set(1);
                            log::warn!("the directory {} does not read ({e}); keeping the last good one ({} entries)", self.config.directory, current.len());
                            self.state.lock().unwrap_or_else(|p| p.into_inner()).last_directory_error = Some(e);
                        }
                    }
                }
                _ = stopped.changed() => break,
            }
        }
        for (_, w) in self.watched.drain() {
            w.follow.abort();
            w.runner.stop().await;
        }
    }

    /// Whether an entry gets a lamp at all: its switch and its group's.
    fn wants_lamp(&self, e: &Entry) -> bool {
        e.mwi && self.config.group(&e.group).is_some_and(|g| g.mwi)
    }

    async fn apply(&mut self, old: &Directory, new: &Directory) {
        let changes = lamplighter_directory::diff(old, new);
        for e in &changes.removed {
            self.unwatch(&e.address, true);
        }
        for (before, after) in &changes.changed {
            let was = self.watched.contains_key(&before.address.to_ascii_lowercase());
            if was && self.wants_lamp(after) && line_of(before) == line_of(after) {
                continue;
            }
            self.unwatch(&before.address, true);
            if self.wants_lamp(after) {
                self.watch(after.clone()).await;
            }
        }
        for e in &changes.added {
            if self.config.group(&e.group).is_none() {
                log::warn!("{}: no [[group]] named {}; not watched", e.address, e.group);
                continue;
            }
            if self.wants_lamp(e) {
                self.watch(e.clone()).await;
            }
        }
        self.metrics.directory_entries.set(new.len() as i64);
        self.metrics.mailboxes_watched.set(self.watched.len() as i64);
        if !changes.is_empty() {
            log::info!(
                "directory: {} added, {} removed, {} changed; {} mailboxes watched",
                changes.added.len(),
                changes.removed.len(),
                changes.changed.len(),
                self.watched.len()
            );
        }
    }

    fn unwatch(&mut self, address: &str, lamp_off: bool) {
        let Some(w) = self.watched.remove(&address.to_ascii_lowercase()) else { return };
        w.follow.abort();
        if let Access::Graph { push: Some((p, _)), .. } = &self.access {
            p.unwatch(address);
        }
        if lamp_off {
            self.lamps.remove(line_of(&w.entry));
        }
        self.state.lock().unwrap_or_else(|p| p.into_inner()).connections.remove(&address.to_ascii_lowercase());
        self.gauges();
        tokio::spawn(w.runner.stop());
    }

    fn gauges(&self) {
        gauges(&self.state, &self.metrics);
    }

    /// How the runner of `address` reaches its mailbox.
    fn setup(&self, address: &str) -> MailboxSetup {
        match &self.access {
            Access::Ews { credentials, ews_url, hub, throttled, slots, pool } => {
                let mut client = ClientConfig::new(address.to_string(), credentials.clone());
                client.ews_url = Some(ews_url.clone());
                client.impersonate = true;
                client.extra_ca_pem = self.ca.clone();
                client.stream_hub = Some(hub.clone());
                client.throttled = Some(throttled.clone());
                // a mailbox speaks rarely (its stream is on a shared connection): the account's
                // connections are shared, about one per request in flight, kept a minute
                client.connection_pool = Some(pool.clone());
                client.idle_keep = Duration::from_secs(60);
                client.request_slots = Some(slots.clone());
                MailboxSetup::ews(client)
            }
            Access::Graph { root, token, poll_every, push } => {
                let mut config = lamplighter_graph_client::GraphConfig::new(root.clone(), token.clone());
                config.user = Some(address.to_string());
                config.extra_ca_pem = self.ca.clone();
                // no user at a window here: one pace, spread over the mailboxes by a seed of each
                config.poll.idle_interval = *poll_every;
                config.poll.active_interval = *poll_every;
                config.poll.jitter_seed = address.bytes().fold(0x5eed_u64, |h, b| h.rotate_left(5) ^ u64::from(b));
                if let Some((p, every)) = push {
                    let nudge = lamplighter_graph_client::Nudge::new(*every);
                    p.watch(address, nudge.clone());
                    config.nudge = Some(nudge);
                }
                MailboxSetup::Graph { config }
            }
        }
    }

    async fn watch(&mut self, entry: Entry) {
        let user = match lamplighter_missed_calls::UserIdentity::new(std::slice::from_ref(&entry.address), &[]) {
            Ok(u) => u,
            Err(e) => {
                log::warn!("{}: {e}; not watched", entry.address);
                return;
            }
        };
        let run = RunConfig {
            mailbox: self.setup(&entry.address),
            user,
            include_missed_calls: false,
            // one compiled rule set for every mailbox (a clone shares its patterns)
            recogniser: self.recogniser.clone(),
            phones: Vec::new(),
            subscribers: Vec::new(),
            sip: lamplighter_sip_notify::SenderConfig::udp(SocketAddr::from(([127, 0, 0, 1], 0))),
            relay: Default::default(),
            audio_cache: None,
            // it follows the state lines only (a missed one is followed by the next);
            // the lamp comes by its own watch
            event_buffer: 8,
        };
        let runner = match Runner::start(run).await {
            Ok(r) => r,
            Err(e) => {
                log::warn!("{}: cannot start ({e})", entry.address);
                return;
            }
        };
        let key = entry.address.to_ascii_lowercase();
        self.state.lock().unwrap_or_else(|p| p.into_inner()).connections.insert(key.clone(), Connection::Connecting);
        let follow = tokio::spawn(follow(
            runner.events(),
            runner.lamp(),
            line_of(&entry),
            key.clone(),
            self.lamps.clone(),
            self.state.clone(),
            self.metrics.clone(),
        ));
        self.watched.insert(key, Watched { entry, runner, follow });
    }
}

fn gauges(state: &Mutex<State>, metrics: &Metrics) {
    let s = state.lock().unwrap_or_else(|p| p.into_inner());
    let live = s.connections.values().filter(|c| **c == Connection::Live).count();
    let retrying = s
        .connections
        .values()
        .filter(|c| matches!(c, Connection::Reconnecting { .. } | Connection::SignInRefused { .. }))
        .count();
    metrics.mailboxes_live.set(live as i64);
    metrics.mailboxes_reconnecting.set(retrying as i64);
}

/// One mailbox's lamp and connection, until it is unwatched.
async fn follow(
    mut events: tokio::sync::broadcast::Receiver<RunEvent>,
    mut lamp: watch::Receiver<Option<lamplighter_um::Counts>>,
    line: LineRef,
    key: String,
    lamps: Lamps,
    state: Arc<Mutex<State>>,
    metrics: Arc<Metrics>,
) {
    loop {
        tokio::select! {
            changed = lamp.changed() => {
                if changed.is_err() {
                    break;
                }
                let counts = *lamp.borrow_and_update();
                if let Some(c) = counts {
                    lamps.set(line.clone(), c);
                }
            }
            e = events.recv() => match e {
                Ok(RunEvent::State { connection, .. }) => {
                    if let Connection::Reconnecting { .. } = &connection {
                        log::warn!("{key}: {connection}");
                    }
                    if let Connection::SignInRefused { reason } = &connection {
                        log::error!("{key}: Exchange refused the service account: {reason}");
                    }
                    state.lock().unwrap_or_else(|p| p.into_inner()).connections.insert(key.clone(), connection);
                    gauges(&state, &metrics);
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
        }
    }
}
