//! Subscribe: ask for change notifications, streaming or pull.
//! See <https://learn.microsoft.com/en-us/exchange/client-developer/web-service-reference/subscribe-operation>.

use crate::EwsError;
use crate::request::{envelope, escape};
use crate::response::{ResponseMessage, parse_messages};

/// How notifications are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionKind {
    /// GetStreamingEvents (Exchange 2010 SP1 and later).
    Streaming,
    /// GetEvents with watermarks, expiring after `timeout_minutes` without a poll (1–1440).
    Pull { timeout_minutes: u16 },
}

/// A Subscribe request for item changes in distinguished folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// Distinguished folder ids (`inbox`).
    pub folders: Vec<&'static str>,
    /// Streaming or pull.
    pub kind: SubscriptionKind,
    /// `RequestServerVersion`.
    pub server_version: &'static str,
}

impl SubscribeRequest {
    /// The SOAP envelope.
    pub fn to_xml(&self) -> String {
        let folders: String = self.folders.iter().map(|f| format!(r#"<t:DistinguishedFolderId Id="{f}"/>"#)).collect();
        let events = "<t:EventTypes><t:EventType>NewMailEvent</t:EventType><t:EventType>CreatedEvent</t:EventType><t:EventType>ModifiedEvent</t:EventType><t:EventType>DeletedEvent</t:EventType><t:EventType>MovedEvent</t:EventType></t:EventTypes>";
        let request = match self.kind {
            SubscriptionKind::Streaming => format!(
                "<m:StreamingSubscriptionRequest><t:FolderIds>{folders}</t:FolderIds>{events}</m:StreamingSubscriptionRequest>"
            ),
            SubscriptionKind::Pull { timeout_minutes } => format!(
                "<m:PullSubscriptionRequest><t:FolderIds>{folders}</t:FolderIds>{events}<t:Timeout>{}</t:Timeout></m:PullSubscriptionRequest>",
                timeout_minutes.clamp(1, 1440)
            ),
        };
        envelope(self.server_version, &format!("<m:Subscribe>{request}</m:Subscribe>"))
    }
}

/// What a Subscribe returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// `SubscriptionId`.
    pub id: String,
    /// `Watermark` (pull subscriptions; absent for streaming on Exchange Online).
    pub watermark: Option<String>,
}

/// Parses a Subscribe response.
pub fn parse_subscribe(bytes: &[u8]) -> Result<Vec<ResponseMessage<Subscription>>, EwsError> {
    parse_messages(bytes, b"SubscribeResponseMessage", |r, tag, sub: &mut Subscription| {
        match tag.local_name().as_ref() {
            b"SubscriptionId" => sub.id = r.text_trim()?,
            b"Watermark" => sub.watermark = Some(r.text_trim()?),
            _ => return Ok(false),
        }
        Ok(true)
    })
}

/// Unsubscribe: end a subscription (on shutdown, so the server frees it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeRequest {
    pub subscription_id: String,
    /// `RequestServerVersion`.
    pub server_version: &'static str,
}

impl UnsubscribeRequest {
    /// The SOAP envelope.
    pub fn to_xml(&self) -> String {
        envelope(
            self.server_version,
            &format!(
                "<m:Unsubscribe><m:SubscriptionId>{}</m:SubscriptionId></m:Unsubscribe>",
                escape(&self.subscription_id)
            ),
        )
    }
}

/// Parses an Unsubscribe response (no payload: class and code say it all).
pub fn parse_unsubscribe(bytes: &[u8]) -> Result<Vec<ResponseMessage<()>>, EwsError> {
    parse_messages(bytes, b"UnsubscribeResponseMessage", |_, _, _: &mut ()| Ok(false))
}
