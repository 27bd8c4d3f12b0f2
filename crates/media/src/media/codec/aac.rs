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

/// What an ADTS header needs from an AudioSpecificConfig, so raw AAC frames can be written
/// as a self-describing `.aac` stream (ISO/IEC 14496-3 §1.A.2) without decoding anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adts {
    /// ADTS `profile`: the core object type minus one (ADTS can only say 1 to 4).
    profile: u8,
    /// The core `samplingFrequencyIndex` (SBR/PS streams are sent as their AAC core with
    /// implicit signalling: decoders find the extension in the frames).
    frequency_index: u8,
    channel_configuration: u8,
}

/// Largest `aac_frame_length` (13 bits), header included.
const ADTS_MAX_FRAME: usize = (1 << 13) - 1;
pub const ADTS_HEADER_LEN: usize = 7;

impl Adts {
    pub fn from_config(data: &[u8]) -> Result<Self, CodecError> {
        let mut r = BitReader::new(data, "AudioSpecificConfig");
        let mut object_type = read_object_type(&mut r)?;
        let frequency_index = r.bits(4)?;
        let channel_configuration = r.bits(4)?;
        if object_type == OBJECT_TYPE_SBR || object_type == OBJECT_TYPE_PS {
            let _extension_rate = read_sample_rate(&mut r)?;
            object_type = read_object_type(&mut r)?;
        }
        if !(1..=4).contains(&object_type) {
            return Err(CodecError::Unsupported("AAC object type in ADTS"));
        }
        if frequency_index as usize >= SAMPLE_RATES.len() {
            return Err(CodecError::Unsupported("AAC sampling frequency in ADTS"));
        }
        if channel_configuration == 0 || channel_configuration > 7 {
            return Err(CodecError::Unsupported("AAC channel configuration in ADTS"));
        }
        Ok(Self {
            profile: object_type - 1,
            frequency_index: frequency_index as u8,
            channel_configuration: channel_configuration as u8,
        })
    }

    /// The header for one raw frame of `payload_len` bytes: no CRC, one raw data block,
    /// buffer fullness "variable rate".
    pub fn header(&self, payload_len: usize) -> Result<[u8; ADTS_HEADER_LEN], CodecError> {
        let len = payload_len + ADTS_HEADER_LEN;
        if len > ADTS_MAX_FRAME {
            return Err(CodecError::Unsupported("AAC frame larger than ADTS allows"));
        }
        let len = len as u16;
        let channels = self.channel_configuration;
        Ok([
            0xFF,
            // Sync word end, MPEG-4, layer 0, protection absent.
            0xF1,
            (self.profile << 6) | (self.frequency_index << 2) | (channels >> 2),
            ((channels & 0b11) << 6) | (len >> 11) as u8,
            (len >> 3) as u8,
            (((len & 0b111) as u8) << 5) | 0x1F,
            0xFC,
        ])
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
    fn adts_headers_carry_the_configs_profile_rate_and_channels() {
        // LC, 44.1 kHz, stereo; a 371-byte frame. Checked field by field against the
        // ADTS layout, then against what ffmpeg writes for such a frame.
        let adts = Adts::from_config(&[0x12, 0x10]).unwrap();
        let h = adts.header(371).unwrap();
        assert_eq!(h[0], 0xFF);
        assert_eq!(h[1], 0xF1, "sync, MPEG-4, layer 0, no CRC");
        assert_eq!(h[2] >> 6, 1, "profile = object type 2 - 1");
        assert_eq!((h[2] >> 2) & 0x0F, 4, "44.1 kHz index");
        assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), 2, "stereo");
        let len = (u16::from(h[3] & 0b11) << 11) | (u16::from(h[4]) << 3) | u16::from(h[5] >> 5);
        assert_eq!(len, 371 + 7, "frame length includes the header");
        assert_eq!(h[5] & 0x1F, 0x1F);
        assert_eq!(h[6], 0xFC, "buffer fullness 0x7FF, one raw data block");
        assert_eq!(h, [0xFF, 0xF1, 0x50, 0x80, 0x2F, 0x5F, 0xFC]);
        // LC, 48 kHz, mono.
        assert_eq!(Adts::from_config(&[0x11, 0x88]).unwrap().header(0).unwrap()[2..4], [0x4C, 0x40]);
        // 5.1 (channel configuration 6) spans the byte boundary.
        let h = Adts::from_config(&[0x11, 0xB0]).unwrap().header(0).unwrap();
        assert_eq!(((h[2] & 1) << 2) | (h[3] >> 6), 6);
    }

    #[test]
    fn adts_sends_he_aac_as_its_core() {
        // 00101 0110 (24 kHz core) 0010 0011 (48 kHz) 00010 (LC core).
        let h = Adts::from_config(&[0x2b, 0x11, 0x88, 0x00]).unwrap().header(10).unwrap();
        assert_eq!(h[2] >> 6, 1, "LC core");
        assert_eq!((h[2] >> 2) & 0x0F, 6, "core rate index (24 kHz)");
    }

    #[test]
    fn adts_refuses_what_it_cannot_say() {
        // Escaped object type 34 (Layer-3).
        assert!(Adts::from_config(&[0xf8, 0x48, 0x40]).is_err());
        // Explicit frequency: ADTS only has the index table.
        assert!(Adts::from_config(&[0x17, 0x80, 0x56, 0x22, 0x10]).is_err());
        // Channel layout in a PCE.
        assert!(Adts::from_config(&[0x11, 0x80]).is_err());
        assert!(Adts::from_config(&[]).is_err());
        let adts = Adts::from_config(&[0x12, 0x10]).unwrap();
        assert!(adts.header(8191 - 7).is_ok());
        assert!(adts.header(8191 - 6).is_err(), "the 13-bit length cannot hold it");
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
