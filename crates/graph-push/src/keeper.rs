//! One Graph subscription per mailbox, kept alive — sans-IO, on the
//! caller's clock. It says what to send ([`Keeper::poll_wants`]: create,
//! renew, delete), takes the answers ([`Keeper::answered`]) and what the
//! webhook received ([`Keeper::notification`]), and says what follows for
//! each mailbox ([`Keeper::poll_event`]: it changed, or notifications
//! started or stopped flowing, so its delta polling runs at the safety
//! net's pace or its own).
//!
//! - A subscription is renewed two thirds into its life (± 5 % by a hash of
//!   the mailbox, so thousands made together are not renewed together),
//!   retried with back-off while its life lasts, and made again when Graph
//!   no longer knows it (404) or it lapsed.
//! - A failed creation (the webhook not reachable, the app not allowed the
//!   mailbox) is retried after 1 minute, doubling to an hour; meanwhile the
//!   mailbox is polled at its own pace.
//! - `missed` is a change (the mailbox resyncs by delta); `subscriptionRemoved`
//!   makes the subscription again and resyncs; `reauthorizationRequired`
//!   renews at once (a renewal reauthorizes) and resyncs.
//! - A notification counts only for a known subscription with this
//!   keeper's `clientState`, compared in constant time. A stranger's forged
//!   POST changes nothing.
//! - At most `max_in_flight` requests at a time, whatever the number of mailboxes.

use lamplighter_graph_wire::subscription::{Lifecycle, parse_notifications};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How subscriptions are kept.
#[derive(Debug, Clone, Copy)]
pub struct KeeperConfig {
    /// The life asked for each subscription (Graph gives messages at most 10,070 minutes).
    pub lifetime: Duration,
    /// The first wait after a failure; it doubles.
    pub retry_initial: Duration,
    /// The longest wait after failures.
    pub retry_max: Duration,
    /// Requests to Graph at once.
    pub max_in_flight: usize,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        KeeperConfig {
            lifetime: Duration::from_secs(3 * 24 * 3600),
            retry_initial: Duration::from_secs(60),
            retry_max: Duration::from_secs(3600),
            max_in_flight: 4,
        }
    }
}

/// A request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// `POST /subscriptions` for the mailbox, for `lifetime`.
    Create { mailbox: String, lifetime: Duration },
    /// `PATCH /subscriptions/{id}` to a new expiry `lifetime` from now.
    Renew { mailbox: String, id: String, lifetime: Duration },
    /// `DELETE /subscriptions/{id}` (its mailbox is no longer watched).
    Delete { id: String },
}

/// How a create or a renewal went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The subscription and how long it lives from now (its `expirationDateTime`).
    Ok { id: String, lives: Duration },
    /// Graph does not know the subscription (404): make it again.
    Gone,
    /// Any other failure; `retry_after` when the server asked for a wait.
    Failed { why: String, retry_after: Option<Duration> },
}

/// What follows for a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// It changed: poll it now.
    Changed(String),
    /// Notifications flow for it (a live subscription) or not.
    Flowing(String, bool),
}

/// What the webhook's body came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Notifications that counted.
    pub accepted: usize,
    /// Notifications for no subscription of ours, or with another `clientState`.
    pub refused: usize,
}

/// Figures for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeeperStats {
    pub mailboxes: usize,
    /// With a live subscription.
    pub live: usize,
    pub created: u64,
    pub renewed: u64,
    pub failed: u64,
    pub accepted: u64,
    pub refused: u64,
    pub missed: u64,
    pub removed: u64,
    pub reauthorizations: u64,
}

#[derive(Debug, Clone)]
enum State {
    /// No subscription; make one at `due`.
    Waiting,
    Creating,
    Live {
        id: String,
        expires: Instant,
    },
    Renewing {
        id: String,
        expires: Instant,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    state: State,
    /// When the next request for it is due (none while one is in flight).
    due: Option<Instant>,
    failures: u32,
}

/// The subscriptions of many mailboxes.
#[derive(Debug)]
pub struct Keeper {
    config: KeeperConfig,
    client_state: String,
    entries: HashMap<String, Entry>,
    /// Subscription id → mailbox.
    ids: HashMap<String, String>,
    timers: BTreeSet<(Instant, String)>,
    deletes: VecDeque<String>,
    events: VecDeque<Event>,
    in_flight: usize,
    stats: KeeperStats,
}

/// Equal bytes, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A stable number in 0..=1000 for a mailbox (FNV-1a), to spread renewals.
fn spread(mailbox: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in mailbox.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h % 1001
}

impl Keeper {
    /// `client_state`: the secret every subscription carries, from a CSPRNG.
    pub fn new(config: KeeperConfig, client_state: String) -> Keeper {
        Keeper {
            config,
            client_state,
            entries: HashMap::new(),
            ids: HashMap::new(),
            timers: BTreeSet::new(),
            deletes: VecDeque::new(),
            events: VecDeque::new(),
            in_flight: 0,
            stats: KeeperStats::default(),
        }
    }

    /// The `clientState` to send with every subscription.
    pub fn client_state(&self) -> &str {
        &self.client_state
    }

    fn schedule(&mut self, mailbox: &str, at: Instant) {
        if let Some(e) = self.entries.get_mut(mailbox) {
            e.due = Some(at);
            self.timers.insert((at, mailbox.to_string()));
        }
    }

    fn back_off(&self, failures: u32) -> Duration {
        self.config.retry_initial.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(self.config.retry_max)
    }

    /// When to renew a subscription that lives `lives` from `now`: two thirds in, ± 5 % of its life by mailbox.
    fn renew_at(&self, mailbox: &str, now: Instant, lives: Duration) -> Instant {
        let share = 2.0 / 3.0 + 0.05 * (spread(mailbox) as f64 / 500.0 - 1.0);
        now + lives.mul_f64(share)
    }

    /// Watches a mailbox (a subscription is made at once, within `max_in_flight`).
    pub fn add(&mut self, mailbox: &str, now: Instant) {
        if self.entries.contains_key(mailbox) {
            return;
        }
        self.entries.insert(mailbox.to_string(), Entry { state: State::Waiting, due: None, failures: 0 });
        self.schedule(mailbox, now);
    }

    /// Stops watching a mailbox; its subscription is deleted.
    pub fn remove(&mut self, mailbox: &str) {
        let Some(e) = self.entries.remove(mailbox) else { return };
        if let State::Live { id, .. } | State::Renewing { id, .. } = e.state {
            self.ids.remove(&id);
            self.deletes.push_back(id);
        }
    }

    /// The requests due at `now`, at most as many as may be in flight.
    pub fn poll_wants(&mut self, now: Instant) -> Vec<Want> {
        let mut out = Vec::new();
        while self.in_flight < self.config.max_in_flight {
            if let Some(id) = self.deletes.pop_front() {
                self.in_flight += 1;
                out.push(Want::Delete { id });
                continue;
            }
            let Some((at, mailbox)) = self.timers.first().cloned() else { break };
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(e) = self.entries.get_mut(&mailbox) else { continue };
            if e.due != Some(at) {
                continue; // a stale timer
            }
            e.due = None;
            let lifetime = self.config.lifetime;
            match e.state.clone() {
                State::Waiting => {
                    e.state = State::Creating;
                    self.in_flight += 1;
                    out.push(Want::Create { mailbox, lifetime });
                }
                State::Live { id, expires } if expires <= now => {
                    // lapsed while renewals failed: made again
                    self.ids.remove(&id);
                    e.state = State::Creating;
                    self.in_flight += 1;
                    self.events.push_back(Event::Flowing(mailbox.clone(), false));
                    out.push(Want::Create { mailbox, lifetime });
                }
                State::Live { id, expires } => {
                    e.state = State::Renewing { id: id.clone(), expires };
                    self.in_flight += 1;
                    out.push(Want::Renew { mailbox, id, lifetime });
                }
                State::Creating | State::Renewing { .. } => {}
            }
        }
        out
    }

    /// A delete was answered (however it went: an unknown id is gone anyway).
    pub fn deleted(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The answer to a [`Want::Create`] or [`Want::Renew`] for `mailbox`.
    pub fn answered(&mut self, mailbox: &str, now: Instant, outcome: Outcome) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let Some(e) = self.entries.get(mailbox).cloned() else {
            // unwatched meanwhile: what was made goes again
            if let Outcome::Ok { id, .. } = outcome {
                self.deletes.push_back(id);
            }
            return;
        };
        let renewing = matches!(e.state, State::Renewing { .. });
        match outcome {
            Outcome::Ok { id, lives } => {
                let was_live = renewing;
                if renewing {
                    self.stats.renewed += 1;
                } else {
                    self.stats.created += 1;
                }
                self.ids.insert(id.clone(), mailbox.to_string());
                let at = self.renew_at(mailbox, now, lives);
                if let Some(x) = self.entries.get_mut(mailbox) {
                    x.state = State::Live { id, expires: now + lives };
                    x.failures = 0;
                }
                self.schedule(mailbox, at);
                if !was_live {
                    self.events.push_back(Event::Flowing(mailbox.to_string(), true));
                    // what changed before the subscription was made is fetched now
                    self.events.push_back(Event::Changed(mailbox.to_string()));
                }
            }
            Outcome::Gone => {
                self.stats.failed += 1;
                if let State::Renewing { id, .. } = &e.state {
                    self.ids.remove(id);
                }
                if let Some(x) = self.entries.get_mut(mailbox) {
                    x.state = State::Waiting;
                }
                self.schedule(mailbox, now);
                self.events.push_back(Event::Flowing(mailbox.to_string(), false));
                self.events.push_back(Event::Changed(mailbox.to_string()));
            }
            Outcome::Failed { why, retry_after } => {
                self.stats.failed += 1;
                let failures = e.failures.saturating_add(1);
                let wait = retry_after.unwrap_or_else(|| self.back_off(failures)).max(Duration::from_secs(1));
                log::info!("Graph subscription of {mailbox}: {why}; again in {} s", wait.as_secs());
                let next = match &e.state {
                    // still alive: renew again later, or make anew once it lapsed
                    State::Renewing { id, expires } => State::Live { id: id.clone(), expires: *expires },
                    _ => State::Waiting,
                };
                if let Some(x) = self.entries.get_mut(mailbox) {
                    x.state = next;
                    x.failures = failures;
                }
                let at = match &e.state {
                    State::Renewing { expires, .. } => (now + wait).min(*expires),
                    _ => now + wait,
                };
                self.schedule(mailbox, at);
            }
        }
    }

    /// A webhook POST's body: each notification checked, and what follows queued.
    pub fn notification(&mut self, body: &[u8], now: Instant) -> Result<Verdict, lamplighter_graph_wire::WireError> {
        let list = parse_notifications(body)?;
        let mut verdict = Verdict::default();
        let mut changed = HashSet::new();
        for n in list {
            let Some(mailbox) = self.ids.get(&n.subscription_id).cloned() else {
                verdict.refused += 1;
                continue;
            };
            if !n.client_state.as_deref().is_some_and(|c| same(c, &self.client_state)) {
                verdict.refused += 1;
                continue;
            }
            verdict.accepted += 1;
            match n.lifecycle {
                None => {
                    changed.insert(mailbox);
                }
                Some(Lifecycle::Missed) => {
                    self.stats.missed += 1;
                    changed.insert(mailbox);
                }
                Some(Lifecycle::Removed) => {
                    self.stats.removed += 1;
                    self.ids.remove(&n.subscription_id);
                    if let Some(e) = self.entries.get_mut(&mailbox) {
                        e.state = State::Waiting;
                    }
                    self.schedule(&mailbox, now);
                    self.events.push_back(Event::Flowing(mailbox.clone(), false));
                    changed.insert(mailbox);
                }
                Some(Lifecycle::ReauthorizationRequired) => {
                    self.stats.reauthorizations += 1;
                    if let Some(e) = self.entries.get(&mailbox)
                        && matches!(e.state, State::Live { .. })
                    {
                        self.schedule(&mailbox, now);
                    }
                    // what Graph held back meanwhile may never come: delta catches it up
                    changed.insert(mailbox);
                }
            }
        }
        self.stats.accepted += verdict.accepted as u64;
        self.stats.refused += verdict.refused as u64;
        let mut changed: Vec<String> = changed.into_iter().collect();
        changed.sort();
        self.events.extend(changed.into_iter().map(Event::Changed));
        Ok(verdict)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When the next create or renewal falls due. Deletes have no time:
    /// the next [`Keeper::poll_wants`] hands them out.
    pub fn next_wake(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Figures.
    pub fn stats(&self) -> KeeperStats {
        let live =
            self.entries.values().filter(|e| matches!(e.state, State::Live { .. } | State::Renewing { .. })).count();
        KeeperStats { mailboxes: self.entries.len(), live, ..self.stats }
    }

    /// Every live subscription's id (to delete them at a stop).
    pub fn live_ids(&self) -> Vec<String> {
        self.ids.keys().cloned().collect()
    }
}
