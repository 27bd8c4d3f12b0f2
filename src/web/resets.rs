//! Password reset by email: the logic shared by the pages (`pages::reset`) and the
//! seed-compatible API (`POST /api/v1/password-recovery/{email}`,
//! `POST /api/v1/reset-password/`), and the API's handlers.
//!
//! A link carries a random 256-bit token; the database keeps only its SHA-256. A link works
//! once, for `password_reset_ttl`, and asking again replaces the older links of the account.
//! Nothing tells whether an account exists for an address: the answer is the same either way.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::accounts::{AccountError, set_password};
use super::client_ip::ClientIp;
use super::error::{ApiError, rejection};
use super::session::{TOKEN_BYTES, is_tls, is_token};
use crate::auth::{random_hex, token_digest, validate_password};
use crate::store::unix_now;

/// Why a reset with a token did not happen.
#[derive(Debug)]
pub enum ResetError {
    /// Unknown, used or expired (which one is not told).
    InvalidToken,
    Account(AccountError),
}

impl From<AccountError> for ResetError {
    fn from(e: AccountError) -> Self {
        Self::Account(e)
    }
}

/// Where links in emails point: the configured public URL, else the address this request
/// was sent to. `None` if the Host header is missing or not a plain `host[:port]`.
fn site_base(state: &AppState, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = &state.public_url {
        return Some(url.clone());
    }
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let plain = (1..=255).contains(&host.len())
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    plain.then(|| format!("{}://{host}", if is_tls(headers) { "https" } else { "http" }))
}

/// Sends a reset link to the active account with this email, if there is one.
pub async fn request_reset(state: &AppState, headers: &HeaderMap, email: &str) -> Result<(), AccountError> {
    let base =
        site_base(state, headers).ok_or_else(|| AccountError::invalid("The request has no valid Host header"))?;
    let email = email.trim();
    // `user_by_login` would take anything else for a DJ name; this form asks for an email.
    if !email.contains('@') {
        return Ok(());
    }
    let user = state.store.user_by_login(email).await.map_err(|e| AccountError::internal("reset lookup", e))?;
    let Some(user) = user.filter(|u| u.is_active) else {
        tracing::info!("password reset asked for an address without an active account");
        return Ok(());
    };
    let token = random_hex(TOKEN_BYTES);
    let expires_at = unix_now() + state.password_reset_ttl.as_secs() as i64;
    state
        .store
        .create_password_reset(&token_digest(&token), user.id, expires_at)
        .await
        .map_err(|e| AccountError::internal("storing a reset link", e))?;
    if state.public_url.is_none() {
        // Anyone can send any Host header: whoever forwards a logged link must know that its
        // address is only what the requester claimed.
        tracing::warn!(
            "public_url is not set: password reset links point at {base}, taken from the request's Host header; \
             set public_url to your site's address"
        );
    }
    state.mailer.password_reset(&user, &format!("{base}/password-reset/{token}"));
    Ok(())
}

/// Whether the token of a link can still be used (the link's page shows the form or not).
pub async fn token_is_valid(state: &AppState, token: &str) -> Result<bool, AccountError> {
    if !is_token(token) {
        return Ok(false);
    }
    let user = state
        .store
        .password_reset_user(&token_digest(token))
        .await
        .map_err(|e| AccountError::internal("reset link lookup", e))?;
    Ok(user.is_some())
}

/// Sets a new password with a reset token, which is used up; every session of the user
/// ends. The password is checked first, so a too-short one does not waste the link.
pub async fn reset_with_token(state: &AppState, token: &str, new_password: &str) -> Result<(), ResetError> {
    if !is_token(token) {
        return Err(ResetError::InvalidToken);
    }
    validate_password(new_password).map_err(AccountError::invalid)?;
    let user_id = state
        .store
        .use_password_reset(&token_digest(token))
        .await
        .map_err(|e| AccountError::internal("using a reset link", e))?
        .ok_or(ResetError::InvalidToken)?;
    let user = state.store.user_by_id(user_id).await.map_err(|e| AccountError::internal("reset user lookup", e))?;
    let Some(user) = user.filter(|u| u.is_active) else {
        return Err(ResetError::InvalidToken);
    };
    set_password(state, &user, new_password, None).await?;
    tracing::info!("{} reset their password with an emailed link", user.dj_name);
    Ok(())
}

/// `POST /api/v1/password-recovery/{email}`: the same answer whether the account exists
/// or not; rate-limited per IP with sign-ups.
pub async fn recover_password(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    Path(email): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !state.signup_attempts.allow(client) {
        return Err(ApiError::new(StatusCode::TOO_MANY_REQUESTS, "Too many requests; try again in a minute"));
    }
    request_reset(&state, &headers, &email).await?;
    Ok(Json(json!({ "msg": "If an account exists for that address, we sent a password recovery email" })))
}

#[derive(Deserialize)]
pub struct NewPassword {
    token: String,
    new_password: String,
}

/// `POST /api/v1/reset-password/` with `{"token", "new_password"}`.
pub async fn reset_password(
    State(state): State<AppState>,
    body: Result<Json<NewPassword>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(rejection)?;
    match reset_with_token(&state, &body.token, &body.new_password).await {
        Ok(()) => Ok(Json(json!({ "msg": "Password updated successfully" }))),
        Err(ResetError::InvalidToken) => Err(ApiError::bad_request("Invalid token")),
        Err(ResetError::Account(e)) => Err(e.into()),
    }
}
