//! The program: one continuous FLV timeline fed by the on-air DJ (or the idle slate), fanned
//! out to destinations, players and the recorder.

pub mod fanout;

use tokio::sync::mpsc;

use crate::media::flv::FlvTag;

/// Requests to the program task.
pub(crate) enum BusCommand {
    Subscribe {
        name: String,
        tx: mpsc::Sender<FlvTag>,
    },
}

/// Handle to the program task; cheap to clone.
#[derive(Clone)]
pub struct ProgramBus {
    commands: mpsc::Sender<BusCommand>,
}

/// A consumer's view of the program: start-up tags (metadata, sequence headers, current
/// GOP), then every program tag as it is produced.
pub struct Subscription {
    rx: mpsc::Receiver<FlvTag>,
}

impl ProgramBus {
    /// Subscribes to the program. `name` identifies the consumer in logs.
    /// `None` if the program task has stopped.
    pub async fn subscribe(&self, name: impl Into<String>) -> Option<Subscription> {
        let (tx, rx) = mpsc::channel(fanout::CONSUMER_BUFFER);
        self.commands
            .send(BusCommand::Subscribe {
                name: name.into(),
                tx,
            })
            .await
            .ok()?;
        Some(Subscription { rx })
    }
}

impl Subscription {
    /// The next program tag. `None` when the program ended (idle with `idle = "disconnect"`,
    /// shutdown) or this consumer fell too far behind and was dropped: subscribe again.
    pub async fn recv(&mut self) -> Option<FlvTag> {
        self.rx.recv().await
    }
}
