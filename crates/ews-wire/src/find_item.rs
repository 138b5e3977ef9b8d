//! FindItem: list the items of a folder, a page at a time.
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/finditem-operation>.
//!
//! [`FindItemRequest`] asks for exactly what Lamplighter needs of voicemail
//! and missed-call items: item class, read flag, importance, received time,
//! subject, sender, and the MS-OXOUM properties 0x6801 (duration), 0x6802
//! (caller number), 0x6803 (caller name), 0x6805 (attachment order) and
//! 0x6806 (call id). [`parse_find_item`] reads the response into typed
//! [`Item`]s; properties a server omits stay `None`, unknown elements are
//! skipped.

use crate::EwsError;
use crate::request::{SERVER_VERSION, envelope, escape};
use crate::response::{ResponseMessage, parse_messages};
use crate::xml::{Node, Ns, Reader, attr};

/// A FindItem request for one page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindItemRequest {
    /// A distinguished folder id: `voicemail` or `inbox`.
    pub folder: &'static str,
    /// Items to skip.
    pub offset: u32,
    /// Page size (1–1000).
    pub max_entries: u32,
    /// `RequestServerVersion`.
    pub server_version: &'static str,
}

impl FindItemRequest {
    /// The first page of `folder` with the given page size.
    pub fn first_page(folder: &'static str, max_entries: u32) -> Self {
        FindItemRequest { folder, offset: 0, max_entries: max_entries.clamp(1, 1000), server_version: SERVER_VERSION }
    }

    /// The SOAP envelope.
    pub fn to_xml(&self) -> String {
        envelope(
            self.server_version,
            &format!(
                r#"<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:ItemClass"/><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:Importance"/><t:FieldURI FieldURI="item:HasAttachments"/><t:FieldURI FieldURI="message:From"/><t:FieldURI FieldURI="message:IsRead"/><t:ExtendedFieldURI PropertyTag="0x6801" PropertyType="Integer"/><t:ExtendedFieldURI PropertyTag="0x6802" PropertyType="String"/><t:ExtendedFieldURI PropertyTag="0x6803" PropertyType="String"/><t:ExtendedFieldURI PropertyTag="0x6805" PropertyType="String"/><t:ExtendedFieldURI PropertyTag="0x6806" PropertyType="String"/></t:AdditionalProperties></m:ItemShape><m:IndexedPageItemView MaxEntriesReturned="{max}" Offset="{offset}" BasePoint="Beginning"/><m:ParentFolderIds><t:DistinguishedFolderId Id="{folder}"/></m:ParentFolderIds></m:FindItem>"#,
                max = self.max_entries,
                offset = self.offset,
                folder = self.folder,
            ),
        )
    }

    /// The request for the page after `page`, or `None` when `page` was the last.
    pub fn next(&self, page: &FindItemPage) -> Option<FindItemRequest> {
        if page.includes_last_item_in_range {
            return None;
        }
        let offset = page.indexed_paging_offset.unwrap_or(self.offset + page.items.len() as u32);
        (offset > self.offset).then(|| FindItemRequest { offset, ..self.clone() })
    }
}

/// An item's id and change key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemId {
    /// `Id`.
    pub id: String,
    /// `ChangeKey` (needed to update the item).
    pub change_key: String,
}

/// A sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name.
    pub name: Option<String>,
    /// E-mail address (or a phone number for UM senders).
    pub email: Option<String>,
}

/// The MS-OXOUM properties of a voicemail or missed-call item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UmProperties {
    /// 0x6801 PidTagVoiceMessageDuration, seconds.
    pub duration_secs: Option<u32>,
    /// 0x6802 PidTagSenderTelephoneNumber.
    pub caller_number: Option<String>,
    /// 0x6803 PidTagVoiceMessageSenderName.
    pub caller_name: Option<String>,
    /// 0x6805 PidTagVoiceMessageAttachmentOrder (`;`-separated, newest first).
    pub attachment_order: Option<String>,
    /// 0x6806 PidTagCallId.
    pub call_id: Option<String>,
}

/// An attachment's metadata (GetItem); the content comes with GetAttachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attachment {
    /// `AttachmentId`.
    pub id: String,
    /// `Name` (the voicemail's audio file name, matched against 0x6805).
    pub name: Option<String>,
    /// `ContentType` (`audio/wav`, `audio/mp3`, …).
    pub content_type: Option<String>,
    /// `Size` in bytes.
    pub size: Option<u64>,
}

/// One item of a FindItem page or a GetItem response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    /// The element it came in (`Message`, `Item`, …).
    pub element: std::borrow::Cow<'static, str>,
    /// Id and change key.
    pub id: ItemId,
    /// `ItemClass` (the common classes are not allocated).
    pub item_class: Option<std::borrow::Cow<'static, str>>,
    /// `Subject`.
    pub subject: Option<String>,
    /// `DateTimeReceived` as written (ISO 8601).
    pub date_time_received: Option<String>,
    /// `Importance` (`Low`, `Normal`, `High`).
    pub importance: Option<std::borrow::Cow<'static, str>>,
    /// `HasAttachments`.
    pub has_attachments: Option<bool>,
    /// `IsRead`.
    pub is_read: Option<bool>,
    /// `From`.
    pub from: Option<Mailbox>,
    /// The UM properties.
    pub um: UmProperties,
    /// `InternetMessageHeaders` (GetItem): name and value, in order; where a
    /// PBX copied the call's SIP headers (History-Info, Reason, Call-ID).
    pub headers: Vec<(String, String)>,
    /// `Attachments` metadata (GetItem).
    pub attachments: Vec<Attachment>,
    /// `TextBody` (GetItem), cut to [`TEXT_BODY_LIMIT`] characters: where Unified
    /// Messaging writes a voicemail's transcription preview.
    pub text_body: Option<String>,
}

/// How much of a text body is kept (a preview, not the mail).
pub const TEXT_BODY_LIMIT: usize = 2000;

/// One page of results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindItemPage {
    pub items: Vec<Item>,
    /// `IndexedPagingOffset`: where the next page starts.
    pub indexed_paging_offset: Option<u32>,
    /// `TotalItemsInView`.
    pub total_items_in_view: Option<u32>,
    /// `IncludesLastItemInRange`.
    pub includes_last_item_in_range: bool,
}

pub(crate) fn bool_text(s: &str) -> Option<bool> {
    match s.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// Parses a FindItem response. A SOAP fault is [`EwsError::Fault`]; per-message
/// errors are data in each [`ResponseMessage`].
pub fn parse_find_item(bytes: &[u8]) -> Result<Vec<ResponseMessage<FindItemPage>>, EwsError> {
    parse_messages(bytes, b"FindItemResponseMessage", |r, tag, page: &mut FindItemPage| {
        if tag.local_name().as_ref() != b"RootFolder" {
            return Ok(false);
        }
        let num = |n: &[u8]| attr(tag, n).and_then(|v| v.trim().parse::<u32>().ok());
        page.indexed_paging_offset = num(b"IndexedPagingOffset");
        page.total_items_in_view = num(b"TotalItemsInView");
        page.includes_last_item_in_range =
            attr(tag, b"IncludesLastItemInRange").as_deref().and_then(bool_text).unwrap_or(true);
        // one allocation for the page's items, not a doubling per thousand
        page.items.reserve(page.total_items_in_view.unwrap_or(0).min(1000) as usize);
        read_root_folder(r, page)?;
        Ok(true)
    })
}

fn read_root_folder(r: &mut Reader<'_>, page: &mut FindItemPage) -> Result<(), EwsError> {
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"Items" => read_items(r, &mut page.items)?,
            Node::Start { .. } => r.skip()?,
            Node::End => return Ok(()),
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside RootFolder".into())),
        }
    }
}

pub(crate) fn read_item(r: &mut Reader<'_>, element: std::borrow::Cow<'static, str>) -> Result<Item, EwsError> {
    let mut item = Item { element, ..Item::default() };
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } => match tag.local_name().as_ref() {
                b"ItemId" => {
                    item.id = item_id(&tag);
                    r.skip()?;
                }
                b"ItemClass" => item.item_class = Some(r.text_map(|t| interned(t.trim()))?),
                b"Subject" => item.subject = Some(r.text()?),
                b"TextBody" => item.text_body = Some(r.text_map(|t| t.trim().chars().take(TEXT_BODY_LIMIT).collect())?),
                b"DateTimeReceived" => item.date_time_received = Some(r.text_trim()?),
                b"Importance" => item.importance = Some(r.text_map(|t| interned(t.trim()))?),
                b"HasAttachments" => item.has_attachments = r.text_map(bool_text)?,
                b"IsRead" => item.is_read = r.text_map(bool_text)?,
                b"From" => item.from = Some(read_from(r)?),
                b"ExtendedProperty" => read_extended(r, &mut item.um)?,
                b"InternetMessageHeaders" => loop {
                    match r.next()? {
                        Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"InternetMessageHeader" => {
                            let name = attr(&tag, b"HeaderName").unwrap_or_default();
                            item.headers.push((name, r.text()?));
                        }
                        Node::Start { .. } => r.skip()?,
                        Node::End => break,
                        Node::Text(_) => {}
                        Node::Eof => {
                            return Err(EwsError::Malformed("document ends inside InternetMessageHeaders".into()));
                        }
                    }
                },
                b"Attachments" => loop {
                    match r.next()? {
                        Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"FileAttachment" => {
                            item.attachments.push(read_attachment(r)?)
                        }
                        Node::Start { .. } => r.skip()?,
                        Node::End => break,
                        Node::Text(_) => {}
                        Node::Eof => return Err(EwsError::Malformed("document ends inside Attachments".into())),
                    }
                },
                _ => r.skip()?,
            },
            Node::Start { .. } => r.skip()?,
            Node::End => return Ok(item),
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside an item".into())),
        }
    }
}

/// Values that repeat in every item, shared instead of allocated.
const INTERNED: &[&str] = &[
    "IPM.Note.Microsoft.Voicemail.UM.CA",
    "IPM.Note.Microsoft.Voicemail.UM",
    "IPM.Note.Microsoft.Missed.Voice",
    "IPM.Note",
    "Normal",
    "High",
    "Low",
];

fn interned(s: &str) -> std::borrow::Cow<'static, str> {
    match INTERNED.iter().find(|i| **i == s) {
        Some(i) => std::borrow::Cow::Borrowed(i),
        None => std::borrow::Cow::Owned(s.to_string()),
    }
}

/// The item element's name, without allocating for the usual ones.
fn element_name(name: &[u8]) -> std::borrow::Cow<'static, str> {
    match name {
        b"Message" => "Message".into(),
        b"Item" => "Item".into(),
        other => String::from_utf8_lossy(other).into_owned().into(),
    }
}

/// `Id` and `ChangeKey` in one pass over the attributes.
pub(crate) fn item_id(tag: &quick_xml::events::BytesStart<'_>) -> ItemId {
    let mut id = ItemId::default();
    for a in tag.attributes().with_checks(false).flatten() {
        let slot = match a.key.local_name().as_ref() {
            b"Id" => &mut id.id,
            b"ChangeKey" => &mut id.change_key,
            _ => continue,
        };
        *slot = a
            .unescape_value()
            .map(|v| v.into_owned())
            .unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned());
    }
    id
}

fn read_from(r: &mut Reader<'_>) -> Result<Mailbox, EwsError> {
    let mut mailbox = Mailbox::default();
    let mut depth = 0usize;
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"Name" => mailbox.name = Some(r.text()?),
            Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"EmailAddress" => {
                mailbox.email = Some(r.text_trim()?)
            }
            Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"Mailbox" => depth += 1,
            Node::Start { .. } => r.skip()?,
            Node::End if depth == 0 => return Ok(mailbox),
            Node::End => depth -= 1,
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside From".into())),
        }
    }
}

fn read_extended(r: &mut Reader<'_>, um: &mut UmProperties) -> Result<(), EwsError> {
    // which UM property (by the low byte of 0x68xx), known before its Value (schema order)
    let mut which: Option<u8> = None;
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"ExtendedFieldURI" => {
                which = tag
                    .attributes()
                    .with_checks(false)
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == b"PropertyTag")
                    .and_then(|a| um_tag(&a.value));
                r.skip()?;
            }
            Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"Value" => match which {
                Some(0x01) => um.duration_secs = r.text_map(|t| t.trim().parse().ok())?,
                Some(0x02) => um.caller_number = Some(r.text_trim()?),
                Some(0x03) => um.caller_name = Some(r.text()?),
                Some(0x05) => um.attachment_order = Some(r.text()?),
                Some(0x06) => um.call_id = Some(r.text_trim()?),
                _ => r.skip()?,
            },
            Node::Start { .. } => r.skip()?,
            Node::End => return Ok(()),
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside ExtendedProperty".into())),
        }
    }
}

/// `0x6801`…`0x6806` (any case, or decimal 26625…26630) → the low byte.
fn um_tag(v: &[u8]) -> Option<u8> {
    let v = v.trim_ascii();
    let n = match v {
        [b'0', b'x' | b'X', hex @ ..] => u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?,
        dec => std::str::from_utf8(dec).ok()?.parse().ok()?,
    };
    (0x6801..=0x6806).contains(&n).then_some((n & 0xff) as u8)
}

fn read_attachment(r: &mut Reader<'_>) -> Result<Attachment, EwsError> {
    let mut a = Attachment::default();
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } => match tag.local_name().as_ref() {
                b"AttachmentId" => {
                    a.id = attr(&tag, b"Id").unwrap_or_default();
                    r.skip()?;
                }
                b"Name" => a.name = Some(r.text()?),
                b"ContentType" => a.content_type = Some(r.text_trim()?),
                b"Size" => a.size = r.text_map(|t| t.trim().parse().ok())?,
                _ => r.skip()?,
            },
            Node::Start { .. } => r.skip()?,
            Node::End => return Ok(a),
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside FileAttachment".into())),
        }
    }
}

/// A GetItem request for the properties Lamplighter reads of voicemail and
/// missed-call items, including internet headers and attachment metadata.
/// See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getitem-operation-email-message>.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetItemRequest {
    /// The items (1 or more).
    pub ids: Vec<ItemId>,
    /// `RequestServerVersion`.
    pub server_version: &'static str,
}

impl GetItemRequest {
    /// The SOAP envelope.
    pub fn to_xml(&self) -> String {
        let ids: String = self
            .ids
            .iter()
            .map(|i| {
                if i.change_key.is_empty() {
                    format!(r#"<t:ItemId Id="{}"/>"#, escape(&i.id))
                } else {
                    format!(r#"<t:ItemId Id="{}" ChangeKey="{}"/>"#, escape(&i.id), escape(&i.change_key))
                }
            })
            .collect();
        envelope(
            self.server_version,
            &format!(
                r#"<m:GetItem><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape><t:AdditionalProperties><t:FieldURI FieldURI="item:ItemClass"/><t:FieldURI FieldURI="item:Subject"/><t:FieldURI FieldURI="item:DateTimeReceived"/><t:FieldURI FieldURI="item:Importance"/><t:FieldURI FieldURI="item:InternetMessageHeaders"/><t:FieldURI FieldURI="item:Attachments"/><t:FieldURI FieldURI="item:TextBody"/><t:FieldURI FieldURI="message:From"/><t:FieldURI FieldURI="message:IsRead"/><t:ExtendedFieldURI PropertyTag="0x6801" PropertyType="Integer"/><t:ExtendedFieldURI PropertyTag="0x6802" PropertyType="String"/><t:ExtendedFieldURI PropertyTag="0x6803" PropertyType="String"/><t:ExtendedFieldURI PropertyTag="0x6805" PropertyType="String"/><t:ExtendedFieldURI PropertyTag="0x6806" PropertyType="String"/></t:AdditionalProperties></m:ItemShape><m:ItemIds>{ids}</m:ItemIds></m:GetItem>"#
            ),
        )
    }
}

/// Parses a GetItem response: one response message per requested item.
pub fn parse_get_item(bytes: &[u8]) -> Result<Vec<ResponseMessage<Vec<Item>>>, EwsError> {
    parse_messages(bytes, b"GetItemResponseMessage", |r, tag, items: &mut Vec<Item>| {
        if tag.local_name().as_ref() != b"Items" {
            return Ok(false);
        }
        read_items(r, items)?;
        Ok(true)
    })
}

/// Reads the items in an `Items` (or `Create`/`Update`) container until its end.
pub(crate) fn read_items(r: &mut Reader<'_>, items: &mut Vec<Item>) -> Result<(), EwsError> {
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } => items.push(read_item(r, element_name(tag.local_name().as_ref()))?),
            Node::Start { .. } => r.skip()?,
            Node::End => return Ok(()),
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside Items".into())),
        }
    }
}
