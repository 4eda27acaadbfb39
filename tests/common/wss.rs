//! A wss client for tests that hold a connection open across server events (a reload, a
//! publish): rustls's client over a blocking socket, then the upgrade written by hand and the
//! frames of [`super::client_frame`] and [`super::read_frame`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub type WssStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A client configuration trusting the CAs in `ca` (PEM), offering ALPN `http/1.1`, with the
/// client certificate `identity` (certificate, key) when given.
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Connects to `addr` as `localhost`, finishes the TLS handshake (bounded by a 5 s read
/// timeout) and returns the stream, or the handshake's error.
pub fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<WssStream, std::io::Error> {
    let tcp = super::connect(addr);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// [`tls_connect`], then the WebSocket upgrade for `path`; panics unless it is answered 101.
pub fn wss_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>, path: &str) -> WssStream {
    let mut stream = tls_connect(addr, config).expect("TLS handshake");
    stream
        .write_all(super::upgrade_request(path).as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("the upgrade answer");
        assert_eq!(n, 1, "closed inside the answer: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// Sends one masked message and reads the server's next frame: (opcode, payload).
pub fn round_trip(stream: &mut WssStream, opcode: u8, payload: &[u8]) -> (u8, Vec<u8>) {
    stream
        .write_all(&super::client_frame(true, opcode, payload))
        .unwrap();
    let (fin, op, got) = super::read_frame(stream);
    assert!(fin);
    (op, got)
}

/// The DER of the certificate the server sent first (its leaf).
pub fn peer_leaf(stream: &WssStream) -> Vec<u8> {
    stream.conn.peer_certificates().unwrap()[0].to_vec()
}
