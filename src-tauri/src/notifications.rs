//! Desktop notifications through tauri-plugin-notification (notify-rust on
//! Linux, actions reported): the engine decides what to raise (its
//! `alerts` policy: switches, pause, no storms); this module shows each
//! alert with its buttons and turns a click into the engine action.
//!
//! The plugin adds an implicit default action (`tap`, a click on the
//! notification itself): it opens the window on the item.

use crate::{Launch, actions, window};
use lamplighter_engine::{Alert, AlertKind, Engine};
use tauri::{AppHandle, Runtime};
use tauri_plugin_notification::{Action, ActionPerformed, ActionType, NotificationExt};

fn action_type(id: &str, actions: Vec<(&'static str, String)>) -> ActionType {
    ActionType::builder(id)
        .actions(actions.into_iter().map(|(id, label)| Action::builder(id, label).build()).collect())
        .build()
}

/// Registers the buttons (in the user's language) and connects engine alerts to the desktop.
pub(crate) fn setup<R: Runtime>(app: &AppHandle<R>, engine: &Engine) {
    let lang = engine.lang();
    let n = app.notification();
    let types = vec![
        action_type("voicemail", lamplighter_view::voicemail_notification(lang, "", None, None).actions),
        action_type("missed_call", lamplighter_view::missed_call_notification(lang, "", 1).actions),
        action_type("summary", lamplighter_view::summary_notification(lang, 0, 0).actions),
    ];
    if let Err(e) = n.register_action_types(types) {
        log::warn!("notification actions: {e}");
    }
    let handle = app.clone();
    if let Err(e) = n.on_action(move |a| on_action(&handle, a)) {
        log::warn!("notification actions: {e}");
    }
    let handle = app.clone();
    engine.subscribe_alerts(move |alert| show(&handle, alert));
}

fn show<R: Runtime>(app: &AppHandle<R>, alert: &Alert) {
    let kind = match alert.kind {
        AlertKind::Voicemail => "voicemail",
        AlertKind::MissedCall => "missed_call",
        AlertKind::Summary => "summary",
    };
    let mut b = app
        .notification()
        .builder()
        .id(alert.id as i32)
        .title(&alert.title)
        .body(&alert.body)
        .action_type_id(kind)
        .extra("kind", kind);
    if let Some(item) = &alert.item_id {
        b = b.extra("item_id", item);
    }
    if let Some(uri) = &alert.call_back {
        b = b.extra("call_back", uri);
    }
    if let Err(e) = b.show() {
        log::warn!("cannot show a notification: {e}");
    }
}

fn on_action<R: Runtime>(app: &AppHandle<R>, a: &ActionPerformed) {
    let extra =
        |key: &str| a.notification().and_then(|n| n.extra().get(key)).and_then(|v| v.as_str()).map(str::to_string);
    let item = extra("item_id");
    log::info!("notification action {} on {:?}", a.action_id(), item);
    match (a.action_id(), item) {
        ("play", Some(id)) => actions::play(app, id),
        ("mark-heard", Some(id)) => actions::mark_heard(app, id),
        ("call-back", _) => {
            if let Some(uri) = extra("call_back")
                && let Err(e) = actions::call_back(app, &uri)
            {
                log::warn!("{e}");
            }
        }
        ("dismiss", Some(id)) => actions::mark_seen(app, id),
        (_, Some(id)) => window::open_on_item(app, &id),
        _ => window::open(app, Launch::Window),
    }
}
