//! Real third-party peers: ffmpeg publishing to the server.

use std::process::{Command, Stdio};

use crate::harness::{Options, Server, require_tool};
use crate::publisher::FIXTURE;

/// Starts `ffmpeg -re -stream_loop -1 -i fixture -c copy -f flv URL` (what a DJ would run).
pub fn ffmpeg_publish(url: &str) -> std::process::Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", FIXTURE])
        .args(["-c", "copy", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg")
}

#[tokio::test]
async fn ffmpeg_publishers_go_on_air_and_queue() {
    if !require_tool("ffmpeg") {
        return;
    }
    let server = Server::start(Options::default());
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let mut alice = ffmpeg_publish(&server.rtmp_url(&a));
    server.wait_for_queue(&["Alice"]).await;
    let mut bob = ffmpeg_publish(&server.rtmp_url(&b));
    server.wait_for_queue(&["Alice", "Bob"]).await;

    // The server sees real media from ffmpeg: codecs and frame counts in the status.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = server.get_json("/api/v1/status").await;
        let stats = &status["on_air"]["stats"];
        if stats["video_frames"].as_u64().unwrap_or(0) > 30 {
            assert_eq!(stats["video"]["codec"], "h264", "{stats}");
            assert_eq!(stats["video"]["width"], 320, "{stats}");
            assert_eq!(stats["audio"]["codec"], "aac", "{stats}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no media stats: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // ffmpeg killed (no clean stop): Bob takes over after the grace period.
    alice.kill().unwrap();
    alice.wait().unwrap();
    server.wait_for_queue(&["Bob"]).await;
    bob.kill().unwrap();
    bob.wait().unwrap();
}

#[tokio::test]
async fn ffmpeg_with_a_wrong_key_is_refused_at_once() {
    if !require_tool("ffmpeg") {
        return;
    }
    let server = Server::start(Options::default());
    let ffmpeg = ffmpeg_publish(&server.rtmp_url("wrongkey123"));
    let out = tokio::task::spawn_blocking(move || ffmpeg.wait_with_output()).await.unwrap().unwrap();
    assert!(!out.status.success(), "ffmpeg should fail to publish");
    server.wait_for_log("publish refused: unknown stream key").await;
    assert!(server.queue().await.is_empty());
}

/// Runs ffmpeg to decode a whole file; returns what it printed at `-v error`. With
/// `keep_as`, the file is also kept for review under `target/test-artifacts/`.
pub(crate) fn ffmpeg_decode_errors(path: &std::path::Path, keep_as: Option<&str>) -> String {
    if let Some(name) = keep_as {
        let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        let _ = std::fs::create_dir_all(&artifacts);
        let _ = std::fs::copy(path, artifacts.join(name));
    }
    crate::platforms::decode_errors(path)
}

/// The recorded program decodes with ffmpeg with no error, although it switches between
/// the slate (1280x720@30, 44.1 kHz) and two DJs with different pictures, frame rates and
/// sample rates (320x180@30/44.1 kHz, 640x360@25/48 kHz).
#[tokio::test]
async fn recorded_program_decodes_cleanly_across_differing_djs() {
    use crate::program::{DJ1, DJ2, SLATE, recording_server, rtmp_player};
    use crate::publisher::{Dj, FIXTURE2};
    if !require_tool("ffmpeg") {
        return;
    }
    let (mut server, record_dir) = recording_server();
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let player = rtmp_player(&server).await;
    player.wait_for_size(SLATE).await;
    for round in 0..2 {
        let alice = Dj::publish(server.rtmp, &a).await.unwrap();
        player.wait_for_size(DJ1).await;
        let bob = Dj::publish_file(server.rtmp, &b, FIXTURE2).await.unwrap();
        server.wait_for_queue(&["Alice", "Bob"]).await;
        alice.stop().await;
        player.wait_for_size(DJ2).await;
        if round == 0 {
            bob.stop().await;
        } else {
            bob.drop_connection().await;
        }
        player.wait_for_size(SLATE).await;
    }
    server.terminate();

    let program: Vec<_> = std::fs::read_dir(record_dir.join("program")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(program.len(), 1, "{program:?}");
    let errors = ffmpeg_decode_errors(&program[0], Some("recorded-program.flv"));
    assert!(errors.trim().is_empty(), "ffmpeg reported decoding errors:\n{errors}");
    for dj in ["Alice", "Bob"] {
        for file in std::fs::read_dir(record_dir.join(dj)).unwrap() {
            let errors = ffmpeg_decode_errors(&file.unwrap().path(), None);
            assert!(errors.trim().is_empty(), "{dj}'s set: {errors}");
        }
    }
}

/// Acceptance: with a real RTMP server as the platform (ffmpeg listening, which accepts ONE
/// connection), several switches in a row reach it over one continuous connection, and
/// what it recorded decodes with no error. Meanwhile ffmpeg also plays the program.
#[tokio::test]
async fn platform_sees_one_continuous_decodable_stream_across_switches() {
    use crate::program::{DJ1, DJ2, SLATE, rtmp_player};
    use crate::publisher::{Dj, FIXTURE2};
    if !require_tool("ffmpeg") {
        return;
    }
    let platform = crate::platforms::FfmpegListener::start().await;
    let mut server = Server::start(Options {
        grace_period: 1,
        extra_args: vec!["--destination".into(), format!("youtube={}", platform.url())],
        ..Options::default()
    });
    let a = server.add_user("Alice", false);
    let b = server.add_user("Bob", false);
    let player = rtmp_player(&server).await;
    let mut viewer = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(format!("rtmp://{}/program/live", server.rtmp))
        .args(["-c", "copy", "-f", "null", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg player");
    player.wait_for_size(SLATE).await;
    let status = server.get_json("/api/v1/status").await;
    assert_eq!(status["destinations"][0]["name"], "youtube");
    assert!(!status.to_string().contains("secret-key"), "stream keys of platforms stay hidden: {status}");

    // Five switches: slate → Alice → Bob → Alice → Bob → slate.
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    player.wait_for_size(DJ1).await;
    let bob = Dj::publish_file(server.rtmp, &b, FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    alice.stop().await;
    player.wait_for_size(DJ2).await;
    let alice = Dj::publish(server.rtmp, &a).await.unwrap();
    server.wait_for_queue(&["Bob", "Alice"]).await;
    bob.stop().await;
    player.wait_for_size(DJ1).await;
    let bob = Dj::publish_file(server.rtmp, &b, FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    alice.drop_connection().await;
    player.wait_for_size(DJ2).await;
    bob.stop().await;
    player.wait_for_size(SLATE).await;

    let status = server.get_json("/api/v1/status").await;
    let destination = &status["destinations"][0];
    assert_eq!(destination["state"], "live", "{destination}");
    assert_eq!(destination["reconnects"], 0, "one connection for the whole session: {destination}");
    assert!(destination["bytes_sent"].as_u64().unwrap() > 100_000, "{destination}");

    // The ffmpeg player never lost the program either.
    assert!(viewer.try_wait().unwrap().is_none(), "ffmpeg player exited");
    let _ = viewer.kill();

    // A clean end of stream reaches the platform at shutdown, and it finishes its file.
    server.terminate();
    let (ended_cleanly, stderr, received, _dir) = platform.finish().await;
    assert!(ended_cleanly, "the platform never saw the stream end cleanly: {stderr}");
    let errors = ffmpeg_decode_errors(&received, Some("platform.flv"));
    assert!(errors.trim().is_empty(), "the platform's recording has decoding errors:\n{errors}");
    let tags = {
        let data = bytes::Bytes::from(std::fs::read(&received).unwrap());
        motherstream::media::flv::FlvReader::new(data).unwrap().map(|t| t.unwrap()).collect::<Vec<_>>()
    };
    let segments = crate::program::assert_seamless(&tags);
    assert_eq!(segments.first(), Some(&SLATE), "{segments:?}");
    assert!(tags.len() > 300, "only {} tags reached the platform", tags.len());
}

/// The slate generated in-process for a channel profile decodes in ffmpeg without a single
/// error, and ffprobe reads the profile's size, frame rate, sample rate and channels.
#[test]
fn generated_slates_decode_in_ffmpeg_in_their_profile() {
    if !require_tool("ffmpeg") || !require_tool("ffprobe") {
        return;
    }
    use motherstream::channel::ChannelProfile;
    let dir = tempfile::tempdir().unwrap();
    let profiles = [
        ChannelProfile::default(),
        ChannelProfile { width: 1920, height: 1080, fps: 60.0, sample_rate: 44100, channels: 2 },
        ChannelProfile { width: 640, height: 360, fps: 25.0, sample_rate: 48000, channels: 1 },
    ];
    for profile in profiles {
        let path = dir.path().join(format!("slate-{}x{}.flv", profile.width, profile.height));
        std::fs::write(&path, motherstream::channel::slate::generate(&profile).unwrap()).unwrap();
        let decode = Command::new("ffmpeg")
            .args(["-v", "error", "-xerror", "-i"])
            .arg(&path)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        let errors = String::from_utf8_lossy(&decode.stderr);
        assert!(decode.status.success() && errors.trim().is_empty(), "{profile:?}: {errors}");

        let probe = |stream: &str, entries: &str| {
            let out = Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", stream, "-show_entries", entries, "-of", "csv=p=0"])
                .arg(&path)
                .stderr(Stdio::inherit())
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        let video = probe("v:0", "stream=codec_name,width,height,avg_frame_rate");
        let fps = format!("{}/1", profile.fps);
        assert_eq!(video, format!("h264,{},{},{fps}", profile.width, profile.height), "{profile:?}");
        let audio = probe("a:0", "stream=codec_name,sample_rate,channels");
        assert_eq!(audio, format!("aac,{},{}", profile.sample_rate, profile.channels), "{profile:?}");
    }
}
