//! A page of `messages/delta`: changed messages, removed ones (`@removed`),
//! and where to go on — `@odata.nextLink` while the round has more pages,
//! `@odata.deltaLink` on its last. A page with both or neither is not a page.

use crate::message::Message;
use crate::{WireError, check_size};
use serde::Deserialize;

/// One entry of a delta page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaEntry {
    /// New, or changed (a read flag, a move into the folder).
    Changed(Box<Message>),
    /// Gone from the folder: deleted, or moved out.
    Removed {
        id: String,
        /// `deleted` as Graph writes it for messages.
        reason: Option<String>,
    },
}

/// Where the round goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Continue {
    /// `@odata.nextLink`: fetch it now, the round is not over.
    Next(String),
    /// `@odata.deltaLink`: the round is over; keep it for the next one.
    Delta(String),
}

/// A parsed delta page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaPage {
    pub entries: Vec<DeltaEntry>,
    pub then: Continue,
}

#[derive(Deserialize)]
struct RawPage {
    #[serde(default)]
    value: Vec<Message>,
    #[serde(rename = "@odata.nextLink", default)]
    next: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    delta: Option<String>,
}

/// Reads a delta page.
pub fn parse_delta(body: &[u8]) -> Result<DeltaPage, WireError> {
    check_size(body)?;
    let raw: RawPage = serde_json::from_slice(body).map_err(|e| WireError::Json(e.to_string()))?;
    let then = match (raw.next, raw.delta) {
        (Some(n), None) => Continue::Next(n),
        (None, Some(d)) => Continue::Delta(d),
        (Some(_), Some(_)) => {
            return Err(WireError::Malformed("a delta page with both a nextLink and a deltaLink".into()));
        }
        (None, None) => {
            return Err(WireError::Malformed("a delta page with neither a nextLink nor a deltaLink".into()));
        }
    };
    let entries = raw
        .value
        .into_iter()
        .map(|m| match m.removed {
            Some(r) => DeltaEntry::Removed { id: m.id, reason: r.reason },
            None => DeltaEntry::Changed(Box::new(m)),
        })
        .collect();
    Ok(DeltaPage { entries, then })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_needs_exactly_one_link() {
        assert!(parse_delta(br#"{"value":[]}"#).is_err());
        assert!(parse_delta(br#"{"value":[],"@odata.nextLink":"a","@odata.deltaLink":"b"}"#).is_err());
        let p = parse_delta(br#"{"value":[{"id":"x","@removed":{"reason":"deleted"}}],"@odata.deltaLink":"d"}"#)
            .expect("page");
        assert_eq!(p.then, Continue::Delta("d".into()));
        assert_eq!(p.entries, [DeltaEntry::Removed { id: "x".into(), reason: Some("deleted".into()) }]);
    }
}
