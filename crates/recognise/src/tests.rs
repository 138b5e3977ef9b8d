use super::*;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| ((*n).to_string(), (*v).to_string())).collect()
}

/// Kind, by, number, name, duration, recording.
type Expect = (Kind, By, Option<&'static str>, Option<&'static str>, Option<u32>, Option<usize>);

/// One row: a message as a server delivers it, and what it must be read as.
struct Row {
    what: &'static str,
    view: ItemView<'static>,
    expect: Option<Expect>,
}

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Vec::leak(v)
}

fn rows() -> Vec<Row> {
    let cloud_headers = leak(h(&[
        ("Content-Class", "Voice-CA"),
        ("X-CallingTelephoneNumber", "+49 5251 304613"),
        ("X-VoiceMessageDuration", "27"),
        ("X-VoiceMessageSenderName", "Jörg Müller"),
    ]));
    // Asterisk app_voicemail's e-mail (voicemail.conf defaults, attach=yes, format=wav49|gsm)
    let asterisk_headers = leak(h(&[
        ("From", "\"Asterisk PBX\" <asterisk@pbx.example.com>"),
        ("Subject", "[PBX]: New message 3 in mailbox 613"),
        ("X-Asterisk-CallerID", "+4952513046"),
        ("X-Asterisk-CallerIDName", "Empfang"),
        ("Content-Type", "multipart/mixed; boundary=\"----voicemail_361234\""),
    ]));
    let asterisk_imap_headers = leak(h(&[
        ("X-Asterisk-VM-Message-Num", "1"),
        ("X-Asterisk-VM-Caller-ID-Num", "5551234"),
        ("X-Asterisk-VM-Caller-ID-Name", "Ben"),
        ("X-Asterisk-VM-Duration", "12"),
    ]));
    let asterisk_unknown = leak(h(&[("X-Asterisk-CallerID", "Unknown"), ("X-Asterisk-CallerIDName", "Unknown")]));
    let asterisk_body = "Dear Mara:\n\n\tjust wanted to let you know you were just left a 1:07 long message (number 3)\nin mailbox 613 from \"Empfang\" <+4952513046>, on Tuesday, December 01, 2026 at 09:14:03 AM so you might\nwant to check it when you get a chance.  Thanks!\n\n\t\t\t\t--Asterisk\n";
    let wav = leak(vec![(Some("msg0003.WAV"), Some("audio/x-wav"))]);
    let gsm_after_logo = leak(vec![(Some("logo.png"), Some("image/png")), (Some("msg0000.gsm"), Some("audio/x-gsm"))]);
    let um_two = leak(vec![(Some("older.wma"), Some("audio/wma")), (Some("audio.mp3"), Some("audio/mpeg"))]);
    vec![
        Row {
            what: "Cloud Voicemail over Graph: class and MAPI properties",
            view: ItemView {
                class: Some("IPM.Note.Microsoft.Voicemail.UM.CA"),
                sender: Some("vm-noreply@contoso.onmicrosoft.com"),
                subject: Some("Voice Mail (27 seconds) from Jörg Müller"),
                headers: cloud_headers,
                attachments: um_two,
                duration_secs: Some(27),
                caller_number: Some("+49 5251 304613"),
                caller_name: Some("Jörg Müller"),
                attachment_order: Some("audio.mp3;older.wma"),
                ..ItemView::default()
            },
            expect: Some((
                Kind::Voicemail,
                By::ItemClass,
                Some("+49 5251 304613"),
                Some("Jörg Müller"),
                Some(27),
                Some(1),
            )),
        },
        Row {
            what: "Cloud Voicemail whose class was lost on the way: the Content-Class and UM headers",
            view: ItemView {
                class: Some("IPM.Note"),
                headers: cloud_headers,
                attachments: um_two,
                ..ItemView::default()
            },
            expect: Some((
                Kind::Voicemail,
                By::ContentClass,
                Some("+49 5251 304613"),
                Some("Jörg Müller"),
                Some(27),
                Some(0),
            )),
        },
        Row {
            what: "Exchange UM voicemail, protected (rpmsg), lower case",
            view: ItemView {
                class: Some("ipm.note.rpmsg.microsoft.voicemail.um"),
                duration_secs: Some(4),
                ..ItemView::default()
            },
            expect: Some((Kind::Voicemail, By::ItemClass, None, None, Some(4), None)),
        },
        Row {
            what: "Exchange UM missed-call notice",
            view: ItemView {
                class: Some("IPM.Note.Microsoft.Missed.Voice"),
                caller_number: Some("tel:+4952513046"),
                ..ItemView::default()
            },
            expect: Some((Kind::MissedCall, By::ItemClass, Some("tel:+4952513046"), None, None, None)),
        },
        Row {
            what: "a missed call known only by Content-Class",
            view: ItemView {
                headers: leak(h(&[("content-class", "urn:content-classes:missedcall")])),
                ..ItemView::default()
            },
            expect: Some((Kind::MissedCall, By::ContentClass, None, None, None, None)),
        },
        Row {
            what: "a fax is not voicemail, even with a WAV and Asterisk headers",
            view: ItemView {
                class: Some("IPM.Note.Microsoft.Fax.CA"),
                headers: asterisk_headers,
                attachments: wav,
                ..ItemView::default()
            },
            expect: None,
        },
        Row {
            what: "Asterisk app_voicemail e-mail: caller from its headers, duration from the body, the WAV",
            view: ItemView {
                class: Some("IPM.Note"),
                sender: Some("asterisk@pbx.example.com"),
                subject: Some("[PBX]: New message 3 in mailbox 613"),
                headers: asterisk_headers,
                attachments: wav,
                body: Some(asterisk_body),
                ..ItemView::default()
            },
            expect: Some((
                Kind::Voicemail,
                By::Rule("asterisk".into()),
                Some("+4952513046"),
                Some("Empfang"),
                Some(67),
                Some(0),
            )),
        },
        Row {
            what: "Asterisk filing by IMAP: the X-Asterisk-VM headers, GSM after an image",
            view: ItemView { headers: asterisk_imap_headers, attachments: gsm_after_logo, ..ItemView::default() },
            expect: Some((
                Kind::Voicemail,
                By::Rule("asterisk".into()),
                Some("5551234"),
                Some("Ben"),
                Some(12),
                Some(1),
            )),
        },
        Row {
            what: "Asterisk without caller id: unknown is nobody, not a number; no audio attached",
            view: ItemView { headers: asterisk_unknown, ..ItemView::default() },
            expect: Some((Kind::Voicemail, By::Rule("asterisk".into()), None, None, None, None)),
        },
        Row {
            what: "ordinary mail with a WAV attachment is not voicemail",
            view: ItemView {
                class: Some("IPM.Note"),
                sender: Some("anna@example.com"),
                subject: Some("the recording you asked for"),
                attachments: wav,
                ..ItemView::default()
            },
            expect: None,
        },
        Row {
            what: "a meeting request",
            view: ItemView { class: Some("IPM.Schedule.Meeting.Request"), ..ItemView::default() },
            expect: None,
        },
    ]
}

#[test]
fn real_shaped_messages_are_read_as_their_senders_meant() {
    let r = Recogniser::default();
    for row in rows() {
        let got = r.recognise(&row.view);
        let want = row.expect.map(|(kind, by, n, name, d, audio)| Recognised {
            kind,
            by,
            caller_number: n.map(Into::into),
            caller_name: name.map(Into::into),
            duration_secs: d,
            audio,
        });
        assert_eq!(got, want, "{}", row.what);
    }
}

fn three_cx() -> RuleSpec {
    toml::from_str(
        r#"
        name = "3cx"
        from = ["@pbx.example.com"]
        subject = "^New Voicemail from (.+)$"
        attachment = ["wav"]
        number_header = ["X-3CX-Caller"]
        duration_in_body = 'Duration: (\d+):(\d+)'
        "#,
    )
    .expect("a rule in the settings' format")
}

#[test]
fn an_admin_rule_matches_by_sender_subject_and_attachment_type() {
    let r = Recogniser::new(vec![three_cx().compile().expect("valid")]);
    let headers = h(&[("X-3CX-Caller", "0521 4711")]);
    let atts = [(Some("vm.pdf"), Some("application/pdf")), (Some("vm-1234.wav"), None)];
    let mut v = ItemView {
        sender: Some("VoiceMail@PBX.example.com"),
        subject: Some("New Voicemail from 0521 4711"),
        headers: &headers,
        attachments: &atts,
        body: Some("Caller: 0521 4711\nDuration: 0:42\n"),
        ..ItemView::default()
    };
    let got = r.recognise(&v).expect("recognised");
    assert_eq!(got.by, By::Rule("3cx".into()));
    assert_eq!((got.caller_number.as_deref(), got.duration_secs, got.audio), (Some("0521 4711"), Some(42), Some(1)));

    // each condition is needed: another sender, another subject, no WAV
    let other = ItemView { sender: Some("voicemail@example.org"), ..v };
    assert_eq!(r.recognise(&other), None);
    let other = ItemView { subject: Some("Re: New Voicemail from 0521 4711"), ..v };
    assert_eq!(r.recognise(&other), None);
    let pdf_only = [(Some("vm.pdf"), Some("application/pdf"))];
    v.attachments = &pdf_only;
    assert_eq!(r.recognise(&v), None);
}

#[test]
fn an_audio_attachment_without_a_name_is_known_by_its_content_type() {
    assert!(attachment_is((None, Some("audio/x-wav; name=x")), &["wav"]));
    assert!(attachment_is((Some("MSG0000.GSM"), None), &["gsm"]));
    assert!(
        !attachment_is((Some("wav"), Some("audio/x-wav")), &["gsm"]),
        "a name without extension falls back to the type"
    );
    assert!(!attachment_is((Some("notes.txt"), Some("audio/x-wav")), &["wav"]), "the name wins over the type");
}

#[test]
fn bad_rules_are_refused_with_the_rule_and_key_named() {
    let cases: Vec<(RuleSpec, &str)> = vec![
        (RuleSpec { from: vec!["@x.example".into()], ..RuleSpec::default() }, "needs a name"),
        (
            RuleSpec { name: "wide".into(), attachment: vec!["wav".into()], ..RuleSpec::default() },
            "needs at least one of from, subject or header",
        ),
        (RuleSpec { name: "p".into(), subject: "(".into(), ..RuleSpec::default() }, "\"p\", subject:"),
        (RuleSpec { name: "k".into(), kind: "fax".into(), header: vec!["X".into()], ..RuleSpec::default() }, "kind"),
        (RuleSpec { name: "f".into(), from: vec!["a@b@c".into()], ..RuleSpec::default() }, "from"),
        (RuleSpec { name: "h".into(), header: vec!["X Bad:".into()], ..RuleSpec::default() }, "header"),
        (
            RuleSpec {
                name: "a".into(),
                header: vec!["X".into()],
                attachment: vec!["*.wav".into()],
                ..RuleSpec::default()
            },
            "attachment",
        ),
        (
            RuleSpec {
                name: "d".into(),
                header: vec!["X".into()],
                duration_in_body: "(a)(b)(c)(d)".into(),
                ..RuleSpec::default()
            },
            "duration_in_body",
        ),
    ];
    for (spec, want) in cases {
        let e = spec.compile().expect_err(want).to_string();
        assert!(e.contains(want), "{e:?} should say {want:?}");
    }
}

#[test]
fn the_admins_rules_come_before_the_built_in_ones() {
    let mine = RuleSpec {
        name: "mine".into(),
        header: vec!["X-Asterisk-CallerID".into()],
        kind: "missed_call".into(),
        ..RuleSpec::default()
    };
    let r = Recogniser::new(vec![mine.compile().expect("valid")]);
    assert_eq!(r.rules().iter().map(Rule::name).collect::<Vec<_>>(), ["mine", "asterisk"]);
    let headers = h(&[("X-Asterisk-CallerID", "613")]);
    let got = r.recognise(&ItemView { headers: &headers, ..ItemView::default() }).expect("recognised");
    assert_eq!((got.kind, got.by), (Kind::MissedCall, By::Rule("mine".into())));
}

#[test]
fn an_absurd_duration_in_the_body_is_no_duration() {
    let r = Recogniser::default();
    let headers = h(&[("X-Asterisk-CallerID", "613")]);
    let v = ItemView { headers: &headers, body: Some("left a 99999999999:00 long message"), ..ItemView::default() };
    assert_eq!(r.recognise(&v).expect("recognised").duration_secs, None);
}

proptest::proptest! {
    #[test]
    fn any_mail_is_recognised_or_not_without_a_panic(
        class in proptest::option::of("[ -~]{0,40}"),
        subject in proptest::option::of("\\PC{0,80}"),
        sender in proptest::option::of("[ -~]{0,40}"),
        headers in proptest::collection::vec(("[ -~]{0,20}", "\\PC{0,40}"), 0..6),
        names in proptest::collection::vec(proptest::option::of("\\PC{0,20}"), 0..4),
        body in proptest::option::of("\\PC{0,200}"),
    ) {
        let atts: Vec<(Option<&str>, Option<&str>)> = names.iter().map(|n| (n.as_deref(), Some("audio/wav"))).collect();
        let v = ItemView {
            class: class.as_deref(), subject: subject.as_deref(), sender: sender.as_deref(),
            headers: &headers, attachments: &atts, body: body.as_deref(), ..ItemView::default()
        };
        if let Some(got) = Recogniser::new(vec![three_cx().compile().expect("valid")]).recognise(&v) {
            proptest::prop_assert!(got.audio.is_none_or(|i| i < atts.len()));
        }
    }
}
