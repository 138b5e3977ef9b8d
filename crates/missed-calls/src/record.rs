//! One report of a call, normalised from whichever source made it.
//!
//! Sources and exactly what is read from each:
//!
//! | source | constructor | read |
//! |---|---|---|
//! | mailbox item (EWS) | [`CallRecord::from_mailbox_item`] | `ItemClass` (voicemail: `IPM.Note.Microsoft.Voicemail*`, `IPM.Note.rpmsg.Microsoft.Voicemail*`; missed call: `IPM.Note.Microsoft.Missed.Voice`; answered: `IPM.Note.Microsoft.Conversation.Voice`), `DateTimeReceived`, PidTagCallId 0x6806 (or header `X-CallID`), PidTagSenderTelephoneNumber 0x6802 (or `X-CallingTelephoneNumber`), PidTagVoiceMessageSenderName 0x6803 (or `X-VoiceMessageSenderName`), and the internet headers `History-Info`, `Diversion`, `Reason`, `Call-ID`, `From` and `User-Agent` (the reporting device) when the PBX copied them |
//! | Exchange UM `UserNotification` XML | [`CallRecord::from_um_notification`] | `<Time>`, `<Event type>`, `<CallId>`, `<From>`, `<MissedReason>` |
//! | SIP seen by a device | [`CallRecord::from_sip`] | the INVITE's `Call-ID`/`i`, `From`/`f` (tag), `To`/`t`, `History-Info`, `Diversion`; the CANCEL's `Reason`; whether the device answered |
//!
//! Times are milliseconds since the Unix epoch, passed in or read from the
//! source; nothing here reads a clock.

use crate::ParseError;
use crate::diversion::{DiversionEntry, parse_diversion};
use crate::history_info::HistoryInfo;
use crate::party::Party;
use crate::reason::Reason;
use crate::text::{header_values, parse_name_addr, parse_params};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Where a report came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// An item in the mailbox (written by Exchange UM or a client).
    Mailbox,
    /// Exchange UM's `UserNotification`.
    UmNotification,
    /// A SIP device's own view of the call.
    Device,
}

/// What this report says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call rang here and nobody answered here.
    Missed,
    /// This device answered.
    AnsweredHere,
    /// Cancelled because another branch answered (`Reason: SIP;cause=200`).
    AnsweredElsewhere,
    /// The caller left a voicemail.
    Voicemail,
}

/// Whether the time is when ringing started or when the report was written
/// (mailbox items are written after the call, so they match more loosely).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeKind {
    /// When the call started ringing.
    Start,
    /// When the call ended or the report was filed.
    Logged,
}

/// One normalised report of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Where it came from.
    pub source: Source,
    /// The reporting device or writer (`desk-phone`, `Exchange UM`, a User-Agent).
    pub device: String,
    /// A stable id of the report in its source (mailbox item id, …), if any.
    pub report_id: Option<String>,
    /// The SIP Call-ID (or UM call id).
    pub call_id: Option<String>,
    /// The From tag, which with the Call-ID names the call across forks.
    pub from_tag: Option<String>,
    pub caller: Party,
    /// The caller's display name.
    pub caller_name: Option<String>,
    pub at: Millis,
    /// What `at` means.
    pub time_kind: TimeKind,
    /// What happened.
    pub outcome: Outcome,
    /// The request's target (To / Request-URI), when known.
    pub to: Option<Party>,
    /// The call's history.
    pub history: HistoryInfo,
    /// Diversions, most recent first (where History-Info is absent).
    pub diversion: Vec<DiversionEntry>,
}

/// A mailbox item about a call, as the mailbox backend fetched it and
/// the voicemail recogniser classified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxCallItem {
    /// The mailbox's id of the item.
    pub item_id: String,
    /// What kind of item it is: voicemail, missed call or a record of an
    /// answered call (from its class, `Content-Class` or a PBX rule; see
    /// [`outcome_of_item_class`] for the message classes).
    pub kind: Outcome,
    /// `DateTimeReceived`, ms since the epoch.
    pub received: Millis,
    /// PidTagCallId (0x6806).
    pub call_id: Option<String>,
    /// PidTagSenderTelephoneNumber (0x6802).
    pub caller_number: Option<String>,
    /// PidTagVoiceMessageSenderName (0x6803).
    pub caller_name: Option<String>,
    /// The item's internet message headers, name and value.
    pub headers: Vec<(String, String)>,
}

impl MailboxCallItem {
    fn header(&self, names: &[&str]) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| names.iter().any(|w| w.eq_ignore_ascii_case(n.trim())))
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Which kind of UM item an item class is.
pub fn outcome_of_item_class(class: &str) -> Option<Outcome> {
    use lamplighter_um::ItemClass;
    match ItemClass::parse(class) {
        ItemClass::Voicemail => Some(Outcome::Voicemail),
        ItemClass::MissedCall => Some(Outcome::Missed),
        ItemClass::AnsweredCall => Some(Outcome::AnsweredHere),
        ItemClass::OtherUm | ItemClass::Other => None,
    }
}

fn from_tag(from_value: &str) -> Result<(Party, Option<String>, Option<String>), ParseError> {
    let na = parse_name_addr(from_value, false)?;
    let tag = parse_params(na.params)?.into_iter().find(|p| p.name == "tag").and_then(|p| p.value);
    Ok((Party::parse(na.uri)?, na.display, tag))
}

impl CallRecord {
    /// From a voicemail, missed-call or call-record item of the mailbox.
    pub fn from_mailbox_item(item: &MailboxCallItem) -> Result<CallRecord, ParseError> {
        let outcome = item.kind;
        let history = HistoryInfo::parse(&item.header(&["History-Info"]))?;
        let diversion = parse_diversion(&item.header(&["Diversion"]))?;
        let mut outcome = outcome;
        if outcome == Outcome::Missed {
            for r in item.header(&["Reason"]) {
                if Reason::parse_list(&r)?.iter().any(Reason::completed_elsewhere) {
                    outcome = Outcome::AnsweredElsewhere;
                }
            }
        }
        let from = item.header(&["From"]).into_iter().next();
        let (sip_caller, sip_name, tag) = match &from {
            Some(f) => {
                let (p, n, t) = from_tag(f)?;
                (Some(p), n, t)
            }
            None => (None, None, None),
        };
        let number =
            item.caller_number.clone().or_else(|| item.header(&["X-CallingTelephoneNumber"]).into_iter().next());
        let caller = match number.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            Some(n) => Party::parse(n)?,
            None => sip_caller.unwrap_or(Party::Anonymous),
        };
        let sip_call_id = item.header(&["Call-ID", "i"]).into_iter().next();
        Ok(CallRecord {
            source: Source::Mailbox,
            device: item.header(&["User-Agent"]).into_iter().next().unwrap_or_else(|| "mailbox".into()),
            report_id: Some(item.item_id.clone()),
            call_id: sip_call_id
                .or_else(|| item.call_id.clone())
                .or_else(|| item.header(&["X-CallID"]).into_iter().next())
                .map(|c| c.trim().to_string()),
            from_tag: tag,
            caller,
            caller_name: item
                .caller_name
                .clone()
                .or_else(|| item.header(&["X-VoiceMessageSenderName"]).into_iter().next())
                .or(sip_name)
                .filter(|n| !n.trim().is_empty()),
            at: item.received,
            time_kind: TimeKind::Logged,
            outcome,
            to: None,
            history,
            diversion,
        })
    }

    /// From Exchange UM's `UserNotification` XML (seed 003):
    /// `<UserNotification><Time>…</Time><Event type="missed"><CallId>…</CallId><From>…</From><MissedReason>…</MissedReason></Event></UserNotification>`.
    pub fn from_um_notification(xml: &str) -> Result<CallRecord, ParseError> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(xml);
        let config = reader.config_mut();
        config.expand_empty_elements = true;
        let mut path: Vec<String> = Vec::new();
        let mut text = String::new();
        let (mut time, mut event_type, mut call_id, mut from, mut user) = (None, None, None, None, None);
        let bad = |e: quick_xml::Error| ParseError::Syntax { what: "UserNotification", detail: e.to_string() };
        loop {
            match reader.read_event().map_err(bad)? {
                Event::Start(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    if name == "Event" {
                        for a in e.attributes().flatten() {
                            if a.key.local_name().as_ref() == b"type" {
                                event_type = Some(String::from_utf8_lossy(&a.value).to_ascii_lowercase());
                            }
                        }
                    }
                    path.push(name);
                    text.clear();
                }
                Event::End(_) => {
                    let value = std::mem::take(&mut text).trim().to_string();
                    match path.pop().as_deref() {
                        Some("Time") => time = Some(value),
                        Some("CallId") => call_id = Some(value),
                        Some("From") => from = Some(value),
                        Some("User") => user = Some(value),
                        _ => {}
                    }
                }
                Event::Text(t) => {
                    text.push_str(
                        &t.decode()
                            .map_err(|e| ParseError::Syntax { what: "UserNotification", detail: e.to_string() })?,
                    );
                }
                // quick-xml reports entity references apart from the text around them
                Event::GeneralRef(r) => match r.as_ref() {
                    b"amp" => text.push('&'),
                    b"lt" => text.push('<'),
                    b"gt" => text.push('>'),
                    b"quot" => text.push('"'),
                    b"apos" => text.push('\''),
                    other => {
                        let code = std::str::from_utf8(other).ok().and_then(|s| {
                            s.strip_prefix("#x")
                                .map(|h| u32::from_str_radix(h, 16).ok())
                                .unwrap_or_else(|| s.strip_prefix('#').and_then(|d| d.parse().ok()))
                        });
                        let c = code.and_then(char::from_u32).ok_or_else(|| ParseError::Syntax {
                            what: "UserNotification",
                            detail: format!("unknown entity &{};", String::from_utf8_lossy(other)),
                        })?;
                        text.push(c);
                    }
                },
                Event::DocType(_) => {
                    return Err(ParseError::Syntax {
                        what: "UserNotification",
                        detail: "DTDs are not accepted".into(),
                    });
                }
                Event::Eof => break,
                _ => {}
            }
            if path.len() > 32 {
                return Err(ParseError::Syntax { what: "UserNotification", detail: "nested too deeply".into() });
            }
        }
        let time = time.ok_or(ParseError::Missing("UserNotification <Time>"))?;
        let outcome = match event_type.as_deref() {
            Some("missed") => Outcome::Missed,
            Some(other) => return Err(ParseError::NotACall(format!("UserNotification event {other}"))),
            None => return Err(ParseError::Missing("UserNotification <Event type>")),
        };
        Ok(CallRecord {
            source: Source::UmNotification,
            device: "Exchange UM".into(),
            report_id: None,
            call_id,
            from_tag: None,
            caller: from.as_deref().map(Party::parse).transpose()?.unwrap_or(Party::Anonymous),
            caller_name: None,
            at: parse_time(&time)?,
            time_kind: TimeKind::Logged,
            outcome,
            to: user.as_deref().map(Party::parse).transpose()?,
            history: HistoryInfo::default(),
            diversion: Vec::new(),
        })
    }

    /// From a device's view: the INVITE it received, the CANCEL that ended
    /// ringing (if any), whether it answered, and when ringing began.
    pub fn from_sip(
        device: &str,
        invite: &str,
        cancel: Option<&str>,
        answered_here: bool,
        at: Millis,
    ) -> Result<CallRecord, ParseError> {
        let (start_line, headers) = invite.split_once('\n').unwrap_or((invite, ""));
        let headers = header_section(headers);
        let mut words = start_line.split_whitespace();
        if words.next() != Some("INVITE") {
            return Err(ParseError::Syntax { what: "SIP", detail: format!("not an INVITE: {:?}", start_line.trim()) });
        }
        let request_uri = words.next().ok_or(ParseError::Missing("Request-URI"))?;
        let one = |names: &[&str]| header_values(headers, names).into_iter().next();
        let call_id = one(&["Call-ID", "i"]).ok_or(ParseError::Missing("Call-ID"))?;
        let from = one(&["From", "f"]).ok_or(ParseError::Missing("From"))?;
        let (caller, caller_name, tag) = from_tag(&from)?;
        let to = match one(&["To", "t"]) {
            Some(t) => Some(Party::parse(parse_name_addr(&t, false)?.uri)?),
            None => Some(Party::parse(request_uri)?),
        };
        let mut outcome = if answered_here { Outcome::AnsweredHere } else { Outcome::Missed };
        if let (Some(c), false) = (cancel, answered_here) {
            let (cancel_line, cancel_headers) = c.split_once('\n').unwrap_or((c, ""));
            let cancel_headers = header_section(cancel_headers);
            if !cancel_line.trim_start().starts_with("CANCEL") {
                return Err(ParseError::Syntax {
                    what: "SIP",
                    detail: format!("not a CANCEL: {:?}", cancel_line.trim()),
                });
            }
            for r in header_values(cancel_headers, &["Reason"]) {
                if Reason::parse_list(&r)?.iter().any(Reason::completed_elsewhere) {
                    outcome = Outcome::AnsweredElsewhere;
                }
            }
        }
        Ok(CallRecord {
            source: Source::Device,
            device: device.to_string(),
            report_id: None,
            call_id: Some(call_id),
            from_tag: tag,
            caller,
            caller_name,
            at,
            time_kind: TimeKind::Start,
            outcome,
            to,
            history: HistoryInfo::parse(&header_values(headers, &["History-Info"]))?,
            diversion: parse_diversion(&header_values(headers, &["Diversion"]))?,
        })
    }

    /// The key that names the call across forks: Call-ID, plus the From tag when known.
    pub fn call_key(&self) -> Option<String> {
        self.call_id.as_ref().map(|c| c.trim().to_ascii_lowercase())
    }

    /// The original target: History-Info's root, else the first diverter, else `to`.
    pub fn original_target(&self) -> Option<Party> {
        self.history
            .root()
            .map(|e| e.target.clone())
            .or_else(|| self.diversion.last().map(|d| d.from.clone()))
            .or_else(|| self.to.clone())
    }
}

/// The header lines of a message: everything before the first empty line.
fn header_section(after_start_line: &str) -> &str {
    let crlf = after_start_line.find("\r\n\r\n");
    let lf = after_start_line.find("\n\n");
    let end = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => after_start_line.len(),
    };
    &after_start_line[..end]
}

/// Parses `2011-02-11 01:29:39Z`, `2011-02-11T01:29:39.5+01:00` and the like
/// into ms since the epoch (a missing zone means UTC).
pub fn parse_time(s: &str) -> Result<Millis, ParseError> {
    let bad = || ParseError::Syntax { what: "time", detail: format!("{s:?}") };
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<i64>().ok()).ok_or_else(bad);
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Err(bad());
        }
        millis = format!("{:0<3}", &digits[..digits.len().min(3)]).parse().map_err(|_| bad())?;
        rest = &frac[digits.len()..];
    }
    let offset_min = match rest {
        "" | "Z" | "z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) && &zone[3..4] == ":" => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (zone[1..3].parse::<i64>().map_err(|_| bad())? * 60
                + zone[4..6].parse::<i64>().map_err(|_| bad())?)
        }
        _ => return Err(bad()),
    };
    // days from civil (H. Hinnant's algorithm)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60) * 1000) + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z").expect("t"), 0);
        assert_eq!(parse_time("2011-02-11 01:29:39Z").expect("t"), 1_297_387_779_000);
        assert_eq!(parse_time("2011-02-11T02:29:39.5+01:00").expect("t"), 1_297_387_779_500);
        for bad in ["2011-02-11", "2011-13-11 01:29:39Z", "2011-02-11 01:29:39 PST", "yyyy-02-11 01:29:39Z"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn item_classes() {
        assert_eq!(outcome_of_item_class("IPM.Note.Microsoft.Voicemail.UM.CA"), Some(Outcome::Voicemail));
        assert_eq!(outcome_of_item_class("ipm.note.rpmsg.microsoft.voicemail.um"), Some(Outcome::Voicemail));
        assert_eq!(outcome_of_item_class("IPM.Note.Microsoft.Missed.Voice"), Some(Outcome::Missed));
        assert_eq!(outcome_of_item_class("IPM.Note.Microsoft.Conversation.Voice"), Some(Outcome::AnsweredHere));
        assert_eq!(outcome_of_item_class("IPM.Note"), None);
    }
}
