//! The FLV container: tag type, whole-file reader, incremental reader and writer.
//!
//! Layout (Adobe FLV spec v10.1, annex E): a 9-byte file header, `PreviousTagSize0`
//! (always 0), then repeated `tag header (11) | payload | PreviousTagSize (4)`, where
//! `PreviousTagSize` is the size of the tag it follows, header included.
//!
//! Payloads are never copied out of the buffer they were read from: every [`FlvTag`]
//! holds a [`Bytes`] slice of it, so fanning a tag out to many consumers is a
//! reference-count bump.

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use serde::Serialize;
use thiserror::Error;

use crate::rtmp::{MediaKind, StreamMessage};

/// Length of the FLV file header proper.
pub const FILE_HEADER_LEN: usize = 9;
/// Length of the file header plus the `PreviousTagSize0` that always follows it.
pub const FILE_PREAMBLE_LEN: usize = FILE_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN;
/// Length of a tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Length of the `PreviousTagSize` field trailing every tag.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Default cap on a tag's payload size. Real video frames stay far below this; the cap
/// exists so a corrupt or hostile size field cannot make a reader buffer gigabytes.
pub const DEFAULT_MAX_TAG_SIZE: usize = 16 * 1024 * 1024;
/// The data-size field of a tag header is 24 bits wide.
pub const MAX_ENCODABLE_TAG_SIZE: usize = 0x00FF_FFFF;

/// A header may declare a data offset past 9 to reserve room for extensions. Nothing
/// uses that in practice, so a large offset is treated as garbage rather than buffered.
const MAX_DATA_OFFSET: usize = 1024;
const SIGNATURE: &[u8; 3] = b"FLV";
const VERSION: u8 = 1;
const FLAG_AUDIO: u8 = 0x04;
const FLAG_VIDEO: u8 = 0x01;
/// Bit of the tag-type byte marking an encrypted (filtered) tag.
const TAG_FILTER_BIT: u8 = 0x20;
const TAG_TYPE_MASK: u8 = 0x1F;

/// Errors raised while reading or writing FLV data. Once a reader has returned an
/// error the byte stream cannot be resynchronised; drop it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FlvError {
    #[error("not FLV data: bad signature")]
    BadSignature,
    #[error("unsupported FLV version {0}")]
    UnsupportedVersion(u8),
    #[error("FLV header data offset {0} is invalid")]
    BadDataOffset(u32),
    #[error("PreviousTagSize0 is {0}, expected 0")]
    BadFirstPreviousTagSize(u32),
    #[error("FLV data truncated: {needed} more bytes needed")]
    Truncated { needed: usize },
    #[error("unknown FLV tag type {0}")]
    UnknownTagType(u8),
    #[error("encrypted FLV tags are not supported")]
    Encrypted,
    #[error("FLV tag stream id is {0}, expected 0")]
    NonZeroStreamId(u32),
    #[error("FLV tag of {size} bytes exceeds the {max} byte limit")]
    TagTooLarge { size: usize, max: usize },
    #[error("PreviousTagSize is {found}, expected {expected}")]
    PreviousTagSizeMismatch { expected: u32, found: u32 },
    #[error("FLV reader buffer full ({buffered} bytes pending); drain tags before feeding more")]
    BufferFull { buffered: usize },
}

/// The type of an FLV tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[repr(u8)]
pub enum TagKind {
    Audio = 8,
    Video = 9,
    Script = 18,
}

impl TryFrom<u8> for TagKind {
    type Error = FlvError;

    fn try_from(value: u8) -> Result<Self, FlvError> {
        match value {
            8 => Ok(TagKind::Audio),
            9 => Ok(TagKind::Video),
            18 => Ok(TagKind::Script),
            other => Err(FlvError::UnknownTagType(other)),
        }
    }
}

/// One FLV tag. Cloning is cheap: the payload is shared, not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlvTag {
    pub kind: TagKind,
    /// Decode timestamp in milliseconds.
    pub timestamp: u32,
    pub payload: Bytes,
}

impl FlvTag {
    pub fn new(kind: TagKind, timestamp: u32, payload: impl Into<Bytes>) -> Self {
        FlvTag { kind, timestamp, payload: payload.into() }
    }

    /// The tag as an RTMP client publishes it (the payload is shared, not copied).
    pub fn to_rtmp(&self) -> StreamMessage {
        let media = |kind| StreamMessage::Media { kind, timestamp: self.timestamp, payload: self.payload.clone() };
        match self.kind {
            TagKind::Audio => media(MediaKind::Audio),
            TagKind::Video => media(MediaKind::Video),
            TagKind::Script => StreamMessage::Metadata(self.payload.clone()),
        }
    }

    /// Whether this is an `onMetaData` script tag, either as stored in files or in the
    /// `@setDataFrame("onMetaData", ...)` form publishers send over RTMP.
    pub fn is_metadata(&self) -> bool {
        if self.kind != TagKind::Script {
            return false;
        }
        let name = amf0_leading_string(&self.payload);
        name == Some(b"onMetaData") || name == Some(b"@setDataFrame")
    }

    /// Serialises the tag for writing after a file preamble or a previous tag.
    pub fn encode(&self) -> Result<EncodedTag, FlvError> {
        EncodedTag::new(self)
    }
}

/// Returns the first AMF0 value of a script payload if it is a short string.
fn amf0_leading_string(payload: &[u8]) -> Option<&[u8]> {
    const AMF0_STRING: u8 = 0x02;
    let (&marker, rest) = payload.split_first()?;
    if marker != AMF0_STRING {
        return None;
    }
    let (len, rest) = rest.split_first_chunk::<2>()?;
    rest.get(..usize::from(u16::from_be_bytes(*len)))
}

/// The flags of the FLV file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    pub has_audio: bool,
    pub has_video: bool,
}

impl FlvHeader {
    /// The first bytes of an FLV file: header plus `PreviousTagSize0`.
    pub fn encode(&self) -> [u8; FILE_PREAMBLE_LEN] {
        let mut flags = 0;
        if self.has_audio {
            flags |= FLAG_AUDIO;
        }
        if self.has_video {
            flags |= FLAG_VIDEO;
        }
        let offset = (FILE_HEADER_LEN as u32).to_be_bytes();
        [b'F', b'L', b'V', VERSION, flags, offset[0], offset[1], offset[2], offset[3], 0, 0, 0, 0]
    }

    /// Parses the file preamble at the front of `buf`. `Ok(None)` means more bytes are
    /// needed; on success also returns how many bytes the preamble occupies.
    fn parse(buf: &[u8]) -> Result<Option<(FlvHeader, usize)>, FlvError> {
        // Check what we have of the signature first so a non-FLV peer is rejected at once.
        let seen = buf.len().min(SIGNATURE.len());
        if buf[..seen] != SIGNATURE[..seen] {
            return Err(FlvError::BadSignature);
        }
        let Some(header) = buf.first_chunk::<FILE_HEADER_LEN>() else {
            return Ok(None);
        };
        let [_, _, _, version, flags, o0, o1, o2, o3] = *header;
        if version != VERSION {
            return Err(FlvError::UnsupportedVersion(version));
        }
        let offset = u32::from_be_bytes([o0, o1, o2, o3]);
        let data_offset = usize::try_from(offset).unwrap_or(usize::MAX);
        if !(FILE_HEADER_LEN..=MAX_DATA_OFFSET).contains(&data_offset) {
            return Err(FlvError::BadDataOffset(offset));
        }
        let Some(&first_prev) = buf.get(data_offset..).and_then(|rest| rest.first_chunk::<PREVIOUS_TAG_SIZE_LEN>())
        else {
            return Ok(None);
        };
        let first_prev = u32::from_be_bytes(first_prev);
        if first_prev != 0 {
            return Err(FlvError::BadFirstPreviousTagSize(first_prev));
        }
        let header = FlvHeader { has_audio: flags & FLAG_AUDIO != 0, has_video: flags & FLAG_VIDEO != 0 };
        Ok(Some((header, data_offset + PREVIOUS_TAG_SIZE_LEN)))
    }
}

/// What the front of a buffer holds, tag-wise.
enum Frame {
    Incomplete { needed: usize },
    Tag { kind: TagKind, timestamp: u32, payload_len: usize },
}

impl Frame {
    /// Examines (without consuming) the tag at the front of `buf`. Fails as soon as the
    /// header is readable if the tag is unacceptable, so oversized tags are never buffered.
    fn check(buf: &[u8], max_tag_size: usize) -> Result<Frame, FlvError> {
        let Some(header) = buf.first_chunk::<TAG_HEADER_LEN>() else {
            return Ok(Frame::Incomplete { needed: TAG_HEADER_LEN - buf.len() });
        };
        let [type_byte, s0, s1, s2, t0, t1, t2, t_ext, i0, i1, i2] = *header;
        if type_byte & TAG_FILTER_BIT != 0 {
            return Err(FlvError::Encrypted);
        }
        // The two top bits are reserved; ignore them rather than reject the tag.
        let kind = TagKind::try_from(type_byte & TAG_TYPE_MASK)?;
        let payload_len = u32::from_be_bytes([0, s0, s1, s2]) as usize;
        if payload_len > max_tag_size {
            return Err(FlvError::TagTooLarge { size: payload_len, max: max_tag_size });
        }
        let stream_id = u32::from_be_bytes([0, i0, i1, i2]);
        if stream_id != 0 {
            return Err(FlvError::NonZeroStreamId(stream_id));
        }
        // The extended byte holds the top 8 bits of the 32-bit timestamp.
        let timestamp = u32::from_be_bytes([t_ext, t0, t1, t2]);

        let total = TAG_HEADER_LEN + payload_len + PREVIOUS_TAG_SIZE_LEN;
        let Some(&prev) =
            buf.get(total - PREVIOUS_TAG_SIZE_LEN..total).and_then(|s| s.first_chunk::<PREVIOUS_TAG_SIZE_LEN>())
        else {
            return Ok(Frame::Incomplete { needed: total - buf.len() });
        };
        let found = u32::from_be_bytes(prev);
        let expected = (TAG_HEADER_LEN + payload_len) as u32;
        if found != expected {
            return Err(FlvError::PreviousTagSizeMismatch { expected, found });
        }
        Ok(Frame::Tag { kind, timestamp, payload_len })
    }
}

/// Takes the tag `Frame::check` just validated off the front of `buf`; the payload is a
/// slice of the same allocation.
fn take_tag(buf: &mut Bytes, kind: TagKind, timestamp: u32, payload_len: usize) -> FlvTag {
    let unit = buf.split_to(TAG_HEADER_LEN + payload_len + PREVIOUS_TAG_SIZE_LEN);
    FlvTag { kind, timestamp, payload: unit.slice(TAG_HEADER_LEN..TAG_HEADER_LEN + payload_len) }
}

/// Reads the tags of a complete in-memory FLV file.
///
/// Yields `Ok(tag)` for each tag, then stops; after the first `Err` it yields nothing.
/// A file cut in the middle of a tag ends with [`FlvError::Truncated`].
#[derive(Debug)]
pub struct FlvReader {
    rest: Bytes,
    header: FlvHeader,
    max_tag_size: usize,
    failed: bool,
}

impl FlvReader {
    /// Parses the file header; tags are then read by iterating.
    pub fn new(data: Bytes) -> Result<Self, FlvError> {
        Self::with_max_tag_size(data, DEFAULT_MAX_TAG_SIZE)
    }

    pub fn with_max_tag_size(mut data: Bytes, max_tag_size: usize) -> Result<Self, FlvError> {
        let Some((header, len)) = FlvHeader::parse(&data)? else {
            return Err(FlvError::Truncated { needed: FILE_PREAMBLE_LEN.saturating_sub(data.len()).max(1) });
        };
        data.advance(len);
        Ok(FlvReader { rest: data, header, max_tag_size, failed: false })
    }

    pub fn header(&self) -> FlvHeader {
        self.header
    }
}

impl Iterator for FlvReader {
    type Item = Result<FlvTag, FlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let result = match Frame::check(&self.rest, self.max_tag_size) {
            Ok(Frame::Tag { kind, timestamp, payload_len }) => {
                Ok(take_tag(&mut self.rest, kind, timestamp, payload_len))
            }
            Ok(Frame::Incomplete { needed }) => Err(FlvError::Truncated { needed }),
            Err(e) => Err(e),
        };
        self.failed = result.is_err();
        Some(result)
    }
}

impl std::iter::FusedIterator for FlvReader {}

/// Reads FLV incrementally from chunks as they arrive (a socket, a growing file).
///
/// Call [`feed`](Self::feed) with each chunk, then [`next_tag`](Self::next_tag) until it
/// returns `Ok(None)`. Memory is bounded: a tag declaring more than `max_tag_size` bytes
/// is rejected as soon as its header arrives, and `feed` refuses data while more than a
/// maximal tag is already pending, i.e. when the caller is not draining.
#[derive(Debug)]
pub struct FlvStreamReader {
    buf: BytesMut,
    header: Option<FlvHeader>,
    max_tag_size: usize,
}

impl Default for FlvStreamReader {
    fn default() -> Self {
        Self::new()
    }
}

impl FlvStreamReader {
    pub fn new() -> Self {
        Self::with_max_tag_size(DEFAULT_MAX_TAG_SIZE)
    }

    pub fn with_max_tag_size(max_tag_size: usize) -> Self {
        FlvStreamReader { buf: BytesMut::new(), header: None, max_tag_size }
    }

    /// The file header, once it has been read.
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// Bytes received but not yet returned as tags.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends received bytes. These are copied once into the reader's buffer, from
    /// which tag payloads are then sliced without further copies.
    pub fn feed(&mut self, data: &[u8]) -> Result<(), FlvError> {
        let max_pending =
            (self.max_tag_size + TAG_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN).max(MAX_DATA_OFFSET + PREVIOUS_TAG_SIZE_LEN);
        if self.buf.len() > max_pending {
            return Err(FlvError::BufferFull { buffered: self.buf.len() });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Returns the next complete tag, `Ok(None)` if more bytes are needed, or an error
    /// if the stream is malformed (the same error is returned again on later calls).
    pub fn next_tag(&mut self) -> Result<Option<FlvTag>, FlvError> {
        if self.header.is_none() {
            let Some((header, len)) = FlvHeader::parse(&self.buf)? else {
                return Ok(None);
            };
            self.buf.advance(len);
            self.header = Some(header);
        }
        match Frame::check(&self.buf, self.max_tag_size)? {
            Frame::Incomplete { .. } => Ok(None),
            Frame::Tag { kind, timestamp, payload_len } => {
                let len = TAG_HEADER_LEN + payload_len + PREVIOUS_TAG_SIZE_LEN;
                let mut unit = self.buf.split_to(len).freeze();
                Ok(Some(take_tag(&mut unit, kind, timestamp, payload_len)))
            }
        }
    }
}

/// A tag ready to be written: an 11-byte header, the shared payload and the 4-byte
/// `PreviousTagSize`, kept as three parts so the payload is never copied.
///
/// It implements [`Buf`] with [`Buf::chunks_vectored`], so `tokio`'s `write_all_buf`
/// sends it with vectored writes; `BytesMut::put` copies it into a contiguous buffer.
#[derive(Debug, Clone)]
pub struct EncodedTag {
    header: [u8; TAG_HEADER_LEN],
    payload: Bytes,
    trailer: [u8; PREVIOUS_TAG_SIZE_LEN],
    /// How many bytes have already been consumed through [`Buf::advance`].
    pos: usize,
}

impl EncodedTag {
    fn new(tag: &FlvTag) -> Result<Self, FlvError> {
        let len = tag.payload.len();
        if len > MAX_ENCODABLE_TAG_SIZE {
            return Err(FlvError::TagTooLarge { size: len, max: MAX_ENCODABLE_TAG_SIZE });
        }
        let [_, s0, s1, s2] = (len as u32).to_be_bytes();
        let [t_ext, t0, t1, t2] = tag.timestamp.to_be_bytes();
        Ok(EncodedTag {
            header: [tag.kind as u8, s0, s1, s2, t0, t1, t2, t_ext, 0, 0, 0],
            payload: tag.payload.clone(),
            trailer: ((TAG_HEADER_LEN + len) as u32).to_be_bytes(),
            pos: 0,
        })
    }

    /// The tag as three owned buffers — header, shared payload, previous-tag size — for
    /// writers that take `Bytes` (an HTTP body, say). The payload is not copied.
    pub fn into_chunks(self) -> [Bytes; 3] {
        let header = Bytes::copy_from_slice(&self.header);
        let trailer = Bytes::copy_from_slice(&self.trailer);
        [header, self.payload, trailer]
    }

    fn parts(&self) -> [&[u8]; 3] {
        [&self.header, &self.payload, &self.trailer]
    }

    fn total_len(&self) -> usize {
        TAG_HEADER_LEN + self.payload.len() + PREVIOUS_TAG_SIZE_LEN
    }
}

impl Buf for EncodedTag {
    fn remaining(&self) -> usize {
        self.total_len() - self.pos
    }

    fn chunk(&self) -> &[u8] {
        let mut skip = self.pos;
        for part in self.parts() {
            if skip < part.len() {
                return &part[skip..];
            }
            skip -= part.len();
        }
        &[]
    }

    fn advance(&mut self, cnt: usize) {
        assert!(cnt <= self.remaining(), "advance past the end of an EncodedTag");
        self.pos += cnt;
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut skip = self.pos;
        let mut filled = 0;
        for part in self.parts() {
            if filled == dst.len() {
                break;
            }
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            dst[filled] = IoSlice::new(&part[skip..]);
            skip = 0;
            filled += 1;
        }
        filled
    }
}

/// Shifts a stream's timestamps so it starts at 0 (ingests and players treat a stream
/// whose first timestamp is hours in as broken), by the same amount for every track so they
/// stay in sync. The base is the first audio or video tag: script data may be stamped ahead
/// of the pictures (the program shifts it with the audio) and would otherwise push every
/// later picture below 0. A tag older than the base (audio interleaved before the
/// keyframe, script data before any media) is stamped 0.
#[derive(Debug, Default)]
pub struct ZeroBase {
    base: Option<u32>,
}

impl ZeroBase {
    pub fn apply(&mut self, tag: &FlvTag) -> FlvTag {
        if tag.kind != TagKind::Script {
            self.base.get_or_insert(tag.timestamp);
        }
        let Some(base) = self.base else {
            return FlvTag { timestamp: 0, ..tag.clone() };
        };
        // Modular arithmetic survives the 32-bit wrap (49.7 days).
        let shifted = tag.timestamp.wrapping_sub(base);
        FlvTag { timestamp: if shifted > i32::MAX as u32 { 0 } else { shifted }, ..tag.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use proptest::prelude::*;

    fn file(header: FlvHeader, tags: &[FlvTag]) -> Bytes {
        let mut out = BytesMut::new();
        out.extend_from_slice(&header.encode());
        for tag in tags {
            out.put(tag.encode().expect("encodable test tag"));
        }
        out.freeze()
    }

    fn sample_tags() -> Vec<FlvTag> {
        vec![
            FlvTag::new(TagKind::Script, 0, &b"\x02\x00\x0aonMetaData"[..]),
            FlvTag::new(TagKind::Video, 0, &b"\x17\x00\x00\x00\x00"[..]),
            FlvTag::new(TagKind::Audio, 23, &b"\xaf\x01\x21"[..]),
            // Needs the extended timestamp byte.
            FlvTag::new(TagKind::Video, 0x1234_5678, vec![0x27; 300]),
            FlvTag::new(TagKind::Audio, 40, Bytes::new()),
        ]
    }

    fn all_tags(reader: FlvReader) -> Result<Vec<FlvTag>, FlvError> {
        reader.collect()
    }

    #[test]
    fn header_encoding_sets_flags() {
        let both = FlvHeader { has_audio: true, has_video: true };
        assert_eq!(both.encode(), *b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        let audio = FlvHeader { has_audio: true, has_video: false };
        assert_eq!(audio.encode()[4], 0x04);
    }

    #[test]
    fn tag_encoding_matches_spec_layout() {
        let tag = FlvTag::new(TagKind::Video, 0x0102_0304, &b"abc"[..]);
        let mut out = BytesMut::new();
        out.put(tag.encode().unwrap());
        assert_eq!(&out[..], b"\x09\x00\x00\x03\x02\x03\x04\x01\x00\x00\x00abc\x00\x00\x00\x0e");
    }

    #[test]
    fn encoded_tag_exposes_three_io_slices_sharing_the_payload() {
        let tag = FlvTag::new(TagKind::Audio, 1, vec![7u8; 10]);
        let mut enc = tag.encode().unwrap();
        {
            let mut slices = [IoSlice::new(&[]); 4];
            assert_eq!(enc.chunks_vectored(&mut slices), 3);
            assert_eq!(slices[1].as_ptr(), tag.payload.as_ptr());
            assert_eq!(slices[2].len(), 4);
        }
        assert_eq!(enc.remaining(), 25);

        // After a partial write the remaining parts start mid-payload.
        enc.advance(13);
        assert_eq!(enc.chunk(), &[7u8; 8][..]);
        assert_eq!(enc.chunks_vectored(&mut [IoSlice::new(&[]); 4]), 2);
        enc.advance(8);
        assert_eq!(enc.chunk(), &[0, 0, 0, 21][..]);
        enc.advance(4);
        assert_eq!(enc.remaining(), 0);
        assert!(enc.chunk().is_empty());
        assert_eq!(enc.chunks_vectored(&mut [IoSlice::new(&[]); 4]), 0);
    }

    #[test]
    fn oversized_payload_cannot_be_encoded() {
        let tag = FlvTag::new(TagKind::Video, 0, vec![0u8; MAX_ENCODABLE_TAG_SIZE + 1]);
        assert!(matches!(
            tag.encode(),
            Err(FlvError::TagTooLarge { size, .. }) if size == MAX_ENCODABLE_TAG_SIZE + 1
        ));
    }

    #[test]
    fn file_round_trip_is_zero_copy() {
        let header = FlvHeader { has_audio: true, has_video: true };
        let data = file(header, &sample_tags());
        let reader = FlvReader::new(data.clone()).unwrap();
        assert_eq!(reader.header(), header);
        let tags = all_tags(reader).unwrap();
        assert_eq!(tags, sample_tags());
        // The payload points into the file buffer rather than a copy.
        let range = data.as_ptr_range();
        assert!(range.contains(&tags[3].payload.as_ptr()));
    }

    #[test]
    fn empty_file_has_no_tags() {
        let header = FlvHeader { has_audio: false, has_video: true };
        let reader = FlvReader::new(file(header, &[])).unwrap();
        assert_eq!(reader.count(), 0);
    }

    #[test]
    fn bad_signature_and_version_are_rejected() {
        let err = FlvReader::new(Bytes::from_static(b"FLX\x01\x05\x00\x00\x00\x09\0\0\0\0"));
        assert_eq!(err.unwrap_err(), FlvError::BadSignature);
        let err = FlvReader::new(Bytes::from_static(b"FLV\x02\x05\x00\x00\x00\x09\0\0\0\0"));
        assert_eq!(err.unwrap_err(), FlvError::UnsupportedVersion(2));
        let err = FlvReader::new(Bytes::from_static(b"FLV\x01\x05\x00\x00\x00\x05\0\0\0\0"));
        assert_eq!(err.unwrap_err(), FlvError::BadDataOffset(5));
        let err = FlvReader::new(Bytes::from_static(b"FLV\x01\x05\x00\x00\x00\x09\0\0\0\x01"));
        assert_eq!(err.unwrap_err(), FlvError::BadFirstPreviousTagSize(1));
        let err = FlvReader::new(Bytes::from_static(b"FLV\x01\x05"));
        assert!(matches!(err, Err(FlvError::Truncated { .. })));
    }

    #[test]
    fn header_data_offset_past_nine_is_skipped() {
        let mut data = b"FLV\x01\x01\x00\x00\x00\x0c\xaa\xbb\xcc\0\0\0\0".to_vec();
        data.put(FlvTag::new(TagKind::Video, 5, &b"\x17"[..]).encode().unwrap());
        let tags = all_tags(FlvReader::new(data.into()).unwrap()).unwrap();
        assert_eq!(tags, vec![FlvTag::new(TagKind::Video, 5, &b"\x17"[..])]);
    }

    #[test]
    fn truncated_tag_is_an_error_after_the_complete_ones() {
        let header = FlvHeader { has_audio: true, has_video: true };
        let data = file(header, &sample_tags());
        let cut = data.slice(..data.len() - 2);
        let mut reader = FlvReader::new(cut).unwrap();
        for expected in &sample_tags()[..4] {
            assert_eq!(reader.next().unwrap().as_ref(), Ok(expected));
        }
        assert_eq!(reader.next(), Some(Err(FlvError::Truncated { needed: 2 })));
        assert_eq!(reader.next(), None);
    }

    fn raw_tag(type_byte: u8, size: [u8; 3], stream_id: [u8; 3]) -> Bytes {
        let mut data = FlvHeader { has_audio: true, has_video: true }.encode().to_vec();
        data.extend_from_slice(&[type_byte, size[0], size[1], size[2], 0, 0, 0, 0]);
        data.extend_from_slice(&stream_id);
        data.into()
    }

    #[test]
    fn absurd_and_invalid_tag_headers_are_rejected() {
        let first = |data| FlvReader::new(data).unwrap().next().unwrap();
        // Within the default limit a huge size field just means the file is cut short...
        assert_eq!(
            first(raw_tag(9, [0xff, 0xff, 0xff], [0; 3])),
            Err(FlvError::Truncated { needed: 0xff_ffff + PREVIOUS_TAG_SIZE_LEN })
        );
        // ...and with a tighter one it is refused from the header alone.
        let limited = FlvReader::with_max_tag_size(raw_tag(9, [0xff, 0xff, 0xff], [0; 3]), 1 << 20).unwrap().next();
        assert_eq!(limited, Some(Err(FlvError::TagTooLarge { size: 0xff_ffff, max: 1 << 20 })));
        assert_eq!(first(raw_tag(7, [0, 0, 1], [0; 3])), Err(FlvError::UnknownTagType(7)));
        assert_eq!(first(raw_tag(0x29, [0, 0, 1], [0; 3])), Err(FlvError::Encrypted));
        assert_eq!(first(raw_tag(9, [0, 0, 1], [0, 0, 1])), Err(FlvError::NonZeroStreamId(1)));
        let small = FlvReader::with_max_tag_size(raw_tag(9, [0, 1, 0], [0; 3]), 255).unwrap().next().unwrap();
        assert_eq!(small, Err(FlvError::TagTooLarge { size: 256, max: 255 }));
    }

    #[test]
    fn previous_tag_size_mismatch_is_rejected() {
        let mut data =
            file(FlvHeader { has_audio: true, has_video: false }, &[FlvTag::new(TagKind::Audio, 0, &b"xy"[..])])
                .to_vec();
        let last = data.len() - 1;
        data[last] = 99;
        let got = FlvReader::new(data.into()).unwrap().next().unwrap();
        assert_eq!(got, Err(FlvError::PreviousTagSizeMismatch { expected: 13, found: 99 }));
    }

    #[test]
    fn metadata_tags_are_recognised() {
        assert!(FlvTag::new(TagKind::Script, 0, &b"\x02\x00\x0aonMetaData\x08"[..]).is_metadata());
        assert!(FlvTag::new(TagKind::Script, 0, &b"\x02\x00\x0d@setDataFrame\x02"[..]).is_metadata());
        assert!(!FlvTag::new(TagKind::Script, 0, &b"\x02\x00\x0aonCuePoint"[..]).is_metadata());
        assert!(!FlvTag::new(TagKind::Script, 0, &b"\x02\x00\x0aonMeta"[..]).is_metadata());
        assert!(!FlvTag::new(TagKind::Video, 0, &b"\x02\x00\x0aonMetaData"[..]).is_metadata());
        assert!(!FlvTag::new(TagKind::Script, 0, Bytes::new()).is_metadata());
    }

    fn drain(reader: &mut FlvStreamReader, out: &mut Vec<FlvTag>) -> Result<(), FlvError> {
        while let Some(tag) = reader.next_tag()? {
            out.push(tag);
        }
        Ok(())
    }

    #[test]
    fn stream_reader_handles_byte_by_byte_input() {
        let data = file(FlvHeader { has_audio: true, has_video: true }, &sample_tags());
        let mut reader = FlvStreamReader::new();
        let mut tags = Vec::new();
        for byte in data.iter() {
            reader.feed(&[*byte]).unwrap();
            drain(&mut reader, &mut tags).unwrap();
        }
        assert_eq!(tags, sample_tags());
        assert_eq!(reader.buffered(), 0);
        assert!(reader.header().is_some_and(|h| h.has_audio && h.has_video));
    }

    #[test]
    fn stream_reader_rejects_non_flv_early_and_oversize_tags_at_the_header() {
        let mut reader = FlvStreamReader::new();
        reader.feed(b"GE").unwrap();
        assert_eq!(reader.next_tag(), Err(FlvError::BadSignature));

        let mut reader = FlvStreamReader::with_max_tag_size(1000);
        reader.feed(&raw_tag(9, [0, 0x10, 0], [0; 3])).unwrap();
        assert_eq!(reader.next_tag(), Err(FlvError::TagTooLarge { size: 4096, max: 1000 }));
    }

    #[test]
    fn stream_reader_refuses_to_grow_when_not_drained() {
        let mut reader = FlvStreamReader::with_max_tag_size(100);
        let chunk = [0u8; 600];
        reader.feed(&chunk).unwrap();
        reader.feed(&chunk).unwrap();
        assert_eq!(reader.feed(&chunk), Err(FlvError::BufferFull { buffered: 1200 }));
    }

    fn arb_tag() -> impl Strategy<Value = FlvTag> {
        (
            prop::sample::select(vec![TagKind::Audio, TagKind::Video, TagKind::Script]),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..600),
        )
            .prop_map(|(kind, timestamp, payload)| FlvTag::new(kind, timestamp, payload))
    }

    proptest! {
        #[test]
        fn written_tags_read_back_identical(
            tags in prop::collection::vec(arb_tag(), 0..20),
            has_audio: bool,
            has_video: bool,
            chunk in 1usize..700,
        ) {
            let header = FlvHeader { has_audio, has_video };
            let data = file(header, &tags);

            let reader = FlvReader::new(data.clone()).unwrap();
            prop_assert_eq!(reader.header(), header);
            prop_assert_eq!(&all_tags(reader).unwrap(), &tags);

            let mut stream = FlvStreamReader::new();
            let mut streamed = Vec::new();
            for piece in data.chunks(chunk) {
                stream.feed(piece).unwrap();
                drain(&mut stream, &mut streamed).unwrap();
            }
            prop_assert_eq!(&streamed, &tags);
        }

        #[test]
        fn random_bytes_never_panic(
            data in prop::collection::vec(any::<u8>(), 0..2000),
            valid_preamble: bool,
        ) {
            let mut input = Vec::new();
            if valid_preamble {
                input.extend_from_slice(&FlvHeader { has_audio: true, has_video: true }.encode());
            }
            input.extend_from_slice(&data);
            if let Ok(reader) = FlvReader::with_max_tag_size(input.clone().into(), 512) {
                for item in reader {
                    let _ = item;
                }
            }
            let mut stream = FlvStreamReader::with_max_tag_size(512);
            for piece in input.chunks(97) {
                if stream.feed(piece).is_err() {
                    break;
                }
                let mut out = Vec::new();
                if drain(&mut stream, &mut out).is_err() {
                    break;
                }
            }
        }
    }

    #[test]
    fn zero_base_starts_at_the_first_picture_or_sound_and_keeps_offsets() {
        let tag = |kind, timestamp| FlvTag::new(kind, timestamp, &b"x"[..]);
        let mut rebase = ZeroBase::default();
        let out: Vec<u32> = [
            tag(TagKind::Script, 5000),
            tag(TagKind::Video, 3_600_000),
            tag(TagKind::Script, 3_600_033),
            tag(TagKind::Audio, 3_599_990),
            tag(TagKind::Audio, 3_600_023),
            tag(TagKind::Video, 3_600_033),
        ]
        .iter()
        .map(|t| rebase.apply(t).timestamp)
        .collect();
        assert_eq!(out, [0, 0, 33, 0, 23, 33]);
        // Across the 32-bit wrap.
        let mut rebase = ZeroBase::default();
        assert_eq!(rebase.apply(&tag(TagKind::Video, u32::MAX - 9)).timestamp, 0);
        assert_eq!(rebase.apply(&tag(TagKind::Video, 20)).timestamp, 30);
    }
}
