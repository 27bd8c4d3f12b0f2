//! The live publishers: per-connection media state shared with the API (and the switcher).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::media::flv::FlvTag;
use crate::media::gop::GopCache;
use crate::media::stats::{PublisherStats, StatsSnapshot};
use crate::queue::engine::{ConnId, Dj};

/// One publishing connection's buffered media: the GOP cache (so it can go on air at a
/// keyframe at once) and its statistics.
pub struct Publisher {
    pub conn: ConnId,
    pub dj: Dj,
    media: Mutex<PublisherMedia>,
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
            media: Mutex::new(PublisherMedia {
                gop: GopCache::default(),
                stats: PublisherStats::new(now),
            }),
        }
    }

    /// Records one tag from the publisher. The payload is shared, never copied.
    pub fn on_tag(&self, now: Instant, tag: FlvTag) {
        let mut media = self.lock();
        media.stats.on_tag(now, &tag);
        media.gop.push(tag);
    }

    pub fn stats(&self, now: Instant) -> StatsSnapshot {
        self.lock().stats.snapshot(now)
    }

    /// What a consumer starting now needs: sequence headers, metadata, the current GOP.
    pub fn startup_tags(&self) -> Vec<FlvTag> {
        self.lock().gop.startup_tags()
    }

    fn lock(&self) -> MutexGuard<'_, PublisherMedia> {
        // A panic while holding this lock cannot leave the media state half-updated in a
        // way that matters more than losing the stream, so recover the guard.
        self.media
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
