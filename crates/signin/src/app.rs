//! A service's own sign-in, without a user: the OAuth 2.0 client
//! credentials grant with a certificate (RFC 7523's JWT client assertion,
//! as Microsoft identity platform wants confidential apps to prove
//! themselves). The gateway uses it for app-only Microsoft Graph: one token
//! for every mailbox that Exchange's RBAC for Applications lets the app read.
//!
//! The assertion is RS256 over `iss = sub = client id`, `aud` = the token
//! endpoint, a fresh `jti`, ten minutes of life, and the certificate's
//! SHA-1 thumbprint in `x5t` (the one Entra matches the registration's
//! certificate by). The private key never leaves this process; nothing here
//! logs an assertion or a token.

use crate::{HttpFuture, SignInError, words};
use base64::Engine as _;
use oauth2::{ClientId, Scope, TokenResponse as _, TokenUrl};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Graph's app-only scope: the application permissions granted to the app.
pub const GRAPH_APP_SCOPE: &str = "https://graph.microsoft.com/.default";

/// RFC 7523's `client_assertion_type`.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion lives (Entra takes up to ten minutes and more; a
/// short life limits what a copied one is worth).
pub const ASSERTION_LIFE: Duration = Duration::from_secs(600);

/// The app's certificate and private key.
pub struct AppCertificate {
    der: Vec<u8>,
    key: ring::signature::RsaKeyPair,
}

impl std::fmt::Debug for AppCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCertificate").field("x5t", &self.thumbprint()).finish_non_exhaustive()
    }
}

/// The base64 body of the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

impl AppCertificate {
    /// From PEM: the certificate (`CERTIFICATE`) and its RSA key (`PRIVATE
    /// KEY`, PKCS#8, or `RSA PRIVATE KEY`, PKCS#1), as `openssl req -x509
    /// -newkey rsa:2048` writes them and Entra's app registration takes the
    /// certificate.
    pub fn from_pem(certificate: &str, key: &str) -> Result<AppCertificate, SignInError> {
        let bad = |w: &str| SignInError::Registration(w.to_string());
        let der = pem_block(certificate, "CERTIFICATE").ok_or_else(|| bad("the certificate is not PEM"))?;
        let key = if let Some(pkcs8) = pem_block(key, "PRIVATE KEY") {
            ring::signature::RsaKeyPair::from_pkcs8(&pkcs8)
        } else if let Some(pkcs1) = pem_block(key, "RSA PRIVATE KEY") {
            ring::signature::RsaKeyPair::from_der(&pkcs1)
        } else {
            return Err(bad("the private key is not PEM (PRIVATE KEY or RSA PRIVATE KEY)"));
        }
        .map_err(|e| {
            SignInError::Registration(format!("the private key is not an RSA key of 2048 bits or more: {e}"))
        })?;
        Ok(AppCertificate { der, key })
    }

    /// `x5t`: the SHA-1 thumbprint of the certificate, base64url.
    pub fn thumbprint(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d.as_ref())
    }

    /// A signed client assertion for `client_id` at `audience` (the token endpoint).
    pub fn assertion(&self, client_id: &str, audience: &str, now: SystemTime) -> Result<String, SignInError> {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let secs = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        let rng = ring::rand::SystemRandom::new();
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut jti)
            .map_err(|_| SignInError::Unreachable("no random numbers for the assertion's jti".into()))?;
        let header = serde_json::json!({ "alg": "RS256", "typ": "JWT", "x5t": self.thumbprint() });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": b64(&jti),
            "nbf": secs,
            "iat": secs,
            "exp": secs + ASSERTION_LIFE.as_secs(),
        });
        let signing_input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&ring::signature::RSA_PKCS1_SHA256, &rng, signing_input.as_bytes(), &mut signature)
            .map_err(|_| SignInError::Registration("the private key cannot sign".into()))?;
        Ok(format!("{signing_input}.{}", b64(&signature)))
    }
}

/// Where and as which app to sign in.
#[derive(Debug, Clone)]
pub struct AppAuthority {
    /// `https://login.microsoftonline.com/<tenant id>` (a tenant, never `common`).
    pub authority: String,
    pub client_id: String,
    /// [`GRAPH_APP_SCOPE`] unless another resource is wanted.
    pub scope: String,
    pub extra_ca_pem: Option<Vec<u8>>,
    pub fixed_address: Option<std::net::SocketAddr>,
    pub timeout: Duration,
}

impl AppAuthority {
    pub fn new(authority: impl Into<String>, client_id: impl Into<String>) -> AppAuthority {
        AppAuthority {
            authority: authority.into().trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            scope: GRAPH_APP_SCOPE.into(),
            extra_ca_pem: None,
            fixed_address: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// The token endpoint (the assertion's audience).
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v2.0/token", self.authority)
    }
}

struct Cached {
    token: String,
    expires: Instant,
}

/// App-only tokens: one at a time in memory, a new one when it has less than
/// [`crate::REFRESH_AHEAD`] to live or the last was refused. Nothing is stored:
/// the certificate is the grant.
pub struct AppSession {
    authority: AppAuthority,
    certificate: AppCertificate,
    tls: lamplighter_https::Tls,
    cached: tokio::sync::Mutex<Option<Cached>>,
    issued: std::sync::atomic::AtomicU32,
}

type Answer = oauth2::StandardTokenResponse<oauth2::EmptyExtraTokenFields, oauth2::basic::BasicTokenType>;

impl AppSession {
    pub fn new(authority: AppAuthority, certificate: AppCertificate) -> Result<Arc<AppSession>, SignInError> {
        let tls = lamplighter_https::Tls::new(authority.extra_ca_pem.as_deref())
            .map_err(|e| SignInError::Unreachable(e.to_string()))?;
        Ok(Arc::new(AppSession {
            authority,
            certificate,
            tls,
            cached: tokio::sync::Mutex::new(None),
            issued: Default::default(),
        }))
    }

    /// How many tokens were fetched so far.
    pub fn fetched(&self) -> u32 {
        self.issued.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An access token; `fresh` (after a 401) fetches a new one.
    pub async fn access_token(&self, fresh: bool) -> Result<String, SignInError> {
        let mut cached = self.cached.lock().await;
        if !fresh
            && let Some(c) = cached.as_ref()
            && c.expires > Instant::now() + crate::REFRESH_AHEAD
        {
            return Ok(c.token.clone());
        }
        let answer = self.fetch().await?;
        let life = answer.expires_in().unwrap_or(Duration::from_secs(3600));
        let token = answer.access_token().secret().clone();
        *cached = Some(Cached { token: token.clone(), expires: Instant::now() + life });
        self.issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(token)
    }

    fn http(&self) -> impl Fn(oauth2::HttpRequest) -> HttpFuture + use<> {
        let (tls, fixed, timeout) = (self.tls.clone(), self.authority.fixed_address, self.authority.timeout);
        move |req| {
            let tls = tls.clone();
            Box::pin(async move {
                lamplighter_https::exchange(&tls, req, fixed, timeout, 1 << 20)
                    .await
                    .map_err(|e| crate::HttpError(e.to_string()))
            })
        }
    }

    async fn fetch(&self) -> Result<Answer, SignInError> {
        let url = self.authority.token_url();
        let token_url = TokenUrl::new(url.clone()).map_err(|e| SignInError::Registration(e.to_string()))?;
        let client = oauth2::Client::<
            oauth2::basic::BasicErrorResponse,
            Answer,
            oauth2::basic::BasicTokenIntrospectionResponse,
            oauth2::StandardRevocableToken,
            oauth2::basic::BasicRevocationErrorResponse,
        >::new(ClientId::new(self.authority.client_id.clone()))
        .set_auth_type(oauth2::AuthType::RequestBody)
        .set_token_uri(token_url);
        let assertion = self.certificate.assertion(&self.authority.client_id, &url, SystemTime::now())?;
        let http = self.http();
        client
            .exchange_client_credentials()
            .add_scope(Scope::new(self.authority.scope.clone()))
            .add_extra_param("client_assertion_type", ASSERTION_TYPE)
            .add_extra_param("client_assertion", assertion)
            .request_async(&http)
            .await
            .map_err(|e| match e {
                oauth2::RequestTokenError::ServerResponse(r) => {
                    SignInError::AppRefused(words(r.error_description(), r.error().as_ref()))
                }
                e => SignInError::Unreachable(e.to_string()),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_are_found_by_label() {
        let pem = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\nAw==\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_block(pem, "CERTIFICATE"), Some(vec![0, 1, 2, 3]));
        assert_eq!(pem_block(pem, "PRIVATE KEY"), None);
        assert_eq!(pem_block("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----", "CERTIFICATE"), None);
        assert!(matches!(AppCertificate::from_pem(pem, pem), Err(SignInError::Registration(_))));
    }
}
