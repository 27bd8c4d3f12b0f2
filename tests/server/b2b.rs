//! Back-to-back sets: who may change one, and the program across hand-overs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Options, PATIENCE, Server};
use crate::program::{DJ1, DJ2, SLATE, assert_seamless, http_viewer, rtmp_player};
use crate::publisher::{Dj, FIXTURE2};
use crate::sink::Sink;

async fn status(server: &Server) -> Value {
    server.get_json("/api/v1/status").await
}

/// Waits until the set member `dj_name` has sent a keyframe: only then can the program
/// splice to them without the slate filling in.
async fn wait_for_keyframe(server: &Server, dj_name: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = status(server).await;
        let members = status["on_air"]["set"].as_array().cloned().unwrap_or_default();
        let member = members.iter().find(|m| m["dj_name"] == dj_name);
        if member.and_then(|m| m["stats"]["keyframes"].as_u64()).unwrap_or(0) > 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{dj_name} sent no keyframe: {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_on_air(server: &Server, dj_name: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while status(server).await["on_air"]["dj_name"] != dj_name {
        assert!(tokio::time::Instant::now() < deadline, "{dj_name} never went on air");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn set_routes_answer_members_and_admins_and_refuse_everybody_else() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    server.add_user("Carol", false);
    let (admin, alice, bob, carol) = (
        server.token("Admin").await,
        server.token("Alice").await,
        server.token("Bob").await,
        server.token("Carol").await,
    );
    let add_bob = json!({ "dj_name": "Bob" });

    let (code, _) = server.post("/api/v1/sets/current/members", Some(&alice), Some(add_bob.clone())).await;
    assert_eq!(code, 404, "nobody on air, no current set");

    let _alice_stream = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;

    for (path, body) in [
        ("/api/v1/sets/current/members", add_bob.clone()),
        ("/api/v1/sets/current/handover", json!({ "to": "Alice" })),
        ("/multi-dj-per-stream", json!({ "dj_names": ["Bob"] })),
    ] {
        let (code, _) = server.post(path, None, Some(body.clone())).await;
        assert_eq!(code, 401, "{path} anonymous");
        let (code, detail) = server.post(path, Some(&carol), Some(body)).await;
        assert_eq!(code, 403, "{path} by a DJ outside the set: {detail}");
    }

    let (code, body) = server.post("/api/v1/sets/current/members", Some(&alice), Some(add_bob)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["dj_names"], json!(["Alice", "Bob"]));
    let (code, body) = server.post("/api/v1/sets/current/handover", Some(&bob), None).await;
    assert_eq!(code, 415, "a JSON body is required: {body}");
    let (code, body) = server.post("/api/v1/sets/current/handover", Some(&bob), Some(json!({}))).await;
    assert_eq!(code, 409, "Bob is not streaming yet: {body}");
    assert!(body["detail"].as_str().unwrap().contains("not streaming"), "{body}");

    // Bob streams: he stands by in the set instead of queueing.
    let _bob_stream = Dj::publish(server.rtmp, &bob_key).await.unwrap();
    server.wait_for_queue(&["Alice b2b Bob"]).await;
    let (code, body) = server.post("/api/v1/sets/current/handover", Some(&bob), Some(json!({}))).await;
    assert_eq!(code, 200, "a member takes over: {body}");
    assert_eq!(body["on_air"], "Bob");
    let now = status(&server).await;
    assert_eq!(now["on_air"]["dj_name"], "Bob");
    assert_eq!(now["on_air"]["set_name"], "Alice b2b Bob");
    assert_eq!(server.get_json("/song-json").await["set_name"], "Alice b2b Bob");

    let (code, body) = server.post("/api/v1/sets/current/handover", Some(&admin), Some(json!({ "to": "Alice" }))).await;
    assert_eq!((code, &body["on_air"]), (200, &json!("Alice")), "an admin hands over: {body}");

    // The original's endpoint: the whole line-up, names already in the set included.
    let lineup = json!({ "dj_names": ["Alice", "Bob", "Carol"] });
    let (code, body) = server.post("/multi-dj-per-stream", Some(&bob), Some(lineup)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["dj_names"], json!(["Alice", "Bob", "Carol"]));
    assert_eq!(body["members"][2], json!({ "dj_name": "Carol", "on_air": false, "live": false }));

    // Carol is a member now, so she may change the set; an admin takes her out again.
    let (code, body) = server.post("/api/v1/sets/current/handover", Some(&carol), Some(json!({ "to": "Bob" }))).await;
    assert_eq!(code, 200, "{body}");
    let remove = json!({ "dj_name": "Carol", "action": "remove" });
    let (code, body) = server.post("/api/v1/sets/current/members", Some(&admin), Some(remove)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["dj_names"], json!(["Alice", "Bob"]));
    let (code, _) = server.post("/api/v1/sets/current/handover", Some(&carol), Some(json!({ "to": "Alice" }))).await;
    assert_eq!(code, 403, "no longer a member");
}

#[tokio::test]
async fn hand_overs_splice_like_a_dj_change_for_real_consumers() {
    let platform = Sink::start().await;
    let server = Server::start(Options {
        grace_period: 1,
        extra_args: vec!["--destination".into(), platform.url("platform-key")],
        ..Options::default()
    });
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    let alice = server.token("Alice").await;
    let bob = server.token("Bob").await;

    let player = rtmp_player(&server).await;
    let viewer = http_viewer(&server).await;
    player.wait_for_size(SLATE).await;

    let alice_stream = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    player.wait_for_size(DJ1).await;
    let (code, body) =
        server.post("/api/v1/sets/current/members", Some(&alice), Some(json!({ "dj_name": "Bob" }))).await;
    assert_eq!(code, 200, "{body}");
    let _bob_stream = Dj::publish_file(server.rtmp, &bob_key, FIXTURE2).await.unwrap();
    wait_for_keyframe(&server, "Bob").await;

    // Bob takes over, hands back to Alice; then Alice's connection drops and the set goes
    // on with Bob at once (no slate in between).
    let (code, body) = server.post("/api/v1/sets/current/handover", Some(&bob), Some(json!({}))).await;
    assert_eq!(code, 200, "{body}");
    player.wait_for_size(DJ2).await;
    let (code, body) = server.post("/api/v1/sets/current/handover", Some(&bob), Some(json!({ "to": "Alice" }))).await;
    assert_eq!(code, 200, "{body}");
    player.wait_for_size(DJ1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice_stream.drop_connection().await;
    wait_for_on_air(&server, "Bob").await;
    player.wait_for_size(DJ2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let now = status(&server).await;
    assert_eq!(now["on_air"]["set_name"], "Alice b2b Bob", "{now}");
    assert_eq!(now["program"]["source"], "dj");
    for (name, consumer) in [("rtmp player", &player), ("http viewer", &viewer)] {
        assert_eq!(consumer.ended(), None, "{name} saw the program end");
        let segments = assert_seamless(&consumer.tags());
        assert_eq!(segments, [SLATE, DJ1, DJ2, DJ1, DJ2], "{name}: one header set per source, in order");
    }
    // The platform (the test destination, an RTMP server) saw one publish, just as seamless.
    let connections = platform.connections();
    assert_eq!(connections.len(), 1, "one connection to the platform: {}", connections.len());
    let segments = assert_seamless(&connections[0].tags);
    assert!(segments.ends_with(&[DJ1, DJ2, DJ1, DJ2]), "the platform's sources: {segments:?}");
}

#[tokio::test]
async fn the_dashboard_and_the_console_form_and_hand_over_a_set() {
    use crate::harness::PASSWORD;
    use crate::web::Browser;
    use reqwest::StatusCode;

    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    server.add_user("Carol", false);
    let browser = |name: &'static str| {
        let server = &server;
        async move {
            let b = Browser::new(server);
            assert_eq!(b.log_in(name, PASSWORD).await.0, StatusCode::SEE_OTHER, "{name} logs in");
            b
        }
    };
    let (alice, bob, carol, admin) =
        (browser("Alice").await, browser("Bob").await, browser("Carol").await, browser("Organiser").await);

    let _alice_stream = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let (_, page) = alice.get("/dashboard").await;
    assert!(page.contains(r#"id="b2b-add""#), "the DJ on air may start a back-to-back set");
    let (code, _, location) = alice.submit("/dashboard", "/dashboard/set/add", &[("dj_name", "Bob")]).await;
    assert_eq!((code, location.as_deref()), (StatusCode::SEE_OTHER, Some("/dashboard?saved=set")));

    let _bob_stream = Dj::publish(server.rtmp, &bob_key).await.unwrap();
    server.wait_for_queue(&["Alice b2b Bob"]).await;
    let (_, page) = bob.get("/dashboard").await;
    assert!(page.contains("Alice b2b Bob"), "Bob sees his set");
    assert!(page.contains(">Take over</button>"), "and may take over");
    let (code, _, _) = bob.submit("/dashboard", "/dashboard/set/handover", &[("dj_name", "")]).await;
    assert_eq!(code, StatusCode::SEE_OTHER);
    wait_for_on_air(&server, "Bob").await;
    let (_, page) = alice.get("/dashboard").await;
    assert!(page.contains(">Take over</button>"), "Alice, standing by now, may take it back");
    assert!(page.contains(r#"data-state="standby""#), "and her status says she stands by");

    // Not a member: refused, whatever the page offers.
    let (code, _, _) = carol.submit("/dashboard", "/dashboard/set/handover", &[("dj_name", "Alice")]).await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    let (_, console) = admin.get("/admin").await;
    assert!(console.contains("Alice b2b Bob"), "the console names the whole set");
    assert!(console.contains(r#"<input type="hidden" name="dj_name" value="Alice">"#), "{console}");
    let (code, _, location) =
        admin.submit("/admin", "/dashboard/set/handover", &[("dj_name", "Alice"), ("back", "admin")]).await;
    assert_eq!((code, location.as_deref()), (StatusCode::SEE_OTHER, Some("/admin")));
    wait_for_on_air(&server, "Alice").await;

    let (_, overlay) = Browser::new(&server).get("/overlay/now").await;
    assert!(overlay.contains("Alice b2b Bob"), "the overlay shows both names");
    assert_eq!(server.get_json("/queue-json").await["stream_queue"], json!(["Alice b2b Bob"]));
}

#[tokio::test]
async fn a_back_to_back_set_is_recorded_in_one_file_across_hand_overs() {
    let (server, record_dir) = crate::program::recording_server();
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    let alice = server.token("Alice").await;
    let player = rtmp_player(&server).await;

    let alice_stream = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    player.wait_for_size(DJ1).await;
    let (code, body) =
        server.post("/api/v1/sets/current/members", Some(&alice), Some(json!({ "dj_name": "Bob" }))).await;
    assert_eq!(code, 200, "{body}");
    let bob_stream = Dj::publish_file(server.rtmp, &bob_key, FIXTURE2).await.unwrap();
    wait_for_keyframe(&server, "Bob").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, body) = server.post("/api/v1/sets/current/handover", Some(&alice), Some(json!({ "to": "Bob" }))).await;
    assert_eq!(code, 200, "{body}");
    player.wait_for_size(DJ2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    alice_stream.stop().await; // standing by: the set goes on
    bob_stream.stop().await; // the last member: the set ends
    player.wait_for_size(SLATE).await;
    server.wait_for_log("recording").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert!(!record_dir.join("Bob").exists(), "no second file for the member who took over");
    let files: Vec<_> = std::fs::read_dir(record_dir.join("Alice")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let segments = assert_seamless(&crate::program::read_flv(&files[0]));
    assert_eq!(segments, [DJ1, DJ2], "both members' parts, in order, in the set's file");
}

#[tokio::test]
async fn the_tracks_of_every_member_make_the_sets_tracklist() {
    use crate::harness::PASSWORD;
    use crate::web::Browser;

    let server = Server::start(Options::default());
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    let (alice, bob) = (server.token("Alice").await, server.token("Bob").await);

    let alice_stream = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    server.post("/api/v1/sets/current/members", Some(&alice), Some(json!({ "dj_name": "Bob" }))).await;
    let bob_stream = Dj::publish(server.rtmp, &bob_key).await.unwrap();
    server.wait_for_queue(&["Alice b2b Bob"]).await;
    let track = json!({ "artist": "Alice Artist", "title": "Opener" });
    assert_eq!(server.post("/api/v1/users/me/track", Some(&alice), Some(track)).await.0, 200);
    server.post("/api/v1/sets/current/handover", Some(&bob), Some(json!({}))).await;
    wait_for_on_air(&server, "Bob").await;
    let track = json!({ "artist": "Bob Artist", "title": "Closer" });
    assert_eq!(server.post("/api/v1/users/me/track", Some(&bob), Some(track)).await.0, 200);
    let now = server.get_json("/song-json").await;
    assert_eq!((&now["dj_name"], &now["title"]), (&json!("Bob"), &json!("Closer")), "{now}");

    alice_stream.stop().await;
    bob_stream.stop().await;
    server.wait_for_queue(&[]).await;
    let host = Browser::new(&server);
    host.log_in("Alice", PASSWORD).await;
    let (_, page) = host.get("/sets").await;
    assert!(page.contains("Opener") && page.contains("Closer"), "the set's tracklist has both members' tracks");
}

#[tokio::test]
async fn a_queued_set_forms_before_its_turn_and_airs_with_whoever_streams() {
    let server = Server::start(Options::default());
    let alice_key = server.add_user("Alice", false);
    let carol_key = server.add_user("Carol", false);
    let dave_key = server.add_user("Dave", false);
    let (carol, dave) = (server.token("Carol").await, server.token("Dave").await);

    let alice_stream = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    let carol_stream = Dj::publish(server.rtmp, &carol_key).await.unwrap();
    server.wait_for_queue(&["Alice", "Carol"]).await;
    let add = json!({ "dj_name": "Dave", "set": "Carol" });
    let (code, body) = server.post("/api/v1/sets/current/members", Some(&dave), Some(add.clone())).await;
    assert_eq!(code, 403, "Dave is not in Carol's set yet: {body}");
    let (code, body) = server.post("/api/v1/sets/current/members", Some(&carol), Some(add)).await;
    assert_eq!(code, 200, "{body}");
    let _dave_stream = Dj::publish(server.rtmp, &dave_key).await.unwrap();
    server.wait_for_queue(&["Alice", "Carol b2b Dave"]).await;

    // Carol leaves before her turn: the set keeps its place, and airs with Dave.
    carol_stream.stop().await;
    alice_stream.stop().await;
    wait_for_on_air(&server, "Dave").await;
    server.wait_for_queue(&["Carol b2b Dave"]).await;
}
