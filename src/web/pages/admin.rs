//! The admin console: queue control, channel settings, users, destinations.
//!
//! Every action is a CSRF-protected form that redirects back to `/admin` (or shows the
//! page again with the refusal); the same commands as the JSON API, run through
//! [`run_admin`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::{PageError, base_context, render_status};
use crate::ids::UserId;
use crate::queue::engine::AdminCommand;
use crate::web::AppState;
use crate::web::accounts;
use crate::web::api::{ceil_secs, find_user, remaining, run_admin};
use crate::web::session::{CsrfForm, Organiser};

pub(super) async fn console(
    state: &AppState,
    organiser: &Organiser,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    match console_page(state, organiser, status, error).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn console_page(
    state: &AppState,
    organiser: &Organiser,
    code: StatusCode,
    error: Option<&str>,
) -> Result<Response, PageError> {
    let status = state.queue.status().await?;
    let now = std::time::Instant::now();
    // Every publisher's stream against the channel profile, so organisers see who will
    // change the program's picture or sound before it happens.
    let profile = |conn| state.publishers.get(conn?).map(|p| p.profile_report(now));
    let advice = |conn| state.publishers.get(conn?).map(|p| p.health(now).1.advice);
    let mut queue = Vec::new();
    if let Some(lead) = &status.lead {
        let connection = match (lead.conn, lead.reserved) {
            (Some(_), _) => "live",
            (None, true) => "reserved",
            (None, false) => "reconnecting",
        };
        queue.push(context! {
            dj_name => lead.dj.dj_name, user_id => lead.dj.user_id.0, position => 0, lead => true,
            connection => connection,
            profile => profile(lead.conn), advice => advice(lead.conn),
        });
    }
    for waiting in &status.waiting {
        let connection = if waiting.conn.is_some() { "live" } else { "reserved" };
        queue.push(context! {
            dj_name => waiting.dj.dj_name, user_id => waiting.dj.user_id.0, position => waiting.position,
            lead => false, connection => connection,
            profile => profile(waiting.conn), advice => advice(waiting.conn),
        });
    }
    let users = state.store.list_users().await.map_err(|e| PageError::internal("listing users", e))?;
    let users: Vec<_> = users
        .iter()
        .map(|u| {
            context! {
                id => u.id, dj_name => u.dj_name, email => u.email, is_active => u.is_active,
                is_admin => u.is_admin, created_at => u.created_at, is_me => u.id == organiser.0.user.id,
                up_next_email => u.up_next_email, discord_user_id => u.discord_user_id,
            }
        })
        .collect();
    let lead = status.lead.as_ref().map(|l| {
        context! {
            dj_name => l.set_name(), remaining => ceil_secs(l.remaining), paused => l.paused,
            members => l.members.iter().map(|m| context! {
                dj_name => m.dj.dj_name, on_air => m.on_air, live => m.conn.is_some(),
            }).collect::<Vec<_>>(),
        }
    });
    let ctx = context! {
        active => "admin",
        error => error,
        lead => lead,
        queue => queue,
        remaining_time => remaining(&status),
        swap_interval => status.swap_interval.as_secs(),
        block_enabled => status.block_enabled,
        users => users,
        bookings => super::timetable::console_bookings(state).await?,
        set_lengths => super::timetable::console_set_lengths(state).await?,
        destinations => state.destinations.statuses(),
        program => state.program.status(),
        recording => state.recorder.status(),
        channel => context! {
            description => state.publishers.channel().profile.describe(),
            off_profile => state.publishers.channel().off_profile,
        },
        ..base_context(&organiser.0.session)
    };
    Ok(render_status(code, "admin.html", ctx))
}

/// `GET /admin`.
pub async fn admin(State(state): State<AppState>, organiser: Organiser) -> Response {
    console(&state, &organiser, StatusCode::OK, None).await
}

/// Runs a queue command; back to the console, or the console with the refusal.
async fn command(state: &AppState, organiser: &Organiser, command: AdminCommand) -> Response {
    match run_admin(state, &organiser.0.user, command).await {
        Ok(()) => Redirect::to("/admin").into_response(),
        Err(e) => console(state, organiser, e.status, Some(&e.detail)).await,
    }
}

#[derive(Deserialize)]
pub struct Nothing {}

pub async fn skip(State(state): State<AppState>, organiser: Organiser, _: CsrfForm<Nothing>) -> Response {
    command(&state, &organiser, AdminCommand::Skip).await
}

pub async fn pause(State(state): State<AppState>, organiser: Organiser, _: CsrfForm<Nothing>) -> Response {
    command(&state, &organiser, AdminCommand::PauseTimer).await
}

pub async fn resume(State(state): State<AppState>, organiser: Organiser, _: CsrfForm<Nothing>) -> Response {
    command(&state, &organiser, AdminCommand::ResumeTimer).await
}

#[derive(Deserialize)]
pub struct MinutesForm {
    /// Whole minutes, as organisers think about sets.
    minutes: String,
    #[serde(default)]
    reset_current: Option<String>,
}

impl MinutesForm {
    fn seconds(&self) -> Result<u64, String> {
        match self.minutes.trim().parse::<u64>() {
            Ok(m) if m <= 24 * 60 => Ok(m * 60),
            _ => Err("Enter a whole number of minutes (0 to 1440)".into()),
        }
    }
}

/// `POST /admin/queue/remaining`: minutes left in the current set.
pub async fn set_remaining(
    State(state): State<AppState>,
    organiser: Organiser,
    CsrfForm(form): CsrfForm<MinutesForm>,
) -> Response {
    match form.seconds() {
        Ok(secs) => command(&state, &organiser, AdminCommand::SetRemaining { secs }).await,
        Err(e) => console(&state, &organiser, StatusCode::BAD_REQUEST, Some(&e)).await,
    }
}

/// `POST /admin/queue/swap-interval`: the length of a set, in minutes.
pub async fn set_swap_interval(
    State(state): State<AppState>,
    organiser: Organiser,
    CsrfForm(form): CsrfForm<MinutesForm>,
) -> Response {
    match form.seconds() {
        Ok(secs) if secs > 0 => {
            let reset_current = form.reset_current.is_some();
            command(&state, &organiser, AdminCommand::SetSwapInterval { secs, reset_current }).await
        }
        Ok(_) => console(&state, &organiser, StatusCode::BAD_REQUEST, Some("A set lasts at least a minute")).await,
        Err(e) => console(&state, &organiser, StatusCode::BAD_REQUEST, Some(&e)).await,
    }
}

#[derive(Deserialize)]
pub struct BlockForm {
    enabled: String,
}

/// `POST /admin/queue/block` (`enabled` = `true` | `false`).
pub async fn set_block(
    State(state): State<AppState>,
    organiser: Organiser,
    CsrfForm(form): CsrfForm<BlockForm>,
) -> Response {
    command(&state, &organiser, AdminCommand::SetBlock(form.enabled == "true")).await
}

/// `POST /admin/queue/{dj}/{move-up|move-down|remove}`.
pub async fn queue_action(
    State(state): State<AppState>,
    organiser: Organiser,
    Path((dj_name, action)): Path<(String, String)>,
    _: CsrfForm<Nothing>,
) -> Response {
    let user = match find_user(&state, &dj_name).await {
        Ok(user) => user,
        Err(e) => return console(&state, &organiser, e.status, Some(&e.detail)).await,
    };
    let cmd = match action.as_str() {
        "move-up" => AdminCommand::MoveUp { user_id: UserId(user.id) },
        "move-down" => AdminCommand::MoveDown { user_id: UserId(user.id) },
        "remove" => AdminCommand::Remove { user_id: UserId(user.id) },
        _ => return PageError::new(StatusCode::NOT_FOUND, "No such queue action").into_response(),
    };
    command(&state, &organiser, cmd).await
}

/// `POST /admin/users/{id}/{disable|enable|make-admin|revoke-admin}`.
pub async fn user_action(
    State(state): State<AppState>,
    organiser: Organiser,
    Path((id, action)): Path<(i64, String)>,
    _: CsrfForm<Nothing>,
) -> Response {
    let admin = &organiser.0.user;
    let result = async {
        let user = state
            .store
            .user_by_id(id)
            .await
            .map_err(|e| PageError::internal("user lookup", e))?
            .ok_or_else(|| PageError::new(StatusCode::NOT_FOUND, "No such user"))?;
        if user.id == admin.id && action != "make-admin" && action != "enable" {
            return Err(PageError::new(StatusCode::CONFLICT, "You cannot disable or demote yourself"));
        }
        tracing::info!("admin {}: {action} {}", admin.dj_name, user.dj_name);
        match action.as_str() {
            "disable" => accounts::disable(&state, &user).await.map_err(PageError::from),
            "enable" => state.store.set_active(user.id, true).await.map_err(|e| PageError::internal("enabling", e)),
            "make-admin" => state.store.set_admin(user.id, true).await.map_err(|e| PageError::internal("promoting", e)),
            "revoke-admin" => state
                .store
                .set_admin(user.id, false)
                .await
                .map_err(|e| accounts::AccountError::from_store("demoting", e).into()),
            _ => Err(PageError::new(StatusCode::NOT_FOUND, "No such user action")),
        }
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/admin#users").into_response(),
        Err(e) => console(&state, &organiser, e.status, Some(&e.message)).await,
    }
}

/// `POST /admin/destinations/{name}/restart`.
pub async fn restart_destination(
    State(state): State<AppState>,
    organiser: Organiser,
    Path(name): Path<String>,
    _: CsrfForm<Nothing>,
) -> Response {
    if !state.destinations.restart(&name) {
        return console(&state, &organiser, StatusCode::NOT_FOUND, Some("No such destination")).await;
    }
    tracing::info!("admin {}: restarting destination {name}", organiser.0.user.dj_name);
    Redirect::to("/admin#destinations").into_response()
}
