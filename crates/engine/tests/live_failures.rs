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

/// Saved settings restart the mailbox, and the old run ends its server-side
/// subscription first: after any number of saves the server holds one
/// subscription, not one per save (Exchange Online allows 20 per account).
#[test]
fn saving_settings_restarts_without_leaving_subscriptions_behind() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let sim = rt.block_on(Simulator::start(SimConfig::default())).expect("sim");
    sim.deposit_voicemail(Voicemail { caller_number: "+49 30 1".into(), duration_secs: 5, ..Voicemail::default() });
    let dir = tempfile::tempdir().expect("tmp");
    let e = engine(dir.path(), &common::mailbox(&sim.ews_url()), "Sommer2026!");
    let live = e.start_live().expect("live");
    wait(&e, "connected", |s| s.connection == Some(Connection::Live) && s.counts.voicemails == 1);
    for round in 0..3 {
        let view = e.settings_view();
        e.save_settings(lamplighter_engine::SettingsUpdate {
            form: view.form,
            mailbox_password: None,
            phone_passwords: Vec::new(),
        })
        .expect("saved");
        // the new run subscribes (its Subscribe comes before its live snapshot), then is live
        let subscribes = || sim.served().iter().filter(|r| r.op == "Subscribe").count();
        wait(&e, "live again after a new Subscribe", |s| {
            s.connection == Some(Connection::Live) && s.counts.voicemails == 1 && subscribes() >= round + 2
        });
        assert_eq!(sim.subscriptions(), 1, "after save {round}: the old subscription was ended");
    }
    rt.block_on(live.stop());
    assert_eq!(sim.subscriptions(), 0, "a stopped engine leaves nothing on the server");
}
