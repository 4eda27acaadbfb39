//! Every setting of `ringws serve`: one row of the key table below declares its field of
//! [`Config`], its default, its config file key and flag, its `--help` text, its
//! `--print-config` line and its parser with bounds.
//!
//! - [`key`]: what a row becomes (the `settings!` macro and [`Key`]).
//! - [`value`]: the kinds of value (sizes, durations, addresses, lists, ...) and their bounds.
//! - [`file`]: the TOML config file.
//! - [`flags`]: the `serve` flags.
//! - [`error`]: what is wrong, and where it was written.

mod error;
mod file;
mod flags;
mod key;
mod value;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

pub use self::error::{ConfigError, DurationError, Setting, SizeError, ValueError};
pub use self::file::settings_from_toml;
pub use self::value::{
    check_log_filter, format_duration, format_size, parse_duration, parse_duration_arg, parse_size,
    RawValue, BOOLEAN_WORDS, LOG_LEVELS, MAX_SIZE_TEXT_LEN, MAX_TIMEOUT,
};
pub use crate::policy::AuthMode;

use self::key::{serve_or_library_default, settings, Key};
use self::value::{
    address, app, auth, boolean, bus_address, cert_key_pair, cidr, cores, count, delay, list,
    log_filter, log_format, optional, optional_timeout, origin, path, power_of_two, size,
    subprotocol, text, timeout, topic_permissions_default,
};
use crate::policy::subprotocol::MAX_SUBPROTOCOLS;
use crate::policy::{Cidr, DefaultPermissions, OriginPattern, PolicySettings, JWT_SECRET_ENV};

/// Which built-in application `serve` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AppKind {
    /// Topic fan-out: subscribe with ?topic= or JSON control messages, publish over HTTP.
    Pubsub,
    /// Sends every message back.
    Echo,
}

/// How `ringws serve` writes its log lines (to stderr).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event, for people.
    Text,
    /// One JSON object per line, for log shippers: `timestamp`, `level`, `target`, `message`
    /// and the event's own fields (`client`, `reason`, `status`, ...).
    Json,
}

impl LogFormat {
    pub const ALL: [LogFormat; 2] = [LogFormat::Text, LogFormat::Json];

    /// The name the flag and the config file use.
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

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
/// Bounds of `max_connections`: at least one; memory, not a number, is the real limit.
pub const MAX_CONNECTIONS: RangeInclusive<u64> = 1..=u64::MAX;
/// Bounds of `max_outbound_buffer`: below 4 KiB a single echo could trip it; above 1 GiB one
/// slow reader could take the machine.
pub const OUTBOUND_BUFFER_BYTES: RangeInclusive<u64> = 4 << 10..=1 << 30;
/// Bounds of `min_receive_rate` and `min_send_rate`, per second: below 1 KiB/s a peer could
/// hold a buffer for hours; above 1 GiB/s no network keeps up.
pub const TRANSFER_RATE_BYTES_PER_S: RangeInclusive<u64> = 1 << 10..=1 << 30;
/// Bounds of `memory_budget`.
pub const MEMORY_BUDGET_BYTES: RangeInclusive<u64> = 1 << 20..=1 << 40;
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
/// Bounds of `max_control_message_size`: a subscribe with a short topic fits in 64 bytes; past
/// 1 GiB the limit no longer protects anything.
pub const CONTROL_MESSAGE_BYTES: RangeInclusive<u64> = 64..=1 << 30;
/// Bounds of `compression_min_size`.
pub const COMPRESSION_MIN_SIZE_BYTES: RangeInclusive<u64> = 0..=1 << 30;
/// Bounds of `compression_level` (zlib's levels; 0 would store, not compress).
pub const COMPRESSION_LEVEL: RangeInclusive<u64> = 1..=9;
/// Bounds of `bus_queue_size` (publishes; each holds its message until Redis takes it).
pub const BUS_QUEUE_LEN: RangeInclusive<u64> = 1..=1_000_000;
/// Most entries of `allowed_origins` and of `trusted_proxies`.
pub const MAX_LIST_LEN: usize = 1024;

// The key table: one row per setting, in the order `--help` and `--print-config` list them.
// A row's doc comment is its `--help` text; `[default: ...]` is added from the default.
settings! {
    /// Address and port the WebSocket listener binds to.
    listen: SocketAddr = "127.0.0.1:9001".parse().unwrap(), "ADDR", address();
    /// Address of the admin listener ("off" disables it): GET /metrics, GET /healthz, GET
    /// /readyz, GET /debug/handshakes (with debug_handshakes), and the app's routes (pubsub: POST
    /// /publish/{topic}, GET /topics, GET /topics/{topic}). Needs a port of its own.
    ///
    /// Off in the library's default: a program embedding ringws opens it by setting it.
    admin_listen: Option<SocketAddr> = None,
        serve Some(SocketAddr::from(([127, 0, 0, 1], 9090))), "ADDR", optional(address());
    /// Address of the wss:// (TLS) WebSocket listener, beside `listen` ("off": none). Needs
    /// tls_cert and tls_key; see docs/tls.md.
    tls_listen: Option<SocketAddr> = None, "ADDR", optional(address());
    /// Certificate chain for tls_listen (PEM): the server's certificate first, then its
    /// intermediates. Re-read on SIGHUP.
    tls_cert: Option<PathBuf> = None, "FILE", optional(path());
    /// Private key of tls_cert (PEM: PKCS#8, PKCS#1 or SEC1). Re-read on SIGHUP.
    tls_key: Option<PathBuf> = None, "FILE", optional(path());
    /// Further certificates for tls_listen, each CERT_FILE:KEY_FILE (PEM), served to clients
    /// that ask for one of its names by SNI; others get tls_cert. Re-read on SIGHUP.
    tls_sni_certs: Vec<crate::tls::CertKeyPair> = Vec::new(), "CERT:KEY", list(MAX_LIST_LEN, cert_key_pair());
    /// CA certificates (PEM) that sign client certificates: when set, every wss client must
    /// present one (mTLS), and its subject's common name is the connection's identity.
    tls_client_ca: Option<PathBuf> = None, "FILE", optional(path());
    /// Share the ports with the ringws already serving on them (SO_REUSEPORT), for a
    /// zero-downtime restart: start the new process with this, then stop the old one. Without
    /// it, a port in use is refused, naming the process that holds it.
    ///
    /// See docs/lifecycle.md; the check runs before the listeners are bound (see
    /// `server::claim_addresses`).
    takeover: bool = false, "BOOL", boolean();
    /// Built-in application to serve: pubsub (topic fan-out, see docs/pubsub.md) or echo
    /// (sends every message back).
    app: AppKind = AppKind::Pubsub, "APP", app();
    /// Reactor threads, each pinned to its own core; at most the CPUs available to ringws.
    cores: usize = available_cores(), "N", cores(), shown as "all available";
    /// Most connections open at once, counted over all cores (the next one gets 503).
    max_connections: usize = 1_000_000, "N", count(MAX_CONNECTIONS);
    /// Largest frame payload accepted, from 125 bytes to 1TiB.
    max_frame_size: u64 = 16 << 20, "SIZE", size(FRAME_SIZE_BYTES);
    /// Largest message accepted after joining its fragments, from 125 bytes to 1TiB.
    max_message_size: u64 = 16 << 20, "SIZE", size(FRAME_SIZE_BYTES);
    /// Largest HTTP upgrade request head accepted, from 1KiB to 1MiB.
    max_handshake_size: usize = 8 << 10, "SIZE", size(HANDSHAKE_SIZE_BYTES);
    /// Time a new connection has to finish the HTTP upgrade.
    handshake_timeout: Duration = Duration::from_secs(10), "DURATION", timeout();
    /// Time to wait for the peer's close frame before dropping the connection.
    close_timeout: Duration = Duration::from_secs(5), "DURATION", timeout();
    /// Send a ping after this long without any frame from the peer.
    ping_interval: Duration = Duration::from_secs(30), "DURATION", timeout();
    /// After a ping, time the peer has to send any frame before it is closed.
    pong_timeout: Duration = Duration::from_secs(10), "DURATION", timeout();
    /// Close connections that send no application message for this long; "off" disables.
    idle_timeout: Option<Duration> = None, "DURATION", optional_timeout();
    /// Time a message (or frame) from the peer may take to arrive in full; longer is fine only
    /// while it keeps arriving at `min_receive_rate` (judged over windows of half this). Past
    /// both it is closed with 1008.
    message_timeout: Duration = Duration::from_secs(10), "DURATION", timeout();
    /// Bytes per second a message taking longer than `message_timeout` must keep arriving at,
    /// from 1KiB to 1GiB.
    min_receive_rate: u64 = 64 << 10, "SIZE", size(TRANSFER_RATE_BYTES_PER_S);
    /// Time an outbound queue may take to drain; longer is fine only while it drains at
    /// `min_send_rate`. Past both the connection is dropped.
    write_stall_timeout: Duration = Duration::from_secs(30), "DURATION", timeout();
    /// Bytes per second a queue older than `write_stall_timeout` must keep draining at (a reader
    /// that keeps up with this can receive any message), from 1KiB to 1GiB.
    min_send_rate: u64 = 128 << 10, "SIZE", size(TRANSFER_RATE_BYTES_PER_S);
    /// On SIGTERM/SIGINT, the whole drain's bound, counted from the signal: what is still open
    /// then is reset. Must be longer than drain_delay + drain_spread.
    drain_timeout: Duration = Duration::from_secs(10), "DURATION", timeout();
    /// On SIGTERM/SIGINT, time the listeners keep accepting after /readyz turned 503, so load
    /// balancers see it and stop sending clients before connections are refused; 0: close them
    /// at once.
    drain_delay: Duration = Duration::ZERO, "DURATION", delay();
    /// Time over which open connections are sent their 1001 in even batches once the listeners
    /// closed, so their reconnects do not land on the other nodes in the same second; 0: all at
    /// once.
    drain_spread: Duration = Duration::ZERO, "DURATION", delay();
    /// Memory all connections together may hold in buffers (partial input, messages being
    /// received, outbound queues, request heads), from 1MiB to 1TiB. Near it new upgrades get
    /// 503; past it the connections holding the most are closed.
    ///
    /// Each core enforces its share. Default: half of the memory limit (the cgroup's, else RAM).
    memory_budget: u64 = default_memory_budget(), "SIZE", size(MEMORY_BUDGET_BYTES),
        shown as "half the memory limit";
    /// Bytes queued for one slow reader before it is closed with 1008, from 4KiB to 1GiB.
    max_outbound_buffer: u64 = 1 << 20, "SIZE", size(OUTBOUND_BUFFER_BYTES);
    /// Messages per second one connection may send before it is closed with 1008; 0 disables.
    ///
    /// A token bucket per connection, of `message_burst` tokens.
    message_rate: u32 = 0, "N", count(MESSAGE_RATE);
    /// Burst allowance of the per-connection message rate limit, from 1 to 1000000.
    message_burst: u32 = 100, "N", count(MESSAGE_BURST);
    /// Accept a client's permessage-deflate offer (RFC 7692): messages of at least
    /// compression_min_size go out compressed, and compressed messages are accepted. Costs no
    /// memory per connection; costs CPU per message (see docs/compression.md).
    compression: bool = false, "BOOL", boolean();
    /// With compression on, messages shorter than this go out uncompressed, from 0 to 1GiB.
    compression_min_size: usize = 256, "SIZE", size(COMPRESSION_MIN_SIZE_BYTES);
    /// Compression level, from 1 (fastest) to 9 (smallest output).
    compression_level: u8 = 1, "N", count(COMPRESSION_LEVEL);
    /// Queue of not-yet-accepted connections passed to listen(2), from 1 to 65535.
    backlog: i32 = 4096, "N", count(BACKLOG);
    /// Hand a connection to ringws with its first bytes, not on the bare TCP ACK (one wake-up
    /// fewer per handshake); a client silent this long is accepted anyway. "off" to accept on
    /// the ACK.
    ///
    /// TCP_DEFER_ACCEPT on the listeners; a client accepted silent meets `handshake_timeout`.
    defer_accept: Option<Duration> = Some(Duration::from_secs(1)), "DURATION",
        optional_timeout();
    /// io_uring submission queue entries per core; a power of two from 64 to 32768.
    ring_entries: u32 = 4096, "N", power_of_two(RING_ENTRIES);
    /// Each core's receive buffer, shared by all its connections; from 4KiB to 16MiB.
    recv_buffer_size: usize = 64 << 10, "SIZE", size(RECV_BUFFER_SIZE_BYTES);
    /// Log filter in tracing's EnvFilter syntax, e.g. warn or ringws=debug; RUST_LOG, when set,
    /// wins.
    log: String = "info".into(), "FILTER", log_filter();
    /// Log line format: text, or json for one JSON object per line (timestamp, level, target,
    /// message and the event's fields, such as client and reason of a refused handshake).
    log_format: LogFormat = LogFormat::Text, "FORMAT", log_format();
    /// An origin whose pages may connect: https://app.example.com, http://localhost:8080, or
    /// *.example.com for every subdomain (not example.com itself); repeat the flag for more.
    /// Empty allows any origin.
    allowed_origins: Vec<OriginPattern> = Vec::new(), "ORIGIN", list(MAX_LIST_LEN, origin());
    /// Accept upgrades without an Origin header (non-browser clients send none); browsers
    /// always send one.
    allow_missing_origin: bool = true, "BOOL", boolean();
    /// A subprotocol the server speaks, in preference order; repeat the flag for more. The
    /// first one the client also offers is chosen.
    subprotocols: Vec<String> = Vec::new(), "NAME", list(MAX_SUBPROTOCOLS, subprotocol());
    /// Refuse (400) clients that offer none of the subprotocols, instead of accepting them
    /// without one.
    require_subprotocol: bool = false, "BOOL", boolean();
    /// Authentication before the upgrade: none, token (auth_tokens_file) or jwt (HS256, secret
    /// from jwt_secret_file or RINGWS_JWT_SECRET), as "Authorization: Bearer" or ?token=.
    auth: AuthMode = AuthMode::None, "MODE", auth();
    /// File of accepted tokens for auth = token: one per line, or name:token to give the
    /// token a name the app sees; "off" for none.
    auth_tokens_file: Option<PathBuf> = None, "FILE", optional(path());
    /// File holding the HS256 secret (at least 32 bytes) for auth = jwt; "off" reads the
    /// environment variable RINGWS_JWT_SECRET instead.
    jwt_secret_file: Option<PathBuf> = None, "FILE", optional(path());
    /// The audience ("aud") a JWT must name; "off" skips the check.
    jwt_audience: Option<String> = None, "AUD", optional(text());
    /// The issuer ("iss") a JWT must have; "off" skips the check.
    jwt_issuer: Option<String> = None, "ISS", optional(text());
    /// A JSON Web Key Set file of public keys for RS256, PS256, ES256 and EdDSA JWTs (auth =
    /// jwt); "off" for none.
    jwt_jwks_file: Option<PathBuf> = None, "FILE", optional(path());
    /// A JSON Web Key Set URL (http:// or https://), such as an identity provider's
    /// .../protocol/openid-connect/certs, fetched in the background; "off" for none.
    jwt_jwks_url: Option<String> = None, "URL", optional(text());
    /// Shortest time between two fetches of jwt_jwks_url caused by tokens with an unknown kid.
    jwt_jwks_min_refresh_interval: Duration = Duration::from_secs(10), "DURATION", timeout();
    /// Time between two periodic fetches of jwt_jwks_url.
    jwt_jwks_refresh_interval: Duration = Duration::from_secs(300), "DURATION", timeout();
    /// Close connections whose JWT expires (its exp passes) with 4001 "token expired: refresh the
    /// token and reconnect".
    close_on_token_expiry: bool = false, "BOOL", boolean();
    /// Those closes are spread over this window after the expiry, so that clients whose tokens
    /// expire together do not all reconnect at once.
    token_expiry_close_window: Duration = Duration::from_secs(30), "DURATION", timeout();
    /// The JWT claim holding the topics a token may subscribe to and publish to, as
    /// {"subscribe":["news.*","user.42.#"],"publish":["chat.*"]}.
    topic_permissions_claim: String = crate::policy::topic_acl::DEFAULT_CLAIM.into(), "CLAIM",
        text();
    /// What a token without topic permissions (or no auth) may do: allow (any topic) or deny
    /// (none).
    topic_permissions_default: DefaultPermissions = DefaultPermissions::Allow, "POLICY",
        topic_permissions_default();
    /// Handshakes per second one client address may make before getting 429 (IPv6: per
    /// /64; each core enforces its share); 0 disables.
    handshake_rate_per_ip: u32 = 0, "N", count(HANDSHAKE_RATE);
    /// Burst allowance of the handshake rate limit, from 1 to 1000000.
    handshake_burst_per_ip: u32 = 20, "N", count(HANDSHAKE_BURST);
    /// Client addresses each core tracks for the handshake rate limit, from 16 to 1048576;
    /// the least recently seen are forgotten first.
    handshake_rate_table_size: usize = crate::policy::rate_limit::DEFAULT_TABLE_SIZE, "N",
        count(HANDSHAKE_RATE_TABLE_SIZE);
    /// A proxy address or CIDR block (10.0.0.0/8, ::1) whose X-Forwarded-For or Forwarded
    /// header names the client; repeat the flag for more.
    trusted_proxies: Vec<Cidr> = Vec::new(), "CIDR", list(MAX_LIST_LEN, cidr());
    /// Every connection on listen and tls_listen starts with a PROXY protocol header (v1 or v2,
    /// as HAProxy's send-proxy and cloud load balancers write it) from an address in
    /// trusted_proxies; its source address is the client's. Connections from other addresses,
    /// or without a valid header, are closed and counted.
    proxy_protocol: bool = false, "BOOL", boolean();
    /// Keep each core's last refused handshakes and serve them as JSON at
    /// /debug/handshakes on the admin listener.
    debug_handshakes: bool = false, "BOOL", boolean();
    /// pubsub: file of bearer tokens accepted by POST /publish on the admin listener, one per
    /// line (# starts a comment); "off" requires no token.
    publish_tokens_file: Option<PathBuf> = None, "FILE", optional(path());
    /// File of bearer tokens (one per line, or name:token) allowed to POST /reload on the admin
    /// listener, which rereads the TLS files, token files, JWT secret and JWKS file as SIGHUP
    /// does; "off" refuses POST /reload.
    admin_tokens_file: Option<PathBuf> = None, "FILE", optional(path());
    /// pubsub: let WebSocket clients publish with {"op":"publish",...}.
    allow_client_publish: bool = false, "BOOL", boolean();
    /// pubsub: topics one connection may subscribe to, from 1 to 65536.
    max_subscriptions_per_connection: usize = 64, "N", count(SUBSCRIPTIONS_PER_CONNECTION);
    /// pubsub: longest topic name in bytes, from 1 to 1024; names use A-Z a-z 0-9 . _ : / -
    max_topic_length: usize = 128, "N", count(TOPIC_LENGTH);
    /// pubsub: largest control message a client may send, from 64B to 1GiB; a larger one is
    /// answered with the error message_too_large without being parsed.
    max_control_message_size: usize = 4 << 10, "SIZE", size(CONTROL_MESSAGE_BYTES);
    /// pubsub: where publishes go: local (this node's subscribers only) or redis://HOST:PORT/
    /// to share topics with every node on that Redis (see docs/scale-out.md).
    bus: crate::app::pubsub::bus::BusAddress = crate::app::pubsub::bus::BusAddress::Local,
        "BUS", bus_address();
    /// pubsub with a Redis bus: publishes waiting for Redis before the next one is refused
    /// with 503 (bus_queue_full), from 1 to 1000000.
    bus_queue_size: usize = 10_000, "N", count(BUS_QUEUE_LEN);
    /// pubsub with a Redis bus: time Redis has to answer a batch of publishes (and a queued
    /// publish may wait); past it the connection is dropped, publishes get 503 until it is back.
    bus_publish_timeout: Duration = Duration::from_secs(1), "DURATION", timeout();
}

/// Every key, in table order. Built on first use: the rows hold their parsers.
pub(crate) fn keys() -> &'static [Key] {
    static KEYS: LazyLock<Vec<Key>> = LazyLock::new(table);
    &KEYS
}

/// Number of CPUs this process may run on (the default and the upper bound of `cores`).
/// Half of the memory this process may use: its own cgroup's limit (v2 `memory.max`, v1
/// `memory.limit_in_bytes`, read at start) when there is one, else the machine's RAM; the other half is for
/// everything the budget does not count (the binary, the allocator's slack, the kernel's
/// socket buffers are not ours at all).
pub fn default_memory_budget() -> u64 {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let cgroup = read("/proc/self/cgroup").and_then(|groups| cgroup_memory_limit(&groups, read));
    let ram = read("/proc/meminfo").and_then(|m| {
        let kib = m.lines().find(|l| l.starts_with("MemTotal:"))?;
        kib.split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|k| k * 1024)
    });
    let limit = match (cgroup, ram) {
        (Some(c), Some(r)) => c.min(r),
        (Some(c), None) => c,
        (None, Some(r)) => r,
        (None, None) => 4 << 30,
    };
    (limit / 2).clamp(*MEMORY_BUDGET_BYTES.start(), *MEMORY_BUDGET_BYTES.end())
}

/// The memory limit of this process's own cgroup (v2 `memory.max`, or v1's memory controller
/// `memory.limit_in_bytes`), from the lines of `/proc/self/cgroup`; `None` when unlimited.
fn cgroup_memory_limit(groups: &str, read: impl Fn(&str) -> Option<String>) -> Option<u64> {
    groups.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let file = if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else {
            return None;
        };
        // "max" (v2) or a huge number (v1) when unlimited.
        read(&file)?
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&b| b < 1 << 60)
    })
}

pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// One layer of settings as a person wrote them, before parsing: values for some of the keys.
/// The `serve` flags make one ([`flags`]), the config file another ([`file`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// Each written value by its row in [`keys`]: applied, and so checked, in table order.
    values: BTreeMap<usize, RawValue>,
}

impl Settings {
    /// Each written value with its key, in table order.
    fn iter(&self) -> impl Iterator<Item = (&'static Key, &RawValue)> {
        let keys = keys();
        self.values.iter().map(move |(&row, raw)| (&keys[row], raw))
    }
}

/// Builds the effective configuration of `ringws serve`: its defaults
/// ([`Config::serve_defaults`]), then `config_file` (if any), then `flags`. Every value is
/// checked against its bound; errors name the flag or the file and key.
pub fn load(config_file: Option<&Path>, flags: &Settings) -> Result<Config, ConfigError> {
    let mut config = Config::serve_defaults();
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

/// Where a layer of settings was written, to name it in errors.
enum Origin<'a> {
    Flags,
    File {
        path: &'a Path,
        text: &'a str,
    },
    /// The fields of a `Config` built in code.
    Fields,
}

impl Origin<'_> {
    fn setting(&self, key: &'static str, raw: &RawValue) -> Setting {
        match self {
            Origin::Flags => Setting::Flag { key },
            Origin::File { path, text } => Setting::File {
                path: path.to_path_buf(),
                line: raw
                    .span
                    .as_ref()
                    .map(|span| file::line_of(text, span.start)),
                key,
            },
            Origin::Fields => Setting::Field { key },
        }
    }
}

fn apply(config: &mut Config, settings: &Settings, origin: &Origin<'_>) -> Result<(), ConfigError> {
    for (key, raw) in settings.iter() {
        key.set(config, raw)
            .map_err(|problem| ConfigError::Invalid {
                setting: origin.setting(key.name, raw),
                problem,
            })?;
    }
    Ok(())
}

/// The settings that need each other: checked once every layer is applied.
fn check_together(config: &Config, env_secret_set: bool) -> Result<(), ConfigError> {
    check_listeners(config)?;
    check_drain(config)?;
    let needs = config.policy_settings().check_needs(env_secret_set);
    needs.map_err(ConfigError::Needs)
}

/// Refuses a drain that cannot send every connection its 1001 before its own deadline:
/// `drain_timeout` counts from the signal and bounds the whole drain, so it must be longer than
/// the wait before the listeners close plus the spread of the closes.
pub fn check_drain(config: &Config) -> Result<(), ConfigError> {
    let (drain_timeout, drain_delay, drain_spread) = (
        config.drain_timeout,
        config.drain_delay,
        config.drain_spread,
    );
    if drain_delay + drain_spread >= drain_timeout {
        return Err(ConfigError::DrainTooShort {
            drain_timeout,
            drain_delay,
            drain_spread,
        });
    }
    Ok(())
}

/// Refuses a WebSocket and an admin listener that would share a port (see
/// [`addresses_overlap`]). [`load`] and [`Config::validate`] check it, and so does
/// `Server::start` for configurations built in code.
pub fn check_listeners(config: &Config) -> Result<(), ConfigError> {
    if let Some(admin) = config.admin_listen {
        for listen in std::iter::once(config.listen).chain(config.tls_listen) {
            if addresses_overlap(listen, admin) {
                return Err(ConfigError::SamePort { listen, admin });
            }
        }
    }
    if config.proxy_protocol && config.trusted_proxies.is_empty() {
        return Err(ConfigError::ProxyProtocolUntrusted);
    }
    if let Some(tls) = config.tls_listen {
        if addresses_overlap(config.listen, tls) {
            return Err(ConfigError::SameTlsPort {
                listen: config.listen,
                tls,
            });
        }
    }
    config.tls_files().map(|_| ())
}

/// True when listeners on `a` and `b` would take each other's connections: the same port (not 0,
/// which picks a free one) and the same address, or a wildcard address covering the other one
/// (`0.0.0.0` every IPv4 address; `::` every address, IPv4 included, as Linux binds it
/// dual-stack by default).
pub fn addresses_overlap(a: SocketAddr, b: SocketAddr) -> bool {
    let covers = |wide: std::net::IpAddr, other: std::net::IpAddr| {
        wide.is_unspecified() && (wide.is_ipv6() || other.is_ipv4())
    };
    let (ip_a, ip_b) = (a.ip().to_canonical(), b.ip().to_canonical());
    a.port() == b.port()
        && a.port() != 0
        && (ip_a == ip_b || covers(ip_a, ip_b) || covers(ip_b, ip_a))
}

impl Config {
    /// The TLS files, when `tls_listen` is on; an error names what is missing.
    pub fn tls_files(&self) -> Result<Option<crate::tls::TlsFiles>, ConfigError> {
        let (Some(_), cert, key) = (self.tls_listen, &self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                sni: self.tls_sni_certs.clone(),
                client_ca: self.tls_client_ca.clone(),
            })),
            _ => Err(ConfigError::Tls(
                "tls_listen needs a certificate and its key: set tls_cert and tls_key \
                 (--tls-cert FILE --tls-key FILE), PEM files"
                    .into(),
            )),
        }
    }

    /// The configuration as a TOML config file: every key, sizes and durations written the way
    /// the parser reads them, so the output can be fed back with `--config`.
    pub fn to_toml(&self) -> String {
        let mut out =
            String::from("# ringws effective configuration (defaults < --config file < flags)\n");
        for key in keys() {
            let value = match key.get(self) {
                // toml's Display picks literal or basic quoting; a plain escaped string reads best.
                toml::Value::String(text) => format!("\"{}\"", escape_toml(&text)),
                other => other.to_string(),
            };
            let _ = writeln!(out, "{} = {value}", key.name);
        }
        out
    }

    /// Checks every field against its bound, as [`load`] does; for configs built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let fields = Settings {
            values: (keys().iter().enumerate())
                .map(|(row, key)| (row, RawValue::unplaced(key.get(self))))
                .collect(),
        };
        apply(&mut Config::default(), &fields, &Origin::Fields)?;
        check_together(self, std::env::var_os(JWT_SECRET_ENV).is_some())
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
            jwt_jwks_file: self.jwt_jwks_file.clone(),
            jwt_jwks_url: self.jwt_jwks_url.clone(),
            jwt_jwks_min_refresh_interval: self.jwt_jwks_min_refresh_interval,
            jwt_jwks_refresh_interval: self.jwt_jwks_refresh_interval,
            close_on_token_expiry: self.close_on_token_expiry,
            token_expiry_close_window: self.token_expiry_close_window,
            topic_permissions_claim: self.topic_permissions_claim.clone(),
            topic_permissions_default: self.topic_permissions_default,
        }
    }
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
mod tests;
