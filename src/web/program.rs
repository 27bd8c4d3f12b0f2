//! `GET /program.flv`: the program as an HTTP-FLV stream (for OBS media sources, ffplay, VLC).
//! One client address holds at most `limits.max_flv_viewers_per_ip` viewers (429 beyond).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::client_ip::ClientIp;
use super::error::ApiError;
use crate::media::flv::FlvHeader;
use crate::metrics::Counters;

/// Chunks buffered between the program subscription and the socket; the subscription's
/// own bounded buffer (with skip-to-keyframe) does the real buffering.
const BODY_BUFFER: usize = 16;

pub async fn program_flv(State(state): State<AppState>, ClientIp(client): ClientIp) -> Result<Response, ApiError> {
    let Some(place) = state.flv_viewers.try_acquire(client) else {
        return Err(super::events::too_many("FLV viewers", state.flv_viewers.limit()));
    };
    let Some(mut program) = state.program.subscribe("http-flv viewer").await else {
        return Err(ApiError::unavailable("The program is not running"));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(BODY_BUFFER);
    let counters = state.counters.clone();
    let mut stopping = state.http_stopping.clone();
    tokio::spawn(async move {
        // The address's place is held for as long as this viewer is served.
        let _place = place;
        let header = Bytes::copy_from_slice(&FlvHeader { has_audio: true, has_video: true }.encode());
        if tx.send(Ok(header)).await.is_err() {
            return;
        }
        loop {
            let tag = tokio::select! {
                tag = program.recv() => match tag {
                    Some(tag) => tag,
                    None => return,
                },
                _ = stopping.wait_for(|stopping| *stopping) => return,
            };
            let Ok(encoded) = tag.encode() else { continue };
            for chunk in encoded.into_chunks() {
                Counters::add(&counters.http_flv_bytes_out, chunk.len());
                if tx.send(Ok(chunk)).await.is_err() {
                    return; // the viewer went away
                }
            }
        }
    });
    let mut response = Body::from_stream(ReceiverStream::new(rx)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("video/x-flv"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
