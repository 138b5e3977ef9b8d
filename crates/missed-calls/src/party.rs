//! Who is calling and who is called, normalised so that the many spellings
//! of one party compare equal: `sip:+495251304613@example.com;user=phone`,
//! `tel:+49-5251-304613`, `<sip:frank@Example.COM>` and
//! `tel:+495251304613;ext=613`.
//!
//! A [`Party`] is a telephone number (digits, with `+` when global, and an
//! optional extension), a SIP address of record (lower-cased `user@host`),
//! anonymous, or something we keep verbatim. [`UserIdentity`] says which
//! parties are the user.

use crate::ParseError;
use crate::text::{parse_params, percent_decode};
use std::fmt;

/// A normalised caller or callee.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Party {
    /// A telephone number: digits only, `+` first when it is global (E.164).
    Number {
        /// `+495251304613` or `613`.
        number: String,
        /// `;ext=` of a tel URI, when given.
        ext: Option<String>,
    },
    /// A SIP address of record, `user@host`, lower-cased.
    Aor(String),
    /// Withheld caller ID (`anonymous@anonymous.invalid`, `Anonymous`, empty).
    Anonymous,
    /// Something else, kept as written (a URI scheme we do not know).
    Other(String),
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Party::Number { number, ext: Some(ext) } => write!(f, "{number};ext={ext}"),
            Party::Number { number, ext: None } => f.write_str(number),
            Party::Aor(aor) => write!(f, "sip:{aor}"),
            Party::Anonymous => f.write_str("anonymous"),
            Party::Other(s) => f.write_str(s),
        }
    }
}

/// Digits of a phone number with visual separators removed; `None` when it is not one.
fn phone_digits(s: &str) -> Option<String> {
    let s = s.trim();
    let (plus, rest) = match s.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_digit() || "-.() /".contains(c)) {
        return None;
    }
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    Some(if plus { format!("+{digits}") } else { digits })
}

impl Party {
    /// Parses a URI (`sip:`, `sips:`, `tel:`) or a bare number/address.
    pub fn parse(uri: &str) -> Result<Party, ParseError> {
        let uri = uri.trim().trim_start_matches('<').trim_end_matches('>').trim();
        if uri.is_empty() {
            return Ok(Party::Anonymous);
        }
        let lower = uri.to_ascii_lowercase();
        let (scheme, rest) = match lower.split_once(':') {
            Some((s, _)) if ["sip", "sips", "tel"].contains(&s) => (s.to_string(), &uri[s.len() + 1..]),
            _ => ("".into(), uri),
        };
        // strip URI headers
        let rest = rest.split('?').next().unwrap_or("");
        let (main, params) = match rest.find(';') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let params = parse_params(params)?;
        let param = |name: &str| params.iter().find(|p| p.name == name).and_then(|p| p.value.clone());
        let ext = param("ext").and_then(|e| phone_digits(&e));
        if scheme == "tel" {
            let number = phone_digits(&percent_decode(main))
                .ok_or_else(|| ParseError::Syntax { what: "tel URI", detail: format!("{main:?} is not a number") })?;
            return Ok(Party::Number { number, ext });
        }
        let (user, host) = match main.rsplit_once('@') {
            Some((u, h)) => (percent_decode(u), h.to_ascii_lowercase()),
            None if scheme.is_empty() => (percent_decode(main), String::new()),
            None => (String::new(), main.to_ascii_lowercase()),
        };
        // a user part may carry its own ;params (RFC 3261 user-params)
        let (user_main, user_params) = match user.find(';') {
            Some(i) => (user[..i].to_string(), parse_params(&user[i..])?),
            None => (user.clone(), Vec::new()),
        };
        let ext = ext.or_else(|| {
            user_params.iter().find(|p| p.name == "ext").and_then(|p| p.value.as_deref().and_then(phone_digits))
        });
        let user_lower = user_main.to_ascii_lowercase();
        if user_lower == "anonymous" || host == "anonymous.invalid" || (user_lower.is_empty() && host.is_empty()) {
            return Ok(Party::Anonymous);
        }
        if let Some(number) = phone_digits(&user_main) {
            return Ok(Party::Number { number, ext });
        }
        if scheme.is_empty() && host.is_empty() {
            return Ok(Party::Other(uri.to_string()));
        }
        if user_lower.is_empty() {
            return Ok(Party::Aor(host));
        }
        Ok(Party::Aor(format!("{user_lower}@{host}")))
    }

    /// Whether the caller withheld their identity.
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Party::Anonymous)
    }

    /// A stable key for indexing: equal keys mean the same party.
    pub fn key(&self) -> String {
        match self {
            Party::Number { number, ext } => {
                format!("n:{}{}", number, ext.as_ref().map(|e| format!(";{e}")).unwrap_or_default())
            }
            Party::Aor(a) => format!("a:{a}"),
            Party::Anonymous => "anonymous".into(),
            Party::Other(s) => format!("o:{s}"),
        }
    }

    /// Whether two parties are the same caller, tolerating national versus
    /// international spelling of one number.
    pub fn same_as(&self, other: &Party) -> bool {
        match (self, other) {
            (Party::Number { number: a, .. }, Party::Number { number: b, .. }) => numbers_match(a, b),
            (a, b) => a == b,
        }
    }
}

/// Two numbers are one when their digits are equal, or when one is
/// international (`+49 5251 …`) and the other national (`05251 …`) and, with
/// the trunk prefix removed, the national one ends the international one
/// with at least 7 digits.
pub fn numbers_match(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (ga, gb) = (a.starts_with('+'), b.starts_with('+'));
    if ga == gb {
        return false;
    }
    let (global, national) = if ga { (&a[1..], b) } else { (&b[1..], a) };
    let national = national.trim_start_matches('0');
    national.len() >= 7 && global.ends_with(national)
}

/// The user the analysis is for: their SIP addresses and numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserIdentity {
    parties: Vec<Party>,
}

impl UserIdentity {
    /// From SIP URIs or e-mail-like addresses and phone numbers or extensions,
    /// as the user typed them.
    pub fn new<S: AsRef<str>>(addresses: &[S], numbers: &[S]) -> Result<Self, ParseError> {
        let mut parties = Vec::new();
        for a in addresses {
            let a = a.as_ref();
            let a = if a.contains(':') { a.to_string() } else { format!("sip:{a}") };
            parties.push(Party::parse(&a)?);
        }
        for n in numbers {
            let number = phone_digits(n.as_ref()).ok_or_else(|| ParseError::Syntax {
                what: "number",
                detail: format!("{:?} is not a phone number", n.as_ref()),
            })?;
            parties.push(Party::Number { number, ext: None });
        }
        Ok(UserIdentity { parties })
    }

    /// Whether `party` is this user: the same address or the same number
    /// (a bare extension like `613` matches `sip:613@pbx`). An `;ext=` alone
    /// does not: Lync writes the full number beside it, and the same
    /// extension under another number is someone else.
    pub fn is(&self, party: &Party) -> bool {
        self.parties.iter().any(|mine| match (mine, party) {
            (Party::Number { number: m, .. }, Party::Number { number, .. }) => numbers_match(m, number),
            (Party::Aor(m), Party::Aor(a)) => m == a,
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Party {
        Party::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn spellings_of_one_number_agree() {
        let a = p("sip:+495251304613@netatwork.de;user=phone");
        let b = p("tel:+49-5251-304613");
        assert_eq!(a, b);
        assert_eq!(
            p("tel:+495251304613;ext=613"),
            Party::Number { number: "+495251304613".into(), ext: Some("613".into()) }
        );
        assert!(p("sip:05251304613@pbx").same_as(&a));
        assert!(!p("sip:05251304614@pbx").same_as(&a));
    }

    #[test]
    fn addresses_are_case_folded_and_anonymous_recognised() {
        assert_eq!(p("<sip:Frank.Carius@NetAtWork.de>"), Party::Aor("frank.carius@netatwork.de".into()));
        assert_eq!(p("sip:anonymous@anonymous.invalid"), Party::Anonymous);
        assert_eq!(p("sip:Anonymous@pbx.example.com"), Party::Anonymous);
        assert!(Party::parse("tel:abc").is_err());
    }

    #[test]
    fn user_identity_matches_numbers_extensions_and_addresses() {
        let u = UserIdentity::new(&["frank.carius@netatwork.de"], &["+49 5251 304613", "613"]).expect("user");
        assert!(u.is(&p("sip:frank.carius@netatwork.de")));
        assert!(u.is(&p("tel:+495251304613;ext=613")));
        assert!(u.is(&p("sip:613@pbx;user=phone")));
        assert!(!u.is(&p("tel:+495251304667;ext=613")), "the same extension under another number is someone else");
        assert!(!u.is(&p("tel:+495251304667;ext=667")));
        assert!(!u.is(&p("sip:frank.carius2@netatwork.de")));
    }
}
