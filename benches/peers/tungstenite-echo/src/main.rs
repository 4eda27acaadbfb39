//! Echo server on tokio-tungstenite 0.30 with its default configuration: one tokio current_thread
//! runtime, TCP_NODELAY, every text and binary message sent back; tungstenite answers pings and
//! closes itself.
//!
//! Usage: tungstenite-echo 127.0.0.1:9003

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::{Error, Message};

async fn echo(stream: TcpStream) -> Result<(), Error> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
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

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9003".to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let listener = TcpListener::bind(&addr)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
        println!("tungstenite-echo listening on ws://{addr}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // EMFILE and the like: keep serving the connections already open.
                tokio::task::yield_now().await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                // Errors here are the peer's doing (reset, protocol error): nothing to report.
                let _ = echo(stream).await;
            });
        }
    });
}
