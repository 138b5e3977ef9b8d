//! The agent binary as a user runs it: a private session with a real
//! GNOME Keyring, real files, real exit codes.

use lamplighter_testkit::{Parts, Session};

const AGENT: &str = env!("CARGO_BIN_EXE_lamplighter-agent");

/// A JSON counts object (`{"new":3,"old":2,…}`) in RFC 3842's form, `3/2 (1/0)`.
fn rfc(v: &serde_json::Value) -> Option<String> {
    v.is_object().then(|| format!("{}/{} ({}/{})", v["new"], v["old"], v["urgent_new"], v["urgent_old"]))
}

#[test]
fn settings_reports_a_corrupt_file_and_its_backup_without_touching_it() {
    let session = Session::start(Parts { keyring: true, ..Default::default() });
    let file = session.xdg("XDG_CONFIG_HOME").join("lamplighter").join("config.toml");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    std::fs::write(&file, "[mailbox]\nemail = \"anna@example.com\"\nauth = \"kerberos\"\n").expect("write");
    let out = session.command(AGENT).arg("settings").output().expect("run agent");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("problem (config_corrupt)") && text.contains("mailbox.auth") && text.contains(".corrupt-"),
        "{text}"
    );
    assert!(text.contains("keyring: OS keyring"), "{text}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "[mailbox]\nemail = \"anna@example.com\"\nauth = \"kerberos\"\n"
    );
}

#[test]
fn settings_without_a_keyring_says_so_and_still_works() {
    let session = Session::start(Parts::default());
    let out = session.command(AGENT).args(["settings", "--json"]).output().expect("run agent");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(view["keyring_persistent"], false);
    assert_eq!(view["problems"][0]["code"], "keyring_unavailable");
    assert!(view["form"]["mailbox"].is_null());
}

/// Without a mailbox, `run` runs the demo mailbox, says so, and stops cleanly on SIGTERM.
#[test]
fn run_without_a_mailbox_runs_the_demo_and_stops_on_sigterm() {
    use std::io::BufRead as _;
    let session = Session::start(Parts::default());
    let mut child = session
        .command(AGENT)
        .args(["run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run agent");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    // the first lamp event shows the demo mailbox's voicemail
    let lamp = loop {
        let line = lines.next().expect("a line before the end").expect("read");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        if v["event"] == "mwi" {
            break v;
        }
    };
    assert_eq!(rfc(&lamp["counts"]).as_deref(), Some("3/2 (1/0)"), "{lamp}");
    let term =
        std::process::Command::new("sh").args(["-c", &format!("kill -TERM {}", child.id())]).status().expect("kill");
    assert!(term.success());
    let status = child.wait().expect("wait");
    assert!(status.success(), "SIGTERM is a clean stop: {status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("stderr");
    assert!(err.contains("running the demo mailbox"), "{err}");
}

/// `lamplighter-agent mwi send` as an admin runs it: against a sipp phone on
/// TCP that challenges with digest; the password comes from the environment.
#[test]
fn mwi_send_over_tcp_with_digest_prints_the_phone_s_answer() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        l.local_addr().expect("addr").port()
    };
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sipp/notify-uas-digest.xml");
    let mut sipp = std::process::Command::new("sipp")
        .arg("-sf")
        .arg(&scenario)
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "t1",
            "-m",
            "1",
            "-nostdin",
            "-set",
            "password",
            "pw-from-env",
        ])
        .args(["-trace_msg", "-message_file"])
        .arg(dir.path().join("messages.log"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("sipp not found: run ./dev.sh setup");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < end, "sipp did not listen");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = std::process::Command::new(AGENT)
        .args(["mwi", "send", &format!("sip:613@127.0.0.1:{port}"), "--new", "2", "--old", "5", "--urgent-new", "1"])
        .args(["--transport", "tcp", "--user", "613", "--password-env", "PHONE_PW", "--bind", "127.0.0.1:0"])
        .env("PHONE_PW", "pw-from-env")
        .output()
        .expect("run agent");
    let _ = sipp.wait();
    let messages = std::fs::read_to_string(dir.path().join("messages.log")).unwrap_or_default();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}\n{messages}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.trim(), "200 OK (after digest authentication)");
    assert!(messages.contains("Voice-Message: 2/5 (1/0)") && messages.contains("SIP/2.0/TCP"), "{messages}");
    assert!(!messages.contains("pw-from-env"), "the password never goes on the wire");
}

#[test]
fn mwi_send_refuses_urgent_counts_beyond_the_totals_and_a_password_on_the_command_line() {
    let out = std::process::Command::new(AGENT)
        .args(["mwi", "send", "sip:613@127.0.0.1:9", "--new", "1", "--urgent-new", "2"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--urgent-new ≤ --new"));
    let out = std::process::Command::new(AGENT)
        .args(["mwi", "send", "sip:613@127.0.0.1:9", "--user", "613"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-env"));
}

/// `lamplighter-agent demo --json`: the engine against the in-process Exchange
/// simulator and demo phone, over loopback sockets. Every stdout line is one
/// JSON event, and the events tell the demo's story consistently.
#[test]
fn demo_json_events_tell_a_consistent_story() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lamplighter-agent"))
        .args(["demo", "--json", "--seconds", "15", "--every", "2"])
        .env("HOME", std::env::temp_dir())
        .output()
        .expect("agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line: {l:?}: {e}")))
        .collect();
    let of = |kind: &str| events.iter().filter(|e| e["event"] == kind).collect::<Vec<_>>();
    let lamps: Vec<String> =
        of("mwi").iter().filter(|e| e["result"]["outcome"] == "delivered").filter_map(|e| rfc(&e["counts"])).collect();
    let lamps: Vec<&str> = lamps.iter().map(String::as_str).collect();
    assert_eq!(lamps.first().copied(), Some("3/2 (1/0)"), "start-up: 3 unheard (1 urgent), 2 heard; {lamps:?}");
    assert!(lamps.contains(&"4/2 (1/0)"), "a new voicemail: {lamps:?}");
    assert!(lamps.contains(&"3/3 (1/0)"), "the voicemail marked heard: {lamps:?}");
    let notifies = of("notify");
    let voicemails = notifies.iter().filter(|e| e["kind"] == "voicemail").count();
    let missed = notifies.iter().filter(|e| e["kind"] == "missed_call").count();
    assert!(voicemails >= 1 && missed >= 1, "{notifies:?}");
    // each missed call came from three devices but was announced once, and counted once
    let last = of("state").last().copied().expect("a state line").clone();
    assert_eq!(last["missed_calls"].as_u64(), Some(missed as u64), "{last}");
    assert_eq!(last["secondary_calls"].as_u64(), Some(1), "the team call is kept apart: {last}");
    assert_eq!(last["connection"]["state"], "live", "{last}");
    // the last state's voicemail counts are what the phone was last told
    let v = &last["voicemail"];
    let claimed = format!("{}/{} ({}/{})", v["new"], v["old"], v["urgent_new"], v["urgent_old"]);
    assert_eq!(lamps.last().copied(), Some(claimed.as_str()));
    assert!(!stderr.contains("refused a request"), "{stderr}");
}
