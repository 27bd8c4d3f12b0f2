//! Issue 10, items 6 and 7: what one client can hold open or try, over HTTP and RTMP, and
//! whose word the server takes for a client's address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use motherstream::media::codec::VideoTagInfo;
use motherstream::media::flv::{FlvTag, TagKind};
use motherstream::rtmp::client_io::RtmpClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::analysis::{ROUNDING_MS, analyse};
use crate::harness::{Options, PASSWORD, PATIENCE, Server, require_tool};
use crate::program::{SLATE, http_viewer, rtmp_player};
use crate::publisher::{Dj, is_header};

/// A DJ's ffmpeg encoding a live test picture and tone (320x180, 30 fps, 1 s GOP, AAC 48 kHz)
/// in real time: a stream with no gaps of its own, unlike a looped file, whose joins have
/// them. Killed when dropped.
pub(crate) struct LiveEncoder(std::process::Child);

impl LiveEncoder {
    const SIZE: (u32, u32) = (320, 180);

    fn publish(url: &str) -> Self {
        Self::with(url, 30, true)
    }

    /// A keyframe every `gop` frames (30 fps), with or without the tone.
    pub(crate) fn with(url: &str, gop: u32, audio: bool) -> Self {
        let gop = gop.to_string();
        let mut ffmpeg = std::process::Command::new("ffmpeg");
        ffmpeg.args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=30",
        ]);
        if audio {
            ffmpeg.args(["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
            ffmpeg.args(["-c:a", "aac", "-b:a", "96k", "-ac", "2"]);
        } else {
            ffmpeg.arg("-an");
        }
        let child = ffmpeg
            .args(["-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p"])
            .args(["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0", "-f", "flv", url])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ffmpeg");
        Self(child)
    }
}

impl Drop for LiveEncoder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP connection to `to` from the local address `from` (any of 127.0.0.0/8 works on
/// Linux), so one test can be many clients.
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.into(), 0))?;
    socket.connect(to).await
}

/// Waits up to `within` for the server to close `stream`; how long it took, if it did.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        let left = within.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

fn is_keyframe(tag: &FlvTag) -> bool {
    tag.kind == TagKind::Video
        && VideoTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_keyframe() && !i.is_sequence_header())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(ip.parse::<IpAddr>().unwrap()).build().unwrap()
}

async fn api_login(client: &reqwest::Client, server: &Server, login: &str, password: &str, forwarded: &str) -> u16 {
    let mut request =
        client.post(server.url("/api/v1/login/access-token")).form(&[("username", login), ("password", password)]);
    if !forwarded.is_empty() {
        request = request.header("x-forwarded-for", forwarded);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn slow_request_heads_and_idle_connections_are_closed_after_the_header_timeout() {
    let server = Server::start(Options::default());
    let mut idle = TcpStream::connect(server.http).await.unwrap();
    let mut slow = TcpStream::connect(server.http).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // Slowloris: a byte of a header now and then, never the end of the head.
    let drip = async {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(16) {
            if slow.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        closed_within(&mut slow, Duration::from_secs(1)).await.map(|_| started.elapsed())
    };
    let (slow_closed, idle_closed) = tokio::join!(drip, closed_within(&mut idle, Duration::from_secs(16)));
    let limit = Duration::from_secs(10);
    for (what, closed) in [("slow head", slow_closed), ("idle connection", idle_closed)] {
        let after = closed.unwrap_or_else(|| panic!("{what} still open after 16 s"));
        assert!(
            after >= limit - Duration::from_millis(500) && after < limit + Duration::from_secs(3),
            "{what}: {after:?}"
        );
    }
    assert_eq!(reqwest::get(server.url("/healthz")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn connections_over_the_http_cap_are_closed_at_once() {
    let server =
        Server::start(Options { config: Some("[limits]\nhttp_max_connections = 8\n".into()), ..Options::default() });
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(server.http).await.unwrap());
    }
    let mut extra = TcpStream::connect(server.http).await.unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(closed_within(&mut extra, Duration::from_secs(1)).await.is_some(), "a connection over the cap was served");
    server.wait_for_log("connection(s) refused").await;

    drop(held);
    let deadline = Instant::now() + PATIENCE;
    loop {
        match reqwest::get(server.url("/healthz")).await {
            Ok(resp) if resp.status() == 200 => break,
            _ => assert!(Instant::now() < deadline, "places were not given back"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn event_streams_and_flv_viewers_are_capped_per_address() {
    let server = Server::start(Options {
        config: Some("[limits]\nmax_event_streams_per_ip = 2\nmax_flv_viewers_per_ip = 1\n".into()),
        ..Options::default()
    });
    let here = client_from("127.0.0.1");
    let there = client_from("127.0.0.2");
    let open = |client: &reqwest::Client, path: &str| client.get(server.url(path)).send();

    let mut streams = Vec::new();
    for _ in 0..2 {
        let resp = open(&here, "/api/v1/events").await.unwrap();
        assert_eq!(resp.status(), 200);
        streams.push(resp);
    }
    let over = open(&here, "/api/v1/events").await.unwrap();
    assert_eq!(over.status(), 429);
    assert!(over.text().await.unwrap().contains("at most 2"));
    assert_eq!(open(&there, "/api/v1/events").await.unwrap().status(), 200, "another address has its own places");

    let viewer = open(&here, "/program.flv").await.unwrap();
    assert_eq!(viewer.status(), 200);
    assert_eq!(open(&here, "/program.flv").await.unwrap().status(), 429);
    assert_eq!(open(&there, "/program.flv").await.unwrap().status(), 200);
    drop(viewer);
    drop(streams);
    // A viewer that leaves gives its place back (once the server notices the closed socket).
    let deadline = Instant::now() + PATIENCE;
    for path in ["/program.flv", "/api/v1/events"] {
        while open(&here, path).await.unwrap().status() != 200 {
            assert!(Instant::now() < deadline, "{path}: the place was not given back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    // Nobody is trusted by default: a local peer cannot pick a new bucket per attempt.
    let server = Server::start(Options::default());
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..11 {
        statuses.push(api_login(&client, &server, &format!("nobody{i}"), "nope", &format!("198.51.100.{i}")).await);
    }
    assert_eq!(statuses[10], 429, "X-Forwarded-For from an untrusted peer was believed: {statuses:?}");
    drop(server);

    let server =
        Server::start(Options { config: Some("trusted_proxies = [\"127.0.0.1/32\"]\n".into()), ..Options::default() });
    for i in 0..15 {
        let status = api_login(&client, &server, &format!("nobody{i}"), "nope", &format!("198.51.100.{i}")).await;
        assert_eq!(status, 400, "clients behind the trusted proxy have their own quota");
    }
    let mut statuses = Vec::new();
    for i in 0..11 {
        // A client's own claim before the proxy's entry is not believed.
        let chain = format!("203.0.113.{i}, 192.0.2.1");
        statuses.push(api_login(&client, &server, &format!("other{i}"), "nope", &chain).await);
    }
    assert_eq!(statuses[10], 429, "the address the proxy saw is counted: {statuses:?}");
}

#[tokio::test]
async fn one_account_cannot_be_guessed_from_many_addresses() {
    let server = Server::start(Options::default());
    server.add_user("Alice", false);
    server.add_user("Bob", false);
    // Ten wrong guesses, each from its own address, alternating the email and the DJ name.
    for i in 0..10 {
        let client = client_from(&format!("127.0.0.{}", 10 + i));
        let login = if i % 2 == 0 { "alice@example.org" } else { "ALICE" };
        assert_eq!(api_login(&client, &server, login, "a wrong guess", "").await, 400);
    }
    let fresh = client_from("127.0.0.40");
    assert_eq!(api_login(&fresh, &server, "alice", PASSWORD, "").await, 429, "the account was not locked");
    assert_eq!(api_login(&fresh, &server, "bob", PASSWORD, "").await, 200, "other accounts are unaffected");
}

#[tokio::test]
async fn rtmp_viewers_at_an_address_do_not_crowd_out_its_djs() {
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", false);
    let mut players = Vec::new();
    for _ in 0..20 {
        players.push(RtmpClient::play(server.rtmp, "program", "live").await.expect("a player at the venue"));
    }
    let _alice = Dj::publish(server.rtmp, &key).await.expect("the DJ at the same address was refused");
    server.wait_for_queue(&["Alice"]).await;
}

#[tokio::test]
async fn rtmp_publishers_and_players_have_their_own_caps_per_address() {
    let server = Server::start(Options {
        // The total per address left above both, so the role caps are what refuses.
        config: Some(
            "[limits]\nmax_publishers_per_ip = 1\nmax_players_per_ip = 2\nmax_connections_per_ip = 10\n".into(),
        ),
        ..Options::default()
    });
    let alice_key = server.add_user("Alice", false);
    let bob_key = server.add_user("Bob", false);
    let _p1 = RtmpClient::play(server.rtmp, "program", "live").await.unwrap();
    let _p2 = RtmpClient::play(server.rtmp, "program", "live").await.unwrap();
    assert!(RtmpClient::play(server.rtmp, "program", "live").await.is_err(), "a third player got in");
    let _alice = Dj::publish(server.rtmp, &alice_key).await.expect("publishers are counted apart from players");
    server.wait_for_queue(&["Alice"]).await;
    assert!(Dj::publish(server.rtmp, &bob_key).await.is_err(), "a second publisher got in");
    server.wait_for_log("too many publishers from this address").await;
}

/// SPEC section 8's robustness bar under a hostile crowd: 2,000 idle sockets and a hundred
/// slowloris clients, each from its own loopback address, while a DJ is on air.
#[tokio::test]
async fn the_api_and_the_program_hold_up_under_idle_and_slowloris_crowds() {
    if !require_tool("ffmpeg") {
        return;
    }
    let limit = motherstream::server::raise_open_file_limit().expect("open files limit");
    assert!(limit > 2_500, "open files limit {limit} is too low for this test");
    // A header timeout longer than the test, so the whole crowd stays through the measurement.
    let server =
        Server::start(Options { config: Some("[limits]\nhttp_header_timeout = 60\n".into()), ..Options::default() });
    let key = server.add_user("Alice", false);
    let _dj = LiveEncoder::publish(&server.rtmp_url(&key));
    server.wait_for_queue(&["Alice"]).await;
    // The recording player joins once the DJ is on the program, so it sees one source only.
    let probe = rtmp_player(&server).await;
    probe.wait_for_size(LiveEncoder::SIZE).await;
    probe.leave();
    let player = rtmp_player(&server).await;
    player.wait_for_size(LiveEncoder::SIZE).await;
    eprintln!("server RSS before the crowd: {} KiB", rss_kib(server.pid()));

    let crowd_from = player.tags().last().map_or(0, |t| t.timestamp);
    let address = |i: usize| Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
    let mut idle = Vec::new();
    for i in 0..2_000 {
        idle.push(connect_from(address(i), server.http).await.expect("an idle socket"));
    }
    let mut slowloris = Vec::new();
    for i in 2_000..2_100 {
        let mut s = connect_from(address(i), server.http).await.expect("a slowloris socket");
        s.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slowloris.push(s);
    }
    let drip = tokio::spawn(async move {
        loop {
            for s in &mut slowloris {
                let _ = s.write_all(b"X").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    let client = reqwest::Client::new();
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(6) {
        let asked = Instant::now();
        let resp = client.get(server.url("/api/v1/status")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drip.abort();
    eprintln!("slowest API answer under load: {slowest:?}; server RSS {} KiB", rss_kib(server.pid()));
    assert!(slowest < Duration::from_millis(100), "the API took {slowest:?}");

    let tags = player.tags();
    assert_eq!(player.ended(), None);
    let whole = analyse(&tags);
    assert_eq!(whole.sources.len(), 1, "{:?}", whole.sources);
    assert!(whole.violations().is_empty(), "{:?}", whole.violations());
    // The gaps are measured over what was sent while the crowd was there: from the first
    // keyframe after it arrived, behind the stream's headers (the join itself is not at stake).
    let headers = tags.iter().filter(|t| t.kind != TagKind::Script && is_header(t)).take(2).cloned();
    let under_load = tags.iter().skip_while(|t| !(t.timestamp >= crowd_from && is_keyframe(t))).cloned();
    let report = analyse(&headers.chain(under_load).collect::<Vec<_>>());
    eprintln!(
        "program under load: {} pictures, largest picture gap {} ms, largest audio gap {} ms",
        report.pictures, report.largest_picture_gap_ms, report.largest_audio_gap_ms
    );
    assert!(report.pictures > 6 * 30 - 10, "only {} pictures under load", report.pictures);
    assert!(report.violations().is_empty(), "{:?}", report.violations());
    assert!(report.largest_picture_gap_ms <= 34 + ROUNDING_MS, "a gap of {} ms", report.largest_picture_gap_ms);
    assert!(report.largest_audio_gap_ms <= ROUNDING_MS, "an audio gap of {} ms", report.largest_audio_gap_ms);
    drop(idle);
}

#[tokio::test]
async fn request_bodies_are_capped_as_configured() {
    let server =
        Server::start(Options { config: Some("[limits]\nmax_body_bytes = 1024\n".into()), ..Options::default() });
    let client = reqwest::Client::new();
    let sign_up = |password: String| {
        let body = serde_json::json!({ "dj_name": "Big", "email": "big@example.org", "password": password });
        client.post(server.url("/api/v1/users/signup")).json(&body).send()
    };
    assert_eq!(sign_up("p".repeat(2000)).await.unwrap().status(), 413);
    assert_eq!(sign_up(PASSWORD.into()).await.unwrap().status(), 201);
    let long_form = "x".repeat(2000);
    let resp = client
        .post(server.url("/api/v1/login/access-token"))
        .form(&[("username", "big"), ("password", long_form.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn an_flv_viewer_does_not_hold_up_shutdown() {
    let mut server = Server::start(Options::default());
    let viewer = http_viewer(&server).await;
    viewer.wait_for_size(SLATE).await;
    let asked = Instant::now();
    server.terminate();
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(4), "shutdown took {took:?} with a viewer connected");
    let deadline = Instant::now() + Duration::from_secs(2);
    while viewer.ended().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(viewer.ended().is_some(), "the viewer's response never ended");
}

#[tokio::test]
async fn a_trickled_request_body_is_answered_408() {
    let server =
        Server::start(Options { config: Some("[limits]\nhttp_request_timeout = 2\n".into()), ..Options::default() });
    let mut slow = TcpStream::connect(server.http).await.unwrap();
    let head = "POST /api/v1/login/access-token HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=";
    slow.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(6), async {
        let mut buf = [0u8; 1024];
        // A byte now and then, never the whole body.
        loop {
            tokio::select! {
                n = slow.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(Duration::from_millis(300)) => {
                    let _ = slow.write_all(b"a").await;
                }
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                return;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a trickled body within 6 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(1500), "answered after {:?}", started.elapsed());
}

#[tokio::test]
async fn one_address_cannot_take_every_http_connection_unless_it_is_a_trusted_proxy() {
    let config = "[limits]\nhttp_max_connections_per_ip = 4\n";
    let server = Server::start(Options { config: Some(config.into()), ..Options::default() });
    let here = Ipv4Addr::new(127, 0, 0, 5);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from(here, server.http).await.unwrap());
    }
    let mut extra = connect_from(here, server.http).await.unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(closed_within(&mut extra, Duration::from_secs(1)).await.is_some(), "a fifth connection was served");
    assert_eq!(client_from("127.0.0.6").get(server.url("/healthz")).send().await.unwrap().status(), 200);
    drop(server);

    let trusted = format!("trusted_proxies = [\"127.0.0.5/32\"]\n{config}");
    let server = Server::start(Options { config: Some(trusted), ..Options::default() });
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(connect_from(here, server.http).await.unwrap());
    }
    assert_eq!(client_from("127.0.0.5").get(server.url("/healthz")).send().await.unwrap().status(), 200);
}
