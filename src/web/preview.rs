//! `/preview/{user_id}/…`: a DJ's own incoming stream as HLS (`hls::preview`), played on
//! their dashboard and, for any queued DJ, on the admin console.
//!
//! Authorised by the browser session, like the pages that play it: the JSON API never reads
//! cookies, and a media player cannot add a bearer token to its requests. The DJ themself
//! or an admin may watch; another DJ gets the 404 of a DJ who is not streaming (whose
//! stream exists is not theirs to learn), nobody logged in 401. Nothing is cached: the
//! stream is private, and each fetch keeps the preview running.

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::hls::{file_response, playlist_response};
use super::session::WebSession;
use crate::hls::Hls;
use crate::ids::UserId;

/// `GET /preview/{user_id}/index.m3u8`
pub async fn playlist(
    State(state): State<AppState>,
    Path(user_id): Path<i64>,
    session: WebSession,
    RawQuery(query): RawQuery,
) -> Response {
    let response = match open(&state, &session, user_id) {
        Ok(hls) => playlist_response(Some(&hls), query.as_deref()).await,
        Err(e) => Err(e),
    };
    no_store(response)
}

/// `GET /preview/{user_id}/{file}`: its init segments, segments and parts.
pub async fn file(
    State(state): State<AppState>,
    Path((user_id, name)): Path<(i64, String)>,
    session: WebSession,
    headers: HeaderMap,
) -> Response {
    let response = match open(&state, &session, user_id) {
        Ok(hls) => file_response(Some(&hls), &name, &headers).await,
        Err(e) => Err(e),
    };
    no_store(response)
}

fn open(state: &AppState, session: &WebSession, user_id: i64) -> Result<Hls, ApiError> {
    let viewer = session.user.as_ref().ok_or_else(ApiError::unauthorized)?;
    let not_streaming = || ApiError::not_found("This DJ is not streaming: start streaming in OBS to see the preview");
    if viewer.id != user_id && !viewer.is_admin {
        return Err(not_streaming());
    }
    let publisher = state.publishers.newest_of(UserId(user_id)).ok_or_else(not_streaming)?;
    state
        .previews
        .open(&publisher)
        .map_err(|_| ApiError::unavailable("Too many previews are open at once; try again in a minute"))
}

fn no_store(response: Result<Response, ApiError>) -> Response {
    let mut response = response.unwrap_or_else(IntoResponse::into_response);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
