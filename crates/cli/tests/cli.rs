//! The agent binary as a user runs it: a private session with a real
//! GNOME Keyring, real files, real exit codes.

use lamplighter_testkit::{Parts, Session};

const AGENT: &str = env!("CARGO_BIN_EXE_lamplighter-agent");

#[test]
fn settings_reports_a_corrupt_file_and_its_backup_without_touching_it() {
    let session = Session::start(Parts { keyring: true, ..Default::default() });
    let file = session.xdg("XDG_CONFIG_HOME").join("lamplighter").join("config.toml");
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    std::fs::write(&file, "[mailbox]\nemail = \"anna@example.com\"\nauth = \"kerberos\"\n").expect("write");
    let out = session.command(AGENT).arg("settings").output().expect("run agent");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("problem (config_corrupt)") && text.contains("mailbox.auth") && text.contains(".corrupt-"),
        "{text}"
    );
    assert!(text.contains("keyring: OS keyring"), "{text}");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "[mailbox]\nemail = \"anna@example.com\"\nauth = \"kerberos\"\n"
    );
}

#[test]
fn settings_without_a_keyring_says_so_and_still_works() {
    let session = Session::start(Parts::default());
    let out = session.command(AGENT).args(["settings", "--json"]).output().expect("run agent");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(view["keyring_persistent"], false);
    assert_eq!(view["problems"][0]["code"], "keyring_unavailable");
    assert!(view["form"]["mailbox"].is_null());
}

#[test]
fn run_explains_itself_and_exits_zero() {
    let session = Session::start(Parts::default());
    let out = session.command(AGENT).arg("run").output().expect("run agent");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("not built yet"));
}
