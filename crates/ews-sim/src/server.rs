//! The HTTP side: a hyper server on loopback (plain or TLS with a generated
//! CA), Basic/NTLM/Bearer authentication as IIS does it (NTLM per
//! connection), schema validation of every EWS request with `xmllint`,
//! throttling and fault injection, and the long-lived chunked
//! GetStreamingEvents responses with heartbeats and a timed close.

use crate::mailboxes::{Mailboxes, Refused};
use crate::soap::{self, El, Shape, esc};
use crate::store::{EventKind, NewItem, Store, SubError, SubKind, UpdateError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

type Body = BoxBody<Bytes, std::io::Error>;

mod entra;
mod entra_app;
mod graph;
mod graph_push;

pub use entra::EntraConfig;
pub use entra_app::AppRegistration;
pub use graph_push::LifecycleEvent;

/// How incoming EWS requests are checked against the official schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// With `xmllint` against this wrapper schema (`ews-envelope-validate.xsd`).
    Schema(PathBuf),
    /// Not at all (the demo on a machine without the schema).
    Off,
}

impl Validation {
    /// The vendored schema when both it and `xmllint` are there; otherwise off
    /// (the demo on a machine without libxml2-utils still runs).
    pub fn if_available() -> Validation {
        let xmllint = std::process::Command::new("xmllint")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if xmllint { Self::embedded() } else { Validation::Off }
    }

    /// The official EWS schema, which the simulator carries in its binary (so
    /// a packaged demo validates as the tests do), written once per version to
    /// a private directory for xmllint. Off, with a warning, if it cannot be written.
    pub fn embedded() -> Validation {
        match schema_dir() {
            Ok(dir) => Validation::Schema(dir.join("ews-envelope-validate.xsd")),
            Err(e) => {
                log::warn!("EWS schema validation is off: cannot write the schema files: {e}");
                Validation::Off
            }
        }
    }
}

/// The schema files (Microsoft's `messages.xsd`/`types.xsd`, the W3C `xml.xsd`
/// and our wrappers; provenance in `schema/README.md`).
const SCHEMA_FILES: &[(&str, &[u8])] = &[
    ("ews-envelope-validate.xsd", include_bytes!("../schema/ews-envelope-validate.xsd")),
    ("ews-validate.xsd", include_bytes!("../schema/ews-validate.xsd")),
    ("soap11-envelope-min.xsd", include_bytes!("../schema/soap11-envelope-min.xsd")),
    ("messages.xsd", include_bytes!("../schema/messages.xsd")),
    ("types.xsd", include_bytes!("../schema/types.xsd")),
    ("xml.xsd", include_bytes!("../schema/xml.xsd")),
];

/// `$XDG_CACHE_HOME/lamplighter/ews-schema-<version>` (or `~/.cache/…`; a
/// per-process temporary directory without a home), mode 0700, every file in
/// place. Each file is written beside and renamed, so simulators starting
/// together never see half a file.
fn schema_dir() -> std::io::Result<PathBuf> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let write = || -> std::io::Result<PathBuf> {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
            let dir = match cache {
                Some(c) => c.join("lamplighter").join(format!("ews-schema-{}", env!("CARGO_PKG_VERSION"))),
                None => std::env::temp_dir().join(format!("lamplighter-ews-schema-{}", std::process::id())),
            };
            std::fs::create_dir_all(&dir)?;
            #[cfg(unix)]
            std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
            for (name, bytes) in SCHEMA_FILES {
                let path = dir.join(name);
                if std::fs::read(&path).is_ok_and(|b| b == *bytes) {
                    continue;
                }
                let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)?;
            }
            Ok(dir)
        };
        write().map_err(|e| e.to_string())
    })
    .clone()
    .map_err(std::io::Error::other)
}

/// Which authentication schemes the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSchemes {
    pub basic: bool,
    /// NTLM (and `Negotiate` falling back to NTLM).
    pub ntlm: bool,
    /// Offer only `Negotiate` (as IIS with the NTLM provider removed): NTLM
    /// tokens are taken only under `Negotiate`, and challenges go out so.
    pub negotiate_only: bool,
    /// OAuth2 bearer tokens accepted.
    pub bearer_tokens: Vec<String>,
    /// Kerberos under `Negotiate`, as Exchange in a domain offers it.
    pub kerberos: Option<KerberosAcceptor>,
}

/// The simulator as a Kerberos service: the keys of `HTTP/<host>` from a
/// keytab (MIT krb5 through `lamplighter-gssapi`). A ticket's client
/// principal signs in as the user of the same name (`mara@REALM` as `mara`),
/// as Exchange maps a principal to its AD account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KerberosAcceptor {
    pub keytab: std::path::PathBuf,
    /// Returns the mutual-authentication token on success, as IIS does;
    /// `false` is a faulty or impostor server for tests.
    pub send_proof: bool,
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The mailbox's address (Autodiscover answers for it).
    pub email: String,
    /// Accepted users: (name, password). Names compare case-insensitively, with or without `DOMAIN\`.
    pub users: Vec<(String, String)>,
    /// The NTLM domain.
    pub domain: String,
    /// Offered schemes.
    pub auth: AuthSchemes,
    /// Serve HTTPS with a generated certificate.
    pub tls: bool,
    /// Extra host names for the certificate (e.g. `autodiscover.example.test`).
    pub tls_names: Vec<String>,
    /// Schema validation.
    pub validation: Validation,
    /// Interval of `ConnectionStatus OK` frames.
    pub heartbeat: Duration,
    /// Caps the `ConnectionTimeout` clients ask for (tests: seconds instead of minutes).
    pub max_connection_time: Option<Duration>,
    /// Autodiscover redirects: address → other address.
    pub redirect_addresses: Vec<(String, String)>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// The Microsoft sign-in service (`/{tenant}/oauth2/v2.0/…`).
    pub entra: EntraConfig,
    /// GetAttachment answers in Exchange 2007's layout (no `Size`,
    /// `LastModifiedTime`, `IsInline`, `IsContactPhoto`) whatever version is
    /// asked, as a 2007 server does; otherwise that layout only for requests
    /// that name Exchange 2007.
    pub attachments_2007: bool,
    /// More mailboxes on this server, beside `email`'s (a gateway's users).
    pub mailboxes: Vec<String>,
    /// Accounts with the ApplicationImpersonation role: their requests may
    /// name any mailbox in an `ExchangeImpersonation` header.
    pub impersonators: Vec<String>,
    /// Mailbox servers behind the load balancer: each mailbox lives on one
    /// (by a hash of its address), Subscribe's `X-BackEndOverrideCookie`
    /// names it, and a GetStreamingEvents routed to one server finds only
    /// the subscriptions of its mailboxes.
    pub backends: u32,
    /// Streaming connections open at once per account charged
    /// (`HangingConnectionLimit`: 3 on-premises; the impersonated mailbox is
    /// charged when there is one); `None`: no limit.
    pub hanging_connection_limit: Option<u32>,
    /// Subscriptions per account charged (`EWSMaxSubscriptions`); `None`: no limit.
    pub max_subscriptions: Option<usize>,
    /// Time each EWS request but GetStreamingEvents takes (a busy server),
    /// so that how many a client keeps in flight shows in [`Simulator::max_in_flight`].
    pub latency: Option<Duration>,
    /// The CA Graph's change notifications trust for webhooks (PEM), beside the system's.
    pub webhook_ca_pem: Option<Vec<u8>>,
}

/// Subscription ids one GetStreamingEvents may carry.
pub const MAX_IDS_PER_STREAM: usize = 200;

/// The mailbox server (0-based) a mailbox lives on, among `backends`.
pub fn backend_of(mailbox: &str, backends: u32) -> u32 {
    let h = mailbox
        .to_ascii_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (h % u64::from(backends.max(1))) as u32
}

/// The `X-BackEndOverrideCookie` value that routes to `backend`.
fn backend_cookie(backend: u32) -> String {
    format!("EXCH{:02}.example.test~{}", backend + 1, 1_941_996_295u64 + u64::from(backend))
}

/// The backend a cookie value routes to.
fn backend_from_cookie(value: &str) -> Option<u32> {
    value.strip_prefix("EXCH")?.get(..2)?.parse::<u32>().ok()?.checked_sub(1)
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            email: "mara@example.test".into(),
            users: vec![("mara".into(), "Sommer2026!".into())],
            domain: "EXAMPLE".into(),
            auth: AuthSchemes {
                basic: true,
                ntlm: true,
                negotiate_only: false,
                bearer_tokens: Vec::new(),
                kerberos: None,
            },
            tls: false,
            tls_names: Vec::new(),
            validation: Validation::embedded(),
            heartbeat: Duration::from_secs(45),
            max_connection_time: None,
            redirect_addresses: Vec::new(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            attachments_2007: false,
            entra: EntraConfig::default(),
            mailboxes: Vec::new(),
            impersonators: Vec::new(),
            backends: 1,
            hanging_connection_limit: None,
            max_subscriptions: None,
            latency: None,
            webhook_ca_pem: None,
        }
    }
}

/// One request the simulator served, for tests to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The operation (`FindItem`, …), or the path for non-EWS requests.
    pub op: String,
    /// The HTTP status.
    pub status: u16,
    /// Whether the body passed schema validation (`true` when validation is off or not applicable).
    pub schema_valid: bool,
    /// `X-AnchorMailbox` was sent.
    pub anchor: bool,
    /// The backend cookie was replayed.
    pub cookie: bool,
    /// The mailbox an EWS request reached (lowercase; empty for other requests).
    pub mailbox: String,
    /// The `X-AnchorMailbox` header's value, if sent.
    pub anchor_mailbox: Option<String>,
    /// Subscription ids a GetStreamingEvents carried (0 for other requests).
    pub ids: usize,
}

struct Shared {
    config: Mutex<SimConfig>,
    store: Mutex<Mailboxes>,
    /// Bumped on every mailbox change (wakes streams).
    changed: watch::Sender<u64>,
    /// Bumped to drop every streaming connection.
    drop_streams: watch::Sender<u64>,
    /// Bumped to drop every connection (restart).
    restart: watch::Sender<u64>,
    /// (calls left, back-off ms, in the body) of injected ErrorServerBusy.
    throttle: Mutex<(u32, u64, bool)>,
    /// (calls left, HTTP status) of injected HTTP failures.
    http_failures: Mutex<(u32, u16)>,
    /// Bytes per second for GetAttachment responses (a slow link), if limited.
    attachment_rate: Mutex<Option<u64>>,
    /// Operations that are received and never answered.
    hung: Mutex<Vec<String>>,
    /// GetStreamingEvents calls left to answer with `ErrorInvalidSubscription`.
    invalid_streams: AtomicU32,
    /// (GetStreamingEvents calls left, back-off ms) to answer with an ErrorServerBusy SOAP fault.
    faulted_streams: Mutex<(u32, u64)>,
    served: Mutex<Vec<Served>>,
    entra: Mutex<entra::Entra>,
    /// Graph's change notification subscriptions.
    push: Mutex<graph_push::Push>,
    auth_failures: AtomicU32,
    open_streams: AtomicU32,
    /// Open streams per charged account, when `hanging_connection_limit` is set.
    streams_by_account: Mutex<std::collections::HashMap<String, u32>>,
    /// EWS requests being served now (streams left out), and the most at once.
    in_flight: AtomicU32,
    max_in_flight: AtomicU32,
    /// TCP connections accepted so far.
    connections: AtomicU32,
    base_url: String,
}

/// A running simulator. Dropping it stops the server.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: Option<String>,
    stop: watch::Sender<bool>,
}

/// One mailbox of the simulator, beside the primary ([`Simulator::mailbox`]).
pub struct MailboxAt<'a> {
    sim: &'a Simulator,
    address: String,
}

impl MailboxAt<'_> {
    fn mutate<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let out = {
            let mut all = self.sim.shared.store.lock().unwrap_or_else(|p| p.into_inner());
            f(all.of(&self.address))
        };
        self.sim.shared.changed.send_modify(|v| *v += 1);
        out
    }

    /// Deposits a voicemail into its Inbox, as Unified Messaging does; returns its id.
    pub fn deposit_voicemail(&self, v: Voicemail) -> String {
        self.mutate(|s| s.deposit(Simulator::voicemail_item(v)))
    }

    /// Marks an item read or unread, as the user's other client would.
    pub fn set_read(&self, id: &str, read: bool) -> bool {
        self.mutate(|s| s.set_read(id, read))
    }

    /// Deletes an item, as the user's other client would.
    pub fn delete(&self, id: &str) -> bool {
        self.mutate(|s| s.delete(id))
    }

    /// Its items now: (id, item class, is_read), newest first.
    pub fn items(&self) -> Vec<(String, String, bool)> {
        let mut all = self.sim.shared.store.lock().unwrap_or_else(|p| p.into_inner());
        all.of(&self.address)
            .items()
            .into_iter()
            .map(|i| (i.id.clone(), i.data.item_class.clone(), i.data.is_read))
            .collect()
    }
}

/// What the simulator failed to do.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Listening failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    /// The certificate could not be made.
    #[error("certificate: {0}")]
    Certificate(String),
}

/// A voicemail to deposit.
#[derive(Debug, Clone, Default)]
pub struct Voicemail {
    /// Caller number (`+49 5251 304613`).
    pub caller_number: String,
    /// Caller name, if known.
    pub caller_name: Option<String>,
    /// Seconds.
    pub duration_secs: u32,
    /// Importance High.
    pub urgent: bool,
    /// Already read.
    pub is_read: bool,
    /// The audio: file name, content type, bytes.
    pub audio: Option<(String, String, Vec<u8>)>,
    /// The subject (default: UM's "Voice Mail from … (N seconds)").
    pub subject: Option<String>,
    /// The transcription, written into the body as Unified Messaging does.
    pub transcription: Option<String>,
    /// `DateTimeReceived`, if not now.
    pub received: Option<String>,
}

/// A missed call to deposit.
#[derive(Debug, Clone, Default)]
pub struct MissedCall {
    pub caller_number: String,
    pub caller_name: Option<String>,
    /// The call's SIP data copied into internet headers (History-Info, Call-ID, Reason, …).
    pub headers: Vec<(String, String)>,
    /// PidTagCallId.
    pub call_id: Option<String>,
    /// `DateTimeReceived`, if not now.
    pub received: Option<String>,
}

impl Simulator {
    /// Starts a simulator.
    pub async fn start(config: SimConfig) -> Result<Simulator, SimError> {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| SimError::Listen { addr: config.listen, source })?;
        let (tls, ca_pem) = if config.tls {
            let (acceptor, ca) = tls_acceptor(&config.tls_names)?;
            (Some(acceptor), Some(ca))
        } else {
            (None, None)
        };
        let scheme = if config.tls { "https" } else { "http" };
        let mut mailboxes = Mailboxes::new(&config.email);
        for m in &config.mailboxes {
            mailboxes.add(m);
        }
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            store: Mutex::new(mailboxes),
            changed: watch::channel(0).0,
            drop_streams: watch::channel(0).0,
            restart: watch::channel(0).0,
            throttle: Mutex::new((0, 0, false)),
            http_failures: Mutex::new((0, 0)),
            attachment_rate: Mutex::new(None),
            hung: Mutex::new(Vec::new()),
            invalid_streams: AtomicU32::new(0),
            faulted_streams: Mutex::new((0, 0)),
            served: Mutex::new(Vec::new()),
            entra: Mutex::new(entra::Entra::default()),
            push: Mutex::new(graph_push::Push::default()),
            auth_failures: AtomicU32::new(0),
            open_streams: AtomicU32::new(0),
            streams_by_account: Mutex::new(std::collections::HashMap::new()),
            in_flight: AtomicU32::new(0),
            max_in_flight: AtomicU32::new(0),
            connections: AtomicU32::new(0),
            base_url: format!("{scheme}://{addr}"),
        });
        let (stop, mut stopped) = watch::channel(false);
        tokio::spawn(graph_push::deliver(shared.clone(), stopped.clone()));
        let s = shared.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stopped.changed() => return,
                };
                let Ok((tcp, _)) = accepted else { continue };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.set_nodelay(true);
                let s = s.clone();
                let tls = tls.clone();
                let stopped = stopped.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve(s, hyper_util::rt::TokioIo::new(stream), stopped).await;
                            }
                        }
                        None => serve(s, hyper_util::rt::TokioIo::new(tcp), stopped).await,
                    }
                });
            }
        });
        Ok(Simulator { shared, addr, ca_pem, stop })
    }

    /// `http(s)://127.0.0.1:port`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The EWS endpoint.
    pub fn ews_url(&self) -> String {
        format!("{}/EWS/Exchange.asmx", self.shared.base_url)
    }

    /// The Graph face's service root (`https://graph.microsoft.com/v1.0` in Microsoft 365).
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.shared.base_url)
    }

    /// Accepts `token` as a bearer token (EWS with OAuth2, and the Graph face).
    pub fn accept_token(&self, token: &str) {
        self.shared.config.lock().unwrap_or_else(|p| p.into_inner()).auth.bearer_tokens.push(token.to_string());
    }

    /// The user enters `user_code` on the device login page and approves
    /// (or declines) the sign-in. `false` when no device waits with that code.
    pub fn enter_device_code(&self, user_code: &str, approve: bool) -> bool {
        self.shared.entra.lock().unwrap_or_else(|p| p.into_inner()).enter_code(user_code, approve)
    }

    /// Revokes every grant the sign-in service issued (refresh and access tokens).
    pub fn revoke_grants(&self) {
        self.shared.entra.lock().unwrap_or_else(|p| p.into_inner()).revoke_all();
    }

    /// Token responses the sign-in service gave so far.
    pub fn grants_issued(&self) -> u32 {
        self.shared.entra.lock().unwrap_or_else(|p| p.into_inner()).issued
    }

    /// The sign-in service's authority for `tenant` (`{base}/organizations`).
    pub fn authority(&self, tenant: &str) -> String {
        format!("{}/{tenant}", self.shared.base_url)
    }

    /// Stops accepting `token` (a revoked grant).
    pub fn revoke_token(&self, token: &str) {
        self.shared.config.lock().unwrap_or_else(|p| p.into_inner()).auth.bearer_tokens.retain(|t| t != token);
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA certificate (PEM) that signed the server certificate, when TLS is on.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    fn mutate<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let out = f(&mut self.shared.store.lock().unwrap_or_else(|p| p.into_inner()));
        self.shared.changed.send_modify(|v| *v += 1);
        out
    }

    /// Adds a mailbox to the server (a gateway's user); `false` if it was there.
    pub fn add_mailbox(&self, address: &str) -> bool {
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner()).add(address)
    }

    /// How many mailboxes the server has.
    pub fn mailbox_count(&self) -> usize {
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Another mailbox of this server, to change it as its user's other
    /// clients would (`None`: no mailbox has that address).
    pub fn mailbox(&self, address: &str) -> Option<MailboxAt<'_>> {
        let exists = self.shared.store.lock().unwrap_or_else(|p| p.into_inner()).mailbox(address).is_some();
        exists.then(|| MailboxAt { sim: self, address: crate::mailboxes::key(address) })
    }

    /// Deposits any item; returns its id.
    pub fn deposit(&self, item: NewItem) -> String {
        self.mutate(|s| s.deposit(item))
    }

    /// Deposits a voicemail as Exchange UM does (class `IPM.Note.Microsoft.Voicemail.UM.CA`).
    pub fn deposit_voicemail(&self, v: Voicemail) -> String {
        self.deposit(Self::voicemail_item(v))
    }

    /// Deposits a voicemail into `folder`, as a mail rule that files it
    /// there; `None` when there is no such folder.
    pub fn deposit_voicemail_in(&self, v: Voicemail, folder: &str) -> Option<String> {
        self.mutate(|s| s.deposit_in(Self::voicemail_item(v), folder))
    }

    /// Makes a folder (under the Top of Information Store, or under
    /// `parent`: the Inbox or a folder made before); returns its id.
    pub fn create_folder(&self, name: &str, parent: Option<&str>) -> Option<String> {
        self.mutate(|s| s.create_folder(name, parent))
    }

    /// Moves an item to another folder, as the user or a rule does (the id stays).
    pub fn move_item(&self, id: &str, folder: &str) -> bool {
        self.mutate(|s| s.move_item(id, folder))
    }

    fn voicemail_item(v: Voicemail) -> NewItem {
        let who = v.caller_name.clone().unwrap_or_else(|| v.caller_number.clone());
        let attachments: Vec<(String, String, Vec<u8>)> = v.audio.into_iter().collect();
        let order = attachments.first().map(|a| a.0.clone());
        // the internet headers Unified Messaging writes beside the MAPI properties (MS-OXOUM)
        let mut headers = vec![
            ("Content-Class".to_string(), "voice-ca".to_string()),
            ("X-CallingTelephoneNumber".to_string(), v.caller_number.clone()),
            ("X-VoiceMessageDuration".to_string(), v.duration_secs.to_string()),
        ];
        if let Some(name) = &v.caller_name {
            headers.push(("X-VoiceMessageSenderName".to_string(), name.clone()));
        }
        if let Some(order) = &order {
            headers.push(("X-AttachmentOrder".to_string(), order.clone()));
        }
        NewItem {
            item_class: "IPM.Note.Microsoft.Voicemail.UM.CA".into(),
            subject: v.subject.unwrap_or_else(|| format!("Voice Mail from {who} ({} seconds)", v.duration_secs)),
            received: v.received,
            importance: if v.urgent { "High".into() } else { "Normal".into() },
            is_read: v.is_read,
            from_name: Some(who),
            from_email: Some(v.caller_number.clone()),
            um: crate::store::UmProps {
                duration_secs: Some(v.duration_secs),
                caller_number: Some(v.caller_number),
                caller_name: v.caller_name,
                attachment_order: order,
                call_id: None,
            },
            headers,
            attachments,
            body_text: v.transcription,
        }
    }

    /// Deposits a missed-call notification (class `IPM.Note.Microsoft.Missed.Voice`).
    pub fn deposit_missed_call(&self, m: MissedCall) -> String {
        let who = m.caller_name.clone().unwrap_or_else(|| m.caller_number.clone());
        self.deposit(NewItem {
            item_class: "IPM.Note.Microsoft.Missed.Voice".into(),
            subject: format!("Missed call from {who}"),
            received: m.received,
            importance: "Normal".into(),
            is_read: false,
            from_name: Some(who),
            from_email: Some(m.caller_number.clone()),
            um: crate::store::UmProps {
                caller_number: Some(m.caller_number),
                caller_name: m.caller_name,
                call_id: m.call_id,
                ..Default::default()
            },
            headers: m.headers,
            attachments: Vec::new(),
            body_text: None,
        })
    }

    /// Marks an item read or unread, as another client would.
    pub fn set_read(&self, id: &str, read: bool) -> bool {
        self.mutate(|s| s.set_read(id, read))
    }

    /// Deletes an item, as another client would.
    pub fn delete(&self, id: &str) -> bool {
        self.mutate(|s| s.delete(id))
    }

    /// The mailbox now: (id, item class, is_read), newest first.
    pub fn items(&self) -> Vec<(String, String, bool)> {
        let s = self.shared.store.lock().unwrap_or_else(|p| p.into_inner());
        s.items().into_iter().map(|i| (i.id.clone(), i.data.item_class.clone(), i.data.is_read)).collect()
    }

    /// The calendar's free/busy changed: a `FreeBusyChangedEvent` to the
    /// subscriptions on the Calendar that asked for it. Returns the calendar item's id.
    pub fn free_busy_changed(&self) -> String {
        self.mutate(|s| s.free_busy_changed())
    }

    /// Drops every streaming connection mid-stream (no `Closed` frame).
    pub fn drop_streams(&self) {
        self.shared.drop_streams.send_modify(|v| *v += 1);
    }

    /// A server restart: every connection is dropped and every subscription forgotten; the mailbox stays.
    pub fn restart(&self) {
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner()).forget_subscriptions();
        self.shared.restart.send_modify(|v| *v += 1);
    }

    /// Makes every sync state handed out so far invalid (`ErrorInvalidSyncStateData`).
    pub fn forget_sync_states(&self) {
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner()).forget_sync_states();
    }

    /// The next `calls` EWS requests get `ErrorServerBusy` with this back-off.
    pub fn throttle(&self, calls: u32, back_off: Duration) {
        *self.shared.throttle.lock().unwrap_or_else(|p| p.into_inner()) = (calls, back_off.as_millis() as u64, false);
    }

    /// Like [`throttle`](Self::throttle) in the form Exchange Online uses:
    /// HTTP 200 with an error response message `ErrorServerBusy` whose
    /// `MessageXml` carries `BackOffMilliseconds`.
    pub fn throttle_in_body(&self, calls: u32, back_off: Duration) {
        *self.shared.throttle.lock().unwrap_or_else(|p| p.into_inner()) = (calls, back_off.as_millis() as u64, true);
    }

    /// The next `calls` EWS requests fail with this HTTP status (503 as from an
    /// overloaded IIS, 403 as for a mailbox without EWS, 429, …), before any SOAP.
    pub fn fail_http(&self, calls: u32, status: u16) {
        *self.shared.http_failures.lock().unwrap_or_else(|p| p.into_inner()) = (calls, status);
    }

    /// The next `calls` GetStreamingEvents get one frame with
    /// `ErrorInvalidSubscription` and `Closed` (HTTP 200), as from a server
    /// behind a load balancer that lost the subscription's affinity.
    pub fn fail_streams(&self, calls: u32) {
        self.shared.invalid_streams.store(calls, Ordering::SeqCst);
    }

    /// The next `calls` GetStreamingEvents begin their response (HTTP 200)
    /// and then send an `ErrorServerBusy` SOAP fault with this back-off in
    /// place of a frame, as a throttled Exchange does mid-stream.
    pub fn fault_streams(&self, calls: u32, back_off: Duration) {
        *self.shared.faulted_streams.lock().unwrap_or_else(|p| p.into_inner()) = (calls, back_off.as_millis() as u64);
    }

    /// Requests for `operation` (`SyncFolderItems`, …) are read, validated and
    /// logged (status 0), then never answered, as from a backend that stopped
    /// responding behind a load balancer that keeps the connection open.
    pub fn hang(&self, operation: &str) {
        self.shared.hung.lock().unwrap_or_else(|p| p.into_inner()).push(operation.to_string());
    }

    /// Sends GetAttachment responses at `bytes_per_sec` (as over a slow VPN),
    /// so a client's download progress can be watched; `None`: full speed.
    pub fn limit_attachment_rate(&self, bytes_per_sec: Option<u64>) {
        *self.shared.attachment_rate.lock().unwrap_or_else(|p| p.into_inner()) = bytes_per_sec;
    }

    /// Changes a user's password.
    pub fn set_password(&self, user: &str, password: &str) {
        let mut c = self.shared.config.lock().unwrap_or_else(|p| p.into_inner());
        c.users.retain(|(u, _)| !u.eq_ignore_ascii_case(user));
        c.users.push((user.to_string(), password.to_string()));
    }

    /// Graph sends a lifecycle notification for every subscription on
    /// `mailbox` and acts on it (see `LifecycleEvent`); how many it touched.
    pub fn graph_lifecycle(&self, mailbox: &str, event: LifecycleEvent) -> usize {
        graph_push::lifecycle(&self.shared, mailbox, event)
    }

    /// Stalls Graph's notification delivery (`true`) or lets it go on: what
    /// changes meanwhile waits, unless a `missed` drops it.
    pub fn graph_pause(&self, paused: bool) {
        self.shared.push.lock().unwrap_or_else(|p| p.into_inner()).paused = paused;
        self.shared.changed.send_modify(|v| *v += 1);
    }

    /// The Graph change notification subscriptions alive: (id, mailbox, expiry).
    pub fn graph_subscriptions(&self) -> Vec<(String, String, std::time::SystemTime)> {
        graph_push::list(&self.shared)
    }

    /// Notification collections a webhook took (2xx), and those dropped after every retry.
    pub fn graph_deliveries(&self) -> (u32, u32) {
        let p = self.shared.push.lock().unwrap_or_else(|p| p.into_inner());
        (p.delivered, p.dropped)
    }

    /// Every request served so far.
    pub fn served(&self) -> Vec<Served> {
        self.shared.served.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Authentication attempts that failed (wrong password, bad token).
    pub fn auth_failures(&self) -> u32 {
        self.shared.auth_failures.load(Ordering::SeqCst)
    }

    /// Streaming connections open now.
    pub fn open_streams(&self) -> u32 {
        self.shared.open_streams.load(Ordering::SeqCst)
    }

    /// The most EWS requests (streams left out) served at once so far.
    pub fn max_in_flight(&self) -> u32 {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u32 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Subscriptions the server holds.
    pub fn subscriptions(&self) -> usize {
        self.shared.store.lock().unwrap_or_else(|p| p.into_inner()).subscription_count()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.shared.restart.send_modify(|v| *v += 1);
    }
}

fn tls_acceptor(extra: &[String]) -> Result<(tokio_rustls::TlsAcceptor, String), SimError> {
    let err = |e: rcgen::Error| SimError::Certificate(e.to_string());
    let ca_key = rcgen::KeyPair::generate().map_err(err)?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Lamplighter EWS simulator CA");
    let ca = ca_params.self_signed(&ca_key).map_err(err)?;
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    names.extend(extra.iter().cloned());
    let leaf_key = rcgen::KeyPair::generate().map_err(err)?;
    let leaf = rcgen::CertificateParams::new(names).map_err(err)?.signed_by(&leaf_key, &ca, &ca_key).map_err(err)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SimError::Certificate(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .map_err(|e| SimError::Certificate(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem()))
}

/// Per-connection authentication state (NTLM authenticates connections).
#[derive(Default)]
struct ConnAuth {
    user: Option<String>,
    pending: Option<lamplighter_ntlm::ServerChallenge>,
    /// A Kerberos exchange in progress on this connection.
    kerberos: Option<lamplighter_gssapi::Acceptor>,
}

async fn serve<I>(shared: Arc<Shared>, io: I, mut stopped: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let conn_auth = Arc::new(Mutex::new(ConnAuth::default()));
    let mut restart = shared.restart.subscribe();
    let s = shared.clone();
    let service = hyper::service::service_fn(move |req| {
        let s = s.clone();
        let a = conn_auth.clone();
        async move { Ok::<_, std::convert::Infallible>(handle(s, a, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new().keep_alive(true).serve_connection(io, service);
    tokio::select! {
        _ = conn => {}
        _ = restart.changed() => {}
        _ = stopped.changed() => {}
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).map_err(|never| match never {}).boxed());
    *r.status_mut() = status;
    r
}

fn xml(status: StatusCode, body: String) -> Response<Body> {
    let mut r = full(status, body);
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/xml; charset=utf-8"));
    r
}

fn unauthorized(shared: &Shared, extra: Option<String>) -> Response<Body> {
    let c = shared.config.lock().unwrap_or_else(|p| p.into_inner()).auth.clone();
    let mut r = full(StatusCode::UNAUTHORIZED, "401 - Unauthorized: Access is denied due to invalid credentials.");
    let h = r.headers_mut();
    match extra {
        Some(challenge) => {
            h.append("www-authenticate", challenge.parse().expect("header"));
        }
        None => {
            if c.ntlm || c.kerberos.is_some() {
                h.append("www-authenticate", "Negotiate".parse().expect("header"));
            }
            if c.ntlm && !c.negotiate_only {
                h.append("www-authenticate", "NTLM".parse().expect("header"));
            }
            if c.basic {
                h.append("www-authenticate", "Basic realm=\"127.0.0.1\"".parse().expect("header"));
            }
            if !c.bearer_tokens.is_empty() {
                h.append(
                    "www-authenticate",
                    "Bearer authorization_uri=\"https://login.invalid\"".parse().expect("header"),
                );
            }
        }
    }
    r
}

/// A bearer token: `Some(true)` accepted (configured, or issued by the
/// sign-in service and live), `Some(false)` issued but expired, `None` unknown.
fn token_verdict(shared: &Shared, token: &str) -> Option<bool> {
    if shared.config.lock().unwrap_or_else(|p| p.into_inner()).auth.bearer_tokens.iter().any(|t| t == token) {
        return Some(true);
    }
    shared.entra.lock().unwrap_or_else(|p| p.into_inner()).accepts(token, std::time::Instant::now())
}

fn password_of(config: &SimConfig, user: &str) -> Option<String> {
    let bare = user.rsplit('\\').next().unwrap_or(user);
    let bare = bare.split('@').next().unwrap_or(bare);
    config.users.iter().find(|(u, _)| u.eq_ignore_ascii_case(bare)).map(|(_, p)| p.clone())
}

enum AuthOutcome {
    Ok,
    /// Signed in; the header goes on the response (Kerberos' mutual authentication).
    OkWith(String),
    Respond(Response<Body>),
}

fn authenticate(shared: &Shared, conn: &Mutex<ConnAuth>, req: &Request<Incoming>) -> AuthOutcome {
    let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
    let config = shared.config.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    let fail = |shared: &Shared| {
        shared.auth_failures.fetch_add(1, Ordering::SeqCst);
        AuthOutcome::Respond(unauthorized(shared, None))
    };
    match header {
        Some(h) if config.auth.basic && h.starts_with("Basic ") => {
            let decoded = base64_decode(&h[6..]).and_then(|b| String::from_utf8(b).ok());
            match decoded.as_deref().and_then(|d| d.split_once(':')) {
                Some((user, pass)) if password_of(&config, user).as_deref() == Some(pass) => AuthOutcome::Ok,
                _ => fail(shared),
            }
        }
        Some(h) if h.starts_with("Bearer ") => {
            if token_verdict(shared, h[7..].trim()) == Some(true) {
                AuthOutcome::Ok
            } else {
                shared.auth_failures.fetch_add(1, Ordering::SeqCst);
                AuthOutcome::Respond(unauthorized(shared, Some("Bearer error=\"invalid_token\"".into())))
            }
        }
        Some(h)
            if config.auth.kerberos.is_some()
                && h.starts_with("Negotiate ")
                && !lamplighter_ntlm::token_from_header(&h).is_some_and(|t| t.starts_with(b"NTLMSSP\0")) =>
        {
            let kerberos = config.auth.kerberos.as_ref().expect("checked");
            let Some(token) = base64_decode(&h[10..]) else { return fail(shared) };
            if conn.kerberos.is_none() {
                match lamplighter_gssapi::Acceptor::with_keytab(&kerberos.keytab) {
                    Ok(a) => conn.kerberos = Some(a),
                    Err(e) => {
                        log::warn!("ews-sim: Kerberos is offered but the keytab cannot be used: {e}");
                        return fail(shared);
                    }
                }
            }
            let acceptor = conn.kerberos.as_mut().expect("set");
            match acceptor.step(&token) {
                Ok(a) if a.complete => {
                    conn.kerberos = None;
                    let principal = a.client.unwrap_or_default();
                    let name = principal.split('@').next().unwrap_or("");
                    if !config.users.iter().any(|(u, _)| u.eq_ignore_ascii_case(name)) {
                        return fail(shared);
                    }
                    conn.user = Some(principal);
                    match a.token {
                        Some(t) if kerberos.send_proof => {
                            AuthOutcome::OkWith(format!("Negotiate {}", base64_encode(&t)))
                        }
                        _ => AuthOutcome::Ok,
                    }
                }
                Ok(a) => match a.token {
                    Some(t) => {
                        AuthOutcome::Respond(unauthorized(shared, Some(format!("Negotiate {}", base64_encode(&t)))))
                    }
                    None => fail(shared),
                },
                Err(_) => {
                    conn.kerberos = None;
                    fail(shared)
                }
            }
        }
        Some(h)
            if config.auth.ntlm
                && ((h.starts_with("NTLM ") && !config.auth.negotiate_only) || h.starts_with("Negotiate ")) =>
        {
            let Some(token) = lamplighter_ntlm::token_from_header(&h) else { return fail(shared) };
            // the challenge comes back under the scheme the client used
            let scheme = if h.starts_with("Negotiate ") { "Negotiate" } else { "NTLM" };
            match token.get(8) {
                Some(1) => match lamplighter_ntlm::ServerChallenge::new(&token, &config.domain, "EXCH01") {
                    Ok(ch) => {
                        let header = lamplighter_ntlm::header_with_scheme(scheme, ch.message());
                        conn.pending = Some(ch);
                        conn.user = None;
                        AuthOutcome::Respond(unauthorized(shared, Some(header)))
                    }
                    Err(_) => fail(shared),
                },
                Some(3) => {
                    let Some(ch) = conn.pending.take() else { return fail(shared) };
                    match ch.verify(&token, |_, u| password_of(&config, u)) {
                        Ok((_, user)) => {
                            conn.user = Some(user);
                            AuthOutcome::Ok
                        }
                        Err(_) => fail(shared),
                    }
                }
                _ => fail(shared),
            }
        }
        // an NTLM-authenticated connection stays authenticated
        _ if conn.user.is_some() => AuthOutcome::Ok,
        _ => AuthOutcome::Respond(unauthorized(shared, None)),
    }
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s.trim()).ok()
}

async fn handle(shared: Arc<Shared>, conn: Arc<Mutex<ConnAuth>>, req: Request<Incoming>) -> Response<Body> {
    // the Graph face signs in with bearer tokens of its own
    if req.uri().path().starts_with("/v1.0/") {
        return graph::serve(shared, req).await;
    }
    if req.method() == hyper::Method::GET
        && let Some(r) = entra::discovery(&shared, req.uri().path(), req.uri().query())
    {
        shared.served.lock().unwrap_or_else(|p| p.into_inner()).push(Served {
            op: format!("discovery GET {}", req.uri().path()),
            status: r.status().as_u16(),
            schema_valid: true,
            anchor: false,
            cookie: false,
            mailbox: String::new(),
            anchor_mailbox: None,
            ids: 0,
        });
        return r;
    }
    if entra::is_entra(req.uri().path()) {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().map(str::to_string);
        let body = match http_body_util::Limited::new(req.into_body(), 64 << 10).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => return full(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
        };
        let r = entra::serve(&shared, &method, &path, query.as_deref(), &body);
        shared.served.lock().unwrap_or_else(|p| p.into_inner()).push(Served {
            op: format!("entra {method} {path}"),
            status: r.status().as_u16(),
            schema_valid: true,
            anchor: false,
            cookie: false,
            mailbox: String::new(),
            anchor_mailbox: None,
            ids: 0,
        });
        return r;
    }
    let auth = authenticate(&shared, &conn, &req);
    let proof = match &auth {
        AuthOutcome::OkWith(h) => Some(h.clone()),
        _ => None,
    };
    let user = signed_in_user(&conn, &req);
    let mut response = respond(shared, auth, user, req).await;
    if let Some(p) = proof.and_then(|p| p.parse().ok()) {
        response.headers_mut().append("www-authenticate", p);
    }
    response
}

/// Who a request signed in as: the Basic user, or the user of the
/// connection's NTLM or Kerberos sign-in (`None` for bearer tokens).
fn signed_in_user(conn: &Mutex<ConnAuth>, req: &Request<Incoming>) -> Option<String> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    if let Some(basic) = header.and_then(|h| h.strip_prefix("Basic ")) {
        let decoded = base64_decode(basic).and_then(|b| String::from_utf8(b).ok())?;
        return decoded.split_once(':').map(|(u, _)| u.to_string());
    }
    if header.is_some_and(|h| h.starts_with("Bearer ")) {
        return None;
    }
    conn.lock().unwrap_or_else(|p| p.into_inner()).user.clone()
}

/// Whether `user` (`DOMAIN\name`, `name@REALM` or `name`) holds the ApplicationImpersonation role.
fn may_impersonate(config: &SimConfig, user: Option<&str>) -> bool {
    let Some(user) = user else { return false };
    let bare = |u: &str| {
        let u = u.rsplit('\\').next().unwrap_or(u);
        u.split('@').next().unwrap_or(u).to_ascii_lowercase()
    };
    config.impersonators.iter().any(|i| bare(i) == bare(user))
}

async fn respond(
    shared: Arc<Shared>,
    auth: AuthOutcome,
    user: Option<String>,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_ascii_lowercase();
    let anchor_mailbox =
        req.headers().get("x-anchormailbox").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_ascii_lowercase());
    let anchor = req.headers().contains_key("x-anchormailbox") && req.headers().contains_key("x-preferserveraffinity");
    let cookie_value: Option<String> = req.headers().get_all("cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        v.split(';').find_map(|c| c.trim().strip_prefix("X-BackEndOverrideCookie=").map(str::to_string))
    });
    let cookie = cookie_value.is_some();
    // read the body in any case, so the connection stays usable for the next leg
    let body = match http_body_util::Limited::new(req.into_body(), 8 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return full(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
    };
    let log = |op: &str, status: u16, schema_valid: bool, mailbox: &str, ids: usize| {
        shared.served.lock().unwrap_or_else(|p| p.into_inner()).push(Served {
            op: op.to_string(),
            status,
            schema_valid,
            anchor,
            cookie,
            mailbox: mailbox.to_string(),
            anchor_mailbox: anchor_mailbox.clone(),
            ids,
        });
    };
    if let AuthOutcome::Respond(r) = auth {
        log(&path, r.status().as_u16(), true, "", 0);
        return r;
    }
    if path == "/ews/exchange.asmx" {
        let mut f = shared.http_failures.lock().unwrap_or_else(|p| p.into_inner());
        if f.0 > 0 {
            f.0 -= 1;
            let status = StatusCode::from_u16(f.1).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            log("(http failure)", status.as_u16(), true, "", 0);
            let mut r = full(status, format!("HTTP Error {} - injected by the simulator", status.as_u16()));
            if status == StatusCode::TOO_MANY_REQUESTS {
                r.headers_mut().insert("retry-after", hyper::header::HeaderValue::from_static("1"));
            }
            return r;
        }
    }
    let response = match path.as_str() {
        "/ews/exchange.asmx" => return ews(&shared, &body, user.as_deref(), cookie_value.as_deref(), &log).await,
        "/autodiscover/autodiscover.xml" => autodiscover_pox(&shared, &body),
        "/autodiscover/autodiscover.svc" => autodiscover_soap(&shared, &body),
        _ => full(StatusCode::NOT_FOUND, "404 - File or directory not found."),
    };
    log(&path, response.status().as_u16(), true, "", 0);
    response
}

/// Validates with xmllint; `Err(message, line, position)` when invalid.
async fn validate(validation: &Validation, body: &[u8]) -> Result<(), (String, u32, u32)> {
    let Validation::Schema(schema) = validation else { return Ok(()) };
    use tokio::io::AsyncWriteExt as _;
    let child = tokio::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Err((format!("xmllint cannot run ({e}); install libxml2-utils"), 0, 0)),
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(body).await;
    }
    let out = match child.wait_with_output().await {
        Ok(o) => o,
        Err(e) => return Err((format!("xmllint failed: {e}"), 0, 0)),
    };
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let first = err.lines().find(|l| !l.contains("fails to validate")).unwrap_or("invalid request").to_string();
    // "-:3: element FindItem: Schemas validity error : …"
    let line = first.split(':').nth(1).and_then(|n| n.trim().parse().ok()).unwrap_or(0);
    Err((first, line, 0))
}

async fn ews(
    shared: &Arc<Shared>,
    body: &Bytes,
    user: Option<&str>,
    cookie: Option<&str>,
    log_in: &impl Fn(&str, u16, bool, &str, usize),
) -> Response<Body> {
    let validation = shared.config.lock().unwrap_or_else(|p| p.into_inner()).validation.clone();
    let log = |op: &str, status: u16, valid: bool| log_in(op, status, valid, "", 0);
    let doc = match soap::parse(body) {
        Ok(d) => d,
        Err(e) => {
            log("(malformed)", 500, false);
            return xml(
                StatusCode::INTERNAL_SERVER_ERROR,
                soap::fault("ErrorSchemaValidation", &format!("The request failed schema validation: {e}"), None, ""),
            );
        }
    };
    let op_el = doc.child("Body").and_then(|b| b.children.first()).cloned().unwrap_or_default();
    let op = op_el.name.clone();
    // an unknown version is what clients probe with: Exchange says so, and they retry older
    if let Some(v) = doc.child("Header").and_then(|h| h.child("RequestServerVersion")).and_then(|v| v.attr("Version"))
        && !crate::folders::known_version(v)
    {
        log(&op, 500, true);
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            soap::fault("ErrorInvalidServerVersion", "The specified server version is invalid.", None, ""),
        );
    }
    if let Err((message, line, position)) = validate(&validation, body).await {
        log(&op, 500, false);
        let detail = format!(
            r#"<e:Line xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{line}</e:Line><e:Position xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{position}</e:Position><e:Violation xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{}</e:Violation>"#,
            esc(&message)
        );
        return xml(
            StatusCode::INTERNAL_SERVER_ERROR,
            soap::fault(
                "ErrorSchemaValidation",
                &format!("The request failed schema validation: {message}"),
                None,
                &detail,
            ),
        );
    }
    // which mailbox: the account's own, or the one it impersonates (the role checked first)
    let impersonated = doc
        .child("Header")
        .and_then(|h| h.child("ExchangeImpersonation"))
        .and_then(|i| i.child("ConnectingSID"))
        .and_then(|c| c.children.first())
        .map(|a| a.text.trim().to_string());
    let allowed = may_impersonate(&shared.config.lock().unwrap_or_else(|p| p.into_inner()), user);
    let resolved = shared.store.lock().unwrap_or_else(|p| p.into_inner()).resolve(impersonated.as_deref(), allowed);
    let mb = match resolved {
        Ok(mb) => mb,
        Err(refused) => {
            log(&op, 500, true);
            let (code, text) = match refused {
                Refused::Denied => (
                    "ErrorImpersonateUserDenied",
                    "The account does not have permission to impersonate the requested user.",
                ),
                Refused::NoMailbox => {
                    ("ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")
                }
            };
            return xml(StatusCode::INTERNAL_SERVER_ERROR, soap::fault(code, text, None, ""));
        }
    };
    let log = |op: &str, status: u16, valid: bool| log_in(op, status, valid, &mb, 0);
    if shared.hung.lock().unwrap_or_else(|p| p.into_inner()).contains(&op) {
        log(&op, 0, true);
        return std::future::pending().await;
    }
    {
        let mut t = shared.throttle.lock().unwrap_or_else(|p| p.into_inner());
        if t.0 > 0 && t.2 {
            t.0 -= 1;
            log(&op, 200, true);
            let message = format!(
                r#"<m:{op}ResponseMessage ResponseClass="Error"><m:MessageText>The server cannot service this request right now. Try again later.</m:MessageText><m:ResponseCode>ErrorServerBusy</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:MessageXml><t:Value Name="BackOffMilliseconds">{}</t:Value></m:MessageXml></m:{op}ResponseMessage>"#,
                t.1
            );
            return xml(StatusCode::OK, soap::response(&op, &message));
        }
        if t.0 > 0 {
            t.0 -= 1;
            log(&op, 500, true);
            return xml(
                StatusCode::INTERNAL_SERVER_ERROR,
                soap::fault(
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    Some(t.1),
                    "",
                ),
            );
        }
    }
    let version = doc
        .child("Header")
        .and_then(|h| h.child("RequestServerVersion"))
        .and_then(|v| v.attr("Version"))
        .unwrap_or("Exchange2007_SP1")
        .to_string();
    let latency = shared.config.lock().unwrap_or_else(|p| p.into_inner()).latency;
    let _serving = (op != "GetStreamingEvents").then(|| InFlight::new(shared));
    if let Some(l) = latency.filter(|_| op != "GetStreamingEvents") {
        tokio::time::sleep(l).await;
    }
    let (status, response) = match op.as_str() {
        "FindItem" => (200, find_item(shared, &mb, &op_el)),
        "GetItem" => (200, get_item(shared, &mb, &op_el)),
        "UpdateItem" => (200, update_item(shared, &mb, &op_el)),
        "GetAttachment" => (200, get_attachment(shared, &mb, &op_el, version.starts_with("Exchange2007"))),
        "SyncFolderItems" => (200, sync_folder_items(shared, &mb, &op_el)),
        "Subscribe" => {
            let r = subscribe(shared, &mb, &op_el);
            log(&op, 200, true);
            let mut resp = xml(StatusCode::OK, r);
            let backends = shared.config.lock().unwrap_or_else(|p| p.into_inner()).backends;
            let value = backend_cookie(backend_of(&mb, backends));
            resp.headers_mut().append(
                "set-cookie",
                format!("X-BackEndOverrideCookie={value}; path=/; secure; HttpOnly").parse().expect("cookie"),
            );
            return resp;
        }
        "Unsubscribe" => (200, unsubscribe(shared, &mb, &op_el)),
        "GetFolder" => {
            (200, crate::folders::get_folder(shared.store.lock().unwrap_or_else(|p| p.into_inner()).of(&mb), &op_el))
        }
        "ConvertId" => (200, crate::folders::convert_id(&op_el)),
        "FindFolder" => {
            (200, crate::folders::find_folder(shared.store.lock().unwrap_or_else(|p| p.into_inner()).of(&mb), &op_el))
        }
        "GetEvents" => (200, get_events(shared, &mb, &op_el)),
        "GetStreamingEvents" => {
            if version.starts_with("Exchange2007") || version == "Exchange2010" {
                (
                    200,
                    soap::response(
                        "GetStreamingEvents",
                        &soap::error(
                            "GetStreamingEvents",
                            "ErrorInvalidServerVersion",
                            "The specified server version is invalid.",
                        ),
                    ),
                )
            } else {
                let ids = op_el.child("SubscriptionIds").map_or(0, |s| s.all("SubscriptionId").count());
                log_in(&op, 200, true, &mb, ids);
                let backends = shared.config.lock().unwrap_or_else(|p| p.into_inner()).backends;
                // routed by the backend cookie when there is one, else to the anchor mailbox's server
                let backend =
                    cookie.and_then(backend_from_cookie).unwrap_or_else(|| backend_of(&mb, backends)) % backends.max(1);
                return streaming(shared.clone(), &op_el, &mb, backend);
            }
        }
        _ => (
            500,
            soap::fault("ErrorInvalidRequest", "The request is valid but is not supported by this server.", None, ""),
        ),
    };
    log(&op, status, true);
    let rate = *shared.attachment_rate.lock().unwrap_or_else(|p| p.into_inner());
    match rate {
        Some(rate) if op == "GetAttachment" => paced(response, rate),
        _ => xml(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), response),
    }
}

/// A 200 XML response sent in 8 KiB pieces at `rate` bytes per second.
fn paced(body: String, rate: u64) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let body = Bytes::from(body);
    tokio::spawn(async move {
        const PIECE: usize = 8 * 1024;
        let pause = Duration::from_secs_f64(PIECE as f64 / rate.max(1) as f64);
        for start in (0..body.len()).step_by(PIECE) {
            if tx.send(Ok(body.slice(start..(start + PIECE).min(body.len())))).await.is_err() {
                return;
            }
            tokio::time::sleep(pause).await;
        }
    });
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/xml; charset=utf-8"));
    r
}

fn folder_of(el: &El, container: &str) -> Option<String> {
    crate::folders::name_in(el, container)
}

fn find_item(shared: &Shared, mb: &str, el: &El) -> String {
    let shape = Shape::from(el.child("ItemShape"));
    let folder = folder_of(el, "ParentFolderIds").unwrap_or_default();
    if folder.is_empty() {
        return soap::response(
            "FindItem",
            &soap::error("FindItem", "ErrorFolderNotFound", "The specified folder could not be found in the store."),
        );
    }
    let view = el.child("IndexedPageItemView");
    let max = view.and_then(|v| v.attr("MaxEntriesReturned")).and_then(|v| v.parse().ok()).unwrap_or(1000usize);
    let offset = view.and_then(|v| v.attr("Offset")).and_then(|v| v.parse().ok()).unwrap_or(0usize);
    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let store = all.of(mb);
    // every item is in the Inbox, and the Voice Mail search folder shows its voicemails
    let (items, total) =
        if folder == "inbox" || folder == "voicemail" { store.find(&folder, offset, max) } else { (Vec::new(), 0) };
    let next = offset + items.len();
    let rendered: String = items.iter().map(|i| soap::item(i, &shape)).collect();
    soap::response(
        "FindItem",
        &soap::success(
            "FindItem",
            &format!(
                r#"<m:RootFolder IndexedPagingOffset="{next}" TotalItemsInView="{total}" IncludesLastItemInRange="{}"><t:Items>{rendered}</t:Items></m:RootFolder>"#,
                next >= total
            ),
        ),
    )
}

fn get_item(shared: &Shared, mb: &str, el: &El) -> String {
    let shape = Shape::from(el.child("ItemShape"));
    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let store = all.of(mb);
    let mut messages = String::new();
    for id in el.child("ItemIds").map(|i| i.all("ItemId").collect::<Vec<_>>()).unwrap_or_default() {
        match id.attr("Id").and_then(|i| store.get(i)) {
            Some(item) => {
                messages += &soap::success("GetItem", &format!("<m:Items>{}</m:Items>", soap::item(item, &shape)))
            }
            None => {
                messages += &soap::error_with(
                    "GetItem",
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                    "<m:Items/>",
                )
            }
        }
    }
    soap::response("GetItem", &messages)
}

fn update_item(shared: &Shared, mb: &str, el: &El) -> String {
    let never = el.attr("ConflictResolution") == Some("NeverOverwrite");
    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let store = all.of(mb);
    let mut messages = String::new();
    let mut changed = false;
    for change in el.child("ItemChanges").map(|c| c.all("ItemChange").collect::<Vec<_>>()).unwrap_or_default() {
        let id = change.child("ItemId");
        let fields: Vec<&El> = change.child("Updates").map(|u| u.children.iter().collect()).unwrap_or_default();
        let is_read = fields.iter().all(|f| {
            f.name == "SetItemField" && f.child("FieldURI").and_then(|u| u.attr("FieldURI")) == Some("message:IsRead")
        });
        let value = fields.first().and_then(|f| f.path_text(&["Message", "IsRead"])).map(|v| v == "true" || v == "1");
        let (Some(id), true, Some(value)) = (id, is_read && !fields.is_empty(), value) else {
            messages += &soap::error_with(
                "UpdateItem",
                "ErrorInvalidPropertySet",
                "This simulator only updates message:IsRead.",
                "<m:Items/>",
            );
            continue;
        };
        match store.update_read(id.attr("Id").unwrap_or_default(), id.attr("ChangeKey"), value, never) {
            Ok(item) => {
                changed = true;
                messages += &soap::success(
                    "UpdateItem",
                    &format!(
                        r#"<m:Items><t:Message><t:ItemId Id="{}" ChangeKey="{}"/></t:Message></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>"#,
                        esc(&item.id),
                        esc(&item.change_key())
                    ),
                )
            }
            Err(UpdateError::NotFound) => {
                messages += &soap::error_with(
                    "UpdateItem",
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                    "<m:Items/>",
                )
            }
            Err(UpdateError::Conflict) => {
                messages += &soap::error_with(
                    "UpdateItem",
                    "ErrorIrresolvableConflict",
                    "The send or update operation could not be performed because the change key passed in the request does not match the current change key for the item.",
                    "<m:Items/>",
                )
            }
        }
    }
    drop(all);
    if changed {
        shared.changed.send_modify(|v| *v += 1);
    }
    soap::response("UpdateItem", &messages)
}

fn get_attachment(shared: &Shared, mb: &str, el: &El, asked_2007: bool) -> String {
    let layout_2007 = asked_2007 || shared.config.lock().unwrap_or_else(|p| p.into_inner()).attachments_2007;
    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let store = all.of(mb);
    let mut messages = String::new();
    for id in el.child("AttachmentIds").map(|i| i.all("AttachmentId").collect::<Vec<_>>()).unwrap_or_default() {
        match id.attr("Id").and_then(|i| store.attachment_of(i)) {
            Some((item, a)) => {
                messages += &soap::success(
                    "GetAttachment",
                    &format!(
                        r#"<m:Attachments><t:FileAttachment><t:AttachmentId Id="{}"/><t:Name>{}</t:Name><t:ContentType>{}</t:ContentType>{}<t:Content>{}</t:Content></t:FileAttachment></m:Attachments>"#,
                        esc(&a.id),
                        esc(&a.name),
                        esc(&a.content_type),
                        // what Exchange 2010 added to the 2007 layout
                        if layout_2007 {
                            String::new()
                        } else {
                            format!(
                                "<t:Size>{}</t:Size><t:LastModifiedTime>{}</t:LastModifiedTime><t:IsInline>false</t:IsInline><t:IsContactPhoto>false</t:IsContactPhoto>",
                                a.data.len(),
                                item.received
                            )
                        },
                        soap::b64(&a.data)
                    ),
                )
            }
            None => {
                messages += &soap::error_with(
                    "GetAttachment",
                    "ErrorInvalidIdNotAnItemAttachmentId",
                    "The Id is invalid.",
                    "<m:Attachments/>",
                )
            }
        }
    }
    soap::response("GetAttachment", &messages)
}

fn sync_folder_items(shared: &Shared, mb: &str, el: &El) -> String {
    let shape = Shape::from(el.child("ItemShape"));
    let folder = folder_of(el, "SyncFolderId").unwrap_or_default();
    if folder != "inbox" {
        return soap::response(
            "SyncFolderItems",
            &soap::error(
                "SyncFolderItems",
                "ErrorFolderNotFound",
                "The specified folder could not be found in the store.",
            ),
        );
    }
    let max = el.path_text(&["MaxChangesReturned"]).and_then(|m| m.parse().ok()).unwrap_or(512usize);
    let state = el.path_text(&["SyncState"]).filter(|s| !s.is_empty());
    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    match all.of(mb).sync(state, max) {
        Ok(page) => soap::response(
            "SyncFolderItems",
            &soap::success(
                "SyncFolderItems",
                &format!(
                    "<m:SyncState>{}</m:SyncState><m:IncludesLastItemInRange>{}</m:IncludesLastItemInRange>{}",
                    esc(&page.state),
                    page.includes_last,
                    soap::changes(&page.changes, &shape)
                ),
            ),
        ),
        Err(_) => soap::response(
            "SyncFolderItems",
            &soap::error(
                "SyncFolderItems",
                "ErrorInvalidSyncStateData",
                "Synchronization state data is corrupt or otherwise invalid.",
            ),
        ),
    }
}

fn subscribe(shared: &Shared, mb: &str, el: &El) -> String {
    let (kind, req) = match (el.child("StreamingSubscriptionRequest"), el.child("PullSubscriptionRequest")) {
        (Some(r), _) => (SubKind::Streaming, r),
        (_, Some(r)) => (SubKind::Pull, r),
        _ => {
            return soap::response(
                "Subscribe",
                &soap::error(
                    "Subscribe",
                    "ErrorInvalidSubscriptionRequest",
                    "Push subscriptions are not supported here.",
                ),
            );
        }
    };
    let mut folders = Vec::new();
    if let Some(f) = req.child("FolderIds") {
        folders.extend(f.children.iter().map(|d| crate::folders::resolve(d).map(|f| f.name)));
    }
    if folders.iter().any(|f| !matches!(f, Some("inbox" | "voicemail" | "calendar"))) {
        return soap::response(
            "Subscribe",
            &soap::error("Subscribe", "ErrorFolderNotFound", "The specified folder could not be found in the store."),
        );
    }
    // Voice Mail is a search folder over the Inbox: its items' events are the Inbox's
    let folder_ids: Vec<&'static str> =
        folders.iter().map(|f| if *f == Some("calendar") { crate::folders::CALENDAR_ID } else { INBOX_ID }).collect();
    let types: Vec<String> = req
        .child("EventTypes")
        .map(|t| t.all("EventType").map(|e| e.text.trim().to_string()).collect())
        .unwrap_or_default();
    let types: Vec<&str> = types.iter().map(String::as_str).collect();
    let max = shared.config.lock().unwrap_or_else(|p| p.into_inner()).max_subscriptions;
    let (id, wm) = {
        let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        if max.is_some_and(|m| all.of(mb).subscription_count() >= m) {
            return soap::response(
                "Subscribe",
                &soap::error(
                    "Subscribe",
                    "ErrorExceededSubscriptionCount",
                    "You have exceeded the maximum number of subscriptions allowed for this account.",
                ),
            );
        }
        let (id, wm) = all.of(mb).subscribe(kind, &types, &folder_ids);
        all.subscribed(&id, mb);
        (id, wm)
    };
    let watermark =
        if kind == SubKind::Pull { format!("<m:Watermark>{}</m:Watermark>", esc(&wm)) } else { String::new() };
    soap::response(
        "Subscribe",
        &soap::success("Subscribe", &format!("<m:SubscriptionId>{}</m:SubscriptionId>{watermark}", esc(&id))),
    )
}

fn unsubscribe(shared: &Shared, mb: &str, el: &El) -> String {
    let id = el.path_text(&["SubscriptionId"]).unwrap_or_default().to_string();
    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let owner = all.owner_of(&id).unwrap_or(mb).to_string();
    let result = all.of(&owner).unsubscribe(&id);
    if result.is_ok() {
        all.unsubscribed(&id);
    }
    match result {
        Ok(()) => soap::response("Unsubscribe", &soap::success("Unsubscribe", "")),
        Err(_) => soap::response(
            "Unsubscribe",
            &soap::error("Unsubscribe", "ErrorSubscriptionNotFound", "The specified subscription was not found."),
        ),
    }
}

fn get_events(shared: &Shared, mb: &str, el: &El) -> String {
    let id = el.path_text(&["SubscriptionId"]).unwrap_or_default().to_string();
    let wm = el.path_text(&["Watermark"]).unwrap_or_default().to_string();
    let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
    let store = all.of(mb);
    if !store.has_subscription(&id, SubKind::Pull) {
        return soap::response(
            "GetEvents",
            &soap::error("GetEvents", "ErrorSubscriptionNotFound", "The specified subscription was not found."),
        );
    }
    match store.get_events(&id, &wm) {
        Ok((events, previous, current)) => {
            let body: String = if events.is_empty() {
                format!("<t:StatusEvent><t:Watermark>{}</t:Watermark></t:StatusEvent>", esc(&current))
            } else {
                events.iter().map(|e| soap::event(e, true)).collect()
            };
            soap::response(
                "GetEvents",
                &soap::success(
                    "GetEvents",
                    &format!(
                        "<m:Notification><t:SubscriptionId>{}</t:SubscriptionId><t:PreviousWatermark>{}</t:PreviousWatermark><t:MoreEvents>false</t:MoreEvents>{body}</m:Notification>",
                        esc(&id),
                        esc(&previous)
                    ),
                ),
            )
        }
        Err(SubError::InvalidWatermark) => soap::response(
            "GetEvents",
            &soap::error("GetEvents", "ErrorInvalidWatermark", "The watermark used for this subscription is invalid."),
        ),
        Err(SubError::NotFound) => soap::response(
            "GetEvents",
            &soap::error("GetEvents", "ErrorSubscriptionNotFound", "The specified subscription was not found."),
        ),
    }
}

use crate::folders::INBOX_ID;

/// A response body fed from a channel; an `Err` aborts the connection.
struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// A request being served: counted while it lasts.
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: &Arc<Shared>) -> InFlight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An open stream: counted while it lasts, and charged to its account when a limit applies.
struct StreamGuard(Arc<Shared>, Option<String>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::SeqCst);
        if let Some(account) = &self.1 {
            let mut open = self.0.streams_by_account.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = open.get_mut(account) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

fn streaming(shared: Arc<Shared>, el: &El, charged: &str, backend: u32) -> Response<Body> {
    let ids: Vec<String> = el
        .child("SubscriptionIds")
        .map(|s| s.all("SubscriptionId").map(|i| i.text.trim().to_string()).collect())
        .unwrap_or_default();
    let minutes: u64 = el.path_text(&["ConnectionTimeout"]).and_then(|m| m.parse().ok()).unwrap_or(30);
    let (heartbeat, cap) = {
        let c = shared.config.lock().unwrap_or_else(|p| p.into_inner());
        (c.heartbeat, c.max_connection_time)
    };
    let lifetime = cap.map_or(Duration::from_secs(minutes * 60), |c| c.min(Duration::from_secs(minutes * 60)));
    let (backends, limit) = {
        let c = shared.config.lock().unwrap_or_else(|p| p.into_inner());
        (c.backends, c.hanging_connection_limit)
    };
    if ids.len() > MAX_IDS_PER_STREAM {
        let frame = soap::streaming_frame(&format!(
            r#"<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>A GetStreamingEvents request carries at most {MAX_IDS_PER_STREAM} subscriptions; it carried {}.</m:MessageText><m:ResponseCode>ErrorInvalidRequest</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"#,
            ids.len()
        ));
        return xml(StatusCode::OK, frame);
    }
    // a server holds only the subscriptions of its own mailboxes
    let missing: Vec<&String> = {
        let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .filter(|i| match all.owner_of(i).map(str::to_string) {
                Some(owner) => {
                    backend_of(&owner, backends) % backends.max(1) != backend
                        || !all.of(&owner).has_subscription(i, SubKind::Streaming)
                }
                None => true,
            })
            .collect()
    };
    if let Some(limit) = limit {
        let mut open = shared.streams_by_account.lock().unwrap_or_else(|p| p.into_inner());
        if open.get(charged).copied().unwrap_or(0) >= limit {
            let frame = soap::streaming_frame(
                r#"<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>The account has exceeded the maximum number of open streaming connections.</m:MessageText><m:ResponseCode>ErrorExceededConnectionCount</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"#,
            );
            return xml(StatusCode::OK, frame);
        }
        *open.entry(charged.to_string()).or_default() += 1;
    }
    let faulted = {
        let mut f = shared.faulted_streams.lock().unwrap_or_else(|p| p.into_inner());
        (f.0 > 0).then(|| {
            f.0 -= 1;
            f.1
        })
    };
    if let Some(back_off) = faulted {
        return xml(
            StatusCode::OK,
            soap::fault(
                "ErrorServerBusy",
                "The server cannot service this request right now. Try again later.",
                Some(back_off),
                "",
            ),
        );
    }
    let injected =
        shared.invalid_streams.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if injected {
        let frame = soap::streaming_frame(
            r#"<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>The subscription is invalid.</m:MessageText><m:ResponseCode>ErrorInvalidSubscription</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"#,
        );
        return xml(StatusCode::OK, frame);
    }
    if !missing.is_empty() || ids.is_empty() {
        let errs: String = missing.iter().map(|i| format!("<m:SubscriptionId>{}</m:SubscriptionId>", esc(i))).collect();
        let frame = soap::streaming_frame(&format!(
            r#"<m:GetStreamingEventsResponseMessage ResponseClass="Error"><m:MessageText>The specified subscription was not found.</m:MessageText><m:ResponseCode>ErrorSubscriptionNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey><m:ErrorSubscriptionIds>{errs}</m:ErrorSubscriptionIds><m:ConnectionStatus>Closed</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"#
        ));
        return xml(StatusCode::OK, frame);
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    // listen before the stream counts as open: a drop or restart asked for
    // once `open_streams` shows it must reach it, however late the task runs
    let mut changed = shared.changed.subscribe();
    let mut dropper = shared.drop_streams.subscribe();
    let mut restart = shared.restart.subscribe();
    shared.open_streams.fetch_add(1, Ordering::SeqCst);
    let guard = StreamGuard(shared.clone(), limit.map(|_| charged.to_string()));
    tokio::spawn(async move {
        let _guard = guard;
        let deadline = tokio::time::Instant::now() + lifetime;
        let ok = |status: &str| {
            Bytes::from(soap::streaming_frame(&format!(
                r#"<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:ConnectionStatus>{status}</m:ConnectionStatus></m:GetStreamingEventsResponseMessage>"#
            )))
        };
        loop {
            // events first (a change may have arrived before we listened)
            changed.borrow_and_update();
            let mut notifications = String::new();
            let mut gone = false;
            {
                let mut all = shared.store.lock().unwrap_or_else(|p| p.into_inner());
                for id in &ids {
                    let Some(owner) = all.owner_of(id).map(str::to_string) else {
                        gone = true;
                        continue;
                    };
                    let store = all.of(&owner);
                    match store.take_events(id) {
                        Ok(events) => {
                            // as Exchange does, the Inbox's own change follows its items': its unread count
                            let inbox_changed = store.wants(id, "ModifiedEvent")
                                && events.iter().any(|e| e.parent == INBOX_ID && e.kind != EventKind::FreeBusyChanged);
                            let unread = store.items().iter().filter(|i| !i.data.is_read).count();
                            let folder_event = format!(
                                r#"<t:ModifiedEvent><t:TimeStamp>{}</t:TimeStamp><t:FolderId Id="{INBOX_ID}" ChangeKey="AQAAAA=="/><t:ParentFolderId Id="{}" ChangeKey="AQAAAA=="/><t:UnreadCount>{unread}</t:UnreadCount></t:ModifiedEvent>"#,
                                events.last().map(|e| e.timestamp.clone()).unwrap_or_default(),
                                crate::folders::TOP_ID
                            );
                            let chunks = events.chunks(50).count();
                            for (n, chunk) in events.chunks(50).enumerate() {
                                let mut evs: String = chunk.iter().map(|e| soap::event(e, false)).collect();
                                if n + 1 == chunks && inbox_changed {
                                    evs += &folder_event;
                                }
                                notifications += &format!(
                                    "<m:Notification><t:SubscriptionId>{}</t:SubscriptionId>{evs}</m:Notification>",
                                    esc(id)
                                );
                            }
                        }
                        Err(_) => gone = true,
                    }
                }
            }
            if gone {
                let _ = tx.send(Err(std::io::Error::other("subscription gone"))).await;
                return;
            }
            if !notifications.is_empty() {
                let frame = soap::streaming_frame(&format!(
                    r#"<m:GetStreamingEventsResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Notifications>{notifications}</m:Notifications></m:GetStreamingEventsResponseMessage>"#
                ));
                if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep(heartbeat) => {
                    if tx.send(Ok(ok("OK"))).await.is_err() { return; }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let _ = tx.send(Ok(ok("Closed"))).await;
                    return;
                }
                _ = dropper.changed() => {
                    let _ = tx.send(Err(std::io::Error::other("stream dropped by the test"))).await;
                    return;
                }
                _ = restart.changed() => {
                    let _ = tx.send(Err(std::io::Error::other("server restart"))).await;
                    return;
                }
                _ = tx.closed() => return,
            }
        }
    });
    let mut r = Response::new(BodyExt::boxed(ChannelBody(rx)));
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("text/xml; charset=utf-8"));
    r
}

fn autodiscover_pox(shared: &Shared, body: &[u8]) -> Response<Body> {
    let (email, redirects) = {
        let c = shared.config.lock().unwrap_or_else(|p| p.into_inner());
        (c.email.clone(), c.redirect_addresses.clone())
    };
    let asked = soap::parse(body)
        .ok()
        .and_then(|d| d.path_text(&["Request", "EMailAddress"]).map(str::to_string))
        .unwrap_or_default();
    let ews = format!("{}/EWS/Exchange.asmx", shared.base_url);
    let inner = if let Some((_, to)) = redirects.iter().find(|(from, _)| from.eq_ignore_ascii_case(&asked)) {
        format!(
            "<Account><AccountType>email</AccountType><Action>redirectAddr</Action><RedirectAddr>{}</RedirectAddr></Account>",
            esc(to)
        )
    } else if asked.eq_ignore_ascii_case(&email) {
        format!(
            "<User><DisplayName>Lamplighter demo</DisplayName><AutoDiscoverSMTPAddress>{}</AutoDiscoverSMTPAddress></User><Account><AccountType>email</AccountType><Action>settings</Action><MicrosoftOnline>False</MicrosoftOnline><Protocol><Type>EXCH</Type><Server>EXCH01.example.test</Server><ASUrl>{ews}</ASUrl><EwsUrl>{ews}</EwsUrl><EmwsUrl>{ews}</EmwsUrl></Protocol><Protocol><Type>EXPR</Type><Server>127.0.0.1</Server><SSL>On</SSL><AuthPackage>Ntlm</AuthPackage><EwsUrl>{ews}</EwsUrl></Protocol></Account>",
            esc(&email)
        )
    } else {
        r#"<Error Time="00:00:00.0000000" Id="2477272013"><ErrorCode>500</ErrorCode><Message>The email address can't be found.</Message><DebugData /></Error>"#.to_string()
    };
    xml(
        StatusCode::OK,
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">{inner}</Response></Autodiscover>"#
        ),
    )
}

fn autodiscover_soap(shared: &Shared, body: &[u8]) -> Response<Body> {
    let (email, redirects) = {
        let c = shared.config.lock().unwrap_or_else(|p| p.into_inner());
        (c.email.clone(), c.redirect_addresses.clone())
    };
    let doc = match soap::parse(body) {
        Ok(d) => d,
        Err(e) => return xml(StatusCode::BAD_REQUEST, soap::fault("ErrorInvalidRequest", &e, None, "")),
    };
    let mut users = Vec::new();
    if let Some(req) =
        doc.child("Body").and_then(|b| b.child("GetUserSettingsRequestMessage")).and_then(|m| m.child("Request"))
        && let Some(u) = req.child("Users")
    {
        users.extend(u.all("User").filter_map(|u| u.path_text(&["Mailbox"]).map(str::to_string)));
    }
    let ews = format!("{}/EWS/Exchange.asmx", shared.base_url);
    let mut responses = String::new();
    for u in users {
        if let Some((_, to)) = redirects.iter().find(|(from, _)| from.eq_ignore_ascii_case(&u)) {
            responses += &format!(
                "<UserResponse><ErrorCode>RedirectAddress</ErrorCode><ErrorMessage>Redirection address.</ErrorMessage><RedirectTarget>{}</RedirectTarget><UserSettingErrors/><UserSettings/></UserResponse>",
                esc(to)
            );
        } else if u.eq_ignore_ascii_case(&email) {
            responses += &format!(
                r#"<UserResponse><ErrorCode>NoError</ErrorCode><ErrorMessage>No error.</ErrorMessage><RedirectTarget i:nil="true"/><UserSettingErrors/><UserSettings><UserSetting i:type="StringSetting"><Name>InternalEwsUrl</Name><Value>{ews}</Value></UserSetting><UserSetting i:type="StringSetting"><Name>ExternalEwsUrl</Name><Value>{ews}</Value></UserSetting><UserSetting i:type="StringSetting"><Name>GroupingInformation</Name><Value>EXAMPLE-SIM</Value></UserSetting></UserSettings></UserResponse>"#
            );
        } else {
            responses += "<UserResponse><ErrorCode>InvalidUser</ErrorCode><ErrorMessage>Invalid user.</ErrorMessage><RedirectTarget i:nil=\"true\"/><UserSettingErrors/><UserSettings/></UserResponse>";
        }
    }
    xml(
        StatusCode::OK,
        format!(
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:a="http://www.w3.org/2005/08/addressing"><s:Header><a:Action s:mustUnderstand="1">http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse</a:Action><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><h:MajorVersion>15</h:MajorVersion><h:MinorVersion>1</h:MinorVersion><h:MajorBuildNumber>2507</h:MajorBuildNumber><h:MinorBuildNumber>6</h:MinorBuildNumber><h:Version>Exchange2015</h:Version></h:ServerVersionInfo></s:Header><s:Body><GetUserSettingsResponseMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover"><Response xmlns:i="http://www.w3.org/2001/XMLSchema-instance"><ErrorCode>NoError</ErrorCode><ErrorMessage/><UserResponses>{responses}</UserResponses></Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>"#
        ),
    )
}
