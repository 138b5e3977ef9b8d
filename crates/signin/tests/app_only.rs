//! The app-only sign-in (client credentials with a certificate, RFC 7523)
//! against the simulator's Entra-like token service, which checks the
//! assertion as Entra does, and against panva's `oidc-provider` (OpenID
//! Certified, `private_key_jwt`), a server we did not write. The
//! certificates are made by `openssl` for each test.

use lamplighter_ews_sim::{AppRegistration, EntraConfig, SimConfig, Simulator};
use lamplighter_signin::SignInError;
use lamplighter_signin::app::{AppAuthority, AppCertificate, AppSession};
use std::io::BufRead as _;
use std::time::{Duration, SystemTime};

async fn curl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("curl").args(args).output().await.expect("curl is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const APP: &str = "3b8f2a4c-7d1e-4f5a-9b6c-0d2e4f6a8b1c";

/// A self-signed certificate and its key, PEM, as `openssl` makes them for an app registration.
fn certificate() -> (String, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=lamplighter-gateway"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (std::fs::read_to_string(cert).expect("cert"), std::fs::read_to_string(key).expect("key"))
}

async fn sim(cert: &str) -> Simulator {
    Simulator::start(SimConfig {
        entra: EntraConfig {
            apps: vec![AppRegistration {
                client_id: APP.into(),
                certificate_pem: cert.into(),
                roles: vec!["Mail.Read".into()],
                mailboxes: None,
            }],
            ..EntraConfig::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("sim")
}

fn no_secret_in(e: &SignInError, secrets: &[&str]) {
    let text = format!("{e} {e:?}");
    for s in secrets {
        assert!(!text.contains(s), "{text:?} shows a secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_signs_in_with_its_certificate_and_entra_s_checks_refuse_the_rest() {
    let (cert, key) = certificate();
    let sim = sim(&cert).await;
    let authority = format!("{}/9188040d-6c67-4c5b-b112-36a304b66dad", sim.base_url());
    let session =
        AppSession::new(AppAuthority::new(&authority, APP), AppCertificate::from_pem(&cert, &key).expect("pem"))
            .expect("session");
    let token = session.access_token(false).await.expect("a token");
    assert!(!token.is_empty());
    // from memory while it lives; a refusal (fresh) fetches another
    assert_eq!(session.access_token(false).await.expect("cached"), token);
    assert_eq!(session.fetched(), 1);
    let other = session.access_token(true).await.expect("fresh");
    assert_ne!(other, token);
    assert_eq!(session.fetched(), 2);

    // another certificate than the registration's: refused by its thumbprint
    let (cert2, key2) = certificate();
    let stranger =
        AppSession::new(AppAuthority::new(&authority, APP), AppCertificate::from_pem(&cert2, &key2).expect("pem"))
            .expect("session");
    let e = stranger.access_token(false).await.expect_err("not registered");
    assert!(matches!(&e, SignInError::AppRefused(w) if w.contains("AADSTS700027")), "{e}");
    no_secret_in(&e, &[&key2]);
    // the registration's certificate with another key: the signature does not verify
    let forged =
        AppSession::new(AppAuthority::new(&authority, APP), AppCertificate::from_pem(&cert, &key2).expect("pem"))
            .expect("session");
    let e = forged.access_token(false).await.expect_err("a forged signature");
    assert!(matches!(&e, SignInError::AppRefused(w) if w.contains("invalid signature")), "{e}");
    // an app the tenant does not have
    let unknown = AppSession::new(
        AppAuthority::new(&authority, "00000000-0000-0000-0000-000000000000"),
        AppCertificate::from_pem(&cert, &key).expect("pem"),
    )
    .expect("session");
    let e = unknown.access_token(false).await.expect_err("unknown");
    assert!(matches!(&e, SignInError::AppRefused(w) if w.contains("AADSTS700016")), "{e}");

    // by hand: an assertion is good once, not in the past, and only for .default
    let token_url = format!("{authority}/oauth2/v2.0/token");
    let c = AppCertificate::from_pem(&cert, &key).expect("pem");
    let post = |assertion: String, scope: &'static str| {
        let url = token_url.clone();
        async move {
            curl(&[
                "-s",
                "--data-urlencode",
                &format!("client_id={APP}"),
                "--data-urlencode",
                "grant_type=client_credentials",
                "--data-urlencode",
                &format!("scope={scope}"),
                "--data-urlencode",
                "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "--data-urlencode",
                &format!("client_assertion={assertion}"),
                &url,
            ])
            .await
        }
    };
    let once = c.assertion(APP, &token_url, SystemTime::now()).expect("assertion");
    assert!(post(once.clone(), "https://graph.microsoft.com/.default").await.contains("access_token"));
    let again = post(once, "https://graph.microsoft.com/.default").await;
    assert!(again.contains("invalid_client") && again.contains("already used"), "{again}");
    let old = c.assertion(APP, &token_url, SystemTime::now() - Duration::from_secs(3600)).expect("assertion");
    assert!(post(old, "https://graph.microsoft.com/.default").await.contains("AADSTS700024"));
    let fresh = c.assertion(APP, &token_url, SystemTime::now()).expect("assertion");
    assert!(post(fresh, "https://graph.microsoft.com/Mail.Read").await.contains("AADSTS1002012"));
    let elsewhere = c.assertion(APP, "https://login.example.invalid/token", SystemTime::now()).expect("assertion");
    assert!(post(elsewhere, "https://graph.microsoft.com/.default").await.contains("audience"));
}

/// `node server.mjs` with the app registered by its public key, until dropped.
struct Provider {
    child: std::process::Child,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    issuer: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider(public_key: &str) -> Provider {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider");
    assert!(dir.join("node_modules/oidc-provider").is_dir(), "oidc-provider is not installed: run ./dev.sh setup");
    let mut child = std::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("APP_CLIENT_ID", APP)
        .env("APP_PUBLIC_KEY", public_key)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("node is installed (./dev.sh setup)");
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut line).expect("the provider starts");
    let issuer = line.strip_prefix("listening ").expect("its address").trim().to_string();
    Provider { child, _stdout: stdout, issuer }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certified_server_takes_the_assertion_and_refuses_another_key() {
    let (cert, key) = certificate();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("cert.pem"), &cert).expect("write");
    let out = std::process::Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(dir.path().join("cert.pem"))
        .output()
        .expect("openssl");
    let public = String::from_utf8(out.stdout).expect("pem");
    assert!(public.contains("PUBLIC KEY"), "{public}");
    let p = provider(&public);
    let session =
        AppSession::new(AppAuthority::new(&p.issuer, APP), AppCertificate::from_pem(&cert, &key).expect("pem"))
            .expect("session");
    let token = session.access_token(false).await.expect("oidc-provider gives a token for the assertion");
    assert!(!token.is_empty());
    let (cert2, key2) = certificate();
    let other =
        AppSession::new(AppAuthority::new(&p.issuer, APP), AppCertificate::from_pem(&cert2, &key2).expect("pem"))
            .expect("session");
    let e = other.access_token(false).await.expect_err("another key");
    assert!(matches!(e, SignInError::AppRefused(_)), "{e}");
    no_secret_in(&e, &[&key2]);
}
