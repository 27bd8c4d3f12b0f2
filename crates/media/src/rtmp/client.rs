//! Client side of an RTMP connection, for publishing (the relay to
//! YouTube/Twitch, tests) and playing (tests, monitoring).
//!
//! The command sequence follows OBS/ffmpeg, because that is what ingests
//! are tested against:
//!
//! ```text
//! handshake -> connect -> Set Chunk Size 4096
//! on connect _result:
//!   publish: releaseStream, FCPublish, createStream -> publish(key, "live")
//!   play:    createStream -> play(name, -1000) + Set Buffer Length
//! stop_publishing: FCUnpublish, deleteStream
//! ```

use bytes::{Bytes, BytesMut};
use tracing::{trace, warn};

use super::amf0::{self, Amf0Value};
use super::connection::{Connection, OUTPUT_CHUNK_SIZE, Received};
use super::handshake::{ClientHandshake, HandshakeStatus};
use super::message::{Command, Message, RtmpMessage, UserControl, as_stream_id, extract_metadata};
use super::{MediaKind, RtmpError, SessionLimits};

/// Chunk streams for what we send, as ffmpeg uses them.
const AUDIO_CSID: u32 = 4;
const DATA_CSID: u32 = 5;
const VIDEO_CSID: u32 = 6;

/// `flashVer` sent in `connect` unless configured otherwise. "FMLE/3.0"
/// marks us as a live encoder, which some ingests look for.
pub const DEFAULT_FLASH_VER: &str = "FMLE/3.0 (compatible; motherstream)";

/// Buffer length (ms) a player announces, as ffmpeg does.
const PLAY_BUFFER_MS: u32 = 3000;

/// Transaction id of `connect`.
const CONNECT_TX: f64 = 1.0;

/// What the client does once connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMode {
    /// Publish under `stream_key`.
    Publish {
        /// Publishing name (the stream key, with any `?query`).
        stream_key: String,
    },
    /// Play `stream_name`.
    Play {
        /// Name of the stream to play.
        stream_name: String,
    },
}

/// Everything a [`ClientSession`] needs to know up front.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Application, e.g. `live2` (see [`super::url::RtmpUrl`]).
    pub app: String,
    /// `tcUrl`, e.g. `rtmp://a.rtmp.youtube.com/live2`.
    pub tc_url: String,
    /// Publish or play.
    pub mode: ClientMode,
    /// Limits on what the server can make us buffer.
    pub limits: SessionLimits,
    /// `flashVer` in `connect`.
    pub flash_ver: String,
}

impl ClientConfig {
    /// A configuration with default limits and [`DEFAULT_FLASH_VER`].
    pub fn new(app: impl Into<String>, tc_url: impl Into<String>, mode: ClientMode) -> Self {
        Self {
            app: app.into(),
            tc_url: tc_url.into(),
            mode,
            limits: SessionLimits::default(),
            flash_ver: DEFAULT_FLASH_VER.to_owned(),
        }
    }
}

/// What happened on the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// The server accepted `connect`.
    Connected,
    /// `NetStream.Publish.Start`: media may be sent now.
    PublishStarted {
        /// Message stream we publish on.
        stream_id: u32,
    },
    /// `NetStream.Play.Start`: media will follow.
    PlayStarted {
        /// Message stream we play on.
        stream_id: u32,
    },
    /// The server refused `connect`, `createStream`, publish or play
    /// (`_error`, or an `onStatus` with level "error"). Close the connection.
    Rejected {
        /// Status code, e.g. `NetStream.Publish.BadName`.
        code: String,
        /// Human-readable reason.
        description: String,
    },
    /// Any other `onStatus`, e.g. `NetStream.Play.UnpublishNotify`.
    Status {
        /// "status" or "warning".
        level: String,
        /// Status code.
        code: String,
        /// Human-readable description.
        description: String,
    },
    /// Audio or video on the played stream.
    Media {
        /// Audio or video.
        kind: MediaKind,
        /// Message timestamp (ms).
        timestamp: u32,
        /// FLV tag body.
        payload: Bytes,
    },
    /// Metadata on the played stream: `"onMetaData", <object>`.
    Metadata {
        /// Message timestamp (ms).
        timestamp: u32,
        /// AMF0 body.
        payload: Bytes,
    },
    /// The server signalled the end of the played stream (Stream EOF).
    StreamEof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshaking,
    Connecting,
    CreatingStream,
    Starting { stream_id: u32 },
    Active { stream_id: u32 },
    Stopped,
    Rejected,
}

/// A client-side RTMP connection state machine.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    handshake: Option<ClientHandshake>,
    conn: Connection,
    state: State,
    next_transaction: f64,
    create_stream_tx: f64,
}

impl ClientSession {
    /// A session with C0+C1 already queued in its output.
    pub fn new(config: ClientConfig) -> Self {
        let mut handshake = ClientHandshake::new();
        let mut conn = Connection::new(config.limits);
        if let Some(c0c1) = handshake.take_output() {
            conn.send_raw(c0c1);
        }
        Self {
            config,
            handshake: Some(handshake),
            conn,
            state: State::Handshaking,
            next_transaction: CONNECT_TX + 1.0,
            create_stream_tx: 0.0,
        }
    }

    /// Processes bytes read from the server.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<Vec<ClientEvent>, RtmpError> {
        let mut events = Vec::new();
        match self.handshake.as_mut() {
            Some(handshake) => {
                let status = handshake.handle_input(input)?;
                if let Some(c2) = handshake.take_output() {
                    self.conn.send_raw(c2);
                }
                let HandshakeStatus::Done { leftover } = status else {
                    return Ok(events);
                };
                self.handshake = None;
                self.send_connect();
                self.conn.receive(&leftover);
            }
            None => self.conn.receive(input),
        }
        while let Some(received) = self.conn.next_message()? {
            self.handle_message(received, &mut events)?;
        }
        Ok(events)
    }

    /// Everything to write to the server now, in order.
    pub fn take_output(&mut self) -> Vec<Bytes> {
        self.conn.take_output()
    }

    /// Bytes queued for the server and not yet taken.
    pub fn pending_output_bytes(&self) -> usize {
        self.conn.pending_output()
    }

    /// Sends audio or video; only after [`ClientEvent::PublishStarted`]. The
    /// payload is queued without copying.
    pub fn send_media(&mut self, kind: MediaKind, timestamp: u32, payload: Bytes) -> Result<(), RtmpError> {
        let stream_id = self.publishing_stream()?;
        let csid = match kind {
            MediaKind::Audio => AUDIO_CSID,
            MediaKind::Video => VIDEO_CSID,
        };
        self.conn.send(csid, &RtmpMessage::media(kind, stream_id, timestamp, payload))
    }

    /// Sends metadata given as `"onMetaData", <object>` (an FLV script tag
    /// body, as [`super::ServerEvent::Metadata`] carries it), wrapped in
    /// `@setDataFrame` as encoders do.
    pub fn send_metadata(&mut self, payload: Bytes) -> Result<(), RtmpError> {
        let stream_id = self.publishing_stream()?;
        let mut body = BytesMut::with_capacity(payload.len() + 16);
        amf0::encode(&"@setDataFrame".into(), &mut body);
        body.extend_from_slice(&payload);
        self.conn.send(DATA_CSID, &RtmpMessage::data(stream_id, 0, body.freeze()))
    }

    /// Ends the publish cleanly with `FCUnpublish` + `deleteStream`, like OBS.
    pub fn stop_publishing(&mut self) -> Result<(), RtmpError> {
        let (State::Starting { stream_id } | State::Active { stream_id }) = self.state else {
            return Err(RtmpError::InvalidState("not publishing"));
        };
        let ClientMode::Publish { stream_key } = &self.config.mode else {
            return Err(RtmpError::InvalidState("not publishing"));
        };
        let key = stream_key.as_str().into();
        let unpublish = Command::new("FCUnpublish", self.next_tx(), Amf0Value::Null, vec![key]);
        self.conn.send_command(0, &unpublish);
        self.delete_stream(stream_id);
        Ok(())
    }

    /// Ends playback with `deleteStream`.
    pub fn stop_playing(&mut self) -> Result<(), RtmpError> {
        match (self.state, &self.config.mode) {
            (State::Starting { stream_id } | State::Active { stream_id }, ClientMode::Play { .. }) => {
                self.delete_stream(stream_id);
                Ok(())
            }
            _ => Err(RtmpError::InvalidState("not playing")),
        }
    }

    fn delete_stream(&mut self, stream_id: u32) {
        let delete = Command::new("deleteStream", self.next_tx(), Amf0Value::Null, vec![f64::from(stream_id).into()]);
        self.conn.send_command(0, &delete);
        self.state = State::Stopped;
    }

    fn publishing_stream(&self) -> Result<u32, RtmpError> {
        match (self.state, &self.config.mode) {
            (State::Active { stream_id }, ClientMode::Publish { .. }) => Ok(stream_id),
            _ => Err(RtmpError::InvalidState("publish has not started")),
        }
    }

    fn next_tx(&mut self) -> f64 {
        let tx = self.next_transaction;
        self.next_transaction += 1.0;
        tx
    }

    fn send_connect(&mut self) {
        let c = &self.config;
        let mut object = vec![
            ("app", c.app.as_str().into()),
            ("type", "nonprivate".into()),
            ("flashVer", c.flash_ver.as_str().into()),
            ("tcUrl", c.tc_url.as_str().into()),
        ];
        if let ClientMode::Play { .. } = c.mode {
            // What ffmpeg announces when playing.
            object.extend([
                ("fpad", false.into()),
                ("capabilities", 15.0.into()),
                ("audioCodecs", 4071.0.into()),
                ("videoCodecs", 252.0.into()),
                ("videoFunction", 1.0.into()),
            ]);
        }
        let connect = Command::new("connect", CONNECT_TX, Amf0Value::object(object), vec![]);
        self.conn.send_command(0, &connect);
        self.conn.set_output_chunk_size(OUTPUT_CHUNK_SIZE);
        self.state = State::Connecting;
    }

    fn handle_message(&mut self, received: Received, events: &mut Vec<ClientEvent>) -> Result<(), RtmpError> {
        let playing = matches!(
            (self.state, &self.config.mode),
            (State::Active { stream_id }, ClientMode::Play { .. }) if stream_id == received.stream_id
        );
        match received.message {
            Message::Command(command) => return self.handle_command(command, events),
            Message::Media(kind, payload) if playing => {
                events.push(ClientEvent::Media { kind, timestamp: received.timestamp, payload })
            }
            Message::Data(data) if playing => match extract_metadata(&data) {
                Ok(Some(payload)) => events.push(ClientEvent::Metadata { timestamp: received.timestamp, payload }),
                Ok(None) => trace!("ignoring data message that is not metadata"),
                Err(err) => warn!(%err, "ignoring malformed metadata"),
            },
            Message::UserControl(UserControl::StreamEof(id)) if matches!(self.state, State::Active { stream_id } if stream_id == id) =>
            {
                events.push(ClientEvent::StreamEof);
            }
            other => trace!(?other, "ignoring message"),
        }
        Ok(())
    }

    fn handle_command(&mut self, command: Command, events: &mut Vec<ClientEvent>) -> Result<(), RtmpError> {
        let tx = command.transaction_id;
        match (command.name.as_str(), self.state) {
            ("_result", State::Connecting) if tx == CONNECT_TX => {
                events.push(ClientEvent::Connected);
                self.after_connect();
            }
            ("_result", State::CreatingStream) if tx == self.create_stream_tx => {
                let stream_id = as_stream_id(command.info())
                    .ok_or(RtmpError::Protocol("createStream result without a stream id"))?;
                self.start_stream(stream_id);
            }
            ("_error", State::Connecting) if tx == CONNECT_TX => self.reject(&command, events),
            ("_error", State::CreatingStream) if tx == self.create_stream_tx => {
                self.reject(&command, events);
            }
            ("onStatus", _) => self.on_status(&command, events),
            (name, _) => trace!(command = name, "ignoring command"),
        }
        Ok(())
    }

    fn after_connect(&mut self) {
        if let ClientMode::Publish { stream_key } = &self.config.mode {
            // Not required by the spec, but OBS and ffmpeg send these and
            // some ingests (Twitch, older Wowza) expect them.
            let key: Amf0Value = stream_key.as_str().into();
            for name in ["releaseStream", "FCPublish"] {
                let command = Command::new(name, self.next_tx(), Amf0Value::Null, vec![key.clone()]);
                self.conn.send_command(0, &command);
            }
        }
        self.create_stream_tx = self.next_tx();
        let create = Command::new("createStream", self.create_stream_tx, Amf0Value::Null, vec![]);
        self.conn.send_command(0, &create);
        self.state = State::CreatingStream;
    }

    fn start_stream(&mut self, stream_id: u32) {
        let tx = self.next_tx();
        let command = match &self.config.mode {
            ClientMode::Publish { stream_key } => {
                Command::new("publish", tx, Amf0Value::Null, vec![stream_key.as_str().into(), "live".into()])
            }
            // -1000: live streams only, as ffmpeg's `-rtmp_live live`.
            ClientMode::Play { stream_name } => {
                Command::new("play", tx, Amf0Value::Null, vec![stream_name.as_str().into(), (-1000.0).into()])
            }
        };
        self.conn.send_command(stream_id, &command);
        if let ClientMode::Play { .. } = self.config.mode {
            self.conn.send_control(RtmpMessage::user_control(UserControl::SetBufferLength {
                stream_id,
                buffer_ms: PLAY_BUFFER_MS,
            }));
        }
        self.state = State::Starting { stream_id };
    }

    fn reject(&mut self, command: &Command, events: &mut Vec<ClientEvent>) {
        let (_, code, description) = status_fields(command);
        self.state = State::Rejected;
        events.push(ClientEvent::Rejected { code, description });
    }

    fn on_status(&mut self, command: &Command, events: &mut Vec<ClientEvent>) {
        let (level, code, description) = status_fields(command);
        let publishing = matches!(self.config.mode, ClientMode::Publish { .. });
        match (self.state, code.as_str()) {
            (State::Starting { stream_id }, "NetStream.Publish.Start") if publishing => {
                self.state = State::Active { stream_id };
                events.push(ClientEvent::PublishStarted { stream_id });
            }
            (State::Starting { stream_id }, "NetStream.Play.Start") if !publishing => {
                self.state = State::Active { stream_id };
                events.push(ClientEvent::PlayStarted { stream_id });
            }
            _ if level == "error" => {
                self.state = State::Rejected;
                events.push(ClientEvent::Rejected { code, description });
            }
            _ => events.push(ClientEvent::Status { level, code, description }),
        }
    }
}

/// `(level, code, description)` from a status reply's info object; missing
/// fields are empty.
fn status_fields(command: &Command) -> (String, String, String) {
    let field = |name| {
        command.info().and_then(|info| info.get(name)).and_then(Amf0Value::as_str).unwrap_or_default().to_owned()
    };
    (field("level"), field("code"), field("description"))
}
