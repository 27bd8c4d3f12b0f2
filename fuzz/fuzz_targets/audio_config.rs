//! Audio sequence headers: the AAC AudioSpecificConfig and the OpusHead. The first byte
//! picks the codec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motherstream_media::media::codec::{AudioCodec, AudioConfig, AudioSpecificConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    if which % 2 == 0 {
        let asc = AudioSpecificConfig::parse(body);
        let config = AudioConfig::parse(AudioCodec::Aac, body);
        assert_eq!(asc.is_ok(), config.is_ok());
    } else if let Ok(config) = AudioConfig::parse(AudioCodec::Opus, body) {
        assert_eq!(config.sample_rate, 48_000);
    }
});
