//! Account operations shared by the pages and the JSON API: sign-up, password check and
//! change, stream key rotation, deletion. Each returns an [`AccountError`] whose message is
//! fit to show the user; the callers turn it into a form error or a JSON `{"detail"}`.

use std::sync::LazyLock;

use axum::http::StatusCode;

use super::AppState;
use super::error::ApiError;
use super::pages::PageError;
use crate::auth::{
    generate_stream_key, hash_password, normalize_dj_name, validate_email, validate_password, verify_password,
};
use crate::calendar::validate_timezone;
use crate::ids::UserId;
use crate::queue::engine::{AdminCommand, AdminError};
use crate::store::{NewUser, Profile, StoreError, User};

/// Wrong login, whether the account exists or not: the message never tells which.
pub const BAD_LOGIN: &str = "Incorrect email or password";

/// Why the last active admin cannot be disabled, demoted or deleted.
const LAST_ADMIN: &str = "That would leave no active admin: make someone else an admin first";

#[derive(Debug)]
pub struct AccountError {
    pub status: StatusCode,
    pub message: String,
}

impl AccountError {
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub(crate) fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {err}");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: "Something went wrong on our side.".into() }
    }

    pub(super) fn from_store(context: &str, err: StoreError) -> Self {
        match err {
            // Sign-up says which field is taken: DJ names are public anyway, and the email
            // case is the price of telling people why they cannot register.
            StoreError::Conflict(field) => {
                Self { status: StatusCode::CONFLICT, message: capitalised(&crate::store::conflict_message(field)) }
            }
            StoreError::Invalid(field) => Self::invalid(format!("{field} contains characters that are not allowed")),
            StoreError::LastAdmin => Self { status: StatusCode::FORBIDDEN, message: LAST_ADMIN.into() },
            other => Self::internal(context, other),
        }
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        ApiError::new(e.status, e.message)
    }
}

impl From<AccountError> for PageError {
    fn from(e: AccountError) -> Self {
        PageError::new(e.status, e.message)
    }
}

/// Hashes off the async runtime: argon2id takes tens of milliseconds by design.
async fn hash(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AccountError::internal("password hashing", e))?
        .map_err(|e| AccountError::internal("password hashing", e))
}

async fn verify(password: String, hash: String) -> Result<bool, AccountError> {
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| AccountError::internal("password check", e))
}

/// A real argon2id hash (of a random password), checked when the login name is unknown so
/// that both cases cost the same.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_password(&generate_stream_key()).unwrap_or_default());

/// Creates a DJ account (public sign-up: never an admin, even on a fresh server).
pub async fn sign_up(state: &AppState, dj_name: &str, email: &str, password: &str) -> Result<User, AccountError> {
    create_account(state, dj_name, email, password, false).await
}

/// Checks what a new account is made of, with a message fit for the user.
pub fn validate_new_account(dj_name: &str, email: &str, password: &str) -> Result<(), AccountError> {
    normalize_dj_name(dj_name.trim()).map_err(AccountError::invalid)?;
    validate_email(email.trim()).map_err(AccountError::invalid)?;
    validate_password(password).map_err(AccountError::invalid)
}

/// Creates an account, an admin if `is_admin` (the setup link).
pub async fn create_account(
    state: &AppState,
    dj_name: &str,
    email: &str,
    password: &str,
    is_admin: bool,
) -> Result<User, AccountError> {
    validate_new_account(dj_name, email, password)?;
    let new = NewUser {
        dj_name: normalize_dj_name(dj_name.trim()).map_err(AccountError::invalid)?,
        email: email.trim().to_owned(),
        password_hash: hash(password.to_owned()).await?,
        stream_key: generate_stream_key(),
        is_admin,
    };
    let user = state.store.create_user(&new).await.map_err(|e| AccountError::from_store("sign-up", e))?;
    tracing::info!("new account: {} (user {}{})", user.dj_name, user.id, if user.is_admin { ", admin" } else { "" });
    Ok(user)
}

/// Checks a login (email or DJ name) and password; inactive accounts are refused.
pub async fn authenticate(state: &AppState, login: &str, password: &str) -> Result<User, AccountError> {
    let user = state.store.user_by_login(login).await.map_err(|e| AccountError::internal("login lookup", e))?;
    let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.clone());
    let valid = verify(password.to_owned(), hash).await?;
    match user {
        Some(user) if valid && user.is_active => Ok(user),
        Some(_) if valid => Err(AccountError::invalid("This account is disabled")),
        _ => Err(AccountError::invalid(BAD_LOGIN)),
    }
}

/// Changes a password after checking the current one; other sessions of the user end
/// (all of them when `keep_session` is `None`).
pub async fn change_password(
    state: &AppState,
    user: &User,
    current: &str,
    new: &str,
    keep_session: Option<&str>,
) -> Result<(), AccountError> {
    check_password(user, current).await?;
    set_password(state, user, new, keep_session).await
}

/// Asks for the current password before what a stolen session or token must not do alone
/// (take the account over by changing its email or password, delete it).
pub async fn check_password(user: &User, current: &str) -> Result<(), AccountError> {
    if verify(current.to_owned(), user.password_hash.clone()).await? {
        Ok(())
    } else {
        Err(AccountError::invalid("The current password is not correct"))
    }
}

/// Sets a new password without asking for the old one (a reset link was used).
pub async fn set_password(
    state: &AppState,
    user: &User,
    new: &str,
    keep_session: Option<&str>,
) -> Result<(), AccountError> {
    validate_password(new).map_err(AccountError::invalid)?;
    let hashed = hash(new.to_owned()).await?;
    state
        .store
        .set_password_hash(user.id, &hashed)
        .await
        .map_err(|e| AccountError::from_store("password change", e))?;
    state
        .store
        .delete_sessions_of(user.id, keep_session)
        .await
        .map_err(|e| AccountError::from_store("ending sessions", e))?;
    tracing::info!("{} changed their password", user.dj_name);
    Ok(())
}

/// Validates and saves a profile (DJ name, email, timezone).
pub async fn update_profile(state: &AppState, user: &User, profile: Profile) -> Result<(), AccountError> {
    let profile = Profile {
        dj_name: normalize_dj_name(profile.dj_name.trim()).map_err(AccountError::invalid)?,
        email: profile.email.trim().to_owned(),
        timezone: profile.timezone.trim().to_owned(),
    };
    validate_email(&profile.email).map_err(AccountError::invalid)?;
    validate_timezone(&profile.timezone).map_err(AccountError::invalid)?;
    state.store.update_profile(user.id, &profile).await.map_err(|e| AccountError::from_store("profile update", e))
}

/// Disables an account: its key stops working and the DJ leaves the queue (kicked if
/// publishing).
pub async fn disable(state: &AppState, user: &User) -> Result<(), AccountError> {
    state.store.set_active(user.id, false).await.map_err(|e| AccountError::from_store("disabling a user", e))?;
    leave_queue(state, user).await
}

async fn leave_queue(state: &AppState, user: &User) -> Result<(), AccountError> {
    match state.queue.admin(AdminCommand::DisableUser { user_id: UserId(user.id) }).await {
        Ok(Ok(()) | Err(AdminError::NotInQueue)) => Ok(()),
        Ok(Err(e)) => Err(AccountError::internal("leaving the queue", e)),
        Err(e) => Err(AccountError::internal("leaving the queue", e)),
    }
}

/// Gives the user a new stream key; the old one stops working at once.
pub async fn regenerate_key(state: &AppState, user: &User) -> Result<String, AccountError> {
    let key = generate_stream_key();
    state.store.set_stream_key(user.id, &key).await.map_err(|e| AccountError::from_store("key rotation", e))?;
    tracing::info!("{} regenerated their stream key", user.dj_name);
    Ok(key)
}

/// Deletes an account: out of the queue (kicked if publishing), then from the database.
pub async fn delete_account(state: &AppState, user: &User) -> Result<(), AccountError> {
    if user.is_admin {
        let users = state.store.list_users().await.map_err(|e| AccountError::internal("listing admins", e))?;
        if !users.iter().any(|u| u.is_admin && u.is_active && u.id != user.id) {
            return Err(AccountError::from_store("account deletion", StoreError::LastAdmin));
        }
    }
    leave_queue(state, user).await?;
    state.store.delete_user(user.id).await.map_err(|e| AccountError::from_store("account deletion", e))?;
    // Only once nothing refers to it (a picture replaced meanwhile is swept at start-up).
    if let Some(file) = &user.profile_picture {
        super::pictures::remove(state, file).await;
    }
    tracing::info!("account deleted: {} (user {})", user.dj_name, user.id);
    Ok(())
}
