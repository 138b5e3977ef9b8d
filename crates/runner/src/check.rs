//! The diagnosis behind `lamplighter-agent check` and the window's "Check
//! settings": the configuration tried step by step (address or
//! Autodiscover, sign-in, both folders, streaming, each phone), each step
//! with a hint a user can act on. One refused sign-in ends it: more
//! attempts only risk locking the account.

use crate::RunConfig;
use serde::Serialize;

/// One step's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckStep {
    /// Passed.
    pub ok: bool,
    /// What was checked, and what came of it.
    pub what: String,
    /// What to do about a failure.
    pub hint: Option<String>,
}

/// A hint for a client error.
pub fn hint_for(e: &lamplighter_ews_client::ClientError) -> String {
    use lamplighter_ews_client::ClientError as E;
    match e {
        E::Auth { .. } => {
            "check [mailbox] username (DOMAIN\\user or the e-mail address), auth (basic/ntlm) and the password".into()
        }
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

/// Runs every check for `config` (the run the settings describe) and returns the steps;
/// `first` is the step that read the settings.
pub async fn run(config: RunConfig, first: CheckStep) -> Vec<CheckStep> {
    let mut steps = vec![first];
    let how = if config.client.ews_url.is_some() { "EWS URL from the settings" } else { "Autodiscover" };
    let client = match lamplighter_ews_client::EwsClient::connect(config.client.clone()).await {
        Ok(c) => {
            steps.push(CheckStep { ok: true, what: format!("{how}: {}", c.ews_url()), hint: None });
            Some(c)
        }
        Err(e) => {
            steps.push(CheckStep { ok: false, what: format!("{how}: {e}"), hint: Some(hint_for(&e)) });
            None
        }
    };
    let mut counts = lamplighter_sip_mwi::summary::Counts::default();
    if let Some(client) = &client {
        match client.find_all("voicemail", 1000).await {
            Ok(items) => {
                // the lamp as the engine would set it: the same state core counts
                let total = items.len();
                let mut state = lamplighter_mailbox_state::MailboxState::new(config.user.clone(), false);
                for i in items {
                    state.apply(lamplighter_mailbox_sync::Change::Added(i));
                }
                counts = state.lamp(&state.summary());
                steps.push(CheckStep {
                    ok: true,
                    what: format!(
                        "signed in; Voice Mail folder readable: {} voicemails ({} unheard)",
                        total, counts.new
                    ),
                    hint: None,
                });
            }
            Err(e) => {
                let refused = matches!(e, lamplighter_ews_client::ClientError::Auth { .. });
                steps.push(CheckStep {
                    ok: false,
                    what: format!("sign-in / Voice Mail folder: {e}"),
                    hint: Some(hint_for(&e)),
                });
                if refused {
                    // one refused sign-in is enough: more attempts only risk a lockout
                    return steps;
                }
            }
        }
        match client.find_all("inbox", 1000).await {
            Ok(items) => {
                steps.push(CheckStep { ok: true, what: format!("Inbox readable ({} items)", items.len()), hint: None })
            }
            Err(e) => steps.push(CheckStep { ok: false, what: format!("Inbox: {e}"), hint: Some(hint_for(&e)) }),
        }
        let streaming = async {
            let msgs = client.subscribe(lamplighter_ews_wire::SubscriptionKind::Streaming).await?;
            let id = msgs
                .into_iter()
                .next()
                .and_then(|m| m.body)
                .map(|s| s.id)
                .ok_or_else(|| lamplighter_ews_client::ClientError::Broken("no subscription id".into()))?;
            let opened = client.open_stream(&id, 1).await.map(drop);
            let _ = client.unsubscribe(&id).await;
            opened
        }
        .await;
        match streaming {
            Ok(()) => steps.push(CheckStep { ok: true, what: "streaming notifications supported".into(), hint: None }),
            Err(e) => steps.push(CheckStep {
                ok: false,
                what: format!("streaming notifications: {e}"),
                hint: Some(
                    "Lamplighter falls back to polling (pull subscriptions); changes then arrive within 30 s".into(),
                ),
            }),
        }
    }
    if !config.phones.is_empty() {
        // the running engine may hold the configured port: then any port of the same address
        let bound = match lamplighter_sip_notify::NotifySender::bind(config.sip_bind).await {
            Ok(s) => Ok(s),
            Err(_) if config.sip_bind.port() != 0 => {
                lamplighter_sip_notify::NotifySender::bind(std::net::SocketAddr::new(config.sip_bind.ip(), 0)).await
            }
            Err(e) => Err(e),
        };
        match bound {
            Ok(sender) => {
                for p in &config.phones {
                    let summary = lamplighter_sip_mwi::summary::MessageSummary::voice(&p.account, counts);
                    match sender.send(&p.uri, p.transport, &p.account, &summary, p.credentials.as_ref()).await {
                        Ok(d) => steps.push(CheckStep {
                            ok: true,
                            what: format!(
                                "phone {}: answered {} {}; lamp set to {}/{}",
                                p.uri, d.code, d.reason, counts.new, counts.old
                            ),
                            hint: None,
                        }),
                        Err(e) => steps.push(CheckStep {
                            ok: false,
                            what: format!("phone {}: {e}", p.uri),
                            hint: Some("check the phone's address and transport, and its digest user/password".into()),
                        }),
                    }
                }
            }
            Err(e) => steps.push(CheckStep { ok: false, what: format!("SIP socket: {e}"), hint: None }),
        }
    }
    steps
}
