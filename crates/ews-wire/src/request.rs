//! What every request shares: the SOAP 1.1 envelope with the
//! `RequestServerVersion` header, and escaping of values we put into XML.
//! Each operation's module builds only its body.

/// The `RequestServerVersion` we send: streaming needs Exchange 2010 SP1,
/// and Exchange 2013 SP1 is the oldest server still supported.
pub const SERVER_VERSION: &str = "Exchange2013_SP1";

/// A complete request: the envelope around `body` (one `m:` operation element).
pub fn envelope(server_version: &str, body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">
<soap:Header><t:RequestServerVersion Version="{server_version}"/></soap:Header>
<soap:Body>{body}</soap:Body>
</soap:Envelope>
"#
    )
}

/// `s` escaped for element text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
