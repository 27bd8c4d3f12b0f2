//! How the channel's off-profile policy airs one publisher: the pure decision.

use std::time::Duration;

use super::OffProfilePolicy;
use super::profile::{Difference, StreamProfile};

/// A publisher whose stream is still not fully known after this long is judged on what is
/// known (a stream without audio, say, never completes its profile).
pub const DECIDE_WITHIN: Duration = Duration::from_secs(4);

/// The decision for one publisher, before any transcoder is involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not known yet whether the stream matches, and the policy needs to know.
    Undecided,
    /// Air the stream as sent.
    Direct,
    /// Air the stream converted to the channel profile.
    Transcode,
    /// Cover the publisher with the slate.
    Cover,
}

/// Decides from what is known of the stream `age` after it started publishing.
pub fn decide(policy: OffProfilePolicy, stream: &StreamProfile, differences: &[Difference], age: Duration) -> Decision {
    if policy == OffProfilePolicy::Allow {
        return Decision::Direct;
    }
    if !differences.is_empty() {
        // A difference known is enough: whatever else turns out, the stream is off profile.
        return match policy {
            OffProfilePolicy::Slate => Decision::Cover,
            _ => Decision::Transcode,
        };
    }
    if stream.complete() || age >= DECIDE_WITHIN { Decision::Direct } else { Decision::Undecided }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::profile::{ChannelProfile, differences};
    use crate::media::codec::{AudioCodec, VideoCodec};

    fn stream(width: u32, fps: Option<f64>) -> StreamProfile {
        StreamProfile {
            video_codec: Some(VideoCodec::Avc),
            width: Some(width),
            height: Some(width * 9 / 16),
            fps,
            audio_codec: Some(AudioCodec::Aac),
            sample_rate: Some(48000),
            channels: Some(2),
        }
    }

    fn run(policy: OffProfilePolicy, stream: &StreamProfile, age_ms: u64) -> Decision {
        let diffs = differences(&ChannelProfile::default(), stream);
        decide(policy, stream, &diffs, Duration::from_millis(age_ms))
    }

    #[test]
    fn allow_airs_everything_at_once() {
        assert_eq!(run(OffProfilePolicy::Allow, &StreamProfile::default(), 0), Decision::Direct);
        assert_eq!(run(OffProfilePolicy::Allow, &stream(1920, Some(60.0)), 0), Decision::Direct);
    }

    #[test]
    fn matching_streams_are_aired_directly_once_known() {
        for policy in [OffProfilePolicy::Slate, OffProfilePolicy::Transcode] {
            assert_eq!(run(policy, &StreamProfile::default(), 100), Decision::Undecided);
            assert_eq!(run(policy, &stream(1280, None), 900), Decision::Undecided, "frame rate not known yet");
            assert_eq!(run(policy, &stream(1280, Some(30.0)), 900), Decision::Direct);
            assert_eq!(run(policy, &stream(1280, None), 4000), Decision::Direct, "judged on what is known");
        }
    }

    #[test]
    fn off_profile_streams_are_covered_or_transcoded_as_soon_as_one_difference_is_known() {
        assert_eq!(run(OffProfilePolicy::Slate, &stream(1920, None), 0), Decision::Cover);
        assert_eq!(run(OffProfilePolicy::Transcode, &stream(1920, None), 0), Decision::Transcode);
        assert_eq!(run(OffProfilePolicy::Transcode, &stream(1280, Some(60.0)), 0), Decision::Transcode);
    }
}
