//! Every setting of `ringws serve`, its default and its bound.
//! INTERFACE FIXED for fields; parsing (TOML + flags) lives in this file too.

use std::net::SocketAddr;
use std::time::Duration;

/// Which built-in application `serve` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    Echo,
}

/// The effective server configuration (defaults < TOML file < flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// `listen`: address of the WebSocket listener. Default 127.0.0.1:9001.
    pub listen: SocketAddr,
    /// `app`: the application. Default echo.
    pub app: AppKind,
    /// `cores`: number of reactor threads (one per core, pinned). Default: all available.
    pub cores: usize,
    /// `max_connections`: global cap, split evenly across cores. Default 1,000,000.
    pub max_connections: usize,
    /// `max_frame_size`: bytes. Default 16 MiB.
    pub max_frame_size: u64,
    /// `max_message_size`: bytes. Default 16 MiB.
    pub max_message_size: u64,
    /// `max_handshake_size`: bytes of request head. Default 8 KiB.
    pub max_handshake_size: usize,
    /// `handshake_timeout`: default 10 s.
    pub handshake_timeout: Duration,
    /// `close_timeout`: default 5 s.
    pub close_timeout: Duration,
    /// `backlog`: listen(2) backlog. Default 4096.
    pub backlog: i32,
    /// `ring_entries`: io_uring submission queue size per core. Default 4096.
    pub ring_entries: u32,
    /// `recv_buffer_size`: the per-core receive buffer in bytes. Default 64 KiB.
    pub recv_buffer_size: usize,
    /// `log`: tracing filter, e.g. `info`, `ringws=debug`. Default info.
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9001".parse().unwrap(),
            app: AppKind::Echo,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            max_connections: 1_000_000,
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_handshake_size: 8 << 10,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            backlog: 4096,
            ring_entries: 4096,
            recv_buffer_size: 64 << 10,
            log: "info".into(),
        }
    }
}
