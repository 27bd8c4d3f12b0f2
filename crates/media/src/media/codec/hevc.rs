//! H.265: the HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3) and the part of
//! the sequence parameter set (ITU-T H.265 §7.3.2.2) that gives the picture size.

use super::bits::{BitReader, ByteReader};
use super::config::PictureSize;
use super::{CodecError, VideoCodec, VideoConfig};

const NAL_TYPE_SPS: u8 = 33;

/// Parses the record; the picture size comes from its first SPS and is left unknown
/// when that SPS is missing or unparseable, since profile and level are still useful.
///
/// `configurationVersion` is not checked: early encoders wrote 0 instead of 1 and
/// the layout is the same.
pub(super) fn parse_config(record: &[u8]) -> Result<VideoConfig, CodecError> {
    let mut r = ByteReader::new(record);
    r.skip(1, "HEVC configuration version")?;
    // general_profile_space (2) | general_tier_flag (1) | general_profile_idc (5)
    let profile = r.u8("HEVC profile")? & 0x1F;
    r.skip(4 + 6, "HEVC compatibility and constraint flags")?;
    let level = r.u8("HEVC level")?;
    // Segmentation, parallelism, chroma, bit depths, frame rate, layering.
    r.skip(9, "HEVC configuration")?;
    let size = first_sps(&mut r)?.and_then(|sps| parse_sps(sps).ok());
    Ok(VideoConfig {
        codec: VideoCodec::Hevc,
        profile,
        level,
        width: size.map(|s| s.width),
        height: size.map(|s| s.height),
    })
}

/// Walks the NAL unit arrays up to the first SPS; arrays after it are not read.
fn first_sps<'a>(r: &mut ByteReader<'a>) -> Result<Option<&'a [u8]>, CodecError> {
    let arrays = r.u8("HEVC NAL array count")?;
    for _ in 0..arrays {
        let nal_type = r.u8("HEVC NAL array type")? & 0x3F;
        let count = r.u16("HEVC NAL count")?;
        for _ in 0..count {
            let len = r.u16("HEVC NAL length")?;
            let nal = r.take(usize::from(len), "HEVC NAL unit")?;
            if nal_type == NAL_TYPE_SPS {
                return Ok(Some(nal));
            }
        }
    }
    Ok(None)
}

/// Reads an SPS NAL unit (2-byte header included) up to the conformance window.
pub(crate) fn parse_sps(nal: &[u8]) -> Result<PictureSize, CodecError> {
    let (header, payload) = nal.split_first_chunk::<2>().ok_or(CodecError::Truncated("HEVC SPS"))?;
    if (header[0] >> 1) & 0x3F != NAL_TYPE_SPS {
        return Err(CodecError::Invalid("HEVC SPS NAL unit type"));
    }
    let mut r = BitReader::rbsp(payload, "HEVC SPS");
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)? as usize;
    r.skip(1)?; // sps_temporal_id_nesting_flag
    skip_profile_tier_level(&mut r, max_sub_layers_minus1)?;
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc > 3 {
        return Err(CodecError::Invalid("HEVC chroma_format_idc"));
    }
    if chroma_format_idc == 3 {
        r.skip(1)?; // separate_colour_plane_flag
    }
    let width = u64::from(r.ue()?);
    let height = u64::from(r.ue()?);
    let mut window = [0u64; 4]; // left, right, top, bottom
    if r.bit()? {
        for offset in &mut window {
            *offset = u64::from(r.ue()?);
        }
    }
    // Window offsets are in chroma sample units (Table 6-1).
    let (sub_width, sub_height) = match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let [left, right, top, bottom] = window;
    PictureSize::from_cropped(
        width.checked_sub(sub_width * (left + right)),
        height.checked_sub(sub_height * (top + bottom)),
    )
}

/// Skips `profile_tier_level(1, max_sub_layers_minus1)` (§7.3.3).
fn skip_profile_tier_level(r: &mut BitReader<'_>, max_sub_layers_minus1: usize) -> Result<(), CodecError> {
    // General profile space/tier/idc (8), compatibility flags (32), source and
    // constraint flags (48), level (8).
    r.skip(96)?;
    let mut present = [(false, false); 8]; // (profile, level) per sub-layer
    for flags in present.iter_mut().take(max_sub_layers_minus1) {
        *flags = (r.bit()?, r.bit()?);
    }
    if max_sub_layers_minus1 > 0 {
        // Alignment to eight sub-layer slots.
        r.skip(2 * (8 - max_sub_layers_minus1 as u32))?;
    }
    for &(profile, level) in present.iter().take(max_sub_layers_minus1) {
        if profile {
            r.skip(88)?;
        }
        if level {
            r.skip(8)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    // x265 (via ffmpeg) SPS for 320x180 Main: coded as 320x184 with a conformance window.
    const SPS_320X180: &str =
        "4201010408000003009e0800000300003c9001410173e5cb2b349265780b7020200040000003004000000782";

    // x265 hvcC for 1280x720 Main 10, with its VPS, SPS and PPS arrays (SEI dropped).
    const HVCC_720P_MAIN10: &str = concat!(
        "0102200000009000000000005df000fcfdfafa00000f03",
        "200001001840010c01ffff02200000030090000003000003005d959809",
        "210001002b42010102200000030090000003000003005da00280802d1365959a4932bc05a020000003002000000303c1",
        "22000100074401c172b46240",
    );

    #[test]
    fn sps_with_conformance_window() {
        let size = parse_sps(&hex(SPS_320X180)).unwrap();
        assert_eq!((size.width, size.height), (320, 180));
    }

    #[test]
    fn config_record_gives_profile_level_and_size() {
        let config = parse_config(&hex(HVCC_720P_MAIN10)).unwrap();
        assert_eq!(config.codec, VideoCodec::Hevc);
        assert_eq!((config.profile, config.level), (2, 93));
        assert_eq!(config.profile_name(), Some("Main 10"));
        assert_eq!(config.level_name().as_deref(), Some("3.1"));
        assert_eq!((config.width, config.height), (Some(1280), Some(720)));
    }

    #[test]
    fn record_without_sps_has_no_size_and_truncation_is_an_error() {
        let record = hex(HVCC_720P_MAIN10);
        let mut no_arrays = record[..22].to_vec();
        no_arrays.push(0);
        let config = parse_config(&no_arrays).unwrap();
        assert_eq!((config.profile, config.width), (2, None));

        for len in 0..record.len() - 12 {
            // Cut before the SPS ends: the record itself is truncated.
            assert!(matches!(parse_config(&record[..len]), Err(CodecError::Truncated(_))), "prefix {len}");
        }
    }

    #[test]
    fn wrong_nal_type_is_rejected() {
        assert_eq!(parse_sps(&hex("40010c01")), Err(CodecError::Invalid("HEVC SPS NAL unit type")));
        assert_eq!(parse_sps(&[0x42]), Err(CodecError::Truncated("HEVC SPS")));
    }
}
