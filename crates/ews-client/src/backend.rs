//! EWS as a [`lamplighter_mailbox::Backend`]: tracking through the
//! [`driver`](crate::driver), the user's actions through [`EwsClient`], and
//! the self-diagnosis behind `lamplighter-agent check` and the window's
//! "Check settings" (address or Autodiscover, sign-in, both folders,
//! streaming), each step with a hint a user can act on.

use crate::driver::{self, DriverConfig};
use crate::{ClientError, EwsClient};
use lamplighter_mailbox::{
    Backend, BoxFuture, CheckStep, ItemId, MailboxCheck, MailboxError, MailboxEvent, StateStore, Tracking,
};
use std::path::Path;
use std::sync::Arc;

/// An Exchange mailbox over EWS.
pub struct EwsBackend {
    client: Arc<EwsClient>,
    driver: DriverConfig,
    /// How the EWS URL was found, for the check's first step.
    how: &'static str,
}

impl EwsBackend {
    /// Finds the server (Autodiscover unless the URL is given) and returns the backend.
    pub async fn connect(config: crate::ClientConfig, driver: DriverConfig) -> Result<EwsBackend, ClientError> {
        let how = if config.ews_url.is_some() { "EWS URL from the settings" } else { "Autodiscover" };
        Ok(EwsBackend { client: Arc::new(EwsClient::connect(config).await?), driver, how })
    }

    /// The client underneath, for tests and benchmarks that speak EWS directly.
    pub fn client(&self) -> &Arc<EwsClient> {
        &self.client
    }
}

impl From<ClientError> for MailboxError {
    fn from(e: ClientError) -> MailboxError {
        match e {
            ClientError::Auth { .. } | ClientError::SchemeNotOffered { .. } => {
                MailboxError::SignInRefused(e.to_string())
            }
            ClientError::Kerberos { error: lamplighter_gssapi::GssError::MutualAuth { .. }, .. } => {
                MailboxError::SignInRefused(e.to_string())
            }
            ClientError::Response { code: lamplighter_ews_wire::ResponseCode::ItemNotFound, message, .. } => {
                MailboxError::NotFound { what: message }
            }
            ClientError::File { path, reason } => MailboxError::File { path, reason },
            ClientError::Response { operation, .. } => MailboxError::Failed { operation, message: e.to_string() },
            other => MailboxError::Failed { operation: "EWS", message: other.to_string() },
        }
    }
}

/// What to do about a client error, in a sentence.
pub fn hint_for(e: &ClientError) -> String {
    use ClientError as E;
    match e {
        E::Auth { .. } => {
            "check [mailbox] username (DOMAIN\\user or the e-mail address), auth (basic/ntlm) and the password".into()
        }
        E::SchemeNotOffered { offered, .. } if offered.contains("Negotiate") || offered.contains("NTLM") => {
            "set [mailbox] auth = \"negotiate\" (Kerberos with your ticket) or \"ntlm\" (with the password)".into()
        }
        E::Ews(lamplighter_ews_wire::EwsError::Fault(f)) if f.code.ends_with("ErrorImpersonateUserDenied") => {
            "the service account may not act for this mailbox: grant it the ApplicationImpersonation role \
             (New-ManagementRoleAssignment -Role ApplicationImpersonation -User <account>, scoped to the users)"
                .into()
        }
        E::Ews(lamplighter_ews_wire::EwsError::Fault(f)) if f.code.ends_with("ErrorNonExistentMailbox") => {
            "Exchange has no mailbox with this address: check the directory entry".into()
        }
        E::Kerberos { error, .. } => {
            use lamplighter_gssapi::GssError as G;
            match error {
                G::NoTicket { .. } | G::Expired { .. } => {
                    "run kinit (or log in to the domain again); Lamplighter retries by itself and picks the new ticket up"
                        .into()
                }
                G::Unavailable(_) => {
                    "install MIT Kerberos (Debian: libgssapi-krb5-2), or save the password for NTLM".into()
                }
                G::MutualAuth { .. } => "the server could not prove it holds the key of its service principal: \
                     its keytab or SPN is wrong, or it is not the server it claims to be; nothing was sent to it"
                    .into(),
                G::Failed { message, .. } if message.contains("not found in Kerberos database") => {
                    "the realm has no service principal for this host name: use the host name Exchange's SPN names \
                     (HTTP/<host>), or ask the admin to register it (setspn -S HTTP/<host> <account>)"
                        .into()
                }
                _ => "see the log; `klist` shows your tickets".into(),
            }
        }
        E::SchemeNotOffered { .. } => "set [mailbox] auth to a sign-in the server offers".into(),
        E::NotExchange { .. } => "the URL reaches a proxy or login page, not EWS: ask for EWS to be published \
             without pre-authentication (or give the internal EWS URL in ews_url)"
            .into(),
        E::Tls { .. } => "the server's certificate is not trusted: set [mailbox] ca_file to your company CA".into(),
        E::Connect { .. } | E::Timeout { .. } => {
            "the server cannot be reached: check ews_url, the network or VPN".into()
        }
        E::Autodiscover { .. } => {
            "Autodiscover failed: set [mailbox] ews_url to https://<server>/EWS/Exchange.asmx".into()
        }
        E::Forbidden { .. } => "EWS is refused for this mailbox (admin policy, or a licence without EWS)".into(),
        E::Insecure { .. } => "use an https:// EWS URL".into(),
        E::Throttled(_) => "the server is throttling: try again later".into(),
        _ => "see the log for details".into(),
    }
}

impl Backend for EwsBackend {
    fn location(&self) -> String {
        self.client.ews_url().to_string()
    }

    fn track(
        self: Arc<Self>,
        state: Arc<dyn StateStore>,
        events: tokio::sync::mpsc::Sender<MailboxEvent>,
    ) -> Box<dyn Tracking> {
        Box::new(driver::spawn(self.client.clone(), state, self.driver, events))
    }

    fn mark_read<'a>(&'a self, id: &'a ItemId) -> BoxFuture<'a, Result<(), MailboxError>> {
        Box::pin(async move { self.client.mark_read(id, true).await.map(drop).map_err(MailboxError::from) })
    }

    fn download_attachment<'a>(
        &'a self,
        attachment_id: &'a str,
        path: &'a Path,
        progress: Box<dyn FnMut(u64) + Send + 'a>,
    ) -> BoxFuture<'a, Result<(), MailboxError>> {
        Box::pin(async move {
            self.client.download_attachment(attachment_id, path, progress).await.map(drop).map_err(MailboxError::from)
        })
    }

    fn check(&self) -> BoxFuture<'_, MailboxCheck> {
        Box::pin(check(&self.client, self.how))
    }
}

async fn check(client: &EwsClient, how: &str) -> MailboxCheck {
    let mut out = MailboxCheck::default();
    out.steps.push(CheckStep { ok: true, what: format!("{how}: {}", client.ews_url()), hint: None });
    match client.find_all("voicemail", 1000).await {
        Ok(items) => {
            out.signed_in_with = client.sign_in().map(|how| how.to_string());
            out.voicemails = Some(items)
        }
        Err(e) => {
            let refused = matches!(
                e,
                ClientError::Auth { .. }
                    | ClientError::Kerberos { error: lamplighter_gssapi::GssError::MutualAuth { .. }, .. }
            );
            // a Kerberos failure (no ticket, say) would only repeat in every later step
            let signed_out = refused || matches!(e, ClientError::Kerberos { .. });
            out.steps.push(CheckStep {
                ok: false,
                what: format!("sign-in / Voice Mail folder: {e}"),
                hint: Some(hint_for(&e)),
            });
            // one refused sign-in is enough: more attempts only risk a lockout
            out.sign_in_refused = refused;
            if signed_out {
                return out;
            }
        }
    }
    match client.find_all("inbox", 1000).await {
        Ok(items) => {
            out.steps.push(CheckStep { ok: true, what: format!("Inbox readable ({} items)", items.len()), hint: None })
        }
        Err(e) => out.steps.push(CheckStep { ok: false, what: format!("Inbox: {e}"), hint: Some(hint_for(&e)) }),
    }
    let streaming = async {
        let msgs = client.subscribe(lamplighter_ews_wire::SubscriptionKind::Streaming).await?;
        let id = msgs
            .into_iter()
            .next()
            .and_then(|m| m.body)
            .map(|s| s.id)
            .ok_or_else(|| ClientError::Broken("no subscription id".into()))?;
        // judged by its first frame (Exchange sends one at least every 45 s), not by the headers
        let first = match client.open_stream(&id, 1).await {
            Ok(mut stream) => match tokio::time::timeout(std::time::Duration::from_secs(50), stream.next()).await {
                Ok(Some(Ok(msgs))) => {
                    match msgs.into_iter().find(|m| m.class == lamplighter_ews_wire::ResponseClass::Error) {
                        Some(m) => Err(ClientError::Response {
                            operation: "GetStreamingEvents",
                            code: m.code,
                            message: "the first frame is an error".into(),
                        }),
                        None => Ok(()),
                    }
                }
                Ok(Some(Err(e))) => Err(e),
                Ok(None) => Err(ClientError::Broken("the stream ended before its first frame".into())),
                Err(_) => Err(ClientError::Broken(
                    "no frame within 50 s (a proxy may hold the streaming response back)".into(),
                )),
            },
            Err(e) => Err(e),
        };
        let _ = client.unsubscribe(&id).await;
        first
    }
    .await;
    match streaming {
        Ok(()) => out.steps.push(CheckStep { ok: true, what: "streaming notifications supported".into(), hint: None }),
        Err(e) => out.steps.push(CheckStep {
            ok: false,
            what: format!("streaming notifications: {e}"),
            hint: Some(
                "Lamplighter falls back to polling (pull subscriptions); changes then arrive within 30 s".into(),
            ),
        }),
    }
    out
}
