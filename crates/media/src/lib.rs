//! motherstream's lowest layers, as a crate of their own: the RTMP protocol without I/O
//! policy ([`rtmp`]: handshake, chunk layer, AMF0, session state machines, and the small
//! tokio drivers that write them) and the media primitives ([`media`]: FLV tags and files,
//! codec headers, the GOP cache, statistics, the program switcher), with the ids they name
//! things by ([`ids`]).
//!
//! Nothing here knows about queues, accounts, HTTP or configuration; the `motherstream`
//! crate re-exports these modules under the same names. Being apart lets the fuzz targets
//! (`fuzz/`) build and instrument this crate alone, in minutes rather than the better part
//! of an hour.

pub mod ids;
pub mod media;
pub mod rtmp;

#[doc(hidden)]
pub mod fuzzing;
