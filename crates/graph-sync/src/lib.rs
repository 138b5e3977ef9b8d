//! Change tracking of one mailbox folder over Microsoft Graph, sans-IO, the
//! Graph counterpart of `lamplighter-mailbox-sync`: [`sync::DeltaSync`]
//! decides which delta request is due when and turns the answers into the
//! mailbox's [`Change`](lamplighter_mailbox_sync::Change)s; [`convert`]
//! makes a Graph message the mailbox's item. No HTTP and no clock here: a
//! driver feeds bytes (parsed by `lamplighter-graph-wire`) and `now`.

pub mod convert;
pub mod sync;

pub use sync::{DeltaSync, PollConfig, Request, Response, Status};
