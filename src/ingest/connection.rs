//! One RTMP connection: socket I/O around the sans-IO [`ServerSession`], stream-key checks,
//! and the link to the queue actor.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::IngestContext;
use super::registry::Publisher;
use crate::auth::is_well_formed_key;
use crate::media::flv::{FlvTag, TagKind};
use crate::queue::actor::PublishDecision;
use crate::queue::engine::{ConnId, DisconnectReason, Dj, Input, RejectReason};
use crate::rtmp::MediaKind;
use crate::rtmp::server::{ServerEvent, ServerSession};

/// Socket reads are done in chunks of this size; the session buffers partial messages
/// itself, within its own limits.
const READ_BUFFER: usize = 64 * 1024;
/// How often a publishing connection checks itself for a stall.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Why a connection ended, for the log line.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("peer closed the connection")]
    Eof,
    #[error("no RTMP connect within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    #[error("idle for {0:?}")]
    Idle(std::time::Duration),
    #[error("protocol error: {0}")]
    Protocol(#[from] crate::rtmp::RtmpError),
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Refused(String),
    #[error("disconnected by the queue: {0:?}")]
    Kicked(DisconnectReason),
    #[error("no media for {0:?}: stalled")]
    Stalled(std::time::Duration),
    #[error("the queue service has stopped")]
    QueueGone,
}

struct Publishing {
    stream_id: u32,
    publisher: Arc<Publisher>,
    kicked: oneshot::Receiver<DisconnectReason>,
    last_media: Instant,
}

pub(super) struct Connection {
    conn: ConnId,
    peer: SocketAddr,
    socket: TcpStream,
    session: ServerSession,
    ctx: Arc<IngestContext>,
    connected: bool,
    publishing: Option<Publishing>,
}

impl Connection {
    pub(super) fn new(
        conn: ConnId,
        peer: SocketAddr,
        socket: TcpStream,
        ctx: Arc<IngestContext>,
    ) -> Self {
        let session = ServerSession::new(ctx.session_limits);
        Self {
            conn,
            peer,
            socket,
            session,
            ctx,
            connected: false,
            publishing: None,
        }
    }

    /// Runs the connection to its end and reports the end to the queue.
    pub(super) async fn run(mut self) {
        let ended = self.serve().await;
        // Whatever ended the connection, the queue must hear that this publisher is gone
        // unless it already stopped cleanly (publishing would be None then).
        if let Some(publishing) = self.publishing.take() {
            self.ctx.publishers.remove(self.conn);
            let input = match ended {
                Closed::Kicked(_) => None, // the engine already knows
                Closed::Stalled(_) => Some(Input::StallDetected { conn: self.conn }),
                _ => Some(Input::ConnectionLost { conn: self.conn }),
            };
            if let Some(input) = input {
                let _ = self.ctx.queue.report(input).await;
            }
            tracing::info!(
                "rtmp {}: {} stopped publishing: {ended}",
                self.peer,
                publishing.publisher.dj.dj_name
            );
        } else {
            match ended {
                Closed::Refused(_) | Closed::Protocol(_) => {
                    tracing::warn!("rtmp {}: {ended}", self.peer)
                }
                Closed::HandshakeTimeout(_) | Closed::Idle(_) => {
                    tracing::info!("rtmp {}: closed: {ended}", self.peer)
                }
                _ => tracing::debug!("rtmp {}: closed: {ended}", self.peer),
            }
        }
    }

    async fn serve(&mut self) -> Closed {
        let mut buf = vec![0u8; READ_BUFFER];
        let handshake_deadline = tokio::time::Instant::now() + self.ctx.limits.handshake_timeout;
        let mut stall_check = tokio::time::interval(STALL_CHECK);
        loop {
            let read_deadline = if self.connected {
                tokio::time::Instant::now() + self.ctx.limits.idle_timeout
            } else {
                handshake_deadline
            };
            let publishing = self.publishing.is_some();
            tokio::select! {
                reason = kicked(&mut self.publishing), if publishing => {
                    return Closed::Kicked(reason);
                }
                _ = stall_check.tick(), if publishing => {
                    if let Some(p) = &self.publishing {
                        let silent = p.last_media.elapsed();
                        if silent >= self.ctx.stall_timeout {
                            return Closed::Stalled(silent);
                        }
                    }
                }
                read = tokio::time::timeout_at(read_deadline, self.socket.read(&mut buf)), if true => {
                    let n = match read {
                        // A publisher may legitimately pause reading-side traffic; its
                        // liveness is judged by the stall check instead.
                        Err(_) if publishing => continue,
                        Err(_) if self.connected => return Closed::Idle(self.ctx.limits.idle_timeout),
                        Err(_) => return Closed::HandshakeTimeout(self.ctx.limits.handshake_timeout),
                        Ok(Err(e)) => return Closed::Io(e),
                        Ok(Ok(0)) => return Closed::Eof,
                        Ok(Ok(n)) => n,
                    };
                    if let Err(closed) = self.on_bytes(&buf[..n]).await {
                        // Best effort: let the peer see our error status before we hang up.
                        let _ = self.flush().await;
                        return closed;
                    }
                    if let Err(e) = self.flush().await {
                        return Closed::Io(e);
                    }
                }
            }
        }
    }

    async fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), Closed> {
        let events = self.session.handle_input(bytes)?;
        for event in events {
            self.on_event(event).await?;
        }
        Ok(())
    }

    async fn on_event(&mut self, event: ServerEvent) -> Result<(), Closed> {
        match event {
            ServerEvent::ConnectRequested { app, .. } => {
                if app.trim_end_matches('/') == "live" {
                    self.session.accept_connect()?;
                    self.connected = true;
                } else {
                    self.session.reject_connect(
                        "unknown application; publish to rtmp://HOST:1935/live/<stream key>",
                    )?;
                    return Err(Closed::Refused(format!(
                        "connect to unknown application `{app}`"
                    )));
                }
            }
            ServerEvent::PublishRequested {
                stream_id,
                stream_key,
            } => {
                self.on_publish(stream_id, &stream_key).await?;
            }
            ServerEvent::Media {
                kind,
                timestamp,
                payload,
                ..
            } => {
                if let Some(p) = &mut self.publishing {
                    let now = Instant::now();
                    p.last_media = now;
                    let kind = match kind {
                        MediaKind::Audio => TagKind::Audio,
                        MediaKind::Video => TagKind::Video,
                    };
                    p.publisher.on_tag(
                        now,
                        FlvTag {
                            kind,
                            timestamp,
                            payload,
                        },
                    );
                }
            }
            ServerEvent::Metadata {
                timestamp, payload, ..
            } => {
                if let Some(p) = &self.publishing {
                    p.publisher.on_tag(
                        Instant::now(),
                        FlvTag {
                            kind: TagKind::Script,
                            timestamp,
                            payload,
                        },
                    );
                }
            }
            ServerEvent::PublishStopped { stream_id, .. } => {
                if self
                    .publishing
                    .as_ref()
                    .is_some_and(|p| p.stream_id == stream_id)
                {
                    if let Some(p) = self.publishing.take() {
                        self.ctx.publishers.remove(self.conn);
                        tracing::info!(
                            "rtmp {}: {} stopped publishing cleanly",
                            self.peer,
                            p.publisher.dj.dj_name
                        );
                        self.ctx
                            .queue
                            .report(Input::PublishStopped { conn: self.conn })
                            .await
                            .map_err(|_| Closed::QueueGone)?;
                    }
                }
            }
            ServerEvent::PlayRequested { stream_id, .. } => {
                self.session
                    .reject_play(stream_id, "playback is served on the program application")?;
                return Err(Closed::Refused(
                    "play requested on the ingest application".into(),
                ));
            }
            ServerEvent::PlayStopped { .. } => {}
        }
        Ok(())
    }

    /// Checks a publish request against SPEC section 3 and, if the key is good, asks the
    /// queue for a place.
    async fn on_publish(&mut self, stream_id: u32, raw_name: &str) -> Result<(), Closed> {
        // OBS and ffmpeg may append `?query` parameters to the stream name.
        let key = raw_name.split('?').next().unwrap_or_default();
        let refuse = |session: &mut ServerSession, code: &str, why: String| {
            session.reject_publish(stream_id, code, &why)?;
            Err(Closed::Refused(format!("publish refused: {why}")))
        };
        if self.publishing.is_some() {
            return refuse(
                &mut self.session,
                "NetStream.Publish.BadName",
                "this connection is already publishing".into(),
            );
        }
        if !self.ctx.publish_attempts.allow(self.peer.ip()) {
            return refuse(
                &mut self.session,
                "NetStream.Publish.Denied",
                "too many publish attempts from this address; try again in a minute".into(),
            );
        }
        if !is_well_formed_key(key) {
            return refuse(
                &mut self.session,
                "NetStream.Publish.BadName",
                "malformed stream key".into(),
            );
        }
        let user = match self.ctx.store.user_by_stream_key(key).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return refuse(
                    &mut self.session,
                    "NetStream.Publish.BadName",
                    format!("unknown stream key {}…", &key[..key.len().min(4)]),
                );
            }
            Err(e) => {
                tracing::error!("rtmp {}: stream key lookup failed: {e}", self.peer);
                return refuse(
                    &mut self.session,
                    "NetStream.Publish.Denied",
                    "database unavailable".into(),
                );
            }
        };
        if !user.is_active {
            return refuse(
                &mut self.session,
                "NetStream.Publish.Denied",
                format!("account {} is disabled", user.dj_name),
            );
        }

        let dj = Dj {
            user_id: user.id,
            dj_name: user.dj_name,
        };
        let publisher = Arc::new(Publisher::new(self.conn, dj.clone(), Instant::now()));
        // Registered before the queue answers so an immediate on-air switch finds it.
        self.ctx.publishers.insert(publisher.clone());
        let (kick, kicked) = oneshot::channel();
        let decision = self.ctx.queue.publish(self.conn, dj.clone(), kick).await;
        match decision {
            Ok(PublishDecision::Accepted { on_air, position }) => {
                self.session.accept_publish(stream_id)?;
                self.publishing = Some(Publishing {
                    stream_id,
                    publisher,
                    kicked,
                    last_media: Instant::now(),
                });
                if on_air {
                    tracing::info!(
                        "rtmp {}: {} is publishing and on air",
                        self.peer,
                        dj.dj_name
                    );
                } else {
                    tracing::info!(
                        "rtmp {}: {} is publishing, queued at position {position}",
                        self.peer,
                        dj.dj_name
                    );
                }
                Ok(())
            }
            Ok(PublishDecision::Rejected(reason)) => {
                self.ctx.publishers.remove(self.conn);
                let why = match reason {
                    RejectReason::AlreadyPublishing => {
                        format!("{} is already publishing", dj.dj_name)
                    }
                    RejectReason::Blocked => {
                        format!(
                            "{}'s set just ended; wait for another DJ before going on air again",
                            dj.dj_name
                        )
                    }
                };
                refuse(&mut self.session, "NetStream.Publish.Denied", why)
            }
            Err(_) => {
                self.ctx.publishers.remove(self.conn);
                refuse(
                    &mut self.session,
                    "NetStream.Publish.Denied",
                    "server is shutting down".into(),
                )
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        for chunk in self.session.take_output() {
            self.socket.write_all(&chunk).await?;
        }
        Ok(())
    }
}

/// Resolves when the queue disconnects this publisher.
async fn kicked(publishing: &mut Option<Publishing>) -> DisconnectReason {
    match publishing {
        Some(p) => match (&mut p.kicked).await {
            Ok(reason) => reason,
            // The actor dropped the kick sender without firing it (e.g. it stopped).
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}
