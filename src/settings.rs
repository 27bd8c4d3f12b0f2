//! What every owner of a setting shares: the error naming the setting at fault, and the
//! parsers of values that arrive as text (flags, environment, the seed's variables).
//!
//! A leaf: it imports nothing of ours, so any layer can read its own settings.

use std::net::SocketAddr;

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
}
