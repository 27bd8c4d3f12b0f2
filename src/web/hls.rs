//! `/hls/…`: the program's HLS playlist and fMP4 files, served from memory, public.
//!
//! Files are named per server run and never change, so they are cached as immutable (a
//! CDN in front takes nearly all the load); the playlist lives a second. With
//! `low_latency`, `_HLS_msn`/`_HLS_part` make a playlist request wait for that part
//! (RFC 8216bis 6.2.5.2), and the preload-hinted part waits until it exists; waits are
//! bounded in time and in number.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::AppState;
use super::error::ApiError;
use crate::hls::playlist::File;
use crate::hls::{Hls, MAX_WAITERS, Snapshot};

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const MEDIA_TYPE: &str = "video/mp4";
const PLAYLIST_CACHE: &str = "public, max-age=1";
/// A blocking reload names the state it waited for, so its answer stays right: a CDN may
/// keep it as long as the playlist's parts are listed.
const BLOCKING_PLAYLIST_CACHE: &str = "public, max-age=6";
const FILE_CACHE: &str = "public, max-age=31536000, immutable";

/// `GET /hls/program.m3u8`
pub async fn playlist(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    with_cors(playlist_response(state.hls.as_ref(), query.as_deref()).await)
}

/// `GET /hls/{file}`: init segments, segments and parts.
pub async fn file(State(state): State<AppState>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    with_cors(file_response(state.hls.as_ref(), &name, &headers).await)
}

fn with_cors(response: Result<Response, ApiError>) -> Response {
    let mut response = response.unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

fn enabled(hls: Option<&Hls>) -> Result<&Hls, ApiError> {
    hls.ok_or_else(|| ApiError::not_found("HLS is turned off on this server"))
}

pub(super) async fn playlist_response(hls: Option<&Hls>, query: Option<&str>) -> Result<Response, ApiError> {
    let hls = enabled(hls)?;
    hls.fetched();
    // Without LL-HLS the playlist does not offer blocking reloads, so the query is ignored.
    let blocking = if hls.low_latency() { blocking_request(query)? } else { None };
    let snapshot = match blocking {
        None => first_segment(hls).await?,
        Some((msn, part)) => {
            let now = hls.snapshot();
            // More than two segments past the playlist's last one is a request for the future.
            // A window just started on demand lists none yet: its numbering goes on from
            // before, where a returning player left off.
            if msn > now.window.last_complete().map_or(now.window.next_msn() + 2, |last| last + 2) {
                return Err(ApiError::bad_request("_HLS_msn is too far ahead of the playlist"));
            }
            wait_for(hls, |s| s.window.has(msn, part)).await?
        }
    };
    let body = snapshot.playlist.clone();
    let cache = if blocking.is_some() { BLOCKING_PLAYLIST_CACHE } else { PLAYLIST_CACHE };
    let mut response = Body::from(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PLAYLIST_TYPE));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Ok(response)
}

/// `_HLS_msn` and `_HLS_part`, if the request has them; `_HLS_part` alone is an error.
fn blocking_request(query: Option<&str>) -> Result<Option<(u64, Option<usize>)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| ApiError::bad_request("Malformed query string"))?;
    let value = |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let invalid = |_| ApiError::bad_request("_HLS_msn and _HLS_part must be numbers");
    let msn = value("_HLS_msn").map(str::parse::<u64>).transpose().map_err(invalid)?;
    let part = value("_HLS_part").map(str::parse::<usize>).transpose().map_err(invalid)?;
    match (msn, part) {
        (Some(msn), part) => Ok(Some((msn, part))),
        (None, Some(_)) => Err(ApiError::bad_request("_HLS_part requires _HLS_msn")),
        (None, None) => Ok(None),
    }
}

/// The snapshot to list, once it has a segment. An output just started (on demand, or a
/// preview) lists none for a GOP or so, and hls.js gives up on an empty live playlist (its
/// player then reports the source unusable): the request waits, as long as a blocking reload
/// may (503 after that: retry).
async fn first_segment(hls: &Hls) -> Result<Arc<Snapshot>, ApiError> {
    wait_for(hls, |s| s.window.last_complete().is_some()).await
}

/// The first snapshot `ready` accepts, waiting up to three target durations for it.
async fn wait_for(hls: &Hls, ready: impl Fn(&Snapshot) -> bool) -> Result<Arc<Snapshot>, ApiError> {
    let now = hls.snapshot();
    if ready(&now) {
        return Ok(now);
    }
    let _waiter = Waiter::enter(&hls.counters.waiters)
        .ok_or_else(|| ApiError::unavailable("Too many blocking HLS requests; retry"))?;
    let timeout = Duration::from_secs(3 * now.window.target_duration_s());
    let mut updates = hls.subscribe();
    match tokio::time::timeout(timeout, updates.wait_for(|s| ready(s))).await {
        Ok(Ok(snapshot)) => Ok(snapshot.clone()),
        // The program stalled (or the task stopped): the spec's advice is 503.
        _ => Err(ApiError::unavailable("The requested part did not appear in time")),
    }
}

/// One place among the bounded number of waiting requests.
struct Waiter<'a>(&'a AtomicUsize);

impl<'a> Waiter<'a> {
    fn enter(count: &'a AtomicUsize) -> Option<Self> {
        let before = count.fetch_add(1, Ordering::AcqRel);
        if before >= MAX_WAITERS {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(count))
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) async fn file_response(hls: Option<&Hls>, name: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    let hls = enabled(hls)?;
    hls.fetched();
    let gone = || ApiError::not_found("No such HLS file (segments leave the window after a few seconds)");
    let snapshot = hls.snapshot();
    let file = snapshot.window.parse_name(name).ok_or_else(gone)?;
    let snapshot = match file {
        // The preload hint names the part being made: its request waits for it.
        File::Part(msn, index)
            if hls.low_latency()
                && snapshot.window.get(file).is_none()
                && snapshot.window.next_part() == Some((msn, index)) =>
        {
            wait_for(hls, |s| s.window.get(file).is_some()).await?
        }
        _ => snapshot,
    };
    let bytes = snapshot.window.get(file).ok_or_else(gone)?.clone();
    let etag = format!("\"{name}\"");
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ranged(bytes, headers, &hls.counters.bytes_out)
    };
    let out = response.headers_mut();
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static(FILE_CACHE));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, etag);
    }
    Ok(response)
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|candidate| matches!(candidate.trim(), "*") || candidate.trim().trim_start_matches("W/") == etag)
}

/// The whole file, or the one byte range asked for (206), or 416.
fn ranged(bytes: Bytes, headers: &HeaderMap, sent: &std::sync::atomic::AtomicU64) -> Response {
    let len = bytes.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, body, content_range) = match range.map(|r| byte_range(r, len)) {
        None | Some(Range::Ignored) => (StatusCode::OK, bytes, None),
        Some(Range::Unsatisfiable) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return response;
        }
        Some(Range::Bytes(start, end)) => {
            (StatusCode::PARTIAL_CONTENT, bytes.slice(start..=end), Some(format!("bytes {start}-{end}/{len}")))
        }
    };
    sent.fetch_add(body.len() as u64, Ordering::Relaxed);
    let mut response = (status, Body::from(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    if let Some(value) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    response
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// Inclusive byte positions.
    Bytes(usize, usize),
    Unsatisfiable,
    /// Not a single byte range: answered with the whole file, as RFC 9110 allows.
    Ignored,
}

fn byte_range(header: &str, len: usize) -> Range {
    let Some(spec) = header.trim().strip_prefix("bytes=") else { return Range::Ignored };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let Some((first, last)) = spec.split_once('-') else { return Range::Ignored };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        // A suffix: the last N bytes.
        (true, false) => last.parse::<usize>().ok().map(|n| (len.saturating_sub(n), len.saturating_sub(1), n > 0)),
        (false, true) => first.parse::<usize>().ok().map(|start| (start, len.saturating_sub(1), true)),
        (false, false) => match (first.parse::<usize>(), last.parse::<usize>()) {
            (Ok(start), Ok(end)) if start <= end => Some((start, end.min(len.saturating_sub(1)), true)),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => Range::Ignored,
        Some((start, end, nonempty)) if nonempty && start < len && start <= end => Range::Bytes(start, end),
        Some(_) => Range::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=0-99", 1000), Range::Bytes(0, 99));
        assert_eq!(byte_range("bytes=900-", 1000), Range::Bytes(900, 999));
        assert_eq!(byte_range("bytes=-100", 1000), Range::Bytes(900, 999));
        assert_eq!(byte_range("bytes=500-5000", 1000), Range::Bytes(500, 999));
        assert_eq!(byte_range("bytes=1000-", 1000), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=-0", 1000), Range::Unsatisfiable);
        assert_eq!(byte_range("bytes=5-1", 1000), Range::Ignored);
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), Range::Ignored);
        assert_eq!(byte_range("items=0-1", 1000), Range::Ignored);
    }

    use std::time::SystemTime;

    use crate::hls::segmenter::Output;
    use crate::hls::{HlsConfig, standalone};

    const LL: HlsConfig =
        HlsConfig { enabled: true, segment_seconds: 2, window: 3, low_latency: true, previews: 4, always_on: false };

    fn status(result: Result<Response, ApiError>) -> StatusCode {
        result.map_or_else(|e| e.status, |r| r.status())
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocking_reload_answers_when_its_part_appears_or_503_after_three_targets() {
        let (hls, tx) = standalone(LL);
        let hls = Some(hls);
        let started = tokio::time::Instant::now();
        let waiting = tokio::spawn({
            let hls = hls.clone();
            async move { status(playlist_response(hls.as_ref(), Some("_HLS_msn=0&_HLS_part=0")).await) }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut snapshot = (**tx.borrow()).clone();
        let wall = SystemTime::UNIX_EPOCH;
        snapshot.window.apply(Output::Init { id: 0, bytes: Bytes::new() });
        snapshot.window.apply(Output::SegmentStarted { msn: 0, init: 0, discontinuity: false, wall, start_ms: 0 });
        let bytes = Bytes::from_static(b"part");
        snapshot.window.apply(Output::Part { msn: 0, index: 0, duration_ms: 400, independent: true, bytes });
        tx.send_replace(Arc::new(snapshot));
        assert_eq!(waiting.await.unwrap(), StatusCode::OK);
        assert_eq!(started.elapsed(), Duration::from_millis(300), "answered as soon as the part appeared");

        let started = tokio::time::Instant::now();
        let stalled = playlist_response(hls.as_ref(), Some("_HLS_msn=0&_HLS_part=1")).await;
        assert_eq!(status(stalled), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(started.elapsed(), Duration::from_secs(6), "three target durations");
        assert_eq!(hls.as_ref().map(|h| h.counters.waiters.load(Ordering::Relaxed)), Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_requests_are_bounded() {
        let (hls, _tx) = standalone(LL);
        hls.counters.waiters.store(MAX_WAITERS, Ordering::Relaxed);
        let started = tokio::time::Instant::now();
        let refused = playlist_response(Some(&hls), Some("_HLS_msn=1")).await;
        assert_eq!(status(refused), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(started.elapsed(), Duration::ZERO, "refused at once");
        assert_eq!(hls.counters.waiters.load(Ordering::Relaxed), MAX_WAITERS);
        let far = playlist_response(Some(&hls), Some("_HLS_msn=3")).await;
        assert_eq!(status(far), StatusCode::BAD_REQUEST);
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocking_reload_after_a_pause_in_muxing_waits_instead_of_refusing() {
        let (hls, tx) = standalone(LL);
        let mut snapshot = (**tx.borrow()).clone();
        let wall = SystemTime::UNIX_EPOCH;
        snapshot.window.apply(Output::Init { id: 0, bytes: Bytes::new() });
        for msn in 0..10 {
            snapshot.window.apply(Output::SegmentStarted { msn, init: 0, discontinuity: false, wall, start_ms: 0 });
            snapshot.window.apply(Output::SegmentEnded { msn, duration_ms: 2000, bytes: Bytes::new() });
        }
        snapshot.window.clear();
        tx.send_replace(Arc::new(snapshot));
        let resumed = playlist_response(Some(&hls), Some("_HLS_msn=10&_HLS_part=0")).await;
        assert_eq!(status(resumed), StatusCode::SERVICE_UNAVAILABLE, "waited for the part, not refused");
        let far = playlist_response(Some(&hls), Some("_HLS_msn=13")).await;
        assert_eq!(status(far), StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn turned_off_everything_is_404() {
        assert_eq!(status(playlist_response(None, None).await), StatusCode::NOT_FOUND);
        assert_eq!(status(file_response(None, "1-0.m4s", &HeaderMap::new()).await), StatusCode::NOT_FOUND);
    }

    #[test]
    fn blocking_query() {
        assert_eq!(blocking_request(None).unwrap(), None);
        assert_eq!(blocking_request(Some("_HLS_msn=5&_HLS_part=2")).unwrap(), Some((5, Some(2))));
        assert_eq!(blocking_request(Some("_HLS_msn=5")).unwrap(), Some((5, None)));
        assert!(blocking_request(Some("_HLS_part=2")).is_err());
        assert!(blocking_request(Some("_HLS_msn=x")).is_err());
    }
}
