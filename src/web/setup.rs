//! The first admin account: made by the operator, never by whoever signs up first.
//!
//! A server without an active admin prints a one-time setup link in its log at start
//! (`/setup/<token>`); whoever reads the log opens it and creates the admin account. The
//! link works once, only while there is still no active admin, and only in this process (a
//! restart prints a new one). `motherstream user add --admin` is the other way.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;

use super::AppState;
use super::accounts;
use super::pages::{PageError, base_context, render, render_status};
use super::session::{CsrfForm, TOKEN_BYTES, WebSession, is_token, start_session};
use crate::auth::{random_hex, token_digest};

/// The pending setup link's token digest, if there is one.
#[derive(Clone, Default)]
pub struct SetupLink(Arc<Mutex<Option<String>>>);

impl std::fmt::Debug for SetupLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupLink(..)")
    }
}

impl SetupLink {
    /// A new link's token (only its digest is kept); replaces any older one.
    pub fn create(&self) -> String {
        let token = random_hex(TOKEN_BYTES);
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(token_digest(&token));
        token
    }

    fn matches(&self, token: &str) -> bool {
        let held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        is_token(token) && held.as_deref().is_some_and(|digest| *digest == token_digest(token))
    }

    /// Makes `token` valid again (the account could not be created).
    fn put_back(&self, token: &str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(token_digest(token));
    }

    /// Uses the link up if `token` is its token; true if it was.
    fn take(&self, token: &str) -> bool {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let ok = is_token(token) && held.as_deref().is_some_and(|digest| *digest == token_digest(token));
        if ok {
            *held = None;
        }
        ok
    }
}

fn gone() -> PageError {
    PageError::new(StatusCode::NOT_FOUND, "This setup link is not valid (any more).")
}

/// A valid link while there is still no active admin.
async fn usable(state: &AppState, token: &str) -> Result<(), PageError> {
    if !state.setup.matches(token) {
        return Err(gone());
    }
    let has_admin = state.store.has_active_admin().await.map_err(|e| PageError::internal("admin lookup", e))?;
    if has_admin { Err(gone()) } else { Ok(()) }
}

/// `GET /setup/{token}`: the form for the admin account.
pub async fn setup_page(
    State(state): State<AppState>,
    session: WebSession,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    usable(&state, &token).await?;
    let action = format!("/setup/{token}");
    Ok(render("signup.html", context! { setup => true, action => action, ..base_context(&session) })?.into_response())
}

/// `POST /setup/{token}`: creates the admin account, uses the link up, logs the browser in.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: WebSession,
    Path(token): Path<String>,
    CsrfForm(form): CsrfForm<super::pages::account::SignupForm>,
) -> Response {
    if let Err(e) = usable(&state, &token).await {
        return e.into_response();
    }
    let action = format!("/setup/{token}");
    let again = |status: StatusCode, error: &str| {
        render_status(
            status,
            "signup.html",
            context! { setup => true, action => action, error => error,
            dj_name => form.dj_name, email => form.email, ..base_context(&session) },
        )
    };
    // Checked before the link is used up, so a typo does not waste it.
    if let Err(e) = accounts::validate_new_account(&form.dj_name, &form.email, &form.password) {
        return again(e.status, &e.message);
    }
    if !state.setup.take(&token) {
        return gone().into_response();
    }
    let user = match accounts::create_account(&state, &form.dj_name, &form.email, &form.password, true).await {
        Ok(user) => user,
        Err(e) => {
            // The name or email was taken: the operator may try again with the same link.
            state.setup.put_back(&token);
            return again(e.status, &e.message);
        }
    };
    tracing::info!("first admin created with the setup link: {}", user.dj_name);
    match start_session(&state, &headers, &user).await {
        Ok(cookies) => (cookies, Redirect::to("/admin")).into_response(),
        Err(e) => e.into_response(),
    }
}
