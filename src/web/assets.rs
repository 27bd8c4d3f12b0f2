//! Static assets (stylesheet, scripts, icon, the vendored hls.js), embedded in the binary.

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
    ("watch.js", "text/javascript; charset=utf-8"),
];

/// hls.js as taken from its npm package by `scripts/refresh-hlsjs.sh`, which also writes
/// the version next to it.
const HLS_JS: &[u8] = include_bytes!("../../assets/web/vendor/hls.min.js");
const HLS_JS_VERSION: &str = include_str!("../../assets/web/vendor/hls.js.version").trim_ascii();

/// Where pages load hls.js from: the address names the version, so that a refresh of the
/// file is a new address and the old one may be cached for good.
pub fn hls_js_path() -> String {
    format!("/assets/{}", hls_js_name())
}

fn hls_js_name() -> String {
    format!("hls-{HLS_JS_VERSION}.min.js")
}

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    if name == hls_js_name() {
        // Fingerprinted by its version: never changes under this name.
        return serve(HLS_JS, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable");
    }
    let Some((_, mime, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    // Not fingerprinted, so browsers revalidate after a short while (an upgrade shows soon).
    serve(body, mime, "public, max-age=300")
}

fn serve(body: &'static [u8], mime: &'static str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_hls_js_is_named_by_a_plain_version() {
        assert!(
            !HLS_JS_VERSION.is_empty()
                && HLS_JS_VERSION.bytes().all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b)),
            "{HLS_JS_VERSION:?}"
        );
        assert_eq!(hls_js_path(), format!("/assets/hls-{HLS_JS_VERSION}.min.js"));
    }
}
