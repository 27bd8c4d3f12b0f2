//! A DJ's preview of their own stream (`/preview/{user_id}/…`, issue 14): from a real RTMP
//! publisher to HLS that ffprobe reads, for the DJ and admins only, and bounded.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::browser::Ffmpeg;
use crate::harness::{Options, PASSWORD, PATIENCE, Server, require_tool};
use crate::hls::{probe_frames, uris};
use crate::publisher::Dj;
use crate::watch::{assert_plays, playback};
use crate::web::Browser;
use crate::webdriver::{Driver, Read, Viewport};

async fn user_id(server: &Server, login: &str) -> i64 {
    let token = server.token(login).await;
    server.get_json_as("/api/v1/users/me", &token).await["id"].as_i64().expect("an id")
}

async fn logged_in(server: &Server, login: &str) -> Browser {
    let browser = Browser::new(server);
    assert_eq!(browser.log_in(login, PASSWORD).await.0, StatusCode::SEE_OTHER, "{login} logs in");
    browser
}

/// Status and `Cache-Control` of a GET.
async fn fetch(browser: &Browser, server: &Server, path: &str) -> (StatusCode, String, bytes::Bytes) {
    let response = browser.client.get(server.url(path)).send().await.expect("GET");
    let cache = response.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (response.status(), cache, response.bytes().await.unwrap())
}

#[tokio::test]
async fn a_dj_and_admins_preview_the_djs_own_stream_others_may_not_and_previews_are_bounded() {
    if !require_tool("ffprobe") {
        return;
    }
    let server = Server::start(Options { config: Some("[hls]\npreviews = 1\n".into()), ..Options::default() });
    let _admin_key = server.add_user("Alice", true);
    let bob_key = server.add_user("Bob", false);
    let carol_key = server.add_user("Carol", false);
    let (bob_id, carol_id) = (user_id(&server, "Bob").await, user_id(&server, "Carol").await);
    let alice_id = user_id(&server, "Alice").await;
    let (bob, carol, alice) =
        (logged_in(&server, "Bob").await, logged_in(&server, "Carol").await, logged_in(&server, "Alice").await);
    let anonymous = Browser::new(&server);

    let bob_playlist = format!("/preview/{bob_id}/index.m3u8");
    assert_eq!(fetch(&bob, &server, &bob_playlist).await.0, StatusCode::NOT_FOUND, "Bob is not streaming yet");

    let _bob_dj = Dj::publish(server.rtmp, &bob_key).await.unwrap();
    let _carol_dj = Dj::publish(server.rtmp, &carol_key).await.unwrap();
    server.wait_for_queue(&["Bob", "Carol"]).await;

    assert_eq!(fetch(&anonymous, &server, &bob_playlist).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(fetch(&carol, &server, &bob_playlist).await.0, StatusCode::NOT_FOUND, "another DJ's preview");
    assert_eq!(
        fetch(&alice, &server, &format!("/preview/{alice_id}/index.m3u8")).await.0,
        StatusCode::NOT_FOUND,
        "Alice is not streaming"
    );

    // The pages that play it: Bob's dashboard, and the admin console's link for each DJ.
    let (_, dashboard) = bob.get("/dashboard").await;
    assert!(dashboard.contains(&format!(r#"data-src="{bob_playlist}""#)), "the dashboard's preview player");
    let (_, console) = alice.get("/admin").await;
    assert!(console.contains(&format!(r#"href="/preview/{bob_id}""#)), "the admin console links Bob's preview");
    let (status, page) = alice.get(&format!("/preview/{bob_id}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains(&format!(r#"data-src="{bob_playlist}""#)) && page.contains("Preview of Bob"), "{page}");
    assert_eq!(carol.get(&format!("/preview/{bob_id}")).await.0, StatusCode::NOT_FOUND);

    // Bob's own preview, until it lists two segments.
    let deadline = Instant::now() + PATIENCE * 2;
    let playlist = loop {
        let (status, cache, body) = fetch(&bob, &server, &bob_playlist).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cache, "no-store");
        let text = String::from_utf8(body.to_vec()).unwrap();
        if uris(&text).len() >= 2 {
            break text;
        }
        assert!(Instant::now() < deadline, "the preview never listed two segments: {text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // What Bob's player fetches, played back by ffprobe.
    let dir = tempfile::tempdir().unwrap();
    for line in playlist.lines() {
        let name = match line.strip_prefix("#EXT-X-MAP:URI=\"") {
            Some(rest) => rest.trim_end_matches('"'),
            None if !line.starts_with('#') && !line.is_empty() => line,
            None => continue,
        };
        let path = format!("/preview/{bob_id}/{name}");
        assert_eq!(fetch(&carol, &server, &path).await.0, StatusCode::NOT_FOUND, "another DJ: {name}");
        assert_eq!(fetch(&anonymous, &server, &path).await.0, StatusCode::UNAUTHORIZED, "anonymous: {name}");
        let (status, cache, body) = fetch(&bob, &server, &path).await;
        assert_eq!((status, cache.as_str()), (StatusCode::OK, "no-store"), "{name}");
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    std::fs::write(dir.path().join("local.m3u8"), format!("{playlist}#EXT-X-ENDLIST\n")).unwrap();
    let frames = probe_frames(&dir.path().join("local.m3u8"));
    let video: Vec<_> = frames.iter().filter(|f| f.0 == "video").collect();
    assert!(video.len() > 30, "{} pictures in two segments", video.len());
    assert!(video.iter().all(|f| (f.2, f.3) == (320, 180)), "Bob's picture: {:?}", video.first());
    assert!(frames.iter().any(|f| f.0 == "audio"), "and Bob's sound");

    // An admin watches the same preview; Carol's own would be a second one, over the limit.
    let (status, cache, _) = fetch(&alice, &server, &bob_playlist).await;
    assert_eq!((status, cache.as_str()), (StatusCode::OK, "no-store"), "an admin previews Bob");
    let (status, _, body) = fetch(&carol, &server, &format!("/preview/{carol_id}/index.m3u8")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("Too many previews"));
    let metrics = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.lines().any(|l| l == "motherstream_previews 1"), "one preview muxed: {metrics}");
}

/// The acceptance path: a queued DJ opens the preview on their dashboard and sees their
/// own stream play in a real browser, while someone else is on air.
#[tokio::test]
async fn the_dashboard_preview_plays_the_djs_own_stream_in_a_browser() {
    if !require_tool("ffmpeg") {
        return;
    }
    let Some(driver) = Driver::start().await else { return };
    let server = Server::start(Options::default());
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    let _alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let _bob = Ffmpeg::publish(&server.rtmp_url(&bob_key));
    server.wait_for_queue(&["Alice", "Bob"]).await;

    let browser = driver.session("Bob (queued DJ)", &server.url(""), Viewport::Desktop).await;
    browser.goto("/login").await;
    browser.fill("#login input[name=username]", "Bob").await;
    browser.fill("#login input[name=password]", PASSWORD).await;
    browser.click("#login-submit").await;
    browser.wait_path("/dashboard").await;
    browser.wait_present("#preview-toggle").await;
    let idle = playback(&browser).await;
    assert_eq!(idle["player"], "", "nothing loads before the DJ opens the preview: {idle}");
    browser.click("#preview-toggle summary").await;
    assert_plays(&browser, 3.0, Duration::from_secs(20), "the preview").await;
    browser.wait_for("#player", Read::Attr("data-player"), Duration::from_secs(2), |p| p == "hls.js").await;
    browser.screenshot("dashboard-preview").await;
    browser.close().await;
}
