//! Set history: a `sets` row each time a DJ goes on air, closed when the set ends, linked
//! to the set's recording, with the tracklist the DJ announced written next to it
//! (`<recording>.tracklist.txt`). A set resumed after a dropped connection is not a new
//! set: it keeps its row, and the recorder keeps writing the same file. Follows the
//! queue's notices; never touches media.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::calendar::format_datetime;
use crate::ids::UserId;
use crate::queue::engine::Notice;
use crate::recorder::RecorderHandle;
use crate::store::{OpenSet, Store, StoreError, Track, TrackSource, unix_now};

/// A recording that started this long before the set row still belongs to it (the
/// recorder and the history follow the same switch from two tasks).
const RECORDING_SLACK: Duration = Duration::from_secs(5);

/// Follows the queue until shutdown.
pub fn spawn(
    store: Store,
    mut notices: broadcast::Receiver<Notice>,
    recorder: RecorderHandle,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let notice = tokio::select! {
                notice = notices.recv() => notice,
                _ = shutdown.changed() => return,
            };
            let result = match notice {
                Ok(Notice::OnAir { dj }) => store.start_set(dj.user_id.0, &dj.dj_name, unix_now()).await.map(drop),
                Ok(Notice::SetEnded { dj, reason }) => {
                    match store.end_set(dj.user_id.0, unix_now(), &reason.to_string()).await {
                        Ok(Some(set)) => link_recording(&store, &recorder, dj.user_id, set).await,
                        other => other.map(drop),
                    }
                }
                Ok(_) => Ok(()),
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!("set history missed {n} queue notices");
                    Ok(())
                }
                Err(RecvError::Closed) => return,
            };
            if let Err(e) = result {
                tracing::warn!("set history: {e}");
            }
        }
    })
}

/// Announces a track for a DJ ("now playing"); when it joins a recorded set, the
/// tracklist file next to the recording is rewritten.
/// `host` is the DJ whose set the track joins: `user_id` themselves, or the host of the
/// back-to-back set they play in.
pub async fn announce_track(
    store: &Store,
    recorder: &RecorderHandle,
    user_id: i64,
    host: i64,
    track: &Track,
) -> Result<(), StoreError> {
    if let Some(set) = store.add_track_in(user_id, host, track).await? {
        link_recording(store, recorder, UserId(host), set).await?;
    }
    Ok(())
}

/// Records the set's file in its row and writes its tracklist beside it, if the recorder's
/// latest file is this set's.
async fn link_recording(
    store: &Store,
    recorder: &RecorderHandle,
    user_id: UserId,
    set: OpenSet,
) -> Result<(), StoreError> {
    let Some(file) = recorder.last_set_file(user_id) else { return Ok(()) };
    let file_started = file.started.duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    if file_started + (RECORDING_SLACK.as_secs() as i64) < set.started_at {
        return Ok(()); // an earlier set's recording: this one was not recorded
    }
    store.set_recording(set.id, &file.path.display().to_string()).await?;
    let tracks = store.tracklist(set.id).await?;
    if tracks.is_empty() {
        return Ok(());
    }
    let path = tracklist_path(&file.path);
    if let Err(e) = tokio::fs::write(&path, tracklist_text(set.started_at, &tracks)).await {
        tracing::warn!("writing the tracklist {}: {e}", path.display());
    }
    Ok(())
}

/// `…/2026-11-26T00-09-43Z.flv` → `…/2026-11-26T00-09-43Z.tracklist.txt`.
pub fn tracklist_path(recording: &Path) -> PathBuf {
    recording.with_extension("tracklist.txt")
}

/// One line per track, with its time into the set (`0:12:34  Artist – Title`), and
/// `(recognised)` after those the DJ did not name.
pub fn tracklist_text(started_at: i64, tracks: &[Track]) -> String {
    let mut text = format!("# Set started {}\n", format_datetime(started_at));
    for track in tracks {
        let offset = (track.at - started_at).max(0);
        let (h, m, s) = (offset / 3600, offset / 60 % 60, offset % 60);
        let mark = if track.source == TrackSource::Recognised { "  (recognised)" } else { "" };
        text.push_str(&format!("{h}:{m:02}:{s:02}  {} – {}{mark}\n", track.artist, track.title));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracklists_show_time_into_the_set() {
        let t0 = 1_795_000_000;
        let tracks = [
            Track { artist: "Early".into(), title: "Warm-up".into(), at: t0 - 40, source: TrackSource::Dj },
            Track { artist: "Ada".into(), title: "Loops".into(), at: t0 + 754, source: TrackSource::Dj },
            Track { artist: "Moodymann".into(), title: "Jan".into(), at: t0 + 900, source: TrackSource::Recognised },
        ];
        assert_eq!(
            tracklist_text(t0, &tracks),
            "# Set started 2026-11-18 11:06 UTC\n0:00:00  Early – Warm-up\n0:12:34  Ada – Loops\n\
             0:15:00  Moodymann – Jan  (recognised)\n"
        );
        assert_eq!(
            tracklist_path(Path::new("/rec/Ada/2026-11-26T00-09-43Z.flv")),
            Path::new("/rec/Ada/2026-11-26T00-09-43Z.tracklist.txt")
        );
    }
}
