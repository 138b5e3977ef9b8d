//! Change tracking of a mailbox over Microsoft Graph, sans-IO, the
//! Graph counterpart of `lamplighter-mailbox-sync`: [`sync::DeltaSync`]
//! decides which delta request of one folder is due when and turns the
//! answers into the mailbox's [`Change`](lamplighter_mailbox_sync::Change)s;
//! [`mailbox::MailboxSync`] follows every folder a voicemail may be in and
//! merges them, so a rule's or the user's move is no news; [`convert`]
//! makes a Graph message the mailbox's item. No HTTP and no clock here: a
//! driver feeds bytes (parsed by `lamplighter-graph-wire`) and `now`.

pub mod convert;
pub mod mailbox;
pub mod sync;

pub use mailbox::{FolderRef, MailboxSync, Step};
pub use sync::{DeltaSync, PollConfig, Request, Response, Status};
