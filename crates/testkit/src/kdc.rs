//! MIT Kerberos 5 (Debian `krb5-kdc`, `krb5-admin-server`, `krb5-user`) as a
//! real KDC on loopback: a realm in a temporary directory, a user with a
//! password, the `HTTP/localhost` service key in a keytab, and `kinit`
//! writing a ticket cache of the test's own. [`Kdc::env`] gives the variables
//! a Kerberos client or server needs to use this realm and nothing else
//! (no `/etc/krb5.conf`, no DNS).

use crate::process::{KillOnDrop, OutputLog, free_port, spawn_peer};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The test realm.
pub const REALM: &str = "LAMPLIGHTER.TEST";

/// A running KDC; killed on drop.
pub struct Kdc {
    _child: KillOnDrop,
    dir: tempfile::TempDir,
    log: OutputLog,
    /// The KDC's port on 127.0.0.1 (UDP and TCP).
    pub port: u16,
    /// The keys of `HTTP/localhost`.
    pub keytab: PathBuf,
}

fn admin(dir: &Path, query: &str) {
    let out = Command::new("kadmin.local")
        .args(["-r", REALM, "-q", query])
        .env("KRB5_CONFIG", dir.join("krb5.conf"))
        .env("KRB5_KDC_PROFILE", dir.join("kdc.conf"))
        .output()
        .unwrap_or_else(|e| panic!("kadmin.local cannot start ({e}): run ./dev.sh setup"));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !text.contains("error"), "kadmin.local {query:?} failed: {text}");
}

impl Kdc {
    /// Creates the realm with `HTTP/localhost`, starts the KDC and waits
    /// until it serves.
    pub fn start() -> Kdc {
        let dir = tempfile::tempdir().expect("dir");
        let d = dir.path();
        let port = free_port();
        std::fs::write(
            d.join("kdc.conf"),
            format!(
                "[kdcdefaults]\n kdc_listen = 127.0.0.1:{port}\n kdc_tcp_listen = 127.0.0.1:{port}\n\
                 [realms]\n {REALM} = {{\n  database_name = {db}\n  key_stash_file = {stash}\n  \
                 acl_file = {acl}\n  max_life = 10h\n }}\n[logging]\n kdc = STDERR\n",
                db = d.join("principal").display(),
                stash = d.join("stash").display(),
                acl = d.join("kadm5.acl").display(),
            ),
        )
        .expect("kdc.conf");
        std::fs::write(
            d.join("krb5.conf"),
            format!(
                "[libdefaults]\n default_realm = {REALM}\n dns_lookup_kdc = false\n dns_lookup_realm = false\n \
                 dns_canonicalize_hostname = false\n rdns = false\n clockskew = 1\n\
                 [realms]\n {REALM} = {{\n  kdc = 127.0.0.1:{port}\n }}\n[domain_realm]\n localhost = {REALM}\n"
            ),
        )
        .expect("krb5.conf");
        let out = Command::new("kdb5_util")
            .args(["-r", REALM, "create", "-s", "-P", "kdc-master-key"])
            .env("KRB5_CONFIG", d.join("krb5.conf"))
            .env("KRB5_KDC_PROFILE", d.join("kdc.conf"))
            .output()
            .unwrap_or_else(|e| panic!("kdb5_util cannot start ({e}): run ./dev.sh setup"));
        assert!(out.status.success(), "kdb5_util create failed: {}", String::from_utf8_lossy(&out.stderr));
        let keytab = d.join("http.keytab");
        admin(d, "addprinc -randkey HTTP/localhost");
        admin(d, &format!("ktadd -k {} HTTP/localhost", keytab.display()));
        let (child, log) = spawn_peer(
            Command::new("krb5kdc")
                .args(["-n", "-r", REALM])
                .env("KRB5_CONFIG", d.join("krb5.conf"))
                .env("KRB5_KDC_PROFILE", d.join("kdc.conf")),
            "krb5-kdc",
        );
        log.wait_for("krb5kdc", "commencing operation", 0);
        Kdc { _child: child, dir, log, port, keytab }
    }

    /// Adds a user principal.
    pub fn add_user(&self, name: &str, password: &str) {
        admin(self.dir.path(), &format!("addprinc -pw {password} {name}"));
    }

    /// Adds a service principal and writes its keys to a new keytab.
    pub fn add_service(&self, principal: &str) -> PathBuf {
        let keytab = self.dir.path().join(format!("{}.keytab", principal.replace(['/', '@'], "_")));
        admin(self.dir.path(), &format!("addprinc -randkey {principal}"));
        admin(self.dir.path(), &format!("ktadd -k {} {principal}", keytab.display()));
        keytab
    }

    /// The `krb5.conf` naming only this KDC.
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir.path().join("krb5.conf")
    }

    /// `kinit`s `user` into a ticket cache of its own and returns the cache
    /// (`FILE:` path); `lifetime` as kinit's `-l` (e.g. `"3s"`).
    pub fn kinit(&self, user: &str, password: &str, lifetime: Option<&str>) -> String {
        use std::io::Write as _;
        let cache = format!("FILE:{}", self.dir.path().join(format!("cc-{user}-{}", rand_suffix())).display());
        let mut cmd = Command::new("kinit");
        if let Some(l) = lifetime {
            cmd.args(["-l", l]);
        }
        let mut child = cmd
            .arg(user)
            .env("KRB5_CONFIG", self.krb5_conf())
            .env("KRB5CCNAME", &cache)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("kinit cannot start ({e}): run ./dev.sh setup"));
        child.stdin.take().expect("stdin").write_all(format!("{password}\n").as_bytes()).expect("password");
        let out = child.wait_with_output().expect("kinit");
        assert!(out.status.success(), "kinit {user} failed: {}", String::from_utf8_lossy(&out.stderr));
        cache
    }

    /// Waits until the KDC refuses the ticket in `cache` as expired, past
    /// the clock skew it allows (1 s here): the test's event is the KDC's
    /// refusal, not a span of time. Each probe asks for a service ticket
    /// with a copy of the cache, so `cache` itself stays as kinit left it.
    pub fn wait_until_expired(&self, cache: &str) {
        let end = Instant::now() + crate::guard(Duration::from_secs(30));
        let path = cache.trim_start_matches("FILE:");
        let probe = self.dir.path().join(format!("probe-{}", rand_suffix()));
        loop {
            std::fs::copy(path, &probe).expect("copy the ticket cache");
            let out = Command::new("kvno")
                .args(["-c", &probe.display().to_string(), "HTTP/localhost"])
                .env("KRB5_CONFIG", self.krb5_conf())
                .output()
                .unwrap_or_else(|e| panic!("kvno cannot start ({e}): run ./dev.sh setup"));
            if !out.status.success() {
                let text = String::from_utf8_lossy(&out.stderr);
                assert!(text.contains("expired"), "kvno failed otherwise than by expiry: {text}");
                return;
            }
            assert!(Instant::now() < end, "the ticket in {cache} never expired");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The variables that point a Kerberos program at this realm, with
    /// `cache` as its ticket cache and a replay cache in the realm's directory.
    pub fn env(&self, cache: &str) -> Vec<(String, String)> {
        vec![
            ("KRB5_CONFIG".into(), self.krb5_conf().display().to_string()),
            ("KRB5CCNAME".into(), cache.to_string()),
            ("KRB5RCACHEDIR".into(), self.dir.path().display().to_string()),
        ]
    }

    /// The KDC's log (every AS and TGS request).
    pub fn log(&self) -> String {
        self.log.text()
    }
}

fn rand_suffix() -> String {
    use std::hash::{BuildHasher as _, RandomState};
    format!("{:x}", RandomState::new().hash_one(Instant::now()))
}
