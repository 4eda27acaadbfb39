//! The `ringws` command line: `serve` and `bench`.

/// Parses arguments, runs the subcommand, returns the exit code.
pub fn main() -> i32 {
    todo!()
}
