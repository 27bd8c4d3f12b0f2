//! Seed-compatible user endpoints under `/api/v1/users` (bearer tokens, JSON).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::accounts;
use super::api::find_user;
use super::auth::{AdminUser, CurrentUser};
use super::client_ip::ClientIp;
use super::error::{ApiError, rejection};
use super::pictures;
use crate::store::{Profile, User};

/// A user as shown to themselves (their own stream key included) or to admins.
#[derive(Serialize)]
pub struct UserView {
    id: i64,
    dj_name: String,
    email: String,
    timezone: String,
    stream_key: String,
    is_active: bool,
    is_superuser: bool,
    profile_picture: Option<String>,
    created_at: i64,
    /// Email when up next (opt-in); their Discord user id, mentioned when up next.
    up_next_email: bool,
    discord_user_id: Option<String>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            dj_name: u.dj_name,
            email: u.email,
            timezone: u.timezone,
            stream_key: u.stream_key,
            is_active: u.is_active,
            is_superuser: u.is_admin,
            profile_picture: u.profile_picture.as_deref().map(pictures::url),
            created_at: u.created_at,
            up_next_email: u.up_next_email,
            discord_user_id: u.discord_user_id,
        }
    }
}

#[derive(Deserialize)]
pub struct SignupBody {
    dj_name: String,
    email: String,
    password: String,
}

/// `POST /api/v1/users/signup {"dj_name", "email", "password"}` → the new user (with their
/// stream key). Rate-limited per IP like the sign-up page.
pub async fn signup(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    body: Result<Json<SignupBody>, JsonRejection>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    if !state.signup_attempts.allow(client) {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many sign-ups; try again in a minute"));
    }
    let Json(body) = body.map_err(rejection)?;
    let user = accounts::sign_up(&state, &body.dj_name, &body.email, &body.password).await?;
    state.mailer.welcome(&user);
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// `GET /api/v1/users/me`.
pub async fn me(CurrentUser(user): CurrentUser) -> Json<UserView> {
    Json(user.into())
}

#[derive(Deserialize)]
pub struct ProfilePatch {
    dj_name: Option<String>,
    email: Option<String>,
    timezone: Option<String>,
    /// Required when the email changes: the email is where reset links go.
    current_password: Option<String>,
}

/// `PATCH /api/v1/users/me {"dj_name"?, "email"?, "timezone"?, "current_password"?}`.
pub async fn update_me(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    body: Result<Json<ProfilePatch>, JsonRejection>,
) -> Result<Json<UserView>, ApiError> {
    let Json(patch) = body.map_err(rejection)?;
    let email_changes = patch.email.as_deref().is_some_and(|e| !e.trim().eq_ignore_ascii_case(&user.email));
    if email_changes {
        let current = patch
            .current_password
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("current_password is required to change the email"))?;
        accounts::check_password(&user, current).await?;
    }
    let profile = Profile {
        dj_name: patch.dj_name.unwrap_or_else(|| user.dj_name.clone()),
        email: patch.email.unwrap_or_else(|| user.email.clone()),
        timezone: patch.timezone.unwrap_or_else(|| user.timezone.clone()),
    };
    accounts::update_profile(&state, &user, profile).await?;
    state.live.poke();
    let updated = state
        .store
        .user_by_id(user.id)
        .await
        .map_err(|e| ApiError::internal("reloading a user", e))?
        .ok_or_else(|| ApiError::not_found("User not found"))?;
    Ok(Json(updated.into()))
}

#[derive(Deserialize)]
pub struct CurrentPassword {
    current_password: String,
}

/// `DELETE /api/v1/users/me {"current_password"}`.
pub async fn delete_me(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    body: Result<Json<CurrentPassword>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|_| ApiError::bad_request("current_password is required to delete the account"))?;
    accounts::check_password(&user, &body.current_password).await?;
    accounts::delete_account(&state, &user).await?;
    Ok(Json(json!({ "message": "User deleted successfully" })))
}

#[derive(Deserialize)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// `PATCH /api/v1/users/me/password {"current_password", "new_password"}`; ends the user's
/// browser sessions and revokes their API tokens (log in again for a new one).
pub async fn update_password(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    body: Result<Json<PasswordBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(rejection)?;
    if body.current_password == body.new_password {
        return Err(ApiError::bad_request("New password cannot be the same as the current one"));
    }
    accounts::change_password(&state, &user, &body.current_password, &body.new_password, None).await?;
    Ok(Json(json!({ "message": "Password updated successfully" })))
}

#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    skip: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

/// `GET /api/v1/users/?skip=&limit=` (admins) → `{"data": [...], "count": n}`.
pub async fn list(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(page) = page.map_err(rejection)?;
    let users = state.store.list_users().await.map_err(|e| ApiError::internal("listing users", e))?;
    let count = users.len();
    let data: Vec<UserView> = users.into_iter().skip(page.skip).take(page.limit.min(1000)).map(Into::into).collect();
    Ok(Json(json!({ "data": data, "count": count })))
}

/// `POST /api/v1/users/{dj_name}/disable`: the key stops working and the DJ is kicked.
pub async fn disable(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(dj_name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = find_user(&state, &dj_name).await?;
    tracing::info!("admin {}: disabling {}", admin.dj_name, user.dj_name);
    accounts::disable(&state, &user).await?;
    Ok(Json(json!({ "status": "success", "dj_name": user.dj_name, "is_active": false })))
}
