//! Parity with the original motherstream's HTTP surface: scenes and scripts built for it
//! keep working against ours (issue 12).

use serde_json::json;

use crate::harness::{BIN, Options, Server};
use crate::publisher::Dj;

#[tokio::test]
async fn the_originals_overlay_pages_lead_to_ours() {
    let server = Server::start(Options::default());
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (old, new) in [("/song-details", "/overlay/now"), ("/timer-page", "/overlay/timer")] {
        let resp = client.get(server.url(old)).send().await.unwrap();
        assert!(resp.status().is_redirection(), "{old}: {}", resp.status());
        assert_eq!(resp.headers()["location"], new, "{old}");
        // Query options set up in OBS carry over to the overlay.
        let resp = client.get(server.url(&format!("{old}?scale=2"))).send().await.unwrap();
        assert_eq!(resp.headers()["location"], &format!("{new}?scale=2"), "{old}");
        // And a browser source that follows redirects gets the overlay itself.
        let page = reqwest::get(server.url(old)).await.unwrap();
        assert_eq!(page.status(), 200, "{old}");
        assert!(page.text().await.unwrap().contains("<html"), "{old}");
    }
}

#[tokio::test]
async fn update_timer_accepts_what_fastapi_accepts_for_a_bool() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    let admin = server.token("admin@example.org").await;
    let truthy = ["true", "True", "TRUE", "1", "yes", "YES", "on", "On", "t", "y"];
    let falsy = ["false", "False", "0", "no", "NO", "off", "OFF", "f", "n"];
    for (values, expected) in [(&truthy[..], true), (&falsy[..], false)] {
        for value in values {
            let (status, body) = server.post(&format!("/update-timer/90?reset_time={value}"), Some(&admin), None).await;
            assert_eq!(status, 200, "reset_time={value}: {body}");
            assert_eq!(body["reset_time"], expected, "reset_time={value}");
        }
    }
    for value in ["", "2", "maybe", "truee"] {
        let (status, body) = server.post(&format!("/update-timer/90?reset_time={value}"), Some(&admin), None).await;
        assert_eq!(status, 400, "reset_time={value}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("reset_time"), "{body}");
    }
    // Without it, the clock is not reset.
    let (status, body) = server.post("/update-timer/90", Some(&admin), None).await;
    assert_eq!((status, &body["reset_time"]), (200, &json!(false)));
}

#[tokio::test]
async fn timer_data_is_zero_with_nobody_on_air() {
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", false);
    assert_eq!(server.get_json("/timer-data").await, json!({ "remaining_time": 0 }));
    // Ours still tells the interval where it is asked for.
    assert_eq!(server.get_json("/time-settings").await["swap_interval"], 3600);

    let alice = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let on_air = server.get_json("/timer-data").await["remaining_time"].as_u64().unwrap();
    assert!((3590..=3600).contains(&on_air), "{on_air}");
    alice.stop().await;
    server.wait_for_queue(&[]).await;
    assert_eq!(server.get_json("/timer-data").await, json!({ "remaining_time": 0 }));
}

#[tokio::test]
async fn block_toggle_answers_carry_the_originals_field_name() {
    let server = Server::start(Options::default());
    server.add_user("Admin", true);
    let admin = server.token("admin@example.org").await;
    let (status, body) = server.post("/block-toggle", Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["is_blocked"], &body["blocking"]), (&json!(true), &json!(true)), "{body}");
    let (status, body) = server.post("/block-toggle", Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["is_blocked"], &body["blocking"]), (&json!(false), &json!(false)), "{body}");
    let (status, body) = server.post("/update-block-toggle/", Some(&admin), Some(json!({ "is_blocked": true }))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["is_blocked"], &body["blocking"]), (&json!(true), &json!(true)), "{body}");
}

#[tokio::test]
async fn song_json_in_the_originals_shape_on_its_own_path() {
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", false);
    let empty = json!({ "song_data": {
        "song_name": null, "artist": null, "label": null, "album_cover_link": null, "confidence_level": null
    } });
    assert_eq!(server.get_json("/seed/song-json").await, empty);

    let _alice = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    let token = server.token("Alice").await;
    let track = json!({ "artist": "Moodymann", "title": "Shades of Jae" });
    let (status, body) = server.post("/api/v1/users/me/track", Some(&token), Some(track)).await;
    assert_eq!(status, 200, "{body}");

    let seed = server.get_json("/seed/song-json").await;
    assert_eq!(
        seed,
        json!({ "song_data": {
            "song_name": "Shades of Jae", "artist": "Moodymann", "label": null,
            "album_cover_link": null, "confidence_level": null
        } })
    );
    // Ours is unchanged.
    let ours = server.get_json("/song-json").await;
    assert_eq!((&ours["dj_name"], &ours["title"]), (&json!("Alice"), &json!("Shades of Jae")));
}

#[test]
fn the_originals_smtp_names_reach_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    // Start-up must stop on the configuration; a server that starts instead is killed.
    let refused = |env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["serve", "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path());
        for name in
            ["MOTHERSTREAM_SMTP_HOST", "MOTHERSTREAM_SMTP_PORT", "MOTHERSTREAM_PUBLIC_URL", "DATABASE_URL", "DB_HOST"]
        {
            cmd.env_remove(name);
        }
        let mut child = cmd
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                child.kill().unwrap();
                child.wait().unwrap();
                panic!("the server started with {env:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        (status.code(), stderr)
    };
    // SMTP_SERVER alone makes SMTP configured, which then needs a public URL.
    let (code, stderr) = refused(&[("SMTP_SERVER", "smtp.example.org"), ("SMTP_FROM_EMAIL", "radio@example.org")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--public-url: required when SMTP is configured"), "{stderr}");
    let (code, stderr) = refused(&[("SMTP_SERVER", "smtp.example.org"), ("SMTP_PORT", "smtp")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("SMTP_PORT: `smtp` is not a port number"), "{stderr}");
}

#[test]
fn an_original_variable_no_longer_read_is_warned_about_at_start_up() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .env_remove("DB_HOST")
        .env("MOTHERSTREAM_LOG", "info")
        .env("NGINX_RTMP_PORT", "1935")
        .env("SRS_AUTHORIZATION_BEARER", "bearer-secret-value")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut warned = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        assert!(!line.contains("bearer-secret-value"), "a value was printed: {line}");
        if line.contains("is set but no longer read") {
            warned.push(line);
        } else if line.contains("listening") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(warned.len(), 2, "{warned:#?}");
    assert!(warned[0].contains("NGINX_RTMP_PORT") && warned[0].contains("MOTHERSTREAM_RTMP_LISTEN"), "{warned:#?}");
    assert!(warned[1].contains("SRS_AUTHORIZATION_BEARER"), "{warned:#?}");
}
