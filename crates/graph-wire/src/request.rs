//! The requests Lamplighter makes, as paths (with their query) relative to
//! the service root (`https://graph.microsoft.com/v1.0`), and the check that
//! a link the server hands back stays on that root: a forged `nextLink` to
//! another host would otherwise carry the user's token there.

use crate::WireError;
use crate::message::props;

/// What each delta entry carries: enough for the badge, the notification
/// and the missed-call analysis without a second request per message.
pub const MESSAGE_SELECT: &[&str] = &[
    "id",
    "changeKey",
    "subject",
    "receivedDateTime",
    "importance",
    "hasAttachments",
    "isRead",
    "from",
    "body",
    "internetMessageHeaders",
    "parentFolderId",
];

/// Percent-encodes a query value: what is not unreserved or one of the
/// OData characters Graph takes as they are (`$ ( ) ' , = :`).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            b'$' | b'(' | b')' | b'\'' | b',' | b'=' | b':' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encodes one path segment (an id).
pub fn encode_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'=' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `$expand=singleValueExtendedProperties($filter=id eq '…' or …)` for the UM properties.
pub fn um_expand() -> String {
    let filter = props::ALL.iter().map(|p| format!("id eq '{p}'")).collect::<Vec<_>>().join(" or ");
    format!("singleValueExtendedProperties($filter={filter})")
}

/// The first request of a delta round over `folder` (a well-known name
/// such as `inbox`, or an id). The parameters travel inside the links
/// Graph returns, so later requests are those links as they are.
pub fn delta_start(folder: &str) -> String {
    format!(
        "/me/mailFolders/{}/messages/delta?$select={}&$expand={}",
        encode_segment(folder),
        MESSAGE_SELECT.join(","),
        encode_query(&um_expand())
    )
}

/// `Prefer` for every message read: text bodies (the transcription) and the page size.
pub fn prefer(page_size: u32) -> String {
    format!("outlook.body-content-type=\"text\", odata.maxpagesize={page_size}")
}

/// `Prefer` on every request: ids that stay when a message moves between
/// folders, so a voicemail a rule or the user moves is the same item in its
/// new folder, not a new one.
pub const IMMUTABLE_IDS: &str = "IdType=\"ImmutableId\"";

/// What is read of a folder.
pub const FOLDER_SELECT: &str = "id,displayName,parentFolderId,childFolderCount";

/// The folders under the root of the mailbox (Inbox, Archive, the user's own), 100 to a page.
pub fn folders() -> String {
    format!("/me/mailFolders?$top=100&$select={FOLDER_SELECT}")
}

/// The folders directly under folder `id`, 100 to a page.
pub fn child_folders(id: &str) -> String {
    format!("/me/mailFolders/{}/childFolders?$top=100&$select={FOLDER_SELECT}", encode_segment(id))
}

/// One folder by its well-known name (`deleteditems`) or id, only its id.
pub fn folder_id(name: &str) -> String {
    format!("/me/mailFolders/{}?$select=id", encode_segment(name))
}

/// One message with everything [`delta_start`] asks for.
pub fn message(id: &str) -> String {
    format!(
        "/me/messages/{}?$select={}&$expand={}",
        encode_segment(id),
        MESSAGE_SELECT.join(","),
        encode_query(&um_expand())
    )
}

/// A message's attachments, without their bytes.
pub fn attachments(message_id: &str) -> String {
    format!(
        "/me/messages/{}/attachments?$select=id,name,contentType,size,isInline,lastModifiedDateTime",
        encode_segment(message_id)
    )
}

/// An attachment's bytes (`$value`), streamed.
pub fn attachment_value(message_id: &str, attachment_id: &str) -> String {
    format!("/me/messages/{}/attachments/{}/$value", encode_segment(message_id), encode_segment(attachment_id))
}

/// `PATCH` of a message: the path and the body that sets `isRead`.
pub fn mark_read(id: &str, read: bool) -> (String, String) {
    (format!("/me/messages/{}", encode_segment(id)), format!(r#"{{"isRead":{read}}}"#))
}

/// A link from the server (`@odata.nextLink`, `@odata.deltaLink`) as a path
/// under `root` (`https://graph.microsoft.com/v1.0`): refused unless it
/// starts with the root itself, so no request leaves the service.
pub fn link_path(link: &str, root: &str) -> Result<String, WireError> {
    let root = root.trim_end_matches('/');
    match link.strip_prefix(root) {
        Some(rest) if rest.starts_with('/') && !rest.starts_with("//") => Ok(rest.to_string()),
        _ => Err(WireError::ForeignLink(link.chars().take(200).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delta_request_selects_and_expands_what_we_read() {
        let d = delta_start("inbox");
        assert!(d.starts_with("/me/mailFolders/inbox/messages/delta?$select=id,changeKey,"), "{d}");
        assert!(
            d.contains("&$expand=singleValueExtendedProperties($filter=id%20eq%20'String%200x001A'%20or%20"),
            "{d}"
        );
        assert_eq!(encode_segment("AAMk/a+b=="), "AAMk%2Fa%2Bb==");
        assert_eq!(mark_read("x", true), ("/me/messages/x".into(), r#"{"isRead":true}"#.into()));
    }

    #[test]
    fn links_must_stay_on_the_service_root() {
        let root = "https://graph.microsoft.com/v1.0";
        assert_eq!(
            link_path("https://graph.microsoft.com/v1.0/me/mailFolders/inbox/messages/delta?$skiptoken=a", root).ok(),
            Some("/me/mailFolders/inbox/messages/delta?$skiptoken=a".to_string())
        );
        for bad in [
            "https://graph.microsoft.com.evil.test/v1.0/me",
            "https://evil.test/v1.0/me",
            "https://graph.microsoft.com/v1.0//evil.test/x",
            "http://graph.microsoft.com/v1.0/me",
            "https://graph.microsoft.com/v1.00/me",
        ] {
            assert!(link_path(bad, root).is_err(), "{bad}");
        }
    }
}
