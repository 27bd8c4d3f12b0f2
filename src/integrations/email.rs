//! Email: the welcome message and password reset links.
//!
//! Without SMTP configured nothing is sent and reset links are written to the log, so an
//! organiser can still hand them out.

use crate::store::User;

/// Sends account emails. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Mailer {}

impl Mailer {
    /// A mailer that only logs.
    pub fn log_only() -> Self {
        Self {}
    }

    /// Greets a new DJ (only when SMTP is configured).
    pub fn welcome(&self, _user: &User) {}

    /// Delivers a password reset link.
    pub fn password_reset(&self, user: &User, link: &str) {
        tracing::info!("password reset link for {} (SMTP not configured): {link}", user.dj_name);
    }
}
