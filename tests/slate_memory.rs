//! The built-in slate is made at every start-up, so the memory it takes while being made is
//! the server's peak (docs/benchmarks.md §11). Measured as the growth of this process's
//! peak resident set, which counts the encoder's own (C) allocations too; the binary holds
//! this one test so that nothing else runs meanwhile.

use motherstream::channel::ChannelProfile;
use motherstream::channel::slate::generate;

/// `VmRSS` or `VmHWM` of this process, in KiB.
fn status_kib(key: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key} in /proc/self/status"));
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB")
}

/// A 720p picture is 1.4 MiB as YUV 4:2:0. Drawing it in 64-bit floats (21 MiB) and
/// encoding it in OpenH264's screen-content mode (19 MiB) took the server from 16 MiB to a
/// peak of 35 at every start.
#[test]
fn the_slate_is_made_in_a_few_frames_of_memory() {
    let profile = ChannelProfile::default();
    let frame_kib = profile.width as usize * profile.height as usize * 3 / 2 / 1024;
    // Writing 5 resets the peak to the current resident set (proc(5), clear_refs).
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak resident set");
    let before = status_kib("VmRSS:");

    let flv = generate(&profile).expect("the slate");

    let grew = status_kib("VmHWM:").saturating_sub(before);
    assert!(!flv.is_empty());
    assert!(
        grew <= 10 * frame_kib,
        "making the slate took {:.1} MiB at its peak, more than 10 frames ({:.1} MiB)",
        grew as f64 / 1024.0,
        (10 * frame_kib) as f64 / 1024.0
    );
}
