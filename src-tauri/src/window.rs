//! The one window, created when needed and destroyed on close.

use crate::Launch;
use lamplighter_engine::Snapshot;
use tauri::{AppHandle, Emitter, Manager, Runtime, WebviewUrl, WebviewWindowBuilder};

const LABEL: &str = "main";

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
        .inner_size(560.0, 640.0)
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

/// Sends a new snapshot to the window, if it is open.
pub(crate) fn publish<R: Runtime>(app: &AppHandle<R>, snapshot: &Snapshot) {
    if app.get_webview_window(LABEL).is_some() {
        let _ = app.emit_to(LABEL, "snapshot", snapshot);
    }
}
