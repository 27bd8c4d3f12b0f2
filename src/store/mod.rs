//! The database: accounts and the persisted queue state.
//!
//! One set of queries serves SQLite and Postgres through sqlx's `Any` driver: every query
//! uses `$N` placeholders (understood by both) and only portable SQL and types (`BIGINT`,
//! `TEXT`; flags are 0/1 integers, as `Any` cannot decode SQLite booleans). Each backend has its own migration folder because DDL differs
//! (`AUTOINCREMENT` vs `BIGSERIAL`). Adding a backend therefore means adding migrations, not
//! rewriting queries.

mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, ConnectOptions};

use crate::config::{StoreConfig, redact_url};

pub use users::{NewUser, User};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field (dj_name, email or stream_key) is already taken.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
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
            .acquire_timeout(Duration::from_secs(5))
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
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|e| format!("DATABASE_URL: migrating {} failed: {e}", redact_url(&url)))?;
        Ok(Self { pool, backend })
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

fn ensure_writable_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("--data-dir: cannot create {}: {e}", dir.display()))?;
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
    // Postgres names the index (`users_email_key`); SQLite names the column (`users.email`)
    // or, for the expression index on lower(dj_name), the index.
    let text = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
    ["dj_name", "email", "stream_key"]
        .into_iter()
        .find(|f| text.contains(&format!("users_{f}_key")) || text.contains(&format!("users.{f}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::DatabaseLocation;

    /// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
    pub(crate) async fn temp_store() -> (Store, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            data_dir: dir.path().to_path_buf(),
            database: DatabaseLocation { url: format!("sqlite://{}", dir.path().join("t.db").display()) },
        };
        (Store::open(&config).await.unwrap(), dir)
    }

    #[tokio::test]
    async fn queue_snapshot_round_trip_and_replace() {
        let (store, _dir) = temp_store().await;
        assert_eq!(store.load_queue_snapshot().await.unwrap(), None);
        store.save_queue_snapshot("{\"a\":1}").await.unwrap();
        store.save_queue_snapshot("{\"a\":2}").await.unwrap();
        assert_eq!(store.load_queue_snapshot().await.unwrap().as_deref(), Some("{\"a\":2}"));
        assert!(store.ping().await);
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
