//! The queue of bytes a session wants written to its peer.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::chunk::ChunkSink;

/// Payload slices up to this size are copied next to their headers; larger
/// ones are queued as reference-counted slices so media is never copied.
const INLINE_LIMIT: usize = 512;

/// Bytes waiting to be written. Small pieces (chunk headers, control and
/// command messages) are coalesced into one buffer, large payload slices are
/// queued as they are, so a write is one `write_vectored`/loop over a few
/// `Bytes` rather than many tiny writes.
#[derive(Debug, Default)]
pub(crate) struct OutputQueue {
    pending: BytesMut,
    ready: Vec<Bytes>,
    len: usize,
}

impl OutputQueue {
    /// Queues a copy of `data`.
    pub(crate) fn push_slice(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
        self.len += data.len();
    }

    /// Queues `data` without copying it (unless it is small).
    pub(crate) fn push_bytes(&mut self, data: Bytes) {
        if data.len() <= INLINE_LIMIT {
            self.push_slice(&data);
            return;
        }
        self.flush_pending();
        self.len += data.len();
        self.ready.push(data);
    }

    /// Everything queued, in order.
    pub(crate) fn take(&mut self) -> Vec<Bytes> {
        self.flush_pending();
        self.len = 0;
        std::mem::take(&mut self.ready)
    }

    /// Number of bytes queued; lets callers detect slow consumers.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn flush_pending(&mut self) {
        if !self.pending.is_empty() {
            self.ready.push(self.pending.split().freeze());
        }
    }
}

impl ChunkSink for OutputQueue {
    fn put_header(&mut self, header: &[u8]) {
        self.push_slice(header);
    }

    fn put_payload(&mut self, payload: &Bytes, range: Range<usize>) {
        if range.len() <= INLINE_LIMIT {
            self.push_slice(&payload[range]);
        } else {
            self.push_bytes(payload.slice(range));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_pieces_coalesce_and_large_ones_are_shared() {
        let mut q = OutputQueue::default();
        q.push_slice(b"ab");
        q.push_slice(b"cd");
        let big = Bytes::from(vec![7u8; 4096]);
        q.put_payload(&big, 0..4096);
        q.push_slice(b"ef");
        assert_eq!(q.len(), 4096 + 6);
        let out = q.take();
        assert_eq!(out.len(), 3);
        assert_eq!(&out[0][..], b"abcd");
        assert_eq!(out[1].as_ptr(), big.as_ptr(), "payload was not copied");
        assert_eq!(&out[2][..], b"ef");
        assert_eq!(q.len(), 0);
        assert!(q.take().is_empty());
    }
}
