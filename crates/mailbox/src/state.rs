//! Where a backend keeps its sync state between runs (an EWS SyncState, a
//! Graph delta link), so a restart neither misses nor re-announces items.

use std::path::PathBuf;
use std::sync::Arc;

/// A backend's sync state storage.
pub trait StateStore: Send + Sync {
    /// The stored state, if any.
    fn load(&self) -> Option<String>;
    /// Stores a state durably: it is written before the next change is taken.
    fn save(&self, state: &str) -> std::io::Result<()>;
}

/// A state file, replaced atomically (written beside, then renamed).
#[derive(Debug, Clone)]
pub struct FileState(pub PathBuf);

impl StateStore for FileState {
    fn load(&self) -> Option<String> {
        std::fs::read_to_string(&self.0).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }
    fn save(&self, state: &str) -> std::io::Result<()> {
        if let Some(dir) = self.0.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, state)?;
        std::fs::rename(tmp, &self.0)
    }
}

/// A state kept in memory, for runs that start from scratch each time (the
/// demo, tests, the agent's one-shot `status`).
#[derive(Debug, Default, Clone)]
pub struct MemoryState(pub Arc<std::sync::Mutex<Option<String>>>);

impl StateStore for MemoryState {
    fn load(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn save(&self, state: &str) -> std::io::Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(state.to_string());
        Ok(())
    }
}
