//! The Diversion header (RFC 5806, historic but still sent by many PBXs and
//! carriers where History-Info is absent). Each entry names a party that
//! diverted the call, most recent first, with why (`reason=no-answer`).
//!
//! ```text
//! Diversion = "Diversion" HCOLON diversion-params *(COMMA diversion-params)
//! diversion-params = name-addr *(SEMI (diversion-reason / diversion-counter / …))
//! ```

use crate::ParseError;
use crate::party::Party;
use crate::text::{parse_name_addr, parse_params, split_list, unfold};

/// One Diversion entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiversionEntry {
    /// The party that diverted the call.
    pub from: Party,
    /// `reason` (`unconditional`, `user-busy`, `no-answer`, `deflection`, …).
    pub reason: Option<String>,
    /// `counter`: how many times it was diverted here.
    pub counter: Option<u32>,
}

/// Parses all Diversion header values of a message, most recent first.
pub fn parse_diversion<S: AsRef<str>>(values: &[S]) -> Result<Vec<DiversionEntry>, ParseError> {
    let mut out = Vec::new();
    for v in values {
        let v = unfold(v.as_ref()).replace('\n', " ");
        for item in split_list(&v)? {
            let na = parse_name_addr(item, false)?;
            let mut entry = DiversionEntry { from: Party::parse(na.uri)?, reason: None, counter: None };
            for p in parse_params(na.params)? {
                match p.name.as_str() {
                    "reason" => entry.reason = p.value.map(|r| r.to_ascii_lowercase()),
                    "counter" => {
                        let c = p.value.unwrap_or_default();
                        entry.counter = Some(c.parse().map_err(|_| ParseError::Syntax {
                            what: "Diversion",
                            detail: format!("counter {c:?} is not a number"),
                        })?)
                    }
                    _ => {}
                }
            }
            out.push(entry);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_most_recent_first() {
        let d = parse_diversion(&["<sip:+15551000@pbx;user=phone>;reason=no-answer;counter=1;privacy=off, <tel:+15552000>;reason=unconditional"]).expect("parse");
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].from, Party::Number { number: "+15551000".into(), ext: None });
        assert_eq!(d[0].reason.as_deref(), Some("no-answer"));
        assert_eq!(d[0].counter, Some(1));
        assert!(parse_diversion(&["<sip:a@x>;counter=many"]).is_err());
    }
}
