//! Plays one voicemail's audio file at a time and says where it is.
//!
//! Exchange UM records voicemail as G.711 or GSM 6.10 in WAV, as MP3, or as
//! WMA (older servers). We play through GStreamer because it is the one
//! decoder stack on a stock Debian desktop that covers all four: WebKitGTK
//! already links it (no new system library for the tray app), G.711 and MP3
//! come with `gstreamer1.0-plugins-good`, GSM with `-plugins-bad`, WMA with
//! `-plugins-ugly` (the ASF demuxer) plus `gstreamer1.0-libav`. Pure-Rust
//! decoders (symphonia) have neither GSM nor WMA. A format whose plug-in is
//! missing is reported by name ([`PlayError::Unsupported`]), so the front end
//! can offer "Open in the default player" instead.
//!
//! The player owns no thread: GStreamer streams on its own, and
//! [`Player::status`] drains the pipeline's bus when asked. The audio goes to
//! the desktop's default output (PulseAudio/PipeWire through `autoaudiosink`);
//! `LAMPLIGHTER_AUDIO_SINK` may name another sink as a `gst-launch`
//! description (e.g. `fakesink sync=true`).

use gstreamer as gst;
use gstreamer::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// Why playing failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PlayError {
    /// GStreamer could not start (no library, no registry).
    #[error("audio playback is not available: {0}")]
    Init(String),
    /// No decoder or demuxer for this recording's format is installed.
    #[error("this recording is {format}, which this computer cannot play ({detail}); open it in the default player")]
    Unsupported {
        /// The format in words (`WMA`, `GSM 6.10`, …).
        format: String,
        /// What GStreamer said is missing.
        detail: String,
    },
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: String,
        reason: String,
    },
    /// The recording is damaged or the audio output refused.
    #[error("playback failed: {0}")]
    Failed(String),
}

/// Where the player is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayState {
    Playing,
    /// Paused by the user.
    Paused,
    /// Played to the end.
    Ended,
    /// Stopped by an error (see [`Status::error`]).
    Failed,
}

/// The current track's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The file playing.
    pub path: PathBuf,
    /// Playing, paused, ended, failed.
    pub state: PlayState,
    /// Milliseconds played.
    pub position_ms: u64,
    /// Length in milliseconds, once known.
    pub duration_ms: Option<u64>,
    /// What went wrong, when failed.
    pub error: Option<String>,
}

struct Track {
    pipeline: gst::Element,
    status: Status,
}

impl Drop for Track {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// One track at a time; starting another stops the first.
pub struct Player {
    track: Mutex<Option<Track>>,
    sink: Option<String>,
}

/// How long opening a file may take before we call it broken.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A format in words, from the caps GStreamer could not handle.
fn format_name(caps: &str) -> String {
    let media = caps.split([',', ' ']).next().unwrap_or(caps);
    match media {
        "audio/x-wma" | "video/x-ms-asf" => "WMA".into(),
        "audio/x-gsm" | "audio/ms-gsm" => "GSM 6.10".into(),
        "audio/mpeg" => "MP3".into(),
        "audio/x-alaw" | "audio/x-mulaw" => "G.711".into(),
        "audio/x-wav" => "WAV".into(),
        other if !other.is_empty() => other.into(),
        _ => "an unknown format".into(),
    }
}

impl Player {
    /// Starts GStreamer; the audio goes to the desktop's output, or to
    /// `LAMPLIGHTER_AUDIO_SINK` when set.
    pub fn new() -> Result<Player, PlayError> {
        Player::with_sink(std::env::var("LAMPLIGHTER_AUDIO_SINK").ok().filter(|s| !s.trim().is_empty()))
    }

    /// Starts GStreamer with the audio going to `sink`, a `gst-launch`
    /// description such as `fakesink sync=true` (`None`: the desktop's output).
    pub fn with_sink(sink: Option<String>) -> Result<Player, PlayError> {
        gst::init().map_err(|e| PlayError::Init(e.to_string()))?;
        Ok(Player { track: Mutex::new(None), sink })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Track>> {
        self.track.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Plays `path` from the start, stopping whatever played. Returns once
    /// the audio runs (or with the reason it cannot).
    pub fn play(&self, path: &Path) -> Result<(), PlayError> {
        self.stop();
        let absolute = std::fs::canonicalize(path)
            .map_err(|e| PlayError::File { path: path.display().to_string(), reason: e.to_string() })?;
        let uri = gst::glib::filename_to_uri(&absolute, None).map_err(|e| PlayError::Failed(e.to_string()))?;
        let pipeline = gst::ElementFactory::make("playbin")
            .property("uri", uri.as_str())
            .build()
            .map_err(|e| PlayError::Init(format!("no playbin ({e}): install gstreamer1.0-plugins-base")))?;
        if let Some(desc) = &self.sink {
            let sink = gst::parse_bin_from_description(desc, true)
                .map_err(|e| PlayError::Failed(format!("audio sink {desc:?}: {e}")))?;
            pipeline.set_property("audio-sink", &sink);
        }
        if let Ok(fake) = gst::ElementFactory::make("fakesink").build() {
            pipeline.set_property("video-sink", &fake);
        }
        let track = Track {
            pipeline,
            status: Status {
                path: absolute,
                state: PlayState::Playing,
                position_ms: 0,
                duration_ms: None,
                error: None,
            },
        };
        track.pipeline.set_state(gst::State::Playing).map_err(|_| wait_error(&track.pipeline))?;
        wait_started(&track.pipeline)?;
        log::info!("playing {}", track.status.path.display());
        *self.lock() = Some(track);
        Ok(())
    }

    /// Pauses or resumes.
    pub fn set_paused(&self, paused: bool) {
        if let Some(t) = self.lock().as_mut()
            && matches!(t.status.state, PlayState::Playing | PlayState::Paused)
        {
            let target = if paused { gst::State::Paused } else { gst::State::Playing };
            if t.pipeline.set_state(target).is_ok() {
                t.status.state = if paused { PlayState::Paused } else { PlayState::Playing };
            }
        }
    }

    /// Stops and forgets the track.
    pub fn stop(&self) {
        self.lock().take();
    }

    /// Where the track is, or `None` when nothing was played.
    pub fn status(&self) -> Option<Status> {
        let mut guard = self.lock();
        let t = guard.as_mut()?;
        if let Some(bus) = t.pipeline.bus() {
            while let Some(msg) = bus.pop() {
                match msg.view() {
                    gst::MessageView::Eos(_) => t.status.state = PlayState::Ended,
                    gst::MessageView::Error(e) => {
                        t.status.state = PlayState::Failed;
                        t.status.error = Some(e.error().to_string());
                    }
                    _ => {}
                }
            }
        }
        if let Some(d) = t.pipeline.query_duration::<gst::ClockTime>() {
            t.status.duration_ms = Some(d.mseconds());
        }
        match t.status.state {
            PlayState::Ended => {
                if let Some(d) = t.status.duration_ms {
                    t.status.position_ms = d;
                }
            }
            PlayState::Failed => {}
            _ => {
                if let Some(p) = t.pipeline.query_position::<gst::ClockTime>() {
                    t.status.position_ms = p.mseconds();
                }
            }
        }
        Some(t.status.clone())
    }
}

/// The error the bus holds after a refused state change.
fn wait_error(pipeline: &gst::Element) -> PlayError {
    match wait_started(pipeline) {
        Err(e) => e,
        Ok(()) => PlayError::Failed("the audio output refused to start".into()),
    }
}

/// Waits until the pipeline plays (prerolled), ended, or failed.
fn wait_started(pipeline: &gst::Element) -> Result<(), PlayError> {
    let Some(bus) = pipeline.bus() else {
        return Err(PlayError::Failed("no pipeline bus".into()));
    };
    let deadline = std::time::Instant::now() + OPEN_TIMEOUT;
    let mut missing: Option<String> = None;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(PlayError::Failed("the recording did not start within 10 s".into()));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::AsyncDone(_) | gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Element(e) => {
                // decodebin announces what it lacks before it fails
                if let Some(s) = e.structure()
                    && s.name() == "missing-plugin"
                {
                    let detail = s
                        .get::<gst::Caps>("detail")
                        .map(|c| c.to_string())
                        .or_else(|_| s.get::<String>("detail"))
                        .unwrap_or_default();
                    missing = Some(detail);
                }
            }
            gst::MessageView::Error(e) => {
                let err = e.error();
                let debug = e.debug().map(|d| d.to_string()).unwrap_or_default();
                let unsupported = missing.is_some()
                    || err.matches(gst::StreamError::CodecNotFound)
                    || err.matches(gst::StreamError::TypeNotFound)
                    || err.matches(gst::CoreError::MissingPlugin)
                    || debug.contains("not-linked");
                let _ = pipeline.set_state(gst::State::Null);
                return Err(if unsupported {
                    let detail = missing.unwrap_or_else(|| err.to_string());
                    PlayError::Unsupported { format: format_name(&detail), detail }
                } else {
                    PlayError::Failed(err.to_string())
                });
            }
            _ => {}
        }
    }
}

/// The recording formats UM writes, and whether this machine can decode each:
/// `(format, GStreamer element that decodes it, present)`.
pub fn formats() -> Vec<(&'static str, &'static str, bool)> {
    // decodebin only picks decoders ranked marginal or above
    let has = |name: &str| gst::ElementFactory::find(name).is_some_and(|f| f.rank() >= gst::Rank::Marginal);
    let any = |names: &[&str]| names.iter().any(|n| has(n));
    let _ = gst::init();
    vec![
        ("G.711 WAV", "mulawdec/alawdec + wavparse", any(&["mulawdec"]) && any(&["alawdec"]) && has("wavparse")),
        ("GSM 6.10 WAV", "gsmdec or avdec_gsm_ms", any(&["gsmdec", "avdec_gsm_ms"]) && has("wavparse")),
        ("MP3", "mpg123audiodec or avdec_mp3", any(&["mpg123audiodec", "avdec_mp3", "mad"])),
        ("WMA", "asfdemux + avdec_wmav2", has("asfdemux") && any(&["avdec_wmav2", "avdec_wmav1"])),
    ]
}

#[cfg(test)]
mod tests {
    use super::format_name;

    #[test]
    fn formats_in_words() {
        assert_eq!(format_name("audio/x-wma, wmaversion=(int)2"), "WMA");
        assert_eq!(format_name("audio/ms-gsm, rate=(int)8000"), "GSM 6.10");
        assert_eq!(format_name("video/x-ms-asf"), "WMA");
        assert_eq!(format_name("audio/x-flac"), "audio/x-flac");
        assert_eq!(format_name(""), "an unknown format");
    }
}
