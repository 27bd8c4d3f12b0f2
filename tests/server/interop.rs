//! Real third-party peers: ffmpeg publishing to the server.

use std::process::{Command, Stdio};

use crate::harness::{Options, Server, require_tool};
use crate::publisher::FIXTURE;

/// Starts `ffmpeg -re -stream_loop -1 -i fixture -c copy -f flv URL` (what a DJ would run).
fn ffmpeg_publish(url: &str) -> std::process::Child {
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
