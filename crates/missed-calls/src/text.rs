//! Lexing shared by the SIP header parsers: unfolding, splitting lists at
//! commas outside `<…>` and quotes, `;param=value` lists, name-addr, URI
//! headers and percent-decoding. Tolerant of case and whitespace, strict
//! about structure: an unbalanced `<` or quote is an error.

use crate::ParseError;

/// Joins folded header lines (a line break followed by spaces or tabs) into one line.
pub(crate) fn unfold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\r' || c == '\n' {
            while matches!(chars.peek(), Some('\r' | '\n')) {
                chars.next();
            }
            if matches!(chars.peek(), Some(' ' | '\t')) {
                while matches!(chars.peek(), Some(' ' | '\t')) {
                    chars.next();
                }
                out.push(' ');
            } else {
                out.push('\n');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits a header value at commas that are outside `<…>` and `"…"`.
pub(crate) fn split_list(s: &str) -> Result<Vec<&str>, ParseError> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in s.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth < 0 {
                    return Err(ParseError::Syntax { what: "list", detail: "'>' without '<'".into() });
                }
            }
            ',' if depth == 0 => {
                parts.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(ParseError::Syntax { what: "list", detail: "'<' without '>'".into() });
    }
    // An unterminated quote at the very end (seen in a real Lync trace) is
    // taken to run to the end of the value; inside the value it is an error.
    parts.push(s[start..].trim());
    Ok(parts.into_iter().filter(|p| !p.is_empty()).collect())
}

/// One `;name[=value]` parameter; the name lower-cased, quotes removed from the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Lower-case name.
    pub name: String,
    /// Value without surrounding quotes, if any was given.
    pub value: Option<String>,
}

/// Parses `;a=1;b="x;y";c` (the leading `;` optional).
pub(crate) fn parse_params(s: &str) -> Result<Vec<Param>, ParseError> {
    let mut params = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        rest = rest.strip_prefix(';').unwrap_or(rest).trim_start();
        if rest.is_empty() {
            break;
        }
        let name_end = rest.find(['=', ';']).unwrap_or(rest.len());
        let name = rest[..name_end].trim();
        if name.is_empty() || !name.chars().all(is_token_char) {
            return Err(ParseError::Syntax { what: "parameter", detail: format!("bad parameter name {name:?}") });
        }
        rest = &rest[name_end..];
        let mut value = None;
        if let Some(after_eq) = rest.strip_prefix('=') {
            let after_eq = after_eq.trim_start();
            if let Some(q) = after_eq.strip_prefix('"') {
                let (text, used) = quoted_string(q);
                value = Some(text);
                rest = q[used..].trim_start();
            } else {
                let end = after_eq.find(';').unwrap_or(after_eq.len());
                value = Some(after_eq[..end].trim().to_string());
                rest = &after_eq[end..];
            }
        }
        params.push(Param { name: name.to_ascii_lowercase(), value });
    }
    Ok(params)
}

/// Reads a quoted string's body (after the opening quote): the text, and how
/// many bytes were used including the closing quote (or all, when unterminated).
fn quoted_string(s: &str) -> (String, usize) {
    let mut out = String::new();
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return (out, i + 1);
        } else {
            out.push(c);
        }
    }
    (out, s.len())
}

pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

/// A name-addr (`"Name" <uri>;params`) or addr-spec (`uri;params`).
pub(crate) struct NameAddr<'a> {
    pub(crate) display: Option<String>,
    pub(crate) uri: &'a str,
    pub(crate) params: &'a str,
}

/// Parses a name-addr; with `require_brackets` an addr-spec is an error.
pub(crate) fn parse_name_addr(s: &str, require_brackets: bool) -> Result<NameAddr<'_>, ParseError> {
    let s = s.trim();
    if let Some(open) = s.find('<') {
        let display = s[..open].trim();
        let display = display
            .strip_prefix('"')
            .map(|d| quoted_string(d).0)
            .or_else(|| (!display.is_empty()).then(|| display.to_string()));
        let close =
            s[open..].find('>').ok_or(ParseError::Syntax { what: "name-addr", detail: "'<' without '>'".into() })?
                + open;
        let uri = s[open + 1..close].trim();
        if uri.is_empty() {
            return Err(ParseError::Syntax { what: "name-addr", detail: "empty URI".into() });
        }
        Ok(NameAddr { display, uri, params: &s[close + 1..] })
    } else if require_brackets {
        Err(ParseError::Syntax { what: "name-addr", detail: format!("expected <uri> in {s:?}") })
    } else {
        let end = s.find(';').unwrap_or(s.len());
        let uri = s[..end].trim();
        if uri.is_empty() {
            return Err(ParseError::Syntax { what: "addr-spec", detail: "empty URI".into() });
        }
        Ok(NameAddr { display: None, uri, params: &s[end..] })
    }
}

/// Decodes `%XX` escapes; invalid escapes are kept as written.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The values of every header named one of `names` (case-insensitive, compact
/// forms included by the caller) in a raw header block, folded lines joined.
pub fn header_values(block: &str, names: &[&str]) -> Vec<String> {
    let unfolded = unfold(block);
    let mut values = Vec::new();
    for line in unfolded.lines() {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                values.push(value.trim().to_string());
            }
        }
    }
    values
}

/// Every header of a raw SIP message or header block, folded lines joined,
/// in order (the request or status line is skipped, the body left out).
pub fn headers(message: &str) -> Vec<(String, String)> {
    let head = message.split("\r\n\r\n").next().unwrap_or(message);
    let head = head.split("\n\n").next().unwrap_or(head);
    unfold(head)
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
        .filter(|(n, _)| !n.is_empty() && !n.contains(' '))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_a_message_with_folded_lines() {
        let h = headers("INVITE sip:a@b SIP/2.0\r\nVia: x\r\nHistory-Info: <sip:a@b>;\r\n   index=1\r\n\r\nbody: no");
        assert_eq!(
            h,
            [("Via".to_string(), "x".to_string()), ("History-Info".to_string(), "<sip:a@b>; index=1".to_string())]
        );
    }

    #[test]
    fn unfold_joins_continuations_only() {
        assert_eq!(unfold("a: 1;\r\n   x=2\r\nb: 3"), "a: 1; x=2\nb: 3");
    }

    #[test]
    fn split_respects_brackets_and_quotes() {
        let parts = split_list(r#"<sip:a@x?h=1,2>;p="q,r", <sip:b@y>"#).expect("split");
        assert_eq!(parts, vec![r#"<sip:a@x?h=1,2>;p="q,r""#, "<sip:b@y>"]);
        assert!(split_list("<sip:a@x").is_err());
        assert!(split_list("sip:a@x>").is_err());
    }

    #[test]
    fn params_with_quotes_and_flags() {
        let p = parse_params(r#";index=1.1; ms-target-phone="tel:+49;ext=613";lr"#).expect("params");
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].value.as_deref(), Some("tel:+49;ext=613"));
        assert_eq!(p[2], Param { name: "lr".into(), value: None });
        assert!(parse_params(";=1").is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("SIP%3Bcause%3D302%3Btext%3D%22Moved%20Temporarily%22"),
            "SIP;cause=302;text=\"Moved Temporarily\""
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
