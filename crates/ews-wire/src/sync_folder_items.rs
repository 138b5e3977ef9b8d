//! SyncFolderItems: what changed in a folder since a sync state.
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/syncfolderitems-operation>.
//!
//! The resync after any outage runs this from the stored `SyncState` until
//! `IncludesLastItemInRange`, so nothing created, read or deleted in between
//! is missed. [`MaxChanges`] cannot hold a value EWS refuses (1–512).

use crate::EwsError;
use crate::find_item::{Item, ItemId, bool_text, read_items};
use crate::request::{envelope, escape};
use crate::response::{ResponseMessage, parse_messages};
use crate::xml::{Node, Ns, Reader, attr};

/// `MaxChangesReturned`: 1 to 512, as EWS requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxChanges(u16);

impl MaxChanges {
    /// The largest page EWS allows.
    pub const MAX: MaxChanges = MaxChanges(512);

    /// `None` outside 1–512.
    pub fn new(n: u16) -> Option<MaxChanges> {
        (1..=512).contains(&n).then_some(MaxChanges(n))
    }

    /// The value.
    pub fn get(self) -> u16 {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncFolderItemsRequest {
    /// A distinguished folder id (`inbox`).
    pub folder: &'static str,
    /// The state from the last page; `None` for a first full sync.
    pub sync_state: Option<String>,
    /// Page size.
    pub max_changes: MaxChanges,
    /// `RequestServerVersion`.
    pub server_version: &'static str,
}

impl SyncFolderItemsRequest {
    /// The SOAP envelope.
    pub fn to_xml(&self) -> String {
        let state =
            self.sync_state.as_ref().map(|s| format!("<m:SyncState>{}</m:SyncState>", escape(s))).unwrap_or_default();
        envelope(
            self.server_version,
            &format!(
                r#"<m:SyncFolderItems><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:ItemClass"/><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:Importance"/><t:FieldURI FieldURI="item:HasAttachments"/><t:FieldURI FieldURI="message:IsRead"/><t:ExtendedFieldURI PropertyTag="0x6801" PropertyType="Integer"/><t:ExtendedFieldURI PropertyTag="0x6802" PropertyType="String"/><t:ExtendedFieldURI PropertyTag="0x6806" PropertyType="String"/></t:AdditionalProperties></m:ItemShape><m:SyncFolderId><t:DistinguishedFolderId Id="{folder}"/></m:SyncFolderId>{state}<m:MaxChangesReturned>{max}</m:MaxChangesReturned><m:SyncScope>NormalItems</m:SyncScope></m:SyncFolderItems>"#,
                folder = self.folder,
                max = self.max_changes.get(),
            ),
        )
    }
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new item.
    Create(Item),
    /// A changed item.
    Update(Item),
    /// A removed item.
    Delete(ItemId),
    /// Only the read flag changed.
    ReadFlagChange {
        /// The item.
        id: ItemId,
        /// Its new state.
        is_read: bool,
    },
}

/// One page of changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPage {
    /// The state to store and send next time.
    pub sync_state: String,
    /// Whether this was the last page.
    pub includes_last_item_in_range: bool,
    /// The changes, in order.
    pub changes: Vec<Change>,
}

fn item_id(r: &mut Reader<'_>) -> Result<(ItemId, Option<bool>), EwsError> {
    let (mut id, mut is_read) = (ItemId::default(), None);
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"ItemId" => {
                id = ItemId {
                    id: attr(&tag, b"Id").unwrap_or_default(),
                    change_key: attr(&tag, b"ChangeKey").unwrap_or_default(),
                };
                r.skip()?;
            }
            Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"IsRead" => {
                is_read = r.text_map(bool_text)?
            }
            Node::Start { .. } => r.skip()?,
            Node::End => return Ok((id, is_read)),
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside a change".into())),
        }
    }
}

/// Parses a SyncFolderItems response.
pub fn parse_sync_folder_items(bytes: &[u8]) -> Result<Vec<ResponseMessage<SyncPage>>, EwsError> {
    parse_messages(bytes, b"SyncFolderItemsResponseMessage", |r, tag, page: &mut SyncPage| {
        match tag.local_name().as_ref() {
            b"SyncState" => page.sync_state = r.text_trim()?,
            b"IncludesLastItemInRange" => page.includes_last_item_in_range = r.text_map(bool_text)?.unwrap_or(false),
            b"Changes" => loop {
                match r.next()? {
                    Node::Start { ns: Ns::T, tag } => match tag.local_name().as_ref() {
                        kind @ (b"Create" | b"Update") => {
                            let create = kind == b"Create";
                            let mut items = Vec::new();
                            read_items(r, &mut items)?;
                            for item in items {
                                page.changes.push(if create { Change::Create(item) } else { Change::Update(item) });
                            }
                        }
                        b"Delete" => page.changes.push(Change::Delete(item_id(r)?.0)),
                        b"ReadFlagChange" => {
                            let (id, is_read) = item_id(r)?;
                            let is_read =
                                is_read.ok_or_else(|| EwsError::Malformed("ReadFlagChange without IsRead".into()))?;
                            page.changes.push(Change::ReadFlagChange { id, is_read });
                        }
                        _ => r.skip()?,
                    },
                    Node::Start { .. } => r.skip()?,
                    Node::End => break,
                    Node::Text(_) => {}
                    Node::Eof => return Err(EwsError::Malformed("document ends inside Changes".into())),
                }
            },
            _ => return Ok(false),
        }
        Ok(true)
    })
}
