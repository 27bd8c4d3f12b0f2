//! The server on a real Postgres (the throwaway cluster of `scripts/test-postgres.sh`), and
//! what a database outage does: publishing needs a stream-key lookup and is refused while
//! the database is down, but the DJ on air and the program never touch the database and go
//! on, and the queue, which still changes, is saved with retries; when the database is back,
//! publishing works again and the latest queue is saved.
//!
//! Needs `MOTHERSTREAM_TEST_POSTGRES` (and `MOTHERSTREAM_TEST_PG_DIR`), as printed by
//! `scripts/test-postgres.sh start`. Without them the test fails under CI and is skipped
//! elsewhere. It stops and restarts that cluster, so nothing else may use the cluster
//! meanwhile: the store's unit tests run in another test binary, which cargo runs before or
//! after this one, never alongside.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use motherstream::rtmp::client_io::ClientError;
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::harness::{BIN, Options, PATIENCE, Server};
use crate::publisher::Dj;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-postgres.sh");

/// The test cluster, with one fresh schema for this test (dropped at the end).
struct TestPostgres {
    admin_url: String,
    schema: String,
    /// The server's URL: the test database with `search_path` set to the schema.
    url: String,
}

impl TestPostgres {
    /// `None` (after a note) outside CI when no test cluster is configured.
    async fn connect() -> Option<Self> {
        let admin_url = match std::env::var("MOTHERSTREAM_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() && std::env::var_os("MOTHERSTREAM_TEST_PG_DIR").is_some() => url,
            _ if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") => panic!(
                "MOTHERSTREAM_TEST_POSTGRES and MOTHERSTREAM_TEST_PG_DIR are required under CI: \
                 run `eval \"$(scripts/test-postgres.sh start)\"` first (.ci/run does)"
            ),
            _ => {
                eprintln!("skipping: no test Postgres (eval \"$(scripts/test-postgres.sh start)\" to run this test)");
                return None;
            }
        };
        // A previous run that failed mid-outage may have left the cluster stopped.
        cluster("start");
        let schema = format!("server_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to the test Postgres");
        sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut admin).await.expect("create schema");
        admin.close().await.expect("close");
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{sep}options[search_path]={schema}");
        Some(Self { admin_url, schema, url })
    }

    /// The queue snapshot the server saved, read directly.
    async fn saved_snapshot(&self) -> Option<String> {
        let mut conn = PgConnection::connect(&self.url).await.expect("connect");
        let row: Option<(String,)> = sqlx::query_as("SELECT snapshot FROM queue_state WHERE id = 1")
            .fetch_optional(&mut conn)
            .await
            .expect("read queue_state");
        conn.close().await.expect("close");
        row.map(|(s,)| s)
    }

    async fn drop_schema(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.expect("connect");
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema)).execute(&mut admin).await.expect("drop schema");
        admin.close().await.expect("close");
    }
}

/// Runs `scripts/test-postgres.sh start|stop` (as the `postgres` user when root).
fn cluster(action: &str) {
    let out = Command::new(SCRIPT).arg(action).stdin(Stdio::null()).output().expect("run scripts/test-postgres.sh");
    assert!(out.status.success(), "scripts/test-postgres.sh {action} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// Restarts the cluster if the test ends (or fails) while it is stopped.
struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT).arg("start").stdout(Stdio::null()).status();
    }
}

/// Creates an account with the real CLI on the server's database; returns its stream key.
fn add_user(server: &Server, database_url: &str, dj_name: &str) -> String {
    let out = Command::new(BIN)
        .args(["user", "add", "--dj-name", dj_name, "--email"])
        .arg(format!("{}@example.org", dj_name.to_lowercase()))
        .arg("--data-dir")
        .arg(&server.data_dir)
        .args(["--database-url", database_url])
        .env_remove("DATABASE_URL")
        .env_remove("DB_HOST")
        .stdin(Stdio::null())
        .output()
        .expect("run user add");
    assert!(out.status.success(), "user add failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().last().expect("key line").trim().to_owned()
}

/// Video frames received so far from the DJ on air (`GET /api/v1/status`).
async fn on_air_frames(server: &Server, dj_name: &str) -> u64 {
    let status: Value = server.get_json("/api/v1/status").await;
    assert_eq!(status["on_air"]["dj_name"], dj_name, "{status}");
    status["on_air"]["stats"]["video_frames"].as_u64().expect("video_frames")
}

/// Waits until the on-air DJ's frame count passes `above`.
async fn wait_for_frames_above(server: &Server, dj_name: &str, above: u64) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let frames = on_air_frames(server, dj_name).await;
        if frames > above {
            return frames;
        }
        assert!(Instant::now() < deadline, "{dj_name}'s frames stuck at {frames}; logs:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn postgres_outage_refuses_new_publishers_but_keeps_the_dj_on_air() {
    let Some(pg) = TestPostgres::connect().await else {
        return;
    };
    let server =
        Server::start(Options { extra_args: vec!["--database-url".into(), pg.url.clone()], ..Options::default() });
    let alice_key = add_user(&server, &pg.url, "Alice");
    let bob_key = add_user(&server, &pg.url, "Bob");
    let carol_key = add_user(&server, &pg.url, "Carol");

    let alice = Dj::publish(server.rtmp, &alice_key).await.expect("Alice publishes");
    server.wait_for_queue(&["Alice"]).await;
    let carol = Dj::publish(server.rtmp, &carol_key).await.expect("Carol publishes");
    server.wait_for_queue(&["Alice", "Carol"]).await;
    let before = wait_for_frames_above(&server, "Alice", 0).await;

    // Postgres goes away.
    let _restart = RestartOnDrop;
    cluster("stop");

    // The queue still changes (Carol leaves); saving it fails and is retried.
    carol.stop().await;
    server.wait_for_queue(&["Alice"]).await;
    server.wait_for_log("saving the queue failed (retrying").await;

    // A new publisher cannot be checked, so it is refused, with a reason, in bounded time.
    let started = Instant::now();
    match Dj::publish(server.rtmp, &bob_key).await {
        Ok(_) => panic!("Bob's publish was accepted while the database was down"),
        Err(ClientError::Rejected { code, description }) => {
            assert_eq!(code, "NetStream.Publish.Denied");
            assert!(description.contains("database unavailable"), "{description}");
        }
        Err(other) => panic!("expected an RTMP error status, got {other}; logs:\n{}", server.logs()),
    }
    assert!(started.elapsed() < Duration::from_secs(9), "refusal took {:?}", started.elapsed());
    server.wait_for_log("stream key lookup failed").await;
    server.wait_for_log("publish refused: database unavailable").await;

    // Meanwhile Alice stays on air and her media keeps flowing.
    let during = wait_for_frames_above(&server, "Alice", before + 30).await;
    assert_eq!(server.queue().await, ["Alice"]);
    let program: Value = server.get_json("/api/v1/status").await;
    assert_eq!(program["program"]["source"], "dj", "{program}");

    // Postgres is back: the next publish is checked and queued, and the latest queue saved.
    cluster("start");
    let bob = Dj::publish(server.rtmp, &bob_key).await.expect("Bob publishes once the database is back");
    server.wait_for_queue(&["Alice", "Bob"]).await;
    server.wait_for_log("Bob is publishing, queued at position 1").await;
    wait_for_frames_above(&server, "Alice", during).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        if pg.saved_snapshot().await.is_some_and(|s| s.contains("Bob") && !s.contains("Carol")) {
            break;
        }
        assert!(Instant::now() < deadline, "the queue with Bob was never saved; logs:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    bob.stop().await;
    alice.stop().await;
    drop(server);
    pg.drop_schema().await;
}
