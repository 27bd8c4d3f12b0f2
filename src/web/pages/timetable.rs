//! The timetable page for everybody, and the admin console's booking forms
//! (docs/timetable.md).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::admin::{Nothing, console};
use super::{PageError, base_context, render};
use crate::calendar::parse_utc_minute;
use crate::store::{BookingRecord, BookingStatus, NewBooking, StoreError, unix_now};
use crate::web::AppState;
use crate::web::session::{CsrfForm, Member, Organiser, WebSession};

const DAY: i64 = 86_400;
/// Days the page shows: today and the next six.
const PAGE_DAYS: i64 = 7;
/// Days of bookings the admin console lists.
const CONSOLE_DAYS: i64 = 31;

fn view(booking: &BookingRecord) -> Value {
    context! {
        id => booking.id,
        dj_name => booking.dj_name,
        start => booking.starts_at,
        end => booking.ends_at(),
        minutes => booking.length_secs / 60,
        hard_start => booking.hard_start,
        requested => booking.status == BookingStatus::Requested,
    }
}

/// `GET /timetable`: the approved slots of the coming week. Times go out as Unix seconds
/// and the browser shows them in the viewer's time zone.
pub async fn page(State(state): State<AppState>, session: WebSession) -> Result<Response, PageError> {
    let bookings = upcoming(&state, PAGE_DAYS, true).await?;
    let ctx = context! {
        active => "timetable",
        bookings => bookings.iter().map(view).collect::<Vec<_>>(),
        ..base_context(&session)
    };
    Ok(render("timetable.html", ctx)?.into_response())
}

/// The bookings the admin console lists, requests included.
pub async fn console_bookings(state: &AppState) -> Result<Vec<Value>, PageError> {
    Ok(upcoming(state, CONSOLE_DAYS, false).await?.iter().map(view).collect())
}

/// The DJs with a default set length, for the admin console.
pub async fn console_set_lengths(state: &AppState) -> Result<Vec<Value>, PageError> {
    let lengths = state.store.default_set_lengths().await.map_err(|e| PageError::internal("listing set lengths", e))?;
    Ok(lengths.into_iter().map(|(_, dj_name, secs)| context! { dj_name => dj_name, minutes => secs / 60 }).collect())
}

/// The DJ's own bookings (requests too), for their dashboard.
pub async fn own_bookings(state: &AppState, user_id: i64) -> Result<Vec<Value>, PageError> {
    let bookings = upcoming(state, CONSOLE_DAYS, false).await?;
    Ok(bookings.iter().filter(|b| b.user_id == user_id).map(view).collect())
}

/// The bookings from now to `days` ahead; with `approved_only`, requests left out.
async fn upcoming(state: &AppState, days: i64, approved_only: bool) -> Result<Vec<BookingRecord>, PageError> {
    let now = unix_now();
    state
        .store
        .bookings_between(now, now + days * DAY, approved_only)
        .await
        .map_err(|e| PageError::internal("listing bookings", e))
}

#[derive(Deserialize)]
pub struct SetLengthForm {
    dj_name: String,
    /// Empty: back to the channel's swap interval.
    minutes: String,
}

/// `POST /admin/set-length`: a DJ's default set length, in minutes (empty clears it).
pub async fn set_length(
    State(state): State<AppState>,
    organiser: Organiser,
    CsrfForm(form): CsrfForm<SetLengthForm>,
) -> Response {
    let secs = match form.minutes.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(m) if (1..=24 * 60).contains(&m) => Some(m * 60),
            _ => {
                return refused(&state, &organiser, StatusCode::BAD_REQUEST, "Enter 1 to 1440 minutes, or nothing")
                    .await;
            }
        },
    };
    let user = match state.store.user_by_dj_name(form.dj_name.trim()).await {
        Ok(Some(user)) => user,
        Ok(None) => return refused(&state, &organiser, StatusCode::NOT_FOUND, "No such DJ").await,
        Err(e) => return PageError::internal("looking up a DJ", e).into_response(),
    };
    saved(&state, &organiser, state.store.set_default_set_secs(user.id, secs).await).await
}

#[derive(Deserialize)]
pub struct RequestForm {
    start: String,
    minutes: String,
}

/// `POST /dashboard/booking`: a DJ asks for a slot, where the channel allows it.
pub async fn request(State(state): State<AppState>, member: Member, CsrfForm(form): CsrfForm<RequestForm>) -> Response {
    if !state.timetable_requests {
        return PageError::new(StatusCode::FORBIDDEN, "Only admins book slots on this channel").into_response();
    }
    let start = parse_utc_minute(&form.start);
    let minutes = form.minutes.trim().parse::<i64>().ok().filter(|m| (1..=24 * 60).contains(m));
    let (Some(start), Some(minutes)) = (start, minutes) else {
        return PageError::new(StatusCode::BAD_REQUEST, "Enter a start (UTC) and 1 to 1440 minutes").into_response();
    };
    let new = NewBooking {
        user_id: member.user.id,
        starts_at: start,
        length_secs: minutes * 60,
        hard_start: false,
        status: BookingStatus::Requested,
        created_by: Some(member.user.id),
    };
    match state.store.create_booking(&new).await {
        Ok(_) => Redirect::to("/dashboard#bookings").into_response(),
        Err(e) => {
            let (status, message) = store_refusal(e);
            PageError::new(status, message).into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct BookingForm {
    dj_name: String,
    /// `datetime-local`, in UTC.
    start: String,
    minutes: String,
    #[serde(default)]
    hard_start: Option<String>,
}

async fn refused(state: &AppState, organiser: &Organiser, status: StatusCode, message: &str) -> Response {
    console(state, organiser, status, Some(message)).await
}

/// Back to the console after a timetable change (the queue reloads it), or the console
/// again with what the store refused.
async fn saved(state: &AppState, organiser: &Organiser, result: Result<(), StoreError>) -> Response {
    match result {
        Ok(()) => {
            state.queue.timetable_changed();
            Redirect::to("/admin#timetable").into_response()
        }
        Err(e) => {
            let (status, message) = store_refusal(e);
            refused(state, organiser, status, &message).await
        }
    }
}

fn store_refusal(err: StoreError) -> (StatusCode, String) {
    match err {
        StoreError::Overlap => (StatusCode::CONFLICT, "This slot overlaps another booking".into()),
        StoreError::NotFound => (StatusCode::NOT_FOUND, "No such booking or DJ".into()),
        StoreError::Invalid(field) => (StatusCode::BAD_REQUEST, format!("Invalid {field}")),
        other => {
            tracing::error!("changing the timetable: {other}");
            (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side.".into())
        }
    }
}

/// `POST /admin/bookings`: books a slot (approved).
pub async fn book(
    State(state): State<AppState>,
    organiser: Organiser,
    CsrfForm(form): CsrfForm<BookingForm>,
) -> Response {
    let Some(start) = parse_utc_minute(&form.start) else {
        return refused(&state, &organiser, StatusCode::BAD_REQUEST, "Enter the start as a date and time (UTC)").await;
    };
    let minutes = match form.minutes.trim().parse::<i64>() {
        Ok(m) if (1..=24 * 60).contains(&m) => m,
        _ => return refused(&state, &organiser, StatusCode::BAD_REQUEST, "Enter a length of 1 to 1440 minutes").await,
    };
    let user = match state.store.user_by_dj_name(form.dj_name.trim()).await {
        Ok(Some(user)) => user,
        Ok(None) => return refused(&state, &organiser, StatusCode::NOT_FOUND, "No such DJ").await,
        Err(e) => return PageError::internal("looking up a DJ", e).into_response(),
    };
    let new = NewBooking {
        user_id: user.id,
        starts_at: start,
        length_secs: minutes * 60,
        hard_start: form.hard_start.is_some(),
        status: BookingStatus::Approved,
        created_by: Some(organiser.0.user.id),
    };
    saved(&state, &organiser, state.store.create_booking(&new).await.map(drop)).await
}

/// `POST /admin/bookings/{id}/{approve|delete}`.
pub async fn booking_action(
    State(state): State<AppState>,
    organiser: Organiser,
    Path((id, action)): Path<(i64, String)>,
    _: CsrfForm<Nothing>,
) -> Response {
    let result = match action.as_str() {
        "approve" => state.store.approve_booking(id).await,
        "delete" => state.store.delete_booking(id).await,
        _ => return PageError::new(StatusCode::NOT_FOUND, "No such booking action").into_response(),
    };
    saved(&state, &organiser, result).await
}
