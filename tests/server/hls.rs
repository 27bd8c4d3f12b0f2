//! The program as HLS (`/hls/program.m3u8`), read by ffmpeg/ffprobe across DJ switches and
//! the slate, and the HTTP behaviour a CDN and LL-HLS players rely on.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Options, PATIENCE, Server, require_tool};
use crate::program::{DJ1, DJ2, SLATE, rtmp_player};
use crate::publisher::{Dj, FIXTURE2};

async fn get(server: &Server, path: &str) -> reqwest::Response {
    reqwest::get(server.url(path)).await.expect("HTTP GET")
}

/// The playlist, once it lists at least `segments` segments.
async fn playlist_with(server: &Server, segments: usize) -> String {
    let deadline = Instant::now() + PATIENCE * 2;
    loop {
        let response = get(server, "/hls/program.m3u8").await;
        if response.status() == 200 {
            let text = response.text().await.unwrap();
            if uris(&text).len() >= segments {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "the playlist never listed {segments} segments");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Segment URIs of a playlist, in order.
pub(crate) fn uris(playlist: &str) -> Vec<String> {
    playlist.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
}

/// Waits until the playlist lists a segment that started after this call.
async fn next_segment(server: &Server) {
    let before = uris(&playlist_with(server, 1).await);
    let last = before.last().cloned();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = uris(&playlist_with(server, 1).await);
        // Two new ones: the first may have begun before the call.
        let newer = now.iter().skip_while(|u| Some(*u) != last.as_ref()).count();
        if newer >= 3 {
            return;
        }
        assert!(Instant::now() < deadline, "no new segment");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Copies the playlist and every file it names into `dir`, as a finished (VOD) playlist.
async fn download(server: &Server, dir: &Path) -> String {
    let playlist = playlist_with(server, 1).await;
    for line in playlist.lines() {
        let name = match line.strip_prefix("#EXT-X-MAP:URI=\"") {
            Some(rest) => rest.trim_end_matches('"'),
            None if !line.starts_with('#') && !line.is_empty() => line,
            None => continue,
        };
        let response = get(server, &format!("/hls/{name}")).await;
        assert_eq!(response.status(), 200, "{name}");
        std::fs::write(dir.join(name), response.bytes().await.unwrap()).unwrap();
    }
    std::fs::write(dir.join("local.m3u8"), format!("{playlist}#EXT-X-ENDLIST\n")).unwrap();
    playlist
}

/// `(stream, dts, width, height)` of every decoded frame, per ffprobe.
pub(crate) fn probe_frames(playlist: &Path) -> Vec<(String, f64, u32, u32)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "frame=media_type,pkt_dts_time,width,height", "-of", "csv=p=0"])
        .arg(playlist)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "ffprobe complained: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let dts = fields.get(1)?.parse().ok()?;
            let (width, height) = match fields[0] {
                "video" => (fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?),
                _ => (0, 0),
            };
            Some((fields[0].to_owned(), dts, width, height))
        })
        .collect()
}

/// Decodes everything with ffmpeg: no error may be reported. Frames keep the source's
/// millisecond time base: ffmpeg would otherwise re-time them at the first source's frame
/// rate and report two frames of a faster source in one tick as non-monotonic.
fn decodes_cleanly(playlist: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(playlist)
        .args(["-fps_mode", "passthrough", "-enc_time_base", "-1", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success() && out.stderr.is_empty(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
}

/// Checks timestamps never go back and returns the picture sizes in the order shown.
fn sizes_in_order(frames: &[(String, f64, u32, u32)]) -> Vec<(u32, u32)> {
    for kind in ["video", "audio"] {
        let dts: Vec<f64> = frames.iter().filter(|f| f.0 == kind).map(|f| f.1).collect();
        assert!(dts.len() > 50, "only {} {kind} frames", dts.len());
        for (i, pair) in dts.windows(2).enumerate() {
            // Two video frames never share a decoding time; audio frames may within a
            // millisecond (ffprobe prints the audio track's 14.112 MHz ticks rounded).
            let forward = if kind == "video" { pair[1] > pair[0] } else { pair[1] >= pair[0] };
            assert!(forward, "{kind} frame {i}: dts went from {} to {}", pair[0], pair[1]);
            assert!(pair[1] - pair[0] < 0.5, "{kind} frame {i}: {} s gap", pair[1] - pair[0]);
        }
    }
    let mut sizes = Vec::new();
    for frame in frames.iter().filter(|f| f.0 == "video") {
        if sizes.last() != Some(&(frame.2, frame.3)) {
            sizes.push((frame.2, frame.3));
        }
    }
    sizes
}

#[tokio::test]
async fn hls_plays_through_two_dj_switches_and_the_slate() {
    if !require_tool("ffprobe") || !require_tool("ffmpeg") {
        return;
    }
    // A window long enough to hold the whole story, muxed from the start (not only once
    // fetched), which is then read as one recording.
    let config = "[hls]\nwindow = 60\nalways_on = true\n";
    let server = Server::start(Options { grace_period: 1, config: Some(config.into()), ..Options::default() });
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    let player = rtmp_player(&server).await;
    player.wait_for_size(SLATE).await;
    next_segment(&server).await;

    let alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    player.wait_for_size(DJ1).await;
    let bob = Dj::publish_file(server.rtmp, &bob_key, FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    next_segment(&server).await;
    alice.stop().await;
    player.wait_for_size(DJ2).await;
    next_segment(&server).await;
    bob.drop_connection().await;
    player.wait_for_size(SLATE).await;
    next_segment(&server).await;
    let alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    player.wait_for_size(DJ1).await;
    next_segment(&server).await;

    let dir = tempfile::tempdir().unwrap();
    let playlist = download(&server, dir.path()).await;
    alice.stop().await;
    assert!(playlist.contains("#EXT-X-INDEPENDENT-SEGMENTS\n"), "{playlist}");
    assert!(playlist.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"), "{playlist}");
    // A discontinuity only where the init segment changes (the fixtures' audio rates differ
    // from the slate's), each with its new map right after it.
    let lines: Vec<&str> = playlist.lines().collect();
    let maps = lines.iter().filter(|l| l.starts_with("#EXT-X-MAP:")).count();
    let discontinuities: Vec<usize> =
        lines.iter().enumerate().filter(|(_, l)| **l == "#EXT-X-DISCONTINUITY").map(|(i, _)| i).collect();
    assert_eq!(maps, discontinuities.len() + 1, "{playlist}");
    for i in discontinuities {
        assert!(lines[i + 1].starts_with("#EXT-X-MAP:"), "{playlist}");
    }
    let local = dir.path().join("local.m3u8");
    decodes_cleanly(&local);
    let sizes = sizes_in_order(&probe_frames(&local));
    assert_eq!(sizes, [SLATE, DJ1, DJ2, SLATE, DJ1], "sources in order");
}

#[tokio::test]
async fn hls_under_the_profile_policy_has_one_resolution_and_no_discontinuity() {
    if !require_tool("ffprobe") || !require_tool("ffmpeg") {
        return;
    }
    let config = "[hls]\nwindow = 60\nalways_on = true\n[channel]\noff_profile = \"transcode\"\n";
    let server = Server::start(Options { grace_period: 1, config: Some(config.into()), ..Options::default() });
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    let status = |server: &Server| {
        let url = server.url("/api/v1/status");
        async move { reqwest::get(url).await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    next_segment(&server).await;
    let alice = Dj::publish(server.rtmp, &alice_key).await.unwrap();
    let bob = Dj::publish_file(server.rtmp, &bob_key, FIXTURE2).await.unwrap();
    server.wait_for_queue(&["Alice", "Bob"]).await;
    // On air once the transcode started (the slate covers until then).
    let deadline = Instant::now() + PATIENCE * 2;
    while status(&server).await["program"]["source"] != "dj" {
        assert!(Instant::now() < deadline, "Alice's transcode never aired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    next_segment(&server).await;
    alice.stop().await;
    server.wait_for_queue(&["Bob"]).await;
    next_segment(&server).await;
    next_segment(&server).await;
    bob.drop_connection().await;
    next_segment(&server).await;

    let dir = tempfile::tempdir().unwrap();
    let playlist = download(&server, dir.path()).await;
    assert!(!playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");
    assert_eq!(playlist.matches("#EXT-X-MAP:").count(), 1, "{playlist}");
    let local = dir.path().join("local.m3u8");
    decodes_cleanly(&local);
    let sizes = sizes_in_order(&probe_frames(&local));
    assert_eq!(sizes, [SLATE], "one resolution: the channel's");
}

#[tokio::test]
async fn hls_http_caching_ranges_expiry_and_blocking_reload() {
    let config = "[hls]\nwindow = 3\nlow_latency = true\n";
    let server = Server::start(Options { config: Some(config.into()), ..Options::default() });
    let playlist = playlist_with(&server, 1).await;
    assert!(playlist.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK="), "{playlist}");

    let response = get(&server, "/hls/program.m3u8").await;
    assert_eq!(response.headers()["content-type"], "application/vnd.apple.mpegurl");
    assert_eq!(response.headers()["cache-control"], "public, max-age=1");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    let first = uris(&playlist)[0].clone();
    let response = get(&server, &format!("/hls/{first}")).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(headers["access-control-allow-origin"], "*");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let whole = response.bytes().await.unwrap();
    assert!(whole.len() > 1000);
    let map = playlist.lines().find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\"")).unwrap().trim_end_matches('"');
    let init = get(&server, &format!("/hls/{map}")).await;
    assert_eq!(init.status(), 200);
    assert_eq!(init.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert_eq!(&init.bytes().await.unwrap()[4..8], b"ftyp");

    let client = reqwest::Client::new();
    let url = server.url(&format!("/hls/{first}"));
    let cached = client.get(&url).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(cached.status(), 304);
    let ranged = client.get(&url).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-range"], format!("bytes 100-199/{}", whole.len()));
    assert_eq!(ranged.bytes().await.unwrap(), whole.slice(100..200));
    let beyond = client.get(&url).header("range", format!("bytes={}-", whole.len())).send().await.unwrap();
    assert_eq!(beyond.status(), 416);

    // Blocking reload: ask for the part after the hinted one; the answer comes when it exists.
    let playlist = playlist_with(&server, 1).await;
    let hint = playlist.lines().find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"")).unwrap();
    let (msn, part) = hint.trim_end_matches(".m4s\"").split_once('-').unwrap().1.split_once('.').unwrap();
    let (msn, part): (u64, usize) = (msn.parse().unwrap(), part.parse().unwrap());
    let asked = Instant::now();
    let path = format!("/hls/program.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let blocked = get(&server, &path).await;
    let waited = asked.elapsed();
    assert_eq!(blocked.status(), 200);
    assert_eq!(blocked.headers()["cache-control"], "public, max-age=6");
    let text = blocked.text().await.unwrap();
    let wanted = format!("-{msn}.{}.m4s\"", part + 1);
    let next_segment_part = format!("-{}.0.m4s\"", msn + 1);
    assert!(text.contains(&wanted) || text.contains(&next_segment_part), "{wanted} not in\n{text}");
    assert!(waited > Duration::from_millis(100), "answered at once ({waited:?}): it did not wait for the part");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    // The preload-hinted part is served when it is ready, not refused.
    let playlist = playlist_with(&server, 1).await;
    let hint = playlist.lines().find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"")).unwrap();
    let hinted = get(&server, &format!("/hls/{}", hint.trim_end_matches('"'))).await;
    assert_eq!(hinted.status(), 200);
    assert_eq!(hinted.headers()["cache-control"], "public, max-age=31536000, immutable");
    // Far ahead is a client error, not a wait.
    let far = get(&server, &format!("/hls/program.m3u8?_HLS_msn={}", msn + 10)).await;
    assert_eq!(far.status(), 400);

    // The first segment leaves the window (3 listed, 2 more kept), then 404s.
    let deadline = Instant::now() + PATIENCE * 3;
    loop {
        let response = get(&server, &format!("/hls/{first}")).await;
        if response.status() == 404 {
            assert_eq!(response.headers()["access-control-allow-origin"], "*");
            break;
        }
        assert_eq!(response.status(), 200);
        assert!(Instant::now() < deadline, "{first} never expired");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(get(&server, "/hls/0-0.m4s").await.status(), 404, "another run's names are unknown");
    let metrics = get(&server, "/metrics").await.text().await.unwrap();
    let value = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("motherstream_hls_segments_total ") >= 6.0);
    assert!(value("motherstream_hls_sent_bytes_total ") >= whole.len() as f64);
}

/// Nobody fetches the HLS output: it is not muxed. The first request starts it and waits for
/// the first segment, so even that request gets a playlist a player can start with.
#[tokio::test]
async fn hls_is_muxed_once_fetched_and_the_first_request_gets_a_segment() {
    let server = Server::start(Options::default());
    let segments_made = |server: &Server| {
        let url = server.url("/metrics");
        async move {
            let metrics = reqwest::get(url).await.unwrap().text().await.unwrap();
            let line = metrics.lines().find(|l| l.starts_with("motherstream_hls_segments_total ")).unwrap().to_owned();
            line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
        }
    };
    // The slate is on air: two segments' worth of program, which nobody asked for as HLS.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(segments_made(&server).await, 0.0, "muxed without a viewer");

    let response = get(&server, "/hls/program.m3u8").await;
    assert_eq!(response.status(), 200);
    let playlist = response.text().await.unwrap();
    assert!(!uris(&playlist).is_empty(), "the first request waits for a segment: {playlist}");
    assert!(segments_made(&server).await >= 1.0);
}

/// A page fed by the test: it appends the playlist's init and segments to one Media Source
/// `SourceBuffer` and reports back what Chromium made of them.
const MSE_PAGE: &str = r#"<!doctype html><video id=v muted playsinline></video><script>
// One report at a time: concurrent fetches may arrive out of order, 'DONE' before the rest.
let reported = Promise.resolve();
const log = (m) => { reported = reported.then(() => fetch('/result?' + encodeURIComponent(m))); };
const hls = new URLSearchParams(location.search).get('hls');
const v = document.getElementById('v');
v.addEventListener('error', () => log('ERROR video ' + (v.error && v.error.message)));
const seeked = () => new Promise((ok) => v.addEventListener('seeked', ok, {once: true}));
const frame = () => new Promise((ok) => v.requestVideoFrameCallback((now, m) => ok(m.width + 'x' + m.height)));
const ms = new MediaSource();
v.src = URL.createObjectURL(ms);
ms.addEventListener('sourceopen', async () => {
  try {
    const playlist = await (await fetch(hls + 'program.m3u8')).text();
    const lines = playlist.split('\n');
    const init = lines.find((l) => l.startsWith('#EXT-X-MAP:')).split('"')[1];
    const segments = lines.filter((l) => l && !l.startsWith('#'));
    const durations = lines.filter((l) => l.startsWith('#EXTINF:')).map((l) => parseFloat(l.slice(8)));
    const mime = 'video/mp4; codecs="avc3.42c01f, mp4a.40.2"';
    const sb = ms.addSourceBuffer(mime);
    sb.addEventListener('error', () => log('ERROR source buffer'));
    for (const name of [init, ...segments]) {
      const data = await (await fetch(hls + name)).arrayBuffer();
      await new Promise((ok) => { sb.addEventListener('updateend', ok, {once: true}); sb.appendBuffer(data); });
    }
    log('ranges ' + sb.buffered.length);
    let start = sb.buffered.start(0), switchAt = null, previous = null;
    for (const duration of durations) {
      v.currentTime = start + 0.5; await seeked();
      const shown = frame(); await v.play(); const size = await shown; v.pause();
      log('size ' + size);
      if (previous && size !== previous && switchAt === null) switchAt = start;
      previous = size; start += duration;
    }
    v.currentTime = switchAt - 1; await seeked(); await v.play();
    await new Promise((ok) => setTimeout(ok, 3000));
    log('played ' + (v.currentTime - (switchAt - 1)).toFixed(2));
  } catch (e) { log('ERROR ' + e); }
  log('DONE');
});
</script>"#;

/// Headless Chromium in a process group of its own, killed with it when dropped (before
/// its profile directory is removed).
struct Chromium {
    child: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.child.id())]).status();
        let _ = self.child.wait();
    }
}

fn chromium() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome-stable"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Serves `MSE_PAGE` at `/` and passes what the page reports to `/result?…` on.
async fn page_server() -> (String, tokio::sync::mpsc::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let body = if let Some(message) = path.strip_prefix("/result?") {
                    let message = percent_decode(message);
                    let _ = tx.send(message).await;
                    String::new()
                } else {
                    MSE_PAGE.to_owned()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (base, rx)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()),
        ) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The design bet of the HLS output: a DJ with other parameter sets and another picture size
/// (here the slate's 1280x720 Baseline to DJ2's 640x360 Main and back) plays on in the same
/// init segment, because the parameter sets travel in-band. Chromium's Media Source takes
/// all of it into one buffer and plays across the switch.
#[tokio::test]
async fn chromium_media_source_plays_across_a_switch_in_one_init() {
    let Some(chromium) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
            panic!("chromium is required under CI");
        }
        eprintln!("skipping: chromium not installed");
        return;
    };
    let config = "[hls]\nwindow = 60\nalways_on = true\n";
    let server = Server::start(Options { grace_period: 1, config: Some(config.into()), ..Options::default() });
    let key = server.add_user("Bob", false);
    let player = rtmp_player(&server).await;
    player.wait_for_size(SLATE).await;
    next_segment(&server).await;
    let bob = Dj::publish_file(server.rtmp, &key, FIXTURE2).await.unwrap();
    player.wait_for_size(DJ2).await;
    next_segment(&server).await;
    bob.stop().await;
    player.wait_for_size(SLATE).await;
    next_segment(&server).await;
    let playlist = playlist_with(&server, 1).await;
    assert_eq!(playlist.matches("#EXT-X-MAP:").count(), 1, "{playlist}");
    assert!(!playlist.contains("#EXT-X-DISCONTINUITY\n"), "{playlist}");

    let (base, mut reports) = page_server().await;
    let profile = tempfile::tempdir().unwrap();
    let mut command = Command::new(chromium);
    command
        .args(["--headless=new", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required"])
        .args(["--no-first-run", "--no-default-browser-check", "--no-sandbox"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{base}/?hls={}", server.url("/hls/")))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let _browser = Chromium { child: command.spawn().expect("start chromium"), _profile: profile };
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE * 3;
    // A decode error stops the page where it was: no use waiting for the rest.
    while !seen.last().is_some_and(|r: &String| r == "DONE" || r.starts_with("ERROR")) {
        match tokio::time::timeout_at(deadline, reports.recv()).await {
            Ok(Some(report)) => seen.push(report),
            _ => panic!("the page did not finish: {seen:?}"),
        }
    }
    assert!(!seen.iter().any(|r| r.starts_with("ERROR")), "{seen:?}");
    assert!(seen.contains(&"ranges 1".to_owned()), "one continuous buffered range: {seen:?}");
    let sizes: Vec<&str> = seen.iter().filter_map(|r| r.strip_prefix("size ")).collect();
    let mut shown: Vec<&str> = Vec::new();
    for size in sizes {
        if shown.last() != Some(&size) {
            shown.push(size);
        }
    }
    assert_eq!(shown, ["1280x720", "640x360", "1280x720"], "{seen:?}");
    let played: f64 = seen.iter().find_map(|r| r.strip_prefix("played ")).and_then(|p| p.parse().ok()).unwrap_or(0.0);
    assert!(played > 2.0, "playback across the switch advanced only {played} s: {seen:?}");
}
