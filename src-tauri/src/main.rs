#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]
//! The `lamplighter` desktop binary: everything happens in [`lamplighter_app::run`].
fn main() {
    lamplighter_app::run()
}
