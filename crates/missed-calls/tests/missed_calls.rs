//! The missed-call analysis against recorded SIP messages (the History-Info
//! forms of seed 004 and RFC 7044), the scenarios a user lives through, and
//! properties of the call book.

use lamplighter_missed_calls::*;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn fixture(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every fixture this file uses; `every_fixture_is_used` checks the folders against it.
const USED: &[&str] = &[
    "sip/invite-team-call.sip",
    "sip/invite-delegation.sip",
    "sip/invite-forwarding.sip",
    "sip/invite-response-group.sip",
    "sip/invite-direct.sip",
    "sip/invite-rfc7044-sequential-fork.sip",
    "sip/invite-rfc7044-forward-to-user.sip",
    "sip/invite-diversion.sip",
    "sip/invite-compact-headers.sip",
    "sip/cancel-completed-elsewhere.sip",
    "sip/cancel-caller-hung-up.sip",
    "um/usernotification-missed.xml",
];

fn frank() -> UserIdentity {
    UserIdentity::new(&["frank.carius@netatwork.de"], &["+49 5251 304613", "613"]).expect("user")
}

fn frank2() -> UserIdentity {
    UserIdentity::new(&["frank.carius2@netatwork.de"], &["+49 5251 304667"]).expect("user")
}

fn party(s: &str) -> Party {
    Party::parse(s).expect("party")
}

fn invite(name: &str, device: &str, at: Millis) -> CallRecord {
    CallRecord::from_sip(device, &fixture(name), None, false, at).unwrap_or_else(|e| panic!("{name}: {e}"))
}

mod seed_004_and_rfc_7044 {
    use super::*;

    fn class(name: &str, user: &UserIdentity) -> Classification {
        classify(&invite(name, "desk", 0), user)
    }

    #[test]
    fn team_call_is_secondary_for_the_member_and_primary_for_the_owner() {
        let owner = party("sip:frank.carius2@netatwork.de");
        assert_eq!(
            class("sip/invite-team-call.sip", &frank()),
            Classification::Secondary(SecondaryReason::TeamCall { owner })
        );
        assert_eq!(class("sip/invite-team-call.sip", &frank2()), Classification::Primary);
    }

    #[test]
    fn delegation_is_secondary_for_the_delegate_and_primary_for_the_boss() {
        let owner = party("sip:frank.carius2@netatwork.de");
        assert_eq!(
            class("sip/invite-delegation.sip", &frank()),
            Classification::Secondary(SecondaryReason::Delegation { owner })
        );
        assert_eq!(class("sip/invite-delegation.sip", &frank2()), Classification::Primary);
        let r = invite("sip/invite-delegation.sip", "desk", 0);
        let reason = r.history.entries[0].reason.as_ref().expect("escaped Reason in the URI");
        assert_eq!((reason.cause, reason.text.as_deref()), (Some(302), Some("Moved Temporarily")));
    }

    #[test]
    fn forwarding_is_secondary_with_its_cause_even_with_the_trace_s_missing_quote() {
        let from = party("sip:frank.carius2@netatwork.de");
        assert_eq!(
            class("sip/invite-forwarding.sip", &frank()),
            Classification::Secondary(SecondaryReason::Forwarded { from, cause: Some(302) })
        );
        assert_eq!(class("sip/invite-forwarding.sip", &frank2()), Classification::Primary);
        let r = invite("sip/invite-forwarding.sip", "desk", 0);
        assert_eq!(r.history.entries[1].target_phone, Some(party("tel:+495251304613;ext=613")));
    }

    #[test]
    fn response_group_is_secondary_for_the_agent_and_primary_for_the_group() {
        let group = party("sip:rgtest2013@netatwork.de");
        assert_eq!(
            class("sip/invite-response-group.sip", &frank()),
            Classification::Secondary(SecondaryReason::ResponseGroup { group })
        );
        let rg = UserIdentity::new(&["rgtest2013@netatwork.de"], &[] as &[&str]).expect("group");
        assert_eq!(class("sip/invite-response-group.sip", &rg), Classification::Primary);
        // Lync's unescaped ?Reason=SIP&cause=302&text=Accepted
        let r = invite("sip/invite-response-group.sip", "desk", 0);
        let reason = r.history.entries[0].reason.as_ref().expect("Reason");
        assert_eq!(
            (reason.protocol.as_str(), reason.cause, reason.text.as_deref()),
            ("SIP", Some(302), Some("Accepted"))
        );
    }

    #[test]
    fn a_direct_call_is_primary() {
        assert_eq!(class("sip/invite-direct.sip", &frank()), Classification::Primary);
    }

    #[test]
    fn sequential_forking_to_the_user_s_own_contacts_is_primary() {
        let bob = UserIdentity::new(&["bob@example.com"], &[] as &[&str]).expect("bob");
        assert_eq!(class("sip/invite-rfc7044-sequential-fork.sip", &bob), Classification::Primary);
        let r = invite("sip/invite-rfc7044-sequential-fork.sip", "desk", 0);
        // two header lines, three entries, in tree order
        let idx: Vec<String> =
            r.history.entries.iter().map(|e| e.index.as_ref().map(ToString::to_string).unwrap_or_default()).collect();
        assert_eq!(idx, ["1", "1.1", "1.2"]);
        assert_eq!(r.history.entries[1].reason.as_ref().and_then(|r| r.cause), Some(408));
    }

    #[test]
    fn forwarded_on_busy_is_secondary_for_the_new_target_and_primary_for_the_original() {
        let carol = UserIdentity::new(&["carol@example.com"], &[] as &[&str]).expect("carol");
        let bob = UserIdentity::new(&["bob@example.com"], &[] as &[&str]).expect("bob");
        assert_eq!(
            class("sip/invite-rfc7044-forward-to-user.sip", &carol),
            Classification::Secondary(SecondaryReason::Forwarded {
                from: party("sip:bob@example.com"),
                cause: Some(486)
            })
        );
        assert_eq!(class("sip/invite-rfc7044-forward-to-user.sip", &bob), Classification::Primary);
    }

    #[test]
    fn diversion_without_history_info() {
        let user = UserIdentity::new(&[] as &[&str], &["+49 5251 304613"]).expect("user");
        let hunt = UserIdentity::new(&[] as &[&str], &["+49 5251 304600"]).expect("hunt group");
        assert_eq!(
            class("sip/invite-diversion.sip", &user),
            Classification::Secondary(SecondaryReason::Forwarded {
                from: party("tel:+495251304600"),
                cause: Some(408)
            })
        );
        assert_eq!(class("sip/invite-diversion.sip", &hunt), Classification::Primary);
    }

    #[test]
    fn compact_headers_folding_case_and_anonymous_caller() {
        let r = invite("sip/invite-compact-headers.sip", "desk", 0);
        assert_eq!(r.call_id.as_deref(), Some("compact-0001@192.0.2.40"));
        assert_eq!(r.caller, Party::Anonymous);
        assert_eq!(r.history.entries.len(), 2);
        assert_eq!(classify(&r, &frank()), Classification::Primary);
    }

    #[test]
    fn cancel_with_call_completed_elsewhere_means_answered() {
        let r = CallRecord::from_sip(
            "softphone",
            &fixture("sip/invite-direct.sip"),
            Some(&fixture("sip/cancel-completed-elsewhere.sip")),
            false,
            0,
        )
        .expect("record");
        assert_eq!(r.outcome, Outcome::AnsweredElsewhere);
        assert_eq!(classify(&r, &frank()), Classification::AnsweredElsewhere);
        let r = CallRecord::from_sip(
            "softphone",
            &fixture("sip/invite-direct.sip"),
            Some(&fixture("sip/cancel-caller-hung-up.sip")),
            false,
            0,
        )
        .expect("record");
        assert_eq!(r.outcome, Outcome::Missed);
    }

    #[test]
    fn um_notification_from_seed_003() {
        let r = CallRecord::from_um_notification(&fixture("um/usernotification-missed.xml")).expect("notification");
        assert_eq!(r.call_id.as_deref(), Some("f46b6940-03d8-45dc-8ba6-577edde1a929"));
        assert_eq!(r.caller, party("tel:+12892596319"));
        assert_eq!(r.at, 1_297_387_779_000);
        assert_eq!(r.outcome, Outcome::Missed);
        assert!(
            CallRecord::from_um_notification("<UserNotification><Event type=\"missed\"/></UserNotification>").is_err()
        );
        assert!(CallRecord::from_um_notification("<UserNotification><Time>x</Time>").is_err());
    }
}

mod scenarios {
    use super::*;

    const T0: Millis = 1_764_000_000_000;

    fn direct(device: &str, call_id: &str, from: &str, at: Millis) -> CallRecord {
        let msg = format!(
            "INVITE sip:frank.carius@netatwork.de SIP/2.0\r\nCall-ID: {call_id}\r\nFrom: <{from}>;tag=t-{call_id}\r\nTo: <sip:frank.carius@netatwork.de>\r\n\r\n"
        );
        CallRecord::from_sip(device, &msg, None, false, at).expect("record")
    }

    fn mailbox(class: &str, item: &str, number: &str, received: Millis, call_id: &str) -> CallRecord {
        CallRecord::from_mailbox_item(&MailboxCallItem {
            item_id: item.into(),
            kind: lamplighter_missed_calls::record::outcome_of_item_class(class).expect("a UM class"),
            received,
            call_id: Some(call_id.into()),
            caller_number: Some(number.into()),
            caller_name: Some("Carl Caller".into()),
            headers: vec![],
        })
        .expect("item")
    }

    #[test]
    fn the_same_call_reported_by_three_devices_is_one_missed_call() {
        let mut book = CallBook::new(frank());
        for device in ["desk", "softphone", "mobile"] {
            book.insert(direct(device, "c1@pbx", "sip:+4930123456@gw;user=phone", T0));
        }
        let missed = book.missed_calls();
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].devices(), 3);
        assert_eq!(missed[0].caller, party("tel:+4930123456"));
    }

    #[test]
    fn answered_on_the_mobile_is_not_missed_on_desk_and_softphone() {
        let mut book = CallBook::new(frank());
        let invite = fixture("sip/invite-direct.sip");
        book.insert(
            CallRecord::from_sip("desk", &invite, Some(&fixture("sip/cancel-completed-elsewhere.sip")), false, T0)
                .expect("r"),
        );
        book.insert(CallRecord::from_sip("softphone", &invite, None, false, T0 + 200).expect("r"));
        book.insert(CallRecord::from_sip("mobile", &invite, None, true, T0 + 100).expect("r"));
        assert_eq!(book.missed_calls().len(), 0);
        let calls = book.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].outcome, CallOutcome::Answered { by: Some("mobile".into()) });
    }

    #[test]
    fn a_team_call_is_no_missed_call_but_one_secondary() {
        let mut book = CallBook::new(frank());
        book.insert(invite("sip/invite-team-call.sip", "desk", T0));
        book.insert(invite("sip/invite-team-call.sip", "softphone", T0 + 300));
        assert_eq!(book.missed_calls().len(), 0);
        let secondary = book.secondary_calls();
        assert_eq!(secondary.len(), 1);
        assert_eq!(
            secondary[0].outcome,
            CallOutcome::Secondary(SecondaryReason::TeamCall { owner: party("sip:frank.carius2@netatwork.de") })
        );
        assert_eq!(secondary[0].devices(), 2);
    }

    #[test]
    fn a_voicemail_left_suppresses_the_missed_call_notice() {
        let mut book = CallBook::new(frank());
        book.insert(direct("desk", "c9@pbx", "sip:+4930123456@gw;user=phone", T0));
        // Exchange UM files the voicemail ~40 s later, under its own call id
        book.insert(mailbox("IPM.Note.Microsoft.Voicemail.UM.CA", "AAMk-vm-1", "+4930123456", T0 + 40_000, "um-77"));
        assert_eq!(book.missed_calls().len(), 0);
        let calls = book.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].outcome, CallOutcome::Voicemail);
    }

    #[test]
    fn two_calls_from_the_same_number_a_minute_apart_are_two() {
        let mut book = CallBook::new(frank());
        book.insert(direct("desk", "a@pbx", "sip:+4930123456@gw;user=phone", T0));
        book.insert(direct("softphone", "a@pbx", "sip:+4930123456@gw;user=phone", T0 + 100));
        book.insert(direct("desk", "b@pbx", "sip:+4930123456@gw;user=phone", T0 + 60_000));
        book.insert(mailbox("IPM.Note.Microsoft.Missed.Voice", "AAMk-mc-2", "+4930123456", T0 + 61_000, "um-2"));
        let missed = book.missed_calls();
        assert_eq!(missed.len(), 2, "{missed:?}");
        let by_caller = book.missed_by_caller();
        assert_eq!(by_caller.len(), 1);
        assert_eq!(by_caller[0].attempts, 2);
    }

    #[test]
    fn the_mailbox_notice_joins_the_devices_reports_of_the_same_call() {
        let mut book = CallBook::new(frank());
        book.insert(direct("desk", "c3@pbx", "sip:+4930123456@gw;user=phone", T0));
        book.insert(direct("softphone", "c3@pbx", "sip:+4930123456@gw;user=phone", T0 + 50));
        book.insert(mailbox("IPM.Note.Microsoft.Missed.Voice", "AAMk-mc-3", "+49 30 123456", T0 + 20_000, "um-3"));
        let missed = book.missed_calls();
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].reports.len(), 3);
        assert_eq!(missed[0].caller_name.as_deref(), Some("Carl Caller"));
    }

    #[test]
    fn two_reports_from_one_device_are_never_one_call() {
        let mut book = CallBook::new(frank());
        book.insert(direct("desk", "x1@pbx", "sip:+4930123456@gw;user=phone", T0));
        book.insert(direct("desk", "x2@pbx", "sip:+4930123456@gw;user=phone", T0 + 5_000));
        assert_eq!(book.missed_calls().len(), 2);
    }

    #[test]
    fn different_original_targets_are_never_one_call() {
        let mut book = CallBook::new(frank());
        let mut a = invite("sip/invite-team-call.sip", "desk", T0);
        a.call_id = Some("k1".into());
        let mut b = invite("sip/invite-response-group.sip", "softphone", T0 + 1_000);
        b.call_id = Some("k2".into());
        book.insert(a);
        book.insert(b);
        assert_eq!(book.calls().len(), 2);
    }

    #[test]
    fn anonymous_callers_match_only_by_call_id_or_history_root() {
        let mut book = CallBook::new(frank());
        book.insert(direct("desk", "n1@pbx", "sip:anonymous@anonymous.invalid", T0));
        book.insert(direct("softphone", "n2@pbx", "sip:anonymous@anonymous.invalid", T0 + 1_000));
        assert_eq!(book.missed_calls().len(), 2, "two anonymous calls without shared history stay apart");
        let mut book = CallBook::new(frank());
        let mut a = invite("sip/invite-compact-headers.sip", "desk", T0);
        a.call_id = Some("leg-a".into());
        let mut b = invite("sip/invite-compact-headers.sip", "softphone", T0 + 2_000);
        b.call_id = Some("leg-b".into());
        book.insert(a);
        book.insert(b);
        assert_eq!(book.missed_calls().len(), 1, "same History-Info root and time: one call");
    }

    #[test]
    fn removing_the_answering_report_makes_the_call_missed_again() {
        let mut book = CallBook::new(frank());
        let invite = fixture("sip/invite-direct.sip");
        book.insert(CallRecord::from_sip("desk", &invite, None, false, T0).expect("r"));
        let answered = book.insert(CallRecord::from_sip("mobile", &invite, None, true, T0).expect("r"));
        assert_eq!(book.missed_calls().len(), 0);
        assert!(book.remove(answered).is_some());
        assert_eq!(book.missed_calls().len(), 1);
        assert!(book.remove(answered).is_none(), "removing twice is refused");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A call book's content independent of ids: per call, its outcome and its reports' keys.
    fn canonical(book: &CallBook) -> BTreeSet<(String, BTreeSet<String>)> {
        book.calls()
            .into_iter()
            .map(|c| {
                let keys = c
                    .reports
                    .iter()
                    .map(|r| format!("{:?}|{}|{:?}", r.source, r.device, book_key(book, r.id)))
                    .collect();
                (format!("{:?}", c.outcome), keys)
            })
            .collect()
    }

    fn book_key(book: &CallBook, id: RecordId) -> Option<Millis> {
        book.call_of(id).and_then(|c| c.reports.iter().find(|r| r.id == id).map(|_| c.at))
    }

    /// Generated reports: a few callers, devices and calls close in time, with
    /// some answered, some cancelled, some voicemail, some anonymous.
    fn records() -> impl Strategy<Value = Vec<CallRecord>> {
        let one = (0u8..4, 0u8..3, 0u8..6, 0i64..120, 0u8..10).prop_map(|(caller, device, call, secs, kind)| {
            let from = if caller == 3 { "sip:anonymous@anonymous.invalid".to_string() } else { format!("sip:+4930{caller}00@gw;user=phone") };
            let device = ["desk", "softphone", "mobile"][device as usize];
            let msg = format!(
                "INVITE sip:frank.carius@netatwork.de SIP/2.0\r\nCall-ID: call-{call}\r\nFrom: <{from}>;tag=t{call}\r\nTo: <sip:frank.carius@netatwork.de>\r\n\r\n"
            );
            let at = 1_000_000 + secs * 1_000 + i64::from(call) * 20_000;
            let cancel = "CANCEL sip:frank.carius@netatwork.de SIP/2.0\r\nReason: SIP;cause=200\r\n\r\n";
            let mut r = CallRecord::from_sip(device, &msg, (kind == 1).then_some(cancel), kind == 2, at).expect("record");
            if kind == 3 {
                r.outcome = Outcome::Voicemail;
            }
            r
        });
        proptest::collection::vec(one, 0..14)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

        #[test]
        fn arrival_order_does_not_matter(recs in records(), seed in any::<u64>()) {
            let mut a = CallBook::new(frank());
            for r in recs.clone() { a.insert(r); }
            let mut shuffled = recs;
            // a deterministic shuffle from the seed
            let mut s = seed;
            for i in (1..shuffled.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (s >> 33) as usize % (i + 1));
            }
            let mut b = CallBook::new(frank());
            for r in shuffled { b.insert(r); }
            prop_assert_eq!(canonical(&a), canonical(&b));
            prop_assert_eq!(a.missed_calls().len(), b.missed_calls().len());
        }

        #[test]
        fn repeated_reports_change_nothing(recs in records()) {
            let mut a = CallBook::new(frank());
            for r in recs.clone() { a.insert(r); }
            let before = (canonical(&a), a.len());
            for r in recs { a.insert(r); }
            prop_assert_eq!(before, (canonical(&a), a.len()));
        }

        #[test]
        fn removal_undoes_insertion(recs in records(), extra in records()) {
            let mut book = CallBook::new(frank());
            for r in recs { book.insert(r); }
            let before = canonical(&book);
            let existing = book.len();
            let mut added = Vec::new();
            for r in extra {
                let n = book.len();
                let id = book.insert(r);
                if book.len() > n { added.push(id); }
            }
            for id in added.into_iter().rev() { prop_assert!(book.remove(id).is_some()); }
            prop_assert_eq!(book.len(), existing);
            prop_assert_eq!(canonical(&book), before);
        }

        #[test]
        fn header_parsers_never_panic(s in "\\PC{0,200}") {
            let _ = HistoryInfo::parse(&[s.as_str()]);
            let _ = Reason::parse_list(&s);
            let _ = lamplighter_missed_calls::diversion::parse_diversion(&[s.as_str()]);
            let _ = Party::parse(&s);
            let _ = CallRecord::from_um_notification(&s);
        }
    }
}

#[test]
fn every_fixture_is_used() {
    for dir in ["sip", "um"] {
        for entry in std::fs::read_dir(fixtures().join(dir)).expect("fixtures") {
            let name = format!("{dir}/{}", entry.expect("entry").file_name().to_string_lossy());
            assert!(USED.contains(&name.as_str()), "fixture {name} is used by no test");
        }
    }
}
