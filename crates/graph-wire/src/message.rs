//! `microsoft.graph.message` and what hangs off it, as far as Lamplighter
//! reads it. Names and JSON types are the v1.0 CSDL's (`message` on
//! `outlookItem` on `entity`; `Edm.DateTimeOffset` stays the ISO 8601 text
//! Graph writes). Properties we do not model are ignored, so a body with
//! more than we know still reads; a property of the wrong JSON type is an
//! error, as it would be for Microsoft's own SDKs.

use serde::{Deserialize, Serialize};

/// A message (also an entry of a delta page, then perhaps only `id` and `@removed`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `id` (`entity`), never null.
    pub id: String,
    /// `@odata.etag`: `W/"<changeKey>"`.
    #[serde(rename = "@odata.etag", default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// `changeKey` (`outlookItem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `receivedDateTime`, as written (`2026-11-24T09:14:03Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_date_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<Importance>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_bool")]
    pub has_attachments: Option<bool>,
    /// `isRead`; also read from `"true"`/`"false"`, which Microsoft's own
    /// delta example shows (a misstep the CSDL check reports, and a reason
    /// not to lose a whole page over one value).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_bool")]
    pub is_read: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Recipient>,
    /// `body`; with `Prefer: outlook.body-content-type="text"` the text form,
    /// where Cloud Voicemail writes its transcription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ItemBody>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_preview: Option<String>,
    /// `internetMessageHeaders` (only with `$select`): where a PBX copied
    /// the call's SIP headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_message_headers: Option<Vec<InternetMessageHeader>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    /// The extended properties `$expand` asked for (the UM properties).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_value_extended_properties: Option<Vec<ExtendedProperty>>,
    /// `attachments`, when expanded or listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    /// `@removed` of a delta entry: the message left the folder.
    #[serde(rename = "@removed", default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removed>,
}

fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Bool(bool),
        Text(String),
    }
    match Option::<Either>::deserialize(d)? {
        None => Ok(None),
        Some(Either::Bool(b)) => Ok(Some(b)),
        Some(Either::Text(t)) if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Either::Text(t)) if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(Either::Text(t)) => Err(serde::de::Error::custom(format!("{t:?} is not a boolean"))),
    }
}

/// `graph.importance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Importance {
    Low,
    Normal,
    High,
    /// A member this version does not know (the CSDL's enums grow).
    #[serde(other)]
    Unknown,
}

/// `graph.recipient`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recipient {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_address: Option<EmailAddress>,
}

/// `graph.emailAddress`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `graph.itemBody`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<BodyType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `graph.bodyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BodyType {
    Text,
    Html,
    #[serde(other)]
    Unknown,
}

/// `graph.internetMessageHeader`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InternetMessageHeader {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// `graph.singleValueLegacyExtendedProperty`: `id` is `"<Type> 0x<tag>"` or
/// a named form; `value` is always a string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtendedProperty {
    pub id: String,
    #[serde(default)]
    pub value: Option<String>,
}

/// `graph.attachment` (a `fileAttachment` for audio), without its bytes:
/// those come from `…/$value`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// `#microsoft.graph.fileAttachment`, `#microsoft.graph.itemAttachment`, …
    #[serde(rename = "@odata.type", default, skip_serializing_if = "Option::is_none")]
    pub odata_type: Option<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// `size`, `Edm.Int32`, not nullable.
    pub size: i32,
    /// `isInline`, not nullable.
    pub is_inline: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified_date_time: Option<String>,
}

impl Attachment {
    /// A file (not an attached item or a link), which is what can play.
    pub fn is_file(&self) -> bool {
        self.odata_type.as_deref().is_none_or(|t| t == "#microsoft.graph.fileAttachment")
    }
}

/// `@removed` in a delta entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// `deleted` (or `changed`, which Graph documents for other resources).
    #[serde(default)]
    pub reason: Option<String>,
}

/// The MAPI properties Lamplighter asks for, by the ids Graph takes
/// (MS-OXPROPS, MS-OXOUM).
pub mod props {
    /// `PidTagMessageClass`: `IPM.Note.Microsoft.Voicemail.UM.CA`, …
    pub const MESSAGE_CLASS: &str = "String 0x001A";
    /// `PidTagVoiceMessageDuration`, seconds.
    pub const DURATION: &str = "Integer 0x6801";
    /// `PidTagSenderTelephoneNumber`.
    pub const CALLER_NUMBER: &str = "String 0x6802";
    /// `PidTagVoiceMessageSenderName`.
    pub const CALLER_NAME: &str = "String 0x6803";
    /// `PidTagVoiceMessageAttachmentOrder`: audio file names, newest first.
    pub const ATTACHMENT_ORDER: &str = "String 0x6805";
    /// `PidTagCallId`.
    pub const CALL_ID: &str = "String 0x6806";
    /// All of them, in the order of the `$expand` filter.
    pub const ALL: &[&str] = &[MESSAGE_CLASS, DURATION, CALLER_NUMBER, CALLER_NAME, ATTACHMENT_ORDER, CALL_ID];
}

/// `"String 0x001A"` → (`string`, 0x1a): type words compare without case and
/// tags by number, since Graph may echo `0x1A` for `0x001A`.
fn tag_of(id: &str) -> Option<(String, u32)> {
    let (kind, tag) = id.trim().split_once(' ')?;
    let hex = tag.trim().strip_prefix("0x").or_else(|| tag.trim().strip_prefix("0X"))?;
    Some((kind.to_ascii_lowercase(), u32::from_str_radix(hex, 16).ok()?))
}

/// What the UM properties of a message say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UmProps {
    pub message_class: Option<String>,
    pub duration_secs: Option<u32>,
    pub caller_number: Option<String>,
    pub caller_name: Option<String>,
    pub attachment_order: Option<String>,
    pub call_id: Option<String>,
}

impl Message {
    /// The value of extended property `id` (one of [`props`]), if expanded.
    pub fn property(&self, id: &str) -> Option<&str> {
        let want = tag_of(id)?;
        self.single_value_extended_properties
            .as_deref()?
            .iter()
            .find(|p| tag_of(&p.id).as_ref() == Some(&want))
            .and_then(|p| p.value.as_deref())
    }

    /// The UM properties; a duration that is not a number is left out.
    pub fn um(&self) -> UmProps {
        let s = |id| self.property(id).map(str::to_string).filter(|v| !v.is_empty());
        UmProps {
            message_class: s(props::MESSAGE_CLASS),
            duration_secs: self.property(props::DURATION).and_then(|v| v.trim().parse().ok()),
            caller_number: s(props::CALLER_NUMBER),
            caller_name: s(props::CALLER_NAME),
            attachment_order: s(props::ATTACHMENT_ORDER),
            call_id: s(props::CALL_ID),
        }
    }

    /// The value of the first internet header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.internet_message_headers
            .as_deref()?
            .iter()
            .find(|h| h.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .and_then(|h| h.value.as_deref())
    }

    /// The change key, from `changeKey` or else the etag (`W/"…"`).
    pub fn change_key(&self) -> Option<&str> {
        self.change_key.as_deref().or_else(|| {
            let e = self.etag.as_deref()?;
            Some(e.strip_prefix("W/").unwrap_or(e).trim_matches('"'))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_ids_compare_by_type_and_tag() {
        assert_eq!(tag_of("String 0x001A"), tag_of("string 0x1a"));
        assert_ne!(tag_of("String 0x001A"), tag_of("Integer 0x001A"));
        assert_eq!(tag_of("String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color"), None);
        let m = Message {
            single_value_extended_properties: Some(vec![
                ExtendedProperty { id: "Integer 0x6801".into(), value: Some("27".into()) },
                ExtendedProperty { id: "String 0x1A".into(), value: Some("IPM.Note.Microsoft.Voicemail.UM.CA".into()) },
                ExtendedProperty { id: "String 0x6802".into(), value: Some(String::new()) },
            ]),
            ..Message::default()
        };
        let um = m.um();
        assert_eq!(um.duration_secs, Some(27));
        assert_eq!(um.message_class.as_deref(), Some("IPM.Note.Microsoft.Voicemail.UM.CA"));
        assert_eq!(um.caller_number, None, "an empty value is no value");
    }

    #[test]
    fn the_change_key_falls_back_to_the_etag() {
        let m = Message { etag: Some("W/\"CQAAABYAAACY\"".into()), ..Message::default() };
        assert_eq!(m.change_key(), Some("CQAAABYAAACY"));
    }
}
