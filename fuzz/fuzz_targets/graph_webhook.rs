//! Fuzzes what anyone may POST to the gateway's Graph webhook: the query
//! of a validation request (whose echo must never be longer than 1,024
//! bytes) and notification bodies; and Graph's subscription answers and
//! dates. Errors are fine, panics are not.
#![no_main]

use lamplighter_graph_wire::subscription::{
    iso_utc, parse_iso_utc, parse_notifications, parse_subscription, validation_token,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(n) = parse_notifications(data) {
        assert!(n.len() <= lamplighter_graph_wire::subscription::MAX_NOTIFICATIONS);
    }
    let _ = parse_subscription(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(Ok(token)) = validation_token(text) {
            assert!(token.len() <= 1024 && !token.is_empty());
        }
        if let Some(t) = parse_iso_utc(text) {
            assert_eq!(parse_iso_utc(&iso_utc(t)), Some(t));
        }
    }
});
