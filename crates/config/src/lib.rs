//! Lamplighter's settings: the TOML file in the XDG config directory, and the
//! validation that turns what a user typed into [`Settings`] the rest of the
//! program can trust.
//!
//! This crate owns three things and nothing else:
//! - **the file format** ([`file`](mod@file)): a versioned TOML document
//!   (`schema_version = 1`). A file that cannot be read is never overwritten
//!   silently: it is copied to a backup first and the caller is told where.
//! - **validation** ([`form`]): a [`SettingsForm`] holds strings as typed in
//!   the settings window or the file; [`SettingsForm::validate`] returns
//!   [`Settings`] or one [`FieldError`] per bad field, so a front end can
//!   show each message beside its field (the ripgrep "lowargs → hiargs" split).
//! - **paths** ([`paths`]): where config, state (logs) and cache live.
//!
//! Secrets never pass through here: passwords live in the OS keyring
//! (`lamplighter-secrets`); the file may only name an environment variable
//! (`password_env`) for headless use.
//!
//! ```
//! use lamplighter_config::{SettingsForm, MailboxForm};
//! let mut form = SettingsForm::default();
//! form.mailbox = Some(MailboxForm { email: "anna@example.com".into(), auth: "ntlm".into(), ..Default::default() });
//! let settings = form.validate().expect("valid");
//! assert_eq!(settings.mailbox.unwrap().email, "anna@example.com");
//! ```

pub mod file;
pub mod form;
pub mod paths;

pub use file::{Loaded, SCHEMA_VERSION, load, save};
pub use form::{
    AUTHORITY, AudioOptions, AuthMethod, FieldError, GRAPH_URL, MailBackend, Mailbox, MailboxForm, MwiOptions,
    Notifications, Phone, PhoneForm, PhoneMode, Settings, SettingsForm, SipTransport, UserIdentity,
};
pub use paths::Paths;

use std::path::PathBuf;

/// Everything that can go wrong reading or writing the settings file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but is not a valid settings document. It was copied to
    /// `backup` (when that succeeded) and left in place untouched.
    #[error("the settings file {path} is unreadable ({reason}); a copy was kept at {}", backup.as_ref().map(|b| b.display().to_string()).unwrap_or_else(|| "nowhere (the copy failed)".into()))]
    Corrupt {
        /// The settings file.
        path: PathBuf,
        /// Where the damaged file was copied, if the copy succeeded.
        backup: Option<PathBuf>,
        /// What is wrong with it, with line and column where known.
        reason: String,
    },
    /// The file was written by a newer Lamplighter; it is left alone.
    #[error(
        "the settings file {path} has schema version {found}, newer than this Lamplighter understands ({supported}); it is left untouched"
    )]
    TooNew {
        /// The settings file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The values are not valid; one entry per field.
    #[error("invalid settings: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// Reading or writing failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", …).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No home directory: the OS gives no place for settings.
    #[error("no configuration directory could be determined (is HOME set?)")]
    NoConfigDir,
}
