//! A sans-IO implementation of the RTMP protocol: bytes in, events out.
//!
//! Nothing in this module touches a socket or a clock. A session is fed the
//! bytes read from the peer (`handle_input`), returns what happened as
//! events, and queues the bytes to write back, which the caller takes out with
//! `take_output`. The same code therefore serves the ingest server
//! ([`ServerSession`]), the relay to YouTube/Twitch ([`ClientSession`], later
//! over TLS), in-memory tests and fuzzing.
//!
//! # Why not an existing crate
//!
//! * `rml_rtmp` assembles interleaved chunk streams in one shared buffer, which
//!   corrupts messages from encoders that interleave chunk streams (OBS
//!   multitrack), can underflow on hostile input, and its client never sends
//!   `releaseStream`/`FCPublish`, which some ingests expect.
//! * `xiu`'s RTMP is welded to `TcpStream`, so it cannot run over TLS or in
//!   tests without sockets.
//! * `scuffle-rtmp` has neither a play side nor a client side.
//!
//! # Layout
//!
//! * [`amf0`]: bounded AMF0 codec for commands and metadata.
//! * [`handshake`]: the simple (version 3) handshake, both sides.
//! * [`chunk`]: chunk stream (de)multiplexing with hard memory limits.
//! * [`message`]: message types and typed decoding of control/command messages.
//! * [`server`] / [`client`]: connection state machines.
//! * [`url`]: parsing `rtmp://` and `rtmps://` publish URLs.
//!
//! Every error is fatal for the connection: after `handle_input` returns an
//! error the caller should flush nothing more and close the transport.

pub mod amf0;
pub mod chunk;
pub mod client;
pub mod client_io;
pub(crate) mod connection;
pub mod handshake;
pub mod io;
pub mod message;
mod output;
pub mod server;
pub mod url;

#[cfg(test)]
mod session_tests;

pub use amf0::{Amf0Error, Amf0Value};
pub use chunk::{ChunkDecoder, ChunkEncoder, EncodedMessage, encode_standalone};
pub use client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
pub use message::RtmpMessage;
pub use server::{PublishStopKind, ServerEvent, ServerSession};
pub use url::RtmpUrl;

/// Everything that can go wrong on an RTMP connection.
///
/// Messages never include stream keys: they end up in logs.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The peer's C0/S0 asked for a protocol version other than 3.
    #[error("handshake: unsupported version 0x{0:02x}")]
    UnsupportedVersion(u8),

    /// A chunk header declared a message longer than [`SessionLimits::max_message_size`].
    #[error("chunk stream message of {size} bytes exceeds the {limit}-byte limit")]
    MessageTooLarge {
        /// Length declared by the peer.
        size: u32,
        /// The configured limit.
        limit: usize,
    },

    /// The peer opened more chunk streams than allowed.
    #[error("more than {limit} chunk streams")]
    TooManyChunkStreams {
        /// The configured limit.
        limit: usize,
    },

    /// A compressed chunk header (fmt 1/2/3) arrived on a chunk stream that
    /// has not had a full header yet.
    #[error("chunk stream {csid}: fmt {fmt} header without a previous fmt 0 header")]
    MissingPreviousHeader {
        /// Chunk stream id.
        csid: u32,
        /// Header format of the offending chunk.
        fmt: u8,
    },

    /// A new message header arrived while the previous message on the same
    /// chunk stream was still incomplete.
    #[error("chunk stream {csid}: new message header before the previous message was complete")]
    InterruptedMessage {
        /// Chunk stream id.
        csid: u32,
    },

    /// The peer sent Set Chunk Size with a value outside the accepted range.
    #[error("peer set chunk size {size}, outside 1..={max}")]
    InvalidChunkSize {
        /// Requested chunk size.
        size: u32,
        /// Largest accepted chunk size.
        max: u32,
    },

    /// A command or data message did not contain valid AMF0.
    #[error("malformed AMF0 in {context}: {source}")]
    Amf0 {
        /// What was being decoded ("command message", ...).
        context: &'static str,
        /// The decoding failure.
        source: Amf0Error,
    },

    /// A protocol control or user control message was too short.
    #[error("malformed {kind} message: {reason}")]
    MalformedMessage {
        /// Message kind, e.g. "Set Chunk Size".
        kind: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The peer broke the command sequence in a way we cannot recover from.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),

    /// The caller used the session API in the wrong state, e.g.
    /// `accept_publish` for a stream with no pending publish.
    #[error("invalid session state: {0}")]
    InvalidState(&'static str),

    /// An RTMP URL could not be parsed.
    #[error("invalid RTMP URL: {0}")]
    InvalidUrl(&'static str),
}

/// Hard limits applied to everything a peer can make us buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Largest message (after chunk reassembly) accepted from the peer.
    /// Default 8 MiB, comfortably above a 4K keyframe.
    pub max_message_size: usize,
    /// Largest number of chunk streams a peer may use (each keeps header state
    /// and at most one partially assembled message). Default 32, as nginx-rtmp;
    /// encoders use a handful.
    pub max_chunk_streams: usize,
    /// Largest chunk size the peer may select with Set Chunk Size. The
    /// protocol allows up to 0x7FFFFFFF and that is the default: memory is
    /// bounded by `max_message_size`, not by the chunk size.
    pub max_input_chunk_size: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self { max_message_size: 8 * 1024 * 1024, max_chunk_streams: 32, max_input_chunk_size: chunk::MAX_CHUNK_SIZE }
    }
}

/// The two kinds of media message RTMP carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// Message type 8; payload is an FLV audio tag body.
    Audio,
    /// Message type 9; payload is an FLV video tag body.
    Video,
}

/// One message of a published stream as a client sends it: media, or the stream's metadata
/// (sent as `@setDataFrame`). Callers build it from whatever container they read.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamMessage {
    Media { kind: MediaKind, timestamp: u32, payload: bytes::Bytes },
    Metadata(bytes::Bytes),
}
