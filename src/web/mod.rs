//! HTTP: the seed-compatible endpoints, the JSON API under `/api/v1`, health.
//!
//! Handlers are thin: they authenticate, validate, then ask the queue actor or the store.

mod accounts;
mod api;
mod assets;
mod auth;
mod b2b;
mod client_ip;
mod error;
mod events;
mod headers;
mod hls;
mod listener;
mod live;
mod metrics;
mod nowplaying;
mod overlays;
mod pages;
mod pictures;
mod preview;
mod program;
mod resets;
mod seed;
mod session;
mod setup;
mod timetable;
mod users;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, delete, get, patch, post};
use ipnet::IpNet;

use crate::auth::TokenKeys;
use crate::hls::Hls;
use crate::hls::preview::Previews;
use crate::hub::Publishers;
use crate::integrations::destination::Destinations;
use crate::integrations::email::Mailer;
use crate::metrics::Counters;
use crate::program::ProgramBus;
use crate::queue::actor::QueueHandle;
use crate::ratelimit::{AccountThrottle, PerIpCap, RateLimiter};
use crate::recorder::RecorderHandle;
use crate::store::Store;

pub use error::ApiError;
pub use listener::{HttpLimits, serve};
pub use live::{LiveState, Sources as LiveSources};
pub use metrics::MetricsAccess;
pub use pictures::sweep_orphans as sweep_orphan_pictures;
pub use setup::SetupLink;

/// Shared state of every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: QueueHandle,
    pub publishers: Publishers,
    pub program: ProgramBus,
    /// The program as HLS; `None` when `[hls] enabled = false`.
    pub hls: Option<Hls>,
    /// DJs' previews of their own stream, muxed on demand.
    pub previews: Previews,
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
    pub picture_uploads: Arc<pictures::UploadLimit>,
    /// Who may read `/metrics`, and whether it is on this listener.
    pub metrics: Arc<MetricsAccess>,
    /// Whether DJs may ask for a timetable slot (`[timetable] requests`).
    pub timetable_requests: bool,
}

/// The HTML pages: they share the CSRF cookie middleware.
fn pages(max_body: usize) -> Routes {
    use pages::{account, admin, dashboard, reset, settings, timetable, watch};
    let routes = Routes::default()
        .get("/", account::home)
        .get("/watch", watch::watch)
        .get("/signup", account::signup_page)
        .post("/signup", account::signup)
        .get("/setup/{token}", setup::setup_page)
        .post("/setup/{token}", setup::setup)
        .get("/login", account::login_page)
        .post("/login", account::login)
        .post("/logout", account::logout)
        .get("/password-reset", reset::request_page)
        .post("/password-reset", reset::request)
        .get("/password-reset/{token}", reset::form_page)
        .post("/password-reset/{token}", reset::reset)
        .get("/dashboard", dashboard::dashboard)
        .post("/dashboard/track", dashboard::post_track)
        .post("/dashboard/set/{action}", b2b::set_action)
        .get("/sets", dashboard::sets)
        .get("/preview/{user_id}", dashboard::preview)
        .get("/settings", settings::settings)
        .post("/settings/profile", settings::profile)
        .post("/settings/up-next", settings::up_next)
        .add(
            Method::POST,
            "/settings/picture",
            post(settings::picture).layer(DefaultBodyLimit::max(pictures::MAX_PICTURE_BYTES + max_body)),
        )
        .post("/settings/picture/remove", settings::remove_picture)
        .post("/settings/password", settings::password)
        .post("/settings/stream-key", settings::stream_key)
        .post("/settings/delete", settings::delete)
        .get("/admin", admin::admin)
        .post("/admin/queue/skip", admin::skip)
        .post("/admin/queue/pause", admin::pause)
        .post("/admin/queue/resume", admin::resume)
        .post("/admin/queue/remaining", admin::set_remaining)
        .post("/admin/queue/swap-interval", admin::set_swap_interval)
        .post("/admin/queue/block", admin::set_block)
        .post("/admin/queue/{dj_name}/{action}", admin::queue_action)
        .post("/admin/users/{id}/{action}", admin::user_action)
        .post("/admin/destinations/{name}/restart", admin::restart_destination)
        .post("/admin/bookings", timetable::book)
        .post("/admin/set-length", timetable::set_length)
        .post("/dashboard/booking", timetable::request)
        .post("/admin/bookings/{id}/{action}", timetable::booking_action)
        .get("/timetable", timetable::page)
        .get("/overlays", overlays::index);
    Routes { router: routes.router.layer(axum::middleware::from_fn(session::csrf_cookie)), list: routes.list }
}

/// Every route but the pages; `/metrics` unless it has a listener of its own.
fn api(metrics_here: bool) -> Routes {
    let routes = Routes::default()
        .get("/assets/{name}", assets::asset)
        .get("/pictures/{file}", pictures::serve)
        .get("/overlay/{name}", overlays::overlay)
        // The player for other sites' iframes: no session, no CSRF cookie to set.
        .get("/embed", pages::watch::embed)
        // Seed-compatible paths and shapes.
        .get("/queue-json", seed::queue_json)
        .get("/queue-list", seed::queue_list)
        .get("/timer-data", seed::timer_data)
        .get("/time-settings", seed::time_settings)
        .post("/update-timer/{seconds}", seed::update_timer)
        .get("/block-toggle", seed::get_block_toggle)
        .post("/block-toggle", seed::toggle_block)
        .post("/update-block-toggle/", seed::update_block_toggle)
        .get("/song-details", seed::song_details)
        .get("/timer-page", seed::timer_page)
        .get("/seed/song-json", seed::song_json)
        .post("/multi-dj-per-stream", b2b::multi_dj_per_stream)
        // JSON API.
        .post("/api/v1/login/access-token", api::login)
        .post("/api/v1/users/signup", users::signup)
        .get("/api/v1/users/", users::list)
        .get("/api/v1/users/me", users::me)
        .patch("/api/v1/users/me", users::update_me)
        .delete("/api/v1/users/me", users::delete_me)
        .patch("/api/v1/users/me/password", users::update_password)
        .post("/api/v1/users/{dj_name}/disable", users::disable)
        .post("/api/v1/users/me/track", nowplaying::post_track)
        .get("/song-json", nowplaying::song_json)
        .post("/api/v1/password-recovery/{email}", resets::recover_password)
        .post("/api/v1/reset-password/", resets::reset_password)
        .get("/api/v1/status", api::status)
        .get("/api/v1/events", events::events)
        .post("/api/v1/destinations/{name}/restart", api::restart_destination)
        .post("/api/v1/queue/skip", api::skip)
        .post("/api/v1/queue/pause", api::pause_timer)
        .post("/api/v1/queue/resume", api::resume_timer)
        .post("/api/v1/queue/reset-timer", api::reset_timer)
        .post("/api/v1/queue/remaining", api::set_remaining)
        .post("/api/v1/queue/swap-interval", api::set_swap_interval)
        .post("/api/v1/queue/block", api::set_block)
        .post("/api/v1/queue/{dj_name}/remove", api::remove)
        .post("/api/v1/queue/{dj_name}/move-up", api::move_up)
        .post("/api/v1/queue/{dj_name}/move-down", api::move_down)
        .get("/api/v1/timetable", timetable::public_json)
        .get("/timetable.ics", timetable::ical_feed)
        .get("/api/v1/bookings", timetable::list)
        .post("/api/v1/bookings", timetable::create)
        .patch("/api/v1/bookings/{id}", timetable::update)
        .delete("/api/v1/bookings/{id}", timetable::delete)
        .post("/api/v1/bookings/{id}/approve", timetable::approve)
        .post("/api/v1/users/{dj_name}/default-set-length", timetable::set_default_set_length)
        .post("/api/v1/sets/current/members", b2b::members)
        .post("/api/v1/sets/current/handover", b2b::handover)
        .get("/program.flv", program::program_flv)
        .get("/hls/program.m3u8", hls::playlist)
        .get("/hls/{file}", hls::file)
        // A DJ's own stream: authorised by the browser session (see `web::preview`).
        .get("/preview/{user_id}/index.m3u8", preview::playlist)
        .get("/preview/{user_id}/{file}", preview::file)
        .get("/healthz", || async { "ok" })
        .get("/readyz", metrics::readyz);
    if metrics_here { routes.get("/metrics", metrics::metrics) } else { routes }
}

/// Every method and path the HTTP listener answers (with `/metrics` on it, the default),
/// from the same code that builds the router: the authorisation table test enumerates it.
pub fn route_table() -> Vec<(Method, &'static str)> {
    // Body limits shape the routes' answers, not the table.
    let mut all = pages(0).list;
    all.extend(api(true).list);
    all
}

pub fn router(state: AppState) -> Router {
    let metrics_here = state.metrics.listen.is_none();
    Router::new()
        .merge(pages(state.max_body).router)
        .merge(api(metrics_here).router)
        .fallback(|| async { ApiError::not_found("Not Found") })
        .method_not_allowed_fallback(|| async { ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed") })
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(axum::middleware::from_fn_with_state(state.request_timeout, listener::request_timeout))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count_requests))
        .layer(axum::middleware::from_fn(headers::security_headers))
        .with_state(state)
}

/// A router that lists the routes added to it, so that nothing else needs to.
#[derive(Default)]
struct Routes {
    router: Router<AppState>,
    list: Vec<(Method, &'static str)>,
}

impl Routes {
    fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::GET, path, get(handler))
    }

    fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::POST, path, post(handler))
    }

    fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PATCH, path, patch(handler))
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::DELETE, path, delete(handler))
    }

    /// `route` must answer `method` only (axum merges the methods of one path).
    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.router = self.router.route(path, route);
        self.list.push((method, path));
        self
    }
}

/// The listener of its own that `metrics_listen` gives `/metrics` (nothing else on it).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { ApiError::not_found("Not Found") })
        .with_state(state)
}
