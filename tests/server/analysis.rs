//! Measures what a consumer received against the SPEC's switching bars (section 8): where
//! the source changed, how far apart the pictures on either side of each change are *as
//! presented* (pts = dts + composition time), whether decoding timestamps went back, and
//! how audio lines up with video at each splice. Pure: it only reads tags, so it serves
//! the tests, the soak run and any recording a platform made.

use motherstream::media::codec::{
    AudioConfig, VideoConfig, VideoPacket, VideoTagInfo, parse_audio_tag, parse_video_tag,
};
use motherstream::media::flv::{FlvTag, TagKind};

/// How many pictures either side of a splice are sorted by presentation time to find the
/// largest gap "around" it: more than any encoder's reordering depth.
const WINDOW: usize = 16;
/// How far (ms of presentation time) either side of a splice its picture gap is measured.
const AROUND_SPLICE_MS: i64 = 500;
/// Audio frames that may come between a new video header and the same transition's audio
/// header (the old source's tail, re-interleaved by a muxer).
const AUDIO_HEADER_SLACK: usize = 12;

/// A header change this few pictures and milliseconds after the previous one is the same
/// source still announcing itself (see `analyse`). The time bound matters for sources
/// without video, which show no pictures at all.
const SAME_SOURCE_PICTURES: usize = 5;
const SAME_SOURCE_MS: i64 = 500;

/// Slack on "one frame interval": timestamps are whole milliseconds, so a 30 fps stream
/// steps 33 or 34 ms, and two sources' roundings add up.
pub const ROUNDING_MS: i64 = 3;

/// The picture size of a video sequence header (None for anything else).
pub fn video_size(tag: &FlvTag) -> Option<(u32, u32)> {
    if tag.kind != TagKind::Video {
        return None;
    }
    let parsed = parse_video_tag(&tag.payload).ok()?;
    if !parsed.info.is_sequence_header() {
        return None;
    }
    let config = VideoConfig::parse(parsed.info.codec, parsed.body).ok()?;
    Some((config.width?, config.height?))
}

/// One source as the consumer saw it, described by its decoder configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// `"h264 320x180"`, `"hevc 640x360"`; None while no video header was seen for it.
    pub video: Option<String>,
    /// `"aac 44100"`; None while no audio header was seen for it.
    pub audio: Option<String>,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} + {}", self.video.as_deref().unwrap_or("no video"), self.audio.as_deref().unwrap_or("no audio"))
    }
}

/// A change of source inside one consumer's stream, with its numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    /// Index of the first tag of the new source (its first changed sequence header).
    pub tag: usize,
    /// Where in the stream's timeline the change happened: the new source's first media
    /// timestamp (headers carry whatever their sender gave them).
    pub at_ms: i64,
    pub from: Source,
    pub to: Source,
    /// First presented picture of the new source minus the last presented picture of the
    /// old one, in ms: one frame interval when seamless, <= 0 when they overlap.
    pub splice_ms: Option<i64>,
    /// The largest step between consecutive pictures, sorted by presentation time, over
    /// the pictures around the splice.
    pub picture_gap_ms: Option<i64>,
    /// The new source's frame interval (median decoding step of its first pictures).
    pub frame_ms: Option<i64>,
    /// Decoding timestamps of video rose strictly across the splice.
    pub dts_monotonic: bool,
    /// The new source's first picture is a keyframe (decodable from there).
    pub starts_with_keyframe: bool,
    /// First audio of the new source minus the end of the old source's last audio frame:
    /// 0 when continuous, > 0 a hole, < 0 an overlap.
    pub audio_gap_ms: Option<i64>,
    /// First audio minus first presented picture of the new source. A source has its own
    /// offset here (an encoder with B-frames shows its first picture a few frames after
    /// its first audio), so the bar compares with that: see [`Transition::violations`].
    pub av_offset_ms: Option<i64>,
}

impl Transition {
    /// What this splice misses of the SPEC's bars (empty when it meets them all). One
    /// `frame_ms` of the new source is the allowance; `own_av_ms` is the new source's own
    /// A/V offset as its encoder sent it (first audio minus first presented picture).
    pub fn violations(&self, own_av_ms: Option<i64>) -> Vec<String> {
        let mut missed = Vec::new();
        let frame = self.frame_ms.unwrap_or(40);
        let one_frame = frame + ROUNDING_MS;
        if let Some(gap) = self.picture_gap_ms
            && gap > one_frame
        {
            missed.push(format!("pictures {gap} ms apart (one frame: {frame} ms)"));
        }
        if let Some(splice) = self.splice_ms
            && splice <= 0
        {
            missed.push(format!("new source's first picture presented {splice} ms after the old source's last"));
        }
        if !self.dts_monotonic {
            missed.push("decoding timestamps went back".into());
        }
        if !self.starts_with_keyframe && self.to.video.is_some() {
            missed.push("new source does not start with a keyframe".into());
        }
        if let Some(gap) = self.audio_gap_ms
            && gap.abs() > one_frame
        {
            missed.push(format!("audio {} of {} ms", if gap > 0 { "hole" } else { "overlap" }, gap.abs()));
        }
        // A source with no pictures of its own (audio only: the program shows the slate's
        // picture under it) has no A/V sync to keep.
        // Within one frame of the picture, and of the source's own offset. The audio an
        // encoder sends ahead of its first picture (AAC priming, B-frame delay) overlaps the
        // old source's sound at a splice and is dropped, so the new audio may start up to a
        // frame after the picture rather than before it: the frames that remain keep their
        // timing, only the lead-in is shorter.
        if let (Some(offset), Some(own_av_ms)) = (self.av_offset_ms, own_av_ms)
            && (offset < own_av_ms.min(0) - one_frame || offset > own_av_ms.max(0) + one_frame)
        {
            missed.push(format!("audio {} ms off video (source's own offset {own_av_ms} ms)", offset - own_av_ms));
        }
        missed
    }
}

/// Everything measured over one consumer's stream (one connection).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub sources: Vec<Source>,
    pub transitions: Vec<Transition>,
    /// Video tags whose decoding timestamp is lower than the previous one's.
    pub backward_dts: usize,
    /// Audio frames whose timestamp is not above the previous one's (a muxer refuses them).
    pub backward_audio: usize,
    /// The largest step between consecutive pictures in presentation order, whole stream.
    pub largest_picture_gap_ms: i64,
    /// The largest hole between the end of one audio frame and the next, whole stream.
    pub largest_audio_gap_ms: i64,
    pub pictures: usize,
    pub audio_frames: usize,
    /// The stream begins decodable: sequence headers, then a keyframe as its first picture.
    pub starts_decodable: bool,
}

impl Report {
    /// Every bar missed, one line each, prefixed by where, for sources whose own A/V
    /// offset is 0.
    pub fn violations(&self) -> Vec<String> {
        self.violations_given(&|_| Some(0))
    }

    /// Every bar missed, given each source's own A/V offset (see `own_av_offset`).
    pub fn violations_given(&self, own_av_ms: &dyn Fn(&Source) -> Option<i64>) -> Vec<String> {
        let mut missed = Vec::new();
        if !self.starts_decodable {
            missed.push("stream does not start with headers and a keyframe".into());
        }
        if self.backward_dts > 0 {
            missed.push(format!("{} backward video timestamps", self.backward_dts));
        }
        if self.backward_audio > 0 {
            missed.push(format!("{} audio frames not after the previous one", self.backward_audio));
        }
        for (n, t) in self.transitions.iter().enumerate() {
            for v in t.violations(own_av_ms(&t.to)) {
                missed.push(format!("transition {n} ({} -> {}): {v}", t.from, t.to));
            }
        }
        missed
    }
}

/// A coded picture: decoding and presentation time, and where it was.
#[derive(Debug, Clone, Copy)]
struct Picture {
    tag: usize,
    dts: i64,
    pts: i64,
    key: bool,
}

/// An audio frame: start and length in ms.
#[derive(Debug, Clone, Copy)]
struct AudioFrame {
    tag: usize,
    ts: i64,
    duration: f64,
    /// An AAC frame of digital silence (a few bytes): what a switcher bridges an audio
    /// pause with, and what encoders send for silence. It tells nothing of where the
    /// source's content is, so A/V offsets skip it.
    silent: bool,
}

/// AAC frames this small (FLV audio header included) carry no spectral data: silence.
const SILENT_FRAME_BYTES: usize = 8;

pub fn analyse(tags: &[FlvTag]) -> Report {
    let mut report = Report::default();
    let mut pictures: Vec<Picture> = Vec::new();
    let mut audio: Vec<AudioFrame> = Vec::new();
    // Sequence headers in force, by content, and the source they describe.
    let (mut video_header, mut audio_header): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    let mut current = Source::default();
    // The new source's headers usually come back to back, but a source may send its
    // audio header a little after its first pictures: a header change within a few
    // pictures of the previous one belongs to the same transition.
    let mut pictures_since_change = 0usize;
    let mut last_change_ms: Option<i64> = None;
    // Headers carry whatever timestamp their sender gave them: time is read from media.
    let mut media_ms = 0i64;
    let mut changes: Vec<(usize, Source, Source)> = Vec::new();
    let mut first = Source::default();
    let mut audio_duration = 1024.0 / 44.1;
    let mut seen_headers = false;
    let mut seen_media = false;
    let mut audio_headers: Vec<usize> = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        let mut changed = false;
        match tag.kind {
            TagKind::Video => {
                let Ok(parsed) = parse_video_tag(&tag.payload) else { continue };
                let info = parsed.info;
                if info.is_sequence_header() {
                    if video_header != Some(parsed.body) {
                        video_header = Some(parsed.body);
                        current.video = Some(describe_video(&info, parsed.body));
                        changed = true;
                    }
                } else if info.packet == VideoPacket::Coded {
                    let dts = i64::from(tag.timestamp);
                    media_ms = media_ms.max(dts);
                    if pictures.last().is_some_and(|p| dts < p.dts) {
                        report.backward_dts += 1;
                    }
                    if !seen_media {
                        report.starts_decodable = seen_headers && info.is_keyframe();
                        first = current.clone();
                    }
                    seen_media = true;
                    pictures.push(Picture {
                        tag: i,
                        dts,
                        pts: dts + i64::from(info.composition_time),
                        key: info.is_keyframe(),
                    });
                    pictures_since_change = pictures_since_change.saturating_add(1);
                }
            }
            TagKind::Audio => {
                let Ok(parsed) = parse_audio_tag(&tag.payload) else { continue };
                if parsed.info.is_sequence_header() {
                    audio_headers.push(i);
                    if audio_header != Some(parsed.body) {
                        audio_header = Some(parsed.body);
                        let config = AudioConfig::parse(parsed.info.codec, parsed.body).ok();
                        if let Some(rate) = config.as_ref().map(|c| c.sample_rate).filter(|r| *r > 0) {
                            audio_duration = 1024.0 * 1000.0 / f64::from(rate);
                        }
                        current.audio = Some(match config {
                            Some(c) => format!("{} {}", c.codec, c.sample_rate),
                            None => parsed.info.codec.to_string(),
                        });
                        changed = true;
                    }
                } else {
                    let ts = i64::from(tag.timestamp);
                    media_ms = media_ms.max(ts);
                    if let Some(previous) = audio.last().filter(|a| ts <= a.ts) {
                        report.backward_audio += 1;
                        eprintln!(
                            "analysis: audio frame #{i} at {ts} ms after #{} at {} ms",
                            previous.tag, previous.ts
                        );
                    }
                    if !seen_media && current.video.is_none() {
                        first = current.clone();
                        seen_media = true;
                    }
                    let silent = tag.payload.len() <= SILENT_FRAME_BYTES;
                    audio.push(AudioFrame { tag: i, ts, duration: audio_duration, silent });
                }
            }
            TagKind::Script => {}
        }
        if changed {
            seen_headers = true;
            if !seen_media {
                // Still the stream's first source.
            } else if pictures_since_change <= SAME_SOURCE_PICTURES
                && last_change_ms.is_none_or(|ms| media_ms - ms <= SAME_SOURCE_MS)
            {
                match changes.last_mut() {
                    Some(last) => last.2 = current.clone(),
                    None => first = current.clone(),
                }
            } else {
                let from = changes.last().map_or_else(|| first.clone(), |c| c.2.clone());
                changes.push((i, from, current.clone()));
                pictures_since_change = 0;
                last_change_ms = Some(media_ms);
            }
        }
    }
    if seen_media {
        report.sources.push(first);
    }
    report.sources.extend(changes.iter().map(|c| c.2.clone()));
    if !seen_media {
        report.starts_decodable = false;
    }

    report.pictures = pictures.len();
    report.audio_frames = audio.len();
    report.largest_picture_gap_ms = largest_presented_gap(&pictures);
    report.largest_audio_gap_ms =
        audio.windows(2).map(|w| (w[1].ts as f64 - (w[0].ts as f64 + w[0].duration)).round() as i64).max().unwrap_or(0);
    report.transitions =
        changes.into_iter().map(|(tag, from, to)| measure(tag, from, to, &pictures, &audio, &audio_headers)).collect();
    report
}

/// A source's own A/V offset, from a file of it alone: first audio minus first presented
/// picture.
pub fn own_av_offset(tags: &[FlvTag]) -> Option<(Source, i64)> {
    let report = analyse(tags);
    let source = report.sources.first()?.clone();
    let audio = tags.iter().find(|t| {
        t.kind == TagKind::Audio && parse_audio_tag(&t.payload).is_ok_and(|a| !a.info.is_sequence_header())
    })?;
    let first_shown = tags
        .iter()
        .filter_map(|t| {
            let info = parse_video_tag(&t.payload).ok()?.info;
            (t.kind == TagKind::Video && info.packet == VideoPacket::Coded)
                .then(|| i64::from(t.timestamp) + i64::from(info.composition_time))
        })
        .take(WINDOW)
        .min()?;
    Some((source, i64::from(audio.timestamp) - first_shown))
}

fn describe_video(info: &VideoTagInfo, record: &[u8]) -> String {
    match VideoConfig::parse(info.codec, record).ok().and_then(|c| Some((c.width?, c.height?))) {
        Some((w, h)) => format!("{} {w}x{h}", info.codec),
        None => info.codec.to_string(),
    }
}

fn largest_presented_gap(pictures: &[Picture]) -> i64 {
    let mut pts: Vec<i64> = pictures.iter().map(|p| p.pts).collect();
    pts.sort_unstable();
    pts.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0)
}

fn measure(
    tag: usize,
    from: Source,
    to: Source,
    pictures: &[Picture],
    audio: &[AudioFrame],
    audio_headers: &[usize],
) -> Transition {
    let split = pictures.partition_point(|p| p.tag < tag);
    let (before, after) = pictures.split_at(split);
    let near_before = &before[before.len().saturating_sub(WINDOW)..];
    let near_after = &after[..after.len().min(WINDOW)];
    let last_shown = near_before.iter().map(|p| p.pts).max();
    let first_shown = near_after.iter().map(|p| p.pts).min();
    let splice_ms = last_shown.zip(first_shown).map(|(a, b)| b - a);
    let around: Vec<Picture> = near_before.iter().chain(near_after).copied().collect();
    // Pictures shown within a few frames of the splice, wherever they are in decoding order
    // (a window cut in decoding order would leave out B-frames shown inside it).
    let picture_gap_ms = last_shown.zip(first_shown).map(|(last, first)| {
        let shown_near = |p: &&Picture| (last - AROUND_SPLICE_MS..=first + AROUND_SPLICE_MS).contains(&p.pts);
        let near: Vec<Picture> = pictures.iter().filter(shown_near).copied().collect();
        largest_presented_gap(&near)
    });
    let mut steps: Vec<i64> = near_after.windows(2).map(|w| w[1].dts - w[0].dts).filter(|d| *d > 0).collect();
    steps.sort_unstable();
    let frame_ms = steps.get(steps.len() / 2).copied();
    let dts_monotonic = around.windows(2).all(|w| w[1].dts > w[0].dts);
    let starts_with_keyframe = after.first().is_some_and(|p| p.key);

    // The new source's audio follows its audio header. A muxer that interleaves by decoding
    // time (ffmpeg's) may put some of the old source's audio after the new video header.
    let audio_from = audio_headers
        .iter()
        .copied()
        .find(|&h| h >= tag && audio.iter().filter(|a| a.tag > tag && a.tag < h).count() <= AUDIO_HEADER_SLACK)
        .unwrap_or(tag);
    let split = audio.partition_point(|a| a.tag < audio_from);
    let (old_audio, new_audio) = audio.split_at(split);
    let audio_gap_ms = old_audio
        .last()
        .zip(new_audio.first())
        .map(|(old, new)| (new.ts as f64 - (old.ts as f64 + old.duration)).round() as i64);
    // A silent source (the slate) has no audio content to be in sync with.
    let av_offset_ms = first_shown.and_then(|pts| {
        // Audio stamped before the old source's last picture is the old source's, however a
        // muxer interleaved it.
        let audible = new_audio
            .iter()
            .take_while(|a| a.ts <= pts + AROUND_SPLICE_MS)
            .filter(|a| last_shown.is_none_or(|last| a.ts > last))
            .find(|a| !a.silent)?;
        Some(audible.ts - pts)
    });
    let at_ms = after.first().map(|p| p.dts).or(new_audio.first().map(|a| a.ts)).unwrap_or(0);
    Transition {
        tag,
        at_ms,
        from,
        to,
        splice_ms,
        picture_gap_ms,
        frame_ms,
        dts_monotonic,
        starts_with_keyframe,
        audio_gap_ms,
        av_offset_ms,
    }
}

/// Unit tests on synthetic streams: the FLV headers are built by hand so that each case
/// states exactly the timing it checks.
#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// An AVCDecoderConfigurationRecord with no SPS: the analysis tells sources apart by
    /// content, so a distinguishing byte is enough.
    fn avc_header(id: u8) -> FlvTag {
        FlvTag::new(TagKind::Video, 0, Bytes::from(vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, id, 0xFF, 0xE0, 0]))
    }

    fn picture(dts: u32, cts: i32, key: bool) -> FlvTag {
        let cts = cts.to_be_bytes();
        let first = if key { 0x17 } else { 0x27 };
        FlvTag::new(TagKind::Video, dts, Bytes::from(vec![first, 1, cts[1], cts[2], cts[3], 0xAA]))
    }

    /// AudioSpecificConfig for AAC-LC stereo at 44.1 kHz (index 4) or 48 kHz (index 3).
    fn aac_header(rate: u32) -> FlvTag {
        let index: u8 = if rate == 48_000 { 3 } else { 4 };
        let asc = [(2 << 3) | (index >> 1), ((index & 1) << 7) | (2 << 3)];
        FlvTag::new(TagKind::Audio, 0, Bytes::from(vec![0xAF, 0, asc[0], asc[1]]))
    }

    /// An AAC frame with content (larger than a frame of silence).
    fn aac(ts: u32) -> FlvTag {
        FlvTag::new(TagKind::Audio, ts, Bytes::from(vec![0xAF, 1, 0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C, 0x42, 0x42]))
    }

    /// `frames` pictures at `frame` ms from `start`, keyframe first, with audio frames of
    /// 1024 samples at 44.1 kHz alongside, interleaved by timestamp.
    fn source(start: u32, frames: u32, frame: u32, cts: impl Fn(u32) -> i32) -> Vec<FlvTag> {
        let mut tags = Vec::new();
        let end = start + frames * frame;
        let mut a = f64::from(start);
        for n in 0..frames {
            let dts = start + n * frame;
            while a < f64::from(dts + frame) && a < f64::from(end) {
                tags.push(aac(a.round() as u32));
                a += 1024.0 / 44.1;
            }
            tags.push(picture(dts, cts(n), n == 0));
        }
        tags
    }

    #[test]
    fn a_clean_splice_measures_one_frame_everywhere() {
        let mut tags = vec![avc_header(1), aac_header(44_100)];
        tags.extend(source(0, 30, 33, |_| 0));
        tags.push(avc_header(2));
        tags.extend(source(990, 30, 33, |_| 0));
        let report = analyse(&tags);
        assert!(report.starts_decodable);
        assert_eq!(report.sources.len(), 2, "{:?}", report.sources);
        assert_eq!(report.transitions.len(), 1);
        let t = &report.transitions[0];
        assert_eq!(t.splice_ms, Some(33));
        assert_eq!(t.picture_gap_ms, Some(33));
        assert_eq!(t.frame_ms, Some(33));
        assert!(t.dts_monotonic && t.starts_with_keyframe);
        assert!(t.audio_gap_ms.is_some_and(|g| g.abs() <= 23), "{t:?}");
        assert_eq!(report.violations(), Vec::<String>::new());
        assert_eq!(report.backward_dts, 0);
        assert_eq!(report.pictures, 60);
    }

    #[test]
    fn a_hole_at_the_splice_is_reported_with_its_size() {
        let mut tags = vec![avc_header(1), aac_header(44_100)];
        tags.extend(source(0, 30, 33, |_| 0));
        tags.push(avc_header(2));
        tags.extend(source(1490, 30, 33, |_| 0));
        let report = analyse(&tags);
        let t = &report.transitions[0];
        assert_eq!(t.picture_gap_ms, Some(1490 - 29 * 33));
        assert_eq!(report.largest_picture_gap_ms, 1490 - 29 * 33);
        assert!(t.audio_gap_ms.is_some_and(|g| g > 400), "{t:?}");
        let missed = report.violations();
        assert!(missed.iter().any(|m| m.contains("pictures 533 ms apart")), "{missed:?}");
        assert!(missed.iter().any(|m| m.contains("audio hole")), "{missed:?}");
    }

    #[test]
    fn reordered_pictures_are_measured_in_presentation_order() {
        // B-frames: decode order I P B B with composition offsets, presented evenly. The
        // old source's last pictures are presented up to 66 ms after their dts.
        let cts = |n: u32| if n.is_multiple_of(3) { 99 } else { 0 };
        let mut tags = vec![avc_header(1)];
        tags.extend(source(0, 30, 33, cts));
        // Decode order P B B, each P shown after its two Bs: the old source's last picture
        // (decoded at 891) is shown at 990, when the new source, spliced at the next
        // decoding timestamp without reordering, shows its first.
        tags.push(avc_header(2));
        tags.extend(source(990, 30, 33, |_| 0));
        let report = analyse(&tags);
        let t = &report.transitions[0];
        assert_eq!(t.splice_ms, Some(0), "{t:?}");
        assert_eq!(report.largest_picture_gap_ms, 33, "steady within each source");
        let missed = report.violations();
        assert!(missed.iter().any(|m| m.contains("presented 0 ms after the old source's last")), "{missed:?}");
    }

    #[test]
    fn an_audio_only_source_between_two_video_sources_is_two_transitions() {
        let mut tags = vec![avc_header(1), aac_header(44_100)];
        tags.extend(source(0, 30, 33, |_| 0));
        tags.push(aac_header(48_000)); // audio only for two seconds
        for n in 0..90 {
            tags.push(aac(990 + n * 21));
        }
        tags.push(avc_header(2));
        tags.push(aac_header(44_100));
        tags.extend(source(2900, 30, 33, |_| 0));
        let report = analyse(&tags);
        assert_eq!(report.transitions.len(), 2, "{:?}", report.transitions);
        assert_eq!(report.transitions[1].picture_gap_ms, Some(2900 - 29 * 33));
    }

    #[test]
    fn backward_decoding_timestamps_and_a_late_keyframe_are_caught() {
        let mut tags = vec![avc_header(1)];
        tags.extend(source(0, 10, 33, |_| 0));
        tags.push(avc_header(2));
        tags.push(picture(250, 0, false)); // goes back, and is no keyframe
        tags.push(picture(333, 0, true));
        let report = analyse(&tags);
        assert_eq!(report.backward_dts, 1);
        let t = &report.transitions[0];
        assert!(!t.dts_monotonic && !t.starts_with_keyframe, "{t:?}");
    }

    #[test]
    fn a_stream_joined_mid_gop_is_not_decodable() {
        let mut tags = vec![avc_header(1)];
        tags.push(picture(0, 0, false));
        assert!(!analyse(&tags).starts_decodable);
        // And without headers, a keyframe alone is not enough either.
        assert!(!analyse(&[picture(0, 0, true)]).starts_decodable);
    }

    #[test]
    fn an_audio_format_change_alone_is_a_transition_and_repeated_headers_are_not() {
        let mut tags = vec![avc_header(1), aac_header(44_100)];
        tags.extend(source(0, 10, 33, |_| 0));
        tags.push(avc_header(1)); // the same headers again (a reconnect): no new source
        tags.push(aac_header(44_100));
        tags.extend(source(330, 10, 33, |_| 0));
        tags.push(aac_header(48_000));
        tags.extend(source(660, 10, 33, |_| 0));
        let report = analyse(&tags);
        assert_eq!(report.transitions.len(), 1, "{:?}", report.transitions);
        assert_eq!(report.transitions[0].to.audio.as_deref(), Some("aac 48000"));
        assert_eq!(report.transitions[0].from.audio.as_deref(), Some("aac 44100"));
    }

    #[test]
    fn audio_ahead_of_video_at_a_splice_is_an_offset() {
        let mut tags = vec![avc_header(1), aac_header(44_100)];
        tags.extend(source(0, 30, 33, |_| 0));
        tags.push(avc_header(2));
        tags.push(aac(990));
        // The new source's pictures start 200 ms after its audio.
        tags.extend(source(1190, 30, 33, |_| 0).into_iter().filter(|t| t.kind == TagKind::Video));
        let report = analyse(&tags);
        assert_eq!(report.transitions[0].av_offset_ms, Some(-200));
        assert!(report.violations().iter().any(|m| m.contains("audio -200 ms off video")), "{report:?}");
        // Unless that is how the source itself was encoded.
        let own = |_: &Source| Some(-200);
        assert!(!report.violations_given(&own).iter().any(|m| m.contains("off video")), "{report:?}");
    }
}
