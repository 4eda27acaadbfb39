//! `ringws bench`: the load generator (echo, idle, connect modes).
//!
//! Built so that it is never the bottleneck: one single-threaded, edge-triggered epoll loop per
//! thread (optionally pinned), non-blocking TCP_NODELAY sockets, one receive buffer per thread,
//! echo frames built and masked once per connection, echoes verified as they stream in, latency
//! in a fixed-bucket histogram. The library entry points ([`run_echo`], [`run_idle`],
//! [`run_connect`]) return a [`Report`]; [`run`] is the command line around them.
//!
//! Layout: [`url`] parses `ws://` URLs; the upgrade request and the checks on the server's 101
//! are [`crate::protocol::client_handshake`]'s; [`receiver`] feeds incoming frames to the shared
//! client frame reader; [`conn`] and [`worker`] are one connection and one event loop;
//! [`runner`] coordinates threads and the run's timeline; [`report`] prints the result;
//! [`procfs`] samples the server process; the raw-fd syscalls are [`crate::sys`]'s.

pub mod blocking;
pub mod cause;
pub mod conn;
pub mod echo_check;
pub mod fanout;
pub mod histogram;
pub mod live;
pub mod options;
pub mod procfs;
pub mod receiver;
pub mod report;
pub mod runner;
pub mod shared;
pub mod tls;
pub mod url;
pub mod worker;

use std::net::IpAddr;
use std::time::Duration;

use crate::config::parse_duration_arg;

pub use cause::Cause;
pub use options::{
    BenchError, CommonOptions, ConnectOptions, EchoOptions, IdleOptions, TlsOptions,
};
pub use report::{Latency, Report};
pub use runner::{run_connect, run_echo, run_idle};

/// Arguments of `ringws bench` (a clap subcommand tree owned by this module).
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Durations: a number of seconds (10, 2.5) or with a unit (500ms, 1m 30s), as in every ringws \
command and the config file.

Exit status: 0 when the run saw no error, 1 when errors were counted (see the summary), \
2 when the run could not start, 130 when interrupted by Ctrl-C.

Examples:
  ringws bench echo --url ws://127.0.0.1:9001/ --conns 100 --payload 20 --warmup 2 --duration 10
  ringws bench echo --url ws://127.0.0.1:9001/ --conns 100 --rate 100000 --json
  ringws bench idle --url ws://10.0.0.5:9001/ --conns 100000 --sources 10.0.0.2,10.0.0.3 --hold 30
  ringws bench connect --url ws://127.0.0.1:9001/ --concurrency 64 --duration 10 --server-pid 4242
  ringws bench echo --url wss://127.0.0.1:9443/ --ca-file certs/ca.pem --conns 100 --payload 1024
  ringws bench connect --url wss://localhost:9443/ --insecure --tls-resume off --server-pid 4242
  ringws bench fanout --url ws://127.0.0.1:9001/ws --admin 127.0.0.1:9090 --subscribers 10000 --payload 16")]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: BenchMode,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchMode {
    /// Echo round trips: each connection sends a message, waits for its echo, checks it byte for
    /// byte, repeats (or, with --rate, sends on a fixed schedule). Reports msgs/s and latency.
    Echo(EchoArgs),
    /// Opens many upgraded connections, holds them, closes them. Reports how many opened, how
    /// fast, what failed, and (with --server-pid) the server's memory per connection.
    Idle(IdleArgs),
    /// Handshake churn: open, verify the 101, close, repeat, with --concurrency in flight.
    /// Reports handshakes/s and handshake latency.
    Connect(ConnectArgs),
    /// Pub/sub fan-out: N subscribers of one topic, one publisher (POST /publish). Reports
    /// 1 publish -> all subscribers latency and deliveries/s, against ringws --app pubsub or
    /// against `fanout-floor`.
    Fanout(fanout::FanoutArgs),
    /// The floor for `fanout`: accepts the subscribers and writes each published message to
    /// every socket with a plain loop of send(2) calls, nothing else. Runs until killed.
    FanoutFloor(fanout::FloorArgs),
}

#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Server to load: ws://HOST[:PORT][/PATH], or wss://HOST[:PORT][/PATH] for WebSocket
    /// over TLS (1.3 or 1.2, rustls; the port defaults to 443).
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// Event-loop threads; connections, concurrency and --rate are split evenly between them.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Pin thread i to the i-th CPU of LIST (round-robin), e.g. "1", "2,3" or "4-7".
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list)]
    pub pin_cpu: Option<CpuList>,
    /// Local addresses to bind connections to, round-robin, so ephemeral ports do not run out
    /// (about 28k connections per source address and server address), e.g.
    /// 127.0.0.1,127.0.0.2.
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    pub sources: Vec<IpAddr>,
    /// Limit for each connect, handshake, echo and close handshake.
    #[arg(long, default_value = "10", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub timeout: Duration,
    /// Sample this server process (/proc/PID): CPU per operation, anonymous RSS growth (per
    /// connection).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Print one JSON object on stdout instead of the summary (mode, url, opened, messages,
    /// msgs_per_s, latency_us {p50, p99, p999, max, mean}, errors by cause, errors_total, ...).
    #[arg(long)]
    pub json: bool,
    /// wss://: trust the CA certificates in this PEM file instead of the system's roots.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<std::path::PathBuf>,
    /// wss://: accept any server certificate (its handshake signature is still checked), for
    /// test servers with self-signed certificates. Never measure a real deployment with it.
    #[arg(long)]
    pub insecure: bool,
    /// wss://: "on" shares one TLS client configuration across connections, so new
    /// connections resume earlier sessions with the server's tickets; "off" makes every
    /// connection a full handshake (to measure its cost with `connect`). The report counts
    /// the handshakes that resumed (tls_resumed).
    #[arg(long, default_value = "on", value_name = "on|off", value_parser = parse_on_off,
          action = clap::ArgAction::Set)]
    pub tls_resume: bool,
    /// Offer permessage-deflate (no context takeover both ways) and require it: a server that
    /// does not accept it fails the run (or, over wss://, each connection: deflate_declined).
    /// Echo messages go out compressed (once per connection: they are all the same) and every
    /// echo is inflated before it is compared. The report says how many connections
    /// negotiated it.
    #[arg(long)]
    pub deflate: bool,
}

#[derive(Debug, clap::Args)]
pub struct EchoArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections.
    #[arg(long, default_value_t = 100, value_name = "C")]
    pub conns: usize,
    /// Message size in bytes.
    #[arg(long, default_value_t = 20, value_name = "BYTES")]
    pub payload: usize,
    /// Send text messages (ASCII) instead of binary.
    #[arg(long)]
    pub text: bool,
    /// Send this file's bytes as the message instead of --payload generated bytes (e.g.
    /// benches/corpus/json-1024.json; with --text it must be UTF-8).
    #[arg(long, value_name = "PATH")]
    pub payload_file: Option<std::path::PathBuf>,
    /// Load before the measured window (excluded from all figures).
    #[arg(long, default_value = "2", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub warmup: Duration,
    /// Length of the measured window.
    #[arg(long, default_value = "10", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub duration: Duration,
    /// Open loop: send R msgs/s in total on a fixed schedule, whatever the echoes do (latency
    /// counts from when each message was due, so a stalled server cannot hide its queue).
    /// Without it: closed loop. A thread whose next send is under 50 µs away polls instead of
    /// sleeping, so at high rates its CPU shows busy: pin it away from the server.
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Most connections being opened at once.
    #[arg(long, default_value_t = 512, value_name = "K")]
    pub concurrency: usize,
}

#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections to open and hold.
    #[arg(long, value_name = "N")]
    pub conns: usize,
    /// How long to hold the connections once all are open.
    #[arg(long, default_value = "10", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub hold: Duration,
    /// Most connections being opened at once.
    #[arg(long, default_value_t = 512, value_name = "K")]
    pub concurrency: usize,
    /// Stop starting connections after this long (those not attempted count as open_timeout).
    #[arg(long, default_value = "120", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub open_timeout: Duration,
}

#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Connections in flight at once.
    #[arg(long, default_value_t = 64, value_name = "K")]
    pub concurrency: usize,
    /// Churn before the measured window.
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub warmup: Duration,
    /// Length of the measured window.
    #[arg(long, default_value = "10", value_name = "DURATION", value_parser = parse_duration_arg)]
    pub duration: Duration,
}

/// CPUs from `--pin-cpu`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Parses "0", "0,2", "4-7", "0,4-5".
pub fn parse_cpu_list(list: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let bad = || format!("{part:?} is not a CPU number or range (e.g. 2 or 4-7)");
        match part.split_once('-') {
            Some((lo, hi)) => {
                let lo: usize = lo.trim().parse().map_err(|_| bad())?;
                let hi: usize = hi.trim().parse().map_err(|_| bad())?;
                if lo > hi || hi >= 1024 {
                    return Err(bad());
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    Ok(CpuList(cpus))
}

/// Parses a switch with the words every ringws boolean takes: on, off, true, false (any case).
pub fn parse_on_off(text: &str) -> Result<bool, String> {
    crate::config::BOOLEAN_WORDS
        .iter()
        .find(|(word, _)| word.eq_ignore_ascii_case(text.trim()))
        .map(|&(_, on)| on)
        .ok_or_else(|| format!("{text:?}: use on or off"))
}

fn common_options(args: &CommonArgs, concurrency: usize) -> CommonOptions {
    CommonOptions {
        url: args.url.clone(),
        tls: TlsOptions {
            ca_file: args.ca_file.clone(),
            insecure: args.insecure,
            resume: args.tls_resume,
        },
        threads: args.threads,
        pin_cpus: args.pin_cpu.clone().map(|l| l.0).unwrap_or_default(),
        sources: args.sources.clone(),
        concurrency,
        timeout: args.timeout,
        server_pid: args.server_pid,
        progress: crate::sys::process::stderr_is_tty(),
        deflate: args.deflate,
    }
}

/// Runs the benchmark; returns the process exit code.
pub fn run(args: BenchArgs) -> i32 {
    crate::sys::process::install_sigint_handler();
    let (result, json) = match &args.mode {
        BenchMode::Echo(a) => {
            let message = match &a.payload_file {
                Some(path) => match std::fs::read(path) {
                    Ok(bytes) => Some(bytes),
                    Err(e) => {
                        eprintln!(
                            "ringws bench: error: --payload-file {}: {e}",
                            path.display()
                        );
                        return 2;
                    }
                },
                None => None,
            };
            let opts = EchoOptions {
                common: common_options(&a.common, a.concurrency),
                conns: a.conns,
                payload_bytes: message.as_ref().map_or(a.payload, Vec::len),
                text: a.text,
                warmup: a.warmup,
                duration: a.duration,
                rate: a.rate,
                message,
            };
            (run_echo(&opts), a.common.json)
        }
        BenchMode::Idle(a) => {
            let opts = IdleOptions {
                common: common_options(&a.common, a.concurrency),
                conns: a.conns,
                hold: a.hold,
                open_timeout: a.open_timeout,
            };
            (run_idle(&opts), a.common.json)
        }
        BenchMode::Connect(a) => {
            let opts = ConnectOptions {
                common: common_options(&a.common, a.concurrency),
                warmup: a.warmup,
                duration: a.duration,
            };
            (run_connect(&opts), a.common.json)
        }
        BenchMode::Fanout(a) => return fanout::run(a),
        BenchMode::FanoutFloor(a) => return fanout::run_floor(a),
    };
    match result {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_human());
            }
            if report.interrupted {
                130
            } else if report.errors_total > 0 {
                1
            } else {
                0
            }
        }
        Err(err) => {
            eprintln!("ringws bench: error: {err}");
            2
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn parses_cpu_lists() {
        assert_eq!(parse_cpu_list("1"), Ok(CpuList(vec![1])));
        assert_eq!(parse_cpu_list("0,4-6"), Ok(CpuList(vec![0, 4, 5, 6])));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn parses_an_echo_command_line() {
        let cli = Cli::try_parse_from([
            "bench",
            "echo",
            "--url",
            "ws://127.0.0.1:9001/",
            "--conns",
            "7",
            "--payload",
            "1024",
            "--text",
            "--rate",
            "500",
            "--sources",
            "127.0.0.1,127.0.0.2",
            "--pin-cpu",
            "1-2",
            "--json",
        ])
        .unwrap();
        let BenchMode::Echo(echo) = cli.bench.mode else {
            panic!("not echo")
        };
        assert_eq!(
            (echo.conns, echo.payload, echo.text, echo.rate),
            (7, 1024, true, Some(500.0))
        );
        assert_eq!(echo.common.sources.len(), 2);
        assert_eq!(echo.common.pin_cpu, Some(CpuList(vec![1, 2])));
        assert_eq!(echo.warmup, Duration::from_secs(2));
        assert!(echo.common.json);
        assert!(echo.common.tls_resume, "resumption is on by default");
        assert!(!echo.common.insecure && echo.common.ca_file.is_none());
    }

    #[test]
    fn parses_the_wss_flags() {
        let connect = |extra: &[&str]| {
            let mut args = vec!["bench", "connect", "--url", "wss://localhost:9443/"];
            args.extend_from_slice(extra);
            match Cli::try_parse_from(args).map(|cli| cli.bench.mode) {
                Ok(BenchMode::Connect(connect)) => Ok(common_options(&connect.common, 1)),
                Ok(_) => panic!("not connect"),
                Err(err) => Err(err),
            }
        };
        let opts = connect(&["--ca-file", "/tmp/ca.pem", "--tls-resume", "off"]).unwrap();
        assert_eq!(opts.url, "wss://localhost:9443/");
        assert_eq!(opts.tls.ca_file, Some("/tmp/ca.pem".into()));
        assert!(!opts.tls.resume && !opts.tls.insecure);
        let opts = connect(&["--insecure", "--tls-resume", "ON"]).unwrap();
        assert!(opts.tls.insecure && opts.tls.resume);
        assert!(connect(&["--tls-resume", "sometimes"]).is_err());
        let both = connect(&["--insecure", "--ca-file", "ca.pem"]).unwrap();
        let err = options::validate_common(&both).unwrap_err();
        assert!(err.to_string().contains("exclude each other"), "{err}");
    }
}
