//! The public live state, built once for every page, overlay and SSE subscriber: who is on
//! air and what they play, the queue, the set's clock, and the publishers' and destinations'
//! rates.
//!
//! One producer task rebuilds it when the queue announces a change, when poked (a DJ posted
//! a track) and every second, and publishes it on `watch` channels. Readers only ever see the
//! latest value, so a slow one never holds the producer or anybody else up. The views are
//! public by construction: they carry names and numbers, never stream keys, emails or
//! destination URLs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Notify, broadcast, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::api::remaining;
use super::pictures;
use super::seed::dj_names;
use crate::channel::health::Advice;
use crate::hub::Publishers;
use crate::ids::UserId;
use crate::integrations::destination::{DestinationStatus, Destinations, State as DestinationState};
use crate::queue::actor::{QueueGone, QueueHandle};
use crate::queue::engine::{Dj, LeadStatus, Notice, Status};
use crate::store::{Store, TrackSource, unix_now};

/// How often the clock and the rates are refreshed.
const TICK: Duration = Duration::from_secs(1);
/// The most the lead's store lookups may hold the state up (the database may be down).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The `queue` event: the channel as the audience sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueView {
    #[serde(flatten)]
    pub lineup: Lineup,
    /// Seconds left in the current set (the full interval when nobody is on air).
    pub remaining_time: u64,
}

/// Everything in a [`QueueView`] but the clock.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Lineup {
    /// The set on air: every DJ's name ("Alice b2b Bob" for a back-to-back set).
    pub on_air: Option<String>,
    /// The DJ of the set whose stream is on air.
    pub on_air_dj: Option<String>,
    /// Every DJ of the set on air, in the order they joined (one name for a solo set).
    pub on_air_set: Vec<String>,
    /// Lead first, as `/queue-json`.
    pub stream_queue: Vec<String>,
    /// The countdown is stopped: paused by an admin, the slot held for a DJ whose connection
    /// dropped, or nobody on air. Clients count down between events only while it is false.
    pub timer_paused: bool,
    pub swap_interval: u64,
    pub block_toggle: bool,
    pub now: Option<NowPlaying>,
    pub up_next: Option<String>,
}

/// The DJ on air, for overlays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NowPlaying {
    pub dj_name: String,
    pub picture_url: Option<String>,
    pub track: Option<TrackView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackView {
    pub artist: String,
    pub title: String,
    /// `dj` or `recognised`.
    pub source: TrackSource,
}

/// The `stats` event.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StatsView {
    /// Every connected publisher, on air first, then in queue order.
    pub publishers: Vec<PublisherRate>,
    pub destinations: Vec<DestinationRate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublisherRate {
    pub dj_name: String,
    pub bitrate_bps: u64,
    pub video_fps: Option<f64>,
    /// What is wrong with the stream and how to fix it in OBS (the dashboard and the admin
    /// console show it live).
    pub advice: Vec<Advice>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationRate {
    pub name: String,
    pub state: DestinationState,
    pub bitrate_bps: u64,
}

/// Readers' handle on the live state; cheap to clone.
#[derive(Clone)]
pub struct LiveState {
    queue: watch::Receiver<Arc<QueueView>>,
    stats: watch::Receiver<Arc<StatsView>>,
    poke: Arc<Notify>,
}

/// Where the producer reads the channel from.
pub struct Sources {
    pub queue: QueueHandle,
    pub store: Store,
    pub publishers: Publishers,
    pub destinations: Destinations,
}

impl LiveState {
    /// Builds the first state, then starts the producer. It stops when `stop` turns true (or
    /// its sender goes), which closes every reader's updates: event streams end with it.
    pub async fn spawn(sources: Sources, stop: watch::Receiver<bool>) -> Self {
        let notices = sources.queue.subscribe();
        let (queue_tx, queue) = watch::channel(Arc::default());
        let (stats_tx, stats) = watch::channel(Arc::default());
        let mut producer = Producer {
            sources,
            queue_tx,
            stats_tx,
            lead: None,
            announced: (Arc::default(), Instant::now()),
            bytes_sent: HashMap::new(),
        };
        if let Err(e) = producer.refresh(Refresh::Tick).await {
            tracing::warn!("live state: {e}");
        }
        let poke = Arc::new(Notify::new());
        tokio::spawn(producer.run(notices, poke.clone(), stop));
        Self { queue, stats, poke }
    }

    /// Asks for the lead's picture and track to be looked up again (after a DJ posted a track
    /// or changed their picture).
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    /// What [`LiveState::poke`] wakes, for tasks outside the web layer.
    pub fn poke_handle(&self) -> Arc<Notify> {
        self.poke.clone()
    }

    /// The latest queue view, clock to the second.
    pub fn queue(&self) -> Arc<QueueView> {
        self.queue.borrow().clone()
    }

    /// Follows the queue view: a change is signalled when clients need to hear of it, not on
    /// every second of the countdown (the value itself is always current).
    pub fn queue_updates(&self) -> watch::Receiver<Arc<QueueView>> {
        self.queue.clone()
    }

    /// Follows the rates, updated every second.
    pub fn stats_updates(&self) -> watch::Receiver<Arc<StatsView>> {
        self.stats.clone()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    /// The queue announced a change.
    Notice,
    /// The lead's details may have changed in the store.
    Poked,
    /// A second passed: the clock moved and the rates are due.
    Tick,
}

struct Producer {
    sources: Sources,
    queue_tx: watch::Sender<Arc<QueueView>>,
    stats_tx: watch::Sender<Arc<StatsView>>,
    /// The lead last looked up in the store, with what was found.
    lead: Option<(UserId, NowPlaying)>,
    /// The last queue view readers were told about, and when.
    announced: (Arc<QueueView>, Instant),
    /// Each destination's byte counter at the previous tick.
    bytes_sent: HashMap<String, (u64, Instant)>,
}

impl Producer {
    async fn run(
        mut self,
        mut notices: broadcast::Receiver<Notice>,
        poke: Arc<Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        // Not at once: the state was just built, and rates need a second between readings.
        let mut tick = tokio::time::interval_at(Instant::now() + TICK, TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let refresh = tokio::select! {
                _ = stop.wait_for(|stopping| *stopping) => return,
                notice = notices.recv() => match notice {
                    // Missed notices only mean the state is rebuilt once for several.
                    Ok(_) | Err(RecvError::Lagged(_)) => Refresh::Notice,
                    Err(RecvError::Closed) => return,
                },
                _ = poke.notified() => Refresh::Poked,
                _ = tick.tick() => Refresh::Tick,
            };
            if let Err(e) = self.refresh(refresh).await {
                tracing::warn!("live state stopped: {e}");
                return;
            }
        }
    }

    async fn refresh(&mut self, refresh: Refresh) -> Result<(), QueueGone> {
        let status = self.sources.queue.status().await?;
        let now = self.now_playing(status.lead.as_ref(), refresh == Refresh::Poked).await;
        let view = Arc::new(queue_view(&status, now));
        let at = Instant::now();
        let news = is_news(&self.announced.0, &view, at.duration_since(self.announced.1));
        if news {
            self.announced = (view.clone(), at);
        }
        // Always stored, so a reader that looks now gets the clock to the second.
        self.queue_tx.send_if_modified(|current| {
            *current = view;
            news
        });
        if refresh == Refresh::Tick {
            let stats =
                StatsView { publishers: self.publisher_rates(&status), destinations: self.destination_rates(at) };
            self.stats_tx.send_replace(Arc::new(stats));
        }
        Ok(())
    }

    /// The lead's public details; looked up in the store only for a new lead or when poked.
    async fn now_playing(&mut self, lead: Option<&LeadStatus>, poked: bool) -> Option<NowPlaying> {
        let Some(lead) = lead else {
            self.lead = None;
            return None;
        };
        if let Some((user_id, now)) = &self.lead
            && *user_id == lead.dj.user_id
            && !poked
        {
            return Some(now.clone());
        }
        let now = self.look_up(&lead.dj, lead.host().user_id).await;
        self.lead = Some((lead.dj.user_id, now.clone()));
        Some(now)
    }

    /// `host`: whose set `dj` plays in, for their track.
    async fn look_up(&self, dj: &Dj, host: UserId) -> NowPlaying {
        let store = &self.sources.store;
        let lookups = async {
            tokio::join!(store.user_by_id(dj.user_id.0), store.current_track_in(dj.user_id.0, host.0, unix_now()))
        };
        let mut now = NowPlaying { dj_name: dj.dj_name.clone(), picture_url: None, track: None };
        // A slow or failed lookup costs the overlays a picture or a title, never the state.
        let Ok((user, track)) = tokio::time::timeout(LOOKUP_TIMEOUT, lookups).await else {
            tracing::warn!("live state: no answer from the store for {} within {LOOKUP_TIMEOUT:?}", dj.dj_name);
            return now;
        };
        match user {
            Ok(user) => now.picture_url = user.and_then(|u| u.profile_picture).as_deref().map(pictures::url),
            Err(e) => tracing::warn!("live state: loading {}'s profile: {e}", dj.dj_name),
        }
        match track {
            Ok(track) => now.track = track.map(|t| TrackView { artist: t.artist, title: t.title, source: t.source }),
            Err(e) => tracing::warn!("live state: loading {}'s track: {e}", dj.dj_name),
        }
        now
    }

    fn publisher_rates(&self, status: &Status) -> Vec<PublisherRate> {
        let now = std::time::Instant::now();
        let lead = status.lead.iter().map(|l| (&l.dj, l.conn));
        let waiting = status.waiting.iter().map(|w| (&w.dj, w.conn));
        // Back-to-back members standing by watch their stream like a queued DJ.
        let standby = status.lead.iter().flat_map(|l| l.members.iter().filter(|m| !m.on_air));
        let standby = standby.map(|m| (&m.dj, m.conn));
        lead.chain(waiting)
            .chain(standby)
            .filter_map(|(dj, conn)| {
                let publisher = self.sources.publishers.get(conn?)?;
                let (stats, health) = publisher.health(now);
                Some(PublisherRate {
                    dj_name: dj.dj_name.clone(),
                    bitrate_bps: stats.bitrate_bps,
                    video_fps: stats.video_fps,
                    advice: health.advice,
                })
            })
            .collect()
    }

    fn destination_rates(&mut self, at: Instant) -> Vec<DestinationRate> {
        let statuses = self.sources.destinations.statuses();
        let rates = destination_rates(&self.bytes_sent, &statuses, at);
        self.bytes_sent = statuses.into_iter().map(|s| (s.name, (s.bytes_sent, at))).collect();
        rates
    }
}

/// The public view of `status`, with the lead's details already looked up.
fn queue_view(status: &Status, now: Option<NowPlaying>) -> QueueView {
    let clock_runs = status.lead.as_ref().is_some_and(|l| l.conn.is_some() && !l.paused);
    QueueView {
        lineup: Lineup {
            on_air: status.lead.as_ref().map(|l| l.set_name()),
            on_air_dj: status.lead.as_ref().map(|l| l.dj.dj_name.clone()),
            on_air_set: super::b2b::set_names(status),
            stream_queue: dj_names(status),
            timer_paused: !clock_runs,
            swap_interval: status.swap_interval.as_secs(),
            block_toggle: status.block_enabled,
            now,
            up_next: status.waiting.first().map(|w| w.dj.dj_name.clone()),
        },
        remaining_time: remaining(status),
    }
}

/// Whether `next` tells clients something that `last`, announced `elapsed` ago, did not.
/// Clients count a running timer down themselves, so a clock that agrees with their count
/// (give or take the second lost to rounding) is no news.
fn is_news(last: &QueueView, next: &QueueView, elapsed: Duration) -> bool {
    if last.lineup != next.lineup {
        return true;
    }
    let counted = if next.lineup.timer_paused {
        last.remaining_time
    } else {
        last.remaining_time.saturating_sub(elapsed.as_secs())
    };
    next.remaining_time.abs_diff(counted) > 1
}

/// Each destination's outgoing rate since the `previous` reading of its byte counter (zero
/// for the first reading).
fn destination_rates(
    previous: &HashMap<String, (u64, Instant)>,
    statuses: &[DestinationStatus],
    at: Instant,
) -> Vec<DestinationRate> {
    statuses
        .iter()
        .map(|s| DestinationRate {
            name: s.name.clone(),
            state: s.state,
            bitrate_bps: previous
                .get(&s.name)
                .map_or(0, |&(bytes, then)| bitrate(s.bytes_sent.saturating_sub(bytes), at.duration_since(then))),
        })
        .collect()
}

/// Bits per second for `bytes` sent over `elapsed`.
fn bitrate(bytes: u64, elapsed: Duration) -> u64 {
    if elapsed.is_zero() {
        return 0;
    }
    (bytes as f64 * 8.0 / elapsed.as_secs_f64()).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConnId;
    use crate::queue::engine::WaitingStatus;

    fn dj(user_id: i64, name: &str) -> Dj {
        Dj { user_id: UserId(user_id), dj_name: name.to_owned() }
    }

    fn status(lead: Option<(&str, Option<u64>, bool)>, waiting: &[&str]) -> Status {
        Status {
            lead: lead.map(|(name, conn, paused)| LeadStatus {
                dj: dj(1, name),
                conn: conn.map(ConnId),
                reserved: false,
                reclaim_within: None,
                budget: Duration::from_secs(600),
                elapsed: Duration::from_millis(100_400),
                remaining: Duration::from_millis(499_600),
                paused,
                members: Vec::new(),
            }),
            waiting: waiting
                .iter()
                .enumerate()
                .map(|(i, name)| WaitingStatus {
                    dj: dj(i as i64 + 2, name),
                    conn: Some(ConnId(i as u64 + 10)),
                    reclaim_within: None,
                    position: i + 1,
                    members: Vec::new(),
                })
                .collect(),
            swap_interval: Duration::from_secs(600),
            grace_period: Duration::from_secs(10),
            block_enabled: true,
            last_ended: None,
        }
    }

    #[test]
    fn the_view_lists_the_lead_first_and_whoever_comes_next() {
        let now = NowPlaying {
            dj_name: "Alice".into(),
            picture_url: Some("/pictures/a.png".into()),
            track: Some(TrackView { artist: "Artist".into(), title: "Title".into(), source: TrackSource::Dj }),
        };
        let view = queue_view(&status(Some(("Alice", Some(1), false)), &["Bob", "Carol"]), Some(now.clone()));
        assert_eq!(view.lineup.on_air.as_deref(), Some("Alice"));
        assert_eq!(view.lineup.stream_queue, ["Alice", "Bob", "Carol"]);
        assert_eq!(view.lineup.up_next.as_deref(), Some("Bob"));
        assert_eq!(view.remaining_time, 500, "rounded up, as /timer-data");
        assert!(!view.lineup.timer_paused);
        assert_eq!(view.lineup.now, Some(now));
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["now"]["track"]["artist"], "Artist");
        assert_eq!(json["remaining_time"], 500);
        assert_eq!(json["swap_interval"], 600);
        assert_eq!(json["block_toggle"], true);
    }

    #[test]
    fn a_back_to_back_set_is_named_by_all_its_djs() {
        use crate::queue::engine::MemberStatus;
        let mut status = status(Some(("Bob", Some(2), false)), &[]);
        let member =
            |user_id, name, conn, on_air| MemberStatus { dj: dj(user_id, name), conn: Some(ConnId(conn)), on_air };
        if let Some(lead) = status.lead.as_mut() {
            lead.members = vec![member(7, "Alice", 3, false), member(1, "Bob", 2, true)];
        }
        let view = queue_view(&status, None);
        assert_eq!(view.lineup.on_air.as_deref(), Some("Alice b2b Bob"));
        assert_eq!(view.lineup.on_air_dj.as_deref(), Some("Bob"));
        assert_eq!(view.lineup.on_air_set, ["Alice", "Bob"]);
        assert_eq!(view.lineup.stream_queue, ["Alice b2b Bob"]);
    }

    #[test]
    fn the_clock_stops_when_paused_held_or_nobody_is_on_air() {
        assert!(queue_view(&status(Some(("Alice", Some(1), true)), &[]), None).lineup.timer_paused);
        assert!(queue_view(&status(Some(("Alice", None, false)), &[]), None).lineup.timer_paused);
        let empty = queue_view(&status(None, &[]), None);
        assert!(empty.lineup.timer_paused);
        assert_eq!(empty.lineup.on_air, None);
        assert_eq!(empty.lineup.up_next, None);
        assert_eq!(empty.remaining_time, 600, "the full interval, as the seed reported");
    }

    fn view(remaining_time: u64, paused: bool) -> QueueView {
        QueueView {
            lineup: Lineup { on_air: Some("Alice".into()), timer_paused: paused, ..Lineup::default() },
            remaining_time,
        }
    }

    #[test]
    fn a_countdown_clients_can_follow_is_no_news() {
        let secs = Duration::from_secs;
        assert!(!is_news(&view(100, false), &view(97, false), secs(3)));
        assert!(!is_news(&view(100, false), &view(98, false), Duration::from_millis(2900)), "rounding");
        assert!(is_news(&view(100, false), &view(300, false), secs(3)), "an admin added time");
        assert!(is_news(&view(100, false), &view(90, false), secs(3)), "an admin took time away");
        assert!(!is_news(&view(100, true), &view(100, true), secs(30)), "paused");
        assert!(is_news(&view(100, false), &view(100, true), secs(0)), "pausing is news");
        let mut moved = view(97, false);
        moved.lineup.up_next = Some("Bob".into());
        assert!(is_news(&view(100, false), &moved, secs(3)));
    }

    fn destination(name: &str, bytes_sent: u64) -> DestinationStatus {
        DestinationStatus {
            name: name.to_owned(),
            url: "rtmp://example/live/****".to_owned(),
            state: DestinationState::Live,
            bytes_sent,
            connected_since: None,
            uptime_secs: None,
            reconnects: 0,
            last_error: None,
            next_retry_in_secs: None,
        }
    }

    #[test]
    fn destination_rates_come_from_the_byte_counters_change() {
        let then = Instant::now();
        let at = then + Duration::from_secs(2);
        let previous = HashMap::from([("yt".to_owned(), (1_000_000, then)), ("tw".to_owned(), (5_000, then))]);
        let statuses = [destination("yt", 1_500_000), destination("tw", 5_000), destination("new", 9_999)];
        let rates = destination_rates(&previous, &statuses, at);
        let bps: Vec<_> = rates.iter().map(|r| (r.name.as_str(), r.bitrate_bps)).collect();
        assert_eq!(bps, [("yt", 2_000_000), ("tw", 0), ("new", 0)]);
        assert_eq!(rates[0].state, DestinationState::Live);
        assert_eq!(bitrate(1000, Duration::ZERO), 0);
        let json = serde_json::to_string(&rates).unwrap();
        assert!(!json.contains("rtmp://"), "no destination URLs in public views: {json}");
    }

    #[tokio::test]
    async fn the_lead_is_looked_up_when_it_changes_and_when_poked() {
        use crate::queue::actor;
        use crate::store::{NewUser, Track};

        let test = crate::store::tests::TestStore::sqlite().await;
        let store = test.store.clone();
        let new = NewUser {
            dj_name: "Alice".into(),
            email: "alice@example.org".into(),
            password_hash: "not a hash".into(),
            stream_key: "k".repeat(32),
            is_admin: false,
        };
        let user = store.create_user(&new).await.unwrap();
        store.replace_profile_picture(user.id, Some("1-0123456789abcdef.png")).await.unwrap();
        let queue = actor::spawn(store.clone(), crate::queue::engine::Settings::default()).await;
        let (stop_tx, stop) = watch::channel(false);
        let sources = Sources {
            queue: queue.clone(),
            store: store.clone(),
            publishers: Publishers::default(),
            destinations: Destinations::default(),
        };
        let live = LiveState::spawn(sources, stop).await;
        let mut updates = live.queue_updates();

        let (kick, _kicked) = tokio::sync::oneshot::channel();
        queue.publish(ConnId(1), Dj { user_id: UserId(user.id), dj_name: "Alice".into() }, kick).await.unwrap();
        let on_air = updates.wait_for(|v| v.lineup.now.is_some()).await.unwrap().clone();
        let now = on_air.lineup.now.as_ref().unwrap();
        assert_eq!(now.picture_url.as_deref(), Some("/pictures/1-0123456789abcdef.png"));
        assert_eq!(now.track, None);

        let track = Track {
            artist: "Moodymann".into(),
            title: "Shades of Jae".into(),
            at: unix_now(),
            source: TrackSource::Dj,
        };
        store.add_track(user.id, &track).await.unwrap();
        let has_track = |v: &Arc<QueueView>| v.lineup.now.as_ref().is_some_and(|n| n.track.is_some());
        let unpoked = tokio::time::timeout(Duration::from_millis(2500), updates.wait_for(has_track)).await.is_err();
        assert!(unpoked, "the store is not read every second");
        live.poke();
        let poked =
            tokio::time::timeout(Duration::from_secs(5), updates.wait_for(has_track)).await.unwrap().unwrap().clone();
        let expected = TrackView { artist: "Moodymann".into(), title: "Shades of Jae".into(), source: TrackSource::Dj };
        assert_eq!(poked.lineup.now.as_ref().unwrap().track, Some(expected));

        stop_tx.send(true).unwrap();
        assert!(updates.changed().await.is_err(), "the producer ends when told to stop");
        test.finish().await;
    }
}
