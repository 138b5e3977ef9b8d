//! Digest authentication of a challenged request (RFC 3261 §22, RFC 7616,
//! RFC 8760 for SIP).
//!
//! [`Challenge::parse_list`] reads `WWW-Authenticate` / `Proxy-Authenticate`
//! values; [`choose`] picks the strongest supported one (SHA-512-256 ›
//! SHA-256 › MD5, as RFC 8760 asks a client to prefer); [`Nonces`] counts
//! uses of each nonce (`nc`) so a nonce is reused for later requests; and
//! [`authorization`] computes the header value. The client nonce is an input,
//! so results are reproducible and tested against the RFCs' vectors.
//!
//! In the `Authorization` value `qop`, `nc` and `algorithm` are unquoted
//! tokens, as RFC 7616 requires (rsipstack quotes `qop`).

use crate::MwiError;
use md5::Md5;
use sha2::{Digest as _, Sha256, Sha512_256};
use std::collections::HashMap;

/// The hash algorithm of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (the default when none is named).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    fn parse(s: &str) -> Result<Algorithm, MwiError> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "MD5" => Algorithm::Md5,
            "MD5-SESS" => Algorithm::Md5Sess,
            "SHA-256" | "SHA256" => Algorithm::Sha256,
            "SHA-256-SESS" | "SHA256-SESS" => Algorithm::Sha256Sess,
            "SHA-512-256" => Algorithm::Sha512_256,
            "SHA-512-256-SESS" => Algorithm::Sha512_256Sess,
            other => return Err(MwiError::Unsupported(format!("algorithm {other}"))),
        })
    }

    /// The token written in `Authorization`.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => 1,
            Algorithm::Sha256 | Algorithm::Sha256Sess => 2,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => 3,
        }
    }

    fn is_sess(self) -> bool {
        matches!(self, Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess)
    }

    fn hash(self, data: &str) -> String {
        self.hash_bytes(data.as_bytes())
    }

    fn hash_bytes(self, data: &[u8]) -> String {
        let bytes = match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Md5::digest(data).to_vec(),
            Algorithm::Sha256 | Algorithm::Sha256Sess => Sha256::digest(data).to_vec(),
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => Sha512_256::digest(data).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Quality of protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// `auth`.
    Auth,
    /// `auth-int` (the body is hashed too).
    AuthInt,
}

/// One digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm`.
    pub realm: String,
    /// `nonce`.
    pub nonce: String,
    /// `opaque`, echoed back.
    pub opaque: Option<String>,
    /// `algorithm`.
    pub algorithm: Algorithm,
    /// Offered `qop` values (empty: RFC 2069 style).
    pub qop: Vec<Qop>,
    /// `stale=true`: the nonce expired, the credentials were fine.
    pub stale: bool,
}

/// Splits `a=1, b="x,y", c=z` at commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let (mut out, mut quoted, mut start) = (Vec::new(), false, 0);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(s[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(s[start..].trim());
    out.into_iter().filter(|p| !p.is_empty()).collect()
}

impl Challenge {
    /// Parses one `Digest …` challenge value.
    pub fn parse(value: &str) -> Result<Challenge, MwiError> {
        let bad = |d: String| MwiError::Syntax { what: "digest challenge", detail: d };
        let v = value.trim();
        let scheme_end = v.find(char::is_whitespace).ok_or_else(|| bad(format!("{v:?}")))?;
        if !v[..scheme_end].eq_ignore_ascii_case("digest") {
            return Err(MwiError::Unsupported(format!("scheme {}", &v[..scheme_end])));
        }
        let mut params: HashMap<String, String> = HashMap::new();
        for p in split_params(&v[scheme_end..]) {
            let (k, val) = p.split_once('=').ok_or_else(|| bad(format!("parameter {p:?}")))?;
            let val = val.trim();
            let val = match val.strip_prefix('"') {
                Some(q) => q.strip_suffix('"').ok_or_else(|| bad(format!("unterminated quote in {p:?}")))?,
                None => val,
            };
            params.insert(k.trim().to_ascii_lowercase(), val.to_string());
        }
        let realm = params.remove("realm").ok_or_else(|| bad("no realm".into()))?;
        let nonce = params.remove("nonce").ok_or_else(|| bad("no nonce".into()))?;
        let algorithm = match params.remove("algorithm") {
            Some(a) => Algorithm::parse(&a)?,
            None => Algorithm::Md5,
        };
        let mut qop = Vec::new();
        if let Some(q) = params.remove("qop") {
            for item in q.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match item.to_ascii_lowercase().as_str() {
                    "auth" => qop.push(Qop::Auth),
                    "auth-int" => qop.push(Qop::AuthInt),
                    _ => {}
                }
            }
            if qop.is_empty() {
                return Err(MwiError::Unsupported(format!("qop {q}")));
            }
        }
        Ok(Challenge {
            realm,
            nonce,
            opaque: params.remove("opaque"),
            algorithm,
            qop,
            stale: params.remove("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Parses every challenge among several header values; unsupported ones
    /// are skipped unless none is usable.
    pub fn parse_list<S: AsRef<str>>(values: &[S]) -> Result<Vec<Challenge>, MwiError> {
        let mut ok = Vec::new();
        let mut last_err = None;
        for v in values {
            match Challenge::parse(v.as_ref()) {
                Ok(c) => ok.push(c),
                Err(e) => last_err = Some(e),
            }
        }
        match (ok.is_empty(), last_err) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(MwiError::Syntax { what: "digest challenge", detail: "no challenge".into() }),
            _ => Ok(ok),
        }
    }
}

/// The strongest supported challenge (ties: the first offered).
pub fn choose(challenges: &[Challenge]) -> Option<&Challenge> {
    challenges.iter().enumerate().max_by_key(|(i, c)| (c.algorithm.strength(), std::cmp::Reverse(*i))).map(|(_, c)| c)
}

/// Counts how often each nonce was used (`nc`), so a nonce is reused with a
/// growing count rather than causing a new challenge each time.
#[derive(Debug, Default, Clone)]
pub struct Nonces {
    counts: HashMap<String, u32>,
}

impl Nonces {
    /// The next `nc` for this nonce (1 for a new one).
    pub fn next(&mut self, nonce: &str) -> u32 {
        let n = self.counts.entry(nonce.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets a nonce (after `stale=true` or a new challenge).
    pub fn forget(&mut self, nonce: &str) {
        self.counts.remove(nonce);
    }
}

/// What is being authorised.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    /// The SIP method (`NOTIFY`).
    pub method: &'a str,
    /// The digest-uri: the Request-URI as sent.
    pub uri: &'a str,
    /// The body (for `auth-int`).
    pub body: &'a [u8],
}

/// The `Authorization` (or `Proxy-Authorization`) header value.
pub fn authorization(
    challenge: &Challenge,
    username: &str,
    password: &str,
    request: RequestToSign<'_>,
    cnonce: &str,
    nc: u32,
) -> String {
    let alg = challenge.algorithm;
    let mut ha1 = alg.hash(&format!("{username}:{}:{password}", challenge.realm));
    if alg.is_sess() {
        ha1 = alg.hash(&format!("{ha1}:{}:{cnonce}", challenge.nonce));
    }
    let qop = if challenge.qop.contains(&Qop::Auth) {
        Some(Qop::Auth)
    } else if challenge.qop.contains(&Qop::AuthInt) {
        Some(Qop::AuthInt)
    } else {
        None
    };
    let ha2 = match qop {
        Some(Qop::AuthInt) => alg.hash(&format!("{}:{}:{}", request.method, request.uri, alg.hash_bytes(request.body))),
        _ => alg.hash(&format!("{}:{}", request.method, request.uri)),
    };
    let nc_hex = format!("{nc:08x}");
    let response = match qop {
        Some(q) => {
            let q = if q == Qop::Auth { "auth" } else { "auth-int" };
            alg.hash(&format!("{ha1}:{}:{nc_hex}:{cnonce}:{q}:{ha2}", challenge.nonce))
        }
        None => alg.hash(&format!("{ha1}:{}:{ha2}", challenge.nonce)),
    };
    let mut out = format!(
        "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
        challenge.realm,
        challenge.nonce,
        request.uri,
        alg.token()
    );
    if let Some(q) = qop {
        out.push_str(&format!(
            ", qop={}, nc={nc_hex}, cnonce=\"{cnonce}\"",
            if q == Qop::Auth { "auth" } else { "auth-int" }
        ));
    }
    if let Some(o) = &challenge.opaque {
        out.push_str(&format!(", opaque=\"{o}\""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_of(header: &str) -> &str {
        let start = header.find("response=\"").map(|i| i + 10).unwrap_or(0);
        &header[start..start + header[start..].find('"').unwrap_or(0)]
    }

    /// RFC 2617 §3.5 (MD5, qop=auth).
    #[test]
    fn rfc2617_md5_vector() {
        let c = Challenge::parse(r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#).expect("challenge");
        let h = authorization(
            &c,
            "Mufasa",
            "Circle Of Life",
            RequestToSign { method: "GET", uri: "/dir/index.html", body: b"" },
            "0a4f113b",
            1,
        );
        assert_eq!(response_of(&h), "6629fae49393a05397450978507c4ef1");
        assert!(h.contains("qop=auth, nc=00000001, cnonce=\"0a4f113b\""), "{h}");
        assert!(h.contains("opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""));
    }

    /// RFC 7616 §3.9.1 (SHA-256 and MD5 for the same request).
    #[test]
    fn rfc7616_sha256_and_md5_vectors() {
        let nonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let req = RequestToSign { method: "GET", uri: "/dir/index.html", body: b"" };
        let sha = Challenge::parse(&format!(r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="{nonce}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#)).expect("sha");
        assert_eq!(
            response_of(&authorization(&sha, "Mufasa", "Circle of Life", req, cnonce, 1)),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let md5 = Challenge { algorithm: Algorithm::Md5, ..sha.clone() };
        assert_eq!(
            response_of(&authorization(&md5, "Mufasa", "Circle of Life", req, cnonce, 1)),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn strongest_challenge_wins_and_tokens_are_unquoted() {
        let cs = Challenge::parse_list(&[
            r#"Digest realm="pbx", nonce="a", algorithm=MD5, qop="auth""#,
            r#"Digest realm="pbx", nonce="b", algorithm=SHA-256, qop="auth""#,
            r#"Basic realm="pbx""#,
        ])
        .expect("challenges");
        let c = choose(&cs).expect("one");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let h = authorization(
            c,
            "613",
            "pw",
            RequestToSign { method: "NOTIFY", uri: "sip:613@192.0.2.10", body: b"" },
            "cn",
            2,
        );
        assert!(h.contains("algorithm=SHA-256, qop=auth, nc=00000002"), "{h}");
    }

    #[test]
    fn no_qop_and_sess_variants() {
        let c = Challenge::parse(r#"Digest realm="r", nonce="n""#).expect("rfc2069");
        let h = authorization(&c, "u", "p", RequestToSign { method: "NOTIFY", uri: "sip:u@h", body: b"" }, "c", 1);
        let ha1 = Algorithm::Md5.hash("u:r:p");
        let ha2 = Algorithm::Md5.hash("NOTIFY:sip:u@h");
        assert_eq!(response_of(&h), Algorithm::Md5.hash(&format!("{ha1}:n:{ha2}")));
        assert!(!h.contains("qop"));
        let s = Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=MD5-sess, qop=auth"#).expect("sess");
        let h = authorization(&s, "u", "p", RequestToSign { method: "NOTIFY", uri: "sip:u@h", body: b"" }, "c", 1);
        let ha1s = Algorithm::Md5.hash(&format!("{ha1}:n:c"));
        assert_eq!(
            response_of(&h),
            Algorithm::Md5.hash(&format!("{ha1s}:n:00000001:c:auth:{ha2}")),
            "MD5-sess hashes A1 again"
        );
    }

    #[test]
    fn nonce_counting_and_errors() {
        let mut n = Nonces::default();
        assert_eq!((n.next("a"), n.next("a"), n.next("b")), (1, 2, 1));
        n.forget("a");
        assert_eq!(n.next("a"), 1);
        assert!(matches!(
            Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-1"#),
            Err(MwiError::Unsupported(_))
        ));
        assert!(Challenge::parse(r#"Digest nonce="n""#).is_err());
        assert!(Challenge::parse(r#"Digest realm="r, nonce="n""#).is_err());
        assert!(matches!(Challenge::parse_list(&[r#"Basic realm="x""#]), Err(MwiError::Unsupported(_))));
    }
}
