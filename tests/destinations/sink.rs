//! A test platform: an RTMP server (the crate's sans-IO `ServerSession` over TCP) that
//! accepts publishes and records everything, and on command refuses publishes or stops
//! reading.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use motherstream::media::flv::{FlvTag, TagKind};
use motherstream::rtmp::{MediaKind, ServerEvent, ServerSession, SessionLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Receive buffer of the sink's sockets. Small, so that a sink that stops reading pushes
/// back on the destination within seconds rather than after megabytes.
const RECV_BUFFER: u32 = 16 * 1024;

/// One TCP connection to the sink.
#[derive(Debug, Clone)]
pub struct Connection {
    pub accepted_at: Instant,
    /// The publishing name, once the client asked to publish.
    pub key: Option<String>,
    /// Whether the publish was accepted.
    pub published: bool,
    /// Every tag received, in order (metadata as script tags).
    pub tags: Vec<FlvTag>,
    /// The client ended its publish with FCUnpublish/deleteStream.
    pub publish_stopped: bool,
}

impl Connection {
    pub fn video_frames(&self) -> usize {
        self.tags.iter().filter(|t| t.kind == TagKind::Video && t.payload.get(1) == Some(&1)).count()
    }
}

#[derive(Default)]
struct Control {
    /// Publishes still to refuse.
    refuse: AtomicUsize,
    /// Connections with an index below this stop reading.
    stall_below: AtomicUsize,
}

pub struct Sink {
    pub addr: SocketAddr,
    connections: Arc<Mutex<Vec<Connection>>>,
    control: Arc<Control>,
}

impl Sink {
    pub async fn start() -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(RECV_BUFFER).expect("SO_RCVBUF");
        socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let listener = socket.listen(16).expect("listen");
        let addr = listener.local_addr().expect("local addr");
        let sink = Self { addr, connections: Arc::default(), control: Arc::default() };
        tokio::spawn(accept(listener, sink.connections.clone(), sink.control.clone()));
        sink
    }

    /// `rtmp://127.0.0.1:PORT/live/KEY`.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.addr)
    }

    /// Refuses the next `n` publishes (`NetStream.Publish.Denied`, quoting the key).
    pub fn refuse_next(&self, n: usize) {
        self.control.refuse.store(n, Ordering::SeqCst);
    }

    /// Every connection open now stops reading (its socket stays open).
    pub fn stall(&self) {
        let open = self.connections.lock().expect("sink state").len();
        self.control.stall_below.store(open, Ordering::SeqCst);
    }

    pub fn connections(&self) -> Vec<Connection> {
        self.connections.lock().expect("sink state").clone()
    }
}

async fn accept(listener: TcpListener, connections: Arc<Mutex<Vec<Connection>>>, control: Arc<Control>) {
    while let Ok((socket, _)) = listener.accept().await {
        let index = {
            let mut connections = connections.lock().expect("sink state");
            connections.push(Connection {
                accepted_at: Instant::now(),
                key: None,
                published: false,
                tags: Vec::new(),
                publish_stopped: false,
            });
            connections.len() - 1
        };
        tokio::spawn(serve(socket, index, connections.clone(), control.clone()));
    }
}

async fn serve(mut socket: TcpStream, index: usize, connections: Arc<Mutex<Vec<Connection>>>, control: Arc<Control>) {
    let mut session = ServerSession::new(SessionLimits::default());
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if index < control.stall_below.load(Ordering::SeqCst) {
            // Keep the connection open and never read again, like a wedged platform.
            std::future::pending::<()>().await;
        }
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let Ok(events) = session.handle_input(&buf[..n]) else {
            return;
        };
        for event in events {
            let mut connections = connections.lock().expect("sink state");
            let connection = &mut connections[index];
            match event {
                ServerEvent::ConnectRequested { .. } => {
                    session.accept_connect().expect("accept connect");
                }
                ServerEvent::PublishRequested { stream_id, stream_key } => {
                    let refuse =
                        control.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                    if refuse {
                        let why = format!("stream key {stream_key} is not live yet");
                        session.reject_publish(stream_id, "NetStream.Publish.Denied", &why).expect("reject publish");
                    } else {
                        session.accept_publish(stream_id).expect("accept publish");
                        connection.published = true;
                    }
                    connection.key = Some(stream_key);
                }
                ServerEvent::Media { kind, timestamp, payload, .. } => {
                    let kind = match kind {
                        MediaKind::Audio => TagKind::Audio,
                        MediaKind::Video => TagKind::Video,
                    };
                    connection.tags.push(FlvTag::new(kind, timestamp, payload));
                }
                ServerEvent::Metadata { timestamp, payload, .. } => {
                    connection.tags.push(FlvTag::new(TagKind::Script, timestamp, payload))
                }
                ServerEvent::PublishStopped { .. } => connection.publish_stopped = true,
                ServerEvent::PlayRequested { .. } | ServerEvent::PlayStopped { .. } => {}
            }
        }
        for out in session.take_output() {
            if socket.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}
