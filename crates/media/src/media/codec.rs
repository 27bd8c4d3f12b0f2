//! Audio and video tag headers, legacy FLV and Enhanced RTMP (veovera v1/v2), and the
//! decoder configurations carried by sequence-header tags.
//!
//! Parsing never panics: empty, truncated or garbage payloads give a [`CodecError`].

mod aac;
pub(crate) mod avc;
mod bits;
mod config;
pub(crate) mod hevc;

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use serde::{Serialize, Serializer};
use thiserror::Error;

use super::flv::{FlvTag, TagKind};

pub use aac::{ADTS_HEADER_LEN, Adts, AudioSpecificConfig};
use bits::ByteReader;
pub use config::{AudioConfig, VideoConfig};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}

/// A four-character code identifying a codec in Enhanced RTMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl fmt::Display for FourCc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            self.0.iter().try_for_each(|&b| write!(f, "{}", char::from(b)))
        } else {
            write!(f, "0x{:08x}", u32::from_be_bytes(self.0))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Avc,
    Hevc,
    Av1,
    Vp9,
    Vp8,
    /// An old Flash codec (H.263, VP6, screen video) by its legacy codec id.
    Legacy(u8),
    /// An Enhanced RTMP FourCC this module does not know.
    Unknown(FourCc),
    /// Enhanced RTMP command frames carry no codec at all.
    Unspecified,
}

impl VideoCodec {
    fn from_fourcc(fourcc: FourCc) -> Self {
        match &fourcc.0 {
            b"avc1" => VideoCodec::Avc,
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            b"vp09" => VideoCodec::Vp9,
            b"vp08" => VideoCodec::Vp8,
            _ => VideoCodec::Unknown(fourcc),
        }
    }
}

impl fmt::Display for VideoCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoCodec::Avc => f.write_str("h264"),
            VideoCodec::Hevc => f.write_str("hevc"),
            VideoCodec::Av1 => f.write_str("av1"),
            VideoCodec::Vp9 => f.write_str("vp9"),
            VideoCodec::Vp8 => f.write_str("vp8"),
            VideoCodec::Legacy(id) => write!(f, "flv-codec-{id}"),
            VideoCodec::Unknown(fourcc) => write!(f, "{fourcc}"),
            VideoCodec::Unspecified => f.write_str("unspecified"),
        }
    }
}

/// Serialised as its display name ("h264", "hevc", ...) for the status API.
impl Serialize for VideoCodec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    Aac,
    Mp3,
    Opus,
    Flac,
    Ac3,
    Eac3,
    Pcm,
    Adpcm,
    Nellymoser,
    G711ALaw,
    G711MuLaw,
    Speex,
    /// A legacy sound format id with no better name here (reserved, device-specific).
    Legacy(u8),
    /// An Enhanced RTMP FourCC this module does not know.
    Unknown(FourCc),
}

impl AudioCodec {
    fn from_sound_format(format: u8) -> Self {
        match format {
            0 | 3 => AudioCodec::Pcm,
            1 => AudioCodec::Adpcm,
            2 | 14 => AudioCodec::Mp3,
            4..=6 => AudioCodec::Nellymoser,
            7 => AudioCodec::G711ALaw,
            8 => AudioCodec::G711MuLaw,
            10 => AudioCodec::Aac,
            11 => AudioCodec::Speex,
            other => AudioCodec::Legacy(other),
        }
    }

    fn from_fourcc(fourcc: FourCc) -> Self {
        match &fourcc.0 {
            b"mp4a" => AudioCodec::Aac,
            b".mp3" => AudioCodec::Mp3,
            b"Opus" => AudioCodec::Opus,
            b"fLaC" => AudioCodec::Flac,
            b"ac-3" => AudioCodec::Ac3,
            b"ec-3" => AudioCodec::Eac3,
            _ => AudioCodec::Unknown(fourcc),
        }
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            AudioCodec::Aac => "aac",
            AudioCodec::Mp3 => "mp3",
            AudioCodec::Opus => "opus",
            AudioCodec::Flac => "flac",
            AudioCodec::Ac3 => "ac3",
            AudioCodec::Eac3 => "eac3",
            AudioCodec::Pcm => "pcm",
            AudioCodec::Adpcm => "adpcm",
            AudioCodec::Nellymoser => "nellymoser",
            AudioCodec::G711ALaw => "g711a",
            AudioCodec::G711MuLaw => "g711u",
            AudioCodec::Speex => "speex",
            AudioCodec::Legacy(id) => return write!(f, "flv-sound-format-{id}"),
            AudioCodec::Unknown(fourcc) => return write!(f, "{fourcc}"),
        };
        f.write_str(name)
    }
}

/// Serialised as its display name ("aac", "opus", ...) for the status API.
impl Serialize for AudioCodec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The frame type of a video tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Key,
    Inter,
    DisposableInter,
    /// A keyframe generated by a server (e.g. for seeking), decodable like `Key`.
    GeneratedKey,
    /// A video info/command frame (seek markers); it carries no picture.
    Command,
    Reserved(u8),
}

impl FrameKind {
    fn from_bits(bits: u8) -> Self {
        match bits {
            1 => FrameKind::Key,
            2 => FrameKind::Inter,
            3 => FrameKind::DisposableInter,
            4 => FrameKind::GeneratedKey,
            5 => FrameKind::Command,
            other => FrameKind::Reserved(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacket {
    /// Decoder configuration (AVCDecoderConfigurationRecord, hvcC, av1C, ...).
    SequenceHeader,
    /// Coded picture data.
    Coded,
    EndOfSequence,
    /// Enhanced RTMP video metadata (e.g. HDR colour info), an AMF payload.
    Metadata,
    /// Anything else: command frames, MPEG-2 TS style sequence starts, unknown types.
    Other,
}

/// What a video tag header says about its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTagInfo {
    pub codec: VideoCodec,
    pub frame: FrameKind,
    pub packet: VideoPacket,
    /// Presentation minus decode time, in ms (0 where the format has none).
    pub composition_time: i32,
    /// Enhanced RTMP multitrack id; 0, the default track, otherwise.
    pub track_id: u8,
}

/// A parsed video tag: the header info and the packet body that follows the header
/// (for a sequence header, the decoder configuration record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTag<'a> {
    pub info: VideoTagInfo,
    pub body: &'a [u8],
}

// Legacy codec ids. 12 for HEVC is not in the FLV spec but is what servers and
// encoders used before Enhanced RTMP existed.
const LEGACY_AVC: u8 = 7;
const LEGACY_HEVC: u8 = 12;

// Enhanced RTMP packet types shared by audio and video where they coincide.
const EX_SEQUENCE_START: u8 = 0;
const EX_CODED_FRAMES: u8 = 1;
const EX_SEQUENCE_END: u8 = 2;
const EX_VIDEO_CODED_FRAMES_X: u8 = 3;
const EX_VIDEO_METADATA: u8 = 4;
const EX_VIDEO_MULTITRACK: u8 = 6;
const EX_AUDIO_MULTITRACK: u8 = 5;
const EX_MOD_EX: u8 = 7;

// AvMultitrackType: OneTrack, ManyTracks (= 1) and ManyTracksManyCodecs.
const ONE_TRACK: u8 = 0;
const MANY_TRACKS_MANY_CODECS: u8 = 2;

const EX_HEADER_BIT: u8 = 0x80;
const SOUND_FORMAT_AAC: u8 = 10;
const SOUND_FORMAT_EX_HEADER: u8 = 9;

impl VideoTagInfo {
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        parse_video_tag(payload).map(|tag| tag.info)
    }

    /// A coded picture that starts a GOP. Sequence headers are flagged as keyframes
    /// on the wire too, but they are not pictures, so they do not count here.
    pub fn is_keyframe(&self) -> bool {
        matches!(self.frame, FrameKind::Key | FrameKind::GeneratedKey) && self.packet == VideoPacket::Coded
    }

    pub fn is_sequence_header(&self) -> bool {
        self.packet == VideoPacket::SequenceHeader
    }
}

/// Parses a video tag header, legacy or Enhanced RTMP.
pub fn parse_video_tag(payload: &[u8]) -> Result<VideoTag<'_>, CodecError> {
    let mut r = ByteReader::new(payload);
    let first = r.u8("video tag header")?;
    if first & EX_HEADER_BIT != 0 {
        return parse_ex_video(first, r);
    }
    let frame = FrameKind::from_bits(first >> 4);
    let codec = match first & 0x0F {
        LEGACY_AVC => VideoCodec::Avc,
        LEGACY_HEVC => VideoCodec::Hevc,
        other => VideoCodec::Legacy(other),
    };
    let mut info = VideoTagInfo { codec, frame, packet: VideoPacket::Coded, composition_time: 0, track_id: 0 };
    if frame == FrameKind::Command {
        // The body is a one-byte command instead of a picture.
        info.packet = VideoPacket::Other;
    } else if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
        info.packet = match r.u8("AVC packet type")? {
            0 => VideoPacket::SequenceHeader,
            1 => VideoPacket::Coded,
            2 => VideoPacket::EndOfSequence,
            _ => VideoPacket::Other,
        };
        info.composition_time = r.i24("composition time")?;
    }
    Ok(VideoTag { info, body: r.rest() })
}

fn parse_ex_video<'a>(first: u8, mut r: ByteReader<'a>) -> Result<VideoTag<'a>, CodecError> {
    // With the ex-header bit set the frame type shrinks to 3 bits.
    let frame = FrameKind::from_bits((first >> 4) & 0x07);
    let mut packet_type = skip_mod_ex(&mut r, first & 0x0F)?;

    if frame == FrameKind::Command && packet_type != EX_VIDEO_METADATA {
        r.u8("video command")?;
        let info = VideoTagInfo {
            codec: VideoCodec::Unspecified,
            frame,
            packet: VideoPacket::Other,
            composition_time: 0,
            track_id: 0,
        };
        return Ok(VideoTag { info, body: r.rest() });
    }

    let (fourcc, track_id) = if packet_type == EX_VIDEO_MULTITRACK {
        let track = first_track(&mut r)?;
        packet_type = track.packet_type;
        (track.fourcc, track.id)
    } else {
        (FourCc(r.array("video FourCC")?), 0)
    };
    let codec = VideoCodec::from_fourcc(fourcc);
    let mut composition_time = 0;
    let packet = match packet_type {
        EX_SEQUENCE_START => VideoPacket::SequenceHeader,
        EX_CODED_FRAMES => {
            // Only AVC and HEVC carry a composition time; CodedFramesX implies zero.
            if matches!(codec, VideoCodec::Avc | VideoCodec::Hevc) {
                composition_time = r.i24("composition time")?;
            }
            VideoPacket::Coded
        }
        EX_VIDEO_CODED_FRAMES_X => VideoPacket::Coded,
        EX_SEQUENCE_END => VideoPacket::EndOfSequence,
        EX_VIDEO_METADATA => VideoPacket::Metadata,
        _ => VideoPacket::Other,
    };
    let info = VideoTagInfo { codec, frame, packet, composition_time, track_id };
    Ok(VideoTag { info, body: r.rest() })
}

/// Skips any ModEx prefixes (Enhanced RTMP v2) and returns the real packet type.
///
/// ModEx data only refines timestamps below a millisecond, which FLV cannot express
/// anyway, so it is dropped. Each round consumes at least two bytes, so this ends.
fn skip_mod_ex(r: &mut ByteReader<'_>, mut packet_type: u8) -> Result<u8, CodecError> {
    while packet_type == EX_MOD_EX {
        let mut size = usize::from(r.u8("ModEx size")?) + 1;
        if size == 256 {
            size = usize::from(r.u16("ModEx size")?) + 1;
        }
        r.skip(size, "ModEx data")?;
        // High nibble: ModEx type; low nibble: the next packet type.
        packet_type = r.u8("ModEx packet type")? & 0x0F;
    }
    Ok(packet_type)
}

/// The first track of an Enhanced RTMP multitrack packet.
struct Track {
    packet_type: u8,
    fourcc: FourCc,
    id: u8,
}

/// Reads a multitrack header up to the first track's body, which is all this module
/// describes: later tracks (alternate renditions) are left to whoever wants them.
fn first_track(r: &mut ByteReader<'_>) -> Result<Track, CodecError> {
    let byte = r.u8("multitrack header")?;
    let multitrack_type = byte >> 4;
    let packet_type = byte & 0x0F;
    if multitrack_type > MANY_TRACKS_MANY_CODECS {
        return Err(CodecError::Unsupported("multitrack type"));
    }
    // One FourCC for all tracks, or (many codecs) one before each track.
    let fourcc = FourCc(r.array("multitrack FourCC")?);
    let id = r.u8("track id")?;
    if multitrack_type != ONE_TRACK {
        r.u24("track size")?;
    }
    Ok(Track { packet_type, fourcc, id })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPacket {
    /// Decoder configuration (AudioSpecificConfig, OpusHead, ...).
    SequenceHeader,
    /// Coded audio frames.
    Raw,
    /// Anything else: sequence end, multichannel config, unknown types.
    Other,
}

/// The rate/size/channel bits of a legacy audio tag header. For AAC they are fixed
/// (44 kHz, 16-bit, stereo) whatever the stream is; read the AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LegacyAudioFormat {
    pub sample_rate: u32,
    pub sample_bits: u8,
    pub stereo: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTagInfo {
    pub codec: AudioCodec,
    pub packet: AudioPacket,
    /// Present for legacy headers, absent for Enhanced RTMP ones.
    pub legacy_format: Option<LegacyAudioFormat>,
    /// Enhanced RTMP multitrack id; 0, the default track, otherwise.
    pub track_id: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioTag<'a> {
    pub info: AudioTagInfo,
    pub body: &'a [u8],
}

impl AudioTagInfo {
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        parse_audio_tag(payload).map(|tag| tag.info)
    }

    pub fn is_sequence_header(&self) -> bool {
        self.packet == AudioPacket::SequenceHeader
    }
}

/// Parses an audio tag header, legacy or Enhanced RTMP.
pub fn parse_audio_tag(payload: &[u8]) -> Result<AudioTag<'_>, CodecError> {
    let mut r = ByteReader::new(payload);
    let first = r.u8("audio tag header")?;
    let format = first >> 4;
    if format == SOUND_FORMAT_EX_HEADER {
        return parse_ex_audio(first & 0x0F, r);
    }
    const RATES: [u32; 4] = [5512, 11025, 22050, 44100];
    let legacy_format = LegacyAudioFormat {
        sample_rate: RATES[usize::from((first >> 2) & 0x03)],
        sample_bits: if first & 0x02 != 0 { 16 } else { 8 },
        stereo: first & 0x01 != 0,
    };
    let packet = if format == SOUND_FORMAT_AAC {
        match r.u8("AAC packet type")? {
            0 => AudioPacket::SequenceHeader,
            1 => AudioPacket::Raw,
            _ => AudioPacket::Other,
        }
    } else {
        AudioPacket::Raw
    };
    let info = AudioTagInfo {
        codec: AudioCodec::from_sound_format(format),
        packet,
        legacy_format: Some(legacy_format),
        track_id: 0,
    };
    Ok(AudioTag { info, body: r.rest() })
}

fn parse_ex_audio(packet_type: u8, mut r: ByteReader<'_>) -> Result<AudioTag<'_>, CodecError> {
    let mut packet_type = skip_mod_ex(&mut r, packet_type)?;
    let (fourcc, track_id) = if packet_type == EX_AUDIO_MULTITRACK {
        let track = first_track(&mut r)?;
        packet_type = track.packet_type;
        (track.fourcc, track.id)
    } else {
        (FourCc(r.array("audio FourCC")?), 0)
    };
    let packet = match packet_type {
        EX_SEQUENCE_START => AudioPacket::SequenceHeader,
        EX_CODED_FRAMES => AudioPacket::Raw,
        _ => AudioPacket::Other,
    };
    let info = AudioTagInfo { codec: AudioCodec::from_fourcc(fourcc), packet, legacy_format: None, track_id };
    Ok(AudioTag { info, body: r.rest() })
}

/// True for a video tag carrying a coded keyframe (not a sequence header), any codec.
pub fn is_video_keyframe(tag: &FlvTag) -> bool {
    tag.kind == TagKind::Video && VideoTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_keyframe())
}

/// A coded AVC/HEVC picture's payload with its composition time raised by `shift` ms, or
/// `None` where the tag carries no composition time that can be raised: other codecs (AV1,
/// VP9 have none), other packets, multitrack or ModEx layouts, or a result beyond 24 bits.
///
/// Enhanced RTMP's CodedFramesX means "composition time 0" and has no field for it, so it
/// becomes CodedFrames with one. This copies the payload; callers do it only when needed.
pub fn shift_composition_time(payload: &[u8], shift: u32) -> Option<Bytes> {
    const SI24: std::ops::RangeInclusive<i32> = -(1 << 23)..=(1 << 23) - 1;
    let first = *payload.first()?;
    let is_command = |frame_type: u8| FrameKind::from_bits(frame_type) == FrameKind::Command;
    let si24 = |value: i32| value.to_be_bytes()[1..].to_vec();
    let shifted = |cts: i32| Some(cts.checked_add(i32::try_from(shift).ok()?)?).filter(|cts| SI24.contains(cts));
    if first & EX_HEADER_BIT == 0 {
        let coded = matches!(first & 0x0F, LEGACY_AVC | LEGACY_HEVC) && payload.get(1) == Some(&1);
        if !coded || is_command(first >> 4) {
            return None;
        }
        let cts = shifted(ByteReader::new(payload.get(2..)?).i24("composition time").ok()?)?;
        let mut out = BytesMut::from(payload);
        out[2..5].copy_from_slice(&si24(cts));
        return Some(out.freeze());
    }
    let fourcc = payload.get(1..5)?;
    if is_command((first >> 4) & 0x07) || !matches!(fourcc, b"avc1" | b"hvc1") {
        return None;
    }
    match first & 0x0F {
        EX_CODED_FRAMES => {
            let cts = shifted(ByteReader::new(payload.get(5..)?).i24("composition time").ok()?)?;
            let mut out = BytesMut::from(payload);
            out[5..8].copy_from_slice(&si24(cts));
            Some(out.freeze())
        }
        EX_VIDEO_CODED_FRAMES_X => {
            let cts = shifted(0)?;
            let mut out = BytesMut::with_capacity(payload.len() + 3);
            out.put_u8((first & 0xF0) | EX_CODED_FRAMES);
            out.put_slice(fourcc);
            out.put_slice(&si24(cts));
            out.put_slice(&payload[5..]);
            Some(out.freeze())
        }
        _ => None,
    }
}

/// True for the tags a decoder needs before media: sequence headers and metadata.
pub fn is_stream_header(tag: &FlvTag) -> bool {
    match tag.kind {
        TagKind::Script => true,
        TagKind::Video => VideoTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_sequence_header()),
        TagKind::Audio => AudioTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_sequence_header()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn composition_time_shift_rewrites_only_avc_and_hevc_pictures() {
        let info = |payload: &[u8]| VideoTagInfo::parse(payload).unwrap();
        // Legacy AVC: SI24 at bytes 2..5, negative values included.
        let legacy = [0x27, 1, 0xff, 0xff, 0xf6, 0xee];
        let out = shift_composition_time(&legacy, 50).unwrap();
        assert_eq!(info(&out).composition_time, 40);
        assert_eq!(parse_video_tag(&out).unwrap().body, &[0xee]);
        // Enhanced CodedFrames (hvc1): SI24 after the FourCC.
        let coded = b"\x91hvc1\x00\x00\x21\xee";
        let out = shift_composition_time(coded, 7).unwrap();
        assert_eq!(info(&out).composition_time, 0x28);
        assert!(info(&out).is_keyframe());
        // CodedFramesX becomes CodedFrames carrying the shift.
        let x = b"\xa3avc1\xee\xdd";
        let out = shift_composition_time(x, 80).unwrap();
        assert_eq!(&out[..], b"\xa1avc1\x00\x00\x50\xee\xdd");
        assert_eq!(info(&out).frame, FrameKind::Inter);
        // Nothing to raise: AV1, sequence headers, commands, ModEx, garbage, overflow.
        assert_eq!(shift_composition_time(b"\x91av01\x12", 5), None);
        assert_eq!(shift_composition_time(&[0x17, 0, 0, 0, 0, 1], 5), None);
        assert_eq!(shift_composition_time(&[0x57, 0], 5), None);
        assert_eq!(shift_composition_time(b"\x97\x00\x00\x01avc1\x00\x00\x05", 5), None);
        assert_eq!(shift_composition_time(&[0x27, 1, 0], 5), None);
        assert_eq!(shift_composition_time(&[], 5), None);
        assert_eq!(shift_composition_time(&[0x27, 1, 0x7f, 0xff, 0xff], 1), None);
    }
    #[test]
    fn legacy_avc_headers() {
        let seq = parse_video_tag(&[0x17, 0x00, 0, 0, 0, 0x01, 0x64]).unwrap();
        assert_eq!(seq.info.codec, VideoCodec::Avc);
        assert_eq!(seq.info.frame, FrameKind::Key);
        assert!(seq.info.is_sequence_header());
        assert!(!seq.info.is_keyframe());
        assert_eq!(seq.body, &[0x01, 0x64]);

        let key = VideoTagInfo::parse(&[0x17, 0x01, 0x00, 0x00, 0x42, 0xaa]).unwrap();
        assert!(key.is_keyframe());
        assert_eq!(key.composition_time, 0x42);

        let inter = VideoTagInfo::parse(&[0x27, 0x01, 0xff, 0xff, 0xd8]).unwrap();
        assert_eq!(inter.frame, FrameKind::Inter);
        assert_eq!(inter.composition_time, -40);
        assert!(!inter.is_keyframe());

        let disposable = VideoTagInfo::parse(&[0x37, 0x01, 0, 0, 0]).unwrap();
        assert_eq!(disposable.frame, FrameKind::DisposableInter);

        let end = VideoTagInfo::parse(&[0x17, 0x02, 0, 0, 0]).unwrap();
        assert_eq!(end.packet, VideoPacket::EndOfSequence);

        let generated = VideoTagInfo::parse(&[0x47, 0x01, 0, 0, 0]).unwrap();
        assert!(generated.is_keyframe());
    }

    #[test]
    fn legacy_hevc_command_and_old_codecs() {
        let hevc = VideoTagInfo::parse(&[0x1c, 0x00, 0, 0, 0]).unwrap();
        assert_eq!(hevc.codec, VideoCodec::Hevc);
        assert!(hevc.is_sequence_header());

        // A seek command: no packet type or composition time follows.
        let command = VideoTagInfo::parse(&[0x57, 0x01]).unwrap();
        assert_eq!(command.frame, FrameKind::Command);
        assert_eq!(command.packet, VideoPacket::Other);

        let vp6 = VideoTagInfo::parse(&[0x14, 0xab]).unwrap();
        assert_eq!(vp6.codec, VideoCodec::Legacy(4));
        assert!(vp6.is_keyframe());
    }

    #[test]
    fn empty_and_truncated_video_tags_are_errors() {
        assert_eq!(VideoTagInfo::parse(&[]), Err(CodecError::Truncated("video tag header")));
        assert_eq!(VideoTagInfo::parse(&[0x17]), Err(CodecError::Truncated("AVC packet type")));
        assert_eq!(VideoTagInfo::parse(&[0x17, 0x01, 0x00]), Err(CodecError::Truncated("composition time")));
        assert_eq!(VideoTagInfo::parse(&[0x90, b'h', b'v']), Err(CodecError::Truncated("video FourCC")));
    }

    #[test]
    fn enhanced_video_headers() {
        let seq = parse_video_tag(b"\x90hvc1\x01\x02").unwrap();
        assert_eq!(seq.info.codec, VideoCodec::Hevc);
        assert_eq!(seq.info.frame, FrameKind::Key);
        assert!(seq.info.is_sequence_header());
        assert_eq!(seq.body, &[0x01, 0x02]);

        let coded = parse_video_tag(b"\x91hvc1\x00\x00\x21\xee").unwrap();
        assert!(coded.info.is_keyframe());
        assert_eq!(coded.info.composition_time, 0x21);
        assert_eq!(coded.body, &[0xee]);

        // CodedFramesX: composition time implied zero, body follows the FourCC.
        let x = parse_video_tag(b"\xa3hvc1\xee").unwrap();
        assert_eq!(x.info.frame, FrameKind::Inter);
        assert_eq!(x.info.packet, VideoPacket::Coded);
        assert_eq!(x.info.composition_time, 0);
        assert_eq!(x.body, &[0xee]);

        // AV1 coded frames have no composition time field.
        let av1 = parse_video_tag(b"\x91av01\x12\x00").unwrap();
        assert_eq!(av1.info.codec, VideoCodec::Av1);
        assert_eq!(av1.body, &[0x12, 0x00]);

        let vp9_end = VideoTagInfo::parse(b"\x92vp09").unwrap();
        assert_eq!(vp9_end.codec, VideoCodec::Vp9);
        assert_eq!(vp9_end.packet, VideoPacket::EndOfSequence);

        let meta = VideoTagInfo::parse(b"\x94avc1\x02").unwrap();
        assert_eq!(meta.packet, VideoPacket::Metadata);

        let ts = VideoTagInfo::parse(b"\x95avc1").unwrap();
        assert_eq!(ts.packet, VideoPacket::Other);

        let unknown = VideoTagInfo::parse(b"\x91xyz1").unwrap();
        assert_eq!(unknown.codec, VideoCodec::Unknown(FourCc(*b"xyz1")));
        assert_eq!(unknown.codec.to_string(), "xyz1");
    }

    #[test]
    fn enhanced_command_frame_has_no_fourcc() {
        let command = parse_video_tag(&[0xd1, 0x00]).unwrap();
        assert_eq!(command.info.frame, FrameKind::Command);
        assert_eq!(command.info.codec, VideoCodec::Unspecified);
        assert_eq!(command.info.packet, VideoPacket::Other);
    }

    #[test]
    fn enhanced_mod_ex_is_skipped() {
        // ModEx with 3 bytes of nano-offset data, then CodedFrames for avc1.
        let tag = parse_video_tag(b"\x97\x02\x00\x01\x02\x01avc1\x00\x00\x05\xee").unwrap();
        assert!(tag.info.is_keyframe());
        assert_eq!(tag.info.codec, VideoCodec::Avc);
        assert_eq!(tag.info.composition_time, 5);
        assert_eq!(tag.body, &[0xee]);

        // 16-bit size escape: 0xff then u16 (299 => 300 bytes).
        let mut long = vec![0x97, 0xff, 0x01, 0x2b];
        long.extend(std::iter::repeat_n(0xab, 300));
        long.extend_from_slice(b"\x00hvc1");
        assert!(VideoTagInfo::parse(&long).unwrap().is_sequence_header());

        assert_eq!(VideoTagInfo::parse(b"\x97\x05\x00"), Err(CodecError::Truncated("ModEx data")));
    }

    #[test]
    fn enhanced_multitrack_first_track() {
        // OneTrack, CodedFrames, hvc1, track 2, then cts and body.
        let one = parse_video_tag(b"\x96\x01hvc1\x02\x00\x00\x00\xee").unwrap();
        assert_eq!(one.info.codec, VideoCodec::Hevc);
        assert_eq!(one.info.track_id, 2);
        assert!(one.info.is_keyframe());
        assert_eq!(one.body, &[0xee]);

        // ManyTracksManyCodecs, SequenceStart: FourCC, id and size per track.
        let many = parse_video_tag(b"\x96\x20av01\x00\x00\x00\x02\x81\x00").unwrap();
        assert_eq!(many.info.codec, VideoCodec::Av1);
        assert!(many.info.is_sequence_header());
        assert_eq!(many.info.track_id, 0);

        assert_eq!(VideoTagInfo::parse(b"\x96\x31avc1"), Err(CodecError::Unsupported("multitrack type")));
    }

    #[test]
    fn legacy_audio_headers() {
        let seq = parse_audio_tag(&[0xaf, 0x00, 0x12, 0x08]).unwrap();
        assert_eq!(seq.info.codec, AudioCodec::Aac);
        assert!(seq.info.is_sequence_header());
        assert_eq!(seq.body, &[0x12, 0x08]);
        assert_eq!(
            seq.info.legacy_format,
            Some(LegacyAudioFormat { sample_rate: 44100, sample_bits: 16, stereo: true })
        );
        let raw = AudioTagInfo::parse(&[0xaf, 0x01, 0x21]).unwrap();
        assert_eq!(raw.packet, AudioPacket::Raw);

        // MP3, 22 kHz, 16-bit, mono: every tag is raw data.
        let mp3 = AudioTagInfo::parse(&[0x2a, 0xff, 0xfb]).unwrap();
        assert_eq!(mp3.codec, AudioCodec::Mp3);
        assert_eq!(mp3.packet, AudioPacket::Raw);
        assert_eq!(mp3.legacy_format, Some(LegacyAudioFormat { sample_rate: 22050, sample_bits: 16, stereo: false }));
        assert_eq!(AudioTagInfo::parse(&[0x72]).unwrap().codec, AudioCodec::G711ALaw);
        assert_eq!(AudioTagInfo::parse(&[0xd0]).unwrap().codec, AudioCodec::Legacy(13));

        assert_eq!(AudioTagInfo::parse(&[]), Err(CodecError::Truncated("audio tag header")));
        assert_eq!(AudioTagInfo::parse(&[0xaf]), Err(CodecError::Truncated("AAC packet type")));
    }

    #[test]
    fn enhanced_audio_headers() {
        let opus = parse_audio_tag(b"\x90Opus\x01").unwrap();
        assert_eq!(opus.info.codec, AudioCodec::Opus);
        assert!(opus.info.is_sequence_header());
        assert_eq!(opus.info.legacy_format, None);
        assert_eq!(opus.body, &[0x01]);

        let cases: [(&[u8], AudioCodec, AudioPacket); 6] = [
            (b"\x91fLaC", AudioCodec::Flac, AudioPacket::Raw),
            (b"\x91ac-3", AudioCodec::Ac3, AudioPacket::Raw),
            (b"\x91ec-3", AudioCodec::Eac3, AudioPacket::Raw),
            (b"\x90mp4a", AudioCodec::Aac, AudioPacket::SequenceHeader),
            (b"\x91.mp3", AudioCodec::Mp3, AudioPacket::Raw),
            (b"\x94Opus", AudioCodec::Opus, AudioPacket::Other),
        ];
        for (bytes, codec, packet) in cases {
            let info = AudioTagInfo::parse(bytes).unwrap();
            assert_eq!((info.codec, info.packet), (codec, packet), "{bytes:?}");
        }

        // ModEx, then multitrack OneTrack of Opus coded frames on track 1.
        let mt = parse_audio_tag(b"\x97\x00\x00\x05\x01Opus\x01\xee").unwrap();
        assert_eq!(mt.info.codec, AudioCodec::Opus);
        assert_eq!(mt.info.packet, AudioPacket::Raw);
        assert_eq!(mt.info.track_id, 1);
        assert_eq!(mt.body, &[0xee]);

        assert_eq!(AudioTagInfo::parse(b"\x90Op"), Err(CodecError::Truncated("audio FourCC")));
    }

    #[test]
    fn codecs_serialise_by_name() {
        assert_eq!(VideoCodec::Avc.to_string(), "h264");
        assert_eq!(VideoCodec::Legacy(4).to_string(), "flv-codec-4");
        assert_eq!(AudioCodec::Aac.to_string(), "aac");
        assert_eq!(AudioCodec::Unknown(FourCc([0, 1, 2, 3])).to_string(), "0x00010203");
    }

    proptest! {
        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(tag) = parse_video_tag(&data) {
                let _ = VideoConfig::parse(tag.info.codec, tag.body);
            }
            if let Ok(tag) = parse_audio_tag(&data) {
                let _ = AudioConfig::parse(tag.info.codec, tag.body);
            }
            for codec in [VideoCodec::Avc, VideoCodec::Hevc, VideoCodec::Av1, VideoCodec::Vp9] {
                let _ = VideoConfig::parse(codec, &data);
            }
            let _ = AudioSpecificConfig::parse(&data);
        }

        #[test]
        fn enhanced_prefixes_with_garbage_never_panic(
            first in 0x80u8..=0xff,
            data in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut payload = vec![first];
            payload.extend_from_slice(&data);
            let _ = parse_video_tag(&payload);
            payload[0] = 0x90 | (first & 0x0f);
            let _ = parse_audio_tag(&payload);
        }
    }
}
