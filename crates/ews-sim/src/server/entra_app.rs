//! The simulator's app-only sign-in: the client credentials grant with a
//! certificate, checked as the Microsoft identity platform checks a
//! confidential client's assertion (RFC 7523) — the app registered, the
//! certificate named by `x5t` (SHA-1) or `x5t#S256` uploaded to it, an RS256
//! signature by that certificate's key, `iss` and `sub` the client id, `aud`
//! the token endpoint, `exp`/`nbf` in time (five minutes of skew), a `jti`
//! never seen before, and the scope `<resource>/.default`.
//!
//! The token it gives carries the app's application permissions (`roles`)
//! and the mailboxes Exchange's RBAC for Applications lets it reach, which
//! the Graph face enforces.

use super::Body;
use super::entra::{Entra, Principal, error, random};
use base64::Engine as _;
use hyper::{Response, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

/// An app registration with a certificate (a confidential client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRegistration {
    pub client_id: String,
    /// The uploaded certificate, PEM.
    pub certificate_pem: String,
    /// Application permissions with admin consent (`Mail.Read`).
    pub roles: Vec<String>,
    /// RBAC for Applications: the mailboxes the app may reach (a management
    /// scope over a group); `None` is every mailbox (no scope assigned).
    pub mailboxes: Option<Vec<String>>,
}

/// The clock skew allowed on `nbf` and `exp`.
const SKEW: Duration = Duration::from_secs(300);

/// `jti`s seen, at most; the oldest expire first.
const MAX_JTIS: usize = 10_000;

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body = pem.split("-----BEGIN CERTIFICATE-----").nth(1)?.split("-----END CERTIFICATE-----").next()?;
    let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(clean).ok()
}

fn invalid(code: u32, description: &str) -> Response<Body> {
    error(StatusCode::UNAUTHORIZED, "invalid_client", code, description)
}

/// `grant_type=client_credentials` at `audience` (this token endpoint's URL).
pub(super) fn client_credentials(
    entra: &mut Entra,
    apps: &[AppRegistration],
    f: &HashMap<String, String>,
    audience: &str,
    lifetime: Duration,
    now: Instant,
) -> Response<Body> {
    let client_id = f.get("client_id").map(String::as_str).unwrap_or("");
    let Some(app) = apps.iter().find(|a| a.client_id == client_id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory 'Contoso'."),
        );
    };
    if f.contains_key("client_secret") {
        return invalid(7000215, "Invalid client secret provided. This application signs in with a certificate.");
    }
    if f.get("client_assertion_type").map(String::as_str) != Some(signin_assertion_type()) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_assertion_type'.",
        );
    }
    let scope = f.get("scope").map(String::as_str).unwrap_or("");
    if !scope.split(' ').any(|s| s.ends_with("/.default")) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            ),
        );
    }
    let assertion = f.get("client_assertion").map(String::as_str).unwrap_or("");
    let parts: Vec<&str> = assertion.split('.').collect();
    let malformed = || invalid(50027, "JWT token is invalid or malformed.");
    let [h, c, s] = parts.as_slice() else { return malformed() };
    let (Some(header), Some(claims), Some(signature)) = (b64(h), b64(c), b64(s)) else { return malformed() };
    let (Ok(header), Ok(claims)) =
        (serde_json::from_slice::<serde_json::Value>(&header), serde_json::from_slice::<serde_json::Value>(&claims))
    else {
        return malformed();
    };
    if header["alg"] != "RS256" && header["alg"] != "PS256" {
        return invalid(5002738, "Invalid JWT token. The signing algorithm must be RS256 or PS256.");
    }
    let Some(der) = pem_der(&app.certificate_pem) else {
        return invalid(700027, "The certificate registered on the application cannot be read.");
    };
    let sha1 = b64url(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der).as_ref());
    let sha256 = b64url(ring::digest::digest(&ring::digest::SHA256, &der).as_ref());
    let named = header["x5t"].as_str() == Some(sha1.as_str()) || header["x5t#S256"].as_str() == Some(sha256.as_str());
    if !named {
        return invalid(
            700027,
            "Client assertion failed signature validation: the certificate with the identifier used to sign it is not registered on the application.",
        );
    }
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return invalid(700027, "The certificate registered on the application cannot be read.");
    };
    let algorithm: &dyn ring::signature::VerificationAlgorithm = if header["alg"] == "PS256" {
        &ring::signature::RSA_PSS_2048_8192_SHA256
    } else {
        &ring::signature::RSA_PKCS1_2048_8192_SHA256
    };
    let key = ring::signature::UnparsedPublicKey::new(algorithm, cert.public_key().subject_public_key.data.as_ref());
    if key.verify(format!("{h}.{c}").as_bytes(), &signature).is_err() {
        return invalid(700027, "Client assertion contains an invalid signature.");
    }
    if claims["iss"] != client_id || claims["sub"] != client_id {
        return invalid(700021, "Client assertion application identifier doesn't match 'client_id' parameter.");
    }
    if claims["aud"] != audience {
        return invalid(
            700016,
            &format!("The audience of the client assertion is not this token endpoint ({audience})."),
        );
    }
    let wall = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
    let (exp, nbf) = (claims["exp"].as_u64(), claims["nbf"].as_u64().unwrap_or(0));
    if exp.is_none_or(|e| e + SKEW.as_secs() < wall) || nbf > wall + SKEW.as_secs() {
        return invalid(700024, "Client assertion is not within its valid time range.");
    }
    let Some(jti) = claims["jti"].as_str().filter(|j| !j.is_empty()) else {
        return invalid(50027, "JWT token is invalid or malformed: it has no jti.");
    };
    entra.jtis.retain(|_, until| *until > now);
    if entra.jtis.contains_key(jti) {
        return invalid(7000272, "The client assertion was already used (its jti was seen before).");
    }
    if entra.jtis.len() >= MAX_JTIS {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "temporarily_unavailable",
            90055,
            "Too many assertions. Try later.",
        );
    }
    let life = Duration::from_secs(exp.unwrap_or(wall).saturating_sub(wall)) + SKEW;
    entra.jtis.insert(jti.to_string(), now + life);
    let access = random(32);
    entra.access.insert(
        access.clone(),
        (
            now + lifetime,
            Principal::App {
                client_id: client_id.to_string(),
                roles: app.roles.clone(),
                mailboxes: app.mailboxes.as_ref().map(|m| m.iter().map(|a| crate::mailboxes::key(a)).collect()),
            },
        ),
    );
    entra.issued += 1;
    let body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": access,
    });
    let mut r = super::full(StatusCode::OK, body.to_string());
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json; charset=utf-8"));
    r.headers_mut().insert("cache-control", hyper::header::HeaderValue::from_static("no-store, no-cache"));
    r
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn signin_assertion_type() -> &'static str {
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
}
