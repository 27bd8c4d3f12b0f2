//! The program switcher: turns the tags of whichever source is on air into the one
//! continuous FLV timeline (the "program") that is relayed, played and recorded.
//!
//! # Timeline
//!
//! Every source keeps its own timestamps. While a source is on air the switcher maps them
//! onto the program with a single offset, `program = source + offset`, shared by the
//! source's audio, video and data, so its A/V sync is preserved exactly. The offset is set
//! when the source goes on air (the *splice*) and again if its timestamps jump (a
//! *re-anchor*); either way the program continues one frame after the last frame it
//! emitted: no gap, no step back, whatever timestamps the sources use.
//!
//! - **Presentation delay.** A picture is shown at its timestamp plus its composition
//!   offset; a source with B-frames shows its pictures some time after it decodes them (its
//!   *reorder delay*, the composition offset of its keyframes). The program has one
//!   presentation delay `D` for all sources: each source's composition offsets are raised
//!   by `c = D − its reorder delay`, and its audio and data are shifted by the same `c`, so
//!   its own A/V sync is unchanged and every source shows its pictures `D` after decoding
//!   them. A splice then needs no more than one frame between the old source's last
//!   picture and the new one's first, B-frames or not. `D` starts at
//!   [`SwitcherConfig::presentation_delay_ms`] and grows (up to `max_presentation_delay_ms`)
//!   when a source with a longer reorder delay goes on air; that one splice shows the
//!   difference as a longer pause. Raising a composition offset copies that picture's
//!   payload, so it happens only for sources with `c > 0`; codecs with no composition
//!   offset (AV1, VP9) keep `c = 0` and their splice lands later in decode time instead, so
//!   pictures still follow one frame apart.
//! - **Splice.** When the selected source delivers a video keyframe (an audio-only source:
//!   its next audio frame), the switcher emits that source's metadata, video sequence
//!   header and audio sequence header, in that order, then the keyframe, all at the splice
//!   timestamp: one frame after the program's last video frame (the first source ever
//!   starts at 0). An audio-only source continues one frame after the last audio frame. If
//!   the other track has run further ahead than `max_track_skew_ms` (an audio-only or
//!   video-only source was on air), the splice lands where that track ends instead.
//! - **Clean cut.** The outgoing source is cut only where every picture up to the latest
//!   one shown has been emitted. A source with B-frames sends a picture before the ones
//!   shown ahead of it (`I0 P3 B1 B2 P6 B4 B5`): cut after `P6`, pictures 4 and 5 would be
//!   missing, a freeze of three frames. When the new source's splice frame arrives at such
//!   a point, its tags are held (at most [`HOLD_MAX_TAGS`] tags or [`HOLD_MAX_MS`] of its
//!   time; past that it splices anyway) and the splice happens as soon as the outgoing
//!   source has sent the missing pictures, or at once when it ends. [`Switcher::push`] may
//!   then return the outgoing source's tag followed by the spliced-in ones.
//! - **Reorder groups are whole.** A source can end at any point (a killed encoder, a
//!   closed connection, a kick), so the on-air source's video is emitted only up to its
//!   latest clean point: `P6` waits until `B4 B5` have arrived and leaves with them. If the
//!   source ends, or a splice can wait no longer, before its group is complete, the group is
//!   dropped and the splice continues from the last complete one. This holds pictures back
//!   by at most the source's reorder delay, which players wait for anyway (`B4` cannot be
//!   shown before `P6` is decoded); sources without B-frames are never held.
//! - **Frame duration** is the median of a source's last 8 frame intervals, per track, or
//!   the configured default until there are any. At a splice, the picture step is the
//!   shorter of the two sources' frame durations when the new source's is already known
//!   (from its frames before its keyframe).
//! - **Re-anchor.** A frame further than `max_timestamp_jump_ms` from the source's previous
//!   frame, or more than `max_timestamp_regression_ms` behind the previous frame of its
//!   track (the slate looping, an encoder reset), is put where the next video frame would
//!   go (audio-only sources: the next audio frame), and the source's later tags follow it.
//!   A 32-bit timestamp wrap is read as continuous and needs no re-anchor.
//! - **Timestamp sanity for every tag.** Tags that are not coded frames (headers, script
//!   data, video commands, unparsable tags) do not re-anchor; one further than
//!   `max_timestamp_jump_ms` from the source's latest frame is stamped at that frame's
//!   time, so a single stray timestamp can never move a track ahead. Composition offsets
//!   are trusted for picture order only up to twice `max_presentation_delay_ms`.
//!
//! Re-sending the headers is all a change of resolution, frame rate, sample rate or codec
//! (H.264 to HEVC, say) needs: no end-of-sequence is emitted for the old codec, and those a
//! source sends are dropped, because the program itself never ends.
//!
//! # Per-track guarantees
//!
//! - Video frames (coded pictures of the default track) get strictly increasing
//!   timestamps; a frame that would not is stamped 1 ms after its predecessor.
//! - Audio, headers and other data never go back on their own track; a tag that would is
//!   stamped with the previous timestamp of that track (clamped, not dropped: within a
//!   source nothing is lost).
//! - At a splice, audio of the new source is dropped until it lands after the program's
//!   last audio frame, so it neither overlaps nor precedes the old source's audio; audio
//!   of the old source stops at the splice. The new audio thus starts within about a frame
//!   of the keyframe, and silent frames bridge any pause before it.
//!
//! # Headers
//!
//! The switcher remembers the headers the *pending* source delivers (sequence headers and
//! `onMetaData`), so the caller pushes them right after [`Switcher::select`], e.g. from the
//! publisher's [`GopCache`](super::gop::GopCache). A source whose headers were not pushed
//! is spliced without them. While a source is on air, a header that differs from the one
//! the program last carried is passed through (rebased); identical repeats (a looping
//! slate re-sending its headers) are dropped.
//!
//! # Bounds
//!
//! The switcher holds at most the three headers of the pending source, the three last
//! emitted on the program, the pending source's tags held for a clean cut (bounded above),
//! [`MAX_AHEAD`] presentation times and a few counters. Tags of the pending source that
//! precede its splice point are dropped, not buffered: replaying a GOP cache from its
//! keyframe is the way to switch without waiting for the next one.

use bytes::Bytes;
use tracing::{debug, info};

use super::codec::{
    AudioCodec, AudioPacket, AudioSpecificConfig, AudioTagInfo, VideoPacket, VideoTagInfo, shift_composition_time,
};
use super::flv::{FlvTag, TagKind};
use super::parameter_sets::with_parameter_sets;
use crate::ids::ConnId;

/// At most this many tags of the pending source are held while the outgoing source
/// reaches a clean cut point; then the splice happens anyway.
pub const HOLD_MAX_TAGS: usize = 64;
/// At most this much (ms) of the pending source is held for a clean cut.
pub const HOLD_MAX_MS: i32 = 1_000;
/// Pictures shown beyond a missing one that the clean-cut tracking remembers; a source
/// reordering more than this is treated as clean (no encoder does).
pub const MAX_AHEAD: usize = 16;

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
    /// The program's presentation delay (ms) from the start: set it to the longest reorder
    /// delay expected (the slate's, the channel profile's), so that no splice has to raise
    /// it. 0 lets the first source with B-frames set it.
    pub presentation_delay_ms: u32,
    /// The presentation delay never grows past this (ms), whatever a source's composition
    /// offsets claim.
    pub max_presentation_delay_ms: u32,
}

impl Default for SwitcherConfig {
    fn default() -> Self {
        SwitcherConfig {
            default_video_frame_ms: 33,
            default_audio_frame_ms: 23,
            max_timestamp_jump_ms: 2_000,
            max_timestamp_regression_ms: 500,
            max_track_skew_ms: 500,
            presentation_delay_ms: 0,
            max_presentation_delay_ms: 500,
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
    /// The program's presentation delay (ms), see the module docs.
    delay: u32,
    /// Tags produced outside [`Switcher::push`] (a held splice completed by
    /// [`Switcher::source_ended`]), returned first by the next call.
    outbox: Vec<FlvTag>,
}

/// The source on air and how its timestamps map onto the program.
#[derive(Debug)]
struct OnAir {
    source: Source,
    /// `program = source time + offset` for video timestamps (decode times).
    offset: i64,
    /// Raise of the composition offsets of its pictures, and shift of its audio and data
    /// timestamps on top of `offset`: the program's presentation delay minus the source's.
    shift: u32,
    /// The latest audio or video frame's timestamp as sent and as source time: the
    /// reference other timestamps are read against, and jumps measured from.
    last_frame_ts: u32,
    last_frame_time: i64,
    /// Source time of the latest frame of each track.
    last_video_time: Option<i64>,
    last_audio_time: Option<i64>,
    /// Video starts at a keyframe; false only for a source spliced in on audio.
    video_started: bool,
    /// False until the source's first audio frame has been emitted.
    audio_started: bool,
    /// When its first picture is shown (program time): its audio starts with it, not
    /// earlier, even where the old source's audio stopped before.
    first_shown: Option<i64>,
    /// A silent audio frame for this source's audio format, to bridge the pause between the
    /// previous source's audio and this one's (see `bridge_audio`).
    silence: Option<Silence>,
    /// Which of its pictures have been emitted, to find a clean cut point.
    pictures: PictureOrder,
    /// Its video since the last clean cut point, held back until the pictures shown before
    /// the latest have all arrived, with the audio that goes with them; dropped if the
    /// source ends first (see `cut_tail`).
    tail: Vec<FlvTag>,
    /// The program's video track as it was at the last clean cut point.
    at_clean: VideoMark,
}

/// What the program's tracks had emitted at a point in time.
#[derive(Debug, Clone, Copy, Default)]
struct VideoMark {
    last: Option<u64>,
    last_frame: Option<u64>,
    last_presentation: Option<i64>,
    audio_last: Option<u64>,
    audio_last_frame: Option<u64>,
}

impl VideoMark {
    fn of(video: &Track, audio: &Track) -> Self {
        VideoMark {
            last: video.last,
            last_frame: video.last_frame,
            last_presentation: video.last_presentation,
            audio_last: audio.last,
            audio_last_frame: audio.last_frame,
        }
    }
}

impl OnAir {
    /// `ts` on the source's own continuous timeline. The 32-bit field wraps (after 49.7
    /// days, or sooner from a random start); reading it as the value nearest the latest
    /// frame's makes a wrap seamless instead of a jump.
    fn source_time(&self, ts: u32) -> i64 {
        // Reinterpreting the wrapped difference as signed is the point here.
        self.last_frame_time + i64::from(ts.wrapping_sub(self.last_frame_ts) as i32)
    }
}

/// The source waiting for its splice point, with the headers it has delivered so far.
#[derive(Debug)]
struct Pending {
    source: Source,
    headers: Headers,
    /// Any video tag seen: the source is not audio-only, so it must splice at a keyframe.
    has_video: bool,
    /// Its video frame durations before its keyframe, to step to its first picture.
    durations: RecentDurations,
    last_video_ts: Option<u32>,
    /// From its splice frame on, while the outgoing source is not at a clean cut point.
    held: Vec<FlvTag>,
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
    /// Latest presentation time (timestamp + composition offset) of a coded frame. With
    /// B-frames it runs ahead of `last_frame`; a splice must land after it, or the new
    /// source's first picture would be shown before the old source's last one.
    last_presentation: Option<i64>,
    /// Frame durations of the on-air source.
    durations: RecentDurations,
}

impl Track {
    fn frame(&self, default_duration: u32) -> u32 {
        self.durations.median().unwrap_or(default_duration).max(1)
    }

    /// Where the frame after the last one emitted would start.
    fn end(&self, default_duration: u32) -> Option<u64> {
        self.last_frame.map(|last| last + u64::from(self.frame(default_duration)))
    }
}

/// The last few frame durations of a track, whose median is its frame duration: robust to
/// a dropped frame or timestamp jitter, and quick to follow a new source.
#[derive(Clone, Copy, Debug, Default)]
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

/// Whether a source's emitted pictures cover every presentation slot up to the latest
/// one shown, in program time: a *watermark* below which nothing is missing, and the
/// pictures shown beyond a missing one (`ahead`). A slot earlier than any picture decoded
/// from now on can be shown can never be filled any more, so it is given up: a picture is
/// shown no earlier than its decode time plus the source's presentation shift (a stream
/// without B-frames that drops a frame leaves such a slot). Pictures are a frame apart;
/// half a frame absorbs jitter.
#[derive(Debug, Default)]
struct PictureOrder {
    watermark: Option<i64>,
    /// Sorted, at most [`MAX_AHEAD`].
    ahead: Vec<i64>,
}

impl PictureOrder {
    /// `earliest`: the earliest time a picture decoded from now on can be shown.
    fn record(&mut self, earliest: i64, shown: i64, frame: i64) {
        let Some(mut watermark) = self.watermark else {
            self.watermark = Some(shown);
            return;
        };
        let continues = |watermark: i64, shown: i64| shown <= watermark + frame + frame / 2;
        if continues(watermark, shown) {
            watermark = watermark.max(shown);
        } else if self.ahead.len() < MAX_AHEAD {
            let at = self.ahead.partition_point(|&t| t < shown);
            self.ahead.insert(at, shown);
        } else {
            watermark = self.ahead.iter().copied().fold(shown, i64::max);
            self.ahead.clear();
        }
        while let Some(&next) = self.ahead.first() {
            let given_up = watermark + frame + frame / 2 <= earliest;
            if !continues(watermark, next) && !given_up {
                break;
            }
            watermark = watermark.max(next);
            self.ahead.remove(0);
        }
        self.watermark = Some(watermark);
    }

    fn is_clean(&self) -> bool {
        self.ahead.is_empty()
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
}

impl Switcher {
    /// A switcher with nothing on air; the program starts at 0 with the first source.
    pub fn new(config: SwitcherConfig) -> Self {
        Switcher {
            config,
            on_air: None,
            pending: None,
            video: Track::default(),
            audio: Track::default(),
            last_data: None,
            program_headers: Headers::default(),
            delay: config.presentation_delay_ms.min(config.max_presentation_delay_ms),
            outbox: Vec::new(),
        }
    }

    /// Asks for `source` to be on air. The switch happens when `source` delivers a video
    /// keyframe (an audio-only source: its next audio frame) and the current source is at
    /// a clean cut point; until then the current source keeps playing. Selecting the
    /// current source again cancels a pending switch; selecting another source replaces
    /// the pending one.
    ///
    /// The switcher only knows the headers of a source from the tags pushed after this
    /// call, so push the source's headers right away (see the module docs).
    pub fn select(&mut self, source: Source) {
        if self.current() == Some(source) {
            self.pending = None;
        } else if self.pending() != Some(source) {
            self.pending = Some(Pending {
                source,
                headers: Headers::default(),
                has_video: false,
                durations: RecentDurations::default(),
                last_video_ts: None,
                held: Vec::new(),
            });
        }
    }

    /// `source` has gone away (its publisher disconnected). If it was on air, the program
    /// emits nothing until the pending source reaches its splice point; choosing that
    /// source (typically the slate) is the caller's business. If the pending source was
    /// held for a clean cut, it goes on air now; its tags come out of the next
    /// [`Switcher::push`], or of [`Switcher::take_output`] right away. If `source` was
    /// pending, the switch is cancelled.
    pub fn source_ended(&mut self, source: Source) {
        if self.current() == Some(source) {
            let mut out = std::mem::take(&mut self.outbox);
            self.cut_tail(&mut out);
            self.outbox = out;
            self.on_air = None;
            if self.pending.as_ref().is_some_and(|pending| !pending.held.is_empty()) {
                let mut out = std::mem::take(&mut self.outbox);
                self.splice_held(&mut out);
                self.outbox = out;
            }
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
        let mut out = std::mem::take(&mut self.outbox);
        let role = Role::of(tag);
        if self.pending() == Some(source) {
            self.push_pending(role, tag, &mut out);
        } else if self.current() == Some(source) {
            self.push_on_air(role, tag, &mut out);
            if self.pending.as_ref().is_some_and(|pending| !pending.held.is_empty()) && self.at_clean_cut() {
                self.splice_held(&mut out);
            }
        }
        out
    }

    /// Program tags produced outside [`Switcher::push`] (by [`Switcher::source_ended`]),
    /// to emit now; the next `push` would return them otherwise.
    pub fn take_output(&mut self) -> Vec<FlvTag> {
        std::mem::take(&mut self.outbox)
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
        program_ts(self.continuation(Media::Video, self.video_frame()))
    }

    /// The program's presentation delay (ms): how long after its timestamp every picture
    /// is shown.
    pub fn presentation_delay(&self) -> u32 {
        self.delay
    }

    fn video_frame(&self) -> u32 {
        self.video.frame(self.config.default_video_frame_ms)
    }

    /// For the source on air: the timestamp, on its own clock, at which a keyframe with
    /// composition offset `composition` (ms) is decoded after the program's last frame and
    /// shown one frame after its last picture. For pictures the caller adds to a source
    /// that has none (the slate under an audio-only DJ). `None` with nothing on air.
    pub fn next_picture_at(&self, composition: u32) -> Option<u32> {
        let on_air = self.on_air.as_ref()?;
        let frame = i64::from(self.video_frame());
        // A source's first pictures are raised to the presentation delay and decoded that
        // much earlier (see `push_on_air`); its later ones keep the raise it has.
        let raise = if on_air.video_started { 0 } else { self.delay.saturating_sub(composition) };
        let shown_after_decode = i64::from(composition + raise);
        let after_decoded = self.video.last_frame.map_or(0, |last| signed(last) + 1);
        let after_shown = self.video.last_presentation.map_or(0, |shown| shown + frame - shown_after_decode);
        let program = after_decoded.max(after_shown);
        let source_time = program - on_air.offset + i64::from(raise);
        // Back onto the 32-bit clock, relative to the latest frame's timestamp as sent.
        Some(on_air.last_frame_ts.wrapping_add((source_time - on_air.last_frame_time) as u32))
    }

    /// Whether the source on air can be cut now without leaving a picture out.
    fn at_clean_cut(&self) -> bool {
        self.on_air.as_ref().is_none_or(|on_air| on_air.pictures.is_clean())
    }

    fn push_pending(&mut self, role: Role, tag: &FlvTag, out: &mut Vec<FlvTag>) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        pending.has_video |= tag.kind == TagKind::Video;
        if let Some(first) = pending.held.first() {
            let span = (tag.timestamp.wrapping_sub(first.timestamp) as i32).saturating_abs();
            pending.held.push(tag.clone());
            if pending.held.len() >= HOLD_MAX_TAGS || span > HOLD_MAX_MS {
                debug!(to = ?pending.source, "program splice without a clean cut: the old source did not get there");
                self.splice_held(out);
            }
            return;
        }
        let splices = match role {
            Role::Metadata => {
                pending.headers.metadata = Some(tag.clone());
                false
            }
            Role::VideoHeader => {
                pending.headers.video = Some(tag.clone());
                false
            }
            Role::AudioHeader => {
                pending.headers.audio = Some(tag.clone());
                false
            }
            Role::VideoFrame => {
                if let Some(step) = pending.last_video_ts.map(|last| tag.timestamp.wrapping_sub(last))
                    && (1..=self.config.max_timestamp_jump_ms).contains(&step)
                {
                    pending.durations.record(step);
                }
                pending.last_video_ts = Some(tag.timestamp);
                false
            }
            Role::Keyframe => true,
            Role::AudioFrame => !pending.has_video,
            _ => false,
        };
        if !splices {
            return;
        }
        if self.at_clean_cut() {
            if let Some(pending) = self.pending.take() {
                self.splice(pending, tag, out);
            }
        } else if let Some(pending) = self.pending.as_mut() {
            pending.held.push(tag.clone());
        }
    }

    /// The on-air source is cut away before its held pictures were complete (it ended, or
    /// a splice could wait no longer): they are dropped, so that no picture shown before
    /// one already sent is missing, and the video track is back where it was at the last
    /// clean cut point.
    fn cut_tail(&mut self, out: &mut Vec<FlvTag>) {
        let video_frame = u64::from(self.video_frame());
        let audio_frame = u64::from(self.audio.frame(self.config.default_audio_frame_ms));
        let Some(on_air) = self.on_air.as_mut() else { return };
        if on_air.tail.is_empty() {
            return;
        }
        let mark = on_air.at_clean;
        // Audio held with the dropped pictures still plays if it ends by the end of the last
        // picture kept: the old source's sound stops where its picture does.
        let cut = mark.last_presentation.and_then(|shown| u64::try_from(shown).ok()).map(|shown| shown + video_frame);
        let (mut audio_last, mut audio_last_frame) = (mark.audio_last, mark.audio_last_frame);
        let mut dropped = 0;
        for tag in on_air.tail.drain(..) {
            let ts = u64::from(tag.timestamp);
            let keep = tag.kind == TagKind::Audio
                && cut.is_some_and(|cut| ts + audio_frame <= cut + audio_frame / 2)
                && audio_last.is_none_or(|last| ts >= last)
                && audio_last_frame.is_none_or(|last| ts >= last + audio_frame / 2);
            if keep {
                audio_last = Some(ts);
                if Role::of(&tag) == Role::AudioFrame {
                    audio_last_frame = Some(ts);
                }
                out.push(tag);
            } else {
                dropped += 1;
            }
        }
        debug!(source = ?on_air.source, dropped, "cut: an unfinished reorder group is dropped");
        self.video.last = mark.last;
        self.video.last_frame = mark.last_frame;
        self.video.last_presentation = mark.last_presentation;
        self.audio.last = audio_last;
        self.audio.last_frame = audio_last_frame;
    }

    /// Splices the pending source in with the tags held for a clean cut.
    fn splice_held(&mut self, out: &mut Vec<FlvTag>) {
        let Some(mut pending) = self.pending.take() else {
            return;
        };
        let held = std::mem::take(&mut pending.held);
        let Some((first, rest)) = held.split_first() else {
            return;
        };
        self.splice(pending, first, out);
        for tag in rest {
            self.push_on_air(Role::of(tag), tag, out);
        }
    }

    /// The composition offset raise for a source whose first picture is `keyframe`: the
    /// program's presentation delay minus the source's, after growing the program's to
    /// the source's if needed. 0 where its pictures carry no composition offset to raise.
    fn presentation_shift(&mut self, keyframe: &FlvTag) -> u32 {
        let max = self.config.max_presentation_delay_ms;
        let reorder = u32::try_from(composition_time(keyframe)).unwrap_or(0).min(max);
        if reorder > self.delay {
            info!(from = self.delay, to = reorder, "program presentation delay grows: this splice pauses longer");
            self.delay = reorder;
        }
        let shift = self.delay - reorder;
        if shift > 0 && shift_composition_time(&keyframe.payload, shift).is_none() { 0 } else { shift }
    }

    /// Puts `pending` on air with `tag` (its keyframe or first audio frame) as the first
    /// frame: headers first, all at the splice timestamp, then the tag itself.
    fn splice(&mut self, pending: Pending, tag: &FlvTag, out: &mut Vec<FlvTag>) {
        self.cut_tail(out);
        let role = Role::of(tag);
        let media = if role == Role::Keyframe { Media::Video } else { Media::Audio };
        let shift = if media == Media::Video { self.presentation_shift(tag) } else { 0 };
        // The step to the new picture: the shorter frame of the two sources, so that
        // neither shows a picture longer than its own frame.
        let frame = match (self.video.durations.median(), pending.durations.median()) {
            (Some(old), Some(new)) => old.min(new),
            (old, new) => old.or(new).unwrap_or(self.config.default_video_frame_ms),
        }
        .max(1);
        let mut anchor = self.continuation(media, frame);
        if media == Media::Video
            && let Some(shown) = self.video.last_presentation
        {
            // Present the keyframe one frame after the last picture shown, not just decode
            // it one frame after the last frame decoded: they differ when the new source
            // could not be given the program's presentation delay.
            let composition = i64::from(composition_time(tag)) + i64::from(shift);
            let after_shown = shown + i64::from(frame) - composition;
            anchor = anchor.max(u64::try_from(after_shown).unwrap_or(0));
        }
        debug!(from = ?self.current(), to = ?pending.source, at = anchor, on = ?media, shift, "program splice");
        let first_shown = (media == Media::Video)
            .then(|| signed(anchor) + i64::from(composition_time(tag)).max(0) + i64::from(shift));
        // Audio and data of the new source are shifted with its pictures.
        let presented = anchor + u64::from(shift);
        let Headers { metadata, video, audio } = pending.headers;
        // Repeat the parameter sets inside the keyframe, for consumers that parse slices with
        // the parameter sets they saw first (see `parameter_sets`).
        let with_sets = video.as_ref().filter(|_| media == Media::Video).and_then(|h| with_parameter_sets(tag, h));
        let tag = with_sets.as_ref().unwrap_or(tag);
        if let Some(header) = metadata {
            let ts = not_before(presented, self.last_data);
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
            // Where the old audio ends rather than at the picture's splice point: the new
            // source's audio, and any silence bridging to it, follows from there.
            let audio_end =
                self.audio.end(self.config.default_audio_frame_ms).map_or(presented, |end| end.min(presented));
            let ts = not_before(audio_end, self.audio.last);
            self.audio.last = Some(ts);
            out.push(restamp(&header, ts));
            self.program_headers.audio = Some(header);
        }
        // The anchor used the old source's frame durations; from here on, the new one's.
        self.video.durations = pending.durations;
        self.audio.durations = RecentDurations::default();
        self.on_air = Some(OnAir {
            source: pending.source,
            offset: signed(anchor) - i64::from(tag.timestamp),
            shift,
            last_frame_ts: tag.timestamp,
            last_frame_time: i64::from(tag.timestamp),
            last_video_time: None,
            last_audio_time: None,
            video_started: media == Media::Video,
            audio_started: false,
            first_shown,
            silence: self.program_headers.audio.as_ref().and_then(Silence::for_header),
            pictures: PictureOrder::default(),
            tail: Vec::new(),
            // What is out so far, headers included: a cut before its first clean point goes
            // back to here, never further.
            at_clean: VideoMark::of(&self.video, &self.audio),
        });
        self.push_on_air(role, tag, out);
    }

    fn push_on_air(&mut self, role: Role, tag: &FlvTag, out: &mut Vec<FlvTag>) {
        if let Some(media) = role.frame_of() {
            self.follow_frame(media, tag.timestamp);
        }
        if role == Role::Keyframe && self.on_air.as_ref().is_some_and(|on_air| !on_air.video_started) {
            // A source spliced in on audio starts showing pictures: they get the program's
            // presentation delay too, decoded earlier rather than shown later, so its A/V
            // sync is kept.
            let raise = self.presentation_shift(tag);
            if let Some(on_air) = self.on_air.as_mut() {
                on_air.offset -= i64::from(raise);
                on_air.shift += raise;
            }
        }
        let frame = i64::from(self.video_frame());
        let audio_frame = i64::from(self.audio.frame(self.config.default_audio_frame_ms));
        let max_composition = 2 * i64::from(self.config.max_presentation_delay_ms);
        let Some(on_air) = self.on_air.as_mut() else {
            return;
        };
        let mut time = on_air.source_time(tag.timestamp);
        if role.frame_of().is_none()
            && (time - on_air.last_frame_time).abs() > i64::from(self.config.max_timestamp_jump_ms)
        {
            debug!(source = ?on_air.source, ts = tag.timestamp, ?role, "tag far from the source's frames: stamped at its latest");
            time = on_air.last_frame_time;
        }
        // Video tags run on decode time; audio and data with the pictures as shown.
        let rebased = time + on_air.offset;
        let shifted = rebased + i64::from(on_air.shift);
        match role {
            Role::Metadata | Role::AudioHeader | Role::VideoHeader => {
                let at = match role {
                    // Before a source's first picture its video timeline is not settled yet
                    // (see the raise above): the header goes where the video track is.
                    Role::VideoHeader if !on_air.video_started => {
                        self.video.last.map_or(rebased, |last| rebased.min(signed(last)))
                    }
                    Role::VideoHeader => rebased,
                    _ => shifted,
                };
                // In order with what is held back, if anything is.
                let mut header = Vec::new();
                self.pass_header(role, tag, at, &mut header);
                self.emit_in_order(header, out);
            }
            Role::Script => {
                let ts = not_before_rebased(shifted, self.last_data);
                self.last_data = Some(ts);
                out.push(restamp(tag, ts));
            }
            // The program goes on after a source's stream ends.
            Role::VideoEnd => {}
            Role::VideoOther => {
                let ts = not_before_rebased(rebased, self.video.last);
                self.video.last = Some(ts);
                // Stays in decode order with the pictures held back, if any.
                self.emit_in_order([restamp(tag, ts)], out);
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
                let raised = (on_air.shift > 0).then(|| shift_composition_time(&tag.payload, on_air.shift)).flatten();
                let composition =
                    i64::from(composition_time(tag)) + raised.as_ref().map_or(0, |_| i64::from(on_air.shift));
                let shown = signed(ts) + composition.clamp(0, max_composition);
                self.video.last_presentation = self.video.last_presentation.max(Some(shown));
                let earliest = signed(ts) + i64::from(on_air.shift).min(max_composition);
                on_air.pictures.record(earliest, shown, frame);
                let payload = raised.unwrap_or_else(|| tag.payload.clone());
                on_air.tail.push(FlvTag { kind: tag.kind, timestamp: program_ts(ts), payload });
                if on_air.pictures.is_clean() {
                    out.append(&mut on_air.tail);
                    on_air.at_clean = VideoMark::of(&self.video, &self.audio);
                }
            }
            Role::AudioFrame | Role::AudioOther => {
                // A frame starting within half a frame of the previous one would play over it
                // (a looped file's restart, encoder jitter): decoders and muxers (ffmpeg's)
                // refuse such overlaps, so it is dropped rather than squeezed in.
                let overlaps = |last: u64| shifted < signed(last) + audio_frame / 2;
                if role == Role::AudioFrame && self.audio.last_frame.is_some_and(overlaps) {
                    return;
                }
                if !on_air.audio_started {
                    let lands_after_program_audio =
                        u64::try_from(shifted).is_ok_and(|ts| self.audio.last_frame.is_none_or(|last| ts > last));
                    let plays_with_pictures = on_air.first_shown.is_none_or(|shown| shifted + audio_frame > shown);
                    if !lands_after_program_audio || !plays_with_pictures {
                        return;
                    }
                    on_air.audio_started = true;
                    if let (Some(silence), Ok(first)) = (on_air.silence.take(), u64::try_from(shifted)) {
                        self.bridge_audio(&silence, first, out);
                    }
                }
                // Audio frames, like pictures, never share a timestamp: muxers (ffmpeg's)
                // refuse a frame that does not come after the previous one.
                let after_last_frame = self.audio.last_frame.filter(|_| role == Role::AudioFrame).map(|last| last + 1);
                let ts = not_before_rebased(shifted, self.audio.last.max(after_last_frame));
                self.audio.last = Some(ts);
                if role == Role::AudioFrame {
                    self.audio.last_frame = Some(ts);
                }
                // Audio goes with the pictures held back, and is dropped with them.
                self.emit_in_order([restamp(tag, ts)], out);
            }
        }
    }

    /// Emits `tags` of the on-air source after what it holds back, if anything: into its
    /// held tail, else straight out (and everything emitted is then a clean point).
    fn emit_in_order(&mut self, tags: impl IntoIterator<Item = FlvTag>, out: &mut Vec<FlvTag>) {
        match self.on_air.as_mut() {
            Some(on_air) if !on_air.tail.is_empty() => on_air.tail.extend(tags),
            Some(on_air) => {
                out.extend(tags);
                on_air.at_clean = VideoMark::of(&self.video, &self.audio);
            }
            None => out.extend(tags),
        }
    }

    /// Fills the pause before a new source's first audio frame with silent frames, so the
    /// program's audio stays continuous across a splice (the splice may have to start the
    /// picture a little later than the old audio ended, to keep pictures in order).
    fn bridge_audio(&mut self, silence: &Silence, first: u64, out: &mut Vec<FlvTag>) {
        let Some(last) = self.audio.last_frame else { return };
        let step = silence.frame_ms;
        // After the old audio, and not before the new source's audio header.
        let mut at = (last as f64 + step).max(self.audio.last.unwrap_or(0) as f64);
        // Never more than a second of filler: a longer pause is not a splice artefact.
        let mut left = (1000.0 / step) as usize;
        let mut frames = Vec::new();
        while at + step / 2.0 <= first as f64 && left > 0 {
            let ts = at.round() as u64;
            frames.push(FlvTag { kind: TagKind::Audio, timestamp: program_ts(ts), payload: silence.payload.clone() });
            self.audio.last = Some(ts);
            self.audio.last_frame = Some(ts);
            at += step;
            left -= 1;
        }
        // Behind pictures held back, if any, so a cut that drops them knows where audio is.
        self.emit_in_order(frames, out);
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
        let time = on_air.source_time(ts);
        let previous = match media {
            Media::Video => on_air.last_video_time,
            Media::Audio => on_air.last_audio_time,
        };
        let jump = time - on_air.last_frame_time;
        let step = previous.map(|previous| time - previous);
        let jumped = jump.abs() > i64::from(self.config.max_timestamp_jump_ms)
            || step.is_some_and(|step| -step > i64::from(self.config.max_timestamp_regression_ms));
        // Both tracks share the new offset, so anchor on video while the source shows
        // some: the video then continues exactly, and its audio follows within a frame.
        let anchor_media = if on_air.video_started { Media::Video } else { Media::Audio };
        let anchor = jumped.then(|| self.continuation(anchor_media, self.video_frame()));

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
            // The offset maps video times; audio times carry the shift on top.
            let shift = if anchor_media == Media::Audio { i64::from(on_air.shift) } else { 0 };
            on_air.offset = signed(anchor) - time - shift;
            // The other track's last frame belongs to the old timeline: its next frame
            // must not be taken for a step back.
            on_air.last_video_time = None;
            on_air.last_audio_time = None;
        }
        on_air.last_frame_ts = ts;
        on_air.last_frame_time = time;
        match media {
            Media::Video => on_air.last_video_time = Some(time),
            Media::Audio => on_air.last_audio_time = Some(time),
        }
    }

    /// Where a new timeline starting with a frame of `media` should begin: one frame after
    /// the last frame of that track (`video_frame` for video), unless the other track has
    /// run further ahead than normal interleaving explains (it alone played meanwhile),
    /// then where it ends. Tracks are compared as heard and seen: pictures are shown the
    /// presentation delay after their timestamps.
    fn continuation(&self, media: Media, video_frame: u32) -> u64 {
        let delay = u64::from(self.delay);
        let video_end = self.video.last_frame.map(|last| last + u64::from(video_frame.max(1)));
        let audio_end = self.audio.end(self.config.default_audio_frame_ms);
        let (own, other) = match media {
            Media::Video => (video_end, audio_end.map(|end| end.saturating_sub(delay))),
            Media::Audio => (audio_end, video_end.map(|end| end + delay)),
        };
        match (own, other) {
            (Some(own), Some(other)) if other > own + u64::from(self.config.max_track_skew_ms) => other,
            (Some(own), _) => own,
            (None, other) => other.unwrap_or(0),
        }
    }
}

/// A silent AAC-LC frame in a source's audio format.
#[derive(Debug, Clone)]
struct Silence {
    /// FLV audio tag body: AAC raw frame header and a silent raw_data_block.
    payload: Bytes,
    /// 1024 samples at the source's sample rate, in ms.
    frame_ms: f64,
}

impl Silence {
    /// Silent frames exist for AAC-LC mono and stereo (the formats DJs stream in); other
    /// formats get no bridge, only the pause.
    fn for_header(header: &FlvTag) -> Option<Self> {
        let info = AudioTagInfo::parse(&header.payload).ok()?;
        if info.codec != AudioCodec::Aac || !info.is_sequence_header() {
            return None;
        }
        let config = AudioSpecificConfig::parse(header.payload.get(2..)?).ok()?;
        // Constant bitstreams: a raw_data_block with one single (mono) or paired (stereo)
        // channel element carrying no spectral data, as AAC encoders emit for silence.
        const MONO: &[u8] = &[0xAF, 0x01, 0x01, 0x18, 0x20, 0x07];
        const STEREO: &[u8] = &[0xAF, 0x01, 0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C];
        let payload = match (config.object_type, config.channels) {
            (2, Some(1)) => MONO,
            (2, Some(2)) => STEREO,
            _ => return None,
        };
        let frame_ms = 1024.0 * 1000.0 / f64::from(config.sample_rate.max(1));
        Some(Self { payload: Bytes::from_static(payload), frame_ms })
    }
}

/// A video frame's composition offset (presentation minus decoding time), 0 if unknown.
fn composition_time(tag: &FlvTag) -> i32 {
    VideoTagInfo::parse(&tag.payload).map_or(0, |info| info.composition_time)
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

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::{AtomicU32, Ordering};

    use bytes::{BufMut, Bytes, BytesMut};
    use proptest::prelude::*;

    use super::*;
    use crate::media::codec::parse_video_tag;
    use crate::media::flv::{FlvHeader, FlvReader};

    const A: Source = Source::Publisher(ConnId(1));
    const B: Source = Source::Publisher(ConnId(2));
    const C: Source = Source::Publisher(ConnId(3));

    // Hand-built tags. `mark` makes the headers of different sources differ.

    fn tag(kind: TagKind, ts: u32, payload: &[u8]) -> FlvTag {
        FlvTag::new(kind, ts, payload.to_vec())
    }
    fn metadata(mark: u8) -> FlvTag {
        let mut payload = b"\x02\x00\x0aonMetaData\x08\0\0\0\0".to_vec();
        payload.push(mark);
        FlvTag::new(TagKind::Script, 0, payload)
    }
    fn avc_header(mark: u8) -> FlvTag {
        tag(TagKind::Video, 0, &[0x17, 0, 0, 0, 0, 1, 0x64, mark])
    }
    /// Picture bodies are unique, so that a payload the switcher had to copy (to raise its
    /// composition offset) can still be traced to the tag it came from.
    fn unique() -> [u8; 4] {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes()
    }
    /// A legacy AVC picture with composition offset `cts`.
    fn avc_frame(key: bool, ts: u32, cts: i32) -> FlvTag {
        let mut payload = vec![if key { 0x17 } else { 0x27 }, 1];
        payload.extend_from_slice(&cts.to_be_bytes()[1..]);
        payload.push(if key { 0xaa } else { 0xbb });
        payload.extend_from_slice(&unique());
        FlvTag::new(TagKind::Video, ts, payload)
    }
    fn avc_key(ts: u32) -> FlvTag {
        avc_frame(true, ts, 0)
    }
    fn avc_inter(ts: u32) -> FlvTag {
        avc_frame(false, ts, 0)
    }
    /// Enhanced RTMP: 0x80 | frame type << 4 | packet type, then the FourCC.
    fn enhanced(frame_type: u8, packet_type: u8, fourcc: &[u8; 4], ts: u32, body: &[u8]) -> FlvTag {
        let mut payload = vec![0x80 | frame_type << 4 | packet_type];
        payload.extend_from_slice(fourcc);
        payload.extend_from_slice(body);
        FlvTag::new(TagKind::Video, ts, payload)
    }
    fn hevc_header(mark: u8) -> FlvTag {
        enhanced(1, 0, b"hvc1", 0, &[1, mark])
    }
    /// An HEVC picture as CodedFrames with composition offset `cts`.
    fn hevc_frame(key: bool, ts: u32, cts: i32) -> FlvTag {
        let mut body = cts.to_be_bytes()[1..].to_vec();
        body.push(if key { 0xaa } else { 0xbb });
        body.extend_from_slice(&unique());
        enhanced(if key { 1 } else { 2 }, 1, b"hvc1", ts, &body)
    }
    fn hevc_key(ts: u32) -> FlvTag {
        hevc_frame(true, ts, 0)
    }
    fn hevc_inter(ts: u32) -> FlvTag {
        hevc_frame(false, ts, 0)
    }
    /// AAC-LC stereo (so audio pauses at splices are bridged with silence).
    fn aac_header(mark: u8) -> FlvTag {
        tag(TagKind::Audio, 0, &[0xaf, 0, 0x12, 0x10, mark])
    }
    fn aac(ts: u32) -> FlvTag {
        tag(TagKind::Audio, ts, &[0xaf, 1, 0x21])
    }

    /// Where a program tag came from.
    #[derive(Clone, Copy, Debug)]
    struct Fed {
        source: Source,
        ts: u32,
        /// Composition offset as fed (pictures).
        cts: i32,
        role: Role,
        /// Position among the source's frames of the same track, to spot loss/duplication.
        frame: u64,
    }

    struct Out {
        tag: FlvTag,
        from: Fed,
    }

    /// A switcher plus bookkeeping: which fed tag every payload is (by address, so a
    /// copied payload is caught), and everything the program emitted.
    struct Rig {
        switcher: Switcher,
        /// Fed tags by payload address; the tags are kept alive so that no address is
        /// reused by a later allocation (a copied payload) while the map names it.
        fed: HashMap<usize, (Fed, FlvTag)>,
        /// Fed pictures by body (what follows the composition offset).
        bodies: HashMap<Vec<u8>, Fed>,
        frames: HashMap<(Source, bool), u64>,
        program: Vec<Out>,
        /// Timestamps of the silent frames the switcher bridged audio pauses with.
        silence: Vec<u32>,
    }

    impl Rig {
        fn new() -> Self {
            Self::with(SwitcherConfig::default())
        }

        fn with(config: SwitcherConfig) -> Self {
            Rig {
                switcher: Switcher::new(config),
                fed: HashMap::new(),
                bodies: HashMap::new(),
                frames: HashMap::new(),
                program: Vec::new(),
                silence: Vec::new(),
            }
        }

        fn push(&mut self, source: Source, tag: &FlvTag) -> Vec<FlvTag> {
            let role = Role::of(tag);
            let counter = self.frames.entry((source, tag.kind == TagKind::Video)).or_default();
            if role.frame_of().is_some() {
                *counter += 1;
            }
            let cts = if tag.kind == TagKind::Video { composition_time(tag) } else { 0 };
            let fed = Fed { source, ts: tag.timestamp, cts, role, frame: *counter };
            self.fed.insert(tag.payload.as_ptr() as usize, (fed, tag.clone()));
            if role.frame_of() == Some(Media::Video)
                && let Ok(picture) = parse_video_tag(&tag.payload)
            {
                self.bodies.insert(picture.body.to_vec(), fed);
            }
            let out = self.switcher.push(source, tag);
            self.record(&out);
            out
        }

        /// Adds what the switcher emitted to the program, tracing each tag to the fed one.
        fn record(&mut self, out: &[FlvTag]) {
            for emitted in out {
                let from = match self.fed.get(&(emitted.payload.as_ptr() as usize)) {
                    Some((from, _)) => *from,
                    // Silence bridging a splice is the switcher's own (a constant frame).
                    None if emitted.kind == TagKind::Audio && is_silence(emitted) => {
                        self.silence.push(emitted.timestamp);
                        continue;
                    }
                    None => self.copied_picture(emitted),
                };
                self.program.push(Out { tag: emitted.clone(), from });
            }
        }

        /// The two exceptions to "program payloads are the fed ones": a picture whose
        /// composition offset was raised (the presentation delay), and a splice keyframe
        /// with its parameter sets put in front of its NAL units. Either way the picture
        /// is the fed one, with the same header apart from the offset.
        fn copied_picture(&self, emitted: &FlvTag) -> Fed {
            let picture = parse_video_tag(&emitted.payload).expect("program payloads are the fed ones, not copies");
            let fed = self.bodies.get(picture.body).copied().or_else(|| {
                self.bodies
                    .iter()
                    .find(|(body, fed)| fed.role == Role::Keyframe && picture.body.ends_with(body))
                    .map(|(_, fed)| *fed)
            });
            let fed = fed.expect("program payloads are the fed ones, not copies");
            let raised = picture.info.composition_time - fed.cts;
            let max = i32::try_from(self.switcher.config.max_presentation_delay_ms).unwrap_or(i32::MAX);
            assert!((0..=max).contains(&raised), "composition offset raised by {raised}");
            assert_eq!(Role::of(emitted), fed.role);
            fed
        }

        fn push_all(&mut self, source: Source, tags: &[FlvTag]) -> Vec<FlvTag> {
            tags.iter().flat_map(|t| self.push(source, t)).collect()
        }

        fn video_frames(&self) -> Vec<&Out> {
            self.program.iter().filter(|o| o.from.role.frame_of() == Some(Media::Video)).collect()
        }

        fn audio_frames(&self) -> Vec<&Out> {
            self.program.iter().filter(|o| o.from.role == Role::AudioFrame).collect()
        }

        /// Indexes of the program tags that start a new source's stretch.
        fn splices(&self) -> Vec<usize> {
            (0..self.program.len())
                .filter(|&i| i == 0 || self.program[i - 1].from.source != self.program[i].from.source)
                .collect()
        }
    }

    fn is_silence(tag: &FlvTag) -> bool {
        [&[0xAF, 0x01, 0x01, 0x18, 0x20, 0x07][..], &[0xAF, 0x01, 0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C][..]]
            .contains(&&tag.payload[..])
    }

    fn stamps(tags: &[FlvTag]) -> Vec<(TagKind, u32)> {
        tags.iter().map(|t| (t.kind, t.timestamp)).collect()
    }

    #[derive(Clone, Copy, Debug)]
    enum Codec {
        Avc,
        Hevc,
    }

    /// A synthetic source: regular video and AAC frames from `base`, optionally looping
    /// like the slate (timestamps restart every `loop_ms`, headers re-sent, keyframe first).
    #[derive(Clone, Debug)]
    struct Spec {
        source: Source,
        base: u32,
        fps: Option<u32>,
        sample_rate: Option<u32>,
        gop: u64,
        codec: Codec,
        loop_ms: Option<u64>,
        jitter: u32,
        seed: u64,
        /// B-frames between anchors (closed GOPs of `gop` pictures), and the reorder delay
        /// in frames: the composition offset of keyframes.
        bframes: u64,
        delay: u64,
    }

    impl Spec {
        fn new(source: Source, base: u32) -> Self {
            Spec {
                source,
                base,
                fps: Some(30),
                sample_rate: Some(44_100),
                gop: 30,
                codec: Codec::Avc,
                loop_ms: None,
                jitter: 0,
                seed: 0,
                bframes: 0,
                delay: 0,
            }
        }

        fn mark(&self) -> u8 {
            match self.source {
                Source::Slate => 0xee,
                Source::Publisher(id) => id.0 as u8,
            }
        }

        fn headers(&self) -> Vec<FlvTag> {
            let mut headers = vec![metadata(self.mark())];
            if self.fps.is_some() {
                headers.push(match self.codec {
                    Codec::Avc => avc_header(self.mark()),
                    Codec::Hevc => hevc_header(self.mark()),
                });
            }
            if self.sample_rate.is_some() {
                headers.push(aac_header(self.mark()));
            }
            headers
        }

        /// Deterministic jitter in `0..=self.jitter` for the `n`th tag (splitmix64).
        fn jitter(&self, n: u64) -> u32 {
            let mut z = self.seed.wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % (u64::from(self.jitter) + 1)) as u32
        }

        /// Presentation index of the `n`th picture in decode order: closed GOPs of `gop`
        /// pictures, each anchor (P) sent before the `bframes` pictures shown before it.
        fn presented(&self, n: u64) -> u64 {
            let (start, k) = (n - n % self.gop, n % self.gop);
            if k == 0 {
                return start;
            }
            let group = self.bframes + 1;
            let first = 1 + (k - 1) / group * group;
            let end = (first + group).min(self.gop);
            let i = (k - 1) % group;
            start + if i == 0 { end - 1 } else { first + i - 1 }
        }

        /// Composition offset of the `n`th picture in decode order (ms).
        fn composition_time(&self, n: u64) -> i32 {
            let Some(fps) = self.fps else { return 0 };
            let at = |frames: u64| frames * 1000 / u64::from(fps);
            let cts = at(self.presented(n) + self.delay) as i64 - at(n) as i64;
            assert!(cts >= 0, "delay {} too short for {} B-frames", self.delay, self.bframes);
            cts as i32
        }

        /// The tags produced during the first `until_ms` of wall time, with their wall time.
        fn feed(&self, until_ms: u64) -> Feed {
            let headers = self.headers();
            let mut tags = Vec::new();
            let (mut video_n, mut audio_n, mut n) = (0u64, 0u64, 0u64);
            let mut current_loop = 0;
            let mut last_video_loop = None;
            loop {
                let video_t = self.fps.map(|fps| video_n * 1000 / u64::from(fps));
                let audio_t = self.sample_rate.map(|rate| audio_n * 1024 * 1000 / u64::from(rate));
                let (t, is_video) = match (video_t, audio_t) {
                    (Some(v), Some(a)) if v <= a => (v, true),
                    (_, Some(a)) => (a, false),
                    (Some(v), None) => (v, true),
                    (None, None) => break,
                };
                if t >= until_ms {
                    break;
                }
                let (in_loop, this_loop) = self.loop_ms.map_or((t, 0), |l| (t % l, t / l));
                if this_loop != current_loop {
                    current_loop = this_loop;
                    tags.extend(headers.iter().map(|h| (t, h.clone())));
                }
                let ts = self.base.wrapping_add(in_loop as u32).wrapping_add(self.jitter(n));
                n += 1;
                let tag = if is_video {
                    let key = video_n % self.gop == 0 || last_video_loop != Some(this_loop);
                    last_video_loop = Some(this_loop);
                    let cts = self.composition_time(video_n);
                    video_n += 1;
                    match self.codec {
                        Codec::Avc => avc_frame(key, ts, cts),
                        Codec::Hevc => hevc_frame(key, ts, cts),
                    }
                } else {
                    audio_n += 1;
                    aac(ts)
                };
                tags.push((t, tag));
            }
            Feed { source: self.source, headers, tags }
        }
    }

    /// A source's stream: the headers a caller primes the switcher with when selecting it,
    /// and its tags with the wall time (ms) they arrive at.
    struct Feed {
        source: Source,
        headers: Vec<FlvTag>,
        tags: Vec<(u64, FlvTag)>,
    }

    #[derive(Clone, Copy, Debug)]
    enum Action {
        Select(Source),
        End(Source),
    }

    /// Plays all feeds concurrently in wall-time order, applying `schedule` on the way,
    /// like the program task: on select, the source's headers are pushed first.
    fn run(rig: &mut Rig, feeds: &[Feed], schedule: &[(u64, Action)]) {
        let mut events: Vec<(u64, usize, usize)> = feeds
            .iter()
            .enumerate()
            .flat_map(|(f, feed)| feed.tags.iter().enumerate().map(move |(i, (at, _))| (*at, f, i)))
            .collect();
        events.sort_unstable();
        let mut schedule = schedule.iter().peekable();
        let mut ended = HashSet::new();
        for (at, f, i) in events {
            while let Some((_, action)) = schedule.next_if(|(when, _)| *when <= at) {
                match *action {
                    Action::Select(source) => {
                        rig.switcher.select(source);
                        if let Some(feed) = feeds.iter().find(|feed| feed.source == source) {
                            rig.push_all(source, &feed.headers);
                        }
                    }
                    Action::End(source) => {
                        rig.switcher.source_ended(source);
                        ended.insert(source);
                    }
                }
            }
            let feed = &feeds[f];
            if !ended.contains(&feed.source) {
                rig.push(feed.source, &feed.tags[i].1);
            }
        }
    }

    /// Bounds the whole-program checks allow.
    struct Limits {
        video_gap: u32,
        audio_gap: u32,
    }

    /// The invariants every program must satisfy.
    fn check_program(rig: &Rig, limits: &Limits) {
        let program = &rig.program;
        // Per track: frames strictly increasing, other tags never behind their track.
        let (mut video, mut video_frame, mut audio, mut data) = (None, None, None, None);
        let mut audio_frame = None;
        for (i, out) in program.iter().enumerate() {
            let ts = out.tag.timestamp;
            let role = out.from.role;
            let last = match out.tag.kind {
                TagKind::Video => &mut video,
                TagKind::Audio => &mut audio,
                TagKind::Script => &mut data,
            };
            assert!(last.is_none_or(|last| ts >= last), "#{i} {role:?} at {ts} goes back from {last:?}");
            *last = Some(ts);
            if role.frame_of() == Some(Media::Video) {
                assert!(video_frame.is_none_or(|last| ts > last), "#{i} video frame at {ts} not after {video_frame:?}");
                video_frame = Some(ts);
            }
            if role == Role::AudioFrame {
                assert!(audio_frame.is_none_or(|last| ts > last), "#{i} audio frame at {ts} not after {audio_frame:?}");
                audio_frame = Some(ts);
            }
        }
        // Gaps.
        for pair in rig.video_frames().windows(2) {
            let gap = pair[1].tag.timestamp - pair[0].tag.timestamp;
            assert!(gap <= limits.video_gap, "video gap {gap} ms before {:?}", pair[1].from);
        }
        // Audio as heard: the sources' frames and the silence bridging them.
        let mut audio: Vec<(u32, Option<Fed>)> =
            rig.audio_frames().iter().map(|o| (o.tag.timestamp, Some(o.from))).collect();
        audio.extend(rig.silence.iter().map(|&ts| (ts, None)));
        audio.sort_by_key(|(ts, _)| *ts);
        for pair in audio.windows(2) {
            let gap = pair[1].0 - pair[0].0;
            assert!(gap <= limits.audio_gap, "audio gap {gap} ms before {:?} at {}", pair[1].1, pair[1].0);
        }
        let splices = rig.splices();
        let mut bounds = splices.clone();
        bounds.push(program.len());
        for stretch in bounds.windows(2) {
            let start = stretch[0];
            let stretch = &program[stretch[0]..stretch[1]];
            // Headers first, in order, then the frame the splice happened on.
            let headers = stretch
                .iter()
                .take_while(|o| matches!(o.from.role, Role::Metadata | Role::VideoHeader | Role::AudioHeader))
                .count();
            let rank = |role| match role {
                Role::Metadata => 0,
                Role::VideoHeader => 1,
                _ => 2,
            };
            assert!(stretch[..headers].windows(2).all(|w| rank(w[0].from.role) < rank(w[1].from.role)));
            let first = &stretch[headers.min(stretch.len() - 1)];
            assert!(
                matches!(first.from.role, Role::Keyframe | Role::AudioFrame) || headers == stretch.len(),
                "stretch of {:?} starts with {:?}",
                first.from.source,
                first.from.role
            );
            // No frame lost or repeated within a source: consecutive positions, except
            // audio before the source's first emitted audio frame.
            let frames = |video: bool| {
                stretch
                    .iter()
                    .filter(move |o| {
                        let frame = o.from.role.frame_of();
                        frame == Some(if video { Media::Video } else { Media::Audio })
                    })
                    .map(|o| o.from.frame)
                    .collect::<Vec<_>>()
            };
            for video in [true, false] {
                assert!(
                    frames(video).windows(2).all(|w| w[1] == w[0] + 1),
                    "{:?} lost or repeated {} frames",
                    first.from.source,
                    if video { "video" } else { "audio" }
                );
            }
            // Pictures in order across the splice: the new source's first one is shown after
            // every picture before it.
            let shown_before =
                program[..start].iter().filter(|o| o.from.role.frame_of() == Some(Media::Video)).map(shown).max();
            if let Some(key) = stretch.iter().find(|o| o.from.role == Role::Keyframe) {
                assert!(shown_before.is_none_or(|before| shown(key) > before), "{:?} shown out of order", key.from);
            }
            // A/V sync: audio and video frames from the same stretch of continuous source
            // time (the source's own loops and jumps split it) share one offset.
            let frames: Vec<&Out> = stretch.iter().filter(|o| o.from.role.frame_of().is_some()).collect();
            let mut epochs = Vec::with_capacity(frames.len());
            for (i, frame) in frames.iter().enumerate() {
                let previous = i.checked_sub(1).map(|p| frames[p].from.ts);
                let continuous =
                    previous.is_none_or(|p| (-100..=2_000).contains(&(frame.from.ts.wrapping_sub(p) as i32)));
                let epoch = epochs.last().copied().unwrap_or(0);
                epochs.push(if continuous { epoch } else { epoch + 1 });
            }
            // Modular, like the timestamps: a source may wrap. Pictures by presentation
            // time, which is what audio plays along with.
            let offset = |o: &Out| {
                let cts = if o.tag.kind == TagKind::Video { composition_time(&o.tag) - o.from.cts } else { 0 };
                o.tag.timestamp.wrapping_add(cts as u32).wrapping_sub(o.from.ts)
            };
            for (i, audio) in frames.iter().enumerate().filter(|(_, o)| o.from.role == Role::AudioFrame) {
                let same_epoch_video =
                    |j: &usize| epochs[*j] == epochs[i] && frames[*j].from.role.frame_of() == Some(Media::Video);
                let before = (0..i).rev().find(same_epoch_video);
                let after = (i + 1..frames.len()).find(same_epoch_video);
                let drift = [before, after]
                    .into_iter()
                    .flatten()
                    .map(|j| (offset(frames[j]).wrapping_sub(offset(audio)) as i32).unsigned_abs())
                    .min();
                assert!(drift.is_none_or(|d| d < 100), "A/V drift {drift:?} ms at {:?}", audio.from);
            }
        }
    }

    /// Frame duration (ms) at `rate` frames per second, rounded up.
    fn frame_ms(per_second: u32, samples: u32) -> u32 {
        (samples * 1000).div_ceil(per_second)
    }

    #[test]
    fn first_source_starts_at_zero_after_its_headers() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        assert_eq!(rig.switcher.pending(), Some(A));
        assert_eq!(rig.switcher.current(), None);
        assert_eq!(rig.switcher.next_timestamp(), 0);

        let headers = [metadata(1), avc_header(1), aac_header(1)];
        assert!(rig.push_all(A, &headers).is_empty());
        // Joined mid-GOP: nothing until the keyframe.
        assert!(rig.push(A, &avc_inter(1000)).is_empty());
        assert!(rig.push(A, &aac(1010)).is_empty());
        let out = rig.push(A, &avc_key(1033));
        assert_eq!(stamps(&out), [(TagKind::Script, 0), (TagKind::Video, 0), (TagKind::Audio, 0), (TagKind::Video, 0)]);
        for (sent, got) in headers.iter().zip(&out) {
            assert!(sent.payload.as_ptr() == got.payload.as_ptr());
        }
        assert_eq!(rig.switcher.current(), Some(A));
        assert_eq!(rig.switcher.pending(), None);
        assert_eq!(stamps(&rig.push(A, &aac(1040))), [(TagKind::Audio, 7)]);
        assert_eq!(stamps(&rig.push(A, &avc_inter(1066))), [(TagKind::Video, 33)]);
        assert_eq!(rig.switcher.next_timestamp(), 66);
    }

    /// An encoder that drops frames (OBS under load) leaves gaps in a stream without
    /// B-frames: no picture can fill them, so nothing is held back for them, however long
    /// the program's presentation delay.
    #[test]
    fn a_dropped_frame_holds_nothing_back_in_a_stream_without_b_frames() {
        let config = SwitcherConfig { presentation_delay_ms: 100, ..SwitcherConfig::default() };
        let mut rig = Rig::with(config);
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), aac_header(1)]);
        assert!(!rig.push(A, &avc_key(0)).is_empty());
        for ts in [33, 66, 100, 133] {
            assert_eq!(rig.push(A, &avc_inter(ts)).len(), 1, "frame {ts} out at once");
        }
        // Two frames (166, 200) never come.
        assert_eq!(rig.push(A, &avc_inter(233)).len(), 1, "the frame after the gap is not held");
        assert_eq!(rig.push(A, &aac(240)).len(), 1, "nor the audio after it");
        assert_eq!(rig.push(A, &avc_key(266)).len(), 1);
    }

    #[test]
    fn first_source_audio_before_its_keyframe_is_dropped() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), aac_header(1)]);
        rig.push(A, &avc_key(500));
        // Arrives after the keyframe but is stamped before it: would be negative.
        assert!(rig.push(A, &aac(490)).is_empty());
        assert_eq!(stamps(&rig.push(A, &aac(513))), [(TagKind::Audio, 13)]);
    }

    #[test]
    fn switch_waits_for_the_keyframe_then_lands_one_frame_later() {
        let a = Spec::new(A, 0);
        let b = Spec { fps: Some(25), sample_rate: Some(48_000), gop: 25, ..Spec::new(B, 987_654) };
        let feeds = [a.feed(5_000), b.feed(5_000)];
        let mut rig = Rig::new();
        run(&mut rig, &feeds, &[(0, Action::Select(A)), (2_100, Action::Select(B))]);
        check_program(&rig, &Limits { video_gap: 40, audio_gap: 33 + 2 * 23 });

        let splices = rig.splices();
        assert_eq!(splices.len(), 2);
        let at = splices[1];
        let p = &rig.program;
        // A kept playing while B was pending, up to B's next keyframe (wall 3000 ms).
        let last_a = p[..at].iter().rev().find(|o| o.from.role.frame_of() == Some(Media::Video)).unwrap();
        assert_eq!(last_a.from.ts, 3_000);
        // Headers, then the keyframe, one A frame after A's last video frame; the audio
        // header where A's audio ends, so B's audio follows on from there.
        let splice: Vec<_> = p[at..at + 4].iter().map(|o| (o.from.role, o.tag.timestamp)).collect();
        let ts = last_a.tag.timestamp + 33;
        let last_a_audio = p[..at].iter().rev().find(|o| o.from.role == Role::AudioFrame).unwrap();
        let audio_end = (last_a_audio.tag.timestamp + 23).min(ts);
        assert_eq!(
            splice,
            [(Role::Metadata, ts), (Role::VideoHeader, ts), (Role::AudioHeader, audio_end), (Role::Keyframe, ts)]
        );
        assert_eq!(p[at + 1].tag.payload, avc_header(2).payload);
        assert_eq!(p[at + 3].from.ts, 987_654 + 3_000);
        // Then only B, with one offset for its audio and video.
        assert!(p[at..].iter().all(|o| o.from.source == B));
        let offsets: HashSet<_> =
            p[at + 3..].iter().map(|o| i64::from(o.tag.timestamp) - i64::from(o.from.ts)).collect();
        assert_eq!(offsets.len(), 1);
        // B's frame rate now drives the estimate.
        let last = rig.video_frames().last().unwrap().tag.timestamp;
        assert_eq!(rig.switcher.next_timestamp(), last + 40);
    }

    #[test]
    fn selecting_the_current_source_again_cancels_the_switch() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), avc_key(0)]);
        rig.switcher.select(B);
        rig.push(B, &avc_header(2));
        assert_eq!(rig.switcher.pending(), Some(B));
        rig.switcher.select(A);
        assert_eq!(rig.switcher.pending(), None);
        assert!(rig.push(B, &avc_key(100)).is_empty());
        assert_eq!(stamps(&rig.push(A, &avc_inter(33))), [(TagKind::Video, 33)]);
        // Selecting the pending source again keeps its headers.
        rig.switcher.select(B);
        rig.push(B, &avc_header(2));
        rig.switcher.select(B);
        let out = rig.push(B, &avc_key(200));
        assert_eq!(stamps(&out), [(TagKind::Video, 66), (TagKind::Video, 66)]);
        assert_eq!(rig.switcher.current(), Some(B));
    }

    #[test]
    fn other_sources_are_ignored() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        assert!(rig.push_all(C, &[avc_header(3), avc_key(0), aac(0)]).is_empty());
        rig.push_all(A, &[avc_header(1), avc_key(0)]);
        assert!(rig.push_all(C, &[avc_key(33), aac(40)]).is_empty());
        assert_eq!(rig.switcher.current(), Some(A));
    }

    #[test]
    fn ten_switches_between_publishers_and_a_looping_slate() {
        let a = Spec::new(A, 0);
        let b = Spec { fps: Some(25), sample_rate: Some(48_000), gop: 50, ..Spec::new(B, 987_654) };
        let slate = Spec { gop: 15, loop_ms: Some(3_000), ..Spec::new(Source::Slate, 0) };
        let feeds = [a.feed(25_000), b.feed(25_000), slate.feed(25_000)];
        let cycle = [A, B, Source::Slate];
        let schedule: Vec<_> = (0..11u64).map(|i| (i * 2_150, Action::Select(cycle[i as usize % 3]))).collect();
        let mut rig = Rig::new();
        run(&mut rig, &feeds, &schedule);
        check_program(&rig, &Limits { video_gap: 2 * 40, audio_gap: 40 + 2 * 23 });
        let order: Vec<_> = rig.splices().iter().map(|&i| rig.program[i].from.source).collect();
        assert_eq!(order.len(), 11);
        assert!(order.iter().zip(cycle.iter().cycle()).all(|(got, want)| got == want));
        // Every splice lands exactly one frame after the previous source's last frame: the
        // shorter frame of the two sources (B's are 40 ms, the others' 33).
        for &i in &rig.splices()[1..] {
            let before = rig.program[..i].iter().rev().find(|o| o.from.role.frame_of() == Some(Media::Video)).unwrap();
            let key = rig.program[i..].iter().find(|o| o.from.role == Role::Keyframe).unwrap();
            let frame = if before.from.source == B && key.from.source == B { 40 } else { 33 };
            assert_eq!(key.tag.timestamp, before.tag.timestamp + frame);
        }
    }

    #[test]
    fn audio_only_source_splices_on_its_next_audio_frame() {
        let a = Spec::new(A, 0);
        let radio = Spec { fps: None, sample_rate: Some(48_000), ..Spec::new(C, 5_000_000) };
        let b = Spec::new(B, 77);
        let feeds = [a.feed(6_000), radio.feed(6_000), b.feed(6_000)];
        let mut rig = Rig::new();
        run(&mut rig, &feeds, &[(0, Action::Select(A)), (1_500, Action::Select(C)), (3_500, Action::Select(B))]);
        // Video pauses while the radio plays: no video bound there.
        check_program(&rig, &Limits { video_gap: u32::MAX, audio_gap: 33 + 2 * 23 });
        let splices = rig.splices();
        assert_eq!(splices.len(), 3);
        let p = &rig.program;

        // The radio: metadata and audio header, then its next audio frame, where the
        // program's audio would continue.
        let at = splices[1];
        let last_audio = p[..at].iter().rev().find(|o| o.from.role == Role::AudioFrame).unwrap();
        let ts = last_audio.tag.timestamp + 23;
        let splice: Vec<_> = p[at..at + 3].iter().map(|o| (o.from.role, o.tag.timestamp)).collect();
        assert_eq!(splice, [(Role::Metadata, ts), (Role::AudioHeader, ts), (Role::AudioFrame, ts)]);
        assert!(p[at..splices[2]].iter().all(|o| o.tag.kind != TagKind::Video));

        // B: its video resumes where the radio's audio ends (not one frame after A's
        // video, seconds ago), so its audio can follow.
        let at = splices[2];
        let last_audio = p[..at].iter().rev().find(|o| o.from.role == Role::AudioFrame).unwrap();
        let key = &p[at + 3];
        assert_eq!(key.from.role, Role::Keyframe);
        assert_eq!(key.tag.timestamp, last_audio.tag.timestamp + 21);
        assert!(p[at..].iter().any(|o| o.from.role == Role::AudioFrame));
    }

    #[test]
    fn audio_only_source_that_starts_video_shows_it_from_a_keyframe() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[aac_header(1), aac(0), aac(23)]);
        assert_eq!(rig.switcher.current(), Some(A));
        // A video header passes (it is new to the program); frames wait for a keyframe.
        assert_eq!(stamps(&rig.push(A, &avc_header(1))), [(TagKind::Video, 0)]);
        assert!(rig.push(A, &avc_inter(30)).is_empty());
        assert_eq!(stamps(&rig.push(A, &aac(46))), [(TagKind::Audio, 46)]);
        assert_eq!(stamps(&rig.push(A, &avc_key(60))), [(TagKind::Video, 60)]);
        assert_eq!(stamps(&rig.push(A, &avc_inter(93))), [(TagKind::Video, 93)]);
    }

    #[test]
    fn video_only_source_keeps_audio_monotonic_around_it() {
        let a = Spec::new(A, 1_000);
        let silent = Spec { sample_rate: None, fps: Some(25), gop: 25, ..Spec::new(C, 3_000_000) };
        let b = Spec { sample_rate: Some(48_000), ..Spec::new(B, 0) };
        let feeds = [a.feed(6_000), silent.feed(6_000), b.feed(6_000)];
        let mut rig = Rig::new();
        run(&mut rig, &feeds, &[(0, Action::Select(A)), (1_500, Action::Select(C)), (3_500, Action::Select(B))]);
        // Audio pauses while the silent source plays.
        check_program(&rig, &Limits { video_gap: 40, audio_gap: u32::MAX });
        let splices = rig.splices();
        assert_eq!(splices.len(), 3);
        let p = &rig.program;
        assert!(p[splices[1]..splices[2]].iter().all(|o| o.tag.kind != TagKind::Audio));
        // B's splice: no stale audio header; its own, then its audio at its own offset.
        let at = splices[2];
        let roles: Vec<_> = p[at..at + 4].iter().map(|o| o.from.role).collect();
        assert_eq!(roles, [Role::Metadata, Role::VideoHeader, Role::AudioHeader, Role::Keyframe]);
        let key = &p[at + 3];
        // One frame after C's last, the shorter of C's (40 ms) and B's (33 ms).
        assert_eq!(key.tag.timestamp, p[at - 1].tag.timestamp + 33);
        let first_audio = p[at..].iter().find(|o| o.from.role == Role::AudioFrame).unwrap();
        assert_eq!(
            i64::from(first_audio.tag.timestamp) - i64::from(first_audio.from.ts),
            i64::from(key.tag.timestamp) - i64::from(key.from.ts)
        );
    }

    #[test]
    fn new_audio_overlapping_the_old_is_dropped_at_the_splice() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), aac_header(1), avc_key(0)]);
        // A's audio runs 100 ms ahead of its video.
        for i in 1..=3u32 {
            rig.push(A, &avc_inter(i * 33));
        }
        for i in 0..=9u32 {
            rig.push(A, &aac(i * 23));
        }
        let last_audio = 9 * 23;
        rig.switcher.select(B);
        rig.push_all(B, &[avc_header(2), aac_header(2)]);
        let out = rig.push(B, &avc_key(10_000));
        assert_eq!(out.last().map(|t| t.timestamp), Some(4 * 33));
        // The audio header may not go back on its track.
        assert_eq!(out[1].timestamp, last_audio);
        let mut audio = Vec::new();
        for i in 0..8u32 {
            audio.extend(rig.push(B, &aac(10_000 + i * 21)));
        }
        // The first new frame that does not play over A's last one (23 ms long) by more
        // than half a frame.
        let first = audio.first().unwrap().timestamp;
        assert!(first >= last_audio + 23 / 2 && first <= last_audio + 23 + 21, "{first}");
        assert_eq!(i64::from(first) % 21, i64::from(4 * 33) % 21);
    }

    #[test]
    fn timestamp_jumps_re_anchor_without_gap_or_step_back() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), aac_header(1)]);
        // Four stretches: a start, a jump forward, a jump back, a 32-bit wrap.
        let bases = [100u32, 60_000, 500, u32::MAX - 200];
        for (stretch, base) in bases.into_iter().enumerate() {
            for i in 0..12u32 {
                let ts = base.wrapping_add(i * 33);
                let video = if i == 0 && stretch == 0 { avc_key(ts) } else { avc_inter(ts) };
                rig.push(A, &video);
                rig.push(A, &aac(base.wrapping_add(i * 33 + 10)));
            }
        }
        let video: Vec<_> = rig.video_frames().iter().map(|o| o.tag.timestamp).collect();
        assert_eq!(video.len(), 48);
        assert!(video.windows(2).all(|w| w[1] - w[0] == 33), "{video:?}");
        let audio: Vec<_> = rig.audio_frames().iter().map(|o| o.tag.timestamp).collect();
        assert!(audio.windows(2).all(|w| w[1] - w[0] == 33), "{audio:?}");
        check_program(&rig, &Limits { video_gap: 33, audio_gap: 33 });
    }

    #[test]
    fn slate_loop_shorter_than_the_jump_tolerance_still_re_anchors() {
        let slate = Spec { loop_ms: Some(700), gop: 10, ..Spec::new(Source::Slate, 40) };
        let mut rig = Rig::new();
        run(&mut rig, &[slate.feed(5_000)], &[(0, Action::Select(Source::Slate))]);
        check_program(&rig, &Limits { video_gap: 2 * 33, audio_gap: 33 + 2 * 23 });
        let video = rig.video_frames();
        assert!(video.windows(2).all(|w| w[1].tag.timestamp - w[0].tag.timestamp >= 30));
        assert!(video.last().unwrap().tag.timestamp > 4_900);
        // The re-sent identical headers are not repeated in the program.
        let headers = rig.program.iter().filter(|o| o.from.role == Role::VideoHeader).count();
        assert_eq!(headers, 1);
    }

    #[test]
    fn jitter_is_clamped_not_re_anchored() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), aac_header(1), avc_key(0), aac(0)]);
        assert_eq!(stamps(&rig.push(A, &avc_inter(33))), [(TagKind::Video, 33)]);
        // Same timestamp, then 2 ms back: each one 1 ms after the last.
        assert_eq!(stamps(&rig.push(A, &avc_inter(33))), [(TagKind::Video, 34)]);
        assert_eq!(stamps(&rig.push(A, &avc_inter(31))), [(TagKind::Video, 35)]);
        assert_eq!(stamps(&rig.push(A, &aac(23))), [(TagKind::Audio, 23)]);
        // An audio frame that would overlap the previous one is dropped: a muxer refuses it
        // (the soak found ffmpeg's "non monotonically increasing dts" on the platform's
        // recording where a looped file restarted).
        assert_eq!(stamps(&rig.push(A, &aac(20))), []);
        // The offset did not move.
        assert_eq!(stamps(&rig.push(A, &avc_inter(66))), [(TagKind::Video, 66)]);
        assert_eq!(stamps(&rig.push(A, &aac(46))), [(TagKind::Audio, 46)]);
    }

    #[test]
    fn enhanced_hevc_and_av1_sources_splice_at_their_keyframes() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), avc_key(0), avc_inter(33)]);

        rig.switcher.select(B);
        rig.push(B, &hevc_header(2));
        assert!(rig.push(B, &hevc_inter(7_000)).is_empty());
        // CodedFramesX (packet type 3) is a coded frame too.
        assert!(rig.push(B, &enhanced(2, 3, b"hvc1", 7_033, &[0xbb])).is_empty());
        let out = rig.push(B, &hevc_key(7_066));
        assert_eq!(stamps(&out), [(TagKind::Video, 66), (TagKind::Video, 66)]);
        assert_eq!(out[0].payload, hevc_header(2).payload);
        assert_eq!(stamps(&rig.push(B, &hevc_inter(7_099))), [(TagKind::Video, 99)]);
        assert_eq!(stamps(&rig.push(B, &enhanced(2, 3, b"hvc1", 7_132, &[0xbb]))), [(TagKind::Video, 132)]);

        rig.switcher.select(C);
        let av1_header = enhanced(1, 0, b"av01", 0, &[0x81, 0]);
        rig.push(C, &av1_header);
        assert!(rig.push(C, &enhanced(2, 1, b"av01", 50, &[0x12])).is_empty());
        let out = rig.push(C, &enhanced(1, 1, b"av01", 83, &[0x12]));
        assert_eq!(stamps(&out), [(TagKind::Video, 165), (TagKind::Video, 165)]);
        assert_eq!(out[0].payload, av1_header.payload);
        check_program(&rig, &Limits { video_gap: 33, audio_gap: 0 });
    }

    #[test]
    fn changed_headers_pass_through_identical_repeats_do_not() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[metadata(1), avc_header(1), aac_header(1), avc_key(1_000)]);
        assert!(rig.push_all(A, &[metadata(1), avc_header(1), aac_header(1)]).is_empty());
        // A new resolution mid-stream: new header, then a keyframe.
        let new_header = FlvTag::new(TagKind::Video, 1_033, vec![0x17, 0, 0, 0, 0, 1, 0x4d, 9]);
        assert_eq!(stamps(&rig.push(A, &new_header)), [(TagKind::Video, 33)]);
        assert_eq!(stamps(&rig.push(A, &avc_key(1_033))), [(TagKind::Video, 33)]);
        // Publishers often stamp headers 0: never back on the track.
        let new_audio = tag(TagKind::Audio, 0, &[0xaf, 0, 0x11, 0x90]);
        assert_eq!(stamps(&rig.push(A, &new_audio)), [(TagKind::Audio, 0)]);
        let new_metadata = FlvTag { timestamp: 1_040, ..metadata(7) };
        assert_eq!(stamps(&rig.push(A, &new_metadata)), [(TagKind::Script, 40)]);
        // Other script data rides along, rebased.
        let cue = tag(TagKind::Script, 1_050, b"\x02\x00\x0aonCuePoint");
        assert_eq!(stamps(&rig.push(A, &cue)), [(TagKind::Script, 50)]);
    }

    #[test]
    fn end_of_sequence_is_dropped() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), avc_key(0)]);
        assert!(rig.push(A, &tag(TagKind::Video, 33, &[0x17, 2, 0, 0, 0])).is_empty());
        assert!(rig.push(A, &enhanced(1, 2, b"hvc1", 33, &[])).is_empty());
    }

    #[test]
    fn ended_source_stops_and_the_pending_one_still_waits_for_its_keyframe() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), avc_key(0), avc_inter(33)]);
        rig.switcher.select(B);
        rig.push(B, &avc_header(2));
        rig.switcher.source_ended(A);
        assert_eq!(rig.switcher.current(), None);
        assert_eq!(rig.switcher.pending(), Some(B));
        assert!(rig.push(A, &avc_inter(66)).is_empty());
        assert!(rig.push(B, &avc_inter(400)).is_empty());
        let out = rig.push(B, &avc_key(433));
        assert_eq!(stamps(&out), [(TagKind::Video, 66), (TagKind::Video, 66)]);

        // Ending the pending source cancels the switch.
        rig.switcher.select(C);
        rig.switcher.source_ended(C);
        assert_eq!(rig.switcher.pending(), None);
        assert!(rig.push(C, &avc_key(0)).is_empty());
        assert_eq!(rig.switcher.current(), Some(B));
    }

    #[test]
    fn garbage_tags_never_panic_and_keep_tracks_monotonic() {
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), avc_key(100)]);
        for (i, payload) in [&[][..], &[0x17], &[0x90, b'h'], &[0xaf], &[0x9f, 1, 2]].iter().enumerate() {
            for kind in [TagKind::Video, TagKind::Audio, TagKind::Script] {
                rig.push(A, &tag(kind, i as u32 * 7, payload));
            }
        }
        check_program(&rig, &Limits { video_gap: 0, audio_gap: u32::MAX });
    }

    fn fixture() -> (Vec<FlvTag>, Vec<FlvTag>) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/dj.flv");
        let data = Bytes::from(std::fs::read(path).expect("fixture"));
        let tags: Vec<FlvTag> =
            FlvReader::new(data).expect("fixture header").collect::<Result<_, _>>().expect("fixture tags");
        let (headers, body): (Vec<_>, Vec<_>) = tags
            .into_iter()
            .partition(|t| matches!(Role::of(t), Role::Metadata | Role::VideoHeader | Role::AudioHeader));
        assert_eq!(headers.len(), 3);
        (headers, body)
    }

    /// The fixture as a live source: played `loops` times, one loop every `period` ms,
    /// its timestamps shifted by `base` and either restarting (a looped file) or
    /// continuing (a live encoder).
    fn fixture_feed(source: Source, base: u32, period: u32, loops: u32, restart: bool) -> Feed {
        let (headers, body) = fixture();
        let mut tags = Vec::new();
        for n in 0..loops {
            let shift = base + if restart { 0 } else { n * period };
            if restart && n > 0 {
                tags.extend(headers.iter().map(|h| (u64::from(n * period), h.clone())));
            }
            tags.extend(body.iter().filter(|t| t.timestamp < period - 10).map(|t| {
                let at = u64::from(n * period + t.timestamp);
                (at, FlvTag { timestamp: t.timestamp + shift, ..t.clone() })
            }));
        }
        Feed { source, headers, tags }
    }

    #[test]
    fn real_fixture_switched_back_and_forth_re_parses() {
        let feeds = [fixture_feed(A, 0, 10_000, 3, true), fixture_feed(B, 5_000_000, 10_000, 3, false)];
        let schedule = [
            (0, Action::Select(A)),
            (2_500, Action::Select(B)),
            (6_200, Action::Select(A)),
            (13_000, Action::Select(B)),
            (21_400, Action::Select(A)),
            (26_000, Action::Select(B)),
        ];
        let mut rig = Rig::new();
        run(&mut rig, &feeds, &schedule);
        assert_eq!(rig.splices().len(), 6);
        check_program(&rig, &Limits { video_gap: 2 * 34, audio_gap: 34 + 2 * 24 });
        // Its pictures are reordered (3 B-frames, pyramid): every cut waits for them.
        assert_seamless(&rig, &[(A, 30), (B, 30)]);
        let video = rig.video_frames();
        let duration = video.last().unwrap().tag.timestamp;
        assert!((29_000..31_000).contains(&duration), "{duration}");

        let mut file = BytesMut::new();
        file.extend_from_slice(&FlvHeader { has_audio: true, has_video: true }.encode());
        for out in &rig.program {
            file.put(out.tag.encode().expect("encodable"));
        }
        let reread: Vec<FlvTag> =
            FlvReader::new(file.freeze()).expect("header").collect::<Result<_, _>>().expect("tags");
        let written: Vec<FlvTag> = rig.program.iter().map(|o| o.tag.clone()).collect();
        assert_eq!(reread, written);
    }

    #[test]
    fn slate_looping_right_before_a_splice() {
        // Found by the property test: the slate's audio starts a new loop just before B's
        // keyframe, so no slate video follows it; it must still continue the program.
        let slate = Spec { fps: Some(24), gop: 5, loop_ms: Some(1_320), ..Spec::new(Source::Slate, 0) };
        let a = Spec { fps: Some(24), gop: 5, ..Spec::new(A, 0) };
        let b = Spec { fps: Some(25), gop: 20, ..Spec::new(B, 0) };
        let feeds = [a.feed(7_201), b.feed(7_201), slate.feed(7_201)];
        let mut rig = Rig::new();
        let schedule = [(0, Action::Select(A)), (2_030, Action::Select(Source::Slate)), (3_201, Action::Select(B))];
        run(&mut rig, &feeds, &schedule);
        check_program(&rig, &Limits { video_gap: 2 * 42, audio_gap: 42 + 2 * 24 });
        assert_eq!(rig.splices().len(), 3);
    }

    /// When a program picture is shown: timestamp plus composition offset.
    fn shown(o: &Out) -> i64 {
        i64::from(o.tag.timestamp) + i64::from(composition_time(&o.tag))
    }

    /// A splice onto a video source, as shown.
    #[derive(Debug)]
    struct Pause {
        to: Source,
        /// From the last picture shown before the new source's first to that one.
        at_splice: i64,
        /// The longest pause between the pictures shown in the second before that: a
        /// picture of the old source left out shows up here.
        before: i64,
        /// From the new source's first picture to its first audio frame.
        audio: Option<i64>,
    }

    /// The pauses between consecutive pictures, sorted by presentation time, at each
    /// splice onto a video source.
    fn splice_pauses(rig: &Rig) -> Vec<Pause> {
        let mut pictures: Vec<i64> = rig.video_frames().into_iter().map(shown).collect();
        pictures.sort_unstable();
        let mut bounds = rig.splices();
        bounds.push(rig.program.len());
        bounds
            .windows(2)
            .skip(1)
            .filter_map(|w| {
                let stretch = &rig.program[w[0]..w[1]];
                let key = stretch.iter().find(|o| o.from.role == Role::Keyframe)?;
                let first = shown(key);
                let window: Vec<i64> = pictures.iter().copied().filter(|&p| p < first && p >= first - 1_000).collect();
                let audio = stretch.iter().find(|o| o.from.role == Role::AudioFrame);
                Some(Pause {
                    to: key.from.source,
                    at_splice: first - window.last()?,
                    before: window.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0),
                    audio: audio.map(|a| i64::from(a.tag.timestamp) - first),
                })
            })
            .collect()
    }

    /// Asserts every splice pauses at most one frame of the new source (+1 ms of
    /// rounding) between pictures, leaves no picture of the old one out, and starts the
    /// new audio within that frame of the new pictures.
    fn assert_seamless(rig: &Rig, fps: &[(Source, u32)]) {
        let frame =
            |source: Source| fps.iter().find(|(s, _)| *s == source).map(|(_, fps)| i64::from(1_000 / fps + 1)).unwrap();
        let longest = fps.iter().map(|(s, _)| frame(*s)).max().unwrap();
        let pauses = splice_pauses(rig);
        assert!(!pauses.is_empty());
        for pause in pauses {
            let frame = frame(pause.to);
            assert!(pause.at_splice <= frame, "{pause:?}: more than a frame ({frame} ms)");
            assert!(pause.before <= longest, "{pause:?}: the old source left pictures out");
            assert!(pause.audio.expect("audio after the splice").abs() <= frame, "{pause:?}: audio not with pictures");
        }
    }

    /// A (30 fps, no B-frames) and B (25 fps, 2 B-frames shown 80 ms after decoding).
    fn a_and_b() -> (Spec, Spec) {
        let a = Spec::new(A, 10_000);
        let b =
            Spec { fps: Some(25), sample_rate: Some(48_000), gop: 12, bframes: 2, delay: 2, ..Spec::new(B, 3_000_000) };
        (a, b)
    }

    #[test]
    fn splices_into_and_out_of_b_frames_pause_one_frame() {
        // Finding 7: B's keyframe is shown 80 ms after its timestamp, A's pictures at
        // theirs; the program shows both with the delay of the first, B.
        let (a, b) = a_and_b();
        let feeds = [b.feed(6_000), a.feed(6_000)];
        let schedule = [(0, Action::Select(B)), (1_100, Action::Select(A)), (2_300, Action::Select(B))];
        let mut rig = Rig::new();
        run(&mut rig, &feeds, &schedule);
        check_program(&rig, &Limits { video_gap: 40, audio_gap: 40 + 2 * 23 });
        assert_eq!(rig.splices().len(), 3);
        assert_seamless(&rig, &[(A, 30), (B, 25)]);
        // A's pictures carry the program's delay, B's their own.
        let delays: HashSet<(Source, i32)> = rig
            .video_frames()
            .iter()
            .filter(|o| o.from.role == Role::Keyframe)
            .map(|o| (o.from.source, composition_time(&o.tag)))
            .collect();
        assert_eq!(delays, HashSet::from([(A, 80), (B, 80)]));
    }

    #[test]
    fn splice_into_b_frames_with_the_channel_delay_configured() {
        let (a, b) = a_and_b();
        let feeds = [a.feed(4_000), b.feed(4_000)];
        let config = SwitcherConfig { presentation_delay_ms: 80, ..SwitcherConfig::default() };
        let mut rig = Rig::with(config);
        run(&mut rig, &feeds, &[(0, Action::Select(A)), (1_100, Action::Select(B))]);
        check_program(&rig, &Limits { video_gap: 40, audio_gap: 40 + 2 * 23 });
        assert_seamless(&rig, &[(A, 30), (B, 25)]);
        assert_eq!(rig.switcher.presentation_delay(), 80);
    }

    #[test]
    fn presentation_delay_grows_once_for_a_source_with_longer_reordering() {
        let (a, b) = a_and_b();
        let feeds = [a.feed(6_000), b.feed(6_000)];
        let schedule = [
            (0, Action::Select(A)),
            (1_100, Action::Select(B)),
            (2_300, Action::Select(A)),
            (3_500, Action::Select(B)),
        ];
        let mut rig = Rig::new();
        run(&mut rig, &feeds, &schedule);
        check_program(&rig, &Limits { video_gap: 40, audio_gap: 40 + 3 * 23 });
        let pauses: Vec<i64> = splice_pauses(&rig).iter().map(|p| p.at_splice).collect();
        // The first splice into B raises the delay from 0 to 80 ms: one longer pause.
        assert_eq!(pauses.len(), 3);
        assert!(pauses[0] <= 33 + 80 + 1, "{pauses:?}");
        assert!(pauses[1] <= 34 && pauses[2] <= 41, "{pauses:?}");
        assert_eq!(rig.switcher.presentation_delay(), 80);
    }

    #[test]
    fn b_frames_to_b_frames_with_different_delays() {
        let (_, b) = a_and_b();
        // Three B-frames, shown one frame after decoding, HEVC in Enhanced RTMP.
        let c = Spec { bframes: 3, delay: 1, gop: 30, codec: Codec::Hevc, ..Spec::new(C, 77) };
        let feeds = [b.feed(6_000), c.feed(6_000)];
        let schedule = [(0, Action::Select(B)), (1_100, Action::Select(C)), (2_300, Action::Select(B))];
        let mut rig = Rig::new();
        run(&mut rig, &feeds, &schedule);
        check_program(&rig, &Limits { video_gap: 40, audio_gap: 40 + 2 * 23 });
        assert_eq!(rig.splices().len(), 3);
        assert_seamless(&rig, &[(C, 30), (B, 25)]);
    }

    #[test]
    fn cut_away_from_b_frames_waits_for_the_pictures_shown_before_the_last() {
        // Finding 3: A's keyframe (wall 1000 ms) arrives right after B sent the anchor
        // P-frame of a mini-GOP, before the two B-frames shown ahead of it.
        let (a, b) = a_and_b();
        let feeds = [b.feed(3_000), a.feed(3_000)];
        assert_eq!(b.presented(25), 27, "B's frame at wall 1000 ms is an anchor");
        let mut rig = Rig::new();
        run(&mut rig, &feeds, &[(0, Action::Select(B)), (900, Action::Select(A))]);
        check_program(&rig, &Limits { video_gap: 40, audio_gap: 40 + 2 * 23 });
        assert_seamless(&rig, &[(A, 30), (B, 25)]);
        // B's pictures, as shown, have no hole: its cut waited for the two B-frames.
        let mut b_shown: Vec<i64> = rig.video_frames().into_iter().filter(|o| o.from.source == B).map(shown).collect();
        b_shown.sort_unstable();
        assert!(b_shown.windows(2).all(|w| w[1] - w[0] == 40), "{b_shown:?}");
        let last_b = rig.video_frames().into_iter().rfind(|o| o.from.source == B).unwrap().from.frame;
        assert_eq!(last_b, 28);
    }

    #[test]
    fn held_splice_goes_on_when_the_old_source_ends_or_never_gets_clean() {
        let mut rig = Rig::new();
        rig.switcher.select(B);
        // Decode order I0 P3 B1 B2 P6, then nothing: B4 and B5 never come.
        let b_frames = [(true, 0, 40), (false, 40, 120), (false, 80, 0), (false, 120, 0), (false, 160, 120)];
        for (key, ts, cts) in b_frames {
            rig.push(B, &avc_frame(key, ts, cts));
        }
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), aac_header(1)]);
        assert!(rig.push_all(A, &[avc_key(5_000), aac(5_010), avc_inter(5_033)]).is_empty(), "held");
        assert_eq!(rig.switcher.current(), Some(B));
        rig.switcher.source_ended(B);
        assert_eq!(rig.switcher.current(), Some(A));
        let out = rig.switcher.take_output();
        rig.record(&out);
        let roles: Vec<Role> = out.iter().map(Role::of).collect();
        assert_eq!(roles, [Role::VideoHeader, Role::AudioHeader, Role::Keyframe, Role::AudioFrame, Role::VideoFrame]);
        // B's cut leaves pictures 4 and 5 out: its last picture shown is P6, and A's
        // first must follow it.
        check_program(&rig, &Limits { video_gap: 3 * 40, audio_gap: u32::MAX });

        // An old source that never gets clean holds the new one for at most 64 tags.
        rig.switcher.select(C);
        rig.push(A, &avc_frame(false, 5_066, 100));
        let mut out = rig.push(C, &avc_key(0));
        let mut held = 1;
        while out.is_empty() {
            held += 1;
            out = rig.push(C, &aac(held));
        }
        assert_eq!(held, HOLD_MAX_TAGS as u32);
        assert_eq!(rig.switcher.current(), Some(C));
        check_program(&rig, &Limits { video_gap: 200, audio_gap: u32::MAX });
    }

    #[test]
    fn one_stray_timestamp_never_throws_the_program_forward() {
        // Finding 8, as fuzzing found it: an AAC frame, a video frame far ahead, an AAC
        // sequence header 2^31 - 1 ms ahead of that, an AAC frame.
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push(A, &aac(0));
        rig.push(A, &avc_inter(1_000_000));
        rig.push(A, &FlvTag { timestamp: 1_000_000 + i32::MAX as u32, ..aac_header(1) });
        rig.push(A, &aac(23));
        let latest = rig.program.iter().map(|o| o.tag.timestamp).max().unwrap();
        assert!(latest <= 2 * 23, "program thrown to {latest} ms");

        // Every kind of tag that is not a coded frame, far from the source's frames.
        let mut rig = Rig::new();
        rig.switcher.select(A);
        rig.push_all(A, &[avc_header(1), aac_header(1), avc_key(1_000), aac(1_010)]);
        let far = 1_000 + 1_000_000;
        let strays = [
            FlvTag { timestamp: far, ..metadata(9) },
            tag(TagKind::Script, far, b"\x02\x00\x0aonCuePoint"),
            FlvTag { timestamp: far, ..avc_header(9) },
            FlvTag { timestamp: far, ..aac_header(9) },
            tag(TagKind::Video, far, &[0x57, 0]),
            tag(TagKind::Video, far, &[0x9f, 1, 2]),
            tag(TagKind::Audio, far, &[0xaf]),
        ];
        for stray in &strays {
            for out in rig.push(A, stray) {
                assert!(out.timestamp <= 10, "{:?} stamped {}", Role::of(stray), out.timestamp);
            }
        }
        assert_eq!(stamps(&rig.push(A, &avc_inter(1_033))), [(TagKind::Video, 33)]);
        assert_eq!(stamps(&rig.push(A, &aac(1_033))), [(TagKind::Audio, 33)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn program_invariants_hold_for_random_sources_and_switches(
            bases in prop::collection::vec(any::<u32>(), 3),
            fps in prop::collection::vec(prop::sample::select(vec![24u32, 25, 30, 50, 60]), 3),
            rates in prop::collection::vec(prop::sample::select(vec![44_100u32, 48_000]), 3),
            gops in prop::collection::vec(5u64..90, 3),
            hevc in prop::collection::vec(any::<bool>(), 3),
            bframes in prop::collection::vec(0u64..4, 2),
            slate_loop in 800u64..5_000,
            jitter in 0u32..4,
            seed in any::<u64>(),
            // Target 3: the latest selected publisher disconnects, the slate takes over.
            switches in prop::collection::vec((100u64..3_000, 0usize..4), 1..10),
        ) {
            let sources = [A, B, Source::Slate];
            let specs: Vec<Spec> = (0..3)
                .map(|i| Spec {
                    source: sources[i],
                    base: bases[i],
                    fps: Some(fps[i]),
                    sample_rate: Some(rates[i]),
                    gop: gops[i],
                    codec: if hevc[i] { Codec::Hevc } else { Codec::Avc },
                    loop_ms: (i == 2).then_some(slate_loop),
                    jitter,
                    seed: seed.wrapping_add(i as u64),
                    // Publishers with B-frames (gops[i] pictures per closed GOP).
                    bframes: if i < 2 { bframes[i] } else { 0 },
                    delay: if i < 2 { bframes[i].min(2) } else { 0 },
                })
                .collect();
            let mut schedule = vec![(0, Action::Select(sources[switches[0].1 % 3]))];
            let mut selected = sources[switches[0].1 % 3];
            let mut ended = HashSet::new();
            let mut at = 0;
            for &(after, target) in &switches[1..] {
                at += after;
                if target == 3 && selected != Source::Slate {
                    schedule.push((at, Action::End(selected)));
                    ended.insert(selected);
                    selected = Source::Slate;
                } else if target < 3 && !ended.contains(&sources[target]) {
                    selected = sources[target];
                } else {
                    continue;
                }
                schedule.push((at, Action::Select(selected)));
            }
            let until = at + 4_000;
            let feeds: Vec<Feed> = specs.iter().map(|s| s.feed(until)).collect();
            let mut rig = Rig::new();
            run(&mut rig, &feeds, &schedule);

            let video_ms = fps.iter().map(|&f| frame_ms(f, 1)).max().unwrap_or(0) + jitter;
            let audio_ms = rates.iter().map(|&r| frame_ms(r, 1024)).max().unwrap_or(0) + jitter;
            // Audio may pause for an extra video frame when a source re-anchors right after
            // its splice (the slate looping), before its own frame duration is known.
            // A source that ends in the middle of a mini-GOP never sends the B-frames shown
            // before its last picture: the next source is decoded after that, up to four
            // frames later.
            check_program(&rig, &Limits { video_gap: 5 * video_ms, audio_gap: 2 * video_ms + 2 * audio_ms });
            // The last selection went on air at its next keyframe.
            prop_assert_eq!(rig.switcher.current(), Some(selected));
            prop_assert_eq!(rig.switcher.pending(), None);
        }

        #[test]
        fn no_tag_moves_the_program_further_than_its_sources_went(
            bases in prop::collection::vec(any::<u32>(), 2),
            steps in prop::collection::vec(
                (0usize..2, 0u8..14, -20i64..120, prop::bool::weighted(0.1), any::<u32>()),
                1..300,
            ),
        ) {
            // Finding 8: any tags, of two sources switched at random, some with stray
            // timestamps. The program may advance by what the sources' clock did (the
            // wall clock below), plus a jump, a presentation delay and a frame: a single
            // tag never throws it further.
            let config = SwitcherConfig::default();
            let slack = i64::from(config.max_timestamp_jump_ms + 2 * config.max_presentation_delay_ms + 100);
            let mut rig = Rig::new();
            let (mut wall, mut wall_max) = (0i64, 0i64);
            // The latest program frame, and the wall clock when it was emitted.
            let mut mark: Option<(i64, i64)> = None;
            for (s, what, step, stray, raw) in steps {
                let source = [A, B][s];
                wall = (wall + step).max(0);
                wall_max = wall_max.max(wall);
                let ts = if stray { raw } else { bases[s].wrapping_add(wall as u32) };
                let tag = match what {
                    0 | 1 => aac(ts),
                    2 => avc_frame(true, ts, (raw % 200) as i32),
                    3 | 4 => avc_frame(false, ts, (raw % 200) as i32),
                    5 => FlvTag { timestamp: ts, ..aac_header(raw as u8) },
                    6 => FlvTag { timestamp: ts, ..avc_header(raw as u8) },
                    7 => FlvTag { timestamp: ts, ..metadata(raw as u8) },
                    8 => tag(TagKind::Script, ts, b"\x02\x00\x0aonCuePoint"),
                    9 => tag(TagKind::Video, ts, &[0x57, 0]),
                    10 => tag(TagKind::Audio, ts, &[0xaf]),
                    11 => tag(TagKind::Video, ts, &[0x9f, 1, 2]),
                    12 => {
                        rig.switcher.select(source);
                        continue;
                    }
                    _ => {
                        rig.switcher.source_ended(source);
                        let out = rig.switcher.take_output();
                        rig.record(&out);
                        continue;
                    }
                };
                let from = rig.program.len();
                rig.push(source, &tag);
                for out in &rig.program[from..] {
                    let ts = i64::from(out.tag.timestamp);
                    let bound = mark.map_or(0, |(frame, at)| frame + wall_max - at) + slack;
                    prop_assert!(ts <= bound, "{:?} at {} ms, bound {} ms", out.from, ts, bound);
                    if out.from.role.frame_of().is_some() && mark.is_none_or(|(frame, _)| ts > frame) {
                        mark = Some((ts, wall_max));
                    }
                }
            }
        }
    }
}

/// The splice details that keep pictures in order and audio continuous.
#[cfg(test)]
mod splice_tests {
    use super::*;

    fn video(ts: u32, key: bool, cts_ms: u8) -> FlvTag {
        let first = if key { 0x17 } else { 0x27 };
        FlvTag::new(TagKind::Video, ts, vec![first, 1, 0, 0, cts_ms, 0xAA])
    }

    fn feed(switcher: &mut Switcher, source: Source, tags: &[FlvTag]) -> Vec<FlvTag> {
        tags.iter().flat_map(|t| switcher.push(source, t)).collect()
    }

    /// AAC-LC, 44.1 kHz, stereo (AudioSpecificConfig 0x12 0x10).
    fn aac_stereo_header() -> FlvTag {
        FlvTag::new(TagKind::Audio, 0, vec![0xAF, 0, 0x12, 0x10])
    }

    /// A source cut off in the middle of a reorder group (an encoder killed, a connection
    /// closed): the pictures of the unfinished group were held back and are dropped, so the
    /// program shows no hole, and the next source's first picture follows the last picture
    /// of the last complete group by one frame.
    #[test]
    fn new_source_is_presented_after_the_old_sources_last_complete_picture() {
        let (a, b) = (Source::Publisher(ConnId(1)), Source::Publisher(ConnId(2)));
        let mut switcher = Switcher::new(SwitcherConfig { presentation_delay_ms: 66, ..SwitcherConfig::default() });
        switcher.select(a);
        feed(&mut switcher, a, &[FlvTag::new(TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, 1])]);
        // Decode order I P B b (shown 66, 166, 100, 133): complete. Then the next P, shown
        // at 266, and A ends before its B frames (shown 200, 233) come.
        let complete = [video(0, true, 66), video(33, false, 133), video(66, false, 34), video(100, false, 33)];
        let out_a = feed(&mut switcher, a, &complete);
        assert_eq!(out_a.iter().filter(|t| t.payload[1] == 1).count(), 4, "a complete group goes out");
        assert!(feed(&mut switcher, a, &[video(133, false, 133)]).is_empty(), "the next P waits for its B frames");
        let last_shown = out_a.iter().map(|t| t.timestamp as i64 + i64::from(t.payload[4])).max().unwrap();
        assert_eq!(last_shown, 166);
        switcher.select(b);
        feed(&mut switcher, b, &[FlvTag::new(TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, 2])]);
        assert!(feed(&mut switcher, b, &[video(5000, true, 66)]).is_empty(), "no clean cut yet");
        switcher.source_ended(a);
        let out_b = switcher.take_output();
        assert!(out_b.iter().all(|t| t.payload.len() == 6 && (t.payload[1] == 0 || t.timestamp >= 100)));
        let key = out_b.last().unwrap();
        let shown = key.timestamp as i64 + 66;
        assert_eq!(shown, last_shown + 33, "B's first picture one frame after A's last");
        assert!(key.timestamp > out_a.last().unwrap().timestamp);
    }

    /// A source cut before its first reorder group completed: the program goes back to
    /// where it was at its splice (its keyframe was out already), never further, so the next
    /// source's frames still come after everything sent.
    #[test]
    fn a_cut_in_the_first_group_after_a_splice_never_sends_time_back() {
        let (a, b, c) = (Source::Publisher(ConnId(1)), Source::Publisher(ConnId(2)), Source::Publisher(ConnId(3)));
        let mut switcher = Switcher::new(SwitcherConfig { presentation_delay_ms: 66, ..SwitcherConfig::default() });
        switcher.select(a);
        let mut out: Vec<FlvTag> = Vec::new();
        out.extend(feed(&mut switcher, a, &[FlvTag::new(TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, 1])]));
        for i in 0..60 {
            out.extend(feed(&mut switcher, a, &[video(i * 33, i == 0, 66)]));
        }
        switcher.select(b);
        feed(&mut switcher, b, &[FlvTag::new(TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, 2])]);
        switcher.source_ended(a);
        out.extend(switcher.take_output());
        // B: its keyframe, then a P shown three frames later whose B frames never come.
        out.extend(feed(&mut switcher, b, &[video(9000, true, 66), video(9033, false, 165)]));
        switcher.select(c);
        feed(&mut switcher, c, &[FlvTag::new(TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, 3])]);
        switcher.source_ended(b);
        out.extend(switcher.take_output());
        out.extend(feed(&mut switcher, c, &[video(500, true, 66), video(533, false, 66)]));
        let pictures: Vec<u32> = out.iter().filter(|t| t.payload[1] == 1).map(|t| t.timestamp).collect();
        assert!(pictures.windows(2).all(|w| w[1] > w[0]), "{pictures:?}");
    }

    #[test]
    fn silence_bridges_the_audio_pause_at_a_splice() {
        let (a, b) = (Source::Publisher(ConnId(1)), Source::Publisher(ConnId(2)));
        let mut switcher = Switcher::new(SwitcherConfig::default());
        let header = FlvTag::new(TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, 1]);
        switcher.select(a);
        let mut out = feed(&mut switcher, a, &[header.clone(), aac_stereo_header()]);
        for i in 0..30u32 {
            out.extend(feed(&mut switcher, a, &[video(i * 33, i == 0, 100)]));
            out.extend(feed(&mut switcher, a, &[FlvTag::new(TagKind::Audio, i * 33, vec![0xAF, 1, 0x21, 0x42])]));
        }
        switcher.select(b);
        out.extend(feed(&mut switcher, b, &[header, aac_stereo_header(), video(7000, true, 0)]));
        // B's audio starts 150 ms after its keyframe.
        out.extend(feed(&mut switcher, b, &[FlvTag::new(TagKind::Audio, 7150, vec![0xAF, 1, 0x21, 0x43])]));
        let audio: Vec<&FlvTag> = out.iter().filter(|t| t.kind == TagKind::Audio && t.payload[1] == 1).collect();
        let silent = audio.iter().filter(|t| t.payload.len() == 8).count();
        assert!(silent >= 5, "{silent} silent frames");
        for pair in audio.windows(2) {
            let gap = pair[1].timestamp - pair[0].timestamp;
            assert!(gap <= 35, "audio gap of {gap} ms between {} and {}", pair[0].timestamp, pair[1].timestamp);
        }
    }
}
