//! The database: accounts and the persisted queue state.
//!
//! One set of queries serves SQLite and Postgres through sqlx's `Any` driver: every query
//! uses `$N` placeholders (understood by both) and only portable SQL and types (`BIGINT`,
//! `TEXT`; flags are 0/1 integers, as `Any` cannot decode SQLite booleans). Each backend has
//! its own migration folder because DDL differs (`AUTOINCREMENT` vs `BIGSERIAL`). Adding a
//! backend therefore means adding migrations, not rewriting queries.
//!
//! Where the backends differ in behaviour, the difference is settled here, not in SQL:
//! - case-insensitive DJ names compare a key computed in Rust (`dj_name_key`), because SQL
//!   lower() folds only ASCII in SQLite and follows the database locale in Postgres; DJ
//!   names that look alike are refused through a UTS #39 skeleton also computed in Rust
//!   (`dj_name_skeleton`);
//! - text with NUL characters is refused (Postgres cannot store it; lookups with it find
//!   nothing instead of failing);
//! - "keep an active admin" takes a table lock on Postgres, whose READ COMMITTED would
//!   otherwise let two admins demote each other at once.
//!
//! Nothing waits on the database without a bound: acquiring a connection, which includes
//! connecting (sqlx retries refused connections until then), gives up after
//! [`ACQUIRE_TIMEOUT`] with [`StoreError::Unavailable`]. sqlx ignores libpq's
//! `connect_timeout` URL parameter; this timeout is the one that applies. Broken pooled
//! connections (a restarted Postgres) are detected by a ping when acquired and replaced.

mod bookings;
mod import;
mod resets;
mod sessions;
mod sets;
mod users;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions};

use crate::settings::redact_url;

pub use bookings::{BookingRecord, BookingStatus, NewBooking};
pub use import::ImportedAccount;
pub use sets::{OpenSet, SetRecord, Track, TrackSource};
pub use users::{NewUser, Profile, User};
pub(crate) use users::{dj_name_key, dj_name_skeleton};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// How long a query waits for a connection (including connecting) before failing with
/// [`StoreError::Unavailable`].
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field (dj_name, email or stream_key) is already taken; for dj_name, maybe
    /// by a look-alike.
    #[error("{}", conflict_message(.0))]
    Conflict(&'static str),
    /// A value the database cannot hold (text with a NUL character).
    #[error("{0} must not contain NUL characters")]
    Invalid(&'static str),
    #[error("not found")]
    NotFound,
    /// The booking overlaps an approved one.
    #[error("this slot overlaps another booking")]
    Overlap,
    /// A change kept losing to concurrent changes of the same row; worth retrying later.
    #[error("too many concurrent changes; try again")]
    Busy,
    /// Disabling, demoting or deleting this account would leave no active admin.
    #[error("the server must keep an active admin: make someone else an admin first")]
    LastAdmin,
    /// The database cannot be reached: down, restarting, or no connection within the
    /// pool's acquire timeout. Worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) { Self::Unavailable(err) } else { Self::Database(err) }
    }
}

/// What a taken field means, in words fit for the user (the CLI prints it as is).
pub fn conflict_message(field: &str) -> String {
    match field {
        "dj_name" => "that DJ name is taken, or looks like one that is".into(),
        other => format!("that {} is already taken", other.replace('_', " ")),
    }
}

/// Errors that say "no database to talk to" rather than "this query went wrong".
fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // Postgres: class 08 (connection exception), 57P01-57P03 (shutting down, crash
        // recovery, not accepting connections yet).
        sqlx::Error::Database(db) => {
            db.code().is_some_and(|code| code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03"))
        }
        _ => false,
    }
}

/// Where the database lives.
#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseLocation {
    pub url: String,
}

/// Settings needed by every subcommand that opens the store.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    pub database: DatabaseLocation,
}

/// Handle to the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating it if needed, for SQLite) and migrates the database.
    ///
    /// Errors are returned as one human-readable line naming the setting at fault.
    pub async fn open(config: &StoreConfig) -> Result<Self, String> {
        sqlx::any::install_default_drivers();
        let url = &config.database.url;
        let backend = if url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres };
        if backend == Backend::Sqlite {
            ensure_writable_dir(&config.data_dir)?;
            if let Some(path) = sqlite_path(url) {
                make_private_file(&path).map_err(|e| format!("DATABASE_URL: {}: {e}", path.display()))?;
            }
        }
        // `mode=rwc` creates the SQLite file on first run.
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.clone(),
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| format!("DATABASE_URL: invalid URL {}: {e}", redact_url(&url)))?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(1));
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 10 })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(true)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets the CLI and a running server use the file at once;
                        // foreign keys and the busy timeout are per connection.
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA busy_timeout = 5000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| format!("DATABASE_URL: cannot open {}: {e}", redact_url(&url)))?;
        if backend == Backend::Postgres {
            refuse_foreign_users_table(&pool, &url).await?;
        }
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| format!("DATABASE_URL: migrating {} failed: {e}", redact_url(&url)))?;
        let store = Self { pool, backend };
        store
            .refresh_dj_name_keys()
            .await
            .map_err(|e| format!("DATABASE_URL: updating DJ name keys in {} failed: {e}", redact_url(&url)))?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// True if the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Replaces the persisted queue snapshot (JSON).
    pub async fn save_queue_snapshot(&self, snapshot_json: &str) -> Result<(), StoreError> {
        users::refuse_nul("queue snapshot", snapshot_json)?;
        sqlx::query(
            "INSERT INTO queue_state (id, snapshot, updated_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, updated_at = excluded.updated_at",
        )
        .bind(snapshot_json)
        .bind(unix_now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last persisted queue snapshot, if any.
    pub async fn load_queue_snapshot(&self) -> Result<Option<String>, StoreError> {
        let row: Option<(String,)> =
            sqlx::query_as("SELECT snapshot FROM queue_state WHERE id = 1").fetch_optional(&self.pool).await?;
        Ok(row.map(|(s,)| s))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A `users` table in a schema our migrations never ran in belongs to another application,
/// most likely the original motherstream (whose `DB_*` names we share). Migrating there would
/// fail on that table after creating sqlx's bookkeeping table beside it, so refuse first.
async fn refuse_foreign_users_table(pool: &AnyPool, url: &str) -> Result<(), String> {
    let (users, ours): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
                        WHERE table_schema = current_schema() AND table_name = 'users'), \
                EXISTS (SELECT 1 FROM information_schema.tables \
                        WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| format!("DATABASE_URL: inspecting {} failed: {e}", redact_url(url)))?;
    if users && !ours {
        return Err(format!(
            "DATABASE_URL: {} already has a `users` table that is not motherstream's (the original \
             motherstream's database?); nothing was changed. Use a new database (or a schema of its own, \
             ?options[search_path]=…) and bring the accounts over with `motherstream import-seed --from` this one",
            redact_url(url)
        ));
    }
    Ok(())
}

/// Creates the data dir readable by the server's user only (mode 0700), or makes an existing
/// one so: it holds the SQLite database (stream keys, password hashes), the token secret and
/// uploads.
pub fn prepare_data_dir(dir: &Path) -> Result<(), String> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir).map_err(|e| format!("--data-dir: cannot create {}: {e}", dir.display()))?;
        let mode =
            std::fs::metadata(dir).map_err(|e| format!("--data-dir: {}: {e}", dir.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("--data-dir: cannot make {} private: {e}", dir.display()))?;
            tracing::info!(
                "data dir {}: mode {:o} -> 700 (it holds stream keys and password hashes)",
                dir.display(),
                mode & 0o777
            );
        }
    }
    #[cfg(not(unix))]
    builder.create(dir).map_err(|e| format!("--data-dir: cannot create {}: {e}", dir.display()))?;
    Ok(())
}

/// The file of a `sqlite://PATH[?options]` URL; `None` for an in-memory database.
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Creates the database file with mode 0600 before SQLite does (it would follow the umask),
/// or sets an existing one and its WAL files to 0600. SQLite gives new WAL and shared-memory
/// files the database file's mode.
fn make_private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let mut shm = path.as_os_str().to_owned();
        shm.push("-shm");
        for file in [path.as_os_str().to_owned(), wal, shm] {
            match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn ensure_writable_dir(dir: &Path) -> Result<(), String> {
    prepare_data_dir(dir)?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"ok").map_err(|e| format!("--data-dir: {} is not writable: {e}", dir.display()))?;
    // Best effort: a leftover probe file is harmless.
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Seconds since the Unix epoch, the portable timestamp format of the schema.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// Maps a unique-constraint violation to the field it concerns.
fn conflict_field(err: &sqlx::Error) -> Option<&'static str> {
    let sqlx::Error::Database(db) = err else {
        return None;
    };
    if !db.is_unique_violation() {
        return None;
    }
    // Postgres names the index (`users_email_key`, in the message and as the constraint);
    // SQLite names the column (`users.email`).
    let text = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
    const UNIQUE: [(&str, [&str; 2]); 4] = [
        ("dj_name", ["users_dj_name_key", "users.dj_name_key"]),
        ("dj_name", ["users_dj_name_skeleton_key", "users.dj_name_skeleton"]),
        ("email", ["users_email_key", "users.email"]),
        ("stream_key", ["users_stream_key_key", "users.stream_key"]),
    ];
    UNIQUE.into_iter().find(|(_, names)| names.iter().any(|n| text.contains(n))).map(|(field, _)| field)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sqlx::Connection;

    /// The test Postgres (a database the tests may create schemas in), from
    /// `scripts/test-postgres.sh start`.
    pub(crate) const POSTGRES_ENV: &str = "MOTHERSTREAM_TEST_POSTGRES";

    /// Creates a DJ named `name` (`<name>@example.org`, key `key-<name>`).
    pub(crate) async fn test_user(store: &Store, name: &str) -> User {
        store
            .create_user(&NewUser {
                dj_name: name.into(),
                email: format!("{}@example.org", name.to_lowercase()),
                password_hash: "hash".into(),
                stream_key: format!("key-{name}"),
                is_admin: false,
            })
            .await
            .unwrap()
    }

    /// A fresh, empty store on one backend; `finish` removes it.
    pub(crate) struct TestStore {
        pub(crate) store: Store,
        cleanup: Cleanup,
    }

    enum Cleanup {
        Sqlite(tempfile::TempDir),
        /// Each Postgres test gets its own schema (selected through `search_path` in the
        /// URL), so tests stay independent and can run in parallel on one database.
        Postgres {
            admin_url: String,
            schema: String,
            _dir: tempfile::TempDir,
        },
    }

    impl TestStore {
        pub(crate) async fn sqlite() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let config = StoreConfig {
                data_dir: dir.path().to_path_buf(),
                database: DatabaseLocation { url: format!("sqlite://{}", dir.path().join("t.db").display()) },
            };
            Self { store: Store::open(&config).await.unwrap(), cleanup: Cleanup::Sqlite(dir) }
        }

        /// A store in a new schema of the test Postgres, or `None` (after a note) when none
        /// is configured outside CI. Under CI a missing Postgres fails the test.
        pub(crate) async fn postgres() -> Option<Self> {
            let admin_url = test_postgres_url()?;
            let schema = format!("test_{:016x}", rand::random::<u64>());
            let mut admin = sqlx::postgres::PgConnection::connect(&admin_url)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_ENV} ({}): {e}", redact_url(&admin_url)));
            sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut admin).await.unwrap();
            admin.close().await.unwrap();
            let dir = tempfile::tempdir().unwrap();
            let config = StoreConfig {
                data_dir: dir.path().to_path_buf(),
                database: DatabaseLocation { url: with_search_path(&admin_url, &schema) },
            };
            let store = Store::open(&config).await.unwrap();
            Some(Self { store, cleanup: Cleanup::Postgres { admin_url, schema, _dir: dir } })
        }

        /// Closes the store and drops what it created. (A failing test skips this; its
        /// schema stays behind in the throwaway test cluster.)
        pub(crate) async fn finish(self) {
            self.store.close().await;
            match self.cleanup {
                Cleanup::Sqlite(_dir) => {}
                Cleanup::Postgres { admin_url, schema, _dir } => {
                    let mut admin = sqlx::postgres::PgConnection::connect(&admin_url).await.unwrap();
                    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut admin).await.unwrap();
                    admin.close().await.unwrap();
                }
            }
        }
    }

    /// `MOTHERSTREAM_TEST_POSTGRES`, or `None` with a skip note; panics under CI without it.
    pub(crate) fn test_postgres_url() -> Option<String> {
        match std::env::var(POSTGRES_ENV) {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") => panic!(
                "{POSTGRES_ENV} is required under CI: run `eval \"$(scripts/test-postgres.sh start)\"` first (.ci/run does)"
            ),
            _ => {
                eprintln!("skipping the Postgres variant: {POSTGRES_ENV} is not set (see scripts/test-postgres.sh)");
                None
            }
        }
    }

    /// `url` with `search_path` set to `schema` for every connection.
    pub(crate) fn with_search_path(url: &str, schema: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options[search_path]={schema}")
    }

    /// Defines a store test that runs its body once per backend, as two tests:
    /// `NAME::sqlite` and `NAME::postgres`. The body sees a fresh, empty `Store` as `$store`.
    macro_rules! store_test {
        ($(#[$meta:meta])* async fn $name:ident($store:ident) $body:block) => {
            $(#[$meta])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test]
                async fn sqlite() {
                    let test = $crate::store::tests::TestStore::sqlite().await;
                    let $store = test.store.clone();
                    $body
                    test.finish().await;
                }

                #[tokio::test]
                async fn postgres() {
                    let Some(test) = $crate::store::tests::TestStore::postgres().await else { return };
                    let $store = test.store.clone();
                    $body
                    test.finish().await;
                }
            }
        };
    }
    pub(crate) use store_test;

    store_test! {
        async fn queue_snapshot_round_trip_and_replace(store) {
            assert_eq!(store.load_queue_snapshot().await.unwrap(), None);
            store.save_queue_snapshot("{\"a\":1}").await.unwrap();
            store.save_queue_snapshot("{\"a\":2}").await.unwrap();
            assert_eq!(store.load_queue_snapshot().await.unwrap().as_deref(), Some("{\"a\":2}"));
            assert!(store.ping().await);
        }
    }

    #[tokio::test]
    async fn a_users_table_of_another_application_is_refused_untouched() {
        // The original motherstream's database, reached through the DB_* names both share.
        let Some(admin_url) = test_postgres_url() else { return };
        let schema = format!("foreign_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::postgres::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::raw_sql(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.users (id SERIAL PRIMARY KEY, email VARCHAR, \
             hashed_password VARCHAR)"
        ))
        .execute(&mut admin)
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            data_dir: dir.path().to_path_buf(),
            database: DatabaseLocation { url: with_search_path(&admin_url, &schema) },
        };
        let err = Store::open(&config).await.unwrap_err();
        assert!(err.contains("already has a `users` table that is not motherstream's"), "{err}");
        assert!(err.contains("import-seed"), "{err}");
        let tables: Vec<(String,)> =
            sqlx::query_as("SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1")
                .bind(&schema)
                .fetch_all(&mut admin)
                .await
                .unwrap();
        assert_eq!(tables, [("users".to_owned(),)], "nothing was created next to it");
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut admin).await.unwrap();
        admin.close().await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_postgres_fails_in_bounded_time_without_showing_the_password() {
        // Port 1 on localhost refuses connections; sqlx retries until the acquire timeout.
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            data_dir: dir.path().to_path_buf(),
            database: DatabaseLocation { url: "postgres://ms:s3cret@127.0.0.1:1/motherstream".into() },
        };
        let started = std::time::Instant::now();
        let err = Store::open(&config).await.unwrap_err();
        assert!(started.elapsed() < ACQUIRE_TIMEOUT + Duration::from_secs(3), "took {:?}", started.elapsed());
        assert!(err.starts_with("DATABASE_URL: cannot open postgres://ms:***@127.0.0.1:1/motherstream"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn connection_failures_are_unavailable_not_query_errors() {
        assert!(matches!(StoreError::from(sqlx::Error::PoolTimedOut), StoreError::Unavailable(_)));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(StoreError::from(sqlx::Error::Io(refused)), StoreError::Unavailable(_)));
        assert!(matches!(StoreError::from(sqlx::Error::RowNotFound), StoreError::Database(_)));
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).to_string().starts_with("database unavailable"));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_data_dir_and_database_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a").join("data");
        let db = dir.join("t.db");
        let config = StoreConfig {
            data_dir: dir.clone(),
            database: DatabaseLocation { url: format!("sqlite://{}", db.display()) },
        };
        let store = Store::open(&config).await.unwrap();
        store.save_queue_snapshot("{}").await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for file in [db.clone(), dir.join("t.db-wal"), dir.join("t.db-shm")] {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite://x/y.db?mode=rwc"), Some("x/y.db".into()));
    }

    #[tokio::test]
    async fn unwritable_data_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let config = StoreConfig {
            data_dir: file.clone(),
            database: DatabaseLocation { url: format!("sqlite://{}", file.join("t.db").display()) },
        };
        let err = Store::open(&config).await.unwrap_err();
        assert!(err.starts_with("--data-dir:"), "{err}");
    }
}
