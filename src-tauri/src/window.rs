//! The one window, created when needed and destroyed on close (that frees
//! the webview, ~125 MB). An item to show (from a notification) is kept
//! until the page asks for it, so a window that is still loading gets it too.

use crate::Launch;
use lamplighter_engine::Snapshot;
use std::sync::Mutex;
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

const LABEL: &str = "main";

/// The item the window should scroll to and highlight.
#[derive(Default)]
pub(crate) struct Focus(pub Mutex<Option<String>>);

/// Opens (or focuses) the window on the page `launch` asks for.
pub(crate) fn open<R: Runtime>(app: &AppHandle<R>, launch: Launch) {
    let page = if launch == Launch::Settings { "index.html#settings" } else { "index.html#inbox" };
    if let Some(w) = app.get_webview_window(LABEL) {
        let _ = w.eval(format!("location.hash = '{}'", page.trim_start_matches("index.html")));
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
        return;
    }
    let built = WebviewWindowBuilder::new(app, LABEL, WebviewUrl::App(page.into()))
        .title("Lamplighter")
        .inner_size(560.0, 680.0)
        .min_inner_size(420.0, 400.0)
        .on_page_load(|w, payload| {
            if matches!(payload.event(), tauri::webview::PageLoadEvent::Finished) {
                log::info!("window {}: page loaded", w.label());
            }
        })
        .build();
    if let Err(e) = built {
        log::error!("cannot open the window: {e}");
    }
}

/// Opens the window on one item (a voicemail or a call).
pub(crate) fn open_on_item<R: Runtime>(app: &AppHandle<R>, item_id: &str) {
    if let Some(focus) = app.try_state::<Focus>() {
        *focus.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(item_id.to_string());
    }
    let existed = app.get_webview_window(LABEL).is_some();
    open(app, Launch::Window);
    if existed {
        let _ = app.emit_to(LABEL, "focus-item", item_id);
    }
}

/// Sends a new snapshot to the window, if it is open.
pub(crate) fn publish<R: Runtime>(app: &AppHandle<R>, snapshot: &Snapshot) {
    if app.get_webview_window(LABEL).is_some() {
        let _ = app.emit_to(LABEL, "snapshot", snapshot);
    }
}
