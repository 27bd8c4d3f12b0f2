//! Server-rendered pages: account pages, the DJ's dashboard and settings, the admin
//! console. Templates (minijinja, `templates/`) and assets are embedded in the binary.
//!
//! Pages work without JavaScript: forms post with CSRF tokens and redirect (303) back;
//! small scripts add live updates over `/api/v1/events` and copy buttons.

use std::sync::LazyLock;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, Value, context};

use super::session::WebSession;

pub mod account;
pub mod admin;
pub mod dashboard;
pub mod reset;
pub mod settings;
pub mod timetable;
pub mod watch;

/// Every template, embedded at build time.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../templates/", $name)))),*]
    };
}

// One per line, so adding a page is a one-line change.
#[rustfmt::skip]
const TEMPLATES: &[(&str, &str)] = templates![
    "base.html",
    "error.html",
    "home.html",
    "signup.html",
    "login.html",
    "dashboard.html",
    "settings.html",
    "sets.html",
    "admin.html",
    "reset_request.html",
    "reset_form.html",
    "overlays.html",
    "overlay_base.html",
    "overlay_now.html",
    "overlay_next.html",
    "overlay_queue.html",
    "overlay_timer.html",
    "overlay_clock.html",
    "player.html",
    "on_air.html",
    "watch.html",
    "preview.html",
    "embed.html",
    "timetable.html",
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        // Templates are part of the binary and covered by tests: a syntax error is a bug
        // caught before release, reported at first render below.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!("template {name}: {e:#}");
        }
    }
    env.add_filter("duration", format_duration);
    env.add_filter("datetime", crate::calendar::format_datetime);
    env
});

/// Renders a template with `ctx`.
pub fn render(name: &str, ctx: Value) -> Result<Html<String>, PageError> {
    ENV.get_template(name)
        .and_then(|t| t.render(ctx))
        .map(Html)
        .map_err(|e| PageError::internal(&format!("rendering {name}"), format!("{e:#}")))
}

/// Renders a template as a response with a status other than 200 (a form with errors).
pub fn render_status(status: StatusCode, name: &str, ctx: Value) -> Response {
    match render(name, ctx) {
        Ok(html) => (status, html).into_response(),
        Err(e) => e.into_response(),
    }
}

/// What every page's layout needs: who is logged in and the CSRF token for forms.
pub fn base_context(session: &WebSession) -> Value {
    let user = session
        .user
        .as_ref()
        .map(|u| context! { dj_name => u.dj_name, is_admin => u.is_admin, timezone => u.timezone });
    context! { user => user, csrf => session.csrf }
}

/// A failure shown as an HTML page with the right status.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    /// A failure of ours: logged in full, shown without internals.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {err}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side. Please try again.")
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let page = ENV.get_template("error.html").and_then(|t| {
            t.render(context! { title => title, message => self.message, status => self.status.as_u16() })
        });
        match page {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

/// An API operation's refusal, shown as a page (its message is already fit for users).
impl From<super::ApiError> for PageError {
    fn from(e: super::ApiError) -> Self {
        Self::new(e.status, e.detail)
    }
}

impl From<crate::queue::actor::QueueGone> for PageError {
    fn from(_: crate::queue::actor::QueueGone) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "The queue service is not running.")
    }
}

/// `95` → `1:35`, `3700` → `1:01:40`.
pub fn format_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 { format!("{h}:{m:02}:{s:02}") } else { format!("{m}:{s:02}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            ENV.get_template(name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(0), "0:00");
        assert_eq!(format_duration(95), "1:35");
        assert_eq!(format_duration(3700), "1:01:40");
    }
}
