//! NTLM authentication for HTTP, sans-IO (MS-NLMP), as on-premises Exchange
//! and IIS use it: `Authorization: NTLM <base64>` / `WWW-Authenticate: NTLM <base64>`.
//!
//! The client side builds the NEGOTIATE message, reads the server's
//! CHALLENGE and answers with an AUTHENTICATE message carrying an NTLMv2
//! response. The server side (for the Exchange simulator) issues a challenge
//! and verifies an AUTHENTICATE message against a known password. Only
//! NTLMv2 is spoken: NTLMv1 responses are refused, as hardened servers do.
//! No session security (signing, sealing) is needed over HTTPS, so no MIC
//! and no key exchange.
//!
//! HTTP carries NTLM per *connection*: the three messages must travel on one
//! kept-alive connection, and the connection stays authenticated afterwards.
//! Keeping that promise is the transport's job (`ews-client`).
//!
//! The primitives are RustCrypto's (`md4` for NTOWF, `hmac` over `md-5`
//! for NTOWFv2 and the responses); this crate only arranges the messages.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use md4::{Digest, Md4};
use md5::Md5;

const SIGNATURE: &[u8; 8] = b"NTLMSSP\0";

const NEGOTIATE_UNICODE: u32 = 0x0000_0001;
const REQUEST_TARGET: u32 = 0x0000_0004;
const NEGOTIATE_NTLM: u32 = 0x0000_0200;
const NEGOTIATE_ALWAYS_SIGN: u32 = 0x0000_8000;
const TARGET_TYPE_DOMAIN: u32 = 0x0001_0000;
const NEGOTIATE_EXTENDED_SESSIONSECURITY: u32 = 0x0008_0000;
const NEGOTIATE_TARGET_INFO: u32 = 0x0080_0000;
const NEGOTIATE_128: u32 = 0x2000_0000;
const NEGOTIATE_56: u32 = 0x8000_0000;

const CLIENT_FLAGS: u32 = NEGOTIATE_UNICODE
    | REQUEST_TARGET
    | NEGOTIATE_NTLM
    | NEGOTIATE_ALWAYS_SIGN
    | NEGOTIATE_EXTENDED_SESSIONSECURITY
    | NEGOTIATE_TARGET_INFO
    | NEGOTIATE_128
    | NEGOTIATE_56;

/// AV pair ids (MS-NLMP 2.2.2.1).
const AV_EOL: u16 = 0;
const AV_NB_COMPUTER_NAME: u16 = 1;
const AV_NB_DOMAIN_NAME: u16 = 2;
const AV_TIMESTAMP: u16 = 7;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NtlmError {
    /// Not an NTLM message of the expected type, or its fields point outside it.
    #[error("malformed NTLM message: {0}")]
    Malformed(&'static str),
    /// The response does not match the password (or is NTLMv1).
    #[error("NTLM authentication failed for {user}")]
    Rejected {
        /// The user name the client gave.
        user: String,
    },
}

/// User, domain and password for the client.
#[derive(Clone)]
pub struct Credentials {
    /// The user name (`jdoe`), or `DOMAIN\jdoe`, or `jdoe@domain` (then the domain stays empty, as Windows does).
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

impl Credentials {
    fn split(&self) -> (&str, &str) {
        match self.user.split_once('\\') {
            Some((domain, user)) => (domain, user),
            None => ("", self.user.as_str()),
        }
    }
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn hmac_md5(key: &[u8], parts: &[&[u8]]) -> [u8; 16] {
    // HMAC takes a key of any length
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// NTOWFv2 (MS-NLMP 3.3.2): the key of the NTLMv2 response.
pub fn ntowf_v2(password: &str, user: &str, domain: &str) -> [u8; 16] {
    let nt_hash: [u8; 16] = Md4::digest(utf16le(password)).into();
    hmac_md5(&nt_hash, &[&utf16le(&(user.to_uppercase() + domain))])
}

/// The NTLMv2 response to `server_challenge` (MS-NLMP 3.3.2): `NTProofStr || temp`.
pub fn ntlmv2_response(
    key: &[u8; 16],
    server_challenge: &[u8; 8],
    client_challenge: &[u8; 8],
    timestamp: u64,
    target_info: &[u8],
) -> Vec<u8> {
    let mut temp = vec![1u8, 1, 0, 0, 0, 0, 0, 0];
    temp.extend_from_slice(&timestamp.to_le_bytes());
    temp.extend_from_slice(client_challenge);
    temp.extend_from_slice(&[0; 4]);
    temp.extend_from_slice(target_info);
    temp.extend_from_slice(&[0; 4]);
    let proof = hmac_md5(key, &[server_challenge, &temp]);
    let mut out = proof.to_vec();
    out.extend_from_slice(&temp);
    out
}

/// The LMv2 response (MS-NLMP 3.3.2).
pub fn lmv2_response(key: &[u8; 16], server_challenge: &[u8; 8], client_challenge: &[u8; 8]) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..16].copy_from_slice(&hmac_md5(key, &[server_challenge, client_challenge]));
    out[16..].copy_from_slice(client_challenge);
    out
}

fn field(msg: &[u8], at: usize) -> Result<&[u8], NtlmError> {
    let hdr = msg.get(at..at + 8).ok_or(NtlmError::Malformed("truncated header"))?;
    let len = usize::from(u16::from_le_bytes([hdr[0], hdr[1]]));
    let off = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]) as usize;
    if len == 0 {
        return Ok(&[]);
    }
    msg.get(off..off.checked_add(len).ok_or(NtlmError::Malformed("field overflows"))?)
        .ok_or(NtlmError::Malformed("field points outside the message"))
}

fn check_type(msg: &[u8], ty: u32) -> Result<(), NtlmError> {
    if msg.len() < 12 || &msg[..8] != SIGNATURE {
        return Err(NtlmError::Malformed("no NTLMSSP signature"));
    }
    if u32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]) != ty {
        return Err(NtlmError::Malformed("unexpected message type"));
    }
    Ok(())
}

/// The token of an `Authorization`/`WWW-Authenticate` header value `NTLM <base64>`, decoded.
pub fn token_from_header(value: &str) -> Option<Vec<u8>> {
    let rest = value.trim().strip_prefix("NTLM ").or_else(|| value.trim().strip_prefix("Negotiate "))?;
    STANDARD.decode(rest.trim()).ok()
}

/// A header value `NTLM <base64>` for `token`.
pub fn header_from_token(token: &[u8]) -> String {
    header_with_scheme("NTLM", token)
}

/// A header value `<scheme> <base64>`: `Negotiate` carries the same NTLM
/// tokens to a server that offers only Negotiate (IIS takes them unwrapped).
pub fn header_with_scheme(scheme: &str, token: &[u8]) -> String {
    format!("{scheme} {}", STANDARD.encode(token))
}

/// The client's first message (NEGOTIATE), to send as `Authorization: NTLM …`.
pub fn negotiate() -> Vec<u8> {
    let mut m = SIGNATURE.to_vec();
    m.extend_from_slice(&1u32.to_le_bytes());
    m.extend_from_slice(&CLIENT_FLAGS.to_le_bytes());
    m.extend_from_slice(&[0; 16]); // no domain, no workstation
    m
}

/// What the client needs of the server's CHALLENGE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The server's flags.
    pub flags: u32,
    /// The 8-byte challenge.
    pub server_challenge: [u8; 8],
    /// The target info (AV pairs), echoed in the response.
    pub target_info: Vec<u8>,
}

impl Challenge {
    /// Reads a CHALLENGE message.
    pub fn parse(msg: &[u8]) -> Result<Challenge, NtlmError> {
        check_type(msg, 2)?;
        if msg.len() < 48 {
            return Err(NtlmError::Malformed("challenge too short"));
        }
        let flags = u32::from_le_bytes([msg[20], msg[21], msg[22], msg[23]]);
        let mut server_challenge = [0u8; 8];
        server_challenge.copy_from_slice(&msg[24..32]);
        let target_info = field(msg, 40)?.to_vec();
        Ok(Challenge { flags, server_challenge, target_info })
    }

    /// The server's timestamp from the target info, if it sent one (then the response must use it).
    pub fn timestamp(&self) -> Option<u64> {
        av_pairs(&self.target_info).find(|(id, _)| *id == AV_TIMESTAMP).and_then(|(_, v)| {
            let b: [u8; 8] = v.try_into().ok()?;
            Some(u64::from_le_bytes(b))
        })
    }
}

fn av_pairs(info: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let h = info.get(at..at + 4)?;
        let id = u16::from_le_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_le_bytes([h[2], h[3]]));
        if id == AV_EOL {
            return None;
        }
        let v = info.get(at + 4..at + 4 + len)?;
        at += 4 + len;
        Some((id, v))
    })
}

/// Now as a Windows FILETIME (100 ns since 1601).
fn filetime_now() -> u64 {
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (unix.as_nanos() / 100) as u64 + 116_444_736_000_000_000
}

/// The client's answer (AUTHENTICATE) to `challenge`.
pub fn authenticate(creds: &Credentials, challenge: &Challenge) -> Vec<u8> {
    let mut client_challenge = [0u8; 8];
    // without randomness the response would still authenticate, only replayably
    let _ = getrandom::getrandom(&mut client_challenge);
    let timestamp = challenge.timestamp().unwrap_or_else(filetime_now);
    authenticate_with(creds, challenge, client_challenge, timestamp)
}

/// [`authenticate`] with the client challenge and time given (for tests).
pub fn authenticate_with(
    creds: &Credentials,
    challenge: &Challenge,
    client_challenge: [u8; 8],
    timestamp: u64,
) -> Vec<u8> {
    let (domain, user) = creds.split();
    let key = ntowf_v2(&creds.password, user, domain);
    let nt = ntlmv2_response(&key, &challenge.server_challenge, &client_challenge, timestamp, &challenge.target_info);
    // with a server timestamp, the LM response is zeros (MS-NLMP 3.1.5.1.2)
    let lm: Vec<u8> = if challenge.timestamp().is_some() {
        vec![0; 24]
    } else {
        lmv2_response(&key, &challenge.server_challenge, &client_challenge).to_vec()
    };
    let (domain, user, workstation) = (utf16le(domain), utf16le(user), utf16le(""));
    let header_len = 64usize;
    let mut payload = Vec::new();
    let mut fields = Vec::new();
    for part in [&lm, &nt, &domain, &user, &workstation, &Vec::new()] {
        let off = header_len + payload.len();
        let len = part.len() as u16;
        fields.extend_from_slice(&len.to_le_bytes());
        fields.extend_from_slice(&len.to_le_bytes());
        fields.extend_from_slice(&(off as u32).to_le_bytes());
        payload.extend_from_slice(part);
    }
    let mut m = SIGNATURE.to_vec();
    m.extend_from_slice(&3u32.to_le_bytes());
    m.extend_from_slice(&fields);
    m.extend_from_slice(&((challenge.flags & CLIENT_FLAGS) | NEGOTIATE_UNICODE).to_le_bytes());
    debug_assert_eq!(m.len(), header_len);
    m.extend_from_slice(&payload);
    m
}

/// The server side of one handshake: issue a challenge, then verify.
#[derive(Debug, Clone)]
pub struct ServerChallenge {
    challenge: [u8; 8],
    message: Vec<u8>,
}

impl ServerChallenge {
    /// A fresh challenge for `negotiate` (the client's first message), naming the server's domain and host.
    pub fn new(negotiate: &[u8], domain: &str, computer: &str) -> Result<ServerChallenge, NtlmError> {
        check_type(negotiate, 1)?;
        let mut challenge = [0u8; 8];
        let _ = getrandom::getrandom(&mut challenge);
        Ok(Self::with(challenge, domain, computer))
    }

    /// [`ServerChallenge::new`] with a given challenge (for tests).
    pub fn with(challenge: [u8; 8], domain: &str, computer: &str) -> ServerChallenge {
        let target = utf16le(domain);
        let mut info = Vec::new();
        for (id, v) in [(AV_NB_DOMAIN_NAME, utf16le(domain)), (AV_NB_COMPUTER_NAME, utf16le(computer))] {
            info.extend_from_slice(&id.to_le_bytes());
            info.extend_from_slice(&(v.len() as u16).to_le_bytes());
            info.extend_from_slice(&v);
        }
        info.extend_from_slice(&[0; 4]);
        let flags = NEGOTIATE_UNICODE
            | REQUEST_TARGET
            | NEGOTIATE_NTLM
            | NEGOTIATE_ALWAYS_SIGN
            | TARGET_TYPE_DOMAIN
            | NEGOTIATE_EXTENDED_SESSIONSECURITY
            | NEGOTIATE_TARGET_INFO
            | NEGOTIATE_128
            | NEGOTIATE_56;
        let mut m = SIGNATURE.to_vec();
        m.extend_from_slice(&2u32.to_le_bytes());
        let target_off = 48u32;
        m.extend_from_slice(&(target.len() as u16).to_le_bytes());
        m.extend_from_slice(&(target.len() as u16).to_le_bytes());
        m.extend_from_slice(&target_off.to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&challenge);
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(info.len() as u16).to_le_bytes());
        m.extend_from_slice(&(info.len() as u16).to_le_bytes());
        m.extend_from_slice(&(target_off + target.len() as u32).to_le_bytes());
        m.extend_from_slice(&target);
        m.extend_from_slice(&info);
        ServerChallenge { challenge, message: m }
    }

    /// The CHALLENGE message to send.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// Checks an AUTHENTICATE message; `password_of(domain, user)` gives the
    /// password of a known user. Returns `(domain, user)` on success.
    pub fn verify(
        &self,
        authenticate: &[u8],
        password_of: impl Fn(&str, &str) -> Option<String>,
    ) -> Result<(String, String), NtlmError> {
        check_type(authenticate, 3)?;
        let nt = field(authenticate, 20)?;
        let decode = |b: &[u8]| {
            let units: Vec<u16> = b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
            String::from_utf16_lossy(&units)
        };
        let domain = decode(field(authenticate, 28)?);
        let user = decode(field(authenticate, 36)?);
        let rejected = || NtlmError::Rejected { user: user.clone() };
        if nt.len() <= 24 {
            return Err(rejected()); // NTLMv1: not accepted
        }
        let password = password_of(&domain, &user).ok_or_else(rejected)?;
        let key = ntowf_v2(&password, &user, &domain);
        let proof = hmac_md5(&key, &[&self.challenge, &nt[16..]]);
        if proof[..] == nt[..16] { Ok((domain, user)) } else { Err(rejected()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    /// MS-NLMP 4.2.4 (NTLMv2 authentication): the published values.
    #[test]
    fn ms_nlmp_ntlmv2_test_vectors() {
        // 4.2.1: NTOWFv1 ("Password"), the MD4 that NTOWFv2 starts from
        let nt_hash: [u8; 16] = Md4::digest(utf16le("Password")).into();
        assert_eq!(nt_hash.to_vec(), hex("a4f49c406510bdcab6824ee7c30fd852"));
        let key = ntowf_v2("Password", "User", "Domain");
        assert_eq!(key.to_vec(), hex("0c868a403bfd7a93a3001ef22ef02e3f"));
        let server = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        let client = [0xaa; 8];
        assert_eq!(
            lmv2_response(&key, &server, &client).to_vec(),
            hex("86c35097ac9cec102554764a57cccc19 aaaaaaaaaaaaaaaa")
        );
        let mut info = Vec::new();
        for (id, v) in [(AV_NB_DOMAIN_NAME, utf16le("Domain")), (AV_NB_COMPUTER_NAME, utf16le("Server"))] {
            info.extend_from_slice(&id.to_le_bytes());
            info.extend_from_slice(&(v.len() as u16).to_le_bytes());
            info.extend_from_slice(&v);
        }
        info.extend_from_slice(&[0; 4]);
        let nt = ntlmv2_response(&key, &server, &client, 0, &info);
        assert_eq!(nt[..16].to_vec(), hex("68cd0ab851e51c96aabc927bebef6a1c"));
    }

    #[test]
    fn a_handshake_verifies_the_right_password_only() {
        let server = ServerChallenge::new(&negotiate(), "CONTOSO", "EXCH01").expect("challenge");
        let challenge = Challenge::parse(server.message()).expect("parse");
        let good = Credentials { user: "CONTOSO\\jdoe".into(), password: "Sommer2026!".into() };
        let auth = authenticate(&good, &challenge);
        let known = |d: &str, u: &str| (d == "CONTOSO" && u == "jdoe").then(|| "Sommer2026!".to_string());
        assert_eq!(server.verify(&auth, known), Ok(("CONTOSO".into(), "jdoe".into())));
        let bad = Credentials { password: "Winter2026!".into(), ..good.clone() };
        assert!(matches!(server.verify(&authenticate(&bad, &challenge), known), Err(NtlmError::Rejected { .. })));
        // a response to another challenge does not verify
        let other = ServerChallenge::new(&negotiate(), "CONTOSO", "EXCH01").expect("challenge");
        assert!(other.verify(&auth, known).is_err());
        // the user name is case-insensitive, as in Windows
        let upper = Credentials { user: "CONTOSO\\JDOE".into(), ..good };
        let ok =
            |d: &str, u: &str| (d == "CONTOSO" && u.eq_ignore_ascii_case("jdoe")).then(|| "Sommer2026!".to_string());
        assert!(server.verify(&authenticate(&upper, &challenge), ok).is_ok());
    }

    #[test]
    fn headers_round_trip_and_garbage_is_refused() {
        let h = header_from_token(&negotiate());
        assert!(h.starts_with("NTLM TlRMTVNTUAAB"));
        assert_eq!(token_from_header(&h), Some(negotiate()));
        assert_eq!(token_from_header("Basic abc"), None);
        assert!(Challenge::parse(b"NTLMSSP\0\x02\0\0\0").is_err());
        assert!(Challenge::parse(&negotiate()).is_err());
        let mut c = ServerChallenge::with([1; 8], "D", "S").message().to_vec();
        c[44] = 0xff; // target info offset beyond the end
        assert!(Challenge::parse(&c).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_as_a_server_message_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = Challenge::parse(&bytes).map(|c| c.timestamp());
            let s = ServerChallenge::with([7; 8], "D", "S");
            let _ = s.verify(&bytes, |_, _| Some("x".into()));
        }
    }
}
