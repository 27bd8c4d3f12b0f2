//! Per-publisher GOP cache: what a consumer joining mid-stream needs to start
//! decoding immediately instead of waiting for the next keyframe.
//!
//! The cache keeps the latest video and audio sequence headers and `onMetaData` tag,
//! plus every tag since the most recent video keyframe (audio and other tags
//! interleaved, in arrival order). For audio-only streams it keeps a short window of
//! recent audio instead.
//!
//! Bounds: if the current GOP grows past `max_bytes` or `max_tags` (a very long
//! keyframe interval, or a flood), the cached tags are dropped and nothing is cached
//! until the next keyframe; the headers are always kept. Joining consumers then get
//! the headers only and must wait for that keyframe themselves.

use std::collections::VecDeque;

use super::codec::{AudioTagInfo, VideoTagInfo};
use super::flv::{FlvTag, TagKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GopCacheConfig {
    /// Payload bytes the cached tags may hold.
    pub max_bytes: usize,
    /// Number of tags the cache may hold.
    pub max_tags: usize,
    /// For audio-only streams: how much audio (by timestamp) to keep.
    pub audio_only_window_ms: u32,
}

impl Default for GopCacheConfig {
    /// Room for a 10 s GOP at about 12 Mbit/s, beyond what DJ sets are streamed at.
    fn default() -> Self {
        GopCacheConfig { max_bytes: 16 * 1024 * 1024, max_tags: 4096, audio_only_window_ms: 1000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No video seen yet: keep a sliding window of recent audio.
    AudioOnly,
    /// Video stream without a usable GOP (start, overflow, codec change).
    AwaitingKeyframe,
    /// `tags` starts with a keyframe.
    Caching,
}

#[derive(Debug)]
pub struct GopCache {
    config: GopCacheConfig,
    video_sequence_header: Option<FlvTag>,
    audio_sequence_header: Option<FlvTag>,
    metadata: Option<FlvTag>,
    tags: VecDeque<FlvTag>,
    /// Payload bytes held in `tags`.
    bytes: usize,
    mode: Mode,
    last_keyframe_timestamp: Option<u32>,
    /// Whether the current GOP is kept at all (see [`GopCache::hold_gop`]).
    holding: bool,
}

impl Default for GopCache {
    fn default() -> Self {
        Self::new(GopCacheConfig::default())
    }
}

impl GopCache {
    pub fn new(config: GopCacheConfig) -> Self {
        GopCache {
            config,
            video_sequence_header: None,
            audio_sequence_header: None,
            metadata: None,
            tags: VecDeque::new(),
            bytes: 0,
            mode: Mode::AudioOnly,
            last_keyframe_timestamp: None,
            holding: true,
        }
    }

    /// Records one tag of the publisher's stream, in arrival order.
    pub fn push(&mut self, tag: FlvTag) {
        match tag.kind {
            TagKind::Video => self.push_video(tag),
            TagKind::Audio => self.push_audio(tag),
            TagKind::Script if tag.is_metadata() => self.metadata = Some(tag),
            // Other script data (cue points, captions) is part of the timeline.
            TagKind::Script => self.append(tag),
        }
    }

    fn push_video(&mut self, tag: FlvTag) {
        if self.mode == Mode::AudioOnly {
            // From now on the stream is joined at keyframes, not at any audio frame.
            self.clear_tags(Mode::AwaitingKeyframe);
        }
        // Undecodable headers are cached as ordinary frames: forwarding what the
        // publisher sent is the consumer's decoder's business. Only the default track
        // of an Enhanced RTMP multitrack stream delimits GOPs and provides headers;
        // other tracks ride along as data.
        let info = VideoTagInfo::parse(&tag.payload).ok().filter(|i| i.track_id == 0);
        if info.is_some_and(|i| i.is_sequence_header()) {
            // Frames coded against the old configuration would not decode with the
            // new one, so a changed header invalidates the GOP. Encoders that repeat
            // an identical header before every keyframe keep it.
            if self.video_sequence_header.as_ref().is_some_and(|old| old.payload != tag.payload) {
                self.clear_tags(Mode::AwaitingKeyframe);
            }
            self.video_sequence_header = Some(tag);
        } else if info.is_some_and(|i| i.is_keyframe()) && self.holding {
            self.last_keyframe_timestamp = Some(tag.timestamp);
            self.clear_tags(Mode::Caching);
            self.append(tag);
        } else {
            self.append(tag);
        }
    }

    fn push_audio(&mut self, tag: FlvTag) {
        let is_header = AudioTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_sequence_header() && i.track_id == 0);
        if !is_header {
            self.append(tag);
            return;
        }
        // In an audio-only stream, the window's frames belong to the old configuration.
        // With video, a mid-GOP audio change only costs a joining consumer a few
        // undecodable audio frames, not worth dropping the video GOP for.
        if self.mode == Mode::AudioOnly
            && self.audio_sequence_header.as_ref().is_some_and(|old| old.payload != tag.payload)
        {
            self.clear_tags(Mode::AudioOnly);
        }
        self.audio_sequence_header = Some(tag);
    }

    fn append(&mut self, tag: FlvTag) {
        if !self.holding {
            return;
        }
        match self.mode {
            Mode::AwaitingKeyframe => {}
            Mode::Caching => {
                if self.tags.len() >= self.config.max_tags || self.bytes + tag.payload.len() > self.config.max_bytes {
                    self.clear_tags(Mode::AwaitingKeyframe);
                } else {
                    self.push_back(tag);
                }
            }
            Mode::AudioOnly => {
                let newest = tag.timestamp;
                self.push_back(tag);
                while let Some(oldest) = self.tags.front()
                    && (newest.saturating_sub(oldest.timestamp) > self.config.audio_only_window_ms
                        || self.tags.len() > self.config.max_tags
                        || self.bytes > self.config.max_bytes)
                {
                    self.pop_front();
                }
            }
        }
    }

    fn push_back(&mut self, tag: FlvTag) {
        self.bytes += tag.payload.len();
        self.tags.push_back(tag);
    }

    fn pop_front(&mut self) {
        if let Some(tag) = self.tags.pop_front() {
            self.bytes -= tag.payload.len();
        }
    }

    /// Forgets the cached tags (some were lost on the way here, so the GOP would not
    /// decode); caching resumes at the next keyframe. The headers are kept.
    pub fn drop_gop(&mut self) {
        let mode = if self.mode == Mode::AudioOnly { Mode::AudioOnly } else { Mode::AwaitingKeyframe };
        self.clear_tags(mode);
    }

    /// Whether to keep the current GOP or only the stream's headers. A publisher that
    /// nobody will join at once (a DJ further down the queue than next) needs no GOP, and
    /// its GOP is most of what it costs in memory. Holding again starts at the next
    /// keyframe, so a consumer joining before then gets the headers only.
    pub fn hold_gop(&mut self, hold: bool) {
        if hold == self.holding {
            return;
        }
        self.holding = hold;
        let mode = if self.mode == Mode::AudioOnly { Mode::AudioOnly } else { Mode::AwaitingKeyframe };
        self.clear_tags(mode);
        if !hold {
            self.last_keyframe_timestamp = None;
        }
    }

    fn clear_tags(&mut self, mode: Mode) {
        self.tags.clear();
        self.bytes = 0;
        self.mode = mode;
    }

    /// What a consumer starting now should be sent first: metadata, video and audio
    /// sequence headers (those known), then the cached GOP from its keyframe (or the
    /// audio window).
    ///
    /// The headers may date from long ago; they are restamped with the timestamp of
    /// the first cached tag so the burst a consumer receives never goes backwards.
    pub fn startup_tags(&self) -> Vec<FlvTag> {
        let start = self.tags.front().map(|t| t.timestamp);
        let headers = [&self.metadata, &self.video_sequence_header, &self.audio_sequence_header];
        let mut out = Vec::with_capacity(headers.len() + self.tags.len());
        for header in headers.into_iter().flatten() {
            let mut header = header.clone();
            if let Some(start) = start {
                header.timestamp = start;
            }
            out.push(header);
        }
        out.extend(self.tags.iter().cloned());
        out
    }

    pub fn video_sequence_header(&self) -> Option<&FlvTag> {
        self.video_sequence_header.as_ref()
    }

    pub fn audio_sequence_header(&self) -> Option<&FlvTag> {
        self.audio_sequence_header.as_ref()
    }

    pub fn metadata(&self) -> Option<&FlvTag> {
        self.metadata.as_ref()
    }

    /// Timestamp of the latest video keyframe seen, even if its GOP overflowed.
    pub fn last_keyframe_timestamp(&self) -> Option<u32> {
        self.last_keyframe_timestamp
    }

    /// True until the stream has shown video: it is then joined at any audio frame.
    pub fn is_audio_only(&self) -> bool {
        self.mode == Mode::AudioOnly
    }

    /// Number of tags cached after the headers.
    pub fn cached_tags(&self) -> usize {
        self.tags.len()
    }

    /// Payload bytes of the tags cached after the headers.
    pub fn cached_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn video(timestamp: u32, first: u8, packet_type: u8, size: usize) -> FlvTag {
        let mut payload = vec![first, packet_type, 0, 0, 0];
        payload.resize(size.max(5), 0xab);
        FlvTag::new(TagKind::Video, timestamp, payload)
    }
    fn video_header(timestamp: u32, variant: u8) -> FlvTag {
        FlvTag::new(TagKind::Video, timestamp, vec![0x17, 0, 0, 0, 0, 1, variant])
    }
    fn key(timestamp: u32) -> FlvTag {
        video(timestamp, 0x17, 1, 100)
    }
    fn inter(timestamp: u32) -> FlvTag {
        video(timestamp, 0x27, 1, 20)
    }
    fn audio_header(variant: u8) -> FlvTag {
        FlvTag::new(TagKind::Audio, 0, vec![0xaf, 0, 0x12, variant])
    }
    fn audio(timestamp: u32) -> FlvTag {
        FlvTag::new(TagKind::Audio, timestamp, vec![0xaf, 1, 0x21, 0x10])
    }
    fn metadata() -> FlvTag {
        FlvTag::new(TagKind::Script, 0, &b"\x02\x00\x0aonMetaData\x08\0\0\0\0"[..])
    }
    fn timestamps(tags: &[FlvTag]) -> Vec<(TagKind, u32)> {
        tags.iter().map(|t| (t.kind, t.timestamp)).collect()
    }

    #[test]
    fn startup_is_headers_then_gop_from_latest_keyframe() {
        let mut cache = GopCache::default();
        cache.push(metadata());
        cache.push(video_header(0, 1));
        cache.push(audio_header(8));
        cache.push(key(0));
        cache.push(audio(10));
        cache.push(inter(33));
        cache.push(key(1000));
        cache.push(audio(1010));
        cache.push(inter(1033));

        let startup = cache.startup_tags();
        assert_eq!(startup[0], FlvTag { timestamp: 1000, ..metadata() });
        assert_eq!(startup[1].payload, video_header(0, 1).payload);
        assert_eq!(startup[2].payload, audio_header(8).payload);
        assert_eq!(
            timestamps(&startup),
            [
                (TagKind::Script, 1000),
                (TagKind::Video, 1000),
                (TagKind::Audio, 1000),
                (TagKind::Video, 1000),
                (TagKind::Audio, 1010),
                (TagKind::Video, 1033),
            ]
        );
        assert!(VideoTagInfo::parse(&startup[3].payload).unwrap().is_keyframe());
        assert_eq!(cache.last_keyframe_timestamp(), Some(1000));
        assert_eq!(cache.cached_tags(), 3);
        assert_eq!(cache.cached_bytes(), 100 + 4 + 20);
        assert_eq!(cache.metadata(), Some(&metadata()));
    }

    #[test]
    fn payloads_are_shared_not_copied() {
        let mut cache = GopCache::default();
        let keyframe = key(0);
        cache.push(keyframe.clone());
        let startup = cache.startup_tags();
        assert_eq!(startup[0].payload.as_ptr(), keyframe.payload.as_ptr());
    }

    #[test]
    fn tags_before_the_first_keyframe_are_not_cached() {
        let mut cache = GopCache::default();
        cache.push(video_header(0, 1));
        cache.push(inter(0));
        cache.push(audio(5));
        assert_eq!(cache.cached_tags(), 0);
        assert_eq!(timestamps(&cache.startup_tags()), [(TagKind::Video, 0)]);
        assert_eq!(cache.last_keyframe_timestamp(), None);
    }

    #[test]
    fn new_sequence_header_replaces_old_and_resets_gop_only_when_different() {
        let mut cache = GopCache::default();
        cache.push(video_header(0, 1));
        cache.push(key(0));
        cache.push(inter(33));
        // Same header repeated (as some encoders do): GOP kept.
        cache.push(video_header(50, 1));
        assert_eq!(cache.cached_tags(), 2);
        // Encoder settings changed: old frames are useless with the new header.
        cache.push(video_header(60, 2));
        assert_eq!(cache.cached_tags(), 0);
        assert_eq!(cache.video_sequence_header(), Some(&video_header(60, 2)));
        cache.push(inter(66));
        assert_eq!(cache.cached_tags(), 0);
        cache.push(key(100));
        assert_eq!(cache.cached_tags(), 1);

        cache.push(audio_header(8));
        cache.push(audio_header(9));
        assert_eq!(cache.audio_sequence_header(), Some(&audio_header(9)));
        assert_eq!(cache.cached_tags(), 1);
    }

    #[test]
    fn overflowing_gop_is_dropped_until_the_next_keyframe() {
        let mut cache = GopCache::new(GopCacheConfig { max_bytes: 200, max_tags: 100, audio_only_window_ms: 1000 });
        cache.push(video_header(0, 1));
        cache.push(key(0)); // 100 bytes
        for i in 1..=5 {
            cache.push(inter(i * 33)); // 20 bytes each: 200 total
        }
        assert_eq!((cache.cached_tags(), cache.cached_bytes()), (6, 200));
        cache.push(inter(198));
        assert_eq!((cache.cached_tags(), cache.cached_bytes()), (0, 0));
        cache.push(inter(231));
        cache.push(audio(240));
        assert_eq!(cache.cached_tags(), 0);
        // Headers survive the overflow.
        assert_eq!(cache.startup_tags(), vec![video_header(0, 1)]);
        cache.push(key(1000));
        assert_eq!(cache.cached_tags(), 1);

        let mut by_count =
            GopCache::new(GopCacheConfig { max_bytes: usize::MAX, max_tags: 3, audio_only_window_ms: 1000 });
        for tag in [key(0), inter(1), inter(2), inter(3)] {
            by_count.push(tag);
        }
        assert_eq!(by_count.cached_tags(), 0);
        assert_eq!(by_count.last_keyframe_timestamp(), Some(0));
    }

    #[test]
    fn a_cache_told_not_to_hold_keeps_headers_only_and_resumes_at_a_keyframe() {
        let mut cache = GopCache::default();
        cache.push(metadata());
        cache.push(video_header(0, 1));
        cache.push(audio_header(1));
        cache.push(key(0));
        cache.push(audio(10));
        cache.hold_gop(false);
        assert_eq!((cache.cached_tags(), cache.cached_bytes()), (0, 0));
        assert_eq!(cache.last_keyframe_timestamp(), None, "a joiner would not start at a keyframe");
        for tag in [inter(33), key(66), audio(70), inter(99)] {
            cache.push(tag);
        }
        assert_eq!(cache.cached_tags(), 0, "nothing is held, keyframes included");
        cache.push(video_header(100, 2));
        assert_eq!(timestamps(&cache.startup_tags()).len(), 3, "the headers stay current");
        assert_eq!(cache.video_sequence_header(), Some(&video_header(100, 2)));

        cache.hold_gop(true);
        cache.push(inter(133));
        cache.push(audio(140));
        assert_eq!(cache.cached_tags(), 0, "holding resumes at a keyframe, not mid-GOP");
        cache.push(key(166));
        cache.push(audio(170));
        assert_eq!(cache.cached_tags(), 2);
        assert_eq!(cache.last_keyframe_timestamp(), Some(166));
    }

    #[test]
    fn keyframe_larger_than_the_bound_is_not_cached() {
        let mut cache = GopCache::new(GopCacheConfig { max_bytes: 50, ..GopCacheConfig::default() });
        cache.push(key(0));
        assert_eq!(cache.cached_tags(), 0);
        cache.push(inter(33));
        assert_eq!(cache.cached_tags(), 0);
    }

    #[test]
    fn audio_only_keeps_a_recent_window() {
        let mut cache = GopCache::default();
        cache.push(audio_header(8));
        for i in 0..100 {
            cache.push(audio(i * 23));
        }
        let startup = cache.startup_tags();
        assert_eq!(startup[0].kind, TagKind::Audio);
        assert_eq!(startup[0].payload, audio_header(8).payload);
        let window = &startup[1..];
        let first = window[0].timestamp;
        let last = window[window.len() - 1].timestamp;
        assert_eq!(last, 99 * 23);
        assert!(last - first <= 1000, "window spans {}", last - first);
        assert!(last - first > 1000 - 23, "window spans {}", last - first);
        // Restamped to the start of the window.
        assert_eq!(startup[0].timestamp, first);

        // A different audio configuration invalidates the window.
        cache.push(audio_header(9));
        assert_eq!(cache.cached_tags(), 0);
    }

    #[test]
    fn audio_only_window_respects_tag_bound() {
        let mut cache =
            GopCache::new(GopCacheConfig { max_bytes: usize::MAX, max_tags: 10, audio_only_window_ms: 60_000 });
        for i in 0..50 {
            cache.push(audio(i));
        }
        assert_eq!(cache.cached_tags(), 10);
        assert_eq!(cache.startup_tags()[0].timestamp, 40);
    }

    #[test]
    fn video_appearing_switches_from_audio_window_to_gop() {
        let mut cache = GopCache::default();
        cache.push(audio(0));
        cache.push(audio(23));
        assert_eq!(cache.cached_tags(), 2);
        cache.push(video_header(40, 1));
        assert_eq!(cache.cached_tags(), 0);
        cache.push(audio(46));
        assert_eq!(cache.cached_tags(), 0);
        cache.push(key(50));
        cache.push(audio(69));
        assert_eq!(cache.cached_tags(), 2);
    }

    #[test]
    fn other_multitrack_tracks_do_not_delimit_gops() {
        let mut cache = GopCache::default();
        cache.push(key(0));
        cache.push(inter(33));
        // Enhanced RTMP OneTrack keyframe and sequence start of track 1.
        cache.push(FlvTag::new(TagKind::Video, 40, &b"\x96\x01avc1\x01\0\0\0\xee"[..]));
        cache.push(FlvTag::new(TagKind::Video, 41, &b"\x96\x00avc1\x01\x01"[..]));
        assert_eq!(cache.cached_tags(), 4);
        assert_eq!(cache.last_keyframe_timestamp(), Some(0));
        assert_eq!(cache.video_sequence_header(), None);
        cache.push(FlvTag::new(TagKind::Video, 50, &b"\x96\x01avc1\x00\0\0\0\xee"[..]));
        assert_eq!(cache.cached_tags(), 1);
    }

    #[test]
    fn other_script_tags_and_garbage_video_stay_in_the_timeline() {
        let mut cache = GopCache::default();
        cache.push(key(0));
        cache.push(FlvTag::new(TagKind::Script, 5, &b"\x02\x00\x0aonCuePoint"[..]));
        cache.push(FlvTag::new(TagKind::Video, 6, Bytes::new()));
        assert_eq!(cache.cached_tags(), 3);
        assert_eq!(cache.metadata(), None);
    }
}
