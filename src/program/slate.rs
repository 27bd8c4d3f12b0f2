//! The idle slate: a short FLV loop the program plays while nobody is on air, so that
//! destinations stay connected and viewers see a picture instead of a stall.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::media::codec::{AudioTagInfo, VideoPacket, VideoTagInfo, is_video_keyframe};
use crate::media::flv::{FlvReader, FlvTag, TagKind};

/// A user slate is read whole into memory; bound it.
const MAX_SLATE_BYTES: u64 = 64 * 1024 * 1024;

/// A parsed slate: its stream headers and one loop of media starting at a keyframe, with
/// timestamps relative to that keyframe.
#[derive(Debug)]
pub struct Slate {
    headers: Vec<FlvTag>,
    frames: Vec<FlvTag>,
    loop_ms: u32,
}

impl Slate {
    /// Loads a user-supplied FLV (H.264/AAC or any codec the platforms accept).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let size = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?.len();
        if size > MAX_SLATE_BYTES {
            return Err(format!("{}: {size} bytes is larger than the {MAX_SLATE_BYTES}-byte limit", path.display()));
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_bytes(Bytes::from(bytes)).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_bytes(bytes: Bytes) -> Result<Self, String> {
        let reader = FlvReader::new(bytes).map_err(|e| format!("not an FLV file: {e}"))?;
        let mut headers = Vec::new();
        let mut frames: Vec<FlvTag> = Vec::new();
        for tag in reader {
            let tag = tag.map_err(|e| format!("malformed FLV: {e}"))?;
            let is_header = match tag.kind {
                TagKind::Script => true,
                TagKind::Video => {
                    let info = VideoTagInfo::parse(&tag.payload).map_err(|e| e.to_string())?;
                    // The end-of-sequence marker ffmpeg writes last must not loop: the
                    // program never ends while the slate plays.
                    if info.packet == VideoPacket::EndOfSequence {
                        continue;
                    }
                    info.is_sequence_header()
                }
                TagKind::Audio => AudioTagInfo::parse(&tag.payload).map_err(|e| e.to_string())?.is_sequence_header(),
            };
            if is_header {
                if frames.is_empty() {
                    headers.push(tag);
                }
                continue;
            }
            let keyframe = is_video_keyframe(&tag);
            // The loop starts at the first keyframe; anything before it could not be decoded.
            if frames.is_empty() && !keyframe {
                continue;
            }
            frames.push(tag);
        }
        let Some(first) = frames.first().map(|t| t.timestamp) else {
            return Err("no video keyframe: a slate needs H.264 (or HEVC/AV1) video".into());
        };
        if !headers.iter().any(|h| h.kind == TagKind::Video) {
            return Err("no video sequence header".into());
        }
        for f in &mut frames {
            f.timestamp = f.timestamp.saturating_sub(first);
        }
        let video: Vec<u32> = frames.iter().filter(|t| t.kind == TagKind::Video).map(|t| t.timestamp).collect();
        let frame_ms = match video.as_slice() {
            [.., a, b] if b > a => b - a,
            _ => 33,
        };
        // The loop is as long as its video; audio beyond it would overlap the next round.
        let loop_ms = video.last().map_or(frame_ms, |last| last + frame_ms);
        frames.retain(|t| t.timestamp < loop_ms);
        Ok(Self { headers, frames, loop_ms })
    }

    /// Length of one loop.
    pub fn loop_duration(&self) -> Duration {
        Duration::from_millis(u64::from(self.loop_ms))
    }

    pub fn video_header(&self) -> Option<&FlvTag> {
        self.headers.iter().find(|h| h.kind == TagKind::Video)
    }

    /// How long after its decoding the slate's first picture is shown (ms): its encoder's
    /// B-frame reorder delay.
    pub fn reorder_delay_ms(&self) -> u32 {
        self.frames
            .first()
            .and_then(|key| VideoTagInfo::parse(&key.payload).ok())
            .map_or(0, |info| u32::try_from(info.composition_time).unwrap_or(0))
    }
}

/// Plays a slate in real time with continuous timestamps across loops.
#[derive(Debug)]
pub struct SlatePlayer {
    started: Instant,
    /// Index into the frames of the next tag to play, and how many loops were completed.
    next: usize,
    round: u32,
    headers_sent: bool,
}

impl SlatePlayer {
    /// Starts at the beginning of the loop (a keyframe), now.
    pub fn start(now: Instant) -> Self {
        Self { started: now, next: 0, round: 0, headers_sent: false }
    }

    /// Tags whose time has come: the headers first, then media in real time.
    pub fn due(&mut self, slate: &Slate, now: Instant) -> Vec<FlvTag> {
        let mut out = Vec::new();
        if !self.headers_sent {
            self.headers_sent = true;
            out.extend(slate.headers.iter().cloned());
        }
        while let Some(at) = self.next_at(slate) {
            if at > now {
                break;
            }
            let frame = &slate.frames[self.next];
            let timestamp = self.round.wrapping_mul(slate.loop_ms).wrapping_add(frame.timestamp);
            out.push(FlvTag { timestamp, ..frame.clone() });
            self.next += 1;
            if self.next == slate.frames.len() {
                self.next = 0;
                self.round += 1;
            }
        }
        out
    }

    /// When the next tag is due.
    pub fn next_at(&self, slate: &Slate) -> Option<Instant> {
        let frame = slate.frames.get(self.next)?;
        let ms = u64::from(self.round) * u64::from(slate.loop_ms) + u64::from(frame.timestamp);
        Some(self.started + Duration::from_millis(ms))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A slate file as ffmpeg makes one (`tests/fixtures/slate.flv`: 2 s of 1280x720@30
    /// H.264 with B-frames + silent AAC, see `scripts/make-fixtures.sh`), as a user's
    /// `--slate` would be.
    #[test]
    fn the_built_in_slate_loops_at_its_length() {
        let profile = crate::channel::ChannelProfile::default();
        let slate = Slate::from_bytes(crate::channel::slate::generate(&profile).unwrap()).unwrap();
        // 48 frames at 30 fps, give or take the rounding of millisecond timestamps.
        let loop_ms = slate.loop_duration().as_millis();
        assert!((1600..=1602).contains(&loop_ms), "{loop_ms} ms");
    }

    pub(crate) fn ffmpeg_slate() -> Slate {
        Slate::from_file(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/slate.flv"))).unwrap()
    }

    #[test]
    fn a_slate_file_parses_and_starts_with_headers_then_a_keyframe() {
        let slate = ffmpeg_slate();
        assert!(slate.headers.iter().any(|h| h.kind == TagKind::Video));
        assert!(slate.headers.iter().any(|h| h.kind == TagKind::Audio));
        assert!(VideoTagInfo::parse(&slate.frames[0].payload).unwrap().is_keyframe());
        assert!((1900..=2100).contains(&slate.loop_ms), "{}", slate.loop_ms);
    }

    #[test]
    fn player_runs_in_real_time_with_continuous_timestamps_across_loops() {
        let slate = ffmpeg_slate();
        let t0 = Instant::now();
        let mut player = SlatePlayer::start(t0);
        let first = player.due(&slate, t0);
        assert_eq!(first.len(), slate.headers.len() + 1, "headers and the keyframe at t0");
        let mut all = first;
        let mut now = t0;
        for _ in 0..(3 * slate.loop_ms / 10) {
            now += Duration::from_millis(10);
            all.extend(player.due(&slate, now));
        }
        let video: Vec<u32> = all
            .iter()
            .filter(|t| t.kind == TagKind::Video && !VideoTagInfo::parse(&t.payload).unwrap().is_sequence_header())
            .map(|t| t.timestamp)
            .collect();
        assert!(video.len() >= 3 * 59, "three loops of 30 fps: {}", video.len());
        for pair in video.windows(2) {
            assert!(pair[1] > pair[0] && pair[1] - pair[0] <= 40, "{pair:?}");
        }
        assert!(player.next_at(&slate).unwrap() > now);
    }

    #[test]
    fn files_without_video_are_refused() {
        assert!(Slate::from_bytes(Bytes::from_static(b"not flv")).is_err());
        let header_only = Bytes::from_static(&[b'F', b'L', b'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0]);
        assert!(Slate::from_bytes(header_only).unwrap_err().contains("keyframe"));
    }
}
