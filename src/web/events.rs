//! `GET /api/v1/events`: Server-Sent Events for live pages and overlays.
//!
//! A new subscriber gets `event: queue` and `event: stats` at once. Then: `queue` whenever
//! the lineup changes or the clock jumps (and at least every [`REFRESH`], so a countdown
//! never drifts for long), `stats` every second, and `notice` (`{"message": …}`) for each
//! queue notice, before the state it led to. Everything comes from the shared
//! [`LiveState`](super::LiveState), so subscribers cost no queue or store queries. The stream
//! ends when the server shuts down. No secrets are sent. One client address holds at most
//! `limits.max_event_streams_per_ip` streams (429 beyond).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::client_ip::ClientIp;
use super::error::ApiError;

/// Events buffered per subscriber. A subscriber that falls behind blocks only its own task,
/// which then sends the latest state, never a backlog of stale ones.
const SUBSCRIBER_BUFFER: usize = 16;
/// The queue state is sent at least this often.
const REFRESH: Duration = Duration::from_secs(5);

pub async fn events(State(state): State<AppState>, ClientIp(client): ClientIp) -> Result<impl IntoResponse, ApiError> {
    let Some(place) = state.event_streams.try_acquire(client) else {
        return Err(too_many("event streams", state.event_streams.limit()));
    };
    let mut notices = state.queue.subscribe();
    let mut queue = state.live.queue_updates();
    let mut stats = state.live.stats_updates();
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(SUBSCRIBER_BUFFER);
    tokio::spawn(async move {
        // The address's place is held for as long as this stream runs.
        let _place = place;
        let first = [event("queue", &**queue.borrow_and_update()), event("stats", &**stats.borrow_and_update())];
        for event in first {
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + REFRESH, REFRESH);
        loop {
            // Biased: a notice goes out before the state it led to.
            let event = tokio::select! {
                biased;
                _ = tx.closed() => return,
                notice = notices.recv() => match notice {
                    Ok(notice) => event("notice", &json!({ "message": notice.to_string() })),
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                },
                changed = queue.changed() => match changed {
                    Ok(()) => {
                        refresh.reset();
                        event("queue", &**queue.borrow_and_update())
                    }
                    Err(_) => return,
                },
                changed = stats.changed() => match changed {
                    Ok(()) => event("stats", &**stats.borrow_and_update()),
                    Err(_) => return,
                },
                _ = refresh.tick() => event("queue", &**queue.borrow_and_update()),
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

/// 429 for an address that already holds `limit` long-lived responses of one kind.
pub(super) fn too_many(what: &str, limit: usize) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        format!("Too many open {what} from your address (at most {limit})"),
    )
}

fn event(name: &str, data: &impl Serialize) -> Event {
    // Our views always serialise; an empty object keeps the stream going if one ever failed.
    let data = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Event::default().event(name).data(data)
}
