//! GetAttachment: a voicemail's audio, decoded from base64 as the response
//! arrives, so a recording is never held whole in memory.
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/getattachment-operation>.
//!
//! EWS has no range requests: the whole file comes base64-encoded in
//! `t:FileAttachment/t:Content`. [`AttachmentDecoder`] keeps the (small)
//! part of the envelope before `Content` and after it, and streams the
//! decoded bytes of `Content` out chunk by chunk. At the end, the kept head
//! and tail form a complete envelope with an empty `Content`, which is parsed
//! like any response for its class, code, name and content type; an error
//! response (no `Content`) goes the same way.

use crate::EwsError;
use crate::request::{envelope, escape};
use crate::response::{ResponseMessage, parse_messages};
use crate::xml::{Node, Ns, Reader};

/// A GetAttachment request for one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetAttachmentRequest {
    /// `AttachmentId`.
    pub id: String,
    /// `RequestServerVersion`.
    pub server_version: &'static str,
}

impl GetAttachmentRequest {
    /// The SOAP envelope.
    pub fn to_xml(&self) -> String {
        envelope(
            self.server_version,
            &format!(
                r#"<m:GetAttachment><m:AttachmentShape/><m:AttachmentIds><t:AttachmentId Id="{}"/></m:AttachmentIds></m:GetAttachment>"#,
                escape(&self.id)
            ),
        )
    }
}

/// What the response says of the attachment besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentMeta {
    /// `Name`.
    pub name: Option<String>,
    /// `ContentType`.
    pub content_type: Option<String>,
}

/// The largest envelope part we keep around the content (headers, errors).
const MAX_ENVELOPE: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Content,
    Tail,
}

/// Decodes a GetAttachment response incrementally.
#[derive(Debug)]
pub struct AttachmentDecoder {
    state: State,
    head: Vec<u8>,
    tail: Vec<u8>,
    /// Base64 characters not yet decoded (fewer than 4 between pushes).
    quad: Vec<u8>,
    padded: bool,
    decoded: u64,
}

impl Default for AttachmentDecoder {
    fn default() -> Self {
        Self::new()
    }
}

fn sextet(c: u8) -> Option<u8> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    })
}

impl AttachmentDecoder {
    /// A decoder at the start of a response body.
    pub fn new() -> Self {
        AttachmentDecoder {
            state: State::Head,
            head: Vec::new(),
            tail: Vec::new(),
            quad: Vec::new(),
            padded: false,
            decoded: 0,
        }
    }

    /// How many content bytes were decoded so far.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Feeds the next bytes of the body; returns the content bytes they decode to.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<u8>, EwsError> {
        let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 3);
        while !bytes.is_empty() {
            match self.state {
                State::Head => {
                    self.head.extend_from_slice(bytes);
                    bytes = &[];
                    if self.head.len() > MAX_ENVELOPE {
                        return Err(EwsError::TooLarge { size: self.head.len(), limit: MAX_ENVELOPE });
                    }
                    if let Some(start) = content_start(&self.head) {
                        // what follows the Content start tag is content (and maybe the tail)
                        let rest = self.head.split_off(start);
                        self.state = State::Content;
                        self.content(&rest, &mut out)?;
                    }
                }
                State::Content => {
                    let consumed = self.content(bytes, &mut out)?;
                    bytes = &bytes[consumed..];
                }
                State::Tail => {
                    self.tail.extend_from_slice(bytes);
                    bytes = &[];
                    if self.tail.len() > MAX_ENVELOPE {
                        return Err(EwsError::TooLarge { size: self.tail.len(), limit: MAX_ENVELOPE });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Decodes content from `bytes` until the content ends; returns how many bytes it took.
    fn content(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> Result<usize, EwsError> {
        for (i, &c) in bytes.iter().enumerate() {
            match c {
                b'<' => {
                    if !self.quad.is_empty() {
                        return Err(EwsError::Malformed("attachment content is not whole base64".into()));
                    }
                    self.state = State::Tail;
                    self.tail.extend_from_slice(&bytes[i..]);
                    return Ok(bytes.len());
                }
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'=' => {
                    self.quad.push(c);
                    self.padded = true;
                }
                _ => {
                    if self.padded || sextet(c).is_none() {
                        return Err(EwsError::Malformed(format!("attachment content: unexpected byte {c:#04x}")));
                    }
                    self.quad.push(c);
                }
            }
            if self.quad.len() == 4 {
                let q = &self.quad;
                let v: Vec<u8> = q.iter().take_while(|&&c| c != b'=').map(|&c| sextet(c).unwrap_or(0)).collect();
                let n = (u32::from(v.first().copied().unwrap_or(0)) << 18)
                    | (u32::from(v.get(1).copied().unwrap_or(0)) << 12)
                    | (u32::from(v.get(2).copied().unwrap_or(0)) << 6)
                    | u32::from(v.get(3).copied().unwrap_or(0));
                let full = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
                let take = match v.len() {
                    4 => 3,
                    3 => 2,
                    2 => 1,
                    _ => return Err(EwsError::Malformed("attachment content: bad base64 padding".into())),
                };
                out.extend_from_slice(&full[..take]);
                self.decoded += take as u64;
                self.quad.clear();
            }
        }
        Ok(bytes.len())
    }

    /// The body is complete: the response's class, code and attachment metadata.
    pub fn finish(self) -> Result<Vec<ResponseMessage<AttachmentMeta>>, EwsError> {
        if self.state == State::Content {
            return Err(EwsError::Malformed("response ends inside the attachment content".into()));
        }
        let mut doc = self.head;
        doc.extend_from_slice(&self.tail);
        parse_get_attachment(&doc)
    }
}

/// Where the content of the first `t:FileAttachment/t:Content` starts in `head`, once its start tag is complete.
fn content_start(head: &[u8]) -> Option<usize> {
    // cheap pre-check: the local name must be there
    if !head.windows(8).any(|w| w == b"Content>" || w == b"Content ") {
        return None;
    }
    let mut r = Reader::new(head).ok()?;
    let mut in_file = false;
    loop {
        match r.next() {
            Ok(Node::Start { ns: Ns::T, tag }) => match tag.local_name().as_ref() {
                b"FileAttachment" => in_file = true,
                b"Content" if in_file => {
                    if r.just_empty() {
                        return None;
                    }
                    return Some(r.position());
                }
                _ => {}
            },
            Ok(Node::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// Parses a whole GetAttachment response (the content itself is ignored here).
pub fn parse_get_attachment(bytes: &[u8]) -> Result<Vec<ResponseMessage<AttachmentMeta>>, EwsError> {
    parse_messages(bytes, b"GetAttachmentResponseMessage", |r, tag, meta: &mut AttachmentMeta| {
        if tag.local_name().as_ref() != b"Attachments" {
            return Ok(false);
        }
        loop {
            match r.next()? {
                Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"FileAttachment" => loop {
                    match r.next()? {
                        Node::Start { ns: Ns::T, tag } => match tag.local_name().as_ref() {
                            b"Name" => meta.name = Some(r.text()?),
                            b"ContentType" => meta.content_type = Some(r.text_trim()?),
                            _ => r.skip()?,
                        },
                        Node::Start { .. } => r.skip()?,
                        Node::End => break,
                        Node::Text(_) => {}
                        Node::Eof => return Err(EwsError::Malformed("document ends inside FileAttachment".into())),
                    }
                },
                Node::Start { .. } => r.skip()?,
                Node::End => return Ok(true),
                Node::Text(_) => {}
                Node::Eof => return Err(EwsError::Malformed("document ends inside Attachments".into())),
            }
        }
    })
}
