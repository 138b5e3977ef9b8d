//! The server's mailboxes: one [`Store`] per SMTP address, and which
//! mailbox a request reaches: its own (the primary, `SimConfig::email`), or
//! the one an `ExchangeImpersonation` header names, when the signed-in
//! account holds the ApplicationImpersonation role.
//!
//! Derefs to the primary mailbox, so the single-mailbox paths (the Graph
//! face, the control API) need not know there are others. Subscriptions
//! are indexed by id, so one GetStreamingEvents can carry the
//! subscriptions of many mailboxes, as Exchange's grouped connections do.

use crate::store::Store;
use std::collections::HashMap;

/// Every mailbox of the simulated server.
#[derive(Debug)]
pub struct Mailboxes {
    primary: String,
    stores: HashMap<String, Store>,
    /// Subscription id → the mailbox it watches.
    subscriptions: HashMap<String, String>,
}

/// Why a request reaches no mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The account may not impersonate (`ErrorImpersonateUserDenied`).
    Denied,
    /// No mailbox has that address (`ErrorNonExistentMailbox`).
    NoMailbox,
}

/// The address as the server compares it.
pub fn key(address: &str) -> String {
    address.trim().to_ascii_lowercase()
}

impl Mailboxes {
    /// A server with one mailbox.
    pub fn new(primary: &str) -> Self {
        let primary = key(primary);
        let mut stores = HashMap::new();
        stores.insert(primary.clone(), Store::new());
        Mailboxes { primary, stores, subscriptions: HashMap::new() }
    }

    /// Adds a mailbox (no change if it exists). Returns whether it is new.
    pub fn add(&mut self, address: &str) -> bool {
        let k = key(address);
        if self.stores.contains_key(&k) {
            return false;
        }
        self.stores.insert(k, Store::new());
        true
    }

    /// How many mailboxes there are.
    pub fn len(&self) -> usize {
        self.stores.len()
    }

    /// Never: the primary mailbox always exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The mailbox a request reaches: `impersonated` (an address from the
    /// header) needs `may_impersonate`; none is the primary.
    pub fn resolve(&self, impersonated: Option<&str>, may_impersonate: bool) -> Result<String, Refused> {
        let Some(address) = impersonated else { return Ok(self.primary.clone()) };
        if !may_impersonate {
            return Err(Refused::Denied);
        }
        let k = key(address);
        if self.stores.contains_key(&k) { Ok(k) } else { Err(Refused::NoMailbox) }
    }

    /// A mailbox by address.
    pub fn mailbox(&self, address: &str) -> Option<&Store> {
        self.stores.get(&key(address))
    }

    /// A mailbox by address, to change it.
    pub fn mailbox_mut(&mut self, address: &str) -> Option<&mut Store> {
        self.stores.get_mut(&key(address))
    }

    /// A mailbox that [`Mailboxes::resolve`] gave (the primary if it has gone).
    pub fn of(&mut self, resolved: &str) -> &mut Store {
        let k = if self.stores.contains_key(resolved) { resolved.to_string() } else { self.primary.clone() };
        self.stores.get_mut(&k).expect("the primary mailbox exists")
    }

    /// Records a new subscription's mailbox.
    pub fn subscribed(&mut self, id: &str, mailbox: &str) {
        self.subscriptions.insert(id.to_string(), key(mailbox));
    }

    /// Which mailbox a subscription watches (any mailbox's).
    pub fn owner_of(&self, subscription: &str) -> Option<&str> {
        self.subscriptions.get(subscription).map(String::as_str)
    }

    /// Forgets a subscription's owner (after Unsubscribe).
    pub fn unsubscribed(&mut self, id: &str) {
        self.subscriptions.remove(id);
    }

    /// A restart: every mailbox forgets its subscriptions.
    pub fn forget_subscriptions(&mut self) {
        self.subscriptions.clear();
        for s in self.stores.values_mut() {
            s.forget_subscriptions();
        }
    }

    /// Every mailbox's sync states become invalid.
    pub fn forget_sync_states(&mut self) {
        for s in self.stores.values_mut() {
            s.forget_sync_states();
        }
    }

    /// Every mailbox's subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.stores.values().map(Store::subscription_count).sum()
    }
}

impl std::ops::Deref for Mailboxes {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.stores[&self.primary]
    }
}

impl std::ops::DerefMut for Mailboxes {
    fn deref_mut(&mut self) -> &mut Store {
        self.stores.get_mut(&self.primary).expect("the primary mailbox exists")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impersonation_needs_the_role_and_a_mailbox() {
        let mut m = Mailboxes::new("Mara@example.test");
        assert!(m.add("ben@example.test"));
        assert!(!m.add("BEN@example.test"), "addresses compare case-insensitively");
        assert_eq!(m.resolve(None, false), Ok("mara@example.test".into()));
        assert_eq!(m.resolve(Some("Ben@Example.test"), true), Ok("ben@example.test".into()));
        assert_eq!(m.resolve(Some("ben@example.test"), false), Err(Refused::Denied));
        assert_eq!(m.resolve(Some("nobody@example.test"), true), Err(Refused::NoMailbox));
        // the role is checked first: a denied account learns nothing of which mailboxes exist
        assert_eq!(m.resolve(Some("nobody@example.test"), false), Err(Refused::Denied));
        assert_eq!(m.len(), 2);
    }
}
