//! Delivery to the webhook: one message at a time, in order, paced up front and following
//! Discord's rate-limit answers (a 429's `retry_after`, `X-RateLimit-Remaining: 0`), with
//! retries of server and network errors.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use tokio::sync::watch;
use tokio::time::sleep;

use super::Tuning;
use super::config::DiscordConfig;
use super::format::{Message, truncate_chars};
use crate::integrations::delivery::{Attempts, Outbox, Pacing};
use crate::integrations::{error_chain, shutdown_requested};

/// Most bytes of a response body read (for a 429's `retry_after` or an error's
/// description): Discord's are tiny, and a misbehaving server must not make us buffer more.
const MAX_BODY_BYTES: usize = 4 * 1024;
/// Most characters of an error body quoted in the log.
const MAX_LOGGED_BODY_CHARS: usize = 200;
/// How many 429 answers one message may get before it is dropped: a webhook that keeps
/// rate-limiting us must not hold the outbox forever.
const MAX_RATE_LIMITED: u32 = 10;

/// A number of seconds from outside, capped at `max`; `None` if negative or not a number.
fn seconds(secs: f64, max: Duration) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(secs.min(max.as_secs_f64())))
}

/// A float number of seconds from a header.
fn parse_seconds(text: &str, max: Duration) -> Option<Duration> {
    seconds(text.trim().parse().ok()?, max)
}

fn header_seconds(headers: &HeaderMap, name: &str, max: Duration) -> Option<Duration> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| parse_seconds(v, max))
}

/// How long a 429 asks us to wait: the body's `retry_after` (seconds, a float), else the
/// `Retry-After` header, else the bucket's reset time, else a second.
fn retry_after(headers: &HeaderMap, body: &[u8], max: Duration) -> Duration {
    let from_body = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(serde_json::Value::as_f64))
        .and_then(|secs| seconds(secs, max));
    from_body
        .or_else(|| header_seconds(headers, RETRY_AFTER.as_str(), max))
        .or_else(|| header_seconds(headers, "x-ratelimit-reset-after", max))
        .unwrap_or(Duration::from_secs(1).min(max))
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    Sent,
    Dropped,
}

/// Posts messages one at a time, in order.
pub(super) struct Sender {
    client: reqwest::Client,
    url: Url,
    redacted: String,
    pacing: Pacing,
    tuning: Tuning,
}

impl Sender {
    pub(super) fn new(config: &DiscordConfig, tuning: &Tuning) -> Result<Self, String> {
        let url = Url::parse(&config.webhook_url).map_err(|_| "invalid webhook URL".to_owned())?;
        let client = reqwest::Client::builder()
            .timeout(tuning.request_timeout)
            .connect_timeout(tuning.request_timeout)
            // Webhooks do not redirect; following one could send the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("motherstream/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| error_chain(&e.without_url()))?;
        Ok(Self {
            client,
            url,
            redacted: config.redacted_url(),
            pacing: Pacing::new(tuning.burst, tuning.spacing),
            tuning: tuning.clone(),
        })
    }

    /// Sends queued messages until the outbox is closed (at shutdown) and empty, all within
    /// `drain_timeout` of the shutdown signal.
    ///
    /// A delivery in flight is never cancelled by the signal itself, only by the deadline:
    /// cancelling it and sending it again would post it twice whenever Discord had already
    /// taken it.
    pub(super) async fn run(
        mut self,
        outbox: Arc<Outbox<Message>>,
        mut shutdown: watch::Receiver<bool>,
        drain_timeout: Duration,
    ) {
        let deadline = async move {
            shutdown_requested(&mut shutdown).await;
            sleep(drain_timeout).await;
        };
        let work = async {
            while let Some(message) = outbox.pop().await {
                self.deliver(&message).await;
            }
        };
        tokio::select! {
            () = work => {}
            () = deadline => {
                // The last events (a set ending, a destination going down) are often the
                // interesting ones, but shutdown must not wait on a slow webhook.
                let left = outbox.len();
                tracing::warn!("discord: shutting down with {left} queued messages unsent (and one in flight)");
            }
        }
    }

    /// Sends one message, honouring rate limits and retrying server and network errors.
    async fn deliver(&mut self, message: &Message) -> Delivery {
        let body = message.to_json();
        let mut attempts = Attempts::new(self.tuning.max_attempts, self.tuning.backoff_min, self.tuning.backoff_max);
        let mut rate_limited = 0u32;
        loop {
            self.pacing.acquire().await;
            let failure = match self.post(&body).await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    self.observe_bucket(&headers);
                    if status.is_success() {
                        return Delivery::Sent;
                    }
                    let body = read_bounded(response).await;
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        rate_limited += 1;
                        if rate_limited >= MAX_RATE_LIMITED {
                            tracing::warn!(
                                "discord: dropping a message: still rate limited after {rate_limited} tries"
                            );
                            return Delivery::Dropped;
                        }
                        let pause = retry_after(&headers, &body, self.tuning.max_retry_after);
                        tracing::info!("discord: rate limited; retrying in {pause:?}");
                        self.pacing.block_for(pause);
                        continue;
                    }
                    if status.is_client_error() {
                        // Our request or the webhook is wrong (404: the webhook was deleted;
                        // 401/403: bad token): retrying cannot help.
                        let hint = match status {
                            StatusCode::NOT_FOUND => " (the webhook no longer exists?)",
                            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => " (wrong webhook token?)",
                            _ => "",
                        };
                        tracing::warn!(
                            "discord: dropping a message: {} answered {status}{hint}: {}",
                            self.redacted,
                            describe_body(&body)
                        );
                        return Delivery::Dropped;
                    }
                    format!("{} answered {status}", self.redacted)
                }
                Err(error) => format!("request to {} failed: {error}", self.redacted),
            };
            let Some(delay) = attempts.failed() else {
                tracing::warn!("discord: dropping a message after {} attempts: {failure}", attempts.made());
                return Delivery::Dropped;
            };
            tracing::warn!("discord: {failure}; retrying in {delay:?}");
            sleep(delay).await;
        }
    }

    async fn post(&self, body: &[u8]) -> Result<reqwest::Response, String> {
        self.client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await
            // The URL holds the token: never let it into a log line.
            .map_err(|e| error_chain(&e.without_url()))
    }

    /// Discord reports the webhook's bucket on every answer: if it is empty, wait for its
    /// reset instead of provoking a 429.
    fn observe_bucket(&mut self, headers: &HeaderMap) {
        let remaining = headers.get("x-ratelimit-remaining").and_then(|v| v.to_str().ok());
        if remaining.is_some_and(|r| r.trim() == "0")
            && let Some(reset) = header_seconds(headers, "x-ratelimit-reset-after", self.tuning.max_retry_after)
        {
            self.pacing.block_for(reset);
        }
    }
}

/// At most [`MAX_BODY_BYTES`] of a response body; a failure just ends it early (the body
/// is only ever informative).
async fn read_bounded(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_BODY_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// An error body, made safe and short for a log line.
fn describe_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = truncate_chars(text.trim(), MAX_LOGGED_BODY_CHARS);
    if text.is_empty() { "(no body)".to_owned() } else { text.escape_debug().to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_sources() {
        let max = Duration::from_secs(300);
        let mut headers = HeaderMap::new();
        assert_eq!(
            retry_after(&headers, br#"{"retry_after": 0.25, "global": false}"#, max),
            Duration::from_millis(250)
        );
        headers.insert(RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&headers, b"not json", max), Duration::from_secs(3));
        assert_eq!(retry_after(&headers, br#"{"retry_after": 1e12}"#, max), max);
        assert_eq!(retry_after(&HeaderMap::new(), br#"{"retry_after": -1}"#, max), Duration::from_secs(1));
        assert_eq!(retry_after(&HeaderMap::new(), br#"{"retry_after": "NaN"}"#, max), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn request_errors_do_not_reveal_the_token() {
        // A port nobody listens on: the connection is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/api/webhooks/1/s3cr3t-T0ken_xyz");
        let config = DiscordConfig { webhook_url: url, enabled: true };
        let sender = Sender::new(&config, &Tuning::default()).unwrap();
        let error = sender.post(b"{}").await.unwrap_err();
        assert!(!error.contains("s3cr3t"), "{error}");
        assert!(!error.is_empty());
    }
}
