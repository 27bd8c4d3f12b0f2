//! HTTP: the seed-compatible endpoints, the JSON API under `/api/v1`, health.
//!
//! Handlers are thin: they authenticate, validate, then ask the queue actor or the store.

mod accounts;
mod api;
mod assets;
mod auth;
mod client_ip;
mod error;
mod events;
mod headers;
mod listener;
mod live;
mod metrics;
mod nowplaying;
mod overlays;
mod pages;
mod pictures;
mod program;
mod resets;
mod seed;
mod session;
mod setup;
mod users;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use ipnet::IpNet;

use crate::auth::TokenKeys;
use crate::ingest::Publishers;
use crate::integrations::destination::Destinations;
use crate::integrations::email::Mailer;
use crate::media::recorder::RecorderHandle;
use crate::metrics::Counters;
use crate::program::ProgramBus;
use crate::queue::actor::QueueHandle;
use crate::ratelimit::{AccountThrottle, PerIpCap, RateLimiter};
use crate::store::Store;
pub use accounts::validate_timezone;
pub use error::ApiError;
pub use listener::{HttpLimits, serve};
pub use live::{LiveState, Sources as LiveSources};
pub use setup::SetupLink;

/// Shared state of every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: QueueHandle,
    pub publishers: Publishers,
    pub program: ProgramBus,
    pub recorder: RecorderHandle,
    pub destinations: Destinations,
    pub tokens: TokenKeys,
    pub login_attempts: Arc<RateLimiter>,
    pub signup_attempts: Arc<RateLimiter>,
    /// Failed logins per account, from any address.
    pub login_failures: Arc<AccountThrottle>,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[IpNet]>,
    /// Open event streams per client address.
    pub event_streams: Arc<PerIpCap>,
    /// Open `/program.flv` viewers per client address.
    pub flv_viewers: Arc<PerIpCap>,
    /// Largest body of a JSON or form request.
    pub max_body: usize,
    /// Time to answer a request, reading its body included.
    pub request_timeout: Duration,
    /// Becomes true when the HTTP server starts its graceful shutdown: endless responses
    /// (`/program.flv`) end then, instead of holding it up.
    pub http_stopping: tokio::sync::watch::Receiver<bool>,
    /// Where profile pictures are stored (under `pictures/`).
    pub data_dir: PathBuf,
    pub mailer: Mailer,
    /// The RTMP port DJs publish to, for the server URL shown on the dashboard.
    pub rtmp_port: u16,
    /// The RTMP server URL to show DJs (`rtmp://host:port/live`) when the host they reach
    /// differs from the web page's (a proxy, another name).
    pub public_rtmp_url: Option<String>,
    /// The site's address (no trailing slash) for links in emails; `None`: the Host header.
    pub public_url: Option<String>,
    /// How long a password reset link stays valid.
    pub password_reset_ttl: Duration,
    pub counters: Arc<Counters>,
    /// True while the RTMP listener accepts connections.
    pub rtmp_listening: Arc<AtomicBool>,
    /// The public live state (on air, queue, clock, rates) for pages, overlays and SSE.
    pub live: LiveState,
    /// The one-time link that creates the first admin, while there is none.
    pub setup: SetupLink,
}

/// The HTML pages: they share the CSRF cookie middleware.
fn pages(max_body: usize) -> Router<AppState> {
    use pages::{account, admin, dashboard, reset, settings};
    Router::new()
        .route("/", get(account::home))
        .route("/signup", get(account::signup_page).post(account::signup))
        .route("/setup/{token}", get(setup::setup_page).post(setup::setup))
        .route("/login", get(account::login_page).post(account::login))
        .route("/logout", post(account::logout))
        .route("/password-reset", get(reset::request_page).post(reset::request))
        .route("/password-reset/{token}", get(reset::form_page).post(reset::reset))
        .route("/dashboard", get(dashboard::dashboard))
        .route("/dashboard/track", post(dashboard::post_track))
        .route("/sets", get(dashboard::sets))
        .route("/settings", get(settings::settings))
        .route("/settings/profile", post(settings::profile))
        .route(
            "/settings/picture",
            post(settings::picture).layer(DefaultBodyLimit::max(pictures::MAX_PICTURE_BYTES + max_body)),
        )
        .route("/settings/picture/remove", post(settings::remove_picture))
        .route("/settings/password", post(settings::password))
        .route("/settings/stream-key", post(settings::stream_key))
        .route("/settings/delete", post(settings::delete))
        .route("/admin", get(admin::admin))
        .route("/admin/queue/skip", post(admin::skip))
        .route("/admin/queue/pause", post(admin::pause))
        .route("/admin/queue/resume", post(admin::resume))
        .route("/admin/queue/remaining", post(admin::set_remaining))
        .route("/admin/queue/swap-interval", post(admin::set_swap_interval))
        .route("/admin/queue/block", post(admin::set_block))
        .route("/admin/queue/{dj_name}/{action}", post(admin::queue_action))
        .route("/admin/users/{id}/{action}", post(admin::user_action))
        .route("/admin/destinations/{name}/restart", post(admin::restart_destination))
        .route("/overlays", get(overlays::index))
        .layer(axum::middleware::from_fn(session::csrf_cookie))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pages(state.max_body))
        .route("/assets/{name}", get(assets::asset))
        .route("/pictures/{file}", get(pictures::serve))
        .route("/overlay/{name}", get(overlays::overlay))
        // Seed-compatible paths and shapes.
        .route("/queue-json", get(seed::queue_json))
        .route("/queue-list", get(seed::queue_list))
        .route("/timer-data", get(seed::timer_data))
        .route("/time-settings", get(seed::time_settings))
        .route("/update-timer/{seconds}", post(seed::update_timer))
        .route("/block-toggle", get(seed::get_block_toggle).post(seed::toggle_block))
        .route("/update-block-toggle/", post(seed::update_block_toggle))
        .route("/song-details", get(seed::song_details))
        .route("/timer-page", get(seed::timer_page))
        .route("/seed/song-json", get(seed::song_json))
        // JSON API.
        .route("/api/v1/login/access-token", post(api::login))
        .route("/api/v1/users/signup", post(users::signup))
        .route("/api/v1/users/", get(users::list))
        .route("/api/v1/users/me", get(users::me).patch(users::update_me).delete(users::delete_me))
        .route("/api/v1/users/me/password", axum::routing::patch(users::update_password))
        .route("/api/v1/users/{dj_name}/disable", post(users::disable))
        .route("/api/v1/users/me/track", post(nowplaying::post_track))
        .route("/song-json", get(nowplaying::song_json))
        .route("/api/v1/password-recovery/{email}", post(resets::recover_password))
        .route("/api/v1/reset-password/", post(resets::reset_password))
        .route("/api/v1/status", get(api::status))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/destinations/{name}/restart", post(api::restart_destination))
        .route("/api/v1/queue/skip", post(api::skip))
        .route("/api/v1/queue/pause", post(api::pause_timer))
        .route("/api/v1/queue/resume", post(api::resume_timer))
        .route("/api/v1/queue/reset-timer", post(api::reset_timer))
        .route("/api/v1/queue/remaining", post(api::set_remaining))
        .route("/api/v1/queue/swap-interval", post(api::set_swap_interval))
        .route("/api/v1/queue/block", post(api::set_block))
        .route("/api/v1/queue/{dj_name}/remove", post(api::remove))
        .route("/api/v1/queue/{dj_name}/move-up", post(api::move_up))
        .route("/api/v1/queue/{dj_name}/move-down", post(api::move_down))
        .route("/program.flv", get(program::program_flv))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(metrics::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { ApiError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async { ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(axum::middleware::from_fn_with_state(state.request_timeout, listener::request_timeout))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_requests))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(state)
}
