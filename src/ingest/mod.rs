//! RTMP ingest: the accept loop, connection limits, and per-connection tasks.
//!
//! Each accepted socket gets one task ([`connection::Connection`]) that drives a sans-IO
//! [`crate::rtmp::server::ServerSession`]. The accept loop bounds the number of connections
//! in total (a semaphore, as in mini-redis) and per IP address; once a connection says what
//! it is (`connect` to `live` or to `program`), publishers and players from one address are
//! counted apart. Each connection bounds its own handshake time, idle time and message sizes.

mod connection;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::hub::Publishers;
use crate::ids::ConnId;
use crate::limits::Limits;
use crate::metrics::Counters;
use crate::program::ProgramBus;
use crate::queue::actor::QueueHandle;
use crate::ratelimit::{IpPermit, PerIpCap, RateLimiter};
use crate::rtmp::SessionLimits;
use crate::store::Store;

/// Everything a connection task needs, shared by all of them.
pub struct IngestContext {
    pub store: Store,
    pub queue: QueueHandle,
    pub program: ProgramBus,
    pub publishers: Publishers,
    pub limits: Limits,
    pub stall_timeout: Duration,
    pub session_limits: SessionLimits,
    pub publish_attempts: RateLimiter,
    pub counters: Arc<Counters>,
    next_conn: AtomicU64,
    /// Connections per address, whatever they do.
    per_ip: Arc<PerIpCap>,
    /// Connections per address that connected to `live` (to publish).
    publishers_per_ip: Arc<PerIpCap>,
    /// Connections per address that connected to `program` (to play).
    players_per_ip: Arc<PerIpCap>,
}

impl IngestContext {
    pub fn new(
        store: Store,
        queue: QueueHandle,
        program: ProgramBus,
        publishers: Publishers,
        limits: Limits,
        stall_timeout: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        let session_limits = SessionLimits { max_message_size: limits.max_message_size, ..SessionLimits::default() };
        let publish_attempts = RateLimiter::per_minute(limits.publish_attempts_per_minute);
        Self {
            store,
            queue,
            program,
            publishers,
            stall_timeout,
            session_limits,
            publish_attempts,
            counters,
            next_conn: AtomicU64::new(1),
            per_ip: PerIpCap::new(limits.max_connections_per_ip),
            publishers_per_ip: PerIpCap::new(limits.max_publishers_per_ip),
            players_per_ip: PerIpCap::new(limits.max_players_per_ip),
            limits,
        }
    }
}

/// Accepts RTMP connections until the listener fails or the task is dropped.
pub async fn serve(listener: TcpListener, ctx: Arc<IngestContext>) {
    let permits = Arc::new(Semaphore::new(ctx.limits.max_connections));
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Running out of file descriptors is transient: back off instead of spinning.
                tracing::warn!("rtmp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!("rtmp {peer}: refused, {} connections already open", ctx.limits.max_connections);
            continue;
        };
        let Some(slot) = ctx.per_ip.try_acquire(peer.ip()) else {
            tracing::warn!(
                "rtmp {peer}: refused, {} connections already open from this address",
                ctx.limits.max_connections_per_ip
            );
            continue;
        };
        let _ = socket.set_nodelay(true);
        let conn = ConnId(ctx.next_conn.fetch_add(1, Ordering::Relaxed));
        tokio::spawn(handle(conn, peer, socket, ctx.clone(), permit, slot));
    }
}

async fn handle(
    conn: ConnId,
    peer: SocketAddr,
    socket: tokio::net::TcpStream,
    ctx: Arc<IngestContext>,
    _permit: OwnedSemaphorePermit,
    _slot: IpPermit,
) {
    connection::Connection::new(conn, peer, socket, ctx).run().await;
}
