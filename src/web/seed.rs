//! The original project's endpoints, with the same paths and JSON shapes — except that the
//! state-changing ones now require an admin (the original left them open to anyone).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::response::Html;
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

/// `{"remaining_time": seconds}` left in the current set.
pub async fn timer_data(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.queue.status().await?;
    Ok(Json(json!({ "remaining_time": remaining(&status) })))
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
    #[serde(default)]
    reset_time: bool,
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
    let seconds: i64 = seconds.parse().map_err(|_| ApiError::bad_request("Time must be a positive integer."))?;
    if seconds <= 0 {
        return Err(ApiError::bad_request("Time must be a positive integer."));
    }
    let command = AdminCommand::SetSwapInterval { secs: seconds as u64, reset_current: query.reset_time };
    super::api::run_admin(&state, &admin, command).await?;
    Ok(Json(json!({ "status": "success", "time": seconds, "reset_time": query.reset_time })))
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
                .user_by_id(dj.user_id)
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
    let status = state.queue.status().await?;
    Ok(Json(json!({ "status": "success", "is_blocked": status.block_enabled })))
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
    let status = state.queue.status().await?;
    Ok(Json(json!({ "status": "success", "is_blocked": status.block_enabled })))
}

/// Lead first, then the waiting DJs in order.
pub(super) fn dj_names(status: &Status) -> Vec<String> {
    status
        .lead
        .iter()
        .map(|lead| lead.dj.dj_name.clone())
        .chain(status.waiting.iter().map(|w| w.dj.dj_name.clone()))
        .collect()
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
