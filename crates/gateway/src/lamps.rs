//! Where each line's lamp goes, on one SIP endpoint for all of them:
//!
//! - **trunk** groups through [`lamplighter_lamp_dispatch::Dispatcher`]
//!   (round robin, 5-minute failover, 200/480, the 12-hour refresh spread
//!   over the cycle, rate limits, a resend when a gateway comes back);
//! - **phone** and **publish** lines each through a relay of
//!   `lamplighter-sip-notify` (unsolicited NOTIFY, or PUBLISH with
//!   `SIP-If-Match` refreshes), sharing the endpoint;
//! - **subscribe** lines through the subscription server, whose phones
//!   prove themselves with digest before they learn anything.
//!
//! The service tells [`Lamps`] what each line should show and that a line
//! left; everything about sending is decided here.

use crate::config::{Delivery, GatewayConfig, SipGateway};
use crate::metrics::{GatewayLabels, Metrics};
use crate::store::LampStore;
use futures_util::stream::{FuturesUnordered, StreamExt};
use lamplighter_lamp_dispatch::{
    DispatchConfig, Dispatcher, Event, GatewayConfig as DispatchGateway, GatewayId, Outcome, Rate, RouteId,
};
use lamplighter_sip_mwi::guard::PhoneAuth;
use lamplighter_sip_mwi::relay::{RelayConfig, RelayEvent};
use lamplighter_sip_mwi::summary::{MessageSummary, UrgentPart};
use lamplighter_sip_notify::driver::{PhoneTarget, RelayHandle};
use lamplighter_sip_notify::subscriptions::{Subscriber, SubscriptionEvent, SubscriptionHandle};
use lamplighter_sip_notify::{NotifyError, NotifySender, SenderConfig};
use lamplighter_um::Counts;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;

/// A line in its group (lines are unique within a group).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineRef {
    pub group: String,
    pub line: String,
}

impl std::fmt::Display for LineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.group, self.line)
    }
}

/// Why the SIP side could not start.
#[derive(Debug, thiserror::Error)]
pub enum LampsError {
    #[error("cannot open the SIP endpoint on {addr}: {source}")]
    Sip { addr: String, source: NotifyError },
}

enum Command {
    Set(LineRef, Counts),
    Remove(LineRef),
}

/// Sets lamps; cheap to clone.
#[derive(Clone)]
pub struct Lamps {
    commands: mpsc::UnboundedSender<Command>,
    /// Where the endpoint listens (`udp:…`), for the log and the tests.
    pub listening: String,
}

impl Lamps {
    /// The line's lamp should show `counts`.
    pub fn set(&self, line: LineRef, counts: Counts) {
        let _ = self.commands.send(Command::Set(line, counts));
    }

    /// The line left: its lamp goes off once (if it was on), then it is forgotten.
    pub fn remove(&self, line: LineRef) {
        let _ = self.commands.send(Command::Remove(line));
    }

    /// Opens the endpoint and starts delivering. `subscribers` are the
    /// lines of subscribe groups with their digest passwords.
    /// `current` are the lines the directory gives a lamp now; lines the
    /// store remembers that are not among them are turned off.
    pub async fn start(
        config: &GatewayConfig,
        subscribers: Vec<(LineRef, String)>,
        store: Arc<LampStore>,
        current: &HashSet<LineRef>,
        metrics: Arc<Metrics>,
    ) -> Result<Lamps, LampsError> {
        let sip = SenderConfig { tcp: config.sip_tcp, ..SenderConfig::udp(config.sip_listen) };
        let sender = Arc::new(
            NotifySender::start(sip)
                .await
                .map_err(|source| LampsError::Sip { addr: config.sip_listen.to_string(), source })?,
        );
        let listening = format!("udp:{}", sender.listening().udp);
        // trunk groups are the dispatcher's routes
        let mut routes = Vec::new();
        let mut route_of = HashMap::new();
        for g in &config.groups {
            if let Delivery::Trunk { gateways, .. } = &g.delivery {
                route_of.insert(g.name.clone(), RouteId(routes.len()));
                routes.push(gateways.iter().copied().map(GatewayId).collect::<Vec<_>>());
            }
        }
        let dispatch = DispatchConfig {
            refresh_every: config.refresh_every,
            global_rate: Rate { per_second: config.rate_global, burst: config.rate_global },
            gateway_rate: Rate { per_second: config.rate_per_gateway, burst: config.rate_per_gateway },
            ..DispatchConfig::default()
        };
        let now = tokio::time::Instant::now().into_std();
        let gateways: Vec<DispatchGateway> =
            config.gateways.iter().map(|g| DispatchGateway { mwi_enabled: g.mwi }).collect();
        let mut dispatcher = Dispatcher::new(dispatch, gateways, routes, now);
        // what each trunk line acknowledged before a restart is not sent again unless it changes
        let mut extensions = HashMap::new();
        let acked = store.acked().unwrap_or_else(|e| {
            log::error!("{e}: every lamp is sent again");
            Vec::new()
        });
        for a in acked {
            let Some(route) = route_of.get(&a.line.group).copied() else {
                let _ = store.forget(&a.line);
                continue;
            };
            let k = key(&a.line);
            dispatcher.restore(&k, route, a.counts, now);
            if a.leaving || !current.contains(&a.line) {
                dispatcher.remove_line(&k, now);
                let _ = store.leaving(&a.line);
            }
            extensions.insert(k, a.line);
        }
        for g in &config.gateways {
            metrics.gateway_up.get_or_create(&GatewayLabels { gateway: g.name.clone() }).set(1);
        }
        let order: Vec<LineRef> = subscribers.iter().map(|(l, _)| l.clone()).collect();
        let subscriptions = if subscribers.is_empty() {
            None
        } else {
            let phones = subscribers
                .into_iter()
                .map(|(l, password)| Subscriber {
                    uri: format!("sip:{}@{}", l.line, subscribe_domain(config, &l.group).unwrap_or_default()),
                    auth: PhoneAuth::Digest { username: l.line.clone(), password },
                    urgent: UrgentPart::Always,
                })
                .collect();
            Some(
                lamplighter_sip_notify::subscriptions::serve(sender.clone(), phones, Default::default())
                    .map_err(|source| LampsError::Sip { addr: config.sip_listen.to_string(), source })?,
            )
        };
        let (commands, rx) = mpsc::unbounded_channel();
        let task = Task {
            config: config.clone(),
            sender,
            dispatcher,
            route_of,
            relays: HashMap::new(),
            subscriptions,
            subscriber_index: order.into_iter().enumerate().map(|(i, l)| (l, i)).collect(),
            extensions,
            store,
            metrics,
        };
        tokio::spawn(task.run(rx));
        Ok(Lamps { commands, listening })
    }
}

fn subscribe_domain(config: &GatewayConfig, group: &str) -> Option<String> {
    match &config.group(group)?.delivery {
        Delivery::Subscribe { domain } => Some(domain.clone()),
        _ => None,
    }
}

struct Task {
    config: GatewayConfig,
    sender: Arc<NotifySender>,
    dispatcher: Dispatcher,
    route_of: HashMap<String, RouteId>,
    relays: HashMap<LineRef, RelayHandle>,
    subscriptions: Option<SubscriptionHandle>,
    subscriber_index: HashMap<LineRef, usize>,
    /// The dispatcher's line key → the line.
    extensions: HashMap<String, LineRef>,
    store: Arc<LampStore>,
    metrics: Arc<Metrics>,
}

/// The dispatcher's key for a trunk line (the group keeps equal extensions of two PBXs apart).
fn key(l: &LineRef) -> String {
    format!("{}\u{1f}{}", l.group, l.line)
}

type SendResult = (u64, &'static str, Result<u16, NotifyError>);

impl Task {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>) {
        let now = || tokio::time::Instant::now().into_std();
        let mut in_flight: FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = SendResult> + Send>>> =
            FuturesUnordered::new();
        let mut sub_events = self.subscriptions.as_ref().map(|s| s.events());
        let (relay_tx, mut relay_rx) = mpsc::unbounded_channel::<(&'static str, RelayEvent)>();
        let mut gauges = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            while let Some(send) = self.dispatcher.poll_send(now()) {
                let Some(line) = self.extensions.get(&send.line).cloned() else {
                    self.dispatcher.handle(now(), send.id, Outcome::Delivered);
                    continue;
                };
                let Some(domain) = self.config.group(&line.group).and_then(|g| match &g.delivery {
                    Delivery::Trunk { domain, .. } => Some(domain.clone()),
                    _ => None,
                }) else {
                    continue;
                };
                let gateway: SipGateway = self.config.gateways[send.gateway.0].clone();
                let sender = self.sender.clone();
                let uri = format!("sip:{}@{domain}", line.line);
                let summary = MessageSummary::voice_with(&uri, send.counts, UrgentPart::Always);
                let id = send.id;
                in_flight.push(Box::pin(async move {
                    let via = gateway.uri();
                    let r = sender.send_via(&uri, Some(&via), gateway.transport, "lamplighter", &summary, None).await;
                    (id, "trunk", r.map(|d| d.code))
                }));
            }
            self.events();
            let deadline = self.dispatcher.next_wake(now()).map(tokio::time::Instant::from_std);
            tokio::select! {
                c = rx.recv() => match c {
                    Some(Command::Set(line, counts)) => self.set(line, counts, &relay_tx),
                    Some(Command::Remove(line)) => self.remove(line),
                    None => break,
                },
                Some((id, delivery, r)) = in_flight.next(), if !in_flight.is_empty() => {
                    let outcome = match &r {
                        Ok(code) => Outcome::from_status(*code),
                        Err(NotifyError::Rejected { code, .. }) => Outcome::from_status(*code),
                        Err(e) => Outcome::Failed { reason: e.to_string() },
                    };
                    let code = match &r { Ok(c) => Some(*c), Err(e) => e.code() };
                    let other = if matches!(r, Err(NotifyError::Timeout)) { "timeout" } else { "transport" };
                    let ok = matches!(outcome, Outcome::Delivered);
                    self.dispatcher.handle(now(), id, outcome);
                    // stored before it is counted: whoever sees the figure may rely on the store
                    self.events();
                    self.metrics.count(delivery, code, ok, other);
                }
                Some((delivery, e)) = relay_rx.recv() => {
                    match e {
                        RelayEvent::Delivered { .. } => self.metrics.count(delivery, Some(200), true, ""),
                        RelayEvent::Failed { failure, .. } => {
                            use lamplighter_sip_mwi::relay::SendFailure as F;
                            let code = match &failure { F::Rejected { code, .. } | F::Credentials { code, .. } => Some(*code), _ => None };
                            let other = if matches!(failure, F::Timeout) { "timeout" } else { "transport" };
                            self.metrics.count(delivery, code, false, other);
                        }
                    }
                }
                e = recv_any(&mut sub_events) => match e {
                    Some(SubscriptionEvent::Notified { code, .. }) => {
                        let ok = code.is_some_and(|c| (200..300).contains(&c));
                        self.metrics.count("subscribe", code, ok, "timeout");
                    }
                    Some(SubscriptionEvent::Answered { from, code }) => log::info!("SUBSCRIBE from {from}: {code}"),
                    Some(_) => {}
                    None => sub_events = None,
                },
                _ = gauges.tick() => self.gauges(),
                _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {}
            }
        }
    }

    fn gauges(&mut self) {
        let now = tokio::time::Instant::now().into_std();
        let m = &self.metrics;
        m.queue_depth.set(self.dispatcher.queue_depth(now) as i64);
        m.oldest_wrong_seconds.set(self.dispatcher.oldest_wrong(now).map_or(0.0, |d| d.as_secs_f64()));
        m.lines.set((self.dispatcher.lines() + self.relays.len() + self.subscriber_index.len()) as i64);
        m.lines_correct.set(self.dispatcher.correct() as i64);
        for (i, g) in self.config.gateways.iter().enumerate() {
            let up = i64::from(!self.dispatcher.is_down(GatewayId(i), now));
            m.gateway_up.get_or_create(&GatewayLabels { gateway: g.name.clone() }).set(up);
        }
        if let Some(s) = &self.subscriptions {
            m.subscriptions.set(s.stats().subscriptions as i64);
        }
    }

    /// The dispatcher's events: logged, and acknowledged lamps stored.
    fn events(&mut self) {
        while let Some(e) = self.dispatcher.poll_event() {
            if let Event::Delivered { line, counts, .. } = &e
                && let Some(l) = self.extensions.get(line)
                && let Err(err) = self.store.acknowledged(l, *counts)
            {
                log::error!("{err}");
            }
            self.log_event(&e);
        }
    }

    fn log_event(&self, e: &Event) {
        let name = |g: &GatewayId| self.config.gateways.get(g.0).map_or("?", |g| g.name.as_str());
        let line = |k: &str| self.extensions.get(k).map_or_else(|| k.to_string(), |l| l.to_string());
        match e {
            Event::Delivered { line: l, gateway, counts } => {
                log::info!("lamp of {} through {}: {}/{}", line(l), name(gateway), counts.new, counts.old)
            }
            Event::Refused { line: l, gateway, code } => {
                log::warn!("lamp of {} refused by {} with {code}; tried again later", line(l), name(gateway))
            }
            Event::GatewayDown { gateway, reason } => {
                log::warn!("SIP gateway {} marked down: {reason}", name(gateway))
            }
            Event::GatewayUp { gateway, resending } => {
                log::info!("SIP gateway {} is back: resending {resending} lamp(s)", name(gateway))
            }
            Event::GaveUp { line: l, reason } => {
                log::error!(
                    "lamp of {}: every gateway failed for the failover time ({reason}); trying again later",
                    line(l)
                )
            }
            Event::NoGateway { line: l } => log::warn!("lamp of {}: no gateway of its group has MWI on", line(l)),
        }
    }

    fn set(&mut self, line: LineRef, counts: Counts, relay_events: &mpsc::UnboundedSender<(&'static str, RelayEvent)>) {
        let now = tokio::time::Instant::now().into_std();
        let Some(group) = self.config.group(&line.group).cloned() else {
            log::warn!("line {line}: no [[group]] named {}", line.group);
            return;
        };
        match &group.delivery {
            Delivery::Trunk { .. } => {
                let k = key(&line);
                self.extensions.insert(k.clone(), line.clone());
                self.dispatcher.set_lamp(&k, self.route_of[&group.name], counts, now);
            }
            Delivery::Subscribe { .. } => match (self.subscriber_index.get(&line), &self.subscriptions) {
                (Some(i), Some(s)) => s.set_counts_of(*i, counts),
                _ => log::warn!("line {line} joined a subscribe group after start: restart the gateway to serve it"),
            },
            Delivery::Phone { phone, transport } => {
                let uri = phone.replace("{line}", &line.line);
                let target = self.target(uri, *transport, lamplighter_sip_notify::driver::Delivery::Notify);
                self.relay(line, target, "phone", counts, relay_events);
            }
            Delivery::Publish { server, domain, transport, expires } => {
                let uri = format!("sip:{}@{domain}", line.line);
                let how = lamplighter_sip_notify::driver::Delivery::Publish {
                    server: Some(server.clone()),
                    expires: *expires,
                };
                let target = self.target(uri, *transport, how);
                self.relay(line, target, "publish", counts, relay_events);
            }
        }
    }

    fn target(
        &self,
        uri: String,
        transport: lamplighter_sip_notify::Transport,
        delivery: lamplighter_sip_notify::driver::Delivery,
    ) -> PhoneTarget {
        PhoneTarget {
            account: uri.clone(),
            uri,
            transport,
            credentials: None,
            refresh: self.config.refresh_every,
            delivery,
            urgent: UrgentPart::Always,
        }
    }

    fn relay(
        &mut self,
        line: LineRef,
        target: PhoneTarget,
        delivery: &'static str,
        counts: Counts,
        events: &mpsc::UnboundedSender<(&'static str, RelayEvent)>,
    ) {
        let handle = self.relays.entry(line).or_insert_with(|| {
            let h = lamplighter_sip_notify::driver::spawn(self.sender.clone(), vec![target], RelayConfig::default());
            let mut rx = h.events();
            let events = events.clone();
            tokio::spawn(async move {
                while let Ok(e) = rx.recv().await {
                    if events.send((delivery, e)).is_err() {
                        break;
                    }
                }
            });
            h
        });
        handle.set_counts(counts);
    }

    fn remove(&mut self, line: LineRef) {
        let now = tokio::time::Instant::now().into_std();
        let Some(group) = self.config.group(&line.group).cloned() else { return };
        match group.delivery {
            Delivery::Trunk { .. } => {
                self.dispatcher.remove_line(&key(&line), now);
                if let Err(e) = self.store.leaving(&line) {
                    log::error!("{e}");
                }
            }
            Delivery::Subscribe { .. } => {
                if let (Some(i), Some(s)) = (self.subscriber_index.get(&line), &self.subscriptions) {
                    s.set_counts_of(*i, Counts::default());
                }
            }
            Delivery::Phone { .. } | Delivery::Publish { .. } => {
                if let Some(h) = self.relays.remove(&line) {
                    // off once; the relay ends when its last handle goes, after this send
                    h.set_counts(Counts::default());
                    tokio::spawn(async move {
                        let mut rx = h.events();
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv()).await;
                        drop(h);
                    });
                }
            }
        }
    }
}

async fn recv_any<T: Clone>(rx: &mut Option<tokio::sync::broadcast::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => loop {
            match r.recv().await {
                Ok(e) => return Some(e),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        },
        None => std::future::pending().await,
    }
}
