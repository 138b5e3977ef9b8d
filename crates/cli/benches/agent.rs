//! Figures of the agent as a process, against the Exchange simulator (schema
//! validation off, so xmllint's time is not counted) and a UDP phone:
//! - start-up to the first complete state with 10,000 items in the mailbox;
//! - deposit in the simulator → NOTIFY at the phone, p50/p99 over 100 isolated
//!   deposits (each after a quiet spell longer than the relay's 500 ms coalescing
//!   window, so each goes out on the window's leading edge);
//! - a burst of 10 deposits within 100 ms: how many NOTIFYs, and what the last says;
//! - RSS and CPU of the agent while idle for 60 s with its stream open.
//!
//! `cargo bench -p lamplighter-cli --bench agent` (about 3 minutes)

use lamplighter_ews_sim::{SimConfig, Simulator, Validation, Voicemail};
use std::io::BufRead as _;
use std::time::{Duration, Instant};

fn proc_stat(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    (rss_kb, ticks / 100.0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim =
        rt.block_on(Simulator::start(SimConfig { validation: Validation::Off, ..SimConfig::default() })).expect("sim");
    let _guard = rt.enter();
    for n in 0..10_000u32 {
        sim.deposit_voicemail(Voicemail {
            caller_number: format!("+49 5251 {n:06}"),
            duration_secs: 20,
            is_read: n % 2 == 0,
            ..Voicemail::default()
        });
    }
    // the phone: answers 200, reports each Voice-Message line with its arrival time
    let phone_at = lamplighter_testkit::phone::DemoPhone::start("200 OK").expect("phone");
    let (phone, heard) = (phone_at.addr, phone_at.lamps);
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("schema_version = 1\n[mailbox]\nemail = \"mara@example.test\"\news_url = \"{}\"\nusername = 'EXAMPLE\\mara'\nauth = \"ntlm\"\npassword_env = \"LL_PW\"\n\n[[phone]]\nuri = \"sip:613@{phone}\"\ntransport = \"udp\"\nmode = \"unsolicited\"\nrefresh_hours = 12\n", sim.ews_url())).expect("config");
    let start = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lamplighter-agent"))
        .args(["--config", config.to_str().expect("path"), "run", "--json"])
        .env("HOME", dir.path())
        .env("LL_PW", "Sommer2026!")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent");
    let pid = child.id();
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        let line = lines.next().expect("line").expect("read");
        if line.contains("\"event\":\"state\"") && line.contains("\"state\":\"live\"") {
            break;
        }
    }
    let startup = start.elapsed();
    std::thread::spawn(move || for _ in lines {});
    // wait for the first lamp
    let first = heard.recv_timeout(Duration::from_secs(30)).expect("first lamp").voice_message;
    println!(
        "start-up with 10,000 items to the first complete state: {:.2} s (lamp then {first})",
        startup.as_secs_f64()
    );
    let (rss0, cpu0) = proc_stat(pid);
    std::thread::sleep(Duration::from_secs(60));
    let (rss1, cpu1) = proc_stat(pid);
    println!(
        "idle 60 s, stream open: RSS {} KiB → {} KiB, CPU {:.2} s ({:.3} %)",
        rss0,
        rss1,
        cpu1 - cpu0,
        (cpu1 - cpu0) / 60.0 * 100.0
    );
    let mut samples = Vec::new();
    for n in 0..100u32 {
        // a quiet spell beyond the coalescing window: an isolated change
        std::thread::sleep(Duration::from_millis(700));
        let t = Instant::now();
        sim.deposit_voicemail(Voicemail {
            caller_number: format!("+49 89 {n:06}"),
            duration_secs: 9,
            ..Voicemail::default()
        });
        let at = heard.recv_timeout(Duration::from_secs(10)).expect("NOTIFY for the deposit").at;
        samples.push((at - t).as_secs_f64() * 1e3);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    println!(
        "deposit → NOTIFY at the phone, 100 isolated deposits: p50 {:.1} ms, p99 {:.1} ms",
        samples[50], samples[98]
    );
    std::thread::sleep(Duration::from_millis(700));
    let burst = Instant::now();
    for n in 0..10u32 {
        sim.deposit_voicemail(Voicemail { caller_number: format!("+49 30 {n:06}"), ..Voicemail::default() });
        std::thread::sleep(Duration::from_millis(10));
    }
    let deposited = burst.elapsed();
    let mut lamps = Vec::new();
    while let Ok(lamp) = heard.recv_timeout(Duration::from_secs(3)) {
        lamps.push(lamp);
    }
    println!(
        "a burst of 10 deposits in {} ms: {} NOTIFY(s), the last {:.0} ms after the first deposit saying {:?}",
        deposited.as_millis(),
        lamps.len(),
        lamps.last().map(|l| (l.at - burst).as_secs_f64() * 1e3).unwrap_or(f64::NAN),
        lamps.last().map(|l| l.voice_message.clone())
    );
    let (rss2, _) = proc_stat(pid);
    println!("RSS after 110 more voicemails (10,110 items): {rss2} KiB");
    let _ = std::process::Command::new("sh").args(["-c", &format!("kill -TERM {pid}")]).status();
    let _ = child.wait();
}
