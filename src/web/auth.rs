//! Request authentication: bearer JWTs resolved to live accounts, and password logins
//! throttled per account.

use std::time::Instant;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use super::AppState;
use super::accounts::{self, AccountError};
use super::error::ApiError;
use crate::store::User;

/// Checks a password login (by email or DJ name), refusing an account that has had too many
/// failures lately, whichever addresses they came from. Callers check the per-address limit
/// first.
pub async fn log_in(state: &AppState, login: &str, password: &str) -> Result<User, AccountError> {
    // Counted by account, so the email and the DJ name of one account share their count.
    let key = match state.store.user_by_login(login).await {
        Ok(Some(user)) => format!("id:{}", user.id),
        Ok(None) => format!("login:{login}"),
        Err(e) => return Err(AccountError::internal("login lookup", e)),
    };
    if state.login_failures.is_locked(&key, Instant::now()) {
        return Err(AccountError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: "Too many failed logins for this account; try again later".into(),
        });
    }
    let result = accounts::authenticate(state, login, password).await;
    match &result {
        Ok(_) => state.login_failures.record_success(&key),
        Err(e) if e.status == StatusCode::BAD_REQUEST => state.login_failures.record_failure(&key, Instant::now()),
        Err(_) => {}
    }
    result
}

/// The authenticated, active user making the request (401 otherwise).
pub struct CurrentUser(pub User);

/// An authenticated admin (401 without a valid token, 403 for other users).
pub struct AdminUser(pub User);

/// The user if a valid token was sent, for endpoints that show more to admins.
pub struct MaybeUser(pub Option<User>);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(parts).ok_or_else(ApiError::unauthorized)?;
        let invalid = || ApiError::new(StatusCode::UNAUTHORIZED, "Could not validate credentials");
        let subject = state.tokens.verify(token).ok_or_else(invalid)?;
        let user = state
            .store
            .user_by_id(subject.user_id)
            .await
            .map_err(|e| ApiError::internal("loading the token's user", e))?
            .ok_or_else(ApiError::unauthorized)?;
        if user.token_version != subject.version {
            return Err(invalid());
        }
        if !user.is_active {
            return Err(ApiError::forbidden("Inactive user"));
        }
        Ok(Self(user))
    }
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if !user.is_admin {
            return Err(ApiError::forbidden("The user doesn't have enough privileges"));
        }
        Ok(Self(user))
    }
}

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if bearer_token(parts).is_none() {
            return Ok(Self(None));
        }
        Ok(Self(CurrentUser::from_request_parts(parts, state).await.ok().map(|u| u.0)))
    }
}

fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}
