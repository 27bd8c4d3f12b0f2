//! Recording: each set is written as it arrives (remuxed, never transcoded) to
//! `RECORD_DIR/<dj_name>/<UTC start>.flv`, and optionally the program to
//! `RECORD_DIR/program/<UTC start>.flv`.
//!
//! One set, one file: when the lead's connection drops, the file stays open through the
//! grace period, and if the DJ resumes the set (the queue's `Resumed`), the new connection
//! is appended to it. A new set (`OnAir`), the end of the set (`SetEnded`) or shutdown
//! closes it. What goes into the file is decided by a `SetWriter`: every connection of
//! the set, and every point where the recorder fell behind the publisher and lost tags,
//! starts with the sequence headers and a keyframe, one frame after the last frame written.
//!
//! A failing disk (full, unwritable) stops that recording with an error in the log and the
//! status; it never touches streaming, which only shares `Bytes` with the recorder.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::hub::{PublisherFeed, Publishers, StreamHeaders};
use crate::ids::{ConnId, UserId};
use crate::media::codec::{is_stream_header, is_video_keyframe};
use crate::media::flv::{FlvHeader, FlvTag, ZeroBase};
use crate::media::switcher::{Source, Switcher, SwitcherConfig};
use crate::program::ProgramBus;
use crate::queue::engine::Notice;

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
///
/// `notices` must be subscribed together with `source`, from the same queue: the set
/// recorder reads the notices that precede a program change to tell a resumed set from a
/// new one.
pub fn spawn(
    config: RecorderConfig,
    source: watch::Receiver<Option<ConnId>>,
    notices: broadcast::Receiver<Notice>,
    publishers: Publishers,
    program: ProgramBus,
    shutdown: watch::Receiver<bool>,
) -> (RecorderHandle, Vec<JoinHandle<()>>) {
    let handle = RecorderHandle::default();
    let mut tasks = Vec::new();
    if config.sets {
        let follow = SetFollower { source, notices, publishers, handle: handle.clone(), shutdown };
        tasks.push(tokio::spawn(follow.run(config.dir.clone())));
    }
    if config.program {
        tasks.push(tokio::spawn(record_program(config.dir, program, handle.clone())));
    }
    (handle, tasks)
}

/// A set being recorded. Its file stays open while the set is held for a DJ whose
/// connection dropped.
struct OpenSet {
    user_id: UserId,
    file: FlvFile,
    writer: SetWriter,
    /// False once queue notices were missed: the recorder can no longer tell a resumed set
    /// from a new one, and starts a new file rather than risk merging two sets.
    resumable: bool,
}

impl OpenSet {
    /// A back-to-back set went on with another member: their connection continues this
    /// file, as a reconnecting DJ's would.
    fn handed_to(&mut self, user_id: UserId) {
        self.user_id = user_id;
    }

    async fn write(&mut self, tags: Vec<FlvTag>) -> std::io::Result<()> {
        for tag in tags {
            self.file.write(&tag).await?;
        }
        Ok(())
    }
}

/// Why recording one connection of a set stopped.
enum PartEnd {
    /// The connection is no longer the program: the set may resume with another one.
    Paused,
    /// The queue ended the set or started another one.
    SetEnded,
    /// Shutdown, or the queue is gone.
    Stop,
}

/// Follows the on-air publisher and the queue's notices, and writes one file per set.
struct SetFollower {
    source: watch::Receiver<Option<ConnId>>,
    notices: broadcast::Receiver<Notice>,
    publishers: Publishers,
    handle: RecorderHandle,
    shutdown: watch::Receiver<bool>,
}

impl SetFollower {
    async fn run(mut self, dir: PathBuf) {
        let mut set: Option<OpenSet> = None;
        'follow: loop {
            let conn = *self.source.borrow_and_update();
            // The engine emits the notices of a queue change before the program source it
            // leads to, so those notices are already here: whether `set` is still open says
            // whether this connection resumes it.
            loop {
                match self.notices.try_recv() {
                    Ok(notice) => self.apply(Ok(notice), &mut set).await,
                    Err(TryRecvError::Lagged(n)) => self.apply(Err(RecvError::Lagged(n)), &mut set).await,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => break 'follow,
                }
            }
            if let Some((conn, publisher)) = conn.and_then(|c| Some((c, self.publishers.get(c)?))) {
                let feed = publisher.subscribe();
                let resumes = set.as_ref().is_some_and(|s| s.resumable && s.user_id == publisher.dj.user_id);
                if !resumes {
                    self.close(set.take()).await;
                    let started = SystemTime::now();
                    let path = dir.join(safe_file_name(&publisher.dj.dj_name)).join(file_name(started));
                    match FlvFile::create(&path).await {
                        Ok(file) => {
                            tracing::info!("recording the set to {}", path.display());
                            *self.handle.last_set.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(SetFile { user_id: publisher.dj.user_id, path, started });
                            let writer = SetWriter::new();
                            set = Some(OpenSet { user_id: publisher.dj.user_id, file, writer, resumable: true });
                        }
                        Err(e) => fail(&self.handle, &path, e),
                    }
                } else {
                    tracing::info!("the set resumes: appending to the same recording");
                }
                drop(publisher); // do not keep the publisher alive: its end closes `feed.live`
                if let Some(open) = set.as_mut() {
                    match self.record_part(open, conn, feed).await {
                        Ok(PartEnd::Paused) => {
                            // Held for a reconnect: what was written so far is on disk.
                            if let Err(e) = open.file.flush().await {
                                self.fail_set(&mut set, e);
                            }
                        }
                        Ok(PartEnd::SetEnded) => self.close(set.take()).await,
                        Ok(PartEnd::Stop) => break,
                        Err(e) => self.fail_set(&mut set, e),
                    }
                }
            }
            if *self.shutdown.borrow() {
                break;
            }
            // Wait for the next program change, unless it is what ended the part.
            while *self.source.borrow() == conn {
                tokio::select! {
                    changed = self.source.changed() => if changed.is_err() { break 'follow },
                    notice = self.notices.recv() => {
                        if matches!(notice, Err(RecvError::Closed)) {
                            break 'follow;
                        }
                        self.apply(notice, &mut set).await;
                    }
                    _ = self.shutdown.changed() => break 'follow,
                }
            }
        }
        self.close(set).await;
    }

    /// Writes the tags of `conn` into the open set until it stops being the program.
    async fn record_part(
        &mut self,
        set: &mut OpenSet,
        conn: ConnId,
        mut feed: PublisherFeed,
    ) -> std::io::Result<PartEnd> {
        let tags = set.writer.start_part(conn, &feed.startup);
        set.write(tags).await?;
        loop {
            tokio::select! {
                tag = feed.live.recv() => match tag {
                    Ok(tag) => {
                        let tags = set.writer.push(&tag);
                        set.write(tags).await?;
                        self.handle.update(|s| s.set = Some(set.file.status()));
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("the set recorder fell {n} tags behind; skipping to the next keyframe");
                        // The publisher's current headers, in case a changed one was lost.
                        let headers = self.publishers.get(conn).map(|p| p.subscribe().headers).unwrap_or_default();
                        set.writer.lagged(n, &headers_of(headers));
                    }
                    Err(RecvError::Closed) => return Ok(PartEnd::Paused),
                },
                changed = self.source.changed() => {
                    if changed.is_err() {
                        return Ok(PartEnd::Stop);
                    }
                    if *self.source.borrow() != Some(conn) {
                        return Ok(PartEnd::Paused);
                    }
                }
                notice = self.notices.recv() => match notice {
                    Ok(Notice::OnAir { .. } | Notice::SetEnded { .. }) => return Ok(PartEnd::SetEnded),
                    Ok(Notice::HandedOver { to, .. }) => set.handed_to(to.user_id),
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!("the set recorder missed {n} queue notices");
                        set.resumable = false;
                    }
                    Err(RecvError::Closed) => return Ok(PartEnd::Stop),
                },
                _ = self.shutdown.changed() => return Ok(PartEnd::Stop),
            }
        }
    }

    /// Follows a queue notice while no connection of the set is being recorded.
    async fn apply(&self, notice: Result<Notice, RecvError>, set: &mut Option<OpenSet>) {
        match notice {
            Ok(Notice::OnAir { .. } | Notice::SetEnded { .. }) => self.close(set.take()).await,
            Ok(Notice::HandedOver { to, .. }) => {
                if let Some(set) = set {
                    set.handed_to(to.user_id);
                }
            }
            Ok(_) | Err(RecvError::Closed) => {}
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("the set recorder missed {n} queue notices");
                if let Some(set) = set {
                    set.resumable = false;
                }
            }
        }
    }

    async fn close(&self, set: Option<OpenSet>) {
        let Some(set) = set else { return };
        self.handle.update(|s| s.set = None);
        let path = set.file.path.clone();
        if let Err(e) = set.file.finish().await {
            fail(&self.handle, &path, e);
        }
    }

    fn fail_set(&self, set: &mut Option<OpenSet>, e: std::io::Error) {
        if let Some(set) = set.take() {
            self.handle.update(|s| s.set = None);
            fail(&self.handle, &set.file.path, e);
        }
    }
}

/// A publisher's headers as tags, in the order a decoder needs them.
fn headers_of(headers: StreamHeaders) -> Vec<FlvTag> {
    [headers.metadata, headers.video, headers.audio].into_iter().flatten().collect()
}

/// Decides what a set's file gets, without I/O.
///
/// Each connection of the set (the first, and one the DJ resumes the set with) is a part,
/// and after the recorder fell behind its publisher the current part starts over: frames
/// after lost ones may reference them and would decode as garbage. Every start waits for a
/// video keyframe (an audio-only stream: the next audio frame), dropping audio too so the
/// tracks stay together, and is written as the sequence headers then that keyframe, one
/// frame after the last frame written. That is a program switch with one source at a time,
/// so a [`Switcher`] does it; the file's timeline starts at 0 and never goes back.
pub(crate) struct SetWriter {
    switcher: Switcher,
    part: Option<Source>,
    /// Tags lost since the recorder fell behind (missed, then skipped while waiting for
    /// the keyframe); `None` when not resynchronising.
    lost: Option<u64>,
}

impl SetWriter {
    pub(crate) fn new() -> Self {
        SetWriter { switcher: Switcher::new(SwitcherConfig::default()), part: None, lost: None }
    }

    /// Starts the part sent over `conn`, from `startup` (what its publisher's GOP cache
    /// holds: headers, then the cached GOP from its keyframe). Returns the tags to write.
    pub(crate) fn start_part(&mut self, conn: ConnId, startup: &[FlvTag]) -> Vec<FlvTag> {
        if let Some(old) = self.part.take() {
            self.switcher.source_ended(old);
        }
        let source = Source::Publisher(conn);
        self.switcher.select(source);
        self.part = Some(source);
        self.lost = None;
        startup.iter().flat_map(|tag| self.push(tag)).collect()
    }

    /// A tag of the current part; returns the tags to write.
    pub(crate) fn push(&mut self, tag: &FlvTag) -> Vec<FlvTag> {
        let Some(source) = self.part else { return Vec::new() };
        let out = self.switcher.push(source, tag);
        if let Some(lost) = self.lost.as_mut() {
            if self.switcher.current() == Some(source) {
                tracing::warn!("the set recording resumes at a keyframe; {lost} tags were lost");
                self.lost = None;
            } else if !is_stream_header(tag) {
                *lost += 1;
            }
        }
        out
    }

    /// The recorder missed `missed` tags of the current part. `headers` are the
    /// publisher's current sequence headers and metadata, written again at the keyframe.
    pub(crate) fn lagged(&mut self, missed: u64, headers: &[FlvTag]) {
        let Some(source) = self.part else { return };
        self.switcher.source_ended(source);
        self.switcher.select(source);
        for header in headers {
            self.switcher.push(source, header);
        }
        *self.lost.get_or_insert(0) += missed;
    }
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
    zero: ZeroBase,
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
        Ok(Self { path: path.to_path_buf(), out, zero: ZeroBase::default(), bytes: header.len() as u64 })
    }

    async fn write(&mut self, tag: &FlvTag) -> std::io::Result<()> {
        let tag = self.zero.apply(tag);
        let mut encoded = tag.encode().map_err(std::io::Error::other)?;
        self.bytes += bytes::Buf::remaining(&encoded) as u64;
        self.out.write_all_buf(&mut encoded).await?;
        // Flush once per GOP: a crash or a kill loses at most the current GOP.
        if is_video_keyframe(&tag) {
            self.out.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush().await
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
    use crate::media::flv::TagKind;
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

    fn tag(kind: TagKind, ts: u32, payload: &[u8]) -> FlvTag {
        FlvTag::new(kind, ts, payload.to_vec())
    }
    fn avc_header() -> FlvTag {
        tag(TagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1, 0x64, 0x1f])
    }
    fn key(ts: u32) -> FlvTag {
        tag(TagKind::Video, ts, &[0x17, 1, 0, 0, 0, 0xaa])
    }
    fn inter(ts: u32) -> FlvTag {
        tag(TagKind::Video, ts, &[0x27, 1, 0, 0, 0, 0xbb])
    }
    fn aac_header() -> FlvTag {
        tag(TagKind::Audio, 0, &[0xaf, 0, 0x12, 0x10])
    }
    fn aac(ts: u32) -> FlvTag {
        tag(TagKind::Audio, ts, &[0xaf, 1, 0x21])
    }

    /// What a tag is, for comparing written tags: (kind, payload's first two bytes, ts).
    fn shape(tags: &[FlvTag]) -> Vec<(u8, u8, u32)> {
        tags.iter().map(|t| (t.payload[0], t.payload[1], t.timestamp)).collect()
    }

    fn assert_monotonic(tags: &[FlvTag]) {
        for kind in [TagKind::Video, TagKind::Audio] {
            let ts: Vec<u32> = tags.iter().filter(|t| t.kind == kind).map(|t| t.timestamp).collect();
            assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{kind:?} goes back: {ts:?}");
        }
    }

    #[test]
    fn after_falling_behind_the_set_skips_audio_and_video_to_the_next_keyframe() {
        let mut writer = SetWriter::new();
        let startup = [avc_header(), aac_header(), key(1000)];
        let mut written = writer.start_part(ConnId(7), &startup);
        assert_eq!(shape(&written), [(0x17, 0, 0), (0xaf, 0, 0), (0x17, 1, 0)], "headers, then the keyframe at 0");
        for t in [aac(1010), inter(1033), aac(1033), inter(1066)] {
            written.extend(writer.push(&t));
        }
        assert_eq!(written.len(), 7);

        writer.lagged(20, &[avc_header(), aac_header()]);
        // These frames follow lost ones: none of them is written, audio included.
        for t in [inter(2033), aac(2040), inter(2066), aac(2070)] {
            assert!(writer.push(&t).is_empty(), "wrote {t:?} before the keyframe");
        }
        let resync = writer.push(&key(2100));
        assert_eq!(
            shape(&resync),
            [(0x17, 0, 99), (0xaf, 0, 56), (0x17, 1, 99)],
            "headers again, then the keyframe one frame after the last one written"
        );
        written.extend(resync);
        for t in [aac(2110), inter(2133)] {
            written.extend(writer.push(&t));
        }
        assert_eq!(shape(&written[written.len() - 2..]), [(0xaf, 1, 109), (0x27, 1, 132)]);
        assert_monotonic(&written);
    }

    #[test]
    fn an_audio_only_set_resynchronises_on_the_next_audio_frame() {
        let mut writer = SetWriter::new();
        let mut written = writer.start_part(ConnId(7), &[aac_header(), aac(500)]);
        written.extend(writer.push(&aac(523)));
        writer.lagged(3, &[aac_header()]);
        let resync = writer.push(&aac(700));
        assert_eq!(shape(&resync), [(0xaf, 0, 46), (0xaf, 1, 46)]);
        written.extend(resync);
        assert_monotonic(&written);
    }

    #[test]
    fn a_resumed_set_continues_one_frame_after_its_last_frame() {
        let mut writer = SetWriter::new();
        let mut written = writer.start_part(ConnId(1), &[avc_header(), aac_header(), key(5000)]);
        for t in [aac(5010), inter(5033), aac(5033), inter(5066), aac(5056)] {
            written.extend(writer.push(&t));
        }
        // The new connection's clock starts again at 0, and its first frames are not a
        // keyframe (the publisher's cache had overflowed): they are skipped.
        let resumed = writer.start_part(ConnId(2), &[avc_header(), aac_header()]);
        assert!(resumed.is_empty());
        assert!(writer.push(&inter(0)).is_empty());
        assert!(writer.push(&aac(10)).is_empty());
        let resumed = writer.push(&key(33));
        assert_eq!(shape(&resumed), [(0x17, 0, 99), (0xaf, 0, 79), (0x17, 1, 99)]);
        written.extend(resumed);
        for t in [aac(43), inter(66)] {
            written.extend(writer.push(&t));
        }
        assert_eq!(shape(&written[written.len() - 2..]), [(0xaf, 1, 109), (0x27, 1, 132)]);
        assert_monotonic(&written);
    }

    #[tokio::test]
    async fn files_start_at_zero_and_read_back() {
        use crate::media::flv::FlvReader;
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
