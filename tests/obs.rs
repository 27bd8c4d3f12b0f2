//! OBS automation over real sockets: the integration (with the real obws client) against a
//! fake obs-websocket v5 server on 127.0.0.1 that checks the handshake and authentication
//! like OBS and keeps a model of the studio. Notices go through a real `broadcast` channel;
//! the queue's state comes from a stub (and, in the last test, from the real queue actor).

#[path = "obs/fake.rs"]
mod fake;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use motherstream::ids::{ConnId, UserId};
use motherstream::integrations::obs::{
    Obs, ObsConfig, ObsEnv, ObsFileConfig, ObsTuning, Phase, QueueView, ToggleConfig, ToggleWhen,
};
use motherstream::queue::actor::{self, PublishDecision};
use motherstream::queue::engine::{Dj, EndReason, Input, Notice, Settings};
use motherstream::secret::Secret;
use motherstream::store::Store;
use motherstream::store::{DatabaseLocation, StoreConfig};
use serde_json::json;
use tokio::sync::{broadcast, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::subscriber::DefaultGuard;

use fake::{FakeObs, Model, Studio};

/// How long a test waits for an expected state before failing (a loaded 2-core machine).
const PATIENCE: Duration = Duration::from_secs(20);

/// Short enough to keep tests quick, long enough for a loaded machine.
fn tuning() -> ObsTuning {
    ObsTuning {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(1),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        stable_after: Duration::from_secs(30),
        probe_interval: Duration::from_millis(200),
    }
}

/// The README's example: both scenes, the DJ name, a banner on air and a "be right back"
/// while idle.
fn studio_config(port: u16, password: Option<&str>) -> ObsConfig {
    let file = ObsFileConfig {
        host: Some("127.0.0.1".into()),
        port: Some(port),
        password: password.map(Secret::from),
        idle_scene: Some("Intermission".into()),
        on_air_scene: Some("Live".into()),
        dj_name_source: Some("DJ Name".into()),
        toggle: vec![
            ToggleConfig { source: "Now Live Banner".into(), scene: "Live".into(), on: ToggleWhen::OnAir },
            ToggleConfig { source: "Be Right Back".into(), scene: "Intermission".into(), on: ToggleWhen::Idle },
        ],
    };
    ObsConfig::resolve(Some(&file), &ObsEnv::default()).expect("valid configuration").expect("integration on")
}

fn dj(name: &str) -> Dj {
    Dj { user_id: UserId(name.len() as i64), dj_name: name.to_owned() }
}

fn on_air(name: &str) -> Phase {
    Phase::OnAir { dj_name: name.to_owned() }
}

/// The queue's state as the tests set it.
#[derive(Clone)]
struct Stage(Arc<Mutex<Phase>>);

impl Stage {
    fn set(&self, phase: Phase) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = phase;
    }
}

impl QueueView for Stage {
    async fn phase(&self) -> Option<Phase> {
        Some(self.0.lock().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// Log lines written while a test runs (the tests run on one thread, so the integration's
/// task logs here too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture(&self) -> DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_env_filter("motherstream=debug,warn")
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// Warnings that contain `needle` (each retry is also logged, at debug level).
    fn warnings(&self, needle: &str) -> usize {
        self.text().lines().filter(|line| line.contains(" WARN ") && line.contains(needle)).count()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The integration under test, with its inputs.
struct Harness {
    notices: broadcast::Sender<Notice>,
    stage: Stage,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    logs: Logs,
    _logging: DefaultGuard,
}

impl Harness {
    fn start(config: ObsConfig, phase: Phase) -> Self {
        Self::start_with(config, phase, tuning(), 16)
    }

    fn start_with(config: ObsConfig, phase: Phase, tuning: ObsTuning, backlog: usize) -> Self {
        let logs = Logs::default();
        let logging = logs.capture();
        let (notices, receiver) = broadcast::channel(backlog);
        let stage = Stage(Arc::new(Mutex::new(phase)));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = Obs::spawn_with(config, tuning, receiver, stage.clone(), shutdown_rx);
        Self { notices, stage, shutdown, task, logs, _logging: logging }
    }

    /// The queue moves to `phase` and announces it with `notices`, as the actor does (state
    /// first, then the broadcast).
    fn announce(&self, phase: Phase, notices: impl IntoIterator<Item = Notice>) {
        self.stage.set(phase);
        for notice in notices {
            // The integration may be between subscriptions; a notice nobody hears is fine.
            let _ = self.notices.send(notice);
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        tokio::time::timeout(Duration::from_secs(2), self.task)
            .await
            .expect("the integration stops promptly on shutdown")
            .expect("the integration task did not panic");
    }
}

fn shows_idle(m: &Model) -> bool {
    m.program_scene == "Intermission"
        && m.text("DJ Name") == Some("")
        && !m.shown("Live", "Now Live Banner")
        && m.shown("Intermission", "Be Right Back")
}

fn shows_on_air(m: &Model, name: &str) -> bool {
    m.program_scene == "Live"
        && m.text("DJ Name") == Some(name)
        && m.shown("Live", "Now Live Banner")
        && !m.shown("Intermission", "Be Right Back")
}

fn scene_switches(m: &Model, scene: &str) -> usize {
    m.of_kind("SetCurrentProgramScene").iter().filter(|r| r.data["sceneName"] == scene).count()
}

#[tokio::test]
async fn on_air_switches_the_scene_sets_the_name_and_shows_the_banner() {
    let fake = FakeObs::start(Studio::standard(Some("s3cret"))).await;
    let h = Harness::start(studio_config(fake.port(), Some("s3cret")), Phase::Idle);

    // On connect, the current state (idle) is applied in full.
    fake.wait_until(PATIENCE, "idle applied on connect", |m| {
        shows_idle(m) && m.of_kind("SetSceneItemEnabled").len() == 2
    })
    .await;

    h.announce(on_air("DJ Alice"), [Notice::OnAir { dj: dj("DJ Alice") }]);
    let m = fake.wait_until(PATIENCE, "on air", |m| shows_on_air(m, "DJ Alice")).await;
    assert_eq!(m.identified, 1, "authenticated once, no reconnects");

    // The name and the overlays are ready before the program switches to the scene.
    let actions = m.actions();
    let position = |check: &dyn Fn(&fake::Recorded) -> bool| actions.iter().rposition(|r| check(r));
    let switch = position(&|r| r.kind == "SetCurrentProgramScene" && r.data["sceneName"] == "Live").expect("switch");
    let name =
        position(&|r| r.kind == "SetInputSettings" && r.data["inputSettings"]["text"] == "DJ Alice").expect("name set");
    let banner = position(&|r| r.kind == "SetSceneItemEnabled" && r.data["sceneItemEnabled"] == true).expect("shown");
    assert!(name < switch && banner < switch, "order: {actions:#?}");

    // Only the text changes; the source keeps its other settings.
    let set = actions[name];
    assert_eq!(set.data["inputName"], "DJ Name");
    assert_eq!(set.data["inputSettings"], json!({ "text": "DJ Alice" }));
    assert_eq!(set.data["overlay"], true);
    // Scene items are addressed by the id OBS gives for (scene, source).
    let lookup = m.of_kind("GetSceneItemId");
    assert!(lookup.iter().any(|r| r.data["sceneName"] == "Live" && r.data["sourceName"] == "Now Live Banner"));

    h.stop().await;
}

#[tokio::test]
async fn idle_switches_back_and_a_dj_change_only_rewrites_the_name() {
    let fake = FakeObs::start(Studio::standard(None)).await;
    let h = Harness::start(studio_config(fake.port(), None), on_air("DJ Alice"));
    fake.wait_until(PATIENCE, "Alice on air on connect", |m| shows_on_air(m, "DJ Alice")).await;

    // Alice's set ends and Bob goes on air in the same step: no flash of the idle scene, and
    // the program scene is not switched again.
    h.announce(
        on_air("DJ Bob"),
        [Notice::SetEnded { dj: dj("DJ Alice"), reason: EndReason::SlotElapsed }, Notice::OnAir { dj: dj("DJ Bob") }],
    );
    let m = fake.wait_until(PATIENCE, "Bob's name", |m| shows_on_air(m, "DJ Bob")).await;
    assert_eq!(scene_switches(&m, "Intermission"), 0, "{:#?}", m.actions());
    assert_eq!(scene_switches(&m, "Live"), 1, "{:#?}", m.actions());

    // Bob stops and nobody waits: idle scene, name cleared, banner hidden, BRB shown.
    h.announce(Phase::Idle, [Notice::SetEnded { dj: dj("DJ Bob"), reason: EndReason::Stopped }]);
    fake.wait_until(PATIENCE, "idle", shows_idle).await;

    // A dropped connection holds the slot with the slate on air (idle); coming back resumes.
    h.announce(on_air("DJ Carol"), [Notice::OnAir { dj: dj("DJ Carol") }]);
    fake.wait_until(PATIENCE, "Carol on air", |m| shows_on_air(m, "DJ Carol")).await;
    h.announce(Phase::Idle, [Notice::GraceStarted { dj: dj("DJ Carol"), grace: Duration::from_secs(10) }]);
    fake.wait_until(PATIENCE, "idle during the grace period", shows_idle).await;
    h.announce(on_air("DJ Carol"), [Notice::Resumed { dj: dj("DJ Carol") }]);
    let m = fake.wait_until(PATIENCE, "Carol back on air", |m| shows_on_air(m, "DJ Carol")).await;

    // Notices that do not change the phase send nothing.
    let before = m.actions().len();
    h.announce(
        on_air("DJ Carol"),
        [
            Notice::TimeWarning { dj: dj("DJ Carol"), remaining: Duration::from_secs(60) },
            Notice::Queued { dj: dj("DJ Dave"), position: 1 },
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.model().actions().len(), before);

    h.stop().await;
}

#[tokio::test]
async fn a_wrong_password_sends_nothing_retries_and_is_logged_once() {
    let fake = FakeObs::start(Studio::standard(Some("right-password"))).await;
    let h = Harness::start(studio_config(fake.port(), Some("wrong-password")), on_air("DJ Alice"));

    let m = fake.wait_until(PATIENCE, "three refused attempts", |m| m.auth_failures >= 3).await;
    assert_eq!(m.identified, 0);
    assert!(m.requests.is_empty(), "no request without authentication: {:#?}", m.requests);
    assert_eq!(m.program_scene, "Intermission");

    let logs = h.logs.text();
    assert_eq!(h.logs.warnings("OBS refused the password"), 1, "logged once per state: {logs}");
    assert!(logs.contains("Authentication failed."), "OBS's reason is in the log: {logs}");
    assert!(!logs.contains("wrong-password") && !logs.contains("right-password"), "no password in logs: {logs}");

    // No password at all is refused the same way (OBS requires one).
    h.stop().await;
    let h = Harness::start(studio_config(fake.port(), None), Phase::Idle);
    let before = fake.model().auth_failures;
    fake.wait_until(PATIENCE, "refused without a password", |m| m.auth_failures > before).await;
    assert!(fake.model().requests.is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_restarted_obs_is_brought_back_in_line() {
    let fake = FakeObs::start(Studio::standard(Some("pw"))).await;
    let h = Harness::start(studio_config(fake.port(), Some("pw")), on_air("DJ Alice"));
    fake.wait_until(PATIENCE, "Alice on air", |m| shows_on_air(m, "DJ Alice")).await;

    // OBS crashes and comes back while nothing happens in the queue: the periodic check
    // notices, and the fresh OBS (back on its first scene, everything hidden) gets the
    // current state again.
    let addr = fake.crash().await;
    let fake = FakeObs::start_on(addr, Studio::standard(Some("pw"))).await;
    let m = fake.wait_until(PATIENCE, "Alice re-applied", |m| shows_on_air(m, "DJ Alice")).await;
    assert_eq!(m.identified, 1);
    assert!(h.logs.warnings("lost the connection to OBS") >= 1, "{}", h.logs.text());

    // OBS is down while the queue moves on, long enough for the notices to overflow the
    // backlog: once back, OBS shows where the queue is now, not a replay.
    let addr = fake.crash().await;
    h.announce(on_air("DJ Bob"), [Notice::SetEnded { dj: dj("DJ Alice"), reason: EndReason::Stopped }]);
    h.announce(Phase::Idle, [Notice::SetEnded { dj: dj("DJ Bob"), reason: EndReason::Stopped }]);
    h.announce(on_air("DJ Carol"), (0..100).map(|_| Notice::OnAir { dj: dj("DJ Carol") }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fake = FakeObs::start_on(addr, Studio::standard(Some("pw"))).await;
    let m = fake.wait_until(PATIENCE, "Carol applied after the restart", |m| shows_on_air(m, "DJ Carol")).await;
    assert!(
        !m.of_kind("SetInputSettings").iter().any(|r| r.data["inputSettings"]["text"] == "DJ Bob"),
        "stale notices are not replayed: {:#?}",
        m.actions()
    );

    h.stop().await;
}

#[tokio::test]
async fn obs_down_the_whole_time_blocks_nothing() {
    // A port with nothing listening.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    };
    let h = Harness::start(studio_config(port, None), Phase::Idle);

    // The queue's side of the channel never waits, however many notices pile up.
    let started = std::time::Instant::now();
    for i in 0..10_000 {
        h.announce(on_air("DJ Alice"), [Notice::TimeWarning { dj: dj("DJ Alice"), remaining: Duration::from_secs(i) }]);
    }
    assert!(started.elapsed() < Duration::from_secs(1), "sending took {:?}", started.elapsed());

    // It keeps retrying (50 ms, 100 ms, 200 ms, 400 ms, …) and says so once.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!h.task.is_finished());
    assert_eq!(h.logs.warnings("cannot connect to OBS"), 1, "{}", h.logs.text());
    assert!(h.logs.text().contains("Connection refused"), "the cause is logged: {}", h.logs.text());
    h.stop().await;

    // An OBS that accepts the TCP connection but never speaks is given up on after the
    // connect timeout, not waited for forever.
    let mute = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = mute.local_addr().expect("address").port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = mute.accept().await {
            sockets.push(socket);
        }
    });
    let mut quick = tuning();
    quick.connect_timeout = Duration::from_millis(300);
    let h = Harness::start_with(studio_config(port, None), Phase::Idle, quick, 16);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(h.logs.text().contains("cannot connect to OBS"), "{}", h.logs.text());
    h.stop().await;
    held.abort();
}

#[tokio::test]
async fn a_refused_action_is_logged_once_and_retried_until_obs_accepts_it() {
    let mut studio = Studio::standard(None);
    studio.scenes.retain(|scene| scene != "Live");
    let fake = FakeObs::start(studio).await;
    let h = Harness::start(studio_config(fake.port(), None), on_air("DJ Alice"));

    // Everything else is applied although the scene is missing.
    fake.wait_until(PATIENCE, "name set and scene retried", |m| {
        m.text("DJ Name") == Some("DJ Alice") && scene_switches(m, "Live") >= 3
    })
    .await;
    let logs = h.logs.text();
    assert_eq!(h.logs.warnings("OBS refused to switch the program to scene `Live`"), 1, "{logs}");
    assert!(logs.contains("No scene was found by the name of `Live`"), "OBS's error is logged: {logs}");

    // The operator adds the scene: the next retry succeeds, and the connection was never
    // dropped for it.
    fake.add_scene("Live");
    let m = fake.wait_until(PATIENCE, "scene switched", |m| m.program_scene == "Live").await;
    assert_eq!(m.connections, 1);
    assert!(h.logs.text().contains("OBS: switch the program to scene `Live`: done after earlier refusals"));
    // Once accepted, it is not sent again.
    let switches = scene_switches(&m, "Live");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(scene_switches(&fake.model(), "Live"), switches);

    h.stop().await;
}

#[tokio::test]
async fn an_obs_that_stops_answering_is_reconnected_after_the_request_timeout() {
    let fake = FakeObs::start(Studio::standard(None)).await;
    let h = Harness::start(studio_config(fake.port(), None), Phase::Idle);
    fake.wait_until(PATIENCE, "idle applied", shows_idle).await;

    fake.set_silent(true);
    h.announce(on_air("DJ Alice"), [Notice::OnAir { dj: dj("DJ Alice") }]);
    fake.wait_until(PATIENCE, "a reconnect attempt", |m| m.connections >= 2).await;
    assert!(h.logs.text().contains("no answer within"), "{}", h.logs.text());

    fake.set_silent(false);
    fake.wait_until(PATIENCE, "Alice on air after the reconnect", |m| shows_on_air(m, "DJ Alice")).await;
    h.stop().await;
}

#[tokio::test]
async fn follows_the_real_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&StoreConfig {
        data_dir: dir.path().to_path_buf(),
        database: DatabaseLocation { url: format!("sqlite://{}", dir.path().join("obs.db").display()) },
    })
    .await
    .expect("store");
    let queue = actor::spawn(store, Settings::default()).await;
    let fake = FakeObs::start(Studio::standard(None)).await;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = Obs::spawn(studio_config(fake.port(), None), &queue, shutdown_rx);
    fake.wait_until(PATIENCE, "idle on connect", shows_idle).await;

    let publish = |conn: u64, name: &str| {
        let queue = queue.clone();
        let dj = dj(name);
        async move {
            let (kick, _kicked) = oneshot::channel();
            queue.publish(ConnId(conn), dj, kick).await.expect("queue running")
        }
    };
    assert_eq!(publish(1, "DJ Alice").await, PublishDecision::Accepted { on_air: true, position: 0 });
    assert!(matches!(publish(2, "DJ Bob").await, PublishDecision::Accepted { on_air: false, .. }));
    fake.wait_until(PATIENCE, "Alice on air", |m| shows_on_air(m, "DJ Alice")).await;

    // Alice stops; Bob goes on air in the same step.
    queue.report(Input::PublishStopped { conn: ConnId(1) }).await.expect("queue running");
    let m = fake.wait_until(PATIENCE, "Bob on air", |m| shows_on_air(m, "DJ Bob")).await;
    assert_eq!(scene_switches(&m, "Intermission"), 1, "only on connect: {:#?}", m.actions());

    queue.report(Input::PublishStopped { conn: ConnId(2) }).await.expect("queue running");
    fake.wait_until(PATIENCE, "idle", shows_idle).await;

    let _ = shutdown.send(true);
    tokio::time::timeout(Duration::from_secs(2), task).await.expect("stops").expect("no panic");
}
