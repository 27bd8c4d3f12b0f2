//! The timetable over HTTP and over RTMP: booking rights, overlaps, the public feeds, and a
//! booked DJ going on air at the booked start (docs/timetable.md).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::{Options, PATIENCE, Server};
use crate::publisher::Dj;

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn slot(dj_name: &str, start: i64, length_secs: i64, hard_start: bool) -> Value {
    json!({ "dj_name": dj_name, "start": start, "length_secs": length_secs, "hard_start": hard_start })
}

async fn send(server: &Server, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
    let resp = reqwest::Client::new().request(method, server.url(path)).bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admins_book_djs_and_strangers_cannot_and_overlaps_conflict() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    server.add_user("Alice", false);
    server.add_user("Bob", false);
    let admin = server.token("admin@example.org").await;
    let alice = server.token("alice@example.org").await;
    let start = unix_now() + 3600;

    let (status, _) = server.post("/api/v1/bookings", None, Some(slot("Alice", start, 3600, false))).await;
    assert_eq!(status, 401, "anonymous");
    let (status, body) = server.post("/api/v1/bookings", Some(&alice), Some(slot("Alice", start, 3600, false))).await;
    assert_eq!(status, 403, "a DJ, with requests off: {body}");
    let (status, booking) = server.post("/api/v1/bookings", Some(&admin), Some(slot("Alice", start, 3600, true))).await;
    assert_eq!(status, 201, "{booking}");
    assert_eq!(booking["status"], "approved");
    let (status, body) =
        server.post("/api/v1/bookings", Some(&admin), Some(slot("Bob", start + 1800, 3600, false))).await;
    assert_eq!(status, 409, "overlap: {body}");
    let (status, _) =
        server.post("/api/v1/bookings", Some(&admin), Some(slot("Nobody", start + 7200, 60, false))).await;
    assert_eq!(status, 404);
    let (status, _) = server.post("/api/v1/bookings", Some(&admin), Some(slot("Bob", start + 7200, 0, false))).await;
    assert_eq!(status, 400);
    let (status, _) = server.post("/api/v1/bookings", Some(&admin), Some(slot("Bob", start + 3600, 1800, false))).await;
    assert_eq!(status, 201, "back to back");

    let public = server.get_json("/api/v1/timetable?days=2").await;
    let listed = public["bookings"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["dj_name"], "Alice");
    assert_eq!(listed[0]["start"], start);
    assert_eq!(listed[0]["end"], start + 3600);
    assert_eq!(listed[0]["hard_start"], true);
    let mut fields: Vec<&str> = listed[0].as_object().unwrap().keys().map(String::as_str).collect();
    fields.sort();
    assert_eq!(fields, ["dj_name", "end", "hard_start", "id", "start"], "no private fields");
    let text = public.to_string();
    assert!(!text.contains("example.org") && !text.contains("key-"), "{text}");
    let resp = reqwest::get(server.url("/api/v1/timetable?days=0")).await.unwrap();
    assert_eq!(resp.status(), 400);

    let (status, _) = send(&server, reqwest::Method::GET, "/api/v1/bookings", &alice).await;
    assert_eq!(status, 403, "the admin listing is for admins");
    let id = booking["id"].as_i64().unwrap();
    let (status, _) = send(&server, reqwest::Method::DELETE, &format!("/api/v1/bookings/{id}"), &alice).await;
    assert_eq!(status, 403);
    let (status, _) = send(&server, reqwest::Method::DELETE, &format!("/api/v1/bookings/{id}"), &admin).await;
    assert_eq!(status, 200);
    let (status, _) = send(&server, reqwest::Method::DELETE, &format!("/api/v1/bookings/{id}"), &admin).await;
    assert_eq!(status, 404);
    let public = server.get_json("/api/v1/timetable").await;
    assert_eq!(public["bookings"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_ical_feed_has_one_event_per_approved_booking() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    server.add_user("Alice", false);
    let admin = server.token("admin@example.org").await;
    let start = unix_now() + 86_400;
    let (status, _) = server.post("/api/v1/bookings", Some(&admin), Some(slot("Alice", start, 5400, false))).await;
    assert_eq!(status, 201);
    let resp = reqwest::get(server.url("/timetable.ics")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/calendar"));
    let body = resp.text().await.unwrap();
    assert!(body.ends_with("\r\n") && !body.replace("\r\n", "").contains('\n'), "CRLF only");
    let lines: Vec<&str> = body.trim_end().split("\r\n").collect();
    assert_eq!(lines.first(), Some(&"BEGIN:VCALENDAR"));
    assert_eq!(lines.last(), Some(&"END:VCALENDAR"));
    assert!(lines.iter().all(|line| line.len() <= 75));
    assert_eq!(lines.iter().filter(|l| **l == "BEGIN:VEVENT").count(), 1);
    assert!(lines.contains(&"SUMMARY:Alice"), "{body}");
    for property in ["UID:booking-", "DTSTAMP:", "DTSTART:", "DTEND:"] {
        let line = lines.iter().find(|l| l.starts_with(property)).unwrap_or_else(|| panic!("{property} in {body}"));
        if property != "UID:booking-" {
            assert!(line.ends_with('Z') && line.len() == property.len() + 16, "{line}");
        }
    }
}

#[tokio::test]
async fn dj_requests_count_once_an_admin_approves_them() {
    let server = Server::start(Options { config: Some("[timetable]\nrequests = true\n".into()), ..Options::default() });
    server.add_user("Admin", true);
    server.add_user("Alice", false);
    server.add_user("Bob", false);
    let admin = server.token("admin@example.org").await;
    let alice = server.token("alice@example.org").await;
    let start = unix_now() + 3600;
    let (status, _) = server.post("/api/v1/bookings", Some(&alice), Some(slot("Bob", start, 600, false))).await;
    assert_eq!(status, 403, "for herself only");
    let (status, request) = server.post("/api/v1/bookings", Some(&alice), Some(slot("Alice", start, 600, true))).await;
    assert_eq!(status, 201);
    assert_eq!(request["status"], "requested");
    assert!(server.get_json("/api/v1/timetable").await["bookings"].as_array().unwrap().is_empty());
    let id = request["id"].as_i64().unwrap();
    let (status, _) = server.post(&format!("/api/v1/bookings/{id}/approve"), Some(&alice), None).await;
    assert_eq!(status, 403);
    let (status, _) = server.post(&format!("/api/v1/bookings/{id}/approve"), Some(&admin), None).await;
    assert_eq!(status, 200);
    let listed = server.get_json("/api/v1/timetable").await;
    assert_eq!(listed["bookings"][0]["dj_name"], "Alice");
    // The queue reloads the timetable after the change; the status and overlays read its copy.
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        let status = server.get_json("/api/v1/status").await;
        if status["upcoming_bookings"].as_array().is_some_and(|b| !b.is_empty()) || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["upcoming_bookings"][0]["dj_name"], "Alice", "{status}");
    assert_eq!(status["upcoming_bookings"][0]["start"], start);
    let overlay = reqwest::get(server.url("/overlay/next")).await.unwrap().text().await.unwrap();
    assert!(overlay.contains(&format!("<li>Booked: Alice <time data-unix=\"{start}\">")), "{overlay}");
}

#[tokio::test]
async fn a_booked_dj_streaming_goes_on_air_at_the_booked_start() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    let walk_in = server.add_user("Alice", false);
    let booked = server.add_user("Bob", false);
    let admin = server.token("admin@example.org").await;
    let _alice = Dj::publish(server.rtmp, &walk_in).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let _bob = Dj::publish(server.rtmp, &booked).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;

    let start = unix_now() + 4;
    let (status, body) = server.post("/api/v1/bookings", Some(&admin), Some(slot("Bob", start, 600, true))).await;
    assert_eq!(status, 201, "{body}");
    // The walk-in's set is cut to end at the booked start.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let remaining = server.get_json("/api/v1/status").await["remaining_time"].as_i64().unwrap_or(3600);
        if remaining <= 5 {
            break;
        }
        assert!(Instant::now() < deadline, "the walk-in's set was not cut: {remaining}s left");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(server.queue().await, ["Alice", "Bob"], "nobody moves before the start");
    server.wait_for_queue(&["Bob"]).await;
    let on_air_at = unix_now();
    assert!((start..=start + 2).contains(&on_air_at), "on air at {on_air_at}, booked at {start}");
    let status = server.get_json("/api/v1/status").await;
    assert_eq!(status["on_air"]["dj_name"], "Bob");
    let remaining = status["remaining_time"].as_i64().unwrap();
    assert!((597..=600).contains(&remaining), "the booked length: {remaining}");
}

/// A browser session of `login`, with the CSRF value its forms send.
async fn browser(server: &Server, login: &str) -> reqwest::Client {
    let csrf = "f".repeat(64);
    let session = server.page_session(login, &csrf).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("cookie", format!("ms_csrf={csrf}; ms_session={session}").parse().unwrap());
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).default_headers(headers).build().unwrap()
}

#[tokio::test]
async fn an_admin_books_on_the_console_and_everybody_sees_it_on_the_page() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    server.add_user("Alice", false);
    let admin = browser(&server, "admin").await;
    let csrf = "f".repeat(64);
    // Tomorrow at 22:00 UTC.
    let day = (unix_now() / 86_400 + 1) * 86_400;
    let start = day + 22 * 3600;
    let (y, m, d) = motherstream::calendar::civil_from_days(day / 86_400);
    let local = format!("{y:04}-{m:02}-{d:02}T22:00");
    let form = [("csrf", csrf.as_str()), ("dj_name", "Alice"), ("start", &local), ("minutes", "90")];
    let resp = admin.post(server.url("/admin/bookings")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let resp = admin.post(server.url("/admin/bookings")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 409, "the same slot again");
    let console = admin.get(server.url("/admin")).send().await.unwrap().text().await.unwrap();
    assert!(console.contains(&format!("data-unix=\"{start}\"")), "the console lists it");

    let page = reqwest::get(server.url("/timetable")).await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("<strong>Alice</strong>"), "{page}");
    assert!(page.contains(&format!("<time data-unix=\"{start}\">")), "UTC seconds for the browser to localise");
    assert!(page.contains(&format!("<time data-unix=\"{}\">", start + 5400)));

    // A DJ's session cannot book.
    let dj = browser(&server, "alice").await;
    let resp = dj.post(server.url("/admin/bookings")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(server.get_json("/api/v1/timetable?days=3").await["bookings"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_default_set_length_set_on_the_console_is_the_walk_in_set_length() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    let key = server.add_user("Alice", false);
    let admin = browser(&server, "admin").await;
    let csrf = "f".repeat(64);
    let form = [("csrf", csrf.as_str()), ("dj_name", "Alice"), ("minutes", "20")];
    let resp = admin.post(server.url("/admin/set-length")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let console = admin.get(server.url("/admin")).send().await.unwrap().text().await.unwrap();
    assert!(console.contains("<strong>Alice</strong>: 20 min"), "the console lists it");

    // The actor reloads the lengths after the change; a publish right after may race it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _alice = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let remaining = server.get_json("/api/v1/status").await["remaining_time"].as_i64().unwrap();
    assert!((1195..=1200).contains(&remaining), "a 20-minute set: {remaining}");
}

#[tokio::test]
async fn djs_ask_for_slots_on_their_dashboard_when_the_channel_allows_it() {
    let closed = Server::start(Options::default());
    closed.add_user("Alice", false);
    let alice = browser(&closed, "alice").await;
    let csrf = "f".repeat(64);
    let form = [("csrf", csrf.as_str()), ("start", "2099-01-01T20:00"), ("minutes", "60")];
    let resp = alice.post(closed.url("/dashboard/booking")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let dashboard = alice.get(closed.url("/dashboard")).send().await.unwrap().text().await.unwrap();
    assert!(!dashboard.contains("booking-request-form"), "no form where requests are off");

    let open = Server::start(Options { config: Some("[timetable]\nrequests = true\n".into()), ..Options::default() });
    open.add_user("Alice", false);
    let alice = browser(&open, "alice").await;
    let day = (unix_now() / 86_400 + 2) * 86_400;
    let (y, m, d) = motherstream::calendar::civil_from_days(day / 86_400);
    let start = format!("{y:04}-{m:02}-{d:02}T20:00");
    let form = [("csrf", csrf.as_str()), ("start", &start), ("minutes", "60")];
    let resp = alice.post(open.url("/dashboard/booking")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let dashboard = alice.get(open.url("/dashboard")).send().await.unwrap().text().await.unwrap();
    assert!(dashboard.contains(&format!("data-unix=\"{}\"", day + 20 * 3600)), "her slot is listed");
    assert!(dashboard.contains("requested"));
    assert!(open.get_json("/api/v1/timetable").await["bookings"].as_array().unwrap().is_empty(), "not approved yet");
}

#[tokio::test]
async fn an_organiser_books_in_a_browser_in_their_own_time_and_viewers_see_it() {
    let Some(driver) = crate::webdriver::Driver::start().await else { return };
    let server = Server::start(Options::default());
    server.add_user("Organiser", true);
    server.add_user("Alice", false);
    let base = server.url("");
    let admin = driver.session("organiser", &base, crate::webdriver::Viewport::Desktop).await;
    admin.goto("/login").await;
    admin.fill("#login input[name=username]", "organiser").await;
    admin.fill("#login input[name=password]", crate::harness::PASSWORD).await;
    admin.click("#login-submit").await;
    admin.wait_path("/dashboard").await;
    admin.goto("/admin").await;
    admin.wait_text("#booking-form [data-zone]", |t| t == "(your time)").await;

    // Tomorrow 22:00 in the browser's time; what that is in UTC, the browser says.
    let day = (unix_now() / 86_400 + 1) * 86_400;
    let (y, m, d) = motherstream::calendar::civil_from_days(day / 86_400);
    let local = format!("{y:04}-{m:02}-{d:02}T22:00");
    let expected = admin.execute(&format!("return new Date('{local}').getTime() / 1000;")).await.as_i64().unwrap();
    admin.execute(&format!("document.querySelector('#booking-form input[name=start]').value = '{local}';")).await;
    admin.fill("#booking-form input[name=dj_name]", "Alice").await;
    admin.click("#book").await;
    admin.wait_present(&format!("#bookings-table time[data-unix=\"{expected}\"]")).await;
    let listed = server.get_json("/api/v1/timetable?days=3").await;
    assert_eq!(listed["bookings"][0]["start"], expected, "{listed}");

    // A viewer's page shows it, with the time written by the browser.
    let viewer = driver.session("viewer", &base, crate::webdriver::Viewport::Phone).await;
    viewer.goto("/timetable").await;
    let iso = viewer.execute(&format!("return new Date({expected} * 1000).toISOString();")).await;
    viewer.wait_attr("#timetable time", "datetime", |v| Some(v) == iso.as_str()).await;
    viewer.wait_text("#timetable tbody td:nth-child(3)", |t| t.trim() == "Alice").await;
    viewer.close().await;
    admin.close().await;
}

#[tokio::test]
async fn after_a_restart_in_the_middle_of_a_booked_slot_the_set_still_ends_with_it() {
    let server = Server::start(Options { grace_period: 30, ..Options::default() });
    server.add_user("Admin", true);
    let key = server.add_user("Bob", false);
    let admin = server.token("admin@example.org").await;
    let start = unix_now() + 1;
    let end = start + 600;
    let (status, _) = server.post("/api/v1/bookings", Some(&admin), Some(slot("Bob", start, 600, true))).await;
    assert_eq!(status, 201);
    let bob = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Bob"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    let server = server.restart();
    drop(bob);
    // Down, then back but not reclaimed yet: none of this moves the slot's end.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let _bob = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Bob"]).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = server.get_json("/api/v1/status").await;
        let remaining = status["remaining_time"].as_i64().unwrap_or(0);
        let expected = end - unix_now();
        if status["on_air"]["state"] == "live" && (remaining - expected).abs() <= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{remaining}s left, the slot ends in {expected}s: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
