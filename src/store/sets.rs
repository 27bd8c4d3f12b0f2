//! Set history and now playing: the `sets` and `tracks` tables.

use serde::Serialize;
use sqlx::FromRow;

use super::users::refuse_nul;
use super::{Store, StoreError};

/// A track announced before going on air belongs to the set that starts within this many
/// seconds (DJ software posts the first track while the DJ waits in the queue).
pub const ADOPT_WINDOW_SECS: i64 = 15 * 60;

/// One announced track; `at` is Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct Track {
    pub artist: String,
    pub title: String,
    pub at: i64,
    #[sqlx(try_from = "String")]
    pub source: TrackSource,
}

/// Who named a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackSource {
    /// The DJ, from the dashboard or their DJ software.
    Dj,
    /// Automatic song recognition of the on-air audio.
    Recognised,
}

impl TrackSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackSource::Dj => "dj",
            TrackSource::Recognised => "recognised",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown track source `{0}`")]
pub struct UnknownSource(String);

impl TryFrom<String> for TrackSource {
    type Error = UnknownSource;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match value.as_str() {
            "dj" => Ok(TrackSource::Dj),
            "recognised" => Ok(TrackSource::Recognised),
            _ => Err(UnknownSource(value)),
        }
    }
}

/// One past or current set with its tracklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetRecord {
    pub id: i64,
    pub dj_name: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    /// The recording's path, when the set was recorded.
    pub recording: Option<String>,
    pub tracks: Vec<Track>,
}

/// The set a DJ is airing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct OpenSet {
    pub id: i64,
    pub started_at: i64,
}

#[derive(FromRow)]
struct SetRow {
    id: i64,
    dj_name: String,
    started_at: i64,
    ended_at: Option<i64>,
    end_reason: Option<String>,
    recording: Option<String>,
}

impl Store {
    /// Opens a set for a DJ who just went on air. Only one set airs at a time, so any set
    /// still open (the server stopped mid-set) is closed first. Tracks the DJ announced in
    /// the last [`ADOPT_WINDOW_SECS`] without a set join this one.
    pub async fn start_set(&self, user_id: i64, dj_name: &str, started_at: i64) -> Result<i64, StoreError> {
        refuse_nul("dj_name", dj_name)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE sets SET ended_at = $1, end_reason = 'interrupted' WHERE ended_at IS NULL")
            .bind(started_at)
            .execute(&mut *tx)
            .await?;
        let (id,): (i64,) =
            sqlx::query_as("INSERT INTO sets (user_id, dj_name, started_at) VALUES ($1, $2, $3) RETURNING id")
                .bind(user_id)
                .bind(dj_name)
                .bind(started_at)
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("UPDATE tracks SET set_id = $1 WHERE user_id = $2 AND set_id IS NULL AND at >= $3")
            .bind(id)
            .bind(user_id)
            .bind(started_at - ADOPT_WINDOW_SECS)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Closes the DJ's open set, if any, and returns it. Tracks announced while the set
    /// was starting (see [`Store::add_track`]) join it now.
    pub async fn end_set(&self, user_id: i64, ended_at: i64, reason: &str) -> Result<Option<OpenSet>, StoreError> {
        refuse_nul("end_reason", reason)?;
        let mut tx = self.pool.begin().await?;
        let set = sqlx::query_as::<_, OpenSet>(
            "UPDATE sets SET ended_at = $1, end_reason = $2 WHERE user_id = $3 AND ended_at IS NULL \
             RETURNING id, started_at",
        )
        .bind(ended_at)
        .bind(reason)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(set) = set {
            sqlx::query("UPDATE tracks SET set_id = $1 WHERE user_id = $2 AND set_id IS NULL AND at >= $3")
                .bind(set.id)
                .bind(user_id)
                .bind(set.started_at - ADOPT_WINDOW_SECS)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(set)
    }

    /// The DJ's set on air now, if any.
    pub async fn open_set(&self, user_id: i64) -> Result<Option<OpenSet>, StoreError> {
        let set =
            sqlx::query_as::<_, OpenSet>("SELECT id, started_at FROM sets WHERE user_id = $1 AND ended_at IS NULL")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(set)
    }

    pub async fn set_recording(&self, set_id: i64, path: &str) -> Result<(), StoreError> {
        refuse_nul("recording", path)?;
        sqlx::query("UPDATE sets SET recording = $1 WHERE id = $2").bind(path).bind(set_id).execute(&self.pool).await?;
        Ok(())
    }

    /// Announces a track for a DJ: it joins their open set's tracklist, or waits for their
    /// next set (see [`Store::start_set`]). Returns the set it joined.
    ///
    /// The set is looked up in the INSERT itself; a set that starts concurrently may still
    /// miss the track (under Postgres' READ COMMITTED), so [`Store::current_track`] also
    /// counts unattached tracks and [`Store::end_set`] adopts them.
    pub async fn add_track(&self, user_id: i64, track: &Track) -> Result<Option<OpenSet>, StoreError> {
        self.add_track_in(user_id, user_id, track).await
    }

    /// [`Store::add_track`] for a DJ playing in `host`'s set (back to back): the track
    /// joins the host's open set.
    pub async fn add_track_in(&self, user_id: i64, host: i64, track: &Track) -> Result<Option<OpenSet>, StoreError> {
        refuse_nul("artist", &track.artist)?;
        refuse_nul("title", &track.title)?;
        sqlx::query(
            "INSERT INTO tracks (user_id, set_id, artist, title, at, source) \
             VALUES ($1, (SELECT id FROM sets WHERE user_id = $2 AND ended_at IS NULL), $3, $4, $5, $6)",
        )
        .bind(user_id)
        .bind(host)
        .bind(&track.artist)
        .bind(&track.title)
        .bind(track.at)
        .bind(track.source.as_str())
        .execute(&self.pool)
        .await?;
        self.open_set(host).await
    }

    /// What the DJ plays now: the last track of their open set, or, off air, the last one
    /// announced within [`ADOPT_WINDOW_SECS`] of `now`.
    pub async fn current_track(&self, user_id: i64, now: i64) -> Result<Option<Track>, StoreError> {
        self.current_track_in(user_id, user_id, now).await
    }

    /// [`Store::current_track`] for a DJ playing in `host`'s set (back to back).
    pub async fn current_track_in(&self, user_id: i64, host: i64, now: i64) -> Result<Option<Track>, StoreError> {
        let (set_id, since) = match self.open_set(host).await? {
            Some(set) => (Some(set.id), set.started_at - ADOPT_WINDOW_SECS),
            None => (None, now - ADOPT_WINDOW_SECS),
        };
        let track = sqlx::query_as::<_, Track>(
            "SELECT artist, title, at, source FROM tracks \
             WHERE user_id = $1 AND (set_id IS NULL OR set_id = $2) AND at >= $3 \
             ORDER BY at DESC, id DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(set_id)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        Ok(track)
    }

    pub async fn tracklist(&self, set_id: i64) -> Result<Vec<Track>, StoreError> {
        let tracks = sqlx::query_as::<_, Track>(
            "SELECT artist, title, at, source FROM tracks WHERE set_id = $1 ORDER BY at, id",
        )
        .bind(set_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(tracks)
    }

    /// A DJ's most recent sets, newest first, with their tracklists.
    pub async fn sets_of(&self, user_id: i64, limit: i64) -> Result<Vec<SetRecord>, StoreError> {
        let rows = sqlx::query_as::<_, SetRow>(
            "SELECT id, dj_name, started_at, ended_at, end_reason, recording FROM sets \
             WHERE user_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut sets = Vec::with_capacity(rows.len());
        for row in rows {
            let tracks = self.tracklist(row.id).await?;
            sets.push(SetRecord {
                id: row.id,
                dj_name: row.dj_name,
                started_at: row.started_at,
                ended_at: row.ended_at,
                end_reason: row.end_reason,
                recording: row.recording,
                tracks,
            });
        }
        Ok(sets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{store_test, test_user};

    fn track(artist: &str, at: i64) -> Track {
        Track { artist: artist.into(), title: format!("{artist} song"), at, source: TrackSource::Dj }
    }

    store_test! {
        async fn sets_adopt_recent_tracks_and_keep_their_tracklist(store) {
            let dj = test_user(&store, "Ada").await;
            let t0 = 1_800_000_000;
            // Announced long before: stale. Announced while queued: the opener of the set.
            assert_eq!(store.add_track(dj.id, &track("Old", t0 - ADOPT_WINDOW_SECS - 60)).await.unwrap(), None);
            store.add_track(dj.id, &track("Opener", t0 - 30)).await.unwrap();
            assert_eq!(store.current_track(dj.id, t0).await.unwrap().unwrap().artist, "Opener");

            let set = store.start_set(dj.id, "Ada", t0).await.unwrap();
            let open = Some(OpenSet { id: set, started_at: t0 });
            assert_eq!(store.open_set(dj.id).await.unwrap(), open);
            assert_eq!(store.add_track(dj.id, &track("Second", t0 + 300)).await.unwrap(), open);
            assert_eq!(store.current_track(dj.id, t0 + 301).await.unwrap().unwrap().artist, "Second");
            assert_eq!(store.end_set(dj.id, t0 + 600, "time is up").await.unwrap(), open);
            assert_eq!(store.end_set(dj.id, t0 + 601, "again").await.unwrap(), None, "nothing left open");
            assert_eq!(store.current_track(dj.id, t0 + 602).await.unwrap(), None, "off air, nothing new");
            store.set_recording(set, "/rec/Ada/x.flv").await.unwrap();

            // A set left open by a crash is closed by the next one.
            let crashed = store.start_set(dj.id, "Ada", t0 + 700).await.unwrap();
            store.start_set(dj.id, "Ada", t0 + 900).await.unwrap();
            let sets = store.sets_of(dj.id, 10).await.unwrap();
            assert_eq!(sets.len(), 3);
            assert_eq!(sets[1].id, crashed);
            assert_eq!(sets[1].end_reason.as_deref(), Some("interrupted"));
            let first = &sets[2];
            assert_eq!(first.recording.as_deref(), Some("/rec/Ada/x.flv"));
            assert_eq!(first.end_reason.as_deref(), Some("time is up"));
            let artists: Vec<_> = first.tracks.iter().map(|t| t.artist.as_str()).collect();
            assert_eq!(artists, ["Opener", "Second"]);
        }
    }
}
