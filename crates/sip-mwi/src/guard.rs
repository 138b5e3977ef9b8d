//! Who may REGISTER and SUBSCRIBE at our listener, sans-IO: digest
//! authentication as a UAS (RFC 3261 §22, RFC 8760), the address check for
//! phones without credentials, and rate limits that keep a forged source from
//! turning us into a reflector.
//!
//! Every request from the network passes [`Guard::check`] before anything
//! else looks at it, and gets one [`Verdict`]:
//!
//! - **Drop**: over its source's or the global rate; nothing is sent back.
//! - **Forbidden**: not a paired phone, a paired phone from the wrong
//!   address, or wrong credentials on a valid nonce (403, so a phone with a
//!   wrong password stops instead of looping).
//! - **Challenge**: a digest phone without (valid, fresh, unreplayed)
//!   credentials gets 401 with SHA-256 and MD5 challenges, `qop=auth`.
//! - **Admit**: the phone is who it says it is; only now may its Contact be
//!   stored and NOTIFYs go there.
//!
//! Nonces are stateless until used: `<issued, hex seconds><serial><MAC>`, the
//! MAC an HMAC-SHA-256 over the issue time, the serial and the source IP under a per-process
//! key, so a nonce is bound to time and source without a table a stranger can
//! grow. A nonce older than `nonce_lifetime` is answered with `stale=true`.
//! Replay protection keeps, per nonce that has authenticated a request, the
//! highest `nc` seen; a request whose `nc` is not higher is challenged anew.
//! Only requests with correct credentials add entries, and the table is
//! bounded anyway.
//!
//! The trade-off for phones without credentials: they are admitted by their
//! configured IP address alone, which an attacker on the same network can
//! forge for requests (not for the answers). Such a phone's Contact must name
//! that same address, so a forged request can at worst send the phone its own
//! lamp.

use crate::digest::{Algorithm, Challenge, Qop, RequestToSign, authorization};
use crate::uri::aor;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A token bucket's size: `burst` requests at once, `per_second` after that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed at once.
    pub burst: u32,
    /// Requests allowed per second on average.
    pub per_second: u32,
}

/// The gate's limits.
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// The digest realm.
    pub realm: String,
    /// How long a nonce is accepted.
    pub nonce_lifetime: Duration,
    /// Requests from one source IP.
    pub per_source: RateLimit,
    /// Requests from everyone together.
    pub global: RateLimit,
    /// Source IPs tracked at once; beyond that new sources share one bucket.
    pub max_sources: usize,
    /// Nonces tracked for replay protection.
    pub max_nonces: usize,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            realm: "lamplighter".into(),
            nonce_lifetime: Duration::from_secs(300),
            per_source: RateLimit { burst: 20, per_second: 5 },
            global: RateLimit { burst: 100, per_second: 50 },
            max_sources: 1024,
            max_nonces: 1024,
        }
    }
}

/// How a paired phone proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum PhoneAuth {
    /// Digest credentials the phone must answer our challenge with.
    Digest {
        /// The digest user name.
        username: String,
        /// The password.
        password: String,
    },
    /// No credentials: only requests from this address are the phone's.
    Address(IpAddr),
}

impl std::fmt::Debug for PhoneAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PhoneAuth::Digest { username, .. } => write!(f, "Digest({username}, «redacted»)"),
            PhoneAuth::Address(ip) => write!(f, "Address({ip})"),
        }
    }
}

/// A phone allowed to register and subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardPhone {
    /// The phone's SIP URI as configured.
    pub uri: String,
    pub auth: PhoneAuth,
}

/// The facts of an incoming request the gate needs.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    /// `REGISTER`, `SUBSCRIBE`, …
    pub method: &'a str,
    /// Where it came from (the packet's source, not what Via says).
    pub source: SocketAddr,
    /// Whose request it claims to be: To of a REGISTER, From of a SUBSCRIBE.
    pub claimed: &'a str,
    /// The Request-URI as received.
    pub request_uri: &'a str,
    /// The `Authorization` header values.
    pub authorization: &'a [String],
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send nothing.
    Drop,
    /// 403 Forbidden.
    Forbidden,
    /// 401 with these `WWW-Authenticate` values (strongest first).
    Challenge {
        /// The header values.
        www_authenticate: Vec<String>,
    },
    /// The request is this phone's (an index into the phones given to [`Guard::new`]).
    Admit {
        /// Which phone.
        phone: usize,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(limit.burst), at: now }
    }

    fn refill(&mut self, limit: RateLimit, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * f64::from(limit.per_second)).min(f64::from(limit.burst));
        self.at = now;
    }

    fn take(&mut self, limit: RateLimit, now: Instant) -> bool {
        self.refill(limit, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The gate; one per listener.
pub struct Guard {
    config: GuardConfig,
    phones: Vec<GuardPhone>,
    aors: Vec<String>,
    key: [u8; 32],
    epoch: Instant,
    sources: HashMap<IpAddr, Bucket>,
    overflow: Bucket,
    global: Bucket,
    /// nonce → highest `nc` that authenticated a request.
    used: HashMap<String, (u32, Instant)>,
    serial: u32,
}

/// Counted for the operator and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Source IPs with a bucket.
    pub sources: usize,
    /// Nonces tracked for replay.
    pub nonces: usize,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits `Digest a=1, b="x,y"` into lowercase keys and unquoted values.
fn credentials(value: &str) -> Option<HashMap<String, String>> {
    let v = value.trim();
    let (scheme, rest) = v.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut out = HashMap::new();
    let (mut quoted, mut start) = (false, 0);
    let mut parts = Vec::new();
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&rest[start..]);
    for p in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let (k, val) = p.split_once('=')?;
        let val = val.trim();
        let val = match val.strip_prefix('"') {
            Some(q) => q.strip_suffix('"')?,
            None => val,
        };
        out.insert(k.trim().to_ascii_lowercase(), val.to_string());
    }
    Some(out)
}

/// Compares without an early exit, so timing tells nothing about the expected value.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

enum NonceAge {
    Fresh,
    Stale,
    Forged,
}

impl Guard {
    /// A gate for `phones`; `key` is 32 random bytes (nonce MACs), `now` the start.
    pub fn new(config: GuardConfig, phones: Vec<GuardPhone>, key: [u8; 32], now: Instant) -> Guard {
        let aors = phones.iter().map(|p| aor(&p.uri)).collect();
        Guard {
            overflow: Bucket::full(config.per_source, now),
            global: Bucket::full(config.global, now),
            config,
            phones,
            aors,
            key,
            epoch: now,
            sources: HashMap::new(),
            used: HashMap::new(),
            serial: 0,
        }
    }

    /// The paired phone this URI names (a phone paired without a port matches any port of its host).
    pub fn phone_of(&self, uri: &str) -> Option<usize> {
        let a = aor(uri);
        self.aors.iter().position(|p| *p == a || (!p.contains(':') && a.split(':').next() == Some(p.as_str())))
    }

    /// The phones, as given.
    pub fn phones(&self) -> &[GuardPhone] {
        &self.phones
    }

    /// Sizes of the tables a stranger could try to grow.
    pub fn stats(&self) -> GuardStats {
        GuardStats { sources: self.sources.len(), nonces: self.used.len() }
    }

    /// Takes one request's worth from the source's and the global bucket.
    /// Every request from the network is counted here, whatever its method.
    pub fn admit_rate(&mut self, now: Instant, source: IpAddr) -> bool {
        let limit = self.config.per_source;
        if !self.sources.contains_key(&source) && self.sources.len() >= self.config.max_sources {
            // forget the sources that have been quiet long enough to be full again
            self.sources.retain(|_, b| {
                b.refill(limit, now);
                b.tokens < f64::from(limit.burst)
            });
        }
        let source_ok = if let Some(b) = self.sources.get_mut(&source) {
            b.take(limit, now)
        } else if self.sources.len() < self.config.max_sources {
            let mut b = Bucket::full(limit, now);
            let ok = b.take(limit, now);
            self.sources.insert(source, b);
            ok
        } else {
            self.overflow.take(limit, now)
        };
        source_ok && self.global.take(self.config.global, now)
    }

    /// The verdict on a REGISTER or SUBSCRIBE (rate already counted by [`Guard::admit_rate`]).
    pub fn check(&mut self, now: Instant, req: &Inbound<'_>) -> Verdict {
        let Some(phone) = self.phone_of(req.claimed) else { return Verdict::Forbidden };
        let (username, password) = match &self.phones[phone].auth {
            PhoneAuth::Address(ip) => {
                return if *ip == req.source.ip() { Verdict::Admit { phone } } else { Verdict::Forbidden };
            }
            PhoneAuth::Digest { username, password } => (username.clone(), password.clone()),
        };
        let mut stale = false;
        for value in req.authorization {
            let Some(c) = credentials(value) else { continue };
            let field = |k: &str| c.get(k).map(String::as_str).unwrap_or("");
            if !field("realm").eq_ignore_ascii_case(&self.config.realm) {
                continue;
            }
            let nonce = field("nonce").to_string();
            match self.nonce_age(now, &nonce, req.source.ip()) {
                NonceAge::Forged => continue,
                NonceAge::Stale => {
                    stale = true;
                    continue;
                }
                NonceAge::Fresh => {}
            }
            let algorithm = match field("algorithm").to_ascii_uppercase().as_str() {
                "" | "MD5" => Algorithm::Md5,
                "SHA-256" => Algorithm::Sha256,
                _ => continue,
            };
            let Ok(nc) = u32::from_str_radix(field("nc"), 16) else { continue };
            if !field("qop").eq_ignore_ascii_case("auth") || field("cnonce").is_empty() {
                continue;
            }
            if !same_uri(field("uri"), req.request_uri) || field("username") != username {
                return Verdict::Forbidden;
            }
            let challenge = Challenge {
                realm: self.config.realm.clone(),
                nonce: nonce.clone(),
                opaque: None,
                algorithm,
                qop: vec![Qop::Auth],
                stale: false,
            };
            let expected = authorization(
                &challenge,
                &username,
                &password,
                RequestToSign { method: req.method, uri: field("uri"), body: &[] },
                field("cnonce"),
                nc,
            );
            let expected = credentials(&expected).and_then(|e| e.get("response").cloned()).unwrap_or_default();
            if !same(&expected, &field("response").to_ascii_lowercase()) {
                return Verdict::Forbidden;
            }
            // replay: each nc of a nonce authenticates one request
            let last = self.used.get(&nonce).map(|(n, _)| *n).unwrap_or(0);
            if nc <= last {
                continue;
            }
            if !self.used.contains_key(&nonce) && self.used.len() >= self.config.max_nonces {
                let lifetime = self.config.nonce_lifetime;
                self.used.retain(|_, (_, first)| now.saturating_duration_since(*first) < lifetime);
                if self.used.len() >= self.config.max_nonces {
                    // still full of live nonces: make the oldest ones' phones authenticate afresh
                    if let Some(oldest) = self.used.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| k.clone()) {
                        self.used.remove(&oldest);
                    }
                }
            }
            let first = self.used.get(&nonce).map(|(_, t)| *t).unwrap_or(now);
            self.used.insert(nonce, (nc, first));
            return Verdict::Admit { phone };
        }
        Verdict::Challenge { www_authenticate: self.challenges(now, req.source.ip(), stale) }
    }

    fn mac(&self, issued: u64, serial: u32, ip: IpAddr) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(&issued.to_be_bytes());
        mac.update(&serial.to_be_bytes());
        mac.update(ip.to_string().as_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }

    fn nonce_age(&self, now: Instant, nonce: &str, ip: IpAddr) -> NonceAge {
        if nonce.len() != 16 + 8 + 32 || !nonce.is_ascii() {
            return NonceAge::Forged;
        }
        let Ok(issued) = u64::from_str_radix(&nonce[..16], 16) else { return NonceAge::Forged };
        let Ok(serial) = u32::from_str_radix(&nonce[16..24], 16) else { return NonceAge::Forged };
        if !same(&nonce[24..], &self.mac(issued, serial, ip)) {
            return NonceAge::Forged;
        }
        let age = now.saturating_duration_since(self.epoch).as_secs().saturating_sub(issued);
        if age >= self.config.nonce_lifetime.as_secs() { NonceAge::Stale } else { NonceAge::Fresh }
    }

    /// A new nonce for this source, now: every challenge gets its own, so
    /// two phones behind one address never share an `nc` count.
    pub fn nonce(&mut self, now: Instant, ip: IpAddr) -> String {
        let issued = now.saturating_duration_since(self.epoch).as_secs();
        self.serial = self.serial.wrapping_add(1);
        format!("{issued:016x}{:08x}{}", self.serial, self.mac(issued, self.serial, ip))
    }

    fn challenges(&mut self, now: Instant, ip: IpAddr, stale: bool) -> Vec<String> {
        let nonce = self.nonce(now, ip);
        let stale = if stale { ", stale=true" } else { "" };
        [Algorithm::Sha256, Algorithm::Md5]
            .iter()
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{stale}",
                    self.config.realm,
                    a.token()
                )
            })
            .collect()
    }
}

/// The digest-uri names the Request-URI (compared without case, as phones re-case hosts).
fn same_uri(digest_uri: &str, request_uri: &str) -> bool {
    let strip = |u: &str| u.trim().trim_start_matches('<').trim_end_matches('>').to_ascii_lowercase();
    strip(digest_uri) == strip(request_uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{Nonces, choose};

    const PHONE: &str = "sip:613@127.0.0.1";

    fn guard(t0: Instant) -> Guard {
        let phones = vec![
            GuardPhone {
                uri: PHONE.into(),
                auth: PhoneAuth::Digest { username: "613".into(), password: "s3cret".into() },
            },
            GuardPhone {
                uri: "sip:614@127.0.0.1".into(),
                auth: PhoneAuth::Address("127.0.0.1".parse().expect("test value")),
            },
        ];
        Guard::new(GuardConfig::default(), phones, [7; 32], t0)
    }

    fn from(ip: &str) -> SocketAddr {
        format!("{ip}:5070").parse().expect("test value")
    }

    fn inbound<'a>(source: SocketAddr, claimed: &'a str, auth: &'a [String]) -> Inbound<'a> {
        Inbound { method: "SUBSCRIBE", source, claimed, request_uri: "sip:613@127.0.0.1:5060", authorization: auth }
    }

    /// What a phone sends back for the first challenge it supports.
    fn answer(www: &[String], password: &str, nc: u32) -> String {
        let parsed = Challenge::parse_list(www).expect("test value");
        let c = choose(&parsed).expect("test value");
        let mut n = Nonces::default();
        for _ in 1..nc {
            n.next(&c.nonce);
        }
        let nc = n.next(&c.nonce);
        authorization(
            c,
            "613",
            password,
            RequestToSign { method: "SUBSCRIBE", uri: "sip:613@127.0.0.1:5060", body: &[] },
            "abc",
            nc,
        )
    }

    fn challenge(g: &mut Guard, now: Instant, source: SocketAddr) -> Vec<String> {
        match g.check(now, &inbound(source, PHONE, &[])) {
            Verdict::Challenge { www_authenticate } => www_authenticate,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn digest_phones_are_challenged_with_sha256_then_md5_and_admitted_with_the_right_password() {
        let t0 = Instant::now();
        let mut g = guard(t0);
        let www = challenge(&mut g, t0, from("127.0.0.1"));
        assert!(www[0].contains("algorithm=SHA-256") && www[1].contains("algorithm=MD5"), "{www:?}");
        assert!(www.iter().all(|w| w.contains("qop=\"auth\"")));
        let good = [answer(&www, "s3cret", 1)];
        assert_eq!(g.check(t0, &inbound(from("127.0.0.1"), PHONE, &good)), Verdict::Admit { phone: 0 });
        let bad = [answer(&www, "guess", 2)];
        assert_eq!(g.check(t0, &inbound(from("127.0.0.1"), PHONE, &bad)), Verdict::Forbidden);
        // MD5 alone (what an older phone picks)
        let md5 = [answer(&www[1..], "s3cret", 3)];
        let fresh = challenge(&mut g, t0, from("127.0.0.1"));
        let md5_fresh = [answer(&fresh[1..], "s3cret", 1)];
        assert!(matches!(g.check(t0, &inbound(from("127.0.0.1"), PHONE, &md5)), Verdict::Admit { .. }));
        assert!(matches!(g.check(t0, &inbound(from("127.0.0.1"), PHONE, &md5_fresh)), Verdict::Admit { .. }));
    }

    #[test]
    fn a_replayed_nc_is_challenged_again_and_a_higher_one_admitted() {
        let t0 = Instant::now();
        let mut g = guard(t0);
        let www = challenge(&mut g, t0, from("127.0.0.1"));
        let first = [answer(&www, "s3cret", 1)];
        assert!(matches!(g.check(t0, &inbound(from("127.0.0.1"), PHONE, &first)), Verdict::Admit { .. }));
        assert!(matches!(g.check(t0, &inbound(from("127.0.0.1"), PHONE, &first)), Verdict::Challenge { .. }));
        let second = [answer(&www, "s3cret", 2)];
        assert!(matches!(g.check(t0, &inbound(from("127.0.0.1"), PHONE, &second)), Verdict::Admit { .. }));
    }

    #[test]
    fn nonces_are_bound_to_the_source_and_go_stale() {
        let t0 = Instant::now();
        let mut g = guard(t0);
        let www = challenge(&mut g, t0, from("127.0.0.1"));
        let creds = [answer(&www, "s3cret", 1)];
        // the same answer from another address is not accepted: a fresh challenge
        match g.check(t0, &inbound(from("127.0.0.2"), PHONE, &creds)) {
            Verdict::Challenge { www_authenticate } => assert!(!www_authenticate[0].contains("stale")),
            other => panic!("{other:?}"),
        }
        let later = t0 + Duration::from_secs(301);
        match g.check(later, &inbound(from("127.0.0.1"), PHONE, &creds)) {
            Verdict::Challenge { www_authenticate } => assert!(www_authenticate[0].contains("stale=true")),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.stats().nonces, 0, "nothing unauthenticated is remembered");
    }

    #[test]
    fn address_phones_and_strangers() {
        let t0 = Instant::now();
        let mut g = guard(t0);
        assert_eq!(g.check(t0, &inbound(from("127.0.0.1"), "sip:614@127.0.0.1", &[])), Verdict::Admit { phone: 1 });
        assert_eq!(g.check(t0, &inbound(from("127.0.0.2"), "sip:614@127.0.0.1", &[])), Verdict::Forbidden);
        assert_eq!(g.check(t0, &inbound(from("127.0.0.1"), "sip:666@127.0.0.1", &[])), Verdict::Forbidden);
        assert_eq!(g.phone_of("<sip:613@127.0.0.1:5099;transport=udp>"), Some(0));
    }

    proptest::proptest! {
        /// Whatever a stranger writes in Authorization, a digest phone is never
        /// admitted without its password, and the replay table does not grow.
        #[test]
        fn forged_credentials_never_pass(values in proptest::collection::vec(".{0,300}", 0..4), nc in 0u32..5) {
            let t0 = Instant::now();
            let mut g = guard(t0);
            let www = challenge(&mut g, t0, from("127.0.0.1"));
            let mut auth = values;
            // also a well-formed answer to a real challenge, with the wrong password
            auth.push(answer(&www, "not-the-password", nc.max(1)));
            let verdict = g.check(t0, &inbound(from("127.0.0.1"), PHONE, &auth));
            proptest::prop_assert!(!matches!(verdict, Verdict::Admit { .. }), "{verdict:?}");
            proptest::prop_assert_eq!(g.stats().nonces, 0);
        }
    }

    #[test]
    fn rates_are_limited_per_source_and_overall_and_the_source_table_is_bounded() {
        let t0 = Instant::now();
        let config = GuardConfig { max_sources: 8, ..GuardConfig::default() };
        let mut g = Guard::new(config, vec![], [1; 32], t0);
        let ip: IpAddr = "127.0.0.2".parse().expect("test value");
        let admitted = (0..10_000).filter(|_| g.admit_rate(t0, ip)).count();
        assert_eq!(admitted, 20, "the burst, then nothing until time passes");
        assert!(g.admit_rate(t0 + Duration::from_secs(1), ip));
        for i in 0..200u8 {
            g.admit_rate(t0, IpAddr::from([127, 0, 1, i]));
        }
        assert!(g.stats().sources <= 8);
        // everyone together is capped by the global bucket
        let mut g = Guard::new(GuardConfig::default(), vec![], [1; 32], t0);
        let total = (0..10_000u32).filter(|i| g.admit_rate(t0, IpAddr::from(i.to_be_bytes()))).count();
        assert_eq!(total, 100);
    }
}
