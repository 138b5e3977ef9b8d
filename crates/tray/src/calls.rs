//! The window's calls, answered by the engine: each is one engine call (or
//! one desktop hand-over), its result serialized for the page. Keyring and
//! file work blocks, so those run on the blocking pool.

use crate::desktop::{self, Autostart};
use lamplighter_desktop_link::{Call, Reply};
use lamplighter_engine::{Engine, ErrorReport};
use serde_json::Value;

/// An engine action started from the tray menu or a notification.
pub(crate) type EngineFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), lamplighter_engine::EngineError>> + Send>>;

fn report(code: &str, message: impl Into<String>) -> ErrorReport {
    ErrorReport { code: code.into(), message: message.into(), fields: Vec::new() }
}

fn json<T: serde::Serialize>(value: T) -> Reply {
    serde_json::to_value(value).map_err(|e| report("internal", e.to_string()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ErrorReport> {
    tokio::task::spawn_blocking(f).await.map_err(|e| report("internal", e.to_string()))
}

fn autostart() -> Result<Autostart, ErrorReport> {
    let exe = std::env::current_exe().map_err(|e| report("autostart_failed", e.to_string()))?;
    Autostart::standard(exe).ok_or_else(|| report("autostart_failed", "neither XDG_CONFIG_HOME nor HOME is set"))
}

/// Answers one call. `TakeFocus` belongs to the window state and is
/// answered by the tray's loop before it gets here.
pub(crate) async fn answer(engine: Engine, call: Call) -> Reply {
    let unit = |r: Result<(), lamplighter_engine::EngineError>| r.map(|()| Value::Null).map_err(|e| e.to_report());
    match call {
        Call::Snapshot => json(engine.snapshot()),
        Call::Lists => json(engine.lists()),
        Call::UiStrings => Ok(serde_json::json!({
            "lang": format!("{:?}", engine.lang()).to_lowercase(),
            "strings": lamplighter_view::ui_strings(engine.lang()),
        })),
        Call::TakeFocus => Ok(Value::Null),
        Call::SettingsView => blocking(move || engine.settings_view()).await.and_then(json),
        Call::SaveSettings { update } => {
            blocking(move || engine.save_settings(*update)).await?.map_err(|e| e.to_report()).and_then(json)
        }
        Call::Play { item_id } => unit(engine.play(&item_id).await),
        Call::PausePlayback { paused } => {
            engine.pause_playback(paused);
            Ok(Value::Null)
        }
        Call::StopPlayback => {
            engine.stop_playback();
            Ok(Value::Null)
        }
        Call::MarkHeard { item_id } => unit(engine.mark_heard(&item_id).await),
        Call::MarkCallSeen { item_id } => unit(engine.mark_call_seen(&item_id).await),
        Call::CallBack { uri } => blocking(move || desktop::call_back(&uri))
            .await?
            .map(|()| Value::Null)
            .map_err(|m| report("call_back_failed", m)),
        Call::OpenInDefaultPlayer { item_id } => {
            let path = engine.audio_file(&item_id).await.map_err(|e| e.to_report())?;
            blocking(move || desktop::open_path(&path))
                .await?
                .map(|()| Value::Null)
                .map_err(|m| report("open_failed", m))
        }
        Call::ResendLamp => unit(engine.resend_lamp()),
        Call::RetryNow => unit(engine.retry_now()),
        Call::CheckSettings => json(engine.check().await),
        Call::SetNotificationsPaused { paused } => {
            engine.set_notifications_paused(paused);
            Ok(Value::Null)
        }
        Call::SignInMicrosoft => engine
            .browser_login(|_| {})
            .await
            .map_err(|e| e.to_report())
            .and_then(|g| json(lamplighter_engine::MicrosoftAccount::from(&g))),
        Call::SignOutMicrosoft => unit(engine.microsoft_logout().await),
        Call::Autostart => {
            let a = autostart()?;
            blocking(move || a.is_enabled()).await.and_then(json)
        }
        Call::SetAutostart { enabled } => {
            let a = autostart()?;
            blocking(move || a.set(enabled)).await?.map_err(|m| report("autostart_failed", m)).and_then(json)
        }
    }
}
