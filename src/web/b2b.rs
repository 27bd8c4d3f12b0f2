//! Back-to-back sets over HTTP: `/api/v1/sets/current/…`, the original's
//! `/multi-dj-per-stream`, and the form the dashboard and the admin console post.
//!
//! Who may change a set is the engine's rule (a member of the set, or an admin); these
//! handlers only say who asks.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::api::find_user;
use super::auth::CurrentUser;
use super::error::{ApiError, rejection};
use super::pages::PageError;
use super::session::{CsrfForm, Member};
use crate::ids::UserId;
use crate::queue::engine::{AdminError, B2bError, Caller, Dj, Input, MAX_MEMBERS, Status};
use crate::store::User;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MemberAction {
    #[default]
    Add,
    Remove,
}

/// `POST /api/v1/sets/current/members {"dj_name": "Bob", "action": "add" | "remove"}`;
/// `"set": "Alice"` names a queued set instead, by one of its DJs.
#[derive(Deserialize)]
pub struct MembersForm {
    dj_name: String,
    #[serde(default)]
    action: MemberAction,
    set: Option<String>,
}

/// `POST /api/v1/sets/current/handover {"to": "Bob"}`; without `to`, the caller takes over.
#[derive(Deserialize)]
pub struct HandOverForm {
    to: Option<String>,
}

/// `POST /multi-dj-per-stream {"dj_names": ["Bob", …]}`.
#[derive(Deserialize)]
pub struct MultiDjForm {
    dj_names: Vec<String>,
}

fn caller(user: &User) -> Caller {
    if user.is_admin { Caller::Admin } else { Caller::Dj(UserId(user.id)) }
}

fn dj(user: &User) -> Dj {
    Dj { user_id: UserId(user.id), dj_name: user.dj_name.clone() }
}

/// The set on air, named by the member on air (any member names it for the engine).
async fn current_set(state: &AppState) -> Result<UserId, ApiError> {
    let status = state.queue.status().await?;
    status.lead.map(|lead| lead.dj.user_id).ok_or_else(|| ApiError::not_found("Nobody is on air."))
}

fn set_error(e: AdminError) -> ApiError {
    let status = match e {
        AdminError::B2b(B2bError::NotAllowed) => StatusCode::FORBIDDEN,
        AdminError::B2b(B2bError::NoSuchSet | B2bError::NotAMember) | AdminError::NotInQueue => StatusCode::NOT_FOUND,
        _ => StatusCode::CONFLICT,
    };
    ApiError::new(status, e.to_string())
}

/// The outer error is the request's failure, the inner one the engine's refusal.
async fn run(state: &AppState, user: &User, input: Input) -> Result<Result<(), AdminError>, ApiError> {
    tracing::info!("{}: {input:?}", user.dj_name);
    Ok(state.queue.change_set(input).await?)
}

/// The current set as the API shows it: every name, who is on air, who streams.
pub fn set_view(status: &Status) -> Value {
    let Some(lead) = &status.lead else {
        return json!({ "on_air": null, "dj_names": [], "members": [] });
    };
    let members: Vec<Value> = if lead.members.is_empty() {
        vec![json!({ "dj_name": lead.dj.dj_name, "on_air": true, "live": lead.conn.is_some() })]
    } else {
        lead.members
            .iter()
            .map(|m| json!({ "dj_name": m.dj.dj_name, "on_air": m.on_air, "live": m.conn.is_some() }))
            .collect()
    };
    json!({
        "on_air": lead.dj.dj_name,
        "dj_names": set_names(status),
        "members": members,
    })
}

/// Every DJ of the set on air, in the order they joined: one name for a solo set.
pub fn set_names(status: &Status) -> Vec<String> {
    match &status.lead {
        None => Vec::new(),
        Some(lead) if lead.members.is_empty() => vec![lead.dj.dj_name.clone()],
        Some(lead) => lead.members.iter().map(|m| m.dj.dj_name.clone()).collect(),
    }
}

async fn answer(state: &AppState) -> Result<Json<Value>, ApiError> {
    let status = state.queue.status().await?;
    let mut view = set_view(&status);
    view["status"] = json!("success");
    Ok(Json(view))
}

/// The set on air, or the one `named` by one of its DJs (a queued set).
async fn named_set(state: &AppState, named: Option<&str>) -> Result<UserId, ApiError> {
    match named.filter(|name| !name.is_empty()) {
        Some(name) => Ok(UserId(find_user(state, name).await?.id)),
        None => current_set(state).await,
    }
}

async fn change_members(
    state: &AppState,
    user: &User,
    set: Option<&str>,
    dj_name: &str,
    action: MemberAction,
) -> Result<Result<(), AdminError>, ApiError> {
    let set = named_set(state, set).await?;
    let partner = find_user(state, dj_name).await?;
    let input = match action {
        MemberAction::Add => Input::AddMember { set, dj: dj(&partner), by: caller(user) },
        MemberAction::Remove => Input::RemoveMember { set, user: UserId(partner.id), by: caller(user) },
    };
    run(state, user, input).await
}

async fn hand_over(state: &AppState, user: &User, to: Option<&str>) -> Result<(), ApiError> {
    let set = current_set(state).await?;
    let to = match to {
        Some(name) => UserId(find_user(state, name).await?.id),
        None => UserId(user.id),
    };
    run(state, user, Input::HandOver { set, to, by: caller(user) }).await?.map_err(set_error)
}

/// `POST /api/v1/sets/current/members`: adds a DJ to the set on air, or takes one out.
pub async fn members(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    body: Result<Json<MembersForm>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(form) = body.map_err(rejection)?;
    change_members(&state, &user, form.set.as_deref(), &form.dj_name, form.action).await?.map_err(set_error)?;
    answer(&state).await
}

/// `POST /api/v1/sets/current/handover`: puts another member (or the caller) on air.
pub async fn handover(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    body: Result<Json<HandOverForm>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(form) = body.map_err(rejection)?;
    hand_over(&state, &user, form.to.as_deref()).await?;
    answer(&state).await
}

/// `POST /multi-dj-per-stream`: the original's unfinished endpoint, as the DJs of one
/// stream: adds every named DJ not in the set on air yet.
pub async fn multi_dj_per_stream(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    body: Result<Json<MultiDjForm>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(form) = body.map_err(rejection)?;
    if form.dj_names.len() > MAX_MEMBERS {
        return Err(ApiError::bad_request(format!("A set takes at most {MAX_MEMBERS} DJs.")));
    }
    for name in &form.dj_names {
        match change_members(&state, &user, None, name, MemberAction::Add).await? {
            // Naming the whole line-up, the caller included, is fine: who is in stays in.
            Ok(()) | Err(AdminError::B2b(B2bError::AlreadyMember)) => {}
            Err(e) => return Err(set_error(e)),
        }
    }
    answer(&state).await
}

/// The dashboard's and the admin console's form: `dj_name` (empty to take over).
#[derive(Deserialize)]
pub struct SetForm {
    #[serde(default)]
    dj_name: String,
    /// `admin` to come back to the console.
    #[serde(default)]
    back: String,
    /// A DJ of a queued set, to change that set rather than the one on air.
    #[serde(default)]
    set: String,
}

/// `POST /dashboard/set/{add|remove|handover}`.
pub async fn set_action(
    State(state): State<AppState>,
    member: Member,
    Path(action): Path<String>,
    CsrfForm(form): CsrfForm<SetForm>,
) -> Result<Response, PageError> {
    let user = &member.user;
    let name = form.dj_name.trim();
    match action.as_str() {
        "add" => change_members(&state, user, Some(&form.set), name, MemberAction::Add).await?.map_err(set_error)?,
        "remove" => {
            change_members(&state, user, Some(&form.set), name, MemberAction::Remove).await?.map_err(set_error)?
        }
        "handover" => hand_over(&state, user, Some(name).filter(|n| !n.is_empty())).await?,
        _ => return Err(PageError::new(StatusCode::NOT_FOUND, "No such set action")),
    }
    let back = if form.back == "admin" && user.is_admin { "/admin" } else { "/dashboard?saved=set" };
    Ok(Redirect::to(back).into_response())
}
