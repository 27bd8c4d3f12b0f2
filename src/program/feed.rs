//! A publisher the program reads from.
//!
//! A *live* feed passes tags on as they arrive. A *replay* feed starts from the publisher's
//! cached keyframe and releases every tag at its own pace — the time since that keyframe by
//! the publisher's clock — so the next DJ goes on air at once when the previous one leaves
//! (no waiting for a keyframe, no slate in between), without a burst that would push the
//! program's timestamps ahead of real time. The replay then plays slightly faster than real
//! time until it has caught up with the live stream, so the delay (at most one GOP) lasts
//! only the first seconds of the set.

use std::collections::VecDeque;
use std::time::Duration;

// tokio's clock (the real one, or a test's paused one) for all pacing.
use tokio::time::Instant;

use tokio::sync::broadcast::{self, error::RecvError};

use crate::ingest::{PublisherFeed, StreamHeaders};
use crate::media::codec::{is_stream_header, is_video_keyframe};
use crate::media::flv::{FlvTag, TagKind};
use crate::queue::engine::ConnId;

/// A replay plays this much faster than real time until it has caught up with the live
/// stream: a one-second head start is gone after twenty seconds, at a pace no viewer notices
/// and no platform minds.
const CATCH_UP_SPEED: f64 = 1.05;

/// Tags a replay may hold back. A GOP cache holds at most this many, so only a publisher
/// sending faster than real time could exceed it; the backlog is then released at once.
const MAX_BACKLOG: usize = 4096;

pub(super) enum FeedEvent {
    Tag(FlvTag),
    /// The program missed tags (it fell behind the publisher's broadcast).
    Lagged(u64),
    /// The publisher is gone and everything it sent has been released.
    Ended,
}

pub(super) struct Feed {
    pub conn: ConnId,
    /// The stream's latest headers, re-sent by the switcher at a splice.
    pub headers: StreamHeaders,
    /// When the publisher last sent anything.
    pub last_tag: Instant,
    live: Option<broadcast::Receiver<FlvTag>>,
    replay: Option<Replay>,
}

struct Replay {
    /// The cached keyframe is released at `anchor_wall`; a tag `d` ms later at `+ d`.
    anchor_wall: Instant,
    anchor_ts: u32,
    backlog: VecDeque<FlvTag>,
}

impl Feed {
    /// Follows the publisher from now on.
    pub fn live(conn: ConnId, feed: PublisherFeed, now: Instant) -> Self {
        Self { conn, headers: feed.headers, last_tag: now, live: Some(feed.live), replay: None }
    }

    /// Replays the publisher from its cached keyframe; `None` if it has none yet.
    pub fn replay(conn: ConnId, feed: PublisherFeed, now: Instant) -> Option<Self> {
        let start = feed.startup.iter().position(is_video_keyframe)?;
        let anchor_ts = feed.startup[start].timestamp;
        // Headers travel separately (`headers`); only media from the keyframe on is replayed.
        let backlog = feed.startup.into_iter().skip(start).filter(|t| !is_stream_header(t)).collect();
        Some(Self {
            conn,
            headers: feed.headers,
            last_tag: now,
            live: Some(feed.live),
            replay: Some(Replay { anchor_wall: now, anchor_ts, backlog }),
        })
    }

    /// The next thing to hand to the switcher. Cancel-safe.
    pub async fn next(&mut self) -> FeedEvent {
        loop {
            let due = self.replay.as_ref().and_then(|r| r.backlog.front().map(|t| r.release_at(t)));
            if let Some(at) = due
                && at <= Instant::now()
                && let Some(tag) = self.replay.as_mut().and_then(|r| r.backlog.pop_front())
            {
                return FeedEvent::Tag(tag);
            }
            let Some(live) = &mut self.live else {
                match due {
                    Some(at) => {
                        tokio::time::sleep_until(at).await;
                        continue;
                    }
                    None => return FeedEvent::Ended,
                }
            };
            let received = tokio::select! {
                received = live.recv() => received,
                _ = sleep_until(due) => continue,
            };
            match received {
                Ok(tag) => {
                    self.last_tag = Instant::now();
                    track_headers(&mut self.headers, &tag);
                    match &mut self.replay {
                        None => return FeedEvent::Tag(tag),
                        // Caught up: the replay has drained and this tag is already due.
                        Some(replay) if replay.backlog.is_empty() && replay.release_at(&tag) <= Instant::now() => {
                            tracing::debug!("program: publisher {} caught up with live", self.conn);
                            self.replay = None;
                            return FeedEvent::Tag(tag);
                        }
                        Some(replay) => replay.hold(tag),
                    }
                }
                Err(RecvError::Lagged(n)) => return FeedEvent::Lagged(n),
                Err(RecvError::Closed) => self.live = None,
            }
        }
    }
}

impl Replay {
    fn release_at(&self, tag: &FlvTag) -> Instant {
        let since = tag.timestamp.wrapping_sub(self.anchor_ts);
        // A tag stamped before the keyframe (interleaved audio) is due at once.
        if since > u32::MAX / 2 {
            return self.anchor_wall;
        }
        self.anchor_wall + Duration::from_secs_f64(f64::from(since) / 1000.0 / CATCH_UP_SPEED)
    }

    fn hold(&mut self, tag: FlvTag) {
        self.backlog.push_back(tag);
        if self.backlog.len() > MAX_BACKLOG {
            // The publisher runs faster than real time: stop pacing rather than grow.
            tracing::warn!("program replay backlog over {MAX_BACKLOG} tags; releasing it at once");
            let last = self.backlog.back().map_or(self.anchor_ts, |t| t.timestamp);
            self.anchor_ts = last;
            self.anchor_wall = Instant::now();
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Keeps a feed's idea of its stream headers current when the DJ sends new ones mid-stream.
fn track_headers(headers: &mut StreamHeaders, tag: &FlvTag) {
    if !is_stream_header(tag) {
        return;
    }
    match tag.kind {
        TagKind::Video => headers.video = Some(tag.clone()),
        TagKind::Audio => headers.audio = Some(tag.clone()),
        TagKind::Script => headers.metadata = Some(tag.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn tag(kind: TagKind, ts: u32, payload: &'static [u8]) -> FlvTag {
        FlvTag { kind, timestamp: ts, payload: Bytes::from_static(payload) }
    }

    fn publisher_feed(startup: Vec<FlvTag>) -> (PublisherFeed, broadcast::Sender<FlvTag>) {
        let (tx, live) = broadcast::channel(16);
        (PublisherFeed { headers: StreamHeaders::default(), startup, live }, tx)
    }

    const KEY: &[u8] = &[0x17, 1, 0, 0, 0, 9];
    const INTER: &[u8] = &[0x27, 1, 0, 0, 0, 9];
    const SEQ: &[u8] = &[0x17, 0, 0, 0, 0, 1];
    const AAC: &[u8] = &[0xAF, 1, 9];

    #[tokio::test(start_paused = true)]
    async fn replay_starts_at_the_cached_keyframe_and_keeps_its_pace() {
        let startup = vec![
            tag(TagKind::Video, 5000, SEQ),
            tag(TagKind::Audio, 5990, AAC),
            tag(TagKind::Video, 6000, KEY),
            tag(TagKind::Video, 6033, INTER),
            tag(TagKind::Video, 6066, INTER),
        ];
        let (pf, tx) = publisher_feed(startup);
        let t0 = Instant::now();
        let mut feed = Feed::replay(7, pf, t0).unwrap();
        // The cached keyframe goes at once (the audio before it is not replayed); a live tag
        // arriving meanwhile waits its turn behind the cached ones; each tag leaves when its
        // distance from the keyframe has elapsed (timer resolution: a millisecond or two).
        tx.send(tag(TagKind::Video, 6100, INTER)).unwrap();
        let mut released = Vec::new();
        for _ in 0..4 {
            let FeedEvent::Tag(t) = feed.next().await else { panic!() };
            released.push((t.timestamp, t0.elapsed().as_millis() as u32));
        }
        let timestamps: Vec<u32> = released.iter().map(|r| r.0).collect();
        assert_eq!(timestamps, [6000, 6033, 6066, 6100]);
        for (ts, at) in released {
            let due = (f64::from(ts - 6000) / CATCH_UP_SPEED) as u32;
            assert!((due..=due + 3).contains(&at), "tag {ts} released after {at} ms, due at {due}");
        }
        drop(tx);
        assert!(matches!(feed.next().await, FeedEvent::Ended));
    }

    #[tokio::test(start_paused = true)]
    async fn replay_catches_up_with_live_then_passes_tags_straight_through() {
        // One second cached: the keyframe at 0, frames every 40 ms.
        let startup = (0..=25).map(|i| tag(TagKind::Video, i * 40, if i == 0 { KEY } else { INTER })).collect();
        let (pf, tx) = publisher_feed(startup);
        let t0 = Instant::now();
        let mut feed = Feed::replay(7, pf, t0).unwrap();
        // The live stream goes on in real time: frame `ts` arrives at t0 + (ts - 1000) ms.
        tokio::spawn(async move {
            for i in 26..1000u32 {
                tokio::time::sleep_until(t0 + Duration::from_millis(u64::from(i * 40 - 1000))).await;
                if tx.send(tag(TagKind::Video, i * 40, INTER)).is_err() {
                    return;
                }
            }
        });
        let mut late_at_end = None;
        while let FeedEvent::Tag(t) = feed.next().await {
            let arrived = Duration::from_millis(u64::from(t.timestamp.saturating_sub(1000)));
            let behind = t0.elapsed().saturating_sub(arrived);
            if t.timestamp == 39_960 {
                late_at_end = Some(behind);
                break;
            }
        }
        assert!(late_at_end.unwrap() <= Duration::from_millis(2), "still {late_at_end:?} behind");
        assert!(feed.replay.is_none(), "back to passing live tags straight through");
    }

    #[test]
    fn replay_needs_a_cached_keyframe() {
        let (pf, _tx) = publisher_feed(vec![tag(TagKind::Video, 0, SEQ), tag(TagKind::Video, 33, INTER)]);
        assert!(Feed::replay(1, pf, Instant::now()).is_none());
    }

    #[tokio::test]
    async fn live_feed_passes_tags_through_and_tracks_new_headers() {
        let (pf, tx) = publisher_feed(Vec::new());
        let mut feed = Feed::live(3, pf, Instant::now());
        tx.send(tag(TagKind::Video, 10, SEQ)).unwrap();
        let FeedEvent::Tag(t) = feed.next().await else { panic!() };
        assert_eq!(t.timestamp, 10);
        assert!(feed.headers.video.is_some());
    }
}
