//! The gateway's settings file (`/etc/lamplighter/gateway.toml`): how it
//! reaches Exchange, where its directory is, and where each group's lamps
//! go. Read once at start and checked as a whole: a bad file is refused with
//! the key that is wrong, before anything runs. Secrets are never in it
//! (see [`crate::credentials`]).
//!
//! ```toml
//! [exchange]
//! ews_url = "https://exch.example.test/EWS/Exchange.asmx"
//! account = "EXAMPLE\\svc-lamp"     # holds the ApplicationImpersonation role
//! auth = "ntlm"                     # or "basic"
//!
//! [directory]
//! file = "/etc/lamplighter/directory.toml"
//! every_secs = 60
//!
//! [sip]
//! listen = "0.0.0.0:5060"
//!
//! [http]
//! listen = "127.0.0.1:9464"         # /metrics and /healthz
//!
//! [[gateway]]
//! name = "pbx-a"
//! address = "192.0.2.10:5060"
//! transport = "tcp"
//!
//! [[group]]
//! name = "default"
//! delivery = "trunk"                # trunk | phone | publish | subscribe
//! gateways = ["pbx-a"]
//! domain = "pbx.example.test"       # Request-URI sip:<line>@<domain>
//! ```

use lamplighter_sip_notify::Transport;
use serde::Deserialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What is wrong with the settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path}: {reason}")]
    Syntax { path: String, reason: String },
    #[error("{path}: {key}: {reason}")]
    Invalid { path: String, key: String, reason: String },
}

/// How the service account signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Auth {
    Basic,
    Ntlm,
}

/// Where a group's lamps go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Through SIP gateways or a PBX trunk, in order with round robin and
    /// failover: Request-URI `sip:<line>@<domain>`.
    Trunk { gateways: Vec<usize>, domain: String },
    /// Straight to each phone: `phone` with `{line}` replaced (`sip:{line}@192.0.2.20:5060`).
    Phone { phone: String, transport: Transport },
    /// A PUBLISH of the state to a presence server, for presentity `sip:<line>@<domain>`.
    Publish { server: String, domain: String, transport: Transport, expires: u32 },
    /// Phones SUBSCRIBE to the gateway itself as `sip:<line>@<domain>`, with digest.
    Subscribe { domain: String },
}

/// A group of lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    /// UM's per-policy switch: no lamp for the group when off.
    pub mwi: bool,
    pub delivery: Delivery,
}

/// A SIP gateway or PBX trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipGateway {
    pub name: String,
    /// `host:port`.
    pub address: String,
    pub transport: Transport,
    /// UM's per-gateway switch.
    pub mwi: bool,
}

impl SipGateway {
    /// The gateway as a SIP URI to send to.
    pub fn uri(&self) -> String {
        match self.transport {
            Transport::Udp => format!("sip:{}", self.address),
            Transport::Tcp => format!("sip:{};transport=tcp", self.address),
            Transport::Tls => format!("sip:{};transport=tls", self.address),
        }
    }
}

/// Where the directory comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectorySource {
    /// A TOML or CSV file.
    File(PathBuf),
    /// An LDAP search (Active Directory, OpenLDAP).
    Ldap(crate::ldap::LdapSource),
}

impl std::fmt::Display for DirectorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DirectorySource::File(p) => write!(f, "{}", p.display()),
            DirectorySource::Ldap(l) => write!(f, "{} {}", l.url, l.base),
        }
    }
}

/// How the gateway reaches the mailboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxAccess {
    /// Exchange Server: EWS with one service account holding ApplicationImpersonation.
    Ews { ews_url: String, account: String, auth: Auth },
    /// Exchange Online: Microsoft Graph as an app (client credentials with a certificate).
    Graph(GraphAccess),
}

/// App-only Microsoft Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphAccess {
    /// `https://login.microsoftonline.com/<tenant>`.
    pub authority: String,
    pub client_id: String,
    /// `https://graph.microsoft.com/v1.0`.
    pub graph_url: String,
    /// Each mailbox's delta polling pace without notifications.
    pub poll_every: Duration,
    pub notifications: Option<Notifications>,
}

/// Graph change notifications to the gateway's webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifications {
    /// The https:// URL Graph POSTs to.
    pub url: String,
    pub listen: SocketAddr,
    /// TLS at the gateway (`webhook-certificate`, `webhook-key`), or plain HTTP behind a proxy.
    pub tls: bool,
    /// The life asked for each subscription.
    pub lifetime: Duration,
    /// The safety net's polling pace while notifications flow.
    pub poll_every: Duration,
}

/// The checked settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub access: MailboxAccess,
    pub ca_file: Option<PathBuf>,
    pub directory: DirectorySource,
    pub directory_every: Duration,
    pub sip_listen: SocketAddr,
    /// A TCP listener for phones that subscribe over TCP.
    pub sip_tcp: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub gateways: Vec<SipGateway>,
    pub groups: Vec<Group>,
    /// Resend every lamp at least this often (UM: 12 hours).
    pub refresh_every: Duration,
    /// NOTIFYs a second, all gateways together and per gateway.
    pub rate_global: f64,
    pub rate_per_gateway: f64,
    /// Where the state database lives (systemd's `StateDirectory=`).
    pub state_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    exchange: Option<ExchangeFile>,
    graph: Option<GraphFile>,
    directory: DirectoryFile,
    #[serde(default)]
    sip: SipFile,
    http: Option<HttpFile>,
    #[serde(default)]
    gateway: Vec<GatewayFile>,
    #[serde(default)]
    group: Vec<GroupFile>,
    #[serde(default)]
    lamps: LampsFile,
    state: Option<StateFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeFile {
    ews_url: String,
    account: String,
    #[serde(default = "ntlm")]
    auth: Auth,
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GraphFile {
    tenant: String,
    client_id: String,
    #[serde(default = "login")]
    authority: String,
    #[serde(default = "graph_root")]
    graph_url: String,
    #[serde(default = "sixty")]
    poll_secs: u64,
    ca_file: Option<PathBuf>,
    notifications: Option<NotificationsFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationsFile {
    url: String,
    listen: String,
    #[serde(default = "yes")]
    tls: bool,
    #[serde(default = "seventy_two")]
    lifetime_hours: u64,
    #[serde(default = "nine_hundred")]
    poll_secs: u64,
}

fn login() -> String {
    "https://login.microsoftonline.com".into()
}
fn graph_root() -> String {
    "https://graph.microsoft.com/v1.0".into()
}
fn seventy_two() -> u64 {
    72
}
fn nine_hundred() -> u64 {
    900
}

fn ntlm() -> Auth {
    Auth::Ntlm
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectoryFile {
    file: Option<PathBuf>,
    ldap: Option<LdapFile>,
    #[serde(default = "sixty")]
    every_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LdapFile {
    url: String,
    bind_dn: Option<String>,
    base: String,
    #[serde(default = "any_mail")]
    filter: String,
    #[serde(default = "mail")]
    address_attribute: String,
    #[serde(default = "telephone")]
    line_attribute: String,
    group_attribute: Option<String>,
    line_last_digits: Option<usize>,
    #[serde(default = "ten")]
    timeout_secs: u64,
}

fn any_mail() -> String {
    "(&(mail=*)(telephoneNumber=*))".into()
}
fn mail() -> String {
    "mail".into()
}
fn telephone() -> String {
    "telephoneNumber".into()
}
fn ten() -> u64 {
    10
}

fn sixty() -> u64 {
    60
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SipFile {
    #[serde(default = "sip_any")]
    listen: String,
    tcp: Option<String>,
}

fn sip_any() -> String {
    "0.0.0.0:5060".into()
}

impl Default for SipFile {
    fn default() -> Self {
        SipFile { listen: sip_any(), tcp: None }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    listen: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayFile {
    name: String,
    address: String,
    #[serde(default)]
    transport: Option<String>,
    #[serde(default = "yes")]
    mwi: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupFile {
    name: String,
    delivery: String,
    #[serde(default = "yes")]
    mwi: bool,
    #[serde(default)]
    gateways: Vec<String>,
    domain: Option<String>,
    phone: Option<String>,
    server: Option<String>,
    transport: Option<String>,
    expires: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LampsFile {
    #[serde(default = "twelve")]
    refresh_hours: f64,
    #[serde(default = "two_hundred")]
    rate_per_second: f64,
    #[serde(default = "fifty")]
    rate_per_gateway: f64,
}

fn twelve() -> f64 {
    12.0
}
fn two_hundred() -> f64 {
    200.0
}
fn fifty() -> f64 {
    50.0
}

impl Default for LampsFile {
    fn default() -> Self {
        LampsFile { refresh_hours: twelve(), rate_per_second: two_hundred(), rate_per_gateway: fifty() }
    }
}

fn transport(value: Option<&str>) -> Result<Transport, String> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("udp") => Ok(Transport::Udp),
        Some("tcp") => Ok(Transport::Tcp),
        Some("tls") => Ok(Transport::Tls),
        Some(other) => Err(format!("\"{other}\" is not udp, tcp or tls")),
    }
}

/// A host name or address a SIP URI can carry: no spaces, no URI syntax.
fn plain_host(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c))
}

impl GatewayConfig {
    /// Reads and checks the file; paths in it are relative to its folder.
    pub fn load(path: &std::path::Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Io { path: path.display().to_string(), reason: e.to_string() })?;
        let base = path.parent().unwrap_or(std::path::Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::Syntax { reason, .. } => ConfigError::Syntax { path: path.display().to_string(), reason },
            ConfigError::Invalid { key, reason, .. } => {
                ConfigError::Invalid { path: path.display().to_string(), key, reason }
            }
            other => other,
        })
    }

    /// Parses settings text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &std::path::Path) -> Result<GatewayConfig, ConfigError> {
        let f: File =
            toml::from_str(text).map_err(|e| ConfigError::Syntax { path: String::new(), reason: e.to_string() })?;
        let bad = |key: &str, reason: String| ConfigError::Invalid { path: String::new(), key: key.into(), reason };
        let rel = |p: &PathBuf| if p.is_absolute() { p.clone() } else { base.join(p) };
        let (access, ca_file) = match (f.exchange, f.graph) {
            (Some(x), None) => {
                if !(x.ews_url.starts_with("https://") || x.ews_url.starts_with("http://")) {
                    return Err(bad("exchange.ews_url", "must be an http(s) URL".into()));
                }
                if x.account.trim().is_empty() {
                    return Err(bad("exchange.account", "the service account is empty".into()));
                }
                (
                    MailboxAccess::Ews { ews_url: x.ews_url, account: x.account, auth: x.auth },
                    x.ca_file.as_ref().map(rel),
                )
            }
            (None, Some(g)) => {
                let url_ok = |u: &str| {
                    u.starts_with("https://") || u.starts_with("http://127.0.0.1") || u.starts_with("http://localhost")
                };
                if !url_ok(&g.authority) {
                    return Err(bad("graph.authority", "must be https:// (http only to this machine)".into()));
                }
                if !url_ok(&g.graph_url) {
                    return Err(bad("graph.graph_url", "must be https:// (http only to this machine)".into()));
                }
                let plain = |v: &str| {
                    !v.is_empty() && v.len() <= 128 && v.chars().all(|c| c.is_ascii_alphanumeric() || "-.".contains(c))
                };
                if !plain(&g.tenant) {
                    return Err(bad("graph.tenant", "a tenant id or domain (not common or organizations)".into()));
                }
                if ["common", "organizations", "consumers"].contains(&g.tenant.as_str()) {
                    return Err(bad("graph.tenant", "an app signs in to its own tenant: give its id or domain".into()));
                }
                if !plain(&g.client_id) {
                    return Err(bad("graph.client_id", "the app registration's application (client) id".into()));
                }
                let notifications = match g.notifications {
                    None => None,
                    Some(n) => {
                        if !n.url.starts_with("https://") {
                            return Err(bad("graph.notifications.url", "Graph posts only to https:// URLs".into()));
                        }
                        if !(1..=167).contains(&n.lifetime_hours) {
                            return Err(bad(
                                "graph.notifications.lifetime_hours",
                                "1 to 167 (Graph: under 7 days)".into(),
                            ));
                        }
                        Some(Notifications {
                            url: n.url,
                            listen: n.listen.parse().map_err(|e| bad("graph.notifications.listen", format!("{e}")))?,
                            tls: n.tls,
                            lifetime: Duration::from_secs(n.lifetime_hours * 3600),
                            poll_every: Duration::from_secs(n.poll_secs.clamp(1, 86_400)),
                        })
                    }
                };
                (
                    MailboxAccess::Graph(GraphAccess {
                        authority: format!("{}/{}", g.authority.trim_end_matches('/'), g.tenant),
                        client_id: g.client_id,
                        graph_url: g.graph_url.trim_end_matches('/').to_string(),
                        poll_every: Duration::from_secs(g.poll_secs.clamp(1, 86_400)),
                        notifications,
                    }),
                    g.ca_file.as_ref().map(rel),
                )
            }
            _ => return Err(bad("exchange", "give either [exchange] (EWS) or [graph] (Microsoft 365)".into())),
        };
        let sip_listen = f.sip.listen.parse().map_err(|e| bad("sip.listen", format!("{e}")))?;
        let sip_tcp = f.sip.tcp.as_deref().map(str::parse).transpose().map_err(|e| bad("sip.tcp", format!("{e}")))?;
        let http_listen =
            f.http.as_ref().map(|h| h.listen.parse()).transpose().map_err(|e| bad("http.listen", format!("{e}")))?;
        let mut gateways = Vec::new();
        let mut names = HashSet::new();
        for (i, g) in f.gateway.iter().enumerate() {
            let key = |k: &str| format!("gateway[{i}].{k}");
            if !names.insert(g.name.clone()) {
                return Err(bad(&key("name"), format!("\"{}\" is named twice", g.name)));
            }
            if !plain_host(&g.address) || !g.address.contains(':') {
                return Err(bad(&key("address"), format!("\"{}\" is not host:port", g.address)));
            }
            gateways.push(SipGateway {
                name: g.name.clone(),
                address: g.address.clone(),
                transport: transport(g.transport.as_deref()).map_err(|r| bad(&key("transport"), r))?,
                mwi: g.mwi,
            });
        }
        let mut groups = Vec::new();
        let mut group_names = HashSet::new();
        for (i, g) in f.group.iter().enumerate() {
            let key = |k: &str| format!("group[{i}].{k}");
            if !group_names.insert(g.name.clone()) {
                return Err(bad(&key("name"), format!("\"{}\" is named twice", g.name)));
            }
            let domain = || -> Result<String, ConfigError> {
                match &g.domain {
                    Some(d) if plain_host(d) => Ok(d.clone()),
                    Some(d) => Err(bad(&key("domain"), format!("\"{d}\" is not a host name"))),
                    None => Err(bad(&key("domain"), format!("a {} group needs its domain", g.delivery))),
                }
            };
            let t = transport(g.transport.as_deref()).map_err(|r| bad(&key("transport"), r))?;
            let delivery = match g.delivery.as_str() {
                "trunk" => {
                    if g.gateways.is_empty() {
                        return Err(bad(&key("gateways"), "a trunk group needs at least one gateway".into()));
                    }
                    let ids = g
                        .gateways
                        .iter()
                        .map(|n| {
                            gateways
                                .iter()
                                .position(|x| &x.name == n)
                                .ok_or_else(|| bad(&key("gateways"), format!("no [[gateway]] is named \"{n}\"")))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Delivery::Trunk { gateways: ids, domain: domain()? }
                }
                "phone" => match &g.phone {
                    Some(p) if p.starts_with("sip:") && p.contains("{line}") => {
                        Delivery::Phone { phone: p.clone(), transport: t }
                    }
                    _ => {
                        return Err(bad(
                            &key("phone"),
                            "needs a SIP URI with {line}, e.g. sip:{line}@192.0.2.20".into(),
                        ));
                    }
                },
                "publish" => match &g.server {
                    Some(s) if s.starts_with("sip:") => Delivery::Publish {
                        server: s.clone(),
                        domain: domain()?,
                        transport: t,
                        expires: g.expires.unwrap_or(3600).clamp(60, 86_400),
                    },
                    _ => return Err(bad(&key("server"), "needs the presence server as a SIP URI".into())),
                },
                "subscribe" => Delivery::Subscribe { domain: domain()? },
                other => {
                    return Err(bad(
                        &key("delivery"),
                        format!("\"{other}\" is not trunk, phone, publish or subscribe"),
                    ));
                }
            };
            groups.push(Group { name: g.name.clone(), mwi: g.mwi, delivery });
        }
        if groups.is_empty() {
            return Err(bad("group", "no [[group]]: lamps would go nowhere".into()));
        }
        if !(0.5..=24.0 * 7.0).contains(&f.lamps.refresh_hours) {
            return Err(bad("lamps.refresh_hours", "between 0.5 and 168".into()));
        }
        if f.lamps.rate_per_second <= 0.0 || f.lamps.rate_per_gateway <= 0.0 {
            return Err(bad("lamps.rate_per_second", "rates must be above 0".into()));
        }
        let directory = match (&f.directory.file, f.directory.ldap) {
            (Some(file), None) => DirectorySource::File(rel(file)),
            (None, Some(l)) => {
                if !(l.url.starts_with("ldap://") || l.url.starts_with("ldaps://")) {
                    return Err(bad("directory.ldap.url", "must be ldap:// or ldaps://".into()));
                }
                if l.url.starts_with("ldap://")
                    && l.bind_dn.is_some()
                    && !l.url.contains("127.0.0.1")
                    && !l.url.contains("localhost")
                    && !l.url.contains("[::1]")
                {
                    return Err(bad(
                        "directory.ldap.url",
                        "a password goes to a remote server over ldaps:// only".into(),
                    ));
                }
                if l.line_last_digits.is_some_and(|n| n == 0 || n > 64) {
                    return Err(bad("directory.ldap.line_last_digits", "1 to 64".into()));
                }
                DirectorySource::Ldap(crate::ldap::LdapSource {
                    url: l.url,
                    bind_dn: l.bind_dn,
                    base: l.base,
                    filter: l.filter,
                    address_attribute: l.address_attribute,
                    line_attribute: l.line_attribute,
                    group_attribute: l.group_attribute,
                    line_last_digits: l.line_last_digits,
                    timeout: Duration::from_secs(l.timeout_secs.clamp(1, 300)),
                })
            }
            _ => return Err(bad("directory", "give either file or ldap".into())),
        };
        Ok(GatewayConfig {
            access,
            ca_file,
            directory,
            directory_every: Duration::from_secs(f.directory.every_secs.clamp(1, 86_400)),
            sip_listen,
            sip_tcp,
            http_listen,
            gateways,
            groups,
            refresh_every: Duration::from_secs_f64(f.lamps.refresh_hours * 3600.0),
            rate_global: f.lamps.rate_per_second,
            rate_per_gateway: f.lamps.rate_per_gateway,
            // the file's choice, else systemd's StateDirectory=, else the packaged default
            state_dir: f.state.map(|s| rel(&s.dir)).unwrap_or_else(|| {
                std::env::var("STATE_DIRECTORY")
                    .ok()
                    .and_then(|d| d.split(':').next().filter(|d| !d.is_empty()).map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from("/var/lib/lamplighter-gateway"))
            }),
        })
    }

    /// A group by name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [exchange]
        ews_url = "https://exch.example.test/EWS/Exchange.asmx"
        account = "EXAMPLE\\svc-lamp"
        [directory]
        file = "directory.toml"
        [[gateway]]
        name = "a"
        address = "192.0.2.10:5060"
        transport = "tcp"
        [[gateway]]
        name = "b"
        address = "192.0.2.11:5060"
        [[group]]
        name = "default"
        delivery = "trunk"
        gateways = ["a", "b"]
        domain = "pbx.example.test"
        [[group]]
        name = "desk"
        delivery = "subscribe"
        domain = "example.test"
    "#;

    #[test]
    fn a_good_file_reads_with_defaults() {
        let c = GatewayConfig::parse(GOOD, std::path::Path::new("/etc/lamplighter")).expect("good");
        assert!(matches!(c.access, MailboxAccess::Ews { auth: Auth::Ntlm, .. }));
        assert_eq!(c.directory, DirectorySource::File(PathBuf::from("/etc/lamplighter/directory.toml")));
        assert_eq!(c.directory_every, Duration::from_secs(60), "seed 000: every minute");
        assert_eq!(c.refresh_every, Duration::from_secs(12 * 3600), "seed 001: every 12 hours");
        assert_eq!(c.gateways[0].uri(), "sip:192.0.2.10:5060;transport=tcp");
        assert_eq!(
            c.group("default").map(|g| &g.delivery),
            Some(&Delivery::Trunk { gateways: vec![0, 1], domain: "pbx.example.test".into() })
        );
    }

    #[test]
    fn microsoft_365_reads_with_notifications() {
        let text = GOOD.replace(
            "[exchange]\n        ews_url = \"https://exch.example.test/EWS/Exchange.asmx\"\n        account = \"EXAMPLE\\\\svc-lamp\"\n",
            "[graph]\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"3b8f2a4c-7d1e\"\n[graph.notifications]\nurl = \"https://lamp.contoso.com/graph\"\nlisten = \"0.0.0.0:8443\"\n",
        );
        let c = GatewayConfig::parse(&text, std::path::Path::new(".")).expect("good");
        let MailboxAccess::Graph(g) = c.access else { panic!("graph") };
        assert_eq!(g.authority, "https://login.microsoftonline.com/contoso.onmicrosoft.com");
        assert_eq!(g.graph_url, "https://graph.microsoft.com/v1.0");
        let n = g.notifications.expect("notifications");
        assert!(n.tls);
        assert_eq!(n.lifetime, Duration::from_secs(72 * 3600));
        assert_eq!(n.poll_every, Duration::from_secs(900));
        let plain = text.replace("https://lamp.contoso.com", "http://lamp.contoso.com");
        assert!(matches!(
            GatewayConfig::parse(&plain, std::path::Path::new(".")),
            Err(ConfigError::Invalid { key, .. }) if key == "graph.notifications.url"
        ));
    }

    #[test]
    fn mistakes_name_their_key() {
        let cases = [
            (GOOD.replace("gateways = [\"a\", \"b\"]", "gateways = [\"a\", \"c\"]"), "group[0].gateways"),
            (GOOD.replace("delivery = \"subscribe\"", "delivery = \"fax\""), "group[1].delivery"),
            (GOOD.replace("domain = \"example.test\"", "domain = \"exa mple\""), "group[1].domain"),
            (GOOD.replace("address = \"192.0.2.11:5060\"", "address = \"sip:x@y\""), "gateway[1].address"),
            (GOOD.replace("transport = \"tcp\"", "transport = \"sctp\""), "gateway[0].transport"),
            (GOOD.replace("https://exch", "ftp://exch"), "exchange.ews_url"),
            (GOOD.replace("[directory]", "[graph]\ntenant = \"contoso.com\"\nclient_id = \"x\"\n[directory]"), "exchange"),
            (GOOD.replace("[exchange]", "[graph]\ntenant = \"common\"\nclient_id = \"x\"\n[old]").replace("[old]\n        ews_url = \"https://exch.example.test/EWS/Exchange.asmx\"\n        account = \"EXAMPLE\\\\svc-lamp\"\n", ""), "graph.tenant"),
        ];
        for (text, key) in cases {
            match GatewayConfig::parse(&text, std::path::Path::new(".")) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        let unknown = GOOD.replace("[directory]", "[directory]\npassword = \"x\"");
        assert!(
            matches!(GatewayConfig::parse(&unknown, std::path::Path::new(".")), Err(ConfigError::Syntax { .. })),
            "unknown keys (a password, say) are refused"
        );
    }
}
