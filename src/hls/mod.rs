//! HLS output of the program: fMP4 segments made once, in-process, from the program, and
//! kept in memory for `/hls/…` (see `web::hls`).
//!
//! The task subscribes to the program like any consumer, feeds the pure
//! [`segmenter::Segmenter`], applies its output to the pure [`playlist::Window`], and
//! publishes an immutable [`Snapshot`] through a `watch` channel: requests read the latest
//! snapshot without locking the task out, and blocking playlist reloads wait on it.
//!
//! Unless `[hls] always_on`, the program is muxed only while somebody fetches it: the first
//! request starts the task (which begins with the program's current GOP, so the first
//! segment is complete at the next keyframe), and [`IDLE`] without a request stops it and
//! drops the window. A channel nobody watches as HLS pays neither the muxing nor the
//! window's memory (6 segments of 2 s at 2.5 Mbit/s are about 4 MiB).

pub mod mp4;
pub mod playlist;
pub mod preview;
pub mod segmenter;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::media::flv::FlvTag;
use crate::program::ProgramBus;
use playlist::{Window, WindowConfig};
use segmenter::{Output, Segmenter, SegmenterConfig};

/// Part length the segmenter aims at with `low_latency`; parts come out up to one frame
/// longer, within [`PART_TARGET_MS`].
const PART_MS: u64 = 400;
/// EXT-X-PART-INF PART-TARGET.
const PART_TARGET_MS: u64 = 500;
/// Pause before subscribing again after the program ended or dropped this consumer.
const RESUBSCRIBE: Duration = Duration::from_millis(500);
/// An output nobody has fetched for this long stops being muxed (a player reloads its
/// playlist every segment, so an open player keeps it going).
pub const IDLE: Duration = Duration::from_secs(30);
/// How often a running muxer checks whether it is still fetched.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Blocking requests (LL-HLS reloads, preload-hinted parts) waiting at once, all clients
/// together; more are answered 503 at once.
pub const MAX_WAITERS: usize = 1024;

/// `[hls]` in the configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConfig {
    pub enabled: bool,
    /// Segment target; segments end at the first keyframe this long after they start.
    pub segment_seconds: u32,
    /// Segments in the playlist.
    pub window: usize,
    /// LL-HLS: parts of ~0.4 s, blocking playlist reload, preload hints.
    pub low_latency: bool,
    /// DJs' previews of their own stream muxed at once (each one segmenter and window);
    /// more are refused with 503.
    pub previews: usize,
    /// Mux the program even while nobody fetches it, so that a first viewer finds the whole
    /// window at once instead of waiting for a segment (up to one GOP).
    pub always_on: bool,
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self { enabled: true, segment_seconds: 2, window: 6, low_latency: false, previews: 4, always_on: false }
    }
}

impl HlsConfig {
    /// Out-of-range values are clamped: a zero-length segment or window means nothing.
    fn segmenter(&self) -> SegmenterConfig {
        SegmenterConfig {
            segment_ms: u64::from(self.segment_seconds.clamp(1, 10)) * 1000,
            part_ms: self.low_latency.then_some(PART_MS),
        }
    }

    fn window(&self, run: u64) -> WindowConfig {
        WindowConfig {
            window: self.window.clamp(3, 60),
            segment_ms: self.segmenter().segment_ms,
            part_target_ms: self.low_latency.then_some(PART_TARGET_MS),
            run,
        }
    }
}

/// What requests see: the window and its playlist at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub window: Window,
    pub playlist: Bytes,
}

impl Snapshot {
    /// `window` as it is now, with its playlist rendered.
    fn of(window: &Window) -> Arc<Self> {
        Arc::new(Self { window: window.clone(), playlist: Bytes::from(window.render()) })
    }
}

/// Flow counters of the HLS output.
#[derive(Debug, Default)]
pub struct HlsCounters {
    pub segments: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Blocking requests waiting now.
    pub waiters: AtomicUsize,
}

/// The served side of the HLS output; cheap to clone.
#[derive(Clone)]
pub struct Hls {
    pub config: HlsConfig,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    pub counters: Arc<HlsCounters>,
    demand: Arc<Demand>,
}

/// When the output was last fetched, and the muxer's wake-up when it waits for a viewer.
#[derive(Debug, Default)]
struct Demand {
    last_fetch: Mutex<Option<Instant>>,
    fetched: Notify,
}

impl Demand {
    fn last_fetch(&self) -> MutexGuard<'_, Option<Instant>> {
        // An `Instant` is replaced whole: a panic elsewhere leaves nothing half-done.
        self.last_fetch.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn watched(&self) -> bool {
        self.last_fetch().is_some_and(|at| at.elapsed() < IDLE)
    }

    /// Returns once the output has been fetched within [`IDLE`].
    async fn wait_for_viewer(&self) {
        loop {
            // Registered before the check, so a fetch in between is not missed.
            let fetched = self.fetched.notified();
            if self.watched() {
                return;
            }
            fetched.await;
        }
    }
}

impl Hls {
    /// Counts a request for the output: it keeps the muxer running, or starts it.
    pub fn fetched(&self) {
        *self.demand.last_fetch() = Some(Instant::now());
        self.demand.fetched.notify_one();
    }

    /// Whether the output has been fetched within [`IDLE`].
    pub fn watched(&self) -> bool {
        self.demand.watched()
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// A receiver to wait on for newer snapshots.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// Whether LL-HLS (parts, blocking reload) is on.
    pub fn low_latency(&self) -> bool {
        self.config.low_latency
    }
}

/// An `Hls` fed by the returned sender instead of a task, for tests of what is served.
#[cfg(test)]
pub(crate) fn standalone(config: HlsConfig) -> (Hls, watch::Sender<Arc<Snapshot>>) {
    let (tx, rx) = watch::channel(Snapshot::of(&Window::new(config.window(1))));
    (Hls { config, snapshot: rx, counters: Arc::default(), demand: Arc::default() }, tx)
}

/// Starts the HLS task on `program` until `shutdown`.
pub fn spawn(config: HlsConfig, program: ProgramBus, shutdown: watch::Receiver<bool>) -> Hls {
    let (muxer, hls) = Muxer::new(config);
    let demand = (!config.always_on).then(|| hls.demand.clone());
    tokio::spawn(run_program(muxer, program, demand, shutdown));
    hls
}

/// Why the muxer stopped reading the program.
enum Pause {
    /// The program ended or dropped this consumer.
    Dropped,
    /// Nobody fetched the output for [`IDLE`].
    Unwatched,
}

/// Muxes the program; with `demand`, only while it is fetched.
async fn run_program(
    mut muxer: Muxer,
    program: ProgramBus,
    demand: Option<Arc<Demand>>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if let Some(demand) = &demand {
            tokio::select! {
                () = demand.wait_for_viewer() => {}
                _ = shutdown.changed() => return,
            }
        }
        let Some(mut subscription) = program.subscribe("hls").await else { return };
        let mut check = tokio::time::interval(IDLE_CHECK);
        let pause = loop {
            tokio::select! {
                tag = subscription.recv() => match tag {
                    Some(tag) => muxer.push(tag),
                    None => break Pause::Dropped,
                },
                _ = check.tick(), if demand.is_some() => {
                    if demand.as_ref().is_some_and(|d| !d.watched()) {
                        break Pause::Unwatched;
                    }
                }
                _ = shutdown.changed() => return,
            }
        };
        muxer.interrupt();
        match pause {
            Pause::Unwatched => muxer.forget(),
            Pause::Dropped => tokio::select! {
                _ = tokio::time::sleep(RESUBSCRIBE) => {}
                _ = shutdown.changed() => return,
            },
        }
    }
}

/// FLV tags in, snapshots out: the segmenter and the window behind one [`Hls`], shared by
/// the program's output and the DJs' previews.
struct Muxer {
    segmenter: Segmenter,
    window: Window,
    tx: watch::Sender<Arc<Snapshot>>,
    counters: Arc<HlsCounters>,
}

impl Muxer {
    fn new(config: HlsConfig) -> (Self, Hls) {
        // File names carry the start time, so a restarted muxer never reuses a cached name.
        let run = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let window = Window::new(config.window(run));
        let (tx, rx) = watch::channel(Snapshot::of(&window));
        let counters = Arc::new(HlsCounters::default());
        let muxer = Self { segmenter: Segmenter::new(config.segmenter()), window, tx, counters: counters.clone() };
        (muxer, Hls { config, snapshot: rx, counters, demand: Arc::default() })
    }

    fn push(&mut self, tag: FlvTag) {
        self.segmenter.push(tag, SystemTime::now());
        self.publish();
    }

    /// The source stopped or lost tags: the open segment ends, the next is a discontinuity.
    fn interrupt(&mut self) {
        self.segmenter.interrupt();
        self.publish();
    }

    /// Drops the window's segments (nobody watches); numbering goes on where it was.
    fn forget(&mut self) {
        self.window.clear();
        self.tx.send_replace(Snapshot::of(&self.window));
    }

    /// Applies what the segmenter made; a new snapshot only when something changed.
    fn publish(&mut self) {
        let outputs = self.segmenter.take_outputs();
        if outputs.is_empty() {
            return;
        }
        for output in outputs {
            if matches!(output, Output::SegmentEnded { .. }) {
                self.counters.segments.fetch_add(1, Ordering::Relaxed);
            }
            self.window.apply(output);
        }
        self.tx.send_replace(Snapshot::of(&self.window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::program::BusCommand;

    /// The muxer on a stand-in program: the test sees its subscriptions.
    fn on_demand() -> (Hls, tokio::sync::mpsc::Receiver<BusCommand>, watch::Sender<bool>) {
        let (program, mailbox) = ProgramBus::channel();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let hls = spawn(HlsConfig::default(), program, shutdown);
        (hls, mailbox, shutdown_tx)
    }

    async fn subscription(mailbox: &mut tokio::sync::mpsc::Receiver<BusCommand>) -> Option<BusCommand> {
        tokio::time::timeout(Duration::from_secs(5), mailbox.recv()).await.ok().flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn the_program_is_muxed_from_the_first_fetch_until_idle() {
        let (hls, mut mailbox, _shutdown) = on_demand();
        assert!(subscription(&mut mailbox).await.is_none(), "nobody fetched: not subscribed");

        hls.fetched();
        let Some(BusCommand::Subscribe { tx, .. }) = subscription(&mut mailbox).await else {
            panic!("a fetch subscribes the muxer to the program");
        };
        tokio::time::sleep(IDLE - Duration::from_secs(5)).await;
        hls.fetched();
        tokio::time::sleep(IDLE - Duration::from_secs(5)).await;
        assert!(!tx.is_closed(), "fetched {:?} ago: still muxing", IDLE - Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(5) + IDLE_CHECK * 2).await;
        assert!(tx.is_closed(), "unwatched for {IDLE:?}: unsubscribed");

        hls.fetched();
        assert!(subscription(&mut mailbox).await.is_some(), "the next fetch starts it again");
    }

    #[tokio::test(start_paused = true)]
    async fn always_on_muxes_without_a_viewer() {
        let (program, mut mailbox) = ProgramBus::channel();
        let (_shutdown_tx, shutdown) = watch::channel(false);
        let _hls = spawn(HlsConfig { always_on: true, ..HlsConfig::default() }, program, shutdown);
        let Some(BusCommand::Subscribe { tx, .. }) = subscription(&mut mailbox).await else {
            panic!("subscribed at once");
        };
        tokio::time::sleep(IDLE * 3).await;
        assert!(!tx.is_closed());
    }
}
