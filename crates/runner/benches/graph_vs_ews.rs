//! Deposit in the simulator → NOTIFY at a phone, over Microsoft Graph at the
//! default polling policy (3 s after a change, 6.02 s otherwise) and over EWS
//! streaming, p50/p99 over isolated deposits; and what an idle Graph mailbox
//! costs in requests (a minute counted, times 60). The trade-off: Graph's
//! latency is the poll interval's half on the median, bought with 600
//! requests an idle hour (598 polls and two readings of the folder list);
//! EWS streaming is push.
//!
//! `cargo bench -p lamplighter-runner --bench graph_vs_ews` (about 9 minutes: the idle case waits out the active spells)

use lamplighter_ews_client::{ClientConfig, Credentials, Password};
use lamplighter_ews_sim::{AuthSchemes, SimConfig, Simulator, Validation, Voicemail};
use lamplighter_runner::{MailboxSetup, RunConfig, Runner};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";

fn config(mailbox: MailboxSetup, phone: std::net::SocketAddr) -> RunConfig {
    RunConfig {
        mailbox,
        user: lamplighter_missed_calls::UserIdentity::new(&["mara@example.test"], &[]).expect("user"),
        include_missed_calls: false,
        recogniser: Default::default(),
        phones: vec![lamplighter_sip_notify::driver::PhoneTarget {
            uri: format!("sip:613@{phone}"),
            transport: lamplighter_sip_notify::Transport::Udp,
            credentials: None,
            account: "sip:mara@example.test".into(),
            refresh: Duration::from_secs(3600),
            delivery: lamplighter_sip_notify::driver::Delivery::Notify,
            urgent: Default::default(),
        }],
        subscribers: vec![],
        audio_cache: None,
        event_buffer: lamplighter_runner::EVENT_BUFFER,
        sip: lamplighter_sip_notify::SenderConfig::udp("127.0.0.1:0".parse().expect("addr")),
        relay: Default::default(),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Isolated deposits, each timed to its NOTIFY.
fn deposits(
    sim: &Simulator,
    lamps: &std::sync::mpsc::Receiver<lamplighter_testkit::phone::Lamp>,
    n: u32,
    base: u32,
) -> Vec<f64> {
    let mut samples = Vec::new();
    for i in 0..n {
        // a quiet spell beyond the relay's 500 ms coalescing window
        std::thread::sleep(Duration::from_millis(700));
        while lamps.try_recv().is_ok() {}
        let t = Instant::now();
        sim.deposit_voicemail(Voicemail {
            caller_number: format!("+49 89 {:06}", base + i),
            duration_secs: 9,
            ..Voicemail::default()
        });
        let at = lamps.recv_timeout(Duration::from_secs(60)).expect("NOTIFY for the deposit").at;
        samples.push((at - t).as_secs_f64() * 1e3);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt
        .block_on(Simulator::start(SimConfig {
            validation: Validation::Off,
            auth: AuthSchemes {
                basic: true,
                ntlm: false,
                negotiate_only: false,
                bearer_tokens: vec![TOKEN.into()],
                kerberos: None,
            },
            ..SimConfig::default()
        }))
        .expect("sim");
    let phone = lamplighter_testkit::phone::DemoPhone::start("200 OK").expect("phone");
    let n = 20;

    // EWS streaming
    let mut client = ClientConfig::new(
        "mara@example.test",
        Credentials::Basic { user: "mara".into(), password: Password::new("Sommer2026!") },
    );
    client.ews_url = Some(sim.ews_url());
    let runner = rt.block_on(Runner::start(config(MailboxSetup::ews(client), phone.addr))).expect("ews runner");
    phone.lamps.recv_timeout(Duration::from_secs(60)).expect("first lamp");
    let ews = deposits(&sim, &phone.lamps, n, 0);
    rt.block_on(runner.stop());

    // Graph at the default polling policy
    let token: lamplighter_graph_client::TokenSource = Arc::new(|_| Box::pin(async { Ok(TOKEN.to_string()) }));
    let graph_config = lamplighter_graph_client::GraphConfig::new(sim.graph_url(), token);
    let runner = rt
        .block_on(Runner::start(config(MailboxSetup::Graph { config: graph_config }, phone.addr)))
        .expect("graph runner");
    phone.lamps.recv_timeout(Duration::from_secs(60)).expect("first lamp");
    // back to back: each deposit falls in the active spell another one began
    let active = deposits(&sim, &phone.lamps, n, 1000);
    // idle: past the active spell, then one minute counted
    std::thread::sleep(Duration::from_secs(125));
    let before = sim.served().iter().filter(|s| s.op.starts_with("graph ")).count();
    std::thread::sleep(Duration::from_secs(60));
    let idle_minute = sim.served().iter().filter(|s| s.op.starts_with("graph ")).count() - before;
    // isolated deposits into an idle mailbox (each after the active spell has ended)
    let mut idle = Vec::new();
    for i in 0..3 {
        if i > 0 {
            std::thread::sleep(Duration::from_secs(125));
        }
        // at a random point of the 6 s poll cycle, or the fixed sleeps line every deposit up
        // with the same phase of it
        use std::hash::{BuildHasher as _, RandomState};
        let phase = RandomState::new().hash_one((i, Instant::now())) % 6000;
        std::thread::sleep(Duration::from_millis(phase));
        idle.extend(deposits(&sim, &phone.lamps, 1, 2000 + i));
    }
    idle.sort_by(|a, b| a.total_cmp(b));
    rt.block_on(runner.stop());

    println!("deposit → NOTIFY over {n} isolated deposits (ms):");
    println!("  EWS streaming:           p50 {:7.0}  p99 {:7.0}", percentile(&ews, 0.5), percentile(&ews, 0.99));
    println!("  Graph, active (3 s):     p50 {:7.0}  p99 {:7.0}", percentile(&active, 0.5), percentile(&active, 0.99));
    println!("  Graph, idle (6 s), 3:    {:?}", idle.iter().map(|v| v.round() as u64).collect::<Vec<_>>());
    println!("Graph, an idle mailbox: {idle_minute} requests in a minute, {} an hour (goal ≤ 600)", idle_minute * 60);
}
