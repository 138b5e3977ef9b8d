//! The socket between the two processes of the desktop app.
//!
//! The tray process (`lamplighter`) runs all day: the engine, the tray icon,
//! notifications, playback. The window (`lamplighter-window`, Tauri and
//! WebKit) runs only while it is open, so WebKit's memory is given back
//! when it closes. This crate is what they say to each other, and nothing
//! else: typed [`Call`]s from the window, [`ToWindow`] replies and pushes
//! from the tray, one JSON object per line on a Unix socket.
//!
//! - **Where:** `desktop.sock` in the state directory, which is `0700`; the
//!   socket itself is `0600`, and [`accept`] also checks the peer's uid, so
//!   only the user's own processes are heard.
//! - **Bounded:** a line longer than [`MAX_FRAME`] ends the connection with
//!   [`LinkError::TooLarge`]; a line that is not a message ends it with
//!   [`LinkError::Malformed`]. Nothing a peer sends is acted on half-read.
//! - **One instance:** [`bind`] refuses with [`LinkError::AlreadyRunning`]
//!   when a tray answers on the socket, so a second launch hands over its
//!   request ([`ask_to_open`]) and exits; a socket left by a crash is replaced.
//! - **Replies are the page's JSON:** the window passes a reply's value to
//!   the page unread (the tray serializes the engine's typed values), while
//!   pushes it acts on ([`ToWindow::Snapshot`], [`ToWindow::Show`]) are typed.

use lamplighter_engine::{ErrorReport, SettingsUpdate, Snapshot};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// The longest line either side accepts (the window's lists of a full mailbox fit many times).
pub const MAX_FRAME: usize = 8 << 20;

/// What can go wrong on the link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket could not be used.
    #[error("the desktop socket {path}: {source}")]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Another tray process already answers on the socket.
    #[error("Lamplighter is already running (it answers on {0})")]
    AlreadyRunning(PathBuf),
    /// The peer runs as another user.
    #[error("a process of another user (uid {0}) connected; refused")]
    ForeignPeer(u32),
    /// A line longer than [`MAX_FRAME`].
    #[error("a message longer than {MAX_FRAME} bytes; connection closed")]
    TooLarge,
    /// A line that is not a message of this protocol.
    #[error("a message that is not understood ({0}); connection closed")]
    Malformed(String),
    /// The tray process went away.
    #[error("the tray process is gone")]
    Closed,
}

/// Which page the window shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Page {
    /// Voicemail and missed calls.
    Inbox,
    /// The settings form.
    Settings,
}

impl Page {
    /// The page's name on a command line (`--page inbox`).
    pub fn name(self) -> &'static str {
        match self {
            Page::Inbox => "inbox",
            Page::Settings => "settings",
        }
    }

    /// The page a command-line name means.
    pub fn from_name(name: &str) -> Option<Page> {
        [Page::Inbox, Page::Settings].into_iter().find(|p| p.name() == name)
    }

    /// The page's address in `ui/`.
    pub fn url(self) -> &'static str {
        match self {
            Page::Inbox => "index.html#inbox",
            Page::Settings => "index.html#settings",
        }
    }
}

/// A call from the window, one per page action. The tags are the names the
/// page invokes (`invoke('mark_heard', { itemId })`), the fields its
/// argument names, so [`Call::from_invoke`] reads the page's call directly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum Call {
    /// The current [`Snapshot`].
    Snapshot,
    /// The lists of voicemail and calls.
    Lists,
    /// The page's words in the user's language.
    UiStrings,
    /// The item a notification asked the window to show, once.
    TakeFocus,
    /// The settings as the form shows them.
    SettingsView,
    /// Save the form.
    SaveSettings {
        /// The form and any new passwords.
        update: Box<SettingsUpdate>,
    },
    /// Play a voicemail (marks it heard).
    Play {
        /// The voicemail.
        item_id: String,
    },
    /// Pause or resume playback.
    PausePlayback {
        /// Paused or not.
        paused: bool,
    },
    /// Stop playback.
    StopPlayback,
    /// Mark a voicemail heard.
    MarkHeard {
        /// The voicemail.
        item_id: String,
    },
    /// Mark a missed call seen.
    MarkCallSeen {
        /// The call.
        item_id: String,
    },
    /// Open a `tel:`/`sip:` URI with the desktop's handler.
    CallBack {
        /// The URI.
        uri: String,
    },
    /// Hand the recording to the desktop's default player.
    OpenInDefaultPlayer {
        /// The voicemail.
        item_id: String,
    },
    /// Send the lamp to the phones again.
    ResendLamp,
    /// Reconnect the mailbox now.
    RetryNow,
    /// Run the settings check.
    CheckSettings,
    /// Pause notifications or not.
    SetNotificationsPaused {
        /// Paused or not.
        paused: bool,
    },
    /// Sign in to Microsoft 365 through the browser; answered when the
    /// sign-in ends (the snapshot's `sign_in_url` shows meanwhile).
    SignInMicrosoft,
    /// Sign out of Microsoft 365 here.
    SignOutMicrosoft,
    /// Whether Lamplighter starts at login.
    Autostart,
    /// Start at login or not.
    SetAutostart {
        /// On or off.
        enabled: bool,
    },
}

impl Call {
    /// The call a page made: its command name and its argument object.
    pub fn from_invoke(command: &str, args: serde_json::Value) -> Result<Call, LinkError> {
        let mut object = match args {
            serde_json::Value::Object(m) => m,
            serde_json::Value::Null => serde_json::Map::new(),
            other => return Err(LinkError::Malformed(format!("{command}: arguments {other} are not an object"))),
        };
        object.insert("call".into(), serde_json::Value::String(command.into()));
        serde_json::from_value(serde_json::Value::Object(object))
            .map_err(|e| LinkError::Malformed(format!("{command}: {e}")))
    }
}

/// A reply: the page's JSON, or the engine's error report.
pub type Reply = Result<serde_json::Value, ErrorReport>;

/// What the tray hears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToTray {
    /// The first line of a window process: it is the window and gets pushes.
    Window {
        /// Its process id (for the log).
        pid: u32,
    },
    /// A call; answered by a [`ToWindow::Reply`] with the same id.
    Call {
        /// Chosen by the window, echoed in the reply.
        id: u64,
        /// What to do.
        call: Call,
    },
    /// Open the window (a second launch of the app, `--open`/`--settings`).
    Open {
        /// Which page.
        page: Page,
    },
}

/// What the window hears.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWindow {
    /// The answer to [`ToTray::Call`] `id`.
    Reply {
        /// The call's id.
        id: u64,
        /// Its result.
        result: Reply,
    },
    /// The state changed.
    Snapshot {
        /// The new state.
        snapshot: Box<Snapshot>,
    },
    /// Scroll to and highlight an item (a notification was clicked).
    FocusItem {
        /// The item.
        item_id: String,
    },
    /// Come to the front on this page.
    Show {
        /// Which page.
        page: Page,
    },
    /// Close: the tray quits, or another window is open already.
    Close,
}

/// The socket's place for these paths.
pub fn socket_path(paths: &lamplighter_config::Paths) -> PathBuf {
    paths.state_dir.join("desktop.sock")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LinkError + '_ {
    move |source| LinkError::Io { path: path.to_path_buf(), source }
}

/// Reads messages, one per line, refusing lines over [`MAX_FRAME`].
pub struct FrameReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Reads from `inner`.
    pub fn new(inner: R) -> Self {
        FrameReader { inner: BufReader::new(inner), line: Vec::new() }
    }

    /// The next message; `None` at a clean end of the stream.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, LinkError> {
        loop {
            self.line.clear();
            let limit = MAX_FRAME as u64 + 1;
            let n = (&mut self.inner)
                .take(limit)
                .read_until(b'\n', &mut self.line)
                .await
                .map_err(|e| LinkError::Malformed(e.to_string()))?;
            if n == 0 {
                return Ok(None);
            }
            if self.line.last() != Some(&b'\n') {
                // the limit was reached, or the stream ended inside a line
                return if self.line.len() > MAX_FRAME { Err(LinkError::TooLarge) } else { Ok(None) };
            }
            if self.line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return serde_json::from_slice(&self.line).map(Some).map_err(|e| LinkError::Malformed(e.to_string()));
        }
    }
}

/// Writes one message as one line.
pub async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(w: &mut W, message: &T) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(message).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

/// Binds the tray's socket (`0600`). A socket that answers means another
/// tray runs: [`LinkError::AlreadyRunning`]. One that does not is a
/// leftover of a crash and is replaced.
pub async fn bind(path: &Path) -> Result<UnixListener, LinkError> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(LinkError::AlreadyRunning(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io(path))?;
    }
    if let Some(dir) = path.parent() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).map_err(io(path))?;
    }
    let listener = UnixListener::bind(path).map_err(io(path))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io(path))?;
    Ok(listener)
}

/// This process's uid, as the kernel reports it for `/proc/self`.
fn own_uid() -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid())
}

/// Accepts the next connection from a process of this user.
pub async fn accept(listener: &UnixListener) -> Result<UnixStream, LinkError> {
    let path = listener.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf)).unwrap_or_default();
    let (stream, _) = listener.accept().await.map_err(io(&path))?;
    let peer = stream.peer_cred().map_err(io(&path))?.uid();
    if peer != own_uid().map_err(io(&path))? {
        return Err(LinkError::ForeignPeer(peer));
    }
    Ok(stream)
}

/// A second launch: asks the running tray to open its window on `page`.
pub async fn ask_to_open(path: &Path, page: Page) -> Result<(), LinkError> {
    let mut stream = UnixStream::connect(path).await.map_err(io(path))?;
    write_frame(&mut stream, &ToTray::Open { page }).await.map_err(io(path))?;
    stream.shutdown().await.map_err(io(path))
}

/// What one connection brought to the tray.
#[derive(Debug)]
pub enum Incoming {
    /// A window attached; pushes for it go into `pushes`.
    WindowAttached {
        /// This connection.
        conn: u64,
        /// The window's process id.
        pid: u32,
        /// Where its pushes go.
        pushes: mpsc::Sender<ToWindow>,
    },
    /// That window's connection ended (it closed, or crashed).
    WindowDetached {
        /// The connection.
        conn: u64,
    },
    /// A call to answer through `reply`.
    Call {
        /// What to do.
        call: Call,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// Open the window.
    Open {
        /// Which page.
        page: Page,
    },
}

/// Serves one accepted connection until it ends, handing what it brings to
/// the tray's loop. Calls are answered in any order, each by its id.
pub async fn serve_connection(stream: UnixStream, conn: u64, tray: mpsc::Sender<Incoming>) -> Result<(), LinkError> {
    let (read, mut write) = stream.into_split();
    let mut reader = FrameReader::new(read);
    let (out_tx, mut out_rx) = mpsc::channel::<ToWindow>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if write_frame(&mut write, &m).await.is_err() {
                break;
            }
        }
    });
    let mut attached = false;
    let result = loop {
        let message = match reader.next::<ToTray>().await {
            Ok(Some(m)) => m,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match message {
            ToTray::Window { pid } if !attached => {
                attached = true;
                let _ = tray.send(Incoming::WindowAttached { conn, pid, pushes: out_tx.clone() }).await;
            }
            ToTray::Window { .. } => {}
            ToTray::Open { page } => {
                let _ = tray.send(Incoming::Open { page }).await;
            }
            ToTray::Call { id, call } => {
                let (reply, answer) = oneshot::channel();
                if tray.send(Incoming::Call { call, reply }).await.is_err() {
                    break Err(LinkError::Closed);
                }
                let out = out_tx.clone();
                tokio::spawn(async move {
                    let result = answer.await.unwrap_or_else(|_| {
                        Err(ErrorReport {
                            code: "tray_quit".into(),
                            message: "Lamplighter is quitting.".into(),
                            fields: Vec::new(),
                        })
                    });
                    let _ = out.send(ToWindow::Reply { id, result }).await;
                });
            }
        }
    };
    if attached {
        let _ = tray.send(Incoming::WindowDetached { conn }).await;
    }
    drop(out_tx);
    let _ = writer.await;
    result
}

/// The window's end of the link.
#[derive(Clone)]
pub struct Client {
    calls: mpsc::Sender<(Call, oneshot::Sender<Reply>)>,
}

/// A push from the tray, for the window to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    /// The state changed.
    Snapshot(Box<Snapshot>),
    /// Show this item.
    FocusItem(String),
    /// Come to the front on this page.
    Show(Page),
    /// Close the window.
    Close,
}

impl Client {
    /// Connects to the tray at `path` as its window. Pushes arrive on the
    /// receiver; it closes when the tray goes away.
    pub async fn connect(path: &Path) -> Result<(Client, mpsc::Receiver<Push>), LinkError> {
        let stream = UnixStream::connect(path).await.map_err(io(path))?;
        let (read, mut write) = stream.into_split();
        write_frame(&mut write, &ToTray::Window { pid: std::process::id() }).await.map_err(io(path))?;
        let (calls, mut calls_rx) = mpsc::channel::<(Call, oneshot::Sender<Reply>)>(64);
        let (push_tx, push_rx) = mpsc::channel(64);
        tokio::spawn(async move {
            let mut reader = FrameReader::new(read);
            let mut pending: HashMap<u64, oneshot::Sender<Reply>> = HashMap::new();
            let mut next_id = 0u64;
            loop {
                tokio::select! {
                    call = calls_rx.recv() => {
                        let Some((call, reply)) = call else { break };
                        next_id += 1;
                        if write_frame(&mut write, &ToTray::Call { id: next_id, call }).await.is_err() {
                            break;
                        }
                        pending.insert(next_id, reply);
                    }
                    message = reader.next::<ToWindow>() => {
                        let push = match message {
                            Ok(Some(ToWindow::Reply { id, result })) => {
                                if let Some(reply) = pending.remove(&id) {
                                    let _ = reply.send(result);
                                }
                                continue;
                            }
                            Ok(Some(ToWindow::Snapshot { snapshot })) => Push::Snapshot(snapshot),
                            Ok(Some(ToWindow::FocusItem { item_id })) => Push::FocusItem(item_id),
                            Ok(Some(ToWindow::Show { page })) => Push::Show(page),
                            Ok(Some(ToWindow::Close)) => Push::Close,
                            Ok(None) => break,
                            Err(e) => {
                                log::warn!("desktop link: {e}");
                                break;
                            }
                        };
                        if push_tx.send(push).await.is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Ok((Client { calls }, push_rx))
    }

    /// Makes a call and waits for its reply.
    pub async fn call(&self, call: Call) -> Result<Reply, LinkError> {
        let (tx, rx) = oneshot::channel();
        self.calls.send((call, tx)).await.map_err(|_| LinkError::Closed)?;
        rx.await.map_err(|_| LinkError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_call_reads_as_a_typed_call() {
        let c = Call::from_invoke("mark_heard", serde_json::json!({ "itemId": "AAMk=" })).expect("call");
        assert_eq!(c, Call::MarkHeard { item_id: "AAMk=".into() });
        assert_eq!(Call::from_invoke("snapshot", serde_json::json!({})).expect("call"), Call::Snapshot);
        assert_eq!(Call::from_invoke("lists", serde_json::Value::Null).expect("call"), Call::Lists);
        let save = Call::from_invoke("save_settings", serde_json::json!({ "update": { "form": {} } })).expect("save");
        assert!(matches!(save, Call::SaveSettings { .. }));
        for (command, args) in [
            ("format_disk", serde_json::json!({})),
            ("play", serde_json::json!({})),
            ("play", serde_json::json!({ "itemId": 7 })),
            ("play", serde_json::json!(["x"])),
        ] {
            assert!(matches!(Call::from_invoke(command, args), Err(LinkError::Malformed(_))), "{command}");
        }
    }

    #[test]
    fn page_names_read_back() {
        for page in [Page::Inbox, Page::Settings] {
            assert_eq!(Page::from_name(page.name()), Some(page));
        }
        assert_eq!(Page::from_name("calendar"), None);
    }

    #[tokio::test]
    async fn frames_are_lines_and_an_overlong_line_is_refused() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let mut reader = FrameReader::new(a);
        let writer = tokio::spawn(async move {
            write_frame(&mut b, &ToTray::Open { page: Page::Settings }).await.expect("write");
            b.write_all(b"\n  \n{\"type\":\"nonsense\"}\n").await.expect("write");
            b.write_all(&vec![b'x'; MAX_FRAME + 10]).await.expect("write");
        });
        assert_eq!(reader.next::<ToTray>().await.expect("ok"), Some(ToTray::Open { page: Page::Settings }));
        assert!(matches!(reader.next::<ToTray>().await, Err(LinkError::Malformed(_))));
        assert!(matches!(reader.next::<ToTray>().await, Err(LinkError::TooLarge)));
        writer.await.expect("writer");
    }

    #[tokio::test]
    async fn a_half_line_at_the_end_is_the_end() {
        let (a, mut b) = tokio::io::duplex(1024);
        b.write_all(b"{\"type\":\"open\",\"pa").await.expect("write");
        drop(b);
        assert!(FrameReader::new(a).next::<ToTray>().await.expect("clean end").is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_give_messages_errors_or_the_end_never_a_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
            rt.block_on(async {
                let mut reader = FrameReader::new(&bytes[..]);
                for _ in 0..bytes.len() + 1 {
                    match reader.next::<ToTray>().await {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            });
        }
    }

    #[tokio::test]
    async fn only_one_tray_binds_and_a_crashed_ones_socket_is_replaced() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("state").join("desktop.sock");
        let first = bind(&path).await.expect("first");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("socket").permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(path.parent().expect("dir")).expect("dir").permissions().mode() & 0o777, 0o700);
        assert!(matches!(bind(&path).await, Err(LinkError::AlreadyRunning(_))));
        drop(first); // the socket file stays, as after a crash
        assert!(path.exists());
        let _second = bind(&path).await.expect("a dead socket is replaced");
    }

    #[tokio::test]
    async fn a_window_calls_gets_replies_by_id_and_pushes_and_sees_the_tray_go() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("desktop.sock");
        let listener = bind(&path).await.expect("bind");
        let (tx, mut incoming) = mpsc::channel(16);
        let server = tokio::spawn(async move {
            let stream = accept(&listener).await.expect("accept");
            serve_connection(stream, 1, tx).await
        });
        let (client, mut pushes) = Client::connect(&path).await.expect("connect");
        let Some(Incoming::WindowAttached { conn: 1, pid, pushes: to_window }) = incoming.recv().await else {
            panic!("no attach")
        };
        assert_eq!(pid, std::process::id());
        // two calls in flight, answered in the opposite order
        let c1 = client.clone();
        let first = tokio::spawn(async move { c1.call(Call::Lists).await });
        let Some(Incoming::Call { call: Call::Lists, reply: r1 }) = incoming.recv().await else { panic!("lists") };
        let c2 = client.clone();
        let second = tokio::spawn(async move { c2.call(Call::RetryNow).await });
        let Some(Incoming::Call { call: Call::RetryNow, reply: r2 }) = incoming.recv().await else { panic!("retry") };
        let refusal = ErrorReport { code: "not_connected".into(), message: "no".into(), fields: Vec::new() };
        r2.send(Err(refusal.clone())).expect("reply 2");
        r1.send(Ok(serde_json::json!({ "voicemails": [] }))).expect("reply 1");
        assert_eq!(second.await.expect("join").expect("link"), Err(refusal));
        assert_eq!(first.await.expect("join").expect("link"), Ok(serde_json::json!({ "voicemails": [] })));
        to_window.send(ToWindow::Show { page: Page::Settings }).await.expect("push");
        assert_eq!(pushes.recv().await, Some(Push::Show(Page::Settings)));
        // the tray goes: the window's pushes end and calls fail
        drop(to_window);
        drop(incoming);
        server.abort();
        let _ = server.await;
        assert_eq!(pushes.recv().await, None);
        assert!(matches!(client.call(Call::Snapshot).await, Err(LinkError::Closed)));
    }

    #[tokio::test]
    async fn a_second_launch_hands_over_its_page() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("desktop.sock");
        let listener = bind(&path).await.expect("bind");
        let (tx, mut incoming) = mpsc::channel(16);
        tokio::spawn(async move {
            let stream = accept(&listener).await.expect("accept");
            serve_connection(stream, 7, tx).await
        });
        ask_to_open(&path, Page::Inbox).await.expect("asked");
        assert!(matches!(incoming.recv().await, Some(Incoming::Open { page: Page::Inbox })));
    }
}
