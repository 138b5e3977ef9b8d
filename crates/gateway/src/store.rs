//! What the gateway keeps across a crash: the last lamp each trunk line
//! acknowledged, in SQLite (`rusqlite`, WAL, one file in the state
//! directory). After `kill -9` and a restart every mailbox is read again
//! (that is what makes its counts right), and a lamp whose counts are what
//! the line last acknowledged is not sent again; one that changed meanwhile
//! goes once; a line that was leaving is turned off.
//!
//! Sync states are deliberately not kept: the counts come from the state
//! core, which is rebuilt from the whole folder at start, so an incremental
//! start would need that core persisted too. A gateway's start costs one
//! SyncFolderItems walk per mailbox (a voicemail folder is small).

use crate::lamps::LineRef;
use lamplighter_um::Counts;
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::Mutex;

/// The state database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the state database {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("the state directory {path}: {source}")]
    Dir { path: String, source: std::io::Error },
}

/// A line's last acknowledged lamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub line: LineRef,
    pub counts: Counts,
    /// It left the directory; its lamp is being turned off.
    pub leaving: bool,
}

/// The state database.
pub struct LampStore {
    db: Mutex<Connection>,
    path: String,
}

impl LampStore {
    /// Opens (or makes) `dir/gateway.sqlite` in WAL mode.
    pub fn open(dir: &Path) -> Result<LampStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir { path: dir.display().to_string(), source })?;
        let file = dir.join("gateway.sqlite");
        let path = file.display().to_string();
        let err = |source| StoreError::Sqlite { path: path.clone(), source };
        let db = Connection::open(&file).map_err(err)?;
        // WAL: a crash loses at most the last transaction, and readers never block the writer
        db.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        db.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS lamp (
                grp TEXT NOT NULL, line TEXT NOT NULL,
                new INTEGER NOT NULL, old INTEGER NOT NULL, urgent_new INTEGER NOT NULL, urgent_old INTEGER NOT NULL,
                leaving INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (grp, line)
            ) WITHOUT ROWID;",
        )
        .map_err(err)?;
        Ok(LampStore { db: Mutex::new(db), path })
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite { path: self.path.clone(), source }
    }

    /// Every line's last acknowledged lamp.
    pub fn acked(&self) -> Result<Vec<Acked>, StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let mut q = db
            .prepare("SELECT grp, line, new, old, urgent_new, urgent_old, leaving FROM lamp")
            .map_err(|e| self.err(e))?;
        let rows = q
            .query_map([], |r| {
                Ok(Acked {
                    line: LineRef { group: r.get(0)?, line: r.get(1)? },
                    counts: Counts { new: r.get(2)?, old: r.get(3)?, urgent_new: r.get(4)?, urgent_old: r.get(5)? },
                    leaving: r.get::<_, i64>(6)? != 0,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// `line` acknowledged `counts`. A leaving line that acknowledged its
    /// lamp off is forgotten.
    pub fn acknowledged(&self, line: &LineRef, counts: Counts) -> Result<(), StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if counts == Counts::default() {
            let gone = db
                .execute(
                    "DELETE FROM lamp WHERE grp = ?1 AND line = ?2 AND leaving = 1",
                    params![line.group, line.line],
                )
                .map_err(|e| self.err(e))?;
            if gone > 0 {
                return Ok(());
            }
        }
        db.execute(
            "INSERT INTO lamp (grp, line, new, old, urgent_new, urgent_old) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (grp, line) DO UPDATE SET new = excluded.new, old = excluded.old,
                 urgent_new = excluded.urgent_new, urgent_old = excluded.urgent_old",
            params![line.group, line.line, counts.new, counts.old, counts.urgent_new, counts.urgent_old],
        )
        .map(|_| ())
        .map_err(|e| self.err(e))
    }

    /// `line` left: its lamp is being turned off (a restart finishes that).
    pub fn leaving(&self, line: &LineRef) -> Result<(), StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        db.execute("UPDATE lamp SET leaving = 1 WHERE grp = ?1 AND line = ?2", params![line.group, line.line])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// `line` is gone for good.
    pub fn forget(&self, line: &LineRef) -> Result<(), StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        db.execute("DELETE FROM lamp WHERE grp = ?1 AND line = ?2", params![line.group, line.line])
            .map(|_| ())
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(line: &str) -> LineRef {
        LineRef { group: "default".into(), line: line.into() }
    }

    #[test]
    fn acknowledged_lamps_survive_reopening_and_a_leaver_is_forgotten_when_off() {
        let dir = tempfile::tempdir().expect("dir");
        let on = Counts { new: 2, old: 1, urgent_new: 1, urgent_old: 0 };
        {
            let s = LampStore::open(dir.path()).expect("open");
            s.acknowledged(&l("201"), on).expect("write");
            s.acknowledged(&l("202"), Counts::default()).expect("write");
            s.acknowledged(&l("203"), on).expect("write");
            s.leaving(&l("203")).expect("write");
        }
        let s = LampStore::open(dir.path()).expect("reopen");
        let mut a = s.acked().expect("read");
        a.sort_by(|x, y| x.line.cmp(&y.line));
        assert_eq!(
            a,
            vec![
                Acked { line: l("201"), counts: on, leaving: false },
                Acked { line: l("202"), counts: Counts::default(), leaving: false },
                Acked { line: l("203"), counts: on, leaving: true },
            ]
        );
        s.acknowledged(&l("203"), Counts::default()).expect("off");
        s.acknowledged(&l("201"), Counts::default()).expect("off");
        let a = s.acked().expect("read");
        assert_eq!(a.len(), 2, "203 is forgotten once off, 201 is kept (it is still in the directory): {a:?}");
        assert!(a.iter().any(|x| x.line == l("201") && x.counts == Counts::default()));
        let mode: String = s.db.lock().expect("db").query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("pragma");
        assert_eq!(mode, "wal");
    }
}
