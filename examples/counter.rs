//! A custom app on the ringws library: answers every text message on `/count` with its length.
//!
//! Run: `cargo run --example counter -- 127.0.0.1:9002`, then connect to ws://127.0.0.1:9002/count.

use ringws::app::{App, ConnId, CoreApp, Ctx};
use ringws::config::Config;
use ringws::protocol::MessageKind;
use ringws::server::Server;

/// Shared by all cores: decides which paths upgrade and makes the per-core part.
pub struct Counter;
/// One per core, called only on its reactor thread.
pub struct CounterCore;

impl App for Counter {
    type Core = CounterCore;
    fn name(&self) -> &'static str {
        "counter"
    }
    fn serves_path(&self, path: &str) -> bool {
        path == "/count"
    }
    fn new_core(&self, _core: usize) -> CounterCore {
        CounterCore
    }
}

impl CoreApp for CounterCore {
    fn on_message(&mut self, ctx: &mut dyn Ctx, conn: ConnId, kind: MessageKind, payload: &[u8]) {
        if kind == MessageKind::Text {
            ctx.send(
                conn,
                MessageKind::Text,
                payload.len().to_string().as_bytes(),
            );
        }
    }
}

fn main() {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let config = Config {
        listen: listen.parse().expect("an address like 127.0.0.1:9002"),
        cores: 1,
        ..Config::default()
    };
    let server = Server::start(&config, Counter).expect("start");
    println!("listening on ws://{}/count", server.local_addr());
    let seconds: u64 = std::env::var("COUNTER_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    std::thread::sleep(std::time::Duration::from_secs(seconds));
    server.stop();
    server.join().expect("clean stop");
}
