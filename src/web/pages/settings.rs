//! The DJ's settings: profile, picture, password, stream key, account deletion.

use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::{Value, context};
use serde::Deserialize;

use super::{PageError, base_context, render, render_status};
use crate::integrations::discord::is_discord_user_id;
use crate::store::Profile;
use crate::web::AppState;
use crate::web::accounts::{self, AccountError};
use crate::web::pictures::{self, MAX_PICTURE_BYTES};
use crate::web::session::{CsrfForm, Member, check_origin, end_session, verify_csrf};

#[derive(Deserialize)]
pub struct SettingsQuery {
    saved: Option<String>,
}

fn settings_context(member: &Member, extra: Value) -> Value {
    let user = &member.user;
    context! {
        active => "settings",
        dj_name => user.dj_name,
        email => user.email,
        timezone => user.timezone,
        picture_url => user.profile_picture.as_deref().map(pictures::url),
        max_picture_mib => MAX_PICTURE_BYTES / 1024 / 1024,
        up_next_email => user.up_next_email,
        discord_user_id => user.discord_user_id,
        ..minijinja::value::merge_maps([extra, base_context(&member.session)])
    }
}

/// `GET /settings`.
pub async fn settings(member: Member, Query(query): Query<SettingsQuery>) -> Result<Response, PageError> {
    Ok(render("settings.html", settings_context(&member, context! { saved => query.saved }))?.into_response())
}

/// The settings page again with an error next to the form `section`.
fn failed(member: &Member, section: &str, status: StatusCode, message: &str) -> Response {
    render_status(status, "settings.html", settings_context(member, context! { section => section, error => message }))
}

fn saved(what: &str) -> Response {
    Redirect::to(&format!("/settings?saved={what}")).into_response()
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    dj_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    timezone: String,
}

/// `POST /settings/profile`.
pub async fn profile(State(state): State<AppState>, member: Member, CsrfForm(form): CsrfForm<ProfileForm>) -> Response {
    let profile = Profile { dj_name: form.dj_name, email: form.email, timezone: form.timezone };
    match accounts::update_profile(&state, &member.user, profile).await {
        Ok(()) => {
            state.live.poke(); // the name may be on the overlays
            saved("profile")
        }
        Err(e) => failed(&member, "profile", e.status, &e.message),
    }
}

#[derive(Deserialize)]
pub struct UpNextForm {
    /// A checkbox: present ("on") when ticked.
    up_next_email: Option<String>,
    #[serde(default)]
    discord_user_id: String,
}

/// `POST /settings/up-next`: the email when up next, and the Discord user id to mention.
pub async fn up_next(State(state): State<AppState>, member: Member, CsrfForm(form): CsrfForm<UpNextForm>) -> Response {
    let discord = form.discord_user_id.trim();
    let discord = (!discord.is_empty()).then_some(discord);
    if discord.is_some_and(|id| !is_discord_user_id(id)) {
        let message = "A Discord user id is 17 to 20 digits: in Discord, turn on Developer Mode, then right-click \
                       your name and choose Copy User ID.";
        return failed(&member, "up-next", StatusCode::UNPROCESSABLE_ENTITY, message);
    }
    match state.store.set_up_next(member.user.id, form.up_next_email.is_some(), discord).await {
        Ok(()) => saved("up-next"),
        Err(e) => PageError::internal("saving up-next notifications", e).into_response(),
    }
}

/// `POST /settings/picture` (multipart: `csrf`, `picture`).
pub async fn picture(
    State(state): State<AppState>,
    member: Member,
    headers: HeaderMap,
    multipart: Multipart,
) -> Response {
    match store_picture(&state, &member, &headers, multipart).await {
        Ok(()) => {
            state.live.poke();
            saved("picture")
        }
        Err(e) => failed(&member, "picture", e.status, &e.message),
    }
}

async fn store_picture(
    state: &AppState,
    member: &Member,
    headers: &HeaderMap,
    mut multipart: Multipart,
) -> Result<(), AccountError> {
    let bad = |status: StatusCode, message: &str| AccountError { status, message: message.to_owned() };
    check_origin(headers).map_err(|e| bad(e.status, &e.message))?;
    let mut csrf = None;
    let mut upload = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| bad(StatusCode::PAYLOAD_TOO_LARGE, "The picture is too large or the upload was cut off"))?
    {
        match field.name() {
            Some("csrf") => csrf = field.text().await.ok(),
            Some("picture") => {
                upload = Some(field.bytes().await.map_err(|_| {
                    bad(StatusCode::PAYLOAD_TOO_LARGE, "The picture is too large or the upload was cut off")
                })?)
            }
            _ => {}
        }
    }
    verify_csrf(headers, csrf.as_deref().unwrap_or("")).map_err(|e| bad(e.status, &e.message))?;
    if !state.picture_uploads.allow(member.user.id) {
        return Err(bad(StatusCode::TOO_MANY_REQUESTS, "Too many uploads; try again in a minute"));
    }
    let bytes = upload.unwrap_or_default();
    let kind = pictures::check(&bytes).map_err(|e| {
        let status = match e {
            pictures::PictureError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        bad(status, &e.to_string())
    })?;
    let file = pictures::save(state, member.user.id, kind, &bytes)
        .await
        .map_err(|e| AccountError::internal("storing a picture", e))?;
    pictures::replace(state, member.user.id, Some(&file))
        .await
        .map_err(|e| AccountError::internal("saving the picture", e))
}

#[derive(Deserialize)]
pub struct Nothing {}

/// `POST /settings/picture/remove`.
pub async fn remove_picture(
    State(state): State<AppState>,
    member: Member,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Result<Response, PageError> {
    pictures::replace(&state, member.user.id, None).await.map_err(|e| PageError::internal("removing a picture", e))?;
    state.live.poke();
    Ok(saved("picture"))
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// `POST /settings/password`: other browsers are logged out, this one stays.
pub async fn password(
    State(state): State<AppState>,
    member: Member,
    CsrfForm(form): CsrfForm<PasswordForm>,
) -> Response {
    let keep = member.session.token_hash.as_deref();
    match accounts::change_password(&state, &member.user, &form.current_password, &form.new_password, keep).await {
        Ok(()) => saved("password"),
        Err(e) => failed(&member, "password", e.status, &e.message),
    }
}

/// `POST /settings/stream-key`: a new key; the old one stops working at once.
pub async fn stream_key(
    State(state): State<AppState>,
    member: Member,
    CsrfForm(_): CsrfForm<Nothing>,
) -> Result<Response, PageError> {
    accounts::regenerate_key(&state, &member.user).await?;
    Ok(Redirect::to("/dashboard?saved=key").into_response())
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    password: String,
}

/// `POST /settings/delete`: asks for the password once more, then deletes everything.
pub async fn delete(State(state): State<AppState>, member: Member, CsrfForm(form): CsrfForm<DeleteForm>) -> Response {
    if let Err(e) = accounts::authenticate(&state, &member.user.email, &form.password).await {
        let message = if e.status.is_client_error() { "The password is not correct" } else { e.message.as_str() };
        return failed(&member, "delete", e.status, message);
    }
    if let Err(e) = accounts::delete_account(&state, &member.user).await {
        return failed(&member, "delete", e.status, &e.message);
    }
    match end_session(&state, &member.session).await {
        Ok(cookies) => (cookies, Redirect::to("/?deleted=1")).into_response(),
        Err(e) => e.into_response(),
    }
}
