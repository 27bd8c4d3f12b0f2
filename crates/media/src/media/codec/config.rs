//! Decoder configurations carried by sequence-header tags: what they say about the
//! stream (codec profile, level, picture size, sample rate, channels).

use serde::Serialize;

use super::bits::ByteReader;
use super::{AudioCodec, AudioSpecificConfig, CodecError, VideoCodec, avc, hevc};

/// Picture size in luma samples after cropping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PictureSize {
    pub(crate) width: u32,
    pub(crate) height: u32,
}

impl PictureSize {
    /// Takes a size computed with checked arithmetic (`None` when cropping underflowed)
    /// and rejects it unless it is a non-empty picture that fits in u32.
    pub(super) fn from_cropped(width: Option<u64>, height: Option<u64>) -> Result<Self, CodecError> {
        let fit = |v: Option<u64>| {
            v.filter(|v| *v > 0).and_then(|v| u32::try_from(v).ok()).ok_or(CodecError::Invalid("picture size"))
        };
        Ok(PictureSize { width: fit(width)?, height: fit(height)? })
    }
}

/// What a video decoder configuration record says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VideoConfig {
    pub codec: VideoCodec,
    /// Codec profile number: AVC `profile_idc`, HEVC `general_profile_idc`, AV1
    /// `seq_profile`, VP9 profile.
    pub profile: u8,
    /// Codec level number: AVC `level_idc` (31 = 3.1), HEVC `general_level_idc`
    /// (93 = 3.1), AV1 `seq_level_idx`, VP9 level (31 = 3.1).
    pub level: u8,
    /// From the first SPS, when the record has one that parses (AVC and HEVC only).
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl VideoConfig {
    /// Parses the body of a video sequence-header tag for `codec`.
    pub fn parse(codec: VideoCodec, record: &[u8]) -> Result<Self, CodecError> {
        match codec {
            VideoCodec::Avc => avc::parse_config(record),
            VideoCodec::Hevc => hevc::parse_config(record),
            VideoCodec::Av1 => parse_av1_config(record),
            VideoCodec::Vp9 => parse_vp9_config(record),
            _ => Err(CodecError::Unsupported("video codec configuration")),
        }
    }

    fn without_size(codec: VideoCodec, profile: u8, level: u8) -> Self {
        VideoConfig { codec, profile, level, width: None, height: None }
    }

    pub fn profile_name(&self) -> Option<&'static str> {
        let name = match (self.codec, self.profile) {
            (VideoCodec::Avc, 66) => "Baseline",
            (VideoCodec::Avc, 77) => "Main",
            (VideoCodec::Avc, 88) => "Extended",
            (VideoCodec::Avc, 100) => "High",
            (VideoCodec::Avc, 110) => "High 10",
            (VideoCodec::Avc, 122) => "High 4:2:2",
            (VideoCodec::Avc, 244) => "High 4:4:4 Predictive",
            (VideoCodec::Avc, 44) => "CAVLC 4:4:4 Intra",
            (VideoCodec::Hevc, 1) => "Main",
            (VideoCodec::Hevc, 2) => "Main 10",
            (VideoCodec::Hevc, 3) => "Main Still Picture",
            (VideoCodec::Hevc, 4) => "Range Extensions",
            (VideoCodec::Av1, 0) => "Main",
            (VideoCodec::Av1, 1) => "High",
            (VideoCodec::Av1, 2) => "Professional",
            (VideoCodec::Vp9, 0) => "Profile 0",
            (VideoCodec::Vp9, 1) => "Profile 1",
            (VideoCodec::Vp9, 2) => "Profile 2",
            (VideoCodec::Vp9, 3) => "Profile 3",
            _ => return None,
        };
        Some(name)
    }

    /// The level as people write it, e.g. "3.1".
    pub fn level_name(&self) -> Option<String> {
        let level = u32::from(self.level);
        match self.codec {
            VideoCodec::Avc | VideoCodec::Vp9 => Some(format!("{}.{}", level / 10, level % 10)),
            VideoCodec::Hevc => Some(format!("{}.{}", level / 30, level % 30 / 3)),
            // seq_level_idx 31 means "no level constraint".
            VideoCodec::Av1 if level < 31 => Some(format!("{}.{}", 2 + level / 4, level % 4)),
            _ => None,
        }
    }
}

/// AV1CodecConfigurationRecord (AV1-ISOBMFF §2.3): marker/version, then
/// `seq_profile` (3 bits) and `seq_level_idx_0` (5 bits).
fn parse_av1_config(record: &[u8]) -> Result<VideoConfig, CodecError> {
    let mut r = ByteReader::new(record);
    let marker_version = r.u8("av1C")?;
    if marker_version != 0x81 {
        return Err(CodecError::Invalid("av1C marker/version"));
    }
    let byte = r.u8("av1C profile/level")?;
    Ok(VideoConfig::without_size(VideoCodec::Av1, byte >> 5, byte & 0x1F))
}

/// VPCodecConfigurationRecord as a full box body (VP-ISOBMFF): version and flags,
/// then profile and level.
fn parse_vp9_config(record: &[u8]) -> Result<VideoConfig, CodecError> {
    let mut r = ByteReader::new(record);
    r.skip(4, "vpcC version/flags")?;
    let profile = r.u8("vpcC profile")?;
    let level = r.u8("vpcC level")?;
    Ok(VideoConfig::without_size(VideoCodec::Vp9, profile, level))
}

/// What an audio sequence header says about the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AudioConfig {
    pub codec: AudioCodec,
    /// Output sample rate in Hz.
    pub sample_rate: u32,
    /// `None` when the configuration defers the layout elsewhere (AAC's PCE).
    pub channels: Option<u8>,
}

impl AudioConfig {
    /// Parses the body of an audio sequence-header tag for `codec`.
    pub fn parse(codec: AudioCodec, body: &[u8]) -> Result<Self, CodecError> {
        match codec {
            AudioCodec::Aac => {
                let asc = AudioSpecificConfig::parse(body)?;
                Ok(AudioConfig { codec, sample_rate: asc.sample_rate, channels: asc.channels })
            }
            AudioCodec::Opus => parse_opus_head(body),
            _ => Err(CodecError::Unsupported("audio codec configuration")),
        }
    }
}

/// OpusHead (RFC 7845 §5.1): "OpusHead", version, channel count, ... Opus always
/// decodes at 48 kHz; the input rate stored in the header is informational only.
fn parse_opus_head(body: &[u8]) -> Result<AudioConfig, CodecError> {
    let mut r = ByteReader::new(body);
    if r.take(8, "OpusHead")? != b"OpusHead" {
        return Err(CodecError::Invalid("OpusHead magic"));
    }
    r.u8("OpusHead version")?;
    let channels = r.u8("OpusHead channel count")?;
    Ok(AudioConfig { codec: AudioCodec::Opus, sample_rate: 48_000, channels: Some(channels) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn av1_vp9_and_opus_configs() {
        let av1 = VideoConfig::parse(VideoCodec::Av1, &[0x81, 0x08, 0x0c, 0x00]).unwrap();
        assert_eq!((av1.profile, av1.level), (0, 8));
        assert_eq!(av1.profile_name(), Some("Main"));
        assert_eq!(av1.level_name().as_deref(), Some("4.0"));
        assert_eq!(VideoConfig::parse(VideoCodec::Av1, &[0x01, 0x08]), Err(CodecError::Invalid("av1C marker/version")));

        let vp9 = VideoConfig::parse(VideoCodec::Vp9, &[1, 0, 0, 0, 0, 31, 0x82]).unwrap();
        assert_eq!((vp9.profile, vp9.level), (0, 31));
        assert_eq!(vp9.level_name().as_deref(), Some("3.1"));

        assert_eq!(
            VideoConfig::parse(VideoCodec::Legacy(4), &[1]),
            Err(CodecError::Unsupported("video codec configuration"))
        );

        let head = b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00";
        assert_eq!(
            AudioConfig::parse(AudioCodec::Opus, head),
            Ok(AudioConfig { codec: AudioCodec::Opus, sample_rate: 48_000, channels: Some(2) })
        );
        assert_eq!(
            AudioConfig::parse(AudioCodec::Opus, b"OpusTags\x01\x02"),
            Err(CodecError::Invalid("OpusHead magic"))
        );
    }
}
