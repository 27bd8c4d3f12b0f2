//! Warm standby: checks a publisher's stream before it goes on air, so problems are found
//! by the organisers, not by the viewers.

use serde::Serialize;

use crate::channel::Difference;
use crate::media::stats::StatsSnapshot;

/// Longest keyframe interval that still switches promptly (platforms ask for ≤ 4 s).
const MAX_KEYFRAME_INTERVAL_MS: u32 = 4000;
/// The keyframe interval the fix asks for: what the platforms recommend.
const ADVISED_KEYFRAME_SECONDS: u32 = 2;
/// Media older than this means the stream is not advancing.
const MAX_IDLE_MS: u64 = 3000;
/// Give a fresh publisher this long before judging it.
const WARM_UP_MS: u64 = 3000;
/// More than the platforms take (YouTube and Twitch ingest at most about 6 Mbit/s at 1080p).
const MAX_BITRATE_BPS: u64 = 8_000_000;
/// Bits per pixel and frame below which a picture with any motion turns to blocks (720p30 at
/// about 0.55 Mbit/s; H.264 streams that look fine are 0.05–0.1).
const MIN_BITS_PER_PIXEL: f64 = 0.02;
/// A measured frame rate below this share of the channel's means OBS is dropping frames.
const MIN_FPS_SHARE: f64 = 0.8;

/// The verdict on one publisher's stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Health {
    /// True when no problem was found.
    pub ok: bool,
    /// Every problem in a few words, the stream checks first, then the differences from
    /// the channel profile, e.g. "Keyframe interval is 8 s".
    pub problems: Vec<String>,
    /// The stream checks that failed, each with the OBS setting that fixes it (differences
    /// from the profile carry their own fix, see [`Difference`]).
    pub advice: Vec<Advice>,
}

/// One thing wrong with a stream, in plain words, and what to change in OBS.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Advice {
    /// `video`, `audio`, `arriving`, `keyframe_interval`, `bitrate`, `frame_rate` or
    /// `timestamps`.
    pub check: &'static str,
    /// "Keyframe interval is 8 s".
    pub problem: String,
    /// "OBS Settings → Output → Keyframe Interval → 2 (Output Mode: Advanced)".
    pub fix: String,
}

/// Checks a stream's statistics against the basics (`profile_fps`: the channel's frame
/// rate), and adds its differences from the channel profile.
pub fn check(stats: &StatsSnapshot, differences: &[Difference], profile_fps: f64) -> Health {
    let advice = stream_advice(stats, differences, profile_fps);
    // Differences from the channel profile are problems too: the DJ can fix them before
    // going on air.
    let problems: Vec<String> =
        advice.iter().map(|a| a.problem.clone()).chain(differences.iter().map(|d| d.message.clone())).collect();
    Health { ok: problems.is_empty(), problems, advice }
}

fn stream_advice(stats: &StatsSnapshot, differences: &[Difference], profile_fps: f64) -> Vec<Advice> {
    let mut advice = Vec::new();
    let mut say = |check, problem: String, fix: &str| advice.push(Advice { check, problem, fix: fix.to_owned() });
    let warmed_up = stats.uptime_ms >= WARM_UP_MS;
    if warmed_up {
        if stats.video.is_none() {
            say(
                "video",
                "No picture is arriving".to_owned(),
                "add a source to the scene you stream, and check OBS Settings → Output → Video Encoder",
            );
        }
        if stats.audio.is_none() {
            say(
                "audio",
                "No sound is arriving".to_owned(),
                "OBS Settings → Audio → Desktop Audio or Mic/Auxiliary Audio → your device (and unmute it in the mixer)",
            );
        }
        if stats.idle_ms.is_none_or(|idle| idle > MAX_IDLE_MS) {
            say(
                "arriving",
                "Your stream has stopped sending".to_owned(),
                "check your connection and OBS's status bar for dropped frames, then stop and start streaming",
            );
        }
    }
    if let Some(interval) = stats.keyframe_interval_ms.filter(|i| *i > MAX_KEYFRAME_INTERVAL_MS) {
        say(
            "keyframe_interval",
            format!("Keyframe interval is {} s", seconds(interval)),
            &format!("OBS Settings → Output → Keyframe Interval → {ADVISED_KEYFRAME_SECONDS} (Output Mode: Advanced)"),
        );
    }
    if warmed_up && stats.bitrate_bps > MAX_BITRATE_BPS {
        say(
            "bitrate",
            format!("Bitrate is {}, more than the platforms take", rate(stats.bitrate_bps)),
            "OBS Settings → Output → Video Bitrate → 6000 Kbps or less",
        );
    } else if warmed_up && bits_per_pixel(stats).is_some_and(|bpp| bpp < MIN_BITS_PER_PIXEL) {
        say(
            "bitrate",
            format!("Bitrate is {}: the picture will be blocky", rate(stats.bitrate_bps)),
            "OBS Settings → Output → Video Bitrate → 2500 Kbps or more, Rate Control → CBR",
        );
    }
    // A frame rate that differs as declared is a difference from the profile, fixed there;
    // here, a stream declared right that delivers fewer frames (an overloaded encoder).
    let declared_differently = differences.iter().any(|d| d.setting == "frame_rate");
    if let Some(fps) =
        stats.video_fps.filter(|fps| warmed_up && !declared_differently && *fps < profile_fps * MIN_FPS_SHARE)
    {
        say(
            "frame_rate",
            format!("Frame rate is {fps:.0} fps of {profile_fps:.0}: OBS is dropping frames"),
            "lower OBS Settings → Video → Output (Scaled) Resolution or Output → Encoder Preset, or use a hardware encoder",
        );
    }
    if stats.timestamp_regressions > 0 {
        say(
            "timestamps",
            format!("Timestamps went backwards {} times", stats.timestamp_regressions),
            "stop and start streaming in OBS",
        );
    }
    advice
}

/// Video bits per pixel and frame, when size and frame rate are known.
fn bits_per_pixel(stats: &StatsSnapshot) -> Option<f64> {
    let video = stats.video.as_ref()?;
    let pixels = f64::from(video.width?) * f64::from(video.height?) * stats.video_fps.filter(|f| *f > 0.0)?;
    (pixels > 0.0).then(|| stats.bitrate_bps as f64 / pixels)
}

/// `8000` → `8`, `6500` → `6.5`.
fn seconds(ms: u32) -> String {
    let tenths = (ms + 50) / 100;
    if tenths.is_multiple_of(10) { format!("{}", tenths / 10) } else { format!("{}.{}", tenths / 10, tenths % 10) }
}

/// `12_400_000` → `12.4 Mbit/s`, `30_000` → `30 kbit/s`.
fn rate(bps: u64) -> String {
    if bps >= 1_000_000 { format!("{:.1} Mbit/s", bps as f64 / 1e6) } else { format!("{} kbit/s", bps / 1000) }
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
        let health = check(&fixture_stats(), &[], 30.0);
        assert_eq!(health, Health { ok: true, problems: vec![], advice: vec![] });
    }

    #[test]
    fn differences_from_the_channel_profile_are_flagged() {
        let stats = fixture_stats();
        let diffs = differences(&ChannelProfile::default(), &StreamProfile::from_stats(&stats, None));
        let health = check(&stats, &diffs, 30.0);
        assert!(!health.ok);
        assert_eq!(
            health.problems,
            ["resolution 320x180, channel is 1280x720", "sample rate 44.1 kHz, channel is 48 kHz"]
        );
    }

    #[test]
    fn long_gops_and_missing_tracks_are_flagged_with_their_obs_fix() {
        let mut stats = fixture_stats();
        stats.keyframe_interval_ms = Some(8000);
        stats.audio = None;
        let health = check(&stats, &[], 30.0);
        assert_eq!(health.problems, ["No sound is arriving", "Keyframe interval is 8 s"]);
        let keyframes = &health.advice[1];
        assert_eq!(keyframes.check, "keyframe_interval");
        assert_eq!(keyframes.fix, "OBS Settings → Output → Keyframe Interval → 2 (Output Mode: Advanced)");
        stats.keyframe_interval_ms = Some(6470);
        assert_eq!(check(&stats, &[], 30.0).advice[1].problem, "Keyframe interval is 6.5 s");
    }

    #[test]
    fn bitrate_and_dropped_frames_are_flagged() {
        let mut stats = fixture_stats();
        stats.bitrate_bps = 12_400_000;
        let health = check(&stats, &[], 30.0);
        assert_eq!(health.problems, ["Bitrate is 12.4 Mbit/s, more than the platforms take"]);
        assert_eq!(health.advice[0].fix, "OBS Settings → Output → Video Bitrate → 6000 Kbps or less");
        // 320x180 at 30 fps: fine at 0.2 Mbit/s, blocks at 0.03.
        stats.bitrate_bps = 200_000;
        assert!(check(&stats, &[], 30.0).ok);
        stats.bitrate_bps = 30_000;
        assert_eq!(check(&stats, &[], 30.0).problems, ["Bitrate is 30 kbit/s: the picture will be blocky"]);

        let mut stats = fixture_stats();
        stats.video_fps = Some(18.2);
        assert_eq!(check(&stats, &[], 30.0).problems, ["Frame rate is 18 fps of 30: OBS is dropping frames"]);
        // Declared at another rate: that is the profile difference's to fix, not said twice.
        let declared = differences(
            &ChannelProfile::default(),
            &StreamProfile { fps: Some(18.0), ..StreamProfile::from_stats(&stats, None) },
        );
        assert!(check(&stats, &declared, 30.0).advice.iter().all(|a| a.check != "frame_rate"));
    }

    #[test]
    fn a_fresh_stream_is_given_time() {
        let mut stats = fixture_stats();
        stats.uptime_ms = 1000;
        stats.audio = None;
        stats.bitrate_bps = 0;
        assert!(check(&stats, &[], 30.0).ok);
    }
}
