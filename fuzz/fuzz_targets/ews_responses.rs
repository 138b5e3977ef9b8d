//! Fuzzes what an EWS server (or anything pretending to be one) sends:
//! every response parser (FindItem, GetItem, SyncFolderItems, Subscribe,
//! UpdateItem, GetEvents, Unsubscribe, GetAttachment's streaming decoder,
//! which must decode the same bytes however the body is cut), faults, and a streaming body fed to the frame
//! splitter in two pieces, each frame parsed. Errors are fine, panics are not;
//! the splitter must give the same frames however the body is cut.
#![no_main]

use lamplighter_ews_wire::{
    AttachmentDecoder, FrameSplitter, parse_find_item, parse_get_events, parse_get_item, parse_streaming_frame,
    parse_subscribe, parse_sync_folder_items, parse_unsubscribe, parse_update_item,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_find_item(data);
    let _ = parse_get_item(data);
    let _ = parse_sync_folder_items(data);
    let _ = parse_subscribe(data);
    let _ = parse_update_item(data);
    let _ = parse_get_events(data);
    let _ = parse_unsubscribe(data);
    let cut = data.len() / 3;
    let mut one = AttachmentDecoder::new();
    let mut two = AttachmentDecoder::new();
    if let (Ok(a), Ok(mut b)) = (one.push(data), two.push(&data[..cut])) {
        if let Ok(c) = two.push(&data[cut..]) {
            b.extend(c);
            assert_eq!(a, b, "cutting the body changed the attachment bytes");
        }
        let _ = one.finish();
    }
    let mut whole = FrameSplitter::new(1 << 20);
    let Ok(frames) = whole.push(data) else { return };
    for f in &frames {
        let _ = parse_streaming_frame(f);
    }
    let cut = data.len() / 2;
    let mut parts = FrameSplitter::new(1 << 20);
    if let (Ok(mut a), Ok(b)) = (parts.push(&data[..cut]), parts.push(&data[cut..])) {
        a.extend(b);
        assert_eq!(a, frames, "cutting the body changed the frames");
    }
});
