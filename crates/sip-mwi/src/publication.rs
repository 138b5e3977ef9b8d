//! What a presence server's 2xx to our PUBLISH (RFC 3903) lets us keep:
//! the entity tag we send back in `SIP-If-Match`, and how long the
//! publication lives, which decides when it is refreshed.
//!
//! Both come from the network, so both are checked. An entity tag is a
//! `token` (§11.3.1) of at most [`MAX_ETAG`] characters: anything else would
//! be copied into our next request's header. The server may shorten the
//! `Expires` we asked for (§6, step 5), never lengthen it; a missing or
//! malformed value means the one we asked for, and a value below
//! [`MIN_EXPIRES`] is raised to it so a hostile server cannot make us
//! refresh in a tight loop.

use crate::MwiError;
use std::time::Duration;

/// The longest entity tag kept.
pub const MAX_ETAG: usize = 128;

/// The shortest lifetime a refresh is scheduled for.
pub const MIN_EXPIRES: u32 = 60;

/// An accepted publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `SIP-ETag`.
    pub etag: String,
    /// Seconds the server keeps it.
    pub expires: u32,
}

impl Accepted {
    /// When to refresh it: at 90 % of its life.
    pub fn refresh_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.expires) * 9 / 10)
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// Reads a 2xx to a PUBLISH that asked for `asked` seconds: its
/// `SIP-ETag` and `Expires` header values.
pub fn accepted(etag: Option<&str>, expires: Option<&str>, asked: u32) -> Result<Accepted, MwiError> {
    let syntax = |detail: String| MwiError::Syntax { what: "SIP-ETag", detail };
    let etag = etag.map(str::trim).ok_or_else(|| syntax("a 2xx to PUBLISH without SIP-ETag".into()))?;
    if etag.is_empty() || etag.len() > MAX_ETAG || !etag.chars().all(is_token_char) {
        let shown: String = etag.chars().take(40).collect();
        return Err(syntax(format!("{shown:?} is not a token of at most {MAX_ETAG} characters")));
    }
    let granted = expires.map(str::trim).and_then(|e| {
        (!e.is_empty() && e.len() <= 10 && e.bytes().all(|b| b.is_ascii_digit())).then(|| e.parse::<u32>().ok())?
    });
    let expires = granted.unwrap_or(asked).min(asked).max(MIN_EXPIRES.min(asked));
    Ok(Accepted { etag: etag.to_string(), expires })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_tag_is_kept_and_a_shorter_life_is_honoured() {
        assert_eq!(accepted(Some(" a.1x-9 "), Some("600"), 3600), Ok(Accepted { etag: "a.1x-9".into(), expires: 600 }));
        assert_eq!(accepted(Some("t"), None, 3600).map(|a| a.expires), Ok(3600));
        assert_eq!(accepted(Some("t"), Some("banana"), 3600).map(|a| a.expires), Ok(3600));
        assert_eq!(accepted(Some("t"), Some("99999999999"), 3600).map(|a| a.expires), Ok(3600), "overflow");
        assert_eq!(accepted(Some("t"), Some("86400"), 3600).map(|a| a.expires), Ok(3600), "never longer");
        assert_eq!(accepted(Some("t"), Some("1"), 3600).map(|a| a.expires), Ok(MIN_EXPIRES), "no tight loop");
        assert_eq!(accepted(Some("t"), Some("600"), 3600).map(|a| a.refresh_after()), Ok(Duration::from_secs(540)));
    }

    #[test]
    fn a_tag_that_is_not_a_token_is_refused() {
        for bad in ["", "a b", "a\r\nVia: x", "a;b", "\"q\"", &"x".repeat(MAX_ETAG + 1)] {
            assert!(accepted(Some(bad), Some("60"), 3600).is_err(), "{bad:?}");
        }
        assert!(accepted(None, Some("60"), 3600).is_err());
    }

    proptest! {
        #[test]
        fn whatever_the_server_says_the_result_is_safe(etag in ".{0,200}", expires in ".{0,20}", asked in 1u32..100_000) {
            if let Ok(a) = accepted(Some(&etag), Some(&expires), asked) {
                prop_assert!(a.etag.chars().all(is_token_char) && a.etag.len() <= MAX_ETAG);
                prop_assert!(a.expires <= asked);
                prop_assert!(a.expires >= MIN_EXPIRES.min(asked));
            }
        }
    }
}
