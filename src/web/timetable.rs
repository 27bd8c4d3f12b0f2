//! The timetable over HTTP: the public JSON and iCal feed, and the admin API for bookings
//! and per-DJ default set lengths (docs/timetable.md).

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{AdminUser, CurrentUser};
use super::error::{ApiError, rejection};
use crate::calendar::civil_from_days;
use crate::store::{BookingRecord, BookingStatus, NewBooking, StoreError, unix_now};

const DAY: i64 = 86_400;
/// Days the public listing covers unless asked (today and the next six).
const DEFAULT_DAYS: u32 = 7;
/// The most days one listing covers.
const MAX_DAYS: u32 = 62;
/// Bookings the status lists.
const UPCOMING: usize = 5;
/// The longest slot that can be booked: a whole day and night.
const MAX_LENGTH_SECS: i64 = DAY;

#[derive(Deserialize)]
pub struct DaysQuery {
    days: Option<u32>,
}

/// The window a listing covers: slots ending after now and starting within `days`.
fn window(query: Result<Query<DaysQuery>, QueryRejection>) -> Result<(i64, i64), ApiError> {
    let Query(query) = query.map_err(rejection)?;
    let days = query.days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(ApiError::bad_request(format!("days must be between 1 and {MAX_DAYS}")));
    }
    let now = unix_now();
    Ok((now, now.saturating_add(i64::from(days) * DAY)))
}

/// What everybody may see of a booking: no user ids, emails or keys.
fn public(booking: &BookingRecord) -> Value {
    json!({
        "id": booking.id,
        "dj_name": booking.dj_name,
        "start": booking.starts_at,
        "end": booking.ends_at(),
        "hard_start": booking.hard_start,
    })
}

fn store_error(context: &str, err: StoreError) -> ApiError {
    match err {
        StoreError::Overlap => ApiError::new(StatusCode::CONFLICT, "This slot overlaps another booking"),
        StoreError::NotFound => ApiError::not_found("No such booking or DJ"),
        StoreError::Invalid(field) => ApiError::bad_request(format!("invalid {field}")),
        other => ApiError::internal(context, other),
    }
}

/// `GET /api/v1/timetable?days=N`: approved bookings, public fields, earliest first.
pub async fn public_json(
    State(state): State<AppState>,
    query: Result<Query<DaysQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (from, to) = window(query)?;
    let bookings =
        state.store.bookings_between(from, to, true).await.map_err(|e| store_error("listing bookings", e))?;
    Ok(Json(json!({ "bookings": bookings.iter().map(public).collect::<Vec<_>>() })))
}

/// Bookings not over yet that start within a day, earliest first, from what the queue
/// was last given (no query per caller).
pub fn upcoming(state: &AppState) -> Vec<BookingRecord> {
    let now = unix_now();
    state.queue.booked().iter().filter(|b| b.ends_at() > now && b.starts_at < now + DAY).cloned().collect()
}

/// The bookings `GET /api/v1/status` shows: the next few, public fields.
pub fn upcoming_json(state: &AppState) -> Vec<Value> {
    upcoming(state).iter().take(UPCOMING).map(public).collect()
}

/// `GET /api/v1/bookings?days=N` (admin): every booking with its status and who booked it.
pub async fn list(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    query: Result<Query<DaysQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (from, to) = window(query)?;
    let bookings =
        state.store.bookings_between(from, to, false).await.map_err(|e| store_error("listing bookings", e))?;
    Ok(Json(json!({ "bookings": bookings })))
}

#[derive(Deserialize)]
pub struct BookingBody {
    dj_name: String,
    /// Unix seconds.
    start: i64,
    length_secs: i64,
    #[serde(default)]
    hard_start: bool,
}

impl BookingBody {
    fn validate(&self) -> Result<(), ApiError> {
        if !(1..=MAX_LENGTH_SECS).contains(&self.length_secs) {
            return Err(ApiError::bad_request(format!("length_secs must be between 1 and {MAX_LENGTH_SECS}")));
        }
        if self.start <= 0 {
            return Err(ApiError::bad_request("start must be a Unix time in seconds"));
        }
        Ok(())
    }
}

async fn user_id_of(state: &AppState, dj_name: &str) -> Result<i64, ApiError> {
    match state.store.user_by_dj_name(dj_name).await {
        Ok(Some(user)) => Ok(user.id),
        Ok(None) => Err(ApiError::not_found("No such DJ")),
        Err(e) => Err(ApiError::internal("looking up a DJ", e)),
    }
}

/// `POST /api/v1/bookings {"dj_name", "start", "length_secs", "hard_start"}`: an admin
/// books (approved at once); a DJ, where the channel allows it, asks for a slot of their
/// own, which counts once an admin approves it.
pub async fn create(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    body: Result<Json<BookingBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !user.is_admin && !state.timetable_requests {
        return Err(ApiError::forbidden("Only admins book slots on this channel"));
    }
    let Json(body) = body.map_err(rejection)?;
    body.validate()?;
    let (user_id, status) = if user.is_admin {
        (user_id_of(&state, &body.dj_name).await?, BookingStatus::Approved)
    } else if body.dj_name == user.dj_name {
        (user.id, BookingStatus::Requested)
    } else {
        return Err(ApiError::forbidden("DJs ask for slots for themselves only"));
    };
    let new = NewBooking {
        user_id,
        starts_at: body.start,
        length_secs: body.length_secs,
        hard_start: body.hard_start,
        status,
        created_by: Some(user.id),
    };
    let booking = state.store.create_booking(&new).await.map_err(|e| store_error("booking a slot", e))?;
    state.queue.timetable_changed();
    Ok((StatusCode::CREATED, Json(json!(booking))))
}

/// `PATCH /api/v1/bookings/{id}` (admin), with the same body as creating one.
pub async fn update(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    body: Result<Json<BookingBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(rejection)?;
    body.validate()?;
    let user_id = user_id_of(&state, &body.dj_name).await?;
    state
        .store
        .update_booking(id, user_id, body.start, body.length_secs, body.hard_start)
        .await
        .map_err(|e| store_error("changing a booking", e))?;
    state.queue.timetable_changed();
    Ok(Json(json!({ "status": "success" })))
}

/// `DELETE /api/v1/bookings/{id}` (admin).
pub async fn delete(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    state.store.delete_booking(id).await.map_err(|e| store_error("deleting a booking", e))?;
    state.queue.timetable_changed();
    Ok(Json(json!({ "status": "success" })))
}

/// `POST /api/v1/bookings/{id}/approve` (admin): a DJ's request counts from now on.
pub async fn approve(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    state.store.approve_booking(id).await.map_err(|e| store_error("approving a booking", e))?;
    state.queue.timetable_changed();
    Ok(Json(json!({ "status": "success" })))
}

#[derive(Deserialize)]
pub struct SetLengthBody {
    /// `null` clears it: the DJ gets the channel's swap interval again.
    seconds: Option<i64>,
}

/// `POST /api/v1/users/{dj_name}/default-set-length {"seconds": n | null}` (admin).
pub async fn set_default_set_length(
    AdminUser(_): AdminUser,
    State(state): State<AppState>,
    Path(dj_name): Path<String>,
    body: Result<Json<SetLengthBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(rejection)?;
    let user_id = user_id_of(&state, &dj_name).await?;
    state
        .store
        .set_default_set_secs(user_id, body.seconds)
        .await
        .map_err(|e| store_error("setting a default set length", e))?;
    state.queue.timetable_changed();
    Ok(Json(json!({ "status": "success" })))
}

/// `GET /timetable.ics`: the approved bookings of the coming weeks as an RFC 5545 calendar.
pub async fn ical_feed(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let now = unix_now();
    let bookings = state
        .store
        .bookings_between(now - DAY, now + i64::from(MAX_DAYS) * DAY, true)
        .await
        .map_err(|e| store_error("listing bookings", e))?;
    let host = state
        .public_url
        .as_deref()
        .and_then(|url| url.split("://").nth(1))
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or("motherstream");
    let body = calendar(&bookings, now, host);
    Ok(([(header::CONTENT_TYPE, "text/calendar; charset=utf-8")], body).into_response())
}

/// The calendar text. Written by hand: the subset needed (one VEVENT per booking, UTC
/// times) is a few lines, where the `icalendar` crate would bring a date library the
/// server has no other use for.
fn calendar(bookings: &[BookingRecord], now: i64, host: &str) -> String {
    let host: String = host.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')).collect();
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//motherstream//timetable//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
    ];
    for booking in bookings {
        lines.push("BEGIN:VEVENT".to_owned());
        lines.push(format!("UID:booking-{}@{host}", booking.id));
        lines.push(format!("DTSTAMP:{}", utc_stamp(now)));
        lines.push(format!("DTSTART:{}", utc_stamp(booking.starts_at)));
        lines.push(format!("DTEND:{}", utc_stamp(booking.ends_at())));
        lines.push(format!("SUMMARY:{}", escape_text(&booking.dj_name)));
        lines.push("END:VEVENT".to_owned());
    }
    lines.push("END:VCALENDAR".to_owned());
    lines.iter().map(|line| fold(line)).collect()
}

/// RFC 5545 DATE-TIME in UTC: `20261130T220000Z`.
fn utc_stamp(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(DAY));
    let secs = unix.rem_euclid(DAY);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// RFC 5545 TEXT: backslash, comma and semicolon escaped, line breaks as `\n`.
fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | ',' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// One content line, folded at 75 octets (never inside a UTF-8 character), with CRLF.
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    // The first line holds 75 octets; continuations start with a space, so 74 more each.
    let mut room = 75;
    let mut used = 0;
    for c in line.chars() {
        if used + c.len_utf8() > room {
            out.push_str("\r\n ");
            room = 74;
            used = 0;
        }
        out.push(c);
        used += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booking(id: i64, dj_name: &str, starts_at: i64) -> BookingRecord {
        BookingRecord {
            id,
            user_id: 7,
            dj_name: dj_name.into(),
            starts_at,
            length_secs: 5400,
            hard_start: false,
            status: BookingStatus::Approved,
            created_by: None,
            created_at: 0,
        }
    }

    #[test]
    fn the_calendar_has_one_event_per_booking_in_utc() {
        // 2026-11-30 22:00:00 UTC.
        let text = calendar(&[booking(3, "Alice", 1_796_076_000)], 1_795_910_400, "radio.example");
        assert!(text.ends_with("END:VCALENDAR\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "CRLF line endings only");
        let lines: Vec<&str> = text.split("\r\n").collect();
        for expected in [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "BEGIN:VEVENT",
            "UID:booking-3@radio.example",
            "DTSTAMP:20261129T000000Z",
            "DTSTART:20261130T220000Z",
            "DTEND:20261130T233000Z",
            "SUMMARY:Alice",
            "END:VEVENT",
        ] {
            assert!(lines.contains(&expected), "{expected} in {text}");
        }
    }

    #[test]
    fn text_is_escaped_and_long_lines_are_folded_at_75_octets() {
        assert_eq!(escape_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
        let long = format!("SUMMARY:{}", "é".repeat(60));
        let folded = fold(&long);
        let parts: Vec<&str> = folded.trim_end_matches("\r\n").split("\r\n").collect();
        assert!(parts.len() > 1);
        assert!(parts.iter().all(|part| part.len() <= 75), "{parts:?}");
        assert!(parts[1..].iter().all(|part| part.starts_with(' ')));
        let unfolded: String = parts.iter().enumerate().map(|(i, p)| if i == 0 { *p } else { &p[1..] }).collect();
        assert_eq!(unfolded, long, "unfolding gives the line back");
        assert_eq!(fold("SHORT"), "SHORT\r\n");
    }
}
