//! The RFC 3842 message-summary body (§5.2):
//!
//! ```text
//! message-summary  = msg-status-line CRLF [msg-account CRLF] [*(msg-summary-line CRLF)] [*opt-msg-headers]
//! msg-status-line  = "Messages-Waiting" HCOLON ("yes" / "no")
//! msg-account      = "Message-Account" HCOLON Account-URI
//! msg-summary-line = message-context-class HCOLON newmsgs SLASH oldmsgs [LPAREN new-urgentmsgs SLASH old-urgentmsgs RPAREN]
//! msgcount         = 1*DIGIT   ; at most 2^32-1
//! ```
//!
//! The formatter writes exactly what phones expect
//! (`Voice-Message: 2/8 (0/2)`, CRLF line ends). The parser is tolerant of
//! case, spacing, bare LF, a missing account or urgent part, unknown
//! classes (kept) and optional message-header blocks (kept), and strict
//! about the rest: a missing status line, a bad count or a count past
//! 2^32−1 is an error.

use crate::MwiError;
use std::fmt;
use std::str::FromStr;

/// RFC 3458 message-context-class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// `voice-message`.
    Voice,
    /// `fax-message`.
    Fax,
    /// `pager-message`.
    Pager,
    /// `multimedia-message`.
    Multimedia,
    /// `text-message`.
    Text,
    /// `none`.
    None,
    /// Anything else, kept as written.
    Other(String),
}

impl MessageClass {
    fn parse(s: &str) -> MessageClass {
        match s.trim().to_ascii_lowercase().as_str() {
            "voice-message" => MessageClass::Voice,
            "fax-message" => MessageClass::Fax,
            "pager-message" => MessageClass::Pager,
            "multimedia-message" => MessageClass::Multimedia,
            "text-message" => MessageClass::Text,
            "none" => MessageClass::None,
            _ => MessageClass::Other(s.trim().to_string()),
        }
    }

    fn wire(&self) -> &str {
        match self {
            MessageClass::Voice => "Voice-Message",
            MessageClass::Fax => "Fax-Message",
            MessageClass::Pager => "Pager-Message",
            MessageClass::Multimedia => "Multimedia-Message",
            MessageClass::Text => "Text-Message",
            MessageClass::None => "None",
            MessageClass::Other(s) => s,
        }
    }
}

/// Counts of one message class; the one counts type of Lamplighter, shared
/// with the mailbox side.
pub use lamplighter_um::Counts;

/// One summary line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SummaryLine {
    pub class: MessageClass,
    pub counts: Counts,
    /// Whether the `(urgent-new/urgent-old)` part is written (Exchange UM
    /// omits it; the relay always writes it).
    pub with_urgent: bool,
}

/// A message-summary body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageSummary {
    /// `Messages-Waiting: yes|no`: the lamp.
    pub messages_waiting: bool,
    /// `Message-Account`: the mailbox URI.
    pub account: Option<String>,
    /// Summary lines in order.
    pub lines: Vec<SummaryLine>,
    /// Optional message-header blocks (each a list of header lines), kept verbatim.
    pub message_headers: Vec<Vec<String>>,
}

/// Whether a phone gets the `(urgent-new/urgent-old)` part of the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UrgentPart {
    /// Always, `(0/0)` included (the default; RFC 3842's own examples).
    #[default]
    Always,
    /// Only when an urgent count is not 0, as Exchange UM writes it, for
    /// phones that misread `(0/0)`.
    WhenNonzero,
}

impl MessageSummary {
    /// The body for voicemail counts: the lamp is on when there are new messages.
    pub fn voice(account: &str, counts: Counts) -> Self {
        Self::voice_with(account, counts, UrgentPart::Always)
    }

    /// Like [`voice`](Self::voice), writing the urgent part as `urgent` says.
    pub fn voice_with(account: &str, counts: Counts, urgent: UrgentPart) -> Self {
        let with_urgent = match urgent {
            UrgentPart::Always => true,
            UrgentPart::WhenNonzero => counts.urgent_new > 0 || counts.urgent_old > 0,
        };
        MessageSummary {
            messages_waiting: counts.new > 0,
            account: Some(account.to_string()),
            lines: vec![SummaryLine { class: MessageClass::Voice, counts, with_urgent }],
            message_headers: Vec::new(),
        }
    }

    /// The voice-message counts, if the body has them.
    pub fn voice_counts(&self) -> Option<Counts> {
        self.lines.iter().find(|l| l.class == MessageClass::Voice).map(|l| l.counts)
    }
}

impl fmt::Display for MessageSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Messages-Waiting: {}\r\n", if self.messages_waiting { "yes" } else { "no" })?;
        if let Some(a) = &self.account {
            write!(f, "Message-Account: {a}\r\n")?;
        }
        for l in &self.lines {
            write!(f, "{}: {}/{}", l.class.wire(), l.counts.new, l.counts.old)?;
            if l.with_urgent {
                write!(f, " ({}/{})", l.counts.urgent_new, l.counts.urgent_old)?;
            }
            f.write_str("\r\n")?;
        }
        for block in &self.message_headers {
            f.write_str("\r\n")?;
            for h in block {
                write!(f, "{h}\r\n")?;
            }
        }
        Ok(())
    }
}

fn syntax(detail: impl Into<String>) -> MwiError {
    MwiError::Syntax { what: "message-summary", detail: detail.into() }
}

fn count(s: &str) -> Result<u32, MwiError> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(format!("{s:?} is not a message count")));
    }
    s.parse::<u32>().map_err(|_| syntax(format!("{s} exceeds 2^32-1")))
}

fn parse_counts(v: &str) -> Result<(Counts, bool), MwiError> {
    let (main, urgent) = match v.split_once('(') {
        Some((m, u)) => {
            let u = u.trim().strip_suffix(')').ok_or_else(|| syntax(format!("unclosed '(' in {v:?}")))?;
            (m, Some(u))
        }
        None => (v, None),
    };
    let (n, o) = main.split_once('/').ok_or_else(|| syntax(format!("expected new/old in {v:?}")))?;
    let mut c = Counts { new: count(n)?, old: count(o)?, ..Counts::default() };
    if let Some(u) = urgent {
        let (un, uo) = u.split_once('/').ok_or_else(|| syntax(format!("expected (urgent-new/urgent-old) in {v:?}")))?;
        c.urgent_new = count(un)?;
        c.urgent_old = count(uo)?;
    }
    Ok((c, urgent.is_some()))
}

impl FromStr for MessageSummary {
    type Err = MwiError;

    fn from_str(body: &str) -> Result<Self, MwiError> {
        let text = body.replace("\r\n", "\n");
        let mut sections = text.splitn(2, "\n\n");
        let head = sections.next().unwrap_or("");
        let rest = sections.next().unwrap_or("");
        let mut lines = head.lines().map(str::trim).filter(|l| !l.is_empty());
        let status = lines.next().ok_or_else(|| syntax("empty body"))?;
        let (name, value) = status.split_once(':').ok_or_else(|| syntax(format!("bad status line {status:?}")))?;
        if !name.trim().eq_ignore_ascii_case("messages-waiting") {
            return Err(syntax(format!("the first line must be Messages-Waiting, not {status:?}")));
        }
        let messages_waiting = match value.trim().to_ascii_lowercase().as_str() {
            "yes" => true,
            "no" => false,
            other => return Err(syntax(format!("Messages-Waiting must be yes or no, not {other:?}"))),
        };
        let mut summary =
            MessageSummary { messages_waiting, account: None, lines: Vec::new(), message_headers: Vec::new() };
        for line in lines {
            let (name, value) = line.split_once(':').ok_or_else(|| syntax(format!("bad line {line:?}")))?;
            if name.trim().eq_ignore_ascii_case("message-account") {
                if summary.account.is_some() || !summary.lines.is_empty() {
                    return Err(syntax("Message-Account must come once, before the summary lines"));
                }
                let account = value.trim();
                if account.is_empty() {
                    return Err(syntax("empty Message-Account"));
                }
                summary.account = Some(account.to_string());
            } else {
                let class = name.trim();
                if class.is_empty() || !class.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                    return Err(syntax(format!("bad message class {class:?}")));
                }
                let (counts, with_urgent) = parse_counts(value)?;
                summary.lines.push(SummaryLine { class: MessageClass::parse(class), counts, with_urgent });
            }
        }
        for block in rest.split("\n\n") {
            let headers: Vec<String> =
                block.lines().map(|l| l.trim_end().to_string()).filter(|l| !l.is_empty()).collect();
            if !headers.is_empty() {
                summary.message_headers.push(headers);
            }
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exchange_um_lamp_on_and_off_from_seed_000() {
        let on: MessageSummary =
            "Messages-Waiting: yes\r\nMessage-Account: sip:613@10.1.1.2:5060;User=phone\r\nVoice-Message: 1/0\r\n"
                .parse()
                .expect("on");
        assert!(on.messages_waiting);
        assert_eq!(on.voice_counts(), Some(Counts { new: 1, ..Counts::default() }));
        assert_eq!(on.account.as_deref(), Some("sip:613@10.1.1.2:5060;User=phone"));
        let off: MessageSummary =
            "Messages-Waiting: no\nMessage-Account: sip:613@10.1.1.2:5060;User=phone\nVoice-Message: 0/1\n"
                .parse()
                .expect("off");
        assert!(!off.messages_waiting);
        assert_eq!(off.voice_counts().map(|c| c.old), Some(1));
        // Exchange's own form survives a round trip byte for byte
        assert_eq!(
            on.to_string(),
            "Messages-Waiting: yes\r\nMessage-Account: sip:613@10.1.1.2:5060;User=phone\r\nVoice-Message: 1/0\r\n"
        );
    }

    #[test]
    fn tolerant_of_case_space_unknown_classes_and_message_headers() {
        let s: MessageSummary = "messages-waiting :  YES \nvoice-message: 4 / 2 ( 1 / 0 )\nX-Video-Message: 1/1\n\nTo: <sip:613@pbx>\nSubject: hi\n\nTo: <sip:613@pbx>\n".parse().expect("parse");
        assert_eq!(s.voice_counts(), Some(Counts { new: 4, old: 2, urgent_new: 1, urgent_old: 0 }));
        assert_eq!(s.lines[1].class, MessageClass::Other("X-Video-Message".into()));
        assert_eq!(s.message_headers.len(), 2);
        assert_eq!(s.account, None);
    }

    #[test]
    fn counts_up_to_u32_max_and_garbage_rejected() {
        let s: MessageSummary =
            "Messages-Waiting: yes\r\nVoice-Message: 4294967295/0 (4294967295/0)\r\n".parse().expect("max");
        assert_eq!(s.voice_counts().map(|c| c.new), Some(u32::MAX));
        for bad in [
            "",
            "Voice-Message: 1/0",
            "Messages-Waiting: maybe",
            "Messages-Waiting: yes\nVoice-Message: 4294967296/0",
            "Messages-Waiting: yes\nVoice-Message: -1/0",
            "Messages-Waiting: yes\nVoice-Message: 1",
            "Messages-Waiting: yes\nVoice-Message: 1/0 (2/",
            "Messages-Waiting: yes\nVoice Message: 1/0",
            "Messages-Waiting: yes\nVoice-Message: 1/0\nMessage-Account: sip:x",
        ] {
            assert!(bad.parse::<MessageSummary>().is_err(), "{bad:?}");
        }
    }

    fn summaries() -> impl Strategy<Value = MessageSummary> {
        let class = prop_oneof![
            Just(MessageClass::Voice),
            Just(MessageClass::Fax),
            Just(MessageClass::Text),
            "X-[A-Za-z]{1,8}".prop_map(MessageClass::Other),
        ];
        let line = (class, any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>(), any::<bool>()).prop_map(
            |(class, n, o, un, uo, u)| SummaryLine {
                class,
                counts: Counts {
                    new: n,
                    old: o,
                    urgent_new: if u { un } else { 0 },
                    urgent_old: if u { uo } else { 0 },
                },
                with_urgent: u,
            },
        );
        let block = proptest::collection::vec("[A-Z][a-z]{1,6}: [a-z0-9@<>:.]{1,12}", 1..3);
        (
            any::<bool>(),
            proptest::option::of("sip:[0-9]{3}@[a-z]{1,5}\\.example"),
            proptest::collection::vec(line, 0..4),
            proptest::collection::vec(block, 0..2),
        )
            .prop_map(|(w, account, lines, message_headers)| MessageSummary {
                messages_waiting: w,
                account,
                lines,
                message_headers,
            })
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(s in summaries()) {
            prop_assert_eq!(s.to_string().parse::<MessageSummary>(), Ok(s));
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,200}") {
            let _ = s.parse::<MessageSummary>();
        }
    }
}
