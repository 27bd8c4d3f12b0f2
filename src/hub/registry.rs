//! The live publishers: per-connection media state shared with the API (and the switcher).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{broadcast, watch};

use crate::channel::airing::{Decision, decide};
use crate::channel::health::{self, Health};
use crate::channel::profile::{HeadersKey, declared_fps};
use crate::channel::{ChannelConfig, Difference, OffProfilePolicy, StreamProfile, differences};
use crate::hub::transcoder::{TranscodeState, Transcoder};
use crate::ids::{ConnId, UserId};
use crate::media::flv::FlvTag;
use crate::media::gop::GopCache;
use crate::media::stats::{PublisherStats, StatsSnapshot};
use crate::queue::engine::Dj;

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
    channel: Arc<ChannelConfig>,
    airing: Mutex<AiringState>,
}

/// How the program should air this publisher under the channel's off-profile policy.
#[derive(Clone)]
pub enum Airing {
    /// Not ready yet: the profile is not known (no headers / frame rate yet) and the policy
    /// needs it, or the transcoded stream has not produced its first keyframe. The program
    /// covers with the slate for now. Never returned under policy "allow".
    Undecided,
    /// Air the publisher's own stream.
    Direct,
    /// Air this derived publisher (the transcoded stream) instead. A restarted transcode is
    /// a new derived publisher (compare with `Arc::ptr_eq`), starting at a keyframe.
    Transcoded(Arc<Publisher>),
    /// Off profile under policy "slate", or its transcode failed: cover with the slate.
    Covered,
}

impl Airing {
    /// `undecided`, `direct`, `transcoded` or `covered`, as the status API reports it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Undecided => "undecided",
            Self::Direct => "direct",
            Self::Transcoded(_) => "transcoded",
            Self::Covered => "covered",
        }
    }
}

/// A publisher's stream compared with the channel profile, for the API and the pages.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    /// What is known of the stream.
    pub stream: StreamProfile,
    /// How it differs from the channel profile, each with the OBS setting that fixes it.
    pub differences: Vec<Difference>,
    /// `undecided`, `direct`, `transcoded` or `covered` (see [`Airing`]).
    pub airing: &'static str,
}

/// The decision taken for a stream's headers, and the transcode it started.
#[derive(Default)]
struct AiringState {
    decided: Option<(HeadersKey, Decision)>,
    transcoder: Option<Transcoder>,
}

/// Publishers made without a channel (tests, transcoded streams) air as sent.
static ALLOW_ALL: LazyLock<Arc<ChannelConfig>> = LazyLock::new(Arc::default);

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
        Self::with_channel(conn, dj, now, ALLOW_ALL.clone())
    }

    /// A publisher judged against `channel`'s profile and aired under its policy.
    pub fn with_channel(conn: ConnId, dj: Dj, now: Instant, channel: Arc<ChannelConfig>) -> Self {
        Self {
            conn,
            dj,
            media: Mutex::new(PublisherMedia { gop: GopCache::default(), stats: PublisherStats::new(now) }),
            live: broadcast::channel(LIVE_TAGS).0,
            channel,
            airing: Mutex::new(AiringState::default()),
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

    /// Whether to keep this publisher's current GOP (see [`GopCache::hold_gop`]).
    fn hold_gop(&self, hold: bool) {
        self.lock().gop.hold_gop(hold);
    }

    /// Whether a subscriber starting now would begin at a keyframe.
    pub fn has_keyframe(&self) -> bool {
        self.lock().gop.last_keyframe_timestamp().is_some()
    }

    /// What is known of the stream and how it differs from the channel profile.
    pub fn stream_profile(&self, now: Instant) -> (StreamProfile, Vec<Difference>, std::time::Duration) {
        let (stats, stream, diffs) = self.judged(now);
        (stream, diffs, std::time::Duration::from_millis(stats.uptime_ms))
    }

    /// One snapshot of the statistics, the stream they describe, and its differences from
    /// the channel profile.
    fn judged(&self, now: Instant) -> (StatsSnapshot, StreamProfile, Vec<Difference>) {
        let media = self.lock();
        let stats = media.stats.snapshot(now);
        let declared = media.gop.metadata().and_then(declared_fps);
        drop(media);
        let stream = StreamProfile::from_stats(&stats, declared);
        let diffs = differences(&self.channel.profile, &stream);
        (stats, stream, diffs)
    }

    /// The statistics and, judged from the same snapshot, the stream checks and the
    /// differences from the channel profile in plain words.
    pub fn health(&self, now: Instant) -> (StatsSnapshot, Health) {
        let (stats, _, differences) = self.judged(now);
        let health = health::check(&stats, &differences, self.channel.profile.fps);
        (stats, health)
    }

    /// The stream against the channel profile, and how it is (or would be) aired. Asks for
    /// nothing: a transcode is started only by [`airing`](Self::airing).
    pub fn profile_report(&self, now: Instant) -> ProfileReport {
        let (stream, differences, age) = self.stream_profile(now);
        let decision = decide(self.channel.off_profile, &stream, &differences, age);
        let airing = match decision {
            Decision::Undecided => "undecided",
            Decision::Direct => "direct",
            Decision::Cover => "covered",
            Decision::Transcode => match self.airing_state().transcoder.as_ref().map(Transcoder::state) {
                Some(TranscodeState::Failed) => "covered",
                _ => "transcoded",
            },
        };
        ProfileReport { stream, differences, airing }
    }

    /// How the program should air this publisher now. Call it when putting the publisher on
    /// air and on every watchdog tick: under policy "transcode" it starts the transcode and
    /// keeps it running (it stops a few seconds after the program stops asking).
    ///
    /// The decision is taken as soon as one difference, or the whole profile, is known (at
    /// the latest [`DECIDE_WITHIN`](crate::channel::airing::DECIDE_WITHIN) after the
    /// stream started) and holds until the DJ's stream headers change.
    pub fn airing(&self) -> Airing {
        if self.channel.off_profile == OffProfilePolicy::Allow {
            return Airing::Direct;
        }
        let (stream, diffs, age) = self.stream_profile(Instant::now());
        let key: HeadersKey = stream.headers_key();
        let mut state = self.airing_state();
        let decision = match state.decided {
            Some((decided_for, decision)) if decided_for == key && decision != Decision::Undecided => decision,
            _ => {
                let decision = decide(self.channel.off_profile, &stream, &diffs, age);
                if decision != Decision::Transcode {
                    // A DJ who fixed their settings is no longer transcoded.
                    state.transcoder = None;
                } else if state.decided.is_some_and(|(k, d)| k != key && d == Decision::Transcode) {
                    // New headers: a fresh transcode for them (also after a failed one).
                    state.transcoder = None;
                }
                state.decided = Some((key, decision));
                decision
            }
        };
        match decision {
            Decision::Undecided => Airing::Undecided,
            Decision::Direct => Airing::Direct,
            Decision::Cover => Airing::Covered,
            Decision::Transcode => {
                if state.transcoder.is_none() {
                    if tokio::runtime::Handle::try_current().is_err() {
                        return Airing::Covered;
                    }
                    tracing::info!(
                        "transcoding {}'s stream to the channel profile ({})",
                        self.dj.dj_name,
                        diffs.iter().map(|d| d.message.as_str()).collect::<Vec<_>>().join("; ")
                    );
                    let feed = self.subscribe();
                    state.transcoder = Some(Transcoder::spawn(feed, self.conn, self.dj.clone(), self.channel.clone()));
                }
                match state.transcoder.as_ref().map(Transcoder::want) {
                    Some(TranscodeState::Running(derived)) => Airing::Transcoded(derived),
                    Some(TranscodeState::Starting) => Airing::Undecided,
                    Some(TranscodeState::Failed) | None => Airing::Covered,
                }
            }
        }
    }

    /// Ends this publisher's transcode, if any (the DJ left).
    pub fn stop_transcoding(&self) {
        self.airing_state().transcoder = None;
    }

    fn airing_state(&self) -> MutexGuard<'_, AiringState> {
        self.airing.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    inner: Arc<Mutex<Registry>>,
    channel: Arc<ChannelConfig>,
}

#[derive(Default)]
struct Registry {
    by_conn: HashMap<ConnId, Arc<Publisher>>,
    /// The connections whose GOPs are kept: on air and standing by (see
    /// [`Publishers::keep_warm`]). `None`: every publisher keeps its GOP.
    warm: Option<Vec<ConnId>>,
}

impl Registry {
    fn apply_warmth(&self, publisher: &Publisher) {
        if let Some(warm) = &self.warm {
            publisher.hold_gop(warm.contains(&publisher.conn));
        }
    }
}

impl Publishers {
    /// Publishers judged against `channel`'s profile and aired under its policy.
    pub fn new(channel: ChannelConfig) -> Self {
        Self { inner: Arc::default(), channel: Arc::new(channel) }
    }

    /// A new publisher under this channel (not yet inserted).
    pub fn create(&self, conn: ConnId, dj: Dj, now: Instant) -> Arc<Publisher> {
        Arc::new(Publisher::with_channel(conn, dj, now, self.channel.clone()))
    }

    /// The channel every publisher is judged against.
    pub fn channel(&self) -> &ChannelConfig {
        &self.channel
    }

    pub fn insert(&self, publisher: Arc<Publisher>) {
        let mut registry = self.lock();
        registry.apply_warmth(&publisher);
        registry.by_conn.insert(publisher.conn, publisher);
    }

    /// Keeps the GOPs of the publisher on air and of those standing by (the DJ next in
    /// line), and only the headers of the others: an instant switch needs the next DJ's
    /// keyframe, not the whole queue's. A DJ who moves up starts caching at their next
    /// keyframe.
    pub fn keep_warm(&self, on_air: Option<ConnId>, standby: &[ConnId]) {
        let mut registry = self.lock();
        registry.warm = Some(on_air.into_iter().chain(standby.iter().copied()).collect());
        for publisher in registry.by_conn.values() {
            registry.apply_warmth(publisher);
        }
    }

    /// Follows the queue's program source and standby with [`keep_warm`](Self::keep_warm)
    /// until the queue is gone.
    pub async fn follow_queue(
        self,
        mut on_air: watch::Receiver<Option<ConnId>>,
        mut standby: watch::Receiver<Vec<ConnId>>,
    ) {
        loop {
            let on_air_now = *on_air.borrow_and_update();
            // Cloned so the queue never waits for the registry's lock to publish.
            let standby_now = standby.borrow_and_update().clone();
            self.keep_warm(on_air_now, &standby_now);
            tokio::select! {
                changed = on_air.changed() => if changed.is_err() { return },
                changed = standby.changed() => if changed.is_err() { return },
            }
        }
    }

    pub fn remove(&self, conn: ConnId) {
        let removed = self.lock().by_conn.remove(&conn);
        // Someone (the program) may hold the publisher a while longer; its ffmpeg goes now.
        if let Some(publisher) = removed {
            publisher.stop_transcoding();
        }
    }

    pub fn get(&self, conn: ConnId) -> Option<Arc<Publisher>> {
        self.lock().by_conn.get(&conn).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Publisher>> {
        self.lock().by_conn.values().cloned().collect()
    }

    /// `user`'s newest connection: should their old one not have been dropped yet, the new
    /// one is what they stream now.
    pub fn newest_of(&self, user: UserId) -> Option<Arc<Publisher>> {
        self.lock().by_conn.values().filter(|p| p.dj.user_id == user).max_by_key(|p| p.conn).cloned()
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use crate::media::flv::TagKind;

    fn publisher(registry: &Publishers, conn: u64, now: Instant) -> Arc<Publisher> {
        let dj = Dj { user_id: UserId(conn as i64), dj_name: format!("dj{conn}") };
        let publisher = registry.create(ConnId(conn), dj, now);
        registry.insert(publisher.clone());
        publisher
    }

    /// Sequence header, then a one-second GOP at 10 fps.
    fn stream(publisher: &Publisher, now: Instant, from_ms: u32) {
        publisher.on_tag(now, FlvTag::new(TagKind::Video, from_ms, vec![0x17, 0, 0, 0, 0, 1, 1]));
        for frame in 0..10u32 {
            let first = if frame == 0 { 0x17 } else { 0x27 };
            let mut payload = vec![first, 1, 0, 0, 0];
            payload.resize(1000, 0xab);
            publisher.on_tag(now, FlvTag::new(TagKind::Video, from_ms + frame * 100, payload));
        }
    }

    #[test]
    fn only_the_publishers_on_air_and_next_keep_their_gop() {
        let now = Instant::now();
        let registry = Publishers::default();
        let [on_air, next, third] = [1, 2, 3].map(|conn| publisher(&registry, conn, now));
        registry.keep_warm(Some(ConnId(1)), &[ConnId(2)]);
        let late = publisher(&registry, 4, now);
        for p in [&on_air, &next, &third, &late] {
            stream(p, now, 0);
        }
        let startup = |p: &Publisher| p.subscribe().startup.len();
        assert_eq!([&on_air, &next, &third, &late].map(|p| startup(p)), [11, 11, 1, 1], "headers + GOP, or headers");
        assert!(!third.has_keyframe() && !late.has_keyframe());

        // The third DJ moves up: their GOP starts at their next keyframe.
        registry.keep_warm(Some(ConnId(2)), &[ConnId(3)]);
        assert_eq!(startup(&on_air), 1, "the DJ who left the air let theirs go");
        assert_eq!(startup(&third), 1);
        stream(&third, now, 1000);
        assert_eq!(startup(&third), 11);
        assert!(third.has_keyframe());
    }

    #[tokio::test]
    async fn warmth_follows_the_queue() {
        let now = Instant::now();
        let registry = Publishers::default();
        let [a, b, c] = [1, 2, 3].map(|conn| publisher(&registry, conn, now));
        let (on_air_tx, on_air) = watch::channel(Some(ConnId(1)));
        let (next_tx, next) = watch::channel(vec![ConnId(2)]);
        let follower = tokio::spawn(registry.clone().follow_queue(on_air, next));
        tokio::task::yield_now().await;
        next_tx.send_replace(vec![ConnId(3)]);
        for _ in 0..100 {
            tokio::task::yield_now().await;
            for p in [&a, &b, &c] {
                stream(p, now, 0);
            }
        }
        assert_eq!([&a, &b, &c].map(|p| p.subscribe().startup.len()), [11, 1, 11]);
        drop((on_air_tx, next_tx));
        follower.await.expect("the follower ends with the queue");
    }
}
