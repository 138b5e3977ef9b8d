//! Desktop notifications over the freedesktop D-Bus interface
//! (`notify-rust`): the engine decides what to raise (its `alerts` policy:
//! switches, pause, no storms); this module shows each alert with its
//! buttons and turns a click into an [`Action`]. The notification's own
//! click (the `default` action) opens the window on the item.

use crate::Action;
use lamplighter_desktop_link::Page;
use lamplighter_engine::{Alert, Engine};
use tokio::sync::mpsc::UnboundedSender;

/// What a button (or the notification itself) asks for.
pub(crate) fn action_for(alert: &Alert, action_id: &str) -> Option<Action> {
    let item = alert.item_id.clone();
    Some(match (action_id, item) {
        ("__closed", _) => return None,
        ("play", Some(id)) => Action::Play(id),
        ("mark-heard", Some(id)) => Action::MarkHeard(id),
        ("dismiss", Some(id)) => Action::MarkSeen(id),
        ("call-back", _) => Action::CallBack(alert.call_back.clone()?),
        (_, Some(id)) => Action::Open(Page::Inbox, Some(id)),
        _ => Action::Open(Page::Inbox, None),
    })
}

/// Shows every alert the engine raises, on `runtime`.
pub(crate) fn setup(engine: &Engine, runtime: tokio::runtime::Handle, actions: UnboundedSender<Action>) {
    let open_label = lamplighter_view::menu_text(engine.lang()).open;
    engine.subscribe_alerts(move |alert| {
        let alert = alert.clone();
        let actions = actions.clone();
        let open_label = open_label.clone();
        runtime.spawn(async move { show(alert, &open_label, actions).await });
    });
}

async fn show(alert: Alert, open_label: &str, actions: UnboundedSender<Action>) {
    let mut n = notify_rust::Notification::new();
    n.appname("Lamplighter").summary(&alert.title).body(&alert.body).icon("lamplighter");
    n.action("default", open_label);
    for a in &alert.actions {
        n.action(&a.id, &a.label);
    }
    let handle = match n.show_async().await {
        Ok(h) => h,
        Err(e) => {
            log::warn!("cannot show a notification: {e}");
            return;
        }
    };
    // waits until a button is pressed or the notification is closed
    handle
        .wait_for_action_async(|response| {
            let id = match response {
                notify_rust::NotificationResponse::Default => "default",
                notify_rust::NotificationResponse::Action(id) => id.as_str(),
                _ => "__closed",
            };
            log::info!("notification action {id} on {:?}", alert.item_id);
            if let Some(action) = action_for(&alert, id) {
                let _ = actions.send(action);
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use lamplighter_engine::AlertKind;

    fn alert(item: Option<&str>, call_back: Option<&str>) -> Alert {
        Alert {
            id: 1,
            kind: AlertKind::MissedCall,
            item_id: item.map(str::to_string),
            call_back: call_back.map(str::to_string),
            title: "Missed call".into(),
            body: String::new(),
            actions: Vec::new(),
        }
    }

    #[test]
    fn each_button_becomes_its_action() {
        let a = alert(Some("AAMk1"), Some("tel:+49301234567"));
        assert_eq!(action_for(&a, "play"), Some(Action::Play("AAMk1".into())));
        assert_eq!(action_for(&a, "mark-heard"), Some(Action::MarkHeard("AAMk1".into())));
        assert_eq!(action_for(&a, "dismiss"), Some(Action::MarkSeen("AAMk1".into())));
        assert_eq!(action_for(&a, "call-back"), Some(Action::CallBack("tel:+49301234567".into())));
        assert_eq!(action_for(&a, "default"), Some(Action::Open(Page::Inbox, Some("AAMk1".into()))));
        assert_eq!(action_for(&a, "__closed"), None, "closing is not a click");
        let summary = alert(None, None);
        assert_eq!(action_for(&summary, "default"), Some(Action::Open(Page::Inbox, None)));
        assert_eq!(action_for(&summary, "call-back"), None, "no number, no call");
    }
}
