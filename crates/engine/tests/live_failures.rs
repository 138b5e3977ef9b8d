//! The live engine reports every failure as something the UI can show:
//! an unreachable server, a refused sign-in, a phone that refuses the lamp.

mod common;

use common::{engine, wait};
use lamplighter_engine::{Connection, ProblemCode, Snapshot};
use lamplighter_ews_sim::{SimConfig, Simulator, Voicemail};

fn has(s: &Snapshot, code: ProblemCode) -> bool {
    s.problems.iter().any(|p| p.code == code)
}

#[test]
fn unreachable_server_refused_sign_in_and_refusing_phone_become_problems() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 1".into(), duration_secs: 5, ..Voicemail::default() });
    let dir = tempfile::tempdir().expect("tmp");
    let mailbox = common::mailbox;

    // nothing listens on the EWS URL
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr");
    let e = engine(&dir.path().join("a"), &mailbox(&format!("http://{closed}/EWS/Exchange.asmx")), "Sommer2026!");
    let live = e.start_live().expect("live");
    let s = wait(&e, "unreachable", |s| {
        has(s, ProblemCode::MailboxUnreachable) || matches!(s.connection, Some(Connection::Reconnecting { .. }))
    });
    assert_eq!(s.counts.voicemails, 0);
    assert_eq!(s.health, lamplighter_badge::Health::Disconnected);
    drop(live);

    // the wrong password
    let e = engine(&dir.path().join("b"), &mailbox(&sim.ews_url()), "Winter2026!");
    let live = e.start_live().expect("live");
    let s = wait(&e, "sign-in refused", |s| has(s, ProblemCode::MailboxSignIn));
    assert_eq!(s.health, lamplighter_badge::Health::Disconnected);
    drop(live);

    // the right one, and a phone that says busy to every NOTIFY
    // a phone that says busy to every NOTIFY
    let busy = lamplighter_testkit::phone::DemoPhone::start("486 Busy Here").expect("phone");
    let phone = busy.addr;
    let config = mailbox(&sim.ews_url())
        + &format!(
            "\n[[phone]]\nuri = \"sip:613@{phone}\"\ntransport = \"udp\"\nmode = \"unsolicited\"\nrefresh_hours = 12\n"
        );
    let e = engine(&dir.path().join("c"), &config, "Sommer2026!");
    let live = e.start_live().expect("live");
    let s = wait(&e, "phone refused", |s| has(s, ProblemCode::PhoneUnreachable) && s.counts.voicemails == 1);
    assert_eq!(s.connection, Some(Connection::Live));
    assert!(s.problems.iter().any(|p| p.message.contains("486")), "{s:?}");
    assert_eq!(s.health, lamplighter_badge::Health::PhoneUnreachable);
    drop(live);
}
