//! `ews-sim`: the Exchange simulator as a program, for trying EWS clients
//! (ours or anyone's) by hand.
//!
//! ```text
//! ews-sim [--port N] [--tls] [--heartbeat SECS] [--items N] [--no-validation] [--control-port N]
//!         [--kerberos-keytab FILE [--kerberos-no-proof]] [--no-ntlm] [--no-basic] [--attachments-2007]
//!         [--bearer-token TOKEN]
//! ews-sim ctl <command> [arguments]
//! ```
//! With `--kerberos-keytab` it is a Kerberos service (`HTTP/<host>` keys in
//! the keytab; krb5 finds its realm through `KRB5_CONFIG` as usual) and
//! takes `Negotiate` tickets of the principal `mara@<realm>`.
//! It prints the EWS URL, the user and password, and (with `--tls`) writes
//! the CA certificate to `ews-sim-ca.pem` in the current directory. It also
//! serves its control interface ([`lamplighter_ews_sim::control`]) on
//! loopback and writes its URL and token to `ews-sim-ctl.json` (mode 600)
//! there; `ews-sim ctl …` (from the same directory) reads that file.

use anyhow::Context as _;
use lamplighter_ews_sim::{SimConfig, Simulator, Validation, Voicemail};
use std::time::Duration;

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok())
}

const USAGE: &str = "ews-sim [--port N] [--tls] [--heartbeat SECS] [--items N] [--no-validation] [--control-port N]
        [--kerberos-keytab FILE [--kerberos-no-proof]] [--no-ntlm] [--no-basic] [--attachments-2007]
        [--bearer-token TOKEN]   (OAuth2 for EWS, and the Microsoft Graph face under /v1.0)
ews-sim ctl items
ews-sim ctl voicemail FROM [--name NAME] [--duration SECS] [--urgent] [--audio FILE] [--transcription TEXT]
ews-sim ctl missed-call FROM [--name NAME] [--header 'Name: value']...
ews-sim ctl read ID | unread ID | delete ID
ews-sim ctl free-busy | drop-streams | restart
ews-sim ctl throttle CALLS BACK_OFF_MS [--in-body]
ews-sim ctl fail CALLS HTTP_STATUS | fail-streams CALLS | hang OPERATION";

const CTL_FILE: &str = "ews-sim-ctl.json";

fn value_of<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// `ews-sim ctl …`: one request to the running simulator's control interface.
fn ctl(args: &[String]) -> anyhow::Result<()> {
    use serde_json::json;
    let file = std::fs::read_to_string(CTL_FILE)
        .with_context(|| format!("no {CTL_FILE} here: start ews-sim in this directory first"))?;
    let info: serde_json::Value = serde_json::from_str(&file).context(CTL_FILE)?;
    let (url, token) = (info["url"].as_str().unwrap_or(""), info["token"].as_str().unwrap_or(""));
    let need = |i: usize, what: &str| args.get(i).cloned().with_context(|| format!("give {what}\n{USAGE}"));
    let number = |i: usize, what: &str| -> anyhow::Result<u64> {
        need(i, what)?.parse().with_context(|| format!("{what} is a number"))
    };
    let command = need(0, "a command")?;
    let (method, path, body) = match command.as_str() {
        "items" => ("GET", "/items", json!(null)),
        "voicemail" => {
            let mut v = json!({ "from": need(1, "the caller's number")? });
            if let Some(n) = value_of(args, "--name") {
                v["name"] = json!(n);
            }
            if let Some(d) = value_of(args, "--duration") {
                v["duration_secs"] = json!(d.parse::<u32>().context("--duration")?);
            }
            if args.iter().any(|a| a == "--urgent") {
                v["urgent"] = json!(true);
            }
            if let Some(t) = value_of(args, "--transcription") {
                v["transcription"] = json!(t);
            }
            if let Some(f) = value_of(args, "--audio") {
                use base64::Engine as _;
                let bytes = std::fs::read(f).with_context(|| format!("cannot read {f}"))?;
                v["audio_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
                let name = std::path::Path::new(f).file_name().map(|n| n.to_string_lossy().into_owned());
                v["audio_name"] = json!(name);
                let kind = if f.to_ascii_lowercase().ends_with(".mp3") {
                    "audio/mpeg"
                } else if f.to_ascii_lowercase().ends_with(".wma") {
                    "audio/wma"
                } else {
                    "audio/wav"
                };
                v["content_type"] = json!(kind);
            }
            ("POST", "/voicemail", v)
        }
        "missed-call" => {
            let mut v = json!({ "from": need(1, "the caller's number")? });
            if let Some(n) = value_of(args, "--name") {
                v["name"] = json!(n);
            }
            let headers: Vec<(String, String)> = args
                .windows(2)
                .filter(|w| w[0] == "--header")
                .map(|w| {
                    w[1].split_once(':')
                        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                        .context("--header 'Name: value'")
                })
                .collect::<anyhow::Result<_>>()?;
            v["headers"] = json!(headers);
            ("POST", "/missed-call", v)
        }
        "read" | "unread" => ("POST", "/read", json!({ "id": need(1, "the item's id")?, "read": command == "read" })),
        "delete" => ("POST", "/delete", json!({ "id": need(1, "the item's id")? })),
        "free-busy" => ("POST", "/free-busy", json!({})),
        "drop-streams" => ("POST", "/drop-streams", json!({})),
        "restart" => ("POST", "/restart", json!({})),
        "throttle" => (
            "POST",
            "/throttle",
            json!({
                "calls": number(1, "CALLS")?, "back_off_ms": number(2, "BACK_OFF_MS")?,
                "in_body": args.iter().any(|a| a == "--in-body"),
            }),
        ),
        "fail" => ("POST", "/fail", json!({ "calls": number(1, "CALLS")?, "status": number(2, "HTTP_STATUS")? })),
        "fail-streams" => ("POST", "/fail-streams", json!({ "calls": number(1, "CALLS")? })),
        "hang" => ("POST", "/hang", json!({ "operation": need(1, "the operation")? })),
        other => anyhow::bail!("unknown command {other:?}\n{USAGE}"),
    };
    let host = url.strip_prefix("http://").context("the control URL is http://")?;
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(host).with_context(|| format!("no simulator at {url}"))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, content) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let ok = head.split_whitespace().nth(1).is_some_and(|c| c.starts_with('2'));
    println!("{content}");
    if ok { Ok(()) } else { anyhow::bail!("{}", head.lines().next().unwrap_or("no answer")) }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("ctl") {
        return ctl(&args[1..]);
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
    config.auth.basic = !args.iter().any(|a| a == "--no-basic");
    config.attachments_2007 = args.iter().any(|a| a == "--attachments-2007");
    if let Some(t) = arg::<String>(&args, "--bearer-token") {
        config.auth.bearer_tokens.push(t);
    }
    config.auth.ntlm = !args.iter().any(|a| a == "--no-ntlm");
    if let Some(keytab) = arg::<std::path::PathBuf>(&args, "--kerberos-keytab") {
        lamplighter_gssapi::available().context("--kerberos-keytab")?;
        anyhow::ensure!(keytab.is_file(), "--kerberos-keytab {}: no such file", keytab.display());
        config.auth.kerberos = Some(lamplighter_ews_sim::KerberosAcceptor {
            keytab,
            send_proof: !args.iter().any(|a| a == "--kerberos-no-proof"),
        });
    }
    let schemes =
        [(config.auth.kerberos.is_some(), "Kerberos"), (config.auth.ntlm, "NTLM"), (config.auth.basic, "Basic")]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, s)| *s)
            .collect::<Vec<_>>()
            .join(", ");
    let validation = config.validation.clone();
    let (user, password) = config.users[0].clone();
    let sim = std::sync::Arc::new(Simulator::start(config).await?);
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
    println!("Graph:    {} (with --bearer-token)", sim.graph_url());
    println!("user:     {user}   password: {password}   ({schemes}; NTLM domain EXAMPLE)");
    println!(
        "schema:   {}",
        match validation {
            Validation::Schema(p) => p.display().to_string(),
            Validation::Off => "not validated".into(),
        }
    );
    let control_at = std::net::SocketAddr::from(([127, 0, 0, 1], arg(&args, "--control-port").unwrap_or(0u16)));
    let control = lamplighter_ews_sim::control::serve(sim.clone(), control_at).await?;
    {
        use std::io::Write as _;
        // made anew, so its mode is this user's only
        let _ = std::fs::remove_file(CTL_FILE);
        let mut file = std::fs::OpenOptions::new();
        file.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
        let mut f = file.open(CTL_FILE)?;
        writeln!(f, "{}", serde_json::json!({ "url": control.url, "token": control.token }))?;
    }
    println!("control:  {} (its token in {CTL_FILE}; `ews-sim ctl --help`)", control.url);
    println!("Ctrl-C stops it.");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
