//! The state core on its own: changes in, counts, notifications and lamp out.

use super::*;
use lamplighter_ews_wire::{Mailbox, UmProperties};

fn user() -> UserIdentity {
    UserIdentity::new(&["frank.carius@netatwork.de"], &["+49 5251 304600"]).expect("user")
}

fn vm(id: &str, read: bool, urgent: bool) -> Item {
    Item {
        element: "Message".into(),
        id: ItemId { id: id.into(), change_key: "ck1".into() },
        item_class: Some("IPM.Note.Microsoft.Voicemail.UM.CA".into()),
        importance: Some(if urgent { "High" } else { "Normal" }.into()),
        is_read: Some(read),
        date_time_received: Some(format!("2026-11-24T09:00:{:02}Z", id.len())),
        um: UmProperties {
            duration_secs: Some(42),
            caller_number: Some("+49 5251 304613".into()),
            ..UmProperties::default()
        },
        ..Item::default()
    }
}

fn missed(id: &str, call_id: &str, headers: Vec<(String, String)>) -> Item {
    Item {
        element: "Message".into(),
        id: ItemId { id: id.into(), change_key: "ck1".into() },
        item_class: Some("IPM.Note.Microsoft.Missed.Voice".into()),
        is_read: Some(false),
        date_time_received: Some("2026-11-24T10:00:00Z".into()),
        from: Some(Mailbox { name: Some("Carl Caller".into()), email: Some("+49 30 123456".into()) }),
        um: UmProperties {
            call_id: Some(call_id.into()),
            caller_number: Some("+49 30 123456".into()),
            ..UmProperties::default()
        },
        headers,
        ..Item::default()
    }
}

fn drain(s: &mut MailboxState) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn lamps(out: &[Output]) -> Vec<Counts> {
    out.iter().filter_map(|o| if let Output::Lamp(c) = o { Some(*c) } else { None }).collect()
}

fn notes(out: &[Output]) -> Vec<&Notification> {
    out.iter().filter_map(|o| if let Output::Notify(n) = o { Some(n) } else { None }).collect()
}

fn counts(new: u32, old: u32, urgent_new: u32, urgent_old: u32) -> Counts {
    Counts { new, old, urgent_new, urgent_old }
}

#[test]
fn start_up_is_silent_then_the_lamp_shows_exchange_um_counts() {
    let mut s = MailboxState::new(user(), false);
    for (id, read, urgent) in
        [("a", false, true), ("bb", false, false), ("ccc", false, false), ("dddd", true, false), ("eeeee", true, false)]
    {
        s.apply(Change::Added(vm(id, read, urgent)));
    }
    let out = drain(&mut s);
    assert!(notes(&out).is_empty(), "nothing already there is announced");
    assert!(lamps(&out).is_empty(), "no lamp before the picture is complete");
    s.caught_up();
    assert_eq!(lamps(&drain(&mut s)), [counts(3, 2, 1, 0)]);
    // a new voicemail: one notification, the lamp 4/2
    s.apply(Change::Added(vm("ffffff", false, false)));
    let out = drain(&mut s);
    assert_eq!(notes(&out).len(), 1);
    assert_eq!(notes(&out)[0].kind, Kind::Voicemail);
    assert_eq!(notes(&out)[0].duration_secs, Some(42));
    assert_eq!(lamps(&out), [counts(4, 2, 1, 0)]);
    // read elsewhere: 3/3; the same state again sends nothing
    s.apply(Change::ReadChanged { id: ItemId { id: "ffffff".into(), change_key: "ck2".into() }, is_read: true });
    assert_eq!(lamps(&drain(&mut s)), [counts(3, 3, 1, 0)]);
    s.apply(Change::ReadChanged { id: ItemId { id: "ffffff".into(), change_key: "ck2".into() }, is_read: true });
    assert!(lamps(&drain(&mut s)).is_empty());
    // deleted: gone from the counts
    s.apply(Change::Removed(ItemId { id: "a".into(), change_key: String::new() }));
    assert_eq!(lamps(&drain(&mut s)), [counts(2, 3, 0, 0)]);
    assert_eq!(s.summary().badge(), 2);
}

#[test]
fn a_missed_call_from_three_devices_is_one_notification_and_one_count() {
    let mut s = MailboxState::new(user(), false);
    s.caught_up();
    drain(&mut s);
    for (n, device) in ["desk", "softphone", "mobile"].iter().enumerate() {
        s.apply(Change::Added(missed(&format!("m{n}"), "c1@pbx", vec![("User-Agent".into(), device.to_string())])));
    }
    let out = drain(&mut s);
    assert_eq!(notes(&out).len(), 1, "{out:?}");
    assert_eq!(notes(&out)[0].kind, Kind::MissedCall);
    assert!(notes(&out)[0].from.contains("Carl Caller"));
    assert_eq!(s.summary().missed_calls, 1);
    assert!(lamps(&out).is_empty(), "the lamp follows voicemail only by default");
    assert_eq!(s.calls()[0].devices(), 3);
    // seen on one device: still unseen elsewhere until every report is read
    for n in 0..3 {
        s.apply(Change::ReadChanged { id: ItemId { id: format!("m{n}"), change_key: String::new() }, is_read: true });
    }
    assert_eq!(s.summary().missed_calls, 0);
}

#[test]
fn include_missed_calls_adds_them_to_the_lamp() {
    let mut s = MailboxState::new(user(), true);
    s.apply(Change::Added(vm("a", false, false)));
    s.caught_up();
    assert_eq!(lamps(&drain(&mut s)), [counts(1, 0, 0, 0)]);
    s.apply(Change::Added(missed("m", "c2@pbx", vec![])));
    assert_eq!(lamps(&drain(&mut s)), [counts(2, 0, 0, 0)]);
}

#[test]
fn a_team_call_is_secondary_and_raises_nothing() {
    let sip =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/sip/invite-team-call.sip"))
            .expect("fixture");
    let headers = lamplighter_missed_calls::headers(&sip);
    let mut s = MailboxState::new(user(), false);
    s.caught_up();
    drain(&mut s);
    s.apply(Change::Added(missed("t", "team@pbx", headers)));
    let out = drain(&mut s);
    assert!(notes(&out).is_empty(), "{out:?}");
    assert_eq!((s.summary().missed_calls, s.summary().secondary_calls), (0, 1));
    let calls = s.calls();
    assert!(
        matches!(&calls[0].outcome, CallOutcome::Secondary(lamplighter_missed_calls::SecondaryReason::TeamCall { .. })),
        "a team call by History-Info's ms-retarget-reason, not a forward: {:?}",
        calls[0].outcome
    );
}

#[test]
fn ordinary_mail_is_ignored_and_a_reset_reloads_announcing_only_what_is_new() {
    let mut s = MailboxState::new(user(), false);
    s.caught_up();
    drain(&mut s);
    let mut mail = vm("x", false, false);
    mail.item_class = Some("IPM.Note".into());
    s.apply(Change::Added(mail));
    assert_eq!(s.summary(), Summary::default());
    s.apply(Change::Added(vm("a", false, false)));
    drain(&mut s);
    s.apply(Change::Added(vm("gone", false, false)));
    drain(&mut s);
    s.apply(Change::Reset);
    assert!(s.reloading());
    s.apply(Change::Added(vm("a", false, false)));
    s.apply(Change::Added(vm("bb", false, false)));
    // what was known comes back silently; what arrived meanwhile is news, once
    let out = drain(&mut s);
    assert_eq!(notes(&out).len(), 1, "{out:?}");
    s.caught_up();
    assert!(!s.reloading());
    // "gone" did not come back: deleted while the state was lost
    assert_eq!(s.summary().voicemail.new, 2);
    assert!(notes(&drain(&mut s)).is_empty());
}

#[test]
fn protected_voicemail_counts_as_voicemail_and_answered_calls_do_not() {
    let r = Recogniser::default();
    let of = |class: &str| {
        recognise(&r, &Item { item_class: Some(class.to_string().into()), ..Item::default() }).map(|(k, _)| k)
    };
    assert_eq!(of("IPM.Note.rpmsg.Microsoft.Voicemail.UM.CA"), Some(Kind::Voicemail));
    assert_eq!(of("ipm.note.microsoft.voicemail.um"), Some(Kind::Voicemail));
    assert_eq!(of("IPM.Note.Microsoft.Missed.Voice"), Some(Kind::MissedCall));
    assert_eq!(of("IPM.Note.Microsoft.Conversation.Voice"), None);
    assert_eq!(of("IPM.Note"), None);
}

fn asterisk_mail(id: &str) -> Item {
    Item {
        element: "Message".into(),
        id: ItemId { id: id.into(), change_key: "ck1".into() },
        item_class: Some("IPM.Note".into()),
        subject: Some("[PBX]: New message 1 in mailbox 600".into()),
        is_read: Some(false),
        date_time_received: Some("2026-11-24T11:00:00Z".into()),
        from: Some(Mailbox { name: Some("Asterisk PBX".into()), email: Some("asterisk@pbx.example.com".into()) }),
        headers: vec![
            ("X-Asterisk-CallerID".into(), "+49 30 123456".into()),
            ("X-Asterisk-CallerIDName".into(), "Carl Caller".into()),
        ],
        attachments: vec![lamplighter_ews_wire::Attachment {
            id: "att-wav".into(),
            name: Some("msg0000.wav".into()),
            content_type: Some("audio/x-wav".into()),
            size: Some(16_044),
        }],
        text_body: Some("you were just left a 0:12 long message (number 1)".into()),
        ..Item::default()
    }
}

#[test]
fn a_pbx_voicemail_mail_is_a_voicemail_from_the_caller_not_from_the_pbx() {
    let mut s = MailboxState::new(user(), false);
    s.caught_up();
    drain(&mut s);
    s.apply(Change::Added(asterisk_mail("pbx1")));
    let out = drain(&mut s);
    assert_eq!(lamps(&out), [counts(1, 0, 0, 0)]);
    let n = notes(&out);
    assert_eq!(n.len(), 1);
    assert_eq!((n[0].from.as_str(), n[0].duration_secs), ("Carl Caller (+49 30 123456)", Some(12)));
    let v = s.voicemail("pbx1").expect("listed");
    assert_eq!(v.audio_attachment.as_deref(), Some("att-wav"));

    // the same mail from a PBX whose rule marks missed calls, with the PBX's sender and no caller id
    let rule = lamplighter_recognise::RuleSpec {
        name: "pbx-missed".into(),
        kind: "missed_call".into(),
        subject: "^Missed call".into(),
        ..Default::default()
    };
    let mut s = MailboxState::new(user(), true).with_recogniser(Recogniser::new(vec![rule.compile().expect("valid")]));
    s.caught_up();
    drain(&mut s);
    let mut m = asterisk_mail("pbx2");
    m.subject = Some("Missed call".into());
    m.headers.clear();
    s.apply(Change::Added(m));
    let out = drain(&mut s);
    assert_eq!(s.summary().missed_calls, 1, "{:?}", s.summary());
    assert_eq!(notes(&out)[0].from, "anonymous", "the PBX's address is not the caller");
}

#[test]
fn the_transcription_preview_comes_from_the_body() {
    let mut s = MailboxState::new(user(), false);
    s.caught_up();
    let mut item = vm("t", false, false);
    item.text_body = Some("  Hallo Frank,\n\n bitte ruf mich   zurück. ".into());
    s.apply(Change::Added(item));
    let out = drain(&mut s);
    assert_eq!(notes(&out)[0].preview.as_deref(), Some("Hallo Frank, bitte ruf mich zurück."));
    assert_eq!(s.voicemail("t").and_then(|v| v.transcription.as_deref()), Some("Hallo Frank, bitte ruf mich zurück."));
    assert_eq!(preview(&"x ".repeat(300)).map(|p| p.chars().count()), Some(200));
    assert_eq!(preview(" \n "), None);
}
