//! What the lists and notifications say for a given state, in both languages.

use super::*;
use lamplighter_ews_wire::{Item, ItemId, Mailbox, UmProperties};
use lamplighter_mailbox_sync::Change;

const NOW: i64 = 1_795_517_643; // 2026-11-24T10:54:03Z

fn user() -> lamplighter_missed_calls::UserIdentity {
    lamplighter_missed_calls::UserIdentity::new(&["frank.carius@netatwork.de"], &["+49 5251 304600"]).expect("user")
}

fn vm(id: &str, at: &str, name: Option<&str>, read: bool) -> Item {
    Item {
        element: "Message".into(),
        id: ItemId { id: id.into(), change_key: "ck".into() },
        item_class: Some("IPM.Note.Microsoft.Voicemail.UM.CA".into()),
        importance: Some("Normal".into()),
        is_read: Some(read),
        date_time_received: Some(at.into()),
        um: UmProperties {
            duration_secs: Some(42),
            caller_number: Some("+49 5251 304613".into()),
            caller_name: name.map(str::to_string),
            ..UmProperties::default()
        },
        text_body: Some("Bitte ruf zurück.".into()),
        ..Item::default()
    }
}

fn missed(id: &str, device: &str, headers: Vec<(String, String)>) -> Item {
    let mut h = vec![("User-Agent".to_string(), device.to_string())];
    h.extend(headers);
    Item {
        element: "Message".into(),
        id: ItemId { id: id.into(), change_key: "ck".into() },
        item_class: Some("IPM.Note.Microsoft.Missed.Voice".into()),
        is_read: Some(false),
        date_time_received: Some("2026-11-24T10:00:03Z".into()),
        from: Some(Mailbox { name: Some("Carl Caller".into()), email: None }),
        um: UmProperties {
            call_id: Some("c1@pbx".into()),
            caller_number: Some("+49 30 1234567".into()),
            caller_name: Some("Carl Caller".into()),
            ..UmProperties::default()
        },
        headers: h,
        ..Item::default()
    }
}

fn state() -> MailboxState {
    let mut s = MailboxState::new(user(), false);
    s.apply(Change::Added(vm("old", "2026-11-23T09:00:00Z", None, true)));
    s.apply(Change::Added(vm("new", "2026-11-24T10:49:03Z", Some("Jörg Brandt"), false)));
    for (n, d) in ["desk", "softphone", "mobile"].iter().enumerate() {
        s.apply(Change::Added(missed(&format!("m{n}"), d, vec![])));
    }
    let sip = include_str!("../../../tests/fixtures/sip/invite-team-call.sip");
    let headers = lamplighter_missed_calls::headers(sip);
    let mut team = missed("t", "desk", headers);
    team.um.call_id = Some("team@pbx".into());
    team.date_time_received = Some("2026-11-24T08:54:03Z".into());
    s.apply(Change::Added(team));
    s.caught_up();
    s
}

#[test]
fn lists_newest_first_with_names_times_durations_and_devices() {
    let l = lists(Lang::En, NOW, &state());
    let v = &l.voicemails;
    assert_eq!(v.len(), 2);
    assert_eq!((v[0].caller.as_str(), v[0].number.as_deref()), ("Jörg Brandt", Some("+49 5251 304613")));
    assert_eq!((v[0].when.as_str(), v[0].duration.as_deref(), v[0].unheard), ("5 min ago", Some("0:42"), true));
    assert_eq!(v[0].when_exact, "2026-11-24 10:49 UTC");
    assert_eq!(v[0].preview.as_deref(), Some("Bitte ruf zurück."));
    assert_eq!(
        (v[1].caller.as_str(), v[1].number.as_deref(), v[1].when.as_str(), v[1].unheard),
        ("+49 5251 304613", None, "yesterday", false)
    );
    let m = &l.missed_calls;
    assert_eq!(m.len(), 1, "three devices, one call");
    assert_eq!(
        (m[0].caller.as_str(), m[0].devices.as_deref(), m[0].unseen),
        ("Carl Caller", Some("reported by 3 devices"), true)
    );
    assert_eq!((m[0].when.as_str(), m[0].call_back.as_deref()), ("54 min ago", Some("tel:+49301234567")));
    assert_eq!(l.secondary_calls.len(), 1);
    assert!(
        l.secondary_calls[0].reason.as_deref().is_some_and(|r| r.starts_with("team call for")),
        "{:?}",
        l.secondary_calls[0]
    );
    assert_eq!(l.secondary_calls[0].when, "2 hours ago");
}

#[test]
fn the_same_lists_in_german() {
    let l = lists(Lang::De, NOW, &state());
    assert_eq!((l.voicemails[0].when.as_str(), l.voicemails[1].when.as_str()), ("vor 5 Min.", "gestern"));
    assert_eq!(l.voicemails[0].when_exact, "24.11.2026 10:49 UTC");
    assert_eq!(l.missed_calls[0].devices.as_deref(), Some("von 3 Geräten gemeldet"));
    assert!(l.secondary_calls[0].reason.as_deref().is_some_and(|r| r.starts_with("Teamanruf für")));
}

#[test]
fn notification_texts_in_both_languages() {
    let n = voicemail_notification(Lang::En, "+49 5251 304613", Some(42), Some("Bitte ruf zurück."));
    assert_eq!((n.title.as_str(), n.body.as_str()), ("Voicemail from +49 5251 304613, 0:42", "Bitte ruf zurück."));
    assert_eq!(n.actions, [("play", "Play".to_string()), ("mark-heard", "Mark heard".to_string())]);
    let n = voicemail_notification(Lang::De, "+49 5251 304613", Some(42), None);
    assert_eq!(n.title, "Sprachnachricht von +49 5251 304613, 0:42");
    assert_eq!(n.actions[1].1, "Als gehört markieren");
    let m = missed_call_notification(Lang::En, "Carl Caller", 3);
    assert_eq!((m.title.as_str(), m.body.as_str()), ("Missed call from Carl Caller", "3 attempts"));
    assert_eq!(m.actions, [("call-back", "Call back".to_string()), ("dismiss", "Dismiss".to_string())]);
    let m = missed_call_notification(Lang::De, "Carl Caller", 1);
    assert_eq!((m.title.as_str(), m.body.as_str()), ("Verpasster Anruf von Carl Caller", ""));
    assert_eq!(summary_notification(Lang::En, 12, 1).body, "12 new voicemails and 1 missed call while you were away");
    assert_eq!(
        summary_notification(Lang::De, 1, 4).body,
        "1 neue Sprachnachricht und 4 verpasste Anrufe in Ihrer Abwesenheit"
    );
    assert_eq!(summary(Lang::De, 2, 1), "2 neue Sprachnachrichten, 1 verpasster Anruf");
    assert_eq!(summary(Lang::En, 0, 0), "No new voicemail or missed calls");
    assert_eq!(summary(Lang::En, 3, 0), "3 new voicemails, 0 missed calls");
}

#[test]
fn small_helpers() {
    assert_eq!((duration(5), duration(65), duration(3725)), ("0:05".into(), "1:05".into(), "1:02:05".into()));
    assert_eq!(relative(Lang::En, NOW, NOW + 30), "just now", "a clock a little ahead is not the future");
    assert_eq!(relative(Lang::De, NOW, NOW - 5 * 86_400), "vor 5 Tagen");
    assert_eq!(
        (Lang::from_locale("de_DE.UTF-8"), Lang::from_locale("en_GB"), Lang::from_locale("C")),
        (Lang::De, Lang::En, Lang::En)
    );
    assert_eq!(parse_iso("2026-11-24T10:54:03Z"), Some(NOW));
}

#[test]
fn every_window_text_exists_in_both_languages() {
    let keys: std::collections::BTreeSet<&str> = crate::UI_STRINGS.iter().map(|(k, _, _)| *k).collect();
    assert_eq!(keys.len(), crate::UI_STRINGS.len(), "duplicate keys");
    for (k, en, de) in crate::UI_STRINGS {
        assert!(!en.trim().is_empty() && !de.trim().is_empty(), "{k}");
    }
    let en = crate::ui_strings(Lang::En);
    let de = crate::ui_strings(Lang::De);
    assert_eq!(en["play"], "Play");
    assert_eq!(de["play"], "Abspielen");
    assert_eq!(de["retry_now"], "Jetzt erneut versuchen");
    // German is really German where the words differ
    let same = crate::UI_STRINGS.iter().filter(|(_, en, de)| en == de).map(|(k, _, _)| *k).collect::<Vec<_>>();
    assert_eq!(same, ["pause", "optional"], "untranslated: {same:?}");
}

#[test]
fn the_tray_menu_speaks_both_languages() {
    assert_eq!(crate::menu_text(Lang::En).play_latest, "Play latest voicemail");
    assert_eq!(crate::menu_text(Lang::De).resend_lamp, "Lampe erneut ans Telefon senden");
    assert_eq!(crate::menu_text(Lang::De).quit, "Beenden");
}

#[test]
fn a_number_given_as_the_name_is_shown_once() {
    let mut state = MailboxState::new(user(), false);
    state.apply(Change::Added(vm("v1", "2026-11-24T10:00:00Z", Some("+49 5251 304613"), false)));
    let rows = lists(Lang::En, NOW, &state).voicemails;
    assert_eq!(rows[0].caller, "+49 5251 304613");
    assert_eq!(rows[0].number, None);
}

#[test]
fn numbers_compare_by_their_digits() {
    assert!(crate::same_number("+49 5251 304613", "+495251304613"));
    assert!(!crate::same_number("Carl Caller", "+49301234567"));
    assert!(!crate::same_number("+49 30 1", "+49 30 2"));
}

#[test]
fn the_tooltip_names_only_what_waits_in_the_user_s_language() {
    assert_eq!(tooltip(Lang::En, None, 3, 1), "3 new voicemails, 1 missed call");
    assert_eq!(tooltip(Lang::En, None, 1, 0), "1 new voicemail");
    assert_eq!(tooltip(Lang::En, None, 0, 3), "3 missed calls");
    assert_eq!(tooltip(Lang::En, None, 0, 0), "No new voicemail or missed calls");
    assert_eq!(tooltip(Lang::De, None, 3, 1), "3 neue Sprachnachrichten, 1 verpasster Anruf");
    assert_eq!(tooltip(Lang::De, None, 0, 1), "1 verpasster Anruf");
    assert_eq!(
        tooltip(Lang::De, Some(demo_label(Lang::De)), 0, 0),
        "Demo-Postfach: Keine neuen Sprachnachrichten oder verpassten Anrufe"
    );
    assert_eq!(tooltip(Lang::En, Some(demo_label(Lang::En)), 2, 0), "Demo mailbox: 2 new voicemails");
}

#[test]
fn the_connection_reads_in_both_languages() {
    use lamplighter_mailbox::Connection;
    let waiting = Connection::Reconnecting { in_secs: 8, reason: "connection refused".into() };
    assert_eq!(connection(Lang::En, &Connection::Live), "connected");
    assert_eq!(connection(Lang::En, &waiting), "reconnecting in 8 s: connection refused");
    assert_eq!(connection(Lang::De, &Connection::Live), "verbunden");
    assert_eq!(connection(Lang::De, &waiting), "neuer Versuch in 8 s: connection refused");
    assert_eq!(connection(Lang::De, &Connection::SignInRefused { reason: "401".into() }), "Anmeldung abgelehnt: 401");
}

#[test]
fn the_status_line_names_urgent_voicemail() {
    use lamplighter_mailbox::Connection;
    let s = lamplighter_inbox::Summary {
        voicemail: lamplighter_inbox::Counts { new: 3, old: 2, urgent_new: 1, urgent_old: 0 },
        missed_calls: 1,
        secondary_calls: 1,
    };
    assert_eq!(waiting(Lang::En, &s), "3 new voicemails (1 urgent), 1 missed call");
    assert_eq!(waiting(Lang::De, &s), "3 neue Sprachnachrichten (1 dringend), 1 verpasster Anruf");
    assert_eq!(also(Lang::En, &s, &Connection::Live), "2 heard; 1 on others' behalf; connected");
    assert_eq!(also(Lang::De, &s, &Connection::Live), "2 abgehört; 1 für andere; verbunden");
}
