//! Sequence parameter sets as the picture size is read from them: H.264 (even first byte)
//! or H.265 (odd); the rest is the NAL unit, header included.
#![no_main]

use libfuzzer_sys::fuzz_target;
use motherstream_media::fuzzing::{avc_sps, hevc_sps};

fuzz_target!(|data: &[u8]| {
    let Some((&which, nal)) = data.split_first() else { return };
    let size = if which % 2 == 0 { avc_sps(nal) } else { hevc_sps(nal) };
    if let Ok((width, height)) = size {
        assert!(width > 0 && height > 0);
    }
});
