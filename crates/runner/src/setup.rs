//! From the settings file to a [`RunConfig`]: the one place that knows how
//! `[mailbox]`, `[[phone]]`, `[user]` and `[mwi]` become a client, an
//! identity and phones. Passwords are given by the caller (keyring or
//! environment); they never come from the file.

use crate::RunConfig;
use lamplighter_config::{AuthMethod, Paths, PhoneMode, Settings, SipTransport};
use lamplighter_ews_client::{ClientConfig, Credentials, Password};
use lamplighter_sip_notify::driver::PhoneTarget;

/// Seconds a PUBLISHed lamp state is asked to live (RFC 3903 default: 3600).
pub const PUBLISH_EXPIRES: u32 = 3600;

/// The passwords a run needs.
#[derive(Clone, Default)]
pub struct RunSecrets {
    /// The mailbox's.
    pub mailbox: Option<String>,
    /// Access tokens for OAuth2 (the Microsoft sign-in), if signed in.
    pub token: Option<lamplighter_graph_client::TokenSource>,
    /// Each phone's digest password, in the settings' order.
    pub phones: Vec<Option<String>>,
}

/// Why the settings cannot run.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No `[mailbox]`.
    #[error("no mailbox configured")]
    NoMailbox,
    /// No password for the mailbox.
    #[error("no mailbox password: {0}")]
    NoPassword(String),
    /// OAuth2 without a signed-in account.
    #[error(
        "not signed in to Microsoft 365: use \"Sign in with Microsoft\" in Settings, or run `lamplighter-agent login` (`--device-code` without a browser)"
    )]
    NotSignedIn,
    /// The CA file cannot be read.
    #[error("cannot read the CA file {path}: {reason}")]
    CaFile {
        /// Which file.
        path: String,
        reason: String,
    },
    /// `[mwi] sip_listen` is not an address.
    #[error("[mwi] sip_listen = {0:?} is not an IP address with a port")]
    Listen(String),
    /// A subscribing phone without credentials is named by a host name, so
    /// there is no address to admit it from.
    #[error(
        "the phone {0} subscribes without credentials, so it is admitted only from its address, and its URI names a host instead of an IP address: give its IP address, or a username and password"
    )]
    SubscriberAddress(String),
    /// A subscribing phone has a user name but no password.
    #[error(
        "the phone {0} has a username but no password: save it in the settings window, or name a variable in password_env"
    )]
    SubscriberPassword(String),
    /// The TLS listener's certificate or key cannot be used.
    #[error("a phone subscribes over TLS, but {0}")]
    TlsIdentity(String),
    /// `[user]` is not usable.
    #[error("the [user] section (sip_uri, numbers): {0}")]
    User(String),
}

/// The run the settings describe.
pub fn from_settings(settings: &Settings, secrets: &RunSecrets, paths: &Paths) -> Result<RunConfig, SetupError> {
    let state_dir = &paths.state_dir;
    let mailbox = settings.mailbox.as_ref().ok_or(SetupError::NoMailbox)?;
    let password = secrets.mailbox.clone().map(Password::new);
    let needs_password = || {
        SetupError::NoPassword(match &mailbox.password_env {
            Some(v) => format!("the environment variable {v} (password_env) is not set"),
            None => "save it in the settings window, or name a variable in password_env".into(),
        })
    };
    let user = mailbox.username.clone();
    let credentials = match mailbox.auth {
        AuthMethod::Basic => Credentials::Basic { user, password: password.ok_or_else(needs_password)? },
        AuthMethod::Ntlm => Credentials::Ntlm { user, password: password.ok_or_else(needs_password)? },
        // Kerberos needs no password; one that is saved serves the NTLM fallback
        AuthMethod::Negotiate => Credentials::Negotiate { user, password },
        AuthMethod::Auto => Credentials::Auto { user, password },
        AuthMethod::Oauth2 => {
            let token = secrets.token.clone().ok_or(SetupError::NotSignedIn)?;
            let provider: lamplighter_ews_client::TokenProvider = std::sync::Arc::new(move |fresh| {
                let token = token.clone();
                Box::pin(async move { (token)(fresh).await.map(Password::new) })
            });
            Credentials::Bearer(provider)
        }
    };
    let extra_ca = match &mailbox.ca_file {
        Some(ca) => Some(
            std::fs::read(ca)
                .map_err(|e| SetupError::CaFile { path: ca.display().to_string(), reason: e.to_string() })?,
        ),
        None => None,
    };
    let mut client = ClientConfig::new(mailbox.email.clone(), credentials);
    client.ews_url = mailbox.ews_url.as_ref().map(|u| u.to_string());
    client.autodiscover_cache = Some(state_dir.join("autodiscover.cache"));
    client.extra_ca_pem = extra_ca.clone();
    let mut addresses: Vec<String> = settings.user.sip_uri.iter().cloned().collect();
    addresses.push(mailbox.email.clone());
    let user = lamplighter_missed_calls::UserIdentity::new(&addresses, &settings.user.numbers)
        .map_err(|e| SetupError::User(e.to_string()))?;
    let subscribers = settings
        .phones
        .iter()
        .enumerate()
        .filter(|(_, p)| p.mode == PhoneMode::Subscribe)
        .map(|(i, p)| subscriber(p, secrets.phones.get(i).cloned().flatten()))
        .collect::<Result<Vec<_>, _>>()?;
    let sip_bind = match settings.mwi.sip_listen.trim() {
        "" => std::net::SocketAddr::new(
            local_address_toward(&settings.phones),
            if subscribers.is_empty() { 0 } else { 5060 },
        ),
        listen => listen.parse().map_err(|_| SetupError::Listen(listen.to_string()))?,
    };
    let read = |path: &str| {
        std::fs::read(path).map_err(|e| SetupError::CaFile { path: path.to_string(), reason: e.to_string() })
    };
    let sip_ca_pem = match settings.mwi.ca_file.trim() {
        "" => None,
        path => Some(read(path)?),
    };
    // stream listeners only for the phones that subscribe over them: TCP on
    // the UDP address (RFC 3261 §18.2.1), TLS on the next port (5061)
    let subscribes_over =
        |t: SipTransport| settings.phones.iter().any(|p| p.mode == PhoneMode::Subscribe && p.transport == t);
    let sip_tcp = subscribes_over(SipTransport::Tcp).then_some(sip_bind);
    let sip_tls = match (subscribes_over(SipTransport::Tls), settings.mwi.tls_cert_file.trim()) {
        (false, _) => None,
        (true, "") => return Err(SetupError::TlsIdentity("no [mwi] tls_cert_file".into())),
        (true, cert) => {
            let identity = lamplighter_sip_notify::TlsIdentity {
                cert_pem: read(cert)?,
                key_pem: std::fs::read(settings.mwi.tls_key_file.trim())
                    .map_err(|e| SetupError::TlsIdentity(format!("cannot read [mwi] tls_key_file: {e}")))?,
            };
            let port = if sip_bind.port() == 0 { 0 } else { sip_bind.port().saturating_add(1) };
            Some((std::net::SocketAddr::new(sip_bind.ip(), port), identity))
        }
    };
    let phones = settings
        .phones
        .iter()
        .enumerate()
        .filter(|(_, p)| p.mode != PhoneMode::Subscribe)
        .map(|(i, p)| PhoneTarget {
            uri: p.uri.clone(),
            transport: match p.transport {
                SipTransport::Udp => lamplighter_sip_notify::Transport::Udp,
                SipTransport::Tcp => lamplighter_sip_notify::Transport::Tcp,
                SipTransport::Tls => lamplighter_sip_notify::Transport::Tls,
            },
            credentials: match (&p.username, secrets.phones.get(i).cloned().flatten()) {
                (Some(u), Some(pw)) => Some(lamplighter_sip_notify::Credentials { username: u.clone(), password: pw }),
                _ => None,
            },
            account: p.uri.clone(),
            urgent: urgent_part(p),
            // a publication is refreshed well before the presence server drops it
            refresh: match p.mode {
                PhoneMode::Publish => {
                    p.refresh.min(std::time::Duration::from_secs(u64::from(PUBLISH_EXPIRES) * 9 / 10))
                }
                _ => p.refresh,
            },
            delivery: match p.mode {
                PhoneMode::Publish => lamplighter_sip_notify::driver::Delivery::Publish {
                    server: p.presence_server.clone(),
                    expires: PUBLISH_EXPIRES,
                },
                _ => lamplighter_sip_notify::driver::Delivery::Notify,
            },
        })
        .collect();
    Ok(RunConfig {
        mailbox: match mailbox.backend {
            lamplighter_config::MailBackend::Ews => crate::MailboxSetup::ews(client),
            lamplighter_config::MailBackend::Graph => {
                let token = secrets.token.clone().ok_or(SetupError::NotSignedIn)?;
                let mut config =
                    lamplighter_graph_client::GraphConfig::new(mailbox.graph_url.as_str().trim_end_matches('/'), token);
                config.extra_ca_pem = extra_ca;
                crate::MailboxSetup::Graph { config }
            }
            lamplighter_config::MailBackend::Auto => {
                let graph = secrets.token.clone().map(|token| {
                    let mut config = lamplighter_graph_client::GraphConfig::new(
                        mailbox.graph_url.as_str().trim_end_matches('/'),
                        token,
                    );
                    config.extra_ca_pem = extra_ca.clone();
                    Box::new(config)
                });
                crate::MailboxSetup::Auto(Box::new(crate::AutoSetup {
                    ews: client,
                    driver: Default::default(),
                    graph,
                    graph_root: mailbox.graph_url.as_str().trim_end_matches('/').to_string(),
                    authority: mailbox.authority.to_string(),
                    extra_ca_pem: extra_ca,
                }))
            }
        },
        user,
        include_missed_calls: settings.mwi.include_missed_calls,
        recogniser: settings.recogniser(),
        phones,
        subscribers,
        sip: lamplighter_sip_notify::SenderConfig {
            udp: sip_bind,
            tcp: sip_tcp,
            tls: sip_tls,
            ca_pem: sip_ca_pem,
            limits: Default::default(),
        },
        audio_cache: Some(crate::AudioCache {
            dir: paths.cache_dir.join("audio"),
            max_age: std::time::Duration::from_secs(u64::from(settings.audio.cache_days) * 86_400),
        }),
        relay: lamplighter_sip_mwi::relay::RelayConfig {
            coalesce: std::time::Duration::from_millis(u64::from(settings.mwi.coalesce_ms)),
            ..Default::default()
        },
        event_buffer: crate::EVENT_BUFFER,
    })
}

/// How a subscribing phone proves who it is: digest with its credentials, or
/// (without credentials) the IP address in its URI.
fn subscriber(
    phone: &lamplighter_config::Phone,
    password: Option<String>,
) -> Result<lamplighter_sip_notify::subscriptions::Subscriber, SetupError> {
    use lamplighter_sip_mwi::guard::PhoneAuth;
    let auth = match (&phone.username, password) {
        (Some(username), Some(password)) => PhoneAuth::Digest { username: username.clone(), password },
        (Some(_), None) => return Err(SetupError::SubscriberPassword(phone.uri.clone())),
        (None, _) => PhoneAuth::Address(
            lamplighter_sip_mwi::uri::host(&phone.uri)
                .and_then(|h| h.parse().ok())
                .ok_or_else(|| SetupError::SubscriberAddress(phone.uri.clone()))?,
        ),
    };
    Ok(lamplighter_sip_notify::subscriptions::Subscriber { uri: phone.uri.clone(), auth, urgent: urgent_part(phone) })
}

fn urgent_part(phone: &lamplighter_config::Phone) -> lamplighter_sip_mwi::summary::UrgentPart {
    if phone.omit_zero_urgent {
        lamplighter_sip_mwi::summary::UrgentPart::WhenNonzero
    } else {
        lamplighter_sip_mwi::summary::UrgentPart::Always
    }
}

/// The local address the system routes from toward the phones (and presence
/// servers) named by IP address, so NOTIFYs carry it in Via/From/Contact and
/// subscribing phones reach the listener; loopback when none is named by IP.
/// Nothing is sent: a connected UDP socket only asks the routing table.
fn local_address_toward(phones: &[lamplighter_config::Phone]) -> std::net::IpAddr {
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    phones
        .iter()
        .flat_map(|p| [Some(p.uri.as_str()), p.presence_server.as_deref()])
        .flatten()
        .filter_map(|uri| lamplighter_sip_mwi::uri::host(uri)?.parse::<std::net::IpAddr>().ok())
        .find_map(|ip| {
            let any: std::net::SocketAddr =
                if ip.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
            let socket = std::net::UdpSocket::bind(any).ok()?;
            socket.connect((ip, 5060)).ok()?;
            socket.local_addr().ok().map(|a| a.ip())
        })
        .unwrap_or(loopback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamplighter_config::{MailboxForm, PhoneForm, SettingsForm};
    use lamplighter_sip_mwi::guard::PhoneAuth;

    fn settings(phones: Vec<PhoneForm>, mwi_ca: &str) -> Settings {
        let mut form = SettingsForm {
            mailbox: Some(MailboxForm {
                email: "mara@example.test".into(),
                ews_url: "http://127.0.0.1:1/EWS/Exchange.asmx".into(),
                auth: "basic".into(),
                ..MailboxForm::default()
            }),
            phones,
            ..SettingsForm::default()
        };
        form.mwi.ca_file = mwi_ca.into();
        form.validate().expect("valid settings")
    }

    fn phone(uri: &str, mode: &str, username: &str) -> PhoneForm {
        PhoneForm { uri: uri.into(), mode: mode.into(), username: username.into(), ..PhoneForm::default() }
    }

    fn run(settings: &Settings, phone_passwords: Vec<Option<String>>) -> Result<RunConfig, SetupError> {
        let dir = std::env::temp_dir();
        let paths = Paths { config_file: dir.join("none.toml"), state_dir: dir.clone(), cache_dir: dir };
        let secrets = RunSecrets { mailbox: Some("pw".into()), token: None, phones: phone_passwords };
        from_settings(settings, &secrets, &paths)
    }

    #[test]
    fn the_listener_binds_where_the_phones_are_routed_never_silently_to_every_interface() {
        let s = settings(vec![phone("sip:613@127.0.0.1", "subscribe", "")], "");
        let config = run(&s, vec![None]).expect("runs");
        assert_eq!(config.sip.udp, "127.0.0.1:5060".parse().expect("addr"));
        // phones named by host name only: loopback, any port for unsolicited NOTIFYs
        let s = settings(vec![phone("sip:613@phone.example.test", "unsolicited", "")], "");
        let config = run(&s, vec![None]).expect("runs");
        assert_eq!(config.sip.udp, "127.0.0.1:0".parse().expect("addr"));
        assert!(!config.sip.udp.ip().is_unspecified());
    }

    #[test]
    fn stream_listeners_open_only_for_phones_that_subscribe_over_them() {
        use std::os::unix::fs::PermissionsExt;
        let over = |transport: &str, mode: &str| PhoneForm {
            uri: "sip:613@127.0.0.1".into(),
            transport: transport.into(),
            mode: mode.into(),
            ..PhoneForm::default()
        };
        let config = run(&settings(vec![over("udp", "subscribe")], ""), vec![None]).expect("runs");
        assert_eq!((config.sip.tcp, config.sip.tls.is_some()), (None, false), "UDP only");
        let config = run(&settings(vec![over("tcp", "unsolicited")], ""), vec![None]).expect("runs");
        assert_eq!((config.sip.tcp, config.sip.tls.is_some()), (None, false), "sending over TCP needs no listener");
        let config = run(&settings(vec![over("tcp", "subscribe")], ""), vec![None]).expect("runs");
        assert_eq!(config.sip.tcp, Some("127.0.0.1:5060".parse().expect("addr")), "TCP beside UDP");

        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = (dir.path().join("sip.pem"), dir.path().join("sip.key"));
        std::fs::write(&cert, "CERT").expect("cert");
        std::fs::write(&key, "KEY").expect("key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let mut form = settings(vec![over("udp", "subscribe")], "").to_form();
        form.phones = vec![over("tls", "subscribe")];
        form.mwi.tls_cert_file = cert.display().to_string();
        form.mwi.tls_key_file = key.display().to_string();
        let mut s = form.validate().expect("valid");
        let config = run(&s, vec![None]).expect("runs");
        let (at, identity) = config.sip.tls.expect("a TLS listener");
        assert_eq!(at, "127.0.0.1:5061".parse().expect("addr"), "TLS on the next port");
        assert_eq!((identity.cert_pem.as_slice(), identity.key_pem.as_slice()), (&b"CERT"[..], &b"KEY"[..]));
        s.mwi.tls_cert_file.clear();
        assert!(matches!(run(&s, vec![None]), Err(SetupError::TlsIdentity(_))), "no certificate, no TLS listener");
    }

    #[test]
    fn subscribing_phones_authenticate_by_digest_or_by_their_address() {
        let s = settings(
            vec![phone("sip:613@127.0.0.1", "subscribe", "613"), phone("sip:614@127.0.0.2", "subscribe", "")],
            "",
        );
        let config = run(&s, vec![Some("pw-613".into()), None]).expect("runs");
        assert_eq!(
            config.subscribers.iter().map(|s| s.auth.clone()).collect::<Vec<_>>(),
            vec![
                PhoneAuth::Digest { username: "613".into(), password: "pw-613".into() },
                PhoneAuth::Address("127.0.0.2".parse().expect("ip")),
            ]
        );
        assert!(matches!(run(&s, vec![None, None]), Err(SetupError::SubscriberPassword(_))));
        let by_name = settings(vec![phone("sip:613@phone.example.test", "subscribe", "")], "");
        let err = run(&by_name, vec![None]).err().expect("refused");
        assert!(err.to_string().contains("give its IP address, or a username and password"), "{err}");
    }

    #[test]
    fn publish_phones_and_the_phone_ca_are_wired() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = dir.path().join("phones-ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("ca");
        let mut p = phone("sip:613@127.0.0.1", "publish", "");
        p.presence_server = "sip:127.0.0.1:5070".into();
        let s = settings(vec![p], &ca.display().to_string());
        let config = run(&s, vec![None]).expect("runs");
        assert_eq!(config.sip.ca_pem.as_deref(), Some(&b"-----BEGIN CERTIFICATE-----\n"[..]));
        assert_eq!(
            config.phones[0].delivery,
            lamplighter_sip_notify::driver::Delivery::Publish {
                server: Some("sip:127.0.0.1:5070".into()),
                expires: PUBLISH_EXPIRES
            }
        );
        assert!(config.phones[0].refresh < std::time::Duration::from_secs(u64::from(PUBLISH_EXPIRES)));
    }
}
