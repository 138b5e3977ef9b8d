//! The view models: what the window's lists and the notifications say, for
//! a given state, in English or German (the seeds' users are German
//! speakers; the OS language picks). Pure functions of the state and the
//! time, so every text is unit-tested; the UI only renders these rows. This
//! is the only place that puts counts or the connection into words for a
//! person: the tray's tooltip and menu, the window, the notifications.

use lamplighter_inbox::{MailboxState, Voicemail};
use lamplighter_mailbox::Connection;
use lamplighter_missed_calls::{Call, CallOutcome, Party, SecondaryReason};
use serde::Serialize;

/// The language of every text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Lang {
    /// English.
    En,
    /// German.
    De,
}

impl Lang {
    /// From a locale such as `de_DE.UTF-8` (anything not German is English).
    pub fn from_locale(locale: &str) -> Lang {
        if locale.to_ascii_lowercase().starts_with("de") { Lang::De } else { Lang::En }
    }

    /// The OS language: `LC_ALL`, then `LC_MESSAGES`, then `LANG`.
    pub fn from_env() -> Lang {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .map(|l| Lang::from_locale(&l))
            .unwrap_or(Lang::En)
    }
}

fn pick(lang: Lang, en: String, de: String) -> String {
    match lang {
        Lang::En => en,
        Lang::De => de,
    }
}

/// `42` → `0:42`, `3725` → `1:02:05`.
pub fn duration(secs: u32) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// How long ago `at` was, seen at `now` (both Unix seconds).
pub fn relative(lang: Lang, now: i64, at: i64) -> String {
    let d = (now - at).max(0);
    let (m, h, days) = (d / 60, d / 3600, d / 86_400);
    match (lang, d) {
        (Lang::En, 0..60) => "just now".into(),
        (Lang::De, 0..60) => "gerade eben".into(),
        (_, 60..3600) => pick(lang, format!("{m} min ago"), format!("vor {m} Min.")),
        (Lang::En, 3600..7200) => "1 hour ago".into(),
        (Lang::De, 3600..7200) => "vor 1 Stunde".into(),
        (_, 7200..86_400) => pick(lang, format!("{h} hours ago"), format!("vor {h} Stunden")),
        (Lang::En, 86_400..172_800) => "yesterday".into(),
        (Lang::De, 86_400..172_800) => "gestern".into(),
        _ => pick(lang, format!("{days} days ago"), format!("vor {days} Tagen")),
    }
}

/// ISO 8601 (`2026-11-24T09:14:03Z`) → Unix seconds.
pub fn parse_iso(s: &str) -> Option<i64> {
    lamplighter_missed_calls::record::parse_time(s).ok().map(|ms| ms / 1000)
}

/// Unix seconds → `24.11.2026 09:14` (German) or `2026-11-24 09:14` (English), UTC.
pub fn absolute(lang: Lang, at: i64) -> String {
    let days = at.div_euclid(86_400);
    let rem = at.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (hh, mm) = (rem / 3600, rem / 60 % 60);
    pick(lang, format!("{y}-{m:02}-{d:02} {hh:02}:{mm:02} UTC"), format!("{d:02}.{m:02}.{y} {hh:02}:{mm:02} UTC"))
}

/// Whether two spellings are the same number (`+49 5251 304613` and `+495251304613`).
fn same_number(a: &str, b: &str) -> bool {
    let digits = |s: &str| s.chars().filter(|c| c.is_ascii_digit() || *c == '+').collect::<String>();
    let (da, db) = (digits(a), digits(b));
    !da.is_empty() && da == db && a.chars().all(|c| c.is_ascii_digit() || " +-/()".contains(c))
}

fn party_text(p: &Party) -> String {
    match p {
        Party::Anonymous => "anonymous".into(),
        other => other.to_string(),
    }
}

/// One voicemail row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VoicemailRow {
    /// For actions (play, mark heard).
    pub item_id: String,
    /// Name, or the number when there is no name.
    pub caller: String,
    /// The number, when a name is shown.
    pub number: Option<String>,
    /// `5 min ago`.
    pub when: String,
    /// `24.11.2026 09:14 UTC`.
    pub when_exact: String,
    /// `0:42`.
    pub duration: Option<String>,
    /// Not heard yet (bold).
    pub unheard: bool,
    /// Importance High.
    pub urgent: bool,
    /// The transcription preview.
    pub preview: Option<String>,
}

/// One call row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRow {
    /// For actions (mark seen, call back).
    pub item_id: Option<String>,
    /// Name, or the number.
    pub caller: String,
    /// The number, when a name is shown.
    pub number: Option<String>,
    /// The `tel:`/`sip:` URI to call back, when the caller is known.
    pub call_back: Option<String>,
    /// `5 min ago`.
    pub when: String,
    /// Exact time.
    pub when_exact: String,
    /// Not seen yet (bold).
    pub unseen: bool,
    /// `reported by 3 devices`, when more than one did.
    pub devices: Option<String>,
    /// Why it is not the user's own missed call (secondary calls).
    pub reason: Option<String>,
}

/// The window's lists, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lists {
    pub voicemails: Vec<VoicemailRow>,
    /// The user's own missed calls.
    pub missed_calls: Vec<CallRow>,
    /// Calls on someone else's behalf (a collapsible section).
    pub secondary_calls: Vec<CallRow>,
}

fn voicemail_row(lang: Lang, now: i64, v: &Voicemail) -> VoicemailRow {
    let at = v.received.as_deref().and_then(parse_iso).unwrap_or(now);
    let (caller, number) = match (&v.caller_name, &v.caller_number) {
        // UM writes the number as the name when it knows no name: show it once
        (Some(n), num) => (n.clone(), num.clone().filter(|num| !same_number(n, num))),
        (None, Some(num)) => (num.clone(), None),
        (None, None) => (pick(lang, "unknown caller".into(), "unbekannter Anrufer".into()), None),
    };
    VoicemailRow {
        item_id: v.item_id.clone(),
        caller,
        number,
        when: relative(lang, now, at),
        when_exact: absolute(lang, at),
        duration: v.duration_secs.map(duration),
        unheard: !v.heard,
        urgent: v.urgent,
        preview: v.transcription.clone(),
    }
}

/// Why a secondary call reached the user, in words.
pub fn reason(lang: Lang, r: &SecondaryReason) -> String {
    match r {
        SecondaryReason::TeamCall { owner } => {
            pick(lang, format!("team call for {}", party_text(owner)), format!("Teamanruf für {}", party_text(owner)))
        }
        SecondaryReason::Delegation { owner } => pick(
            lang,
            format!("as delegate of {}", party_text(owner)),
            format!("als Stellvertretung von {}", party_text(owner)),
        ),
        SecondaryReason::ResponseGroup { group } => pick(
            lang,
            format!("response group {}", party_text(group)),
            format!("Reaktionsgruppe {}", party_text(group)),
        ),
        SecondaryReason::Forwarded { from, .. } => pick(
            lang,
            format!("forwarded from {}", party_text(from)),
            format!("weitergeleitet von {}", party_text(from)),
        ),
        SecondaryReason::Other { from, reason } => {
            pick(lang, format!("for {} ({reason})", party_text(from)), format!("für {} ({reason})", party_text(from)))
        }
    }
}

fn call_row(lang: Lang, now: i64, state: &MailboxState, call: &Call) -> CallRow {
    let at = call.at / 1000;
    let number = party_text(&call.caller);
    let (caller, number) = match &call.caller_name {
        Some(n) if same_number(n, &number) => (n.clone(), None),
        Some(n) => (n.clone(), Some(number)),
        None => (number, None),
    };
    let devices = call.devices();
    CallRow {
        item_id: state.items_of(call).into_iter().next(),
        caller,
        number,
        call_back: match &call.caller {
            Party::Number { number, .. } => Some(format!("tel:{number}")),
            Party::Aor(aor) => Some(format!("sip:{aor}")),
            _ => None,
        },
        when: relative(lang, now, at),
        when_exact: absolute(lang, at),
        unseen: state.is_unseen(call),
        devices: (devices > 1)
            .then(|| pick(lang, format!("reported by {devices} devices"), format!("von {devices} Geräten gemeldet"))),
        reason: match &call.outcome {
            CallOutcome::Secondary(r) => Some(reason(lang, r)),
            _ => None,
        },
    }
}

/// The lists for `state` at `now` (Unix seconds).
pub fn lists(lang: Lang, now: i64, state: &MailboxState) -> Lists {
    let calls = state.calls();
    Lists {
        voicemails: state.voicemails().into_iter().map(|v| voicemail_row(lang, now, v)).collect(),
        missed_calls: calls
            .iter()
            .filter(|c| c.outcome == CallOutcome::Missed)
            .map(|c| call_row(lang, now, state, c))
            .collect(),
        secondary_calls: calls
            .iter()
            .filter(|c| matches!(c.outcome, CallOutcome::Secondary(_)))
            .map(|c| call_row(lang, now, state, c))
            .collect(),
    }
}

/// A desktop notification's texts and actions (id, label).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotificationText {
    pub title: String,
    pub body: String,
    /// Actions: (id, label).
    pub actions: Vec<(&'static str, String)>,
}

/// "Voicemail from +49 5251 304613, 0:42", the preview as body, Play and Mark heard.
pub fn voicemail_notification(lang: Lang, from: &str, secs: Option<u32>, preview: Option<&str>) -> NotificationText {
    let d = secs.map(|s| format!(", {}", duration(s))).unwrap_or_default();
    NotificationText {
        title: pick(lang, format!("Voicemail from {from}{d}"), format!("Sprachnachricht von {from}{d}")),
        body: preview.unwrap_or_default().to_string(),
        actions: vec![
            ("play", pick(lang, "Play".into(), "Abspielen".into())),
            ("mark-heard", pick(lang, "Mark heard".into(), "Als gehört markieren".into())),
        ],
    }
}

/// "Missed call from …", "3 attempts", Call back and Dismiss.
pub fn missed_call_notification(lang: Lang, from: &str, attempts: usize) -> NotificationText {
    NotificationText {
        title: pick(lang, format!("Missed call from {from}"), format!("Verpasster Anruf von {from}")),
        body: if attempts > 1 {
            pick(lang, format!("{attempts} attempts"), format!("{attempts} Versuche"))
        } else {
            String::new()
        },
        actions: vec![
            ("call-back", pick(lang, "Call back".into(), "Zurückrufen".into())),
            ("dismiss", pick(lang, "Dismiss".into(), "Verwerfen".into())),
        ],
    }
}

/// One notification instead of dozens, after an outage or at start-up.
pub fn summary_notification(lang: Lang, voicemails: u32, missed_calls: u32) -> NotificationText {
    NotificationText {
        title: "Lamplighter".into(),
        body: pick(
            lang,
            format!(
                "{} and {} while you were away",
                counted(voicemails, "new voicemail", "new voicemails"),
                counted(missed_calls, "missed call", "missed calls")
            ),
            format!(
                "{} und {} in Ihrer Abwesenheit",
                counted(voicemails, "neue Sprachnachricht", "neue Sprachnachrichten"),
                counted(missed_calls, "verpasster Anruf", "verpasste Anrufe")
            ),
        ),
        actions: vec![("open", pick(lang, "Open".into(), "Öffnen".into()))],
    }
}

fn counted(n: u32, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The counts in full, zeros included (the window's header, the tray menu's
/// first line): "3 new voicemails, 0 missed calls".
pub fn summary(lang: Lang, voicemails: u32, missed_calls: u32) -> String {
    match (lang, voicemails, missed_calls) {
        (Lang::En, 0, 0) => "No new voicemail or missed calls".into(),
        (Lang::De, 0, 0) => "Keine neuen Sprachnachrichten oder verpassten Anrufe".into(),
        (Lang::En, v, m) => {
            format!("{}, {}", counted(v, "new voicemail", "new voicemails"), counted(m, "missed call", "missed calls"))
        }
        (Lang::De, v, m) => format!(
            "{}, {}",
            counted(v, "neue Sprachnachricht", "neue Sprachnachrichten"),
            counted(m, "verpasster Anruf", "verpasste Anrufe")
        ),
    }
}

/// The tray's tooltip: only what waits ("3 new voicemails"), prefixed with
/// the demo's label when the counts come from the demo mailbox.
pub fn tooltip(lang: Lang, demo_label: Option<&str>, voicemails: u32, missed_calls: u32) -> String {
    let some = |n: u32, one: &str, many: &str| (n > 0).then(|| counted(n, one, many));
    let (vm, mc) = match lang {
        Lang::En => {
            (some(voicemails, "new voicemail", "new voicemails"), some(missed_calls, "missed call", "missed calls"))
        }
        Lang::De => (
            some(voicemails, "neue Sprachnachricht", "neue Sprachnachrichten"),
            some(missed_calls, "verpasster Anruf", "verpasste Anrufe"),
        ),
    };
    let words = match (vm, mc) {
        (None, None) => summary(lang, 0, 0),
        (Some(v), None) => v,
        (None, Some(m)) => m,
        (Some(v), Some(m)) => format!("{v}, {m}"),
    };
    match demo_label {
        Some(label) => format!("{label}: {words}"),
        None => words,
    }
}

/// What waits, urgent ones named: "3 new voicemails (1 urgent), 1 missed call"
/// (the agent's `status` line and waybar tooltip).
pub fn waiting(lang: Lang, s: &lamplighter_inbox::Summary) -> String {
    let v = s.voicemail;
    match lang {
        Lang::En => format!(
            "{}{}, {}",
            counted(v.new, "new voicemail", "new voicemails"),
            if v.urgent_new > 0 { format!(" ({} urgent)", v.urgent_new) } else { String::new() },
            counted(s.missed_calls, "missed call", "missed calls")
        ),
        Lang::De => format!(
            "{}{}, {}",
            counted(v.new, "neue Sprachnachricht", "neue Sprachnachrichten"),
            if v.urgent_new > 0 { format!(" ({} dringend)", v.urgent_new) } else { String::new() },
            counted(s.missed_calls, "verpasster Anruf", "verpasste Anrufe")
        ),
    }
}

/// The rest of the agent's `status` line: heard voicemails, calls for
/// others, the connection: "2 heard; 1 on others' behalf; connected".
pub fn also(lang: Lang, s: &lamplighter_inbox::Summary, c: &Connection) -> String {
    match lang {
        Lang::En => {
            format!("{} heard; {} on others' behalf; {}", s.voicemail.old, s.secondary_calls, connection(lang, c))
        }
        Lang::De => format!("{} abgehört; {} für andere; {}", s.voicemail.old, s.secondary_calls, connection(lang, c)),
    }
}

/// What the counts come from when the built-in demo runs.
pub fn demo_label(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Demo mailbox",
        Lang::De => "Demo-Postfach",
    }
}

/// The mailbox connection in words. The reasons are the server's or the
/// network's own words and stay as they came.
pub fn connection(lang: Lang, c: &Connection) -> String {
    match (lang, c) {
        (Lang::En, c) => c.to_string(),
        (Lang::De, Connection::Connecting) => "verbinde".into(),
        (Lang::De, Connection::Syncing) => "gleiche ab".into(),
        (Lang::De, Connection::Live) => "verbunden".into(),
        (Lang::De, Connection::Reconnecting { in_secs, reason }) => {
            format!("neuer Versuch in {in_secs} s: {reason}")
        }
        (Lang::De, Connection::SignInRefused { reason }) => format!("Anmeldung abgelehnt: {reason}"),
        (Lang::De, Connection::Stopped) => "angehalten".into(),
    }
}

/// The window's fixed texts: (key, English, German). The window looks up
/// every label by key, so both languages have every key (unit-tested).
pub const UI_STRINGS: &[(&str, &str, &str)] = &[
    ("tab_inbox", "Inbox", "Eingang"),
    ("tab_settings", "Settings", "Einstellungen"),
    ("voicemail", "Voicemail", "Sprachnachrichten"),
    ("missed_calls", "Missed calls", "Verpasste Anrufe"),
    ("secondary_calls", "Calls for others", "Anrufe für andere"),
    ("no_voicemail", "No voicemail.", "Keine Sprachnachrichten."),
    ("no_missed_calls", "No missed calls.", "Keine verpassten Anrufe."),
    ("play", "Play", "Abspielen"),
    ("pause", "Pause", "Pause"),
    ("resume", "Resume", "Weiter"),
    ("stop", "Stop", "Stopp"),
    ("mark_heard", "Mark heard", "Als gehört markieren"),
    ("mark_seen", "Mark seen", "Als gesehen markieren"),
    ("call_back", "Call back", "Zurückrufen"),
    ("open_default_player", "Open in the default player", "Im Standardplayer öffnen"),
    ("downloading", "Downloading…", "Wird geladen…"),
    ("playing", "Playing", "Wiedergabe"),
    ("paused", "Paused", "Angehalten"),
    ("ended", "Played", "Abgespielt"),
    ("failed", "Cannot play", "Wiedergabe nicht möglich"),
    ("urgent", "urgent", "dringend"),
    ("connection", "Connection", "Verbindung"),
    ("retry_now", "Retry now", "Jetzt erneut versuchen"),
    ("check_settings", "Check settings", "Einstellungen prüfen"),
    ("checking", "Checking…", "Wird geprüft…"),
    (
        "demo_note",
        "Demo mailbox: enter your mailbox in Settings.",
        "Demo-Postfach: Ihr Postfach tragen Sie unter Einstellungen ein.",
    ),
    ("mailbox", "Mailbox", "Postfach"),
    ("email", "E-mail address", "E-Mail-Adresse"),
    ("ews_url", "EWS URL", "EWS-URL"),
    ("optional_autodiscover", "(optional: found by Autodiscover)", "(optional: per Autodiscover ermittelt)"),
    ("username", "User name", "Benutzername"),
    ("optional_email", "(optional: the e-mail address)", "(optional: die E-Mail-Adresse)"),
    ("auth", "Sign-in method", "Anmeldeverfahren"),
    ("password", "Password", "Kennwort"),
    ("phones", "Phones", "Telefone"),
    (
        "phones_hint",
        "Lamplighter lights the message-waiting lamp of these SIP phones.",
        "Lamplighter schaltet die Nachrichtenlampe dieser SIP-Telefone.",
    ),
    ("add_phone", "Add phone", "Telefon hinzufügen"),
    ("notifications", "Notifications", "Benachrichtigungen"),
    ("notif_enabled", "Show notifications", "Benachrichtigungen anzeigen"),
    ("notif_voicemail", "for new voicemail", "bei neuen Sprachnachrichten"),
    ("notif_missed", "for missed calls", "bei verpassten Anrufen"),
    ("autostart", "Start Lamplighter at login", "Lamplighter bei der Anmeldung starten"),
    ("save", "Save", "Speichern"),
    ("saving", "Saving…", "Wird gespeichert…"),
    ("saved", "Saved.", "Gespeichert."),
    (
        "fix_fields",
        "Please correct the marked fields. Nothing was saved.",
        "Bitte korrigieren Sie die markierten Felder. Nichts wurde gespeichert.",
    ),
    ("settings_file", "Settings file:", "Einstellungsdatei:"),
    ("paused_notifications", "Notifications are paused.", "Benachrichtigungen sind pausiert."),
    ("sip_uri", "SIP URI", "SIP-URI"),
    ("transport", "Transport", "Transportprotokoll"),
    ("mode", "Mode", "Betriebsart"),
    ("mode_unsolicited", "Lamplighter notifies the phone", "Lamplighter benachrichtigt das Telefon"),
    ("mode_subscribe", "The phone subscribes", "Das Telefon abonniert"),
    ("mode_publish", "Published to the phone's PBX", "An die Telefonanlage des Telefons veröffentlicht"),
    ("digest_user", "Digest user", "Digest-Benutzer"),
    ("digest_password", "Digest password", "Digest-Kennwort"),
    ("optional", "(optional)", "(optional)"),
    ("remove_phone", "Remove phone", "Telefon entfernen"),
    (
        "password_saved",
        "A password is saved in the keyring; leave empty to keep it.",
        "Ein Kennwort ist im Schlüsselbund gespeichert; leer lassen, um es zu behalten.",
    ),
    (
        "password_in_keyring",
        "Kept in the keyring, never in the settings file.",
        "Wird im Schlüsselbund aufbewahrt, nie in der Einstellungsdatei.",
    ),
    (
        "password_session_only",
        "No keyring: the password is kept until Lamplighter quits.",
        "Kein Schlüsselbund: Das Kennwort gilt nur, bis Lamplighter beendet wird.",
    ),
    ("backend", "Mailbox service", "Postfachdienst"),
    (
        "backend_graph",
        "Microsoft 365 (Exchange Online, Microsoft Graph)",
        "Microsoft 365 (Exchange Online über Microsoft Graph)",
    ),
    (
        "backend_ews",
        "Exchange on-premises or EWS (hybrid modern authentication)",
        "Exchange lokal oder EWS (hybride moderne Authentifizierung)",
    ),
    ("backend_auto", "Find out from the address", "Anhand der Adresse ermitteln"),
    ("client_id", "Application (client) ID", "Anwendungs-ID (Client)"),
    ("sign_in_microsoft", "Sign in with Microsoft", "Mit Microsoft anmelden"),
    ("sign_out", "Sign out", "Abmelden"),
    ("signing_in", "Signing in…", "Anmeldung läuft…"),
    ("signed_in_as", "Signed in as", "Angemeldet als"),
    ("not_signed_in", "Not signed in.", "Nicht angemeldet."),
    ("signed_out", "Signed out.", "Abgemeldet."),
    (
        "waiting_for_browser",
        "Finish the sign-in in your browser. If it did not open, open this address:",
        "Schließen Sie die Anmeldung im Browser ab. Falls er sich nicht geöffnet hat, öffnen Sie diese Adresse:",
    ),
    (
        "password_kerberos",
        "Kerberos uses your domain ticket (kinit); a password here is only for NTLM where Kerberos cannot be used.",
        "Kerberos nutzt Ihr Domänen-Ticket (kinit); ein Kennwort hier dient nur NTLM, wo Kerberos nicht geht.",
    ),
];

/// The window's texts in `lang`, by key.
pub fn ui_strings(lang: Lang) -> std::collections::BTreeMap<&'static str, &'static str> {
    UI_STRINGS.iter().map(|(k, en, de)| (*k, if lang == Lang::De { *de } else { *en })).collect()
}

/// The tray menu's texts in `lang`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuText {
    /// "Play latest voicemail".
    pub play_latest: String,
    /// "Resend lamp to phone".
    pub resend_lamp: String,
    pub pause_notifications: String,
    /// "Open Lamplighter".
    pub open: String,
    pub settings: String,
    pub quit: String,
}

/// The tray menu in `lang`.
pub fn menu_text(lang: Lang) -> MenuText {
    let p = |en: &str, de: &str| pick(lang, en.into(), de.into());
    MenuText {
        play_latest: p("Play latest voicemail", "Neueste Sprachnachricht abspielen"),
        resend_lamp: p("Resend lamp to phone", "Lampe erneut ans Telefon senden"),
        pause_notifications: p("Pause notifications", "Benachrichtigungen pausieren"),
        open: p("Open Lamplighter", "Lamplighter öffnen"),
        settings: p("Settings…", "Einstellungen…"),
        quit: p("Quit", "Beenden"),
    }
}

#[cfg(test)]
mod tests;
