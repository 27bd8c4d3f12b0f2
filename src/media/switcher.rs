//! The program switcher: turns the tags of whichever source is on air into the one
//! continuous FLV timeline (the "program") that is relayed, played and recorded.
//!
//! # Timeline
//!
//! Every source keeps its own timestamps. While a source is on air the switcher maps them
//! onto the program with a single offset, `program = source + offset`, shared by the
//! source's audio, video and data, so its A/V sync is preserved exactly. The offset is
//! chosen when the source goes on air (the *splice*) and again if the source's timestamps
//! jump (a *re-anchor*: the slate looping, an encoder reset, a 32-bit wrap). Either way the
//! program continues one frame after the last frame it emitted: no gap, no step back.
//!
//! A splice happens when the selected source delivers a video keyframe (an audio-only
//! source: its next audio frame). The switcher then emits that source's metadata, video
//! sequence header and audio sequence header, in that order, stamped with the splice
//! timestamp, then the keyframe itself at that same timestamp. Re-sending the headers is
//! all a change of resolution, frame rate, sample rate or codec (H.264 to HEVC, say) needs:
//! no end-of-sequence is emitted for the old codec, and those a source sends are dropped,
//! because the program itself never ends.
//!
//! # Per-track guarantees
//!
//! - Video frames (coded pictures of the default track) get strictly increasing
//!   timestamps; a frame that would not is stamped 1 ms after its predecessor.
//! - Audio, headers and other data never go back on their own track; a tag that would is
//!   stamped with the previous timestamp of that track (clamped, not dropped: within a
//!   source nothing is lost).
//! - At a splice, audio of the new source is dropped until it lands after the program's
//!   last audio frame, so the new source's audio neither overlaps nor precedes the old
//!   one's. Audio of the old source stops at the splice.
//!
//! # Headers
//!
//! The switcher remembers the headers the *pending* source delivers (sequence headers and
//! `onMetaData`), which is why the caller must push them right after [`Switcher::select`]:
//! typically [`GopCache::startup_tags`](super::gop::GopCache::startup_tags), which starts
//! with them. While a source is on air, a header that differs from the one the program
//! last carried is passed through (rebased); identical repeats (e.g. a looping slate
//! re-sending its headers) are dropped.
//!
//! # Bounds
//!
//! The switcher holds at most the three headers of the pending source, the three last
//! emitted on the program and a few counters. Tags of the pending source that precede its
//! keyframe are dropped, not buffered; the caller's GOP cache is the place to start from
//! an earlier keyframe.

use tracing::debug;

use super::codec::{AudioPacket, AudioTagInfo, VideoPacket, VideoTagInfo};
use super::flv::{FlvTag, TagKind};
use crate::queue::engine::ConnId;

/// Where program media comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The idle slate, shown while nobody is on air.
    Slate,
    /// A publisher, by its ingest connection.
    Publisher(ConnId),
}

/// Timing parameters of a [`Switcher`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitcherConfig {
    /// Video frame duration (ms) assumed until a source has shown its own.
    pub default_video_frame_ms: u32,
    /// Audio frame duration (ms) assumed until a source has shown its own (an AAC frame
    /// lasts 21 ms at 48 kHz, 23 ms at 44.1 kHz).
    pub default_audio_frame_ms: u32,
    /// A frame whose timestamp is further than this (ms) from the source's previous frame,
    /// either way, starts a new timeline and the source is re-anchored.
    pub max_timestamp_jump_ms: u32,
    /// A frame whose timestamp is more than this (ms) behind the previous frame of the
    /// same track also re-anchors: same-track timestamps never legitimately go back, and
    /// this catches loops shorter than `max_timestamp_jump_ms`. Smaller steps back are
    /// jitter and get clamped.
    pub max_timestamp_regression_ms: u32,
    /// How far (ms) one track may have run ahead of the other when a source goes on air
    /// before the splice anchors on that track instead (an audio-only source was on air,
    /// so the video track stopped long ago, or the reverse). Smaller leads are normal
    /// interleaving; the splice then follows the spliced track exactly.
    pub max_track_skew_ms: u32,
}

impl Default for SwitcherConfig {
    fn default() -> Self {
        SwitcherConfig {
            default_video_frame_ms: 33,
            default_audio_frame_ms: 23,
            max_timestamp_jump_ms: 2_000,
            max_timestamp_regression_ms: 500,
            max_track_skew_ms: 500,
        }
    }
}

/// Switches the program between sources at keyframes, with rebased timestamps.
///
/// A synchronous state machine: the caller feeds it the tags of the on-air and pending
/// sources and forwards what it returns. See the module docs for the timing rules.
#[derive(Debug)]
pub struct Switcher {
    config: SwitcherConfig,
    on_air: Option<OnAir>,
    pending: Option<Pending>,
    video: Track,
    audio: Track,
    /// Last timestamp emitted on script tags.
    last_data: Option<u64>,
    /// The headers the program last carried, to skip identical repeats.
    program_headers: Headers,
}

/// The source on air and how its timestamps map onto the program.
#[derive(Debug)]
struct OnAir {
    source: Source,
    /// `program = source + offset`.
    offset: i64,
    /// Source timestamp of its latest audio or video frame, to detect jumps.
    last_frame_ts: u32,
    last_video_ts: Option<u32>,
    last_audio_ts: Option<u32>,
    /// Video starts at a keyframe; false only for a source spliced in on audio.
    video_started: bool,
    /// False until the source's first audio frame has been emitted.
    audio_started: bool,
}

/// The source waiting for its splice point, with the headers it has delivered so far.
#[derive(Debug)]
struct Pending {
    source: Source,
    headers: Headers,
    /// Any video tag seen: the source is not audio-only, so it must splice at a keyframe.
    has_video: bool,
}

#[derive(Debug, Default)]
struct Headers {
    metadata: Option<FlvTag>,
    video: Option<FlvTag>,
    audio: Option<FlvTag>,
}

/// What the program has emitted on one media track.
#[derive(Debug, Default)]
struct Track {
    /// Latest timestamp of any tag on the track, headers included.
    last: Option<u64>,
    /// Latest timestamp of a coded frame.
    last_frame: Option<u64>,
    /// Frame durations of the on-air source.
    durations: RecentDurations,
}

impl Track {
    /// Where the frame after the last one emitted would start.
    fn end(&self, default_duration: u32) -> Option<u64> {
        let duration = self.durations.median().unwrap_or(default_duration).max(1);
        self.last_frame.map(|last| last + u64::from(duration))
    }
}

/// The last few frame durations of a track, whose median is its frame duration: robust to
/// a dropped frame or timestamp jitter, and quick to follow a new source.
#[derive(Debug, Default)]
struct RecentDurations {
    samples: [u32; DURATION_SAMPLES],
    len: usize,
    next: usize,
}

const DURATION_SAMPLES: usize = 8;

impl RecentDurations {
    fn record(&mut self, duration: u32) {
        self.samples[self.next] = duration;
        self.next = (self.next + 1) % DURATION_SAMPLES;
        self.len = (self.len + 1).min(DURATION_SAMPLES);
    }

    fn median(&self) -> Option<u32> {
        let mut sorted = self.samples;
        let sorted = &mut sorted[..self.len];
        sorted.sort_unstable();
        sorted.get(self.len / 2).copied()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Media {
    Video,
    Audio,
}

/// What a tag is to the switcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Metadata,
    /// Script data other than metadata (cue points, captions): part of the timeline.
    Script,
    VideoHeader,
    Keyframe,
    /// A coded picture that is not a keyframe.
    VideoFrame,
    VideoEnd,
    /// Other video tags: non-default tracks, video metadata, commands, unparseable.
    VideoOther,
    AudioHeader,
    AudioFrame,
    /// Other audio tags: non-default tracks, unknown packet types, unparseable.
    AudioOther,
}

impl Role {
    /// Only the default track of an Enhanced RTMP multitrack stream carries headers and
    /// delimits GOPs (as in the GOP cache); other tracks ride along.
    fn of(tag: &FlvTag) -> Role {
        match tag.kind {
            TagKind::Script if tag.is_metadata() => Role::Metadata,
            TagKind::Script => Role::Script,
            TagKind::Video => match VideoTagInfo::parse(&tag.payload) {
                Ok(info) if info.track_id != 0 => Role::VideoOther,
                Ok(info) if info.is_sequence_header() => Role::VideoHeader,
                Ok(info) if info.is_keyframe() => Role::Keyframe,
                Ok(info) if info.packet == VideoPacket::Coded => Role::VideoFrame,
                Ok(info) if info.packet == VideoPacket::EndOfSequence => Role::VideoEnd,
                _ => Role::VideoOther,
            },
            TagKind::Audio => match AudioTagInfo::parse(&tag.payload) {
                Ok(info) if info.track_id != 0 => Role::AudioOther,
                Ok(info) if info.is_sequence_header() => Role::AudioHeader,
                Ok(info) if info.packet == AudioPacket::Raw => Role::AudioFrame,
                _ => Role::AudioOther,
            },
        }
    }

    /// The track whose frame timing this tag follows, for coded frames only.
    fn frame_of(self) -> Option<Media> {
        match self {
            Role::Keyframe | Role::VideoFrame => Some(Media::Video),
            Role::AudioFrame => Some(Media::Audio),
            _ => None,
        }
    }

    fn is_video(self) -> bool {
        matches!(self, Role::VideoHeader | Role::Keyframe | Role::VideoFrame | Role::VideoEnd | Role::VideoOther)
    }
}

impl Switcher {
    pub fn new(config: SwitcherConfig) -> Self {
        Switcher {
            config,
            on_air: None,
            pending: None,
            video: Track::default(),
            audio: Track::default(),
            last_data: None,
            program_headers: Headers::default(),
        }
    }

    /// Asks for `source` to be on air. The switch happens when `source` delivers a video
    /// keyframe (an audio-only source: its next audio frame); until then the current
    /// source keeps playing. Selecting the current source again cancels a pending switch.
    ///
    /// The switcher only knows the headers of a source from the tags pushed after this
    /// call, so push the source's headers (e.g. its GOP cache's startup tags) right away.
    pub fn select(&mut self, source: Source) {
        if self.current() == Some(source) {
            self.pending = None;
        } else if self.pending() != Some(source) {
            self.pending = Some(Pending { source, headers: Headers::default(), has_video: false });
        }
    }

    /// `source` has gone away (its publisher disconnected). If it was on air, the program
    /// emits nothing until the pending source reaches its splice point; choosing that
    /// source (typically the slate) is the caller's business. If it was pending, the
    /// switch is cancelled.
    pub fn source_ended(&mut self, source: Source) {
        if self.current() == Some(source) {
            self.on_air = None;
        }
        if self.pending() == Some(source) {
            self.pending = None;
        }
    }

    /// Feeds one tag of `source`, in that source's order, and returns the program tags to
    /// emit now, rebased, in order. Tags of a source that is neither on air nor pending are
    /// ignored, and so are those of the pending source before its splice point (except
    /// headers, which are remembered for the splice).
    pub fn push(&mut self, source: Source, tag: &FlvTag) -> Vec<FlvTag> {
        let mut out = Vec::new();
        let role = Role::of(tag);
        if self.pending() == Some(source) {
            self.push_pending(role, tag, &mut out);
        } else if self.current() == Some(source) {
            self.push_on_air(role, tag, &mut out);
        }
        out
    }

    /// The source on air, if any.
    pub fn current(&self) -> Option<Source> {
        self.on_air.as_ref().map(|on_air| on_air.source)
    }

    /// The source waiting for its splice point, if any.
    pub fn pending(&self) -> Option<Source> {
        self.pending.as_ref().map(|pending| pending.source)
    }

    /// The timestamp (ms) a video keyframe spliced in now would get: one frame after the
    /// last video frame emitted, 0 before any.
    pub fn next_timestamp(&self) -> u32 {
        program_ts(self.continuation(Media::Video))
    }

    fn push_pending(&mut self, role: Role, tag: &FlvTag, out: &mut Vec<FlvTag>) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        pending.has_video |= role.is_video();
        let splice_on = match role {
            Role::Metadata => {
                pending.headers.metadata = Some(tag.clone());
                None
            }
            Role::VideoHeader => {
                pending.headers.video = Some(tag.clone());
                None
            }
            Role::AudioHeader => {
                pending.headers.audio = Some(tag.clone());
                None
            }
            Role::Keyframe => Some(Media::Video),
            Role::AudioFrame if !pending.has_video => Some(Media::Audio),
            _ => None,
        };
        if let Some(media) = splice_on {
            self.splice(media, role, tag, out);
        }
    }

    /// Puts the pending source on air with `tag` (its keyframe or first audio frame) as the
    /// first frame: headers first, all at the splice timestamp, then the tag itself.
    fn splice(&mut self, media: Media, role: Role, tag: &FlvTag, out: &mut Vec<FlvTag>) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let anchor = self.continuation(media);
        debug!(
            from = ?self.current(),
            to = ?pending.source,
            at = anchor,
            on = ?media,
            "program splice"
        );
        let Headers { metadata, video, audio } = pending.headers;
        if let Some(header) = metadata {
            let ts = not_before(anchor, self.last_data);
            self.last_data = Some(ts);
            out.push(restamp(&header, ts));
            self.program_headers.metadata = Some(header);
        }
        if let Some(header) = video {
            let ts = not_before(anchor, self.video.last);
            self.video.last = Some(ts);
            out.push(restamp(&header, ts));
            self.program_headers.video = Some(header);
        }
        if let Some(header) = audio {
            let ts = not_before(anchor, self.audio.last);
            self.audio.last = Some(ts);
            out.push(restamp(&header, ts));
            self.program_headers.audio = Some(header);
        }
        // The anchor used the old source's frame durations; from here on, the new one's.
        self.video.durations = RecentDurations::default();
        self.audio.durations = RecentDurations::default();
        self.on_air = Some(OnAir {
            source: pending.source,
            offset: signed(anchor) - i64::from(tag.timestamp),
            last_frame_ts: tag.timestamp,
            last_video_ts: None,
            last_audio_ts: None,
            video_started: media == Media::Video,
            audio_started: false,
        });
        self.push_on_air(role, tag, out);
    }

    fn push_on_air(&mut self, role: Role, tag: &FlvTag, out: &mut Vec<FlvTag>) {
        if let Some(media) = role.frame_of() {
            self.follow_frame(media, tag.timestamp);
        }
        let Some(on_air) = self.on_air.as_mut() else {
            return;
        };
        let rebased = i64::from(tag.timestamp) + on_air.offset;
        match role {
            Role::Metadata | Role::VideoHeader | Role::AudioHeader => {
                self.pass_header(role, tag, rebased, out);
            }
            Role::Script => {
                let ts = not_before_rebased(rebased, self.last_data);
                self.last_data = Some(ts);
                out.push(restamp(tag, ts));
            }
            // The program goes on after a source's stream ends.
            Role::VideoEnd => {}
            Role::VideoOther => {
                let ts = not_before_rebased(rebased, self.video.last);
                self.video.last = Some(ts);
                out.push(restamp(tag, ts));
            }
            Role::Keyframe | Role::VideoFrame => {
                if !on_air.video_started {
                    if role != Role::Keyframe {
                        return;
                    }
                    on_air.video_started = true;
                }
                let after_last_frame = self.video.last_frame.map(|last| last + 1);
                let ts = not_before_rebased(rebased, self.video.last.max(after_last_frame));
                self.video.last = Some(ts);
                self.video.last_frame = Some(ts);
                out.push(restamp(tag, ts));
            }
            Role::AudioFrame | Role::AudioOther => {
                if !on_air.audio_started {
                    let lands_after_program_audio =
                        u64::try_from(rebased).is_ok_and(|ts| self.audio.last_frame.is_none_or(|last| ts > last));
                    if !lands_after_program_audio {
                        return;
                    }
                    on_air.audio_started = true;
                }
                let ts = not_before_rebased(rebased, self.audio.last);
                self.audio.last = Some(ts);
                if role == Role::AudioFrame {
                    self.audio.last_frame = Some(ts);
                }
                out.push(restamp(tag, ts));
            }
        }
    }

    /// Emits a header of the on-air source unless the program already carries the same.
    fn pass_header(&mut self, role: Role, tag: &FlvTag, rebased: i64, out: &mut Vec<FlvTag>) {
        let (carried, last) = match role {
            Role::Metadata => (&mut self.program_headers.metadata, &mut self.last_data),
            Role::VideoHeader => (&mut self.program_headers.video, &mut self.video.last),
            _ => (&mut self.program_headers.audio, &mut self.audio.last),
        };
        if carried.as_ref().is_some_and(|header| header.payload == tag.payload) {
            return;
        }
        let ts = not_before_rebased(rebased, *last);
        *last = Some(ts);
        *carried = Some(tag.clone());
        out.push(restamp(tag, ts));
    }

    /// Tracks the on-air source's frame timestamps: re-anchors on a jump, and learns the
    /// frame duration from consecutive frames.
    fn follow_frame(&mut self, media: Media, ts: u32) {
        let Some(on_air) = self.on_air.as_ref() else {
            return;
        };
        let previous = match media {
            Media::Video => on_air.last_video_ts,
            Media::Audio => on_air.last_audio_ts,
        };
        let jump = i64::from(ts) - i64::from(on_air.last_frame_ts);
        let step = previous.map(|previous| i64::from(ts) - i64::from(previous));
        let jumped = jump.abs() > i64::from(self.config.max_timestamp_jump_ms)
            || step.is_some_and(|step| -step > i64::from(self.config.max_timestamp_regression_ms));
        let anchor = jumped.then(|| self.continuation(media));

        let track = match media {
            Media::Video => &mut self.video,
            Media::Audio => &mut self.audio,
        };
        if let Some(duration) = step
            .and_then(|step| u32::try_from(step).ok())
            .filter(|step| (1..=self.config.max_timestamp_jump_ms).contains(step))
        {
            track.durations.record(duration);
        }
        let Some(on_air) = self.on_air.as_mut() else {
            return;
        };
        if let Some(anchor) = anchor {
            debug!(source = ?on_air.source, from = on_air.last_frame_ts, to = ts, at = anchor, "program re-anchor");
            on_air.offset = signed(anchor) - i64::from(ts);
        }
        on_air.last_frame_ts = ts;
        match media {
            Media::Video => on_air.last_video_ts = Some(ts),
            Media::Audio => on_air.last_audio_ts = Some(ts),
        }
    }

    /// Where a new timeline starting with a frame of `media` should begin: one frame after
    /// the last frame of that track, unless the other track has run further ahead than
    /// normal interleaving explains (it alone played meanwhile), then where it ends.
    fn continuation(&self, media: Media) -> u64 {
        let video_end = self.video.end(self.config.default_video_frame_ms);
        let audio_end = self.audio.end(self.config.default_audio_frame_ms);
        let (own, other) = match media {
            Media::Video => (video_end, audio_end),
            Media::Audio => (audio_end, video_end),
        };
        match (own, other) {
            (Some(own), Some(other)) if other > own + u64::from(self.config.max_track_skew_ms) => other,
            (Some(own), _) => own,
            (None, other) => other.unwrap_or(0),
        }
    }
}

/// A copy of `tag` (sharing its payload) at program time `ts`.
fn restamp(tag: &FlvTag, ts: u64) -> FlvTag {
    FlvTag { kind: tag.kind, timestamp: program_ts(ts), payload: tag.payload.clone() }
}

/// The FLV timestamp field is 32 bits and wraps after 49.7 days of program, as every
/// long-running RTMP stream does; the switcher counts in 64 bits and truncates here.
fn program_ts(ts: u64) -> u32 {
    (ts & u64::from(u32::MAX)) as u32
}

fn not_before(ts: u64, floor: Option<u64>) -> u64 {
    floor.map_or(ts, |floor| ts.max(floor))
}

/// A rebased timestamp can be negative (a frame slightly before the splice point, source
/// jitter); the program starts at 0.
fn not_before_rebased(rebased: i64, floor: Option<u64>) -> u64 {
    not_before(u64::try_from(rebased).unwrap_or(0), floor)
}

/// Program time as a signed number for offset arithmetic. It counts milliseconds from 0,
/// so it stays far below `i64::MAX`.
fn signed(ts: u64) -> i64 {
    i64::try_from(ts).unwrap_or(i64::MAX)
}
