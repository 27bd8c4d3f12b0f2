//! Relaying the program to the platforms (YouTube, Twitch, Kick, a local sink, ...).
//!
//! Each configured destination gets its own task holding one long-lived RTMP or RTMPS
//! publish, fed from its own bounded subscription to the program: a slow or broken
//! platform never holds back ingest or the other destinations.
//!
//! - [`destination`]: configuration, the per-destination task (reconnects, backoff,
//!   timestamp rebasing) and the status shown by the API.
//! - [`tls`]: the TCP/TLS transport to a destination.
//! - [`discord`]: queue and destination events posted to a Discord webhook.

pub mod destination;
pub mod discord;
pub mod tls;
