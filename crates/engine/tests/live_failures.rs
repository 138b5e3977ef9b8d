//! The live engine reports every failure as something the UI can show:
//! an unreachable server, a refused sign-in, a phone that refuses the lamp.

use lamplighter_config::Paths;
use lamplighter_engine::{Engine, KeyringChoice, Options, SettingsUpdate, Snapshot};
use lamplighter_ews_sim::{SimConfig, Simulator, Voicemail};
use std::time::{Duration, Instant};

/// An engine with these settings and mailbox password, saved as the settings window does.
fn engine(dir: &std::path::Path, config: &str, password: &str) -> Engine {
    let paths = Paths::under(dir.join("config"), dir.join("state"), dir.join("cache"));
    let e = Engine::open(Options { paths, keyring: KeyringChoice::InMemory, preview_counts: None });
    let form: lamplighter_config::SettingsForm = toml::from_str(config).expect("settings");
    e.save_settings(SettingsUpdate { form, mailbox_password: Some(password.into()), phone_passwords: vec![None; 2] })
        .expect("saved");
    e
}

fn wait(e: &Engine, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let end = Instant::now() + Duration::from_secs(40);
    loop {
        let s = e.snapshot();
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < end, "{what}: {s:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn has(s: &Snapshot, code: &str) -> bool {
    s.problems.iter().any(|p| p.code == code)
}

#[test]
fn unreachable_server_refused_sign_in_and_refusing_phone_become_problems() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 1".into(), duration_secs: 5, ..Voicemail::default() });
    let dir = tempfile::tempdir().expect("tmp");
    let mailbox = |url: &str| {
        format!(
            "[mailbox]\nemail = \"mara@example.test\"\news_url = \"{url}\"\nusername = \"mara\"\nauth = \"basic\"\n"
        )
    };

    // nothing listens on the EWS URL
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    let e = engine(&dir.path().join("a"), &mailbox(&format!("http://{closed}/EWS/Exchange.asmx")), "Sommer2026!");
    let live = e.start_live().expect("live");
    let s = wait(&e, "unreachable", |s| {
        has(s, "mailbox_unreachable") || s.connection.as_deref().is_some_and(|c| c.starts_with("reconnecting"))
    });
    assert_eq!(s.counts.voicemails, 0);
    assert_eq!(s.health, lamplighter_badge::Health::Disconnected);
    drop(live);

    // the wrong password
    let e = engine(&dir.path().join("b"), &mailbox(&sim.ews_url()), "Winter2026!");
    let live = e.start_live().expect("live");
    let s = wait(&e, "sign-in refused", |s| has(s, "mailbox_sign_in"));
    assert_eq!(s.health, lamplighter_badge::Health::Disconnected);
    drop(live);

    // the right one, and a phone that says busy to every NOTIFY
    // a phone that says busy to every NOTIFY
    let busy = lamplighter_testkit::phone::UdpPhone::start("486 Busy Here");
    let phone = busy.addr;
    let config = mailbox(&sim.ews_url())
        + &format!(
            "\n[[phone]]\nuri = \"sip:613@{phone}\"\ntransport = \"udp\"\nmode = \"unsolicited\"\nrefresh_hours = 12\n"
        );
    let e = engine(&dir.path().join("c"), &config, "Sommer2026!");
    let live = e.start_live().expect("live");
    let s = wait(&e, "phone refused", |s| has(s, "phone_unreachable") && s.counts.voicemails == 1);
    assert_eq!(s.connection.as_deref(), Some("connected"));
    assert!(s.problems.iter().any(|p| p.message.contains("486")), "{s:?}");
    assert_eq!(s.health, lamplighter_badge::Health::PhoneUnreachable);
    drop(live);
}

/// "Retry now" after an outage: the mailbox's server comes back, and the
/// engine connects at once instead of waiting out its back-off (or, when the
/// first start failed, instead of waiting for new settings forever).
#[test]
fn retry_now_connects_as_soon_as_the_server_is_back() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let addr = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    let dir = tempfile::tempdir().expect("tmp");
    let config = format!(
        "[mailbox]\nemail = \"mara@example.test\"\news_url = \"http://{addr}/EWS/Exchange.asmx\"\nusername = \"mara\"\nauth = \"basic\"\n"
    );
    let e = engine(dir.path(), &config, "Sommer2026!");
    let live = e.start_live().expect("live");
    let s = wait(&e, "unreachable", |s| {
        has(s, "mailbox_unreachable") || s.connection.as_deref().is_some_and(|c| c.starts_with("reconnecting"))
    });
    // how long the engine would wait on its own: forever when parked, else its back-off
    let would_wait = s
        .connection
        .as_deref()
        .and_then(|c| c.strip_prefix("reconnecting in "))
        .and_then(|c| c.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .map(Duration::from_secs);
    let config = SimConfig { listen: addr, ..SimConfig::default() };
    let sim = rt.block_on(Simulator::start(config)).expect("sim on the same port");
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 1".into(), duration_secs: 5, ..Voicemail::default() });
    let asked = Instant::now();
    e.retry_now().expect("retry");
    wait(&e, "connected after Retry now", |s| s.connection.as_deref() == Some("connected") && s.counts.voicemails == 1);
    if let Some(back_off) = would_wait {
        assert!(asked.elapsed() < back_off, "connected only after the back-off ({back_off:?})");
    }
    assert!(!has(&e.snapshot(), "mailbox_unreachable"));
    drop(live);
}
