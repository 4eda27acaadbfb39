//! The live progress line every `bench` mode prints on a terminal: one line on stderr,
//! rewritten in place at most once a second (and at each change of stage), ended with a newline
//! before the summary. Off when stderr is not a terminal, so logs and pipes get the summary only.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Shortest time between two rewrites of the line within a stage.
pub const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct LiveLine {
    enabled: bool,
    started: Instant,
    last_print: Instant,
    printed: bool,
}

impl LiveLine {
    pub fn new(enabled: bool) -> LiveLine {
        let now = Instant::now();
        LiveLine {
            enabled,
            started: now,
            last_print: now,
            printed: false,
        }
    }

    /// True when a rewrite is due: on, and [`INTERVAL`] since the last one.
    pub fn due(&self) -> bool {
        self.enabled && self.last_print.elapsed() >= INTERVAL
    }

    /// Time since the line was last written (or since the start).
    pub fn since_last(&self) -> Duration {
        self.last_print.elapsed()
    }

    /// Seconds since the run started, as the line shows them.
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Rewrites the line with `text` (when on), whether due or not.
    pub fn show(&mut self, text: &str) {
        if !self.enabled {
            return;
        }
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{text}");
        let _ = stderr.flush();
        self.printed = true;
        self.last_print = Instant::now();
    }

    /// Ends the line, so that what follows starts on a line of its own.
    pub fn finish(&mut self) {
        if std::mem::take(&mut self.printed) {
            eprintln!();
        }
    }
}
