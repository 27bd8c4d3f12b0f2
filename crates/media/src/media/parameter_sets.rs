//! In-band parameter sets at a splice.
//!
//! At a splice the program re-sends the new source's sequence header, which is all a
//! conforming FLV consumer needs. Some consumers are less careful: ffmpeg's H.264 parser,
//! for one, keeps parsing slices with the parameter sets it saw first, and players or
//! ingests that read the decoder configuration once behave alike. Repeating the parameter
//! sets (SPS/PPS, and VPS for HEVC) inside the splice keyframe itself — as many encoders do
//! for every keyframe — lets all of them switch cleanly. The copy costs one keyframe per
//! splice; every other frame is passed on untouched.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{VideoCodec, VideoPacket, parse_video_tag};
use super::flv::FlvTag;

/// H.264 NAL unit types of parameter sets.
const AVC_SPS: u8 = 7;
const AVC_PPS: u8 = 8;
/// HEVC NAL unit types of parameter sets.
const HEVC_VPS: u8 = 32;
const HEVC_PPS: u8 = 34;

/// Returns `keyframe` with the parameter sets of `sequence_header` prepended to its NAL
/// units, or `None` when there is nothing to do (not H.264/HEVC, already carries them,
/// or anything unparsable — the keyframe is then used as it is).
pub fn with_parameter_sets(keyframe: &FlvTag, sequence_header: &FlvTag) -> Option<FlvTag> {
    let key = parse_video_tag(&keyframe.payload).ok()?;
    let header = parse_video_tag(&sequence_header.payload).ok()?;
    if !key.info.is_keyframe()
        || header.info.packet != VideoPacket::SequenceHeader
        || key.info.codec != header.info.codec
    {
        return None;
    }
    let (length_size, sets) = match key.info.codec {
        VideoCodec::Avc => avc_parameter_sets(header.body)?,
        VideoCodec::Hevc => hevc_parameter_sets(header.body)?,
        _ => return None,
    };
    let nal_type = |nal: &[u8]| match key.info.codec {
        VideoCodec::Avc => nal.first().map(|b| b & 0x1F),
        _ => nal.first().map(|b| (b >> 1) & 0x3F),
    };
    let is_parameter_set = |t: u8| match key.info.codec {
        VideoCodec::Avc => t == AVC_SPS || t == AVC_PPS,
        _ => (HEVC_VPS..=HEVC_PPS).contains(&t),
    };
    let nals = split_nals(key.body, length_size)?;
    if nals.iter().any(|nal| nal_type(nal).is_some_and(is_parameter_set)) {
        return None;
    }
    let prefix_len = keyframe.payload.len() - key.body.len();
    let added: usize = sets.iter().map(|s| length_size + s.len()).sum();
    let mut payload = BytesMut::with_capacity(keyframe.payload.len() + added);
    payload.put_slice(&keyframe.payload[..prefix_len]);
    for set in &sets {
        put_length(&mut payload, length_size, set.len())?;
        payload.put_slice(set);
    }
    payload.put_slice(key.body);
    Some(FlvTag { kind: keyframe.kind, timestamp: keyframe.timestamp, payload: payload.freeze() })
}

/// NAL length size and SPS/PPS of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3).
fn avc_parameter_sets(record: &[u8]) -> Option<(usize, Vec<Bytes>)> {
    let mut r = Reader(record);
    r.take(4)?; // version, profile, compatibility, level
    let length_size = usize::from(r.u8()? & 0x03) + 1;
    let mut sets = Vec::new();
    let sps_count = r.u8()? & 0x1F;
    for _ in 0..sps_count {
        let len = usize::from(r.u16()?);
        sets.push(Bytes::copy_from_slice(r.take(len)?));
    }
    let pps_count = r.u8()?;
    for _ in 0..pps_count {
        let len = usize::from(r.u16()?);
        sets.push(Bytes::copy_from_slice(r.take(len)?));
    }
    Some((length_size, sets))
}

/// NAL length size and VPS/SPS/PPS of an HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3).
fn hevc_parameter_sets(record: &[u8]) -> Option<(usize, Vec<Bytes>)> {
    let mut r = Reader(record);
    r.take(21)?; // profile, tier, level, constraint and format fields
    let length_size = usize::from(r.u8()? & 0x03) + 1;
    let arrays = r.u8()?;
    let mut sets = Vec::new();
    for _ in 0..arrays {
        let nal_type = r.u8()? & 0x3F;
        let count = r.u16()?;
        for _ in 0..count {
            let len = usize::from(r.u16()?);
            let nal = r.take(len)?;
            if (HEVC_VPS..=HEVC_PPS).contains(&nal_type) {
                sets.push(Bytes::copy_from_slice(nal));
            }
        }
    }
    Some((length_size, sets))
}

/// Splits length-prefixed NAL units; `None` if the lengths do not add up.
fn split_nals(mut body: &[u8], length_size: usize) -> Option<Vec<&[u8]>> {
    let mut nals = Vec::new();
    while !body.is_empty() {
        let len_bytes = body.get(..length_size)?;
        let len = len_bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        let nal = body.get(length_size..length_size + len)?;
        nals.push(nal);
        body = &body[length_size + len..];
    }
    Some(nals)
}

fn put_length(out: &mut BytesMut, length_size: usize, len: usize) -> Option<()> {
    if length_size < 8 && len >> (8 * length_size) != 0 {
        return None;
    }
    for i in (0..length_size).rev() {
        out.put_u8((len >> (8 * i)) as u8);
    }
    Some(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::{VideoTagInfo, is_video_keyframe as is_keyframe};
    use crate::media::flv::{FlvReader, TagKind};

    fn fixture() -> Vec<FlvTag> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/dj.flv");
        FlvReader::new(Bytes::from(std::fs::read(path).unwrap())).unwrap().map(Result::unwrap).collect()
    }

    #[test]
    fn avc_keyframe_gains_sps_and_pps_in_band() {
        let tags = fixture();
        let header = tags
            .iter()
            .find(|t| t.kind == TagKind::Video && VideoTagInfo::parse(&t.payload).unwrap().is_sequence_header())
            .unwrap();
        let key = tags.iter().find(|t| t.kind == TagKind::Video && is_keyframe(t)).unwrap();
        let spliced = with_parameter_sets(key, header).expect("parameter sets added");
        assert_eq!(spliced.timestamp, key.timestamp);
        assert_eq!(&spliced.payload[..5], &key.payload[..5], "same FLV video header and composition time");
        let body = parse_video_tag(&spliced.payload).unwrap().body;
        let types: Vec<u8> = split_nals(body, 4).unwrap().iter().map(|n| n[0] & 0x1F).collect();
        assert_eq!(&types[..2], [AVC_SPS, AVC_PPS], "{types:?}");
        assert!(types.contains(&5), "the IDR slice follows: {types:?}");
        assert!(spliced.payload.ends_with(parse_video_tag(&key.payload).unwrap().body));
        // Idempotent: a keyframe that already carries them is left alone.
        assert!(with_parameter_sets(&spliced, header).is_none());
    }

    #[test]
    fn other_frames_and_garbage_are_left_alone() {
        let tags = fixture();
        let header = tags.iter().find(|t| t.kind == TagKind::Video).unwrap();
        let inter = tags.iter().find(|t| t.kind == TagKind::Video && t.payload[0] >> 4 == 2).unwrap();
        assert!(with_parameter_sets(inter, header).is_none());
        let garbage =
            FlvTag { kind: TagKind::Video, timestamp: 0, payload: Bytes::from_static(&[0x17, 1, 0, 0, 0, 0, 0, 9]) };
        assert!(with_parameter_sets(&garbage, header).is_none());
        let broken_header =
            FlvTag { kind: TagKind::Video, timestamp: 0, payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]) };
        let key = tags.iter().find(|t| t.kind == TagKind::Video && is_keyframe(t)).unwrap();
        assert!(with_parameter_sets(key, &broken_header).is_none());
    }

    #[test]
    fn hevc_record_yields_vps_sps_pps() {
        // A minimal HEVCDecoderConfigurationRecord: 21 bytes of profile data, length size 4,
        // three arrays (VPS 32, SPS 33, PPS 34) of one NAL each, and an SEI array ignored.
        let mut record = vec![1u8; 21];
        record.push(0xFF); // lengthSizeMinusOne = 3
        record.push(4);
        for (t, nal) in [(32u8, vec![0x40, 1, 7]), (33, vec![0x42, 1, 8]), (34, vec![0x44, 1, 9]), (39, vec![0x4E, 1])]
        {
            record.push(0x80 | t);
            record.extend_from_slice(&1u16.to_be_bytes());
            record.extend_from_slice(&(nal.len() as u16).to_be_bytes());
            record.extend_from_slice(&nal);
        }
        let (size, sets) = hevc_parameter_sets(&record).unwrap();
        assert_eq!(size, 4);
        assert_eq!(sets.iter().map(|s| s[0]).collect::<Vec<_>>(), [0x40, 0x42, 0x44]);
    }
}
