//! Throughput and memory of the call book: 1,000,000 records from 50,000
//! calls across 3 devices (each device re-reports a call ~7 times while it
//! rings, as phones do on reconnects and re-syncs), 5,000 callers, a call
//! every 3 s. Prints records per second for insertion and removal and the
//! live heap per call (a counting allocator), so the figures can be quoted.
//!
//! `cargo bench -p lamplighter-missed-calls --bench callbook [-- RECORDS]`

use lamplighter_missed_calls::{CallBook, CallRecord, HistoryInfo, Outcome, Party, Source, TimeKind, UserIdentity};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn main() {
    let records: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let calls = records / 20;
    let devices = ["desk", "softphone", "mobile"];
    let user = UserIdentity::new(&["frank.carius@netatwork.de"], &["+49 5251 304613"]).expect("user");
    let to = Party::parse("sip:frank.carius@netatwork.de").expect("to");
    let mut input = Vec::with_capacity(records);
    for i in 0..records {
        let call = i % calls;
        let repeat = i / calls;
        let caller = call % 5_000;
        input.push(CallRecord {
            source: Source::Device,
            device: devices[repeat % 3].to_string(),
            report_id: None,
            call_id: Some(format!("{call:08x}-call@pbx.example.com")),
            from_tag: Some(format!("t{call}")),
            caller: Party::Number { number: format!("+4930{caller:06}"), ext: None },
            caller_name: None,
            at: 1_764_000_000_000 + call as i64 * 3_000 + repeat as i64 * 100,
            time_kind: TimeKind::Start,
            outcome: if call.is_multiple_of(10) && repeat == 5 { Outcome::AnsweredHere } else { Outcome::Missed },
            to: Some(to.clone()),
            history: HistoryInfo::default(),
            diversion: Vec::new(),
        });
    }
    let before = LIVE.load(Ordering::Relaxed);
    let mut book = CallBook::new(user);
    let t = Instant::now();
    let mut ids = Vec::with_capacity(records);
    for r in input {
        ids.push(book.insert(r));
    }
    let insert = t.elapsed();
    let live = LIVE.load(Ordering::Relaxed) - before - (ids.capacity() * std::mem::size_of_val(&ids[0])) as isize;
    let t = Instant::now();
    let missed = book.missed_calls().len();
    let query = t.elapsed();
    println!("records inserted:   {records} ({} calls in the book, {missed} missed)", book.call_count());
    println!(
        "insert throughput:  {:.0} records/s ({:.2} s)",
        records as f64 / insert.as_secs_f64(),
        insert.as_secs_f64()
    );
    println!(
        "memory:             {:.1} MiB live, {:.0} bytes per call, {:.0} bytes per record",
        live as f64 / 1048576.0,
        live as f64 / book.call_count() as f64,
        live as f64 / records as f64
    );
    println!("missed_calls():     {:.1} ms for {} calls", query.as_secs_f64() * 1e3, book.call_count());
    let removals = records / 10;
    let t = Instant::now();
    for id in ids.iter().rev().take(removals) {
        book.remove(*id);
    }
    let remove = t.elapsed();
    println!("remove throughput:  {:.0} records/s ({removals} removals)", removals as f64 / remove.as_secs_f64());
    assert_eq!(book.call_count(), calls, "every call still has reports");
}
