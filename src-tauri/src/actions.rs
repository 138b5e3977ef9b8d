//! The shell's side of actions that start outside the window (tray menu,
//! notification buttons): open the window where it helps, then one engine
//! call on the async runtime. Failures are logged and shown in the window
//! (the engine puts playback errors into the snapshot).

use crate::window;
use lamplighter_engine::Engine;
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_opener::OpenerExt;

fn engine<R: Runtime>(app: &AppHandle<R>) -> Engine {
    app.state::<Engine>().inner().clone()
}

/// Opens the window on the voicemail and plays it.
pub(crate) fn play<R: Runtime>(app: &AppHandle<R>, item_id: String) {
    window::open_on_item(app, &item_id);
    let engine = engine(app);
    tauri::async_runtime::spawn(async move {
        if let Err(e) = engine.play(&item_id).await {
            log::warn!("play {item_id}: {e}");
        }
    });
}

/// Marks a voicemail heard.
pub(crate) fn mark_heard<R: Runtime>(app: &AppHandle<R>, item_id: String) {
    let engine = engine(app);
    tauri::async_runtime::spawn(async move {
        if let Err(e) = engine.mark_heard(&item_id).await {
            log::warn!("mark heard {item_id}: {e}");
        }
    });
}

/// Marks a missed call seen (every device's report).
pub(crate) fn mark_seen<R: Runtime>(app: &AppHandle<R>, item_id: String) {
    let engine = engine(app);
    tauri::async_runtime::spawn(async move {
        if let Err(e) = engine.mark_call_seen(&item_id).await {
            log::warn!("mark seen {item_id}: {e}");
        }
    });
}

/// Opens a `tel:`/`sip:` URI with the system's handler (the softphone).
pub(crate) fn call_back<R: Runtime>(app: &AppHandle<R>, uri: &str) -> Result<(), String> {
    if !(uri.starts_with("tel:") || uri.starts_with("sip:") || uri.starts_with("sips:")) {
        return Err(format!("not a phone URI: {uri}"));
    }
    log::info!("calling back {uri}");
    app.opener().open_url(uri, None::<&str>).map_err(|e| format!("no program opens {uri}: {e}"))
}
