//! Previews: a DJ's own incoming stream as HLS, so they can check picture and sound before
//! their turn (issue 14). Muxed exactly like the program's output (the same [`Muxer`]), from
//! the publisher's cached GOP and then its live tags; started by the first request, stopped
//! once nobody has fetched it for [`super::IDLE`] or when the publisher goes, and at most
//! `[hls] previews` at once, so a page left open costs nothing once closed and many cannot
//! add up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::oneshot;

use super::{Hls, HlsConfig, IDLE_CHECK, Muxer};
use crate::hub::{Publisher, PublisherFeed};
use crate::ids::{ConnId, UserId};

/// `[hls] previews` are running: the request should be retried later.
#[derive(Debug, PartialEq, Eq)]
pub struct PreviewsFull;

/// The running previews, one per DJ; cheap to clone.
#[derive(Clone)]
pub struct Previews {
    config: HlsConfig,
    running: Arc<Mutex<HashMap<UserId, Running>>>,
    ids: Arc<AtomicU64>,
}

struct Running {
    /// Tells a replaced preview's task which entry is its own.
    id: u64,
    conn: ConnId,
    hls: Hls,
    /// Dropped when the entry is replaced: the task then stops.
    _stop: oneshot::Sender<()>,
}

impl Previews {
    pub fn new(config: HlsConfig) -> Self {
        Self { config, running: Arc::default(), ids: Arc::default() }
    }

    /// The preview of `publisher`, started if it is not running; each call counts as a fetch.
    /// A preview of the DJ's earlier connection is replaced.
    pub fn open(&self, publisher: &Publisher) -> Result<Hls, PreviewsFull> {
        let user = publisher.dj.user_id;
        let mut running = self.lock();
        if let Some(preview) = running.get(&user).filter(|p| p.conn == publisher.conn) {
            preview.hls.fetched();
            return Ok(preview.hls.clone());
        }
        running.remove(&user);
        if running.len() >= self.config.previews {
            return Err(PreviewsFull);
        }
        let (muxer, hls) = Muxer::new(self.config);
        hls.fetched();
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = Task { previews: self.clone(), user, id, hls: hls.clone() };
        tokio::spawn(task.run(muxer, publisher.subscribe(), stop_rx));
        running.insert(user, Running { id, conn: publisher.conn, hls: hls.clone(), _stop: stop_tx });
        Ok(hls)
    }

    /// Previews running now.
    pub fn running(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, Running>> {
        // Entries are inserted and removed whole, so a panic elsewhere leaves nothing half-done.
        self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Task {
    previews: Previews,
    user: UserId,
    id: u64,
    hls: Hls,
}

impl Task {
    async fn run(self, mut muxer: Muxer, feed: PublisherFeed, mut stop: oneshot::Receiver<()>) {
        for tag in feed.startup {
            muxer.push(tag);
        }
        let mut live = feed.live;
        let mut check = tokio::time::interval(IDLE_CHECK);
        loop {
            tokio::select! {
                tag = live.recv() => match tag {
                    Ok(tag) => muxer.push(tag),
                    // Behind the publisher: the segmenter starts again at the next keyframe.
                    Err(RecvError::Lagged(_)) => muxer.interrupt(),
                    // The publisher is gone.
                    Err(RecvError::Closed) => break,
                },
                _ = check.tick() => {
                    if !self.hls.watched() {
                        break;
                    }
                }
                // Replaced by a preview of a newer connection: that entry is not ours.
                _ = &mut stop => return,
            }
        }
        let mut running = self.previews.lock();
        if running.get(&self.user).is_some_and(|p| p.id == self.id) {
            running.remove(&self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::hls::IDLE;
    use crate::queue::engine::Dj;

    fn publisher(conn: u64, user: i64) -> Publisher {
        let dj = Dj { user_id: UserId(user), dj_name: format!("dj{user}") };
        Publisher::new(ConnId(conn), dj, std::time::Instant::now())
    }

    fn previews(max: usize) -> Previews {
        Previews::new(HlsConfig { previews: max, ..HlsConfig::default() })
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_the_configured_number_run_and_a_dj_reuses_their_own() {
        let previews = previews(2);
        let (a, b, c) = (publisher(1, 1), publisher(2, 2), publisher(3, 3));
        assert!(previews.open(&a).is_ok());
        assert!(previews.open(&b).is_ok());
        assert!(previews.open(&a).is_ok(), "the same DJ's preview is reused, not a third");
        assert_eq!(previews.open(&c).err(), Some(PreviewsFull));
        assert_eq!(previews.running(), 2);
        let a_again = publisher(4, 1);
        assert!(previews.open(&a_again).is_ok(), "a new connection replaces the DJ's preview");
        assert_eq!(previews.running(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_preview_nobody_fetches_stops_and_frees_its_place() {
        let previews = previews(1);
        let (a, b) = (publisher(1, 1), publisher(2, 2));
        assert!(previews.open(&a).is_ok());
        tokio::time::sleep(IDLE - Duration::from_secs(5)).await;
        assert!(previews.open(&a).is_ok(), "a fetch keeps it going");
        tokio::time::sleep(IDLE - Duration::from_secs(5)).await;
        assert_eq!(previews.running(), 1, "fetched {:?} ago", IDLE - Duration::from_secs(5));
        assert_eq!(previews.open(&b).err(), Some(PreviewsFull));
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(previews.running(), 0);
        assert!(previews.open(&b).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_preview_stops_when_its_publisher_goes() {
        let previews = previews(1);
        let a = publisher(1, 1);
        assert!(previews.open(&a).is_ok());
        drop(a);
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(previews.running(), 0);
    }
}
