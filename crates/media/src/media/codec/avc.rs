//! H.264: the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3) and the part of
//! the sequence parameter set (ISO/IEC 14496-10 §7.3.2.1.1) that gives the picture size.

use super::bits::{BitReader, ByteReader};
use super::config::PictureSize;
use super::{CodecError, VideoCodec, VideoConfig};

const NAL_TYPE_SPS: u8 = 7;

/// Profiles whose SPS carries chroma format, bit depth and scaling matrices.
const PROFILES_WITH_CHROMA_INFO: [u32; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// Parses the record; the picture size comes from its first SPS and is left unknown
/// when that SPS is missing or unparseable, since profile and level are still useful.
pub(super) fn parse_config(record: &[u8]) -> Result<VideoConfig, CodecError> {
    let mut r = ByteReader::new(record);
    if r.u8("AVC configuration version")? != 1 {
        return Err(CodecError::Invalid("AVC configuration version"));
    }
    let profile = r.u8("AVC profile")?;
    r.skip(1, "AVC profile compatibility")?;
    let level = r.u8("AVC level")?;
    r.skip(1, "AVC NAL length size")?;
    let sps_count = r.u8("AVC SPS count")? & 0x1F;
    let size = if sps_count > 0 {
        let len = r.u16("AVC SPS length")?;
        let sps = r.take(usize::from(len), "AVC SPS")?;
        parse_sps(sps).ok()
    } else {
        None
    };
    Ok(VideoConfig {
        codec: VideoCodec::Avc,
        profile,
        level,
        width: size.map(|s| s.width),
        height: size.map(|s| s.height),
    })
}

/// Reads an SPS NAL unit (header byte included) up to the frame cropping fields.
pub(crate) fn parse_sps(nal: &[u8]) -> Result<PictureSize, CodecError> {
    let (&header, payload) = nal.split_first().ok_or(CodecError::Truncated("AVC SPS"))?;
    if header & 0x1F != NAL_TYPE_SPS {
        return Err(CodecError::Invalid("AVC SPS NAL unit type"));
    }
    let mut r = BitReader::rbsp(payload, "AVC SPS");
    let profile_idc = r.bits(8)?;
    r.skip(16)?; // constraint_set flags + reserved bits, level_idc
    r.ue()?; // seq_parameter_set_id

    // Defaults when the profile does not signal them: 4:2:0, one colour plane.
    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if PROFILES_WITH_CHROMA_INFO.contains(&profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(CodecError::Invalid("AVC chroma_format_idc"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.skip(1)?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            // seq_scaling_matrix_present_flag: 4x4 lists first, then 8x8 ones.
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.skip(1)?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(CodecError::Invalid("AVC pic order count cycle"));
            }
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame
            }
        }
        2 => {}
        _ => return Err(CodecError::Invalid("AVC pic_order_cnt_type")),
    }
    r.ue()?; // max_num_ref_frames
    r.skip(1)?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        r.skip(1)?; // mb_adaptive_frame_field_flag
    }
    r.skip(1)?; // direct_8x8_inference_flag
    let mut crop = [0u64; 4]; // left, right, top, bottom
    if r.bit()? {
        for offset in &mut crop {
            *offset = u64::from(r.ue()?);
        }
    }

    // Field-coded streams count map units in field pairs (7.4.2.1.1).
    let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane { 0 } else { chroma_format_idc };
    // Crop offsets are in chroma sample units (equations 7-19 to 7-22).
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let [left, right, top, bottom] = crop;
    let width = (width_mbs * 16).checked_sub(crop_unit_x * (left + right));
    let height = (field_factor * height_map_units * 16).checked_sub(crop_unit_y * (top + bottom));
    PictureSize::from_cropped(width, height)
}

/// Skips a `scaling_list()` (7.3.2.1.1.1); only its length in bits matters here.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last_scale: i64 = 8;
    let mut next_scale: i64 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se()?;
            next_scale = (last_scale + delta).rem_euclid(256);
        }
        // A zero next_scale means "repeat the last value to the end of the list".
        if next_scale != 0 {
            last_scale = next_scale;
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

    fn size(w: u32, h: u32) -> PictureSize {
        PictureSize { width: w, height: h }
    }

    // SPS NAL units produced by x264 (via ffmpeg) for the noted settings.
    const BASELINE_1080P: &str = "6742c028d900780227e5c044000003000400000300c83c60c920";
    const HIGH_INTERLACED_CQM_576I: &str = "6764001eacd940b424d8088000000300800000190f8a14cb";
    const HIGH444_CQM_642X362: &str = "67f4001e919b281485fc7cf808800000030080000019078b16cb";

    #[test]
    fn baseline_1080p_is_cropped_from_1088() {
        assert_eq!(parse_sps(&hex(BASELINE_1080P)), Ok(size(1920, 1080)));
    }

    #[test]
    fn interlaced_high_profile_with_scaling_lists() {
        assert_eq!(parse_sps(&hex(HIGH_INTERLACED_CQM_576I)), Ok(size(720, 576)));
    }

    #[test]
    fn high_444_crops_in_luma_units() {
        assert_eq!(parse_sps(&hex(HIGH444_CQM_642X362)), Ok(size(642, 362)));
    }

    #[test]
    fn config_record_gives_profile_level_and_size() {
        let sps = hex(BASELINE_1080P);
        let mut record = vec![1, 0x42, 0xc0, 0x28, 0xff, 0xe1];
        record.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        record.extend_from_slice(&sps);
        record.extend_from_slice(&[1, 0, 4, 0x68, 0xce, 0x3c, 0x80]);
        let config = parse_config(&record).unwrap();
        assert_eq!((config.profile, config.level), (66, 40));
        assert_eq!((config.width, config.height), (Some(1920), Some(1080)));
        assert_eq!(config.profile_name(), Some("Baseline"));
        assert_eq!(config.level_name().as_deref(), Some("4.0"));
    }

    #[test]
    fn broken_sps_leaves_size_unknown() {
        let record = [1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 3, 0x67, 0x64, 0x00];
        let config = parse_config(&record).unwrap();
        assert_eq!((config.profile, config.level), (100, 31));
        assert_eq!(config.width, None);
        // A record cut inside the SPS is an error.
        assert_eq!(parse_config(&record[..9]), Err(CodecError::Truncated("AVC SPS")));
        assert_eq!(parse_config(&[0, 0x64]), Err(CodecError::Invalid("AVC configuration version")));
        assert_eq!(parse_config(&[]), Err(CodecError::Truncated("AVC configuration version")));
    }

    #[test]
    fn truncated_sps_errors_or_still_gives_the_size() {
        // Fields after the cropping window (VUI) are not read, so a prefix either
        // fails cleanly or parses to the same answer as the whole SPS.
        let sps = hex(HIGH_INTERLACED_CQM_576I);
        for len in 0..sps.len() {
            match parse_sps(&sps[..len]) {
                Ok(found) => assert_eq!(found, size(720, 576), "prefix {len}"),
                Err(e) => assert!(matches!(e, CodecError::Truncated(_)), "prefix {len}: {e}"),
            }
        }
        assert_eq!(parse_sps(&hex("6867")), Err(CodecError::Invalid("AVC SPS NAL unit type")));
    }
}
