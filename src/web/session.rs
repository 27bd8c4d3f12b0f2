//! Browser sessions and CSRF protection for the pages.
//!
//! A session is a random token in the `ms_session` cookie (HttpOnly, SameSite=Lax, Secure
//! behind TLS); the database keeps only its SHA-256. Forms are protected twice: the session
//! cookie is SameSite=Lax (browsers do not send it with cross-site POSTs), and every form
//! carries a token that must equal the `ms_csrf` cookie (double submit: another site can
//! neither read that cookie nor set it). The JSON API does not read cookies at all (bearer
//! tokens only), so it needs no CSRF token.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::de::DeserializeOwned;

use super::AppState;
use super::pages::PageError;
use crate::auth::{random_hex, token_digest};
use crate::store::{User, unix_now};

pub const SESSION_COOKIE: &str = "ms_session";
pub const CSRF_COOKIE: &str = "ms_csrf";
/// A browser stays logged in this long after logging in.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Random bytes in session, CSRF and password reset tokens.
pub const TOKEN_BYTES: usize = 32;

/// The CSRF token of this browser, put in every form as `csrf`. Set by [`csrf_cookie`].
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

/// True when the client reached us over TLS (directly or through a proxy that says so):
/// cookies then get the Secure flag.
pub fn is_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn cookie(name: &'static str, value: String, max_age: Duration, secure: bool) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(cookie::time::Duration::seconds(max_age.as_secs() as i64))
        .build()
}

/// True for a value shaped like our tokens; anything else never reaches the database.
pub fn is_token(value: &str) -> bool {
    value.len() == TOKEN_BYTES * 2 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Middleware for the pages: makes sure the browser has a CSRF cookie and hands its value
/// to the handlers as [`CsrfToken`].
pub async fn csrf_cookie(jar: CookieJar, mut request: Request, next: Next) -> Response {
    let existing = jar.get(CSRF_COOKIE).map(|c| c.value().to_owned()).filter(|v| is_token(v));
    let token = existing.clone().unwrap_or_else(|| random_hex(TOKEN_BYTES));
    let secure = is_tls(request.headers());
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let response = next.run(request).await;
    if existing.is_some() {
        return response;
    }
    (jar.add(cookie(CSRF_COOKIE, token, SESSION_TTL, secure)), response).into_response()
}

/// The browser's session: who is logged in, and the CSRF token for forms.
pub struct WebSession {
    pub user: Option<User>,
    pub csrf: String,
    /// The session token's digest, to end or keep this session.
    pub token_hash: Option<String>,
}

impl FromRequestParts<AppState> for WebSession {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let csrf = parts.extensions.get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default();
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()).filter(|v| is_token(v)) else {
            return Ok(Self { user: None, csrf, token_hash: None });
        };
        let token_hash = token_digest(&token);
        let user = state
            .store
            .session_user(&token_hash)
            .await
            .map_err(|e| PageError::internal("loading a session", e))?
            .filter(|u| u.is_active);
        Ok(Self { user, csrf, token_hash: Some(token_hash) })
    }
}

/// A logged-in DJ; anyone else is sent to the login page (and back here afterwards).
pub struct Member {
    pub user: User,
    pub session: WebSession,
}

impl FromRequestParts<AppState> for Member {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = WebSession::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        match session.user.clone() {
            Some(user) => Ok(Self { user, session }),
            None => {
                // A form posted after the session expired cannot be replayed: come back to
                // the dashboard instead.
                let next = match parts.method {
                    axum::http::Method::GET => parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/dashboard"),
                    _ => "/dashboard",
                };
                let target = format!("/login?next={}", urlencode(next));
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

/// A logged-in admin; other users get a 403 page.
pub struct Organiser(pub Member);

impl FromRequestParts<AppState> for Organiser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let member = Member::from_request_parts(parts, state).await?;
        if !member.user.is_admin {
            return Err(
                PageError::new(StatusCode::FORBIDDEN, "This page is for the channel's organisers.").into_response()
            );
        }
        Ok(Self(member))
    }
}

/// Starts a session for `user`: stores it and returns the cookies to set, with a new CSRF
/// token (one planted before the login, e.g. by a sibling subdomain, does not carry over).
pub async fn start_session(state: &AppState, headers: &HeaderMap, user: &User) -> Result<CookieJar, PageError> {
    let token = random_hex(TOKEN_BYTES);
    let expires_at = unix_now() + SESSION_TTL.as_secs() as i64;
    state
        .store
        .create_session(&token_digest(&token), user.id, expires_at)
        .await
        .map_err(|e| PageError::internal("creating a session", e))?;
    let secure = is_tls(headers);
    Ok(CookieJar::new().add(cookie(SESSION_COOKIE, token, SESSION_TTL, secure)).add(cookie(
        CSRF_COOKIE,
        random_hex(TOKEN_BYTES),
        SESSION_TTL,
        secure,
    )))
}

/// Ends this browser's session and clears its cookie.
pub async fn end_session(state: &AppState, session: &WebSession) -> Result<CookieJar, PageError> {
    if let Some(hash) = &session.token_hash {
        state.store.delete_session(hash).await.map_err(|e| PageError::internal("ending a session", e))?;
    }
    Ok(CookieJar::new().remove(Cookie::build(SESSION_COOKIE).path("/")))
}

/// A url-encoded form whose `csrf` field matched the browser's CSRF cookie, and whose
/// Origin (when the browser sends one) is this site.
pub struct CsrfForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, PageError> {
        let (parts, body) = request.into_parts();
        check_origin(&parts.headers)?;
        let body = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| PageError::new(e.status(), e.body_text()))?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body)
            .map_err(|_| PageError::new(StatusCode::BAD_REQUEST, "The form could not be read."))?;
        let sent = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
        verify_csrf(&parts.headers, sent)?;
        serde_urlencoded::from_bytes(&body)
            .map(Self)
            .map_err(|e| PageError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("The form is incomplete: {e}")))
    }
}

/// Checks a submitted CSRF token against the cookie (constant time).
pub fn verify_csrf(headers: &HeaderMap, sent: &str) -> Result<(), PageError> {
    let jar = CookieJar::from_headers(headers);
    let expected = jar.get(CSRF_COOKIE).map(|c| c.value()).filter(|v| is_token(v));
    match expected {
        Some(expected) if constant_time_eq(expected.as_bytes(), sent.as_bytes()) => Ok(()),
        _ => Err(PageError::new(
            StatusCode::FORBIDDEN,
            "This form has expired or did not come from this site. Reload the page and try again.",
        )),
    }
}

/// Refuses cross-site form posts by their Origin header (sent by every current browser).
pub fn check_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    if origin != "null" && origin_host.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(PageError::new(StatusCode::FORBIDDEN, "Cross-site form submissions are refused."))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Percent-encodes a value for a query string.
pub fn urlencode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)]).map(|s| s[1..].to_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), v.parse().unwrap())).collect()
    }

    #[test]
    fn csrf_token_must_match_the_cookie() {
        let token = "a".repeat(64);
        let h = headers(&[(header::COOKIE, &format!("{CSRF_COOKIE}={token}"))]);
        assert!(verify_csrf(&h, &token).is_ok());
        assert!(verify_csrf(&h, &"b".repeat(64)).is_err());
        assert!(verify_csrf(&h, "").is_err());
        assert!(verify_csrf(&HeaderMap::new(), "").is_err(), "no cookie, no form post");
    }

    #[test]
    fn origin_must_be_this_site_when_sent() {
        assert!(check_origin(&headers(&[(header::HOST, "radio.example")])).is_ok());
        let same = headers(&[(header::HOST, "radio.example:8080"), (header::ORIGIN, "https://radio.example:8080")]);
        assert!(check_origin(&same).is_ok());
        let other = headers(&[(header::HOST, "radio.example"), (header::ORIGIN, "https://evil.example")]);
        assert!(check_origin(&other).is_err());
        let null = headers(&[(header::HOST, "radio.example"), (header::ORIGIN, "null")]);
        assert!(check_origin(&null).is_err());
    }

    #[test]
    fn next_parameter_is_encoded() {
        assert_eq!(urlencode("/admin?x=1&y=2"), "%2Fadmin%3Fx%3D1%26y%3D2");
    }
}
