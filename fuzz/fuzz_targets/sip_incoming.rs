//! Fuzzes what arrives at the MWI endpoint from the network: raw bytes through
//! the SIP stack's parser, then the guard (source, digest credentials as a
//! UAS), our SUBSCRIBE reading and the notifier's decision. Nothing may panic;
//! a stranger never gets a subscription, and no forged credentials pass.
#![no_main]

use lamplighter_sip_mwi::guard::{Guard, GuardConfig, GuardPhone, Inbound, PhoneAuth, Verdict};
use lamplighter_sip_mwi::notifier::{Answer, Notifier, NotifierConfig};
use lamplighter_sip_notify::subscriptions::{parse_subscribe, source_of};
use libfuzzer_sys::fuzz_target;
use rsipstack::sip::SipMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(SipMessage::Request(req)) = SipMessage::try_from(data) else { return };
    let now = std::time::Instant::now();
    let phones = vec![GuardPhone {
        uri: "sip:613@127.0.0.1".into(),
        auth: PhoneAuth::Digest { username: "613".into(), password: "not-in-any-input".into() },
    }];
    let mut guard = Guard::new(GuardConfig::default(), phones, [9; 32], now);
    let authorization: Vec<String> = req
        .headers
        .iter()
        .map(|h| h.to_string())
        .filter_map(|h| h.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case("authorization")).map(|(_, v)| v.trim().to_string()))
        .collect();
    if let Some(source) = source_of(&req) {
        let from = req.headers.iter().map(|h| h.to_string()).find(|h| h.to_ascii_lowercase().starts_with("from:")).unwrap_or_default();
        let (method, uri) = (req.method.to_string(), req.uri.to_string());
        let inbound = Inbound { method: &method, source, claimed: &from[5..], request_uri: &uri, authorization: &authorization };
        let verdict = guard.check(now, &inbound);
        assert!(!matches!(verdict, Verdict::Admit { .. }), "forged credentials passed: {verdict:?}");
    }
    let Ok(sub) = parse_subscribe(&req) else { return };
    let mut notifier = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1"], 1);
    let answer = notifier.handle_subscribe(now, &sub);
    if matches!(answer, Answer::Accept { .. }) && sub.to_tag.is_none() {
        assert!(notifier.is_paired(&sub.from), "accepted a stranger: {sub:?}");
    }
    while let Some(n) = notifier.poll_transmit(now) {
        notifier.handle_result(&n.id, Ok(()));
    }
});
