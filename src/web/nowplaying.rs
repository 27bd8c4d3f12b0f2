//! Now playing: DJs announce the current track (dashboard form, or their DJ software with
//! their own API token); it shows on overlays, in `GET /song-json` and in the set's
//! tracklist.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::CurrentUser;
use super::error::{ApiError, rejection};
use crate::history::announce_track;
use crate::ids::UserId;
use crate::store::{Track, TrackSource, User, unix_now};

/// Longest artist or title accepted.
const MAX_FIELD_CHARS: usize = 200;

#[derive(Deserialize)]
pub struct TrackForm {
    #[serde(default)]
    artist: String,
    #[serde(default)]
    title: String,
}

fn clean(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::bad_request(format!("{field} is required")));
    }
    if value.chars().count() > MAX_FIELD_CHARS {
        return Err(ApiError::bad_request(format!("{field} must be at most {MAX_FIELD_CHARS} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!("{field} must not contain control characters")));
    }
    Ok(value.to_owned())
}

/// Validates and records a track for `user`, then tells live pages.
pub async fn announce(state: &AppState, user: &User, form: TrackForm) -> Result<Track, ApiError> {
    let track = Track {
        artist: clean("artist", &form.artist)?,
        title: clean("title", &form.title)?,
        at: unix_now(),
        source: TrackSource::Dj,
    };
    let host = state.queue.status().await?.set_host_of(UserId(user.id));
    announce_track(&state.store, &state.recorder, user.id, host.0, &track)
        .await
        .map_err(|e| ApiError::internal("recording a track", e))?;
    tracing::info!("{} is playing {} – {}", user.dj_name, track.artist, track.title);
    state.live.poke();
    Ok(track)
}

/// `POST /api/v1/users/me/track {"artist", "title"}`.
pub async fn post_track(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    body: Result<Json<TrackForm>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(form) = body.map_err(rejection)?;
    let track = announce(&state, &user, form).await?;
    Ok(Json(json!({ "status": "success", "artist": track.artist, "title": track.title })))
}

/// `GET /song-json`: what the DJ on air is playing.
pub async fn song_json(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.queue.status().await?;
    let Some(lead) = status.lead else {
        return Ok(Json(json!({ "dj_name": null, "artist": null, "title": null, "song": null, "source": null })));
    };
    let track = state
        .store
        .current_track_in(lead.dj.user_id.0, lead.host().user_id.0, unix_now())
        .await
        .map_err(|e| ApiError::internal("loading the current track", e))?;
    let source = track.as_ref().map(|t| t.source);
    let (artist, title) = track.map(|t| (Some(t.artist), Some(t.title))).unwrap_or_default();
    let song = artist.as_ref().zip(title.as_ref()).map(|(a, t)| format!("{a} – {t}"));
    Ok(Json(json!({
        "dj_name": lead.dj.dj_name,
        "set_name": lead.set_name(),
        "artist": artist,
        "title": title,
        "song": song,
        "source": source,
    })))
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn track_fields_are_trimmed_and_bounded() {
        assert_eq!(clean("artist", "  Ada  ").unwrap(), "Ada");
        assert!(clean("artist", "   ").is_err());
        assert!(clean("title", &"x".repeat(201)).is_err());
        assert!(clean("title", "a\u{0}b").is_err());
    }
}
