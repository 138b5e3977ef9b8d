//! Autodiscover: from an e-mail address to the EWS URL, in the documented
//! order (Active Directory SCP lookups and DNS SRV records are not tried):
//!
//! 1. `https://<domain>/autodiscover/autodiscover.svc` (SOAP), then `.xml` (POX);
//! 2. `https://autodiscover.<domain>/autodiscover/autodiscover.svc`, then `.xml`;
//! 3. an unauthenticated GET of `http://autodiscover.<domain>/autodiscover/autodiscover.xml`
//!    whose redirect, if it points to HTTPS, is asked with credentials.
//!
//! The answer can be cached ([`cached`], [`remember`]): Autodiscover is slow and
//! fragile, and the URL rarely changes.
//!
//! Redirects to another address or URL are followed, at most
//! [`MAX_REDIRECTS`] in all. Credentials only go over verified HTTPS (the
//! transport refuses otherwise, loopback aside). A refused sign-in stops the
//! search at once: trying the same wrong password on every candidate is how
//! accounts get locked.

use crate::http::{Http, Target, read_body};
use crate::{ClientError, Credentials};
use bytes::Bytes;
use lamplighter_ews_wire::autodiscover::{Answer, parse_pox, parse_soap, pox_request, soap_request};
use std::time::Duration;

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Soap,
    Pox,
}

fn kind_of(url: &str) -> Kind {
    if url.to_ascii_lowercase().ends_with(".svc") { Kind::Soap } else { Kind::Pox }
}

async fn ask(
    http: &Http,
    creds: &Credentials,
    email: &str,
    url: &str,
    timeout: Duration,
) -> Result<Answer, ClientError> {
    let target = Target::parse(url)?;
    let kind = kind_of(url);
    let (body, headers): (String, Vec<(&str, String)>) = match kind {
        Kind::Soap => (
            soap_request(email, url),
            vec![(
                "soapaction",
                "\"http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings\"".into(),
            )],
        ),
        Kind::Pox => (pox_request(email), Vec::new()),
    };
    let reply = tokio::time::timeout(timeout, http.send("POST", &target, Bytes::from(body), &headers, creds, false))
        .await
        .map_err(|_| ClientError::Timeout { target: url.to_string(), secs: timeout.as_secs() })??;
    let (status, headers, body, conn) = reply.into_parts();
    let bytes = read_body(body, 1 << 20, timeout, url).await?;
    http.checkin(conn);
    match status {
        200 => Ok(match kind {
            Kind::Soap => parse_soap(&bytes)?,
            Kind::Pox => parse_pox(&bytes)?,
        }),
        301 | 302 | 307 | 308 => {
            let location = headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            Ok(Answer::RedirectUrl(location))
        }
        s => Err(ClientError::Http { target: url.to_string(), status: s, retry_after: None }),
    }
}

/// Finds the EWS URL for `email`.
pub(crate) async fn discover(
    http: &Http,
    creds: &Credentials,
    email: &str,
    timeout: Duration,
) -> Result<String, ClientError> {
    let mut email = email.trim().to_string();
    let mut tried: Vec<String> = Vec::new();
    let mut redirects = 0usize;
    'address: loop {
        let Some((_, domain)) = email.rsplit_once('@') else {
            return Err(ClientError::Autodiscover { email, tried: "not an e-mail address".into() });
        };
        let domain = domain.to_ascii_lowercase();
        let mut queue: std::collections::VecDeque<String> = [
            format!("https://{domain}/autodiscover/autodiscover.svc"),
            format!("https://{domain}/autodiscover/autodiscover.xml"),
            format!("https://autodiscover.{domain}/autodiscover/autodiscover.svc"),
            format!("https://autodiscover.{domain}/autodiscover/autodiscover.xml"),
        ]
        .into();
        let mut http_redirect_tried = false;
        loop {
            let Some(url) = queue.pop_front() else {
                if http_redirect_tried {
                    break;
                }
                http_redirect_tried = true;
                // phase 3: no credentials over plain HTTP, only to learn where to go
                let plain = format!("http://autodiscover.{domain}/autodiscover/autodiscover.xml");
                match Target::parse(&plain) {
                    Ok(t) => match tokio::time::timeout(
                        timeout,
                        http.send("GET", &t, Bytes::new(), &[], &Credentials::None, false),
                    )
                    .await
                    {
                        Ok(Ok(reply)) => {
                            let (status, headers, _, _) = reply.into_parts();
                            let location = headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
                            if matches!(status, 301 | 302 | 307 | 308) && location.starts_with("https://") {
                                queue.push_back(location.to_string());
                            } else {
                                tried.push(format!("{plain}: HTTP {status} without an HTTPS redirect"));
                            }
                        }
                        Ok(Err(e)) => tried.push(format!("{plain}: {e}")),
                        Err(_) => tried.push(format!("{plain}: no answer")),
                    },
                    Err(e) => tried.push(format!("{plain}: {e}")),
                }
                continue;
            };
            match ask(http, creds, &email, &url, timeout).await {
                Ok(Answer::EwsUrl(u)) => {
                    log::info!("Autodiscover: {email} uses {u} (from {url})");
                    return Ok(u);
                }
                Ok(Answer::RedirectAddress(a)) => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        tried.push(format!("{url}: too many redirects"));
                        break;
                    }
                    tried.push(format!("{url}: redirect to {a}"));
                    email = a;
                    continue 'address;
                }
                Ok(Answer::RedirectUrl(u)) => {
                    redirects += 1;
                    if redirects > MAX_REDIRECTS {
                        tried.push(format!("{url}: too many redirects"));
                        break;
                    }
                    if u.starts_with("https://") {
                        tried.push(format!("{url}: redirect to {u}"));
                        queue.push_front(u);
                    } else {
                        tried.push(format!("{url}: redirect to a non-HTTPS URL ignored"));
                    }
                }
                Ok(Answer::Error(m)) => tried.push(format!("{url}: {m}")),
                Err(e @ ClientError::Auth { .. }) => return Err(e),
                Err(e) => tried.push(format!("{url}: {e}")),
            }
        }
        return Err(ClientError::Autodiscover { email, tried: tried.join("; ") });
    }
}

/// The cached EWS URL for `email`, if the cache file has one (lines `email<TAB>url`).
pub fn cached(cache: &std::path::Path, email: &str) -> Option<String> {
    std::fs::read_to_string(cache).ok()?.lines().find_map(|l| {
        let (e, u) = l.split_once('\t')?;
        (e.eq_ignore_ascii_case(email.trim()) && u.starts_with("https://")).then(|| u.trim().to_string())
    })
}

/// Keeps `url` as `email`'s EWS URL in the cache file (replaced atomically).
pub fn remember(cache: &std::path::Path, email: &str, url: &str) -> std::io::Result<()> {
    let mut lines: Vec<String> = std::fs::read_to_string(cache)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_once('\t').is_some_and(|(e, _)| !e.eq_ignore_ascii_case(email.trim())))
        .map(str::to_string)
        .collect();
    lines.push(format!("{}\t{url}", email.trim()));
    if let Some(dir) = cache.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = cache.with_extension("tmp");
    std::fs::write(&tmp, lines.join("\n") + "\n")?;
    std::fs::rename(tmp, cache)
}
