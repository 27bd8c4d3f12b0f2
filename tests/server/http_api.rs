//! The HTTP API: seed-compatible shapes, authentication and authorisation.

use std::time::Duration;

use serde_json::json;

use crate::harness::{Events, Options, PASSWORD, Server};
use crate::publisher::Dj;

/// Every state-changing endpoint, with a body it would accept from an admin.
fn admin_endpoints() -> Vec<(&'static str, Option<serde_json::Value>)> {
    vec![
        ("/update-timer/30", None),
        ("/block-toggle", None),
        ("/update-block-toggle/", Some(json!({ "is_blocked": true }))),
        ("/api/v1/queue/skip", None),
        ("/api/v1/queue/pause", None),
        ("/api/v1/queue/resume", None),
        ("/api/v1/queue/reset-timer", None),
        ("/api/v1/queue/remaining", Some(json!({ "seconds": 60 }))),
        ("/api/v1/queue/swap-interval", Some(json!({ "seconds": 600 }))),
        ("/api/v1/queue/block", Some(json!({ "enabled": false }))),
        ("/api/v1/queue/Bob/remove", None),
        ("/api/v1/queue/Bob/move-up", None),
        ("/api/v1/queue/Bob/move-down", None),
        ("/api/v1/users/Bob/disable", None),
        ("/api/v1/destinations/youtube/restart", None),
    ]
}

#[tokio::test]
async fn admin_endpoints_refuse_anonymous_and_non_admin_callers() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    server.add_user("Bob", false);
    let bob = server.token("bob@example.org").await;
    for (path, body) in admin_endpoints() {
        let (status, detail) = server.post(path, None, body.clone()).await;
        assert_eq!(status, 401, "{path} without a token");
        assert!(detail["detail"].is_string(), "{path}: {detail}");
        let (status, detail) = server.post(path, Some("not-a-jwt"), body.clone()).await;
        assert_eq!(status, 401, "{path} with a bad token");
        assert!(detail["detail"].is_string());
        let (status, detail) = server.post(path, Some(&bob), body).await;
        assert_eq!(status, 403, "{path} as a non-admin");
        assert!(detail["detail"].is_string());
    }
    // Nothing changed.
    let settings = server.get_json("/time-settings").await;
    assert_eq!(settings["swap_interval"], 3600);
    assert_eq!(server.get_json("/block-toggle").await["is_blocked"], false);
}

#[tokio::test]
async fn timer_endpoints_follow_the_seed() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    let key = server.add_user("Alice", false);
    let admin = server.token("admin@example.org").await;

    // Nobody on air: 0, as the original answered.
    assert_eq!(server.get_json("/timer-data").await, json!({ "remaining_time": 0 }));
    let _alice = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;

    let (status, body) = server.post("/update-timer/30", Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "success");
    let first = server.get_json("/timer-data").await["remaining_time"].as_u64().unwrap();
    assert!(first <= 30 && first > 0, "{first}");
    // The clock runs: within a few seconds the remaining time goes down.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = server.get_json("/timer-data").await["remaining_time"].as_u64().unwrap();
        if now < first {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "timer did not count down from {first}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(server.get_json("/time-settings").await["swap_interval"], 30);

    let (status, body) = server.post("/update-timer/0", Some(&admin), None).await;
    assert_eq!((status, body["detail"].as_str()), (400, Some("Time must be a positive integer.")));
    let (status, _) = server.post("/update-timer/-5", Some(&admin), None).await;
    assert_eq!(status, 400);
    let (status, _) = server.post("/update-timer/abc", Some(&admin), None).await;
    assert_eq!(status, 400);

    let (status, _) = server.post("/update-timer/120?reset_time=true", Some(&admin), None).await;
    assert_eq!(status, 200);
    let remaining = server.get_json("/timer-data").await["remaining_time"].as_u64().unwrap();
    assert!((118..=120).contains(&remaining), "{remaining}");
}

#[tokio::test]
async fn block_toggle_shows_the_last_key_to_admins_only() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    let key = server.add_user("Alice", false);
    let admin = server.token("admin@example.org").await;
    let alice_token = server.token("Alice").await;

    let (status, body) = server.post("/block-toggle", Some(&admin), None).await;
    assert_eq!((status, &body["is_blocked"]), (200, &json!(true)));

    let alice = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    alice.stop().await;
    server.wait_for_queue(&[]).await;

    // Alice's set just ended and nobody else is waiting: she may not retake the channel.
    assert!(Dj::publish(server.rtmp, &key).await.is_err(), "blocked DJ refused");

    let public = server.get_json("/block-toggle").await;
    assert_eq!(public["is_blocked"], true);
    assert!(public.get("last_stream_key").is_none(), "{public}");
    let as_alice = server.get_json_as("/block-toggle", &alice_token).await;
    assert!(as_alice.get("last_stream_key").is_none(), "{as_alice}");
    let as_admin = server.get_json_as("/block-toggle", &admin).await;
    assert_eq!(as_admin["last_stream_key"], key);

    let (status, body) = server.post("/update-block-toggle/", Some(&admin), Some(json!({ "is_blocked": false }))).await;
    assert_eq!((status, &body["is_blocked"]), (200, &json!(false)));
    let _alice = Dj::publish(server.rtmp, &key).await.expect("unblocked");
}

#[tokio::test]
async fn admin_queue_commands_reorder_skip_and_remove() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    let keys: Vec<String> = ["Alice", "Bob", "Carol"].iter().map(|n| server.add_user(n, false)).collect();
    let admin = server.token("Admin").await;
    let mut djs = Vec::new();
    let mut expected: Vec<&str> = Vec::new();
    for (name, key) in ["Alice", "Bob", "Carol"].iter().zip(&keys) {
        djs.push(Dj::publish(server.rtmp, key).await.unwrap());
        expected.push(name);
        server.wait_for_queue(&expected).await;
    }
    let (status, _) = server.post("/api/v1/queue/Carol/move-up", Some(&admin), None).await;
    assert_eq!(status, 200);
    server.wait_for_queue(&["Alice", "Carol", "Bob"]).await;
    let (status, _) = server.post("/api/v1/queue/Carol/move-down", Some(&admin), None).await;
    assert_eq!(status, 200);
    server.wait_for_queue(&["Alice", "Bob", "Carol"]).await;

    let (status, _) = server.post("/api/v1/queue/skip", Some(&admin), None).await;
    assert_eq!(status, 200);
    server.wait_for_queue(&["Bob", "Carol"]).await;

    let (status, _) = server.post("/api/v1/queue/Carol/remove", Some(&admin), None).await;
    assert_eq!(status, 200);
    server.wait_for_queue(&["Bob"]).await;

    let (status, body) = server.post("/api/v1/queue/Nobody/remove", Some(&admin), None).await;
    assert_eq!(status, 404, "{body}");

    let (status, _) = server.post("/api/v1/queue/pause", Some(&admin), None).await;
    assert_eq!(status, 200);
    let status_json = server.get_json("/api/v1/status").await;
    assert_eq!(status_json["on_air"]["timer_paused"], true);

    let (status, _) = server.post("/api/v1/users/Bob/disable", Some(&admin), None).await;
    assert_eq!(status, 200);
    server.wait_for_queue(&[]).await;
    assert!(Dj::publish(server.rtmp, &keys[1]).await.is_err(), "disabled key refused");
}

#[tokio::test]
async fn login_me_and_bad_input() {
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", true);
    let client = reqwest::Client::new();

    let resp = client
        .post(server.url("/api/v1/login/access-token"))
        .form(&[("username", "alice@example.org"), ("password", "wrong password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["detail"], "Incorrect email or password");

    let token = server.token("alice@example.org").await;
    let me = server.get_json_as("/api/v1/users/me", &token).await;
    assert_eq!(me["dj_name"], "Alice");
    assert_eq!(me["stream_key"], key, "users see their own key");
    assert_eq!(me["is_superuser"], true, "made with user add --admin");

    let resp = client.get(server.url("/api/v1/users/me")).send().await.unwrap();
    assert_eq!(resp.status(), 401);

    // Malformed bodies get a JSON detail, not a panic or an HTML page.
    let resp = client
        .post(server.url("/api/v1/queue/remaining"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.json::<serde_json::Value>().await.unwrap()["detail"].is_string());
    let resp = client.get(server.url("/no/such/page")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.json::<serde_json::Value>().await.unwrap()["detail"].is_string());

    // Public endpoints never reveal stream keys.
    for path in ["/queue-json", "/api/v1/status", "/block-toggle", "/timer-data", "/time-settings"] {
        let text = client.get(server.url(path)).send().await.unwrap().text().await.unwrap();
        assert!(!text.contains(&key), "{path} leaks a stream key");
    }
    let html = client.get(server.url("/queue-list")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("<ol"), "{html}");
}

#[tokio::test]
async fn login_is_rate_limited_per_address() {
    let server = Server::start(Options::default());
    server.add_user("Alice", false);
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let resp = client
            .post(server.url("/api/v1/login/access-token"))
            .form(&[("username", "alice@example.org"), ("password", "nope nope")])
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert!(statuses[..10].iter().all(|s| *s == 400), "{statuses:?}");
    assert_eq!(statuses[11], 429, "{statuses:?}");
    // Even the right password is refused while limited.
    let resp = client
        .post(server.url("/api/v1/login/access-token"))
        .form(&[("username", "alice@example.org"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
}

#[tokio::test]
async fn events_stream_queue_changes_live() {
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", false);
    let mut events = Events::open(&server).await;
    let first = events.next("queue", |_| true).await;
    assert_eq!(first["stream_queue"], json!([]));
    let _alice = Dj::publish(server.rtmp, &key).await.unwrap();
    let notice = events.next("notice", |n| n["message"].as_str().is_some_and(|m| m.contains("Alice"))).await;
    assert!(notice["message"].as_str().unwrap().contains("Alice"), "{notice}");
    let queue = events.next("queue", |q| q["on_air"] == "Alice").await;
    assert_eq!(queue["stream_queue"], json!(["Alice"]));
    assert!(!events.seen.contains(&key), "no stream keys in events");
}
