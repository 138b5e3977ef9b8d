//! Fuzzes what arrives at the MWI endpoint from the network: raw bytes through
//! the SIP stack's parser, then the guard (source, digest credentials as a
//! UAS), our SUBSCRIBE reading and the notifier's decision; a response is
//! read as a presence server's answer to our PUBLISH. Nothing may panic; a
//! stranger never gets a subscription, no forged credentials pass, and what
//! we keep of a PUBLISH answer is a token and a lifetime no longer than asked.
#![no_main]

use lamplighter_sip_mwi::guard::{Guard, GuardConfig, GuardPhone, Inbound, PhoneAuth, Verdict};
use lamplighter_sip_mwi::notifier::{Answer, Notifier, NotifierConfig};
use lamplighter_sip_mwi::publication;
use lamplighter_sip_notify::subscriptions::{parse_subscribe, source_of};
use libfuzzer_sys::fuzz_target;
use rsipstack::sip::SipMessage;

fn publish_answer(resp: &rsipstack::sip::Response) {
    let header = |name: &str| {
        resp.headers.iter().map(|h| h.to_string()).find_map(|h| {
            let (n, v) = h.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let asked = 3600;
    if let Ok(a) = publication::accepted(header("SIP-ETag").as_deref(), header("Expires").as_deref(), asked) {
        assert!(a.etag.len() <= publication::MAX_ETAG && !a.etag.contains(['\r', '\n', ' ', ';', ',']), "{a:?}");
        assert!((publication::MIN_EXPIRES..=asked).contains(&a.expires), "{a:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let req = match SipMessage::try_from(data) {
        Ok(SipMessage::Request(req)) => req,
        Ok(SipMessage::Response(resp)) => return publish_answer(&resp),
        Err(_) => return,
    };
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
