//! What one report means for one user.
//!
//! | rule | result |
//! |---|---|
//! | the report is a voicemail | [`Classification::Voicemail`] |
//! | this device answered, or ringing was cancelled with `Reason: SIP;cause=200` | [`Classification::AnsweredElsewhere`] |
//! | no History-Info and no Diversion | [`Classification::Primary`] (the user was called directly) |
//! | the original target (History-Info `index=1`, else the first diverter) is the user | [`Classification::Primary`] (also when it went on to the user's own phone or mobile) |
//! | otherwise | [`Classification::Secondary`] with the reason: the `ms-retarget-reason` on the user's entry or its closest ancestor (`team-call`, `delegation`, `acd`, `forwarding`); without one, `mp` or a Diversion means forwarded |

use crate::history_info::{HiEntry, HistoryInfo, Relation, RetargetReason};
use crate::party::{Party, UserIdentity};
use crate::record::{CallRecord, Outcome};

/// Why a call reached the user although it was not theirs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecondaryReason {
    /// As a member of `owner`'s team call group.
    TeamCall {
        /// Whose call it was.
        owner: Party,
    },
    /// As `owner`'s delegate.
    Delegation {
        /// Whose call it was.
        owner: Party,
    },
    /// As an agent of the response group `group`.
    ResponseGroup {
        /// The group that was called.
        group: Party,
    },
    /// Forwarded to the user by `from`.
    Forwarded {
        /// Who forwarded it.
        from: Party,
        /// The SIP cause of the forward, when known (302 unconditional, 486 busy, 408 no answer).
        cause: Option<u16>,
    },
    /// Retargeted for another `ms-retarget-reason`, kept as written.
    Other {
        /// The original target.
        from: Party,
        /// The reason as written.
        reason: String,
    },
}

/// What a report means for the user.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Classification {
    /// The user was the original target.
    Primary,
    /// The call reached the user only on someone else's behalf.
    Secondary(SecondaryReason),
    /// Some device (or a delegate) answered.
    AnsweredElsewhere,
    /// The caller left a message.
    Voicemail,
}

/// Classifies one report for `user`.
pub fn classify(record: &CallRecord, user: &UserIdentity) -> Classification {
    match record.outcome {
        Outcome::Voicemail => return Classification::Voicemail,
        Outcome::AnsweredHere | Outcome::AnsweredElsewhere => return Classification::AnsweredElsewhere,
        Outcome::Missed => {}
    }
    let hi = &record.history;
    if hi.is_empty() {
        return match record.diversion.last() {
            None => Classification::Primary,
            Some(first) if user.is(&first.from) => Classification::Primary,
            Some(first) => Classification::Secondary(SecondaryReason::Forwarded {
                from: first.from.clone(),
                cause: first.reason.as_deref().and_then(diversion_cause),
            }),
        };
    }
    let Some(root) = hi.root() else { return Classification::Primary };
    if is_user(root, user) {
        return Classification::Primary;
    }
    // the user's entry: the first in tree order that is the user; without one,
    // the deepest entry (the device was reached at the end of the chain)
    let mine = hi.entries.iter().find(|e| is_user(e, user)).or_else(|| hi.entries.last()).unwrap_or(root);
    let path = hi.path_to(mine);
    let carrier = path.iter().rev().find(|e| e.retarget_reason.is_some());
    let owner = root.target.clone();
    let reason = match carrier.and_then(|e| e.retarget_reason.clone()) {
        Some(RetargetReason::TeamCall) => SecondaryReason::TeamCall { owner },
        Some(RetargetReason::Delegation) => SecondaryReason::Delegation { owner },
        Some(RetargetReason::Acd) => SecondaryReason::ResponseGroup { group: owner },
        Some(RetargetReason::Forwarding) => {
            let from = carrier.map(|e| e.target.clone()).unwrap_or(owner);
            SecondaryReason::Forwarded { cause: forward_cause(hi, &path, &from), from }
        }
        Some(RetargetReason::Other(r)) => SecondaryReason::Other { from: owner, reason: r },
        None => {
            // RFC 7044 without Lync parameters: mapped to the user from the parent.
            let from = match &mine.relation {
                Some(Relation::Mapped(parent)) => hi
                    .entries
                    .iter()
                    .find(|e| e.index.as_ref() == Some(parent))
                    .map(|e| e.target.clone())
                    .unwrap_or(owner),
                _ => owner,
            };
            SecondaryReason::Forwarded { cause: forward_cause(hi, &path, &from), from }
        }
    };
    Classification::Secondary(reason)
}

fn is_user(entry: &HiEntry, user: &UserIdentity) -> bool {
    user.is(&entry.target) || entry.target_phone.as_ref().is_some_and(|p| user.is(p))
}

/// Why the call left `from`: the RFC 4458 `cause=` on the entry it was
/// retargeted to (on the path), else the Reason on `from`'s own entry, else
/// the Reason on the last of `from`'s contact branches (`rc` children),
/// where a busy or unanswered device of theirs says why.
fn forward_cause(hi: &HistoryInfo, path: &[&HiEntry], from: &Party) -> Option<u16> {
    if let Some(c) = path.iter().find_map(|e| e.cause) {
        return Some(c);
    }
    let from_entry = path.iter().rev().find(|e| &e.target == from)?;
    if let Some(c) = from_entry.reason.as_ref().and_then(|r| r.cause) {
        return Some(c);
    }
    let index = from_entry.index.as_ref()?;
    hi.entries
        .iter()
        .filter(|e| matches!(&e.relation, Some(Relation::Contact(parent)) if parent == index))
        .filter_map(|e| e.reason.as_ref().and_then(|r| r.cause))
        .next_back()
}

fn diversion_cause(reason: &str) -> Option<u16> {
    match reason {
        "unconditional" => Some(302),
        "user-busy" => Some(486),
        "no-answer" => Some(408),
        "unavailable" => Some(480),
        "deflection" => Some(487),
        _ => None,
    }
}
