//! Fuzzes what arrives at the MWI endpoint from the network: raw bytes through
//! the SIP stack's parser, then our SUBSCRIBE reading and the notifier's
//! decision. Nothing may panic; a stranger never gets a subscription.
#![no_main]

use lamplighter_sip_mwi::notifier::{Answer, Notifier, NotifierConfig};
use lamplighter_sip_notify::subscriptions::parse_subscribe;
use libfuzzer_sys::fuzz_target;
use rsipstack::sip::SipMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(SipMessage::Request(req)) = SipMessage::try_from(data) else { return };
    let Some(sub) = parse_subscribe(&req) else { return };
    let mut notifier = Notifier::new(NotifierConfig::default(), &["sip:613@127.0.0.1"], 1);
    let now = std::time::Instant::now();
    let answer = notifier.handle_subscribe(now, &sub);
    if matches!(answer, Answer::Accept { .. }) && sub.to_tag.is_none() {
        assert!(notifier.is_paired(&sub.from), "accepted a stranger: {sub:?}");
    }
    while let Some(n) = notifier.poll_transmit(now) {
        notifier.handle_result(&n.id, Ok(()));
    }
});
