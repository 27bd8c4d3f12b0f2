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

/// Every template, embedded at build time.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../../templates/", $name)))),*]
    };
}

const TEMPLATES: &[(&str, &str)] = templates![
    "base.html",
    "error.html",
    "home.html",
    "signup.html",
    "login.html",
    "overlays.html",
    "overlay_base.html",
    "overlay_now.html",
    "overlay_next.html",
    "overlay_queue.html",
    "overlay_timer.html",
    "overlay_clock.html",
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
    env.add_filter("datetime", format_datetime);
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
    let user = session.user.as_ref().map(|u| context! { dj_name => u.dj_name, is_admin => u.is_admin });
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

/// Unix seconds → `2026-11-26 14:05 UTC`.
pub fn format_datetime(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs / 60 % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
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
    fn durations_and_dates_read_naturally() {
        assert_eq!(format_duration(0), "0:00");
        assert_eq!(format_duration(95), "1:35");
        assert_eq!(format_duration(3700), "1:01:40");
        assert_eq!(format_datetime(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_datetime(1_795_000_000), "2026-11-18 11:06 UTC");
        assert_eq!(format_datetime(951_782_400), "2000-02-29 00:00 UTC");
    }
}
