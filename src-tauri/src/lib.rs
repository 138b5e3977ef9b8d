//! The window process: Tauri and WebKit, alive only while the window is
//! open. The tray process (`lamplighter`) owns the engine; this process
//! connects to it over the desktop link, renders the snapshots it pushes,
//! and forwards every call the page makes (`invoke('mark_heard', …)`) as a
//! typed [`Call`]. No business logic lives here.
//!
//! Closing the window ends the process, which gives WebKit's memory back
//! (its web and network processes end with it). When the tray quits, the
//! link closes and so does the window. Started without a running tray (by
//! hand, or by a WebDriver test), it starts one (`lamplighter --tray-only`)
//! and waits for its socket.
//!
//! Pages: `--page settings|inbox` (the tray passes it); `--settings` and
//! `--open` are the same words the tray takes; with none, the settings page
//! when no mailbox is configured, else the inbox.

mod window;

use lamplighter_config::Paths;
use lamplighter_desktop_link::{Call, Client, Page, Push, socket_path};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a tray started by this window may take to open its socket.
const TRAY_START: Duration = Duration::from_secs(60);

/// The page the command line asks for, if any.
fn page_from_args<S: AsRef<str>>(args: &[S]) -> Option<Page> {
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(a) = it.next() {
        match a {
            "--settings" => return Some(Page::Settings),
            "--open" => return Some(Page::Inbox),
            "--page" => {
                if let Some(page) = it.next().and_then(Page::from_name) {
                    return Some(page);
                }
            }
            _ => {}
        }
    }
    None
}

/// Connects to the tray; starts one when none answers.
async fn connect(socket: &Path) -> Result<(Client, tokio::sync::mpsc::Receiver<Push>), String> {
    if let Ok(link) = Client::connect(socket).await {
        return Ok(link);
    }
    let tray = std::env::current_exe()
        .map(|exe| exe.with_file_name("lamplighter"))
        .map_err(|e| format!("cannot find the tray binary: {e}"))?;
    log::info!("no tray is running: starting {} --tray-only", tray.display());
    let mut child = std::process::Command::new(&tray)
        .arg("--tray-only")
        .spawn()
        .map_err(|e| format!("cannot start the tray ({}): {e}", tray.display()))?;
    let end = Instant::now() + TRAY_START;
    loop {
        match Client::connect(socket).await {
            Ok(link) => return Ok(link),
            Err(e) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("the tray ended before it answered ({status})"));
                }
                if Instant::now() > end {
                    return Err(format!("the tray did not answer within {} s: {e}", TRAY_START.as_secs()));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the window until it is closed; the process's exit code.
pub fn run() -> i32 {
    let paths = match Paths::standard() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lamplighter-window: {e}");
            return 1;
        }
    };
    match lamplighter_logfile::LogFile::open_named(
        &paths.state_dir,
        "window.log",
        Default::default(),
        log::LevelFilter::Info,
    ) {
        Ok(log) => {
            let _ = log.with_stderr(cfg!(debug_assertions)).install();
        }
        Err(e) => eprintln!("lamplighter-window: cannot write the log in {}: {e}", paths.state_dir.display()),
    }
    let args: Vec<String> = std::env::args().collect();
    let socket = socket_path(&paths);
    let (client, pushes) = match tauri::async_runtime::block_on(connect(&socket)) {
        Ok(link) => link,
        Err(e) => {
            log::error!("{e}");
            eprintln!("lamplighter-window: {e}");
            return 1;
        }
    };
    let page = match page_from_args(&args) {
        Some(p) => p,
        None => {
            let configured = tauri::async_runtime::block_on(client.call(Call::Snapshot))
                .ok()
                .and_then(Result::ok)
                .and_then(|s| s.get("mailbox_configured").and_then(serde_json::Value::as_bool));
            if configured == Some(false) { Page::Settings } else { Page::Inbox }
        }
    };
    match window::run_app(tauri::Builder::default(), client, pushes, page) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("lamplighter-window: cannot open the window: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_from_the_command_line() {
        assert_eq!(page_from_args(&["lamplighter-window"]), None);
        assert_eq!(page_from_args(&["lamplighter-window", "--settings"]), Some(Page::Settings));
        assert_eq!(page_from_args(&["lamplighter-window", "--open"]), Some(Page::Inbox));
        assert_eq!(page_from_args(&["lamplighter-window", "--page", "settings"]), Some(Page::Settings));
        assert_eq!(page_from_args(&["lamplighter-window", "--page", "inbox"]), Some(Page::Inbox));
        assert_eq!(page_from_args(&["lamplighter-window", "--page"]), None);
    }
}
