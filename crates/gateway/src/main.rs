//! `lamplighter-gateway`: the organisation's message-waiting service.
//! `run` until SIGTERM; `check` before starting it. Logs are one JSON
//! object per line on stderr (journald keeps them as they are). Errors are
//! `anyhow` here, at the edge.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use lamplighter_gateway::credentials::Credentials;
use lamplighter_gateway::{Gateway, GatewayConfig};
use std::path::PathBuf;

/// The message-waiting lamps of a whole organisation, from Exchange.
#[derive(Parser)]
#[command(name = "lamplighter-gateway", version, about)]
struct Cli {
    /// The settings file.
    #[arg(long, global = true, value_name = "FILE", default_value = "/etc/lamplighter/gateway.toml")]
    config: PathBuf,
    /// Where secrets are read when systemd passes no $CREDENTIALS_DIRECTORY.
    #[arg(long, global = true, value_name = "DIR")]
    credentials_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Watch every mailbox of the directory and keep each lamp right, until SIGTERM or Ctrl-C.
    Run,
    /// Check the settings, the directory, the secrets and the service account's impersonation.
    Check,
}

/// One JSON object per log line: `{"ts":…,"level":…,"target":…,"msg":…}`.
struct JsonLog;

impl log::Log for JsonLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info || m.target().starts_with("lamplighter")
    }

    fn log(&self, r: &log::Record<'_>) {
        if !self.enabled(r.metadata()) || r.level() > log::max_level() {
            return;
        }
        let ts =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let line = serde_json::json!({
            "ts": (ts * 1000.0).round() / 1000.0,
            "level": r.level().as_str().to_ascii_lowercase(),
            "target": r.target(),
            "msg": r.args().to_string(),
        });
        eprintln!("{line}");
    }

    fn flush(&self) {}
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let _ = log::set_logger(&JsonLog);
    let level = match std::env::var("LAMPLIGHTER_LOG").as_deref() {
        Ok("debug") => log::LevelFilter::Debug,
        Ok("warn") => log::LevelFilter::Warn,
        _ => log::LevelFilter::Info,
    };
    log::set_max_level(level);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e:#}");
            eprintln!("lamplighter-gateway: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    let config = GatewayConfig::load(&cli.config)?;
    let secrets = Credentials::from_env(cli.credentials_dir);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting tokio")?;
    rt.block_on(async move {
        match cli.command {
            Command::Check => {
                let steps = lamplighter_gateway::check::check(&config, &secrets).await;
                let mut ok = true;
                for s in &steps {
                    match &s.result {
                        Ok(d) => println!("ok    {}: {d}", s.what),
                        Err((problem, fix)) => {
                            ok = false;
                            println!("FAIL  {}: {problem}\n      → {fix}", s.what);
                        }
                    }
                }
                Ok(if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE })
            }
            Command::Run => {
                let gateway = Gateway::start(config, secrets).await?;
                let http = gateway.http_addr().map(|a| a.to_string()).unwrap_or_else(|| "off".into());
                log::info!("running: SIP {}, metrics {http}", gateway.sip());
                // the line tests and scripts wait for
                let webhook = gateway.webhook_addr().map(|a| a.to_string());
                println!(
                    "{}",
                    serde_json::json!({ "event": "running", "sip": gateway.sip(), "http": http, "webhook": webhook })
                );
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .context("listening for SIGTERM")?;
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                log::info!("stopping: ending the subscriptions");
                gateway.stop().await;
                Ok(std::process::ExitCode::SUCCESS)
            }
        }
    })
}
