//! Where Lamplighter keeps passwords and tokens: the OS keyring, and nowhere else.
//!
//! This crate owns every call into the keyring so the rest of the program
//! never sees a store type. Entries are filed under the service name
//! `lamplighter` with a user field that names the account:
//! `mailbox:<email>` for the EWS password or token, `phone:<sip-uri>` for a
//! phone's digest password ([`SecretKey`]).
//!
//! [`Keyring::secret_service`] opens the freedesktop Secret Service (GNOME
//! Keyring, KWallet) and checks it once, so that "no keyring" is one clear
//! error at start-up instead of a failure on first use.
//! [`Keyring::in_memory`] keeps secrets for this process only: the fallback
//! when no keyring is running, and the store unit tests use.
//!
//! [`Secret`] never prints its content: its `Debug` and `Display` say
//! `«redacted»`, and its memory is wiped on drop.
//!
//! ```
//! use lamplighter_secrets::{Keyring, Secret, SecretKey};
//! let ring = Keyring::in_memory();
//! let key = SecretKey::Mailbox("anna@example.com".into());
//! ring.set(&key, &Secret::new("pw")).unwrap();
//! assert_eq!(ring.get(&key).unwrap().unwrap().expose(), "pw");
//! assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(«redacted»)");
//! ```

use keyring_core::{CredentialStore, Entry};
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The keyring service name every Lamplighter entry is filed under.
pub const SERVICE: &str = "lamplighter";

/// What went wrong talking to the keyring. Messages never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// No keyring service answers (no Secret Service on the session bus, no bus).
    #[error(
        "no keyring is available ({detail}); start GNOME Keyring or KWallet, or passwords are kept for this session only"
    )]
    Unavailable {
        /// What the platform said.
        detail: String,
    },
    /// The keyring is there but locked or refused access.
    #[error("the keyring is locked or refused access ({detail}); unlock it and try again")]
    Locked {
        /// What the platform said.
        detail: String,
    },
    /// The stored secret is not text.
    #[error("the stored secret for {0} is not valid text")]
    NotText(String),
    /// Any other keyring failure.
    #[error("keyring error for {key}: {detail}")]
    Platform {
        /// The entry concerned.
        key: String,
        /// What the platform said.
        detail: String,
    },
}

/// Which account a secret belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SecretKey {
    /// The EWS password or token of the mailbox with this e-mail address.
    Mailbox(String),
    /// The digest password of the phone with this SIP URI.
    Phone(String),
    /// The Microsoft 365 sign-in (its refresh token) of the mailbox with this e-mail address.
    MicrosoftGrant(String),
}

impl SecretKey {
    /// The keyring's user field for this key.
    pub fn user(&self) -> String {
        match self {
            SecretKey::Mailbox(email) => format!("mailbox:{}", email.to_ascii_lowercase()),
            SecretKey::Phone(uri) => format!("phone:{}", uri.to_ascii_lowercase()),
            SecretKey::MicrosoftGrant(email) => format!("microsoft:{}", email.to_ascii_lowercase()),
        }
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.user())
    }
}

/// A password or token. It does not print, and is wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value, for the one place that must send it (an HTTP header, a digest).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(«redacted»)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("«redacted»")
    }
}

/// Which kind of store a [`Keyring`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The OS keyring: secrets survive restarts.
    Os,
    /// Process memory: secrets are gone when Lamplighter exits.
    SessionOnly,
}

/// A handle on one credential store.
#[derive(Clone)]
pub struct Keyring {
    store: Arc<CredentialStore>,
    kind: StoreKind,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("kind", &self.kind).finish()
    }
}

impl Keyring {
    /// Opens the freedesktop Secret Service on the session bus and checks that
    /// it answers. Blocks on D-Bus for a few milliseconds: call it off any UI thread.
    #[cfg(feature = "secret-service")]
    pub fn secret_service() -> Result<Self, SecretsError> {
        let store = zbus_secret_service_keyring_store::Store::new().map_err(|e| classify("store", e))?;
        let ring = Keyring { store, kind: StoreKind::Os };
        // A probe read: a missing entry is fine; a locked or absent service is not.
        ring.get(&SecretKey::Mailbox("probe@lamplighter.invalid".into()))?;
        Ok(ring)
    }

    /// A store in this process's memory only.
    pub fn in_memory() -> Self {
        let store: Arc<CredentialStore> = match keyring_core::mock::Store::new() {
            Ok(s) => s,
            Err(e) => unreachable!("the in-memory store cannot fail to start: {e}"),
        };
        Keyring { store, kind: StoreKind::SessionOnly }
    }

    /// What kind of store this is.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    fn entry(&self, key: &SecretKey) -> Result<Entry, SecretsError> {
        Entry::new_in_store(&self.store, SERVICE, &key.user()).map_err(|e| classify(&key.user(), e))
    }

    /// Stores (or replaces) a secret.
    pub fn set(&self, key: &SecretKey, secret: &Secret) -> Result<(), SecretsError> {
        self.entry(key)?.set_password(secret.expose()).map_err(|e| classify(&key.user(), e))
    }

    /// Reads a secret; `None` when there is none.
    pub fn get(&self, key: &SecretKey) -> Result<Option<Secret>, SecretsError> {
        match self.entry(key)?.get_password() {
            Ok(p) => Ok(Some(Secret::new(p))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(&key.user(), e)),
        }
    }

    /// Removes a secret; `false` when there was none.
    pub fn delete(&self, key: &SecretKey) -> Result<bool, SecretsError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(classify(&key.user(), e)),
        }
    }
}

fn classify(key: &str, e: keyring_core::Error) -> SecretsError {
    use keyring_core::Error as E;
    match e {
        E::NoDefaultStore => SecretsError::Unavailable { detail: "no store".into() },
        E::PlatformFailure(p) => {
            let detail = p.to_string();
            let unreachable =
                ["ServiceUnknown", "not provided by any", "NotFound", "No such file", "Connection", "connect"];
            if unreachable.iter().any(|w| detail.contains(w)) || format!("{p:?}").contains("Connection") {
                SecretsError::Unavailable { detail }
            } else {
                SecretsError::Platform { key: key.to_string(), detail }
            }
        }
        E::NoStorageAccess(p) => SecretsError::Locked { detail: p.to_string() },
        E::BadEncoding(_) => SecretsError::NotText(key.to_string()),
        other => SecretsError::Platform { key: key.to_string(), detail: other.to_string() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_and_case_folded() {
        assert_eq!(SecretKey::Mailbox("Anna@Example.com".into()).user(), "mailbox:anna@example.com");
        assert_eq!(SecretKey::Phone("sip:613@PBX".into()).user(), "phone:sip:613@pbx");
    }

    #[test]
    fn in_memory_round_trip_and_delete() {
        let ring = Keyring::in_memory();
        let key = SecretKey::Phone("sip:613@192.0.2.10".into());
        assert_eq!(ring.get(&key).expect("get"), None);
        ring.set(&key, &Secret::new("one")).expect("set");
        ring.set(&key, &Secret::new("two")).expect("replace");
        assert_eq!(ring.get(&key).expect("get").map(|s| s.expose().to_string()), Some("two".into()));
        assert!(ring.delete(&key).expect("delete"));
        assert!(!ring.delete(&key).expect("delete again"));
        assert_eq!(ring.get(&key).expect("get"), None);
        assert_eq!(ring.kind(), StoreKind::SessionOnly);
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert!(!format!("{:?}", Some(s)).contains("hunter2"));
    }
}
