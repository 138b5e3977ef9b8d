//! Microsoft sign-in for Lamplighter as a native app (OAuth 2.0, the
//! protocol from the kept `oauth2` crate, its HTTP over `lamplighter-https`):
//!
//! - [`Session::browser_login`]: the authorization code grant with PKCE
//!   (S256) through the system browser and a loopback redirect to
//!   `http://localhost:<ephemeral port>` (RFC 8252), the way Microsoft wants
//!   native apps to sign in.
//! - [`Session::device_login`]: the device authorization grant (RFC 8628),
//!   for the agent and machines without a browser. Many tenants block it
//!   by Conditional Access; that refusal is named as such.
//! - [`Session::access_token`]: an access token, from memory while it has
//!   more than [`REFRESH_AHEAD`] to live, else by the refresh token grant;
//!   `fresh` (after a 401) always refreshes. Entra rotates refresh tokens:
//!   each new one replaces the old in the caller's [`GrantStore`] (the
//!   keyring) before the access token is used.
//! - A revoked or expired grant is [`SignInError::SignInAgain`]: never
//!   retried by itself, so a revoked grant is one clear problem, not a loop.
//!
//! Nothing here writes a token anywhere but the store, and no error text
//! carries one.

use oauth2::basic::BasicTokenType;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, CsrfToken, DeviceAuthorizationUrl, ExtraTokenFields, PkceCodeChallenge,
    RedirectUrl, RefreshToken, Scope, StandardDeviceAuthorizationResponse, StandardTokenResponse, TokenResponse as _,
    TokenUrl,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use oauth2;

pub mod app;
mod loopback;

/// An access token is renewed when it has less than this to live.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// What Lamplighter asks for: read and mark mail (a voicemail heard), and a
/// refresh token. Delegated, consentable by the user.
pub const SCOPES: &[&str] = &["https://graph.microsoft.com/Mail.ReadWrite", "offline_access"];

/// For EWS with OAuth2 (Exchange Online while it still allows EWS, hybrid
/// modern authentication): EWS's own resource.
pub const EWS_SCOPES: &[&str] = &["https://outlook.office365.com/EWS.AccessAsUser.All", "offline_access"];

/// Where and as whom to sign in.
#[derive(Debug, Clone)]
pub struct Authority {
    /// `https://login.microsoftonline.com/organizations` (or `/<tenant id>`).
    pub authority: String,
    /// The app registration's client id.
    pub client_id: String,
    pub scopes: Vec<String>,
    /// An extra CA (a TLS-inspecting proxy's).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// An address for the authority's host instead of resolving it.
    pub fixed_address: Option<SocketAddr>,
    pub timeout: Duration,
    /// How long the browser sign-in waits for the user.
    pub browser_timeout: Duration,
    /// `prompt` for the browser sign-in. Entra needs none (it gives a
    /// refresh token for `offline_access` anyway, and `consent` would ask
    /// the user every time); a strict OpenID Connect server gives one only
    /// with `consent` (OpenID Connect Core §11).
    pub prompt: Option<String>,
}

impl Authority {
    /// The defaults for `authority` and `client_id`.
    pub fn new(authority: impl Into<String>, client_id: impl Into<String>) -> Authority {
        Authority {
            authority: authority.into().trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
            extra_ca_pem: None,
            fixed_address: None,
            timeout: Duration::from_secs(30),
            browser_timeout: Duration::from_secs(600),
            prompt: None,
        }
    }
}

/// What is kept between runs: the refresh token, and what it was for.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub refresh_token: String,
    /// The signed-in account (`preferred_username`), for people.
    pub account: Option<String>,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant").field("account", &self.account).field("scopes", &self.scopes).finish_non_exhaustive()
    }
}

/// Where the grant lives (the keyring; a test's memory).
pub trait GrantStore: Send + Sync {
    fn load(&self) -> Result<Option<Grant>, String>;
    fn save(&self, grant: &Grant) -> Result<(), String>;
    fn clear(&self) -> Result<(), String>;
}

/// The device login's instructions for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: Duration,
}

/// Why there is no token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// Nobody signed in yet (or signed out).
    #[error(
        "not signed in to Microsoft 365: run `lamplighter-agent login` or use \"Sign in with Microsoft\" in Settings"
    )]
    NotSignedIn,
    /// The grant is revoked or expired: only a new sign-in helps.
    #[error("Microsoft 365 ended the sign-in ({0}): sign in again")]
    SignInAgain(String),
    /// Conditional Access refuses this kind of sign-in.
    #[error(
        "the organisation's Conditional Access blocks this sign-in ({0}); use the browser sign-in, or ask the admin"
    )]
    Blocked(String),
    /// The user declined, or the code ran out.
    #[error("the device sign-in ended without consent: {0}")]
    Abandoned(String),
    /// The app registration is not there, or not a public client.
    #[error(
        "the app registration is not usable ({0}): check [mailbox] client_id and the registration (docs/entra-app-registration.md)"
    )]
    Registration(String),
    /// The sign-in service refused to give tokens for this sign-in (a
    /// code already used or not ours, a verifier that does not match).
    #[error("the Microsoft sign-in refused this sign-in ({0}); try again")]
    Refused(String),
    /// No answer, or not one of the service's.
    #[error("cannot reach the Microsoft sign-in service: {0}")]
    Unreachable(String),
    /// The grant cannot be read or kept.
    #[error("cannot keep the sign-in: {0}")]
    Store(String),
    /// The app-only sign-in (client credentials with a certificate) refused.
    #[error(
        "the Microsoft identity platform refused the app's sign-in ({0}): check the tenant, the client id and the certificate uploaded to the app registration"
    )]
    AppRefused(String),
}

/// The `id_token` in a token answer: read only for the account's name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct IdToken {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}
impl ExtraTokenFields for IdToken {}

type Answer = StandardTokenResponse<IdToken, BasicTokenType>;

/// `oauth2`'s client with token answers that carry the id token.
type OAuthClient = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    Answer,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
>;

/// The account name in an id token's claims (not verified: it is shown,
/// never used to decide anything).
fn account_of(answer: &Answer) -> Option<String> {
    use base64::Engine as _;
    let token = answer.extra_fields().id_token.as_deref()?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["preferred_username"].as_str().or(claims["upn"].as_str()).map(str::to_string)
}

/// The `AADSTS` code and words of a refusal, without anything else it carried.
fn words(description: Option<&String>, error: &str) -> String {
    match description {
        Some(d) => d.split(" Trace ID:").next().unwrap_or(d).trim().to_string(),
        None => error.to_string(),
    }
}

/// A token endpoint's refusal: Conditional Access, the registration,
/// `invalid_grant` as `grant` says, anything else as `other`.
fn refusal<RE: std::error::Error + 'static>(
    e: oauth2::RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
    grant: fn(String) -> SignInError,
    other: fn(String) -> SignInError,
) -> SignInError {
    use oauth2::basic::BasicErrorResponseType as T;
    match e {
        oauth2::RequestTokenError::ServerResponse(r) => {
            let w = words(r.error_description(), r.error().as_ref());
            match r.error() {
                _ if w.contains("AADSTS53003") => SignInError::Blocked(w),
                T::UnauthorizedClient | T::InvalidClient => SignInError::Registration(w),
                T::InvalidGrant => grant(w),
                _ => other(w),
            }
        }
        e => SignInError::Unreachable(e.to_string()),
    }
}

/// A live access token.
struct Cached {
    token: String,
    expires: Instant,
    wall: SystemTime,
}

/// Signing in and keeping the account signed in.
pub struct Session {
    authority: Authority,
    tls: lamplighter_https::Tls,
    store: Arc<dyn GrantStore>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct HttpError(String);

type HttpFuture = std::pin::Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send>>;

impl Session {
    pub fn new(authority: Authority, store: Arc<dyn GrantStore>) -> Result<Session, SignInError> {
        let tls = lamplighter_https::Tls::new(authority.extra_ca_pem.as_deref())
            .map_err(|e| SignInError::Unreachable(e.to_string()))?;
        Ok(Session { authority, tls, store, cached: tokio::sync::Mutex::new(None) })
    }

    fn endpoint(&self, name: &str) -> String {
        format!("{}/oauth2/v2.0/{name}", self.authority.authority)
    }

    /// The protocol client for our registration (endpoints set by the caller).
    fn client(&self) -> OAuthClient {
        OAuthClient::new(ClientId::new(self.authority.client_id.clone()))
    }

    fn http(&self) -> impl Fn(oauth2::HttpRequest) -> HttpFuture + use<> {
        let (tls, fixed, timeout) = (self.tls.clone(), self.authority.fixed_address, self.authority.timeout);
        move |req| {
            let tls = tls.clone();
            Box::pin(async move {
                lamplighter_https::exchange(&tls, req, fixed, timeout, 1 << 20)
                    .await
                    .map_err(|e| HttpError(e.to_string()))
            })
        }
    }

    /// The grant, if someone signed in.
    pub fn grant(&self) -> Result<Option<Grant>, SignInError> {
        self.store.load().map_err(SignInError::Store)
    }

    /// When the access token in memory expires (for `check`).
    pub async fn token_expiry(&self) -> Option<SystemTime> {
        self.cached.lock().await.as_ref().map(|c| c.wall)
    }

    /// Signs in with a device code: `show` tells the user where to go and
    /// what to enter; returns once they did (or the code ran out).
    pub async fn device_login(&self, show: impl FnOnce(&DeviceCode)) -> Result<Grant, SignInError> {
        let bad = |e: oauth2::url::ParseError| SignInError::Registration(e.to_string());
        let client = self
            .client()
            .set_auth_uri(AuthUrl::new(self.endpoint("authorize")).map_err(bad)?)
            .set_token_uri(TokenUrl::new(self.endpoint("token")).map_err(bad)?)
            .set_device_authorization_url(DeviceAuthorizationUrl::new(self.endpoint("devicecode")).map_err(bad)?);
        let http = self.http();
        let details: StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(self.authority.scopes.iter().cloned().map(Scope::new))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                oauth2::RequestTokenError::ServerResponse(r) => {
                    let w = words(r.error_description(), r.error().as_ref());
                    if r.error().to_string() == "unauthorized_client" || w.contains("AADSTS700016") {
                        SignInError::Registration(w)
                    } else {
                        SignInError::Unreachable(w)
                    }
                }
                other => SignInError::Unreachable(other.to_string()),
            })?;
        show(&DeviceCode {
            user_code: details.user_code().secret().clone(),
            verification_uri: details.verification_uri().to_string(),
            expires_in: details.expires_in(),
        });
        let answer = client
            .exchange_device_access_token(&details)
            .request_async(&http, tokio::time::sleep, None)
            .await
            .map_err(|e| match e {
                oauth2::RequestTokenError::ServerResponse(r) => {
                    let w = words(r.error_description(), r.error().as_ref());
                    match r.error().to_string().as_str() {
                        _ if w.contains("AADSTS53003") => SignInError::Blocked(w),
                        "expired_token" | "access_denied" | "authorization_declined" => SignInError::Abandoned(w),
                        _ => SignInError::Unreachable(w),
                    }
                }
                other => SignInError::Unreachable(other.to_string()),
            })?;
        let mut cached = self.cached.lock().await;
        self.keep(&mut cached, &answer, None)
    }

    /// Signs in through the browser: `open` is given the sign-in page's
    /// address (to open the system browser with, or to show); the answer
    /// comes back to a loopback listener of ours, and the code is redeemed
    /// with its PKCE verifier. Returns once signed in, refused, or after
    /// [`Authority::browser_timeout`].
    pub async fn browser_login(&self, open: impl FnOnce(&str)) -> Result<Grant, SignInError> {
        let bad = |e: oauth2::url::ParseError| SignInError::Registration(e.to_string());
        let listener = loopback::Loopback::bind()
            .await
            .map_err(|e| SignInError::Unreachable(format!("no loopback port for the browser's answer: {e}")))?;
        let redirect = listener.redirect_uri();
        let client = self
            .client()
            .set_auth_uri(AuthUrl::new(self.endpoint("authorize")).map_err(bad)?)
            .set_token_uri(TokenUrl::new(self.endpoint("token")).map_err(bad)?)
            .set_redirect_uri(RedirectUrl::new(redirect).map_err(bad)?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(CsrfToken::new_random)
            .add_scopes(self.authority.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge);
        if let Some(prompt) = &self.authority.prompt {
            request = request.add_extra_param("prompt", prompt);
        }
        let (url, state) = request.url();
        open(url.as_str());
        let answer = tokio::time::timeout(self.authority.browser_timeout, listener.answer(state.secret()))
            .await
            .map_err(|_| {
                SignInError::Abandoned(format!(
                    "no answer came from the browser within {} minutes",
                    self.authority.browser_timeout.as_secs() / 60
                ))
            })?;
        let code = match answer {
            loopback::Answer::Code(code) => code,
            loopback::Answer::Error { error, description } => {
                let w = words(description.as_ref(), &error);
                return Err(match error.as_str() {
                    _ if w.contains("AADSTS53003") => SignInError::Blocked(w),
                    "access_denied" | "consent_required" | "interaction_required" => SignInError::Abandoned(w),
                    "unauthorized_client" | "invalid_client" => SignInError::Registration(w),
                    _ => SignInError::Refused(w),
                });
            }
        };
        let http = self.http();
        let answer = client
            .exchange_code(AuthorizationCode::new(code))
            .set_pkce_verifier(verifier)
            .request_async(&http)
            .await
            .map_err(|e| refusal(e, SignInError::Refused, SignInError::Refused))?;
        let mut cached = self.cached.lock().await;
        self.keep(&mut cached, &answer, None)
    }

    /// Stores what a token answer brings and keeps its access token.
    fn keep(&self, cached: &mut Option<Cached>, answer: &Answer, before: Option<&Grant>) -> Result<Grant, SignInError> {
        let scopes: Vec<String> = match answer.scopes() {
            Some(s) => s.iter().map(|s| s.to_string()).collect(),
            None => before.map(|g| g.scopes.clone()).unwrap_or_default(),
        };
        let refresh = match answer.refresh_token() {
            Some(r) => r.secret().clone(),
            // no new one: the old stays good
            None => before.map(|g| g.refresh_token.clone()).ok_or_else(|| {
                SignInError::Registration("no refresh token came (is offline_access consented?)".into())
            })?,
        };
        let grant = Grant {
            refresh_token: refresh,
            account: account_of(answer).or_else(|| before.and_then(|g| g.account.clone())),
            scopes,
        };
        // the rotated refresh token is kept before anything uses the new access token
        self.store.save(&grant).map_err(SignInError::Store)?;
        let life = answer.expires_in().unwrap_or(Duration::from_secs(3600));
        *cached = Some(Cached {
            token: answer.access_token().secret().clone(),
            expires: Instant::now() + life,
            wall: SystemTime::now() + life,
        });
        Ok(grant)
    }

    /// An access token: the one in memory while it lives long enough, else
    /// a refreshed one; `fresh` refreshes regardless (the last was refused).
    pub async fn access_token(&self, fresh: bool) -> Result<String, SignInError> {
        if !fresh
            && let Some(c) = self.cached.lock().await.as_ref()
            && c.expires > Instant::now() + REFRESH_AHEAD
        {
            return Ok(c.token.clone());
        }
        // one refresh at a time: two callers must not spend the same rotating token
        let mut cached = self.cached.lock().await;
        if !fresh
            && let Some(c) = cached.as_ref()
            && c.expires > Instant::now() + REFRESH_AHEAD
        {
            return Ok(c.token.clone());
        }
        let grant = self.grant()?.ok_or(SignInError::NotSignedIn)?;
        let client = self.client().set_token_uri(
            TokenUrl::new(self.endpoint("token")).map_err(|e| SignInError::Registration(e.to_string()))?,
        );
        let http = self.http();
        let answer = client
            .exchange_refresh_token(&RefreshToken::new(grant.refresh_token.clone()))
            .add_scopes(self.authority.scopes.iter().cloned().map(Scope::new))
            .request_async(&http)
            .await
            .map_err(|e| refusal(e, SignInError::SignInAgain, SignInError::Unreachable))?;
        // the lock is held until the rotated refresh token is stored, so no
        // other caller can spend the old one meanwhile
        self.keep(&mut cached, &answer, Some(&grant))?;
        Ok(cached.as_ref().map(|c| c.token.clone()).unwrap_or_default())
    }

    /// Forgets the grant here (the refresh token leaves the store).
    pub async fn logout(&self) -> Result<(), SignInError> {
        *self.cached.lock().await = None;
        self.store.clear().map_err(SignInError::Store)
    }
}

/// A grant store in memory (tests, and a session without a keyring).
#[derive(Default)]
pub struct MemoryGrants(std::sync::Mutex<Option<Grant>>);

impl GrantStore for MemoryGrants {
    fn load(&self) -> Result<Option<Grant>, String> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
    fn save(&self, grant: &Grant) -> Result<(), String> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(grant.clone());
        Ok(())
    }
    fn clear(&self) -> Result<(), String> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}
