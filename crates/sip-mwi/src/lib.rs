//! Message-waiting lamps over SIP, as plain code (no sockets, no clock).
//!
//! - [`summary`]: the RFC 3842 `application/simple-message-summary` body:
//!   a typed model, the exact wire form phones expect, a tolerant parser.
//! - [`digest`]: HTTP digest authentication for challenged requests
//!   (RFC 3261 §22, RFC 7616/8760): MD5 and SHA-256, `-sess`, `qop=auth`,
//!   nonce counting. rsipstack rejects `algorithm=SHA-256` and `qop` lists,
//!   so this module answers the challenges itself.
//! - [`guard`]: who may REGISTER and SUBSCRIBE: digest as a UAS, the
//!   address check for phones without credentials, rate limits.
//! - [`notifier`]: phones that SUBSCRIBE to us (RFC 6665), sans-IO.
//! - [`publication`]: what a presence server's answer to our PUBLISH lets us keep.
//! - [`relay`]: the sans-IO relay policy: per phone the state wanted, the
//!   state the phone acknowledged, coalescing of bursts, periodic refresh
//!   and retry with backoff. Fed events and time, it says what to send.
//!
//! ```
//! use lamplighter_sip_mwi::summary::{MessageSummary, Counts};
//! let body = MessageSummary::voice("sip:613@192.0.2.10", Counts { new: 2, old: 8, urgent_new: 0, urgent_old: 2 }).to_string();
//! assert_eq!(body, "Messages-Waiting: yes\r\nMessage-Account: sip:613@192.0.2.10\r\nVoice-Message: 2/8 (0/2)\r\n");
//! assert_eq!(body.parse::<MessageSummary>().unwrap().voice_counts().unwrap().new, 2);
//! ```

pub mod digest;
pub mod guard;
pub mod notifier;
pub mod publication;
pub mod relay;
pub mod summary;
pub mod uri;

/// What is wrong with a message-summary body or a digest challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MwiError {
    /// The text does not have the structure the grammar requires.
    #[error("malformed {what}: {detail}")]
    Syntax {
        /// Which grammar element.
        what: &'static str,
        /// What was found.
        detail: String,
    },
    /// A digest challenge asks for something we do not support.
    #[error("unsupported digest challenge: {0}")]
    Unsupported(String),
}
