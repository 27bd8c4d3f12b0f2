//! HTTP: the seed-compatible endpoints, the JSON API under `/api/v1`, health.
//!
//! Handlers are thin: they authenticate, validate, then ask the queue actor or the store.

mod accounts;
mod api;
mod assets;
mod auth;
mod error;
mod events;
mod live;
mod metrics;
mod overlays;
mod pages;
mod pictures;
mod program;
mod seed;
mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};

use crate::auth::TokenKeys;
use crate::config::ExpectedProfile;
use crate::ingest::Publishers;
use crate::integrations::destination::Destinations;
use crate::integrations::email::Mailer;
use crate::media::recorder::RecorderHandle;
use crate::metrics::Counters;
use crate::program::ProgramBus;
use crate::queue::actor::QueueHandle;
use crate::ratelimit::RateLimiter;
use crate::store::Store;
pub use error::ApiError;
pub use live::{LiveState, Sources as LiveSources};

/// Largest request body accepted (JSON and forms are tiny).
const MAX_BODY: usize = 64 * 1024;

/// Shared state of every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: QueueHandle,
    pub publishers: Publishers,
    pub program: ProgramBus,
    pub recorder: RecorderHandle,
    pub destinations: Destinations,
    pub expected_profile: Arc<ExpectedProfile>,
    pub tokens: TokenKeys,
    pub login_attempts: Arc<RateLimiter>,
    pub signup_attempts: Arc<RateLimiter>,
    /// Where profile pictures are stored (under `pictures/`).
    pub data_dir: PathBuf,
    pub mailer: Mailer,
    pub counters: Arc<Counters>,
    /// True while the RTMP listener accepts connections.
    pub rtmp_listening: Arc<AtomicBool>,
    /// The public live state (on air, queue, clock, rates) for pages, overlays and SSE.
    pub live: LiveState,
}

/// The HTML pages: they share the CSRF cookie middleware.
fn pages() -> Router<AppState> {
    use pages::account;
    Router::new()
        .route("/", get(account::home))
        .route("/signup", get(account::signup_page).post(account::signup))
        .route("/login", get(account::login_page).post(account::login))
        .route("/logout", post(account::logout))
        .route("/overlays", get(overlays::index))
        .layer(axum::middleware::from_fn(session::csrf_cookie))
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(pages())
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
        // JSON API.
        .route("/api/v1/login/access-token", post(api::login))
        .route("/api/v1/users/me", get(api::me))
        .route("/api/v1/users/{dj_name}/disable", post(api::disable_user))
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
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_requests))
        .with_state(state)
}
