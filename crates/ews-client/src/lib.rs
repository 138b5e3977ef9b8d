//! The EWS client: typed operations over HTTP(S), with sign-in, Autodiscover,
//! retries and throttling, and the tokio driver that turns
//! `lamplighter-mailbox-sync`'s requests into calls and its changes into a
//! stream of [`lamplighter_mailbox::MailboxEvent`]s; [`EwsBackend`] is EWS
//! behind the engine's [`lamplighter_mailbox::Backend`] interface.
//!
//! - `http.rs` (private): connections, NTLM/Basic/Bearer, TLS, cookies.
//! - [`autodiscover`]: from an e-mail address to the EWS URL.
//! - [`EwsClient`]: FindItem with paging, GetItem, UpdateItem (mark read),
//!   GetAttachment to a file, Subscribe/Unsubscribe, SyncFolderItems,
//!   GetEvents, and GetStreamingEvents as an [`EventStream`].
//! - [`driver`]: runs change tracking for one mailbox until stopped.
//!
//! Errors are typed ([`ClientError`]); what may be retried is retried a
//! bounded number of times with jittered back-off, and `ErrorServerBusy`
//! waits at least the server's `BackOffMilliseconds`. A refused sign-in is
//! never retried: one wrong password makes one failed attempt, not a lockout.
//! Nothing here logs credentials or tokens.

pub mod autodiscover;
mod backend;
pub mod driver;
pub mod group;
mod http;

pub use backend::{EwsBackend, hint_for};
pub use http::ConnectionPool;

use bytes::Bytes;
use http::{Http, HttpOptions, Target};
use lamplighter_ews_wire::{
    AttachmentDecoder, AttachmentMeta, ConflictPolicy, EwsError, FindItemRequest, GetAttachmentRequest,
    GetEventsRequest, GetItemRequest, GetStreamingEventsRequest, Item, ItemId, MarkReadRequest, MaxChanges,
    PullNotification, ResponseClass, ResponseCode, ResponseMessage, SERVER_VERSION, StreamingBody, SubscribeRequest,
    Subscription, SubscriptionKind, SyncFolderItemsRequest, SyncPage, UnsubscribeRequest,
};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A secret string (password or token): never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Password(s.into())
    }
    /// The secret itself, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A future that yields an OAuth2 access token.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<Password, String>> + Send>>;
/// Gives an access token; `true` asks for a fresh one (the last was refused).
pub type TokenProvider = Arc<dyn Fn(bool) -> TokenFuture + Send + Sync>;

/// How to sign in.
#[derive(Clone)]
pub enum Credentials {
    /// No credentials (only for unauthenticated Autodiscover steps).
    None,
    /// HTTP Basic.
    Basic {
        /// User name (`DOMAIN\user` or UPN).
        user: String,
        password: Password,
    },
    /// NTLM (NTLMv2), per connection.
    Ntlm {
        /// `DOMAIN\user` or `user`.
        user: String,
        password: Password,
    },
    /// OAuth2 bearer token from a provider.
    Bearer(TokenProvider),
    /// `Negotiate`: Kerberos through SPNEGO with the user's ticket (no
    /// password), the server proving its identity in turn; with a password,
    /// NTLM when Kerberos cannot be used (under `Negotiate` for a server
    /// that offers only that, else plain NTLM).
    Negotiate {
        /// `DOMAIN\user` for the NTLM fallback.
        user: String,
        /// For the NTLM fallback; `None`: Kerberos only.
        password: Option<Password>,
    },
    /// Whatever the server offers, best first: Kerberos, then NTLM, then
    /// Basic (the last two need the password).
    Auto {
        /// `DOMAIN\user` or UPN.
        user: String,
        password: Option<Password>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Basic { user, .. } => write!(f, "Basic({user})"),
            Credentials::Ntlm { user, .. } => write!(f, "Ntlm({user})"),
            Credentials::Bearer(_) => f.write_str("Bearer"),
            Credentials::Negotiate { user, password } => {
                write!(f, "Negotiate({user}, password: {})", password.is_some())
            }
            Credentials::Auto { user, password } => write!(f, "Auto({user}, password: {})", password.is_some()),
        }
    }
}

/// How the last sign-in went through, for `check` and the settings window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// No authentication was asked for.
    Anonymous,
    Basic,
    Ntlm,
    /// NTLM tokens under `WWW-Authenticate: Negotiate`.
    NtlmUnderNegotiate,
    /// Kerberos through SPNEGO, mutually authenticated.
    Kerberos {
        /// Our principal, `mara@EXAMPLE.TEST`.
        principal: Option<String>,
        /// The service that proved itself, `HTTP@exchange.example.test`.
        service: String,
    },
    Bearer,
}

impl std::fmt::Display for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignIn::Anonymous => f.write_str("no sign-in asked for"),
            SignIn::Basic => f.write_str("Basic"),
            SignIn::Ntlm => f.write_str("NTLM"),
            SignIn::NtlmUnderNegotiate => f.write_str("NTLM under Negotiate"),
            SignIn::Kerberos { principal, service } => {
                write!(f, "Kerberos")?;
                if let Some(p) = principal {
                    write!(f, " as {p}")?;
                }
                write!(f, " (mutually authenticated: the server proved it is {service})")
            }
            SignIn::Bearer => f.write_str("OAuth2"),
        }
    }
}

/// Bounded retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// First wait.
    pub initial: Duration,
    /// Longest wait between attempts.
    pub max: Duration,
    /// The longest `BackOffMilliseconds` waited here; a longer one is returned as [`ClientError::Throttled`].
    pub max_server_back_off: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_server_back_off: Duration::from_secs(60),
        }
    }
}

/// Everything the client needs to reach one mailbox.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The mailbox's address (Autodiscover, `X-AnchorMailbox`).
    pub email: String,
    /// The EWS URL; `None` runs Autodiscover.
    pub ews_url: Option<String>,
    /// Sign-in.
    pub credentials: Credentials,
    /// An extra CA certificate (PEM) to trust besides the system's.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Host names resolved to fixed addresses (like curl's `--resolve`).
    pub resolve: HashMap<String, SocketAddr>,
    /// Connecting (TCP and TLS).
    pub connect_timeout: Duration,
    /// A whole request/response.
    pub request_timeout: Duration,
    /// Silence on the stream after which it counts as dead (a little above the 45 s heartbeat pair).
    pub stream_idle_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
    /// Where Autodiscover's answer is kept (`None`: not kept), so later starts skip it.
    pub autodiscover_cache: Option<std::path::PathBuf>,
    /// The credentials are a service account's that reaches `email` through
    /// `ExchangeImpersonation` (the ApplicationImpersonation role), as a
    /// gateway for many mailboxes does.
    pub impersonate: bool,
    /// Streaming on connections shared with other mailboxes of the same
    /// server (`None`: a connection of its own).
    pub stream_hub: Option<group::StreamHub>,
    /// Counts each `ErrorServerBusy` the server answered (shared by a
    /// service's mailboxes, for its metrics).
    pub throttled: Option<ThrottleCount>,
    /// How long an unused connection is kept open (IIS closes them after
    /// 120 s; a gateway with thousands of mostly idle mailboxes keeps them briefly).
    pub idle_keep: Duration,
    /// Requests in flight at once, shared by a service's mailboxes (their
    /// account's `EWSMaxConcurrency`, 27 by default); `None`: no bound.
    /// Streaming connections do not take a slot.
    pub request_slots: Option<RequestSlots>,
    /// Idle connections shared with the other mailboxes of the same account
    /// (`None`: this client's own, at most four).
    pub connection_pool: Option<ConnectionPool>,
}

/// A bound on concurrent EWS requests, shared; cheap to clone.
#[derive(Debug, Clone)]
pub struct RequestSlots(pub Arc<tokio::sync::Semaphore>);

impl RequestSlots {
    /// At most `n` requests at once.
    pub fn new(n: usize) -> RequestSlots {
        RequestSlots(Arc::new(tokio::sync::Semaphore::new(n.max(1))))
    }
}

/// How often Exchange said it was busy; cheap to clone, shared.
#[derive(Debug, Clone, Default)]
pub struct ThrottleCount(pub Arc<std::sync::atomic::AtomicU64>);

impl ThrottleCount {
    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl ClientConfig {
    /// Defaults for `email` with `credentials`.
    pub fn new(email: impl Into<String>, credentials: Credentials) -> Self {
        ClientConfig {
            email: email.into(),
            ews_url: None,
            credentials,
            extra_ca_pem: None,
            resolve: HashMap::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(100),
            stream_idle_timeout: Duration::from_secs(95),
            retry: RetryPolicy::default(),
            autodiscover_cache: None,
            impersonate: false,
            stream_hub: None,
            throttled: None,
            idle_keep: Duration::from_secs(110),
            request_slots: None,
            connection_pool: None,
        }
    }
}

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A URL we cannot use.
    #[error("cannot use the URL {url}: {reason}")]
    Url { url: String, reason: String },
    /// Credentials would travel unencrypted.
    #[error("refusing to send credentials to {target} without HTTPS")]
    Insecure { target: String },
    /// No connection.
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    /// TLS failed (certificate not trusted, wrong name, …).
    #[error("TLS with {target} failed: {reason}")]
    Tls { target: String, reason: String },
    /// No answer in time.
    #[error("{target} did not answer within {secs} s")]
    Timeout {
        target: String,
        /// How long we waited.
        secs: u64,
    },
    /// The server refused the credentials.
    #[error("sign-in to {target} refused ({scheme}; the server offers {offered}): {}", refused_advice(scheme))]
    Auth {
        target: String,
        /// Which scheme.
        scheme: &'static str,
        /// The schemes its `WWW-Authenticate` headers name.
        offered: String,
    },
    /// The server does not offer the sign-in we are set up for.
    #[error("{target} does not offer {tried} sign-in; it offers {offered}")]
    SchemeNotOffered {
        target: String,
        /// What we are set up for.
        tried: &'static str,
        /// What it offers.
        offered: String,
    },
    /// Kerberos could not sign in, or the server did not prove itself.
    #[error("Kerberos sign-in to {target}: {error}")]
    Kerberos {
        target: String,
        /// GSSAPI's reason.
        error: lamplighter_gssapi::GssError,
    },
    /// Something that is not Exchange answered: a reverse proxy's login page, a captive portal.
    #[error("a proxy or login page answered instead of Exchange at {target} ({detail})")]
    NotExchange {
        target: String,
        /// `HTTP 200, text/html` or `HTTP 302 to …`.
        detail: String,
    },
    /// HTTP 403.
    #[error("{target} denies access (HTTP 403); EWS may be disabled for this mailbox")]
    Forbidden { target: String },
    /// Another HTTP status.
    #[error("HTTP {status} from {target}")]
    Http {
        target: String,
        status: u16,
        /// `Retry-After`, if given.
        retry_after: Option<Duration>,
    },
    /// ErrorServerBusy with a back-off longer than we wait inside one call.
    #[error("the server is busy and asks to wait {} s", .0.as_secs())]
    Throttled(Duration),
    /// A malformed response, a SOAP fault, or one that is too large.
    #[error(transparent)]
    Ews(#[from] EwsError),
    /// An operation's response message said no.
    #[error("{operation} failed: {code:?}: {message}")]
    Response {
        operation: &'static str,
        /// The response code.
        code: ResponseCode,
        /// `MessageText`.
        message: String,
    },
    /// The connection broke.
    #[error("the connection broke: {0}")]
    Broken(String),
    /// Autodiscover found nothing.
    #[error("Autodiscover found no EWS URL for {email}; tried: {tried}")]
    Autodiscover {
        /// The address.
        email: String,
        /// What was tried, and what each said.
        tried: String,
    },
    /// The token provider failed.
    #[error("no OAuth2 token: {0}")]
    Token(String),
    /// A local file could not be written.
    #[error("cannot write {path}: {reason}")]
    File {
        /// The file.
        path: String,
        reason: String,
    },
}

fn refused_advice(scheme: &str) -> &'static str {
    if scheme == "Kerberos" {
        "the server does not accept your Kerberos ticket (is this user allowed on the mailbox? `klist` shows whose ticket it is)"
    } else {
        "check the user name and password"
    }
}

impl ClientError {
    /// Worth another try after a pause.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Connect { .. } | ClientError::Timeout { .. } | ClientError::Broken(_) => true,
            ClientError::Http { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

fn server_busy(e: &ClientError) -> Option<Option<Duration>> {
    match e {
        ClientError::Ews(EwsError::Fault(f))
            if f.response_code == Some(ResponseCode::ServerBusy) || f.code.ends_with("ErrorServerBusy") =>
        {
            Some(f.back_off)
        }
        _ => None,
    }
}

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    let f = 0.75 + f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) * 0.5;
    d.mul_f64(f)
}

/// A response parser of `lamplighter-ews-wire`.
type Parser<T> = fn(&[u8]) -> Result<Vec<ResponseMessage<T>>, EwsError>;

/// A client of one mailbox's EWS endpoint.
pub struct EwsClient {
    http: Http,
    config: ClientConfig,
    target: Target,
    url: String,
}

/// A GetStreamingEvents response, frame by frame.
pub struct EventStream {
    body: hyper::body::Incoming,
    splitter: lamplighter_ews_wire::FrameSplitter,
    pending: std::collections::VecDeque<Vec<u8>>,
    idle: Duration,
    target: String,
}

impl EventStream {
    /// The next frame's messages; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Option<Result<Vec<ResponseMessage<StreamingBody>>, ClientError>> {
        use http_body_util::BodyExt as _;
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(lamplighter_ews_wire::parse_streaming_frame(&frame).map_err(ClientError::Ews));
            }
            match tokio::time::timeout(self.idle, self.body.frame()).await {
                Err(_) => {
                    return Some(Err(ClientError::Timeout { target: self.target.clone(), secs: self.idle.as_secs() }));
                }
                Ok(None) => {
                    return if self.splitter.pending() > 0 {
                        Some(Err(ClientError::Broken("the stream ended inside a frame".into())))
                    } else {
                        None
                    };
                }
                Ok(Some(Err(e))) => return Some(Err(ClientError::Broken(e.to_string()))),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        match self.splitter.push(&data) {
                            Ok(frames) => self.pending.extend(frames),
                            Err(e) => return Some(Err(ClientError::Ews(e))),
                        }
                    }
                }
            }
        }
    }
}

/// How big one GetAttachment answer may be (base64 of a long recording).
const MAX_ATTACHMENT_RESPONSE: u64 = 256 << 20;

impl EwsClient {
    /// A client for `config`: Autodiscover runs when no EWS URL is given.
    pub async fn connect(config: ClientConfig) -> Result<EwsClient, ClientError> {
        let http = Http::new(HttpOptions {
            extra_ca_pem: config.extra_ca_pem.clone(),
            resolve: config.resolve.iter().map(|(k, v)| (k.to_ascii_lowercase(), *v)).collect(),
            connect_timeout: config.connect_timeout,
            user_agent: format!("Lamplighter/{} (EWS)", env!("CARGO_PKG_VERSION")),
            idle_keep: config.idle_keep,
            pool: config.connection_pool.clone(),
        })?;
        let url = match &config.ews_url {
            Some(u) => u.clone(),
            None => match config.autodiscover_cache.as_deref().and_then(|c| autodiscover::cached(c, &config.email)) {
                Some(u) => u,
                None => {
                    let u = autodiscover::discover(&http, &config.credentials, &config.email, config.request_timeout)
                        .await?;
                    if let Some(c) = &config.autodiscover_cache
                        && let Err(e) = autodiscover::remember(c, &config.email, &u)
                    {
                        log::warn!("cannot keep the Autodiscover result in {}: {e}", c.display());
                    }
                    u
                }
            },
        };
        let target = Target::parse(&url)?;
        Ok(EwsClient { http, config, target, url })
    }

    /// The EWS URL in use.
    pub fn ews_url(&self) -> &str {
        &self.url
    }

    /// How the last request signed in (`None` before any did).
    pub fn sign_in(&self) -> Option<SignIn> {
        self.http.sign_in()
    }

    /// The backend cookie Exchange set (its mailbox server), once Subscribe has answered.
    pub fn backend_cookie(&self) -> Option<String> {
        self.http.backend_cookie()
    }

    /// The request as sent: with the impersonation header when acting for the mailbox.
    fn as_sent(&self, xml: String) -> Bytes {
        if self.config.impersonate {
            Bytes::from(lamplighter_ews_wire::request::impersonating(&xml, &self.config.email))
        } else {
            Bytes::from(xml)
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("x-anchormailbox", self.config.email.clone()),
            ("x-preferserveraffinity", "true".into()),
            ("soapaction", String::new()),
        ]
    }

    /// One POST, no retry: the body of a 200 or of a 500 carrying a SOAP fault.
    async fn post(&self, xml: String) -> Result<Bytes, ClientError> {
        // a service's mailboxes share its EWSMaxConcurrency: a slot for the whole exchange
        let _slot = match &self.config.request_slots {
            Some(s) => {
                Some(s.0.clone().acquire_owned().await.map_err(|_| ClientError::Broken("shutting down".into()))?)
            }
            None => None,
        };
        let target = self.target.origin();
        let headers = self.headers();
        let send = self.http.send("POST", &self.target, self.as_sent(xml), &headers, &self.config.credentials, false);
        let reply = tokio::time::timeout(self.config.request_timeout, send).await.map_err(|_| {
            ClientError::Timeout { target: target.clone(), secs: self.config.request_timeout.as_secs() }
        })??;
        let (status, headers, body, conn) = reply.into_parts();
        let is_xml = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("xml"));
        let bytes =
            http::read_body(body, lamplighter_ews_wire::MAX_RESPONSE_BYTES, self.config.request_timeout, &target)
                .await?;
        self.http.checkin(conn);
        if let Some(detail) = not_exchange(status, &headers, &bytes) {
            return Err(ClientError::NotExchange { target, detail });
        }
        match status {
            200 => Ok(bytes),
            500 if is_xml => Ok(bytes),
            403 => Err(ClientError::Forbidden { target }),
            s => {
                let retry_after = headers
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Err(ClientError::Http { target, status: s, retry_after })
            }
        }
    }

    /// One operation with retries: transport trouble and ErrorServerBusy are retried, the rest returned.
    async fn call<T>(
        &self,
        op: &'static str,
        xml: String,
        parse: Parser<T>,
    ) -> Result<Vec<ResponseMessage<T>>, ClientError> {
        let policy = self.config.retry;
        let mut delay = policy.initial;
        let mut attempt = 1;
        loop {
            let result = match self.post(xml.clone()).await {
                Ok(bytes) => parse(&bytes).map_err(ClientError::Ews),
                Err(e) => Err(e),
            };
            // ErrorServerBusy inside a response message counts like the fault
            let busy = match &result {
                Ok(msgs) => msgs.iter().find(|m| m.code == ResponseCode::ServerBusy).map(|m| m.back_off),
                Err(e) => server_busy(e),
            };
            let wait = match (&result, busy) {
                (_, Some(back_off)) => {
                    let back_off = back_off.unwrap_or(delay);
                    if let Some(t) = &self.config.throttled {
                        t.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    if back_off > policy.max_server_back_off || attempt >= policy.attempts {
                        return Err(ClientError::Throttled(back_off));
                    }
                    log::warn!("{op}: server busy, waiting {} ms as asked", back_off.as_millis());
                    back_off
                }
                (Ok(_), None) => return result,
                (Err(e), None) if e.is_retryable() && attempt < policy.attempts => {
                    let wait = match e {
                        ClientError::Http { retry_after: Some(r), .. } => (*r).min(policy.max_server_back_off),
                        _ => jitter(delay),
                    };
                    log::warn!("{op}: {e}; attempt {attempt} of {}, next in {} ms", policy.attempts, wait.as_millis());
                    wait
                }
                (Err(_), None) => return result,
            };
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(policy.max);
            attempt += 1;
        }
    }

    fn first_ok<T>(op: &'static str, msgs: Vec<ResponseMessage<T>>) -> Result<T, ClientError> {
        let m = msgs
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Ews(EwsError::Malformed(format!("{op}: no response message"))))?;
        match (m.class, m.body) {
            (ResponseClass::Error, _) | (_, None) => {
                Err(ClientError::Response { operation: op, code: m.code, message: m.message.unwrap_or_default() })
            }
            (_, Some(b)) => Ok(b),
        }
    }

    /// Every item of a distinguished folder (`voicemail`, `inbox`), page by page.
    pub async fn find_all(&self, folder: &'static str, page_size: u32) -> Result<Vec<Item>, ClientError> {
        let mut req = FindItemRequest::first_page(folder, page_size);
        let mut items = Vec::new();
        loop {
            let page = Self::first_ok(
                "FindItem",
                self.call("FindItem", req.to_xml(), lamplighter_ews_wire::parse_find_item).await?,
            )?;
            let next = req.next(&page);
            items.extend(page.items);
            match next {
                Some(n) => req = n,
                None => return Ok(items),
            }
        }
    }

    /// Items with their internet headers, attachments and UM properties; items deleted meanwhile are left out.
    pub async fn get_items(&self, ids: &[ItemId]) -> Result<Vec<Item>, ClientError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(50) {
            let req = GetItemRequest { ids: chunk.to_vec(), server_version: SERVER_VERSION };
            for m in self.call("GetItem", req.to_xml(), lamplighter_ews_wire::parse_get_item).await? {
                match (m.class, m.body) {
                    (ResponseClass::Error, _) if m.code == ResponseCode::ItemNotFound => {}
                    (ResponseClass::Error, _) => {
                        return Err(ClientError::Response {
                            operation: "GetItem",
                            code: m.code,
                            message: m.message.unwrap_or_default(),
                        });
                    }
                    (_, Some(items)) => out.extend(items),
                    (_, None) => {}
                }
            }
        }
        Ok(out)
    }

    /// Sets an item's read flag; returns its id with the new change key.
    ///
    /// Policy: the change key is sent and `AutoResolve` applies the flag
    /// even if the item changed meanwhile (a read flag overwrites nothing of
    /// value); an item deleted meanwhile is `ErrorItemNotFound`.
    pub async fn mark_read(&self, id: &ItemId, read: bool) -> Result<ItemId, ClientError> {
        let req = MarkReadRequest {
            items: vec![(id.clone(), read)],
            conflict: ConflictPolicy::AutoResolve,
            server_version: SERVER_VERSION,
        };
        let items = Self::first_ok(
            "UpdateItem",
            self.call("UpdateItem", req.to_xml(), lamplighter_ews_wire::parse_update_item).await?,
        )?;
        Ok(items.into_iter().next().map(|i| i.id).unwrap_or_else(|| id.clone()))
    }

    /// Streams an attachment into `dest` (written as `dest.part`, mode 0600, then renamed),
    /// reporting decoded bytes to `progress`. Nothing is left behind on failure.
    pub async fn download_attachment(
        &self,
        attachment_id: &str,
        dest: &Path,
        mut progress: impl FnMut(u64),
    ) -> Result<AttachmentMeta, ClientError> {
        use http_body_util::BodyExt as _;
        use tokio::io::AsyncWriteExt as _;
        let file_err =
            |e: std::io::Error| ClientError::File { path: dest.display().to_string(), reason: e.to_string() };
        let part = dest.with_extension("part");
        let target = self.target.origin();
        let xml = GetAttachmentRequest { id: attachment_id.to_string(), server_version: SERVER_VERSION }.to_xml();
        let reply = tokio::time::timeout(
            self.config.request_timeout,
            self.http.send("POST", &self.target, self.as_sent(xml), &self.headers(), &self.config.credentials, false),
        )
        .await
        .map_err(|_| ClientError::Timeout { target: target.clone(), secs: self.config.request_timeout.as_secs() })??;
        let (status, _, mut body, conn) = reply.into_parts();
        if status != 200 && status != 500 {
            return Err(ClientError::Http { target, status, retry_after: None });
        }
        let mut opts = tokio::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let mut file = opts.open(&part).await.map_err(file_err)?;
        let result: Result<AttachmentMeta, ClientError> = async {
            let mut decoder = AttachmentDecoder::new();
            let mut seen: u64 = 0;
            loop {
                let frame =
                    tokio::time::timeout(self.config.stream_idle_timeout, body.frame()).await.map_err(|_| {
                        ClientError::Timeout { target: target.clone(), secs: self.config.stream_idle_timeout.as_secs() }
                    })?;
                let Some(frame) = frame else { break };
                let frame = frame.map_err(|e| ClientError::Broken(e.to_string()))?;
                if let Ok(data) = frame.into_data() {
                    seen += data.len() as u64;
                    if seen > MAX_ATTACHMENT_RESPONSE {
                        return Err(ClientError::Ews(EwsError::TooLarge {
                            size: seen as usize,
                            limit: MAX_ATTACHMENT_RESPONSE as usize,
                        }));
                    }
                    let out = decoder.push(&data)?;
                    if !out.is_empty() {
                        file.write_all(&out).await.map_err(file_err)?;
                        progress(decoder.decoded());
                    }
                }
            }
            file.flush().await.map_err(file_err)?;
            Self::first_ok("GetAttachment", decoder.finish()?)
        }
        .await;
        drop(file);
        match result {
            Ok(meta) => {
                self.http.checkin(conn);
                tokio::fs::rename(&part, dest).await.map_err(file_err)?;
                Ok(meta)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                Err(e)
            }
        }
    }

    /// Subscribe to the Inbox.
    pub async fn subscribe(&self, kind: SubscriptionKind) -> Result<Vec<ResponseMessage<Subscription>>, ClientError> {
        let req = SubscribeRequest { folders: vec!["inbox"], kind, server_version: SERVER_VERSION };
        self.call("Subscribe", req.to_xml(), lamplighter_ews_wire::parse_subscribe).await
    }

    /// End a subscription.
    pub async fn unsubscribe(&self, subscription_id: &str) -> Result<(), ClientError> {
        let req = UnsubscribeRequest { subscription_id: subscription_id.to_string(), server_version: SERVER_VERSION };
        Self::first_ok("Unsubscribe", {
            let mut m = self.call("Unsubscribe", req.to_xml(), lamplighter_ews_wire::parse_unsubscribe).await?;
            for x in &mut m {
                x.body = Some(());
            }
            m
        })
    }

    /// SyncFolderItems on the Inbox from `state`.
    pub async fn sync_inbox(
        &self,
        state: Option<String>,
        max: MaxChanges,
    ) -> Result<Vec<ResponseMessage<SyncPage>>, ClientError> {
        let req = SyncFolderItemsRequest {
            folder: "inbox",
            sync_state: state,
            max_changes: max,
            server_version: SERVER_VERSION,
        };
        self.call("SyncFolderItems", req.to_xml(), lamplighter_ews_wire::parse_sync_folder_items).await
    }

    /// GetEvents of a pull subscription.
    pub async fn get_events(
        &self,
        subscription_id: &str,
        watermark: &str,
    ) -> Result<Vec<ResponseMessage<PullNotification>>, ClientError> {
        let req = GetEventsRequest {
            subscription_id: subscription_id.to_string(),
            watermark: watermark.to_string(),
            server_version: SERVER_VERSION,
        };
        self.call("GetEvents", req.to_xml(), lamplighter_ews_wire::parse_get_events).await
    }

    /// Opens GetStreamingEvents on its own connection.
    pub async fn open_stream(
        &self,
        subscription_id: &str,
        connection_timeout_minutes: u8,
    ) -> Result<EventStream, ClientError> {
        self.open_group_stream(&[subscription_id.to_string()], connection_timeout_minutes).await
    }

    /// GetStreamingEvents for up to 200 subscriptions of mailboxes on one
    /// server (one group: their Subscribe answers set the same backend
    /// cookie), sent as this client's mailbox, the group's anchor.
    pub async fn open_group_stream(
        &self,
        subscription_ids: &[String],
        connection_timeout_minutes: u8,
    ) -> Result<EventStream, ClientError> {
        let target = self.target.origin();
        let xml = GetStreamingEventsRequest {
            subscription_ids: subscription_ids.to_vec(),
            connection_timeout_minutes,
            server_version: SERVER_VERSION,
        }
        .to_xml();
        let reply = tokio::time::timeout(
            self.config.request_timeout,
            self.http.send("POST", &self.target, self.as_sent(xml), &self.headers(), &self.config.credentials, true),
        )
        .await
        .map_err(|_| ClientError::Timeout { target: target.clone(), secs: self.config.request_timeout.as_secs() })??;
        let (status, headers, body, _conn) = reply.into_parts();
        let is_xml = headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("xml"));
        if let Some(detail) = not_exchange(status, &headers, b"") {
            return Err(ClientError::NotExchange { target, detail });
        }
        match status {
            200 => {}
            500 if is_xml => {
                let bytes = http::read_body(body, 1 << 20, self.config.request_timeout, &target).await?;
                let e = lamplighter_ews_wire::parse_streaming_frame(&bytes)
                    .err()
                    .unwrap_or_else(|| EwsError::Malformed("HTTP 500 without a SOAP fault".into()));
                return Err(ClientError::Ews(e));
            }
            403 => return Err(ClientError::Forbidden { target }),
            s => return Err(ClientError::Http { target, status: s, retry_after: None }),
        }
        Ok(EventStream {
            body,
            splitter: lamplighter_ews_wire::FrameSplitter::new(8 << 20),
            pending: Default::default(),
            idle: self.config.stream_idle_timeout,
            target,
        })
    }

    /// Drops idle connections (they are reopened, and signed in again, on demand).
    pub fn reset_connections(&self) {
        self.http.forget_connections();
    }
}

/// Whether an answer comes from something other than Exchange: an HTML page
/// (a reverse proxy's login form answers 200 with it) or a redirect (EWS
/// never redirects a POST). Says what was seen.
fn not_exchange(status: u16, headers: &hyper::HeaderMap, body: &[u8]) -> Option<String> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if (300..400).contains(&status) {
        let location = headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("nowhere");
        let shown: String = location.chars().take(120).collect();
        return Some(format!("HTTP {status} to {shown}"));
    }
    let start: Vec<u8> =
        body.iter().skip_while(|b| b.is_ascii_whitespace()).take(15).map(u8::to_ascii_lowercase).collect();
    let html_body = start.starts_with(b"<!doctype html") || start.starts_with(b"<html");
    if status == 200 && (content_type.contains("html") || html_body) {
        let kind = if content_type.is_empty() { "an HTML page".to_string() } else { content_type };
        return Some(format!("HTTP 200, {kind}"));
    }
    None
}
