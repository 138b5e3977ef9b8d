//! What Exchange Unified Messaging (and Cloud Voicemail, which kept its
//! vocabulary) puts into a mailbox, as types every other crate shares: the
//! item classes that mean voicemail or a call ([`ItemClass`], MS-OXOUM 2.2.5),
//! and the counts a message-waiting lamp shows ([`Counts`], RFC 3842's
//! new/old with urgent subsets). The item class is compared without regard
//! to case, as Exchange does; the `rpmsg` (IRM-protected) variants are the
//! same kinds.
//!
//! ```
//! use lamplighter_um::ItemClass;
//! assert_eq!(ItemClass::parse("IPM.Note.Microsoft.Voicemail.UM.CA"), ItemClass::Voicemail);
//! assert!(ItemClass::parse("IPM.Note.Microsoft.Fax").is_um());
//! assert!(!ItemClass::parse("IPM.Note").is_um());
//! ```

use serde::{Deserialize, Serialize};

/// The meaning of an item's `ItemClass` (`PidTagMessageClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemClass {
    /// `IPM.Note.Microsoft.Voicemail*`: a recorded voicemail (UM, Cloud Voicemail).
    Voicemail,
    /// `IPM.Note.Microsoft.Missed.Voice`: a call nobody answered.
    MissedCall,
    /// `IPM.Note.Microsoft.Conversation.Voice`: a call the user answered.
    AnsweredCall,
    /// Any other `IPM.Note.Microsoft.*` class (fax, partner voicemail, …):
    /// Unified Messaging's, so its headers and attachments are worth reading.
    OtherUm,
    /// Ordinary mail and everything else.
    Other,
}

impl ItemClass {
    /// Classifies an `ItemClass` value (any case, surrounding blanks ignored).
    pub fn parse(class: &str) -> ItemClass {
        let c = class.trim().to_ascii_lowercase();
        let Some(rest) = c.strip_prefix("ipm.note.microsoft.").or_else(|| c.strip_prefix("ipm.note.rpmsg.microsoft."))
        else {
            return ItemClass::Other;
        };
        if rest.starts_with("voicemail") {
            ItemClass::Voicemail
        } else if rest == "missed.voice" {
            ItemClass::MissedCall
        } else if rest == "conversation.voice" {
            ItemClass::AnsweredCall
        } else {
            ItemClass::OtherUm
        }
    }

    /// Whether Unified Messaging wrote it, so its details (internet headers with
    /// the call's SIP data, attachments, transcription) are worth a GetItem. An
    /// item whose class the server did not say is treated as one: better one
    /// request too many than a voicemail missed.
    pub fn is_um_or_unknown(class: Option<&str>) -> bool {
        class.is_none_or(|c| ItemClass::parse(c).is_um())
    }

    /// Whether Unified Messaging wrote it.
    pub fn is_um(self) -> bool {
        self != ItemClass::Other
    }
}

/// Message counts of one class, as a lamp shows them: `new` = unheard
/// (unread), `old` = heard, and the urgent (Importance High) share of each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Counts {
    /// Unheard messages.
    pub new: u32,
    /// Heard messages.
    pub old: u32,
    /// Unheard urgent messages, a subset of `new`.
    pub urgent_new: u32,
    /// Heard urgent messages, a subset of `old`.
    pub urgent_old: u32,
}

impl std::fmt::Display for Counts {
    /// The RFC 3842 form: `new/old (urgent new/urgent old)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} ({}/{})", self.new, self.old, self.urgent_new, self.urgent_old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_um_class_is_recognised_in_any_case() {
        assert_eq!(ItemClass::parse("IPM.Note.Microsoft.Voicemail.UM.CA"), ItemClass::Voicemail);
        assert_eq!(ItemClass::parse("ipm.note.microsoft.voicemail.um"), ItemClass::Voicemail);
        assert_eq!(ItemClass::parse("IPM.Note.rpmsg.Microsoft.Voicemail.UM.CA"), ItemClass::Voicemail);
        assert_eq!(ItemClass::parse("IPM.Note.Microsoft.Missed.Voice"), ItemClass::MissedCall);
        assert_eq!(ItemClass::parse(" IPM.Note.Microsoft.Conversation.Voice "), ItemClass::AnsweredCall);
        assert_eq!(ItemClass::parse("IPM.Note.Microsoft.Fax"), ItemClass::OtherUm);
        assert_eq!(ItemClass::parse("IPM.Note"), ItemClass::Other);
        assert_eq!(ItemClass::parse("IPM.Note.Microsoft"), ItemClass::Other);
        assert!(ItemClass::is_um_or_unknown(None));
        assert!(!ItemClass::is_um_or_unknown(Some("IPM.Schedule.Meeting.Request")));
    }

    #[test]
    fn counts_read_as_rfc_3842_writes_them() {
        assert_eq!(Counts { new: 2, old: 5, urgent_new: 1, urgent_old: 0 }.to_string(), "2/5 (1/0)");
    }

    proptest::proptest! {
        #[test]
        fn the_class_does_not_depend_on_case(s in "[a-zA-Z.]{0,40}") {
            proptest::prop_assert_eq!(ItemClass::parse(&s), ItemClass::parse(&s.to_ascii_uppercase()));
        }
    }
}
