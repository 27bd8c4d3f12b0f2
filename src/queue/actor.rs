//! The queue actor: the single owner of "who is on air".
//!
//! It owns the pure [`Engine`], feeds it events from the ingest connections, the HTTP API and
//! its own ticker (with the real clock), and turns the engine's outputs into effects: answers
//! to waiting publishers, disconnects, the program source, notices, persistence. Nothing else
//! mutates queue state, so there are no locks around it and no ordering races.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::engine::{
    AdminCommand, AdminError, Booking, ConnId, DisconnectReason, Dj, Engine, Input, MAX_BOOKINGS, Notice, Output,
    RejectReason, Snapshot, Status, UserId,
};
use crate::backoff::Backoff;
use crate::store::{BookingRecord, Store};

/// How often the actor ticks the engine (slot expiry, grace periods, warnings).
const TICK: Duration = Duration::from_millis(200);
/// Commands waiting for the actor; senders wait when it is full (backpressure, not loss).
const MAILBOX: usize = 1024;
/// How often the time left in a running set is saved.
const TIMER_SAVE: Duration = Duration::from_secs(5);
/// Notices kept for slow SSE subscribers before they start missing some.
const NOTICE_BACKLOG: usize = 256;
/// How far ahead the engine is told about bookings; reloads come much more often.
const TIMETABLE_AHEAD: Duration = Duration::from_secs(8 * 24 * 3600);
/// How often the timetable is reloaded without a change, to bring later bookings in.
const TIMETABLE_RELOAD: Duration = Duration::from_secs(3600);
/// How soon a failed timetable load is tried again.
const TIMETABLE_RETRY: Duration = Duration::from_secs(10);

/// The engine's answer to a publish request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishDecision {
    Accepted { on_air: bool, position: usize },
    Rejected(RejectReason),
}

#[derive(Debug, thiserror::Error)]
#[error("the queue service has stopped")]
pub struct QueueGone;

enum Command {
    Publish { conn: ConnId, dj: Dj, kick: oneshot::Sender<DisconnectReason>, reply: oneshot::Sender<PublishDecision> },
    Event(Input),
    Admin { command: AdminCommand, reply: oneshot::Sender<Result<(), AdminError>> },
    // A back-to-back change (add or remove a member, hand over): refused like an admin command.
    SetChange { input: Input, reply: oneshot::Sender<Result<(), AdminError>> },
    Status { reply: oneshot::Sender<Status> },
    Snapshot { reply: oneshot::Sender<Snapshot> },
}

/// Cheap, cloneable handle to the queue actor.
#[derive(Clone)]
pub struct QueueHandle {
    commands: mpsc::Sender<Command>,
    notices: broadcast::Sender<Notice>,
    program: watch::Receiver<Option<ConnId>>,
    standby: watch::Receiver<Vec<ConnId>>,
    timetable_changed: Arc<Notify>,
    booked: watch::Receiver<Arc<[BookingRecord]>>,
}

impl QueueHandle {
    /// Asks for a place in the queue. `kick` fires if the engine later disconnects this
    /// connection (slot elapsed, skipped, removed…).
    pub async fn publish(
        &self,
        conn: ConnId,
        dj: Dj,
        kick: oneshot::Sender<DisconnectReason>,
    ) -> Result<PublishDecision, QueueGone> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Publish { conn, dj, kick, reply }).await?;
        answer.await.map_err(|_| QueueGone)
    }

    /// Reports a connection event (clean stop, lost connection, stall).
    pub async fn report(&self, input: Input) -> Result<(), QueueGone> {
        self.send(Command::Event(input)).await
    }

    pub async fn admin(&self, command: AdminCommand) -> Result<Result<(), AdminError>, QueueGone> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Admin { command, reply }).await?;
        answer.await.map_err(|_| QueueGone)
    }

    /// Forms, changes or hands over a back-to-back set; the engine checks who may.
    pub async fn change_set(&self, input: Input) -> Result<Result<(), AdminError>, QueueGone> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::SetChange { input, reply }).await?;
        answer.await.map_err(|_| QueueGone)
    }

    pub async fn status(&self) -> Result<Status, QueueGone> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Status { reply }).await?;
        answer.await.map_err(|_| QueueGone)
    }

    /// The queue as it would be saved now (with the lead's time left to the moment).
    pub async fn snapshot(&self) -> Result<Snapshot, QueueGone> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Snapshot { reply }).await?;
        answer.await.map_err(|_| QueueGone)
    }

    /// Saves the queue now, with the lead's time left to this moment (at shutdown).
    pub async fn save_now(&self, store: &Store) -> Result<(), String> {
        let snapshot = self.snapshot().await.map_err(|e| e.to_string())?;
        write_snapshot(store, &snapshot).await
    }

    /// Live notices (on air, set ended, warnings…), for SSE and integrations.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// The connection whose media is the program right now (`None`: the slate).
    pub fn program_source(&self) -> watch::Receiver<Option<ConnId>> {
        self.program.clone()
    }

    /// The connections that may go on air without notice (see [`Engine::standby`]).
    pub fn standby(&self) -> watch::Receiver<Vec<ConnId>> {
        self.standby.clone()
    }

    /// The approved bookings the engine was last given (the next days'), earliest first:
    /// pages and overlays read them here rather than asking the database per viewer.
    pub fn booked(&self) -> Arc<[BookingRecord]> {
        self.booked.borrow().clone()
    }

    /// The bookings or default set lengths in the store changed: the engine gets them again.
    pub fn timetable_changed(&self) {
        self.timetable_changed.notify_one();
    }

    async fn send(&self, command: Command) -> Result<(), QueueGone> {
        self.commands.send(command).await.map_err(|_| QueueGone)
    }
}

/// Starts the actor (and its persistence task) on the current runtime.
///
/// The engine is restored from the store's last snapshot if there is one, so DJs who
/// reconnect within the grace period get their place back after a restart.
pub async fn spawn(store: Store, settings: super::engine::Settings) -> QueueHandle {
    let now = Instant::now();
    let engine = match store.load_queue_snapshot().await {
        Ok(Some(json)) => match serde_json::from_str::<Snapshot>(&json) {
            Ok(snapshot) => {
                tracing::info!("restoring the queue saved before the last shutdown");
                Engine::restore(settings, snapshot, now.into_std())
            }
            Err(e) => {
                tracing::warn!("ignoring an unreadable saved queue: {e}");
                Engine::new(settings)
            }
        },
        Ok(None) => Engine::new(settings),
        Err(e) => {
            tracing::warn!("could not load the saved queue, starting empty: {e}");
            Engine::new(settings)
        }
    };
    let (commands, mailbox) = mpsc::channel(MAILBOX);
    let (notices, _) = broadcast::channel(NOTICE_BACKLOG);
    let (program_tx, program) = watch::channel(None);
    let (standby_tx, standby) = watch::channel(engine.standby());
    let (persist_tx, persist_rx) = watch::channel(None);
    let store_for_timetable = store.clone();
    tokio::spawn(persist_loop(store, persist_rx));
    let actor = Actor {
        engine,
        mailbox,
        notices: notices.clone(),
        program: program_tx,
        standby: standby_tx,
        persist: persist_tx,
        pending: HashMap::new(),
        kicks: HashMap::new(),
    };
    tokio::spawn(actor.run());
    let timetable_changed = Arc::new(Notify::new());
    let clock = WallClock { instant: now.into_std(), unix: SystemTime::now() };
    let (booked_tx, booked) = watch::channel(Arc::from([]));
    let timetable =
        Timetable { commands: commands.downgrade(), clock, changed: timetable_changed.clone(), booked: booked_tx };
    tokio::spawn(timetable_loop(store_for_timetable, timetable));
    QueueHandle { commands, notices, program, standby, timetable_changed, booked }
}

/// The moment the actor started, on both clocks: bookings (Unix seconds) become engine
/// instants relative to it, so reloading an unchanged booking gives exactly the same
/// instant (and the engine keeps its state, docs/timetable.md R10). A wall-clock step after
/// the start is only followed after a restart.
#[derive(Clone, Copy)]
struct WallClock {
    instant: std::time::Instant,
    unix: SystemTime,
}

impl WallClock {
    /// A booking's start and length on the engine's clock. A start too far back for an
    /// `Instant` (before the machine booted) moves forward and the length shrinks to match:
    /// the slot's end is what counts.
    fn slot(&self, starts_at: i64, length_secs: i64) -> (std::time::Instant, Duration) {
        let start = UNIX_EPOCH + Duration::from_secs(u64::try_from(starts_at).unwrap_or(0));
        let length = Duration::from_secs(u64::try_from(length_secs).unwrap_or(0));
        match start.duration_since(self.unix) {
            Ok(ahead) => (self.instant.checked_add(ahead).unwrap_or(self.instant), length),
            Err(behind) => {
                let behind = behind.duration();
                let mut back = behind;
                loop {
                    if let Some(instant) = self.instant.checked_sub(back) {
                        return (instant, length.saturating_sub(behind - back));
                    }
                    back /= 2;
                }
            }
        }
    }
}

/// What the timetable loop works with.
struct Timetable {
    commands: mpsc::WeakSender<Command>,
    clock: WallClock,
    changed: Arc<Notify>,
    booked: watch::Sender<Arc<[BookingRecord]>>,
}

/// Feeds the engine the approved bookings and default set lengths, at start, after every
/// change and every [`TIMETABLE_RELOAD`], and publishes the bookings. Ends with the actor.
async fn timetable_loop(store: Store, timetable: Timetable) {
    let Timetable { commands, clock, changed, booked } = timetable;
    loop {
        let wait = match load_timetable(&store, clock).await {
            Ok((records, inputs)) => {
                booked.send_replace(records);
                for input in inputs {
                    let Some(commands) = commands.upgrade() else { return };
                    if commands.send(Command::Event(input)).await.is_err() {
                        return;
                    }
                }
                TIMETABLE_RELOAD
            }
            Err(e) => {
                tracing::warn!("loading the timetable failed (retrying in {TIMETABLE_RETRY:?}): {e}");
                TIMETABLE_RETRY
            }
        };
        if commands.upgrade().is_none() {
            return;
        }
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn load_timetable(
    store: &Store,
    clock: WallClock,
) -> Result<(Arc<[BookingRecord]>, [Input; 2]), crate::store::StoreError> {
    let now = crate::store::unix_now();
    let ahead = i64::try_from(TIMETABLE_AHEAD.as_secs()).unwrap_or(i64::MAX);
    let records = store.bookings_between(now, now.saturating_add(ahead), true).await?;
    let bookings = records
        .iter()
        .take(MAX_BOOKINGS)
        .map(|record| {
            let (start, length) = clock.slot(record.starts_at, record.length_secs);
            Booking {
                id: record.id,
                user_id: UserId(record.user_id),
                dj_name: record.dj_name.clone(),
                start,
                length,
                hard_start: record.hard_start,
            }
        })
        .collect();
    let lengths = store
        .default_set_lengths()
        .await?
        .into_iter()
        .map(|(user_id, _, secs)| (UserId(user_id), Duration::from_secs(u64::try_from(secs).unwrap_or(0))))
        .collect();
    Ok((records.into(), [Input::SetBookings(bookings), Input::SetDefaultSetLengths(lengths)]))
}

struct Actor {
    engine: Engine,
    mailbox: mpsc::Receiver<Command>,
    notices: broadcast::Sender<Notice>,
    program: watch::Sender<Option<ConnId>>,
    standby: watch::Sender<Vec<ConnId>>,
    persist: watch::Sender<Option<Snapshot>>,
    pending: HashMap<ConnId, oneshot::Sender<PublishDecision>>,
    kicks: HashMap<ConnId, oneshot::Sender<DisconnectReason>>,
}

impl Actor {
    async fn run(mut self) {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut save_timer = tokio::time::interval(TIMER_SAVE);
        save_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = self.mailbox.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = ticker.tick() => self.feed(Input::Tick),
                _ = save_timer.tick() => self.save_running_timer(),
            }
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { conn, dj, kick, reply } => {
                self.pending.insert(conn, reply);
                self.kicks.insert(conn, kick);
                self.feed(Input::PublishRequested { conn, dj });
                // The engine answers every request; a missing answer would be a bug, and
                // dropping the sender makes the connection refuse rather than hang.
                self.pending.remove(&conn);
            }
            Command::Event(input) => {
                if let Input::PublishStopped { conn } | Input::ConnectionLost { conn } = &input {
                    self.kicks.remove(conn);
                }
                self.feed(input);
            }
            Command::Admin { command, reply } => {
                let result = self.engine.handle(Instant::now().into_std(), Input::Admin(command));
                let outcome = result.map(|outputs| self.apply(outputs));
                let _ = reply.send(outcome);
            }
            Command::SetChange { input, reply } => {
                let result = self.engine.handle(Instant::now().into_std(), input);
                let outcome = result.map(|outputs| self.apply(outputs));
                let _ = reply.send(outcome);
            }
            Command::Status { reply } => {
                let _ = reply.send(self.engine.status(Instant::now().into_std()));
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.engine.snapshot(Instant::now().into_std()));
            }
        }
    }

    /// The engine persists on every change, but a running set's clock changes without
    /// events; saving it every few seconds bounds what a crash can lose of it.
    fn save_running_timer(&mut self) {
        let now = Instant::now().into_std();
        let running = self.engine.status(now).lead.is_some_and(|lead| lead.conn.is_some() && !lead.paused);
        if running {
            self.persist.send_replace(Some(self.engine.snapshot(now)));
        }
    }

    fn feed(&mut self, input: Input) {
        match self.engine.handle(Instant::now().into_std(), input) {
            Ok(outputs) => self.apply(outputs),
            Err(e) => tracing::warn!("queue engine refused an event: {e}"),
        }
    }

    fn apply(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::PublishAccepted { conn, on_air, position } => {
                    if let Some(reply) = self.pending.remove(&conn) {
                        let _ = reply.send(PublishDecision::Accepted { on_air, position });
                    }
                }
                Output::PublishRejected { conn, reason } => {
                    self.kicks.remove(&conn);
                    if let Some(reply) = self.pending.remove(&conn) {
                        let _ = reply.send(PublishDecision::Rejected(reason));
                    }
                }
                Output::ProgramSource(source) => {
                    self.program.send_replace(source);
                }
                Output::Disconnect { conn, reason } => {
                    if let Some(kick) = self.kicks.remove(&conn) {
                        let _ = kick.send(reason);
                    }
                }
                Output::Notice(notice) => {
                    tracing::info!(target: "motherstream::queue", "{notice}");
                    // No subscribers is fine: notices are fire-and-forget.
                    let _ = self.notices.send(notice);
                }
                Output::Persist(snapshot) => {
                    self.persist.send_replace(Some(snapshot));
                }
            }
        }
        let standby = self.engine.standby();
        self.standby.send_if_modified(|current| {
            let changed = *current != standby;
            *current = standby;
            changed
        });
    }
}

/// Writes the latest snapshot whenever it changes. A burst of changes collapses into one
/// write of the newest state, and a slow or failing database never blocks the actor.
async fn write_snapshot(store: &Store, snapshot: &Snapshot) -> Result<(), String> {
    let json = serde_json::to_string(snapshot).map_err(|e| format!("cannot serialise the queue: {e}"))?;
    store.save_queue_snapshot(&json).await.map_err(|e| e.to_string())
}

async fn persist_loop(store: Store, mut latest: watch::Receiver<Option<Snapshot>>) {
    while latest.changed().await.is_ok() {
        let Some(snapshot) = latest.borrow_and_update().clone() else {
            continue;
        };
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
        while let Err(e) = write_snapshot(&store, &snapshot).await {
            let delay = backoff.next_delay();
            tracing::warn!("saving the queue failed (retrying in {delay:?}): {e}");
            tokio::time::sleep(delay).await;
            if latest.has_changed().unwrap_or(false) {
                break; // a newer snapshot supersedes this one
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookings_map_onto_the_engine_clock_with_their_end_fixed() {
        let clock = WallClock { instant: std::time::Instant::now(), unix: UNIX_EPOCH + Duration::from_secs(1_000_000) };
        let (start, length) = clock.slot(1_000_600, 1800);
        assert_eq!((start - clock.instant, length), (Duration::from_secs(600), Duration::from_secs(1800)));
        let (start, length) = clock.slot(999_400, 1800);
        assert_eq!((clock.instant - start, length), (Duration::from_secs(600), Duration::from_secs(1800)));
        assert_eq!(clock.slot(1_000_600, 1800), clock.slot(1_000_600, 1800), "the same booking, the same instant");
        // Before the machine booted: the start moves forward, the end stays.
        let (start, length) = clock.slot(0, 1_000_060);
        assert_eq!(start + length, clock.instant + Duration::from_secs(60));
    }
}
