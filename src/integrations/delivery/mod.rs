//! Delivering things to a service outside: the pieces every integration shares, so that
//! retry timing, pacing and queue bounds are written (and tested) once.
//!
//! - [`Backoff`]: how long to wait after a failure (OBS and the destinations between
//!   reconnects); [`Attempts`]: a backoff with a limit, for one message (Discord, email).
//!   They live in the leaf `crate::backoff`, because the queue's persistence retries too.
//! - [`Outbox`]: a bounded queue between whoever produces messages and the one task that
//!   sends them; when full the oldest is dropped, and drops are counted.
//! - [`Pacing`]: a rate limit applied before each request (a burst, then one per interval)
//!   that the service can also stop for a while (an HTTP 429).

mod outbox;
mod pacing;

pub(crate) use crate::backoff::{Attempts, Backoff};
pub(crate) use outbox::{Outbox, Pushed};
pub(crate) use pacing::Pacing;
