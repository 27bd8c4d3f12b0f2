//! `/metrics` (Prometheus), `/readyz`, and the middleware that counts HTTP requests.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::auth::token_digest;
use crate::integrations::destination::State as DestinationState;
use crate::metrics::Exposition;
use crate::settings::{ConfigError, socket_addr};

/// `/metrics` is open on the HTTP listener by default (it holds counts and names, no paths,
/// keys or error texts); it can require a bearer token, and move to a listener of its own.
#[derive(Clone, PartialEq, Default)]
pub struct MetricsAccess {
    /// Serve `/metrics` here instead of on the HTTP listener.
    pub listen: Option<SocketAddr>,
    /// The bearer token required, if any.
    pub token: Option<String>,
}

/// Shorter tokens could be guessed by a patient scraper of the public port.
const MIN_METRICS_TOKEN: usize = 16;

impl std::fmt::Debug for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAccess")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "****"))
            .finish()
    }
}

impl MetricsAccess {
    pub fn resolve(listen: Option<&String>, token: Option<&String>) -> Result<Self, ConfigError> {
        let listen = match listen.filter(|l| !l.trim().is_empty()) {
            Some(raw) => Some(socket_addr("--metrics-listen", Some(raw), "")?),
            None => None,
        };
        let token = match token.map(|t| t.trim()).filter(|t| !t.is_empty()) {
            Some(t) if t.len() < MIN_METRICS_TOKEN || !t.bytes().all(|b| b.is_ascii_graphic()) => {
                return Err(ConfigError::new(
                    "--metrics-token",
                    format!(
                        "must be at least {MIN_METRICS_TOKEN} visible ASCII characters (e.g. openssl rand -hex 24)"
                    ),
                ));
            }
            t => t.map(str::to_owned),
        };
        Ok(Self { listen, token })
    }
}

/// Counts every request by its route template (never the raw path: that would let a client
/// create unbounded label values) and status.
pub async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |m| m.as_str()).to_owned();
    let response = next.run(request).await;
    state.counters.count_request(&route, response.status().as_u16());
    response
}

/// `GET /readyz`: 200 when the database answers and RTMP is accepting, 503 otherwise.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = state.store.ping().await;
    let rtmp = state.rtmp_listening.load(Ordering::Relaxed);
    let status = if database && rtmp { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    (status, axum::Json(json!({ "database": word(database), "rtmp": word(rtmp) }))).into_response()
}

/// `GET /metrics`: the Prometheus text format; with `metrics_token` set, only for
/// `Authorization: Bearer <token>`. Labels are names and states, never paths, URLs or
/// error texts: those are for admins, in `/api/v1/status`.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.metrics.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        // Digests compared, so the time taken says nothing about the token's prefix.
        if given.map(token_digest) != Some(token_digest(expected)) {
            let mut refused = ApiError::unauthorized().into_response();
            refused.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return refused;
        }
    }
    let mut e = Exposition::default();
    let now = Instant::now();

    let publishers = state.publishers.all();
    e.single(
        "motherstream_publishers",
        "gauge",
        "RTMP publishers connected (on air and queued).",
        publishers.len() as f64,
    );

    if let Ok(status) = state.queue.status().await {
        e.single(
            "motherstream_queue_length",
            "gauge",
            "DJs waiting behind the one on air.",
            status.waiting.len() as f64,
        );
        e.family("motherstream_on_air", "gauge", "1 for the DJ holding the on-air slot.");
        if let Some(lead) = &status.lead {
            let live = if lead.conn.is_some() { "live" } else { "held" };
            e.sample("motherstream_on_air", &[("dj_name", &lead.dj.dj_name), ("state", live)], 1.0);
        }
        e.single(
            "motherstream_set_remaining_seconds",
            "gauge",
            "Time left in the current set.",
            status.lead.as_ref().map_or(0.0, |l| l.remaining.as_secs_f64()),
        );
    }

    let program = state.program.status();
    e.family("motherstream_program_switches_total", "counter", "Splices of the program from one source to another.")
        .sample("motherstream_program_switches_total", &[], program.switches as f64);
    e.family("motherstream_program_source", "gauge", "What the program shows (1 for the current source).").sample(
        "motherstream_program_source",
        &[("source", program.source)],
        1.0,
    );
    e.family("motherstream_program_consumers", "gauge", "Consumers of the program: destinations, viewers, recorder.")
        .sample("motherstream_program_consumers", &[], program.consumers as f64);

    let destinations = state.destinations.statuses();
    e.family("motherstream_destination_up", "gauge", "1 while the destination is live.");
    for d in &destinations {
        e.sample(
            "motherstream_destination_up",
            &[("destination", &d.name)],
            f64::from(u8::from(d.state == DestinationState::Live)),
        );
    }
    e.family("motherstream_destination_bytes_sent_total", "counter", "Bytes sent to the destination.");
    for d in &destinations {
        e.sample("motherstream_destination_bytes_sent_total", &[("destination", &d.name)], d.bytes_sent as f64);
    }
    e.family("motherstream_destination_reconnects_total", "counter", "Reconnections to the destination.");
    for d in &destinations {
        e.sample("motherstream_destination_reconnects_total", &[("destination", &d.name)], d.reconnects as f64);
    }

    let counters = &state.counters;
    e.single(
        "motherstream_rtmp_received_bytes_total",
        "counter",
        "Bytes received from RTMP peers.",
        counters.rtmp_bytes_in.load(Ordering::Relaxed) as f64,
    );
    e.single(
        "motherstream_rtmp_sent_bytes_total",
        "counter",
        "Bytes sent to RTMP peers (players).",
        counters.rtmp_bytes_out.load(Ordering::Relaxed) as f64,
    );
    e.single(
        "motherstream_http_flv_sent_bytes_total",
        "counter",
        "Program bytes sent to HTTP-FLV viewers.",
        counters.http_flv_bytes_out.load(Ordering::Relaxed) as f64,
    );
    if let Some(hls) = &state.hls {
        let hls = &hls.counters;
        e.single(
            "motherstream_hls_segments_total",
            "counter",
            "HLS segments made from the program.",
            hls.segments.load(Ordering::Relaxed) as f64,
        );
        e.single(
            "motherstream_hls_sent_bytes_total",
            "counter",
            "HLS segment, part and init bytes sent.",
            hls.bytes_out.load(Ordering::Relaxed) as f64,
        );
        e.single(
            "motherstream_hls_waiting_requests",
            "gauge",
            "LL-HLS requests waiting for a part.",
            hls.waiters.load(Ordering::Relaxed) as f64,
        );
    }

    e.single(
        "motherstream_previews",
        "gauge",
        "DJs' previews of their own stream muxed now (at most [hls] previews).",
        state.previews.running() as f64,
    );

    e.family("motherstream_publisher_bitrate_bits_per_second", "gauge", "Each publisher's incoming bitrate.");
    for p in &publishers {
        let stats = p.stats(now);
        e.sample(
            "motherstream_publisher_bitrate_bits_per_second",
            &[("dj_name", &p.dj.dj_name)],
            stats.bitrate_bps as f64,
        );
    }

    let recording = state.recorder.status();
    e.family("motherstream_recording_active", "gauge", "1 while a recording is being written.")
        .sample("motherstream_recording_active", &[("kind", "set")], f64::from(u8::from(recording.set.is_some())))
        .sample(
            "motherstream_recording_active",
            &[("kind", "program")],
            f64::from(u8::from(recording.program.is_some())),
        );
    e.family("motherstream_recording_failed", "gauge", "1 if a recording has failed since start (see the log).")
        .sample("motherstream_recording_failed", &[], f64::from(u8::from(recording.last_error.is_some())));

    e.family("motherstream_recognition_requests_total", "counter", "Clips sent to the song recognition service.")
        .sample(
            "motherstream_recognition_requests_total",
            &[],
            counters.recognition.requests.load(Ordering::Relaxed) as f64,
        );
    e.family(
        "motherstream_recognition_results_total",
        "counter",
        "Song recognition requests by outcome (failed, no_match, recognised, low_confidence, kept_dj_track, unchanged).",
    );
    for (outcome, count) in counters.recognition.outcomes() {
        e.sample("motherstream_recognition_results_total", &[("outcome", outcome)], count as f64);
    }

    e.family("motherstream_http_requests_total", "counter", "HTTP requests by route and status.");
    for ((route, status), count) in counters.http_requests() {
        e.sample(
            "motherstream_http_requests_total",
            &[("route", &route), ("status", &status.to_string())],
            count as f64,
        );
    }

    let mut response = e.finish().into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}
