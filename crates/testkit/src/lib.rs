//! A private desktop session for tests that use the real parts.
//!
//! [`Session::start`] makes a throw-away home directory with its own XDG
//! directories, starts a private D-Bus session bus (with service activation
//! switched off, so nothing starts behind the test's back), and on request an
//! unlocked GNOME Keyring and an Xvfb display. [`Session::env`] gives the
//! variables a child process needs to live in that session; everything is
//! stopped when the `Session` is dropped.
//!
//! Nothing here touches the developer's own session, keyring or files.

pub mod audio;
pub mod baresip;
pub mod kamailio;
pub mod kdc;
pub mod phone;
pub mod process;
pub mod sipp;
pub mod slapd;
pub mod tls;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something before it calls it hung: the time the
/// test names, times four. Tests wait for events, and this bound only ends a
/// hung one; it is generous so a loaded machine (CI, two CPU hogs) never
/// turns slowness into a failure.
pub fn guard(expected: Duration) -> Duration {
    expected * 4
}

/// What to start in a [`Session`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Parts {
    /// An X display (Xvfb) for GUI programs.
    pub display: bool,
    /// An unlocked GNOME Keyring providing the Secret Service.
    pub keyring: bool,
}

/// A running private session; stopped on drop.
pub struct Session {
    home: tempfile::TempDir,
    vars: Vec<(String, String)>,
    children: Vec<Child>,
}

/// The password the test keyring is unlocked with.
pub const KEYRING_PASSWORD: &str = "lamplighter-test-keyring";

const BUS_CONFIG: &str = r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=@DIR@</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#;

impl Session {
    /// Starts a session with the given parts. Panics with a clear message when
    /// a required program is missing (the test set-up installs them).
    pub fn start(parts: Parts) -> Session {
        let home = tempfile::Builder::new().prefix("lamplighter-session-").tempdir().expect("temp home");
        let h = home.path();
        let dirs = [
            ("XDG_CONFIG_HOME", ".config"),
            ("XDG_STATE_HOME", ".local/state"),
            ("XDG_DATA_HOME", ".local/share"),
            ("XDG_CACHE_HOME", ".cache"),
            ("XDG_RUNTIME_DIR", "run"),
        ];
        let mut vars = vec![("HOME".to_string(), h.display().to_string())];
        for (var, sub) in dirs {
            let p = h.join(sub);
            std::fs::create_dir_all(&p).expect("xdg dir");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).expect("chmod");
            }
            vars.push((var.to_string(), p.display().to_string()));
        }
        let mut session = Session { home, vars, children: Vec::new() };
        session.start_bus();
        if parts.keyring {
            session.start_keyring();
        }
        if parts.display {
            session.start_display();
        }
        session
    }

    fn start_bus(&mut self) {
        let conf = self.home.path().join("bus.conf");
        let sock_dir = self.home.path().join("run");
        std::fs::write(&conf, BUS_CONFIG.replace("@DIR@", &sock_dir.display().to_string())).expect("bus config");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--print-address=1"])
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon not found: run ./dev.sh setup");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("bus address");
        let address = line.trim().to_string();
        assert!(address.starts_with("unix:"), "dbus-daemon printed {address:?}");
        self.vars.push(("DBUS_SESSION_BUS_ADDRESS".into(), address));
        self.children.push(child);
    }

    fn start_keyring(&mut self) {
        let mut child = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gnome-keyring-daemon not found: run ./dev.sh setup");
        {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(KEYRING_PASSWORD.as_bytes()).expect("unlock password");
        }
        self.children.push(child);
        // Ready when org.freedesktop.secrets is owned on the bus.
        self.wait_for_name("org.freedesktop.secrets", Duration::from_secs(20));
    }

    fn start_display(&mut self) {
        // `-displayfd 1`: Xvfb picks a free display and prints its number on stdout.
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb not found: run ./dev.sh setup");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("display number");
        let n: u32 =
            line.trim().parse().unwrap_or_else(|_| panic!("Xvfb printed {line:?} instead of a display number"));
        self.children.push(child);
        self.vars.push(("DISPLAY".into(), format!(":{n}")));
    }

    /// Waits until a well-known name is owned on the session bus.
    pub fn wait_for_name(&self, name: &str, timeout: Duration) {
        let end = Instant::now() + guard(timeout);
        loop {
            if self.bus_names().iter().any(|n| n == name) {
                return;
            }
            assert!(Instant::now() < end, "{name} did not appear on the session bus within {timeout:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The names currently on the private bus (via `gdbus`, a real client).
    pub fn bus_names(&self) -> Vec<String> {
        let out = self
            .command("gdbus")
            .args([
                "call",
                "--session",
                "--dest",
                "org.freedesktop.DBus",
                "--object-path",
                "/org/freedesktop/DBus",
                "--method",
                "org.freedesktop.DBus.ListNames",
            ])
            .output()
            .expect("gdbus not found: run ./dev.sh setup");
        String::from_utf8_lossy(&out.stdout)
            .split('\'')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s.to_string())
            .collect()
    }

    /// The environment of this session.
    pub fn env(&self) -> &[(String, String)] {
        &self.vars
    }

    /// One variable of this session's environment.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The session's home directory.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A path below an XDG variable's directory.
    pub fn xdg(&self, var: &str) -> PathBuf {
        PathBuf::from(self.var(var).unwrap_or_else(|| panic!("{var} not set")))
    }

    /// A command that runs inside this session.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.envs(self.vars.iter().map(|(k, v)| (k, v)));
        c
    }

    /// Keeps a child of the test alive until the session ends.
    pub fn adopt(&mut self, child: Child) {
        self.children.push(child);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
