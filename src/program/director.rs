//! The program's decisions as a pure state machine: which source is on air, when the slate
//! fills in, when a DJ is replayed from their cached keyframe, how a feed that lost tags
//! gets back in step. No I/O and no clock: every call takes `now`, and what the task must
//! do (subscribe to a publisher, emit a program tag…) comes back as [`Action`]s. The task in
//! `mod.rs` is the only caller in production; the tests below drive it with a virtual clock.
//! (A director is who chooses, in a broadcast gallery, which camera is on air.)
//!
//! # Rules
//!
//! - **Wanted source.** The queue names who should be on air ([`Director::want`]); with
//!   nobody named, the slate (or, with `idle = "disconnect"`, nothing: the program ends).
//! - **Feeds.** At most two publishers are read at once: the one on air and the one about to
//!   be. Each feed keeps the publisher's headers and its GOP since the latest keyframe,
//!   updated from every tag, so it can be replayed from its keyframe at any moment without
//!   asking the publisher again.
//! - **Splice.** A wanted DJ becomes the switcher's pending source and goes on air at their
//!   next keyframe. When nothing is on air (the DJ before left), they go on air at once,
//!   replayed from their cached keyframe at real-time pace, then a little faster until the
//!   replay has caught up with live.
//! - **Decision wait.** When the on-air DJ leaves and the queue still names them, it
//!   waits up to `decision_wait` for the queue's next choice before filling in with the slate.
//! - **Stall cover.** When the on-air DJ makes no progress (no video frame; no audio for an
//!   audio-only DJ) for `fill_after`, the slate covers; the DJ stays pending and returns at
//!   their next live keyframe (their cached GOP has already been aired).
//! - **Lag resync.** A feed that missed tags (the program fell behind its broadcast) drops
//!   video until the next keyframe, since frames coded against lost references would decode
//!   as garbage; audio frames are independent and go on. Its cached GOP is dropped too. A
//!   hole longer than `fill_after` is covered by the slate like a stall.
//! - **Audio-only DJs** get the slate's picture under their sound: its video, stamped on the
//!   DJ's clock so the switcher treats it as theirs, first shown one frame after the
//!   program's last picture. It stops when they send video of their own or leave.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::IdleMode;
use super::slate::SlatePlayer;
use crate::ids::ConnId;
use crate::media::codec::{is_stream_header, is_video_keyframe};
use crate::media::flv::{FlvTag, TagKind};
use crate::media::gop::GopCache;
use crate::media::parameter_sets::with_parameter_sets;
use crate::media::switcher::{Source, Switcher, SwitcherConfig};

/// A replay plays this much faster than real time until it has caught up with the live
/// stream: a one-second head start is gone after twenty seconds, at a pace no viewer notices
/// and no platform minds.
const CATCH_UP_SPEED: f64 = 1.05;

/// Tags a replay may hold back. A GOP cache holds at most this many, so only a publisher
/// sending faster than real time could exceed it; the backlog is then released at once.
const MAX_BACKLOG: usize = 4096;

/// Timing of the program's rules.
#[derive(Clone)]
pub struct DirectorConfig {
    pub idle: IdleMode,
    /// The slate covers an on-air DJ who made no progress for this long.
    pub fill_after: Duration,
    /// How long to wait for the queue's next choice after the on-air DJ left.
    pub decision_wait: Duration,
    pub switcher: SwitcherConfig,
}

/// What the task must do for the director.
#[derive(Debug)]
pub enum Action {
    /// Start reading this publisher; answer with [`Director::opened`] (its headers and
    /// cached GOP) or [`Director::unavailable`], before anything else.
    Subscribe(ConnId),
    /// Stop reading this publisher.
    Unsubscribe(ConnId),
    /// A program tag, for every consumer.
    Emit(FlvTag),
    /// The program ends (`idle = "disconnect"` and nobody on air): consumers are closed.
    EndProgram,
}

/// The program's state; see the module docs for its rules.
pub struct Director {
    config: DirectorConfig,
    switcher: Switcher,
    wanted: Option<Source>,
    feeds: Vec<Feed>,
    slate: Option<SlatePlayer>,
    /// The slate's picture under an audio-only DJ on air.
    underlay: Option<Underlay>,
    /// Set while the director waits for the queue's next choice after the on-air DJ left.
    decision_due: Option<Instant>,
    switches: u64,
    actions: Vec<Action>,
}

/// One publisher being read.
struct Feed {
    conn: ConnId,
    /// Headers and the GOP since the latest keyframe, for a replay or a splice.
    cache: GopCache,
    /// When the feed last handed the switcher a frame that moves the picture on (a video
    /// frame; for an audio-only publisher, audio). The stall rule reads it.
    last_progress: Instant,
    has_video: bool,
    replay: Option<Replay>,
    /// Tags were lost: drop video until the next keyframe.
    resyncing: bool,
    /// The publisher is gone; a replay still plays out what it had sent.
    closed: bool,
}

/// The slate's pictures, stamped on an audio-only DJ's clock and aired as their video, so
/// the channel never goes without a picture.
struct Underlay {
    conn: ConnId,
    player: SlatePlayer,
    /// The DJ's timestamp for the slate's time 0.
    base: u32,
    keyframe_sent: bool,
}

/// A feed replayed from its cached keyframe, paced by its own timestamps.
struct Replay {
    /// The keyframe is released at `anchor_wall`; a tag `d` ms later at `+ d / speed`.
    anchor_wall: Instant,
    anchor_ts: u32,
    backlog: VecDeque<FlvTag>,
}

impl Director {
    pub fn new(config: DirectorConfig) -> Self {
        let switcher = Switcher::new(config.switcher);
        Self {
            config,
            switcher,
            wanted: None,
            feeds: Vec::new(),
            slate: None,
            underlay: None,
            decision_due: None,
            switches: 0,
            actions: Vec::new(),
        }
    }

    /// The actions produced since the last call, in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// The source on air.
    pub fn current(&self) -> Option<Source> {
        self.switcher.current()
    }

    /// Completed splices since start.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// The program timestamp a keyframe spliced in now would get.
    pub fn next_timestamp(&self) -> u32 {
        self.switcher.next_timestamp()
    }

    /// The next moment [`Director::tick`] has work to do: a slate frame, a replayed tag,
    /// the end of the decision wait, or the on-air DJ's stall deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let slate = match (&self.config.idle, &self.slate) {
            (IdleMode::Slate(slate), Some(player)) => player.next_at(slate),
            _ => None,
        };
        let underlay = match (&self.config.idle, &self.underlay) {
            (IdleMode::Slate(slate), Some(underlay)) => underlay.player.next_at(slate),
            _ => None,
        };
        let replays = self.feeds.iter().filter_map(|f| f.replay.as_ref()).filter_map(Replay::next_at);
        [slate, underlay, self.decision_due, self.stall_deadline()].into_iter().flatten().chain(replays).min()
    }

    /// The queue names who should be on air (`None`: nobody).
    pub fn want(&mut self, conn: Option<ConnId>, now: Instant) {
        self.decision_due = None;
        let was = self.wanted;
        self.wanted = match (conn, &self.config.idle) {
            (Some(conn), _) => Some(Source::Publisher(conn)),
            (None, IdleMode::Slate(_)) => Some(Source::Slate),
            (None, IdleMode::Disconnect) => None,
        };
        if self.wanted.is_none() && was.is_some() {
            self.actions.push(Action::EndProgram);
        }
        if let Some(conn) = conn
            && self.feed(conn).is_none()
        {
            self.drop_unneeded_feeds();
            // The answer (`opened`/`unavailable`) reconciles.
            self.actions.push(Action::Subscribe(conn));
            return;
        }
        self.reconcile(now);
    }

    /// The answer to [`Action::Subscribe`]: the publisher's start-up tags (headers and
    /// cached GOP) as its cache had them; its live tags follow through [`Director::tag`].
    pub fn opened(&mut self, conn: ConnId, startup: Vec<FlvTag>, now: Instant) {
        if self.feed(conn).is_some() {
            return;
        }
        let mut cache = GopCache::default();
        let mut has_video = false;
        for tag in startup {
            has_video |= tag.kind == TagKind::Video;
            cache.push(tag);
        }
        self.feeds.push(Feed {
            conn,
            cache,
            last_progress: now,
            has_video,
            replay: None,
            resyncing: false,
            closed: false,
        });
        self.reconcile(now);
    }

    /// The answer to [`Action::Subscribe`] when the publisher is already gone.
    pub fn unavailable(&mut self, conn: ConnId, now: Instant) {
        tracing::warn!("program: publisher {conn} is already gone");
        self.reconcile(now);
    }

    /// A live tag from a publisher being read.
    pub fn tag(&mut self, conn: ConnId, tag: FlvTag, now: Instant) {
        let Some(feed) = self.feeds.iter_mut().find(|f| f.conn == conn) else { return };
        feed.has_video |= tag.kind == TagKind::Video;
        if feed.resyncing {
            if tag.kind == TagKind::Video && !is_video_keyframe(&tag) && !is_stream_header(&tag) {
                return;
            }
            if is_video_keyframe(&tag) {
                tracing::info!("program: publisher {conn} back in step at a keyframe");
                feed.resyncing = false;
            }
        }
        feed.cache.push(tag.clone());
        match &mut feed.replay {
            None => {}
            // Caught up: the backlog has drained and this tag is already due.
            Some(replay) if replay.backlog.is_empty() && replay.release_at(&tag) <= now => {
                tracing::debug!("program: publisher {conn} caught up with live");
                feed.replay = None;
            }
            Some(replay) => return replay.hold(tag, now),
        }
        self.pass(conn, &tag, now);
    }

    /// A publisher's tags were lost between it and the program.
    pub fn lagged(&mut self, conn: ConnId, missed: u64) {
        let Some(feed) = self.feeds.iter_mut().find(|f| f.conn == conn) else { return };
        tracing::warn!("program fell {missed} tags behind publisher {conn}; resuming at its next keyframe");
        feed.resyncing = feed.has_video;
        feed.cache.drop_gop();
    }

    /// A publisher being read is gone (and everything it sent has been delivered).
    pub fn ended(&mut self, conn: ConnId, now: Instant) {
        // A replay still holding tags plays them out at its pace first: they were sent
        // before the end.
        if let Some(feed) = self.feeds.iter_mut().find(|f| f.conn == conn)
            && feed.replay.as_ref().is_some_and(|r| !r.backlog.is_empty())
        {
            feed.closed = true;
            return;
        }
        self.feeds.retain(|f| f.conn != conn);
        let source = Source::Publisher(conn);
        if self.switcher.current() == Some(source) || self.switcher.pending() == Some(source) {
            self.end_source(source, now);
        }
        self.reconcile(now);
    }

    /// Time has come for whatever [`Director::next_deadline`] announced.
    pub fn tick(&mut self, now: Instant) {
        self.release_replays(now);
        self.play_slate(now);
        self.play_underlay(now);
        if self.decision_due.is_some_and(|due| due <= now) {
            self.reconcile(now);
            self.decision_due = None;
        }
        if self.stall_deadline().is_some_and(|due| due <= now) {
            self.cover_stall(now);
        }
    }

    fn feed(&self, conn: ConnId) -> Option<&Feed> {
        self.feeds.iter().find(|f| f.conn == conn)
    }

    /// Points the switcher at what should be on air, with the slate covering any hole.
    fn reconcile(&mut self, now: Instant) {
        let Some(wanted) = self.wanted else {
            if let Some(current) = self.switcher.current() {
                self.end_source(current, now);
                tracing::info!("program: nobody on air, ending the program (idle = disconnect)");
                self.actions.push(Action::EndProgram);
            }
            self.drop_unneeded_feeds();
            self.sync_slate(now);
            return;
        };
        let current = self.switcher.current();
        let slate_available = matches!(self.config.idle, IdleMode::Slate(_));
        let next = match (current, wanted) {
            // Nothing on air (the DJ before left): the wanted DJ goes on at once, replayed
            // from their cached keyframe; without one, the slate fills in and they follow at
            // their next keyframe.
            (None, Source::Publisher(conn)) => {
                if self.start_replay(conn, now) {
                    wanted
                } else if self.feed(conn).is_none()
                    && now < *self.decision_due.get_or_insert(now + self.config.decision_wait)
                {
                    // The DJ on air just left and the queue has not yet said who is next: wait
                    // a moment for that rather than flash the slate.
                    return;
                } else if slate_available {
                    Source::Slate
                } else {
                    wanted
                }
            }
            _ => wanted,
        };
        if current == Some(next) {
            if self.switcher.pending().is_some() {
                self.switcher.select(next); // cancels the pending switch
            }
        } else if self.switcher.pending() != Some(next) {
            self.select(next);
        }
        self.drop_unneeded_feeds();
        self.sync_slate(now);
    }

    /// Makes `source` the pending source and hands the switcher its stream headers, which
    /// it re-sends at the splice. (The slate player starts with its headers by itself.)
    fn select(&mut self, source: Source) {
        self.switcher.select(source);
        let Source::Publisher(conn) = source else { return };
        let Some(feed) = self.feeds.iter().find(|f| f.conn == conn) else { return };
        let cache = &feed.cache;
        let headers: Vec<FlvTag> = [cache.metadata(), cache.video_sequence_header(), cache.audio_sequence_header()]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        for header in headers {
            for out in self.switcher.push(source, &header) {
                self.actions.push(Action::Emit(out));
            }
        }
    }

    /// Replays `conn` from its cached keyframe. False if it has none.
    fn start_replay(&mut self, conn: ConnId, now: Instant) -> bool {
        let Some(feed) = self.feeds.iter_mut().find(|f| f.conn == conn) else { return false };
        let startup = feed.cache.startup_tags();
        let Some(start) = startup.iter().position(is_video_keyframe) else { return false };
        let anchor_ts = startup[start].timestamp;
        // Headers travel separately (`select`); only media from the keyframe on is replayed.
        let backlog = startup.into_iter().skip(start).filter(|t| !is_stream_header(t)).collect();
        feed.replay = Some(Replay { anchor_wall: now, anchor_ts, backlog });
        feed.last_progress = now;
        tracing::info!("program: putting publisher {conn} on air from its cached keyframe");
        true
    }

    fn release_replays(&mut self, now: Instant) {
        let conns: Vec<ConnId> = self.feeds.iter().filter(|f| f.replay.is_some()).map(|f| f.conn).collect();
        for conn in conns {
            while let Some(tag) =
                self.feeds.iter_mut().find(|f| f.conn == conn).and_then(|f| f.replay.as_mut()?.pop_due(now))
            {
                self.pass(conn, &tag, now);
            }
            let drained_after_end =
                self.feed(conn).is_some_and(|f| f.closed && f.replay.as_ref().is_none_or(|r| r.backlog.is_empty()));
            if drained_after_end {
                self.feeds.retain(|f| f.conn != conn);
                self.ended(conn, now);
            }
        }
    }

    /// Runs one tag of a feed through the switcher and emits the result.
    fn pass(&mut self, conn: ConnId, tag: &FlvTag, now: Instant) {
        if let Some(feed) = self.feeds.iter_mut().find(|f| f.conn == conn) {
            let moves_picture = if feed.has_video {
                tag.kind == TagKind::Video && !is_stream_header(tag)
            } else {
                tag.kind == TagKind::Audio
            };
            if moves_picture {
                feed.last_progress = now;
            }
        }
        self.push(Source::Publisher(conn), tag, now);
        self.sync_underlay(now);
    }

    /// The slate's picture plays under the on-air DJ while they send no video (and stops
    /// when they do, or leave).
    fn sync_underlay(&mut self, now: Instant) {
        let IdleMode::Slate(slate) = &self.config.idle else { return };
        let audio_only_on_air = match self.switcher.current() {
            Some(Source::Publisher(conn)) => self.feed(conn).filter(|f| !f.has_video).map(|_| conn),
            _ => None,
        };
        match (audio_only_on_air, &self.underlay) {
            (Some(conn), Some(underlay)) if underlay.conn == conn => {}
            (Some(conn), _) => {
                // The slate's first picture is shown one frame after the program's last.
                let Some(base) = self.switcher.next_picture_at(slate.reorder_delay_ms()) else { return };
                tracing::info!("program: publisher {conn} sends no video; the slate's picture plays under their audio");
                self.underlay = Some(Underlay { conn, player: SlatePlayer::start(now), base, keyframe_sent: false });
                self.play_underlay(now);
            }
            (None, Some(_)) => self.underlay = None,
            (None, None) => {}
        }
    }

    fn play_underlay(&mut self, now: Instant) {
        let IdleMode::Slate(slate) = &self.config.idle else { return };
        let slate = slate.clone();
        let Some(underlay) = &mut self.underlay else { return };
        let (conn, base) = (underlay.conn, underlay.base);
        let mut pictures: Vec<FlvTag> = underlay
            .player
            .due(&slate, now)
            .into_iter()
            .filter(|t| t.kind == TagKind::Video)
            .map(|t| FlvTag { timestamp: base.wrapping_add(t.timestamp), ..t })
            .collect();
        if !underlay.keyframe_sent
            && let Some(key) = pictures.iter_mut().find(|t| is_video_keyframe(t))
        {
            // Its parameter sets in band, as at a splice (see `media::parameter_sets`):
            // consumers that parse slices with the first ones they saw would misread them.
            if let Some(with_sets) = slate.video_header().and_then(|h| with_parameter_sets(key, h)) {
                *key = with_sets;
            }
            underlay.keyframe_sent = true;
        }
        for picture in pictures {
            self.push(Source::Publisher(conn), &picture, now);
        }
    }

    fn push(&mut self, source: Source, tag: &FlvTag, now: Instant) {
        let before = self.switcher.current();
        for out in self.switcher.push(source, tag) {
            self.actions.push(Action::Emit(out));
        }
        let after = self.switcher.current();
        if after != before && after.is_some() {
            self.on_switched(after, now);
        }
    }

    fn on_switched(&mut self, now_on_air: Option<Source>, now: Instant) {
        self.switches += 1;
        self.sync_underlay(now);
        match now_on_air {
            Some(Source::Publisher(conn)) => tracing::info!("program: spliced in publisher {conn}"),
            Some(Source::Slate) => tracing::info!("program: spliced in the slate"),
            None => {}
        }
        // With a filler slate on, the wanted DJ now waits behind it; the outgoing
        // publisher is let go.
        self.reconcile(now);
    }

    /// Lets go of publishers that are neither on air nor wanted.
    fn drop_unneeded_feeds(&mut self) {
        let (wanted, current) = (self.wanted, self.switcher.current());
        let actions = &mut self.actions;
        self.feeds.retain(|f| {
            let source = Some(Source::Publisher(f.conn));
            let keep = source == wanted || source == current;
            if !keep {
                actions.push(Action::Unsubscribe(f.conn));
            }
            keep
        });
    }

    fn play_slate(&mut self, now: Instant) {
        let IdleMode::Slate(slate) = &self.config.idle else { return };
        let slate = slate.clone();
        let Some(player) = &mut self.slate else { return };
        for tag in player.due(&slate, now) {
            self.push(Source::Slate, &tag, now);
        }
    }

    /// The slate plays while it is on air or about to be.
    fn sync_slate(&mut self, now: Instant) {
        let needed = self.switcher.current() == Some(Source::Slate) || self.switcher.pending() == Some(Source::Slate);
        match (needed, self.slate.is_some()) {
            (true, false) => self.slate = Some(SlatePlayer::start(now)),
            (false, true) => self.slate = None,
            _ => {}
        }
    }

    /// When the on-air DJ counts as stalled, if the slate can cover.
    fn stall_deadline(&self) -> Option<Instant> {
        if !matches!(self.config.idle, IdleMode::Slate(_)) {
            return None;
        }
        let Some(Source::Publisher(conn)) = self.switcher.current() else { return None };
        self.feed(conn).map(|f| f.last_progress + self.config.fill_after)
    }

    /// The on-air DJ made no progress for `fill_after`: the slate covers until they resume
    /// at a live keyframe (the queue's own stall rule decides whether they keep the slot).
    fn cover_stall(&mut self, now: Instant) {
        let Some(Source::Publisher(conn)) = self.switcher.current() else { return };
        tracing::info!(
            "program: publisher {conn} sent no picture for {:?}; covering with the slate",
            self.config.fill_after
        );
        // The slate directly, not a replay of the DJ's cached GOP (aired already); once the
        // slate is on, the DJ is selected again and returns at their next live keyframe.
        if let Some(feed) = self.feeds.iter_mut().find(|f| f.conn == conn) {
            feed.replay = None;
        }
        self.end_source(Source::Publisher(conn), now);
        self.select(Source::Slate);
        self.sync_slate(now);
    }

    /// `source` is gone from the switcher. A splice it held back (waiting for a clean cut)
    /// happens now, so its tags are emitted at once.
    fn end_source(&mut self, source: Source, now: Instant) {
        let before = self.switcher.current();
        self.switcher.source_ended(source);
        for out in self.switcher.take_output() {
            self.actions.push(Action::Emit(out));
        }
        let after = self.switcher.current();
        if after != before && after.is_some() {
            self.on_switched(after, now);
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

    fn next_at(&self) -> Option<Instant> {
        self.backlog.front().map(|t| self.release_at(t))
    }

    fn pop_due(&mut self, now: Instant) -> Option<FlvTag> {
        if self.next_at()? <= now { self.backlog.pop_front() } else { None }
    }

    fn hold(&mut self, tag: FlvTag, now: Instant) {
        self.backlog.push_back(tag);
        if self.backlog.len() > MAX_BACKLOG {
            // The publisher runs faster than real time: stop pacing rather than grow.
            tracing::warn!("program replay backlog over {MAX_BACKLOG} tags; releasing it at once");
            let last = self.backlog.back().map_or(self.anchor_ts, |t| t.timestamp);
            self.anchor_ts = last;
            self.anchor_wall = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::program::slate::tests::ffmpeg_slate;

    const A: ConnId = ConnId(1);
    const B: ConnId = ConnId(2);
    const FRAME_MS: u32 = 33;
    const FILL_AFTER: Duration = Duration::from_secs(2);
    const DECISION_WAIT: Duration = Duration::from_millis(500);

    /// Every DJ payload ends with this trailer, so a program tag tells whose it is even when
    /// the switcher rewrote the bytes in front of it.
    fn trailer(conn: ConnId) -> [u8; 4] {
        [b'D', b'J', conn.0 as u8, 0x55]
    }

    fn payload(head: &[u8], conn: ConnId) -> Vec<u8> {
        let mut p = head.to_vec();
        p.extend_from_slice(&trailer(conn));
        p
    }

    /// A DJ at 30 fps with audio, a keyframe every `gop` frames, their frame `i` at
    /// `base + i × 33 ms` of their own clock.
    struct Dj {
        conn: ConnId,
        gop: u32,
        base: u32,
        next: u32,
        /// What the publisher's own cache holds, for `Subscribe`.
        cache: GopCache,
        connected: bool,
        audio_only: bool,
    }

    impl Dj {
        fn new(conn: ConnId, gop: u32, base: u32) -> Self {
            let mut cache = GopCache::default();
            cache.push(FlvTag::new(TagKind::Video, base, payload(&[0x17, 0, 0, 0, 0, 1, 0x64], conn)));
            cache.push(FlvTag::new(TagKind::Audio, base, payload(&[0xaf, 0, 0x12, 0x10], conn)));
            Dj { conn, gop, base, next: 0, cache, connected: true, audio_only: false }
        }

        /// The next frame's tags: video (unless audio-only) then audio.
        fn frame(&mut self) -> Vec<FlvTag> {
            let i = self.next;
            self.next += 1;
            let ts = self.base + i * FRAME_MS;
            let video = if i.is_multiple_of(self.gop) { [0x17, 1, 0, 0, 0] } else { [0x27, 1, 0, 0, 0] };
            let audio = FlvTag::new(TagKind::Audio, ts, payload(&[0xaf, 1, 0x21], self.conn));
            if self.audio_only {
                return vec![audio];
            }
            vec![FlvTag::new(TagKind::Video, ts, payload(&video, self.conn)), audio]
        }
    }

    /// Who a program tag came from.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum From {
        Slate,
        Dj(ConnId),
    }

    struct Emitted {
        at: Instant,
        from: From,
        tag: FlvTag,
    }

    /// The director with fake publishers, a virtual clock and a record of the program.
    struct Rig {
        director: Director,
        now: Instant,
        t0: Instant,
        djs: HashMap<ConnId, Dj>,
        reading: Vec<ConnId>,
        program: Vec<Emitted>,
        ended: usize,
    }

    impl Rig {
        fn new(idle_slate: bool) -> Self {
            let idle = if idle_slate { IdleMode::Slate(Arc::new(ffmpeg_slate())) } else { IdleMode::Disconnect };
            let director = Director::new(DirectorConfig {
                idle,
                fill_after: FILL_AFTER,
                decision_wait: DECISION_WAIT,
                switcher: SwitcherConfig::default(),
            });
            let t0 = Instant::now();
            Rig { director, now: t0, t0, djs: HashMap::new(), reading: Vec::new(), program: Vec::new(), ended: 0 }
        }

        fn ms(&self) -> u128 {
            (self.now - self.t0).as_millis()
        }

        /// Carries out the director's actions, as the task does.
        fn carry_out(&mut self) {
            loop {
                let actions = self.director.take_actions();
                if actions.is_empty() {
                    return;
                }
                for action in actions {
                    match action {
                        Action::Emit(tag) => {
                            let from = (1..=9)
                                .map(ConnId)
                                .find(|conn| tag.payload.ends_with(&trailer(*conn)))
                                .map_or(From::Slate, From::Dj);
                            self.program.push(Emitted { at: self.now, from, tag });
                        }
                        Action::EndProgram => self.ended += 1,
                        Action::Unsubscribe(conn) => self.reading.retain(|c| *c != conn),
                        Action::Subscribe(conn) => match self.djs.get(&conn).filter(|dj| dj.connected) {
                            Some(dj) => {
                                assert!(self.reading.len() < 2, "at most two publishers are read at once");
                                self.reading.push(conn);
                                let startup = dj.cache.startup_tags();
                                self.director.opened(conn, startup, self.now);
                            }
                            None => self.director.unavailable(conn, self.now),
                        },
                    }
                }
            }
        }

        fn want(&mut self, conn: Option<ConnId>) {
            self.director.want(conn, self.now);
            self.carry_out();
        }

        /// Moves the clock to `ms` after the start, running every deadline on the way.
        fn advance_to(&mut self, ms: u64) {
            let target = self.t0 + Duration::from_millis(ms);
            while let Some(due) = self.director.next_deadline().filter(|due| *due <= target) {
                self.now = self.now.max(due);
                self.director.tick(self.now);
                self.carry_out();
            }
            self.now = self.now.max(target);
        }

        /// Runs for `ms`, every connected DJ in `live` sending a frame every 33 ms.
        fn play(&mut self, live: &[ConnId], ms: u64) {
            let end = (self.now - self.t0).as_millis() as u64 + ms;
            let mut at = (self.now - self.t0).as_millis() as u64;
            while at < end {
                at += u64::from(FRAME_MS);
                self.advance_to(at);
                for conn in live {
                    self.send_frame(*conn);
                }
            }
        }

        fn send_frame(&mut self, conn: ConnId) {
            let Some(dj) = self.djs.get_mut(&conn) else { return };
            for tag in dj.frame() {
                dj.cache.push(tag.clone());
                if self.reading.contains(&conn) {
                    self.director.tag(conn, tag, self.now);
                }
            }
            self.carry_out();
        }

        fn connect(&mut self, conn: ConnId, gop: u32, base: u32) {
            self.djs.insert(conn, Dj::new(conn, gop, base));
        }

        /// The queue puts `conn` on air once their encoder has sent its first keyframe.
        fn go_on_air(&mut self, conn: ConnId) {
            self.play(&[conn], 100);
            self.want(Some(conn));
        }

        /// The publisher goes away; the director hears of it if it was reading it.
        fn disconnect(&mut self, conn: ConnId) {
            if let Some(dj) = self.djs.get_mut(&conn) {
                dj.connected = false;
            }
            if self.reading.contains(&conn) {
                self.reading.retain(|c| *c != conn);
                self.director.ended(conn, self.now);
                self.carry_out();
            }
        }

        /// Sources of the program's video frames in order, runs collapsed.
        fn video_runs(&self) -> Vec<From> {
            let mut runs: Vec<From> = Vec::new();
            for e in self.program.iter().filter(|e| is_frame(&e.tag) && e.tag.kind == TagKind::Video) {
                if runs.last() != Some(&e.from) {
                    runs.push(e.from);
                }
            }
            runs
        }

        fn first_video_of(&self, from: From) -> Option<&Emitted> {
            self.program.iter().find(|e| e.from == from && is_frame(&e.tag) && e.tag.kind == TagKind::Video)
        }
    }

    fn is_frame(tag: &FlvTag) -> bool {
        !is_stream_header(tag)
    }

    fn is_key(tag: &FlvTag) -> bool {
        is_video_keyframe(tag)
    }

    #[test]
    fn starts_on_the_slate_and_a_dj_splices_in_at_their_keyframe() {
        let mut rig = Rig::new(true);
        rig.want(None);
        rig.advance_to(1000);
        assert_eq!(rig.director.current(), Some(Source::Slate));
        rig.connect(A, 30, 5000);
        rig.want(Some(A));
        rig.play(&[A], 1000);
        assert_eq!(rig.video_runs(), [From::Slate, From::Dj(A)]);
        assert!(is_key(&rig.first_video_of(From::Dj(A)).unwrap().tag));
        assert_eq!(rig.director.current(), Some(Source::Publisher(A)));
    }

    /// Rule: stall cover. The on-air DJ's media stops without a disconnect: after
    /// `fill_after` the slate covers; when they send again, they return at their next live
    /// keyframe — never a replay of the GOP that was aired already.
    #[test]
    fn stall_is_covered_by_the_slate_and_the_dj_returns_at_a_live_keyframe() {
        let mut rig = Rig::new(true);
        rig.connect(A, 30, 0);
        rig.go_on_air(A);
        rig.play(&[A], 2000);
        assert_eq!(rig.video_runs(), [From::Dj(A)]);
        let stalled_at = rig.ms();
        rig.play(&[], 1900);
        assert_eq!(rig.video_runs(), [From::Dj(A)], "not covered before fill_after");
        rig.play(&[], 200);
        assert_eq!(rig.director.current(), Some(Source::Slate));
        let covered = rig.first_video_of(From::Slate).unwrap().at;
        let waited = (covered - rig.t0).as_millis() - stalled_at;
        assert!((1967..=2033).contains(&waited), "covered {waited} ms after the last frame");

        let last_aired = rig.program.iter().rev().find(|e| e.from == From::Dj(A)).unwrap().tag.timestamp;
        rig.play(&[A], 1500);
        assert_eq!(rig.video_runs(), [From::Dj(A), From::Slate, From::Dj(A)]);
        let back = rig
            .program
            .iter()
            .filter(|e| e.from == From::Dj(A) && is_frame(&e.tag))
            .find(|e| e.tag.timestamp > last_aired && e.tag.kind == TagKind::Video);
        assert!(is_key(&back.unwrap().tag), "back at a keyframe");
        // Program timestamps never go back over the whole story.
        let video: Vec<u32> = rig
            .program
            .iter()
            .filter(|e| e.tag.kind == TagKind::Video && is_frame(&e.tag))
            .map(|e| e.tag.timestamp)
            .collect();
        assert!(video.windows(2).all(|w| w[1] > w[0]), "{video:?}");
    }

    /// Rule: decision wait. The on-air DJ leaves while the queue still names them; the
    /// queue's next choice arrives within the wait: no slate flashes in between, and the next
    /// DJ goes on at once from their cached keyframe.
    #[test]
    fn next_dj_follows_without_a_slate_flash_when_the_queue_answers_within_the_wait() {
        let mut rig = Rig::new(true);
        rig.connect(A, 30, 0);
        rig.connect(B, 30, 70_000);
        rig.go_on_air(A);
        rig.play(&[A, B], 2000);
        rig.disconnect(A);
        rig.play(&[B], 300);
        assert!(rig.first_video_of(From::Slate).is_none(), "waiting for the queue, not flashing the slate");
        let answered = rig.now;
        rig.want(Some(B));
        rig.play(&[B], 1000);
        assert_eq!(rig.video_runs(), [From::Dj(A), From::Dj(B)]);
        let first = rig.first_video_of(From::Dj(B)).unwrap();
        assert!(is_key(&first.tag));
        assert_eq!(first.at, answered, "on air at once, from the cached keyframe");
    }

    #[test]
    fn slate_fills_in_when_the_queue_does_not_answer_within_the_wait() {
        let mut rig = Rig::new(true);
        rig.connect(A, 30, 0);
        rig.go_on_air(A);
        rig.play(&[A], 1000);
        rig.disconnect(A);
        rig.play(&[], 1000);
        // A was still replaying a few of their cached frames; those play out first.
        let left = rig.program.iter().rev().find(|e| e.from == From::Dj(A)).unwrap().at;
        let slate = rig.first_video_of(From::Slate).expect("the slate fills in");
        assert_eq!(slate.at - left, DECISION_WAIT);
    }

    /// Rule: replay start and catch-up. The next DJ's cached GOP starts 900 ms back: it is
    /// released at its own pace from the keyframe, then 5 % faster until it has caught up
    /// with live, after which live tags pass straight through.
    #[test]
    fn replay_starts_at_the_cached_keyframe_keeps_its_pace_and_catches_up() {
        let mut rig = Rig::new(true);
        rig.connect(A, 30, 0);
        rig.connect(B, 30, 50_000);
        rig.go_on_air(A);
        rig.play(&[A, B], 2900); // A has caught up; B's latest keyframe is 900 ms old
        assert!(rig.director.feed(A).unwrap().replay.is_none());
        rig.disconnect(A);
        rig.want(Some(B));
        let start = rig.now;
        rig.play(&[B], 30_000);
        let b: Vec<&Emitted> =
            rig.program.iter().filter(|e| e.from == From::Dj(B) && e.tag.kind == TagKind::Video).collect();
        let key = b.iter().find(|e| is_key(&e.tag)).unwrap();
        assert_eq!(key.at, start, "the cached keyframe goes at once");
        // Each replayed frame is released when its distance from the keyframe has elapsed
        // (at 1.05×); the program's timestamps advance with it, one frame at a time.
        let source_ts = |e: &Emitted| e.tag.timestamp - key.tag.timestamp;
        for e in b.iter().take(20) {
            let due = f64::from(source_ts(e)) / CATCH_UP_SPEED;
            let at = (e.at - start).as_secs_f64() * 1000.0;
            assert!(
                at >= due - 1.0 && at <= due + f64::from(FRAME_MS),
                "frame {} released at {at} ms, due {due}",
                source_ts(e)
            );
        }
        // After 30 s, 900 ms of head start at 5 % is gone: frames go out as they arrive.
        let last = b.last().unwrap();
        assert_eq!(last.at, rig.now, "caught up: the newest frame went out when it arrived");
        assert!(rig.director.feed(B).unwrap().replay.is_none());
    }

    /// Rule: lag resync. The program missed tags of the on-air DJ: inter frames whose
    /// references were lost are not aired; audio goes on; the picture resumes at the next
    /// keyframe. (Issue 16, finding 2.)
    #[test]
    fn a_lagged_feed_airs_no_inter_frame_until_its_next_keyframe() {
        let mut rig = Rig::new(true);
        rig.connect(A, 30, 0);
        rig.go_on_air(A);
        rig.play(&[A], 2900); // frames 0..93: caught up with live, the keyframe at 90 passed
        assert!(rig.director.feed(A).unwrap().replay.is_none());
        rig.director.lagged(A, 40);
        let lagged_at = rig.program.len();
        rig.play(&[A], 700); // frames 94..114: the next keyframe is frame 120
        let after: Vec<&Emitted> = rig.program[lagged_at..].iter().collect();
        assert!(after.iter().all(|e| e.tag.kind == TagKind::Audio), "only audio while out of step");
        assert!(!after.is_empty(), "audio goes on");
        rig.play(&[A], 300);
        let video: Vec<&Emitted> = rig.program[lagged_at..].iter().filter(|e| e.tag.kind == TagKind::Video).collect();
        assert!(is_key(&video[0].tag), "the picture resumes at a keyframe");
        assert_eq!(rig.video_runs(), [From::Dj(A)], "a short hole needs no slate");
    }

    #[test]
    fn a_lag_hole_longer_than_fill_after_is_covered_like_a_stall() {
        let mut rig = Rig::new(true);
        rig.connect(A, 150, 0); // a keyframe every 5 s
        rig.go_on_air(A);
        rig.play(&[A], 500);
        rig.director.lagged(A, 40);
        rig.play(&[A], 3000);
        assert_eq!(rig.video_runs(), [From::Dj(A), From::Slate]);
        rig.play(&[A], 2000);
        assert_eq!(rig.video_runs(), [From::Dj(A), From::Slate, From::Dj(A)]);
    }

    /// A lag while replaying: the replay's cached GOP had a hole, so the replay drops it and
    /// waits for the next keyframe too.
    #[test]
    fn a_lag_also_drops_the_cached_gop() {
        let mut rig = Rig::new(true);
        rig.connect(A, 30, 0);
        // B: a keyframe every 60 frames; A leaves at B's frame 40, so B is pending behind A
        // from frame 20 with its keyframe 0 cached when the program falls behind it.
        rig.djs.insert(B, Dj::new(B, 60, 9000));
        rig.go_on_air(A);
        rig.play(&[A, B], 560);
        rig.want(Some(B));
        rig.play(&[A, B], 660);
        rig.director.lagged(B, 10);
        rig.disconnect(A);
        rig.play(&[B], 100);
        assert!(rig.first_video_of(From::Dj(B)).is_none(), "no replay of a GOP with a hole");
        rig.play(&[B], 1500);
        let first = &rig.first_video_of(From::Dj(B)).unwrap().tag;
        assert!(is_key(first));
        assert_eq!(
            first.timestamp,
            rig.program.iter().rev().find(|e| e.from == From::Dj(B) && is_key(&e.tag)).unwrap().tag.timestamp
        );
    }

    #[test]
    fn idle_disconnect_ends_the_program_when_nobody_is_on_air() {
        let mut rig = Rig::new(false);
        rig.connect(A, 30, 0);
        rig.go_on_air(A);
        rig.play(&[A], 500);
        rig.disconnect(A);
        rig.want(None);
        rig.play(&[], 1000);
        assert!(rig.ended >= 1);
        assert_eq!(rig.director.current(), None);
        assert!(rig.first_video_of(From::Slate).is_none());
    }

    /// A DJ replaying when their publisher leaves still plays out what they sent, at its
    /// pace, while the queue still names them; the decision wait starts after that.
    #[test]
    fn a_replay_plays_out_after_its_publisher_leaves() {
        let mut rig = Rig::new(true);
        rig.connect(A, 30, 0);
        rig.connect(B, 30, 9000);
        rig.go_on_air(A);
        rig.play(&[A, B], 2900);
        rig.disconnect(A);
        rig.want(Some(B)); // replayed from a keyframe 900 ms old
        rig.play(&[B], 100);
        rig.disconnect(B);
        let cut = rig.now;
        rig.play(&[], 2000);
        let last_b = rig.program.iter().rev().find(|e| e.from == From::Dj(B)).unwrap().at;
        assert!(last_b - cut >= Duration::from_millis(700), "B's cached frames still went out at their pace");
        let slate = rig.first_video_of(From::Slate).unwrap().at;
        assert_eq!(slate - last_b, DECISION_WAIT);
    }

    /// An audio-only DJ on air: the slate's picture plays under their audio, continuing the
    /// program's pictures one frame after the last DJ's, and stops when the next DJ comes.
    #[test]
    fn the_slate_picture_plays_under_an_audio_only_dj() {
        let mut rig = Rig::new(true);
        rig.connect(A, 30, 0);
        let mut radio = Dj::new(B, 30, 40_000);
        radio.audio_only = true;
        radio.cache = GopCache::default();
        radio.cache.push(FlvTag::new(TagKind::Audio, 40_000, payload(&[0xaf, 0, 0x12, 0x10], B)));
        rig.djs.insert(B, radio);
        rig.go_on_air(A);
        rig.play(&[A, B], 2900);
        rig.disconnect(A);
        rig.want(Some(B));
        rig.play(&[B], 3000);
        assert_eq!(rig.director.current(), Some(Source::Publisher(B)));
        let pictures: Vec<&Emitted> =
            rig.program.iter().filter(|e| e.tag.kind == TagKind::Video && is_frame(&e.tag)).collect();
        let last_a = pictures.iter().rposition(|e| e.from == From::Dj(A)).unwrap();
        let under = &pictures[last_a + 1..];
        assert!(under.len() >= 80, "about 30 pictures a second under the audio: {}", under.len());
        assert!(under.iter().all(|e| e.from == From::Slate), "the slate's pictures");
        assert!(is_key(&under[0].tag));
        let step = under[0].tag.timestamp - pictures[last_a].tag.timestamp;
        assert!(step <= 2 * FRAME_MS, "the slate's picture follows at once ({step} ms)");
        let video: Vec<u32> = pictures.iter().map(|e| e.tag.timestamp).collect();
        assert!(video.windows(2).all(|w| w[1] > w[0]), "decode order kept");

        // A DJ with video takes over: the underlay stops.
        rig.connect(ConnId(3), 30, 90_000);
        rig.play(&[B, ConnId(3)], 200);
        rig.disconnect(B);
        rig.want(Some(ConnId(3)));
        rig.play(&[ConnId(3)], 1000);
        assert_eq!(rig.director.current(), Some(Source::Publisher(ConnId(3))));
        assert!(rig.director.underlay.is_none());
        assert_eq!(rig.video_runs().last(), Some(&From::Dj(ConnId(3))));
    }
}
