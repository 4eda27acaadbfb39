//! Logging for `ringws serve`: tracing to stderr, filtered by the `log` key or RUST_LOG.

use tracing_subscriber::EnvFilter;

use crate::config::{check_log_filter, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("RUST_LOG: {value:?} is not a log filter: {reason} (examples: info, ringws=debug, warn,ringws::reactor=trace)")]
    BadEnvFilter { value: String, reason: String },
    #[error("cannot start logging: {0}")]
    Init(String),
}

/// Installs the global subscriber, writing `format` lines. RUST_LOG, when set and not empty,
/// overrides `log_filter` (already checked by config loading) and is checked the same way.
pub fn init(log_filter: &str, format: LogFormat) -> Result<(), LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => check_log_filter(&value)
            .and_then(|()| EnvFilter::try_new(&value).map_err(|err| err.to_string()))
            .map_err(|reason| LoggingError::BadEnvFilter { value, reason })?,
        _ => EnvFilter::try_new(log_filter).map_err(|err| LoggingError::Init(err.to_string()))?,
    };
    let lines = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        // Colour only on a terminal: logs piped to files and journald stay plain text.
        LogFormat::Text => lines
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // One object per line: timestamp, level, target, message and the event's fields at the
        // top level (no span lists, so the names stay the same from line to line).
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|err| LoggingError::Init(err.to_string()))
}
