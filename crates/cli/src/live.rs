//! `run`, `demo`, `status` and `check`: the engine's live mode and checks,
//! printed as lines of text or JSON. The agent holds no state of its own: it
//! renders what the engine reports, as the tray does. Without a mailbox the
//! engine runs the demo (the Exchange simulator and a demo phone in this
//! process, with a short story), so every feature can be watched without an
//! Exchange server or a desk phone.

use anyhow::bail;
use lamplighter_engine::{
    CheckStep, Connection, Engine, EngineError, Kind, LiveEvent, LiveOptions, Narration, RunEvent, Summary,
};
use std::sync::Arc;
use std::time::Duration;

/// How events are printed.
#[derive(Clone, Copy)]
pub(crate) struct Printer {
    pub json: bool,
}

impl Printer {
    /// One live event: mailbox and phone events on standard output (JSON
    /// lines with `--json`), the rest as words (on standard error with `--json`).
    pub(crate) fn live(&self, e: &LiveEvent) {
        match e {
            LiveEvent::Started { mailbox, demo_phone: None } => {
                self.say(&format!("Lamplighter agent: mailbox at {mailbox}"))
            }
            LiveEvent::Started { mailbox, demo_phone: Some(phone) } => {
                self.say(&format!("Demo mailbox: an Exchange simulator at {mailbox} (user mara), demo phone {phone}"))
            }
            LiveEvent::Run(e) => self.event(e),
            LiveEvent::Demo(Narration::Step(what)) => self.say(&format!("[demo] {what}")),
            LiveEvent::Demo(Narration::Lamp { on, line }) => {
                self.say(&format!("[demo phone] lamp {}: {line}", if *on { "ON" } else { "off" }))
            }
            LiveEvent::Parked(p) => self.say(&format!("cannot run: {}", p.message)),
        }
    }

    fn event(&self, e: &RunEvent) {
        if self.json {
            match serde_json::to_string(e) {
                Ok(line) => println!("{line}"),
                Err(err) => eprintln!("lamplighter-agent: cannot encode an event: {err}"),
            }
            return;
        }
        match e {
            RunEvent::State { summary, connection } => println!(
                "state: {} new voicemail(s), {} heard ({} urgent new), {} missed call(s), {} on others' behalf; {connection}",
                summary.voicemail.new,
                summary.voicemail.old,
                summary.voicemail.urgent_new,
                summary.missed_calls,
                summary.secondary_calls
            ),
            RunEvent::Notify(n) => println!(
                "notify: {} from {} at {}{}",
                match n.kind {
                    Kind::Voicemail => "voicemail",
                    Kind::MissedCall => "missed call",
                },
                n.from,
                n.at,
                n.preview.as_deref().map(|p| format!(": “{p}”")).unwrap_or_default()
            ),
            RunEvent::Mwi { phone, result, counts } => match counts {
                Some(c) => println!("lamp: {phone} shows {c} ({result})"),
                None => println!("lamp: {phone}: {result}"),
            },
            RunEvent::Subscribe { phone, code } => println!("lamp: SUBSCRIBE from {phone} answered {code}"),
            RunEvent::Listening { address, streams, serving_subscriptions: true } => {
                let all: Vec<&str> =
                    std::iter::once(address.as_str()).chain(streams.iter().map(String::as_str)).collect();
                println!("lamp: listening for subscribing phones on {}", all.join(", "))
            }
            RunEvent::Listening { address, serving_subscriptions: false, .. } => {
                println!("lamp: sending from {address}")
            }
        }
    }

    pub(crate) fn say(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// `lamplighter-agent run` and `demo`: the engine's live mode, its events
/// printed, until SIGTERM or Ctrl-C (or `seconds`). `demo_every` paces the
/// demo's story, which runs whenever no mailbox is configured.
pub(crate) async fn run(
    engine: Engine,
    printer: Printer,
    demo_every: Duration,
    demo_backend: lamplighter_engine::DemoBackend,
    seconds: Option<u64>,
) -> anyhow::Result<()> {
    let configured = engine.settings().mailbox.is_some();
    let mut events = engine.events();
    let latest: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    #[cfg(unix)]
    let _socket = configured.then(|| serve_status(socket_path(&engine), latest.clone())).flatten();
    let Some(live) = engine.start_live_with(LiveOptions { demo_every, demo_backend }) else {
        bail!("the live engine cannot start (counts from LAMPLIGHTER_PREVIEW_COUNTS keep it off)");
    };
    // without --seconds, a year: as good as forever for a run, and no helper needed
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds.unwrap_or(365 * 86_400));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut parked = None;
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Ok(e) => {
                    if let LiveEvent::Run(run @ RunEvent::State { .. }) = &e {
                        *latest.lock().unwrap_or_else(|p| p.into_inner()) = serde_json::to_string(run).ok();
                    }
                    printer.live(&e);
                    if let LiveEvent::Parked(p) = e {
                        parked = Some(p);
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => printer.say(&format!("({n} events skipped)")),
                Err(_) => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = &mut signal => break,
        }
    }
    if configured {
        printer.say("stopping: ending the subscription");
    }
    live.stop().await;
    if let Some(p) = parked {
        bail!("{}", p.message);
    }
    if !configured {
        printer.say("demo over");
    }
    Ok(())
}

/// How `status` prints.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusFormat {
    Text,
    Json,
    Waybar,
}

/// Where a running agent answers `status`.
fn socket_path(engine: &Engine) -> std::path::PathBuf {
    engine.paths().state_dir.join("agent.sock")
}

/// Serves the latest state line to `status` on a Unix socket (0600) while `run` runs.
#[cfg(unix)]
fn serve_status(path: std::path::PathBuf, latest: Arc<std::sync::Mutex<Option<String>>>) -> Option<StatusSocket> {
    use std::os::unix::fs::PermissionsExt as _;
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        log::warn!("another agent answers on {}; status goes there", path.display());
        return None;
    }
    let _ = std::fs::remove_file(&path);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("no status socket at {}: {e}", path.display());
            return None;
        }
    };
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    let task = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        while let Ok((mut stream, _)) = listener.accept().await {
            let line = latest.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_default();
            let _ = stream.write_all(format!("{line}\n").as_bytes()).await;
        }
    });
    Some(StatusSocket { path, task })
}

/// The status socket; removed when dropped.
pub(crate) struct StatusSocket {
    path: std::path::PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The state line of a running agent, if one answers.
async fn ask_running_agent(path: &std::path::Path) -> Option<RunEvent> {
    use tokio::io::AsyncReadExt as _;
    let mut stream = tokio::net::UnixStream::connect(path).await.ok()?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut text)).await.ok()?.ok()?;
    serde_json::from_str(text.trim()).ok()
}

/// `lamplighter-agent status`: a running agent's state, or one sync; one line, for status bars and scripts.
pub(crate) async fn status(engine: Engine, format: StatusFormat) -> anyhow::Result<std::process::ExitCode> {
    let settings = engine.settings();
    if settings.mailbox.is_none() {
        match format {
            StatusFormat::Waybar => {
                println!(r#"{{"text":"","tooltip":"Lamplighter: no mailbox configured","class":"unconfigured"}}"#)
            }
            StatusFormat::Json => println!(r#"{{"event":"state","error":"no mailbox configured"}}"#),
            StatusFormat::Text => println!("no mailbox configured"),
        }
        return Ok(std::process::ExitCode::from(2));
    }
    let state = match ask_running_agent(&socket_path(&engine)).await {
        Some(RunEvent::State { summary, connection }) => Ok((summary, connection)),
        _ => match engine.sync_once(Duration::from_secs(60)).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => Err("no answer from the mailbox within 60 s".to_string()),
            Err(e) => Err(e.to_string()),
        },
    };
    print_status(state, format)
}

fn print_status(
    state: Result<(Summary, Connection), String>,
    format: StatusFormat,
) -> anyhow::Result<std::process::ExitCode> {
    let (summary, connection) = match state {
        Ok(s) => s,
        Err(e) => {
            match format {
                StatusFormat::Waybar => println!(
                    "{}",
                    serde_json::json!({"text": "!", "tooltip": format!("Lamplighter: {e}"), "class": "error"})
                ),
                StatusFormat::Json => println!("{}", serde_json::json!({"event": "state", "error": e})),
                StatusFormat::Text => println!("error: {e}"),
            }
            return Ok(std::process::ExitCode::from(3));
        }
    };
    let v = summary.voicemail;
    let words = lamplighter_engine::view::waiting(lamplighter_engine::Lang::En, &summary);
    match format {
        StatusFormat::Json => {
            println!("{}", serde_json::to_string(&RunEvent::State { summary, connection })?)
        }
        StatusFormat::Text => {
            println!("{words}; {}", lamplighter_engine::view::also(lamplighter_engine::Lang::En, &summary, &connection))
        }
        StatusFormat::Waybar => {
            let count = v.new + summary.missed_calls;
            let class = if connection != Connection::Live {
                "error"
            } else if v.urgent_new > 0 {
                "urgent"
            } else if count > 0 {
                "waiting"
            } else {
                "none"
            };
            println!(
                "{}",
                serde_json::json!({
                    "text": if count > 0 { count.to_string() } else { String::new() },
                    "tooltip": format!("{words}\n{connection}"),
                    "class": class,
                })
            );
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// `lamplighter-agent check`: diagnoses the configuration step by step.
pub(crate) async fn check(engine: Engine) -> anyhow::Result<std::process::ExitCode> {
    match engine.try_check().await {
        Ok(steps) => finish(steps),
        Err(EngineError::NotConnected) => {
            println!(
                "✗ no mailbox configured\n  hint: add a [mailbox] section (see README) or use the settings window"
            );
            Ok(std::process::ExitCode::from(2))
        }
        Err(e) => {
            println!("✗ settings: {e}");
            Ok(std::process::ExitCode::from(2))
        }
    }
}

fn finish(steps: Vec<CheckStep>) -> anyhow::Result<std::process::ExitCode> {
    let failed = steps.iter().filter(|s| !s.ok).count();
    for s in &steps {
        println!("{} {}", if s.ok { "✓" } else { "✗" }, s.what);
        if let Some(h) = &s.hint {
            println!("  hint: {h}");
        }
    }
    println!("{}", if failed == 0 { "all checks passed".to_string() } else { format!("{failed} check(s) failed") });
    Ok(if failed == 0 { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::from(1) })
}
