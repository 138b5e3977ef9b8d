//! Which mailbox items are voicemail or calls, and who called, for every
//! backend (EWS and Graph read the same rules): one home for a decision that
//! used to be an `ItemClass` comparison in three crates.
//!
//! An item is recognised, in this order, by
//! 1. its **message class**, as Exchange UM and Cloud Voicemail write it
//!    (`IPM.Note.Microsoft.Voicemail.UM(.CA)`, the `rpmsg` variants,
//!    `IPM.Note.Microsoft.Missed.Voice`, …; [`lamplighter_um::ItemClass`]);
//!    a fax (`IPM.Note.Microsoft.Fax`) is nobody's voicemail and stops here;
//! 2. its **`Content-Class` header** (`voice-ca`, `voice`,
//!    `unauthenticatedvoice-ca`, `missedcall`, `voice-uc`), for a server or
//!    gateway that kept the header but not the class;
//! 3. the **rules** for PBXs that e-mail voicemail ([`Rule`]): the admin's
//!    from the settings first, then the built-in ones ([`builtin_rules`]:
//!    Asterisk and FreePBX, by their `X-Asterisk-*` headers). A rule matches
//!    by sender, subject pattern, header and attachment type.
//!
//! Caller number, name and duration come from the MAPI properties, else
//! from the headers UM writes (`X-CallingTelephoneNumber`,
//! `X-VoiceMessageSenderName`, `X-VoiceMessageDuration`), else from the
//! headers (or the body pattern) the matching rule names. The sender of a
//! PBX's e-mail is the PBX, never the caller, so it is not used as the caller.
//!
//! Input is untrusted mail: every pattern is a `regex` (linear time, no
//! back-references), the rules are the admin's and are compiled once.

use lamplighter_um::ItemClass;
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

/// Audio types a voicemail attachment may have, by file extension.
pub const AUDIO_EXTENSIONS: &[&str] = &["wav", "mp3", "gsm", "wma"];

/// A mailbox item, as much of it as recognising needs (backends build it
/// from their own item type).
#[derive(Debug, Clone, Copy, Default)]
pub struct ItemView<'a> {
    /// The message class (`PidTagMessageClass`).
    pub class: Option<&'a str>,
    /// The sender's e-mail address.
    pub sender: Option<&'a str>,
    /// The subject.
    pub subject: Option<&'a str>,
    /// Internet message headers, name and value.
    pub headers: &'a [(String, String)],
    /// Attachments: file name and content type.
    pub attachments: &'a [(Option<&'a str>, Option<&'a str>)],
    /// The text body (or its start).
    pub body: Option<&'a str>,
    /// PidTagVoiceMessageDuration (0x6801), seconds.
    pub duration_secs: Option<u32>,
    /// PidTagSenderTelephoneNumber (0x6802).
    pub caller_number: Option<&'a str>,
    /// PidTagVoiceMessageSenderName (0x6803).
    pub caller_name: Option<&'a str>,
    /// PidTagVoiceMessageAttachmentOrder (0x6805): audio file names, newest first.
    pub attachment_order: Option<&'a str>,
}

impl ItemView<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// What an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A recorded message.
    Voicemail,
    /// A call nobody answered.
    MissedCall,
    /// A call record of a call the user answered.
    AnsweredCall,
}

/// What told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// The message class.
    ItemClass,
    /// The `Content-Class` header.
    ContentClass,
    /// The rule of this name.
    Rule(String),
}

/// A recognised item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognised {
    pub kind: Kind,
    pub by: By,
    /// The caller's number, as written.
    pub caller_number: Option<String>,
    /// The caller's name.
    pub caller_name: Option<String>,
    /// The recording's length.
    pub duration_secs: Option<u32>,
    /// Which attachment (index into [`ItemView::attachments`]) is the recording.
    pub audio: Option<usize>,
}

/// A rule as written in the settings (`[[voicemail_rule]]`): every condition
/// given must hold, and at least one of `from`, `subject`, `header` must be given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSpec {
    /// Shown in logs and errors.
    pub name: String,
    /// `voicemail` (the default) or `missed_call`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Senders: an address (`pbx@example.com`) or a domain (`@pbx.example.com`); any may match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    /// A regular expression the subject must contain (case-insensitive).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// Headers of which one must be present.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub header: Vec<String>,
    /// Attachment types (file extensions, `wav`) of which one must be attached; the recording is the first such.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachment: Vec<String>,
    /// Headers with the caller's number, first present wins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub number_header: Vec<String>,
    /// Headers with the caller's name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub name_header: Vec<String>,
    /// Headers with the duration in seconds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duration_header: Vec<String>,
    /// A regular expression finding the duration in the body: one group
    /// (seconds), two (`m:ss`) or three (`h:mm:ss`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub duration_in_body: String,
}

/// A rule that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// No name.
    #[error("a voicemail rule needs a name")]
    NoName,
    /// Would match too much.
    #[error(
        "voicemail rule {0:?} needs at least one of from, subject or header (an attachment type alone matches ordinary mail)"
    )]
    NoCondition(String),
    /// A bad value.
    #[error("voicemail rule {rule:?}, {field}: {detail}")]
    Invalid {
        /// The rule's name.
        rule: String,
        /// The key.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
}

impl RuleError {
    /// The key the problem is in.
    pub fn field(&self) -> &'static str {
        match self {
            RuleError::NoName => "name",
            RuleError::NoCondition(_) => "from",
            RuleError::Invalid { field, .. } => field,
        }
    }
}

/// A rule ready to use.
#[derive(Debug, Clone)]
pub struct Rule {
    spec: RuleSpec,
    kind: Kind,
    subject: Option<Regex>,
    duration_in_body: Option<Regex>,
}

fn pattern(rule: &str, field: &'static str, text: &str) -> Result<Option<Regex>, RuleError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    RegexBuilder::new(text)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map(Some)
        .map_err(|e| RuleError::Invalid { rule: rule.into(), field, detail: e.to_string() })
}

impl RuleSpec {
    /// Checks and compiles the rule.
    ///
    /// # Errors
    /// A [`RuleError`] naming the rule and the key.
    pub fn compile(&self) -> Result<Rule, RuleError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(RuleError::NoName);
        }
        let invalid = |field, detail: String| RuleError::Invalid { rule: name.into(), field, detail };
        let kind = match self.kind.trim() {
            "" | "voicemail" => Kind::Voicemail,
            "missed_call" => Kind::MissedCall,
            other => return Err(invalid("kind", format!("{other:?} is neither voicemail nor missed_call"))),
        };
        if self.from.iter().all(|f| f.trim().is_empty()) && self.subject.trim().is_empty() && self.header.is_empty() {
            return Err(RuleError::NoCondition(name.into()));
        }
        for f in &self.from {
            let f = f.trim();
            if f.is_empty() || f.contains(char::is_whitespace) || f.matches('@').count() > 1 || f.ends_with('@') {
                return Err(invalid("from", format!("{f:?} is neither an address nor @domain")));
            }
        }
        for (field, names) in [
            ("header", &self.header),
            ("number_header", &self.number_header),
            ("name_header", &self.name_header),
            ("duration_header", &self.duration_header),
        ] {
            if let Some(bad) =
                names.iter().find(|h| h.is_empty() || !h.bytes().all(|b| b.is_ascii_graphic() && b != b':'))
            {
                return Err(invalid(field, format!("{bad:?} is not a header name")));
            }
        }
        if let Some(bad) = self
            .attachment
            .iter()
            .find(|a| a.is_empty() || !a.trim_start_matches('.').bytes().all(|b| b.is_ascii_alphanumeric()))
        {
            return Err(invalid("attachment", format!("{bad:?} is not a file extension such as wav")));
        }
        let duration_in_body = pattern(name, "duration_in_body", &self.duration_in_body)?;
        if let Some(re) = &duration_in_body
            && !(2..=4).contains(&re.captures_len())
        {
            return Err(invalid("duration_in_body", "give one group (seconds), two (m:ss) or three (h:mm:ss)".into()));
        }
        Ok(Rule {
            spec: RuleSpec { name: name.into(), ..self.clone() },
            kind,
            subject: pattern(name, "subject", &self.subject)?,
            duration_in_body,
        })
    }
}

fn extension(name: &str) -> Option<&str> {
    name.rsplit_once('.').map(|(_, e)| e).filter(|e| !e.is_empty())
}

/// Whether an attachment is of one of `types` (extensions): by its name, or
/// by an `audio/<type>` / `audio/x-<type>` content type when the name has none.
fn attachment_is(att: (Option<&str>, Option<&str>), types: &[&str]) -> bool {
    let (name, content_type) = att;
    if let Some(e) = name.and_then(extension) {
        return types.iter().any(|t| t.trim_start_matches('.').eq_ignore_ascii_case(e));
    }
    let Some(sub) = content_type.and_then(|c| c.split(';').next()).and_then(|c| c.trim().strip_prefix("audio/")) else {
        return false;
    };
    let sub = sub.strip_prefix("x-").unwrap_or(sub);
    types.iter().any(|t| t.trim_start_matches('.').eq_ignore_ascii_case(sub))
}

fn sender_matches(entry: &str, sender: &str) -> bool {
    let entry = entry.trim();
    let sender = sender.trim();
    match entry.strip_prefix('@') {
        Some(domain) => sender.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain)),
        None if entry.contains('@') => entry.eq_ignore_ascii_case(sender),
        None => sender.rsplit_once('@').is_some_and(|(_, d)| d.eq_ignore_ascii_case(entry)),
    }
}

impl Rule {
    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The rule as written.
    pub fn spec(&self) -> &RuleSpec {
        &self.spec
    }

    fn matches(&self, v: &ItemView<'_>) -> bool {
        let s = &self.spec;
        (s.from.is_empty() || v.sender.is_some_and(|from| s.from.iter().any(|e| sender_matches(e, from))))
            && self.subject.as_ref().is_none_or(|re| v.subject.is_some_and(|t| re.is_match(t)))
            && (s.header.is_empty() || s.header.iter().any(|h| v.header(h).is_some()))
            && (s.attachment.is_empty() || self.recording(v).is_some())
    }

    fn recording(&self, v: &ItemView<'_>) -> Option<usize> {
        let types: Vec<&str> = if self.spec.attachment.is_empty() {
            AUDIO_EXTENSIONS.to_vec()
        } else {
            self.spec.attachment.iter().map(String::as_str).collect()
        };
        v.attachments.iter().position(|a| attachment_is(*a, &types))
    }

    fn first_header(&self, v: &ItemView<'_>, names: &[String]) -> Option<String> {
        names.iter().find_map(|h| v.header(h)).map(str::to_string)
    }

    fn body_duration(&self, v: &ItemView<'_>) -> Option<u32> {
        let caps = self.duration_in_body.as_ref()?.captures(v.body?)?;
        let parts: Vec<u32> = caps.iter().skip(1).flatten().map(|m| m.as_str().parse().ok()).collect::<Option<_>>()?;
        parts.iter().try_fold(0u32, |acc, p| acc.checked_mul(60)?.checked_add(*p))
    }
}

/// The rules Lamplighter knows without being told: Asterisk's
/// `app_voicemail` (also FreePBX and other Asterisk-based PBXs), which writes
/// `X-Asterisk-CallerID` / `X-Asterisk-CallerIDName` (and, when it files into
/// IMAP, `X-Asterisk-VM-*`) and attaches `msg0000.wav` (or `.WAV`, `.gsm`).
/// Its default body says `… left a 0:07 long message …`.
pub fn builtin_rules() -> Vec<RuleSpec> {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_string()).collect::<Vec<_>>();
    vec![RuleSpec {
        name: "asterisk".into(),
        header: s(&["X-Asterisk-CallerID", "X-Asterisk-CallerIDName", "X-Asterisk-VM-Message-Num"]),
        number_header: s(&["X-Asterisk-VM-Caller-ID-Num", "X-Asterisk-CallerID"]),
        name_header: s(&["X-Asterisk-VM-Caller-ID-Name", "X-Asterisk-CallerIDName"]),
        duration_header: s(&["X-Asterisk-VM-Duration"]),
        duration_in_body: r"left a (\d+):(\d{2}) long message".into(),
        ..RuleSpec::default()
    }]
}

/// What a PBX writes when it does not know the caller.
fn known(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| {
        !v.is_empty()
            && !["unknown", "anonymous", "restricted", "unavailable", "an unknown caller"]
                .iter()
                .any(|w| v.eq_ignore_ascii_case(w))
    })
}

/// The recogniser: the admin's rules, then the built-in ones.
#[derive(Debug, Clone)]
pub struct Recogniser {
    /// Shared: a gateway's thousands of mailboxes hold one rule set.
    rules: std::sync::Arc<[Rule]>,
}

impl Default for Recogniser {
    /// The built-in rules only.
    fn default() -> Self {
        Recogniser::new(Vec::new())
    }
}

impl Recogniser {
    /// `admin`'s rules before the built-in ones.
    pub fn new(admin: Vec<Rule>) -> Self {
        let builtin = builtin_rules().into_iter().filter_map(|r| r.compile().ok());
        Recogniser { rules: admin.into_iter().chain(builtin).collect::<Vec<_>>().into() }
    }

    /// Every rule, in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What `item` is, or `None` for ordinary mail (and faxes).
    pub fn recognise(&self, item: &ItemView<'_>) -> Option<Recognised> {
        let by_class = match item.class.map(ItemClass::parse) {
            Some(ItemClass::Voicemail) => Some(Kind::Voicemail),
            Some(ItemClass::MissedCall) => Some(Kind::MissedCall),
            Some(ItemClass::AnsweredCall) => Some(Kind::AnsweredCall),
            Some(ItemClass::OtherUm) => return None,
            Some(ItemClass::Other) | None => None,
        };
        let (kind, by, rule) = if let Some(kind) = by_class {
            (kind, By::ItemClass, None)
        } else if let Some(kind) = item.header("Content-Class").and_then(content_class) {
            (kind, By::ContentClass, None)
        } else {
            let rule = self.rules.iter().find(|r| r.matches(item))?;
            (rule.kind, By::Rule(rule.name().to_string()), Some(rule))
        };
        let um_or = |prop: Option<&str>, header: &str| {
            known(prop.map(str::to_string)).or_else(|| known(item.header(header).map(str::to_string)))
        };
        let caller_number = um_or(item.caller_number, "X-CallingTelephoneNumber")
            .or_else(|| known(rule.and_then(|r| r.first_header(item, &r.spec.number_header))));
        let caller_name = um_or(item.caller_name, "X-VoiceMessageSenderName")
            .or_else(|| known(rule.and_then(|r| r.first_header(item, &r.spec.name_header))));
        let duration_secs = item
            .duration_secs
            .or_else(|| item.header("X-VoiceMessageDuration").and_then(|d| d.parse().ok()))
            .or_else(|| {
                let r = rule?;
                r.first_header(item, &r.spec.duration_header)
                    .and_then(|d| d.trim().parse().ok())
                    .or_else(|| r.body_duration(item))
            });
        let audio = match rule {
            Some(r) => r.recording(item),
            None => um_recording(item),
        };
        Some(Recognised { kind, by, caller_number, caller_name, duration_secs, audio })
    }
}

/// UM's recording: the newest name in the attachment order, else the first
/// audio attachment, else the first attachment.
fn um_recording(item: &ItemView<'_>) -> Option<usize> {
    let order = item.attachment_order.or_else(|| item.header("X-AttachmentOrder"));
    order
        .and_then(|o| o.split(';').map(str::trim).find(|n| !n.is_empty()))
        .and_then(|first| item.attachments.iter().position(|(n, _)| n.is_some_and(|n| n.trim() == first)))
        .or_else(|| item.attachments.iter().position(|a| attachment_is(*a, AUDIO_EXTENSIONS)))
        .or_else(|| (!item.attachments.is_empty()).then_some(0))
}

/// MS-OXCMAIL 2.1.3.2.2's `Content-Class` values of UM's items.
fn content_class(value: &str) -> Option<Kind> {
    let v = value.trim();
    let v = v.strip_prefix("urn:content-classes:").unwrap_or(v).to_ascii_lowercase();
    match v.as_str() {
        "voice-ca" | "voice" | "unauthenticatedvoice-ca" | "unauthenticatedvoice" => Some(Kind::Voicemail),
        "missedcall" => Some(Kind::MissedCall),
        "voice-uc" => Some(Kind::AnsweredCall),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
