//! The DJ's own pages: dashboard (key, OBS set-up, live status, now playing) and past sets.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{PageError, base_context, render};
use crate::ids::UserId;
use crate::store::unix_now;
use crate::web::AppState;
use crate::web::api::remaining;
use crate::web::assets::hls_js_path;
use crate::web::nowplaying::{TrackForm, announce};
use crate::web::session::{CsrfForm, Member};

/// How many past sets the page lists.
const SETS_SHOWN: i64 = 50;

#[derive(Deserialize)]
pub struct DashboardQuery {
    welcome: Option<String>,
    saved: Option<String>,
}

/// `rtmp://<the host the browser used>:<rtmp port>/live`, unless configured.
fn server_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.public_rtmp_url {
        return url.clone();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    // Strip the HTTP port (IPv6 literals keep their brackets).
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !name.is_empty() => name,
        _ => host,
    };
    format!("rtmp://{host}:{}/live", state.rtmp_port)
}

/// `GET /dashboard`.
pub async fn dashboard(
    State(state): State<AppState>,
    member: Member,
    headers: HeaderMap,
    Query(query): Query<DashboardQuery>,
) -> Result<Response, PageError> {
    let user = &member.user;
    let status = state.queue.status().await?;
    let on_air = status.lead.as_ref().is_some_and(|l| l.dj.user_id == UserId(user.id));
    let position = status.waiting.iter().find(|w| w.dj.user_id == UserId(user.id)).map(|w| w.position);
    let track = state
        .store
        .current_track_in(user.id, status.set_host_of(UserId(user.id)).0, unix_now())
        .await
        .map_err(|e| PageError::internal("loading the current track", e))?;
    // The set on air, when this DJ is one of its back-to-back members.
    let my_set = status.lead.as_ref().filter(|lead| lead.members.iter().any(|m| m.dj.user_id == UserId(user.id)));
    let standing_by = my_set
        .and_then(|lead| lead.members.iter().find(|m| m.dj.user_id == UserId(user.id)))
        .filter(|m| !m.on_air)
        .and_then(|m| m.conn);
    let mine = match &status.lead {
        Some(lead) if on_air => lead.conn,
        _ if standing_by.is_some() => standing_by,
        _ => status.waiting.iter().find(|w| w.dj.user_id == UserId(user.id)).and_then(|w| w.conn),
    };
    let set = my_set.map(|lead| {
        let members: Vec<_> = lead
            .members
            .iter()
            .map(|m| {
                context! { dj_name => m.dj.dj_name, on_air => m.on_air, live => m.conn.is_some(),
                me => m.dj.user_id == UserId(user.id) }
            })
            .collect();
        context! { name => lead.set_name(), members => members }
    });
    // A DJ on air or queued may start a back-to-back set by adding a partner.
    let can_add = on_air || set.is_some() || position.is_some();
    let queued_members: Vec<String> = status
        .waiting
        .iter()
        .find(|w| w.dj.user_id == UserId(user.id) || w.members.iter().any(|m| m.dj.user_id == UserId(user.id)))
        .map(|w| w.members.iter().map(|m| m.dj.dj_name.clone()).collect())
        .unwrap_or_default();
    // Shown while queued, so the DJ can fix their settings before going on air.
    let publisher = mine.and_then(|c| state.publishers.get(c));
    let now = std::time::Instant::now();
    let report = publisher.as_ref().map(|p| p.profile_report(now));
    let advice = publisher.as_ref().map(|p| p.health(now).1.advice).unwrap_or_default();
    let channel = state.publishers.channel();
    let profile = &channel.profile;
    Ok(render(
        "dashboard.html",
        context! {
            active => "dashboard",
            server_url => server_url(&state, &headers),
            stream_key => user.stream_key,
            me => user.dj_name,
            on_air => on_air,
            position => position,
            remaining_time => remaining(&status),
            swap_interval => status.swap_interval.as_secs(),
            track => track,
            welcome => query.welcome.is_some(),
            bookings => super::timetable::own_bookings(&state, user.id).await?,
            booking_requests => state.timetable_requests,
            saved => query.saved,
            channel => context! {
                width => profile.width, height => profile.height, fps => crate::channel::profile::fps(profile.fps),
                sample_rate => crate::channel::profile::khz(profile.sample_rate),
                stereo => profile.channels == 2, description => profile.describe(),
                off_profile => channel.off_profile,
            },
            report => report,
            advice => advice,
            publishing => publisher.is_some(),
            playlist => Value::from_safe_string(preview_playlist(user.id)),
            hls_js => Value::from_safe_string(hls_js_path()),
            // It loads when the DJ opens it: that click allows playing at once.
            preview => true,
            autoplay => true,
            muted => true,
            set => set,
            can_add => can_add,
            queued_members => queued_members,
            standing_by => standing_by.is_some(),
            ..base_context(&member.session)
        },
    )?
    .into_response())
}

fn preview_playlist(user_id: i64) -> String {
    format!("/preview/{user_id}/index.m3u8")
}

/// `GET /preview/{user_id}`: a DJ's stream as the server receives it, for that DJ and the
/// organisers (the admin console links it for every connected DJ). Others get the 404 of
/// a DJ who does not stream, as the playlist itself answers (`web::preview`).
pub async fn preview(
    State(state): State<AppState>,
    member: Member,
    Path(user_id): Path<i64>,
) -> Result<Response, PageError> {
    let not_streaming = || PageError::new(StatusCode::NOT_FOUND, "This DJ is not streaming.");
    if member.user.id != user_id && !member.user.is_admin {
        return Err(not_streaming());
    }
    let publisher = state.publishers.newest_of(UserId(user_id)).ok_or_else(not_streaming)?;
    Ok(render(
        "preview.html",
        context! {
            dj_name => publisher.dj.dj_name,
            playlist => Value::from_safe_string(preview_playlist(user_id)),
            hls_js => Value::from_safe_string(hls_js_path()),
            preview => true,
            autoplay => true,
            muted => true,
            ..base_context(&member.session)
        },
    )?
    .into_response())
}

/// `POST /dashboard/track`: the DJ announces what is playing.
pub async fn post_track(
    State(state): State<AppState>,
    member: Member,
    CsrfForm(form): CsrfForm<TrackForm>,
) -> Result<Response, PageError> {
    announce(&state, &member.user, form).await?;
    Ok(Redirect::to("/dashboard?saved=track").into_response())
}

/// `GET /sets`: the DJ's past sets with their tracklists.
pub async fn sets(State(state): State<AppState>, member: Member) -> Result<Response, PageError> {
    let sets = state
        .store
        .sets_of(member.user.id, SETS_SHOWN)
        .await
        .map_err(|e| PageError::internal("loading past sets", e))?;
    let sets: Vec<_> = sets
        .into_iter()
        .map(|set| {
            let duration = set.ended_at.map(|end| (end - set.started_at).max(0));
            let recording = set
                .recording
                .as_deref()
                .and_then(|p| std::path::Path::new(p).file_name())
                .map(|f| f.to_string_lossy().into_owned());
            let tracks: Vec<_> = set
                .tracks
                .iter()
                .map(|t| {
                    context! {
                        offset => (t.at - set.started_at).max(0), artist => t.artist, title => t.title,
                        source => t.source,
                    }
                })
                .collect();
            context! {
                started_at => set.started_at, duration => duration, end_reason => set.end_reason,
                recording => recording, tracks => tracks,
            }
        })
        .collect();
    Ok(render("sets.html", context! { active => "sets", sets => sets, ..base_context(&member.session) })?
        .into_response())
}
