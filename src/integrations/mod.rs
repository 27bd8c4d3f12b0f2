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
//! - `delivery`: what the outbound integrations share: backoff, a bounded outbox, pacing.
//! - [`up_next`]: what the up-next email and Discord mention need to know about the DJ
//!   (their choices, their stream's health), and the email task.
//! - [`recognition`]: optional song recognition of the on-air audio (AudD), shown as now
//!   playing unless the DJ named the track.

mod delivery;
pub mod destination;
pub mod discord;
pub mod email;
pub mod obs;
pub mod recognition;
pub mod tls;
pub mod up_next;

/// Resolves once shutdown is requested, or when nobody can request it any more (the sender
/// was dropped: the server is going away as well).
pub(crate) async fn shutdown_requested(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
}

/// An error and its causes on one line. Client libraries keep the telling part in the
/// sources (`reqwest`: "connection refused"; obws: the socket error behind "failed to
/// connect"); repeats of text already shown are skipped.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
