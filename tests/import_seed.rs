//! `motherstream import-seed` against a real Postgres holding the original motherstream's
//! schema: the imported DJs log in with their old passwords and go on air with their old
//! stream keys.
//!
//! Its own test binary, so it never runs alongside `tests/server/database.rs`, which stops
//! and restarts the test cluster. Needs `MOTHERSTREAM_TEST_POSTGRES` (`eval
//! "$(scripts/test-postgres.sh start)"`); without it the test fails under CI and is skipped
//! elsewhere.

#[allow(dead_code)]
#[path = "server/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "server/publisher.rs"]
mod publisher;

use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use harness::{Options, Server};
use publisher::Dj;

/// `PasswordHasher().hash("old seed password 1")` by argon2-cffi 25.1.0 (its defaults:
/// argon2id, m=65536, t=3, p=4), as the original stored it.
const ADA_HASH: &str =
    "$argon2id$v=19$m=65536,t=3,p=4$zgyCj7Ozhm81FIXvdffD4A$wxEle8ton+1/QaJ1hmtlK/Uqtichwu/mYQleKkj0aJY";
const ADA_PASSWORD: &str = "old seed password 1";
/// Keys in the shapes the original handed out, which are not ours (40 hex digits).
const ADA_KEY: &str = "Xq3_k9-ZmP0aTq7Lw2Rs8Vb1Nc4Yd6Fh";
const BO_KEY: &str = "0b8f6a9e-3c1d-4e2f-9a7b-5c6d7e8f9a0b";
const CY_KEY: &str = "cYkEy_42";

/// The original's `users` table, written from its columns (SQLAlchemy model plus the
/// alembic migration that added `profile_picture`), and its password reset table.
const ORIGINAL_SCHEMA: &str = "
CREATE TABLE users (
    id              SERIAL PRIMARY KEY,
    email           VARCHAR NOT NULL UNIQUE,
    dj_name         VARCHAR NOT NULL UNIQUE,
    stream_key      VARCHAR NOT NULL UNIQUE,
    timezone        VARCHAR,
    hashed_password VARCHAR NOT NULL,
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    is_superuser    BOOLEAN NOT NULL DEFAULT FALSE,
    profile_picture VARCHAR
);
CREATE TABLE password_reset_tokens (
    id         SERIAL PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    token      VARCHAR NOT NULL UNIQUE,
    expires_at TIMESTAMP NOT NULL
);";

/// A database of its own in the test cluster, dropped at the end.
struct SeedDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl SeedDatabase {
    async fn create() -> Option<Self> {
        let admin_url = match std::env::var("MOTHERSTREAM_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") => {
                panic!(
                    "MOTHERSTREAM_TEST_POSTGRES is required under CI: run `eval \"$(scripts/test-postgres.sh start)\"`"
                )
            }
            _ => {
                eprintln!("skipping: no test Postgres (eval \"$(scripts/test-postgres.sh start)\" to run this test)");
                return None;
            }
        };
        let name = format!("seed_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&admin_url).await.expect("connect to the test Postgres");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.expect("create database");
        admin.close().await.expect("close");
        let (base, query) = admin_url.split_once('?').map_or((admin_url.as_str(), None), |(b, q)| (b, Some(q)));
        let server = base.rsplit_once('/').expect("a database in the URL").0;
        let url = match query {
            Some(q) => format!("{server}/{name}?{q}"),
            None => format!("{server}/{name}"),
        };
        let mut conn = PgConnection::connect(&url).await.expect("connect to the seed database");
        sqlx::raw_sql(ORIGINAL_SCHEMA).execute(&mut conn).await.expect("create the original's schema");
        conn.close().await.expect("close");
        Some(Self { admin_url, name, url })
    }

    async fn execute(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
        conn.close().await.expect("close");
    }

    async fn drop(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.expect("connect");
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).execute(&mut admin).await.expect("drop");
        admin.close().await.expect("close");
    }
}

fn import(server: &Server, url: &str, dry_run: bool) -> (bool, String, String) {
    let mut args = vec!["import-seed", "--from", url];
    if dry_run {
        args.push("--dry-run");
    }
    let out = server.cli(&args);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn users(server: &Server) -> Vec<Value> {
    let out = server.cli(&["user", "list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("user list --json")
}

#[tokio::test]
async fn imported_djs_log_in_with_their_old_password_and_stream_with_their_old_key() {
    let Some(seed) = SeedDatabase::create().await else { return };
    seed.execute(&format!(
        "INSERT INTO users (email, dj_name, stream_key, timezone, hashed_password, is_active, is_superuser, profile_picture) VALUES
         ('Ada@Example.org', 'Ada', '{ADA_KEY}', 'America/New_York', '{ADA_HASH}', TRUE, TRUE, NULL),
         ('bo@example.org', 'Bo', '{BO_KEY}', NULL, '{ADA_HASH}', FALSE, FALSE, NULL),
         ('cy@example.org', 'Cy', '{CY_KEY}', 'Europe/Berlin', '{ADA_HASH}', TRUE, FALSE, 'pictures/cy.png');"
    ))
    .await;
    let server = Server::start(Options::default());

    // A dry run says what it would do and writes nothing.
    let (ok, stdout, stderr) = import(&server, &seed.url, true);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("would import 3 account(s), 0 already here"), "{stdout}");
    assert!(
        stdout.contains("Ada <Ada@Example.org> (admin)") && stdout.contains("Bo <bo@example.org> (disabled)"),
        "{stdout}"
    );
    assert!(stdout.contains("dry run: nothing written"), "{stdout}");
    assert!(!stdout.contains(ADA_KEY) && !stdout.contains("argon2"), "no secrets printed: {stdout}");
    assert!(users(&server).is_empty());
    assert_eq!(server.login_status("Ada", ADA_PASSWORD).await, 400, "not imported yet");

    let (ok, stdout, stderr) = import(&server, &seed.url, false);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("imported 3 account(s), 0 already here"), "{stdout}");
    assert!(stdout.contains("time zone UTC (the original's was missing or unusable): Bo <bo@example.org>"), "{stdout}");
    assert!(stdout.contains("1 profile picture(s) not copied"), "{stdout}");
    let here = users(&server);
    let ada = here.iter().find(|u| u["dj_name"] == "Ada").expect("Ada imported");
    assert_eq!(
        (&ada["email"], &ada["stream_key"], &ada["is_admin"]),
        (&"ada@example.org".into(), &ADA_KEY.into(), &true.into())
    );
    assert_eq!(ada["timezone"], "America/New_York");
    let bo = here.iter().find(|u| u["dj_name"] == "Bo").expect("Bo imported");
    assert_eq!((&bo["is_active"], &bo["is_admin"], &bo["timezone"]), (&false.into(), &false.into(), &"UTC".into()));

    // The old password, verified against argon2-cffi's hash as it is.
    assert_eq!(server.login_status("ada@example.org", ADA_PASSWORD).await, 200);
    assert_eq!(server.login_status("Cy", ADA_PASSWORD).await, 200);
    assert_eq!(server.login_status("Cy", "not the password").await, 400);
    // The old key, in the original's format, goes on air; a disabled DJ's key does not.
    let _ada = Dj::publish(server.rtmp, ADA_KEY).await.expect("Ada publishes with her old key");
    server.wait_for_queue(&["Ada"]).await;
    assert!(Dj::publish(server.rtmp, BO_KEY).await.is_err(), "Bo was disabled in the original");
    let _cy = Dj::publish(server.rtmp, CY_KEY).await.expect("Cy publishes with her old key");
    server.wait_for_queue(&["Ada", "Cy"]).await;

    // A second run changes nothing and says so.
    let (ok, stdout, stderr) = import(&server, &seed.url, false);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "nothing to do: all 3 accounts of the original are already here");
    assert_eq!(users(&server).len(), 3);

    // The original's QUEUE.json (user ids, as strings) is read and reported, not imported:
    // DJs rejoin the queue by publishing.
    let queue_file = server.data_dir.join("QUEUE.json");
    std::fs::write(&queue_file, r#"["3", "1", "42"]"#).unwrap();
    let queue_arg = queue_file.to_str().unwrap();
    let out = server.cli(&["import-seed", "--from", &seed.url, "--queue", queue_arg]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains(
            "QUEUE.json: 3 DJ(s) were queued in the original, in order: Cy, Ada, unknown original account 42"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("QUEUE.json: not imported"), "{stdout}");
    assert_eq!(server.queue().await, ["Ada", "Cy"], "the live queue is untouched");
    std::fs::write(&queue_file, "{}").unwrap();
    let out = server.cli(&["import-seed", "--from", &seed.url, "--queue", queue_arg]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a JSON list"), "{out:?}");

    // A conflict stops everything: Dee exists here with another email, so neither Dee nor
    // Eve (who conflicts with nobody) is imported.
    server.add_user("Dee", false);
    seed.execute(&format!(
        "INSERT INTO users (email, dj_name, stream_key, hashed_password) VALUES
         ('dee@elsewhere.org', 'DEE', 'dee-old-key', '{ADA_HASH}'),
         ('eve@example.org', 'Eve', 'eve-old-key', '{ADA_HASH}');"
    ))
    .await;
    for dry_run in [true, false] {
        let (ok, stdout, stderr) = import(&server, &seed.url, dry_run);
        assert!(!ok, "dry run {dry_run}: {stdout}");
        assert!(
            stderr.contains("original account 4 (DEE <dee@elsewhere.org>): DJ name already used here by account 4 (Dee <dee@example.org>)"),
            "{stderr}"
        );
        assert!(stderr.contains("nothing imported: 1 problem(s) above"), "{stderr}");
        assert!(!stderr.contains("Eve"), "{stderr}");
    }
    assert_eq!(users(&server).len(), 4, "Eve was not imported either");
    seed.drop().await;
}
