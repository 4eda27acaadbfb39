//! What a run is asked to do, per mode, and why it could not start.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::url::UrlError;

/// Settings shared by every mode.
#[derive(Clone, Debug)]
pub struct CommonOptions {
    /// `ws://HOST:PORT/PATH` or `wss://HOST:PORT/PATH`.
    pub url: String,
    /// How wss:// connections verify the server and resume sessions (unused for ws://).
    pub tls: TlsOptions,
    /// Event-loop threads (each owns its connections outright).
    pub threads: usize,
    /// CPUs to pin the threads to, round-robin; empty: no pinning.
    pub pin_cpus: Vec<usize>,
    /// Local addresses to bind sockets to, round-robin; empty: let the kernel choose.
    pub sources: Vec<IpAddr>,
    /// Most connections in the connecting/handshaking stage at once (all threads together).
    pub concurrency: usize,
    /// Limit for each connect, handshake, echo and close.
    pub timeout: Duration,
    /// Server process to sample CPU time and RSS of.
    pub server_pid: Option<u32>,
    /// Live progress on stderr once per second.
    pub progress: bool,
}

impl CommonOptions {
    pub fn new(url: impl Into<String>) -> CommonOptions {
        CommonOptions {
            url: url.into(),
            tls: TlsOptions::default(),
            threads: 1,
            pin_cpus: Vec::new(),
            sources: Vec::new(),
            concurrency: 512,
            timeout: Duration::from_secs(10),
            server_pid: None,
            progress: false,
        }
    }
}

/// The TLS side of a wss:// run.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    /// Trust these PEM certificates as roots instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (signatures are still checked); for self-signed tests.
    pub insecure: bool,
    /// One client configuration shared by every connection, so connections resume sessions
    /// with the server's tickets; false: every connection makes a full handshake.
    pub resume: bool,
}

impl Default for TlsOptions {
    fn default() -> TlsOptions {
        TlsOptions {
            ca_file: None,
            insecure: false,
            resume: true,
        }
    }
}

/// `bench echo`: closed-loop (or paced) echo round trips.
#[derive(Clone, Debug)]
pub struct EchoOptions {
    pub common: CommonOptions,
    pub conns: usize,
    pub payload_bytes: usize,
    /// Send text frames (ASCII payload) instead of binary.
    pub text: bool,
    pub warmup: Duration,
    pub duration: Duration,
    /// Total target messages per second (open loop); `None`: closed loop.
    pub rate: Option<f64>,
}

/// `bench idle`: open many connections, hold them, close them.
#[derive(Clone, Debug)]
pub struct IdleOptions {
    pub common: CommonOptions,
    pub conns: usize,
    pub hold: Duration,
    /// The opening stage stops after this long; connections not yet attempted are counted under
    /// `open_timeout`.
    pub open_timeout: Duration,
}

/// `bench connect`: handshake + close churn with `common.concurrency` connections in flight.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub common: CommonOptions,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Why a run could not start (failures during a run are counted in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        host: String,
        source: std::io::Error,
    },
    #[error("invalid option: {0}")]
    Invalid(String),
    #[error(
        "cannot read /proc/{pid}/stat: {source}; is --server-pid the server's process id, \
         and is it on this machine?"
    )]
    ServerPid { pid: u32, source: std::io::Error },
    #[error("cannot set up the event loop: {0}")]
    Setup(std::io::Error),
    #[error("{0}")]
    Tls(String),
    #[error(
        "the server at {url} does not echo: {problem}. Is it running `ringws serve --app echo`? \
         (The default app, pubsub, answers with JSON errors; `ringws bench fanout` measures it)"
    )]
    NotEcho {
        url: String,
        problem: super::echo_check::NotEcho,
    },
}

pub(crate) fn validate_common(common: &CommonOptions) -> Result<(), BenchError> {
    if common.threads == 0 || common.threads > 1024 {
        return Err(BenchError::Invalid(format!(
            "--threads {} (use 1..=1024)",
            common.threads
        )));
    }
    if common.concurrency == 0 {
        return Err(BenchError::Invalid(
            "--concurrency must be at least 1".into(),
        ));
    }
    if common.timeout.is_zero() {
        return Err(BenchError::Invalid("--timeout must be positive".into()));
    }
    let tls = &common.tls;
    if tls.insecure && tls.ca_file.is_some() {
        return Err(BenchError::Invalid(
            "--insecure and --ca-file exclude each other: --insecure trusts any certificate, \
             --ca-file only those its CAs signed"
                .into(),
        ));
    }
    let families: Vec<bool> = common.sources.iter().map(IpAddr::is_ipv6).collect();
    if families.windows(2).any(|w| w[0] != w[1]) {
        return Err(BenchError::Invalid(
            "--sources mixes IPv4 and IPv6 addresses".into(),
        ));
    }
    Ok(())
}
