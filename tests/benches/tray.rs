//! Figures for the desktop app, printed (never asserted), summed over every
//! process of the app (the tray, the window process while it is open, and
//! WebKit's web and network processes under it):
//! - RSS and PSS (`/proc/PID/smaps_rollup`) and idle CPU: tray only (the
//!   window never opened), window open, window closed again, and after 10
//!   more open/close cycles;
//! - the time from a deposit in the (simulated) mailbox to the notification
//!   on screen (dunst runs its logging rule when it shows one).
//!
//! `cargo bench -p lamplighter-e2e --bench tray` measures
//! `target/release/lamplighter` (and `lamplighter-window` beside it) when they
//! exist (`./dev.sh package`, or `cargo build --release -p lamplighter-tray -p
//! lamplighter-app`), else the debug build, and says which.

use lamplighter_e2e::{Dunst, TrayHost, x11};
use lamplighter_ews_sim::{SimConfig, Simulator, Validation, Voicemail};
use lamplighter_testkit::{Parts, Session};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn binary() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let release = target.join("release/lamplighter");
    // the window binary beside it is what the tray starts
    if release.is_file() { release } else { target.join("debug/lamplighter") }
}

/// The process and all its descendants (WebKit's web and network processes).
fn tree(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
            if ppid == Some(parent) && !all.contains(&pid) {
                all.push(pid);
            }
        }
        i += 1;
    }
    all
}

/// A `Key:  N kB` line of a `/proc/PID/…` file, summed over `pids`.
fn sum_kib(pids: &[u32], file: &str, key: &str) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/{file}")).ok())
        .filter_map(|s| s.lines().find(|l| l.starts_with(key)).map(str::to_string))
        .filter_map(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

fn rss_kib(pids: &[u32]) -> u64 {
    sum_kib(pids, "status", "VmRSS:")
}

/// Proportional set size: shared pages (libraries, WebKit's shared memory)
/// counted once across the processes that share them.
fn pss_kib(pids: &[u32]) -> u64 {
    sum_kib(pids, "smaps_rollup", "Pss:")
}

fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .map(|s| {
            let f: Vec<&str> = s.rsplit(')').next().unwrap_or("").split_whitespace().collect();
            f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
                + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        })
        .sum()
}

/// RSS and CPU share over `secs` seconds of idling.
fn idle(root: u32, what: &str, secs: u64) {
    let pids = tree(root);
    let before = cpu_ticks(&pids);
    std::thread::sleep(Duration::from_secs(secs));
    let pids = tree(root);
    let ticks = cpu_ticks(&pids).saturating_sub(before);
    println!(
        "{what}: RSS {:.1} MiB, PSS {:.1} MiB over {} processes; CPU {:.2} s in {secs} s ({:.3} %)",
        rss_kib(&pids) as f64 / 1024.0,
        pss_kib(&pids) as f64 / 1024.0,
        pids.len(),
        ticks as f64 / 100.0,
        ticks as f64 / secs as f64
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bin = binary();
    println!("binary: {} ({} KiB)", bin.display(), std::fs::metadata(&bin).map(|m| m.len() / 1024).unwrap_or(0));
    let mut session = Session::start(Parts { display: true, keyring: true });
    let host = TrayHost::start(&mut session);
    let dunst = Dunst::start(&mut session);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt
        .block_on(Simulator::start(SimConfig { validation: Validation::Off, ..SimConfig::default() }))
        .expect("simulator");
    for n in 0..20 {
        sim.deposit_voicemail(Voicemail {
            caller_number: format!("+49 30 {n}"),
            duration_secs: 9,
            ..Voicemail::default()
        });
    }
    let config = session.xdg("XDG_CONFIG_HOME").join("lamplighter/config.toml");
    std::fs::create_dir_all(config.parent().expect("dir")).expect("mkdir");
    std::fs::write(
        &config,
        format!(
            "schema_version = 1\n[mailbox]\nemail = \"mara@example.test\"\news_url = \"{}\"\nusername = \"mara\"\nauth = \"basic\"\npassword_env = \"BENCH_PW\"\n",
            sim.ews_url()
        ),
    )
    .expect("config");
    let mut app = session
        .command(&bin)
        .env("BENCH_PW", "Sommer2026!")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the app");
    let tray = host.item(Duration::from_secs(60));
    let end = Instant::now() + Duration::from_secs(60);
    while !tray.tooltip().3.contains("20 new voicemails") {
        assert!(Instant::now() < end, "not connected: {:?}", tray.tooltip());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(10));
    idle(app.id(), "idle, tray only (window never opened; 20 items, stream open)", 30);

    let display = session.var("DISPLAY").expect("display").to_string();
    let root = app.id();
    // opens from the tray menu; returns how many processes the app has with the window open
    let open = || {
        tray.click_menu("Open Lamplighter");
        let end = Instant::now() + Duration::from_secs(60);
        while !x11::window_closable(&display, "Lamplighter") {
            assert!(Instant::now() < end, "no window");
            std::thread::sleep(Duration::from_millis(100));
        }
        tree(root).len()
    };
    // closes as a window manager does, until the window's processes are gone
    let close = || {
        let end = Instant::now() + Duration::from_secs(60);
        while tree(root).len() > 1 {
            assert!(Instant::now() < end, "the window's processes stay after close");
            if x11::window_exists(&display, "Lamplighter") {
                x11::request_close(&display, "Lamplighter");
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    open();
    std::thread::sleep(Duration::from_secs(10));
    idle(root, "idle, window open", 30);
    close();
    std::thread::sleep(Duration::from_secs(5));
    idle(root, "idle, window closed again", 10);
    let mut processes = Vec::new();
    for _ in 0..10 {
        processes.push(open());
        close();
    }
    std::thread::sleep(Duration::from_secs(5));
    println!("10 open/close cycles: processes while open {processes:?}");
    idle(root, "idle, after 10 more open/close cycles", 10);

    // deposit → notification on screen; spaced so the burst cap (3 in 10 s) never folds them
    let mut ms = Vec::new();
    for n in 0..15 {
        let number = format!("+49 89 {n:04}");
        let t0 = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
        sim.deposit_voicemail(Voicemail { caller_number: number.clone(), duration_secs: 5, ..Voicemail::default() });
        let end = Instant::now() + Duration::from_secs(20);
        let shown = loop {
            if let Some((at, _, _)) = dunst.shown().into_iter().find(|(_, s, _)| s.contains(&number)) {
                break at;
            }
            assert!(Instant::now() < end, "no notification for {number}");
            std::thread::sleep(Duration::from_millis(5));
        };
        ms.push((shown - t0) * 1000.0);
        std::thread::sleep(Duration::from_millis(3500));
    }
    ms.sort_by(f64::total_cmp);
    println!(
        "deposit → notification on screen, {} deposits: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms[ms.len() - 1]
    );
    let _ = app.kill();
    let _ = app.wait();
}
