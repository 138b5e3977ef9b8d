//! GetStreamingEvents: one long HTTP response (chunked) that carries a
//! series of complete SOAP envelopes, back to back: keep-alives
//! (`ConnectionStatus OK`), notifications, and finally `Closed`.
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getstreamingevents-operation>.
//!
//! [`FrameSplitter`] is fed the body as the bytes arrive, with no regard to
//! HTTP chunk boundaries, and hands out each envelope as soon as its end tag
//! is in: it skips what lies between frames (whitespace, declarations,
//! comments), matches the root by local name `Envelope` with any prefix or
//! none, resumes its scan where it stopped (linear in the body), and refuses
//! a frame larger than its limit. [`parse_streaming_frame`] reads one
//! envelope into typed events, accepting `Notification` in the messages
//! namespace (what servers send) or the types namespace (what the schema
//! says).

use crate::request::{envelope, escape};
use crate::response::{ResponseMessage, parse_messages};
use crate::xml::{Node, Ns, Reader, attr};
use crate::{EwsError, ItemId};

/// Splits a streaming body into envelopes.
#[derive(Debug)]
pub struct FrameSplitter {
    buf: Vec<u8>,
    max_frame: usize,
    /// The root's qualified name while inside a frame, and where it started.
    root: Option<(Vec<u8>, usize)>,
    depth: usize,
    /// Where scanning resumes.
    pos: usize,
}

/// What the scanner found at a `<`.
enum Tag {
    /// More bytes are needed to decide.
    Incomplete,
    /// Something to step over, ending at this offset.
    Skip(usize),
    /// A start tag with this qualified name, ending at this offset, self-closing or not.
    Start(Vec<u8>, usize, bool),
    /// An end tag with this qualified name, ending at this offset.
    End(Vec<u8>, usize),
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn name_end(b: &[u8]) -> usize {
    b.iter().position(|c| c.is_ascii_whitespace() || *c == b'>' || *c == b'/').unwrap_or(b.len())
}

/// Classifies the markup starting at `b[0] == b'<'`.
fn tag_at(b: &[u8]) -> Result<Tag, EwsError> {
    if b.len() < 2 {
        return Ok(Tag::Incomplete);
    }
    let close = |from: &[u8], pat: &[u8], skip: usize| match find(from, pat) {
        Some(i) => Tag::Skip(skip + i + pat.len()),
        None => Tag::Incomplete,
    };
    Ok(match b[1] {
        b'?' => close(&b[2..], b"?>", 2),
        b'!' if b.starts_with(b"<!--") => close(&b[4..], b"-->", 4),
        b'!' if b.starts_with(b"<![CDATA[") => close(&b[9..], b"]]>", 9),
        b'!' if b.len() < 9 => Tag::Incomplete,
        b'!' => return Err(EwsError::Malformed("DTDs are not accepted in a streaming body".into())),
        b'/' => {
            let n = name_end(&b[2..]);
            match b[2..].iter().position(|c| *c == b'>') {
                Some(gt) => Tag::End(b[2..2 + n].to_vec(), 2 + gt + 1),
                None => Tag::Incomplete,
            }
        }
        _ => {
            // a start tag ends at the first '>' outside quoted attribute values
            let mut quote: Option<u8> = None;
            let mut end = None;
            for (i, c) in b.iter().enumerate().skip(1) {
                match (quote, *c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, b'"' | b'\'') => quote = Some(*c),
                    (None, b'>') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            match end {
                Some(i) => Tag::Start(b[1..1 + name_end(&b[1..])].to_vec(), i + 1, b[i - 1] == b'/'),
                None => Tag::Incomplete,
            }
        }
    })
}

fn local(qname: &[u8]) -> &[u8] {
    qname.rsplit(|c| *c == b':').next().unwrap_or(qname)
}

impl FrameSplitter {
    /// A splitter that refuses frames over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameSplitter { buf: Vec::new(), max_frame, root: None, depth: 0, pos: 0 }
    }

    /// Adds bytes; returns every envelope completed by them, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, EwsError> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            let Some(lt) = self.buf[self.pos..].iter().position(|c| *c == b'<') else {
                if self.root.is_none() {
                    // only text between frames: keep nothing but whitespace checks
                    if self.buf[self.pos..].iter().any(|c| !c.is_ascii_whitespace()) {
                        return Err(EwsError::Malformed("text outside an envelope in the streaming body".into()));
                    }
                    self.buf.clear();
                    self.pos = 0;
                }
                break;
            };
            let at = self.pos + lt;
            if self.root.is_none() && self.buf[self.pos..at].iter().any(|c| !c.is_ascii_whitespace()) {
                return Err(EwsError::Malformed("text outside an envelope in the streaming body".into()));
            }
            match tag_at(&self.buf[at..])? {
                Tag::Incomplete => {
                    self.pos = at;
                    break;
                }
                Tag::Skip(len) => self.pos = at + len,
                Tag::Start(name, len, self_closing) => {
                    match &self.root {
                        None => {
                            if local(&name) != b"Envelope" {
                                return Err(EwsError::Malformed(format!(
                                    "expected an Envelope in the streaming body, found <{}>",
                                    String::from_utf8_lossy(&name)
                                )));
                            }
                            self.root = Some((name, at));
                            self.depth = 1;
                        }
                        Some((root, _)) if *root == name && !self_closing => self.depth += 1,
                        Some(_) => {}
                    }
                    self.pos = at + len;
                }
                Tag::End(name, len) => {
                    self.pos = at + len;
                    if let Some((root, start)) = &self.root {
                        if *root == name {
                            self.depth -= 1;
                            if self.depth == 0 {
                                frames.push(self.buf[*start..self.pos].to_vec());
                                self.buf.drain(..self.pos);
                                self.pos = 0;
                                self.root = None;
                            }
                        }
                    } else {
                        return Err(EwsError::Malformed("end tag outside an envelope".into()));
                    }
                }
            }
        }
        let pending = match &self.root {
            Some((_, start)) => self.buf.len() - start,
            None => self.buf.len(),
        };
        if pending > self.max_frame {
            return Err(EwsError::TooLarge { size: pending, limit: self.max_frame });
        }
        Ok(frames)
    }

    /// Bytes held for an unfinished frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Whether the server keeps the stream open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Keep-alive or events; more frames follow.
    Ok,
    /// The server ends the stream (ConnectionTimeout, or an error).
    Closed,
}

/// What kind of change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `CreatedEvent`.
    Created,
    /// `DeletedEvent`.
    Deleted,
    /// `ModifiedEvent`.
    Modified,
    /// `MovedEvent`.
    Moved,
    /// `CopiedEvent`.
    Copied,
    /// `NewMailEvent`.
    NewMail,
    /// `StatusEvent` (heartbeat of pull subscriptions).
    Status,
    /// Any other event element, by local name.
    Other(String),
}

/// One notification event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// `TimeStamp`.
    pub timestamp: Option<String>,
    /// `ItemId`, for item events.
    pub item_id: Option<ItemId>,
    /// `FolderId`, for folder events.
    pub folder_id: Option<String>,
    /// `ParentFolderId`.
    pub parent_folder_id: Option<String>,
    /// `OldParentFolderId` (moves and copies).
    pub old_parent_folder_id: Option<String>,
    /// `UnreadCount` (folder modifications).
    pub unread_count: Option<u32>,
    /// `Watermark` (pull subscriptions).
    pub watermark: Option<String>,
}

/// The payload of a GetStreamingEvents response message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamingBody {
    /// `ConnectionStatus`, when the frame has one.
    pub connection_status: Option<ConnectionStatus>,
    /// Notifications: (subscription id, events).
    pub notifications: Vec<(String, Vec<Event>)>,
    /// `ErrorSubscriptionIds` of a failed message.
    pub error_subscription_ids: Vec<String>,
}

/// Parses one streaming envelope.
pub fn parse_streaming_frame(bytes: &[u8]) -> Result<Vec<ResponseMessage<StreamingBody>>, EwsError> {
    parse_messages(bytes, b"GetStreamingEventsResponseMessage", |r, tag, body: &mut StreamingBody| {
        match tag.local_name().as_ref() {
            b"ConnectionStatus" => {
                body.connection_status = match r.text()?.trim() {
                    "OK" => Some(ConnectionStatus::Ok),
                    "Closed" => Some(ConnectionStatus::Closed),
                    other => return Err(EwsError::Malformed(format!("ConnectionStatus {other:?}"))),
                }
            }
            b"Notifications" => loop {
                match r.next()? {
                    Node::Start { ns: Ns::M | Ns::T, tag } if tag.local_name().as_ref() == b"Notification" => {
                        let n = read_notification(r)?;
                        body.notifications.push((n.subscription_id, n.events))
                    }
                    Node::Start { .. } => r.skip()?,
                    Node::End => break,
                    Node::Text(_) => {}
                    Node::Eof => return Err(EwsError::Malformed("document ends inside Notifications".into())),
                }
            },
            b"ErrorSubscriptionIds" => loop {
                match r.next()? {
                    Node::Start { .. } => body.error_subscription_ids.push(r.text_trim()?),
                    Node::End => break,
                    Node::Text(_) => {}
                    Node::Eof => return Err(EwsError::Malformed("document ends inside ErrorSubscriptionIds".into())),
                }
            },
            _ => return Ok(false),
        }
        Ok(true)
    })
}

fn read_notification(r: &mut Reader<'_>) -> Result<PullNotification, EwsError> {
    let mut n = PullNotification::default();
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } => {
                let name = tag.local_name().as_ref().to_vec();
                match name.as_slice() {
                    b"SubscriptionId" => {
                        n.subscription_id = r.text_trim()?;
                        continue;
                    }
                    b"PreviousWatermark" => {
                        n.previous_watermark = Some(r.text_trim()?);
                        continue;
                    }
                    b"MoreEvents" => {
                        n.more_events = r.text_map(crate::find_item::bool_text)?.unwrap_or(false);
                        continue;
                    }
                    _ => {}
                }
                let kind = match name.as_slice() {
                    b"CreatedEvent" => EventKind::Created,
                    b"DeletedEvent" => EventKind::Deleted,
                    b"ModifiedEvent" => EventKind::Modified,
                    b"MovedEvent" => EventKind::Moved,
                    b"CopiedEvent" => EventKind::Copied,
                    b"NewMailEvent" => EventKind::NewMail,
                    b"StatusEvent" => EventKind::Status,
                    other => EventKind::Other(String::from_utf8_lossy(other).into_owned()),
                };
                n.events.push(read_event(r, kind)?);
            }
            Node::Start { .. } => r.skip()?,
            Node::End => return Ok(n),
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside Notification".into())),
        }
    }
}

fn read_event(r: &mut Reader<'_>, kind: EventKind) -> Result<Event, EwsError> {
    let mut e = Event {
        kind,
        timestamp: None,
        item_id: None,
        folder_id: None,
        parent_folder_id: None,
        old_parent_folder_id: None,
        unread_count: None,
        watermark: None,
    };
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } => match tag.local_name().as_ref() {
                b"TimeStamp" => e.timestamp = Some(r.text_trim()?),
                b"Watermark" => e.watermark = Some(r.text_trim()?),
                b"UnreadCount" => e.unread_count = r.text_map(|t| t.trim().parse().ok())?,
                b"ItemId" => {
                    e.item_id = Some(ItemId {
                        id: attr(&tag, b"Id").unwrap_or_default(),
                        change_key: attr(&tag, b"ChangeKey").unwrap_or_default(),
                    });
                    r.skip()?;
                }
                b"FolderId" => {
                    e.folder_id = attr(&tag, b"Id");
                    r.skip()?;
                }
                b"ParentFolderId" => {
                    e.parent_folder_id = attr(&tag, b"Id");
                    r.skip()?;
                }
                b"OldParentFolderId" => {
                    e.old_parent_folder_id = attr(&tag, b"Id");
                    r.skip()?;
                }
                _ => r.skip()?,
            },
            Node::Start { .. } => r.skip()?,
            Node::End => return Ok(e),
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside an event".into())),
        }
    }
}

/// Opens the stream of a streaming subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetStreamingEventsRequest {
    /// One subscription, or up to 200 of one server's mailboxes (a group).
    pub subscription_ids: Vec<String>,
    /// Minutes until the server closes the connection (1–30).
    pub connection_timeout_minutes: u8,
    /// `RequestServerVersion`.
    pub server_version: &'static str,
}

impl GetStreamingEventsRequest {
    /// The SOAP envelope.
    pub fn to_xml(&self) -> String {
        envelope(
            self.server_version,
            &format!(
                "<m:GetStreamingEvents><m:SubscriptionIds>{}</m:SubscriptionIds><m:ConnectionTimeout>{}</m:ConnectionTimeout></m:GetStreamingEvents>",
                self.subscription_ids
                    .iter()
                    .map(|id| format!("<t:SubscriptionId>{}</t:SubscriptionId>", escape(id)))
                    .collect::<String>(),
                self.connection_timeout_minutes.clamp(1, 30)
            ),
        )
    }
}

/// Polls a pull subscription from a watermark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetEventsRequest {
    pub subscription_id: String,
    /// The last watermark seen.
    pub watermark: String,
    /// `RequestServerVersion`.
    pub server_version: &'static str,
}

impl GetEventsRequest {
    /// The SOAP envelope.
    pub fn to_xml(&self) -> String {
        envelope(
            self.server_version,
            &format!(
                "<m:GetEvents><m:SubscriptionId>{}</m:SubscriptionId><m:Watermark>{}</m:Watermark></m:GetEvents>",
                escape(&self.subscription_id),
                escape(&self.watermark)
            ),
        )
    }
}

/// One notification of a pull subscription (GetEvents).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullNotification {
    /// `SubscriptionId`.
    pub subscription_id: String,
    /// `PreviousWatermark`.
    pub previous_watermark: Option<String>,
    /// `MoreEvents`: poll again at once.
    pub more_events: bool,
    /// The events, each with its watermark.
    pub events: Vec<Event>,
}

impl PullNotification {
    /// The watermark to poll from next: the last event's, else the previous one.
    pub fn next_watermark(&self) -> Option<&str> {
        self.events.iter().rev().find_map(|e| e.watermark.as_deref()).or(self.previous_watermark.as_deref())
    }
}

/// Parses a GetEvents response.
pub fn parse_get_events(bytes: &[u8]) -> Result<Vec<ResponseMessage<PullNotification>>, EwsError> {
    parse_messages(bytes, b"GetEventsResponseMessage", |r, tag, n: &mut PullNotification| {
        if tag.local_name().as_ref() != b"Notification" {
            return Ok(false);
        }
        *n = read_notification(r)?;
        Ok(true)
    })
}
