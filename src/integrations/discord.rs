//! Discord notifications: queue events and destination outages posted to a webhook.
//!
//! ```text
//! queue notices (broadcast) ─┐
//!                            ├─▶ collector ─▶ outbox (bounded, drops oldest) ─▶ sender ─▶ webhook
//! destination statuses ──────┘   (formats)                                      (rate limit, retries)
//!   (polled every 2 s)
//! ```
//!
//! The collector and the sender are separate tasks so that a slow or dead webhook only ever
//! fills the outbox: the queue's broadcast never waits for us, and the collector keeps
//! draining it (a lagged receiver only loses old notices, and we log that). Every wait is
//! bounded: requests time out after 10 s, a message is attempted at most 5 times (429
//! answers have their own cap), and the outbox holds at most 64 messages.
//!
//! Discord's limits are respected up front (a token bucket: a burst of 5, then one message
//! every 2 s, which stays under both the per-webhook and the per-channel limits) and
//! afterwards (a 429's `retry_after`, and `X-RateLimit-Remaining: 0`).
//!
//! The webhook URL carries its token in the path, so it never reaches the logs: only
//! [`redact_webhook_url`]'s form does, and request errors are logged without their URL.
//! DJ names and error texts are escaped so they cannot format, link or mention, and every
//! message also says `"allowed_mentions": {"parse": []}` so nothing in it can ping anyone.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use tokio::sync::{Notify, broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior, sleep, sleep_until};

use super::destination::{DestinationStatus, Destinations, State};
use super::error_chain;
use crate::queue::engine::Notice;
use crate::settings::{ConfigError, parse_truthy};

/// The seed's setting for the webhook URL.
pub const WEBHOOK_URL_SETTING: &str = "DISCORD_WEBHOOK_URL";
/// The seed's on/off switch.
pub const TOGGLE_SETTING: &str = "TOGGLE_DISCORD_NOTIFICATIONS";

/// Name the messages are posted under.
const USERNAME: &str = "motherstream";
/// Discord refuses message content longer than this (in characters).
const MAX_CONTENT_CHARS: usize = 2000;
/// Longest destination error quoted in a message: the rest is in the API status.
const MAX_ERROR_CHARS: usize = 300;
/// Most bytes of a response body read (for a 429's `retry_after` or an error's
/// description): Discord's are tiny, and a misbehaving server must not make us buffer more.
const MAX_BODY_BYTES: usize = 4 * 1024;
/// Most characters of an error body quoted in the log.
const MAX_LOGGED_BODY_CHARS: usize = 200;
/// How many 429 answers one message may get before it is dropped: a webhook that keeps
/// rate-limiting us must not hold the outbox forever.
const MAX_RATE_LIMITED: u32 = 10;

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

/// Timing and sizes of the notifier. The defaults suit Discord; tests shorten them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// How often destination statuses are compared with the previous poll.
    pub poll_interval: Duration,
    /// Whole request, from connecting to the end of the response body.
    pub request_timeout: Duration,
    /// Messages sent back to back before pacing starts ...
    pub burst: u32,
    /// ... then one message per this interval.
    pub spacing: Duration,
    /// First delay after a 5xx or a network error; doubled after each further failure ...
    pub backoff_min: Duration,
    /// ... up to this.
    pub backoff_max: Duration,
    /// Attempts per message (5xx and network errors) before it is dropped.
    pub max_attempts: u32,
    /// Longest wait a 429 (or `X-RateLimit-Reset-After`) may impose: a bogus huge value
    /// must not silence notifications for hours.
    pub max_retry_after: Duration,
    /// Messages waiting to be sent; when full the oldest is dropped.
    pub queue_capacity: usize,
    /// After shutdown, how long the messages still waiting may take to go out.
    pub drain_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            burst: 5,
            spacing: Duration::from_secs(2),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            max_attempts: 5,
            max_retry_after: Duration::from_secs(300),
            queue_capacity: 64,
            drain_timeout: Duration::from_secs(5),
        }
    }
}

/// Where the notifier reads destination statuses. [`Destinations`] is the real one; tests
/// (and a server without destinations) can use a closure.
pub trait StatusSource: Send + 'static {
    fn statuses(&self) -> Vec<DestinationStatus>;
}

impl StatusSource for Destinations {
    fn statuses(&self) -> Vec<DestinationStatus> {
        Destinations::statuses(self)
    }
}

impl<F> StatusSource for F
where
    F: Fn() -> Vec<DestinationStatus> + Send + 'static,
{
    fn statuses(&self) -> Vec<DestinationStatus> {
        self()
    }
}

/// The Discord notifier.
pub struct Discord;

impl Discord {
    /// [`Discord::spawn_with`] with the default [`Tuning`].
    pub fn spawn(
        config: DiscordConfig,
        notices: broadcast::Receiver<Notice>,
        destinations: impl StatusSource,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        Self::spawn_with(config, Tuning::default(), notices, destinations, shutdown)
    }

    /// Starts posting `notices` (from `QueueHandle::subscribe()`) and destination
    /// outages to the webhook. Runs until `shutdown` becomes `true` (or its sender is
    /// dropped), then gives the messages still waiting `tuning.drain_timeout` to go out;
    /// await the handle after signalling.
    ///
    /// Nothing here can block the caller or the queue. With `config.enabled == false` (or
    /// if the HTTP client cannot be set up, which is logged) the task ends at once and no
    /// request is ever made.
    pub fn spawn_with(
        config: DiscordConfig,
        tuning: Tuning,
        notices: broadcast::Receiver<Notice>,
        destinations: impl StatusSource,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let redacted = config.redacted_url();
        if !config.enabled {
            tracing::info!("discord: notifications off ({TOGGLE_SETTING} is not set to true)");
            return tokio::spawn(async {});
        }
        let sender = match Sender::new(&config, &tuning) {
            Ok(sender) => sender,
            Err(error) => {
                tracing::error!("discord: notifications off: cannot set up the HTTP client: {error}");
                return tokio::spawn(async {});
            }
        };
        tracing::info!("discord: posting notifications to {redacted}");
        let outbox = Arc::new(Outbox::new(tuning.queue_capacity));
        let collector = Collector {
            notices: Some(notices),
            source: destinations,
            watcher: DestinationWatcher::default(),
            outbox: outbox.clone(),
            poll_interval: tuning.poll_interval,
        };
        let drain_timeout = tuning.drain_timeout;
        tokio::spawn(async move {
            // In a JoinSet so that aborting this task also aborts the sender.
            let mut sending = JoinSet::new();
            sending.spawn(sender.run(outbox.clone(), shutdown.clone(), drain_timeout));
            collector.run(shutdown).await;
            // The sender sees the same shutdown signal and drains on its own; a panic in it
            // is already reported by the runtime, nothing more to do here.
            while sending.join_next().await.is_some() {}
            let dropped = outbox.dropped();
            if dropped > 0 {
                tracing::warn!("discord: {dropped} messages were dropped because the webhook fell behind");
            }
            tracing::info!("discord: stopped");
        })
    }
}

/// Resolves when `shutdown` is `true` or its sender is gone.
async fn shutdown_signalled(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender was dropped: as good as a shutdown.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A message ready for the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub content: String,
}

#[derive(Serialize)]
struct Payload<'a> {
    content: &'a str,
    username: &'a str,
    allowed_mentions: AllowedMentions,
}

/// `{"parse": []}`: whatever the text says, nobody is pinged.
#[derive(Serialize)]
struct AllowedMentions {
    parse: [&'static str; 0],
}

impl Message {
    fn new(content: String) -> Self {
        Self { content: truncate_chars(&content, MAX_CONTENT_CHARS) }
    }

    /// The JSON body sent to the webhook.
    pub fn to_json(&self) -> Vec<u8> {
        let payload =
            Payload { content: &self.content, username: USERNAME, allowed_mentions: AllowedMentions { parse: [] } };
        // Serialising plain strings into a Vec cannot fail; fall back to an empty message
        // rather than panic if that ever changes.
        serde_json::to_vec(&payload).unwrap_or_default()
    }
}

/// The message for a queue notice, or `None` for the ones not worth a ping (queue moves,
/// timer and settings changes, grace periods: the set-level events cover them).
pub fn format_notice(notice: &Notice) -> Option<Message> {
    let content = match notice {
        Notice::OnAir { dj } => format!("🎧 {} is live", escape(&dj.dj_name)),
        Notice::Resumed { dj } => format!("🎧 {} is back on air", escape(&dj.dj_name)),
        Notice::SetEnded { dj, reason } => {
            format!("⏹️ {}'s set ended ({})", escape(&dj.dj_name), escape(&reason.to_string()))
        }
        Notice::TimeWarning { dj, remaining } => {
            format!("⏳ {} has {} left", escape(&dj.dj_name), human_duration(*remaining))
        }
        Notice::Stalled { dj } => format!("⚠️ {}'s stream stalled", escape(&dj.dj_name)),
        Notice::Queued { .. }
        | Notice::LeftQueue { .. }
        | Notice::GraceStarted { .. }
        | Notice::Moved { .. }
        | Notice::TimerChanged { .. }
        | Notice::SettingsChanged { .. } => return None,
    };
    Some(Message::new(content))
}

/// `5 minutes`, `1 minute`, `90 seconds`: whole minutes when exact, else seconds.
fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs >= 60 && secs.is_multiple_of(60) { plural(secs / 60, "minute") } else { plural(secs, "second") }
}

/// Makes outside text (DJ names, error messages) inert in a Discord message: markdown
/// characters are backslash-escaped (Discord drops a backslash before any punctuation), a
/// zero-width space after `@` breaks `@everyone`/`@here`, and line breaks and other
/// control characters become spaces so the text cannot start a heading or a quote.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '#' | '-' | '[' | ']' | '(' | ')' | ':' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '@' => out.push_str("@\u{200B}"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of `text`, with `…` when something was cut.
fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

/// What the previous polls saw of one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// Not publishing and never was since the program last went idle: nothing to report.
    NotLive,
    /// Live; `reconnects` as of the last poll, to notice a drop between two polls.
    Live { reconnects: u64 },
    /// Was live, then failed: reported as down, waiting to report it up again.
    Down,
}

/// Turns successive status polls into down/up messages.
///
/// Only a destination that was live and then fails is "down": one that has not managed to
/// connect yet is still starting (its errors are in the API status), and one that went idle
/// simply follows the program. A destination that dropped and came back between two polls
/// is caught by its reconnect counter.
#[derive(Debug, Default)]
pub struct DestinationWatcher {
    seen: Vec<(String, Seen)>,
}

impl DestinationWatcher {
    /// Compares `statuses` with the previous call and returns the messages to send.
    pub fn observe(&mut self, statuses: &[DestinationStatus]) -> Vec<Message> {
        let mut messages = Vec::new();
        let mut next = Vec::with_capacity(statuses.len());
        for status in statuses {
            let before = self.seen.iter().find(|(name, _)| *name == status.name).map_or(Seen::NotLive, |(_, s)| *s);
            let name = escape(&status.name);
            let error = || {
                status
                    .last_error
                    .as_deref()
                    .map_or_else(|| "no error recorded".to_owned(), |e| escape(&truncate_chars(e, MAX_ERROR_CHARS)))
            };
            let after = match (before, status.state) {
                (Seen::Live { reconnects }, State::Live) => {
                    if status.reconnects > reconnects {
                        messages
                            .push(Message::new(format!("📡 Destination {name} dropped and reconnected: {}", error())));
                    }
                    Seen::Live { reconnects: status.reconnects }
                }
                (Seen::Down, State::Live) => {
                    messages.push(Message::new(format!("✅ Destination {name} is back up")));
                    Seen::Live { reconnects: status.reconnects }
                }
                (Seen::NotLive, State::Live) => Seen::Live { reconnects: status.reconnects },
                (Seen::Live { .. }, State::Backoff | State::Connecting) => {
                    messages.push(Message::new(format!("🔴 Destination {name} is down: {}", error())));
                    Seen::Down
                }
                (Seen::Down, State::Backoff | State::Connecting) => Seen::Down,
                // Idle: the program ended; Stopped: shutting down. Neither is an outage, and
                // the next time it goes live is just the program starting again.
                (_, State::Idle | State::Stopped) => Seen::NotLive,
                (Seen::NotLive, State::Backoff | State::Connecting) => Seen::NotLive,
            };
            next.push((status.name.clone(), after));
        }
        self.seen = next;
        messages
    }
}

/// Messages waiting for the sender: bounded, the oldest dropped when full, so a webhook
/// that is slow or down costs a fixed amount of memory and the newest news still goes out.
pub struct Outbox {
    state: Mutex<OutboxState>,
    ready: Notify,
    capacity: usize,
}

struct OutboxState {
    messages: VecDeque<Message>,
    dropped: u64,
    /// Whether the current run of drops was logged: once per overflow, not once per message.
    overflow_logged: bool,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            state: Mutex::new(OutboxState {
                messages: VecDeque::with_capacity(capacity),
                dropped: 0,
                overflow_logged: false,
            }),
            ready: Notify::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutboxState> {
        // Every critical section is a few queue operations that cannot leave the state
        // half-updated, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `message` without ever waiting; drops the oldest one if full.
    pub fn push(&self, message: Message) {
        {
            let mut state = self.lock();
            if state.messages.len() >= self.capacity {
                state.messages.pop_front();
                state.dropped += 1;
                if !state.overflow_logged {
                    state.overflow_logged = true;
                    tracing::warn!(
                        "discord: the webhook is falling behind; dropping the oldest messages \
                         ({} queued, {} dropped so far)",
                        self.capacity,
                        state.dropped
                    );
                }
            }
            state.messages.push_back(message);
        }
        self.ready.notify_one();
    }

    /// The oldest message, if any.
    pub fn try_pop(&self) -> Option<Message> {
        let mut state = self.lock();
        let message = state.messages.pop_front();
        if state.messages.is_empty() {
            // Caught up: the next overflow deserves its own log line.
            state.overflow_logged = false;
        }
        message
    }

    /// Waits for the oldest message.
    pub async fn pop(&self) -> Message {
        loop {
            // `Notify` keeps one permit, so a push between `try_pop` and `notified` is not
            // lost.
            if let Some(message) = self.try_pop() {
                return message;
            }
            self.ready.notified().await;
        }
    }

    pub fn len(&self) -> usize {
        self.lock().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages dropped because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

/// Reads notices and polls destinations; never waits on the network.
struct Collector<S> {
    /// `None` once the queue is gone: destinations are still watched.
    notices: Option<broadcast::Receiver<Notice>>,
    source: S,
    watcher: DestinationWatcher,
    outbox: Arc<Outbox>,
    poll_interval: Duration,
}

impl<S: StatusSource> Collector<S> {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut poll = tokio::time::interval(self.poll_interval.max(Duration::from_millis(1)));
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown_signalled(&mut shutdown) => break,
                received = recv(&mut self.notices) => match received {
                    Ok(notice) => {
                        if let Some(message) = format_notice(&notice) {
                            self.outbox.push(message);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!("discord: missed {missed} queue notices (too slow to read them)");
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        tracing::info!("discord: the queue has stopped; still watching destinations");
                        self.notices = None;
                    }
                },
                _ = poll.tick() => {
                    for message in self.watcher.observe(&self.source.statuses()) {
                        self.outbox.push(message);
                    }
                }
            }
        }
    }
}

/// The next notice, or never once the channel is gone (so `select!` ignores it).
async fn recv(notices: &mut Option<broadcast::Receiver<Notice>>) -> Result<Notice, broadcast::error::RecvError> {
    match notices {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// Discord's pacing, applied before each request: a token bucket (a burst, then one
/// message per `spacing`) plus any pause the server asked for.
struct RateLimiter {
    burst: f64,
    spacing: Duration,
    tokens: f64,
    refilled_at: Instant,
    /// No request before this (a 429, or the bucket reported empty).
    blocked_until: Option<Instant>,
}

impl RateLimiter {
    fn new(burst: u32, spacing: Duration) -> Self {
        let burst = f64::from(burst.max(1));
        Self { burst, spacing, tokens: burst, refilled_at: Instant::now(), blocked_until: None }
    }

    /// Waits until a request may go out, and counts it.
    async fn acquire(&mut self) {
        if let Some(until) = self.blocked_until.take() {
            sleep_until(until).await;
        }
        loop {
            let now = Instant::now();
            if !self.spacing.is_zero() {
                let earned = now.duration_since(self.refilled_at).as_secs_f64() / self.spacing.as_secs_f64();
                self.tokens = (self.tokens + earned).min(self.burst);
            } else {
                self.tokens = self.burst;
            }
            self.refilled_at = now;
            if self.tokens >= 1.0 {
                self.tokens -= 1.0;
                return;
            }
            sleep(self.spacing.mul_f64(1.0 - self.tokens)).await;
        }
    }

    /// No request for `pause` from now (keeping a longer pause already in force).
    fn block_for(&mut self, pause: Duration) {
        let until = Instant::now() + pause;
        if self.blocked_until.is_none_or(|current| current < until) {
            self.blocked_until = Some(until);
        }
    }
}

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
struct Sender {
    client: reqwest::Client,
    url: Url,
    redacted: String,
    limiter: RateLimiter,
    tuning: Tuning,
}

impl Sender {
    fn new(config: &DiscordConfig, tuning: &Tuning) -> Result<Self, String> {
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
            limiter: RateLimiter::new(tuning.burst, tuning.spacing),
            tuning: tuning.clone(),
        })
    }

    /// Sends queued messages until shutdown, then what is still queued, all within
    /// `drain_timeout` of the shutdown signal.
    ///
    /// A delivery in flight is never cancelled by the signal itself, only by the deadline:
    /// cancelling it and sending it again would post it twice whenever Discord had already
    /// taken it.
    async fn run(mut self, outbox: Arc<Outbox>, shutdown: watch::Receiver<bool>, drain_timeout: Duration) {
        let mut signal = shutdown.clone();
        let deadline = async move {
            shutdown_signalled(&mut signal).await;
            sleep(drain_timeout).await;
        };
        let work = async {
            let mut shutdown = shutdown;
            loop {
                let message = match outbox.try_pop() {
                    Some(message) => message,
                    None => tokio::select! {
                        biased;
                        // Nothing left to send and stopping: done.
                        () = shutdown_signalled(&mut shutdown) => break,
                        message = outbox.pop() => message,
                    },
                };
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
        let mut failures = 0u32;
        let mut rate_limited = 0u32;
        loop {
            self.limiter.acquire().await;
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
                        self.limiter.block_for(pause);
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
            failures += 1;
            if failures >= self.tuning.max_attempts {
                tracing::warn!("discord: dropping a message after {failures} attempts: {failure}");
                return Delivery::Dropped;
            }
            let delay = backoff(self.tuning.backoff_min, self.tuning.backoff_max, failures);
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
            self.limiter.block_for(reset);
        }
    }
}

/// `min`, doubled for each failure after the first, capped at `max`.
fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1));
    min.saturating_mul(factor).min(max)
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
    use crate::queue::engine::{Dj, EndReason};

    fn dj(name: &str) -> Dj {
        Dj { user_id: 1, dj_name: name.to_owned() }
    }

    fn status(name: &str, state: State, reconnects: u64, last_error: Option<&str>) -> DestinationStatus {
        DestinationStatus {
            name: name.to_owned(),
            url: "rtmp://example.org/app/****".to_owned(),
            state,
            bytes_sent: 0,
            connected_since: None,
            uptime_secs: None,
            reconnects,
            last_error: last_error.map(str::to_owned),
            next_retry_in_secs: None,
        }
    }

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

    #[test]
    fn notice_messages() {
        let text = |n: Notice| format_notice(&n).map(|m| m.content);
        assert_eq!(text(Notice::OnAir { dj: dj("DJ Alice") }).unwrap(), "🎧 DJ Alice is live");
        assert_eq!(
            text(Notice::SetEnded { dj: dj("Bob"), reason: EndReason::SlotElapsed }).unwrap(),
            "⏹️ Bob's set ended (time slot elapsed)"
        );
        assert_eq!(
            text(Notice::TimeWarning { dj: dj("Bob"), remaining: Duration::from_secs(300) }).unwrap(),
            "⏳ Bob has 5 minutes left"
        );
        assert_eq!(
            text(Notice::TimeWarning { dj: dj("Bob"), remaining: Duration::from_secs(60) }).unwrap(),
            "⏳ Bob has 1 minute left"
        );
        assert_eq!(
            text(Notice::TimeWarning { dj: dj("Bob"), remaining: Duration::from_secs(45) }).unwrap(),
            "⏳ Bob has 45 seconds left"
        );
        assert_eq!(text(Notice::Stalled { dj: dj("Bob") }).unwrap(), "⚠️ Bob's stream stalled");
        assert_eq!(text(Notice::Resumed { dj: dj("Bob") }).unwrap(), "🎧 Bob is back on air");
        assert_eq!(text(Notice::Queued { dj: dj("Bob"), position: 2 }), None);
        assert_eq!(text(Notice::SettingsChanged { swap_interval: Duration::from_secs(60), block_enabled: true }), None);
    }

    #[test]
    fn names_cannot_format_or_mention() {
        let message = format_notice(&Notice::OnAir { dj: dj("@everyone **big** <@123> [x](http://e)\n# hi") }).unwrap();
        assert!(!message.content.contains("@everyone"), "{}", message.content);
        assert!(!message.content.contains("**"), "{}", message.content);
        assert!(!message.content.contains('\n'));
        assert_eq!(escape("a_b*c"), "a\\_b\\*c");
        assert_eq!(escape("x\\y"), "x\\\\y");
        let json: serde_json::Value = serde_json::from_slice(&message.to_json()).unwrap();
        assert_eq!(json["username"], USERNAME);
        assert_eq!(json["allowed_mentions"]["parse"], serde_json::json!([]));
        assert_eq!(json["content"], message.content.as_str());
    }

    #[test]
    fn long_content_is_cut() {
        let long = "x".repeat(5000);
        let message = Message::new(long);
        assert_eq!(message.content.chars().count(), MAX_CONTENT_CHARS);
        assert!(message.content.ends_with('…'));
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
        assert_eq!(truncate_chars("ééé", 3), "ééé");
    }

    #[test]
    fn destination_transitions() {
        let mut watcher = DestinationWatcher::default();
        let contents = |w: &mut DestinationWatcher, s: &[DestinationStatus]| -> Vec<String> {
            w.observe(s).into_iter().map(|m| m.content).collect()
        };
        // Starting up and failing before ever being live: not an outage.
        assert!(contents(&mut watcher, &[status("yt", State::Connecting, 0, None)]).is_empty());
        assert!(contents(&mut watcher, &[status("yt", State::Backoff, 0, Some("refused"))]).is_empty());
        assert!(contents(&mut watcher, &[status("yt", State::Live, 1, Some("refused"))]).is_empty());
        let down = contents(&mut watcher, &[status("yt", State::Backoff, 1, Some("reset by peer"))]);
        assert_eq!(down, ["🔴 Destination yt is down: reset by peer"]);
        assert!(contents(&mut watcher, &[status("yt", State::Connecting, 2, Some("reset by peer"))]).is_empty());
        assert_eq!(contents(&mut watcher, &[status("yt", State::Live, 2, None)]), ["✅ Destination yt is back up"]);
        // A drop and reconnect between two polls.
        let blip = contents(&mut watcher, &[status("yt", State::Live, 3, Some("write timed out"))]);
        assert_eq!(blip, ["📡 Destination yt dropped and reconnected: write timed out"]);
        // The program ending is not an outage, nor is the next start.
        assert!(contents(&mut watcher, &[status("yt", State::Idle, 3, None)]).is_empty());
        assert!(contents(&mut watcher, &[status("yt", State::Connecting, 3, None)]).is_empty());
        assert!(contents(&mut watcher, &[status("yt", State::Live, 3, None)]).is_empty());
        // Several destinations are independent.
        let both = [status("yt", State::Live, 3, None), status("tw_1", State::Backoff, 0, Some("x"))];
        assert!(contents(&mut watcher, &both).is_empty());
    }

    #[test]
    fn outbox_drops_oldest() {
        let outbox = Outbox::new(3);
        for i in 0..5 {
            outbox.push(Message::new(i.to_string()));
        }
        assert_eq!(outbox.dropped(), 2);
        let order: Vec<String> = std::iter::from_fn(|| outbox.try_pop()).map(|m| m.content).collect();
        assert_eq!(order, ["2", "3", "4"]);
        assert!(outbox.is_empty());
    }

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

    #[test]
    fn backoff_doubles_and_caps() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(30));
        let delays: Vec<u64> = (1..=7).map(|n| backoff(min, max, n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(min, max, u32::MAX), max);
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

    #[tokio::test(start_paused = true)]
    async fn limiter_allows_a_burst_then_paces() {
        let mut limiter = RateLimiter::new(2, Duration::from_secs(2));
        let start = Instant::now();
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(Instant::now(), start, "the burst goes out at once");
        limiter.acquire().await;
        assert!(Instant::now() - start >= Duration::from_secs(2));
        limiter.block_for(Duration::from_secs(10));
        let before = Instant::now();
        limiter.acquire().await;
        assert!(Instant::now() - before >= Duration::from_secs(10));
    }
}
