//! Every format Exchange UM records in plays to the end, with a position
//! that advances in real time (the sink keeps the clock, like a sound card).

use lamplighter_player::{PlayError, PlayState, Player};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/audio").join(name)
}

fn player() -> Player {
    Player::with_sink(Some("fakesink sync=true".into())).expect("GStreamer")
}

/// Plays a fixture (2 s of tone; the MP3 encoder pads, the WMA one is 3.2 s):
/// the position advances, the length is known, and it ends.
fn plays_to_the_end(name: &str, length_ms: std::ops::RangeInclusive<u64>) {
    let p = player();
    p.play(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(600));
    let s = p.status().expect("status");
    // judged against the time that really passed, so a loaded machine cannot fail it
    let passed = started.elapsed().as_millis() as u64;
    assert_eq!(s.state, PlayState::Playing, "{name}: {s:?}");
    assert!(s.position_ms > 0 && s.position_ms <= passed + 300, "{name}: position after {passed} ms: {s:?}");
    let d = s.duration_ms.expect("duration");
    assert!(length_ms.contains(&d), "{name}: duration {d} ms");
    // a guard against a hang, not a speed limit
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = p.status().expect("status");
        if s.state == PlayState::Ended {
            assert_eq!(s.position_ms, d);
            break;
        }
        assert!(Instant::now() < deadline, "{name}: not ended: {s:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn g711_mu_law_wav() {
    plays_to_the_end("g711-ulaw.wav", 1950..=2050);
}

#[test]
fn g711_a_law_wav() {
    plays_to_the_end("g711-alaw.wav", 1950..=2050);
}

#[test]
fn gsm_610_wav() {
    plays_to_the_end("gsm610.wav", 1950..=2050);
}

#[test]
fn mp3() {
    plays_to_the_end("mp3.mp3", 1950..=2300);
}

#[test]
fn wma() {
    plays_to_the_end("wma.wma", 3150..=3250);
}

#[test]
fn every_um_format_has_a_decoder_here() {
    for (format, element, present) in lamplighter_player::formats() {
        assert!(present, "{format}: {element} is missing (dev.sh installs it)");
    }
}

#[test]
fn pause_holds_the_position() {
    let p = player();
    p.play(&fixture("g711-ulaw.wav")).expect("play");
    std::thread::sleep(Duration::from_millis(400));
    p.set_paused(true);
    let at = p.status().expect("status").position_ms;
    std::thread::sleep(Duration::from_millis(500));
    let s = p.status().expect("status");
    assert_eq!(s.state, PlayState::Paused);
    assert!(s.position_ms.abs_diff(at) < 50, "moved while paused: {at} → {}", s.position_ms);
    p.set_paused(false);
    std::thread::sleep(Duration::from_millis(400));
    assert!(p.status().expect("status").position_ms > at + 200);
}

#[test]
fn a_missing_file_is_a_file_error() {
    let err = player().play(&fixture("no-such.wav")).expect_err("missing");
    assert!(matches!(err, PlayError::File { .. }), "{err:?}");
}

#[test]
fn garbage_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("garbage.wav");
    std::fs::write(&path, b"RIFF\x10\x00\x00\x00WAVEjunk and nothing else here").expect("write");
    let p = player();
    let err = p.play(&path).expect_err("garbage");
    assert!(!err.to_string().is_empty());
    // nothing is left playing
    assert!(p.status().is_none());
}
