//! Operating the server: metrics, health, and a clean shutdown in the middle of a set.

use std::time::Duration;

use crate::harness::{Options, Server};
use crate::program::{DJ1, DJ2, SLATE, read_flv, rtmp_player};
use crate::publisher::{Dj, FIXTURE2};
use crate::sink::Sink;

async fn metrics(server: &Server) -> String {
    let resp = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    resp.text().await.unwrap()
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test]
async fn metrics_show_the_switch_and_the_new_dj_and_readiness_is_reported() {
    let server = Server::start(Options::default());
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let player = rtmp_player(&server).await;
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    player.wait_for_size(DJ1).await;
    let before = metrics(&server).await;
    assert!(before.contains("motherstream_on_air{dj_name=\"Alice\",state=\"live\"} 1"), "{before}");
    let switches = sample(&before, "motherstream_program_switches_total").unwrap();

    let _bob = Dj::publish_file(server.rtmp, &b, FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    assert_eq!(sample(&metrics(&server).await, "motherstream_queue_length"), Some(1.0));
    alice.stop().await;
    player.wait_for_size(DJ2).await;

    let after = metrics(&server).await;
    assert!(after.contains("motherstream_on_air{dj_name=\"Bob\",state=\"live\"} 1"), "{after}");
    assert!(!after.contains("dj_name=\"Alice\""), "Alice is gone: {after}");
    assert!(sample(&after, "motherstream_program_switches_total").unwrap() > switches, "{after}");
    assert!(sample(&after, "motherstream_rtmp_received_bytes_total").unwrap() > 20_000.0);
    assert!(sample(&after, "motherstream_rtmp_sent_bytes_total").unwrap() > 10_000.0, "the player's bytes");
    assert!(after.contains("motherstream_http_requests_total{route=\"/metrics\",status=\"200\"}"), "{after}");

    let ready = reqwest::get(server.url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"database": "ok", "rtmp": "ok"}));
    assert_eq!(reqwest::get(server.url("/healthz")).await.unwrap().status(), 200);
}

/// SIGTERM in the middle of a set: the recording is a complete FLV, the destination saw a
/// clean end of stream, the process exits 0, and a restart restores the queue with the
/// lead's remaining time.
#[tokio::test]
async fn sigterm_mid_set_finishes_everything_cleanly() {
    let sink = Sink::start().await;
    let mut server = Server::start(Options {
        grace_period: 8,
        config: Some("record_sets = true\n".into()),
        extra_args: vec!["--destination".into(), sink.url("platform-key")],
        ..Options::default()
    });
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let player = rtmp_player(&server).await;
    player.wait_for_size(SLATE).await;
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    player.wait_for_size(DJ1).await;
    let bob = Dj::publish_file(server.rtmp, &b, FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let remaining = server.get_json("/timer-data").await["remaining_time"].as_u64().unwrap();

    server.terminate();

    // The platform saw one connection, ended cleanly (FCUnpublish/deleteStream); the sink
    // may still be reading the last bytes the server sent before it exited.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !sink.connections().first().is_some_and(|c| c.publish_stopped) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connections = sink.connections();
    assert_eq!(connections.len(), 1, "one connection to the platform");
    assert!(connections[0].publish_stopped, "the platform saw a clean end of stream");
    // Alice's recording is complete: every tag parses, and it holds her set.
    let dir = server.data_dir.join("recordings").join("Alice");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let tags = read_flv(&files[0]);
    assert_eq!(crate::program::assert_seamless(&tags), [DJ1]);
    assert!(tags.len() > 60, "{} tags", tags.len());

    // Restart: both places are held; Alice reclaims hers with the time she had left.
    alice.drop_connection().await;
    bob.drop_connection().await;
    let server = server.restart();
    assert_eq!(server.queue().await, ["Alice", "Bob"]);
    let _alice = Dj::publish(server.rtmp, &a).await.unwrap();
    let status = server.get_json("/api/v1/status").await;
    assert_eq!(status["on_air"]["state"], "live");
    let resumed = status["on_air"]["remaining_time"].as_u64().unwrap();
    assert!(resumed <= remaining && resumed + 5 >= remaining, "{resumed} s left after restart, {remaining} s before");
}

/// The seed's DISCORD_WEBHOOK_URL + TOGGLE_DISCORD_NOTIFICATIONS announce sets on a webhook.
#[tokio::test]
async fn discord_webhook_announces_who_is_on_air() {
    let webhook = crate::webhook::Webhook::start([]).await;
    let server =
        Server::start(Options { extra_args: crate::harness::discord_args(webhook.url()), ..Options::default() });
    let key = server.add_user("Alice", false);
    let alice = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let requests = webhook.wait_requests(1, crate::harness::PATIENCE).await;
    assert!(requests[0].content().contains("Alice"), "{:?}", requests[0].content());
    alice.stop().await;
    let requests = webhook.wait_requests(2, crate::harness::PATIENCE).await;
    assert!(requests[1].content().contains("Alice"), "{:?}", requests[1].content());
    assert!(!server.logs().contains(&webhook.url()), "the webhook URL is a secret");
}
