//! `lamplighter-gateway check`: what an administrator runs before starting
//! the service, each step with its verdict and, when it fails, what to do.

use crate::config::{Auth, GatewayConfig, MailboxAccess};
use crate::credentials::Credentials;
use lamplighter_directory::Directory;
use lamplighter_ews_client::{ClientConfig, Credentials as EwsCredentials, EwsClient, Password};

/// How long a gateway has to answer the OPTIONS ping.
pub const PING_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// One step's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub what: String,
    /// `Ok(detail)` or `Err((problem, what to do))`.
    pub result: Result<String, (String, String)>,
}

/// Runs every step that can run (a step whose input failed is left out).
pub async fn check(config: &GatewayConfig, secrets: &Credentials) -> Vec<Step> {
    let mut steps = Vec::new();
    let ldap_password = match &config.directory {
        crate::config::DirectorySource::Ldap(l) if l.bind_dn.is_some() => match secrets.read("ldap-password") {
            Ok(p) => Some(p),
            Err(e) => {
                let fix = "systemd: LoadCredential=ldap-password:/etc/lamplighter/credentials/ldap-password".into();
                steps.push(Step { what: "credential ldap-password".into(), result: Err((e.to_string(), fix)) });
                None
            }
        },
        _ => None,
    };
    let directory: Result<Directory, String> =
        crate::service::read_directory(&config.directory, ldap_password.as_deref()).await;
    steps.push(Step {
        what: format!("directory {}", config.directory),
        result: match &directory {
            Ok(d) => Ok(format!("{} entries", d.len())),
            Err(e) => Err((
                e.clone(),
                "fix the entry named, or the LDAP URL, bind or filter; the service would keep its last good directory"
                    .into(),
            )),
        },
    });
    let needed: &[&str] = match &config.access {
        MailboxAccess::Ews { .. } => &["ews-password"],
        MailboxAccess::Graph(g) if g.notifications.as_ref().is_some_and(|n| n.tls) => {
            &["graph-certificate", "graph-key", "webhook-certificate", "webhook-key"]
        }
        MailboxAccess::Graph(_) => &["graph-certificate", "graph-key"],
    };
    let mut read = std::collections::HashMap::new();
    for name in needed {
        let r = secrets.read(name);
        steps.push(Step {
            what: format!("credential {name}"),
            result: match &r {
                Ok(_) => Ok("readable by this user only".into()),
                Err(e) => {
                    Err((e.to_string(), format!("systemd: LoadCredential={name}:/etc/lamplighter/credentials/{name}")))
                }
            },
        });
        if let Ok(v) = r {
            read.insert(*name, v);
        }
    }
    // each gateway answers OPTIONS (from a port of its own: a running service holds the configured one)
    if !config.gateways.is_empty() {
        match lamplighter_sip_notify::NotifySender::bind(std::net::SocketAddr::from(([0, 0, 0, 0], 0))).await {
            Ok(sender) => {
                // all at once, each within PING_WITHIN
                let pings = config.gateways.iter().map(|g| {
                    let sender = &sender;
                    async move { (g, tokio::time::timeout(PING_WITHIN, sender.ping(&g.uri(), g.transport)).await) }
                });
                for (g, r) in futures_util::future::join_all(pings).await {
                    let fix = "check its address and transport, and that it accepts SIP from this host";
                    steps.push(Step {
                        what: format!("SIP gateway {} ({})", g.name, g.uri()),
                        result: match r {
                            Ok(Ok(code)) => Ok(format!("answers OPTIONS with {code}")),
                            Ok(Err(e)) => Err((e.to_string(), fix.into())),
                            Err(_) => {
                                Err((format!("no answer to OPTIONS within {} s", PING_WITHIN.as_secs()), fix.into()))
                            }
                        },
                    });
                }
            }
            Err(e) => steps.push(Step {
                what: "SIP".into(),
                result: Err((e.to_string(), "this host cannot open a UDP socket".into())),
            }),
        }
    }
    let Ok(directory) = directory else { return steps };
    let Some(sample) = directory.entries().next() else { return steps };
    let ca = config.ca_file.as_ref().and_then(|p| std::fs::read(p).ok());
    let (ews_url, account, auth) = match &config.access {
        MailboxAccess::Ews { ews_url, account, auth } => (ews_url, account, auth),
        MailboxAccess::Graph(g) => {
            let (Some(cert), Some(key)) = (read.get("graph-certificate"), read.get("graph-key")) else { return steps };
            steps.extend(check_graph(g, cert, key, ca, &sample.address).await);
            return steps;
        }
    };
    let Some(password) = read.get("ews-password") else { return steps };
    let credentials = match auth {
        Auth::Basic => EwsCredentials::Basic { user: account.clone(), password: Password::new(password) },
        Auth::Ntlm => EwsCredentials::Ntlm { user: account.clone(), password: Password::new(password) },
    };
    let mut client = ClientConfig::new(sample.address.clone(), credentials);
    client.ews_url = Some(ews_url.clone());
    client.impersonate = true;
    client.extra_ca_pem = ca;
    let max = lamplighter_ews_wire::MaxChanges::new(1).unwrap_or(lamplighter_ews_wire::MaxChanges::MAX);
    let result = match EwsClient::connect(client).await {
        Ok(c) => c.sync_inbox(None, max).await.map(|_| ()),
        Err(e) => Err(e),
    };
    steps.push(Step {
        what: format!("{account} impersonating {}", sample.address),
        result: match result {
            Ok(()) => Ok("signed in, and the Inbox reads".into()),
            Err(e) => Err((e.to_string(), lamplighter_ews_client::hint_for(&e))),
        },
    });
    steps
}

/// What an admin grants for app-only Graph, limited to the mailboxes of a group.
pub const RBAC_HINT: &str = "grant the app Mail.Read through RBAC for Applications, limited to the gateway's users: New-ServicePrincipal -AppId <client id> -ObjectId <object id>; New-ManagementScope -Name Lamplighter -RecipientRestrictionFilter \"MemberOfGroup -eq '<group DN>'\"; New-ManagementRoleAssignment -App <client id> -Role \"Application Mail.Read\" -CustomResourceScope Lamplighter";

/// The app signs in, and reads a sample mailbox's Inbox.
async fn check_graph(
    g: &crate::config::GraphAccess,
    cert: &str,
    key: &str,
    ca: Option<Vec<u8>>,
    sample: &str,
) -> Vec<Step> {
    use lamplighter_signin::app::{AppAuthority, AppCertificate, AppSession};
    let mut steps = Vec::new();
    let what = format!("app {} signs in at {}", g.client_id, g.authority);
    let mut authority = AppAuthority::new(&g.authority, &g.client_id);
    authority.extra_ca_pem = ca.clone();
    let session = match AppCertificate::from_pem(cert, key).and_then(|c| AppSession::new(authority, c)) {
        Ok(s) => s,
        Err(e) => {
            steps.push(Step {
                what,
                result: Err((
                    e.to_string(),
                    "graph-certificate and graph-key must be the PEM pair uploaded to the app registration".into(),
                )),
            });
            return steps;
        }
    };
    if let Err(e) = session.access_token(false).await {
        steps.push(Step {
            what,
            result: Err((e.to_string(), "upload graph-certificate to the app registration (Certificates & secrets), and check tenant and client_id".into())),
        });
        return steps;
    }
    steps.push(Step { what, result: Ok("a token with the certificate".into()) });
    let token: lamplighter_graph_client::TokenSource = std::sync::Arc::new(move |fresh| {
        let session = session.clone();
        Box::pin(async move { session.access_token(fresh).await.map_err(|e| e.to_string()) })
    });
    let mut config = lamplighter_graph_client::GraphConfig::new(&g.graph_url, token);
    config.user = Some(sample.to_string());
    config.extra_ca_pem = ca;
    let what = format!("the app reads {sample}'s Inbox");
    let result = match lamplighter_graph_client::GraphClient::new(config) {
        Ok(c) => c.folder().await,
        Err(e) => Err(e),
    };
    steps.push(Step {
        what,
        result: match result {
            Ok((total, unread)) => Ok(format!("{total} items, {unread} unread")),
            Err(e) => {
                let denied = matches!(&e, lamplighter_graph_client::GraphClientError::Http { status: 403, .. });
                let fix = if denied {
                    RBAC_HINT.to_string()
                } else {
                    "see the error; check graph_url and the network".to_string()
                };
                Err((e.to_string(), fix))
            }
        },
    });
    steps
}
