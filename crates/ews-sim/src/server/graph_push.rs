//! The Graph face's change notifications, as Microsoft Graph runs them for
//! Outlook messages: `POST /subscriptions` validates the webhook first
//! (`POST <notificationUrl>?validationToken=…`, answered within 10 s with
//! 200 and the token as `text/plain`; the lifecycle URL too when it is
//! another), refuses what Graph refuses (no HTTPS, an expiry past 10,070
//! minutes or in the past, a resource the token may not read, more than
//! 1,000 subscriptions on a mailbox), and then POSTs a
//! `changeNotificationCollection` to the webhook for each change, with the
//! subscription's `clientState`, retried with back-off while the webhook
//! fails. `PATCH` renews, `DELETE` ends, `POST …/reauthorize` confirms after
//! a `reauthorizationRequired`. A subscription past its expiry is gone.
//!
//! Tests inject the lifecycle events Graph sends
//! ([`crate::Simulator::graph_lifecycle`]): `missed` (pending notifications
//! dropped), `subscriptionRemoved` (the subscription gone), and
//! `reauthorizationRequired` (notifications held until renewed or
//! reauthorized).
//!
//! Changes are seen through a streaming subscription of the mailbox's store
//! on the Inbox and Deleted Items, where a voicemail arrives and goes.

use super::Shared;
use super::entra::Principal;
use super::graph::{Ask, graph_error, json_response, owner};
use bytes::Bytes;
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The most subscriptions on one mailbox, for every app together (Outlook's limit).
const MAX_PER_MAILBOX: usize = 1000;

/// The longest life of a subscription on Outlook messages, in minutes.
const MAX_MINUTES: u64 = 10_070;

/// The longest a webhook may take to answer (Graph: 10 s for validation).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries of one batch tried at most this often (Graph retries for up to 4 hours).
const DELIVERY_TRIES: u32 = 6;

/// A lifecycle event to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleEvent {
    Missed,
    SubscriptionRemoved,
    ReauthorizationRequired,
}

impl LifecycleEvent {
    fn name(self) -> &'static str {
        match self {
            LifecycleEvent::Missed => "missed",
            LifecycleEvent::SubscriptionRemoved => "subscriptionRemoved",
            LifecycleEvent::ReauthorizationRequired => "reauthorizationRequired",
        }
    }
}

#[derive(Debug, Clone)]
struct GraphSub {
    /// The app that made it (`None`: a user's delegated token).
    app: Option<String>,
    mailbox: String,
    resource: String,
    change_types: Vec<String>,
    url: String,
    lifecycle_url: Option<String>,
    client_state: Option<String>,
    expires: SystemTime,
    /// The store's streaming subscription behind it.
    store_sub: String,
    /// Held after `reauthorizationRequired` until renewed or reauthorized.
    held: bool,
}

/// The subscriptions and what waits to be delivered.
#[derive(Debug, Default)]
pub(super) struct Push {
    subs: HashMap<String, GraphSub>,
    /// Lifecycle notifications to send: (url, notification).
    lifecycle: Vec<(String, Value)>,
    /// Collections delivered (answered 2xx), for tests.
    pub(super) delivered: u32,
    /// Deliveries that failed every try.
    pub(super) dropped: u32,
    /// Graph's notification pipeline stalls: nothing is delivered (changes wait).
    pub(super) paused: bool,
}

const TENANT: &str = "9188040d-6c67-4c5b-b112-36a304b66dad";

fn guid() -> String {
    let mut b = [0u8; 16];
    let _ = getrandom::getrandom(&mut b);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_be_bytes([b[4], b[5]]),
        u16::from_be_bytes([b[6], b[7]]) & 0xfff,
        u16::from_be_bytes([b[8], b[9]]) & 0xfff,
        u64::from_be_bytes([0, 0, b[10], b[11], b[12], b[13], b[14], b[15]])
    )
}

/// ISO 8601 UTC (`2026-12-02T10:00:00Z`, fractions and `+00:00` taken) to a time.
pub(super) fn parse_iso(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.strip_suffix('Z').or_else(|| time.strip_suffix("+00:00")).unwrap_or(time);
    let mut t = time.split(':');
    let (h, min) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let sec = t.next().unwrap_or("0").split('.').next()?.parse::<i64>().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || sec > 60 {
        return None;
    }
    // days from the civil date (Howard Hinnant's algorithm)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    u64::try_from(secs).ok().map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

fn iso(t: SystemTime) -> String {
    crate::store::iso_from_unix(t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs())
}

fn json_of(root: &str, id: &str, s: &GraphSub) -> Value {
    json!({
        "@odata.context": format!("{root}/$metadata#subscriptions/$entity"),
        "id": id,
        "resource": s.resource,
        "applicationId": s.app.clone().unwrap_or_else(|| "6f3c1a57-9a3b-4d5e-8f21-1c2d3e4f5a6b".into()),
        "changeType": s.change_types.join(","),
        "clientState": s.client_state,
        "notificationUrl": s.url,
        "notificationQueryOptions": null,
        "lifecycleNotificationUrl": s.lifecycle_url,
        "expirationDateTime": iso(s.expires),
        "creatorId": guid(),
        "includeResourceData": false,
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": null,
        "encryptionCertificateId": null,
        "notificationUrlAppId": null,
    })
}

fn invalid(message: &str) -> Response<super::Body> {
    graph_error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

fn not_found() -> Response<super::Body> {
    graph_error(StatusCode::NOT_FOUND, "ResourceNotFound", "The object was not found.")
}

/// The app (or user) a principal is, to match subscriptions to their maker.
fn maker(p: &Principal) -> Option<String> {
    match p {
        Principal::User => None,
        Principal::App { client_id, .. } => Some(client_id.clone()),
    }
}

/// The expiry asked for, checked as Graph checks it for messages.
#[allow(clippy::result_large_err)]
fn expiry(v: Option<&Value>) -> Result<SystemTime, Response<super::Body>> {
    let Some(t) = v.and_then(Value::as_str).and_then(parse_iso) else {
        return Err(invalid("expirationDateTime is required and must be an ISO 8601 date and time."));
    };
    let now = SystemTime::now();
    if t <= now {
        return Err(invalid("Subscription expiration must be in the future."));
    }
    if t > now + Duration::from_secs(60 * MAX_MINUTES) {
        return Err(invalid(&format!("Subscription expiration can only be {MAX_MINUTES} minutes in the future.")));
    }
    Ok(t)
}

/// The mailbox a subscription's resource names, if the principal may read it.
#[allow(clippy::result_large_err)]
fn resource_mailbox(shared: &Shared, resource: &str, principal: &Principal) -> Result<String, Response<super::Body>> {
    let path = resource.trim_start_matches('/');
    let segments: Vec<&str> = path
        .split('/')
        .flat_map(|seg| match seg.split_once("('") {
            Some((name, key)) if seg.ends_with("')") => vec![name, &key[..key.len() - 2]],
            _ => vec![seg],
        })
        .collect();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    let shape_ok =
        matches!(
            lower.as_slice(),
            ["me" | "users", .., "messages"] if lower.len() <= 5
        ) && (lower.len() == 2 || lower.len() == 3 || (lower.len() >= 4 && lower[lower.len() - 3] == "mailfolders"));
    if !shape_ok {
        return Err(invalid(&format!("The resource '{resource}' is not supported for change notifications here.")));
    }
    let primary = shared.config.lock().unwrap_or_else(|p| p.into_inner()).email.clone();
    let all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let ask = Ask { method: &Method::GET, path, params: Vec::new(), prefer: "", body: &[], principal };
    owner(&all, &primary, &ask, &segments).map(|(mailbox, _)| mailbox)
}

/// `POST` to a webhook: the answer's status and body, or why there is none.
async fn post(shared: &Shared, url: &str, content_type: &str, body: String) -> Result<(u16, Bytes), String> {
    let rest = url.strip_prefix("https://").ok_or("not https")?;
    let (authority, path) = rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.trim_matches(['[', ']']).to_string(), p.parse::<u16>().map_err(|e| e.to_string())?),
        None => (authority.to_string(), 443),
    };
    let ca = shared.config.lock().unwrap_or_else(|p| p.into_inner()).webhook_ca_pem.clone();
    let tls = lamplighter_https::Tls::new(ca.as_deref()).map_err(|e| e.to_string())?;
    let endpoint = lamplighter_https::Endpoint { https: true, host: host.clone(), port, fixed: None };
    let exchange = async {
        let mut sender =
            lamplighter_https::connect(&tls, &endpoint, WEBHOOK_TIMEOUT).await.map_err(|e| e.to_string())?;
        let req = hyper::Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", authority)
            .header("content-type", content_type)
            .header("user-agent", "Microsoft-Graph-ChangeTracking/1.0 (lamplighter-ews-sim)")
            .body(http_body_util::Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        use http_body_util::BodyExt as _;
        let bytes = http_body_util::Limited::new(resp.into_body(), 64 << 10)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    };
    tokio::time::timeout(WEBHOOK_TIMEOUT, exchange).await.map_err(|_| "no answer within 10 s".to_string())?
}

/// Graph's validation of a notification URL.
async fn validate(shared: &Shared, url: &str) -> Result<(), String> {
    let token = format!("Validation: Testing client application reachability for subscription Request-Id: {}", guid());
    let encoded: String = token
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let sep = if url.contains('?') { '&' } else { '?' };
    let (status, body) =
        post(shared, &format!("{url}{sep}validationToken={encoded}"), "text/plain; charset=utf-8", String::new())
            .await?;
    if status != 200 {
        return Err(format!("the endpoint answered {status}"));
    }
    if body.as_ref() != token.as_bytes() {
        return Err("the endpoint did not answer with the validation token".into());
    }
    Ok(())
}

/// Serves `/subscriptions…`.
pub(super) async fn serve(
    shared: Arc<Shared>,
    root: &str,
    method: &Method,
    path: &str,
    body: &[u8],
    principal: &Principal,
) -> Response<super::Body> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let who = maker(principal);
    let now = SystemTime::now();
    shared.push.lock().unwrap_or_else(|p| p.into_inner()).subs.retain(|_, s| s.expires > now);
    match (method, segments.as_slice()) {
        (&Method::POST, [_]) => create(&shared, root, body, principal).await,
        (&Method::GET, [_]) => {
            let push = shared.push.lock().unwrap_or_else(|p| p.into_inner());
            let value: Vec<Value> = push
                .subs
                .iter()
                .filter(|(_, s)| s.app == who)
                .map(|(id, s)| {
                    let mut v = json_of(root, id, s);
                    v.as_object_mut().map(|o| o.remove("@odata.context"));
                    v
                })
                .collect();
            json_response(
                StatusCode::OK,
                &json!({ "@odata.context": format!("{root}/$metadata#subscriptions"), "value": value }),
            )
        }
        (&Method::GET, [_, id]) => {
            let push = shared.push.lock().unwrap_or_else(|p| p.into_inner());
            match push.subs.get(*id).filter(|s| s.app == who) {
                Some(s) => json_response(StatusCode::OK, &json_of(root, id, s)),
                None => not_found(),
            }
        }
        (&Method::PATCH, [_, id]) => {
            let patch: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let expires = match expiry(patch.get("expirationDateTime")) {
                Ok(t) => t,
                Err(r) => return r,
            };
            let mut push = shared.push.lock().unwrap_or_else(|p| p.into_inner());
            match push.subs.get_mut(*id).filter(|s| s.app == who) {
                Some(s) => {
                    s.expires = expires;
                    s.held = false;
                    let v = json_of(root, id, s);
                    drop(push);
                    // held notifications go now
                    shared.changed.send_modify(|v| *v += 1);
                    json_response(StatusCode::OK, &v)
                }
                None => not_found(),
            }
        }
        (&Method::POST, [_, id, "reauthorize"]) => {
            let mut push = shared.push.lock().unwrap_or_else(|p| p.into_inner());
            match push.subs.get_mut(*id).filter(|s| s.app == who) {
                Some(s) => {
                    s.held = false;
                    drop(push);
                    shared.changed.send_modify(|v| *v += 1);
                    super::full(StatusCode::NO_CONTENT, Bytes::new())
                }
                None => not_found(),
            }
        }
        (&Method::DELETE, [_, id]) => {
            let removed = {
                let mut push = shared.push.lock().unwrap_or_else(|p| p.into_inner());
                match push.subs.get(*id) {
                    Some(s) if s.app == who => push.subs.remove(*id),
                    _ => None,
                }
            };
            match removed {
                Some(s) => {
                    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(store) = all.mailbox_mut(&s.mailbox) {
                        let _ = store.unsubscribe(&s.store_sub);
                    }
                    super::full(StatusCode::NO_CONTENT, Bytes::new())
                }
                None => not_found(),
            }
        }
        _ => graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Unsupported subscription request."),
    }
}

async fn create(shared: &Arc<Shared>, root: &str, body: &[u8], principal: &Principal) -> Response<super::Body> {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
        return invalid("Empty Payload. JSON content expected.");
    };
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(change_type), Some(url), Some(resource)) =
        (text("changeType"), text("notificationUrl"), text("resource"))
    else {
        return invalid("changeType, notificationUrl and resource are required.");
    };
    let change_types: Vec<String> = change_type.split(',').map(|c| c.trim().to_string()).collect();
    if change_types.iter().any(|c| !["created", "updated", "deleted"].contains(&c.as_str())) {
        return invalid(&format!("'{change_type}' is not a valid changeType (created, updated, deleted)."));
    }
    let lifecycle_url = text("lifecycleNotificationUrl");
    for u in std::iter::once(&url).chain(lifecycle_url.iter()) {
        if !u.starts_with("https://") {
            return invalid("Subscription validation request failed. Notification URLs must use HTTPS.");
        }
    }
    let client_state = text("clientState");
    if client_state.as_ref().is_some_and(|c| c.len() > 128) {
        return invalid("clientState must be at most 128 characters.");
    }
    let expires = match expiry(o.get("expirationDateTime")) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mailbox = match resource_mailbox(shared, &resource, principal) {
        Ok(m) => m,
        Err(r) => return r,
    };
    {
        let push = shared.push.lock().unwrap_or_else(|p| p.into_inner());
        if push.subs.values().filter(|s| s.mailbox == mailbox).count() >= MAX_PER_MAILBOX {
            return graph_error(
                StatusCode::FORBIDDEN,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: The number of subscriptions on this mailbox has reached the limit of 1000.]",
            );
        }
    }
    let mut urls = vec![url.clone()];
    if let Some(l) = &lifecycle_url
        && *l != url
    {
        urls.push(l.clone());
    }
    for u in &urls {
        if let Err(why) = validate(shared, u).await {
            log::info!("Graph: validation of {u} failed: {why}");
            return graph_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
            );
        }
    }
    let store_sub = {
        let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        let Some(store) = all.mailbox_mut(&mailbox) else { return not_found() };
        store
            .subscribe(crate::store::SubKind::Streaming, &[], &[crate::folders::INBOX_ID, crate::folders::DELETED_ID])
            .0
    };
    let id = guid();
    let sub = GraphSub {
        app: maker(principal),
        mailbox,
        resource,
        change_types,
        url,
        lifecycle_url,
        client_state,
        expires,
        store_sub,
        held: false,
    };
    let v = json_of(root, &id, &sub);
    shared.push.lock().unwrap_or_else(|p| p.into_inner()).subs.insert(id, sub);
    json_response(StatusCode::CREATED, &v)
}

/// A lifecycle event on every subscription of `mailbox`; how many it touched.
pub(super) fn lifecycle(shared: &Shared, mailbox: &str, event: LifecycleEvent) -> usize {
    let key = crate::mailboxes::key(mailbox);
    let mut push = shared.push.lock().unwrap_or_else(|p| p.into_inner());
    let ids: Vec<String> = push.subs.iter().filter(|(_, s)| s.mailbox == key).map(|(id, _)| id.clone()).collect();
    for id in &ids {
        let Some(s) = push.subs.get(id).cloned() else { continue };
        let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        let store = all.mailbox_mut(&key);
        match event {
            LifecycleEvent::Missed => {
                if let Some(store) = store {
                    let _ = store.take_events(&s.store_sub);
                }
            }
            LifecycleEvent::SubscriptionRemoved => {
                if let Some(store) = store {
                    let _ = store.unsubscribe(&s.store_sub);
                }
                push.subs.remove(id);
            }
            LifecycleEvent::ReauthorizationRequired => {
                if let Some(x) = push.subs.get_mut(id) {
                    x.held = true;
                }
            }
        }
        if let Some(url) = s.lifecycle_url.clone() {
            push.lifecycle.push((
                url,
                json!({
                    "subscriptionId": id,
                    "subscriptionExpirationDateTime": iso(s.expires),
                    "tenantId": TENANT,
                    "clientState": s.client_state,
                    "lifecycleEvent": event.name(),
                }),
            ));
        }
    }
    drop(push);
    shared.changed.send_modify(|v| *v += 1);
    ids.len()
}

/// What waits to be delivered: per URL, the notifications.
fn due(shared: &Shared) -> Vec<(String, Vec<Value>)> {
    let now = SystemTime::now();
    let mut push = shared.push.lock().unwrap_or_else(|p| p.into_inner());
    if push.paused {
        return Vec::new();
    }
    let expired: Vec<(String, GraphSub)> =
        push.subs.iter().filter(|(_, s)| s.expires <= now).map(|(i, s)| (i.clone(), s.clone())).collect();
    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    for (id, s) in expired {
        push.subs.remove(&id);
        if let Some(store) = all.mailbox_mut(&s.mailbox) {
            let _ = store.unsubscribe(&s.store_sub);
        }
    }
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for (url, n) in push.lifecycle.drain(..) {
        out.entry(url).or_default().push(n);
    }
    for (id, s) in push.subs.iter().filter(|(_, s)| !s.held) {
        let Some(store) = all.mailbox_mut(&s.mailbox) else { continue };
        let Ok(events) = store.take_events(&s.store_sub) else { continue };
        for e in events {
            use crate::store::EventKind as K;
            let change = match e.kind {
                // a new message is one Created (Graph has no NewMail of its own)
                K::NewMail => continue,
                K::Created => "created",
                K::Modified => "updated",
                K::Deleted | K::Moved => "deleted",
                K::FreeBusyChanged => continue,
            };
            if !s.change_types.iter().any(|c| c == change) {
                continue;
            }
            let rest = super::graph::rest_id(&e.item.0);
            out.entry(s.url.clone()).or_default().push(json!({
                "subscriptionId": id,
                "subscriptionExpirationDateTime": iso(s.expires),
                "changeType": change,
                "resource": format!("Users/{}/Messages/{rest}", s.mailbox),
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Message",
                    "@odata.id": format!("Users/{}/Messages/{rest}", s.mailbox),
                    "@odata.etag": format!("W/\"{}\"", e.item.1),
                    "id": rest,
                },
                "clientState": s.client_state,
                "tenantId": TENANT,
            }));
        }
    }
    out.into_iter().collect()
}

/// Delivers notifications while the simulator runs: on every change, each
/// webhook's due notifications as one collection, retried with back-off.
pub(super) async fn deliver(shared: Arc<Shared>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let mut changed = shared.changed.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = changed.changed() => {}
            _ = tick.tick() => {}
            _ = stopped.changed() => return,
        }
        for (url, value) in due(&shared) {
            let shared = shared.clone();
            tokio::spawn(async move {
                let body = json!({ "value": value }).to_string();
                let mut wait = Duration::from_millis(500);
                for _ in 0..DELIVERY_TRIES {
                    match post(&shared, &url, "application/json; charset=utf-8", body.clone()).await {
                        Ok((s, _)) if (200..300).contains(&s) => {
                            shared.push.lock().unwrap_or_else(|p| p.into_inner()).delivered += 1;
                            return;
                        }
                        Ok((s, _)) => log::info!("Graph: the webhook {url} answered {s}; trying again"),
                        Err(e) => log::info!("Graph: the webhook {url}: {e}; trying again"),
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                shared.push.lock().unwrap_or_else(|p| p.into_inner()).dropped += 1;
            });
        }
    }
}

/// (subscription id, mailbox, expiry) of every live subscription.
pub(super) fn list(shared: &Shared) -> Vec<(String, String, SystemTime)> {
    let push = shared.push.lock().unwrap_or_else(|p| p.into_inner());
    push.subs.iter().map(|(id, s)| (id.clone(), s.mailbox.clone(), s.expires)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates_read_as_graph_writes_them() {
        let t = parse_iso("2026-12-02T10:00:00.0000000Z").expect("date");
        assert_eq!(iso(t), "2026-12-02T10:00:00Z");
        assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(SystemTime::UNIX_EPOCH));
        assert_eq!(parse_iso("2024-02-29T23:59:59+00:00").map(iso).as_deref(), Some("2024-02-29T23:59:59Z"));
        assert!(parse_iso("2026-13-01T00:00:00Z").is_none());
        assert!(parse_iso("yesterday").is_none());
    }
}
