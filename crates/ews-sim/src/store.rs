//! The mailbox behind the simulator, sans-IO: items, the change log that
//! SyncFolderItems answers from, and subscriptions with their pending
//! events. Everything the SOAP layer answers comes from here; nothing here
//! knows XML or HTTP.
//!
//! Sync states are opaque to clients (`base64("lamp-sync:<epoch>:<seq>")`),
//! survive a restart like Exchange's (they live with the mailbox), and stop
//! being valid when the mailbox's epoch changes ([`Store::forget_sync_states`]),
//! which is what `ErrorInvalidSyncStateData` means. Subscriptions do not
//! survive a restart.
//!
//! Items live in a folder: the Inbox, or a folder the user made
//! ([`Store::create_folder`]), where a mail rule delivers
//! ([`Store::deposit_in`]) or the user moves ([`Store::move_item`]) them.
//! A sync is per folder: a move is a delete in the old folder and a create
//! in the new one. Ids survive a move, as Graph's immutable ids do
//! (`Prefer: IdType="ImmutableId"`, which Lamplighter sends).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// The MS-OXOUM properties of an item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UmProps {
    /// 0x6801 duration in seconds.
    pub duration_secs: Option<u32>,
    /// 0x6802 caller number.
    pub caller_number: Option<String>,
    /// 0x6803 caller name.
    pub caller_name: Option<String>,
    /// 0x6805 attachment order.
    pub attachment_order: Option<String>,
    /// 0x6806 call id.
    pub call_id: Option<String>,
}

/// An attachment as stored.
#[derive(Debug, Clone)]
pub struct StoredAttachment {
    /// `AttachmentId`.
    pub id: String,
    /// File name.
    pub name: String,
    /// MIME type.
    pub content_type: String,
    /// The bytes.
    pub data: Arc<Vec<u8>>,
}

/// What a test or the demo deposits.
#[derive(Debug, Clone, Default)]
pub struct NewItem {
    /// `ItemClass`, e.g. `IPM.Note.Microsoft.Voicemail.UM.CA`.
    pub item_class: String,
    pub subject: String,
    /// `DateTimeReceived` (ISO 8601, UTC); now when `None`.
    pub received: Option<String>,
    /// `Importance`: Low, Normal, High.
    pub importance: String,
    /// Read already.
    pub is_read: bool,
    /// Sender display name.
    pub from_name: Option<String>,
    /// Sender address.
    pub from_email: Option<String>,
    /// UM properties.
    pub um: UmProps,
    /// Internet message headers.
    pub headers: Vec<(String, String)>,
    /// Attachments: name, content type, bytes.
    pub attachments: Vec<(String, String, Vec<u8>)>,
    /// The body as text (UM writes the transcription preview there).
    pub body_text: Option<String>,
}

/// A folder the user made (under the Top of Information Store or another of theirs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFolder {
    /// Its `FolderId`.
    pub id: String,
    /// What Outlook shows.
    pub name: String,
    /// The parent's `FolderId` (`TOP_ID` for a top-level folder).
    pub parent: String,
}

/// An item in the mailbox.
#[derive(Debug, Clone)]
pub struct StoredItem {
    /// `Id`.
    pub id: String,
    /// Bumped on every change; the change key is derived from it.
    pub version: u32,
    /// What was deposited.
    pub data: NewItem,
    /// `DateTimeReceived`.
    pub received: String,
    /// Attachments with ids.
    pub attachments: Vec<StoredAttachment>,
    /// The `FolderId` of its folder.
    pub folder: String,
    /// When it was created, changed at all, and changed other than its read flag.
    pub created_seq: u64,
    changed_seq: u64,
    content_seq: u64,
    /// When it came into its folder (created there or moved in).
    entered_seq: u64,
}

impl StoredItem {
    /// The current `ChangeKey`.
    pub fn change_key(&self) -> String {
        STANDARD.encode(format!("CQAAABYAAAD{:08}{}", self.version, &self.id[self.id.len().saturating_sub(6)..]))
    }

    /// Whether its class is a voicemail (what the `voicemail` search folder shows).
    pub fn is_voicemail(&self) -> bool {
        lamplighter_um::ItemClass::parse(&self.data.item_class) == lamplighter_um::ItemClass::Voicemail
    }
}

#[derive(Debug, Clone)]
struct Tombstone {
    id: String,
    change_key: String,
    /// The folder it left.
    folder: String,
    /// When it came into that folder.
    entered_seq: u64,
    deleted_seq: u64,
}

/// One change a sync reports.
#[derive(Debug, Clone)]
pub enum SyncChange {
    /// New since the state.
    Create(StoredItem),
    /// Changed beyond its read flag.
    Update(StoredItem),
    /// Only the read flag changed.
    ReadFlag(StoredItem),
    /// Deleted: id and last change key.
    Delete(String, String),
}

/// A page of SyncFolderItems.
#[derive(Debug, Clone)]
pub struct SyncResult {
    /// The changes, oldest first.
    pub changes: Vec<SyncChange>,
    /// The state to hand out.
    pub state: String,
    /// Whether this was the last page.
    pub includes_last: bool,
}

/// A sync state this mailbox did not hand out, or one from before
/// [`Store::forget_sync_states`]: `ErrorInvalidSyncStateData`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSyncState;

/// Event kinds the simulator emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `NewMailEvent`.
    NewMail,
    /// `CreatedEvent`.
    Created,
    /// `ModifiedEvent`.
    Modified,
    /// `DeletedEvent`.
    Deleted,
    /// `MovedEvent` (out of the folder named as the parent).
    Moved,
    /// `FreeBusyChangedEvent`: the calendar's free/busy changed (a meeting
    /// accepted, an appointment moved).
    FreeBusyChanged,
}

impl EventKind {
    /// The element name.
    pub fn element(self) -> &'static str {
        match self {
            EventKind::NewMail => "NewMailEvent",
            EventKind::Created => "CreatedEvent",
            EventKind::Modified => "ModifiedEvent",
            EventKind::Deleted => "DeletedEvent",
            EventKind::Moved => "MovedEvent",
            EventKind::FreeBusyChanged => "FreeBusyChangedEvent",
        }
    }
}

/// A pending notification event.
#[derive(Debug, Clone)]
pub struct SimEvent {
    pub kind: EventKind,
    /// The item and its change key.
    pub item: (String, String),
    /// When (ISO 8601).
    pub timestamp: String,
    /// Its watermark number.
    pub watermark: u64,
    /// The `FolderId` of the item's folder (for a move: the folder it left).
    pub parent: &'static str,
    /// A move's new folder.
    pub moved_to: Option<String>,
}

/// Streaming or pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubKind {
    /// GetStreamingEvents.
    Streaming,
    /// GetEvents.
    Pull,
}

#[derive(Debug)]
struct Subscription {
    kind: SubKind,
    /// The `EventType`s asked for (element names).
    types: Vec<String>,
    /// The folders watched (`FolderId`s); Voice Mail, a search folder over the Inbox, as the Inbox.
    folders: Vec<&'static str>,
    events: VecDeque<SimEvent>,
    /// Pull: the watermark last acknowledged.
    acked: u64,
}

/// Why a subscription operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubError {
    /// `ErrorSubscriptionNotFound`.
    NotFound,
    /// `ErrorInvalidWatermark`.
    InvalidWatermark,
}

/// Why an update failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateError {
    /// `ErrorItemNotFound`.
    NotFound,
    /// `ErrorIrresolvableConflict`.
    Conflict,
}

/// The simulated mailbox.
#[derive(Debug)]
pub struct Store {
    items: BTreeMap<String, StoredItem>,
    tombstones: Vec<Tombstone>,
    seq: u64,
    epoch: u32,
    next_id: u64,
    next_sub: u64,
    watermark: u64,
    subscriptions: HashMap<String, Subscription>,
    folders: Vec<UserFolder>,
    /// Part of every id, so ids of different simulator runs differ.
    salt: String,
}

/// Now as ISO 8601 UTC (`2026-11-24T09:14:03Z`).
pub fn now_iso() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    iso_from_unix(secs)
}

/// A Unix time as ISO 8601 UTC.
pub fn iso_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // civil from days (H. Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// An empty mailbox.
    pub fn new() -> Self {
        let salt = format!(
            "{:x}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
                & 0xffff_ffff
        );
        Store {
            items: BTreeMap::new(),
            tombstones: Vec::new(),
            seq: 0,
            epoch: 1,
            next_id: 1,
            next_sub: 1,
            watermark: 1,
            subscriptions: HashMap::new(),
            folders: Vec::new(),
            salt,
        }
    }

    fn push_event(&mut self, kind: EventKind, item: (String, String)) {
        self.push_event_in(kind, item, crate::folders::INBOX_ID);
    }

    /// Queues an event for each subscription that watches its folder and asked for its type.
    fn push_event_in(&mut self, kind: EventKind, item: (String, String), parent: &'static str) {
        self.watermark += 1;
        let ev = SimEvent { kind, item, timestamp: now_iso(), watermark: self.watermark, parent, moved_to: None };
        for sub in self.subscriptions.values_mut() {
            if sub.types.iter().any(|t| t == kind.element()) && sub.folders.contains(&parent) {
                sub.events.push_back(ev.clone());
            }
        }
    }

    /// The calendar's free/busy changed: a `FreeBusyChangedEvent` for the
    /// subscriptions that watch the calendar and asked for it. Returns the
    /// calendar item's id.
    pub fn free_busy_changed(&mut self) -> String {
        self.seq += 1;
        let id = STANDARD.encode(format!("AAMkAGLampCal{}-{:010}", self.salt, self.seq));
        self.push_event_in(
            EventKind::FreeBusyChanged,
            (id.clone(), "DwAAABYAAAA=".into()),
            crate::folders::CALENDAR_ID,
        );
        id
    }

    /// Whether subscription `id` asked for event type `element`.
    pub fn wants(&self, id: &str, element: &str) -> bool {
        self.subscriptions.get(id).is_some_and(|s| s.types.iter().any(|t| t == element))
    }

    /// Adds an item to the Inbox; returns its id.
    pub fn deposit(&mut self, new: NewItem) -> String {
        self.deposit_in(new, crate::folders::INBOX_ID).expect("the Inbox exists")
    }

    /// Makes a folder named `name` under `parent` (a user folder's id, or
    /// `None` for the Top of Information Store); returns its id.
    pub fn create_folder(&mut self, name: &str, parent: Option<&str>) -> Option<String> {
        let parent = match parent {
            None => crate::folders::TOP_ID.to_string(),
            Some(p) if self.folders.iter().any(|f| f.id == p) || p == crate::folders::INBOX_ID => p.to_string(),
            Some(_) => return None,
        };
        self.seq += 1;
        let id = STANDARD.encode(format!("AAMkAGLampFolder{}-{:06}", self.salt, self.folders.len() + 1));
        self.folders.push(UserFolder { id: id.clone(), name: name.to_string(), parent });
        Some(id)
    }

    /// The folders the user made, in the order made.
    pub fn user_folders(&self) -> &[UserFolder] {
        &self.folders
    }

    /// Whether `id` is a folder items can be in (the Inbox, Deleted Items or a user folder).
    pub fn holds_items(&self, id: &str) -> bool {
        id == crate::folders::INBOX_ID || id == crate::folders::DELETED_ID || self.folders.iter().any(|f| f.id == id)
    }

    /// Adds an item to `folder` (as a mail rule delivers it there); returns
    /// its id, or `None` when there is no such folder.
    pub fn deposit_in(&mut self, new: NewItem, folder: &str) -> Option<String> {
        if !self.holds_items(folder) {
            return None;
        }
        self.seq += 1;
        let n = self.next_id;
        self.next_id += 1;
        let id = STANDARD.encode(format!("AAMkAGLamp{}-{n:010}", self.salt));
        let attachments = new
            .attachments
            .iter()
            .enumerate()
            .map(|(k, (name, ct, data))| StoredAttachment {
                id: STANDARD.encode(format!("AAMkAGAtt{}-{n:010}-{k}", self.salt)),
                name: name.clone(),
                content_type: ct.clone(),
                data: Arc::new(data.clone()),
            })
            .collect();
        let item = StoredItem {
            id: id.clone(),
            version: 1,
            received: new.received.clone().unwrap_or_else(now_iso),
            data: new,
            attachments,
            folder: folder.to_string(),
            created_seq: self.seq,
            changed_seq: self.seq,
            content_seq: self.seq,
            entered_seq: self.seq,
        };
        let key = (id.clone(), item.change_key());
        self.items.insert(id.clone(), item);
        // EWS events only for the Inbox: no subscription watches another folder here
        if folder == crate::folders::INBOX_ID {
            self.push_event(EventKind::Created, key.clone());
            self.push_event(EventKind::NewMail, key);
        }
        Some(id)
    }

    /// Moves an item to `folder` (as the user or a rule does); its id stays.
    /// `false` when there is no such item or folder.
    pub fn move_item(&mut self, id: &str, folder: &str) -> bool {
        if !self.holds_items(folder) {
            return false;
        }
        let Some(item) = self.items.get_mut(id) else { return false };
        if item.folder == folder {
            return true;
        }
        self.seq += 1;
        self.tombstones.push(Tombstone {
            id: item.id.clone(),
            change_key: item.change_key(),
            folder: std::mem::replace(&mut item.folder, folder.to_string()),
            entered_seq: item.entered_seq,
            deleted_seq: self.seq,
        });
        item.version += 1;
        item.entered_seq = self.seq;
        item.changed_seq = self.seq;
        item.content_seq = self.seq;
        let key = (item.id.clone(), item.change_key());
        let left = self.tombstones.last().map(|t| t.folder.clone()).unwrap_or_default();
        if left == crate::folders::INBOX_ID {
            self.watermark += 1;
            let ev = SimEvent {
                kind: EventKind::Moved,
                item: key,
                timestamp: now_iso(),
                watermark: self.watermark,
                parent: crate::folders::INBOX_ID,
                moved_to: Some(folder.to_string()),
            };
            for sub in self.subscriptions.values_mut() {
                if sub.types.iter().any(|t| t == "MovedEvent") && sub.folders.contains(&crate::folders::INBOX_ID) {
                    sub.events.push_back(ev.clone());
                }
            }
        } else if folder == crate::folders::INBOX_ID {
            self.push_event(EventKind::Created, key);
        }
        true
    }

    /// Sets the read flag (as the user would elsewhere). `false` when there is no such item.
    pub fn set_read(&mut self, id: &str, read: bool) -> bool {
        let Some(item) = self.items.get_mut(id) else { return false };
        if item.data.is_read == read {
            return true;
        }
        self.seq += 1;
        item.data.is_read = read;
        item.version += 1;
        item.changed_seq = self.seq;
        let key = (item.id.clone(), item.change_key());
        self.push_event(EventKind::Modified, key);
        true
    }

    /// Deletes an item (as the user would elsewhere). `false` when there is no such item.
    pub fn delete(&mut self, id: &str) -> bool {
        let Some(item) = self.items.remove(id) else { return false };
        self.seq += 1;
        self.tombstones.push(Tombstone {
            id: item.id.clone(),
            change_key: item.change_key(),
            folder: item.folder.clone(),
            entered_seq: item.entered_seq,
            deleted_seq: self.seq,
        });
        if item.folder == crate::folders::INBOX_ID {
            self.push_event(EventKind::Deleted, (item.id.clone(), item.change_key()));
        }
        true
    }

    /// UpdateItem of the read flag with a change key and a conflict policy.
    pub fn update_read(
        &mut self,
        id: &str,
        change_key: Option<&str>,
        read: bool,
        never_overwrite: bool,
    ) -> Result<StoredItem, UpdateError> {
        let item = self.items.get(id).ok_or(UpdateError::NotFound)?;
        if let Some(ck) = change_key
            && ck != item.change_key()
            && never_overwrite
        {
            return Err(UpdateError::Conflict);
        }
        self.set_read(id, read);
        self.items.get(id).cloned().ok_or(UpdateError::NotFound)
    }

    /// An item.
    pub fn get(&self, id: &str) -> Option<&StoredItem> {
        self.items.get(id)
    }

    /// All items, newest first.
    pub fn items(&self) -> Vec<&StoredItem> {
        let mut v: Vec<&StoredItem> = self.items.values().collect();
        v.sort_by(|a, b| b.received.cmp(&a.received).then(b.created_seq.cmp(&a.created_seq)));
        v
    }

    /// An attachment by id.
    pub fn attachment(&self, id: &str) -> Option<&StoredAttachment> {
        self.attachment_of(id).map(|(_, a)| a)
    }

    /// An attachment with its item.
    pub fn attachment_of(&self, id: &str) -> Option<(&StoredItem, &StoredAttachment)> {
        self.items.values().find_map(|i| i.attachments.iter().find(|a| a.id == id).map(|a| (i, a)))
    }

    /// The items of the folder with this `FolderId`, newest first.
    pub fn items_in(&self, folder: &str) -> Vec<&StoredItem> {
        self.items().into_iter().filter(|i| i.folder == folder).collect()
    }

    /// FindItem on `folder` (`inbox`, or `voicemail`: the voicemails of
    /// every folder but Deleted Items, as UM's search folder): the page and the total.
    pub fn find(&self, folder: &str, offset: usize, max: usize) -> (Vec<&StoredItem>, usize) {
        let all: Vec<&StoredItem> = self
            .items()
            .into_iter()
            .filter(|i| match folder {
                "voicemail" => i.is_voicemail() && i.folder != crate::folders::DELETED_ID,
                _ => i.folder == crate::folders::INBOX_ID,
            })
            .collect();
        let total = all.len();
        (all.into_iter().skip(offset).take(max).collect(), total)
    }

    fn state_string(&self, seq: u64) -> String {
        STANDARD.encode(format!("lamp-sync:{}:{seq}", self.epoch))
    }

    fn parse_state(&self, state: &str) -> Option<u64> {
        let raw = STANDARD.decode(state.trim()).ok()?;
        let s = String::from_utf8(raw).ok()?;
        let mut parts = s.strip_prefix("lamp-sync:")?.split(':');
        let epoch: u32 = parts.next()?.parse().ok()?;
        let seq: u64 = parts.next()?.parse().ok()?;
        (epoch == self.epoch && seq <= self.seq).then_some(seq)
    }

    /// SyncFolderItems of the Inbox from `state` (`None`: from the beginning), at most `max` changes.
    pub fn sync(&self, state: Option<&str>, max: usize) -> Result<SyncResult, InvalidSyncState> {
        self.sync_folder(crate::folders::INBOX_ID, state, max)
    }

    /// A sync of the folder with this `FolderId`.
    pub fn sync_folder(&self, folder: &str, state: Option<&str>, max: usize) -> Result<SyncResult, InvalidSyncState> {
        let since = match state {
            None => 0,
            Some(s) => self.parse_state(s).ok_or(InvalidSyncState)?,
        };
        // (seq of the last change, change)
        let mut changes: Vec<(u64, SyncChange)> = Vec::new();
        for item in self.items.values().filter(|i| i.folder == folder) {
            if item.changed_seq <= since {
                continue;
            }
            let c = if item.entered_seq > since {
                SyncChange::Create(item.clone())
            } else if item.content_seq > since {
                SyncChange::Update(item.clone())
            } else {
                SyncChange::ReadFlag(item.clone())
            };
            changes.push((item.changed_seq, c));
        }
        for t in self.tombstones.iter().filter(|t| t.folder == folder) {
            if t.deleted_seq > since && t.entered_seq <= since {
                changes.push((t.deleted_seq, SyncChange::Delete(t.id.clone(), t.change_key.clone())));
            }
        }
        changes.sort_by_key(|(s, _)| *s);
        let includes_last = changes.len() <= max;
        let page: Vec<(u64, SyncChange)> = changes.into_iter().take(max).collect();
        let upto = if includes_last { self.seq } else { page.last().map(|(s, _)| *s).unwrap_or(self.seq) };
        Ok(SyncResult {
            changes: page.into_iter().map(|(_, c)| c).collect(),
            state: self.state_string(upto),
            includes_last,
        })
    }

    /// Makes every sync state handed out so far invalid.
    pub fn forget_sync_states(&mut self) {
        self.epoch += 1;
    }

    fn watermark_string(n: u64) -> String {
        STANDARD.encode(format!("lamp-wm:{n}"))
    }

    fn parse_watermark(s: &str) -> Option<u64> {
        let raw = STANDARD.decode(s.trim()).ok()?;
        String::from_utf8(raw).ok()?.strip_prefix("lamp-wm:")?.parse().ok()
    }

    /// A new subscription: its id and (for pull) its watermark.
    /// A new subscription to `folders` (`FolderId`s) for `types` (event
    /// element names; none: every type, for callers that do not care).
    pub fn subscribe(&mut self, kind: SubKind, types: &[&str], folders: &[&'static str]) -> (String, String) {
        let id = STANDARD.encode(format!("FwBsYW1wLXNpbQ{}-{:06}", self.salt, self.next_sub));
        self.next_sub += 1;
        let types = if types.is_empty() {
            [
                EventKind::NewMail,
                EventKind::Created,
                EventKind::Modified,
                EventKind::Deleted,
                EventKind::FreeBusyChanged,
            ]
            .iter()
            .map(|k| k.element().to_string())
            .collect()
        } else {
            types.iter().map(|t| t.to_string()).collect()
        };
        let folders = if folders.is_empty() { vec![crate::folders::INBOX_ID] } else { folders.to_vec() };
        self.subscriptions
            .insert(id.clone(), Subscription { kind, types, folders, events: VecDeque::new(), acked: self.watermark });
        (id, Self::watermark_string(self.watermark))
    }

    /// Whether a subscription exists and is of `kind`.
    pub fn has_subscription(&self, id: &str, kind: SubKind) -> bool {
        self.subscriptions.get(id).is_some_and(|s| s.kind == kind)
    }

    pub fn unsubscribe(&mut self, id: &str) -> Result<(), SubError> {
        self.subscriptions.remove(id).map(|_| ()).ok_or(SubError::NotFound)
    }

    /// The pending events of a streaming subscription (taken).
    pub fn take_events(&mut self, id: &str) -> Result<Vec<SimEvent>, SubError> {
        let sub = self.subscriptions.get_mut(id).ok_or(SubError::NotFound)?;
        Ok(sub.events.drain(..).collect())
    }

    /// GetEvents: events after `watermark`, the previous watermark, and the current one.
    pub fn get_events(&mut self, id: &str, watermark: &str) -> Result<(Vec<SimEvent>, String, String), SubError> {
        let from = Self::parse_watermark(watermark).ok_or(SubError::InvalidWatermark)?;
        let current = self.watermark;
        let sub = self.subscriptions.get_mut(id).ok_or(SubError::NotFound)?;
        if from < sub.acked {
            return Err(SubError::InvalidWatermark);
        }
        sub.acked = from;
        sub.events.retain(|e| e.watermark > from);
        let events: Vec<SimEvent> = sub.events.iter().cloned().collect();
        Ok((events, Self::watermark_string(from), Self::watermark_string(current)))
    }

    /// Forgets every subscription (a restart of the server).
    pub fn forget_subscriptions(&mut self) {
        self.subscriptions.clear();
    }

    /// How many subscriptions exist.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(n: u32) -> NewItem {
        NewItem {
            item_class: "IPM.Note.Microsoft.Voicemail.UM.CA".into(),
            subject: format!("vm {n}"),
            importance: "Normal".into(),
            ..NewItem::default()
        }
    }

    fn ids(r: &SyncResult) -> Vec<String> {
        r.changes
            .iter()
            .map(|c| match c {
                SyncChange::Create(i) => format!("+{}", i.data.subject),
                SyncChange::Update(i) => format!("~{}", i.data.subject),
                SyncChange::ReadFlag(i) => format!("r{}", i.data.subject),
                SyncChange::Delete(..) => "-".into(),
            })
            .collect()
    }

    #[test]
    fn sync_reports_net_changes_since_a_state_in_pages() {
        let mut s = Store::new();
        let a = s.deposit(vm(1));
        let _b = s.deposit(vm(2));
        let first = s.sync(None, 1).expect("sync");
        assert_eq!((ids(&first), first.includes_last), (vec!["+vm 1".to_string()], false));
        let second = s.sync(Some(&first.state), 1).expect("sync");
        assert_eq!((ids(&second), second.includes_last), (vec!["+vm 2".to_string()], true));
        let c = s.deposit(vm(3));
        s.set_read(&a, true);
        s.delete(&c); // created and deleted since the state: nothing to say
        let d = s.deposit(vm(4));
        s.delete(&_b);
        let third = s.sync(Some(&second.state), 512).expect("sync");
        assert_eq!(ids(&third), ["rvm 1", "+vm 4", "-"]);
        assert!(s.sync(Some(&third.state), 512).expect("sync").changes.is_empty());
        s.forget_sync_states();
        assert!(s.sync(Some(&third.state), 512).is_err());
        assert!(s.sync(Some("garbage"), 512).is_err());
        assert_eq!(s.get(&d).map(|i| i.is_voicemail()), Some(true));
    }

    #[test]
    fn a_move_is_a_delete_in_one_folder_and_a_create_in_the_other() {
        let mut s = Store::new();
        let vm_folder = s.create_folder("Voicemail", Some(crate::folders::INBOX_ID)).expect("folder");
        let a = s.deposit(vm(1));
        let filed = s.deposit_in(vm(2), &vm_folder).expect("a rule files it");
        assert!(s.deposit_in(vm(3), "no-such-folder").is_none());
        let inbox0 = s.sync(None, 512).expect("sync");
        let folder0 = s.sync_folder(&vm_folder, None, 512).expect("sync");
        assert_eq!((ids(&inbox0), ids(&folder0)), (vec!["+vm 1".to_string()], vec!["+vm 2".to_string()]));
        // the search folder shows both, FindItem on the Inbox only its own
        assert_eq!(s.find("voicemail", 0, 10).1, 2);
        assert_eq!(s.find("inbox", 0, 10).1, 1);
        assert!(s.move_item(&a, &vm_folder));
        assert_eq!(ids(&s.sync(Some(&inbox0.state), 512).expect("sync")), ["-"]);
        assert_eq!(ids(&s.sync_folder(&vm_folder, Some(&folder0.state), 512).expect("sync")), ["+vm 1"]);
        assert_eq!(s.get(&a).map(|i| i.folder.as_str()), Some(vm_folder.as_str()), "the id stays");
        // to Deleted Items: gone from the search folder
        assert!(s.move_item(&filed, crate::folders::DELETED_ID));
        assert_eq!(s.find("voicemail", 0, 10).1, 1);
        assert!(!s.move_item("nope", crate::folders::INBOX_ID));
    }

    #[test]
    fn pull_events_follow_watermarks() {
        let mut s = Store::new();
        let (id, wm) = s.subscribe(SubKind::Pull, &[], &[]);
        s.deposit(vm(1));
        let (events, _, next) = s.get_events(&id, &wm).expect("events");
        assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::Created, EventKind::NewMail]);
        assert!(s.get_events(&id, &next).expect("events").0.is_empty());
        assert_eq!(s.get_events(&id, &wm).err(), Some(SubError::InvalidWatermark));
        s.forget_subscriptions();
        assert_eq!(s.get_events(&id, &next).err(), Some(SubError::NotFound));
    }

    #[test]
    fn change_keys_guard_updates() {
        let mut s = Store::new();
        let a = s.deposit(vm(1));
        let old = s.get(&a).expect("item").change_key();
        assert!(s.update_read(&a, Some(&old), true, true).is_ok());
        assert_eq!(s.update_read(&a, Some(&old), false, true).err(), Some(UpdateError::Conflict));
        assert!(s.update_read(&a, Some(&old), false, false).is_ok());
        assert_eq!(s.update_read("nope", None, true, false).err(), Some(UpdateError::NotFound));
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_from_unix(1_795_517_643), "2026-11-24T10:54:03Z");
    }
}
