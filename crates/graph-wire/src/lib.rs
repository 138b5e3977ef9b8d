//! Microsoft Graph's mail API as Lamplighter uses it, sans-IO: what goes
//! out (paths, `Prefer`, `$batch` bodies) and what comes back (messages,
//! delta pages, errors), typed after the v1.0 CSDL
//! (`../shared/graph-schema`), the metadata Microsoft's SDKs are made from.
//! Transport, tokens and timing live in the client; this crate only reads
//! and writes bytes, so every reader is fed recorded bodies in tests and
//! arbitrary ones by the fuzzer.
//!
//! - [`message`]: `message`, its recipients, body, headers, extended
//!   properties (the UM ones in [`message::props`]) and attachments;
//! - [`delta`]: a page of `messages/delta` with `@removed` and its link;
//! - [`folder`]: pages of mail folders, for choosing the folders to follow;
//! - [`error`]: the error body and what an answer asks of the caller;
//! - [`request`]: the requests, and the check that a link stays on the service;
//! - [`batch`]: JSON `$batch`.

pub mod batch;
pub mod delta;
pub mod error;
pub mod folder;
pub mod message;
pub mod request;
pub mod subscription;

pub use delta::{Continue, DeltaEntry, DeltaPage, parse_delta};
pub use error::{Failure, GraphError, classify, parse_error};
pub use folder::{FolderPage, MailFolder, parse_folder, parse_folders};
pub use message::{Attachment, Message, UmProps};

/// The largest body read (a page of 100 messages with text bodies is far below).
pub const MAX_BODY: usize = 16 << 20;

/// Why bytes could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not JSON of the expected shape (serde's words, with the line and column).
    #[error("not the JSON Graph sends: {0}")]
    Json(String),
    /// JSON, but not a valid answer.
    #[error("{0}")]
    Malformed(String),
    /// Over [`MAX_BODY`].
    #[error("a body of {size} bytes is over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    /// A link that leaves the service root.
    #[error("the server sent a link outside the Graph service ({0}); it is not followed")]
    ForeignLink(String),
}

pub(crate) fn check_size(body: &[u8]) -> Result<(), WireError> {
    if body.len() > MAX_BODY {
        return Err(WireError::TooLarge { size: body.len(), limit: MAX_BODY });
    }
    Ok(())
}

/// Reads one message (`GET /me/messages/{id}`).
pub fn parse_message(body: &[u8]) -> Result<Message, WireError> {
    check_size(body)?;
    serde_json::from_slice(body).map_err(|e| WireError::Json(e.to_string()))
}

/// Reads a collection of attachments (`GET …/attachments`).
pub fn parse_attachments(body: &[u8]) -> Result<Vec<Attachment>, WireError> {
    #[derive(serde::Deserialize)]
    struct Collection {
        value: Vec<Attachment>,
    }
    check_size(body)?;
    Ok(serde_json::from_slice::<Collection>(body).map_err(|e| WireError::Json(e.to_string()))?.value)
}
