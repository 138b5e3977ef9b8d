//! Fuzzes what a phone or a server can send the MWI relay: message-summary
//! bodies and digest challenges. Errors are fine, panics are not; a body that
//! parses must print and parse back to the same value.
#![no_main]

use lamplighter_sip_mwi::digest::{Challenge, RequestToSign, authorization, choose};
use lamplighter_sip_mwi::summary::MessageSummary;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(summary) = text.parse::<MessageSummary>() {
        let printed = summary.to_string();
        assert_eq!(printed.parse::<MessageSummary>().as_ref(), Ok(&summary), "round trip of {printed:?}");
    }
    let values: Vec<&str> = text.split('\n').collect();
    if let Ok(challenges) = Challenge::parse_list(&values) {
        if let Some(c) = choose(&challenges) {
            let _ = authorization(c, "613", "pw", RequestToSign { method: "NOTIFY", uri: "sip:613@127.0.0.1", body: data }, "cnonce", 1);
        }
    }
});
