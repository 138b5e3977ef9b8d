//! The keeper's tokio driver and the webhook Graph POSTs to.
//!
//! The webhook answers Graph's validation (the token echoed as
//! `text/plain`, never longer than the 1,024 bytes it accepts) and hands
//! notification bodies to the keeper, answering 202 when one counted and
//! 403 when none did. It reads at most 1 MiB per body within 10 s and
//! serves at most [`MAX_CONNECTIONS`] connections; TLS when given a
//! certificate (Graph only posts to HTTPS), plain HTTP behind a reverse
//! proxy that terminates it.

use crate::keeper::{Event, Keeper, KeeperConfig, KeeperStats, Outcome, Want};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::{Method, Response, StatusCode};
use lamplighter_graph_client::{GraphClient, GraphClientError, Nudge};
use lamplighter_graph_wire::Failure;
use lamplighter_graph_wire::subscription::{
    MAX_NOTIFICATION_BODY, NewSubscription, iso_utc, parse_iso_utc, parse_subscription, renewal_body,
    subscription_path, validation_token,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot, watch};

/// Webhook connections served at once; more are closed unread.
pub const MAX_CONNECTIONS: usize = 64;

/// Why the push service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot listen for Graph's notifications on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the webhook's certificate or key: {0}")]
    Tls(String),
    #[error("the notification URL {0} is not https://")]
    Url(String),
    #[error("no random numbers for the clientState")]
    Random,
}

/// How the push service runs.
#[derive(Clone)]
pub struct PushConfig {
    /// Where the webhook listens.
    pub listen: SocketAddr,
    /// The URL Graph POSTs to (a reverse proxy's, or this listener's own name).
    pub public_url: String,
    /// The webhook's certificate chain and key (PEM); `None`: plain HTTP behind a proxy.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    pub keeper: KeeperConfig,
    /// The safety net's polling pace while notifications flow.
    pub pushed_every: Duration,
}

impl std::fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushConfig")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

enum Command {
    Watch(String, Nudge),
    Unwatch(String),
    Notified(Bytes, oneshot::Sender<Option<crate::keeper::Verdict>>),
    Answered(String, Outcome),
    Deleted,
}

/// The running push service.
pub struct Push {
    commands: mpsc::UnboundedSender<Command>,
    addr: SocketAddr,
    stats: Arc<Mutex<KeeperStats>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Push {
    /// Listens and starts keeping subscriptions; `clients` (one per request
    /// in flight) carry the app's token, each on its own connection.
    pub async fn start(config: PushConfig, clients: Vec<Arc<GraphClient>>) -> Result<Push, PushError> {
        if !config.public_url.starts_with("https://") {
            return Err(PushError::Url(config.public_url.clone()));
        }
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|_| PushError::Random)?;
        use base64::Engine as _;
        let client_state = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let tls = match &config.tls {
            Some((cert, key)) => Some(acceptor(cert, key)?),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| PushError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| PushError::Listen { addr: config.listen, source })?;
        let (commands, rx) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        let path = url_path(&config.public_url);
        tokio::spawn(listen(listener, tls, path, commands.clone(), stopped.clone()));
        let stats = Arc::new(Mutex::new(KeeperStats::default()));
        let keeper = Keeper::new(config.keeper, client_state);
        let task = tokio::spawn(run(config, keeper, clients, rx, commands.clone(), stats.clone(), stopped));
        Ok(Push { commands, addr, stats, stop, task: Mutex::new(Some(task)) })
    }

    /// Starts keeping a subscription for `mailbox` and nudging its polling.
    pub fn watch(&self, mailbox: &str, nudge: Nudge) {
        let _ = self.commands.send(Command::Watch(mailbox.to_ascii_lowercase(), nudge));
    }

    /// Stops: its subscription is deleted.
    pub fn unwatch(&self, mailbox: &str) {
        let _ = self.commands.send(Command::Unwatch(mailbox.to_ascii_lowercase()));
    }

    /// Where the webhook listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The keeper's figures (refreshed as it works).
    pub fn stats(&self) -> KeeperStats {
        *self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends: every subscription is deleted (within 10 s), the webhook closed.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    match rest.split_once('/') {
        Some((_, p)) => format!("/{}", p.split('?').next().unwrap_or("")),
        None => "/".into(),
    }
}

fn acceptor(cert: &[u8], key: &[u8]) -> Result<tokio_rustls::TlsAcceptor, PushError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| PushError::Tls(format!("the certificate: {e}")))?;
    if chain.is_empty() {
        return Err(PushError::Tls("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| PushError::Tls(format!("the key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| PushError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| PushError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    path: Arc<String>,
    commands: mpsc::UnboundedSender<Command>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    if req.uri().path() != path.as_str() {
        return reply(StatusCode::NOT_FOUND, "");
    }
    if let Some(token) = validation_token(req.uri().query().unwrap_or("")) {
        // Graph's validation: the token back, as it came, as text
        return match token {
            Ok(t) => reply(StatusCode::OK, t),
            Err(_) => reply(StatusCode::BAD_REQUEST, "bad validation token\n"),
        };
    }
    let body = match tokio::time::timeout(
        Duration::from_secs(10),
        http_body_util::Limited::new(req.into_body(), MAX_NOTIFICATION_BODY).collect(),
    )
    .await
    {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(_)) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "too large\n"),
        Err(_) => return reply(StatusCode::REQUEST_TIMEOUT, "too slow\n"),
    };
    let (tx, rx) = oneshot::channel();
    if commands.send(Command::Notified(body, tx)).is_err() {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "stopping\n");
    }
    match rx.await {
        Ok(Some(v)) if v.accepted > 0 => reply(StatusCode::ACCEPTED, ""),
        Ok(Some(_)) => reply(StatusCode::FORBIDDEN, "no subscription of this service\n"),
        Ok(None) => reply(StatusCode::BAD_REQUEST, "not a changeNotificationCollection\n"),
        Err(_) => reply(StatusCode::SERVICE_UNAVAILABLE, "stopping\n"),
    }
}

async fn listen(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    path: String,
    commands: mpsc::UnboundedSender<Command>,
    mut stopped: watch::Receiver<bool>,
) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let path = Arc::new(path);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped.changed() => return,
        };
        let Ok((tcp, _)) = accepted else { continue };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            drop(tcp);
            continue;
        };
        let (tls, path, commands) = (tls.clone(), path.clone(), commands.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let (path, commands) = (path.clone(), commands.clone());
                async move { Ok::<_, std::convert::Infallible>(handle(req, path, commands).await) }
            });
            let builder = {
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
                b
            };
            match tls {
                Some(acceptor) => {
                    let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
                }
                None => {
                    let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service).await;
                }
            }
        });
    }
}

/// What a failed call to Graph is for the keeper.
fn outcome_of(e: GraphClientError) -> Outcome {
    match e {
        GraphClientError::Http { status: 404, .. } => Outcome::Gone,
        GraphClientError::Http { failure: Failure::Throttled { retry_after }, words, .. } => {
            Outcome::Failed { why: words, retry_after }
        }
        e => Outcome::Failed { why: e.to_string(), retry_after: None },
    }
}

async fn call(client: &GraphClient, want: &Want, url: &str, client_state: &str) -> Outcome {
    let expires = |lifetime: Duration| iso_utc(SystemTime::now() + lifetime);
    let answer = match want {
        Want::Create { mailbox, lifetime } => {
            let body = NewSubscription::messages(mailbox, url, client_state, &expires(*lifetime)).body();
            match body {
                Ok(b) => client.call(Method::POST, "/subscriptions", Some(b)).await,
                Err(e) => return Outcome::Failed { why: e.to_string(), retry_after: None },
            }
        }
        Want::Renew { id, lifetime, .. } => {
            client.call(Method::PATCH, &subscription_path(id), Some(renewal_body(&expires(*lifetime)))).await
        }
        Want::Delete { id } => client.call(Method::DELETE, &subscription_path(id), None).await,
    };
    match answer {
        Ok((_, body)) if matches!(want, Want::Delete { .. }) => {
            drop(body);
            Outcome::Gone
        }
        Ok((_, body)) => match parse_subscription(&body) {
            Ok(s) => {
                let lives = parse_iso_utc(&s.expiration_date_time)
                    .and_then(|t| t.duration_since(SystemTime::now()).ok())
                    .unwrap_or_default();
                if lives.is_zero() {
                    Outcome::Failed {
                        why: format!("Graph gave an expiry of {}", s.expiration_date_time),
                        retry_after: None,
                    }
                } else {
                    Outcome::Ok { id: s.id, lives }
                }
            }
            Err(e) => Outcome::Failed { why: e.to_string(), retry_after: None },
        },
        Err(e) => outcome_of(e),
    }
}

async fn run(
    config: PushConfig,
    mut keeper: Keeper,
    clients: Vec<Arc<GraphClient>>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<Mutex<KeeperStats>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut nudges: HashMap<String, Nudge> = HashMap::new();
    let mut next_client = 0usize;
    loop {
        let now = tokio::time::Instant::now().into_std();
        for want in keeper.poll_wants(now) {
            let Some(client) = clients.get(next_client % clients.len().max(1)).cloned() else { break };
            next_client += 1;
            let (url, state, back) = (config.public_url.clone(), keeper.client_state().to_string(), commands.clone());
            tokio::spawn(async move {
                let outcome = call(&client, &want, &url, &state).await;
                let _ = back.send(match want {
                    Want::Delete { .. } => Command::Deleted,
                    Want::Create { mailbox, .. } | Want::Renew { mailbox, .. } => Command::Answered(mailbox, outcome),
                });
            });
        }
        while let Some(e) = keeper.poll_event() {
            match e {
                Event::Changed(m) => {
                    if let Some(n) = nudges.get(&m) {
                        n.changed();
                    }
                }
                Event::Flowing(m, on) => {
                    if let Some(n) = nudges.get(&m) {
                        n.set_flowing(on);
                    }
                }
            }
        }
        *stats.lock().unwrap_or_else(|p| p.into_inner()) = keeper.stats();
        let wake = keeper.next_wake().map(tokio::time::Instant::from_std);
        tokio::select! {
            _ = async {
                match wake {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {}
            c = rx.recv() => match c {
                Some(Command::Watch(m, nudge)) => {
                    keeper.add(&m, tokio::time::Instant::now().into_std());
                    nudges.insert(m, nudge);
                }
                Some(Command::Unwatch(m)) => {
                    keeper.remove(&m);
                    nudges.remove(&m);
                }
                Some(Command::Notified(body, reply)) => {
                    let _ = reply.send(keeper.notification(&body, tokio::time::Instant::now().into_std()).ok());
                }
                Some(Command::Answered(m, outcome)) => keeper.answered(&m, tokio::time::Instant::now().into_std(), outcome),
                Some(Command::Deleted) => keeper.deleted(),
                None => return,
            },
            _ = stopped.changed() => break,
        }
    }
    // a clean stop leaves no subscription behind at Graph
    let ids = keeper.live_ids();
    let ends = ids.into_iter().enumerate().map(|(n, id)| {
        let client = clients[n % clients.len().max(1)].clone();
        async move { client.call(Method::DELETE, &subscription_path(&id), None).await }
    });
    let _ = tokio::time::timeout(Duration::from_secs(10), futures_join(ends)).await;
}

/// Runs the futures one after another (the clients' connections are one request at a time each).
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) {
    for f in futures {
        let _ = f.await;
    }
}
