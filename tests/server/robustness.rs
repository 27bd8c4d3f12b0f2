//! Hostile and broken peers on the RTMP port: each loses its own connection, nobody else
//! notices.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Options, PATIENCE, Server};
use crate::publisher::Dj;

/// Reads until the server closes the connection; fails if it stays open.
async fn assert_closed_by_server(mut socket: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept the connection open");
}

/// Completes the RTMP handshake by hand and returns the socket.
async fn handshaken(server: &Server) -> TcpStream {
    let mut socket = TcpStream::connect(server.rtmp).await.unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(7u8, 1536));
    socket.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    socket.read_exact(&mut s0s1s2).await.unwrap();
    assert_eq!(s0s1s2[0], 3, "RTMP version 3");
    socket.write_all(&s0s1s2[1..1537]).await.unwrap(); // C2 echoes S1
    socket
}

#[tokio::test]
async fn garbage_and_oversized_messages_only_close_that_connection() {
    let server = Server::start(Options::default());
    let key = server.add_user("Alice", false);
    let alice = Dj::publish(server.rtmp, &key).await.unwrap();
    server.wait_for_queue(&["Alice"]).await;

    // A TLS ClientHello (someone pointing rtmps at the plain port) is not RTMP version 3.
    let mut tls = TcpStream::connect(server.rtmp).await.unwrap();
    tls.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]).await.unwrap();
    assert_closed_by_server(tls).await;

    // Random bytes after a valid handshake.
    let mut garbage = handshaken(&server).await;
    let noise: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let _ = garbage.write_all(&noise).await;
    assert_closed_by_server(garbage).await;

    // A chunk announcing a 16 MiB command message (over the 8 MiB limit).
    let mut oversized = handshaken(&server).await;
    let header = [0x03, 0, 0, 0, 0xff, 0xff, 0xff, 20, 0, 0, 0, 0];
    oversized.write_all(&header).await.unwrap();
    let _ = oversized.write_all(&[0u8; 128]).await;
    assert_closed_by_server(oversized).await;
    server.wait_for_log("exceeds").await;

    // The publisher on air never noticed, and new publishers still get in.
    assert_eq!(server.queue().await, ["Alice"]);
    let bob_key = server.add_user("Bob", false);
    let _bob = Dj::publish(server.rtmp, &bob_key).await.expect("server still serves");
    server.wait_for_queue(&["Alice", "Bob"]).await;
    alice.stop().await;
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_handshake_timeout() {
    let server = Server::start(Options {
        config: Some("[limits]\nhandshake_timeout = 1\nmax_connections_per_ip = 4\n".into()),
        ..Options::default()
    });
    // A slowloris peer: connects, sends one byte, then nothing.
    let mut slow = TcpStream::connect(server.rtmp).await.unwrap();
    slow.write_all(&[3]).await.unwrap();
    assert_closed_by_server(slow).await;

    // More connections from one address than allowed: the extra ones are refused at once.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(server.rtmp).await.unwrap());
    }
    let extra = TcpStream::connect(server.rtmp).await.unwrap();
    assert_closed_by_server(extra).await;
    server.wait_for_log("connections already open from this address").await;
}
