//! Microsoft 365 end to end: `lamplighter-agent login --device-code`
//! against the simulator's Entra-like sign-in service (curl playing the
//! user's browser step), the grant in a real Secret Service (GNOME Keyring
//! on a private bus), `check` with the token's account, scopes and life,
//! then `run --json` over the simulator's Graph face: a Cloud Voicemail
//! lights the phone's lamp, read elsewhere turns it off; `logout` removes
//! the grant. No token is left in any file.

use lamplighter_ews_sim::{EntraConfig, SimConfig, Simulator, Voicemail};
use lamplighter_testkit::{Parts, Session};
use std::io::{BufRead as _, Read as _};
use std::time::Duration;

mod common;

fn write_config(dir: &std::path::Path, sim: &Simulator, phone: std::net::SocketAddr) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "schema_version = 1\n[mailbox]\nemail = \"mara@contoso.onmicrosoft.com\"\nbackend = \"graph\"\nauth = \"oauth2\"\n\
             graph_url = \"{}\"\nauthority = \"{}\"\nclient_id = \"{}\"\n\n\
             [[phone]]\nuri = \"sip:613@{phone}\"\ntransport = \"udp\"\nmode = \"unsolicited\"\n\n\
             [user]\nsip_uri = \"sip:mara@contoso.onmicrosoft.com\"\n",
            sim.graph_url(),
            sim.authority("organizations"),
            EntraConfig::default().client_id
        ),
    )
    .expect("config");
    path
}

fn agent(session: &Session, config: &std::path::Path) -> std::process::Command {
    let mut c = session.command(env!("CARGO_BIN_EXE_lamplighter-agent"));
    c.args(["--config", config.to_str().expect("path")]);
    c
}

/// The simulator with a device sign-in that may be polled every second.
fn sim_polled_every_second(rt: &tokio::runtime::Runtime) -> Simulator {
    rt.block_on(Simulator::start(SimConfig {
        entra: EntraConfig { device_interval: Duration::from_secs(1), ..EntraConfig::default() },
        ..SimConfig::default()
    }))
    .expect("sim")
}

/// `lamplighter-agent run --json`, its lines piped.
fn run_json(session: &Session, config: &std::path::Path) -> std::process::Child {
    agent(session, config)
        .args(["run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent run")
}

#[test]
fn login_then_a_cloud_voicemail_lights_the_lamp_and_reading_it_elsewhere_turns_it_off() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = sim_polled_every_second(&rt);
    let phone = lamplighter_testkit::phone::DemoPhone::start("200 OK").expect("phone");
    let session = Session::start(Parts { keyring: true, ..Default::default() });
    let config = write_config(session.home(), &sim, phone.addr);

    // not signed in: check says what to do
    let out = agent(&session, &config).arg("check").output().expect("agent");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("lamplighter-agent login"), "{text}");

    // login: the agent shows a code, the user enters it in a browser (curl), the agent is signed in
    let rest = login_by_device_code(&session, &config);
    assert!(rest.contains("signed in to Microsoft 365 as mara@contoso.onmicrosoft.com"), "{rest}");

    // check: the token's account, scopes and life, then the mailbox over Graph
    let out = agent(&session, &config).arg("check").output().expect("agent");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("✓ signed in to Microsoft 365 as mara@contoso.onmicrosoft.com"), "{text}");
    assert!(text.contains("Mail.ReadWrite") && text.contains("valid for"), "{text}");
    assert!(text.contains("✓ Inbox readable"), "{text}");

    // run: a Cloud Voicemail lights the lamp; read elsewhere, it goes off
    let mut run = run_json(&session, &config);
    let mut lines = common::JsonLines::read(&mut run);
    let lamp = |new: u64, old: u64| {
        move |v: &serde_json::Value| {
            v["event"] == "mwi"
                && v["result"]["outcome"] == "delivered"
                && v["counts"]["new"] == new
                && v["counts"]["old"] == old
        }
    };
    lines.wait("the start-up lamp (off)", lamp(0, 0));
    let id = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        caller_name: Some("Jörg Müller".into()),
        duration_secs: 27,
        audio: Some(("audio.mp3".into(), "audio/mpeg".into(), vec![0xff; 2048])),
        transcription: Some("Bitte ruf mich zurück.".into()),
        ..Voicemail::default()
    });
    lines.wait("the voicemail announced", |v| v["event"] == "notify" && v["kind"] == "voicemail");
    lines.wait("the lamp on", lamp(1, 0));
    sim.set_read(&id, true);
    lines.wait("the lamp off", lamp(0, 1));
    let _ = std::process::Command::new("kill").args(["-TERM", &run.id().to_string()]).status();
    assert!(run.wait().expect("run ends").success());

    // logout: the grant leaves the keyring, and the next run asks for a sign-in
    let out = agent(&session, &config).arg("logout").output().expect("agent");
    assert!(out.status.success());
    let out = agent(&session, &config).arg("check").output().expect("agent");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not signed in"), "{}", String::from_utf8_lossy(&out.stdout));

    // no token in any file of the session (settings, state, logs)
    for entry in walk(session.home()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("refresh_token") && !text.contains("access_token"), "a token in {}", entry.display());
    }
    drop(phone);
}

/// `lamplighter-agent login` (no flag) opens the browser: `$BROWSER` here is
/// a script in which curl plays the user, following the sign-in page's
/// redirect back to the agent's loopback port; the grant lands in the
/// keyring and `check` is signed in.
#[test]
fn login_opens_the_browser_and_the_loopback_redirect_signs_the_agent_in() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    let session = Session::start(Parts { keyring: true, ..Default::default() });
    let config = write_config(session.home(), &sim, "127.0.0.1:9".parse().expect("addr"));
    let page = session.home().join("browser-page.html");
    let browser = session.home().join("browser.sh");
    std::fs::write(&browser, format!("#!/bin/sh\nexec curl -sL -o '{}' \"$1\"\n", page.display())).expect("script");
    std::fs::set_permissions(&browser, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");

    let out = agent(&session, &config).arg("login").env("BROWSER", &browser).output().expect("agent login");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("/oauth2/v2.0/authorize?"), "the address is shown too: {text}");
    assert!(text.contains("signed in to Microsoft 365 as mara@contoso.onmicrosoft.com"), "{text}");
    let shown = std::fs::read_to_string(&page).expect("the browser showed a page");
    assert!(shown.contains("Signed in to Lamplighter"), "{shown}");

    let out = agent(&session, &config).arg("check").output().expect("agent");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("✓ signed in to Microsoft 365 as mara@contoso.onmicrosoft.com"), "{text}");

    // a declined consent ends the login with the reason, and nothing is kept
    let declined = rt
        .block_on(Simulator::start(SimConfig {
            entra: EntraConfig { decline_browser: true, ..EntraConfig::default() },
            ..SimConfig::default()
        }))
        .expect("sim");
    let other = session.home().join("declined");
    std::fs::create_dir_all(&other).expect("dir");
    let config = write_config(&other, &declined, "127.0.0.1:9".parse().expect("addr"));
    let out = agent(&session, &config).arg("logout").output().expect("agent");
    assert!(out.status.success());
    let out = agent(&session, &config).arg("login").env("BROWSER", &browser).output().expect("agent login");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("AADSTS65004"), "{err}");
    let out = agent(&session, &config).arg("check").output().expect("agent");
    assert!(String::from_utf8_lossy(&out.stdout).contains("not signed in"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            // the keyring's own files hold the grant, encrypted: that is where it belongs
            if !p.ends_with("keyrings") {
                out.extend(walk(&p));
            }
        } else {
            out.push(p);
        }
    }
    out
}

/// The demo on the simulator's Graph face (`demo --backend graph`): the
/// same story, read by delta polling, the lamp following it. Waited for as
/// events, not for a number of seconds.
#[test]
fn the_demo_runs_over_microsoft_graph_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut demo = std::process::Command::new(env!("CARGO_BIN_EXE_lamplighter-agent"))
        .args(["demo", "--json", "--every", "2", "--backend", "graph"])
        .env("HOME", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent demo");
    let mut lines = common::JsonLines::read(&mut demo);
    let lamp = |rfc: &'static str| {
        move |v: &serde_json::Value| {
            v["event"] == "mwi"
                && v["result"]["outcome"] == "delivered"
                && format!(
                    "{}/{} ({}/{})",
                    v["counts"]["new"], v["counts"]["old"], v["counts"]["urgent_new"], v["counts"]["urgent_old"]
                ) == rfc
        }
    };
    lines.wait("the start-up lamp", lamp("3/2 (1/0)"));
    lines.wait("a new voicemail announced", |v| v["event"] == "notify" && v["kind"] == "voicemail");
    lines.wait("the lamp for it", lamp("4/2 (1/0)"));
    lines.wait("the voicemail marked heard", lamp("3/3 (1/0)"));
    let _ = std::process::Command::new("kill").args(["-TERM", &demo.id().to_string()]).status();
    assert!(demo.wait().expect("demo ends").success());
}

/// Signs the agent in by device code, curl entering the code as the user
/// would; what the agent printed after the instructions.
fn login_by_device_code(session: &Session, config: &std::path::Path) -> String {
    let mut login = agent(session, config)
        .args(["login", "--device-code"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent login");
    let mut stdout = std::io::BufReader::new(login.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the instructions");
    let uri = line.split_whitespace().find(|w| w.starts_with("http")).expect("a page to open").to_string();
    let code =
        line.split("enter the code ").nth(1).and_then(|r| r.split_whitespace().next()).expect("a code").to_string();
    let page = std::process::Command::new("curl")
        .args(["-s", "--data", &format!("user_code={code}"), &uri])
        .output()
        .expect("curl");
    assert!(String::from_utf8_lossy(&page.stdout).contains("You have signed in"));
    let status = login.wait().expect("login ends");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).expect("rest");
    assert!(status.success(), "{line}{rest}");
    rest
}

/// sipp as the phone over the Graph backend (it checks our NOTIFY's body
/// itself, one sipp per expected NOTIFY on the same port), and a restart:
/// the voicemail deposited while the agent was down is counted, the one it
/// knew is not announced again.
#[test]
fn over_graph_a_sipp_phone_follows_the_mailbox_across_a_restart() {
    use lamplighter_testkit::sipp::{Sipp, free_port};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = sim_polled_every_second(&rt);
    let session = Session::start(Parts { keyring: true, ..Default::default() });
    let port = free_port();
    let config = write_config(session.home(), &sim, std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    login_by_device_code(&session, &config);
    let expect = |summary: &str, waiting: &str| {
        Sipp::start_on(port, "notify-uas-ok.xml", &[("summary", summary), ("waiting", waiting)])
    };
    let run = || run_json(&session, &config);
    let cloud = |n: u32| Voicemail {
        caller_number: format!("+49 5251 30461{n}"),
        caller_name: Some("Jörg Müller".into()),
        duration_secs: 27,
        transcription: Some("Bitte ruf mich zurück.".into()),
        ..Voicemail::default()
    };

    let sipp = expect(r"Voice-Message: 0/0 \(0/0\)", "no");
    let mut first = run();
    let mut lines = common::JsonLines::read(&mut first);
    let (ok, log) = sipp.finish();
    assert!(ok, "start-up NOTIFY:\n{log}");

    let sipp = expect(r"Voice-Message: 1/0 \(0/0\)", "yes");
    let id = sim.deposit_voicemail(cloud(1));
    let note = lines.wait("the voicemail announced", |v| v["event"] == "notify" && v["kind"] == "voicemail");
    assert_eq!(note["duration_secs"], 27, "{note}");
    assert!(note["from"].as_str().is_some_and(|f| f.contains("Jörg Müller")), "{note}");
    let (ok, log) = sipp.finish();
    assert!(ok, "the lamp on:\n{log}");

    let sipp = expect(r"Voice-Message: 0/1 \(0/0\)", "no");
    sim.set_read(&id, true);
    let (ok, log) = sipp.finish();
    assert!(ok, "read elsewhere, the lamp off:\n{log}");
    let _ = std::process::Command::new("kill").args(["-TERM", &first.id().to_string()]).status();
    assert!(first.wait().expect("run ends").success());

    // while the agent is down a second voicemail comes; the restart counts it and announces nothing old
    sim.deposit_voicemail(cloud(2));
    let sipp = expect(r"Voice-Message: 1/1 \(0/0\)", "yes");
    let mut second = run();
    let mut lines = common::JsonLines::read(&mut second);
    let (ok, log) = sipp.finish();
    assert!(ok, "the restart's lamp:\n{log}");
    lines.wait("live again", |v| v["event"] == "state" && v["connection"]["state"] == "live");
    // a third voicemail is announced; nothing before it was
    sim.deposit_voicemail(cloud(3));
    lines.wait("the third announced", |v| {
        v["event"] == "notify" && v["from"].as_str().is_some_and(|f| f.contains("304613"))
    });
    let announced: Vec<&serde_json::Value> = lines.seen.iter().filter(|v| v["event"] == "notify").collect();
    assert_eq!(announced.len(), 1, "only the new one after the restart: {announced:?}");
    let _ = std::process::Command::new("kill").args(["-TERM", &second.id().to_string()]).status();
    assert!(second.wait().expect("run ends").success());
}
