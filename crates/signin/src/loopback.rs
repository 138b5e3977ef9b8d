//! The loopback redirect of a native app's browser sign-in (RFC 8252 §7.3):
//! a listener on `localhost` that takes the one request the browser makes
//! when the sign-in page sends it back, and reads the authorization
//! response (RFC 6749 §4.1.2) from its query.
//!
//! Anything on this machine can connect to the port, so connections are
//! served side by side (at most [`MAX_OPEN`] at once; more are closed
//! unread), a request is read only up to [`MAX_HEAD`] bytes and
//! [`READ_TIMEOUT`], and an answer whose `state` is not ours is refused
//! while the wait goes on: a stranger holding connections open or sending
//! requests neither delays the browser's answer nor ends the sign-in, whose
//! only end besides the answer is the caller's timeout.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request head larger than this is not the browser's redirect.
pub(crate) const MAX_HEAD: usize = 8 << 10;
/// A connection that sends nothing for this long is dropped.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; one more is closed at once.
pub(crate) const MAX_OPEN: usize = 16;

/// What the browser brought back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The authorization code.
    Code(String),
    /// The sign-in page's refusal: `error` and `error_description`.
    Error { error: String, description: Option<String> },
}

/// How one request reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// The answer, with our state.
    Answer(Answer),
    /// An answer with another state (or none): not for this sign-in.
    ForeignState,
    /// Not an answer at all (another path, no code and no error).
    Other,
}

/// Reads a request head (`GET /?code=…&state=… HTTP/1.1`).
pub(crate) fn parse(head: &[u8], state: &str) -> Request {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.lines().next().unwrap_or("").split(' ');
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else { return Request::Other };
    let Ok(url) = oauth2::url::Url::parse(&format!("http://localhost{target}")) else { return Request::Other };
    if url.path() != "/" {
        return Request::Other;
    }
    let (mut code, mut error, mut description, mut got_state) = (None, None, None, None);
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            "error_description" => description = Some(v.into_owned()),
            "state" => got_state = Some(v.into_owned()),
            _ => {}
        }
    }
    if code.is_none() && error.is_none() {
        return Request::Other;
    }
    // constant-time comparison is not needed: the state is not a secret once the browser has it
    if got_state.as_deref() != Some(state) {
        return Request::ForeignState;
    }
    match (code, error) {
        (_, Some(error)) => Request::Answer(Answer::Error { error, description }),
        (Some(code), None) => Request::Answer(Answer::Code(code)),
        (None, None) => Request::Other,
    }
}

fn page(status: &str, title: &str, text: &str) -> Vec<u8> {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title></head><body><h1>{}</h1><p>{}</p></body></html>",
        esc(title),
        esc(title),
        esc(text)
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            let n = stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            head.extend_from_slice(&buf[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Some(());
            }
            if head.len() > MAX_HEAD {
                return None;
            }
        }
    };
    tokio::time::timeout(READ_TIMEOUT, read).await.ok()??;
    Some(head)
}

/// The listeners: `127.0.0.1` and, on the same port where it can, `::1`,
/// since browsers resolve `localhost` to either.
pub(crate) struct Loopback {
    v4: TcpListener,
    v6: Option<TcpListener>,
}

impl Loopback {
    pub(crate) async fn bind() -> std::io::Result<Loopback> {
        let v4 = TcpListener::bind(("127.0.0.1", 0)).await?;
        let port = v4.local_addr()?.port();
        let v6 = TcpListener::bind(("::1", port)).await.ok();
        Ok(Loopback { v4, v6 })
    }

    /// `http://localhost:<port>` (Entra accepts any port for a native app's `http://localhost`).
    pub(crate) fn redirect_uri(&self) -> String {
        format!("http://localhost:{}", self.v4.local_addr().map(|a| a.port()).unwrap_or(0))
    }

    async fn accept(&self) -> std::io::Result<TcpStream> {
        match &self.v6 {
            Some(v6) => tokio::select! {
                r = self.v4.accept() => r.map(|(s, _)| s),
                r = v6.accept() => r.map(|(s, _)| s),
            },
            None => self.v4.accept().await.map(|(s, _)| s),
        }
    }

    /// Waits for the answer with `state` (the caller bounds the wait).
    pub(crate) async fn answer(&self, state: &str) -> Answer {
        let mut open = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = self.accept() => {
                    let Ok(stream) = accepted else { continue };
                    if open.len() >= MAX_OPEN {
                        // full: this one is closed unread
                        drop(stream);
                        continue;
                    }
                    open.spawn(serve(stream, state.to_string()));
                }
                Some(done) = open.join_next(), if !open.is_empty() => {
                    if let Ok(Some(answer)) = done {
                        return answer;
                    }
                }
            }
        }
    }
}

/// One connection: its request read and answered; the answer if it was ours.
async fn serve(mut stream: TcpStream, state: String) -> Option<Answer> {
    let head = read_head(&mut stream).await?;
    let (reply, answer) = match parse(&head, &state) {
        Request::Answer(a @ Answer::Code(_)) => {
            (page("200 OK", "Signed in to Lamplighter", "You can close this tab and go back to Lamplighter."), Some(a))
        }
        Request::Answer(a @ Answer::Error { .. }) => {
            let text = match &a {
                Answer::Error { description: Some(d), .. } => d.clone(),
                Answer::Error { error, .. } => error.clone(),
                Answer::Code(_) => String::new(),
            };
            (page("200 OK", "Lamplighter was not signed in", &text), Some(a))
        }
        Request::ForeignState => (
            page(
                "400 Bad Request",
                "Not this sign-in",
                "This answer is not for the sign-in Lamplighter is waiting for.",
            ),
            None,
        ),
        Request::Other => (page("404 Not Found", "Lamplighter", "Nothing here."), None),
    };
    let _ = tokio::time::timeout(READ_TIMEOUT, stream.write_all(&reply)).await;
    let _ = stream.shutdown().await;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_is_read_and_a_foreign_state_refused() {
        let get = |t: &str| format!("GET {t} HTTP/1.1\r\nHost: localhost:1\r\n\r\n").into_bytes();
        assert_eq!(parse(&get("/?code=abc%2B1&state=s1"), "s1"), Request::Answer(Answer::Code("abc+1".into())));
        assert_eq!(
            parse(&get("/?error=access_denied&error_description=AADSTS65004%3A+declined&state=s1"), "s1"),
            Request::Answer(Answer::Error {
                error: "access_denied".into(),
                description: Some("AADSTS65004: declined".into())
            })
        );
        assert_eq!(parse(&get("/?code=abc&state=other"), "s1"), Request::ForeignState);
        assert_eq!(parse(&get("/?code=abc"), "s1"), Request::ForeignState);
        assert_eq!(parse(&get("/favicon.ico"), "s1"), Request::Other);
        assert_eq!(parse(&get("/x?code=abc&state=s1"), "s1"), Request::Other);
        assert_eq!(parse(b"POST /?code=a&state=s1 HTTP/1.1\r\n\r\n", "s1"), Request::Other);
        assert_eq!(parse(b"\xff\xfe", "s1"), Request::Other);
    }

    proptest::proptest! {
        #[test]
        fn any_request_is_read_without_a_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse(&bytes, "state");
        }
    }
}
