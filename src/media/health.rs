//! Warm standby: checks a publisher's stream before it goes on air, so problems are found
//! by the organisers, not by the viewers.

use serde::Serialize;

use super::stats::StatsSnapshot;
use crate::config::ExpectedProfile;

/// Longest keyframe interval that still switches promptly (platforms ask for ≤ 4 s).
const MAX_KEYFRAME_INTERVAL_MS: u32 = 4000;
/// Media older than this means the stream is not advancing.
const MAX_IDLE_MS: u64 = 3000;
/// Give a fresh publisher this long before judging it.
const WARM_UP_MS: u64 = 3000;

/// The verdict on one publisher's stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    /// True when no problem was found.
    pub ok: bool,
    /// Human-readable problems, e.g. "keyframe interval 6.0 s (at most 4 s)".
    pub problems: Vec<String>,
}

/// Checks a stream's statistics against the basics and the channel's expected profile.
pub fn check(stats: &StatsSnapshot, expected: &ExpectedProfile) -> Health {
    let mut problems = Vec::new();
    if stats.uptime_ms >= WARM_UP_MS {
        if stats.video.is_none() {
            problems.push("no video".to_owned());
        }
        if stats.audio.is_none() {
            problems.push("no audio".to_owned());
        }
        if stats.idle_ms.is_none_or(|idle| idle > MAX_IDLE_MS) {
            problems.push("no media is arriving".to_owned());
        }
    }
    if let Some(interval) = stats.keyframe_interval_ms.filter(|i| *i > MAX_KEYFRAME_INTERVAL_MS) {
        problems.push(format!(
            "keyframe interval {:.1} s (at most {} s)",
            f64::from(interval) / 1000.0,
            MAX_KEYFRAME_INTERVAL_MS / 1000
        ));
    }
    if stats.timestamp_regressions > 0 {
        problems.push(format!("timestamps went backwards {} times", stats.timestamp_regressions));
    }
    if let Some(video) = &stats.video {
        let codec = serde_plain(&video.codec);
        if let Some(want) = &expected.video_codec
            && !codec.eq_ignore_ascii_case(want)
        {
            problems.push(format!("video codec {codec}, expected {want}"));
        }
        if let (Some(w), Some(h)) = (video.width, video.height) {
            let want_w = expected.width.unwrap_or(w);
            let want_h = expected.height.unwrap_or(h);
            if (w, h) != (want_w, want_h) {
                problems.push(format!("resolution {w}x{h}, expected {want_w}x{want_h}"));
            }
        }
    }
    if let (Some(fps), Some(want)) = (stats.video_fps, expected.fps)
        && (fps - want).abs() > want * 0.1
    {
        problems.push(format!("{fps:.1} fps, expected {want}"));
    }
    if let Some(audio) = &stats.audio {
        let codec = serde_plain(&audio.codec);
        if let Some(want) = &expected.audio_codec
            && !codec.eq_ignore_ascii_case(want)
        {
            problems.push(format!("audio codec {codec}, expected {want}"));
        }
        if let (Some(rate), Some(want)) = (audio.sample_rate, expected.sample_rate)
            && rate != want
        {
            problems.push(format!("audio sample rate {rate} Hz, expected {want} Hz"));
        }
    }
    Health { ok: problems.is_empty(), problems }
}

/// A codec's name as it appears in the JSON API (its serde form).
fn serde_plain(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::flv::FlvReader;
    use crate::media::stats::PublisherStats;
    use std::time::{Duration, Instant};

    fn fixture_stats() -> StatsSnapshot {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dj.flv");
        let data = bytes::Bytes::from(std::fs::read(path).unwrap());
        let t0 = Instant::now();
        let mut stats = PublisherStats::new(t0);
        let mut now = t0;
        for tag in FlvReader::new(data).unwrap() {
            let tag = tag.unwrap();
            now = t0 + Duration::from_millis(u64::from(tag.timestamp));
            stats.on_tag(now, &tag);
        }
        stats.snapshot(now)
    }

    #[test]
    fn a_good_stream_passes() {
        let health = check(&fixture_stats(), &ExpectedProfile::default());
        assert_eq!(health, Health { ok: true, problems: vec![] });
    }

    #[test]
    fn profile_differences_are_flagged() {
        let expected = ExpectedProfile {
            video_codec: Some("h264".into()),
            width: Some(1920),
            height: Some(1080),
            fps: Some(30.0),
            audio_codec: Some("aac".into()),
            sample_rate: Some(48000),
        };
        let health = check(&fixture_stats(), &expected);
        assert!(!health.ok);
        assert_eq!(
            health.problems,
            ["resolution 320x180, expected 1920x1080", "audio sample rate 44100 Hz, expected 48000 Hz"]
        );
    }

    #[test]
    fn long_gops_and_missing_tracks_are_flagged() {
        let mut stats = fixture_stats();
        stats.keyframe_interval_ms = Some(6000);
        stats.audio = None;
        let health = check(&stats, &ExpectedProfile::default());
        assert_eq!(health.problems, ["no audio", "keyframe interval 6.0 s (at most 4 s)"]);
    }
}
