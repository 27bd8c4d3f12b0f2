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
