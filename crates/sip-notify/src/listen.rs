//! TCP and TLS listeners for phones that SUBSCRIBE over a stream, with the
//! bounds rsipstack's own listeners lack: a stranger can open connections
//! without limit there, each holding two 64 KiB buffers. Here at most
//! [`StreamLimits::max_connections`] are open at once and
//! [`StreamLimits::per_source`] per source address (further ones are closed
//! on accept, before a byte is read); a TLS handshake must finish within
//! [`StreamLimits::handshake`]; a connection that carries nothing for
//! [`StreamLimits::idle`] is closed by the transport layer. Accepted
//! connections join the sender's transport layer, so requests on them reach
//! the same endpoint and answers and in-dialog NOTIFYs can go back over them.

use rsipstack::transaction::endpoint::Endpoint;
use rsipstack::transport::SipConnection;
use rsipstack::transport::tcp::TcpConnection;
use rsipstack::transport::tls::TlsConnection;
use rustls::pki_types::pem::PemObject;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Bounds on the stream listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Open accepted connections, all sources together.
    pub max_connections: usize,
    /// Open accepted connections from one IP address.
    pub per_source: usize,
    /// Time for a TLS handshake.
    pub handshake: Duration,
    /// A connection that receives nothing this long is closed.
    pub idle: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            max_connections: 128,
            per_source: 8,
            handshake: Duration::from_secs(10),
            idle: Duration::from_secs(300),
        }
    }
}

/// The certificate chain and private key the TLS listener presents (PEM).
#[derive(Clone)]
pub struct TlsIdentity {
    /// Certificate chain, leaf first.
    pub cert_pem: Vec<u8>,
    /// PKCS#8, PKCS#1 or SEC1 private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").field("cert_pem", &self.cert_pem.len()).field("key_pem", &"«redacted»").finish()
    }
}

/// Open connections per source: a permit is taken on accept and given back
/// when the transport layer retires the connection (its token is cancelled).
#[derive(Clone, Default)]
struct Slots(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl Slots {
    fn take(&self, ip: IpAddr, limits: &StreamLimits) -> bool {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = open.values().sum();
        let mine = open.get(&ip).copied().unwrap_or(0);
        if total >= limits.max_connections || mine >= limits.per_source {
            return false;
        }
        *open.entry(ip).or_default() += 1;
        true
    }

    fn give(&self, ip: IpAddr) {
        let mut open = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
        }
    }

    fn open(&self) -> usize {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }
}

/// A running listener's counters.
#[derive(Clone, Default)]
pub(crate) struct ListenerState {
    slots: Slots,
    refused: Arc<std::sync::atomic::AtomicU64>,
}

impl ListenerState {
    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.slots.open()
    }

    /// Connections closed on accept because a bound was reached, or whose TLS handshake failed.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn server_config(identity: &TlsIdentity) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&identity.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate file is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the certificate file holds no certificate".into());
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&identity.key_pem)
        .map_err(|e| format!("the key file holds no private key: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("the key does not fit the certificate: {e}"))?;
    Ok(Arc::new(config))
}

/// Binds `addr` for TCP (`identity` None) or TLS and accepts into `layer`
/// until `cancel`. Returns the bound address.
pub(crate) async fn start(
    endpoint: Arc<Endpoint>,
    addr: SocketAddr,
    identity: Option<&TlsIdentity>,
    limits: StreamLimits,
    cancel: CancellationToken,
) -> Result<(SocketAddr, ListenerState), String> {
    let acceptor = match identity {
        Some(id) => Some(tokio_rustls::TlsAcceptor::from(server_config(id)?)),
        None => None,
    };
    let listener = TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let state = ListenerState::default();
    let kind = if acceptor.is_some() { rsipstack::sip::Transport::Tls } else { rsipstack::sip::Transport::Tcp };
    let accepted = state.clone();
    tokio::spawn(async move {
        loop {
            let (stream, remote) = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(x) => x,
                    // out of descriptors and the like: wait a little rather than spin
                    Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue }
                },
            };
            if !accepted.slots.take(remote.ip(), &limits) {
                accepted.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                drop(stream);
                continue;
            }
            let local =
                rsipstack::transport::SipAddr { r#type: Some(kind), addr: stream.local_addr().unwrap_or(bound).into() };
            let remote_sip = rsipstack::transport::SipAddr { r#type: Some(kind), addr: remote.into() };
            let token = cancel.child_token();
            let (endpoint, state, acceptor, token2) =
                (endpoint.clone(), accepted.clone(), acceptor.clone(), token.clone());
            tokio::spawn(async move {
                let connection = match acceptor {
                    None => TcpConnection::from_stream(stream, local, Some(token2)).ok().map(SipConnection::Tcp),
                    Some(acceptor) => match tokio::time::timeout(limits.handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => TlsConnection::from_server_stream(tls, local, remote_sip, Some(token2))
                            .await
                            .ok()
                            .map(SipConnection::Tls),
                        _ => None,
                    },
                };
                match connection {
                    Some(c) => {
                        endpoint.inner.transport_layer.add_connection(c);
                        // retired by the transport layer (closed, idle, failed): the slot is free again
                        token.cancelled().await;
                    }
                    None => {
                        state.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                state.slots.give(remote.ip());
            });
        }
    });
    Ok((bound, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_source_and_in_all() {
        let limits = StreamLimits { max_connections: 3, per_source: 2, ..StreamLimits::default() };
        let slots = Slots::default();
        let a: IpAddr = "127.0.0.2".parse().expect("ip");
        let b: IpAddr = "127.0.0.3".parse().expect("ip");
        assert!(slots.take(a, &limits));
        assert!(slots.take(a, &limits));
        assert!(!slots.take(a, &limits), "a third from one source");
        assert!(slots.take(b, &limits));
        assert!(!slots.take(b, &limits), "a fourth in all");
        slots.give(a);
        assert!(slots.take(b, &limits), "a freed slot is reused");
        assert_eq!(slots.open(), 3);
    }
}
