//! FindItem parse throughput: a compact response of 1,000 voicemail and
//! missed-call items with the UM extended properties (~1.2 MB), from bytes
//! to typed items, beside a bare namespace-resolving quick-xml event loop
//! over the same bytes (the floor). Prints MB/s, items/s and the ratio.
//!
//! `cargo bench -p lamplighter-ews-wire --bench finditem`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lamplighter_ews_wire::{FrameSplitter, parse_find_item, parse_streaming_frame};
use quick_xml::events::Event;
use quick_xml::reader::NsReader;
use std::hint::black_box;
use std::time::Instant;

fn response(items: usize) -> Vec<u8> {
    let mut s = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header><h:ServerVersionInfo MajorVersion="15" MinorVersion="2" MajorBuildNumber="1544" MinorBuildNumber="4" Version="V2017_07_11" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" xmlns="http://schemas.microsoft.com/exchange/services/2006/types"/></s:Header><s:Body><m:FindItemResponse xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages><m:FindItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>"#,
    );
    s.push_str(&format!(r#"<m:RootFolder IndexedPagingOffset="{items}" TotalItemsInView="{items}" IncludesLastItemInRange="true"><t:Items>"#));
    for i in 0..items {
        let vm = i % 3 != 0;
        let id = format!(
            "AAMkADA5ZjJhZTk3LTk0ODItNGYxOC1iN2Q0LWY1ZWQ0NjNlMjFkNwBGAAAAAADUebQDarW2Q7W2ji8HlF0yBwCTtHDqUj4CS6u0ANJB5vp6AAAAAAEMAACTtHDqUj4CS6u0ANJB5vp6AAIp{i:08}AAA="
        );
        s.push_str(&format!(
            r#"<t:Message><t:ItemId Id="{id}" ChangeKey="CQAAABYAAACTtHDqUj4CS6u0ANJB5vp6AAIp{i:06}"/>"#
        ));
        s.push_str(if vm {
            "<t:ItemClass>IPM.Note.Microsoft.Voicemail.UM.CA</t:ItemClass>"
        } else {
            "<t:ItemClass>IPM.Note.Microsoft.Missed.Voice</t:ItemClass>"
        });
        s.push_str(&format!("<t:Subject>{} from +49 5251 30{i:04}</t:Subject><t:DateTimeReceived>2026-11-{:02}T09:{:02}:{:02}Z</t:DateTimeReceived><t:Importance>{}</t:Importance><t:HasAttachments>{vm}</t:HasAttachments>", if vm { "Voice Mail (22 seconds)" } else { "Missed call" }, 1 + i % 28, i % 60, (i * 7) % 60, if i % 10 == 0 { "High" } else { "Normal" }));
        if vm {
            s.push_str(&format!(r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x6801" PropertyType="Integer"/><t:Value>{}</t:Value></t:ExtendedProperty>"#, 5 + i % 120));
        }
        s.push_str(&format!(r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x6802" PropertyType="String"/><t:Value>+49525130{i:04}</t:Value></t:ExtendedProperty><t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x6803" PropertyType="String"/><t:Value>Caller Number {i}</t:Value></t:ExtendedProperty>"#));
        if vm {
            s.push_str(&format!(r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x6805" PropertyType="String"/><t:Value>voicemail-{i}.wav</t:Value></t:ExtendedProperty>"#));
        }
        s.push_str(&format!(r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="0x6806" PropertyType="String"/><t:Value>c0ffee00-{i:04}-2222-3333-444455556666</t:Value></t:ExtendedProperty><t:From><t:Mailbox><t:Name>Caller Number {i}</t:Name><t:EmailAddress>+49525130{i:04}@um.example.com</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType><t:MailboxType>OneOff</t:MailboxType></t:Mailbox></t:From><t:IsRead>{}</t:IsRead></t:Message>"#, i % 4 == 0));
    }
    s.push_str("</t:Items></m:RootFolder></m:FindItemResponseMessage></m:ResponseMessages></m:FindItemResponse></s:Body></s:Envelope>");
    s.into_bytes()
}

fn floor(bytes: &[u8]) -> usize {
    let mut r = NsReader::from_reader(bytes);
    let mut n = 0;
    loop {
        match r.read_resolved_event() {
            Ok((_, Event::Eof)) => return n,
            Ok(_) => n += 1,
            Err(e) => panic!("{e}"),
        }
    }
}

fn bench(c: &mut Criterion) {
    let bytes = response(1000);
    let items = parse_find_item(&bytes).expect("parse")[0].body.as_ref().map(|p| p.items.len()).unwrap_or(0);
    assert_eq!(items, 1000);
    let mut g = c.benchmark_group("finditem_1000_items");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("quick_xml_ns_floor", |b| b.iter(|| floor(black_box(&bytes))));
    g.bench_function("parse_find_item", |b| b.iter(|| parse_find_item(black_box(&bytes))));
    g.finish();
    // the same figures in one line: floor and parse interleaved, 200 rounds,
    // best of each, so both see the same machine state
    let (mut t_floor, mut t_parse) = (f64::MAX, f64::MAX);
    for _ in 0..200 {
        let t = Instant::now();
        black_box(floor(&bytes));
        t_floor = t_floor.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        black_box(parse_find_item(&bytes).ok());
        t_parse = t_parse.min(t.elapsed().as_secs_f64());
    }
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "\nFindItem {:.2} MB, 1,000 items: parse {:.0} MB/s ({:.0} items/s), floor {:.0} MB/s, ratio {:.2}x the floor (best of 200, interleaved)",
        mb,
        mb / t_parse,
        1000.0 / t_parse,
        mb / t_floor,
        t_parse / t_floor
    );
}

/// From the last byte of a streaming notification frame to its typed events:
/// the splitter holds everything but that byte, then gets it and the frame is parsed.
fn streaming_latency(c: &mut Criterion) {
    let body = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/ews/getstreamingevents-chunked-body.xml"),
    )
    .expect("fixture");
    let frames = FrameSplitter::new(1 << 20).push(&body).expect("split");
    let event_frame = frames[1].clone();
    let (head, last) = event_frame.split_at(event_frame.len() - 1);
    let run = || {
        let mut s = FrameSplitter::new(1 << 20);
        s.push(head).expect("head");
        let t = Instant::now();
        let out = s.push(last).expect("last byte");
        let events = parse_streaming_frame(&out[0]).expect("frame");
        (t.elapsed(), events)
    };
    c.bench_function("streaming_last_byte_to_events", |b| b.iter_custom(|iters| (0..iters).map(|_| run().0).sum()));
    let mut samples: Vec<f64> = (0..2000).map(|_| run().0.as_secs_f64() * 1e6).collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "\nstreaming frame of {} bytes (3 events): last byte -> typed events p50 {:.1} µs, p99 {:.1} µs",
        event_frame.len(),
        samples[1000],
        samples[1980]
    );
}

criterion_group!(benches, bench, streaming_latency);
criterion_main!(benches);
