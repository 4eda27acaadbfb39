//! `ringws bench`: the load generator (echo, idle, connect modes).
//! INTERFACE FIXED: `BenchArgs` (clap) and `run`.

/// Arguments of `ringws bench` (a clap subcommand tree owned by this module).
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmark; returns the process exit code.
pub fn run(args: BenchArgs) -> i32 {
    let _ = args;
    todo!()
}
