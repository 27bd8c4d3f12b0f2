//! Integration tests: the real `motherstream` binary over real RTMP and HTTP.
//! One test binary (modules below) keeps link time down.

mod analysis;
mod authorization;
mod b2b;
mod browser;
mod channel;
mod database;
mod email;
mod encoders;
mod hardening;
mod hardening_accounts;
mod harness;
mod hls;
mod http_api;
mod interop;
mod limits;
mod live;
mod matrix;
mod operations;
mod platforms;
mod preview;
mod program;
mod publisher;
mod queue_rules;
mod recognition;
mod recording;
mod robustness;
mod seed_parity;
mod sentry;
mod smtp_sink;
mod soak;
mod timetable;
mod up_next;
mod watch;
mod web;
mod webdriver;
// Shared with tests/destinations.rs, which uses more of it.
#[allow(dead_code)]
#[path = "../destinations/sink.rs"]
mod sink;
// Shared with tests/discord.rs.
#[allow(dead_code)]
#[path = "../discord/webhook.rs"]
mod webhook;
