//! The one comparison of SIP URIs the MWI side needs: the address of record.

/// `sip:613@Host:5060;transport=udp` → `613@host:5060` (case of the user kept).
pub fn aor(uri: &str) -> String {
    let u = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let u = u.split(['?', ';']).next().unwrap_or(u);
    let u = u.strip_prefix("sips:").or_else(|| u.strip_prefix("sip:")).unwrap_or(u);
    match u.split_once('@') {
        Some((user, host)) => format!("{user}@{}", host.to_ascii_lowercase()),
        None => u.to_ascii_lowercase(),
    }
}

/// The host of a SIP URI (`sip:613@[::1]:5070;x` → `::1`).
pub fn host(uri: &str) -> Option<String> {
    let a = aor(uri);
    let hostport = a.rsplit_once('@').map(|(_, h)| h).unwrap_or(&a);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => hostport.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aor_and_host() {
        assert_eq!(aor("<sip:613@Host.Example:5060;transport=udp>"), "613@host.example:5060");
        assert_eq!(host("sip:613@127.0.0.2:5070;transport=tcp").as_deref(), Some("127.0.0.2"));
        assert_eq!(host("sip:613@[::1]:5070").as_deref(), Some("::1"));
        assert_eq!(host("sip:example.org").as_deref(), Some("example.org"));
    }
}
