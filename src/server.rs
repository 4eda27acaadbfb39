//! Starts one pinned reactor thread per core and waits for them.

use crate::config::Config;

/// Why the server could not start or stopped abnormally. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("placeholder")]
    Placeholder,
}

/// Runs `ringws serve` until SIGINT/SIGTERM.
pub fn run(config: Config) -> Result<(), ServerError> {
    let _ = config;
    todo!()
}
