//! The gateway at scale, by hand: `cargo bench -p lamplighter-gateway --bench scale`
//! (`LAMPLIGHTER_BENCH_MAILBOXES=1000,10000` by default; seconds of idle
//! and of deposits in `LAMPLIGHTER_BENCH_SECONDS`, default 30).
//!
//! For each size: the Exchange simulator in this process (N mailboxes on 4
//! mailbox servers, one service account with impersonation, schema checks
//! off: this measures the gateway, not xmllint), one sipp as the PBX trunk
//! (over TCP, 500 NOTIFYs a second allowed),
//! and `lamplighter-gateway run` (the release binary) as a child. It prints:
//!
//! - start-up: from the start of the process until every lamp is
//!   acknowledged by the trunk (`lines_correct` = N);
//! - the gateway's RSS, and its CPU at idle (utime + stime from /proc over
//!   the idle window), and the requests per second it sends Exchange at idle;
//! - deposit → NOTIFY at the trunk, p50 and p99, for 20 deposits a second
//!   spread over random mailboxes (the NOTIFY's time is sipp's trace stamp).
//!
//! Goals (issue 18): start-up ≤ 60 s, RSS ≤ 300 MB, idle CPU ≤ 2 % of a core, p99 ≤ 1 s.

use lamplighter_ews_sim::{SimConfig, Simulator, Validation, Voicemail};
use lamplighter_testkit::sipp::{Sipp, free_port};
use std::collections::HashMap;
use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn address(n: usize) -> String {
    format!("user{n:05}@example.test")
}

fn line(n: usize) -> String {
    format!("{}", 100_000 + n)
}

/// sipp's trace stamp (`2026-12-02 04:00:32.982964`, UTC here) as Unix seconds.
fn stamp(s: &str) -> Option<f64> {
    let (date, time) = s.trim().split_once(' ')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (hh, mm, ss) = (t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?, t.next()?.parse::<f64>().ok()?);
    // days from civil (H. Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hh * 3600.0 + mm * 60.0 + ss)
}

/// NOTIFYs in the trace from byte `from`: (unix time, extension, new count).
fn notifies(trace: &str) -> Vec<(f64, String, u32)> {
    let mut out = Vec::new();
    let mut when = None;
    let mut ext: Option<String> = None;
    for l in trace.lines() {
        if let Some(s) = l.strip_prefix("----------------------------------------------- ") {
            when = stamp(s);
            ext = None;
        } else if let Some(rest) = l.strip_prefix("NOTIFY sip:") {
            ext = Some(rest.chars().take_while(char::is_ascii_digit).collect());
        } else if let (Some(v), Some(e), Some(t)) = (l.strip_prefix("Voice-Message: "), &ext, when) {
            let new = v.split('/').next().and_then(|n| n.trim().parse().ok()).unwrap_or(0);
            out.push((t, e.clone(), new));
        }
    }
    out
}

fn figure(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

fn metrics(http: &str) -> String {
    let out = Command::new("curl").args(["-sS", "--max-time", "10", &format!("http://{http}/metrics")]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// (RSS in MiB, CPU seconds) of a process.
fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    (rss, ticks / 100.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Figures {
    n: usize,
    startup: f64,
    rss: f64,
    idle_cpu: f64,
    idle_rps: f64,
    p50: f64,
    p99: f64,
    notified: usize,
    deposits: usize,
    streams: u32,
}

async fn run(n: usize, seconds: u64) -> Figures {
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
    let pw = creds.join("ews-password");
    std::fs::write(&pw, "Dienst-2026!").expect("pw");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let directory: String =
        (0..n).map(|i| format!("[[mailbox]]\naddress = \"{}\"\nline = \"{}\"\n", address(i), line(i))).collect();
    std::fs::write(dir.path().join("directory.toml"), directory).expect("directory");
    let port = free_port();
    // TCP, as a trunk carrying thousands of lamps should be: a burst over UDP loses some to
    // the receiver's socket buffer, and each loss waits for Timer F (32 s) and the failover
    let trunk = Sipp::start_trunk(port, "notify-trunk.xml", true, 10_000_000);
    std::fs::write(
        dir.path().join("gateway.toml"),
        format!(
            "[exchange]\news_url = \"{}\"\naccount = \"svc-lamp\"\nauth = \"basic\"\n\n[directory]\nfile = \"directory.toml\"\n\n\
             [sip]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[state]\ndir = \"state\"\n\n\
             [[gateway]]\nname = \"trunk\"\naddress = \"127.0.0.1:{port}\"\ntransport = \"tcp\"\n\n\
             [[group]]\nname = \"default\"\ndelivery = \"trunk\"\ngateways = [\"trunk\"]\ndomain = \"pbx.example.test\"\n\n\
             [lamps]\nrate_per_second = 500\nrate_per_gateway = 500\n",
            sim.ews_url()
        ),
    )
    .expect("config");
    let started = Instant::now();
    // LAMPLIGHTER_BENCH_WRAP="heaptrack -o /tmp/gw" runs it under a profiler (its figures are then the profiler's)
    let wrap = std::env::var("LAMPLIGHTER_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut child = match words.next() {
        Some(tool) => {
            let mut c = Command::new(tool);
            c.args(words).arg(env!("CARGO_BIN_EXE_lamplighter-gateway"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_lamplighter-gateway")),
    };
    let mut child = child
        .arg("--config")
        .arg(dir.path().join("gateway.toml"))
        .arg("run")
        .env("CREDENTIALS_DIRECTORY", &creds)
        .env("LAMPLIGHTER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("gateway");
    let mut first = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    // (a profiler may say things first)
    while !first.trim_start().starts_with('{') {
        first.clear();
        assert!(out.read_line(&mut first).expect("running") > 0, "the gateway ended before running");
    }
    let running: serde_json::Value = serde_json::from_str(first.trim()).expect("running line");
    let http = running["http"].as_str().expect("http").to_string();
    let pid = child.id();
    let mut said = Instant::now();
    loop {
        let m = metrics(&http);
        if figure(&m, "lamplighter_gateway_lines_correct ") == Some(n as f64) {
            break;
        }
        if said.elapsed() > Duration::from_secs(10) {
            said = Instant::now();
            let f = |k: &str| figure(&m, k).unwrap_or(0.0);
            eprintln!(
                "  {n}: after {:.0} s: {} watched, {} live, {} lamps right, {} requests served",
                started.elapsed().as_secs_f64(),
                f("lamplighter_gateway_mailboxes_watched "),
                f("lamplighter_gateway_mailboxes_live "),
                f("lamplighter_gateway_lines_correct "),
                sim.served().len()
            );
        }
        assert!(started.elapsed() < Duration::from_secs(1200), "not every lamp after 20 minutes:\n{m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let startup = started.elapsed().as_secs_f64();
    let streams = sim.open_streams();
    eprintln!("  {n}: every lamp acknowledged after {startup:.1} s ({streams} streaming connections)");

    // idle
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, cpu0) = usage(pid);
    let served0 = sim.served().len();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let (rss, cpu1) = usage(pid);
    let idle = t0.elapsed().as_secs_f64();
    let idle_rps = (sim.served().len() - served0) as f64 / idle;
    let idle_cpu = (cpu1 - cpu0) / idle * 100.0;
    eprintln!("  {n}: idle {idle_cpu:.2} % of a core, {idle_rps:.2} requests/s, RSS {rss:.0} MiB");

    // 20 deposits a second over random mailboxes
    let trace_from = trunk.messages().len();
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut counts: HashMap<usize, u32> = HashMap::new();
    let mut deposits: Vec<(usize, u32, f64)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let total = 20 * seconds as usize;
    for _ in 0..total {
        tick.tick().await;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = (rng % n as u64) as usize;
        let k = counts.entry(i).or_default();
        *k += 1;
        let at = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs_f64();
        sim.mailbox(&address(i)).expect("mailbox").deposit_voicemail(Voicemail {
            caller_number: format!("+49 {i}"),
            duration_secs: 4,
            ..Voicemail::default()
        });
        deposits.push((i, *k, at));
    }
    // every deposit's NOTIFY (its extension at its count or more)
    let end = Instant::now() + Duration::from_secs(120);
    let latencies = loop {
        let trace = trunk.messages();
        let seen = notifies(&trace[trace_from.min(trace.len())..]);
        let mut lat = Vec::new();
        for (i, k, at) in &deposits {
            let ext = line(*i);
            if let Some((t, _, _)) = seen.iter().find(|(t, e, c)| *e == ext && *c >= *k && *t >= *at - 0.001) {
                lat.push((t - at).max(0.0));
            }
        }
        if lat.len() == deposits.len() || Instant::now() > end {
            break lat;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut sorted = latencies.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    Figures {
        n,
        startup,
        rss,
        idle_cpu,
        idle_rps,
        p50: percentile(&sorted, 0.5) * 1000.0,
        p99: percentile(&sorted, 0.99) * 1000.0,
        notified: latencies.len(),
        deposits: deposits.len(),
        streams,
    }
}

fn main() {
    let sizes: Vec<usize> = std::env::var("LAMPLIGHTER_BENCH_MAILBOXES")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let seconds: u64 = std::env::var("LAMPLIGHTER_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    assert!(
        Path::new("/usr/bin/sipp").exists() || Command::new("sipp").arg("-v").output().is_ok(),
        "sipp: ./dev.sh setup"
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio");
    let mut rows = Vec::new();
    for n in sizes {
        eprintln!("{n} mailboxes …");
        rows.push(rt.block_on(run(n, seconds)));
    }
    println!(
        "| mailboxes | start-up to every lamp | RSS | idle CPU (one core) | requests/s at idle | deposit → NOTIFY p50 | p99 | streaming connections |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in &rows {
        println!(
            "| {} | {:.1} s | {:.0} MiB | {:.2} % | {:.2} | {:.0} ms | {:.0} ms | {} |",
            f.n, f.startup, f.rss, f.idle_cpu, f.idle_rps, f.p50, f.p99, f.streams
        );
        if f.notified < f.deposits {
            println!("  ({} of {} deposits were seen at the trunk within 2 minutes)", f.notified, f.deposits);
        }
    }
}
