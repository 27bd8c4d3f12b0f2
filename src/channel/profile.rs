//! What a stream looks like, compared with what the channel wants.

use serde::Serialize;

use crate::media::codec::{AudioCodec, VideoCodec};
use crate::media::flv::FlvTag;
use crate::media::stats::StatsSnapshot;
use crate::rtmp::amf0::{self, Amf0Value};

/// Frame rates this close (relative) count as equal: 29.97 is 30, 25 is not.
const FPS_TOLERANCE: f64 = 0.02;

/// The sample rates AAC can signal with an index (ISO 14496-3 Table 1.18), so a silent
/// slate can be built for any of them.
pub const AAC_SAMPLE_RATES: [u32; 12] =
    [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000];

/// The channel's picture and sound. The program's codecs are H.264 and AAC, what every
/// platform ingests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelProfile {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub sample_rate: u32,
    pub channels: u8,
}

impl Default for ChannelProfile {
    fn default() -> Self {
        Self { width: 1280, height: 720, fps: 30.0, sample_rate: 48000, channels: 2 }
    }
}

impl ChannelProfile {
    /// A bitrate that looks fine for talking heads and DJ cams: about 0.1 bit per pixel.
    pub fn default_video_kbps(&self) -> u32 {
        let bps = f64::from(self.width) * f64::from(self.height) * self.fps * 0.1;
        ((bps / 1000.0).round() as u32).clamp(300, 20_000)
    }

    /// Milliseconds of one video frame.
    pub fn frame_ms(&self) -> f64 {
        1000.0 / self.fps
    }

    /// "1280x720, 30 fps, 48 kHz stereo".
    pub fn describe(&self) -> String {
        format!(
            "{}x{}, {} fps, {} {}",
            self.width,
            self.height,
            fps(self.fps),
            khz(self.sample_rate),
            channels(self.channels)
        )
    }
}

/// The header-given properties of a stream: codecs, size, sample rate, channels.
pub type HeadersKey = (Option<VideoCodec>, Option<u32>, Option<u32>, Option<AudioCodec>, Option<u32>, Option<u8>);

/// What is known of one publisher's stream; `None` where it is not known (yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamProfile {
    pub video_codec: Option<VideoCodec>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    pub audio_codec: Option<AudioCodec>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u8>,
}

impl StreamProfile {
    /// From a publisher's statistics; the frame rate an encoder declares in its metadata
    /// is preferred to the one measured from timestamps, which needs a second of frames.
    pub fn from_stats(stats: &StatsSnapshot, declared_fps: Option<f64>) -> Self {
        let video = stats.video.as_ref();
        let audio = stats.audio.as_ref();
        Self {
            video_codec: video.map(|v| v.codec),
            width: video.and_then(|v| v.width),
            height: video.and_then(|v| v.height),
            fps: declared_fps.or(stats.video_fps),
            audio_codec: audio.map(|a| a.codec),
            sample_rate: audio.and_then(|a| a.sample_rate),
            channels: audio.and_then(|a| a.channels),
        }
    }

    /// Whether everything the channel compares is known.
    pub fn complete(&self) -> bool {
        self.video_codec.is_some()
            && self.width.is_some()
            && self.fps.is_some()
            && self.audio_codec.is_some()
            && self.sample_rate.is_some()
            && self.channels.is_some()
    }

    /// The stream's headers (not its measured frame rate): a decision taken on them holds
    /// until the DJ changes a setting.
    pub fn headers_key(&self) -> HeadersKey {
        (self.video_codec, self.width, self.height, self.audio_codec, self.sample_rate, self.channels)
    }
}

/// One way a stream differs from the channel, and how the DJ fixes it in OBS.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// `video_codec`, `resolution`, `frame_rate`, `audio_codec`, `sample_rate` or `channels`.
    pub setting: &'static str,
    /// What the DJ sends, e.g. `1920x1080`.
    pub stream: String,
    /// What the channel wants, e.g. `1280x720`.
    pub channel: String,
    /// "resolution 1920x1080, channel is 1280x720".
    pub message: String,
    /// The OBS setting that fixes it.
    pub fix: String,
}

impl Difference {
    fn new(setting: &'static str, label: &str, stream: String, channel: String, fix: String) -> Self {
        let message = format!("{label} {stream}, channel is {channel}");
        Self { setting, stream, channel, message, fix }
    }
}

/// Every known way `stream` differs from `profile`; unknown properties are not judged.
pub fn differences(profile: &ChannelProfile, stream: &StreamProfile) -> Vec<Difference> {
    let mut out = Vec::new();
    if let Some(codec) = stream.video_codec.filter(|c| *c != VideoCodec::Avc) {
        out.push(Difference::new(
            "video_codec",
            "video codec",
            codec.to_string(),
            "h264".into(),
            "OBS Settings → Output → Streaming → Video Encoder → x264 (or a hardware H.264 encoder)".into(),
        ));
    }
    if let (Some(w), Some(h)) = (stream.width, stream.height)
        && (w, h) != (profile.width, profile.height)
    {
        let want = format!("{}x{}", profile.width, profile.height);
        out.push(Difference::new(
            "resolution",
            "resolution",
            format!("{w}x{h}"),
            want.clone(),
            format!("OBS Settings → Video → Output (Scaled) Resolution → {want}"),
        ));
    }
    if let Some(got) = stream.fps
        && (got - profile.fps).abs() > profile.fps * FPS_TOLERANCE
    {
        let want = fps(profile.fps);
        out.push(Difference::new(
            "frame_rate",
            "frame rate",
            format!("{} fps", fps(got)),
            format!("{want} fps"),
            format!("OBS Settings → Video → Common FPS Values → {want}"),
        ));
    }
    if let Some(codec) = stream.audio_codec.filter(|c| *c != AudioCodec::Aac) {
        out.push(Difference::new(
            "audio_codec",
            "audio codec",
            format!("{codec:?}").to_ascii_lowercase(),
            "aac".into(),
            "OBS Settings → Output → Streaming → Audio Encoder → AAC".into(),
        ));
    }
    if let Some(rate) = stream.sample_rate
        && rate != profile.sample_rate
    {
        let want = khz(profile.sample_rate);
        out.push(Difference::new(
            "sample_rate",
            "sample rate",
            khz(rate),
            want.clone(),
            format!("OBS Settings → Audio → Sample Rate → {want}"),
        ));
    }
    if let Some(n) = stream.channels
        && n != profile.channels
    {
        let want = channels(profile.channels);
        out.push(Difference::new(
            "channels",
            "audio channels",
            channels(n),
            want.clone(),
            format!("OBS Settings → Audio → Channels → {}", capitalise(&want)),
        ));
    }
    out
}

/// The frame rate an `onMetaData` tag declares (`framerate`, or `videoframerate` as some
/// encoders spell it).
pub fn declared_fps(metadata: &FlvTag) -> Option<f64> {
    let values = amf0::decode_all(&metadata.payload).ok()?;
    values.iter().find_map(|value| {
        ["framerate", "videoframerate"]
            .iter()
            .find_map(|key| value.get(key).and_then(Amf0Value::as_f64))
            .filter(|fps| fps.is_finite() && (1.0..=1000.0).contains(fps))
    })
}

/// `30`, `29.97`.
pub fn fps(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `48 kHz`, `44.1 kHz`.
pub fn khz(rate: u32) -> String {
    format!("{} kHz", fps(f64::from(rate) / 1000.0))
}

fn channels(n: u8) -> String {
    match n {
        1 => "mono".into(),
        2 => "stereo".into(),
        n => format!("{n} channels"),
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn stream(width: u32, height: u32, fps: f64, sample_rate: u32, channels: u8) -> StreamProfile {
        StreamProfile {
            video_codec: Some(VideoCodec::Avc),
            width: Some(width),
            height: Some(height),
            fps: Some(fps),
            audio_codec: Some(AudioCodec::Aac),
            sample_rate: Some(sample_rate),
            channels: Some(channels),
        }
    }

    #[test]
    fn a_matching_stream_has_no_differences() {
        let profile = ChannelProfile::default();
        assert_eq!(differences(&profile, &stream(1280, 720, 30.0, 48000, 2)), []);
        assert_eq!(differences(&profile, &stream(1280, 720, 29.97, 48000, 2)), [], "29.97 is 30");
        assert_eq!(differences(&profile, &StreamProfile::default()), [], "nothing known, nothing judged");
    }

    #[test]
    fn each_difference_names_the_obs_setting_that_fixes_it() {
        let profile = ChannelProfile::default();
        let found = differences(&profile, &stream(1920, 1080, 25.0, 44100, 1));
        let messages: Vec<&str> = found.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "resolution 1920x1080, channel is 1280x720",
                "frame rate 25 fps, channel is 30 fps",
                "sample rate 44.1 kHz, channel is 48 kHz",
                "audio channels mono, channel is stereo",
            ]
        );
        let fixes: Vec<&str> = found.iter().map(|d| d.fix.as_str()).collect();
        assert_eq!(
            fixes,
            [
                "OBS Settings → Video → Output (Scaled) Resolution → 1280x720",
                "OBS Settings → Video → Common FPS Values → 30",
                "OBS Settings → Audio → Sample Rate → 48 kHz",
                "OBS Settings → Audio → Channels → Stereo",
            ]
        );
        let hevc = StreamProfile {
            video_codec: Some(VideoCodec::Hevc),
            audio_codec: Some(AudioCodec::Opus),
            ..Default::default()
        };
        let settings: Vec<&str> = differences(&profile, &hevc).iter().map(|d| d.setting).collect();
        assert_eq!(settings, ["video_codec", "audio_codec"]);
    }

    #[test]
    fn the_declared_frame_rate_is_read_from_metadata() {
        let mut body = BytesMut::new();
        amf0::encode(&"onMetaData".into(), &mut body);
        amf0::encode(
            &Amf0Value::EcmaArray(vec![("width".into(), 640.0.into()), ("framerate".into(), 25.0.into())]),
            &mut body,
        );
        let tag = FlvTag::new(crate::media::flv::TagKind::Script, 0, body.freeze());
        assert_eq!(declared_fps(&tag), Some(25.0));
        let garbage = FlvTag::new(crate::media::flv::TagKind::Script, 0, &b"\x02\x00"[..]);
        assert_eq!(declared_fps(&garbage), None);
    }

    #[test]
    fn profile_description_and_bitrate() {
        let profile = ChannelProfile::default();
        assert_eq!(profile.describe(), "1280x720, 30 fps, 48 kHz stereo");
        assert_eq!(profile.default_video_kbps(), 2765);
    }
}
