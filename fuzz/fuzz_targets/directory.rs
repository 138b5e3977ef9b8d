//! Fuzzes the gateway's directory readers (TOML and CSV): any bytes are a
//! directory whose every entry passes the checks, or an error; never a panic.
#![no_main]

use lamplighter_directory::{Directory, diff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for d in [Directory::from_toml(text), Directory::from_csv(text)].into_iter().flatten() {
        for e in d.entries() {
            assert!(e.address.contains('@') && !e.line.is_empty() && !e.group.is_empty());
        }
        assert!(diff(&d, &d).is_empty());
    }
});
