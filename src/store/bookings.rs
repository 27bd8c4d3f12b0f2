//! The timetable: the `bookings` table and the per-DJ default set length.
//!
//! Approved bookings never overlap. The check and the write are one statement (SQLite runs
//! a statement under its write lock), inside a transaction that locks the table on
//! Postgres, whose READ COMMITTED would otherwise let two concurrent bookings both pass it.

use serde::Serialize;
use sqlx::FromRow;

use super::{Backend, Store, StoreError, unix_now};

/// Bookings returned by one listing at most (about a year of hourly slots is far more
/// than any timetable page shows).
const MAX_LISTED: i64 = 1000;

/// Whether an admin has approved a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BookingStatus {
    /// A DJ asked for the slot; it does not count until an admin approves it.
    Requested,
    Approved,
}

impl BookingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Requested => "requested",
            BookingStatus::Approved => "approved",
        }
    }
}

/// A booked slot; times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookingRecord {
    pub id: i64,
    pub user_id: i64,
    pub dj_name: String,
    pub starts_at: i64,
    pub length_secs: i64,
    pub hard_start: bool,
    pub status: BookingStatus,
    pub created_by: Option<i64>,
    pub created_at: i64,
}

impl BookingRecord {
    pub fn ends_at(&self) -> i64 {
        self.starts_at.saturating_add(self.length_secs)
    }
}

/// What an admin (or a DJ, for a request) books.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBooking {
    pub user_id: i64,
    pub starts_at: i64,
    pub length_secs: i64,
    pub hard_start: bool,
    pub status: BookingStatus,
    pub created_by: Option<i64>,
}

#[derive(FromRow)]
struct BookingRow {
    id: i64,
    user_id: i64,
    dj_name: String,
    starts_at: i64,
    length_secs: i64,
    hard_start: i64,
    status: String,
    created_by: Option<i64>,
    created_at: i64,
}

impl From<BookingRow> for BookingRecord {
    fn from(row: BookingRow) -> Self {
        BookingRecord {
            id: row.id,
            user_id: row.user_id,
            dj_name: row.dj_name,
            starts_at: row.starts_at,
            length_secs: row.length_secs,
            hard_start: row.hard_start != 0,
            // The CHECK constraint allows these two only.
            status: if row.status == "approved" { BookingStatus::Approved } else { BookingStatus::Requested },
            created_by: row.created_by,
            created_at: row.created_at,
        }
    }
}

const SELECT: &str = "SELECT b.id, b.user_id, u.dj_name, b.starts_at, b.length_secs, b.hard_start, b.status, \
                      b.created_by, b.created_at FROM bookings b JOIN users u ON u.id = b.user_id";

/// A condition true when no approved booking other than `$1` overlaps the slot from
/// `start` to `end` (SQL expressions).
fn no_overlap(start: &str, end: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM bookings o WHERE o.status = 'approved' AND o.id <> $1 \
         AND o.starts_at < {end} AND o.starts_at + o.length_secs > {start})"
    )
}

impl Store {
    /// Books a slot. An approved one that overlaps another approved booking fails with
    /// [`StoreError::Overlap`].
    pub async fn create_booking(&self, new: &NewBooking) -> Result<BookingRecord, StoreError> {
        check_times(new.starts_at, new.length_secs)?;
        let guard = if new.status == BookingStatus::Approved { no_overlap("$2", "$2 + $3") } else { "1 = 1".into() };
        // $1 is an id no booking has, so the guard compares with every booking.
        let sql = format!(
            "INSERT INTO bookings (user_id, starts_at, length_secs, hard_start, status, created_by, created_at) \
             SELECT $4, $2, $3, $5, $6, $7, $8 WHERE {guard} RETURNING id"
        );
        let mut tx = self.pool.begin().await?;
        self.lock_bookings(&mut tx).await?;
        let id: Option<(i64,)> = sqlx::query_as(&sql)
            .bind(0_i64)
            .bind(new.starts_at)
            .bind(new.length_secs)
            .bind(new.user_id)
            .bind(i64::from(new.hard_start))
            .bind(new.status.as_str())
            .bind(new.created_by)
            .bind(unix_now())
            .fetch_optional(&mut *tx)
            .await
            .map_err(foreign_key_is_not_found)?;
        let Some((id,)) = id else { return Err(StoreError::Overlap) };
        tx.commit().await?;
        self.booking(id).await?.ok_or(StoreError::NotFound)
    }

    /// Moves or resizes a booking (its status stays), checking overlaps if it is approved.
    pub async fn update_booking(
        &self,
        id: i64,
        user_id: i64,
        starts_at: i64,
        length_secs: i64,
        hard_start: bool,
    ) -> Result<(), StoreError> {
        check_times(starts_at, length_secs)?;
        let sql = format!(
            "UPDATE bookings SET starts_at = $2, length_secs = $3, user_id = $4, hard_start = $5 \
             WHERE id = $1 AND (status <> 'approved' OR {})",
            no_overlap("$2", "$2 + $3")
        );
        let mut tx = self.pool.begin().await?;
        self.lock_bookings(&mut tx).await?;
        let done = sqlx::query(&sql)
            .bind(id)
            .bind(starts_at)
            .bind(length_secs)
            .bind(user_id)
            .bind(i64::from(hard_start))
            .execute(&mut *tx)
            .await
            .map_err(foreign_key_is_not_found)?;
        self.written_or_why(tx, id, done.rows_affected()).await
    }

    /// Approves a requested booking, unless it overlaps an approved one.
    pub async fn approve_booking(&self, id: i64) -> Result<(), StoreError> {
        let sql = format!(
            "UPDATE bookings SET status = 'approved' WHERE id = $1 AND {}",
            no_overlap("bookings.starts_at", "bookings.starts_at + bookings.length_secs")
        );
        let mut tx = self.pool.begin().await?;
        self.lock_bookings(&mut tx).await?;
        let done = sqlx::query(&sql).bind(id).execute(&mut *tx).await?;
        self.written_or_why(tx, id, done.rows_affected()).await
    }

    pub async fn delete_booking(&self, id: i64) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM bookings WHERE id = $1").bind(id).execute(&self.pool).await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    pub async fn booking(&self, id: i64) -> Result<Option<BookingRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE b.id = $1");
        let row = sqlx::query_as::<_, BookingRow>(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.map(BookingRecord::from))
    }

    /// Bookings (approved, or all) whose slot ends after `from` and starts before `to`,
    /// earliest first, at most `MAX_LISTED`.
    pub async fn bookings_between(
        &self,
        from: i64,
        to: i64,
        approved_only: bool,
    ) -> Result<Vec<BookingRecord>, StoreError> {
        let status = if approved_only { "AND b.status = 'approved'" } else { "" };
        let sql = format!(
            "{SELECT} WHERE b.starts_at + b.length_secs > $1 AND b.starts_at < $2 {status} \
             ORDER BY b.starts_at, b.id LIMIT $3"
        );
        let rows =
            sqlx::query_as::<_, BookingRow>(&sql).bind(from).bind(to).bind(MAX_LISTED).fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(BookingRecord::from).collect())
    }

    /// Sets (or, with `None`, clears) a DJ's default set length.
    pub async fn set_default_set_secs(&self, user_id: i64, secs: Option<i64>) -> Result<(), StoreError> {
        if secs.is_some_and(|secs| secs <= 0) {
            return Err(StoreError::Invalid("default set length"));
        }
        let done = sqlx::query("UPDATE users SET default_set_secs = $1 WHERE id = $2")
            .bind(secs)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    /// Every DJ with a default set length, as (user id, DJ name, seconds).
    pub async fn default_set_lengths(&self) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT id, dj_name, default_set_secs FROM users WHERE default_set_secs IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn lock_bookings(&self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("LOCK TABLE bookings IN SHARE ROW EXCLUSIVE MODE").execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Commits a guarded update, or tells why it wrote nothing: no such booking, or an overlap.
    async fn written_or_why(&self, tx: sqlx::Transaction<'_, sqlx::Any>, id: i64, rows: u64) -> Result<(), StoreError> {
        if rows > 0 {
            tx.commit().await?;
            return Ok(());
        }
        drop(tx);
        match self.booking(id).await? {
            None => Err(StoreError::NotFound),
            Some(_) => Err(StoreError::Overlap),
        }
    }
}

fn check_times(starts_at: i64, length_secs: i64) -> Result<(), StoreError> {
    if length_secs <= 0 || starts_at.checked_add(length_secs).is_none() {
        return Err(StoreError::Invalid("booking length"));
    }
    Ok(())
}

/// A booking for a user that does not exist.
fn foreign_key_is_not_found(err: sqlx::Error) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::from(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{store_test, test_user};

    fn approved(user_id: i64, starts_at: i64, length_secs: i64) -> NewBooking {
        NewBooking {
            user_id,
            starts_at,
            length_secs,
            hard_start: false,
            status: BookingStatus::Approved,
            created_by: None,
        }
    }

    store_test! {
        async fn approved_bookings_may_not_overlap(store) {
            let alice = test_user(&store, "Alice").await;
            let bob = test_user(&store, "Bob").await;
            let first = store.create_booking(&approved(alice.id, 1000, 600)).await.unwrap();
            assert_eq!((first.dj_name.as_str(), first.ends_at()), ("Alice", 1600));
            let err = store.create_booking(&approved(bob.id, 1500, 600)).await.unwrap_err();
            assert!(matches!(err, StoreError::Overlap), "{err}");
            let err = store.create_booking(&approved(bob.id, 400, 601)).await.unwrap_err();
            assert!(matches!(err, StoreError::Overlap), "{err}");
            // Back to back is fine; so is a request over an approved slot.
            let second = store.create_booking(&approved(bob.id, 1600, 600)).await.unwrap();
            let request = NewBooking { status: BookingStatus::Requested, ..approved(bob.id, 1100, 100) };
            let request = store.create_booking(&request).await.unwrap();
            assert!(matches!(store.approve_booking(request.id).await.unwrap_err(), StoreError::Overlap));
            // Moving the second into the first is refused, moving it later is not.
            let err = store.update_booking(second.id, bob.id, 1599, 600, true).await.unwrap_err();
            assert!(matches!(err, StoreError::Overlap), "{err}");
            store.update_booking(second.id, bob.id, 1700, 600, true).await.unwrap();
            store.update_booking(request.id, bob.id, 1600, 100, false).await.unwrap();
            store.approve_booking(request.id).await.unwrap();
            let listed = store.bookings_between(0, 10_000, true).await.unwrap();
            let slots: Vec<_> = listed.iter().map(|b| (b.dj_name.as_str(), b.starts_at, b.hard_start)).collect();
            assert_eq!(slots, [("Alice", 1000, false), ("Bob", 1600, false), ("Bob", 1700, true)]);
            assert_eq!(store.bookings_between(1600, 1700, true).await.unwrap().len(), 1, "ends after, starts before");
            store.delete_booking(first.id).await.unwrap();
            assert!(matches!(store.delete_booking(first.id).await.unwrap_err(), StoreError::NotFound));
            assert!(matches!(store.approve_booking(first.id).await.unwrap_err(), StoreError::NotFound));
            let err = store.create_booking(&approved(9999, 50_000, 60)).await.unwrap_err();
            assert!(matches!(err, StoreError::NotFound), "{err}");
            let err = store.create_booking(&approved(alice.id, 50_000, 0)).await.unwrap_err();
            assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        }
    }

    store_test! {
        async fn concurrent_bookings_of_one_slot_leave_exactly_one(store) {
            let alice = test_user(&store, "Alice").await;
            let attempts = (0..6).map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.create_booking(&approved(alice.id, 10_000 + i * 60, 600)).await })
            });
            let mut won = 0;
            for attempt in attempts.collect::<Vec<_>>() {
                match attempt.await.unwrap() {
                    Ok(_) => won += 1,
                    Err(StoreError::Overlap) => {}
                    Err(other) => panic!("{other}"),
                }
            }
            assert_eq!(won, 1);
            assert_eq!(store.bookings_between(0, 100_000, true).await.unwrap().len(), 1);
        }
    }

    store_test! {
        async fn default_set_lengths_are_per_dj(store) {
            let alice = test_user(&store, "Alice").await;
            test_user(&store, "Bob").await;
            store.set_default_set_secs(alice.id, Some(1800)).await.unwrap();
            assert_eq!(store.default_set_lengths().await.unwrap(), [(alice.id, "Alice".to_owned(), 1800)]);
            store.set_default_set_secs(alice.id, None).await.unwrap();
            assert!(store.default_set_lengths().await.unwrap().is_empty());
            assert!(matches!(store.set_default_set_secs(alice.id, Some(0)).await, Err(StoreError::Invalid(_))));
        }
    }
}
