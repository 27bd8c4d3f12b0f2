//! The queue engine: who is on air, who waits, and for how long.
//!
//! DJs publish into one shared channel in turn. The head of the queue (the *lead*) is on
//! air; everybody else waits in order. The engine is a pure, deterministic state machine:
//! it performs no I/O, spawns nothing and never reads the clock. The caller passes the
//! current time with every call and turns the returned [`Output`]s into effects (answering
//! publishers, closing connections, switching the program, persisting, notifying).
//!
//! # Places
//!
//! Every DJ in the queue holds exactly one *place*: the lead place or a waiting place. A
//! place is either *live* (backed by a publishing connection) or *held* without a
//! connection for a limited time:
//!
//! * **grace**: the lead's connection dropped (or stalled). The slot is kept and the program
//!   shows the slate; the same user reconnecting in time resumes with the time they had
//!   left. A queued DJ who disconnects simply leaves the queue instead.
//! * **reserved**: the engine was [restored](Engine::restore) after a restart and the DJ has
//!   not reconnected yet. Reconnecting before the deadline reclaims exactly that place.
//!
//! A held place that is not reclaimed in time is dropped. If the lead set ends while the
//! next waiting place is still reserved, that reservation becomes the lead place and is held
//! (slate on air) until its own deadline: the DJ keeps the turn they were promised, and the
//! DJs behind them wait at most one grace period longer.
//!
//! # Back-to-back sets
//!
//! A place can hold a set of several DJs (`b2b.rs`): the member on air is the place's DJ
//! and connection, the other members who publish stand by (accepted, not queued), and a
//! hand-over swaps them, which changes the program source like a change of lead. The set
//! keeps one clock; its first member names it in the notices that open and close it.
//!
//! # Time
//!
//! Each set has a *budget* (initially the channel's swap interval) and an *elapsed* time
//! that only advances while the lead is live and the timer is not paused. Deadlines (end of
//! slot, warnings, end of grace, end of reservations) take effect on the first call whose
//! `now` is at or past them, whatever the input, so outcomes do not depend on how often the
//! caller ticks. [`Engine::next_deadline`] tells when the next one falls due.
//!
//! # Timetable
//!
//! Booked slots ([`Input::SetBookings`], start times already on the engine's clock) and
//! per-DJ default set lengths ([`Input::SetDefaultSetLengths`]) are input like the rest: a
//! booked DJ goes on air at the end of the current set, or at once with a hard start, and
//! their set ends with their slot. The rules are in docs/timetable.md and the `booking`
//! module.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use crate::ids::{ConnId, UserId};

mod booking;
pub use booking::{Booking, MAX_BOOKINGS};
use booking::{BookingState, RestoredBooking};

/// Remaining-time thresholds at which the lead gets a [`Notice::TimeWarning`], longest first.
const WARNING_THRESHOLDS: [Duration; 2] = [Duration::from_secs(5 * 60), Duration::from_secs(60)];

/// How long before the lead's set ends the DJ after them hears [`Notice::UpNext`]: time to
/// check OBS and get ready.
pub const UP_NEXT_BEFORE: Duration = Duration::from_secs(5 * 60);

/// A DJ whose stream key the adapter has already validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dj {
    pub user_id: UserId,
    pub dj_name: String,
}

/// Channel configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Length of a set. Changeable at run time with [`AdminCommand::SetSwapInterval`].
    /// A zero interval ends every set as soon as it starts.
    pub swap_interval: Duration,
    /// How long a lead slot (or a reservation after a restart) is held for a DJ whose
    /// connection is gone.
    pub grace_period: Duration,
    /// Whether the DJ whose set just ended is refused when they would go straight back on
    /// air (see [`RejectReason::Blocked`]).
    pub block_enabled: bool,
    /// How long after its start a booking waits for a booked DJ who is not streaming
    /// (docs/timetable.md, R5 and R6).
    pub booking_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            swap_interval: Duration::from_secs(3600),
            grace_period: Duration::from_secs(10),
            block_enabled: false,
            booking_grace: Duration::from_secs(10 * 60),
        }
    }
}

/// Something that happened, fed to [`Engine::handle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A connection with a validated stream key wants to publish. Always answered by exactly
    /// one [`Output::PublishAccepted`] or [`Output::PublishRejected`].
    PublishRequested { conn: ConnId, dj: Dj },
    /// The publisher stopped cleanly (FCUnpublish, deleteStream, closeStream).
    PublishStopped { conn: ConnId },
    /// The connection closed or failed without a clean stop.
    ConnectionLost { conn: ConnId },
    /// The connection is up but no media arrived for the stall timeout.
    StallDetected { conn: ConnId },
    /// Time passed. Ticking a few times a second, or at [`Engine::next_deadline`], is enough.
    Tick,
    /// An operator command. Fails with an [`AdminError`] and changes nothing if it does not
    /// apply.
    Admin(AdminCommand),
    /// The timetable: replaces every booking the engine knows (docs/timetable.md, R10).
    SetBookings(Vec<Booking>),
    /// The per-DJ default set lengths an admin set; DJs not listed get the swap interval.
    SetDefaultSetLengths(HashMap<UserId, Duration>),
    /// Adds `dj` to the set that the member `set` belongs to (a back-to-back set, see the
    /// module documentation). Fails like [`Input::Admin`].
    AddMember { set: UserId, dj: Dj, by: Caller },
    /// Takes `user` out of the set that the member `set` belongs to.
    RemoveMember { set: UserId, user: UserId, by: Caller },
    /// Puts `to`'s connection on air in place of the member on air now.
    HandOver { set: UserId, to: UserId, by: Caller },
}

/// Operator commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    /// Ends the lead's set now, disconnects them and puts the next DJ on air.
    Skip,
    /// Removes a DJ from wherever they are in the queue and disconnects them.
    Remove { user_id: UserId },
    /// Like [`AdminCommand::Remove`]; the adapter also disables the user's stream key.
    DisableUser { user_id: UserId },
    /// Swaps a waiting DJ with the one ahead of them. A no-op for the first in line.
    MoveUp { user_id: UserId },
    /// Swaps a waiting DJ with the one behind them. A no-op for the last in line.
    MoveDown { user_id: UserId },
    /// Stops the current set's clock.
    PauseTimer,
    /// Restarts the current set's clock.
    ResumeTimer,
    /// Sets the channel's swap interval and the current set's budget to `secs` seconds, so
    /// the lead has `secs - elapsed` left; with `reset_current`, the current set's elapsed
    /// time also goes back to zero. Works without a current set too.
    SetSwapInterval { secs: u64, reset_current: bool },
    /// Gives the current set exactly `secs` seconds from now on (zero ends it).
    SetRemaining { secs: u64 },
    /// Sets the current set's elapsed time back to zero.
    ResetTimer,
    /// Turns the block rule on or off.
    SetBlock(bool),
    /// Flips the block rule.
    ToggleBlock,
}

/// Why an admin command was refused. The engine state is unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminError {
    /// The user holds no place in the queue.
    NotInQueue,
    /// The user is the lead, so they cannot be moved within the waiting list.
    NotWaiting,
    /// The command needs a current set, and there is none.
    NoCurrentSet,
    /// A zero swap interval would end every set as soon as it started.
    ZeroSwapInterval,
    /// A back-to-back command that does not apply.
    B2b(B2bError),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AdminError::NotInQueue => "this user is not in the queue",
            AdminError::NotWaiting => "this user is on air, not waiting",
            AdminError::NoCurrentSet => "nobody is on air",
            AdminError::ZeroSwapInterval => "the swap interval must be longer than zero",
            AdminError::B2b(e) => return e.fmt(f),
        })
    }
}

impl std::error::Error for AdminError {}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// The publish request of `conn` is accepted. `position` is 0 for the lead and 1, 2, …
    /// along the waiting list (1 is next up); a back-to-back member standing by gets their
    /// set's position, with `on_air` false.
    PublishAccepted { conn: ConnId, on_air: bool, position: usize },
    /// The publish request of `conn` is refused; the adapter should close it.
    PublishRejected { conn: ConnId, reason: RejectReason },
    /// The connection whose media is the program changed (`None`: show the slate).
    ProgramSource(Option<ConnId>),
    /// Close this publisher. The engine has already forgotten the connection, so no
    /// further event about it is needed.
    Disconnect { conn: ConnId, reason: DisconnectReason },
    /// A human-facing event, for logs, SSE and chat integrations.
    Notice(Notice),
    /// The persistent state changed; save this snapshot. Emitted at most once per call,
    /// after the other outputs.
    Persist(Snapshot),
}

/// Why a publish request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectReason {
    /// The user (or this connection) already publishes into the queue.
    AlreadyPublishing,
    /// Block is on and this DJ's set just ended: they may not go straight back on air, but
    /// may queue behind somebody else.
    Blocked,
}

/// Why the engine disconnects a publisher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The set's time ran out.
    SlotElapsed,
    /// An operator skipped the set.
    Skipped,
    /// An operator removed the DJ.
    Removed,
    /// An operator disabled the DJ's account.
    Disabled,
    /// No media arrived for the stall timeout.
    Stalled,
    /// The back-to-back set this standby member belonged to ended.
    SetEnded,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DisconnectReason::SlotElapsed => "time slot elapsed",
            DisconnectReason::Skipped => "skipped by an operator",
            DisconnectReason::Removed => "removed by an operator",
            DisconnectReason::Disabled => "account disabled",
            DisconnectReason::Stalled => "stream stalled",
            DisconnectReason::SetEnded => "the set ended",
        })
    }
}

/// Why a set ended or a DJ left the waiting list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The DJ stopped publishing cleanly.
    Stopped,
    /// A waiting DJ's connection dropped.
    ConnectionLost,
    /// A waiting DJ's stream stalled. (A stalled lead gets a grace period instead.)
    Stalled,
    /// The lead did not come back within the grace period.
    GraceExpired,
    /// The DJ did not reclaim their place after a restart in time.
    NotReclaimed,
    /// The set's time ran out.
    SlotElapsed,
    /// An operator skipped the set.
    Skipped,
    /// An operator removed the DJ.
    Removed,
    /// An operator disabled the DJ's account.
    Disabled,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EndReason::Stopped => "stopped",
            EndReason::ConnectionLost => "connection lost",
            EndReason::Stalled => "stream stalled",
            EndReason::GraceExpired => "did not reconnect in time",
            EndReason::NotReclaimed => "did not reclaim their place after a restart",
            EndReason::SlotElapsed => "time slot elapsed",
            EndReason::Skipped => "skipped",
            EndReason::Removed => "removed",
            EndReason::Disabled => "disabled",
        })
    }
}

/// Human-facing events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A new set started airing.
    OnAir { dj: Dj },
    /// The lead is back on air after a dropped connection or a restart.
    Resumed { dj: Dj },
    /// A DJ joined (or, after a restart, reclaimed) a waiting place.
    Queued { dj: Dj, position: usize },
    /// A waiting DJ left the queue.
    LeftQueue { dj: Dj, reason: EndReason },
    /// The lead's set ended.
    SetEnded { dj: Dj, reason: EndReason },
    /// The lead slot is held for `dj` (slate on air) for up to `grace`.
    GraceStarted { dj: Dj, grace: Duration },
    /// The lead has `remaining` left in their set.
    TimeWarning { dj: Dj, remaining: Duration },
    /// `dj` is next and goes on air in about `on_air_in` (the lead's time left), once per
    /// set and next DJ.
    UpNext { dj: Dj, on_air_in: Duration },
    /// No media arrived from `dj` for the stall timeout.
    Stalled { dj: Dj },
    /// An operator moved a waiting DJ to `position`.
    Moved { dj: Dj, position: usize },
    /// An operator changed the current set's timer.
    TimerChanged { dj: Dj, remaining: Duration, paused: bool },
    /// An operator changed the channel settings.
    SettingsChanged { swap_interval: Duration, block_enabled: bool },
    /// `dj`'s booked slot started.
    BookingStarted { dj: Dj, hard_start: bool },
    /// `dj` did not stream within the grace time of their booked slot, which is dropped.
    BookingDropped { dj: Dj },
    /// `to` took over from `from` in the back-to-back set `set` (all names, "A b2b B");
    /// `automatic` when `from` dropped and `to` was the live member standing by.
    HandedOver { from: Dj, to: Dj, set: String, automatic: bool },
    /// `dj` joined the back-to-back set now named `set`.
    MemberAdded { dj: Dj, set: String },
    /// `dj` left the back-to-back set, now named `set`.
    MemberLeft { dj: Dj, set: String },
    /// `dj` publishes as a standby member of `set`, ready for a hand-over.
    StandingBy { dj: Dj, set: String },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::OnAir { dj } => write!(f, "{} is on air", dj.dj_name),
            Notice::Resumed { dj } => write!(f, "{} is back on air", dj.dj_name),
            Notice::Queued { dj, position } => {
                write!(f, "{} is queued at position {position}", dj.dj_name)
            }
            Notice::LeftQueue { dj, reason } => {
                write!(f, "{} left the queue: {reason}", dj.dj_name)
            }
            Notice::SetEnded { dj, reason } => write!(f, "{}'s set ended: {reason}", dj.dj_name),
            Notice::GraceStarted { dj, grace } => {
                write!(f, "holding the slot for {} for {}s", dj.dj_name, grace.as_secs())
            }
            Notice::TimeWarning { dj, remaining } => {
                write!(f, "{} has {}s left", dj.dj_name, remaining.as_secs())
            }
            Notice::UpNext { dj, on_air_in } => {
                write!(f, "{} is up next, on air in {}s", dj.dj_name, on_air_in.as_secs())
            }
            Notice::Stalled { dj } => write!(f, "{}'s stream stalled", dj.dj_name),
            Notice::Moved { dj, position } => {
                write!(f, "{} was moved to position {position}", dj.dj_name)
            }
            Notice::TimerChanged { dj, remaining, paused } => write!(
                f,
                "{}'s timer: {}s left{}",
                dj.dj_name,
                remaining.as_secs(),
                if *paused { " (paused)" } else { "" }
            ),
            Notice::SettingsChanged { swap_interval, block_enabled } => write!(
                f,
                "swap interval {}s, block {}",
                swap_interval.as_secs(),
                if *block_enabled { "on" } else { "off" }
            ),
            Notice::BookingStarted { dj, hard_start } => {
                write!(f, "{}'s booked slot started{}", dj.dj_name, if *hard_start { " (hard start)" } else { "" })
            }
            Notice::BookingDropped { dj } => {
                write!(f, "{} did not show up for their booked slot", dj.dj_name)
            }
            Notice::HandedOver { from, to, set, automatic } => write!(
                f,
                "{} takes over from {}{} ({set})",
                to.dj_name,
                from.dj_name,
                if *automatic { " who dropped" } else { "" }
            ),
            Notice::MemberAdded { dj, set } => write!(f, "{} joins the set: {set}", dj.dj_name),
            Notice::MemberLeft { dj, set } => write!(f, "{} left the set: {set}", dj.dj_name),
            Notice::StandingBy { dj, set } => write!(f, "{} is live and standing by in {set}", dj.dj_name),
        }
    }
}

/// The persistent part of the engine state, saved on every change and fed to
/// [`Engine::restore`] after a restart. Durations are stored as integer milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    #[serde(rename = "swap_interval_ms", with = "millis")]
    pub swap_interval: Duration,
    pub block_enabled: bool,
    /// The DJ whose set ended last, until somebody goes on air.
    pub last_ended: Option<Dj>,
    pub lead: Option<LeadSnapshot>,
    /// The waiting list, next up first.
    pub waiting: Vec<Dj>,
    /// The members of the back-to-back sets among the places above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub b2b: Vec<B2bSnapshot>,
    /// Bookings whose slot has begun and that still wait for their DJ, by id: a restart
    /// goes on with them rather than starting them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bookings_open: Vec<i64>,
    /// Bookings whose slot has begun and that the engine is done with (honoured or dropped).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bookings_done: Vec<i64>,
}

/// The lead's set in a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadSnapshot {
    #[serde(flatten)]
    pub dj: Dj,
    #[serde(rename = "budget_ms", with = "millis")]
    pub budget: Duration,
    #[serde(rename = "elapsed_ms", with = "millis")]
    pub elapsed: Duration,
    pub paused: bool,
}

/// (De)serialises a [`Duration`] as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        // Saturates instead of failing: half a billion years is as good as forever here.
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// A read-only view of the queue, for the API and dashboards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub lead: Option<LeadStatus>,
    /// The waiting list, next up first.
    pub waiting: Vec<WaitingStatus>,
    pub swap_interval: Duration,
    pub grace_period: Duration,
    pub block_enabled: bool,
    pub last_ended: Option<Dj>,
}

/// The lead place and its set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadStatus {
    pub dj: Dj,
    /// The connection on air; `None` while the slot is held (the program shows the slate).
    pub conn: Option<ConnId>,
    /// Whether the slot is held for a DJ who has not reconnected since a restart, rather
    /// than for a grace period after a dropped connection.
    pub reserved: bool,
    /// While the slot is held: how long the DJ has left to reconnect.
    pub reclaim_within: Option<Duration>,
    /// The set's allotment.
    pub budget: Duration,
    /// Time spent on air in this set.
    pub elapsed: Duration,
    /// `budget - elapsed`, never below zero.
    pub remaining: Duration,
    pub paused: bool,
    /// A back-to-back set's members in the order they joined; empty for a solo set.
    pub members: Vec<MemberStatus>,
}

/// A waiting place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingStatus {
    pub dj: Dj,
    /// The publishing connection (buffered, not aired); `None` for a place restored after a
    /// restart that its DJ has not reclaimed yet.
    pub conn: Option<ConnId>,
    /// For such a reservation: how long the DJ has left to reclaim it.
    pub reclaim_within: Option<Duration>,
    /// 1 for the next DJ up, then 2, 3, …
    pub position: usize,
    /// A back-to-back set's members in the order they joined; empty for a solo set.
    pub members: Vec<MemberStatus>,
}

/// The queue state machine. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Engine {
    swap_interval: Duration,
    grace_period: Duration,
    block_enabled: bool,
    last_ended: Option<Dj>,
    lead: Option<Lead>,
    /// Invariant: empty whenever `lead` is `None` (the next DJ is promoted at once).
    waiting: VecDeque<Place>,
    /// The program source last announced, to emit [`Output::ProgramSource`] on changes only.
    program: Option<ConnId>,
    booking_grace: Duration,
    /// Sorted by start, without overlaps, at most [`MAX_BOOKINGS`].
    bookings: Vec<BookingState>,
    /// After a restart, until the bookings are loaded: how far the saved ones had got.
    restored_bookings: HashMap<i64, RestoredBooking>,
    default_set_lengths: HashMap<UserId, Duration>,
}

/// A place in the queue. In a back-to-back set, `dj` and `link` are the member on air (or
/// to be); the other members are in `b2b`.
#[derive(Clone, Debug)]
struct Place {
    dj: Dj,
    link: Link,
    b2b: B2b,
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Live(ConnId),
    Held(Hold),
}

/// A place kept without a connection from `since` for `length`.
#[derive(Clone, Copy, Debug)]
struct Hold {
    since: Instant,
    length: Duration,
    kind: HoldKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HoldKind {
    Grace,
    Reserved,
}

impl Hold {
    fn has_expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= self.length
    }

    /// `None` when the deadline lies beyond what an `Instant` can represent: never.
    fn deadline(&self) -> Option<Instant> {
        self.since.checked_add(self.length)
    }

    fn time_left(&self, now: Instant) -> Duration {
        self.length.saturating_sub(now.saturating_duration_since(self.since))
    }
}

impl Place {
    fn new(dj: Dj, link: Link) -> Self {
        Place { dj, link, b2b: B2b::default() }
    }

    fn conn(&self) -> Option<ConnId> {
        match self.link {
            Link::Live(conn) => Some(conn),
            Link::Held(_) => None,
        }
    }

    fn hold(&self) -> Option<Hold> {
        match self.link {
            Link::Live(_) => None,
            Link::Held(hold) => Some(hold),
        }
    }

    fn reclaim_within(&self, now: Instant) -> Option<Duration> {
        self.hold().map(|hold| hold.time_left(now))
    }
}

/// The lead place and the clock of its set.
#[derive(Clone, Debug)]
struct Lead {
    place: Place,
    clock: SetClock,
    /// Whether this set has been on air yet: a reservation promoted to lead has not, so its
    /// DJ gets [`Notice::OnAir`] rather than [`Notice::Resumed`] when they reconnect.
    aired: bool,
    /// One per entry of [`WARNING_THRESHOLDS`].
    warnings: [Warning; 2],
    /// Who has been told they are up next in this set.
    told_up_next: Option<UserId>,
    /// The booking this set honours: its slot's end is the set's end (docs/timetable.md).
    booking: Option<Booking>,
    /// The budget before a booking cut it (R3, R7), given back if the bookings change.
    uncut_budget: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Warning {
    /// Remaining time is at or below the threshold and nothing is due.
    Disarmed,
    /// Remaining time is above the threshold; the warning fires when it gets there.
    Armed,
    /// Already sent in this set; never sent twice.
    Fired,
}

/// A set's time keeping. The clock runs only while the lead is live and not paused.
#[derive(Clone, Debug)]
struct SetClock {
    budget: Duration,
    /// Elapsed time up to `running_since` (or in total, while stopped).
    banked: Duration,
    running_since: Option<Instant>,
    paused: bool,
}

impl SetClock {
    fn new(budget: Duration) -> Self {
        SetClock { budget, banked: Duration::ZERO, running_since: None, paused: false }
    }

    fn elapsed(&self, now: Instant) -> Duration {
        let running = self.running_since.map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        self.banked.saturating_add(running)
    }

    fn remaining(&self, now: Instant) -> Duration {
        self.budget.saturating_sub(self.elapsed(now))
    }

    fn run(&mut self, now: Instant, running: bool) {
        match (running, self.running_since) {
            (true, None) => self.running_since = Some(now),
            (false, Some(_)) => {
                self.banked = self.elapsed(now);
                self.running_since = None;
            }
            _ => {}
        }
    }

    /// What an operator sees of the clock: budget, elapsed time and pause flag.
    fn reading(&self, now: Instant) -> (Duration, Duration, bool) {
        (self.budget, self.elapsed(now), self.paused)
    }

    fn reset_elapsed(&mut self, now: Instant) {
        self.banked = Duration::ZERO;
        if self.running_since.is_some() {
            self.running_since = Some(now);
        }
    }

    /// When the remaining time reaches `left`, if the clock runs and it is not there yet.
    fn instant_when_remaining(&self, left: Duration) -> Option<Instant> {
        let since = self.running_since?;
        let to_go = self.budget.checked_sub(self.banked)?.checked_sub(left)?;
        since.checked_add(to_go)
    }
}

/// The DJ after `lead` if they are streaming (a held place may not come back) and have not
/// been told they are up next in this set; whoever moves into first place later is told then.
fn untold_next<'a>(lead: &Lead, waiting: &'a VecDeque<Place>) -> Option<&'a Place> {
    waiting.front().filter(|next| next.conn().is_some() && lead.told_up_next != Some(next.dj.user_id))
}

impl Lead {
    fn new(place: Place, budget: Duration, now: Instant) -> Self {
        let mut lead = Lead {
            place,
            clock: SetClock::new(budget),
            aired: false,
            warnings: [Warning::Disarmed; 2],
            told_up_next: None,
            booking: None,
            uncut_budget: None,
        };
        lead.rearm_warnings(now);
        lead
    }

    /// Starts or stops the clock to match the place and the pause flag.
    fn sync_clock(&mut self, now: Instant) {
        let running = self.place.conn().is_some() && !self.clock.paused;
        self.clock.run(now, running);
    }

    /// Re-evaluates the warnings after the budget or elapsed time changed other than by
    /// the clock running: a warning is due only if remaining time is above its threshold,
    /// so an operator cutting a set short does not trigger an instant "5 minutes left".
    fn rearm_warnings(&mut self, now: Instant) {
        let remaining = self.clock.remaining(now);
        for (warning, threshold) in self.warnings.iter_mut().zip(WARNING_THRESHOLDS) {
            if *warning != Warning::Fired {
                *warning = if remaining > threshold { Warning::Armed } else { Warning::Disarmed };
            }
        }
    }

    /// Fires the armed warnings whose threshold was reached. Returns the remaining time if
    /// any fired: when a late call crosses several thresholds at once, one notice is enough.
    fn fire_due_warnings(&mut self, now: Instant) -> Option<Duration> {
        let remaining = self.clock.remaining(now);
        let mut fired = false;
        for (warning, threshold) in self.warnings.iter_mut().zip(WARNING_THRESHOLDS) {
            if *warning == Warning::Armed && remaining <= threshold {
                *warning = Warning::Fired;
                fired = true;
            }
        }
        fired.then_some(remaining)
    }

    fn snapshot(&self, now: Instant) -> LeadSnapshot {
        LeadSnapshot {
            dj: self.place.dj.clone(),
            budget: self.clock.budget,
            elapsed: self.clock.elapsed(now),
            paused: self.clock.paused,
        }
    }
}

/// Where a DJ's place is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spot {
    Lead,
    /// Index into the waiting list.
    Waiting(usize),
}

/// How a connection went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Departure {
    Stopped,
    Lost,
    Stalled,
}

/// Outputs collected during one call.
#[derive(Default)]
struct Effects {
    outputs: Vec<Output>,
    /// Whether persistent state changed, so a [`Output::Persist`] is due.
    changed: bool,
}

impl Effects {
    fn emit(&mut self, output: Output) {
        self.outputs.push(output);
    }

    fn notice(&mut self, notice: Notice) {
        self.outputs.push(Output::Notice(notice));
    }
}

impl Engine {
    /// An empty queue. The program starts on the slate.
    pub fn new(settings: Settings) -> Self {
        Engine {
            swap_interval: settings.swap_interval,
            grace_period: settings.grace_period,
            block_enabled: settings.block_enabled,
            last_ended: None,
            lead: None,
            waiting: VecDeque::new(),
            program: None,
            booking_grace: settings.booking_grace,
            bookings: Vec::new(),
            restored_bookings: HashMap::new(),
            default_set_lengths: HashMap::new(),
        }
    }

    /// Rebuilds the queue saved in `snapshot` after a restart at `now`.
    ///
    /// The snapshot's swap interval and block flag (which operators may have changed at run
    /// time) win over `settings`, except that a zero interval falls back to the configured
    /// one; the grace period comes from `settings`. Every place becomes a reservation that
    /// its DJ can reclaim by publishing within one grace period; the lead resumes with the
    /// time it had left, unless it had none left (then its set is over and it counts as the
    /// last ended). The program starts on the slate. A user listed twice keeps only their
    /// first place.
    pub fn restore(settings: Settings, snapshot: Snapshot, now: Instant) -> Self {
        let hold = Link::Held(Hold { since: now, length: settings.grace_period, kind: HoldKind::Reserved });
        let swap_interval =
            if snapshot.swap_interval.is_zero() { settings.swap_interval } else { snapshot.swap_interval };
        let mut engine = Engine::new(Settings { swap_interval, block_enabled: snapshot.block_enabled, ..settings });
        engine.last_ended = snapshot.last_ended;

        let mut seen = HashSet::new();
        match snapshot.lead {
            // A saved lead with no time left had finished its set; only its block survives.
            Some(saved) if saved.elapsed >= saved.budget => engine.last_ended = Some(saved.dj),
            Some(saved) => {
                seen.insert(saved.dj.user_id);
                let mut lead = Lead {
                    place: Place::new(saved.dj, hold),
                    clock: SetClock {
                        budget: saved.budget,
                        banked: saved.elapsed,
                        running_since: None,
                        paused: saved.paused,
                    },
                    aired: true,
                    warnings: [Warning::Disarmed; 2],
                    told_up_next: None,
                    booking: None,
                    uncut_budget: None,
                };
                // Warnings already sent are not saved; any still ahead are due again.
                lead.rearm_warnings(now);
                engine.lead = Some(lead);
            }
            None => {}
        }
        engine.waiting =
            snapshot.waiting.into_iter().filter(|dj| seen.insert(dj.user_id)).map(|dj| Place::new(dj, hold)).collect();
        engine.restore_b2b(snapshot.b2b);
        engine.restore_bookings(snapshot.bookings_open, snapshot.bookings_done);
        if engine.lead.is_none() {
            // Only a hand-edited snapshot has waiters but no lead; keep the invariant. The
            // promotion of a held place has no effect worth reporting.
            engine.promote_next(now, &mut Effects::default());
        }
        engine
    }

    /// Feeds one input at time `now` and returns what to do, in order.
    ///
    /// Only [`Input::Admin`] can fail; a failed command changes nothing at all (not even
    /// deadlines that fell due: the next call handles those).
    pub fn handle(&mut self, now: Instant, input: Input) -> Result<Vec<Output>, AdminError> {
        let (conn, departure) = match input {
            Input::Admin(command) => {
                return self.step_or_keep(now, |engine, fx| engine.on_admin(now, command, fx));
            }
            Input::AddMember { set, dj, by } => {
                return self.step_or_keep(now, |engine, fx| engine.add_member(set, dj, by, fx));
            }
            Input::RemoveMember { set, user, by } => {
                return self.step_or_keep(now, |engine, fx| engine.remove_member(now, set, user, by, fx));
            }
            Input::HandOver { set, to, by } => {
                return self.step_or_keep(now, |engine, fx| engine.hand_over_to(now, set, to, by, fx));
            }
            Input::PublishRequested { conn, dj } => {
                return self.step(now, |engine, fx| {
                    engine.on_publish(now, conn, dj, fx);
                    Ok(())
                });
            }
            Input::Tick => return self.step(now, |_, _| Ok(())),
            Input::SetBookings(bookings) => {
                return self.step(now, |engine, fx| {
                    engine.set_bookings(now, bookings, fx);
                    Ok(())
                });
            }
            Input::SetDefaultSetLengths(lengths) => {
                return self.step(now, |engine, _| {
                    engine.default_set_lengths = lengths;
                    Ok(())
                });
            }
            Input::PublishStopped { conn } => (conn, Departure::Stopped),
            Input::ConnectionLost { conn } => (conn, Departure::Lost),
            Input::StallDetected { conn } => (conn, Departure::Stalled),
        };
        self.step(now, |engine, fx| {
            engine.on_departure(now, conn, departure, fx);
            Ok(())
        })
    }

    /// Applies a command that may fail to a copy and keeps it only on success, so that an
    /// error leaves the state untouched without every command having to validate up front.
    fn step_or_keep(
        &mut self,
        now: Instant,
        apply: impl FnOnce(&mut Self, &mut Effects) -> Result<(), AdminError>,
    ) -> Result<Vec<Output>, AdminError> {
        let mut next = self.clone();
        let outputs = next.step(now, apply)?;
        *self = next;
        Ok(outputs)
    }

    /// The connections that may go on air without notice: the members of the set on air
    /// standing by for a hand-over, and the DJ next in line, if streaming. Their publishers
    /// keep a GOP so that the switch is instant.
    pub fn standby(&self) -> Vec<ConnId> {
        let partners = self.lead.iter().flat_map(|lead| lead.place.standby_conns());
        partners.chain(self.waiting.front().and_then(Place::conn)).collect()
    }

    /// The queue as of `now`.
    pub fn status(&self, now: Instant) -> Status {
        Status {
            lead: self.lead.as_ref().map(|lead| LeadStatus {
                dj: lead.place.dj.clone(),
                conn: lead.place.conn(),
                reserved: lead.place.hold().is_some_and(|hold| hold.kind == HoldKind::Reserved),
                reclaim_within: lead.place.reclaim_within(now),
                budget: lead.clock.budget,
                elapsed: lead.clock.elapsed(now),
                remaining: lead.clock.remaining(now),
                paused: lead.clock.paused,
                members: lead.place.member_statuses(),
            }),
            waiting: self
                .waiting
                .iter()
                .enumerate()
                .map(|(index, place)| WaitingStatus {
                    dj: place.dj.clone(),
                    conn: place.conn(),
                    reclaim_within: place.reclaim_within(now),
                    position: index + 1,
                    members: place.member_statuses(),
                })
                .collect(),
            swap_interval: self.swap_interval,
            grace_period: self.grace_period,
            block_enabled: self.block_enabled,
            last_ended: self.last_ended.clone(),
        }
    }

    /// The persistent state as of `now`. The engine emits it on every change; a caller may
    /// also save it periodically so that a crash loses little of the lead's elapsed time.
    pub fn snapshot(&self, now: Instant) -> Snapshot {
        let (bookings_open, bookings_done) = self.bookings_begun();
        Snapshot {
            swap_interval: self.swap_interval,
            block_enabled: self.block_enabled,
            last_ended: self.last_ended.clone(),
            lead: self.lead.as_ref().map(|lead| lead.snapshot(now)),
            waiting: self.waiting.iter().map(|place| place.dj.clone()).collect(),
            b2b: self.b2b_snapshots(),
            bookings_open,
            bookings_done,
        }
    }

    /// The earliest instant at which a [`Input::Tick`] would change something (end of slot,
    /// time warning, end of a grace period or reservation), or `None` if nothing is pending.
    /// It may lie in the past if no call has been made since it fell due.
    pub fn next_deadline(&self) -> Option<Instant> {
        let lead_deadlines = self.lead.iter().flat_map(|lead| {
            let timer = std::iter::once(Duration::ZERO)
                .chain(
                    lead.warnings
                        .iter()
                        .zip(WARNING_THRESHOLDS)
                        .filter_map(|(warning, threshold)| (*warning == Warning::Armed).then_some(threshold)),
                )
                .chain(untold_next(lead, &self.waiting).map(|_| UP_NEXT_BEFORE))
                .filter_map(|left| lead.clock.instant_when_remaining(left));
            let slot_end = lead.booking.as_ref().and_then(Booking::end);
            lead.place.hold().and_then(|hold| hold.deadline()).into_iter().chain(slot_end).chain(timer)
        });
        let reservations = self.waiting.iter().filter_map(|place| place.hold().and_then(|hold| hold.deadline()));
        lead_deadlines.chain(reservations).chain(self.booking_deadlines()).min()
    }

    /// Runs one input between two passes over the deadlines: the first makes the input see
    /// the state as of `now`, the second applies deadlines the input made due (a zero
    /// grace period, an operator setting zero remaining time).
    fn step(
        &mut self,
        now: Instant,
        apply: impl FnOnce(&mut Self, &mut Effects) -> Result<(), AdminError>,
    ) -> Result<Vec<Output>, AdminError> {
        let mut fx = Effects::default();
        self.advance(now, &mut fx);
        apply(self, &mut fx)?;
        self.sync_program(&mut fx);
        self.advance(now, &mut fx);
        if fx.changed {
            let snapshot = self.snapshot(now);
            fx.emit(Output::Persist(snapshot));
        }
        Ok(fx.outputs)
    }

    /// Applies every deadline at or before `now`.
    fn advance(&mut self, now: Instant, fx: &mut Effects) {
        // Expired reservations go first, so that an ending set never promotes one of them.
        self.waiting.retain(|place| {
            let expired = place.hold().is_some_and(|hold| hold.has_expired(now));
            if expired {
                fx.notice(Notice::LeftQueue { dj: place.dj.clone(), reason: EndReason::NotReclaimed });
                fx.changed = true;
            }
            !expired
        });

        self.advance_bookings(now, fx);

        // Each pass ends at most one set and promotes the next place, which may itself be
        // due (a zero budget, an expired hold), hence the loop; it ends with the queue.
        loop {
            self.cap_lead_budget(fx);
            let Some(lead) = &mut self.lead else { break };
            // A booked set ends with its slot even while its clock stands (docs/timetable.md, R7).
            if lead.clock.remaining(now).is_zero() || lead.booking.as_ref().is_some_and(|b| b.ends_by(now)) {
                self.end_set(now, EndReason::SlotElapsed, Some(DisconnectReason::SlotElapsed), fx);
            } else if let Some(hold) = lead.place.hold().filter(|hold| hold.has_expired(now)) {
                let reason = match hold.kind {
                    HoldKind::Grace => EndReason::GraceExpired,
                    HoldKind::Reserved => EndReason::NotReclaimed,
                };
                self.end_set(now, reason, None, fx);
            } else {
                if let Some(remaining) = lead.fire_due_warnings(now) {
                    fx.notice(Notice::TimeWarning { dj: lead.place.dj.clone(), remaining });
                }
                // The next DJ, if streaming (a held place may not come back), once per set;
                // whoever moves into first place later is told then.
                let remaining = lead.clock.remaining(now);
                let next = self.waiting.front().filter(|place| place.conn().is_some());
                if let Some(next) =
                    next.filter(|n| remaining <= UP_NEXT_BEFORE && lead.told_up_next != Some(n.dj.user_id))
                {
                    lead.told_up_next = Some(next.dj.user_id);
                    fx.notice(Notice::UpNext { dj: next.dj.clone(), on_air_in: remaining });
                }
                break;
            }
            self.sync_program(fx);
        }
    }

    fn on_publish(&mut self, now: Instant, conn: ConnId, dj: Dj, fx: &mut Effects) {
        if self.publish_as_member(now, conn, &dj, fx) {
            return;
        }
        if self.spot_of_conn(conn).is_some() {
            return Self::reject(conn, RejectReason::AlreadyPublishing, fx);
        }
        match self.spot_of_user(dj.user_id) {
            Some(spot) if self.place(spot).is_some_and(|place| place.conn().is_some()) => {
                Self::reject(conn, RejectReason::AlreadyPublishing, fx)
            }
            // A held place (grace or reservation): this connection reclaims it.
            Some(Spot::Lead) => {
                if let Some(lead) = &mut self.lead {
                    // The database is authoritative for the name, which may have changed.
                    lead.place.dj = dj;
                    lead.place.link = Link::Live(conn);
                    fx.emit(Output::PublishAccepted { conn, on_air: true, position: 0 });
                    self.went_on_air(now, fx);
                }
            }
            Some(Spot::Waiting(index)) => {
                if let Some(mut place) = self.waiting.remove(index) {
                    // The database is authoritative for the name; a set keeps its members.
                    place.dj = dj;
                    place.link = Link::Live(conn);
                    self.queue_up(now, place, index, fx);
                }
            }
            None if self.lead.is_none() => {
                let blocked =
                    self.block_enabled && self.last_ended.as_ref().is_some_and(|last| last.user_id == dj.user_id);
                if blocked {
                    return Self::reject(conn, RejectReason::Blocked, fx);
                }
                let place = Place::new(dj, Link::Live(conn));
                self.lead = Some(self.new_lead(place, now));
                fx.emit(Output::PublishAccepted { conn, on_air: true, position: 0 });
                self.went_on_air(now, fx);
            }
            None => {
                let at = self.waiting.len();
                self.queue_up(now, Place::new(dj, Link::Live(conn)), at, fx);
            }
        }
    }

    fn reject(conn: ConnId, reason: RejectReason, fx: &mut Effects) {
        fx.emit(Output::PublishRejected { conn, reason });
    }

    /// A connection stopped, dropped or stalled. Unknown connections (already disconnected
    /// by the engine, or refused) are ignored.
    fn on_departure(&mut self, now: Instant, conn: ConnId, departure: Departure, fx: &mut Effects) {
        if self.member_departure(now, conn, departure, fx) {
            return;
        }
        let Some(spot) = self.spot_of_conn(conn) else {
            return;
        };
        if departure == Departure::Stalled {
            fx.emit(Output::Disconnect { conn, reason: DisconnectReason::Stalled });
            if let Some(place) = self.place(spot) {
                fx.notice(Notice::Stalled { dj: place.dj.clone() });
            }
        }
        match (spot, departure) {
            (Spot::Lead, Departure::Stopped) => self.end_set(now, EndReason::Stopped, None, fx),
            (Spot::Lead, Departure::Lost | Departure::Stalled) => self.start_grace(now, fx),
            (Spot::Waiting(index), _) => {
                let reason = match departure {
                    Departure::Stopped => EndReason::Stopped,
                    Departure::Lost => EndReason::ConnectionLost,
                    Departure::Stalled => EndReason::Stalled,
                };
                self.leave_waiting(index, reason, fx);
            }
        }
    }

    fn on_admin(&mut self, now: Instant, command: AdminCommand, fx: &mut Effects) -> Result<(), AdminError> {
        match command {
            AdminCommand::Skip => {
                if self.lead.is_none() {
                    return Err(AdminError::NoCurrentSet);
                }
                self.end_set(now, EndReason::Skipped, Some(DisconnectReason::Skipped), fx);
            }
            AdminCommand::Remove { user_id } => {
                self.remove(now, user_id, EndReason::Removed, DisconnectReason::Removed, fx)?
            }
            AdminCommand::DisableUser { user_id } => {
                self.remove(now, user_id, EndReason::Disabled, DisconnectReason::Disabled, fx)?
            }
            AdminCommand::MoveUp { user_id } => {
                let index = self.waiting_index(user_id)?;
                if index > 0 {
                    self.swap_waiting(index - 1, fx);
                }
            }
            AdminCommand::MoveDown { user_id } => {
                let index = self.waiting_index(user_id)?;
                if index + 1 < self.waiting.len() {
                    self.swap_waiting(index, fx);
                }
            }
            AdminCommand::PauseTimer => self.change_timer(now, fx, |lead| lead.clock.paused = true)?,
            AdminCommand::ResumeTimer => self.change_timer(now, fx, |lead| lead.clock.paused = false)?,
            AdminCommand::ResetTimer => self.change_timer(now, fx, |lead| lead.clock.reset_elapsed(now))?,
            AdminCommand::SetRemaining { secs } => self.change_timer(now, fx, |lead| {
                let remaining = Duration::from_secs(secs);
                lead.clock.budget = lead.clock.elapsed(now).saturating_add(remaining);
            })?,
            AdminCommand::SetSwapInterval { secs, reset_current } => {
                let interval = Duration::from_secs(secs);
                if interval.is_zero() {
                    return Err(AdminError::ZeroSwapInterval);
                }
                if self.swap_interval != interval {
                    self.swap_interval = interval;
                    fx.changed = true;
                    self.notice_settings(fx);
                }
                if self.lead.is_some() {
                    self.change_timer(now, fx, |lead| {
                        lead.clock.budget = interval;
                        if reset_current {
                            lead.clock.reset_elapsed(now);
                        }
                    })?;
                }
            }
            AdminCommand::SetBlock(enabled) => self.set_block(enabled, fx),
            AdminCommand::ToggleBlock => self.set_block(!self.block_enabled, fx),
        }
        Ok(())
    }

    fn remove(
        &mut self,
        now: Instant,
        user_id: UserId,
        end_reason: EndReason,
        reason: DisconnectReason,
        fx: &mut Effects,
    ) -> Result<(), AdminError> {
        if self.remove_from_b2b(now, user_id, reason, fx) {
            return Ok(());
        }
        match self.spot_of_user(user_id).ok_or(AdminError::NotInQueue)? {
            Spot::Lead => self.end_set(now, end_reason, Some(reason), fx),
            Spot::Waiting(index) => {
                if let Some(conn) = self.waiting.get(index).and_then(Place::conn) {
                    fx.emit(Output::Disconnect { conn, reason });
                }
                self.leave_waiting(index, end_reason, fx);
            }
        }
        Ok(())
    }

    /// Index of `user_id` in the waiting list, for the move commands.
    fn waiting_index(&self, user_id: UserId) -> Result<usize, AdminError> {
        match self.spot_of_user(user_id) {
            Some(Spot::Waiting(index)) => Ok(index),
            Some(Spot::Lead) => Err(AdminError::NotWaiting),
            None => Err(AdminError::NotInQueue),
        }
    }

    /// Swaps the waiting places at `upper` and `upper + 1`.
    fn swap_waiting(&mut self, upper: usize, fx: &mut Effects) {
        self.waiting.swap(upper, upper + 1);
        for index in [upper, upper + 1] {
            if let Some(place) = self.waiting.get(index) {
                fx.notice(Notice::Moved { dj: place.dj.clone(), position: index + 1 });
            }
        }
        fx.changed = true;
    }

    /// Applies an operator change to the current set's timer. Changes that leave the timer
    /// as it was (pausing a paused timer) report nothing.
    fn change_timer(
        &mut self,
        now: Instant,
        fx: &mut Effects,
        change: impl FnOnce(&mut Lead),
    ) -> Result<(), AdminError> {
        let lead = self.lead.as_mut().ok_or(AdminError::NoCurrentSet)?;
        let before = lead.clock.reading(now);
        change(lead);
        // An operator's budget is the one a booking cuts from now on.
        lead.uncut_budget = None;
        lead.sync_clock(now);
        lead.rearm_warnings(now);
        if lead.clock.reading(now) != before {
            fx.notice(Notice::TimerChanged {
                dj: lead.place.dj.clone(),
                remaining: lead.clock.remaining(now),
                paused: lead.clock.paused,
            });
            fx.changed = true;
        }
        Ok(())
    }

    fn set_block(&mut self, enabled: bool, fx: &mut Effects) {
        if self.block_enabled != enabled {
            self.block_enabled = enabled;
            fx.changed = true;
            self.notice_settings(fx);
        }
    }

    fn notice_settings(&self, fx: &mut Effects) {
        fx.notice(Notice::SettingsChanged { swap_interval: self.swap_interval, block_enabled: self.block_enabled });
    }

    /// The lead's place just became live: a new set goes on air or a held one resumes.
    fn went_on_air(&mut self, now: Instant, fx: &mut Effects) {
        let Some(lead) = &mut self.lead else { return };
        let dj = lead.place.host().clone();
        fx.notice(if lead.aired { Notice::Resumed { dj } } else { Notice::OnAir { dj } });
        lead.aired = true;
        lead.sync_clock(now);
        // Whoever ended last is no longer "just ended" once somebody is on air again.
        self.last_ended = None;
        fx.changed = true;
        self.sync_program(fx);
    }

    /// The lead's connection is gone without a clean stop: hold the slot for the grace period.
    fn start_grace(&mut self, now: Instant, fx: &mut Effects) {
        let Some(lead) = &mut self.lead else { return };
        lead.place.link = Link::Held(Hold { since: now, length: self.grace_period, kind: HoldKind::Grace });
        lead.sync_clock(now);
        fx.notice(Notice::GraceStarted { dj: lead.place.dj.clone(), grace: self.grace_period });
        fx.changed = true;
        self.sync_program(fx);
    }

    /// Ends the lead's set, disconnecting a live lead when `disconnect` says why, and
    /// promotes the next waiting place.
    fn end_set(&mut self, now: Instant, reason: EndReason, disconnect: Option<DisconnectReason>, fx: &mut Effects) {
        let Some(lead) = self.lead.take() else { return };
        if let (Some(conn), Some(why)) = (lead.place.conn(), disconnect) {
            fx.emit(Output::Disconnect { conn, reason: why });
        }
        lead.place.release_standby(disconnect.unwrap_or(DisconnectReason::SetEnded), fx);
        if lead.aired {
            self.last_ended = Some(lead.place.dj.clone());
        }
        fx.notice(Notice::SetEnded { dj: lead.place.host().clone(), reason });
        fx.changed = true;
        self.promote_next(now, fx);
        self.sync_program(fx);
    }

    /// Moves the first waiting place to the lead. A live one goes on air; a reservation is
    /// held until its own deadline (see the module documentation).
    fn promote_next(&mut self, now: Instant, fx: &mut Effects) {
        let Some(place) = self.waiting.pop_front() else {
            return;
        };
        let held_for = place.hold().map(|hold| hold.time_left(now));
        let dj = place.dj.clone();
        self.lead = Some(self.new_lead(place, now));
        fx.changed = true;
        match held_for {
            None => self.went_on_air(now, fx),
            Some(grace) => fx.notice(Notice::GraceStarted { dj, grace }),
        }
    }

    fn leave_waiting(&mut self, index: usize, reason: EndReason, fx: &mut Effects) {
        if let Some(place) = self.waiting.remove(index) {
            place.release_standby(DisconnectReason::SetEnded, fx);
            fx.notice(Notice::LeftQueue { dj: place.dj, reason });
            fx.changed = true;
        }
    }

    /// Announces the program source if it changed: the lead's connection, or the slate.
    fn sync_program(&mut self, fx: &mut Effects) {
        let program = self.lead.as_ref().and_then(|lead| lead.place.conn());
        if program != self.program {
            self.program = program;
            fx.emit(Output::ProgramSource(program));
        }
    }

    fn place(&self, spot: Spot) -> Option<&Place> {
        match spot {
            Spot::Lead => self.lead.as_ref().map(|lead| &lead.place),
            Spot::Waiting(index) => self.waiting.get(index),
        }
    }

    fn spot_of(&self, matches: impl Fn(&Place) -> bool) -> Option<Spot> {
        if self.lead.as_ref().is_some_and(|lead| matches(&lead.place)) {
            return Some(Spot::Lead);
        }
        self.waiting.iter().position(matches).map(Spot::Waiting)
    }

    fn spot_of_user(&self, user_id: UserId) -> Option<Spot> {
        self.spot_of(|place| place.dj.user_id == user_id)
    }

    fn spot_of_conn(&self, conn: ConnId) -> Option<Spot> {
        self.spot_of(|place| place.conn() == Some(conn))
    }
}

mod b2b;
use b2b::B2b;
pub use b2b::{B2bError, B2bSnapshot, Caller, MAX_MEMBERS, MemberStatus};

#[cfg(test)]
mod tests;
