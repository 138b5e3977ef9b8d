//! `ews-sim`: the Exchange simulator as a program, for trying EWS clients
//! (ours or anyone's) by hand.
//!
//! ```text
//! ews-sim [--port N] [--tls] [--heartbeat SECS] [--items N] [--no-validation]
//! ```
//! It prints the EWS URL, the user and password, and (with `--tls`) writes
//! the CA certificate to `ews-sim-ca.pem` in the current directory.

use lamplighter_ews_sim::{SimConfig, Simulator, Validation, Voicemail};
use std::time::Duration;

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("ews-sim [--port N] [--tls] [--heartbeat SECS] [--items N] [--no-validation]");
        return Ok(());
    }
    let mut config = SimConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], arg(&args, "--port").unwrap_or(0u16))),
        tls: args.iter().any(|a| a == "--tls"),
        heartbeat: Duration::from_secs(arg(&args, "--heartbeat").unwrap_or(45)),
        ..SimConfig::default()
    };
    if args.iter().any(|a| a == "--no-validation") {
        config.validation = Validation::Off;
    }
    let validation = config.validation.clone();
    let (user, password) = config.users[0].clone();
    let sim = Simulator::start(config).await?;
    for n in 0..arg(&args, "--items").unwrap_or(3u32) {
        sim.deposit_voicemail(Voicemail {
            caller_number: format!("+49 5251 30{n:04}"),
            duration_secs: 10 + n,
            audio: Some(("audio.wav".into(), "audio/wav".into(), vec![0u8; 1600])),
            ..Voicemail::default()
        });
    }
    if let Some(pem) = sim.ca_pem() {
        std::fs::write("ews-sim-ca.pem", pem)?;
        println!("CA certificate: ews-sim-ca.pem");
    }
    println!("EWS URL:  {}", sim.ews_url());
    println!("user:     {user}   password: {password}   (Basic or NTLM, domain EXAMPLE)");
    println!(
        "schema:   {}",
        match validation {
            Validation::Schema(p) => p.display().to_string(),
            Validation::Off => "not validated".into(),
        }
    );
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
