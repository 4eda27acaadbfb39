//! `ringws check`: can this machine hold N connections, and what to change if not.
//!
//! - `facts.rs` reads the machine (or a copy of its /proc and /sys) into a `SystemFacts`;
//! - `rules.rs` judges those facts against a plan with pure functions, one per setting;
//! - `tls.rs` judges the certificate and key files (`tls_cert`, `tls_key`);
//! - `profile.rs` holds the values of the deploy/ files the fix lines point at;
//! - `report.rs` prints the table or the JSON.

mod facts;
mod profile;
mod report;
mod rules;
mod tls;

use std::path::PathBuf;

pub use facts::{IoUringProbe, Rlimit, Roots, SystemFacts};
pub use rules::{check_nofile, evaluate, memory_estimate_bytes, Check, Plan, Status};

/// Exit code when every check passes or warns.
const EXIT_OK: i32 = 0;
/// Exit code when at least one check fails.
const EXIT_FAIL: i32 = 1;
/// Exit code when the facts could not be read at all (a wrong --proc-root, say).
const EXIT_USAGE: i32 = 2;

/// Largest plan `check` accepts: well past any one machine, far from any overflow.
const MAX_CONNECTIONS: u64 = 1_000_000_000;

const EXAMPLES: &str = "\
Examples:
  ringws check --connections 1000000
  ringws check --connections 100000 --cores 4 --json
  ringws check --connections 100000 --config ringws.toml   # also tls_cert and tls_key

Each fix line names the file in deploy/ it belongs in; docs/tuning.md walks through them.
Exit code: 0 when every check passes or warns, 1 when any fails.";

/// Check whether this machine can hold N connections, and print the line that fixes each
/// setting that cannot.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct CheckArgs {
    /// Connections you plan to hold open at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=MAX_CONNECTIONS))]
    pub connections: u64,
    /// Reactor cores you plan to run (ringws serve --cores). [default: all available]
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub cores: Option<u64>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Read a copy of /proc from DIR (RLIMIT_NOFILE from DIR/self/limits); skips the io_uring
    /// probe, which can only test this machine.
    #[arg(long, value_name = "DIR")]
    pub proc_root: Option<PathBuf>,
    /// Also check the certificate and key files (tls_cert, tls_key) of this config file: the
    /// key matches, the chain is complete, days to expiry.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check this certificate chain (PEM) instead of the config file's tls_cert.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Read a copy of /sys from DIR (cores from DIR/devices/system/cpu/online).
    #[arg(long, value_name = "DIR")]
    pub sys_root: Option<PathBuf>,
}

/// The certificate and key to check: the flags, else the config file's tls_cert and tls_key.
fn tls_files(args: &CheckArgs) -> Result<Option<(PathBuf, PathBuf)>, String> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        return Ok(Some((cert.clone(), key.clone())));
    }
    let Some(path) = &args.config else {
        return Ok(None);
    };
    let config = crate::config::load(Some(path), &crate::config::Settings::default())
        .map_err(|err| err.to_string())?;
    match (config.tls_cert, config.tls_key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        _ => Err(format!(
            "{}: tls_cert and tls_key go together: set both",
            path.display()
        )),
    }
}

/// Runs `ringws check`; returns the exit code.
pub fn run(args: CheckArgs) -> i32 {
    let roots = Roots {
        proc_root: args.proc_root.clone(),
        sys_root: args.sys_root.clone(),
    };
    let facts = match facts::read(&roots) {
        Ok(facts) => facts,
        Err(err) => {
            eprintln!("ringws check: cannot read the system facts: {err}");
            return EXIT_USAGE;
        }
    };
    let plan = Plan {
        connections: args.connections,
        cores: args.cores.map_or(facts.cores, |c| c as usize),
        recv_buffer_size_bytes: crate::config::Config::default().recv_buffer_size as u64,
    };
    let mut checks = evaluate(&facts, &plan);
    match tls_files(&args) {
        Ok(Some((cert, key))) => checks.extend(tls::check_tls(
            &cert,
            &key,
            crate::tls::certificate::now_unix_s(),
        )),
        Ok(None) => {}
        Err(err) => {
            eprintln!("ringws check: {err}");
            return EXIT_USAGE;
        }
    }
    if args.json {
        let value = report::json(&plan, memory_estimate_bytes(&plan), &checks);
        println!("{value:#}");
    } else {
        let source = match (&args.proc_root, &args.sys_root) {
            (None, None) => "this machine".to_owned(),
            (proc_root, sys_root) => format!(
                "{} and {}",
                proc_root
                    .as_ref()
                    .map_or("/proc".into(), |p| p.display().to_string()),
                sys_root
                    .as_ref()
                    .map_or("/sys".into(), |p| p.display().to_string()),
            ),
        };
        let columns = report::output_columns();
        print!("{}", report::human(&plan, &source, &checks, columns));
    }
    if report::tally(&checks).fail > 0 {
        EXIT_FAIL
    } else {
        EXIT_OK
    }
}
