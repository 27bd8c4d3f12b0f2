//! Publish URLs as given in the configuration or over the API: rtmp[s]://host[:port]/app/key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motherstream_media::rtmp::RtmpUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(url) = RtmpUrl::parse(text) else { return };
    // The same URL, rebuilt from its parts, parses to the same parts.
    let rebuilt = format!("{}/{}", url.tc_url, url.stream_key);
    assert_eq!(RtmpUrl::parse(&rebuilt).expect("a URL rebuilt from its parts parses"), url);
});
