//! The tray icon: the engine's snapshot drawn as a badge (grey when the
//! mailbox is not connected, an amber dot when a phone refuses the lamp) and
//! said in the tooltip; a menu with the counts, "Play latest voicemail",
//! "Resend lamp to phone", "Pause notifications", Open, Settings and Quit,
//! in the user's language. A left click opens the window. Every item calls
//! one engine action.

use crate::{Launch, window};
use lamplighter_engine::{Engine, Snapshot};
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Runtime};

const TRAY_ID: &str = "lamplighter";
/// Icon size sent to the tray; panels scale it.
const ICON_SIZE: u32 = 32;

/// The menu items that change with the state.
struct MenuItems<R: Runtime> {
    counts: MenuItem<R>,
    play_latest: MenuItem<R>,
    pause: CheckMenuItem<R>,
}

fn icon(snapshot: &Snapshot) -> Image<'static> {
    let icon = lamplighter_badge::render_state(snapshot.badge, ICON_SIZE, snapshot.health);
    Image::new_owned(icon.rgba, icon.width, icon.height)
}

fn tooltip(snapshot: &Snapshot) -> String {
    let mut t = format!("Lamplighter: {}", snapshot.tooltip);
    if let Some(p) = snapshot.problems.first() {
        // one line: KSNI hosts show only the first line of a tooltip
        t.push_str(&format!(" — {}", p.message));
    }
    t
}

pub(crate) fn create<R: Runtime>(app: &AppHandle<R>, engine: &Engine) -> tauri::Result<()> {
    let snapshot = engine.snapshot();
    let text = lamplighter_view::menu_text(engine.lang());
    let counts = MenuItem::with_id(app, "counts", &snapshot.summary_text, false, None::<&str>)?;
    let play_latest = MenuItem::with_id(app, "play-latest", &text.play_latest, true, None::<&str>)?;
    let resend = MenuItem::with_id(app, "resend-lamp", &text.resend_lamp, true, None::<&str>)?;
    let pause = CheckMenuItem::with_id(
        app,
        "pause-notifications",
        &text.pause_notifications,
        true,
        snapshot.notifications_paused,
        None::<&str>,
    )?;
    let open = MenuItem::with_id(app, "open", &text.open, true, None::<&str>)?;
    let settings = MenuItem::with_id(app, "settings", &text.settings, true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", &text.quit, true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &counts,
            &PredefinedMenuItem::separator(app)?,
            &play_latest,
            &resend,
            &pause,
            &PredefinedMenuItem::separator(app)?,
            &open,
            &settings,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    app.manage(MenuItems { counts, play_latest, pause });
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(&snapshot))
        .tooltip(tooltip(&snapshot))
        .title("Lamplighter")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| {
            let engine = app.state::<Engine>().inner().clone();
            match event.id.as_ref() {
                "play-latest" => match engine.latest_voicemail() {
                    Some(id) => crate::actions::play(app, id),
                    None => window::open(app, Launch::Window),
                },
                "resend-lamp" => {
                    if let Err(e) = engine.resend_lamp() {
                        log::warn!("resend lamp: {e}");
                    }
                }
                "pause-notifications" => {
                    let paused = !engine.snapshot().notifications_paused;
                    engine.set_notifications_paused(paused);
                }
                "open" => window::open(app, Launch::Window),
                "settings" => window::open(app, Launch::Settings),
                "quit" => {
                    log::info!("quit from the tray menu");
                    app.exit(0)
                }
                _ => {}
            }
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click { button: MouseButton::Left, button_state: MouseButtonState::Up, .. } = event {
                window::open(tray.app_handle(), Launch::Window);
            }
        })
        .build(app)?;
    Ok(())
}

pub(crate) fn update<R: Runtime>(app: &AppHandle<R>, snapshot: &Snapshot) {
    if let Some(tray) = app.tray_by_id(TRAY_ID)
        && let Err(e) = tray.set_icon(Some(icon(snapshot))).and_then(|_| tray.set_tooltip(Some(tooltip(snapshot))))
    {
        log::warn!("tray update failed: {e}");
    }
    if let Some(items) = app.try_state::<MenuItems<R>>() {
        let _ = items.counts.set_text(&snapshot.summary_text);
        let _ = items.play_latest.set_enabled(snapshot.counts.voicemails > 0 || snapshot.connection.is_some());
        let _ = items.pause.set_checked(snapshot.notifications_paused);
    }
}
