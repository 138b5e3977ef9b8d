//! GetStreamingEvents bodies: split into envelopes however the bytes arrive,
//! and each envelope read into events (fixtures tests/fixtures/ews/getstreamingevents-*.xml).

use lamplighter_ews_wire::*;
use proptest::prelude::*;
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ews").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const LIMIT: usize = 1 << 20;

/// The four frames of the chunked body, fed in one piece.
fn whole() -> Vec<Vec<u8>> {
    FrameSplitter::new(LIMIT).push(&fixture("getstreamingevents-chunked-body.xml")).expect("split")
}

#[test]
fn the_chunked_body_holds_keepalive_events_keepalive_closed() {
    let frames = whole();
    assert_eq!(frames.len(), 4);
    let statuses: Vec<Option<ConnectionStatus>> = frames
        .iter()
        .map(|f| parse_streaming_frame(f).expect("frame")[0].body.as_ref().and_then(|b| b.connection_status))
        .collect();
    assert_eq!(
        statuses,
        [Some(ConnectionStatus::Ok), None, Some(ConnectionStatus::Ok), Some(ConnectionStatus::Closed)]
    );
    let events = parse_streaming_frame(&frames[1]).expect("events");
    let body = events[0].body.as_ref().expect("body");
    let (sub, evs) = &body.notifications[0];
    assert!(sub.starts_with("FwBleGNo"));
    let kinds: Vec<&EventKind> = evs.iter().map(|e| &e.kind).collect();
    assert_eq!(kinds, [&EventKind::Created, &EventKind::NewMail, &EventKind::Modified]);
    assert_eq!(evs[1].item_id.as_ref().map(|i| i.id.as_str()), Some("AAMkAGVmVoicemail001AAA="));
    assert_eq!((evs[2].folder_id.as_deref(), evs[2].unread_count), (Some("AQMkAGVmInboxFolderAAA="), Some(3)));
}

#[test]
fn splitting_at_every_byte_boundary_gives_the_same_frames() {
    let body = fixture("getstreamingevents-chunked-body.xml");
    let want = whole();
    for cut in 0..=body.len() {
        let mut s = FrameSplitter::new(LIMIT);
        let mut got = s.push(&body[..cut]).expect("first part");
        got.extend(s.push(&body[cut..]).expect("second part"));
        assert_eq!(got, want, "split at byte {cut}");
        assert_eq!(s.pending(), 0);
    }
}

#[test]
fn byte_by_byte_each_frame_comes_out_when_its_last_byte_arrives() {
    let body = fixture("getstreamingevents-chunked-body.xml");
    let mut s = FrameSplitter::new(LIMIT);
    let mut got = Vec::new();
    for (i, b) in body.iter().enumerate() {
        for f in s.push(&[*b]).expect("byte") {
            assert!(f.ends_with(b"</Envelope>"), "a frame is complete when handed out");
            got.push((i, f));
        }
    }
    assert_eq!(got.iter().map(|(_, f)| f.clone()).collect::<Vec<_>>(), whole());
    // not one byte late: the last frame is out at the body's last '>'
    let last_gt = body.iter().rposition(|c| *c == b'>').expect(">");
    assert_eq!(got.last().map(|(i, _)| *i), Some(last_gt));
}

#[test]
fn documented_frames_parse() {
    let m = parse_streaming_frame(&fixture("getstreamingevents-newmail.xml")).expect("newmail");
    let body = m[0].body.as_ref().expect("body");
    assert!(body.notifications.iter().flat_map(|(_, e)| e).any(|e| e.kind == EventKind::NewMail), "{body:?}");
    let m = parse_streaming_frame(&fixture("getstreamingevents-closed.xml")).expect("closed");
    assert_eq!(m[0].body.as_ref().and_then(|b| b.connection_status), Some(ConnectionStatus::Closed));
    let m = parse_streaming_frame(&fixture("getstreamingevents-error-invalidsubscription.xml")).expect("error");
    assert_eq!((m[0].class, &m[0].code), (ResponseClass::Error, &ResponseCode::InvalidSubscription));
    let body = m[0].body.as_ref().expect("body");
    assert_eq!(body.error_subscription_ids, ["SomeErrorSubscriptionId_1", "SomeErrorSubscriptionId_2"]);
    assert_eq!(body.connection_status, Some(ConnectionStatus::Closed));
}

#[test]
fn a_stream_that_is_not_envelopes_or_too_large_is_refused() {
    assert!(FrameSplitter::new(LIMIT).push(b"<html><body>502</body></html>").is_err());
    assert!(FrameSplitter::new(LIMIT).push(b"HTTP/1.1 200 OK").is_err());
    assert!(FrameSplitter::new(LIMIT).push(b"<!DOCTYPE x><Envelope/>").is_err());
    let mut s = FrameSplitter::new(1000);
    let big = format!("<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">{}", "x".repeat(2000));
    assert!(matches!(s.push(big.as_bytes()), Err(EwsError::TooLarge { .. })));
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_frames(cuts in proptest::collection::vec(0usize..20_000, 0..12)) {
        let body = fixture("getstreamingevents-chunked-body.xml");
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (body.len() + 1)).collect();
        cuts.sort();
        let mut s = FrameSplitter::new(LIMIT);
        let mut got = Vec::new();
        let mut from = 0;
        for c in cuts.into_iter().chain([body.len()]) {
            got.extend(s.push(&body[from..c]).expect("chunk"));
            from = c;
        }
        prop_assert_eq!(got, whole());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..3000), split in 0usize..3000) {
        let mut s = FrameSplitter::new(LIMIT);
        let split = split.min(data.len());
        if let Ok(frames) = s.push(&data[..split]) {
            for f in frames { let _ = parse_streaming_frame(&f); }
            if let Ok(frames) = s.push(&data[split..]) {
                for f in frames { let _ = parse_streaming_frame(&f); }
            }
        }
    }
}
