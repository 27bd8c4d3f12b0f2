//! The notifier's settings: the webhook URL (validated, and redacted for logs: its last
//! path segment is the token) and the on/off toggle.

use std::fmt;

use reqwest::Url;

use crate::settings::{ConfigError, parse_truthy};

/// The seed's setting for the webhook URL.
pub const WEBHOOK_URL_SETTING: &str = "DISCORD_WEBHOOK_URL";
/// The seed's on/off switch.
pub const TOGGLE_SETTING: &str = "TOGGLE_DISCORD_NOTIFICATIONS";

/// `DISCORD_WEBHOOK_URL` + `TOGGLE_DISCORD_NOTIFICATIONS`, validated.
#[derive(Clone, PartialEq, Eq)]
pub struct DiscordConfig {
    /// `https://discord.com/api/webhooks/ID/TOKEN` (any `https://` URL; `http://` only for
    /// a local test server). A secret: print [`DiscordConfig::redacted_url`] instead.
    pub webhook_url: String,
    /// Whether messages are sent at all.
    pub enabled: bool,
}

// By hand: the derived one would print the token.
impl fmt::Debug for DiscordConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscordConfig")
            .field("webhook_url", &self.redacted_url())
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl DiscordConfig {
    /// Builds the configuration from the raw values of [`WEBHOOK_URL_SETTING`] and
    /// [`TOGGLE_SETTING`] (empty counts as unset, as `.env` files often leave them).
    ///
    /// - no URL and the toggle off or unset: `Ok(None)`, nothing to run;
    /// - the toggle on (`1`/`true`/`yes`/`on`) without a URL: an error;
    /// - a URL: validated even when the toggle is off, so a typo shows up before someone
    ///   turns notifications on; `enabled` follows the toggle, which, as in the seed, must
    ///   be set for anything to be sent.
    ///
    /// Errors name the setting and never contain the token.
    pub fn parse(webhook_url: Option<&str>, toggle: Option<&str>) -> Result<Option<Self>, ConfigError> {
        let enabled = match toggle.map(str::trim).filter(|v| !v.is_empty()) {
            None => false,
            Some(value) => parse_truthy(value).map_err(|message| ConfigError::new(TOGGLE_SETTING, message))?,
        };
        let Some(url) = webhook_url.map(str::trim).filter(|v| !v.is_empty()) else {
            return if enabled {
                Err(ConfigError::new(WEBHOOK_URL_SETTING, format!("must be set when {TOGGLE_SETTING} is on")))
            } else {
                Ok(None)
            };
        };
        validate_webhook_url(url).map_err(|message| ConfigError::new(WEBHOOK_URL_SETTING, message))?;
        Ok(Some(Self { webhook_url: url.to_owned(), enabled }))
    }

    /// The webhook URL with its token replaced by `****`, for logs.
    pub fn redacted_url(&self) -> String {
        redact_webhook_url(&self.webhook_url)
    }
}

/// Checks what a webhook URL must be. Messages never quote the URL: it holds the token.
fn validate_webhook_url(url: &str) -> Result<(), String> {
    let parsed = Url::parse(url).map_err(|e| format!("not a valid URL ({e})"))?;
    let host = parsed.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err("the URL has no host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the URL must not contain credentials".to_owned());
    }
    match parsed.scheme() {
        "https" => {}
        // Plain HTTP would send the token in clear text: only a server on this machine
        // (a test) may have it.
        "http" if matches!(host, "127.0.0.1" | "localhost" | "[::1]") => {}
        "http" => return Err("must use https:// (http:// is only accepted for localhost)".to_owned()),
        other => return Err(format!("unsupported scheme `{other}` (use https://)")),
    }
    if parsed.path_segments().is_none_or(|mut segments| segments.all(str::is_empty)) {
        return Err("the URL has no path (expected https://discord.com/api/webhooks/ID/TOKEN)".to_owned());
    }
    Ok(())
}

/// `https://discord.com/api/webhooks/ID/****`: the URL without its token (the last path
/// segment) and without any query, which could hold secrets too.
pub fn redact_webhook_url(url: &str) -> String {
    let Ok(parsed) = Url::parse(url) else {
        return "<invalid URL>".to_owned();
    };
    let mut out = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or_default());
    if let Some(port) = parsed.port() {
        out.push_str(&format!(":{port}"));
    }
    let segments: Vec<&str> =
        parsed.path_segments().map(|s| s.filter(|seg| !seg.is_empty()).collect()).unwrap_or_default();
    if let Some((_token, rest)) = segments.split_last() {
        for segment in rest {
            out.push('/');
            out.push_str(segment);
        }
    }
    out.push_str("/****");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://discord.com/api/webhooks/123456789/s3cr3t-T0ken_xyz";

    #[test]
    fn parse_config() {
        let config = DiscordConfig::parse(Some(URL), Some("yes")).unwrap().unwrap();
        assert!(config.enabled);
        assert_eq!(config.webhook_url, URL);
        let off = DiscordConfig::parse(Some(URL), None).unwrap().unwrap();
        assert!(!off.enabled, "as in the seed, the toggle must be set");
        assert!(!DiscordConfig::parse(Some(URL), Some("off")).unwrap().unwrap().enabled);
        assert!(DiscordConfig::parse(Some(URL), Some(" TRUE ")).unwrap().unwrap().enabled);
        assert_eq!(DiscordConfig::parse(None, None).unwrap(), None);
        assert_eq!(DiscordConfig::parse(Some(""), Some("false")).unwrap(), None);
        assert!(DiscordConfig::parse(Some("http://localhost:8080/hook/x"), Some("1")).is_ok());
        assert!(DiscordConfig::parse(Some("http://127.0.0.1:9/hook/x"), Some("1")).is_ok());
    }

    #[test]
    fn config_errors_name_the_setting_and_hide_the_token() {
        let err = DiscordConfig::parse(None, Some("on")).unwrap_err();
        assert_eq!(err.setting, WEBHOOK_URL_SETTING);
        let err = DiscordConfig::parse(Some(URL), Some("maybe")).unwrap_err();
        assert_eq!(err.setting, TOGGLE_SETTING);
        for bad in [
            "http://discord.com/api/webhooks/1/s3cr3t-T0ken_xyz",
            "ftp://discord.com/s3cr3t-T0ken_xyz",
            "https://user:s3cr3t-T0ken_xyz@discord.com/api/webhooks/1/x",
            "https://discord.com",
            "discord.com/api/webhooks/1/s3cr3t-T0ken_xyz",
        ] {
            let err = DiscordConfig::parse(Some(bad), Some("true")).unwrap_err();
            assert_eq!(err.setting, WEBHOOK_URL_SETTING, "{bad}");
            assert!(!err.to_string().contains("s3cr3t"), "{err}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(redact_webhook_url(URL), "https://discord.com/api/webhooks/123456789/****");
        assert_eq!(redact_webhook_url("http://127.0.0.1:8080/hook/tok?x=1"), "http://127.0.0.1:8080/hook/****");
        assert_eq!(redact_webhook_url("https://h/tok/"), "https://h/****");
        assert_eq!(redact_webhook_url("not a url s3cr3t"), "<invalid URL>");
        let config = DiscordConfig { webhook_url: URL.to_owned(), enabled: true };
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cr3t") && debug.contains("****"), "{debug}");
    }
}
