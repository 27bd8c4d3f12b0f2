//! Destinations over real sockets: a fake program plays the fixture in real time through
//! the real fan-out, destinations relay it to test sinks (RTMP servers built on the crate's
//! `ServerSession`), optionally behind a TLS terminator.

#[path = "destinations/program.rs"]
mod program;
#[path = "destinations/sink.rs"]
mod sink;
#[path = "destinations/tls.rs"]
mod tls;

use std::time::Duration;

use motherstream::integrations::destination::{
    Destination, DestinationConfig, DestinationStatus, Destinations, State, Tuning,
};
use motherstream::integrations::tls::Connector;
use motherstream::media::codec::{AudioTagInfo, VideoTagInfo};
use motherstream::media::flv::TagKind;
use tokio::sync::watch;
use tokio::task::JoinSet;

use program::FakeProgram;
use sink::{Connection, Sink};
use tls::TlsTerminator;

/// How long a test waits for an expected state before failing.
const PATIENCE: Duration = Duration::from_secs(30);

/// Short enough to keep tests quick, long enough for a loaded 2-core machine.
fn tuning() -> Tuning {
    Tuning {
        dial_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        stable_after: Duration::from_secs(30),
        // Small, so a sink that stops reading blocks the writes within a second or two of
        // this low-bitrate fixture.
        send_buffer: Some(8 * 1024),
    }
}

/// Running destinations and the means to stop them.
struct Running {
    destinations: Destinations,
    tasks: JoinSet<()>,
    shutdown: watch::Sender<bool>,
}

impl Running {
    fn start(program: &FakeProgram, list: &[(&str, String)], connector: &Connector, tuning: &Tuning) -> Self {
        let configs: Vec<DestinationConfig> =
            list.iter().map(|(name, url)| DestinationConfig { name: (*name).to_owned(), url: url.clone() }).collect();
        let parsed = Destination::parse_all(&configs).expect("valid destinations");
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let destinations = Destinations::spawn(parsed, &program.bus, connector, tuning, &shutdown_rx, &mut tasks);
        Self { destinations, tasks, shutdown }
    }

    fn status(&self, name: &str) -> DestinationStatus {
        self.destinations.get(name).expect("destination").status()
    }

    /// Waits until `name`'s status satisfies `ok`.
    async fn wait_status(&self, name: &str, what: &str, ok: impl Fn(&DestinationStatus) -> bool) -> DestinationStatus {
        eventually(what, || Some(self.status(name)).filter(|s| ok(s))).await
    }

    /// Signals shutdown and waits for every task to end.
    async fn shutdown(mut self) -> Destinations {
        self.shutdown.send(true).expect("tasks hold receivers");
        tokio::time::timeout(PATIENCE, async {
            while let Some(joined) = self.tasks.join_next().await {
                joined.expect("destination task");
            }
        })
        .await
        .expect("destination tasks end after shutdown");
        self.destinations
    }
}

/// Polls `check` until it yields a value; fails the test after [`PATIENCE`].
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the sink's connection `index` has published at least `frames` video frames.
async fn wait_frames(sink: &Sink, index: usize, frames: usize) -> Vec<Connection> {
    eventually(&format!("{frames} frames on connection {index}"), || {
        let connections = sink.connections();
        connections.get(index).is_some_and(|c| c.video_frames() >= frames).then_some(connections)
    })
    .await
}

/// A connection that starts as a platform wants it: metadata, both sequence headers,
/// then a keyframe at timestamp 0, video timestamps strictly increasing after it.
fn assert_clean_start(connection: &Connection) {
    assert!(connection.published, "publish accepted");
    let tags = &connection.tags;
    assert!(tags[0].is_metadata(), "metadata first");
    let video_header = VideoTagInfo::parse(&tags[1].payload).expect("video tag");
    assert!(tags[1].kind == TagKind::Video && video_header.is_sequence_header());
    let audio_header = AudioTagInfo::parse(&tags[2].payload).expect("audio tag");
    assert!(tags[2].kind == TagKind::Audio && audio_header.is_sequence_header());
    let frames: Vec<_> = tags
        .iter()
        .filter(|t| t.kind == TagKind::Video)
        .filter(|t| !VideoTagInfo::parse(&t.payload).expect("video").is_sequence_header())
        .collect();
    let first = VideoTagInfo::parse(&frames[0].payload).expect("video");
    assert!(first.is_keyframe(), "first frame is a keyframe");
    assert_eq!(frames[0].timestamp, 0, "rebased to start at 0");
    for pair in frames.windows(2) {
        assert!(
            pair[0].timestamp < pair[1].timestamp,
            "video timestamps increase: {} then {}",
            pair[0].timestamp,
            pair[1].timestamp
        );
    }
    let first_audio = tags.iter().find(|t| t.kind == TagKind::Audio).expect("audio");
    assert!(first_audio.timestamp < 100, "audio starts with video");
}

#[tokio::test]
async fn relays_the_program_and_stops_cleanly_on_shutdown() {
    let program = FakeProgram::start(true);
    // Let the program's timeline get well away from 0 before the destination joins.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sink = Sink::start().await;
    let connector = Connector::new(None).expect("connector");
    let running = Running::start(&program, &[("local", sink.url("the-key"))], &connector, &tuning());

    let connections = wait_frames(&sink, 0, 60).await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].key.as_deref(), Some("the-key"));
    assert_clean_start(&connections[0]);

    let status = running.status("local");
    assert_eq!(status.state, State::Live);
    assert_eq!(status.url, format!("rtmp://{}/live/****", sink.addr));
    assert!(status.bytes_sent > 10_000, "{status:?}");
    assert!(status.connected_since.is_some() && status.uptime_secs.is_some());
    assert_eq!((status.reconnects, status.last_error), (0, None));
    let json = serde_json::to_value(running.status("local")).expect("json");
    assert_eq!(json["state"], "live");
    assert!(!json.to_string().contains("the-key"));

    let destinations = running.shutdown().await;
    let connections = eventually("FCUnpublish/deleteStream", || {
        let connections = sink.connections();
        connections[0].publish_stopped.then_some(connections)
    })
    .await;
    assert_eq!(connections.len(), 1);
    let status = destinations.get("local").expect("destination").status();
    assert_eq!(status.state, State::Stopped);
}

#[tokio::test]
async fn retries_with_backoff_until_the_platform_accepts() {
    let program = FakeProgram::start(true);
    let sink = Sink::start().await;
    sink.refuse_next(2);
    let connector = Connector::new(None).expect("connector");
    let tuning = tuning();
    let running = Running::start(&program, &[("picky", sink.url("sekrit"))], &connector, &tuning);

    let connections = wait_frames(&sink, 2, 30).await;
    assert_eq!(connections.len(), 3);
    assert!(!connections[0].published && !connections[1].published);
    assert_clean_start(&connections[2]);
    // 200 ms, then 400 ms between attempts.
    let gap = |i: usize| connections[i].accepted_at - connections[i - 1].accepted_at;
    assert!(gap(1) >= tuning.backoff_min, "{:?}", gap(1));
    assert!(gap(2) >= 2 * tuning.backoff_min, "{:?}", gap(2));

    let status = running.status("picky");
    assert_eq!(status.state, State::Live);
    assert_eq!(status.reconnects, 2);
    let error = status.last_error.expect("last error kept");
    assert!(error.contains("NetStream.Publish.Denied"), "{error}");
    assert!(!error.contains("sekrit"), "stream key masked: {error}");
    running.shutdown().await;
}

#[tokio::test]
async fn a_stalled_platform_is_reconnected_without_disturbing_others() {
    let program = FakeProgram::start(true);
    let stalled = Sink::start().await;
    let healthy = Sink::start().await;
    let connector = Connector::new(None).expect("connector");
    let running = Running::start(
        &program,
        &[("stalled", stalled.url("a")), ("healthy", healthy.url("b"))],
        &connector,
        &tuning(),
    );
    wait_frames(&stalled, 0, 30).await;
    let before = wait_frames(&healthy, 0, 30).await[0].video_frames();

    stalled.stall();
    running.wait_status("stalled", "the write timeout", |s| s.reconnects >= 1).await;
    let reconnected = wait_frames(&stalled, 1, 30).await;
    assert_clean_start(&reconnected[1]);
    let error = running.status("stalled").last_error.expect("last error");
    assert!(error.contains("stopped reading"), "{error}");

    // The healthy destination kept one connection and every frame, in real time.
    let healthy_connections = healthy.connections();
    assert_eq!(healthy_connections.len(), 1);
    let connection = &healthy_connections[0];
    assert!(connection.video_frames() > before + 60, "kept receiving");
    let frames: Vec<u32> = connection.tags.iter().filter(|t| t.kind == TagKind::Video).map(|t| t.timestamp).collect();
    let largest_gap = frames.windows(2).map(|w| w[1] - w[0]).max();
    assert!(largest_gap <= Some(100), "no frames skipped: {largest_gap:?}");
    assert_eq!(running.status("healthy").reconnects, 0);
    running.shutdown().await;
}

#[tokio::test]
async fn rtmps_through_a_tls_terminator() {
    let program = FakeProgram::start(true);
    let sink = Sink::start().await;
    let terminator = TlsTerminator::start(sink.addr).await;
    let url = format!("rtmps://localhost:{}/live/tls-key", terminator.port);
    let trusting = Connector::new(Some(&terminator.ca_file)).expect("connector");
    let running = Running::start(&program, &[("secure", url.clone())], &trusting, &tuning());

    let connections = wait_frames(&sink, 0, 30).await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].key.as_deref(), Some("tls-key"));
    assert_clean_start(&connections[0]);
    assert_eq!(running.status("secure").url, format!("rtmps://localhost:{}/live/****", terminator.port));

    // Without the CA file the self-signed certificate is refused.
    let default_roots = Connector::new(None).expect("connector");
    let untrusting = Running::start(&program, &[("untrusted", url)], &default_roots, &tuning());
    let status = untrusting.wait_status("untrusted", "a certificate error", |s| s.last_error.is_some()).await;
    let error = status.last_error.unwrap_or_default();
    assert!(error.contains("certificate"), "{error}");
    untrusting.shutdown().await;

    running.shutdown().await;
    let connections = eventually("the clean stop through TLS", || {
        let connections = sink.connections();
        connections[0].publish_stopped.then_some(connections)
    })
    .await;
    assert_eq!(connections.len(), 1, "the untrusted one never got through");
}

#[tokio::test]
async fn restart_reconnects_only_that_destination_at_once() {
    let program = FakeProgram::start(true);
    let first = Sink::start().await;
    let second = Sink::start().await;
    let connector = Connector::new(None).expect("connector");
    // A backoff longer than the test's patience: the restart must not wait for it.
    let tuning = Tuning { backoff_min: Duration::from_secs(60), backoff_max: Duration::from_secs(60), ..tuning() };
    let running =
        Running::start(&program, &[("first", first.url("k1")), ("second", second.url("k2"))], &connector, &tuning);
    wait_frames(&first, 0, 30).await;
    wait_frames(&second, 0, 30).await;

    assert!(running.destinations.restart("first"));
    assert!(!running.destinations.restart("nonexistent"));
    let connections = wait_frames(&first, 1, 30).await;
    assert!(connections[0].publish_stopped, "old publish ended cleanly");
    assert_clean_start(&connections[1]);
    assert_eq!(running.status("first").reconnects, 1);
    assert_eq!(running.status("first").state, State::Live);

    assert_eq!(second.connections().len(), 1);
    assert_eq!(running.status("second").reconnects, 0);
    running.shutdown().await;
}

#[tokio::test]
async fn connects_only_while_the_program_is_live() {
    let program = FakeProgram::start(false);
    let sink = Sink::start().await;
    let connector = Connector::new(None).expect("connector");
    let running = Running::start(&program, &[("local", sink.url("k"))], &connector, &tuning());

    // Subscribed, but nothing is on air: idle, no connection.
    eventually("a subscription", || (program.subscriptions() == 1).then_some(())).await;
    assert_eq!(running.status("local").state, State::Idle);
    assert!(sink.connections().is_empty());

    program.play().await;
    wait_frames(&sink, 0, 30).await;

    // The program ends: the publish is ended cleanly and the destination goes idle.
    program.end().await;
    eventually("the clean end of the publish", || sink.connections()[0].publish_stopped.then_some(())).await;
    running.wait_status("local", "idle", |s| s.state == State::Idle).await;
    assert_eq!(sink.connections().len(), 1);
    assert_eq!(running.status("local").reconnects, 0);

    // Back on air: a new publish, from a keyframe with the sequence headers.
    program.play().await;
    let connections = wait_frames(&sink, 1, 30).await;
    assert_clean_start(&connections[1]);

    running.shutdown().await;
    eventually("the clean stop on shutdown", || sink.connections()[1].publish_stopped.then_some(())).await;
}
