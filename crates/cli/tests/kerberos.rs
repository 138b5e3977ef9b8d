//! Kerberos sign-in end to end: MIT's KDC on loopback (testkit's `Kdc`),
//! `kinit` for the user, the simulator in this process as the `HTTP/localhost`
//! service with the realm's keytab, and the agent as a separate process with
//! `auth = "negotiate"`, no password and no keyring. curl `--negotiate`
//! is the independent client.

use lamplighter_ews_sim::{AuthSchemes, KerberosAcceptor, SimConfig, Simulator, Voicemail};
use lamplighter_testkit::kdc::{Kdc, REALM};
use std::time::Duration;

mod common;

const USER_PASSWORD: &str = "Winter-2026";

struct Realm {
    kdc: Kdc,
    rt: tokio::runtime::Runtime,
}

fn realm() -> Realm {
    let kdc = Kdc::start();
    kdc.add_user("mara", USER_PASSWORD);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    Realm { kdc, rt }
}

/// The simulator as a Kerberos-only Exchange (or with NTLM too).
fn simulator(realm: &Realm, send_proof: bool, ntlm: bool) -> Simulator {
    let sim = realm
        .rt
        .block_on(Simulator::start(SimConfig {
            heartbeat: Duration::from_secs(2),
            auth: AuthSchemes {
                basic: false,
                ntlm,
                negotiate_only: false,
                bearer_tokens: vec![],
                kerberos: Some(KerberosAcceptor { keytab: realm.kdc.keytab.clone(), send_proof }),
            },
            ..SimConfig::default()
        }))
        .expect("sim");
    for n in 0..2 {
        sim.deposit_voicemail(Voicemail {
            caller_number: format!("+49 5251 30{n:04}"),
            duration_secs: 12,
            ..Voicemail::default()
        });
    }
    sim
}

/// The service principal is HTTP/localhost: the URL names the host so.
fn url_of(sim: &Simulator) -> String {
    sim.ews_url().replace("127.0.0.1", "localhost")
}

fn write_config(dir: &std::path::Path, url: &str, password_env: bool) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let password = if password_env { "password_env = \"LL_TEST_PASSWORD\"\n" } else { "" };
    std::fs::write(
        &path,
        format!(
            "schema_version = 1\n[mailbox]\nemail = \"mara@example.test\"\news_url = \"{url}\"\n\
             username = 'EXAMPLE\\mara'\nauth = \"negotiate\"\n{password}\n[user]\nsip_uri = \"sip:mara@example.test\"\n"
        ),
    )
    .expect("config");
    path
}

fn agent(config: &std::path::Path, home: &std::path::Path, env: &[(String, String)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lamplighter-agent"));
    cmd.args(["--config", config.to_str().expect("path")])
        .env("HOME", home)
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("LL_TEST_PASSWORD", "Sommer2026!")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

fn check(config: &std::path::Path, home: &std::path::Path, env: &[(String, String)]) -> (i32, String) {
    let out = agent(config, home, env).arg("check").output().expect("agent");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_agent_signs_in_with_the_ticket_and_no_password() {
    let realm = realm();
    let sim = simulator(&realm, true, false);
    let cache = realm.kdc.kinit("mara", USER_PASSWORD, None);
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(dir.path(), &url_of(&sim), false);
    let (code, out) = check(&config, dir.path(), &realm.kdc.env(&cache));
    assert_eq!(code, 0, "{out}\nKDC:\n{}", realm.kdc.log());
    for want in [
        format!(
            "✓ signed in with Kerberos as mara@{REALM} (mutually authenticated: the server proved it is HTTP@localhost); \
             Voice Mail folder readable: 2 voicemails (2 unheard)"
        ),
        "✓ streaming notifications supported".into(),
        "all checks passed".into(),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    assert_eq!(sim.auth_failures(), 0, "no refused leg");
    // the service ticket came from the KDC, for the SPN named by the URL's host
    assert!(realm.kdc.log().contains(&format!("for HTTP/localhost@{REALM}")), "{}", realm.kdc.log());

    // curl, a client we did not write, signs in the same way with the same ticket
    let body = r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><s:Header><t:RequestServerVersion Version="Exchange2016"/></s:Header><s:Body><m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="voicemail"/></m:FolderIds></m:GetFolder></s:Body></s:Envelope>"#;
    let curl = std::process::Command::new("curl")
        .args(["-s", "-i", "--negotiate", "-u", ":", "-H", "content-type: text/xml; charset=utf-8", "--data-binary"])
        .arg(body)
        .arg(url_of(&sim))
        .envs(realm.kdc.env(&cache))
        .output()
        .expect("curl not found: run ./dev.sh setup");
    let answer = String::from_utf8_lossy(&curl.stdout);
    assert!(answer.contains("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("NoError") && answer.contains("<t:TotalCount>2</t:TotalCount>"), "{answer}");
    // the server's mutual-authentication token, which curl verified
    assert!(answer.to_ascii_lowercase().contains("www-authenticate: negotiate "), "{answer}");
}

#[test]
fn no_ticket_and_an_expired_ticket_ask_for_kinit_and_the_new_ticket_is_picked_up() {
    let realm = realm();
    let sim = simulator(&realm, true, false);
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(dir.path(), &url_of(&sim), false);

    // no ticket at all
    let none = format!("FILE:{}", dir.path().join("no-cache").display());
    let (code, out) = check(&config, dir.path(), &realm.kdc.env(&none));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no Kerberos ticket") && out.contains("run kinit"), "{out}");

    // an expired one
    let cache = realm.kdc.kinit("mara", USER_PASSWORD, Some("2s"));
    realm.kdc.wait_until_expired(&cache);
    let (code, out) = check(&config, dir.path(), &realm.kdc.env(&cache));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("the Kerberos ticket has expired") && out.contains("run kinit"), "{out}");
    assert!(!out.contains("check the user name and password"), "no password advice for Kerberos: {out}");

    // the running agent says so, retries, and signs in once kinit ran
    let mut child = agent(&config, dir.path(), &realm.kdc.env(&cache))
        .args(["run", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent");
    let mut lines = common::JsonLines::read(&mut child);
    lines.wait("asked for kinit", |v| {
        v["event"] == "state"
            && v["connection"]["state"] == "reconnecting"
            && v["connection"]["reason"].as_str().is_some_and(|r| r.contains("run kinit"))
    });
    // a fresh ticket into the same cache, as kinit or SSSD renews it
    let fresh = realm.kdc.kinit("mara", USER_PASSWORD, None);
    std::fs::copy(fresh.trim_start_matches("FILE:"), cache.trim_start_matches("FILE:")).expect("renew cache");
    lines.wait("connected with the new ticket", |v| v["event"] == "state" && v["connection"]["state"] == "live");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    assert!(child.wait().expect("wait").success());
}

#[test]
fn a_server_that_does_not_prove_itself_is_refused_and_gets_no_password() {
    let realm = realm();
    // an impostor: it takes the ticket (it holds the key) but never sends its proof
    let sim = simulator(&realm, false, true);
    let cache = realm.kdc.kinit("mara", USER_PASSWORD, None);
    let dir = tempfile::tempdir().expect("tmp");
    // a password is saved: the NTLM fallback must still not be tried against it
    let config = write_config(dir.path(), &url_of(&sim), true);
    let (code, out) = check(&config, dir.path(), &realm.kdc.env(&cache));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("HTTP@localhost did not prove its identity"), "{out}");
    assert!(out.contains("nothing was sent to it"), "{out}");
    assert!(!out.contains("Voice Mail folder readable"), "the answer was not used: {out}");
    // one challenge (the first, anonymous request) and the one request the ticket carried:
    // no NTLM leg, and no other step of the check tried again
    let served = sim.served();
    assert_eq!(served.iter().filter(|s| s.status == 401).count(), 1, "{served:#?}");
    assert_eq!(served.len(), 2, "{served:#?}");
}

#[test]
fn without_a_ticket_the_saved_password_signs_in_with_ntlm() {
    let realm = realm();
    let sim = simulator(&realm, true, true);
    let dir = tempfile::tempdir().expect("tmp");
    let config = write_config(dir.path(), &url_of(&sim), true);
    let none = format!("FILE:{}", dir.path().join("no-cache").display());
    let (code, out) = check(&config, dir.path(), &realm.kdc.env(&none));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ signed in with NTLM; Voice Mail folder readable: 2 voicemails"), "{out}");
}

#[test]
fn without_the_kerberos_library_ntlm_still_works_and_kerberos_alone_says_what_is_missing() {
    let realm = realm();
    let sim = simulator(&realm, true, true);
    let cache = realm.kdc.kinit("mara", USER_PASSWORD, None);
    let dir = tempfile::tempdir().expect("tmp");
    let mut env = realm.kdc.env(&cache);
    // as on a machine without MIT krb5
    env.push(("LAMPLIGHTER_GSSAPI_LIBRARY".into(), dir.path().join("libgssapi_krb5.so.2").display().to_string()));
    let with_password = write_config(dir.path(), &url_of(&sim), true);
    let (code, out) = check(&with_password, dir.path(), &env);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("✓ signed in with NTLM; Voice Mail folder readable"), "{out}");
    let kerberos_only = write_config(dir.path(), &url_of(&sim), false);
    let (code, out) = check(&kerberos_only, dir.path(), &env);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Kerberos is not available on this machine"), "{out}");
    assert!(out.contains("install MIT Kerberos (Debian: libgssapi-krb5-2), or save the password for NTLM"), "{out}");
}
