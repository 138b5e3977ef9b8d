//! Kerberos sign-in through the system's GSSAPI. A desktop joined to a
//! Windows domain (SSSD, `kinit`) already holds a ticket; with it, EWS's
//! `Negotiate` needs no password. The work is MIT krb5's: this crate only
//! drives its security contexts, so ticket caches, `krb5.conf`, KDC
//! discovery, encryption types and replay caches are the system's.
//!
//! The library is loaded when first needed, not linked: a machine without
//! krb5 still starts and signs in with NTLM or Basic, and gets
//! [`GssError::Unavailable`] only if it asks for Kerberos. The library is MIT
//! krb5's `libgssapi_krb5.so.2`, or the file `LAMPLIGHTER_GSSAPI_LIBRARY` names. That makes this
//! the workspace's one crate with `unsafe` (ARCHITECTURE.md says why it is
//! not `libgssapi`): every call is in this file or `ffi.rs`, each with the
//! RFC 2744 rule it relies on.
//!
//! - [`Initiator`]: the client side of HTTP Negotiate (RFC 4559) — SPNEGO
//!   toward `HTTP@host` with mutual authentication, so the server must prove
//!   it holds the service's key before we trust its answers.
//! - [`Acceptor`]: the server side with a keytab, for the EWS simulator.
//!
//! GSSAPI calls may block (the first one asks the KDC for a service ticket);
//! async callers run them on a blocking thread. Both types are `Send`: a
//! context is used by one thread at a time, which RFC 2744 allows.

#![allow(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

mod ffi;

use ffi::{GssBuffer, OmUint32};
use std::path::Path;

/// What went wrong, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GssError {
    /// MIT krb5's GSSAPI library is not installed.
    #[error("Kerberos is not available on this machine: {0} (install MIT Kerberos, Debian's libgssapi-krb5-2)")]
    Unavailable(String),
    /// No ticket in the cache.
    #[error("no Kerberos ticket ({detail}): run kinit, or sign in to the domain")]
    NoTicket {
        /// krb5's words.
        detail: String,
    },
    /// The ticket in the cache has expired.
    #[error("the Kerberos ticket has expired ({detail}): run kinit")]
    Expired {
        /// krb5's words.
        detail: String,
    },
    /// The peer did not prove who it is.
    #[error("{service} did not prove its identity (Kerberos mutual authentication failed: {detail})")]
    MutualAuth {
        /// The service principal, `HTTP@host`.
        service: String,
        detail: String,
    },
    /// Anything else GSSAPI reports.
    #[error("{context}: {message}")]
    Failed {
        /// Which call.
        context: &'static str,
        /// The GSSAPI major status.
        major: u32,
        /// The mechanism's minor status.
        minor: u32,
        /// The library's words for both.
        message: String,
    },
    /// Not a usable argument (a NUL in a name or path).
    #[error("{0}")]
    Argument(String),
}

/// The mechanism a context settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// Kerberos V5.
    Kerberos,
    /// NTLM through GSSAPI (gss-ntlmssp).
    Ntlm,
    /// SPNEGO itself (the library did not say which mechanism it chose).
    Spnego,
    /// Something else, as a dotted OID.
    Other(String),
}

impl Mechanism {
    fn from_oid(bytes: &[u8]) -> Mechanism {
        match bytes {
            b if b == ffi::oid::KRB5 => Mechanism::Kerberos,
            b if b == ffi::oid::NTLMSSP => Mechanism::Ntlm,
            b if b == ffi::oid::SPNEGO => Mechanism::Spnego,
            b => Mechanism::Other(dotted(b)),
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mechanism::Kerberos => f.write_str("Kerberos"),
            Mechanism::Ntlm => f.write_str("NTLM (GSSAPI)"),
            Mechanism::Spnego => f.write_str("SPNEGO"),
            Mechanism::Other(oid) => write!(f, "mechanism {oid}"),
        }
    }
}

/// An OID in dotted form (for messages).
fn dotted(der: &[u8]) -> String {
    let mut parts: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for (i, b) in der.iter().enumerate() {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() && i < 8 {
                let first = (acc / 40).min(2);
                parts.push(first);
                parts.push(acc - first * 40);
            } else {
                parts.push(acc);
            }
            acc = 0;
        }
    }
    parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

/// Whether the system's GSSAPI can be loaded (the answer is kept).
pub fn available() -> Result<(), GssError> {
    ffi::api().map(drop).map_err(GssError::Unavailable)
}

fn api() -> Result<&'static ffi::Api, GssError> {
    ffi::api().map_err(GssError::Unavailable)
}

/// The library's words for a status pair.
fn status_message(major: OmUint32, minor: OmUint32) -> String {
    let Ok(api) = ffi::api() else { return format!("major {major:#x}, minor {minor}") };
    let mut words = Vec::new();
    for (code, kind) in [(major, ffi::C_GSS_CODE), (minor, ffi::C_MECH_CODE)] {
        if code == 0 || (kind == ffi::C_GSS_CODE && code & ffi::ERROR_MASK == 0) {
            continue;
        }
        let mut context: OmUint32 = 0;
        // a bound: a broken library must not keep us here
        for _ in 0..8 {
            let mut min: OmUint32 = 0;
            let mut buf = GssBuffer::empty();
            // SAFETY: RFC 2744 §7.8: all pointers are valid out-parameters;
            // a null mech_type means the default mechanism.
            let r = unsafe { (api.display_status)(&mut min, code, kind, std::ptr::null_mut(), &mut context, &mut buf) };
            if r & ffi::ERROR_MASK != 0 {
                break;
            }
            words.push(take_buffer(api, &mut buf));
            if context == 0 {
                break;
            }
        }
    }
    let words: Vec<String> = words.into_iter().filter(|w| !w.is_empty()).collect();
    if words.is_empty() { format!("major {major:#x}, minor {minor}") } else { words.join(": ") }
}

/// Copies a buffer the library allocated, then frees it.
fn take_buffer(api: &ffi::Api, buf: &mut GssBuffer) -> String {
    String::from_utf8_lossy(&take_bytes(api, buf)).trim_end_matches('\0').to_string()
}

fn take_bytes(api: &ffi::Api, buf: &mut GssBuffer) -> Vec<u8> {
    if buf.value.is_null() || buf.length == 0 {
        return Vec::new();
    }
    // SAFETY: the library filled `buf` with `length` bytes at `value`.
    let bytes = unsafe { std::slice::from_raw_parts(buf.value as *const u8, buf.length) }.to_vec();
    let mut min = 0;
    // SAFETY: RFC 2744 §7.24: releases a buffer the library allocated; it is not used again.
    unsafe { (api.release_buffer)(&mut min, buf) };
    bytes
}

fn failure(context: &'static str, major: OmUint32, minor: OmUint32) -> GssError {
    let message = status_message(major, minor);
    let routine = major & 0x00ff_0000;
    let lower = message.to_ascii_lowercase();
    if routine == ffi::S_CREDENTIALS_EXPIRED || lower.contains("expired") && lower.contains("ticket") {
        GssError::Expired { detail: message }
    } else if routine == ffi::S_NO_CRED
        || lower.contains("no kerberos credentials")
        || lower.contains("no credentials cache")
        || lower.contains("credentials cache file")
    {
        GssError::NoTicket { detail: message }
    } else {
        GssError::Failed { context, major, minor, message }
    }
}

/// A name the library holds.
struct OwnedName(ffi::Name);

impl OwnedName {
    fn import(api: &ffi::Api, text: &str, kind: &'static [u8]) -> Result<OwnedName, GssError> {
        let mut buf = GssBuffer::borrowing(text.as_bytes());
        let mut kind = ffi::oid(kind);
        let mut name: ffi::Name = std::ptr::null_mut();
        let mut minor = 0;
        // SAFETY: RFC 2744 §7.13: the input buffer and OID are valid for the call and only read.
        let major = unsafe { (api.import_name)(&mut minor, &mut buf, &mut kind, &mut name) };
        if major & ffi::ERROR_MASK != 0 {
            return Err(failure("the service name", major, minor));
        }
        Ok(OwnedName(name))
    }

    fn display(api: &ffi::Api, name: ffi::Name) -> Option<String> {
        if name.is_null() {
            return None;
        }
        let mut buf = GssBuffer::empty();
        let mut minor = 0;
        // SAFETY: RFC 2744 §7.10: `name` is a valid name; the output type may be discarded (null).
        let major = unsafe { (api.display_name)(&mut minor, name, &mut buf, std::ptr::null_mut()) };
        if major & ffi::ERROR_MASK != 0 {
            return None;
        }
        Some(take_buffer(api, &mut buf))
    }
}

impl Drop for OwnedName {
    fn drop(&mut self) {
        if let Ok(api) = ffi::api()
            && !self.0.is_null()
        {
            let mut minor = 0;
            // SAFETY: RFC 2744 §7.25: releases a name we own once.
            unsafe { (api.release_name)(&mut minor, &mut self.0) };
        }
    }
}

/// Deletes a context handle (without an output token: RFC 2744 §7.9 says
/// none should be sent).
fn delete_context(ctx: &mut ffi::Ctx) {
    if ctx.is_null() {
        return;
    }
    if let Ok(api) = ffi::api() {
        let mut minor = 0;
        // SAFETY: `ctx` came from init/accept_sec_context and is deleted once.
        unsafe { (api.delete_sec_context)(&mut minor, ctx, std::ptr::null_mut()) };
    }
}

/// The parties' names and the mechanism of a context.
fn inquire(api: &ffi::Api, ctx: ffi::Ctx) -> (Option<String>, Option<String>, Option<Mechanism>) {
    let mut src: ffi::Name = std::ptr::null_mut();
    let mut target: ffi::Name = std::ptr::null_mut();
    let mut mech: *mut ffi::GssOid = std::ptr::null_mut();
    let mut minor = 0;
    // SAFETY: RFC 2744 §7.20: `ctx` is a valid context; unwanted outputs are null.
    let major = unsafe {
        (api.inquire_context)(
            &mut minor,
            ctx,
            &mut src,
            &mut target,
            std::ptr::null_mut(),
            &mut mech,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if major & ffi::ERROR_MASK != 0 {
        return (None, None, None);
    }
    let (src, target) = (OwnedName(src), OwnedName(target));
    // SAFETY: the mechanism OID the library returned is static in the library (RFC 2744 §7.20).
    let mech = unsafe { ffi::oid_bytes(mech) };
    (
        OwnedName::display(api, src.0),
        OwnedName::display(api, target.0),
        (!mech.is_empty()).then(|| Mechanism::from_oid(&mech)),
    )
}

/// The client side of a SPNEGO exchange toward one service.
pub struct Initiator {
    ctx: ffi::Ctx,
    target: OwnedName,
    service: String,
    complete: bool,
    flags: OmUint32,
}

// SAFETY: a context and name are plain heap state of the library; RFC 2744
// lets a thread use them as long as no two threads do at once, which `&mut
// self` ensures.
unsafe impl Send for Initiator {}

impl Initiator {
    /// Starts a context toward `service@host` (the host as the user wrote
    /// it; krb5.conf decides about canonicalising it). Nothing is sent
    /// until [`Initiator::step`].
    pub fn new(service: &str, host: &str) -> Result<Initiator, GssError> {
        let api = api()?;
        let name = format!("{service}@{host}");
        if name.contains('\0') {
            return Err(GssError::Argument(format!("the host name {host:?} contains a NUL")));
        }
        let target = OwnedName::import(api, &name, ffi::oid::NT_HOSTBASED_SERVICE)?;
        Ok(Initiator { ctx: std::ptr::null_mut(), target, service: name, complete: false, flags: 0 })
    }

    /// The service principal asked for (`HTTP@host`).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Feeds the server's token (`None` for the first step) and returns the
    /// token to send, if any.
    pub fn step(&mut self, input: Option<&[u8]>) -> Result<Option<Vec<u8>>, GssError> {
        let api = api()?;
        if self.complete {
            return Err(GssError::Failed {
                context: "Kerberos",
                major: ffi::S_FAILURE,
                minor: 0,
                message: "the server sent a token after sign-in completed".into(),
            });
        }
        let mut input_buf = input.map(GssBuffer::borrowing);
        let input_ptr = input_buf.as_mut().map_or(std::ptr::null_mut(), |b| b as *mut GssBuffer);
        let mut mech = ffi::oid(ffi::oid::SPNEGO);
        let mut output = GssBuffer::empty();
        let mut flags: OmUint32 = 0;
        let mut minor = 0;
        // SAFETY: RFC 2744 §7.19: default credentials (null), our context
        // handle (null on the first call), a valid target name, the SPNEGO
        // OID, no channel bindings; the input buffer outlives the call and
        // the outputs are valid out-parameters.
        let major = unsafe {
            (api.init_sec_context)(
                &mut minor,
                std::ptr::null_mut(),
                &mut self.ctx,
                self.target.0,
                &mut mech,
                ffi::C_MUTUAL_FLAG | ffi::C_REPLAY_FLAG | ffi::C_SEQUENCE_FLAG,
                ffi::C_INDEFINITE,
                std::ptr::null_mut(),
                input_ptr,
                std::ptr::null_mut(),
                &mut output,
                &mut flags,
                std::ptr::null_mut(),
            )
        };
        let token = take_bytes(api, &mut output);
        if major & ffi::ERROR_MASK != 0 {
            let e = failure("Kerberos sign-in", major, minor);
            // a server token that does not verify is the server failing to prove itself
            return Err(match (input.is_some(), e) {
                (true, GssError::Failed { message, .. }) => {
                    GssError::MutualAuth { service: self.service.clone(), detail: message }
                }
                (_, e) => e,
            });
        }
        self.flags = flags;
        self.complete = major & 0xffff == ffi::S_COMPLETE && major & ffi::S_CONTINUE_NEEDED == 0;
        if self.complete && flags & ffi::C_MUTUAL_FLAG == 0 {
            return Err(GssError::MutualAuth {
                service: self.service.clone(),
                detail: "the mechanism did not provide it".into(),
            });
        }
        Ok((!token.is_empty()).then_some(token))
    }

    /// Whether the exchange is complete (and, with it, mutual authentication).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Ends an exchange the server answered without its last token: the
    /// server's identity is unproven.
    pub fn require_complete(&self) -> Result<(), GssError> {
        if self.complete {
            Ok(())
        } else {
            Err(GssError::MutualAuth {
                service: self.service.clone(),
                detail: "the server accepted without sending its proof".into(),
            })
        }
    }

    /// Who we are (`mara@EXAMPLE.TEST`) and which mechanism SPNEGO chose,
    /// once something was exchanged.
    pub fn signed_in(&self) -> (Option<String>, Option<Mechanism>) {
        if self.ctx.is_null() {
            return (None, None);
        }
        let Ok(api) = api() else { return (None, None) };
        let (client, _, mech) = inquire(api, self.ctx);
        (client, mech)
    }
}

impl Drop for Initiator {
    fn drop(&mut self) {
        delete_context(&mut self.ctx);
    }
}

/// What one accepted token gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The token to return (`WWW-Authenticate: Negotiate <token>`).
    pub token: Option<Vec<u8>>,
    /// Whether the client is authenticated now.
    pub complete: bool,
    /// The client's principal, once complete.
    pub client: Option<String>,
    /// The mechanism, once complete.
    pub mechanism: Option<Mechanism>,
}

/// The server side, with the service keys from a keytab.
pub struct Acceptor {
    cred: ffi::Cred,
    ctx: ffi::Ctx,
}

// SAFETY: as for `Initiator`: used by one thread at a time through `&mut self`.
unsafe impl Send for Acceptor {}

impl Acceptor {
    /// Accepts for any principal in `keytab` (no process-wide `KRB5_KTNAME`).
    pub fn with_keytab(keytab: &Path) -> Result<Acceptor, GssError> {
        let api = api()?;
        let path = std::ffi::CString::new(format!("FILE:{}", keytab.display()))
            .map_err(|_| GssError::Argument("the keytab path contains a NUL".into()))?;
        let key = c"keytab";
        let element = ffi::KeyValue { key: key.as_ptr(), value: path.as_ptr() };
        let store = ffi::KeyValueSet { count: 1, elements: &element };
        let mut cred: ffi::Cred = std::ptr::null_mut();
        let mut minor = 0;
        // SAFETY: gss_acquire_cred_from (MIT's credential-store extension to
        // RFC 2744 §7.2): no desired name (any key in the keytab), default
        // mechanisms, a store whose strings outlive the call.
        let major = unsafe {
            (api.acquire_cred_from)(
                &mut minor,
                std::ptr::null_mut(),
                ffi::C_INDEFINITE,
                std::ptr::null_mut(),
                ffi::C_ACCEPT,
                &store,
                &mut cred,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if major & ffi::ERROR_MASK != 0 {
            return Err(failure("the keytab", major, minor));
        }
        Ok(Acceptor { cred, ctx: std::ptr::null_mut() })
    }

    /// Accepts one token from the client.
    pub fn step(&mut self, token: &[u8]) -> Result<Accepted, GssError> {
        let api = api()?;
        let mut input = GssBuffer::borrowing(token);
        let mut src: ffi::Name = std::ptr::null_mut();
        let mut mech: *mut ffi::GssOid = std::ptr::null_mut();
        let mut output = GssBuffer::empty();
        let mut minor = 0;
        // SAFETY: RFC 2744 §7.1: our context handle (null at first), our
        // credential, an input buffer that outlives the call, no channel
        // bindings, valid out-parameters; delegated credentials not wanted.
        let major = unsafe {
            (api.accept_sec_context)(
                &mut minor,
                &mut self.ctx,
                self.cred,
                &mut input,
                std::ptr::null_mut(),
                &mut src,
                &mut mech,
                &mut output,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let src = OwnedName(src);
        let out = take_bytes(api, &mut output);
        if major & ffi::ERROR_MASK != 0 {
            // a failed context cannot continue (RFC 2744 §5.1): start over on the next token
            delete_context(&mut self.ctx);
            return Err(failure("accepting the client's token", major, minor));
        }
        let complete = major & ffi::S_CONTINUE_NEEDED == 0;
        // SAFETY: the returned mechanism OID is static in the library.
        let mech = unsafe { ffi::oid_bytes(mech) };
        let accepted = Accepted {
            token: (!out.is_empty()).then_some(out),
            complete,
            client: if complete { OwnedName::display(api, src.0) } else { None },
            mechanism: (complete && !mech.is_empty()).then(|| Mechanism::from_oid(&mech)),
        };
        if complete {
            // the next sign-in on this connection starts a new context
            delete_context(&mut self.ctx);
        }
        Ok(accepted)
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        delete_context(&mut self.ctx);
        if let Ok(api) = ffi::api()
            && !self.cred.is_null()
        {
            let mut minor = 0;
            // SAFETY: RFC 2744 §7.27: releases our credential once.
            unsafe { (api.release_cred)(&mut minor, &mut self.cred) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_read_in_dotted_form() {
        assert_eq!(dotted(ffi::oid::KRB5), "1.2.840.113554.1.2.2");
        assert_eq!(dotted(ffi::oid::SPNEGO), "1.3.6.1.5.5.2");
        assert_eq!(dotted(ffi::oid::NTLMSSP), "1.3.6.1.4.1.311.2.2.10");
        assert_eq!(Mechanism::from_oid(ffi::oid::KRB5), Mechanism::Kerberos);
        assert_eq!(Mechanism::from_oid(b"\x2b\x06\x01"), Mechanism::Other("1.3.6.1".into()));
    }
}
