//! Lamplighter's log: one text file, `lamplighter.log`, in the state
//! directory (`$XDG_STATE_HOME/lamplighter/`), rotated by size.
//!
//! When the file would pass [`Rotation::max_bytes`] it is renamed to
//! `lamplighter.log.1` (older ones shift to `.2`, `.3`, … and the oldest
//! beyond [`Rotation::keep`] is deleted), so the log never grows without
//! bound. Lines read `2026-11-24T14:00:00Z INFO  target: message`.
//!
//! The log never contains a secret because secrets never reach it: they are
//! `lamplighter_secrets::Secret`, whose formatting prints `«redacted»`; the
//! end-to-end test checks the files for the password.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// When to rotate and how many old files to keep.
#[derive(Debug, Clone, Copy)]
pub struct Rotation {
    /// Rotate before the file would exceed this size.
    pub max_bytes: u64,
    /// How many rotated files to keep besides the current one.
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation { max_bytes: 1 << 20, keep: 3 }
    }
}

/// The log file writer; also a [`log::Log`].
pub struct LogFile {
    path: PathBuf,
    rotation: Rotation,
    level: log::LevelFilter,
    state: Mutex<Option<(File, u64)>>,
    also_stderr: bool,
}

impl LogFile {
    /// A writer for `dir/lamplighter.log` (the directory is created, `0700`).
    pub fn open(dir: &Path, rotation: Rotation, level: log::LevelFilter) -> std::io::Result<Self> {
        Self::open_named(dir, "lamplighter.log", rotation, level)
    }

    /// A writer for `dir/name`: a second process of the app keeps its own
    /// file, so two writers never rotate one file under each other.
    pub fn open_named(dir: &Path, name: &str, rotation: Rotation, level: log::LevelFilter) -> std::io::Result<Self> {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)?;
        let path = dir.join(name);
        let (file, len) = open_append(&path)?;
        Ok(LogFile { path, rotation, level, state: Mutex::new(Some((file, len))), also_stderr: false })
    }

    /// Also copy each line to standard error (for terminals and journald).
    pub fn with_stderr(mut self, on: bool) -> Self {
        self.also_stderr = on;
        self
    }

    /// The current log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Installs this as the process's `log` backend.
    pub fn install(self) -> Result<(), log::SetLoggerError> {
        let level = self.level;
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(level);
        Ok(())
    }

    /// Appends one line, rotating first if it would not fit.
    pub fn write_line(&self, line: &str) -> std::io::Result<()> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let len = line.len() as u64 + 1;
        let needs_rotation = guard.as_ref().is_some_and(|(_, size)| *size > 0 && size + len > self.rotation.max_bytes);
        if needs_rotation || guard.is_none() {
            *guard = None;
            if needs_rotation {
                self.rotate()?;
            }
            *guard = Some(open_append(&self.path)?);
        }
        if let Some((file, size)) = guard.as_mut() {
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
            *size += len;
        }
        Ok(())
    }

    fn rotate(&self) -> std::io::Result<()> {
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.rotation.keep == 0 {
            return fs::remove_file(&self.path);
        }
        let _ = fs::remove_file(numbered(self.rotation.keep));
        for n in (1..self.rotation.keep).rev() {
            if numbered(n).exists() {
                fs::rename(numbered(n), numbered(n + 1))?;
            }
        }
        fs::rename(&self.path, numbered(1))
    }
}

fn open_append(path: &Path) -> std::io::Result<(File, u64)> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    let len = file.metadata()?.len();
    Ok((file, len))
}

impl log::Log for LogFile {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}: {}",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
            record.level(),
            record.target(),
            record.args()
        );
        if self.also_stderr {
            eprintln!("{line}");
        }
        // A log that cannot be written must not take the program down.
        let _ = self.write_line(&line);
    }

    fn flush(&self) {
        if let Some((file, _)) = self.state.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let _ = file.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Log;

    #[test]
    fn lines_are_appended_with_time_level_and_target() {
        let dir = tempfile::tempdir().expect("tmp");
        let log = LogFile::open(&dir.path().join("state"), Rotation::default(), log::LevelFilter::Info).expect("open");
        log.log(
            &log::Record::builder().args(format_args!("hello {}", 42)).level(log::Level::Warn).target("engine").build(),
        );
        log.log(
            &log::Record::builder().args(format_args!("too chatty")).level(log::Level::Debug).target("engine").build(),
        );
        let text = fs::read_to_string(log.path()).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert!(lines[0].ends_with("WARN  engine: hello 42"), "{text}");
        assert!(lines[0].starts_with("20") && lines[0].contains('T'), "{text}");
    }

    #[test]
    fn rotation_bounds_the_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tmp");
        let rotation = Rotation { max_bytes: 100, keep: 2 };
        let log = LogFile::open(dir.path(), rotation, log::LevelFilter::Info).expect("open");
        for i in 0..40 {
            log.write_line(&format!("line {i:02} padding padding")).expect("write");
        }
        let mut names: Vec<String> = fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["lamplighter.log", "lamplighter.log.1", "lamplighter.log.2"]);
        for n in &names {
            assert!(fs::metadata(dir.path().join(n)).expect("meta").len() <= 100, "{n} too big");
        }
        let current = fs::read_to_string(dir.path().join("lamplighter.log")).expect("read");
        assert!(current.contains("line 39"), "{current}");
        let previous = fs::read_to_string(dir.path().join("lamplighter.log.1")).expect("read");
        assert!(!previous.contains("line 39") && previous.contains("line 3"), "{previous}");
    }
}
