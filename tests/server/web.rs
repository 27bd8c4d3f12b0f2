//! The web pages over real HTTP: sessions, CSRF, rate limits, uploads, authorisation, and
//! stream keys kept out of everything public. (The browser flows are in browser.rs.)

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

use crate::harness::{Events, Options, PASSWORD, Server, require_tool};
use crate::limits::LiveEncoder;
use crate::publisher::Dj;

/// A cookie-keeping client that does not follow redirects, like a browser's view of one
/// request at a time.
pub(crate) struct Browser {
    pub(crate) client: reqwest::Client,
    base: String,
}

impl Browser {
    pub(crate) fn new(server: &Server) -> Self {
        // No connection reuse: the server may close a connection whose upload it refused
        // before reading it all, and a pooled client would then fail its next request.
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        Self { client, base: server.url("") }
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, String) {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    }

    /// A GET's status and `Location` header.
    pub(crate) async fn get_location(&self, path: &str) -> (StatusCode, Option<String>) {
        let resp = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (resp.status(), location)
    }

    /// The CSRF token a page's forms carry.
    pub(crate) async fn csrf(&self, page: &str) -> String {
        let (_, body) = self.get(page).await;
        let marker = r#"name="csrf" value=""#;
        let start = body.find(marker).unwrap_or_else(|| panic!("no csrf field on {page}")) + marker.len();
        body[start..start + 64].to_owned()
    }

    async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String, Option<String>) {
        let resp = self.client.post(format!("{}{path}", self.base)).form(fields).send().await.unwrap();
        let location = resp.headers().get("location").map(|l| l.to_str().unwrap().to_owned());
        (resp.status(), resp.text().await.unwrap(), location)
    }

    /// Submits a form the way a browser does: with the token from the page it is on.
    pub(crate) async fn submit(
        &self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let csrf = self.csrf(page).await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_form(action, &all).await
    }

    pub(crate) async fn sign_up(&self, name: &str) -> StatusCode {
        let email = format!("{}@example.org", name.to_lowercase());
        self.submit("/signup", "/signup", &[("dj_name", name), ("email", &email), ("password", PASSWORD)]).await.0
    }

    pub(crate) async fn log_in(&self, login: &str, password: &str) -> (StatusCode, Option<String>) {
        let (status, _, location) =
            self.submit("/login", "/login", &[("username", login), ("password", password)]).await;
        (status, location)
    }

    /// The stream key shown on the dashboard.
    pub(crate) async fn stream_key(&self) -> String {
        let (status, body) = self.get("/dashboard").await;
        assert_eq!(status, StatusCode::OK);
        let marker = r#"id="stream-key" type="password" readonly value=""#;
        let start = body.find(marker).expect("key field") + marker.len();
        body[start..start + 40].to_owned()
    }
}

#[tokio::test]
async fn sign_up_shows_a_working_key_and_log_out_ends_the_session() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let browser = Browser::new(&server);
    assert_eq!(browser.sign_up("Ada").await, StatusCode::SEE_OTHER);
    let key = browser.stream_key().await;
    let dj = Dj::publish(server.rtmp, &key).await.expect("the dashboard's key publishes");
    server.wait_for_queue(&["Ada"]).await;
    let (_, dashboard) = browser.get("/dashboard").await;
    assert!(dashboard.contains(r#"data-state="on_air""#), "the dashboard says on air");
    dj.stop().await;

    let (status, _, location) = browser.submit("/dashboard", "/logout", &[]).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/login")));
    let (status, _) = browser.get("/dashboard").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "logged out: back to the login page");
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_site_are_refused() {
    let server = Server::start(Options::default());
    let browser = Browser::new(&server);
    let _ = browser.get("/signup").await; // the CSRF cookie is set
    let fields = [("dj_name", "Mallory"), ("email", "m@example.org"), ("password", PASSWORD)];
    let (status, body, _) = browser.post_form("/signup", &fields).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no token");
    assert!(body.contains("Reload the page"), "{body}");
    let mut forged = vec![("csrf", "00".repeat(32))];
    forged.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(browser.post_form("/signup", &forged).await.0, StatusCode::FORBIDDEN, "wrong token");

    // The right token, but posted from another site's page.
    let csrf = browser.csrf("/signup").await;
    let resp = browser
        .client
        .post(server.url("/signup"))
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("dj_name", "Mallory"), ("email", "m@example.org"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(String::from_utf8_lossy(&server.cli(&["user", "list", "--json"]).stdout).trim(), "[]");

    // A logged-in DJ's forms need the token too.
    assert_eq!(browser.sign_up("Ada").await, StatusCode::SEE_OTHER);
    let (status, _, _) = browser.post_form("/settings/stream-key", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = browser.post_form("/logout", &[("csrf", "nope")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn login_and_sign_up_are_rate_limited_per_address_with_generic_errors() {
    let server = Server::start(Options::default());
    server.add_user("Ada", false);
    let browser = Browser::new(&server);
    let (status, body, _) =
        browser.submit("/login", "/login", &[("username", "ada@example.org"), ("password", "wrong password")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Incorrect email or password"));
    let (_, unknown, _) =
        browser.submit("/login", "/login", &[("username", "nobody@example.org"), ("password", "wrong password")]).await;
    assert!(unknown.contains("Incorrect email or password"), "same message for an unknown email");

    let mut limited = false;
    for _ in 0..12 {
        let (status, body, _) =
            browser.submit("/login", "/login", &[("username", "ada"), ("password", "wrong password")]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(body.contains("Too many attempts"));
            limited = true;
            break;
        }
    }
    assert!(limited, "login attempts are limited");
    // The limit holds for the right password too, and for the API.
    assert_eq!(browser.log_in("ada", PASSWORD).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(server.login_status("ada", PASSWORD).await, 429);

    let statuses: Vec<StatusCode> = futures_util::future::join_all((0..7).map(|i| {
        let browser = &browser;
        async move { browser.sign_up(&format!("Dj{i}")).await }
    }))
    .await;
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "sign-ups are limited: {statuses:?}");
}

#[tokio::test]
async fn pictures_are_checked_by_content_and_size() {
    let server = Server::start(Options::default());
    let browser = Browser::new(&server);
    browser.sign_up("Ada").await;
    let server = &server;
    let browser = &browser;
    let upload = |bytes: Vec<u8>, name: &'static str| async move {
        let csrf = browser.csrf("/settings").await;
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf)
            .part("picture", reqwest::multipart::Part::bytes(bytes).file_name(name).mime_str("image/png").unwrap());
        let resp = browser.client.post(server.url("/settings/picture")).multipart(form).send().await.unwrap();
        (resp.status(), resp.text().await.unwrap())
    };
    let (status, body) = upload(b"<svg onload=alert(1)></svg>".to_vec(), "evil.png").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(body.contains("not a PNG, JPEG, GIF or WebP"), "{body}");

    let mut huge = b"\x89PNG\r\n\x1a\n".to_vec();
    huge.resize(3 * 1024 * 1024, 0);
    let (status, _) = upload(huge, "huge.png").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89".to_vec();
    let (status, _) = upload(png.clone(), "me.png").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, settings) = browser.get("/settings").await;
    // minijinja's HTML escaping writes `/` as `&#x2f;`, which browsers read back as `/`.
    let marker = "&#x2f;pictures&#x2f;";
    let start = settings.find(marker).expect("picture shown") + marker.len();
    let file: String = settings[start..].chars().take_while(|c| *c != '"').collect();
    let resp = reqwest::get(server.url(&format!("/pictures/{file}"))).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), png.as_slice());
    let resp = reqwest::get(server.url("/pictures/..%2Fjwt_secret")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_admins_reach_the_admin_console_and_its_actions() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let bob_key = server.add_user("Bob", false);
    let _bob = Dj::publish(server.rtmp, &bob_key).await.unwrap();
    server.wait_for_queue(&["Bob"]).await;

    let anonymous = Browser::new(&server);
    let (status, _) = anonymous.get("/admin").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "anonymous: sent to log in");

    let dj = Browser::new(&server);
    dj.sign_up("Carol").await;
    let (status, body) = dj.get("/admin").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("organisers"));
    // Even with a valid CSRF token from a page they can see.
    let csrf = dj.csrf("/dashboard").await;
    for action in ["/admin/queue/skip", "/admin/queue/Bob/remove", "/admin/users/1/disable"] {
        let (status, _, _) = dj.post_form(action, &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}");
    }
    server.wait_for_queue(&["Bob"]).await;
    let token = server.token("carol").await;
    let resp = reqwest::Client::new().get(server.url("/api/v1/users/")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let admin = Browser::new(&server);
    assert_eq!(admin.log_in("Organiser", PASSWORD).await, (StatusCode::SEE_OTHER, Some("/dashboard".into())));
    let (status, page) = admin.get("/admin").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"<tr data-dj="Bob">"#));
    assert!(!page.contains(&bob_key), "the console does not show stream keys");
    let (status, _, location) = admin.submit("/admin", "/admin/queue/skip", &[]).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/admin")));
    server.wait_for_queue(&[]).await;
    let (status, _, _) = admin.submit("/admin", "/admin/queue/swap-interval", &[("minutes", "45")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(server.get_json("/time-settings").await["swap_interval"], 2700);
    let (status, page, _) = admin.submit("/admin", "/admin/queue/remaining", &[("minutes", "many")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("whole number of minutes"));
}

#[tokio::test]
async fn stream_keys_never_appear_in_public_or_non_admin_responses() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let ada_key = server.add_user("Ada", false);
    let bob_key = server.add_user("Bob", false);
    let _ada = Dj::publish(server.rtmp, &ada_key).await.unwrap();
    let _bob = Dj::publish(server.rtmp, &bob_key).await.unwrap();
    server.wait_for_queue(&["Ada", "Bob"]).await;
    let ada_token = server.token("ada").await;
    let (status, _) =
        server.post("/api/v1/users/me/track", Some(&ada_token), Some(json!({"artist": "A", "title": "T"}))).await;
    assert_eq!(status, 200);

    let mut bodies = Vec::new();
    for path in [
        "/",
        "/login",
        "/signup",
        "/queue-list",
        "/queue-json",
        "/timer-data",
        "/api/v1/status",
        "/song-json",
        "/metrics",
    ] {
        let resp = reqwest::get(server.url(path)).await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        bodies.push((path.to_owned(), resp.text().await.unwrap()));
    }
    // What another DJ sees when logged in.
    let carol = Browser::new(&server);
    carol.sign_up("Carol").await;
    for path in ["/dashboard", "/settings", "/sets"] {
        bodies.push((format!("Carol {path}"), carol.get(path).await.1));
    }
    let carol_token = server.token("carol").await;
    let me = server.get_json_as("/api/v1/users/me", &carol_token).await;
    bodies.push(("Carol /api/v1/users/me".into(), me.to_string()));
    // The event stream, for a few seconds.
    let mut events = reqwest::get(server.url("/api/v1/events")).await.unwrap();
    let mut sse = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while let Ok(Some(chunk)) = events.chunk().await {
            sse.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(sse.contains("Ada"), "the stream was read: {sse}");
    bodies.push(("/api/v1/events".into(), sse));
    for (path, body) in &bodies {
        for key in [&ada_key, &bob_key] {
            assert!(!body.contains(key.as_str()), "{path} shows a stream key");
        }
    }
}

#[tokio::test]
async fn the_user_api_signs_up_edits_changes_passwords_and_deletes() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let client = reqwest::Client::new();
    let resp = client
        .post(server.url("/api/v1/users/signup"))
        .json(&json!({ "dj_name": "Ada", "email": "Ada@Example.org", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let ada: Value = resp.json().await.unwrap();
    assert_eq!((ada["dj_name"].as_str(), ada["email"].as_str()), (Some("Ada"), Some("ada@example.org")));
    assert_eq!(ada["is_superuser"], false, "sign-up never makes an admin");
    assert_eq!(ada["stream_key"].as_str().unwrap().len(), 40);
    let dup = client
        .post(server.url("/api/v1/users/signup"))
        .json(&json!({ "dj_name": "ADA", "email": "x@example.org", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status(), StatusCode::CONFLICT);
    let bad = client.post(server.url("/api/v1/users/signup")).body("{").header("content-type", "application/json");
    let bad = bad.send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.json::<Value>().await.unwrap()["detail"].is_string());

    let token = server.token("ada").await;
    let patched: Value = client
        .patch(server.url("/api/v1/users/me"))
        .bearer_auth(&token)
        .json(&json!({ "dj_name": "Ada Lovelace", "timezone": "Europe/London" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (patched["dj_name"].as_str(), patched["timezone"].as_str()),
        (Some("Ada Lovelace"), Some("Europe/London"))
    );

    let wrong = client
        .patch(server.url("/api/v1/users/me/password"))
        .bearer_auth(&token)
        .json(&json!({ "current_password": "not it at all", "new_password": "brand new secret" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let changed = client
        .patch(server.url("/api/v1/users/me/password"))
        .bearer_auth(&token)
        .json(&json!({ "current_password": PASSWORD, "new_password": "brand new secret" }))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_eq!(server.login_status("ada lovelace", PASSWORD).await, 400);
    assert_eq!(server.login_status("ada lovelace", "brand new secret").await, 200);

    let admin = server.token("organiser").await;
    let list = server.get_json_as("/api/v1/users/", &admin).await;
    assert_eq!(list["count"], 2);
    // The password change revoked the old token.
    let stale = client.get(server.url("/api/v1/users/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    let token = server.token_with("ada lovelace", "brand new secret").await;
    let confirm = json!({ "current_password": "brand new secret" });
    let deleted = client.delete(server.url("/api/v1/users/me")).bearer_auth(&token).json(&confirm).send().await;
    assert_eq!(deleted.unwrap().status(), StatusCode::OK);
    let gone = client.get(server.url("/api/v1/users/me")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
    // The only admin cannot delete themselves and leave the channel without one.
    let confirm = json!({ "current_password": PASSWORD });
    let last = client.delete(server.url("/api/v1/users/me")).bearer_auth(&admin).json(&confirm).send().await.unwrap();
    assert_eq!(last.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn now_playing_shows_in_song_json_and_in_the_sets_tracklist() {
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    let browser = Browser::new(&server);
    browser.sign_up("Ada").await;
    let key = browser.stream_key().await;
    let empty = server.get_json("/song-json").await;
    assert_eq!(empty["dj_name"], Value::Null);

    let dj = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Ada"]).await;
    let (status, _, location) =
        browser.submit("/dashboard", "/dashboard/track", &[("artist", "Moderat"), ("title", "A New Error")]).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/dashboard?saved=track")));
    let song = server.get_json("/song-json").await;
    assert_eq!(song["dj_name"], "Ada");
    assert_eq!(song["song"], "Moderat – A New Error", "{song}; logs:\n{}", server.logs());
    let token = server.token("ada").await;
    let (status, _) = server
        .post("/api/v1/users/me/track", Some(&token), Some(json!({ "artist": "Burial", "title": "Archangel" })))
        .await;
    assert_eq!(status, 200);
    assert_eq!(server.get_json("/song-json").await["title"], "Archangel");
    let (status, body) = server.post("/api/v1/users/me/track", Some(&token), Some(json!({ "artist": " " }))).await;
    assert_eq!(status, 400, "{body}");

    dj.stop().await;
    server.wait_for_queue(&[]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, sets) = browser.get("/sets").await;
        if sets.contains("Ended:") {
            assert!(sets.contains("Moderat") && sets.contains("Archangel"), "{sets}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the set never closed: {sets}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The channel profile (default 1280x720, 30 fps, 48 kHz stereo) against two DJs who both
/// differ from it: each difference with its OBS fix, in the API for every publisher, on the
/// queued DJ's dashboard before their turn, and on the admin console.
#[tokio::test]
async fn off_profile_streams_are_shown_with_their_obs_fixes_before_going_on_air() {
    let server = Server::start(Options::default());
    let alice_key = server.add_user("Alice", true);
    let bob_key = server.add_user("Bob", false);
    let _alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let _bob = Dj::publish_file(server.rtmp, &bob_key, crate::publisher::FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;

    let settings = |profile: &Value| -> Vec<String> {
        profile["differences"].as_array().unwrap().iter().map(|d| d["setting"].as_str().unwrap().to_owned()).collect()
    };
    // The frame rate needs a second or so of frames.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        let status = server.get_json("/api/v1/status").await;
        if settings(&status["queue"][0]["profile"]).len() == 2 && settings(&status["on_air"]["profile"]).len() == 2 {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "profiles never known: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // dj.flv: 320x180@30, 44.1 kHz stereo. dj2.flv: 640x360@25, 48 kHz stereo.
    assert_eq!(settings(&status["on_air"]["profile"]), ["resolution", "sample_rate"]);
    assert_eq!(settings(&status["queue"][0]["profile"]), ["resolution", "frame_rate"]);
    let bob = &status["queue"][0]["profile"];
    assert_eq!(bob["differences"][0]["message"], "resolution 640x360, channel is 1280x720");
    assert_eq!(bob["differences"][0]["fix"], "OBS Settings → Video → Output (Scaled) Resolution → 1280x720");
    assert_eq!(bob["differences"][1]["fix"], "OBS Settings → Video → Common FPS Values → 30");
    assert_eq!(bob["airing"], "direct", "policy allow airs off-profile streams as sent");
    assert_eq!(status["channel"]["description"], "1280x720, 30 fps, 48 kHz stereo");
    assert!(
        status["on_air"]["health"]["problems"]
            .as_array()
            .unwrap()
            .contains(&json!("sample rate 44.1 kHz, channel is 48 kHz")),
        "{status}"
    );

    let bob_browser = Browser::new(&server);
    assert_eq!(bob_browser.log_in("Bob", PASSWORD).await.0, StatusCode::SEE_OTHER);
    let (_, dashboard) = bob_browser.get("/dashboard").await;
    assert!(dashboard.contains("You're up next"), "Bob is waiting, next");
    assert!(dashboard.contains("Your stream doesn't match the channel"), "{dashboard}");
    assert!(dashboard.contains("frame rate 25 fps, channel is 30 fps"));
    assert!(dashboard.contains("OBS Settings → Video → Common FPS Values → 30"));

    let admin = Browser::new(&server);
    admin.log_in("Alice", PASSWORD).await;
    let (_, console) = admin.get("/admin").await;
    assert!(console.contains("sample rate 44.1 kHz, channel is 48 kHz"), "the lead's differences");
    assert!(console.contains("resolution 640x360, channel is 1280x720"), "the queued DJ's differences");
}

/// Issue 14's "health in plain words": a queued DJ whose OBS sends an 8 s keyframe interval
/// and no sound sees each problem with the setting that fixes it, on their dashboard and in
/// the live stats event, and the organisers see it on the admin console.
#[tokio::test]
async fn stream_checks_are_shown_in_plain_words_with_the_obs_setting_that_fixes_them() {
    if !require_tool("ffmpeg") {
        return;
    }
    let server = Server::start(Options::default());
    let alice_key = server.add_user("Alice", true);
    let bob_key = server.add_user("Bob", false);
    let _alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let mut events = Events::open(&server).await;
    let _bob = LiveEncoder::with(&server.rtmp_url(&bob_key), 240, false);
    server.wait_for_queue(&["Alice", "Bob"]).await;

    // The interval is known at the second keyframe, 8 s in.
    let checks = |status: &Value| -> Vec<String> {
        status["queue"][0]["health"]["advice"]
            .as_array()
            .map(|a| a.iter().map(|a| a["check"].as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = server.get_json("/api/v1/status").await;
        if checks(&status).contains(&"keyframe_interval".to_owned()) {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "the interval was never judged: {status}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(checks(&status), ["audio", "keyframe_interval"], "{status}");
    let advice = &status["queue"][0]["health"]["advice"];
    assert_eq!(advice[1]["problem"], "Keyframe interval is 8 s");
    assert_eq!(advice[1]["fix"], "OBS Settings → Output → Keyframe Interval → 2 (Output Mode: Advanced)");
    assert_eq!(advice[0]["problem"], "No sound is arriving");
    assert!(checks(&json!({"queue": [status["on_air"]]})).is_empty(), "Alice's stream is fine: {status}");

    let stats = events
        .next("stats", |s| {
            s["publishers"].as_array().is_some_and(|p| {
                p.iter().any(|p| p["dj_name"] == "Bob" && p["advice"].as_array().is_some_and(|a| a.len() == 2))
            })
        })
        .await;
    assert!(stats.to_string().contains("Keyframe Interval → 2"), "{stats}");

    let bob = Browser::new(&server);
    bob.log_in("Bob", PASSWORD).await;
    let (_, dashboard) = bob.get("/dashboard").await;
    assert!(dashboard.contains("You're up next"), "Bob is next after Alice");
    let check = &dashboard[dashboard.find(r#"id="stream-check""#).expect("the stream check section")..];
    assert!(!check[..check.find('>').unwrap()].contains("hidden"), "shown while queued");
    assert!(check.contains("Keyframe interval is 8 s"), "{check}");
    assert!(check.contains("OBS Settings → Output → Keyframe Interval → 2 (Output Mode: Advanced)"));
    assert!(check.contains("No sound is arriving"));

    let admin = Browser::new(&server);
    admin.log_in("Alice", PASSWORD).await;
    let (_, console) = admin.get("/admin").await;
    let row = &console[console.find(r#"<tr data-dj="Bob">"#).expect("Bob's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("Keyframe interval is 8 s") && row.contains("No sound is arriving"), "{row}");
}
