//! Microsoft Graph change notifications for the gateway's many mailboxes.
//!
//! Exchange Online tells a subscriber of a mailbox's messages when they
//! change, by POSTing to its webhook; that beats polling thousands of
//! mailboxes every few seconds. [`keeper`] is the sans-IO core (one
//! subscription per mailbox: made, renewed before expiry, made again after
//! `subscriptionRemoved`, renewed after `reauthorizationRequired`; a
//! notification counted only with its `clientState`); [`driver`] runs it on
//! tokio with the webhook and each mailbox's [`lamplighter_graph_client::Nudge`].
//! Delta polling stays the source of truth: a notification only says "poll
//! now", and while none can come (no subscription, the webhook unreachable)
//! each mailbox polls at its own pace.

pub mod driver;
pub mod keeper;

pub use driver::{Push, PushConfig, PushError};
pub use keeper::{Keeper, KeeperConfig, KeeperStats};
