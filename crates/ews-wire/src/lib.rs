//! EWS on the wire, sans-IO: requests are built as bytes and responses are
//! parsed from bytes; no HTTP, no clock (the HTTP layer comes in
//! `ews-client`).
//!
//! - [`xml`]: namespace-aware reading on quick-xml. Elements are matched by
//!   namespace URI and local name, never by prefix: servers write `s:`,
//!   `soap:`, default namespaces, and unprefixed envelopes in streaming frames.
//!   Unknown elements are skipped. No DTD, no entity expansion beyond XML's five.
//! - [`response`]: `ResponseClass`, [`ResponseCode`], SOAP faults with their
//!   `BackOffMilliseconds` (ErrorServerBusy).
//! - [`find_item`]: the FindItem request for voicemail and missed-call items
//!   (with the MS-OXOUM properties) and its response, page by page.
//! - [`subscribe`], [`sync_folder_items`]: subscriptions and the resync from
//!   a stored sync state.
//! - [`streaming`]: GetStreamingEvents bodies split into envelopes as the
//!   bytes arrive, and each envelope read into typed events; GetEvents (pull).
//! - [`update_item`]: mark items read or unread, with the change key.
//! - [`get_attachment`]: the audio, base64-decoded as it arrives.
//! - [`request`]: the envelope every request shares.
//!
//! Every response is bounded by [`MAX_RESPONSE_BYTES`] so a hostile server
//! cannot make us parse without end.

pub mod autodiscover;
pub mod find_item;
pub mod get_attachment;
pub mod request;
pub mod response;
pub mod streaming;
pub mod subscribe;
pub mod sync_folder_items;
pub mod update_item;
pub mod xml;

pub use find_item::{
    Attachment, FindItemPage, FindItemRequest, GetItemRequest, Item, ItemId, Mailbox, UmProperties, parse_find_item,
    parse_get_item,
};
pub use get_attachment::{AttachmentDecoder, AttachmentMeta, GetAttachmentRequest, parse_get_attachment};
pub use request::SERVER_VERSION;
pub use response::{ResponseClass, ResponseCode, ResponseMessage, SoapFault};
pub use streaming::{
    ConnectionStatus, Event, EventKind, FrameSplitter, GetEventsRequest, GetStreamingEventsRequest, PullNotification,
    StreamingBody, parse_get_events, parse_streaming_frame,
};
pub use subscribe::{
    SubscribeRequest, Subscription, SubscriptionKind, UnsubscribeRequest, parse_subscribe, parse_unsubscribe,
};
pub use sync_folder_items::{Change, MaxChanges, SyncFolderItemsRequest, SyncPage, parse_sync_folder_items};
pub use update_item::{ConflictPolicy, MarkReadRequest, parse_update_item};

/// The largest response body we parse (64 MiB; a 1,000-item page is ~1.2 MB).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// What went wrong with a response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EwsError {
    /// Not well-formed XML, or not the structure the operation answers with.
    #[error("malformed EWS response: {0}")]
    Malformed(String),
    /// The server answered with a SOAP fault.
    #[error("SOAP fault from the server ({}): {}", .0.code.rsplit(':').next().unwrap_or(&.0.code), .0.message)]
    Fault(Box<SoapFault>),
    /// The response is larger than we accept.
    #[error("EWS response of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
}
