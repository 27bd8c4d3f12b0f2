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

async fn get_page(server: &Server, path: &str) -> (u16, String) {
    let resp = reqwest::get(server.url(path)).await.expect("GET");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

#[tokio::test]
async fn overlays_render_the_lineup_and_no_secrets() {
    let server = Server::start(Options::default());
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", true);
    let _alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    let _bob = Dj::publish(server.rtmp, &bob_key).await.unwrap();
    // Overlays render the shared live state: wait until it has both DJs.
    let mut events = Events::open(&server).await;
    events.next("queue", |q| q["up_next"] == "Bob").await;

    let mut pages = Vec::new();
    for name in ["now", "next", "queue", "timer", "clock"] {
        let resp = reqwest::get(server.url(&format!("/overlay/{name}"))).await.unwrap();
        assert_eq!(resp.status(), 200, "/overlay/{name}");
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let html = resp.text().await.unwrap();
        assert!(html.contains("/assets/overlay.js") && !html.contains("topbar"), "an overlay has no nav: {html}");
        pages.push((name, html));
    }
    let page = |name: &str| &pages.iter().find(|(n, _)| *n == name).unwrap().1;
    assert!(page("now").contains(r#"id="on-air-name" class="name">Alice</p>"#), "{}", page("now"));
    assert!(page("next").contains(r#"id="up-next-name" class="name">Bob</p>"#), "{}", page("next"));
    assert!(page("queue").contains("<li>Alice</li><li>Bob</li>"), "{}", page("queue"));
    assert!(page("timer").contains(">59:5") || page("timer").contains(">1:00:00<"), "{}", page("timer"));
    assert!(page("clock").contains(r#"id="clock""#));
    for (name, html) in &pages {
        for key in [&alice_key, &bob_key] {
            assert!(!html.contains(key.as_str()), "a stream key on /overlay/{name}");
        }
        assert!(!html.contains("@example.org"), "an email on /overlay/{name}");
    }

    let (status, styled) = get_page(&server, "/overlay/now?align=right&scale=1.5&tz=Europe/Paris").await;
    assert_eq!(status, 200);
    assert!(styled.contains("align-right") && styled.contains(r#"data-scale="1.5""#), "{styled}");
    assert_eq!(get_page(&server, "/overlay/now?scale=lots").await.0, 200, "bad options fall back to defaults");
    assert_eq!(get_page(&server, "/overlay/nope").await.0, 404);
    for asset in ["/assets/overlay.css", "/assets/overlay.js"] {
        assert_eq!(get_page(&server, asset).await.0, 200, "{asset}");
    }

    let (status, index) = get_page(&server, "/overlays").await;
    assert_eq!(status, 200);
    for name in ["now", "next", "queue", "timer", "clock"] {
        assert!(index.contains(&format!(r#"data-path="/overlay/{name}""#)), "/overlays lists {name}");
        assert!(index.contains(&format!(r#"<iframe src="/overlay/{name}?scale=0.5""#)), "/overlays previews {name}");
    }
    assert!(index.contains("Shutdown source when not visible"));

    for key in [&alice_key, &bob_key] {
        assert!(!events.seen.contains(key.as_str()), "a stream key in the event stream");
    }
}
