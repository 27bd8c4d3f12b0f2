//! Audio and video tag bodies, legacy FLV and Enhanced RTMP: the header parsers (which must
//! agree with each other), the composition-time rewrite of the switcher, and the in-band
//! parameter sets prepended to a keyframe. Input: a byte for the composition shift, two for
//! where to split the rest into a tag and a sequence header, then both bodies.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use motherstream_media::media::codec::{
    AudioConfig, AudioTagInfo, VideoConfig, VideoPacket, VideoTagInfo, is_stream_header, is_video_keyframe,
    parse_audio_tag, parse_video_tag, shift_composition_time,
};
use motherstream_media::media::parameter_sets::with_parameter_sets;
use motherstream_media::media::{FlvTag, TagKind};

fuzz_target!(|data: &[u8]| {
    let Some((&[shift, hi, lo], rest)) = data.split_first_chunk::<3>() else { return };
    let split = usize::from(u16::from_be_bytes([hi, lo])).min(rest.len());
    let (body, header) = rest.split_at(split);

    if let Ok(tag) = parse_video_tag(body) {
        assert_eq!(VideoTagInfo::parse(body), Ok(tag.info));
        if tag.info.packet == VideoPacket::SequenceHeader {
            let _ = VideoConfig::parse(tag.info.codec, tag.body);
        }
    } else {
        assert!(VideoTagInfo::parse(body).is_err());
    }
    if let Ok(tag) = parse_audio_tag(body) {
        assert_eq!(AudioTagInfo::parse(body), Ok(tag.info));
        if tag.info.is_sequence_header() {
            let _ = AudioConfig::parse(tag.info.codec, tag.body);
        }
    } else {
        assert!(AudioTagInfo::parse(body).is_err());
    }

    if let Some(shifted) = shift_composition_time(body, u32::from(shift)) {
        let before = parse_video_tag(body).expect("only parsable pictures are shifted").info;
        let after = parse_video_tag(&shifted).expect("a shifted picture still parses").info;
        assert_eq!(after.composition_time, before.composition_time + i32::from(shift));
        assert_eq!((after.codec, after.frame, after.packet), (before.codec, before.frame, before.packet));
    }

    let keyframe = FlvTag::new(TagKind::Video, 0, Bytes::copy_from_slice(body));
    let sequence_header = FlvTag::new(TagKind::Video, 0, Bytes::copy_from_slice(header));
    let _ = is_video_keyframe(&keyframe);
    for kind in [TagKind::Audio, TagKind::Video, TagKind::Script] {
        let tag = FlvTag::new(kind, 0, keyframe.payload.clone());
        let _ = (is_stream_header(&tag), tag.is_metadata());
    }
    if let Some(with_sets) = with_parameter_sets(&keyframe, &sequence_header) {
        let before = parse_video_tag(body).expect("only parsable keyframes gain parameter sets").info;
        let after = parse_video_tag(&with_sets.payload).expect("a keyframe with parameter sets still parses").info;
        assert_eq!(after, before);
        assert!(with_sets.payload.len() >= body.len());
    }
});
