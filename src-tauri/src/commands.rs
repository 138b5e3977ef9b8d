//! The commands the window calls. Each is one call into the [`Engine`] (or
//! a plugin); keyring access blocks on D-Bus, so those engine calls run off
//! the main thread. Errors reach the window as `{code, message, fields}`.

use crate::window::Focus;
use lamplighter_engine::{CheckStep, Engine, ErrorReport, Lists, SettingsUpdate, SettingsView, Snapshot};
use tauri::{AppHandle, Runtime, State};
use tauri_plugin_autostart::ManagerExt;
use tauri_plugin_opener::OpenerExt;

/// Runs an engine call on the blocking pool.
async fn blocking<T: Send + 'static>(engine: &Engine, f: impl FnOnce(Engine) -> T + Send + 'static) -> T {
    let engine = engine.clone();
    match tauri::async_runtime::spawn_blocking(move || f(engine)).await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(Box::new(e.to_string())),
    }
}

fn report(code: &str, message: impl Into<String>) -> ErrorReport {
    ErrorReport { code: code.into(), message: message.into(), fields: Vec::new() }
}

#[tauri::command]
pub(crate) fn snapshot(engine: State<'_, Engine>) -> Snapshot {
    engine.snapshot()
}

#[tauri::command]
pub(crate) fn lists(engine: State<'_, Engine>) -> Lists {
    engine.lists()
}

#[tauri::command]
pub(crate) fn ui_strings(engine: State<'_, Engine>) -> serde_json::Value {
    serde_json::json!({
        "lang": format!("{:?}", engine.lang()).to_lowercase(),
        "strings": lamplighter_view::ui_strings(engine.lang()),
    })
}

/// The item a notification asked the window to show, once.
#[tauri::command]
pub(crate) fn take_focus(focus: State<'_, Focus>) -> Option<String> {
    focus.0.lock().unwrap_or_else(|p| p.into_inner()).take()
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

#[tauri::command]
pub(crate) async fn play(item_id: String, engine: State<'_, Engine>) -> Result<(), ErrorReport> {
    engine.play(&item_id).await.map_err(|e| e.to_report())
}

#[tauri::command]
pub(crate) fn pause_playback(paused: bool, engine: State<'_, Engine>) {
    engine.pause_playback(paused)
}

#[tauri::command]
pub(crate) fn stop_playback(engine: State<'_, Engine>) {
    engine.stop_playback()
}

#[tauri::command]
pub(crate) async fn mark_heard(item_id: String, engine: State<'_, Engine>) -> Result<(), ErrorReport> {
    engine.mark_heard(&item_id).await.map_err(|e| e.to_report())
}

#[tauri::command]
pub(crate) async fn mark_call_seen(item_id: String, engine: State<'_, Engine>) -> Result<(), ErrorReport> {
    engine.mark_call_seen(&item_id).await.map_err(|e| e.to_report())
}

#[tauri::command]
pub(crate) fn call_back<R: Runtime>(uri: String, app: AppHandle<R>) -> Result<(), ErrorReport> {
    crate::actions::call_back(&app, &uri).map_err(|m| report("call_back_failed", m))
}

/// "Open in the default player": the cached file, handed to the desktop.
#[tauri::command]
pub(crate) async fn open_in_default_player<R: Runtime>(
    item_id: String,
    app: AppHandle<R>,
    engine: State<'_, Engine>,
) -> Result<(), ErrorReport> {
    let path = engine.audio_file(&item_id).await.map_err(|e| e.to_report())?;
    app.opener()
        .open_path(path.display().to_string(), None::<&str>)
        .map_err(|e| report("open_failed", format!("no program opens {}: {e}", path.display())))
}

#[tauri::command]
pub(crate) fn resend_lamp(engine: State<'_, Engine>) -> Result<(), ErrorReport> {
    engine.resend_lamp().map_err(|e| e.to_report())
}

#[tauri::command]
pub(crate) fn retry_now(engine: State<'_, Engine>) -> Result<(), ErrorReport> {
    engine.retry_now().map_err(|e| e.to_report())
}

#[tauri::command]
pub(crate) async fn check_settings(engine: State<'_, Engine>) -> Result<Vec<CheckStep>, ErrorReport> {
    let engine = engine.inner().clone();
    Ok(engine.check().await)
}

#[tauri::command]
pub(crate) fn set_notifications_paused(paused: bool, engine: State<'_, Engine>) {
    engine.set_notifications_paused(paused)
}

#[tauri::command]
pub(crate) fn autostart<R: Runtime>(app: AppHandle<R>) -> Result<bool, ErrorReport> {
    app.autolaunch().is_enabled().map_err(|e| report("autostart_failed", e.to_string()))
}

#[tauri::command]
pub(crate) fn set_autostart<R: Runtime>(enabled: bool, app: AppHandle<R>) -> Result<bool, ErrorReport> {
    let a = app.autolaunch();
    let r = if enabled { a.enable() } else { a.disable() };
    r.map_err(|e| report("autostart_failed", e.to_string()))?;
    a.is_enabled().map_err(|e| report("autostart_failed", e.to_string()))
}
