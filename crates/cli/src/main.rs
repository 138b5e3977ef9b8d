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

mod live;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().context("starting tokio")
}

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
    /// Run the agent: the mailbox, the analysis and the phones' lamps, until stopped
    /// (SIGTERM or Ctrl-C). Without a configured mailbox it runs the demo.
    Run {
        /// One JSON object per line for each event, instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The built-in demo: an Exchange simulator and a demo phone in this process, with
    /// a voicemail or missed call every few seconds.
    Demo {
        /// One JSON object per line for each event, instead of text.
        #[arg(long)]
        json: bool,
        /// Stop after this many seconds (default: run until stopped).
        #[arg(long)]
        seconds: Option<u64>,
        /// Seconds between the demo's steps.
        #[arg(long, default_value_t = 4)]
        every: u64,
        /// How the demo reads its mailbox: ews (as Exchange on-premises) or
        /// graph (as Exchange Online, through Microsoft Graph).
        #[arg(long, default_value = "ews", value_parser = ["ews", "graph"])]
        backend: String,
    },
    /// Print the current state once (one sync with the mailbox), for status bars and scripts.
    Status {
        /// text, json, or waybar (a waybar custom module's JSON: text, tooltip, class).
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Diagnose the settings: Autodiscover, sign-in, folders, streaming, each phone.
    Check,
    /// Sign in to Microsoft 365 (auth = "oauth2"): the grant goes to the keyring.
    Login {
        /// With a code to enter on another device's browser (RFC 8628), for
        /// machines without a browser; without it, the browser opens here
        /// (`$BROWSER`, else the desktop's) and comes back to a loopback port.
        #[arg(long)]
        device_code: bool,
    },
    /// Sign out of Microsoft 365 here: the grant leaves the keyring.
    Logout,
    /// Message-waiting lamps: send one state to one phone (admins test a phone with this).
    Mwi {
        #[command(subcommand)]
        command: MwiCommand,
    },
    /// Show the settings in use, where they live, and any problem with them.
    Settings {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum MwiCommand {
    /// Send one message-summary NOTIFY and print the phone's final response.
    Send {
        /// The phone's SIP URI, e.g. sip:613@192.0.2.10:5060.
        uri: String,
        /// New (unheard) voicemails.
        #[arg(long, default_value_t = 0)]
        new: u32,
        /// Old (heard) voicemails.
        #[arg(long, default_value_t = 0)]
        old: u32,
        /// New urgent voicemails (a subset of --new).
        #[arg(long, default_value_t = 0)]
        urgent_new: u32,
        /// Old urgent voicemails (a subset of --old).
        #[arg(long, default_value_t = 0)]
        urgent_old: u32,
        /// udp, tcp or tls.
        #[arg(long, default_value = "udp")]
        transport: String,
        /// For tls: the CA certificate(s), PEM, that the phone's certificate must chain to.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<std::path::PathBuf>,
        /// Message-Account URI (default: the phone's URI).
        #[arg(long)]
        account: Option<String>,
        /// Digest user name, if the phone challenges.
        #[arg(long)]
        user: Option<String>,
        /// The environment variable holding the digest password (never the password itself).
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// Local address to send from.
        #[arg(long, default_value = "0.0.0.0:0")]
        bind: std::net::SocketAddr,
    },
}

fn mwi(command: MwiCommand) -> anyhow::Result<std::process::ExitCode> {
    use lamplighter_engine::lamp_test::{Credentials, LampTest, Transport};
    let MwiCommand::Send {
        uri,
        new,
        old,
        urgent_new,
        urgent_old,
        transport,
        ca_file,
        account,
        user,
        password_env,
        bind,
    } = command;
    if urgent_new > new || urgent_old > old {
        anyhow::bail!("urgent counts are part of the new/old counts: --urgent-new ≤ --new and --urgent-old ≤ --old");
    }
    let transport = match transport.to_ascii_lowercase().as_str() {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        other => anyhow::bail!("unsupported transport {other:?} (udp, tcp or tls)"),
    };
    let ca_pem = match &ca_file {
        Some(path) => Some(std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))?),
        None if transport == Transport::Tls => {
            anyhow::bail!("--transport tls needs --ca-file: the phone's certificate is always verified")
        }
        None => None,
    };
    let credentials = match (user, password_env) {
        (Some(username), Some(var)) => {
            let password = std::env::var(&var)
                .with_context(|| format!("the environment variable {var} (--password-env) is not set"))?;
            Some(Credentials { username, password })
        }
        (Some(_), None) => anyhow::bail!("--user needs --password-env VAR naming the variable that holds the password"),
        (None, Some(_)) => anyhow::bail!("--password-env needs --user"),
        (None, None) => None,
    };
    let counts = lamplighter_engine::MessageCounts { new, old, urgent_new, urgent_old };
    let test = LampTest { uri: uri.clone(), transport, ca_pem, account, counts, credentials, bind };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    match runtime.block_on(lamplighter_engine::lamp_test::send(test)) {
        Ok(d) => {
            println!("{} {}{}", d.code, d.reason, if d.authenticated { " (after digest authentication)" } else { "" });
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("lamplighter-agent: NOTIFY to {uri} failed: {e}");
            Ok(std::process::ExitCode::from(3))
        }
    }
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
        Command::Mwi { command } => mwi(command),
        Command::Run { json } => {
            let engine = Engine::open(Options::standard(paths));
            let printer = live::Printer { json };
            if engine.settings().mailbox.is_none() {
                printer.say("No mailbox is configured: running the demo mailbox (see `lamplighter-agent demo`).");
            }
            runtime()?.block_on(live::run(
                engine,
                printer,
                std::time::Duration::from_secs(4),
                lamplighter_engine::DemoBackend::Ews,
                None,
            ))?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Status { format } => {
            let format = match format.as_str() {
                "text" => live::StatusFormat::Text,
                "json" => live::StatusFormat::Json,
                "waybar" => live::StatusFormat::Waybar,
                other => anyhow::bail!("unknown format {other:?}: text, json or waybar"),
            };
            let engine = Engine::open(Options::standard(paths));
            runtime()?.block_on(live::status(engine, format))
        }
        Command::Check => {
            let engine = Engine::open(Options::standard(paths));
            runtime()?.block_on(live::check(engine))
        }
        Command::Login { device_code } => {
            let engine = Engine::open(Options::standard(paths));
            let grant = if device_code {
                let session = engine.microsoft_session()?.ok_or_else(|| {
                    anyhow::anyhow!(
                        "the mailbox does not sign in with OAuth2: set [mailbox] auth = \"oauth2\" and client_id"
                    )
                })?;
                runtime()?.block_on(session.device_login(|d| {
                    println!(
                        "To sign in, open {} in a browser (on any device) and enter the code {} (valid for {} minutes).",
                        d.verification_uri,
                        d.user_code,
                        d.expires_in.as_secs() / 60
                    );
                }))?
            } else {
                runtime()?.block_on(engine.browser_login(|url| {
                    println!("Signing in with your browser. If it does not open, open this address:\n{url}");
                    println!("Waiting for the sign-in to finish in the browser… (no browser here? use --device-code)");
                }))?
            };
            println!(
                "signed in to Microsoft 365 as {} ({}); the sign-in is kept in the keyring",
                grant.account.as_deref().unwrap_or("an unnamed account"),
                grant.scopes.join(" ")
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Logout => {
            let engine = Engine::open(Options::standard(paths));
            match engine.microsoft_session()? {
                Some(session) => {
                    runtime()?.block_on(session.logout())?;
                    println!("signed out of Microsoft 365: the sign-in is gone from the keyring");
                }
                None => println!("the mailbox does not sign in with OAuth2: nothing to sign out of"),
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Demo { json, seconds, every, backend } => {
            // the demo is what the engine runs without a mailbox: an empty settings
            // file of its own, so a configured mailbox does not get in the way
            let dir = tempfile::tempdir().context("a directory for the demo's settings")?;
            let paths = Paths::under(dir.path().join("config"), dir.path().join("state"), dir.path().join("cache"));
            let engine = Engine::open(Options {
                keyring: lamplighter_engine::KeyringChoice::InMemory,
                ..Options::standard(paths)
            });
            runtime()?.block_on(live::run(
                engine,
                live::Printer { json },
                std::time::Duration::from_secs(every.max(1)),
                match backend.as_str() {
                    "graph" => lamplighter_engine::DemoBackend::Graph,
                    _ => lamplighter_engine::DemoBackend::Ews,
                },
                seconds,
            ))?;
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
                    println!("problem ({}): {}", problem.code.as_str(), problem.message);
                }
            }
            Ok(if view.problems.iter().any(|p| p.code.is_config()) {
                std::process::ExitCode::from(2)
            } else {
                std::process::ExitCode::SUCCESS
            })
        }
    }
}
