//! End-to-end latency of change tracking over loopback: from a deposit in
//! the simulator to the `Added` event out of the driver. The path is the
//! streaming notification (server → client), SyncFolderItems and GetItem
//! (two round trips, by design: events only say "look"). The simulator's
//! schema validation is off here, so the figures are ours, not xmllint's.
//! The sans-IO part alone (last byte of a frame → typed events) is in
//! `cargo bench -p lamplighter-ews-wire --bench finditem`.
//!
//! `cargo bench -p lamplighter-ews-client --bench stream_latency`

use lamplighter_ews_client::driver::{self, DriverConfig};
use lamplighter_ews_client::{ClientConfig, Credentials, EwsClient, Password};
use lamplighter_ews_sim::{SimConfig, Simulator, Validation, Voicemail};
use lamplighter_mailbox::{Connection, MailboxEvent, MemoryState};
use lamplighter_mailbox_sync::Change;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(async {
        let sim = Simulator::start(SimConfig { validation: Validation::Off, ..SimConfig::default() }).await.expect("sim");
        let mut cfg = ClientConfig::new("mara@example.test", Credentials::Basic { user: "mara".into(), password: Password::new("Sommer2026!") });
        cfg.ews_url = Some(sim.ews_url());
        let client = Arc::new(EwsClient::connect(cfg).await.expect("client"));
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let handle = driver::spawn(client, Arc::new(MemoryState::default()), DriverConfig::default(), tx);
        loop {
            if let Some(MailboxEvent::Connection(Connection::Live)) = rx.recv().await {
                break;
            }
        }
        let mut samples = Vec::new();
        for n in 0..200u32 {
            let t = Instant::now();
            let id = sim.deposit_voicemail(Voicemail { caller_number: format!("+49 5251 {n:06}"), duration_secs: 20, ..Voicemail::default() });
            loop {
                match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                    Ok(Some(MailboxEvent::Change(c))) if matches!(&*c, Change::Added(i) if i.id.id == id) => break,
                    Ok(Some(_)) => {}
                    other => panic!("no event for deposit {n}: {other:?}"),
                }
            }
            samples.push(t.elapsed().as_secs_f64() * 1e3);
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        println!(
            "deposit -> Added over loopback (stream, SyncFolderItems, GetItem), 200 deposits: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            samples[100], samples[198], samples[199]
        );
        handle.stop().await;
    });
}
