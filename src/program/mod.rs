//! The program: one continuous FLV timeline fed by the on-air DJ (or the idle slate), fanned
//! out to destinations, players and the recorder.
//!
//! Every decision lives in the pure [`director::Director`] (what is on air, the slate cover,
//! replays, lag resync; its rules are in its module docs), which drives the pure
//! [`Switcher`](crate::media::switcher::Switcher) (keyframe-aligned splice, headers re-sent,
//! timestamps rebased). The task here is the I/O around it: it follows the queue's
//! `ProgramSource`, reads the publishers the director asks for, sleeps until its next
//! deadline, and hands program tags to the [`fanout::Fanout`].

mod director;
pub mod fanout;
pub mod slate;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{mpsc, watch};

use crate::channel::OffProfilePolicy;
use crate::hub::Airing;
use crate::hub::{Publisher, Publishers};
use crate::ids::ConnId;
use crate::media::flv::FlvTag;
use crate::media::switcher::{Source, SwitcherConfig};
use director::{Action, Director, DirectorConfig};
use fanout::Fanout;
pub use fanout::ProgramTag;
use slate::Slate;

/// A consumer more than this far behind is dropped (it can resubscribe).
const MAX_CONSUMER_LAG: Duration = Duration::from_secs(10);
/// How long the program waits, after the on-air DJ leaves, for the queue to name the next
/// one before it fills in with the slate (the queue normally answers within milliseconds).
const DECISION_WAIT: Duration = Duration::from_millis(500);
/// Source ids of transcoded streams start here, far above any connection id.
const DERIVED_IDS: ConnId = ConnId(1 << 62);
/// How often the program asks how to air the DJ on air, when the channel's off-profile
/// policy can change the answer (their profile becomes known, a transcode starts or fails).
const AIRING_POLL: Duration = Duration::from_millis(250);
/// The program's presentation delay at start (ms); a source reordering more raises it.
const PRESENTATION_DELAY_MS: u32 = 100;
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
    Subscribe { name: String, tx: mpsc::Sender<ProgramTag> },
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
    rx: mpsc::Receiver<ProgramTag>,
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
        Some(self.rx.recv().await?.to_tag())
    }

    /// Like [`Self::recv`], with the encodings consumers share (see [`ProgramTag`]).
    pub async fn recv_shared(&mut self) -> Option<ProgramTag> {
        self.rx.recv().await
    }

    /// The next tag if one is waiting: lets a consumer that woke for one tag take the others
    /// that arrived meanwhile and send them in one write.
    pub fn try_recv_shared(&mut self) -> Option<ProgramTag> {
        self.rx.try_recv().ok()
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
    // Every source is presented this long after decoding, so that a splice into a DJ who
    // uses B-frames needs no pause (see the switcher's docs). It covers the slate and the
    // usual encoders: 2 reordered frames at 24 fps and up.
    let slate_delay = match &config.idle {
        IdleMode::Slate(slate) => slate.reorder_delay_ms(),
        IdleMode::Disconnect => 0,
    };
    let switcher =
        SwitcherConfig { presentation_delay_ms: slate_delay.max(PRESENTATION_DELAY_MS), ..SwitcherConfig::default() };
    let director = Director::new(DirectorConfig {
        idle: config.idle,
        fill_after: config.fill_after,
        decision_wait: DECISION_WAIT,
        switcher,
    });
    let program = Program {
        director,
        fanout: Fanout::new(MAX_CONSUMER_LAG),
        publishers,
        feeds: [None, None],
        choice: None,
        aired: None,
        told: None,
        next_derived_id: DERIVED_IDS,
        status,
    };
    tokio::spawn(program.run(source, mailbox, shutdown));
    bus
}

/// The task around the [`Director`]: it reads the publishers the director asks for, sleeps
/// until the director's next deadline, and hands program tags to the fan-out.
struct Program {
    director: Director,
    fanout: Fanout,
    publishers: Publishers,
    /// The director reads at most two publishers at once.
    feeds: [Option<LiveFeed>; 2],
    /// Who the queue puts on air, and what of them the program airs (see `resolve`).
    choice: Option<ConnId>,
    aired: Option<Aired>,
    /// What the director was last told to air.
    told: Option<Option<ConnId>>,
    /// Source ids handed to the director for transcoded streams, apart from connection ids.
    next_derived_id: ConnId,
    status: Arc<Mutex<ProgramStatus>>,
}

/// The stream the program airs for the queue's choice under the channel's off-profile
/// policy: the DJ's own (`id` is their connection) or a transcode of it (a fresh `id`, so
/// the director splices to it like to another DJ).
struct Aired {
    conn: ConnId,
    id: ConnId,
    publisher: Option<Arc<Publisher>>,
}

/// A publisher's live tags, as the director asked for them.
struct LiveFeed {
    conn: ConnId,
    live: broadcast::Receiver<FlvTag>,
}

impl Program {
    async fn run(
        mut self,
        mut source: watch::Receiver<Option<ConnId>>,
        mut mailbox: mpsc::Receiver<BusCommand>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.choice = *source.borrow_and_update();
        self.resolve(Instant::now());
        self.carry_out();
        let policy_applies = self.publishers.channel().off_profile != OffProfilePolicy::Allow;
        let mut airing_poll = tokio::time::interval(AIRING_POLL);
        airing_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // One timer for the task's life, moved to each new deadline: a DJ's stall deadline
        // moves with every tag, and a timer made and dropped per tag costs the runtime's timer
        // lock twice, where moving one later is an atomic store.
        let wake = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(wake);
        loop {
            let deadline = self.director.next_deadline();
            if let Some(at) = deadline.map(tokio::time::Instant::from_std)
                && wake.deadline() != at
            {
                wake.as_mut().reset(at);
            }
            tokio::select! {
                changed = source.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    self.choice = *source.borrow_and_update();
                    self.resolve(Instant::now());
                }
                (slot, received) = next_any(&mut self.feeds) => self.on_feed(slot, received),
                () = &mut wake, if deadline.is_some() => self.director.tick(Instant::now()),
                _ = airing_poll.tick(), if policy_applies => self.resolve(Instant::now()),
                command = mailbox.recv() => match command {
                    Some(BusCommand::Subscribe { name, tx }) => self.fanout.add(name, tx),
                    None => break,
                },
                _ = shutdown.changed() => break,
            }
            self.carry_out();
            self.publish_status();
        }
        // Consumers see the end of the program: destinations end their streams cleanly.
        self.fanout.close_all();
        self.publish_status();
    }

    /// Tells the director what to air for the queue's choice: the DJ's own stream, their
    /// transcode, or (covered, or not decided yet) nobody, so the slate shows.
    fn resolve(&mut self, now: Instant) {
        let aired = self.choice.and_then(|conn| match self.publishers.get(conn) {
            Some(publisher) => match publisher.airing() {
                Airing::Direct => Some(Aired { conn, id: conn, publisher: Some(publisher) }),
                Airing::Transcoded(derived) => {
                    let same = self
                        .aired
                        .as_ref()
                        .filter(|a| a.conn == conn && a.publisher.as_ref().is_some_and(|p| Arc::ptr_eq(p, &derived)));
                    let id = same.map_or_else(
                        || {
                            self.next_derived_id.0 += 1;
                            self.next_derived_id
                        },
                        |a| a.id,
                    );
                    Some(Aired { conn, id, publisher: Some(derived) })
                }
                Airing::Covered | Airing::Undecided => None,
            },
            // Gone already: the director hears so when it asks for them.
            None => Some(Aired { conn, id: conn, publisher: None }),
        });
        let want = aired.as_ref().map(|a| a.id);
        self.aired = aired;
        if self.told != Some(want) {
            self.told = Some(want);
            self.director.want(want, now);
        }
    }

    fn on_feed(&mut self, slot: usize, received: Result<FlvTag, RecvError>) {
        let Some(feed) = &self.feeds[slot] else { return };
        let (conn, now) = (feed.conn, Instant::now());
        match received {
            Ok(tag) => self.director.tag(conn, tag, now),
            Err(RecvError::Lagged(missed)) => self.director.lagged(conn, missed),
            Err(RecvError::Closed) => {
                self.feeds[slot] = None;
                self.director.ended(conn, now);
            }
        }
    }

    /// Does what the director asked for; answers to subscriptions may ask for more.
    fn carry_out(&mut self) {
        loop {
            let actions = self.director.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                match action {
                    Action::Emit(tag) => self.fanout.publish(Instant::now(), tag),
                    Action::EndProgram => self.fanout.close_all(),
                    Action::Unsubscribe(conn) => {
                        for slot in &mut self.feeds {
                            if slot.as_ref().is_some_and(|f| f.conn == conn) {
                                *slot = None;
                            }
                        }
                    }
                    Action::Subscribe(conn) => self.subscribe(conn),
                }
            }
        }
    }

    fn subscribe(&mut self, conn: ConnId) {
        let now = Instant::now();
        let aired = self.aired.as_ref().filter(|a| a.id == conn).and_then(|a| a.publisher.clone());
        let Some(publisher) = aired.or_else(|| self.publishers.get(conn)) else {
            self.director.unavailable(conn, now);
            return;
        };
        let feed = publisher.subscribe();
        // The director lets go of a feed before it asks for a third; should that ever fail, the
        // oldest request loses its slot rather than the newest.
        let slot = self.feeds.iter().position(Option::is_none).unwrap_or(0);
        self.feeds[slot] = Some(LiveFeed { conn, live: feed.live });
        self.director.opened(conn, feed.startup, now);
    }

    fn publish_status(&self) {
        let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let (source, conn) = match self.director.current() {
            // A transcode airs under an id of its own: report the DJ's connection.
            Some(Source::Publisher(id)) => {
                ("dj", Some(self.aired.as_ref().filter(|a| a.id == id).map_or(id, |a| a.conn)))
            }
            Some(Source::Slate) => ("slate", None),
            None => ("off", None),
        };
        status.source = source;
        status.conn = conn;
        status.switches = self.director.switches();
        status.consumers = self.fanout.consumer_count();
        status.timestamp_ms = self.director.next_timestamp();
    }
}

/// The next tag (or lag, or end) from whichever feed has one.
async fn next_any(feeds: &mut [Option<LiveFeed>; 2]) -> (usize, Result<FlvTag, RecvError>) {
    let [a, b] = feeds;
    tokio::select! {
        received = next(a) => (0, received),
        received = next(b) => (1, received),
    }
}

async fn next(feed: &mut Option<LiveFeed>) -> Result<FlvTag, RecvError> {
    match feed {
        Some(feed) => feed.live.recv().await,
        None => std::future::pending().await,
    }
}
