//! Where Lamplighter keeps its files: the XDG base directories on Linux
//! (`$XDG_CONFIG_HOME/lamplighter/config.toml`, logs under
//! `$XDG_STATE_HOME/lamplighter/`, audio under `$XDG_CACHE_HOME/lamplighter/`)
//! and the platform equivalents elsewhere.

use crate::ConfigError;
use std::path::PathBuf;

/// The directories and files Lamplighter uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The settings file.
    pub config_file: PathBuf,
    /// Logs and persisted runtime state (sync states, announced items).
    pub state_dir: PathBuf,
    /// Downloaded voicemail audio, safe to delete.
    pub cache_dir: PathBuf,
}

impl Paths {
    /// The platform's standard locations. On Linux these honour
    /// `XDG_CONFIG_HOME`, `XDG_STATE_HOME` and `XDG_CACHE_HOME`.
    pub fn standard() -> Result<Self, ConfigError> {
        let config = dirs::config_dir().ok_or(ConfigError::NoConfigDir)?;
        let state = dirs::state_dir().or_else(dirs::data_local_dir).ok_or(ConfigError::NoConfigDir)?;
        let cache = dirs::cache_dir().ok_or(ConfigError::NoConfigDir)?;
        Ok(Self::under(config, state, cache))
    }

    /// Lamplighter's files below explicit base directories (tests, `--config`).
    pub fn under(config_base: PathBuf, state_base: PathBuf, cache_base: PathBuf) -> Self {
        Paths {
            config_file: config_base.join("lamplighter").join("config.toml"),
            state_dir: state_base.join("lamplighter"),
            cache_dir: cache_base.join("lamplighter"),
        }
    }

    /// Standard state and cache directories, but the settings file given.
    pub fn with_config_file(config_file: PathBuf) -> Result<Self, ConfigError> {
        let mut paths = Self::standard()?;
        paths.config_file = config_file;
        Ok(paths)
    }
}
