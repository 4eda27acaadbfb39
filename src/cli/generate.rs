//! `ringws completions SHELL` and `ringws man [COMMAND]`: shell completion scripts and manual
//! pages, generated from the same clap definitions as `--help`, so they never drift from it.

use std::io::Write as _;

use clap::CommandFactory as _;

use super::Cli;

/// Shells `ringws completions` writes a script for.
pub use clap_complete::Shell;

/// Writes the completion script for `shell` to stdout; returns the exit code.
pub fn completions(shell: Shell) -> i32 {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "ringws", &mut out);
    finish(out.flush())
}

/// Writes the manual page of ringws, or of one of its commands (`ringws-serve(1)`), as roff to
/// stdout; returns the exit code.
pub fn man(command_name: Option<&str>) -> i32 {
    let mut command = Cli::command();
    command.build();
    let page = match command_name {
        None => clap_mangen::Man::new(command),
        Some(name) => match command.find_subcommand(name) {
            Some(sub) => clap_mangen::Man::new(sub.clone()).title(format!("ringws-{name}")),
            None => {
                let names: Vec<&str> = (command.get_subcommands())
                    .map(|c| c.get_name())
                    .filter(|&n| n != "help")
                    .collect();
                eprintln!(
                    "ringws man: error: no command {name:?}; the commands are {}",
                    names.join(", ")
                );
                return super::EXIT_USAGE;
            }
        },
    };
    let page = page.source(format!("ringws {}", env!("CARGO_PKG_VERSION")));
    let mut out = std::io::stdout().lock();
    finish(page.render(&mut out).and_then(|()| out.flush()))
}

fn finish(written: std::io::Result<()>) -> i32 {
    match written {
        Ok(()) => 0,
        // A closed pipe (`ringws man | head`) is not a failure of ringws.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(err) => {
            eprintln!("ringws: error: cannot write to stdout: {err}");
            super::EXIT_FAILURE
        }
    }
}
