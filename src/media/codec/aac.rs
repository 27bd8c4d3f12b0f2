//! AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), the body of an AAC sequence
//! header.

use serde::Serialize;

use super::CodecError;
use super::bits::BitReader;

/// Sampling frequencies by `samplingFrequencyIndex`; 13 and 14 are reserved and 15
/// means an explicit 24-bit frequency follows.
const SAMPLE_RATES: [u32; 13] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
const EXPLICIT_RATE: u32 = 15;
const OBJECT_TYPE_ESCAPE: u32 = 31;
/// Explicitly signalled SBR (HE-AAC) and PS (HE-AACv2).
const OBJECT_TYPE_SBR: u8 = 5;
const OBJECT_TYPE_PS: u8 = 29;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AudioSpecificConfig {
    /// Audio object type: 2 = AAC LC, 5 = HE-AAC (SBR), 29 = HE-AACv2 (PS), ...
    pub object_type: u8,
    /// Output sample rate in Hz; for explicit SBR/PS this is the extension (doubled)
    /// rate a decoder produces, not the core rate.
    pub sample_rate: u32,
    /// `None` when `channelConfiguration` is 0 (layout in a program config element) or
    /// a reserved value.
    pub channels: Option<u8>,
}

impl AudioSpecificConfig {
    pub fn parse(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::new(data, "AudioSpecificConfig");
        let object_type = read_object_type(&mut r)?;
        let mut sample_rate = read_sample_rate(&mut r)?;
        let channels = match r.bits(4)? {
            n @ 1..=6 => Some(n as u8),
            7 | 12 | 14 => Some(8),
            11 => Some(7),
            13 => Some(24),
            _ => None,
        };
        if object_type == OBJECT_TYPE_SBR || object_type == OBJECT_TYPE_PS {
            sample_rate = read_sample_rate(&mut r)?;
        }
        Ok(AudioSpecificConfig { object_type, sample_rate, channels })
    }
}

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let object_type = r.bits(5)?;
    let object_type = if object_type == OBJECT_TYPE_ESCAPE { 32 + r.bits(6)? } else { object_type };
    if object_type == 0 {
        return Err(CodecError::Invalid("AAC audio object type"));
    }
    // At most 32 + 63, so it always fits.
    Ok(object_type as u8)
}

fn read_sample_rate(r: &mut BitReader<'_>) -> Result<u32, CodecError> {
    let index = r.bits(4)?;
    let rate = if index == EXPLICIT_RATE {
        r.bits(24)?
    } else {
        SAMPLE_RATES.get(index as usize).copied().ok_or(CodecError::Invalid("AAC sampling frequency index"))?
    };
    if rate == 0 {
        return Err(CodecError::Invalid("AAC sampling frequency"));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asc(object_type: u8, sample_rate: u32, channels: Option<u8>) -> AudioSpecificConfig {
        AudioSpecificConfig { object_type, sample_rate, channels }
    }

    #[test]
    fn common_lc_configs() {
        // 00010 0100 0001 000: LC, 44.1 kHz, mono (what ffmpeg writes for the fixture).
        assert_eq!(AudioSpecificConfig::parse(&[0x12, 0x08]), Ok(asc(2, 44100, Some(1))));
        // LC, 48 kHz, stereo.
        assert_eq!(AudioSpecificConfig::parse(&[0x11, 0x90]), Ok(asc(2, 48000, Some(2))));
        // LC, 48 kHz, channel configuration 7 is 7.1.
        assert_eq!(AudioSpecificConfig::parse(&[0x11, 0xb8]), Ok(asc(2, 48000, Some(8))));
        // Channel configuration 0: layout in a PCE.
        assert_eq!(AudioSpecificConfig::parse(&[0x11, 0x80]), Ok(asc(2, 48000, None)));
    }

    #[test]
    fn explicit_frequency_escape() {
        // 00010 1111 <24-bit 0x00ac44 = 44100> 0010 ...
        let data = [0x17, 0x80, 0x56, 0x22, 0x10];
        assert_eq!(AudioSpecificConfig::parse(&data), Ok(asc(2, 44100, Some(2))));
        assert_eq!(AudioSpecificConfig::parse(&data[..3]), Err(CodecError::Truncated("AudioSpecificConfig")));
    }

    #[test]
    fn he_aac_reports_the_extension_rate() {
        // 00101 0110 (24 kHz) 0010 0011 (48 kHz) 00010 ...
        let data = [0x2b, 0x11, 0x88, 0x00];
        assert_eq!(AudioSpecificConfig::parse(&data), Ok(asc(5, 48000, Some(2))));
    }

    #[test]
    fn escaped_object_type() {
        // 11111 000010 (=34, Layer-3) 0100 0010 ...
        let data = [0xf8, 0x48, 0x40];
        assert_eq!(AudioSpecificConfig::parse(&data), Ok(asc(34, 44100, Some(2))));
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(AudioSpecificConfig::parse(&[]), Err(CodecError::Truncated("AudioSpecificConfig")));
        // Reserved frequency index 13.
        assert_eq!(AudioSpecificConfig::parse(&[0x16, 0x90]), Err(CodecError::Invalid("AAC sampling frequency index")));
        assert_eq!(AudioSpecificConfig::parse(&[0x00, 0x00]), Err(CodecError::Invalid("AAC audio object type")));
        // Explicit frequency of zero.
        assert_eq!(
            AudioSpecificConfig::parse(&[0x17, 0x80, 0x00, 0x00, 0x10]),
            Err(CodecError::Invalid("AAC sampling frequency"))
        );
    }
}
