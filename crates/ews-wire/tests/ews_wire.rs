//! The EWS wire layer against recorded responses (tests/fixtures/ews, named
//! `<operation>-<case>.xml`, each opening with its source) and the official
//! schema (crates/ews-sim/schema, checked with xmllint).

use lamplighter_ews_wire::*;
use std::path::PathBuf;
use std::time::Duration;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The official schema, kept with the simulator that enforces it.
fn schema_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ews-sim/schema")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("ews").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn page(bytes: &[u8]) -> FindItemPage {
    let messages = parse_find_item(bytes).expect("parse");
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0].class, &messages[0].code), (ResponseClass::Success, &ResponseCode::NoError));
    messages.into_iter().next().and_then(|m| m.body).expect("RootFolder")
}

#[test]
fn finditem_voicemail_and_missed_call_with_um_properties() {
    let p = page(&fixture("finditem-voicemail-missedcall.xml"));
    assert_eq!(
        (p.indexed_paging_offset, p.total_items_in_view, p.includes_last_item_in_range),
        (Some(2), Some(2), true)
    );
    assert_eq!(p.items.len(), 2);
    let vm = &p.items[0];
    assert_eq!(vm.element, "Message");
    assert_eq!(vm.id, ItemId { id: "AAMkAGVmVoicemail001AAA=".into(), change_key: "CQAAABYAAAAvm001".into() });
    assert_eq!(vm.item_class.as_deref(), Some("IPM.Note.Microsoft.Voicemail.UM.CA"));
    assert_eq!(vm.is_read, Some(false));
    assert_eq!(vm.date_time_received.as_deref(), Some("2026-11-20T09:14:03Z"));
    assert_eq!(
        vm.um,
        UmProperties {
            duration_secs: Some(22),
            caller_number: Some("+15555550142".into()),
            caller_name: Some("Alex Example".into()),
            attachment_order: Some("audio.mp3".into()),
            call_id: Some("c0ffee00-1111-2222-3333-444455556666".into()),
        }
    );
    assert_eq!(vm.from, Some(Mailbox { name: Some("Alex Example".into()), email: Some("alex@example.com".into()) }));
    let mc = &p.items[1];
    assert_eq!(mc.item_class.as_deref(), Some("IPM.Note.Microsoft.Missed.Voice"));
    assert_eq!((mc.um.duration_secs, mc.um.caller_number.as_deref()), (None, Some("+15555550199")));
}

#[test]
fn finditem_microsoft_doc_samples() {
    let p = page(&fixture("finditem-itemclass.xml"));
    assert!(!p.items.is_empty() && p.items.iter().all(|i| i.item_class.is_some() && !i.id.id.is_empty()), "{p:?}");
    let p = page(&fixture("finditem-extendedproperty.xml"));
    assert!(!p.items.is_empty(), "{p:?}");
}

#[test]
fn server_busy_fault_carries_its_back_off() {
    match parse_find_item(&fixture("fault-serverbusy.xml")) {
        Err(EwsError::Fault(f)) => {
            assert_eq!(f.response_code, Some(ResponseCode::ServerBusy));
            assert_eq!(f.back_off, Some(Duration::from_millis(297_749)));
            assert!(f.code.ends_with("ErrorServerBusy"), "{f:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn prefixes_do_not_matter_namespaces_do() {
    let original = String::from_utf8(fixture("finditem-voicemail-missedcall.xml")).expect("utf8");
    let rename = |text: &str, from: &str, to: &str| {
        text.replace(&format!("<{from}:"), &format!("<{to}:"))
            .replace(&format!("</{from}:"), &format!("</{to}:"))
            .replace(&format!("xmlns:{from}="), &format!("xmlns:{to}="))
    };
    let renamed = rename(&rename(&original, "s", "soap"), "t", "typ");
    assert!(renamed.contains("<typ:ItemClass>") && renamed.contains("<soap:Body"));
    assert_eq!(page(renamed.as_bytes()), page(original.as_bytes()));
    // the same names in the wrong namespace are not items
    let wrong = original.replace("http://schemas.microsoft.com/exchange/services/2006/types\"", "urn:not-ews\"");
    assert!(
        parse_find_item(wrong.as_bytes()).map(|m| m[0].body.as_ref().map(|p| p.items.len())).unwrap_or(Some(0))
            == Some(0)
    );
}

#[test]
fn error_messages_are_data_and_garbage_is_an_error() {
    let err = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:FindItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages><m:FindItemResponseMessage ResponseClass="Error"><m:MessageText>The specified folder could not be found in the store.</m:MessageText><m:ResponseCode>ErrorFolderNotFound</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:FindItemResponseMessage></m:ResponseMessages></m:FindItemResponse></s:Body></s:Envelope>"#;
    let m = parse_find_item(err).expect("parse");
    assert_eq!(
        (m[0].class, &m[0].code, m[0].body.is_none()),
        (ResponseClass::Error, &ResponseCode::Other("ErrorFolderNotFound".into()), true)
    );
    for bad in [
        &b""[..],
        b"<html>502 Bad Gateway</html>",
        b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><m:FindItemResponse>",
        b"<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>",
        b"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><q:Body/></s:Envelope>",
    ] {
        assert!(parse_find_item(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn paging_follows_indexed_paging_offset_until_the_last_item() {
    let req = FindItemRequest::first_page("voicemail", 2);
    let more = FindItemPage {
        items: vec![Item::default(), Item::default()],
        indexed_paging_offset: Some(2),
        total_items_in_view: Some(5),
        includes_last_item_in_range: false,
    };
    let next = req.next(&more).expect("next page");
    assert_eq!(next.offset, 2);
    let last = FindItemPage { includes_last_item_in_range: true, ..more };
    assert_eq!(next.next(&last), None);
    assert_eq!(FindItemRequest::first_page("inbox", 5000).max_entries, 1000);
}

/// Every request we build validates against the official EWS schema.
#[test]
fn requests_validate_against_the_ews_schema() {
    let dir = std::env::temp_dir().join(format!("ews-wire-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let good = dir.join("finditem.xml");
    std::fs::write(&good, FindItemRequest::first_page("voicemail", 50).to_xml()).expect("write");
    let mut next = FindItemRequest::first_page("inbox", 1000);
    next.offset = 3000;
    let good2 = dir.join("finditem-inbox.xml");
    std::fs::write(&good2, next.to_xml()).expect("write");
    let bad = dir.join("finditem-bad.xml");
    std::fs::write(
        &bad,
        FindItemRequest { folder: "voicemailz", ..FindItemRequest::first_page("voicemail", 50) }.to_xml(),
    )
    .expect("write");
    let schema = schema_dir().join("ews-envelope-validate.xsd");
    let run = |f: &PathBuf| {
        std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(f)
            .output()
            .expect("xmllint not found: run ./dev.sh setup")
    };
    for f in [&good, &good2] {
        let out = run(f);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = run(&bad);
    assert!(!out.status.success(), "the schema check must catch a wrong folder id");
    assert!(String::from_utf8_lossy(&out.stderr).contains("voicemailz"));
    let _ = std::fs::remove_dir_all(&dir);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_truncation_is_an_error_or_a_result_never_a_panic() {
        let bytes = fixture("finditem-voicemail-missedcall.xml");
        for cut in 0..bytes.len() {
            let _ = parse_find_item(&bytes[..cut]);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let _ = parse_find_item(&data);
        }
    }
}

#[test]
fn getitem_voicemail_with_its_audio_attachment() {
    let m = parse_get_item(&fixture("getitem-voicemail.xml")).expect("parse");
    let items = m[0].body.as_ref().expect("items");
    assert_eq!(items.len(), 1);
    let vm = &items[0];
    assert_eq!(vm.um.attachment_order.as_deref(), Some("audio.mp3"));
    assert_eq!(
        vm.attachments,
        [Attachment {
            id: "AAMkAGVmVoicemail001AttAAA=".into(),
            name: Some("audio.mp3".into()),
            content_type: Some("audio/mp3".into()),
            size: Some(89_412)
        }]
    );
}

#[test]
fn getitem_missed_call_carries_the_sip_headers_the_pbx_copied() {
    let m = parse_get_item(&fixture("getitem-missedcall-headers.xml")).expect("parse");
    let item = &m[0].body.as_ref().expect("items")[0];
    assert_eq!(item.item_class.as_deref(), Some("IPM.Note.Microsoft.Missed.Voice"));
    let header = |name: &str| item.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("Call-ID"), Some("team-call-0001@192.0.2.20"));
    let hi = header("History-Info").expect("History-Info");
    assert!(hi.starts_with("<sip:frank.carius2@netatwork.de>;index=1;ms-retarget-reason=team-call"), "{hi}");
    assert!(hi.contains(r#"ms-target-phone="tel:+495251304613;ext=613""#), "entities decoded: {hi}");
}

/// The reconstructed fixture is schema-valid, and so is the GetItem request.
#[test]
fn getitem_fixture_and_request_validate_against_the_schema() {
    let dir = std::env::temp_dir().join(format!("ews-wire-getitem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    // the response body element, cut out of the envelope
    let text = String::from_utf8(fixture("getitem-missedcall-headers.xml")).expect("utf8");
    let start = text.find("<m:GetItemResponse").expect("start");
    let end = text.find("</m:GetItemResponse>").expect("end") + "</m:GetItemResponse>".len();
    let body = dir.join("body.xml");
    std::fs::write(&body, &text[start..end]).expect("write");
    let request = dir.join("getitem.xml");
    let ids = vec![
        ItemId { id: "AAMkAGVmMissedCall003AAA=".into(), change_key: "CQAAABYAAAAmc003".into() },
        ItemId { id: "AAMk<&>".into(), change_key: String::new() },
    ];
    std::fs::write(&request, GetItemRequest { ids, server_version: "Exchange2013_SP1" }.to_xml()).expect("write");
    let schemas = schema_dir();
    for (file, schema) in [(&body, "ews-validate.xsd"), (&request, "ews-envelope-validate.xsd")] {
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(schemas.join(schema))
            .arg(file)
            .output()
            .expect("xmllint not found: run ./dev.sh setup");
        assert!(out.status.success(), "{}: {}", file.display(), String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn syncfolderitems_changes_in_order_ignoring_effective_rights() {
    let m = parse_sync_folder_items(&fixture("syncfolderitems-changes.xml")).expect("parse");
    let page = m[0].body.as_ref().expect("page");
    assert!(page.includes_last_item_in_range);
    assert!(page.sync_state.starts_with("H4sIAAAAAAAEAO29B2AcSZY"), "{}", page.sync_state);
    let kinds: Vec<&str> = page
        .changes
        .iter()
        .map(|c| match c {
            Change::Create(_) => "create",
            Change::Update(_) => "update",
            Change::Delete(_) => "delete",
            Change::ReadFlagChange { .. } => "read",
        })
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "create").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "update").count(), 1, "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "delete").count(),
        1,
        "EffectiveRights/Delete is not a change: {kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| **k == "read").count(), 1, "{kinds:?}");
    let Some(Change::Update(item)) = page.changes.iter().find(|c| matches!(c, Change::Update(_))) else {
        panic!("update")
    };
    assert_eq!((item.item_class.as_deref(), item.is_read), (Some("IPM.Note"), Some(true)));
}

#[test]
fn subscribe_streaming_and_pull_responses() {
    let m = parse_subscribe(&fixture("subscribe-streaming.xml")).expect("streaming");
    let s = m[0].body.as_ref().expect("subscription");
    assert!(s.id.starts_with("JgBibjFwcjAzbWIy") && s.watermark.is_none(), "{s:?}");
    let m = parse_subscribe(&fixture("subscribe-pull.xml")).expect("pull");
    let s = m[0].body.as_ref().expect("subscription");
    assert_eq!(
        (s.id.as_str(), s.watermark.as_deref()),
        ("39ea5d0f-f062-455e-a1e9-89c0304390f4", Some("AAAAAHgGAAAAAAAAAQ=="))
    );
}

#[test]
fn max_changes_holds_only_what_ews_accepts() {
    assert_eq!(MaxChanges::new(0), None);
    assert_eq!(MaxChanges::new(513), None);
    assert_eq!(MaxChanges::new(512), Some(MaxChanges::MAX));
}

#[test]
fn subscribe_and_sync_requests_validate_against_the_schema() {
    let dir = std::env::temp_dir().join(format!("ews-wire-sync-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let v = "Exchange2013_SP1";
    let requests = [
        (
            "sync-first.xml",
            SyncFolderItemsRequest {
                folder: "inbox",
                sync_state: None,
                max_changes: MaxChanges::MAX,
                server_version: v,
            }
            .to_xml(),
        ),
        (
            "sync-next.xml",
            SyncFolderItemsRequest {
                folder: "inbox",
                sync_state: Some("H4sIAAAAAAAEAO29B2AcSZY==".into()),
                max_changes: MaxChanges::new(100).expect("100"),
                server_version: v,
            }
            .to_xml(),
        ),
        (
            "subscribe-streaming.xml",
            SubscribeRequest {
                folders: vec!["inbox", "voicemail"],
                kind: SubscriptionKind::Streaming,
                server_version: v,
            }
            .to_xml(),
        ),
        (
            "subscribe-pull.xml",
            SubscribeRequest {
                folders: vec!["inbox"],
                kind: SubscriptionKind::Pull { timeout_minutes: 30 },
                server_version: v,
            }
            .to_xml(),
        ),
    ];
    assert_schema_valid(&dir, requests);
}

#[test]
fn updateitem_markread_gives_the_new_change_key_or_a_conflict() {
    let m = parse_update_item(&fixture("updateitem-markread.xml")).expect("parse");
    assert_eq!(m.len(), 2);
    let item = &m[0].body.as_ref().expect("items")[0];
    assert_eq!((item.id.id.as_str(), item.id.change_key.as_str()), ("AAMkAGVmVoicemail001AAA=", "CQAAABYAAAB2"));
    assert_eq!((m[1].class, &m[1].code), (ResponseClass::Error, &ResponseCode::IrresolvableConflict));
}

#[test]
fn getevents_pull_notification_with_watermarks() {
    let m = parse_get_events(&fixture("getevents-newmail.xml")).expect("parse");
    let n = m[0].body.as_ref().expect("notification");
    assert_eq!(n.subscription_id, "f6bc657d-dde1-4f94-952d-143b95d6483d");
    assert_eq!(n.previous_watermark.as_deref(), Some("AAAAAMAGAAAAAAAAAQ=="));
    assert!(!n.more_events);
    assert_eq!(n.events.len(), 2);
    assert!(n.events.iter().all(|e| e.kind == EventKind::NewMail));
    assert_eq!(n.next_watermark(), Some("AAAAAOQGAAAAAAAAAQ=="));
}

#[test]
fn unsubscribe_subscription_not_found_is_a_typed_code() {
    let m = parse_unsubscribe(&fixture("unsubscribe-subscriptionnotfound.xml")).expect("parse");
    assert_eq!((m[0].class, &m[0].code), (ResponseClass::Error, &ResponseCode::SubscriptionNotFound));
}

#[test]
fn getattachment_decodes_the_content_however_the_bytes_arrive() {
    let body = fixture("getattachment-fileattachment.xml");
    for cut in 0..=body.len() {
        let mut d = AttachmentDecoder::new();
        let mut got = d.push(&body[..cut]).expect("first");
        got.extend(d.push(&body[cut..]).expect("second"));
        assert_eq!(got, b"This is a file attachment.", "cut at {cut}");
        let m = d.finish().expect("finish");
        assert_eq!(m[0].body.as_ref().and_then(|b| b.name.as_deref()), Some("FileAttachment.txt"));
    }
}

#[test]
fn getattachment_of_a_large_file_is_decoded_in_chunks() {
    let audio: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let b64 = {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for (n, c) in audio.chunks(3).enumerate() {
            let v = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                if k <= c.len() {
                    s.push(A[((v >> (18 - 6 * k)) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
            if n % 19 == 18 {
                s.push_str("\r\n");
            }
        }
        s
    };
    let doc = format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><m:GetAttachmentResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages><m:GetAttachmentResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Attachments><t:FileAttachment><t:AttachmentId Id="a1"/><t:Name>audio.wav</t:Name><t:ContentType>audio/wav</t:ContentType><t:Content>{b64}</t:Content></t:FileAttachment></m:Attachments></m:GetAttachmentResponseMessage></m:ResponseMessages></m:GetAttachmentResponse></s:Body></s:Envelope>"#
    );
    let mut d = AttachmentDecoder::new();
    let mut got = Vec::new();
    let mut largest_chunk = 0;
    for chunk in doc.as_bytes().chunks(16 * 1024) {
        let out = d.push(chunk).expect("push");
        largest_chunk = largest_chunk.max(out.len());
        got.extend(out);
    }
    assert_eq!(d.decoded(), audio.len() as u64);
    assert!(largest_chunk <= 16 * 1024, "output comes in chunk-sized pieces, not whole: {largest_chunk}");
    assert_eq!(got, audio);
    let meta = d.finish().expect("finish");
    assert_eq!(meta[0].body.as_ref().and_then(|b| b.content_type.as_deref()), Some("audio/wav"));
}

#[test]
fn getattachment_errors_and_damage() {
    // an error response has no content: nothing decoded, the code comes out
    let mut d = AttachmentDecoder::new();
    let body = br#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:GetAttachmentResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages><m:GetAttachmentResponseMessage ResponseClass="Error"><m:MessageText>gone</m:MessageText><m:ResponseCode>ErrorItemNotFound</m:ResponseCode></m:GetAttachmentResponseMessage></m:ResponseMessages></m:GetAttachmentResponse></soap:Body></soap:Envelope>"#;
    assert!(d.push(body).expect("push").is_empty());
    assert_eq!(d.finish().expect("finish")[0].code, ResponseCode::ItemNotFound);
    // a body cut inside the content is an error, not a short file
    let full = fixture("getattachment-fileattachment.xml");
    let at = full.windows(8).position(|w| w == b"VGhpcyBp").expect("content") + 6;
    let mut d = AttachmentDecoder::new();
    d.push(&full[..at]).expect("push");
    assert!(matches!(d.finish(), Err(EwsError::Malformed(_))));
    // bad base64 is refused
    let bad = String::from_utf8_lossy(&full).replace("VGhpcyBp", "VGh!cyBp");
    assert!(AttachmentDecoder::new().push(bad.as_bytes()).is_err());
}

#[test]
fn update_attachment_events_and_unsubscribe_requests_validate_against_the_schema() {
    let dir = std::env::temp_dir().join(format!("ews-wire-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let v = SERVER_VERSION;
    let id = ItemId { id: "AAMkAGVm<&>\"'=".into(), change_key: "CQAAABYAAAB2".into() };
    let requests = [
        (
            "updateitem-markread.xml",
            MarkReadRequest {
                items: vec![(id.clone(), true), (ItemId { id: "b".into(), change_key: String::new() }, false)],
                conflict: ConflictPolicy::AlwaysOverwrite,
                server_version: v,
            }
            .to_xml(),
        ),
        ("getattachment.xml", GetAttachmentRequest { id: "AAMkADVoice&Att=".into(), server_version: v }.to_xml()),
        ("unsubscribe.xml", UnsubscribeRequest { subscription_id: "sub-1".into(), server_version: v }.to_xml()),
        (
            "getevents.xml",
            GetEventsRequest {
                subscription_id: "sub-1".into(),
                watermark: "AAAAAMAGAAAAAAAAAQ==".into(),
                server_version: v,
            }
            .to_xml(),
        ),
        (
            "getstreamingevents.xml",
            GetStreamingEventsRequest {
                subscription_ids: vec!["sub-1".into()],
                connection_timeout_minutes: 30,
                server_version: v,
            }
            .to_xml(),
        ),
        (
            "getstreamingevents-group.xml",
            GetStreamingEventsRequest {
                subscription_ids: (0..200).map(|n| format!("sub-{n}")).collect(),
                connection_timeout_minutes: 30,
                server_version: v,
            }
            .to_xml(),
        ),
    ];
    assert_schema_valid(&dir, requests);
}

#[test]
fn autodiscover_pox_sample_gives_the_ews_url_and_redirects_are_read() {
    use lamplighter_ews_wire::autodiscover::{Answer, parse_pox, parse_soap, pox_request, soap_request};
    assert_eq!(
        parse_pox(&fixture("autodiscover-pox-settings.xml")).expect("pox"),
        Answer::EwsUrl("https://mail.contoso.com/EWS/Exchange.asmx".into())
    );
    let redirect = br#"<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"><Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"><Account><Action>redirectAddr</Action><RedirectAddr>mara@corp.example</RedirectAddr></Account></Response></Autodiscover>"#;
    assert_eq!(parse_pox(redirect).expect("redirect"), Answer::RedirectAddress("mara@corp.example".into()));
    let soap = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetUserSettingsResponseMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover"><Response><ErrorCode>NoError</ErrorCode><UserResponses><UserResponse><ErrorCode>NoError</ErrorCode><UserSettings><UserSetting><Name>InternalEwsUrl</Name><Value>https://in/EWS/Exchange.asmx</Value></UserSetting><UserSetting><Name>ExternalEwsUrl</Name><Value>https://out/EWS/Exchange.asmx</Value></UserSetting></UserSettings></UserResponse></UserResponses></Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>"#;
    assert_eq!(parse_soap(soap).expect("soap"), Answer::EwsUrl("https://out/EWS/Exchange.asmx".into()));
    let invalid = br#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetUserSettingsResponseMessage xmlns="http://schemas.microsoft.com/exchange/2010/Autodiscover"><Response><ErrorCode>NoError</ErrorCode><UserResponses><UserResponse><ErrorCode>InvalidUser</ErrorCode><ErrorMessage>Invalid user.</ErrorMessage></UserResponse></UserResponses></Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>"#;
    assert!(matches!(parse_soap(invalid).expect("error"), Answer::Error(m) if m.contains("InvalidUser")));
    assert!(parse_pox(b"<html>not autodiscover").is_err());
    assert!(pox_request("a&b@example.test").contains("a&amp;b@example.test"));
    assert!(
        soap_request("mara@example.test", "https://x/autodiscover/autodiscover.svc")
            .contains("GetUserSettingsRequestMessage")
    );
}

#[test]
fn syncfolderitems_invalid_sync_state_and_schema_validation_fault() {
    let m = parse_sync_folder_items(&fixture("syncfolderitems-invalidsyncstatedata.xml")).expect("parse");
    assert_eq!(
        (m[0].class, &m[0].code, m[0].body.is_none()),
        (ResponseClass::Error, &ResponseCode::InvalidSyncStateData, true)
    );
    match parse_find_item(&fixture("fault-schemavalidation.xml")) {
        Err(EwsError::Fault(f)) => {
            assert_eq!(f.response_code, Some(ResponseCode::SchemaValidation));
            assert_eq!(f.code, "a:ErrorSchemaValidation");
            assert!(f.message.contains("voicemailz") && f.back_off.is_none());
        }
        other => panic!("expected the fault: {other:?}"),
    }
}

/// Each request, written into `dir`, validates against the official schema (xmllint).
fn assert_schema_valid(dir: &std::path::Path, requests: impl IntoIterator<Item = (&'static str, String)>) {
    let schema = schema_dir().join("ews-envelope-validate.xsd");
    for (name, xml) in requests {
        let f = dir.join(name);
        std::fs::write(&f, xml).expect("write");
        let out = std::process::Command::new("xmllint")
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(&f)
            .output()
            .expect("xmllint");
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let _ = std::fs::remove_dir_all(dir);
}
