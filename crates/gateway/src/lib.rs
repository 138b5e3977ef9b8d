//! `lamplighter-gateway`: the message-waiting service of an organisation,
//! what Exchange Unified Messaging did until Exchange 2019 dropped it (seeds
//! `000` and `001`). One service account with the ApplicationImpersonation
//! role watches every mailbox of a directory through the same engine parts
//! as the desktop (`lamplighter-runner`: EWS change tracking, the state
//! core's UM counts), and each mailbox's lamp goes to its line: through SIP
//! gateways or a PBX trunk, straight to a phone, as a PUBLISH to a presence
//! server, or to phones that subscribe to the gateway.
//!
//! - [`config`]: the settings file, checked as a whole;
//! - [`credentials`]: secrets from systemd credentials or a private folder;
//! - [`service`]: the directory on a schedule, one runner per mailbox;
//! - [`lamps`]: the SIP side, every delivery on one endpoint;
//! - [`metrics`]: `/metrics` (Prometheus) and `/healthz`.

pub mod check;
pub mod config;
pub mod credentials;
pub mod lamps;
pub mod ldap;
pub mod metrics;
pub mod service;
pub mod store;

pub use config::GatewayConfig;
pub use service::{Gateway, GatewayError};
