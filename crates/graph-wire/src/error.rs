//! Graph's error body, `{"error":{"code","message","innerError":{"request-id","date"}}}`,
//! and what an answer's status, `Retry-After` and code mean for the caller.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The `error` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
    #[serde(rename = "innerError", default, skip_serializing_if = "Option::is_none")]
    pub inner: Option<InnerError>,
}

/// `innerError`: what Microsoft support asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnerError {
    #[serde(rename = "request-id", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(rename = "client-request-id", default, skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    error: GraphError,
}

/// Reads an error body; `None` when it is not one (a proxy's page, nothing).
pub fn parse_error(body: &[u8]) -> Option<GraphError> {
    if body.len() > 64 * 1024 {
        return None;
    }
    serde_json::from_slice::<Envelope>(body).ok().map(|e| e.error)
}

/// What a failed answer asks of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 429, or 503/504 with `Retry-After`: wait that long (bounded by the caller).
    Throttled { retry_after: Option<Duration> },
    /// 401: the token is refused; refresh once, then it is a sign-in problem.
    Unauthorized { invalid_token: bool },
    /// 410, or `syncStateNotFound`/`syncStateInvalid`: the delta link is spent;
    /// start the round again from nothing.
    DeltaExpired,
    /// 403: not allowed (a consent, a policy).
    Forbidden,
    /// 404: the item or folder is not there.
    NotFound,
    /// 5xx without a wait: try again with the back-off.
    Server,
    /// Anything else.
    Other,
}

/// Classifies an answer by its status, `Retry-After` and `WWW-Authenticate`
/// headers and error body.
pub fn classify(status: u16, retry_after: Option<&str>, www_authenticate: Option<&str>, body: &[u8]) -> Failure {
    let code = parse_error(body).map(|e| e.code).unwrap_or_default();
    // Retry-After in seconds (Graph's form); an HTTP date is not what Graph sends
    let wait = retry_after.and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
    match status {
        401 => Failure::Unauthorized {
            invalid_token: www_authenticate.is_some_and(|w| w.contains("invalid_token"))
                || code.eq_ignore_ascii_case("InvalidAuthenticationToken"),
        },
        410 => Failure::DeltaExpired,
        _ if code.eq_ignore_ascii_case("syncStateNotFound") || code.eq_ignore_ascii_case("syncStateInvalid") => {
            Failure::DeltaExpired
        }
        429 => Failure::Throttled { retry_after: wait },
        503 | 504 if wait.is_some() => Failure::Throttled { retry_after: wait },
        403 => Failure::Forbidden,
        404 => Failure::NotFound,
        500..=599 => Failure::Server,
        _ => Failure::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_status_header_and_code() {
        let throttled = br#"{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit.","innerError":{"request-id":"r","date":"2026-12-01T10:00:00"}}}"#;
        assert_eq!(
            classify(429, Some("7"), None, throttled),
            Failure::Throttled { retry_after: Some(Duration::from_secs(7)) }
        );
        assert_eq!(classify(503, None, None, b""), Failure::Server);
        assert_eq!(
            classify(503, Some("2"), None, b""),
            Failure::Throttled { retry_after: Some(Duration::from_secs(2)) }
        );
        assert_eq!(
            classify(401, None, Some(r#"Bearer realm="", error="invalid_token""#), b""),
            Failure::Unauthorized { invalid_token: true }
        );
        assert_eq!(classify(410, None, None, b""), Failure::DeltaExpired);
        let gone = br#"{"error":{"code":"syncStateNotFound","message":"The sync state generation is not found."}}"#;
        assert_eq!(classify(400, None, None, gone), Failure::DeltaExpired);
        assert_eq!(parse_error(throttled).and_then(|e| e.inner).and_then(|i| i.request_id).as_deref(), Some("r"));
        assert_eq!(parse_error(b"<html>proxy</html>"), None);
    }
}
