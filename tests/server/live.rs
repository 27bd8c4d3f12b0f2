//! The shared live state over `/api/v1/events`: on air, queue changes, rates, shutdown.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Events, Options, Server};
use crate::publisher::Dj;

fn publisher<'a>(stats: &'a Value, dj_name: &str) -> Option<&'a Value> {
    stats["publishers"].as_array()?.iter().find(|p| p["dj_name"] == dj_name)
}

#[tokio::test]
async fn events_follow_the_lineup_and_the_publishers_rates() {
    let server = Server::start(Options::default());
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    let admin_key = server.add_user("Admin", true);
    let mut events = Events::open(&server).await;
    let first = events.next("queue", |_| true).await;
    assert_eq!(first["on_air"], Value::Null);
    assert_eq!(first["now"], Value::Null);
    events.next("stats", |_| true).await;

    let _alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    let published = Instant::now();
    let queue = events.next("queue", |q| q["on_air"] == "Alice").await;
    assert!(published.elapsed() < Duration::from_secs(1), "on air after {:?}", published.elapsed());
    assert_eq!(queue["now"], json!({ "dj_name": "Alice", "picture_url": null, "track": null }));
    assert_eq!(queue["up_next"], Value::Null);
    assert_eq!(queue["timer_paused"], false);
    assert_eq!(queue["swap_interval"], 3600);

    let _bob = Dj::publish(server.rtmp, &bob_key).await.unwrap();
    let queue = events.next("queue", |q| q["up_next"] == "Bob").await;
    assert_eq!(queue["stream_queue"], json!(["Alice", "Bob"]));

    let stats =
        events.next("stats", |s| publisher(s, "Alice").is_some_and(|p| p["bitrate_bps"].as_u64() > Some(0))).await;
    let alice = publisher(&stats, "Alice").unwrap();
    assert!(alice["video_fps"].as_f64() > Some(0.0), "{stats}");
    assert!(publisher(&stats, "Bob").is_some(), "waiting publishers are listed too: {stats}");
    assert_eq!(stats["destinations"], json!([]));

    let token = server.token("Admin").await;
    let (status, _) = server.post("/api/v1/queue/skip", Some(&token), None).await;
    assert_eq!(status, 200);
    events.next("notice", |n| n["message"].as_str().is_some_and(|m| m.contains("Alice's set ended"))).await;
    let queue = events.next("queue", |q| q["on_air"] == "Bob").await;
    assert_eq!(queue["stream_queue"], json!(["Bob"]));
    assert_eq!(queue["up_next"], Value::Null);
    assert_eq!(queue["now"]["dj_name"], "Bob");

    for key in [&alice_key, &bob_key, &admin_key] {
        assert!(!events.seen.contains(key.as_str()), "a stream key in the event stream");
    }
    assert!(!events.seen.contains("@example.org"), "an email in the event stream");
}

#[tokio::test]
async fn the_countdown_is_resent_at_least_every_five_seconds() {
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", false);
    let _alice = Dj::publish(server.rtmp, &key).await.unwrap();
    let mut events = Events::open(&server).await;
    let first = events.next("queue", |q| q["on_air"] == "Alice").await;
    let start = Instant::now();
    let again = events.next("queue", |_| true).await;
    let waited = start.elapsed();
    assert!(waited > Duration::from_secs(3) && waited < Duration::from_secs(7), "resent after {waited:?}");
    let (before, after) = (first["remaining_time"].as_u64().unwrap(), again["remaining_time"].as_u64().unwrap());
    assert!(before > after, "the clock runs: {before} then {after}");
}

#[tokio::test]
async fn event_streams_end_at_shutdown() {
    let mut server = Server::start(Options::default());
    let mut events = Events::open(&server).await;
    events.next("queue", |_| true).await;
    server.terminate();
    assert!(events.ends().await, "the event stream outlived the server");
}
