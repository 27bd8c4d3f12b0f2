//! The DJ queue: who is on air on the shared channel, who waits, and for how long.
//!
//! [`engine`] is the pure state machine; [`actor`] owns it and connects it to the world.

pub mod actor;
pub mod engine;
