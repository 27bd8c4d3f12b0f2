//! What the server and client sessions share once the handshake is done:
//! chunk (de)coding, protocol control messages, acknowledgements and pings.

use bytes::Bytes;
use tracing::{error, trace};

use super::chunk::{ChunkDecoder, ChunkEncoder, EncodedMessage};
use super::message::{Command, Message, RtmpMessage, UserControl};
use super::output::OutputQueue;
use super::{RtmpError, SessionLimits};

/// Chunk stream for protocol control and user control messages (spec 5.4).
pub(crate) const CONTROL_CSID: u32 = 2;
/// Chunk stream for command messages, as ffmpeg and nginx-rtmp use.
pub(crate) const COMMAND_CSID: u32 = 3;

/// Chunk size both sides switch to after connecting; 4096 is what OBS,
/// ffmpeg and nginx-rtmp use and keeps header overhead under 0.3%.
pub(crate) const OUTPUT_CHUNK_SIZE: u32 = 4096;

/// Window Acknowledgement Size we announce (as nginx-rtmp does).
pub(crate) const WINDOW_ACK_SIZE: u32 = 5_000_000;

/// A message received from the peer that the session must act on.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) stream_id: u32,
    pub(crate) timestamp: u32,
    pub(crate) message: Message,
}

/// Chunk-level state of an established connection.
#[derive(Debug)]
pub(crate) struct Connection {
    decoder: ChunkDecoder,
    encoder: ChunkEncoder,
    output: OutputQueue,
    /// Total bytes received (after the handshake), for acknowledgements.
    received: u64,
    /// Value of `received` when we last sent an Acknowledgement.
    last_ack: u64,
    /// The peer's Window Acknowledgement Size, once it has sent one.
    peer_window: Option<u32>,
}

impl Connection {
    pub(crate) fn new(limits: SessionLimits) -> Self {
        Self {
            decoder: ChunkDecoder::new(limits),
            encoder: ChunkEncoder::new(),
            output: OutputQueue::default(),
            received: 0,
            last_ack: 0,
            peer_window: None,
        }
    }

    /// See [`ChunkDecoder::set_max_message_size`].
    pub(crate) fn set_max_message_size(&mut self, size: usize) {
        self.decoder.set_max_message_size(size);
    }

    /// Accepts bytes from the peer; call `next_message` until `None` next.
    pub(crate) fn receive(&mut self, input: &[u8]) {
        self.received += input.len() as u64;
        self.decoder.push(input);
        if let Some(window) = self.peer_window
            && window > 0
            && self.received - self.last_ack >= u64::from(window)
        {
            self.last_ack = self.received;
            // The sequence number is the byte count modulo 2^32.
            self.send_control(RtmpMessage::acknowledgement(self.received as u32));
        }
    }

    /// Returns the next message the session has to handle. Protocol control
    /// messages and pings are dealt with here.
    pub(crate) fn next_message(&mut self) -> Result<Option<Received>, RtmpError> {
        while let Some(msg) = self.decoder.next_message()? {
            let message = Message::decode(&msg)?;
            match message {
                Message::SetChunkSize(size) => self.decoder.set_chunk_size(size)?,
                Message::Abort(csid) => self.decoder.abort(csid),
                Message::WindowAckSize(size) => self.peer_window = Some(size),
                Message::UserControl(UserControl::PingRequest(ts)) => {
                    self.send_control(RtmpMessage::user_control(UserControl::PingResponse(ts)));
                }
                Message::Acknowledgement(_) | Message::SetPeerBandwidth { .. } => {
                    trace!(?message, "ignoring flow control message");
                }
                message => {
                    return Ok(Some(Received { stream_id: msg.stream_id, timestamp: msg.timestamp, message }));
                }
            }
        }
        Ok(None)
    }

    /// Queues raw bytes (the handshake).
    pub(crate) fn send_raw(&mut self, bytes: Bytes) {
        self.output.push_bytes(bytes);
    }

    /// Queues `msg` on `csid`.
    pub(crate) fn send(&mut self, csid: u32, msg: &RtmpMessage) -> Result<(), RtmpError> {
        self.encoder.encode(csid, msg, &mut self.output)
    }

    /// Queues a protocol or user control message. These are a few bytes on
    /// a valid csid, so encoding cannot fail.
    pub(crate) fn send_control(&mut self, msg: RtmpMessage) {
        if let Err(err) = self.send(CONTROL_CSID, &msg) {
            error!(%err, "control message failed to encode");
        }
    }

    /// Queues a command on the command chunk stream.
    pub(crate) fn send_command(&mut self, stream_id: u32, command: &Command) {
        if let Err(err) = self.send(COMMAND_CSID, &RtmpMessage::command(stream_id, command)) {
            error!(%err, command = %command.name, "command failed to encode");
        }
    }

    /// Tells the peer our new chunk size, then starts using it.
    pub(crate) fn set_output_chunk_size(&mut self, size: u32) {
        self.send_control(RtmpMessage::set_chunk_size(size));
        self.encoder.set_chunk_size(size);
    }

    /// Queues bytes from [`super::chunk::encode_standalone`].
    pub(crate) fn send_encoded(&mut self, encoded: &EncodedMessage) -> Result<(), RtmpError> {
        if encoded.chunk_size() != self.encoder.chunk_size() {
            return Err(RtmpError::InvalidState("encoded message uses a different chunk size than the session"));
        }
        // The standalone bytes start with a full header; the next message we
        // encode on that csid must not be compressed against stale state.
        self.encoder.reset_stream(encoded.csid());
        self.output.push_bytes(encoded.bytes().clone());
        Ok(())
    }

    pub(crate) fn take_output(&mut self) -> Vec<Bytes> {
        self.output.take()
    }

    pub(crate) fn pending_output(&self) -> usize {
        self.output.len()
    }

    #[cfg(test)]
    pub(crate) fn buffered_input(&self) -> usize {
        self.decoder.buffered_len()
    }
}
