//! The JSON API under `/api/v1`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::auth::{self, AdminUser, MaybeUser};
use super::client_ip::ClientIp;
use super::error::{ApiError, rejection};
use super::session::WebSession;
use crate::auth::TokenSubject;
use crate::channel::health::Health;
use crate::hub::ProfileReport;
use crate::ids::{ConnId, UserId};
use crate::media::stats::StatsSnapshot;
use crate::queue::engine::{AdminCommand, AdminError, Status};
use crate::store::User;

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

/// `POST /api/v1/login/access-token` (form `username`, `password`; username is the email
/// or the DJ name) → `{"access_token": …, "token_type": "bearer"}`.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Result<Json<Value>, ApiError> {
    if !state.login_attempts.allow(client) {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many login attempts; try again in a minute"));
    }
    let Form(form) = form.map_err(rejection)?;
    let user = auth::log_in(&state, &form.username, &form.password).await?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let subject = TokenSubject { user_id: user.id, version: user.token_version };
    let token = state.tokens.issue(subject, now).map_err(|e| ApiError::internal("signing a token", e))?;
    Ok(Json(json!({ "access_token": token, "token_type": "bearer" })))
}

/// A publisher's live statistics, as reported in the status.
#[derive(Serialize)]
pub struct PlaceView {
    position: usize,
    dj_name: String,
    /// `live` (connected), `grace` (lead whose connection dropped) or `reserved` (restored
    /// after a restart, waiting for the DJ to reconnect).
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stats: Option<StatsSnapshot>,
    /// Warm-standby verdict on the stream (checked before the DJ goes on air).
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<Health>,
    /// The stream against the channel profile: differences with their OBS fixes, and how
    /// the off-profile policy airs it.
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<ProfileReport>,
}

/// `GET /api/v1/status`: on air, the queue with positions, time left, publishers' health.
/// Admins (token or session) also get what the operator needs and the public must not
/// see: destination URLs and errors, recording paths and errors.
pub async fn status(
    State(state): State<AppState>,
    MaybeUser(user): MaybeUser,
    session: WebSession,
) -> Result<Json<Value>, ApiError> {
    let admin = user.or(session.user).is_some_and(|u| u.is_admin);
    let status = state.queue.status().await?;
    let now = Instant::now();
    let inspect = |conn: Option<ConnId>| -> (Option<StatsSnapshot>, Option<Health>, Option<ProfileReport>) {
        let Some(publisher) = conn.and_then(|c| state.publishers.get(c)) else {
            return (None, None, None);
        };
        let (stats, health) = publisher.health(now);
        (Some(stats), Some(health), Some(publisher.profile_report(now)))
    };
    let on_air = status.lead.as_ref().map(|lead| {
        let (stats, health, profile) = inspect(lead.conn);
        json!({
            "dj_name": lead.dj.dj_name,
            "set_name": lead.set_name(),
            "set": lead.members.iter().map(|m| {
                // Standby members' streams are checked like a queued DJ's before a hand-over.
                let (stats, health, _) = inspect(m.conn);
                json!({
                    "dj_name": m.dj.dj_name, "on_air": m.on_air, "live": m.conn.is_some(),
                    "stats": stats, "health": health,
                })
            }).collect::<Vec<_>>(),
            "state": lead_state(lead),
            "remaining_time": ceil_secs(lead.remaining),
            "timer_paused": lead.paused,
            "health": health,
            "profile": profile,
            "stats": stats,
        })
    });
    let queue: Vec<PlaceView> = status
        .waiting
        .iter()
        .map(|w| {
            let (stats, health, profile) = inspect(w.conn);
            PlaceView {
                position: w.position,
                dj_name: w.dj.dj_name.clone(),
                state: if w.conn.is_some() { "live" } else { "reserved" },
                health,
                profile,
                stats,
            }
        })
        .collect();
    Ok(Json(json!({
        "on_air": on_air,
        "queue": queue,
        "remaining_time": remaining(&status),
        "swap_interval": status.swap_interval.as_secs(),
        "block_toggle": status.block_enabled,
        "program": state.program.status(),
        "destinations": if admin { json!(state.destinations.statuses()) } else { public_destinations(&state) },
        "recording": if admin { json!(state.recorder.status()) } else { public_recording(&state) },
        "channel": channel_view(state.publishers.channel()),
        "upcoming_bookings": super::timetable::upcoming_json(&state),
    })))
}

/// Destinations as anyone may see them: no URL (even with its key masked, it names the
/// ingest server and account path), no error text (it may quote hosts, paths, TLS details).
fn public_destinations(state: &AppState) -> Value {
    let statuses = state.destinations.statuses();
    Value::Array(
        statuses
            .into_iter()
            .map(|d| {
                json!({
                    "name": d.name,
                    "state": d.state,
                    "bytes_sent": d.bytes_sent,
                    "connected_since": d.connected_since,
                    "uptime_secs": d.uptime_secs,
                    "reconnects": d.reconnects,
                    "next_retry_in_secs": d.next_retry_in_secs,
                })
            })
            .collect(),
    )
}

/// Recording as anyone may see it: whether it runs and whether it failed, not where.
fn public_recording(state: &AppState) -> Value {
    let status = state.recorder.status();
    json!({
        "set": status.set.is_some(),
        "program": status.program.is_some(),
        "failed": status.last_error.is_some(),
    })
}

/// The channel profile and policy, as the status reports them.
fn channel_view(channel: &crate::channel::ChannelConfig) -> Value {
    json!({
        "profile": channel.profile,
        "off_profile": channel.off_profile,
        "description": channel.profile.describe(),
    })
}

fn lead_state(lead: &crate::queue::engine::LeadStatus) -> &'static str {
    match (lead.conn, lead.reserved) {
        (Some(_), _) => "live",
        (None, true) => "reserved",
        (None, false) => "grace",
    }
}

pub(super) fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

/// Seconds left in the current set (the full interval when nobody is on air, as the
/// original reported).
pub(super) fn remaining(status: &Status) -> u64 {
    match &status.lead {
        Some(lead) => ceil_secs(lead.remaining),
        None => status.swap_interval.as_secs(),
    }
}

/// `POST /api/v1/destinations/{name}/restart`: reconnects one destination, now.
pub async fn restart_destination(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.destinations.restart(&name) {
        return Err(ApiError::not_found(format!("No destination named {name}")));
    }
    tracing::info!("admin {}: restarting destination {name}", admin.dj_name);
    Ok(Json(json!({ "status": "success", "destination": name })))
}

pub async fn skip(AdminUser(admin): AdminUser, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    admin_ok(&state, &admin, AdminCommand::Skip).await
}

pub async fn pause_timer(AdminUser(admin): AdminUser, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    admin_ok(&state, &admin, AdminCommand::PauseTimer).await
}

pub async fn resume_timer(AdminUser(admin): AdminUser, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    admin_ok(&state, &admin, AdminCommand::ResumeTimer).await
}

pub async fn reset_timer(AdminUser(admin): AdminUser, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    admin_ok(&state, &admin, AdminCommand::ResetTimer).await
}

#[derive(Deserialize)]
pub struct SecondsBody {
    seconds: u64,
    #[serde(default)]
    reset_current: bool,
}

/// `POST /api/v1/queue/remaining {"seconds": n}`: time left in the current set.
pub async fn set_remaining(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    body: Result<Json<SecondsBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(rejection)?;
    admin_ok(&state, &admin, AdminCommand::SetRemaining { secs: body.seconds }).await
}

/// `POST /api/v1/queue/swap-interval {"seconds": n, "reset_current": bool}`.
pub async fn set_swap_interval(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    body: Result<Json<SecondsBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(rejection)?;
    if body.seconds == 0 {
        return Err(ApiError::bad_request("seconds must be a positive integer"));
    }
    admin_ok(&state, &admin, AdminCommand::SetSwapInterval { secs: body.seconds, reset_current: body.reset_current })
        .await
}

#[derive(Deserialize)]
pub struct BlockBody {
    enabled: bool,
}

/// `POST /api/v1/queue/block {"enabled": bool}`.
pub async fn set_block(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    body: Result<Json<BlockBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(rejection)?;
    admin_ok(&state, &admin, AdminCommand::SetBlock(body.enabled)).await
}

pub async fn remove(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(dj_name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = find_user(&state, &dj_name).await?;
    admin_ok(&state, &admin, AdminCommand::Remove { user_id: UserId(user.id) }).await
}

pub async fn move_up(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(dj_name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = find_user(&state, &dj_name).await?;
    admin_ok(&state, &admin, AdminCommand::MoveUp { user_id: UserId(user.id) }).await
}

pub async fn move_down(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(dj_name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = find_user(&state, &dj_name).await?;
    admin_ok(&state, &admin, AdminCommand::MoveDown { user_id: UserId(user.id) }).await
}

pub(super) async fn find_user(state: &AppState, dj_name: &str) -> Result<User, ApiError> {
    state
        .store
        .user_by_dj_name(dj_name)
        .await
        .map_err(|e| ApiError::internal("user lookup", e))?
        .ok_or_else(|| ApiError::not_found(format!("No DJ named {dj_name}")))
}

/// Runs an admin command, mapping the engine's refusal to a 4xx.
pub(super) async fn run_admin(state: &AppState, admin: &User, command: AdminCommand) -> Result<(), ApiError> {
    tracing::info!("admin {}: {command:?}", admin.dj_name);
    state.queue.admin(command).await?.map_err(admin_error)
}

async fn admin_ok(state: &AppState, admin: &User, command: AdminCommand) -> Result<Json<Value>, ApiError> {
    run_admin(state, admin, command).await?;
    let status = state.queue.status().await?;
    Ok(Json(json!({ "status": "success", "remaining_time": remaining(&status) })))
}

fn admin_error(e: AdminError) -> ApiError {
    match e {
        AdminError::NotInQueue => ApiError::not_found(e.to_string()),
        other => ApiError::new(StatusCode::CONFLICT, other.to_string()),
    }
}
