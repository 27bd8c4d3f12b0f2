//! The program: one continuous FLV timeline fed by the on-air DJ (or the idle slate), fanned
//! out to destinations, players and the recorder.
//!
//! The program task follows the queue's `ProgramSource` (who should be on air), pulls tags
//! from that publisher (and, while a switch is pending, from the outgoing source too), runs
//! them through the pure [`Switcher`] (keyframe-aligned splice, headers re-sent, timestamps
//! rebased) and hands the result to the [`fanout::Fanout`]. When nobody is on air, or the
//! on-air DJ sends nothing for a moment, the slate fills in so the output never stops.

pub mod fanout;
mod feed;
pub mod slate;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::ingest::Publishers;
use crate::media::flv::FlvTag;
use crate::media::switcher::{Source, Switcher, SwitcherConfig};
use crate::queue::engine::ConnId;
use fanout::Fanout;
use feed::{Feed, FeedEvent};
use slate::{Slate, SlatePlayer};

/// A consumer more than this far behind is dropped (it can resubscribe).
const MAX_CONSUMER_LAG: Duration = Duration::from_secs(10);
/// How often the program checks that the on-air DJ is still sending.
const WATCHDOG: Duration = Duration::from_millis(250);
/// How long the program waits, after the on-air DJ leaves, for the queue to name the next
/// one before it fills in with the slate (the queue normally answers within milliseconds).
const DECISION_WAIT: Duration = Duration::from_millis(500);
/// Requests waiting for the program task.
const MAILBOX: usize = 64;

/// What the program shows when nobody is on air.
#[derive(Clone)]
pub enum IdleMode {
    /// Loop this slate; destinations stay connected.
    Slate(Arc<Slate>),
    /// Stop the program; destinations end their streams cleanly until a DJ is on air again.
    Disconnect,
}

#[derive(Clone)]
pub struct ProgramConfig {
    pub idle: IdleMode,
    /// The slate covers for an on-air DJ whose media stopped for this long (until they
    /// resume at a keyframe, or the queue moves on).
    pub fill_after: Duration,
}

/// Requests to the program task.
pub enum BusCommand {
    /// Adds a consumer; `tx` receives start-up tags, then every program tag.
    Subscribe { name: String, tx: mpsc::Sender<FlvTag> },
}

/// Handle to the program task; cheap to clone.
#[derive(Clone)]
pub struct ProgramBus {
    commands: mpsc::Sender<BusCommand>,
    status: Arc<Mutex<ProgramStatus>>,
}

/// A consumer's view of the program: start-up tags (metadata, sequence headers, current
/// GOP), then every program tag as it is produced.
pub struct Subscription {
    rx: mpsc::Receiver<FlvTag>,
}

impl ProgramBus {
    /// A bus and the receiving end of its commands, for whoever serves them (the program
    /// task, or a test's stand-in).
    pub fn channel() -> (Self, mpsc::Receiver<BusCommand>) {
        let (commands, mailbox) = mpsc::channel(MAILBOX);
        (Self { commands, status: Arc::default() }, mailbox)
    }

    /// Subscribes to the program. `name` identifies the consumer in logs.
    /// `None` if the program task has stopped.
    pub async fn subscribe(&self, name: impl Into<String>) -> Option<Subscription> {
        let (tx, rx) = mpsc::channel(fanout::CONSUMER_BUFFER);
        self.commands.send(BusCommand::Subscribe { name: name.into(), tx }).await.ok()?;
        Some(Subscription { rx })
    }

    pub fn status(&self) -> ProgramStatus {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Subscription {
    /// The next program tag. `None` when the program ended (idle with `idle = "disconnect"`,
    /// shutdown) or this consumer fell too far behind and was dropped: subscribe again.
    pub async fn recv(&mut self) -> Option<FlvTag> {
        self.rx.recv().await
    }
}

/// The program's state, for the API and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProgramStatus {
    /// `slate`, `off`, or `dj`.
    pub source: &'static str,
    /// The connection on air when `source` is `dj`.
    #[serde(skip)]
    pub conn: Option<ConnId>,
    /// Completed splices since start.
    pub switches: u64,
    pub consumers: usize,
    /// Timestamp of the program's last video frame (ms).
    pub timestamp_ms: u32,
}

/// Starts the program task. It follows `source` (the queue's choice) until `shutdown`.
pub fn spawn(
    source: watch::Receiver<Option<ConnId>>,
    publishers: Publishers,
    config: ProgramConfig,
    shutdown: watch::Receiver<bool>,
) -> ProgramBus {
    let (bus, mailbox) = ProgramBus::channel();
    let status = bus.status.clone();
    *status.lock().unwrap_or_else(|p| p.into_inner()) = ProgramStatus { source: "off", ..Default::default() };
    let program = Program {
        switcher: Switcher::new(SwitcherConfig::default()),
        fanout: Fanout::new(MAX_CONSUMER_LAG),
        publishers,
        config,
        wanted: None,
        slots: [None, None],
        slate: None,
        decision_due: None,
        status: status.clone(),
    };
    tokio::spawn(program.run(source, mailbox, shutdown));
    bus
}

struct Program {
    switcher: Switcher,
    fanout: Fanout,
    publishers: Publishers,
    config: ProgramConfig,
    /// What should be on air: a publisher, the slate, or nothing (`idle = "disconnect"`).
    wanted: Option<Source>,
    /// At most two publishers are read at once: the one on air and the one about to be.
    slots: [Option<Feed>; 2],
    slate: Option<SlatePlayer>,
    /// Set while the program waits for the queue's next choice after the on-air DJ left.
    decision_due: Option<Instant>,
    status: Arc<Mutex<ProgramStatus>>,
}

impl Program {
    async fn run(
        mut self,
        mut source: watch::Receiver<Option<ConnId>>,
        mut mailbox: mpsc::Receiver<BusCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let initial = *source.borrow_and_update();
        self.want(initial, Instant::now());
        let mut watchdog = tokio::time::interval(WATCHDOG);
        loop {
            let slate_at = self.slate_due_at();
            tokio::select! {
                changed = source.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let conn = *source.borrow_and_update();
                    self.want(conn, Instant::now());
                }
                (slot, event) = next_any(&mut self.slots) => self.on_feed(slot, event),
                _ = sleep_until(slate_at) => self.play_slate(Instant::now()),
                _ = sleep_until(self.decision_due) => {
                    self.reconcile(Instant::now());
                    self.decision_due = None;
                }
                _ = watchdog.tick() => self.check_stall(Instant::now()),
                command = mailbox.recv() => match command {
                    Some(BusCommand::Subscribe { name, tx }) => self.fanout.add(name, tx),
                    None => break,
                },
                _ = shutdown.changed() => break,
            }
            self.publish_status();
        }
        // Consumers see the end of the program: destinations end their streams cleanly.
        self.fanout.close_all();
        self.publish_status();
    }

    /// The queue changed who should be on air.
    fn want(&mut self, conn: Option<ConnId>, now: Instant) {
        self.decision_due = None;
        self.wanted = match (conn, &self.config.idle) {
            (Some(conn), _) => Some(Source::Publisher(conn)),
            (None, IdleMode::Slate(_)) => Some(Source::Slate),
            (None, IdleMode::Disconnect) => None,
        };
        if let Some(Source::Publisher(conn)) = self.wanted
            && !self.slots.iter().flatten().any(|f| f.conn == conn)
        {
            match self.publishers.get(conn) {
                Some(publisher) => self.put_feed(Feed::live(conn, publisher.subscribe(), now.into())),
                None => tracing::warn!("program: publisher {conn} is already gone"),
            }
        }
        self.reconcile(now);
    }

    /// Points the switcher at what should be on air, with the slate covering any hole.
    fn reconcile(&mut self, now: Instant) {
        match self.wanted {
            None => {
                if let Some(current) = self.switcher.current() {
                    self.switcher.source_ended(current);
                    tracing::info!("program: nobody on air, ending the program (idle = disconnect)");
                }
                self.fanout.close_all();
            }
            Some(wanted) => {
                let current = self.switcher.current();
                let slate_available = matches!(self.config.idle, IdleMode::Slate(_));
                let next = match (current, wanted) {
                    // Nothing on air (the DJ before left): the wanted DJ goes on at once,
                    // replayed from their cached keyframe; without one, the slate fills in
                    // and they follow at their next keyframe.
                    (None, Source::Publisher(conn)) => {
                        if self.start_replay(conn, now) {
                            Source::Publisher(conn)
                        } else if self.publishers.get(conn).is_none()
                            && now < *self.decision_due.get_or_insert(now + DECISION_WAIT)
                        {
                            // The DJ on air just left and the queue has not yet said who is
                            // next: wait a moment for that rather than flash the slate.
                            return;
                        } else if slate_available {
                            Source::Slate
                        } else {
                            wanted
                        }
                    }
                    _ => wanted,
                };
                if current == Some(next) {
                    if self.switcher.pending().is_some() {
                        self.switcher.select(next); // cancels the pending switch
                    }
                } else if self.switcher.pending() != Some(next) {
                    self.select(next, now);
                }
            }
        }
        // Drop feeds that are neither on air nor wanted.
        let keep = |conn: ConnId| {
            self.wanted == Some(Source::Publisher(conn)) || self.switcher.current() == Some(Source::Publisher(conn))
        };
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|f| !keep(f.conn)) {
                *slot = None;
            }
        }
        self.sync_slate(now);
    }

    /// Makes `source` the pending source and hands the switcher its stream headers, which
    /// it re-sends at the splice. (The slate player starts with its headers by itself.)
    fn select(&mut self, source: Source, now: Instant) {
        self.switcher.select(source);
        if let Source::Publisher(conn) = source {
            let headers = self.slots.iter().flatten().find(|f| f.conn == conn).map(|f| f.headers.clone());
            for tag in headers.iter().flat_map(|h| [&h.metadata, &h.video, &h.audio]).flatten() {
                for out in self.switcher.push(source, tag) {
                    self.fanout.publish(now, out);
                }
            }
        }
    }

    /// Replaces `conn`'s feed with a replay from its cached keyframe. False if it has none.
    fn start_replay(&mut self, conn: ConnId, now: Instant) -> bool {
        let Some(publisher) = self.publishers.get(conn) else { return false };
        let Some(feed) = Feed::replay(conn, publisher.subscribe(), now.into()) else { return false };
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|f| f.conn == conn) {
                *slot = None;
            }
        }
        tracing::info!("program: putting publisher {conn} on air from its cached keyframe");
        self.put_feed(feed);
        true
    }

    fn put_feed(&mut self, feed: Feed) {
        let current = self.switcher.current();
        // Reuse an empty slot, else the one not on air.
        let index = self
            .slots
            .iter()
            .position(Option::is_none)
            .or_else(|| self.slots.iter().position(|s| s.as_ref().map(|f| Source::Publisher(f.conn)) != current))
            .unwrap_or(0);
        self.slots[index] = Some(feed);
    }

    fn on_feed(&mut self, index: usize, event: FeedEvent) {
        let now = Instant::now();
        let Some(feed) = &self.slots[index] else { return };
        let source = Source::Publisher(feed.conn);
        match event {
            FeedEvent::Tag(tag) => self.push(source, &tag, now),
            FeedEvent::Lagged(n) => {
                tracing::warn!("program fell {n} tags behind publisher {}", feed.conn);
            }
            FeedEvent::Ended => {
                self.slots[index] = None;
                if self.switcher.current() == Some(source) || self.switcher.pending() == Some(source) {
                    self.switcher.source_ended(source);
                }
                self.reconcile(now);
            }
        }
    }

    /// Runs one source tag through the switcher and sends the result out.
    fn push(&mut self, source: Source, tag: &FlvTag, now: Instant) {
        let before = self.switcher.current();
        let out = self.switcher.push(source, tag);
        for tag in out {
            self.fanout.publish(now, tag);
        }
        let after = self.switcher.current();
        if after != before && after.is_some() {
            self.on_switched(after, now);
        }
    }

    fn on_switched(&mut self, now_on_air: Option<Source>, now: Instant) {
        {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.switches += 1;
        }
        match now_on_air {
            Some(Source::Publisher(conn)) => tracing::info!("program: spliced in publisher {conn}"),
            Some(Source::Slate) => tracing::info!("program: spliced in the slate"),
            None => {}
        }
        // The outgoing publisher is no longer needed unless it is still wanted.
        let (wanted, current) = (self.wanted, self.switcher.current());
        for slot in &mut self.slots {
            if let Some(f) = slot {
                let s = Some(Source::Publisher(f.conn));
                if s != wanted && s != current {
                    *slot = None;
                }
            }
        }
        // A filler slate is on: now queue the wanted DJ behind it.
        self.reconcile(now);
    }

    fn play_slate(&mut self, now: Instant) {
        let IdleMode::Slate(slate) = &self.config.idle else { return };
        let slate = slate.clone();
        let Some(player) = &mut self.slate else { return };
        let tags = player.due(&slate, now);
        for tag in tags {
            self.push(Source::Slate, &tag, now);
        }
    }

    /// The slate plays while it is on air or about to be.
    fn sync_slate(&mut self, now: Instant) {
        let needed = self.switcher.current() == Some(Source::Slate) || self.switcher.pending() == Some(Source::Slate);
        match (needed, self.slate.is_some()) {
            (true, false) => self.slate = Some(SlatePlayer::start(now)),
            (false, true) => self.slate = None,
            _ => {}
        }
    }

    fn slate_due_at(&self) -> Option<Instant> {
        let IdleMode::Slate(slate) = &self.config.idle else { return None };
        self.slate.as_ref().and_then(|p| p.next_at(slate))
    }

    /// The on-air DJ stopped sending media without disconnecting: cover with the slate
    /// until they resume (the queue's own stall rule decides whether they keep the slot).
    fn check_stall(&mut self, now: Instant) {
        let Some(Source::Publisher(conn)) = self.switcher.current() else { return };
        let stalled = self
            .slots
            .iter()
            .flatten()
            .find(|f| f.conn == conn)
            .is_some_and(|f| now.duration_since(f.last_tag.into_std()) >= self.config.fill_after);
        if stalled && matches!(self.config.idle, IdleMode::Slate(_)) {
            tracing::info!(
                "program: publisher {conn} sent nothing for {:?}; covering with the slate",
                self.config.fill_after
            );
            // The slate directly (not a replay of the DJ's cached GOP, which was aired
            // already); once it is on, the DJ is selected again and returns at their next
            // live keyframe.
            self.switcher.source_ended(Source::Publisher(conn));
            self.select(Source::Slate, now);
            self.sync_slate(now);
        }
    }

    fn publish_status(&self) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let (source, conn) = match self.switcher.current() {
            Some(Source::Publisher(conn)) => ("dj", Some(conn)),
            Some(Source::Slate) => ("slate", None),
            None => ("off", None),
        };
        status.source = source;
        status.conn = conn;
        status.consumers = self.fanout.consumer_count();
        status.timestamp_ms = self.switcher.next_timestamp();
    }
}

/// The next event from whichever feed has one.
async fn next_any(slots: &mut [Option<Feed>; 2]) -> (usize, FeedEvent) {
    let [a, b] = slots;
    tokio::select! {
        event = next(a) => (0, event),
        event = next(b) => (1, event),
    }
}

async fn next(slot: &mut Option<Feed>) -> FeedEvent {
    match slot {
        Some(feed) => feed.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
