//! The sliding window of segments and the media playlist rendered from it (pure).

use std::collections::VecDeque;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::segmenter::Output;

/// Segments kept after they leave the playlist: a player that read the playlist just
/// before it slid may still ask for them (RFC 8216 6.2.2).
const KEPT_AFTER_WINDOW: usize = 2;
/// Complete segments whose parts are still listed (LL-HLS: parts of segments within three
/// target durations of the end; this covers the last two, plus the open one).
const SEGMENTS_WITH_PARTS: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowConfig {
    /// Segments in the playlist.
    pub window: usize,
    pub segment_ms: u64,
    /// LL-HLS part target; `None` without parts.
    pub part_target_ms: Option<u64>,
    /// Prefixes every file name: names are cached as immutable (by CDNs too), and segment
    /// numbers start again at 0 when the server restarts.
    pub run: u64,
}

#[derive(Debug, Clone)]
pub struct Part {
    pub duration_ms: u64,
    pub independent: bool,
    pub bytes: Bytes,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub msn: u64,
    pub init: u64,
    pub discontinuity: bool,
    pub wall: SystemTime,
    /// `None` while the segment is still being made.
    pub complete: Option<(u64, Bytes)>,
    pub parts: Vec<Part>,
}

/// The segments on offer and the init segments they use.
#[derive(Debug, Clone)]
pub struct Window {
    config: WindowConfig,
    /// Oldest first; the last may be open.
    segments: VecDeque<Segment>,
    inits: Vec<(u64, Bytes)>,
    /// Discontinuities of segments dropped from the deque.
    discontinuities_dropped: u64,
    /// The number the next segment gets: the media sequence of a playlist that lists none.
    next_msn: u64,
    /// EXT-X-TARGETDURATION, seconds: the configured one, raised (never lowered) by longer
    /// segments, which a source with long GOPs makes.
    target_s: u64,
}

impl Window {
    pub fn new(config: WindowConfig) -> Self {
        Self {
            config,
            segments: VecDeque::new(),
            inits: Vec::new(),
            discontinuities_dropped: 0,
            next_msn: 0,
            target_s: config.segment_ms.div_ceil(1000).max(1),
        }
    }

    pub fn apply(&mut self, output: Output) {
        match output {
            Output::Init { id, bytes } => self.inits.push((id, bytes)),
            Output::SegmentStarted { msn, init, discontinuity, wall, .. } => {
                self.next_msn = msn + 1;
                self.segments.push_back(Segment { msn, init, discontinuity, wall, complete: None, parts: Vec::new() });
            }
            Output::Part { msn, duration_ms, independent, bytes, .. } => {
                if let Some(segment) = self.segments.back_mut().filter(|s| s.msn == msn) {
                    segment.parts.push(Part { duration_ms, independent, bytes });
                }
            }
            Output::SegmentEnded { msn, duration_ms, bytes } => {
                if let Some(segment) = self.segments.back_mut().filter(|s| s.msn == msn) {
                    segment.complete = Some((duration_ms, bytes));
                    self.target_s = self.target_s.max((duration_ms + 500) / 1000);
                }
                let mut complete = self.segments.iter().filter(|s| s.complete.is_some()).count();
                while complete > self.config.window + KEPT_AFTER_WINDOW {
                    complete -= 1;
                    if self.segments.pop_front().is_some_and(|s| s.discontinuity) {
                        self.discontinuities_dropped += 1;
                    }
                }
                let used: Vec<u64> = self.segments.iter().map(|s| s.init).collect();
                self.inits.retain(|(id, _)| used.contains(id));
                // Parts of older segments are no longer listed, nor served.
                for segment in self.segments.iter_mut().take(complete.saturating_sub(SEGMENTS_WITH_PARTS)) {
                    segment.parts = Vec::new();
                }
            }
        }
    }

    /// Drops every segment (nobody is watching). The init segments stay, for the segments
    /// that follow may use them; numbering and the discontinuity count go on.
    pub fn clear(&mut self) {
        self.discontinuities_dropped += self.segments.iter().filter(|s| s.discontinuity).count() as u64;
        self.segments.clear();
    }

    /// The number the next segment will get.
    pub fn next_msn(&self) -> u64 {
        self.next_msn
    }

    pub fn target_duration_s(&self) -> u64 {
        self.target_s
    }

    /// The newest complete segment's number.
    pub fn last_complete(&self) -> Option<u64> {
        self.segments.iter().rev().find(|s| s.complete.is_some()).map(|s| s.msn)
    }

    /// Whether the playlist holds segment `msn` complete or, with `part`, that part of it.
    /// A part past the end of a segment is the next segment's first (RFC 8216bis 6.2.5.2).
    pub fn has(&self, msn: u64, part: Option<usize>) -> bool {
        let segment = self.segments.iter().find(|s| s.msn == msn);
        match part {
            None => segment.is_some_and(|s| s.complete.is_some()) || self.segments.iter().any(|s| s.msn > msn),
            Some(part) => {
                segment.is_some_and(|s| s.parts.len() > part) || (self.has(msn, None) && self.has(msn + 1, Some(0)))
            }
        }
    }

    /// The part a player is hinted to ask for next (LL-HLS preload hint).
    pub fn next_part(&self) -> Option<(u64, usize)> {
        self.segments.back().filter(|s| s.complete.is_none()).map(|s| (s.msn, s.parts.len()))
    }

    /// The media playlist. Until a segment is complete it lists none: players reload it, as
    /// they would a live playlist that has not grown yet.
    pub fn render(&self) -> String {
        let complete = self.segments.iter().filter(|s| s.complete.is_some()).count();
        let hidden = complete.saturating_sub(self.config.window);
        let listed = self.segments.iter().skip(hidden);
        let hidden_discontinuities = self.segments.iter().take(hidden).filter(|s| s.discontinuity).count() as u64;
        let ll = self.config.part_target_ms;
        let mut out = String::with_capacity(1024);
        out.push_str("#EXTM3U\n");
        let _ = writeln!(out, "#EXT-X-VERSION:{}", if ll.is_some() { 9 } else { 7 });
        let _ = writeln!(out, "#EXT-X-TARGETDURATION:{}", self.target_s);
        if let Some(part_ms) = ll {
            let _ = writeln!(out, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={}", seconds(3 * part_ms));
            let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={}", seconds(part_ms));
        }
        let first = self.segments.get(hidden).map_or(self.next_msn, |s| s.msn);
        let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first}");
        let _ =
            writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{}", self.discontinuities_dropped + hidden_discontinuities);
        out.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        let mut init = None;
        for segment in listed {
            if segment.complete.is_none() && ll.is_none() {
                break;
            }
            if segment.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if init != Some(segment.init) {
                init = Some(segment.init);
                let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", self.name(File::Init(segment.init)));
            }
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{}", date_time(segment.wall));
            if ll.is_some() {
                for (i, part) in segment.parts.iter().enumerate() {
                    let independent = if part.independent { ",INDEPENDENT=YES" } else { "" };
                    let duration = seconds(part.duration_ms);
                    let uri = self.name(File::Part(segment.msn, i));
                    let _ = writeln!(out, "#EXT-X-PART:DURATION={duration},URI=\"{uri}\"{independent}");
                }
            }
            match &segment.complete {
                Some((duration_ms, _)) => {
                    let _ =
                        writeln!(out, "#EXTINF:{},\n{}", seconds(*duration_ms), self.name(File::Segment(segment.msn)));
                }
                None => {
                    let hint = self.name(File::Part(segment.msn, segment.parts.len()));
                    let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"");
                }
            }
        }
        out
    }
}

/// A file of the window, as named under `/hls/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    Init(u64),
    Segment(u64),
    Part(u64, usize),
}

impl Window {
    pub fn name(&self, file: File) -> String {
        let run = self.config.run;
        match file {
            File::Init(id) => format!("{run:x}-init-{id}.mp4"),
            File::Segment(msn) => format!("{run:x}-{msn}.m4s"),
            File::Part(msn, index) => format!("{run:x}-{msn}.{index}.m4s"),
        }
    }

    /// The file `name` stands for, if it is one of this run's names.
    pub fn parse_name(&self, name: &str) -> Option<File> {
        let (run, rest) = name.split_once('-')?;
        if u64::from_str_radix(run, 16).ok()? != self.config.run {
            return None;
        }
        if let Some(id) = rest.strip_prefix("init-").and_then(|r| r.strip_suffix(".mp4")) {
            return Some(File::Init(id.parse().ok()?));
        }
        let stem = rest.strip_suffix(".m4s")?;
        Some(match stem.split_once('.') {
            Some((msn, part)) => File::Part(msn.parse().ok()?, part.parse().ok()?),
            None => File::Segment(stem.parse().ok()?),
        })
    }

    /// The bytes of `file`, while the window holds it.
    pub fn get(&self, file: File) -> Option<&Bytes> {
        match file {
            File::Init(id) => self.inits.iter().find(|(i, _)| *i == id).map(|(_, b)| b),
            File::Segment(msn) => {
                self.segments.iter().find(|s| s.msn == msn).and_then(|s| s.complete.as_ref()).map(|(_, b)| b)
            }
            File::Part(msn, index) => {
                self.segments.iter().find(|s| s.msn == msn).and_then(|s| s.parts.get(index)).map(|p| &p.bytes)
            }
        }
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// ISO 8601 with milliseconds, UTC.
fn date_time(at: SystemTime) -> String {
    let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let (secs, millis) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let (y, m, d) = crate::calendar::civil_from_days(secs.div_euclid(86_400));
    let day = secs.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", day / 3600, day / 60 % 60, day % 60)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn window(config: WindowConfig, segments: &[(u64, bool, usize)]) -> Window {
        let mut window = Window::new(config);
        let wall = UNIX_EPOCH + Duration::from_millis(1_764_547_200_250);
        let mut last_init = None;
        for (msn, &(init, discontinuity, parts)) in segments.iter().enumerate() {
            let msn = msn as u64;
            if last_init != Some(init) {
                window.apply(Output::Init { id: init, bytes: Bytes::from_static(b"init") });
                last_init = Some(init);
            }
            window.apply(Output::SegmentStarted { msn, init, discontinuity, wall, start_ms: msn * 2000 });
            for index in 0..parts {
                let bytes = Bytes::from_static(b"part");
                window.apply(Output::Part {
                    msn,
                    index: index as u32,
                    duration_ms: 400,
                    independent: index == 0,
                    bytes,
                });
            }
            window.apply(Output::SegmentEnded { msn, duration_ms: 2000, bytes: Bytes::from_static(b"segment") });
        }
        window
    }

    const PLAIN: WindowConfig = WindowConfig { window: 3, segment_ms: 2000, part_target_ms: None, run: 0xab };

    #[test]
    fn the_playlist_slides_and_counts_what_left() {
        let w =
            window(PLAIN, &[(0, false, 0), (0, false, 0), (1, true, 0), (1, false, 0), (1, false, 0), (1, false, 0)]);
        let playlist = w.render();
        assert_eq!(
            playlist,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"ab-init-1.mp4\"\n#EXT-X-PROGRAM-DATE-TIME:2025-12-01T00:00:00.250Z\n#EXTINF:2.000,\nab-3.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-12-01T00:00:00.250Z\n#EXTINF:2.000,\nab-4.m4s\n\
             #EXT-X-PROGRAM-DATE-TIME:2025-12-01T00:00:00.250Z\n#EXTINF:2.000,\nab-5.m4s\n"
        );
        assert!(w.get(File::Segment(1)).is_some(), "kept a little after leaving the playlist");
        assert!(w.get(File::Segment(0)).is_none(), "then gone");
        assert!(w.get(File::Init(0)).is_some() && w.get(File::Init(1)).is_some());
    }

    #[test]
    fn a_discontinuity_in_the_window_is_tagged_before_its_map() {
        let w = window(PLAIN, &[(0, false, 0), (0, false, 0), (1, true, 0)]);
        let playlist = w.render();
        assert!(playlist.contains("ab-1.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"ab-init-1.mp4\"\n"), "{playlist}");
        assert!(playlist.ends_with("ab-2.m4s\n"));
        assert!(playlist.contains("#EXT-X-DISCONTINUITY-SEQUENCE:0\n"));
    }

    #[test]
    fn low_latency_lists_recent_parts_and_hints_the_next() {
        let config = WindowConfig { window: 6, segment_ms: 2000, part_target_ms: Some(500), run: 1 };
        let mut w = window(config, &[(0, false, 5), (0, false, 5), (0, false, 5)]);
        let wall = UNIX_EPOCH;
        w.apply(Output::SegmentStarted { msn: 3, init: 0, discontinuity: false, wall, start_ms: 6000 });
        let bytes = Bytes::from_static(b"p");
        w.apply(Output::Part { msn: 3, index: 0, duration_ms: 400, independent: true, bytes });
        let playlist = w.render();
        assert!(playlist.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500\n"));
        assert!(playlist.contains("#EXT-X-PART-INF:PART-TARGET=0.500\n"));
        assert!(!playlist.contains("URI=\"1-0.0.m4s\""), "old segments' parts are not listed");
        assert!(playlist.contains("#EXT-X-PART:DURATION=0.400,URI=\"1-1.0.m4s\",INDEPENDENT=YES\n"));
        assert!(playlist.ends_with(
            "#EXT-X-PART:DURATION=0.400,URI=\"1-3.0.m4s\",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1-3.1.m4s\"\n"
        ));
        assert!(w.has(3, Some(0)) && !w.has(3, Some(1)) && !w.has(3, None) && w.has(2, None));
        assert!(w.has(2, Some(5)), "past the end of segment 2: the first part of 3");
        assert!(!w.has(3, Some(1)) && !w.has(4, Some(0)));
        assert_eq!(w.next_part(), Some((3, 1)));
        assert!(w.get(File::Part(0, 0)).is_none() && w.get(File::Part(3, 0)).is_some());
        assert_eq!(w.parse_name("1-3.0.m4s"), Some(File::Part(3, 0)));
        assert_eq!(w.parse_name("1-init-0.mp4"), Some(File::Init(0)));
        assert_eq!(w.parse_name("1-2.m4s"), Some(File::Segment(2)));
        assert_eq!(w.parse_name("2-2.m4s"), None, "another run's segment");
        assert_eq!(w.parse_name("1-2.m4s.m4s"), None);
    }

    #[test]
    fn before_the_first_segment_the_playlist_lists_none() {
        let mut w = Window::new(PLAIN);
        w.apply(Output::Init { id: 0, bytes: Bytes::new() });
        w.apply(Output::SegmentStarted { msn: 0, init: 0, discontinuity: false, wall: UNIX_EPOCH, start_ms: 0 });
        let playlist = w.render();
        assert!(
            playlist
                .ends_with("#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n")
        );
    }

    #[test]
    fn a_cleared_window_lists_none_and_numbering_goes_on() {
        let mut w = window(PLAIN, &[(0, false, 0), (0, true, 0), (0, false, 0)]);
        w.clear();
        assert_eq!(w.last_complete(), None);
        assert!(w.get(File::Segment(2)).is_none(), "the segments' memory is let go");
        assert!(
            w.render()
                .ends_with("#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-INDEPENDENT-SEGMENTS\n"),
            "never back to a number a player or a cache has seen"
        );
        w.apply(Output::SegmentStarted { msn: 3, init: 0, discontinuity: true, wall: UNIX_EPOCH, start_ms: 0 });
        w.apply(Output::SegmentEnded { msn: 3, duration_ms: 2000, bytes: Bytes::from_static(b"segment") });
        let playlist = w.render();
        assert!(playlist.contains("#EXT-X-MEDIA-SEQUENCE:3\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{playlist}");
        assert!(playlist.contains("#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"ab-init-0.mp4\"\n"), "{playlist}");
        assert!(w.get(File::Init(0)).is_some(), "the init segment in use stays");
    }

    #[test]
    fn long_segments_raise_the_target_duration() {
        let mut w = window(PLAIN, &[(0, false, 0)]);
        w.apply(Output::SegmentStarted { msn: 1, init: 0, discontinuity: false, wall: UNIX_EPOCH, start_ms: 2000 });
        w.apply(Output::SegmentEnded { msn: 1, duration_ms: 4400, bytes: Bytes::new() });
        assert!(w.render().contains("#EXT-X-TARGETDURATION:4\n"));
    }
}
