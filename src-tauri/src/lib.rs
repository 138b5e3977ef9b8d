//! The desktop shell: a tray icon, a window created on demand, and commands
//! that hand every action to the [`Engine`] in one line.
//!
//! No business logic lives here (it could not be tested without a display):
//! the shell opens the engine, renders its [`lamplighter_engine::Snapshot`]s
//! into the tray (`tray.rs`) and the window (`commands.rs`, events), and keeps
//! the process alive when the window closes. The window is destroyed, not
//! hidden, on close: that frees the webview (~125 MB).
//!
//! Start-up: with no mailbox configured, or with `--settings`, the settings
//! window opens; otherwise only the tray appears. A second launch hands its
//! arguments to the running instance (which opens the window) and exits.

mod actions;
mod commands;
mod notifications;
mod tray;
mod window;

use lamplighter_config::Paths;
use lamplighter_engine::{Engine, Options};
use tauri::{Manager, RunEvent, Runtime};

/// What the command line asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Launch {
    /// The default: tray only, unless no mailbox is configured.
    Tray,
    /// `--settings`: open the settings window.
    Settings,
    /// `--open`: open the main window.
    Window,
}

impl Launch {
    pub(crate) fn from_args<S: AsRef<str>>(args: &[S]) -> Launch {
        if args.iter().any(|a| a.as_ref() == "--settings") {
            Launch::Settings
        } else if args.iter().any(|a| a.as_ref() == "--open") {
            Launch::Window
        } else {
            Launch::Tray
        }
    }
}

/// Runs the tray app until the user quits.
pub fn run() {
    let paths = match Paths::standard() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("lamplighter: {e}");
            std::process::exit(1);
        }
    };
    match lamplighter_logfile::LogFile::open(&paths.state_dir, Default::default(), log::LevelFilter::Info) {
        Ok(log) => {
            let _ = log.with_stderr(cfg!(debug_assertions)).install();
        }
        Err(e) => eprintln!("lamplighter: cannot write the log in {}: {e}", paths.state_dir.display()),
    }
    let engine = Engine::open(Options::standard(paths));
    for problem in engine.snapshot().problems {
        eprintln!("lamplighter: {}", problem.message);
    }
    let args: Vec<String> = std::env::args().collect();
    let app = run_app(tauri::Builder::default(), engine, Launch::from_args(&args));
    if let Err(e) = app {
        eprintln!("lamplighter: cannot start the desktop app: {e}");
        std::process::exit(1);
    }
}

/// Keeps the live engine running as long as the app.
struct LiveEngine(#[allow(dead_code)] Option<lamplighter_engine::live::Live>);

/// Builds and runs the app on any Tauri runtime.
pub(crate) fn run_app<R: Runtime>(builder: tauri::Builder<R>, engine: Engine, launch: Launch) -> tauri::Result<()> {
    let app = builder
        // first, so a second instance exits before it builds anything
        .plugin(tauri_plugin_single_instance::init(|app, argv, _cwd| {
            log::info!("second launch: opening the window");
            window::open(app, Launch::from_args(&argv));
        }))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_autostart::init(tauri_plugin_autostart::MacosLauncher::LaunchAgent, None))
        .manage(engine)
        .manage(window::Focus::default())
        .on_window_event(|window, event| match event {
            tauri::WindowEvent::CloseRequested { .. } => log::info!("window {}: close requested", window.label()),
            tauri::WindowEvent::Destroyed => log::info!("window {}: destroyed", window.label()),
            _ => {}
        })
        .invoke_handler(tauri::generate_handler![
            commands::snapshot,
            commands::lists,
            commands::ui_strings,
            commands::take_focus,
            commands::settings_view,
            commands::save_settings,
            commands::play,
            commands::pause_playback,
            commands::stop_playback,
            commands::mark_heard,
            commands::mark_call_seen,
            commands::call_back,
            commands::open_in_default_player,
            commands::resend_lamp,
            commands::retry_now,
            commands::check_settings,
            commands::set_notifications_paused,
            commands::autostart,
            commands::set_autostart,
        ])
        .setup(move |app| {
            let engine = app.state::<Engine>().inner().clone();
            // Without a tray host (plain GNOME, a bare X session) there is no
            // icon to show: say so and fall back to the window, never crash.
            notifications::setup(app.handle(), &engine);
            let tray_shown = match tray::create(app.handle(), &engine) {
                Ok(()) => true,
                Err(e) => {
                    let message = format!(
                        "no system tray is available ({e}); Lamplighter shows its window instead. \
                         Install a StatusNotifierItem host (on GNOME: the AppIndicator extension)."
                    );
                    log::warn!("{message}");
                    eprintln!("lamplighter: {message}");
                    false
                }
            };
            let handle = app.handle().clone();
            engine.subscribe(move |snapshot| {
                tray::update(&handle, snapshot);
                window::publish(&handle, snapshot);
            });
            // the mailbox (or, with none configured, the labelled demo mailbox) goes live
            app.manage(LiveEngine(engine.start_live()));
            let launch = match launch {
                Launch::Tray if !engine.snapshot().mailbox_configured => Launch::Settings,
                Launch::Tray if !tray_shown => Launch::Window,
                other => other,
            };
            if launch != Launch::Tray {
                window::open(app.handle(), launch);
            }
            log::info!("started ({launch:?})");
            Ok(())
        })
        .build(tauri::generate_context!())?;
    app.run(|_app, event| {
        // A tray app lives on without windows; only Quit (an explicit exit code) ends it.
        if let RunEvent::ExitRequested { code: None, api, .. } = event {
            api.prevent_exit();
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Launch;

    #[test]
    fn launch_flags() {
        assert_eq!(Launch::from_args(&["lamplighter"]), Launch::Tray);
        assert_eq!(Launch::from_args(&["lamplighter", "--settings"]), Launch::Settings);
        assert_eq!(Launch::from_args(&["lamplighter", "--open"]), Launch::Window);
    }
}
