//! Home, sign-up, log-in and log-out pages.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::{PageError, base_context, render, render_status};
use crate::web::AppState;
use crate::web::accounts::{self, BAD_LOGIN};
use crate::web::auth;
use crate::web::client_ip::ClientIp;
use crate::web::seed::dj_names;
use crate::web::session::{CsrfForm, WebSession, end_session, start_session};

/// `GET /`: the channel at a glance; logged-in DJs go straight to their dashboard.
pub async fn home(State(state): State<AppState>, session: WebSession) -> Result<Response, PageError> {
    if session.user.is_some() {
        return Ok(Redirect::to("/dashboard").into_response());
    }
    let status = state.queue.status().await?;
    let names = dj_names(&status);
    let on_air = status.lead.as_ref().map(|l| l.dj.dj_name.clone());
    let queue: Vec<_> = names.into_iter().skip(usize::from(on_air.is_some())).collect();
    Ok(render("home.html", context! { on_air => on_air, queue => queue, active => "home", ..base_context(&session) })?
        .into_response())
}

#[derive(Deserialize, Default)]
pub struct SignupForm {
    #[serde(default)]
    pub(crate) dj_name: String,
    #[serde(default)]
    pub(crate) email: String,
    #[serde(default)]
    pub(crate) password: String,
}

/// `GET /signup`.
pub async fn signup_page(session: WebSession) -> Result<Response, PageError> {
    if session.user.is_some() {
        return Ok(Redirect::to("/dashboard").into_response());
    }
    Ok(render("signup.html", context! { active => "signup", ..base_context(&session) })?.into_response())
}

/// `POST /signup`: creates the account, logs the browser in, shows the dashboard.
pub async fn signup(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    session: WebSession,
    CsrfForm(form): CsrfForm<SignupForm>,
) -> Response {
    let again = |status: StatusCode, error: &str| {
        render_status(
            status,
            "signup.html",
            context! { active => "signup", error => error,
            dj_name => form.dj_name, email => form.email, ..base_context(&session) },
        )
    };
    if !state.signup_attempts.allow(client) {
        return again(StatusCode::TOO_MANY_REQUESTS, "Too many sign-ups from your address; try again in a minute.");
    }
    let user = match accounts::sign_up(&state, &form.dj_name, &form.email, &form.password).await {
        Ok(user) => user,
        Err(e) => return again(e.status, &e.message),
    };
    state.mailer.welcome(&user);
    match start_session(&state, &headers, &user).await {
        Ok(cookies) => (cookies, Redirect::to("/dashboard?welcome=1")).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    reset: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// Only plain paths on this site are followed after logging in (no open redirect).
/// Browsers drop tabs and newlines from a `Location` and read `\` as `/`, so `/\t/host` would
/// leave the site: only visible ASCII passes, and no backslash at all. That also keeps
/// anything that cannot be a header value out of `Redirect::to`.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/') && !n.starts_with("//") && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n
        }
        _ => "/dashboard",
    }
}

/// `GET /login`.
pub async fn login_page(session: WebSession, Query(query): Query<LoginQuery>) -> Result<Response, PageError> {
    if session.user.is_some() {
        return Ok(Redirect::to(safe_next(query.next.as_deref())).into_response());
    }
    let notice = query.reset.is_some().then_some("Your password was changed. Log in with the new one.");
    Ok(render(
        "login.html",
        context! { active => "login", next => query.next, notice => notice, ..base_context(&session) },
    )?
    .into_response())
}

/// `POST /login`.
pub async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    session: WebSession,
    CsrfForm(form): CsrfForm<LoginForm>,
) -> Response {
    let again = |status: StatusCode, error: &str| {
        render_status(
            status,
            "login.html",
            context! { active => "login", error => error,
            username => form.username, next => form.next, ..base_context(&session) },
        )
    };
    if !state.login_attempts.allow(client) {
        return again(StatusCode::TOO_MANY_REQUESTS, "Too many attempts from your address; try again in a minute.");
    }
    let user = match auth::log_in(&state, &form.username, &form.password).await {
        Ok(user) => user,
        Err(e) if matches!(e.status, StatusCode::INTERNAL_SERVER_ERROR | StatusCode::TOO_MANY_REQUESTS) => {
            return again(e.status, &e.message);
        }
        Err(_) => return again(StatusCode::BAD_REQUEST, BAD_LOGIN),
    };
    match start_session(&state, &headers, &user).await {
        Ok(cookies) => (cookies, Redirect::to(safe_next(form.next.as_deref()))).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub struct Empty {}

/// `POST /logout`.
pub async fn logout(
    State(state): State<AppState>,
    session: WebSession,
    CsrfForm(_): CsrfForm<Empty>,
) -> Result<Response, PageError> {
    let cookies = end_session(&state, &session).await?;
    Ok((cookies, Redirect::to("/login")).into_response())
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/admin")), "/admin");
        assert_eq!(safe_next(Some("/sets?x=1")), "/sets?x=1");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "admin",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\nSet-Cookie: x=1",
            "/ /evil.example",
            "/caf\u{e9}",
            "/\u{7f}",
        ] {
            assert_eq!(safe_next(Some(bad)), "/dashboard", "{bad}");
        }
        assert_eq!(safe_next(None), "/dashboard");
    }
}
