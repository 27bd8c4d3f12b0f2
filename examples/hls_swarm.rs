//! Load client (used by `scripts/bench-hls.sh`): many HLS viewers in one process, each doing
//! what a player does, and optionally a publisher that times how soon segments are listed.
//!
//! ```text
//! hls_swarm --url http://127.0.0.1:8080/hls/program.m3u8 --viewers 500 \
//!           [--ramp 100] [--warmup 10] [--duration 30] [--blocking] [--out result.json]
//!           [--publish input.flv --rtmp 127.0.0.1:1935 --app live --key KEY]
//! ```
//!
//! Each viewer has its own HTTP client (its own keep-alive connection, as a browser tab
//! has): it loads the playlist, fetches the init section (again when it changes), starts three segments from
//! the live edge (where hls.js and Safari start), then fetches every new segment once, in
//! order, reading and discarding the body. It reloads the playlist a target duration after
//! the previous load when the playlist changed and half of one when it did not (RFC 8216
//! 6.3.4), or, with `--blocking` on a server that offers it (`CAN-BLOCK-RELOAD=YES`), asks
//! at once for the next segment with `_HLS_msn` and lets the server hold the request.
//! `--ramp` viewers start per second.
//!
//! Measured over the window after `--warmup`: per-segment fetch time (request to last
//! byte), playlist fetch time (non-blocking loads only), failures by reason, segments
//! missed (gone from the window before the viewer got to them), bytes received.
//!
//! With `--publish`, the swarm also publishes the FLV file over RTMP, paced in real time
//! and looped, and an edge watcher polls the playlist every 20 ms. The segment latency is
//! then: the moment a segment is first listed − the moment the publisher wrote the keyframe
//! that ended it (the last keyframe written before the listing). That matching holds while
//! the latency is shorter than the input's keyframe interval; the result says which
//! interval the file has.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use motherstream::media::flv::{FlvReader, FlvTag, TagKind};
use motherstream::rtmp::client_io::RtmpClient;
use reqwest::Url;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// How often the edge watcher polls the playlist.
const EDGE_POLL: Duration = Duration::from_millis(20);
/// A request that takes longer has failed (a stalled player would have given up too).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Where a player starts: this many segments from the end of the playlist.
const START_FROM_EDGE: usize = 3;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == &format!("--{name}")).and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: f64) -> f64 {
    arg(args, name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("--{name}: not a number")))
}

/// What a player needs from a media playlist.
#[derive(Debug, Default)]
struct Playlist {
    target_duration: f64,
    media_sequence: u64,
    map: Option<String>,
    segments: Vec<String>,
    can_block: bool,
    /// PART-HOLD-BACK (LL-HLS): how far behind the live edge a low-latency player stays.
    part_hold_back: Option<f64>,
}

impl Playlist {
    fn parse(text: &str) -> Res<Self> {
        if !text.starts_with("#EXTM3U") {
            return Err("not a playlist".into());
        }
        let mut p = Playlist::default();
        for line in text.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                p.target_duration = v.parse()?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                p.media_sequence = v.parse()?;
            } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
                p.map = attribute(v, "URI");
            } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
                p.can_block = v.contains("CAN-BLOCK-RELOAD=YES");
                p.part_hold_back = attribute(v, "PART-HOLD-BACK").and_then(|h| h.parse().ok());
            } else if !line.is_empty() && !line.starts_with('#') {
                p.segments.push(line.to_owned());
            }
        }
        if p.target_duration <= 0.0 {
            return Err("no target duration".into());
        }
        Ok(p)
    }

    fn last_sequence(&self) -> Option<u64> {
        (self.media_sequence + self.segments.len() as u64).checked_sub(1).filter(|_| !self.segments.is_empty())
    }
}

/// `NAME="value"` or `NAME=value` from an attribute list.
fn attribute(list: &str, name: &str) -> Option<String> {
    let at = list.find(&format!("{name}="))? + name.len() + 1;
    let rest = &list[at..];
    Some(match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next()?.to_owned(),
        None => rest.split(',').next()?.to_owned(),
    })
}

#[derive(Default)]
struct Stats {
    measuring: bool,
    segment_ms: Vec<f64>,
    playlist_ms: Vec<f64>,
    segments: u64,
    bytes: u64,
    missed: u64,
    failures: BTreeMap<String, u64>,
    /// Viewers whose last request succeeded.
    healthy: usize,
}

impl Stats {
    fn fail(&mut self, why: String) {
        if self.measuring {
            *self.failures.entry(why).or_default() += 1;
        }
    }
}

/// GETs `url` and reads the body to the end, discarding it; returns its length.
async fn fetch_discard(client: &reqwest::Client, url: Url) -> Res<u64> {
    let mut resp = client.get(url).send().await?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()).into());
    }
    let mut n = 0;
    while let Some(chunk) = resp.chunk().await? {
        n += chunk.len() as u64;
    }
    Ok(n)
}

async fn fetch_text(client: &reqwest::Client, url: Url) -> Res<String> {
    let resp = client.get(url).send().await?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status().as_u16()).into());
    }
    Ok(resp.text().await?)
}

/// One viewer, until the process ends. Failures are counted and the viewer carries on as
/// a player would: it reloads the playlist.
async fn viewer(url: Url, blocking: bool, stats: Rc<RefCell<Stats>>) {
    let client = match reqwest::Client::builder().pool_max_idle_per_host(1).timeout(REQUEST_TIMEOUT).build() {
        Ok(client) => client,
        Err(e) => return stats.borrow_mut().fail(format!("client: {e}")),
    };
    let mut next: Option<u64> = None;
    // The init section last fetched: a new one is listed when the program's codec
    // parameters change, and a player fetches it then.
    let mut have_map: Option<String> = None;
    let mut healthy = false;
    let mut set_health = |ok: bool, stats: &Rc<RefCell<Stats>>| {
        if ok != healthy {
            healthy = ok;
            let mut s = stats.borrow_mut();
            if ok { s.healthy += 1 } else { s.healthy -= 1 }
        }
    };
    loop {
        let started = Instant::now();
        let mut request = url.clone();
        let held = blocking && next.is_some();
        if let (true, Some(n)) = (held, next) {
            request.query_pairs_mut().append_pair("_HLS_msn", &n.to_string());
        }
        let playlist = match fetch_text(&client, request).await.and_then(|t| Playlist::parse(&t)) {
            Ok(p) => p,
            Err(e) => {
                stats.borrow_mut().fail(format!("playlist: {e}"));
                set_health(false, &stats);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if !held && stats.borrow().measuring {
            stats.borrow_mut().playlist_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        let mut ok = true;
        if let Some(map) = &playlist.map
            && have_map.as_ref() != Some(map)
        {
            match url.join(map) {
                Ok(map_url) => match fetch_discard(&client, map_url).await {
                    Ok(_) => have_map = Some(map.clone()),
                    Err(e) => {
                        stats.borrow_mut().fail(format!("init: {e}"));
                        ok = false;
                    }
                },
                Err(e) => stats.borrow_mut().fail(format!("init address: {e}")),
            }
        }
        let first = next.unwrap_or_else(|| {
            playlist.media_sequence + playlist.segments.len().saturating_sub(START_FROM_EDGE) as u64
        });
        if first < playlist.media_sequence {
            let mut s = stats.borrow_mut();
            if s.measuring {
                s.missed += playlist.media_sequence - first;
            }
        }
        let mut changed = false;
        for (i, uri) in playlist.segments.iter().enumerate() {
            let sequence = playlist.media_sequence + i as u64;
            if sequence < first {
                continue;
            }
            changed = true;
            let Ok(segment_url) = url.join(uri) else {
                stats.borrow_mut().fail(format!("segment address {uri}"));
                continue;
            };
            let t = Instant::now();
            match fetch_discard(&client, segment_url).await {
                Ok(bytes) => {
                    let mut s = stats.borrow_mut();
                    if s.measuring {
                        s.segment_ms.push(t.elapsed().as_secs_f64() * 1000.0);
                        s.segments += 1;
                        s.bytes += bytes;
                    }
                }
                Err(e) => {
                    stats.borrow_mut().fail(format!("segment: {e}"));
                    ok = false;
                }
            }
            next = Some(sequence + 1);
        }
        if next.is_none() {
            next = playlist.last_sequence().map(|s| s + 1);
        }
        set_health(ok, &stats);
        if !(blocking && playlist.can_block) {
            let wait = if changed { playlist.target_duration } else { playlist.target_duration / 2.0 };
            tokio::time::sleep_until((started + Duration::from_secs_f64(wait)).into()).await;
        }
    }
}

/// The keyframes the publisher wrote, and when.
#[derive(Default)]
struct Published {
    keyframes: Vec<Instant>,
}

fn is_keyframe(tag: &FlvTag) -> bool {
    // FLV video tag: frame type in the high nibble of the first byte (1 = key), and for
    // AVC/HEVC a packet type byte (1 = coded frames, not the sequence header).
    tag.kind == TagKind::Video && tag.payload.first().is_some_and(|b| b >> 4 == 1) && tag.payload.get(1) == Some(&1)
}

/// Publishes `tags` in real time, looped, recording when each keyframe goes out.
async fn publish(
    rtmp: String,
    app: String,
    key: String,
    tags: Vec<FlvTag>,
    published: Rc<RefCell<Published>>,
) -> Res<()> {
    let mut client = RtmpClient::publish(&rtmp, &app, &key).await?;
    let span = tags.iter().map(|t| t.timestamp).max().unwrap_or(0) + 33;
    let start = Instant::now();
    for pass in 0u32.. {
        for tag in &tags {
            if tag.kind == TagKind::Script && pass > 0 {
                continue;
            }
            let ts = tag.timestamp + pass * span;
            let due = tokio::time::Instant::from_std(start + Duration::from_millis(u64::from(ts)));
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => break,
                    event = client.next_event() => { event?; }
                }
            }
            client.send(FlvTag { timestamp: ts, ..tag.clone() }.to_rtmp()).await?;
            if is_keyframe(tag) {
                published.borrow_mut().keyframes.push(Instant::now());
            }
        }
    }
    Ok(())
}

/// What the edge watcher saw of the playlist last: the hold-back a player applies.
#[derive(Default, Clone, Copy)]
struct Edge {
    target_duration: f64,
    part_hold_back: Option<f64>,
}

/// Polls the playlist and records when each segment is first listed.
async fn edge_watcher(url: Url, listed: Rc<RefCell<Vec<(u64, Instant)>>>, edge: Rc<RefCell<Edge>>) {
    let Ok(client) = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() else { return };
    let mut last: Option<u64> = None;
    loop {
        let polled = Instant::now();
        if let Ok(playlist) = fetch_text(&client, url.clone()).await.and_then(|t| Playlist::parse(&t))
            && let Some(newest) = playlist.last_sequence()
        {
            let seen = Instant::now();
            *edge.borrow_mut() =
                Edge { target_duration: playlist.target_duration, part_hold_back: playlist.part_hold_back };
            if last.is_some_and(|l| newest > l) {
                listed.borrow_mut().push((newest, seen));
            }
            last = Some(newest);
        }
        tokio::time::sleep_until((polled + EDGE_POLL).into()).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(samples: &mut [f64]) -> serde_json::Value {
    samples.sort_by(f64::total_cmp);
    serde_json::json!({
        "n": samples.len(),
        "p50": percentile(samples, 0.5),
        "p90": percentile(samples, 0.9),
        "p99": percentile(samples, 0.99),
        "max": percentile(samples, 1.0),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = Url::parse(&arg(&args, "url").unwrap_or_else(|| "http://127.0.0.1:8080/hls/program.m3u8".into()))?;
    let viewers = num(&args, "viewers", 100.0) as usize;
    let ramp = num(&args, "ramp", 100.0).max(1.0);
    let warmup = Duration::from_secs_f64(num(&args, "warmup", 10.0));
    let duration = Duration::from_secs_f64(num(&args, "duration", 30.0));
    let blocking = args.iter().any(|a| a == "--blocking");
    let publish_file = arg(&args, "publish");

    let stats = Rc::new(RefCell::new(Stats::default()));
    let published = Rc::new(RefCell::new(Published::default()));
    let listed = Rc::new(RefCell::new(Vec::new()));
    let edge = Rc::new(RefCell::new(Edge::default()));
    let mut keyframe_interval = None;
    let local = tokio::task::LocalSet::new();
    let publisher_error = Rc::new(RefCell::new(None::<String>));
    let t0 = Instant::now();
    local
        .run_until(async {
            if let Some(file) = &publish_file {
                let tags: Vec<FlvTag> = FlvReader::new(std::fs::read(file)?.into())?.collect::<Result<_, _>>()?;
                let keys: Vec<u32> = tags.iter().filter(|t| is_keyframe(t)).map(|t| t.timestamp).collect();
                keyframe_interval = keys.windows(2).map(|w| w[1] - w[0]).min();
                let rtmp = arg(&args, "rtmp").ok_or("--publish needs --rtmp")?;
                let app = arg(&args, "app").unwrap_or_else(|| "live".into());
                let key = arg(&args, "key").ok_or("--publish needs --key")?;
                let (published, error) = (published.clone(), publisher_error.clone());
                tokio::task::spawn_local(async move {
                    if let Err(e) = publish(rtmp, app, key, tags, published).await {
                        *error.borrow_mut() = Some(e.to_string());
                    }
                });
                tokio::task::spawn_local(edge_watcher(url.clone(), listed.clone(), edge.clone()));
            }
            for i in 0..viewers {
                tokio::task::spawn_local(viewer(url.clone(), blocking, stats.clone()));
                // Viewers arrive at the ramp rate, as a crowd does, not all in one instant.
                let due = t0 + Duration::from_secs_f64((i + 1) as f64 / ramp);
                tokio::time::sleep_until(due.into()).await;
            }
            tokio::time::sleep(warmup).await;
            stats.borrow_mut().measuring = true;
            let measured_from = Instant::now();
            tokio::time::sleep(duration).await;
            stats.borrow_mut().measuring = false;
            Ok::<_, Box<dyn std::error::Error>>(measured_from)
        })
        .await
        .map(|measured_from| {
            // Segments listed in the window, each against the last keyframe written before.
            let keyframes = &published.borrow().keyframes;
            let mut latencies: Vec<f64> = listed
                .borrow()
                .iter()
                .filter(|(_, at)| *at >= measured_from)
                .filter_map(|(_, at)| {
                    let before = keyframes.partition_point(|k| k <= at);
                    let key = keyframes.get(before.checked_sub(1)?)?;
                    Some(at.duration_since(*key).as_secs_f64() * 1000.0)
                })
                .collect();
            let listed_p50 = {
                let mut sorted = latencies.clone();
                sorted.sort_by(f64::total_cmp);
                percentile(&sorted, 0.5) / 1000.0
            };
            // A player starts and stays this far behind the end of the playlist: three target
            // durations (hls.js's liveSyncDurationCount, Apple's default HOLD-BACK), or
            // PART-HOLD-BACK when the playlist has parts and the player does LL-HLS. Media at
            // the live edge was ingested `listed_p50` before it was listed, so glass to glass
            // (without the encoder's and the network's share) is about the sum.
            let edge = *edge.borrow();
            let glass_to_glass = serde_json::json!({
                "target_duration_s": edge.target_duration,
                "part_hold_back_s": edge.part_hold_back,
                "standard_player_s": 3.0 * edge.target_duration + listed_p50,
                "low_latency_player_s": edge.part_hold_back.map(|h| h + listed_p50),
            });
            let mut s = stats.borrow_mut();
            let secs = duration.as_secs_f64();
            let result = serde_json::json!({
                "viewers": viewers,
                "healthy_at_end": s.healthy,
                "blocking": blocking,
                "segments": s.segments,
                "segments_per_s": s.segments as f64 / secs,
                "mbps": s.bytes as f64 * 8.0 / 1e6 / secs,
                "missed": s.missed,
                "failures": s.failures,
                "segment_fetch_ms": summary(&mut s.segment_ms),
                "playlist_fetch_ms": summary(&mut s.playlist_ms),
                "segment_listed_after_keyframe_ms": summary(&mut latencies),
                "glass_to_glass_estimate": glass_to_glass,
                "input_keyframe_interval_ms": keyframe_interval,
                "publisher_error": *publisher_error.borrow(),
            });
            println!("{result}");
            result
        })
        .and_then(|result| {
            if let Some(out) = arg(&args, "out") {
                std::fs::write(out, result.to_string())?;
            }
            Ok(())
        })
}
