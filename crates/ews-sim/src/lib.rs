//! An Exchange Web Services simulator on loopback. It is the server of the
//! EWS tests and the demo mailbox, and it follows the schema and the real
//! servers' samples rather than our client's assumptions:
//!
//! - SOAP 1.1 envelopes with the real namespaces and a `ServerVersionInfo`
//!   header; every EWS request is checked against the official schema
//!   (`xmllint`) and an invalid one is refused with an `ErrorSchemaValidation`
//!   SOAP fault, as Exchange does;
//! - FindItem (paged), GetItem (extended properties, internet headers,
//!   attachments), UpdateItem (read flag, change keys, conflict policy),
//!   GetAttachment, SyncFolderItems (opaque sync states), Subscribe (streaming
//!   and pull), GetStreamingEvents (chunked, several envelopes, heartbeats, a
//!   timed `Closed`), GetEvents (watermarks), Unsubscribe;
//! - Autodiscover, POX and SOAP; Basic, NTLM (per connection) and bearer
//!   tokens; HTTPS with a generated CA;
//! - injected trouble: `ErrorServerBusy` with `BackOffMilliseconds`,
//!   dropped streams, a restart that forgets subscriptions, invalidated sync
//!   states, a changed password.
//!
//! [`store`] is the mailbox (sans-IO), [`soap`] reads requests and writes
//! responses, [`server`] is the HTTP side and the control API.

pub mod control;
pub mod folders;
pub mod mailboxes;
pub mod server;
pub mod soap;
pub mod store;

pub use folders::{DELETED_ID, INBOX_ID};
pub use server::{
    AppRegistration, AuthSchemes, EntraConfig, KerberosAcceptor, LifecycleEvent, MAX_IDS_PER_STREAM, MailboxAt,
    MissedCall, Served, SimConfig, SimError, Simulator, Validation, Voicemail, backend_of,
};
pub use store::{NewItem, UmProps};
