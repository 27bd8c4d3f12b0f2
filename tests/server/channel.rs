//! The channel profile end to end: the slate the program plays is made in the configured
//! profile, a user slate that differs is named at start-up, and policy "transcode" refuses
//! to start without a usable ffmpeg.

use std::time::Duration;

use motherstream::channel::StreamProfile;
use motherstream::channel::slate::describe_flv;
use motherstream::media::flv::{FlvHeader, FlvTag};

use crate::harness::{BIN, Options, Server};
use crate::program::http_viewer;

/// The tags as an FLV file, to describe them like any file.
fn as_flv(tags: &[FlvTag]) -> bytes::Bytes {
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(&FlvHeader { has_audio: true, has_video: true }.encode());
    for tag in tags {
        bytes::BufMut::put(&mut out, tag.encode().unwrap());
    }
    out.freeze()
}

#[tokio::test]
async fn the_idle_program_is_the_slate_in_the_channel_profile() {
    let config = "[channel]\nwidth = 640\nheight = 360\nfps = 25\nsample_rate = 44100\nchannels = 1\n";
    let server = Server::start(Options { config: Some(config.into()), ..Options::default() });
    let viewer = http_viewer(&server).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stream = describe_flv(as_flv(&viewer.tags())).unwrap();
    let want = StreamProfile {
        width: Some(640),
        height: Some(360),
        sample_rate: Some(44100),
        channels: Some(1),
        ..stream.clone()
    };
    assert_eq!(stream, want);
    let fps = stream.fps.expect("frame rate");
    assert!((fps - 25.0).abs() < 0.5, "{fps}");
    assert!(server.logs().contains("channel profile 640x360, 25 fps, 44.1 kHz mono"), "{}", server.logs());
}

#[tokio::test]
async fn a_user_slate_that_differs_from_the_profile_is_named_at_start_up() {
    let options =
        Options { extra_args: vec!["--slate".into(), crate::publisher::FIXTURE.into()], ..Options::default() };
    let server = Server::start(options);
    server.wait_for_log("does not match the channel profile").await;
    let logs = server.logs();
    assert!(logs.contains("resolution 320x180, channel is 1280x720"), "{logs}");
    assert!(logs.contains("sample rate 44.1 kHz, channel is 48 kHz"), "{logs}");
}

#[tokio::test]
async fn policy_transcode_starts_with_a_usable_ffmpeg() {
    if !crate::harness::require_tool("ffmpeg") {
        return;
    }
    let config = "[channel]\noff_profile = \"transcode\"\n";
    let server = Server::start(Options { config: Some(config.into()), ..Options::default() });
    server.wait_for_log("off-profile DJs: transcode").await;
}

#[test]
fn policy_transcode_needs_ffmpeg_with_libx264_and_aac() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("motherstream.toml");
    std::fs::write(&config, "[channel]\noff_profile = \"transcode\"\nffmpeg = \"/nonexistent/ffmpeg\"\n").unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs ffmpeg with the libx264 and aac encoders: cannot run `/nonexistent/ffmpeg`"),
        "{stderr}"
    );
}

mod policies {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use motherstream::channel::slate::describe_flv;
    use motherstream::channel::{ChannelConfig, OffProfilePolicy};
    use motherstream::hub::{Airing, Publisher};
    use motherstream::media::flv::FlvTag;
    use motherstream::queue::engine::Dj;
    use tokio::sync::broadcast::error::RecvError;

    use super::as_flv;
    use crate::harness::require_tool;
    use crate::publisher::{FIXTURE2, fixture_tags, is_header};

    fn publisher(policy: OffProfilePolicy) -> Arc<Publisher> {
        let channel = ChannelConfig { off_profile: policy, ..ChannelConfig::default() };
        let dj = Dj { user_id: motherstream::ids::UserId(1), dj_name: "Bob".into() };
        Arc::new(Publisher::with_channel(motherstream::ids::ConnId(1), dj, Instant::now(), Arc::new(channel)))
    }

    /// Feeds `path` into the publisher in real time, looped, like a live encoder.
    fn feed(publisher: Arc<Publisher>, path: &str) -> tokio::task::JoinHandle<()> {
        let tags = fixture_tags(path);
        let loop_ms = tags.last().map_or(1000, |t| t.timestamp + 40);
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for round in 0u32.. {
                for tag in &tags {
                    if round > 0 && is_header(tag) {
                        continue;
                    }
                    let timestamp = tag.timestamp + round * loop_ms;
                    tokio::time::sleep_until(start + Duration::from_millis(u64::from(timestamp))).await;
                    publisher.on_tag(Instant::now(), FlvTag { timestamp, ..tag.clone() });
                }
            }
        })
    }

    /// Asks like the program's watchdog does (every 250 ms) until `done` accepts an answer.
    async fn ask_until(publisher: &Publisher, done: impl Fn(&Airing) -> bool) -> (Airing, Vec<&'static str>) {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let airing = publisher.airing();
            if seen.last() != Some(&airing.name()) {
                seen.push(airing.name());
            }
            if done(&airing) {
                return (airing, seen);
            }
            assert!(Instant::now() < deadline, "still {} after 20 s: {seen:?}", airing.name());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    #[tokio::test]
    async fn policy_slate_covers_an_off_profile_dj_and_airs_a_matching_one() {
        // dj2.flv is 640x360: covered as soon as its headers are in.
        let off = publisher(OffProfilePolicy::Slate);
        let _feeding = feed(off.clone(), FIXTURE2);
        let (_, seen) = ask_until(&off, |a| matches!(a, Airing::Covered)).await;
        assert!(seen.iter().all(|s| ["undecided", "covered"].contains(s)), "{seen:?}");
        assert_eq!(off.profile_report(Instant::now()).airing, "covered");

        // A stream in the channel profile (the generated slate itself, as a DJ) airs directly.
        let flv = motherstream::channel::slate::generate(&Default::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("matching.flv");
        std::fs::write(&path, &flv).unwrap();
        let matching = publisher(OffProfilePolicy::Slate);
        let _feeding = feed(matching.clone(), path.to_str().unwrap());
        let (_, seen) = ask_until(&matching, |a| matches!(a, Airing::Direct)).await;
        assert!(seen.iter().all(|s| ["undecided", "direct"].contains(s)), "{seen:?}");
    }

    #[tokio::test]
    async fn policy_allow_airs_everyone_as_sent() {
        let off = publisher(OffProfilePolicy::Allow);
        assert!(matches!(off.airing(), Airing::Direct), "even before any media");
        let _feeding = feed(off.clone(), FIXTURE2);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(matches!(off.airing(), Airing::Direct));
    }

    /// A real ffmpeg converts dj2.flv (640x360, 25 fps, 48 kHz) to the channel profile
    /// (1280x720, 30 fps, 48 kHz stereo); the program gets a derived publisher that starts at
    /// a keyframe with the profile's headers. Prints the added latency.
    #[tokio::test]
    async fn policy_transcode_airs_a_derived_stream_in_the_channel_profile() {
        if !require_tool("ffmpeg") {
            return;
        }
        let source = publisher(OffProfilePolicy::Transcode);
        let started = Instant::now();
        let _feeding = feed(source.clone(), FIXTURE2);
        let (airing, seen) = ask_until(&source, |a| matches!(a, Airing::Transcoded(_))).await;
        assert!(seen.iter().all(|s| ["undecided", "transcoded"].contains(s)), "{seen:?}");
        let Airing::Transcoded(derived) = airing else { unreachable!() };
        eprintln!("transcoded stream ready {} ms after the DJ started", started.elapsed().as_millis());

        let mut output = derived.subscribe();
        let mut tags: Vec<FlvTag> = [output.headers.metadata, output.headers.video, output.headers.audio]
            .into_iter()
            .flatten()
            .chain(output.startup)
            .collect();
        let mut latencies = Vec::new();
        let until = Instant::now() + Duration::from_secs(4);
        while Instant::now() < until {
            // Keep the transcode wanted, as the program's watchdog does.
            let _ = source.airing();
            match tokio::time::timeout(Duration::from_millis(250), output.live.recv()).await {
                Ok(Ok(tag)) => {
                    // ffmpeg's output time counts from the DJ's first tag, fed at `started`.
                    let due = started + Duration::from_millis(u64::from(tag.timestamp));
                    latencies.push(Instant::now().saturating_duration_since(due).as_millis());
                    tags.push(tag);
                }
                Ok(Err(RecvError::Lagged(_))) => {}
                Ok(Err(RecvError::Closed)) => panic!("transcode ended"),
                Err(_) => {}
            }
        }
        latencies.sort_unstable();
        eprintln!("latency ingest → transcoded output: median {} ms", latencies[latencies.len() / 2]);
        let stream = describe_flv(as_flv(&tags)).unwrap();
        assert_eq!((stream.width, stream.height), (Some(1280), Some(720)), "{stream:?}");
        assert_eq!((stream.sample_rate, stream.channels), (Some(48000), Some(2)), "{stream:?}");
        let fps = stream.fps.unwrap();
        assert!((fps - 30.0).abs() < 0.5, "{fps}");
        assert_eq!(source.profile_report(Instant::now()).airing, "transcoded");

        // Matching DJs are never transcoded: the main fixture differs too, so use the
        // generated slate as a matching stream.
        let flv = motherstream::channel::slate::generate(&Default::default()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("matching.flv");
        std::fs::write(&path, &flv).unwrap();
        let matching = publisher(OffProfilePolicy::Transcode);
        let _feeding = feed(matching.clone(), path.to_str().unwrap());
        let (_, seen) = ask_until(&matching, |a| matches!(a, Airing::Direct)).await;
        assert!(!seen.contains(&"transcoded"), "{seen:?}");
    }

    /// Processes named `name` started by this test process.
    fn children_named(name: &str) -> Vec<u32> {
        let me = std::process::id().to_string();
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // "pid (comm) state ppid ..."
            let Some((comm, rest)) = stat.split_once(") ") else { continue };
            let ppid = rest.split_whitespace().nth(1);
            if comm.strip_prefix(&format!("{pid} (")) == Some(name) && ppid == Some(me.as_str()) {
                found.push(pid);
            }
        }
        found
    }

    #[tokio::test]
    async fn the_transcoder_is_killed_when_the_dj_leaves_and_a_failing_ffmpeg_falls_back_to_the_slate() {
        if !require_tool("ffmpeg") {
            return;
        }
        // ffmpeg under a name of its own, so other tests' ffmpegs are not counted.
        let dir = tempfile::tempdir().unwrap();
        let ffmpeg = dir.path().join("ms-leave-ffmpeg");
        let real =
            String::from_utf8(std::process::Command::new("which").arg("ffmpeg").output().unwrap().stdout).unwrap();
        std::os::unix::fs::symlink(real.trim(), &ffmpeg).unwrap();
        let channel = ChannelConfig {
            off_profile: OffProfilePolicy::Transcode,
            ffmpeg: ffmpeg.to_string_lossy().into_owned(),
            ..ChannelConfig::default()
        };
        let dj = Dj { user_id: motherstream::ids::UserId(3), dj_name: "Dan".into() };
        let source =
            Arc::new(Publisher::with_channel(motherstream::ids::ConnId(3), dj, Instant::now(), Arc::new(channel)));
        let feeding = feed(source.clone(), FIXTURE2);
        ask_until(&source, |a| matches!(a, Airing::Transcoded(_))).await;
        assert_eq!(children_named("ms-leave-ffmpeg").len(), 1, "one ffmpeg for the one off-profile DJ");
        // What the registry does when the connection ends.
        source.stop_transcoding();
        feeding.abort();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !children_named("ms-leave-ffmpeg").is_empty() {
            assert!(Instant::now() < deadline, "ffmpeg still running after the DJ left");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // An ffmpeg that dies at once is restarted, then given up on: the slate covers.
        let channel = ChannelConfig {
            off_profile: OffProfilePolicy::Transcode,
            ffmpeg: "false".into(),
            ..ChannelConfig::default()
        };
        let dj = Dj { user_id: motherstream::ids::UserId(2), dj_name: "Carol".into() };
        let broken =
            Arc::new(Publisher::with_channel(motherstream::ids::ConnId(2), dj, Instant::now(), Arc::new(channel)));
        let _feeding = feed(broken.clone(), FIXTURE2);
        let (_, seen) = ask_until(&broken, |a| matches!(a, Airing::Covered)).await;
        assert_eq!(seen, ["undecided", "covered"], "never aired a broken transcode");
        assert_eq!(broken.profile_report(Instant::now()).airing, "covered");
    }

    /// The cost of a transcode: % of one core used by ffmpeg, and the added latency, for a
    /// 720p30 DJ (off only in sample rate: the video is re-encoded all the same) and a 1080p30
    /// DJ, into the default 1280x720 30 fps profile. Run by hand:
    /// `cargo test --release --test server measure_transcode -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "a measurement: takes a minute and prints numbers"]
    async fn measure_transcode_cost() {
        let dir = tempfile::tempdir().unwrap();
        let ffmpeg = dir.path().join("ms-cost-ffmpeg");
        let real =
            String::from_utf8(std::process::Command::new("which").arg("ffmpeg").output().unwrap().stdout).unwrap();
        std::os::unix::fs::symlink(real.trim(), &ffmpeg).unwrap();
        let ticks: f64 =
            String::from_utf8(std::process::Command::new("getconf").arg("CLK_TCK").output().unwrap().stdout)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
        for (size, rate) in [("1280x720", 44100), ("1920x1080", 48000)] {
            let input = dir.path().join(format!("{size}.flv"));
            let made = std::process::Command::new("ffmpeg")
                .args(["-v", "error", "-f", "lavfi", "-i", &format!("testsrc2=size={size}:rate=30"), "-f", "lavfi"])
                .args(["-i", &format!("sine=frequency=440:sample_rate={rate}"), "-t", "12", "-c:v", "libx264"])
                .args(["-preset", "veryfast", "-b:v", "4000k", "-g", "60", "-c:a", "aac", "-ac", "2", "-f", "flv"])
                .arg(&input)
                .status()
                .unwrap();
            assert!(made.success());
            let channel = ChannelConfig {
                off_profile: OffProfilePolicy::Transcode,
                ffmpeg: ffmpeg.to_string_lossy().into_owned(),
                ..ChannelConfig::default()
            };
            let dj = Dj { user_id: motherstream::ids::UserId(9), dj_name: size.into() };
            let source =
                Arc::new(Publisher::with_channel(motherstream::ids::ConnId(9), dj, Instant::now(), Arc::new(channel)));
            let started = Instant::now();
            let feeding = feed(source.clone(), input.to_str().unwrap());
            let (airing, _) = ask_until(&source, |a| matches!(a, Airing::Transcoded(_))).await;
            let ready_ms = started.elapsed().as_millis();
            let Airing::Transcoded(derived) = airing else { unreachable!() };
            let cpu = |pid: u32| -> f64 {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
                let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
                (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks
            };
            let pid = children_named("ms-cost-ffmpeg")[0];
            // Past the start-up burst (the cached GOP, x264's first frames).
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mut output = derived.subscribe();
            let (cpu0, t0) = (cpu(pid), Instant::now());
            let (mut video, mut audio) = (Vec::new(), Vec::new());
            while t0.elapsed() < Duration::from_secs(8) {
                let _ = source.airing();
                if let Ok(Ok(tag)) = tokio::time::timeout(Duration::from_millis(250), output.live.recv()).await {
                    let due = started + Duration::from_millis(u64::from(tag.timestamp));
                    let late = Instant::now().saturating_duration_since(due).as_millis();
                    match tag.kind {
                        motherstream::media::flv::TagKind::Video => video.push(late),
                        _ => audio.push(late),
                    }
                }
            }
            let share = (cpu(pid) - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
            video.sort_unstable();
            audio.sort_unstable();
            let pct = |v: &[u128], p: usize| v[v.len() * p / 100];
            eprintln!(
                "{size}@30 {rate} Hz → 1280x720@30 48 kHz: ffmpeg {share:.0} % of a core; latency video median {} ms \
                 p90 {} ms, audio median {} ms p90 {} ms; first keyframe {ready_ms} ms after the DJ started",
                pct(&video, 50),
                pct(&video, 90),
                pct(&audio, 50),
                pct(&audio, 90),
            );
            source.stop_transcoding();
            feeding.abort();
        }
    }
}

/// The acceptance: with policy "transcode", the program's recording keeps one
/// resolution, one frame rate and one sample rate from start to end across DJs who differ in
/// all three (dj.flv: 320x180@30, 44.1 kHz; dj2.flv: 640x360@25, 48 kHz; the slate in the
/// profile between them).
#[tokio::test]
async fn with_policy_transcode_the_program_keeps_one_format_across_djs() {
    if !crate::harness::require_tool("ffmpeg") {
        return;
    }
    use crate::program::read_flv;
    use crate::publisher::{Dj, FIXTURE2};
    use motherstream::media::codec::{AudioConfig, VideoConfig, parse_audio_tag, parse_video_tag};
    use motherstream::media::flv::TagKind;

    let config = "record_program = true\n[channel]\noff_profile = \"transcode\"\n";
    let mut server = Server::start(Options { grace_period: 1, config: Some(config.into()), ..Options::default() });
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    let alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let bob = Dj::publish_file(server.rtmp, &bob_key, FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    alice.stop().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    bob.stop().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.terminate();

    let dir = server.data_dir.join("recordings/program");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let tags = read_flv(&files[0]);
    let (mut sizes, mut sounds, mut intervals, mut last) = (Vec::new(), Vec::new(), Vec::new(), None);
    for tag in &tags {
        match tag.kind {
            TagKind::Video => {
                let parsed = parse_video_tag(&tag.payload).unwrap();
                if parsed.info.is_sequence_header() {
                    let config = VideoConfig::parse(parsed.info.codec, parsed.body).unwrap();
                    sizes.push((config.width, config.height));
                } else {
                    if let Some(last) = last {
                        assert!(tag.timestamp >= last, "video went back from {last} to {} ms", tag.timestamp);
                        intervals.push(tag.timestamp - last);
                    }
                    last = Some(tag.timestamp);
                }
            }
            TagKind::Audio => {
                let parsed = parse_audio_tag(&tag.payload).unwrap();
                if parsed.info.is_sequence_header() {
                    let config = AudioConfig::parse(parsed.info.codec, parsed.body).unwrap();
                    sounds.push((config.sample_rate, config.channels));
                }
            }
            TagKind::Script => {}
        }
    }
    assert!(sizes.iter().all(|s| *s == (Some(1280), Some(720))), "{sizes:?}");
    assert!(sounds.iter().all(|s| *s == (48000, Some(2))), "{sounds:?}");
    let at_30fps = intervals.iter().filter(|i| (32..=35).contains(*i)).count();
    assert!(at_30fps * 100 >= intervals.len() * 95, "frame intervals: {intervals:?}");
}
