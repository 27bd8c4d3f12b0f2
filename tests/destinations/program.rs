//! A stand-in for the program task: plays `tests/fixtures/dj.flv` in real time, in a loop,
//! on one continuous timeline, through the real fan-out.

use std::time::Duration;

use motherstream::media::codec::{VideoPacket, parse_video_tag};
use motherstream::media::flv::{FlvReader, FlvTag, TagKind};
use motherstream::program::fanout::Fanout;
use motherstream::program::{BusCommand, ProgramBus};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long the fan-out lets a consumer lag before dropping it.
const MAX_LAG: Duration = Duration::from_secs(10);

enum Control {
    Play,
    /// The program ends: every consumer sees the end of its subscription.
    End,
}

pub struct FakeProgram {
    pub bus: ProgramBus,
    control: mpsc::Sender<Control>,
    subscriptions: watch::Receiver<usize>,
}

impl FakeProgram {
    /// Starts the program task, playing or not.
    pub fn start(playing: bool) -> Self {
        let (bus, commands) = ProgramBus::channel();
        let (control, control_rx) = mpsc::channel(8);
        let (subscriptions_tx, subscriptions) = watch::channel(0);
        tokio::spawn(serve(commands, control_rx, subscriptions_tx, playing));
        Self { bus, control, subscriptions }
    }

    pub async fn play(&self) {
        self.control.send(Control::Play).await.expect("program task");
    }

    pub async fn end(&self) {
        self.control.send(Control::End).await.expect("program task");
    }

    /// Subscriptions made so far.
    pub fn subscriptions(&self) -> usize {
        *self.subscriptions.borrow()
    }
}

/// The fixture as headers (metadata, video and audio sequence headers) and the media
/// after them, without the end-of-sequence marker (the program never ends a sequence).
fn fixture() -> (Vec<FlvTag>, Vec<FlvTag>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dj.flv");
    let data = std::fs::read(path).expect("tests/fixtures/dj.flv");
    let mut tags: Vec<FlvTag> =
        FlvReader::new(data.into()).expect("FLV header").collect::<Result<_, _>>().expect("FLV tags");
    tags.retain(|t| {
        t.kind != TagKind::Video
            || parse_video_tag(&t.payload).expect("video tag").info.packet != VideoPacket::EndOfSequence
    });
    let media = tags.split_off(3);
    (tags, media)
}

async fn serve(
    mut commands: mpsc::Receiver<BusCommand>,
    mut control: mpsc::Receiver<Control>,
    subscriptions: watch::Sender<usize>,
    playing: bool,
) {
    let (headers, media) = fixture();
    let loop_len = media.last().expect("media").timestamp + 33;
    let mut fanout = Fanout::new(MAX_LAG);
    let origin = Instant::now();
    // The program clock in ms: the timeline goes on while nothing is played.
    let clock = || u32::try_from(origin.elapsed().as_millis()).expect("short test");
    // Tags still to publish in this play, in order, with their program timestamps.
    let mut queue: std::collections::VecDeque<FlvTag> = Default::default();
    let mut next_index = 0usize;
    let mut start = 0u32;
    let play = |queue: &mut std::collections::VecDeque<FlvTag>, start: &mut u32| {
        *start = clock();
        queue.clear();
        queue.extend(headers.iter().map(|h| FlvTag { timestamp: *start, ..h.clone() }));
    };
    if playing {
        play(&mut queue, &mut start);
    }
    let mut active = playing;
    loop {
        if active && queue.is_empty() {
            let round = (next_index / media.len()) as u32;
            let tag = &media[next_index % media.len()];
            queue.push_back(FlvTag { timestamp: start + round * loop_len + tag.timestamp, ..tag.clone() });
            next_index += 1;
        }
        let due = queue.front().map(|t| origin + Duration::from_millis(u64::from(t.timestamp)));
        tokio::select! {
            command = commands.recv() => match command {
                Some(BusCommand::Subscribe { name, tx }) => {
                    fanout.add(name, tx);
                    subscriptions.send_modify(|n| *n += 1);
                }
                None => return,
            },
            control = control.recv() => match control {
                Some(Control::Play) => {
                    active = true;
                    next_index = 0;
                    play(&mut queue, &mut start);
                }
                Some(Control::End) => {
                    active = false;
                    queue.clear();
                    fanout.close_all();
                }
                None => return,
            },
            () = tokio::time::sleep_until(due.unwrap_or(origin)), if due.is_some() => {
                if let Some(tag) = queue.pop_front() {
                    fanout.publish(std::time::Instant::now(), tag);
                }
            }
        }
    }
}
