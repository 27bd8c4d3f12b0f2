//! The web pages in a real browser (headless Chromium over WebDriver) against the real server,
//! with real RTMP publishers: what a DJ, an organiser and a stream overlay see.
//! Screenshots of every page land in `<target>/screenshots/`.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::harness::{Options, PASSWORD, Server, require_tool};
use crate::interop::ffmpeg_publish;
use crate::publisher::Dj;
use crate::webdriver::{Driver, Read, Viewport};

/// Pages follow the server over SSE: a change must show within this without a reload. A page
/// that only catches up on a slow poll or a reload fails.
const LIVE: Duration = Duration::from_secs(5);

/// `ffmpeg -re -stream_loop -1 -i fixture -c copy -f flv URL`: a real encoder publishing in
/// real time, as OBS would. Killed when dropped, also when the test fails.
pub(crate) struct Ffmpeg(Child);

impl Ffmpeg {
    pub(crate) fn publish(url: &str) -> Self {
        Self(ffmpeg_publish(url))
    }
}

impl Drop for Ffmpeg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mm:ss` as the timers show it (sets here are shorter than an hour).
fn is_mm_ss(s: &str) -> bool {
    time_parts(s).is_some_and(|(_, ss)| ss < "60")
}

/// `HH:MM` as a wall clock shows it.
fn is_hh_mm(s: &str) -> bool {
    time_parts(s).is_some_and(|(hh, mm)| hh.len() == 2 && hh < "24" && mm < "60")
}

/// `a:bb`: one or two digits, a colon, two digits.
fn time_parts(s: &str) -> Option<(&str, &str)> {
    let (a, b) = s.trim().split_once(':')?;
    let digits = |p: &str| (1..=2).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit());
    (digits(a) && digits(b) && b.len() == 2).then_some((a, b))
}

/// Cheap check of the harness itself against a page that predates the web UI: the seed's
/// `/queue-list` picks up a DJ who starts publishing after the page was opened.
#[tokio::test]
async fn queue_list_page_follows_a_publishing_dj() {
    let Some(driver) = Driver::start().await else { return };
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", false);
    let browser = driver.session("overlay", &server.url(""), Viewport::Desktop).await;
    browser.goto("/queue-list").await;
    browser.wait_for_all("ol#queue li", Read::Text, LIVE, |names| names.is_empty()).await;

    let alice = Dj::publish(server.rtmp, &key).await.expect("publish");
    server.wait_for_queue(&["Alice"]).await;
    browser.wait_for_all("ol#queue li", Read::Text, LIVE, |names| names == ["Alice"]).await;
    browser.screenshot_over_video("queue-list").await;

    alice.stop().await;
    browser.wait_for_all("ol#queue li", Read::Text, LIVE, |names| names.is_empty()).await;
    browser.close().await;
}

/// The acceptance path of the web UI: a new DJ signs up, gets a key that works in an encoder
/// at once, sees themself go on air live; an organiser skips them from the admin console and
/// the DJ's dashboard and the stream overlay follow without a reload.
#[tokio::test]
async fn signup_to_on_air_then_admin_skips() {
    const NEW_DJ: &str = "Newcomer";
    const NEW_EMAIL: &str = "newcomer@example.org";
    if !require_tool("ffmpeg") {
        return;
    }
    let Some(driver) = Driver::start().await else { return };
    // A set of 15 minutes keeps the "mm:ss" timers under an hour, where the format is plain.
    let server = Server::start(Options { swap_interval: 900, ..Options::default() });
    let base = server.url("");
    server.add_user("Organiser", true);
    let second_key = server.add_user("Second", false);

    // A new DJ signs up and finds what to put into OBS on the dashboard.
    let dj = driver.session("A (new DJ)", &base, Viewport::Desktop).await;
    let signup_started = Instant::now();
    dj.goto("/signup").await;
    dj.wait_present("form#signup").await;
    dj.screenshot("signup").await;
    dj.fill("#signup input[name=dj_name]", NEW_DJ).await;
    dj.fill("#signup input[name=email]", NEW_EMAIL).await;
    dj.fill("#signup input[name=password]", PASSWORD).await;
    dj.click("#signup-submit").await;
    dj.wait_path("/dashboard").await;
    let key = dj.wait_attr("#stream-key", "value", |v| !v.trim().is_empty()).await.trim().to_owned();
    let server_url =
        dj.wait_text("#server-url", |t| t.trim().starts_with("rtmp://") && t.trim().ends_with("/live")).await;
    let server_url = server_url.trim().to_owned();
    let to_key = signup_started.elapsed();
    eprintln!("sign-up page opened -> stream key visible on the dashboard: {to_key:?}");
    assert!(to_key < Duration::from_secs(60), "a new DJ should see their key within a minute, took {to_key:?}");
    for css in ["#copy-server-url", "#copy-stream-key", "#obs-steps li", "form#track-form", "canvas#upload-graph"] {
        dj.wait_present(css).await;
    }
    dj.wait_attr("#live-status", "data-state", |s| s == "offline").await;
    dj.screenshot("dashboard").await;

    dj.goto("/settings").await;
    for css in
        ["form#profile-form", "form#picture-form", "form#password-form", "form#regenerate-key-form", "form#delete-form"]
    {
        dj.wait_present(css).await;
    }
    dj.screenshot("settings").await;
    dj.goto("/dashboard").await;
    dj.wait_attr("#stream-key", "value", |v| v.trim() == key).await;

    // The DJ publishes with exactly what the dashboard shows, and the dashboard follows.
    let _dj_stream = Ffmpeg::publish(&format!("{server_url}/{key}"));
    server.wait_for_queue(&[NEW_DJ]).await;
    dj.wait_for("#live-status", Read::Attr("data-state"), LIVE, |s| s == "on_air").await;
    dj.wait_text("#time-left", is_mm_ss).await;
    let _second_stream = Ffmpeg::publish(&server.rtmp_url(&second_key));
    server.wait_for_queue(&[NEW_DJ, "Second"]).await;
    dj.wait_attr("#live-status", "data-state", |s| s == "on_air").await;
    dj.screenshot("dashboard-on-air").await;

    // The same account on a phone, in a separate browser: logging in by e-mail shows the same key.
    let phone = driver.session("phone (new DJ)", &base, Viewport::Phone).await;
    phone.goto("/login").await;
    // The system's dark theme applies (the stylesheet's `--bg` in dark mode).
    phone.wait_for("body", Read::Css("background-color"), LIVE, |c| c == "rgba(15, 17, 23, 1)").await;
    phone.fill("#login input[name=username]", NEW_EMAIL).await;
    phone.fill("#login input[name=password]", "not the password").await;
    phone.click("#login-submit").await;
    phone.wait_text(".error[role=alert]", |t| t.contains("Incorrect email or password")).await;
    phone.wait_path("/login").await;
    phone.screenshot("login-refused-phone").await;
    phone.fill("#login input[name=username]", NEW_EMAIL).await;
    phone.fill("#login input[name=password]", PASSWORD).await;
    phone.click("#login-submit").await;
    phone.wait_path("/dashboard").await;
    phone.wait_attr("#stream-key", "value", |v| v.trim() == key).await;
    phone.wait_attr("#live-status", "data-state", |s| s == "on_air").await;
    phone.screenshot("dashboard-phone").await;
    // Not an admin: the console's controls are not for them.
    phone.goto("/admin").await;
    phone.assert_absent("#skip").await;
    phone.screenshot("admin-refused-phone").await;
    phone.close().await;

    // The overlays a streamer puts into OBS.
    let overlay = driver.session("overlays", &base, Viewport::Desktop).await;
    overlay.goto("/password-reset").await;
    overlay.wait_text("#reset-request-submit", |t| !t.trim().is_empty()).await;
    overlay.screenshot("password-reset").await;
    overlay.goto("/overlays").await;
    overlay.wait_text("main", |t| t.contains("/overlay/now")).await;
    overlay.screenshot("overlays-index").await;
    overlay.goto("/overlay/next").await;
    overlay.wait_text("#up-next-name", |t| t.trim() == "Second").await;
    overlay.screenshot_over_video("overlay-next").await;
    overlay.goto("/overlay/queue").await;
    overlay.wait_for_all("ol#queue-list li", Read::Text, LIVE, |names| names == [NEW_DJ, "Second"]).await;
    overlay.screenshot_over_video("overlay-queue").await;
    overlay.goto("/overlay/timer").await;
    overlay.wait_text("#timer", is_mm_ss).await;
    overlay.screenshot_over_video("overlay-timer").await;
    overlay.goto("/overlay/clock").await;
    overlay.wait_text("#clock", is_hh_mm).await;
    overlay.screenshot_over_video("overlay-clock").await;
    overlay.goto("/overlay/clock?tz=Europe/Paris").await;
    overlay.wait_text("#clock", is_hh_mm).await;
    overlay.screenshot_over_video("overlay-clock-paris").await;
    overlay.goto("/overlay/now").await;
    overlay.wait_text("#on-air-name", |t| t.trim() == NEW_DJ).await;
    overlay.wait_text("#on-air-time", is_mm_ss).await;
    // OBS composites the page over the video: only the text may be opaque.
    for css in ["html", "body"] {
        overlay.wait_for(css, Read::Css("background-color"), LIVE, |c| c == "rgba(0, 0, 0, 0)").await;
    }
    let markup = overlay.source().await;
    assert!(!markup.contains(&key) && !markup.contains(&second_key), "a stream key on a public overlay");
    overlay.screenshot_over_video("overlay-now").await;

    // The DJ says what is playing; the overlay shows it.
    dj.fill("#track-form input[name=artist]", "Moodymann").await;
    dj.fill("#track-form input[name=title]", "Shades of Jae").await;
    dj.click("#track-submit").await;
    dj.wait_path("/dashboard").await;
    dj.wait_text("#current-track", |t| t.contains("Moodymann") && t.contains("Shades of Jae")).await;
    overlay
        .wait_for("#on-air-track", Read::Text, LIVE, |t| t.contains("Moodymann") && t.contains("Shades of Jae"))
        .await;
    // Scenes can style recognised tracks apart from the ones DJs name.
    overlay.wait_for("#on-air-track", Read::Attr("data-source"), LIVE, |s| s == "dj").await;
    overlay.screenshot_over_video("overlay-now-track").await;

    // The organiser logs in on the way to the console and skips the set.
    let admin = driver.session("B (organiser)", &base, Viewport::Desktop).await;
    admin.goto("/admin").await;
    admin.wait_path("/login").await;
    admin.screenshot("login").await;
    admin.fill("#login input[name=username]", "Organiser").await;
    admin.fill("#login input[name=password]", PASSWORD).await;
    admin.click("#login-submit").await;
    admin.wait_path("/admin").await;
    admin.wait_for_all("#queue-table tr[data-dj]", Read::Attr("data-dj"), LIVE, |djs| djs == [NEW_DJ, "Second"]).await;
    admin.wait_text("#live-status", |t| t.contains(NEW_DJ)).await;
    admin
        .wait_for_all("#users-table tr[data-user]", Read::Attr("data-user"), LIVE, |users| {
            ["Organiser", "Second", NEW_DJ].iter().all(|u| users.iter().any(|have| have == u))
        })
        .await;
    admin.wait_present("#destinations").await;
    admin.screenshot("admin").await;
    let skipped_at = Instant::now();
    admin.click("#skip").await;

    // Everyone else's page follows on its own.
    let state = dj.wait_for("#live-status", Read::Attr("data-state"), LIVE, |s| s != "on_air").await;
    overlay.wait_for("#on-air-name", Read::Text, LIVE, |t| t.trim() == "Second").await;
    eprintln!("skip -> dashboard ({state}) and overlay updated: {:?}", skipped_at.elapsed());
    server.wait_for_queue(&["Second"]).await;
    admin.wait_for_all("#queue-table tr[data-dj]", Read::Attr("data-dj"), LIVE, |djs| djs == ["Second"]).await;
    admin.wait_text("#live-status", |t| t.contains("Second")).await;
    dj.screenshot("dashboard-after-skip").await;
    overlay.screenshot_over_video("overlay-now-after-skip").await;
    admin.screenshot("admin-after-skip").await;

    dj.goto("/sets").await;
    dj.wait_path("/sets").await;
    // The page's script shows each set's start in the DJ's time zone, named.
    dj.wait_attr("time[data-unix]", "datetime", |iso| iso.ends_with('Z')).await;
    dj.screenshot("sets").await;

    admin.click("#logout-submit").await;
    admin.wait_path("/login").await;
    admin.goto("/admin").await;
    admin.wait_path("/login").await;

    for browser in [dj, overlay, admin] {
        browser.close().await;
    }
}

/// Logs `name` in through the login page and lands on `path`.
async fn log_in(browser: &crate::webdriver::Browser, name: &str, path: &str) {
    browser.goto(path).await;
    browser.wait_path("/login").await;
    browser.fill("#login input[name=username]", name).await;
    browser.fill("#login input[name=password]", PASSWORD).await;
    browser.click("#login-submit").await;
    browser.wait_path(path).await;
}

/// Opens `path` again until `css` is on it (for parts a page does not update live).
async fn reload_until(browser: &crate::webdriver::Browser, path: &str, css: &str) {
    let script = format!("return document.querySelector({css:?}) !== null;");
    let deadline = Instant::now() + LIVE * 4;
    browser.goto(path).await;
    while browser.execute(&script).await != serde_json::json!(true) {
        assert!(Instant::now() < deadline, "{css} never showed on {path}");
        tokio::time::sleep(Duration::from_millis(250)).await;
        browser.goto(path).await;
    }
}

/// A planned night (issue 14): an organiser books a hard-start slot on the admin console, the
/// booked DJ sees it on their dashboard and goes on air at its start (cutting the walk-in),
/// a second DJ joins the set back to back and takes over from their own dashboard, the
/// viewer-facing overlay names both, and the DJ waiting next sees "You're up next".
#[tokio::test]
async fn booked_slot_then_back_to_back_take_over_with_up_next() {
    if !require_tool("ffmpeg") {
        return;
    }
    let Some(driver) = Driver::start().await else { return };
    let server = Server::start(Options { swap_interval: 900, ..Options::default() });
    let base = server.url("");
    server.add_user("Organiser", true);
    let keys: Vec<String> = ["Dave", "Carol", "Alice", "Bob"].iter().map(|n| server.add_user(n, false)).collect();
    let [dave, carol, alice, bob] = [0, 1, 2, 3].map(|i| server.rtmp_url(&keys[i]));

    // A walk-in is on air; Carol and the DJ to be booked wait.
    let _dave = Ffmpeg::publish(&dave);
    server.wait_for_queue(&["Dave"]).await;
    let _carol = Ffmpeg::publish(&carol);
    server.wait_for_queue(&["Dave", "Carol"]).await;
    let _alice = Ffmpeg::publish(&alice);
    server.wait_for_queue(&["Dave", "Carol", "Alice"]).await;

    // The organiser books Alice at the next minute at least 25 s away (the form takes
    // minutes), with a hard start, entered in the browser's own time.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let start = (now + 25).div_ceil(60) * 60;
    let admin = driver.session("organiser", &base, Viewport::Desktop).await;
    log_in(&admin, "Organiser", "/admin").await;
    admin.fill("#booking-form input[name=dj_name]", "Alice").await;
    admin
        .execute(&format!(
            "const d = new Date({start} * 1000), p = (n) => String(n).padStart(2, '0');
             document.querySelector('#booking-form input[name=start]').value =
               `${{d.getFullYear()}}-${{p(d.getMonth() + 1)}}-${{p(d.getDate())}}T${{p(d.getHours())}}:${{p(d.getMinutes())}}`;"
        ))
        .await;
    admin.fill("#booking-form input[name=minutes]", "30").await;
    admin.click("#booking-form input[name=hard_start]").await;
    admin.click("#book").await;
    admin.wait_path("/admin").await;
    admin.wait_for_all("#bookings-table tr[data-booking] strong", Read::Text, LIVE, |djs| djs == ["Alice"]).await;
    admin.screenshot("admin-booked").await;

    // Alice sees her slot, and so does everyone on the timetable.
    let alice_page = driver.session("Alice", &base, Viewport::Desktop).await;
    log_in(&alice_page, "Alice", "/dashboard").await;
    alice_page.wait_attr("#bookings time[data-unix]", "data-unix", |t| t == start.to_string()).await;
    alice_page.screenshot("dashboard-booked").await;
    let viewer = driver.session("viewer", &base, Viewport::Desktop).await;
    viewer.goto("/timetable").await;
    viewer.wait_text("#timetable tr[data-booking] strong", |t| t.trim() == "Alice").await;
    viewer.screenshot("timetable").await;

    // The slot opens: Alice goes on air at once, Carol is still next.
    let until_start = Duration::from_secs(start)
        .saturating_sub(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock"));
    tokio::time::sleep(until_start.saturating_sub(Duration::from_secs(2))).await;
    assert_eq!(server.queue().await, ["Dave", "Carol", "Alice"], "nothing moves before the slot");
    server.wait_for_queue(&["Alice", "Carol"]).await;
    let aired = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    assert!(aired >= start, "Alice went on air at {aired}, before her slot at {start}");
    assert!(aired <= start + 10, "Alice went on air at {aired}, well after her slot at {start}");
    alice_page.wait_for("#live-status", Read::Attr("data-state"), LIVE, |s| s == "on_air").await;

    // Carol waits next and is told so on her dashboard.
    let carol_page = driver.session("Carol", &base, Viewport::Desktop).await;
    log_in(&carol_page, "Carol", "/dashboard").await;
    carol_page.wait_text("#live-status-text", |t| t.contains("You're up next")).await;
    carol_page.screenshot("dashboard-up-next").await;

    // Alice adds Bob to her set; Bob starts streaming and takes over from his dashboard.
    alice_page.goto("/dashboard").await;
    alice_page.fill("#b2b-dj", "Bob").await;
    alice_page.click("#b2b-add button[type=submit]").await;
    alice_page.wait_path("/dashboard").await;
    alice_page.wait_present("#b2b-members li[data-dj=Bob]").await;
    let _bob = Ffmpeg::publish(&bob);
    let bob_page = driver.session("Bob", &base, Viewport::Desktop).await;
    log_in(&bob_page, "Bob", "/dashboard").await;
    // The set card is drawn by the server: reloaded until Bob's stream has arrived.
    let take_over = "#b2b-members li[data-dj=Bob] button[data-action=handover]";
    reload_until(&bob_page, "/dashboard", take_over).await;
    bob_page.screenshot("dashboard-b2b-standing-by").await;
    bob_page.click(take_over).await;
    bob_page.screenshot("dashboard-b2b-after-take-over").await;
    reload_until(&bob_page, "/dashboard", "#b2b-members li[data-dj=Bob][data-on-air=true]").await;
    bob_page.screenshot("dashboard-b2b-on-air").await;

    // The viewers' overlay names both DJs of the set; Carol is still next.
    viewer.goto("/overlay/now").await;
    viewer.wait_text("#on-air-name", |t| t.contains("Alice") && t.contains("Bob")).await;
    viewer.screenshot_over_video("overlay-now-b2b").await;
    carol_page.wait_text("#live-status-text", |t| t.contains("You're up next")).await;

    for browser in [admin, alice_page, viewer, carol_page, bob_page] {
        browser.close().await;
    }
}
