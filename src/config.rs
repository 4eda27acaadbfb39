//! Every setting of `ringws serve`, its default and its bound.
//! INTERFACE FIXED for fields; parsing (TOML + flags) lives in this file too.

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum as _;

use crate::policy::auth::JWT_SECRET_ENV;
use crate::policy::subprotocol::{self, MAX_SUBPROTOCOLS};
use crate::policy::{Cidr, OriginPattern, PolicySettings};

pub use crate::policy::AuthMode;

/// Which built-in application `serve` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// Topic fan-out: subscribe with ?topic= or JSON control messages, publish over HTTP.
    Pubsub,
    /// Sends every message back.
    Echo,
}

/// The effective server configuration (defaults < TOML file < flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// `listen`: address of the WebSocket listener. Default 127.0.0.1:9001.
    pub listen: SocketAddr,
    /// `admin_listen`: address of the admin listener (`/metrics`, `/healthz`). Default
    /// 127.0.0.1:9090; "off" disables it.
    pub admin_listen: Option<SocketAddr>,
    /// `app`: the application. Default pubsub.
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
    /// `ping_interval`: a ping is sent after this long without a frame from the peer. Default 30 s.
    pub ping_interval: Duration,
    /// `pong_timeout`: after a ping, the peer has this long to send any frame. Default 10 s.
    pub pong_timeout: Duration,
    /// `idle_timeout`: close connections without an application message for this long.
    /// Default off (`None`).
    pub idle_timeout: Option<Duration>,
    /// `write_stall_timeout`: close a connection whose outbound queue has not drained for this
    /// long. Default 30 s.
    pub write_stall_timeout: Duration,
    /// `drain_timeout`: on SIGTERM/SIGINT, how long to wait for close replies. Default 10 s.
    pub drain_timeout: Duration,
    /// `max_outbound_buffer`: bytes queued for one connection before it is closed as a slow
    /// consumer (1008). Default 1 MiB.
    pub max_outbound_buffer: u64,
    /// `message_rate`: messages per second one connection may send (token bucket); 0 = off.
    pub message_rate: u32,
    /// `message_burst`: bucket size of the per-connection message rate limit. Default 100.
    pub message_burst: u32,
    /// `backlog`: listen(2) backlog. Default 4096.
    pub backlog: i32,
    /// `defer_accept`: TCP_DEFER_ACCEPT on the listeners: a connection reaches ringws with its
    /// first bytes (the upgrade request) instead of on the bare ACK, one wake-up fewer per
    /// handshake. A client silent this long is accepted anyway and meets `handshake_timeout`.
    /// Default 1 s; `None` (off) accepts on the ACK.
    pub defer_accept: Option<Duration>,
    /// `ring_entries`: io_uring submission queue size per core. Default 4096.
    pub ring_entries: u32,
    /// `recv_buffer_size`: the per-core receive buffer in bytes. Default 64 KiB.
    pub recv_buffer_size: usize,
    /// `log`: tracing filter, e.g. `info`, `ringws=debug`. Default info.
    pub log: String,
    /// `allowed_origins`: origins (and `*.domain` wildcards) whose pages may connect. Default
    /// empty: any origin.
    pub allowed_origins: Vec<OriginPattern>,
    /// `allow_missing_origin`: accept requests without `Origin` (non-browser clients). Default
    /// true.
    pub allow_missing_origin: bool,
    /// `subprotocols`: the subprotocols the server speaks, in preference order. Default none.
    pub subprotocols: Vec<String>,
    /// `require_subprotocol`: refuse clients that offer none of `subprotocols`. Default false.
    pub require_subprotocol: bool,
    /// `auth`: none, token or jwt. Default none.
    pub auth: AuthMode,
    /// `auth_tokens_file`: accepted tokens, one per line or `name:token`. Default none.
    pub auth_tokens_file: Option<PathBuf>,
    /// `jwt_secret_file`: the HS256 secret; without it, `RINGWS_JWT_SECRET`. Default none.
    pub jwt_secret_file: Option<PathBuf>,
    /// `jwt_audience`: the `aud` a JWT must name, when set. Default none.
    pub jwt_audience: Option<String>,
    /// `jwt_issuer`: the `iss` a JWT must have, when set. Default none.
    pub jwt_issuer: Option<String>,
    /// `handshake_rate_per_ip`: handshakes per second per client address; 0 = off. Default 0.
    pub handshake_rate_per_ip: u32,
    /// `handshake_burst_per_ip`: bucket size of the handshake rate limit. Default 20.
    pub handshake_burst_per_ip: u32,
    /// `handshake_rate_table_size`: client addresses tracked per core. Default 4096.
    pub handshake_rate_table_size: usize,
    /// `trusted_proxies`: peers whose X-Forwarded-For / Forwarded is believed. Default none.
    pub trusted_proxies: Vec<Cidr>,
    /// `debug_handshakes`: keep recent refusals for `GET /debug/handshakes` on the admin
    /// listener. Default off.
    pub debug_handshakes: bool,
    /// `publish_tokens_file`: bearer tokens accepted by `POST /publish` (pubsub), one per
    /// line. Default none: no token required.
    pub publish_tokens_file: Option<PathBuf>,
    /// `allow_client_publish`: let WebSocket clients publish (pubsub). Default false.
    pub allow_client_publish: bool,
    /// `max_subscriptions_per_connection`: topics one connection may subscribe to (pubsub).
    /// Default 64.
    pub max_subscriptions_per_connection: usize,
    /// `max_topic_length`: longest topic name in bytes (pubsub). Default 128.
    pub max_topic_length: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:9001".parse().unwrap(),
            admin_listen: Some("127.0.0.1:9090".parse().unwrap()),
            app: AppKind::Pubsub,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_connections: 1_000_000,
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
            max_handshake_size: 8 << 10,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(10),
            idle_timeout: None,
            write_stall_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            max_outbound_buffer: 1 << 20,
            message_rate: 0,
            message_burst: 100,
            backlog: 4096,
            defer_accept: Some(Duration::from_secs(1)),
            ring_entries: 4096,
            recv_buffer_size: 64 << 10,
            log: "info".into(),
            allowed_origins: Vec::new(),
            allow_missing_origin: true,
            subprotocols: Vec::new(),
            require_subprotocol: false,
            auth: AuthMode::None,
            auth_tokens_file: None,
            jwt_secret_file: None,
            jwt_audience: None,
            jwt_issuer: None,
            handshake_rate_per_ip: 0,
            handshake_burst_per_ip: 20,
            handshake_rate_table_size: crate::policy::rate_limit::DEFAULT_TABLE_SIZE,
            trusted_proxies: Vec::new(),
            debug_handshakes: false,
            publish_tokens_file: None,
            allow_client_publish: false,
            max_subscriptions_per_connection: 64,
            max_topic_length: 128,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading: defaults < TOML file (`--config`) < command-line flags.
// ---------------------------------------------------------------------------------------------

/// Every key of the config file, in the order `--print-config` writes them. Each has a flag of the
/// same name in kebab-case (`max_message_size` ↔ `--max-message-size`).
pub const KEYS: [&str; 41] = [
    "listen",
    "admin_listen",
    "app",
    "cores",
    "max_connections",
    "max_frame_size",
    "max_message_size",
    "max_handshake_size",
    "handshake_timeout",
    "close_timeout",
    "ping_interval",
    "pong_timeout",
    "idle_timeout",
    "write_stall_timeout",
    "drain_timeout",
    "max_outbound_buffer",
    "message_rate",
    "message_burst",
    "backlog",
    "defer_accept",
    "ring_entries",
    "recv_buffer_size",
    "log",
    "allowed_origins",
    "allow_missing_origin",
    "subprotocols",
    "require_subprotocol",
    "auth",
    "auth_tokens_file",
    "jwt_secret_file",
    "jwt_audience",
    "jwt_issuer",
    "handshake_rate_per_ip",
    "handshake_burst_per_ip",
    "handshake_rate_table_size",
    "trusted_proxies",
    "debug_handshakes",
    "publish_tokens_file",
    "allow_client_publish",
    "max_subscriptions_per_connection",
    "max_topic_length",
];

/// Keys whose value is a list: the flag is repeated, the file has an array (or one string).
pub const LIST_KEYS: [&str; 3] = ["allowed_origins", "subprotocols", "trusted_proxies"];

/// Bounds of `max_frame_size` and `max_message_size`. Below 125 bytes a legal control frame
/// (ping, pong, close) would be refused; above 1 TiB is a typo, not a plan.
pub const FRAME_SIZE_BYTES: RangeInclusive<u64> = 125..=1 << 40;
/// Bounds of `max_handshake_size`: a real upgrade request needs a few hundred bytes; a head
/// larger than 1 MiB is an attack.
pub const HANDSHAKE_SIZE_BYTES: RangeInclusive<u64> = 1 << 10..=1 << 20;
/// Bounds of `recv_buffer_size` (one buffer per core, shared by all its connections).
pub const RECV_BUFFER_SIZE_BYTES: RangeInclusive<u64> = 4 << 10..=16 << 20;
/// Bounds of `ring_entries`; the value must also be a power of two (io_uring requires it).
pub const RING_ENTRIES: RangeInclusive<u64> = 64..=32768;
/// Bounds of `backlog`: the kernel caps it at `net.core.somaxconn` anyway.
pub const BACKLOG: RangeInclusive<u64> = 1..=65535;
/// Bounds of `max_outbound_buffer`: below 4 KiB a single echo could trip it; above 1 GiB one
/// slow reader could take the machine.
pub const OUTBOUND_BUFFER_BYTES: RangeInclusive<u64> = 4 << 10..=1 << 30;
/// Bounds of `message_rate` (0 disables the limit).
pub const MESSAGE_RATE: RangeInclusive<u64> = 0..=1_000_000;
/// Bounds of `message_burst`.
pub const MESSAGE_BURST: RangeInclusive<u64> = 1..=1_000_000;
/// Bounds of `handshake_rate_per_ip` (0 disables the limit).
pub const HANDSHAKE_RATE: RangeInclusive<u64> = 0..=1_000_000;
/// Bounds of `handshake_burst_per_ip`.
pub const HANDSHAKE_BURST: RangeInclusive<u64> = 1..=1_000_000;
/// Bounds of `handshake_rate_table_size`: about 64 bytes each, so at most 64 MiB per core.
pub const HANDSHAKE_RATE_TABLE_SIZE: RangeInclusive<u64> = 16..=1 << 20;
/// Bounds of `max_subscriptions_per_connection`.
pub const SUBSCRIPTIONS_PER_CONNECTION: RangeInclusive<u64> = 1..=65536;
/// Bounds of `max_topic_length`: a topic travels in URLs and request heads (8 KiB at most).
pub const TOPIC_LENGTH: RangeInclusive<u64> = 1..=1024;
/// Most entries of `allowed_origins` and of `trusted_proxies`.
pub const MAX_LIST_LEN: usize = 1024;
/// Longest timeout of any kind; timers stay far from any overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest size text [`parse_size`] looks at; anything longer is refused unread.
pub const MAX_SIZE_TEXT_LEN: usize = 32;

/// Number of CPUs this process may run on (the default and the upper bound of `cores`).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// One layer of settings as a person wrote them, before parsing: every key optional.
///
/// The same struct is the `serve` flags (clap) and the config file (TOML), so every key has a
/// flag by construction. Help text states each default; a unit test keeps it in step with
/// [`Config::default`].
#[derive(Clone, Debug, Default, clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[command(next_help_heading = "Settings (each is also a key of the --config file)")]
pub struct Settings {
    /// Address and port the WebSocket listener binds to. [default: 127.0.0.1:9001]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<RawValue>,
    /// Address of the admin listener serving /metrics and /healthz; "off" disables it.
    /// [default: 127.0.0.1:9090]
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<RawValue>,
    /// Built-in application to serve: pubsub (topic fan-out, see docs/pubsub.md) or echo
    /// (sends every message back). [default: pubsub]
    #[arg(long, value_name = "APP")]
    pub app: Option<RawValue>,
    /// Reactor threads, each pinned to its own core; at most the CPUs available to ringws.
    /// [default: all available]
    #[arg(long, value_name = "N")]
    pub cores: Option<RawValue>,
    /// Most connections open at once, split evenly across cores. [default: 1000000]
    #[arg(long, value_name = "N")]
    pub max_connections: Option<RawValue>,
    /// Largest frame payload accepted, from 125 bytes to 1TiB. [default: 16MiB]
    #[arg(long, value_name = "SIZE")]
    pub max_frame_size: Option<RawValue>,
    /// Largest message accepted after joining its fragments, from 125 bytes to 1TiB.
    /// [default: 16MiB]
    #[arg(long, value_name = "SIZE")]
    pub max_message_size: Option<RawValue>,
    /// Largest HTTP upgrade request head accepted, from 1KiB to 1MiB. [default: 8KiB]
    #[arg(long, value_name = "SIZE")]
    pub max_handshake_size: Option<RawValue>,
    /// Time a new connection has to finish the HTTP upgrade. [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub handshake_timeout: Option<RawValue>,
    /// Time to wait for the peer's close frame before dropping the connection. [default: 5s]
    #[arg(long, value_name = "DURATION")]
    pub close_timeout: Option<RawValue>,
    /// Send a ping after this long without any frame from the peer. [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub ping_interval: Option<RawValue>,
    /// After a ping, time the peer has to send any frame before it is closed. [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub pong_timeout: Option<RawValue>,
    /// Close connections that send no application message for this long; "off" disables.
    /// [default: off]
    #[arg(long, value_name = "DURATION")]
    pub idle_timeout: Option<RawValue>,
    /// Close a connection whose outbound queue has not drained for this long. [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub write_stall_timeout: Option<RawValue>,
    /// On SIGTERM/SIGINT, time to wait for clients' close replies before exiting. [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<RawValue>,
    /// Bytes queued for one slow reader before it is closed with 1008, from 4KiB to 1GiB.
    /// [default: 1MiB]
    #[arg(long, value_name = "SIZE")]
    pub max_outbound_buffer: Option<RawValue>,
    /// Messages per second one connection may send before it is closed with 1008; 0 disables.
    /// [default: 0]
    #[arg(long, value_name = "N")]
    pub message_rate: Option<RawValue>,
    /// Burst allowance of the per-connection message rate limit, from 1 to 1000000.
    /// [default: 100]
    #[arg(long, value_name = "N")]
    pub message_burst: Option<RawValue>,
    /// Queue of not-yet-accepted connections passed to listen(2), from 1 to 65535.
    /// [default: 4096]
    #[arg(long, value_name = "N")]
    pub backlog: Option<RawValue>,
    /// Hand a connection to ringws with its first bytes, not on the bare TCP ACK (one wake-up
    /// fewer per handshake); a client silent this long is accepted anyway. "off" to accept on
    /// the ACK. [default: 1s]
    #[arg(long, value_name = "DURATION")]
    pub defer_accept: Option<RawValue>,
    /// io_uring submission queue entries per core; a power of two from 64 to 32768.
    /// [default: 4096]
    #[arg(long, value_name = "N")]
    pub ring_entries: Option<RawValue>,
    /// Each core's receive buffer, shared by all its connections; from 4KiB to 16MiB.
    /// [default: 64KiB]
    #[arg(long, value_name = "SIZE")]
    pub recv_buffer_size: Option<RawValue>,
    /// Log filter in tracing's EnvFilter syntax, e.g. warn or ringws=debug; RUST_LOG, when set,
    /// wins. [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log: Option<RawValue>,
    /// An origin whose pages may connect: https://app.example.com, http://localhost:8080, or
    /// *.example.com for every subdomain (not example.com itself); repeat the flag for more.
    /// Empty allows any origin. [default: []]
    #[arg(long, value_name = "ORIGIN")]
    #[serde(default, deserialize_with = "list_or_one")]
    pub allowed_origins: Option<Vec<RawValue>>,
    /// Accept upgrades without an Origin header (non-browser clients send none); browsers
    /// always send one. [default: true]
    #[arg(long, value_name = "BOOL")]
    pub allow_missing_origin: Option<RawValue>,
    /// A subprotocol the server speaks, in preference order; repeat the flag for more. The
    /// first one the client also offers is chosen. [default: []]
    #[arg(long, value_name = "NAME")]
    #[serde(default, deserialize_with = "list_or_one")]
    pub subprotocols: Option<Vec<RawValue>>,
    /// Refuse (400) clients that offer none of the subprotocols, instead of accepting them
    /// without one. [default: false]
    #[arg(long, value_name = "BOOL")]
    pub require_subprotocol: Option<RawValue>,
    /// Authentication before the upgrade: none, token (auth_tokens_file) or jwt (HS256, secret
    /// from jwt_secret_file or RINGWS_JWT_SECRET), as "Authorization: Bearer" or ?token=.
    /// [default: none]
    #[arg(long, value_name = "MODE")]
    pub auth: Option<RawValue>,
    /// File of accepted tokens for auth = token: one per line, or name:token to give the
    /// token a name the app sees; "off" for none. [default: off]
    #[arg(long, value_name = "FILE")]
    pub auth_tokens_file: Option<RawValue>,
    /// File holding the HS256 secret (at least 32 bytes) for auth = jwt; "off" reads the
    /// environment variable RINGWS_JWT_SECRET instead. [default: off]
    #[arg(long, value_name = "FILE")]
    pub jwt_secret_file: Option<RawValue>,
    /// The audience ("aud") a JWT must name; "off" skips the check. [default: off]
    #[arg(long, value_name = "AUD")]
    pub jwt_audience: Option<RawValue>,
    /// The issuer ("iss") a JWT must have; "off" skips the check. [default: off]
    #[arg(long, value_name = "ISS")]
    pub jwt_issuer: Option<RawValue>,
    /// Handshakes per second one client address may make before getting 429 (IPv6: per
    /// /64; each core enforces its share); 0 disables. [default: 0]
    #[arg(long, value_name = "N")]
    pub handshake_rate_per_ip: Option<RawValue>,
    /// Burst allowance of the handshake rate limit, from 1 to 1000000. [default: 20]
    #[arg(long, value_name = "N")]
    pub handshake_burst_per_ip: Option<RawValue>,
    /// Client addresses each core tracks for the handshake rate limit, from 16 to 1048576;
    /// the least recently seen are forgotten first. [default: 4096]
    #[arg(long, value_name = "N")]
    pub handshake_rate_table_size: Option<RawValue>,
    /// A proxy address or CIDR block (10.0.0.0/8, ::1) whose X-Forwarded-For or Forwarded
    /// header names the client; repeat the flag for more. [default: []]
    #[arg(long, value_name = "CIDR")]
    #[serde(default, deserialize_with = "list_or_one")]
    pub trusted_proxies: Option<Vec<RawValue>>,
    /// Keep each core's last refused handshakes and serve them as JSON at
    /// /debug/handshakes on the admin listener: on or off. [default: off]
    #[arg(long, value_name = "on|off")]
    pub debug_handshakes: Option<RawValue>,
    /// pubsub: file of bearer tokens accepted by POST /publish on the admin listener, one per
    /// line (# starts a comment); "off" requires no token. [default: off]
    #[arg(long, value_name = "FILE")]
    pub publish_tokens_file: Option<RawValue>,
    /// pubsub: let WebSocket clients publish with {"op":"publish",...}. [default: false]
    #[arg(long, value_name = "BOOL")]
    pub allow_client_publish: Option<RawValue>,
    /// pubsub: topics one connection may subscribe to, from 1 to 65536. [default: 64]
    #[arg(long, value_name = "N")]
    pub max_subscriptions_per_connection: Option<RawValue>,
    /// pubsub: longest topic name in bytes, from 1 to 1024; names use A-Z a-z 0-9 . _ : / -
    /// [default: 128]
    #[arg(long, value_name = "N")]
    pub max_topic_length: Option<RawValue>,
}

/// A list key of the config file: an array, or one value standing for a list of one.
fn list_or_one<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<RawValue>>, D::Error> {
    let raw = <RawValue as serde::Deserialize>::deserialize(deserializer)?;
    Ok(Some(match raw.value {
        toml::Value::Array(items) => items
            .into_iter()
            .map(|value| RawValue {
                value,
                span: raw.span.clone(),
            })
            .collect(),
        _ => vec![raw],
    }))
}

/// A setting's value as written: flag text, or any TOML value with where it sits in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct RawValue {
    value: toml::Value,
    /// Byte range in the config file; `None` for flags.
    span: Option<Range<usize>>,
}

impl From<String> for RawValue {
    fn from(text: String) -> Self {
        RawValue {
            value: toml::Value::String(text),
            span: None,
        }
    }
}

impl From<&str> for RawValue {
    fn from(text: &str) -> Self {
        RawValue::from(text.to_owned())
    }
}

impl<'de> serde::Deserialize<'de> for RawValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = toml::Spanned::<toml::Value>::deserialize(deserializer)?;
        let span = spanned.span();
        Ok(RawValue {
            value: spanned.into_inner(),
            span: Some(span),
        })
    }
}

impl fmt::Display for RawValue {
    /// As TOML: strings quoted, numbers bare.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            toml::Value::String(text) => write!(f, "{text:?}"),
            other => write!(f, "{other}"),
        }
    }
}

/// Where a setting came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    /// A `serve` flag.
    Flag { key: &'static str },
    /// A key of the config file.
    File {
        path: PathBuf,
        line: Option<usize>,
        key: &'static str,
    },
    /// A field of a [`Config`] built in code (see [`Config::validate`]).
    Field { key: &'static str },
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Setting::Flag { key } => write!(f, "--{}", key.replace('_', "-")),
            Setting::File {
                path,
                line: Some(line),
                key,
            } => {
                write!(f, "config file {}: line {line}: {key}", path.display())
            }
            Setting::File {
                path,
                line: None,
                key,
            } => {
                write!(f, "config file {}: {key}", path.display())
            }
            Setting::Field { key } => write!(f, "config {key}"),
        }
    }
}

/// Why a configuration was refused. Display is the message for the person running ringws.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {} is not valid TOML: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error(
        "config file {}: unknown key {key:?}{}{} (every key is listed by `ringws serve --help`)",
        path.display(),
        line.map(|n| format!(" on line {n}")).unwrap_or_default(),
        suggestion.map(|s| format!("; did you mean {s:?}?")).unwrap_or_default(),
    )]
    UnknownKey {
        path: PathBuf,
        key: String,
        line: Option<usize>,
        suggestion: Option<&'static str>,
    },
    #[error("{setting}: {problem}")]
    Invalid {
        setting: Setting,
        problem: ValueError,
    },
    /// A setting that only works together with another one that is missing.
    #[error("{key} = {value} needs {needs}")]
    Requires {
        key: &'static str,
        value: String,
        needs: String,
    },
}

/// What is wrong with one value. `value` is shown as written (strings quoted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{value} is not a size (examples: 16MiB, 64KiB, 1000000)")]
    NotASize { value: String },
    #[error("{value} is not a duration (examples: 10s, 500ms, 1m 30s)")]
    NotADuration { value: String },
    #[error("{value} is not a whole number")]
    NotANumber { value: String },
    #[error("{value} is not a socket address (examples: 127.0.0.1:9001, 0.0.0.0:80, [::1]:9001)")]
    NotAnAddress { value: String },
    #[error("{value} is not an app (available: {available})")]
    NotAnApp { value: String, available: String },
    #[error("{value} is not a log filter: {reason} (examples: info, ringws=debug, warn,ringws::reactor=trace)")]
    NotALogFilter { value: String, reason: String },
    #[error("{value} is out of range: expected {expected}")]
    OutOfRange { value: String, expected: String },
    #[error("{value} is not an allowed origin: {reason}")]
    NotAnOrigin { value: String, reason: String },
    #[error("{value} is not a subprotocol name: {reason}")]
    NotASubprotocol { value: String, reason: String },
    #[error("{value} is not a trusted proxy: {reason}")]
    NotACidr { value: String, reason: String },
    #[error("{value} is not true or false")]
    NotABool { value: String },
    #[error("{value} is not on or off")]
    NotOnOff { value: String },
    #[error("{value} is not an auth mode (available: none, token, jwt)")]
    NotAnAuthMode { value: String },
    #[error("{value} is listed twice")]
    Duplicate { value: String },
    #[error("more than {max} entries")]
    TooMany { max: usize },
    #[error("{value} is empty: write \"off\" to leave it unset")]
    Empty { value: String },
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: String,
    },
}

/// Why [`parse_size`] refused a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("not a size (examples: 16MiB, 64KiB, 1000000)")]
    Malformed,
    #[error("size larger than 2^64 bytes")]
    TooLarge,
}

/// Why [`parse_duration`] refused a text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a duration: {0} (examples: 10s, 500ms, 1m 30s)")]
pub struct DurationError(String);

const SIZE_UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

/// Parses a byte size: `512`, `8KiB`, `16MiB`, `1GiB`, `1TiB` (binary), `1KB`, `1MB`, `1GB`,
/// `1TB` (decimal), `1_000_000`. Units ignore case and may follow a space; no fractions.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    if text.len() > MAX_SIZE_TEXT_LEN {
        return Err(SizeError::Malformed);
    }
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number = parse_digits(number).ok_or(SizeError::Malformed)?;
    let unit = unit.trim_start();
    let multiplier = if unit.is_empty() {
        1
    } else {
        SIZE_UNITS
            .iter()
            .find(|(name, _)| unit.eq_ignore_ascii_case(name))
            .map(|&(_, multiplier)| multiplier)
            .ok_or(SizeError::Malformed)?
    };
    number.checked_mul(multiplier).ok_or(SizeError::TooLarge)
}

/// Decimal digits with optional `_` separators between them (as TOML allows).
fn parse_digits(text: &str) -> Option<u64> {
    let well_formed = !text.is_empty()
        && !text.starts_with('_')
        && !text.ends_with('_')
        && !text.contains("__")
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return None;
    }
    text.replace('_', "").parse().ok()
}

/// Renders a byte size the way [`parse_size`] reads it, in the largest exact unit:
/// `16MiB`, `8KiB`, `1MB`, `1000001`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 8] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("TB", 1_000_000_000_000),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
    ];
    if bytes == 0 {
        return "0".into();
    }
    UNITS
        .iter()
        .find(|&&(_, unit)| bytes % unit == 0)
        .map(|&(name, unit)| format!("{}{name}", bytes / unit))
        .unwrap_or_else(|| bytes.to_string())
}

/// Parses a duration such as `10s`, `500ms`, `1m 30s`, `2h` (humantime syntax).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    humantime::parse_duration(text.trim()).map_err(|err| DurationError(err.to_string()))
}

/// Renders a duration the way [`parse_duration`] reads it: `10s`, `500ms`, `1m 30s`.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// Builds the effective configuration: defaults, then `config_file` (if any), then `flags`.
/// Every value is checked against its bound; errors name the flag or the file and key.
pub fn load(config_file: Option<&Path>, flags: &Settings) -> Result<Config, ConfigError> {
    let mut config = Config::default();
    if let Some(path) = config_file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = settings_from_toml(path, &text)?;
        apply(&mut config, &file, &Origin::File { path, text: &text })?;
    }
    apply(&mut config, flags, &Origin::Flags)?;
    check_together(&config, std::env::var_os(JWT_SECRET_ENV).is_some())?;
    Ok(config)
}

/// The settings that need each other: checked once every layer is applied.
fn check_together(config: &Config, env_secret_set: bool) -> Result<(), ConfigError> {
    let requires = |key, value: &str, needs: String| ConfigError::Requires {
        key,
        value: value.to_owned(),
        needs,
    };
    match config.auth {
        AuthMode::Token if config.auth_tokens_file.is_none() => {
            return Err(requires(
                "auth",
                "\"token\"",
                "auth_tokens_file (--auth-tokens-file): a file of accepted tokens, one per line"
                    .into(),
            ))
        }
        AuthMode::Jwt if config.jwt_secret_file.is_none() && !env_secret_set => {
            return Err(requires(
                "auth",
                "\"jwt\"",
                format!(
                    "a secret: set jwt_secret_file (--jwt-secret-file) or the environment \
                     variable {JWT_SECRET_ENV}"
                ),
            ))
        }
        _ => {}
    }
    if config.require_subprotocol && config.subprotocols.is_empty() {
        return Err(requires(
            "require_subprotocol",
            "true",
            "subprotocols (--subprotocols): the subprotocols the server speaks".into(),
        ));
    }
    Ok(())
}

/// Parses the text of a config file (named `path` in errors) into one layer of settings.
pub fn settings_from_toml(path: &Path, text: &str) -> Result<Settings, ConfigError> {
    toml::from_str(text).map_err(|err| {
        // serde's deny_unknown_fields message: "unknown field `name`, expected one of ...".
        let unknown = err
            .message()
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key.to_owned());
        match unknown {
            Some(key) => ConfigError::UnknownKey {
                path: path.to_owned(),
                suggestion: closest_key(&key),
                line: err.span().map(|span| line_of(text, span.start)),
                key,
            },
            None => ConfigError::Syntax {
                path: path.to_owned(),
                message: err.to_string(),
            },
        }
    })
}

enum Origin<'a> {
    Flags,
    File { path: &'a Path, text: &'a str },
}

impl Origin<'_> {
    fn setting(&self, key: &'static str, raw: &RawValue) -> Setting {
        match self {
            Origin::Flags => Setting::Flag { key },
            Origin::File { path, text } => Setting::File {
                path: path.to_path_buf(),
                line: raw.span.as_ref().map(|span| line_of(text, span.start)),
                key,
            },
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The known key nearest to a misspelt one, if it is close enough to be a typo.
fn closest_key(key: &str) -> Option<&'static str> {
    let wanted = key.to_ascii_lowercase().replace('-', "_");
    KEYS.iter()
        .map(|&known| (edit_distance(&wanted, known), known))
        .filter(|&(distance, _)| distance <= 3)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, known)| known)
}

/// Levenshtein distance, for short keys only.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

fn apply(config: &mut Config, settings: &Settings, origin: &Origin<'_>) -> Result<(), ConfigError> {
    let field = |key: &'static str, raw: &RawValue, problem: ValueError| ConfigError::Invalid {
        setting: origin.setting(key, raw),
        problem,
    };
    macro_rules! set {
        ($key:ident, $parse:expr) => {
            if let Some(raw) = &settings.$key {
                config.$key =
                    $parse(raw).map_err(|problem| field(stringify!($key), raw, problem))?;
            }
        };
    }
    set!(listen, parse_listen);
    set!(admin_listen, parse_optional_listen);
    set!(app, parse_app);
    set!(cores, parse_cores);
    set!(max_connections, parse_max_connections);
    set!(max_frame_size, |raw| parse_size_in(raw, FRAME_SIZE_BYTES));
    set!(max_message_size, |raw| parse_size_in(raw, FRAME_SIZE_BYTES));
    set!(max_handshake_size, |raw| {
        parse_size_in(raw, HANDSHAKE_SIZE_BYTES).map(to_usize)
    });
    set!(handshake_timeout, parse_timeout);
    set!(close_timeout, parse_timeout);
    set!(ping_interval, parse_timeout);
    set!(pong_timeout, parse_timeout);
    set!(idle_timeout, parse_optional_timeout);
    set!(write_stall_timeout, parse_timeout);
    set!(drain_timeout, parse_timeout);
    set!(max_outbound_buffer, |raw| parse_size_in(
        raw,
        OUTBOUND_BUFFER_BYTES
    ));
    set!(message_rate, |raw| parse_count_in(raw, MESSAGE_RATE));
    set!(message_burst, |raw| parse_count_in(raw, MESSAGE_BURST));
    set!(backlog, parse_backlog);
    set!(defer_accept, parse_optional_timeout);
    set!(ring_entries, parse_ring_entries);
    set!(recv_buffer_size, |raw| {
        parse_size_in(raw, RECV_BUFFER_SIZE_BYTES).map(to_usize)
    });
    set!(log, parse_log);
    macro_rules! set_list {
        ($key:ident, $parse:expr) => {
            if let Some(raws) = &settings.$key {
                let mut parsed = Vec::with_capacity(raws.len());
                for raw in raws {
                    let fail = |problem| field(stringify!($key), raw, problem);
                    if parsed.len() == MAX_LIST_LEN {
                        return Err(fail(ValueError::TooMany { max: MAX_LIST_LEN }));
                    }
                    let item = $parse(raw).map_err(fail)?;
                    if parsed.contains(&item) {
                        return Err(fail(ValueError::Duplicate {
                            value: raw.to_string(),
                        }));
                    }
                    parsed.push(item);
                }
                config.$key = parsed;
            }
        };
    }
    set_list!(allowed_origins, parse_origin);
    set!(allow_missing_origin, parse_bool);
    set_list!(subprotocols, |raw: &RawValue| {
        if let Some(raws) = &settings.subprotocols {
            if raws.len() > MAX_SUBPROTOCOLS {
                return Err(ValueError::TooMany {
                    max: MAX_SUBPROTOCOLS,
                });
            }
        }
        parse_subprotocol(raw)
    });
    set!(require_subprotocol, parse_bool);
    set!(auth, parse_auth);
    set!(auth_tokens_file, parse_optional_path);
    set!(jwt_secret_file, parse_optional_path);
    set!(jwt_audience, parse_optional_text);
    set!(jwt_issuer, parse_optional_text);
    set!(handshake_rate_per_ip, |raw| parse_count_in(
        raw,
        HANDSHAKE_RATE
    ));
    set!(handshake_burst_per_ip, |raw| parse_count_in(
        raw,
        HANDSHAKE_BURST
    ));
    set!(handshake_rate_table_size, |raw| {
        parse_count_in(raw, HANDSHAKE_RATE_TABLE_SIZE).map(|n| n as usize)
    });
    set_list!(trusted_proxies, parse_cidr);
    set!(debug_handshakes, parse_on_off);
    set!(publish_tokens_file, parse_optional_path);
    set!(allow_client_publish, parse_bool);
    set!(max_subscriptions_per_connection, |raw| {
        parse_count_in(raw, SUBSCRIPTIONS_PER_CONNECTION).map(|n| n as usize)
    });
    set!(max_topic_length, |raw| {
        parse_count_in(raw, TOPIC_LENGTH).map(|n| n as usize)
    });
    Ok(())
}

fn parse_origin(raw: &RawValue) -> Result<OriginPattern, ValueError> {
    let text = text(raw, "an origin such as \"https://app.example.com\"")?;
    text.parse().map_err(
        |err: crate::policy::origin::OriginPatternError| ValueError::NotAnOrigin {
            value: raw.to_string(),
            reason: err.to_string(),
        },
    )
}

fn parse_subprotocol(raw: &RawValue) -> Result<String, ValueError> {
    let name = text(raw, "a subprotocol name such as \"chat.v1\"")?.trim();
    subprotocol::check_name(name).map_err(|err| ValueError::NotASubprotocol {
        value: raw.to_string(),
        reason: err.to_string(),
    })?;
    Ok(name.to_owned())
}

fn parse_cidr(raw: &RawValue) -> Result<Cidr, ValueError> {
    let text = text(raw, "an address or CIDR block such as \"10.0.0.0/8\"")?;
    text.parse().map_err(
        |err: crate::policy::trusted_proxies::CidrError| ValueError::NotACidr {
            value: raw.to_string(),
            reason: err.to_string(),
        },
    )
}

fn parse_bool(raw: &RawValue) -> Result<bool, ValueError> {
    match &raw.value {
        toml::Value::Boolean(b) => Ok(*b),
        toml::Value::String(text) => match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ValueError::NotABool {
                value: raw.to_string(),
            }),
        },
        other => Err(ValueError::WrongType {
            expected: "true or false",
            found: describe(other),
        }),
    }
}

fn parse_on_off(raw: &RawValue) -> Result<bool, ValueError> {
    match &raw.value {
        toml::Value::Boolean(b) => Ok(*b),
        toml::Value::String(text) => match text.trim() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(ValueError::NotOnOff {
                value: raw.to_string(),
            }),
        },
        other => Err(ValueError::WrongType {
            expected: "\"on\" or \"off\"",
            found: describe(other),
        }),
    }
}

fn parse_auth(raw: &RawValue) -> Result<AuthMode, ValueError> {
    let text = text(raw, "an auth mode such as \"token\"")?.trim();
    AuthMode::ALL
        .into_iter()
        .find(|mode| mode.name().eq_ignore_ascii_case(text))
        .ok_or_else(|| ValueError::NotAnAuthMode {
            value: raw.to_string(),
        })
}

/// Text that may be left unset with "off".
fn parse_optional_text(raw: &RawValue) -> Result<Option<String>, ValueError> {
    let value = text(raw, "a string, or \"off\"")?;
    match value.trim() {
        "off" => Ok(None),
        "" => Err(ValueError::Empty {
            value: raw.to_string(),
        }),
        value => Ok(Some(value.to_owned())),
    }
}

fn parse_optional_path(raw: &RawValue) -> Result<Option<PathBuf>, ValueError> {
    parse_optional_text(raw).map(|text| text.map(PathBuf::from))
}

/// Sizes bounded by at most 1 MiB or 16 MiB always fit.
fn to_usize(bytes: u64) -> usize {
    usize::try_from(bytes).expect("size bounded well below usize::MAX")
}

fn describe(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => format!("{text:?}"),
        toml::Value::Table(_) => "a table".into(),
        toml::Value::Array(_) => "an array".into(),
        other => format!("a {} ({other})", other.type_str()),
    }
}

fn text<'a>(raw: &'a RawValue, expected: &'static str) -> Result<&'a str, ValueError> {
    match &raw.value {
        toml::Value::String(text) => Ok(text),
        other => Err(ValueError::WrongType {
            expected,
            found: describe(other),
        }),
    }
}

fn whole_number(raw: &RawValue) -> Result<u64, ValueError> {
    match &raw.value {
        toml::Value::Integer(n) => u64::try_from(*n).map_err(|_| ValueError::OutOfRange {
            value: raw.to_string(),
            expected: "a number of at least 0".into(),
        }),
        toml::Value::String(text) => {
            parse_digits(text.trim()).ok_or_else(|| ValueError::NotANumber {
                value: raw.to_string(),
            })
        }
        other => Err(ValueError::WrongType {
            expected: "a whole number",
            found: describe(other),
        }),
    }
}

fn check_range(
    raw: &RawValue,
    value: u64,
    range: RangeInclusive<u64>,
    render: fn(u64) -> String,
) -> Result<u64, ValueError> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ValueError::OutOfRange {
            value: raw.to_string(),
            expected: format!(
                "between {} and {}",
                render(*range.start()),
                render(*range.end())
            ),
        })
    }
}

/// An address that may be switched off with "off".
fn parse_optional_listen(raw: &RawValue) -> Result<Option<SocketAddr>, ValueError> {
    match &raw.value {
        toml::Value::String(text) if text.trim() == "off" => Ok(None),
        _ => parse_listen(raw).map(Some),
    }
}

fn parse_listen(raw: &RawValue) -> Result<SocketAddr, ValueError> {
    let text = text(raw, "an address such as \"127.0.0.1:9001\"")?;
    text.trim().parse().map_err(|_| ValueError::NotAnAddress {
        value: raw.to_string(),
    })
}

fn app_name(app: AppKind) -> String {
    app.to_possible_value()
        .map(|value| value.get_name().to_owned())
        .unwrap_or_default()
}

fn parse_app(raw: &RawValue) -> Result<AppKind, ValueError> {
    let text = text(raw, "an app name such as \"echo\"")?;
    AppKind::from_str(text.trim(), true).map_err(|_| ValueError::NotAnApp {
        value: raw.to_string(),
        available: AppKind::value_variants()
            .iter()
            .map(|&app| app_name(app))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

fn parse_cores(raw: &RawValue) -> Result<usize, ValueError> {
    let available = available_cores();
    let cores = whole_number(raw)?;
    if (1..=available as u64).contains(&cores) {
        Ok(to_usize(cores))
    } else {
        Err(ValueError::OutOfRange {
            value: raw.to_string(),
            expected: format!("between 1 and {available}, the number of CPUs available to ringws"),
        })
    }
}

fn parse_max_connections(raw: &RawValue) -> Result<usize, ValueError> {
    let n = whole_number(raw)?;
    match usize::try_from(n) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ValueError::OutOfRange {
            value: raw.to_string(),
            expected: "at least 1".into(),
        }),
    }
}

fn parse_size_in(raw: &RawValue, range: RangeInclusive<u64>) -> Result<u64, ValueError> {
    let bytes = match &raw.value {
        toml::Value::Integer(n) => u64::try_from(*n).ok(),
        toml::Value::String(text) => match parse_size(text) {
            Ok(bytes) => Some(bytes),
            Err(SizeError::TooLarge) => None,
            Err(SizeError::Malformed) => {
                return Err(ValueError::NotASize {
                    value: raw.to_string(),
                })
            }
        },
        other => {
            return Err(ValueError::WrongType {
                expected: "a size such as \"16MiB\" or a number of bytes",
                found: describe(other),
            })
        }
    };
    match bytes {
        Some(bytes) => check_range(raw, bytes, range, format_size),
        None => Err(ValueError::OutOfRange {
            value: raw.to_string(),
            expected: format!(
                "between {} and {}",
                format_size(*range.start()),
                format_size(*range.end())
            ),
        }),
    }
}

fn parse_timeout(raw: &RawValue) -> Result<Duration, ValueError> {
    let text = text(raw, "a duration with a unit such as \"10s\"")?;
    let duration = parse_duration(text).map_err(|_| ValueError::NotADuration {
        value: raw.to_string(),
    })?;
    if duration.is_zero() || duration > MAX_TIMEOUT {
        return Err(ValueError::OutOfRange {
            value: raw.to_string(),
            expected: format!("more than 0 and at most {}", format_duration(MAX_TIMEOUT)),
        });
    }
    Ok(duration)
}

/// A timeout that may be switched off with "off" (or "0s").
fn parse_optional_timeout(raw: &RawValue) -> Result<Option<Duration>, ValueError> {
    match &raw.value {
        toml::Value::String(text) if text.trim() == "off" || text.trim() == "0s" => Ok(None),
        _ => parse_timeout(raw).map(Some),
    }
}

fn parse_count_in(raw: &RawValue, range: RangeInclusive<u64>) -> Result<u32, ValueError> {
    let n = check_range(raw, whole_number(raw)?, range, |n| n.to_string())?;
    Ok(u32::try_from(n).expect("counts bounded well below u32::MAX"))
}

fn parse_backlog(raw: &RawValue) -> Result<i32, ValueError> {
    let backlog = check_range(raw, whole_number(raw)?, BACKLOG, |n| n.to_string())?;
    Ok(i32::try_from(backlog).expect("backlog bounded by 65535"))
}

fn parse_ring_entries(raw: &RawValue) -> Result<u32, ValueError> {
    let entries = whole_number(raw)?;
    if !RING_ENTRIES.contains(&entries) || !entries.is_power_of_two() {
        return Err(ValueError::OutOfRange {
            value: raw.to_string(),
            expected: format!(
                "a power of two between {} and {}",
                RING_ENTRIES.start(),
                RING_ENTRIES.end()
            ),
        });
    }
    Ok(u32::try_from(entries).expect("ring entries bounded by 32768"))
}

fn parse_log(raw: &RawValue) -> Result<String, ValueError> {
    let filter = text(raw, "a log filter such as \"info\"")?;
    tracing_subscriber::EnvFilter::try_new(filter).map_err(|err| ValueError::NotALogFilter {
        value: raw.to_string(),
        reason: err.to_string(),
    })?;
    Ok(filter.to_owned())
}

impl Config {
    /// Each key with its value as written in TOML, in [`KEYS`] order.
    fn values(&self) -> [(&'static str, toml::Value); KEYS.len()] {
        use toml::Value::{Integer, String};
        let count = |n: usize| Integer(i64::try_from(n).unwrap_or(i64::MAX));
        [
            ("listen", String(self.listen.to_string())),
            (
                "admin_listen",
                String(
                    self.admin_listen
                        .map_or_else(|| "off".to_string(), |a| a.to_string()),
                ),
            ),
            ("app", String(app_name(self.app))),
            ("cores", count(self.cores)),
            ("max_connections", count(self.max_connections)),
            ("max_frame_size", String(format_size(self.max_frame_size))),
            (
                "max_message_size",
                String(format_size(self.max_message_size)),
            ),
            (
                "max_handshake_size",
                String(format_size(self.max_handshake_size as u64)),
            ),
            (
                "handshake_timeout",
                String(format_duration(self.handshake_timeout)),
            ),
            ("close_timeout", String(format_duration(self.close_timeout))),
            ("ping_interval", String(format_duration(self.ping_interval))),
            ("pong_timeout", String(format_duration(self.pong_timeout))),
            (
                "idle_timeout",
                String(
                    self.idle_timeout
                        .map_or_else(|| "off".to_string(), format_duration),
                ),
            ),
            (
                "write_stall_timeout",
                String(format_duration(self.write_stall_timeout)),
            ),
            ("drain_timeout", String(format_duration(self.drain_timeout))),
            (
                "max_outbound_buffer",
                String(format_size(self.max_outbound_buffer)),
            ),
            ("message_rate", Integer(i64::from(self.message_rate))),
            ("message_burst", Integer(i64::from(self.message_burst))),
            ("backlog", Integer(i64::from(self.backlog))),
            (
                "defer_accept",
                String(
                    self.defer_accept
                        .map_or_else(|| "off".to_string(), format_duration),
                ),
            ),
            ("ring_entries", Integer(i64::from(self.ring_entries))),
            (
                "recv_buffer_size",
                String(format_size(self.recv_buffer_size as u64)),
            ),
            ("log", String(self.log.clone())),
            ("allowed_origins", strings(&self.allowed_origins)),
            (
                "allow_missing_origin",
                toml::Value::Boolean(self.allow_missing_origin),
            ),
            ("subprotocols", strings(&self.subprotocols)),
            (
                "require_subprotocol",
                toml::Value::Boolean(self.require_subprotocol),
            ),
            ("auth", String(self.auth.name().into())),
            (
                "auth_tokens_file",
                String(optional_path(self.auth_tokens_file.as_deref())),
            ),
            (
                "jwt_secret_file",
                String(optional_path(self.jwt_secret_file.as_deref())),
            ),
            (
                "jwt_audience",
                String(self.jwt_audience.clone().unwrap_or_else(|| "off".into())),
            ),
            (
                "jwt_issuer",
                String(self.jwt_issuer.clone().unwrap_or_else(|| "off".into())),
            ),
            (
                "handshake_rate_per_ip",
                Integer(i64::from(self.handshake_rate_per_ip)),
            ),
            (
                "handshake_burst_per_ip",
                Integer(i64::from(self.handshake_burst_per_ip)),
            ),
            (
                "handshake_rate_table_size",
                count(self.handshake_rate_table_size),
            ),
            ("trusted_proxies", strings(&self.trusted_proxies)),
            (
                "debug_handshakes",
                String(if self.debug_handshakes { "on" } else { "off" }.into()),
            ),
            (
                "publish_tokens_file",
                String(optional_path(self.publish_tokens_file.as_deref())),
            ),
            (
                "allow_client_publish",
                toml::Value::Boolean(self.allow_client_publish),
            ),
            (
                "max_subscriptions_per_connection",
                count(self.max_subscriptions_per_connection),
            ),
            ("max_topic_length", count(self.max_topic_length)),
        ]
    }

    /// What the handshake policy is built from.
    pub fn policy_settings(&self) -> PolicySettings {
        PolicySettings {
            allowed_origins: self.allowed_origins.clone(),
            allow_missing_origin: self.allow_missing_origin,
            subprotocols: self.subprotocols.clone(),
            require_subprotocol: self.require_subprotocol,
            auth: self.auth,
            auth_tokens_file: self.auth_tokens_file.clone(),
            jwt_secret_file: self.jwt_secret_file.clone(),
            jwt_audience: self.jwt_audience.clone(),
            jwt_issuer: self.jwt_issuer.clone(),
            trusted_proxies: self.trusted_proxies.clone(),
        }
    }

    /// The configuration as a TOML config file: every key, sizes and durations written the way
    /// the parser reads them, so the output can be fed back with `--config`.
    pub fn to_toml(&self) -> String {
        let mut out =
            String::from("# ringws effective configuration (defaults < --config file < flags)\n");
        for (key, value) in self.values() {
            let value = match value {
                // toml's Display picks literal or basic quoting; a plain escaped string reads best.
                toml::Value::String(text) => format!("\"{}\"", escape_toml(&text)),
                other => other.to_string(),
            };
            let _ = writeln!(out, "{key} = {value}");
        }
        out
    }

    /// Checks every field against its bound, as [`load`] does; for configs built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut flags = Settings::default();
        for (key, value) in self.values() {
            let list = match &value {
                toml::Value::Array(items) => Some(
                    items
                        .iter()
                        .map(|item| RawValue {
                            value: item.clone(),
                            span: None,
                        })
                        .collect(),
                ),
                _ => None,
            };
            let raw = Some(RawValue { value, span: None });
            match key {
                "listen" => flags.listen = raw,
                "admin_listen" => flags.admin_listen = raw,
                "app" => flags.app = raw,
                "cores" => flags.cores = raw,
                "max_connections" => flags.max_connections = raw,
                "max_frame_size" => flags.max_frame_size = raw,
                "max_message_size" => flags.max_message_size = raw,
                "max_handshake_size" => flags.max_handshake_size = raw,
                "handshake_timeout" => flags.handshake_timeout = raw,
                "close_timeout" => flags.close_timeout = raw,
                "ping_interval" => flags.ping_interval = raw,
                "pong_timeout" => flags.pong_timeout = raw,
                "idle_timeout" => flags.idle_timeout = raw,
                "write_stall_timeout" => flags.write_stall_timeout = raw,
                "drain_timeout" => flags.drain_timeout = raw,
                "max_outbound_buffer" => flags.max_outbound_buffer = raw,
                "message_rate" => flags.message_rate = raw,
                "message_burst" => flags.message_burst = raw,
                "backlog" => flags.backlog = raw,
                "defer_accept" => flags.defer_accept = raw,
                "ring_entries" => flags.ring_entries = raw,
                "recv_buffer_size" => flags.recv_buffer_size = raw,
                "log" => flags.log = raw,
                "allowed_origins" => flags.allowed_origins = list,
                "allow_missing_origin" => flags.allow_missing_origin = raw,
                "subprotocols" => flags.subprotocols = list,
                "require_subprotocol" => flags.require_subprotocol = raw,
                "auth" => flags.auth = raw,
                "auth_tokens_file" => flags.auth_tokens_file = raw,
                "jwt_secret_file" => flags.jwt_secret_file = raw,
                "jwt_audience" => flags.jwt_audience = raw,
                "jwt_issuer" => flags.jwt_issuer = raw,
                "handshake_rate_per_ip" => flags.handshake_rate_per_ip = raw,
                "handshake_burst_per_ip" => flags.handshake_burst_per_ip = raw,
                "handshake_rate_table_size" => flags.handshake_rate_table_size = raw,
                "trusted_proxies" => flags.trusted_proxies = list,
                "debug_handshakes" => flags.debug_handshakes = raw,
                "publish_tokens_file" => flags.publish_tokens_file = raw,
                "allow_client_publish" => flags.allow_client_publish = raw,
                "max_subscriptions_per_connection" => flags.max_subscriptions_per_connection = raw,
                "max_topic_length" => flags.max_topic_length = raw,
                _ => unreachable!("values() yields only KEYS"),
            }
        }
        let mut copy = Config::default();
        apply(&mut copy, &flags, &Origin::Flags).map_err(|err| match err {
            ConfigError::Invalid {
                setting: Setting::Flag { key },
                problem,
            } => ConfigError::Invalid {
                setting: Setting::Field { key },
                problem,
            },
            other => other,
        })?;
        check_together(self, std::env::var_os(JWT_SECRET_ENV).is_some())
    }
}

fn strings<T: ToString>(items: &[T]) -> toml::Value {
    toml::Value::Array(
        items
            .iter()
            .map(|item| toml::Value::String(item.to_string()))
            .collect(),
    )
}

fn optional_path(path: Option<&Path>) -> String {
    path.map_or_else(|| "off".to_string(), |p| p.display().to_string())
}

fn escape_toml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args as _, CommandFactory as _};

    fn flags(pairs: &[(&str, &str)]) -> Settings {
        // Going through clap checks that every key really is a flag.
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        let mut argv = vec!["ringws".to_owned()];
        for (key, value) in pairs {
            argv.push(format!("--{}", key.replace('_', "-")));
            argv.push((*value).to_owned());
        }
        <Cli as clap::Parser>::try_parse_from(argv)
            .expect("flags parse")
            .settings
    }

    fn load_text(toml_text: &str, flag_pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let path = Path::new("ringws.toml");
        let file = settings_from_toml(path, toml_text)?;
        let mut config = Config::default();
        apply(
            &mut config,
            &file,
            &Origin::File {
                path,
                text: toml_text,
            },
        )?;
        apply(&mut config, &flags(flag_pairs), &Origin::Flags)?;
        Ok(config)
    }

    fn error(toml_text: &str, flag_pairs: &[(&str, &str)]) -> String {
        load_text(toml_text, flag_pairs)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("8KiB"), Ok(8192));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("2KB"), Ok(2_000));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("16 mib"), Ok(16 << 20));
        assert_eq!(parse_size(" 1_000_000 "), Ok(1_000_000));
    }

    #[test]
    fn bad_sizes_are_refused() {
        for text in [
            "",
            "MiB",
            "12XB",
            "1.5MiB",
            "-1",
            "1 2",
            "16MiBs",
            "_1",
            "1_",
            "1__0",
            "1K",
            "0x10",
            "16 MiB extra",
            "１２",
        ] {
            assert_eq!(parse_size(text), Err(SizeError::Malformed), "{text:?}");
        }
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_size("18446744073709551616"),
            Err(SizeError::Malformed)
        );
        assert_eq!(parse_size("16777216TiB"), Err(SizeError::TooLarge));
        assert_eq!(
            parse_size(&"1".repeat(MAX_SIZE_TEXT_LEN + 1)),
            Err(SizeError::Malformed)
        );
    }

    #[test]
    fn sizes_render_in_the_largest_exact_unit() {
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(125), "125");
        assert_eq!(format_size(8 << 10), "8KiB");
        assert_eq!(format_size(16 << 20), "16MiB");
        assert_eq!(format_size(1 << 40), "1TiB");
        assert_eq!(format_size(1_000_000), "1MB");
        assert_eq!(format_size(1536), "1536");
        assert_eq!(format_size(1_000_001), "1000001");
    }

    #[test]
    fn sizes_round_trip() {
        let samples = [
            0,
            1,
            125,
            1000,
            1023,
            1024,
            1536,
            65536,
            1_000_000,
            16 << 20,
            1 << 40,
            u64::MAX,
        ];
        for bytes in samples
            .into_iter()
            .chain((0..64).map(|shift| 1u64 << shift))
        {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes), "{bytes}");
            assert_eq!(
                parse_size(&format_size(bytes.saturating_sub(1))),
                Ok(bytes.saturating_sub(1))
            );
        }
    }

    #[test]
    fn durations_parse_and_round_trip() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("soon").is_err());
        assert_eq!(format_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        for duration in [
            Duration::from_nanos(1),
            Duration::from_micros(250),
            Duration::from_millis(1500),
            Duration::from_secs(90),
            Duration::from_secs(86_400),
            Duration::new(3_723, 4_000_005),
        ] {
            assert_eq!(parse_duration(&format_duration(duration)), Ok(duration));
        }
    }

    #[test]
    fn defaults_are_valid_and_print_config_round_trips() {
        let defaults = Config::default();
        defaults.validate().expect("defaults are valid");
        let text = defaults.to_toml();
        assert!(text.contains("max_frame_size = \"16MiB\"\n"), "{text}");
        assert!(text.contains("handshake_timeout = \"10s\"\n"), "{text}");
        assert!(text.contains("listen = \"127.0.0.1:9001\"\n"), "{text}");
        for key in KEYS {
            assert!(
                text.contains(&format!("\n{key} = ")),
                "{key} missing from {text}"
            );
        }
        let reloaded = load_text(&text, &[]).expect("to_toml output loads");
        assert_eq!(reloaded.to_toml(), text);

        let custom = load_text(
            "log = 'ringws=debug,\"warn\"'\nmax_frame_size = 1000001\nclose_timeout = '1m 500ms'",
            &[],
        );
        // The quote inside a log filter is refused by EnvFilter; without it, it round-trips.
        assert!(custom.is_err());
        let custom = load_text(
            "log = 'ringws=debug'\nmax_frame_size = 1000001\nclose_timeout = '1m 500ms'",
            &[],
        )
        .expect("valid");
        assert_eq!(
            load_text(&custom.to_toml(), &[])
                .expect("reloads")
                .to_toml(),
            custom.to_toml()
        );
    }

    #[test]
    fn help_states_every_default() {
        let command = Settings::augment_args(clap::Command::new("serve"));
        let defaults: std::collections::HashMap<_, _> =
            Config::default().values().into_iter().collect();
        let ids: Vec<_> = command
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .collect();
        assert_eq!(ids, KEYS);
        for arg in command.get_arguments() {
            let key = arg.get_id().as_str();
            assert_eq!(arg.get_long(), Some(key.replace('_', "-").as_str()));
            let help = arg.get_help().expect("every setting has help").to_string();
            let expected = match (key, &defaults[key]) {
                ("cores", _) => "all available".to_owned(),
                (_, toml::Value::String(text)) => text.clone(),
                (_, other) => other.to_string(),
            };
            assert!(
                help.ends_with(&format!("[default: {expected}]")),
                "{key}: {help}"
            );
        }
        // Keep the derive honest about clap's own invariants.
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            settings: Settings,
        }
        Cli::command().debug_assert();
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let config = load_text(
            "max_frame_size = \"1MiB\"\nmax_message_size = 2097152\nbacklog = 128\nclose_timeout = \"1s\"",
            &[("backlog", "256"), ("close_timeout", "250ms"), ("listen", "[::1]:8080")],
        )
        .expect("valid");
        assert_eq!(config.max_frame_size, 1 << 20);
        assert_eq!(config.max_message_size, 2 << 20);
        assert_eq!(config.backlog, 256);
        assert_eq!(config.close_timeout, Duration::from_millis(250));
        assert_eq!(config.listen, "[::1]:8080".parse().unwrap());
        assert_eq!(
            config.handshake_timeout,
            Config::default().handshake_timeout
        );
    }

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let message = error("backlog = 1\nmax_mesage_size = \"1MiB\"\n", &[]);
        assert_eq!(
            message,
            "config file ringws.toml: unknown key \"max_mesage_size\" on line 2; did you mean \
             \"max_message_size\"? (every key is listed by `ringws serve --help`)"
        );
        let message = error("[server]\nlisten = \"0.0.0.0:80\"\n", &[]);
        assert!(
            message.starts_with("config file ringws.toml: unknown key \"server\""),
            "{message}"
        );
        assert_eq!(closest_key("max-frame-size"), Some("max_frame_size"));
        assert_eq!(closest_key("colour"), None);
    }

    #[test]
    fn bad_values_name_where_they_came_from() {
        assert_eq!(
            error("", &[("max_frame_size", "12XB")]),
            "--max-frame-size: \"12XB\" is not a size (examples: 16MiB, 64KiB, 1000000)"
        );
        assert_eq!(
            error("\n\nmax_frame_size = \"12XB\"", &[]),
            "config file ringws.toml: line 3: max_frame_size: \"12XB\" is not a size (examples: \
             16MiB, 64KiB, 1000000)"
        );
        assert_eq!(
            error("", &[("handshake_timeout", "10")]),
            "--handshake-timeout: \"10\" is not a duration (examples: 10s, 500ms, 1m 30s)"
        );
        assert!(error("close_timeout = 5", &[]).contains("close_timeout: expected a duration"));
        assert!(error("cores = true", &[])
            .contains("cores: expected a whole number, found a boolean (true)"));
        assert!(error("listen = 9001", &[]).contains("listen: expected an address"));
        assert!(error("", &[("listen", "localhost")]).contains("is not a socket address"));
        assert!(error("", &[("app", "chat")])
            .contains("\"chat\" is not an app (available: pubsub, echo)"));
        assert!(error("", &[("log", "ringws=loud")])
            .starts_with("--log: \"ringws=loud\" is not a log filter"));
        assert!(error("syntax error here", &[])
            .starts_with("config file ringws.toml is not valid TOML"));
    }

    #[test]
    fn bounds_are_enforced() {
        let available = available_cores();
        let cores_error = format!("between 1 and {available}, the number of CPUs available");
        assert!(error("", &[("cores", "0")]).contains(&cores_error));
        assert!(error("", &[("cores", &(available + 1).to_string())]).contains(&cores_error));
        assert!(load_text("", &[("cores", &available.to_string())]).is_ok());

        for (key, bad, good) in [
            ("max_frame_size", "124", "125"),
            ("max_frame_size", "1100GB", "1TiB"),
            ("max_message_size", "1025GiB", "1024GiB"),
            ("max_handshake_size", "1023", "1KiB"),
            ("max_handshake_size", "1025KiB", "1MiB"),
            ("recv_buffer_size", "4095", "4KiB"),
            ("recv_buffer_size", "17MiB", "16MiB"),
            ("ring_entries", "32", "64"),
            ("ring_entries", "65536", "32768"),
            ("ring_entries", "100", "128"),
            ("backlog", "0", "1"),
            ("backlog", "65536", "65535"),
            ("max_connections", "0", "1"),
            ("handshake_timeout", "0s", "1ns"),
            ("close_timeout", "2days", "1day"),
        ] {
            let message = error("", &[(key, bad)]);
            assert!(
                message.contains("is out of range: expected"),
                "{key}={bad}: {message}"
            );
            assert!(load_text("", &[(key, good)]).is_ok(), "{key}={good}");
        }
        assert_eq!(
            error("", &[("ring_entries", "100")]),
            "--ring-entries: \"100\" is out of range: expected a power of two between 64 and 32768"
        );
        assert_eq!(
            error("max_frame_size = -1", &[]),
            "config file ringws.toml: line 1: max_frame_size: -1 is out of range: expected between \
             125 and 1TiB"
        );
        // Frames may be larger than messages: each limit stands alone.
        assert!(load_text("max_frame_size = '1MiB'\nmax_message_size = '64KiB'", &[]).is_ok());
    }

    #[test]
    fn validate_names_the_field() {
        let config = Config {
            ring_entries: 1000,
            ..Config::default()
        };
        assert_eq!(
            config.validate().expect_err("not a power of two").to_string(),
            "config ring_entries: 1000 is out of range: expected a power of two between 64 and 32768"
        );
    }

    #[test]
    fn list_keys_take_repeated_flags_arrays_or_one_string() {
        let config = load_text(
            "allowed_origins = ['https://app.example.com', '*.example.com']\n\
             subprotocols = 'chat.v2'\n\
             trusted_proxies = ['10.0.0.0/8', '::1']",
            &[],
        )
        .expect("valid");
        let shown: Vec<String> = config
            .allowed_origins
            .iter()
            .map(|o| o.to_string())
            .collect();
        assert_eq!(shown, ["https://app.example.com", "*.example.com"]);
        assert_eq!(config.subprotocols, ["chat.v2"]);
        let proxies: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "::1/128"]);

        // Flags replace the file's list rather than adding to it.
        let config = load_text(
            "subprotocols = ['a', 'b']",
            &[("subprotocols", "v2"), ("subprotocols", "v1")],
        )
        .expect("valid");
        assert_eq!(config.subprotocols, ["v2", "v1"]);
        let text = config.to_toml();
        assert!(
            text.contains("\nsubprotocols = [\"v2\", \"v1\"]\n"),
            "{text}"
        );
        assert_eq!(load_text(&text, &[]).unwrap().to_toml(), text);
        config.validate().expect("valid");
    }

    #[test]
    fn policy_keys_parse_and_print() {
        let config = load_text(
            "allow_missing_origin = false\nrequire_subprotocol = 'true'\nsubprotocols = ['x']\n\
             auth = 'JWT'\njwt_secret_file = '/etc/ringws/jwt.secret'\njwt_audience = 'chat'\n\
             handshake_rate_per_ip = 5\nhandshake_burst_per_ip = 10\n\
             handshake_rate_table_size = 1024\ndebug_handshakes = 'on'",
            &[("jwt_issuer", "https://idp.example")],
        )
        .expect("valid");
        assert!(!config.allow_missing_origin);
        assert!(config.require_subprotocol);
        assert_eq!(config.auth, AuthMode::Jwt);
        assert_eq!(
            config.jwt_secret_file.as_deref(),
            Some(Path::new("/etc/ringws/jwt.secret"))
        );
        assert_eq!(config.jwt_audience.as_deref(), Some("chat"));
        assert_eq!(config.jwt_issuer.as_deref(), Some("https://idp.example"));
        assert_eq!(config.handshake_rate_per_ip, 5);
        assert_eq!(config.handshake_burst_per_ip, 10);
        assert_eq!(config.handshake_rate_table_size, 1024);
        assert!(config.debug_handshakes);
        let text = config.to_toml();
        for line in [
            "allow_missing_origin = false",
            "auth = \"jwt\"",
            "jwt_issuer = \"https://idp.example\"",
            "auth_tokens_file = \"off\"",
            "debug_handshakes = \"on\"",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}: {text}");
        }
        assert_eq!(load_text(&text, &[]).unwrap().to_toml(), text);
        let unset = load_text("jwt_audience = 'off'", &[("jwt_issuer", "off")]).unwrap();
        assert_eq!((unset.jwt_audience, unset.jwt_issuer), (None, None));
    }

    #[test]
    fn bad_policy_values_are_explained() {
        assert_eq!(
            error("allowed_origins = ['https://a.example/']", &[]),
            "config file ringws.toml: line 1: allowed_origins: \"https://a.example/\" is not an \
             allowed origin: an origin has no path: write https://a.example"
        );
        assert!(error("", &[("allowed_origins", "a.example")])
            .starts_with("--allowed-origins: \"a.example\" is not an allowed origin"));
        assert!(error("", &[("trusted_proxies", "10.1.2.3/8")]).contains(
            "is not a trusted proxy: 10.1.2.3/8 has host bits set: the block is written 10.0.0.0/8"
        ));
        assert!(error("trusted_proxies = ['10.0.0.0/8', 'x']", &[])
            .contains("\"x\" is not a trusted proxy"));
        assert!(error("", &[("subprotocols", "a b")]).contains("is not a subprotocol name"));
        assert!(error("", &[("subprotocols", "a"), ("subprotocols", "a")])
            .contains("--subprotocols: \"a\" is listed twice"));
        assert!(error("", &[("auth", "basic")])
            .contains("\"basic\" is not an auth mode (available: none, token, jwt)"));
        assert!(error("", &[("allow_missing_origin", "yes")]).contains("is not true or false"));
        assert!(error("", &[("debug_handshakes", "true")]).contains("is not on or off"));
        assert!(error("allow_missing_origin = 1", &[]).contains("expected true or false"));
        assert!(error("", &[("jwt_audience", " ")]).contains("write \"off\" to leave it unset"));
        assert!(error("allowed_origins = [1]", &[]).contains("expected an origin"));
        let many: Vec<String> = (0..=MAX_SUBPROTOCOLS).map(|i| format!("'p{i}'")).collect();
        assert!(error(&format!("subprotocols = [{}]", many.join(",")), &[])
            .contains(&format!("more than {MAX_SUBPROTOCOLS} entries")));
        for (key, bad, good) in [
            ("handshake_rate_per_ip", "1000001", "1000000"),
            ("handshake_burst_per_ip", "0", "1"),
            ("handshake_rate_table_size", "15", "16"),
            ("handshake_rate_table_size", "1048577", "1048576"),
        ] {
            assert!(
                error("", &[(key, bad)]).contains("is out of range"),
                "{key}={bad}"
            );
            assert!(load_text("", &[(key, good)]).is_ok(), "{key}={good}");
        }
    }

    #[test]
    fn settings_that_need_each_other() {
        let token = Config {
            auth: AuthMode::Token,
            ..Config::default()
        };
        assert_eq!(
            check_together(&token, true).unwrap_err().to_string(),
            "auth = \"token\" needs auth_tokens_file (--auth-tokens-file): a file of accepted \
             tokens, one per line"
        );
        let token = Config {
            auth_tokens_file: Some("tokens.txt".into()),
            ..token
        };
        assert!(check_together(&token, false).is_ok());

        let jwt = Config {
            auth: AuthMode::Jwt,
            ..Config::default()
        };
        assert_eq!(
            check_together(&jwt, false).unwrap_err().to_string(),
            "auth = \"jwt\" needs a secret: set jwt_secret_file (--jwt-secret-file) or the \
             environment variable RINGWS_JWT_SECRET"
        );
        assert!(
            check_together(&jwt, true).is_ok(),
            "the environment's secret"
        );
        let jwt = Config {
            jwt_secret_file: Some("jwt.secret".into()),
            ..jwt
        };
        assert!(check_together(&jwt, false).is_ok());

        let required = Config {
            require_subprotocol: true,
            ..Config::default()
        };
        assert!(check_together(&required, false)
            .unwrap_err()
            .to_string()
            .starts_with("require_subprotocol = true needs subprotocols"));
    }

    #[test]
    fn missing_file_is_named() {
        let message = load(
            Some(Path::new("/nonexistent/ringws.toml")),
            &Settings::default(),
        )
        .expect_err("no such file")
        .to_string();
        assert!(
            message.starts_with("cannot read config file /nonexistent/ringws.toml: "),
            "{message}"
        );
    }
}
