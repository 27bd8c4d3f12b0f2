//! The chunk layer of an established connection: header decoding, message reassembly
//! across interleaved chunk streams, Set Chunk Size, Abort, Window Acknowledgement Size and
//! the acknowledgements it triggers, pings. The first byte picks the piece size the input
//! arrives in (0 = all at once); the rest is the chunk stream as the peer sent it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motherstream_media::fuzzing::chunk_layer;
use motherstream_media::rtmp::SessionLimits;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else { return };
    let piece = if piece == 0 { input.len() } else { usize::from(piece) };
    // Small limits, so that the caps are reached by inputs of fuzzing size.
    let limits = SessionLimits { max_message_size: 64 * 1024, max_chunk_streams: 8, ..SessionLimits::default() };
    let _ = chunk_layer(input, piece, limits);
});
