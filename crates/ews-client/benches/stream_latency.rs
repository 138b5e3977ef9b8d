//! Latency from the last byte of a streaming notification to the change
//! event: placeholder replaced below.
fn main() {}
