//! The original project's endpoints, with the same paths and JSON shapes — except that the
//! state-changing ones now require an admin (the original left them open to anyone).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::response::{Html, Redirect};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::remaining;
use super::auth::{AdminUser, MaybeUser};
use super::error::ApiError;
use crate::queue::engine::{AdminCommand, Status};

/// `{"stream_queue": ["dj1", "dj2", …]}`, lead first.
pub async fn queue_json(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.queue.status().await?;
    Ok(Json(json!({ "stream_queue": dj_names(&status) })))
}

/// The queue as a small HTML page that refreshes itself (usable as an OBS browser source).
pub async fn queue_list(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let status = state.queue.status().await?;
    let items: String = dj_names(&status).iter().map(|name| format!("<li>{}</li>", html_escape(name))).collect();
    Ok(Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Queue</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/assets/queue-list.css"></head>
<body><ol id="queue">{items}</ol>
<script src="/assets/queue-list.js"></script></body></html>"#
    )))
}

/// `{"remaining_time": seconds}` left in the current set; 0 when nobody is on air, as the
/// original answered (its timer scripts read 0 as "no set running").
pub async fn timer_data(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.queue.status().await?;
    let left = if status.lead.is_some() { remaining(&status) } else { 0 };
    Ok(Json(json!({ "remaining_time": left })))
}

/// The original's overlay pages: OBS scenes built for them get ours, with their query
/// options kept.
pub async fn song_details(RawQuery(query): RawQuery) -> Redirect {
    overlay_redirect("now", query)
}

pub async fn timer_page(RawQuery(query): RawQuery) -> Redirect {
    overlay_redirect("timer", query)
}

fn overlay_redirect(name: &str, query: Option<String>) -> Redirect {
    match query {
        Some(query) if !query.is_empty() => Redirect::temporary(&format!("/overlay/{name}?{query}")),
        _ => Redirect::temporary(&format!("/overlay/{name}")),
    }
}

/// `GET /seed/song-json`: the track on air in the original's shape. Only artist and title
/// are kept (entered or recognised), so there is no label, cover or confidence to report.
pub async fn song_json(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.queue.status().await?;
    let track = match status.lead {
        Some(lead) => state
            .store
            .current_track(lead.dj.user_id.0, crate::store::unix_now())
            .await
            .map_err(|e| ApiError::internal("loading the current track", e))?,
        None => None,
    };
    let (song_name, artist) = track.map(|t| (Some(t.title), Some(t.artist))).unwrap_or_default();
    Ok(Json(json!({ "song_data": {
        "song_name": song_name,
        "artist": artist,
        "label": null,
        "album_cover_link": null,
        "confidence_level": null,
    } })))
}

/// `{"swap_interval": s, "remaining_time": s}`.
pub async fn time_settings(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.queue.status().await?;
    Ok(Json(json!({
        "swap_interval": status.swap_interval.as_secs(),
        "remaining_time": remaining(&status),
    })))
}

#[derive(Deserialize)]
pub struct UpdateTimerQuery {
    reset_time: Option<String>,
}

/// A query-string bool as FastAPI (pydantic) reads one, so the original's scripts keep
/// working whichever spelling they use.
fn fastapi_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// `POST /update-timer/{seconds}?reset_time=bool`: sets the swap interval (and so the
/// current set's length); `reset_time` restarts the current set's clock.
pub async fn update_timer(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(seconds): Path<String>,
    query: Result<Query<UpdateTimerQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(super::error::rejection)?;
    let reset_time = match query.reset_time.as_deref() {
        None => false,
        Some(value) => fastapi_bool(value)
            .ok_or_else(|| ApiError::bad_request(format!("reset_time must be a boolean, not {value:?}")))?,
    };
    let seconds: i64 = seconds.parse().map_err(|_| ApiError::bad_request("Time must be a positive integer."))?;
    if seconds <= 0 {
        return Err(ApiError::bad_request("Time must be a positive integer."));
    }
    let command = AdminCommand::SetSwapInterval { secs: seconds as u64, reset_current: reset_time };
    super::api::run_admin(&state, &admin, command).await?;
    Ok(Json(json!({ "status": "success", "time": seconds, "reset_time": reset_time })))
}

/// `{"is_blocked": bool, "last_stream_key": …}`; the key is shown to admins only.
pub async fn get_block_toggle(
    MaybeUser(user): MaybeUser,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let status = state.queue.status().await?;
    let mut body = json!({ "is_blocked": status.block_enabled });
    if user.is_some_and(|u| u.is_admin) {
        let key = match &status.last_ended {
            Some(dj) => state
                .store
                .user_by_id(dj.user_id.0)
                .await
                .map_err(|e| ApiError::internal("loading the last DJ", e))?
                .map(|u| u.stream_key),
            None => None,
        };
        body["last_stream_key"] = json!(key);
        body["last_dj_name"] = json!(status.last_ended.as_ref().map(|dj| dj.dj_name.clone()));
    }
    Ok(Json(body))
}

/// `POST /block-toggle`: flips the block toggle.
pub async fn toggle_block(AdminUser(admin): AdminUser, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    super::api::run_admin(&state, &admin, AdminCommand::ToggleBlock).await?;
    block_answer(&state).await
}

#[derive(Deserialize)]
pub struct BlockBody {
    is_blocked: bool,
}

/// `POST /update-block-toggle/`: sets the toggle from `{"is_blocked": bool}`, or flips it
/// when no body is sent (as the original did).
pub async fn update_block_toggle(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    body: Result<Json<BlockBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let command = match body {
        Ok(Json(body)) => AdminCommand::SetBlock(body.is_blocked),
        Err(JsonRejection::MissingJsonContentType(_)) => AdminCommand::ToggleBlock,
        Err(e) => return Err(super::error::rejection(e)),
    };
    super::api::run_admin(&state, &admin, command).await?;
    block_answer(&state).await
}

/// The toggle's state under our name and under the original's (`blocking`).
async fn block_answer(state: &AppState) -> Result<Json<Value>, ApiError> {
    let status = state.queue.status().await?;
    Ok(Json(json!({ "status": "success", "is_blocked": status.block_enabled, "blocking": status.block_enabled })))
}

/// Lead first, then the waiting DJs in order.
pub(super) fn dj_names(status: &Status) -> Vec<String> {
    status.lead.iter().map(|lead| lead.set_name()).chain(status.waiting.iter().map(|w| w.set_name())).collect()
}

pub(super) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fastapi_bool;

    #[test]
    fn bools_are_read_as_fastapi_reads_them() {
        for yes in ["true", "TRUE", "1", "yes", "On", "t", "Y"] {
            assert_eq!(fastapi_bool(yes), Some(true), "{yes}");
        }
        for no in ["false", "False", "0", "NO", "off", "f", "n"] {
            assert_eq!(fastapi_bool(no), Some(false), "{no}");
        }
        for bad in ["", "2", "truee", " true"] {
            assert_eq!(fastapi_bool(bad), None, "{bad:?}");
        }
    }
}
