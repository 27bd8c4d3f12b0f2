//! Server side of an RTMP connection: publishers (OBS, ffmpeg) push to it and
//! players pull from it.
//!
//! The session answers the protocol plumbing itself (handshake, chunk sizes,
//! acknowledgements, pings, `createStream`, `releaseStream`, ...) and turns
//! the decisions that belong to the application into [`ServerEvent`]s, which
//! the caller answers with `accept_*` / `reject_*`:
//!
//! ```text
//! ConnectRequested  -> accept_connect()          | reject_connect(description)
//! PublishRequested  -> accept_publish(stream_id) | reject_publish(stream_id, code, description)
//! PlayRequested     -> accept_play(stream_id)    | reject_play(stream_id, description)
//! ```
//!
//! Audio, video and metadata are only reported for streams whose publish was
//! accepted. Encoders wait for `NetStream.Publish.Start` before sending media,
//! so anything earlier comes from a broken or hostile client and is dropped
//! rather than failing the connection.

use std::collections::BTreeMap;

use bytes::Bytes;
use tracing::{debug, trace, warn};

use super::amf0::Amf0Value;
use super::chunk::{EncodedMessage, encode_standalone};
use super::connection::{Connection, OUTPUT_CHUNK_SIZE, Received, WINDOW_ACK_SIZE};
use super::handshake::{HandshakeStatus, ServerHandshake};
use super::message::{Command, Message, RtmpMessage, UserControl, as_stream_id, extract_metadata, status_info};
use super::{MediaKind, RtmpError, SessionLimits};

/// Chunk streams for data sent to players, as nginx-rtmp uses them.
const DATA_CSID: u32 = 5;
const AUDIO_CSID: u32 = 6;
const VIDEO_CSID: u32 = 7;

/// Largest message accepted before `connect` is accepted: `connect` itself is a few hundred
/// bytes, and until then a peer is anyone (32 chunk streams × this is what it can make us
/// hold), not a DJ sending keyframes.
pub(crate) const MAX_MESSAGE_BEFORE_CONNECT: usize = 16 * 1024;

/// Most message streams one connection may hold at once. OBS and ffmpeg
/// create one; the cap stops a client from growing our state without bound.
const MAX_STREAMS: usize = 8;

/// How a publisher ended its publish cleanly (as opposed to dropping the
/// connection, which the caller sees as EOF).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishStopKind {
    /// `FCUnpublish` (OBS and ffmpeg send it first).
    FcUnpublish,
    /// `deleteStream`.
    DeleteStream,
    /// `closeStream`.
    CloseStream,
}

/// Something the caller has to know about or decide on.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerEvent {
    /// The client sent `connect`; answer with `accept_connect` or `reject_connect`.
    ConnectRequested {
        /// Application name, e.g. `live` (raw, may end with `/`).
        app: String,
        /// The URL the client connected to, if it said.
        tc_url: Option<String>,
    },
    /// The client wants to publish; answer with `accept_publish` or `reject_publish`.
    PublishRequested {
        /// Message stream the publish is on.
        stream_id: u32,
        /// The raw publishing name; may carry a `?query` the caller strips.
        stream_key: String,
    },
    /// A publish (pending or accepted) ended cleanly. Emitted once per publish.
    PublishStopped {
        /// Message stream that stopped.
        stream_id: u32,
        /// Which command ended it.
        how: PublishStopKind,
    },
    /// The client wants to play; answer with `accept_play` or `reject_play`.
    PlayRequested {
        /// Message stream the play is on.
        stream_id: u32,
        /// Requested stream name.
        stream_name: String,
    },
    /// A player closed or deleted its stream.
    PlayStopped {
        /// Message stream that stopped.
        stream_id: u32,
    },
    /// Audio or video from an accepted publisher.
    Media {
        /// Publishing message stream.
        stream_id: u32,
        /// Audio or video.
        kind: MediaKind,
        /// Message timestamp (ms).
        timestamp: u32,
        /// FLV tag body, shared with the receive buffer.
        payload: Bytes,
    },
    /// Stream metadata from an accepted publisher.
    Metadata {
        /// Publishing message stream.
        stream_id: u32,
        /// Message timestamp (ms).
        timestamp: u32,
        /// AMF0 `"onMetaData", <object>`: an FLV script tag body.
        payload: Bytes,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ConnectState {
    AwaitingConnect,
    Pending { transaction_id: f64, object_encoding: f64 },
    Accepted,
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum StreamState {
    Idle,
    PublishPending { key: String },
    Publishing { key: String },
    PlayPending,
    Playing,
}

/// A server-side RTMP connection state machine.
#[derive(Debug)]
pub struct ServerSession {
    handshake: Option<ServerHandshake>,
    conn: Connection,
    connect: ConnectState,
    streams: BTreeMap<u32, StreamState>,
    next_stream_id: u32,
    /// The limit that applies once `connect` is accepted.
    max_message_size: usize,
}

impl ServerSession {
    /// A session waiting for the client's handshake.
    pub fn new(limits: SessionLimits) -> Self {
        let before_connect = limits.max_message_size.min(MAX_MESSAGE_BEFORE_CONNECT);
        Self {
            handshake: Some(ServerHandshake::new()),
            conn: Connection::new(SessionLimits { max_message_size: before_connect, ..limits }),
            max_message_size: limits.max_message_size,
            connect: ConnectState::AwaitingConnect,
            streams: BTreeMap::new(),
            next_stream_id: 1,
        }
    }

    /// Processes bytes read from the client. Only the unparsed part of a
    /// chunk header and partially assembled messages (bounded by
    /// [`SessionLimits`]) are kept between calls.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<Vec<ServerEvent>, RtmpError> {
        let mut events = Vec::new();
        match self.handshake.as_mut() {
            Some(handshake) => {
                let status = handshake.handle_input(input)?;
                if let Some(out) = handshake.take_output() {
                    self.conn.send_raw(out);
                }
                let HandshakeStatus::Done { leftover } = status else {
                    return Ok(events);
                };
                self.handshake = None;
                self.conn.receive(&leftover);
            }
            None => self.conn.receive(input),
        }
        while let Some(received) = self.conn.next_message()? {
            self.handle_message(received, &mut events)?;
        }
        Ok(events)
    }

    /// Everything to write to the client now, in order.
    pub fn take_output(&mut self) -> Vec<Bytes> {
        self.conn.take_output()
    }

    /// Bytes queued for the client and not yet taken; use it to detect
    /// players that cannot keep up.
    pub fn pending_output_bytes(&self) -> usize {
        self.conn.pending_output()
    }

    /// Accepts the pending `connect`: sends Window Ack Size, Set Peer
    /// Bandwidth, Set Chunk Size 4096 and `NetConnection.Connect.Success`.
    pub fn accept_connect(&mut self) -> Result<(), RtmpError> {
        let ConnectState::Pending { transaction_id, object_encoding } = self.connect else {
            return Err(RtmpError::InvalidState("no connect request is pending"));
        };
        self.conn.send_control(RtmpMessage::window_ack_size(WINDOW_ACK_SIZE));
        // Limit type 2 = dynamic.
        self.conn.send_control(RtmpMessage::set_peer_bandwidth(WINDOW_ACK_SIZE, 2));
        self.conn.set_output_chunk_size(OUTPUT_CHUNK_SIZE);
        let properties = Amf0Value::object([("fmsVer", "FMS/3,0,1,123".into()), ("capabilities", 31.0.into())]);
        let mut info = status_info("status", "NetConnection.Connect.Success", "Connection succeeded.");
        if let Amf0Value::Object(fields) = &mut info {
            fields.push(("objectEncoding".into(), object_encoding.into()));
        }
        self.conn.send_command(0, &Command::new("_result", transaction_id, properties, vec![info]));
        self.conn.set_max_message_size(self.max_message_size);
        self.connect = ConnectState::Accepted;
        Ok(())
    }

    /// Rejects the pending `connect` with `NetConnection.Connect.Rejected`.
    /// Flush the output, then close the connection.
    pub fn reject_connect(&mut self, description: &str) -> Result<(), RtmpError> {
        let ConnectState::Pending { transaction_id, .. } = self.connect else {
            return Err(RtmpError::InvalidState("no connect request is pending"));
        };
        let info = status_info("error", "NetConnection.Connect.Rejected", description);
        self.conn.send_command(0, &Command::new("_error", transaction_id, Amf0Value::Null, vec![info]));
        self.connect = ConnectState::Rejected;
        Ok(())
    }

    /// Accepts a pending publish: Stream Begin + `NetStream.Publish.Start`.
    pub fn accept_publish(&mut self, stream_id: u32) -> Result<(), RtmpError> {
        match self.streams.get_mut(&stream_id) {
            Some(state @ StreamState::PublishPending { .. }) => {
                if let StreamState::PublishPending { key } = state {
                    *state = StreamState::Publishing { key: std::mem::take(key) };
                }
            }
            _ => {
                return Err(RtmpError::InvalidState("no publish request is pending on this stream"));
            }
        }
        self.conn.send_control(RtmpMessage::user_control(UserControl::StreamBegin(stream_id)));
        self.send_status(stream_id, "status", "NetStream.Publish.Start", "Publishing started.");
        Ok(())
    }

    /// Rejects a pending publish with an error `onStatus`, e.g. code
    /// `NetStream.Publish.BadName` or `NetStream.Publish.Denied`.
    pub fn reject_publish(&mut self, stream_id: u32, code: &str, description: &str) -> Result<(), RtmpError> {
        match self.streams.get_mut(&stream_id) {
            Some(state @ StreamState::PublishPending { .. }) => *state = StreamState::Idle,
            _ => {
                return Err(RtmpError::InvalidState("no publish request is pending on this stream"));
            }
        }
        self.send_status(stream_id, "error", code, description);
        Ok(())
    }

    /// Accepts a pending play: Stream Begin, `NetStream.Play.Reset`,
    /// `NetStream.Play.Start` and `|RtmpSampleAccess`.
    pub fn accept_play(&mut self, stream_id: u32) -> Result<(), RtmpError> {
        match self.streams.get_mut(&stream_id) {
            Some(state @ StreamState::PlayPending) => *state = StreamState::Playing,
            _ => {
                return Err(RtmpError::InvalidState("no play request is pending on this stream"));
            }
        }
        self.conn.send_control(RtmpMessage::user_control(UserControl::StreamBegin(stream_id)));
        self.send_status(stream_id, "status", "NetStream.Play.Reset", "Playing and resetting stream.");
        self.send_status(stream_id, "status", "NetStream.Play.Start", "Started playing stream.");
        let access = super::message::encode_values(&["|RtmpSampleAccess".into(), true.into(), true.into()]);
        self.conn.send(DATA_CSID, &RtmpMessage::data(stream_id, 0, access))?;
        Ok(())
    }

    /// Rejects a pending play with `NetStream.Play.StreamNotFound`.
    pub fn reject_play(&mut self, stream_id: u32, description: &str) -> Result<(), RtmpError> {
        match self.streams.get_mut(&stream_id) {
            Some(state @ StreamState::PlayPending) => *state = StreamState::Idle,
            _ => {
                return Err(RtmpError::InvalidState("no play request is pending on this stream"));
            }
        }
        self.send_status(stream_id, "error", "NetStream.Play.StreamNotFound", description);
        Ok(())
    }

    /// Sends audio or video to a player. The payload is queued without
    /// copying.
    pub fn send_media(
        &mut self,
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<(), RtmpError> {
        self.require_playing(stream_id)?;
        let msg = RtmpMessage::media(kind, stream_id, timestamp, payload);
        self.conn.send(media_csid(kind), &msg)
    }

    /// Sends metadata (`"onMetaData", <object>`, as in
    /// [`ServerEvent::Metadata`]) to a player.
    pub fn send_metadata(&mut self, stream_id: u32, timestamp: u32, payload: Bytes) -> Result<(), RtmpError> {
        self.require_playing(stream_id)?;
        self.conn.send(DATA_CSID, &RtmpMessage::data(stream_id, timestamp, payload))
    }

    /// Encodes a media message once for any number of players (see
    /// [`Self::send_encoded`]). Every player must be on `stream_id`; this
    /// server hands out stream id 1 for a connection's first stream, so in
    /// practice all players share it.
    pub fn encode_media(
        stream_id: u32,
        kind: MediaKind,
        timestamp: u32,
        payload: Bytes,
    ) -> Result<EncodedMessage, RtmpError> {
        let msg = RtmpMessage::media(kind, stream_id, timestamp, payload);
        encode_standalone(media_csid(kind), &msg, OUTPUT_CHUNK_SIZE)
    }

    /// Queues a pre-encoded message (from [`Self::encode_media`] or
    /// [`encode_standalone`] with chunk size 4096) by reference. Fails before
    /// the connect was accepted, when the chunk sizes differ.
    pub fn send_encoded(&mut self, encoded: &EncodedMessage) -> Result<(), RtmpError> {
        self.conn.send_encoded(encoded)
    }

    fn require_playing(&self, stream_id: u32) -> Result<(), RtmpError> {
        match self.streams.get(&stream_id) {
            Some(StreamState::Playing) => Ok(()),
            _ => Err(RtmpError::InvalidState("stream is not playing")),
        }
    }

    fn send_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        let info = status_info(level, code, description);
        self.conn.send_command(stream_id, &Command::new("onStatus", 0.0, Amf0Value::Null, vec![info]));
    }

    /// Answers a command that expects a reply but needs nothing from us.
    fn reply_result(&mut self, transaction_id: f64, value: Amf0Value) {
        if transaction_id != 0.0 {
            self.conn.send_command(0, &Command::new("_result", transaction_id, Amf0Value::Null, vec![value]));
        }
    }

    fn handle_message(&mut self, received: Received, events: &mut Vec<ServerEvent>) -> Result<(), RtmpError> {
        let Received { stream_id, timestamp, message } = received;
        let publishing = matches!(self.streams.get(&stream_id), Some(StreamState::Publishing { .. }));
        match message {
            Message::Command(command) => return self.handle_command(stream_id, command, events),
            Message::Media(kind, payload) if publishing => {
                events.push(ServerEvent::Media { stream_id, kind, timestamp, payload })
            }
            Message::Data(data) if publishing => match extract_metadata(&data) {
                Ok(Some(payload)) => events.push(ServerEvent::Metadata { stream_id, timestamp, payload }),
                Ok(None) => trace!("ignoring data message that is not metadata"),
                // A bad metadata blob is not worth dropping a live set for.
                Err(err) => warn!(%err, "ignoring malformed metadata"),
            },
            Message::Media(..) | Message::Data(_) => {
                trace!(stream_id, "dropping media/data on a stream that is not publishing");
            }
            other => trace!(?other, "ignoring message"),
        }
        Ok(())
    }

    fn handle_command(
        &mut self,
        stream_id: u32,
        command: Command,
        events: &mut Vec<ServerEvent>,
    ) -> Result<(), RtmpError> {
        let tx = command.transaction_id;
        if command.name == "connect" {
            return self.on_connect(&command, events);
        }
        if self.connect != ConnectState::Accepted {
            debug!(command = %command.name, "ignoring command before connect was accepted");
            return Ok(());
        }
        match command.name.as_str() {
            // Harmless bookkeeping commands from FMLE-style encoders (OBS,
            // ffmpeg): answer like nginx-rtmp/SRS so clients waiting for a
            // reply carry on.
            "releaseStream" | "FCPublish" | "getStreamLength" | "_checkbw" => {
                self.reply_result(tx, Amf0Value::Undefined);
            }
            "createStream" => self.on_create_stream(tx)?,
            "publish" => self.on_publish(stream_id, &command, events),
            "play" => self.on_play(stream_id, &command, events),
            "FCUnpublish" => {
                self.reply_result(tx, Amf0Value::Undefined);
                let key = command.args.first().and_then(Amf0Value::as_str);
                let target = self.streams.iter().find_map(|(id, state)| match state {
                    StreamState::PublishPending { key: k } | StreamState::Publishing { key: k }
                        if key.is_none_or(|key| key == k) =>
                    {
                        Some(*id)
                    }
                    _ => None,
                });
                if let Some(id) = target {
                    self.stop_stream(id, PublishStopKind::FcUnpublish, events);
                }
            }
            "deleteStream" => {
                if let Some(id) = as_stream_id(command.args.first()) {
                    self.stop_stream(id, PublishStopKind::DeleteStream, events);
                    self.streams.remove(&id);
                }
            }
            "closeStream" => self.stop_stream(stream_id, PublishStopKind::CloseStream, events),
            other => debug!(command = other, "ignoring unknown command"),
        }
        Ok(())
    }

    fn on_connect(&mut self, command: &Command, events: &mut Vec<ServerEvent>) -> Result<(), RtmpError> {
        if self.connect != ConnectState::AwaitingConnect {
            return Err(RtmpError::Protocol("connect received twice"));
        }
        let field = |name| command.object.get(name).and_then(Amf0Value::as_str);
        let app = field("app").unwrap_or_default().to_owned();
        let tc_url = field("tcUrl").map(str::to_owned);
        let object_encoding = command.object.get("objectEncoding").and_then(Amf0Value::as_f64).unwrap_or(0.0);
        self.connect = ConnectState::Pending { transaction_id: command.transaction_id, object_encoding };
        events.push(ServerEvent::ConnectRequested { app, tc_url });
        Ok(())
    }

    fn on_create_stream(&mut self, tx: f64) -> Result<(), RtmpError> {
        if self.streams.len() >= MAX_STREAMS {
            let info = status_info("error", "NetConnection.Call.Failed", "Too many streams.");
            self.conn.send_command(0, &Command::new("_error", tx, Amf0Value::Null, vec![info]));
            return Ok(());
        }
        let id = self.next_stream_id;
        self.next_stream_id = id.checked_add(1).ok_or(RtmpError::Protocol("message stream ids exhausted"))?;
        self.streams.insert(id, StreamState::Idle);
        self.reply_result(tx, f64::from(id).into());
        Ok(())
    }

    fn on_publish(&mut self, stream_id: u32, command: &Command, events: &mut Vec<ServerEvent>) {
        let name = command.args.first().and_then(Amf0Value::as_str);
        let refusal = match (self.streams.get(&stream_id), name) {
            (Some(StreamState::Idle), Some(name)) if !name.is_empty() => None,
            (Some(StreamState::Idle), _) => Some("Missing stream key."),
            (Some(_), _) => Some("Stream is busy."),
            (None, _) => Some("Stream was not created."),
        };
        if let Some(description) = refusal {
            self.send_status(stream_id, "error", "NetStream.Publish.BadName", description);
            return;
        }
        let stream_key = name.unwrap_or_default().to_owned();
        self.streams.insert(stream_id, StreamState::PublishPending { key: stream_key.clone() });
        events.push(ServerEvent::PublishRequested { stream_id, stream_key });
    }

    fn on_play(&mut self, stream_id: u32, command: &Command, events: &mut Vec<ServerEvent>) {
        let name = command.args.first().and_then(Amf0Value::as_str);
        let refusal = match (self.streams.get(&stream_id), name) {
            (Some(StreamState::Idle), Some(name)) if !name.is_empty() => None,
            (Some(StreamState::Idle), _) => Some("Missing stream name."),
            (Some(_), _) => Some("Stream is busy."),
            (None, _) => Some("Stream was not created."),
        };
        if let Some(description) = refusal {
            self.send_status(stream_id, "error", "NetStream.Play.StreamNotFound", description);
            return;
        }
        self.streams.insert(stream_id, StreamState::PlayPending);
        events.push(ServerEvent::PlayRequested { stream_id, stream_name: name.unwrap_or_default().to_owned() });
    }

    /// Ends whatever `stream_id` was doing and reports it. Leaves the stream
    /// idle, so a later deleteStream after FCUnpublish reports nothing.
    fn stop_stream(&mut self, stream_id: u32, how: PublishStopKind, events: &mut Vec<ServerEvent>) {
        let Some(state) = self.streams.get_mut(&stream_id) else {
            return;
        };
        match state {
            StreamState::PublishPending { .. } | StreamState::Publishing { .. } => {
                events.push(ServerEvent::PublishStopped { stream_id, how });
            }
            StreamState::PlayPending | StreamState::Playing => {
                events.push(ServerEvent::PlayStopped { stream_id });
            }
            StreamState::Idle => {}
        }
        *state = StreamState::Idle;
    }

    #[cfg(test)]
    pub(crate) fn buffered_input(&self) -> usize {
        self.conn.buffered_input()
    }
}

fn media_csid(kind: MediaKind) -> u32 {
    match kind {
        MediaKind::Audio => AUDIO_CSID,
        MediaKind::Video => VIDEO_CSID,
    }
}
