//! Namespace-aware XML reading for EWS, on quick-xml's `NsReader`.
//!
//! [`Reader`] yields [`Node`]s that carry the resolved namespace URI and the
//! local name of each element, so code matches `(NS_T, b"ItemClass")` and
//! never a prefix. Text is collected with XML's five predefined entities and
//! character references resolved; anything else (DTDs, custom entities) is
//! refused.

use crate::EwsError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// SOAP 1.1 envelope namespace.
pub const NS_SOAP: &[u8] = b"http://schemas.xmlsoap.org/soap/envelope/";
/// EWS messages namespace (`m:`).
pub const NS_M: &[u8] = b"http://schemas.microsoft.com/exchange/services/2006/messages";
/// EWS types namespace (`t:`).
pub const NS_T: &[u8] = b"http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS errors namespace (`e:`, in SOAP fault details).
pub const NS_E: &[u8] = b"http://schemas.microsoft.com/exchange/services/2006/errors";

/// The namespaces EWS uses, recognised once per element so matching
/// costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// No namespace.
    None,
    /// SOAP 1.1 envelope.
    Soap,
    /// EWS messages (`m:`).
    M,
    /// EWS types (`t:`).
    T,
    /// EWS errors (`e:`).
    E,
    /// Any other namespace.
    Other,
}

fn classify(ns: &[u8]) -> Ns {
    match ns {
        NS_SOAP => Ns::Soap,
        NS_M => Ns::M,
        NS_T => Ns::T,
        NS_E => Ns::E,
        _ => Ns::Other,
    }
}

/// One event of interest.
#[derive(Debug)]
pub enum Node<'a> {
    /// An element opens (an empty element is followed by its `End`).
    Start {
        /// Its namespace.
        ns: Ns,
        /// The raw start tag: its local name and attributes.
        tag: BytesStart<'a>,
    },
    /// An element closes.
    End,
    /// Text (entities resolved), borrowed from the input where possible;
    /// checked for UTF-8 only when read ([`Text::into_str`]), so text that
    /// is skipped costs nothing.
    Text(Text<'a>),
    /// End of input.
    Eof,
}

/// Raw text of a [`Node::Text`].
#[derive(Debug)]
pub struct Text<'a>(std::borrow::Cow<'a, [u8]>);

impl<'a> Text<'a> {
    /// The text, checked to be UTF-8.
    pub fn into_str(self) -> Result<std::borrow::Cow<'a, str>, EwsError> {
        Ok(match self.0 {
            std::borrow::Cow::Borrowed(b) => std::borrow::Cow::Borrowed(std::str::from_utf8(b).map_err(malformed)?),
            std::borrow::Cow::Owned(v) => std::borrow::Cow::Owned(String::from_utf8(v).map_err(malformed)?),
        })
    }
}

/// A namespace-resolving reader over a byte slice.
pub struct Reader<'a> {
    inner: NsReader<&'a [u8]>,
    pending_end: bool,
    /// The last namespace classified, by address and length: a document
    /// binds each namespace once, so most lookups end here without comparing
    /// the URI again.
    last_ns: (usize, usize, Ns),
}

fn malformed(e: impl std::fmt::Display) -> EwsError {
    EwsError::Malformed(e.to_string())
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, refusing more than [`crate::MAX_RESPONSE_BYTES`].
    pub fn new(bytes: &'a [u8]) -> Result<Self, EwsError> {
        if bytes.len() > crate::MAX_RESPONSE_BYTES {
            return Err(EwsError::TooLarge { size: bytes.len(), limit: crate::MAX_RESPONSE_BYTES });
        }
        let mut inner = NsReader::from_reader(bytes);
        inner.config_mut().trim_text(false);
        Ok(Reader { inner, pending_end: false, last_ns: (0, 0, Ns::None) })
    }

    /// The next node.
    #[expect(
        clippy::should_implement_trait,
        reason = "not an Iterator: every call can fail, and the end of input is an error, not None"
    )]
    pub fn next(&mut self) -> Result<Node<'a>, EwsError> {
        if self.pending_end {
            self.pending_end = false;
            return Ok(Node::End);
        }
        loop {
            // End tags need no resolution (the reader keeps the scopes
            // itself), so only start tags are resolved, on demand.
            let event = self.inner.read_event().map_err(malformed)?;
            return Ok(match event {
                Event::Start(tag) => Node::Start { ns: self.resolve(&tag)?, tag },
                Event::Empty(tag) => {
                    let ns = self.resolve(&tag)?;
                    self.pending_end = true;
                    Node::Start { ns, tag }
                }
                Event::End(_) => Node::End,
                Event::Text(t) => Node::Text(Text(t.into_inner())),
                Event::CData(t) => Node::Text(Text(t.into_inner())),
                Event::GeneralRef(r) => Node::Text(Text(std::borrow::Cow::Owned(resolve_entity(&r)?.into_bytes()))),
                Event::DocType(_) => return Err(EwsError::Malformed("DTDs are not accepted".into())),
                Event::Eof => Node::Eof,
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => continue,
            });
        }
    }

    fn resolve(&mut self, tag: &BytesStart<'_>) -> Result<Ns, EwsError> {
        let (res, _) = self.inner.resolve_element(tag.name());
        Ok(match res {
            ResolveResult::Bound(ns) => {
                let b = ns.as_ref();
                let key = (b.as_ptr() as usize, b.len());
                if key == (self.last_ns.0, self.last_ns.1) {
                    self.last_ns.2
                } else {
                    let c = classify(b);
                    self.last_ns = (key.0, key.1, c);
                    c
                }
            }
            ResolveResult::Unbound => Ns::None,
            ResolveResult::Unknown(p) => {
                return Err(EwsError::Malformed(format!(
                    "undeclared namespace prefix {}",
                    String::from_utf8_lossy(&p)
                )));
            }
        })
    }

    /// The byte offset just after the last node read.
    pub fn position(&self) -> usize {
        usize::try_from(self.inner.buffer_position()).unwrap_or(usize::MAX)
    }

    /// Whether the element just opened was an empty element (`<a/>`).
    pub fn just_empty(&self) -> bool {
        self.pending_end
    }

    /// The text content of the element just opened (its children's text
    /// concatenated), consuming up to its end.
    pub fn text(&mut self) -> Result<String, EwsError> {
        let mut depth = 0usize;
        let mut out = String::new();
        loop {
            match self.next()? {
                Node::Text(t) if out.is_empty() => out = t.into_str()?.into_owned(),
                Node::Text(t) => out.push_str(&t.into_str()?),
                Node::Start { .. } => depth += 1,
                Node::End if depth == 0 => return Ok(out),
                Node::End => depth -= 1,
                Node::Eof => return Err(EwsError::Malformed("document ends inside an element".into())),
            }
        }
    }

    /// [`Reader::text`] with surrounding whitespace removed, allocating once.
    pub fn text_trim(&mut self) -> Result<String, EwsError> {
        self.text_map(|s| s.trim().to_string())
    }

    /// Applies `f` to the text content of the element just opened, without
    /// copying it when it is one plain text node (the usual case).
    pub fn text_map<T>(&mut self, f: impl FnOnce(&str) -> T) -> Result<T, EwsError> {
        let first = match self.next()? {
            Node::End => return Ok(f("")),
            Node::Text(t) => t.into_str()?,
            Node::Start { .. } => {
                self.skip()?;
                let rest = self.text()?;
                return Ok(f(&rest));
            }
            Node::Eof => return Err(EwsError::Malformed("document ends inside an element".into())),
        };
        match self.next()? {
            Node::End => Ok(f(&first)),
            Node::Text(t) => {
                let mut all = first.into_owned();
                all.push_str(&t.into_str()?);
                all.push_str(&self.text()?);
                Ok(f(&all))
            }
            Node::Start { .. } => {
                self.skip()?;
                let mut all = first.into_owned();
                all.push_str(&self.text()?);
                Ok(f(&all))
            }
            Node::Eof => Err(EwsError::Malformed("document ends inside an element".into())),
        }
    }

    /// Skips the rest of the element just opened.
    pub fn skip(&mut self) -> Result<(), EwsError> {
        let mut depth = 0usize;
        loop {
            match self.next()? {
                Node::Start { .. } => depth += 1,
                Node::End if depth == 0 => return Ok(()),
                Node::End => depth -= 1,
                Node::Text(_) => {}
                Node::Eof => return Err(EwsError::Malformed("document ends inside an element".into())),
            }
        }
    }
}

fn resolve_entity(r: &[u8]) -> Result<String, EwsError> {
    Ok(match r {
        b"amp" => "&".into(),
        b"lt" => "<".into(),
        b"gt" => ">".into(),
        b"quot" => "\"".into(),
        b"apos" => "'".into(),
        [b'#', b'x', hex @ ..] | [b'#', b'X', hex @ ..] => {
            char_ref(std::str::from_utf8(hex).ok().and_then(|h| u32::from_str_radix(h, 16).ok()), r)?
        }
        [b'#', dec @ ..] => char_ref(std::str::from_utf8(dec).ok().and_then(|d| d.parse().ok()), r)?,
        other => return Err(EwsError::Malformed(format!("unknown entity &{};", String::from_utf8_lossy(other)))),
    })
}

fn char_ref(code: Option<u32>, raw: &[u8]) -> Result<String, EwsError> {
    code.and_then(char::from_u32)
        .map(String::from)
        .ok_or_else(|| EwsError::Malformed(format!("bad character reference &{};", String::from_utf8_lossy(raw))))
}

/// An attribute's unescaped value, by local name.
pub fn attr(tag: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    tag.attributes().with_checks(false).flatten().find(|a| a.key.local_name().as_ref() == name).map(|a| {
        a.unescape_value().map(|v| v.into_owned()).unwrap_or_else(|_| String::from_utf8_lossy(&a.value).into_owned())
    })
}
