//! Error reporting to Sentry, as the original did with `SENTRY_DSN`: error-level log events
//! and panics become Sentry events (warnings and info become their breadcrumbs), tagged with
//! the release and the environment (`SENTRY_ENVIRONMENT`, default `production`). Off when
//! `SENTRY_DSN` is unset.
//!
//! Nothing secret may leave: we never log passwords, and every text sent (messages,
//! breadcrumbs, fields) is scrubbed of what looks like an email address or a token (stream
//! keys, JWTs, session and reset tokens are long runs of letters and digits). Scrubbing
//! removes too much rather than too little: a long file name with a date in it is redacted
//! too.

use std::borrow::Cow;
use std::sync::Arc;

use sentry::protocol::{Breadcrumb, Event, Value};

use crate::settings::ConfigError;

/// Shortest run of letters, digits, `_` and `-` taken for a token when it mixes digits in,
/// or upper and lower case (base64): ordinary words, even long ones, do neither. Our stream
/// keys are 40 characters, session tokens 64.
const TOKEN_MIN_LEN: usize = 20;

/// Starts reporting when a DSN is given; keep the guard alive for as long as events may be
/// sent (dropping it flushes what is queued).
pub fn init(dsn: Option<&str>, environment: Option<&str>) -> Result<Option<sentry::ClientInitGuard>, ConfigError> {
    let Some(dsn) = dsn.map(str::trim).filter(|d| !d.is_empty()) else { return Ok(None) };
    // The DSN's public key is not a secret, but keep it out of the message all the same.
    let dsn: sentry::types::Dsn =
        dsn.parse().map_err(|e| ConfigError::new("SENTRY_DSN", format!("not a Sentry DSN ({e})")))?;
    let environment = environment.map(str::trim).filter(|e| !e.is_empty()).unwrap_or("production").to_owned();
    let options = sentry::ClientOptions {
        dsn: Some(dsn),
        release: Some(concat!("motherstream@", env!("CARGO_PKG_VERSION")).into()),
        environment: Some(environment.into()),
        send_default_pii: false,
        before_send: Some(Arc::new(|mut event| {
            scrub_event(&mut event);
            Some(event)
        })),
        before_breadcrumb: Some(Arc::new(|mut crumb| {
            scrub_breadcrumb(&mut crumb);
            Some(crumb)
        })),
        ..Default::default()
    };
    Ok(Some(sentry::init(options)))
}

fn scrub_event(event: &mut Event<'static>) {
    scrub_opt(&mut event.message);
    if let Some(entry) = &mut event.logentry {
        scrub_string(&mut entry.message);
        entry.params.iter_mut().for_each(scrub_value);
    }
    for exception in &mut event.exception.values {
        scrub_opt(&mut exception.value);
    }
    event.extra.values_mut().for_each(scrub_value);
    for context in event.contexts.values_mut() {
        if let sentry::protocol::Context::Other(map) = context {
            map.values_mut().for_each(scrub_value);
        }
    }
    event.tags.values_mut().for_each(scrub_string);
    event.breadcrumbs.values.iter_mut().for_each(scrub_breadcrumb);
    // Nothing identifies a person: no user, no request.
    event.user = None;
    event.request = None;
}

fn scrub_breadcrumb(crumb: &mut Breadcrumb) {
    scrub_opt(&mut crumb.message);
    crumb.data.values_mut().for_each(scrub_value);
}

fn scrub_opt(text: &mut Option<String>) {
    if let Some(text) = text {
        scrub_string(text);
    }
}

fn scrub_string(text: &mut String) {
    if let Cow::Owned(clean) = scrub(text) {
        *text = clean;
    }
}

fn scrub_value(value: &mut Value) {
    match value {
        Value::String(s) => scrub_string(s),
        Value::Array(items) => items.iter_mut().for_each(scrub_value),
        Value::Object(map) => map.values_mut().for_each(scrub_value),
        _ => {}
    }
}

/// `text` with email addresses replaced by `[email]` and tokens by `[redacted]`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | '+' | '%');
    let mut out = String::new();
    let mut changed = false;
    let mut rest = text;
    while let Some(start) = rest.find(is_word) {
        let end = rest[start..].find(|c| !is_word(c)).map_or(rest.len(), |n| start + n);
        let word = &rest[start..end];
        out.push_str(&rest[..start]);
        let clean = scrub_word(word);
        changed |= clean != word;
        out.push_str(&clean);
        rest = &rest[end..];
    }
    out.push_str(rest);
    if changed { Cow::Owned(out) } else { Cow::Borrowed(text) }
}

fn scrub_word(word: &str) -> Cow<'_, str> {
    if let Some((local, domain)) = word.split_once('@')
        && !local.is_empty()
        && domain.contains('.')
    {
        return Cow::Borrowed("[email]");
    }
    let is_token = |part: &str| {
        part.len() >= TOKEN_MIN_LEN
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && (part.bytes().any(|b| b.is_ascii_digit())
                || (part.bytes().any(|b| b.is_ascii_uppercase()) && part.bytes().any(|b| b.is_ascii_lowercase())))
    };
    if !word.split('.').any(is_token) {
        return Cow::Borrowed(word);
    }
    Cow::Owned(
        word.split('.').map(|part| if is_token(part) { "[redacted]" } else { part }).collect::<Vec<_>>().join("."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_tokens_are_scrubbed_and_the_rest_kept() {
        let key = "5b2f0c3a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a";
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwiZXhwIjoxfQ.c2lnbmF0dXJlc2lnbmF0dXJlMTIz";
        let text =
            format!("login for Ada.Lovelace+dj@example.org with key {key} and Bearer {jwt}: database unavailable");
        assert_eq!(
            scrub(&text),
            "login for [email] with key [redacted] and Bearer [redacted].[redacted].[redacted]: database unavailable"
        );
        let plain = "recording /data/recordings/Ada.flv stopped: Not a directory (os error 20)";
        assert!(matches!(scrub(plain), Cow::Borrowed(_)), "nothing to scrub");
        assert_eq!(scrub("internationalization-of-things"), "internationalization-of-things", "words stay");
        assert_eq!(scrub(""), "");
    }

    #[test]
    fn events_are_scrubbed_everywhere_text_goes() {
        let mut event = Event {
            message: Some("user ada@example.org".into()),
            user: Some(sentry::User { email: Some("ada@example.org".into()), ..Default::default() }),
            ..Default::default()
        };
        event.extra.insert("key".into(), Value::String("k 0123456789abcdef0123456789abcdef".into()));
        event.breadcrumbs.values.push(Breadcrumb { message: Some("from bo@example.org".into()), ..Default::default() });
        scrub_event(&mut event);
        assert_eq!(event.message.as_deref(), Some("user [email]"));
        assert_eq!(event.extra["key"], Value::String("k [redacted]".into()));
        assert_eq!(event.breadcrumbs.values[0].message.as_deref(), Some("from [email]"));
        assert!(event.user.is_none());
    }

    #[test]
    fn no_dsn_no_reporting_and_a_bad_one_names_the_variable() {
        assert!(init(None, None).unwrap().is_none());
        assert!(init(Some("  "), None).unwrap().is_none());
        let Err(err) = init(Some("not a dsn"), None) else { panic!("a bad DSN was accepted") };
        assert_eq!(err.setting, "SENTRY_DSN");
    }
}
