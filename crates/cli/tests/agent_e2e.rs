//! `lamplighter-agent run --json` end to end over real sockets: the Exchange
//! simulator (in this test process) as the mailbox, a UDP SIP phone (also
//! here) that answers NOTIFYs with 200 OK and records each Voice-Message
//! line, and the agent as a separate process reading a real settings file.

use lamplighter_ews_sim::{MissedCall, SimConfig, Simulator, Voicemail};
use std::io::BufRead as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn voicemail(n: u32, urgent: bool, read: bool) -> Voicemail {
    Voicemail {
        caller_number: format!("+49 5251 30{n:04}"),
        duration_secs: 10 + n,
        urgent,
        is_read: read,
        audio: Some(("vm.wav".into(), "audio/wav".into(), vec![0xff; 800])),
        ..Voicemail::default()
    }
}

/// A phone on UDP answering 200; the Voice-Message lines it got so far, in order.
fn phone() -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let phone = lamplighter_testkit::phone::DemoPhone::start("200 OK").expect("phone");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for lamp in phone.lamps.iter() {
            s.lock().expect("lock").push(lamp.voice_message);
        }
    });
    (phone.addr, seen)
}

/// What the phone heard, once it has heard `n` lamps: the phone's thread
/// records a NOTIFY after answering it, so the sender may be done before.
fn heard_at_least(heard: &Mutex<Vec<String>>, n: usize) -> Vec<String> {
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(5));
    loop {
        let now = heard.lock().expect("lock").clone();
        if now.len() >= n || Instant::now() > end {
            return now;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Agent {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl Agent {
    fn start(config: &std::path::Path, home: &std::path::Path) -> Agent {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lamplighter-agent"))
            .args(["--config", config.to_str().expect("path"), "run", "--json"])
            .env("HOME", home)
            .env("XDG_STATE_HOME", home.join("state"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("LL_TEST_PASSWORD", "Sommer2026!")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("agent");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let v: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Agent { child, lines, seen: Vec::new() }
    }

    /// Waits until an event satisfies `want`.
    fn wait(&mut self, what: &str, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        // a guard against a hang, not a speed limit
        let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(180));
        if let Some(v) = self.seen.iter().find(|v| want(v)) {
            return v.clone();
        }
        while Instant::now() < end {
            if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(v.clone());
                if want(&v) {
                    return v;
                }
            }
        }
        panic!("no event: {what}; saw {:#?}", self.seen)
    }

    fn settle(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(v);
            }
        }
    }

    fn notifies(&self) -> Vec<&serde_json::Value> {
        self.seen.iter().filter(|e| e["event"] == "notify").collect()
    }

    fn stop(mut self) -> Vec<serde_json::Value> {
        let _ = std::process::Command::new("sh").args(["-c", &format!("kill -TERM {}", self.child.id())]).status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "clean stop: {status:?}");
        self.settle(Duration::from_millis(200));
        self.seen
    }
}

/// A JSON counts object (`{"new":3,"old":2,…}`) in RFC 3842's form, `3/2 (1/0)`.
fn rfc(v: &serde_json::Value) -> Option<String> {
    v.is_object().then(|| format!("{}/{} ({}/{})", v["new"], v["old"], v["urgent_new"], v["urgent_old"]))
}

fn lamp(v: &serde_json::Value, counts: &str) -> bool {
    v["event"] == "mwi" && v["result"]["outcome"] == "delivered" && rfc(&v["counts"]).as_deref() == Some(counts)
}

#[test]
fn agent_simulator_and_phone_end_to_end() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt
        .block_on(Simulator::start(SimConfig { heartbeat: Duration::from_secs(2), ..SimConfig::default() }))
        .expect("sim");
    let _guard = rt.enter();
    sim.deposit_voicemail(voicemail(1, true, false));
    sim.deposit_voicemail(voicemail(2, false, false));
    let third = sim.deposit_voicemail(voicemail(3, false, false));
    sim.deposit_voicemail(voicemail(4, false, true));
    sim.deposit_voicemail(voicemail(5, false, true));
    let (phone, heard) = phone();
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"schema_version = 1
[mailbox]
email = "mara@example.test"
ews_url = "{}"
username = 'EXAMPLE\mara'
auth = "ntlm"
password_env = "LL_TEST_PASSWORD"

[[phone]]
uri = "sip:613@{phone}"
transport = "udp"
mode = "unsolicited"
refresh_hours = 12

[user]
sip_uri = "sip:mara@example.test"
numbers = ["+49 5251 304600"]
"#,
            sim.ews_url()
        ),
    )
    .expect("config");

    let mut agent = Agent::start(&config, dir.path());
    // start-up: 3 unread (one urgent) and 2 read
    agent.wait("lamp 3/2 (1/0)", |v| lamp(v, "3/2 (1/0)"));
    assert!(agent.notifies().is_empty(), "nothing at start-up is announced");
    // a new voicemail: a notify event and NOTIFY 4/2
    sim.deposit_voicemail(voicemail(6, false, false));
    agent.wait("voicemail notify", |v| v["event"] == "notify" && v["kind"] == "voicemail");
    agent.wait("lamp 4/2", |v| lamp(v, "4/2 (1/0)"));
    // read elsewhere: 3/3
    sim.set_read(&third, true);
    agent.wait("lamp 3/3", |v| lamp(v, "3/3 (1/0)"));
    // the stream drops while two voicemails arrive: both announced, once
    sim.drop_streams();
    sim.deposit_voicemail(voicemail(7, false, false));
    sim.deposit_voicemail(voicemail(8, false, false));
    agent.wait("lamp 5/3", |v| lamp(v, "5/3 (1/0)"));
    // a missed call from three devices: one notify
    for device in ["desk", "softphone", "mobile"] {
        sim.deposit_missed_call(MissedCall {
            caller_number: "+49 30 1234567".into(),
            call_id: Some("e2e-call@pbx".into()),
            headers: vec![("User-Agent".into(), device.into())],
            ..MissedCall::default()
        });
    }
    agent.wait("missed-call state", |v| v["event"] == "state" && v["missed_calls"] == 1);
    agent.settle(Duration::from_secs(2));
    // `status` asks the running agent over its socket: no sign-in, no sync of its own
    let served = sim.served().len();
    let (code, out) = agent_cmd(&config, dir.path(), &["status", "--format", "json"], "Sommer2026!");
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!((v["voicemail"]["new"].as_u64(), v["missed_calls"].as_u64()), (Some(5), Some(1)), "{v}");
    assert_eq!(sim.served().len(), served, "answered by the running agent");
    let seen = agent.stop();
    let notifies: Vec<&serde_json::Value> = seen.iter().filter(|e| e["event"] == "notify").collect();
    let voicemail_items: Vec<&str> =
        notifies.iter().filter(|e| e["kind"] == "voicemail").filter_map(|e| e["item_id"].as_str()).collect();
    assert_eq!(voicemail_items.len(), 3, "vm 6, 7 and 8, each once: {notifies:#?}");
    let mut unique = voicemail_items.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3);
    assert_eq!(notifies.iter().filter(|e| e["kind"] == "missed_call").count(), 1, "three devices, one call");
    // every state line is the truth at its time: the last one matches the simulator
    let last = seen.iter().rev().find(|e| e["event"] == "state").expect("state");
    let items = sim.items();
    let unread_vm = items.iter().filter(|(_, c, r)| c.contains("Voicemail") && !r).count() as u64;
    assert_eq!(last["voicemail"]["new"].as_u64(), Some(unread_vm), "{last}");
    // the phone heard exactly what the agent reported as delivered
    let delivered: Vec<String> = seen
        .iter()
        .filter(|e| e["event"] == "mwi" && e["result"]["outcome"] == "delivered")
        .filter_map(|e| rfc(&e["counts"]))
        .collect();
    assert_eq!(heard_at_least(&heard, delivered.len()), delivered);
    assert_eq!(sim.subscriptions(), 0, "SIGTERM unsubscribed");

    // restarted: nothing is re-announced, the lamp is set again
    let mut again = Agent::start(&config, dir.path());
    again.wait("lamp after restart", |v| lamp(v, "5/3 (1/0)"));
    again.settle(Duration::from_secs(2));
    let seen = again.stop();
    assert!(seen.iter().all(|e| e["event"] != "notify"), "a restart re-announces nothing: {seen:#?}");
    assert!(sim.served().iter().all(|s| s.schema_valid), "every request the agent sent is schema-valid");
}

fn write_config(path: &std::path::Path, ews_url: &str, phone: std::net::SocketAddr) {
    std::fs::write(
        path,
        format!(
            "schema_version = 1\n[mailbox]\nemail = \"mara@example.test\"\news_url = \"{ews_url}\"\nusername = 'EXAMPLE\\mara'\nauth = \"ntlm\"\npassword_env = \"LL_TEST_PASSWORD\"\n\n[[phone]]\nuri = \"sip:613@{phone}\"\ntransport = \"udp\"\nmode = \"unsolicited\"\nrefresh_hours = 12\n\n[user]\nsip_uri = \"sip:mara@example.test\"\nnumbers = [\"+49 5251 304600\"]\n"
        ),
    )
    .expect("config");
}

fn agent_cmd(config: &std::path::Path, home: &std::path::Path, args: &[&str], password: &str) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lamplighter-agent"))
        .args(["--config", config.to_str().expect("path")])
        .args(args)
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("LL_TEST_PASSWORD", password)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .output()
        .expect("agent");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn check_and_status_against_the_simulator() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    // the check judges streaming by the first frame: a keep-alive every 2 s
    let sim = rt
        .block_on(Simulator::start(SimConfig { heartbeat: Duration::from_secs(2), ..SimConfig::default() }))
        .expect("sim");
    sim.deposit_voicemail(voicemail(1, true, false));
    sim.deposit_voicemail(voicemail(2, false, false));
    sim.deposit_voicemail(voicemail(3, false, false));
    sim.deposit_voicemail(voicemail(4, false, true));
    sim.deposit_missed_call(MissedCall { caller_number: "+49 30 1234567".into(), ..MissedCall::default() });
    let (phone, heard) = phone();
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    write_config(&config, &sim.ews_url(), phone);

    let (code, out) = agent_cmd(&config, dir.path(), &["check"], "Sommer2026!");
    assert_eq!(code, 0, "{out}");
    for want in [
        "✓ settings",
        "✓ EWS URL from the settings",
        "✓ signed in with NTLM; Voice Mail folder readable: 4 voicemails (3 unheard)",
        "✓ Inbox readable (5 items)",
        "✓ streaming notifications supported",
        "✓ phone sip:613@",
        "all checks passed",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(heard_at_least(&heard, 1), ["3/1 (1/0)"], "the check set the lamp to the truth");
    assert_eq!(sim.subscriptions(), 0, "the check's subscription was ended");

    // a stream whose first frame is an error is not "supported"
    sim.fail_streams(1);
    let (code, out) = agent_cmd(&config, dir.path(), &["check"], "Sommer2026!");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("✗ streaming notifications: GetStreamingEvents failed: InvalidSubscription"), "{out}");
    assert!(!out.contains("✓ streaming notifications supported"), "{out}");

    let (code, out) = agent_cmd(&config, dir.path(), &["status", "--format", "waybar"], "Sommer2026!");
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("waybar JSON");
    assert_eq!((v["text"].as_str(), v["class"].as_str()), (Some("4"), Some("urgent")), "{v}");
    assert!(v["tooltip"].as_str().is_some_and(|t| t.contains("3 new voicemails (1 urgent), 1 missed call")), "{v}");
    let (_, out) = agent_cmd(&config, dir.path(), &["status", "--format", "json"], "Sommer2026!");
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!((v["voicemail"]["new"].as_u64(), v["missed_calls"].as_u64()), (Some(3), Some(1)));

    // a wrong password: the check says so, with a hint, after one attempt
    let failures = sim.auth_failures();
    let (code, out) = agent_cmd(&config, dir.path(), &["check"], "Winter2026!");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("✗ sign-in / Voice Mail folder: sign-in to") && out.contains("hint: check [mailbox] username"),
        "{out}"
    );
    assert_eq!(sim.auth_failures() - failures, 1, "one attempt, no retry storm");
    let (code, out) = agent_cmd(&config, dir.path(), &["status"], "Winter2026!");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("sign-in refused"), "{out}");
    assert!(sim.served().iter().all(|s| s.schema_valid));
}

/// The same story with sipp as the phone (Debian's `sip-tester`, which checks
/// our NOTIFY's headers and body itself): one sipp per expected NOTIFY, on
/// the same port, because sipp answers one call per socket and run.
#[test]
fn a_sipp_phone_sees_the_lamp_follow_the_mailbox() {
    use lamplighter_testkit::sipp::{Sipp, free_port};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    sim.deposit_voicemail(voicemail(1, true, false));
    sim.deposit_voicemail(voicemail(2, false, false));
    let third = sim.deposit_voicemail(voicemail(3, false, false));
    sim.deposit_voicemail(voicemail(4, false, true));
    sim.deposit_voicemail(voicemail(5, false, true));
    let port = free_port();
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    write_config(&config, &sim.ews_url(), std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let expect = |summary: &str| Sipp::start_on(port, "notify-uas-ok.xml", &[("summary", summary), ("waiting", "yes")]);

    let sipp = expect(r"Voice-Message: 3/2 \(1/0\)");
    let mut agent = Agent::start(&config, dir.path());
    let (ok, log) = sipp.finish();
    assert!(ok, "start-up NOTIFY:\n{log}");

    let sipp = expect(r"Voice-Message: 4/2 \(1/0\)");
    sim.deposit_voicemail(voicemail(6, false, false));
    let (ok, log) = sipp.finish();
    assert!(ok, "new voicemail NOTIFY:\n{log}");

    let sipp = expect(r"Voice-Message: 3/3 \(1/0\)");
    sim.set_read(&third, true);
    let (ok, log) = sipp.finish();
    assert!(ok, "read elsewhere NOTIFY:\n{log}");

    agent.wait("the last lamp delivered", |v| lamp(v, "3/3 (1/0)"));
    let seen = agent.stop();
    assert_eq!(seen.iter().filter(|e| e["event"] == "notify").count(), 1, "only the new voicemail was announced");
}

/// SIGTERM while the server sits on a request (SyncFolderItems taken, never
/// answered): the agent exits cleanly, at once, after one Unsubscribe and
/// nothing else. It cannot be waiting for the hung request: that never ends.
#[test]
fn sigterm_during_a_hung_request_exits_at_once_after_one_unsubscribe() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    let _guard = rt.enter();
    sim.hang("SyncFolderItems");
    let (phone, _heard) = phone();
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("config.toml");
    write_config(&config, &sim.ews_url(), phone);
    let mut agent = Agent::start(&config, dir.path());
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(30));
    while !sim.served().iter().any(|s| s.op == "SyncFolderItems") {
        assert!(Instant::now() < end, "no SyncFolderItems: {:?}", sim.served());
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = sim.served().len();
    let signalled = Instant::now();
    let _ = std::process::Command::new("sh").args(["-c", &format!("kill -TERM {}", agent.child.id())]).status();
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(15));
    let status = loop {
        if let Some(s) = agent.child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < end, "the agent is still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!("the agent exited {:?} after SIGTERM, with a request hung", signalled.elapsed());
    assert!(status.success(), "{status:?}");
    // NTLM signs the Unsubscribe's new connection in first: that leg is a 401 on the path
    let served = sim.served()[before..].to_vec();
    let (legs, ops): (Vec<_>, Vec<_>) = served.iter().partition(|s| s.op.starts_with('/'));
    assert!(legs.iter().all(|s| s.status == 401), "only sign-in legs besides: {served:?}");
    let ops: Vec<&str> = ops.iter().map(|s| s.op.as_str()).collect();
    assert_eq!(ops, vec!["Unsubscribe"], "one Unsubscribe after the signal, nothing else");
    assert_eq!(sim.subscriptions(), 0);
}
