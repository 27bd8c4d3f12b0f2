//! Converts one off-profile DJ's stream to the channel profile with an ffmpeg subprocess,
//! as Owncast and Restreamer do: the DJ's FLV tags go to `ffmpeg -f flv -i pipe:0`, and the
//! FLV it writes on `pipe:1` feeds a derived [`Publisher`] the program airs instead.
//!
//! Everything is bounded: the DJ's tags come through the publisher's broadcast (a slow
//! ffmpeg makes this task miss tags, never queue them), a write ffmpeg does not take within
//! [`STALL`] counts as a failure, the output reader refuses oversized tags, and stderr keeps
//! only its last lines. A failed ffmpeg is restarted (a new derived publisher, resuming at
//! the DJ's next keyframe) up to [`MAX_FAILURES`] times; then the DJ is covered by the slate.
//! The child is killed when the DJ leaves, when the task is dropped, or when the program has
//! not asked for this stream for [`UNWANTED_FOR`].

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;

use crate::channel::ChannelConfig;
use crate::hub::{Publisher, PublisherFeed};
use crate::ids::ConnId;
use crate::media::codec::{AudioTagInfo, VideoTagInfo, is_video_keyframe};
use crate::media::flv::{FlvHeader, FlvStreamReader, FlvTag, TagKind};
use crate::queue::engine::Dj;

/// ffmpeg that takes no input or writes no output for this long is stuck.
pub const STALL: Duration = Duration::from_secs(10);
/// Transcodes run only while the program wants them.
pub const UNWANTED_FOR: Duration = Duration::from_secs(10);
/// Failures tolerated before the DJ is covered by the slate instead.
pub const MAX_FAILURES: u32 = 3;
/// Pause before restarting a failed ffmpeg.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// Largest tag accepted from ffmpeg (a 4K keyframe fits).
const MAX_OUTPUT_TAG: usize = 16 * 1024 * 1024;
/// stderr lines kept for the log when ffmpeg fails.
const STDERR_LINES: usize = 8;
const STDERR_LINE_BYTES: usize = 300;

/// Where a transcode is.
#[derive(Clone)]
pub enum TranscodeState {
    /// ffmpeg is starting or has produced no keyframe yet.
    Starting,
    /// The transcoded stream, ready to air.
    Running(Arc<Publisher>),
    /// ffmpeg failed too often, or the transcode ended.
    Failed,
}

struct Shared {
    state: TranscodeState,
    wanted_at: Instant,
}

/// A running transcode of one publisher. Dropping it kills ffmpeg.
pub struct Transcoder {
    shared: Arc<Mutex<Shared>>,
    task: JoinHandle<()>,
}

impl Drop for Transcoder {
    fn drop(&mut self) {
        // The child was spawned with kill_on_drop: aborting the task kills it.
        self.task.abort();
    }
}

impl Transcoder {
    /// Starts transcoding `feed` (a subscription to the DJ's publisher) to the channel
    /// profile. Must be called within a tokio runtime.
    pub fn spawn(feed: PublisherFeed, conn: ConnId, dj: Dj, config: Arc<ChannelConfig>) -> Self {
        let shared = Arc::new(Mutex::new(Shared { state: TranscodeState::Starting, wanted_at: Instant::now() }));
        let task = tokio::spawn(run(feed, conn, dj, config, shared.clone()));
        Self { shared, task }
    }

    /// The program wants this stream now; also returns where the transcode is.
    pub fn want(&self) -> TranscodeState {
        let mut shared = lock(&self.shared);
        shared.wanted_at = Instant::now();
        shared.state.clone()
    }

    /// Where the transcode is, without asking for it.
    pub fn state(&self) -> TranscodeState {
        lock(&self.shared).state.clone()
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The arguments after `ffmpeg`: FLV in on stdin, the channel profile out on stdout.
pub fn ffmpeg_args(config: &ChannelConfig) -> Vec<String> {
    let p = &config.profile;
    let (w, h) = (p.width, p.height);
    let gop = ((2.0 * p.fps).round() as u32).max(1);
    let kbps = config.transcode_video_kbps;
    let video_filter = format!(
        "scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={},format=yuv420p",
        p.fps
    );
    let (rate, channels) = (p.sample_rate, p.channels);
    let mut args = Vec::new();
    let mut push = |words: &str| args.extend(words.split(' ').map(str::to_owned));
    push("-hide_banner -loglevel warning -nostats");
    // The headers come first: do not read seconds of input to guess what they say. (Not
    // `-fflags nobuffer`: with ffmpeg 5.1 it holds the first output back by a whole GOP.)
    push("-probesize 65536 -analyzeduration 200000 -f flv -i pipe:0 -map 0:v:0? -map 0:a:0?");
    push(&format!("-vf {video_filter}"));
    push(&format!("-c:v libx264 -preset veryfast -tune zerolatency -profile:v high -b:v {kbps}k -maxrate {kbps}k"));
    push(&format!("-bufsize {}k -g {gop} -keyint_min {gop} -sc_threshold 0", 2 * kbps));
    // Gaps in the DJ's audio become silence, so the audio track stays continuous.
    push(&format!("-af aresample=async=1000 -c:a aac -b:a 160k -ar {rate} -ac {channels}"));
    // Each packet is written at once, not when ffmpeg's 32 KiB output buffer is full.
    push("-flush_packets 1 -f flv -flvflags no_duration_filesize pipe:1");
    args
}

/// Checks at start-up that `ffmpeg` exists and has the encoders a transcode needs; the
/// error is one line naming what is missing.
pub async fn check_ffmpeg(ffmpeg: &str) -> Result<(), String> {
    let needs = "channel.off_profile = \"transcode\" needs ffmpeg with the libx264 and aac encoders";
    let output = Command::new(ffmpeg)
        .args(["-hide_banner", "-encoders"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(Duration::from_secs(20), output).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => {
            return Err(format!("{needs}: cannot run `{ffmpeg}`: {e} (install ffmpeg or set channel.ffmpeg)"));
        }
        Err(_) => return Err(format!("{needs}: `{ffmpeg} -encoders` did not answer within 20 s")),
    };
    let list = String::from_utf8_lossy(&output.stdout);
    // Lines look like " V....D libx264   libx264 H.264 / AVC ...".
    let has = |name: &str| list.lines().any(|line| line.split_whitespace().nth(1) == Some(name));
    let missing: Vec<&str> = ["libx264", "aac"].into_iter().filter(|e| !has(e)).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("{needs}: `{ffmpeg}` has no {} encoder", missing.join(" or ")))
    }
}

/// The DJ's latest headers, re-sent to each ffmpeg started.
#[derive(Default)]
struct Headers {
    metadata: Option<FlvTag>,
    video: Option<FlvTag>,
    audio: Option<FlvTag>,
}

impl Headers {
    /// Remembers `tag` if it is a header; returns whether it was.
    fn note(&mut self, tag: &FlvTag) -> bool {
        let slot = match tag.kind {
            TagKind::Script if tag.is_metadata() => &mut self.metadata,
            TagKind::Video if VideoTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_sequence_header()) => {
                &mut self.video
            }
            TagKind::Audio if AudioTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_sequence_header()) => {
                &mut self.audio
            }
            _ => return false,
        };
        *slot = Some(tag.clone());
        true
    }
}

/// Why one ffmpeg run ended.
enum RunEnd {
    /// The DJ left: stop for good.
    SourceGone,
    /// The program no longer wants this stream.
    Unwanted,
    /// ffmpeg failed; the message says how.
    Failed(String),
}

async fn run(feed: PublisherFeed, conn: ConnId, dj: Dj, config: Arc<ChannelConfig>, shared: Arc<Mutex<Shared>>) {
    let PublisherFeed { headers: first, startup, mut live } = feed;
    let mut headers = Headers { metadata: first.metadata, video: first.video, audio: first.audio };
    // The cached GOP starts the first run at once; later runs wait for a keyframe.
    let mut backlog: VecDeque<FlvTag> = startup.into_iter().filter(|t| !headers.note(t)).collect();
    let mut failures = 0;
    loop {
        let end = run_once(&config, conn, &dj, &mut headers, &mut backlog, &mut live, &shared).await;
        match end {
            RunEnd::SourceGone | RunEnd::Unwanted => break,
            RunEnd::Failed(why) => {
                failures += 1;
                tracing::warn!("transcoding {}'s stream: ffmpeg failed ({failures}/{MAX_FAILURES}): {why}", dj.dj_name);
                if failures >= MAX_FAILURES {
                    tracing::warn!("{} is covered by the slate: their stream cannot be transcoded", dj.dj_name);
                    break;
                }
                lock(&shared).state = TranscodeState::Starting;
                tokio::time::sleep(RESTART_AFTER).await;
            }
        }
    }
    lock(&shared).state = TranscodeState::Failed;
}

async fn run_once(
    config: &ChannelConfig,
    conn: ConnId,
    dj: &Dj,
    headers: &mut Headers,
    backlog: &mut VecDeque<FlvTag>,
    live: &mut broadcast::Receiver<FlvTag>,
    shared: &Mutex<Shared>,
) -> RunEnd {
    let mut child = match Command::new(&config.ffmpeg)
        .args(ffmpeg_args(config))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return RunEnd::Failed(format!("cannot run `{}`: {e}", config.ffmpeg)),
    };
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return RunEnd::Failed("no pipes to ffmpeg".into());
    };
    let derived = Arc::new(Publisher::new(conn, dj.clone(), Instant::now()));
    let errors = Arc::new(Mutex::new(VecDeque::new()));
    let stderr_task = tokio::spawn(keep_last_lines(stderr, errors.clone()));
    let end = tokio::select! {
        end = feed_ffmpeg(stdin, headers, backlog, live, shared) => end,
        end = read_ffmpeg(stdout, &derived, shared) => end,
        status = child.wait() => RunEnd::Failed(match status {
            Ok(status) => format!("exited with {status}"),
            Err(e) => format!("lost: {e}"),
        }),
    };
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    let _ = tokio::time::timeout(Duration::from_millis(200), stderr_task).await;
    match end {
        RunEnd::Failed(why) => {
            let lines: Vec<String> = errors.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default();
            if lines.is_empty() {
                RunEnd::Failed(why)
            } else {
                RunEnd::Failed(format!("{why}; ffmpeg said: {}", lines.join(" | ")))
            }
        }
        other => other,
    }
}

/// Writes the DJ's stream to ffmpeg: the file header, the latest headers, the backlog, then
/// live tags. Returns when the DJ leaves, the program stops wanting the stream, or ffmpeg
/// stops taking input.
async fn feed_ffmpeg(
    mut stdin: ChildStdin,
    headers: &mut Headers,
    backlog: &mut VecDeque<FlvTag>,
    live: &mut broadcast::Receiver<FlvTag>,
    shared: &Mutex<Shared>,
) -> RunEnd {
    let file_header = FlvHeader { has_audio: headers.audio.is_some(), has_video: true };
    if let Err(why) = write(&mut stdin, Bytes::copy_from_slice(&file_header.encode())).await {
        return RunEnd::Failed(why);
    }
    let first: Vec<FlvTag> =
        [&headers.metadata, &headers.video, &headers.audio].into_iter().flatten().cloned().collect();
    // A restarted ffmpeg must begin at a keyframe, with the headers stamped like it.
    let mut started = false;
    let mut pending_headers = Some(first);
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        let tag = if let Some(tag) = backlog.pop_front() {
            tag
        } else {
            tokio::select! {
                received = live.recv() => match received {
                    Ok(tag) => tag,
                    // ffmpeg fell behind the DJ: the missed tags are gone; resume at a keyframe.
                    Err(RecvError::Lagged(_)) => { started = false; continue; }
                    Err(RecvError::Closed) => return RunEnd::SourceGone,
                },
                _ = check.tick() => {
                    if lock(shared).wanted_at.elapsed() > UNWANTED_FOR {
                        return RunEnd::Unwanted;
                    }
                    continue;
                }
            }
        };
        if headers.note(&tag) {
            if started && let Err(why) = write_tag(&mut stdin, &tag).await {
                return RunEnd::Failed(why);
            }
            continue;
        }
        if !started {
            if tag.kind != TagKind::Video || !is_video_keyframe(&tag) {
                continue;
            }
            started = true;
            for mut header in pending_headers.take().unwrap_or_default() {
                header.timestamp = tag.timestamp;
                if let Err(why) = write_tag(&mut stdin, &header).await {
                    return RunEnd::Failed(why);
                }
            }
        }
        if let Err(why) = write_tag(&mut stdin, &tag).await {
            return RunEnd::Failed(why);
        }
    }
}

async fn write_tag(stdin: &mut ChildStdin, tag: &FlvTag) -> Result<(), String> {
    let encoded = tag.encode().map_err(|e| e.to_string())?;
    for part in encoded.into_chunks() {
        write(stdin, part).await?;
    }
    Ok(())
}

async fn write(stdin: &mut ChildStdin, bytes: Bytes) -> Result<(), String> {
    match tokio::time::timeout(STALL, stdin.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("stopped reading its input: {e}")),
        Err(_) => Err(format!("took no input for {} s", STALL.as_secs())),
    }
}

/// Reads ffmpeg's FLV into the derived publisher, which becomes the one to air at its
/// first keyframe.
async fn read_ffmpeg(mut stdout: impl AsyncRead + Unpin, derived: &Arc<Publisher>, shared: &Mutex<Shared>) -> RunEnd {
    let mut reader = FlvStreamReader::with_max_tag_size(MAX_OUTPUT_TAG);
    let mut buf = vec![0u8; 64 * 1024];
    let mut ready = false;
    loop {
        let n = match tokio::time::timeout(STALL, stdout.read(&mut buf)).await {
            Ok(Ok(0)) => return RunEnd::Failed("closed its output".into()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return RunEnd::Failed(format!("output: {e}")),
            Err(_) => return RunEnd::Failed(format!("wrote nothing for {} s", STALL.as_secs())),
        };
        if let Err(e) = reader.feed(&buf[..n]) {
            return RunEnd::Failed(format!("output: {e}"));
        }
        loop {
            match reader.next_tag() {
                Ok(Some(tag)) => {
                    let keyframe = is_video_keyframe(&tag);
                    derived.on_tag(Instant::now(), tag);
                    if keyframe && !ready {
                        ready = true;
                        lock(shared).state = TranscodeState::Running(derived.clone());
                    }
                }
                Ok(None) => break,
                Err(e) => return RunEnd::Failed(format!("output: {e}")),
            }
        }
    }
}

/// Keeps ffmpeg's last stderr lines (bounded in count and length) for the log.
async fn keep_last_lines(stderr: impl AsyncRead + Unpin, lines: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bounded: a line without newline cannot grow past the cap.
        match (&mut reader).take(4096).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim().chars().take(STDERR_LINE_BYTES).collect::<String>();
        if text.is_empty() {
            continue;
        }
        if let Ok(mut lines) = lines.lock() {
            if lines.len() == STDERR_LINES {
                lines.pop_front();
            }
            lines.push_back(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChannelProfile;

    #[test]
    fn ffmpeg_converts_to_the_profile_keeping_the_aspect_ratio() {
        let config = ChannelConfig {
            profile: ChannelProfile { width: 1920, height: 1080, fps: 25.0, sample_rate: 44100, channels: 1 },
            transcode_video_kbps: 5000,
            ..ChannelConfig::default()
        };
        let args = ffmpeg_args(&config).join(" ");
        for part in [
            "-f flv -i pipe:0",
            "-vf scale=1920:1080:force_original_aspect_ratio=decrease,pad=1920:1080:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25,",
            "-c:v libx264 -preset veryfast -tune zerolatency",
            "-b:v 5000k -maxrate 5000k -bufsize 10000k -g 50 -keyint_min 50",
            "-c:a aac -b:a 160k -ar 44100 -ac 1",
            "-f flv -flvflags no_duration_filesize pipe:1",
        ] {
            assert!(args.contains(part), "{part} not in {args}");
        }
    }

    #[tokio::test]
    async fn the_start_up_check_names_the_missing_encoder() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("ffmpeg");
        // An ffmpeg built without libx264 lists only its other encoders.
        std::fs::write(&fake, "#!/bin/sh\necho ' V....D libopenh264  OpenH264'\necho ' A....D aac   AAC'\n").unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let e = check_ffmpeg(fake.to_str().unwrap()).await.unwrap_err();
        assert!(e.ends_with("has no libx264 encoder"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
}
