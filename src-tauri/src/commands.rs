//! The commands the window calls. Each is one call into the [`Engine`];
//! keyring access blocks on D-Bus, so engine calls run off the main thread.
//! Errors reach the window as `{code, message, fields}`.

use lamplighter_engine::{Engine, ErrorReport, SettingsUpdate, SettingsView, Snapshot};
use tauri::State;

/// Runs an engine call on the blocking pool.
async fn blocking<T: Send + 'static>(engine: &Engine, f: impl FnOnce(Engine) -> T + Send + 'static) -> T {
    let engine = engine.clone();
    match tauri::async_runtime::spawn_blocking(move || f(engine)).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(Box::new(e.to_string())),
    }
}

#[tauri::command]
pub(crate) fn snapshot(engine: State<'_, Engine>) -> Snapshot {
    engine.snapshot()
}

#[tauri::command]
pub(crate) async fn settings_view(engine: State<'_, Engine>) -> Result<SettingsView, ErrorReport> {
    Ok(blocking(&engine, |e| e.settings_view()).await)
}

#[tauri::command]
pub(crate) async fn save_settings(
    update: SettingsUpdate,
    engine: State<'_, Engine>,
) -> Result<SettingsView, ErrorReport> {
    blocking(&engine, move |e| e.save_settings(update).map_err(|err| err.to_report())).await
}
