//! PUBLISH to a real presence server: Kamailio 5.6 with presence +
//! presence_mwi, and baresip registered and subscribed there (not at us).
//! The lamp reaches the phone only through Kamailio's NOTIFYs, refreshed and
//! modified with `SIP-If-Match`, and a forgotten entity tag (412) is
//! followed by a fresh publication.

use lamplighter_sip_mwi::relay::{RelayConfig, RelayEvent};
use lamplighter_sip_mwi::summary::{Counts, MessageSummary};
use lamplighter_sip_notify::driver::{Delivery, PhoneTarget};
use lamplighter_sip_notify::{NotifySender, Transport};
use lamplighter_testkit::baresip::Softphone;
use lamplighter_testkit::kamailio::Kamailio;
use std::sync::Arc;
use std::time::Duration;

fn counts(new: u32, old: u32) -> Counts {
    Counts { new, old, urgent_new: 0, urgent_old: 0 }
}

#[tokio::test(flavor = "multi_thread")]
async fn published_state_lights_a_phone_subscribed_at_kamailio_on_and_off() {
    let kamailio = Kamailio::start();
    let phone = Softphone::start(kamailio.addr, "unused");
    let subscribed = kamailio.wait_for("request SUBSCRIBE sip:613@127.0.0.1", 0);

    let sender = Arc::new(NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind"));
    let target = PhoneTarget {
        uri: "sip:613@127.0.0.1".into(),
        transport: Transport::Udp,
        credentials: None,
        account: "sip:613@127.0.0.1".into(),
        refresh: Duration::from_secs(3240),
        delivery: Delivery::Publish { server: Some(format!("sip:{}", kamailio.addr)), expires: 3600 },
        urgent: Default::default(),
    };
    let relay = lamplighter_sip_notify::driver::spawn(sender.clone(), vec![target], RelayConfig::default());
    let mut events = relay.events();
    relay.set_counts(counts(2, 1));
    let delivered = |events: &mut tokio::sync::broadcast::Receiver<RelayEvent>| {
        let mut events = events.resubscribe();
        async move {
            match events.recv().await.expect("relay events") {
                RelayEvent::Delivered { counts, .. } => counts,
                RelayEvent::Failed { failure, .. } => panic!("PUBLISH failed: {failure:?}"),
            }
        }
    };
    let wait = tokio::time::timeout(lamplighter_testkit::guard(Duration::from_secs(10)), delivered(&mut events));
    assert_eq!(wait.await.expect("PUBLISH answered"), counts(2, 1));
    let first = kamailio.wait_for("request PUBLISH sip:613@127.0.0.1 from 127.0.0.1", subscribed);
    let line = |at: usize| kamailio.log()[at..].lines().next().unwrap_or_default().to_string();
    assert!(line(first).contains("if-match=<null>"), "an initial publication first: {}", line(first));
    let on = phone.wait_for("Voice-Message: 2/1 (0/0)", 0);
    assert!(phone.text()[..on].contains("Messages-Waiting: yes"), "{}", phone.text());

    // the lamp off: a modification of the same publication
    let mut events = relay.events();
    relay.set_counts(counts(0, 4));
    let wait = tokio::time::timeout(lamplighter_testkit::guard(Duration::from_secs(10)), delivered(&mut events));
    assert_eq!(wait.await.expect("PUBLISH answered"), counts(0, 4));
    let second = kamailio.wait_for("request PUBLISH sip:613@127.0.0.1 from 127.0.0.1", first);
    let modified = line(second);
    assert!(modified.contains("if-match=") && !modified.contains("if-match=<null>"), "with SIP-If-Match: {modified}");
    let off = phone.wait_for("Voice-Message: 0/4 (0/0)", on);
    assert!(phone.text()[on..off].contains("Messages-Waiting: no"), "{}", phone.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forgotten_entity_tag_412_is_followed_by_a_fresh_publication() {
    let kamailio = Kamailio::start();
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let server = format!("sip:{}", kamailio.addr);
    let summary = MessageSummary::voice("sip:614@127.0.0.1", counts(1, 0));
    let published = sender
        .publish("sip:614@127.0.0.1", Some(&server), Transport::Udp, Some(&summary), Some("no-such-etag"), 600, None)
        .await
        .unwrap_or_else(|e| panic!("published after the 412: {e}\n{}", kamailio.log()));
    assert_eq!(published.code, 200);
    let etag = published.publication.expect("Kamailio gives a SIP-ETag").etag;
    assert_ne!(etag, "no-such-etag");
    // the stale tag was tried, then an initial publication followed
    let stale = kamailio.wait_for("if-match=no-such-etag", 0);
    kamailio.wait_for("if-match=<null>", stale);
    // refresh with the new tag, then remove the publication
    let refreshed = sender
        .publish("sip:614@127.0.0.1", Some(&server), Transport::Udp, Some(&summary), Some(&etag), 600, None)
        .await
        .expect("refreshed");
    let refreshed = refreshed.publication.expect("still published").etag;
    let removed = sender
        .publish("sip:614@127.0.0.1", Some(&server), Transport::Udp, None, Some(&refreshed), 0, None)
        .await
        .expect("removed");
    assert_eq!(removed.code, 200);
    kamailio.wait_for("expires=0", stale);
}

/// PUBLISH over TCP, to a server that keeps publications for 600 s of the
/// 3600 asked: the shorter life is what the refresh is scheduled by, and a
/// phone subscribed at Kamailio still gets the lamp.
#[tokio::test(flavor = "multi_thread")]
async fn publish_over_tcp_and_the_server_s_shorter_life_is_honoured() {
    let kamailio = Kamailio::start();
    let phone = Softphone::start(kamailio.addr, "unused");
    let subscribed = kamailio.wait_for("request SUBSCRIBE sip:613@127.0.0.1", 0);
    let sender = NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let server = format!("sip:{}", kamailio.addr);
    let summary = MessageSummary::voice("sip:613@127.0.0.1", counts(5, 0));
    let published = sender
        .publish("sip:613@127.0.0.1", Some(&server), Transport::Tcp, Some(&summary), None, 3600, None)
        .await
        .unwrap_or_else(|e| panic!("published: {e}\n{}", kamailio.log()));
    let publication = published.publication.expect("accepted with a tag");
    assert_eq!(publication.expires, 600, "the server's Expires, not ours");
    assert_eq!(publication.refresh_after(), Duration::from_secs(540));
    let seen = kamailio.wait_for("request PUBLISH sip:613@127.0.0.1 from 127.0.0.1", subscribed);
    let line = kamailio.log()[seen..].lines().next().unwrap_or_default().to_string();
    assert!(line.contains("proto=tcp"), "over TCP: {line}");
    phone.wait_for("Voice-Message: 5/0 (0/0)", 0);
}
