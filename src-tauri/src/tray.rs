//! The tray icon: the engine's snapshot drawn as a badge and said in the
//! tooltip, and a menu (Open, Settings, Quit). A left click opens the window.

use crate::{Launch, window};
use lamplighter_engine::Snapshot;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Runtime};

const TRAY_ID: &str = "lamplighter";
/// Icon size sent to the tray; panels scale it.
const ICON_SIZE: u32 = 32;

fn icon(snapshot: &Snapshot) -> Image<'static> {
    let icon = lamplighter_badge::render(snapshot.badge, ICON_SIZE);
    Image::new_owned(icon.rgba, icon.width, icon.height)
}

fn tooltip(snapshot: &Snapshot) -> String {
    format!("Lamplighter: {}", snapshot.tooltip)
}

pub(crate) fn create<R: Runtime>(app: &AppHandle<R>, snapshot: &Snapshot) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Lamplighter", true, None::<&str>)?;
    let settings = MenuItem::with_id(app, "settings", "Settings…", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit", true, None::<&str>)?;
    let menu = Menu::with_items(app, &[&open, &settings, &PredefinedMenuItem::separator(app)?, &quit])?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(icon(snapshot))
        .tooltip(tooltip(snapshot))
        .title("Lamplighter")
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "open" => window::open(app, Launch::Window),
            "settings" => window::open(app, Launch::Settings),
            "quit" => {
                log::info!("quit from the tray menu");
                app.exit(0)
            }
            _ => {}
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
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        if let Err(e) = tray.set_icon(Some(icon(snapshot))).and_then(|_| tray.set_tooltip(Some(tooltip(snapshot)))) {
            log::warn!("tray update failed: {e}");
        }
    }
}
