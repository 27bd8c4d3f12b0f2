//! Writing a session's output to a socket: all queued pieces in as few system calls as the
//! socket allows (`writev`), without joining them into one buffer (the large pieces are
//! shared media payloads).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Pieces passed to one `writev` at most (well under every platform's IOV_MAX).
const MAX_SLICES: usize = 64;

/// Writes every queued piece, front first, removing what has been written. Cancel-safe:
/// progress is recorded after each write, so an interrupted call can simply be repeated.
pub async fn write_pieces<W: AsyncWrite + Unpin>(writer: &mut W, pieces: &mut VecDeque<Bytes>) -> std::io::Result<()> {
    loop {
        while pieces.front().is_some_and(Bytes::is_empty) {
            pieces.pop_front();
        }
        if pieces.is_empty() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = pieces.iter().take(MAX_SLICES).map(|p| IoSlice::new(p)).collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
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
}
