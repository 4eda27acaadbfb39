//! The `ringws` command line: `serve`, `bench`, `check`, `doctor`, and the shell completions
//! and manual pages generated from it.

mod generate;
mod logging;
mod serve;

pub use serve::ServeArgs;

/// Exit code when ringws ran and something failed at run time.
const EXIT_FAILURE: i32 = 1;
/// Exit code for a refused configuration, the same as clap's usage errors.
const EXIT_USAGE: i32 = 2;

const EXAMPLES: &str = "\
Examples:
  ringws serve --listen 127.0.0.1:9001 --app echo --cores 2
  ringws serve --config ringws.toml --max-message-size 1MiB
  ringws serve --config ringws.toml --print-config
  ringws bench echo --url ws://127.0.0.1:9001/ --conns 100 --duration 10
  ringws bench fanout --url ws://127.0.0.1:9001/ws --subscribers 1000
  ringws doctor ws://127.0.0.1:9001/ --timeout 2

Run `ringws <COMMAND> --help` for every option of a command.";

/// A dense, strict RFC 6455 WebSocket server for Linux: one pinned io_uring reactor per core.
#[derive(Debug, clap::Parser)]
#[command(name = "ringws", version, after_help = EXAMPLES, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Run the WebSocket server until SIGINT or SIGTERM.
    Serve(Box<ServeArgs>),
    /// Generate load against a WebSocket server (modes: echo, idle, connect, fanout).
    Bench(crate::bench::BenchArgs),
    /// Check whether this machine can hold N connections, and how to fix what cannot.
    Check(crate::check::CheckArgs),
    /// Check a WebSocket endpoint step by step, as a browser would connect, and explain what fails.
    Doctor(crate::doctor::DoctorArgs),
    /// Print a shell completion script: `ringws completions bash > /etc/bash_completion.d/ringws`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: generate::Shell,
    },
    /// Print the manual page (roff) of ringws, or of one command: `ringws man serve | man -l -`.
    Man {
        /// A command whose page to print (serve, bench, check, doctor); without it, ringws(1).
        command: Option<String>,
    },
}

/// Parses arguments, runs the subcommand, returns the exit code.
pub fn main() -> i32 {
    let cli = match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version are "errors" too; clap knows which stream and code each needs.
            let _ = err.print();
            return err.exit_code();
        }
    };
    match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Bench(args) => crate::bench::run(args),
        Command::Check(args) => crate::check::run(args),
        Command::Doctor(args) => crate::doctor::run(args),
        Command::Completions { shell } => generate::completions(shell),
        Command::Man { command } => generate::man(command.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
