//! The channel profile: the one picture size, frame rate and sound format the program keeps
//! from start to end, whichever DJ is on air.
//!
//! Platform transcoders often fail when a stream changes resolution or sample rate
//! mid-stream, so the channel has a profile (`[channel]` in the configuration). The slate
//! is generated in it at start-up (`slate`), every publisher's stream is compared with it
//! (`profile`: what differs and the OBS setting that fixes it), and a policy decides how an
//! off-profile DJ is aired (`airing`): as sent, covered by the slate, or converted by an
//! ffmpeg subprocess (`transcoder`).

pub mod airing;
pub mod health;
pub mod profile;
pub mod slate;

use serde::{Deserialize, Serialize};

pub use profile::{ChannelProfile, Difference, StreamProfile, differences};

/// What happens to a DJ whose stream differs from the channel profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffProfilePolicy {
    /// Air the stream as sent; the differences are only shown.
    #[default]
    Allow,
    /// Cover the DJ with the slate until their stream matches.
    Slate,
    /// Convert that DJ's stream to the profile with ffmpeg.
    Transcode,
}

impl OffProfilePolicy {
    /// As written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Slate => "slate",
            Self::Transcode => "transcode",
        }
    }
}

/// The resolved `[channel]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelConfig {
    pub profile: ChannelProfile,
    pub off_profile: OffProfilePolicy,
    /// Video bitrate of transcoded streams, in kbit/s.
    pub transcode_video_kbps: u32,
    /// The ffmpeg program run for transcoding.
    pub ffmpeg: String,
}

impl Default for ChannelConfig {
    fn default() -> Self {
        let profile = ChannelProfile::default();
        Self {
            transcode_video_kbps: profile.default_video_kbps(),
            profile,
            off_profile: OffProfilePolicy::Allow,
            ffmpeg: "ffmpeg".to_owned(),
        }
    }
}
