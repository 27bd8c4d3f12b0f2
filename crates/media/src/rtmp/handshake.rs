//! The RTMP "simple" handshake (protocol version 3), both sides.
//!
//! ```text
//! client                        server
//!   C0 (version) + C1 (1536) -->
//!                           <-- S0 + S1 (1536) + S2 (echo of C1)
//!   C2 (echo of S1)          -->
//! ```
//!
//! The 1536-byte packets are `time (4) | zero/version (4) | random (1528)`.
//! We accept C1 whatever its version field says: ffmpeg and Flash fill it in
//! to signal the digest ("complex") handshake, but for publishing they accept
//! a simple reply and validate nothing. Echo contents are not verified either
//! (the simple handshake gives them no meaning).
//!
//! The types are pure: feed bytes with `handle_input`, take bytes to send
//! with `take_output`, and once done the bytes that followed the handshake in
//! the same read come back as `leftover`.

use bytes::{BufMut, Bytes, BytesMut};
use rand::RngCore;

use super::RtmpError;

/// The only protocol version we speak (plain RTMP, no encryption).
pub const RTMP_VERSION: u8 = 3;

/// Size of C1/C2/S1/S2.
pub const PACKET_SIZE: usize = 1536;

/// Result of feeding bytes into a handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeStatus {
    /// More bytes are needed.
    InProgress,
    /// The handshake is complete; `leftover` are bytes that followed it in
    /// the input and belong to the chunk stream.
    Done {
        /// Input beyond the handshake.
        leftover: Bytes,
    },
}

/// Server side: waits for C0+C1, answers S0+S1+S2, then waits for C2.
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
    buf: BytesMut,
    output: Option<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitC0C1,
    AwaitC2,
    Done,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    /// A server handshake waiting for C0+C1.
    pub fn new() -> Self {
        Self { state: ServerState::AwaitC0C1, buf: BytesMut::with_capacity(1 + PACKET_SIZE), output: None }
    }

    /// Consumes handshake bytes from the client.
    pub fn handle_input(&mut self, mut input: &[u8]) -> Result<HandshakeStatus, RtmpError> {
        loop {
            match self.state {
                ServerState::AwaitC0C1 => {
                    let complete = fill(&mut self.buf, &mut input, 1 + PACKET_SIZE);
                    check_version(&self.buf)?;
                    if !complete {
                        return Ok(HandshakeStatus::InProgress);
                    }
                    let mut out = BytesMut::with_capacity(1 + 2 * PACKET_SIZE);
                    out.put_u8(RTMP_VERSION);
                    put_random_packet(&mut out);
                    out.put_slice(&self.buf[1..]); // S2 echoes C1.
                    self.output = Some(out.freeze());
                    self.buf.clear();
                    self.state = ServerState::AwaitC2;
                }
                ServerState::AwaitC2 => {
                    if !fill(&mut self.buf, &mut input, PACKET_SIZE) {
                        return Ok(HandshakeStatus::InProgress);
                    }
                    self.buf = BytesMut::new();
                    self.state = ServerState::Done;
                }
                ServerState::Done => {
                    return Ok(HandshakeStatus::Done { leftover: Bytes::copy_from_slice(input) });
                }
            }
        }
    }

    /// Bytes to send to the client, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        self.output.take()
    }
}

/// Client side: sends C0+C1 immediately, waits for S0+S1+S2, answers C2.
#[derive(Debug)]
pub struct ClientHandshake {
    done: bool,
    buf: BytesMut,
    output: Option<Bytes>,
}

impl Default for ClientHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientHandshake {
    /// A client handshake with C0+C1 ready in its output.
    pub fn new() -> Self {
        let mut out = BytesMut::with_capacity(1 + PACKET_SIZE);
        out.put_u8(RTMP_VERSION);
        put_random_packet(&mut out);
        Self { done: false, buf: BytesMut::with_capacity(1 + 2 * PACKET_SIZE), output: Some(out.freeze()) }
    }

    /// Consumes handshake bytes from the server.
    pub fn handle_input(&mut self, mut input: &[u8]) -> Result<HandshakeStatus, RtmpError> {
        if !self.done {
            let complete = fill(&mut self.buf, &mut input, 1 + 2 * PACKET_SIZE);
            check_version(&self.buf)?;
            if !complete {
                return Ok(HandshakeStatus::InProgress);
            }
            // C2 echoes S1; S2 (our C1 echoed) carries nothing we need.
            let s1 = Bytes::copy_from_slice(&self.buf[1..1 + PACKET_SIZE]);
            self.output = Some(s1);
            self.buf = BytesMut::new();
            self.done = true;
        }
        Ok(HandshakeStatus::Done { leftover: Bytes::copy_from_slice(input) })
    }

    /// Bytes to send to the server, if any.
    pub fn take_output(&mut self) -> Option<Bytes> {
        self.output.take()
    }
}

/// Moves bytes from `input` into `buf` until it holds `want` bytes. Returns
/// whether it does; never buffers more than `want`.
fn fill(buf: &mut BytesMut, input: &mut &[u8], want: usize) -> bool {
    let n = (want - buf.len()).min(input.len());
    buf.extend_from_slice(&input[..n]);
    *input = &input[n..];
    buf.len() == want
}

/// Fails fast on a wrong C0/S0 instead of waiting for 1536 more bytes.
fn check_version(buf: &[u8]) -> Result<(), RtmpError> {
    match buf.first() {
        Some(&version) if version != RTMP_VERSION => Err(RtmpError::UnsupportedVersion(version)),
        _ => Ok(()),
    }
}

/// Appends a C1/S1: zero time, zero version (selects the simple handshake
/// on the peer), random filler.
fn put_random_packet(out: &mut BytesMut) {
    out.put_u32(0);
    out.put_u32(0);
    let mut random = [0u8; PACKET_SIZE - 8];
    rand::rng().fill_bytes(&mut random);
    out.put_slice(&random);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_and_server_complete_against_each_other() {
        let mut client = ClientHandshake::new();
        let mut server = ServerHandshake::new();

        let c0c1 = client.take_output().unwrap();
        assert_eq!(c0c1.len(), 1 + PACKET_SIZE);
        assert_eq!(server.handle_input(&c0c1).unwrap(), HandshakeStatus::InProgress);

        let s0s1s2 = server.take_output().unwrap();
        assert_eq!(s0s1s2.len(), 1 + 2 * PACKET_SIZE);
        assert_eq!(s0s1s2[0], RTMP_VERSION);
        assert_eq!(&s0s1s2[1 + PACKET_SIZE..], &c0c1[1..], "S2 echoes C1");

        // Feed the client one byte at a time, then a connect command right behind.
        for byte in &s0s1s2[..s0s1s2.len() - 1] {
            assert_eq!(client.handle_input(&[*byte]).unwrap(), HandshakeStatus::InProgress);
        }
        let status = client.handle_input(&s0s1s2[s0s1s2.len() - 1..]).unwrap();
        assert_eq!(status, HandshakeStatus::Done { leftover: Bytes::new() });
        let c2 = client.take_output().unwrap();
        assert_eq!(&c2[..], &s0s1s2[1..1 + PACKET_SIZE], "C2 echoes S1");

        let mut tail = c2.to_vec();
        tail.extend_from_slice(b"chunk data");
        assert_eq!(
            server.handle_input(&tail).unwrap(),
            HandshakeStatus::Done { leftover: Bytes::from_static(b"chunk data") }
        );
    }

    #[test]
    fn c1_with_a_nonzero_version_field_is_accepted() {
        let mut server = ServerHandshake::new();
        let mut c0c1 = vec![RTMP_VERSION, 0, 0, 0, 0, 9, 0, 124, 2];
        c0c1.resize(1 + PACKET_SIZE, 7);
        assert_eq!(server.handle_input(&c0c1).unwrap(), HandshakeStatus::InProgress);
        assert!(server.take_output().is_some());
    }

    #[test]
    fn wrong_versions_fail_on_the_first_byte() {
        let mut server = ServerHandshake::new();
        assert!(matches!(server.handle_input(&[6]), Err(RtmpError::UnsupportedVersion(6))));
        let mut client = ClientHandshake::new();
        let err = client.handle_input(&[0x16, 3, 1]).unwrap_err();
        assert_eq!(err.to_string(), "handshake: unsupported version 0x16");
    }
}
