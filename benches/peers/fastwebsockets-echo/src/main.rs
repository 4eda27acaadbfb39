//! Echo server on fastwebsockets 0.10, configured as its own docs and load tests use it: hyper 1
//! performs the upgrade, `FragmentCollector` joins fragments and validates text, auto-pong and
//! auto-close are on (the defaults), one tokio current_thread runtime, TCP_NODELAY.
//!
//! Usage: fastwebsockets-echo 127.0.0.1:9002

use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use tokio::net::TcpListener;

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

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
        println!("fastwebsockets-echo listening on ws://{addr}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // EMFILE and the like: keep serving the connections already open.
                tokio::task::yield_now().await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = http1::Builder::new()
                    .serve_connection(io, service_fn(upgrade_request))
                    .with_upgrades()
                    .await;
            });
        }
    });
}
