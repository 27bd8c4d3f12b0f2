//! The media layer on real encoder output: `tests/fixtures/dj.flv`, made by ffmpeg with
//! `scripts/make-fixtures.sh` (320x180@30 H.264 High, AAC 44.1 kHz stereo, keyframe every 30
//! frames).

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use motherstream::media::codec::{
    AudioCodec, AudioConfig, AudioSpecificConfig, FrameKind, VideoCodec, VideoConfig, VideoPacket, parse_audio_tag,
    parse_video_tag,
};
use motherstream::media::flv::{FlvHeader, FlvReader, FlvStreamReader, FlvTag, TagKind};
use motherstream::media::gop::GopCache;
use motherstream::media::stats::PublisherStats;

fn fixture() -> Bytes {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dj.flv");
    std::fs::read(path).expect("tests/fixtures/dj.flv present").into()
}

fn tags() -> Vec<FlvTag> {
    FlvReader::new(fixture()).expect("valid FLV header").collect::<Result<_, _>>().expect("valid FLV tags")
}

#[test]
fn reader_sees_header_and_all_tags() {
    let reader = FlvReader::new(fixture()).unwrap();
    assert_eq!(reader.header(), FlvHeader { has_audio: true, has_video: true });
    let tags = tags();
    assert!(tags[0].is_metadata());
    let count = |kind| tags.iter().filter(|t| t.kind == kind).count();
    // 300 video frames and 432 AAC frames (as counted by ffprobe), plus one sequence
    // header each and, for video, the end-of-sequence ffmpeg writes on closing.
    assert_eq!(count(TagKind::Video), 302);
    let last_video = tags.iter().rev().find(|t| t.kind == TagKind::Video).unwrap();
    assert_eq!(parse_video_tag(&last_video.payload).unwrap().info.packet, VideoPacket::EndOfSequence);
    assert_eq!(count(TagKind::Audio), 433);
    assert_eq!(count(TagKind::Script), 1);
}

#[test]
fn writer_reproduces_the_file_byte_for_byte() {
    let mut out = BytesMut::new();
    out.extend_from_slice(&FlvHeader { has_audio: true, has_video: true }.encode());
    for tag in tags() {
        out.put(tag.encode().unwrap());
    }
    assert_eq!(out.freeze(), fixture());
}

#[test]
fn stream_reader_agrees_with_file_reader() {
    let data = fixture();
    let mut reader = FlvStreamReader::new();
    let mut streamed = Vec::new();
    for chunk in data.chunks(4096) {
        reader.feed(chunk).unwrap();
        while let Some(tag) = reader.next_tag().unwrap() {
            streamed.push(tag);
        }
    }
    assert_eq!(streamed, tags());
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn codec_headers_describe_the_stream() {
    let tags = tags();
    let video_header =
        tags.iter().find(|t| t.kind == TagKind::Video).and_then(|t| parse_video_tag(&t.payload).ok()).unwrap();
    assert!(video_header.info.is_sequence_header());
    let config = VideoConfig::parse(video_header.info.codec, video_header.body).unwrap();
    assert_eq!(config.codec, VideoCodec::Avc);
    assert_eq!(config.profile_name(), Some("High"));
    assert_eq!((config.width, config.height), (Some(320), Some(180)));

    let audio_header =
        tags.iter().find(|t| t.kind == TagKind::Audio).and_then(|t| parse_audio_tag(&t.payload).ok()).unwrap();
    assert!(audio_header.info.is_sequence_header());
    let asc = AudioSpecificConfig::parse(audio_header.body).unwrap();
    assert_eq!((asc.object_type, asc.sample_rate, asc.channels), (2, 44100, Some(2)));
    assert_eq!(AudioConfig::parse(AudioCodec::Aac, audio_header.body).unwrap().sample_rate, 44100);
}

#[test]
fn keyframes_every_thirty_frames() {
    let mut keyframe_indices = Vec::new();
    let mut keyframe_timestamps = Vec::new();
    let mut frame = 0;
    for tag in tags().iter().filter(|t| t.kind == TagKind::Video) {
        let info = parse_video_tag(&tag.payload).unwrap().info;
        if info.packet != VideoPacket::Coded {
            continue;
        }
        assert_ne!(info.frame, FrameKind::Command);
        if info.is_keyframe() {
            keyframe_indices.push(frame);
            keyframe_timestamps.push(tag.timestamp);
        }
        frame += 1;
    }
    assert_eq!(frame, 300);
    assert_eq!(keyframe_indices, (0..300).step_by(30).collect::<Vec<_>>());
    let intervals: Vec<u32> = keyframe_timestamps.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(intervals, [1000; 9]);
}

#[test]
fn gop_cache_startup_begins_with_headers_then_a_keyframe() {
    let tags = tags();
    let mut cache = GopCache::default();
    for tag in &tags {
        cache.push(tag.clone());
    }
    let startup = cache.startup_tags();
    assert!(startup[0].is_metadata());
    let video = parse_video_tag(&startup[1].payload).unwrap().info;
    assert!(startup[1].kind == TagKind::Video && video.is_sequence_header());
    let audio = parse_audio_tag(&startup[2].payload).unwrap().info;
    assert!(startup[2].kind == TagKind::Audio && audio.is_sequence_header());
    let first = parse_video_tag(&startup[3].payload).unwrap().info;
    assert!(startup[3].kind == TagKind::Video && first.is_keyframe());
    assert_eq!(Some(startup[3].timestamp), cache.last_keyframe_timestamp());

    // The rest is exactly the tail of the file from the last keyframe.
    let from = tags
        .iter()
        .rposition(|t| t.kind == TagKind::Video && parse_video_tag(&t.payload).is_ok_and(|v| v.info.is_keyframe()))
        .unwrap();
    assert_eq!(&startup[3..], &tags[from..]);
    // One GOP: 30 coded frames (then the end-of-sequence marker).
    let gop_frames = startup[3..]
        .iter()
        .filter(|t| t.kind == TagKind::Video)
        .filter(|t| parse_video_tag(&t.payload).is_ok_and(|v| v.info.packet == VideoPacket::Coded))
        .count();
    assert_eq!(gop_frames, 30);
}

#[test]
fn stats_over_the_fixture() {
    let t0 = Instant::now();
    let mut stats = PublisherStats::new(t0);
    let mut now = t0;
    for tag in tags() {
        // Arrive in real time, as from a live encoder.
        now = t0 + Duration::from_millis(u64::from(tag.timestamp));
        stats.on_tag(now, &tag);
    }
    let snap = stats.snapshot(now);
    assert_eq!(snap.video_frames, 300);
    assert_eq!(snap.audio_frames, 432);
    assert_eq!(snap.keyframes, 10);
    assert_eq!(snap.keyframe_interval_ms, Some(1000));
    let fps = snap.video_fps.unwrap();
    assert!((fps - 30.0).abs() < 0.5, "fps {fps}");
    let video = snap.video.unwrap();
    assert_eq!((video.profile.as_deref(), video.width, video.height), (Some("High"), Some(320), Some(180)));
    let audio = snap.audio.unwrap();
    assert_eq!((audio.codec, audio.sample_rate, audio.channels), (AudioCodec::Aac, Some(44100), Some(2)));
    // The fixture is encoded at about 150 kbit/s video + 64 kbit/s audio.
    assert!((150_000..300_000).contains(&snap.bitrate_bps), "bitrate {}", snap.bitrate_bps);
    assert_eq!(snap.timestamp_regressions, 0);
}
