//! The window as a process the tray starts on demand (`lamplighter-window`,
//! next to this binary): at most one, which connects back over the desktop
//! link; closing it ends the process and gives WebKit's memory back. An
//! open window is brought to the front instead of starting another. An item
//! to show (from a notification) is kept until the page asks for it, so a
//! window that is still loading gets it too.

use lamplighter_desktop_link::{Page, ToWindow};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// The window process's binary: `$LAMPLIGHTER_WINDOW`, else beside this one.
pub(crate) fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LAMPLIGHTER_WINDOW").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("lamplighter"));
    exe.with_file_name("lamplighter-window")
}

/// The one window's state, as the tray's loop sees it.
#[derive(Default)]
pub(crate) struct Windows {
    attached: Option<(u64, mpsc::Sender<ToWindow>)>,
    /// A window process started by us that has not attached yet.
    starting: Option<u32>,
    /// The page a starting window should show once it attaches.
    wanted: Option<Page>,
    focus: Option<String>,
}

/// What [`Windows::open`] wants the caller to do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opening {
    /// Start a window process on this page.
    Start(Page),
    /// Nothing more: the window was told, or one is starting.
    Done,
}

impl Windows {
    /// Opens (or fronts) the window on `page`, showing `item` if given.
    pub(crate) fn open(&mut self, page: Page, item: Option<String>) -> Opening {
        if item.is_some() {
            self.focus = item.clone();
        }
        if let Some((_, pushes)) = &self.attached {
            let _ = pushes.try_send(ToWindow::Show { page });
            if let Some(item_id) = item {
                let _ = pushes.try_send(ToWindow::FocusItem { item_id });
            }
            return Opening::Done;
        }
        if self.starting.is_some() {
            self.wanted = Some(page);
            return Opening::Done;
        }
        Opening::Start(page)
    }

    /// A window process was started (its pid).
    pub(crate) fn started(&mut self, pid: u32) {
        self.starting = Some(pid);
        self.wanted = None;
    }

    /// A window process ended (whether or not it ever attached).
    pub(crate) fn exited(&mut self, pid: u32) {
        if self.starting == Some(pid) {
            self.starting = None;
        }
    }

    /// A window connected. A second one (started by hand) is told to close
    /// at once: there is one window.
    pub(crate) fn attached(&mut self, conn: u64, pushes: mpsc::Sender<ToWindow>) -> bool {
        if self.attached.is_some() {
            return false;
        }
        self.starting = None;
        if let Some(page) = self.wanted.take() {
            let _ = pushes.try_send(ToWindow::Show { page });
        }
        self.attached = Some((conn, pushes));
        true
    }

    /// A window's connection ended.
    pub(crate) fn detached(&mut self, conn: u64) {
        if self.attached.as_ref().is_some_and(|(c, _)| *c == conn) {
            self.attached = None;
        }
    }

    /// Whether a window is open.
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.attached.is_some()
    }

    /// Sends a push to the open window, if any.
    pub(crate) fn push(&self, message: ToWindow) {
        if let Some((_, pushes)) = &self.attached {
            let _ = pushes.try_send(message);
        }
    }

    /// The item the page should show, once.
    pub(crate) fn take_focus(&mut self) -> Option<String> {
        self.focus.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_window_is_started_and_then_only_told() {
        let mut w = Windows::default();
        assert_eq!(w.open(Page::Inbox, None), Opening::Start(Page::Inbox));
        w.started(41);
        assert_eq!(w.open(Page::Settings, None), Opening::Done, "one is starting");
        let (tx, mut rx) = mpsc::channel(8);
        assert!(w.attached(1, tx));
        assert_eq!(rx.try_recv().ok(), Some(ToWindow::Show { page: Page::Settings }), "the later wish wins");
        assert_eq!(w.open(Page::Inbox, Some("AAMk1".into())), Opening::Done);
        assert_eq!(rx.try_recv().ok(), Some(ToWindow::Show { page: Page::Inbox }));
        assert_eq!(rx.try_recv().ok(), Some(ToWindow::FocusItem { item_id: "AAMk1".into() }));
        assert_eq!(w.take_focus().as_deref(), Some("AAMk1"));
        assert_eq!(w.take_focus(), None, "once");
        let (other, _) = mpsc::channel(8);
        assert!(!w.attached(2, other), "a second window is refused");
        w.detached(2);
        assert!(w.is_open(), "the refused one's end changes nothing");
        w.detached(1);
        assert!(!w.is_open());
        assert_eq!(w.open(Page::Inbox, None), Opening::Start(Page::Inbox));
    }

    #[test]
    fn a_window_that_dies_before_attaching_can_be_started_again() {
        let mut w = Windows::default();
        assert_eq!(w.open(Page::Inbox, Some("x".into())), Opening::Start(Page::Inbox));
        w.started(7);
        w.exited(7);
        assert_eq!(w.open(Page::Inbox, None), Opening::Start(Page::Inbox));
        assert_eq!(w.take_focus().as_deref(), Some("x"), "the item waits for the next window");
    }
}
