//! The folders of one mailbox followed together, sans-IO: Graph's delta is
//! per folder, and a mail rule (or the user) may put a voicemail in any
//! folder, so the Inbox and every folder that can receive mail are each
//! tracked by a [`DeltaSync`], and their changes merged into one stream of
//! the mailbox's [`Change`]s.
//!
//! - **Which folders** ([`choose`]): all mail folders but those no voicemail
//!   belongs in (Deleted Items, Junk Email, Sent Items, Drafts, Outbox,
//!   Conversation History, Sync Issues, and everything below them), at most
//!   [`MAX_FOLLOWED`]. The list is read again every [`REDISCOVER_EVERY`]
//!   (`PollConfig::folders_every`), and at once when an item leaves a
//!   folder (it may have gone to a folder made since): a folder made and
//!   filed into by a new rule is found within half an hour, or at once when
//!   the user moves anything into it; its voicemails are then news.
//! - **Moves are not news.** Ids stay when a message moves (the client asks
//!   for immutable ids), so a voicemail moved from the Inbox to another
//!   followed folder is `@removed` in one and changed in the other. An item
//!   gone from every folder is only reported removed once every followed
//!   folder has completed a round that began after it went, and the folder
//!   list has been read again since (or after [`MAX_HOLD`], when a folder
//!   keeps failing): a move whose arrival shows in a later round than its
//!   departure never turns into a removal and a new voicemail.
//! - **Requests**: every folder due now, and those due within
//!   [`PIGGYBACK`], go out together, so the driver sends them as one `$batch`
//!   per four folders (Outlook's concurrency per mailbox) rather than each on
//!   its own. With many folders the interval grows so the mailbox stays
//!   under [`BUDGET_PER_10_MIN`] requests (Graph counts each request inside a
//!   batch).
//! - **A reset anywhere is a reset everywhere**: when one folder's delta
//!   link expired, every folder starts over and one [`Change::Reset`] is
//!   reported, so the consumer's reload sees the whole mailbox.
//! - **Status**: syncing until the folder list has been read and every
//!   folder has completed its first round (so nothing of the first load is
//!   news), signed out if any folder is, waiting if any folder is.
//! - **State** ([`MailboxSync::poll_state`]): the delta link of each folder
//!   as one JSON object, handed out once its changes are out and no removal
//!   is held back.

use crate::sync::{DeltaSync, PollConfig, Request, Response, Status};
use lamplighter_graph_wire::{Continue, MailFolder};
use lamplighter_mailbox_sync::Change;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The key of the Inbox (its well-known name); other folders are keyed by id.
pub const INBOX: &str = "inbox";

/// The well-known folders (and everything below them) no voicemail is
/// looked for in.
pub const NOT_FOLLOWED: &[&str] =
    &["deleteditems", "junkemail", "sentitems", "drafts", "outbox", "conversationhistory", "syncissues"];

/// The most folders followed besides the Inbox.
pub const MAX_FOLLOWED: usize = 100;

/// How often the folder list is read again, unless configured otherwise.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(1800);

/// The longest a removal waits for the other folders.
pub const MAX_HOLD: Duration = Duration::from_secs(120);

/// Folders due within this much of one that is due now go with it.
pub const PIGGYBACK: Duration = Duration::from_secs(2);

/// The requests per 10 minutes the polling keeps a mailbox under: a quarter
/// of the 10,000 Graph allows an app per mailbox.
pub const BUDGET_PER_10_MIN: u32 = 2_500;

/// A folder to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderRef {
    /// [`INBOX`], or the folder's id.
    pub key: String,
    /// Its path for people (`Inbox/Voicemail`).
    pub path: String,
}

/// The folders to follow, from the folder tree as listed (`folders`: every
/// mail folder found, at any depth), the ids of the [`NOT_FOLLOWED`]
/// folders, and the Inbox's id (followed as [`INBOX`], never twice).
/// Folders below a not-followed one are not followed either; the result is
/// sorted by path and at most [`MAX_FOLLOWED`] long.
pub fn choose(folders: &[MailFolder], not_followed: &[String], inbox_id: Option<&str>) -> Vec<FolderRef> {
    let by_id: HashMap<&str, &MailFolder> = folders.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut out = Vec::new();
    'folders: for f in folders {
        if Some(f.id.as_str()) == inbox_id {
            continue;
        }
        // walk up: excluded if it or an ancestor is; the path on the way (bounded: a forged loop ends)
        let mut names = Vec::new();
        let mut at = Some(f);
        for _ in 0..32 {
            let Some(x) = at else { break };
            if not_followed.contains(&x.id) {
                continue 'folders;
            }
            names.push(if Some(x.id.as_str()) == inbox_id {
                "Inbox".to_string()
            } else {
                x.display_name.clone().unwrap_or_else(|| x.id.clone())
            });
            at = x.parent_folder_id.as_deref().and_then(|p| by_id.get(p).copied());
        }
        names.reverse();
        out.push(FolderRef { key: f.id.clone(), path: names.join("/") });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path).then(a.key.cmp(&b.key)));
    out.dedup_by(|a, b| a.key == b.key);
    out.truncate(MAX_FOLLOWED);
    out
}

/// A request for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A delta request of one folder (by [`FolderRef::key`]).
    Delta { folder: String, request: Request },
    /// Read the folder list (and answer with [`MailboxSync::discovered`]).
    Discover,
}

#[derive(Debug)]
struct Followed {
    path: String,
    sync: DeltaSync,
    /// The next request begins a round (after a deltaLink, or from no token).
    next_starts_round: bool,
    /// The tick at which the round under way began.
    round_tick: u64,
    /// The tick at which the last completed round began (0: none yet).
    completed_tick: u64,
    link: Option<String>,
}

impl Followed {
    fn new(path: String, config: PollConfig, link: Option<String>, now: Instant) -> Followed {
        Followed {
            path,
            sync: DeltaSync::new(config, link.clone(), now),
            next_starts_round: true,
            round_tick: 0,
            completed_tick: 0,
            link,
        }
    }
}

#[derive(Debug, Clone)]
struct Held {
    id: lamplighter_ews_wire::ItemId,
    tick: u64,
    since: Instant,
    /// The folder list must be read again after `tick` (not when the list itself dropped the folder).
    needs_list: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Discovery {
    Due(Instant),
    InFlight(u64),
}

/// The followed folders of one mailbox.
#[derive(Debug)]
pub struct MailboxSync {
    config: PollConfig,
    folders: BTreeMap<String, Followed>,
    /// Which followed folders hold each item.
    presence: HashMap<String, BTreeSet<String>>,
    held: Vec<Held>,
    /// Counts requests handed out, so "after" can be told.
    tick: u64,
    discovery: Discovery,
    /// The tick at which the last completed discovery was handed out (0: none).
    discovered_tick: u64,
    discovery_failures: u32,
    discovery_error: Option<String>,
    /// Read the list again as soon as the one in flight is in.
    rediscover: bool,
    changes: VecDeque<Change>,
    state_dirty: bool,
    /// Change notifications flow: polling only at this pace, as a safety net.
    pushed: Option<Duration>,
}

impl MailboxSync {
    /// Starts from a stored state ([`MailboxSync::poll_state`]'s, or the
    /// Inbox's bare delta link of earlier versions), or from nothing. The
    /// folder list is read first.
    pub fn new(config: PollConfig, stored: Option<String>, now: Instant) -> MailboxSync {
        let mut links: BTreeMap<String, String> = match stored.as_deref().map(str::trim) {
            Some(s) if s.starts_with('{') => {
                serde_json::from_str::<StoredState>(s).map(|s| s.folders).unwrap_or_default()
            }
            Some(s) if !s.is_empty() => BTreeMap::from([(INBOX.to_string(), s.to_string())]),
            _ => BTreeMap::new(),
        };
        let mut folders = BTreeMap::new();
        folders.insert(INBOX.to_string(), Followed::new("Inbox".into(), config, links.remove(INBOX), now));
        for (key, link) in links.into_iter().take(MAX_FOLLOWED) {
            folders.insert(key.clone(), Followed::new(key, config, Some(link), now));
        }
        MailboxSync {
            config,
            folders,
            presence: HashMap::new(),
            held: Vec::new(),
            tick: 0,
            discovery: Discovery::Due(now),
            discovered_tick: 0,
            discovery_failures: 0,
            discovery_error: None,
            rediscover: false,
            changes: VecDeque::new(),
            state_dirty: false,
            pushed: None,
        }
    }

    /// The folders followed now, by path.
    pub fn followed(&self) -> Vec<FolderRef> {
        let mut v: Vec<FolderRef> =
            self.folders.iter().map(|(k, f)| FolderRef { key: k.clone(), path: f.path.clone() }).collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// The requests due at `now`: the folder list when due, and every
    /// folder due now with those due within [`PIGGYBACK`].
    pub fn poll_requests(&mut self, now: Instant) -> Vec<Step> {
        let mut out = Vec::new();
        if self.signed_out() {
            // a refused sign-in stops the whole mailbox until woken: no folder, no listing
            return out;
        }
        if let Discovery::Due(at) = self.discovery
            && at <= now
        {
            self.tick += 1;
            self.discovery = Discovery::InFlight(self.tick);
            out.push(Step::Discover);
        }
        let any_due = self.folders.values().any(|f| f.sync.next_wake().is_some_and(|w| w <= now));
        if any_due {
            let by = now + PIGGYBACK;
            self.tick += 1;
            for (key, f) in &mut self.folders {
                if let Some(request) = f.sync.poll_request(by) {
                    if f.next_starts_round {
                        f.round_tick = self.tick;
                    }
                    out.push(Step::Delta { folder: key.clone(), request });
                }
            }
        }
        out
    }

    /// When the next request falls due (`None`: all in flight or signed out).
    pub fn next_wake(&self) -> Option<Instant> {
        if self.signed_out() {
            return None;
        }
        let d = match self.discovery {
            Discovery::Due(at) => Some(at),
            Discovery::InFlight(_) => None,
        };
        self.folders.values().filter_map(|f| f.sync.next_wake()).chain(d).min()
    }

    fn signed_out(&self) -> bool {
        self.folders.values().any(|f| matches!(f.sync.status(), Status::SignedOut { .. }))
    }

    /// The answer to a folder's delta request.
    pub fn handle(&mut self, now: Instant, folder: &str, response: Response) {
        let Some(f) = self.folders.get_mut(folder) else { return };
        let ends_round = match &response {
            Response::Page(p) => Some(matches!(p.then, Continue::Delta(_))),
            _ => None,
        };
        f.sync.handle(now, response);
        match ends_round {
            Some(true) => {
                f.completed_tick = f.round_tick;
                f.next_starts_round = true;
            }
            Some(false) => f.next_starts_round = false,
            None => {}
        }
        let mut reset = false;
        let mut incoming = Vec::new();
        while let Some(c) = f.sync.poll_change() {
            if c == Change::Reset {
                reset = true;
            } else {
                incoming.push(c);
            }
        }
        while let Some(link) = f.sync.poll_link() {
            f.link = Some(link);
            self.state_dirty = true;
        }
        if reset {
            self.reset_all(now);
            return;
        }
        for c in incoming {
            self.merge(now, folder, c);
        }
        self.release(now);
    }

    fn merge(&mut self, now: Instant, folder: &str, change: Change) {
        let added = matches!(change, Change::Added(_));
        match change {
            Change::Added(item) | Change::Updated(item) => {
                let id = item.id.id.clone();
                // held in another folder already, or just gone from one: a move or a change, no news
                let known = self.presence.contains_key(&id) || self.held.iter().any(|h| h.id.id == id);
                self.presence.entry(id.clone()).or_default().insert(folder.to_string());
                self.held.retain(|h| h.id.id != id);
                self.changes.push_back(if added && !known { Change::Added(item) } else { Change::Updated(item) });
            }
            Change::Removed(id) => {
                let Some(set) = self.presence.get_mut(&id.id) else {
                    // held already (it left another folder, so it moved again
                    // since): held anew from now; never seen at all: nothing to hold
                    match self.held.iter_mut().find(|h| h.id.id == id.id) {
                        Some(h) => {
                            h.tick = self.tick;
                            self.list_again(now);
                        }
                        None => self.changes.push_back(Change::Removed(id)),
                    }
                    return;
                };
                set.remove(folder);
                if set.is_empty() {
                    self.presence.remove(&id.id);
                    self.held.push(Held { id, tick: self.tick, since: now, needs_list: true });
                    self.list_again(now);
                }
            }
            other => self.changes.push_back(other),
        }
    }

    /// Reads the folder list again soon: an item left, perhaps for a folder made since.
    fn list_again(&mut self, now: Instant) {
        match &mut self.discovery {
            Discovery::Due(at) => *at = (*at).min(now),
            Discovery::InFlight(_) => self.rediscover = true,
        }
    }

    /// Reports the held removals that every folder (and the folder list) has confirmed.
    fn release(&mut self, now: Instant) {
        let folders = &self.folders;
        let discovered = self.discovered_tick;
        let (out, keep): (Vec<Held>, Vec<Held>) = self.held.drain(..).partition(|h| {
            ((!h.needs_list || discovered > h.tick) && folders.values().all(|f| f.completed_tick > h.tick))
                || now.saturating_duration_since(h.since) >= MAX_HOLD
        });
        self.held = keep;
        for h in out {
            self.changes.push_back(Change::Removed(h.id));
        }
    }

    fn reset_all(&mut self, now: Instant) {
        self.changes.push_back(Change::Reset);
        self.presence.clear();
        self.held.clear();
        for f in self.folders.values_mut() {
            *f = Followed::new(std::mem::take(&mut f.path), self.config, None, now);
        }
        self.state_dirty = true;
    }

    /// The folder list read (`Ok`: the folders to follow, from [`choose`]),
    /// or why it could not be.
    pub fn discovered(&mut self, now: Instant, result: Result<Vec<FolderRef>, String>) {
        let Discovery::InFlight(tick) = self.discovery else { return };
        match result {
            Ok(list) => {
                self.discovery_failures = 0;
                self.discovery_error = None;
                let wanted: BTreeMap<String, String> =
                    list.into_iter().filter(|f| f.key != INBOX).map(|f| (f.key, f.path)).collect();
                let gone: Vec<String> =
                    self.folders.keys().filter(|k| *k != INBOX && !wanted.contains_key(*k)).cloned().collect();
                for key in gone {
                    self.folders.remove(&key);
                    self.state_dirty = true;
                    // what only that folder held leaves with it (held like any removal)
                    let ids: Vec<String> =
                        self.presence.iter().filter(|(_, s)| s.contains(&key)).map(|(id, _)| id.clone()).collect();
                    for id in ids {
                        let set = self.presence.get_mut(&id).expect("just found");
                        set.remove(&key);
                        if set.is_empty() {
                            self.presence.remove(&id);
                            let id = lamplighter_ews_wire::ItemId { id, change_key: String::new() };
                            self.held.push(Held { id, tick, since: now, needs_list: false });
                        }
                    }
                }
                for (key, path) in wanted {
                    match self.folders.get_mut(&key) {
                        Some(f) => f.path = path,
                        None => {
                            let f = Followed::new(path, self.config, None, now);
                            self.folders.insert(key, f);
                        }
                    }
                }
                self.fit_budget();
                self.discovered_tick = tick;
                let next = if std::mem::take(&mut self.rediscover) { now } else { now + self.config.folders_every };
                self.discovery = Discovery::Due(next);
                self.release(now);
            }
            Err(why) => {
                self.discovery_failures = self.discovery_failures.saturating_add(1);
                let wait =
                    (self.config.retry_initial * (1u32 << self.discovery_failures.min(8))).min(self.config.retry_max);
                self.discovery_error = Some(why);
                self.discovery = Discovery::Due(now + wait);
            }
        }
    }

    /// A change notification for this mailbox: every folder polls now
    /// (see [`DeltaSync::notified`]); a notification does not say which.
    pub fn notified(&mut self, now: Instant) {
        for f in self.folders.values_mut() {
            f.sync.notified(now);
        }
    }

    /// Whether change notifications flow (`Some`: poll only every so
    /// often, as a safety net) or not (`None`: the polling pace of the
    /// config, starting at once).
    pub fn set_pushed(&mut self, now: Instant, pushed: Option<Duration>) {
        if self.pushed == pushed {
            return;
        }
        self.pushed = pushed;
        self.fit_budget();
        if pushed.is_none() {
            let idle = self.config.idle_interval;
            for f in self.folders.values_mut() {
                f.sync.due_within(now, idle);
            }
        }
    }

    /// Slows every folder's polling so the mailbox stays within [`BUDGET_PER_10_MIN`].
    fn fit_budget(&mut self) {
        let n = self.folders.len() as u32;
        let floor = Duration::from_secs(600) * n / BUDGET_PER_10_MIN;
        let mut c = self.config;
        if let Some(p) = self.pushed {
            c.idle_interval = p;
            c.active_interval = p;
        }
        c.idle_interval = c.idle_interval.max(floor);
        c.active_interval = c.active_interval.max(floor);
        for f in self.folders.values_mut() {
            f.sync.set_intervals(c.active_interval, c.idle_interval);
        }
    }

    /// The next change to apply.
    pub fn poll_change(&mut self) -> Option<Change> {
        self.changes.pop_front()
    }

    /// The state to store, when it changed and the changes before it are
    /// out (and no removal is held back, which a restart would lose).
    pub fn poll_state(&mut self) -> Option<String> {
        if !self.state_dirty || !self.changes.is_empty() || !self.held.is_empty() {
            return None;
        }
        self.state_dirty = false;
        let folders: BTreeMap<String, String> =
            self.folders.iter().filter_map(|(k, f)| f.link.clone().map(|l| (k.clone(), l))).collect();
        serde_json::to_string(&StoredState { folders }).ok()
    }

    /// Where tracking stands, over all folders.
    pub fn status(&self) -> Status {
        let statuses: Vec<Status> = self.folders.values().map(|f| f.sync.status()).collect();
        if let Some(s) = statuses.iter().find(|s| matches!(s, Status::SignedOut { .. })) {
            return s.clone();
        }
        let waiting = statuses
            .iter()
            .filter_map(|s| match s {
                Status::Waiting { until, reason } => Some((*until, reason.clone())),
                _ => None,
            })
            .min_by_key(|(u, _)| *u);
        if let Some((until, reason)) = waiting {
            return Status::Waiting { until, reason };
        }
        if self.discovered_tick == 0 {
            if let (Some(reason), Discovery::Due(until)) = (&self.discovery_error, &self.discovery) {
                return Status::Waiting { until: *until, reason: format!("cannot list the mail folders: {reason}") };
            }
            return Status::Syncing;
        }
        if statuses.contains(&Status::Syncing) { Status::Syncing } else { Status::Live }
    }

    /// The user did something: every folder at the active pace for a while.
    pub fn user_active(&mut self, now: Instant) {
        for f in self.folders.values_mut() {
            f.sync.user_active(now);
        }
    }

    /// Poll now ("Retry now", a new token): failures forgiven everywhere.
    pub fn wake(&mut self, now: Instant) {
        for f in self.folders.values_mut() {
            f.sync.wake(now);
        }
        if let Discovery::Due(at) = &mut self.discovery
            && self.discovery_failures > 0
        {
            *at = now;
            self.discovery_failures = 0;
        }
    }

    /// The machine woke up or the network changed (see [`DeltaSync::resumed`]).
    pub fn resumed(&mut self, now: Instant) {
        for f in self.folders.values_mut() {
            f.sync.resumed(now);
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredState {
    folders: BTreeMap<String, String>,
}
