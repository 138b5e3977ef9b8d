//! TLS for SIP tests: a throw-away CA with a certificate for 127.0.0.1 and
//! localhost (files in a private directory, the key readable by this user
//! only, as the agent demands), and socat as a TLS terminator in front of a
//! TCP-only peer (Debian's sipp is built without OpenSSL).

use crate::process::{KillOnDrop, OutputLog, spawn_peer};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A CA and one server certificate it signed.
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: String,
}

impl TestCa {
    /// A fresh CA and a certificate for 127.0.0.1, ::1 and localhost.
    pub fn new() -> TestCa {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "Lamplighter test phone CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let names = vec!["127.0.0.1".to_string(), "::1".to_string(), "localhost".to_string()];
        let cert = rcgen::CertificateParams::new(names).expect("params").signed_by(&key, &ca, &ca_key).expect("cert");
        let dir = tempfile::tempdir().expect("dir");
        let ca = TestCa { dir, ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() };
        std::fs::write(ca.ca_file(), &ca.ca_pem).expect("ca file");
        std::fs::write(ca.cert_file(), &ca.cert_pem).expect("cert file");
        std::fs::write(ca.key_file(), &ca.key_pem).expect("key file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(ca.key_file(), std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        ca
    }

    /// `ca.pem`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// `server.pem`.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    /// `server.key` (mode 600).
    pub fn key_file(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// socat terminating TLS on `port` (with `ca`'s server certificate) and
/// forwarding each connection over TCP to `backend`.
pub struct TlsTerminator {
    _child: KillOnDrop,
    log: OutputLog,
    pub port: u16,
}

impl TlsTerminator {
    pub fn start(ca: &TestCa, port: u16, backend: std::net::SocketAddr) -> TlsTerminator {
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,verify=0,cert={},key={}",
            ca.cert_file().display(),
            ca.key_file().display()
        );
        let (child, log) =
            spawn_peer(Command::new("socat").args(["-d", "-d"]).arg(listen).arg(format!("TCP:{backend}")), "socat");
        let end = Instant::now() + crate::guard(Duration::from_secs(10));
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "socat did not listen on {port}:\n{}", log.text());
            std::thread::sleep(Duration::from_millis(50));
        }
        TlsTerminator { _child: child, log, port }
    }

    /// What socat reported (connections, TLS errors).
    pub fn log(&self) -> String {
        self.log.text()
    }
}
