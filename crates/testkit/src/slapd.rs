//! OpenLDAP's `slapd` (Debian `slapd`, `ldap-utils`) as a real directory
//! server on loopback: an mdb database under `dc=example,dc=test` in a
//! temporary directory, with the core, cosine and inetOrgPerson schemas, an
//! administrator `cn=admin,dc=example,dc=test` (password `admin-secret`)
//! and a service account `cn=svc-lamp,dc=example,dc=test` (password
//! `svc-secret`) that may read. Changed with `ldapadd`/`ldapdelete`, as an
//! administrator would.

use crate::process::{KillOnDrop, OutputLog, free_tcp_port, spawn_peer};
use std::process::Command;
use std::time::{Duration, Instant};

/// The suffix.
pub const BASE: &str = "dc=example,dc=test";
/// The service account's DN and password.
pub const SERVICE_DN: &str = "cn=svc-lamp,dc=example,dc=test";
pub const SERVICE_PASSWORD: &str = "svc-secret";
const ADMIN_DN: &str = "cn=admin,dc=example,dc=test";
const ADMIN_PASSWORD: &str = "admin-secret";

/// A running slapd; killed on drop.
pub struct Slapd {
    child: Option<KillOnDrop>,
    dir: tempfile::TempDir,
    log: OutputLog,
    pub port: u16,
}

impl Slapd {
    /// Starts it with `ou=people` and the service account, and waits until it answers.
    pub fn start() -> Slapd {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("db")).expect("db dir");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {d}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             database mdb\n\
             maxsize 16777216\n\
             suffix \"{BASE}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {d}/db\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             access to * by dn.exact=\"{SERVICE_DN}\" read by * none\n",
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).expect("conf");
        let port = free_tcp_port();
        let mut s = Slapd { child: None, dir, log: OutputLog::default(), port };
        s.spawn();
        s.add(&format!(
            "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
             dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: {SERVICE_DN}\nobjectClass: person\ncn: svc-lamp\nsn: service\nuserPassword: {SERVICE_PASSWORD}\n"
        ));
        s
    }

    fn spawn(&mut self) {
        let (child, log) = spawn_peer(
            Command::new("slapd")
                .arg("-f")
                .arg(self.dir.path().join("slapd.conf"))
                .arg("-h")
                .arg(self.url())
                .args(["-d", "0"]),
            "slapd",
        );
        self.child = Some(child);
        self.log = log;
        let end = Instant::now() + crate::guard(Duration::from_secs(10));
        while !Command::new("ldapsearch")
            .args(["-x", "-H", &self.url(), "-b", "", "-s", "base", "-LLL", "namingContexts"])
            .output()
            .expect("ldapsearch not found: run ./dev.sh setup")
            .status
            .success()
        {
            assert!(Instant::now() < end, "slapd did not answer; its log:\n{}", self.log.text());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ldap://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Adds entries (LDIF) as the administrator.
    pub fn add(&self, ldif: &str) {
        self.admin("ldapadd", &[], ldif);
    }

    /// Deletes an entry as the administrator.
    pub fn delete(&self, dn: &str) {
        self.admin("ldapdelete", &[dn], "");
    }

    /// A person under `ou=people` with `mail` and `telephoneNumber`.
    pub fn person(uid: &str, mail: &str, phone: &str) -> String {
        format!(
            "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {mail}\ntelephoneNumber: {phone}\n\n"
        )
    }

    fn admin(&self, tool: &str, args: &[&str], input: &str) {
        use std::io::Write as _;
        let mut child = Command::new(tool)
            .args(["-x", "-H", &self.url(), "-D", ADMIN_DN, "-w", ADMIN_PASSWORD])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("ldap-utils not found: run ./dev.sh setup");
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("ldif");
        let out = child.wait_with_output().expect(tool);
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops the server (the directory becomes unreachable); [`Slapd::resume`] starts it again on the same port.
    pub fn pause(&mut self) {
        self.child = None;
    }

    /// Starts it again after [`Slapd::pause`], with its data.
    pub fn resume(&mut self) {
        self.spawn();
    }
}
