//! "You're up next" beyond the dashboard (issue 14): what the email and the Discord message
//! need to know about the DJ the queue named in [`Notice::UpNext`], looked up when it comes.
//!
//! The engine only names the DJ; whether they asked for an email, which Discord user they
//! linked and what is wrong with their stream (the hub's health checks, in plain words) are
//! read here, so the engine stays pure. The email goes out from its own small task, the
//! Discord message from the Discord collector (`discord`), each through its bounded outbox.

use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use super::email::Mailer;
use super::shutdown_requested;
use crate::channel::health::Advice;
use crate::hub::Publishers;
use crate::ids::UserId;
use crate::queue::engine::Notice;
use crate::store::{Store, User};

/// A lookup slower than this (a stalled database) is given up: the message goes out
/// without the DJ's details rather than late.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Who is up next and how their stream looks.
#[derive(Debug, Clone, Default)]
pub struct UpNextDetails {
    /// `None` if the account is gone or the store did not answer.
    pub user: Option<User>,
    /// Problems of their stream now; empty when it is fine or not connected.
    pub advice: Vec<Advice>,
}

/// Reads [`UpNextDetails`] from the store and the hub; cheap to clone.
#[derive(Clone)]
pub struct UpNextLookup {
    store: Store,
    publishers: Publishers,
}

impl UpNextLookup {
    pub fn new(store: Store, publishers: Publishers) -> Self {
        Self { store, publishers }
    }

    pub async fn details(&self, user: UserId) -> UpNextDetails {
        let account = match tokio::time::timeout(LOOKUP_TIMEOUT, self.store.user_by_id(user.0)).await {
            Ok(Ok(account)) => account,
            Ok(Err(e)) => {
                tracing::warn!("up next: cannot load user {}: {e}", user.0);
                None
            }
            Err(_) => {
                tracing::warn!("up next: loading user {} timed out", user.0);
                None
            }
        };
        let advice = self.publishers.newest_of(user).map(|p| p.health(Instant::now()).1.advice).unwrap_or_default();
        UpNextDetails { user: account.filter(|u| u.is_active), advice }
    }
}

/// Emails DJs who asked for it when the queue says they are next, until `shutdown`.
pub fn spawn_email(
    lookup: UpNextLookup,
    mailer: Mailer,
    mut notices: broadcast::Receiver<Notice>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let notice = tokio::select! {
                () = shutdown_requested(&mut shutdown) => return,
                notice = notices.recv() => notice,
            };
            match notice {
                Ok(Notice::UpNext { dj, on_air_in }) => {
                    let details = lookup.details(dj.user_id).await;
                    if let Some(user) = details.user.filter(|u| u.up_next_email) {
                        mailer.up_next(&user, on_air_in, &details.advice);
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!("up next: missed {missed} queue notices (too slow to read them)");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}
