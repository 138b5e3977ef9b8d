//! The sign-in against an independent, OpenID-certified authorization
//! server: panva's `oidc-provider` (npm, `tests/oidc-provider/`, installed
//! by `./dev.sh setup`), started on loopback with Entra's endpoint layout,
//! PKCE required and the device flow. Only the user is scripted (it signs
//! in and consents at once); curl plays the browser, following redirects
//! with a cookie jar as a browser does.
//!
//! A sign-in with a code injected from another authorization request (a
//! wrong `code_verifier` for it), a replayed code, an expired device code
//! and a revoked refresh token each end in a clear error that carries no
//! secret.

use lamplighter_signin::{Authority, GrantStore, MemoryGrants, Session, SignInError};
use std::io::BufRead as _;
use std::sync::Arc;

mod common;
use common::{curl, login};

const CLIENT_ID: &str = "lamplighter-test";

/// `node server.mjs`, until dropped.
struct Provider {
    child: std::process::Child,
    /// Kept open: node ends with EPIPE when its stdout closes.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    issuer: String,
    jar: tempfile::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn provider(device_code_ttl: u32) -> Provider {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc-provider");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "oidc-provider is not installed in {}: run ./dev.sh setup",
        dir.display()
    );
    let mut child = std::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("CLIENT_ID", CLIENT_ID)
        .env("DEVICE_CODE_TTL", device_code_ttl.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("node is installed (./dev.sh setup)");
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut line).expect("the provider starts");
    let issuer = line.strip_prefix("listening ").expect("its address").trim().to_string();
    Provider { child, _stdout: stdout, issuer, jar: tempfile::tempdir().expect("tmp") }
}

fn session(p: &Provider, store: Arc<MemoryGrants>) -> Session {
    let mut authority = Authority::new(p.issuer.clone(), CLIENT_ID);
    // OpenID Connect Core §11: a refresh token for offline_access only with consent
    authority.prompt = Some("consent".into());
    Session::new(authority, store).expect("session")
}

async fn curl_owned(args: Vec<String>) -> String {
    curl(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
}

/// The browser: follows redirects (keeping cookies) until one leads to the
/// app's loopback address, which it returns without visiting.
async fn browse_until_app(p: &Provider, url: &str) -> String {
    let jar = p.jar.path().join("cookies");
    let jar = jar.to_str().expect("path");
    let mut at = url.to_string();
    for _ in 0..10 {
        let next = curl(&["-s", "-b", jar, "-c", jar, "-w", "\n%{redirect_url}", &at]).await;
        let (body, next) = next.rsplit_once('\n').map(|(b, n)| (b.to_string(), n.to_string())).unwrap_or_default();
        assert!(!next.is_empty(), "no redirect from {at}: {body}");
        if next.starts_with("http://localhost") {
            return next;
        }
        at = next;
    }
    panic!("the sign-in never came back to the app");
}

fn param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

fn no_secret_in(e: &SignInError, secrets: &[&str]) {
    let text = format!("{e} {e:?}");
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(!text.contains(s), "{text:?} shows a secret");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_sign_in_works_with_a_certified_server_and_a_revoked_grant_asks_to_sign_in_again() {
    let provider = provider(600);
    let p = &provider;
    let store = Arc::new(MemoryGrants::default());
    let s = session(p, store.clone());
    let grant = login(&s, |url| async move {
        let back = browse_until_app(p, &url).await;
        let page = curl(&["-s", &back]).await;
        assert!(page.contains("Signed in to Lamplighter"), "{page}");
    })
    .await
    .expect("signed in");
    assert!(grant.scopes.iter().any(|x| x == "offline_access"), "{:?}", grant.scopes);
    let first = s.access_token(false).await.expect("token");

    // rotation: a refresh gives a new refresh token, kept in the store
    let before = store.load().expect("load").expect("grant").refresh_token;
    let second = s.access_token(true).await.expect("refreshed");
    assert_ne!(first, second);
    let after = store.load().expect("load").expect("grant").refresh_token;
    assert_ne!(before, after, "rotated");

    // the user (or an admin) revokes the refresh token at the server: sign in again, once
    let revoked = curl(&[
        "-s",
        "-w",
        "%{http_code}",
        "--data-urlencode",
        &format!("token={after}"),
        "--data",
        &format!("token_type_hint=refresh_token&client_id={CLIENT_ID}"),
        &format!("{}/oauth2/v2.0/revoke", p.issuer),
    ])
    .await;
    assert!(revoked.ends_with("200"), "{revoked}");
    let e = s.access_token(true).await.expect_err("revoked");
    assert!(matches!(e, SignInError::SignInAgain(_)), "{e:?}");
    assert!(e.to_string().ends_with("sign in again"), "{e}");
    no_secret_in(&e, &[&after, &before, &first, &second]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_code_a_replayed_code_and_an_expired_device_code_are_refused_clearly() {
    let provider = provider(2);
    let p = &provider;
    let token_url = format!("{}/oauth2/v2.0/token", p.issuer);

    // another authorization request's code, slipped into our redirect: our
    // verifier does not fit it, and the server says no
    let verifier = "M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag";
    let foreign = format!(
        "{}/oauth2/v2.0/authorize?client_id={CLIENT_ID}&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%3A4711&scope=offline_access&prompt=consent&state=theirs&code_challenge={}&code_challenge_method=S256",
        p.issuer,
        s256(verifier)
    );
    let stolen = param(&browse_until_app(p, &foreign).await, "code");
    assert!(!stolen.is_empty());
    let store = Arc::new(MemoryGrants::default());
    let s = session(p, store.clone());
    let injected = stolen.clone();
    let e = login(&s, |url| async move {
        let back = browse_until_app(p, &url).await;
        let base = back.split('?').next().expect("base").to_string();
        let forged = format!("{base}?code={injected}&state={}&iss={}", param(&back, "state"), param(&back, "iss"));
        curl(&["-s", &forged]).await;
    })
    .await
    .expect_err("the injected code does not fit our verifier");
    assert!(matches!(e, SignInError::Refused(_)), "{e:?}");
    assert!(e.to_string().contains("try again"), "{e}");
    no_secret_in(&e, &[&stolen]);
    assert_eq!(store.load().expect("load"), None, "nothing kept");

    // a replayed code: the first redemption works, the second is refused
    let redeem = || {
        curl_owned(vec![
            "-s".into(),
            "--data-urlencode".into(),
            format!("code={stolen}"),
            "--data".into(),
            format!(
                "grant_type=authorization_code&client_id={CLIENT_ID}&redirect_uri=http%3A%2F%2Flocalhost%3A4711&code_verifier={verifier}"
            ),
            token_url.clone(),
        ])
    };
    let first: serde_json::Value = serde_json::from_str(&redeem().await).expect("json");
    assert!(first["access_token"].is_string(), "{first}");
    let again: serde_json::Value = serde_json::from_str(&redeem().await).expect("json");
    assert_eq!(again["error"], "invalid_grant", "{again}");

    // a device code nobody entered runs out: the sign-in ends and says so
    let e = s.device_login(|d| assert!(!d.user_code.is_empty())).await.expect_err("expired");
    assert!(matches!(e, SignInError::Abandoned(_)), "{e:?}");
    assert!(e.to_string().contains("expired"), "{e}");
    // and the server itself calls a late poll expired
    let device = curl(&[
        "-s",
        "--data",
        &format!("client_id={CLIENT_ID}&scope=offline_access"),
        &format!("{}/oauth2/v2.0/devicecode", p.issuer),
    ])
    .await;
    let device: serde_json::Value = serde_json::from_str(&device).expect("json");
    let code = device["device_code"].as_str().expect("device code").to_string();
    let poll = || {
        curl_owned(vec![
            "-s".into(),
            "--data-urlencode".into(),
            format!("device_code={code}"),
            "--data".into(),
            format!("grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id={CLIENT_ID}"),
            token_url.clone(),
        ])
    };
    let mut answer = poll().await;
    while answer.contains("authorization_pending") || answer.contains("slow_down") {
        // the server's own clock decides; each poll is one event, its interval apart
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        answer = poll().await;
    }
    assert!(answer.contains("expired_token"), "{answer}");
}
