//! What the browser sign-in tests share: curl, and a sign-in whose browser
//! step is a closure of the test's (given the sign-in page's address).

use lamplighter_signin::{Grant, Session, SignInError};

pub(crate) async fn curl(args: &[&str]) -> String {
    let out = tokio::process::Command::new("curl").args(args).output().await.expect("curl is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Signs in through the browser; `browser` plays the user's part.
pub(crate) async fn login<F, Fut>(session: &Session, browser: F) -> Result<Grant, SignInError>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    login_with(session, browser).await.0
}

/// [`login`], and what the browser's part returned (`None`: it never ran).
pub(crate) async fn login_with<F, Fut, T>(session: &Session, browser: F) -> (Result<Grant, SignInError>, Option<T>)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = T>,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    let user = async move {
        match rx.await {
            Ok(url) => Some(browser(url).await),
            Err(_) => None,
        }
    };
    tokio::join!(
        session.browser_login(move |url| {
            let _ = tx.send(url.to_string());
        }),
        user
    )
}
