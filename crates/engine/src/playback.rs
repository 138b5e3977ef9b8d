//! Playing a voicemail: fetch its audio into the cache (with progress),
//! play it through `lamplighter-player`, report the position in the
//! snapshot, and mark it heard once the user has listened for
//! [`HEARD_AFTER`] (or to the end of a shorter message). One at a time:
//! playing another stops the first.

use crate::{Engine, EngineError};
use lamplighter_player::{PlayState, Player};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Listening this long marks a voicemail heard.
pub const HEARD_AFTER: Duration = Duration::from_secs(3);
/// How often the position is reported while playing.
const TICK: Duration = Duration::from_millis(250);

/// Where a playback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaybackPhase {
    /// The audio is being fetched from the mailbox.
    Downloading,
    Playing,
    Paused,
    /// Played to the end.
    Ended,
    /// Failed (see `error`).
    Failed,
}

/// The playback as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackView {
    /// The voicemail.
    pub item_id: String,
    pub phase: PlaybackPhase,
    /// Bytes fetched so far.
    pub downloaded_bytes: u64,
    /// Milliseconds played.
    pub position_ms: u64,
    /// Length, once known.
    pub duration_ms: Option<u64>,
    /// Marked heard on the server by this playback.
    pub marked_heard: bool,
    /// What went wrong.
    pub error: Option<String>,
}

/// The player, started on first use (GStreamer's start costs time and memory
/// that a user who never plays should not pay), and a generation counter so
/// a superseded playback's watcher stops.
#[derive(Default)]
pub(crate) struct PlayerSlot {
    player: OnceLock<Result<Arc<Player>, lamplighter_player::PlayError>>,
    generation: Mutex<u64>,
}

impl PlayerSlot {
    fn get(&self) -> Result<Arc<Player>, EngineError> {
        self.player.get_or_init(|| Player::new().map(Arc::new)).clone().map_err(EngineError::Playback)
    }

    fn existing(&self) -> Option<Arc<Player>> {
        self.player.get().and_then(|p| p.as_ref().ok().cloned())
    }

    fn next_generation(&self) -> u64 {
        let mut g = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        *g += 1;
        *g
    }

    fn is_current(&self, generation: u64) -> bool {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) == generation
    }

    /// Starts `path` only if no Stop or newer Play came since `generation` was taken;
    /// the check and the start are one step, so a Stop never leaves audio playing.
    fn play_if_current(
        &self,
        generation: u64,
        player: &Player,
        path: &std::path::Path,
    ) -> Result<bool, lamplighter_player::PlayError> {
        let current = self.generation.lock().unwrap_or_else(|p| p.into_inner());
        if *current != generation {
            return Ok(false);
        }
        player.play(path)?;
        drop(current);
        Ok(true)
    }
}

impl Engine {
    fn set_playback(&self, f: impl FnOnce(&mut Option<PlaybackView>)) {
        self.set_live(|v| f(v.playback));
    }

    /// Fetches a voicemail's audio into the cache (reused once there) and returns the file.
    pub async fn audio_file(&self, item_id: &str) -> Result<std::path::PathBuf, EngineError> {
        let id = item_id.to_string();
        let engine = self.clone();
        self.on_live(move |s| async move {
            let mut last = std::time::Instant::now();
            let progress = |bytes: u64| {
                if last.elapsed() >= Duration::from_millis(100) {
                    last = std::time::Instant::now();
                    engine.set_playback(|p| {
                        if let Some(p) = p.as_mut().filter(|p| p.item_id == id) {
                            p.downloaded_bytes = bytes;
                        }
                    });
                }
            };
            Ok(s.runner.fetch_audio(&id, &s.audio_dir, progress).await?)
        })
        .await
    }

    /// Plays a voicemail: fetches it, plays it, and marks it heard after
    /// [`HEARD_AFTER`] of listening. Returns once it plays (or why it cannot).
    pub async fn play(&self, item_id: &str) -> Result<(), EngineError> {
        let slot = self.player.clone();
        let generation = slot.next_generation();
        if let Some(p) = slot.existing() {
            p.stop();
        }
        let fresh = |phase| PlaybackView {
            item_id: item_id.to_string(),
            phase,
            downloaded_bytes: 0,
            position_ms: 0,
            duration_ms: None,
            marked_heard: false,
            error: None,
        };
        self.set_playback(|p| *p = Some(fresh(PlaybackPhase::Downloading)));
        // a Stop (or another Play) while this one is still fetching wins: nothing below
        // may then touch the snapshot or leave audio playing
        let fail = |engine: &Engine, e: EngineError| {
            let message = e.to_string();
            if slot.is_current(generation) {
                engine.set_playback(|p| {
                    if let Some(p) = p.as_mut() {
                        p.phase = PlaybackPhase::Failed;
                        p.error = Some(message);
                    }
                });
            }
            Err(e)
        };
        let path = match self.audio_file(item_id).await {
            Ok(p) => p,
            Err(e) => return fail(self, e),
        };
        let player = match slot.get() {
            Ok(p) => p,
            Err(e) => return fail(self, e),
        };
        let started = {
            let (player, slot) = (player.clone(), slot.clone());
            tokio::task::spawn_blocking(move || slot.play_if_current(generation, &player, &path)).await
        };
        match started {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Ok(()), // superseded: the newer request owns player and snapshot
            Ok(Err(e)) => return fail(self, e.into()),
            Err(e) => return fail(self, EngineError::Task(format!("playback: {e}"))),
        }
        if !slot.is_current(generation) {
            return Ok(());
        }
        self.set_playback(|p| *p = Some(fresh(PlaybackPhase::Playing)));
        let engine = self.clone();
        let id = item_id.to_string();
        let session = self.session()?;
        session.handle.spawn(async move { engine.watch(player, slot, generation, id).await });
        Ok(())
    }

    /// Follows the player until the track ends, fails or is replaced.
    async fn watch(self, player: Arc<Player>, slot: Arc<PlayerSlot>, generation: u64, item_id: String) {
        let mut marked = false;
        loop {
            tokio::time::sleep(TICK).await;
            if !slot.is_current(generation) {
                return;
            }
            let Some(status) = player.status() else { return };
            let listened = Duration::from_millis(status.position_ms) >= HEARD_AFTER || status.state == PlayState::Ended;
            if listened && !marked {
                marked = true;
                let unheard = self.lists().voicemails.iter().any(|v| v.item_id == item_id && v.unheard);
                if unheard {
                    match self.mark_heard(&item_id).await {
                        Ok(()) => log::info!("voicemail {item_id} marked heard after listening"),
                        Err(e) => log::warn!("cannot mark {item_id} heard: {e}"),
                    }
                }
            }
            let phase = match status.state {
                PlayState::Playing => PlaybackPhase::Playing,
                PlayState::Paused => PlaybackPhase::Paused,
                PlayState::Ended => PlaybackPhase::Ended,
                PlayState::Failed => PlaybackPhase::Failed,
            };
            self.set_playback(|p| {
                if let Some(p) = p.as_mut().filter(|p| p.item_id == item_id) {
                    p.phase = phase;
                    p.position_ms = status.position_ms;
                    p.duration_ms = status.duration_ms;
                    p.marked_heard = marked;
                    p.error = status.error.clone();
                }
            });
            if matches!(status.state, PlayState::Ended | PlayState::Failed) {
                return;
            }
        }
    }

    /// Pauses or resumes the playback.
    pub fn pause_playback(&self, paused: bool) {
        if let Some(p) = self.player.existing() {
            p.set_paused(paused);
        }
    }

    /// Stops the playback and clears it from the snapshot.
    pub fn stop_playback(&self) {
        self.player.next_generation();
        if let Some(p) = self.player.existing() {
            p.stop();
        }
        self.set_playback(|p| *p = None);
    }
}
