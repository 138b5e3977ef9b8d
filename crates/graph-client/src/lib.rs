//! The Microsoft Graph mailbox backend (Exchange Online after EWS): HTTPS
//! with a bearer token to the Graph service, the tokio driver of
//! `lamplighter-graph-sync`'s delta polling, and the user's actions.
//!
//! - [`GraphClient`]: one kept-alive connection (one request at a time is
//!   all the polling needs, well inside Graph's four per mailbox), the
//!   token from a [`TokenSource`] refreshed once on a 401, links from the
//!   server followed only on the service root, bodies bounded.
//! - [`driver`]: polls, enriches voicemails with their attachment list in
//!   `$batch`es of 20, hands changes and the connection state on.
//! - [`GraphBackend`]: the above as a [`lamplighter_mailbox::Backend`].
//!
//! Attachment handles given to the inbox are `<message id>|<attachment id>`:
//! Graph addresses an attachment through its message.

pub mod driver;
pub mod locate;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use lamplighter_graph_wire::{Attachment, Failure, MailFolder, request};
use lamplighter_mailbox::{
    Backend, BoxFuture, CheckStep, ItemId, MailboxCheck, MailboxError, MailboxEvent, StateStore, Tracking,
};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// A future that yields an access token.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;
/// Gives an access token; `true` asks for a fresh one (the last was refused).
pub type TokenSource = Arc<dyn Fn(bool) -> TokenFuture + Send + Sync>;

/// The largest body read; a page of 50 messages with text bodies is far below.
const BODY_LIMIT: usize = lamplighter_graph_wire::MAX_BODY;

/// Requests of one batch that Outlook serves side by side for one mailbox.
pub const MAX_CONCURRENT: usize = 4;

/// The most requests one reading of the folder tree makes.
pub const MAX_LISTING_REQUESTS: usize = 50;

/// The most folders one reading of the folder tree takes in.
pub const MAX_FOLDERS_READ: usize = 500;

/// Everything the backend needs.
#[derive(Clone)]
pub struct GraphConfig {
    /// `https://graph.microsoft.com/v1.0` (or a national cloud's, or the simulator's).
    pub root: String,
    /// The folder `check` reads: `inbox` (tracking follows every folder a voicemail may be in).
    pub folder: String,
    pub token: TokenSource,
    /// An extra CA to trust (a TLS-inspecting proxy's).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// An address for the root's host instead of resolving it.
    pub fixed_address: Option<SocketAddr>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Messages per delta page.
    pub page_size: u32,
    pub poll: lamplighter_graph_sync::PollConfig,
    /// The mailbox as `/users/{user}` (an app-only token reads many); `None`
    /// is the signed-in user's own, `/me`.
    pub user: Option<String>,
    /// Change notifications for this mailbox, from whoever receives them.
    pub nudge: Option<Nudge>,
}

/// Change notifications for one mailbox, handed to its polling by whoever
/// receives them (the gateway's webhook): a change (poll now, within the
/// back-off) and whether they flow (then delta polls only every
/// `pushed_every`, as a safety net; when they stop, the usual pace at once).
#[derive(Clone)]
pub struct Nudge {
    changed: Arc<tokio::sync::Notify>,
    flowing: Arc<tokio::sync::watch::Sender<bool>>,
    /// The safety net's pace while notifications flow.
    pub pushed_every: Duration,
}

impl Nudge {
    pub fn new(pushed_every: Duration) -> Nudge {
        Nudge {
            changed: Arc::new(tokio::sync::Notify::new()),
            flowing: Arc::new(tokio::sync::watch::channel(false).0),
            pushed_every,
        }
    }

    /// The mailbox changed (a notification, or a `missed` lifecycle event).
    pub fn changed(&self) {
        self.changed.notify_one();
    }

    /// Notifications flow (a live subscription) or not.
    pub fn set_flowing(&self, flowing: bool) {
        self.flowing.send_if_modified(|f| std::mem::replace(f, flowing) != flowing);
    }

    pub(crate) async fn wait_changed(&self) {
        self.changed.notified().await
    }

    pub(crate) fn flowing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.flowing.subscribe()
    }
}

impl GraphConfig {
    /// Defaults for `root` with `token`.
    pub fn new(root: impl Into<String>, token: TokenSource) -> GraphConfig {
        GraphConfig {
            root: root.into().trim_end_matches('/').to_string(),
            folder: "inbox".into(),
            token,
            extra_ca_pem: None,
            fixed_address: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            page_size: 50,
            poll: lamplighter_graph_sync::PollConfig::default(),
            user: None,
            nudge: None,
        }
    }
}

/// What went wrong talking to Graph.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphClientError {
    /// The root is not a URL we can use.
    #[error("cannot use the Graph root {0}: it must be https:// (or http:// to this machine)")]
    Root(String),
    #[error(transparent)]
    Https(#[from] lamplighter_https::HttpsError),
    /// No token (not signed in, the grant revoked).
    #[error("no Microsoft 365 token: {0}")]
    Token(String),
    /// A classified HTTP failure.
    #[error("HTTP {status}: {words}")]
    Http { status: u16, failure: Failure, words: String },
    /// The connection broke, or the answer did not come in time.
    #[error("the connection to Graph broke: {0}")]
    Broken(String),
    /// A body that does not read.
    #[error(transparent)]
    Wire(#[from] lamplighter_graph_wire::WireError),
    /// A local file.
    #[error("cannot write {path}: {reason}")]
    File { path: String, reason: String },
}

/// What a failed answer (on its own or inside a `$batch`) asks of the
/// caller, and words for it: Graph's error code and message, else the status.
fn failure_of(
    status: u16,
    retry_after: Option<&str>,
    www_authenticate: Option<&str>,
    body: &[u8],
) -> (Failure, String) {
    let failure = lamplighter_graph_wire::classify(status, retry_after, www_authenticate, body);
    let words = match lamplighter_graph_wire::parse_error(body) {
        Some(e) => format!("{}: {}", e.code, e.message),
        None => format!("HTTP {status}"),
    };
    (failure, words)
}

/// An answer.
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

/// HTTPS to Graph with a bearer token.
pub struct GraphClient {
    config: GraphConfig,
    endpoint: lamplighter_https::Endpoint,
    tls: lamplighter_https::Tls,
    conn: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
    /// The path of the root on its host (`/v1.0`).
    base_path: String,
    /// The Inbox's id and those of the folders not followed, once read.
    well_known: tokio::sync::Mutex<Option<(Option<String>, Vec<String>)>>,
}

impl GraphClient {
    /// A client for `config.root`; nothing is sent yet.
    pub fn new(config: GraphConfig) -> Result<GraphClient, GraphClientError> {
        let bad = || GraphClientError::Root(config.root.clone());
        let (https, rest) = if let Some(r) = config.root.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = config.root.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad());
        };
        let (authority, path) =
            rest.split_once('/').map(|(a, p)| (a, format!("/{p}"))).unwrap_or((rest, String::new()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (authority.to_string(), if https { 443 } else { 80 }),
        };
        // a token only over HTTPS, or to this machine (the simulator)
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !https && !loopback {
            return Err(bad());
        }
        let tls = lamplighter_https::Tls::new(config.extra_ca_pem.as_deref())?;
        let endpoint = lamplighter_https::Endpoint { https, host, port, fixed: config.fixed_address };
        Ok(GraphClient {
            config,
            endpoint,
            tls,
            conn: tokio::sync::Mutex::new(None),
            base_path: path,
            well_known: tokio::sync::Mutex::new(None),
        })
    }

    /// The service root.
    pub fn root(&self) -> &str {
        &self.config.root
    }

    /// `path` for this client's mailbox: `/me/…` as `/users/{user}/…` when one is set.
    fn scoped(&self, path: &str) -> String {
        match (&self.config.user, path.strip_prefix("/me/")) {
            (Some(u), Some(rest)) => format!("/users/{}/{rest}", request::encode_segment(u)),
            _ => path.to_string(),
        }
    }

    /// The HTTP answer to one request on this client's connection and token
    /// (for operations beside the mailbox's, such as subscriptions): status and body.
    pub async fn call(
        &self,
        method: hyper::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Bytes), GraphClientError> {
        let a = self.send(&method, path, body, None).await?;
        if (200..300).contains(&a.status) { Ok((a.status, a.body)) } else { Err(Self::failed(&a)) }
    }

    /// One request with the token, refreshed and sent again once on a 401.
    async fn send(
        &self,
        method: &hyper::Method,
        path: &str,
        body: Option<String>,
        prefer: Option<&str>,
    ) -> Result<Answer, GraphClientError> {
        let mut answer = None;
        for fresh in [false, true] {
            let token = (self.config.token)(fresh).await.map_err(GraphClientError::Token)?;
            let a = tokio::time::timeout(
                self.config.request_timeout,
                self.once(method, path, body.clone(), prefer, &token),
            )
            .await
            .map_err(|_| {
                GraphClientError::Broken(format!("no answer within {} s", self.config.request_timeout.as_secs()))
            })??;
            if a.status != 401 {
                return Ok(a);
            }
            answer = Some(a);
        }
        Ok(answer.expect("two tries"))
    }

    async fn once(
        &self,
        method: &hyper::Method,
        path: &str,
        body: Option<String>,
        prefer: Option<&str>,
        token: &str,
    ) -> Result<Answer, GraphClientError> {
        let mut conn = self.conn.lock().await;
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            *conn = Some(lamplighter_https::connect(&self.tls, &self.endpoint, self.config.connect_timeout).await?);
        }
        let sender = conn.as_mut().expect("connected");
        let mut b = hyper::Request::builder()
            .method(method.clone())
            .uri(format!("{}{}", self.base_path, self.scoped(path)))
            .header("host", self.endpoint.host.as_str())
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "application/json")
            .header("user-agent", concat!("Lamplighter/", env!("CARGO_PKG_VERSION")));
        // immutable ids on every request: a message keeps its id when moved
        b = b.header(
            "prefer",
            match prefer {
                Some(p) => format!("{}, {p}", request::IMMUTABLE_IDS),
                None => request::IMMUTABLE_IDS.to_string(),
            },
        );
        if body.is_some() {
            b = b.header("content-type", "application/json");
        }
        let req = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| GraphClientError::Broken(e.to_string()))?;
        let broken = |e: hyper::Error| GraphClientError::Broken(e.to_string());
        if sender.ready().await.is_err() {
            *conn = Some(lamplighter_https::connect(&self.tls, &self.endpoint, self.config.connect_timeout).await?);
        }
        let sender = conn.as_mut().expect("connected");
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                *conn = None;
                return Err(broken(e));
            }
        };
        let (parts, incoming) = resp.into_parts();
        let body = match http_body_util::Limited::new(incoming, BODY_LIMIT).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => {
                *conn = None;
                return Err(GraphClientError::Broken(format!("reading the answer: {e}")));
            }
        };
        Ok(Answer { status: parts.status.as_u16(), headers: parts.headers, body })
    }

    fn failed(a: &Answer) -> GraphClientError {
        let header = |n: &str| a.headers.get(n).and_then(|v| v.to_str().ok());
        let (failure, words) = failure_of(a.status, header("retry-after"), header("www-authenticate"), &a.body);
        GraphClientError::Http { status: a.status, failure, words }
    }

    async fn ok(
        &self,
        method: &hyper::Method,
        path: &str,
        body: Option<String>,
        prefer: Option<&str>,
    ) -> Result<Bytes, GraphClientError> {
        let a = self.send(method, path, body, prefer).await?;
        if (200..300).contains(&a.status) { Ok(a.body) } else { Err(Self::failed(&a)) }
    }

    fn delta_path(&self, folder: &str, step: &lamplighter_graph_sync::Request) -> Result<String, String> {
        match step {
            lamplighter_graph_sync::Request::Start => Ok(request::delta_start(folder)),
            lamplighter_graph_sync::Request::Follow(link) => {
                request::link_path(link, &self.config.root).map_err(|e| e.to_string())
            }
        }
    }

    /// One step of a folder's delta tracking (`folder`: `inbox` or an id), as the sans-IO core's answer.
    pub async fn delta(
        &self,
        folder: &str,
        step: &lamplighter_graph_sync::Request,
    ) -> lamplighter_graph_sync::Response {
        use lamplighter_graph_sync::Response as R;
        let path = match self.delta_path(folder, step) {
            Ok(p) => p,
            Err(e) => return R::Broken(e),
        };
        let prefer = request::prefer(self.config.page_size);
        match self.ok(&hyper::Method::GET, &path, None, Some(&prefer)).await {
            Ok(body) => match lamplighter_graph_wire::parse_delta(&body) {
                Ok(page) => R::Page(page),
                Err(e) => R::Broken(e.to_string()),
            },
            Err(e) => Self::as_response(e),
        }
    }

    fn as_response(e: GraphClientError) -> lamplighter_graph_sync::Response {
        use lamplighter_graph_sync::Response as R;
        match e {
            GraphClientError::Http { failure, words, .. } => R::Failed { failure, words },
            GraphClientError::Token(t) => {
                R::Failed { failure: Failure::Unauthorized { invalid_token: true }, words: t }
            }
            e => R::Broken(e.to_string()),
        }
    }

    /// Delta steps of several folders in one `$batch` (at most
    /// [`MAX_CONCURRENT`]: Outlook runs a batch's requests side by side and
    /// refuses more than four at once per mailbox); one answer per step, in order.
    pub async fn delta_batch(
        &self,
        steps: &[(String, lamplighter_graph_sync::Request)],
    ) -> Vec<lamplighter_graph_sync::Response> {
        use lamplighter_graph_sync::Response as R;
        use lamplighter_graph_wire::batch::{BatchRequest, batch_body, parse_batch};
        let mut out: Vec<Option<R>> = vec![None; steps.len()];
        let mut requests = Vec::new();
        for (n, (folder, step)) in steps.iter().enumerate() {
            match self.delta_path(folder, step) {
                Ok(url) => requests.push(BatchRequest {
                    id: n.to_string(),
                    method: "GET".into(),
                    url: self.scoped(&url),
                    headers: [(
                        "Prefer".to_string(),
                        format!("{}, {}", request::IMMUTABLE_IDS, request::prefer(self.config.page_size)),
                    )]
                    .into(),
                    body: None,
                }),
                Err(e) => out[n] = Some(R::Broken(e)),
            }
        }
        if !requests.is_empty() {
            let answer = match batch_body(&requests) {
                Ok(body) => self.ok(&hyper::Method::POST, "/$batch", Some(body), None).await,
                Err(e) => Err(e.into()),
            };
            match answer.and_then(|b| parse_batch(&b).map_err(GraphClientError::from)) {
                Ok(responses) => {
                    for r in responses {
                        let Some(slot) = r.id.parse::<usize>().ok().and_then(|n| out.get_mut(n)) else { continue };
                        if slot.is_some() {
                            continue;
                        }
                        let body = r.body.as_ref().map(|b| b.to_string()).unwrap_or_default();
                        *slot = Some(if r.status == 200 {
                            match lamplighter_graph_wire::parse_delta(body.as_bytes()) {
                                Ok(page) => R::Page(page),
                                Err(e) => R::Broken(e.to_string()),
                            }
                        } else {
                            let header = |name: &str| {
                                r.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
                            };
                            let (failure, words) = failure_of(
                                r.status,
                                header("retry-after"),
                                header("www-authenticate"),
                                body.as_bytes(),
                            );
                            R::Failed { failure, words }
                        });
                    }
                }
                Err(e) => {
                    let r = Self::as_response(e);
                    for slot in out.iter_mut().filter(|s| s.is_none()) {
                        *slot = Some(r.clone());
                    }
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| R::Broken("the batch did not answer this request".into())))
            .collect()
    }

    /// GETs of `paths` in `$batch`es of [`MAX_CONCURRENT`]: each answer's status and body.
    async fn get_batched(&self, paths: &[String]) -> Result<Vec<(u16, serde_json::Value)>, GraphClientError> {
        use lamplighter_graph_wire::batch::{BatchRequest, batch_body, parse_batch};
        let mut out = vec![(0u16, serde_json::Value::Null); paths.len()];
        for (c, chunk) in paths.chunks(MAX_CONCURRENT).enumerate() {
            let requests: Vec<BatchRequest> = chunk
                .iter()
                .enumerate()
                .map(|(n, url)| BatchRequest {
                    id: (c * MAX_CONCURRENT + n).to_string(),
                    method: "GET".into(),
                    url: self.scoped(url),
                    headers: [("Prefer".to_string(), request::IMMUTABLE_IDS.to_string())].into(),
                    body: None,
                })
                .collect();
            let answer = self.ok(&hyper::Method::POST, "/$batch", Some(batch_body(&requests)?), None).await?;
            for r in parse_batch(&answer)? {
                if let Some(slot) = r.id.parse::<usize>().ok().and_then(|n| out.get_mut(n)) {
                    *slot = (r.status, r.body.unwrap_or_default());
                }
            }
        }
        Ok(out)
    }

    /// A folder listing (`request::folders()` or `child_folders`), all its pages.
    async fn list_folders(&self, first: String, budget: &mut usize) -> Result<Vec<MailFolder>, GraphClientError> {
        let mut out = Vec::new();
        let mut path = first;
        loop {
            if *budget == 0 {
                return Ok(out);
            }
            *budget -= 1;
            let body = self.ok(&hyper::Method::GET, &path, None, None).await?;
            let page = lamplighter_graph_wire::parse_folders(&body)?;
            out.extend(page.folders);
            match page.next {
                Some(next) => path = request::link_path(&next, &self.config.root)?,
                None => return Ok(out),
            }
        }
    }

    /// The folders to follow besides the Inbox: the mail folder tree read
    /// (at most [`MAX_LISTING_REQUESTS`] requests and [`MAX_FOLDERS_READ`]
    /// folders), without the well-known folders no voicemail belongs in
    /// (their ids read once per client).
    pub async fn discover(&self) -> Result<Vec<lamplighter_graph_sync::FolderRef>, GraphClientError> {
        use lamplighter_graph_sync::mailbox::{NOT_FOLLOWED, choose};
        let known = self.well_known.lock().await.clone();
        let (inbox, not_followed) = match known {
            Some(k) => k,
            None => {
                let names: Vec<&str> = std::iter::once("inbox").chain(NOT_FOLLOWED.iter().copied()).collect();
                let paths: Vec<String> = names.iter().map(|n| request::folder_id(n)).collect();
                let answers = self.get_batched(&paths).await?;
                let mut ids = Vec::new();
                for (name, (status, body)) in names.iter().zip(answers) {
                    match status {
                        200 => {
                            let f = lamplighter_graph_wire::parse_folder(body.to_string().as_bytes())?;
                            ids.push(f.id);
                        }
                        // a mailbox without that folder
                        404 => ids.push(String::new()),
                        s => {
                            return Err(GraphClientError::Broken(format!(
                                "reading the folder {name}: HTTP {s} {}",
                                lamplighter_graph_wire::parse_error(body.to_string().as_bytes())
                                    .map(|e| e.message)
                                    .unwrap_or_default()
                            )));
                        }
                    }
                }
                let inbox = ids.first().filter(|i| !i.is_empty()).cloned();
                let not: Vec<String> = ids.into_iter().skip(1).filter(|i| !i.is_empty()).collect();
                *self.well_known.lock().await = Some((inbox.clone(), not.clone()));
                (inbox, not)
            }
        };
        let mut budget = MAX_LISTING_REQUESTS;
        let mut all = self.list_folders(request::folders(), &mut budget).await?;
        let mut next = 0;
        while next < all.len() && all.len() < MAX_FOLDERS_READ && budget > 0 {
            let f = all[next].clone();
            next += 1;
            if f.child_folder_count.unwrap_or(0) > 0 && !not_followed.contains(&f.id) {
                let children = self.list_folders(request::child_folders(&f.id), &mut budget).await?;
                all.extend(children.into_iter().filter(|c| !c.id.is_empty()));
            }
        }
        all.truncate(MAX_FOLDERS_READ);
        Ok(choose(&all, &not_followed, inbox.as_deref()))
    }

    /// The attachments (without bytes) of up to 20 messages in one `$batch`.
    pub async fn attachments_of(&self, ids: &[String]) -> Result<Vec<(String, Vec<Attachment>)>, GraphClientError> {
        use lamplighter_graph_wire::batch::{BatchRequest, batch_body, parse_batch};
        let requests: Vec<BatchRequest> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| BatchRequest {
                id: n.to_string(),
                method: "GET".into(),
                url: self.scoped(&request::attachments(id)),
                headers: Default::default(),
                body: None,
            })
            .collect();
        let body = batch_body(&requests)?;
        let answer = self.ok(&hyper::Method::POST, "/$batch", Some(body), None).await?;
        let mut out = Vec::new();
        for r in parse_batch(&answer)? {
            let Some(id) = r.id.parse::<usize>().ok().and_then(|n| ids.get(n)) else { continue };
            if r.status == 200
                && let Some(b) = r.body
            {
                let list = lamplighter_graph_wire::parse_attachments(b.to_string().as_bytes())?;
                out.push((id.clone(), list));
            }
        }
        Ok(out)
    }

    /// Marks a message read or unread.
    pub async fn mark_read(&self, id: &str, read: bool) -> Result<(), GraphClientError> {
        let (path, body) = request::mark_read(id, read);
        self.ok(&hyper::Method::PATCH, &path, Some(body), None).await.map(drop)
    }

    /// Downloads `handle` (`<message id>|<attachment id>`) to `dest` (0600,
    /// written beside and renamed, so a broken download leaves nothing).
    pub async fn download(
        &self,
        handle: &str,
        dest: &Path,
        mut progress: impl FnMut(u64),
    ) -> Result<u64, GraphClientError> {
        let (message, attachment) = handle
            .split_once('|')
            .ok_or_else(|| GraphClientError::Broken(format!("not an attachment of this backend: {handle}")))?;
        let bytes = self.ok(&hyper::Method::GET, &request::attachment_value(message, attachment), None, None).await?;
        let file_err =
            |e: std::io::Error| GraphClientError::File { path: dest.display().to_string(), reason: e.to_string() };
        let part = dest.with_extension("part");
        let write = async {
            use tokio::io::AsyncWriteExt as _;
            let mut opts = tokio::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            opts.mode(0o600);
            let mut file = opts.open(&part).await?;
            let mut done = 0u64;
            for chunk in bytes.chunks(64 * 1024) {
                file.write_all(chunk).await?;
                done += chunk.len() as u64;
                progress(done);
            }
            file.sync_all().await?;
            tokio::fs::rename(&part, dest).await?;
            Ok::<u64, std::io::Error>(done)
        };
        match write.await {
            Ok(n) => Ok(n),
            Err(e) => {
                let _ = tokio::fs::remove_file(&part).await;
                Err(file_err(e))
            }
        }
    }

    /// The tracked folder's counts: it exists and the token may read it.
    pub async fn folder(&self) -> Result<(u64, u64), GraphClientError> {
        let body = self
            .ok(
                &hyper::Method::GET,
                &format!("/me/mailFolders/{}", request::encode_segment(&self.config.folder)),
                None,
                None,
            )
            .await?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| lamplighter_graph_wire::WireError::Json(e.to_string()))?;
        Ok((v["totalItemCount"].as_u64().unwrap_or(0), v["unreadItemCount"].as_u64().unwrap_or(0)))
    }
}

impl From<GraphClientError> for MailboxError {
    fn from(e: GraphClientError) -> MailboxError {
        match &e {
            GraphClientError::Token(_) | GraphClientError::Http { failure: Failure::Unauthorized { .. }, .. } => {
                MailboxError::SignInRefused(e.to_string())
            }
            GraphClientError::Http { failure: Failure::NotFound, words, .. } => {
                MailboxError::NotFound { what: words.clone() }
            }
            GraphClientError::File { path, reason } => {
                MailboxError::File { path: path.clone(), reason: reason.clone() }
            }
            _ => MailboxError::Failed { operation: "Graph", message: e.to_string() },
        }
    }
}

/// A Microsoft 365 mailbox over Graph.
pub struct GraphBackend {
    client: Arc<GraphClient>,
}

impl GraphBackend {
    pub fn new(config: GraphConfig) -> Result<GraphBackend, GraphClientError> {
        Ok(GraphBackend { client: Arc::new(GraphClient::new(config)?) })
    }

    /// The client underneath, for tests.
    pub fn client(&self) -> &Arc<GraphClient> {
        &self.client
    }
}

impl Backend for GraphBackend {
    fn location(&self) -> String {
        self.client.root().to_string()
    }

    fn track(
        self: Arc<Self>,
        state: Arc<dyn StateStore>,
        events: tokio::sync::mpsc::Sender<MailboxEvent>,
    ) -> Box<dyn Tracking> {
        Box::new(driver::spawn(self.client.clone(), state, events))
    }

    fn mark_read<'a>(&'a self, id: &'a ItemId) -> BoxFuture<'a, Result<(), MailboxError>> {
        Box::pin(async move { self.client.mark_read(&id.id, true).await.map_err(MailboxError::from) })
    }

    fn download_attachment<'a>(
        &'a self,
        attachment_id: &'a str,
        path: &'a Path,
        progress: Box<dyn FnMut(u64) + Send + 'a>,
    ) -> BoxFuture<'a, Result<(), MailboxError>> {
        Box::pin(async move {
            self.client.download(attachment_id, path, progress).await.map(drop).map_err(MailboxError::from)
        })
    }

    fn check(&self) -> BoxFuture<'_, MailboxCheck> {
        Box::pin(async move {
            let mut out = MailboxCheck::default();
            out.steps.push(CheckStep {
                ok: true,
                what: format!("Microsoft Graph at {}", self.client.root()),
                hint: None,
            });
            match self.client.folder().await {
                Ok((total, unread)) => {
                    out.signed_in_with = Some("OAuth2 (Microsoft 365)".into());
                    out.steps.push(CheckStep {
                        ok: true,
                        what: format!("Inbox readable ({total} items, {unread} unread)"),
                        hint: None,
                    })
                }
                Err(e) => {
                    out.sign_in_refused = matches!(MailboxError::from(e.clone()), MailboxError::SignInRefused(_));
                    out.steps.push(CheckStep {
                        ok: false,
                        what: format!("sign-in / Inbox: {e}"),
                        hint: Some(if out.sign_in_refused {
                            "sign in with Microsoft again".into()
                        } else {
                            "see the log".into()
                        }),
                    });
                    return out;
                }
            }
            out
        })
    }
}
