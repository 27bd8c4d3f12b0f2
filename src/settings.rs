//! What every owner of a setting shares: the error naming the setting at fault, and the
//! parsers of values that arrive as text (flags, environment, the seed's variables).
//!
//! A leaf: it imports nothing of ours, so any layer can read its own settings.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    /// The setting at fault, as the user would spell it (flag, env var or TOML key).
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self { setting: setting.into(), message: message.into() }
    }
}

/// The seed's truthy values (RECORD_STREAM, TOGGLE_DISCORD_NOTIFICATIONS and friends). An
/// empty value is false: the seed's `.env` files leave switched-off variables empty.
pub fn parse_truthy(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        other => Err(format!("`{other}` is not a boolean (use true or false)")),
    }
}

/// An `IP:port` setting, or `default` when it is not set.
pub fn socket_addr(setting: &str, value: Option<&String>, default: &str) -> Result<SocketAddr, ConfigError> {
    let raw = value.map(String::as_str).unwrap_or(default);
    raw.parse().map_err(|_| ConfigError::new(setting, format!("`{raw}` is not an IP:port address (e.g. 0.0.0.0:1935)")))
}

/// Whole seconds, at least one and at most a week, or `default` when unset.
pub fn seconds(setting: &str, value: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(ConfigError::new(setting, "must be at least 1 second")),
        Some(s) if s > 7 * 24 * 3600 => Err(ConfigError::new(setting, "must be at most one week")),
        Some(s) => Ok(Duration::from_secs(s)),
    }
}

/// A duration as written in the file: seconds, or `"60s"`, `"5m"`, `"1500ms"`, `"1h"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(u64),
    Text(String),
}

impl DurationValue {
    pub fn resolve(&self, setting: &str) -> Result<Duration, ConfigError> {
        match self {
            DurationValue::Seconds(s) => Ok(Duration::from_secs(*s)),
            DurationValue::Text(text) => parse_duration(text).ok_or_else(|| {
                ConfigError::new(setting, format!("`{text}` is not a duration (e.g. \"60s\", \"5m\", \"1500ms\")"))
            }),
        }
    }
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "ms" => Some(Duration::from_millis(n)),
        "" | "s" => Some(Duration::from_secs(n)),
        "m" | "min" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

/// Hides a password in a URL (`scheme://user:password@host…`) before it is shown in an error
/// or a log line.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truthy_values_follow_the_seed() {
        for yes in ["1", "true", "Yes", " on "] {
            assert_eq!(parse_truthy(yes), Ok(true), "{yes}");
        }
        for no in ["", "0", "FALSE", "no", "off"] {
            assert_eq!(parse_truthy(no), Ok(false), "{no}");
        }
        assert!(parse_truthy("maybe").unwrap_err().contains("`maybe`"));
    }

    #[test]
    fn passwords_leave_urls() {
        assert_eq!(redact_url("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("8"), Some(Duration::from_secs(8)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1500ms"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2 h "), Some(Duration::from_secs(7200)));
        for bad in ["", "s", "-1s", "1.5s", "10 parsecs"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
