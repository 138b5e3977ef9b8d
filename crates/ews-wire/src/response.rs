//! What every EWS response carries: the response class and code of each
//! response message, and SOAP faults (HTTP 500) with their throttling
//! back-off.

use crate::EwsError;
use crate::xml::{Node, Ns, Reader, attr};
use std::time::Duration;

/// `ResponseClass` of a response message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseClass {
    /// It worked.
    Success,
    /// It worked, with a warning.
    Warning,
    /// It failed; see the code.
    Error,
}

/// EWS response codes Lamplighter reacts to; every other code is kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseCode {
    /// `NoError`.
    NoError,
    /// `ErrorServerBusy`: throttled; wait `BackOffMilliseconds`.
    ServerBusy,
    /// `ErrorSubscriptionNotFound`: subscribe again and resync.
    SubscriptionNotFound,
    /// `ErrorExpiredSubscription`.
    ExpiredSubscription,
    /// `ErrorInvalidSubscription`.
    InvalidSubscription,
    /// `ErrorInvalidSyncStateData`: start the sync over.
    InvalidSyncStateData,
    /// `ErrorMissedNotificationEvents`: resync.
    MissedNotificationEvents,
    /// `ErrorItemNotFound`.
    ItemNotFound,
    /// `ErrorIrresolvableConflict`: the ChangeKey is stale.
    IrresolvableConflict,
    /// `ErrorSchemaValidation`: our request is invalid (a bug on our side).
    SchemaValidation,
    /// `ErrorAccessDenied`.
    AccessDenied,
    /// `ErrorTimeoutExpired`.
    TimeoutExpired,
    /// `ErrorInternalServerError`.
    InternalServerError,
    /// Any other code, kept.
    Other(String),
}

impl ResponseCode {
    /// From the text of a `ResponseCode` element.
    pub fn parse(s: &str) -> ResponseCode {
        match s.trim() {
            "NoError" => ResponseCode::NoError,
            "ErrorServerBusy" => ResponseCode::ServerBusy,
            "ErrorSubscriptionNotFound" => ResponseCode::SubscriptionNotFound,
            "ErrorExpiredSubscription" => ResponseCode::ExpiredSubscription,
            "ErrorInvalidSubscription" => ResponseCode::InvalidSubscription,
            "ErrorInvalidSyncStateData" => ResponseCode::InvalidSyncStateData,
            "ErrorMissedNotificationEvents" => ResponseCode::MissedNotificationEvents,
            "ErrorItemNotFound" => ResponseCode::ItemNotFound,
            "ErrorIrresolvableConflict" => ResponseCode::IrresolvableConflict,
            "ErrorSchemaValidation" => ResponseCode::SchemaValidation,
            "ErrorAccessDenied" => ResponseCode::AccessDenied,
            "ErrorTimeoutExpired" => ResponseCode::TimeoutExpired,
            "ErrorInternalServerError" => ResponseCode::InternalServerError,
            other => ResponseCode::Other(other.to_string()),
        }
    }

    /// The code as the server writes it (`ErrorServerBusy`).
    pub fn as_str(&self) -> &str {
        match self {
            ResponseCode::NoError => "NoError",
            ResponseCode::ServerBusy => "ErrorServerBusy",
            ResponseCode::SubscriptionNotFound => "ErrorSubscriptionNotFound",
            ResponseCode::ExpiredSubscription => "ErrorExpiredSubscription",
            ResponseCode::InvalidSubscription => "ErrorInvalidSubscription",
            ResponseCode::InvalidSyncStateData => "ErrorInvalidSyncStateData",
            ResponseCode::MissedNotificationEvents => "ErrorMissedNotificationEvents",
            ResponseCode::ItemNotFound => "ErrorItemNotFound",
            ResponseCode::IrresolvableConflict => "ErrorIrresolvableConflict",
            ResponseCode::SchemaValidation => "ErrorSchemaValidation",
            ResponseCode::AccessDenied => "ErrorAccessDenied",
            ResponseCode::TimeoutExpired => "ErrorTimeoutExpired",
            ResponseCode::InternalServerError => "ErrorInternalServerError",
            ResponseCode::Other(s) => s,
        }
    }
}

impl std::fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One response message: class, code, and the operation's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseMessage<T> {
    /// `ResponseClass`.
    pub class: ResponseClass,
    /// `ResponseCode`.
    pub code: ResponseCode,
    /// `MessageText`, if any.
    pub message: Option<String>,
    /// `MessageXml/Value[@Name=BackOffMilliseconds]`, if any.
    pub back_off: Option<Duration>,
    /// The payload (absent on errors).
    pub body: Option<T>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// `faultcode`, e.g. `a:ErrorServerBusy`.
    pub code: String,
    /// `faultstring`.
    pub message: String,
    /// The EWS response code in `detail`, if any.
    pub response_code: Option<ResponseCode>,
    /// The throttling back-off in `detail/MessageXml`, if any.
    pub back_off: Option<Duration>,
}

/// Reads `MessageXml`'s `Value Name="BackOffMilliseconds"` (the element was just opened).
pub(crate) fn read_message_xml(r: &mut Reader<'_>) -> Result<Option<Duration>, EwsError> {
    let mut back_off = None;
    let mut depth = 0usize;
    loop {
        match r.next()? {
            Node::Start { ns: Ns::T, tag } if tag.local_name().as_ref() == b"Value" => {
                let name = attr(&tag, b"Name");
                let text = r.text()?;
                if name.as_deref() == Some("BackOffMilliseconds") {
                    back_off = text.trim().parse::<u64>().ok().map(Duration::from_millis);
                }
            }
            Node::Start { .. } => depth += 1,
            Node::End if depth == 0 => return Ok(back_off),
            Node::End => depth -= 1,
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside MessageXml".into())),
        }
    }
}

/// Reads a `Fault` (the element was just opened).
pub(crate) fn read_fault(r: &mut Reader<'_>) -> Result<SoapFault, EwsError> {
    let mut fault = SoapFault { code: String::new(), message: String::new(), response_code: None, back_off: None };
    let mut depth = 0usize;
    loop {
        match r.next()? {
            Node::Start { ns, tag } => match (ns, tag.local_name().as_ref()) {
                (Ns::None, b"faultcode") | (Ns::Soap, b"faultcode") => fault.code = r.text_trim()?,
                (Ns::None, b"faultstring") | (Ns::Soap, b"faultstring") => fault.message = r.text_trim()?,
                (Ns::E, b"ResponseCode") => fault.response_code = Some(r.text_map(ResponseCode::parse)?),
                (Ns::T, b"MessageXml") => fault.back_off = read_message_xml(r)?,
                _ => depth += 1,
            },
            Node::End if depth == 0 => return Ok(fault),
            Node::End => depth -= 1,
            Node::Text(_) => {}
            Node::Eof => return Err(EwsError::Malformed("document ends inside Fault".into())),
        }
    }
}

/// Walks a response envelope: a SOAP fault becomes [`EwsError::Fault`]; each
/// `<m:{message}>` becomes a [`ResponseMessage`] whose class, code, text and
/// back-off are read here, and whose payload elements (in the messages
/// namespace) are handed to `payload`, which returns `false` for elements it
/// does not know (they are skipped).
pub(crate) fn parse_messages<T: Default>(
    bytes: &[u8],
    message: &[u8],
    mut payload: impl FnMut(&mut Reader<'_>, &quick_xml::events::BytesStart<'_>, &mut T) -> Result<bool, EwsError>,
) -> Result<Vec<ResponseMessage<T>>, EwsError> {
    let mut r = Reader::new(bytes)?;
    let mut out = Vec::new();
    let mut saw_envelope = false;
    loop {
        match r.next()? {
            Node::Start { ns, tag } => match (ns, tag.local_name().as_ref()) {
                (Ns::Soap, b"Envelope") => saw_envelope = true,
                (Ns::Soap, b"Header") => r.skip()?,
                (Ns::Soap, b"Body") | (Ns::M, b"ResponseMessages") => {}
                (Ns::Soap, b"Fault") => return Err(EwsError::Fault(Box::new(read_fault(&mut r)?))),
                (Ns::M, name) if name == message => {
                    let class = match attr(&tag, b"ResponseClass").as_deref() {
                        Some("Success") => ResponseClass::Success,
                        Some("Warning") => ResponseClass::Warning,
                        Some("Error") => ResponseClass::Error,
                        other => return Err(EwsError::Malformed(format!("ResponseClass {other:?}"))),
                    };
                    let mut msg = ResponseMessage {
                        class,
                        code: ResponseCode::Other(String::new()),
                        message: None,
                        back_off: None,
                        body: None,
                    };
                    let mut body = T::default();
                    let mut saw_code = false;
                    let mut saw_payload = false;
                    loop {
                        match r.next()? {
                            Node::Start { ns: Ns::M, tag } => match tag.local_name().as_ref() {
                                b"ResponseCode" => {
                                    msg.code = r.text_map(ResponseCode::parse)?;
                                    saw_code = true;
                                }
                                b"MessageText" => msg.message = Some(r.text_trim()?),
                                b"MessageXml" => msg.back_off = read_message_xml(&mut r)?,
                                b"DescriptiveLinkKey" => r.skip()?,
                                _ => {
                                    if payload(&mut r, &tag, &mut body)? {
                                        saw_payload = true;
                                    } else {
                                        r.skip()?;
                                    }
                                }
                            },
                            Node::Start { .. } => r.skip()?,
                            Node::End => break,
                            Node::Text(_) => {}
                            Node::Eof => {
                                return Err(EwsError::Malformed("document ends inside a response message".into()));
                            }
                        }
                    }
                    if !saw_code {
                        return Err(EwsError::Malformed("response message without ResponseCode".into()));
                    }
                    msg.body = saw_payload.then_some(body);
                    out.push(msg);
                }
                // the operation's response element (any name in the messages namespace) is a container
                (Ns::M, _) => {}
                _ => r.skip()?,
            },
            Node::End | Node::Text(_) => {}
            Node::Eof => break,
        }
    }
    if !saw_envelope {
        return Err(EwsError::Malformed("no SOAP Envelope".into()));
    }
    Ok(out)
}
