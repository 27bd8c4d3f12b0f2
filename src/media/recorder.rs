//! Recording: each set is written as it arrives (remuxed, never transcoded) to
//! `RECORD_DIR/<dj_name>/<UTC start>.flv`, and optionally the program to
//! `RECORD_DIR/program/<UTC start>.flv`.
//!
//! A failing disk (full, unwritable) stops that recording with an error in the log and the
//! status; it never touches streaming, which only shares `Bytes` with the recorder.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::codec::is_video_keyframe;
use super::flv::{FlvHeader, FlvTag};
use crate::ingest::{PublisherFeed, Publishers};
use crate::program::ProgramBus;
use crate::queue::engine::{ConnId, UserId};

/// Write buffer per open recording.
const WRITE_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct RecorderConfig {
    pub dir: PathBuf,
    /// Record each DJ's set.
    pub sets: bool,
    /// Record the program feed too.
    pub program: bool,
}

/// What the recorder is doing, for the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecorderStatus {
    pub set: Option<RecordingStatus>,
    pub program: Option<RecordingStatus>,
    /// The last failure (disk full, permissions…), if any.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordingStatus {
    pub path: String,
    pub bytes: u64,
}

/// The file of the set recorded most recently, for the set history.
#[derive(Debug, Clone, PartialEq)]
pub struct SetFile {
    pub user_id: UserId,
    pub path: PathBuf,
    pub started: SystemTime,
}

/// Shared view of the recorder's state.
#[derive(Clone, Default)]
pub struct RecorderHandle {
    status: Arc<Mutex<RecorderStatus>>,
    last_set: Arc<Mutex<Option<SetFile>>>,
}

impl RecorderHandle {
    pub fn status(&self) -> RecorderStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The last set file opened for `user_id`, if the last set recorded was theirs.
    pub fn last_set_file(&self, user_id: UserId) -> Option<SetFile> {
        self.last_set.lock().unwrap_or_else(|p| p.into_inner()).clone().filter(|f| f.user_id == user_id)
    }

    fn update(&self, f: impl FnOnce(&mut RecorderStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Starts the recorder tasks the configuration asks for. They finish their files and end
/// on `shutdown` (set recordings) or when the program ends (the program recording); await
/// the returned tasks to be sure the files are complete.
pub fn spawn(
    config: RecorderConfig,
    source: watch::Receiver<Option<ConnId>>,
    publishers: Publishers,
    program: ProgramBus,
    shutdown: watch::Receiver<bool>,
) -> (RecorderHandle, Vec<JoinHandle<()>>) {
    let handle = RecorderHandle::default();
    let mut tasks = Vec::new();
    if config.sets {
        tasks.push(tokio::spawn(record_sets(config.dir.clone(), source, publishers, handle.clone(), shutdown)));
    }
    if config.program {
        tasks.push(tokio::spawn(record_program(config.dir, program, handle.clone())));
    }
    (handle, tasks)
}

/// Follows the on-air publisher and writes one file per set.
async fn record_sets(
    dir: PathBuf,
    mut source: watch::Receiver<Option<ConnId>>,
    publishers: Publishers,
    handle: RecorderHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let conn = *source.borrow_and_update();
        if let Some(publisher) = conn.and_then(|c| publishers.get(c)) {
            let feed = publisher.subscribe();
            let started = SystemTime::now();
            let path = dir.join(safe_file_name(&publisher.dj.dj_name)).join(file_name(started));
            *handle.last_set.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(SetFile { user_id: publisher.dj.user_id, path: path.clone(), started });
            drop(publisher); // do not keep the publisher alive: its end closes `feed.live`
            let written = record_set(&path, feed, conn, &mut source, &mut shutdown, &handle).await;
            handle.update(|s| s.set = None);
            if let Err(e) = written {
                fail(&handle, &path, e);
            }
        }
        if *shutdown.borrow() {
            return;
        }
        // Wait for the next on-air change, unless it is what ended the set.
        if *source.borrow() == conn {
            tokio::select! {
                changed = source.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Writes one set until the DJ leaves, the program moves on, or the server shuts down.
async fn record_set(
    path: &Path,
    mut feed: PublisherFeed,
    conn: Option<ConnId>,
    source: &mut watch::Receiver<Option<ConnId>>,
    shutdown: &mut watch::Receiver<bool>,
    handle: &RecorderHandle,
) -> std::io::Result<()> {
    let mut file = FlvFile::create(path).await?;
    tracing::info!("recording the set to {}", path.display());
    for tag in feed.startup.drain(..) {
        file.write(&tag).await?;
    }
    loop {
        tokio::select! {
            tag = feed.live.recv() => match tag {
                Ok(tag) => {
                    file.write(&tag).await?;
                    handle.update(|s| s.set = Some(file.status()));
                }
                Err(RecvError::Lagged(n)) => tracing::warn!("recorder fell {n} tags behind"),
                Err(RecvError::Closed) => break,
            },
            changed = source.changed() => {
                if changed.is_err() || *source.borrow() != conn {
                    break;
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    file.finish().await
}

/// Writes the program to one file per continuous run of the program.
async fn record_program(dir: PathBuf, program: ProgramBus, handle: RecorderHandle) {
    while let Some(mut sub) = program.subscribe("program recorder").await {
        // Open the file only once the program actually produces something.
        let Some(first) = sub.recv().await else { continue };
        let path = dir.join("program").join(file_name(SystemTime::now()));
        let result = async {
            let mut file = FlvFile::create(&path).await?;
            tracing::info!("recording the program to {}", path.display());
            file.write(&first).await?;
            while let Some(tag) = sub.recv().await {
                file.write(&tag).await?;
                handle.update(|s| s.program = Some(file.status()));
            }
            file.finish().await
        }
        .await;
        handle.update(|s| s.program = None);
        if let Err(e) = result {
            fail(&handle, &path, e);
            // Do not spin on a broken disk: the next program run tries again.
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    }
}

fn fail(handle: &RecorderHandle, path: &Path, e: std::io::Error) {
    let message = format!("recording {} stopped: {e}", path.display());
    tracing::error!("{message}; streaming continues");
    handle.update(|s| s.last_error = Some(message));
}

/// An FLV file being written, with timestamps starting at 0.
struct FlvFile {
    path: PathBuf,
    out: BufWriter<tokio::fs::File>,
    base: Option<u32>,
    bytes: u64,
}

impl FlvFile {
    async fn create(path: &Path) -> std::io::Result<Self> {
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(path).await?;
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let header = FlvHeader { has_audio: true, has_video: true }.encode();
        out.write_all(&header).await?;
        Ok(Self { path: path.to_path_buf(), out, base: None, bytes: header.len() as u64 })
    }

    async fn write(&mut self, tag: &FlvTag) -> std::io::Result<()> {
        let base = *self.base.get_or_insert(tag.timestamp);
        let tag = FlvTag { timestamp: tag.timestamp.wrapping_sub(base), ..tag.clone() };
        let mut encoded = tag.encode().map_err(std::io::Error::other)?;
        self.bytes += bytes::Buf::remaining(&encoded) as u64;
        self.out.write_all_buf(&mut encoded).await?;
        // Flush once per GOP: a crash or a kill loses at most the current GOP.
        if is_video_keyframe(&tag) {
            self.out.flush().await?;
        }
        Ok(())
    }

    /// Flushes and syncs, so the file is complete on disk.
    async fn finish(mut self) -> std::io::Result<()> {
        self.out.flush().await?;
        self.out.get_mut().sync_data().await?;
        tracing::info!("recording {} finished ({} bytes)", self.path.display(), self.bytes);
        Ok(())
    }

    fn status(&self) -> RecordingStatus {
        RecordingStatus { path: self.path.display().to_string(), bytes: self.bytes }
    }
}

/// A DJ name as a directory name: no path separators, no leading dots.
pub fn safe_file_name(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.') { c } else { '_' }).collect();
    let trimmed = cleaned.trim().trim_start_matches('.');
    if trimmed.is_empty() { "_".to_owned() } else { trimmed.to_owned() }
}

/// `2026-11-26T00-09-43Z.flv` (UTC; no colons, which some file systems refuse).
pub fn file_name(at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = crate::calendar::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z.flv", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn file_names_are_utc_and_sortable() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_651_783); // 2026-11-26 00:09:43
        assert_eq!(file_name(t), "2026-11-26T00-09-43Z.flv");
        assert_eq!(file_name(SystemTime::UNIX_EPOCH), "1970-01-01T00-00-00Z.flv");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(file_name(leap), "2000-02-29T00-00-00Z.flv");
    }

    #[test]
    fn dj_names_cannot_escape_the_record_dir() {
        assert_eq!(safe_file_name("DJ Alice"), "DJ Alice");
        assert_eq!(safe_file_name("../../etc"), "_.._etc");
        assert_eq!(safe_file_name("a/b\\c"), "a_b_c");
        assert_eq!(safe_file_name("..."), "_");
    }

    #[tokio::test]
    async fn files_start_at_zero_and_read_back() {
        use super::super::flv::{FlvReader, TagKind};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x").join("set.flv");
        let mut file = FlvFile::create(&path).await.unwrap();
        for ts in [1000u32, 1033, 1066] {
            let tag = FlvTag { kind: TagKind::Audio, timestamp: ts, payload: bytes::Bytes::from_static(&[0xAF, 1, 9]) };
            file.write(&tag).await.unwrap();
        }
        file.finish().await.unwrap();
        let data = bytes::Bytes::from(std::fs::read(&path).unwrap());
        let ts: Vec<u32> = FlvReader::new(data).unwrap().map(|t| t.unwrap().timestamp).collect();
        assert_eq!(ts, [0, 33, 66]);
        assert!(FlvFile::create(&path).await.is_err(), "never overwrites an existing recording");
    }
}
