//! The Reason header (RFC 3326 §2): why a request was cancelled or a target
//! failed. `Reason: SIP;cause=200;text="Call completed elsewhere"` on a
//! CANCEL means another device answered.
//!
//! ```text
//! Reason       = "Reason" HCOLON reason-value *(COMMA reason-value)
//! reason-value = protocol *(SEMI reason-params)
//! protocol     = "SIP" / "Q.850" / token
//! reason-params = protocol-cause / reason-text / reason-extension
//! ```

use crate::ParseError;
use crate::text::{is_token_char, parse_params, split_list};

/// One reason-value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// `SIP`, `Q.850`, … (upper-cased).
    pub protocol: String,
    /// The cause code, when given.
    pub cause: Option<u16>,
    /// The text, when given.
    pub text: Option<String>,
}

impl Reason {
    /// Whether this says the call was answered on another branch
    /// (`SIP;cause=200`).
    pub fn completed_elsewhere(&self) -> bool {
        self.protocol == "SIP" && self.cause == Some(200)
    }

    /// Parses one header value, which may hold several comma-separated reasons.
    pub fn parse_list(value: &str) -> Result<Vec<Reason>, ParseError> {
        let items = split_list(value)?;
        if items.is_empty() {
            return Err(ParseError::Syntax { what: "Reason", detail: "empty".into() });
        }
        items.into_iter().map(Reason::parse_one).collect()
    }

    /// Parses one reason-value.
    pub fn parse_one(value: &str) -> Result<Reason, ParseError> {
        let value = value.trim();
        let (protocol, params) = match value.find(';') {
            Some(i) => (value[..i].trim(), &value[i..]),
            None => (value, ""),
        };
        if protocol.is_empty() || !protocol.chars().all(is_token_char) {
            return Err(ParseError::Syntax { what: "Reason", detail: format!("bad protocol {protocol:?}") });
        }
        let mut reason = Reason { protocol: protocol.to_ascii_uppercase(), cause: None, text: None };
        for p in parse_params(params)? {
            match p.name.as_str() {
                "cause" => {
                    let v = p.value.unwrap_or_default();
                    reason.cause = Some(v.trim().parse().map_err(|_| ParseError::Syntax {
                        what: "Reason",
                        detail: format!("cause {v:?} is not a number"),
                    })?);
                }
                "text" => reason.text = p.value,
                _ => {}
            }
        }
        Ok(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_completed_elsewhere() {
        let r = Reason::parse_list(r#"SIP;cause=200;text="Call completed elsewhere""#).expect("reason");
        assert_eq!(r.len(), 1);
        assert!(r[0].completed_elsewhere());
        assert_eq!(r[0].text.as_deref(), Some("Call completed elsewhere"));
    }

    #[test]
    fn several_protocols_and_case() {
        let r = Reason::parse_list(r#"sip ; CAUSE = 600 ; text="Busy Everywhere", Q.850;cause=16"#).expect("reason");
        assert_eq!(r[0].protocol, "SIP");
        assert_eq!(r[0].cause, Some(600));
        assert!(!r[0].completed_elsewhere());
        assert_eq!((r[1].protocol.as_str(), r[1].cause), ("Q.850", Some(16)));
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in ["", ";cause=200", "SIP;cause=abc", "S I P;cause=1", "SIP;=3"] {
            assert!(Reason::parse_list(bad).is_err(), "{bad:?}");
        }
    }
}
