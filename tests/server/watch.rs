//! The channel for viewers (issue 13): `/watch`, `/embed`, the vendored hls.js, and a real
//! browser playing the program's HLS output across a DJ switch.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::browser::Ffmpeg;
use crate::harness::{Options, Server, require_tool};
use crate::publisher::Dj;
use crate::webdriver::{Driver, Read, Viewport};

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The address of the hls.js script a page loads.
fn hls_js_src(html: &str) -> &str {
    let at = html.find("src=\"/assets/hls-").unwrap_or_else(|| panic!("no hls.js script in {html}"));
    let rest = &html[at + 5..];
    &rest[..rest.find('"').unwrap()]
}

#[tokio::test]
async fn the_watch_page_is_linked_from_home_and_shows_the_player_and_the_lineup() {
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", false);
    let client = reqwest::Client::new();
    let home = client.get(server.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(home.contains(r#"href="/watch""#), "home links to the watch page: {home}");

    let resp = client.get(server.url("/watch")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    // Pages' policy, plus blob: media (hls.js feeds the video a MediaSource); never framed.
    let csp = header(&resp, "content-security-policy").to_owned();
    for part in ["default-src 'self'", "media-src 'self' blob:", "frame-ancestors 'none'", "object-src 'none'"] {
        assert!(csp.contains(part), "{part} missing from {csp:?}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"), "scripts from this site only: {csp}");
    assert_eq!(header(&resp, "x-frame-options"), "DENY");
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"data-src="/hls/program.m3u8""#), "{html}");
    assert!(html.contains("<video") && html.contains("playsinline") && html.contains(" muted"), "{html}");
    assert!(html.contains(r#"id="player-unmute""#), "a way to unmute: {html}");
    assert!(html.contains(r#"class="topbar""#), "the site around it: {html}");
    assert!(html.contains("the slate is showing"), "nobody on air yet: {html}");

    let _alice = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let html = client.get(server.url("/watch")).send().await.unwrap().text().await.unwrap();
        if html.contains(r#"id="watch-on-air">Alice<"#) {
            break;
        }
        assert!(Instant::now() < deadline, "the page renders who is on air: {html}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_embed_is_frameable_chromeless_and_takes_autoplay_and_muted() {
    let server = Server::start(Options::default());
    let client = reqwest::Client::new();
    let resp = client.get(server.url("/embed?autoplay=1&muted=1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let csp = header(&resp, "content-security-policy").to_owned();
    assert!(csp.contains("media-src 'self' blob:") && !csp.contains("frame-ancestors"), "{csp}");
    assert_eq!(header(&resp, "x-frame-options"), "", "any site may frame the player");
    assert!(!header(&resp, "set-cookie").contains("ms_"), "no session cookie for a third-party frame");
    let html = resp.text().await.unwrap();
    assert!(!html.contains("topbar") && !html.contains("<footer"), "no site chrome: {html}");
    assert!(html.contains(r#"data-autoplay="1""#) && html.contains(r#"data-muted="1""#), "{html}");
    assert!(html.contains(r#"data-src="/hls/program.m3u8""#), "{html}");

    let html = client.get(server.url("/embed")).send().await.unwrap().text().await.unwrap();
    assert!(html.contains(r#"data-autoplay="0""#) && html.contains(r#"data-muted="0""#), "{html}");
}

#[tokio::test]
async fn hls_js_is_served_under_its_version_with_a_long_cache_and_other_assets_are_not() {
    let server = Server::start(Options::default());
    let client = reqwest::Client::new();
    let html = client.get(server.url("/watch")).send().await.unwrap().text().await.unwrap();
    let src = hls_js_src(&html).to_owned();
    let version = src.trim_start_matches("/assets/hls-").trim_end_matches(".min.js");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/web/vendor/README.md")).unwrap();
    assert!(readme.contains(&format!("Version: {version}")), "the page loads the documented version {version}");
    assert!(readme.contains("Apache-2.0"), "{readme}");

    let resp = client.get(server.url(&src)).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{src}");
    assert_eq!(header(&resp, "cache-control"), "public, max-age=31536000, immutable");
    assert!(header(&resp, "content-type").starts_with("text/javascript"));
    let body = resp.bytes().await.unwrap();
    let vendored = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/web/vendor/hls.min.js")).unwrap();
    assert!(body == vendored, "the vendored file, unmodified");

    // Names without the version never get the long cache: there is no such asset.
    let resp = client.get(server.url("/assets/hls.min.js")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp = client.get(server.url("/assets/watch.js")).send().await.unwrap();
    assert_eq!(header(&resp, "cache-control"), "public, max-age=300");
}

/// The player's state, read in the page: where playback is, whether the video failed, and
/// which player runs it.
pub(crate) async fn playback(browser: &crate::webdriver::Browser) -> Value {
    browser
        .execute(
            "const v = document.getElementById('watch-video'); \
             return { time: v.currentTime, paused: v.paused, error: v.error && v.error.code, \
                      errors: window.__watchErrors || 0, player: document.getElementById('player').dataset.player || '', \
                      state: document.getElementById('player').dataset.state };",
        )
        .await
}

/// Waits until playback has advanced by `by` seconds of media, with no error on the way.
pub(crate) async fn assert_plays(browser: &crate::webdriver::Browser, by: f64, within: Duration, when: &str) -> f64 {
    let start = playback(browser).await["time"].as_f64().unwrap_or(0.0);
    let deadline = Instant::now() + within;
    loop {
        let now = playback(browser).await;
        assert_eq!(now["errors"], 0, "{when}: the video reported an error: {now}");
        assert!(now["error"].is_null(), "{when}: the video failed: {now}");
        let time = now["time"].as_f64().unwrap_or(0.0);
        if time >= start + by {
            return time;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: playback did not advance {by}s from {start} within {within:?}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The acceptance path of the watch page: a visitor on a phone sees the channel play
/// (muted autoplay), before, during and after a DJ switch, and the on-air name follows the
/// switch without a reload. Runs once per player: hls.js, and the browser's choice (its own
/// HLS where it has one; Chromium has none, so hls.js again).
#[tokio::test]
async fn the_watch_page_plays_across_a_dj_switch_and_follows_who_is_on_air() {
    plays_across_switches("[hls]\nenabled = true\n", &["hlsjs", "default"]).await;
}

/// The same with LL-HLS: hls.js in low-latency mode loads parts and blocking reloads.
#[tokio::test]
async fn the_watch_page_plays_low_latency_hls_across_a_dj_switch() {
    plays_across_switches("[hls]\nenabled = true\nlow_latency = true\n", &["hlsjs"]).await;
}

async fn plays_across_switches(config: &str, players: &[&str]) {
    if !require_tool("ffmpeg") {
        return;
    }
    let Some(driver) = Driver::start().await else { return };
    let server = Server::start(Options { config: Some(config.into()), ..Options::default() });
    let alice = server.add_user("Alice", false);
    let bob = server.add_user("Bob", false);
    server.add_user("Organiser", true);
    let token = server.token("Organiser").await;
    let mut on_air = Ffmpeg::publish(&server.rtmp_url(&alice));
    server.wait_for_queue(&["Alice"]).await;
    let mut waiting = Ffmpeg::publish(&server.rtmp_url(&bob));
    server.wait_for_queue(&["Alice", "Bob"]).await;

    // Each round: the first DJ on air, the second waiting; the organiser skips; the first
    // comes back behind the second for the next round.
    let rounds = [("Alice", "Bob", &alice), ("Bob", "Alice", &bob)];
    for (&player, (first, second, first_key)) in players.iter().zip(rounds) {
        let browser = driver.session(&format!("viewer ({player})"), &server.url(""), Viewport::Phone).await;
        browser.goto(&format!("/watch?player={player}")).await;
        browser
            .execute(
                "window.__watchErrors = 0; \
                 document.getElementById('watch-video').addEventListener('error', () => window.__watchErrors++); \
                 return null;",
            )
            .await;
        browser.wait_for("#watch-on-air", Read::Text, Duration::from_secs(5), |t| t == first).await;
        // The acceptance: a visitor sees the channel within a few seconds.
        assert_plays(&browser, 2.0, Duration::from_secs(15), "before the switch").await;
        let used = playback(&browser).await["player"].as_str().unwrap_or_default().to_owned();
        if player == "hlsjs" {
            assert_eq!(used, "hls.js");
        }
        eprintln!("the watch page plays with {used}");
        browser.screenshot(&format!("watch-{player}-before")).await;
        // Muted autoplay, and a visible way to sound: one click unmutes, the button goes.
        browser.wait_for("#player-unmute", Read::Css("display"), Duration::from_secs(2), |d| d != "none").await;
        browser.click("#player-unmute").await;
        assert_eq!(browser.execute("return document.getElementById('watch-video').muted").await, false);
        browser.wait_for("#player-unmute", Read::Css("display"), Duration::from_secs(2), |d| d == "none").await;

        let (status, _) = server.post("/api/v1/queue/skip", Some(&token), None).await;
        assert_eq!(status, 200);
        browser.wait_for("#watch-on-air", Read::Text, Duration::from_secs(5), |t| t == second).await;
        assert_plays(&browser, 4.0, Duration::from_secs(20), "across the switch").await;
        assert_plays(&browser, 4.0, Duration::from_secs(20), "after the switch").await;
        browser.screenshot(&format!("watch-{player}-after")).await;
        browser.close().await;

        drop(std::mem::replace(&mut on_air, Ffmpeg::publish(&server.rtmp_url(first_key))));
        std::mem::swap(&mut on_air, &mut waiting);
        server.wait_for_queue(&[second, first]).await;
    }
}

/// Without the HLS output the page says why nothing plays (no endless spinner), and still
/// follows who is on air, on a phone.
#[tokio::test]
async fn with_hls_off_the_watch_page_says_so_and_still_follows_the_lineup() {
    let Some(driver) = Driver::start().await else { return };
    let server = Server::start(Options { config: Some("[hls]\nenabled = false\n".into()), ..Options::default() });
    let key = server.add_user("Alice", false);
    let browser = driver.session("viewer", &server.url(""), Viewport::Phone).await;
    browser.goto("/watch").await;
    browser.wait_attr("#player", "data-state", |s| s == "off").await;
    browser.wait_text("#player-message", |t| t.contains("turned off")).await;
    // Nothing to play or unmute: no button says otherwise.
    for button in ["#player-play", "#player-unmute"] {
        browser.wait_for(button, Read::Css("display"), Duration::from_secs(1), |d| d == "none").await;
    }
    browser.wait_for("#watch-on-air", Read::Text, Duration::from_secs(5), |t| t.contains("slate")).await;

    let alice = Dj::publish(server.rtmp, &key).await.unwrap();
    browser.wait_for("#watch-on-air", Read::Text, Duration::from_secs(5), |t| t == "Alice").await;
    browser.wait_attr("#watch-status", "data-state", |s| s == "on_air").await;
    browser.screenshot("watch-hls-off-phone").await;
    alice.stop().await;
    browser.wait_for("#watch-on-air", Read::Text, Duration::from_secs(5), |t| t.contains("slate")).await;
    browser.close().await;
}

/// Another site frames the player with `?autoplay=1&muted=1`: it is allowed to, and the
/// video plays there without a click.
#[tokio::test]
async fn the_embed_plays_muted_in_another_sites_frame() {
    if !require_tool("ffmpeg") {
        return;
    }
    let Some(driver) = Driver::start().await else { return };
    let server = Server::start(Options { config: Some("[hls]\nenabled = true\n".into()), ..Options::default() });
    let alice = server.add_user("Alice", false);
    let _alice = Ffmpeg::publish(&server.rtmp_url(&alice));
    server.wait_for_queue(&["Alice"]).await;
    let browser = driver.session("another site", &server.url(""), Viewport::Desktop).await;
    // A page of another site (another port is another origin) with the player in a frame.
    // On loopback too: Chromium refuses frames from loopback in pages from elsewhere.
    let embed = server.url("/embed?autoplay=1&muted=1");
    let site = serve_once(format!("<!doctype html><iframe width=640 height=400 src=\"{embed}\"></iframe>")).await;
    browser.goto_url(&site).await;
    browser.enter_first_frame().await;
    browser.wait_for("#watch-on-air", Read::Text, Duration::from_secs(10), |t| t == "Alice").await;
    assert_plays(&browser, 2.0, Duration::from_secs(15), "in the frame").await;
    browser.screenshot("embed-in-another-site").await;
    browser.close().await;
}

/// Serves `html` to every request on a port of its own; returns its address. The listener
/// lives as long as the test's runtime.
async fn serve_once(html: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    format!("http://{addr}/")
}
