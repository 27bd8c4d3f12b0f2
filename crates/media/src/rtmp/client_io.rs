//! Drives a [`ClientSession`] over any tokio byte stream (TCP now, TLS for relays).
//!
//! Every await point is cancel-safe (reads and writes are single `read`/`write` calls whose
//! progress is recorded before the next await), so callers may `select!` on
//! [`RtmpClient::next_event`] against timers or control channels.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::io::write_pieces;
use tokio::net::{TcpStream, ToSocketAddrs};

use super::client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
use super::{RtmpError, StreamMessage};

/// Time allowed from TCP connect until publishing/playing has started.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
const READ_BUFFER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(#[from] RtmpError),
    #[error("refused by the server: {code}: {description}")]
    Rejected { code: String, description: String },
    #[error("the server closed the connection")]
    Closed,
    #[error("the server did not answer within {0:?}")]
    Timeout(Duration),
}

/// An RTMP client connection that has started publishing or playing.
pub struct RtmpClient<S> {
    io: S,
    session: ClientSession,
    events: VecDeque<ClientEvent>,
    output: VecDeque<Bytes>,
    read_buf: Box<[u8]>,
}

impl RtmpClient<TcpStream> {
    /// Connects over TCP and publishes `stream_key` on `app`.
    pub async fn publish(addr: impl ToSocketAddrs, app: &str, stream_key: &str) -> Result<Self, ClientError> {
        let socket = TcpStream::connect(addr).await?;
        let _ = socket.set_nodelay(true);
        let tc_url = format!("rtmp://{}/{app}", socket.peer_addr()?);
        let mode = ClientMode::Publish { stream_key: stream_key.to_owned() };
        Self::start(socket, ClientConfig::new(app, tc_url, mode)).await
    }

    /// Connects over TCP and plays `stream_name` on `app`.
    pub async fn play(addr: impl ToSocketAddrs, app: &str, stream_name: &str) -> Result<Self, ClientError> {
        let socket = TcpStream::connect(addr).await?;
        let _ = socket.set_nodelay(true);
        let tc_url = format!("rtmp://{}/{app}", socket.peer_addr()?);
        let mode = ClientMode::Play { stream_name: stream_name.to_owned() };
        Self::start(socket, ClientConfig::new(app, tc_url, mode)).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RtmpClient<S> {
    /// Runs the handshake and the command exchange until the server has started our
    /// publish or play, or refused it.
    pub async fn start(io: S, config: ClientConfig) -> Result<Self, ClientError> {
        let mut client = Self {
            io,
            session: ClientSession::new(config),
            events: VecDeque::new(),
            output: VecDeque::new(),
            read_buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
        };
        let started = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                match client.next_event().await? {
                    ClientEvent::PublishStarted { .. } | ClientEvent::PlayStarted { .. } => {
                        return Ok(());
                    }
                    ClientEvent::Rejected { code, description } => {
                        return Err(ClientError::Rejected { code, description });
                    }
                    _ => {}
                }
            }
        })
        .await;
        match started {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Timeout(START_TIMEOUT)),
        }
    }

    /// Sends one message (audio, video or metadata) on the published stream.
    pub async fn send(&mut self, message: StreamMessage) -> Result<(), ClientError> {
        self.send_all([message]).await
    }

    /// Sends messages on the published stream in one write (as few system calls as the
    /// socket allows), for a caller that had several waiting.
    pub async fn send_all(&mut self, messages: impl IntoIterator<Item = StreamMessage>) -> Result<(), ClientError> {
        for message in messages {
            match message {
                StreamMessage::Media { kind, timestamp, payload } => {
                    self.session.send_media(kind, timestamp, payload)?;
                }
                StreamMessage::Metadata(payload) => self.session.send_metadata(payload)?,
            }
        }
        self.flush().await
    }

    /// The next event from the server (media for players; acks are handled inside).
    pub async fn next_event(&mut self) -> Result<ClientEvent, ClientError> {
        loop {
            self.flush().await?;
            if let Some(event) = self.events.pop_front() {
                return Ok(event);
            }
            let n = self.io.read(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            let events = self.session.handle_input(&self.read_buf[..n])?;
            self.events.extend(events);
        }
    }

    /// Ends the publish cleanly (FCUnpublish + deleteStream, as OBS does) and closes.
    pub async fn stop(mut self) -> Result<(), ClientError> {
        self.session.stop_publishing()?;
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }

    /// The transport, for a caller that takes over the connection's bytes itself (a load
    /// client that plays and discards). Anything the session still held is dropped.
    pub fn into_io(self) -> S {
        self.io
    }

    /// Writes out everything the session has queued.
    async fn flush(&mut self) -> Result<(), ClientError> {
        self.output.extend(self.session.take_output());
        write_pieces(&mut self.io, &mut self.output).await?;
        Ok(())
    }
}
