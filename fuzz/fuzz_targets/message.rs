//! Typed decoding of a reassembled message: protocol control, user control, commands
//! (AMF0 and the AMF3-wrapped form) and data messages with their metadata. The first byte
//! is the message type id; the rest is the body.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use motherstream_media::rtmp::RtmpMessage;
use motherstream_media::rtmp::message::{Message, extract_metadata};

fuzz_target!(|data: &[u8]| {
    let Some((&type_id, body)) = data.split_first() else { return };
    let payload = Bytes::copy_from_slice(body);
    let msg = RtmpMessage { type_id, stream_id: 1, timestamp: 0, payload: payload.clone() };
    if let Ok(Message::Command(command)) = Message::decode(&msg) {
        // What the server sends back echoes parts of the command.
        let _ = command.encode();
    }
    if let Ok(Some(metadata)) = extract_metadata(&payload) {
        assert!(metadata.len() <= payload.len());
    }
});
