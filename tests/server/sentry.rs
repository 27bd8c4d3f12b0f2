//! `SENTRY_DSN`: error-level log events reach Sentry, tagged with the release and the
//! environment, with no stream key or email in them. A fake Sentry on 127.0.0.1 keeps the
//! envelopes it is sent.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;

use crate::harness::{BIN, PASSWORD, PATIENCE};
use crate::publisher::Dj;

type Received = Arc<Mutex<Vec<String>>>;

async fn fake_sentry() -> (std::net::SocketAddr, Received) {
    let received = Received::default();
    let app = Router::new()
        .route(
            "/api/{project}/envelope/",
            post(|State(received): State<Received>, body: Bytes| async move {
                received.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                "{}"
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

#[tokio::test]
async fn error_events_reach_sentry_with_release_and_environment_and_no_secrets() {
    let (sentry, received) = fake_sentry().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Recording into a path under a regular file fails when a set starts: an error event.
    let not_a_dir = dir.path().join("not-a-dir");
    std::fs::write(&not_a_dir, b"x").unwrap();

    let mut add = Command::new(BIN)
        .args(["user", "add", "--dj-name", "Ada", "--email", "ada@example.org", "--password-stdin", "--data-dir"])
        .arg(&data)
        .env_remove("DATABASE_URL")
        .env_remove("DB_HOST")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim().to_owned();

    let mut server = Command::new(BIN)
        .args(["serve", "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--record", "--record-dir"])
        .arg(not_a_dir.join("recordings"))
        .arg("--data-dir")
        .arg(&data)
        .env_remove("DATABASE_URL")
        .env_remove("DB_HOST")
        .env("MOTHERSTREAM_LOG", "info")
        .env("SENTRY_DSN", format!("http://0123456789abcdef0123456789abcdef@{sentry}/42"))
        .env("SENTRY_ENVIRONMENT", "acceptance")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let rtmp: std::net::SocketAddr = loop {
        let line = lines.next().expect("the server started").unwrap();
        if let Some(rest) = line.split("rtmp ingest listening on ").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));

    let _ada = Dj::publish(rtmp, &key).await.expect("publish");
    let deadline = Instant::now() + PATIENCE;
    let event = loop {
        if let Some(event) = received.lock().unwrap().iter().find(|e| e.contains("stopped")) {
            break event.clone();
        }
        assert!(Instant::now() < deadline, "no error event reached Sentry: {:?}", received.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    server.kill().unwrap();
    server.wait().unwrap();

    assert!(event.contains("streaming continues"), "{event}");
    assert!(event.contains(&format!("\"release\":\"motherstream@{}\"", env!("CARGO_PKG_VERSION"))), "{event}");
    assert!(event.contains("\"environment\":\"acceptance\""), "{event}");
    assert!(event.contains("\"panic\""), "panics are reported too: {event}");
    for envelope in received.lock().unwrap().iter() {
        assert!(!envelope.contains(&key), "a stream key was sent: {envelope}");
        assert!(!envelope.contains("ada@example.org"), "an email was sent: {envelope}");
        assert!(!envelope.contains(PASSWORD), "a password was sent: {envelope}");
    }
}
