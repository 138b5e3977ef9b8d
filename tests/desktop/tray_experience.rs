//! The tray experience end to end, against the Exchange simulator, a sipp
//! phone, a real notification daemon (dunst) and a PulseAudio null sink:
//! a voicemail deposited in the mailbox appears in the window's list and in
//! a notification on screen; the notification's Play action (picked through
//! dunst's context menu, as a user does) plays it; after a few seconds of
//! listening it is read in the mailbox, the phone's lamp goes out, and the
//! tray badge says so. Screenshots of the window go to the artifacts.

use super::{desktop, window_open, write_config};
use fantoccini::Locator;
use lamplighter_e2e::*;
use lamplighter_ews_sim::{MissedCall, SimConfig, Simulator, Voicemail};
use lamplighter_testkit::audio::{NullSink, rms};
use lamplighter_testkit::sipp::Sipp;
use std::time::{Duration, Instant};

const PASSWORD_VAR: &str = "LAMPLIGHTER_E2E_MAILBOX_PASSWORD";
const PASSWORD: &str = "Sommer2026!";

/// Where the tests put screenshots: `$LAMPLIGHTER_ARTIFACTS`, else `target/e2e-artifacts`.
fn artifacts() -> std::path::PathBuf {
    let dir = std::env::var("LAMPLIGHTER_ARTIFACTS").map(std::path::PathBuf::from).unwrap_or_else(|_| {
        std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
            .join("e2e-artifacts")
    });
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

fn config(sim: &Simulator, phone: &str) -> String {
    format!(
        "schema_version = 1\n[mailbox]\nemail = \"mara@example.test\"\news_url = \"{}\"\nusername = \"mara\"\n\
         auth = \"basic\"\npassword_env = \"{PASSWORD_VAR}\"\n\n[[phone]]\nuri = \"{phone}\"\ntransport = \"udp\"\n\
         mode = \"unsolicited\"\nrefresh_hours = 12\n\n[mwi]\nsip_listen = \"127.0.0.1:0\"\n",
        sim.ews_url()
    )
}

fn badge(tray: &Tray) -> (Option<String>, lamplighter_badge::Health) {
    let pixmaps = tray.icon_pixmaps();
    let (_, _, argb) = pixmaps.iter().find(|(w, _, _)| *w == 32).expect("a 32 px icon").clone();
    let icon = lamplighter_badge::Icon {
        width: 32,
        height: 32,
        rgba: argb.chunks_exact(4).flat_map(|p| [p[1], p[2], p[3], p[0]]).collect(),
    };
    (lamplighter_badge::read_badge(&icon), lamplighter_badge::read_health(&icon))
}

async fn finish(phone: Sipp) -> (bool, String) {
    tokio::task::spawn_blocking(move || phone.finish()).await.expect("sipp")
}

async fn attr(c: &fantoccini::Client, css: &str, name: &str) -> Option<String> {
    c.find(Locator::Css(css)).await.ok()?.attr(name).await.ok()?
}

#[tokio::test(flavor = "multi_thread")]
async fn a_voicemail_is_listed_notified_played_from_the_notification_and_turns_heard() {
    let (_one, mut session) = desktop();
    let host = TrayHost::start(&mut session);
    let dunst = Dunst::start(&mut session);
    let sink = NullSink::start();
    let sim = Simulator::start(SimConfig::default()).await.expect("simulator");
    sim.deposit_voicemail(Voicemail {
        caller_number: "+49 30 1234567".into(),
        duration_secs: 12,
        is_read: true,
        ..Voicemail::default()
    });
    // the phone's first lamp: nothing new, one heard
    let phone = Sipp::start("notify-uas-ok.xml", false, &[("waiting", "no"), ("summary", r"Voice-Message: 0/1")]);
    let port = phone.port;
    write_config(&session, &config(&sim, &phone.uri()));
    let driver = Driver::start_with_env(&session, &[("PULSE_SERVER", &sink.server), (PASSWORD_VAR, PASSWORD)]);
    let c = driver.launch(&["--open"]).await;
    let (ok, log) = finish(phone).await;
    assert!(ok, "first lamp:\n{log}");
    text_becomes(&c, "#connection", "connected").await;
    let tray = host.item(Duration::from_secs(30));
    assert_eq!(badge(&tray), (None, lamplighter_badge::Health::Ok));
    assert!(dunst.shown().is_empty(), "nothing waits, so nothing is announced at start: {:?}", dunst.shown());

    // a voicemail arrives
    let phone = Sipp::start_on(port, "notify-uas-ok.xml", &[("waiting", "yes"), ("summary", r"Voice-Message: 1/1")]);
    let deposited = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let id = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 5251 304613".into(),
        caller_name: Some("Jörg Brinkmann".into()),
        duration_secs: 8,
        audio: Some(("voicemail.wav".into(), "audio/wav".into(), lamplighter_demo::tone_wav(8))),
        transcription: Some("Hallo, hier ist Jörg. Bitte ruf mich wegen des Angebots zurück.".into()),
        ..Voicemail::default()
    });
    // … in the window's list, bold (unheard), newest first
    let row = format!("#voicemail-list li[data-item-id=\"{id}\"]");
    eventually("the voicemail in the list", Duration::from_secs(20), || async {
        attr(&c, &row, "class").await.filter(|cl| cl.contains("unheard"))
    })
    .await;
    assert_eq!(attr(&c, "#voicemail-list li:first-child", "data-item-id").await.as_deref(), Some(id.as_str()));
    assert_eq!(text_of(&c, &format!("{row} .caller")).await, "Jörg Brinkmann");
    assert_eq!(text_of(&c, &format!("{row} .duration")).await, "0:08");
    // … on screen, as the daemon shows it
    let shown = eventually("the notification on screen", Duration::from_secs(20), || async {
        dunst.shown().into_iter().find(|(_, summary, _)| summary.contains("Jörg Brinkmann"))
    })
    .await;
    assert_eq!(shown.1, "Voicemail from Jörg Brinkmann (+49 5251 304613), 0:08");
    assert_eq!(shown.2, "Hallo, hier ist Jörg. Bitte ruf mich wegen des Angebots zurück.");
    assert!(dunst.displayed() >= 1);
    eprintln!("figure: deposit → notification on screen: {:.0} ms", (shown.0 - deposited) * 1000.0);
    // … the phone's lamp lights, and the badge counts it
    let (ok, log) = finish(phone).await;
    assert!(ok, "lamp on:\n{log}");
    eventually("badge 1", Duration::from_secs(10), || async {
        (badge(&tray) == (Some("1".into()), lamplighter_badge::Health::Ok)).then_some(())
    })
    .await;
    save_screenshot(&c, "window-light.png").await;

    // Play, from the notification
    let phone = Sipp::start_on(port, "notify-uas-ok.xml", &[("waiting", "no"), ("summary", r"Voice-Message: 0/2")]);
    sim.limit_attachment_rate(Some(40_000)); // a slow link: the download's progress shows
    let menu = dunst.pick("#Play (Voicemail from Jörg");
    assert!(menu.contains("Mark heard"), "the notification offers Play and Mark heard: {menu}");
    let got = eventually("the download's progress", Duration::from_secs(20), || async {
        let bar = c.find(Locator::Css("#download-progress")).await.ok()?;
        if bar.attr("hidden").await.ok()?.is_some() {
            return None;
        }
        let bytes: u64 = attr(&c, "#download-bytes", "data-bytes").await?.parse().ok()?;
        (bytes > 0 && bytes < 64_058).then_some(bytes)
    })
    .await;
    assert!(text_of(&c, "#download-bytes").await.ends_with("KiB"), "{got} bytes so far");
    sim.limit_attachment_rate(None);
    let first = eventually("playing in the window", Duration::from_secs(20), || async {
        let phase = attr(&c, "#player", "data-phase").await?;
        let pos: u64 = attr(&c, "#play-position", "data-position-ms").await?.parse().ok()?;
        (phase == "playing" && pos > 0).then_some(pos)
    })
    .await;
    assert_eq!(attr(&c, "#player", "data-item-id").await.as_deref(), Some(id.as_str()));
    // the window was brought to that item
    eventually("the item focused", Duration::from_secs(10), || async {
        attr(&c, &row, "class").await.filter(|cl| cl.contains("focused"))
    })
    .await;
    // the sound reaches the (null) sound card, and it is not silence
    assert!(!sink.pactl(&["list", "short", "sink-inputs"]).trim().is_empty(), "no stream on the sink");
    let heard = sink.record(Duration::from_millis(1200));
    assert!(heard.len() > 1600, "recorded {} samples", heard.len());
    assert!(rms(&heard) > 1000.0, "the sink carried silence (rms {})", rms(&heard));
    // the position shown advances with the clock (the window gets it every 250 ms); judged
    // against the time that really passed around the two readings, so load cannot fail it
    let position =
        || async { attr(&c, "#play-position", "data-position-ms").await.and_then(|p| p.parse::<u64>().ok()) };
    let before_mid = Instant::now();
    let mid = position().await.expect("position");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = position().await.expect("position");
    let at_most = before_mid.elapsed().as_millis() as u64;
    assert!(mid >= first, "{first} → {mid}");
    assert!(later > mid, "the position stood still: {mid} → {later}");
    assert!(later - mid <= at_most + 300, "the position ran ahead of the clock: {mid} → {later} in {at_most} ms");

    // after a few seconds of listening: read in the mailbox, lamp out, badge clear
    eventually("read in the mailbox", Duration::from_secs(20), || async {
        sim.items().iter().any(|(i, _, read)| *i == id && *read).then_some(())
    })
    .await;
    let (ok, log) = finish(phone).await;
    assert!(ok, "lamp off:\n{log}");
    eventually("badge cleared", Duration::from_secs(10), || async {
        (badge(&tray) == (None, lamplighter_badge::Health::Ok)).then_some(())
    })
    .await;
    eventually("the row no longer bold", Duration::from_secs(10), || async {
        attr(&c, &row, "class").await.filter(|cl| !cl.contains("unheard"))
    })
    .await;
    assert_eq!(text_of(&c, "#summary").await, "No new voicemail or missed calls");

    // from the keyboard: Enter on the row's Play plays it again; Stop ends it
    eventually("the first playback at its end", Duration::from_secs(20), || async {
        (attr(&c, "#player", "data-phase").await.as_deref() == Some("ended")).then_some(())
    })
    .await;
    let play = c.find(Locator::Css(&format!("{row} .play"))).await.expect("play button");
    play.send_keys("\u{E007}").await.expect("Enter");
    eventually("playing again", Duration::from_secs(20), || async {
        (attr(&c, "#player", "data-phase").await.as_deref() == Some("playing")).then_some(())
    })
    .await;
    c.find(Locator::Css("#player-stop")).await.expect("stop").click().await.expect("click");
    eventually("player closed", Duration::from_secs(10), || async {
        c.find(Locator::Css("#player")).await.ok()?.attr("hidden").await.ok()?.map(|_| ())
    })
    .await;

    // "Check settings" runs the agent's checks and shows each step
    let phone = Sipp::start_on(port, "notify-uas-ok.xml", &[("waiting", "no"), ("summary", r"Voice-Message: 0/2")]);
    c.find(Locator::Css("#check-settings")).await.expect("button").click().await.expect("click");
    let results = eventually("check results", Duration::from_secs(30), || async {
        let t = text_of(&c, "#check-results").await;
        t.contains("phone").then_some(t)
    })
    .await;
    let (ok, log) = finish(phone).await;
    assert!(
        ok,
        "the check's lamp:
{log}"
    );
    assert!(
        results.contains("✓ signed in with Basic; Voice Mail folder readable: 2 voicemails (0 unheard)"),
        "{results}"
    );
    assert!(results.contains("✓ streaming notifications supported"), "{results}");
    assert!(results.contains("answered 200"), "{results}");
    assert!(!results.contains('✗'), "{results}");

    // autostart at login is a setting: it writes (and removes) the XDG autostart entry
    let autostart_dir = session.xdg("XDG_CONFIG_HOME").join("autostart");
    c.find(Locator::Css("#tab-settings")).await.expect("tab").click().await.expect("click");
    let toggle = c.find(Locator::Css("#autostart")).await.expect("checkbox");
    assert_eq!(toggle.prop("checked").await.ok().flatten().as_deref(), Some("false"));
    toggle.click().await.expect("click");
    let entry = eventually("the autostart entry", Duration::from_secs(10), || async {
        std::fs::read_dir(&autostart_dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("Exec=") && t.contains("lamplighter")))
    })
    .await;
    c.find(Locator::Css("#autostart")).await.expect("checkbox").click().await.expect("click");
    eventually("the autostart entry removed", Duration::from_secs(10), || async { (!entry.exists()).then_some(()) })
        .await;
    let _ = c.close().await;
}

async fn save_screenshot(c: &fantoccini::Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(artifacts().join(name), png).expect("save screenshot");
}

/// A fake desktop application registered (XDG `mimeapps.list`) as the
/// default for `mime_types`, so xdg-open reaches it as on a real desktop; it
/// appends each argument it is given to `<name>.log` in the home directory.
fn fake_app(session: &lamplighter_testkit::Session, name: &str, mime_types: &[&str]) -> std::path::PathBuf {
    let apps = session.xdg("XDG_DATA_HOME").join("applications");
    std::fs::create_dir_all(&apps).expect("applications dir");
    let log = session.home().join(format!("{name}.log"));
    let script = session.home().join(format!("{name}.sh"));
    std::fs::write(&script, format!("#!/bin/sh\necho \"$1\" >> {}\n", log.display())).expect("script");
    let _ = std::process::Command::new("chmod").arg("+x").arg(&script).status();
    std::fs::write(
        apps.join(format!("{name}.desktop")),
        format!(
            "[Desktop Entry]\nType=Application\nName={name}\nExec={} %u\nMimeType={};\n",
            script.display(),
            mime_types.join(";")
        ),
    )
    .expect("desktop file");
    let config = session.xdg("XDG_CONFIG_HOME");
    std::fs::create_dir_all(&config).expect("config dir");
    let list = config.join("mimeapps.list");
    let mut text = std::fs::read_to_string(&list).unwrap_or_else(|_| "[Default Applications]\n".into());
    for m in mime_types {
        text.push_str(&format!("{m}={name}.desktop\n"));
    }
    std::fs::write(&list, text).expect("mimeapps.list");
    log
}

/// A fake softphone for `tel:`/`sip:` links.
fn fake_softphone(session: &lamplighter_testkit::Session) -> std::path::PathBuf {
    fake_app(session, "fake-softphone", &["x-scheme-handler/tel", "x-scheme-handler/sip"])
}

fn wait_for(what: &str, session: &lamplighter_testkit::Session, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(20));
    while !done() {
        assert!(Instant::now() < end, "{what}: {}", app_log(session));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every notification button, picked through dunst's menu as a user does:
/// *Call back* opens the caller's `tel:` URI with the desktop's handler,
/// *Dismiss* marks the missed call seen and *Mark heard* the voicemail read
/// in the mailbox; a click on the notification itself (dunst's default
/// action) opens the window, from the tray alone.
#[test]
fn notification_buttons_call_back_dismiss_mark_heard_and_a_click_opens_the_window() {
    let (_one, mut session) = desktop();
    let _host = TrayHost::start(&mut session);
    let dunst = Dunst::start(&mut session);
    let called = fake_softphone(&session);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("simulator");
    let phone = Sipp::start("notify-uas-ok.xml", false, &[("waiting", "no"), ("summary", r"Voice-Message: 0/0")]);
    write_config(&session, &config(&sim, &phone.uri()));
    let mut app = spawn_app(&session, &[], &[(PASSWORD_VAR, PASSWORD)]);
    let (ok, log) = phone.finish();
    assert!(ok, "{log}\n{}", app_log(&session));
    assert!(!window_open(&session), "tray only at start");
    let shown = |text: &str| dunst.shown().iter().any(|(_, s, _)| s.contains(text));
    let read = |id: &str| sim.items().iter().any(|(i, _, r)| i == id && *r);

    // Call back
    sim.deposit_missed_call(MissedCall {
        caller_number: "+49 30 1234567".into(),
        caller_name: Some("Carl Caller".into()),
        call_id: Some("c1@pbx".into()),
        ..MissedCall::default()
    });
    wait_for("missed-call notification", &session, || shown("Missed call from Carl Caller"));
    let menu = dunst.pick("#Call back (Missed call from Carl Caller");
    assert!(menu.contains("#Dismiss (Missed call from Carl Caller"), "{menu}");
    wait_for("the softphone called", &session, || {
        std::fs::read_to_string(&called).is_ok_and(|t| t.trim() == "tel:+49301234567")
    });

    // Dismiss
    let dismissed = sim.deposit_missed_call(MissedCall {
        caller_number: "+49 221 987654".into(),
        caller_name: Some("Dora Dismiss".into()),
        call_id: Some("c2@pbx".into()),
        ..MissedCall::default()
    });
    wait_for("second missed-call notification", &session, || shown("Missed call from Dora Dismiss"));
    dunst.pick("#Dismiss (Missed call from Dora Dismiss");
    wait_for("dismissed call read in the mailbox", &session, || read(&dismissed));

    // Mark heard
    let heard = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 40 5550000".into(),
        caller_name: Some("Paketdienst".into()),
        duration_secs: 20,
        ..Voicemail::default()
    });
    wait_for("voicemail notification", &session, || shown("Voicemail from Paketdienst"));
    dunst.pick("#Mark heard (Voicemail from Paketdienst");
    wait_for("voicemail read in the mailbox", &session, || read(&heard));
    assert!(!window_open(&session), "buttons do their job without opening the window");

    // a click on the notification itself
    let _ = session.command("dunstctl").arg("close-all").status();
    sim.deposit_voicemail(Voicemail {
        caller_number: "+49 89 7654321".into(),
        duration_secs: 5,
        ..Voicemail::default()
    });
    wait_for("notification", &session, || shown("+49 89 7654321"));
    let _ = session.command("dunstctl").args(["action", "0"]).status();
    wait_for("the window opened", &session, || window_open(&session));
    let _ = app.kill();
    let _ = app.wait();
}

/// The window in the demo mailbox: light and dark (GTK's dark variant, which
/// WebKit reports as `prefers-color-scheme: dark`), and in German when the
/// OS speaks German. Screenshots of both themes go to the artifacts.
#[tokio::test(flavor = "multi_thread")]
async fn the_window_reads_in_light_and_dark_and_speaks_german() {
    for (theme, lang, shot) in [
        ("Adwaita", "en_GB.UTF-8", Some("window-light-demo.png")),
        ("Adwaita:dark", "en_GB.UTF-8", Some("window-dark-demo.png")),
        ("Adwaita", "de_DE.UTF-8", None),
    ] {
        let (_one, session) = desktop();
        let driver = Driver::start_with_env(&session, &[("GTK_THEME", theme), ("LANG", lang), ("LC_ALL", lang)]);
        let c = driver.launch(&["--open"]).await;
        // the demo's items are listed (three voicemails at least)
        eventually("the demo's voicemails", Duration::from_secs(30), || async {
            let rows = c.find_all(Locator::Css("#voicemail-list li")).await.ok()?;
            (rows.len() >= 3).then_some(())
        })
        .await;
        let background = c
            .execute("return getComputedStyle(document.body).backgroundColor", vec![])
            .await
            .expect("style")
            .as_str()
            .unwrap_or_default()
            .to_string();
        let dark = theme.ends_with(":dark");
        assert_eq!(background, if dark { "rgb(22, 25, 29)" } else { "rgb(255, 255, 255)" }, "{theme}");
        if lang.starts_with("de") {
            assert_eq!(text_of(&c, "#tab-inbox").await, "Eingang");
            assert_eq!(text_of(&c, "#voicemail-heading").await, "Sprachnachrichten");
            assert_eq!(text_of(&c, "#voicemail-list li:first-child .play").await, "Abspielen");
            assert!(text_of(&c, "#summary").await.contains("neue Sprachnachricht"));
            c.find(Locator::Css("#tab-settings")).await.expect("tab").click().await.expect("click");
            assert_eq!(text_of(&c, "legend[data-i18n=phones]").await, "Telefone");
            assert_eq!(text_of(&c, "#save").await, "Speichern");
            assert_eq!(text_of(&c, "label[for=mailbox-password]").await, "Kennwort");
        } else {
            assert_eq!(text_of(&c, "#voicemail-heading").await, "Voicemail");
        }
        if let Some(name) = shot {
            // the team call (someone else's) shows its reason in the collapsible section
            eventually("a secondary call", Duration::from_secs(30), || async {
                let n: usize = text_of(&c, "#secondary-count").await.parse().ok()?;
                (n >= 1).then_some(())
            })
            .await;
            c.find(Locator::Css("#secondary summary")).await.expect("summary").click().await.expect("open");
            assert!(text_of(&c, "#secondary-list li .reason").await.contains("team call"));
            let _ = c.set_window_size(600, 1150).await;
            let _ = c.execute("window.scrollTo(0, 0)", vec![]).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            save_screenshot(&c, name).await;
        }
        let _ = c.close().await;
    }
}

fn with_audio(number: &str) -> Voicemail {
    Voicemail {
        caller_number: number.into(),
        duration_secs: 6,
        audio: Some(("voicemail.wav".into(), "audio/wav".into(), lamplighter_demo::tone_wav(6))),
        ..Voicemail::default()
    }
}

/// The tray menu: the counts in words, "Resend lamp to phone" (the sipp
/// phone gets the lamp again), "Pause notifications" (a new voicemail is
/// counted but not announced; unpaused, the next one is), and "Play latest
/// voicemail" (the window opens and the newest unheard one plays).
#[test]
fn the_tray_menu_resends_the_lamp_pauses_notifications_and_plays_the_latest() {
    let (_one, mut session) = desktop();
    let host = TrayHost::start(&mut session);
    let dunst = Dunst::start(&mut session);
    let sink = NullSink::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("simulator");
    let first = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 40 5550000".into(),
        caller_name: Some("Paketdienst".into()),
        duration_secs: 6,
        audio: Some(("voicemail.wav".into(), "audio/wav".into(), lamplighter_demo::tone_wav(6))),
        ..Voicemail::default()
    });
    let phone = Sipp::start("notify-uas-ok.xml", false, &[("waiting", "yes"), ("summary", r"Voice-Message: 1/0")]);
    let port = phone.port;
    write_config(&session, &config(&sim, &phone.uri()));
    let mut app = spawn_app(&session, &[], &[(PASSWORD_VAR, PASSWORD), ("PULSE_SERVER", &sink.server)]);
    let (ok, log) = phone.finish();
    assert!(ok, "{log}\n{}", app_log(&session));
    let tray = host.item(Duration::from_secs(30));
    let labels = tray.menu_items();
    assert_eq!(labels[0], ("1 new voicemail, 0 missed calls".to_string(), false, -1), "{labels:?}");
    for item in ["Play latest voicemail", "Resend lamp to phone", "Pause notifications", "Settings…", "Quit"] {
        assert!(labels.iter().any(|(l, enabled, _)| l == item && *enabled), "{item} missing: {labels:?}");
    }

    // the lamp again, on request
    let phone = Sipp::start_on(port, "notify-uas-ok.xml", &[("waiting", "yes"), ("summary", r"Voice-Message: 1/0")]);
    tray.click_menu("Resend lamp to phone");
    let (ok, log) = phone.finish();
    assert!(ok, "resent lamp:\n{log}");

    // paused: counted, not announced
    tray.click_menu("Pause notifications");
    // the tray redraws its menu once the engine took the click: wait for that, not a moment
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    while !tray.menu_items().iter().any(|(l, _, t)| l == "Pause notifications" && *t == 1) {
        assert!(Instant::now() < end, "never shown as checked: {:?}", tray.menu_items());
        std::thread::sleep(Duration::from_millis(50));
    }
    let phone = Sipp::start_on(port, "notify-uas-ok.xml", &[("waiting", "yes"), ("summary", r"Voice-Message: 2/0")]);
    sim.deposit_voicemail(with_audio("+49 30 2222"));
    let (ok, log) = phone.finish();
    assert!(ok, "{log}");
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    while !tray.menu_items().iter().any(|(l, _, _)| l == "2 new voicemails, 0 missed calls") {
        assert!(Instant::now() < end, "not counted: {:?}", tray.menu_items());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!dunst.shown().iter().any(|(_, s, _)| s.contains("+49 30 2222")), "announced while paused");
    // resumed: the next one is announced
    tray.click_menu("Pause notifications");
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(10));
    while !tray.menu_items().iter().any(|(l, _, t)| l == "Pause notifications" && *t == 0) {
        assert!(Instant::now() < end, "never shown as resumed: {:?}", tray.menu_items());
        std::thread::sleep(Duration::from_millis(50));
    }
    let phone = Sipp::start_on(port, "notify-uas-ok.xml", &[("waiting", "yes"), ("summary", r"Voice-Message: 3/0")]);
    let newest = sim.deposit_voicemail(with_audio("+49 30 3333"));
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(20));
    while !dunst.shown().iter().any(|(_, s, _)| s.contains("+49 30 3333")) {
        assert!(Instant::now() < end, "not announced after resuming: {:?}", dunst.shown());
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, log) = phone.finish();
    assert!(ok, "{log}");

    // play the latest (newest unheard): the window opens and the sound goes out
    assert!(!window_open(&session));
    tray.click_menu("Play latest voicemail");
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(20));
    while !window_open(&session) || sink.pactl(&["list", "short", "sink-inputs"]).trim().is_empty() {
        assert!(Instant::now() < end, "window or sound missing: {}", app_log(&session));
        std::thread::sleep(Duration::from_millis(100));
    }
    // it was the newest that played: after a few seconds it alone is read in the mailbox
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(20));
    while !sim.items().iter().any(|(i, _, read)| *i == newest && *read) {
        assert!(Instant::now() < end, "the newest was not marked heard: {}", app_log(&session));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sim.items().iter().any(|(i, _, read)| *i == first && !*read), "the older one stays unheard");

    // the password changes on the server: the icon turns grey, the tooltip says why
    sim.set_password("mara", "Winter2027!");
    sim.drop_streams();
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(30));
    loop {
        let (_, _, title, description) = tray.tooltip();
        let words = format!("{title} {description}");
        if badge(&tray).1 == lamplighter_badge::Health::Disconnected && words.contains("sign-in refused") {
            break;
        }
        assert!(Instant::now() < end, "icon not grey or the tooltip silent: {words}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = app.kill();
    let _ = app.wait();
}

/// A recording in a format this desktop cannot decode (WMA, with the libav
/// WMA decoders hidden from GStreamer as on a desktop without
/// gstreamer1.0-libav): the window names the format and offers "Open in the
/// default player", which hands the cached file to the desktop's player.
#[tokio::test(flavor = "multi_thread")]
async fn a_format_this_desktop_cannot_play_is_named_and_opens_in_the_default_player() {
    let (_one, session) = desktop();
    let player_log = fake_app(&session, "fake-player", &["video/x-ms-asf", "audio/x-ms-asf", "audio/x-ms-wma"]);
    let wma = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/audio/wma.wma"))
        .expect("WMA fixture");
    let sim = Simulator::start(SimConfig::default()).await.expect("simulator");
    let id = sim.deposit_voicemail(Voicemail {
        caller_number: "+49 69 1111".into(),
        duration_secs: 3,
        audio: Some(("voicemail.wma".into(), "audio/x-ms-wma".into(), wma.clone())),
        ..Voicemail::default()
    });
    let phone = Sipp::start("notify-uas-ok.xml", false, &[("waiting", "yes"), ("summary", r"Voice-Message: 1/0")]);
    write_config(&session, &config(&sim, &phone.uri()));
    let driver = Driver::start_with_env(
        &session,
        &[(PASSWORD_VAR, PASSWORD), ("GST_PLUGIN_FEATURE_RANK", "avdec_wmav2:NONE,avdec_wmav1:NONE,avdec_wmapro:NONE")],
    );
    let c = driver.launch(&["--open"]).await;
    let (ok, log) = finish(phone).await;
    assert!(ok, "{log}");
    let play = format!("#voicemail-list li[data-item-id=\"{id}\"] .play");
    eventually("the row", Duration::from_secs(20), || async { c.find(Locator::Css(&play)).await.ok() })
        .await
        .click()
        .await
        .expect("click Play");
    eventually("the failure shown", Duration::from_secs(20), || async {
        (attr(&c, "#player", "data-phase").await.as_deref() == Some("failed")).then_some(())
    })
    .await;
    let error = text_of(&c, "#player-error").await;
    assert!(error.contains("WMA") && error.contains("default player"), "{error}");
    let open = c.find(Locator::Css("#player-open-default")).await.expect("button");
    assert!(open.is_displayed().await.expect("displayed"), "Open in the default player is offered");
    open.click().await.expect("click");
    let handed = eventually("the default player started", Duration::from_secs(20), || async {
        std::fs::read_to_string(&player_log).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
    })
    .await;
    let path = handed.strip_prefix("file://").unwrap_or(&handed);
    assert_eq!(std::fs::read(path).expect("the handed file"), wma, "the recording itself went to the player");
    let _ = c.close().await;
}
