//! What waits for the user (the inbox of voicemail and calls), sans-IO: fed the mailbox changes that
//! `lamplighter-mailbox-sync` reports (initial load, streamed changes,
//! resyncs), it keeps the voicemails and the missed calls (deduplicated
//! across devices by `lamplighter-missed-calls`, with secondary calls kept
//! apart) and says what follows: notifications to raise and the lamp's
//! counts to send. No clock, no sockets; the engine's driver feeds it.
//!
//! Counts follow Exchange UM: voicemail `new` = unread voicemails, `old` =
//! read ones, urgent = Importance High. Unless `include_missed_calls` is
//! set, the lamp follows voicemail only, as Exchange UM did.
//!
//! Notifications: one per new voicemail and one per new missed call (a
//! duplicate report from another device joins the call and raises
//! nothing). Nothing is raised while catching up at start-up: only changes
//! after [`MailboxState::caught_up`] count as news, so a restart never
//! re-announces. After a reset of the sync state the folder comes again in
//! full: what was known comes back silently, what is new is announced once,
//! and what did not come back is gone when the reload is caught up.

use lamplighter_ews_wire::{Item, ItemId};
use lamplighter_mailbox_sync::Change;
use lamplighter_missed_calls::{CallBook, CallOutcome, CallRecord, MailboxCallItem, RecordId, UserIdentity};
use lamplighter_recognise::{By, ItemView, Recognised, Recogniser};
pub use lamplighter_um::Counts;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// What kind of item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Voicemail,
    MissedCall,
}

/// What `recogniser` makes of `item`: its kind for the inbox (answered
/// calls and ordinary mail are neither) and who called.
pub fn recognise(recogniser: &Recogniser, item: &Item) -> Option<(Kind, Recognised)> {
    let attachments: Vec<(Option<&str>, Option<&str>)> =
        item.attachments.iter().map(|a| (a.name.as_deref(), a.content_type.as_deref())).collect();
    let view = ItemView {
        class: item.item_class.as_deref(),
        sender: item.from.as_ref().and_then(|f| f.email.as_deref()),
        subject: item.subject.as_deref(),
        headers: &item.headers,
        attachments: &attachments,
        body: item.text_body.as_deref(),
        duration_secs: item.um.duration_secs,
        caller_number: item.um.caller_number.as_deref(),
        caller_name: item.um.caller_name.as_deref(),
        attachment_order: item.um.attachment_order.as_deref(),
    };
    let r = recogniser.recognise(&view)?;
    let kind = match r.kind {
        lamplighter_recognise::Kind::Voicemail => Kind::Voicemail,
        lamplighter_recognise::Kind::MissedCall => Kind::MissedCall,
        lamplighter_recognise::Kind::AnsweredCall => return None,
    };
    Some((kind, r))
}

/// A voicemail as the UI lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Voicemail {
    /// The item (with the change key for marking it heard).
    #[serde(skip)]
    pub id: ItemId,
    /// The item id as text, for the UI.
    pub item_id: String,
    pub caller_number: Option<String>,
    pub caller_name: Option<String>,
    /// `DateTimeReceived` as written.
    pub received: Option<String>,
    /// Seconds.
    pub duration_secs: Option<u32>,
    /// Importance High.
    pub urgent: bool,
    /// Read (heard).
    pub heard: bool,
    pub subject: Option<String>,
    /// The transcription preview, when Unified Messaging wrote one (whitespace collapsed, at most 200 characters).
    pub transcription: Option<String>,
    /// The audio attachment's id, if the item has one.
    pub audio_attachment: Option<String>,
}

impl Voicemail {
    /// Who called, as a line of text.
    pub fn from_text(&self) -> String {
        match (&self.caller_name, &self.caller_number) {
            (Some(n), Some(num)) if n != num => format!("{n} ({num})"),
            (Some(n), _) => n.clone(),
            (None, Some(num)) => num.clone(),
            (None, None) => "an unknown caller".into(),
        }
    }
}

/// The lamp, the badge and the lists in numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Summary {
    /// Voicemail counts as Exchange UM reports them.
    pub voicemail: Counts,
    /// Unseen missed calls (primary calls, deduplicated).
    pub missed_calls: u32,
    /// Calls that reached the user on someone else's behalf.
    pub secondary_calls: u32,
}

impl Summary {
    /// The badge: unheard voicemails plus unseen missed calls.
    pub fn badge(&self) -> u32 {
        self.voicemail.new + self.missed_calls
    }
}

/// A notification to raise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Notification {
    /// Voicemail or missed call.
    pub kind: Kind,
    pub from: String,
    /// When (ISO 8601 as the server wrote it).
    pub at: String,
    /// The item it is about.
    pub item_id: String,
    /// Duration of a voicemail, in seconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub duration_secs: Option<u32>,
    /// The transcription preview of a voicemail.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preview: Option<String>,
}

/// A body's text as a one-line preview of at most 200 characters; `None` when empty.
pub fn preview(body: &str) -> Option<String> {
    let words: Vec<&str> = body.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let line = words.join(" ");
    Some(if line.chars().count() > 200 { format!("{}…", line.chars().take(199).collect::<String>()) } else { line })
}

/// What follows from the changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Raise this.
    Notify(Notification),
    /// The lamps should show these counts (sent only when they change).
    Lamp(Counts),
    /// The summary changed.
    Changed(Summary),
}

/// The state core.
pub struct MailboxState {
    include_missed_calls: bool,
    /// During a reset's reload: the ids held before it not seen again yet.
    stale: Option<std::collections::HashSet<String>>,
    voicemails: BTreeMap<String, Voicemail>,
    book: CallBook,
    /// missed-call item → its record, and whether the item is read (seen)
    calls: HashMap<String, (RecordId, bool)>,
    record_item: HashMap<RecordId, String>,
    live: bool,
    outputs: VecDeque<Output>,
    last_lamp: Option<Counts>,
    last_summary: Option<Summary>,
    recogniser: Recogniser,
}

/// Unified Messaging's items name their caller as the sender too; a PBX's
/// e-mail comes from the PBX, which is nobody's caller.
fn sender_is_caller(r: &Recognised) -> bool {
    matches!(r.by, By::ItemClass | By::ContentClass)
}

fn call_item(item: &Item, r: &Recognised) -> MailboxCallItem {
    let sender = sender_is_caller(r).then_some(item.from.as_ref()).flatten();
    MailboxCallItem {
        item_id: item.id.id.clone(),
        // what the recogniser found, whoever wrote the item
        kind: lamplighter_missed_calls::Outcome::Missed,
        received: item
            .date_time_received
            .as_deref()
            .and_then(|t| lamplighter_missed_calls::record::parse_time(t).ok())
            .unwrap_or(0),
        call_id: item.um.call_id.clone(),
        caller_number: r.caller_number.clone().or_else(|| sender.and_then(|f| f.email.clone())),
        caller_name: r.caller_name.clone().or_else(|| sender.and_then(|f| f.name.clone())),
        headers: item.headers.clone(),
    }
}

impl MailboxState {
    /// An empty state for `user` (whose missed calls are theirs).
    pub fn new(user: UserIdentity, include_missed_calls: bool) -> Self {
        MailboxState {
            include_missed_calls,
            voicemails: BTreeMap::new(),
            book: CallBook::new(user),
            calls: HashMap::new(),
            record_item: HashMap::new(),
            live: false,
            stale: None,
            outputs: VecDeque::new(),
            last_lamp: None,
            last_summary: None,
            recogniser: Recogniser::default(),
        }
    }

    /// Recognises voicemail and calls with `recogniser` (the admin's PBX
    /// rules) instead of the built-in rules alone.
    #[must_use]
    pub fn with_recogniser(mut self, recogniser: Recogniser) -> Self {
        self.recogniser = recogniser;
        self
    }

    /// Catching up is over: changes from now on are news.
    pub fn caught_up(&mut self) {
        if let Some(stale) = self.stale.take() {
            for id in stale {
                self.remove(&id);
            }
        }
        self.live = true;
        self.refresh();
    }

    /// A reset's reload is under way ([`MailboxState::caught_up`] ends it).
    pub fn reloading(&self) -> bool {
        self.stale.is_some()
    }

    /// Applies one mailbox change.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Added(item) | Change::Updated(item) => self.upsert(item),
            Change::Removed(id) => self.remove(&id.id),
            Change::ReadChanged { id, is_read } => {
                if let Some(v) = self.voicemails.get_mut(&id.id) {
                    v.heard = is_read;
                    v.id.change_key = id.change_key;
                } else if let Some(c) = self.calls.get_mut(&id.id) {
                    c.1 = is_read;
                }
            }
            Change::Reset if self.live => {
                // the folder comes again in full: what it held stays until the
                // reload is over (then what did not come again is gone), what
                // it held comes again silently, and what is new is news
                self.stale = Some(self.voicemails.keys().chain(self.calls.keys()).cloned().collect());
            }
            Change::Reset => {
                // during the first load: start it over
                let ids: Vec<String> = self.voicemails.keys().chain(self.calls.keys()).cloned().collect();
                for id in ids {
                    self.remove(&id);
                }
            }
        }
        self.refresh();
    }

    fn upsert(&mut self, item: Item) {
        let recognised = recognise(&self.recogniser, &item);
        let id = item.id.id.clone();
        if let Some(stale) = &mut self.stale {
            stale.remove(&id);
        }
        match recognised {
            Some((Kind::Voicemail, r)) => {
                let is_new = !self.voicemails.contains_key(&id);
                let audio = r.audio.and_then(|i| item.attachments.get(i)).map(|a| a.id.clone());
                let sender = sender_is_caller(&r).then_some(item.from.as_ref()).flatten();
                let v = Voicemail {
                    item_id: id.clone(),
                    id: item.id.clone(),
                    caller_number: r.caller_number.clone().or_else(|| sender.and_then(|f| f.email.clone())),
                    caller_name: r.caller_name.clone().or_else(|| sender.and_then(|f| f.name.clone())),
                    received: item.date_time_received.clone(),
                    duration_secs: r.duration_secs,
                    urgent: item.importance.as_deref() == Some("High"),
                    heard: item.is_read.unwrap_or(false),
                    subject: item.subject.clone(),
                    transcription: item.text_body.as_deref().and_then(preview),
                    audio_attachment: audio,
                };
                if is_new && self.live && !v.heard {
                    self.outputs.push_back(Output::Notify(Notification {
                        kind: Kind::Voicemail,
                        from: v.from_text(),
                        at: v.received.clone().unwrap_or_default(),
                        item_id: id.clone(),
                        duration_secs: v.duration_secs,
                        preview: v.transcription.clone(),
                    }));
                }
                self.voicemails.insert(id, v);
            }
            Some((Kind::MissedCall, r)) => {
                let read = item.is_read.unwrap_or(false);
                if let Some(c) = self.calls.get_mut(&id) {
                    c.1 = read;
                    return;
                }
                let Ok(record) = CallRecord::from_mailbox_item(&call_item(&item, &r)) else { return };
                let rid = self.book.insert(record);
                self.calls.insert(id.clone(), (rid, read));
                self.record_item.insert(rid, id.clone());
                if self.live
                    && !read
                    && let Some(call) = self.book.call_of(rid)
                    && call.outcome == CallOutcome::Missed
                    && call.reports.len() == 1
                {
                    let from = match (&call.caller_name, call.caller.to_string()) {
                        (Some(n), num) if !num.is_empty() => format!("{n} ({num})"),
                        (_, num) => num,
                    };
                    self.outputs.push_back(Output::Notify(Notification {
                        kind: Kind::MissedCall,
                        from,
                        at: item.date_time_received.clone().unwrap_or_default(),
                        item_id: id,
                        duration_secs: None,
                        preview: None,
                    }));
                }
            }
            None => {}
        }
    }

    fn remove(&mut self, id: &str) {
        if self.voicemails.remove(id).is_some() {
            return;
        }
        if let Some((rid, _)) = self.calls.remove(id) {
            self.book.remove(rid);
            self.record_item.remove(&rid);
        }
    }

    /// Counts now.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for v in self.voicemails.values() {
            match (v.heard, v.urgent) {
                (false, u) => {
                    s.voicemail.new += 1;
                    s.voicemail.urgent_new += u32::from(u);
                }
                (true, u) => {
                    s.voicemail.old += 1;
                    s.voicemail.urgent_old += u32::from(u);
                }
            }
        }
        for call in self.book.calls() {
            match call.outcome {
                CallOutcome::Missed => {
                    let unseen = call.reports.iter().any(|r| {
                        self.record_item.get(&r.id).and_then(|i| self.calls.get(i)).is_some_and(|(_, read)| !read)
                    });
                    s.missed_calls += u32::from(unseen);
                }
                CallOutcome::Secondary(_) => s.secondary_calls += 1,
                _ => {}
            }
        }
        s
    }

    /// What the lamp shows for `summary`.
    pub fn lamp(&self, s: &Summary) -> Counts {
        Counts {
            new: s.voicemail.new + if self.include_missed_calls { s.missed_calls } else { 0 },
            old: s.voicemail.old,
            urgent_new: s.voicemail.urgent_new,
            urgent_old: s.voicemail.urgent_old,
        }
    }

    fn refresh(&mut self) {
        let s = self.summary();
        if self.last_summary != Some(s) {
            self.last_summary = Some(s);
            self.outputs.push_back(Output::Changed(s));
        }
        // the lamp waits for the first complete picture
        if self.live {
            let lamp = self.lamp(&s);
            if self.last_lamp != Some(lamp) {
                self.last_lamp = Some(lamp);
                self.outputs.push_back(Output::Lamp(lamp));
            }
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Voicemails, newest first.
    pub fn voicemails(&self) -> Vec<&Voicemail> {
        let mut v: Vec<&Voicemail> = self.voicemails.values().collect();
        v.sort_by(|a, b| b.received.cmp(&a.received));
        v
    }

    /// A voicemail by item id.
    pub fn voicemail(&self, item_id: &str) -> Option<&Voicemail> {
        self.voicemails.get(item_id)
    }

    /// The deduplicated calls (missed and secondary), newest first.
    pub fn calls(&self) -> Vec<lamplighter_missed_calls::Call> {
        let mut c = self.book.calls();
        c.sort_by_key(|call| std::cmp::Reverse(call.at));
        c
    }

    /// The mailbox items behind a call's reports (to mark them seen).
    pub fn items_of(&self, call: &lamplighter_missed_calls::Call) -> Vec<String> {
        call.reports.iter().filter_map(|r| self.record_item.get(&r.id).cloned()).collect()
    }

    /// Whether a call is unseen: some device's report of it is still unread.
    pub fn is_unseen(&self, call: &lamplighter_missed_calls::Call) -> bool {
        call.reports
            .iter()
            .any(|r| self.record_item.get(&r.id).and_then(|i| self.calls.get(i)).is_some_and(|(_, read)| !read))
    }

    /// Whether catching up is over.
    pub fn is_live(&self) -> bool {
        self.live
    }
}

#[cfg(test)]
mod tests;
