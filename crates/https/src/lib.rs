//! HTTPS to a mail service, shared by the EWS and Graph clients: one home
//! for how Lamplighter trusts a server and opens a connection.
//!
//! - [`Tls`]: rustls with the system's roots plus an optional extra CA (a
//!   company's), verification never off, ALPN `http/1.1`.
//! - [`connect`]: every address of the host (or a fixed one, like curl's
//!   `--resolve`) tried in turn with a timeout, then TLS within the same
//!   timeout, then an HTTP/1.1 connection on hyper's connection API, whose
//!   driving task ends with the connection. The callers keep their own
//!   pools: EWS pins NTLM to connections, Graph needs only one.

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Why a connection could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpsError {
    /// The extra CA file is not usable.
    #[error("the CA file: {0}")]
    Ca(String),
    /// TLS could not be set up at all.
    #[error("TLS setup: {0}")]
    Setup(String),
    /// No TCP connection (resolution, refusal, no answer).
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    /// The TLS handshake failed (certificate not trusted, wrong name, …).
    #[error("TLS with {target} failed: {reason}")]
    Tls { target: String, reason: String },
    /// The TLS handshake took longer than the timeout.
    #[error("{target} did not answer within {secs} s")]
    Timeout { target: String, secs: u64 },
}

/// How a server is trusted.
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsConnector);

/// The trust stores made so far, by extra CA: a gateway's thousands of
/// clients share one (each would otherwise parse the system's roots again,
/// a few hundred KiB apiece). The system's roots are read once per process.
static MADE: std::sync::Mutex<Vec<(Option<Vec<u8>>, Tls)>> = std::sync::Mutex::new(Vec::new());

impl Tls {
    /// The system's roots, plus the certificates of `extra_ca_pem` if given
    /// (made once per process for each extra CA, then shared).
    pub fn new(extra_ca_pem: Option<&[u8]>) -> Result<Tls, HttpsError> {
        let mut made = MADE.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, tls)) = made.iter().find(|(pem, _)| pem.as_deref() == extra_ca_pem) {
            return Ok(tls.clone());
        }
        let tls = Self::build(extra_ca_pem)?;
        if made.len() >= 16 {
            made.remove(0);
        }
        made.push((extra_ca_pem.map(<[u8]>::to_vec), tls.clone()));
        Ok(tls)
    }

    fn build(extra_ca_pem: Option<&[u8]>) -> Result<Tls, HttpsError> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(pem) = extra_ca_pem {
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| HttpsError::Ca(e.to_string()))?;
                roots.add(cert).map_err(|e| HttpsError::Ca(e.to_string()))?;
                n += 1;
            }
            if n == 0 {
                return Err(HttpsError::Ca("no PEM certificate in it".into()));
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpsError::Setup(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls(tokio_rustls::TlsConnector::from(Arc::new(config))))
    }
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// An address to use instead of resolving `host`.
    pub fixed: Option<SocketAddr>,
}

impl Endpoint {
    /// `https://host:port`, for messages.
    pub fn origin(&self) -> String {
        format!("{}://{}:{}", if self.https { "https" } else { "http" }, self.host, self.port)
    }
}

/// Opens one HTTP/1.1 connection to `to` (TLS when `to.https`).
pub async fn connect(tls: &Tls, to: &Endpoint, timeout: Duration) -> Result<SendRequest<Full<Bytes>>, HttpsError> {
    let origin = to.origin();
    let connect_err = |reason: String| HttpsError::Connect { target: origin.clone(), reason };
    let addrs: Vec<SocketAddr> = match to.fixed {
        Some(a) => vec![a],
        None => tokio::net::lookup_host((to.host.as_str(), to.port))
            .await
            .map_err(|e| connect_err(format!("cannot resolve {}: {e}", to.host)))?
            .collect(),
    };
    let mut last = String::from("no address");
    let mut tcp = None;
    for a in addrs {
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                tcp = Some(s);
                break;
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = format!("no answer within {} s", timeout.as_secs()),
        }
    }
    let tcp = tcp.ok_or_else(|| connect_err(last))?;
    let _ = tcp.set_nodelay(true);
    if to.https {
        let name = rustls::pki_types::ServerName::try_from(to.host.clone())
            .map_err(|e| HttpsError::Tls { target: origin.clone(), reason: e.to_string() })?;
        let stream = tokio::time::timeout(timeout, tls.0.connect(name, tcp))
            .await
            .map_err(|_| HttpsError::Timeout { target: origin.clone(), secs: timeout.as_secs() })?
            .map_err(|e| HttpsError::Tls { target: origin.clone(), reason: e.to_string() })?;
        handshake(hyper_util::rt::TokioIo::new(stream), &origin).await
    } else {
        handshake(hyper_util::rt::TokioIo::new(tcp), &origin).await
    }
}

async fn handshake<I>(io: I, origin: &str) -> Result<SendRequest<Full<Bytes>>, HttpsError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| HttpsError::Connect { target: origin.to_string(), reason: e.to_string() })?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One request on a connection of its own, the answer read whole (at most
/// `limit` bytes): for the sign-in service's few calls. Only HTTPS, or plain
/// HTTP to this machine (the simulator), since these carry grants.
pub async fn exchange(
    tls: &Tls,
    request: hyper::Request<Vec<u8>>,
    fixed: Option<SocketAddr>,
    timeout: Duration,
    limit: usize,
) -> Result<hyper::Response<Vec<u8>>, HttpsError> {
    use http_body_util::BodyExt as _;
    let uri = request.uri().clone();
    let target = uri.to_string();
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(HttpsError::Connect { target, reason: "not an http(s) URL".into() }),
    };
    let host = uri.host().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_string();
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !https && !loopback {
        return Err(HttpsError::Connect { target, reason: "refusing plain HTTP for a sign-in".into() });
    }
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let to = Endpoint { https, host: host.clone(), port, fixed };
    let mut sender = connect(tls, &to, timeout).await?;
    let (mut parts, body) = request.into_parts();
    parts.uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .parse()
        .map_err(|_| HttpsError::Connect { target: target.clone(), reason: "a path that does not parse".into() })?;
    let authority = if (https && port == 443) || (!https && port == 80) { host } else { format!("{host}:{port}") };
    if let Ok(v) = authority.parse() {
        parts.headers.insert(hyper::header::HOST, v);
    }
    let req = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));
    let broken = |e: String| HttpsError::Connect { target: target.clone(), reason: e };
    let answer = tokio::time::timeout(timeout, async {
        let resp = sender.send_request(req).await.map_err(|e| broken(e.to_string()))?;
        let (parts, incoming) = resp.into_parts();
        let body = http_body_util::Limited::new(incoming, limit).collect().await.map_err(|e| broken(e.to_string()))?;
        Ok::<_, HttpsError>(hyper::Response::from_parts(parts, body.to_bytes().to_vec()))
    })
    .await
    .map_err(|_| HttpsError::Timeout { target: target.clone(), secs: timeout.as_secs() })??;
    Ok(answer)
}
