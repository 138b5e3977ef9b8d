//! HTTP/1.1 for EWS, on hyper's connection API rather than a pooled client,
//! because NTLM authenticates *connections*: the negotiate, challenge and
//! authenticate legs must share one kept-alive connection, which then stays
//! signed in. A general-purpose pool (reqwest's) may hand each leg a
//! different connection, so we keep our own: idle connections per origin,
//! each knowing whether it is authenticated. The streaming request takes a
//! connection for itself.
//!
//! Connections and TLS (the system's roots plus an optional extra CA,
//! verification never off) are `lamplighter-https`'s. Credentials are only
//! ever sent over HTTPS or to loopback (the simulator). The backend cookie Exchange sets for
//! affinity is kept and replayed.

use crate::{ClientError, Credentials, Password, SignIn};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, Uri};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, ClientError> {
        let bad = |reason: &str| ClientError::Url { url: url.to_string(), reason: reason.to_string() };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be https (or http for loopback)")),
        };
        let host = uri.host().ok_or_else(|| bad("no host"))?.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
        Ok(Target { https, host, port, path })
    }

    pub(crate) fn origin(&self) -> String {
        format!("{}://{}:{}", if self.https { "https" } else { "http" }, self.host, self.port)
    }

    fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let default = if self.https { 443 } else { 80 };
        if self.port == default { host } else { format!("{host}:{}", self.port) }
    }

    /// Credentials may go here: HTTPS, or plain HTTP to this machine.
    pub(crate) fn may_carry_credentials(&self, resolved: Option<SocketAddr>) -> bool {
        self.https
            || self.host == "localhost"
            || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
            || resolved.is_some_and(|a| a.ip().is_loopback())
    }
}

struct Conn {
    origin: String,
    sender: SendRequest<Full<Bytes>>,
    authenticated: bool,
}

/// A response whose connection goes back to the pool once its body is read.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Incoming,
    conn: Conn,
}

/// Options of the transport.
#[derive(Clone)]
pub(crate) struct HttpOptions {
    pub extra_ca_pem: Option<Vec<u8>>,
    pub resolve: HashMap<String, SocketAddr>,
    pub connect_timeout: Duration,
    pub user_agent: String,
    /// How long an unused connection is kept.
    pub idle_keep: Duration,
    /// Idle connections shared with other clients of the same account; `None`: this client's own.
    pub pool: Option<ConnectionPool>,
}

/// An idle connection and the mark that tells its reaper it is still the same one.
type Idle = Arc<Mutex<Vec<(u64, Conn)>>>;

/// Idle connections kept by one client: a desktop talks to one mailbox.
const OWN_IDLE: usize = 4;

/// Idle connections shared by the clients of one account (a gateway's
/// mailboxes, all reached as its service account): a request takes any idle
/// connection to its origin, so thousands of mailboxes need about as many
/// connections as requests in flight, not one each. Share a pool only among
/// clients with the same credentials: NTLM and Kerberos sign in connections,
/// and a pooled connection stays signed in as the account that did.
/// Cookies stay each client's own (a mailbox's backend cookie is its own).
#[derive(Clone)]
pub struct ConnectionPool {
    idle: Idle,
    next: Arc<std::sync::atomic::AtomicU64>,
    max_idle: usize,
}

impl ConnectionPool {
    /// At most `max_idle` idle connections are kept; more are closed.
    pub fn new(max_idle: usize) -> ConnectionPool {
        ConnectionPool { idle: Idle::default(), next: Arc::default(), max_idle: max_idle.max(1) }
    }

    /// Idle connections now.
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl std::fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPool").field("idle", &self.idle()).field("max_idle", &self.max_idle).finish()
    }
}

pub(crate) struct Http {
    tls: lamplighter_https::Tls,
    options: HttpOptions,
    idle: Idle,
    next_idle: Arc<std::sync::atomic::AtomicU64>,
    max_idle: usize,
    cookies: Mutex<Vec<(String, String)>>,
    sign_in: Mutex<Option<SignIn>>,
}

fn https_error(e: lamplighter_https::HttpsError) -> ClientError {
    use lamplighter_https::HttpsError as H;
    match e {
        H::Ca(reason) => ClientError::Tls { target: "CA file".into(), reason },
        H::Setup(reason) => ClientError::Tls { target: "TLS setup".into(), reason },
        H::Connect { target, reason } => ClientError::Connect { target, reason },
        H::Tls { target, reason } => ClientError::Tls { target, reason },
        H::Timeout { target, secs } => ClientError::Timeout { target, secs },
    }
}

impl Http {
    pub(crate) fn new(options: HttpOptions) -> Result<Http, ClientError> {
        let pool = options.pool.clone().unwrap_or_else(|| ConnectionPool::new(OWN_IDLE));
        Ok(Http {
            tls: lamplighter_https::Tls::new(options.extra_ca_pem.as_deref()).map_err(https_error)?,
            options,
            idle: pool.idle,
            next_idle: pool.next,
            max_idle: pool.max_idle,
            cookies: Mutex::new(Vec::new()),
            sign_in: Mutex::new(None),
        })
    }

    fn resolved(&self, t: &Target) -> Option<SocketAddr> {
        self.options.resolve.get(&t.host.to_ascii_lowercase()).copied()
    }

    async fn connect(&self, t: &Target) -> Result<Conn, ClientError> {
        let to =
            lamplighter_https::Endpoint { https: t.https, host: t.host.clone(), port: t.port, fixed: self.resolved(t) };
        let sender =
            lamplighter_https::connect(&self.tls, &to, self.options.connect_timeout).await.map_err(https_error)?;
        Ok(Conn { origin: t.origin(), sender, authenticated: false })
    }

    async fn checkout(&self, t: &Target, fresh: bool) -> Result<Conn, ClientError> {
        if !fresh {
            let origin = t.origin();
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|(_, c)| !c.sender.is_closed());
            if let Some(i) = idle.iter().position(|(_, c)| c.origin == origin && c.sender.is_ready()) {
                return Ok(idle.swap_remove(i).1);
            }
        }
        self.connect(t).await
    }

    /// Returns a connection whose response body was read completely.
    pub(crate) fn checkin(&self, reply_conn: ReplyConn) {
        let conn = reply_conn.0;
        if !conn.sender.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max_idle {
                let mark = self.next_idle.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                idle.push((mark, conn));
                // unused for idle_keep, it is closed (IIS closes idle connections after 2 minutes anyway)
                let keep = self.options.idle_keep;
                let pool = Arc::downgrade(&self.idle);
                tokio::spawn(async move {
                    tokio::time::sleep(keep).await;
                    if let Some(pool) = pool.upgrade() {
                        pool.lock().unwrap_or_else(|p| p.into_inner()).retain(|(m, _)| *m != mark);
                    }
                });
            }
        }
    }

    /// Drops every idle connection (after a server restart, or on shutdown),
    /// the shared pool's too: after a restart they are all dead.
    pub(crate) fn forget_connections(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// `X-BackEndOverrideCookie` (or `X-BackEndCookie`), if Exchange set one.
    pub(crate) fn backend_cookie(&self) -> Option<String> {
        self.cookies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(n, _)| n.to_ascii_lowercase().starts_with("x-backend"))
            .map(|(_, v)| v.clone())
    }

    fn remember_cookies(&self, headers: &hyper::HeaderMap) {
        for v in headers.get_all("set-cookie") {
            let Ok(v) = v.to_str() else { continue };
            let Some((name, rest)) = v.split_once('=') else { continue };
            let name = name.trim();
            if name.eq_ignore_ascii_case("X-BackEndOverrideCookie") || name.eq_ignore_ascii_case("X-BackEndCookie") {
                let value = rest.split(';').next().unwrap_or("").trim().to_string();
                let mut jar = self.cookies.lock().unwrap_or_else(|p| p.into_inner());
                jar.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                jar.push((name.to_string(), value));
            }
        }
    }

    fn build(
        &self,
        method: &str,
        t: &Target,
        body: &Bytes,
        headers: &[(&str, String)],
        authorization: Option<&str>,
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut b = Request::builder()
            .method(method)
            .uri(t.path.as_str())
            .header("host", t.authority())
            .header("user-agent", self.options.user_agent.as_str())
            .header("accept", "text/xml");
        if !body.is_empty() {
            b = b.header("content-type", "text/xml; charset=utf-8");
        }
        let cookies: Vec<String> =
            self.cookies.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(n, v)| format!("{n}={v}")).collect();
        if !cookies.is_empty() {
            b = b.header("cookie", cookies.join("; "));
        }
        for (k, v) in headers {
            b = b.header(*k, v.as_str());
        }
        if let Some(a) = authorization {
            b = b.header("authorization", a);
        }
        b.body(Full::new(body.clone())).map_err(|e| ClientError::Url { url: t.origin(), reason: e.to_string() })
    }

    async fn send_on(&self, conn: &mut Conn, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, ClientError> {
        conn.sender.ready().await.map_err(|e| ClientError::Broken(e.to_string()))?;
        let resp = conn.sender.send_request(req).await.map_err(|e| ClientError::Broken(e.to_string()))?;
        self.remember_cookies(resp.headers());
        Ok(resp)
    }

    /// Sends one request with authentication; `fresh` asks for a new connection (the stream).
    pub(crate) async fn send(
        &self,
        method: &str,
        t: &Target,
        body: Bytes,
        headers: &[(&str, String)],
        creds: &Credentials,
        fresh: bool,
    ) -> Result<Reply, ClientError> {
        let origin = t.origin();
        let secure = t.may_carry_credentials(self.resolved(t));
        if !secure && !matches!(creds, Credentials::None) {
            return Err(ClientError::Insecure { target: origin });
        }
        let mut conn = self.checkout(t, fresh).await?;
        let reply = |conn: Conn, resp: Response<Incoming>| {
            let (parts, body) = resp.into_parts();
            Reply { status: parts.status.as_u16(), headers: parts.headers, body, conn }
        };
        let req = Req { method, t, body: &body, headers };
        match creds {
            Credentials::None => {
                let resp = self.send_on(&mut conn, self.build(method, t, &body, headers, None)?).await?;
                Ok(reply(conn, resp))
            }
            Credentials::Basic { user, password } => {
                let resp = self.basic(&mut conn, &req, user, password).await?;
                Ok(reply(conn, resp))
            }
            Credentials::Bearer(provider) => {
                let mut last = None;
                for refresh in [false, true] {
                    let token = (provider)(refresh).await.map_err(ClientError::Token)?;
                    let value = format!("Bearer {}", token.expose());
                    let resp = self.send_on(&mut conn, self.build(method, t, &body, headers, Some(&value))?).await?;
                    if resp.status() != 401 {
                        self.set_sign_in(SignIn::Bearer);
                        return Ok(reply(conn, resp));
                    }
                    last = Some(refused(origin.clone(), "Bearer", &resp));
                    drain(resp.into_body()).await;
                }
                Err(last.unwrap_or(ClientError::Auth { target: origin, scheme: "Bearer", offered: String::new() }))
            }
            Credentials::Ntlm { user, password } => {
                if let Some(resp) = self.reuse(&mut conn, &req).await? {
                    return Ok(reply(conn, resp));
                }
                let resp = self.ntlm(&mut conn, &req, user, password).await?;
                Ok(reply(conn, resp))
            }
            Credentials::Negotiate { user, password } | Credentials::Auto { user, password } => {
                let auto = matches!(creds, Credentials::Auto { .. });
                if let Some(resp) = self.reuse(&mut conn, &req).await? {
                    return Ok(reply(conn, resp));
                }
                let resp = self.negotiate(&mut conn, &req, user, password.as_ref(), auto).await?;
                Ok(reply(conn, resp))
            }
        }
    }

    fn set_sign_in(&self, how: SignIn) {
        *self.sign_in.lock().unwrap_or_else(|p| p.into_inner()) = Some(how);
    }

    /// How the last request signed in.
    pub(crate) fn sign_in(&self) -> Option<SignIn> {
        self.sign_in.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// On a connection that signed in before (NTLM and Kerberos sign in
    /// connections), the request goes without a header; `None` when the
    /// server forgot it and a new sign-in is due.
    async fn reuse(&self, conn: &mut Conn, req: &Req<'_>) -> Result<Option<Response<Incoming>>, ClientError> {
        if !conn.authenticated {
            return Ok(None);
        }
        let resp = self.send_on(conn, req.build(self, None)?).await?;
        if resp.status() != 401 {
            return Ok(Some(resp));
        }
        drain(resp.into_body()).await;
        conn.authenticated = false;
        Ok(None)
    }

    async fn basic(
        &self,
        conn: &mut Conn,
        req: &Req<'_>,
        user: &str,
        password: &Password,
    ) -> Result<Response<Incoming>, ClientError> {
        use base64::Engine as _;
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose()))
        );
        let resp = self.send_on(conn, req.build(self, Some(&value))?).await?;
        if resp.status() == 401 {
            return Err(refused(req.t.origin(), "Basic", &resp));
        }
        self.set_sign_in(SignIn::Basic);
        Ok(resp)
    }

    /// NTLM, or the same tokens under Negotiate for a server that offers only that.
    async fn ntlm(
        &self,
        conn: &mut Conn,
        req: &Req<'_>,
        user: &str,
        password: &Password,
    ) -> Result<Response<Incoming>, ClientError> {
        let origin = req.t.origin();
        let mut scheme = "NTLM";
        let (challenge, offered) = loop {
            let negotiate = lamplighter_ntlm::header_with_scheme(scheme, &lamplighter_ntlm::negotiate());
            let resp = self.send_on(conn, req.build(self, Some(&negotiate))?).await?;
            if resp.status() != 401 {
                // no authentication needed after all
                self.set_sign_in(SignIn::Anonymous);
                return Ok(resp);
            }
            let offered = offered_schemes(&resp);
            let challenge = resp
                .headers()
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(lamplighter_ntlm::token_from_header);
            drain(resp.into_body()).await;
            let negotiate_only = !offers(&offered, "NTLM") && offers(&offered, "Negotiate") && scheme == "NTLM";
            match challenge {
                None if negotiate_only => scheme = "Negotiate",
                c => break (c, offered),
            }
        };
        let Some(challenge) = challenge else {
            return Err(ClientError::SchemeNotOffered { target: origin, tried: "NTLM", offered });
        };
        let challenge = lamplighter_ntlm::Challenge::parse(&challenge)
            .map_err(|e| ClientError::Broken(format!("NTLM challenge: {e}")))?;
        let creds = lamplighter_ntlm::Credentials { user: user.to_string(), password: password.expose().to_string() };
        let auth = lamplighter_ntlm::header_with_scheme(scheme, &lamplighter_ntlm::authenticate(&creds, &challenge));
        let resp = self.send_on(conn, req.build(self, Some(&auth))?).await?;
        if resp.status() == 401 {
            let scheme = if scheme == "NTLM" { "NTLM" } else { "NTLM under Negotiate" };
            return Err(refused(origin, scheme, &resp));
        }
        conn.authenticated = true;
        self.set_sign_in(if scheme == "NTLM" { SignIn::Ntlm } else { SignIn::NtlmUnderNegotiate });
        Ok(resp)
    }

    /// `negotiate` and `auto`: learns what the server offers, then Kerberos,
    /// then NTLM, then (`auto` only) Basic, as far as the password allows.
    async fn negotiate(
        &self,
        conn: &mut Conn,
        req: &Req<'_>,
        user: &str,
        password: Option<&Password>,
        auto: bool,
    ) -> Result<Response<Incoming>, ClientError> {
        let origin = req.t.origin();
        let resp = self.send_on(conn, req.build(self, None)?).await?;
        if resp.status() != 401 {
            self.set_sign_in(SignIn::Anonymous);
            return Ok(resp);
        }
        let offered = offered_schemes(&resp);
        drain(resp.into_body()).await;
        let mut kerberos = None;
        if offers(&offered, "Negotiate") {
            match self.kerberos(conn, req).await {
                Ok(Kerberos::SignedIn(resp)) => return Ok(resp),
                Ok(Kerberos::Refused) => {
                    kerberos =
                        Some(ClientError::Auth { target: origin.clone(), scheme: "Kerberos", offered: offered.clone() })
                }
                // a server that cannot prove itself gets nothing more from us
                Err(e @ ClientError::Kerberos { error: lamplighter_gssapi::GssError::MutualAuth { .. }, .. }) => {
                    return Err(e);
                }
                Err(e @ ClientError::Kerberos { .. }) => kerberos = Some(e),
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = &kerberos {
            log::info!("Kerberos not used ({e}); trying what else the server offers ({offered})");
        }
        if conn.sender.is_closed() {
            *conn = self.connect(req.t).await?;
        }
        if let Some(password) = password {
            if offers(&offered, "NTLM") || offers(&offered, "Negotiate") {
                return self.ntlm(conn, req, user, password).await;
            }
            if auto && offers(&offered, "Basic") {
                return self.basic(conn, req, user, password).await;
            }
        }
        Err(match kerberos {
            Some(e) => e,
            None => ClientError::SchemeNotOffered {
                target: origin,
                tried: if auto && password.is_some() {
                    "Kerberos, NTLM or Basic"
                } else if auto || password.is_none() {
                    "Kerberos (no password is saved for the others)"
                } else {
                    "Kerberos or NTLM"
                },
                offered,
            },
        })
    }

    /// SPNEGO legs toward `HTTP@host` with the user's ticket (RFC 4559).
    async fn kerberos(&self, conn: &mut Conn, req: &Req<'_>) -> Result<Kerberos, ClientError> {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let target = req.t.origin();
        let kerr = |error| ClientError::Kerberos { target: target.clone(), error };
        let host = req.t.host.clone();
        // the first step may ask the KDC for a service ticket: off the runtime's threads
        let (mut ctx, mut token) = tokio::task::spawn_blocking(move || {
            let mut ctx = lamplighter_gssapi::Initiator::new("HTTP", &host)?;
            let token = ctx.step(None)?;
            Ok::<_, lamplighter_gssapi::GssError>((ctx, token))
        })
        .await
        .map_err(|e| ClientError::Broken(e.to_string()))?
        .map_err(kerr)?;
        // SPNEGO with Kerberos takes one leg; a bound for anything longer
        for _ in 0..4 {
            let Some(out) = token.take() else { break };
            let value = format!("Negotiate {}", b64.encode(out));
            let resp = self.send_on(conn, req.build(self, Some(&value))?).await?;
            let answer = negotiate_token(&resp);
            if resp.status() == 401 {
                drain(resp.into_body()).await;
                match answer {
                    Some(a) if !ctx.is_complete() => {
                        token = ctx.step(Some(&a)).map_err(kerr)?;
                        continue;
                    }
                    _ => return Ok(Kerberos::Refused),
                }
            }
            // accepted: nothing of the answer is used before the server proved itself
            match answer {
                Some(a) if !ctx.is_complete() => {
                    ctx.step(Some(&a)).map_err(kerr)?;
                }
                _ => {}
            }
            ctx.require_complete().map_err(kerr)?;
            let (principal, _) = ctx.signed_in();
            conn.authenticated = true;
            self.set_sign_in(SignIn::Kerberos { principal, service: ctx.service().to_string() });
            return Ok(Kerberos::SignedIn(resp));
        }
        Err(kerr(lamplighter_gssapi::GssError::Failed {
            context: "Kerberos sign-in",
            major: 0,
            minor: 0,
            message: "the exchange did not end".into(),
        }))
    }
}

enum Kerberos {
    SignedIn(Response<Incoming>),
    /// The server answered our token with a plain 401.
    Refused,
}

/// One request, to build again for every leg of a sign-in.
struct Req<'a> {
    method: &'a str,
    t: &'a Target,
    body: &'a Bytes,
    headers: &'a [(&'a str, String)],
}

impl Req<'_> {
    fn build(&self, http: &Http, authorization: Option<&str>) -> Result<Request<Full<Bytes>>, ClientError> {
        http.build(self.method, self.t, self.body, self.headers, authorization)
    }
}

/// The token of a `WWW-Authenticate: Negotiate <base64>` header (bounded: 64 KiB).
fn negotiate_token(resp: &Response<Incoming>) -> Option<Vec<u8>> {
    use base64::Engine as _;
    resp.headers().get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("Negotiate") || token.len() > 65536 {
            return None;
        }
        base64::engine::general_purpose::STANDARD.decode(token.trim()).ok()
    })
}

/// The schemes a 401's `WWW-Authenticate` headers name, e.g. `Negotiate, NTLM`.
fn offered_schemes(resp: &Response<Incoming>) -> String {
    let names: Vec<String> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split_whitespace().next())
        .map(|s| s.trim_end_matches(',').chars().take(20).collect())
        .collect();
    if names.is_empty() { "no scheme".into() } else { names.join(", ") }
}

fn offers(offered: &str, scheme: &str) -> bool {
    offered.split(", ").any(|s| s.eq_ignore_ascii_case(scheme))
}

/// A 401 to our credentials: refused, or a scheme the server does not offer at all.
fn refused(target: String, scheme: &'static str, resp: &Response<Incoming>) -> ClientError {
    let offered = offered_schemes(resp);
    let base = scheme.split_whitespace().next().unwrap_or(scheme);
    if offers(&offered, base) || (base == "NTLM" && offers(&offered, "Negotiate")) {
        ClientError::Auth { target, scheme, offered }
    } else {
        ClientError::SchemeNotOffered { target, tried: scheme, offered }
    }
}

/// The connection of a [`Reply`], to hand back with [`Http::checkin`].
pub(crate) struct ReplyConn(Conn);

impl Reply {
    /// Splits off the connection (give it back once the body is read).
    pub(crate) fn into_parts(self) -> (u16, hyper::HeaderMap, Incoming, ReplyConn) {
        (self.status, self.headers, self.body, ReplyConn(self.conn))
    }
}

async fn drain(body: Incoming) {
    let _ = http_body_util::Limited::new(body, 1 << 20).collect().await;
}

/// Reads a whole body, at most `limit` bytes, within `timeout`.
pub(crate) async fn read_body(
    body: Incoming,
    limit: usize,
    timeout: Duration,
    target: &str,
) -> Result<Bytes, ClientError> {
    match tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect()).await {
        Err(_) => Err(ClientError::Timeout { target: target.to_string(), secs: timeout.as_secs() }),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                Err(ClientError::Ews(lamplighter_ews_wire::EwsError::TooLarge { size: limit + 1, limit }))
            } else {
                Err(ClientError::Broken(e.to_string()))
            }
        }
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}
