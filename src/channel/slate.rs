//! The built-in slate, made at start-up in the channel profile: the slate looks like the
//! rest of the program whatever the profile, and no external tool is needed.
//!
//! The picture (dark background, "motherstream" in yellow, "the next set starts soon" in
//! white) is drawn from two embedded text masks, scaled to the profile, and encoded with
//! OpenH264 (built from source): one keyframe per loop, then P-frames that repeat the
//! picture and cost a few bytes each. The sound is silent AAC-LC: a constant
//! raw_data_block per 1024 samples, and an AudioSpecificConfig for the profile's rate and
//! channels. The result is an FLV file in memory, which `Slate::from_bytes` plays.

use bytes::{BufMut, Bytes, BytesMut};
use openh264::OpenH264API;
use openh264::encoder::{
    Complexity, Encoder, EncoderConfig, FrameType, QpRange, RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVBuffer;

use super::profile::{AAC_SAMPLE_RATES, ChannelProfile, StreamProfile};
use crate::media::codec::{AudioConfig, AudioTagInfo, VideoConfig, parse_audio_tag, parse_video_tag};
use crate::media::flv::{FlvHeader, FlvReader, FlvTag, TagKind};
use crate::rtmp::amf0::{self, Amf0Value};

/// Text masks (8-bit coverage, binary PGM) drawn at 1.5 times the size they have in a
/// 1280x720 picture; `scripts/make-fixtures.sh` makes them.
const TITLE_MASK: &[u8] = include_bytes!("../../assets/slate-title.pgm");
const SUBTITLE_MASK: &[u8] = include_bytes!("../../assets/slate-subtitle.pgm");
/// How much larger than at 720p the masks are drawn.
const MASK_SCALE: f64 = 1.5;

const BACKGROUND: [u8; 3] = [0x14, 0x14, 0x1f];
const TITLE: [u8; 3] = [0xff, 0xd5, 0x4a];
const SUBTITLE: [u8; 3] = [0xff, 0xff, 0xff];
const SUBTITLE_OPACITY: f64 = 0.8;

/// Silent AAC-LC raw_data_blocks: one single channel element (mono) or one channel pair
/// element (stereo) with no spectral data, as encoders emit for silence. They do not depend
/// on the sample rate.
const SILENT_MONO: &[u8] = &[0x01, 0x18, 0x20, 0x07];
const SILENT_STEREO: &[u8] = &[0x21, 0x10, 0x04, 0x60, 0x8C, 0x1C];

/// Pictures are presented this many frames after they are decoded, as in OBS's x264 streams
/// (two B-frames): a splice between the slate and a typical DJ then needs no extra pause to
/// keep pictures in order. (OpenH264 makes no B-frames; a constant offset is valid FLV.)
const PRESENTATION_DELAY_FRAMES: f64 = 2.0;

/// Generates the slate for `profile`: an FLV file of one loop (between 1 and 2 s, starting
/// with a keyframe), for `Slate::from_bytes`.
pub fn generate(profile: &ChannelProfile) -> Result<Bytes, String> {
    let (width, height) = (profile.width as usize, profile.height as usize);
    if width % 2 != 0 || height % 2 != 0 || width < 16 || height < 16 {
        return Err(format!("{width}x{height}: the slate needs an even size of at least 16x16"));
    }
    let frames = loop_frames(profile);
    let picture = draw(width, height)?;

    let config = EncoderConfig::new()
        // The same bitstream as screen-content mode at a fixed quantiser, for 11 MiB less of
        // encoder memory (screen content keeps extra reference and detection buffers).
        .usage_type(UsageType::CameraVideoRealTime)
        // A fixed quantiser: the keyframe is sharp from the start and the repeats are empty.
        .rate_control_mode(RateControlMode::Off)
        .qp(QpRange::new(20, 20))
        .skip_frames(false)
        .background_detection(false)
        .adaptive_quantization(false)
        .complexity(Complexity::High)
        .num_threads(1)
        .debug(false)
        .max_frame_rate(openh264::encoder::FrameRate::from_hz(profile.fps as f32))
        .vui(VuiConfig::bt709());
    let mut encoder =
        Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| format!("slate encoder: {e}"))?;

    let cto = (PRESENTATION_DELAY_FRAMES * profile.frame_ms()).round() as u32;
    let [_, cto0, cto1, cto2] = cto.to_be_bytes();
    let mut tags = Vec::with_capacity(frames * 2 + 3);
    let mut parameter_sets: Option<(Vec<u8>, Vec<u8>)> = None;
    // The first frame is an IDR; the loop restarts at it, so one keyframe per loop.
    for index in 0..frames {
        let encoded = encoder.encode(&picture).map_err(|e| format!("slate encoder: {e}"))?;
        let keyframe = match encoded.frame_type() {
            FrameType::IDR | FrameType::I => true,
            FrameType::P => false,
            other => return Err(format!("slate encoder: unexpected {other:?} frame")),
        };
        let mut body = BytesMut::new();
        body.put_slice(&[if keyframe { 0x17 } else { 0x27 }, 0x01, cto0, cto1, cto2]);
        for layer in (0..encoded.num_layers()).filter_map(|i| encoded.layer(i)) {
            for nal in (0..layer.nal_count()).filter_map(|i| layer.nal_unit(i)) {
                let nal = strip_start_code(nal);
                match nal.first().map(|b| b & 0x1f) {
                    Some(7) => parameter_sets.get_or_insert_with(|| (Vec::new(), Vec::new())).0 = nal.to_vec(),
                    Some(8) => parameter_sets.get_or_insert_with(|| (Vec::new(), Vec::new())).1 = nal.to_vec(),
                    Some(_) => {
                        body.put_u32(u32::try_from(nal.len()).map_err(|_| "slate frame too large")?);
                        body.put_slice(nal);
                    }
                    None => {}
                }
            }
        }
        tags.push(FlvTag::new(TagKind::Video, video_ts(profile, index), body.freeze()));
    }
    let Some((sps, pps)) = parameter_sets.filter(|(s, p)| s.len() >= 4 && !p.is_empty()) else {
        return Err("slate encoder: no SPS/PPS".into());
    };

    // Slate::from_bytes loops after the last frame plus the last frame interval.
    let loop_ms = 2 * video_ts(profile, frames - 1) - video_ts(profile, frames - 2);
    let silent = if profile.channels == 1 { SILENT_MONO } else { SILENT_STEREO };
    let sound_flags = 0xA0 | 0x0C | 0x02 | u8::from(profile.channels == 2);
    let mut audio_index = 0u64;
    loop {
        let ts = (audio_index * 1024 * 1000 + u64::from(profile.sample_rate) / 2) / u64::from(profile.sample_rate);
        let Ok(ts) = u32::try_from(ts) else { break };
        if ts >= loop_ms {
            break;
        }
        let mut body = Vec::with_capacity(2 + silent.len());
        body.extend_from_slice(&[sound_flags, 0x01]);
        body.extend_from_slice(silent);
        tags.push(FlvTag::new(TagKind::Audio, ts, body));
        audio_index += 1;
    }
    // Decoding order across tracks: by time, video first at equal times.
    tags.sort_by_key(|t| (t.timestamp, t.kind != TagKind::Video));

    let mut out = BytesMut::new();
    out.put_slice(&FlvHeader { has_audio: true, has_video: true }.encode());
    let headers = [
        FlvTag::new(TagKind::Script, 0, metadata(profile)),
        FlvTag::new(TagKind::Video, 0, avc_sequence_header(&sps, &pps)),
        FlvTag::new(TagKind::Audio, 0, aac_sequence_header(profile, sound_flags)?),
    ];
    for tag in headers.iter().chain(&tags) {
        out.put(tag.encode().map_err(|e| format!("slate: {e}"))?);
    }
    Ok(out.freeze())
}

/// Video frames in one loop: between one and two seconds, chosen so the loop holds a
/// whole number of AAC frames (or as near as can be), so the silence loops without a gap.
fn loop_frames(profile: &ChannelProfile) -> usize {
    let fps = profile.fps;
    let audio_frames_per_second = f64::from(profile.sample_rate) / 1024.0;
    let lo = (fps.ceil() as usize).max(2);
    let hi = ((2.0 * fps).floor() as usize).max(lo);
    let gap = |n: usize| {
        let audio = n as f64 / fps * audio_frames_per_second;
        (audio - audio.round()).abs()
    };
    // Ties go to the longer loop: fewer keyframes.
    (lo..=hi).rev().min_by(|a, b| gap(*a).total_cmp(&gap(*b))).unwrap_or(lo)
}

fn video_ts(profile: &ChannelProfile, index: usize) -> u32 {
    (index as f64 * profile.frame_ms()).round() as u32
}

fn strip_start_code(nal: &[u8]) -> &[u8] {
    let zeros = nal.iter().take_while(|b| **b == 0).count();
    if zeros >= 2 && nal.get(zeros) == Some(&1) { &nal[zeros + 1..] } else { nal }
}

fn avc_sequence_header(sps: &[u8], pps: &[u8]) -> Bytes {
    let mut body = BytesMut::with_capacity(16 + sps.len() + pps.len());
    body.put_slice(&[0x17, 0x00, 0, 0, 0]);
    // AVCDecoderConfigurationRecord: version, profile, compatibility, level, 4-byte NAL
    // lengths, one SPS, one PPS.
    body.put_slice(&[1, sps[1], sps[2], sps[3], 0xFF, 0xE1]);
    body.put_u16(sps.len() as u16);
    body.put_slice(sps);
    body.put_u8(1);
    body.put_u16(pps.len() as u16);
    body.put_slice(pps);
    body.freeze()
}

fn aac_sequence_header(profile: &ChannelProfile, sound_flags: u8) -> Result<Bytes, String> {
    let index = AAC_SAMPLE_RATES
        .iter()
        .position(|r| *r == profile.sample_rate)
        .ok_or_else(|| format!("{} Hz is not an AAC sample rate", profile.sample_rate))?;
    // AudioSpecificConfig: object type 2 (LC, 5 bits), rate index (4), channels (4), 3 zero bits.
    let config = (2u16 << 11) | ((index as u16) << 7) | (u16::from(profile.channels) << 3);
    let [a, b] = config.to_be_bytes();
    Ok(Bytes::copy_from_slice(&[sound_flags, 0x00, a, b]))
}

fn metadata(profile: &ChannelProfile) -> Bytes {
    let mut body = BytesMut::new();
    amf0::encode(&"onMetaData".into(), &mut body);
    let properties = [
        ("width", f64::from(profile.width)),
        ("height", f64::from(profile.height)),
        ("framerate", profile.fps),
        ("videocodecid", 7.0),
        ("audiosamplerate", f64::from(profile.sample_rate)),
        ("audiochannels", f64::from(profile.channels)),
        ("audiocodecid", 10.0),
    ];
    let array = properties.iter().map(|(k, v)| ((*k).to_owned(), Amf0Value::from(*v))).collect();
    amf0::encode(&Amf0Value::EcmaArray(array), &mut body);
    body.freeze()
}

/// A binary PGM: width, height and 8-bit samples.
struct Mask<'a> {
    width: usize,
    height: usize,
    pixels: &'a [u8],
}

impl<'a> Mask<'a> {
    fn parse(pgm: &'a [u8]) -> Result<Self, String> {
        let mut fields = Vec::new();
        let mut pos = 0;
        // "P5", width, height, maxval, each followed by whitespace; then the samples.
        while fields.len() < 4 {
            while pgm.get(pos).is_some_and(u8::is_ascii_whitespace) {
                pos += 1;
            }
            let start = pos;
            while pgm.get(pos).is_some_and(|b| !b.is_ascii_whitespace()) {
                pos += 1;
            }
            fields.push(std::str::from_utf8(&pgm[start..pos]).map_err(|_| "slate mask: bad header")?);
        }
        let number = |s: &str| s.parse::<usize>().map_err(|_| format!("slate mask: bad number {s}"));
        let (width, height) = (number(fields[1])?, number(fields[2])?);
        let pixels = pgm.get(pos + 1..).ok_or("slate mask: no samples")?;
        if fields[0] != "P5" || fields[3] != "255" || pixels.len() != width * height {
            return Err("slate mask: not an 8-bit binary PGM of its stated size".into());
        }
        Ok(Self { width, height, pixels })
    }

    /// Coverage at a mask position, bilinear.
    fn sample(&self, x: f64, y: f64) -> f64 {
        let at = |x: isize, y: isize| -> f64 {
            if x < 0 || y < 0 || x as usize >= self.width || y as usize >= self.height {
                return 0.0;
            }
            f64::from(self.pixels[y as usize * self.width + x as usize])
        };
        let (x, y) = (x - 0.5, y - 0.5);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as isize, y0 as isize);
        let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
        let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
        (top * (1.0 - fy) + bottom * fy) / 255.0
    }
}

/// The slate picture at `width`x`height`, as I420 (BT.709, limited range).
fn draw(width: usize, height: usize) -> Result<YUVBuffer, String> {
    // 8 bits a channel, as the picture will have: the canvas is the start-up's largest
    // allocation (2.6 MiB at 720p; 21 MiB in 64-bit floats).
    let mut rgb = vec![BACKGROUND; width * height];
    // Laid out as at 1280x720, scaled to fit (and centred in) any other shape.
    let scale = (width as f64 / 1280.0).min(height as f64 / 720.0);
    let title = Mask::parse(TITLE_MASK)?;
    let subtitle = Mask::parse(SUBTITLE_MASK)?;
    let k = scale / MASK_SCALE;
    let title_h = title.height as f64 * k;
    let centre_y = height as f64 / 2.0;
    paint(&mut rgb, width, height, &title, k, centre_y - 40.0 * scale - title_h / 2.0, TITLE, 1.0);
    paint(&mut rgb, width, height, &subtitle, k, centre_y + 40.0 * scale, SUBTITLE, SUBTITLE_OPACITY);

    let mut yuv = vec![0u8; width * height * 3 / 2];
    let (luma, chroma) = yuv.split_at_mut(width * height);
    let (cb_plane, cr_plane) = chroma.split_at_mut(width * height / 4);
    for (i, px) in rgb.iter().enumerate() {
        let [r, g, b] = px.map(f64::from);
        luma[i] = (16.0 + 219.0 * (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255.0).round() as u8;
    }
    for cy in 0..height / 2 {
        for cx in 0..width / 2 {
            let mut sum = [0.0; 3];
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let px = rgb[(2 * cy + dy) * width + 2 * cx + dx];
                for c in 0..3 {
                    sum[c] += f64::from(px[c]) / 4.0;
                }
            }
            let [r, g, b] = sum;
            let i = cy * (width / 2) + cx;
            cb_plane[i] = (128.0 + 224.0 * (-0.1146 * r - 0.3854 * g + 0.5 * b) / 255.0).round() as u8;
            cr_plane[i] = (128.0 + 224.0 * (0.5 * r - 0.4542 * g - 0.0458 * b) / 255.0).round() as u8;
        }
    }
    Ok(YUVBuffer::from_vec(yuv, width, height))
}

/// Blends `colour` through `mask` (scaled by `k`, centred horizontally, its top at `top`).
#[allow(clippy::too_many_arguments)]
fn paint(
    rgb: &mut [[u8; 3]],
    width: usize,
    height: usize,
    mask: &Mask<'_>,
    k: f64,
    top: f64,
    colour: [u8; 3],
    opacity: f64,
) {
    let w = mask.width as f64 * k;
    let h = mask.height as f64 * k;
    let left = (width as f64 - w) / 2.0;
    // Several samples per pixel when shrinking, so small profiles stay legible.
    let n = (1.0 / k).ceil().clamp(1.0, 6.0) as usize;
    let x0 = left.floor().max(0.0) as usize;
    let y0 = top.floor().max(0.0) as usize;
    let x1 = ((left + w).ceil() as usize).min(width);
    let y1 = ((top + h).ceil() as usize).min(height);
    for y in y0..y1 {
        for x in x0..x1 {
            let mut coverage = 0.0;
            for sy in 0..n {
                for sx in 0..n {
                    let px = (x as f64 + (sx as f64 + 0.5) / n as f64 - left) / k;
                    let py = (y as f64 + (sy as f64 + 0.5) / n as f64 - top) / k;
                    coverage += mask.sample(px, py);
                }
            }
            let a = coverage / (n * n) as f64 * opacity;
            let px = &mut rgb[y * width + x];
            for c in 0..3 {
                px[c] = (f64::from(px[c]) * (1.0 - a) + f64::from(colour[c]) * a).round() as u8;
            }
        }
    }
}

/// What an FLV file's stream looks like: its headers, and its frame rate (declared, or
/// from its video timestamps). For checking a user slate against the channel profile.
pub fn describe_flv(bytes: Bytes) -> Result<StreamProfile, String> {
    let reader = FlvReader::new(bytes).map_err(|e| format!("not an FLV file: {e}"))?;
    let mut stream = StreamProfile::default();
    let mut declared = None;
    let mut video_times = Vec::new();
    for tag in reader {
        let tag = tag.map_err(|e| format!("malformed FLV: {e}"))?;
        match tag.kind {
            TagKind::Script => declared = declared.or_else(|| super::profile::declared_fps(&tag)),
            TagKind::Video => {
                let Ok(parsed) = parse_video_tag(&tag.payload) else { continue };
                if parsed.info.is_sequence_header() {
                    stream.video_codec = Some(parsed.info.codec);
                    if let Ok(config) = VideoConfig::parse(parsed.info.codec, parsed.body) {
                        stream.width = config.width;
                        stream.height = config.height;
                    }
                } else if video_times.len() < 600 {
                    video_times.push(tag.timestamp);
                }
            }
            TagKind::Audio => {
                let Ok(parsed) = parse_audio_tag(&tag.payload) else { continue };
                if AudioTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_sequence_header()) {
                    stream.audio_codec = Some(parsed.info.codec);
                    if let Ok(config) = AudioConfig::parse(parsed.info.codec, parsed.body) {
                        stream.sample_rate = Some(config.sample_rate);
                        stream.channels = config.channels;
                    }
                }
            }
        }
    }
    let measured = match video_times.as_slice() {
        [first, .., last] if last > first => Some((video_times.len() - 1) as f64 * 1000.0 / f64::from(last - first)),
        _ => None,
    };
    stream.fps = declared.or(measured);
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::differences;
    use crate::media::codec::VideoTagInfo;

    #[test]
    fn the_slate_is_made_in_any_channel_profile() {
        let profiles = [
            ChannelProfile::default(),
            ChannelProfile { width: 1920, height: 1080, fps: 60.0, sample_rate: 44100, channels: 2 },
            ChannelProfile { width: 640, height: 360, fps: 25.0, sample_rate: 48000, channels: 1 },
            ChannelProfile { width: 720, height: 1280, fps: 29.97, sample_rate: 32000, channels: 2 },
        ];
        for profile in profiles {
            let flv = generate(&profile).unwrap();
            // The player's side (that `Slate` loops it seamlessly) is tested with the player.
            let loop_ms = (loop_frames(&profile) as f64 * profile.frame_ms()).round() as u128;
            assert!((1000..=2100).contains(&loop_ms), "{profile:?}: {loop_ms} ms loop");
            let stream = describe_flv(flv.clone()).unwrap();
            assert_eq!(differences(&profile, &stream), [], "{profile:?}: {stream:?}");
            assert_eq!((stream.width, stream.height), (Some(profile.width), Some(profile.height)));
            assert_eq!((stream.sample_rate, stream.channels), (Some(profile.sample_rate), Some(profile.channels)));
            // Measured from the frames, not only declared.
            let measured = describe_flv(strip_metadata(&flv)).unwrap().fps.unwrap();
            assert!((measured - profile.fps).abs() < profile.fps * 0.02, "{profile:?}: {measured} fps");
            let first = VideoTagInfo::parse(&first_frame(&flv)).unwrap();
            assert_eq!(first.composition_time, (2.0 * profile.frame_ms()).round() as i32, "{profile:?}");
            // The repeats of a still picture are tiny: the slate costs little bandwidth.
            let kbps = flv.len() as f64 * 8.0 / loop_ms as f64;
            assert!(kbps < 2000.0, "{profile:?}: {kbps:.0} kbit/s");
        }
    }

    #[test]
    fn the_loop_holds_whole_aac_frames_where_it_can() {
        // 48 frames at 30 fps = 1.6 s = exactly 75 AAC frames at 48 kHz.
        assert_eq!(loop_frames(&ChannelProfile::default()), 48);
        let odd = ChannelProfile { fps: 29.97, sample_rate: 44100, ..Default::default() };
        assert!((30..=59).contains(&loop_frames(&odd)));
    }

    fn first_frame(flv: &Bytes) -> Bytes {
        FlvReader::new(flv.clone())
            .unwrap()
            .map(Result::unwrap)
            .find(|t| t.kind == TagKind::Video && !VideoTagInfo::parse(&t.payload).unwrap().is_sequence_header())
            .unwrap()
            .payload
    }

    fn strip_metadata(flv: &Bytes) -> Bytes {
        let mut out = BytesMut::new();
        out.put_slice(&FlvHeader { has_audio: true, has_video: true }.encode());
        for tag in FlvReader::new(flv.clone()).unwrap() {
            let tag = tag.unwrap();
            if tag.kind != TagKind::Script {
                out.put(tag.encode().unwrap());
            }
        }
        out.freeze()
    }
}
