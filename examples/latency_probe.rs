//! Benchmark probe (used by `scripts/bench-load.sh`): publishes FLV files over RTMP and
//! measures, at the protocol level, when each video frame comes out at an RTMP sink it runs
//! itself (a relay destination) or at a player it connects.
//!
//! Frames are recognised by a hash of their coded data (the server copies it unchanged;
//! timestamps are rebased so they cannot be used), so latency = arrival time − the time the
//! probe wrote that frame. Frames whose payload occurs twice in a file are ignored.
//!
//! ```text
//! latency_probe sink    --listen 127.0.0.1:19350 --duration 60 [--out stats.json]
//! latency_probe latency --server 127.0.0.1:1935 --key KEY --file a.flv
//!                       (--listen 127.0.0.1:19350 | --play program/live)
//!                       [--key2 KEY2 --file2 b.flv --switches 4 --stint 8]
//!                       --duration 30 --warmup 3 [--out result.json]
//! ```
//!
//! `sink` only accepts publishes and counts what arrives (for runs with other publishers).
//! `latency` publishes `--file` (looped, paced in real time) as `--key`; with `--key2` a
//! second publisher queues behind it and the two hand over `--switches` times, each on air
//! for `--stint` seconds (the on-air one stops cleanly and reconnects at the back of the
//! queue), and the switch gaps are measured at the receiver.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use motherstream::media::codec::VideoTagInfo;
use motherstream::media::flv::{FlvReader, FlvTag, TagKind};
use motherstream::rtmp::client_io::RtmpClient;
use motherstream::rtmp::{ClientEvent, MediaKind, ServerEvent, ServerSession, SessionLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Default)]
struct Args(HashMap<String, String>);

impl Args {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|s| s.as_str())
    }
    fn req(&self, k: &str) -> &str {
        self.get(k).unwrap_or_else(|| panic!("missing --{k}"))
    }
    fn num(&self, k: &str, default: f64) -> f64 {
        self.get(k).map(|v| v.parse().expect(k)).unwrap_or(default)
    }
}

/// A frame's identity: its coded data. The 5-byte AVC video tag header is left out because
/// the program raises composition offsets to its presentation delay (it copies those frames
/// with a new offset; the coded data is unchanged).
fn hash(payload: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    payload.get(5..).unwrap_or(payload).hash(&mut h);
    h.finish()
}

fn is_plain_video_frame(tag: &FlvTag) -> bool {
    tag.kind == TagKind::Video
        && VideoTagInfo::parse(&tag.payload).is_ok()
        && tag.payload.len() > 5
        // Skip AVC sequence headers (AVCPacketType 0) and end-of-sequence (2).
        && !(tag.payload[0] & 0x0f == 7 && tag.payload[1] != 1)
}

/// One received video frame.
#[derive(Clone, Copy)]
struct Arrival {
    at: Instant,
    /// Program timestamp (ms).
    ts: u32,
    /// Which publisher (0 or 1) wrote it, if recognised, and when.
    from: Option<(usize, Instant)>,
}

/// What the publishers wrote (payload hash → source and latest write time) and what arrived.
#[derive(Default)]
struct Shared {
    sent: HashMap<u64, (usize, Option<Instant>)>,
    arrivals: Vec<Arrival>,
    media_bytes: u64,
    media_tags: u64,
    /// Set once the probe's own publishing has ended: what arrives later comes from other
    /// publishers (possibly of the same file) and is not counted.
    done: bool,
}

impl Shared {
    fn received(&mut self, kind: MediaKind, ts: u32, payload: &Bytes) {
        let at = Instant::now();
        if self.done {
            return;
        }
        self.media_bytes += payload.len() as u64;
        self.media_tags += 1;
        if kind != MediaKind::Video {
            return;
        }
        let from = self.sent.get(&hash(payload)).and_then(|&(src, t)| t.map(|t| (src, t)));
        self.arrivals.push(Arrival { at, ts, from });
    }
}

fn load(path: &str) -> Vec<FlvTag> {
    let data = Bytes::from(std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}")));
    FlvReader::new(data).expect("flv").map_while(Result::ok).collect()
}

/// Registers the frames of `tags` as coming from `src`; payloads seen twice are dropped.
fn register(shared: &Mutex<Shared>, src: usize, tags: &[FlvTag]) {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for t in tags.iter().filter(|t| is_plain_video_frame(t)) {
        *counts.entry(hash(&t.payload)).or_default() += 1;
    }
    let mut s = shared.lock().unwrap();
    for (h, n) in counts {
        if n == 1 && !s.sent.contains_key(&h) {
            s.sent.insert(h, (src, None));
        } else {
            s.sent.remove(&h);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Sink: an RTMP server that accepts any publish.

async fn sink_connection(mut sock: TcpStream, shared: Arc<Mutex<Shared>>) -> Res<()> {
    let _ = sock.set_nodelay(true);
    let mut session = ServerSession::new(SessionLimits::default());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = sock.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let events = session.handle_input(&buf[..n])?;
        for e in events {
            match e {
                ServerEvent::ConnectRequested { .. } => session.accept_connect()?,
                ServerEvent::PublishRequested { stream_id, .. } => session.accept_publish(stream_id)?,
                ServerEvent::PlayRequested { stream_id, .. } => session.reject_play(stream_id, "sink")?,
                ServerEvent::Media { kind, timestamp, payload, .. } => {
                    shared.lock().unwrap().received(kind, timestamp, &payload)
                }
                ServerEvent::Metadata { payload, .. } => shared.lock().unwrap().media_bytes += payload.len() as u64,
                _ => {}
            }
        }
        for out in session.take_output() {
            sock.write_all(&out).await?;
        }
    }
}

async fn run_sink(listen: String, shared: Arc<Mutex<Shared>>) -> Res<()> {
    let listener = TcpListener::bind(&listen).await?;
    loop {
        let (sock, _) = listener.accept().await?;
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = sink_connection(sock, shared).await {
                eprintln!("sink connection: {e}");
            }
        });
    }
}

/// Plays `app/stream` from `server`, recording what arrives; reconnects if the stream ends.
async fn run_player(server: String, app_stream: String, shared: Arc<Mutex<Shared>>) -> Res<()> {
    let (app, stream) = app_stream.split_once('/').expect("--play app/stream");
    loop {
        let mut client = match RtmpClient::play(&server, app, stream).await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("player: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        loop {
            match client.next_event().await {
                Ok(ClientEvent::Media { kind, timestamp, payload }) => {
                    shared.lock().unwrap().received(kind, timestamp, &payload)
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("player: {e}");
                    break;
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Publisher: the file looped with a continuous timeline, paced like `ffmpeg -re`.

async fn publish_for(
    server: &str,
    app: &str,
    key: &str,
    tags: &[FlvTag],
    on_air_for: Duration,
    shared: &Mutex<Shared>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> Res<()> {
    let mut client = RtmpClient::publish(server, app, key).await?;
    let span = tags.iter().map(|t| t.timestamp).max().unwrap_or(0) + 33;
    let start = Instant::now();
    let deadline = start + on_air_for;
    let mut pass = 0u32;
    'outer: loop {
        for tag in tags {
            if tag.kind == TagKind::Script && pass > 0 {
                continue;
            }
            let ts = tag.timestamp + pass * span;
            let due = tokio::time::Instant::from_std(start + Duration::from_millis(ts as u64));
            // Wait until the frame is due, answering the server meanwhile (acks, pings).
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    _ = &mut stop => break 'outer,
                    ev = client.next_event() => { ev?; }
                }
            }
            if Instant::now() >= deadline {
                break 'outer;
            }
            let tag = FlvTag { timestamp: ts, ..tag.clone() };
            if is_plain_video_frame(&tag) {
                let h = hash(&tag.payload);
                let now = Instant::now();
                if let Some(entry) = shared.lock().unwrap().sent.get_mut(&h) {
                    entry.1 = Some(now);
                }
            }
            client.send(tag.to_rtmp()).await?;
        }
        pass += 1;
    }
    client.stop().await?;
    Ok(())
}

// ------------------------------------------------------------------------------------------
// Reports

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn latency_stats(samples: &mut [f64]) -> serde_json::Value {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    serde_json::json!({
        "n": samples.len(),
        "p50_ms": percentile(samples, 0.5),
        "p90_ms": percentile(samples, 0.9),
        "p99_ms": percentile(samples, 0.99),
        "max_ms": samples.last().copied().unwrap_or(f64::NAN),
    })
}

fn report(shared: &Shared, t0: Instant, warmup: Duration, elapsed: Duration) -> serde_json::Value {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // Latency of recognised frames after the warm-up, per stint (a run of frames from one source).
    let mut all = Vec::new();
    let mut stints: Vec<(usize, Vec<f64>)> = Vec::new();
    let mut switches = Vec::new();
    let mut last: Option<(usize, Arrival)> = None;
    let mut unknown_between = 0usize;
    for a in &shared.arrivals {
        let Some((src, sent)) = a.from else {
            unknown_between += 1;
            continue;
        };
        let lat = ms(a.at.duration_since(sent));
        if let Some((prev_src, prev)) = last
            && prev_src != src
        {
            switches.push(serde_json::json!({
                "from": prev_src, "to": src,
                "at_s": a.at.duration_since(t0).as_secs_f64(),
                "wall_gap_ms": ms(a.at.duration_since(prev.at)),
                "program_ts_gap_ms": a.ts as i64 - prev.ts as i64,
                "unrecognised_frames_between": unknown_between,
                "first_frame_latency_ms": lat,
            }));
        }
        unknown_between = 0;
        if stints.last().is_none_or(|(s, _)| *s != src) {
            stints.push((src, Vec::new()));
        }
        if a.at.duration_since(t0) >= warmup {
            all.push(lat);
            stints.last_mut().unwrap().1.push(lat);
        }
        last = Some((src, *a));
    }
    // Playback smoothness: the largest wall-clock gap between consecutive frames.
    let max_gap = shared
        .arrivals
        .windows(2)
        .filter(|w| w[0].at.duration_since(t0) >= warmup)
        .map(|w| ms(w[1].at.duration_since(w[0].at)))
        .fold(0.0, f64::max);
    // Per second since start: frames recognised and their worst latency (to locate spikes).
    let mut timeline: Vec<(u64, usize, f64)> = Vec::new();
    for a in &shared.arrivals {
        let Some((_, sent)) = a.from else { continue };
        let sec = a.at.duration_since(t0).as_secs();
        let lat = ms(a.at.duration_since(sent));
        match timeline.last_mut() {
            Some((s, n, worst)) if *s == sec => {
                *n += 1;
                *worst = worst.max(lat);
            }
            _ => timeline.push((sec, 1, lat)),
        }
    }
    serde_json::json!({
        "timeline_s_frames_worst_ms": timeline,
        "elapsed_s": elapsed.as_secs_f64(),
        "received_media_tags": shared.media_tags,
        "received_media_bytes": shared.media_bytes,
        "received_kbit_s": shared.media_bytes as f64 * 8.0 / 1000.0 / elapsed.as_secs_f64().max(1e-9),
        "video_frames": shared.arrivals.len(),
        "recognised_frames": shared.arrivals.iter().filter(|a| a.from.is_some()).count(),
        "latency": latency_stats(&mut all),
        "stints": stints.into_iter().map(|(src, mut l)| {
            let mut v = latency_stats(&mut l); v["source"] = src.into(); v
        }).collect::<Vec<_>>(),
        "switches": switches,
        "max_frame_gap_ms": max_gap,
    })
}

fn write_out(args: &Args, value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap();
    match args.get("out") {
        Some(path) => std::fs::write(path, &text).expect("write --out"),
        None => println!("{text}"),
    }
}

// ------------------------------------------------------------------------------------------

async fn sleep_or_term(d: Duration) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let mut it = std::env::args().skip(1);
    let mode = it.next().unwrap_or_default();
    let mut args = Args::default();
    while let Some(k) = it.next() {
        let k = k.strip_prefix("--").unwrap_or_else(|| panic!("unexpected argument {k}")).to_owned();
        args.0.insert(k, it.next().expect("flag value"));
    }
    let shared = Arc::new(Mutex::new(Shared::default()));
    let t0 = Instant::now();
    let duration = Duration::from_secs_f64(args.num("duration", 30.0));
    match mode.as_str() {
        "sink" => {
            let listen = args.req("listen").to_owned();
            let task = tokio::spawn(run_sink(listen, shared.clone()));
            sleep_or_term(duration).await;
            task.abort();
            let s = shared.lock().unwrap();
            write_out(&args, &report(&s, t0, Duration::ZERO, t0.elapsed()));
        }
        "latency" => {
            let server = args.req("server").to_owned();
            let app = args.get("app").unwrap_or("live").to_owned();
            let warmup = Duration::from_secs_f64(args.num("warmup", 3.0));
            let files = [args.req("file").to_owned(), args.get("file2").unwrap_or(args.req("file")).to_owned()];
            let keys: Vec<String> =
                [args.get("key"), args.get("key2")].into_iter().flatten().map(str::to_owned).collect();
            let tags: Vec<Vec<FlvTag>> = files.iter().map(|f| load(f)).collect();
            for (src, t) in tags.iter().enumerate().take(keys.len()) {
                register(&shared, src, t);
            }
            let receiver = if let Some(listen) = args.get("listen") {
                tokio::spawn(run_sink(listen.to_owned(), shared.clone()))
            } else {
                tokio::spawn(run_player(server.clone(), args.req("play").to_owned(), shared.clone()))
            };
            if keys.len() == 1 {
                let (_keep, stop) = tokio::sync::oneshot::channel();
                publish_for(&server, &app, &keys[0], &tags[0], duration, &shared, stop).await?;
                // Stop counting at once: the server may put another DJ (possibly publishing
                // the same file) on air within milliseconds.
                shared.lock().unwrap().done = true;
            } else {
                // Hand-overs: the on-air publisher stops cleanly after a stint and requeues.
                let switches = args.num("switches", 4.0) as usize;
                let stint = Duration::from_secs_f64(args.num("stint", 8.0));
                let spawn = |src: usize| {
                    let (s, a, k, t, sh) =
                        (server.clone(), app.clone(), keys[src].clone(), tags[src].clone(), shared.clone());
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let task =
                        tokio::spawn(
                            async move { publish_for(&s, &a, &k, &t, Duration::from_secs(3600), &sh, rx).await },
                        );
                    (tx, task)
                };
                let mut pubs = vec![spawn(0)];
                tokio::time::sleep(Duration::from_millis(500)).await;
                pubs.push(spawn(1));
                let mut on_air = 0usize;
                tokio::time::sleep(warmup + stint).await;
                for _ in 0..switches {
                    let (tx, task) = &mut pubs[on_air];
                    let _ = std::mem::replace(tx, tokio::sync::oneshot::channel().0).send(());
                    task.await??;
                    // The same DJ reconnects at the back of the queue.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    pubs[on_air] = spawn(on_air);
                    on_air = 1 - on_air;
                    tokio::time::sleep(stint).await;
                }
                for (tx, task) in pubs {
                    let _ = tx.send(());
                    let _ = task.await;
                }
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
            receiver.abort();
            let s = shared.lock().unwrap();
            write_out(&args, &report(&s, t0, warmup, t0.elapsed()));
        }
        _ => {
            eprintln!("usage: latency_probe sink|latency --flag value … (see the source)");
            std::process::exit(2);
        }
    }
    Ok(())
}
