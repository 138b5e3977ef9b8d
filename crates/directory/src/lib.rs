//! Who gets a lamp: the gateway's directory of mailbox → line, read from
//! a file an administrator keeps (TOML or CSV), and what changed between
//! two readings ([`diff`]), so the gateway watches the mailboxes that came,
//! stops watching those that left (their lamp turned off once), and moves
//! the lamps whose line or group changed.
//!
//! TOML:
//!
//! ```toml
//! [[mailbox]]
//! address = "mara@example.test"
//! line = "201"           # the extension (the user part of the NOTIFY's Request-URI)
//! group = "berlin"       # the gateways that reach its PBX; "default" when left out
//! mwi = true             # false: watched for nothing, its lamp kept off
//! ```
//!
//! CSV, with a header naming the columns (`address,line` and optionally
//! `group`, `mwi`), in any order:
//!
//! ```text
//! address,line,group
//! mara@example.test,201,berlin
//! ```
//!
//! Every entry is checked (an address with one `@` and no spaces, a line of
//! digits, letters and `+ - . _`, a group name of letters, digits, `-` and
//! `_`), addresses compare case-insensitively, and neither an address nor
//! a line within a group may appear twice. A directory that does not read
//! is refused as a whole with the place of its first error: the gateway
//! keeps the last good one rather than dropping every lamp.

use std::collections::{BTreeMap, HashMap};

/// The most entries a directory may have.
pub const MAX_ENTRIES: usize = 200_000;
/// The largest directory file read.
pub const MAX_BYTES: usize = 64 << 20;
/// The longest line (extension) taken.
pub const MAX_LINE: usize = 64;

/// One mailbox and its lamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The SMTP address, lowercased.
    pub address: String,
    /// The extension (SIP user) whose lamp shows this mailbox.
    pub line: String,
    /// The group of gateways that reach its PBX.
    pub group: String,
    /// Whether its lamp is lit at all (UM's MWI switch per mailbox).
    pub mwi: bool,
}

/// A directory read and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    entries: BTreeMap<String, Entry>,
}

/// Why a directory was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("the directory is not TOML: {0}")]
    Toml(String),
    #[error("the directory's CSV does not read at row {row}: {reason}")]
    Csv { row: u64, reason: String },
    #[error("entry {entry} ({address}): {reason}")]
    Invalid { entry: usize, address: String, reason: String },
    #[error("{address} is in the directory twice (entries {first} and {second})")]
    DuplicateAddress { address: String, first: usize, second: usize },
    #[error("line {line} of group {group} is given to both {first} and {second}")]
    DuplicateLine { line: String, group: String, first: String, second: String },
    #[error("the directory has more than {MAX_ENTRIES} entries")]
    TooManyEntries,
    #[error("the directory is over {MAX_BYTES} bytes")]
    TooLarge,
    #[error("cannot read the directory {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("the directory {0} must end in .toml or .csv")]
    UnknownFormat(String),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    mailbox: Vec<RawEntry>,
}

/// An entry as a source gives it, before the checks (a TOML table, a CSV
/// row, an LDAP entry mapped by the gateway).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub address: String,
    pub line: String,
    /// `default` when absent.
    pub group: Option<String>,
    /// On when absent.
    pub mwi: Option<bool>,
}

type RawEntry = Row;

fn valid_address(a: &str) -> Result<(), &'static str> {
    let Some((local, domain)) = a.split_once('@') else { return Err("an address needs an @") };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return Err("an address has one @ between a name and a domain");
    }
    if a.len() > 320 || a.chars().any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c)) {
        return Err("an address has no spaces, quotes, brackets, commas or semicolons");
    }
    Ok(())
}

fn valid_line(l: &str) -> Result<(), &'static str> {
    if l.is_empty() || l.len() > MAX_LINE {
        return Err("a line is 1 to 64 characters");
    }
    if !l.chars().all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c)) {
        return Err("a line has digits, letters and + - . _ only");
    }
    Ok(())
}

fn valid_group(g: &str) -> Result<(), &'static str> {
    if g.is_empty() || g.len() > 64 || !g.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err("a group is 1 to 64 letters, digits, - and _");
    }
    Ok(())
}

impl Directory {
    fn build(raw: impl IntoIterator<Item = RawEntry>) -> Result<Directory, DirectoryError> {
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut lines: HashMap<(String, String), String> = HashMap::new();
        for (n, r) in raw.into_iter().enumerate() {
            let entry = n + 1;
            if entries.len() >= MAX_ENTRIES {
                return Err(DirectoryError::TooManyEntries);
            }
            let address = r.address.trim().to_lowercase();
            let line = r.line.trim().to_string();
            let group = r.group.map(|g| g.trim().to_string()).unwrap_or_else(|| "default".into());
            let invalid =
                |reason: &str| DirectoryError::Invalid { entry, address: address.clone(), reason: reason.into() };
            valid_address(&address).map_err(invalid)?;
            valid_line(&line).map_err(invalid)?;
            valid_group(&group).map_err(invalid)?;
            if let Some(first) = index.get(&address) {
                return Err(DirectoryError::DuplicateAddress { address, first: *first, second: entry });
            }
            if let Some(first) = lines.get(&(group.clone(), line.clone())) {
                return Err(DirectoryError::DuplicateLine { line, group, first: first.clone(), second: address });
            }
            index.insert(address.clone(), entry);
            lines.insert((group.clone(), line.clone()), address.clone());
            entries.insert(address.clone(), Entry { address, line, group, mwi: r.mwi.unwrap_or(true) });
        }
        Ok(Directory { entries })
    }

    /// Checks rows from any other source, with the same rules and places
    /// (the place is the row's position, from 1).
    pub fn from_rows(rows: Vec<Row>) -> Result<Directory, DirectoryError> {
        if rows.len() > MAX_ENTRIES {
            return Err(DirectoryError::TooManyEntries);
        }
        Directory::build(rows)
    }

    /// Reads the TOML form.
    pub fn from_toml(text: &str) -> Result<Directory, DirectoryError> {
        if text.len() > MAX_BYTES {
            return Err(DirectoryError::TooLarge);
        }
        let file: TomlFile = toml::from_str(text).map_err(|e| DirectoryError::Toml(e.to_string()))?;
        Directory::build(file.mailbox)
    }

    /// Reads the CSV form (a header row first).
    pub fn from_csv(text: &str) -> Result<Directory, DirectoryError> {
        if text.len() > MAX_BYTES {
            return Err(DirectoryError::TooLarge);
        }
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(false).from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| DirectoryError::Csv { row: 1, reason: e.to_string() })?.clone();
        let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let (Some(a), Some(l)) = (col("address"), col("line")) else {
            return Err(DirectoryError::Csv {
                row: 1,
                reason: "the header must name the columns address and line".into(),
            });
        };
        let (g, m) = (col("group"), col("mwi"));
        if let Some(unknown) =
            headers.iter().find(|h| !["address", "line", "group", "mwi"].iter().any(|k| h.eq_ignore_ascii_case(k)))
        {
            return Err(DirectoryError::Csv { row: 1, reason: format!("unknown column {unknown}") });
        }
        let mut raw = Vec::new();
        for (n, record) in reader.records().enumerate() {
            let row = n as u64 + 2;
            let record = record.map_err(|e| DirectoryError::Csv { row, reason: e.to_string() })?;
            if raw.len() >= MAX_ENTRIES {
                return Err(DirectoryError::TooManyEntries);
            }
            let field = |i: Option<usize>| i.and_then(|i| record.get(i)).map(str::to_string).filter(|s| !s.is_empty());
            let mwi = match field(m).map(|v| v.to_ascii_lowercase()) {
                None => None,
                Some(v) if ["true", "yes", "1", "on"].contains(&v.as_str()) => Some(true),
                Some(v) if ["false", "no", "0", "off"].contains(&v.as_str()) => Some(false),
                Some(v) => return Err(DirectoryError::Csv { row, reason: format!("mwi is true or false, not {v}") }),
            };
            raw.push(RawEntry {
                address: field(Some(a)).unwrap_or_default(),
                line: field(Some(l)).unwrap_or_default(),
                group: field(g),
                mwi,
            });
        }
        Directory::build(raw)
    }

    /// Reads a file by its extension (`.toml` or `.csv`), at most [`MAX_BYTES`].
    pub fn load(path: &std::path::Path) -> Result<Directory, DirectoryError> {
        let io = |e: std::io::Error| DirectoryError::Io { path: path.display().to_string(), reason: e.to_string() };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > MAX_BYTES as u64 {
            return Err(DirectoryError::TooLarge);
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("toml") => Directory::from_toml(&text),
            Some("csv") => Directory::from_csv(&text),
            _ => Err(DirectoryError::UnknownFormat(path.display().to_string())),
        }
    }

    /// The entries, by address.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The entry of `address` (any case).
    pub fn get(&self, address: &str) -> Option<&Entry> {
        self.entries.get(&address.to_lowercase())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What changed from one reading to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// New mailboxes: watch them.
    pub added: Vec<Entry>,
    /// Gone: stop watching, turn the lamp off once.
    pub removed: Vec<Entry>,
    /// Same mailbox, another line, group or switch: (before, after).
    pub changed: Vec<(Entry, Entry)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What changed from `old` to `new`, each list by address.
pub fn diff(old: &Directory, new: &Directory) -> Changes {
    let mut c = Changes::default();
    for (a, e) in &new.entries {
        match old.entries.get(a) {
            None => c.added.push(e.clone()),
            Some(o) if o != e => c.changed.push((o.clone(), e.clone())),
            Some(_) => {}
        }
    }
    for (a, e) in &old.entries {
        if !new.entries.contains_key(a) {
            c.removed.push(e.clone());
        }
    }
    c
}
