//! What the engine's integration tests share: an engine saved with settings
//! as the settings window saves them, and waiting for pushed snapshots.

use lamplighter_config::Paths;
use lamplighter_engine::{Engine, KeyringChoice, Options, SettingsUpdate, Snapshot};
use std::time::{Duration, Instant};

/// An engine with these settings (TOML) and mailbox password, saved as the settings window does.
pub(crate) fn engine(dir: &std::path::Path, config: &str, password: &str) -> Engine {
    let paths = Paths::under(dir.join("config"), dir.join("state"), dir.join("cache"));
    let e = Engine::open(Options { paths, keyring: KeyringChoice::InMemory, preview_counts: None });
    let form: lamplighter_config::SettingsForm = toml::from_str(config).expect("settings");
    e.save_settings(SettingsUpdate { form, mailbox_password: Some(password.into()), phone_passwords: vec![None; 2] })
        .expect("saved");
    e
}

/// `[mailbox]` settings for the simulator's user at `ews_url`, Basic sign-in.
pub(crate) fn mailbox(ews_url: &str) -> String {
    format!(
        "[mailbox]\nemail = \"mara@example.test\"\news_url = \"{ews_url}\"\nusername = \"mara\"\nauth = \"basic\"\n"
    )
}

/// Every snapshot the engine pushes from now on, in order: for a test that
/// must see a state that may pass quickly (an outage that heals), the
/// recording starts before the test causes it.
#[allow(dead_code, reason = "each test binary uses its own part of this module")]
pub(crate) struct Snapshots(std::sync::mpsc::Receiver<Snapshot>);

#[allow(dead_code, reason = "each test binary uses its own part of this module")]
impl Snapshots {
    /// Starts recording.
    pub(crate) fn record(e: &Engine) -> Snapshots {
        let (tx, rx) = std::sync::mpsc::channel();
        e.subscribe(move |s| {
            let _ = tx.send(s.clone());
        });
        Snapshots(rx)
    }

    /// Waits for a recorded snapshot for which `done` holds (the guard only
    /// ends a hung test).
    pub(crate) fn wait(&self, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let guard = Instant::now() + Duration::from_secs(180);
        loop {
            match self.0.recv_timeout(guard.saturating_duration_since(Instant::now())) {
                Ok(s) if done(&s) => return s,
                Ok(_) => {}
                Err(_) => panic!("{what}: never came"),
            }
        }
    }
}

/// Waits for the engine to push a snapshot for which `done` holds, or for
/// the current one to hold (the guard only ends a hung test; it is not a
/// speed limit). For states that last; a passing one needs [`Snapshots`].
pub(crate) fn wait(e: &Engine, what: &str, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let (tx, rx) = std::sync::mpsc::channel();
    e.subscribe(move |s| {
        let _ = tx.send(s.clone());
    });
    let guard = Instant::now() + Duration::from_secs(180);
    let mut s = e.snapshot();
    while !done(&s) {
        match rx.recv_timeout(guard.saturating_duration_since(Instant::now())) {
            Ok(next) => s = next,
            Err(_) => panic!("{what}: never came; last {s:?}"),
        }
    }
    s
}
