//! One RTMP connection: socket I/O around the sans-IO [`ServerSession`], stream-key checks,
//! and the link to the queue actor.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::IngestContext;
use crate::auth::is_well_formed_key;
use crate::hub::Publisher;
use crate::ids::{ConnId, UserId};
use crate::media::flv::{FlvTag, TagKind};
use crate::metrics::Counters;
use crate::program::{ProgramTag, Subscription};
use crate::queue::actor::PublishDecision;
use crate::queue::engine::{DisconnectReason, Dj, Input, RejectReason};
use crate::ratelimit::{IpPermit, PerIpCap};
use crate::rtmp::MediaKind;
use crate::rtmp::io::{try_write_pieces, write_pieces};
use crate::rtmp::server::{ServerEvent, ServerSession};

/// A publisher's socket reads are done in chunks of this size; the session buffers partial
/// messages itself, within its own limits.
const READ_BUFFER: usize = 64 * 1024;
/// Until a connection publishes it reads into this much: the handshake and commands are
/// small, and a player only ever sends acknowledgements (1,000 players would otherwise hold
/// 64 MiB of read buffers they never fill).
const SMALL_READ_BUFFER: usize = 4 * 1024;
/// How often a publishing connection checks itself for a stall.
const STALL_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// A write to a peer that makes no progress for this long ends the connection.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// A player takes the program tags waiting for it into one write up to about this many bytes.
const MAX_PLAY_BATCH: usize = 256 * 1024;
/// The stream id players get for their first stream (every usual player has only one): the
/// program's chunk encoding is shared among the players on it.
const SHARED_STREAM_ID: u32 = 1;

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
    #[error("the program ended")]
    ProgramEnded,
    #[error("a write did not complete within {0:?}: the peer stopped reading")]
    WriteTimeout(std::time::Duration),
}

/// The RTMP application a connection asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    /// `live`: DJs publish here with their stream key.
    Live,
    /// `program`: the program feed is played here (`rtmp://HOST/program/live`).
    Program,
}

struct Playing {
    stream_id: u32,
    program: Subscription,
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
    app: Option<App>,
    publishing: Option<Publishing>,
    playing: Option<Playing>,
    /// The address's publisher or player place, taken at `connect`.
    role: Option<IpPermit>,
    /// Output taken from the session and not yet written.
    unsent: VecDeque<Bytes>,
}

impl Connection {
    pub(super) fn new(conn: ConnId, peer: SocketAddr, socket: TcpStream, ctx: Arc<IngestContext>) -> Self {
        let session = ServerSession::new(ctx.session_limits);
        Self {
            conn,
            peer,
            socket,
            session,
            ctx,
            app: None,
            publishing: None,
            playing: None,
            role: None,
            unsent: VecDeque::new(),
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
            tracing::info!("rtmp {}: {} stopped publishing: {ended}", self.peer, publishing.publisher.dj.dj_name);
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
        let mut buf = vec![0u8; SMALL_READ_BUFFER];
        // One timer for the connection's life, moved rather than re-created at every event:
        // a player's loop runs for every program tag.
        let deadline = tokio::time::sleep(self.ctx.limits.handshake_timeout);
        tokio::pin!(deadline);
        let mut stall_check = tokio::time::interval(STALL_CHECK);
        loop {
            let publishing = self.publishing.is_some();
            let playing = self.playing.is_some();
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
                tag = program_tag(&mut self.playing), if playing => {
                    let Some(tag) = tag else { return Closed::ProgramEnded };
                    if let Err(closed) = self.play(tag).await {
                        return closed;
                    }
                }
                // Publishers and players may send nothing for a long time (players only
                // acknowledge); their liveness is judged by media and writes.
                () = &mut deadline, if !publishing && !playing => {
                    return match self.app {
                        Some(_) => Closed::Idle(self.ctx.limits.idle_timeout),
                        None => Closed::HandshakeTimeout(self.ctx.limits.handshake_timeout),
                    };
                }
                read = self.socket.read(&mut buf) => {
                    let n = match read {
                        Err(e) => return Closed::Io(e),
                        Ok(0) => return Closed::Eof,
                        Ok(n) => n,
                    };
                    Counters::add(&self.ctx.counters.rtmp_bytes_in, n);
                    if let Err(closed) = self.on_bytes(&buf[..n]).await {
                        // Best effort: let the peer see our error status before we hang up.
                        let _ = self.flush().await;
                        return closed;
                    }
                    if let Err(closed) = self.flush().await {
                        return closed;
                    }
                    if self.publishing.is_some() && buf.len() < READ_BUFFER {
                        buf.resize(READ_BUFFER, 0);
                    }
                    if self.app.is_some() && self.publishing.is_none() && self.playing.is_none() {
                        deadline.as_mut().reset(tokio::time::Instant::now() + self.ctx.limits.idle_timeout);
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
            ServerEvent::ConnectRequested { app, .. } => match app.trim_end_matches('/') {
                "live" => {
                    self.take_role(&self.ctx.publishers_per_ip.clone(), "publishers")?;
                    self.session.accept_connect()?;
                    self.app = Some(App::Live);
                }
                "program" => {
                    self.take_role(&self.ctx.players_per_ip.clone(), "players")?;
                    self.session.accept_connect()?;
                    self.app = Some(App::Program);
                }
                _ => {
                    self.session.reject_connect(
                        "unknown application; publish to rtmp://HOST:1935/live/<stream key> \
                         or play rtmp://HOST:1935/program/live",
                    )?;
                    return Err(Closed::Refused(format!("connect to unknown application `{app}`")));
                }
            },
            ServerEvent::PublishRequested { stream_id, stream_key } => {
                if self.app != Some(App::Live) {
                    self.session.reject_publish(
                        stream_id,
                        "NetStream.Publish.Denied",
                        "publish to the live application",
                    )?;
                    return Err(Closed::Refused("publish on the program application".into()));
                }
                self.on_publish(stream_id, &stream_key).await?;
            }
            ServerEvent::Media { kind, timestamp, payload, .. } => {
                if let Some(p) = &mut self.publishing {
                    let now = Instant::now();
                    p.last_media = now;
                    let kind = match kind {
                        MediaKind::Audio => TagKind::Audio,
                        MediaKind::Video => TagKind::Video,
                    };
                    p.publisher.on_tag(now, FlvTag { kind, timestamp, payload });
                }
            }
            ServerEvent::Metadata { timestamp, payload, .. } => {
                if let Some(p) = &self.publishing {
                    p.publisher.on_tag(Instant::now(), FlvTag { kind: TagKind::Script, timestamp, payload });
                }
            }
            ServerEvent::PublishStopped { stream_id, .. } => {
                if self.publishing.as_ref().is_some_and(|p| p.stream_id == stream_id)
                    && let Some(p) = self.publishing.take()
                {
                    self.ctx.publishers.remove(self.conn);
                    tracing::info!("rtmp {}: {} stopped publishing cleanly", self.peer, p.publisher.dj.dj_name);
                    self.ctx
                        .queue
                        .report(Input::PublishStopped { conn: self.conn })
                        .await
                        .map_err(|_| Closed::QueueGone)?;
                }
            }
            ServerEvent::PlayRequested { stream_id, stream_name } => {
                let name = stream_name.split('?').next().unwrap_or_default();
                if self.app != Some(App::Program) || name != "live" || self.playing.is_some() {
                    self.session.reject_play(stream_id, "the program plays at rtmp://HOST:1935/program/live")?;
                    return Err(Closed::Refused(format!("play of unknown stream `{name}`")));
                }
                let Some(program) = self.ctx.program.subscribe(format!("rtmp player {}", self.peer)).await else {
                    self.session.reject_play(stream_id, "the program is not running")?;
                    return Err(Closed::ProgramEnded);
                };
                self.session.accept_play(stream_id)?;
                tracing::info!("rtmp {}: playing the program", self.peer);
                self.playing = Some(Playing { stream_id, program });
            }
            ServerEvent::PlayStopped { stream_id } => {
                if self.playing.as_ref().is_some_and(|p| p.stream_id == stream_id) {
                    self.playing = None;
                }
            }
        }
        Ok(())
    }

    /// Takes this address's place among publishers or players, refusing the `connect` when
    /// the address already has all its places of that kind.
    fn take_role(&mut self, cap: &Arc<PerIpCap>, what: &str) -> Result<(), Closed> {
        if self.role.is_some() {
            return Ok(());
        }
        match cap.try_acquire(self.peer.ip()) {
            Some(place) => {
                self.role = Some(place);
                Ok(())
            }
            None => {
                let why = format!("too many {what} from this address (at most {})", cap.limit());
                self.session.reject_connect(&why)?;
                Err(Closed::Refused(why))
            }
        }
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
            return refuse(&mut self.session, "NetStream.Publish.BadName", "malformed stream key".into());
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
                return refuse(&mut self.session, "NetStream.Publish.Denied", "database unavailable".into());
            }
        };
        if !user.is_active {
            return refuse(
                &mut self.session,
                "NetStream.Publish.Denied",
                format!("account {} is disabled", user.dj_name),
            );
        }

        let dj = Dj { user_id: UserId(user.id), dj_name: user.dj_name };
        let publisher = self.ctx.publishers.create(self.conn, dj.clone(), Instant::now());
        // Registered before the queue answers so an immediate on-air switch finds it.
        self.ctx.publishers.insert(publisher.clone());
        let (kick, kicked) = oneshot::channel();
        let decision = self.ctx.queue.publish(self.conn, dj.clone(), kick).await;
        match decision {
            Ok(PublishDecision::Accepted { on_air, position }) => {
                self.session.accept_publish(stream_id)?;
                self.publishing = Some(Publishing { stream_id, publisher, kicked, last_media: Instant::now() });
                if on_air {
                    tracing::info!("rtmp {}: {} is publishing and on air", self.peer, dj.dj_name);
                } else if position == 0 {
                    // Position 0 off air: a back-to-back member of the set on air.
                    tracing::info!("rtmp {}: {} is publishing, standing by in the set on air", self.peer, dj.dj_name);
                } else {
                    tracing::info!("rtmp {}: {} is publishing, queued at position {position}", self.peer, dj.dj_name);
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
                        format!("{}'s set just ended; wait for another DJ before going on air again", dj.dj_name)
                    }
                };
                refuse(&mut self.session, "NetStream.Publish.Denied", why)
            }
            Err(_) => {
                self.ctx.publishers.remove(self.conn);
                refuse(&mut self.session, "NetStream.Publish.Denied", "server is shutting down".into())
            }
        }
    }

    /// Sends a program tag to a player, with every other tag already waiting for it, in one
    /// write.
    async fn play(&mut self, first: ProgramTag) -> Result<(), Closed> {
        let Some(playing) = &mut self.playing else { return Ok(()) };
        let stream_id = playing.stream_id;
        let mut next = Some(first);
        while let Some(tag) = next.take() {
            queue_program_tag(&mut self.session, stream_id, &tag)?;
            if self.session.pending_output_bytes() < MAX_PLAY_BATCH {
                next = playing.program.try_recv_shared();
            }
        }
        self.flush().await
    }

    /// Writes out everything the session has queued. A peer that stops reading is cut off
    /// rather than allowed to hold this task (and its program subscription) forever.
    async fn flush(&mut self) -> Result<(), Closed> {
        self.unsent.extend(self.session.take_output());
        let queued: usize = self.unsent.iter().map(Bytes::len).sum();
        // Most writes fit in the socket's buffer at once and need no timer.
        try_write_pieces(&self.socket, &mut self.unsent)?;
        if !self.unsent.is_empty() {
            match tokio::time::timeout(WRITE_TIMEOUT, write_pieces(&mut self.socket, &mut self.unsent)).await {
                Ok(result) => result?,
                Err(_) => return Err(Closed::WriteTimeout(WRITE_TIMEOUT)),
            }
        }
        Counters::add(&self.ctx.counters.rtmp_bytes_out, queued);
        Ok(())
    }
}

/// Queues one program tag for a player. Audio and video on the usual stream id share their
/// chunk encoding with every other player (see [`ProgramTag`]).
fn queue_program_tag(session: &mut ServerSession, stream_id: u32, tag: &ProgramTag) -> Result<(), Closed> {
    let kind = match tag.kind {
        TagKind::Audio => MediaKind::Audio,
        TagKind::Video => MediaKind::Video,
        TagKind::Script => return Ok(session.send_metadata(stream_id, tag.timestamp, tag.payload.clone())?),
    };
    if stream_id == SHARED_STREAM_ID
        && let Some(encoded) = tag
            .rtmp_chunks(|t| ServerSession::encode_media(SHARED_STREAM_ID, kind, t.timestamp, t.payload.clone()).ok())
    {
        return Ok(session.send_encoded(encoded)?);
    }
    Ok(session.send_media(stream_id, kind, tag.timestamp, tag.payload.clone())?)
}

/// The next program tag for a player.
async fn program_tag(playing: &mut Option<Playing>) -> Option<ProgramTag> {
    match playing {
        Some(p) => p.program.recv_shared().await,
        None => std::future::pending().await,
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
