//! Parsing publish URLs such as `rtmp://a.rtmp.youtube.com/live2/KEY`.
//!
//! RTMP URLs are not split like HTTP ones: the application is everything
//! between the host and the last path segment (`app` or `app/instance`), the
//! last segment is the stream key, and a `?query` belongs to the stream key
//! (Twitch's `?bandwidthtest=true`, Wowza auth tokens) because it is sent as
//! part of the publishing name. Error messages never echo the URL, which
//! contains the stream key.

use super::RtmpError;

/// Default port of `rtmp://`.
pub const RTMP_PORT: u16 = 1935;
/// Default port of `rtmps://`.
pub const RTMPS_PORT: u16 = 443;

/// A parsed `rtmp://` or `rtmps://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `rtmps://`: connect over TLS.
    pub tls: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port, explicit or the scheme's default.
    pub port: u16,
    /// Application, e.g. `live2` or `app/instance`.
    pub app: String,
    /// `scheme://host[:port]/app`, sent as `tcUrl` in `connect`.
    pub tc_url: String,
    /// Publishing name, including any `?query`.
    pub stream_key: String,
}

impl RtmpUrl {
    /// Parses `rtmp[s]://host[:port]/app[/instance]/stream_key[?query]`.
    pub fn parse(url: &str) -> Result<Self, RtmpError> {
        let invalid = RtmpError::InvalidUrl;
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("contains whitespace or control characters"));
        }
        let (scheme, rest) = url.split_once("://").ok_or(invalid("missing rtmp:// or rtmps://"))?;
        let scheme = scheme.to_ascii_lowercase();
        let (tls, default_port) = match scheme.as_str() {
            "rtmp" => (false, RTMP_PORT),
            "rtmps" => (true, RTMPS_PORT),
            _ => return Err(invalid("scheme must be rtmp:// or rtmps://")),
        };
        let (authority, path) = rest.split_once('/').ok_or(invalid("missing application and stream key"))?;
        if authority.contains('@') {
            return Err(invalid("credentials in the URL are not supported"));
        }
        let (host, port) = split_host_port(authority)?;
        let (host, port) = (host.to_owned(), port.unwrap_or(default_port));

        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path, None),
        };
        let (app, key) = path.rsplit_once('/').ok_or(invalid("missing application or stream key"))?;
        if app.is_empty() || app.split('/').any(str::is_empty) {
            return Err(invalid("empty application"));
        }
        if key.is_empty() {
            return Err(invalid("empty stream key"));
        }
        let stream_key = match query {
            Some(query) => format!("{key}?{query}"),
            None => key.to_owned(),
        };
        Ok(Self { tls, host, port, app: app.to_owned(), tc_url: format!("{scheme}://{authority}/{app}"), stream_key })
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), RtmpError> {
    let invalid = RtmpError::InvalidUrl;
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(invalid("unterminated IPv6 address"))?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or(invalid("garbage after IPv6 address"))?)),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    let port = match port {
        Some(port) => match port.parse::<u16>() {
            Ok(port) if port != 0 => Some(port),
            _ => return Err(invalid("invalid port")),
        },
        None => None,
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> RtmpUrl {
        RtmpUrl::parse(url).unwrap()
    }

    #[test]
    fn real_ingest_urls() {
        assert_eq!(
            parse("rtmp://a.rtmp.youtube.com/live2/abcd-efgh"),
            RtmpUrl {
                tls: false,
                host: "a.rtmp.youtube.com".into(),
                port: 1935,
                app: "live2".into(),
                tc_url: "rtmp://a.rtmp.youtube.com/live2".into(),
                stream_key: "abcd-efgh".into(),
            }
        );
        assert_eq!(
            parse("rtmps://live-api-s.facebook.com:443/rtmp/FB-123?s_bl=1"),
            RtmpUrl {
                tls: true,
                host: "live-api-s.facebook.com".into(),
                port: 443,
                app: "rtmp".into(),
                tc_url: "rtmps://live-api-s.facebook.com:443/rtmp".into(),
                stream_key: "FB-123?s_bl=1".into(),
            }
        );
        let twitch = parse("rtmp://live.twitch.tv/app/live_123?bandwidthtest=true");
        assert_eq!(twitch.app, "app");
        assert_eq!(twitch.stream_key, "live_123?bandwidthtest=true");
        assert_eq!(parse("rtmps://x.example/app/k").port, 443);
    }

    #[test]
    fn app_with_instance_and_ipv6() {
        let url = parse("RTMP://[::1]:1940/app/inst/key");
        assert_eq!(url.host, "::1");
        assert_eq!(url.port, 1940);
        assert_eq!(url.app, "app/inst");
        assert_eq!(url.tc_url, "rtmp://[::1]:1940/app/inst");
        assert_eq!(url.stream_key, "key");
        assert_eq!(parse("rtmp://[::1]/live/k").port, 1935);
    }

    #[test]
    fn bad_urls_are_errors_without_leaking_the_key() {
        for bad in [
            "http://host/app/secret",
            "rtmp://host",
            "rtmp://host/",
            "rtmp://host/secret",
            "rtmp://host/app/",
            "rtmp:///app/secret",
            "rtmp://host:0/app/secret",
            "rtmp://host:99999/app/secret",
            "rtmp://host:x/app/secret",
            "rtmp://user:pw@host/app/secret",
            "rtmp://[::1/app/secret",
            "rtmp://[::1]x/app/secret",
            "rtmp://host//secret",
            "rtmp://host/app/sec ret",
            "host/app/secret",
        ] {
            let err = RtmpUrl::parse(bad).expect_err(bad);
            assert!(!err.to_string().contains("secret"), "{bad}: {err}");
        }
    }
}
