//! Where the gateway's secrets come from: systemd credentials
//! (`LoadCredential=` / `LoadCredentialEncrypted=` put them under
//! `$CREDENTIALS_DIRECTORY`, readable only by the service), or else a
//! folder only its owner can read (`/etc/lamplighter/credentials`). Never
//! the settings file, the command line or the environment's values: those
//! show in `ps`, in backups and in bug reports.
//!
//! - `ews-password`: the service account's password;
//! - `phone-passwords`: one `<line> <password>` per line, the digest
//!   passwords of phones that subscribe to the gateway.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A secret that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("no credential {name}: put it in $CREDENTIALS_DIRECTORY (systemd LoadCredential=) or {fallback}")]
    Missing { name: String, fallback: String },
    #[error("{path} can be read by others (mode {mode:o}): chmod 600 it")]
    Exposed { path: String, mode: u32 },
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path} line {line}: expected `<line> <password>`")]
    Malformed { path: String, line: usize },
}

/// Where to look.
#[derive(Debug, Clone)]
pub struct Credentials {
    systemd: Option<PathBuf>,
    fallback: PathBuf,
}

/// The folder used when systemd gives none.
pub const FALLBACK_DIR: &str = "/etc/lamplighter/credentials";

impl Credentials {
    /// From the environment: `$CREDENTIALS_DIRECTORY` first, then `fallback`.
    pub fn from_env(fallback: Option<PathBuf>) -> Credentials {
        Credentials {
            systemd: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            fallback: fallback.unwrap_or_else(|| PathBuf::from(FALLBACK_DIR)),
        }
    }

    /// Reads one secret; trailing newlines are not part of it.
    pub fn read(&self, name: &str) -> Result<String, CredentialError> {
        for dir in self.systemd.iter().chain(std::iter::once(&self.fallback)) {
            let path = dir.join(name);
            if path.exists() {
                return read_private(&path).map(|s| s.trim_end_matches(['\n', '\r']).to_string());
            }
        }
        Err(CredentialError::Missing { name: name.into(), fallback: self.fallback.display().to_string() })
    }

    /// The phones' digest passwords by line (none: an empty map).
    pub fn phone_passwords(&self) -> Result<HashMap<String, String>, CredentialError> {
        let text = match self.read("phone-passwords") {
            Ok(t) => t,
            Err(CredentialError::Missing { .. }) => return Ok(HashMap::new()),
            Err(e) => return Err(e),
        };
        let mut out = HashMap::new();
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            match l.split_once(char::is_whitespace) {
                Some((line, pass)) if !pass.trim().is_empty() => {
                    out.insert(line.to_string(), pass.trim().to_string());
                }
                _ => return Err(CredentialError::Malformed { path: "phone-passwords".into(), line: i + 1 }),
            }
        }
        Ok(out)
    }
}

fn read_private(path: &Path) -> Result<String, CredentialError> {
    let io = |e: std::io::Error| CredentialError::Io { path: path.display().to_string(), reason: e.to_string() };
    let meta = std::fs::metadata(path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CredentialError::Exposed { path: path.display().to_string(), mode });
        }
    }
    if meta.len() > 1 << 20 {
        return Err(CredentialError::Io { path: path.display().to_string(), reason: "larger than 1 MiB".into() });
    }
    std::fs::read_to_string(path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn systemd_first_then_the_private_folder_and_never_a_readable_file() {
        let systemd = tempfile::tempdir().expect("dir");
        let fallback = tempfile::tempdir().expect("dir");
        let c = Credentials { systemd: Some(systemd.path().into()), fallback: fallback.path().into() };
        assert!(matches!(c.read("ews-password"), Err(CredentialError::Missing { .. })));
        write(fallback.path(), "ews-password", "from-etc\n", 0o600);
        assert_eq!(c.read("ews-password").expect("fallback"), "from-etc");
        write(systemd.path(), "ews-password", "from-systemd\n", 0o400);
        assert_eq!(c.read("ews-password").expect("systemd"), "from-systemd");
        write(systemd.path(), "ews-password", "exposed", 0o644);
        assert!(matches!(c.read("ews-password"), Err(CredentialError::Exposed { mode: 0o644, .. })));
        assert!(c.phone_passwords().expect("none").is_empty());
        write(fallback.path(), "phone-passwords", "# desk phones\n201 geheim\n202   auch geheim \n", 0o600);
        let p = c.phone_passwords().expect("read");
        assert_eq!(p.get("201").map(String::as_str), Some("geheim"));
        assert_eq!(p.get("202").map(String::as_str), Some("auch geheim"));
        write(fallback.path(), "phone-passwords", "201\n", 0o600);
        assert!(matches!(c.phone_passwords(), Err(CredentialError::Malformed { line: 1, .. })));
    }
}

#[cfg(test)]
mod unit {
    /// The shipped systemd unit keeps its promises: hardening on, secrets
    /// by `LoadCredential=` only, state in `StateDirectory=`.
    #[test]
    fn the_systemd_unit_is_hardened_and_passes_secrets_as_credentials() {
        let unit = include_str!("../systemd/lamplighter-gateway.service");
        let set: Vec<&str> = unit.lines().map(str::trim).filter(|l| !l.starts_with('#') && l.contains('=')).collect();
        for want in [
            "DynamicUser=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "NoNewPrivileges=yes",
            "StateDirectory=lamplighter-gateway",
            "PrivateTmp=yes",
            "CapabilityBoundingSet=",
            "LoadCredential=ews-password:/etc/lamplighter/credentials/ews-password",
        ] {
            assert!(set.contains(&want), "{want} missing");
        }
        let exec: Vec<&&str> = set.iter().filter(|l| l.starts_with("Exec")).collect();
        assert!(!exec.is_empty());
        for l in exec {
            assert!(!l.contains("password") && !l.contains("secret"), "a secret on the command line: {l}");
        }
        assert!(!set.iter().any(|l| l.starts_with("Environment")), "secrets are never passed in the environment");
    }
}
