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

/// `envelope` (made by [`envelope`]) acting as the mailbox `smtp`: the
/// `ExchangeImpersonation` header a service account with the
/// ApplicationImpersonation role sends to reach a user's mailbox.
pub fn impersonating(envelope: &str, smtp: &str) -> String {
    let header = format!(
        "<soap:Header><t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>{}</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>",
        escape(smtp)
    );
    envelope.replacen("<soap:Header>", &header, 1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_goes_first_in_the_header_and_is_escaped() {
        let e = impersonating(&envelope(SERVER_VERSION, "<m:GetFolder/>"), "o'brien&co@example.test");
        assert!(e.contains(
            "<soap:Header><t:ExchangeImpersonation><t:ConnectingSID><t:SmtpAddress>o&apos;brien&amp;co@example.test</t:SmtpAddress></t:ConnectingSID></t:ExchangeImpersonation><t:RequestServerVersion"
        ), "{e}");
        assert_eq!(e.matches("ExchangeImpersonation>").count(), 2);
    }
}
