//! Which calls the user really missed.
//!
//! A user signed in on a desk phone, a softphone and a mobile client gets one
//! missed call reported up to three times, and "missed calls" that were never
//! theirs: team calls, a delegate's ring, response-group offers, forwarded
//! calls, or calls another device already answered. This crate decides both,
//! from the SIP call data, as plain code: no I/O, no clock, no GUI.
//!
//! - [`history_info`], [`reason`], [`diversion`]: parsers for the headers
//!   that tell a call's story (RFC 7044 with Microsoft's
//!   `ms-retarget-reason`/`ms-target-phone`, RFC 3326, RFC 5806).
//! - [`party`]: callers and callees normalised (`tel:`/`sip:`, `;user=phone`,
//!   `+` and national forms), and the [`UserIdentity`] they are matched against.
//! - [`record`]: one [`CallRecord`] per report, from a mailbox item, Exchange
//!   UM's notification XML, or a device's SIP messages.
//! - [`classify`](mod@classify): what one report means for the user.
//! - [`book`]: the [`CallBook`], which merges reports of the same call and
//!   keeps the user's missed calls, incrementally, with removal.
//!
//! ```
//! use lamplighter_missed_calls::{CallBook, CallRecord, UserIdentity};
//! let user = UserIdentity::new(&["anna@example.com"], &["+49 5251 304613"]).unwrap();
//! let mut book = CallBook::new(user);
//! let invite = "INVITE sip:anna@example.com SIP/2.0\r\nCall-ID: abc@host\r\nFrom: <sip:+4930123456@gw;user=phone>;tag=1\r\nTo: <sip:anna@example.com>\r\n\r\n";
//! for device in ["desk", "softphone", "mobile"] {
//!     book.insert(CallRecord::from_sip(device, invite, None, false, 1_000).unwrap());
//! }
//! let missed = book.missed_calls();
//! assert_eq!(missed.len(), 1);
//! assert_eq!(missed[0].devices(), 3);
//! ```

pub mod book;
pub mod classify;
pub mod diversion;
pub mod history_info;
pub mod party;
pub mod reason;
pub mod record;
mod text;

pub use book::{Call, CallBook, CallOutcome, CallerAttempts, RecordId, Report};
pub use classify::{Classification, SecondaryReason, classify};
pub use history_info::{HiEntry, HistoryInfo, Index, RetargetReason};
pub use party::{Party, UserIdentity};
pub use reason::Reason;
pub use record::{CallRecord, MailboxCallItem, Millis, Outcome, Source, TimeKind};
pub use text::{header_values, headers};

/// What is wrong with a header, a record or a notification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text does not have the structure the grammar requires.
    #[error("malformed {what}: {detail}")]
    Syntax {
        /// Which grammar element.
        what: &'static str,
        /// What was found.
        detail: String,
    },
    /// A required part is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The item or event is not a call report (another item class or event type).
    #[error("not a call report: {0}")]
    NotACall(String),
}
