//! Where the gateway's memory goes, by hand: the gateway in this process
//! (`Gateway::start`, not the binary) with N mailboxes on the simulator and
//! a sipp trunk, until every lamp is acknowledged; then the RSS the
//! gateway added to the process (the simulator's is measured before the
//! gateway starts). Run it under a heap profiler to see the call sites:
//! `heaptrack <target>/release/deps/memory-<hash>`.
//!
//! `cargo bench -p lamplighter-gateway --bench memory` (N from
//! `LAMPLIGHTER_BENCH_MAILBOXES`, default 2000).

use lamplighter_ews_sim::{SimConfig, Simulator, Validation};
use lamplighter_testkit::sipp::{Sipp, free_port};
use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    let n: usize = std::env::var("LAMPLIGHTER_BENCH_MAILBOXES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    rt.block_on(async move {
        let address = |i: usize| format!("user{i:05}@example.test");
        let sim = Simulator::start(SimConfig {
            users: vec![("svc-lamp".into(), "Dienst-2026!".into())],
            email: "postmaster@example.test".into(),
            mailboxes: (0..n).map(address).collect(),
            impersonators: vec!["svc-lamp".into()],
            backends: 4,
            validation: Validation::Off,
            ..SimConfig::default()
        })
        .await
        .expect("sim");
        let dir = tempfile::tempdir().expect("dir");
        let creds = dir.path().join("credentials");
        std::fs::create_dir(&creds).expect("dir");
        std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let pw = creds.join("ews-password");
        std::fs::write(&pw, "Dienst-2026!").expect("pw");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let directory: String = (0..n)
            .map(|i| format!("[[mailbox]]\naddress = \"{}\"\nline = \"{}\"\n", address(i), 100_000 + i))
            .collect();
        std::fs::write(dir.path().join("directory.toml"), directory).expect("directory");
        let port = free_port();
        let trunk = Sipp::start_trunk(port, "notify-trunk.xml", true, 10_000_000);
        let settings = format!(
            "[exchange]\news_url = \"{}\"\naccount = \"svc-lamp\"\nauth = \"basic\"\n\n[directory]\nfile = \"directory.toml\"\n\n\
             [sip]\nlisten = \"127.0.0.1:0\"\n\n[state]\ndir = \"state\"\n\n\
             [[gateway]]\nname = \"trunk\"\naddress = \"127.0.0.1:{port}\"\ntransport = \"tcp\"\n\n\
             [[group]]\nname = \"default\"\ndelivery = \"trunk\"\ngateways = [\"trunk\"]\ndomain = \"pbx.example.test\"\n\n\
             [lamps]\nrate_per_second = 500\nrate_per_gateway = 500\n",
            sim.ews_url()
        );
        std::fs::write(dir.path().join("gateway.toml"), settings).expect("settings");
        let config = lamplighter_gateway::config::GatewayConfig::load(&dir.path().join("gateway.toml")).expect("config");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss_mib();
        let started = Instant::now();
        let gateway = lamplighter_gateway::service::Gateway::start(
            config,
            lamplighter_gateway::credentials::Credentials::from_env(Some(creds.clone())),
        )
        .await
        .expect("gateway");
        while gateway.metrics().lines_correct.get() < n as i64 {
            assert!(started.elapsed() < Duration::from_secs(600), "not every lamp within 10 minutes");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let startup = started.elapsed();
        // settled: idle connections closed, start-up buffers gone
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = rss_mib();
        println!(
            "{n} mailboxes: every lamp in {:.1} s; RSS {before:.0} MiB with the simulator alone, {after:.0} MiB with the gateway: {:.1} KB a mailbox",
            startup.as_secs_f64(),
            (after - before) * 1024.0 / n as f64
        );
        gateway.stop().await;
        drop(trunk);
    });
}
