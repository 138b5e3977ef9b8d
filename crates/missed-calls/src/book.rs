//! Deduplication: reports of one call from several devices and sources
//! become one [`Call`], whose outcome combines them all.
//!
//! ## Same call
//! Two reports are linked ([`link`]) when, strongest first:
//! 1. their Call-IDs are equal (every fork of a request carries the same one);
//! 2. their times are within the window (15 s between ring starts, 45 s when
//!    one side only knows when it was logged), their original targets are
//!    known and equal, and their callers are the same (this holds for
//!    anonymous callers too: History-Info root plus time);
//! 3. within the window, at least one original target unknown, and the same
//!    caller, who is not anonymous.
//!
//! Never in one call: two reports from the same device with different (or
//! unknown) Call-IDs, and reports with different known original targets.
//!
//! ## Deterministic, incremental
//! The records linked to each other form small connected components (one
//! call's reports and the caller's other calls within a minute). Each
//! insert or removal re-clusters only the component it touches, greedily in
//! a fixed order of the records (time, device, source, Call-ID), so the
//! result depends on the set of records and never on their arrival order;
//! removal restores exactly the state before the insertion. Indexes by
//! Call-ID and by (caller, 45 s slot) find a record's neighbours in O(1), so
//! each update costs O(1) amortised for bounded components; a record linked
//! only to its own call by Call-ID takes a fast path with no re-clustering.
//!
//! ## Combined outcome
//! voicemail › answered anywhere › missed (primary for any report) › secondary.

use crate::classify::{Classification, SecondaryReason, classify};
use crate::party::{Party, UserIdentity};
use crate::record::{CallRecord, Millis, Outcome, Source, TimeKind};
use std::collections::{HashMap, HashSet};

/// Ring starts of one call's reports lie within this of each other.
pub const START_WINDOW_MS: Millis = 15_000;
/// The window when one report only knows when it was logged.
pub const LOGGED_WINDOW_MS: Millis = 45_000;

/// A record's call before it has one.
const NO_CALL: u64 = u64::MAX;

/// A record's handle in a [`CallBook`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(u32);

/// What the user should make of a call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// A real missed call of the user's.
    Missed,
    /// Reached the user on someone else's behalf; shown apart, not counted.
    Secondary(SecondaryReason),
    /// Answered on some device (named when known).
    Answered {
        /// The device that answered, if a report says.
        by: Option<String>,
    },
    /// The caller left a voicemail: counted as voicemail, not as a missed call.
    Voicemail,
}

/// One report behind a call, for "reported by 3 devices".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Its handle.
    pub id: RecordId,
    /// Where it came from.
    pub source: Source,
    pub device: String,
    /// What it said.
    pub outcome: Outcome,
}

/// One deduplicated call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub caller: Party,
    /// The caller's name, from whichever report had one.
    pub caller_name: Option<String>,
    /// The earliest time of its reports.
    pub at: Millis,
    /// What it means for the user.
    pub outcome: CallOutcome,
    /// The reports, in the book's fixed order.
    pub reports: Vec<Report>,
}

impl Call {
    /// How many distinct devices reported it.
    pub fn devices(&self) -> usize {
        self.reports.iter().map(|r| r.device.as_str()).collect::<HashSet<_>>().len()
    }
}

/// Missed calls from one caller, for "3 attempts".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerAttempts {
    pub caller: Party,
    /// How many missed calls.
    pub attempts: usize,
    /// The latest one's time.
    pub latest: Millis,
}

struct Slot {
    record: CallRecord,
    key: String,
    call: u64,
    class: Classification,
    /// `record.caller.key()`, computed once.
    caller_key: String,
    /// `record.call_key()`, computed once.
    call_key: Option<String>,
    /// `record.original_target()`, computed once.
    target: Option<Party>,
}

/// A call's members and two facts kept up to date so that most updates
/// need no re-clustering.
struct CallInfo {
    members: Vec<RecordId>,
    /// The Call-ID every member shares, if they all share one.
    uniform_key: Option<String>,
    /// No member links to a record outside the call.
    closed: bool,
}

/// The user's calls, built from reports one at a time.
pub struct CallBook {
    user: UserIdentity,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_report: HashMap<String, RecordId>,
    by_call_id: HashMap<String, Vec<RecordId>>,
    by_time: HashMap<(String, i64), Vec<RecordId>>,
    calls: HashMap<u64, CallInfo>,
    next_call: u64,
}

/// A report's identity: the same report inserted twice is one record.
fn report_key(r: &CallRecord) -> String {
    match &r.report_id {
        Some(id) => format!("{:?}|{}|{}", r.source, r.device, id),
        None => format!(
            "{:?}|{}|{}|{}|{}|{:?}",
            r.source,
            r.device,
            r.call_key().unwrap_or_default(),
            r.at,
            r.caller.key(),
            r.outcome
        ),
    }
}

fn window(a: &CallRecord, b: &CallRecord) -> Millis {
    if a.time_kind == TimeKind::Start && b.time_kind == TimeKind::Start { START_WINDOW_MS } else { LOGGED_WINDOW_MS }
}

/// How strongly two reports are the same call (0: not at all).
pub fn link(a: &CallRecord, b: &CallRecord) -> u8 {
    link_parts(
        (a, a.call_key().as_ref(), a.original_target().as_ref()),
        (b, b.call_key().as_ref(), b.original_target().as_ref()),
    )
}

fn link_slots(a: &Slot, b: &Slot) -> u8 {
    link_parts((&a.record, a.call_key.as_ref(), a.target.as_ref()), (&b.record, b.call_key.as_ref(), b.target.as_ref()))
}

/// [`link`] over a record with its Call-ID key and original target precomputed.
fn link_parts(
    (a, a_key, a_target): (&CallRecord, Option<&String>, Option<&Party>),
    (b, b_key, b_target): (&CallRecord, Option<&String>, Option<&Party>),
) -> u8 {
    if let (Some(x), Some(y)) = (a_key, b_key)
        && x == y
    {
        return 3;
    }
    if (a.at - b.at).abs() > window(a, b) {
        return 0;
    }
    if !a.caller.same_as(&b.caller) {
        return 0;
    }
    if a.caller.is_anonymous() {
        // withheld callers: only a shared History-Info root ties two legs
        return match (a.history.root(), b.history.root()) {
            (Some(x), Some(y)) if x.target == y.target => 2,
            _ => 0,
        };
    }
    match (a_target, b_target) {
        (Some(x), Some(y)) if x != y => 0,
        (Some(_), Some(_)) => 2,
        _ => 1,
    }
}

/// Whether two reports must never share a call.
fn conflict(a: &Slot, b: &Slot) -> bool {
    let same_device_other_call =
        a.record.device == b.record.device && (a.call_key.is_none() || a.call_key != b.call_key);
    let other_target = matches!((&a.target, &b.target), (Some(x), Some(y)) if x != y);
    same_device_other_call || other_target
}

fn combine(records: &[&Slot]) -> CallOutcome {
    if records.iter().any(|s| s.record.outcome == Outcome::Voicemail) {
        return CallOutcome::Voicemail;
    }
    if let Some(s) =
        records.iter().find(|s| matches!(s.record.outcome, Outcome::AnsweredHere | Outcome::AnsweredElsewhere))
    {
        let by = records.iter().find(|s| s.record.outcome == Outcome::AnsweredHere).map(|s| s.record.device.clone());
        let _ = s;
        return CallOutcome::Answered { by };
    }
    if records.iter().any(|s| s.class == Classification::Primary) {
        return CallOutcome::Missed;
    }
    match records.iter().find_map(|s| match &s.class {
        Classification::Secondary(r) => Some(r.clone()),
        _ => None,
    }) {
        Some(r) => CallOutcome::Secondary(r),
        None => CallOutcome::Missed,
    }
}

impl CallBook {
    /// An empty book for `user`.
    pub fn new(user: UserIdentity) -> Self {
        CallBook {
            user,
            slots: Vec::new(),
            free: Vec::new(),
            by_report: HashMap::new(),
            by_call_id: HashMap::new(),
            by_time: HashMap::new(),
            calls: HashMap::new(),
            next_call: 0,
        }
    }

    fn slot(&self, id: RecordId) -> &Slot {
        match self.slots.get(id.0 as usize) {
            Some(Some(s)) => s,
            _ => unreachable!("RecordId {id:?} refers to a live record"),
        }
    }

    /// Records linked to record `id`.
    fn neighbours(&self, id: RecordId) -> Vec<RecordId> {
        let me = self.slot(id);
        let mut out = Vec::new();
        if let Some(key) = &me.call_key {
            out.extend(self.by_call_id.get(key).into_iter().flatten().copied());
        }
        let slot = me.record.at.div_euclid(LOGGED_WINDOW_MS);
        let mut probe = (me.caller_key.clone(), slot);
        for s in slot - 1..=slot + 1 {
            probe.1 = s;
            for &other in self.by_time.get(&probe).into_iter().flatten() {
                if link_slots(me, self.slot(other)) > 0 {
                    out.push(other);
                }
            }
        }
        out.sort();
        out.dedup();
        out.retain(|&x| x != id);
        out
    }

    /// Inserts a report; inserting the same report again changes nothing and
    /// returns the same id.
    pub fn insert(&mut self, record: CallRecord) -> RecordId {
        let key = report_key(&record);
        if let Some(&id) = self.by_report.get(&key) {
            return id;
        }
        let class = classify(&record, &self.user);
        let id = match self.free.pop() {
            Some(i) => RecordId(i),
            None => {
                self.slots.push(None);
                RecordId((self.slots.len() - 1) as u32)
            }
        };
        let call_key = record.call_key();
        let caller_key = record.caller.key();
        if let Some(k) = &call_key {
            self.by_call_id.entry(k.clone()).or_default().push(id);
        }
        self.by_time.entry((caller_key.clone(), record.at.div_euclid(LOGGED_WINDOW_MS))).or_default().push(id);
        self.by_report.insert(key.clone(), id);
        let target = record.original_target();
        self.slots[id.0 as usize] = Some(Slot { record, key, call: NO_CALL, class, caller_key, call_key, target });
        // Fast path: every record linked to this one is in one closed call
        // whose reports all share this Call-ID; joining it changes nothing else.
        let neighbours = self.neighbours(id);
        if let Some(call) = self.joinable_call(id, &neighbours) {
            if let Some(Some(s)) = self.slots.get_mut(id.0 as usize) {
                s.call = call;
            }
            if let Some(info) = self.calls.get_mut(&call) {
                info.members.push(id);
            }
            return id;
        }
        self.recluster(vec![id]);
        id
    }

    fn joinable_call(&self, id: RecordId, neighbours: &[RecordId]) -> Option<u64> {
        let me = self.slot(id);
        let key = me.call_key.as_ref()?;
        let call = self.slot(*neighbours.first()?).call;
        let info = self.calls.get(&call)?;
        let fits = info.closed
            && info.uniform_key.as_ref() == Some(key)
            && neighbours.iter().all(|&n| self.slot(n).call == call)
            && info.members.iter().all(|&m| !conflict(me, self.slot(m)));
        fits.then_some(call)
    }

    /// Removes a report; `None` when the id is not in the book.
    pub fn remove(&mut self, id: RecordId) -> Option<CallRecord> {
        self.slots.get(id.0 as usize)?.as_ref()?;
        let neighbours = self.neighbours(id);
        let slot = self.slots[id.0 as usize].take()?;
        self.free.push(id.0);
        if let Some(k) = &slot.call_key
            && let Some(v) = self.by_call_id.get_mut(k)
        {
            v.retain(|&x| x != id);
            if v.is_empty() {
                self.by_call_id.remove(k);
            }
        }
        let time_key = (slot.caller_key.clone(), slot.record.at.div_euclid(LOGGED_WINDOW_MS));
        if let Some(v) = self.by_time.get_mut(&time_key) {
            v.retain(|&x| x != id);
            if v.is_empty() {
                self.by_time.remove(&time_key);
            }
        }
        self.by_report.remove(&slot.key);
        let call = slot.call;
        // A closed call of one Call-ID stays closed and uniform without this record.
        let simple = self.calls.get(&call).is_some_and(|info| info.closed && info.uniform_key.is_some())
            && neighbours.iter().all(|&n| self.slot(n).call == call);
        let members = match self.calls.get_mut(&call) {
            Some(info) => {
                info.members.retain(|&x| x != id);
                info.members.clone()
            }
            None => Vec::new(),
        };
        if members.is_empty() {
            self.calls.remove(&call);
        }
        if !simple {
            let mut seeds = neighbours;
            seeds.extend(members);
            self.recluster(seeds);
        }
        Some(slot.record)
    }

    /// Re-clusters the connected component(s) around `seeds`.
    fn recluster(&mut self, seeds: Vec<RecordId>) {
        let mut component: Vec<RecordId> = Vec::new();
        let mut seen: HashSet<RecordId> = HashSet::new();
        let mut stack = seeds;
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            component.push(id);
            // the records of its current call belong to the component too
            let call = self.slot(id).call;
            if let Some(info) = self.calls.get(&call) {
                stack.extend(info.members.iter().copied().filter(|m| !seen.contains(m)));
            }
            stack.extend(self.neighbours(id).into_iter().filter(|m| !seen.contains(m)));
        }
        for &id in &component {
            let call = self.slot(id).call;
            self.calls.remove(&call);
        }
        component.sort_by(|&a, &b| {
            let (x, y) = (&self.slot(a).record, &self.slot(b).record);
            (x.at, &x.device, &x.source, x.call_key(), &self.slot(a).key).cmp(&(
                y.at,
                &y.device,
                &y.source,
                y.call_key(),
                &self.slot(b).key,
            ))
        });
        let mut clusters: Vec<Vec<RecordId>> = Vec::new();
        for &id in &component {
            let me = self.slot(id);
            let r = &me.record;
            let mut best: Option<(u8, std::cmp::Reverse<Millis>, std::cmp::Reverse<usize>, usize)> = None;
            for (ci, cluster) in clusters.iter().enumerate() {
                if cluster.iter().any(|&m| conflict(me, self.slot(m))) {
                    continue;
                }
                let strength = cluster.iter().map(|&m| link_slots(me, self.slot(m))).max().unwrap_or(0);
                if strength == 0 {
                    continue;
                }
                let dt = cluster.iter().map(|&m| (r.at - self.slot(m).record.at).abs()).min().unwrap_or(Millis::MAX);
                let score = (strength, std::cmp::Reverse(dt), std::cmp::Reverse(ci), ci);
                if best.as_ref().is_none_or(|b| score > *b) {
                    best = Some(score);
                }
            }
            match best {
                Some((_, _, _, ci)) => clusters[ci].push(id),
                None => clusters.push(vec![id]),
            }
        }
        let mut made = Vec::with_capacity(clusters.len());
        for cluster in clusters {
            let call = self.next_call;
            self.next_call += 1;
            for &id in &cluster {
                if let Some(Some(s)) = self.slots.get_mut(id.0 as usize) {
                    s.call = call;
                }
            }
            let first = cluster.first().and_then(|&m| self.slot(m).call_key.clone());
            let uniform_key = first.filter(|k| cluster.iter().all(|&m| self.slot(m).call_key.as_ref() == Some(k)));
            self.calls.insert(call, CallInfo { members: cluster, uniform_key, closed: false });
            made.push(call);
        }
        for call in made {
            let closed = self.calls.get(&call).is_some_and(|info| {
                info.members.iter().all(|&m| self.neighbours(m).iter().all(|&n| self.slot(n).call == call))
            });
            if let Some(info) = self.calls.get_mut(&call) {
                info.closed = closed;
            }
        }
    }

    fn view(&self, members: &[RecordId]) -> Call {
        let mut slots: Vec<(RecordId, &Slot)> = members.iter().map(|&m| (m, self.slot(m))).collect();
        slots.sort_by(|a, b| (a.1.record.at, &a.1.key).cmp(&(b.1.record.at, &b.1.key)));
        let only: Vec<&Slot> = slots.iter().map(|(_, s)| *s).collect();
        let caller =
            only.iter().map(|s| &s.record.caller).find(|c| !c.is_anonymous()).cloned().unwrap_or(Party::Anonymous);
        Call {
            caller,
            caller_name: only.iter().find_map(|s| s.record.caller_name.clone()),
            at: only.iter().map(|s| s.record.at).min().unwrap_or(0),
            outcome: combine(&only),
            reports: slots
                .iter()
                .map(|(id, s)| Report {
                    id: *id,
                    source: s.record.source.clone(),
                    device: s.record.device.clone(),
                    outcome: s.record.outcome,
                })
                .collect(),
        }
    }

    /// Every call, newest first.
    pub fn calls(&self) -> Vec<Call> {
        let mut v: Vec<Call> = self.calls.values().map(|info| self.view(&info.members)).collect();
        v.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.caller.cmp(&b.caller)));
        v
    }

    /// The user's real missed calls, newest first.
    pub fn missed_calls(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| c.outcome == CallOutcome::Missed).collect()
    }

    /// Calls that reached the user on someone else's behalf, newest first.
    pub fn secondary_calls(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| matches!(c.outcome, CallOutcome::Secondary(_))).collect()
    }

    /// Missed calls grouped by caller, most recent caller first.
    pub fn missed_by_caller(&self) -> Vec<CallerAttempts> {
        let mut groups: Vec<CallerAttempts> = Vec::new();
        for call in self.missed_calls() {
            match groups.iter_mut().find(|g| g.caller.same_as(&call.caller) && !call.caller.is_anonymous()) {
                Some(g) => g.attempts += 1,
                None => groups.push(CallerAttempts { caller: call.caller.clone(), attempts: 1, latest: call.at }),
            }
        }
        groups
    }

    /// The call a report belongs to.
    pub fn call_of(&self, id: RecordId) -> Option<Call> {
        let slot = self.slots.get(id.0 as usize)?.as_ref()?;
        self.calls.get(&slot.call).map(|info| self.view(&info.members))
    }

    /// How many records the book holds.
    pub fn len(&self) -> usize {
        self.by_report.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.by_report.is_empty()
    }

    /// How many calls there are.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }
}
