//! RTMP messages: the raw form that travels in chunks, typed decoding of the
//! control and command messages the sessions act on, and constructors for
//! the messages they send.

use bytes::{BufMut, Bytes, BytesMut};

use super::amf0::{self, Amf0Value};
use super::{MediaKind, RtmpError};

/// Message type ids (RTMP spec section 5.4 and 7.1).
pub mod type_id {
    /// Set Chunk Size (protocol control).
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message (protocol control).
    pub const ABORT: u8 = 2;
    /// Acknowledgement (protocol control).
    pub const ACKNOWLEDGEMENT: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size (protocol control).
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth (protocol control).
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio data.
    pub const AUDIO: u8 = 8;
    /// Video data.
    pub const VIDEO: u8 = 9;
    /// Data message in an AMF3 envelope.
    pub const DATA_AMF3: u8 = 15;
    /// Command message in an AMF3 envelope.
    pub const COMMAND_AMF3: u8 = 17;
    /// Data message (AMF0), e.g. `@setDataFrame`.
    pub const DATA_AMF0: u8 = 18;
    /// Command message (AMF0), e.g. `connect`.
    pub const COMMAND_AMF0: u8 = 20;
}

/// A complete message as carried by the chunk layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpMessage {
    /// Message type id, see [`type_id`].
    pub type_id: u8,
    /// Message stream id (0 for the NetConnection, else a created stream).
    pub stream_id: u32,
    /// Timestamp in milliseconds; wraps at 2^32.
    pub timestamp: u32,
    /// Message body.
    pub payload: Bytes,
}

/// User Control Message events (spec section 7.1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserControl {
    /// The stream became functional.
    StreamBegin(u32),
    /// Playback of the stream ended.
    StreamEof(u32),
    /// No more data on the stream for now.
    StreamDry(u32),
    /// The client's buffer length for a stream.
    SetBufferLength {
        /// Stream the buffer is for.
        stream_id: u32,
        /// Buffer length in milliseconds.
        buffer_ms: u32,
    },
    /// The stream is a recorded one.
    StreamIsRecorded(u32),
    /// Liveness probe; must be answered with a Ping Response.
    PingRequest(u32),
    /// Answer to a Ping Request.
    PingResponse(u32),
    /// An event type we do not interpret.
    Unknown(u16),
}

/// A decoded AMF0 command message: `name, transaction id, object, args...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Command name, e.g. `connect` or `_result`.
    pub name: String,
    /// Transaction id; 0 when no reply is expected.
    pub transaction_id: f64,
    /// Command object (or `Null`).
    pub object: Amf0Value,
    /// Remaining arguments.
    pub args: Vec<Amf0Value>,
}

/// A message decoded by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// The peer's new outgoing chunk size.
    SetChunkSize(u32),
    /// Discard the partial message on this chunk stream.
    Abort(u32),
    /// The peer acknowledges having received this many bytes.
    Acknowledgement(u32),
    /// A user control event.
    UserControl(UserControl),
    /// The peer wants an acknowledgement every this many bytes.
    WindowAckSize(u32),
    /// The peer limits our output bandwidth (ignored by us).
    SetPeerBandwidth {
        /// Window size in bytes.
        window: u32,
        /// 0 hard, 1 soft, 2 dynamic.
        limit_type: u8,
    },
    /// Audio or video data.
    Media(MediaKind, Bytes),
    /// A command.
    Command(Command),
    /// A data message body in AMF0 (AMF3 envelope byte removed).
    Data(Bytes),
    /// A message type we do not handle (shared objects, aggregates, ...).
    Unhandled(u8),
}

impl Message {
    /// Decodes `msg` by its type id.
    pub fn decode(msg: &RtmpMessage) -> Result<Self, RtmpError> {
        let p = &msg.payload;
        Ok(match msg.type_id {
            type_id::SET_CHUNK_SIZE => Self::SetChunkSize(be_u32(p, "Set Chunk Size")?),
            type_id::ABORT => Self::Abort(be_u32(p, "Abort")?),
            type_id::ACKNOWLEDGEMENT => Self::Acknowledgement(be_u32(p, "Acknowledgement")?),
            type_id::USER_CONTROL => Self::UserControl(decode_user_control(p)?),
            type_id::WINDOW_ACK_SIZE => Self::WindowAckSize(be_u32(p, "Window Ack Size")?),
            type_id::SET_PEER_BANDWIDTH => Self::SetPeerBandwidth {
                window: be_u32(p, "Set Peer Bandwidth")?,
                limit_type: p
                    .get(4)
                    .copied()
                    .ok_or(RtmpError::MalformedMessage { kind: "Set Peer Bandwidth", reason: "missing limit type" })?,
            },
            type_id::AUDIO => Self::Media(MediaKind::Audio, p.clone()),
            type_id::VIDEO => Self::Media(MediaKind::Video, p.clone()),
            type_id::COMMAND_AMF0 => Self::Command(decode_command(p)?),
            type_id::COMMAND_AMF3 => Self::Command(decode_command(strip_amf3_envelope(p))?),
            type_id::DATA_AMF0 => Self::Data(p.clone()),
            type_id::DATA_AMF3 => Self::Data(p.slice_ref(strip_amf3_envelope(p))),
            other => Self::Unhandled(other),
        })
    }
}

/// AMF3 command/data messages start with a 0x00 format byte followed by
/// AMF0 values; that is all clients send in practice.
fn strip_amf3_envelope(payload: &[u8]) -> &[u8] {
    match payload.first() {
        Some(0) => &payload[1..],
        _ => payload,
    }
}

fn be_u32(p: &[u8], kind: &'static str) -> Result<u32, RtmpError> {
    be_u32_at(p, 0).ok_or(RtmpError::MalformedMessage { kind, reason: "shorter than 4 bytes" })
}

fn be_u32_at(p: &[u8], at: usize) -> Option<u32> {
    let bytes = p.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn decode_user_control(p: &[u8]) -> Result<UserControl, RtmpError> {
    let malformed = |reason| RtmpError::MalformedMessage { kind: "User Control", reason };
    let event = match p.get(..2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => return Err(malformed("missing event type")),
    };
    let arg = || be_u32_at(p, 2).ok_or(malformed("missing event data"));
    Ok(match event {
        0 => UserControl::StreamBegin(arg()?),
        1 => UserControl::StreamEof(arg()?),
        2 => UserControl::StreamDry(arg()?),
        3 => UserControl::SetBufferLength {
            stream_id: arg()?,
            buffer_ms: be_u32_at(p, 6).ok_or(malformed("missing buffer length"))?,
        },
        4 => UserControl::StreamIsRecorded(arg()?),
        6 => UserControl::PingRequest(arg()?),
        7 => UserControl::PingResponse(arg()?),
        other => UserControl::Unknown(other),
    })
}

fn decode_command(p: &[u8]) -> Result<Command, RtmpError> {
    let amf_error = |source| RtmpError::Amf0 { context: "command message", source };
    let mut values = amf0::decode_all(p).map_err(amf_error)?.into_iter();
    let name = match values.next() {
        Some(Amf0Value::String(name)) => name,
        _ => return Err(RtmpError::Protocol("command message without a name")),
    };
    // Some clients omit the transaction id/object on notifications.
    let transaction_id = values.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
    let object = values.next().unwrap_or(Amf0Value::Null);
    Ok(Command { name, transaction_id, object, args: values.collect() })
}

/// If `data` (an AMF0 data message body) carries stream metadata, returns it
/// as `"onMetaData", <object>` — the body of an FLV script tag.
///
/// Accepts `@setDataFrame, onMetaData, {...}` (what publishers send) and
/// bare `onMetaData, {...}` (what servers send to players). Other data
/// messages (`|RtmpSampleAccess`, `onTextData`, ...) yield `None`. The bytes
/// after `@setDataFrame` are sliced, not re-encoded, so the payload is exactly
/// what the encoder wrote.
pub fn extract_metadata(data: &Bytes) -> Result<Option<Bytes>, RtmpError> {
    let amf_error = |source| RtmpError::Amf0 { context: "data message", source };
    let (first, used) = amf0::decode_one(data).map_err(amf_error)?;
    let body = match first.as_str() {
        Some("@setDataFrame") => data.slice(used..),
        Some("onMetaData") => data.clone(),
        _ => return Ok(None),
    };
    // Validate the whole body so we never forward garbage as metadata.
    let values = amf0::decode_all(&body).map_err(amf_error)?;
    match values.first().and_then(Amf0Value::as_str) {
        Some("onMetaData") => Ok(Some(body)),
        _ => Ok(None),
    }
}

/// The `{level, code, description}` object of `onStatus`/`_result`/`_error`.
pub fn status_info(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([("level", level.into()), ("code", code.into()), ("description", description.into())])
}

/// Reads a message stream id sent as an AMF0 number; `None` unless it is a
/// whole number in the u32 range.
pub fn as_stream_id(value: Option<&Amf0Value>) -> Option<u32> {
    let n = value?.as_f64()?;
    (n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n)).then_some(n as u32)
}

/// Encodes values one after another, as command and data bodies are laid out.
pub fn encode_values(values: &[Amf0Value]) -> Bytes {
    let mut out = BytesMut::new();
    for value in values {
        amf0::encode(value, &mut out);
    }
    out.freeze()
}

impl Command {
    /// A command with the given parts.
    pub fn new(name: &str, transaction_id: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Self {
        Self { name: name.to_owned(), transaction_id, object, args }
    }

    /// The `info` object of `_result`/`_error`/`onStatus` replies: the first
    /// argument after the command object.
    pub fn info(&self) -> Option<&Amf0Value> {
        self.args.first()
    }

    /// Serialises the command as an AMF0 command message body.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        amf0::encode(&Amf0Value::String(self.name.clone()), &mut out);
        amf0::encode(&Amf0Value::Number(self.transaction_id), &mut out);
        amf0::encode(&self.object, &mut out);
        for arg in &self.args {
            amf0::encode(arg, &mut out);
        }
        out.freeze()
    }
}

impl RtmpMessage {
    fn control(type_id: u8, payload: Bytes) -> Self {
        Self { type_id, stream_id: 0, timestamp: 0, payload }
    }

    fn control_u32(type_id: u8, value: u32) -> Self {
        Self::control(type_id, Bytes::copy_from_slice(&value.to_be_bytes()))
    }

    /// Set Chunk Size.
    pub fn set_chunk_size(size: u32) -> Self {
        Self::control_u32(type_id::SET_CHUNK_SIZE, size)
    }

    /// Acknowledgement of `sequence` received bytes.
    pub fn acknowledgement(sequence: u32) -> Self {
        Self::control_u32(type_id::ACKNOWLEDGEMENT, sequence)
    }

    /// Window Acknowledgement Size.
    pub fn window_ack_size(size: u32) -> Self {
        Self::control_u32(type_id::WINDOW_ACK_SIZE, size)
    }

    /// Set Peer Bandwidth.
    pub fn set_peer_bandwidth(window: u32, limit_type: u8) -> Self {
        let mut payload = BytesMut::with_capacity(5);
        payload.put_u32(window);
        payload.put_u8(limit_type);
        Self::control(type_id::SET_PEER_BANDWIDTH, payload.freeze())
    }

    /// A User Control Message.
    pub fn user_control(event: UserControl) -> Self {
        let mut payload = BytesMut::with_capacity(10);
        let (kind, arg) = match event {
            UserControl::StreamBegin(id) => (0, id),
            UserControl::StreamEof(id) => (1, id),
            UserControl::StreamDry(id) => (2, id),
            UserControl::SetBufferLength { stream_id, buffer_ms } => {
                payload.put_u16(3);
                payload.put_u32(stream_id);
                payload.put_u32(buffer_ms);
                return Self::control(type_id::USER_CONTROL, payload.freeze());
            }
            UserControl::StreamIsRecorded(id) => (4, id),
            UserControl::PingRequest(ts) => (6, ts),
            UserControl::PingResponse(ts) => (7, ts),
            UserControl::Unknown(kind) => (kind, 0),
        };
        payload.put_u16(kind);
        payload.put_u32(arg);
        Self::control(type_id::USER_CONTROL, payload.freeze())
    }

    /// An AMF0 command on `stream_id`.
    pub fn command(stream_id: u32, command: &Command) -> Self {
        Self { type_id: type_id::COMMAND_AMF0, stream_id, timestamp: 0, payload: command.encode() }
    }

    /// An AMF0 data message on `stream_id`.
    pub fn data(stream_id: u32, timestamp: u32, payload: Bytes) -> Self {
        Self { type_id: type_id::DATA_AMF0, stream_id, timestamp, payload }
    }

    /// An audio or video message on `stream_id`.
    pub fn media(kind: MediaKind, stream_id: u32, timestamp: u32, payload: Bytes) -> Self {
        let type_id = match kind {
            MediaKind::Audio => type_id::AUDIO,
            MediaKind::Video => type_id::VIDEO,
        };
        Self { type_id, stream_id, timestamp, payload }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(msg: RtmpMessage) -> Result<Message, RtmpError> {
        Message::decode(&msg)
    }

    #[test]
    fn control_messages_round_trip() {
        assert_eq!(decode(RtmpMessage::set_chunk_size(4096)).unwrap(), Message::SetChunkSize(4096));
        assert_eq!(decode(RtmpMessage::acknowledgement(7)).unwrap(), Message::Acknowledgement(7));
        assert_eq!(decode(RtmpMessage::window_ack_size(5_000_000)).unwrap(), Message::WindowAckSize(5_000_000));
        assert_eq!(
            decode(RtmpMessage::set_peer_bandwidth(10, 2)).unwrap(),
            Message::SetPeerBandwidth { window: 10, limit_type: 2 }
        );
        for event in [
            UserControl::StreamBegin(1),
            UserControl::StreamEof(1),
            UserControl::StreamDry(2),
            UserControl::SetBufferLength { stream_id: 1, buffer_ms: 3000 },
            UserControl::StreamIsRecorded(3),
            UserControl::PingRequest(99),
            UserControl::PingResponse(99),
        ] {
            assert_eq!(decode(RtmpMessage::user_control(event)).unwrap(), Message::UserControl(event));
        }
    }

    #[test]
    fn short_control_messages_are_errors() {
        let short = |type_id, payload: &'static [u8]| RtmpMessage {
            type_id,
            stream_id: 0,
            timestamp: 0,
            payload: Bytes::from_static(payload),
        };
        for (t, p) in [
            (type_id::SET_CHUNK_SIZE, &[0, 0][..]),
            (type_id::USER_CONTROL, &[0][..]),
            (type_id::USER_CONTROL, &[0, 6, 1][..]),
            (type_id::SET_PEER_BANDWIDTH, &[0, 0, 0, 1][..]),
        ] {
            assert!(matches!(decode(short(t, p)), Err(RtmpError::MalformedMessage { .. })));
        }
    }

    #[test]
    fn commands_decode_in_amf0_and_amf3_envelopes() {
        let cmd = Command::new("publish", 5.0, Amf0Value::Null, vec!["key".into(), "live".into()]);
        let msg = RtmpMessage::command(1, &cmd);
        assert_eq!(decode(msg.clone()).unwrap(), Message::Command(cmd.clone()));

        let mut amf3 = vec![0u8];
        amf3.extend_from_slice(&msg.payload);
        let msg3 = RtmpMessage { type_id: type_id::COMMAND_AMF3, payload: amf3.into(), ..msg };
        assert_eq!(decode(msg3).unwrap(), Message::Command(cmd));
    }

    #[test]
    fn malformed_commands_are_errors() {
        let msg = RtmpMessage {
            type_id: type_id::COMMAND_AMF0,
            stream_id: 0,
            timestamp: 0,
            payload: Bytes::from_static(&[2, 0, 9, b'x']),
        };
        let err = decode(msg).unwrap_err();
        assert!(err.to_string().starts_with("malformed AMF0 in command message"), "{err}");
    }

    #[test]
    fn metadata_is_extracted_from_set_data_frame() {
        let meta = Amf0Value::EcmaArray(vec![("width".into(), 1920.0.into())]);
        let body = encode_values(&["onMetaData".into(), meta.clone()]);
        let wrapped = encode_values(&["@setDataFrame".into(), "onMetaData".into(), meta]);
        assert_eq!(extract_metadata(&wrapped).unwrap(), Some(body.clone()));
        assert_eq!(extract_metadata(&body).unwrap(), Some(body));
        let other = encode_values(&["|RtmpSampleAccess".into(), true.into()]);
        assert_eq!(extract_metadata(&other).unwrap(), None);
        assert!(extract_metadata(&Bytes::from_static(&[2, 0])).is_err());
    }
}
