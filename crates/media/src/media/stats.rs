//! Per-publisher statistics for the status API.
//!
//! Time is always passed in, never read here, so the numbers are deterministic under
//! a virtual clock. Rates come from a fixed ring of time buckets covering the sliding
//! window: O(1) per tag and constant memory whatever the tag rate.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::codec::{
    AudioCodec, AudioConfig, LegacyAudioFormat, VideoCodec, VideoConfig, VideoPacket, parse_audio_tag, parse_video_tag,
};
use super::flv::{FlvTag, TagKind};

/// Window over which bitrate and frame rate are measured by default.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(5);
/// The window is split into this many buckets; it slides one bucket at a time.
const BUCKETS: usize = 50;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket of the publisher's lifetime (time since start / bucket width)
    /// this slot currently holds; a slot with an older index is stale.
    index: u64,
    bytes: u64,
    video_frames: u32,
    first_video_timestamp: u32,
    last_video_timestamp: u32,
}

/// Running statistics of one publisher, fed every tag it sends.
#[derive(Debug)]
pub struct PublisherStats {
    started: Instant,
    bucket_width: Duration,
    buckets: [Bucket; BUCKETS],
    /// Highest bucket index seen, so a stale `now` cannot corrupt the ring.
    newest_bucket: u64,

    bytes_total: u64,
    video_frames: u64,
    audio_frames: u64,
    keyframes: u64,
    last_keyframe_timestamp: Option<u32>,
    keyframe_interval_ms: Option<u32>,

    video_codec: Option<VideoCodec>,
    video_config: Option<VideoConfig>,
    audio_codec: Option<AudioCodec>,
    audio_config: Option<AudioConfig>,
    legacy_audio_format: Option<LegacyAudioFormat>,

    last_media_at: Option<Instant>,
    last_timestamp: Option<u32>,
    last_video_timestamp: Option<u32>,
    last_audio_timestamp: Option<u32>,
    timestamp_regressions: u64,
}

/// Stream description from the video sequence header (or just the codec, if the
/// header was missing or could not be parsed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoStats {
    pub codec: VideoCodec,
    pub profile: Option<String>,
    pub level: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioStats {
    pub codec: AudioCodec,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

/// Point-in-time view for the JSON status API. Durations are in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub uptime_ms: u64,
    /// FLV tag payload bytes received.
    pub bytes_total: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub keyframes: u64,
    /// Payload bits per second over the sliding window.
    pub bitrate_bps: u64,
    /// Video frames per second over the sliding window, from tag timestamps.
    pub video_fps: Option<f64>,
    /// Timestamp distance between the last two keyframes.
    pub keyframe_interval_ms: Option<u32>,
    pub video: Option<VideoStats>,
    pub audio: Option<AudioStats>,
    /// Time since the last tag arrived; large means the publisher stalled.
    pub idle_ms: Option<u64>,
    pub last_timestamp_ms: Option<u32>,
    /// Times an audio or video timestamp went backwards within its own track.
    pub timestamp_regressions: u64,
}

impl PublisherStats {
    /// Statistics for a publisher that connected at `started`.
    pub fn new(started: Instant) -> Self {
        Self::with_window(started, DEFAULT_WINDOW)
    }

    pub fn with_window(started: Instant, window: Duration) -> Self {
        PublisherStats {
            started,
            bucket_width: (window / BUCKETS as u32).max(Duration::from_millis(1)),
            buckets: [Bucket::default(); BUCKETS],
            newest_bucket: 0,
            bytes_total: 0,
            video_frames: 0,
            audio_frames: 0,
            keyframes: 0,
            last_keyframe_timestamp: None,
            keyframe_interval_ms: None,
            video_codec: None,
            video_config: None,
            audio_codec: None,
            audio_config: None,
            legacy_audio_format: None,
            last_media_at: None,
            last_timestamp: None,
            last_video_timestamp: None,
            last_audio_timestamp: None,
            timestamp_regressions: 0,
        }
    }

    /// Accounts one tag received at `now`.
    pub fn on_tag(&mut self, now: Instant, tag: &FlvTag) {
        let size = tag.payload.len() as u64;
        self.bytes_total += size;
        self.bucket_mut(now).bytes += size;
        if tag.kind == TagKind::Script {
            return;
        }
        self.last_media_at = Some(now);
        self.last_timestamp = Some(tag.timestamp);
        if tag.kind == TagKind::Video {
            self.on_video(now, tag);
        } else {
            self.on_audio(tag);
        }
    }

    fn on_video(&mut self, now: Instant, tag: &FlvTag) {
        Self::check_order(&mut self.last_video_timestamp, &mut self.timestamp_regressions, tag.timestamp);
        let Ok(parsed) = parse_video_tag(&tag.payload) else {
            return;
        };
        let info = parsed.info;
        // Describe the main rendition only, not alternate multitrack renditions.
        if info.track_id != 0 {
            return;
        }
        self.video_codec = Some(info.codec);
        match info.packet {
            VideoPacket::SequenceHeader => {
                self.video_config = VideoConfig::parse(info.codec, parsed.body).ok();
            }
            VideoPacket::Coded => {
                self.video_frames += 1;
                let bucket = self.bucket_mut(now);
                if bucket.video_frames == 0 {
                    bucket.first_video_timestamp = tag.timestamp;
                }
                bucket.video_frames += 1;
                bucket.last_video_timestamp = tag.timestamp;
                if info.is_keyframe() {
                    self.keyframes += 1;
                    self.keyframe_interval_ms =
                        self.last_keyframe_timestamp.and_then(|previous| tag.timestamp.checked_sub(previous));
                    self.last_keyframe_timestamp = Some(tag.timestamp);
                }
            }
            _ => {}
        }
    }

    fn on_audio(&mut self, tag: &FlvTag) {
        Self::check_order(&mut self.last_audio_timestamp, &mut self.timestamp_regressions, tag.timestamp);
        let Ok(parsed) = parse_audio_tag(&tag.payload) else {
            return;
        };
        let info = parsed.info;
        if info.track_id != 0 {
            return;
        }
        if self.audio_codec != Some(info.codec) {
            // A different codec makes the old configuration meaningless.
            self.audio_config = None;
        }
        self.audio_codec = Some(info.codec);
        self.legacy_audio_format = info.legacy_format;
        if info.is_sequence_header() {
            self.audio_config = AudioConfig::parse(info.codec, parsed.body).ok();
        } else {
            self.audio_frames += 1;
        }
    }

    /// Audio and video are checked separately: publishers interleave the two tracks
    /// loosely, so a few ms of disorder between them is normal.
    fn check_order(last: &mut Option<u32>, regressions: &mut u64, timestamp: u32) {
        if last.is_some_and(|previous| timestamp < previous) {
            *regressions += 1;
        }
        *last = Some(timestamp);
    }

    fn bucket_index(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started);
        (elapsed.as_nanos() / self.bucket_width.as_nanos()) as u64
    }

    /// The bucket for `now`, recycling its slot if it held an older bucket.
    fn bucket_mut(&mut self, now: Instant) -> &mut Bucket {
        let index = self.bucket_index(now).max(self.newest_bucket);
        self.newest_bucket = index;
        let slot = &mut self.buckets[(index % BUCKETS as u64) as usize];
        if slot.index != index {
            *slot = Bucket { index, ..Bucket::default() };
        }
        slot
    }

    /// The live buckets of the window ending at `now`, oldest first, and the time
    /// they cover (the current bucket only partly elapsed).
    fn window(&self, now: Instant) -> (impl Iterator<Item = &Bucket>, Duration) {
        let current = self.bucket_index(now).max(self.newest_bucket);
        let first = (current + 1).saturating_sub(BUCKETS as u64);
        let elapsed = now.saturating_duration_since(self.started).as_nanos();
        let window_start = self.bucket_width.as_nanos() * u128::from(first);
        let covered = Duration::from_nanos(u64::try_from(elapsed.saturating_sub(window_start)).unwrap_or(u64::MAX));
        let buckets = (first..=current).filter_map(move |index| {
            let bucket = &self.buckets[(index % BUCKETS as u64) as usize];
            (bucket.index == index).then_some(bucket)
        });
        (buckets, covered)
    }

    pub fn snapshot(&self, now: Instant) -> StatsSnapshot {
        let (buckets, covered) = self.window(now);
        let mut window_bytes = 0u64;
        let mut frames = 0u64;
        let mut first_ts = None;
        let mut last_ts = None;
        for bucket in buckets {
            window_bytes += bucket.bytes;
            if bucket.video_frames > 0 {
                frames += u64::from(bucket.video_frames);
                first_ts.get_or_insert(bucket.first_video_timestamp);
                last_ts = Some(bucket.last_video_timestamp);
            }
        }
        let bitrate_bps =
            if covered.is_zero() { 0 } else { (window_bytes as f64 * 8.0 / covered.as_secs_f64()).round() as u64 };
        // N frames span N-1 frame intervals of timestamp time.
        let video_fps = match (first_ts, last_ts) {
            (Some(first), Some(last)) if frames >= 2 && last > first => {
                Some((frames - 1) as f64 * 1000.0 / f64::from(last - first))
            }
            _ => None,
        };

        StatsSnapshot {
            uptime_ms: duration_ms(now.saturating_duration_since(self.started)),
            bytes_total: self.bytes_total,
            video_frames: self.video_frames,
            audio_frames: self.audio_frames,
            keyframes: self.keyframes,
            bitrate_bps,
            video_fps,
            keyframe_interval_ms: self.keyframe_interval_ms,
            video: self.video_stats(),
            audio: self.audio_stats(),
            idle_ms: self.last_media_at.map(|at| duration_ms(now.saturating_duration_since(at))),
            last_timestamp_ms: self.last_timestamp,
            timestamp_regressions: self.timestamp_regressions,
        }
    }

    fn video_stats(&self) -> Option<VideoStats> {
        let codec = self.video_codec?;
        let config = self.video_config.filter(|c| c.codec == codec);
        Some(VideoStats {
            codec,
            profile: config.map(|c| match c.profile_name() {
                Some(name) => name.to_owned(),
                None => c.profile.to_string(),
            }),
            level: config.and_then(|c| c.level_name()),
            width: config.and_then(|c| c.width),
            height: config.and_then(|c| c.height),
        })
    }

    fn audio_stats(&self) -> Option<AudioStats> {
        let codec = self.audio_codec?;
        // The legacy header bits are fixed for AAC, so only trust them without a
        // parsed configuration and for codecs that have none.
        let (sample_rate, channels) = match (self.audio_config, self.legacy_audio_format) {
            (Some(config), _) => (Some(config.sample_rate), config.channels),
            (None, Some(legacy)) if codec != AudioCodec::Aac => {
                (Some(legacy.sample_rate), Some(if legacy.stereo { 2 } else { 1 }))
            }
            _ => (None, None),
        };
        Some(AudioStats { codec, sample_rate, channels })
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVC_RECORD_1080P: &[u8] = &[
        0x17, 0, 0, 0, 0, // legacy AVC sequence header
        1, 0x42, 0xc0, 0x28, 0xff, 0xe1, 0, 26, // record header, one 26-byte SPS
        0x67, 0x42, 0xc0, 0x28, 0xd9, 0x00, 0x78, 0x02, 0x27, 0xe5, 0xc0, 0x44, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00,
        0x00, 0x03, 0x00, 0xc8, 0x3c, 0x60, 0xc9, 0x20, //
        0,    // no PPS
    ];

    fn video(timestamp: u32, key: bool, size: usize) -> FlvTag {
        let mut payload = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
        payload.resize(size, 0);
        FlvTag::new(TagKind::Video, timestamp, payload)
    }

    fn audio(timestamp: u32, size: usize) -> FlvTag {
        let mut payload = vec![0xaf, 1];
        payload.resize(size, 0);
        FlvTag::new(TagKind::Audio, timestamp, payload)
    }

    /// 30 fps video of 1000-byte frames, keyframe every 60 frames, for `secs`,
    /// arriving exactly on time. Returns the clock at the end.
    fn feed_steady(stats: &mut PublisherStats, t0: Instant, secs: u32) -> Instant {
        let frames = secs * 30;
        for i in 0..frames {
            let ts = i * 1000 / 30;
            stats.on_tag(t0 + Duration::from_millis(u64::from(ts)), &video(ts, i % 60 == 0, 1000));
        }
        t0 + Duration::from_secs(u64::from(secs))
    }

    #[test]
    fn counts_rates_and_keyframe_interval_under_a_virtual_clock() {
        let t0 = Instant::now();
        let mut stats = PublisherStats::new(t0);
        let end = feed_steady(&mut stats, t0, 10);
        let snap = stats.snapshot(end);

        assert_eq!(snap.uptime_ms, 10_000);
        assert_eq!(snap.video_frames, 300);
        assert_eq!(snap.keyframes, 5);
        assert_eq!(snap.bytes_total, 300_000);
        assert_eq!(snap.keyframe_interval_ms, Some(2000));
        // 30 frames/s * 1000 bytes * 8 = 240 kbit/s.
        assert_eq!(snap.bitrate_bps, 240_000);
        let fps = snap.video_fps.unwrap();
        assert!((fps - 30.0).abs() < 0.1, "fps {fps}");
        assert_eq!(snap.idle_ms, Some(1000 / 30 + 1));
        assert_eq!(snap.last_timestamp_ms, Some(299 * 1000 / 30));
        assert_eq!(snap.timestamp_regressions, 0);
    }

    #[test]
    fn window_forgets_old_traffic() {
        let t0 = Instant::now();
        let mut stats = PublisherStats::new(t0);
        let end = feed_steady(&mut stats, t0, 4);
        // Silence: the window empties, totals stay.
        let later = end + Duration::from_secs(6);
        let snap = stats.snapshot(later);
        assert_eq!(snap.bitrate_bps, 0);
        assert_eq!(snap.video_fps, None);
        assert_eq!(snap.video_frames, 120);
        assert_eq!(snap.idle_ms, Some(6000 + 1000 / 30 + 1));

        // Half-rate traffic afterwards is measured on its own.
        for i in 0..120u32 {
            let at = later + Duration::from_millis(u64::from(i) * 50);
            stats.on_tag(at, &audio(10_000 + i * 50, 500));
        }
        // 20 tags/s * 500 bytes * 8 = 80 kbit/s.
        let snap = stats.snapshot(later + Duration::from_secs(6));
        assert_eq!(snap.bitrate_bps, 80_000);
        assert_eq!(snap.audio_frames, 120);
    }

    #[test]
    fn bitrate_in_the_first_second_uses_elapsed_time() {
        let t0 = Instant::now();
        let mut stats = PublisherStats::new(t0);
        stats.on_tag(t0, &audio(0, 1000));
        stats.on_tag(t0 + Duration::from_millis(250), &audio(250, 1000));
        let snap = stats.snapshot(t0 + Duration::from_millis(500));
        assert_eq!(snap.bitrate_bps, 32_000);
        assert_eq!(stats.snapshot(t0).bitrate_bps, 0);
    }

    #[test]
    fn codec_details_come_from_sequence_headers() {
        let t0 = Instant::now();
        let mut stats = PublisherStats::new(t0);
        stats.on_tag(t0, &FlvTag::new(TagKind::Video, 0, AVC_RECORD_1080P));
        stats.on_tag(t0, &FlvTag::new(TagKind::Audio, 0, &[0xaf, 0, 0x11, 0x90][..]));
        let snap = stats.snapshot(t0);
        assert_eq!(
            snap.video,
            Some(VideoStats {
                codec: VideoCodec::Avc,
                profile: Some("Baseline".into()),
                level: Some("4.0".into()),
                width: Some(1920),
                height: Some(1080),
            })
        );
        assert_eq!(
            snap.audio,
            Some(AudioStats { codec: AudioCodec::Aac, sample_rate: Some(48000), channels: Some(2) })
        );
        // Sequence headers are not frames.
        assert_eq!((snap.video_frames, snap.audio_frames), (0, 0));
    }

    #[test]
    fn legacy_audio_bits_are_used_without_a_config() {
        let t0 = Instant::now();
        let mut stats = PublisherStats::new(t0);
        // MP3, 22 kHz, 16-bit, mono.
        stats.on_tag(t0, &FlvTag::new(TagKind::Audio, 0, &[0x2a, 0xff][..]));
        let audio = stats.snapshot(t0).audio.unwrap();
        assert_eq!((audio.codec, audio.sample_rate, audio.channels), (AudioCodec::Mp3, Some(22050), Some(1)));
        // AAC frames without a header: the fixed legacy bits would lie, so say nothing.
        stats.on_tag(t0, &FlvTag::new(TagKind::Audio, 0, &[0xaf, 0x01][..]));
        let audio = stats.snapshot(t0).audio.unwrap();
        assert_eq!((audio.sample_rate, audio.channels), (None, None));
    }

    #[test]
    fn timestamp_regressions_are_per_track() {
        let t0 = Instant::now();
        let mut stats = PublisherStats::new(t0);
        stats.on_tag(t0, &video(100, true, 10));
        stats.on_tag(t0, &audio(95, 10)); // audio slightly behind video: fine
        stats.on_tag(t0, &video(133, false, 10));
        stats.on_tag(t0, &audio(118, 10));
        assert_eq!(stats.snapshot(t0).timestamp_regressions, 0);
        stats.on_tag(t0, &video(50, false, 10));
        assert_eq!(stats.snapshot(t0).timestamp_regressions, 1);
        // A backwards keyframe gives no interval rather than a bogus one.
        stats.on_tag(t0, &video(20, true, 10));
        assert_eq!(stats.snapshot(t0).keyframe_interval_ms, None);
    }

    #[test]
    fn garbage_tags_only_count_bytes() {
        let t0 = Instant::now();
        let mut stats = PublisherStats::new(t0);
        stats.on_tag(t0, &FlvTag::new(TagKind::Video, 0, Vec::new()));
        stats.on_tag(t0, &FlvTag::new(TagKind::Audio, 0, vec![0xaf]));
        stats.on_tag(t0, &FlvTag::new(TagKind::Script, 9, vec![1, 2, 3]));
        let snap = stats.snapshot(t0);
        assert_eq!(snap.bytes_total, 4);
        // Script data is not media: it does not move the media clock.
        assert_eq!(snap.last_timestamp_ms, Some(0));
        assert_eq!((snap.video_frames, snap.audio_frames), (0, 0));
        assert_eq!((snap.video, snap.audio), (None, None));
    }
}
