//! The fMP4 (CMAF-style) boxes HLS needs, written by hand: an init segment (`ftyp` + `moov`)
//! and fragments (`moof` + `mdat`). See ARCHITECTURE.md for why this is not a crate.
//!
//! Layout follows ISO/IEC 14496-12 (boxes) and 14496-15 (AVC/HEVC sample entries); the
//! AAC sample entry's `esds` follows 14496-1.

use bytes::{BufMut, Bytes, BytesMut};

/// Timescale of the video track: the program's FLV timestamps are milliseconds.
pub const VIDEO_TIMESCALE: u32 = 1000;
/// Timescale of the audio track, whatever its sample rate: a multiple of every common AAC
/// rate (8 to 96 kHz, 44.1 kHz family included), so frames have whole durations; and one
/// value for all DJs, so that a player keeping the first init segment (ffmpeg ignores a
/// second `moov`) still reads the times of a DJ with another rate right.
pub const AUDIO_TIMESCALE: u32 = 14_112_000;
pub const VIDEO_TRACK: u32 = 1;
pub const AUDIO_TRACK: u32 = 2;
/// Samples per AAC frame.
pub const AAC_FRAME: u32 = 1024;

/// `sample_depends_on = 2` (depends on nothing): a sync sample.
const SYNC_SAMPLE: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample = 1`.
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x001;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTS: u32 = 0x800;
const UNITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// What the init segment describes: the program's tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracks {
    pub video: Option<VideoTrack>,
    pub audio: Option<AudioTrack>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    pub hevc: bool,
    /// The AVCDecoderConfigurationRecord or HEVCDecoderConfigurationRecord.
    pub record: Bytes,
    pub width: u16,
    pub height: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// The AudioSpecificConfig.
    pub config: Bytes,
    /// Its audio object type (2: AAC LC, 5: HE-AAC, 29: HE-AACv2).
    pub object_type: u8,
    /// Output sample rate (for explicit HE-AAC, the doubled one).
    pub sample_rate: u32,
    pub channels: u8,
}

impl AudioTrack {
    /// Output samples per frame: explicit HE-AAC doubles the 1024 of its core.
    pub fn frame_samples(&self) -> u32 {
        if matches!(self.object_type, 5 | 29) { 2 * AAC_FRAME } else { AAC_FRAME }
    }

    /// Whether `other` decodes with this configuration: the same audio, however its
    /// AudioSpecificConfig is written (some encoders add an explicit "no SBR" extension).
    pub fn same_audio(&self, other: &AudioTrack) -> bool {
        (self.object_type, self.sample_rate, self.channels) == (other.object_type, other.sample_rate, other.channels)
    }
}

/// One coded frame of a fragment, times in its track's timescale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub duration: u32,
    pub composition_offset: i32,
    pub sync: bool,
    pub data: Bytes,
}

/// A track's samples in one fragment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    /// Decode time of the first sample (`tfdt`).
    pub decode_time: u64,
    pub samples: Vec<Sample>,
}

/// `ftyp` + `moov` for `tracks`.
pub fn init_segment(tracks: &Tracks) -> Bytes {
    let mut out = BytesMut::with_capacity(1024);
    boxed(&mut out, b"ftyp", |b| {
        b.put_slice(b"iso6");
        b.put_u32(0);
        for brand in [b"iso6", b"cmfc", b"mp41"] {
            b.put_slice(brand);
        }
    });
    boxed(&mut out, b"moov", |b| {
        full(b, b"mvhd", 0, 0, |b| {
            b.put_u32(0); // creation time
            b.put_u32(0); // modification time
            b.put_u32(VIDEO_TIMESCALE);
            b.put_u32(0); // duration: fragmented
            b.put_u32(0x0001_0000); // rate 1.0
            b.put_u16(0x0100); // volume 1.0
            b.put_bytes(0, 10);
            UNITY_MATRIX.iter().for_each(|v| b.put_u32(*v));
            b.put_bytes(0, 24);
            b.put_u32(AUDIO_TRACK + 1); // next track id
        });
        if let Some(video) = &tracks.video {
            video_trak(b, video);
        }
        if let Some(audio) = &tracks.audio {
            audio_trak(b, audio);
        }
        boxed(b, b"mvex", |b| {
            let ids = [tracks.video.as_ref().map(|_| VIDEO_TRACK), tracks.audio.as_ref().map(|_| AUDIO_TRACK)];
            for id in ids.into_iter().flatten() {
                full(b, b"trex", 0, 0, |b| {
                    b.put_u32(id);
                    b.put_u32(1); // sample description index
                    b.put_u32(0); // default duration
                    b.put_u32(0); // default size
                    b.put_u32(0); // default flags
                });
            }
        });
    });
    out.freeze()
}

fn video_trak(b: &mut BytesMut, video: &VideoTrack) {
    boxed(b, b"trak", |b| {
        tkhd(b, VIDEO_TRACK, false, video.width, video.height);
        boxed(b, b"mdia", |b| {
            mdhd(b, VIDEO_TIMESCALE);
            hdlr(b, b"vide", b"VideoHandler");
            boxed(b, b"minf", |b| {
                full(b, b"vmhd", 0, 1, |b| b.put_bytes(0, 8));
                dinf(b);
                stbl(b, |b| {
                    // avc3/hev1: parameter sets travel in-band too, so a new DJ's SPS/PPS
                    // need no new init segment (see ARCHITECTURE.md, HLS).
                    let (entry, config) = if video.hevc { (b"hev1", b"hvcC") } else { (b"avc3", b"avcC") };
                    boxed(b, entry, |b| {
                        b.put_bytes(0, 6);
                        b.put_u16(1); // data reference index
                        b.put_bytes(0, 16);
                        b.put_u16(video.width);
                        b.put_u16(video.height);
                        b.put_u32(0x0048_0000); // 72 dpi
                        b.put_u32(0x0048_0000);
                        b.put_u32(0);
                        b.put_u16(1); // frame count
                        b.put_bytes(0, 32); // compressor name
                        b.put_u16(0x0018); // depth
                        b.put_i16(-1);
                        boxed(b, config, |b| b.put_slice(&video.record));
                    });
                });
            });
        });
    });
}

fn audio_trak(b: &mut BytesMut, audio: &AudioTrack) {
    boxed(b, b"trak", |b| {
        tkhd(b, AUDIO_TRACK, true, 0, 0);
        boxed(b, b"mdia", |b| {
            mdhd(b, AUDIO_TIMESCALE);
            hdlr(b, b"soun", b"SoundHandler");
            boxed(b, b"minf", |b| {
                full(b, b"smhd", 0, 0, |b| b.put_u32(0));
                dinf(b);
                stbl(b, |b| {
                    boxed(b, b"mp4a", |b| {
                        b.put_bytes(0, 6);
                        b.put_u16(1); // data reference index
                        b.put_bytes(0, 8);
                        b.put_u16(u16::from(audio.channels));
                        b.put_u16(16); // sample size
                        b.put_u32(0);
                        // 16.16 fixed point; rates above 65535 Hz do not fit and are not AAC's.
                        b.put_u32(audio.sample_rate.min(0xFFFF) << 16);
                        esds(b, &audio.config);
                    });
                });
            });
        });
    });
}

fn esds(b: &mut BytesMut, config: &[u8]) {
    full(b, b"esds", 0, 0, |b| {
        let decoder_specific = 2 + config.len();
        let decoder_config = 2 + 13 + decoder_specific;
        let es = 2 + 3 + decoder_config + 3;
        descriptor(b, 0x03, es - 2);
        b.put_u16(0); // ES id
        b.put_u8(0); // flags
        descriptor(b, 0x04, decoder_config - 2);
        b.put_u8(0x40); // MPEG-4 audio
        b.put_u8(0x15); // audio stream
        b.put_bytes(0, 3); // buffer size
        b.put_u32(0); // max bitrate
        b.put_u32(0); // average bitrate
        descriptor(b, 0x05, config.len());
        b.put_slice(config);
        descriptor(b, 0x06, 1);
        b.put_u8(0x02); // SL config: predefined for MP4
    });
}

/// A descriptor header with a one-byte size (configs are far below 128 bytes; longer ones
/// are cut off by the caller's bound on the AudioSpecificConfig).
fn descriptor(b: &mut BytesMut, tag: u8, len: usize) {
    b.put_u8(tag);
    b.put_u8(len.min(0x7F) as u8);
}

fn tkhd(b: &mut BytesMut, id: u32, audio: bool, width: u16, height: u16) {
    // Flags: enabled, in movie.
    full(b, b"tkhd", 0, 3, |b| {
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(id);
        b.put_u32(0);
        b.put_u32(0); // duration
        b.put_bytes(0, 8);
        b.put_u16(0); // layer
        b.put_u16(0); // alternate group
        b.put_u16(if audio { 0x0100 } else { 0 });
        b.put_u16(0);
        UNITY_MATRIX.iter().for_each(|v| b.put_u32(*v));
        b.put_u32(u32::from(width) << 16);
        b.put_u32(u32::from(height) << 16);
    });
}

fn mdhd(b: &mut BytesMut, timescale: u32) {
    full(b, b"mdhd", 0, 0, |b| {
        b.put_u32(0);
        b.put_u32(0);
        b.put_u32(timescale);
        b.put_u32(0);
        b.put_u16(0x55C4); // "und"
        b.put_u16(0);
    });
}

fn hdlr(b: &mut BytesMut, kind: &[u8; 4], name: &[u8]) {
    full(b, b"hdlr", 0, 0, |b| {
        b.put_u32(0);
        b.put_slice(kind);
        b.put_bytes(0, 12);
        b.put_slice(name);
        b.put_u8(0);
    });
}

fn dinf(b: &mut BytesMut) {
    boxed(b, b"dinf", |b| {
        full(b, b"dref", 0, 0, |b| {
            b.put_u32(1);
            // Flag 1: the media is in this file.
            full(b, b"url ", 0, 1, |_| {});
        });
    });
}

fn stbl(b: &mut BytesMut, entry: impl FnOnce(&mut BytesMut)) {
    boxed(b, b"stbl", |b| {
        full(b, b"stsd", 0, 0, |b| {
            b.put_u32(1);
            entry(b);
        });
        // Sample tables are empty: the samples are in the fragments.
        full(b, b"stts", 0, 0, |b| b.put_u32(0));
        full(b, b"stsc", 0, 0, |b| b.put_u32(0));
        full(b, b"stsz", 0, 0, |b| b.put_bytes(0, 8));
        full(b, b"stco", 0, 0, |b| b.put_u32(0));
    });
}

/// `moof` + `mdat` holding `video` then `audio` samples; `sequence` numbers fragments.
/// Tracks with no samples are left out.
pub fn fragment(sequence: u32, video: &Run, audio: &Run) -> Bytes {
    let runs: Vec<(u32, &Run)> =
        [(VIDEO_TRACK, video), (AUDIO_TRACK, audio)].into_iter().filter(|(_, run)| !run.samples.is_empty()).collect();
    let media_len: usize = runs.iter().flat_map(|(_, run)| &run.samples).map(|s| s.data.len()).sum();
    let mut out =
        BytesMut::with_capacity(256 + 16 * runs.iter().map(|(_, r)| r.samples.len()).sum::<usize>() + media_len);
    // Positions of each trun's data offset, patched once the moof's size is known.
    let mut offset_fields = Vec::with_capacity(runs.len());
    boxed(&mut out, b"moof", |b| {
        full(b, b"mfhd", 0, 0, |b| b.put_u32(sequence));
        for (track, run) in &runs {
            boxed(b, b"traf", |b| {
                full(b, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |b| b.put_u32(*track));
                full(b, b"tfdt", 1, 0, |b| b.put_u64(run.decode_time));
                let is_video = *track == VIDEO_TRACK;
                let flags =
                    TRUN_DATA_OFFSET | TRUN_DURATION | TRUN_SIZE | if is_video { TRUN_FLAGS | TRUN_CTS } else { 0 };
                // Version 1: signed composition offsets.
                full(b, b"trun", 1, flags, |b| {
                    b.put_u32(run.samples.len() as u32);
                    offset_fields.push(b.len());
                    b.put_i32(0);
                    for sample in &run.samples {
                        b.put_u32(sample.duration);
                        b.put_u32(sample.data.len() as u32);
                        if is_video {
                            b.put_u32(if sample.sync { SYNC_SAMPLE } else { NON_SYNC_SAMPLE });
                            b.put_i32(sample.composition_offset);
                        }
                    }
                });
            });
        }
    });
    let moof_len = out.len();
    let mut data_offset = moof_len + 8;
    for ((_, run), field) in runs.iter().zip(offset_fields) {
        out[field..field + 4].copy_from_slice(&(data_offset as u32).to_be_bytes());
        data_offset += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    boxed(&mut out, b"mdat", |b| {
        for sample in runs.iter().flat_map(|(_, run)| &run.samples) {
            b.put_slice(&sample.data);
        }
    });
    out.freeze()
}

/// Writes a box: size, type, then whatever `body` writes.
fn boxed(out: &mut BytesMut, kind: &[u8; 4], body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_u32(0);
    out.put_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

/// A full box: a box whose body starts with version and flags.
fn full(out: &mut BytesMut, kind: &[u8; 4], version: u8, flags: u32, body: impl FnOnce(&mut BytesMut)) {
    boxed(out, kind, |b| {
        b.put_u32(u32::from(version) << 24 | (flags & 0x00FF_FFFF));
        body(b);
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A parsed box: type, and its children when it is a container this test knows.
    #[derive(Debug)]
    pub(crate) struct Parsed {
        pub kind: [u8; 4],
        pub body: Vec<u8>,
        pub children: Vec<Parsed>,
    }

    const CONTAINERS: [&[u8; 4]; 9] = [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"dinf"];

    /// Parses boxes back, checking that every size adds up exactly.
    pub(crate) fn parse(mut data: &[u8]) -> Vec<Parsed> {
        let mut boxes = Vec::new();
        while !data.is_empty() {
            assert!(data.len() >= 8, "truncated box header");
            let size = u32::from_be_bytes(data[..4].try_into().unwrap()) as usize;
            assert!(size >= 8 && size <= data.len(), "box size {size} of {} bytes left", data.len());
            let kind: [u8; 4] = data[4..8].try_into().unwrap();
            let body = data[8..size].to_vec();
            let children = if CONTAINERS.contains(&&kind) { parse(&body) } else { Vec::new() };
            boxes.push(Parsed { kind, body, children });
            data = &data[size..];
        }
        boxes
    }

    pub(crate) fn find<'a>(boxes: &'a [Parsed], path: &[&[u8; 4]]) -> Vec<&'a Parsed> {
        let Some((first, rest)) = path.split_first() else { return Vec::new() };
        let here = boxes.iter().filter(|b| &&b.kind == first);
        if rest.is_empty() { here.collect() } else { here.flat_map(|b| find(&b.children, rest)).collect() }
    }

    pub(crate) fn be32(data: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(data[at..at + 4].try_into().unwrap())
    }

    fn tracks() -> Tracks {
        Tracks {
            video: Some(VideoTrack {
                hevc: false,
                record: Bytes::from_static(&[1, 0x64, 0, 0x1F, 0xFF, 0xE0, 0]),
                width: 640,
                height: 360,
            }),
            audio: Some(AudioTrack {
                config: Bytes::from_static(&[0x12, 0x10]),
                object_type: 2,
                sample_rate: 44_100,
                channels: 2,
            }),
        }
    }

    #[test]
    fn init_segment_boxes_parse_back() {
        let init = init_segment(&tracks());
        let boxes = parse(&init);
        assert_eq!(boxes.iter().map(|b| &b.kind).collect::<Vec<_>>(), [b"ftyp", b"moov"]);
        assert_eq!(find(&boxes, &[b"moov", b"trak"]).len(), 2);
        assert_eq!(find(&boxes, &[b"moov", b"mvex", b"trex"]).len(), 2);
        let stsd = find(&boxes, &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"]);
        assert_eq!(&stsd[0].body[12..16], b"avc3");
        assert_eq!(&stsd[1].body[12..16], b"mp4a");
        let mdhd = find(&boxes, &[b"moov", b"trak", b"mdia", b"mdhd"]);
        assert_eq!(be32(&mdhd[1].body, 12), AUDIO_TIMESCALE);
    }

    #[test]
    fn fragment_offsets_point_at_each_tracks_samples() {
        let video = Run {
            decode_time: 90_000,
            samples: vec![
                Sample { duration: 40, composition_offset: 80, sync: true, data: Bytes::from_static(b"KEYFRAME") },
                Sample { duration: 40, composition_offset: -40, sync: false, data: Bytes::from_static(b"PFRAME") },
            ],
        };
        let audio = Run {
            decode_time: 3_969_000,
            samples: vec![Sample {
                duration: 1024,
                composition_offset: 0,
                sync: true,
                data: Bytes::from_static(b"AAC"),
            }],
        };
        let data = fragment(7, &video, &audio);
        let boxes = parse(&data);
        assert_eq!(boxes.iter().map(|b| &b.kind).collect::<Vec<_>>(), [b"moof", b"mdat"]);
        let mfhd = find(&boxes, &[b"moof", b"mfhd"]);
        assert_eq!(be32(&mfhd[0].body, 4), 7);
        let truns = find(&boxes, &[b"moof", b"traf", b"trun"]);
        let tfdts = find(&boxes, &[b"moof", b"traf", b"tfdt"]);
        assert_eq!(u64::from(be32(&tfdts[0].body, 8)), 90_000);
        let first_offset = be32(&truns[0].body, 8) as usize;
        assert_eq!(&data[first_offset..first_offset + 8], b"KEYFRAME");
        let audio_offset = be32(&truns[1].body, 8) as usize;
        assert_eq!(&data[audio_offset..audio_offset + 3], b"AAC");
        // Second video sample: duration, size, flags, composition offset.
        assert_eq!(be32(&truns[0].body, 12 + 16 + 8) as i32, NON_SYNC_SAMPLE as i32);
        assert_eq!(be32(&truns[0].body, 12 + 16 + 12) as i32, -40);
    }

    #[test]
    fn a_track_without_samples_is_left_out() {
        let audio = Run {
            decode_time: 0,
            samples: vec![Sample { duration: 1024, composition_offset: 0, sync: true, data: Bytes::from_static(b"A") }],
        };
        let boxes = parse(&fragment(1, &Run::default(), &audio));
        let tfhd = find(&boxes, &[b"moof", b"traf", b"tfhd"]);
        assert_eq!(tfhd.len(), 1);
        assert_eq!(be32(&tfhd[0].body, 4), AUDIO_TRACK);
    }
}
