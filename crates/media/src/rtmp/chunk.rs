//! The chunk stream layer: splitting messages into chunks and reassembling
//! them.
//!
//! A chunk is `basic header | message header | [extended timestamp] | data`.
//! The basic header carries the format (0-3) and the chunk stream id (csid);
//! formats 1-3 omit fields that repeat the previous chunk on the same csid.
//! Encoders interleave chunks of different csids (OBS multitrack does), so
//! each csid has its own partial-message buffer and its own previous header.
//!
//! Timestamp rules implemented here:
//! * a 24-bit timestamp field of 0xFFFFFF means a 32-bit extended timestamp
//!   follows; fmt-3 chunks repeat that extended field whenever the last
//!   fmt 0/1/2 header on their csid used one;
//! * fmt 1/2 fields are deltas, added with wrapping u32 arithmetic;
//! * a fmt-3 chunk that starts a new message repeats the previous timestamp
//!   field as a delta. After a fmt-0 header that field is the absolute
//!   timestamp (as ffmpeg and SRS read it); because other implementations
//!   disagree, our encoder never emits a new-message fmt 3 after a fmt 0.

use std::collections::HashMap;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use super::message::RtmpMessage;
use super::{RtmpError, SessionLimits};

/// Chunk size in force until a Set Chunk Size message changes it.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk size the protocol can express (the top bit must be 0).
pub const MAX_CHUNK_SIZE: u32 = 0x7FFF_FFFF;
/// Smallest usable chunk stream id (0 and 1 select longer basic headers).
pub const MIN_CSID: u32 = 2;
/// Largest chunk stream id (three-byte basic header).
pub const MAX_CSID: u32 = 65_599;
/// Largest message length a chunk header can express (24 bits).
pub const MAX_MESSAGE_LENGTH: usize = 0xFF_FFFF;

/// Timestamp field value announcing an extended timestamp.
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// 3-byte basic header + 11-byte message header + 4-byte extended timestamp.
const MAX_HEADER_LEN: usize = 18;
/// A payload is sliced from the input only if the input's allocation is at most this many
/// times its size; smaller payloads are copied.
const PIN_RATIO: usize = 16;
/// Smallest allocation for the input buffer, so reads of a few bytes do not each allocate.
const MIN_INPUT_ALLOCATION: usize = 16 * 1024;

/// Header fields of the last message seen on an inbound chunk stream.
#[derive(Debug, Clone, Copy)]
struct InboundHeader {
    timestamp: u32,
    /// The last timestamp field, reused by new-message fmt-3 chunks.
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

#[derive(Debug)]
struct InboundStream {
    header: InboundHeader,
    /// Whether the last fmt 0/1/2 header carried an extended timestamp, in
    /// which case fmt-3 chunks carry one too.
    extended: bool,
    /// The message being assembled, if any.
    partial: Option<BytesMut>,
}

/// Chunk currently being read: its csid and the payload bytes still to come.
#[derive(Debug, Clone, Copy)]
struct CurrentChunk {
    csid: u32,
    remaining: usize,
}

/// Reassembles messages from chunks.
///
/// Memory is bounded: unparsed input never exceeds one chunk header (payload
/// bytes are moved into their message as they arrive), and a connection uses at
/// most `max_chunk_streams` chunk streams (as nginx-rtmp, 32 by default), each
/// with a small header state and at most one partial message of at most
/// `max_message_size` bytes, only as large as the bytes actually received.
///
/// Payloads are made once per message and shared from then on: a message that
/// arrived in one chunk is a slice of the input buffer, unless that buffer is more
/// than `PIN_RATIO` times its size, in which case it is copied; so a payload never
/// keeps much more memory alive than its own length, which is what downstream byte
/// counts (the GOP cache) see.
#[derive(Debug)]
pub struct ChunkDecoder {
    limits: SessionLimits,
    chunk_size: u32,
    input: BytesMut,
    /// Size of the allocation `input` lives in; a slice of it keeps all of it alive.
    input_allocation: usize,
    streams: HashMap<u32, InboundStream>,
    current: Option<CurrentChunk>,
}

/// Parsed fields of a chunk header, copied out of the input buffer.
struct ParsedHeader {
    fmt: u8,
    csid: u32,
    header_len: usize,
    timestamp_field: u32,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

impl ChunkDecoder {
    /// A decoder using the default 128-byte chunk size.
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            chunk_size: DEFAULT_CHUNK_SIZE,
            input: BytesMut::new(),
            input_allocation: 0,
            streams: HashMap::new(),
            current: None,
        }
    }

    /// Adds bytes received from the peer. Call [`Self::next_message`] until it
    /// returns `None` afterwards; that keeps the internal buffer small.
    pub fn push(&mut self, data: &[u8]) {
        if self.input.capacity() - self.input.len() < data.len() {
            // A fresh allocation rather than `BytesMut::reserve`, whose size depends on
            // whether payloads still share the old one: `next_message` needs to know the
            // size of what a slice would keep alive.
            let size = (self.input.len() + data.len()).max(MIN_INPUT_ALLOCATION);
            let mut fresh = BytesMut::with_capacity(size);
            fresh.extend_from_slice(&self.input);
            self.input = fresh;
            self.input_allocation = size;
        }
        self.input.extend_from_slice(data);
    }

    /// Applies a Set Chunk Size received from the peer. Takes effect for the
    /// next chunk, which is why the session handles each message before
    /// decoding further.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), RtmpError> {
        let max = self.limits.max_input_chunk_size.min(MAX_CHUNK_SIZE);
        if size == 0 || size > max {
            return Err(RtmpError::InvalidChunkSize { size, max });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Changes the largest message accepted from now on (messages already being
    /// assembled were checked against the limit of their time).
    pub fn set_max_message_size(&mut self, size: usize) {
        self.limits.max_message_size = size;
    }

    /// Applies an Abort Message: drops the partial message on `csid`. If a
    /// chunk of it is being read, the rest of that chunk is discarded.
    pub fn abort(&mut self, csid: u32) {
        if let Some(stream) = self.streams.get_mut(&csid) {
            stream.partial = None;
        }
    }

    /// Returns the next complete message, or `None` when more input is needed.
    pub fn next_message(&mut self) -> Result<Option<RtmpMessage>, RtmpError> {
        loop {
            let current = match self.current {
                Some(current) => current,
                None => match self.read_header()? {
                    Some(current) => current,
                    None => return Ok(None),
                },
            };
            let n = current.remaining.min(self.input.len());
            if n == 0 && current.remaining > 0 {
                self.current = Some(current);
                return Ok(None);
            }
            self.current =
                (current.remaining > n).then_some(CurrentChunk { remaining: current.remaining - n, ..current });

            let Some(stream) = self.streams.get_mut(&current.csid) else {
                self.input.advance(n);
                continue;
            };
            let Some(partial) = stream.partial.as_mut() else {
                // The message was aborted mid-chunk: drop the rest of the chunk.
                self.input.advance(n);
                continue;
            };
            let total = stream.header.length as usize;
            let payload = if partial.is_empty() && n == total {
                // The whole message is in this chunk: hand out the input bytes themselves
                // instead of copying them, unless the slice would keep an allocation much
                // bigger than itself alive (memory no byte count downstream would see).
                if n * PIN_RATIO < self.input_allocation {
                    let payload = Bytes::copy_from_slice(&self.input[..n]);
                    self.input.advance(n);
                    payload
                } else {
                    self.input.split_to(n).freeze()
                }
            } else {
                partial.extend_from_slice(&self.input[..n]);
                self.input.advance(n);
                if partial.len() < total {
                    continue;
                }
                partial.split().freeze()
            };
            stream.partial = None;
            let header = stream.header;
            return Ok(Some(RtmpMessage {
                type_id: header.type_id,
                stream_id: header.stream_id,
                timestamp: header.timestamp,
                payload,
            }));
        }
    }

    /// Parses a chunk header if the input holds a complete one, updates the
    /// csid's state and returns the chunk's payload size.
    fn read_header(&mut self) -> Result<Option<CurrentChunk>, RtmpError> {
        let Some(parsed) = self.parse_header()? else {
            return Ok(None);
        };
        self.input.advance(parsed.header_len);
        let csid = parsed.csid;

        if parsed.fmt <= 1 && parsed.length as usize > self.limits.max_message_size {
            return Err(RtmpError::MessageTooLarge { size: parsed.length, limit: self.limits.max_message_size });
        }

        if parsed.fmt == 0 && self.streams.len() >= self.limits.max_chunk_streams && !self.streams.contains_key(&csid) {
            return Err(RtmpError::TooManyChunkStreams { limit: self.limits.max_chunk_streams });
        }
        let stream = match parsed.fmt {
            0 => self.streams.entry(csid).or_insert(InboundStream {
                header: InboundHeader { timestamp: 0, delta: 0, length: 0, type_id: 0, stream_id: 0 },
                extended: false,
                partial: None,
            }),
            fmt => self.streams.get_mut(&csid).ok_or(RtmpError::MissingPreviousHeader { csid, fmt })?,
        };

        if let Some(partial) = &stream.partial {
            if parsed.fmt != 3 {
                return Err(RtmpError::InterruptedMessage { csid });
            }
            // Continuation of the message being assembled.
            let left = stream.header.length as usize - partial.len();
            return Ok(Some(CurrentChunk { csid, remaining: left.min(self.chunk_size as usize) }));
        }

        let ts = parsed.timestamp_field;
        let header = &mut stream.header;
        match parsed.fmt {
            0 => {
                *header = InboundHeader {
                    timestamp: ts,
                    delta: ts,
                    length: parsed.length,
                    type_id: parsed.type_id,
                    stream_id: parsed.stream_id,
                };
            }
            1 => {
                header.timestamp = header.timestamp.wrapping_add(ts);
                header.delta = ts;
                header.length = parsed.length;
                header.type_id = parsed.type_id;
            }
            2 => {
                header.timestamp = header.timestamp.wrapping_add(ts);
                header.delta = ts;
            }
            _ => header.timestamp = header.timestamp.wrapping_add(header.delta),
        }
        if parsed.fmt != 3 {
            stream.extended = parsed.extended;
        }

        stream.partial = Some(BytesMut::new());
        Ok(Some(CurrentChunk { csid, remaining: (stream.header.length as usize).min(self.chunk_size as usize) }))
    }

    /// Reads a chunk header without consuming it; `None` if incomplete.
    fn parse_header(&self) -> Result<Option<ParsedHeader>, RtmpError> {
        let buf = &self.input[..];
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, basic_len) = match first & 0x3f {
            0 => match buf.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match buf.get(1..3) {
                Some(&[lo, hi]) => (64 + u32::from(lo) + 256 * u32::from(hi), 3),
                _ => return Ok(None),
            },
            id => (u32::from(id), 1),
        };
        let previous = self.streams.get(&csid);
        if fmt != 0 && previous.is_none() {
            return Err(RtmpError::MissingPreviousHeader { csid, fmt });
        }

        let message_len = [11, 7, 3, 0][usize::from(fmt)];
        let Some(h) = buf.get(basic_len..basic_len + message_len) else {
            return Ok(None);
        };
        let timestamp_field = if fmt < 3 { be24(h) } else { 0 };
        let extended = match fmt {
            3 => previous.is_some_and(|s| s.extended),
            _ => timestamp_field == EXTENDED_TIMESTAMP,
        };
        let header_len = basic_len + message_len + if extended { 4 } else { 0 };
        let Some(ext) = buf.get(basic_len + message_len..header_len) else {
            return Ok(None);
        };
        let timestamp_field =
            if extended { u32::from_be_bytes([ext[0], ext[1], ext[2], ext[3]]) } else { timestamp_field };
        let (length, type_id, stream_id) = match fmt {
            0 => (be24(&h[3..]), h[6], u32::from_le_bytes([h[7], h[8], h[9], h[10]])),
            1 => (be24(&h[3..]), h[6], 0),
            _ => (0, 0, 0),
        };
        Ok(Some(ParsedHeader { fmt, csid, header_len, timestamp_field, extended, length, type_id, stream_id }))
    }

    /// Bytes currently held: unparsed input plus partial messages.
    #[cfg(test)]
    pub(crate) fn buffered_len(&self) -> usize {
        self.input.len() + self.streams.values().filter_map(|s| s.partial.as_ref().map(BytesMut::len)).sum::<usize>()
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Destination for encoded chunks.
pub trait ChunkSink {
    /// Appends a chunk header.
    fn put_header(&mut self, header: &[u8]);
    /// Appends `payload[range]`; sinks may reference instead of copy.
    fn put_payload(&mut self, payload: &Bytes, range: Range<usize>);
}

/// Copies everything into one contiguous buffer.
impl ChunkSink for BytesMut {
    fn put_header(&mut self, header: &[u8]) {
        self.extend_from_slice(header);
    }

    fn put_payload(&mut self, payload: &Bytes, range: Range<usize>) {
        self.extend_from_slice(&payload[range]);
    }
}

/// Header fields of the last message sent on an outbound chunk stream.
#[derive(Debug, Clone, Copy)]
struct OutboundHeader {
    timestamp: u32,
    /// Delta of the last fmt 1/2/3 header; `None` after a fmt 0 header.
    delta: Option<u32>,
    extended: bool,
    length: u32,
    type_id: u8,
    stream_id: u32,
}

/// A small fixed buffer for one chunk header.
#[derive(Debug, Clone, Copy)]
struct HeaderBytes {
    buf: [u8; MAX_HEADER_LEN],
    len: usize,
}

impl HeaderBytes {
    fn basic(fmt: u8, csid: u32) -> Self {
        let mut h = Self { buf: [0; MAX_HEADER_LEN], len: 0 };
        let fmt = fmt << 6;
        match csid {
            0..64 => h.push(&[fmt | csid as u8]),
            64..320 => h.push(&[fmt, (csid - 64) as u8]),
            _ => {
                let id = csid - 64;
                h.push(&[fmt | 1, id as u8, (id >> 8) as u8]);
            }
        }
        h
    }

    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn push_u24(&mut self, value: u32) {
        self.push(&value.to_be_bytes()[1..]);
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// One message being written out chunk by chunk.
#[derive(Debug)]
pub(crate) struct OutgoingChunks {
    first: HeaderBytes,
    continuation: HeaderBytes,
    payload: Bytes,
    offset: usize,
    started: bool,
}

impl OutgoingChunks {
    /// Writes the next chunk of at most `chunk_size` payload bytes; returns
    /// true once the whole message has been written.
    pub(crate) fn write_chunk(&mut self, chunk_size: u32, out: &mut impl ChunkSink) -> bool {
        let header = if self.started { &self.continuation } else { &self.first };
        self.started = true;
        out.put_header(header.as_slice());
        let end = (self.offset + chunk_size.max(1) as usize).min(self.payload.len());
        if end > self.offset {
            out.put_payload(&self.payload, self.offset..end);
        }
        self.offset = end;
        self.offset == self.payload.len()
    }
}

/// Splits messages into chunks, compressing headers where that is
/// unambiguous.
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    streams: HashMap<u32, OutboundHeader>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkEncoder {
    /// An encoder using the default 128-byte chunk size.
    pub fn new() -> Self {
        Self { chunk_size: DEFAULT_CHUNK_SIZE, streams: HashMap::new() }
    }

    /// The chunk size in use.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Changes the chunk size for subsequent chunks; clamped to the valid
    /// range. The Set Chunk Size message telling the peer must be encoded
    /// before calling this.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, MAX_CHUNK_SIZE);
    }

    /// Forgets the previous header on `csid`, so the next message there gets
    /// a full fmt-0 header. Needed after bytes encoded elsewhere (see
    /// [`encode_standalone`]) were sent on that csid.
    pub fn reset_stream(&mut self, csid: u32) {
        self.streams.remove(&csid);
    }

    /// Serialises `msg` as chunks on `csid` into `out`.
    pub fn encode(&mut self, csid: u32, msg: &RtmpMessage, out: &mut impl ChunkSink) -> Result<(), RtmpError> {
        let mut chunks = self.start(csid, msg)?;
        while !chunks.write_chunk(self.chunk_size, out) {}
        Ok(())
    }

    /// Chooses the header for `msg` and records it as the csid's previous
    /// header; the caller then writes the chunks, possibly interleaved with
    /// other csids.
    pub(crate) fn start(&mut self, csid: u32, msg: &RtmpMessage) -> Result<OutgoingChunks, RtmpError> {
        if !(MIN_CSID..=MAX_CSID).contains(&csid) {
            return Err(RtmpError::InvalidState("chunk stream id outside 2..=65599"));
        }
        let length = match u32::try_from(msg.payload.len()) {
            Ok(len) if len as usize <= MAX_MESSAGE_LENGTH => len,
            _ => {
                return Err(RtmpError::MessageTooLarge {
                    size: u32::try_from(msg.payload.len()).unwrap_or(u32::MAX),
                    limit: MAX_MESSAGE_LENGTH,
                });
            }
        };
        let previous = self.streams.get(&csid).copied();
        let delta = previous.map_or(0, |p| msg.timestamp.wrapping_sub(p.timestamp));
        let fmt = match previous {
            None => 0,
            // Deltas cannot go backwards: a jump back (in serial-number
            // arithmetic, so a wrap past 2^32 still counts as forward) or a
            // different message stream needs a full header.
            Some(p) if p.stream_id != msg.stream_id || delta >= 0x8000_0000 => 0,
            Some(p) if p.length != length || p.type_id != msg.type_id => 1,
            Some(p) if p.delta == Some(delta) => 3,
            Some(_) => 2,
        };
        let timestamp_field = if fmt == 0 { msg.timestamp } else { delta };
        let extended = match (fmt, previous) {
            (3, Some(p)) => p.extended,
            _ => timestamp_field >= EXTENDED_TIMESTAMP,
        };
        let field24 = timestamp_field.min(EXTENDED_TIMESTAMP);

        let mut first = HeaderBytes::basic(fmt, csid);
        if fmt <= 2 {
            first.push_u24(field24);
        }
        if fmt <= 1 {
            first.push_u24(length);
            first.push(&[msg.type_id]);
        }
        if fmt == 0 {
            first.push(&msg.stream_id.to_le_bytes());
        }
        let mut continuation = HeaderBytes::basic(3, csid);
        if extended {
            first.push(&timestamp_field.to_be_bytes());
            continuation.push(&timestamp_field.to_be_bytes());
        }

        self.streams.insert(
            csid,
            OutboundHeader {
                timestamp: msg.timestamp,
                delta: (fmt != 0).then_some(delta),
                extended,
                length,
                type_id: msg.type_id,
                stream_id: msg.stream_id,
            },
        );
        Ok(OutgoingChunks { first, continuation, payload: msg.payload.clone(), offset: 0, started: false })
    }
}

/// A message encoded once as complete, self-contained chunks (fmt-0 header,
/// fmt-3 continuations), ready to be written to any number of peers that use
/// the same chunk size. Cloning shares the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedMessage {
    csid: u32,
    chunk_size: u32,
    bytes: Bytes,
}

impl EncodedMessage {
    /// The chunk stream the message was encoded on.
    pub fn csid(&self) -> u32 {
        self.csid
    }

    /// The chunk size the message was split with.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// The encoded chunks.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// Encodes `msg` on `csid` with a full header and the given chunk size
/// (clamped to the valid range), independent of any session state. The
/// server uses this to encode a media message once and fan the same bytes
/// out to every player.
pub fn encode_standalone(csid: u32, msg: &RtmpMessage, chunk_size: u32) -> Result<EncodedMessage, RtmpError> {
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(chunk_size);
    let chunks = msg.payload.len() / encoder.chunk_size as usize + 1;
    let mut out = BytesMut::with_capacity(msg.payload.len() + chunks * 8 + MAX_HEADER_LEN);
    encoder.encode(csid, msg, &mut out)?;
    Ok(EncodedMessage { csid, chunk_size: encoder.chunk_size, bytes: out.freeze() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtmp::message::type_id;
    use proptest::prelude::*;

    fn limits() -> SessionLimits {
        SessionLimits::default()
    }

    fn msg(type_id: u8, stream_id: u32, timestamp: u32, len: usize) -> RtmpMessage {
        RtmpMessage {
            type_id,
            stream_id,
            timestamp,
            payload: (0..len).map(|i| (i * 7 + timestamp as usize) as u8).collect(),
        }
    }

    fn decode_all(decoder: &mut ChunkDecoder, bytes: &[u8]) -> Vec<RtmpMessage> {
        decoder.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = decoder.next_message().unwrap() {
            out.push(m);
        }
        out
    }

    #[test]
    fn header_compression_round_trips() {
        let mut encoder = ChunkEncoder::new();
        let messages = [
            msg(9, 1, 0, 300),
            msg(9, 1, 40, 300),            // fmt 2
            msg(9, 1, 80, 300),            // fmt 3, same delta
            msg(9, 1, 120, 10),            // fmt 1, new length
            msg(8, 1, 120, 10),            // fmt 1, new type, zero delta
            msg(8, 2, 5, 0),               // fmt 0, new stream, empty payload
            msg(8, 2, 0x0100_0000, 3),     // extended timestamp delta
            msg(8, 2, 0x0200_0000 - 5, 3), // fmt 3 repeating an extended delta
        ];
        let mut wire = BytesMut::new();
        for m in &messages {
            encoder.encode(3, m, &mut wire).unwrap();
        }
        let mut decoder = ChunkDecoder::new(limits());
        assert_eq!(decode_all(&mut decoder, &wire), messages);
    }

    #[test]
    fn basic_header_sizes_cover_the_csid_range() {
        for csid in [2, 63, 64, 319, 320, 65_599] {
            let mut encoder = ChunkEncoder::new();
            let m = msg(20, 0, 7, 200);
            let mut wire = BytesMut::new();
            encoder.encode(csid, &m, &mut wire).unwrap();
            encoder.encode(csid, &m, &mut wire).unwrap();
            let mut decoder = ChunkDecoder::new(limits());
            assert_eq!(decode_all(&mut decoder, &wire), vec![m.clone(), m]);
        }
        let mut encoder = ChunkEncoder::new();
        for csid in [0, 1, 65_600] {
            assert!(encoder.encode(csid, &msg(8, 0, 0, 1), &mut BytesMut::new()).is_err());
        }
    }

    #[test]
    fn fmt3_chunks_repeat_the_extended_timestamp() {
        let m = msg(9, 1, 0x0123_4567, 300);
        let encoded = encode_standalone(6, &m, 128).unwrap();
        let b = encoded.bytes();
        // fmt 0 header: 1 + 11 + 4 bytes, then 128 payload bytes.
        assert_eq!(&b[1..4], &[0xff, 0xff, 0xff]);
        assert_eq!(&b[12..16], &0x0123_4567u32.to_be_bytes());
        let second = 16 + 128;
        assert_eq!(b[second], 0xc0 | 6);
        assert_eq!(&b[second + 1..second + 5], &0x0123_4567u32.to_be_bytes());
        assert_eq!(b.len(), 16 + 128 + 5 + 128 + 5 + 44);
        let mut decoder = ChunkDecoder::new(limits());
        assert_eq!(decode_all(&mut decoder, b), vec![m]);
    }

    #[test]
    fn new_message_fmt3_after_fmt0_reuses_the_timestamp_field() {
        // fmt 0 at t=10, then a bare fmt-3 chunk: read as delta 10 (t=20).
        let mut wire = vec![0x03, 0, 0, 10, 0, 0, 1, 8, 0, 0, 0, 0, 0xaa];
        wire.extend_from_slice(&[0xc3, 0xbb]);
        let mut decoder = ChunkDecoder::new(limits());
        let got = decode_all(&mut decoder, &wire);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].timestamp, got[1].timestamp), (10, 20));
        assert_eq!(&got[1].payload[..], &[0xbb]);
    }

    #[test]
    fn timestamps_wrap() {
        let messages = [msg(8, 1, u32::MAX - 10, 5), msg(8, 1, 20, 5), msg(8, 1, 51, 5)];
        let mut encoder = ChunkEncoder::new();
        let mut wire = BytesMut::new();
        for m in &messages {
            encoder.encode(4, m, &mut wire).unwrap();
        }
        // The second header is a fmt-2 delta of 31, not a fmt-0 reset.
        assert_eq!(wire[16 + 5] >> 6, 2);
        let mut decoder = ChunkDecoder::new(limits());
        assert_eq!(decode_all(&mut decoder, &wire), messages);
    }

    #[test]
    fn oversized_messages_are_rejected_before_buffering() {
        let mut decoder = ChunkDecoder::new(SessionLimits { max_message_size: 1000, ..limits() });
        // fmt 0, csid 3, length 1001.
        decoder.push(&[0x03, 0, 0, 0, 0, 0x03, 0xe9, 9, 1, 0, 0, 0]);
        let err = decoder.next_message().unwrap_err();
        assert_eq!(err.to_string(), "chunk stream message of 1001 bytes exceeds the 1000-byte limit");
        // A fmt-1 header raising the length is checked too.
        let mut decoder = ChunkDecoder::new(SessionLimits { max_message_size: 1000, ..limits() });
        decoder.push(&[0x03, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0x55]);
        assert!(decoder.next_message().unwrap().is_some());
        decoder.push(&[0x43, 0, 0, 0, 0xff, 0xff, 0xff, 9]);
        assert!(matches!(decoder.next_message(), Err(RtmpError::MessageTooLarge { size: 0xff_ffff, .. })));
    }

    #[test]
    fn too_many_partial_chunk_streams_are_rejected() {
        let mut decoder = ChunkDecoder::new(SessionLimits { max_chunk_streams: 4, ..limits() });
        // Start a 500-byte message on csids 3..=6 with one 128-byte chunk each.
        for csid in 3..=6u8 {
            decoder.push(&[csid, 0, 0, 0, 0, 0x01, 0xf4, 9, 1, 0, 0, 0]);
            decoder.push(&[0; 128]);
            assert!(decoder.next_message().unwrap().is_none());
        }
        decoder.push(&[7, 0, 0, 0, 0, 0x01, 0xf4, 9, 1, 0, 0, 0]);
        assert!(matches!(decoder.next_message(), Err(RtmpError::TooManyChunkStreams { limit: 4 })));
    }

    #[test]
    fn a_33rd_chunk_stream_is_refused_even_when_its_messages_are_complete() {
        let mut decoder = ChunkDecoder::new(limits());
        // A one-byte message on each of csids 3..=34: each leaves header state behind.
        let message_on = |csid: u8| [csid, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0x55];
        for csid in 3..=34u8 {
            decoder.push(&message_on(csid));
            assert!(decoder.next_message().unwrap().is_some(), "csid {csid}");
        }
        // The streams already open go on working; a new one is refused.
        decoder.push(&message_on(3));
        assert!(decoder.next_message().unwrap().is_some());
        decoder.push(&message_on(35));
        assert!(matches!(decoder.next_message(), Err(RtmpError::TooManyChunkStreams { limit: 32 })));
    }

    #[test]
    fn abort_frees_a_partial_message() {
        let mut decoder = ChunkDecoder::new(SessionLimits { max_chunk_streams: 2, ..limits() });
        decoder.push(&[3, 0, 0, 0, 0, 0x01, 0xf4, 9, 1, 0, 0, 0]);
        decoder.push(&[0; 100]);
        assert!(decoder.next_message().unwrap().is_none());
        // Aborted in the middle of a chunk: the remaining 28 bytes are skipped.
        decoder.abort(3);
        decoder.push(&[0; 28]);
        let m = msg(8, 1, 0, 10);
        let mut wire = BytesMut::new();
        ChunkEncoder::new().encode(4, &m, &mut wire).unwrap();
        assert_eq!(decode_all(&mut decoder, &wire), vec![m]);
    }

    #[test]
    fn protocol_violations_are_errors() {
        let mut decoder = ChunkDecoder::new(limits());
        decoder.push(&[0x43, 0, 0, 0]);
        assert!(matches!(decoder.next_message(), Err(RtmpError::MissingPreviousHeader { csid: 3, fmt: 1 })));

        let mut decoder = ChunkDecoder::new(limits());
        decoder.push(&[3, 0, 0, 0, 0, 1, 0, 9, 1, 0, 0, 0]);
        decoder.push(&[0; 128]);
        decoder.push(&[0x83, 0, 0, 0]);
        assert!(matches!(decoder.next_message(), Err(RtmpError::InterruptedMessage { csid: 3 })));

        let mut decoder = ChunkDecoder::new(SessionLimits { max_input_chunk_size: 65_536, ..limits() });
        assert!(decoder.set_chunk_size(0).is_err());
        assert!(decoder.set_chunk_size(65_537).is_err());
        assert!(decoder.set_chunk_size(65_536).is_ok());
    }

    #[test]
    fn single_chunk_media_messages_are_not_copied() {
        // A video frame in one 4096-byte chunk, as OBS sends them.
        let mut decoder = ChunkDecoder::new(limits());
        decoder.set_chunk_size(4096).unwrap();
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(4096);
        let m = msg(9, 1, 0, 4000);
        let mut wire = BytesMut::new();
        encoder.encode(6, &m, &mut wire).unwrap();
        decoder.push(&wire);
        let start = decoder.input.as_ptr() as usize;
        let got = decoder.next_message().unwrap().unwrap();
        assert_eq!(got.payload.as_ptr() as usize, start + 12);
    }

    /// A payload handed out as a slice of the decoder's input keeps that whole allocation
    /// alive, which the GOP cache's byte count does not see. A publisher sending each tiny
    /// message in a read next to a big one must not make every tiny payload pin a
    /// read-sized buffer.
    #[test]
    fn small_payloads_do_not_pin_the_input_buffer() {
        let mut decoder = ChunkDecoder::new(limits());
        decoder.set_chunk_size(65_536).unwrap();
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(65_536);
        let mut kept = Vec::new();
        let mut pinned = 0;
        for i in 0..256 {
            let mut read = BytesMut::new();
            encoder.encode(4, &msg(8, 1, i, 2), &mut read).unwrap();
            encoder.encode(6, &msg(9, 1, i, 60_000), &mut read).unwrap();
            decoder.push(&read);
            // From the first unread byte to the end of the input's allocation: a lower
            // bound of what a slice of it keeps alive.
            let start = decoder.input.as_ptr() as usize;
            let region = start..start + decoder.input.capacity();
            let tiny = decoder.next_message().unwrap().unwrap();
            let big = decoder.next_message().unwrap().unwrap();
            assert_eq!((tiny.payload.len(), big.payload.len()), (2, 60_000));
            assert!(region.contains(&(big.payload.as_ptr() as usize)), "big payloads stay zero-copy");
            if region.contains(&(tiny.payload.as_ptr() as usize)) {
                pinned += region.len();
            }
            kept.push(tiny.payload);
        }
        let held: usize = kept.iter().map(Bytes::len).sum();
        assert!(pinned <= PIN_RATIO * held, "{held} bytes of tiny payloads pin {pinned} bytes of input buffers");
    }

    /// How the timestamp of the next message on a chunk stream is chosen.
    #[derive(Debug, Clone)]
    enum TsStep {
        Delta(u32),
        Absolute(u32),
    }

    fn ts_step() -> impl Strategy<Value = TsStep> {
        prop_oneof![
            4 => (0u32..100).prop_map(TsStep::Delta),
            1 => (0xFF_FFFDu32..0x100_0002).prop_map(TsStep::Delta),
            1 => any::<u32>().prop_map(TsStep::Delta),
            1 => any::<u32>().prop_map(TsStep::Absolute),
            1 => (u32::MAX - 50..=u32::MAX).prop_map(TsStep::Absolute),
        ]
    }

    fn chunk_size() -> impl Strategy<Value = u32> {
        prop_oneof![1u32..=16, 17u32..=512, 513u32..=65_536]
    }

    #[derive(Debug, Clone)]
    struct Spec {
        track: usize,
        type_id: u8,
        stream_id: u32,
        ts: TsStep,
        len: usize,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            0usize..4,
            // Type 1 (Set Chunk Size) is left out: the test applies those.
            prop_oneof![Just(8u8), Just(9u8), Just(18u8), 2u8..=255],
            prop_oneof![Just(1u32), any::<u32>()],
            ts_step(),
            prop_oneof![4 => 0usize..600, 1 => 0usize..40_000],
        )
            .prop_map(|(track, type_id, stream_id, ts, len)| Spec { track, type_id, stream_id, ts, len })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Messages on four chunk streams, interleaved chunk by chunk with a
        /// Set Chunk Size in the middle, fed in random slices, come back
        /// identical and in completion order.
        #[test]
        fn interleaved_chunk_streams_round_trip(
            specs in prop::collection::vec(spec(), 1..16),
            first_size in chunk_size(),
            second_size in chunk_size(),
            switch_at in 0usize..64,
            picks in prop::collection::vec(0usize..4, 64),
            slices in prop::collection::vec(1usize..5000, 1..32),
        ) {
            const CSIDS: [u32; 4] = [4, 6, 70, 400];
            // Build per-track queues with per-track timestamps.
            let mut queues: Vec<std::collections::VecDeque<RtmpMessage>> = vec![Default::default(); 4];
            let mut clocks = [0u32; 4];
            for (i, s) in specs.iter().enumerate() {
                clocks[s.track] = match s.ts {
                    TsStep::Delta(d) => clocks[s.track].wrapping_add(d),
                    TsStep::Absolute(t) => t,
                };
                queues[s.track].push_back(RtmpMessage {
                    type_id: s.type_id,
                    stream_id: s.stream_id,
                    timestamp: clocks[s.track],
                    payload: (0..s.len).map(|j| (i * 31 + j) as u8).collect(),
                });
            }

            // Announce the first chunk size the way a session does.
            let mut encoder = ChunkEncoder::new();
            let mut wire = BytesMut::new();
            let initial = RtmpMessage::set_chunk_size(first_size);
            encoder.encode(2, &initial, &mut wire).unwrap();
            encoder.set_chunk_size(first_size);
            let mut expected = vec![initial];
            let mut in_flight: Vec<Option<(OutgoingChunks, RtmpMessage)>> = (0..4).map(|_| None).collect();
            let mut chunk_count = 0usize;
            let mut switched = false;
            let mut step = 0usize;
            loop {
                if !switched && chunk_count >= switch_at {
                    let set = RtmpMessage::set_chunk_size(second_size);
                    encoder.encode(2, &set, &mut wire).unwrap();
                    encoder.set_chunk_size(second_size);
                    expected.push(set);
                    switched = true;
                }
                let live: Vec<usize> = (0..4)
                    .filter(|&t| in_flight[t].is_some() || !queues[t].is_empty())
                    .collect();
                if live.is_empty() {
                    break;
                }
                let track = live[picks[step % picks.len()] % live.len()];
                step += 1;
                if in_flight[track].is_none() {
                    let m = queues[track].pop_front().unwrap();
                    let chunks = encoder.start(CSIDS[track], &m).unwrap();
                    in_flight[track] = Some((chunks, m));
                }
                let (chunks, _) = in_flight[track].as_mut().unwrap();
                chunk_count += 1;
                if chunks.write_chunk(encoder.chunk_size(), &mut wire) {
                    expected.push(in_flight[track].take().unwrap().1);
                }
            }

            let mut decoder = ChunkDecoder::new(limits());
            let mut got = Vec::new();
            let mut rest = &wire[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = slices[i % slices.len()].min(rest.len());
                i += 1;
                decoder.push(&rest[..n]);
                rest = &rest[n..];
                while let Some(m) = decoder.next_message().unwrap() {
                    if m.type_id == type_id::SET_CHUNK_SIZE && m.stream_id == 0 && m.payload.len() == 4 {
                        let size = u32::from_be_bytes(m.payload[..].try_into().unwrap());
                        decoder.set_chunk_size(size).unwrap();
                    }
                    got.push(m);
                }
                prop_assert!(decoder.input.len() <= MAX_HEADER_LEN);
            }
            prop_assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(&expected) {
                prop_assert_eq!(g, e);
            }
        }

        /// Random bytes never panic the decoder, and it never holds more than
        /// the configured limits allow.
        #[test]
        fn random_input_is_bounded(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
            let limits = SessionLimits { max_message_size: 2048, max_chunk_streams: 4, ..limits() };
            let mut decoder = ChunkDecoder::new(limits);
            decoder.push(&bytes);
            while let Ok(Some(_)) = decoder.next_message() {}
            prop_assert!(decoder.buffered_len() <= bytes.len());
        }
    }
}
