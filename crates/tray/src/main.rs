//! `lamplighter`, the desktop app's process that runs all day: the engine,
//! the tray icon (KSNI), notifications with actions and playback, and no
//! WebKit. The window is a second process (`lamplighter-window`) started
//! when the user opens it and ended when they close it; it renders what this
//! process pushes over the desktop link and sends every action back.
//!
//! Start-up: with no mailbox configured, or with `--settings`, the settings
//! window opens; with `--open`, the inbox; otherwise only the tray appears
//! (or, without a tray host, the window). A second launch hands its request
//! to the running instance over the link and exits. `--tray-only` is how a
//! window started by hand starts its tray: no window of its own.
//!
//! It ends on Quit, SIGTERM/SIGINT, or when the session bus closes (the
//! desktop session ended); the mailbox run is stopped cleanly first.

mod calls;
mod desktop;
mod icon;
mod notifications;
mod window;

use futures_util::StreamExt;
use ksni::TrayMethods;
use lamplighter_config::Paths;
use lamplighter_desktop_link::{self as link, Incoming, LinkError, Page, ToWindow};
use lamplighter_engine::{Engine, Options};
use std::process::ExitCode;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use window::{Opening, Windows};

/// What the command line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// The default: tray only, unless no mailbox is configured.
    Tray,
    /// `--settings`: open the settings window.
    Settings,
    /// `--open`: open the main window.
    Window,
    /// `--tray-only`: started by a window; never opens one itself.
    TrayOnly,
}

impl Launch {
    fn from_args<S: AsRef<str>>(args: &[S]) -> Launch {
        let has = |flag: &str| args.iter().any(|a| a.as_ref() == flag);
        if has("--tray-only") {
            Launch::TrayOnly
        } else if has("--settings") {
            Launch::Settings
        } else if has("--open") {
            Launch::Window
        } else {
            Launch::Tray
        }
    }
}

/// What the tray menu, the notifications and the window's process ask of the loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Open the window on a page, showing an item.
    Open(Page, Option<String>),
    /// Open the window on the voicemail and play it.
    Play(String),
    /// Mark a voicemail heard.
    MarkHeard(String),
    /// Mark a missed call seen.
    MarkSeen(String),
    /// Hand a URI to the softphone.
    CallBack(String),
    /// "Play latest voicemail".
    PlayLatest,
    /// "Resend lamp to phone".
    ResendLamp,
    /// "Pause notifications".
    TogglePause,
    /// "Quit".
    Quit,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let launch = Launch::from_args(&args);
    let paths = match Paths::standard() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lamplighter: {e}");
            return ExitCode::FAILURE;
        }
    };
    match lamplighter_logfile::LogFile::open(&paths.state_dir, Default::default(), log::LevelFilter::Info) {
        Ok(log) => {
            let _ = log.with_stderr(cfg!(debug_assertions)).install();
        }
        Err(e) => eprintln!("lamplighter: cannot write the log in {}: {e}", paths.state_dir.display()),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("lamplighter-tray")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("lamplighter: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let socket = link::socket_path(&paths);
    let listener = match runtime.block_on(bind_or_hand_over(&socket, launch)) {
        Ok(Some(l)) => l,
        Ok(None) => return ExitCode::SUCCESS,
        Err(code) => return code,
    };
    // Opened here, outside the runtime: the keyring's D-Bus handle blocks,
    // and its last reference is dropped here too, after the runtime.
    let engine = Engine::open(Options::standard(paths));
    let code = runtime.block_on(run(engine.clone(), listener, socket, launch));
    drop(runtime);
    drop(engine);
    code
}

/// The single-instance check: binds the socket, or hands the request to the
/// running instance (`Ok(None)`: nothing more to do).
async fn bind_or_hand_over(socket: &std::path::Path, launch: Launch) -> Result<Option<UnixListener>, ExitCode> {
    match link::bind(socket).await {
        Ok(l) => Ok(Some(l)),
        Err(LinkError::AlreadyRunning(_)) if launch == Launch::TrayOnly => Ok(None),
        Err(LinkError::AlreadyRunning(_)) => {
            let page = if launch == Launch::Settings { Page::Settings } else { Page::Inbox };
            match link::ask_to_open(socket, page).await {
                Ok(()) => {
                    log::info!("second launch: the running instance opens its window");
                    Ok(None)
                }
                Err(e) => {
                    eprintln!("lamplighter: {e}");
                    Err(ExitCode::FAILURE)
                }
            }
        }
        Err(e) => {
            eprintln!("lamplighter: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Waits until the session bus closes under us (the session ended).
/// Without a session bus this never happens.
async fn session_bus_closed() {
    let Ok(conn) = zbus::Connection::session().await else {
        return std::future::pending().await;
    };
    let mut messages = zbus::MessageStream::from(&conn);
    while let Some(m) = messages.next().await {
        if let Err(zbus::Error::InputOutput(_)) = m {
            break;
        }
    }
}

/// Starts a window process on `page`; its end is reported on `exits`.
fn start_window(windows: &mut Windows, page: Page, exits: &mpsc::UnboundedSender<u32>) {
    let bin = window::binary();
    let page_arg = page.name();
    match tokio::process::Command::new(&bin).args(["--page", page_arg]).spawn() {
        Ok(mut child) => {
            let pid = child.id().unwrap_or_default();
            log::info!("window process {pid} started ({page_arg})");
            windows.started(pid);
            let exits = exits.clone();
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(status) if status.success() => log::info!("window process {pid} ended"),
                    Ok(status) => log::warn!("window process {pid} ended: {status}"),
                    Err(e) => log::warn!("window process {pid}: {e}"),
                }
                let _ = exits.send(pid);
            });
        }
        Err(e) => {
            let message = format!("cannot open the window ({}: {e})", bin.display());
            log::error!("{message}");
            eprintln!("lamplighter: {message}");
        }
    }
}

async fn run(engine: Engine, listener: UnixListener, socket: std::path::PathBuf, launch: Launch) -> ExitCode {
    for problem in engine.snapshot().problems {
        eprintln!("lamplighter: {}", problem.message);
    }
    let (actions_tx, mut actions) = mpsc::unbounded_channel();
    notifications::setup(&engine, tokio::runtime::Handle::current(), actions_tx.clone());
    let (snap_tx, mut snapshots) = watch::channel(engine.snapshot());
    engine.subscribe(move |s| {
        snap_tx.send_replace(s.clone());
    });
    let tray = icon::TrayIcon::new(engine.snapshot(), lamplighter_view::menu_text(engine.lang()), actions_tx.clone());
    // Without a tray host (plain GNOME, a bare X session) there is no icon
    // to show: say so and fall back to the window, never crash.
    let tray = match tray.spawn().await {
        Ok(handle) => Some(handle),
        Err(e) => {
            let message = format!(
                "no system tray is available ({e}); Lamplighter shows its window instead. \
                 Install a StatusNotifierItem host (on GNOME: the AppIndicator extension)."
            );
            log::warn!("{message}");
            eprintln!("lamplighter: {message}");
            None
        }
    };
    // the mailbox (or, with none configured, the labelled demo mailbox) goes live
    let live = engine.start_live();
    let mut windows = Windows::default();
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let first = match launch {
        Launch::TrayOnly => None,
        Launch::Settings => Some(Page::Settings),
        Launch::Window => Some(Page::Inbox),
        Launch::Tray if !engine.snapshot().mailbox_configured => Some(Page::Settings),
        Launch::Tray if tray.is_none() => Some(Page::Inbox),
        Launch::Tray => None,
    };
    if let Some(page) = first {
        start_window(&mut windows, page, &exits_tx);
    }
    log::info!("started ({launch:?}), listening on {}", socket.display());

    let (incoming_tx, mut incoming) = mpsc::channel::<Incoming>(64);
    let mut next_conn = 0u64;
    let bus_closed = session_bus_closed();
    tokio::pin!(bus_closed);
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => Some(s),
        Err(e) => {
            log::warn!("no SIGTERM handler: {e}");
            None
        }
    };
    let mut accept_failures = 0u32;
    loop {
        tokio::select! {
            accepted = link::accept(&listener) => match accepted {
                Ok(stream) => {
                    accept_failures = 0;
                    next_conn += 1;
                    let (conn, tx) = (next_conn, incoming_tx.clone());
                    tokio::spawn(async move {
                        if let Err(e) = link::serve_connection(stream, conn, tx).await {
                            log::warn!("desktop link: {e}");
                        }
                    });
                }
                Err(e) => {
                    // e.g. out of file descriptors: back off instead of spinning
                    accept_failures += 1;
                    log::warn!("desktop link: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50 << accept_failures.min(6))).await;
                }
            },
            Some(m) = incoming.recv() => match m {
                Incoming::WindowAttached { conn, pid, pushes } => {
                    if windows.attached(conn, pushes.clone()) {
                        log::info!("window process {pid} attached");
                        windows.push(ToWindow::Snapshot { snapshot: Box::new(snapshots.borrow().clone()) });
                    } else {
                        log::info!("window process {pid}: a window is open already; it closes");
                        let _ = pushes.try_send(ToWindow::Close);
                    }
                }
                Incoming::WindowDetached { conn } => windows.detached(conn),
                Incoming::Call { call: link::Call::TakeFocus, reply } => {
                    let _ = reply.send(Ok(serde_json::json!(windows.take_focus())));
                }
                Incoming::Call { call, reply } => {
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(calls::answer(engine, call).await);
                    });
                }
                Incoming::Open { page } => {
                    log::info!("second launch: opening the window");
                    if windows.open(page, None) == Opening::Start(page) {
                        start_window(&mut windows, page, &exits_tx);
                    }
                }
            },
            Some(action) = actions.recv() => {
                if action == Action::Quit {
                    log::info!("quit from the tray menu");
                    break;
                }
                act(&engine, &mut windows, action, &exits_tx);
            }
            Ok(()) = snapshots.changed() => {
                let s = snapshots.borrow_and_update().clone();
                if let Some(t) = &tray {
                    let shown = s.clone();
                    t.update(move |icon| icon.snapshot = shown).await;
                }
                windows.push(ToWindow::Snapshot { snapshot: Box::new(s) });
            }
            Some(pid) = exits.recv() => windows.exited(pid),
            Some(()) = async { match terminate.as_mut() { Some(t) => t.recv().await, None => std::future::pending().await } } => {
                log::info!("SIGTERM: quitting");
                break;
            }
            _ = tokio::signal::ctrl_c() => {
                log::info!("SIGINT: quitting");
                break;
            }
            () = &mut bus_closed => {
                log::info!("the session bus closed: the desktop session ended");
                break;
            }
        }
    }
    windows.push(ToWindow::Close);
    let _ = std::fs::remove_file(&socket);
    if let Some(live) = live {
        live.stop().await;
    }
    if let Some(t) = tray {
        t.shutdown().await;
    }
    ExitCode::SUCCESS
}

/// Carries out a tray menu or notification action.
fn act(engine: &Engine, windows: &mut Windows, action: Action, exits: &mpsc::UnboundedSender<u32>) {
    let open = |windows: &mut Windows, page: Page, item: Option<String>| {
        if let Opening::Start(page) = windows.open(page, item) {
            start_window(windows, page, exits);
        }
    };
    let spawn = |what: &'static str, id: String, f: fn(Engine, String) -> calls::EngineFuture| {
        let engine = engine.clone();
        tokio::spawn(async move {
            if let Err(e) = f(engine, id.clone()).await {
                log::warn!("{what} {id}: {e}");
            }
        });
    };
    match action {
        Action::Open(page, item) => open(windows, page, item),
        Action::Play(id) => {
            open(windows, Page::Inbox, Some(id.clone()));
            spawn("play", id, |e, id| Box::pin(async move { e.play(&id).await }));
        }
        Action::PlayLatest => match engine.latest_voicemail() {
            Some(id) => act(engine, windows, Action::Play(id), exits),
            None => open(windows, Page::Inbox, None),
        },
        Action::MarkHeard(id) => spawn("mark heard", id, |e, id| Box::pin(async move { e.mark_heard(&id).await })),
        Action::MarkSeen(id) => spawn("mark seen", id, |e, id| Box::pin(async move { e.mark_call_seen(&id).await })),
        Action::CallBack(uri) => {
            tokio::task::spawn_blocking(move || {
                if let Err(e) = desktop::call_back(&uri) {
                    log::warn!("{e}");
                }
            });
        }
        Action::ResendLamp => {
            if let Err(e) = engine.resend_lamp() {
                log::warn!("resend lamp: {e}");
            }
        }
        Action::TogglePause => {
            let paused = !engine.snapshot().notifications_paused;
            engine.set_notifications_paused(paused);
        }
        Action::Quit => {}
    }
}

#[cfg(test)]
mod tests {
    use super::Launch;

    #[test]
    fn launch_flags() {
        assert_eq!(Launch::from_args(&["lamplighter"]), Launch::Tray);
        assert_eq!(Launch::from_args(&["lamplighter", "--settings"]), Launch::Settings);
        assert_eq!(Launch::from_args(&["lamplighter", "--open"]), Launch::Window);
        assert_eq!(Launch::from_args(&["lamplighter", "--settings", "--tray-only"]), Launch::TrayOnly);
    }
}
