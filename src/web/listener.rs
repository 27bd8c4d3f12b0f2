//! The HTTP accept loop. `axum::serve` has neither a connection cap nor a header-read
//! timeout, so a crowd of idle or slow-talking sockets could hold tasks and file descriptors
//! without limit; this loop bounds both.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

use super::ApiError;
use crate::ratelimit::PerIpCap;

/// Time given to open responses to finish at shutdown; `/program.flv` never does by itself.
const DRAIN: Duration = Duration::from_secs(5);
/// Refused connections are logged at most this often, with their count.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Connections open at once; beyond it new ones are closed as soon as accepted.
    pub max_connections: usize,
    /// Connections open at once from one address (not counting trusted proxies).
    pub max_connections_per_ip: usize,
    /// A request head (the first, or the next on a keep-alive connection) must be complete
    /// within this time or the connection is closed.
    pub header_timeout: Duration,
}

/// Serves `app` until `shutdown` resolves, then lets open connections finish for a while.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    trusted_proxies: Vec<IpNet>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = PerIpCap::new(limits.max_connections_per_ip);
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let mut refused = 0u64;
    let mut last_refusal_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Running out of file descriptors is transient: back off instead of spinning.
                    tracing::warn!("http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Trusted proxies carry everyone's requests: only the total bounds them.
        let trusted = trusted_proxies.iter().any(|net| net.contains(&peer.ip()));
        let place = if trusted { None } else { per_ip.try_acquire(peer.ip()) };
        let permit = if trusted || place.is_some() { permits.clone().try_acquire_owned().ok() } else { None };
        let Some(permit) = permit else {
            // Closed at once: it costs no more than the accept.
            drop(socket);
            refused += 1;
            if last_refusal_log.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY) {
                tracing::warn!(
                    "http: {refused} connection(s) refused, {} open in total or {} from their address already \
                     (limits.http_max_connections, limits.http_max_connections_per_ip)",
                    limits.max_connections,
                    limits.max_connections_per_ip
                );
                last_refusal_log = Some(Instant::now());
                refused = 0;
            }
            continue;
        };
        let _ = socket.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().call(request)
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(socket), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("http {peer}: {e}");
            }
            drop((permit, place));
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::info!("http: closing the responses still open after {DRAIN:?}");
    }
}

/// Answers 408 when a request is not answered in `limit`: the header timeout ends with the
/// head, and a client could otherwise hold a connection and a task by trickling its body.
pub(super) async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(StatusCode::REQUEST_TIMEOUT, "The request took too long").into_response(),
    }
}
