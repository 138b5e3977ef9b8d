//! Fuzzes what Microsoft Graph (or anything pretending to be it) sends:
//! delta pages, messages, attachment lists, folder pages, batch answers, error bodies;
//! and the link check, which must never accept a link off the service
//! root. Errors are fine, panics are not.
#![no_main]

use lamplighter_graph_wire::{batch, classify, parse_attachments, parse_delta, parse_error, parse_message, request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_delta(data);
    if let Ok(m) = parse_message(data) {
        let _ = m.um();
        let _ = m.change_key();
    }
    let _ = parse_attachments(data);
    let _ = lamplighter_graph_wire::parse_folders(data);
    let _ = lamplighter_graph_wire::parse_folder(data);
    let _ = batch::parse_batch(data);
    let _ = batch::parse_batch_requests(data);
    let _ = parse_error(data);
    let _ = classify(429, std::str::from_utf8(data).ok(), None, data);
    if let Ok(link) = std::str::from_utf8(data) {
        let root = "https://graph.microsoft.com/v1.0";
        if let Ok(path) = request::link_path(link, root) {
            assert!(link.starts_with(root) && path.starts_with('/') && !path.starts_with("//"));
        }
    }
});
