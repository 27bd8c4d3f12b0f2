//! Song recognition against a fake AudD on 127.0.0.1: the clips it receives are real AAC
//! that ffprobe decodes, its answer becomes now playing marked "recognised", and a track
//! the DJ named stays.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Multipart, State};
use axum::routing::post;
use serde_json::{Value, json};

use crate::harness::{Options, Server, require_tool};
use crate::publisher::Dj;

/// One request as the fake received it.
#[derive(Clone, Debug, Default)]
struct Request {
    api_token: Option<String>,
    file_name: Option<String>,
    file: Vec<u8>,
}

type Received = Arc<Mutex<Vec<Request>>>;

async fn fake_audd() -> (std::net::SocketAddr, Received) {
    let received = Received::default();
    let app = Router::new()
        .route(
            "/",
            post(|State(received): State<Received>, mut form: Multipart| async move {
                let mut request = Request::default();
                while let Some(field) = form.next_field().await.unwrap() {
                    match field.name() {
                        Some("api_token") => request.api_token = Some(field.text().await.unwrap()),
                        Some("file") => {
                            request.file_name = field.file_name().map(str::to_owned);
                            request.file = field.bytes().await.unwrap().to_vec();
                        }
                        _ => {}
                    }
                }
                received.lock().unwrap().push(request);
                axum::Json(json!({ "status": "success", "result": {
                    "artist": "Moodymann", "title": "Shades of Jae", "album": "Silentintroduction",
                    "label": "Planet E", "timecode": "00:42", "song_link": "https://lis.tn/ShadesOfJae"
                } }))
            }),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, received)
}

/// ffprobe's view of a clip, decoding every frame: codec, sample rate and frames decoded.
fn probe(clip: &[u8]) -> (String, u32, u32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.aac");
    std::fs::write(&path, clip).unwrap();
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries", "stream=codec_name,sample_rate,nb_read_frames"])
        .args(["-of", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "decoding errors: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &v["streams"][0];
    let number = |key: &str| stream[key].as_str().unwrap().parse::<u32>().unwrap();
    (stream["codec_name"].as_str().unwrap().to_owned(), number("sample_rate"), number("nb_read_frames"))
}

async fn metric(server: &Server, line: &str) -> f64 {
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no metric {line} in\n{text}"))
}

async fn wait_for_metric(server: &Server, line: &str, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while metric(server, line).await < at_least {
        assert!(Instant::now() < deadline, "{line} stayed below {at_least}; logs:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn recognised_tracks_become_now_playing_but_never_over_the_djs_own() {
    if !require_tool("ffprobe") {
        return;
    }
    let (audd, received) = fake_audd().await;
    let config = format!(
        "[recognition]\napi_token = \"test-token\"\nendpoint = \"http://{audd}/\"\ninterval = \"2s\"\nclip = \"3s\"\n"
    );
    let server = Server::start(Options { config: Some(config), ..Options::default() });
    let ada_key = server.add_user("Ada", false);
    let bea_key = server.add_user("Bea", false);

    // Ada names her track as she goes on air: recognition must leave it for 5 minutes.
    let ada_token = server.token("Ada").await;
    let (status, body) = server
        .post("/api/v1/users/me/track", Some(&ada_token), Some(json!({ "artist": "Ada", "title": "Own Edit" })))
        .await;
    assert_eq!(status, 200, "{body}");
    let ada = Dj::publish(server.rtmp, &ada_key).await.unwrap();
    server.wait_for_queue(&["Ada"]).await;
    wait_for_metric(&server, "motherstream_recognition_results_total{outcome=\"kept_dj_track\"}", 1.0).await;
    let song = server.get_json("/song-json").await;
    assert_eq!((&song["title"], &song["source"]), (&json!("Own Edit"), &json!("dj")), "{song}");

    // Bea named nothing: what the service hears becomes her now playing.
    let bea = Dj::publish(server.rtmp, &bea_key).await.unwrap();
    server.wait_for_queue(&["Ada", "Bea"]).await;
    ada.stop().await;
    server.wait_for_queue(&["Bea"]).await;
    let deadline = Instant::now() + Duration::from_secs(40);
    let song = loop {
        let song = server.get_json("/song-json").await;
        if song["source"] == "recognised" {
            break song;
        }
        assert!(Instant::now() < deadline, "never recognised: {song}; logs:\n{}", server.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        song,
        json!({ "dj_name": "Bea", "set_name": "Bea", "artist": "Moodymann", "title": "Shades of Jae",
                "song": "Moodymann – Shades of Jae", "source": "recognised" })
    );
    // Overlays follow (the live state was poked).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let overlay = reqwest::get(server.url("/overlay/now")).await.unwrap().text().await.unwrap();
        if overlay.contains("data-source=\"recognised\"") && overlay.contains("Moodymann – Shades of Jae") {
            break;
        }
        assert!(Instant::now() < deadline, "overlay never showed the recognised track:\n{overlay}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The next clip of the same song is no second tracklist entry.
    wait_for_metric(&server, "motherstream_recognition_results_total{outcome=\"unchanged\"}", 1.0).await;
    bea.stop().await;
    server.wait_for_queue(&[]).await;
    // Nobody on air starts no request; one already sent gets its answer.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let received = received.lock().unwrap().clone();
    assert!(received.len() >= 3, "{} requests", received.len());
    assert_eq!(metric(&server, "motherstream_recognition_requests_total").await, received.len() as f64);
    assert_eq!(metric(&server, "motherstream_recognition_results_total{outcome=\"failed\"}").await, 0.0);
    for request in &received {
        assert_eq!(request.api_token.as_deref(), Some("test-token"));
        assert_eq!(request.file_name.as_deref(), Some("clip.aac"));
        let (codec, rate, frames) = probe(&request.file);
        assert_eq!((codec.as_str(), rate), ("aac", 44100), "the fixture's AAC, as sent");
        let seconds = f64::from(frames) * 1024.0 / f64::from(rate);
        assert!((seconds - 3.0).abs() < 0.1, "{seconds} s of audio in a 3 s clip");
    }
    assert!(!server.logs().contains("test-token"), "the API token never reaches the log");
}

/// A service that never answers: every request times out, is counted and logged, the next
/// one waits for the previous one to be given up (never two in flight), and the DJ on air
/// is not disturbed.
#[tokio::test]
async fn a_silent_service_costs_a_timeout_per_clip_and_nothing_else() {
    let starts: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let app = Router::new()
        .route(
            "/",
            post(|State(starts): State<Arc<Mutex<Vec<Instant>>>>| async move {
                starts.lock().unwrap().push(Instant::now());
                tokio::time::sleep(Duration::from_secs(60)).await;
                "{}"
            }),
        )
        .with_state(starts.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let audd = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let config = format!(
        "[recognition]\napi_token = \"t\"\nendpoint = \"http://{audd}/\"\ninterval = \"1s\"\nclip = \"1s\"\ntimeout = \"2s\"\n"
    );
    let server = Server::start(Options { config: Some(config), ..Options::default() });
    let key = server.add_user("Ada", false);
    let ada = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Ada"]).await;
    wait_for_metric(&server, "motherstream_recognition_results_total{outcome=\"failed\"}", 3.0).await;
    server.wait_for_log("song recognition failed").await;

    let starts = starts.lock().unwrap().clone();
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        // Timeout (2 s), then the next tick and a 1 s clip: never overlapping.
        assert!(gap >= Duration::from_secs(2), "requests {gap:?} apart");
    }
    assert_eq!(server.queue().await, ["Ada"], "the DJ stays on air");
    let program = server.get_json("/api/v1/status").await;
    assert_eq!(program["program"]["source"], "dj", "{program}");
    ada.stop().await;
}
