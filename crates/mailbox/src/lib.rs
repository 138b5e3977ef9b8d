//! What the engine needs from a mailbox, whatever protocol reaches it: the
//! [`Backend`] trait. A backend tracks one folder and reports
//! [`MailboxEvent`]s (typed [`Change`]s, then the sync state to persist
//! through a [`StateStore`], and its [`Connection`]); it marks items read
//! and downloads attachments when the user acts; and it diagnoses itself for
//! "Check settings" ([`MailboxCheck`]).
//!
//! The interface fits a streaming backend (EWS: Subscribe, SyncFolderItems,
//! GetStreamingEvents) as well as a polling one (Microsoft Graph delta
//! queries): either way the backend owns its loop and its retry policy, and
//! only hands out changes after it has them and states after their changes.
//! Backends live in their own crates (`lamplighter-ews-client` today); the
//! runner picks one from the settings and never looks behind this trait.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

pub use lamplighter_ews_wire::{Item, ItemId};
pub use lamplighter_mailbox_sync::Change;

mod connection;
mod state;

pub use connection::Connection;
pub use state::{FileState, MemoryState, StateStore};

/// A future a backend returns; boxed so that [`Backend`] can be a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a tracking backend reports, in order: a state that follows changes is
/// only handed to the [`StateStore`] after those changes were sent here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxEvent {
    /// The folder changed. Boxed: an item is ~400 bytes, and a tokio channel
    /// allocates 32 slots ahead, so unboxed every tracked mailbox held 13 KB
    /// of empty slots (130 MB for a gateway's 10,000); one allocation per
    /// change costs nothing next to the request that brought it.
    Change(Box<Change>),
    /// The connection changed.
    Connection(Connection),
}

/// Why a mailbox action failed, in terms a front end can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    /// The item (or its attachment) is not in the mailbox any more.
    #[error("{what} is not in the mailbox")]
    NotFound {
        /// What was looked for, in words.
        what: String,
    },
    /// The server refused the credentials; nothing is retried until they change.
    #[error("sign-in refused: {0}")]
    SignInRefused(String),
    /// The server could not be reached or failed the request.
    #[error("{operation} failed: {message}")]
    Failed {
        /// The protocol operation (`UpdateItem`, `GetAttachment`, …).
        operation: &'static str,
        /// The server's or the transport's words.
        message: String,
    },
    /// A local file could not be written.
    #[error("cannot write {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// The operating system's words.
        reason: String,
    },
}

/// One step of a backend's self-diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckStep {
    /// Whether the step passed.
    pub ok: bool,
    /// What was checked, and what came of it.
    pub what: String,
    /// What the user can do about a failure.
    pub hint: Option<String>,
}

/// The result of [`Backend::check`].
#[derive(Debug, Clone, Default)]
pub struct MailboxCheck {
    /// The steps, in the order they ran.
    pub steps: Vec<CheckStep>,
    /// The voicemail items read on the way, so the caller can count the lamp
    /// with its own state core (`None` when the folder could not be read).
    pub voicemails: Option<Vec<Item>>,
    /// The server refused the credentials: the check stopped there, and
    /// nothing else should try them again.
    pub sign_in_refused: bool,
    /// How the backend signed in, in words for the user ("Kerberos as
    /// mara@EXAMPLE.TEST (mutually authenticated: …)", "NTLM").
    pub signed_in_with: Option<String>,
}

/// A running change tracking: stopping it ends the server-side subscription.
pub trait Tracking: Send + Sync {
    /// Ends a wait now: after the user's "Retry now", or new credentials after
    /// a refused sign-in (which is never retried on its own).
    fn retry_now(&self);
    /// Stops; the future ends once the server was told (best effort, bounded).
    fn stop(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// A mailbox reached over one protocol.
pub trait Backend: Send + Sync {
    /// Where the mailbox is, for people (`https://…/EWS/Exchange.asmx`).
    fn location(&self) -> String;

    /// Starts tracking the folder that holds voicemail and call notices. It
    /// resumes from `state` and reports into `events` until stopped; when the
    /// receiver is gone it stops by itself.
    fn track(
        self: Arc<Self>,
        state: Arc<dyn StateStore>,
        events: tokio::sync::mpsc::Sender<MailboxEvent>,
    ) -> Box<dyn Tracking>;

    /// Marks an item read (a voicemail heard, a missed call seen).
    fn mark_read<'a>(&'a self, id: &'a ItemId) -> BoxFuture<'a, Result<(), MailboxError>>;

    /// Downloads an attachment to `path` (created 0600); `progress` gets the
    /// bytes written so far.
    fn download_attachment<'a>(
        &'a self,
        attachment_id: &'a str,
        path: &'a Path,
        progress: Box<dyn FnMut(u64) + Send + 'a>,
    ) -> BoxFuture<'a, Result<(), MailboxError>>;

    /// Diagnoses the connection step by step: where the mailbox is, sign-in,
    /// the folders, change notifications. One refused sign-in ends it.
    fn check(&self) -> BoxFuture<'_, MailboxCheck>;
}
