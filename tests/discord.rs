//! Discord notifications over real sockets: a fake webhook on 127.0.0.1 records what the
//! notifier posts and answers as scripted (204, 429, 500, 404, or never).

#[path = "discord/webhook.rs"]
mod webhook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use motherstream::integrations::destination::{DestinationStatus, Destinations, State};
use motherstream::integrations::discord::{Discord, DiscordConfig, Tuning};
use motherstream::queue::engine::{Dj, EndReason, Notice};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use webhook::{Reply, Webhook};

/// How long a test waits for something expected before failing.
const PATIENCE: Duration = Duration::from_secs(30);

/// Short delays so the tests are quick; pacing is effectively off unless a test turns it on.
fn tuning() -> Tuning {
    Tuning {
        poll_interval: Duration::from_millis(20),
        request_timeout: Duration::from_secs(1),
        burst: 1000,
        spacing: Duration::from_millis(1),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        max_attempts: 5,
        max_retry_after: Duration::from_secs(5),
        queue_capacity: 64,
        drain_timeout: Duration::from_secs(2),
    }
}

fn dj(name: &str) -> Dj {
    Dj { user_id: motherstream::ids::UserId(7), dj_name: name.to_owned() }
}

fn on_air(name: &str) -> Notice {
    Notice::OnAir { dj: dj(name) }
}

/// A running notifier and the ends the test holds.
struct Running {
    notices: broadcast::Sender<Notice>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(hook: &Webhook, tuning: Tuning) -> Self {
        Self::start_with(hook, tuning, true, Destinations::default())
    }

    fn start_with(
        hook: &Webhook,
        tuning: Tuning,
        enabled: bool,
        destinations: impl motherstream::integrations::discord::StatusSource,
    ) -> Self {
        let config = DiscordConfig::parse(Some(&hook.url()), Some(if enabled { "true" } else { "false" }))
            .expect("valid config")
            .expect("configured");
        // The queue's own backlog size.
        let (notices, receiver) = broadcast::channel(256);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = Discord::spawn_with(config, tuning, receiver, destinations, shutdown_rx);
        Self { notices, shutdown, task }
    }

    fn send(&self, notice: Notice) {
        // `broadcast::send` never waits; an error would mean the notifier dropped its
        // receiver, which it must not do while running.
        self.notices.send(notice).expect("the notifier is subscribed");
    }

    async fn stop(self) {
        self.shutdown.send_replace(true);
        tokio::time::timeout(PATIENCE, self.task).await.expect("stops").expect("no panic");
    }
}

#[tokio::test]
async fn messages_arrive_in_order() {
    let hook = Webhook::start([]).await;
    let running = Running::start(&hook, tuning());
    running.send(on_air("DJ Alice"));
    running.send(Notice::Queued { dj: dj("DJ Bob"), position: 1 }); // not posted
    running.send(Notice::TimeWarning { dj: dj("DJ Alice"), remaining: Duration::from_secs(300) });
    running.send(Notice::TimeWarning { dj: dj("DJ Alice"), remaining: Duration::from_secs(60) });
    running.send(Notice::Stalled { dj: dj("DJ Alice") });
    running.send(Notice::SetEnded { dj: dj("DJ Alice"), reason: EndReason::SlotElapsed });
    let requests = hook.wait_requests(5, PATIENCE).await;
    let contents: Vec<&str> = requests.iter().map(|r| r.content()).collect();
    assert_eq!(
        contents,
        [
            "🎧 DJ Alice is live",
            "⏳ DJ Alice has 5 minutes left",
            "⏳ DJ Alice has 1 minute left",
            "⚠️ DJ Alice's stream stalled",
            "⏹️ DJ Alice's set ended (time slot elapsed)",
        ]
    );
    for request in &requests {
        assert_eq!(request.path, webhook::PATH);
        assert_eq!(request.content_type.as_deref(), Some("application/json"));
        assert_eq!(request.json["username"], "motherstream");
        assert_eq!(request.json["allowed_mentions"], serde_json::json!({ "parse": [] }));
    }
    running.stop().await;
    assert_eq!(hook.requests().len(), 5, "the skipped notice was not posted");
}

#[tokio::test]
async fn rate_limited_waits_retry_after_from_the_body() {
    let hook = Webhook::start([Reply::RateLimited { body_secs: Some(0.3), header: None }]).await;
    let running = Running::start(&hook, tuning());
    running.send(on_air("A"));
    running.send(on_air("B"));
    let requests = hook.wait_requests(3, PATIENCE).await;
    assert_eq!(requests[0].content(), "🎧 A is live");
    assert_eq!(requests[1].content(), "🎧 A is live", "the rate-limited message is sent again");
    assert_eq!(requests[2].content(), "🎧 B is live");
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(300), "retry_after honoured");
    running.stop().await;
}

#[tokio::test]
async fn rate_limited_waits_retry_after_from_the_header() {
    let hook = Webhook::start([Reply::RateLimited { body_secs: None, header: Some("1") }]).await;
    let running = Running::start(&hook, tuning());
    running.send(on_air("A"));
    let requests = hook.wait_requests(2, PATIENCE).await;
    assert_eq!(requests[1].content(), "🎧 A is live");
    assert!(requests[1].at - requests[0].at >= Duration::from_secs(1), "Retry-After honoured");
    running.stop().await;
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let error = Reply::Status(500, r#"{"message": "oops"}"#);
    let hook = Webhook::start([error.clone(), Reply::Status(502, ""), Reply::Status(503, "")]).await;
    let running = Running::start(&hook, tuning());
    running.send(on_air("A"));
    running.send(on_air("B"));
    let requests = hook.wait_requests(5, PATIENCE).await;
    let contents: Vec<&str> = requests.iter().map(|r| r.content()).collect();
    assert_eq!(contents, ["🎧 A is live", "🎧 A is live", "🎧 A is live", "🎧 A is live", "🎧 B is live"]);
    // 100 ms, 200 ms, 400 ms: doubling from backoff_min, capped at backoff_max.
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(100));
    assert!(requests[2].at - requests[1].at >= Duration::from_millis(200));
    assert!(requests[3].at - requests[2].at >= Duration::from_millis(400));
    running.stop().await;
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_dropped_after_max_attempts() {
    let error = Reply::Status(500, "");
    let hook = Webhook::start(vec![error; 3]).await;
    let running = Running::start(&hook, Tuning { max_attempts: 3, ..tuning() });
    running.send(on_air("A"));
    running.send(on_air("B"));
    let requests = hook.wait_requests(4, PATIENCE).await;
    let contents: Vec<&str> = requests.iter().map(|r| r.content()).collect();
    assert_eq!(contents, ["🎧 A is live", "🎧 A is live", "🎧 A is live", "🎧 B is live"]);
    running.stop().await;
}

#[tokio::test]
async fn not_found_drops_the_message_and_later_ones_still_go_out() {
    let hook = Webhook::start([Reply::Status(404, r#"{"message": "Unknown Webhook", "code": 10015}"#)]).await;
    let running = Running::start(&hook, tuning());
    running.send(on_air("A"));
    running.send(on_air("B"));
    hook.wait_requests(2, PATIENCE).await;
    // A marker: had A been retried, it would arrive before this.
    running.send(on_air("C"));
    hook.wait_requests(3, PATIENCE).await;
    assert_eq!(hook.contents(), ["🎧 A is live", "🎧 B is live", "🎧 C is live"]);
    running.stop().await;
}

#[tokio::test]
async fn a_webhook_that_never_answers_times_out_and_blocks_nothing() {
    let hook = Webhook::start([Reply::Hang]).await;
    let running = Running::start(&hook, tuning());
    running.send(on_air("A"));
    hook.wait_requests(1, PATIENCE).await;
    // The request is hanging: the queue's side keeps going without waiting.
    for name in ["B", "C", "D"] {
        running.send(on_air(name));
    }
    let requests = hook.wait_requests(5, PATIENCE).await;
    let contents: Vec<&str> = requests.iter().map(|r| r.content()).collect();
    assert_eq!(contents, ["🎧 A is live", "🎧 A is live", "🎧 B is live", "🎧 C is live", "🎧 D is live"]);
    assert!(requests[1].at - requests[0].at >= Duration::from_secs(1), "after the request timeout");
    running.stop().await;
}

#[tokio::test]
async fn a_full_outbox_drops_the_oldest_messages() {
    let hook = Webhook::start([Reply::Hang]).await;
    let running =
        Running::start(&hook, Tuning { queue_capacity: 3, request_timeout: Duration::from_secs(2), ..tuning() });
    running.send(on_air("first"));
    hook.wait_requests(1, PATIENCE).await;
    for i in 0..20 {
        running.send(on_air(&format!("n{i}")));
    }
    let requests = hook.wait_requests(5, PATIENCE).await;
    let contents: Vec<&str> = requests.iter().map(|r| r.content()).collect();
    assert_eq!(
        contents,
        ["🎧 first is live", "🎧 first is live", "🎧 n17 is live", "🎧 n18 is live", "🎧 n19 is live"]
    );
    running.stop().await;
}

#[tokio::test]
async fn disabled_sends_nothing() {
    let hook = Webhook::start([]).await;
    let running = Running::start_with(&hook, tuning(), false, Destinations::default());
    // The queue never minds whether anyone listens.
    let _ = running.notices.send(on_air("A"));
    // Disabled, the task ends at once and has dropped its receiver.
    tokio::time::timeout(PATIENCE, running.task).await.expect("ends at once").expect("no panic");
    assert!(running.notices.send(on_air("B")).is_err(), "nobody listens");
    assert!(hook.requests().is_empty());
}

#[tokio::test]
async fn mentions_and_markdown_are_neutralised() {
    let hook = Webhook::start([]).await;
    let running = Running::start(&hook, tuning());
    running.send(on_air("@everyone *bold* <@123> @here"));
    let requests = hook.wait_requests(1, PATIENCE).await;
    let content = requests[0].content();
    assert!(!content.contains("@everyone") && !content.contains("@here"), "{content}");
    assert!(!content.contains("<@1"), "{content}");
    assert!(content.contains("\\*bold\\*"), "{content}");
    assert_eq!(requests[0].json["allowed_mentions"]["parse"], serde_json::json!([]));
    running.stop().await;
}

/// Destination statuses the test changes at will, counting the notifier's polls.
#[derive(Clone, Default)]
struct FakeDestinations {
    statuses: Arc<Mutex<Vec<DestinationStatus>>>,
    polls: Arc<AtomicU64>,
}

impl FakeDestinations {
    fn set(&self, state: State, reconnects: u64, last_error: Option<&str>) {
        let status = DestinationStatus {
            name: "youtube".to_owned(),
            url: "rtmp://a.rtmp.youtube.com/live2/****".to_owned(),
            state,
            reconnects,
            last_error: last_error.map(str::to_owned),
            ..Default::default()
        };
        *self.statuses.lock().expect("lock") = vec![status];
    }

    /// Waits until the notifier has polled at least twice more, so it saw the last `set`.
    async fn wait_polls(&self) {
        let target = self.polls.load(Ordering::SeqCst) + 2;
        tokio::time::timeout(PATIENCE, async {
            while self.polls.load(Ordering::SeqCst) < target {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the notifier polls destinations");
    }

    fn source(&self) -> impl Fn() -> Vec<DestinationStatus> + Send + 'static {
        let this = self.clone();
        move || {
            this.polls.fetch_add(1, Ordering::SeqCst);
            this.statuses.lock().expect("lock").clone()
        }
    }
}

#[tokio::test]
async fn destination_down_and_up() {
    let hook = Webhook::start([]).await;
    let destinations = FakeDestinations::default();
    destinations.set(State::Connecting, 0, None);
    let running = Running::start_with(&hook, tuning(), true, destinations.source());
    destinations.wait_polls().await;
    destinations.set(State::Live, 0, None);
    destinations.wait_polls().await;
    destinations.set(State::Backoff, 0, Some("connection reset by peer"));
    let requests = hook.wait_requests(1, PATIENCE).await;
    assert_eq!(requests[0].content(), "🔴 Destination youtube is down: connection reset by peer");
    destinations.set(State::Connecting, 1, Some("connection reset by peer"));
    destinations.wait_polls().await;
    destinations.set(State::Live, 1, None);
    hook.wait_requests(2, PATIENCE).await;
    // A marker: anything posted in between would come before it.
    running.send(on_air("A"));
    hook.wait_requests(3, PATIENCE).await;
    assert_eq!(
        hook.contents(),
        [
            "🔴 Destination youtube is down: connection reset by peer",
            "✅ Destination youtube is back up",
            "🎧 A is live"
        ]
    );
    running.stop().await;
}

#[tokio::test]
async fn shutdown_is_prompt_even_with_a_hanging_webhook() {
    let hook = Webhook::start([Reply::Hang, Reply::Hang, Reply::Hang]).await;
    let running = Running::start(&hook, Tuning { request_timeout: Duration::from_secs(60), ..tuning() });
    running.send(on_air("A"));
    running.send(on_air("B"));
    hook.wait_requests(1, PATIENCE).await;
    // Ends within the drain timeout (2 s) although the request would take a minute.
    running.stop().await;
}

#[tokio::test]
async fn shutdown_flushes_what_is_queued() {
    let hook = Webhook::start([]).await;
    // Pacing on: the second message waits for a token when shutdown comes.
    let running = Running::start(&hook, Tuning { burst: 1, spacing: Duration::from_millis(500), ..tuning() });
    running.send(on_air("A"));
    running.send(on_air("B"));
    hook.wait_requests(1, PATIENCE).await;
    running.stop().await;
    assert_eq!(hook.contents(), ["🎧 A is live", "🎧 B is live"]);
}
