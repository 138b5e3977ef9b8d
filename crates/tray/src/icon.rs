//! The tray icon as a StatusNotifierItem (KSNI, over D-Bus; no GTK): the
//! engine's snapshot drawn as a badge (grey when the mailbox is not
//! connected, an amber dot when a phone refuses the lamp) and said in the
//! tooltip; a menu with the counts, "Play latest voicemail", "Resend lamp to
//! phone", "Pause notifications", Open, Settings and Quit, in the user's
//! language. A click opens the window. Every item becomes one [`Action`].

use crate::Action;
use lamplighter_desktop_link::Page;
use lamplighter_engine::Snapshot;
use lamplighter_view::MenuText;
use tokio::sync::mpsc::UnboundedSender;

/// Icon size sent to the tray; panels scale it.
const ICON_SIZE: u32 = 32;

/// What the icon shows, and where its clicks go.
pub(crate) struct TrayIcon {
    pub(crate) snapshot: Snapshot,
    text: MenuText,
    actions: UnboundedSender<Action>,
}

impl TrayIcon {
    pub(crate) fn new(snapshot: Snapshot, text: MenuText, actions: UnboundedSender<Action>) -> Self {
        TrayIcon { snapshot, text, actions }
    }

    fn send(&self, action: Action) {
        let _ = self.actions.send(action);
    }
}

/// One line: KSNI hosts show only the first line of a tooltip.
pub(crate) fn tooltip(snapshot: &Snapshot) -> String {
    let mut t = format!("Lamplighter: {}", snapshot.tooltip);
    if let Some(p) = snapshot.problems.first() {
        t.push_str(&format!(" — {}", p.message));
    }
    t
}

fn item(label: &str, enabled: bool, action: Action) -> ksni::MenuItem<TrayIcon> {
    ksni::menu::StandardItem {
        label: label.replace('_', "__"),
        enabled,
        activate: Box::new(move |t: &mut TrayIcon| t.send(action.clone())),
        ..Default::default()
    }
    .into()
}

impl ksni::Tray for TrayIcon {
    fn id(&self) -> String {
        "lamplighter".into()
    }

    fn title(&self) -> String {
        "Lamplighter".into()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        let icon = lamplighter_badge::render_state(self.snapshot.badge, ICON_SIZE, self.snapshot.health);
        vec![ksni::Icon { width: icon.width as i32, height: icon.height as i32, data: icon.to_argb32_be() }]
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip { title: String::new(), description: tooltip(&self.snapshot), ..Default::default() }
    }

    fn activate(&mut self, _x: i32, _y: i32) {
        self.send(Action::Open(Page::Inbox, None));
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        let s = &self.snapshot;
        let t = &self.text;
        vec![
            item(&s.summary_text, false, Action::Open(Page::Inbox, None)),
            ksni::MenuItem::Separator,
            item(&t.play_latest, s.counts.voicemails > 0 || s.connection.is_some(), Action::PlayLatest),
            item(&t.resend_lamp, true, Action::ResendLamp),
            ksni::menu::CheckmarkItem {
                label: t.pause_notifications.replace('_', "__"),
                checked: s.notifications_paused,
                activate: Box::new(|t: &mut TrayIcon| t.send(Action::TogglePause)),
                ..Default::default()
            }
            .into(),
            ksni::MenuItem::Separator,
            item(&t.open, true, Action::Open(Page::Inbox, None)),
            item(&t.settings, true, Action::Open(Page::Settings, None)),
            ksni::MenuItem::Separator,
            item(&t.quit, true, Action::Quit),
        ]
    }

    fn watcher_offline(&self, reason: ksni::OfflineReason) -> bool {
        // a panel restarting: keep running, the icon comes back with it
        log::warn!("the tray host went away ({reason:?}); waiting for it to come back");
        true
    }
}
