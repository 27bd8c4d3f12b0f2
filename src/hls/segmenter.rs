//! Program tags in, fMP4 init segments, parts and segments out (pure: no I/O, no clock but
//! the wall time the caller passes for `EXT-X-PROGRAM-DATE-TIME`).
//!
//! A segment starts at a keyframe and ends at the first keyframe `segment_ms` or more after
//! its start (audio-only programs: at the first audio frame). With parts, the open segment
//! is also cut into fragments of about `part_ms`; a segment is then the concatenation of
//! its parts, as LL-HLS requires. Decode times are the program's own (milliseconds,
//! continuous across DJ changes), so `tfdt` never goes back while the program runs.
//!
//! A new DJ's sequence headers change the init segment only when the codec (or the NAL
//! length size, or the audio configuration) changes: sample entries are `avc3`/`hev1` and
//! every keyframe carries its parameter sets in-band, so new SPS/PPS — even a new
//! resolution — decode with the old init. Only a real change of codec or track set starts
//! a new init segment, and that segment is marked as a discontinuity.

use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use super::mp4::{self, AAC_FRAME, AUDIO_TIMESCALE, AudioTrack, Run, Sample, Tracks, VideoTrack};
use crate::media::codec::{
    AudioCodec, AudioPacket, AudioSpecificConfig, VideoCodec, VideoConfig, VideoPacket, parse_audio_tag,
    parse_video_tag,
};
use crate::media::flv::{FlvTag, TagKind};
use crate::media::parameter_sets::with_parameter_sets;

/// A segment that reached this length without a keyframe is closed and the next one waits
/// for a keyframe: bounds what is buffered for a source with very long GOPs.
pub const MAX_SEGMENT_MS: u64 = 20_000;
/// A timestamp this far behind the program's last one means the program restarted.
const BACKWARDS_MS: u64 = 1_000;
/// AudioSpecificConfigs longer than this are refused (the `esds` writer uses one-byte sizes).
const MAX_AUDIO_CONFIG: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    pub segment_ms: u64,
    /// Part length to aim at (LL-HLS); `None`: one fragment per segment.
    pub part_ms: Option<u64>,
}

/// What the segmenter produced, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A new init segment; the segments that follow use it.
    Init {
        id: u64,
        bytes: Bytes,
    },
    SegmentStarted {
        msn: u64,
        init: u64,
        discontinuity: bool,
        wall: SystemTime,
        start_ms: u64,
    },
    /// Only with parts configured.
    Part {
        msn: u64,
        index: u32,
        duration_ms: u64,
        independent: bool,
        bytes: Bytes,
    },
    SegmentEnded {
        msn: u64,
        duration_ms: u64,
        bytes: Bytes,
    },
}

pub struct Segmenter {
    config: SegmenterConfig,
    /// The latest video sequence header: its parameter sets go in-band into keyframes.
    video_header: Option<FlvTag>,
    /// The tracks the latest sequence headers describe.
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    /// The init segment in use and the tracks it was made for.
    init: Option<(u64, Tracks)>,
    open: Option<Open>,
    next_msn: u64,
    next_fragment: u32,
    clock: Clock,
    /// Latest decode time taken in.
    last_ms: Option<u64>,
    /// The next segment follows a gap in the program (restart, lost subscription).
    gap: bool,
    outputs: Vec<Output>,
}

struct Open {
    msn: u64,
    start_ms: u64,
    part_start_ms: u64,
    part_index: u32,
    video: Vec<Pending>,
    audio: Vec<Pending>,
    /// Fragments made so far; the segment is their concatenation.
    fragments: Vec<Bytes>,
}

struct Pending {
    dts: u64,
    cts: i32,
    key: bool,
    data: Bytes,
}

impl Segmenter {
    pub fn new(config: SegmenterConfig) -> Self {
        Self {
            config,
            video_header: None,
            video: None,
            audio: None,
            init: None,
            open: None,
            next_msn: 0,
            next_fragment: 1,
            clock: Clock::default(),
            last_ms: None,
            gap: false,
            outputs: Vec::new(),
        }
    }

    /// What was produced since the last call.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    /// Takes in a program tag received at `wall`.
    pub fn push(&mut self, tag: FlvTag, wall: SystemTime) {
        match tag.kind {
            TagKind::Video => self.push_video(tag, wall),
            TagKind::Audio => self.push_audio(tag, wall),
            TagKind::Script => {}
        }
    }

    /// The program was interrupted (the subscription ended): the open segment ends at the
    /// last frame, and the next one is a discontinuity.
    pub fn interrupt(&mut self) {
        if let Some(last) = self.last_ms {
            self.close_segment(last + 1);
        }
        self.gap = true;
        self.last_ms = None;
        self.clock = Clock::default();
    }

    fn push_video(&mut self, tag: FlvTag, wall: SystemTime) {
        let Ok(parsed) = parse_video_tag(&tag.payload) else { return };
        let info = parsed.info;
        let hevc = match info.codec {
            VideoCodec::Avc => false,
            VideoCodec::Hevc => true,
            _ => return,
        };
        match info.packet {
            VideoPacket::SequenceHeader => {
                let size = VideoConfig::parse(info.codec, parsed.body).ok();
                let dimension = |v: Option<u32>| v.and_then(|v| u16::try_from(v).ok()).unwrap_or(0);
                self.video = Some(VideoTrack {
                    hevc,
                    record: tag.payload.slice_ref(parsed.body),
                    width: dimension(size.and_then(|s| s.width)),
                    height: dimension(size.and_then(|s| s.height)),
                });
                self.video_header = Some(tag);
            }
            VideoPacket::Coded => {
                if self.video.as_ref().is_none_or(|v| v.hevc != hevc) {
                    return;
                }
                let key = info.is_keyframe();
                let tag = match (&self.video_header, key) {
                    (Some(header), true) => with_parameter_sets(&tag, header).unwrap_or(tag),
                    _ => tag,
                };
                let Ok(parsed) = parse_video_tag(&tag.payload) else { return };
                let data = tag.payload.slice_ref(parsed.body);
                let dts = self.clock.extend(tag.timestamp);
                let sample = Pending { dts, cts: parsed.info.composition_time, key, data };
                self.take(true, sample, wall);
            }
            _ => {}
        }
    }

    fn push_audio(&mut self, tag: FlvTag, wall: SystemTime) {
        let Ok(parsed) = parse_audio_tag(&tag.payload) else { return };
        if parsed.info.codec != AudioCodec::Aac {
            return;
        }
        match parsed.info.packet {
            AudioPacket::SequenceHeader => {
                let Ok(config) = AudioSpecificConfig::parse(parsed.body) else { return };
                if parsed.body.len() > MAX_AUDIO_CONFIG || config.sample_rate == 0 {
                    return;
                }
                self.audio = Some(AudioTrack {
                    config: tag.payload.slice_ref(parsed.body),
                    object_type: config.object_type,
                    sample_rate: config.sample_rate,
                    channels: config.channels.unwrap_or(2),
                });
            }
            AudioPacket::Raw => {
                if self.audio.is_none() {
                    return;
                }
                let dts = self.clock.extend(tag.timestamp);
                let sample = Pending { dts, cts: 0, key: true, data: tag.payload.slice_ref(parsed.body) };
                self.take(false, sample, wall);
            }
            _ => {}
        }
    }

    /// Places a sample, cutting parts and segments before it where due.
    fn take(&mut self, is_video: bool, sample: Pending, wall: SystemTime) {
        if let Some(last) = self.last_ms
            && sample.dts + BACKWARDS_MS < last
        {
            self.interrupt();
        }
        self.last_ms = Some(self.last_ms.map_or(sample.dts, |last| last.max(sample.dts)));
        // Video drives the cuts; audio only when the program has no video.
        let drives = is_video || self.video.is_none();
        if !drives {
            match &mut self.open {
                // Pictures stopped: end the segment here and wait for a keyframe.
                Some(open) if sample.dts >= open.start_ms + MAX_SEGMENT_MS => self.close_segment(sample.dts),
                Some(open) => open.audio.push(sample),
                None => {}
            }
            return;
        }
        let tracks = Tracks { video: self.video.clone(), audio: self.audio.clone() };
        let new_codec = self.init.as_ref().is_none_or(|(_, current)| !same_codecs(current, &tracks));
        match &self.open {
            None => {}
            Some(open) if sample.key && (new_codec || sample.dts >= open.start_ms + self.config.segment_ms) => {
                self.close_segment(sample.dts);
            }
            Some(open) if sample.dts >= open.start_ms + MAX_SEGMENT_MS => self.close_segment(sample.dts),
            Some(open) => {
                if let Some(part_ms) = self.config.part_ms
                    && sample.dts >= open.part_start_ms + part_ms
                {
                    self.close_part(sample.dts);
                }
            }
        }
        if self.open.is_none() {
            if !sample.key {
                return;
            }
            self.start_segment(sample.dts, tracks, new_codec, wall);
        }
        if let Some(open) = &mut self.open {
            if is_video { open.video.push(sample) } else { open.audio.push(sample) }
        }
    }

    fn start_segment(&mut self, start_ms: u64, tracks: Tracks, new_codec: bool, wall: SystemTime) {
        let mut discontinuity = std::mem::take(&mut self.gap);
        let init = match &self.init {
            Some((id, _)) if !new_codec => *id,
            previous => {
                discontinuity |= previous.is_some();
                let id = previous.as_ref().map_or(0, |(id, _)| id + 1);
                self.outputs.push(Output::Init { id, bytes: mp4::init_segment(&tracks) });
                self.init = Some((id, tracks));
                id
            }
        };
        let msn = self.next_msn;
        self.next_msn += 1;
        self.outputs.push(Output::SegmentStarted { msn, init, discontinuity, wall, start_ms });
        self.open = Some(Open {
            msn,
            start_ms,
            part_start_ms: start_ms,
            part_index: 0,
            video: Vec::new(),
            audio: Vec::new(),
            fragments: Vec::new(),
        });
    }

    /// Ends the open part at `end_ms` (the decode time of the sample after it).
    fn close_part(&mut self, end_ms: u64) {
        let Some(open) = &mut self.open else { return };
        let video = std::mem::take(&mut open.video);
        let split = open.audio.iter().position(|s| s.dts >= end_ms).unwrap_or(open.audio.len());
        let rest = open.audio.split_off(split);
        let audio = std::mem::replace(&mut open.audio, rest);
        if video.is_empty() && audio.is_empty() {
            return;
        }
        let independent = video.first().is_none_or(|s| s.key);
        let track = self.init.as_ref().and_then(|(_, t)| t.audio.as_ref());
        let frame = track.map_or((AAC_FRAME, 48_000), |a| (a.frame_samples(), a.sample_rate));
        let bytes = mp4::fragment(self.next_fragment, &video_run(&video, end_ms), &audio_run(&audio, frame));
        self.next_fragment = self.next_fragment.wrapping_add(1);
        open.fragments.push(bytes.clone());
        if self.config.part_ms.is_some() {
            self.outputs.push(Output::Part {
                msn: open.msn,
                index: open.part_index,
                duration_ms: end_ms.saturating_sub(open.part_start_ms),
                independent,
                bytes,
            });
        }
        open.part_index += 1;
        open.part_start_ms = end_ms;
    }

    fn close_segment(&mut self, end_ms: u64) {
        self.close_part(end_ms);
        let Some(open) = self.open.take() else { return };
        let bytes = match open.fragments.as_slice() {
            [one] => one.clone(),
            many => {
                let mut joined = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
                many.iter().for_each(|f| joined.extend_from_slice(f));
                joined.freeze()
            }
        };
        if bytes.is_empty() {
            return;
        }
        self.outputs.push(Output::SegmentEnded {
            msn: open.msn,
            duration_ms: end_ms.saturating_sub(open.start_ms),
            bytes,
        });
    }
}

/// Whether `b` decodes with an init segment made for `a`: same codecs, same NAL length
/// size, same audio configuration. Parameter sets and picture size may differ (in-band).
fn same_codecs(a: &Tracks, b: &Tracks) -> bool {
    let video = match (&a.video, &b.video) {
        (Some(a), Some(b)) => a.hevc == b.hevc && nal_length_size(a) == nal_length_size(b),
        (None, None) => true,
        _ => false,
    };
    let audio = match (&a.audio, &b.audio) {
        (Some(a), Some(b)) => a.same_audio(b),
        (None, None) => true,
        _ => false,
    };
    video && audio
}

fn nal_length_size(video: &VideoTrack) -> Option<u8> {
    let at = if video.hevc { 21 } else { 4 };
    video.record.get(at).map(|b| b & 0x03)
}

fn video_run(samples: &[Pending], end_ms: u64) -> Run {
    let next = samples.iter().skip(1).map(|s| s.dts).chain([end_ms]);
    Run {
        decode_time: samples.first().map_or(0, |s| s.dts),
        samples: samples
            .iter()
            .zip(next)
            .map(|(s, next)| Sample {
                duration: u32::try_from(next.saturating_sub(s.dts)).unwrap_or(u32::MAX),
                composition_offset: s.cts,
                sync: s.key,
                data: s.data.clone(),
            })
            .collect(),
    }
}

/// Audio frames are one frame (`frame_samples` at `rate`) apart, unless the program has a
/// real gap between two of them (millisecond timestamps would make durations jitter).
fn audio_run(samples: &[Pending], (frame_samples, rate): (u32, u32)) -> Run {
    let rate = u64::from(rate.max(1));
    let ticks_per_ms = u64::from(AUDIO_TIMESCALE) / 1000;
    let frame = u32::try_from(u64::from(frame_samples) * u64::from(AUDIO_TIMESCALE) / rate).unwrap_or(u32::MAX);
    let frame_ms = u64::from(frame_samples) * 1000 / rate;
    let durations = samples.windows(2).map(|w| {
        let gap = w[1].dts.saturating_sub(w[0].dts);
        if gap > frame_ms + 2 { u32::try_from(gap * ticks_per_ms).unwrap_or(u32::MAX) } else { frame }
    });
    Run {
        decode_time: samples.first().map_or(0, |s| s.dts * ticks_per_ms),
        samples: samples
            .iter()
            .zip(durations.chain([frame]))
            .map(|(s, duration)| Sample { duration, composition_offset: 0, sync: true, data: s.data.clone() })
            .collect(),
    }
}

/// Extends the program's 32-bit millisecond timestamps (they wrap after 49 days).
#[derive(Default)]
struct Clock {
    last: Option<u32>,
    epoch: u64,
}

impl Clock {
    fn extend(&mut self, timestamp: u32) -> u64 {
        if let Some(last) = self.last
            && timestamp < last
            && last - timestamp > 1 << 31
        {
            self.epoch += 1 << 32;
        }
        self.last = Some(timestamp);
        self.epoch + u64::from(timestamp)
    }
}

#[cfg(test)]
mod tests {
    use super::super::mp4::tests::{be32, find, parse};
    use super::*;

    const AVC_RECORD: [u8; 19] =
        [1, 0x42, 0, 0x1E, 0xFF, 0xE1, 0, 4, 0x67, 0x42, 0, 0x1E, 1, 0, 4, 0x68, 0xCE, 0x3C, 0x80];

    fn video_header() -> FlvTag {
        let mut payload = vec![0x17, 0, 0, 0, 0];
        payload.extend_from_slice(&AVC_RECORD);
        FlvTag::new(TagKind::Video, 0, payload)
    }

    fn audio_header() -> FlvTag {
        FlvTag::new(TagKind::Audio, 0, vec![0xAF, 0, 0x12, 0x10])
    }

    fn frame(ts: u32, key: bool) -> FlvTag {
        let nal_type = if key { 0x65 } else { 0x41 };
        FlvTag::new(TagKind::Video, ts, vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0, 0, 0, 2, nal_type, 0xAA])
    }

    fn aac(ts: u32) -> FlvTag {
        FlvTag::new(TagKind::Audio, ts, vec![0xAF, 1, 0x21, 0x10])
    }

    /// 25 fps video with a keyframe every `gop` frames, AAC at 44.1 kHz, for `ms`.
    fn program(ms: u32, gop: u32) -> Vec<FlvTag> {
        let mut tags = vec![video_header(), audio_header()];
        let (mut v, mut a) = (0u32, 0f64);
        while v < ms {
            while (a as u32) <= v {
                tags.push(aac(a as u32));
                a += 1024.0 * 1000.0 / 44_100.0;
            }
            tags.push(frame(v, (v / 40) % gop == 0));
            v += 40;
        }
        tags
    }

    fn run(config: SegmenterConfig, tags: Vec<FlvTag>) -> Vec<Output> {
        let mut segmenter = Segmenter::new(config);
        tags.into_iter().for_each(|t| segmenter.push(t, SystemTime::UNIX_EPOCH));
        segmenter.take_outputs()
    }

    fn tfdts(bytes: &[u8]) -> Vec<(u32, u64)> {
        let boxes = parse(bytes);
        find(&boxes, &[b"moof", b"traf"])
            .iter()
            .map(|traf| {
                let track = be32(&find(&traf.children, &[b"tfhd"])[0].body, 4);
                let tfdt = &find(&traf.children, &[b"tfdt"])[0].body;
                (track, u64::from(be32(tfdt, 4)) << 32 | u64::from(be32(tfdt, 8)))
            })
            .collect()
    }

    /// Sum of the trun sample durations of `track` in a fragment.
    fn run_duration(bytes: &[u8], track: u32) -> u64 {
        let boxes = parse(bytes);
        find(&boxes, &[b"moof", b"traf"])
            .iter()
            .filter(|traf| be32(&find(&traf.children, &[b"tfhd"])[0].body, 4) == track)
            .map(|traf| {
                let trun = &find(&traf.children, &[b"trun"])[0].body;
                let count = be32(trun, 4) as usize;
                let stride = if track == mp4::VIDEO_TRACK { 16 } else { 8 };
                (0..count).map(|i| u64::from(be32(trun, 12 + i * stride))).sum::<u64>()
            })
            .sum()
    }

    const PLAIN: SegmenterConfig = SegmenterConfig { segment_ms: 2000, part_ms: None };

    #[test]
    fn segments_start_at_the_first_keyframe_after_the_target() {
        // Keyframes every 1.2 s: cuts at 2.4 s, 4.8 s, 7.2 s.
        let outputs = run(PLAIN, program(10_000, 30));
        let starts: Vec<u64> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::SegmentStarted { start_ms, .. } => Some(*start_ms),
                _ => None,
            })
            .collect();
        assert_eq!(starts, [0, 2400, 4800, 7200, 9600]);
        let durations: Vec<u64> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::SegmentEnded { duration_ms, .. } => Some(*duration_ms),
                _ => None,
            })
            .collect();
        assert_eq!(durations, [2400, 2400, 2400, 2400]);
    }

    #[test]
    fn decode_times_are_continuous_across_segments() {
        let outputs = run(PLAIN, program(10_000, 25));
        let segments: Vec<&Bytes> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::SegmentEnded { bytes, .. } => Some(bytes),
                _ => None,
            })
            .collect();
        assert!(segments.len() >= 4);
        for pair in segments.windows(2) {
            let (before, after) = (tfdts(pair[0]), tfdts(pair[1]));
            let video_end = before[0].1 + run_duration(pair[0], mp4::VIDEO_TRACK);
            assert_eq!(video_end, after[0].1, "video tfdt continues where the last segment ended");
            let audio_end = before[1].1 + run_duration(pair[0], mp4::AUDIO_TRACK);
            let drift = audio_end.abs_diff(after[1].1);
            let ms = u64::from(AUDIO_TIMESCALE) / 1000;
            assert!(drift <= ms, "audio tfdt within a millisecond of the previous end: {drift} ticks");
        }
        // The first sample of every segment is a sync sample.
        for segment in segments {
            let boxes = parse(segment);
            let trun = &find(&boxes, &[b"moof", b"traf", b"trun"])[0].body;
            assert_eq!(be32(trun, 20), 0x0200_0000);
        }
    }

    #[test]
    fn parts_are_short_and_make_up_their_segment() {
        let config = SegmenterConfig { segment_ms: 2000, part_ms: Some(400) };
        let outputs = run(config, program(6_000, 50));
        let mut parts: Vec<(u64, u64, bool, Bytes)> = Vec::new();
        for output in &outputs {
            match output {
                Output::Part { msn, duration_ms, independent, bytes, .. } => {
                    assert!(*duration_ms <= 500, "part of {duration_ms} ms");
                    parts.push((*msn, *duration_ms, *independent, bytes.clone()));
                }
                Output::SegmentEnded { msn, duration_ms, bytes } => {
                    let mine: Vec<_> = parts.iter().filter(|p| p.0 == *msn).collect();
                    assert!(mine[0].2, "a segment's first part is independent");
                    assert!(mine[1..].iter().all(|p| !p.2));
                    assert_eq!(mine.iter().map(|p| p.1).sum::<u64>(), *duration_ms);
                    let joined: Vec<u8> = mine.iter().flat_map(|p| p.3.iter().copied()).collect();
                    assert_eq!(&joined[..], &bytes[..], "a segment is the concatenation of its parts");
                }
                _ => {}
            }
        }
        assert!(parts.len() >= 10);
    }

    #[test]
    fn new_parameter_sets_keep_the_init_a_new_codec_changes_it() {
        let mut segmenter = Segmenter::new(PLAIN);
        let wall = SystemTime::UNIX_EPOCH;
        program(4_000, 25).into_iter().for_each(|t| segmenter.push(t, wall));
        // A new DJ: other SPS bytes (another level), same codec.
        let mut record = AVC_RECORD;
        record[3] = 0x28;
        let mut payload = vec![0x17, 0, 0, 0, 0];
        payload.extend_from_slice(&record);
        segmenter.push(FlvTag::new(TagKind::Video, 4_000, payload), wall);
        for ts in (4_000..6_000).step_by(40) {
            segmenter.push(frame(ts, ts % 1000 == 0), wall);
        }
        // Then a DJ with 48 kHz audio: another audio configuration.
        segmenter.push(FlvTag::new(TagKind::Audio, 6_000, vec![0xAF, 0, 0x11, 0x90]), wall);
        for ts in (6_000..8_000).step_by(40) {
            segmenter.push(aac(ts), wall);
            segmenter.push(frame(ts, ts % 1000 == 0), wall);
        }
        let outputs = segmenter.take_outputs();
        let inits = outputs.iter().filter(|o| matches!(o, Output::Init { .. })).count();
        assert_eq!(inits, 2);
        let starts: Vec<(u64, bool, u64)> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::SegmentStarted { init, discontinuity, start_ms, .. } => {
                    Some((*init, *discontinuity, *start_ms))
                }
                _ => None,
            })
            .collect();
        assert_eq!(starts, [(0, false, 0), (0, false, 2000), (0, false, 4000), (1, true, 6000)]);
    }

    /// Players that keep the first init segment (ffmpeg ignores a second `moov`) must still
    /// read the right times after a DJ with another audio sample rate.
    #[test]
    fn audio_times_keep_one_timescale_across_sample_rates() {
        let mut segmenter = Segmenter::new(PLAIN);
        let wall = SystemTime::UNIX_EPOCH;
        program(4_000, 25).into_iter().for_each(|t| segmenter.push(t, wall));
        segmenter.push(FlvTag::new(TagKind::Audio, 4_000, vec![0xAF, 0, 0x11, 0x90]), wall);
        for ts in (4_000..8_000).step_by(40) {
            segmenter.push(aac(ts), wall);
            segmenter.push(frame(ts, ts % 1000 == 0), wall);
        }
        let outputs = segmenter.take_outputs();
        let timescales: Vec<u32> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::Init { bytes, .. } => {
                    let boxes = parse(bytes);
                    Some(be32(&find(&boxes, &[b"moov", b"trak", b"mdia", b"mdhd"])[1].body, 12))
                }
                _ => None,
            })
            .collect();
        assert_eq!(timescales.len(), 2);
        assert_eq!(timescales[0], timescales[1], "the audio timescale does not follow the sample rate");
        let audio_starts: Vec<f64> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::SegmentEnded { bytes, .. } => Some(tfdts(bytes)[1].1 as f64 / f64::from(timescales[0])),
                _ => None,
            })
            .collect();
        for pair in audio_starts.windows(2) {
            assert!((pair[1] - pair[0] - 2.0).abs() < 0.05, "audio segment starts {audio_starts:?}");
        }
    }

    /// ffmpeg's AAC encoder adds an SBR sync extension saying "no SBR" where the slate's
    /// encoder writes two bytes: the same audio, which must not change the init segment.
    #[test]
    fn an_equivalent_audio_config_keeps_the_init() {
        let mut segmenter = Segmenter::new(PLAIN);
        let wall = SystemTime::UNIX_EPOCH;
        program(4_000, 25).into_iter().for_each(|t| segmenter.push(t, wall));
        segmenter.push(FlvTag::new(TagKind::Audio, 4_000, vec![0xAF, 0, 0x12, 0x10, 0x56, 0xE5, 0x00]), wall);
        for ts in (4_000..8_000).step_by(40) {
            segmenter.push(aac(ts), wall);
            segmenter.push(frame(ts, ts % 1000 == 0), wall);
        }
        let outputs = segmenter.take_outputs();
        assert_eq!(outputs.iter().filter(|o| matches!(o, Output::Init { .. })).count(), 1);
        assert!(!outputs.iter().any(|o| matches!(o, Output::SegmentStarted { discontinuity: true, .. })));
    }

    #[test]
    fn keyframes_carry_the_parameter_sets_in_band() {
        let outputs = run(PLAIN, program(4_000, 25));
        let Some(Output::SegmentEnded { bytes, .. }) =
            outputs.iter().find(|o| matches!(o, Output::SegmentEnded { .. }))
        else {
            panic!("no segment");
        };
        let boxes = parse(bytes);
        let trun = &find(&boxes, &[b"moof", b"traf", b"trun"])[0].body;
        let offset = be32(trun, 8) as usize;
        // SPS, then PPS, then the slice, each with a 4-byte length.
        assert_eq!(&bytes[offset..offset + 5], &[0, 0, 0, 4, 0x67]);
        assert_eq!(&bytes[offset + 8..offset + 13], &[0, 0, 0, 4, 0x68]);
    }

    #[test]
    fn hevc_is_hev1_with_its_parameter_sets_in_band() {
        let mut record =
            vec![1, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xF0, 0, 0xFC, 0xFD, 0xF8, 0xF8, 0, 0, 0x0F, 3];
        for (nal_type, nal) in [(32u8, [0x40u8, 0x01]), (33, [0x42, 0x01]), (34, [0x44, 0x01])] {
            record.extend_from_slice(&[nal_type, 0, 1, 0, 2]);
            record.extend_from_slice(&nal);
        }
        let mut header = b"\x90hvc1".to_vec();
        header.extend_from_slice(&record);
        let key =
            |ts: u32| FlvTag::new(TagKind::Video, ts, b"\x91hvc1\x00\x00\x00\x00\x00\x00\x03\x26\x01\xAF".to_vec());
        let mut tags = vec![FlvTag::new(TagKind::Video, 0, header)];
        tags.extend((0..3_000).step_by(500).map(key));
        let outputs = run(PLAIN, tags);
        let Some(Output::Init { bytes: init, .. }) = outputs.first() else { panic!("no init first: {outputs:?}") };
        let stsd = &find(&parse(init), &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"])[0].body.clone();
        assert_eq!(&stsd[12..16], b"hev1");
        let Some(Output::SegmentEnded { bytes, .. }) =
            outputs.iter().find(|o| matches!(o, Output::SegmentEnded { .. }))
        else {
            panic!("no segment");
        };
        let trun = &find(&parse(bytes), &[b"moof", b"traf", b"trun"])[0].body.clone();
        let offset = be32(trun, 8) as usize;
        assert_eq!(&bytes[offset..offset + 6], &[0, 0, 0, 2, 0x40, 0x01], "the VPS leads the keyframe");
    }

    #[test]
    fn a_restart_of_the_program_is_a_discontinuity() {
        let mut tags = program(4_000, 25);
        tags.extend(program(4_000, 25));
        let outputs = run(PLAIN, tags);
        let discontinuities: Vec<bool> = outputs
            .iter()
            .filter_map(|o| match o {
                Output::SegmentStarted { discontinuity, .. } => Some(*discontinuity),
                _ => None,
            })
            .collect();
        assert_eq!(discontinuities, [false, false, true, false]);
    }

    #[test]
    fn the_wait_for_a_keyframe_is_bounded() {
        let mut tags = program(1_000, 25);
        tags.extend((1_000..30_000).step_by(40).map(|ts| frame(ts, false)));
        let outputs = run(PLAIN, tags);
        assert!(outputs.iter().any(|o| matches!(o, Output::SegmentEnded { duration_ms: MAX_SEGMENT_MS, .. })));
    }

    #[test]
    fn audio_without_pictures_is_bounded_too() {
        let mut tags = program(1_000, 25);
        tags.extend((1_000..30_000).step_by(23).map(aac));
        let mut segmenter = Segmenter::new(PLAIN);
        tags.into_iter().for_each(|t| segmenter.push(t, SystemTime::UNIX_EPOCH));
        let open = segmenter.open.as_ref().map_or(0, |o| o.audio.len());
        assert!(open * 23 <= MAX_SEGMENT_MS as usize, "{open} audio frames held");
    }

    #[test]
    fn timestamps_wrapping_around_stay_increasing() {
        let mut clock = Clock::default();
        assert_eq!(clock.extend(u32::MAX - 10), u64::from(u32::MAX - 10));
        assert_eq!(clock.extend(5), (1 << 32) + 5);
        assert_eq!(clock.extend(3), (1 << 32) + 3);
    }
}
