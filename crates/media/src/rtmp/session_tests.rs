//! End-to-end tests: a `ClientSession` wired to a `ServerSession` in memory,
//! plus fuzzing of the server with random and mutated input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::amf0::Amf0Value;
use super::chunk::{ChunkDecoder, ChunkEncoder};
use super::client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
use super::handshake::{ClientHandshake, HandshakeStatus};
use super::message::{Command, Message, RtmpMessage, UserControl, encode_values};
use super::server::{MAX_MESSAGE_BEFORE_CONNECT, PublishStopKind, ServerEvent, ServerSession};
use super::{MediaKind, RtmpError, SessionLimits};

fn to_server(client: &mut ClientSession, server: &mut ServerSession) -> Vec<ServerEvent> {
    let mut events = Vec::new();
    for bytes in client.take_output() {
        events.extend(server.handle_input(&bytes).unwrap());
    }
    events
}

fn to_client(server: &mut ServerSession, client: &mut ClientSession) -> Vec<ClientEvent> {
    let mut events = Vec::new();
    for bytes in server.take_output() {
        events.extend(client.handle_input(&bytes).unwrap());
    }
    events
}

fn client(mode: ClientMode) -> ClientSession {
    ClientSession::new(ClientConfig::new("live", "rtmp://localhost/live", mode))
}

fn publisher(key: &str) -> ClientSession {
    client(ClientMode::Publish { stream_key: key.into() })
}

/// Handshake + connect (accepted); returns the server.
fn connected(client: &mut ClientSession) -> ServerSession {
    let mut server = ServerSession::new(SessionLimits::default());
    assert!(to_server(client, &mut server).is_empty());
    assert!(to_client(&mut server, client).is_empty());
    assert_eq!(
        to_server(client, &mut server),
        vec![ServerEvent::ConnectRequested { app: "live".into(), tc_url: Some("rtmp://localhost/live".into()) }]
    );
    server.accept_connect().unwrap();
    assert_eq!(to_client(&mut server, client), vec![ClientEvent::Connected]);
    server
}

/// Runs createStream and publish up to `PublishRequested`.
fn publish_requested(client: &mut ClientSession, server: &mut ServerSession) -> Vec<ServerEvent> {
    // releaseStream, FCPublish, createStream: answered by the session itself.
    assert!(to_server(client, server).is_empty());
    assert!(to_client(server, client).is_empty());
    to_server(client, server)
}

fn metadata_body() -> Bytes {
    encode_values(&[
        "onMetaData".into(),
        Amf0Value::EcmaArray(vec![
            ("width".into(), 1920.0.into()),
            ("height".into(), 1080.0.into()),
            ("encoder".into(), "obs-output module".into()),
        ]),
    ])
}

fn payload(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[test]
fn publish_session_end_to_end() {
    let mut client = publisher("dj-key?token=1");
    let mut server = connected(&mut client);
    assert_eq!(
        publish_requested(&mut client, &mut server),
        vec![ServerEvent::PublishRequested { stream_id: 1, stream_key: "dj-key?token=1".into() }]
    );
    assert!(matches!(client.send_media(MediaKind::Video, 0, payload(10, 0)), Err(RtmpError::InvalidState(_))));
    server.accept_publish(1).unwrap();
    assert_eq!(to_client(&mut server, &mut client), vec![ClientEvent::PublishStarted { stream_id: 1 }]);

    let media = [
        (MediaKind::Video, 0, payload(150_000, 1)),
        (MediaKind::Audio, 0, payload(7, 2)),
        (MediaKind::Audio, 23, payload(380, 3)),
        (MediaKind::Video, 33, payload(9_000, 4)),
        (MediaKind::Video, 0x00FF_FFFF, payload(5_000, 5)),
        (MediaKind::Video, 0x0100_0020, payload(0, 6)),
        (MediaKind::Audio, 0x0100_0021, payload(380, 7)),
    ];
    client.send_metadata(metadata_body()).unwrap();
    let mut expected = vec![ServerEvent::Metadata { stream_id: 1, timestamp: 0, payload: metadata_body() }];
    for (kind, timestamp, payload) in &media {
        client.send_media(*kind, *timestamp, payload.clone()).unwrap();
        expected.push(ServerEvent::Media {
            stream_id: 1,
            kind: *kind,
            timestamp: *timestamp,
            payload: payload.clone(),
        });
    }
    assert_eq!(to_server(&mut client, &mut server), expected);

    client.stop_publishing().unwrap();
    assert_eq!(
        to_server(&mut client, &mut server),
        vec![ServerEvent::PublishStopped { stream_id: 1, how: PublishStopKind::FcUnpublish }]
    );
    assert!(client.send_media(MediaKind::Audio, 99, payload(3, 0)).is_err());
}

#[test]
fn rejected_publish_reaches_the_client() {
    let mut client = publisher("wrong");
    let mut server = connected(&mut client);
    assert_eq!(publish_requested(&mut client, &mut server).len(), 1);
    server.reject_publish(1, "NetStream.Publish.BadName", "Unknown stream key.").unwrap();
    assert!(server.accept_publish(1).is_err(), "no longer pending");
    assert_eq!(
        to_client(&mut server, &mut client),
        vec![ClientEvent::Rejected {
            code: "NetStream.Publish.BadName".into(),
            description: "Unknown stream key.".into(),
        }]
    );
}

#[test]
fn rejected_connect_reaches_the_client() {
    let mut client = publisher("k");
    let mut server = ServerSession::new(SessionLimits::default());
    to_server(&mut client, &mut server);
    to_client(&mut server, &mut client);
    assert_eq!(to_server(&mut client, &mut server).len(), 1);
    server.reject_connect("Go away.").unwrap();
    assert!(server.accept_connect().is_err());
    assert_eq!(
        to_client(&mut server, &mut client),
        vec![ClientEvent::Rejected { code: "NetConnection.Connect.Rejected".into(), description: "Go away.".into() }]
    );
}

/// Encodes a command as a single fmt-0 chunk on a csid the client does not
/// use, so it can be injected next to a `ClientSession`'s own output.
fn raw_command(stream_id: u32, name: &str, args: Vec<Amf0Value>) -> Bytes {
    let mut encoder = ChunkEncoder::new();
    encoder.set_chunk_size(4096);
    let command = Command::new(name, 0.0, Amf0Value::Null, args);
    let mut out = BytesMut::new();
    encoder.encode(10, &RtmpMessage::command(stream_id, &command), &mut out).unwrap();
    out.freeze()
}

#[test]
fn each_publish_stops_exactly_once() {
    for (commands, how) in [
        (
            vec![raw_command(1, "closeStream", vec![]), raw_command(0, "deleteStream", vec![1.0.into()])],
            PublishStopKind::CloseStream,
        ),
        (
            vec![raw_command(0, "deleteStream", vec![1.0.into()]), raw_command(0, "FCUnpublish", vec!["k".into()])],
            PublishStopKind::DeleteStream,
        ),
    ] {
        let mut client = publisher("k");
        let mut server = connected(&mut client);
        assert_eq!(publish_requested(&mut client, &mut server).len(), 1);
        server.accept_publish(1).unwrap();
        let mut events = Vec::new();
        for bytes in commands {
            events.extend(server.handle_input(&bytes).unwrap());
        }
        assert_eq!(events, vec![ServerEvent::PublishStopped { stream_id: 1, how }]);
    }
}

#[test]
fn unknown_and_harmless_commands_are_not_errors() {
    let mut client = publisher("k");
    let mut server = connected(&mut client);
    for name in ["getStreamLength", "_checkbw", "someVendorThing", "FCSubscribe"] {
        let events = server.handle_input(&raw_command(0, name, vec!["x".into()])).unwrap();
        assert!(events.is_empty());
    }
    // A publish on a stream that was never created is refused, not fatal.
    assert!(server.handle_input(&raw_command(7, "publish", vec!["k".into()])).unwrap().is_empty());
}

fn player(server_stream: &str) -> (ClientSession, ServerSession) {
    let mut client = client(ClientMode::Play { stream_name: server_stream.into() });
    let mut server = connected(&mut client);
    assert!(to_server(&mut client, &mut server).is_empty()); // createStream
    assert!(to_client(&mut server, &mut client).is_empty());
    assert_eq!(
        to_server(&mut client, &mut server),
        vec![ServerEvent::PlayRequested { stream_id: 1, stream_name: server_stream.into() }]
    );
    server.accept_play(1).unwrap();
    let events = to_client(&mut server, &mut client);
    assert_eq!(events.last(), Some(&ClientEvent::PlayStarted { stream_id: 1 }));
    assert!(matches!(&events[0], ClientEvent::Status { code, .. } if code == "NetStream.Play.Reset"));
    (client, server)
}

#[test]
fn play_session_receives_media_including_shared_bytes() {
    let (mut client_a, mut server_a) = player("dj");
    let (mut client_b, mut server_b) = player("dj");

    let shared_video = payload(20_000, 9);
    let encoded = ServerSession::encode_media(1, MediaKind::Video, 40, shared_video.clone()).unwrap();
    for (server, client) in [(&mut server_a, &mut client_a), (&mut server_b, &mut client_b)] {
        server.send_metadata(1, 0, metadata_body()).unwrap();
        server.send_media(1, MediaKind::Video, 0, payload(5_000, 1)).unwrap();
        server.send_encoded(&encoded).unwrap();
        // A session-encoded message on the same csid after the shared bytes.
        server.send_media(1, MediaKind::Video, 80, payload(700, 2)).unwrap();
        server.send_media(1, MediaKind::Audio, 81, payload(300, 3)).unwrap();

        let output = server.take_output();
        assert!(
            output.iter().any(|b| b.as_ptr() == encoded.bytes().as_ptr()),
            "shared bytes are queued without copying"
        );
        let mut events = Vec::new();
        for bytes in output {
            events.extend(client.handle_input(&bytes).unwrap());
        }
        assert_eq!(
            events,
            vec![
                ClientEvent::Metadata { timestamp: 0, payload: metadata_body() },
                ClientEvent::Media { kind: MediaKind::Video, timestamp: 0, payload: payload(5_000, 1) },
                ClientEvent::Media { kind: MediaKind::Video, timestamp: 40, payload: shared_video.clone() },
                ClientEvent::Media { kind: MediaKind::Video, timestamp: 80, payload: payload(700, 2) },
                ClientEvent::Media { kind: MediaKind::Audio, timestamp: 81, payload: payload(300, 3) },
            ]
        );
    }

    client_a.stop_playing().unwrap();
    assert_eq!(to_server(&mut client_a, &mut server_a), vec![ServerEvent::PlayStopped { stream_id: 1 }]);
    assert!(server_a.send_media(1, MediaKind::Audio, 0, payload(1, 0)).is_err());
}

#[test]
fn rejected_play_and_unaccepted_streams() {
    let mut client = client(ClientMode::Play { stream_name: "nobody".into() });
    let mut server = connected(&mut client);
    to_server(&mut client, &mut server);
    to_client(&mut server, &mut client);
    assert_eq!(to_server(&mut client, &mut server).len(), 1);
    assert!(server.send_media(1, MediaKind::Video, 0, payload(1, 0)).is_err());
    server.reject_play(1, "No such stream.").unwrap();
    assert_eq!(
        to_client(&mut server, &mut client),
        vec![ClientEvent::Rejected {
            code: "NetStream.Play.StreamNotFound".into(),
            description: "No such stream.".into(),
        }]
    );
}

#[test]
fn encoded_bytes_need_the_session_chunk_size() {
    let mut server = ServerSession::new(SessionLimits::default());
    let encoded = ServerSession::encode_media(1, MediaKind::Audio, 0, payload(10, 0)).unwrap();
    assert!(matches!(server.send_encoded(&encoded), Err(RtmpError::InvalidState(_))));
}

/// A hand-driven peer, for checking the server's flow control replies.
struct RawPeer {
    encoder: ChunkEncoder,
    decoder: ChunkDecoder,
}

impl RawPeer {
    fn connect(server: &mut ServerSession) -> Self {
        let mut handshake = ClientHandshake::new();
        server.handle_input(&handshake.take_output().unwrap()).unwrap();
        let s0s1s2: Vec<u8> = server.take_output().concat();
        assert!(matches!(handshake.handle_input(&s0s1s2).unwrap(), HandshakeStatus::Done { .. }));
        server.handle_input(&handshake.take_output().unwrap()).unwrap();
        Self { encoder: ChunkEncoder::new(), decoder: ChunkDecoder::new(SessionLimits::default()) }
    }

    fn send(&mut self, server: &mut ServerSession, csid: u32, msg: RtmpMessage) -> Vec<ServerEvent> {
        let mut out = BytesMut::new();
        self.encoder.encode(csid, &msg, &mut out).unwrap();
        server.handle_input(&out).unwrap()
    }

    fn received(&mut self, server: &mut ServerSession) -> Vec<Message> {
        self.decoder.push(&server.take_output().concat());
        let mut messages = Vec::new();
        while let Some(msg) = self.decoder.next_message().unwrap() {
            messages.push(Message::decode(&msg).unwrap());
        }
        messages
    }
}

#[test]
fn server_acknowledges_windows_and_answers_pings() {
    let mut server = ServerSession::new(SessionLimits::default());
    let mut peer = RawPeer::connect(&mut server);
    peer.send(&mut server, 2, RtmpMessage::window_ack_size(1000));
    peer.send(&mut server, 2, RtmpMessage::user_control(UserControl::PingRequest(1234)));
    assert_eq!(peer.received(&mut server), vec![Message::UserControl(UserControl::PingResponse(1234))]);
    // Unpublished media is dropped but still counts towards the window:
    // ten ~110-byte messages cross 1000 bytes once.
    for i in 0..10 {
        let events = peer.send(&mut server, 6, RtmpMessage::media(MediaKind::Audio, 1, i, payload(100, 0)));
        assert!(events.is_empty());
    }
    let acks: Vec<_> =
        peer.received(&mut server).into_iter().filter(|m| matches!(m, Message::Acknowledgement(_))).collect();
    assert_eq!(acks.len(), 1);
    let Message::Acknowledgement(sequence) = acks[0] else { unreachable!() };
    assert!(sequence >= 1000);
}

/// Client-to-server bytes of a complete publish session, recorded once.
fn publish_transcript() -> Vec<Bytes> {
    let mut client = publisher("k");
    let mut server = ServerSession::new(SessionLimits::default());
    let mut transcript = Vec::new();
    let mut pump = |client: &mut ClientSession, server: &mut ServerSession| {
        for bytes in client.take_output() {
            transcript.push(bytes.clone());
            for event in server.handle_input(&bytes).unwrap() {
                match event {
                    ServerEvent::ConnectRequested { .. } => server.accept_connect().unwrap(),
                    ServerEvent::PublishRequested { stream_id, .. } => {
                        server.accept_publish(stream_id).unwrap();
                    }
                    _ => {}
                }
            }
        }
        for bytes in server.take_output() {
            client.handle_input(&bytes).unwrap();
        }
    };
    for _ in 0..5 {
        pump(&mut client, &mut server);
    }
    client.send_metadata(metadata_body()).unwrap();
    for i in 0..6u32 {
        client.send_media(MediaKind::Video, i * 33, payload(3_000 + i as usize * 2_000, 1)).unwrap();
        client.send_media(MediaKind::Audio, i * 23, payload(200, 2)).unwrap();
    }
    client.stop_publishing().unwrap();
    pump(&mut client, &mut server);
    transcript
}

const FUZZ_LIMITS: SessionLimits =
    SessionLimits { max_message_size: 16 * 1024, max_chunk_streams: 8, max_input_chunk_size: 0x7FFF_FFFF };

/// Feeds `input` in `slices`-sized pieces, answering every request like a
/// permissive application would, until the first error.
fn feed_server(input: &[u8], slices: &[usize]) -> Result<(), RtmpError> {
    let mut server = ServerSession::new(FUZZ_LIMITS);
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = slices[i % slices.len()].clamp(1, rest.len());
        i += 1;
        let events = server.handle_input(&rest[..n])?;
        rest = &rest[n..];
        for event in events {
            // Answers may legitimately fail (e.g. the stream was deleted).
            let _ = match event {
                ServerEvent::ConnectRequested { .. } => server.accept_connect(),
                ServerEvent::PublishRequested { stream_id, .. } => server.accept_publish(stream_id),
                ServerEvent::PlayRequested { stream_id, .. } => server.accept_play(stream_id),
                _ => Ok(()),
            };
        }
        let bound = FUZZ_LIMITS.max_chunk_streams * FUZZ_LIMITS.max_message_size + 18;
        assert!(server.buffered_input() <= bound);
        server.take_output();
    }
    Ok(())
}

#[test]
fn unmodified_transcript_is_accepted() {
    let transcript: Vec<u8> = publish_transcript().concat();
    feed_server(&transcript, &[1, 7, 100, 5000]).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..8192),
        after_handshake in any::<bool>(),
        slices in prop::collection::vec(1usize..3000, 1..8),
    ) {
        let mut input = Vec::new();
        if after_handshake {
            input.push(3);
            input.resize(1 + 2 * 1536, 0);
        }
        input.extend_from_slice(&bytes);
        let _ = feed_server(&input, &slices);
    }

    #[test]
    fn mutated_sessions_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
        slices in prop::collection::vec(1usize..3000, 1..8),
    ) {
        let mut input: Vec<u8> = publish_transcript().concat();
        // Mutate past the handshake, where the interesting parsing happens.
        let body = 1 + 2 * 1536;
        for (at, value) in flips {
            let i = body + at.index(input.len() - body);
            input[i] = value;
        }
        if truncate {
            input.truncate(body + cut.index(input.len() - body));
        }
        let _ = feed_server(&input, &slices);
    }
}

#[test]
fn before_connect_is_accepted_messages_stay_small() {
    let big = RtmpMessage::media(MediaKind::Video, 1, 0, payload(MAX_MESSAGE_BEFORE_CONNECT + 1, 0));
    let encoded = |chunk_size: u32| {
        let mut encoder = ChunkEncoder::new();
        encoder.set_chunk_size(chunk_size);
        let mut wire = BytesMut::new();
        encoder.encode(6, &big, &mut wire).unwrap();
        wire
    };

    let mut server = ServerSession::new(SessionLimits::default());
    RawPeer::connect(&mut server);
    assert!(matches!(server.handle_input(&encoded(128)), Err(RtmpError::MessageTooLarge { .. })));

    // After connect, the session's own limit applies (the client has set 4096-byte chunks).
    let mut client = publisher("key");
    let mut server = connected(&mut client);
    server.handle_input(&encoded(4096)).unwrap();
}
