//! The simulator's control interface: a small HTTP API on loopback, so an
//! administrator, a shell script or a test in another language can drive a
//! running simulator (deposit a voicemail or a missed call, mark read,
//! delete, drop streams, restart, throttle, fail requests, hang an
//! operation) the way the Rust tests drive it in process.
//!
//! Every request carries `Authorization: Bearer <token>`; the token is made
//! at start and handed to the caller (the binary writes it, with the URL,
//! to a file only its user can read). Bodies are JSON; answers are JSON,
//! `{"error": "…"}` with 400/401/404 when something is wrong. Nothing
//! changes on a bad request.
//!
//! | method, path | body | answer |
//! |---|---|---|
//! | `GET /items` | | `[{"id","class","read"}]` |
//! | `POST /voicemail` | `{"from", "name"?, "duration_secs"?, "urgent"?, "read"?, "audio_base64"?, "audio_name"?, "content_type"?, "transcription"?}` | `{"id"}` |
//! | `POST /missed-call` | `{"from", "name"?, "headers"?: [[name, value]], "call_id"?}` | `{"id"}` |
//! | `POST /read` | `{"id", "read"}` | `{}` |
//! | `POST /delete` | `{"id"}` | `{}` |
//! | `POST /free-busy` | | `{"id"}` (the calendar item's) |
//! | `POST /drop-streams`, `POST /restart` | | `{}` |
//! | `POST /throttle` | `{"calls", "back_off_ms", "in_body"?}` | `{}` |
//! | `POST /fail` | `{"calls", "status"}` | `{}` |
//! | `POST /fail-streams` | `{"calls"}` | `{}` |
//! | `POST /hang` | `{"operation"}` | `{}` |

use crate::{MissedCall, SimError, Simulator, Voicemail};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A running control interface.
#[derive(Debug, Clone)]
pub struct Control {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// The bearer token every request must carry.
    pub token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewVoicemail {
    from: String,
    name: Option<String>,
    #[serde(default)]
    duration_secs: u32,
    #[serde(default)]
    urgent: bool,
    #[serde(default)]
    read: bool,
    audio_base64: Option<String>,
    audio_name: Option<String>,
    content_type: Option<String>,
    transcription: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMissedCall {
    from: String,
    name: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    call_id: Option<String>,
}

#[derive(Deserialize)]
struct ReadFlag {
    id: String,
    read: bool,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct Throttle {
    calls: u32,
    back_off_ms: u64,
    #[serde(default)]
    in_body: bool,
}

#[derive(Deserialize)]
struct Fail {
    calls: u32,
    status: u16,
}

#[derive(Deserialize)]
struct Calls {
    calls: u32,
}

#[derive(Deserialize)]
struct Operation {
    operation: String,
}

type Answer = (StatusCode, Value);

fn bad(why: impl std::fmt::Display) -> Answer {
    (StatusCode::BAD_REQUEST, json!({ "error": why.to_string() }))
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Answer> {
    serde_json::from_slice(body).map_err(|e| bad(format!("the body is not what this call takes: {e}")))
}

fn act(sim: &Simulator, method: &hyper::Method, path: &str, body: &[u8]) -> Result<Answer, Answer> {
    let done = || (StatusCode::OK, json!({}));
    Ok(match (method.as_str(), path) {
        ("GET", "/items") => {
            let items: Vec<Value> = sim
                .items()
                .into_iter()
                .map(|(id, class, read)| json!({"id": id, "class": class, "read": read}))
                .collect();
            (StatusCode::OK, Value::Array(items))
        }
        ("POST", "/voicemail") => {
            let v: NewVoicemail = parse(body)?;
            if v.from.trim().is_empty() {
                return Err(bad("\"from\" is empty"));
            }
            let audio = match v.audio_base64 {
                None => None,
                Some(b) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .map_err(|e| bad(format!("audio_base64: {e}")))?;
                    Some((
                        v.audio_name.unwrap_or_else(|| "audio.wav".into()),
                        v.content_type.unwrap_or_else(|| "audio/wav".into()),
                        bytes,
                    ))
                }
            };
            let id = sim.deposit_voicemail(Voicemail {
                caller_number: v.from,
                caller_name: v.name,
                duration_secs: v.duration_secs,
                urgent: v.urgent,
                is_read: v.read,
                audio,
                transcription: v.transcription,
                ..Voicemail::default()
            });
            (StatusCode::OK, json!({ "id": id }))
        }
        ("POST", "/missed-call") => {
            let m: NewMissedCall = parse(body)?;
            if m.from.trim().is_empty() {
                return Err(bad("\"from\" is empty"));
            }
            if let Some((name, _)) = m
                .headers
                .iter()
                .find(|(n, v)| n.is_empty() || n.contains([':', '\r', '\n', ' ']) || v.contains(['\r', '\n']))
            {
                return Err(bad(format!("header {name:?} is not a header name with a one-line value")));
            }
            let id = sim.deposit_missed_call(MissedCall {
                caller_number: m.from,
                caller_name: m.name,
                headers: m.headers,
                call_id: m.call_id,
                ..MissedCall::default()
            });
            (StatusCode::OK, json!({ "id": id }))
        }
        ("POST", "/read") => {
            let r: ReadFlag = parse(body)?;
            if !sim.set_read(&r.id, r.read) {
                return Err((StatusCode::NOT_FOUND, json!({ "error": format!("no item {}", r.id) })));
            }
            done()
        }
        ("POST", "/delete") => {
            let r: Id = parse(body)?;
            if !sim.delete(&r.id) {
                return Err((StatusCode::NOT_FOUND, json!({ "error": format!("no item {}", r.id) })));
            }
            done()
        }
        ("POST", "/free-busy") => (StatusCode::OK, json!({ "id": sim.free_busy_changed() })),
        ("POST", "/drop-streams") => {
            sim.drop_streams();
            done()
        }
        ("POST", "/restart") => {
            sim.restart();
            done()
        }
        ("POST", "/throttle") => {
            let t: Throttle = parse(body)?;
            let back_off = Duration::from_millis(t.back_off_ms);
            if t.in_body {
                sim.throttle_in_body(t.calls, back_off)
            } else {
                sim.throttle(t.calls, back_off)
            }
            done()
        }
        ("POST", "/fail") => {
            let f: Fail = parse(body)?;
            if !(400..=599).contains(&f.status) {
                return Err(bad("status must be an HTTP error, 400 to 599"));
            }
            sim.fail_http(f.calls, f.status);
            done()
        }
        ("POST", "/fail-streams") => {
            let c: Calls = parse(body)?;
            sim.fail_streams(c.calls);
            done()
        }
        ("POST", "/hang") => {
            let o: Operation = parse(body)?;
            sim.hang(&o.operation);
            done()
        }
        _ => return Err((StatusCode::NOT_FOUND, json!({ "error": format!("no {method} {path}") }))),
    })
}

/// Whether `given` is `Bearer <token>`, compared in constant time.
fn authorized(given: Option<&str>, token: &str) -> bool {
    let Some(given) = given.and_then(|g| g.strip_prefix("Bearer ")) else { return false };
    given.len() == token.len() && given.bytes().zip(token.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn handle(sim: Arc<Simulator>, token: Arc<String>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let (status, value) = if !authorized(parts.headers.get("authorization").and_then(|v| v.to_str().ok()), &token) {
        (StatusCode::UNAUTHORIZED, json!({ "error": "give the token: Authorization: Bearer <token>" }))
    } else {
        match http_body_util::Limited::new(body, 16 << 20).collect().await {
            Err(_) => (StatusCode::PAYLOAD_TOO_LARGE, json!({ "error": "the body is over 16 MiB" })),
            Ok(b) => match act(&sim, &parts.method, parts.uri.path(), &b.to_bytes()) {
                Ok(a) | Err(a) => a,
            },
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(value.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    r
}

/// Serves the control interface for `sim` on `addr` (a loopback address).
pub async fn serve(sim: Arc<Simulator>, addr: SocketAddr) -> Result<Control, SimError> {
    if !addr.ip().is_loopback() {
        return Err(SimError::Listen {
            addr,
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the control interface listens on loopback only",
            ),
        });
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| SimError::Listen { addr, source })?;
    let bound = listener.local_addr().map_err(|source| SimError::Listen { addr, source })?;
    let mut raw = [0u8; 24];
    getrandom::getrandom(&mut raw).map_err(|e| SimError::Certificate(format!("no randomness for the token: {e}")))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let shared_token = Arc::new(token.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (sim, token) = (sim.clone(), shared_token.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let (sim, token) = (sim.clone(), token.clone());
                    async move { Ok::<_, std::convert::Infallible>(handle(sim, token, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Control { url: format!("http://{bound}"), token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_is_authorized() {
        assert!(authorized(Some("Bearer abc123"), "abc123"));
        for wrong in [None, Some("abc123"), Some("Bearer abc124"), Some("Bearer abc1234"), Some("bearer abc123")] {
            assert!(!authorized(wrong, "abc123"), "{wrong:?}");
        }
    }
}
