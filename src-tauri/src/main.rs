#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]
//! The `lamplighter-window` binary: everything happens in [`lamplighter_app::run`].
fn main() {
    std::process::exit(lamplighter_app::run())
}
