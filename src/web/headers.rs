//! Security headers on every answer: what a browser may load, frame and send along, and
//! what no cache may keep.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Pages: scripts, styles, pictures and the event stream from this site only (no inline
/// code: see `assets/web/live.js`), never framed by anyone.
const PAGE_POLICY: &str =
    "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// Overlays (and the seed's `/queue-list`) are made to be embedded: OBS, a stream page, the
/// overlay index's previews. Everything else as for pages.
const EMBEDDABLE_POLICY: &str = "default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'";
/// The pages with a player (the watch page; the dashboard and the preview page, which play
/// a DJ's preview): as pages, plus video from `blob:` addresses, which is how hls.js hands
/// the browser its MediaSource.
const WATCH_POLICY: &str = "default-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; \
                            form-action 'self'; frame-ancestors 'none'";
/// The embeddable player (`/embed`): framed by any site, as overlays are.
const EMBED_POLICY: &str =
    "default-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'none'";

/// Which policy an HTML answer for `path` gets.
fn policy(path: &str) -> &'static str {
    match path {
        "/watch" | "/dashboard" => WATCH_POLICY,
        _ if path.starts_with("/preview/") => WATCH_POLICY,
        "/embed" => EMBED_POLICY,
        "/queue-list" => EMBEDDABLE_POLICY,
        _ if path.starts_with("/overlay/") => EMBEDDABLE_POLICY,
        _ => PAGE_POLICY,
    }
}

fn is_html(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"))
}

/// Middleware: answers that say nothing about caching are not stored (pages show who is
/// logged in, API answers carry tokens and stream keys); HTML gets its policy.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let policy = policy(request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Reset links carry their token in the path: never send it to another site.
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if is_html(headers) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(policy));
        if policy.contains("frame-ancestors 'none'") {
            // For browsers that predate frame-ancestors.
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        }
    }
    response
}
