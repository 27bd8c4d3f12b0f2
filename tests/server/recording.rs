//! Set recordings over real RTMP: one file per set, also when the DJ's connection drops
//! and the set resumes within the grace period (SPEC section 3, rule 4).

use std::time::Duration;

use motherstream::media::codec::VideoTagInfo;
use motherstream::media::flv::TagKind;
use serde_json::json;

use crate::harness::{Options, Server, require_tool};
use crate::interop::ffmpeg_decode_errors;
use crate::program::read_flv;
use crate::publisher::Dj;
use crate::web::Browser;

#[tokio::test]
async fn a_set_resumed_after_a_dropped_connection_is_one_recording() {
    let server =
        Server::start(Options { grace_period: 15, config: Some("record_sets = true\n".into()), ..Options::default() });
    let browser = Browser::new(&server);
    browser.sign_up("Ada").await;
    let key = browser.stream_key().await;
    let token = server.token("ada").await;
    let announce = |artist: &'static str| {
        let token = token.clone();
        let server = &server;
        async move {
            let body = json!({ "artist": artist, "title": "Loops" });
            let (status, body) = server.post("/api/v1/users/me/track", Some(&token), Some(body)).await;
            assert_eq!(status, 200, "{body}");
        }
    };

    let dj = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Ada"]).await;
    announce("Before").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    dj.drop_connection().await;
    server.wait_for_log("holding the slot for Ada").await;
    let dj = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_log("Ada is back on air").await;
    announce("After").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    dj.stop().await;
    server.wait_for_log("Ada's set ended").await;
    server.wait_for_log("finished (").await;

    let dir = server.data_dir.join("recordings").join("Ada");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let recordings: Vec<_> = files.iter().filter(|p| p.extension().is_some_and(|e| e == "flv")).collect();
    assert_eq!(recordings.len(), 1, "one set, one recording: {files:?}");
    let recording = recordings[0];

    // Both parts are in it, on one timeline: per track, timestamps never go back, and the
    // resumed part follows the first without a gap, starting again with its headers.
    let tags = read_flv(recording);
    for kind in [TagKind::Video, TagKind::Audio] {
        let ts: Vec<u32> = tags.iter().filter(|t| t.kind == kind).map(|t| t.timestamp).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{kind:?} timestamps go back: {ts:?}");
    }
    let video: Vec<_> = tags.iter().filter(|t| t.kind == TagKind::Video).collect();
    let headers = video.iter().filter(|t| VideoTagInfo::parse(&t.payload).unwrap().is_sequence_header()).count();
    assert!(headers >= 2, "the resumed part starts with its sequence header ({headers} found)");
    let frames: Vec<u32> = video.iter().map(|t| t.timestamp).collect();
    let gap = frames.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(gap <= 100, "a {gap} ms hole in the video timeline");
    let duration = frames.last().unwrap() - frames[0];
    assert!(duration >= 4_000, "both parts recorded: only {duration} ms of video");
    if require_tool("ffmpeg") {
        let errors = ffmpeg_decode_errors(recording, Some("resumed-set.flv"));
        assert!(errors.trim().is_empty(), "ffmpeg reported decoding errors:\n{errors}");
    }

    // The history shows one set, linked to that file, with both tracks beside it.
    let name = recording.file_name().unwrap().to_string_lossy().into_owned();
    let (_, sets) = browser.get("/sets").await;
    assert_eq!(sets.matches(r#"<article class="set card">"#).count(), 1, "{sets}");
    assert!(sets.contains(&name) && sets.contains("Ended:"), "{sets}");
    let tracklist = std::fs::read_to_string(recording.with_extension("tracklist.txt")).unwrap();
    assert!(tracklist.contains("Before") && tracklist.contains("After"), "{tracklist}");
}

/// A recording that cannot be written (here: its directory cannot be created) is reported in
/// the status and the log; the DJ stays on air, also across a resumed set.
#[tokio::test]
async fn an_unwritable_recording_dir_never_stops_the_stream() {
    let server = Server::start(Options {
        grace_period: 15,
        config: Some("record_sets = true\nrecord_dir = \"/dev/null/recordings\"\n".into()),
        ..Options::default()
    });
    let key = server.add_user("Ada", false);
    // Recording errors name paths: the status shows them to admins only.
    server.add_user("Organiser", true);
    let admin = server.token("organiser").await;
    let dj = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Ada"]).await;
    server.wait_for_log("streaming continues").await;
    dj.drop_connection().await;
    server.wait_for_log("holding the slot for Ada").await;
    let dj = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_log("Ada is back on air").await;

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.get_json_as("/api/v1/status", &admin).await;
        let error = status["recording"]["last_error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains("/dev/null/recordings/Ada"), "{status}");
        if status["on_air"]["stats"]["video_frames"].as_u64().unwrap_or(0) > 30 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the resumed set does not stream: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    dj.stop().await;
    server.wait_for_queue(&[]).await;
}
