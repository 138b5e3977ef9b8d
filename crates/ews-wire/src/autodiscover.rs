//! Autodiscover, sans-IO: the POX request (`autodiscover.xml`) and the SOAP
//! `GetUserSettings` request (`autodiscover.svc`), and their answers read
//! into one [`Answer`]: the EWS URL, or a redirect to another address or
//! URL, or the server's error. Which endpoints to try, in which order, and
//! with which credentials is the client's business (`ews-client`).
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/exchange-web-services/autodiscover-for-exchange>.

use crate::EwsError;
use crate::request::escape;
use crate::xml::{Node, Reader};

/// What an Autodiscover endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The EWS URL (external preferred, as Lamplighter runs outside the server's network as often as inside).
    EwsUrl(String),
    /// Start again with this address.
    RedirectAddress(String),
    /// Ask this Autodiscover URL instead.
    RedirectUrl(String),
    /// The server's error (unknown user, …).
    Error(String),
}

/// The POX request body for `email`.
pub fn pox_request(email: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>
"#,
        escape(email)
    )
}

/// The SOAP `GetUserSettings` request body for `email`, sent to `url`.
pub fn soap_request(email: &str, url: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:a="http://schemas.microsoft.com/exchange/2010/Autodiscover" xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header><a:RequestedServerVersion>Exchange2013</a:RequestedServerVersion><wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action><wsa:To>{}</wsa:To></soap:Header><soap:Body><a:GetUserSettingsRequestMessage><a:Request><a:Users><a:User><a:Mailbox>{}</a:Mailbox></a:User></a:Users><a:RequestedSettings><a:Setting>ExternalEwsUrl</a:Setting><a:Setting>InternalEwsUrl</a:Setting><a:Setting>GroupingInformation</a:Setting></a:RequestedSettings></a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>
"#,
        escape(url),
        escape(email)
    )
}

/// Collects (path of local names, text) for every leaf element: both answers are small.
fn leaves(bytes: &[u8]) -> Result<Vec<(Vec<String>, String)>, EwsError> {
    let mut r = Reader::new(bytes)?;
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut out = Vec::new();
    loop {
        match r.next()? {
            Node::Start { tag, .. } => {
                path.push(String::from_utf8_lossy(tag.local_name().as_ref()).into_owned());
                text.clear();
            }
            Node::Text(t) => text.push_str(&t.into_str()?),
            Node::End => {
                out.push((path.clone(), std::mem::take(&mut text).trim().to_string()));
                path.pop();
            }
            Node::Eof => break,
        }
    }
    if out.is_empty() {
        return Err(EwsError::Malformed("empty Autodiscover answer".into()));
    }
    Ok(out)
}

fn ends_with(path: &[String], tail: &[&str]) -> bool {
    path.len() >= tail.len() && path[path.len() - tail.len()..].iter().zip(tail).all(|(a, b)| a == b)
}

/// Reads a POX answer.
pub fn parse_pox(bytes: &[u8]) -> Result<Answer, EwsError> {
    let leaves = leaves(bytes)?;
    let get = |tail: &[&str]| leaves.iter().find(|(p, v)| ends_with(p, tail) && !v.is_empty()).map(|(_, v)| v.clone());
    match get(&["Account", "Action"]).as_deref() {
        Some("redirectAddr") => {
            return get(&["Account", "RedirectAddr"])
                .map(Answer::RedirectAddress)
                .ok_or_else(|| EwsError::Malformed("redirectAddr without RedirectAddr".into()));
        }
        Some("redirectUrl") => {
            return get(&["Account", "RedirectUrl"])
                .map(Answer::RedirectUrl)
                .ok_or_else(|| EwsError::Malformed("redirectUrl without RedirectUrl".into()));
        }
        _ => {}
    }
    // EXPR (outside) first, then EXCH; each Protocol's Type precedes its EwsUrl
    let mut current_type = String::new();
    let mut urls: Vec<(String, String)> = Vec::new();
    for (p, v) in &leaves {
        if ends_with(p, &["Protocol", "Type"]) {
            current_type = v.clone();
        } else if ends_with(p, &["Protocol", "EwsUrl"]) && !v.is_empty() {
            urls.push((current_type.clone(), v.clone()));
        }
    }
    for want in ["EXPR", "EXCH"] {
        if let Some((_, u)) = urls.iter().find(|(t, _)| t == want) {
            return Ok(Answer::EwsUrl(u.clone()));
        }
    }
    if let Some(m) = get(&["Error", "Message"]) {
        return Ok(Answer::Error(m));
    }
    Err(EwsError::Malformed("Autodiscover answer without an EWS URL".into()))
}

/// Reads a SOAP `GetUserSettings` answer.
pub fn parse_soap(bytes: &[u8]) -> Result<Answer, EwsError> {
    let leaves = leaves(bytes)?;
    if leaves.iter().any(|(p, _)| p.iter().any(|n| n == "Fault")) {
        let msg = leaves.iter().find(|(p, _)| p.last().is_some_and(|n| n == "faultstring")).map(|(_, v)| v.clone());
        return Ok(Answer::Error(msg.unwrap_or_else(|| "SOAP fault".into())));
    }
    let get = |tail: &[&str]| leaves.iter().find(|(p, v)| ends_with(p, tail) && !v.is_empty()).map(|(_, v)| v.clone());
    let code = get(&["UserResponse", "ErrorCode"]).or_else(|| get(&["Response", "ErrorCode"]));
    match code.as_deref() {
        Some("RedirectAddress") => {
            return get(&["UserResponse", "RedirectTarget"])
                .map(Answer::RedirectAddress)
                .ok_or_else(|| EwsError::Malformed("RedirectAddress without a target".into()));
        }
        Some("RedirectUrl") => {
            return get(&["UserResponse", "RedirectTarget"])
                .map(Answer::RedirectUrl)
                .ok_or_else(|| EwsError::Malformed("RedirectUrl without a target".into()));
        }
        Some("NoError") | None => {}
        Some(other) => {
            let msg = get(&["UserResponse", "ErrorMessage"]).unwrap_or_default();
            return Ok(Answer::Error(format!("{other}: {msg}")));
        }
    }
    // UserSetting: Name then Value
    let mut name = String::new();
    let mut settings: Vec<(String, String)> = Vec::new();
    for (p, v) in &leaves {
        if ends_with(p, &["UserSetting", "Name"]) {
            name = v.clone();
        } else if ends_with(p, &["UserSetting", "Value"]) {
            settings.push((name.clone(), v.clone()));
        }
    }
    for want in ["ExternalEwsUrl", "InternalEwsUrl"] {
        if let Some((_, u)) = settings.iter().find(|(n, u)| n == want && !u.is_empty()) {
            return Ok(Answer::EwsUrl(u.clone()));
        }
    }
    Err(EwsError::Malformed("GetUserSettings answer without an EWS URL".into()))
}
