//! The mailbox's folders as Exchange names them, and the operations other
//! EWS clients start with: version negotiation (an unknown
//! `RequestServerVersion` is `ErrorInvalidServerVersion`, which clients
//! answer by retrying with an older version, not the schema fault they give
//! up on), GetFolder (by distinguished name or by the folder's own id, with
//! TotalCount and UnreadCount) and ConvertId between the id formats.
//!
//! Items live in the Inbox or in folders the user made (`Store::create_folder`);
//! the Voice Mail folder is, as in Exchange, a search folder under the
//! search root showing the voicemails of every folder but Deleted Items.
//! The other well-known folders exist and are empty.

use crate::soap::{self, El, esc};
use crate::store::Store;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A well-known folder: distinguished name, display name, own id, parent's name, class.
pub struct Folder {
    /// `DistinguishedFolderIdNameType` value.
    pub name: &'static str,
    /// What Outlook shows.
    pub display: &'static str,
    /// Its `FolderId`.
    pub id: &'static str,
    /// The distinguished name of its parent (`None`: the root).
    pub parent: Option<&'static str>,
    /// `IPF.Note`, or `None` for the roots.
    pub class: Option<&'static str>,
    /// A search folder (the Voice Mail folder).
    pub search: bool,
}

/// The Inbox's `FolderId`, also the parent named in every item event.
pub const INBOX_ID: &str = "AQMkADAwATM0MDAAMS1ib290AAAuAAADaW5ib3gA";

/// The `FolderId` of the Top of Information Store, the Inbox's parent.
pub const TOP_ID: &str = "AQMkADAwATM0MDAAMS1ib290AAAuAAADdG9wAA==";

/// The `FolderId` of Deleted Items.
pub const DELETED_ID: &str = "AQMkADAwATM0MDAAMS1ib290AAAuAAADZGVsZXRlZA==";

/// The Calendar's `FolderId` (free/busy events name it).
pub const CALENDAR_ID: &str = "AQMkADAwATM0MDAAMS1ib290AAAuAAADY2FsZW5kYXIA";

/// The folders the simulator has.
pub const FOLDERS: &[Folder] = &[
    Folder {
        name: "root",
        display: "",
        id: "AQMkADAwATM0MDAAMS1ib290AAAuAAADcm9vdA==",
        parent: None,
        class: None,
        search: false,
    },
    Folder {
        name: "msgfolderroot",
        display: "Top of Information Store",
        id: TOP_ID,
        parent: Some("root"),
        class: Some("IPF.Note"),
        search: false,
    },
    Folder {
        name: "inbox",
        display: "Inbox",
        id: INBOX_ID,
        parent: Some("msgfolderroot"),
        class: Some("IPF.Note"),
        search: false,
    },
    Folder {
        name: "calendar",
        display: "Calendar",
        id: CALENDAR_ID,
        parent: Some("msgfolderroot"),
        class: Some("IPF.Appointment"),
        search: false,
    },
    Folder {
        name: "drafts",
        display: "Drafts",
        id: "AQMkADAwATM0MDAAMS1ib290AAAuAAADZHJhZnRz",
        parent: Some("msgfolderroot"),
        class: Some("IPF.Note"),
        search: false,
    },
    Folder {
        name: "sentitems",
        display: "Sent Items",
        id: "AQMkADAwATM0MDAAMS1ib290AAAuAAADc2VudAAA",
        parent: Some("msgfolderroot"),
        class: Some("IPF.Note"),
        search: false,
    },
    Folder {
        name: "deleteditems",
        display: "Deleted Items",
        id: DELETED_ID,
        parent: Some("msgfolderroot"),
        class: Some("IPF.Note"),
        search: false,
    },
    Folder {
        name: "searchfolders",
        display: "Finder",
        id: "AQMkADAwATM0MDAAMS1ib290AAAuAAADZmluZGVy",
        parent: Some("root"),
        class: None,
        search: false,
    },
    Folder {
        name: "voicemail",
        display: "Voice Mail",
        id: "AQMkADAwATM0MDAAMS1ib290AAAuAAADdm9pY2U=",
        parent: Some("searchfolders"),
        class: Some("IPF.Note.Microsoft.Voicemail"),
        search: true,
    },
];

/// The folder a `DistinguishedFolderId` or `FolderId` element names.
pub fn resolve(el: &El) -> Option<&'static Folder> {
    match el.name.as_str() {
        "DistinguishedFolderId" => {
            let id = el.attr("Id")?;
            FOLDERS.iter().find(|f| f.name == id)
        }
        "FolderId" => {
            let id = el.attr("Id")?;
            FOLDERS.iter().find(|f| f.id == id)
        }
        _ => None,
    }
}

/// The distinguished name of the folder named in `container` (`ParentFolderIds`, `SyncFolderId`, …).
pub fn name_in(el: &El, container: &str) -> Option<String> {
    let c = el.child(container)?;
    c.children.iter().find_map(resolve).map(|f| f.name.to_string())
}

/// The versions the schema knows (`ExchangeVersionType`).
const VERSIONS: &[&str] = &[
    "Exchange2007",
    "Exchange2007_SP1",
    "Exchange2009",
    "Exchange2010",
    "Exchange2010_SP1",
    "Exchange2010_SP2",
    "Exchange2012",
    "Exchange2013",
    "Exchange2013_SP1",
    "Exchange2015",
    "Exchange2016",
    "V2015_10_05",
    "V2016_01_06",
    "V2016_04_13",
    "V2016_07_13",
    "V2016_10_10",
    "V2017_01_07",
    "V2017_04_14",
    "V2017_07_11",
];

/// Whether `version` is one Exchange knows.
pub fn known_version(version: &str) -> bool {
    VERSIONS.contains(&version)
}

fn counts(store: &Store, f: &Folder) -> (usize, usize) {
    let items: Vec<_> = match f.name {
        "inbox" => store.items(),
        "voicemail" => store.items().into_iter().filter(|i| i.is_voicemail()).collect(),
        _ => Vec::new(),
    };
    let unread = items.iter().filter(|i| !i.data.is_read).count();
    (items.len(), unread)
}

fn children(f: &Folder) -> usize {
    FOLDERS.iter().filter(|c| c.parent == Some(f.name)).count()
}

/// A folder as `t:Folder` (or `t:SearchFolder`), with its counts.
fn render(store: &Store, f: &Folder) -> String {
    let (total, unread) = counts(store, f);
    let parent = f
        .parent
        .and_then(|p| FOLDERS.iter().find(|x| x.name == p))
        .map(|p| format!(r#"<t:ParentFolderId Id="{}" ChangeKey="AQAAAA=="/>"#, p.id))
        .unwrap_or_default();
    let class = f.class.map(|c| format!("<t:FolderClass>{}</t:FolderClass>", esc(c))).unwrap_or_default();
    let element = if f.search { "SearchFolder" } else { "Folder" };
    format!(
        r#"<t:{element}><t:FolderId Id="{}" ChangeKey="AQAAAA=="/>{parent}{class}<t:DisplayName>{}</t:DisplayName><t:TotalCount>{total}</t:TotalCount><t:ChildFolderCount>{}</t:ChildFolderCount><t:UnreadCount>{unread}</t:UnreadCount></t:{element}>"#,
        f.id,
        esc(f.display),
        children(f)
    )
}

const NOT_FOUND: &str = "The specified folder could not be found in the store.";

/// GetFolder for each folder id in the request, in order.
pub fn get_folder(store: &Store, el: &El) -> String {
    let ids: Vec<&El> = el.child("FolderIds").map(|f| f.children.iter().collect()).unwrap_or_default();
    let mut messages = String::new();
    for id in ids {
        messages += &match resolve(id) {
            Some(f) => soap::success("GetFolder", &format!("<m:Folders>{}</m:Folders>", render(store, f))),
            None => soap::error("GetFolder", "ErrorFolderNotFound", NOT_FOUND),
        };
    }
    soap::response("GetFolder", &messages)
}

/// FindFolder under each parent: its children (`Shallow`) or all below it (`Deep`).
pub fn find_folder(store: &Store, el: &El) -> String {
    let deep = el.attr("Traversal") == Some("Deep");
    let parents: Vec<&El> = el.child("ParentFolderIds").map(|f| f.children.iter().collect()).unwrap_or_default();
    let mut messages = String::new();
    for parent in parents {
        let Some(p) = resolve(parent) else {
            messages += &soap::error("FindFolder", "ErrorFolderNotFound", NOT_FOUND);
            continue;
        };
        let mut found: Vec<&Folder> = Vec::new();
        let mut level = vec![p.name];
        while !level.is_empty() {
            let next: Vec<&Folder> = FOLDERS.iter().filter(|f| f.parent.is_some_and(|x| level.contains(&x))).collect();
            found.extend(next.iter().copied());
            level = if deep { next.iter().map(|f| f.name).collect() } else { Vec::new() };
        }
        let rendered: String = found.iter().map(|f| render(store, f)).collect();
        messages += &soap::success(
            "FindFolder",
            &format!(
                r#"<m:RootFolder TotalItemsInView="{}" IncludesLastItemInRange="true"><t:Folders>{rendered}</t:Folders></m:RootFolder>"#,
                found.len()
            ),
        );
    }
    soap::response("FindFolder", &messages)
}

/// An item id in another format: `EwsId`/`EwsLegacyId` as they are,
/// `HexEntryId` the id's bytes in hex, `EntryId` in base64, `OwaId`/`StoreId`
/// refused as Exchange 2013+ does for them.
fn convert(id: &str, from: &str, to: &str) -> Result<String, &'static str> {
    let bytes: Vec<u8> = match from {
        "EwsId" | "EwsLegacyId" => id.as_bytes().to_vec(),
        "HexEntryId" => (0..id.len())
            .step_by(2)
            .map(|i| id.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or("ErrorInvalidIdMalformed")?,
        "EntryId" => STANDARD.decode(id).map_err(|_| "ErrorInvalidIdMalformed")?,
        _ => return Err("ErrorInvalidIdNotAnItemAttachmentId"),
    };
    match to {
        "EwsId" | "EwsLegacyId" => String::from_utf8(bytes).map_err(|_| "ErrorInvalidIdMalformed"),
        "HexEntryId" => Ok(bytes.iter().map(|b| format!("{b:02X}")).collect()),
        "EntryId" => Ok(STANDARD.encode(bytes)),
        _ => Err("ErrorInvalidIdNotAnItemAttachmentId"),
    }
}

/// ConvertId for each `AlternateId` in the request.
pub fn convert_id(el: &El) -> String {
    let to = el.attr("DestinationFormat").unwrap_or("EwsId");
    let mut messages = String::new();
    for source in el.child("SourceIds").map(|s| s.all("AlternateId").collect::<Vec<_>>()).unwrap_or_default() {
        let (id, from, mailbox) = (
            source.attr("Id").unwrap_or(""),
            source.attr("Format").unwrap_or(""),
            source.attr("Mailbox").unwrap_or(""),
        );
        match convert(id, from, to) {
            Ok(converted) => {
                messages += &soap::success(
                    "ConvertId",
                    &format!(
                        r#"<m:AlternateId xsi:type="t:AlternateIdType" Format="{to}" Id="{}" Mailbox="{}"/>"#,
                        esc(&converted),
                        esc(mailbox)
                    ),
                )
            }
            Err(code) => messages += &soap::error("ConvertId", code, "The id cannot be converted to that format."),
        }
    }
    soap::response("ConvertId", &messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_convert_there_and_back() {
        let id = "AAMkAGVmMDEzMTM4LTZmYWUtNDdkNC1hMDZiLTU1OGY5OTZhYmY4OABGAAAAAAAiQ8W967B7TKBjgx9rVEURBwAiIsqMbYjsT5e=";
        for format in ["HexEntryId", "EntryId", "EwsLegacyId"] {
            let there = convert(id, "EwsId", format).expect("there");
            assert_eq!(convert(&there, format, "EwsId").as_deref(), Ok(id), "{format}");
        }
        assert_eq!(convert(id, "EwsId", "OwaId"), Err("ErrorInvalidIdNotAnItemAttachmentId"));
        assert_eq!(convert("zz", "HexEntryId", "EwsId"), Err("ErrorInvalidIdMalformed"));
    }

    #[test]
    fn every_folder_is_found_by_name_and_by_id_and_has_a_parent_it_knows() {
        for f in FOLDERS {
            let by_name =
                El { name: "DistinguishedFolderId".into(), attrs: vec![("Id".into(), f.name.into())], ..El::default() };
            let by_id = El { name: "FolderId".into(), attrs: vec![("Id".into(), f.id.into())], ..El::default() };
            assert_eq!(resolve(&by_name).map(|x| x.name), Some(f.name));
            assert_eq!(resolve(&by_id).map(|x| x.name), Some(f.name));
            assert!(f.parent.is_none_or(|p| FOLDERS.iter().any(|x| x.name == p)), "{}", f.name);
        }
    }
}
