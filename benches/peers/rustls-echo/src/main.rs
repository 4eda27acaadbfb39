//! wss echo server: fastwebsockets 0.10 configured as benches/peers/fastwebsockets-echo (hyper 1
//! performs the upgrade, `FragmentCollector`, auto-pong and auto-close, one tokio current_thread
//! runtime, TCP_NODELAY), over tokio-rustls with rustls 0.23 on the `ring` crypto provider, the
//! same TLS library and provider as ringws: TLS 1.3 and 1.2, ALPN `http/1.1`, stateless session
//! tickets (rustls's ring `Ticketer`, so resumption keeps no per-session server memory).
//!
//! fastwebsockets rather than tokio-tungstenite: tungstenite's default 128 KiB read buffer per
//! connection (133 KB of idle memory per plain ws:// connection here) would hide the TLS cost.
//!
//! Usage: rustls-echo 127.0.0.1:9443 CERT_CHAIN.pem KEY.pem

use std::sync::Arc;

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use rustls::crypto::ring::{default_provider, Ticketer};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

async fn echo(upgrade: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(upgrade.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

async fn upgrade_request(
    mut request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgrade) = upgrade::upgrade(&mut request)?;
    tokio::spawn(async move {
        // Errors here are the peer's doing (reset, protocol error): nothing to report.
        let _ = tokio::task::unconstrained(echo(upgrade)).await;
    });
    Ok(response)
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
        let listener = TcpListener::bind(&addr).await.unwrap_or_else(|e| {
            eprintln!("rustls-echo: cannot listen on {addr}: {e}");
            std::process::exit(2);
        });
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
                // A failed handshake is the client's doing: nothing to report.
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ = http1::Builder::new()
                    .serve_connection(io, service_fn(upgrade_request))
                    .with_upgrades()
                    .await;
            });
        }
    });
}
