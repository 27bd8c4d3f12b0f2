//! Password reset pages: asking for a link, and the link's page that sets a new password.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::{PageError, base_context, render, render_status};
use crate::web::AppState;
use crate::web::client_ip::ClientIp;
use crate::web::resets::{self, ResetError};
use crate::web::session::{CsrfForm, WebSession};

/// Shown for unknown, used and expired links alike.
const INVALID_LINK: &str = "This link is invalid, already used or expired. Ask for a new one.";

#[derive(Deserialize)]
pub struct RequestQuery {
    sent: Option<String>,
}

/// `GET /password-reset` (`?sent=1` after a request: the same answer for every address).
pub async fn request_page(
    State(state): State<AppState>,
    session: WebSession,
    Query(query): Query<RequestQuery>,
) -> Result<Response, PageError> {
    let ttl_minutes = state.password_reset_ttl.as_secs().div_ceil(60);
    Ok(render(
        "reset_request.html",
        context! { active => "login", sent => query.sent.is_some(), ttl_minutes => ttl_minutes, ..base_context(&session) },
    )?
    .into_response())
}

#[derive(Deserialize)]
pub struct RequestForm {
    #[serde(default)]
    email: String,
}

/// `POST /password-reset`: sends a link if the account exists, answers the same either way.
pub async fn request(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    session: WebSession,
    CsrfForm(form): CsrfForm<RequestForm>,
) -> Response {
    let again = |status: StatusCode, error: &str| {
        render_status(
            status,
            "reset_request.html",
            context! { active => "login", error => error, email => form.email, ..base_context(&session) },
        )
    };
    if !state.signup_attempts.allow(client) {
        return again(StatusCode::TOO_MANY_REQUESTS, "Too many requests from your address; try again in a minute.");
    }
    match resets::request_reset(&state, &headers, &form.email).await {
        Ok(()) => Redirect::to("/password-reset?sent=1").into_response(),
        Err(e) => again(e.status, &e.message),
    }
}

/// The link's page: the form while the link works (`token`), else just the error.
fn reset_page(status: StatusCode, session: &WebSession, token: Option<&str>, error: Option<&str>) -> Response {
    render_status(status, "reset_form.html", context! { token => token, error => error, ..base_context(session) })
}

/// `GET /password-reset/{token}`.
pub async fn form_page(State(state): State<AppState>, session: WebSession, Path(token): Path<String>) -> Response {
    match resets::token_is_valid(&state, &token).await {
        Ok(true) => reset_page(StatusCode::OK, &session, Some(&token), None),
        Ok(false) => reset_page(StatusCode::BAD_REQUEST, &session, None, Some(INVALID_LINK)),
        Err(e) => PageError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    password: String,
}

/// `POST /password-reset/{token}`: sets the password, ends every session, then login.
pub async fn reset(
    State(state): State<AppState>,
    session: WebSession,
    Path(token): Path<String>,
    CsrfForm(form): CsrfForm<ResetForm>,
) -> Response {
    match resets::reset_with_token(&state, &token, &form.password).await {
        Ok(()) => Redirect::to("/login?reset=1").into_response(),
        Err(ResetError::InvalidToken) => reset_page(StatusCode::BAD_REQUEST, &session, None, Some(INVALID_LINK)),
        Err(ResetError::Account(e)) => reset_page(e.status, &session, Some(&token), Some(&e.message)),
    }
}
