//! What the tray hands to the rest of the desktop: `tel:`/`sip:` URIs to the
//! softphone, recordings to the default player (both through the desktop's
//! URI handlers, `xdg-open` and its kin), and the XDG autostart entry that
//! starts Lamplighter at login.

use std::path::{Path, PathBuf};

/// Opens a `tel:`/`sip:` URI with the system's handler (the softphone).
pub(crate) fn call_back(uri: &str) -> Result<(), String> {
    if !(uri.starts_with("tel:") || uri.starts_with("sip:") || uri.starts_with("sips:")) {
        return Err(format!("not a phone URI: {uri}"));
    }
    log::info!("calling back {uri}");
    open::that(uri).map_err(|e| format!("no program opens {uri}: {e}"))
}

/// Hands a file to the desktop's default program for its type.
pub(crate) fn open_path(path: &Path) -> Result<(), String> {
    open::that(path).map_err(|e| format!("no program opens {}: {e}", path.display()))
}

/// The per-user autostart entry. Its name is the system entry's
/// (`/etc/xdg/autostart/Lamplighter.desktop`, installed hidden), so the
/// user's file wins over it, and removing the user's file leaves it hidden.
pub(crate) struct Autostart {
    file: PathBuf,
    exec: PathBuf,
}

impl Autostart {
    /// `$XDG_CONFIG_HOME/autostart/Lamplighter.desktop` (else `~/.config/…`), starting `exec`.
    pub(crate) fn standard(exec: PathBuf) -> Option<Autostart> {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(Autostart::at(config.join("autostart").join("Lamplighter.desktop"), exec))
    }

    fn at(file: PathBuf, exec: PathBuf) -> Autostart {
        Autostart { file, exec }
    }

    /// Whether the entry exists and is not hidden or disabled.
    pub(crate) fn is_enabled(&self) -> bool {
        std::fs::read_to_string(&self.file).is_ok_and(|t| {
            !t.lines().map(str::trim).any(|l| l == "Hidden=true" || l == "X-GNOME-Autostart-enabled=false")
        })
    }

    /// Writes or removes the entry; returns whether it is now on.
    pub(crate) fn set(&self, enabled: bool) -> Result<bool, String> {
        let shown = self.file.display();
        if enabled {
            if let Some(dir) = self.file.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            std::fs::write(&self.file, self.entry()).map_err(|e| format!("cannot write {shown}: {e}"))?;
        } else {
            match std::fs::remove_file(&self.file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {shown}: {e}")),
            }
        }
        Ok(self.is_enabled())
    }

    fn entry(&self) -> String {
        // the Exec key's quoting (Desktop Entry Specification, "The Exec key")
        let exec = self.exec.display().to_string();
        let quoted = if exec.chars().any(|c| " \t\"'\\><~|&;$*?#()`".contains(c)) {
            let escaped: String = exec
                .chars()
                .flat_map(|c| if matches!(c, '"' | '`' | '$' | '\\') { vec!['\\', c] } else { vec![c] })
                .collect();
            format!("\"{escaped}\"")
        } else {
            exec
        };
        format!(
            "[Desktop Entry]\nType=Application\nName=Lamplighter\n\
             Comment=Voicemail and missed calls from Exchange in your tray\n\
             Exec={quoted}\nIcon=lamplighter\nTerminal=false\nX-GNOME-Autostart-enabled=true\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autostart_writes_and_removes_its_entry() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("autostart").join("Lamplighter.desktop");
        let a = Autostart::at(file.clone(), PathBuf::from("/usr/bin/lamplighter"));
        assert!(!a.is_enabled());
        assert_eq!(a.set(true), Ok(true));
        let text = std::fs::read_to_string(&file).expect("entry");
        assert!(text.starts_with("[Desktop Entry]\n") && text.contains("\nExec=/usr/bin/lamplighter\n"), "{text}");
        assert_eq!(a.set(false), Ok(false));
        assert!(!file.exists());
        assert_eq!(a.set(false), Ok(false), "removing twice is fine");
    }

    #[test]
    fn a_path_with_spaces_is_quoted_and_a_hidden_entry_is_off() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("Lamplighter.desktop");
        let a = Autostart::at(file.clone(), PathBuf::from("/opt/My Apps/lamplighter"));
        a.set(true).expect("on");
        assert!(std::fs::read_to_string(&file).expect("entry").contains("\nExec=\"/opt/My Apps/lamplighter\"\n"));
        std::fs::write(&file, "[Desktop Entry]\nExec=lamplighter\nHidden=true\n").expect("write");
        assert!(!a.is_enabled());
    }

    #[test]
    fn only_phone_uris_are_called() {
        assert!(call_back("file:///etc/passwd").expect_err("refused").contains("not a phone URI"));
        assert!(call_back("https://example.com").is_err());
    }
}
