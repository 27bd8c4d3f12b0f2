//! A TLS terminator for `localhost` with a fresh self-signed certificate, forwarding the
//! plaintext to a sink: what an `rtmps://` ingest looks like from the relay's side.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

pub struct TlsTerminator {
    pub port: u16,
    /// PEM file holding the certificate, to trust it as a CA.
    pub ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsTerminator {
    pub async fn start(upstream: SocketAddr) -> Self {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("self-signed certificate");
        let dir = tempfile::tempdir().expect("temp dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, certified.cert.pem()).expect("write ca.pem");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(forward(acceptor.clone(), socket, upstream));
            }
        });
        Self { port, ca_file, _dir: dir }
    }
}

async fn forward(acceptor: TlsAcceptor, socket: TcpStream, upstream: SocketAddr) {
    let Ok(mut tls) = acceptor.accept(socket).await else {
        return;
    };
    let Ok(mut plain) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
}
