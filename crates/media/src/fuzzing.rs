//! Entry points for the coverage-guided fuzz targets in `fuzz/`, for the parsers that are
//! private to their module. Not an API: each one runs the code the server runs on the same
//! bytes, and nothing else.

use crate::media::codec::{CodecError, avc, hevc};
use crate::rtmp::connection::Connection;
use crate::rtmp::{RtmpError, SessionLimits};

/// Feeds `input` to the chunk layer of an established connection (reassembly, Set Chunk
/// Size, Abort, Window Acknowledgement Size with the acknowledgements it triggers, pings)
/// in pieces of `piece` bytes, taking every message and every output, as a session would.
/// Returns how many messages reached the session, or the error that would close the
/// connection.
pub fn chunk_layer(input: &[u8], piece: usize, limits: SessionLimits) -> Result<usize, RtmpError> {
    let mut connection = Connection::new(limits);
    let mut messages = 0;
    for part in input.chunks(piece.max(1)) {
        connection.receive(part);
        while connection.next_message()?.is_some() {
            messages += 1;
        }
        connection.take_output();
    }
    Ok(messages)
}

/// The picture size (width, height) an H.264 SPS NAL unit (header byte included) gives.
pub fn avc_sps(nal: &[u8]) -> Result<(u32, u32), CodecError> {
    avc::parse_sps(nal).map(|size| (size.width, size.height))
}

/// The picture size (width, height) an H.265 SPS NAL unit (2-byte header included) gives.
pub fn hevc_sps(nal: &[u8]) -> Result<(u32, u32), CodecError> {
    hevc::parse_sps(nal).map(|size| (size.width, size.height))
}
