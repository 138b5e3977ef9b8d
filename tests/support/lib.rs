//! Helpers for the end-to-end tests: where the built app is, a WebDriver
//! session through tauri-driver, and the tray read over D-Bus.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use lamplighter_testkit::Session;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn built(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let bin = target.join("debug").join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build the app first (cargo build -p lamplighter-tray -p lamplighter-app) or run ./dev.sh test",
        bin.display()
    );
    bin
}

/// The desktop app as a user starts it, the tray process:
/// `$LAMPLIGHTER_APP`, else `target/debug/lamplighter`. The test command
/// builds it first (`./dev.sh test`); a missing binary fails the test.
pub fn app_binary() -> PathBuf {
    match std::env::var("LAMPLIGHTER_APP") {
        Ok(p) => PathBuf::from(p),
        Err(_) => built("lamplighter"),
    }
}

/// The window process (`target/debug/lamplighter-window`), which WebDriver
/// drives; started without a tray, it starts the tray beside it.
pub fn window_binary() -> PathBuf {
    let tray = app_binary();
    let window = tray.with_file_name("lamplighter-window");
    assert!(window.is_file(), "{} is missing: build it with cargo build -p lamplighter-app", window.display());
    window
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// tauri-driver running inside a session; killed on drop.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts tauri-driver (and through it WebKitWebDriver) in `session`.
    pub fn start(session: &Session) -> Driver {
        Driver::start_with_env(session, &[])
    }

    /// Like [`Driver::start`], with extra environment for the app it launches.
    pub fn start_with_env(session: &Session, env: &[(&str, &str)]) -> Driver {
        let port = free_port();
        let native = free_port();
        let child = session
            .command("tauri-driver")
            .envs(env.iter().copied())
            .args(["--port", &port.to_string(), "--native-port", &native.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tauri-driver not found: run ./dev.sh setup");
        Driver { child, port }
    }

    /// Opens a WebDriver session that launches the window with `args`
    /// (`--settings`, `--open`; none: the page the settings call for). The
    /// window starts the tray when none is running.
    pub async fn launch(&self, args: &[&str]) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert("tauri:options".into(), serde_json::json!({ "application": window_binary(), "args": args }));
        let url = format!("http://127.0.0.1:{}", self.port);
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            match ClientBuilder::new(HttpConnector::new()).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => return c,
                Err(e) => {
                    assert!(Instant::now() < end, "no WebDriver session within 60 s: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Waits until `probe` returns `Some`, or fails with `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let end = Instant::now() + lamplighter_testkit::guard(timeout);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element matching `css`, once it exists.
pub async fn text_of(c: &Client, css: &str) -> String {
    eventually(css, Duration::from_secs(20), || async {
        let el = c.find(Locator::Css(css)).await.ok()?;
        el.text().await.ok()
    })
    .await
}

/// Waits until the element's text equals `want`.
pub async fn text_becomes(c: &Client, css: &str, want: &str) {
    let mut last = String::new();
    let end = Instant::now() + lamplighter_testkit::guard(Duration::from_secs(20));
    while Instant::now() < end {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            last = el.text().await.unwrap_or_default();
            if last == want {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} shows {last:?}, expected {want:?}");
}

/// Waits until the input's value equals `want`.
pub async fn value_becomes(c: &Client, css: &str, want: &str) {
    let mut last = None;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if let Ok(el) = c.find(Locator::Css(css)).await {
            last = el.prop("value").await.ok().flatten();
            if last.as_deref() == Some(want) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} has value {last:?}, expected {want:?}");
}

/// Types into a field after clearing it.
pub async fn fill(c: &Client, css: &str, text: &str) {
    let el = c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
    el.clear().await.expect("clear");
    el.send_keys(text).await.expect("type");
}

/// Picks an option of a `<select>` by value.
pub async fn choose(c: &Client, select_css: &str, value: &str) {
    let css = format!("{select_css} option[value=\"{value}\"]");
    c.find(Locator::Css(&css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.expect("click option");
}

/// A tray host, as a panel is one: a real `status-notifier-watcher`
/// (Debian's haskell-status-notifier-item-utils) plus this test registered
/// with it as a StatusNotifierHost. Items read back through [`Tray`].
pub struct TrayHost {
    conn: zbus::blocking::Connection,
}

impl TrayHost {
    /// Starts the watcher in `session` and registers as a host.
    pub fn start(session: &mut Session) -> TrayHost {
        let watcher = session
            .command("status-notifier-watcher")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("status-notifier-watcher not found: run ./dev.sh setup");
        session.adopt(watcher);
        session.wait_for_name("org.kde.StatusNotifierWatcher", Duration::from_secs(20));
        let address = session.var("DBUS_SESSION_BUS_ADDRESS").expect("bus");
        let conn = zbus::blocking::connection::Builder::address(address)
            .and_then(|b| b.build())
            .expect("connect to the session bus");
        let host = format!("org.kde.StatusNotifierHost-{}", std::process::id());
        conn.request_name(host.as_str()).expect("own the host name");
        let watcher = zbus::blocking::Proxy::new(
            &conn,
            "org.kde.StatusNotifierWatcher",
            "/StatusNotifierWatcher",
            "org.kde.StatusNotifierWatcher",
        )
        .expect("watcher proxy");
        let _: () = watcher.call("RegisterStatusNotifierHost", &(host.as_str(),)).expect("RegisterStatusNotifierHost");
        TrayHost { conn }
    }

    /// Waits for a StatusNotifierItem to appear; fails when the tray is missing.
    pub fn item(&self, timeout: Duration) -> Tray {
        let end = Instant::now() + lamplighter_testkit::guard(timeout);
        loop {
            if let Some(name) = Tray::item_names(&self.conn).into_iter().next() {
                return Tray { conn: self.conn.clone(), name };
            }
            assert!(
                Instant::now() < end,
                "no StatusNotifierItem appeared on the bus within {timeout:?}: the tray is missing"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether any StatusNotifierItem is on the bus now.
    pub fn any_item(&self) -> bool {
        !Tray::item_names(&self.conn).is_empty()
    }
}

/// The app's tray icon as a StatusNotifierItem on the session bus.
pub struct Tray {
    conn: zbus::blocking::Connection,
    /// The item's bus name (`org.kde.StatusNotifierItem-<pid>-<n>`).
    pub name: String,
}

/// One icon pixmap: width, height, ARGB32 bytes (network order).
pub type Pixmap = (i32, i32, Vec<u8>);

impl Tray {
    fn item_names(conn: &zbus::blocking::Connection) -> Vec<String> {
        let dbus = zbus::blocking::fdo::DBusProxy::new(conn).expect("bus proxy");
        dbus.list_names()
            .expect("ListNames")
            .into_iter()
            .map(|n| n.to_string())
            .filter(|n| n.starts_with("org.kde.StatusNotifierItem-"))
            .collect()
    }

    /// Whether the item is still on the bus.
    pub fn present(&self) -> bool {
        Self::item_names(&self.conn).contains(&self.name)
    }

    fn property<T: TryFrom<zvariant::OwnedValue>>(&self, name: &str) -> T
    where
        T::Error: std::fmt::Debug,
    {
        let proxy = zbus::blocking::fdo::PropertiesProxy::builder(&self.conn)
            .destination(self.name.as_str())
            .and_then(|b| b.path("/StatusNotifierItem"))
            .and_then(|b| b.build())
            .expect("properties proxy");
        let iface = zbus::names::InterfaceName::try_from("org.kde.StatusNotifierItem").expect("iface");
        let v = proxy.get(iface, name).unwrap_or_else(|e| panic!("reading {name}: {e}"));
        T::try_from(v).unwrap_or_else(|e| panic!("{name} has an unexpected type: {e:?}"))
    }

    /// `ToolTip`: (icon name, pixmaps, title, description).
    pub fn tooltip(&self) -> (String, Vec<Pixmap>, String, String) {
        self.property("ToolTip")
    }

    /// `IconPixmap`.
    pub fn icon_pixmaps(&self) -> Vec<Pixmap> {
        self.property("IconPixmap")
    }

    fn menu(&self) -> zbus::blocking::Proxy<'_> {
        let menu_path: zvariant::OwnedObjectPath = self.property("Menu");
        zbus::blocking::Proxy::new(&self.conn, self.name.clone(), menu_path, "com.canonical.dbusmenu")
            .expect("menu proxy")
    }

    /// The menu's top-level items over com.canonical.dbusmenu:
    /// (id, label, enabled, toggle state: 1 checked, 0 not, -1 none).
    fn menu_layout(&self) -> Vec<(i32, String, bool, i32)> {
        type Props = std::collections::HashMap<String, zvariant::OwnedValue>;
        type Layout = (u32, (i32, Props, Vec<zvariant::OwnedValue>));
        let (_, (_, _, children)): Layout =
            self.menu().call("GetLayout", &(0i32, -1i32, Vec::<String>::new())).expect("GetLayout");
        children
            .into_iter()
            .filter_map(|child| {
                let (id, props, _): (i32, Props, Vec<zvariant::OwnedValue>) = child.try_into().ok()?;
                let label = props.get("label").and_then(|v| String::try_from(v.clone()).ok()).unwrap_or_default();
                let enabled = props.get("enabled").and_then(|v| bool::try_from(v.clone()).ok()).unwrap_or(true);
                let toggle = props.get("toggle-state").and_then(|v| i32::try_from(v.clone()).ok()).unwrap_or(-1);
                Some((id, label.replace('_', ""), enabled, toggle))
            })
            .collect()
    }

    /// The menu's labelled items: (label, enabled, toggle state: 1 checked, 0 not, -1 none).
    pub fn menu_items(&self) -> Vec<(String, bool, i32)> {
        self.menu_layout().into_iter().filter(|(_, l, _, _)| !l.is_empty()).map(|(_, l, e, t)| (l, e, t)).collect()
    }

    /// Clicks the menu item with this label through com.canonical.dbusmenu.
    pub fn click_menu(&self, label: &str) {
        let id = self
            .menu_layout()
            .into_iter()
            .rfind(|(_, l, _, _)| l == label)
            .map(|(id, _, _, _)| id)
            .unwrap_or_else(|| panic!("no menu item {label:?}"));
        let sent: Result<(), zbus::Error> =
            self.menu().call("Event", &(id, "clicked", zvariant::Value::from(""), 0u32));
        match sent {
            Ok(()) => {}
            // a click that ends the app (Quit) may end it before its reply is sent; the
            // click was delivered, and the test judges the app by how it exits
            Err(zbus::Error::MethodError(name, _, _)) if name.as_str() == "org.freedesktop.DBus.Error.NoReply" => {}
            Err(e) => panic!("Event clicked: {e:?}"),
        }
    }
}

/// The processes below `pid` (children, their children, …), from `/proc`.
pub fn descendants(pid: u32) -> Vec<u32> {
    let parent_of = |p: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        stat.rsplit(')').next()?.split_whitespace().nth(1)?.parse().ok()
    };
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        let children: Vec<u32> =
            all.iter().copied().filter(|&p| parent_of(p) == Some(parent) && !found.contains(&p)).collect();
        found.extend(children);
        i += 1;
    }
    found.remove(0);
    found
}

/// The shared libraries mapped into process `pid` whose file name contains `needle`.
pub fn libraries_mapped(pid: u32, needle: &str) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut libs: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|path| path.rsplit('/').next().is_some_and(|f| f.contains(needle)))
        .map(str::to_string)
        .collect();
    libs.dedup();
    libs
}

/// Every file below `dir` whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())) {
                hits.push(p);
            }
        }
    }
    hits
}

/// Counts files below `dir`.
pub fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

/// Runs the app directly (no WebDriver) inside `session`. Its standard error
/// goes to `app-<pid>.log` in the session's home; read it with [`app_log`].
pub fn spawn_app(session: &Session, args: &[&str], extra_env: &[(&str, &str)]) -> Child {
    let log = session.home().join(format!(
        "app-{}.log",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
    ));
    let mut cmd: Command = session.command(app_binary());
    cmd.args(args).stdout(Stdio::null()).stderr(std::fs::File::create(&log).expect("app log"));
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.env("RUST_BACKTRACE", "1");
    cmd.spawn().expect("start the app")
}

/// Everything the apps started by [`spawn_app`] wrote to standard error.
pub fn app_log(session: &Session) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(session.home()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("app-") && name.ends_with(".log") {
            out.push_str(&format!("--- {name}\n{}\n", std::fs::read_to_string(e.path()).unwrap_or_default()));
        }
    }
    out
}

/// The X display, as a window manager sees it.
pub mod x11 {
    use x11rb::connection::Connection;
    use x11rb::protocol::xproto::{AtomEnum, ClientMessageEvent, ConnectionExt, EventMask, Window};
    use x11rb::rust_connection::RustConnection;

    fn connect(display: &str) -> (RustConnection, Window) {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect to the X display");
        let root = conn.setup().roots[screen].root;
        (conn, root)
    }

    fn windows_titled(conn: &RustConnection, root: Window, title: &str) -> Vec<Window> {
        let mut found = Vec::new();
        let mut stack = vec![root];
        while let Some(w) = stack.pop() {
            let Some(tree) = conn.query_tree(w).ok().and_then(|c| c.reply().ok()) else {
                continue;
            };
            stack.extend(tree.children);
            let name = conn
                .get_property(false, w, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 1024)
                .ok()
                .and_then(|c| c.reply().ok())
                .map(|r| String::from_utf8_lossy(&r.value).into_owned());
            if name.as_deref() == Some(title) {
                found.push(w);
            }
        }
        found
    }

    /// Whether a window with this exact title exists on `display`.
    pub fn window_exists(display: &str, title: &str) -> bool {
        let (conn, root) = connect(display);
        !windows_titled(&conn, root, title).is_empty()
    }

    /// Whether a window titled `title` is mapped and accepts `WM_DELETE_WINDOW`,
    /// i.e. a user could see it and click ×.
    pub fn window_closable(display: &str, title: &str) -> bool {
        let (conn, root) = connect(display);
        let atom = |name: &str| conn.intern_atom(false, name.as_bytes()).expect("intern").reply().expect("atom").atom;
        let (protocols, delete) = (atom("WM_PROTOCOLS"), atom("WM_DELETE_WINDOW"));
        windows_titled(&conn, root, title).into_iter().any(|w| {
            let mapped = conn
                .get_window_attributes(w)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|a| a.map_state == x11rb::protocol::xproto::MapState::VIEWABLE);
            let accepts = conn
                .get_property(false, w, protocols, AtomEnum::ATOM, 0, 64)
                .ok()
                .and_then(|c| c.reply().ok())
                .and_then(|r| r.value32().map(|mut v| v.any(|a| a == delete)))
                .unwrap_or(false);
            mapped && accepts
        })
    }

    /// Asks each window titled `title` to close, as a window manager does when
    /// the user clicks ×: a `WM_PROTOCOLS`/`WM_DELETE_WINDOW` client message.
    /// Returns how many windows were asked.
    pub fn request_close(display: &str, title: &str) -> usize {
        let (conn, root) = connect(display);
        let atom = |name: &str| conn.intern_atom(false, name.as_bytes()).expect("intern").reply().expect("atom").atom;
        let (protocols, delete) = (atom("WM_PROTOCOLS"), atom("WM_DELETE_WINDOW"));
        let windows = windows_titled(&conn, root, title);
        for &w in &windows {
            let event = ClientMessageEvent::new(32, w, protocols, [delete, x11rb::CURRENT_TIME, 0, 0, 0]);
            conn.send_event(false, w, EventMask::NO_EVENT, event).expect("send WM_DELETE_WINDOW");
        }
        conn.flush().expect("flush");
        windows.len()
    }
}

/// A real notification daemon, dunst, owning org.freedesktop.Notifications
/// in the session. Every notification it displays is logged by a dunst rule
/// (`summary|body` with the time it was shown), and its context menu (the
/// way a user picks an action) is answered by a script that chooses the
/// line matching [`Dunst::pick`].
pub struct Dunst {
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Dunst {
    /// Starts dunst in `session` and waits for it on the bus.
    pub fn start(session: &mut Session) -> Dunst {
        let dir = session.home().join("dunst");
        std::fs::create_dir_all(&dir).expect("dunst dir");
        let script = |name: &str, body: &str| {
            let p = dir.join(name);
            std::fs::write(&p, body).expect("script");
            let _ = Command::new("chmod").arg("+x").arg(&p).status();
            p
        };
        let log = script(
            "log.sh",
            &format!(
                "#!/bin/sh\nprintf '%s|%s|%s\\n' \"$(date +%s.%N)\" \"$DUNST_SUMMARY\" \"$DUNST_BODY\" >> {}\n",
                dir.join("shown.log").display()
            ),
        );
        let pick = script(
            "pick.sh",
            &format!(
                "#!/bin/sh\ntee -a {menu} | grep -m1 -F -- \"$(cat {want})\"\n",
                menu = dir.join("menu.log").display(),
                want = dir.join("pick.txt").display()
            ),
        );
        let rc = dir.join("dunstrc");
        std::fs::write(
            &rc,
            format!(
                "[global]\n    dmenu = {}\n    history_length = 100\n[log_all]\n    summary = \"*\"\n    script = {}\n",
                pick.display(),
                log.display()
            ),
        )
        .expect("dunstrc");
        let child = session
            .command("dunst")
            .arg("-config")
            .arg(&rc)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst not found: run ./dev.sh setup");
        session.adopt(child);
        session.wait_for_name("org.freedesktop.Notifications", Duration::from_secs(10));
        Dunst { dir, env: session.env().to_vec() }
    }

    fn ctl(&self, args: &[&str]) -> String {
        let out =
            Command::new("dunstctl").args(args).envs(self.env.iter().map(|(k, v)| (k, v))).output().expect("dunstctl");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `dunstctl count displayed`.
    pub fn displayed(&self) -> usize {
        self.ctl(&["count", "displayed"]).parse().unwrap_or(0)
    }

    /// Every notification shown so far: (Unix time shown, summary, body).
    pub fn shown(&self) -> Vec<(f64, String, String)> {
        std::fs::read_to_string(self.dir.join("shown.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, '|');
                Some((parts.next()?.parse().ok()?, parts.next()?.to_string(), parts.next()?.to_string()))
            })
            .collect()
    }

    /// Picks the action whose menu line contains `text` through the context
    /// menu, as a user does (`dunstctl context`); returns the menu offered.
    pub fn pick(&self, text: &str) -> String {
        std::fs::write(self.dir.join("pick.txt"), text).expect("pick.txt");
        let _ = std::fs::remove_file(self.dir.join("menu.log"));
        self.ctl(&["context"]);
        // dunst runs the menu in the background: wait for it to have been offered
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let menu = std::fs::read_to_string(self.dir.join("menu.log")).unwrap_or_default();
            if !menu.is_empty() || Instant::now() >= end {
                return menu;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
