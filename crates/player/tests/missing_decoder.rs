//! A format whose decoder is missing is named in the error, so the window
//! can offer the default player. The WMA decoders are hidden from GStreamer
//! for this process (rank NONE), as on a desktop without gstreamer1.0-libav.

use lamplighter_player::{PlayError, Player};
use std::path::PathBuf;

#[test]
fn wma_without_its_decoder_is_unsupported_by_name() {
    // SAFETY of the test: set before GStreamer starts, in this test binary's only test
    unsafe_env();
    let p = Player::with_sink(Some("fakesink sync=true".into())).expect("GStreamer");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/audio/wma.wma");
    match p.play(&path) {
        Err(PlayError::Unsupported { format, detail }) => {
            assert_eq!(format, "WMA", "{detail}");
            let text = PlayError::Unsupported { format, detail }.to_string();
            assert!(text.contains("open it in the default player"), "{text}");
        }
        other => panic!("expected Unsupported(WMA), got {other:?}"),
    }
    assert!(lamplighter_player::formats().iter().any(|(f, _, present)| *f == "WMA" && !present));
}

fn unsafe_env() {
    #[allow(unsafe_code)]
    // SAFETY: no other thread runs yet in this single-test binary.
    unsafe {
        std::env::set_var("GST_PLUGIN_FEATURE_RANK", "avdec_wmav2:NONE,avdec_wmav1:NONE,avdec_wmapro:NONE");
    }
}
