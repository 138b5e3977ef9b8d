//! Where a mailbox lives, for `backend = "auto"`: in Exchange Online
//! (then Microsoft Graph), or on an Exchange server of its own (then EWS).
//!
//! Two unauthenticated questions, both Microsoft's own:
//! 1. **Does the address's domain belong to an Entra tenant?** The
//!    authority's OpenID configuration for the domain
//!    (`https://login.microsoftonline.com/<domain>/v2.0/.well-known/openid-configuration`)
//!    exists only then. A domain of no tenant is on-premises.
//! 2. **Where does Autodiscover v2 send EWS for this address?**
//!    (`https://outlook.office365.com/autodiscover/autodiscover.json/v1.0/<address>?Protocol=EWS`).
//!    Exchange Online answers with its own EWS host for a cloud mailbox and
//!    with the on-premises URL for a hybrid organisation's on-premises one.
//!
//! A mailbox is in Exchange Online when both say so; a tenant alone is not
//! enough (hybrid), nor is the Autodiscover answer alone (it names Exchange
//! Online for domains it does not know).

use std::time::Duration;

/// Each question's time limit.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Answers are small.
const LIMIT: usize = 64 << 10;

/// Exchange Online's EWS hosts (worldwide, US government, DoD, China, Germany).
const EXCHANGE_ONLINE_HOSTS: &[&str] = &[
    "outlook.office365.com",
    "outlook.office.com",
    "outlook.office365.us",
    "webmail.apps.mil",
    "partner.outlook.cn",
    "outlook.office.de",
];

/// Where the mailbox lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Home {
    /// Exchange Online: Microsoft Graph reaches it.
    ExchangeOnline,
    /// Elsewhere: EWS, at this URL when Autodiscover v2 named one.
    OnPremises {
        /// The EWS URL Autodiscover v2 gave, if any.
        ews_url: Option<String>,
        /// Why, in words (for `check` and the log).
        why: String,
    },
}

/// Autodiscover v2's host for a Graph service root: Exchange Online's for
/// Microsoft's clouds, else the root's own origin (a simulator, a proxy).
pub fn discovery_origin(graph_root: &str) -> String {
    let Ok(uri) = graph_root.parse::<hyper::Uri>() else { return "https://outlook.office365.com".into() };
    match uri.host() {
        Some("graph.microsoft.com") | None => "https://outlook.office365.com".into(),
        Some("graph.microsoft.us") => "https://outlook.office365.us".into(),
        Some("dod-graph.microsoft.us") => "https://webmail.apps.mil".into(),
        Some("microsoftgraph.chinacloudapi.cn") => "https://partner.outlook.cn".into(),
        Some(host) => {
            let port = uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}", uri.scheme_str().unwrap_or("https"))
        }
    }
}

/// The authority's origin (`https://login.microsoftonline.com`).
fn origin(url: &str) -> String {
    match url.parse::<hyper::Uri>() {
        Ok(u) => format!(
            "{}://{}",
            u.scheme_str().unwrap_or("https"),
            u.authority().map(|a| a.as_str()).unwrap_or("login.microsoftonline.com")
        ),
        Err(_) => "https://login.microsoftonline.com".into(),
    }
}

async fn get(tls: &lamplighter_https::Tls, url: &str) -> Result<(u16, Vec<u8>), crate::GraphClientError> {
    let request = hyper::Request::get(url)
        .header("accept", "application/json")
        .body(Vec::new())
        .map_err(|e| crate::GraphClientError::Root(format!("{url}: {e}")))?;
    let answer = lamplighter_https::exchange(tls, request, None, TIMEOUT, LIMIT).await?;
    Ok((answer.status().as_u16(), answer.into_body()))
}

/// Asks both questions for `email`.
///
/// # Errors
/// When a question gets no answer (the network, TLS); a clear "no" is an answer.
pub async fn locate(
    email: &str,
    graph_root: &str,
    authority: &str,
    extra_ca_pem: Option<&[u8]>,
) -> Result<Home, crate::GraphClientError> {
    let tls = lamplighter_https::Tls::new(extra_ca_pem)?;
    let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or(email);
    let encode = lamplighter_graph_wire::request::encode_segment;
    let tenant_url = format!("{}/{}/v2.0/.well-known/openid-configuration", origin(authority), encode(domain));
    let (status, _) = get(&tls, &tenant_url).await?;
    if status != 200 {
        return Ok(Home::OnPremises {
            ews_url: None,
            why: format!("{domain} belongs to no Microsoft Entra tenant (HTTP {status} from {tenant_url})"),
        });
    }
    let disco =
        format!("{}/autodiscover/autodiscover.json/v1.0/{}?Protocol=EWS", discovery_origin(graph_root), encode(email));
    let (status, body) = get(&tls, &disco).await?;
    let url = (status == 200)
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten()
        .and_then(|v| v["Url"].as_str().map(str::to_string));
    let Some(url) = url else {
        return Ok(Home::OnPremises {
            ews_url: None,
            why: format!("Autodiscover v2 did not name an EWS URL for {email} (HTTP {status})"),
        });
    };
    let host = url.parse::<hyper::Uri>().ok().and_then(|u| u.host().map(str::to_ascii_lowercase));
    if host.as_deref().is_some_and(|h| EXCHANGE_ONLINE_HOSTS.contains(&h)) {
        Ok(Home::ExchangeOnline)
    } else {
        Ok(Home::OnPremises {
            why: format!("Autodiscover v2 sends {email} to {url}, an Exchange server of the organisation's own"),
            ews_url: Some(url),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_discovery_host_follows_the_cloud() {
        assert_eq!(discovery_origin("https://graph.microsoft.com/v1.0"), "https://outlook.office365.com");
        assert_eq!(discovery_origin("https://graph.microsoft.us/v1.0"), "https://outlook.office365.us");
        assert_eq!(discovery_origin("http://127.0.0.1:4711/v1.0"), "http://127.0.0.1:4711");
        assert_eq!(origin("https://login.microsoftonline.com/organizations"), "https://login.microsoftonline.com");
        assert_eq!(origin("http://127.0.0.1:9/organizations"), "http://127.0.0.1:9");
    }
}
