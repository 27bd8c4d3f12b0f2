//! "You're up next" beyond the dashboard (issue 14): the email for a DJ who asked for it,
//! the Discord message mentioning the DJ who linked their user id, both saying what is
//! wrong with the DJ's stream at that moment; and nothing of it for a DJ who did not ask.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Options, PASSWORD, Server, require_tool};
use crate::limits::LiveEncoder;
use crate::publisher::Dj;
use crate::smtp_sink::SmtpSink;
use crate::web::Browser;
use crate::webhook::{Recorded, Webhook};

const DISCORD_ID: &str = "123456789012345678";

/// The set length: the up-next notice comes `swap - 300` s after the lead went on air.
fn options(sink: &SmtpSink, webhook: &Webhook, swap_interval: u64) -> Options {
    Options {
        swap_interval,
        config: Some(format!("{}public_url = \"https://radio.example.org\"\n", sink.config())),
        extra_args: crate::harness::discord_args(webhook.url()),
        ..Options::default()
    }
}

/// The first webhook message saying someone is up next.
async fn up_next_message(webhook: &Webhook, patience: Duration) -> Recorded {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(found) = webhook.requests().into_iter().find(|r| r.content().contains("is up next")) {
            return found;
        }
        assert!(Instant::now() < deadline, "no up-next message: {:?}", webhook.contents());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_dj_who_asked_is_emailed_and_mentioned_when_up_next_with_what_to_fix() {
    if !require_tool("ffmpeg") {
        return;
    }
    let sink = SmtpSink::start().await;
    let webhook = Webhook::start([]).await;
    // The notice comes 20 s in: Bob's keyframe interval is judged by then (8 s in).
    let server = Server::start(options(&sink, &webhook, 320));
    let alice_key = server.add_user("Alice", true);
    let bob_key = server.add_user("Bob", false);

    let bob = Browser::new(&server);
    bob.log_in("Bob", PASSWORD).await;
    let (status, page, _) =
        bob.submit("/settings", "/settings/up-next", &[("up_next_email", "on"), ("discord_user_id", "12345")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "not a snowflake");
    assert!(page.contains("17 to 20 digits"), "{page}");
    let fields = [("up_next_email", "on"), ("discord_user_id", DISCORD_ID)];
    let (status, _, location) = bob.submit("/settings", "/settings/up-next", &fields).await;
    assert_eq!((status, location.as_deref()), (StatusCode::SEE_OTHER, Some("/settings?saved=up-next")));
    let (_, page) = bob.get("/settings").await;
    assert!(page.contains(&format!(r#"value="{DISCORD_ID}""#)) && page.contains("checked"), "kept");
    let me = server.get_json_as("/api/v1/users/me", &server.token("Bob").await).await;
    assert_eq!((&me["up_next_email"], &me["discord_user_id"]), (&json!(true), &json!(DISCORD_ID)), "{me}");
    let listed: serde_json::Value = serde_json::from_slice(&server.cli(&["user", "list", "--json"]).stdout).unwrap();
    let row = listed.as_array().unwrap().iter().find(|u| u["dj_name"] == "Bob").cloned().unwrap_or_default();
    assert_eq!((&row["up_next_email"], &row["discord_user_id"]), (&json!(true), &json!(DISCORD_ID)), "{listed}");
    let admin = Browser::new(&server);
    admin.log_in("Alice", PASSWORD).await;
    let (_, console) = admin.get("/admin").await;
    let row = &console[console.find(r#"<tr data-user="Bob">"#).expect("Bob's row")..];
    assert!(row[..row.find("</tr>").unwrap()].contains(DISCORD_ID), "the admin sees Bob's choices");

    let _alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    // A keyframe every 8 s and no sound.
    let _bob = LiveEncoder::with(&server.rtmp_url(&bob_key), 240, false);
    server.wait_for_queue(&["Alice", "Bob"]).await;

    let message = up_next_message(&webhook, Duration::from_secs(60)).await;
    let content = message.content();
    assert!(content.starts_with(&format!("<@{DISCORD_ID}> 🔜 Bob is up next")), "{content}");
    assert!(content.contains("Keyframe interval is 8 s") && content.contains("No sound is arriving"), "{content}");
    assert!(content.contains("Keyframe Interval → 2"), "the OBS setting: {content}");
    assert_eq!(message.json["allowed_mentions"], json!({"parse": [], "users": [DISCORD_ID]}), "only Bob is pinged");

    let mail = sink.wait_for("bob@example.org").await;
    assert_eq!(mail.header("Subject").as_deref(), Some("You're up next on motherstream"));
    let text = mail.part("text/plain");
    assert!(text.contains("on air in about 5 minutes"), "{text}");
    assert!(text.contains("Keyframe interval is 8 s") && text.contains("No sound is arriving"), "{text}");
    assert!(text.contains("https://radio.example.org/dashboard"), "{text}");
}

#[tokio::test]
async fn a_dj_who_did_not_ask_gets_no_email_and_no_mention() {
    let sink = SmtpSink::start().await;
    let webhook = Webhook::start([]).await;
    let server = Server::start(options(&sink, &webhook, 301));
    let alice_key = server.add_user("Alice", true);
    let bob_key = server.add_user("Bob", false);
    let _alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let _bob = Dj::publish(server.rtmp, &bob_key).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;

    let message = up_next_message(&webhook, Duration::from_secs(30)).await;
    assert!(message.content().starts_with("🔜 Bob is up next"), "{}", message.content());
    assert!(!message.content().contains("<@"), "{}", message.content());
    assert_eq!(message.json["allowed_mentions"], json!({"parse": []}));
    // The email would have been queued with the Discord message; give it time to arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let to_bob: Vec<_> =
        sink.received().into_iter().filter(|m| m.rcpt_to.iter().any(|r| r == "bob@example.org")).collect();
    assert!(to_bob.is_empty(), "Bob did not ask for email: {to_bob:#?}");
}
