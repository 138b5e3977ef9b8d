//! MWI figures: message-summary bodies formatted per second; NOTIFYs per
//! second sent to a local UDP sink that answers 200 OK (each one a full
//! transaction: request out, response matched); and the time from a count
//! change handed to the relay driver to the datagram arriving at the phone's
//! socket (p50/p99 over 200 changes).
//!
//! `cargo bench -p lamplighter-sip-notify --bench notify`

use lamplighter_sip_mwi::relay::RelayConfig;
use lamplighter_sip_mwi::summary::{Counts, MessageSummary};
use lamplighter_sip_notify::demo_phone::{DemoPhone, Lamp};
use lamplighter_sip_notify::driver::{PhoneTarget, spawn};
use lamplighter_sip_notify::{NotifySender, Transport};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The shared fake phone, answering 200 OK; its reports handed to this runtime.
fn sink() -> (String, mpsc::UnboundedReceiver<Lamp>) {
    let phone = DemoPhone::start("200 OK").expect("phone");
    let uri = format!("sip:613@{}", phone.addr);
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for lamp in phone.lamps {
            if tx.send(lamp).is_err() {
                return;
            }
        }
    });
    (uri, rx)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    // 1. formatting
    let n = 1_000_000u32;
    let t = Instant::now();
    let mut bytes = 0usize;
    for i in 0..n {
        bytes += MessageSummary::voice(
            "sip:613@192.0.2.10",
            Counts { new: i % 7, old: i % 11, urgent_new: i % 2, urgent_old: 0 },
        )
        .to_string()
        .len();
    }
    let e = t.elapsed();
    println!("format:            {:.0} bodies/s ({} bytes each)", f64::from(n) / e.as_secs_f64(), bytes / n as usize);

    // 2. NOTIFY transactions to a local sink
    let (uri, mut arrivals) = sink();
    let sender = Arc::new(NotifySender::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind"));
    let body = MessageSummary::voice(&uri, Counts { new: 2, old: 5, urgent_new: 1, urgent_old: 0 });
    let total = 2_000;
    let t = Instant::now();
    for _ in 0..total {
        sender.send(&uri, Transport::Udp, "lamplighter", &body, None).await.expect("200");
    }
    let e = t.elapsed();
    println!(
        "notify sequential: {:.0} NOTIFY/s ({total} transactions, {:.0} µs each)",
        f64::from(total) / e.as_secs_f64(),
        e.as_secs_f64() * 1e6 / f64::from(total)
    );
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (sender, uri, body) = (sender.clone(), uri.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..(total / 64) {
                sender.send(&uri, Transport::Udp, "lamplighter", &body, None).await.expect("200");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let e = t.elapsed();
    println!("notify 64 at once: {:.0} NOTIFY/s", f64::from(total / 64 * 64) / e.as_secs_f64());
    while arrivals.try_recv().is_ok() {}

    // 3. count change -> datagram at the phone
    let phone = PhoneTarget {
        uri: uri.clone(),
        transport: Transport::Udp,
        credentials: None,
        account: uri.clone(),
        refresh: Duration::from_secs(3600),
        delivery: lamplighter_sip_notify::driver::Delivery::Notify,
        urgent: Default::default(),
    };
    let relay = spawn(sender.clone(), vec![phone], RelayConfig { coalesce: Duration::ZERO, ..RelayConfig::default() });
    let mut events = relay.events();
    let mut latencies = Vec::new();
    for i in 1..=200u32 {
        let t = Instant::now();
        relay.set_counts(Counts { new: i, old: 0, urgent_new: 0, urgent_old: 0 });
        let want = format!("{i}/0 ");
        loop {
            let lamp = arrivals.recv().await.expect("arrival");
            if lamp.voice_message.starts_with(&want) {
                latencies.push(lamp.at - t);
                break;
            }
        }
        // wait for the transaction to finish so changes do not queue behind it
        while !matches!(events.recv().await, Ok(lamplighter_sip_mwi::relay::RelayEvent::Delivered { counts, .. }) if counts.new == i)
        {
        }
    }
    latencies.sort();
    println!(
        "change -> wire:    p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs (200 changes, coalescing off)",
        percentile(&latencies, 0.5).as_secs_f64() * 1e6,
        percentile(&latencies, 0.99).as_secs_f64() * 1e6,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e6
    );
}
