//! The fake UDP phone, shared with the demo: see
//! [`lamplighter_sip_notify::demo_phone`].

pub use lamplighter_sip_notify::demo_phone::{DemoPhone, Lamp, reply};
