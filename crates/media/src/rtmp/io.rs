//! Writing a session's output to a socket: all queued pieces in as few system calls as the
//! socket allows (`writev`), without joining them into one buffer (the large pieces are
//! shared media payloads).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Pieces passed to one `writev` at most (well under every platform's IOV_MAX).
const MAX_SLICES: usize = 64;

/// Writes what the socket takes at once without waiting, removing it from `pieces`; what
/// is left needs [`write_pieces`]. Saves the caller a timer and a wake-up for the usual
/// write, which fits in the socket's buffer.
pub fn try_write_pieces(socket: &TcpStream, pieces: &mut VecDeque<Bytes>) -> std::io::Result<()> {
    loop {
        drop_empty_front(pieces);
        if pieces.is_empty() {
            return Ok(());
        }
        let written = {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = pieces.len().min(MAX_SLICES);
            for (slice, piece) in slices.iter_mut().zip(pieces.iter()) {
                *slice = IoSlice::new(piece);
            }
            match socket.try_write_vectored(&slices[..n]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(written) => written,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        };
        consume(pieces, written);
    }
}

/// Writes every queued piece, front first, removing what has been written. Cancel-safe:
/// progress is recorded after each write, so an interrupted call can simply be repeated.
pub async fn write_pieces<W: AsyncWrite + Unpin>(writer: &mut W, pieces: &mut VecDeque<Bytes>) -> std::io::Result<()> {
    loop {
        drop_empty_front(pieces);
        if pieces.is_empty() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = pieces.iter().take(MAX_SLICES).map(|p| IoSlice::new(p)).collect();
        let written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        consume(pieces, written);
    }
}

fn drop_empty_front(pieces: &mut VecDeque<Bytes>) {
    while pieces.front().is_some_and(Bytes::is_empty) {
        pieces.pop_front();
    }
}

/// Removes the first `written` bytes from `pieces`.
fn consume(pieces: &mut VecDeque<Bytes>, mut written: usize) {
    while written > 0 {
        let Some(front) = pieces.front_mut() else { break };
        let step = written.min(front.len());
        front.advance(step);
        written -= step;
        if front.is_empty() {
            pieces.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_everything_in_order_even_through_a_tiny_pipe() {
        let (mut client, mut server) = tokio::io::duplex(7); // forces many partial writes
        let mut pieces: VecDeque<Bytes> =
            [&b"head"[..], b"", &[9u8; 100][..], b"tail"].iter().map(|p| Bytes::copy_from_slice(p)).collect();
        let expected: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut server, &mut got).await.unwrap();
            got
        });
        write_pieces(&mut client, &mut pieces).await.unwrap();
        drop(client);
        assert!(pieces.is_empty());
        assert_eq!(reader.await.unwrap(), expected);
    }

    #[tokio::test]
    async fn try_write_takes_what_the_socket_has_room_for_and_keeps_the_rest_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        // Far more than loopback's socket buffers hold while nobody reads.
        let pieces_in: Vec<Bytes> = (0..64u8).map(|i| Bytes::from(vec![i; 256 * 1024])).collect();
        let expected: Vec<u8> = pieces_in.iter().flat_map(|p| p.to_vec()).collect();
        let mut pieces: VecDeque<Bytes> = pieces_in.into();
        try_write_pieces(&server, &mut pieces).unwrap();
        let left: usize = pieces.iter().map(Bytes::len).sum();
        assert!(left > 0 && left < expected.len(), "wrote part without blocking ({left} bytes left)");
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut got).await.unwrap();
            got
        });
        write_pieces(&mut server, &mut pieces).await.unwrap();
        drop(server);
        assert_eq!(reader.await.unwrap(), expected);
    }
}
