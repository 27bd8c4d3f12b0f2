//! The live publishers: per-connection media state shared with the API (and the switcher).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::broadcast;

use crate::media::flv::FlvTag;
use crate::media::gop::GopCache;
use crate::media::stats::{PublisherStats, StatsSnapshot};
use crate::queue::engine::{ConnId, Dj};

/// Tags a live subscriber (the program, the recorder) may fall behind by before it misses
/// some. Only kept while someone subscribes: a queued DJ's stream costs just its GOP cache.
const LIVE_TAGS: usize = 256;

/// One publishing connection's buffered media: the GOP cache (so it can go on air at a
/// keyframe at once), its statistics, and a broadcast of its tags as they arrive.
pub struct Publisher {
    pub conn: ConnId,
    pub dj: Dj,
    media: Mutex<PublisherMedia>,
    live: broadcast::Sender<FlvTag>,
}

/// What a subscriber needs to start from a publisher: its stream headers (latest video and
/// audio sequence headers and metadata), its cached GOP, and the live tags from then on.
pub struct PublisherFeed {
    pub headers: StreamHeaders,
    pub startup: Vec<FlvTag>,
    pub live: broadcast::Receiver<FlvTag>,
}

/// A stream's latest headers.
#[derive(Debug, Clone, Default)]
pub struct StreamHeaders {
    pub video: Option<FlvTag>,
    pub audio: Option<FlvTag>,
    pub metadata: Option<FlvTag>,
}

struct PublisherMedia {
    gop: GopCache,
    stats: PublisherStats,
}

impl Publisher {
    pub fn new(conn: ConnId, dj: Dj, now: Instant) -> Self {
        Self {
            conn,
            dj,
            media: Mutex::new(PublisherMedia { gop: GopCache::default(), stats: PublisherStats::new(now) }),
            live: broadcast::channel(LIVE_TAGS).0,
        }
    }

    /// Records one tag from the publisher. The payload is shared, never copied.
    pub fn on_tag(&self, now: Instant, tag: FlvTag) {
        let mut media = self.lock();
        media.stats.on_tag(now, &tag);
        media.gop.push(tag.clone());
        // Sent under the lock so that `subscribe` sees each tag either in the cache or live,
        // never both. No subscribers is the normal case for a queued DJ.
        let _ = self.live.send(tag);
    }

    /// Starts following this publisher.
    pub fn subscribe(&self) -> PublisherFeed {
        let media = self.lock();
        PublisherFeed {
            headers: StreamHeaders {
                video: media.gop.video_sequence_header().cloned(),
                audio: media.gop.audio_sequence_header().cloned(),
                metadata: media.gop.metadata().cloned(),
            },
            startup: media.gop.startup_tags(),
            live: self.live.subscribe(),
        }
    }

    pub fn stats(&self, now: Instant) -> StatsSnapshot {
        self.lock().stats.snapshot(now)
    }

    fn lock(&self) -> MutexGuard<'_, PublisherMedia> {
        // A panic while holding this lock cannot leave the media state half-updated in a
        // way that matters more than losing the stream, so recover the guard.
        self.media.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// All publishers currently connected, by connection id.
#[derive(Default, Clone)]
pub struct Publishers {
    inner: Arc<Mutex<HashMap<ConnId, Arc<Publisher>>>>,
}

impl Publishers {
    pub fn insert(&self, publisher: Arc<Publisher>) {
        self.lock().insert(publisher.conn, publisher);
    }

    pub fn remove(&self, conn: ConnId) {
        self.lock().remove(&conn);
    }

    pub fn get(&self, conn: ConnId) -> Option<Arc<Publisher>> {
        self.lock().get(&conn).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Publisher>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, Arc<Publisher>>> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
