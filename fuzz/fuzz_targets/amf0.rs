//! The AMF0 decoder. Whatever decodes must encode to bytes that decode to the same
//! encoding again (values are not compared directly: NaN is not equal to itself).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use motherstream_media::rtmp::amf0;

fuzz_target!(|data: &[u8]| {
    let _ = amf0::decode_one(data);
    let Ok(values) = amf0::decode_all(data) else { return };
    let mut first = BytesMut::new();
    for value in &values {
        amf0::encode(value, &mut first);
    }
    let again = amf0::decode_all(&first).expect("re-encoded AMF0 decodes");
    assert_eq!(again.len(), values.len());
    let mut second = BytesMut::new();
    for value in &again {
        amf0::encode(value, &mut second);
    }
    assert_eq!(first, second);
});
