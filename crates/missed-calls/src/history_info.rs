//! The History-Info header (RFC 7044, obsoleting RFC 4244) with Microsoft's
//! extensions: how a call travelled from its original target to this device.
//!
//! ```text
//! History-Info = "History-Info" HCOLON hi-entry *(COMMA hi-entry)
//! hi-entry     = hi-targeted-to-uri *(SEMI hi-param)
//! hi-param     = hi-index / rc-param / mp-param / np-param / hi-extension
//! hi-index     = "index" EQUAL 1*DIGIT *(DOT 1*DIGIT)        ; 1, 1.1, 1.2.1
//! ```
//! `index=1` is the original Request-URI; `1.1`, `1.2` are its branches.
//! `rc` (same user, new contact), `mp` (mapped to another user) and `np`
//! (not changed) carry the parent's index. Why a target failed rides in the
//! URI's headers: `<sip:bob@x?Reason=SIP%3Bcause%3D302>`. Lync adds
//! `ms-retarget-reason` (`team-call`, `delegation`, `forwarding`, `acd`) and
//! `ms-target-phone`.
//!
//! The parser accepts every form seen in practice: several header lines or
//! one comma-separated list, entries folded over lines, any case and spacing,
//! percent-escaped `?Reason=` headers and Lync's unescaped
//! `?Reason=SIP&cause=302&text=Accepted`, and a closing quote missing at the
//! very end of the header. Unknown parameters are kept. Anything else
//! malformed is an error, never a panic.

use crate::ParseError;
use crate::party::Party;
use crate::reason::Reason;
use crate::text::{Param, parse_name_addr, parse_params, percent_decode, split_list, unfold};
use std::fmt;

/// A position in the History-Info tree, e.g. `1.1.2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Index(pub Vec<u32>);

impl Index {
    /// Parses `1.1.2`.
    pub fn parse(s: &str) -> Result<Index, ParseError> {
        let parts: Result<Vec<u32>, _> = s.trim().split('.').map(|p| p.parse::<u32>()).collect();
        match parts {
            Ok(v) if !v.is_empty() => Ok(Index(v)),
            _ => Err(ParseError::Syntax { what: "History-Info index", detail: format!("{s:?}") }),
        }
    }

    /// Whether `self` is an ancestor of (or equal to) `other`.
    pub fn is_prefix_of(&self, other: &Index) -> bool {
        other.0.starts_with(&self.0)
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u32::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

/// Lync's `ms-retarget-reason`: why the call was retargeted from this entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RetargetReason {
    /// Team call group (parallel or delayed ring to a team).
    TeamCall,
    /// A delegate rings for the boss.
    Delegation,
    /// Call forwarding.
    Forwarding,
    /// Response group / automatic call distribution.
    Acd,
    /// Any other value, kept.
    Other(String),
}

impl RetargetReason {
    fn parse(s: &str) -> RetargetReason {
        match s.trim().to_ascii_lowercase().as_str() {
            "team-call" => RetargetReason::TeamCall,
            "delegation" => RetargetReason::Delegation,
            "forwarding" => RetargetReason::Forwarding,
            "acd" => RetargetReason::Acd,
            other => RetargetReason::Other(other.to_string()),
        }
    }
}

/// How an entry's target relates to its parent (RFC 7044 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// `rc`: same user, the Request-URI changed to a contact.
    Contact(Index),
    /// `mp`: mapped to a different user (forwarded, retargeted).
    Mapped(Index),
    /// `np`: Request-URI not changed.
    NotChanged(Index),
}

/// One hi-entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HiEntry {
    /// The display name, if any.
    pub display: Option<String>,
    /// The targeted-to URI as written, without its `?headers`.
    pub uri: String,
    /// The target, normalised.
    pub target: Party,
    /// Headers escaped in the URI (`?Reason=…&Privacy=…`), decoded.
    pub uri_headers: Vec<(String, String)>,
    /// The Reason carried in the URI headers: why this target was left.
    pub reason: Option<Reason>,
    /// `index`, when present (RFC 7044 requires it; RFC 4244 senders may omit it).
    pub index: Option<Index>,
    /// `rc` / `mp` / `np`.
    pub relation: Option<Relation>,
    /// `ms-retarget-reason`.
    pub retarget_reason: Option<RetargetReason>,
    /// `ms-target-phone`, normalised.
    pub target_phone: Option<Party>,
    /// RFC 4458 `cause=` URI parameter: why the call was retargeted to this
    /// entry (302 unconditional, 486 busy, 408 no answer, 480 unavailable).
    pub cause: Option<u16>,
    /// Every other parameter, kept.
    pub other_params: Vec<Param>,
}

/// A parsed History-Info: its entries in tree (pre-)order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryInfo {
    /// Entries sorted by index (entries without index keep their position, after indexed ones).
    pub entries: Vec<HiEntry>,
}

impl HistoryInfo {
    /// Parses all History-Info header values of one message (each value may
    /// hold several entries; values may be folded).
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<HistoryInfo, ParseError> {
        let mut entries = Vec::new();
        for v in values {
            let v = unfold(v.as_ref()).replace('\n', " ");
            for item in split_list(&v)? {
                entries.push(parse_entry(item)?);
            }
        }
        // pre-order: by index; stable for entries without one
        entries.sort_by(|a, b| match (&a.index, &b.index) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        Ok(HistoryInfo { entries })
    }

    /// The original target: the entry with index `1` (or the first one).
    pub fn root(&self) -> Option<&HiEntry> {
        self.entries.iter().find(|e| e.index.as_ref().is_some_and(|i| i.0 == [1])).or_else(|| self.entries.first())
    }

    /// The entries on the path from the root to `entry` (both included),
    /// by index ancestry; without indices, the entries up to it.
    pub fn path_to<'a>(&'a self, entry: &'a HiEntry) -> Vec<&'a HiEntry> {
        match &entry.index {
            Some(idx) => {
                self.entries.iter().filter(|e| e.index.as_ref().is_some_and(|i| i.is_prefix_of(idx))).collect()
            }
            None => {
                let pos = self.entries.iter().position(|e| std::ptr::eq(e, entry)).unwrap_or(0);
                self.entries[..=pos].iter().collect()
            }
        }
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_entry(item: &str) -> Result<HiEntry, ParseError> {
    let na = parse_name_addr(item, true)?;
    let (uri, headers) = match na.uri.split_once('?') {
        Some((u, h)) => (u.trim(), Some(h)),
        None => (na.uri, None),
    };
    let target = Party::parse(uri)?;
    let mut uri_headers: Vec<(String, String)> = Vec::new();
    if let Some(h) = headers {
        for pair in h.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            uri_headers.push((percent_decode(k).trim().to_string(), percent_decode(v)));
        }
    }
    let reason = reason_from_headers(&uri_headers)?;
    let cause = uri_param(uri, "cause").map(|c| {
        c.parse::<u16>()
            .map_err(|_| ParseError::Syntax { what: "History-Info", detail: format!("cause={c:?} is not a number") })
    });
    let cause = cause.transpose()?;
    let mut entry = HiEntry {
        display: na.display,
        uri: uri.to_string(),
        target,
        uri_headers,
        reason,
        index: None,
        relation: None,
        retarget_reason: None,
        target_phone: None,
        cause,
        other_params: Vec::new(),
    };
    for p in parse_params(na.params)? {
        let value = || p.value.clone().unwrap_or_default();
        match p.name.as_str() {
            "index" => entry.index = Some(Index::parse(&value())?),
            "rc" => entry.relation = Some(Relation::Contact(Index::parse(&value())?)),
            "mp" => entry.relation = Some(Relation::Mapped(Index::parse(&value())?)),
            "np" => entry.relation = Some(Relation::NotChanged(Index::parse(&value())?)),
            "ms-retarget-reason" => entry.retarget_reason = Some(RetargetReason::parse(&value())),
            "ms-target-phone" => entry.target_phone = Some(Party::parse(&value())?),
            _ => entry.other_params.push(p),
        }
    }
    Ok(entry)
}

/// A `;name=value` parameter of a URI (not of the header entry).
fn uri_param(uri: &str, name: &str) -> Option<String> {
    let params = &uri[uri.find(';')?..];
    parse_params(params).ok()?.into_iter().find(|p| p.name == name).and_then(|p| p.value)
}

/// The Reason among URI headers. Lync writes it unescaped
/// (`?Reason=SIP&cause=302&text=Accepted`), which splits it into three
/// "headers": `cause` and `text` right after `Reason` are folded back in.
fn reason_from_headers(headers: &[(String, String)]) -> Result<Option<Reason>, ParseError> {
    let Some(pos) = headers.iter().position(|(k, _)| k.eq_ignore_ascii_case("reason")) else { return Ok(None) };
    let mut text = headers[pos].1.clone();
    for (k, v) in &headers[pos + 1..] {
        match k.to_ascii_lowercase().as_str() {
            "cause" => text.push_str(&format!(";cause={v}")),
            "text" => text.push_str(&format!(";text=\"{}\"", v.trim_matches('"'))),
            _ => break,
        }
    }
    Ok(Reason::parse_list(&text)?.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7044_style_entries() {
        let hi = HistoryInfo::parse(&[
            "<sip:bob@example.com>;index=1, <sip:bob@192.0.2.4?Reason=SIP%3Bcause%3D480>;index=1.1;rc=1",
            "<sip:carol@example.com>;index=1.2;mp=1",
        ])
        .expect("parse");
        assert_eq!(hi.entries.len(), 3);
        assert_eq!(hi.root().map(|e| e.target.clone()), Some(Party::Aor("bob@example.com".into())));
        assert_eq!(hi.entries[1].relation, Some(Relation::Contact(Index(vec![1]))));
        assert_eq!(hi.entries[1].reason.as_ref().and_then(|r| r.cause), Some(480));
        assert_eq!(hi.entries[2].relation, Some(Relation::Mapped(Index(vec![1]))));
        assert_eq!(hi.path_to(&hi.entries[2]).len(), 2);
    }

    #[test]
    fn entries_are_sorted_into_tree_order() {
        let hi =
            HistoryInfo::parse(&["<sip:c@x>;index=1.2, <sip:a@x>;index=1, <sip:b@x>;index=1.1.1, <sip:d@x>;index=1.1"])
                .expect("parse");
        let order: Vec<String> =
            hi.entries.iter().map(|e| e.index.as_ref().map(|i| i.to_string()).unwrap_or_default()).collect();
        assert_eq!(order, ["1", "1.1", "1.1.1", "1.2"]);
    }

    #[test]
    fn unknown_params_are_kept_and_values_case_folded() {
        let hi = HistoryInfo::parse(&["<sip:a@x>;INDEX=1;MS-Retarget-Reason=Team-Call;foo=bar;flag"]).expect("parse");
        let e = &hi.entries[0];
        assert_eq!(e.retarget_reason, Some(RetargetReason::TeamCall));
        assert_eq!(e.other_params.len(), 2);
        let hi = HistoryInfo::parse(&["<sip:a@x>;index=1;ms-retarget-reason=night-service"]).expect("parse");
        assert_eq!(hi.entries[0].retarget_reason, Some(RetargetReason::Other("night-service".into())));
    }

    #[test]
    fn structure_errors() {
        for bad in [
            "sip:a@x;index=1",
            "<sip:a@x;index=1",
            "<sip:a@x>;index=1..2",
            "<sip:a@x>;index=",
            "<>;index=1",
            "<sip:a@x>;mp=x",
        ] {
            assert!(HistoryInfo::parse(&[bad]).is_err(), "{bad:?}");
        }
    }
}
