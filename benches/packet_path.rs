//! Per-packet cost of the media path, measured on the committed fixture
//! `tests/fixtures/dj.flv` (10 s of 320x180@30 H.264 + AAC, ~730 tags).
//!
//! Every benchmark processes the whole fixture per iteration and declares
//! `Throughput::Elements(tags)`, so criterion's time divided by the tag count is the cost
//! per packet (criterion also prints it as elements/s). Run with
//! `cargo bench --bench packet_path`.
//!
//! - `flv_parse`: `FlvReader` over an in-memory `Bytes` of the file.
//! - `rtmp_chunk_decode`: a `ServerSession` that has accepted a publish, fed the chunked
//!   media of the fixture as a `ClientSession` wrote it (only the media part is timed).
//! - `switcher_push`: `Switcher::push` of an on-air source (timestamp rebase).
//! - `fanout_publish/N`: `Fanout::publish` to N consumers whose channels are drained.
//! - `player_send_100_players`: one program tag into the RTMP output of 100 players, each
//!   encoding it (`encode_per_player`) or all sharing one encoding (`shared_encoding`).
//! - `whole_path`: parse → rebase → fan-out to 10 consumers, per packet.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::mpsc;

use motherstream::media::flv::{FlvReader, FlvTag, TagKind};
use motherstream::media::switcher::{Source, Switcher, SwitcherConfig};
use motherstream::program::fanout::{CONSUMER_BUFFER, Fanout, ProgramTag};
use motherstream::rtmp::SessionLimits;
use motherstream::rtmp::{ClientConfig, ClientEvent, ClientMode, ClientSession, MediaKind, ServerEvent, ServerSession};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dj.flv");

fn fixture_bytes() -> Bytes {
    Bytes::from(std::fs::read(FIXTURE).expect("tests/fixtures/dj.flv"))
}

fn fixture_tags() -> Vec<FlvTag> {
    FlvReader::new(fixture_bytes()).unwrap().map(|t| t.unwrap()).collect()
}

// ---------------------------------------------------------------------------------------
// (a) FLV parse

fn flv_parse(c: &mut Criterion) {
    let data = fixture_bytes();
    let n = FlvReader::new(data.clone()).unwrap().count() as u64;
    let mut g = c.benchmark_group("flv_parse");
    g.throughput(Throughput::Elements(n));
    g.bench_function("fixture", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for tag in FlvReader::new(black_box(data.clone())).unwrap() {
                bytes += tag.unwrap().payload.len();
            }
            black_box(bytes)
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// (b) RTMP chunk decode of a publisher's media

fn pump_to_server(client: &mut ClientSession, server: &mut ServerSession) -> Vec<ServerEvent> {
    let mut events = Vec::new();
    for bytes in client.take_output() {
        events.extend(server.handle_input(&bytes).unwrap());
    }
    events
}

fn pump_to_client(server: &mut ServerSession, client: &mut ClientSession) -> Vec<ClientEvent> {
    let mut events = Vec::new();
    for bytes in server.take_output() {
        events.extend(client.handle_input(&bytes).unwrap());
    }
    events
}

/// A client and a server that have gone through handshake, connect and publish or play
/// (accepted).
fn session_pair(mode: ClientMode) -> (ClientSession, ServerSession) {
    let mut client = ClientSession::new(ClientConfig::new("live", "rtmp://127.0.0.1/live", mode));
    let mut server = ServerSession::new(SessionLimits::default());
    for _ in 0..16 {
        for event in pump_to_server(&mut client, &mut server) {
            match event {
                ServerEvent::ConnectRequested { .. } => server.accept_connect().unwrap(),
                ServerEvent::PublishRequested { stream_id, .. } => server.accept_publish(stream_id).unwrap(),
                ServerEvent::PlayRequested { stream_id, .. } => server.accept_play(stream_id).unwrap(),
                other => panic!("unexpected {other:?}"),
            }
        }
        for event in pump_to_client(&mut server, &mut client) {
            if matches!(event, ClientEvent::PublishStarted { .. } | ClientEvent::PlayStarted { .. }) {
                return (client, server);
            }
        }
    }
    panic!("publish/play did not start");
}

fn publishing_pair() -> (ClientSession, ServerSession) {
    session_pair(ClientMode::Publish { stream_key: "bench".into() })
}

/// The bytes a publisher writes for the fixture's media, as socket-sized reads.
fn recorded_media(client: &mut ClientSession, tags: &[FlvTag]) -> Vec<Bytes> {
    for tag in tags {
        match tag.kind {
            TagKind::Audio => client.send_media(MediaKind::Audio, tag.timestamp, tag.payload.clone()).unwrap(),
            TagKind::Video => client.send_media(MediaKind::Video, tag.timestamp, tag.payload.clone()).unwrap(),
            TagKind::Script => client.send_metadata(tag.payload.clone()).unwrap(),
        }
    }
    // Re-cut into 64 KiB reads, the ingest's read buffer size.
    let all: Vec<u8> = client.take_output().iter().flat_map(|b| b.iter().copied()).collect();
    all.chunks(64 * 1024).map(Bytes::copy_from_slice).collect()
}

fn rtmp_chunk_decode(c: &mut Criterion) {
    let tags = fixture_tags();
    // The client is deterministic after the handshake, so the media bytes recorded from one
    // pair decode identically on any other freshly published server session.
    let (mut client, _) = publishing_pair();
    let media = recorded_media(&mut client, &tags);
    let total: usize = media.iter().map(|b| b.len()).sum();
    {
        let (_, mut server) = publishing_pair();
        let events: usize = media.iter().map(|b| server.handle_input(b).unwrap().len()).sum();
        assert_eq!(events, tags.len(), "every recorded tag must decode to one event");
    }
    eprintln!("rtmp_chunk_decode: {} messages, {} bytes of chunked media", tags.len(), total);

    let mut g = c.benchmark_group("rtmp_chunk_decode");
    g.throughput(Throughput::Elements(tags.len() as u64));
    g.bench_function("fixture", |b| {
        b.iter_batched(
            || publishing_pair().1,
            |mut server| {
                let mut n = 0usize;
                for read in &media {
                    n += server.handle_input(black_box(read)).unwrap().len();
                }
                (n, server)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// (c) switcher rebase

/// A switcher with `source` on air (its first keyframe pushed).
fn on_air_switcher(source: Source, tags: &[FlvTag]) -> Switcher {
    let mut sw = Switcher::new(SwitcherConfig::default());
    sw.select(source);
    for tag in tags {
        sw.push(source, tag);
    }
    assert_eq!(sw.current(), Some(source));
    sw
}

/// The fixture shifted to continue after `offset` ms, so looping it does not re-anchor.
fn shifted(tags: &[FlvTag], offset: u32) -> Vec<FlvTag> {
    tags.iter().map(|t| FlvTag { timestamp: t.timestamp.wrapping_add(offset), ..t.clone() }).collect()
}

fn switcher_push(c: &mut Criterion) {
    let tags = fixture_tags();
    let source = Source::Publisher(motherstream::ids::ConnId(1));
    let mut g = c.benchmark_group("switcher_push");
    g.throughput(Throughput::Elements(tags.len() as u64));
    g.bench_function("fixture", |b| {
        let mut sw = on_air_switcher(source, &tags);
        let span = tags.last().unwrap().timestamp + 33;
        let mut offset = span;
        b.iter_batched(
            || {
                // Each pass continues the timeline (no re-anchoring), like a live source.
                let pass = shifted(&tags, offset);
                offset = offset.wrapping_add(span);
                pass
            },
            |pass| {
                let mut out = 0usize;
                for tag in &pass {
                    out += sw.push(source, black_box(tag)).len();
                }
                out
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// (d) fan-out

struct Consumers {
    rx: Vec<mpsc::Receiver<ProgramTag>>,
}

impl Consumers {
    fn attach(fanout: &mut Fanout, n: usize) -> Self {
        let mut rx = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, r) = mpsc::channel(CONSUMER_BUFFER);
            fanout.add(format!("bench-{i}"), tx);
            rx.push(r);
        }
        Consumers { rx }
    }

    fn drain(&mut self) -> usize {
        let mut n = 0;
        for r in &mut self.rx {
            while let Ok(tag) = r.try_recv() {
                n += tag.payload.len() & 1;
            }
        }
        n
    }
}

/// Publishes `tags` draining every consumer every 64 tags (well under `CONSUMER_BUFFER`,
/// so no consumer ever lags).
fn publish_all(fanout: &mut Fanout, consumers: &mut Consumers, tags: &[FlvTag]) -> usize {
    let mut drained = 0;
    let now = Instant::now();
    for (i, tag) in tags.iter().enumerate() {
        fanout.publish(now, tag.clone());
        if i % 64 == 63 {
            drained += consumers.drain();
        }
    }
    drained + consumers.drain()
}

fn fanout_publish(c: &mut Criterion) {
    let tags = fixture_tags();
    let mut g = c.benchmark_group("fanout_publish");
    g.throughput(Throughput::Elements(tags.len() as u64));
    for n in [1usize, 10, 100] {
        g.bench_function(format!("{n}"), |b| {
            let mut fanout = Fanout::new(Duration::from_secs(10));
            let mut consumers = Consumers::attach(&mut fanout, n);
            consumers.drain();
            b.iter(|| black_box(publish_all(&mut fanout, &mut consumers, &tags)));
            assert_eq!(fanout.consumer_count(), n, "no consumer may be dropped");
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------
// (e) per-player send path: a program tag into the RTMP output of N players

const PLAYERS: usize = 100;

fn media_kind(tag: &FlvTag) -> Option<MediaKind> {
    match tag.kind {
        TagKind::Audio => Some(MediaKind::Audio),
        TagKind::Video => Some(MediaKind::Video),
        TagKind::Script => None,
    }
}

fn player_send(c: &mut Criterion) {
    let tags: Vec<FlvTag> = fixture_tags().into_iter().filter(|t| media_kind(t).is_some()).collect();
    let mut players: Vec<ServerSession> =
        (0..PLAYERS).map(|_| session_pair(ClientMode::Play { stream_name: "live".into() }).1).collect();
    for p in &mut players {
        p.take_output();
    }
    let mut g = c.benchmark_group(format!("player_send_{PLAYERS}_players"));
    g.throughput(Throughput::Elements(tags.len() as u64));
    // What every player did before: its own chunk encoding of each message.
    g.bench_function("encode_per_player", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for tag in &tags {
                let kind = media_kind(tag).unwrap_or(MediaKind::Video);
                for p in &mut players {
                    p.send_media(1, kind, tag.timestamp, tag.payload.clone()).unwrap();
                    bytes += p.take_output().len();
                }
            }
            black_box(bytes)
        })
    });
    // Now: encoded once (by the first player), the bytes shared by all.
    g.bench_function("shared_encoding", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            for tag in &tags {
                let kind = media_kind(tag).unwrap_or(MediaKind::Video);
                let shared = ProgramTag::new(tag.clone());
                for p in &mut players {
                    let encoded = shared
                        .rtmp_chunks(|t| ServerSession::encode_media(1, kind, t.timestamp, t.payload.clone()).ok())
                        .unwrap();
                    p.send_encoded(encoded).unwrap();
                    bytes += p.take_output().len();
                }
            }
            black_box(bytes)
        })
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// (f) whole path: parse → rebase → fan-out(10)

fn whole_path(c: &mut Criterion) {
    let data = fixture_bytes();
    let tags = fixture_tags();
    let source = Source::Publisher(motherstream::ids::ConnId(1));
    let span = tags.last().unwrap().timestamp + 33;
    let mut g = c.benchmark_group("whole_path");
    g.throughput(Throughput::Elements(tags.len() as u64));
    g.bench_function("parse_rebase_fanout10", |b| {
        let mut sw = on_air_switcher(source, &tags);
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let mut consumers = Consumers::attach(&mut fanout, 10);
        let mut offset = span;
        b.iter(|| {
            let now = Instant::now();
            let mut i = 0usize;
            for tag in FlvReader::new(black_box(data.clone())).unwrap() {
                let mut tag = tag.unwrap();
                // Continue the timeline across passes, as a live source would.
                tag.timestamp = tag.timestamp.wrapping_add(offset);
                for out in sw.push(source, &tag) {
                    fanout.publish(now, out);
                }
                i += 1;
                if i.is_multiple_of(64) {
                    consumers.drain();
                }
            }
            offset = offset.wrapping_add(span);
            black_box(consumers.drain())
        });
        assert_eq!(fanout.consumer_count(), 10);
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(2)).measurement_time(Duration::from_secs(5));
    targets = flv_parse, rtmp_chunk_decode, switcher_push, fanout_publish, player_send, whole_path
}
criterion_main!(benches);
