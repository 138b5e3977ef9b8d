//! Graph change notifications on the wire: the `subscription` a webhook
//! client creates and renews (`POST`/`PATCH /subscriptions`), and what
//! Graph POSTs to the webhook — the validation request
//! (`?validationToken=…`, answered with the token as `text/plain`) and a
//! `changeNotificationCollection` of change and lifecycle notifications
//! (`missed`, `subscriptionRemoved`, `reauthorizationRequired`).
//!
//! Every byte POSTed to a webhook may be forged: a reader here only says
//! what the body claims. Whether a claim counts (a known subscription, its
//! `clientState` matched) is the receiver's decision.

use crate::WireError;
use serde::{Deserialize, Serialize};

/// The longest life Graph gives a subscription on Outlook messages
/// (10,080 minutes less a margin Graph keeps: it refuses more than 10,070).
pub const MAX_MESSAGE_SUBSCRIPTION_MINUTES: u64 = 10_070;

/// The most a notification body may be (Graph batches up to a few hundred
/// notifications of a kilobyte or so; more is not Graph).
pub const MAX_NOTIFICATION_BODY: usize = 1 << 20;

/// The most notifications one body is read for.
pub const MAX_NOTIFICATIONS: usize = 1000;

/// `clientState`: at most 128 characters (Graph's limit).
pub const MAX_CLIENT_STATE: usize = 128;

/// A subscription as created (`POST /subscriptions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSubscription {
    /// `created,updated,deleted`.
    pub change_type: String,
    pub notification_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle_notification_url: Option<String>,
    /// `/users/{id}/messages`.
    pub resource: String,
    /// ISO 8601, UTC.
    pub expiration_date_time: String,
    pub client_state: String,
    /// `v1_2`: Graph's default; named so a change is a decision.
    pub latest_supported_tls_version: String,
}

/// The resource of a mailbox's messages, every folder.
pub fn messages_of(user: &str) -> String {
    format!("/users/{}/messages", crate::request::encode_segment(user))
}

impl NewSubscription {
    /// Every change to `user`'s messages, to `url` (lifecycle events too).
    pub fn messages(user: &str, url: &str, client_state: &str, expires: &str) -> NewSubscription {
        NewSubscription {
            change_type: "created,updated,deleted".into(),
            notification_url: url.into(),
            lifecycle_notification_url: Some(url.into()),
            resource: messages_of(user),
            expiration_date_time: expires.into(),
            client_state: client_state.into(),
            latest_supported_tls_version: "v1_2".into(),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Result<String, WireError> {
        serde_json::to_string(self).map_err(|e| WireError::Json(e.to_string()))
    }
}

/// `PATCH /subscriptions/{id}`: a new expiry.
pub fn renewal_body(expires: &str) -> String {
    serde_json::json!({ "expirationDateTime": expires }).to_string()
}

/// The path of a subscription.
pub fn subscription_path(id: &str) -> String {
    format!("/subscriptions/{}", crate::request::encode_segment(id))
}

/// What Graph answers about a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: String,
    #[serde(default)]
    pub resource: String,
    pub expiration_date_time: String,
}

/// Reads a subscription (the answer to a create or a renewal).
pub fn parse_subscription(body: &[u8]) -> Result<Subscription, WireError> {
    let s: Subscription = serde_json::from_slice(body).map_err(|e| WireError::Json(e.to_string()))?;
    if s.id.is_empty() || s.id.len() > 200 {
        return Err(WireError::Json("a subscription without a usable id".into()));
    }
    Ok(s)
}

/// A lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Notifications were dropped: resynchronise by delta.
    Missed,
    /// Graph removed the subscription: create it again, and resynchronise.
    Removed,
    /// The access behind it must be confirmed (renew or reauthorize).
    ReauthorizationRequired,
}

/// One notification as the body claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub subscription_id: String,
    pub client_state: Option<String>,
    /// A lifecycle event, or `None` for a change.
    pub lifecycle: Option<Lifecycle>,
    /// `created`, `updated`, `deleted` (for a change).
    pub change_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNotification {
    subscription_id: String,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    lifecycle_event: Option<String>,
    #[serde(default)]
    change_type: Option<String>,
}

#[derive(Deserialize)]
struct RawCollection {
    value: Vec<serde_json::Value>,
}

/// Reads a `changeNotificationCollection`. A body that is not one is an
/// error; an entry that does not read (or names a lifecycle event this
/// reader does not know) is left out, so one odd entry loses no other.
pub fn parse_notifications(body: &[u8]) -> Result<Vec<Notification>, WireError> {
    if body.len() > MAX_NOTIFICATION_BODY {
        return Err(WireError::Json(format!("a notification body over {MAX_NOTIFICATION_BODY} bytes")));
    }
    let raw: RawCollection = serde_json::from_slice(body).map_err(|e| WireError::Json(e.to_string()))?;
    Ok(raw
        .value
        .into_iter()
        .take(MAX_NOTIFICATIONS)
        .filter_map(|v| serde_json::from_value::<RawNotification>(v).ok())
        .filter(|n| !n.subscription_id.is_empty() && n.subscription_id.len() <= 200)
        .filter_map(|n| {
            let lifecycle = match n.lifecycle_event.as_deref() {
                None => None,
                Some("missed") => Some(Lifecycle::Missed),
                Some("subscriptionRemoved") => Some(Lifecycle::Removed),
                Some("reauthorizationRequired") => Some(Lifecycle::ReauthorizationRequired),
                Some(_) => return None,
            };
            Some(Notification {
                subscription_id: n.subscription_id,
                client_state: n.client_state.filter(|c| c.len() <= MAX_CLIENT_STATE),
                lifecycle,
                change_type: n.change_type,
            })
        })
        .collect())
}

/// The `validationToken` of a validation request's query, decoded; `None`
/// when the query has none. A token is at most 1,024 bytes (Graph's are a
/// few hundred); a longer one is refused, so an answer is never much larger
/// than what a stranger sent.
pub fn validation_token(query: &str) -> Option<Result<String, WireError>> {
    let raw = query.split('&').find_map(|p| p.strip_prefix("validationToken="))?;
    let decoded = percent_decode(raw);
    Some(if decoded.len() > 1024 || decoded.is_empty() {
        Err(WireError::Json("a validation token that is empty or over 1,024 bytes".into()))
    } else {
        Ok(decoded)
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_tokens_are_decoded_and_bounded() {
        assert_eq!(
            validation_token("validationToken=Validation%3a+Testing").map(Result::ok),
            Some(Some("Validation: Testing".into()))
        );
        assert_eq!(validation_token("a=1&validationToken=x%2"), Some(Ok("x%2".into())));
        assert!(validation_token("other=1").is_none());
        assert!(matches!(validation_token("validationToken="), Some(Err(_))));
        assert!(matches!(validation_token(&format!("validationToken={}", "a".repeat(1025))), Some(Err(_))));
    }

    #[test]
    fn odd_entries_are_left_out_and_a_non_collection_refused() {
        let body = br#"{"value":[
            {"subscriptionId":"s1","clientState":"c","changeType":"created","resource":"Users/x/Messages/y"},
            {"subscriptionId":"s2","lifecycleEvent":"missed"},
            {"subscriptionId":"s3","lifecycleEvent":"somethingNew"},
            {"clientState":"no id"},
            42
        ]}"#;
        let n = parse_notifications(body).expect("collection");
        assert_eq!(n.len(), 2);
        assert_eq!(n[0].change_type.as_deref(), Some("created"));
        assert_eq!(n[1].lifecycle, Some(Lifecycle::Missed));
        assert!(parse_notifications(b"[]").is_err());
        assert!(parse_notifications(&vec![b' '; MAX_NOTIFICATION_BODY + 1]).is_err());
    }
}
