//! The GSSAPI C ABI (RFC 2744 as MIT krb5 lays it out on Linux), looked up
//! in `libgssapi_krb5.so.2` when first needed. This module is the crate's
//! only `unsafe` surface besides the calls in `lib.rs`; the struct layouts
//! and signatures are copied from RFC 2744 §3 and MIT's `gssapi.h` (which
//! packs nothing on Linux), so no C header is needed at build time.

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

pub(crate) type OmUint32 = u32;

#[repr(C)]
pub(crate) struct GssBuffer {
    pub length: usize,
    pub value: *mut c_void,
}

impl GssBuffer {
    pub(crate) fn empty() -> GssBuffer {
        GssBuffer { length: 0, value: std::ptr::null_mut() }
    }

    /// A view of `bytes` (GSSAPI only reads input buffers).
    pub(crate) fn borrowing(bytes: &[u8]) -> GssBuffer {
        GssBuffer { length: bytes.len(), value: bytes.as_ptr() as *mut c_void }
    }
}

#[repr(C)]
pub(crate) struct GssOid {
    pub length: OmUint32,
    pub elements: *mut c_void,
}

#[repr(C)]
pub(crate) struct GssOidSet {
    pub count: usize,
    pub elements: *mut GssOid,
}

#[repr(C)]
pub(crate) struct KeyValue {
    pub key: *const c_char,
    pub value: *const c_char,
}

#[repr(C)]
pub(crate) struct KeyValueSet {
    pub count: OmUint32,
    pub elements: *const KeyValue,
}

/// Opaque handles.
pub(crate) type Name = *mut c_void;
pub(crate) type Cred = *mut c_void;
pub(crate) type Ctx = *mut c_void;

pub(crate) const C_ACCEPT: c_int = 2;
pub(crate) const C_GSS_CODE: c_int = 1;
pub(crate) const C_MECH_CODE: c_int = 2;
pub(crate) const C_MUTUAL_FLAG: OmUint32 = 2;
pub(crate) const C_REPLAY_FLAG: OmUint32 = 4;
pub(crate) const C_SEQUENCE_FLAG: OmUint32 = 8;
pub(crate) const S_COMPLETE: OmUint32 = 0;
pub(crate) const S_CONTINUE_NEEDED: OmUint32 = 1;
/// Calling and routine errors; the low 16 bits are supplementary information.
pub(crate) const ERROR_MASK: OmUint32 = 0xffff_0000;
pub(crate) const S_NO_CRED: OmUint32 = 7 << 16;
pub(crate) const S_CREDENTIALS_EXPIRED: OmUint32 = 11 << 16;
pub(crate) const S_FAILURE: OmUint32 = 13 << 16;
/// `GSS_C_INDEFINITE`: as long as the credential lasts.
pub(crate) const C_INDEFINITE: OmUint32 = 0xffff_ffff;

/// Object identifiers, DER contents octets.
pub(crate) mod oid {
    /// 1.2.840.113554.1.2.1.4, `GSS_C_NT_HOSTBASED_SERVICE` (`service@host`).
    pub(crate) const NT_HOSTBASED_SERVICE: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x01\x04";
    /// 1.3.6.1.5.5.2, SPNEGO (RFC 4178).
    pub(crate) const SPNEGO: &[u8] = b"\x2b\x06\x01\x05\x05\x02";
    /// 1.2.840.113554.1.2.2, Kerberos V5 (RFC 4121).
    pub(crate) const KRB5: &[u8] = b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02";
    /// 1.3.6.1.4.1.311.2.2.10, NTLMSSP (gss-ntlmssp).
    pub(crate) const NTLMSSP: &[u8] = b"\x2b\x06\x01\x04\x01\x82\x37\x02\x02\x0a";
}

type ImportName = unsafe extern "C" fn(*mut OmUint32, *mut GssBuffer, *mut GssOid, *mut Name) -> OmUint32;
type ReleaseName = unsafe extern "C" fn(*mut OmUint32, *mut Name) -> OmUint32;
type DisplayName = unsafe extern "C" fn(*mut OmUint32, Name, *mut GssBuffer, *mut *mut GssOid) -> OmUint32;
type ReleaseBuffer = unsafe extern "C" fn(*mut OmUint32, *mut GssBuffer) -> OmUint32;
type ReleaseCred = unsafe extern "C" fn(*mut OmUint32, *mut Cred) -> OmUint32;
type DeleteSecContext = unsafe extern "C" fn(*mut OmUint32, *mut Ctx, *mut GssBuffer) -> OmUint32;
type DisplayStatus =
    unsafe extern "C" fn(*mut OmUint32, OmUint32, c_int, *mut GssOid, *mut OmUint32, *mut GssBuffer) -> OmUint32;
type InitSecContext = unsafe extern "C" fn(
    *mut OmUint32,  // minor_status
    Cred,           // claimant_cred_handle
    *mut Ctx,       // context_handle
    Name,           // target_name
    *mut GssOid,    // mech_type
    OmUint32,       // req_flags
    OmUint32,       // time_req
    *mut c_void,    // input_chan_bindings
    *mut GssBuffer, // input_token
    *mut *mut GssOid,
    *mut GssBuffer, // output_token
    *mut OmUint32,  // ret_flags
    *mut OmUint32,  // time_rec
) -> OmUint32;
type AcceptSecContext = unsafe extern "C" fn(
    *mut OmUint32,
    *mut Ctx,
    Cred,
    *mut GssBuffer,
    *mut c_void,
    *mut Name, // src_name
    *mut *mut GssOid,
    *mut GssBuffer,
    *mut OmUint32,
    *mut OmUint32,
    *mut Cred, // delegated_cred_handle
) -> OmUint32;
type AcquireCredFrom = unsafe extern "C" fn(
    *mut OmUint32,
    Name,
    OmUint32,
    *mut GssOidSet,
    c_int,
    *const KeyValueSet,
    *mut Cred,
    *mut *mut GssOidSet,
    *mut OmUint32,
) -> OmUint32;
type InquireContext = unsafe extern "C" fn(
    *mut OmUint32,
    Ctx,
    *mut Name,
    *mut Name,
    *mut OmUint32,
    *mut *mut GssOid,
    *mut OmUint32,
    *mut c_int,
    *mut c_int,
) -> OmUint32;

/// The entry points, resolved once; the library stays loaded for the process.
pub(crate) struct Api {
    _lib: libloading::Library,
    pub import_name: ImportName,
    pub release_name: ReleaseName,
    pub display_name: DisplayName,
    pub release_buffer: ReleaseBuffer,
    pub release_cred: ReleaseCred,
    pub delete_sec_context: DeleteSecContext,
    pub display_status: DisplayStatus,
    pub init_sec_context: InitSecContext,
    pub accept_sec_context: AcceptSecContext,
    pub acquire_cred_from: AcquireCredFrom,
    pub inquire_context: InquireContext,
}

/// The library names tried in order: MIT krb5's soname, then the unversioned
/// development link some systems have instead.
const LIBRARIES: &[&str] = &["libgssapi_krb5.so.2", "libgssapi_krb5.so"];

/// Names another GSSAPI library to load instead (a krb5 outside the linker's
/// path); the only one tried when set.
pub(crate) const LIBRARY_VAR: &str = "LAMPLIGHTER_GSSAPI_LIBRARY";

fn load() -> Result<Api, String> {
    let chosen = std::env::var(LIBRARY_VAR).ok().filter(|v| !v.is_empty());
    let names: Vec<&str> = match &chosen {
        Some(path) => vec![path.as_str()],
        None => LIBRARIES.to_vec(),
    };
    let mut last = String::new();
    for name in names {
        // SAFETY: loading MIT krb5 runs its library constructors, which only
        // set up its own state (no process-wide hooks).
        let lib = match unsafe { libloading::Library::new(name) } {
            Ok(l) => l,
            Err(e) => {
                last = format!("{name} cannot be loaded ({e})");
                continue;
            }
        };
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the type is the RFC 2744 signature of this symbol;
                // the pointer is copied out and used only while `_lib` (kept
                // in `Api`, which lives for the process) stays loaded.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("{name} has no {}: {e}", $name))?
            };
        }
        return Ok(Api {
            import_name: sym!("gss_import_name"),
            release_name: sym!("gss_release_name"),
            display_name: sym!("gss_display_name"),
            release_buffer: sym!("gss_release_buffer"),
            release_cred: sym!("gss_release_cred"),
            delete_sec_context: sym!("gss_delete_sec_context"),
            display_status: sym!("gss_display_status"),
            init_sec_context: sym!("gss_init_sec_context"),
            accept_sec_context: sym!("gss_accept_sec_context"),
            acquire_cred_from: sym!("gss_acquire_cred_from"),
            inquire_context: sym!("gss_inquire_context"),
            _lib: lib,
        });
    }
    Err(last)
}

/// The loaded API, or why it could not be loaded (remembered: tried once).
pub(crate) fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// An OID descriptor pointing at static bytes.
pub(crate) fn oid(bytes: &'static [u8]) -> GssOid {
    GssOid { length: bytes.len() as OmUint32, elements: bytes.as_ptr() as *mut c_void }
}

/// Copies the bytes of an OID the library owns.
///
/// # Safety
/// `p` is null or points at a valid `gss_OID_desc`.
pub(crate) unsafe fn oid_bytes(p: *const GssOid) -> Vec<u8> {
    if p.is_null() {
        return Vec::new();
    }
    // SAFETY: the caller promises a valid descriptor, whose elements hold `length` bytes.
    unsafe {
        let o = &*p;
        if o.elements.is_null() {
            return Vec::new();
        }
        std::slice::from_raw_parts(o.elements as *const u8, o.length as usize).to_vec()
    }
}
