//! `lamplighter-gateway check`: what an administrator runs before starting
//! the service, each step with its verdict and, when it fails, what to do.

use crate::config::{Auth, GatewayConfig};
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
    let password = secrets.read("ews-password");
    steps.push(Step {
        what: "credential ews-password".into(),
        result: match &password {
            Ok(_) => Ok("readable by this user only".into()),
            Err(e) => Err((
                e.to_string(),
                "systemd: LoadCredential=ews-password:/etc/lamplighter/credentials/ews-password".into(),
            )),
        },
    });
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
    let (Ok(directory), Ok(password)) = (directory, password) else { return steps };
    let Some(sample) = directory.entries().next() else { return steps };
    let credentials = match config.auth {
        Auth::Basic => EwsCredentials::Basic { user: config.account.clone(), password: Password::new(&password) },
        Auth::Ntlm => EwsCredentials::Ntlm { user: config.account.clone(), password: Password::new(&password) },
    };
    let mut client = ClientConfig::new(sample.address.clone(), credentials);
    client.ews_url = Some(config.ews_url.clone());
    client.impersonate = true;
    client.extra_ca_pem = config.ca_file.as_ref().and_then(|p| std::fs::read(p).ok());
    let max = lamplighter_ews_wire::MaxChanges::new(1).unwrap_or(lamplighter_ews_wire::MaxChanges::MAX);
    let result = match EwsClient::connect(client).await {
        Ok(c) => c.sync_inbox(None, max).await.map(|_| ()),
        Err(e) => Err(e),
    };
    steps.push(Step {
        what: format!("{} impersonating {}", config.account, sample.address),
        result: match result {
            Ok(()) => Ok("signed in, and the Inbox reads".into()),
            Err(e) => Err((e.to_string(), lamplighter_ews_client::hint_for(&e))),
        },
    });
    steps
}
