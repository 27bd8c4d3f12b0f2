//! Decoder configuration records from video sequence headers: AVCDecoderConfigurationRecord
//! (with its SPS), hvcC (with its SPS), av1C and vpcC. The first byte picks the codec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motherstream_media::media::codec::{VideoCodec, VideoConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&which, record)) = data.split_first() else { return };
    let codec = [VideoCodec::Avc, VideoCodec::Hevc, VideoCodec::Av1, VideoCodec::Vp9][usize::from(which % 4)];
    if let Ok(config) = VideoConfig::parse(codec, record) {
        assert_eq!(config.codec, codec);
        assert_eq!(config.width.is_some(), config.height.is_some());
        let _ = (config.profile_name(), config.level_name());
    }
});
