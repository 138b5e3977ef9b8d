//! A Graph message as the mailbox's item (the type every front end and the
//! inbox core read, today `lamplighter-ews-wire`'s): ids, read flag,
//! importance in EWS's casing, the UM properties from the extended
//! properties or else from the internet headers Unified Messaging and
//! Cloud Voicemail write (`X-CallingTelephoneNumber`, …), the text body.

use lamplighter_ews_wire::find_item::TEXT_BODY_LIMIT;
use lamplighter_ews_wire::{Attachment, Item, ItemId, Mailbox, UmProperties};
use lamplighter_graph_wire::Message;
use lamplighter_graph_wire::message::Importance;

/// The item a message stands for.
pub fn item(m: &Message) -> Item {
    let um = m.um();
    let header = |name: &str| m.header(name).map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    Item {
        element: "Message".into(),
        id: ItemId { id: m.id.clone(), change_key: m.change_key().unwrap_or_default().to_string() },
        item_class: um.message_class.clone().map(Into::into),
        subject: m.subject.clone(),
        date_time_received: m.received_date_time.clone(),
        importance: m.importance.map(|i| {
            match i {
                Importance::Low => "Low",
                Importance::High => "High",
                Importance::Normal | Importance::Unknown => "Normal",
            }
            .into()
        }),
        has_attachments: m.has_attachments,
        is_read: m.is_read,
        from: m
            .from
            .as_ref()
            .and_then(|f| f.email_address.as_ref())
            .map(|e| Mailbox { name: e.name.clone(), email: e.address.clone() }),
        um: UmProperties {
            duration_secs: um.duration_secs.or_else(|| header("X-VoiceMessageDuration").and_then(|d| d.parse().ok())),
            caller_number: um.caller_number.clone().or_else(|| header("X-CallingTelephoneNumber")),
            caller_name: um.caller_name.clone().or_else(|| header("X-VoiceMessageSenderName")),
            attachment_order: um.attachment_order.clone().or_else(|| header("X-AttachmentOrder")),
            call_id: um.call_id.clone().or_else(|| header("X-CallID")),
        },
        headers: m
            .internet_message_headers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|h| Some((h.name.clone()?, h.value.clone().unwrap_or_default())))
            .collect(),
        attachments: m
            .attachments
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter(|a| a.is_file())
            .map(|a| Attachment {
                id: a.id.clone(),
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: u64::try_from(a.size).ok(),
            })
            .collect(),
        text_body: m
            .body
            .as_ref()
            .and_then(|b| b.content.as_deref())
            .map(|t| t.chars().take(TEXT_BODY_LIMIT).collect()),
    }
}
