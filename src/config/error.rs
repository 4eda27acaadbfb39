//! Why a configuration was refused, and where the refused value came from.

use std::fmt;
use std::path::PathBuf;

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
    /// A field of a [`Config`](super::Config) built in code (see
    /// [`Config::validate`](super::Config::validate)).
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
    #[error(transparent)]
    Needs(crate::policy::PolicyError),
    /// The WebSocket and admin listeners on one port: the kernel would hand each connection to
    /// either of them.
    #[error(
        "listen ({listen}) and admin_listen ({admin}) are on the same port: connections would \
         alternate between the WebSocket and the admin listener. Give the admin listener a port \
         of its own with --admin-listen (admin_listen in a config file), or \"off\""
    )]
    SamePort {
        listen: std::net::SocketAddr,
        admin: std::net::SocketAddr,
    },
    /// The plain and TLS WebSocket listeners on one port.
    #[error(
        "listen ({listen}) and tls_listen ({tls}) are on the same port: connections would \
         alternate between ws:// and wss://. Give each a port of its own (--listen, --tls-listen)"
    )]
    SameTlsPort {
        listen: std::net::SocketAddr,
        tls: std::net::SocketAddr,
    },
    /// PROXY headers taken from anyone would let any client claim any address.
    #[error(
        "proxy_protocol needs trusted_proxies: the load balancers whose PROXY headers are \
         believed (--trusted-proxies 10.0.0.0/8, repeatable); from any other address a \
         connection is refused"
    )]
    ProxyProtocolUntrusted,
    /// A drain whose last batch of 1001s would be sent at or after its own deadline: those
    /// connections would be reset without a close frame.
    #[error(
        "drain_timeout ({}) must be longer than drain_delay ({}) + drain_spread ({}): the \
         drain's deadline counts from the signal, so the last connections would be reset \
         before or as they are sent their 1001. Raise --drain-timeout, or shorten \
         --drain-delay or --drain-spread",
        super::format_duration(*.drain_timeout),
        super::format_duration(*.drain_delay),
        super::format_duration(*.drain_spread)
    )]
    DrainTooShort {
        drain_timeout: std::time::Duration,
        drain_delay: std::time::Duration,
        drain_spread: std::time::Duration,
    },
    /// tls_listen without a certificate, or a certificate with nothing to serve it.
    #[error("{0}")]
    Tls(String),
}

/// What is wrong with one value. `value` is shown as written (strings quoted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{value} is not a size (examples: 16MiB, 64KiB, 1000000)")]
    NotASize { value: String },
    #[error("{value} is not a duration (examples: 10 or 2.5 seconds, 10s, 500ms, 1m 30s)")]
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
    #[error("{value} is not a bus: {reason}")]
    NotABus { value: String, reason: String },
    #[error("{value} is not a trusted proxy: {reason}")]
    NotACidr { value: String, reason: String },
    #[error("{value} is not a certificate and key: {reason}")]
    NotACertKeyPair { value: String, reason: String },
    #[error("{value} is not a boolean: write true, false, on or off")]
    NotABool { value: String },
    #[error("{value} is not an auth mode (available: {available})")]
    NotAnAuthMode { value: String, available: String },
    #[error("{value} is not a topic permissions default (available: {available})")]
    NotAPermissionDefault { value: String, available: String },
    #[error("{value} is not a log format (available: {available})")]
    NotALogFormat { value: String, available: String },
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

/// Why [`parse_size`](super::parse_size) refused a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("not a size (examples: 16MiB, 64KiB, 1000000)")]
    Malformed,
    #[error("size larger than 2^64 bytes")]
    TooLarge,
}

/// Why [`parse_duration`](super::parse_duration) refused a text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a duration: {0} (examples: 10 or 2.5 seconds, 10s, 500ms, 1m 30s)")]
pub struct DurationError(pub(super) String);
