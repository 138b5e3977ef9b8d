//! The mailbox connection as every front end shows it. It is data from the
//! backend to the window, tray and agent: each renders it (in words through
//! `lamplighter-view`, as JSON through serde); nobody parses it back.

use serde::{Deserialize, Serialize};

/// Where a backend's connection to the mailbox stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Connection {
    /// Finding the server and signing in, before anything was synced.
    Connecting,
    /// Subscribing or catching up with the folder.
    Syncing,
    /// Up to date and listening for changes.
    Live,
    /// The last attempt failed; the next one is due in `in_secs`.
    Reconnecting {
        /// Seconds from when this was reported.
        in_secs: u64,
        /// Why the last attempt failed, in the server's or transport's words.
        reason: String,
    },
    /// The server refused the credentials; waiting for new ones or "Retry now"
    /// (a wrong password is never retried into an account lockout).
    SignInRefused {
        /// The server's words.
        reason: String,
    },
    /// Tracking has ended.
    Stopped,
}

impl Connection {
    /// Whether the mailbox is out of reach (the tray greys its icon).
    pub fn is_down(&self) -> bool {
        matches!(self, Connection::Reconnecting { .. } | Connection::SignInRefused { .. })
    }
}

impl std::fmt::Display for Connection {
    /// English words, for logs and the agent's text lines; windows use
    /// `lamplighter-view`, which also speaks German.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connection::Connecting => f.write_str("connecting"),
            Connection::Syncing => f.write_str("syncing"),
            Connection::Live => f.write_str("connected"),
            Connection::Reconnecting { in_secs, reason } => write!(f, "reconnecting in {in_secs} s: {reason}"),
            Connection::SignInRefused { reason } => write!(f, "sign-in refused: {reason}"),
            Connection::Stopped => f.write_str("stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_tagged_by_state_and_reads_back() {
        let c = Connection::Reconnecting { in_secs: 8, reason: "connection refused".into() };
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(json, r#"{"state":"reconnecting","in_secs":8,"reason":"connection refused"}"#);
        assert_eq!(serde_json::from_str::<Connection>(&json).expect("back"), c);
        assert_eq!(serde_json::to_string(&Connection::Live).expect("json"), r#"{"state":"live"}"#);
        assert!(c.is_down() && !Connection::Syncing.is_down());
    }
}
