//! The simulator's Microsoft sign-in (an Entra ID-like token service) under
//! `/{tenant}/oauth2/v2.0/`: the device authorization grant (RFC 8628) with
//! Entra's answers — `authorization_pending`, `slow_down` for a client that
//! polls faster than `interval`, `expired_token`, `authorization_declined`
//! — the refresh token grant with rotation (a used refresh token is spent,
//! so a replay is `invalid_grant`), revocation (`revokeSignInSessions`),
//! Conditional Access that blocks device code sign-in (`AADSTS53003`), and
//! errors as Entra writes them (`error`, `error_description` with its
//! `AADSTS` code, `error_codes`, `trace_id`, `timestamp`). A form at
//! `/devicelogin` plays the user's browser step.
//!
//! The authorization code grant with PKCE for native apps (RFC 8252,
//! RFC 7636): `/authorize` plays the user who signs in and consents (or
//! declines, [`EntraConfig::decline_browser`]) and redirects to the app's
//! loopback address — only `http://localhost` or `http://127.0.0.1` with
//! any port, as Entra treats a native app's `http://localhost`
//! registration — and only with an S256 `code_challenge`. The code lives
//! ten minutes, is redeemed once (a replay is `AADSTS54005`), and only with
//! the same client, the same redirect URI and the `code_verifier` whose
//! SHA-256 is the challenge (`AADSTS501481` otherwise).
//!
//! Access tokens it issues are accepted by the Graph face (and EWS with
//! OAuth2) until they expire.

use super::{Body, Shared, full};
use base64::Engine as _;
use hyper::{Method, Response, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How the sign-in service behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntraConfig {
    /// The one registered application (public client).
    pub client_id: String,
    /// The account that signs in (`preferred_username`).
    pub account: String,
    /// Access token lifetime (Entra: 60–90 minutes).
    pub access_lifetime: Duration,
    /// Device code lifetime (Entra: 15 minutes) and polling interval.
    pub device_lifetime: Duration,
    pub device_interval: Duration,
    /// Conditional Access blocks the device code flow.
    pub block_device_code: bool,
    /// The user declines consent in the browser.
    pub decline_browser: bool,
    /// The tenant's domains: their OpenID configuration exists.
    pub tenant_domains: Vec<String>,
    /// Addresses of the tenant whose mailbox is on-premises (hybrid):
    /// Autodiscover v2 sends them to this simulator's EWS.
    pub on_premises: Vec<String>,
    /// Confidential apps that sign in with a certificate (client credentials).
    pub apps: Vec<super::entra_app::AppRegistration>,
}

impl Default for EntraConfig {
    fn default() -> Self {
        EntraConfig {
            client_id: "6f3c1a57-9a3b-4d5e-8f21-1c2d3e4f5a6b".into(),
            account: "mara@contoso.onmicrosoft.com".into(),
            access_lifetime: Duration::from_secs(3600),
            device_lifetime: Duration::from_secs(900),
            device_interval: Duration::from_secs(5),
            block_device_code: false,
            decline_browser: false,
            tenant_domains: vec!["contoso.onmicrosoft.com".into(), "contoso.com".into()],
            on_premises: Vec::new(),
            apps: Vec::new(),
        }
    }
}

/// Device sign-ins pending at once, at most (also authorization codes).
const MAX_PENDING_DEVICES: usize = 1000;

/// How long an authorization code may be redeemed (Entra: 10 minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct AuthCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    expires: Instant,
}

#[derive(Debug)]
struct DeviceCode {
    user_code: String,
    scope: String,
    expires: Instant,
    last_poll: Option<Instant>,
    approved: Option<bool>,
}

/// What the service holds.
#[derive(Debug, Default)]
pub(super) struct Entra {
    devices: HashMap<String, DeviceCode>,
    /// refresh token → scope.
    refresh: HashMap<String, String>,
    /// access token → expiry, and whose it is.
    pub(super) access: HashMap<String, (Instant, Principal)>,
    /// Client assertion ids seen, until they would have expired.
    pub(super) jtis: HashMap<String, Instant>,
    /// authorization code → what it was issued for.
    codes: HashMap<String, AuthCode>,
    /// Redeemed codes, until they would have expired: a replay is named as one.
    spent: HashMap<String, Instant>,
    /// Grants issued, in order (for tests).
    pub(super) issued: u32,
}

/// Whom an access token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Principal {
    /// The signed-in user (delegated permissions): their own mailbox.
    User,
    /// An app with application permissions, limited by RBAC for Applications.
    App {
        client_id: String,
        roles: Vec<String>,
        /// The mailboxes (keys) its management scope covers; `None` is all.
        mailboxes: Option<Vec<String>>,
    },
}

impl Entra {
    /// Whether `token` is a live access token of ours.
    pub(super) fn accepts(&self, token: &str, now: Instant) -> Option<bool> {
        self.access.get(token).map(|(exp, _)| *exp > now)
    }

    /// Whom a live access token stands for.
    pub(super) fn principal(&self, token: &str, now: Instant) -> Option<Principal> {
        self.access.get(token).filter(|(exp, _)| *exp > now).map(|(_, p)| p.clone())
    }

    /// Approves (or declines) the device code the user entered.
    pub(super) fn enter_code(&mut self, user_code: &str, approve: bool) -> bool {
        match self.devices.values_mut().find(|d| d.user_code.eq_ignore_ascii_case(user_code.trim())) {
            Some(d) => {
                d.approved = Some(approve);
                true
            }
            None => false,
        }
    }

    /// Every grant revoked (an admin's `revokeSignInSessions`, a password reset).
    pub(super) fn revoke_all(&mut self) {
        self.refresh.clear();
        self.access.clear();
    }
}

pub(super) fn random(n: usize) -> String {
    let mut b = vec![0u8; n];
    let _ = getrandom::getrandom(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn user_code() -> String {
    // Entra's codes: letters and digits people can type
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 9];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char).collect()
}

pub(super) fn error(status: StatusCode, error: &str, code: u32, description: &str) -> Response<Body> {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {} Correlation ID: {} Timestamp: {}", random(12), random(12), crate::store::now_iso()),
        "error_codes": [code],
        "timestamp": crate::store::now_iso(),
        "trace_id": random(12),
        "correlation_id": random(12),
    });
    let mut r = full(status, body.to_string());
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

fn form(body: &[u8]) -> HashMap<String, String> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (super::graph::decode_form(k), super::graph::decode_form(v)))
        .collect()
}

fn unsigned_id_token(config: &EntraConfig) -> String {
    let e = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        e(json!({"typ": "JWT", "alg": "none"})),
        e(
            json!({"aud": config.client_id, "preferred_username": config.account, "name": "Mara Simulator", "tid": "9188040d-6c67-4c5b-b112-36a304b66dad"})
        )
    )
}

fn tokens(entra: &mut Entra, config: &EntraConfig, scope: &str, now: Instant) -> Response<Body> {
    let access = random(32);
    let refresh = random(48);
    entra.access.insert(access.clone(), (now + config.access_lifetime, Principal::User));
    entra.refresh.insert(refresh.clone(), scope.to_string());
    entra.issued += 1;
    let body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": config.access_lifetime.as_secs(),
        "ext_expires_in": config.access_lifetime.as_secs(),
        "access_token": access,
        "refresh_token": refresh,
        "id_token": unsigned_id_token(config),
    });
    let mut r = full(StatusCode::OK, body.to_string());
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json; charset=utf-8"));
    r.headers_mut().insert("cache-control", hyper::header::HeaderValue::from_static("no-store, no-cache"));
    r
}

/// The scope Entra grants for what was asked: Graph's delegated permissions
/// named in full, `offline_access` kept.
fn granted(asked: &str) -> String {
    asked
        .split_whitespace()
        .map(|s| match s {
            "offline_access" | "openid" | "profile" => s.to_string(),
            s if s.starts_with("https://") => s.to_string(),
            s => format!("https://graph.microsoft.com/{s}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Entra's page for a request it cannot send back to the app (an unknown
/// client, a redirect URI that is not registered): shown, never redirected.
fn page(code: u32, description: &str) -> Response<Body> {
    let mut r = full(
        StatusCode::BAD_REQUEST,
        format!(
            "<!DOCTYPE html><html><body><h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p><p>AADSTS{code}: {}</p></body></html>",
            description.replace('<', "&lt;")
        ),
    );
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

/// A native app's loopback redirect URI: `http://localhost` or
/// `http://127.0.0.1`, any port, any path.
fn is_loopback_redirect(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else { return false };
    u.scheme() == "http"
        && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
        && u.query().is_none()
        && u.fragment().is_none()
}

fn redirect(to: &str, params: &[(&str, &str)]) -> Response<Body> {
    let mut u = match url::Url::parse(to) {
        Ok(u) => u,
        Err(_) => return page(50011, "The redirect URI is not valid."),
    };
    u.query_pairs_mut().extend_pairs(params);
    let mut r = full(StatusCode::FOUND, "");
    if let Ok(v) = hyper::header::HeaderValue::from_str(u.as_str()) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// `GET /authorize`: the user signs in and consents, and the browser is sent back to the app.
fn authorize(entra: &mut Entra, config: &EntraConfig, query: &HashMap<String, String>, now: Instant) -> Response<Body> {
    let get = |k: &str| query.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != config.client_id {
        return page(
            700016,
            &format!("Application with identifier '{}' was not found in the directory 'Contoso'.", get("client_id")),
        );
    }
    let to = get("redirect_uri");
    if !is_loopback_redirect(to) {
        return page(
            50011,
            &format!(
                "The redirect URI '{to}' specified in the request does not match the redirect URIs configured for the application '{}'.",
                config.client_id
            ),
        );
    }
    let state = get("state");
    let fail = |error: &str, code: u32, text: &str| {
        let description = format!("AADSTS{code}: {text}");
        let mut params = vec![("error", error), ("error_description", description.as_str())];
        if !state.is_empty() {
            params.push(("state", state));
        }
        redirect(to, &params)
    };
    if get("response_type") != "code" {
        return fail(
            "unsupported_response_type",
            70005,
            "The provided value for the 'response_type' is not supported for this request.",
        );
    }
    let challenge = get("code_challenge");
    if get("code_challenge_method") != "S256" || challenge.len() != 43 {
        return fail(
            "invalid_request",
            9002325,
            "Proof Key for Code Exchange (S256) is required for this application.",
        );
    }
    if config.decline_browser {
        return fail("access_denied", 65004, "User declined to consent to access the app.");
    }
    entra.codes.retain(|_, c| c.expires > now);
    entra.spent.retain(|_, exp| *exp > now);
    if entra.codes.len() >= MAX_PENDING_DEVICES {
        return fail("temporarily_unavailable", 90055, "Too many sign-ins are pending. Try again later.");
    }
    let code = random(48);
    entra.codes.insert(
        code.clone(),
        AuthCode {
            client_id: config.client_id.clone(),
            redirect_uri: to.to_string(),
            challenge: challenge.to_string(),
            scope: get("scope").to_string(),
            expires: now + CODE_LIFETIME,
        },
    );
    let mut params = vec![("code", code.as_str())];
    if !state.is_empty() {
        params.push(("state", state));
    }
    redirect(to, &params)
}

/// `grant_type=authorization_code`: the code, once, with its verifier.
fn redeem(entra: &mut Entra, config: &EntraConfig, f: &HashMap<String, String>, now: Instant) -> Response<Body> {
    use sha2::Digest as _;
    let code = f.get("code").cloned().unwrap_or_default();
    let Some(c) = entra.codes.remove(&code) else {
        return if entra.spent.contains_key(&code) {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            )
        } else {
            error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                70000,
                "The provided authorization code is invalid or has expired.",
            )
        };
    };
    // a code is spent by its first redemption, good or bad
    entra.spent.insert(code, c.expires);
    if c.expires <= now {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity.",
        );
    }
    if f.get("redirect_uri") != Some(&c.redirect_uri) || c.client_id != config.client_id {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50148,
            "The redirect URI in the token request does not match the one in the authorization request.",
        );
    }
    let verifier = f.get("code_verifier").map(String::as_str).unwrap_or("");
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if !(43..=128).contains(&verifier.len()) || computed != c.challenge {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            501481,
            "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
        );
    }
    let scope = granted(&c.scope);
    tokens(entra, config, &scope, now)
}

/// Serves `/{tenant}/oauth2/v2.0/{authorize|devicecode|token}` and `/devicelogin`.
pub(super) fn serve(shared: &Shared, method: &Method, path: &str, query: Option<&str>, body: &[u8]) -> Response<Body> {
    let config = shared.config.lock().unwrap_or_else(|p| p.into_inner()).entra.clone();
    let mut entra = shared.entra.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    let f = form(body);
    let endpoint = path.rsplit('/').next().unwrap_or("");
    match (method, endpoint) {
        (&Method::GET, "authorize") => authorize(&mut entra, &config, &form(query.unwrap_or("").as_bytes()), now),
        (&Method::POST, "devicelogin") => {
            let approve = f.get("decision").map(String::as_str) != Some("decline");
            if entra.enter_code(f.get("user_code").map(String::as_str).unwrap_or(""), approve) {
                full(StatusCode::OK, "You have signed in to Lamplighter on your device. You may now close this window.")
            } else {
                full(StatusCode::BAD_REQUEST, "That code didn't work. Check the code and try again.")
            }
        }
        (&Method::GET, "devicelogin") => full(
            StatusCode::OK,
            "<!DOCTYPE html><html><body><form method=\"post\"><label>Enter code <input name=\"user_code\"></label><button>Next</button></form></body></html>",
        ),
        (&Method::POST, "token") if f.get("grant_type").map(String::as_str) == Some("client_credentials") => {
            entra.access.retain(|_, (exp, _)| *exp > now);
            let audience = format!("{}{path}", shared.base_url);
            super::entra_app::client_credentials(&mut entra, &config.apps, &f, &audience, config.access_lifetime, now)
        }
        (&Method::POST, _) if f.get("client_id") != Some(&config.client_id) => error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory 'Contoso'.",
                f.get("client_id").map(String::as_str).unwrap_or("")
            ),
        ),
        (&Method::POST, "devicecode") => {
            // a stranger must not grow the table: spent codes go, and pending ones are bounded
            entra.devices.retain(|_, d| d.expires > now);
            entra.access.retain(|_, (exp, _)| *exp > now);
            if entra.devices.len() >= MAX_PENDING_DEVICES {
                return error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    90055,
                    "Too many device sign-ins are pending. Try again later.",
                );
            }
            let device_code = random(48);
            let code = user_code();
            let scope = f.get("scope").cloned().unwrap_or_default();
            entra.devices.insert(
                device_code.clone(),
                DeviceCode {
                    user_code: code.clone(),
                    scope,
                    expires: now + config.device_lifetime,
                    last_poll: None,
                    approved: None,
                },
            );
            let verification = format!("{}/devicelogin", shared.base_url);
            let body = json!({
                "user_code": code,
                "device_code": device_code,
                "verification_uri": verification,
                "expires_in": config.device_lifetime.as_secs(),
                "interval": config.device_interval.as_secs(),
                "message": format!("To sign in, use a web browser to open the page {verification} and enter the code {code} to authenticate."),
            });
            let mut r = full(StatusCode::OK, body.to_string());
            r.headers_mut()
                .insert("content-type", hyper::header::HeaderValue::from_static("application/json; charset=utf-8"));
            r
        }
        (&Method::POST, "token") => match f.get("grant_type").map(String::as_str) {
            Some("authorization_code") => redeem(&mut entra, &config, &f, now),
            Some("urn:ietf:params:oauth:grant-type:device_code") => {
                let code = f.get("device_code").cloned().unwrap_or_default();
                let Some(d) = entra.devices.get_mut(&code) else {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        70000,
                        "The provided value for the 'device_code' is not valid.",
                    );
                };
                if d.expires <= now {
                    entra.devices.remove(&code);
                    return error(StatusCode::BAD_REQUEST, "expired_token", 70019, "Verification code expired.");
                }
                let too_soon = d
                    .last_poll
                    .is_some_and(|t| now.duration_since(t) + Duration::from_millis(200) < config.device_interval);
                d.last_poll = Some(now);
                match d.approved {
                    _ if too_soon => error(
                        StatusCode::BAD_REQUEST,
                        "slow_down",
                        70016,
                        "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                    ),
                    None => error(
                        StatusCode::BAD_REQUEST,
                        "authorization_pending",
                        70016,
                        "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                    ),
                    Some(false) => {
                        entra.devices.remove(&code);
                        error(
                            StatusCode::BAD_REQUEST,
                            "authorization_declined",
                            70000,
                            "The user declined the sign-in.",
                        )
                    }
                    Some(true) if config.block_device_code => {
                        entra.devices.remove(&code);
                        error(
                            StatusCode::BAD_REQUEST,
                            "invalid_grant",
                            53003,
                            "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
                        )
                    }
                    Some(true) => {
                        let scope = granted(&d.scope);
                        // a device code is spent once it has given tokens
                        entra.devices.remove(&code);
                        tokens(&mut entra, &config, &scope, now)
                    }
                }
            }
            Some("refresh_token") => {
                let rt = f.get("refresh_token").cloned().unwrap_or_default();
                match entra.refresh.remove(&rt) {
                    Some(scope) => tokens(&mut entra, &config, &scope, now),
                    None => error(
                        StatusCode::BAD_REQUEST,
                        "invalid_grant",
                        50173,
                        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
                    ),
                }
            }
            other => error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{}'.", other.unwrap_or("")),
            ),
        },
        _ => error(
            StatusCode::NOT_FOUND,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        ),
    }
}

/// The unauthenticated discovery Microsoft's cloud answers:
/// `GET /{domain}/v2.0/.well-known/openid-configuration` (only for a tenant's
/// domains; Entra's `AADSTS90002` otherwise) and Exchange Online's
/// Autodiscover v2, `GET /autodiscover/autodiscover.json/v1.0/{address}?Protocol=EWS`
/// (Exchange Online's EWS for anyone but the hybrid organisation's
/// on-premises mailboxes, as the real one answers even unknown domains).
pub(super) fn discovery(shared: &Shared, path: &str, query: Option<&str>) -> Option<Response<Body>> {
    let config = shared.config.lock().unwrap_or_else(|p| p.into_inner()).entra.clone();
    let json = |status: StatusCode, body: serde_json::Value| {
        let mut r = full(status, body.to_string());
        r.headers_mut()
            .insert("content-type", hyper::header::HeaderValue::from_static("application/json; charset=utf-8"));
        r
    };
    if let Some(domain) = path.strip_suffix("/v2.0/.well-known/openid-configuration").and_then(|p| p.strip_prefix('/'))
    {
        let domain = super::graph::decode_form(domain).to_ascii_lowercase();
        if !config.tenant_domains.iter().any(|d| d.eq_ignore_ascii_case(&domain)) {
            return Some(error(
                StatusCode::BAD_REQUEST,
                "invalid_tenant",
                90002,
                &format!(
                    "Tenant '{domain}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        let issuer = format!("{}/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0", shared.base_url);
        return Some(json(
            StatusCode::OK,
            json!({
                "issuer": issuer,
                "authorization_endpoint": format!("{}/{domain}/oauth2/v2.0/authorize", shared.base_url),
                "token_endpoint": format!("{}/{domain}/oauth2/v2.0/token", shared.base_url),
                "device_authorization_endpoint": format!("{}/{domain}/oauth2/v2.0/devicecode", shared.base_url),
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "tenant_region_scope": "EU",
            }),
        ));
    }
    let address = path.strip_prefix("/autodiscover/autodiscover.json/v1.0/")?;
    let address = super::graph::decode_form(address);
    let protocol = form(query.unwrap_or("").as_bytes()).get("Protocol").cloned().unwrap_or_default();
    if !protocol.eq_ignore_ascii_case("ews") {
        return Some(json(
            StatusCode::BAD_REQUEST,
            json!({"ErrorCode": "InvalidProtocol", "ErrorMessage": format!("The given protocol value '{protocol}' is invalid.")}),
        ));
    }
    let url = if config.on_premises.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
        format!("{}/EWS/Exchange.asmx", shared.base_url)
    } else {
        "https://outlook.office365.com/EWS/Exchange.asmx".to_string()
    };
    Some(json(StatusCode::OK, json!({"Protocol": "EWS", "Url": url})))
}

/// Whether `path` is one of the sign-in service's.
pub(super) fn is_entra(path: &str) -> bool {
    path == "/devicelogin" || (path.contains("/oauth2/v2.0/") && path.matches('/').count() == 4)
}
