//! Song recognition: while a DJ is on air, every `interval` a few seconds of the program's
//! audio are sent to a recognition service, and a confident answer becomes the DJ's "now
//! playing" (marked `recognised`) unless the DJ named a track themselves in the last
//! `dj_window`. It replaces the original's Shazam probe, which ran an ffmpeg that decoded
//! the whole program; here the clip is the program's own AAC frames with ADTS headers, so
//! nothing is decoded.
//!
//! One task, one step at a time: it subscribes to the program like a player only while it
//! cuts a clip, sends one request, waits for its answer (bounded by `timeout`) and only
//! then waits for the next tick, so at most one request is ever in flight and requests
//! start at least `interval` apart. The program never waits for it: its subscription is a
//! bounded fan-out consumer like any other (a slow one skips to the next keyframe), and a
//! clip that lost frames is started again.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::error_chain;
use crate::history::announce_track;
use crate::media::codec::{ADTS_HEADER_LEN, Adts, AudioCodec, AudioPacket, parse_audio_tag};
use crate::media::flv::{FlvTag, TagKind};
use crate::metrics::Counters;
use crate::metrics::RecognitionCounters;
use crate::program::ProgramBus;
use crate::queue::actor::QueueHandle;
use crate::recorder::RecorderHandle;
use crate::secret::Secret;
use crate::settings::{ConfigError, DurationValue};
use crate::store::{Store, Track, TrackSource, unix_now};

/// Longest clip accepted in the configuration; with [`MAX_CLIP_BYTES`] it bounds what one
/// clip can hold.
const MAX_CLIP: Duration = Duration::from_secs(30);
/// 30 s of AAC at 1 Mbit/s, far above what any DJ sends.
const MAX_CLIP_BYTES: usize = 4 * 1024 * 1024;
/// A jump in the program's audio timestamps larger than this means frames were skipped
/// (the consumer lagged): the clip starts again rather than splicing two moments together.
const MAX_AUDIO_GAP_MS: u32 = 1000;
/// Time allowed beyond the clip's own length to receive it (a joiner may wait for a
/// keyframe; a stalled DJ is covered by the slate, whose audio restarts the clip).
const CLIP_SLACK: Duration = Duration::from_secs(10);
/// Largest provider answer read; AudD's, even with every `return` option, is a few tens of
/// KiB (none is asked for: only artist and title are kept).
const MAX_ANSWER_BYTES: usize = 512 * 1024;
/// Longest artist or title kept from an answer (as for tracks DJs enter).
const MAX_FIELD_CHARS: usize = 200;

/// `[recognition]` in `motherstream.toml`. Absent: recognition is off.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecognitionFileConfig {
    pub enabled: Option<bool>,
    /// Only `audd` so far.
    pub provider: Option<String>,
    pub api_token: Option<Secret>,
    pub endpoint: Option<String>,
    pub interval: Option<DurationValue>,
    pub clip: Option<DurationValue>,
    pub timeout: Option<DurationValue>,
    /// From 0 to 1.
    pub min_confidence: Option<f64>,
    pub dj_window: Option<DurationValue>,
}

/// Where clips are sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderConfig {
    Audd { endpoint: reqwest::Url, api_token: Secret },
}

/// What a recognised track must pass to become "now playing".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub min_confidence: f64,
    /// A track the DJ named this recently is never replaced by a recognised one.
    pub dj_window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecognitionConfig {
    pub provider: ProviderConfig,
    pub interval: Duration,
    pub clip: Duration,
    pub timeout: Duration,
    pub policy: Policy,
}

impl RecognitionConfig {
    pub fn resolve(file: Option<&RecognitionFileConfig>) -> Result<Option<Self>, ConfigError> {
        let Some(file) = file else { return Ok(None) };
        if file.enabled == Some(false) {
            return Ok(None);
        }
        let duration = |setting: &str, value: &Option<DurationValue>, default: Duration| match value {
            Some(v) => v.resolve(setting),
            None => Ok(default),
        };
        let provider = match file.provider.as_deref().unwrap_or("audd") {
            "audd" => {
                let api_token = file.api_token.clone().filter(|t| !t.is_empty()).ok_or_else(|| {
                    ConfigError::new("recognition.api_token", "required for provider \"audd\" (your AudD API token)")
                })?;
                let raw = file.endpoint.as_deref().unwrap_or("https://api.audd.io/");
                let endpoint =
                    reqwest::Url::parse(raw).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(
                        || ConfigError::new("recognition.endpoint", format!("`{raw}` is not an http(s) URL")),
                    )?;
                ProviderConfig::Audd { endpoint, api_token }
            }
            other => {
                return Err(ConfigError::new(
                    "recognition.provider",
                    format!("`{other}` is not a recognition provider (use \"audd\")"),
                ));
            }
        };
        let interval = duration("recognition.interval", &file.interval, Duration::from_secs(60))?;
        let clip = duration("recognition.clip", &file.clip, Duration::from_secs(8))?;
        let timeout = duration("recognition.timeout", &file.timeout, Duration::from_secs(20))?;
        let dj_window = duration("recognition.dj_window", &file.dj_window, Duration::from_secs(300))?;
        if interval < Duration::from_secs(1) {
            return Err(ConfigError::new("recognition.interval", "must be at least 1s"));
        }
        if clip < Duration::from_secs(1) || clip > MAX_CLIP {
            return Err(ConfigError::new("recognition.clip", format!("must be from 1s to {}s", MAX_CLIP.as_secs())));
        }
        if timeout.is_zero() {
            return Err(ConfigError::new("recognition.timeout", "must be more than 0"));
        }
        let min_confidence = file.min_confidence.unwrap_or(0.5);
        if !(0.0..=1.0).contains(&min_confidence) {
            return Err(ConfigError::new("recognition.min_confidence", "must be from 0 to 1"));
        }
        Ok(Some(Self { provider, interval, clip, timeout, policy: Policy { min_confidence, dj_window } }))
    }
}

/// A provider's answer for one clip: what now playing keeps (artist and title, as for
/// tracks DJs enter) and what the policy weighs.
#[derive(Debug, Clone, PartialEq)]
pub struct Recognised {
    pub artist: String,
    pub title: String,
    /// From 0 to 1; `None` when the provider gives no score (its match is its verdict).
    pub confidence: Option<f64>,
}

/// A recognition service.
pub trait Provider: Send + Sync + 'static {
    /// `Ok(None)`: the service heard no known song.
    fn recognise(&self, clip: Bytes) -> impl Future<Output = Result<Option<Recognised>, String>> + Send;
}

/// AudD (<https://docs.audd.io/>): a multipart POST of `api_token` and `file` (no `return`:
/// the extra services' data would be dropped), answered with `{"status": "success", "result": {artist, title, album, label,
/// song_link, …} | null}` or `{"status": "error", "error": {error_code, error_message}}`.
pub struct Audd {
    client: reqwest::Client,
    endpoint: reqwest::Url,
    api_token: Secret,
}

impl Audd {
    pub fn new(endpoint: reqwest::Url, api_token: Secret, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("recognition: building the HTTP client: {e}"))?;
        Ok(Self { client, endpoint, api_token })
    }
}

impl Provider for Audd {
    async fn recognise(&self, clip: Bytes) -> Result<Option<Recognised>, String> {
        let file = reqwest::multipart::Part::stream(clip)
            .file_name("clip.aac")
            .mime_str("audio/aac")
            .map_err(|e| e.to_string())?;
        let form =
            reqwest::multipart::Form::new().text("api_token", self.api_token.expose().to_owned()).part("file", file);
        let mut response = self
            .client
            .post(self.endpoint.clone())
            .multipart(form)
            .send()
            .await
            // Without the URL: reqwest errors name it, and a token could be in its query.
            .map_err(|e| error_chain(&e.without_url()))?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e.without_url()))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(format!("answer larger than {MAX_ANSWER_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        parse_audd(&body)
    }
}

fn parse_audd(body: &[u8]) -> Result<Option<Recognised>, String> {
    #[derive(Deserialize)]
    struct Answer {
        status: String,
        result: Option<AuddResult>,
        error: Option<AuddError>,
    }
    #[derive(Deserialize)]
    struct AuddResult {
        artist: Option<String>,
        title: Option<String>,
        score: Option<f64>,
    }
    #[derive(Deserialize)]
    struct AuddError {
        error_code: Option<i64>,
        error_message: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    if answer.status != "success" {
        let (code, message) = answer.error.map(|e| (e.error_code, e.error_message)).unwrap_or_default();
        let message: String = message.unwrap_or_default().chars().take(MAX_FIELD_CHARS).collect();
        return Err(format!("AudD error {}: {}", code.unwrap_or_default(), message.escape_debug()));
    }
    let Some(result) = answer.result else { return Ok(None) };
    let field = |v: Option<String>| v.map(|s| clean(&s)).filter(|s| !s.is_empty());
    let (Some(artist), Some(title)) = (field(result.artist), field(result.title)) else { return Ok(None) };
    Ok(Some(Recognised { artist, title, confidence: result.score.map(|s| (s / 100.0).clamp(0.0, 1.0)) }))
}

/// What a provider sends is shown on overlays: no control characters, bounded length.
fn clean(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(MAX_FIELD_CHARS).collect::<String>().trim().to_owned()
}

/// What to do with a recognised track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Announce,
    LowConfidence,
    /// The DJ named a track within the window: theirs stays.
    KeptDjTrack,
    /// Already what now playing says; no second tracklist entry.
    Unchanged,
}

impl Verdict {
    fn name(self) -> &'static str {
        match self {
            Verdict::Announce => "recognised",
            Verdict::LowConfidence => "low_confidence",
            Verdict::KeptDjTrack => "kept_dj_track",
            Verdict::Unchanged => "unchanged",
        }
    }
}

/// `current` is the DJ's now playing; `now` is Unix seconds (a parameter, so tests choose
/// the clock).
pub fn decide(policy: &Policy, found: &Recognised, current: Option<&Track>, now: i64) -> Verdict {
    if found.confidence.unwrap_or(1.0) < policy.min_confidence {
        return Verdict::LowConfidence;
    }
    if let Some(current) = current {
        let window = i64::try_from(policy.dj_window.as_secs()).unwrap_or(i64::MAX);
        if current.source == TrackSource::Dj && now.saturating_sub(current.at) < window {
            return Verdict::KeptDjTrack;
        }
        if current.artist.eq_ignore_ascii_case(&found.artist) && current.title.eq_ignore_ascii_case(&found.title) {
            return Verdict::Unchanged;
        }
    }
    Verdict::Announce
}

/// Cuts a clip of the program's AAC audio, as ADTS, from program tags.
pub struct ClipCutter {
    length_ms: u32,
    adts: Option<Adts>,
    first_ms: Option<u32>,
    last_ms: u32,
    data: BytesMut,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipError {
    #[error("the program's audio is {0}, not AAC")]
    NotAac(String),
    #[error("the program's AAC cannot be sent as ADTS: {0}")]
    Unsupported(String),
    #[error("the clip would be larger than {MAX_CLIP_BYTES} bytes")]
    TooLarge,
}

impl ClipCutter {
    pub fn new(length: Duration) -> Self {
        let length_ms = u32::try_from(length.min(MAX_CLIP).as_millis()).unwrap_or(u32::MAX);
        Self { length_ms, adts: None, first_ms: None, last_ms: 0, data: BytesMut::new() }
    }

    /// Takes one program tag; returns the clip once it is long enough.
    pub fn push(&mut self, tag: &FlvTag) -> Result<Option<Bytes>, ClipError> {
        if tag.kind != TagKind::Audio {
            return Ok(None);
        }
        let Ok(audio) = parse_audio_tag(&tag.payload) else { return Ok(None) };
        if audio.info.codec != AudioCodec::Aac {
            return Err(ClipError::NotAac(audio.info.codec.to_string()));
        }
        match audio.info.packet {
            AudioPacket::SequenceHeader => {
                let adts = Adts::from_config(audio.body).map_err(|e| ClipError::Unsupported(e.to_string()))?;
                // A new source (next DJ, the slate) or new settings: its audio is another clip.
                if self.adts != Some(adts) {
                    self.restart();
                    self.adts = Some(adts);
                }
                Ok(None)
            }
            AudioPacket::Raw => {
                let Some(adts) = self.adts else { return Ok(None) };
                if audio.body.is_empty() {
                    return Ok(None);
                }
                let gap = tag.timestamp.checked_sub(self.last_ms);
                if self.first_ms.is_some() && gap.is_none_or(|g| g > MAX_AUDIO_GAP_MS) {
                    self.restart();
                }
                let header = adts.header(audio.body.len()).map_err(|e| ClipError::Unsupported(e.to_string()))?;
                if self.data.len() + ADTS_HEADER_LEN + audio.body.len() > MAX_CLIP_BYTES {
                    return Err(ClipError::TooLarge);
                }
                self.data.extend_from_slice(&header);
                self.data.extend_from_slice(audio.body);
                let first = *self.first_ms.get_or_insert(tag.timestamp);
                self.last_ms = tag.timestamp;
                if tag.timestamp - first >= self.length_ms {
                    let clip = std::mem::take(&mut self.data).freeze();
                    self.first_ms = None;
                    return Ok(Some(clip));
                }
                Ok(None)
            }
            AudioPacket::Other => Ok(None),
        }
    }

    fn restart(&mut self) {
        self.data.clear();
        self.first_ms = None;
    }
}

/// Counts a verdict under its outcome.
fn count(counters: &RecognitionCounters, verdict: Verdict) {
    let counter = match verdict {
        Verdict::Announce => &counters.recognised,
        Verdict::LowConfidence => &counters.low_confidence,
        Verdict::KeptDjTrack => &counters.kept_dj_track,
        Verdict::Unchanged => &counters.unchanged,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the recogniser reads and updates.
pub struct Sources {
    pub queue: QueueHandle,
    pub program: ProgramBus,
    pub store: Store,
    pub recorder: RecorderHandle,
    /// Woken when a recognised track is recorded, so the live views look it up again.
    pub track_changed: Arc<Notify>,
    pub counters: Arc<Counters>,
}

/// Starts recognition; it stops when `stop` turns true.
pub fn spawn(
    config: RecognitionConfig,
    sources: Sources,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, String> {
    let ProviderConfig::Audd { endpoint, api_token } = config.provider.clone();
    tracing::info!(
        "song recognition on: {}s of program audio every {}s to AudD at {}",
        config.clip.as_secs_f32(),
        config.interval.as_secs_f32(),
        endpoint.origin().ascii_serialization()
    );
    let provider = Audd::new(endpoint, api_token, config.timeout)?;
    Ok(tokio::spawn(run(config, provider, sources, stop)))
}

async fn run<P: Provider>(config: RecognitionConfig, provider: P, sources: Sources, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + config.interval, config.interval);
    // After a slow step, the next one waits a whole interval: requests never bunch up.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        tokio::select! {
            _ = step(&config, &provider, &sources) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

async fn step<P: Provider>(config: &RecognitionConfig, provider: &P, sources: &Sources) {
    let Some((dj, host)) = on_air(sources).await else { return };
    let clip = match tokio::time::timeout(config.clip + CLIP_SLACK, cut_clip(&sources.program, config.clip)).await {
        Ok(Ok(Some(clip))) => clip,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::warn!("song recognition: {e}");
            return;
        }
        Err(_) => {
            tracing::info!("song recognition: no {}s of program audio arrived in time", config.clip.as_secs_f32());
            return;
        }
    };
    // The clip must be this DJ's: a switch while it was cut leaves nobody to credit.
    if on_air(sources).await.as_ref().map(|(d, _)| d.user_id) != Some(dj.user_id) {
        return;
    }
    let counters = &sources.counters.recognition;
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let found = match tokio::time::timeout(config.timeout, provider.recognise(clip)).await {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => {
            counters.no_match.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("song recognition: no match");
            return;
        }
        Ok(Err(e)) => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("song recognition failed: {e}");
            return;
        }
        Err(_) => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("song recognition failed: no answer within {:?}", config.timeout);
            return;
        }
    };
    let now = unix_now();
    let current = match sources.store.current_track_in(dj.user_id.0, host, now).await {
        Ok(current) => current,
        Err(e) => {
            counters.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("song recognition: loading {}'s track: {e}", dj.dj_name);
            return;
        }
    };
    let verdict = decide(&config.policy, &found, current.as_ref(), now);
    count(counters, verdict);
    if verdict != Verdict::Announce {
        tracing::debug!("song recognition: {} – {} not shown ({})", found.artist, found.title, verdict.name());
        return;
    }
    let track = Track { artist: found.artist, title: found.title, at: now, source: TrackSource::Recognised };
    if let Err(e) = announce_track(&sources.store, &sources.recorder, dj.user_id.0, host, &track).await {
        counters.failures.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("song recognition: recording {}'s track: {e}", dj.dj_name);
        return;
    }
    tracing::info!("recognised: {} is playing {} – {}", dj.dj_name, track.artist, track.title);
    sources.track_changed.notify_one();
}

/// The DJ on air, if the program airs a DJ (the slate, idle or covering, is not worth
/// recognising).
/// With it, the host of its set, whose tracklist a recognised track joins.
async fn on_air(sources: &Sources) -> Option<(crate::queue::engine::Dj, i64)> {
    if sources.program.status().source != "dj" {
        return None;
    }
    sources.queue.status().await.ok()?.lead.map(|lead| (lead.dj.clone(), lead.host().user_id.0))
}

async fn cut_clip(program: &ProgramBus, length: Duration) -> Result<Option<Bytes>, ClipError> {
    let Some(mut subscription) = program.subscribe("song recognition").await else { return Ok(None) };
    let mut cutter = ClipCutter::new(length);
    while let Some(tag) = subscription.recv().await {
        if let Some(clip) = cutter.push(&tag)? {
            return Ok(Some(clip));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(confidence: Option<f64>) -> Recognised {
        Recognised { artist: "Moodymann".into(), title: "Shades of Jae".into(), confidence }
    }

    fn track(title: &str, at: i64, source: TrackSource) -> Track {
        Track { artist: "Someone".into(), title: title.into(), at, source }
    }

    const POLICY: Policy = Policy { min_confidence: 0.6, dj_window: Duration::from_secs(300) };

    #[test]
    fn confident_answers_replace_nothing_or_recognised_tracks() {
        let t0 = 1_795_000_000;
        assert_eq!(decide(&POLICY, &found(Some(0.9)), None, t0), Verdict::Announce);
        assert_eq!(decide(&POLICY, &found(Some(0.6)), None, t0), Verdict::Announce, "the threshold itself passes");
        assert_eq!(decide(&POLICY, &found(Some(0.59)), None, t0), Verdict::LowConfidence);
        assert_eq!(decide(&POLICY, &found(None), None, t0), Verdict::Announce, "no score: the match is the verdict");
        let recognised = track("Earlier", t0 - 10, TrackSource::Recognised);
        assert_eq!(decide(&POLICY, &found(Some(0.9)), Some(&recognised), t0), Verdict::Announce);
    }

    #[test]
    fn a_track_the_dj_entered_stays_for_the_window() {
        let t0 = 1_795_000_000;
        let entered = track("Mine", t0, TrackSource::Dj);
        for (later, verdict) in [
            (0, Verdict::KeptDjTrack),
            (299, Verdict::KeptDjTrack),
            (300, Verdict::Announce),
            (3600, Verdict::Announce),
        ] {
            assert_eq!(decide(&POLICY, &found(Some(1.0)), Some(&entered), t0 + later), verdict, "{later}s later");
        }
        // A low score is low whatever the DJ did.
        assert_eq!(decide(&POLICY, &found(Some(0.1)), Some(&entered), t0 + 10), Verdict::LowConfidence);
    }

    #[test]
    fn the_same_track_again_is_not_a_new_entry() {
        let t0 = 1_795_000_000;
        let same = Track {
            artist: "moodymann".into(),
            title: "Shades Of Jae".into(),
            at: t0 - 60,
            source: TrackSource::Recognised,
        };
        assert_eq!(decide(&POLICY, &found(None), Some(&same), t0), Verdict::Unchanged);
        let entered_long_ago = Track { source: TrackSource::Dj, at: t0 - 3600, ..same };
        assert_eq!(decide(&POLICY, &found(None), Some(&entered_long_ago), t0), Verdict::Unchanged);
    }

    fn audio(ts: u32, payload: &[u8]) -> FlvTag {
        FlvTag::new(TagKind::Audio, ts, Bytes::copy_from_slice(payload))
    }

    /// AAC LC, 44.1 kHz, stereo.
    const HEADER: [u8; 4] = [0xAF, 0x00, 0x12, 0x10];

    #[test]
    fn clips_are_adts_frames_of_the_asked_length() {
        let mut cutter = ClipCutter::new(Duration::from_secs(1));
        assert_eq!(cutter.push(&audio(0, &[0xAF, 0x01, 1, 2, 3])), Ok(None), "no config yet: skipped");
        assert_eq!(cutter.push(&audio(0, &HEADER)), Ok(None));
        assert_eq!(cutter.push(&FlvTag::new(TagKind::Video, 0, Bytes::from_static(&[0x17, 1]))), Ok(None));
        let mut clip = None;
        for i in 0..60u32 {
            // 1024 samples at 44.1 kHz: 23.2 ms a frame.
            clip = cutter.push(&audio(i * 1024 * 1000 / 44100, &[0xAF, 0x01, i as u8, 0xAA])).unwrap();
            if clip.is_some() {
                assert_eq!(i, 44, "the first frame at or past 1 s ends the clip");
                break;
            }
        }
        let clip = clip.expect("a clip");
        assert_eq!(clip.len(), 45 * (ADTS_HEADER_LEN + 2));
        let adts = Adts::from_config(&HEADER[2..]).unwrap();
        assert_eq!(clip[..7], adts.header(2).unwrap());
        assert_eq!(clip[7..9], [0, 0xAA]);
        assert_eq!(clip[9..16], adts.header(2).unwrap());
    }

    #[test]
    fn a_new_source_or_a_gap_starts_the_clip_again() {
        let mut cutter = ClipCutter::new(Duration::from_secs(1));
        cutter.push(&audio(0, &HEADER)).unwrap();
        for ts in [0, 23, 46] {
            cutter.push(&audio(ts, &[0xAF, 0x01, 1])).unwrap();
        }
        // Next DJ, 48 kHz: what came before is not part of their clip.
        cutter.push(&audio(60, &[0xAF, 0x00, 0x11, 0x90])).unwrap();
        assert_eq!(cutter.push(&audio(900, &[0xAF, 0x01, 1])), Ok(None));
        // Frames skipped by a lagging subscription: start again after the hole.
        assert_eq!(cutter.push(&audio(2500, &[0xAF, 0x01, 1])), Ok(None));
        assert_eq!(cutter.push(&audio(3400, &[0xAF, 0x01, 1])), Ok(None));
        let clip = cutter.push(&audio(3500, &[0xAF, 0x01, 1])).unwrap().expect("1 s after the hole");
        assert_eq!(clip.len(), 3 * (ADTS_HEADER_LEN + 1));
        // The same header repeated (a joiner's burst) changes nothing.
        let mut cutter = ClipCutter::new(Duration::from_secs(1));
        cutter.push(&audio(0, &HEADER)).unwrap();
        cutter.push(&audio(0, &[0xAF, 0x01, 1])).unwrap();
        cutter.push(&audio(500, &HEADER)).unwrap();
        assert_eq!(cutter.push(&audio(1000, &[0xAF, 0x01, 1])).unwrap().map(|c| c.len()), Some(2 * 8));
    }

    #[test]
    fn audio_that_is_not_aac_is_reported() {
        let mut cutter = ClipCutter::new(Duration::from_secs(1));
        // MP3, legacy header.
        assert_eq!(cutter.push(&audio(0, &[0x2F, 0xFF, 0xFB])), Err(ClipError::NotAac("mp3".into())));
    }

    #[test]
    fn audd_answers() {
        let hit = br#"{"status":"success","result":{"artist":"Moodymann","title":"Shades of Jae\u0007","album":"Silentintroduction","release_date":"1997-01-01","label":"Planet E","timecode":"00:56","song_link":"https://lis.tn/x"}}"#;
        let found = parse_audd(hit).unwrap().unwrap();
        assert_eq!((found.artist.as_str(), found.title.as_str()), ("Moodymann", "Shades of Jae"));
        assert_eq!(found.confidence, None);
        let scored = br#"{"status":"success","result":{"artist":"A","title":"T","score":72}}"#;
        assert_eq!(parse_audd(scored).unwrap().unwrap().confidence, Some(0.72));
        assert_eq!(parse_audd(br#"{"status":"success","result":null}"#), Ok(None));
        assert_eq!(parse_audd(br#"{"status":"success","result":{"artist":"","title":"T"}}"#), Ok(None));
        let error = br#"{"status":"error","error":{"error_code":901,"error_message":"Recognition failed: authorization failed: no api_token passed and the limit was reached."}}"#;
        assert!(parse_audd(error).unwrap_err().starts_with("AudD error 901: Recognition failed"));
        assert!(parse_audd(b"<html>").is_err());
    }

    #[test]
    fn configuration() {
        assert_eq!(RecognitionConfig::resolve(None).unwrap(), None, "off by default");
        let file: RecognitionFileConfig =
            toml::from_str("api_token = \"t\"\ninterval = \"90s\"\nclip = 5\ndj_window = \"10m\"").unwrap();
        let config = RecognitionConfig::resolve(Some(&file)).unwrap().unwrap();
        assert_eq!(config.interval, Duration::from_secs(90));
        assert_eq!(config.clip, Duration::from_secs(5));
        assert_eq!(config.timeout, Duration::from_secs(20));
        assert_eq!(config.policy, Policy { min_confidence: 0.5, dj_window: Duration::from_secs(600) });
        let ProviderConfig::Audd { endpoint, .. } = &config.provider;
        assert_eq!(endpoint.as_str(), "https://api.audd.io/");
        let off = RecognitionFileConfig { enabled: Some(false), ..file.clone() };
        assert_eq!(RecognitionConfig::resolve(Some(&off)).unwrap(), None);

        let refused = |edit: &dyn Fn(&mut RecognitionFileConfig)| {
            let mut bad = file.clone();
            edit(&mut bad);
            RecognitionConfig::resolve(Some(&bad)).unwrap_err().to_string()
        };
        assert!(refused(&|f| f.api_token = None).starts_with("recognition.api_token"));
        assert!(refused(&|f| f.provider = Some("shazam".into())).starts_with("recognition.provider"));
        assert!(refused(&|f| f.endpoint = Some("ftp://x".into())).starts_with("recognition.endpoint"));
        assert!(refused(&|f| f.clip = Some(DurationValue::Text("31s".into()))).starts_with("recognition.clip"));
        assert!(
            refused(&|f| f.interval = Some(DurationValue::Text("soon".into()))).starts_with("recognition.interval")
        );
        assert!(refused(&|f| f.min_confidence = Some(1.5)).starts_with("recognition.min_confidence"));
    }
}
