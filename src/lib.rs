//! motherstream: a server for shared live channels.
//!
//! DJs publish over RTMP with a personal stream key; a queue decides who is on air. Read the
//! modules in the order data flows through them (see `ARCHITECTURE.md` for the full map):
//!
//! - [`rtmp`]: the RTMP protocol, sans-IO (handshake, chunks, AMF0, session state machines).
//! - [`ingest`]: the RTMP listener; one task per connection drives a server session, checks
//!   stream keys and feeds each publisher's media into its buffer.
//! - [`media`]: FLV tags, codec headers, the per-publisher GOP cache and statistics.
//! - [`hls`]: the program as fMP4 HLS segments and playlists, kept in memory.
//! - [`queue`]: the pure queue engine (events in, commands out, clock injected) and the
//!   actor that owns it.
//! - [`store`]: accounts and persisted queue state (SQLite or Postgres via sqlx).
//! - [`web`]: the HTTP API (seed-compatible endpoints and `/api/v1`).
//! - [`config`], [`cli`], [`server`]: configuration, command line, and start-up wiring.

pub mod auth;
pub mod calendar;
pub mod channel;
pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod hls;
pub mod import;
pub mod ingest;
pub mod integrations;
pub mod media;
pub mod metrics;
pub mod program;
pub mod queue;
pub mod ratelimit;
pub mod rtmp;
pub mod secret;
pub mod seed_env;
pub mod sentry_report;
pub mod server;
pub mod store;
pub mod web;
