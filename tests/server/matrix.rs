//! The encoder × platform interop matrix (SPEC section 8, switching): DJs with different
//! encoders take turns through every kind of transition while the program goes to real
//! platforms (nginx-rtmp, `ffmpeg -listen`) and to an RTMP player; what each received is
//! measured by `analysis` and must meet the bars: one connection per platform lifetime,
//! at most one frame interval between pictures as presented at every splice the server
//! controls, no backward decoding timestamps, audio within one frame of video, and a
//! recording ffmpeg decodes with no error.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::analysis::{Report, Source, analyse, own_av_offset};
use crate::encoders::{AUDIO_ONLY, Encoder, FfmpegDj, X264_BFRAMES, X264_LONG_GOP, X264_ZEROLATENCY, X265};
use crate::harness::{Options, PATIENCE, Server, require_tool};
use crate::platforms::{FfmpegListener, Nginx, decode_errors, read_tags, require_nginx_rtmp};
use crate::program::rtmp_player;
use crate::publisher::Dj;

/// The server as the operator drives it: an admin token for skips, kicks and timers.
pub struct Channel {
    pub server: Server,
    admin: String,
}

impl Channel {
    pub async fn start(grace_period: u64, destinations: &[(&str, String)]) -> Self {
        let mut extra_args = Vec::new();
        for (name, url) in destinations {
            extra_args.extend(["--destination".to_owned(), format!("{name}={url}")]);
        }
        let server = Server::start(Options { grace_period, extra_args, ..Options::default() });
        server.add_user("Admin", true);
        let admin = server.token("admin@example.org").await;
        Self { server, admin }
    }

    pub async fn admin_post(&self, path: &str, body: Option<Value>) {
        let (status, reply) = self.server.post(path, Some(&self.admin), body).await;
        assert_eq!(status, 200, "POST {path}: {reply}");
    }

    /// Slot expiry: one second left in the current set.
    pub async fn expire_slot(&self) {
        self.admin_post("/api/v1/queue/remaining", Some(json!({ "seconds": 1 }))).await;
    }

    pub async fn skip(&self) {
        self.admin_post("/api/v1/queue/skip", None).await;
    }

    pub async fn kick(&self, dj_name: &str) {
        self.admin_post(&format!("/api/v1/queue/{dj_name}/remove"), None).await;
    }

    /// Waits until the program shows `dj` (or the slate for None) and returns the status.
    pub async fn wait_on_air(&self, dj: Option<&str>) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let status = self.server.get_json("/api/v1/status").await;
            let on_air = status["on_air"]["dj_name"].as_str();
            let source = status["program"]["source"].as_str();
            let reached = match dj {
                Some(dj) => on_air == Some(dj) && source == Some("dj"),
                None => source == Some("slate"),
            };
            if reached {
                return status;
            }
            assert!(Instant::now() < deadline, "program never showed {dj:?}: {status}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        self.server.rtmp_url(key)
    }
}

/// Each fixture's own A/V offset, by the source it shows as; others (the slate) count 0.
pub fn own_offsets(fixtures: &[&std::path::Path]) -> Vec<(Source, i64)> {
    fixtures.iter().filter_map(|f| own_av_offset(&crate::program::read_flv(f))).collect()
}

/// Prints a report's transitions as one table row each, labelled with the kinds of
/// transition the scenario made in order, and returns its violations prefixed by `sink`.
/// The A/V column is relative to the new source's own offset (see `own_offsets`).
pub fn summarise(sink: &str, report: &Report, kinds: &[&str], own: &[(Source, i64)]) -> Vec<String> {
    let own_av = |s: &Source| own.iter().find(|(o, _)| o == s).map(|(_, ms)| *ms);
    eprintln!(
        "{sink}: {} pictures, {} audio frames, {} sources, largest gap {} ms as presented, audio hole {} ms, \
         backward dts {}",
        report.pictures,
        report.audio_frames,
        report.sources.len(),
        report.largest_picture_gap_ms,
        report.largest_audio_gap_ms,
        report.backward_dts
    );
    eprintln!(
        "  {:<28} {:>7} {:>7} {:>6} {:>4} {:>4} {:>8} {:>6}",
        "kind", "splice", "gap", "frame", "dts", "key", "audiogap", "a-v"
    );
    let show = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
    for (n, t) in report.transitions.iter().enumerate() {
        let kind = kinds.get(n).copied().unwrap_or("?");
        eprintln!(
            "  {kind:<28} {:>7} {:>7} {:>6} {:>4} {:>4} {:>8} {:>6}   {} -> {}",
            show(t.splice_ms),
            show(t.picture_gap_ms),
            show(t.frame_ms),
            if t.dts_monotonic { "ok" } else { "BACK" },
            if t.starts_with_keyframe { "ok" } else { "NO" },
            show(t.audio_gap_ms),
            show(t.av_offset_ms.zip(own_av(&t.to)).map(|(ms, own)| ms - own)),
            t.from,
            t.to
        );
    }
    report.violations_given(&own_av).into_iter().map(|v| format!("{sink}: {v}")).collect()
}

/// The kinds of transition `matrix_of_encoders_and_transitions_reaches_platforms_seamlessly`
/// makes, in the order a consumer sees them.
const MATRIX_KINDS: [&str; 8] = [
    "slate->DJ (first publish)",
    "DJ->DJ clean stop",
    "DJ->DJ slot expiry",
    "DJ->audio-only admin skip",
    "audio-only->DJ kick",
    "DJ->slate connection drop",
    "slate->DJ after grace",
    "DJ->slate clean stop",
];

#[tokio::test]
async fn matrix_of_encoders_and_transitions_reaches_platforms_seamlessly() {
    if !require_tool("ffmpeg") || !require_nginx_rtmp() {
        return;
    }
    let fixtures: Vec<_> = [X264_BFRAMES, X264_ZEROLATENCY, X264_LONG_GOP, AUDIO_ONLY]
        .iter()
        .map(|e| tokio::task::spawn_blocking(move || e.fixture()))
        .collect();
    let mut paths = Vec::new();
    for f in fixtures {
        paths.push(f.await.expect("fixture"));
    }
    let [bframes, zerolatency, long_gop, audio_only] = <[_; 4]>::try_from(paths).expect("four fixtures");
    let own = own_offsets(&[&bframes, &zerolatency, &long_gop, &audio_only]);

    let nginx = Nginx::start().await;
    let listener = FfmpegListener::start().await;
    let mut channel = Channel::start(1, &[("nginx", nginx.url("matrix")), ("ffmpeg", listener.url())]).await;
    let keys: Vec<String> =
        ["Alice", "Bob", "Carol", "Dave"].iter().map(|n| channel.server.add_user(n, false)).collect();
    let player = rtmp_player(&channel.server).await;
    channel.wait_on_air(None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // slate -> Alice (x264, 3 B-frames, pyramid, 2 s GOP, 44.1 kHz)
    let alice = FfmpegDj::publish(&bframes, &channel.rtmp_url(&keys[0]));
    channel.wait_on_air(Some("Alice")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Alice stops cleanly -> Bob (x264 zerolatency, 1 s GOP, 640x360, 48 kHz)
    let bob = FfmpegDj::publish(&zerolatency, &channel.rtmp_url(&keys[1]));
    channel.server.wait_for_queue(&["Alice", "Bob"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await; // Bob's GOP cache fills
    alice.stop().await;
    channel.wait_on_air(Some("Bob")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Bob's slot expires -> Carol (x264, 2 B-frames, 10 s GOP)
    let carol = FfmpegDj::publish(&long_gop, &channel.rtmp_url(&keys[2]));
    channel.server.wait_for_queue(&["Bob", "Carol"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    channel.expire_slot().await;
    channel.wait_on_air(Some("Carol")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Admin skips Carol -> Dave (audio only)
    let dave = FfmpegDj::publish(&audio_only, &channel.rtmp_url(&keys[3]));
    channel.server.wait_for_queue(&["Carol", "Dave"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    channel.skip().await;
    channel.wait_on_air(Some("Dave")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Admin kicks Dave -> Alice again
    let alice = FfmpegDj::publish(&bframes, &channel.rtmp_url(&keys[0]));
    channel.server.wait_for_queue(&["Dave", "Alice"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    channel.kick("Dave").await;
    channel.wait_on_air(Some("Alice")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Alice's encoder dies -> slate for the grace period -> Bob
    let bob2 = FfmpegDj::publish(&zerolatency, &channel.rtmp_url(&keys[1]));
    drop(bob);
    drop(carol);
    drop(dave);
    channel.server.wait_for_queue(&["Alice", "Bob"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    alice.kill();
    channel.wait_on_air(Some("Bob")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Bob stops cleanly, nobody waiting -> slate
    bob2.stop().await;
    channel.wait_on_air(None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let status = channel.server.get_json("/api/v1/status").await;
    channel.server.terminate();
    let (listener_ok, listener_err, listener_out, _keep) = listener.finish().await;
    // Kept for review under target/test-artifacts/.
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    let _ = std::fs::create_dir_all(&artifacts);
    let _ = std::fs::copy(&listener_out, artifacts.join("matrix-platform.flv"));

    let mut missed = Vec::new();
    for destination in status["destinations"].as_array().expect("destinations") {
        eprintln!("destination {destination}");
        if destination["reconnects"] != 0 {
            missed.push(format!("destination {} reconnected: {destination}", destination["name"]));
        }
    }
    if nginx.publishes() != 1 {
        missed.push(format!("nginx saw {} publish connections, not 1", nginx.publishes()));
    }
    if !listener_ok {
        missed.push(format!("ffmpeg -listen failed (its one connection ended early?): {listener_err}"));
    }
    let mut sinks = vec![("rtmp player".to_owned(), player.tags())];
    sinks.push(("ffmpeg -listen".to_owned(), read_tags(&listener_out)));
    for file in nginx.recordings() {
        sinks.push((format!("nginx {}", file.display()), read_tags(&file)));
        let errors = decode_errors(&file);
        if !errors.trim().is_empty() {
            missed.push(format!("ffmpeg decoding nginx's recording: {}", first_lines(&errors)));
        }
    }
    let errors = decode_errors(&listener_out);
    if !errors.trim().is_empty() {
        missed.push(format!("ffmpeg decoding ffmpeg -listen's recording: {}", first_lines(&errors)));
    }
    for (sink, tags) in &sinks {
        let report = analyse(tags);
        if report.transitions.len() != MATRIX_KINDS.len() {
            missed.push(format!("{sink}: {} transitions, expected {}", report.transitions.len(), MATRIX_KINDS.len()));
        }
        missed.extend(summarise(sink, &report, &MATRIX_KINDS, &own));
    }
    assert!(missed.is_empty(), "{} bars missed:\n{}", missed.len(), missed.join("\n"));
}

fn first_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut shown = lines.iter().take(5).copied().collect::<Vec<_>>().join(" | ");
    if lines.len() > 5 {
        shown.push_str(&format!(" (+{} more lines)", lines.len() - 5));
    }
    shown
}

/// Finding 1 of issue 16: a platform that comes back while the on-air DJ is deep into a
/// long GOP. The destination must dial again, and its new connection must start decodable
/// (sequence headers, then a keyframe) and stay up: one new publish per platform restart.
#[tokio::test]
async fn platform_restarted_deep_into_a_long_gop_gets_one_decodable_connection() {
    if !require_tool("ffmpeg") || !require_nginx_rtmp() {
        return;
    }
    let long_gop = tokio::task::spawn_blocking(|| X264_LONG_GOP.fixture()).await.expect("fixture");
    let mut nginx = Nginx::start().await;
    let channel = Channel::start(1, &[("nginx", nginx.url("restart"))]).await;
    let key = channel.server.add_user("Carol", false);
    let _carol = FfmpegDj::publish(&long_gop, &channel.rtmp_url(&key));
    channel.wait_on_air(Some("Carol")).await;
    assert!(nginx.wait_for_publishes(1, PATIENCE).await, "the destination never published: {}", nginx.log());
    // On air from a keyframe; 8 s later the last keyframe is 8 s old (GOP: 10 s).
    tokio::time::sleep(Duration::from_secs(8)).await;
    nginx.restart().await;
    let reconnected = nginx.wait_for_publishes(2, Duration::from_secs(15)).await;
    // Long enough for a looping destination to show itself, and for a keyframe to come.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let status = channel.server.get_json("/api/v1/status").await;
    let destination = &status["destinations"][0];
    eprintln!("destination after the restart: {destination}");
    assert!(reconnected, "the destination did not reconnect within 15 s: {destination}");
    let log = nginx.log();
    let tail: Vec<&str> = log.lines().rev().take(12).collect();
    assert_eq!(
        nginx.publishes(),
        2,
        "one new connection for one restart: {destination}\nnginx log, last lines first:\n{}",
        tail.join("\n")
    );
    let recordings = nginx.recordings();
    let last = recordings.last().expect("a recording of the new connection");
    let report = analyse(&read_tags(last));
    eprintln!("after the restart: {} pictures, starts decodable: {}", report.pictures, report.starts_decodable);
    assert!(report.starts_decodable, "the new connection must start with headers and a keyframe");
    assert!(report.pictures > 5 * 30, "the new connection carried only {} pictures", report.pictures);
    assert_eq!(report.backward_dts, 0);
}

/// HEVC over Enhanced RTMP (FourCC hvc1, from the project's own client) and x264 with
/// B-frames take turns; nginx-rtmp relays both. ffmpeg 5.1 cannot read Enhanced RTMP FLV,
/// so here only the analysis judges the recording.
#[tokio::test]
async fn hevc_over_enhanced_rtmp_and_h264_take_turns() {
    if !require_tool("ffmpeg") || !require_nginx_rtmp() {
        return;
    }
    let hevc = tokio::task::spawn_blocking(|| X265.fixture()).await.expect("fixture");
    let h264 = tokio::task::spawn_blocking(|| X264_BFRAMES.fixture()).await.expect("fixture");
    let nginx = Nginx::start().await;
    let channel = Channel::start(1, &[("nginx", nginx.url("hevc"))]).await;
    let eve = channel.server.add_user("Eve", false);
    let alice = channel.server.add_user("Alice", false);
    let player = rtmp_player(&channel.server).await;
    channel.wait_on_air(None).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let eve_dj =
        Dj::publish_file(channel.server.rtmp, &eve, hevc.to_str().expect("utf-8 path")).await.expect("publish");
    let status = channel.wait_on_air(Some("Eve")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alice_dj = FfmpegDj::publish(&h264, &channel.rtmp_url(&alice));
    channel.server.wait_for_queue(&["Eve", "Alice"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    eve_dj.stop().await;
    channel.wait_on_air(Some("Alice")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    alice_dj.stop().await;
    channel.wait_on_air(None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = channel.server.get_json("/api/v1/status").await;

    let kinds = ["slate->DJ (HEVC)", "HEVC->H.264 clean stop", "DJ->slate clean stop"];
    let mut missed = Vec::new();
    eprintln!("Eve on air: {}", status["on_air"]["stats"]);
    if nginx.publishes() != 1 {
        missed.push(format!("nginx saw {} publishes: {}", nginx.publishes(), after["destinations"]));
    }
    let mut sinks = vec![("rtmp player".to_owned(), player.tags())];
    for file in nginx.recordings() {
        sinks.push((format!("nginx {}", file.display()), read_tags(&file)));
    }
    for (sink, tags) in &sinks {
        let report = analyse(tags);
        if !report.sources.iter().any(|s| s.video.as_deref().is_some_and(|v| v.starts_with("hevc"))) {
            missed.push(format!("{sink}: no HEVC source among {:?}", report.sources));
        }
        missed.extend(summarise(sink, &report, &kinds, &own_offsets(&[&hevc, &h264])));
    }
    assert!(missed.is_empty(), "{} bars missed:\n{}", missed.len(), missed.join("\n"));
}

/// The fixtures themselves are what the matrix claims: codec, picture size, GOP length and
/// sample rate, as ffprobe reads them.
#[test]
fn matrix_fixtures_have_the_parameters_they_are_named_for() {
    if !require_tool("ffprobe") {
        return;
    }
    for encoder in [X264_BFRAMES, X264_ZEROLATENCY, X264_LONG_GOP, AUDIO_ONLY, X265] {
        let path = encoder.fixture();
        let tags = crate::program::read_flv(&path);
        let report = analyse(&tags);
        let label = encoder.label();
        assert_eq!(report.sources.len(), 1, "{label}: {:?}", report.sources);
        let source = &report.sources[0];
        assert_eq!(source.audio.as_deref(), Some(format!("aac {}", encoder.audio_rate).as_str()), "{label}");
        assert_eq!(report.backward_dts, 0, "{label}");
        assert!(report.largest_audio_gap_ms <= 1, "{label}: audio hole {}", report.largest_audio_gap_ms);
        let keyframes: Vec<u32> = tags
            .iter()
            .filter(|t| {
                t.kind == motherstream::media::flv::TagKind::Video
                    && motherstream::media::codec::VideoTagInfo::parse(&t.payload).is_ok_and(|i| i.is_keyframe())
            })
            .map(|t| t.timestamp)
            .collect();
        check_video(&encoder, source.video.as_deref(), &keyframes, report.largest_picture_gap_ms);
    }
}

fn check_video(encoder: &Encoder, video: Option<&str>, keyframes: &[u32], largest_gap: i64) {
    let label = encoder.label();
    if encoder.size == (0, 0) {
        assert_eq!(video, None, "{label}");
        return;
    }
    let codec = if encoder.video == crate::encoders::Video::X265 { "hevc" } else { "h264" };
    assert_eq!(video, Some(format!("{codec} {}x{}", encoder.size.0, encoder.size.1).as_str()), "{label}");
    let gop_ms = encoder.gop_secs * 1000;
    for pair in keyframes.windows(2) {
        assert!(pair[1] - pair[0] >= gop_ms - 40 && pair[1] - pair[0] <= gop_ms + 40, "{label}: keyframes {pair:?}");
    }
    assert!(largest_gap <= 34, "{label}: pictures {largest_gap} ms apart");
}
