//! Fan-out of the program to its consumers (destinations, players, the recorder).
//!
//! Each consumer has a bounded channel. Tags are `FlvTag`s whose payloads are shared
//! `Bytes`, so N consumers cost N reference-count bumps, never N copies. A consumer that
//! cannot keep up is never waited for: its channel fills, it starts *lagging* and misses
//! tags until the next video keyframe, where it resumes with the current sequence headers
//! (so it can decode again). A consumer that lags for longer than `max_lag` is dropped;
//! its receiver then sees the end of the stream and can reconnect.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::media::codec::is_video_keyframe;
use crate::media::flv::{FlvTag, TagKind};
use crate::media::gop::GopCache;
use crate::rtmp::EncodedMessage;

/// One program tag as every consumer receives it: the tag, and the encodings that consumers
/// of one kind share, made by the first of them that needs one (so 1,000 RTMP players cost
/// one chunk encoding of each message, not 1,000).
#[derive(Debug, Clone)]
pub struct ProgramTag(Arc<SharedTag>);

#[derive(Debug)]
struct SharedTag {
    tag: FlvTag,
    rtmp: OnceLock<Option<EncodedMessage>>,
}

impl ProgramTag {
    pub fn new(tag: FlvTag) -> Self {
        Self(Arc::new(SharedTag { tag, rtmp: OnceLock::new() }))
    }

    /// The tag's RTMP chunks, encoded by `encode` on first use and shared from then on.
    /// `None` when the encoding failed (it is not retried).
    pub fn rtmp_chunks(&self, encode: impl FnOnce(&FlvTag) -> Option<EncodedMessage>) -> Option<&EncodedMessage> {
        self.0.rtmp.get_or_init(|| encode(&self.0.tag)).as_ref()
    }

    /// The tag itself, for consumers that do their own encoding.
    pub fn to_tag(&self) -> FlvTag {
        self.0.tag.clone()
    }
}

impl Deref for ProgramTag {
    type Target = FlvTag;

    fn deref(&self) -> &FlvTag {
        &self.0.tag
    }
}

/// Tags buffered per consumer: enough for a joiner's start-up burst of a 10 s GOP at 30 fps
/// with audio (~750 tags), and several seconds of a typical stream (~75 tags/s) after it.
pub const CONSUMER_BUFFER: usize = 1024;

/// Share of a joiner's buffer kept free for the live tags that follow its start-up burst.
const JOIN_HEADROOM_DIVISOR: usize = 16;

enum Flow {
    Live,
    /// Joined while the cached GOP was too big to send: waits for the next keyframe, however
    /// long the GOP (a joiner is not slow, so the lag limit does not apply).
    Joining,
    /// Missing tags since `since` until the next keyframe.
    Lagging {
        since: Instant,
        dropped: u64,
    },
}

struct Consumer {
    name: String,
    tx: mpsc::Sender<ProgramTag>,
    flow: Flow,
}

/// Audio frames held back at most to travel with the next video frame (about 170 ms of
/// AAC at 48 kHz: more means the video has stopped, and the audio goes alone).
const MAX_HELD_AUDIO: usize = 8;

/// Consumers of the program and the program's own GOP cache (for late joiners).
pub struct Fanout {
    consumers: Vec<Consumer>,
    gop: GopCache,
    max_lag: Duration,
    next_id: u64,
    /// Audio frames waiting for the next video frame, so that every consumer is woken and
    /// writes once per video frame rather than once per frame of either kind (a player's
    /// write is a system call, and audio frames outnumber pictures). Audio is delayed by one
    /// picture interval at most; pictures are never delayed.
    held_audio: Vec<FlvTag>,
}

impl Fanout {
    pub fn new(max_lag: Duration) -> Self {
        Self { consumers: Vec::new(), gop: GopCache::default(), max_lag, next_id: 1, held_audio: Vec::new() }
    }

    /// Adds a consumer, which first receives what it needs to start decoding at once:
    /// metadata, sequence headers and the current GOP. When that GOP is too big for the
    /// consumer's buffer (a long keyframe interval), it starts at the next keyframe instead,
    /// with the headers sent just before it.
    pub fn add(&mut self, name: String, tx: mpsc::Sender<ProgramTag>) {
        let id = self.next_id;
        self.next_id += 1;
        let startup = self.gop.startup_tags();
        let flow = if startup.len() + tx.capacity() / JOIN_HEADROOM_DIVISOR <= tx.capacity() {
            for tag in startup {
                // Cannot fail for room (checked above); a closed receiver is dropped at the
                // next publish.
                let _ = tx.try_send(ProgramTag::new(tag));
            }
            Flow::Live
        } else {
            tracing::info!(
                "program consumer {name} joins at the next keyframe: the current GOP ({} tags) is larger than its buffer",
                startup.len()
            );
            Flow::Joining
        };
        tracing::debug!("program consumer {name} (#{id}) joined");
        self.consumers.push(Consumer { name, tx, flow });
    }

    /// Sends one program tag to every consumer, without ever waiting for one. Audio of a
    /// program with video goes out with the next video frame.
    pub fn publish(&mut self, now: Instant, tag: FlvTag) {
        if tag.kind == TagKind::Audio && !self.gop.is_audio_only() && self.held_audio.len() < MAX_HELD_AUDIO {
            self.held_audio.push(tag);
            return;
        }
        let held = std::mem::take(&mut self.held_audio);
        for audio in held {
            self.deliver(now, audio);
        }
        self.deliver(now, tag);
    }

    fn deliver(&mut self, now: Instant, tag: FlvTag) {
        self.gop.push(tag.clone());
        let tag = ProgramTag::new(tag);
        // Where a consumer that missed tags can start again: a video keyframe, or any audio
        // frame of a program without video.
        let resume_point = is_video_keyframe(&tag) || (self.gop.is_audio_only() && tag.kind == TagKind::Audio);
        let max_lag = self.max_lag;
        let headers: Vec<ProgramTag> = if resume_point && self.consumers.iter().any(|c| !matches!(c.flow, Flow::Live)) {
            [self.gop.metadata(), self.gop.video_sequence_header(), self.gop.audio_sequence_header()]
                .into_iter()
                .flatten()
                .map(|h| ProgramTag::new(FlvTag { timestamp: tag.timestamp, ..h.clone() }))
                .collect()
        } else {
            Vec::new()
        };
        self.consumers.retain_mut(|c| match &mut c.flow {
            Flow::Live => match c.tx.try_send(tag.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!("program consumer {} is too slow; skipping to the next keyframe", c.name);
                    c.flow = Flow::Lagging { since: now, dropped: 1 };
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
            Flow::Lagging { since, dropped } => {
                let (since, skipped) = (*since, *dropped);
                if now.duration_since(since) > max_lag {
                    tracing::warn!(
                        "dropping program consumer {}: behind for {:?} ({skipped} tags skipped)",
                        c.name,
                        now.duration_since(since)
                    );
                    return false;
                }
                if !resume(c, resume_point, &headers, &tag) {
                    c.flow = Flow::Lagging { since, dropped: skipped + 1 };
                    return !c.tx.is_closed();
                }
                tracing::info!("program consumer {} caught up after skipping {skipped} tags", c.name);
                true
            }
            Flow::Joining => resume(c, resume_point, &headers, &tag) || !c.tx.is_closed(),
        });
    }

    /// Drops every consumer (their receivers see the end of the program).
    pub fn close_all(&mut self) {
        self.consumers.clear();
        self.held_audio.clear();
        self.gop = GopCache::default();
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }
}

/// Starts a waiting consumer again at a resume point, headers first. False if `tag` is not
/// one or the consumer has no room for it yet.
fn resume(c: &mut Consumer, resume_point: bool, headers: &[ProgramTag], tag: &ProgramTag) -> bool {
    if !resume_point || c.tx.capacity() < headers.len() + 1 {
        return false;
    }
    for h in headers {
        let _ = c.tx.try_send(h.clone());
    }
    let _ = c.tx.try_send(tag.clone());
    c.flow = Flow::Live;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::VideoTagInfo;
    use bytes::Bytes;

    fn video(ts: u32, key: bool) -> FlvTag {
        let first = if key { 0x17 } else { 0x27 };
        FlvTag { kind: TagKind::Video, timestamp: ts, payload: Bytes::from(vec![first, 1, 0, 0, 0, 0xAB]) }
    }

    fn seq_header() -> FlvTag {
        FlvTag {
            kind: TagKind::Video,
            timestamp: 0,
            payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe0]),
        }
    }

    #[test]
    fn late_joiner_gets_headers_and_current_gop_first() {
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let now = Instant::now();
        fanout.publish(now, seq_header());
        fanout.publish(now, video(0, true));
        fanout.publish(now, video(33, false));
        let (tx, mut rx) = mpsc::channel(16);
        fanout.add("viewer".into(), tx);
        let first = rx.try_recv().unwrap();
        assert_eq!(first.payload[1], 0, "sequence header first");
        assert!(VideoTagInfo::parse(&rx.try_recv().unwrap().payload).unwrap().is_keyframe());
        assert_eq!(rx.try_recv().unwrap().timestamp, 33);
    }

    fn audio(ts: u32) -> FlvTag {
        FlvTag { kind: TagKind::Audio, timestamp: ts, payload: Bytes::from_static(&[0xaf, 1, 0x21]) }
    }

    /// Frame `i` of a 30 fps stream with audio, a keyframe every `gop` frames.
    fn publish_frame(fanout: &mut Fanout, i: u32, gop: u32, at: Instant) {
        fanout.publish(at, video(i * 33, i.is_multiple_of(gop)));
        fanout.publish(at, audio(i * 33));
    }

    /// Issue 16, finding 1: a 10 s GOP (x264 `-g 300` at 30 fps) with audio; a player joining
    /// 8.5 s after the keyframe was dropped ("could not take the start-up tags").
    #[test]
    fn late_joiner_of_a_10_s_gop_gets_the_whole_gop_at_once() {
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let now = Instant::now();
        fanout.publish(now, seq_header());
        for i in 0..258 {
            publish_frame(&mut fanout, i, 300, now);
        }
        let (tx, mut rx) = mpsc::channel(CONSUMER_BUFFER);
        fanout.add("late player".into(), tx);
        assert_eq!(fanout.consumer_count(), 1, "the joiner is kept");
        // The last audio frame waits for the next picture.
        assert_eq!(rx.len(), 1 + 2 * 258 - 1, "headers and the whole GOP");
        assert_eq!(rx.try_recv().unwrap().payload[1], 0, "sequence header first");
        assert!(is_video_keyframe(&rx.try_recv().unwrap()), "then the cached keyframe");
    }

    /// A GOP too big for the joiner's buffer: it starts at the next keyframe, however long
    /// that takes (here longer than the lag limit): a joiner is not a slow consumer.
    #[test]
    fn late_joiner_of_a_gop_too_big_to_send_starts_at_the_next_keyframe() {
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let t0 = Instant::now();
        fanout.publish(t0, seq_header());
        for i in 0..600 {
            publish_frame(&mut fanout, i, 900, t0);
        }
        let (tx, mut rx) = mpsc::channel(CONSUMER_BUFFER);
        fanout.add("late player".into(), tx);
        assert!(rx.try_recv().is_err(), "nothing before the next keyframe: the GOP does not fit");
        let later = t0 + Duration::from_secs(12);
        for i in 600..910 {
            publish_frame(&mut fanout, i, 900, later);
        }
        assert_eq!(fanout.consumer_count(), 1);
        let got: Vec<ProgramTag> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(got[0].payload[1], 0, "sequence header first");
        assert!(is_video_keyframe(&got[1]), "then the keyframe");
        assert_eq!(got[1].timestamp, 900 * 33, "the next keyframe, not an inter frame");
        assert!(got.len() > 2, "and live tags after it");
    }

    #[test]
    fn late_joiner_of_a_gop_that_fits_gets_it_at_once() {
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let now = Instant::now();
        fanout.publish(now, seq_header());
        for i in 0..300 {
            fanout.publish(now, video(i * 33, i == 0));
            fanout.publish(now, audio(i * 33));
        }
        let (tx, rx) = mpsc::channel(CONSUMER_BUFFER);
        fanout.add("player".into(), tx);
        // The last audio frame waits for the next picture.
        assert_eq!(rx.len(), 1 + 599, "headers and the whole GOP");
    }

    #[test]
    fn lagging_consumer_of_an_audio_only_program_resumes_at_an_audio_frame() {
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let now = Instant::now();
        let (tx, mut rx) = mpsc::channel(2);
        fanout.add("slow".into(), tx);
        for i in 0..5 {
            fanout.publish(now, audio(i * 23));
        }
        std::iter::from_fn(|| rx.try_recv().ok()).for_each(drop);
        fanout.publish(now, audio(200));
        assert_eq!(rx.try_recv().unwrap().timestamp, 200, "back on the next audio frame");
    }

    #[test]
    fn audio_travels_with_the_next_picture_in_order() {
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let now = Instant::now();
        let (tx, mut rx) = mpsc::channel(64);
        fanout.add("player".into(), tx);
        fanout.publish(now, seq_header());
        fanout.publish(now, video(0, true));
        while rx.try_recv().is_ok() {}
        fanout.publish(now, audio(10));
        fanout.publish(now, audio(31));
        assert!(rx.try_recv().is_err(), "audio waits for the next picture");
        fanout.publish(now, video(33, false));
        let got: Vec<(TagKind, u32)> =
            std::iter::from_fn(|| rx.try_recv().ok()).map(|t| (t.kind, t.timestamp)).collect();
        assert_eq!(got, [(TagKind::Audio, 10), (TagKind::Audio, 31), (TagKind::Video, 33)]);
        // A late joiner meanwhile neither misses nor repeats the held audio.
        fanout.publish(now, audio(52));
        let (tx2, mut rx2) = mpsc::channel(64);
        fanout.add("late".into(), tx2);
        fanout.publish(now, video(66, false));
        let late: Vec<u32> = std::iter::from_fn(|| rx2.try_recv().ok()).map(|t| t.timestamp).collect();
        assert_eq!(late, [0, 0, 10, 31, 33, 52, 66], "headers, GOP, then the held audio once");
    }

    #[test]
    fn audio_goes_alone_when_pictures_stop() {
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let now = Instant::now();
        let (tx, mut rx) = mpsc::channel(64);
        fanout.add("player".into(), tx);
        fanout.publish(now, video(0, true));
        while rx.try_recv().is_ok() {}
        for i in 0..=MAX_HELD_AUDIO as u32 {
            fanout.publish(now, audio(10 + 21 * i));
        }
        assert_eq!(rx.len(), MAX_HELD_AUDIO + 1, "held audio leaves once the picture is overdue");
    }

    #[test]
    fn payloads_are_shared_not_copied() {
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let (tx1, mut rx1) = mpsc::channel(16);
        let (tx2, mut rx2) = mpsc::channel(16);
        fanout.add("a".into(), tx1);
        fanout.add("b".into(), tx2);
        let tag = video(0, true);
        fanout.publish(Instant::now(), tag.clone());
        assert_eq!(rx1.try_recv().unwrap().payload.as_ptr(), tag.payload.as_ptr());
        assert_eq!(rx2.try_recv().unwrap().payload.as_ptr(), tag.payload.as_ptr());
    }

    #[test]
    fn slow_consumer_skips_to_the_next_keyframe_and_never_slows_others() {
        let mut fanout = Fanout::new(Duration::from_secs(10));
        let now = Instant::now();
        fanout.publish(now, seq_header());
        let (slow_tx, mut slow) = mpsc::channel(4);
        let (fast_tx, mut fast) = mpsc::channel(1024);
        fanout.add("slow".into(), slow_tx);
        fanout.add("fast".into(), fast_tx);
        let _ = slow.try_recv(); // the sequence header
        for i in 0..30 {
            fanout.publish(now, video(i * 33, i % 10 == 0));
        }
        // The fast consumer got every frame.
        let mut fast_count = 0;
        while fast.try_recv().is_ok() {
            fast_count += 1;
        }
        assert_eq!(fast_count, 1 + 30);
        // The slow one got what fitted, then resumed at a keyframe with headers first.
        let got: Vec<ProgramTag> = std::iter::from_fn(|| slow.try_recv().ok()).collect();
        assert_eq!(got.len(), 4);
        // Draining made room: the next keyframe resumes it with the sequence header first.
        fanout.publish(now, video(990, false));
        assert!(slow.try_recv().is_err(), "no inter frame while lagging");
        fanout.publish(now, video(1023, true));
        let resumed: Vec<ProgramTag> = std::iter::from_fn(|| slow.try_recv().ok()).collect();
        assert_eq!(resumed.len(), 2);
        assert_eq!(resumed[0].payload[1], 0, "sequence header before the keyframe");
        assert_eq!(resumed[0].timestamp, 1023);
        assert!(VideoTagInfo::parse(&resumed[1].payload).unwrap().is_keyframe());
    }

    #[test]
    fn consumer_lagging_too_long_is_dropped() {
        let mut fanout = Fanout::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let (tx, _rx) = mpsc::channel(1);
        fanout.add("stuck".into(), tx);
        fanout.publish(t0, video(0, true));
        fanout.publish(t0, video(33, false)); // full: lagging from t0
        assert_eq!(fanout.consumer_count(), 1);
        fanout.publish(t0 + Duration::from_secs(3), video(66, true));
        assert_eq!(fanout.consumer_count(), 0);
    }
}
