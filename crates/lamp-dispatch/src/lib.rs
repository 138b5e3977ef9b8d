//! The gateway's lamp delivery for many lines, sans-IO: which
//! message-summary NOTIFY goes to which SIP gateway (or PBX trunk) when.
//! No sockets and no clock: the driver tells it what each line's lamp should
//! show ([`Dispatcher::set_lamp`]), asks what to send
//! ([`Dispatcher::poll_send`]), reports how each send went
//! ([`Dispatcher::handle`]) and sleeps until [`Dispatcher::next_wake`].
//!
//! The policy is Exchange 2010 UM's (seed `001`), for thousands of lines:
//!
//! - **Routes and round robin.** A line belongs to a route, an ordered list
//!   of gateways that reach its PBX; each new delivery takes the route's
//!   next gateway in turn, skipping gateways whose MWI is switched off and
//!   those that failed in the last [`DispatchConfig::gateway_down_for`].
//! - **Failover for 5 minutes.** A send that gets no answer, or a 5xx or
//!   408, marks the gateway down and goes at once to the next one; when
//!   every gateway of the route has failed it waits (2 s doubling to 1 min)
//!   and goes round again, for [`DispatchConfig::failover_for`] (UM's 5
//!   minutes) since the delivery's first try. Then it gives up, says so
//!   ([`Event::GaveUp`], UM's event-log entry) and starts again after
//!   [`DispatchConfig::after_giving_up`], so no lamp stays wrong for good.
//! - **200 and 480.** A 2xx is the lamp acknowledged. A 480 (Temporarily
//!   Unavailable: the PBX knows no phone there now) and any other 4xx or 6xx
//!   are about the line, not the gateway: the line is tried again after
//!   1 min doubling to 1 h, and the gateway stays in use.
//! - **One send per line at a time, only what changed.** Changes during a
//!   send go after it, with the latest counts; counts already acknowledged
//!   are not sent again, except as the refresh.
//! - **Refresh within 12 hours, spread evenly.** Every lamp is sent again
//!   at least every [`DispatchConfig::refresh_every`], at a time of the
//!   cycle fixed by a hash of its line, so 10,000 lamps make a steady
//!   trickle (one every 4.3 s), not a burst at the hour.
//! - **A gateway that comes back** (its first success after being marked
//!   down) gets every lamp of its routes resent, as fast as the rate limits
//!   allow: a PBX restarted behind it has lost its lamps.
//! - **Rate limits**, global and per gateway (token buckets): a change
//!   storm or a resend after an outage never floods a gateway.
//! - **A line that leaves** ([`Dispatcher::remove_line`]) has its lamp
//!   turned off once (if it was on) and is then forgotten.

use lamplighter_um::Counts;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// A gateway, by its place in the driver's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayId(pub usize);

/// A route, by its place in the driver's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId(pub usize);

/// A rate: so many sends a second, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// Timing and limits.
#[derive(Debug, Clone, Copy)]
pub struct DispatchConfig {
    /// How long one delivery goes round the route's gateways (UM: 5 minutes).
    pub failover_for: Duration,
    /// The wait before a new round of failover after giving up.
    pub after_giving_up: Duration,
    /// The first wait after every gateway of a route failed; it doubles.
    pub cycle_initial: Duration,
    /// The longest such wait.
    pub cycle_max: Duration,
    /// How long a failed gateway is skipped before it is tried again.
    pub gateway_down_for: Duration,
    /// The first wait after a 4xx/6xx for a line; it doubles.
    pub refused_initial: Duration,
    /// The longest such wait.
    pub refused_max: Duration,
    /// Every lamp is sent again within this (UM: 12 hours).
    pub refresh_every: Duration,
    /// All gateways together.
    pub global_rate: Rate,
    /// Each gateway.
    pub gateway_rate: Rate,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            failover_for: Duration::from_secs(300),
            after_giving_up: Duration::from_secs(300),
            cycle_initial: Duration::from_secs(2),
            cycle_max: Duration::from_secs(60),
            gateway_down_for: Duration::from_secs(30),
            refused_initial: Duration::from_secs(60),
            refused_max: Duration::from_secs(3600),
            refresh_every: Duration::from_secs(12 * 3600),
            global_rate: Rate { per_second: 200.0, burst: 200.0 },
            gateway_rate: Rate { per_second: 50.0, burst: 50.0 },
        }
    }
}

/// A gateway's switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayConfig {
    /// UM's `MessageWaitingIndicatorAllowed`: no lamp goes through it when off.
    pub mwi_enabled: bool,
}

/// A NOTIFY to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// Answer with this id.
    pub id: u64,
    pub line: String,
    pub gateway: GatewayId,
    pub counts: Counts,
    /// A refresh or a resend, not a change.
    pub repeat: bool,
}

/// How a send went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Delivered,
    /// A 4xx (but 408) or 6xx: about the line (480: no phone there now).
    Refused { code: u16 },
    /// No answer, a 408 or a 5xx, or the connection failed: about the gateway.
    Failed { reason: String },
}

impl Outcome {
    /// From a final response's status code.
    pub fn from_status(code: u16) -> Outcome {
        match code {
            200..=299 => Outcome::Delivered,
            408 | 500..=599 => Outcome::Failed { reason: format!("SIP {code}") },
            _ => Outcome::Refused { code },
        }
    }
}

/// What happened, for the log and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Delivered {
        line: String,
        gateway: GatewayId,
        counts: Counts,
    },
    Refused {
        line: String,
        gateway: GatewayId,
        code: u16,
    },
    GatewayDown {
        gateway: GatewayId,
        reason: String,
    },
    /// Back after being down; `resending` lamps go again.
    GatewayUp {
        gateway: GatewayId,
        resending: usize,
    },
    /// A delivery went round its route for the whole failover time.
    GaveUp {
        line: String,
        reason: String,
    },
    /// A line has no gateway to go through (none on its route has MWI on).
    NoGateway {
        line: String,
    },
}

/// Where a line's delivery stands after failures.
#[derive(Debug, Clone)]
struct Attempt {
    started: Instant,
    tried: HashSet<GatewayId>,
    cycles: u32,
    last_reason: String,
}

#[derive(Debug, Clone)]
struct Line {
    route: RouteId,
    wanted: Counts,
    acked: Option<Counts>,
    wrong_since: Option<Instant>,
    /// Where in the refresh cycle this line's refresh falls.
    phase: Duration,
    refresh_at: Instant,
    /// A send is due from then (`None`: nothing to send before the refresh).
    due: Option<Instant>,
    /// Send even if the counts were acknowledged (a gateway came back).
    resend: bool,
    in_flight: Option<u64>,
    attempt: Option<Attempt>,
    refusals: u32,
    /// The route's queue and the time it is queued under.
    queued: Option<(RouteId, Instant)>,
    /// Left the directory: forgotten once its lamp is off.
    leaving: bool,
}

impl Line {
    /// A new line wanting `wanted`: due at once unless `acked` already shows it.
    fn new(
        route: RouteId,
        wanted: Counts,
        acked: Option<Counts>,
        phase: Duration,
        refresh_at: Instant,
        now: Instant,
    ) -> Line {
        let wrong = acked != Some(wanted);
        Line {
            route,
            wanted,
            acked,
            wrong_since: wrong.then_some(now),
            phase,
            refresh_at,
            due: wrong.then_some(now),
            resend: false,
            in_flight: None,
            attempt: None,
            refusals: 0,
            queued: None,
            leaving: false,
        }
    }

    fn wake(&self) -> Option<Instant> {
        if self.in_flight.is_some() {
            return None;
        }
        // a pending delivery (or its back-off) decides; else the refresh
        Some(self.due.unwrap_or(self.refresh_at))
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    rate: Rate,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: Rate, now: Instant) -> Bucket {
        Bucket { rate, tokens: rate.burst, at: now }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.rate.per_second).min(self.rate.burst);
        self.at = now;
    }

    fn ready(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }

    /// When a token is there.
    fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 || self.rate.per_second <= 0.0 {
            return now;
        }
        now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate.per_second)
    }
}

#[derive(Debug, Clone)]
struct Gateway {
    config: GatewayConfig,
    down_until: Option<Instant>,
    was_down: bool,
    bucket: Bucket,
}

#[derive(Debug, Clone)]
struct Route {
    gateways: Vec<GatewayId>,
    next: usize,
}

/// The lamps of many lines over a set of gateways.
#[derive(Debug)]
pub struct Dispatcher {
    config: DispatchConfig,
    gateways: Vec<Gateway>,
    routes: Vec<Route>,
    lines: HashMap<String, Line>,
    /// Per route, the lines by when they next need attention: a route
    /// whose gateways are all at their rate waits as a whole, so the others
    /// go on and no line is looked at twice for it.
    queues: Vec<BTreeSet<(Instant, String)>>,
    in_flight: HashMap<u64, (String, GatewayId, Counts)>,
    global: Bucket,
    epoch: Instant,
    next_id: u64,
    events: VecDeque<Event>,
}

/// FNV-1a: a stable hash of a line, for its place in the refresh cycle.
fn stable_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn zero() -> Counts {
    Counts::default()
}

impl Dispatcher {
    /// `gateways` by [`GatewayId`], `routes` (each an ordered list of gateways) by [`RouteId`].
    pub fn new(
        config: DispatchConfig,
        gateways: Vec<GatewayConfig>,
        routes: Vec<Vec<GatewayId>>,
        now: Instant,
    ) -> Dispatcher {
        Dispatcher {
            gateways: gateways
                .into_iter()
                .map(|g| Gateway {
                    config: g,
                    down_until: None,
                    was_down: false,
                    bucket: Bucket::new(config.gateway_rate, now),
                })
                .collect(),
            queues: vec![BTreeSet::new(); routes.len()],
            routes: routes.into_iter().map(|g| Route { gateways: g, next: 0 }).collect(),
            lines: HashMap::new(),
            in_flight: HashMap::new(),
            global: Bucket::new(config.global_rate, now),
            epoch: now,
            next_id: 1,
            events: VecDeque::new(),
            config,
        }
    }

    /// The first refresh slot of `phase` after `now`.
    fn slot_after(&self, phase: Duration, now: Instant) -> Instant {
        let period = self.config.refresh_every.as_millis().max(1);
        let since = now.saturating_duration_since(self.epoch).as_millis();
        let phase = phase.as_millis() % period;
        let k = if since < phase { 0 } else { (since - phase) / period + 1 };
        self.epoch + Duration::from_millis((phase + k * period) as u64)
    }

    fn unqueue(queues: &mut [BTreeSet<(Instant, String)>], l: &mut Line, line: &str) {
        if let Some((r, at)) = l.queued.take()
            && let Some(q) = queues.get_mut(r.0)
        {
            q.remove(&(at, line.to_string()));
        }
    }

    fn requeue(&mut self, line: &str) {
        let Some(l) = self.lines.get_mut(line) else { return };
        Self::unqueue(&mut self.queues, l, line);
        if let Some(at) = l.wake()
            && let Some(q) = self.queues.get_mut(l.route.0)
        {
            l.queued = Some((l.route, at));
            q.insert((at, line.to_string()));
        }
    }

    /// What `line`'s lamp should show (a new line, or new counts), and its route.
    pub fn set_lamp(&mut self, line: &str, route: RouteId, counts: Counts, now: Instant) {
        let phase = Duration::from_millis(stable_hash(line) % self.config.refresh_every.as_millis().max(1) as u64);
        let refresh_at = self.slot_after(phase, now);
        let l = self
            .lines
            .entry(line.to_string())
            .or_insert_with(|| Line::new(route, counts, None, phase, refresh_at, now));
        l.route = route;
        l.leaving = false;
        if l.wanted != counts {
            l.wanted = counts;
            if l.acked != Some(counts) {
                l.wrong_since.get_or_insert(now);
                // a delivery in failover keeps its pace; otherwise at once
                if l.attempt.is_none() || l.due.is_none() {
                    l.due = Some(now);
                }
            } else {
                l.wrong_since = None;
            }
        }
        self.requeue(line);
    }

    /// A line whose lamp is known to show `acked` (kept across a restart of
    /// the gateway): nothing is sent for it until [`Dispatcher::set_lamp`]
    /// asks for other counts, or its refresh slot comes.
    pub fn restore(&mut self, line: &str, route: RouteId, acked: Counts, now: Instant) {
        let phase = Duration::from_millis(stable_hash(line) % self.config.refresh_every.as_millis().max(1) as u64);
        let refresh_at = self.slot_after(phase, now);
        self.lines.insert(line.to_string(), Line::new(route, acked, Some(acked), phase, refresh_at, now));
        self.requeue(line);
    }

    /// `line` left the directory: its lamp is turned off once if it was
    /// on, then the line is forgotten.
    pub fn remove_line(&mut self, line: &str, now: Instant) {
        let Some(l) = self.lines.get_mut(line) else { return };
        let lit = l.acked.is_some_and(|c| c != zero());
        if !lit && l.in_flight.is_none() {
            Self::unqueue(&mut self.queues, l, line);
            self.lines.remove(line);
            return;
        }
        l.leaving = true;
        if l.wanted != zero() {
            l.wanted = zero();
            l.wrong_since.get_or_insert(now);
            if l.attempt.is_none() || l.due.is_none() {
                l.due = Some(now);
            }
        }
        self.requeue(line);
    }

    /// The route's gateways in turn from its cursor: MWI on and not down at `now`.
    fn candidates(&self, route: RouteId, now: Instant) -> Vec<GatewayId> {
        let Some(r) = self.routes.get(route.0) else { return Vec::new() };
        let n = r.gateways.len();
        (0..n)
            .map(|k| r.gateways[(r.next + k) % n])
            .filter(|g| {
                self.gateways.get(g.0).is_some_and(|gw| gw.config.mwi_enabled && gw.down_until.is_none_or(|u| u <= now))
            })
            .collect()
    }

    /// When the route `r` can send next (a gateway with MWI on, not down,
    /// with a token): `None` when it has no gateway with MWI on at all.
    fn route_ready_at(&mut self, r: RouteId, now: Instant) -> Option<Instant> {
        let gateways = self.routes.get(r.0)?.gateways.clone();
        let mut best: Option<Instant> = None;
        for g in gateways {
            let Some(gw) = self.gateways.get_mut(g.0) else { continue };
            if !gw.config.mwi_enabled {
                continue;
            }
            let at = gw.down_until.filter(|u| *u > now).unwrap_or(now).max(gw.bucket.ready_at(now));
            best = Some(best.map_or(at, |b| b.min(at)));
        }
        best
    }

    /// The next NOTIFY to send at `now`, if any.
    pub fn poll_send(&mut self, now: Instant) -> Option<Send> {
        if !self.global.ready(now) {
            return None;
        }
        // the routes that may send now, the one with the oldest due line first
        let mut routes: Vec<(Instant, RouteId)> = Vec::new();
        for r in 0..self.queues.len() {
            let Some((at, _)) = self.queues[r].first() else { continue };
            let at = *at;
            if at > now {
                continue;
            }
            match self.route_ready_at(RouteId(r), now) {
                Some(ready) if ready <= now => routes.push((at, RouteId(r))),
                Some(_) => {}
                None => {
                    // no gateway with MWI on: its lines are told so and wait for the refresh
                    while let Some((at, line)) = self.queues[r].first().cloned() {
                        if at > now {
                            break;
                        }
                        self.queues[r].pop_first();
                        if let Some(l) = self.lines.get_mut(&line) {
                            l.queued = None;
                            l.due = None;
                            l.refresh_at = now + self.config.refresh_every;
                        }
                        self.events.push_back(Event::NoGateway { line: line.clone() });
                        self.requeue(&line);
                    }
                }
            }
        }
        routes.sort();
        for (_, route) in routes {
            if let Some(send) = self.send_from(route, now) {
                return Some(send);
            }
        }
        None
    }

    /// The next send of route `route` at `now` (its gateways are ready).
    fn send_from(&mut self, route: RouteId, now: Instant) -> Option<Send> {
        loop {
            let (at, line) = self.queues[route.0].first().cloned()?;
            if at > now {
                return None;
            }
            self.queues[route.0].pop_first();
            let Some(l) = self.lines.get_mut(&line) else { continue };
            l.queued = None;
            let refresh = now >= l.refresh_at && l.due.is_none_or(|d| d <= now);
            let changed = l.due.is_some_and(|d| d <= now) && (l.acked != Some(l.wanted) || l.resend);
            if !refresh && !changed {
                // woken for nothing (the counts came back to what was acknowledged)
                if l.due.is_some_and(|d| d <= now) {
                    l.due = None;
                    l.attempt = None;
                }
                self.requeue(&line);
                continue;
            }
            let tried = l.attempt.as_ref().map(|a| a.tried.clone()).unwrap_or_default();
            let mut candidates = self.candidates(route, now);
            // within a failover round, the gateways not tried yet first
            candidates.sort_by_key(|g| tried.contains(g));
            let Some(gateway) = candidates.iter().copied().find(|g| self.gateways[g.0].bucket.ready(now)) else {
                // the route's gateways are busy after all: the line waits at its place
                self.requeue(&line);
                return None;
            };
            self.global.take();
            self.gateways[gateway.0].bucket.take();
            if let Some(r) = self.routes.get_mut(route.0)
                && let Some(pos) = r.gateways.iter().position(|g| *g == gateway)
            {
                r.next = (pos + 1) % r.gateways.len();
            }
            let id = self.next_id;
            self.next_id += 1;
            let l = self.lines.get_mut(&line).expect("taken above");
            let counts = l.wanted;
            let repeat = l.acked == Some(counts);
            l.in_flight = Some(id);
            l.resend = false;
            if l.attempt.is_none() {
                l.attempt =
                    Some(Attempt { started: now, tried: HashSet::new(), cycles: 0, last_reason: String::new() });
            }
            self.in_flight.insert(id, (line.clone(), gateway, counts));
            return Some(Send { id, line, gateway, counts, repeat });
        }
    }

    /// When to call [`poll_send`](Self::poll_send) next (`None`: nothing is waiting).
    pub fn next_wake(&mut self, now: Instant) -> Option<Instant> {
        let mut best: Option<Instant> = None;
        for r in 0..self.queues.len() {
            let Some((at, _)) = self.queues[r].first() else { continue };
            let at = *at;
            let wake = if at > now {
                at
            } else {
                match self.route_ready_at(RouteId(r), now) {
                    Some(ready) => ready.max(self.global.ready_at(now)),
                    None => now,
                }
            };
            best = Some(best.map_or(wake, |b| b.min(wake)));
        }
        best
    }

    fn gateway_ok(&mut self, gateway: GatewayId, now: Instant) {
        let Some(gw) = self.gateways.get_mut(gateway.0) else { return };
        gw.down_until = None;
        if std::mem::take(&mut gw.was_down) {
            // back: every lamp of its routes again (a PBX behind it may have restarted)
            let routes: Vec<RouteId> = self
                .routes
                .iter()
                .enumerate()
                .filter(|(_, r)| r.gateways.contains(&gateway))
                .map(|(n, _)| RouteId(n))
                .collect();
            let lines: Vec<String> =
                self.lines.iter().filter(|(_, l)| routes.contains(&l.route)).map(|(k, _)| k.clone()).collect();
            for line in &lines {
                let l = self.lines.get_mut(line).expect("listed");
                l.resend = true;
                if l.attempt.is_none() {
                    l.due = Some(l.due.map_or(now, |d| d.min(now)));
                }
                self.requeue(line);
            }
            self.events.push_back(Event::GatewayUp { gateway, resending: lines.len() });
        }
    }

    /// How the send with `id` went.
    pub fn handle(&mut self, now: Instant, id: u64, outcome: Outcome) {
        let Some((line, gateway, counts)) = self.in_flight.remove(&id) else { return };
        match &outcome {
            Outcome::Delivered | Outcome::Refused { .. } => self.gateway_ok(gateway, now),
            Outcome::Failed { reason } => {
                let down_for = self.config.gateway_down_for;
                if let Some(gw) = self.gateways.get_mut(gateway.0) {
                    if gw.down_until.is_none_or(|u| u <= now) && !gw.was_down {
                        self.events.push_back(Event::GatewayDown { gateway, reason: reason.clone() });
                    }
                    gw.down_until = Some(now + down_for);
                    gw.was_down = true;
                }
            }
        }
        let next_slot = {
            let Some(l) = self.lines.get(&line) else { return };
            self.slot_after(l.phase, now)
        };
        let config = self.config;
        let route_len = self.routes.get(self.lines[&line].route.0).map_or(0, |r| r.gateways.len());
        let l = self.lines.get_mut(&line).expect("present");
        l.in_flight = None;
        if now >= l.refresh_at {
            // this send was the refresh (or stood in for it): the next one in a cycle,
            // and if it did not arrive it is retried as the delivery's pace says
            l.refresh_at = next_slot;
            if outcome != Outcome::Delivered {
                l.resend = true;
            }
        }
        match outcome {
            Outcome::Delivered => {
                l.acked = Some(counts);
                l.attempt = None;
                l.refusals = 0;
                l.refresh_at = next_slot;
                if l.wanted == counts {
                    l.wrong_since = None;
                    l.due = None;
                } else {
                    l.wrong_since.get_or_insert(now);
                    l.due = Some(now);
                }
                self.events.push_back(Event::Delivered { line: line.clone(), gateway, counts });
                if l.leaving && counts == zero() {
                    Self::unqueue(&mut self.queues, l, &line);
                    self.lines.remove(&line);
                    return;
                }
            }
            Outcome::Refused { code } => {
                l.attempt = None;
                l.refusals = l.refusals.saturating_add(1);
                let wait =
                    config.refused_initial.saturating_mul(1u32 << (l.refusals - 1).min(16)).min(config.refused_max);
                l.due = Some(now + wait);
                self.events.push_back(Event::Refused { line: line.clone(), gateway, code });
            }
            Outcome::Failed { reason } => {
                let a = l.attempt.get_or_insert_with(|| Attempt {
                    started: now,
                    tried: HashSet::new(),
                    cycles: 0,
                    last_reason: String::new(),
                });
                a.tried.insert(gateway);
                a.last_reason = reason;
                if now.saturating_duration_since(a.started) >= config.failover_for {
                    let reason = std::mem::take(&mut a.last_reason);
                    l.attempt = None;
                    l.due = Some(now + config.after_giving_up);
                    self.events.push_back(Event::GaveUp { line: line.clone(), reason });
                } else if a.tried.len() >= route_len {
                    // every gateway failed: wait, then round again
                    a.tried.clear();
                    let wait = config.cycle_initial.saturating_mul(1u32 << a.cycles.min(16)).min(config.cycle_max);
                    a.cycles = a.cycles.saturating_add(1);
                    l.due = Some(now + wait);
                } else {
                    l.due = Some(now);
                }
            }
        }
        self.requeue(&line);
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Lines known.
    pub fn lines(&self) -> usize {
        self.lines.len()
    }

    /// Lines whose lamp shows what it should (acknowledged, nothing pending).
    pub fn correct(&self) -> usize {
        self.lines.values().filter(|l| l.wrong_since.is_none()).count()
    }

    /// How long the longest-wrong lamp has been wrong.
    pub fn oldest_wrong(&self, now: Instant) -> Option<Duration> {
        self.lines.values().filter_map(|l| l.wrong_since).min().map(|t| now.saturating_duration_since(t))
    }

    /// Sends due now that wait (for the rate limits or a gateway).
    pub fn queue_depth(&self, now: Instant) -> usize {
        self.queues.iter().map(|q| q.iter().take_while(|(at, _)| *at <= now).count()).sum()
    }

    /// The counts last acknowledged for `line`.
    pub fn acknowledged(&self, line: &str) -> Option<Counts> {
        self.lines.get(line).and_then(|l| l.acked)
    }

    /// Whether `gateway` is marked down at `now`.
    pub fn is_down(&self, gateway: GatewayId, now: Instant) -> bool {
        self.gateways.get(gateway.0).is_some_and(|g| g.down_until.is_some_and(|u| u > now))
    }
}
