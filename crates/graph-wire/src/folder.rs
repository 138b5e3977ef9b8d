//! Mail folders (`mailFolder`): the pages of `GET /me/mailFolders` and
//! `…/childFolders` (paged by `@odata.nextLink`, Graph's default is 10 to a
//! page), and one folder (`GET /me/mailFolders/{name}`). Only what choosing
//! the folders to follow needs is read; the rest of a folder is ignored.

use crate::{WireError, check_size};
use serde::{Deserialize, Serialize};

/// A mail folder as far as Lamplighter reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailFolder {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_folder_id: Option<String>,
    /// `Edm.Int32`; how many folders are directly below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_folder_count: Option<i32>,
}

/// A page of folders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderPage {
    pub folders: Vec<MailFolder>,
    /// `@odata.nextLink`: more folders to fetch.
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct RawPage {
    value: Vec<MailFolder>,
    #[serde(rename = "@odata.nextLink", default)]
    next: Option<String>,
}

/// Reads a page of `GET /me/mailFolders` or `…/childFolders`.
pub fn parse_folders(body: &[u8]) -> Result<FolderPage, WireError> {
    check_size(body)?;
    let raw: RawPage = serde_json::from_slice(body).map_err(|e| WireError::Json(e.to_string()))?;
    if raw.value.iter().any(|f| f.id.is_empty()) {
        return Err(WireError::Malformed("a mail folder without an id".into()));
    }
    Ok(FolderPage { folders: raw.value, next: raw.next })
}

/// Reads one folder (`GET /me/mailFolders/{name or id}`).
pub fn parse_folder(body: &[u8]) -> Result<MailFolder, WireError> {
    check_size(body)?;
    let f: MailFolder = serde_json::from_slice(body).map_err(|e| WireError::Json(e.to_string()))?;
    if f.id.is_empty() {
        return Err(WireError::Malformed("a mail folder without an id".into()));
    }
    Ok(f)
}
