//! SOAP for the simulator: incoming requests read into a small
//! namespace-aware tree (requests are small), and responses written the way
//! Exchange 2016 writes them: `s:` envelope, `h:ServerVersionInfo`, `m:`/`t:`
//! prefixes, error messages with `MessageText`, `ResponseCode` and
//! `DescriptiveLinkKey`, SOAP faults with `e:ResponseCode` details, and
//! streaming frames with an unprefixed `Envelope` and `m:Notification`
//! (as the captured Exchange 2016 frames have it).

use crate::store::{SimEvent, StoredItem, SyncChange};
use base64::Engine as _;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;

/// SOAP 1.1 envelope namespace.
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS messages namespace.
pub const NS_M: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// EWS types namespace.
pub const NS_T: &str = "http://schemas.microsoft.com/exchange/services/2006/types";

/// An element of a request.
#[derive(Debug, Clone, Default)]
pub struct El {
    /// Namespace URI.
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Attributes by local name.
    pub attrs: Vec<(String, String)>,
    /// Child elements.
    pub children: Vec<El>,
    /// Text content.
    pub text: String,
}

impl El {
    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with this local name.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every descendant with this local name, depth first.
    pub fn descendants<'a>(&'a self, name: &'a str, out: &mut Vec<&'a El>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.descendants(name, out);
        }
    }

    /// The text of a path of children.
    pub fn path_text(&self, path: &[&str]) -> Option<&str> {
        let mut e = self;
        for p in path {
            e = e.child(p)?;
        }
        Some(e.text.trim())
    }
}

/// Parses a request document into a tree (no DTDs, at most 4 MiB).
pub fn parse(bytes: &[u8]) -> Result<El, String> {
    if bytes.len() > 4 << 20 {
        return Err("request too large".into());
    }
    let mut r = quick_xml::NsReader::from_reader(bytes);
    let mut stack: Vec<El> = vec![El::default()];
    let mut buf = Vec::new();
    loop {
        let (res, ev) = r.read_resolved_event_into(&mut buf).map_err(|e| e.to_string())?;
        let ns = match res {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(p) => return Err(format!("undeclared prefix {}", String::from_utf8_lossy(&p))),
        };
        match ev {
            ev @ (Event::Start(_) | Event::Empty(_)) => {
                let (empty, t) = match ev {
                    Event::Empty(t) => (true, t),
                    Event::Start(t) => (false, t),
                    _ => unreachable!("matched above"),
                };
                let el = El {
                    ns,
                    name: String::from_utf8_lossy(t.local_name().as_ref()).into_owned(),
                    attrs: t
                        .attributes()
                        .flatten()
                        .filter(|a| !a.key.as_ref().starts_with(b"xmlns"))
                        .map(|a| {
                            (
                                String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                                a.unescape_value().map(|v| v.into_owned()).unwrap_or_default(),
                            )
                        })
                        .collect(),
                    ..El::default()
                };
                if empty {
                    stack.last_mut().ok_or("unbalanced")?.children.push(el);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or("unbalanced")?;
                stack.last_mut().ok_or("unbalanced end tag")?.children.push(el);
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| e.to_string())?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&s);
                }
            }
            Event::GeneralRef(g) => {
                let s = match g.as_ref() {
                    b"amp" => "&",
                    b"lt" => "<",
                    b"gt" => ">",
                    b"quot" => "\"",
                    b"apos" => "'",
                    _ => return Err("unknown entity".into()),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(s);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::DocType(_) => return Err("DTDs are not accepted".into()),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let root = stack.pop().ok_or("empty")?;
    if !stack.is_empty() {
        return Err("unclosed elements".into());
    }
    root.children.into_iter().next().ok_or_else(|| "no root element".into())
}

/// `s` escaped for XML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            c => o.push(c),
        }
    }
    o
}

const SERVER_VERSION_INFO: &str = r#"<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" xmlns="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/>"#;

/// A response envelope for `op` (e.g. `FindItem`) around its response messages.
pub fn response(op: &str, messages: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>{SERVER_VERSION_INFO}</s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><m:{op}Response xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>{messages}</m:ResponseMessages></m:{op}Response></s:Body></s:Envelope>"#
    )
}

/// A successful response message of `op` with its payload.
pub fn success(op: &str, payload: &str) -> String {
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>{payload}</m:{op}ResponseMessage>"#
    )
}

/// An error response message.
pub fn error(op: &str, code: &str, text: &str) -> String {
    error_with(op, code, text, "")
}

/// An error response message with the (empty) payload elements the schema
/// requires, e.g. `<m:Items/>` for GetItem, as Exchange sends them.
pub fn error_with(op: &str, code: &str, text: &str, empty_payload: &str) -> String {
    format!(
        r#"<m:{op}ResponseMessage ResponseClass="Error"><m:MessageText>{}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{empty_payload}</m:{op}ResponseMessage>"#,
        esc(text)
    )
}

/// A SOAP fault as Exchange sends it (HTTP 500), with an optional back-off.
pub fn fault(code: &str, text: &str, back_off_ms: Option<u64>, extra_detail: &str) -> String {
    let back_off = back_off_ms
        .map(|ms| format!(r#"<t:MessageXml xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><t:Value Name="BackOffMilliseconds">{ms}</t:Value></t:MessageXml>"#))
        .unwrap_or_default();
    let text = esc(text);
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode xmlns:a="http://schemas.microsoft.com/exchange/services/2006/types">a:{code}</faultcode><faultstring xml:lang="en-US">{text}</faultstring><detail><e:ResponseCode xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{code}</e:ResponseCode><e:Message xmlns:e="http://schemas.microsoft.com/exchange/services/2006/errors">{text}</e:Message>{back_off}{extra_detail}</detail></s:Fault></s:Body></s:Envelope>"#
    )
}

/// What of an item a request asked for (`ItemShape`).
#[derive(Debug, Clone, Default)]
pub struct Shape {
    /// `BaseShape` is `Default` or `AllProperties` (then the usual fields come too).
    pub base_rich: bool,
    /// `FieldURI`s.
    pub fields: Vec<String>,
    /// Extended properties: (tag lowercase, type).
    pub extended: Vec<(String, String)>,
}

impl Shape {
    /// Reads `ItemShape` (absent: IdOnly).
    pub fn from(shape: Option<&El>) -> Shape {
        let Some(shape) = shape else { return Shape::default() };
        let base = shape.path_text(&["BaseShape"]).unwrap_or("IdOnly");
        let mut s = Shape { base_rich: base != "IdOnly", ..Shape::default() };
        if let Some(add) = shape.child("AdditionalProperties") {
            for c in &add.children {
                match c.name.as_str() {
                    "FieldURI" => s.fields.extend(c.attr("FieldURI").map(str::to_string)),
                    "ExtendedFieldURI" => {
                        if let (Some(tag), Some(ty)) = (c.attr("PropertyTag"), c.attr("PropertyType")) {
                            s.extended.push((normalize_tag(tag), ty.to_string()));
                        }
                    }
                    _ => {}
                }
            }
        }
        s
    }

    fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
            || (self.base_rich
                && matches!(
                    field,
                    "item:ItemClass"
                        | "item:Subject"
                        | "item:DateTimeReceived"
                        | "item:Importance"
                        | "item:HasAttachments"
                        | "message:From"
                        | "message:IsRead"
                ))
    }
}

fn normalize_tag(tag: &str) -> String {
    let t = tag.trim().to_ascii_lowercase();
    match t.strip_prefix("0x").and_then(|h| u32::from_str_radix(h, 16).ok()).or_else(|| t.parse().ok()) {
        Some(n) => format!("0x{n:04x}"),
        None => t,
    }
}

/// An item as `t:Message` with what `shape` asked for, in schema order.
pub fn item(i: &StoredItem, shape: &Shape) -> String {
    let d = &i.data;
    let mut o = format!(r#"<t:Message><t:ItemId Id="{}" ChangeKey="{}"/>"#, esc(&i.id), esc(&i.change_key()));
    if shape.has("item:ItemClass") {
        o += &format!("<t:ItemClass>{}</t:ItemClass>", esc(&d.item_class));
    }
    if shape.has("item:Subject") {
        o += &format!("<t:Subject>{}</t:Subject>", esc(&d.subject));
    }
    if shape.has("item:Attachments") && !i.attachments.is_empty() {
        o += "<t:Attachments>";
        for a in &i.attachments {
            o += &format!(
                r#"<t:FileAttachment><t:AttachmentId Id="{}"/><t:Name>{}</t:Name><t:ContentType>{}</t:ContentType><t:Size>{}</t:Size><t:IsInline>false</t:IsInline><t:IsContactPhoto>false</t:IsContactPhoto></t:FileAttachment>"#,
                esc(&a.id),
                esc(&a.name),
                esc(&a.content_type),
                a.data.len()
            );
        }
        o += "</t:Attachments>";
    }
    if shape.has("item:DateTimeReceived") {
        o += &format!("<t:DateTimeReceived>{}</t:DateTimeReceived>", esc(&i.received));
    }
    if shape.has("item:Importance") {
        o += &format!("<t:Importance>{}</t:Importance>", esc(&d.importance));
    }
    if shape.has("item:InternetMessageHeaders") && !d.headers.is_empty() {
        o += "<t:InternetMessageHeaders>";
        for (k, v) in &d.headers {
            o += &format!(r#"<t:InternetMessageHeader HeaderName="{}">{}</t:InternetMessageHeader>"#, esc(k), esc(v));
        }
        o += "</t:InternetMessageHeaders>";
    }
    if shape.has("item:HasAttachments") {
        o += &format!("<t:HasAttachments>{}</t:HasAttachments>", !i.attachments.is_empty());
    }
    for (tag, ty) in &shape.extended {
        let value = match tag.as_str() {
            "0x6801" => d.um.duration_secs.map(|v| v.to_string()),
            "0x6802" => d.um.caller_number.clone(),
            "0x6803" => d.um.caller_name.clone(),
            "0x6805" => d.um.attachment_order.clone(),
            "0x6806" => d.um.call_id.clone(),
            _ => None,
        };
        if let Some(v) = value {
            o += &format!(
                r#"<t:ExtendedProperty><t:ExtendedFieldURI PropertyTag="{tag}" PropertyType="{ty}"/><t:Value>{}</t:Value></t:ExtendedProperty>"#,
                esc(&v)
            );
        }
    }
    if shape.has("item:TextBody")
        && let Some(t) = &d.body_text
    {
        o += &format!(r#"<t:TextBody BodyType="Text">{}</t:TextBody>"#, esc(t));
    }
    if shape.has("message:From") && (d.from_name.is_some() || d.from_email.is_some()) {
        o += "<t:From><t:Mailbox>";
        if let Some(n) = &d.from_name {
            o += &format!("<t:Name>{}</t:Name>", esc(n));
        }
        if let Some(e) = &d.from_email {
            o += &format!("<t:EmailAddress>{}</t:EmailAddress><t:RoutingType>SMTP</t:RoutingType>", esc(e));
        }
        o += "</t:Mailbox></t:From>";
    }
    if shape.has("message:IsRead") {
        o += &format!("<t:IsRead>{}</t:IsRead>", d.is_read);
    }
    o + "</t:Message>"
}

/// The `m:Changes` of a sync page.
pub fn changes(changes: &[SyncChange], shape: &Shape) -> String {
    let mut o = String::from("<m:Changes>");
    for c in changes {
        match c {
            SyncChange::Create(i) => o += &format!("<t:Create>{}</t:Create>", item(i, shape)),
            SyncChange::Update(i) => o += &format!("<t:Update>{}</t:Update>", item(i, shape)),
            SyncChange::ReadFlag(i) => {
                o += &format!(
                    r#"<t:ReadFlagChange><t:ItemId Id="{}" ChangeKey="{}"/><t:IsRead>{}</t:IsRead></t:ReadFlagChange>"#,
                    esc(&i.id),
                    esc(&i.change_key()),
                    i.data.is_read
                )
            }
            SyncChange::Delete(id, ck) => {
                o += &format!(r#"<t:Delete><t:ItemId Id="{}" ChangeKey="{}"/></t:Delete>"#, esc(id), esc(ck))
            }
        }
    }
    o + "</m:Changes>"
}

/// One event element.
pub fn event(e: &SimEvent, with_watermark: bool) -> String {
    let wm = if with_watermark {
        format!(
            "<t:Watermark>{}</t:Watermark>",
            base64::engine::general_purpose::STANDARD.encode(format!("lamp-wm:{}", e.watermark))
        )
    } else {
        String::new()
    };
    if let Some(to) = &e.moved_to {
        // MovedCopiedEventType: the new place, then the old one
        return format!(
            r#"<t:{el}>{wm}<t:TimeStamp>{ts}</t:TimeStamp><t:ItemId Id="{id}" ChangeKey="{ck}"/><t:ParentFolderId Id="{to}" ChangeKey="AQAAAA=="/><t:OldItemId Id="{id}"/><t:OldParentFolderId Id="{parent}" ChangeKey="AQAAAA=="/></t:{el}>"#,
            el = e.kind.element(),
            parent = e.parent,
            to = esc(to),
            ts = e.timestamp,
            id = esc(&e.item.0),
            ck = esc(&e.item.1),
        );
    }
    format!(
        r#"<t:{el}>{wm}<t:TimeStamp>{ts}</t:TimeStamp><t:ItemId Id="{id}" ChangeKey="{ck}"/><t:ParentFolderId Id="{parent}" ChangeKey="AQAAAA=="/></t:{el}>"#,
        el = e.kind.element(),
        parent = e.parent,
        ts = e.timestamp,
        id = esc(&e.item.0),
        ck = esc(&e.item.1),
    )
}

/// One streaming frame: events or a connection status, as Exchange 2016 writes it.
pub fn streaming_frame(payload: &str) -> String {
    format!(
        r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><soap11:Header xmlns:soap11="http://schemas.xmlsoap.org/soap/envelope/"><ServerVersionInfo xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" xmlns="http://schemas.microsoft.com/exchange/services/2006/types" /></soap11:Header><soap11:Body xmlns:soap11="http://schemas.xmlsoap.org/soap/envelope/"><m:GetStreamingEventsResponse xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types" xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages>{payload}</m:ResponseMessages></m:GetStreamingEventsResponse></soap11:Body></Envelope>"#
    )
}

/// The base64 of attachment bytes.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}
