//! JSON `$batch` (`POST /$batch`): up to 20 requests in one round trip, each
//! answered on its own with its status, headers and body. Used where many
//! small requests would otherwise go one by one (marking several voicemails
//! heard, listing attachments of a page of voicemails).

use crate::{WireError, check_size};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Graph takes at most this many requests in one batch.
pub const MAX_REQUESTS: usize = 20;

/// One request in a batch; `url` is relative to the service root (`/me/…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    pub id: String,
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

/// One answer in a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    pub id: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct Requests {
    requests: Vec<BatchRequest>,
}

#[derive(Serialize, Deserialize)]
struct Responses {
    responses: Vec<BatchResponse>,
}

/// The body of a batch; refused over [`MAX_REQUESTS`] or with repeated ids.
pub fn batch_body(requests: &[BatchRequest]) -> Result<String, WireError> {
    if requests.is_empty() || requests.len() > MAX_REQUESTS {
        return Err(WireError::Malformed(format!(
            "a batch takes 1 to {MAX_REQUESTS} requests, not {}",
            requests.len()
        )));
    }
    let mut ids: Vec<&str> = requests.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(WireError::Malformed("two requests of a batch share an id".into()));
    }
    serde_json::to_string(&Requests { requests: requests.to_vec() }).map_err(|e| WireError::Json(e.to_string()))
}

/// Reads a batch's answer (in any order, as Graph sends them).
pub fn parse_batch(body: &[u8]) -> Result<Vec<BatchResponse>, WireError> {
    check_size(body)?;
    Ok(serde_json::from_slice::<Responses>(body).map_err(|e| WireError::Json(e.to_string()))?.responses)
}

/// Reads the requests of a batch (the simulator's side).
pub fn parse_batch_requests(body: &[u8]) -> Result<Vec<BatchRequest>, WireError> {
    check_size(body)?;
    let r = serde_json::from_slice::<Requests>(body).map_err(|e| WireError::Json(e.to_string()))?.requests;
    batch_body(&r)?;
    Ok(r)
}

/// The body of a batch's answer (the simulator's side).
pub fn batch_answer(responses: &[BatchResponse]) -> String {
    serde_json::to_string(&Responses { responses: responses.to_vec() }).unwrap_or_else(|_| r#"{"responses":[]}"#.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(id: &str) -> BatchRequest {
        BatchRequest { id: id.into(), method: "GET".into(), url: "/me".into(), headers: BTreeMap::new(), body: None }
    }

    #[test]
    fn batches_are_bounded_and_ids_unique() {
        assert!(batch_body(&[]).is_err());
        assert!(batch_body(&[get("1"), get("1")]).is_err());
        let many: Vec<_> = (0..21).map(|i| get(&i.to_string())).collect();
        assert!(batch_body(&many).is_err());
        let body = batch_body(&[get("1"), get("2")]).expect("body");
        assert_eq!(parse_batch_requests(body.as_bytes()).expect("back").len(), 2);
        let answer = br#"{"responses":[{"id":"2","status":404,"body":{"error":{"code":"ErrorItemNotFound","message":"x"}}},{"id":"1","status":200,"headers":{"Content-Type":"application/json"},"body":{"id":"m"}}]}"#;
        let r = parse_batch(answer).expect("answer");
        assert_eq!(r.iter().map(|r| (r.id.as_str(), r.status)).collect::<Vec<_>>(), [("2", 404), ("1", 200)]);
    }
}
