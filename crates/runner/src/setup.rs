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
    /// OAuth2 has no sign-in flow yet.
    #[error(
        "auth = \"oauth2\" needs an interactive Microsoft sign-in, which Lamplighter does not have yet; use auth = \"basic\" or \"ntlm\" (on-premises Exchange)"
    )]
    OAuth2,
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
    #[error("the phone {0} has a username but no password: save it in the settings window, or name a variable in password_env")]
    SubscriberPassword(String),
    /// `[user]` is not usable.
    #[error("the [user] section (sip_uri, numbers): {0}")]
    User(String),
}

/// The run the settings describe.
pub fn from_settings(settings: &Settings, secrets: &RunSecrets, paths: &Paths) -> Result<RunConfig, SetupError> {
    let state_dir = &paths.state_dir;
    let mailbox = settings.mailbox.as_ref().ok_or(SetupError::NoMailbox)?;
    let password = secrets.mailbox.clone().ok_or_else(|| {
        SetupError::NoPassword(match &mailbox.password_env {
            Some(v) => format!("the environment variable {v} (password_env) is not set"),
            None => "save it in the settings window, or name a variable in password_env".into(),
        })
    })?;
    let password = Password::new(password);
    let credentials = match mailbox.auth {
        AuthMethod::Basic => Credentials::Basic { user: mailbox.username.clone(), password },
        AuthMethod::Ntlm => Credentials::Ntlm { user: mailbox.username.clone(), password },
        AuthMethod::Oauth2 => return Err(SetupError::OAuth2),
    };
    let mut client = ClientConfig::new(mailbox.email.clone(), credentials);
    client.ews_url = mailbox.ews_url.as_ref().map(|u| u.to_string());
    client.autodiscover_cache = Some(state_dir.join("autodiscover.cache"));
    if let Some(ca) = &mailbox.ca_file {
        client.extra_ca_pem = Some(
            std::fs::read(ca)
                .map_err(|e| SetupError::CaFile { path: ca.display().to_string(), reason: e.to_string() })?,
        );
    }
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
        "" if subscribers.is_empty() => "0.0.0.0:0".parse().expect("address"),
        "" => "0.0.0.0:5060".parse().expect("address"),
        listen => listen.parse().map_err(|_| SetupError::Listen(listen.to_string()))?,
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
            // a publication is refreshed well before the presence server drops it
            refresh: match p.mode {
                PhoneMode::Publish => p.refresh.min(std::time::Duration::from_secs(u64::from(PUBLISH_EXPIRES) * 9 / 10)),
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
        mailbox: crate::MailboxSetup::ews(client),
        user,
        include_missed_calls: settings.mwi.include_missed_calls,
        phones,
        subscribers,
        sip_bind,
        audio_cache: Some(crate::AudioCache {
            dir: paths.cache_dir.join("audio"),
            max_age: std::time::Duration::from_secs(u64::from(settings.audio.cache_days) * 86_400),
        }),
        sip_ca_pem: None,
        relay: lamplighter_sip_mwi::relay::RelayConfig {
            coalesce: std::time::Duration::from_millis(u64::from(settings.mwi.coalesce_ms)),
            ..Default::default()
        },
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
    Ok(lamplighter_sip_notify::subscriptions::Subscriber { uri: phone.uri.clone(), auth })
}
