//! The desktop app end to end: the built `lamplighter` (tray) and
//! `lamplighter-window` binaries under Xvfb on a private D-Bus session with a real GNOME Keyring, a real
//! StatusNotifierWatcher as tray host, and the window driven over WebDriver
//! (tauri-driver + WebKitWebDriver).

// The guard from `desktop()` is held for a whole test, across its awaits, on
// purpose: it lets one desktop (display, bus, tray host) exist at a time.
#![allow(clippy::await_holding_lock)]

use fantoccini::Locator;
use lamplighter_e2e::*;
use lamplighter_testkit::{Parts, Session};
use std::time::{Duration, Instant};

mod microsoft;
mod tray_experience;

const MAILBOX_PASSWORD: &str = "Mailbox-Pa55word-7f3a";
const PHONE_PASSWORD: &str = "Phone-Digest-Secret-91c2";

/// One desktop at a time: each starts Xvfb, D-Bus, a keyring and WebKit,
/// and two cores are better spent on one than shared by four.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn desktop() -> (std::sync::MutexGuard<'static, ()>, Session) {
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    (guard, Session::start(Parts { display: true, keyring: true }))
}

fn secret_tool_lookup(session: &Session, user: &str) -> String {
    let out = session
        .command("secret-tool")
        .args(["lookup", "service", "lamplighter", "username", user])
        .output()
        .expect("secret-tool not found: run ./dev.sh setup");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_config(session: &Session, text: &str) -> std::path::PathBuf {
    let file = session.xdg("XDG_CONFIG_HOME").join("lamplighter").join("config.toml");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    std::fs::write(&file, text).expect("write config");
    file
}

fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let end = Instant::now() + lamplighter_testkit::guard(timeout);
    while Instant::now() < end {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Whether the app's window (titled "Lamplighter") exists on the display.
fn window_open(session: &Session) -> bool {
    x11::window_exists(session.var("DISPLAY").expect("display"), "Lamplighter")
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_are_saved_survive_a_restart_and_the_password_lives_only_in_the_keyring() {
    let (_one, mut session) = desktop();
    let host = TrayHost::start(&mut session);
    let driver = Driver::start(&session);
    let config_file = session.xdg("XDG_CONFIG_HOME").join("lamplighter").join("config.toml");

    // First start: no mailbox yet, so the settings window opens by itself.
    let c = driver.launch(&[]).await;
    text_becomes(&c, "#tab-settings[aria-current=page]", "Settings").await;
    host.item(Duration::from_secs(20));

    // A wrong value is refused beside its field, and nothing is written.
    fill(&c, "#mailbox-email", "anna.example.com").await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click");
    text_becomes(&c, "[data-error-for='mailbox.email']", "This is not an e-mail address (expected name@domain).").await;
    text_becomes(&c, "#status", "Please correct the marked fields. Nothing was saved.").await;
    assert!(!config_file.exists(), "an invalid form must not write the settings file");

    fill(&c, "#mailbox-email", "anna@example.com").await;
    fill(&c, "#mailbox-ews-url", "https://127.0.0.1:9/EWS/Exchange.asmx").await;
    fill(&c, "#mailbox-username", "EXAMPLE\\anna").await;
    choose(&c, "#mailbox-auth", "basic").await;
    fill(&c, "#mailbox-password", MAILBOX_PASSWORD).await;
    c.find(Locator::Css("#add-phone")).await.expect("add").click().await.expect("click");
    fill(&c, "#phones .phone [name=uri]", "sip:613@127.0.0.1:5062").await;
    choose(&c, "#phones .phone [name=transport]", "tcp").await;
    choose(&c, "#phones .phone [name=mode]", "subscribe").await;
    fill(&c, "#phones .phone [name=username]", "613").await;
    fill(&c, "#phones .phone [name=password]", PHONE_PASSWORD).await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click");
    text_becomes(&c, "#status", "Saved.").await;
    let text = std::fs::read_to_string(&config_file).expect("settings file written");
    assert!(
        text.contains("email = \"anna@example.com\"") && text.contains("uri = \"sip:613@127.0.0.1:5062\""),
        "{text}"
    );

    // closing the window leaves the tray (started by the window) running; Quit ends it
    let _ = c.close().await;
    drop(driver);
    assert!(host.any_item(), "the tray outlives its window");
    host.item(Duration::from_secs(5)).click_menu("Quit");
    eventually("the first instance to exit", Duration::from_secs(20), || async { (!host.any_item()).then_some(()) })
        .await;

    // Second start: everything is read back.
    let driver = Driver::start(&session);
    let c = driver.launch(&["--settings"]).await;
    value_becomes(&c, "#mailbox-email", "anna@example.com").await;
    value_becomes(&c, "#mailbox-ews-url", "https://127.0.0.1:9/EWS/Exchange.asmx").await;
    value_becomes(&c, "#mailbox-username", "EXAMPLE\\anna").await;
    value_becomes(&c, "#mailbox-auth", "basic").await;
    value_becomes(&c, "#mailbox-password", "").await;
    text_becomes(&c, "#mailbox-password-note", "A password is saved in the keyring; leave empty to keep it.").await;
    value_becomes(&c, "#phones .phone [name=uri]", "sip:613@127.0.0.1:5062").await;
    value_becomes(&c, "#phones .phone [name=transport]", "tcp").await;
    value_becomes(&c, "#phones .phone [name=mode]", "subscribe").await;
    value_becomes(&c, "#phones .phone [name=username]", "613").await;
    text_becomes(
        &c,
        "#phones .phone [data-note=password]",
        "A password is saved in the keyring; leave empty to keep it.",
    )
    .await;
    let _ = c.close().await;
    drop(driver);

    // The secrets are in the keyring, as another client sees it ...
    assert_eq!(secret_tool_lookup(&session, "mailbox:anna@example.com"), MAILBOX_PASSWORD);
    assert_eq!(secret_tool_lookup(&session, "phone:sip:613@127.0.0.1:5062"), PHONE_PASSWORD);
    // ... and in no file of the config and state directories (nor anywhere
    // in the home directory outside the encrypted keyring).
    let config_dir = session.xdg("XDG_CONFIG_HOME");
    let state_dir = session.xdg("XDG_STATE_HOME");
    assert!(
        count_files(&config_dir) >= 1 && count_files(&state_dir) >= 1,
        "config and state files exist to be checked"
    );
    let log = std::fs::read_to_string(state_dir.join("lamplighter").join("lamplighter.log")).expect("log file");
    assert!(log.contains("settings saved: mailbox anna@example.com, 1 phone(s)"), "{log}");
    for secret in [MAILBOX_PASSWORD, PHONE_PASSWORD] {
        let hits: Vec<_> = files_containing(session.home(), secret)
            .into_iter()
            .filter(|p| !p.starts_with(session.xdg("XDG_DATA_HOME").join("keyrings")))
            .collect();
        assert!(hits.is_empty(), "a password reached a file: {hits:?}");
    }
}

/// With no account configured, the tray runs the demo mailbox (the Exchange
/// simulator in-process) and says so: its badge follows the demo's voicemails.
#[test]
fn without_an_account_the_tray_shows_the_demo_mailbox_counts() {
    let (_one, mut session) = desktop();
    let host = TrayHost::start(&mut session);
    let mut app = spawn_app(&session, &[], &[]);
    let tray = host.item(Duration::from_secs(30));
    let end = std::time::Instant::now() + lamplighter_testkit::guard(Duration::from_secs(40));
    let mut words = String::new();
    while std::time::Instant::now() < end {
        let (_, _, title, description) = tray.tooltip();
        words = format!("{title} {description}");
        if words.contains("Demo mailbox: ") && !words.contains("No new") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(words.contains("Demo mailbox: "), "tooltip says {words:?}");
    assert!(words.contains("new voicemails"), "the demo's voicemails are counted: {words:?}");
    let pixmaps = tray.icon_pixmaps();
    let (_, _, argb) = pixmaps.iter().find(|(w, _, _)| *w == 32).expect("a 32 px icon").clone();
    let seen = lamplighter_badge::Icon {
        width: 32,
        height: 32,
        rgba: argb.chunks_exact(4).flat_map(|p| [p[1], p[2], p[3], p[0]]).collect(),
    };
    let badge: u32 = lamplighter_badge::read_badge(&seen).and_then(|b| b.parse().ok()).unwrap_or(0);
    assert!(badge >= 3, "badge {badge}");
    // (Quit from the menu is covered by the next test; here the app may exit
    // before the tray host's D-Bus call returns, so it is simply stopped)
    let _ = app.kill();
    let _ = app.wait();
}

/// The window edits only some of a phone's settings; saving keeps the
/// others as the file has them (a publish phone stays one, with its
/// presence server, refresh and urgent-part option).
#[tokio::test(flavor = "multi_thread")]
async fn saving_in_the_window_keeps_the_phone_settings_it_does_not_show() {
    let (_one, mut session) = desktop();
    let _host = TrayHost::start(&mut session);
    let config_file = write_config(
        &session,
        "schema_version = 1\n[mailbox]\nemail = \"anna@example.com\"\nauth = \"ntlm\"\n\
         ews_url = \"https://127.0.0.1:9/EWS/Exchange.asmx\"\n\
         [[phone]]\nuri = \"sip:613@127.0.0.1\"\ntransport = \"tcp\"\nmode = \"publish\"\n\
         presence_server = \"sip:127.0.0.1:5070\"\nrefresh_hours = 6\nomit_zero_urgent = true\n",
    );
    let driver = Driver::start(&session);
    let c = driver.launch(&["--settings"]).await;
    value_becomes(&c, "#phones .phone [name=mode]", "publish").await;
    fill(&c, "#phones .phone [name=uri]", "sip:614@127.0.0.1").await;
    c.find(Locator::Css("#save")).await.expect("save").click().await.expect("click");
    text_becomes(&c, "#status", "Saved.").await;
    let text = std::fs::read_to_string(&config_file).expect("settings file");
    for kept in [
        "uri = \"sip:614@127.0.0.1\"",
        "mode = \"publish\"",
        "presence_server = \"sip:127.0.0.1:5070\"",
        "refresh_hours = 6",
        "omit_zero_urgent = true",
    ] {
        assert!(text.contains(kept), "{kept} lost on save:\n{text}");
    }
    let _ = c.close().await;
}

#[test]
fn tray_shows_the_count_in_its_tooltip_and_badge_and_quits_from_its_menu() {
    let (_one, mut session) = desktop();
    let host = TrayHost::start(&mut session);
    write_config(&session, "schema_version = 1\n[mailbox]\nemail = \"anna@example.com\"\nauth = \"ntlm\"\n");
    let mut app = spawn_app(&session, &[], &[("LAMPLIGHTER_PREVIEW_COUNTS", "3,1")]);
    let tray = host.item(Duration::from_secs(30));

    let (_, _, title, description) = tray.tooltip();
    let words = format!("{title} {description}");
    assert!(words.contains("3 new voicemails, 1 missed call"), "tooltip says {words:?}");

    let pixmaps = tray.icon_pixmaps();
    let (w, h, argb) = pixmaps.iter().find(|(w, _, _)| *w == 32).expect("a 32 px icon").clone();
    let expected = lamplighter_badge::render(4, 32);
    assert_eq!((w, h), (32, 32));
    assert_eq!(argb, expected.to_argb32_be(), "the tray shows exactly the rendered badge for 4");
    let seen = lamplighter_badge::Icon {
        width: 32,
        height: 32,
        rgba: argb.chunks_exact(4).flat_map(|p| [p[1], p[2], p[3], p[0]]).collect(),
    };
    assert_eq!(lamplighter_badge::read_badge(&seen).as_deref(), Some("4"));
    // tray only: a configured mailbox opens no window at start, and the tray's
    // process has neither WebKit nor GTK loaded (the window is another process)
    assert!(!window_open(&session));
    assert!(std::fs::read_to_string(format!("/proc/{}/maps", app.id())).is_ok_and(|m| m.contains("libc")));
    for lib in ["webkit2gtk", "javascriptcoregtk", "libgtk-3"] {
        assert_eq!(libraries_mapped(app.id(), lib), Vec::<String>::new(), "the tray process loaded {lib}");
    }
    assert_eq!(descendants(app.id()), Vec::<u32>::new(), "tray only: one process");

    tray.click_menu("Quit");
    let status = wait_exit(&mut app, Duration::from_secs(20)).expect("Quit in the tray menu ends the app");
    assert!(status.success(), "{status:?}");
}

/// A German desktop gets a German tooltip under its German menu: the words
/// come from the same place as the window's (`lamplighter-view`).
#[test]
fn a_german_desktop_reads_a_german_tooltip() {
    let (_one, mut session) = desktop();
    let host = TrayHost::start(&mut session);
    write_config(&session, "schema_version = 1\n[mailbox]\nemail = \"anna@example.com\"\nauth = \"ntlm\"\n");
    let mut app = spawn_app(
        &session,
        &[],
        &[("LAMPLIGHTER_PREVIEW_COUNTS", "3,1"), ("LANG", "de_DE.UTF-8"), ("LC_ALL", "de_DE.UTF-8")],
    );
    let tray = host.item(Duration::from_secs(30));
    let (_, _, title, description) = tray.tooltip();
    let words = format!("{title} {description}");
    assert!(words.contains("3 neue Sprachnachrichten, 1 verpasster Anruf"), "tooltip says {words:?}");
    assert!(!words.contains("voicemail"), "no English left: {words:?}");
    let _ = app.kill();
    let _ = app.wait();
}

#[test]
fn a_second_launch_opens_the_first_instances_window_and_exits() {
    let (_one, mut session) = desktop();
    let host = TrayHost::start(&mut session);
    write_config(&session, "[mailbox]\nemail = \"anna@example.com\"\nauth = \"basic\"\n");
    let mut first = spawn_app(&session, &[], &[]);
    let tray = host.item(Duration::from_secs(30));
    assert!(!window_open(&session));

    let mut second = spawn_app(&session, &["--open"], &[]);
    let status = wait_exit(&mut second, Duration::from_secs(30)).expect("the second instance exits");
    assert!(status.success(), "{status:?}");
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(20));
    while !window_open(&session) {
        assert!(Instant::now() < end, "the first instance did not open its window");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(first.try_wait().expect("try_wait").is_none(), "the first instance keeps running");
    // the window is a process of its own, started by the tray
    assert!(!descendants(first.id()).is_empty(), "the window runs in a child process");

    // Closing the window (as a window manager asks) destroys it, rather than
    // hiding it (a hidden window would still be found); the app stays in the tray.
    let display = session.var("DISPLAY").expect("display").to_string();
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(20));
    while !(x11::window_closable(&display, "Lamplighter") && app_log(&session).contains("window main: page loaded")) {
        assert!(Instant::now() < end, "the window never finished loading:\n{}", app_log(&session));
        std::thread::sleep(Duration::from_millis(100));
    }
    // Without a window manager, GTK under Xvfb now and then drops a
    // WM_DELETE_WINDOW (seen about 1 in 5 runs, and several in a row on a
    // loaded machine; the app logs no close request then). A user would click
    // × again; so does the test, every 2 s until the window goes.
    let mut requests = 0;
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(60));
    while window_open(&session) {
        assert!(Instant::now() < end, "the window did not close after {requests} requests:\n{}", app_log(&session));
        if !app_log(&session).contains("window main: close requested") {
            assert_eq!(x11::request_close(&display, "Lamplighter"), 1);
            requests += 1;
        }
        let asked = Instant::now();
        while window_open(&session) && asked.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let log = app_log(&session);
    assert!(log.contains("window main: close requested") && log.contains("window main: destroyed"), "{log}");
    // the window's process ends, and WebKit's processes under it: its memory is given back
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(20));
    while !descendants(first.id()).is_empty() {
        assert!(Instant::now() < end, "the window's processes stay: {:?}", descendants(first.id()));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(first.try_wait().expect("try_wait").is_none(), "closing the window must not end the app");
    assert!(tray.present(), "the tray icon stays after the window closes");
    let _ = first.kill();
    let _ = first.wait();
}

#[test]
fn without_a_tray_host_the_app_says_so_and_shows_its_window() {
    let (_one, session) = desktop();
    write_config(&session, "[mailbox]\nemail = \"anna@example.com\"\nauth = \"basic\"\n");
    let mut app = session
        .command(app_binary())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the app");
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(30));
    while !window_open(&session) {
        if let Some(status) = app.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = app.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the app died without a tray host ({status}):\n{err}");
        }
        assert!(Instant::now() < end, "no window without a tray host");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = app.kill();
    let out = app.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no system tray is available"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_keyring_the_window_says_passwords_last_only_this_session() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut session = Session::start(Parts { display: true, keyring: false });
    let _host = TrayHost::start(&mut session);
    let driver = Driver::start(&session);
    let c = driver.launch(&["--settings"]).await;
    let banner = text_of(&c, "#problems p[data-code=keyring_unavailable]").await;
    assert!(banner.contains("no keyring is available"), "{banner}");
    text_becomes(&c, "#mailbox-password-note", "No keyring: the password is kept until Lamplighter quits.").await;
    let _ = c.close().await;
}
