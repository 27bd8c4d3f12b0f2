//! OBS automation: the studio's OBS follows the queue over obs-websocket v5.
//!
//! OBS shows the program (one media source playing `rtmp://SERVER:1935/program/live`) with
//! overlays on top; this task keeps the overlays in step with the channel: which scene is on
//! program, the on-air DJ's name in a text source, and banners shown only while someone is on
//! air (or only while idle). It runs on its own:
//!
//! ```text
//! disconnected: websocket + Hello/Identify (answering OBS's auth challenge), bounded by
//!               connect_timeout
//!   failure  -> log it (again only when the error changes), wait 1 s, 2 s, 4 s ... 30 s
//! connected:  fresh notice subscription, ask the queue what is on air NOW and apply all of it,
//!             so an OBS that restarted (or started after us) is brought in line
//!   notice   -> new phase (on air with DJ X, or idle) -> send only what differs
//!   every probe_interval -> retry what OBS refused (a missing scene may be added), or a
//!               cheap GetVersion so a dead OBS is noticed while nothing happens
//!   connection error or request timeout -> disconnected
//! shutdown (any time) -> exit
//! ```
//!
//! The queue never waits for OBS: the task only holds a `broadcast` subscription (a slow or
//! absent OBS makes it lag, and a lag is answered by asking the queue for its state) and asks
//! the queue actor for its status, which the actor answers without waiting for anybody.
//!
//! What was sent is remembered per *slot* (the program scene, the DJ name text, each toggle)
//! for the current connection, so a DJ change only rewrites the name, and a scene that the
//! operator picked by hand during a set is not fought over: the scene is switched when the
//! channel goes on air or idle, not on every notice.
//!
//! Files: `config` (the `[obs]` table and `OBS_*` variables, validated), `phase` (what
//! OBS should show, and how a notice changes it), `studio` (the slots set in OBS and the
//! requests that set them), `errors` (telling a refusal from a lost connection), and here
//! the task: connecting, reconnecting with backoff, following the queue.

mod config;
mod errors;
mod phase;
mod studio;

use std::time::Duration;

use obws::Client;
use obws::client::{ConnectConfig, DEFAULT_BROADCAST_CAPACITY};
use obws::requests::EventSubscription;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, timeout};

pub use self::config::{DEFAULT_PORT, ObsConfig, ObsEnv, ObsFileConfig, ToggleConfig, ToggleWhen};
use self::errors::{Failure, classify, describe_connect_error};
use self::phase::{Hint, hint};
pub use self::phase::{Phase, QueueView};
use self::studio::Value;
use super::delivery::Backoff;
use super::shutdown_requested;
use crate::queue::actor::QueueHandle;
use crate::queue::engine::Notice;
use crate::secret::Secret;

/// Timeouts and backoff of the OBS task.
#[derive(Debug, Clone)]
pub struct ObsTuning {
    /// Websocket connect plus the Hello/Identify handshake.
    pub connect_timeout: Duration,
    /// One request, and one question to the queue. An OBS that does not answer in time is
    /// treated as gone (a half-open connection would otherwise hang the task).
    pub request_timeout: Duration,
    /// First delay after a failure; doubled after each further failure ...
    pub backoff_min: Duration,
    /// ... up to this.
    pub backoff_max: Duration,
    /// A connection that stayed up this long was healthy: the next failure starts the
    /// backoff from `backoff_min` again. Shorter ones keep growing it, so an OBS that
    /// accepts and then drops us is not hammered.
    pub stable_after: Duration,
    /// How often a quiet connection is checked (and refused actions retried).
    pub probe_interval: Duration,
}

impl Default for ObsTuning {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
            probe_interval: Duration::from_secs(5),
        }
    }
}

/// Why a connected session ended.
enum SessionEnd {
    Lost(String),
    /// The queue is gone (the server is stopping): nothing more to follow.
    QueueGone,
}

/// The OBS task. See the [module documentation](self).
pub struct Obs<Q> {
    config: ObsConfig,
    tuning: ObsTuning,
    notices: broadcast::Receiver<Notice>,
    queue: Q,
    /// The phase OBS should show; `None` until the queue has told us.
    phase: Option<Phase>,
    /// What OBS was last seen to refuse, per slot, so a failure is logged once, not on
    /// every retry.
    refused: Vec<Option<(Value, String)>>,
}

impl Obs<QueueHandle> {
    /// Starts the task following `queue`. It runs until `shutdown` becomes `true` (or its
    /// sender is dropped).
    pub fn spawn(config: ObsConfig, queue: &QueueHandle, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        Obs::spawn_with(config, ObsTuning::default(), queue.subscribe(), queue.clone(), shutdown)
    }
}

impl<Q: QueueView> Obs<Q> {
    /// Starts the task with explicit timings, following `notices` and asking `queue` for
    /// the current phase.
    pub fn spawn_with(
        config: ObsConfig,
        tuning: ObsTuning,
        notices: broadcast::Receiver<Notice>,
        queue: Q,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let slots = 2 + config.toggles.len();
        let mut obs = Obs { config, tuning, notices, queue, phase: None, refused: vec![None; slots] };
        tokio::spawn(async move {
            // Dropping `run` mid-request is fine: the client goes with it, closing the socket.
            tokio::select! {
                () = obs.run() => {}
                () = shutdown_requested(&mut shutdown) => {}
            }
        })
    }

    async fn run(&mut self) {
        let address = format!("ws://{}:{}", self.config.host, self.config.port);
        let mut backoff = Backoff::new(self.tuning.backoff_min, self.tuning.backoff_max);
        let mut last_failure: Option<String> = None;
        loop {
            match self.connect().await {
                Ok(client) => {
                    tracing::info!("connected to OBS at {address}");
                    let since = Instant::now();
                    match self.session(&client).await {
                        SessionEnd::QueueGone => {
                            tracing::debug!("the queue has stopped; OBS automation ends");
                            return;
                        }
                        SessionEnd::Lost(why) => {
                            tracing::warn!("lost the connection to OBS at {address} (reconnecting): {why}");
                            last_failure = Some(why);
                        }
                    }
                    if since.elapsed() >= self.tuning.stable_after {
                        backoff.reset();
                    }
                }
                Err(why) => {
                    // Once per distinct error: OBS being off for hours is one line, not one
                    // every 30 s.
                    if last_failure.as_ref() != Some(&why) {
                        tracing::warn!("cannot connect to OBS at {address} (retrying with backoff): {why}");
                    } else {
                        tracing::debug!("still cannot connect to OBS at {address}: {why}");
                    }
                    last_failure = Some(why);
                }
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    async fn connect(&self) -> Result<Client, String> {
        let config = ConnectConfig {
            host: self.config.host.as_str(),
            port: self.config.port,
            password: self.config.password.as_ref().map(Secret::expose),
            // We only send requests; OBS's events would be parsed and dropped.
            event_subscriptions: Some(EventSubscription::NONE),
            broadcast_capacity: DEFAULT_BROADCAST_CAPACITY,
            connect_timeout: self.tuning.connect_timeout,
            dangerous: None,
        };
        // obws bounds the websocket connect and the wait for Hello, not the wait for
        // Identified: bound the whole handshake here.
        match timeout(self.tuning.connect_timeout, Client::connect_with_config(config)).await {
            Err(_) => Err(format!("no answer within {:?}", self.tuning.connect_timeout)),
            Ok(Err(e)) => Err(describe_connect_error(&e)),
            Ok(Ok(client)) => Ok(client),
        }
    }

    /// One connection: bring OBS in line with the queue, then follow it.
    async fn session(&mut self, client: &Client) -> SessionEnd {
        // Notices from before this moment are stale (the queue's answer below covers them),
        // and replaying them would show OBS states that are long gone.
        self.notices = self.notices.resubscribe();
        if let Some(phase) = self.ask_queue().await {
            self.phase = Some(phase);
        }
        // Nothing is known about a fresh (or restarted) OBS: every slot is sent once.
        let mut known: Vec<Option<Value>> = vec![None; self.refused.len()];
        let mut probe =
            tokio::time::interval_at(Instant::now() + self.tuning.probe_interval, self.tuning.probe_interval);
        probe.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            if let Err(why) = self.sync(client, &mut known).await {
                return SessionEnd::Lost(why);
            }
            tokio::select! {
                received = self.notices.recv() => {
                    let hint = match received {
                        Ok(notice) => hint(&notice),
                        // We fell behind: the queue knows where things stand.
                        Err(RecvError::Lagged(_)) => Some(Hint::Ask),
                        Err(RecvError::Closed) => return SessionEnd::QueueGone,
                    };
                    let hint = self.drain(hint);
                    match hint {
                        Some(Hint::Known(phase)) => self.phase = Some(phase),
                        Some(Hint::Ask) => {
                            if let Some(phase) = self.ask_queue().await {
                                self.phase = Some(phase);
                            }
                        }
                        None => {}
                    }
                }
                _ = probe.tick() => {
                    // Refused slots are retried by the sync at the top of the loop; a quiet
                    // connection is checked so a dead OBS is noticed before it matters.
                    if self.unsynced(&known) == 0 {
                        let check = timeout(self.tuning.request_timeout, client.general().version()).await;
                        match check {
                            Err(_) => return SessionEnd::Lost(format!("no answer within {:?}", self.tuning.request_timeout)),
                            Ok(Err(e)) => {
                                if let Failure::Connection(why) = classify(e) {
                                    return SessionEnd::Lost(why);
                                }
                            }
                            Ok(Ok(_)) => {}
                        }
                    }
                }
            }
        }
    }

    /// Folds the notices that are already waiting into `hint`: a burst (a set ends and the
    /// next goes on air) becomes one change in OBS instead of several.
    fn drain(&mut self, mut hint: Option<Hint>) -> Option<Hint> {
        loop {
            match self.notices.try_recv() {
                Ok(notice) => {
                    if let Some(newer) = self::hint(&notice) {
                        hint = Some(newer);
                    }
                }
                Err(TryRecvError::Lagged(_)) => hint = Some(Hint::Ask),
                // Closed is seen (and acted on) by the next recv.
                Err(TryRecvError::Empty | TryRecvError::Closed) => return hint,
            }
        }
    }

    async fn ask_queue(&self) -> Option<Phase> {
        let answer = timeout(self.tuning.request_timeout, self.queue.phase()).await.ok().flatten();
        if answer.is_none() {
            tracing::debug!("the queue did not tell what is on air; OBS keeps its current state");
        }
        answer
    }
}
