//! The device sign-in and token upkeep against the simulator's Entra-like
//! sign-in service, with curl playing the user's browser step: consent,
//! refresh-token rotation, revocation as "sign in again", Conditional
//! Access, a declined sign-in and an unknown app, each a clear error.

use lamplighter_ews_sim::{EntraConfig, SimConfig, Simulator};
use lamplighter_signin::{Authority, GrantStore, MemoryGrants, Session, SignInError};
use std::sync::Arc;
use std::time::Duration;

async fn sim(entra: EntraConfig) -> Simulator {
    Simulator::start(SimConfig { entra, ..SimConfig::default() }).await.expect("sim")
}

fn fast() -> EntraConfig {
    EntraConfig { device_interval: Duration::from_secs(1), ..EntraConfig::default() }
}

fn session(sim: &Simulator, store: Arc<MemoryGrants>) -> Session {
    Session::new(Authority::new(sim.authority("organizations"), EntraConfig::default().client_id), store)
        .expect("session")
}

/// The user's browser step, as curl: the form at the verification page.
async fn enter(uri: &str, code: &str, decision: &str) -> String {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "--data", &format!("user_code={code}&decision={decision}"), uri])
        .output()
        .await
        .expect("curl is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Signs in by device code, the user approving (or declining) as soon as the code shows.
async fn login(session: &Session, decision: &'static str) -> Result<lamplighter_signin::Grant, SignInError> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let user = async move {
        let (uri, code): (String, String) = rx.recv().await.expect("a code was shown");
        enter(&uri, &code, decision).await
    };
    let (grant, page) = tokio::join!(
        session.device_login(move |d| {
            let _ = tx.send((d.verification_uri.clone(), d.user_code.clone()));
        }),
        user
    );
    if decision == "approve" {
        assert!(page.contains("You have signed in"), "{page}");
    }
    grant
}

async fn graph_status(sim: &Simulator, token: &str) -> u16 {
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{}/me/mailFolders/inbox", sim.graph_url()))
        .output()
        .await
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_sign_in_gives_tokens_that_graph_takes_and_refreshes_rotate() {
    let sim = sim(fast()).await;
    let store = Arc::new(MemoryGrants::default());
    let s = session(&sim, store.clone());
    assert_eq!(s.access_token(false).await, Err(SignInError::NotSignedIn));
    let grant = login(&s, "approve").await.expect("signed in");
    assert_eq!(grant.account.as_deref(), Some("mara@contoso.onmicrosoft.com"));
    assert!(
        grant.scopes.iter().any(|x| x.ends_with("Mail.ReadWrite"))
            && grant.scopes.iter().any(|x| x == "offline_access")
    );
    assert!(format!("{grant:?}").find(&grant.refresh_token).is_none(), "Debug never shows the token");
    let first = s.access_token(false).await.expect("token");
    assert_eq!(graph_status(&sim, &first).await, 200, "the Graph face takes it");
    assert!(s.token_expiry().await.is_some());
    // from memory while it lives, without a request
    let issued = sim.grants_issued();
    assert_eq!(s.access_token(false).await.expect("token"), first);
    assert_eq!(sim.grants_issued(), issued);
    // a refusal asks for a fresh one: the refresh token rotates
    let old_refresh = store.load().expect("load").expect("grant").refresh_token;
    let second = s.access_token(true).await.expect("refreshed");
    assert_ne!(second, first);
    let new_refresh = store.load().expect("load").expect("grant").refresh_token;
    assert_ne!(new_refresh, old_refresh, "rotated, and kept");
    // the spent refresh token is refused (a replay), the kept one works
    let replay = tokio::process::Command::new("curl")
        .args([
            "-s",
            "--data",
            &format!(
                "grant_type=refresh_token&client_id={}&refresh_token={old_refresh}",
                EntraConfig::default().client_id
            ),
        ])
        .arg(format!("{}/oauth2/v2.0/token", sim.authority("organizations")))
        .output()
        .await
        .expect("curl");
    assert!(String::from_utf8_lossy(&replay.stdout).contains("invalid_grant"));
    assert!(s.access_token(true).await.is_ok());

    // revoked (an admin, a password reset): sign in again, once, not a loop
    sim.revoke_grants();
    let e = s.access_token(true).await.expect_err("revoked");
    assert!(matches!(e, SignInError::SignInAgain(ref w) if w.contains("AADSTS50173")), "{e:?}");
    assert!(e.to_string().ends_with("sign in again"), "{e}");
    assert!(!e.to_string().contains(&new_refresh));
    // and a fresh sign-in heals it
    login(&s, "approve").await.expect("signed in again");
    assert!(s.access_token(false).await.is_ok());
    s.logout().await.expect("logout");
    assert_eq!(store.load().expect("load"), None);
    assert_eq!(s.access_token(false).await, Err(SignInError::NotSignedIn));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_access_a_declined_sign_in_and_an_unknown_app_are_named() {
    let blocked = sim(EntraConfig { block_device_code: true, ..fast() }).await;
    let e = login(&session(&blocked, Arc::default()), "approve").await.expect_err("blocked");
    assert!(matches!(e, SignInError::Blocked(ref w) if w.contains("AADSTS53003")), "{e:?}");
    assert!(e.to_string().contains("Conditional Access"), "{e}");

    let sim = sim(fast()).await;
    let e = login(&session(&sim, Arc::default()), "decline").await.expect_err("declined");
    assert!(matches!(e, SignInError::Abandoned(_)), "{e:?}");

    let stranger = Session::new(
        Authority::new(sim.authority("organizations"), "00000000-0000-0000-0000-000000000000"),
        Arc::new(MemoryGrants::default()),
    )
    .expect("session");
    let e = stranger.device_login(|_| {}).await.expect_err("unknown app");
    assert!(matches!(e, SignInError::Registration(ref w) if w.contains("AADSTS700016")), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_service_bounds_the_device_codes_a_stranger_asks_for() {
    let sim = sim(fast()).await;
    let tls = lamplighter_https::Tls::new(None).expect("tls");
    let url = format!("{}/oauth2/v2.0/devicecode", sim.authority("organizations"));
    let body = format!("client_id={}&scope=offline_access", EntraConfig::default().client_id);
    let mut statuses = Vec::new();
    for _ in 0..1001 {
        let req = lamplighter_signin::oauth2::http::Request::post(url.as_str())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone().into_bytes())
            .expect("request");
        let a = lamplighter_https::exchange(&tls, req, None, Duration::from_secs(10), 1 << 16).await.expect("answer");
        statuses.push(a.status().as_u16());
    }
    assert!(statuses[..1000].iter().all(|s| *s == 200));
    assert_eq!(statuses[1000], 429, "the 1001st pending sign-in is refused");
}
