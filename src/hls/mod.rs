//! HLS output of the program: fMP4 segments made once, in-process, from the program, and
//! kept in memory for `/hls/…` (see `web::hls`).
//!
//! The task subscribes to the program like any consumer, feeds the pure
//! [`segmenter::Segmenter`], applies its output to the pure [`playlist::Window`], and
//! publishes an immutable [`Snapshot`] through a `watch` channel: requests read the latest
//! snapshot without locking the task out, and blocking playlist reloads wait on it.

pub mod mp4;
pub mod playlist;
pub mod preview;
pub mod segmenter;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::watch;

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
}

impl Default for HlsConfig {
    fn default() -> Self {
        Self { enabled: true, segment_seconds: 2, window: 6, low_latency: false, previews: 4 }
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
}

impl Hls {
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
    let window = Window::new(config.window(1));
    let playlist = Bytes::from(window.render());
    let (tx, rx) = watch::channel(Arc::new(Snapshot { window, playlist }));
    (Hls { config, snapshot: rx, counters: Arc::default() }, tx)
}

/// Starts the HLS task on `program` until `shutdown`.
pub fn spawn(config: HlsConfig, program: ProgramBus, shutdown: watch::Receiver<bool>) -> Hls {
    let (muxer, hls) = Muxer::new(config);
    tokio::spawn(run_program(muxer, program, shutdown));
    hls
}

async fn run_program(mut muxer: Muxer, program: ProgramBus, mut shutdown: watch::Receiver<bool>) {
    loop {
        let Some(mut subscription) = program.subscribe("hls").await else { return };
        loop {
            tokio::select! {
                tag = subscription.recv() => match tag {
                    Some(tag) => muxer.push(tag),
                    None => break,
                },
                _ = shutdown.changed() => return,
            }
        }
        muxer.interrupt();
        tokio::select! {
            _ = tokio::time::sleep(RESUBSCRIBE) => {}
            _ = shutdown.changed() => return,
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
        let playlist = Bytes::from(window.render());
        let (tx, rx) = watch::channel(Arc::new(Snapshot { window: window.clone(), playlist }));
        let counters = Arc::new(HlsCounters::default());
        let muxer = Self { segmenter: Segmenter::new(config.segmenter()), window, tx, counters: counters.clone() };
        (muxer, Hls { config, snapshot: rx, counters })
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
        let playlist = Bytes::from(self.window.render());
        self.tx.send_replace(Arc::new(Snapshot { window: self.window.clone(), playlist }));
    }
}
