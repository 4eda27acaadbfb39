//! wss echo server: tokio-tungstenite 0.30 (defaults) over tokio-rustls, with rustls 0.23 on the
//! `ring` crypto provider, the same TLS library and provider as ringws. One tokio current_thread
//! runtime, TCP_NODELAY, TLS 1.3 and 1.2, ALPN `http/1.1`, stateless session tickets (rustls's
//! ring `Ticketer`, so resumption keeps no per-session server memory); every text and binary
//! message sent back; tungstenite answers pings and closes itself.
//!
//! Usage: rustls-echo 127.0.0.1:9443 CERT_CHAIN.pem KEY.pem

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use rustls::crypto::ring::{default_provider, Ticketer};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::{Error, Message};

async fn echo(acceptor: TlsAcceptor, stream: TcpStream) -> Result<(), Error> {
    let tls = acceptor.accept(stream).await?;
    let mut ws = tokio_tungstenite::accept_async(tls).await?;
    while let Some(message) = ws.next().await {
        match message? {
            message @ (Message::Text(_) | Message::Binary(_)) => ws.send(message).await?,
            Message::Close(_) => {
                // tungstenite has queued the close reply; flush it.
                ws.flush().await?;
                return Ok(());
            }
            _ => {}
        }
    }
    Ok(())
}

fn server_config(cert_path: &str, key_path: &str) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("cannot read certificates from {cert_path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{cert_path} holds no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| format!("cannot read a private key from {key_path}: {e}"))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{cert_path} / {key_path}: {e}"))?;
    config.ticketer = Ticketer::new().map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(cert), Some(key)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: rustls-echo LISTEN_ADDR CERT_CHAIN.pem KEY.pem");
        std::process::exit(2);
    };
    let config = server_config(&cert, &key).unwrap_or_else(|e| {
        eprintln!("rustls-echo: {e}");
        std::process::exit(2);
    });
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
        println!("rustls-echo listening on wss://{addr}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // EMFILE and the like: keep serving the connections already open.
                tokio::task::yield_now().await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // Errors here are the peer's doing (reset, bad handshake): nothing to report.
                let _ = echo(acceptor, stream).await;
            });
        }
    });
}
