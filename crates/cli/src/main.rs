//! `lamplighter-agent`: Lamplighter without a desktop.
//!
//! A front end like the tray app: it opens the same [`Engine`] and renders
//! what it returns. Errors are `anyhow` here, at the edge, and every one is
//! printed as one line that says what to do.

use anyhow::Context;
use clap::{Parser, Subcommand};
use lamplighter_config::Paths;
use lamplighter_engine::{Engine, Options};
use std::path::PathBuf;

/// Lamplighter's headless agent: voicemail and missed calls from Exchange,
/// the message-waiting lamp on your SIP phone.
#[derive(Parser)]
#[command(name = "lamplighter-agent", version, about)]
struct Cli {
    /// The settings file (default: $XDG_CONFIG_HOME/lamplighter/config.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the mailbox engine is not built yet: it says so and exits).
    Run,
    /// Show the settings in use, where they live, and any problem with them.
    Settings {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lamplighter-agent: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    let paths = match cli.config {
        Some(file) => Paths::with_config_file(file)?,
        None => Paths::standard()?,
    };
    if let Ok(log) = lamplighter_logfile::LogFile::open(&paths.state_dir, Default::default(), log::LevelFilter::Info) {
        let _ = log.install();
    }
    match cli.command {
        Command::Run => {
            println!(
                "Lamplighter's headless agent is not built yet: it arrives with the mailbox engine.\n\
                 Nothing to run. Settings are read from {}; check them with `lamplighter-agent settings`.",
                paths.config_file.display()
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Settings { json } => {
            let engine = Engine::open(Options::standard(paths));
            let view = engine.settings_view();
            if json {
                println!("{}", serde_json::to_string_pretty(&view).context("encoding JSON")?);
            } else {
                println!("settings file: {}", view.config_file);
                match &view.form.mailbox {
                    Some(m) => println!(
                        "mailbox: {} (sign-in {}, {}), password {}",
                        m.email,
                        m.auth,
                        if m.ews_url.is_empty() { "Autodiscover" } else { m.ews_url.as_str() },
                        if view.mailbox_password_saved {
                            "in the keyring"
                        } else if !m.password_env.is_empty() {
                            "from the environment"
                        } else {
                            "not set"
                        }
                    ),
                    None => println!("mailbox: none configured (the demo mailbox is used)"),
                }
                for (p, saved) in view.form.phones.iter().zip(&view.phone_passwords_saved) {
                    println!(
                        "phone: {} over {}, {}{}",
                        p.uri,
                        p.transport,
                        p.mode,
                        if *saved { ", digest password in the keyring" } else { "" }
                    );
                }
                println!(
                    "keyring: {}",
                    if view.keyring_persistent { "OS keyring" } else { "none: passwords kept for this session only" }
                );
                for problem in &view.problems {
                    println!("problem ({}): {}", problem.code, problem.message);
                }
            }
            Ok(if view.problems.iter().any(|p| p.code.starts_with("config")) {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::SUCCESS
            })
        }
    }
}
