//! Notifier mode, sans-IO: phones that SUBSCRIBE to us for
//! `message-summary` (RFC 3842 §3, RFC 6665). The driver parses requests into
//! [`Subscribe`], sends the [`Answer`] as the response, and sends each
//! [`DialogNotify`] in the subscription's dialog.
//!
//! Rules kept (RFC 6665):
//! - another event package → 489 Bad Event; an in-dialog SUBSCRIBE for an
//!   unknown dialog → 481; a duration under the minimum → 423 with
//!   `Min-Expires`; a phone that is not paired → 403 (the driver challenges
//!   with digest before that);
//! - 200 grants at most the maximum duration; a NOTIFY with the current state
//!   follows **immediately** (`Subscription-State: active;expires=<left>`),
//!   and again on every refresh and every change of counts;
//! - `Expires: 0` unsubscribes: 200, then a final NOTIFY
//!   `terminated;reason=timeout`; so does a subscription left to expire;
//! - a NOTIFY answered 481, or not answered at all, ends the subscription.
//!
//! Before the mailbox has reported, the NOTIFY carries no body (as
//! Kamailio's presence_mwi does before a PUBLISH) rather than a false 0/0.

use crate::relay::SendFailure;
use crate::summary::{Counts, MessageSummary, UrgentPart};
use crate::uri::aor;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Limits of granted subscriptions.
#[derive(Debug, Clone, Copy)]
pub struct NotifierConfig {
    /// The longest duration granted (RFC 3842 default: 3600 s).
    pub max_expires: u32,
    /// The shortest duration accepted.
    pub min_expires: u32,
    /// Subscriptions kept per paired phone: a new one beyond this replaces the
    /// phone's oldest (a phone that lost its dialog subscribes afresh, and a
    /// phone caught in a SUBSCRIBE loop cannot grow the table).
    pub max_per_phone: usize,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        NotifierConfig { max_expires: 3600, min_expires: 60, max_per_phone: 4 }
    }
}

/// A SUBSCRIBE as the driver parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub call_id: String,
    /// The subscriber's URI (From), e.g. `sip:613@192.0.2.10`.
    pub from: String,
    pub from_tag: String,
    /// The To URI (the account subscribed to).
    pub to: String,
    /// The To tag: present on refreshes and unsubscribes.
    pub to_tag: Option<String>,
    /// Where NOTIFYs go (the Contact URI).
    pub contact: String,
    /// The Event header's package (`message-summary`).
    pub event: String,
    /// The requested duration.
    pub expires: Option<u32>,
}

/// How to answer a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 OK with this To tag and `Expires`.
    Accept {
        /// Our tag for the dialog.
        to_tag: String,
        /// Granted seconds.
        expires: u32,
    },
    /// 489 Bad Event.
    BadEvent,
    /// 481 Subscription does not exist.
    NoSuchSubscription,
    /// 423 Interval Too Brief, with `Min-Expires`.
    IntervalTooBrief {
        /// The minimum.
        min: u32,
    },
    /// 403 Forbidden: not a paired phone.
    Forbidden,
}

impl Answer {
    /// The status code.
    pub fn code(&self) -> u16 {
        match self {
            Answer::Accept { .. } => 200,
            Answer::BadEvent => 489,
            Answer::NoSuchSubscription => 481,
            Answer::IntervalTooBrief { .. } => 423,
            Answer::Forbidden => 403,
        }
    }
}

/// A subscription's handle.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId {
    pub call_id: String,
    /// The subscriber's tag.
    pub remote_tag: String,
    pub local_tag: String,
}

/// A NOTIFY to send in a subscription's dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogNotify {
    /// Which subscription.
    pub id: SubscriptionId,
    /// Request-URI: the subscriber's Contact.
    pub request_uri: String,
    /// To: the subscriber's URI (its tag is in `id`).
    pub to: String,
    /// From: the subscribed account URI (our tag is in `id`).
    pub from: String,
    /// Our CSeq in this dialog.
    pub cseq: u32,
    /// `active;expires=N` or `terminated;reason=timeout`.
    pub subscription_state: String,
    /// The body, once counts are known.
    pub summary: Option<MessageSummary>,
}

#[derive(Debug)]
struct Sub {
    /// Order of creation, for replacing a phone's oldest.
    serial: u64,
    subscriber: String,
    /// Which paired phone (its counts).
    phone: usize,
    urgent: UrgentPart,
    contact: String,
    account: String,
    cseq: u32,
    expires_at: Instant,
    pending: bool,
    in_flight: bool,
    terminating: bool,
}

/// The subscriptions of one mailbox.
#[derive(Debug)]
pub struct Notifier {
    config: NotifierConfig,
    paired: Vec<String>,
    /// Per paired phone, how its summaries write the urgent part.
    urgent: Vec<UrgentPart>,
    /// Per paired phone, what its lamp should show (a gateway serves the
    /// phones of many mailboxes; a desktop's phones all show one).
    wanted: Vec<Option<Counts>>,
    subs: BTreeMap<SubscriptionId, Sub>,
    tag_seed: u64,
    tags: u64,
}

impl Notifier {
    /// A notifier for these paired phone URIs; `tag_seed` makes our dialog tags unique.
    pub fn new<S: AsRef<str>>(config: NotifierConfig, paired: &[S], tag_seed: u64) -> Self {
        Notifier {
            config,
            paired: paired.iter().map(|p| aor(p.as_ref())).collect(),
            urgent: vec![UrgentPart::Always; paired.len()],
            wanted: vec![None; paired.len()],
            subs: BTreeMap::new(),
            tag_seed,
            tags: 0,
        }
    }

    /// How the summaries to the `phone`th paired phone write the urgent part
    /// (from its next subscription on).
    pub fn set_urgent_part(&mut self, phone: usize, urgent: UrgentPart) {
        if let Some(u) = self.urgent.get_mut(phone) {
            *u = urgent;
        }
    }

    fn paired_index(&self, uri: &str) -> Option<usize> {
        let a = aor(uri);
        // a phone paired without a port may subscribe from any port of its host
        self.paired.iter().position(|p| *p == a || (!p.contains(':') && a.split(':').next() == Some(p.as_str())))
    }

    /// Whether this URI is a paired phone.
    pub fn is_paired(&self, uri: &str) -> bool {
        self.paired_index(uri).is_some()
    }

    fn new_tag(&mut self) -> String {
        self.tags += 1;
        format!("ll{:x}{:x}", self.tag_seed, self.tags)
    }

    /// Answers a SUBSCRIBE; an accepted one gets its NOTIFY from `poll_transmit`.
    pub fn handle_subscribe(&mut self, now: Instant, s: &Subscribe) -> Answer {
        let package = s.event.split(';').next().unwrap_or("").trim();
        if !package.eq_ignore_ascii_case("message-summary") {
            return Answer::BadEvent;
        }
        let requested = s.expires.unwrap_or(self.config.max_expires);
        if requested != 0 && requested < self.config.min_expires {
            return Answer::IntervalTooBrief { min: self.config.min_expires };
        }
        let granted = requested.min(self.config.max_expires);
        if let Some(tag) = &s.to_tag {
            let id =
                SubscriptionId { call_id: s.call_id.clone(), remote_tag: s.from_tag.clone(), local_tag: tag.clone() };
            let Some(sub) = self.subs.get_mut(&id) else { return Answer::NoSuchSubscription };
            sub.expires_at = now + Duration::from_secs(u64::from(granted));
            sub.contact = s.contact.clone();
            sub.pending = true;
            sub.terminating = granted == 0;
            return Answer::Accept { to_tag: tag.clone(), expires: granted };
        }
        let Some(phone) = self.paired_index(&s.from) else { return Answer::Forbidden };
        let who = aor(&s.from);
        let mut mine: Vec<(u64, SubscriptionId)> =
            self.subs.iter().filter(|(_, v)| aor(&v.subscriber) == who).map(|(k, v)| (v.serial, k.clone())).collect();
        mine.sort();
        let excess = (mine.len() + 1).saturating_sub(self.config.max_per_phone.max(1));
        for (_, old) in mine.into_iter().take(excess) {
            self.subs.remove(&old);
        }
        let tag = self.new_tag();
        let id = SubscriptionId { call_id: s.call_id.clone(), remote_tag: s.from_tag.clone(), local_tag: tag.clone() };
        self.subs.insert(
            id,
            Sub {
                serial: self.tags,
                subscriber: s.from.clone(),
                phone,
                urgent: self.urgent[phone],
                contact: s.contact.clone(),
                account: s.to.clone(),
                cseq: 0,
                expires_at: now + Duration::from_secs(u64::from(granted)),
                pending: true,
                in_flight: false,
                terminating: granted == 0,
            },
        );
        Answer::Accept { to_tag: tag, expires: granted }
    }

    /// New counts for every phone: every active subscription whose counts change gets a NOTIFY.
    pub fn set_counts(&mut self, counts: Counts) {
        for phone in 0..self.paired.len() {
            self.set_counts_of(phone, counts);
        }
    }

    /// New counts for the `phone`th paired phone: its subscriptions get a NOTIFY.
    pub fn set_counts_of(&mut self, phone: usize, counts: Counts) {
        let Some(w) = self.wanted.get_mut(phone) else { return };
        if *w == Some(counts) {
            return;
        }
        *w = Some(counts);
        for sub in self.subs.values_mut().filter(|s| s.phone == phone) {
            sub.pending = true;
        }
    }

    /// The next NOTIFY due.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<DialogNotify> {
        for (id, sub) in self.subs.iter_mut() {
            let wanted = self.wanted.get(sub.phone).copied().flatten();
            if sub.in_flight {
                continue;
            }
            let expired = now >= sub.expires_at;
            if expired {
                sub.terminating = true;
            }
            if !(sub.pending || expired) {
                continue;
            }
            sub.pending = false;
            sub.in_flight = true;
            sub.cseq += 1;
            let left = sub.expires_at.saturating_duration_since(now).as_secs();
            let state = if sub.terminating {
                "terminated;reason=timeout".to_string()
            } else {
                format!("active;expires={left}")
            };
            return Some(DialogNotify {
                id: id.clone(),
                request_uri: sub.contact.clone(),
                to: sub.subscriber.clone(),
                from: sub.account.clone(),
                cseq: sub.cseq,
                subscription_state: state,
                summary: wanted.map(|c| MessageSummary::voice_with(&sub.account, c, sub.urgent)),
            });
        }
        None
    }

    /// The outcome of a NOTIFY; 481, a timeout or the final NOTIFY end the subscription.
    pub fn handle_result(&mut self, id: &SubscriptionId, result: Result<(), SendFailure>) {
        let Some(sub) = self.subs.get_mut(id) else { return };
        sub.in_flight = false;
        let dead = match &result {
            Ok(()) => sub.terminating,
            Err(SendFailure::Rejected { code: 481, .. }) | Err(SendFailure::Timeout) => true,
            Err(_) => sub.terminating,
        };
        if dead {
            self.subs.remove(id);
        }
    }

    /// When to call `poll_transmit` next.
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        self.subs.values().filter(|s| !s.in_flight).map(|s| if s.pending { now } else { s.expires_at }).min()
    }

    /// How many subscriptions are alive.
    pub fn active(&self) -> usize {
        self.subs.len()
    }

    /// Whether a subscription with this Call-ID is alive.
    pub fn has_dialog(&self, call_id: &str) -> bool {
        self.subs.keys().any(|k| k.call_id == call_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(to_tag: Option<&str>, event: &str, expires: Option<u32>) -> Subscribe {
        Subscribe {
            call_id: "c1@phone".into(),
            from: "sip:613@127.0.0.1".into(),
            from_tag: "ph1".into(),
            to: "sip:613@127.0.0.1".into(),
            to_tag: to_tag.map(Into::into),
            contact: "sip:613@127.0.0.1:5070".into(),
            event: event.into(),
            expires,
        }
    }

    fn accept(n: &mut Notifier, now: Instant, s: &Subscribe) -> (String, u32) {
        match n.handle_subscribe(now, s) {
            Answer::Accept { to_tag, expires } => (to_tag, expires),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subscribe_gets_200_and_an_immediate_notify_then_one_per_change() {
        let t0 = Instant::now();
        let mut n = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1"], 7);
        let (tag, expires) = accept(&mut n, t0, &sub(None, "message-summary", Some(600)));
        assert_eq!(expires, 600);
        let first = n.poll_transmit(t0).expect("immediate NOTIFY");
        assert_eq!(
            (first.cseq, first.subscription_state.as_str(), first.summary.is_none()),
            (1, "active;expires=600", true)
        );
        assert_eq!(first.id.local_tag, tag);
        assert_eq!(first.request_uri, "sip:613@127.0.0.1:5070");
        n.handle_result(&first.id, Ok(()));
        assert_eq!(n.poll_transmit(t0), None);
        n.set_counts(Counts { new: 2, old: 1, urgent_new: 0, urgent_old: 0 });
        let second = n.poll_transmit(t0 + Duration::from_secs(10)).expect("change");
        assert_eq!(second.cseq, 2);
        assert_eq!(second.subscription_state, "active;expires=590");
        assert_eq!(
            second.summary.map(|s| s.to_string()),
            Some("Messages-Waiting: yes\r\nMessage-Account: sip:613@127.0.0.1\r\nVoice-Message: 2/1 (0/0)\r\n".into())
        );
    }

    #[test]
    fn each_phone_gets_its_own_mailbox_s_counts() {
        let t0 = Instant::now();
        let mut n = Notifier::new(NotifierConfig::default(), &["sip:201@example.test", "sip:202@example.test"], 7);
        let mut a = sub(None, "message-summary", Some(600));
        (a.from, a.to) = ("sip:201@example.test".into(), "sip:201@example.test".into());
        let mut b = sub(None, "message-summary", Some(600));
        (b.call_id, b.from, b.to) = ("c2@phone".into(), "sip:202@example.test".into(), "sip:202@example.test".into());
        accept(&mut n, t0, &a);
        accept(&mut n, t0, &b);
        while let Some(x) = n.poll_transmit(t0) {
            n.handle_result(&x.id, Ok(()));
        }
        n.set_counts_of(1, Counts { new: 3, old: 0, urgent_new: 0, urgent_old: 0 });
        let only = n.poll_transmit(t0).expect("202's change");
        assert_eq!(only.to, "sip:202@example.test");
        assert!(only.summary.expect("body").to_string().contains("Voice-Message: 3/0"));
        n.handle_result(&only.id, Ok(()));
        assert_eq!(n.poll_transmit(t0), None, "201's lamp did not change, so it gets nothing");
        n.set_counts_of(1, Counts { new: 3, old: 0, urgent_new: 0, urgent_old: 0 });
        assert_eq!(n.poll_transmit(t0), None, "the same counts again are no news");
        n.set_counts_of(9, Counts::default());
        assert_eq!(n.poll_transmit(t0), None, "a phone that is not paired changes nothing");
    }

    #[test]
    fn refusals() {
        let t0 = Instant::now();
        let mut n = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1"], 7);
        assert_eq!(n.handle_subscribe(t0, &sub(None, "presence", Some(600))).code(), 489);
        assert_eq!(n.handle_subscribe(t0, &sub(Some("nope"), "message-summary", Some(600))).code(), 481);
        assert_eq!(
            n.handle_subscribe(t0, &sub(None, "message-summary", Some(5))),
            Answer::IntervalTooBrief { min: 60 }
        );
        let mut stranger = sub(None, "message-summary", Some(600));
        stranger.from = "sip:666@127.0.0.1".into();
        assert_eq!(n.handle_subscribe(t0, &stranger), Answer::Forbidden);
        assert_eq!(n.active(), 0);
        assert_eq!(n.poll_transmit(t0), None, "counts never reach a stranger");
    }

    #[test]
    fn grants_are_capped_refreshed_and_expire_with_a_final_notify() {
        let t0 = Instant::now();
        let mut n = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1"], 7);
        let (tag, expires) = accept(&mut n, t0, &sub(None, "message-summary", Some(86_400)));
        assert_eq!(expires, 3600);
        let f = n.poll_transmit(t0).expect("notify");
        n.handle_result(&f.id, Ok(()));
        // refresh in the dialog
        let t1 = t0 + Duration::from_secs(1800);
        accept(&mut n, t1, &sub(Some(&tag), "message-summary", Some(600)));
        let r = n.poll_transmit(t1).expect("notify after refresh");
        assert_eq!(r.subscription_state, "active;expires=600");
        n.handle_result(&r.id, Ok(()));
        assert_eq!(n.poll_timeout(t1), Some(t1 + Duration::from_secs(600)));
        let end = t1 + Duration::from_secs(600);
        let last = n.poll_transmit(end).expect("final notify");
        assert_eq!(last.subscription_state, "terminated;reason=timeout");
        n.handle_result(&last.id, Ok(()));
        assert_eq!(n.active(), 0);
    }

    #[test]
    fn unsubscribe_and_481_end_the_subscription() {
        let t0 = Instant::now();
        let mut n = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1"], 7);
        let (tag, _) = accept(&mut n, t0, &sub(None, "message-summary", Some(600)));
        let f = n.poll_transmit(t0).expect("notify");
        n.handle_result(&f.id, Ok(()));
        assert_eq!(accept(&mut n, t0, &sub(Some(&tag), "message-summary", Some(0))).1, 0);
        let last = n.poll_transmit(t0).expect("final");
        assert_eq!(last.subscription_state, "terminated;reason=timeout");
        n.handle_result(&last.id, Ok(()));
        assert_eq!(n.active(), 0);
        let (_, _) = accept(&mut n, t0, &sub(None, "message-summary", Some(600)));
        let f = n.poll_transmit(t0).expect("notify");
        n.handle_result(&f.id, Err(SendFailure::Rejected { code: 481, reason: "gone".into() }));
        assert_eq!(n.active(), 0);
    }

    #[test]
    fn a_subscribe_loop_keeps_at_most_max_per_phone_and_the_newest_gets_the_lamp() {
        let t0 = Instant::now();
        let mut n = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1"], 7);
        let mut last = None;
        for i in 0..10_000 {
            let mut s = sub(None, "message-summary", Some(600));
            s.call_id = format!("loop{i}@phone");
            last = Some(accept(&mut n, t0, &s).0);
        }
        assert_eq!(n.active(), 4);
        n.set_counts(Counts { new: 1, old: 0, urgent_new: 0, urgent_old: 0 });
        let mut sent = Vec::new();
        while let Some(f) = n.poll_transmit(t0) {
            n.handle_result(&f.id, Ok(()));
            sent.push(f.id.call_id);
        }
        assert_eq!(sent.len(), 4, "only the kept subscriptions are notified");
        assert!(sent.contains(&"loop9999@phone".to_string()), "{sent:?} {last:?}");
    }

    #[test]
    fn a_phone_set_to_omit_zero_urgent_gets_no_urgent_part_when_nothing_is_urgent() {
        let t0 = Instant::now();
        let mut n = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1", "sip:614@127.0.0.1"], 1);
        n.set_urgent_part(1, UrgentPart::WhenNonzero);
        for who in ["613", "614"] {
            let mut s = sub(None, "message-summary", Some(600));
            s.from = format!("sip:{who}@127.0.0.1");
            s.call_id = format!("call-{who}");
            assert!(matches!(n.handle_subscribe(t0, &s), Answer::Accept { .. }));
        }
        n.set_counts(Counts { new: 1, old: 0, urgent_new: 0, urgent_old: 0 });
        let mut bodies = std::collections::BTreeMap::new();
        while let Some(x) = n.poll_transmit(t0) {
            bodies.insert(x.to.clone(), x.summary.as_ref().map(|s| s.to_string()).unwrap_or_default());
            n.handle_result(&x.id, Ok(()));
        }
        assert!(bodies["sip:613@127.0.0.1"].contains("Voice-Message: 1/0 (0/0)"), "{bodies:?}");
        assert!(bodies["sip:614@127.0.0.1"].contains("Voice-Message: 1/0\r\n"), "{bodies:?}");
    }

    #[test]
    fn a_phone_paired_without_a_port_may_subscribe_from_any_port() {
        let n = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1"], 1);
        assert!(n.is_paired("<sip:613@127.0.0.1:5070;transport=udp>"));
        assert!(!n.is_paired("sip:614@127.0.0.1"));
        let m = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1:5062"], 1);
        assert!(!m.is_paired("sip:613@127.0.0.1:5070"));
    }
}
