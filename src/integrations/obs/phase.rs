//! What OBS should show (idle, or a DJ on air), where the task learns it, and what a
//! queue notice says about it.

use std::fmt;
use std::future::Future;

use crate::queue::actor::QueueHandle;
use crate::queue::engine::{Notice, Status};

/// What OBS should show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Nobody is on air: the program is the slate (also while a dropped DJ's slot is held).
    Idle,
    /// `dj_name` is on air.
    OnAir { dj_name: String },
}

impl Phase {
    /// The phase the queue is in: on air only while the lead's media is the program.
    pub fn from_status(status: &Status) -> Self {
        match &status.lead {
            Some(lead) if lead.conn.is_some() => Phase::OnAir { dj_name: lead.set_name() },
            _ => Phase::Idle,
        }
    }

    pub(super) fn is_on_air(&self) -> bool {
        matches!(self, Phase::OnAir { .. })
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Phase::Idle => f.write_str("idle"),
            Phase::OnAir { dj_name } => write!(f, "{dj_name} on air"),
        }
    }
}

/// Where the task learns the current phase when it (re)connects, lags behind the notices,
/// or a notice does not tell the whole story (a set ended: is somebody else on air?).
/// [`QueueHandle`] is the real one; tests can answer from a variable.
pub trait QueueView: Send + Sync + 'static {
    /// The current phase; `None` when the queue cannot say (it has stopped).
    fn phase(&self) -> impl Future<Output = Option<Phase>> + Send;
}

impl QueueView for QueueHandle {
    async fn phase(&self) -> Option<Phase> {
        self.status().await.ok().map(|status| Phase::from_status(&status))
    }
}

/// What one notice says about the phase.
pub(super) enum Hint {
    Known(Phase),
    /// Ask the queue: the notice alone does not tell.
    Ask,
}

pub(super) fn hint(notice: &Notice) -> Option<Hint> {
    match notice {
        Notice::OnAir { dj } | Notice::Resumed { dj } => {
            Some(Hint::Known(Phase::OnAir { dj_name: dj.dj_name.clone() }))
        }
        // The slot is held and the slate is the program.
        Notice::GraceStarted { .. } => Some(Hint::Known(Phase::Idle)),
        // The next DJ may have gone on air in the same step (their OnAir follows); the
        // queue's status already includes that, so it never shows a flash of idle.
        Notice::SetEnded { .. } => Some(Hint::Ask),
        // A back-to-back set's name (every DJ) changed, or may have: the queue knows it.
        Notice::HandedOver { .. } | Notice::MemberAdded { .. } | Notice::MemberLeft { .. } => Some(Hint::Ask),
        _ => None,
    }
}
