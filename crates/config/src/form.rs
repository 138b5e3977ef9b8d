//! What the user typed ([`SettingsForm`], the exact shape of the TOML file and
//! of the settings window's JSON) and what the program uses ([`Settings`]).
//!
//! [`SettingsForm::validate`] is the only way from one to the other. It checks
//! every field and reports all problems at once, each under a stable field
//! path (`mailbox.email`, `phone.0.uri`) that the window uses to place the
//! message beside the field.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// One invalid field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Dotted path of the field: `mailbox.email`, `phone.1.transport`, `user.numbers.0`.
    pub field: String,
    /// A sentence for the user.
    pub message: String,
}

fn err(errors: &mut Vec<FieldError>, field: impl Into<String>, message: impl Into<String>) {
    errors.push(FieldError { field: field.into(), message: message.into() });
}

/// The settings as written in the file or typed in the window: strings, not yet trusted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SettingsForm {
    /// The Exchange mailbox; absent until the user signs in (the demo mailbox is used then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailbox: Option<MailboxForm>,
    /// Paired SIP phones whose message-waiting lamp Lamplighter drives.
    #[serde(rename = "phone", skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<PhoneForm>,
    /// Who the user is on the phone system, for the missed-call analysis.
    pub user: UserForm,
    /// Desktop notification switches.
    pub notifications: Notifications,
    /// Message-waiting lamp options.
    pub mwi: MwiOptions,
    /// Voicemail audio cache.
    pub audio: AudioOptions,
    /// How to recognise a PBX's voicemail e-mails (`[[voicemail_rule]]`),
    /// tried before the built-in rules.
    #[serde(rename = "voicemail_rule", skip_serializing_if = "Vec::is_empty")]
    pub voicemail_rules: Vec<lamplighter_recognise::RuleSpec>,
}

/// `[mailbox]` as typed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailboxForm {
    /// The mailbox's e-mail address (also the Autodiscover key).
    pub email: String,
    /// EWS endpoint; empty means "use Autodiscover".
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ews_url: String,
    /// Sign-in name (`DOMAIN\user` or UPN); empty means the e-mail address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// `negotiate` (Kerberos), `ntlm`, `basic`, `auto` or `oauth2`.
    pub auth: String,
    /// For headless use: the environment variable holding the password.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password_env: String,
    /// An extra CA certificate file (PEM) to trust for this server.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// `ews` (the default: Exchange on-premises, or Exchange Online while it
    /// still allows EWS) or `graph` (Microsoft 365 through Microsoft Graph).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub backend: String,
    /// Graph's service root; empty: `https://graph.microsoft.com/v1.0`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub graph_url: String,
    /// The Microsoft sign-in authority; empty: `https://login.microsoftonline.com/organizations`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authority: String,
    /// The app registration's client id (OAuth2).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_id: String,
}

/// One `[[phone]]` as typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PhoneForm {
    /// The phone's SIP URI, e.g. `sip:613@192.0.2.10:5060`.
    pub uri: String,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    /// `unsolicited` (we send NOTIFY), `subscribe` (the phone subscribes to us)
    /// or `publish` (we PUBLISH to the presence server the phone subscribes at).
    pub mode: String,
    /// For `publish`: the presence server, e.g. `sip:pbx.example.org:5060`
    /// (empty: the host of `uri`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub presence_server: String,
    /// Digest user name, if the phone challenges.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    /// For headless use: the environment variable holding the digest password.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub password_env: String,
    /// How often the lamp state is resent even without change (Exchange UM: 12 h).
    pub refresh_hours: u32,
    /// Write `Voice-Message: 2/1` instead of `2/1 (0/0)` when nothing is
    /// urgent, as Exchange UM does, for phones that misread `(0/0)`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub omit_zero_urgent: bool,
}

impl Default for PhoneForm {
    fn default() -> Self {
        PhoneForm {
            uri: String::new(),
            transport: "udp".into(),
            mode: "unsolicited".into(),
            presence_server: String::new(),
            username: String::new(),
            password_env: String::new(),
            refresh_hours: 12,
            omit_zero_urgent: false,
        }
    }
}

/// `[user]` as typed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserForm {
    /// The user's own SIP URI (`sip:anna@example.com`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sip_uri: String,
    /// The user's phone numbers and extensions (`+49 5251 304613`, `613`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<String>,
}

/// `[notifications]`: which desktop notifications to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Notifications {
    /// Master switch ("do not disturb" when false).
    pub enabled: bool,
    /// A notification per new voicemail.
    pub voicemail: bool,
    /// A notification per new missed call.
    pub missed_calls: bool,
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications { enabled: true, voicemail: true, missed_calls: true }
    }
}

/// `[mwi]`: what the lamp shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MwiOptions {
    /// Count unseen missed calls as new messages (off by default, as Exchange UM).
    pub include_missed_calls: bool,
    /// Local SIP address (`IP:port`) NOTIFYs come from and subscribing phones send to;
    /// empty: the address of the interface that routes to the phones (loopback
    /// when none is named by IP), any free port, or port 5060 when a phone subscribes.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sip_listen: String,
    /// CA certificates (PEM) that TLS phones' and presence servers' certificates
    /// must chain to; without it no TLS phone is trusted.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    /// The certificate chain (PEM) the TLS listener presents to phones that
    /// subscribe over TLS; it listens on the port after `sip_listen`'s (5061).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_cert_file: String,
    /// Its private key (PEM), readable by this user only.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_key_file: String,
    /// After a NOTIFY, how many milliseconds further changes are gathered into
    /// one NOTIFY (0–10000; the first change after a quiet spell goes out at once).
    #[serde(skip_serializing_if = "MwiOptions::is_default_coalesce")]
    pub coalesce_ms: u32,
}

impl MwiOptions {
    /// The default coalescing window, in milliseconds.
    pub const DEFAULT_COALESCE_MS: u32 = 500;

    fn is_default_coalesce(ms: &u32) -> bool {
        *ms == Self::DEFAULT_COALESCE_MS
    }
}

impl Default for MwiOptions {
    fn default() -> Self {
        MwiOptions {
            include_missed_calls: false,
            sip_listen: String::new(),
            ca_file: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            coalesce_ms: Self::DEFAULT_COALESCE_MS,
        }
    }
}

/// `[audio]`: downloaded voicemail audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioOptions {
    /// Days a downloaded recording stays in the cache (1–3650).
    pub cache_days: u32,
}

impl Default for AudioOptions {
    fn default() -> Self {
        AudioOptions { cache_days: 30 }
    }
}

/// How Lamplighter signs in to EWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// HTTP Basic over TLS.
    Basic,
    /// NTLM (on-premises default).
    Ntlm,
    /// Kerberos with the desktop's ticket (no password); NTLM with the
    /// password, if one is saved, where Kerberos cannot be used.
    Negotiate,
    /// Whatever the server offers, best first: Kerberos, NTLM, Basic.
    Auto,
    /// OAuth2 bearer token.
    Oauth2,
}

impl AuthMethod {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Basic => "basic",
            AuthMethod::Ntlm => "ntlm",
            AuthMethod::Negotiate => "negotiate",
            AuthMethod::Auto => "auto",
            AuthMethod::Oauth2 => "oauth2",
        }
    }
}

/// SIP transport to a phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    /// UDP (the phones' default).
    Udp,
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl SipTransport {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
            SipTransport::Tls => "tls",
        }
    }
}

/// Who starts the MWI conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhoneMode {
    /// Lamplighter sends unsolicited NOTIFYs (as Exchange UM did).
    Unsolicited,
    /// The phone SUBSCRIBEs to Lamplighter for message-summary.
    Subscribe,
    /// Lamplighter PUBLISHes message-summary (RFC 3903) to the presence
    /// server or PBX the phone subscribes at.
    Publish,
}

impl PhoneMode {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneMode::Unsolicited => "unsolicited",
            PhoneMode::Subscribe => "subscribe",
            PhoneMode::Publish => "publish",
        }
    }
}

/// Validated settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// The mailbox, if one is configured.
    pub mailbox: Option<Mailbox>,
    /// Paired phones, URIs unique.
    pub phones: Vec<Phone>,
    /// The user's identity for the missed-call analysis.
    pub user: UserIdentity,
    /// Notification switches.
    pub notifications: Notifications,
    /// Lamp options.
    pub mwi: MwiOptions,
    /// Audio cache.
    pub audio: AudioOptions,
    /// The admin's voicemail rules, each one compiles.
    pub voicemail_rules: Vec<lamplighter_recognise::RuleSpec>,
}

impl Settings {
    /// The recogniser for these settings: the admin's rules, then the built-in ones.
    pub fn recogniser(&self) -> lamplighter_recognise::Recogniser {
        lamplighter_recognise::Recogniser::new(self.voicemail_rules.iter().filter_map(|r| r.compile().ok()).collect())
    }
}

/// A validated mailbox account.
#[derive(Debug, Clone, PartialEq)]
pub struct Mailbox {
    /// E-mail address, `local@domain`.
    pub email: String,
    /// Explicit EWS endpoint (https, or http on loopback only).
    pub ews_url: Option<url::Url>,
    /// Sign-in name; the e-mail address when none was given.
    pub username: String,
    /// How to sign in.
    pub auth: AuthMethod,
    /// Environment variable with the password (headless use).
    pub password_env: Option<String>,
    /// Extra CA certificate to trust.
    pub ca_file: Option<PathBuf>,
    /// Which protocol reaches the mailbox.
    pub backend: MailBackend,
    /// Graph's service root.
    pub graph_url: url::Url,
    /// The Microsoft sign-in authority.
    pub authority: url::Url,
    /// The app registration's client id (needed for OAuth2).
    pub client_id: Option<String>,
}

/// Which protocol reaches the mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailBackend {
    Ews,
    Graph,
    /// Decided at connection: Microsoft Graph for an Exchange Online mailbox,
    /// EWS otherwise (`lamplighter-graph-client`'s `locate`).
    Auto,
}

impl MailBackend {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            MailBackend::Ews => "ews",
            MailBackend::Graph => "graph",
            MailBackend::Auto => "auto",
        }
    }
}

/// Graph's service root when none is given.
pub const GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";
/// The sign-in authority when none is given (any work or school account).
pub const AUTHORITY: &str = "https://login.microsoftonline.com/organizations";

/// A validated paired phone.
#[derive(Debug, Clone, PartialEq)]
pub struct Phone {
    /// SIP URI (`sip:` or `sips:`).
    pub uri: String,
    pub transport: SipTransport,
    /// Who starts the MWI conversation.
    pub mode: PhoneMode,
    /// Where PUBLISH goes (`mode = "publish"`; `None`: the host of `uri`).
    pub presence_server: Option<String>,
    /// Digest user name.
    pub username: Option<String>,
    /// Environment variable with the digest password (headless use).
    pub password_env: Option<String>,
    /// Resend interval.
    pub refresh: Duration,
    /// Leave out `(0/0)` when nothing is urgent.
    pub omit_zero_urgent: bool,
}

/// The user's identity on the phone system.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserIdentity {
    /// Own SIP URI.
    pub sip_uri: Option<String>,
    /// Own numbers and extensions, as typed (normalised by the analysis).
    pub numbers: Vec<String>,
}

impl SettingsForm {
    /// Checks every field; returns the settings or every problem found.
    pub fn validate(&self) -> Result<Settings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mailbox = self.mailbox.as_ref().and_then(|m| validate_mailbox(m, &mut errors));
        let mut phones: Vec<Phone> = Vec::new();
        for (i, p) in self.phones.iter().enumerate() {
            if let Some(phone) = validate_phone(i, p, &mut errors) {
                if phones.iter().any(|q| q.uri.eq_ignore_ascii_case(&phone.uri)) {
                    err(&mut errors, format!("phone.{i}.uri"), "This phone is already paired.");
                } else {
                    phones.push(phone);
                }
            }
        }
        let user = validate_user(&self.user, &mut errors);
        let listen = self.mwi.sip_listen.trim();
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            err(&mut errors, "mwi.sip_listen", "Give an IP address and port, such as 0.0.0.0:5060.");
        }
        let phone_ca = self.mwi.ca_file.trim();
        if !phone_ca.is_empty() && !std::path::Path::new(phone_ca).is_file() {
            err(&mut errors, "mwi.ca_file", format!("No such file: {phone_ca}."));
        }
        check_tls_identity(&self.mwi, &phones, &mut errors);
        if self.mwi.coalesce_ms > 10_000 {
            err(&mut errors, "mwi.coalesce_ms", "Gather lamp changes for at most 10000 ms.");
        }
        if !(1..=3650).contains(&self.audio.cache_days) {
            err(&mut errors, "audio.cache_days", "Keep recordings between 1 and 3650 days.");
        }
        for (i, rule) in self.voicemail_rules.iter().enumerate() {
            if let Err(e) = rule.compile() {
                err(&mut errors, format!("voicemail_rule.{i}.{}", e.field()), e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(Settings {
                mailbox,
                phones,
                user,
                notifications: self.notifications.clone(),
                mwi: MwiOptions {
                    sip_listen: listen.to_string(),
                    ca_file: phone_ca.to_string(),
                    tls_cert_file: self.mwi.tls_cert_file.trim().to_string(),
                    tls_key_file: self.mwi.tls_key_file.trim().to_string(),
                    ..self.mwi.clone()
                },
                audio: self.audio.clone(),
                voicemail_rules: self.voicemail_rules.clone(),
            })
        } else {
            Err(errors)
        }
    }
}

impl Settings {
    /// The form that validates back to these settings (for the file and the window).
    pub fn to_form(&self) -> SettingsForm {
        SettingsForm {
            mailbox: self.mailbox.as_ref().map(|m| MailboxForm {
                email: m.email.clone(),
                ews_url: m.ews_url.as_ref().map(|u| u.to_string()).unwrap_or_default(),
                username: if m.username == m.email { String::new() } else { m.username.clone() },
                auth: m.auth.as_str().into(),
                password_env: m.password_env.clone().unwrap_or_default(),
                ca_file: m.ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                backend: if m.backend == MailBackend::Ews { String::new() } else { m.backend.as_str().into() },
                graph_url: if m.graph_url.as_str().trim_end_matches('/') == GRAPH_URL {
                    String::new()
                } else {
                    m.graph_url.to_string()
                },
                authority: if m.authority.as_str().trim_end_matches('/') == AUTHORITY {
                    String::new()
                } else {
                    m.authority.to_string()
                },
                client_id: m.client_id.clone().unwrap_or_default(),
            }),
            phones: self
                .phones
                .iter()
                .map(|p| PhoneForm {
                    uri: p.uri.clone(),
                    transport: p.transport.as_str().into(),
                    mode: p.mode.as_str().into(),
                    presence_server: p.presence_server.clone().unwrap_or_default(),
                    username: p.username.clone().unwrap_or_default(),
                    password_env: p.password_env.clone().unwrap_or_default(),
                    refresh_hours: (p.refresh.as_secs() / 3600) as u32,
                    omit_zero_urgent: p.omit_zero_urgent,
                })
                .collect(),
            user: UserForm {
                sip_uri: self.user.sip_uri.clone().unwrap_or_default(),
                numbers: self.user.numbers.clone(),
            },
            notifications: self.notifications.clone(),
            mwi: self.mwi.clone(),
            audio: self.audio.clone(),
            voicemail_rules: self.voicemail_rules.clone(),
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn validate_mailbox(m: &MailboxForm, errors: &mut Vec<FieldError>) -> Option<Mailbox> {
    let n = errors.len();
    let email = m.email.trim().to_string();
    if email.is_empty() {
        err(errors, "mailbox.email", "Enter the mailbox's e-mail address.");
    } else if !is_email(&email) {
        err(errors, "mailbox.email", "This is not an e-mail address (expected name@domain).");
    }
    let ews_url = match non_empty(&m.ews_url) {
        None => None,
        Some(s) => match url::Url::parse(&s) {
            Ok(u) if u.scheme() == "https" && u.host().is_some() => Some(u),
            Ok(u) if u.scheme() == "http" && is_loopback_host(&u) => Some(u),
            Ok(u) if u.scheme() == "http" => {
                err(
                    errors,
                    "mailbox.ews_url",
                    "Use https: credentials are never sent unencrypted (plain http is allowed only for this computer).",
                );
                None
            }
            Ok(_) => {
                err(errors, "mailbox.ews_url", "The EWS URL must start with https://.");
                None
            }
            Err(e) => {
                err(errors, "mailbox.ews_url", format!("This is not a valid URL ({e})."));
                None
            }
        },
    };
    let auth = match m.auth.trim().to_ascii_lowercase().as_str() {
        "basic" => Some(AuthMethod::Basic),
        "ntlm" | "" => Some(AuthMethod::Ntlm),
        "negotiate" => Some(AuthMethod::Negotiate),
        "auto" => Some(AuthMethod::Auto),
        "oauth2" => Some(AuthMethod::Oauth2),
        other => {
            err(
                errors,
                "mailbox.auth",
                format!("Unknown sign-in method \"{other}\" (choose negotiate, ntlm, basic, auto or oauth2)."),
            );
            None
        }
    };
    let username = non_empty(&m.username).unwrap_or_else(|| email.clone());
    if username.chars().any(char::is_whitespace) {
        err(errors, "mailbox.username", "The user name must not contain spaces.");
    }
    let password_env = non_empty(&m.password_env);
    if let Some(v) = &password_env
        && !is_env_name(v)
    {
        err(
            errors,
            "mailbox.password_env",
            "Name an environment variable (letters, digits, _), not the password itself.",
        );
    }
    let ca_file = non_empty(&m.ca_file).map(PathBuf::from);
    if let Some(p) = &ca_file
        && !p.is_file()
    {
        err(errors, "mailbox.ca_file", format!("No such file: {}.", p.display()));
    }
    let backend = match m.backend.trim().to_ascii_lowercase().as_str() {
        "" | "ews" => Some(MailBackend::Ews),
        "graph" => Some(MailBackend::Graph),
        "auto" => Some(MailBackend::Auto),
        other => {
            err(errors, "mailbox.backend", format!("Unknown backend \"{other}\" (choose ews, graph or auto)."));
            None
        }
    };
    let service_url = |field: &str, value: &str, default: &str, errors: &mut Vec<FieldError>| {
        let value = non_empty(value).unwrap_or_else(|| default.to_string());
        match url::Url::parse(&value) {
            Ok(u) if u.scheme() == "https" && u.host().is_some() => Some(u),
            Ok(u) if u.scheme() == "http" && is_loopback_host(&u) => Some(u),
            Ok(_) => {
                err(errors, field, "Use https: tokens are never sent unencrypted.");
                None
            }
            Err(e) => {
                err(errors, field, format!("This is not a valid URL ({e})."));
                None
            }
        }
    };
    let graph_url = service_url("mailbox.graph_url", &m.graph_url, GRAPH_URL, errors);
    let authority = service_url("mailbox.authority", &m.authority, AUTHORITY, errors);
    let client_id = non_empty(&m.client_id);
    if backend == Some(MailBackend::Graph) && auth.is_some_and(|a| a != AuthMethod::Oauth2) && !m.auth.trim().is_empty()
    {
        err(errors, "mailbox.auth", "Microsoft Graph signs in with OAuth2 only (auth = \"oauth2\").");
    }
    let auth =
        if backend == Some(MailBackend::Graph) && m.auth.trim().is_empty() { Some(AuthMethod::Oauth2) } else { auth };
    if auth == Some(AuthMethod::Oauth2) && client_id.is_none() {
        err(
            errors,
            "mailbox.client_id",
            "OAuth2 needs the app registration's client id (see docs/entra-app-registration.md).",
        );
    }
    if errors.len() > n {
        return None;
    }
    Some(Mailbox {
        email,
        ews_url,
        username,
        auth: auth?,
        password_env,
        ca_file,
        backend: backend?,
        graph_url: graph_url?,
        authority: authority?,
        client_id,
    })
}

fn validate_phone(i: usize, p: &PhoneForm, errors: &mut Vec<FieldError>) -> Option<Phone> {
    let n = errors.len();
    let f = |name: &str| format!("phone.{i}.{name}");
    let uri = p.uri.trim().to_string();
    if uri.is_empty() {
        err(errors, f("uri"), "Enter the phone's SIP URI, e.g. sip:613@192.0.2.10.");
    } else if let Err(why) = check_sip_uri(&uri) {
        err(errors, f("uri"), why);
    }
    let transport = match p.transport.trim().to_ascii_lowercase().as_str() {
        "udp" | "" => Some(SipTransport::Udp),
        "tcp" => Some(SipTransport::Tcp),
        "tls" => Some(SipTransport::Tls),
        other => {
            err(errors, f("transport"), format!("Unknown transport \"{other}\" (choose udp, tcp or tls)."));
            None
        }
    };
    if uri.to_ascii_lowercase().starts_with("sips:") && transport.is_some_and(|t| t != SipTransport::Tls) {
        err(errors, f("transport"), "A sips: URI needs the tls transport.");
    }
    let mode = match p.mode.trim().to_ascii_lowercase().as_str() {
        "unsolicited" | "" => Some(PhoneMode::Unsolicited),
        "subscribe" => Some(PhoneMode::Subscribe),
        "publish" => Some(PhoneMode::Publish),
        other => {
            err(errors, f("mode"), format!("Unknown mode \"{other}\" (choose unsolicited, subscribe or publish)."));
            None
        }
    };
    let presence_server = non_empty(&p.presence_server);
    if let Some(server) = &presence_server {
        if let Err(why) = check_sip_uri(server) {
            err(errors, f("presence_server"), why);
        } else if mode != Some(PhoneMode::Publish) {
            err(errors, f("presence_server"), "A presence server is used only with mode = \"publish\".");
        }
    }
    if !(1..=24).contains(&p.refresh_hours) {
        err(errors, f("refresh_hours"), "Refresh between 1 and 24 hours.");
    }
    let password_env = non_empty(&p.password_env);
    if let Some(v) = &password_env
        && !is_env_name(v)
    {
        err(errors, f("password_env"), "Name an environment variable (letters, digits, _), not the password itself.");
    }
    if errors.len() > n {
        return None;
    }
    Some(Phone {
        uri,
        transport: transport?,
        mode: mode?,
        presence_server,
        username: non_empty(&p.username),
        password_env,
        refresh: Duration::from_secs(u64::from(p.refresh_hours) * 3600),
        omit_zero_urgent: p.omit_zero_urgent,
    })
}

/// `tls_cert_file` and `tls_key_file`: both or neither, both present, the key
/// private to this user; required when a phone subscribes over TLS.
fn check_tls_identity(mwi: &MwiOptions, phones: &[Phone], errors: &mut Vec<FieldError>) {
    let cert = mwi.tls_cert_file.trim();
    let key = mwi.tls_key_file.trim();
    let tls_subscriber = phones.iter().any(|p| p.mode == PhoneMode::Subscribe && p.transport == SipTransport::Tls);
    match (cert.is_empty(), key.is_empty()) {
        (true, true) if tls_subscriber => err(
            errors,
            "mwi.tls_cert_file",
            "A phone subscribes over TLS: give the certificate (tls_cert_file) and key (tls_key_file) to present to it.",
        ),
        (true, true) => {}
        (false, true) => err(errors, "mwi.tls_key_file", "Give the private key of the TLS certificate."),
        (true, false) => err(errors, "mwi.tls_cert_file", "Give the certificate of the TLS key."),
        (false, false) => {
            if !std::path::Path::new(cert).is_file() {
                err(errors, "mwi.tls_cert_file", format!("No such file: {cert}."));
            }
            match std::fs::metadata(key) {
                Err(_) => err(errors, "mwi.tls_key_file", format!("No such file: {key}.")),
                Ok(m) if !m.is_file() => err(errors, "mwi.tls_key_file", format!("No such file: {key}.")),
                Ok(m) => {
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::PermissionsExt;
                        if m.permissions().mode() & 0o077 != 0 {
                            err(
                                errors,
                                "mwi.tls_key_file",
                                format!("{key} can be read by other users: make it private (chmod 600)."),
                            );
                        }
                    }
                    #[cfg(not(unix))]
                    let _ = m;
                }
            }
        }
    }
}

fn validate_user(u: &UserForm, errors: &mut Vec<FieldError>) -> UserIdentity {
    let sip_uri = non_empty(&u.sip_uri);
    if let Some(s) = &sip_uri
        && let Err(why) = check_sip_uri(s)
    {
        err(errors, "user.sip_uri", why);
    }
    let mut numbers = Vec::new();
    for (i, n) in u.numbers.iter().enumerate() {
        let t = n.trim();
        let digits = t.chars().filter(char::is_ascii_digit).count();
        let allowed = t.chars().all(|c| c.is_ascii_digit() || " +-()/.".contains(c));
        if digits == 0 || !allowed {
            err(
                errors,
                format!("user.numbers.{i}"),
                "A phone number or extension has digits and may use + - ( ) / . and spaces.",
            );
        } else {
            numbers.push(t.to_string());
        }
    }
    UserIdentity { sip_uri, numbers }
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && domain.split('.').all(|label| !label.is_empty())
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_loopback_host(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

/// Checks the shape of a `sip:`/`sips:` URI: scheme, optional user part,
/// a host name, IPv4 or bracketed IPv6 address, an optional port, params.
pub fn check_sip_uri(uri: &str) -> Result<(), String> {
    let lower = uri.to_ascii_lowercase();
    let rest = if let Some(r) = lower.strip_prefix("sip:") {
        r
    } else if let Some(r) = lower.strip_prefix("sips:") {
        r
    } else {
        return Err("A SIP URI starts with sip: or sips:.".into());
    };
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("A SIP URI has no spaces.".into());
    }
    let hostport = rest.split([';', '?']).next().unwrap_or("");
    let hostport = match hostport.rsplit_once('@') {
        Some((user, hp)) if !user.is_empty() => hp,
        Some(_) => return Err("The user part before @ is empty.".into()),
        None => hostport,
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("An IPv6 address needs a closing ].")?;
        addr.parse::<std::net::Ipv6Addr>().map_err(|_| "Not a valid IPv6 address.")?;
        (addr, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("The SIP URI has no host.".into());
    }
    if !host.contains(':') && !host.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
        return Err(format!("\"{host}\" is not a host name or address."));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("\"{p}\" is not a port number (1–65535).")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(email: &str) -> MailboxForm {
        MailboxForm { email: email.into(), auth: "basic".into(), ..Default::default() }
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn empty_form_is_valid_and_has_no_mailbox() {
        let s = SettingsForm::default().validate().expect("valid");
        assert!(s.mailbox.is_none());
        assert!(s.notifications.enabled);
    }

    #[test]
    fn microsoft_365_needs_oauth2_and_a_client_id_and_round_trips() {
        let form = |m: MailboxForm| SettingsForm { mailbox: Some(m), ..SettingsForm::default() };
        let fields =
            |f: SettingsForm| f.validate().expect_err("invalid").into_iter().map(|e| e.field).collect::<Vec<_>>();
        let graph = MailboxForm { email: "mara@contoso.com".into(), backend: "graph".into(), ..Default::default() };
        assert_eq!(
            fields(form(graph.clone())),
            ["mailbox.client_id"],
            "graph implies oauth2, which needs the app's id"
        );
        assert_eq!(
            fields(form(MailboxForm { auth: "ntlm".into(), client_id: "x".into(), ..graph.clone() })),
            ["mailbox.auth"]
        );
        assert_eq!(fields(form(MailboxForm { backend: "imap".into(), ..graph.clone() })), ["mailbox.backend"]);
        assert_eq!(
            fields(form(MailboxForm {
                client_id: "x".into(),
                graph_url: "http://graph.example.com/v1.0".into(),
                ..graph.clone()
            })),
            ["mailbox.graph_url"],
            "tokens never go over plain http to another host"
        );
        let ok = MailboxForm { client_id: "6f3c1a57".into(), ..graph };
        let settings = form(ok.clone()).validate().expect("valid");
        let m = settings.mailbox.as_ref().expect("mailbox");
        assert_eq!((m.backend, m.auth), (MailBackend::Graph, AuthMethod::Oauth2));
        assert_eq!(m.graph_url.as_str(), "https://graph.microsoft.com/v1.0");
        assert_eq!(m.authority.as_str(), "https://login.microsoftonline.com/organizations");
        // the defaults are not written back into the file
        let back = settings.to_form().mailbox.expect("mailbox");
        assert_eq!(
            (back.backend.as_str(), back.graph_url.as_str(), back.client_id.as_str()),
            ("graph", "", "6f3c1a57")
        );
    }

    #[test]
    fn every_bad_field_is_reported_under_its_own_name() {
        let form = SettingsForm {
            mailbox: Some(MailboxForm {
                email: "not-an-address".into(),
                ews_url: "http://mail.example.com/EWS/Exchange.asmx".into(),
                auth: "kerberos".into(),
                password_env: "hunter2!".into(),
                ..Default::default()
            }),
            phones: vec![
                PhoneForm { uri: "613@10.0.0.1".into(), ..Default::default() },
                PhoneForm {
                    uri: "sips:613@host".into(),
                    transport: "udp".into(),
                    mode: "push".into(),
                    refresh_hours: 0,
                    ..Default::default()
                },
            ],
            user: UserForm { sip_uri: String::new(), numbers: vec!["+49 5251 304613".into(), "abc".into()] },
            ..Default::default()
        };
        let errors = form.validate().expect_err("invalid");
        assert_eq!(
            fields(&errors),
            vec![
                "mailbox.email",
                "mailbox.ews_url",
                "mailbox.auth",
                "mailbox.password_env",
                "phone.0.uri",
                "phone.1.transport",
                "phone.1.mode",
                "phone.1.refresh_hours",
                "user.numbers.1"
            ]
        );
    }

    #[test]
    fn a_tls_subscriber_needs_a_private_key_that_only_this_user_reads() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let (cert, key) = (dir.path().join("sip.crt"), dir.path().join("sip.key"));
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").expect("cert");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").expect("key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut form = SettingsForm {
            phones: vec![PhoneForm {
                uri: "sip:613@127.0.0.1".into(),
                transport: "tls".into(),
                mode: "subscribe".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let errors = form.validate().expect_err("no certificate");
        assert_eq!(fields(&errors), vec!["mwi.tls_cert_file"], "{errors:?}");
        form.mwi.tls_cert_file = cert.display().to_string();
        assert_eq!(fields(&form.validate().expect_err("no key")), vec!["mwi.tls_key_file"]);
        form.mwi.tls_key_file = key.display().to_string();
        let errors = form.validate().expect_err("world-readable key");
        assert!(errors[0].message.contains("chmod 600"), "{errors:?}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let settings = form.validate().expect("valid");
        assert_eq!(settings.mwi.tls_key_file, key.display().to_string());
        assert_eq!(settings.to_form().validate(), Ok(settings));
    }

    #[test]
    fn http_is_allowed_only_on_loopback() {
        for (url, ok) in [
            ("http://127.0.0.1:8080/EWS/Exchange.asmx", true),
            ("http://localhost/EWS/Exchange.asmx", true),
            ("http://[::1]:9/EWS/Exchange.asmx", true),
            ("http://mail.example.com/EWS/Exchange.asmx", false),
            ("https://mail.example.com/EWS/Exchange.asmx", true),
            ("ftp://mail.example.com/", false),
        ] {
            let mut m = mailbox("a@example.com");
            m.ews_url = url.into();
            let form = SettingsForm { mailbox: Some(m), ..Default::default() };
            assert_eq!(form.validate().is_ok(), ok, "{url}");
        }
    }

    #[test]
    fn duplicate_phone_is_refused() {
        let p = PhoneForm { uri: "sip:613@pbx.example.com".into(), ..Default::default() };
        let mut q = p.clone();
        q.uri = "SIP:613@PBX.example.com".into();
        let errors = SettingsForm { phones: vec![p, q], ..Default::default() }.validate().expect_err("dup");
        assert_eq!(fields(&errors), vec!["phone.1.uri"]);
    }

    #[test]
    fn sip_uri_shapes() {
        for ok in [
            "sip:613@192.0.2.10",
            "sip:613@192.0.2.10:5060",
            "sips:anna@example.com;transport=tls",
            "sip:[::1]:5070",
            "sip:pbx.example.com",
        ] {
            assert!(check_sip_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "613@host",
            "sip:",
            "sip:@host",
            "sip:613@host:99999",
            "sip:613@ho st",
            "sip:[::1",
            "sip:613@host:0",
            "sip:a@b_c!",
        ] {
            assert!(check_sip_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn username_defaults_to_email_and_round_trips() {
        let form = SettingsForm { mailbox: Some(mailbox("anna@example.com")), ..Default::default() };
        let s = form.validate().expect("valid");
        assert_eq!(s.mailbox.as_ref().map(|m| m.username.as_str()), Some("anna@example.com"));
        assert_eq!(s.to_form().validate().expect("valid"), s);
    }

    #[test]
    fn sip_listen_and_audio_cache_days_are_checked() {
        let mut form = SettingsForm::default();
        form.mwi.sip_listen = " 0.0.0.0:5070 ".into();
        let ok = form.validate().expect("valid");
        assert_eq!((ok.mwi.sip_listen.as_str(), ok.audio.cache_days), ("0.0.0.0:5070", 30));
        assert_eq!(ok.mwi.coalesce_ms, 500, "the default window");
        assert!(!toml::to_string(&ok.to_form()).expect("toml").contains("coalesce_ms"), "the default is not written");
        form.mwi.sip_listen = "phone.local".into();
        form.mwi.coalesce_ms = 10_001;
        form.audio.cache_days = 0;
        let fields: Vec<String> = form.validate().expect_err("invalid").into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["mwi.sip_listen", "mwi.coalesce_ms", "audio.cache_days"]);
        let parsed: SettingsForm = toml::from_str("[mwi]\ncoalesce_ms = 0\n").expect("toml");
        assert_eq!(parsed.validate().expect("0 is allowed").mwi.coalesce_ms, 0);
        let parsed: SettingsForm =
            toml::from_str("[mwi]\nsip_listen = \"127.0.0.1:5060\"\n[audio]\ncache_days = 7\n").expect("toml");
        assert_eq!((parsed.mwi.sip_listen.as_str(), parsed.audio.cache_days), ("127.0.0.1:5060", 7));
    }
}
