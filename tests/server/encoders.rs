//! The encoders of the interop matrix: media files made once per parameter set with
//! ffmpeg's test sources (cached under `target/matrix-fixtures/`), published the way DJs do,
//! with `ffmpeg -re -stream_loop -1 -i FILE -c copy -f flv URL`, which costs almost no CPU.
//! HEVC goes over Enhanced RTMP, which the installed ffmpeg cannot send: its fixture is
//! wrapped into Enhanced RTMP FLV tags here and published with the project's own client.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use bytes::{BufMut, Bytes, BytesMut};
use motherstream::media::flv::{FlvHeader, FlvTag, TagKind};

/// Every fixture's frame rate: one channel rate keeps "one frame interval" one number.
pub const FPS: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Video {
    /// x264 with this many B-frames (pyramid when more than one); 0 is `-tune zerolatency`.
    X264 {
        bframes: u8,
    },
    /// x265 with B-frames, sent as Enhanced RTMP (FourCC hvc1).
    X265,
    None,
}

/// One publisher of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    pub video: Video,
    pub gop_secs: u32,
    pub size: (u32, u32),
    pub audio_rate: u32,
}

pub const X264_BFRAMES: Encoder =
    Encoder { video: Video::X264 { bframes: 3 }, gop_secs: 2, size: (320, 180), audio_rate: 44_100 };
pub const X264_ZEROLATENCY: Encoder =
    Encoder { video: Video::X264 { bframes: 0 }, gop_secs: 1, size: (640, 360), audio_rate: 48_000 };
pub const X264_LONG_GOP: Encoder =
    Encoder { video: Video::X264 { bframes: 2 }, gop_secs: 10, size: (320, 180), audio_rate: 48_000 };
pub const AUDIO_ONLY: Encoder = Encoder { video: Video::None, gop_secs: 1, size: (0, 0), audio_rate: 44_100 };
pub const X265: Encoder = Encoder { video: Video::X265, gop_secs: 2, size: (320, 180), audio_rate: 44_100 };

/// Generation is serialised within the test process; across processes a fixture appears
/// only by an atomic rename, so a reader never sees half a file.
static GENERATING: Mutex<()> = Mutex::new(());

impl Encoder {
    pub fn label(&self) -> String {
        let video = match self.video {
            Video::X264 { bframes: 0 } => "x264-zerolatency".to_owned(),
            Video::X264 { bframes } => format!("x264-bf{bframes}"),
            Video::X265 => "x265".to_owned(),
            Video::None => return format!("audio-only-aac{}", self.audio_rate),
        };
        format!("{video}-g{}s-{}x{}-aac{}", self.gop_secs, self.size.0, self.size.1, self.audio_rate)
    }

    /// Two GOPs at least, so a loop of the file never starts mid-GOP, and 12 s at least.
    fn seconds(&self) -> u32 {
        (2 * self.gop_secs).max(12)
    }

    /// The FLV fixture for this encoder, made on first use.
    pub fn fixture(&self) -> PathBuf {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/matrix-fixtures");
        let path = dir.join(format!("{}-{}s.flv", self.label(), self.seconds()));
        let _one_at_a_time = GENERATING.lock().unwrap_or_else(|p| p.into_inner());
        if path.exists() {
            return path;
        }
        std::fs::create_dir_all(&dir).expect("create target/matrix-fixtures");
        let partial = dir.join(format!(".{}.{}.partial", self.label(), std::process::id()));
        match self.video {
            Video::X265 => self.make_hevc(&partial, &dir),
            _ => ffmpeg(&self.ffmpeg_args(&partial)),
        }
        std::fs::rename(&partial, &path).expect("move the fixture into place");
        path
    }

    fn ffmpeg_args(&self, out: &Path) -> Vec<String> {
        let secs = self.seconds().to_string();
        let mut args: Vec<String> = Vec::new();
        if self.video != Video::None {
            let (w, h) = self.size;
            args.extend(["-f".into(), "lavfi".into(), "-i".into(), format!("testsrc2=size={w}x{h}:rate={FPS}")]);
        }
        args.extend(["-f".into(), "lavfi".into(), "-i".into()]);
        args.push(format!("sine=frequency=440:sample_rate={}", self.audio_rate));
        args.extend(["-t".into(), secs]);
        let gop = (self.gop_secs * FPS).to_string();
        if let Video::X264 { bframes } = self.video {
            args.extend(["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"].map(String::from));
            args.extend(["-g".into(), gop.clone(), "-keyint_min".into(), gop, "-sc_threshold".into(), "0".into()]);
            if bframes == 0 {
                args.extend(["-tune", "zerolatency", "-bf", "0"].map(String::from));
            } else {
                args.extend(["-bf".into(), bframes.to_string(), "-x264-params".into(), "b-pyramid=normal".into()]);
            }
        } else {
            args.push("-vn".into());
        }
        args.extend(["-c:a", "aac", "-b:a", "96k", "-ac", "2"].map(String::from));
        args.extend(["-f".into(), "flv".into(), out.display().to_string()]);
        args
    }

    /// x265 into MP4 (whose samples are already length-prefixed NAL units, as Enhanced
    /// RTMP wants them, and whose `hvcC` box is the sequence start), AAC into FLV, then
    /// both interleaved into one Enhanced RTMP FLV file.
    fn make_hevc(&self, out: &Path, dir: &Path) {
        let tmp = tempfile::tempdir_in(dir).expect("temp dir");
        let mp4 = tmp.path().join("video.mp4");
        let (w, h) = self.size;
        let gop = self.gop_secs * FPS;
        ffmpeg(&[
            "-f".into(),
            "lavfi".into(),
            "-i".into(),
            format!("testsrc2=size={w}x{h}:rate={FPS}"),
            "-t".into(),
            self.seconds().to_string(),
            "-c:v".into(),
            "libx265".into(),
            "-preset".into(),
            "ultrafast".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
            "-x265-params".into(),
            format!("keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:bframes=2:log-level=error"),
            "-tag:v".into(),
            "hvc1".into(),
            // The index first, so that the first "hvcC" in the file is the box itself.
            "-movflags".into(),
            "+faststart".into(),
            mp4.display().to_string(),
        ]);
        let audio_only = Encoder { video: Video::None, ..*self };
        let audio_flv = tmp.path().join("audio.flv");
        ffmpeg(&audio_only.ffmpeg_args(&audio_flv));

        let mp4_bytes = std::fs::read(&mp4).expect("read the HEVC mp4");
        let hvcc = find_box(&mp4_bytes, b"hvcC").expect("an hvcC box in the mp4");
        let mut tags = vec![FlvTag::new(TagKind::Video, 0, ex_video(1, 0, None, hvcc))];
        for p in probe_packets(&mp4) {
            let data = mp4_bytes.get(p.pos..p.pos + p.size).expect("packet inside the mp4");
            let frame = if p.key { 1 } else { 2 };
            tags.push(FlvTag::new(TagKind::Video, p.dts, ex_video(frame, 1, Some(p.pts as i32 - p.dts as i32), data)));
        }
        let audio = crate::program::read_flv(&audio_flv);
        tags.extend(audio.into_iter().filter(|t| t.kind == TagKind::Audio));
        // Headers before any media at the same instant.
        tags.sort_by_key(|t| (t.timestamp, !crate::publisher::is_header(t)));
        let mut file = BytesMut::new();
        file.extend_from_slice(&FlvHeader { has_audio: true, has_video: true }.encode());
        for tag in &tags {
            for chunk in tag.encode().expect("encode tag").into_chunks() {
                file.extend_from_slice(&chunk);
            }
        }
        std::fs::write(out, &file).expect("write the HEVC fixture");
    }
}

/// An Enhanced RTMP video tag for hvc1: frame type, packet type, FourCC, the composition
/// time for CodedFrames, then the body.
fn ex_video(frame: u8, packet: u8, cts: Option<i32>, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(body.len() + 8);
    b.put_u8(0x80 | (frame << 4) | packet);
    b.put_slice(b"hvc1");
    if let Some(cts) = cts {
        b.put_slice(&cts.to_be_bytes()[1..]);
    }
    b.put_slice(body);
    b.freeze()
}

/// The body of the first MP4 box of this type, searched for by name (the index comes first
/// in the fixture, before any media bytes that could look like a name).
fn find_box<'a>(mp4: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let at = mp4.windows(4).position(|w| w == kind)?;
    let size = u32::from_be_bytes(mp4.get(at - 4..at)?.try_into().ok()?) as usize;
    mp4.get(at + 4..at - 4 + size)
}

struct Packet {
    pos: usize,
    size: usize,
    dts: u32,
    pts: u32,
    key: bool,
}

/// Where each video sample lies in the MP4 and its timing, as ffprobe reads them.
fn probe_packets(mp4: &Path) -> Vec<Packet> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pts_time,dts_time,pos,size,flags"])
        .args(["-of", "csv=p=0"])
        .arg(mp4)
        .output()
        .expect("run ffprobe");
    assert!(out.status.success(), "ffprobe: {}", String::from_utf8_lossy(&out.stderr));
    // A shift so that the B-frames' negative first dts stays at or above zero.
    let mut packets: Vec<Packet> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            // Fields come in ffprobe's own order: pts_time, dts_time, size, pos, flags.
            let shifted = |s: &str| ((s.parse::<f64>().expect("a time") + 1.0) * 1000.0).round() as u32;
            Packet {
                pts: shifted(f[0]),
                dts: shifted(f[1]),
                size: f[2].parse().expect("size"),
                pos: f[3].parse().expect("pos"),
                key: f[4].starts_with('K'),
            }
        })
        .collect();
    let first = packets.iter().map(|p| p.dts).min().unwrap_or(0);
    for p in &mut packets {
        p.dts -= first;
        p.pts -= first;
    }
    packets
}

fn ffmpeg(args: &[String]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A DJ's ffmpeg publishing a fixture in a loop; killed when dropped.
pub struct FfmpegDj {
    child: Child,
}

impl FfmpegDj {
    pub fn publish(fixture: &Path, url: &str) -> Self {
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i"])
            .arg(fixture)
            .args(["-c", "copy", "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ffmpeg");
        Self { child }
    }

    /// SIGINT: ffmpeg finishes its output, which for RTMP is FCUnpublish + deleteStream,
    /// what OBS sends on "Stop Streaming".
    pub async fn stop(mut self) {
        signal(&self.child, "-INT");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: the connection just drops, like a crashed encoder.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// False once ffmpeg has exited (the server closed it, after a kick or a skip).
    pub fn running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for FfmpegDj {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill").args([sig, &child.id().to_string()]).status();
}
