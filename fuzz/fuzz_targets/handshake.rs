//! The simple handshake, both sides, fed in pieces. The first byte picks the piece size so
//! that partial reads are explored; the rest is what the peer sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motherstream_media::rtmp::handshake::{ClientHandshake, HandshakeStatus, PACKET_SIZE, ServerHandshake};

fuzz_target!(|data: &[u8]| {
    let Some((&piece, input)) = data.split_first() else { return };
    let piece = usize::from(piece).max(1);

    let mut server = ServerHandshake::new();
    let mut consumed = 0;
    for part in input.chunks(piece) {
        match server.handle_input(part) {
            Ok(HandshakeStatus::InProgress) => consumed += part.len(),
            Ok(HandshakeStatus::Done { leftover }) => {
                consumed += part.len() - leftover.len();
                assert_eq!(consumed, 1 + 2 * PACKET_SIZE, "server finished after C0+C1+C2 exactly");
                break;
            }
            Err(_) => break,
        }
        if let Some(out) = server.take_output() {
            assert_eq!(out.len(), 1 + 2 * PACKET_SIZE);
        }
    }

    let mut client = ClientHandshake::new();
    let mut consumed = 0;
    for part in input.chunks(piece) {
        match client.handle_input(part) {
            Ok(HandshakeStatus::InProgress) => consumed += part.len(),
            Ok(HandshakeStatus::Done { leftover }) => {
                consumed += part.len() - leftover.len();
                assert_eq!(consumed, 1 + 2 * PACKET_SIZE, "client finished after S0+S1+S2 exactly");
                break;
            }
            Err(_) => break,
        }
    }
});
