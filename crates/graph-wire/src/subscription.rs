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

/// A time as Graph writes `expirationDateTime`: ISO 8601 in UTC, whole seconds.
pub fn iso_utc(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // the civil date of a day count (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Reads Graph's `expirationDateTime` (`2026-12-05T10:00:00.0000000Z`, or
/// with `+00:00`); fractions of a second are dropped.
pub fn parse_iso_utc(s: &str) -> Option<std::time::SystemTime> {
    let (date, time) = s.trim().split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    let time = time.strip_suffix('Z').or_else(|| time.strip_suffix("+00:00"))?;
    let mut t = time.split(':');
    let (h, min): (i64, i64) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec: i64 = t.next().unwrap_or("0").split('.').next()?.parse().ok()?;
    if d.next().is_some()
        || !(0..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || h > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let secs = (era * 146_097 + doe - 719_468) * 86_400 + h * 3600 + min * 60 + sec;
    u64::try_from(secs).ok().map(|s| std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s))
}

#[cfg(test)]
mod time_tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn graph_s_dates_read_and_write() {
        let t = parse_iso_utc("2026-12-05T10:00:00.0000000Z").expect("date");
        assert_eq!(iso_utc(t), "2026-12-05T10:00:00Z");
        assert_eq!(parse_iso_utc("1970-01-01T00:00:00Z"), Some(SystemTime::UNIX_EPOCH));
        assert_eq!(parse_iso_utc("2024-02-29T23:59:59+00:00").map(iso_utc).as_deref(), Some("2024-02-29T23:59:59Z"));
        for bad in ["2026-13-01T00:00:00Z", "tomorrow", "2026-12-05T10:00:00+01:00", "2026-12-05"] {
            assert!(parse_iso_utc(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn every_second_of_four_centuries_round_trips(secs in 0u64..(400 * 366 * 86_400)) {
            let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
            prop_assert_eq!(parse_iso_utc(&iso_utc(t)), Some(t));
        }

        #[test]
        fn any_text_reads_without_a_panic(s in "\\PC{0,40}") {
            let _ = parse_iso_utc(&s);
        }
    }
}
