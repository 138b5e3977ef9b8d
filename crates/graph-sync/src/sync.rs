//! Delta polling of one folder, sans-IO: which request is due when, and what
//! each answer means as mailbox changes. The driver passes `now` and the
//! answers in and sends what [`DeltaSync::poll_request`] hands out.
//!
//! ```text
//!   start ─► delta (no token) ─► nextLink … ─► deltaLink: caught up (Live)
//!                                                 │ wait the poll interval
//!                                                 ▼
//!                                     deltaLink ─► changes … ─► deltaLink ─► wait …
//!   429 / 503 + Retry-After ─► wait as asked (capped), same request again
//!   410 / syncStateNotFound ─► Change::Reset, a new round from no token
//!   401 (after the driver's one token refresh) ─► signed out: "sign in again", nothing sent until woken
//!   any other failure ─► back-off 2 s doubling to 5 min (±20 %), same request again
//! ```
//!
//! **Polling.** Graph pushes only to public webhooks, which a desktop has
//! not, so the folder is polled: every [`PollConfig::active_interval`] for
//! [`PollConfig::active_for`] after a change or a user action, else every
//! [`PollConfig::idle_interval`]. With the defaults (3 s, 2 min, 6.02 s) an
//! idle folder costs 598 requests an hour, and an idle mailbox 600 with the
//! two readings of its folder list (`mailbox`) — 6 % of the 10,000 per 10
//! minutes Graph allows an app per mailbox — and a deposit is seen after
//! 3 s on the median when idle, 1.5 s while active. One request per folder
//! is in flight at a time, well inside Graph's 4 concurrent requests per
//! mailbox.
//!
//! A page's changes are handed out before its link is: a driver that stores
//! each link from [`DeltaSync::poll_link`] after applying the changes before
//! it never skips one.

use crate::convert;
use lamplighter_graph_wire::{Continue, DeltaEntry, DeltaPage, Failure};
use lamplighter_mailbox_sync::Change;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How often to poll and how to back off.
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// Between rounds shortly after a change or a user action.
    pub active_interval: Duration,
    /// Between rounds otherwise.
    pub idle_interval: Duration,
    /// How long "shortly after" lasts.
    pub active_for: Duration,
    /// The first wait after a failure; it doubles.
    pub retry_initial: Duration,
    /// The longest wait after failures.
    pub retry_max: Duration,
    /// The longest `Retry-After` honoured (a longer one is waited this long).
    pub max_retry_after: Duration,
    /// ± this share of each back-off, so clients do not return together.
    pub jitter_percent: u32,
    /// Seeds the jitter (per process and mailbox).
    pub jitter_seed: u64,
    /// How often the folder list is read again (`MailboxSync`).
    pub folders_every: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig {
            active_interval: Duration::from_secs(3),
            // 6 s, and 20 ms more so that the folder listings fit an idle hour of 600
            idle_interval: Duration::from_millis(6020),
            active_for: Duration::from_secs(120),
            retry_initial: Duration::from_secs(2),
            retry_max: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(600),
            jitter_percent: 20,
            jitter_seed: 0x5eed,
            folders_every: crate::mailbox::REDISCOVER_EVERY,
        }
    }
}

/// A request for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The first request of a round without a token (`request::delta_start`).
    Start,
    /// A link the server handed out (check it with `request::link_path`).
    Follow(String),
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// A delta page.
    Page(DeltaPage),
    /// An HTTP failure, classified, with words for the status line.
    Failed { failure: Failure, words: String },
    /// No answer: connection refused, reset, timed out, a body that does not read.
    Broken(String),
}

/// Where tracking stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The first round is under way.
    Syncing,
    /// Caught up, polling.
    Live,
    /// A failure; the next attempt is at `until`.
    Waiting { until: Instant, reason: String },
    /// The token is refused even after a refresh: the user must sign in again.
    SignedOut { reason: String },
}

#[derive(Debug, Clone)]
enum Phase {
    Due {
        at: Instant,
        request: Request,
    },
    InFlight(Request),
    /// Nothing is sent until woken; then `request` again.
    SignedOut {
        reason: String,
        request: Request,
    },
}

/// The delta polling of one folder.
#[derive(Debug)]
pub struct DeltaSync {
    config: PollConfig,
    phase: Phase,
    /// A round from no token has not reached its deltaLink yet.
    catching_up: bool,
    changes: VecDeque<Change>,
    links: VecDeque<String>,
    failures: u32,
    /// Expiries since the last completed round.
    resets: u32,
    last_reason: Option<String>,
    active_until: Option<Instant>,
    /// Until when the server asked us to wait (`Retry-After`): not even a resume polls before.
    server_wait_until: Option<Instant>,
    /// A change notification came while a request was in flight: the next round is due at once.
    notified_in_flight: bool,
    rng: u64,
}

impl DeltaSync {
    /// Starts from a stored delta link, or from nothing.
    pub fn new(config: PollConfig, stored_link: Option<String>, now: Instant) -> DeltaSync {
        let (request, catching_up) = match stored_link {
            Some(link) => (Request::Follow(link), false),
            None => (Request::Start, true),
        };
        DeltaSync {
            config,
            phase: Phase::Due { at: now, request },
            catching_up,
            changes: VecDeque::new(),
            links: VecDeque::new(),
            failures: 0,
            resets: 0,
            last_reason: None,
            active_until: None,
            server_wait_until: None,
            notified_in_flight: false,
            rng: config.jitter_seed | 1,
        }
    }

    /// The request due at `now`, if any (one at a time).
    pub fn poll_request(&mut self, now: Instant) -> Option<Request> {
        match &self.phase {
            Phase::Due { at, request } if *at <= now => {
                let r = request.clone();
                self.phase = Phase::InFlight(r.clone());
                Some(r)
            }
            _ => None,
        }
    }

    /// When the next request falls due (`None`: one is in flight, or signed out).
    pub fn next_wake(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Due { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// The next change to apply.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    /// The next delta link to store, once the changes before it are applied.
    pub fn poll_link(&mut self) -> Option<String> {
        if self.changes.is_empty() { self.links.pop_front() } else { None }
    }

    /// Where tracking stands.
    pub fn status(&self) -> Status {
        match &self.phase {
            Phase::SignedOut { reason, .. } => Status::SignedOut { reason: reason.clone() },
            Phase::Due { at, .. } if self.failures > 0 => {
                Status::Waiting { until: *at, reason: self.last_reason.clone().unwrap_or_default() }
            }
            _ if self.catching_up => Status::Syncing,
            _ => Status::Live,
        }
    }

    /// The user did something (opened the window, played a message): poll
    /// at the active pace for a while.
    pub fn user_active(&mut self, now: Instant) {
        self.active_until = Some(now + self.config.active_for);
        if let Phase::Due { at, .. } = &mut self.phase
            && self.failures == 0
        {
            *at = (*at).min(now + self.config.active_interval);
        }
    }

    /// Poll now: "Retry now", the network came back, the machine woke up,
    /// or a new token after signing in again. Failures are forgiven.
    pub fn wake(&mut self, now: Instant) {
        self.failures = 0;
        self.last_reason = None;
        match &mut self.phase {
            Phase::Due { at, .. } => *at = now,
            Phase::SignedOut { request, .. } => {
                // the position is still good after a sign-in: the same request again
                let request = request.clone();
                self.phase = Phase::Due { at: now, request };
            }
            Phase::InFlight(_) => {}
        }
    }

    /// The machine woke from sleep (or the network changed): poll now, with
    /// the back-off forgiven, since what failed before was likely the
    /// sleep. A server's `Retry-After` is still honoured, and a signed-out
    /// account stays signed out (only a sign-in wakes it): a resume never
    /// becomes a request the server or the user did not allow.
    pub fn resumed(&mut self, now: Instant) {
        if self.server_wait_until.is_some_and(|u| now < u) {
            return;
        }
        if let Phase::Due { at, .. } = &mut self.phase {
            *at = (*at).min(now);
            self.failures = 0;
        }
    }

    /// A change notification said the mailbox changed: poll now, unless
    /// failing (the back-off stands: a flood of notifications must not
    /// become a flood of requests) or the server asked to wait. In flight,
    /// the round after this one is due at once, so a change that the round
    /// in flight may have missed is never left to the (long) pushed interval.
    pub fn notified(&mut self, now: Instant) {
        if self.failures > 0 || self.server_wait_until.is_some_and(|u| now < u) {
            return;
        }
        match &mut self.phase {
            Phase::Due { at, .. } => *at = (*at).min(now),
            Phase::InFlight(_) => self.notified_in_flight = true,
            Phase::SignedOut { .. } => {}
        }
    }

    /// The next poll no later than `within` from now (notifications stopped:
    /// the fallback pace starts at once, not after the long pushed interval).
    pub fn due_within(&mut self, now: Instant, within: Duration) {
        if let Phase::Due { at, .. } = &mut self.phase
            && self.failures == 0
        {
            *at = (*at).min(now + within);
        }
    }

    /// New polling intervals (more folders, a smaller share of the budget
    /// each); they apply from the next round.
    pub fn set_intervals(&mut self, active: Duration, idle: Duration) {
        self.config.active_interval = active;
        self.config.idle_interval = idle;
    }

    fn interval(&self, now: Instant) -> Duration {
        if self.active_until.is_some_and(|u| now < u) { self.config.active_interval } else { self.config.idle_interval }
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        // xorshift: deterministic for a seed, different per mailbox
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let pct = u64::from(self.config.jitter_percent.min(100));
        if pct == 0 {
            return d;
        }
        let span = 2 * pct + 1;
        let offset = (self.rng % span) as i64 - pct as i64;
        let ms = d.as_millis() as i64;
        Duration::from_millis((ms + ms * offset / 100).max(0) as u64)
    }

    fn back_off(&mut self, now: Instant, request: Request, reason: String, wait: Option<Duration>) {
        self.failures = self.failures.saturating_add(1);
        let exp =
            self.config.retry_initial.saturating_mul(1u32 << (self.failures - 1).min(16)).min(self.config.retry_max);
        let asked = wait.is_some();
        let wait = match wait {
            // at least a second: a `Retry-After: 0` is no reason for a tight loop
            Some(w) => w.clamp(Duration::from_secs(1), self.config.max_retry_after),
            None => self.jittered(exp),
        };
        self.server_wait_until = asked.then_some(now + wait);
        self.last_reason = Some(reason);
        self.phase = Phase::Due { at: now + wait, request };
    }

    /// Takes the answer to the request in flight.
    pub fn handle(&mut self, now: Instant, response: Response) {
        let Phase::InFlight(request) = self.phase.clone() else { return };
        match response {
            Response::Page(page) => {
                self.failures = 0;
                self.last_reason = None;
                let news = !page.entries.is_empty();
                for entry in page.entries {
                    self.changes.push_back(match entry {
                        DeltaEntry::Changed(m) => {
                            let item = convert::item(&m);
                            if self.catching_up { Change::Added(item) } else { Change::Updated(item) }
                        }
                        DeltaEntry::Removed { id, .. } => {
                            Change::Removed(lamplighter_ews_wire::ItemId { id, change_key: String::new() })
                        }
                    });
                }
                if news && !self.catching_up {
                    self.active_until = Some(now + self.config.active_for);
                }
                match page.then {
                    Continue::Next(link) => {
                        self.phase = Phase::Due { at: now, request: Request::Follow(link) };
                    }
                    Continue::Delta(link) => {
                        self.catching_up = false;
                        self.resets = 0;
                        self.links.push_back(link.clone());
                        let at =
                            if std::mem::take(&mut self.notified_in_flight) { now } else { now + self.interval(now) };
                        self.phase = Phase::Due { at, request: Request::Follow(link) };
                    }
                }
            }
            Response::Failed { failure, words } => match failure {
                Failure::Throttled { retry_after } => {
                    self.back_off(now, request, format!("throttled by Graph: {words}"), retry_after)
                }
                Failure::DeltaExpired => {
                    // the server forgot the round: everything again, reported as a
                    // reset; at once the first time, with the back-off if it repeats
                    if !self.catching_up {
                        self.changes.push_back(Change::Reset);
                    }
                    self.links.clear();
                    self.catching_up = true;
                    self.resets += 1;
                    if self.resets == 1 {
                        self.phase = Phase::Due { at: now, request: Request::Start };
                    } else {
                        self.back_off(now, Request::Start, format!("the delta round expired again ({words})"), None);
                    }
                }
                Failure::Unauthorized { .. } => {
                    let reason = format!("Microsoft 365 refused the sign-in ({words}): sign in again");
                    self.phase = Phase::SignedOut { reason, request };
                }
                Failure::Forbidden => {
                    let reason =
                        format!("access to the mailbox is denied ({words}): an admin must consent or allow it");
                    self.phase = Phase::SignedOut { reason, request };
                }
                Failure::NotFound | Failure::Server | Failure::Other => self.back_off(now, request, words, None),
            },
            Response::Broken(why) => self.back_off(now, request, why, None),
        }
    }
}
