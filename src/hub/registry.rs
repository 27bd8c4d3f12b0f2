//! The live publishers: per-connection media state shared with the API (and the switcher).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::broadcast;

use crate::channel::airing::{Decision, decide};
use crate::channel::health::{self, Health};
use crate::channel::profile::{HeadersKey, declared_fps};
use crate::channel::{ChannelConfig, Difference, OffProfilePolicy, StreamProfile, differences};
use crate::hub::transcoder::{TranscodeState, Transcoder};
use crate::ids::ConnId;
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
    inner: Arc<Mutex<HashMap<ConnId, Arc<Publisher>>>>,
    channel: Arc<ChannelConfig>,
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
        self.lock().insert(publisher.conn, publisher);
    }

    pub fn remove(&self, conn: ConnId) {
        let removed = self.lock().remove(&conn);
        // Someone (the program) may hold the publisher a while longer; its ffmpeg goes now.
        if let Some(publisher) = removed {
            publisher.stop_transcoding();
        }
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
