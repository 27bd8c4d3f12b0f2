//! Adapters between motherstream and the outside world. Each runs as its own task, fed
//! from bounded channels: a slow or broken platform, webhook or OBS never holds back
//! ingest, the queue or the other integrations.
//!
//! - [`destination`]: configuration, the per-destination task (reconnects, backoff,
//!   timestamp rebasing) and the status shown by the API.
//! - [`tls`]: the TCP/TLS transport to a destination.
//! - [`discord`]: queue and destination events posted to a Discord webhook.
//! - [`obs`]: OBS automation over obs-websocket v5: the studio's scenes, DJ name text and
//!   overlays follow the queue.

mod backoff;
pub mod destination;
pub mod discord;
pub mod obs;
pub mod tls;
