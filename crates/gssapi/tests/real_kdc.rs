//! Initiator and acceptor through MIT krb5 against a real KDC on loopback
//! (testkit's `Kdc`). krb5 finds its configuration and ticket cache through
//! process-wide variables, so each scenario runs in a child process: this
//! test binary, re-executed with the realm's environment and `--exact`.

use lamplighter_gssapi::{Acceptor, GssError, Initiator, Mechanism};
use lamplighter_testkit::kdc::{Kdc, REALM};

fn run_inside(kdc: &Kdc, cache: &str, scenario: &str) {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args(["--exact", scenario, "--ignored", "--nocapture", "--test-threads=1"])
        .envs(kdc.env(cache))
        .env("LAMPLIGHTER_TEST_KEYTAB", &kdc.keytab)
        .output()
        .expect("re-run test binary");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "{scenario} failed:\n{text}\nKDC log:\n{}", kdc.log());
}

fn keytab() -> std::path::PathBuf {
    std::env::var_os("LAMPLIGHTER_TEST_KEYTAB").expect("run through its outer test").into()
}

#[test]
fn a_ticket_signs_in_both_ways_round() {
    let kdc = Kdc::start();
    kdc.add_user("mara", "Winter-2026");
    let cache = kdc.kinit("mara", "Winter-2026", None);
    run_inside(&kdc, &cache, "inside_mutual_sign_in");
    // the service ticket came from this KDC
    assert!(kdc.log().contains("TGS_REQ"), "{}", kdc.log());
}

#[test]
#[ignore = "run by a_ticket_signs_in_both_ways_round"]
fn inside_mutual_sign_in() {
    let mut client = Initiator::new("HTTP", "localhost").expect("initiator");
    assert_eq!(client.service(), "HTTP@localhost");
    let first = client.step(None).expect("first token").expect("a token");
    assert!(!client.is_complete());
    let mut server = Acceptor::with_keytab(&keytab()).expect("keytab");
    let accepted = server.step(&first).expect("accepted");
    assert!(accepted.complete);
    assert_eq!(accepted.client.as_deref(), Some(format!("mara@{REALM}").as_str()));
    assert_eq!(accepted.mechanism, Some(Mechanism::Kerberos));
    let proof = accepted.token.expect("the server's proof (AP-REP)");
    // the proof, altered in its last byte, does not verify
    let mut forged = Initiator::new("HTTP", "localhost").expect("initiator");
    let t = forged.step(None).expect("token").expect("token");
    let mut answer = Acceptor::with_keytab(&keytab()).expect("keytab").step(&t).expect("ok").token.expect("proof");
    let last = answer.len() - 1;
    answer[last] ^= 0x55;
    match forged.step(Some(&answer)) {
        Err(GssError::MutualAuth { service, .. }) => assert_eq!(service, "HTTP@localhost"),
        other => panic!("a forged proof was taken: {other:?}"),
    }
    // the real one completes the exchange
    assert_eq!(client.step(Some(&proof)).expect("proof verifies"), None);
    assert!(client.is_complete());
    client.require_complete().expect("complete");
    let (who, mech) = client.signed_in();
    assert_eq!(who.as_deref(), Some(format!("mara@{REALM}").as_str()));
    assert_eq!(mech, Some(Mechanism::Kerberos));
    // an exchange the server ends without its proof is not trusted
    let mut unproven = Initiator::new("HTTP", "localhost").expect("initiator");
    unproven.step(None).expect("token");
    assert!(matches!(unproven.require_complete(), Err(GssError::MutualAuth { .. })));
    // garbage is refused by the acceptor, and it can take a good token after
    assert!(matches!(server.step(b"\x60\x03garbage"), Err(GssError::Failed { .. })));
}

#[test]
fn no_ticket_and_an_expired_ticket_say_run_kinit() {
    let kdc = Kdc::start();
    kdc.add_user("mara", "Winter-2026");
    let missing = format!("FILE:{}/no-such-cache", std::env::temp_dir().display());
    run_inside(&kdc, &missing, "inside_no_ticket");
    let cache = kdc.kinit("mara", "Winter-2026", Some("2s"));
    kdc.wait_until_expired(&cache);
    run_inside(&kdc, &cache, "inside_expired_ticket");
}

#[test]
#[ignore = "run by no_ticket_and_an_expired_ticket_say_run_kinit"]
fn inside_no_ticket() {
    let mut client = Initiator::new("HTTP", "localhost").expect("initiator");
    let e = client.step(None).expect_err("no ticket");
    assert!(matches!(e, GssError::NoTicket { .. }), "{e:?}");
    assert!(e.to_string().contains("run kinit"), "{e}");
}

#[test]
#[ignore = "run by no_ticket_and_an_expired_ticket_say_run_kinit"]
fn inside_expired_ticket() {
    let mut client = Initiator::new("HTTP", "localhost").expect("initiator");
    let e = client.step(None).expect_err("expired");
    assert!(matches!(e, GssError::Expired { .. }), "{e:?}");
    assert!(e.to_string().contains("run kinit"), "{e}");
}

#[test]
fn a_service_without_a_key_in_the_realm_is_named() {
    let kdc = Kdc::start();
    kdc.add_user("mara", "Winter-2026");
    let cache = kdc.kinit("mara", "Winter-2026", None);
    run_inside(&kdc, &cache, "inside_unknown_service");
}

#[test]
#[ignore = "run by a_service_without_a_key_in_the_realm_is_named"]
fn inside_unknown_service() {
    let mut client = Initiator::new("HTTP", "exchange.elsewhere.test").expect("initiator");
    let e = client.step(None).expect_err("no such service");
    let text = e.to_string();
    assert!(matches!(e, GssError::Failed { .. }), "{e:?}");
    assert!(text.contains("not found in Kerberos database") || text.contains("Server"), "{text}");
}
