//! Static assets (stylesheet, scripts, icon), embedded in the binary.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

macro_rules! assets {
    ($(($name:literal, $mime:literal)),* $(,)?) => {
        &[$(($name, $mime, include_bytes!(concat!("../../assets/web/", $name)).as_slice())),*]
    };
}

const ASSETS: &[(&str, &str, &[u8])] = assets![
    ("style.css", "text/css; charset=utf-8"),
    ("icon.svg", "image/svg+xml"),
    ("live.js", "text/javascript; charset=utf-8"),
    ("overlay.css", "text/css; charset=utf-8"),
    ("overlay.js", "text/javascript; charset=utf-8"),
    ("queue-list.css", "text/css; charset=utf-8"),
    ("queue-list.js", "text/javascript; charset=utf-8"),
];

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    let Some((_, mime, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    // Not fingerprinted, so browsers revalidate after a short while (an upgrade shows soon).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
