//! The keyring round trip against a real Secret Service: GNOME Keyring,
//! unlocked, on a private D-Bus session bus this test starts; and the clear
//! error when no Secret Service is on the bus.
//!
//! The store finds the bus through `DBUS_SESSION_BUS_ADDRESS`, a process-wide
//! variable, so each scenario runs in a child process (this same test binary,
//! re-executed with the session's environment and `--exact <scenario>`).

use lamplighter_secrets::{Keyring, Secret, SecretKey, SecretsError, StoreKind};
use lamplighter_testkit::{Parts, Session};
use std::process::Output;

/// Runs one `#[ignore]`d scenario of this binary inside `session`.
fn run_inside(session: &Session, scenario: &str) -> Output {
    let exe = std::env::current_exe().expect("test binary");
    session
        .command(exe)
        .args(["--exact", scenario, "--ignored", "--nocapture", "--test-threads=1"])
        .env("LAMPLIGHTER_INSIDE_SESSION", "1")
        .output()
        .expect("re-run test binary")
}

fn assert_passed(out: &Output, scenario: &str) {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "{scenario} failed inside the session:\n{text}");
}

#[test]
fn round_trip_through_gnome_keyring() {
    let session = Session::start(Parts { keyring: true, ..Default::default() });
    let out = run_inside(&session, "inside_round_trip");
    assert_passed(&out, "inside_round_trip");
    // Seen from outside with a different client: secret-tool finds the entry.
    let look = session
        .command("secret-tool")
        .args(["lookup", "service", "lamplighter", "username", "mailbox:anna@example.com"])
        .output()
        .expect("secret-tool not found: run ./dev.sh setup");
    assert_eq!(String::from_utf8_lossy(&look.stdout), "s3cret: with spaces & ünïcode");
}

#[test]
fn no_secret_service_is_a_clear_error() {
    let session = Session::start(Parts::default());
    let out = run_inside(&session, "inside_no_service");
    assert_passed(&out, "inside_no_service");
}

#[test]
#[ignore = "runs inside a private session, started by round_trip_through_gnome_keyring"]
fn inside_round_trip() {
    assert!(std::env::var("LAMPLIGHTER_INSIDE_SESSION").is_ok(), "run through round_trip_through_gnome_keyring");
    let ring = Keyring::secret_service().expect("Secret Service");
    assert_eq!(ring.kind(), StoreKind::Os);
    let key = SecretKey::Mailbox("anna@example.com".into());
    assert_eq!(ring.get(&key).expect("get"), None);
    ring.set(&key, &Secret::new("s3cret: with spaces & ünïcode")).expect("set");
    // a fresh handle reads it back: it is in the daemon, not in our memory
    let again = Keyring::secret_service().expect("Secret Service");
    assert_eq!(again.get(&key).expect("get").expect("stored").expose(), "s3cret: with spaces & ünïcode");
    let phone = SecretKey::Phone("sip:613@192.0.2.10".into());
    again.set(&phone, &Secret::new("digest-pw")).expect("set phone");
    assert!(again.delete(&phone).expect("delete"));
    assert_eq!(again.get(&phone).expect("get"), None);
}

#[test]
#[ignore = "runs inside a private session, started by no_secret_service_is_a_clear_error"]
fn inside_no_service() {
    assert!(std::env::var("LAMPLIGHTER_INSIDE_SESSION").is_ok(), "run through no_secret_service_is_a_clear_error");
    let e = Keyring::secret_service().expect_err("no Secret Service on this bus");
    assert!(matches!(e, SecretsError::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("no keyring is available"), "{e}");
}
