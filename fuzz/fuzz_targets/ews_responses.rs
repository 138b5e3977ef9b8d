//! Fuzzes what an EWS server (or anything pretending to be one) sends:
//! FindItem responses and faults, and a streaming body fed to the frame
//! splitter in two pieces, each frame parsed. Errors are fine, panics are not;
//! the splitter must give the same frames however the body is cut.
#![no_main]

use lamplighter_ews_wire::{FrameSplitter, parse_find_item, parse_streaming_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_find_item(data);
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
