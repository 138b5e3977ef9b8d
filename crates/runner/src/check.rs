//! The diagnosis behind `lamplighter-agent check` and the window's "Check
//! settings": the configuration tried step by step (address or
//! Autodiscover, sign-in, both folders, streaming, each phone), each step
//! with a hint a user can act on. One refused sign-in ends it: more
//! attempts only risk locking the account.

use crate::RunConfig;
pub use lamplighter_mailbox::CheckStep;

/// Runs every check for `config` (the run the settings describe) and returns the steps;
/// `first` is the step that read the settings.
pub async fn run(config: RunConfig, first: CheckStep) -> Vec<CheckStep> {
    let mut steps = vec![first];
    let how = match &config.mailbox {
        crate::MailboxSetup::Ews { client, .. } if client.ews_url.is_some() => "EWS URL from the settings",
        crate::MailboxSetup::Ews { .. } => "Autodiscover",
        crate::MailboxSetup::Graph { .. } => "Microsoft Graph",
        crate::MailboxSetup::Auto(_) => "where Autodiscover v2 and the tenant's sign-in service place the mailbox",
    };
    let mut counts = lamplighter_sip_mwi::summary::Counts::default();
    match config.mailbox.connect().await {
        Ok(backend) => {
            let check = backend.check().await;
            let refused = check.sign_in_refused;
            let mut found = check.steps.into_iter();
            steps.extend(found.next());
            if let Some(items) = check.voicemails {
                // the lamp as the engine would set it: the same state core counts
                let total = items.len();
                let mut state = lamplighter_inbox::MailboxState::new(config.user.clone(), false);
                for i in items {
                    state.apply(lamplighter_mailbox::Change::Added(i));
                }
                counts = state.lamp(&state.summary());
                let signed_in = match &check.signed_in_with {
                    Some(how) => format!("signed in with {how}"),
                    None => "signed in".into(),
                };
                steps.push(CheckStep {
                    ok: true,
                    what: format!(
                        "{signed_in}; Voice Mail folder readable: {total} voicemails ({} unheard)",
                        counts.new
                    ),
                    hint: None,
                });
            }
            steps.extend(found);
            if refused {
                // one refused sign-in is enough: more attempts only risk a lockout
                return steps;
            }
        }
        Err(e) => {
            steps.push(CheckStep { ok: false, what: format!("{how}: {e}"), hint: Some(e.hint()) });
        }
    }
    if !config.phones.is_empty() {
        // the running engine may hold the configured port: then any port of the same address
        // no listeners: the check only sends
        let sending = lamplighter_sip_notify::SenderConfig {
            ca_pem: config.sip.ca_pem.clone(),
            ..lamplighter_sip_notify::SenderConfig::udp(config.sip.udp)
        };
        let bound = match lamplighter_sip_notify::NotifySender::start(sending.clone()).await {
            Ok(s) => Ok(s),
            Err(_) if config.sip.udp.port() != 0 => {
                let udp = std::net::SocketAddr::new(config.sip.udp.ip(), 0);
                lamplighter_sip_notify::NotifySender::start(lamplighter_sip_notify::SenderConfig { udp, ..sending })
                    .await
            }
            Err(e) => Err(e),
        };
        match bound {
            Ok(sender) => {
                for p in &config.phones {
                    let summary =
                        lamplighter_sip_mwi::summary::MessageSummary::voice_with(&p.account, counts, p.urgent);
                    let creds = p.credentials.as_ref();
                    let sent = match &p.delivery {
                        lamplighter_sip_notify::driver::Delivery::Notify => sender
                            .send(&p.uri, p.transport, &p.account, &summary, creds)
                            .await
                            .map(|d| format!("answered {} {}", d.code, d.reason)),
                        lamplighter_sip_notify::driver::Delivery::Publish { server, expires } => sender
                            .publish(&p.uri, server.as_deref(), p.transport, Some(&summary), None, *expires, creds)
                            .await
                            .map(|d| {
                                let life = d.publication.map(|a| a.expires).unwrap_or(*expires);
                                format!("the presence server took the PUBLISH ({}, for {life} s)", d.code)
                            }),
                    };
                    match sent {
                        Ok(how) => steps.push(CheckStep {
                            ok: true,
                            what: format!("phone {}: {how}; lamp set to {}/{}", p.uri, counts.new, counts.old),
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
