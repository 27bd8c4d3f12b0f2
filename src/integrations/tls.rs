//! Transport to a destination: TCP for `rtmp://`, TLS over TCP for `rtmps://`.
//!
//! TLS uses rustls with the `ring` provider (pure Rust and assembly: no C++ toolchain to
//! build) and trusts the Mozilla roots bundled by `webpki-roots`, plus any CA certificates
//! from `destination_ca_file` (a private relay, a test). The certificate must match the URL
//! host, sent as SNI.
//!
//! [`RelayStream`] also makes sure TLS records actually leave: rustls buffers ciphertext
//! that the socket could not take yet, and [`RtmpClient`](crate::rtmp::client_io::RtmpClient)
//! only ever writes, never flushes. The stream therefore flushes before and after each
//! write and whenever it is read from (the destination task always has a read pending), so
//! no tag sits in a buffer until the next one comes along.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, RootCertStore};

use crate::rtmp::url::RtmpUrl;
use crate::settings::ConfigError;

/// Setting that names the extra CA certificates, for error messages.
const CA_FILE_SETTING: &str = "destination_ca_file";

/// Most bytes read from `destination_ca_file`: a bundle of a few hundred certificates.
const MAX_CA_FILE_SIZE: u64 = 1024 * 1024;

/// Opens connections to destinations. Cheap to clone (the TLS configuration is shared).
#[derive(Clone)]
pub struct Connector {
    tls: TlsConnector,
}

impl Connector {
    /// A connector trusting the bundled web roots and, if given, every certificate in the
    /// PEM file `extra_ca_file`. Errors name the setting.
    pub fn new(extra_ca_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        if let Some(path) = extra_ca_file {
            for cert in read_ca_file(path)? {
                roots.add(cert).map_err(|e| {
                    ConfigError::new(CA_FILE_SETTING, format!("{}: unusable CA certificate: {e}", path.display()))
                })?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError::new("destinations", format!("TLS set-up failed: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { tls: TlsConnector::from(Arc::new(config)) })
    }

    /// Connects to `url`'s host and port, over TLS for `rtmps://`. `send_buffer` sets
    /// SO_SNDBUF (`None`: the kernel's autotuning). Every byte written is added to `sent`.
    /// The caller bounds the time this takes.
    pub async fn connect(
        &self,
        url: &RtmpUrl,
        send_buffer: Option<u32>,
        sent: Arc<AtomicU64>,
    ) -> io::Result<RelayStream> {
        let tcp = dial(&url.host, url.port, send_buffer).await?;
        // Tags are whole messages written at once; Nagle would only delay them.
        let _ = tcp.set_nodelay(true);
        let inner = if url.tls {
            let name = server_name(&url.host)?;
            Inner::Tls(Box::new(self.tls.connect(name, tcp).await?))
        } else {
            Inner::Plain(tcp)
        };
        Ok(RelayStream { inner, sent })
    }
}

/// Connects to the first address of `host` that answers, like `TcpStream::connect`, but
/// with the send buffer set before connecting (the window scale is fixed at the handshake).
async fn dial(host: &str, port: u16, send_buffer: Option<u32>) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(size) = send_buffer {
            socket.set_send_buffer_size(size)?;
        }
        match socket.connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host name has no address")))
}

/// The TLS server name (SNI, certificate check) for a URL host: a DNS name or an IP.
pub fn server_name(host: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "host is not a valid TLS server name"))
}

/// Every certificate in a PEM file; an error if there is none.
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let error = |message: String| ConfigError::new(CA_FILE_SETTING, message);
    let size = std::fs::metadata(path).map_err(|e| error(format!("{}: {e}", path.display())))?.len();
    if size > MAX_CA_FILE_SIZE {
        return Err(error(format!("{}: larger than {MAX_CA_FILE_SIZE} bytes", path.display())));
    }
    let pem = std::fs::read(path).map_err(|e| error(format!("{}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(format!("{}: invalid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error(format!("{}: no CERTIFICATE found", path.display())));
    }
    Ok(certs)
}

/// A connection to a destination, plain or TLS, counting the bytes written.
pub struct RelayStream {
    inner: Inner,
    sent: Arc<AtomicU64>,
}

enum Inner {
    Plain(TcpStream),
    // Boxed: a TLS session is several kilobytes, a TcpStream a few words.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Inner {
    fn pinned(&mut self) -> Pin<&mut dyn AsyncReadWrite> {
        match self {
            Inner::Plain(tcp) => Pin::new(tcp),
            Inner::Tls(tls) => Pin::new(tls.as_mut()),
        }
    }
}

/// Both halves, so [`Inner::pinned`] can hand out either transport.
trait AsyncReadWrite: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncReadWrite for T {}

impl AsyncRead for RelayStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // Push out ciphertext left over from the last write; a Pending flush has registered
        // the waker, so we come back here when the socket drains.
        if let Poll::Ready(Err(e)) = self.inner.pinned().poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
        self.inner.pinned().poll_read(cx, buf)
    }
}

impl RelayStream {
    /// Flushing first means a peer that stops reading blocks us here, instead of rustls
    /// queueing ever more ciphertext; flushing after pushes this write's ciphertext out.
    fn write_through(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut dyn AsyncReadWrite>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        ready!(self.inner.pinned().poll_flush(cx))?;
        let n = ready!(write(self.inner.pinned(), cx))?;
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        if let Poll::Ready(Err(e)) = self.inner.pinned().poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for RelayStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write_through(cx, |inner, cx| inner.poll_write(cx, buf))
    }

    /// A message's chunk headers and payload slices leave in one system call (without this,
    /// tokio's default sends the first slice only: two `sendto` per chunk).
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.write_through(cx, |inner, cx| inner.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Plain(tcp) => tcp.is_write_vectored(),
            Inner::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.pinned().poll_flush(cx)
    }

    /// For TLS, sends close_notify before closing the TCP write half.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.pinned().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A relay writes a message's chunk headers and payload slices with one `writev`; the
    /// default `write_vectored` sent only the first slice per call (two `sendto` a chunk).
    #[tokio::test]
    async fn a_vectored_write_sends_every_slice_in_one_call() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (_peer, _) = listener.accept().await.unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let mut relay = RelayStream { inner: Inner::Plain(tcp), sent: sent.clone() };
        assert!(relay.is_write_vectored());
        let (header, payload, continuation) = ([0x05u8; 12], [7u8; 4096], [0xc5u8; 1]);
        let slices = [io::IoSlice::new(&header), io::IoSlice::new(&payload), io::IoSlice::new(&continuation)];
        let written = tokio::io::AsyncWriteExt::write_vectored(&mut relay, &slices).await.unwrap();
        assert_eq!(written, 12 + 4096 + 1);
        assert_eq!(sent.load(Ordering::Relaxed), written as u64);
    }

    #[test]
    fn no_extra_ca_file_is_fine() {
        assert!(Connector::new(None).is_ok());
    }

    #[test]
    fn ca_file_errors_name_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        for path in [missing, empty] {
            let err = Connector::new(Some(&path)).err().unwrap();
            assert_eq!(err.setting, CA_FILE_SETTING);
        }
    }

    #[test]
    fn server_names() {
        assert!(server_name("a.rtmp.youtube.com").is_ok());
        assert!(server_name("127.0.0.1").is_ok());
        assert!(server_name("::1").is_ok());
        assert!(server_name("bad host").is_err());
    }
}
