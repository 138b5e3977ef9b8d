//! Which desktop notifications to raise, and when: the policy, sans-IO (fed
//! the connection, new items and the time; asked for alerts), so every rule
//! is unit-tested without a notification daemon.
//!
//! The rules, so that a user is told once and never flooded:
//! - at start-up nothing is announced item by item (the state core stays
//!   silent while it catches up); once connected, one summary says what
//!   waits, if anything does;
//! - after an outage, what the resynchronisation brings (while still
//!   disconnected, and for a moment after) is collected: two items or fewer
//!   are announced one by one, more become one summary;
//! - at most [`RATE_MAX`] single notifications in [`RATE_WINDOW`]; what comes
//!   faster is folded into a summary at the end of the window;
//! - notifications off, paused, or off for a kind: nothing is raised (the
//!   badge still counts).

use lamplighter_inbox::Kind;
use lamplighter_view::{Lang, NotificationText};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long after a reconnect new items are collected before deciding.
pub const SETTLE: Duration = Duration::from_secs(3);
/// The window of the rate limit.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);
/// Single notifications allowed per window.
pub const RATE_MAX: usize = 3;
/// Held items up to this many are still announced one by one.
const SINGLES_AFTER_OUTAGE: usize = 2;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A new voicemail (actions: play, mark-heard).
    Voicemail,
    /// A new missed call (actions: call-back, dismiss).
    MissedCall,
    /// Several at once (action: open).
    Summary,
}

/// One action button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertAction {
    /// `play`, `mark-heard`, `call-back`, `dismiss`, `open`.
    pub id: String,
    /// The label, in the user's language.
    pub label: String,
}

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    /// Unique per engine run.
    pub id: u64,
    /// Voicemail, missed call or summary.
    pub kind: AlertKind,
    /// The item (not for summaries).
    pub item_id: Option<String>,
    /// The URI "Call back" opens.
    pub call_back: Option<String>,
    pub title: String,
    pub body: String,
    /// Buttons.
    pub actions: Vec<AlertAction>,
}

/// A new item, as the engine hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// Voicemail or missed call.
    pub kind: Kind,
    pub item_id: String,
    /// The URI to call back.
    pub call_back: Option<String>,
    pub text: NotificationText,
}

/// The user's switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    /// Notifications at all.
    pub enabled: bool,
    pub voicemail: bool,
    pub missed_calls: bool,
    /// Paused from the tray ("do not disturb").
    pub paused: bool,
}

impl Switches {
    fn allows(&self, kind: Kind) -> bool {
        self.enabled
            && !self.paused
            && match kind {
                Kind::Voicemail => self.voicemail,
                Kind::MissedCall => self.missed_calls,
            }
    }
}

pub struct AlertPolicy {
    lang: Lang,
    switches: Switches,
    connected: bool,
    ever_connected: bool,
    hold_until: Option<Instant>,
    held: Vec<NewItem>,
    recent: VecDeque<Instant>,
    out: VecDeque<Alert>,
    next_id: u64,
}

impl AlertPolicy {
    /// A policy for `lang` with these switches.
    pub fn new(lang: Lang, switches: Switches) -> AlertPolicy {
        AlertPolicy {
            lang,
            switches,
            connected: false,
            ever_connected: false,
            hold_until: None,
            held: Vec::new(),
            recent: VecDeque::new(),
            out: VecDeque::new(),
            next_id: 1,
        }
    }

    /// New switches (settings saved, pause toggled).
    pub fn set_switches(&mut self, switches: Switches) {
        self.switches = switches;
        self.held.retain(|i| switches.allows(i.kind));
    }

    /// The connection is (or is not) live; `voicemails` and `missed_calls` are what waits.
    pub fn connection(&mut self, now: Instant, connected: bool, voicemails: u32, missed_calls: u32) {
        if connected && !self.connected {
            if !self.ever_connected {
                self.ever_connected = true;
                let v = if self.switches.allows(Kind::Voicemail) { voicemails } else { 0 };
                let m = if self.switches.allows(Kind::MissedCall) { missed_calls } else { 0 };
                if v + m > 0 {
                    self.push_summary(v, m);
                }
            } else {
                // back after an outage: what the resync brings is collected first
                self.hold_until = Some(now + SETTLE);
            }
        }
        self.connected = connected;
    }

    /// A new voicemail or missed call.
    pub fn new_item(&mut self, now: Instant, item: NewItem) {
        if !self.switches.allows(item.kind) {
            return;
        }
        while self.recent.front().is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW) {
            self.recent.pop_front();
        }
        // what the resynchronisation brings while not (yet) back is held too: the
        // runner reports the items before it reports "connected"
        if self.hold_until.is_some() || (self.ever_connected && !self.connected) {
            self.held.push(item);
        } else if self.recent.len() >= RATE_MAX {
            self.held.push(item);
            self.hold_until = self.recent.front().map(|t| *t + RATE_WINDOW);
        } else {
            self.recent.push_back(now);
            self.push_single(item);
        }
    }

    /// When [`AlertPolicy::poll`] has something to decide, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.hold_until
    }

    /// The next alert to show.
    pub fn poll(&mut self, now: Instant) -> Option<Alert> {
        if self.hold_until.is_some_and(|t| now >= t) {
            self.hold_until = None;
            let held = std::mem::take(&mut self.held);
            if held.len() <= SINGLES_AFTER_OUTAGE {
                for item in held {
                    self.recent.push_back(now);
                    self.push_single(item);
                }
            } else {
                let v = held.iter().filter(|i| i.kind == Kind::Voicemail).count() as u32;
                let m = held.len() as u32 - v;
                self.push_summary(v, m);
            }
        }
        self.out.pop_front()
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    fn push_single(&mut self, item: NewItem) {
        let id = self.id();
        self.out.push_back(Alert {
            id,
            kind: match item.kind {
                Kind::Voicemail => AlertKind::Voicemail,
                Kind::MissedCall => AlertKind::MissedCall,
            },
            item_id: Some(item.item_id),
            call_back: item.call_back,
            title: item.text.title,
            body: item.text.body,
            actions: item
                .text
                .actions
                .into_iter()
                .map(|(id, label)| AlertAction { id: id.to_string(), label })
                .collect(),
        });
    }

    fn push_summary(&mut self, voicemails: u32, missed_calls: u32) {
        let text = lamplighter_view::summary_notification(self.lang, voicemails, missed_calls);
        let id = self.id();
        self.out.push_back(Alert {
            id,
            kind: AlertKind::Summary,
            item_id: None,
            call_back: None,
            title: text.title,
            body: text.body,
            actions: text.actions.into_iter().map(|(id, label)| AlertAction { id: id.to_string(), label }).collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: Switches = Switches { enabled: true, voicemail: true, missed_calls: true, paused: false };

    fn vm(id: &str) -> NewItem {
        NewItem {
            kind: Kind::Voicemail,
            item_id: id.into(),
            call_back: None,
            text: lamplighter_view::voicemail_notification(Lang::En, "+49 5251 304613", Some(42), None),
        }
    }

    fn call(id: &str) -> NewItem {
        NewItem {
            kind: Kind::MissedCall,
            item_id: id.into(),
            call_back: Some("tel:+495251304613".into()),
            text: lamplighter_view::missed_call_notification(Lang::En, "+49 5251 304613", 3),
        }
    }

    fn drain(p: &mut AlertPolicy, now: Instant) -> Vec<Alert> {
        std::iter::from_fn(|| p.poll(now)).collect()
    }

    #[test]
    fn start_up_gives_one_summary_of_what_waits() {
        let t = Instant::now();
        let mut p = AlertPolicy::new(Lang::En, ON);
        p.connection(t, false, 0, 0);
        assert!(drain(&mut p, t).is_empty());
        p.connection(t, true, 12, 3);
        let a = drain(&mut p, t);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, AlertKind::Summary);
        assert_eq!(a[0].body, "12 new voicemails and 3 missed calls while you were away");
        assert_eq!(a[0].actions[0].id, "open");
    }

    #[test]
    fn start_up_with_nothing_waiting_is_quiet() {
        let t = Instant::now();
        let mut p = AlertPolicy::new(Lang::En, ON);
        p.connection(t, true, 0, 0);
        assert!(drain(&mut p, t).is_empty());
    }

    #[test]
    fn a_new_voicemail_is_announced_at_once_with_its_actions() {
        let t = Instant::now();
        let mut p = AlertPolicy::new(Lang::En, ON);
        p.connection(t, true, 0, 0);
        p.new_item(t, vm("v1"));
        let a = drain(&mut p, t);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].title, "Voicemail from +49 5251 304613, 0:42");
        assert_eq!(a[0].item_id.as_deref(), Some("v1"));
        let ids: Vec<&str> = a[0].actions.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, ["play", "mark-heard"]);
        p.new_item(t, call("c1"));
        let a = drain(&mut p, t);
        assert_eq!(a[0].call_back.as_deref(), Some("tel:+495251304613"));
        assert_eq!(a[0].body, "3 attempts");
    }

    #[test]
    fn after_an_outage_many_items_become_one_summary() {
        let t = Instant::now();
        let mut p = AlertPolicy::new(Lang::De, ON);
        p.connection(t, true, 0, 0);
        p.connection(t, false, 0, 0);
        p.connection(t + Duration::from_secs(60), true, 0, 0);
        let back = t + Duration::from_secs(60);
        for i in 0..20 {
            p.new_item(back, if i % 4 == 0 { call(&format!("c{i}")) } else { vm(&format!("v{i}")) });
        }
        assert!(drain(&mut p, back + Duration::from_secs(1)).is_empty(), "held while settling");
        assert_eq!(p.deadline(), Some(back + SETTLE));
        let a = drain(&mut p, back + SETTLE);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].kind, AlertKind::Summary);
        assert_eq!(a[0].body, "15 neue Sprachnachrichten und 5 verpasste Anrufe in Ihrer Abwesenheit");
    }

    #[test]
    fn items_that_arrive_before_the_connection_is_back_are_held_with_the_rest() {
        let t = Instant::now();
        let mut p = AlertPolicy::new(Lang::En, ON);
        p.connection(t, true, 0, 0);
        p.connection(t, false, 0, 0);
        for i in 0..6 {
            p.new_item(t, vm(&format!("v{i}")));
        }
        assert!(drain(&mut p, t + SETTLE * 10).is_empty(), "held while disconnected");
        p.connection(t + SETTLE * 10, true, 6, 0);
        p.new_item(t + SETTLE * 10, vm("v6"));
        let a = drain(&mut p, t + SETTLE * 11);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].body, "7 new voicemails and 0 missed calls while you were away");
    }

    #[test]
    fn after_an_outage_one_or_two_items_are_announced_singly() {
        let t = Instant::now();
        let mut p = AlertPolicy::new(Lang::En, ON);
        p.connection(t, true, 0, 0);
        p.connection(t, false, 0, 0);
        p.connection(t, true, 0, 0);
        p.new_item(t, vm("v1"));
        p.new_item(t, call("c1"));
        assert!(drain(&mut p, t).is_empty());
        let a = drain(&mut p, t + SETTLE);
        assert_eq!(a.iter().map(|a| a.kind).collect::<Vec<_>>(), [AlertKind::Voicemail, AlertKind::MissedCall]);
    }

    #[test]
    fn a_burst_is_capped_and_the_rest_summarised() {
        let t = Instant::now();
        let mut p = AlertPolicy::new(Lang::En, ON);
        p.connection(t, true, 0, 0);
        for i in 0..10 {
            p.new_item(t + Duration::from_millis(i * 100), vm(&format!("v{i}")));
        }
        let singles = drain(&mut p, t + Duration::from_secs(1));
        assert_eq!(singles.len(), RATE_MAX);
        assert!(singles.iter().all(|a| a.kind == AlertKind::Voicemail));
        let rest = drain(&mut p, t + RATE_WINDOW);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].body, "7 new voicemails and 0 missed calls while you were away");
        // later items are single again
        p.new_item(t + RATE_WINDOW * 2, vm("late"));
        assert_eq!(drain(&mut p, t + RATE_WINDOW * 2)[0].item_id.as_deref(), Some("late"));
    }

    #[test]
    fn switches_and_pause_silence_kinds() {
        let t = Instant::now();
        let mut p = AlertPolicy::new(Lang::En, Switches { missed_calls: false, ..ON });
        p.connection(t, true, 2, 5);
        assert_eq!(drain(&mut p, t)[0].body, "2 new voicemails and 0 missed calls while you were away");
        p.new_item(t, call("c1"));
        assert!(drain(&mut p, t).is_empty());
        p.set_switches(Switches { paused: true, ..ON });
        p.new_item(t, vm("v1"));
        assert!(drain(&mut p, t).is_empty());
        p.set_switches(ON);
        p.new_item(t, vm("v2"));
        assert_eq!(drain(&mut p, t).len(), 1);
        p.set_switches(Switches { enabled: false, ..ON });
        p.new_item(t, vm("v3"));
        assert!(drain(&mut p, t).is_empty());
    }

    #[test]
    fn ids_are_unique() {
        let t = Instant::now();
        let mut p = AlertPolicy::new(Lang::En, ON);
        p.connection(t, true, 1, 0);
        p.new_item(t, vm("a"));
        p.new_item(t, vm("b"));
        let ids: Vec<u64> = drain(&mut p, t).iter().map(|a| a.id).collect();
        assert_eq!(ids, [1, 2, 3]);
    }
}
