//! The relay policy, sans-IO: which message-summary to send to which phone,
//! and when. It holds no sockets and reads no clock; the driver feeds it
//! events and the time, and asks it what to send.
//!
//! ```text
//!   set_counts / resend_now / phone_registered ──► Relay ──► poll_transmit(now) → Transmit
//!   handle_result(now, phone, Ok | Err)        ──►       ──► poll_timeout() → when to call again
//!                                                        ──► poll_event() → Delivered / Failed
//! ```
//!
//! Per phone:
//! - **coalescing, leading edge then trailing**: a change to a phone that was
//!   sent nothing for `coalesce` goes out at once; changes that follow within
//!   `coalesce` of that send wait until the window ends and go out as one
//!   NOTIFY with the latest counts. An isolated deposit lights the lamp without
//!   delay, and a burst of ten changes costs two NOTIFYs (the first change and
//!   the final counts), never ten;
//! - **no repeats**: a state the phone already acknowledged is not sent
//!   again, except as the periodic **refresh** (Exchange UM refreshes at
//!   least every 12 h, so a rebooted phone converges), on `resend_now` (the
//!   user's "Resend lamp to phone"), or when the phone (re-)registers;
//! - **one request in flight**: changes during a transaction are sent after it;
//! - **retry with backoff** after a failure (timeout, error response):
//!   `retry_initial`, doubling up to `retry_max`; every failure is reported
//!   with the phone's response code, and a success resets the backoff;
//! - **no retry storm on a refusal**: credentials refused (401/407 after
//!   ours, or asked for and none configured) and answers that say "never"
//!   (403, 404, 405, 489, 501, 603) are retried only after `retry_refused`
//!   (an hour), since PBXs' intrusion detection bans hosts that repeat them;
//!   "Resend lamp to phone" and new settings try again at once.

use crate::summary::{Counts, MessageSummary, UrgentPart};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Timing of the relay.
#[derive(Debug, Clone, Copy)]
pub struct RelayConfig {
    /// After a NOTIFY to a phone, how long further changes are gathered into
    /// one (the first change after a quiet spell is sent at once). The
    /// setting `[mwi] coalesce_ms`.
    pub coalesce: Duration,
    /// First retry delay after a failure.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// The delay after a refusal ([`SendFailure::is_refusal`]).
    pub retry_refused: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            coalesce: Duration::from_millis(500),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(300),
            retry_refused: Duration::from_secs(3600),
        }
    }
}

/// A phone's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PhoneId(pub usize);

/// Why a NOTIFY did not get through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// No final response before Timer F (32 s).
    Timeout,
    /// A final error response (e.g. 481, 403, 404, 489 or an auth failure).
    Rejected {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// The transport failed (connection refused, name did not resolve).
    Transport(String),
    /// The phone refused our credentials, or asks for credentials none are configured for.
    Credentials {
        /// 401, 403 or 407.
        code: u16,
        /// The phone's reason phrase, or what is missing.
        reason: String,
    },
}

impl SendFailure {
    /// Whether trying again soon would only repeat the refusal.
    pub fn is_refusal(&self) -> bool {
        match self {
            SendFailure::Credentials { .. } => true,
            SendFailure::Rejected { code, .. } => matches!(code, 403 | 404 | 405 | 489 | 501 | 603),
            SendFailure::Timeout | SendFailure::Transport(_) => false,
        }
    }
}

/// How setting one phone's lamp went, as front ends show it: typed, so a
/// window or a script reads the outcome without parsing words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LampResult {
    /// The phone accepted the state (2xx).
    Delivered,
    /// The phone answered with an error.
    Refused {
        /// Its status code.
        code: u16,
        /// Its reason phrase.
        reason: String,
        /// When the relay tries again, if it does.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_in_secs: Option<u64>,
    },
    /// Nothing answered before the transaction timed out.
    NoAnswer {
        /// When the relay tries again, if it does.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_in_secs: Option<u64>,
    },
    /// The phone refused our credentials (or asks for some and none are configured).
    CredentialsRefused {
        /// Its status code.
        code: u16,
        /// Its reason phrase, or what is missing.
        reason: String,
        /// When the relay tries again, if it does.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_in_secs: Option<u64>,
    },
    /// The request could not be sent (connection refused, no route).
    Unreachable {
        /// The transport's words.
        reason: String,
        /// When the relay tries again, if it does.
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_in_secs: Option<u64>,
    },
}

impl LampResult {
    /// A failed send with the relay's next attempt.
    pub fn failed(failure: &SendFailure, retry_in: Option<Duration>) -> LampResult {
        let retry_in_secs = retry_in.map(|d| d.as_secs());
        match failure {
            SendFailure::Timeout => LampResult::NoAnswer { retry_in_secs },
            SendFailure::Rejected { code, reason } => {
                LampResult::Refused { code: *code, reason: reason.clone(), retry_in_secs }
            }
            SendFailure::Transport(reason) => LampResult::Unreachable { reason: reason.clone(), retry_in_secs },
            SendFailure::Credentials { code, reason } => {
                LampResult::CredentialsRefused { code: *code, reason: reason.clone(), retry_in_secs }
            }
        }
    }

    /// Whether the phone took the state.
    pub fn is_delivered(&self) -> bool {
        matches!(self, LampResult::Delivered)
    }
}

impl std::fmt::Display for LampResult {
    /// English words, for logs and the agent's text lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let retry = |f: &mut std::fmt::Formatter<'_>, r: &Option<u64>| match r {
            Some(s) => write!(f, "; retry in {s} s"),
            None => Ok(()),
        };
        match self {
            LampResult::Delivered => f.write_str("ok"),
            LampResult::Refused { code, reason, retry_in_secs } => {
                write!(f, "refused: {code} {reason}")?;
                retry(f, retry_in_secs)
            }
            LampResult::NoAnswer { retry_in_secs } => {
                f.write_str("the phone did not answer")?;
                retry(f, retry_in_secs)
            }
            LampResult::Unreachable { reason, retry_in_secs } => {
                write!(f, "cannot reach the phone: {reason}")?;
                retry(f, retry_in_secs)
            }
            LampResult::CredentialsRefused { code, reason, retry_in_secs } => {
                write!(f, "the phone refused the credentials ({code} {reason}): check its username and password")?;
                retry(f, retry_in_secs)
            }
        }
    }
}

/// A NOTIFY to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// To which phone.
    pub phone: PhoneId,
    /// The phone's SIP URI.
    pub uri: String,
    /// The body.
    pub summary: MessageSummary,
}

/// What happened, for the UI and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayEvent {
    /// The phone accepted this state.
    Delivered {
        /// Which phone.
        phone: PhoneId,
        /// What it now shows.
        counts: Counts,
    },
    /// Sending failed; it is retried after `retry_in`.
    Failed {
        /// Which phone.
        phone: PhoneId,
        failure: SendFailure,
        /// When the next attempt is made.
        retry_in: Duration,
    },
}

/// A phone as the relay sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneStatus {
    /// Nothing sent yet.
    Pending,
    /// The phone shows `counts`.
    Showing {
        /// What it shows.
        counts: Counts,
    },
    /// Sending keeps failing.
    Unreachable {
        /// Failures in a row.
        failures: u32,
        /// The last one.
        last: SendFailure,
    },
}

#[derive(Debug)]
struct Phone {
    uri: String,
    account: String,
    urgent: UrgentPart,
    refresh: Duration,
    acked: Option<Counts>,
    in_flight: Option<Counts>,
    due: Option<Instant>,
    refresh_at: Option<Instant>,
    /// When the last NOTIFY to it started: the coalescing window runs from here.
    last_sent: Option<Instant>,
    force: bool,
    failures: u32,
    last_failure: Option<SendFailure>,
    backoff: Duration,
}

/// The relay for all paired phones of one mailbox.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    /// Unknown until the mailbox first reports: nothing is sent before, so a
    /// restart never switches a lamp off by mistake.
    wanted: Option<Counts>,
    phones: Vec<Phone>,
    events: VecDeque<RelayEvent>,
}

impl Relay {
    /// A relay with no phones and no counts yet.
    pub fn new(config: RelayConfig) -> Self {
        Relay { config, wanted: None, phones: Vec::new(), events: VecDeque::new() }
    }

    /// Pairs a phone; its first NOTIFY is due at once (once counts are known).
    pub fn add_phone(&mut self, now: Instant, uri: &str, account: &str, refresh: Duration) -> PhoneId {
        self.add_phone_with(now, uri, account, refresh, UrgentPart::Always)
    }

    /// Like [`add_phone`](Self::add_phone), writing the summary's urgent part as `urgent` says.
    pub fn add_phone_with(
        &mut self,
        now: Instant,
        uri: &str,
        account: &str,
        refresh: Duration,
        urgent: UrgentPart,
    ) -> PhoneId {
        self.phones.push(Phone {
            uri: uri.to_string(),
            account: account.to_string(),
            urgent,
            refresh,
            acked: None,
            in_flight: None,
            due: Some(now),
            refresh_at: None,
            last_sent: None,
            force: true,
            failures: 0,
            last_failure: None,
            backoff: self.config.retry_initial,
        });
        PhoneId(self.phones.len() - 1)
    }

    /// Changes a phone's refresh interval from its next acknowledged send on
    /// (a presence server that keeps our publication for less than asked).
    pub fn set_refresh(&mut self, phone: PhoneId, refresh: Duration) {
        if let Some(p) = self.phones.get_mut(phone.0) {
            p.refresh = refresh;
        }
    }

    /// The counts the lamps should show. Unchanged counts schedule nothing.
    pub fn set_counts(&mut self, now: Instant, counts: Counts) {
        if self.wanted == Some(counts) {
            return;
        }
        self.wanted = Some(counts);
        let coalesce = self.config.coalesce;
        for p in &mut self.phones {
            if p.acked != Some(counts) || p.in_flight.is_some() {
                // leading edge: at once after a quiet spell; else when the window ends
                let at = match p.last_sent {
                    Some(sent) if now < sent + coalesce => sent + coalesce,
                    _ => now,
                };
                // keep an earlier deadline (a burst does not postpone forever), unless backing off
                p.due = Some(match p.due {
                    Some(d) if d <= at => d,
                    _ if p.failures > 0 => p.due.unwrap_or(at),
                    _ => at,
                });
            }
        }
    }

    /// Sends the current state now, even if the phone already shows it
    /// (the user's "Resend lamp to phone"); `None` means every phone.
    pub fn resend_now(&mut self, now: Instant, phone: Option<PhoneId>) {
        for (i, p) in self.phones.iter_mut().enumerate() {
            if phone.is_none_or(|id| id.0 == i) {
                p.force = true;
                p.due = Some(now);
                p.backoff = self.config.retry_initial;
            }
        }
    }

    /// The phone registered (booted, reconnected): push the state to it.
    pub fn phone_registered(&mut self, now: Instant, phone: PhoneId) {
        self.resend_now(now, Some(phone));
    }

    /// The next NOTIFY that is due, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        let wanted = self.wanted?;
        for (i, p) in self.phones.iter_mut().enumerate() {
            let refresh_due = p.refresh_at.is_some_and(|r| r <= now);
            if p.in_flight.is_some() || !(refresh_due || p.due.is_some_and(|d| d <= now)) {
                continue;
            }
            if p.acked == Some(wanted) && !p.force && !refresh_due {
                // nothing new: next is the refresh
                p.due = None;
                continue;
            }
            p.force = false;
            p.due = None;
            p.refresh_at = None;
            p.last_sent = Some(now);
            p.in_flight = Some(wanted);
            return Some(Transmit {
                phone: PhoneId(i),
                uri: p.uri.clone(),
                summary: MessageSummary::voice_with(&p.account, wanted, p.urgent),
            });
        }
        None
    }

    /// The outcome of the transaction started by the last transmit to `phone`.
    pub fn handle_result(&mut self, now: Instant, phone: PhoneId, result: Result<(), SendFailure>) {
        let Some(p) = self.phones.get_mut(phone.0) else { return };
        let Some(sent) = p.in_flight.take() else { return };
        match result {
            Ok(()) => {
                p.acked = Some(sent);
                p.failures = 0;
                p.last_failure = None;
                p.backoff = self.config.retry_initial;
                p.refresh_at = Some(now + p.refresh);
                p.due = if p.force {
                    // "resend now" came while this NOTIFY was in flight: send again, as asked
                    Some(now)
                } else {
                    // what changed meanwhile goes out when the window ends
                    let window_end = p.last_sent.map_or(now, |t| (t + self.config.coalesce).max(now));
                    (Some(sent) != self.wanted).then_some(window_end)
                };
                self.events.push_back(RelayEvent::Delivered { phone, counts: sent });
            }
            Err(failure) => {
                p.failures += 1;
                let retry_in = if failure.is_refusal() {
                    self.config.retry_refused
                } else {
                    let r = p.backoff;
                    p.backoff = (p.backoff * 2).min(self.config.retry_max);
                    r
                };
                p.due = Some(now + retry_in);
                p.force = true;
                p.last_failure = Some(failure.clone());
                self.events.push_back(RelayEvent::Failed { phone, failure, retry_in });
            }
        }
    }

    /// When the driver should call `poll_transmit` next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.wanted?;
        self.phones.iter().filter(|p| p.in_flight.is_none()).flat_map(|p| [p.due, p.refresh_at]).flatten().min()
    }

    /// The next event for the UI and the log.
    pub fn poll_event(&mut self) -> Option<RelayEvent> {
        self.events.pop_front()
    }

    /// What a phone shows, as far as the relay knows.
    pub fn status(&self, phone: PhoneId) -> Option<PhoneStatus> {
        let p = self.phones.get(phone.0)?;
        Some(match (&p.last_failure, p.acked) {
            (Some(last), _) => PhoneStatus::Unreachable { failures: p.failures, last: last.clone() },
            (None, Some(counts)) => PhoneStatus::Showing { counts },
            (None, None) => PhoneStatus::Pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn counts(new: u32, old: u32) -> Counts {
        Counts { new, old, ..Counts::default() }
    }

    fn setup() -> (Relay, PhoneId, Instant) {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig::default());
        let p = r.add_phone(t0, "sip:613@192.0.2.10", "sip:613@192.0.2.10", 12 * HOUR);
        r.set_counts(t0, counts(0, 0));
        (r, p, t0)
    }

    #[test]
    fn a_shorter_refresh_takes_effect_from_the_next_acknowledged_send() {
        let (mut r, p, t0) = setup();
        let tx = r.poll_transmit(t0).expect("first");
        r.set_refresh(p, Duration::from_secs(540));
        r.handle_result(t0, tx.phone, Ok(()));
        assert_eq!(r.poll_timeout(), Some(t0 + Duration::from_secs(540)), "refreshed at the server's 90 %");
        assert!(r.poll_transmit(t0 + Duration::from_secs(539)).is_none());
        assert!(r.poll_transmit(t0 + Duration::from_secs(540)).is_some());
    }

    #[test]
    fn each_phone_gets_the_urgent_part_as_configured() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { coalesce: Duration::ZERO, ..RelayConfig::default() });
        let always = r.add_phone(t0, "sip:613@192.0.2.10", "sip:613@192.0.2.10;user=phone", HOUR);
        let when = r.add_phone_with(t0, "sip:614@192.0.2.11", "sip:614@192.0.2.11", HOUR, UrgentPart::WhenNonzero);
        let bodies = |r: &mut Relay, at: Instant| {
            let mut out = std::collections::BTreeMap::new();
            while let Some(tx) = r.poll_transmit(at) {
                out.insert(tx.phone.0, tx.summary.to_string());
                r.handle_result(at, tx.phone, Ok(()));
            }
            out
        };
        r.set_counts(t0, counts(2, 1));
        let first = bodies(&mut r, t0);
        assert!(first[&always.0].contains("Voice-Message: 2/1 (0/0)\r\n"), "{first:?}");
        assert!(first[&always.0].contains("Message-Account: sip:613@192.0.2.10;user=phone\r\n"), "{first:?}");
        assert!(first[&when.0].contains("Voice-Message: 2/1\r\n"), "{first:?}");
        r.set_counts(t0 + HOUR / 4, Counts { new: 2, old: 1, urgent_new: 1, urgent_old: 0 });
        let second = bodies(&mut r, t0 + HOUR / 4);
        assert!(second[&when.0].contains("Voice-Message: 2/1 (1/0)\r\n"), "{second:?}");
    }

    #[test]
    fn nothing_is_sent_before_the_mailbox_reports() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig::default());
        let p = r.add_phone(t0, "sip:613@192.0.2.10", "sip:613@192.0.2.10", 12 * HOUR);
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.poll_transmit(t0 + HOUR), None);
        assert_eq!(r.status(p), Some(PhoneStatus::Pending));
        r.set_counts(t0 + HOUR, counts(3, 2));
        let tx = r.poll_transmit(t0 + HOUR).expect("the first state goes out at once");
        assert_eq!(tx.summary.voice_counts(), Some(counts(3, 2)));
    }

    /// Runs the relay with every send succeeding until nothing is due before `until`.
    fn run_ok(r: &mut Relay, until: Instant) -> Vec<(Instant, Counts)> {
        let mut sent = Vec::new();
        while let Some(at) = r.poll_timeout().filter(|t| *t <= until) {
            while let Some(tx) = r.poll_transmit(at) {
                sent.push((at, tx.summary.voice_counts().expect("voice")));
                r.handle_result(at, tx.phone, Ok(()));
            }
        }
        sent
    }

    #[test]
    fn first_state_is_sent_at_once_and_changes_right_after_it_are_coalesced() {
        let (mut r, p, t0) = setup();
        assert_eq!(run_ok(&mut r, t0), vec![(t0, counts(0, 0))]);
        let ms = Duration::from_millis;
        r.set_counts(t0 + ms(100), counts(1, 0));
        r.set_counts(t0 + ms(200), counts(2, 0));
        r.set_counts(t0 + ms(300), counts(3, 0));
        assert_eq!(r.poll_transmit(t0 + ms(499)), None, "within the window of the first send");
        let sent = run_ok(&mut r, t0 + ms(1000));
        assert_eq!(sent, vec![(t0 + ms(500), counts(3, 0))], "one NOTIFY when the window ends");
        assert_eq!(r.status(p), Some(PhoneStatus::Showing { counts: counts(3, 0) }));
    }

    #[test]
    fn an_isolated_change_goes_out_at_once() {
        let (mut r, _, t0) = setup();
        run_ok(&mut r, t0);
        let ms = Duration::from_millis;
        for (i, at) in [ms(600), ms(5_000), Duration::from_secs(3600)].into_iter().enumerate() {
            r.set_counts(t0 + at, counts(i as u32 + 1, 0));
            assert_eq!(r.poll_timeout(), Some(t0 + at), "due at the change itself");
            let tx = r.poll_transmit(t0 + at).expect("sent without waiting");
            assert_eq!(tx.summary.voice_counts(), Some(counts(i as u32 + 1, 0)));
            r.handle_result(t0 + at + ms(2), tx.phone, Ok(()));
        }
    }

    #[test]
    fn a_burst_of_ten_gives_the_first_at_once_and_one_more_with_the_final_counts() {
        let (mut r, _, t0) = setup();
        run_ok(&mut r, t0);
        let ms = Duration::from_millis;
        let start = t0 + Duration::from_secs(60);
        let mut sent = Vec::new();
        for i in 0..10u32 {
            let now = start + ms(u64::from(i) * 11);
            r.set_counts(now, counts(i + 1, 0));
            // the phone answers each NOTIFY within 2 ms
            while let Some(tx) = r.poll_transmit(now) {
                sent.push((now, tx.summary.voice_counts().expect("voice")));
                r.handle_result(now + ms(2), tx.phone, Ok(()));
            }
        }
        sent.extend(run_ok(&mut r, start + Duration::from_secs(10)));
        assert_eq!(sent, vec![(start, counts(1, 0)), (start + ms(500), counts(10, 0))]);
    }

    #[test]
    fn no_window_means_every_change_is_sent_as_it_comes() {
        let t0 = Instant::now();
        let mut r = Relay::new(RelayConfig { coalesce: Duration::ZERO, ..RelayConfig::default() });
        r.add_phone(t0, "sip:613@192.0.2.10", "sip:613@192.0.2.10", 12 * HOUR);
        let ms = Duration::from_millis;
        let mut sent = Vec::new();
        for i in 0..3u32 {
            r.set_counts(t0 + ms(u64::from(i)), counts(i, 0));
            sent.extend(run_ok(&mut r, t0 + ms(u64::from(i))));
        }
        assert_eq!(sent.len(), 3, "{sent:?}");
    }

    #[test]
    fn identical_states_are_not_resent_but_refreshed() {
        let (mut r, _, t0) = setup();
        r.set_counts(t0, counts(2, 1));
        run_ok(&mut r, t0 + Duration::from_secs(1));
        r.set_counts(t0 + Duration::from_secs(2), counts(2, 1));
        assert!(run_ok(&mut r, t0 + 11 * HOUR).is_empty(), "same counts: nothing sent");
        let refresh = run_ok(&mut r, t0 + 13 * HOUR);
        assert_eq!(refresh.len(), 1, "refreshed after 12 h");
        assert_eq!(refresh[0].1, counts(2, 1));
    }

    #[test]
    fn a_change_undone_within_the_burst_sends_nothing() {
        let (mut r, _, t0) = setup();
        run_ok(&mut r, t0);
        r.set_counts(t0 + Duration::from_millis(100), counts(1, 0));
        r.set_counts(t0 + Duration::from_millis(200), counts(0, 0));
        assert!(run_ok(&mut r, t0 + HOUR).is_empty(), "the phone already shows 0/0");
    }

    #[test]
    fn changes_during_a_transaction_follow_it() {
        let (mut r, p, t0) = setup();
        let tx = r.poll_transmit(t0).expect("first");
        r.set_counts(t0 + Duration::from_millis(10), counts(5, 0));
        assert_eq!(r.poll_transmit(t0 + Duration::from_secs(1)), None, "one in flight");
        r.handle_result(t0 + Duration::from_secs(1), tx.phone, Ok(()));
        let next = run_ok(&mut r, t0 + Duration::from_secs(3));
        assert_eq!(next.last().map(|s| s.1), Some(counts(5, 0)));
        assert_eq!(r.status(p), Some(PhoneStatus::Showing { counts: counts(5, 0) }));
    }

    #[test]
    fn failures_back_off_are_reported_and_recover() {
        let (mut r, p, t0) = setup();
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            let tx = r.poll_transmit(now).expect("attempt");
            r.handle_result(now, tx.phone, Err(SendFailure::Timeout));
            match r.poll_event() {
                Some(RelayEvent::Failed { retry_in, failure: SendFailure::Timeout, .. }) => {
                    delays.push(retry_in.as_secs())
                }
                other => panic!("{other:?}"),
            }
            now = r.poll_timeout().expect("retry scheduled");
        }
        assert_eq!(delays, vec![5, 10, 20, 40, 80, 160, 300, 300]);
        assert!(matches!(r.status(p), Some(PhoneStatus::Unreachable { failures: 8, .. })));
        let tx = r.poll_transmit(now).expect("attempt");
        r.handle_result(
            now,
            tx.phone,
            Err(SendFailure::Rejected { code: 481, reason: "Subscription does not exist".into() }),
        );
        assert!(matches!(
            r.poll_event(),
            Some(RelayEvent::Failed { failure: SendFailure::Rejected { code: 481, .. }, .. })
        ));
        now = r.poll_timeout().expect("retry");
        let tx = r.poll_transmit(now).expect("attempt");
        r.handle_result(now, tx.phone, Ok(()));
        assert_eq!(r.status(p), Some(PhoneStatus::Showing { counts: counts(0, 0) }));
        // the backoff starts over
        r.set_counts(now, counts(1, 0));
        let tx = r.poll_transmit(now + Duration::from_secs(1)).expect("send");
        r.handle_result(now + Duration::from_secs(1), tx.phone, Err(SendFailure::Transport("refused".into())));
        assert!(matches!(r.poll_event(), Some(RelayEvent::Delivered { .. })));
        assert!(
            matches!(r.poll_event(), Some(RelayEvent::Failed { retry_in, .. }) if retry_in == Duration::from_secs(5))
        );
    }

    /// Counts the NOTIFYs a phone that always refuses gets in `span` of virtual time,
    /// with the mailbox changing every 10 s meanwhile.
    fn attempts_against(refusal: SendFailure, span: Duration) -> usize {
        let (mut r, _, t0) = setup();
        let (mut now, mut attempts, mut n) = (t0, 0, 0);
        while now < t0 + span {
            while let Some(tx) = r.poll_transmit(now) {
                attempts += 1;
                r.handle_result(now, tx.phone, Err(refusal.clone()));
            }
            n += 1;
            let next_change = t0 + Duration::from_secs(10 * n);
            now = r.poll_timeout().map_or(next_change, |t| t.min(next_change));
            if now == next_change {
                r.set_counts(now, counts(n as u32, 0));
            }
        }
        attempts
    }

    #[test]
    fn a_refusal_is_not_retried_for_an_hour_whatever_changes() {
        let two_minutes = Duration::from_secs(120);
        let forbidden = SendFailure::Rejected { code: 403, reason: "Forbidden".into() };
        assert_eq!(attempts_against(forbidden.clone(), two_minutes), 1);
        let wrong_password = SendFailure::Credentials { code: 401, reason: "Unauthorized".into() };
        assert_eq!(attempts_against(wrong_password, two_minutes), 1);
        // a phone that does not answer is retried on the backoff: 0, 5, 15, 35, 75 s
        assert_eq!(attempts_against(SendFailure::Timeout, two_minutes), 5);
        // over 3 hours: at 0, 1 h, 2 h (and 3 h is the edge)
        assert_eq!(attempts_against(forbidden.clone(), Duration::from_secs(3 * 3600 - 1)), 3);
        let (mut r, p, t0) = setup();
        let tx = r.poll_transmit(t0).expect("first");
        r.handle_result(t0, tx.phone, Err(forbidden));
        match r.poll_event() {
            Some(RelayEvent::Failed { retry_in, .. }) => assert_eq!(retry_in, Duration::from_secs(3600)),
            other => panic!("{other:?}"),
        }
        // the user's "Resend lamp to phone" tries at once
        r.resend_now(t0 + Duration::from_secs(60), Some(p));
        assert!(r.poll_transmit(t0 + Duration::from_secs(60)).is_some());
    }

    #[test]
    fn resend_now_during_a_transaction_is_not_lost() {
        let (mut r, p, t0) = setup();
        let tx = r.poll_transmit(t0).expect("first");
        r.resend_now(t0, Some(p));
        assert_eq!(r.poll_transmit(t0), None, "one transaction at a time");
        r.handle_result(t0, tx.phone, Ok(()));
        assert_eq!(r.poll_transmit(t0).map(|t| t.phone), Some(p), "the resend follows the answer");
    }

    #[test]
    fn resend_now_and_registration_force_a_send_to_one_or_all_phones() {
        let (mut r, p, t0) = setup();
        let q = r.add_phone(t0, "sip:614@192.0.2.11", "sip:614@192.0.2.11", 12 * HOUR);
        run_ok(&mut r, t0);
        let later = t0 + Duration::from_secs(60);
        r.resend_now(later, Some(q));
        let tx = r.poll_transmit(later).expect("forced");
        assert_eq!(tx.phone, q);
        r.handle_result(later, q, Ok(()));
        assert_eq!(r.poll_transmit(later), None);
        r.phone_registered(later, p);
        assert_eq!(r.poll_transmit(later).map(|t| t.phone), Some(p));
        r.handle_result(later, p, Ok(()));
        r.resend_now(later, None);
        let mut phones = vec![];
        while let Some(tx) = r.poll_transmit(later) {
            phones.push(tx.phone);
            r.handle_result(later, tx.phone, Ok(()));
        }
        assert_eq!(phones, vec![p, q]);
    }

    #[test]
    fn each_phone_keeps_its_own_state() {
        let (mut r, p, t0) = setup();
        let q = r.add_phone(t0, "sip:614@192.0.2.11", "sip:614@192.0.2.11", 12 * HOUR);
        let a = r.poll_transmit(t0).expect("p");
        let b = r.poll_transmit(t0).expect("q");
        r.handle_result(t0, a.phone, Ok(()));
        r.handle_result(t0, b.phone, Err(SendFailure::Timeout));
        assert_eq!(r.status(p), Some(PhoneStatus::Showing { counts: counts(0, 0) }));
        assert!(matches!(r.status(q), Some(PhoneStatus::Unreachable { failures: 1, .. })));
        let body = a.summary.to_string();
        assert_eq!(body, "Messages-Waiting: no\r\nMessage-Account: sip:613@192.0.2.10\r\nVoice-Message: 0/0 (0/0)\r\n");
    }
}
