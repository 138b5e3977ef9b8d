//! `run` and `demo`: the engine running, its events printed as lines of
//! text or JSON. `demo` starts the Exchange simulator and a demo phone in
//! this process and plays a short story against them, so every feature can
//! be watched without an Exchange server or a desk phone.

use anyhow::{Context, bail};
use lamplighter_config::Settings;
use lamplighter_engine::Engine;
use lamplighter_runner::check::CheckStep;
use lamplighter_runner::demo::Demo;
use lamplighter_runner::{RunConfig, RunEvent, Runner};
use std::sync::Arc;
use std::time::Duration;

/// How events are printed.
#[derive(Clone, Copy)]
pub(crate) struct Printer {
    pub json: bool,
}

impl Printer {
    pub(crate) fn event(&self, e: &RunEvent) {
        if self.json {
            match serde_json::to_string(e) {
                Ok(line) => println!("{line}"),
                Err(err) => eprintln!("lamplighter-agent: cannot encode an event: {err}"),
            }
            return;
        }
        match e {
            RunEvent::State { voicemail: v, missed_calls, secondary_calls, connection } => println!(
                "state: {} new voicemail(s), {} heard ({} urgent new), {missed_calls} missed call(s), {secondary_calls} on others' behalf; {connection}",
                v.new, v.old, v.urgent_new
            ),
            RunEvent::Notify { kind, from, at, preview, .. } => println!(
                "notify: {} from {from} at {at}{}",
                match kind {
                    lamplighter_mailbox_state::Kind::Voicemail => "voicemail",
                    lamplighter_mailbox_state::Kind::MissedCall => "missed call",
                },
                preview.as_deref().map(|p| format!(": “{p}”")).unwrap_or_default()
            ),
            RunEvent::Mwi { phone, result, counts } => match counts {
                Some(c) => println!("lamp: {phone} shows {c} ({result})"),
                None => println!("lamp: {phone}: {result}"),
            },
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

fn run_config(engine: &Engine, settings: &Settings) -> anyhow::Result<RunConfig> {
    let secrets = engine.run_secrets().context("reading the passwords")?;
    Ok(lamplighter_runner::from_settings(settings, &secrets, engine.paths())?)
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

/// `lamplighter-agent run`.
pub(crate) async fn run(engine: Engine, printer: Printer) -> anyhow::Result<()> {
    let settings = engine.settings();
    if settings.mailbox.is_none() {
        printer.say("No mailbox is configured: running the demo mailbox (see `lamplighter-agent demo`).");
        return demo(printer, None, Duration::from_secs(4)).await;
    }
    let config = run_config(&engine, &settings)?;
    let runner = Runner::start(config).await.context("starting")?;
    printer.say(&format!("Lamplighter agent: mailbox at {}", runner.ews_url()));
    let mut events = runner.events();
    let latest: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    #[cfg(unix)]
    let _socket = serve_status(socket_path(&engine), latest.clone());
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Ok(e) => {
                    if matches!(e, RunEvent::State { .. }) {
                        *latest.lock().unwrap_or_else(|p| p.into_inner()) = serde_json::to_string(&e).ok();
                    }
                    printer.event(&e);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => printer.say(&format!("({n} events skipped)")),
                Err(_) => break,
            },
            _ = &mut signal => break,
        }
    }
    printer.say("stopping: ending the subscription");
    runner.stop().await;
    Ok(())
}

/// `lamplighter-agent demo`: the simulator, a demo phone, the engine, and a story.
pub(crate) async fn demo(printer: Printer, seconds: Option<u64>, every: Duration) -> anyhow::Result<()> {
    let (mut demo, config) = Demo::start(Arc::new(move |waiting, line| {
        printer.say(&format!("[demo phone] lamp {}: {line}", if waiting { "ON" } else { "off" }))
    }))
    .await
    .context("starting the demo mailbox")?;
    printer.say(&format!(
        "Demo mailbox: an Exchange simulator at {} (user mara), demo phone sip:demo@{}",
        demo.sim.ews_url(),
        demo.phone
    ));
    let runner = Runner::start(config).await.context("starting the engine")?;
    let mut events = runner.events();
    let deadline = seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Ok(e) => {
                    demo.observe(&e);
                    printer.event(&e);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            _ = tick.tick() => {
                if let Some(what) = demo.step(&runner).await {
                    printer.say(&format!("[demo] {what}"));
                }
            }
            _ = sleep_until(deadline) => break,
            _ = &mut signal => break,
        }
    }
    runner.stop().await;
    printer.say("demo over");
    if demo.sim.served().iter().any(|s| !s.schema_valid) {
        bail!("the demo mailbox refused a request as invalid");
    }
    Ok(())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// How `status` prints.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusFormat {
    Text,
    Json,
    Waybar,
}

fn plural(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
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
async fn ask_running_agent(path: &std::path::Path) -> Option<serde_json::Value> {
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
            StatusFormat::Json => println!(r#"{{"event":"state","connection":"no mailbox configured"}}"#),
            StatusFormat::Text => println!("no mailbox configured"),
        }
        return Ok(std::process::ExitCode::from(2));
    }
    let (state, error) = match ask_running_agent(&socket_path(&engine)).await {
        Some(v) => (Some(v), None),
        None => one_shot(&engine, &settings).await,
    };
    print_status(state, error, format)
}

async fn one_shot(engine: &Engine, settings: &Settings) -> (Option<serde_json::Value>, Option<String>) {
    let mut config = match run_config(engine, settings) {
        Ok(c) => c,
        Err(e) => return (None, Some(format!("{e:#}"))),
    };
    config.phones.clear();
    let outcome = async {
        let runner = Runner::start(config).await?;
        let mut events = runner.events();
        let state = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                match events.recv().await {
                    Ok(e @ RunEvent::State { .. }) => {
                        if let RunEvent::State { connection, .. } = &e
                            && (connection == "connected" || connection.starts_with("sign-in refused"))
                        {
                            return Some(e);
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return None,
                }
            }
        })
        .await;
        runner.stop().await;
        Ok::<_, lamplighter_runner::RunError>(state.ok().flatten())
    }
    .await;
    match outcome {
        Ok(Some(s)) => (serde_json::to_value(&s).ok(), None),
        Ok(None) => (None, Some("no answer from the mailbox within 60 s".to_string())),
        Err(e) => (None, Some(e.to_string())),
    }
}

fn print_status(
    state: Option<serde_json::Value>,
    error: Option<String>,
    format: StatusFormat,
) -> anyhow::Result<std::process::ExitCode> {
    let Some(v) = state.filter(|v| v["voicemail"].is_object()) else {
        let e = error.unwrap_or_else(|| "no state yet".into());
        match format {
            StatusFormat::Waybar => println!(
                "{}",
                serde_json::json!({"text": "!", "tooltip": format!("Lamplighter: {e}"), "class": "error"})
            ),
            StatusFormat::Json => {
                println!("{}", serde_json::json!({"event": "state", "connection": format!("error: {e}")}))
            }
            StatusFormat::Text => println!("error: {e}"),
        }
        return Ok(std::process::ExitCode::from(3));
    };
    let n = |x: &serde_json::Value| x.as_u64().unwrap_or(0) as u32;
    let (new, old, urgent_new) =
        (n(&v["voicemail"]["new"]), n(&v["voicemail"]["old"]), n(&v["voicemail"]["urgent_new"]));
    let (missed, secondary) = (n(&v["missed_calls"]), n(&v["secondary_calls"]));
    let connection = v["connection"].as_str().unwrap_or("").to_string();
    let words = format!(
        "{}{}, {}",
        plural(new, "new voicemail", "new voicemails"),
        if urgent_new > 0 { format!(" ({urgent_new} urgent)") } else { String::new() },
        plural(missed, "missed call", "missed calls")
    );
    match format {
        StatusFormat::Json => println!("{v}"),
        StatusFormat::Text => println!("{words}; {old} heard; {secondary} on others' behalf; {connection}"),
        StatusFormat::Waybar => {
            let count = new + missed;
            let class = if connection != "connected" {
                "error"
            } else if urgent_new > 0 {
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
    let settings = engine.settings();
    let Some(mailbox) = settings.mailbox.clone() else {
        println!("✗ no mailbox configured\n  hint: add a [mailbox] section (see README) or use the settings window");
        return Ok(std::process::ExitCode::from(2));
    };
    let config = match run_config(&engine, &settings) {
        Ok(c) => c,
        Err(e) => {
            println!("✗ settings: {e:#}");
            return Ok(std::process::ExitCode::from(2));
        }
    };
    let first =
        CheckStep { ok: true, what: format!("settings for {} read, password available", mailbox.email), hint: None };
    finish(lamplighter_runner::check::run(config, first).await)
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
