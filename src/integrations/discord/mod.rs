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
//! message also says `"allowed_mentions": {"parse": []}` so nothing in it can ping anyone —
//! but, in the up-next message, the one DJ who linked their Discord user id (listed alone in
//! `allowed_mentions.users`; `integrations::up_next` looks it up with their stream's health).
//!
//! Files: `config` (the settings, URL validation and redaction), `format` (notices and
//! destination outages into messages, escaping), `sender` (HTTP delivery and Discord's
//! rate-limit answers), and here the two tasks. The outbox, backoff and pacing are the
//! shared ones of `integrations::delivery`.

mod config;
mod format;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::MissedTickBehavior;

pub use self::config::{DiscordConfig, TOGGLE_SETTING, WEBHOOK_URL_SETTING, redact_webhook_url};
pub use self::format::{DestinationWatcher, Message, escape, format_notice, format_up_next, is_discord_user_id};
use self::sender::Sender;
use super::delivery::{Outbox, Pushed};
use super::destination::{DestinationStatus, Destinations};
use super::shutdown_requested;
use super::up_next::UpNextLookup;
use crate::queue::engine::{Dj, Notice};

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
    /// [`Discord::spawn_with`] with the default [`Tuning`], and the up-next message
    /// mentioning the DJ who linked their Discord user id and saying what is wrong with
    /// their stream (`lookup`).
    pub fn spawn(
        config: DiscordConfig,
        notices: broadcast::Receiver<Notice>,
        destinations: impl StatusSource,
        lookup: UpNextLookup,
        shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        Self::start(config, Tuning::default(), notices, destinations, Some(lookup), shutdown)
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
        Self::start(config, tuning, notices, destinations, None, shutdown)
    }

    fn start(
        config: DiscordConfig,
        tuning: Tuning,
        notices: broadcast::Receiver<Notice>,
        destinations: impl StatusSource,
        lookup: Option<UpNextLookup>,
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
            lookup,
        };
        let drain_timeout = tuning.drain_timeout;
        tokio::spawn(async move {
            // In a JoinSet so that aborting this task also aborts the sender.
            let mut sending = JoinSet::new();
            sending.spawn(sender.run(outbox.clone(), shutdown.clone(), drain_timeout));
            collector.run(shutdown).await;
            // Nothing more is coming: the sender delivers what is queued and ends.
            outbox.close();
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

/// Reads notices and polls destinations; never waits on the network.
struct Collector<S> {
    /// `None` once the queue is gone: destinations are still watched.
    notices: Option<broadcast::Receiver<Notice>>,
    source: S,
    watcher: DestinationWatcher,
    outbox: Arc<Outbox<Message>>,
    poll_interval: Duration,
    /// Details of the DJ who is up next; without it, the message just names them.
    lookup: Option<UpNextLookup>,
}

impl<S: StatusSource> Collector<S> {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut poll = tokio::time::interval(self.poll_interval.max(Duration::from_millis(1)));
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown_requested(&mut shutdown) => break,
                received = recv(&mut self.notices) => match received {
                    Ok(Notice::UpNext { dj, on_air_in }) if self.lookup.is_some() => self.up_next(dj, on_air_in),
                    Ok(notice) => {
                        if let Some(message) = format_notice(&notice) {
                            queue(&self.outbox, message);
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
                        queue(&self.outbox, message);
                    }
                }
            }
        }
    }

    /// Looks the DJ up on a task of its own (the store may be slow; notices keep being
    /// read meanwhile), then queues the message. Once per set, so these tasks stay few.
    fn up_next(&self, dj: Dj, on_air_in: Duration) {
        let Some(lookup) = self.lookup.clone() else { return };
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let details = lookup.details(dj.user_id).await;
            let mention = details.user.as_ref().and_then(|u| u.discord_user_id.as_deref());
            queue(&outbox, format_up_next(&dj.dj_name, on_air_in, mention, &details.advice));
        });
    }
}

fn queue(outbox: &Outbox<Message>, message: Message) {
    // Once per overflow, not once per message.
    if let Pushed::DroppedOldest { first: true, .. } = outbox.push(message) {
        tracing::warn!(
            "discord: the webhook is falling behind; dropping the oldest messages \
             ({} queued, {} dropped so far)",
            outbox.len(),
            outbox.dropped()
        );
    }
}

/// The next notice, or never once the channel is gone (so `select!` ignores it).
async fn recv(notices: &mut Option<broadcast::Receiver<Notice>>) -> Result<Notice, broadcast::error::RecvError> {
    match notices {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}
