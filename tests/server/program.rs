//! The program output across switches, as seen by real consumers: an RTMP player on
//! `rtmp://HOST/program/live` and an HTTP-FLV viewer on `/program.flv`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use motherstream::media::codec::{AudioTagInfo, VideoPacket, VideoTagInfo};
use motherstream::media::flv::{FlvStreamReader, FlvTag, TagKind};
use motherstream::rtmp::ClientEvent;
use motherstream::rtmp::client_io::RtmpClient;

use crate::analysis::video_size;
use crate::harness::{Options, PATIENCE, Server};
use crate::publisher::{Dj, FIXTURE2};

/// Picture sizes of the three sources the tests use.
pub const SLATE: (u32, u32) = (1280, 720);
pub const DJ1: (u32, u32) = (320, 180);
pub const DJ2: (u32, u32) = (640, 360);

/// A consumer collecting every program tag it receives.
#[derive(Clone, Default)]
pub struct Collected {
    tags: Arc<Mutex<Vec<FlvTag>>>,
    ended: Arc<Mutex<Option<String>>>,
    /// The task receiving the stream; aborting it closes the connection.
    task: Arc<Mutex<Option<tokio::task::AbortHandle>>>,
}

impl Collected {
    pub fn tags(&self) -> Vec<FlvTag> {
        self.tags.lock().unwrap().clone()
    }

    pub fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap().clone()
    }

    /// Closes the connection, keeping what was received (a viewer leaving).
    pub fn leave(&self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
        self.ended.lock().unwrap().get_or_insert_with(|| "left".into());
    }

    /// The picture size of the most recent video sequence header.
    pub fn current_size(&self) -> Option<(u32, u32)> {
        self.tags.lock().unwrap().iter().rev().find_map(video_size)
    }

    /// Waits until the program shows a source of the given picture size.
    pub async fn wait_for_size(&self, size: (u32, u32)) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while self.current_size() != Some(size) {
            assert!(
                std::time::Instant::now() < deadline,
                "program never showed {size:?} (now {:?})",
                self.current_size()
            );
            assert!(self.ended().is_none(), "consumer ended: {:?}", self.ended());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let a little of it play.
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
}

/// Plays `rtmp://HOST/program/live` in the background.
pub async fn rtmp_player(server: &Server) -> Collected {
    let mut client = RtmpClient::play(server.rtmp, "program", "live").await.expect("play the program");
    let collected = Collected::default();
    let c = collected.clone();
    let task = tokio::spawn(async move {
        loop {
            match client.next_event().await {
                Ok(ClientEvent::Media { kind, timestamp, payload }) => {
                    let kind =
                        if kind == motherstream::rtmp::MediaKind::Audio { TagKind::Audio } else { TagKind::Video };
                    c.tags.lock().unwrap().push(FlvTag { kind, timestamp, payload });
                }
                Ok(ClientEvent::Metadata { timestamp, payload }) => {
                    c.tags.lock().unwrap().push(FlvTag { kind: TagKind::Script, timestamp, payload });
                }
                Ok(_) => {}
                Err(e) => {
                    *c.ended.lock().unwrap() = Some(e.to_string());
                    return;
                }
            }
        }
    });
    *collected.task.lock().unwrap() = Some(task.abort_handle());
    collected
}

/// Reads `http://HOST/program.flv` in the background.
pub async fn http_viewer(server: &Server) -> Collected {
    let resp = reqwest::get(server.url("/program.flv")).await.expect("GET /program.flv");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "video/x-flv");
    let collected = Collected::default();
    let c = collected.clone();
    tokio::spawn(async move {
        let mut reader = FlvStreamReader::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk: Bytes = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    *c.ended.lock().unwrap() = Some(e.to_string());
                    return;
                }
            };
            reader.feed(&chunk).expect("valid FLV");
            while let Some(tag) = reader.next_tag().expect("valid FLV tag") {
                c.tags.lock().unwrap().push(tag);
            }
        }
        *c.ended.lock().unwrap() = Some("body ended".into());
    });
    collected
}

/// Checks the SPEC's switching bars over everything a consumer received and returns the
/// sequence of sources (by picture size) it saw:
/// - decoding timestamps of video rise strictly; within a source no gap exceeds two frames;
/// - at every splice the new source starts with its sequence header and a keyframe, and its
///   first picture is *presented* one to two frames after the old source's last picture (with
///   B-frames the decoding timestamps may then step by the old source's reordering depth, so
///   that no picture is shown out of order);
/// - audio never goes back and never pauses for more than 150 ms, even at a splice;
/// - within each source, audio and video stay within 100 ms of each other.
pub fn assert_seamless(tags: &[FlvTag]) -> Vec<(u32, u32)> {
    let mut segments: Vec<(u32, u32)> = Vec::new();
    let mut last_video: Option<u32> = None;
    let mut last_audio: Option<u32> = None;
    let mut shown: Option<i64> = None; // latest presentation time of any video frame
    let mut frame_ms = 40u32;
    let mut at_splice = false;
    // Per source: whether its own audio and video have both started.
    let (mut segment_video, mut segment_audio) = (false, false);
    for (i, tag) in tags.iter().enumerate() {
        match tag.kind {
            TagKind::Video => {
                let info = VideoTagInfo::parse(&tag.payload).expect("parsable video tag");
                if info.is_sequence_header() {
                    if let Some(size) = video_size(tag)
                        && segments.last() != Some(&size)
                    {
                        segments.push(size);
                        at_splice = true;
                        (segment_video, segment_audio) = (false, false);
                    }
                    continue;
                }
                if info.packet == VideoPacket::EndOfSequence {
                    continue; // a recorder's end-of-file marker, not a frame
                }
                let presented = i64::from(tag.timestamp) + i64::from(info.composition_time);
                if let Some(prev) = last_video {
                    assert!(tag.timestamp > prev, "tag {i}: video went from {prev} to {} ms", tag.timestamp);
                    let gap = tag.timestamp - prev;
                    if at_splice {
                        let after = presented - shown.unwrap_or(presented - 1);
                        assert!(
                            after > 0 && after <= 2 * i64::from(frame_ms),
                            "tag {i}: first picture of the new source shown {after} ms after the last one"
                        );
                        assert!(gap <= 6 * frame_ms, "tag {i}: decoding gap of {gap} ms at a splice");
                    } else {
                        assert!(gap <= 2 * frame_ms, "tag {i}: video gap of {gap} ms (frame {frame_ms} ms)");
                        frame_ms = frame_ms.max(gap.min(40));
                    }
                }
                if at_splice {
                    assert!(info.is_keyframe(), "tag {i}: a new source must start with a keyframe");
                    at_splice = false;
                }
                last_video = Some(tag.timestamp);
                shown = shown.max(Some(presented));
                segment_video = true;
                if let (Some(audio), true) = (last_audio, segment_audio) {
                    let drift = tag.timestamp.abs_diff(audio);
                    assert!(drift < 100, "tag {i}: audio/video drift of {drift} ms");
                }
            }
            TagKind::Audio => {
                if AudioTagInfo::parse(&tag.payload).is_ok_and(|a| a.is_sequence_header()) {
                    continue;
                }
                if let Some(prev) = last_audio {
                    assert!(tag.timestamp >= prev, "tag {i}: audio went from {prev} to {} ms", tag.timestamp);
                    let gap = tag.timestamp - prev;
                    assert!(gap <= 150, "tag {i}: audio gap of {gap} ms");
                }
                last_audio = Some(tag.timestamp);
                segment_audio = segment_video;
            }
            TagKind::Script => {}
        }
    }
    assert!(last_video.is_some(), "no video at all");
    segments
}

#[tokio::test]
async fn program_switches_seamlessly_for_players_and_viewers() {
    let server = Server::start(Options { grace_period: 1, ..Options::default() });
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);

    let player = rtmp_player(&server).await;
    let viewer = http_viewer(&server).await;
    player.wait_for_size(SLATE).await;

    let alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    player.wait_for_size(DJ1).await;
    let bob = Dj::publish_file(server.rtmp, &bob_key, FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    // Until Bob's first keyframe there is nothing of his to splice to (the slate would
    // rightly fill in), so the clean hand-over this test checks waits for it.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.get_json("/api/v1/status").await["queue"][0]["stats"]["keyframes"].as_u64().unwrap_or(0) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "Bob sent no keyframe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    alice.stop().await; // clean stop: Bob goes on air at his next keyframe
    player.wait_for_size(DJ2).await;
    bob.drop_connection().await; // dropped: slate during the grace period, then nobody
    player.wait_for_size(SLATE).await;
    let alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    player.wait_for_size(DJ1).await;

    let status = server.get_json("/api/v1/status").await;
    assert_eq!(status["program"]["source"], "dj");
    assert!(status["program"]["switches"].as_u64().unwrap() >= 4, "{status}");

    for (name, consumer) in [("rtmp player", &player), ("http viewer", &viewer)] {
        assert_eq!(consumer.ended(), None, "{name} saw the program end");
        let segments = assert_seamless(&consumer.tags());
        assert_eq!(segments, [SLATE, DJ1, DJ2, SLATE, DJ1], "{name}: sources in order");
    }
    alice.stop().await;
}

#[tokio::test]
async fn sets_and_the_program_are_recorded_as_valid_flv() {
    let (server, record_dir) = recording_server();
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    server.add_user("Organiser", true);
    let player = rtmp_player(&server).await;
    let alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    player.wait_for_size(DJ1).await;
    let bob = Dj::publish_file(server.rtmp, &bob_key, FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    alice.stop().await;
    player.wait_for_size(DJ2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    bob.stop().await;
    player.wait_for_size(SLATE).await;
    server.wait_for_log("recording").await;

    // One file per set, named by DJ, starting at 0 with headers and a keyframe.
    for (dj, size) in [("Alice", DJ1), ("Bob", DJ2)] {
        let files: Vec<_> = std::fs::read_dir(record_dir.join(dj)).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(files.len(), 1, "{dj}: {files:?}");
        let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with("Z.flv") && name.starts_with("20"), "{name}");
        let tags = read_flv(&files[0]);
        eprintln!("checking {}", files[0].display());
        let segments = assert_seamless(&tags);
        assert_eq!(segments, [size], "{dj}'s recording holds only their set");
        let first_media = tags.iter().find(|t| t.kind != TagKind::Script).unwrap();
        assert!(first_media.timestamp < 100, "starts near 0: {}", first_media.timestamp);
        let video_frames = tags.iter().filter(|t| t.kind == TagKind::Video).count();
        assert!(video_frames > 25, "{dj}: only {video_frames} video tags recorded");
    }
    // The program recording is one continuous file across the switches.
    let program: Vec<_> = std::fs::read_dir(record_dir.join("program")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(program.len(), 1);
    let segments = assert_seamless(&read_flv(&program[0]));
    assert_eq!(segments, [SLATE, DJ1, DJ2, SLATE]);
    // Recording errors are for admins' eyes (they name paths).
    let status = server.get_json_as("/api/v1/status", &server.token("organiser").await).await;
    assert!(status["recording"]["last_error"].is_null(), "{status}");
}

/// A server recording sets and the program into its data dir's `recordings/`.
pub fn recording_server() -> (Server, std::path::PathBuf) {
    let server = Server::start(Options {
        grace_period: 1,
        config: Some("record_sets = true\nrecord_program = true\n".into()),
        ..Options::default()
    });
    let record_dir = server.data_dir.join("recordings");
    (server, record_dir)
}

pub fn read_flv(path: &std::path::Path) -> Vec<FlvTag> {
    let data = Bytes::from(std::fs::read(path).unwrap());
    motherstream::media::flv::FlvReader::new(data).unwrap().map(|t| t.expect("valid FLV tag")).collect()
}
