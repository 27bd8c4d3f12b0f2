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

use std::fmt;
use std::future::Future;
use std::time::Duration;

use obws::Client;
use obws::client::{ConnectConfig, DEFAULT_BROADCAST_CAPACITY, HandshakeError};
use obws::requests::EventSubscription;
use obws::requests::inputs::{InputId, SetSettings};
use obws::requests::scene_items::{Id as SceneItemQuery, SetEnabled};
use obws::requests::scenes::SceneId;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, timeout};

use super::backoff::Backoff;
use super::error_chain;
use crate::queue::actor::QueueHandle;
use crate::queue::engine::{Notice, Status};
use crate::secret::Secret;
use crate::settings::ConfigError;

/// obs-websocket's default port (OBS 28 and later).
pub const DEFAULT_PORT: u16 = 4455;

/// Longest scene or source name accepted; OBS has no limit, but these names end up in every
/// request and log line.
const MAX_NAME_LEN: usize = 256;
/// Most `[[obs.toggle]]` entries: each is two requests on every change.
const MAX_TOGGLES: usize = 32;
/// Longest error text kept for a log line (OBS's comments and socket errors are short; this
/// only guards against a hostile peer).
const MAX_ERROR_LEN: usize = 512;
/// Close code with which obs-websocket rejects a wrong or missing password.
const CLOSE_AUTHENTICATION_FAILED: u16 = 4009;

/// The `[obs]` table of `motherstream.toml`, as written. Every key is optional; the seed's
/// `OBS_HOST`, `OBS_PORT` and `OBS_PASSWORD` override `host`, `port` and `password`.
///
/// ```toml
/// [obs]
/// host = "127.0.0.1"             # or OBS_HOST; setting a host turns the integration on
/// port = 4455                    # or OBS_PORT
/// password = "…"                 # or OBS_PASSWORD; omit if OBS has authentication off
/// idle_scene = "Intermission"    # program scene while nobody is on air
/// on_air_scene = "Live"          # program scene while a DJ is on air
/// dj_name_source = "DJ Name"     # text source showing the on-air DJ (emptied when idle)
///
/// [[obs.toggle]]                 # a scene item shown only while on air ...
/// source = "Now Live Banner"
/// scene = "Live"
/// on = "on_air"                  # ... or only while idle: on = "idle"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObsFileConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub password: Option<Secret>,
    pub idle_scene: Option<String>,
    pub on_air_scene: Option<String>,
    pub dj_name_source: Option<String>,
    #[serde(default)]
    pub toggle: Vec<ToggleConfig>,
}

/// One `[[obs.toggle]]`: a scene item shown in one phase and hidden in the other.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToggleConfig {
    /// The source's name (as in OBS's Sources list).
    pub source: String,
    /// The scene that holds it.
    pub scene: String,
    /// When it is shown; hidden otherwise. Default: `on_air`.
    #[serde(default)]
    pub on: ToggleWhen,
}

/// When a toggled scene item is shown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToggleWhen {
    /// While a DJ is on air.
    #[default]
    OnAir,
    /// While nobody is on air (the slate is the program).
    Idle,
}

/// The seed's environment variables for OBS.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObsEnv {
    pub host: Option<String>,
    pub port: Option<String>,
    pub password: Option<Secret>,
}

impl ObsEnv {
    /// Reads `OBS_HOST`, `OBS_PORT` and `OBS_PASSWORD`.
    pub fn from_process() -> Result<Self, ConfigError> {
        fn var(name: &str) -> Result<Option<String>, ConfigError> {
            match std::env::var(name) {
                Ok(value) => Ok(Some(value)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(name, "is not valid UTF-8")),
            }
        }
        Ok(Self { host: var("OBS_HOST")?, port: var("OBS_PORT")?, password: var("OBS_PASSWORD")?.map(Secret::from) })
    }
}

/// A validated OBS configuration: where OBS is and what to do on each phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObsConfig {
    host: String,
    port: u16,
    password: Option<Secret>,
    idle_scene: Option<String>,
    on_air_scene: Option<String>,
    dj_name_source: Option<String>,
    toggles: Vec<ToggleConfig>,
}

impl ObsConfig {
    /// Combines the `[obs]` table and the environment (which wins) and validates them.
    ///
    /// `Ok(None)`: no host anywhere, so the integration is off. A host without any action is
    /// an error rather than a silent no-op, and so is an `[obs]` table without a host. Errors
    /// name the setting (`OBS_PORT`, `obs.toggle[1].scene`, …) and never contain the password.
    pub fn resolve(file: Option<&ObsFileConfig>, env: &ObsEnv) -> Result<Option<Self>, ConfigError> {
        let empty = ObsFileConfig::default();
        let table = file.unwrap_or(&empty);

        let host = match (&env.host, &table.host) {
            (Some(host), _) => Some(("OBS_HOST", host)),
            (None, Some(host)) => Some(("obs.host", host)),
            (None, None) => None,
        };
        let Some((host_setting, host)) = host else {
            return match file {
                Some(_) => Err(ConfigError::new("obs.host", "missing: set it (or OBS_HOST) to OBS's address")),
                None => Ok(None),
            };
        };
        let host = host.trim();
        if host.is_empty() || host.contains("://") || host.contains(['/', ' ']) {
            return Err(ConfigError::new(
                host_setting,
                format!("`{host}` is not a host name or IP address (e.g. 127.0.0.1, without ws://)"),
            ));
        }
        // The host goes into a `ws://HOST:PORT` URL: an IPv6 address needs brackets there,
        // and anything else with a colon is most likely `host:port`.
        let host = if let Ok(ip) = host.parse::<std::net::Ipv6Addr>() {
            format!("[{ip}]")
        } else if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            let port_setting = if host_setting == "OBS_HOST" { "OBS_PORT" } else { "obs.port" };
            return Err(ConfigError::new(host_setting, format!("`{host}`: give the port in {port_setting}")));
        } else {
            host.to_owned()
        };

        let port = match (&env.port, table.port) {
            (Some(text), _) => match text.trim().parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(ConfigError::new("OBS_PORT", format!("`{text}` is not a port number (1-65535)"))),
            },
            (None, Some(0)) => return Err(ConfigError::new("obs.port", "must be 1-65535")),
            (None, Some(port)) => port,
            (None, None) => DEFAULT_PORT,
        };

        // An empty password (`OBS_PASSWORD=` in an env file) counts as not set.
        let password = [&env.password, &table.password].into_iter().flatten().find(|p| !p.is_empty()).cloned();

        let idle_scene = name("obs.idle_scene", table.idle_scene.as_deref())?;
        let on_air_scene = name("obs.on_air_scene", table.on_air_scene.as_deref())?;
        let dj_name_source = name("obs.dj_name_source", table.dj_name_source.as_deref())?;

        if table.toggle.len() > MAX_TOGGLES {
            return Err(ConfigError::new("obs.toggle", format!("at most {MAX_TOGGLES} entries")));
        }
        let mut toggles: Vec<ToggleConfig> = Vec::with_capacity(table.toggle.len());
        for (i, toggle) in table.toggle.iter().enumerate() {
            let source = name(&format!("obs.toggle[{i}].source"), Some(&toggle.source))?.unwrap_or_default();
            let scene = name(&format!("obs.toggle[{i}].scene"), Some(&toggle.scene))?.unwrap_or_default();
            if let Some(first) = toggles.iter().position(|t| t.source == source && t.scene == scene) {
                return Err(ConfigError::new(
                    format!("obs.toggle[{i}]"),
                    format!("`{source}` in `{scene}` is already toggled by obs.toggle[{first}]"),
                ));
            }
            toggles.push(ToggleConfig { source, scene, on: toggle.on });
        }

        if idle_scene.is_none() && on_air_scene.is_none() && dj_name_source.is_none() && toggles.is_empty() {
            return Err(ConfigError::new(
                "obs",
                format!(
                    "{host_setting} is set but nothing is asked of OBS: set obs.idle_scene, obs.on_air_scene, \
                     obs.dj_name_source or add an [[obs.toggle]]"
                ),
            ));
        }

        Ok(Some(Self { host, port, password, idle_scene, on_air_scene, dj_name_source, toggles }))
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

/// A scene or source name: optional, but not blank and not absurdly long. OBS names may
/// contain anything else, including spaces at the ends, so the name is kept as written.
fn name(setting: &str, value: Option<&str>) -> Result<Option<String>, ConfigError> {
    match value {
        None => Ok(None),
        Some(value) if value.trim().is_empty() => Err(ConfigError::new(setting, "must not be empty")),
        Some(value) if value.len() > MAX_NAME_LEN => {
            Err(ConfigError::new(setting, format!("longer than {MAX_NAME_LEN} bytes")))
        }
        Some(value) => Ok(Some(value.to_owned())),
    }
}

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

/// What OBS should show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nobody is on air: the program is the slate (also while a dropped DJ's slot is held).
    Idle,
    /// `dj_name` is on air.
    OnAir { dj_name: String },
}

impl Phase {
    /// The phase the queue is in: on air only while the lead's media is the program.
    pub fn from_status(status: &Status) -> Self {
        match &status.lead {
            Some(lead) if lead.conn.is_some() => Phase::OnAir { dj_name: lead.dj.dj_name.clone() },
            _ => Phase::Idle,
        }
    }

    fn is_on_air(&self) -> bool {
        matches!(self, Phase::OnAir { .. })
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Idle => f.write_str("idle"),
            Phase::OnAir { dj_name } => write!(f, "{dj_name} on air"),
        }
    }
}

/// Where the task learns the current phase when it (re)connects, lags behind the notices,
/// or a notice does not tell the whole story (a set ended: is somebody else on air?).
/// [`QueueHandle`] is the real one; tests can answer from a variable.
pub trait QueueView: Send + Sync + 'static {
    /// The current phase; `None` when the queue cannot say (it has stopped).
    fn phase(&self) -> impl Future<Output = Option<Phase>> + Send;
}

impl QueueView for QueueHandle {
    async fn phase(&self) -> Option<Phase> {
        self.status().await.ok().map(|status| Phase::from_status(&status))
    }
}

/// What one notice says about the phase.
enum Hint {
    Known(Phase),
    /// Ask the queue: the notice alone does not tell.
    Ask,
}

fn hint(notice: &Notice) -> Option<Hint> {
    match notice {
        Notice::OnAir { dj } | Notice::Resumed { dj } => {
            Some(Hint::Known(Phase::OnAir { dj_name: dj.dj_name.clone() }))
        }
        // The slot is held and the slate is the program.
        Notice::GraceStarted { .. } => Some(Hint::Known(Phase::Idle)),
        // The next DJ may have gone on air in the same step (their OnAir follows); the
        // queue's status already includes that, so it never shows a flash of idle.
        Notice::SetEnded { .. } => Some(Hint::Ask),
        _ => None,
    }
}

/// One thing this task sets in OBS. What was last set is remembered per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Scene,
    DjName,
    Toggle(usize),
}

impl Slot {
    fn index(self) -> usize {
        match self {
            Slot::Scene => 0,
            Slot::DjName => 1,
            Slot::Toggle(i) => 2 + i,
        }
    }
}

/// The value a slot should have.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Scene(String),
    Text(String),
    Shown(bool),
}

/// Why a request did not work.
enum Failure {
    /// OBS answered with an error (no such scene, …): the connection is fine.
    Refused(String),
    /// The connection is broken, or OBS did not answer in time: reconnect.
    Connection(String),
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
                _ = shutdown.wait_for(|&stop| stop) => {}
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

    /// The slots and the values they should have in `phase`, in the order they are sent:
    /// going on air, the name and overlays are ready before the scene switches to them;
    /// going idle, the scene switches away before they are cleared. `None`: this phase
    /// leaves the slot alone (e.g. no scene configured for it).
    fn plan(&self, phase: &Phase) -> Vec<(Slot, Option<Value>)> {
        let on_air = phase.is_on_air();
        let scene = if on_air { &self.config.on_air_scene } else { &self.config.idle_scene };
        let scene = (Slot::Scene, scene.clone().map(Value::Scene));
        let text = self.config.dj_name_source.as_ref().map(|_| {
            let name = match phase {
                Phase::OnAir { dj_name } => dj_name.clone(),
                Phase::Idle => String::new(),
            };
            (Slot::DjName, Some(Value::Text(name)))
        });
        let toggles = self
            .config
            .toggles
            .iter()
            .enumerate()
            .map(|(i, toggle)| (Slot::Toggle(i), Some(Value::Shown((toggle.on == ToggleWhen::OnAir) == on_air))));
        let mut plan = Vec::with_capacity(2 + self.config.toggles.len());
        if on_air {
            plan.extend(text);
            plan.extend(toggles);
            plan.push(scene);
        } else {
            plan.push(scene);
            plan.extend(text);
            plan.extend(toggles);
        }
        plan
    }

    /// How many slots still differ from what the phase wants.
    fn unsynced(&self, known: &[Option<Value>]) -> usize {
        let Some(phase) = &self.phase else { return 0 };
        self.plan(phase).into_iter().filter(|(slot, want)| want.is_some() && known[slot.index()] != *want).count()
    }

    /// Sends every slot whose wanted value differs from what OBS was last given. A refusal
    /// is logged (once) and retried later; a connection failure ends the session.
    async fn sync(&mut self, client: &Client, known: &mut [Option<Value>]) -> Result<(), String> {
        let Some(phase) = self.phase.clone() else { return Ok(()) };
        for (slot, want) in self.plan(&phase) {
            let i = slot.index();
            let Some(want) = want else {
                // This phase leaves the slot alone, so what OBS shows there may change
                // without us (the operator picks a scene): send it again next time.
                known[i] = None;
                continue;
            };
            if known[i].as_ref() == Some(&want) {
                continue;
            }
            let what = self.describe(slot, &want);
            match self.send(client, slot, &want).await {
                Ok(()) => {
                    tracing::debug!("OBS: {what}");
                    if self.refused[i].take().is_some() {
                        tracing::info!("OBS: {what}: done after earlier refusals");
                    }
                    known[i] = Some(want);
                }
                Err(Failure::Refused(why)) => {
                    let failure = Some((want, why));
                    if self.refused[i] != failure {
                        if let Some((_, why)) = &failure {
                            tracing::warn!(
                                "OBS refused to {what} ({phase}; retrying every {:?}): {why}",
                                self.tuning.probe_interval
                            );
                        }
                        self.refused[i] = failure;
                    }
                }
                Err(Failure::Connection(why)) => return Err(why),
            }
        }
        Ok(())
    }

    async fn send(&self, client: &Client, slot: Slot, value: &Value) -> Result<(), Failure> {
        match (slot, value) {
            (Slot::Scene, Value::Scene(scene)) => {
                self.request(client.scenes().set_current_program_scene(SceneId::Name(scene))).await
            }
            (Slot::DjName, Value::Text(text)) => {
                let source = self.config.dj_name_source.as_deref().unwrap_or_default();
                let settings = serde_json::json!({ "text": text });
                // overlay: keep the source's font, colour, … and change only the text.
                let request = SetSettings { input: InputId::Name(source), settings: &settings, overlay: Some(true) };
                self.request(client.inputs().set_settings(request)).await
            }
            (Slot::Toggle(i), Value::Shown(shown)) => {
                let Some(toggle) = self.config.toggles.get(i) else { return Ok(()) };
                let scene = SceneId::Name(&toggle.scene);
                // Looked up every time: ids change when the item is removed and added again
                // (or OBS loads another scene collection), and this runs only on changes.
                let query = SceneItemQuery { scene, source: &toggle.source, search_offset: None };
                let item_id = self.request(client.scene_items().id(query)).await?;
                let request = SetEnabled { scene, item_id, enabled: *shown };
                self.request(client.scene_items().set_enabled(request)).await
            }
            // plan() never pairs a slot with another kind of value.
            _ => Ok(()),
        }
    }

    async fn request<T>(&self, request: impl Future<Output = obws::error::Result<T>>) -> Result<T, Failure> {
        match timeout(self.tuning.request_timeout, request).await {
            Err(_) => Err(Failure::Connection(format!("no answer within {:?}", self.tuning.request_timeout))),
            Ok(result) => result.map_err(classify),
        }
    }

    fn describe(&self, slot: Slot, value: &Value) -> String {
        match (slot, value) {
            (Slot::Scene, Value::Scene(scene)) => format!("switch the program to scene `{scene}`"),
            (Slot::DjName, Value::Text(text)) => {
                let source = self.config.dj_name_source.as_deref().unwrap_or_default();
                format!("set the text of `{source}` to `{text}`")
            }
            (Slot::Toggle(i), Value::Shown(shown)) => match self.config.toggles.get(i) {
                Some(toggle) => {
                    format!("{} `{}` in scene `{}`", if *shown { "show" } else { "hide" }, toggle.source, toggle.scene)
                }
                None => format!("toggle #{i}"),
            },
            _ => format!("{slot:?} = {value:?}"),
        }
    }
}

fn classify(error: obws::error::Error) -> Failure {
    match error {
        obws::error::Error::Api { code, message } => {
            let why = match message {
                Some(message) => format!("{code:?}: {message}"),
                None => format!("{code:?}"),
            };
            Failure::Refused(truncate(why))
        }
        other => Failure::Connection(chain(&other)),
    }
}

fn describe_connect_error(error: &obws::error::Error) -> String {
    if let obws::error::Error::Handshake(HandshakeError::ConnectionClosed(Some(details))) = error
        && u16::from(details.code) == CLOSE_AUTHENTICATION_FAILED
    {
        return truncate(format!(
            "OBS refused the password ({}): set OBS_PASSWORD (or obs.password) to the one in OBS → Tools → \
                 WebSocket Server Settings",
            details.reason
        ));
    }
    chain(error)
}

/// The error and its causes on one line, shortened: obws's own messages are generic
/// ("failed to connect"), the cause says what happened ("Connection refused").
fn chain(error: &dyn std::error::Error) -> String {
    truncate(error_chain(error))
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(toml_text: &str) -> ObsFileConfig {
        #[derive(Deserialize)]
        struct Root {
            obs: ObsFileConfig,
        }
        toml::from_str::<Root>(toml_text).expect("test TOML parses").obs
    }

    fn error(file: Option<&ObsFileConfig>, env: &ObsEnv) -> ConfigError {
        ObsConfig::resolve(file, env).expect_err("configuration is refused")
    }

    #[test]
    fn off_without_a_host() {
        assert_eq!(ObsConfig::resolve(None, &ObsEnv::default()).expect("valid"), None);
    }

    #[test]
    fn full_table_parses_and_validates() {
        let file = table(
            r#"
            [obs]
            host = "10.0.0.5"
            password = "hunter2"
            idle_scene = "Intermission"
            on_air_scene = "Live"
            dj_name_source = "DJ Name"
            [[obs.toggle]]
            source = "Now Live Banner"
            scene = "Live"
            [[obs.toggle]]
            source = "Be right back"
            scene = "Intermission"
            on = "idle"
            "#,
        );
        let config = ObsConfig::resolve(Some(&file), &ObsEnv::default()).expect("valid").expect("on");
        assert_eq!((config.host(), config.port()), ("10.0.0.5", DEFAULT_PORT));
        assert_eq!(config.password.as_ref().map(Secret::expose), Some("hunter2"));
        assert_eq!(config.toggles[0].on, ToggleWhen::OnAir);
        assert_eq!(config.toggles[1].on, ToggleWhen::Idle);
        assert!(!format!("{config:?} {file:?}").contains("hunter2"), "Debug never shows the password");
    }

    #[test]
    fn environment_wins_over_the_table() {
        let file = table("[obs]\nhost = \"a\"\nport = 1\npassword = \"file\"\nidle_scene = \"I\"");
        let env = ObsEnv { host: Some("b".into()), port: Some("4456".into()), password: Some("env".into()) };
        let config = ObsConfig::resolve(Some(&file), &env).expect("valid").expect("on");
        assert_eq!(
            (config.host(), config.port(), config.password.as_ref().map(Secret::expose)),
            ("b", 4456, Some("env"))
        );
        // An empty OBS_PASSWORD (an env file's `OBS_PASSWORD=`) counts as not set.
        let env = ObsEnv { password: Some(Secret::default()), ..Default::default() };
        let config = ObsConfig::resolve(Some(&file), &env).expect("valid").expect("on");
        assert_eq!(config.password.as_ref().map(Secret::expose), Some("file"));
        let file = table("[obs]\nhost = \"a\"\npassword = \"\"\nidle_scene = \"I\"");
        let config = ObsConfig::resolve(Some(&file), &env).expect("valid").expect("on");
        assert_eq!(config.password, None);
    }

    #[test]
    fn errors_name_the_setting() {
        let actions = table("[obs]\nidle_scene = \"I\"");
        assert_eq!(error(Some(&actions), &ObsEnv::default()).setting, "obs.host");

        let env = ObsEnv { host: Some("localhost".into()), ..Default::default() };
        let e = error(None, &env);
        assert_eq!(e.setting, "obs");
        assert!(e.message.contains("OBS_HOST is set"), "{e}");

        let env = ObsEnv { host: Some("ws://x:4455".into()), ..Default::default() };
        assert_eq!(error(Some(&actions), &env).setting, "OBS_HOST");

        let env = ObsEnv { host: Some("obs.lan:4455".into()), ..Default::default() };
        let e = error(Some(&actions), &env);
        assert_eq!(e.setting, "OBS_HOST");
        assert!(e.message.contains("OBS_PORT"), "{e}");
        let env = ObsEnv { host: Some("::1".into()), ..Default::default() };
        let config = ObsConfig::resolve(Some(&actions), &env).expect("valid").expect("on");
        assert_eq!(config.host(), "[::1]", "bracketed for the ws:// URL");

        let env = ObsEnv { host: Some("x".into()), port: Some("70000".into()), ..Default::default() };
        assert_eq!(error(Some(&actions), &env).setting, "OBS_PORT");

        assert_eq!(
            error(Some(&table("[obs]\nhost = \"x\"\nport = 0\nidle_scene = \"I\"")), &ObsEnv::default()).setting,
            "obs.port"
        );
        assert_eq!(
            error(Some(&table("[obs]\nhost = \"x\"\non_air_scene = \" \"")), &ObsEnv::default()).setting,
            "obs.on_air_scene"
        );

        let twice = table(
            "[obs]\nhost = \"x\"\n[[obs.toggle]]\nsource = \"B\"\nscene = \"L\"\n[[obs.toggle]]\nsource = \"B\"\nscene = \"L\"\non = \"idle\"",
        );
        let e = error(Some(&twice), &ObsEnv::default());
        assert_eq!(e.setting, "obs.toggle[1]");
        assert!(e.message.contains("obs.toggle[0]"), "{e}");

        let blank = table("[obs]\nhost = \"x\"\n[[obs.toggle]]\nsource = \"B\"\nscene = \"\"");
        assert_eq!(error(Some(&blank), &ObsEnv::default()).setting, "obs.toggle[0].scene");
    }

    #[test]
    fn unknown_keys_and_values_are_refused_by_the_parser() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Root {
            obs: ObsFileConfig,
        }
        assert!(toml::from_str::<Root>("[obs]\nhots = \"x\"").is_err());
        assert!(
            toml::from_str::<Root>("[obs]\n[[obs.toggle]]\nsource = \"a\"\nscene = \"b\"\non = \"always\"").is_err()
        );
    }

    #[test]
    fn plans_order_and_values() {
        let file = table(
            "[obs]\nhost = \"x\"\nidle_scene = \"I\"\ndj_name_source = \"N\"\n[[obs.toggle]]\nsource = \"B\"\nscene = \"L\"",
        );
        let config = ObsConfig::resolve(Some(&file), &ObsEnv::default()).expect("valid").expect("on");
        let (_tx, rx) = broadcast::channel(1);
        let obs = Obs {
            config,
            tuning: ObsTuning::default(),
            notices: rx,
            queue: Fixed,
            phase: None,
            refused: vec![None; 3],
        };
        let on_air = obs.plan(&Phase::OnAir { dj_name: "Alice".into() });
        assert_eq!(
            on_air,
            vec![
                (Slot::DjName, Some(Value::Text("Alice".into()))),
                (Slot::Toggle(0), Some(Value::Shown(true))),
                // No on-air scene configured: the operator's choice stands.
                (Slot::Scene, None),
            ]
        );
        let idle = obs.plan(&Phase::Idle);
        assert_eq!(
            idle,
            vec![
                (Slot::Scene, Some(Value::Scene("I".into()))),
                (Slot::DjName, Some(Value::Text(String::new()))),
                (Slot::Toggle(0), Some(Value::Shown(false))),
            ]
        );
    }

    struct Fixed;
    impl QueueView for Fixed {
        async fn phase(&self) -> Option<Phase> {
            Some(Phase::Idle)
        }
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let cut = truncate("é".repeat(MAX_ERROR_LEN));
        assert!(cut.len() <= MAX_ERROR_LEN + '…'.len_utf8());
        assert!(cut.ends_with('…'));
    }
}
