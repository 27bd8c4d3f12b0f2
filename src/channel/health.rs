//! Warm standby: checks a publisher's stream before it goes on air, so problems are found
//! by the organisers, not by the viewers.

use serde::Serialize;

use crate::channel::Difference;
use crate::media::stats::StatsSnapshot;

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

/// Checks a stream's statistics against the basics, and adds its differences from the
/// channel profile.
pub fn check(stats: &StatsSnapshot, differences: &[Difference]) -> Health {
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
    // Differences from the channel profile are problems too: the DJ can fix them before
    // going on air.
    problems.extend(differences.iter().map(|d| d.message.clone()));
    Health { ok: problems.is_empty(), problems }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelProfile, StreamProfile, differences};
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
        let health = check(&fixture_stats(), &[]);
        assert_eq!(health, Health { ok: true, problems: vec![] });
    }

    #[test]
    fn differences_from_the_channel_profile_are_flagged() {
        let stats = fixture_stats();
        let diffs = differences(&ChannelProfile::default(), &StreamProfile::from_stats(&stats, None));
        let health = check(&stats, &diffs);
        assert!(!health.ok);
        assert_eq!(
            health.problems,
            ["resolution 320x180, channel is 1280x720", "sample rate 44.1 kHz, channel is 48 kHz"]
        );
    }

    #[test]
    fn long_gops_and_missing_tracks_are_flagged() {
        let mut stats = fixture_stats();
        stats.keyframe_interval_ms = Some(6000);
        stats.audio = None;
        let health = check(&stats, &[]);
        assert_eq!(health.problems, ["no audio", "keyframe interval 6.0 s (at most 4 s)"]);
    }
}
