//! motherstream: a server for shared live channels.
//!
//! DJs publish over RTMP with a personal stream key; a queue decides who is on air. Read the
//! modules in the order data flows through them (see `ARCHITECTURE.md` for the full map):
//!
//! - [`rtmp`]: the RTMP protocol, sans-IO (handshake, chunks, AMF0, session state machines).
//! - [`media`]: FLV tags, codec headers, the GOP cache, statistics and the program switcher.
//! - [`hub`]: the live publishers, fed by ingest and read by the program.
//! - [`ingest`]: the RTMP listener; one task per connection drives a server session, checks
//!   stream keys and feeds each publisher's media into the hub.
//! - [`program`]: what is on air (director, slate) and the fan-out to every consumer.
//! - [`hls`]: the program as fMP4 HLS segments and playlists, kept in memory.
//! - [`queue`]: the pure queue engine (events in, commands out, clock injected) and the
//!   actor that owns it.
//! - [`store`]: accounts and persisted queue state (SQLite or Postgres via sqlx).
//! - [`web`]: the HTTP API (seed-compatible endpoints and `/api/v1`), pages and overlays.
//! - [`config`], [`cli`], [`server`]: configuration, command line, and start-up wiring.
//!
//! `tests/layering.rs` holds the rule of who may use whom (ARCHITECTURE.md, "Layering").

pub mod auth;
pub mod backoff;
pub mod calendar;
pub mod channel;
pub mod cli;
pub mod config;
pub mod history;
pub mod hls;
pub mod hub;
pub mod import;
pub mod ingest;
pub mod integrations;
pub mod limits;
pub mod metrics;
pub mod program;
pub mod queue;
pub mod ratelimit;
pub mod recorder;
pub mod secret;
pub mod sentry_report;
pub mod server;
pub mod settings;
pub mod store;
pub mod web;

pub use motherstream_media::{ids, media, rtmp};
