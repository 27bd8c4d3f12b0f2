//! `GET /api/v1/events`: Server-Sent Events for live pages and overlays.
//!
//! Every queue notice is sent as `event: notice` (`{"message": …}`), followed by the new
//! public state as `event: queue` (`{"on_air", "stream_queue", "remaining_time"}`); a new
//! subscriber gets the state at once, and a `queue` event every few seconds keeps timers
//! right without polling. No secrets are sent.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::ReceiverStream;

use super::AppState;
use super::api::remaining;
use super::error::ApiError;
use super::seed::dj_names;

/// Events buffered per subscriber before it is considered gone.
const SUBSCRIBER_BUFFER: usize = 16;
/// A full state refresh this often, for countdowns.
const REFRESH: Duration = Duration::from_secs(5);

pub async fn events(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut notices = state.queue.subscribe();
    let first = queue_event(&state).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(SUBSCRIBER_BUFFER);
    tokio::spawn(async move {
        if tx.send(Ok(first)).await.is_err() {
            return;
        }
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.tick().await;
        loop {
            let notice = tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(notice) => Some(notice.to_string()),
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return,
                },
                _ = refresh.tick() => None,
                _ = tx.closed() => return,
            };
            if let Some(message) = notice {
                let event = Event::default().event("notice").data(json!({ "message": message }).to_string());
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            let Ok(event) = queue_event(&state).await else { return };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::default()))
}

async fn queue_event(state: &AppState) -> Result<Event, ApiError> {
    let status = state.queue.status().await?;
    let data = json!({
        "on_air": status.lead.as_ref().map(|l| &l.dj.dj_name),
        "stream_queue": dj_names(&status),
        "remaining_time": remaining(&status),
    });
    Ok(Event::default().event("queue").data(data.to_string()))
}
