//! A DJ for the tests: publishes the committed fixture over real RTMP with the project's own
//! client, paced in real time and looped, until told to stop, drop or stall.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use motherstream::media::codec::{AudioTagInfo, VideoTagInfo};
use motherstream::media::flv::{FlvReader, FlvTag, TagKind};
use motherstream::rtmp::client_io::{ClientError, RtmpClient};
use tokio::sync::{mpsc, oneshot};

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dj.flv");
/// A DJ whose stream differs: 640x360@25, AAC 48 kHz.
pub const FIXTURE2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dj2.flv");

/// A fixture's tags, read once per call (the files are small).
pub fn fixture_tags(path: &str) -> Vec<FlvTag> {
    let bytes = Bytes::from(std::fs::read(path).expect("fixture"));
    FlvReader::new(bytes).expect("flv header").collect::<Result<Vec<_>, _>>().expect("fixture tags")
}

enum Control {
    /// FCUnpublish + deleteStream, then close (what OBS does on "Stop Streaming").
    Stop(oneshot::Sender<()>),
    /// Keep the connection open but send no more media.
    Stall,
}

/// A publishing DJ running in a background task.
pub struct Dj {
    control: mpsc::Sender<Control>,
    task: tokio::task::JoinHandle<Result<(), ClientError>>,
}

impl Dj {
    /// Connects and publishes the main fixture; `Err` if the server refuses the key.
    pub async fn publish(rtmp: SocketAddr, key: &str) -> Result<Self, ClientError> {
        Self::publish_file(rtmp, key, FIXTURE).await
    }

    /// Connects and publishes `fixture` in a loop.
    pub async fn publish_file(rtmp: SocketAddr, key: &str, fixture: &str) -> Result<Self, ClientError> {
        let client = RtmpClient::publish(rtmp, "live", key).await?;
        let (control, rx) = mpsc::channel(4);
        let task = tokio::spawn(feed(client, rx, fixture_tags(fixture)));
        Ok(Self { control, task })
    }

    /// Stops cleanly and waits for the connection to close.
    pub async fn stop(self) {
        let (done, wait) = oneshot::channel();
        if self.control.send(Control::Stop(done)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        }
        let _ = self.task.await;
    }

    /// Kills the connection without a clean stop (like a crashed encoder or lost network).
    pub async fn drop_connection(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Stops sending media but keeps the TCP connection open.
    pub async fn stall(&self) {
        let _ = self.control.send(Control::Stall).await;
    }

    /// Resolves when the server has closed the connection (kicked us).
    pub async fn closed_by_server(self) -> Result<(), ClientError> {
        match tokio::time::timeout(super::harness::PATIENCE, self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => panic!("publisher task failed: {e}"),
            Err(_) => panic!("server did not close the publisher"),
        }
    }
}

async fn feed(
    mut client: RtmpClient<tokio::net::TcpStream>,
    mut control: mpsc::Receiver<Control>,
    tags: Vec<FlvTag>,
) -> Result<(), ClientError> {
    // The next loop starts one frame after the last video frame (and after the last audio
    // frame), so a looping publisher looks like one continuous live stream.
    let video: Vec<u32> = tags.iter().filter(|t| t.kind == TagKind::Video).map(|t| t.timestamp).collect();
    let frame = match video.as_slice() {
        [.., a, b] => b - a,
        _ => 33,
    };
    let last_audio = tags.iter().filter(|t| t.kind == TagKind::Audio).map(|t| t.timestamp + 24).max();
    let loop_len = video.last().map(|v| v + frame).max(last_audio).unwrap_or(1000);
    let start = Instant::now();
    let mut stalled = false;
    for round in 0u32.. {
        for tag in &tags {
            let mut tag = tag.clone();
            tag.timestamp += round * loop_len;
            // Sequence headers and metadata are only needed once.
            if round > 0 && is_header(&tag) {
                continue;
            }
            let due = start + Duration::from_millis(u64::from(tag.timestamp));
            loop {
                tokio::select! {
                    c = control.recv() => match c {
                        Some(Control::Stop(done)) => {
                            client.stop().await?;
                            let _ = done.send(());
                            return Ok(());
                        }
                        Some(Control::Stall) => stalled = true,
                        None => return Ok(()),
                    },
                    event = client.next_event() => {
                        // The only thing a publisher hears mid-stream is acks, pings, or the end.
                        event?;
                    }
                    _ = tokio::time::sleep_until(due.into()), if !stalled => break,
                }
            }
            client.send(tag.to_rtmp()).await?;
        }
    }
    Ok(())
}

/// Sequence headers and metadata: sent once per connection, not once per loop.
pub fn is_header(tag: &FlvTag) -> bool {
    match tag.kind {
        TagKind::Script => true,
        TagKind::Video => VideoTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_sequence_header()),
        TagKind::Audio => AudioTagInfo::parse(&tag.payload).is_ok_and(|i| i.is_sequence_header()),
    }
}
