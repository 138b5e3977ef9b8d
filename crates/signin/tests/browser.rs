//! The browser sign-in (authorization code with PKCE, loopback redirect)
//! against the simulator's Entra-like service, with curl playing the
//! browser: it opens the sign-in page, and follows the redirect back to
//! our loopback listener. Also the service's own checks, driven by curl as
//! an independent client: S256 only, the verifier must match, a code is
//! redeemed once, the redirect URI must be the same and loopback.

use lamplighter_ews_sim::{EntraConfig, SimConfig, Simulator};
use lamplighter_signin::{Authority, GrantStore, MemoryGrants, Session, SignInError};
use std::sync::Arc;

mod common;
use common::{curl, login, login_with};

async fn sim(entra: EntraConfig) -> Simulator {
    Simulator::start(SimConfig { entra, ..SimConfig::default() }).await.expect("sim")
}

fn session(sim: &Simulator, store: Arc<MemoryGrants>) -> Session {
    Session::new(Authority::new(sim.authority("organizations"), EntraConfig::default().client_id), store)
        .expect("session")
}

/// The `Location` a request is redirected to.
async fn location(url: &str) -> String {
    curl(&["-s", "-o", "/dev/null", "-w", "%{redirect_url}", url]).await
}

/// The user who signs in: the browser follows every redirect, back to us.
async fn follow(url: String) {
    let page = curl(&["-s", "-L", &url]).await;
    assert!(page.contains("Signed in to Lamplighter") || page.contains("not signed in"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_sign_in_uses_pkce_and_a_loopback_redirect_and_ends_signed_in() {
    let sim = sim(EntraConfig::default()).await;
    let store = Arc::new(MemoryGrants::default());
    let s = session(&sim, store.clone());
    let seen = Arc::new(std::sync::Mutex::new(String::new()));
    let seen2 = seen.clone();
    let grant = login(&s, |url| async move {
        *seen2.lock().expect("lock") = url.clone();
        follow(url).await;
    })
    .await
    .expect("signed in");
    let url = seen.lock().expect("lock").clone();
    let q: std::collections::HashMap<String, String> =
        url::Url::parse(&url).expect("url").query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["redirect_uri"].starts_with("http://localhost:"), "{}", q["redirect_uri"]);
    assert!(q["scope"].contains("Mail.ReadWrite") && q["scope"].contains("offline_access"));
    assert!(q["state"].len() >= 16);

    assert_eq!(grant.account.as_deref(), Some("mara@contoso.onmicrosoft.com"));
    assert_eq!(store.load().expect("load").as_ref(), Some(&grant), "the grant is in the store");
    let token = s.access_token(false).await.expect("token");
    let status = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{}/me/mailFolders/inbox", sim.graph_url()),
    ])
    .await;
    assert_eq!(status, "200", "the Graph face takes the token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_consent_a_stolen_code_and_a_stranger_on_the_port_are_each_handled() {
    // the user declines in the browser
    let declined = sim(EntraConfig { decline_browser: true, ..EntraConfig::default() }).await;
    let e = login(&session(&declined, Arc::default()), follow).await.expect_err("declined");
    assert!(matches!(e, SignInError::Abandoned(ref w) if w.contains("AADSTS65004")), "{e:?}");

    // something else redeems the code first (a replay): refused, clearly, nothing stored
    let sim = sim(EntraConfig::default()).await;
    let store = Arc::new(MemoryGrants::default());
    let token_url = format!("{}/oauth2/v2.0/token", sim.authority("organizations"));
    let e = login(&session(&sim, store.clone()), |url| async move {
        let back = location(&url).await;
        let code = url::Url::parse(&back)
            .expect("redirect")
            .query_pairs()
            .find(|(k, _)| k == "code")
            .expect("code")
            .1
            .into_owned();
        let thief = curl(&[
            "-s",
            "--data-urlencode",
            &format!("code={code}"),
            "--data",
            &format!(
                "grant_type=authorization_code&client_id={}&redirect_uri=http://localhost:1&code_verifier={}",
                EntraConfig::default().client_id,
                "x".repeat(43)
            ),
            &token_url,
        ])
        .await;
        assert!(thief.contains("invalid_grant"), "{thief}");
        curl(&["-s", &back]).await;
    })
    .await
    .expect_err("the code was spent");
    assert!(matches!(e, SignInError::Refused(ref w) if w.contains("AADSTS54005")), "{e:?}");
    assert_eq!(store.load().expect("load"), None);

    // a stranger answers first with another state: refused, and the real answer still counts
    let s = session(&sim, Arc::default());
    login(&s, |url| async move {
        let back = location(&url).await;
        let base = back.split('?').next().expect("base").to_string();
        let forged = curl(&["-s", "-w", "%{http_code}", &format!("{base}?code=forged&state=not-yours")]).await;
        assert!(forged.ends_with("400") && forged.contains("Not this sign-in"), "{forged}");
        assert!(curl(&["-s", "-w", "%{http_code}", &format!("{base}favicon.ico")]).await.ends_with("404"));
        let page = curl(&["-s", &back]).await;
        assert!(page.contains("Signed in to Lamplighter"), "{page}");
    })
    .await
    .expect("signed in despite the stranger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_holding_the_port_neither_delays_nor_ends_the_sign_in() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let sim = sim(EntraConfig::default()).await;
    let s = session(&sim, Arc::default());
    let (grant, still_open) = login_with(&s, |url| async move {
        let back = location(&url).await;
        let port: u16 = back
            .strip_prefix("http://localhost:")
            .and_then(|r| r.split(['/', '?']).next())
            .and_then(|p| p.parse().ok())
            .expect("a loopback port");
        // connections that send nothing (each would hold a one-at-a-time listener for 10 s)
        let mut idle = Vec::new();
        for _ in 0..5 {
            idle.push(tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect"));
        }
        // and more wrong requests than a sign-in used to tolerate, each answered
        for n in 0..40 {
            let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
            c.write_all(format!("GET /?code=forged{n}&state=x HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut reply = String::new();
            let _ = c.read_to_string(&mut reply).await;
            assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
        }
        // answered while the idle ones are still held: served one at a time,
        // every idle one would have been timed out and closed first
        let mut still_open = 0;
        for c in &mut idle {
            let mut b = [0u8; 1];
            if tokio::time::timeout(std::time::Duration::from_millis(1), c.read(&mut b)).await.is_err() {
                still_open += 1;
            }
        }
        let page = curl(&["-s", &back]).await;
        assert!(page.contains("Signed in to Lamplighter"), "{page}");
        still_open
    })
    .await;
    grant.expect("signed in despite the stranger");
    assert!(still_open.expect("the browser's part ran") >= 1, "the idle connections were served first");
}

/// The authorization request a client makes, with `challenge`.
fn authorize_url(sim: &Simulator, redirect: &str, challenge: &str, method: &str) -> String {
    format!(
        "{}/oauth2/v2.0/authorize?client_id={}&response_type=code&redirect_uri={}&scope=Mail.ReadWrite%20offline_access&state=st&code_challenge={challenge}&code_challenge_method={method}",
        sim.authority("organizations"),
        EntraConfig::default().client_id,
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
    )
}

fn s256(verifier: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_service_checks_pkce_the_redirect_and_single_use_as_entra_does() {
    let sim = sim(EntraConfig::default()).await;
    let token_url = format!("{}/oauth2/v2.0/token", sim.authority("organizations"));
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let redeem = |code: String, redirect: &'static str, verifier: &'static str| {
        let token_url = token_url.clone();
        async move {
            curl(&[
                "-s",
                "--data-urlencode",
                &format!("code={code}"),
                "--data-urlencode",
                &format!("redirect_uri={redirect}"),
                "--data",
                &format!(
                    "grant_type=authorization_code&client_id={}&code_verifier={verifier}",
                    EntraConfig::default().client_id
                ),
                &token_url,
            ])
            .await
        }
    };
    let code_of = |back: String| {
        url::Url::parse(&back).expect("redirect").query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned())
    };

    // a redirect URI that is not loopback: a page, never a redirect
    let page =
        curl(&["-s", "-w", "%{http_code}", &authorize_url(&sim, "https://evil.example/cb", &s256(verifier), "S256")])
            .await;
    assert!(page.contains("AADSTS50011") && page.ends_with("400"), "{page}");
    // plain PKCE (or none) is refused, back at the app
    let back = location(&authorize_url(&sim, "http://localhost:4711", verifier, "plain")).await;
    assert!(back.starts_with("http://localhost:4711/?error=invalid_request") && back.contains("state=st"), "{back}");

    // a wrong verifier is refused, and spends the code
    let code =
        code_of(location(&authorize_url(&sim, "http://localhost:4711", &s256(verifier), "S256")).await).expect("code");
    let wrong = redeem(code.clone(), "http://localhost:4711", "wrong-verifier-wrong-verifier-wrong-verifier-0").await;
    assert!(wrong.contains("AADSTS501481"), "{wrong}");
    let again = redeem(code, "http://localhost:4711", verifier).await;
    assert!(again.contains("AADSTS54005"), "{again}");

    // another redirect URI than the authorization request's is refused
    let code =
        code_of(location(&authorize_url(&sim, "http://localhost:4711", &s256(verifier), "S256")).await).expect("code");
    let moved = redeem(code, "http://localhost:4712", verifier).await;
    assert!(moved.contains("AADSTS50148"), "{moved}");

    // the right verifier gives tokens, once
    let code =
        code_of(location(&authorize_url(&sim, "http://127.0.0.1:4711", &s256(verifier), "S256")).await).expect("code");
    let ok = redeem(code.clone(), "http://127.0.0.1:4711", verifier).await;
    let v: serde_json::Value = serde_json::from_str(&ok).expect("json");
    assert!(v["access_token"].is_string() && v["refresh_token"].is_string(), "{ok}");
    assert!(redeem(code, "http://127.0.0.1:4711", verifier).await.contains("AADSTS54005"));
}
