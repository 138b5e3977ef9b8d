//! The simulator's Microsoft Graph face: the same mailbox as the EWS face,
//! served under `/v1.0` as Exchange Online serves both. It answers what a
//! Graph mail client uses — `messages/delta` on the Inbox (paged by
//! `@odata.nextLink`, ended by `@odata.deltaLink`, `@removed` for what left),
//! a message with `$select` and the extended properties `$expand` names, its
//! attachments and their `$value`, `PATCH` of `isRead`, `mailFolders/{id}`,
//! and JSON `$batch` — with Graph's control information (`@odata.context`,
//! `@odata.etag`), errors (`{"error":{"code","message","innerError"}}`),
//! 401 with `WWW-Authenticate: Bearer … error="invalid_token"`, 429 with
//! `Retry-After` (the same throttling injection as EWS), and 410
//! `syncStateNotFound` for a delta token past its mailbox's epoch.
//!
//! Ids are Graph's REST form of the EWS ids (URL-safe base64), so both faces
//! name one item. Delta tokens carry the round's `$select` and `$expand`, as
//! Graph encodes them into its links. The tests check every body against the
//! v1.0 CSDL (`lamplighter-graph-csdl`).

use super::entra::Principal;
use super::{Body, Served, Shared, full};
use crate::store::{Store, StoredItem, SyncChange};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Messages per delta page unless `Prefer: odata.maxpagesize` says otherwise.
const DEFAULT_PAGE: usize = 10;
/// The largest page served.
const MAX_PAGE: usize = 1000;

/// The properties of a message when no `$select` names them (Graph's
/// default set: `internetMessageHeaders` only when selected).
const DEFAULT_PROPERTIES: &[&str] = &[
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "body",
    "sender",
    "from",
    "toRecipients",
];

/// The REST id of an EWS id (and back): URL-safe base64 of the same bytes.
pub(super) fn rest_id(ews: &str) -> String {
    ews.replace('+', "-").replace('/', "_")
}

fn ews_id(rest: &str) -> String {
    rest.replace('-', "+").replace('_', "/")
}

pub(super) fn graph_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": crate::store::now_iso().trim_end_matches('Z'),
                "request-id": request_id(),
                "client-request-id": request_id(),
            }
        }
    });
    let mut r = full(status, body.to_string());
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

fn request_id() -> String {
    use std::hash::{BuildHasher as _, RandomState};
    let a = RandomState::new().hash_one(std::time::Instant::now());
    let b = RandomState::new().hash_one(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a as u32,
        (a >> 32) as u16,
        (a >> 48) as u16 & 0xfff,
        b as u16 & 0xfff,
        b >> 16 & 0xffff_ffff_ffff
    )
}

pub(super) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = full(status, v.to_string());
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static(
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8",
        ),
    );
    r.headers_mut().insert("odata-version", hyper::header::HeaderValue::from_static("4.0"));
    r
}

/// The query's parameters, percent-decoded.
fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_form(k), decode_form(v))
        })
        .collect()
}

/// Percent-decoding with `+` as a space (query strings and forms).
pub(super) fn decode_form(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a request asks for: `$select` and the extended property ids of `$expand`.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Shape {
    select: Option<Vec<String>>,
    expand_props: Vec<String>,
    text_body: bool,
}

impl Shape {
    fn from_query(params: &[(String, String)], text_body: bool) -> Result<Shape, String> {
        let mut shape = Shape { text_body, ..Shape::default() };
        for (k, v) in params {
            match k.as_str() {
                "$select" => {
                    shape.select = Some(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                }
                "$expand" => shape.expand_props = expand_ids(v)?,
                _ => {}
            }
        }
        Ok(shape)
    }
}

/// `singleValueExtendedProperties($filter=id eq 'A' or id eq 'B')` → [A, B].
fn expand_ids(expand: &str) -> Result<Vec<String>, String> {
    let inner =
        expand.trim().strip_prefix("singleValueExtendedProperties(").and_then(|r| r.strip_suffix(')')).ok_or_else(
            || format!("Parsing OData Select and Expand failed: '{expand}' is not an expansion this server serves."),
        )?;
    let filter = inner.trim().strip_prefix("$filter=").ok_or("the expansion needs a $filter on id")?;
    filter
        .split(" or ")
        .map(|c| {
            c.trim()
                .strip_prefix("id eq '")
                .and_then(|r| r.strip_suffix('\''))
                .map(str::to_string)
                .ok_or_else(|| format!("unsupported filter clause '{c}'"))
        })
        .collect()
}

/// `"String 0x001A"` → (`string`, 0x1a).
fn tag(id: &str) -> Option<(String, u32)> {
    let (kind, t) = id.trim().split_once(' ')?;
    Some((kind.to_ascii_lowercase(), u32::from_str_radix(t.trim().strip_prefix("0x")?, 16).ok()?))
}

fn prop_value(item: &StoredItem, id: &str) -> Option<String> {
    let um = &item.data.um;
    match tag(id)? {
        (k, 0x001a) if k == "string" => Some(item.data.item_class.clone()),
        (k, 0x6801) if k == "integer" => um.duration_secs.map(|d| d.to_string()),
        (k, 0x6802) if k == "string" => um.caller_number.clone(),
        (k, 0x6803) if k == "string" => um.caller_name.clone(),
        (k, 0x6805) if k == "string" => um.attachment_order.clone(),
        (k, 0x6806) if k == "string" => um.call_id.clone(),
        _ => None,
    }
}

fn recipient(name: Option<&str>, address: Option<&str>) -> Value {
    json!({ "emailAddress": { "name": name, "address": address } })
}

/// A message as Graph writes it, cut to `shape`.
fn message(item: &StoredItem, shape: &Shape) -> Value {
    let d = &item.data;
    let text = d.body_text.clone().unwrap_or_default();
    let body = if shape.text_body {
        json!({ "contentType": "text", "content": text })
    } else {
        let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        json!({ "contentType": "html", "content": format!("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body><p>{escaped}</p></body></html>") })
    };
    let from = recipient(d.from_name.as_deref(), d.from_email.as_deref());
    let importance = match d.importance.to_ascii_lowercase().as_str() {
        "high" => "high",
        "low" => "low",
        _ => "normal",
    };
    let all: Vec<(&str, Value)> = vec![
        ("id", json!(rest_id(&item.id))),
        ("createdDateTime", json!(item.received)),
        ("lastModifiedDateTime", json!(item.received)),
        ("changeKey", json!(item.change_key())),
        ("categories", json!([])),
        ("receivedDateTime", json!(item.received)),
        ("sentDateTime", json!(item.received)),
        ("hasAttachments", json!(!item.attachments.is_empty())),
        ("internetMessageId", json!(format!("<{}@lamplighter.sim>", &item.id[item.id.len().saturating_sub(12)..]))),
        ("subject", json!(d.subject)),
        ("bodyPreview", json!(text.chars().take(255).collect::<String>())),
        ("importance", json!(importance)),
        ("parentFolderId", json!(rest_id(&item.folder))),
        ("conversationId", json!(rest_id(&format!("AAQkAGConv{}", &item.id[item.id.len().saturating_sub(10)..])))),
        ("isDeliveryReceiptRequested", json!(false)),
        ("isReadReceiptRequested", json!(false)),
        ("isRead", json!(d.is_read)),
        ("isDraft", json!(false)),
        ("body", body),
        ("sender", from.clone()),
        ("from", from),
        ("toRecipients", json!([])),
        (
            "internetMessageHeaders",
            Value::Array(d.headers.iter().map(|(n, v)| json!({ "name": n, "value": v })).collect()),
        ),
    ];
    let mut o = Map::new();
    o.insert("@odata.type".into(), json!("#microsoft.graph.message"));
    o.insert("@odata.etag".into(), json!(format!("W/\"{}\"", item.change_key())));
    for (name, v) in all {
        let wanted = match &shape.select {
            Some(sel) => name == "id" || sel.iter().any(|s| s == name),
            None => DEFAULT_PROPERTIES.contains(&name),
        };
        if wanted {
            o.insert(name.into(), v);
        }
    }
    if !shape.expand_props.is_empty() {
        let props: Vec<Value> = shape
            .expand_props
            .iter()
            .filter_map(|id| prop_value(item, id).map(|v| json!({ "id": id, "value": v })))
            .collect();
        o.insert("singleValueExtendedProperties".into(), Value::Array(props));
    }
    Value::Object(o)
}

/// The delta token: the store's sync state and the round's shape.
#[derive(serde::Serialize, serde::Deserialize)]
struct Token {
    state: String,
    #[serde(flatten)]
    shape: Shape,
}

fn encode_token(state: &str, shape: &Shape) -> String {
    let t = Token { state: state.to_string(), shape: shape.clone() };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&t).unwrap_or_default())
}

fn decode_token(t: &str) -> Option<Token> {
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.trim()).ok()?).ok()
}

/// A mail folder as the Graph face shows it (ids in REST form).
struct SimFolder {
    id: String,
    name: String,
    parent: String,
}

/// The well-known names of Graph that this mailbox has, with their EWS names.
const WELL_KNOWN: &[&str] = &["inbox", "drafts", "sentitems", "deleteditems", "msgfolderroot"];

/// Graph's other well-known names: real names, folders this mailbox lacks.
const WELL_KNOWN_ABSENT: &[&str] = &[
    "archive",
    "clutter",
    "conflicts",
    "conversationhistory",
    "junkemail",
    "localfailures",
    "outbox",
    "recoverableitemsdeletions",
    "scheduled",
    "searchfolders",
    "serverfailures",
    "syncissues",
];

fn folder_not_found() -> Response<Body> {
    graph_error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.")
}

/// The folder a path segment names: a well-known name, or a folder's id.
/// A name Graph does not know (`voicemail`) is a malformed id, as on Graph;
/// an id of a folder that is gone is not found.
#[allow(clippy::result_large_err)]
fn resolve_folder(store: &Store, seg: &str) -> Result<SimFolder, Response<Body>> {
    let lower = seg.to_ascii_lowercase();
    let well_known = crate::folders::FOLDERS.iter().find(|f| {
        (WELL_KNOWN.contains(&lower.as_str()) && f.name == lower)
            || (f.id == ews_id(seg) && WELL_KNOWN.contains(&f.name))
    });
    if let Some(f) = well_known {
        let parent = f
            .parent
            .and_then(|p| crate::folders::FOLDERS.iter().find(|x| x.name == p))
            .map(|p| rest_id(p.id))
            .unwrap_or_default();
        return Ok(SimFolder { id: rest_id(f.id), name: f.display.to_string(), parent });
    }
    if let Some(f) = store.user_folders().iter().find(|f| f.id == ews_id(seg)) {
        return Ok(SimFolder { id: rest_id(&f.id), name: f.name.clone(), parent: rest_id(&f.parent) });
    }
    if WELL_KNOWN_ABSENT.contains(&lower.as_str())
        || base64::engine::general_purpose::STANDARD.decode(ews_id(seg)).is_ok_and(|b| b.len() >= 16)
    {
        return Err(folder_not_found());
    }
    Err(graph_error(StatusCode::BAD_REQUEST, "ErrorInvalidIdMalformed", "Id is malformed."))
}

/// The mail folders directly under the folder with REST id `parent`.
fn children(store: &Store, parent: &str) -> Vec<SimFolder> {
    let mut out: Vec<SimFolder> = crate::folders::FOLDERS
        .iter()
        .filter(|f| WELL_KNOWN.contains(&f.name) && f.name != "msgfolderroot")
        .filter(|f| {
            f.parent.and_then(|p| crate::folders::FOLDERS.iter().find(|x| x.name == p)).map(|p| rest_id(p.id))
                == Some(parent.to_string())
        })
        .map(|f| SimFolder { id: rest_id(f.id), name: f.display.to_string(), parent: parent.to_string() })
        .collect();
    out.extend(store.user_folders().iter().filter(|f| rest_id(&f.parent) == parent).map(|f| SimFolder {
        id: rest_id(&f.id),
        name: f.name.clone(),
        parent: parent.to_string(),
    }));
    out
}

/// A `mailFolder` as Graph writes it, cut to the request's `$select`.
fn folder_json(store: &Store, f: &SimFolder, ask: &Ask<'_>) -> Value {
    let items = store.items_in(&ews_id(&f.id));
    let unread = items.iter().filter(|i| !i.data.is_read).count();
    let all = json!({
        "id": f.id,
        "displayName": f.name,
        "parentFolderId": f.parent,
        "childFolderCount": children(store, &f.id).len(),
        "unreadItemCount": unread,
        "totalItemCount": items.len(),
        "isHidden": false,
    });
    let select: Option<Vec<&str>> =
        ask.params.iter().find(|(k, _)| k == "$select").map(|(_, v)| v.split(',').map(str::trim).collect());
    match (select, all) {
        (Some(sel), Value::Object(o)) => {
            Value::Object(o.into_iter().filter(|(k, _)| k == "id" || sel.contains(&k.as_str())).collect())
        }
        (_, v) => v,
    }
}

/// Folders this many to a page unless `$top` says otherwise (Graph's default).
const FOLDER_PAGE: usize = 10;

/// A page of folders, by `$top` and `$skip` as Graph pages them.
fn folder_page(store: &Store, root: &str, ask: &Ask<'_>, list: Vec<SimFolder>, path: &str) -> Response<Body> {
    let num = |name: &str| ask.params.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse::<usize>().ok());
    let top = num("$top").unwrap_or(FOLDER_PAGE).clamp(1, MAX_PAGE);
    let skip = num("$skip").unwrap_or(0);
    let total = list.len();
    let value: Vec<Value> = list.iter().skip(skip).take(top).map(|f| folder_json(store, f, ask)).collect();
    let mut body = json!({
        "@odata.context": format!("{root}/$metadata#users('me')/mailFolders"),
        "value": value,
    });
    if skip + top < total {
        let select = ask
            .params
            .iter()
            .find(|(k, _)| k == "$select")
            .map(|(_, v)| format!("&$select={}", v.replace(' ', "")))
            .unwrap_or_default();
        body["@odata.nextLink"] = json!(format!("{root}/{path}?$top={top}&$skip={}{select}", skip + top));
    }
    json_response(StatusCode::OK, &body)
}

pub(super) struct Ask<'a> {
    pub(super) method: &'a Method,
    pub(super) path: &'a str,
    pub(super) params: Vec<(String, String)>,
    pub(super) prefer: &'a str,
    pub(super) body: &'a [u8],
    /// Whose token it is.
    pub(super) principal: &'a Principal,
}

/// Percent-decoding of a path segment (`+` stays).
fn decode_segment(s: &str) -> String {
    super::graph::decode_form(&s.replace('+', "%2B"))
}

fn access_denied() -> Response<Body> {
    graph_error(StatusCode::FORBIDDEN, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
}

/// The mailbox a request's owner segment names and how links name it:
/// `/me` (delegated tokens only) is the primary mailbox; `/users/{id}` is
/// any mailbox an app's permissions and RBAC scope cover (a delegated token
/// only its own). Graph's answers otherwise.
#[allow(clippy::result_large_err)]
pub(super) fn owner(
    all: &crate::mailboxes::Mailboxes,
    primary: &str,
    ask: &Ask<'_>,
    segments: &[&str],
) -> Result<(String, String), Response<Body>> {
    let writes = ask.method != Method::GET;
    match (segments.first().map(|s| s.to_ascii_lowercase()).as_deref(), ask.principal) {
        (Some("me"), Principal::User) => Ok((crate::mailboxes::key(primary), "me".into())),
        (Some("me"), Principal::App { .. }) => Err(graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        )),
        (Some("users"), p) if segments.len() > 1 => {
            let id = decode_segment(segments[1]);
            let key = crate::mailboxes::key(&id);
            match p {
                Principal::User if key != crate::mailboxes::key(primary) => return Err(access_denied()),
                Principal::User => {}
                Principal::App { roles, mailboxes, .. } => {
                    let may = roles.iter().any(|r| r == "Mail.ReadWrite" || (r == "Mail.Read" && !writes));
                    if !may {
                        return Err(access_denied());
                    }
                    if all.mailbox(&key).is_none() {
                        return Err(graph_error(
                            StatusCode::NOT_FOUND,
                            "ErrorInvalidUser",
                            &format!("The requested user '{id}' is invalid."),
                        ));
                    }
                    // RBAC for Applications: outside the app's management scope
                    if mailboxes.as_ref().is_some_and(|m| !m.contains(&key)) {
                        return Err(access_denied());
                    }
                }
            }
            if all.mailbox(&key).is_none() {
                return Err(access_denied());
            }
            Ok((key, format!("users('{id}')")))
        }
        _ => Err(graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Resource not found for the segment '{}'.", segments.first().unwrap_or(&"")),
        )),
    }
}

/// Serves one Graph request (authentication and injections done by [`serve`]).
fn route(shared: &Shared, root: &str, ask: &Ask<'_>) -> Response<Body> {
    // `mailFolders('inbox')` is `mailFolders/inbox` in OData's key syntax
    let mut segments: Vec<&str> = ask
        .path
        .trim_matches('/')
        .split('/')
        .flat_map(|seg| match seg.split_once("('") {
            Some((name, key)) if seg.ends_with("')") => vec![name, &key[..key.len() - 2]],
            _ => vec![seg],
        })
        .collect();
    let text_body = ask.prefer.contains("outlook.body-content-type=\"text\"");
    let shape = match Shape::from_query(&ask.params, text_body) {
        Ok(s) => s,
        Err(e) => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", &e),
    };
    if segments.first() == Some(&"$batch") {
        return match ask.method {
            &Method::POST => batch(shared, root, ask.body, ask.principal),
            _ => graph_error(StatusCode::METHOD_NOT_ALLOWED, "BadRequest", "A batch is POSTed."),
        };
    }
    if segments.first().is_some_and(|s| s.eq_ignore_ascii_case("subscriptions")) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Subscriptions are not served inside a $batch here.",
        );
    }
    let primary = shared.config.lock().unwrap_or_else(|p| p.into_inner()).email.clone();
    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let (mailbox, owner_path) = match owner(&all, &primary, ask, &segments) {
        Ok(o) => o,
        Err(r) => return r,
    };
    // the rest of the path as under /me, so the arms below index alike
    if segments[0].eq_ignore_ascii_case("users") {
        segments.remove(0);
        segments[0] = "me";
    }
    let store = all.mailbox_mut(&mailbox).expect("resolved");
    let owner = owner_path.as_str();
    let lower: Vec<String> = segments.iter().map(|s| s.to_ascii_lowercase()).collect();
    let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
    match (ask.method, lower.as_slice()) {
        (&Method::GET, ["me", "mailfolders"]) => {
            let list = children(store, &rest_id(crate::folders::TOP_ID));
            folder_page(store, root, ask, list, &format!("{owner}/mailFolders"))
        }
        (&Method::GET, ["me", "mailfolders", _, "childfolders"]) => match resolve_folder(store, segments[2]) {
            Ok(f) => {
                let list = children(store, &f.id);
                let path = format!("{owner}/mailFolders('{}')/childFolders", f.id);
                folder_page(store, root, ask, list, &path)
            }
            Err(r) => r,
        },
        (&Method::GET, ["me", "mailfolders", _, "messages", "delta" | "delta()"]) => {
            match resolve_folder(store, segments[2]) {
                // the link names the folder as the request did (ids are case-sensitive)
                Ok(folder) => delta(
                    store,
                    root,
                    ask,
                    shape,
                    &ews_id(&folder.id),
                    &format!("{owner}/mailFolders('{}')", segments[2]),
                ),
                Err(r) => r,
            }
        }
        (&Method::GET, ["me", "mailfolders", _]) => match resolve_folder(store, segments[2]) {
            Ok(f) => {
                let mut v = folder_json(store, &f, ask);
                v["@odata.context"] = json!(format!("{root}/$metadata#users('me')/mailFolders/$entity"));
                json_response(StatusCode::OK, &v)
            }
            Err(r) => r,
        },
        (&Method::GET, ["me", "messages", _]) | (&Method::GET, ["me", "mailfolders", _, "messages", _]) => {
            let id = ews_id(segments[segments.len() - 1]);
            match store.get(&id) {
                Some(item) => {
                    let mut m = message(item, &shape);
                    m["@odata.context"] = json!(format!("{root}/$metadata#users('me')/messages/$entity"));
                    json_response(StatusCode::OK, &m)
                }
                None => not_found(),
            }
        }
        (&Method::PATCH, ["me", "messages", _]) => {
            let id = ews_id(segments[2]);
            let patch: Map<String, Value> = match serde_json::from_slice(ask.body) {
                Ok(Value::Object(o)) => o,
                _ => {
                    return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Empty Payload. JSON content expected.");
                }
            };
            if let Some(k) = patch.keys().find(|k| k.as_str() != "isRead") {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    "ErrorInvalidProperty",
                    &format!("The property '{k}' cannot be changed on this server (only isRead)."),
                );
            }
            let Some(read) = patch.get("isRead").and_then(Value::as_bool) else {
                return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "isRead must be true or false.");
            };
            if !store.set_read(&id, read) {
                return not_found();
            }
            shared.changed.send_modify(|v| *v += 1);
            let item = store.get(&id).expect("just set");
            let mut m = message(item, &shape);
            m["@odata.context"] = json!(format!("{root}/$metadata#users('me')/messages/$entity"));
            json_response(StatusCode::OK, &m)
        }
        (&Method::GET, ["me", "messages", _, "attachments"]) => {
            let id = ews_id(segments[2]);
            let Some(item) = store.get(&id) else { return not_found() };
            let value: Vec<Value> = item.attachments.iter().map(|a| attachment(item, a, false)).collect();
            json_response(
                StatusCode::OK,
                &json!({ "@odata.context": format!("{root}/$metadata#users('me')/messages('{}')/attachments", segments[2]), "value": value }),
            )
        }
        (&Method::GET, ["me", "messages", _, "attachments", _]) => {
            let (id, aid) = (ews_id(segments[2]), ews_id(segments[4]));
            match store.attachment_of(&aid) {
                Some((item, a)) if item.id == id => {
                    let mut v = attachment(item, a, true);
                    v["@odata.context"] =
                        json!(format!("{root}/$metadata#users('me')/messages('{}')/attachments/$entity", segments[2]));
                    json_response(StatusCode::OK, &v)
                }
                _ => not_found(),
            }
        }
        (&Method::GET, ["me", "messages", _, "attachments", _, "$value"]) => {
            let (id, aid) = (ews_id(segments[2]), ews_id(segments[4]));
            match store.attachment_of(&aid) {
                Some((item, a)) if item.id == id => {
                    let mut r = full(StatusCode::OK, Bytes::from(a.data.as_ref().clone()));
                    if let Ok(ct) = a.content_type.parse() {
                        r.headers_mut().insert("content-type", ct);
                    }
                    r
                }
                _ => not_found(),
            }
        }
        _ => graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("Resource not found for the segment '{}'.", segments.last().unwrap_or(&"")),
        ),
    }
}

fn not_found() -> Response<Body> {
    graph_error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.")
}

fn attachment(item: &StoredItem, a: &crate::store::StoredAttachment, bytes: bool) -> Value {
    let mut v = json!({
        "@odata.type": "#microsoft.graph.fileAttachment",
        "@odata.mediaContentType": a.content_type,
        "id": rest_id(&a.id),
        "lastModifiedDateTime": item.received,
        "name": a.name,
        "contentType": a.content_type,
        "size": a.data.len(),
        "isInline": false,
    });
    if bytes {
        v["contentId"] = Value::Null;
        v["contentLocation"] = Value::Null;
        v["contentBytes"] = json!(base64::engine::general_purpose::STANDARD.encode(a.data.as_slice()));
    }
    v
}

fn delta(store: &Store, root: &str, ask: &Ask<'_>, shape: Shape, folder_id: &str, folder: &str) -> Response<Body> {
    let token = ask.params.iter().find(|(k, _)| k == "$skiptoken" || k == "$deltatoken").map(|(_, v)| v.as_str());
    let (state, shape) = match token {
        None => (None, shape),
        Some(t) => match decode_token(t) {
            // the round's shape travels in the token, as Graph encodes it
            Some(tok) => (Some(tok.state), Shape { text_body: shape.text_body, ..tok.shape }),
            None => return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "The delta token is malformed."),
        },
    };
    if ask.params.iter().any(|(k, _)| k == "changeType" || k == "$search" || k == "$filter" || k == "$orderby") {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "This server serves delta without changeType, $filter, $orderby or $search.",
        );
    }
    let page = ask
        .prefer
        .split(',')
        .find_map(|p| p.trim().strip_prefix("odata.maxpagesize=").and_then(|n| n.trim().parse::<usize>().ok()))
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, MAX_PAGE);
    let result = match store.sync_folder(folder_id, state.as_deref(), page) {
        Ok(r) => r,
        Err(_) => {
            return graph_error(
                StatusCode::GONE,
                "syncStateNotFound",
                "The sync state generation is not found. Please start a new sync.",
            );
        }
    };
    let value: Vec<Value> = result
        .changes
        .iter()
        .map(|c| match c {
            SyncChange::Create(i) | SyncChange::Update(i) | SyncChange::ReadFlag(i) => message(i, &shape),
            SyncChange::Delete(id, _) => json!({
                "@odata.type": "#microsoft.graph.message",
                "id": rest_id(id),
                "@removed": { "reason": "deleted" },
            }),
        })
        .collect();
    let link_kind = if result.includes_last { "$deltatoken" } else { "$skiptoken" };
    let link = format!("{root}/{folder}/messages/delta?{link_kind}={}", encode_token(&result.state, &shape));
    let mut body = json!({
        "@odata.context": format!("{root}/$metadata#Collection(message)"),
        "value": value,
    });
    body[if result.includes_last { "@odata.deltaLink" } else { "@odata.nextLink" }] = json!(link);
    let mut r = json_response(StatusCode::OK, &body);
    if ask.prefer.contains("odata.maxpagesize") || text_pref(ask.prefer) {
        let mut applied = Vec::new();
        if ask.prefer.contains("odata.maxpagesize") {
            applied.push(format!("odata.maxpagesize={page}"));
        }
        if text_pref(ask.prefer) {
            applied.push("outlook.body-content-type=\"text\"".to_string());
        }
        if let Ok(v) = applied.join(", ").parse() {
            r.headers_mut().insert("preference-applied", v);
        }
    }
    r
}

fn text_pref(prefer: &str) -> bool {
    prefer.contains("outlook.body-content-type=\"text\"")
}

fn batch(shared: &Shared, root: &str, body: &[u8], principal: &Principal) -> Response<Body> {
    let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(body) else {
        return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid batch payload format.");
    };
    let Some(requests) = o.get("requests").and_then(Value::as_array) else {
        return graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Invalid batch payload format.");
    };
    if requests.is_empty() || requests.len() > 20 {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The batch request should contain between 1 and 20 requests.",
        );
    }
    let mut seen = std::collections::HashSet::new();
    let mut responses = Vec::new();
    for r in requests {
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        let method = r.get("method").and_then(Value::as_str).unwrap_or_default().to_ascii_uppercase();
        let url = r.get("url").and_then(Value::as_str).unwrap_or_default().to_string();
        if id.is_empty() || !seen.insert(id.clone()) || url.is_empty() {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Each request of a batch needs a unique id and a url.",
            );
        }
        let prefer =
            r.pointer("/headers/Prefer").or_else(|| r.pointer("/headers/prefer")).and_then(Value::as_str).unwrap_or("");
        let inner_body = r.get("body").map(|b| b.to_string()).unwrap_or_default();
        let (path, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        let path = path.strip_prefix("/v1.0").unwrap_or(path);
        let ask =
            Ask { method: &method, path, params: query_params(query), prefer, body: inner_body.as_bytes(), principal };
        // a batch inside a batch is refused, as Graph does
        let answer = if path.trim_matches('/') == "$batch" {
            graph_error(StatusCode::BAD_REQUEST, "BadRequest", "Nested batch requests are not supported.")
        } else {
            route(shared, root, &ask)
        };
        let status = answer.status().as_u16();
        let headers: Map<String, Value> = answer
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_string(), json!(v))))
            .collect();
        let bytes = futures_body(answer);
        let body = serde_json::from_slice::<Value>(&bytes).ok();
        let mut entry = json!({ "id": id, "status": status, "headers": headers });
        if let Some(b) = body {
            entry["body"] = b;
        } else if !bytes.is_empty() {
            entry["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&bytes));
        }
        responses.push(entry);
    }
    json_response(StatusCode::OK, &json!({ "responses": responses }))
}

/// The bytes of a response built by [`full`] (always complete at once).
fn futures_body(r: Response<Body>) -> Bytes {
    use std::future::Future as _;
    let mut fut = std::pin::pin!(r.into_body().collect());
    let waker = std::task::Waker::noop();
    match fut.as_mut().poll(&mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(Ok(c)) => c.to_bytes(),
        _ => Bytes::new(),
    }
}

/// Serves a request under `/v1.0`: its bearer token first, then the
/// injected failures and throttling, then the operation.
pub(super) async fn serve(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let prefer: String =
        req.headers().get_all("prefer").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(", ");
    let body = match http_body_util::Limited::new(req.into_body(), 4 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return graph_error(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", "The request is over 4 MiB.");
        }
    };
    let op = format!("graph {method} {}", path.trim_start_matches("/v1.0"));
    let log = |status: u16| {
        shared.served.lock().unwrap_or_else(|p| p.into_inner()).push(Served {
            op: op.clone(),
            status,
            schema_valid: true,
            anchor: false,
            cookie: false,
            mailbox: String::new(),
            anchor_mailbox: None,
            ids: 0,
        });
    };
    let token = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
    let verdict = token.map(|t| super::token_verdict(&shared, t));
    if verdict != Some(Some(true)) {
        shared.auth_failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let (code, message) = match verdict {
            None => ("InvalidAuthenticationToken", "Access token is empty."),
            Some(Some(false)) => ("InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."),
            Some(_) => ("InvalidAuthenticationToken", "IDX14100: JWT is not well formed, there are no dots (.)."),
        };
        let mut r = graph_error(StatusCode::UNAUTHORIZED, code, message);
        r.headers_mut().insert(
            "www-authenticate",
            hyper::header::HeaderValue::from_static(
                "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\", error=\"invalid_token\"",
            ),
        );
        log(401);
        return r;
    }
    {
        let mut f = shared.http_failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.0 > 0 {
            f.0 -= 1;
            let status = StatusCode::from_u16(f.1).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            log(status.as_u16());
            return graph_error(
                status,
                "ServiceUnavailable",
                "The service is temporarily unavailable (injected by the simulator).",
            );
        }
    }
    {
        let mut t = shared.throttle.lock().unwrap_or_else(|p| p.into_inner());
        if t.0 > 0 {
            t.0 -= 1;
            let secs = t.1.div_ceil(1000).max(1);
            let mut r = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "ApplicationThrottled",
                "Application is over its MailboxConcurrency limit.",
            );
            if let Ok(v) = secs.to_string().parse() {
                r.headers_mut().insert("retry-after", v);
            }
            log(429);
            return r;
        }
    }
    let principal = token
        .and_then(|t| shared.entra.lock().unwrap_or_else(|p| p.into_inner()).principal(t, std::time::Instant::now()))
        .unwrap_or(Principal::User);
    let root = format!("{}/v1.0", shared.base_url);
    let inner = path.strip_prefix("/v1.0").unwrap_or(&path).to_string();
    if inner.trim_start_matches('/').to_ascii_lowercase().starts_with("subscriptions") {
        let r = super::graph_push::serve(shared.clone(), &root, &method, &inner, &body, &principal).await;
        log(r.status().as_u16());
        return r;
    }
    let ask = Ask {
        method: &method,
        path: &inner,
        params: query_params(&query),
        prefer: &prefer,
        body: &body,
        principal: &principal,
    };
    let r = route(&shared, &root, &ask);
    log(r.status().as_u16());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansions_and_ids() {
        assert_eq!(
            expand_ids("singleValueExtendedProperties($filter=id eq 'String 0x001A' or id eq 'Integer 0x6801')"),
            Ok(vec!["String 0x001A".to_string(), "Integer 0x6801".to_string()])
        );
        assert!(expand_ids("attachments").is_err());
        assert_eq!(ews_id(&rest_id("AAMk+a/b==")), "AAMk+a/b==");
        assert_eq!(decode_form("id%20eq%20'x'"), "id eq 'x'");
        let t = encode_token("state", &Shape { select: Some(vec!["isRead".into()]), ..Shape::default() });
        assert_eq!(decode_token(&t).map(|t| t.state), Some("state".into()));
        assert!(decode_token("!!").is_none());
    }
}
