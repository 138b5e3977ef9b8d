//! One message-summary NOTIFY to one phone, outside any run: what an admin
//! uses to test a phone's lamp (`lamplighter-agent mwi send`). The NOTIFY is
//! the one Exchange UM sends; the phone's certificate is always verified
//! over TLS, and a digest challenge is answered once.

pub use lamplighter_sip_notify::{Credentials, Delivered, NotifyError, Transport};

/// What to send where.
#[derive(Debug, Clone)]
pub struct LampTest {
    /// The phone's SIP URI.
    pub uri: String,
    /// UDP, TCP or TLS.
    pub transport: Transport,
    /// For TLS: the CA certificates (PEM) the phone's certificate must chain to.
    pub ca_pem: Option<Vec<u8>>,
    /// `Message-Account` (the phone's URI without parameters when `None`).
    pub account: Option<String>,
    /// The counts the lamp shows.
    pub counts: crate::MessageCounts,
    /// Digest credentials, if the phone challenges.
    pub credentials: Option<Credentials>,
    /// The local address to send from.
    pub bind: std::net::SocketAddr,
}

/// Sends the NOTIFY and returns the phone's final answer.
pub async fn send(test: LampTest) -> Result<Delivered, NotifyError> {
    let account = test.account.unwrap_or_else(|| test.uri.split(';').next().unwrap_or(&test.uri).to_string());
    let summary = lamplighter_sip_mwi::summary::MessageSummary::voice(&account, test.counts);
    let sender = lamplighter_sip_notify::NotifySender::bind_with_ca(test.bind, test.ca_pem).await?;
    sender.send(&test.uri, test.transport, "lamplighter", &summary, test.credentials.as_ref()).await
}
