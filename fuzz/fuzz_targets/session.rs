//! The server session after the handshake: commands (connect, createStream, publish, play,
//! FCPublish, FCUnpublish, deleteStream, ...) as the ingest drives them, with every request
//! answered and the media of an accepted publish going where the ingest sends it (stats and
//! GOP cache). The first byte: low 7 bits the piece size the input arrives in (0 = all at
//! once), the top bit refuses every request instead of accepting it. The rest is the chunk
//! stream the client sends after its handshake.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use motherstream_media::media::gop::GopCache;
use motherstream_media::media::stats::PublisherStats;
use motherstream_media::media::{FlvTag, TagKind};
use motherstream_media::rtmp::handshake::PACKET_SIZE;
use motherstream_media::rtmp::{MediaKind, ServerEvent, ServerSession, SessionLimits};

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else { return };
    let refuse = first & 0x80 != 0;
    let piece = match usize::from(first & 0x7F) {
        0 => input.len().max(1),
        n => n,
    };
    let limits = SessionLimits { max_message_size: 256 * 1024, ..SessionLimits::default() };
    let mut session = ServerSession::new(limits);
    let mut handshake = vec![0u8; 1 + 2 * PACKET_SIZE];
    handshake[0] = 3;
    session.handle_input(&handshake).expect("a well-formed handshake");

    let now = Instant::now();
    let mut stats = PublisherStats::new(now);
    let mut gop = GopCache::default();
    for part in input.chunks(piece) {
        let Ok(events) = session.handle_input(part) else { return };
        for event in events {
            let answered = match event {
                ServerEvent::ConnectRequested { .. } if refuse => session.reject_connect("refused"),
                ServerEvent::ConnectRequested { .. } => session.accept_connect(),
                ServerEvent::PublishRequested { stream_id, .. } if refuse => {
                    session.reject_publish(stream_id, "NetStream.Publish.BadName", "refused")
                }
                ServerEvent::PublishRequested { stream_id, .. } => session.accept_publish(stream_id),
                ServerEvent::PlayRequested { stream_id, .. } if refuse => session.reject_play(stream_id, "refused"),
                ServerEvent::PlayRequested { stream_id, .. } => session.accept_play(stream_id),
                ServerEvent::Media { kind, timestamp, payload, .. } => {
                    let kind = match kind {
                        MediaKind::Audio => TagKind::Audio,
                        MediaKind::Video => TagKind::Video,
                    };
                    let tag = FlvTag::new(kind, timestamp, payload);
                    stats.on_tag(now, &tag);
                    gop.push(tag);
                    Ok(())
                }
                ServerEvent::Metadata { timestamp, payload, .. } => {
                    let tag = FlvTag::new(TagKind::Script, timestamp, payload);
                    stats.on_tag(now, &tag);
                    gop.push(tag);
                    Ok(())
                }
                ServerEvent::PublishStopped { .. } | ServerEvent::PlayStopped { .. } => Ok(()),
            };
            // A request can be stale by the time it is answered (a publish stopped in the
            // same input): the ingest then closes the connection, and so does this.
            if answered.is_err() {
                return;
            }
        }
        session.take_output();
    }
    let _ = stats.snapshot(now);
    let _ = gop.startup_tags();
});
