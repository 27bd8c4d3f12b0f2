//! Destinations: one long-lived publish of the program per configured platform.
//!
//! Each destination runs in its own task:
//!
//! ```text
//! idle:       subscribe to the program, wait for its first tag (so a program that is
//!             not live means no connection at all)
//! connecting: TCP (+ TLS for rtmps) -> RTMP connect/publish, bounded by timeouts
//! live:       start-up tags (metadata, sequence headers, GOP from a keyframe), then every
//!             program tag, timestamps rebased so the connection starts at 0
//! program ended -> FCUnpublish + deleteStream, back to idle
//! error         -> backoff 1 s, 2 s, 4 s ... 30 s, then a fresh subscription and connection
//! restart()     -> clean stop, reconnect at once
//! shutdown      -> clean stop, exit
//! ```
//!
//! A fresh subscription per connection is what makes a reconnect start at a keyframe with
//! the sequence headers. Stream keys never reach logs or the API: URLs are shown as
//! `rtmp://host/app/****`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::timeout;

use super::delivery::Backoff;
use super::shutdown_requested;
use super::tls::{self, Connector, RelayStream};
use crate::media::flv::{FlvTag, ZeroBase};
use crate::program::{ProgramBus, Subscription};
use crate::rtmp::client::{ClientConfig, ClientEvent, ClientMode};
use crate::rtmp::client_io::{ClientError, RtmpClient};
use crate::rtmp::url::RtmpUrl;
use crate::settings::ConfigError;

/// Longest destination name: it appears in logs and API paths.
const MAX_NAME_LEN: usize = 64;

/// Program tags sent in one write at most; more would delay reading the platform's acks.
const MAX_BATCH: usize = 64;

/// Pause before subscribing again when a subscription ended without delivering a single
/// tag, so a program that keeps refusing us is not asked in a tight loop.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// One `[[destinations]]` entry as written in the configuration.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// Identifies the destination in logs and the API, e.g. `youtube`.
    pub name: String,
    /// `rtmp[s]://host[:port]/app/stream_key`.
    pub url: String,
}

// By hand: the derived one would print the stream key.
impl fmt::Debug for DestinationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = RtmpUrl::parse(&self.url).map_or_else(|_| "<invalid>".to_owned(), |u| redact(&u));
        f.debug_struct("DestinationConfig").field("name", &self.name).field("url", &url).finish()
    }
}

/// A validated destination.
#[derive(Clone)]
pub struct Destination {
    name: String,
    url: RtmpUrl,
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Destination").field("name", &self.name).field("url", &redact(&self.url)).finish()
    }
}

impl Destination {
    /// Validates every configured destination: names well-formed and unique, URLs
    /// parseable (and usable as TLS server names for `rtmps://`). Errors name the setting,
    /// e.g. `destinations[1].url`, and never contain the stream key.
    pub fn parse_all(configs: &[DestinationConfig]) -> Result<Vec<Self>, ConfigError> {
        let mut out: Vec<Self> = Vec::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let name = &config.name;
            let name_ok = !name.is_empty()
                && name.len() <= MAX_NAME_LEN
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !name_ok {
                return Err(ConfigError::new(
                    format!("destinations[{i}].name"),
                    format!("must be 1 to {MAX_NAME_LEN} letters, digits, '-' or '_'"),
                ));
            }
            if out.iter().any(|d| &d.name == name) {
                return Err(ConfigError::new(format!("destinations[{i}].name"), format!("{name:?} is used twice")));
            }
            let setting = format!("destinations[{i}].url");
            let url = RtmpUrl::parse(&config.url).map_err(|e| ConfigError::new(&setting, e.to_string()))?;
            if url.tls {
                tls::server_name(&url.host).map_err(|e| ConfigError::new(&setting, e.to_string()))?;
            }
            out.push(Self { name: name.clone(), url });
        }
        Ok(out)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// `scheme://host[:port]/app/****`: the URL without its stream key.
pub fn redact(url: &RtmpUrl) -> String {
    format!("{}/****", url.tc_url)
}

/// Timeouts and backoff of the destination tasks.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// TCP connect, including name resolution and the TLS handshake.
    pub dial_timeout: Duration,
    /// Longest a write may go without a single byte leaving: a platform that stops reading
    /// is given up on after this long, instead of hanging the task.
    pub write_timeout: Duration,
    /// First delay after a failure; doubled after each further failure ...
    pub backoff_min: Duration,
    /// ... up to this.
    pub backoff_max: Duration,
    /// A connection that stayed live this long was healthy: the next failure starts the
    /// backoff from `backoff_min` again.
    pub stable_after: Duration,
    /// SO_SNDBUF of destination sockets, as ffmpeg's `send_buffer_size`. `None` leaves it to
    /// the kernel, which grows it to megabytes on fast paths: right for throughput, but a
    /// platform that stops reading is then only noticed once those megabytes are queued.
    pub send_buffer: Option<u32>,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            dial_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
            send_buffer: None,
        }
    }
}

/// What a destination is doing, as shown by the API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Opening the connection and starting the publish.
    Connecting,
    /// Publishing the program.
    Live,
    /// Waiting before the next attempt after a failure.
    Backoff,
    /// The program is not live; nothing to send, no connection.
    #[default]
    Idle,
    /// The task has ended (shutdown).
    Stopped,
}

/// A snapshot of one destination, for `GET` on the API. The default is one that has done
/// nothing yet (idle, nothing sent, no error).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DestinationStatus {
    pub name: String,
    /// The URL with its stream key replaced by `****`.
    pub url: String,
    pub state: State,
    /// Bytes written to the platform since start-up, over every connection.
    pub bytes_sent: u64,
    /// Unix time (seconds) the current connection went live; only while live.
    pub connected_since: Option<u64>,
    /// Seconds the current connection has been live.
    pub uptime_secs: Option<u64>,
    /// Connections opened again after a failure or a restart.
    pub reconnects: u64,
    /// The most recent failure, kept after recovering.
    pub last_error: Option<String>,
    /// Seconds until the next attempt; only in backoff.
    pub next_retry_in_secs: Option<u64>,
}

/// Control of one running destination. Cheap to clone.
#[derive(Clone)]
pub struct DestinationHandle {
    shared: Arc<Shared>,
}

impl DestinationHandle {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn status(&self) -> DestinationStatus {
        self.shared.status()
    }

    /// Drops the connection and reconnects at once, without backoff. Nothing happens while
    /// the program is not live. Other destinations are untouched.
    pub fn restart(&self) {
        self.shared.restart.notify_one();
    }
}

/// Every running destination, in configuration order. Cheap to clone.
#[derive(Clone, Default)]
pub struct Destinations {
    handles: Arc<[DestinationHandle]>,
}

impl Destinations {
    /// Starts one task per destination in `tasks`. Each runs until `shutdown` becomes
    /// `true` (or its sender is dropped), then ends its publish cleanly: await `tasks` after
    /// signalling.
    pub fn spawn(
        destinations: Vec<Destination>,
        program: &ProgramBus,
        connector: &Connector,
        tuning: &Tuning,
        shutdown: &watch::Receiver<bool>,
        tasks: &mut JoinSet<()>,
    ) -> Self {
        let handles: Vec<DestinationHandle> = destinations
            .into_iter()
            .map(|destination| {
                let shared = Arc::new(Shared::new(&destination));
                let relay = Relay {
                    backoff: Backoff::new(tuning.backoff_min, tuning.backoff_max),
                    destination,
                    shared: shared.clone(),
                    program: program.clone(),
                    connector: connector.clone(),
                    tuning: tuning.clone(),
                    shutdown: shutdown.clone(),
                };
                tasks.spawn(relay.run());
                DestinationHandle { shared }
            })
            .collect();
        Self { handles: handles.into() }
    }

    pub fn get(&self, name: &str) -> Option<&DestinationHandle> {
        self.handles.iter().find(|h| h.name() == name)
    }

    pub fn statuses(&self) -> Vec<DestinationStatus> {
        self.handles.iter().map(DestinationHandle::status).collect()
    }

    /// Restarts the named destination; `false` if there is none.
    pub fn restart(&self, name: &str) -> bool {
        self.get(name).map(DestinationHandle::restart).is_some()
    }
}

/// State shared between a destination's task and its handles.
struct Shared {
    name: String,
    url: String,
    bytes_sent: Arc<AtomicU64>,
    restart: Notify,
    progress: Mutex<Progress>,
}

struct Progress {
    state: State,
    /// When the current connection went live, on both clocks: the monotonic one for the
    /// uptime, the wall clock for display.
    live_since: Option<(Instant, SystemTime)>,
    reconnects: u64,
    last_error: Option<String>,
    retry_at: Option<Instant>,
}

impl Shared {
    fn new(destination: &Destination) -> Self {
        Self {
            name: destination.name.clone(),
            url: redact(&destination.url),
            bytes_sent: Arc::new(AtomicU64::new(0)),
            restart: Notify::new(),
            progress: Mutex::new(Progress {
                state: State::Idle,
                live_since: None,
                reconnects: 0,
                last_error: None,
                retry_at: None,
            }),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        // A panic elsewhere cannot leave `Progress` inconsistent: every update is a few
        // plain assignments.
        f(&mut self.progress.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn set_state(&self, state: State) {
        self.update(|p| {
            p.state = state;
            p.live_since = (state == State::Live).then(|| (Instant::now(), SystemTime::now()));
            p.retry_at = None;
        });
    }

    fn set_backoff(&self, error: String, delay: Duration) {
        self.update(|p| {
            p.state = State::Backoff;
            p.live_since = None;
            p.last_error = Some(error);
            p.retry_at = Some(Instant::now() + delay);
            p.reconnects += 1;
        });
    }

    fn count_reconnect(&self) {
        self.update(|p| p.reconnects += 1);
    }

    fn status(&self) -> DestinationStatus {
        let p = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        DestinationStatus {
            name: self.name.clone(),
            url: self.url.clone(),
            state: p.state,
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            connected_since: p
                .live_since
                .and_then(|(_, wall)| wall.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())),
            uptime_secs: p.live_since.map(|(since, _)| now.duration_since(since).as_secs()),
            reconnects: p.reconnects,
            last_error: p.last_error.clone(),
            // Rounded up: "0 s" while still waiting would read as a hang.
            next_retry_in_secs: p
                .retry_at
                .map(|at| at.saturating_duration_since(now).as_millis().div_ceil(1000) as u64),
        }
    }
}

/// Why a connection failed, as shown in `last_error`.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("connect timed out after {0:?}")]
    ConnectTimeout(Duration),
    #[error("{0}")]
    Rtmp(#[from] ClientError),
    #[error("the platform stopped reading: a write made no progress for {0:?}")]
    WriteTimeout(Duration),
}

/// How one connection ended.
enum Outcome {
    /// The program ended (or dropped us for lagging); the publish was stopped cleanly.
    ProgramEnded,
    /// An admin asked for a reconnect.
    Restart,
    Shutdown,
    /// The connection failed; `live_for` is how long it had been live, if it got there.
    Failed {
        error: RelayError,
        live_for: Option<Duration>,
    },
}

/// One destination's task.
struct Relay {
    destination: Destination,
    shared: Arc<Shared>,
    program: ProgramBus,
    connector: Connector,
    tuning: Tuning,
    shutdown: watch::Receiver<bool>,
    backoff: Backoff,
}

impl Relay {
    async fn run(mut self) {
        let name = self.destination.name.clone();
        tracing::info!("destination {name}: relaying to {}", self.shared.url);
        loop {
            self.shared.set_state(State::Idle);
            let Some((subscription, first)) = self.wait_for_program().await else {
                break;
            };
            match self.relay(subscription, first).await {
                Outcome::Shutdown => break,
                Outcome::ProgramEnded => {
                    tracing::info!("destination {name}: program ended, publish stopped");
                    // The connection worked; whatever failed before is history.
                    self.backoff.reset();
                }
                Outcome::Restart => {
                    tracing::info!("destination {name}: restarting on request");
                    self.backoff.reset();
                    self.shared.count_reconnect();
                }
                Outcome::Failed { error, live_for } => {
                    if live_for.is_some_and(|t| t >= self.tuning.stable_after) {
                        self.backoff.reset();
                    }
                    let delay = self.backoff.next_delay();
                    let error = self.describe(&error);
                    tracing::warn!("destination {name}: {error}; retrying in {delay:?}");
                    self.shared.set_backoff(error, delay);
                    tokio::select! {
                        () = shutdown_requested(&mut self.shutdown) => break,
                        () = self.shared.restart.notified() => {}
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.shared.set_state(State::Stopped);
        tracing::info!("destination {name}: stopped");
    }

    /// Subscribes and waits for the program's first tag. `None` on shutdown, or when the
    /// program task is gone for good.
    async fn wait_for_program(&mut self) -> Option<(Subscription, FlvTag)> {
        loop {
            let subscribed = tokio::select! {
                () = shutdown_requested(&mut self.shutdown) => return None,
                subscribed = self.program.subscribe(self.destination.name.clone()) => subscribed,
            };
            let Some(mut subscription) = subscribed else {
                tracing::warn!("destination {}: the program has stopped", self.destination.name);
                return None;
            };
            loop {
                tokio::select! {
                    () = shutdown_requested(&mut self.shutdown) => return None,
                    // No connection to restart; the request is simply used up.
                    () = self.shared.restart.notified() => {}
                    tag = subscription.recv() => match tag {
                        Some(tag) => return Some((subscription, tag)),
                        None => break,
                    },
                }
            }
            tokio::select! {
                () = shutdown_requested(&mut self.shutdown) => return None,
                () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
            }
        }
    }

    /// Opens a connection and publishes the program on it until something ends it.
    async fn relay(&mut self, mut subscription: Subscription, first: FlvTag) -> Outcome {
        self.shared.set_state(State::Connecting);
        let connecting = connect(&self.destination.url, &self.connector, &self.tuning, &self.shared);
        let connected = tokio::select! {
            () = shutdown_requested(&mut self.shutdown) => return Outcome::Shutdown,
            () = self.shared.restart.notified() => return Outcome::Restart,
            connected = connecting => connected,
        };
        let mut client = match connected {
            Ok(client) => client,
            Err(error) => {
                return Outcome::Failed { error, live_for: None };
            }
        };
        tracing::info!("destination {}: live", self.destination.name);
        self.shared.set_state(State::Live);
        let live_since = Instant::now();
        let failed = |error: RelayError| Outcome::Failed { error, live_for: Some(live_since.elapsed()) };
        let mut rebase = ZeroBase::default();
        let mut batch = vec![first];
        loop {
            if !batch.is_empty() {
                // The tags that arrived together (a picture and the audio held for it) leave
                // in one write.
                while batch.len() < MAX_BATCH
                    && let Some(tag) = subscription.try_recv_shared()
                {
                    batch.push(tag.to_tag());
                }
                let messages = batch.drain(..).map(|tag| rebase.apply(&tag).to_rtmp());
                let sent = &self.shared.bytes_sent;
                let limit = self.tuning.write_timeout;
                if let Err(e) = while_progressing(client.send_all(messages), sent, limit).await {
                    return failed(e);
                }
            }
            // Reading the server's messages (acks, pings, status) at all times keeps it
            // from blocking on us, and notices a closed connection while the program is
            // quiet.
            tokio::select! {
                () = shutdown_requested(&mut self.shutdown) => {
                    self.stop(client).await;
                    return Outcome::Shutdown;
                }
                () = self.shared.restart.notified() => {
                    self.stop(client).await;
                    return Outcome::Restart;
                }
                tag = subscription.recv() => match tag {
                    Some(tag) => batch.push(tag),
                    None => {
                        self.stop(client).await;
                        return Outcome::ProgramEnded;
                    }
                },
                event = client.next_event() => match event {
                    Ok(ClientEvent::Rejected { code, description }) => {
                        return failed(ClientError::Rejected { code, description }.into());
                    }
                    Ok(event) => tracing::debug!(
                        "destination {}: server sent {event:?}",
                        self.destination.name
                    ),
                    Err(e) => return failed(e.into()),
                },
            }
        }
    }

    /// Ends the publish cleanly (FCUnpublish + deleteStream, close_notify for TLS), giving
    /// up after the write timeout: the connection is dropped either way.
    async fn stop(&self, client: RtmpClient<RelayStream>) {
        let name = &self.destination.name;
        let (sent, limit) = (&self.shared.bytes_sent, self.tuning.write_timeout);
        if let Err(e) = while_progressing(client.stop(), sent, limit).await {
            tracing::debug!("destination {name}: unclean stop: {e}");
        }
    }

    /// `error` for logs and the API. A platform's refusal may quote the stream key, so
    /// its words are masked; everything else is our own text, which never contains it.
    fn describe(&self, error: &RelayError) -> String {
        match error {
            RelayError::Rtmp(ClientError::Rejected { code, description }) => {
                let key = self.destination.url.stream_key.as_str();
                format!("refused by the platform: {}: {}", code.replace(key, "****"), description.replace(key, "****"))
            }
            other => other.to_string(),
        }
    }
}

/// Runs `write` to completion unless no byte goes out (as counted in `sent`) for `limit`:
/// a platform that stopped reading fails, a big keyframe on a slow link does not.
async fn while_progressing(
    write: impl Future<Output = Result<(), ClientError>>,
    sent: &AtomicU64,
    limit: Duration,
) -> Result<(), RelayError> {
    tokio::pin!(write);
    let mut seen = sent.load(Ordering::Relaxed);
    loop {
        if let Ok(result) = timeout(limit, &mut write).await {
            return Ok(result?);
        }
        let now = sent.load(Ordering::Relaxed);
        if now == seen {
            return Err(RelayError::WriteTimeout(limit));
        }
        seen = now;
    }
}

/// Dials the destination and starts publishing.
async fn connect(
    url: &RtmpUrl,
    connector: &Connector,
    tuning: &Tuning,
    shared: &Shared,
) -> Result<RtmpClient<RelayStream>, RelayError> {
    let stream = timeout(tuning.dial_timeout, connector.connect(url, tuning.send_buffer, shared.bytes_sent.clone()))
        .await
        .map_err(|_| RelayError::ConnectTimeout(tuning.dial_timeout))?
        .map_err(RelayError::Connect)?;
    let mode = ClientMode::Publish { stream_key: url.stream_key.clone() };
    let config = ClientConfig::new(url.app.clone(), url.tc_url.clone(), mode);
    Ok(RtmpClient::start(stream, config).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, url: &str) -> DestinationConfig {
        DestinationConfig { name: name.into(), url: url.into() }
    }

    #[test]
    fn urls_are_redacted() {
        let url = RtmpUrl::parse("rtmp://a.rtmp.youtube.com/live2/secret-key").unwrap();
        assert_eq!(redact(&url), "rtmp://a.rtmp.youtube.com/live2/****");
        let url = RtmpUrl::parse("rtmps://x.example:4443/app/inst/secret?token=1").unwrap();
        assert_eq!(redact(&url), "rtmps://x.example:4443/app/inst/****");
        let parsed = Destination::parse_all(&[config("yt", "rtmp://h/app/secret")]).unwrap();
        assert!(!format!("{parsed:?}").contains("secret"));
        assert!(!format!("{:?}", config("yt", "rtmp://h/app/secret")).contains("secret"));
    }

    #[test]
    fn invalid_destinations_name_the_setting_without_the_key() {
        let ok = config("ok", "rtmp://h/app/k");
        let cases = [
            (vec![config("yt", "http://h/app/secret")], "destinations[0].url"),
            (vec![ok.clone(), config("b", "rtmp://h/secret")], "destinations[1].url"),
            (vec![config("", "rtmp://h/app/secret")], "destinations[0].name"),
            (vec![config("a b", "rtmp://h/app/secret")], "destinations[0].name"),
            (vec![ok.clone(), ok.clone()], "destinations[1].name"),
            (vec![config("x", "rtmps://bad host/app/secret")], "destinations[0].url"),
        ];
        for (configs, setting) in cases {
            let err = Destination::parse_all(&configs).unwrap_err();
            assert_eq!(err.setting, setting);
            assert!(!err.to_string().contains("secret"), "{err}");
        }
    }

    #[tokio::test]
    async fn writes_fail_only_when_no_byte_moves() {
        let limit = Duration::from_millis(100);
        let sent = AtomicU64::new(0);
        // Slow but moving: one byte every 60 ms, three times the limit in all.
        let slow = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        };
        assert!(while_progressing(slow, &sent, limit).await.is_ok());
        let stuck = std::future::pending::<Result<(), ClientError>>();
        let err = while_progressing(stuck, &sent, limit).await.unwrap_err();
        assert!(matches!(err, RelayError::WriteTimeout(_)), "{err}");
    }
}
