//! UpdateItem, as Lamplighter uses it: set `IsRead` (mark a voicemail heard,
//! a missed call seen). Nothing else of the user's items is ever changed.
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/updateitem-operation>.
//!
//! The request carries the item's `ChangeKey`, and the conflict policy is
//! explicit: [`ConflictPolicy::AlwaysOverwrite`] for the read flag (the
//! user's latest intent wins; a read flag has no content to lose), or
//! [`ConflictPolicy::NeverOverwrite`], which makes a stale change key fail
//! with `ErrorIrresolvableConflict` instead of overwriting.

use crate::EwsError;
use crate::find_item::{Item, ItemId, read_items};
use crate::request::{envelope, escape};
use crate::response::{ResponseMessage, parse_messages};

/// What the server does when the change key is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// Fail with `ErrorIrresolvableConflict`.
    NeverOverwrite,
    /// Apply unless it conflicts with a change of the same property.
    AutoResolve,
    /// Apply regardless.
    AlwaysOverwrite,
}

impl ConflictPolicy {
    fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::NeverOverwrite => "NeverOverwrite",
            ConflictPolicy::AutoResolve => "AutoResolve",
            ConflictPolicy::AlwaysOverwrite => "AlwaysOverwrite",
        }
    }
}

/// Set the read flag of items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkReadRequest {
    /// The items with their change keys, and the flag to set.
    pub items: Vec<(ItemId, bool)>,
    /// What a stale change key does.
    pub conflict: ConflictPolicy,
    /// `RequestServerVersion`.
    pub server_version: &'static str,
}

impl MarkReadRequest {
    /// The SOAP envelope.
    pub fn to_xml(&self) -> String {
        let changes: String = self
            .items
            .iter()
            .map(|(id, read)| {
                let key = if id.change_key.is_empty() {
                    String::new()
                } else {
                    format!(r#" ChangeKey="{}""#, escape(&id.change_key))
                };
                format!(
                    r#"<t:ItemChange><t:ItemId Id="{}"{key}/><t:Updates><t:SetItemField><t:FieldURI FieldURI="message:IsRead"/><t:Message><t:IsRead>{read}</t:IsRead></t:Message></t:SetItemField></t:Updates></t:ItemChange>"#,
                    escape(&id.id)
                )
            })
            .collect();
        envelope(
            self.server_version,
            &format!(
                r#"<m:UpdateItem MessageDisposition="SaveOnly" ConflictResolution="{}" SuppressReadReceipts="true"><m:ItemChanges>{changes}</m:ItemChanges></m:UpdateItem>"#,
                self.conflict.as_str()
            ),
        )
    }
}

/// Parses an UpdateItem response: per item, the item's new id and change key.
pub fn parse_update_item(bytes: &[u8]) -> Result<Vec<ResponseMessage<Vec<Item>>>, EwsError> {
    parse_messages(bytes, b"UpdateItemResponseMessage", |r, tag, items: &mut Vec<Item>| {
        if tag.local_name().as_ref() != b"Items" {
            return Ok(false);
        }
        read_items(r, items)?;
        Ok(true)
    })
}
