//! The readers against bodies shaped as Microsoft documents them
//! (`tests/fixtures/graph`, sources in its README), each body also checked
//! against the v1.0 CSDL, and against arbitrary input.

use lamplighter_graph_csdl::Csdl;
use lamplighter_graph_wire::{
    Continue, DeltaEntry, Failure, batch, classify, parse_attachments, parse_delta, parse_message,
};
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/graph").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&fixture(name)).expect("JSON")
}

const MESSAGE: &str = "microsoft.graph.message";

#[test]
fn a_delta_round_pages_by_next_link_and_ends_with_a_delta_link() {
    let body = fixture("message-delta-first-page.json");
    Csdl::graph_v1().check_collection(MESSAGE, &json("message-delta-first-page.json")).expect("CSDL");
    let page = parse_delta(&body).expect("page");
    assert!(matches!(&page.then, Continue::Next(l) if l.contains("$skiptoken=")));
    assert_eq!(page.entries.len(), 2);
    let DeltaEntry::Changed(first) = &page.entries[0] else { panic!("a change") };
    assert_eq!((first.id.as_str(), first.is_read), ("AAMkADNkNAAASq35xAAA=", Some(false)));
    assert_eq!(first.change_key(), Some("CQAAABYAAAARn2vdzPFjSbaPPxzjlzOTAAASsKZz"));
}

#[test]
fn the_next_round_has_removals_and_microsoft_s_own_string_boolean() {
    let body = fixture("message-delta-next-round.json");
    // the documented sample writes "isRead": "true": the CSDL says that is wrong …
    let problems = Csdl::graph_v1()
        .check_collection(MESSAGE, &json("message-delta-next-round.json"))
        .expect_err("a string boolean");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("$.value[1].isRead"), "{problems:?}");
    // … and the reader still takes the page, rather than lose it over one value
    let page = parse_delta(&body).expect("page");
    assert!(matches!(&page.then, Continue::Delta(l) if l.contains("$deltatoken=")));
    assert!(matches!(&page.entries[0], DeltaEntry::Removed { reason: Some(r), .. } if r == "deleted"));
    let DeltaEntry::Changed(changed) = &page.entries[1] else { panic!("a change") };
    assert_eq!(changed.is_read, Some(true));
}

#[test]
fn a_cloud_voicemail_reads_with_its_um_properties_and_headers() {
    Csdl::graph_v1().check(MESSAGE, &json("message-get-cloud-voicemail.json")).expect("CSDL");
    let m = parse_message(&fixture("message-get-cloud-voicemail.json")).expect("message");
    let um = m.um();
    assert_eq!(um.message_class.as_deref(), Some("IPM.Note.Microsoft.Voicemail.UM.CA"));
    assert_eq!(um.duration_secs, Some(27));
    assert_eq!(um.caller_number.as_deref(), Some("+49 5251 304613"));
    assert_eq!(um.caller_name.as_deref(), Some("Jörg Müller"));
    assert_eq!(um.attachment_order.as_deref(), Some("audio.mp3"));
    assert_eq!(m.header("content-class"), Some("Voice-CA"));
    assert!(m.body.and_then(|b| b.content).is_some_and(|t| t.contains("Bitte ruf mich")));
}

#[test]
fn attachments_list_without_their_bytes() {
    Csdl::graph_v1()
        .check_collection("microsoft.graph.attachment", &json("message-list-attachments.json"))
        .expect("CSDL");
    let list = parse_attachments(&fixture("message-list-attachments.json")).expect("attachments");
    assert_eq!(list.len(), 1);
    assert!(list[0].is_file());
    assert_eq!((list[0].name.as_deref(), list[0].size), (Some("audio.mp3"), 112640));
}

#[test]
fn errors_say_what_to_do() {
    assert_eq!(
        classify(429, Some("12"), None, &fixture("error-throttled.json")),
        Failure::Throttled { retry_after: Some(std::time::Duration::from_secs(12)) }
    );
    assert_eq!(classify(400, None, None, &fixture("error-sync-state-not-found.json")), Failure::DeltaExpired);
    let r = batch::parse_batch(&fixture("batch-response.json")).expect("batch");
    assert_eq!(r.len(), 2);
    let ok = r.iter().find(|r| r.id == "1").expect("1");
    Csdl::graph_v1().check(MESSAGE, ok.body.as_ref().expect("body")).expect("CSDL");
}

#[test]
fn a_page_of_mail_folders_with_the_next_page() {
    let v = json("mailfolder-list.json");
    Csdl::graph_v1().check_collection("microsoft.graph.mailFolder", &v).expect("CSDL");
    let page = lamplighter_graph_wire::parse_folders(&fixture("mailfolder-list.json")).expect("reads");
    assert_eq!(page.folders.len(), 3);
    assert_eq!(page.folders[1].display_name.as_deref(), Some("Inbox"));
    assert_eq!(page.folders[1].child_folder_count, Some(1));
    assert!(page.next.as_deref().is_some_and(|n| n.ends_with("%24skip=3")));
    // a folder without an id is not a folder
    assert!(lamplighter_graph_wire::parse_folders(br#"{"value":[{"id":""}]}"#).is_err());
    assert!(lamplighter_graph_wire::parse_folder(br#"{"displayName":"x"}"#).is_err());
}

proptest! {
    /// Arbitrary bytes never panic a reader.
    #[test]
    fn readers_take_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_delta(&bytes);
        let _ = parse_message(&bytes);
        let _ = parse_attachments(&bytes);
        let _ = batch::parse_batch(&bytes);
        let _ = lamplighter_graph_wire::parse_folders(&bytes);
        let _ = lamplighter_graph_wire::parse_folder(&bytes);
        let _ = classify(429, None, None, &bytes);
    }

    /// A message written and read back is the same message.
    #[test]
    fn messages_round_trip(
        id in "[A-Za-z0-9=_-]{1,40}",
        subject in proptest::option::of(".{0,40}"),
        read in proptest::option::of(any::<bool>()),
        duration in proptest::option::of(0u32..100_000),
    ) {
        let m = lamplighter_graph_wire::Message {
            id,
            subject,
            is_read: read,
            single_value_extended_properties: duration.map(|d| vec![lamplighter_graph_wire::message::ExtendedProperty {
                id: "Integer 0x6801".into(),
                value: Some(d.to_string()),
            }]),
            ..Default::default()
        };
        let text = serde_json::to_vec(&m).expect("write");
        let back = parse_message(&text).expect("read");
        prop_assert_eq!(back.um().duration_secs, duration);
        prop_assert_eq!(back, m);
    }
}

#[test]
fn a_subscription_and_the_notifications_read_as_graph_sends_them() {
    use lamplighter_graph_wire::subscription::{Lifecycle, parse_iso_utc, parse_notifications, parse_subscription};
    let mut entity = json("subscription-create.json");
    entity.as_object_mut().expect("object").remove("@odata.context");
    Csdl::graph_v1().check("microsoft.graph.subscription", &entity).expect("CSDL");
    let s = parse_subscription(&fixture("subscription-create.json")).expect("subscription");
    assert_eq!(s.id, "7f105c7d-2dc5-4530-97cd-4e7ae6534c07");
    assert!(parse_iso_utc(&s.expiration_date_time).is_some(), "{}", s.expiration_date_time);

    // Microsoft's example names resourceData's type "#Microsoft.Graph.Message", which the CSDL
    // does not derive from resourceData; the rest of the body is as the CSDL has it
    let problems = Csdl::graph_v1()
        .check("microsoft.graph.changeNotificationCollection", &json("change-notification-collection.json"))
        .expect_err("Graph's own naming");
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("resourceData.@odata.type"), "{problems:?}");
    let n = parse_notifications(&fixture("change-notification-collection.json")).expect("notifications");
    assert_eq!(n.len(), 1);
    assert_eq!((n[0].change_type.as_deref(), n[0].lifecycle), (Some("created"), None));
    assert_eq!(n[0].client_state.as_deref(), Some("secretClientValue"));

    Csdl::graph_v1()
        .check("microsoft.graph.changeNotificationCollection", &json("lifecycle-notification-missed.json"))
        .expect("CSDL");
    let n = parse_notifications(&fixture("lifecycle-notification-missed.json")).expect("notifications");
    assert_eq!(n[0].lifecycle, Some(Lifecycle::Missed));
}

proptest! {
    #[test]
    fn any_notification_body_reads_without_a_panic(body in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = lamplighter_graph_wire::subscription::parse_notifications(&body);
        let _ = lamplighter_graph_wire::subscription::parse_subscription(&body);
    }
}
