//! Sends an unsolicited message-summary NOTIFY to a phone and reports the
//! phone's final answer: the transport for [`lamplighter_sip_mwi`].
//!
//! This is the one place that knows the SIP stack (`rsipstack` 0.7, chosen
//! in ARCHITECTURE.md): it builds the request, runs the RFC 3261 non-INVITE
//! client transaction (retransmission per Timer E over UDP, Timer F giving
//! up after 32 s, 1xx ignored), and answers a 401/407 once with
//! [`lamplighter_sip_mwi::digest`] (MD5 or SHA-256, which rsipstack's own
//! helper rejects) on a new transaction with CSeq + 1. Everything it decides
//! about *what* to send lives in `lamplighter-sip-mwi`; swapping the stack
//! means rewriting this crate only.
//!
//! The NOTIFY is what Exchange UM sends: out of dialog, `Event:
//! message-summary`, `Subscription-State: terminated`, `Content-Type:
//! application/simple-message-summary`.

pub mod demo_phone;
pub mod driver;
mod listen;
pub mod subscriptions;

pub use listen::{StreamLimits, TlsIdentity};

use lamplighter_sip_mwi::digest::{Challenge, Nonces, RequestToSign, authorization, choose};
use lamplighter_sip_mwi::summary::MessageSummary;
use rsipstack::EndpointBuilder;
use rsipstack::sip::{Header, Method, Request, SipMessage, Uri, Version, headers::*};
use rsipstack::transaction::endpoint::Endpoint;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::TransportLayer;
use rsipstack::transport::udp::UdpConnection;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Why a NOTIFY did not get a 2xx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// No final response before Timer F (or a 408 from the phone).
    #[error("the phone did not answer (timeout)")]
    Timeout,
    /// A final error response.
    #[error("the phone answered {code} {reason}")]
    Rejected {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// Challenged, but no credentials are configured, or the challenge is unusable.
    #[error("the phone asks for authentication ({code}): {detail}")]
    AuthRequired {
        /// 401 or 407.
        code: u16,
        /// What is missing.
        detail: String,
    },
    /// Our credentials were refused.
    #[error("the phone refused the credentials ({code} {reason})")]
    AuthFailed {
        /// Status code.
        code: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The target URI is not usable.
    #[error("invalid target {0}")]
    InvalidTarget(String),
    /// Sockets, name resolution, connection refused.
    #[error("transport error: {0}")]
    Transport(String),
    /// A 2xx we cannot use (a PUBLISH answer without a usable `SIP-ETag`).
    #[error("unusable answer: {0}")]
    BadAnswer(String),
}

impl NotifyError {
    /// The phone's status code, where it answered (a timeout has none).
    pub fn code(&self) -> Option<u16> {
        match self {
            NotifyError::Timeout => None,
            NotifyError::Rejected { code, .. }
            | NotifyError::AuthRequired { code, .. }
            | NotifyError::AuthFailed { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Digest credentials for a phone.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"«redacted»").finish()
    }
}

/// How the NOTIFY reaches the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP with retransmissions.
    Udp,
    /// TCP, connected on demand.
    Tcp,
    /// TLS over TCP; the phone's certificate must chain to the CA given to
    /// [`NotifySender::bind_with_ca`] (verification is always on).
    Tls,
}

/// The phone's final 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// Status code (200, 202, …).
    pub code: u16,
    /// Reason phrase.
    pub reason: String,
    /// Whether a digest challenge was answered on the way.
    pub authenticated: bool,
}

/// A presence server's acceptance of a PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Status code (200).
    pub code: u16,
    /// The entity tag and lifetime, checked ([`lamplighter_sip_mwi::publication`]);
    /// `None` for a removal.
    pub publication: Option<lamplighter_sip_mwi::publication::Accepted>,
}

/// Where a request goes when not to its Request-URI's host (`sip:host:port`); `what` names it in the error.
fn server_addr(s: &str, what: &str) -> Result<rsipstack::transport::SipAddr, NotifyError> {
    Uri::try_from(s)
        .ok()
        .and_then(|u| rsipstack::transport::SipAddr::try_from(&u).ok())
        .ok_or_else(|| NotifyError::InvalidTarget(format!("{what} {s}")))
}

/// One request to send: what differs between NOTIFY and PUBLISH.
struct Outgoing<'a> {
    method: Method,
    uri: &'a str,
    transport: Transport,
    from_user: &'a str,
    /// Where to send it, when not to the Request-URI's host.
    server: Option<rsipstack::transport::SipAddr>,
    /// Method-specific headers.
    headers: Vec<Header>,
    body: Vec<u8>,
}

/// Where a [`NotifySender`] binds and listens.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// The UDP socket (port 0 picks one); an unspecified address
    /// (`0.0.0.0`, `[::]`) sends from whichever address routes to each target.
    pub udp: SocketAddr,
    /// A TCP listener for phones that connect to us (subscribe mode).
    pub tcp: Option<SocketAddr>,
    /// A TLS listener and the certificate it presents.
    pub tls: Option<(SocketAddr, TlsIdentity)>,
    /// PEM CA certificates TLS phones' certificates must chain to.
    pub ca_pem: Option<Vec<u8>>,
    /// Bounds on accepted connections.
    pub limits: StreamLimits,
}

impl SenderConfig {
    /// UDP at `udp` only, no listeners, no TLS trust.
    pub fn udp(udp: SocketAddr) -> Self {
        SenderConfig { udp, tcp: None, tls: None, ca_pem: None, limits: StreamLimits::default() }
    }
}

/// Accepted stream connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Open on the TCP listener now.
    pub tcp_open: usize,
    /// Open on the TLS listener now.
    pub tls_open: usize,
    /// Closed at once so far: over a bound, or a failed TLS handshake.
    pub refused: u64,
}

/// The addresses a [`NotifySender`] is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    pub udp: SocketAddr,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
}

/// A SIP endpoint that sends NOTIFYs; its sockets live as long as it does.
pub struct NotifySender {
    endpoint: Arc<Endpoint>,
    local: SocketAddr,
    listening: Listening,
    /// The TCP listener's and the TLS listener's counters.
    streams: [Option<listen::ListenerState>; 2],
    cancel: CancellationToken,
    /// The last challenge per target, so the next NOTIFY is authorised up
    /// front with the same nonce and a growing `nc` (RFC 7616 §3.4).
    challenges: Mutex<HashMap<String, (u16, Challenge)>>,
    nonces: Mutex<Nonces>,
}

impl Drop for NotifySender {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn transport_error(e: impl std::fmt::Display) -> NotifyError {
    NotifyError::Transport(e.to_string())
}

impl NotifySender {
    /// Binds a UDP socket at `local` (port 0 picks one) and starts the endpoint.
    pub async fn bind(local: SocketAddr) -> Result<NotifySender, NotifyError> {
        Self::bind_with_ca(local, None).await
    }

    /// Like [`bind`](Self::bind), trusting the PEM CA certificates in
    /// `ca_pem` for TLS phones (phones usually carry PBX-issued or private
    /// certificates; without a CA every TLS phone is refused).
    pub async fn bind_with_ca(local: SocketAddr, ca_pem: Option<Vec<u8>>) -> Result<NotifySender, NotifyError> {
        Self::start(SenderConfig { ca_pem, ..SenderConfig::udp(local) }).await
    }

    /// Binds the UDP socket and the listeners `config` asks for.
    pub async fn start(config: SenderConfig) -> Result<NotifySender, NotifyError> {
        let cancel = CancellationToken::new();
        let layer = TransportLayer::new(cancel.child_token());
        let udp = UdpConnection::create_connection(config.udp, None, Some(cancel.child_token()))
            .await
            .map_err(|e| NotifyError::Transport(format!("cannot bind udp:{}: {e}", config.udp)))?;
        let mut local = udp.get_addr().get_socketaddr().map_err(transport_error)?;
        // the stack names an unspecified bind by the first interface's
        // address; keep it unspecified, so each request names the address
        // that routes to its target
        if config.udp.ip().is_unspecified() {
            local.set_ip(config.udp.ip());
        }
        layer.add_transport(udp.into());
        layer.set_stream_idle_timeout(config.limits.idle);
        // rustls needs a process-wide crypto provider; ring is the one in the tree.
        // An error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(ca) = config.ca_pem {
            layer.set_tls_config(rsipstack::transport::tls::TlsConfig { ca_certs: Some(ca), ..Default::default() });
        }
        let endpoint = Arc::new(
            EndpointBuilder::new()
                .with_user_agent(concat!("Lamplighter/", env!("CARGO_PKG_VERSION")))
                .with_cancel_token(cancel.child_token())
                .with_transport_layer(layer)
                .build(),
        );
        let serving = endpoint.clone();
        tokio::spawn(async move { serving.serve().await });
        let mut listening = Listening { udp: local, tcp: None, tls: None };
        let mut streams = [None, None];
        for (addr, identity) in config.tcp.map(|a| (a, None)).into_iter().chain(config.tls.map(|(a, i)| (a, Some(i)))) {
            let (bound, state) =
                listen::start(endpoint.clone(), addr, identity.as_ref(), config.limits, cancel.child_token())
                    .await
                    .map_err(NotifyError::Transport)?;
            match identity {
                None => (listening.tcp, streams[0]) = (Some(bound), Some(state)),
                Some(_) => (listening.tls, streams[1]) = (Some(bound), Some(state)),
            }
        }
        Ok(NotifySender {
            endpoint,
            local,
            listening,
            streams,
            cancel,
            challenges: Mutex::new(HashMap::new()),
            nonces: Mutex::new(Nonces::default()),
        })
    }

    /// The local UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Every address bound.
    pub fn listening(&self) -> Listening {
        self.listening
    }

    /// The stream listeners' counters.
    pub fn stream_connections(&self) -> StreamStats {
        let open = |s: &Option<listen::ListenerState>| s.as_ref().map_or(0, |s| s.open());
        StreamStats {
            tcp_open: open(&self.streams[0]),
            tls_open: open(&self.streams[1]),
            refused: self.streams.iter().flatten().map(|s| s.refused()).sum(),
        }
    }

    /// The address requests to `remote` over `transport` carry in Via, From
    /// and Contact: the one the socket uses toward it, with the port replies
    /// and new requests reach us on.
    pub(crate) fn local_toward(
        &self,
        transport: Transport,
        remote: SocketAddr,
        stream_local: Option<SocketAddr>,
    ) -> SocketAddr {
        let listener = match transport {
            Transport::Udp => Some(self.local),
            Transport::Tcp => self.listening.tcp,
            Transport::Tls => self.listening.tls,
        };
        let ip = match (stream_local, listener) {
            (Some(s), _) => s.ip(),
            (None, Some(l)) if !l.ip().is_unspecified() => l.ip(),
            _ => local_ip_toward(remote.ip()).unwrap_or(self.local.ip()),
        };
        let port = match (listener, stream_local) {
            (Some(l), _) => l.port(),
            (None, Some(s)) => s.port(),
            (None, None) => self.local.port(),
        };
        SocketAddr::new(ip, port)
    }

    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.endpoint
    }

    /// Opens (or finds) the stream connection to the target first, so a
    /// refused or reset connection is an error at once; the transaction layer
    /// would otherwise retry the connect on the UDP timers and report a
    /// timeout 32 s later.
    ///
    /// Returns the address to name ourselves with toward the target.
    async fn connect(
        &self,
        transport: Transport,
        server: Option<rsipstack::transport::SipAddr>,
        uri: &Uri,
    ) -> Result<SocketAddr, NotifyError> {
        let addr = match server {
            Some(a) => a,
            None => rsipstack::transport::SipAddr::try_from(uri)
                .map_err(|e| NotifyError::InvalidTarget(format!("{uri}: {e}")))?,
        };
        let (connection, resolved) = self
            .endpoint
            .inner
            .transport_layer
            .lookup(&addr, None)
            .await
            .map_err(|e| NotifyError::Transport(format!("cannot connect to {addr}: {e}")))?;
        let remote = resolved.get_socketaddr().map_err(|e| NotifyError::InvalidTarget(format!("{addr}: {e}")))?;
        let stream_local = match transport {
            Transport::Udp => None,
            _ => connection.get_addr().get_socketaddr().ok(),
        };
        Ok(self.local_toward(transport, remote, stream_local))
    }

    /// Runs one client transaction and returns the final response's code and phrase.
    pub(crate) async fn transact(
        &self,
        request: Request,
    ) -> Result<(u16, String, rsipstack::sip::Response), NotifyError> {
        self.transact_to(request, None).await
    }

    /// Like [`transact`](Self::transact), sent to `destination` instead of the Request-URI's host.
    pub(crate) async fn transact_to(
        &self,
        request: Request,
        destination: Option<rsipstack::transport::SipAddr>,
    ) -> Result<(u16, String, rsipstack::sip::Response), NotifyError> {
        let key = TransactionKey::from_request(&request, TransactionRole::Client).map_err(transport_error)?;
        let mut tx = Transaction::new_client(key, request, self.endpoint.inner.clone(), None);
        tx.destination = destination;
        tx.send().await.map_err(transport_error)?;
        while let Some(msg) = tx.receive().await {
            if let SipMessage::Response(r) = msg {
                let code = r.status_code.code();
                if code >= 200 {
                    let reason = r.wire_reason.clone().unwrap_or_else(|| {
                        // the stack's Display writes "200 OK": keep the phrase only
                        let text = r.status_code.to_string();
                        text.trim_start_matches(|c: char| c.is_ascii_digit()).trim().to_string()
                    });
                    return Ok((code, reason, r));
                }
            }
        }
        Err(NotifyError::Timeout)
    }

    /// Sends `summary` to `uri` and waits for the final answer (at most
    /// Timer F, 32 s, per transaction).
    pub async fn send(
        &self,
        uri: &str,
        transport: Transport,
        account_from: &str,
        summary: &MessageSummary,
        credentials: Option<&Credentials>,
    ) -> Result<Delivered, NotifyError> {
        self.send_via(uri, None, transport, account_from, summary, credentials).await
    }

    /// [`NotifySender::send`] through `server` (`sip:host:port`: a SIP
    /// gateway or PBX trunk that forwards to the phone) when given: the
    /// Request-URI stays `uri` (`sip:<extension>@<pbx>`), as Exchange UM
    /// sent its NOTIFYs to its IP gateways.
    pub async fn send_via(
        &self,
        uri: &str,
        server: Option<&str>,
        transport: Transport,
        account_from: &str,
        summary: &MessageSummary,
        credentials: Option<&Credentials>,
    ) -> Result<Delivered, NotifyError> {
        let server = server.map(|s| server_addr(s, "gateway")).transpose()?;
        let out = Outgoing {
            method: Method::Notify,
            uri,
            transport,
            from_user: account_from,
            server,
            headers: vec![
                Header::Other("Event".into(), "message-summary".into()),
                Header::Other("Subscription-State".into(), "terminated".into()),
                ContentType::new("application/simple-message-summary").into(),
            ],
            body: summary.to_string().into_bytes(),
        };
        self.request_with_auth(out, credentials).await.map(|(d, _)| d)
    }

    /// Sends an OPTIONS to `uri` (a SIP gateway or trunk: `sip:host:port`)
    /// and returns the status of its final answer: any answer means it is
    /// there (a PBX may well say 404 or 405 to OPTIONS); no answer, or a
    /// connection refused, is the error.
    pub async fn ping(&self, uri: &str, transport: Transport) -> Result<u16, NotifyError> {
        let out = Outgoing {
            method: Method::Options,
            uri,
            transport,
            from_user: "lamplighter",
            server: None,
            headers: vec![Header::Other("Accept".into(), "application/sdp".into())],
            body: Vec::new(),
        };
        match self.request_with_auth(out, None).await {
            Ok((d, _)) => Ok(d.code),
            Err(NotifyError::Rejected { code, .. } | NotifyError::AuthRequired { code, .. }) => Ok(code),
            Err(e) => Err(e),
        }
    }

    /// PUBLISHes `summary` for the presentity `uri` (RFC 3903) to `server`
    /// (`None`: the host of `uri`): an initial publication without `etag`, a
    /// modification or refresh with it, a removal with `summary` `None` and
    /// `expires` 0. A 412 to a modification (the server forgot the entity
    /// tag; Kamailio 5.6 says 500) is followed by one initial publication.
    #[allow(clippy::too_many_arguments)] // the RFC 3903 request's parts, each distinct
    pub async fn publish(
        &self,
        uri: &str,
        server: Option<&str>,
        transport: Transport,
        summary: Option<&MessageSummary>,
        etag: Option<&str>,
        expires: u32,
        credentials: Option<&Credentials>,
    ) -> Result<Published, NotifyError> {
        let server = server.map(|s| server_addr(s, "presence server")).transpose()?;
        let mut etag = etag.map(str::to_string);
        loop {
            let mut headers =
                vec![Header::Other("Event".into(), "message-summary".into()), Expires::new(expires.to_string()).into()];
            if let Some(tag) = &etag {
                headers.push(Header::Other("SIP-If-Match".into(), tag.clone()));
            }
            if summary.is_some() {
                headers.push(ContentType::new("application/simple-message-summary").into());
            }
            let out = Outgoing {
                method: Method::Publish,
                uri,
                transport,
                from_user: "lamplighter",
                server: server.clone(),
                headers,
                body: summary.map(|s| s.to_string().into_bytes()).unwrap_or_default(),
            };
            match self.request_with_auth(out, credentials).await {
                Ok((delivered, response)) => {
                    let header = |name: &str| {
                        response.headers.iter().find_map(|h| {
                            let text = h.to_string();
                            let (n, v) = text.split_once(':')?;
                            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                    };
                    let publication = match summary {
                        None => None,
                        Some(_) => Some(
                            lamplighter_sip_mwi::publication::accepted(
                                header("SIP-ETag").as_deref(),
                                header("Expires").as_deref(),
                                expires,
                            )
                            .map_err(|e| NotifyError::BadAnswer(e.to_string()))?,
                        ),
                    };
                    return Ok(Published { code: delivered.code, publication });
                }
                // RFC 3903 says 412; Kamailio 5.6 answers an unknown tag with 500
                Err(NotifyError::Rejected { code: 412 | 500, .. }) if etag.is_some() && summary.is_some() => {
                    etag = None
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends one request, answering a 401/407 once with digest.
    async fn request_with_auth(
        &self,
        out: Outgoing<'_>,
        credentials: Option<&Credentials>,
    ) -> Result<(Delivered, rsipstack::sip::Response), NotifyError> {
        let uri = out.uri;
        // sent to a server of its own (PUBLISH), the transport is the
        // server's; the Request-URI stays the presentity's as configured
        let target = match out.transport {
            _ if out.server.is_some() => uri.to_string(),
            Transport::Udp => uri.to_string(),
            Transport::Tcp if uri.to_ascii_lowercase().contains("transport=tcp") => uri.to_string(),
            Transport::Tcp => format!("{uri};transport=tcp"),
            Transport::Tls if uri.to_ascii_lowercase().contains("transport=tls") => uri.to_string(),
            Transport::Tls => format!("{uri};transport=tls"),
        };
        let request_uri =
            Uri::try_from(target.as_str()).map_err(|e| NotifyError::InvalidTarget(format!("{uri}: {e}")))?;
        let destination = match out.server.clone() {
            Some(mut server) => {
                server.r#type = match out.transport {
                    Transport::Udp => Some(rsipstack::sip::Transport::Udp),
                    Transport::Tcp => Some(rsipstack::sip::Transport::Tcp),
                    Transport::Tls => Some(rsipstack::sip::Transport::Tls),
                };
                Some(server)
            }
            None => None,
        };
        let local = self.connect(out.transport, destination.clone(), &request_uri).await?;
        let method_name = out.method.to_string();
        let body = out.body;
        let call_id = format!("{}@lamplighter", rsipstack::transaction::random_text(20));
        let tag = rsipstack::transaction::random_text(10);
        let mut cseq = 1u32;
        let mut authenticated = false;
        let known = self.challenges.lock().unwrap_or_else(|p| p.into_inner()).get(&target).cloned();
        let mut auth_header: Option<Header> = match (known, credentials) {
            (Some((code, challenge)), Some(creds)) => {
                Some(self.auth_header(code, &challenge, creds, &method_name, &target, &body))
            }
            _ => None,
        };
        let mut preauthorised = auth_header.is_some();
        loop {
            let mut headers = base_headers(
                Addressing { local, transport: out.transport, from_user: out.from_user, to: uri },
                &method_name,
                &call_id,
                &tag,
                cseq,
            );
            headers.extend(out.headers.iter().cloned());
            headers.push(UserAgent::new(concat!("Lamplighter/", env!("CARGO_PKG_VERSION"))).into());
            if let Some(a) = &auth_header {
                headers.push(a.clone());
            }
            headers.push(ContentLength::new(body.len().to_string()).into());
            let request = Request {
                method: out.method,
                uri: request_uri.clone(),
                headers: headers.into(),
                version: Version::V2,
                body: body.clone(),
            };
            let (code, reason, response) = self.transact_to(request, destination.clone()).await?;
            match code {
                200..=299 => {
                    let delivered = Delivered { code, reason, authenticated: authenticated || preauthorised };
                    return Ok((delivered, response));
                }
                401 | 403 | 407 if authenticated => {
                    self.challenges.lock().unwrap_or_else(|p| p.into_inner()).remove(&target);
                    return Err(NotifyError::AuthFailed { code, reason });
                }
                401 | 407 => {
                    let Some(creds) = credentials else {
                        return Err(NotifyError::AuthRequired {
                            code,
                            detail: "no credentials configured for this phone".into(),
                        });
                    };
                    let values: Vec<String> = response
                        .headers
                        .iter()
                        .filter_map(|h| match (code, h) {
                            (401, Header::WwwAuthenticate(v)) => Some(v.value().to_string()),
                            (407, Header::ProxyAuthenticate(v)) => Some(v.value().to_string()),
                            _ => None,
                        })
                        .collect();
                    let challenges = Challenge::parse_list(&values)
                        .map_err(|e| NotifyError::AuthRequired { code, detail: e.to_string() })?;
                    let challenge = choose(&challenges)
                        .ok_or_else(|| NotifyError::AuthRequired { code, detail: "no usable challenge".into() })?;
                    let challenge = challenge.clone();
                    self.challenges
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(target.clone(), (code, challenge.clone()));
                    auth_header = Some(self.auth_header(code, &challenge, creds, &method_name, &target, &body));
                    // a stale pre-authorisation gets one fresh try, like any first challenge
                    preauthorised = false;
                    authenticated = true;
                    cseq += 1;
                }
                408 => return Err(NotifyError::Timeout),
                _ => return Err(NotifyError::Rejected { code, reason }),
            }
        }
    }

    /// `Authorization` (401) or `Proxy-Authorization` (407) for `challenge`, next `nc`.
    fn auth_header(
        &self,
        code: u16,
        challenge: &Challenge,
        creds: &Credentials,
        method: &str,
        target: &str,
        body: &[u8],
    ) -> Header {
        let nc = self.nonces.lock().unwrap_or_else(|p| p.into_inner()).next(&challenge.nonce);
        let cnonce = rsipstack::transaction::random_text(16);
        let request = RequestToSign { method, uri: target, body };
        let value = authorization(challenge, &creds.username, &creds.password, request, &cnonce, nc);
        if code == 407 {
            Header::ProxyAuthorization(ProxyAuthorization::new(value))
        } else {
            Header::Authorization(Authorization::new(value))
        }
    }
}

/// Who a request is from and to, on the wire.
struct Addressing<'a> {
    /// Our address toward the target.
    local: SocketAddr,
    transport: Transport,
    from_user: &'a str,
    /// The configured URI, parameters kept (`;user=phone`).
    to: &'a str,
}

/// `;transport=tcp`/`tls` for a URI naming us over a stream, nothing for UDP.
pub(crate) fn transport_param(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
    }
}

/// `UDP`, `TCP` or `TLS`, as the Via's sent-protocol says it.
pub(crate) fn via_protocol(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
    }
}

/// Via, Max-Forwards, From, To, Call-ID, CSeq and Contact of a request.
fn base_headers(a: Addressing<'_>, method: &str, call_id: &str, tag: &str, cseq: u32) -> Vec<Header> {
    let branch = format!("z9hG4bK{}", rsipstack::transaction::random_text(16));
    let local = a.local;
    vec![
        Via::new(format!("SIP/2.0/{} {local};branch={branch};rport", via_protocol(a.transport))).into(),
        MaxForwards::new("70").into(),
        From::new(format!("<sip:{}@{local}>;tag={tag}", a.from_user)).into(),
        To::new(format!("<{}>", a.to)).into(),
        CallId::new(call_id).into(),
        CSeq::new(format!("{cseq} {method}")).into(),
        Contact::new(format!("<sip:{}@{local}{}>", a.from_user, transport_param(a.transport))).into(),
    ]
}

/// The local address the routing table picks toward `remote`. Nothing is
/// sent: a connected UDP socket only asks the routing table.
pub fn local_ip_toward(remote: std::net::IpAddr) -> Option<std::net::IpAddr> {
    let any: SocketAddr =
        if remote.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = std::net::UdpSocket::bind(any).ok()?;
    socket.connect((remote, 5060)).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}
