//! The settings file on disk: reading, writing and protecting it.
//!
//! Format: TOML with a top-level `schema_version` (currently 1; a file
//! without it is read as version 1), then the tables of [`SettingsForm`]:
//! `[mailbox]`, `[[phone]]`, `[user]`, `[notifications]`, `[mwi]`, `[audio]`,
//! `[[voicemail_rule]]`. Unknown
//! keys are errors, so a typo is reported rather than ignored.
//!
//! Rules that keep the user's data safe:
//! - a file that cannot be parsed or validated is copied to
//!   `config.toml.corrupt-<unix-seconds>` before anything else happens, and
//!   the error names that copy; the same damaged content is copied once;
//! - a file with a newer `schema_version` is never overwritten;
//! - writes go to a temporary file that is synced and renamed over the old
//!   one, so a crash leaves either the old or the new file, never half of one;
//! - the file is created `0600` in a `0700` directory.

use crate::{ConfigError, Settings, SettingsForm};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Files larger than this are not settings files.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The result of [`load`].
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The settings (defaults when there is no file yet).
    pub settings: Settings,
    /// Whether a file was there.
    pub existed: bool,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ConfigError + 'a {
    move |source| ConfigError::Io { action, path: path.to_path_buf(), source }
}

/// What a settings document says, before it is trusted.
enum Parsed {
    Ok(Box<Settings>),
    TooNew(u32),
    Bad(String),
}

fn parse(text: &str) -> Parsed {
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => return Parsed::Bad(e.to_string().trim().replace('\n', " ")),
    };
    let version = match table.remove("schema_version") {
        None => SCHEMA_VERSION,
        Some(toml::Value::Integer(v)) if (1..=i64::from(u32::MAX)).contains(&v) => v as u32,
        Some(other) => {
            return Parsed::Bad(format!("schema_version must be a positive whole number, found {other}"));
        }
    };
    if version > SCHEMA_VERSION {
        return Parsed::TooNew(version);
    }
    let form: SettingsForm = match toml::Value::Table(table).try_into() {
        Ok(f) => f,
        Err(e) => return Parsed::Bad(e.to_string().trim().replace('\n', " ")),
    };
    match form.validate() {
        Ok(s) => Parsed::Ok(Box::new(s)),
        Err(errors) => {
            Parsed::Bad(errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))
        }
    }
}

/// Reads the settings file. A missing file gives the defaults.
///
/// # Errors
/// [`ConfigError::Corrupt`] (after a backup copy was made),
/// [`ConfigError::TooNew`], or [`ConfigError::Io`].
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let bytes = match read_limited(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Loaded { settings: Settings::default(), existed: false });
        }
        Err(e) => return Err(io("reading", path)(e)),
    };
    let reason = match std::str::from_utf8(&bytes) {
        Err(e) => format!("not UTF-8 text ({e})"),
        Ok(text) => match parse(text) {
            Parsed::Ok(settings) => {
                return Ok(Loaded { settings: *settings, existed: true });
            }
            Parsed::TooNew(found) => {
                return Err(ConfigError::TooNew { path: path.to_path_buf(), found, supported: SCHEMA_VERSION });
            }
            Parsed::Bad(reason) => reason,
        },
    };
    let backup = backup_copy(path, &bytes).ok();
    Err(ConfigError::Corrupt { path: path.to_path_buf(), backup, reason })
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = fs::metadata(path)?;
    if meta.len() > MAX_FILE_BYTES {
        return Ok(b"\0 file larger than 1 MiB".to_vec());
    }
    fs::read(path)
}

/// Copies damaged content beside the file, once per distinct content.
fn backup_copy(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let stem = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "config.toml".into());
    let prefix = format!("{stem}.corrupt-");
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && fs::read(entry.path()).is_ok_and(|b| b == bytes) {
            return Ok(entry.path());
        }
    }
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut target = dir.join(format!("{prefix}{secs}"));
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{prefix}{secs}-{n}"));
        n += 1;
    }
    write_private(&target, bytes)?;
    Ok(target)
}

/// Writes the settings atomically.
///
/// An unreadable file in the way is backed up first; a file of a newer schema
/// version is refused with [`ConfigError::TooNew`].
pub fn save(path: &Path, settings: &Settings) -> Result<(), ConfigError> {
    if let Ok(bytes) = read_limited(path) {
        match std::str::from_utf8(&bytes).map(parse) {
            Ok(Parsed::Ok(_)) => {}
            Ok(Parsed::TooNew(found)) => {
                return Err(ConfigError::TooNew { path: path.to_path_buf(), found, supported: SCHEMA_VERSION });
            }
            Ok(Parsed::Bad(_)) | Err(_) => {
                backup_copy(path, &bytes).map_err(io("backing up", path))?;
            }
        }
    }
    let text = render(settings);
    let dir = path.parent().unwrap_or(Path::new("."));
    create_private_dir(dir).map_err(io("creating", dir))?;
    let tmp = dir.join(format!(".config.toml.tmp-{}", std::process::id()));
    write_private(&tmp, text.as_bytes()).map_err(io("writing", &tmp))?;
    fs::rename(&tmp, path).map_err(io("replacing", path))?;
    Ok(())
}

/// The file's text for these settings.
pub fn render(settings: &Settings) -> String {
    let body = toml::to_string(&settings.to_form()).unwrap_or_default();
    format!(
        "# Lamplighter settings (format: README.md, \"Configuration\").\n\
         # Passwords are not stored here: they live in the OS keyring.\n\
         schema_version = {SCHEMA_VERSION}\n\n{body}"
    )
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MailboxForm, PhoneForm};

    fn sample() -> Settings {
        SettingsForm {
            mailbox: Some(MailboxForm {
                email: "anna@example.com".into(),
                ews_url: "https://mail.example.com/EWS/Exchange.asmx".into(),
                username: r"EXAMPLE\anna".into(),
                auth: "ntlm".into(),
                ..Default::default()
            }),
            phones: vec![PhoneForm {
                uri: "sip:613@192.0.2.10:5060".into(),
                username: "613".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
        .validate()
        .expect("valid sample")
    }

    fn backups(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains(".corrupt-"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn missing_file_gives_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let loaded = load(&dir.path().join("config.toml")).expect("load");
        assert!(!loaded.existed);
        assert_eq!(loaded.settings, Settings::default());
    }

    #[test]
    fn round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("lamplighter").join("config.toml");
        save(&path, &sample()).expect("save");
        let loaded = load(&path).expect("load");
        assert!(loaded.existed);
        assert_eq!(loaded.settings, sample());
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.contains("schema_version = 1"), "{text}");
        assert!(text.contains("[[phone]]"), "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn voicemail_rules_round_trip_and_a_bad_one_names_its_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let rule = "[[voicemail_rule]]\nname = \"3cx\"\nfrom = [\"@pbx.example.com\"]\nsubject = \"^New Voicemail\"\nattachment = [\"wav\"]\n";
        fs::write(&path, rule).expect("write");
        let loaded = load(&path).expect("a valid rule");
        assert_eq!(loaded.settings.voicemail_rules.len(), 1);
        assert_eq!(loaded.settings.recogniser().rules()[0].name(), "3cx");
        save(&path, &loaded.settings).expect("save");
        assert_eq!(load(&path).expect("load").settings, loaded.settings);
        assert!(fs::read_to_string(&path).expect("read").contains("[[voicemail_rule]]"));

        let bad = SettingsForm {
            voicemail_rules: vec![lamplighter_recognise::RuleSpec {
                name: "x".into(),
                subject: "([".into(),
                ..Default::default()
            }],
            ..SettingsForm::default()
        };
        let errors = bad.validate().expect_err("a pattern that does not compile");
        assert_eq!(errors[0].field, "voicemail_rule.0.subject");
        assert!(errors[0].message.contains("\"x\""), "{}", errors[0].message);
    }

    #[test]
    fn corrupt_file_is_reported_backed_up_once_and_left_in_place() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let broken = "schema_version = 1\n[mailbox\nemail = \"anna@example.com\"\n";
        fs::write(&path, broken).expect("write");
        let e = load(&path).expect_err("corrupt");
        let ConfigError::Corrupt { backup: Some(backup), reason, .. } = &e else { panic!("{e:?}") };
        assert!(reason.contains("line 2"), "reason names the place: {reason}");
        assert_eq!(fs::read_to_string(backup).expect("backup"), broken);
        assert_eq!(fs::read_to_string(&path).expect("original"), broken, "original untouched");
        assert!(e.to_string().contains(&backup.display().to_string()));
        // a second start does not pile up copies of the same damage
        load(&path).expect_err("still corrupt");
        assert_eq!(backups(dir.path()).len(), 1);
    }

    #[test]
    fn invalid_values_and_unknown_keys_count_as_corrupt() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        fs::write(&path, "[mailbox]\nemail = \"nobody\"\nauth = \"basic\"\n").expect("write");
        let e = load(&path).expect_err("invalid");
        assert!(matches!(&e, ConfigError::Corrupt { reason, .. } if reason.contains("mailbox.email")), "{e}");
        fs::write(&path, "[mailbox]\nemial = \"a@b.c\"\n").expect("write");
        let e = load(&path).expect_err("typo");
        assert!(matches!(&e, ConfigError::Corrupt { reason, .. } if reason.contains("emial")), "{e}");
    }

    #[test]
    fn saving_over_a_corrupt_file_keeps_a_copy_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        fs::write(&path, "this is = = not toml").expect("write");
        save(&path, &sample()).expect("save");
        let copies = backups(dir.path());
        assert_eq!(copies.len(), 1);
        assert_eq!(fs::read_to_string(&copies[0]).expect("copy"), "this is = = not toml");
        assert_eq!(load(&path).expect("load").settings, sample());
    }

    #[test]
    fn newer_schema_is_never_overwritten() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        let newer = "schema_version = 7\n[future]\nthing = 1\n";
        fs::write(&path, newer).expect("write");
        assert!(matches!(load(&path), Err(ConfigError::TooNew { found: 7, supported: 1, .. })));
        assert!(matches!(save(&path, &sample()), Err(ConfigError::TooNew { .. })));
        assert_eq!(fs::read_to_string(&path).expect("read"), newer);
    }

    #[test]
    fn missing_schema_version_reads_as_version_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("config.toml");
        fs::write(&path, "[[phone]]\nuri = \"sip:613@pbx.example.com\"\n").expect("write");
        let loaded = load(&path).expect("load");
        assert_eq!(loaded.settings.phones.len(), 1);
        assert_eq!(loaded.settings.phones[0].refresh.as_secs(), 12 * 3600);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever bytes are in the file, load never panics, and a failed
            /// load leaves the file as it was.
            #[test]
            fn arbitrary_content_never_panics_nor_changes_the_file(content in proptest::collection::vec(any::<u8>(), 0..400)) {
                let dir = tempfile::tempdir().expect("tmp");
                let path = dir.path().join("config.toml");
                fs::write(&path, &content).expect("write");
                let _ = load(&path);
                prop_assert_eq!(fs::read(&path).expect("read"), content);
            }
        }
    }
}
