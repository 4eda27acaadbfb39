//! The structured log line of a refused handshake, and the limiter that keeps a flood of
//! refusals from filling the disk: at most N lines per second, the rest counted and reported
//! on the next line that is written.

use std::net::IpAddr;

use crate::protocol::refusal::one_line;
use crate::protocol::Refusal;

/// Default lines per second per core.
pub const DEFAULT_LOG_LINES_PER_S: u32 = 10;
/// Longest path written to the log.
const MAX_LOGGED_PATH_BYTES: usize = 128;

/// At most `max_per_s` admitted lines per one-second window; the others are counted.
#[derive(Clone, Debug)]
pub struct LogLimiter {
    max_per_s: u32,
    window_s: u64,
    admitted_in_window: u32,
    /// Suppressed since the last admitted line.
    suppressed_pending: u64,
    suppressed_total: u64,
}

impl Default for LogLimiter {
    fn default() -> Self {
        LogLimiter::new(DEFAULT_LOG_LINES_PER_S)
    }
}

impl LogLimiter {
    pub fn new(max_per_s: u32) -> Self {
        LogLimiter {
            max_per_s,
            window_s: 0,
            admitted_in_window: 0,
            suppressed_pending: 0,
            suppressed_total: 0,
        }
    }

    /// `Some(n)`: write this line, and say that `n` lines were suppressed since the previous
    /// one. `None`: drop it (counted). `now_ms` is any monotonic millisecond clock.
    pub fn admit(&mut self, now_ms: u64) -> Option<u64> {
        let window_s = now_ms / 1000;
        if window_s != self.window_s {
            self.window_s = window_s;
            self.admitted_in_window = 0;
        }
        if self.admitted_in_window < self.max_per_s {
            self.admitted_in_window += 1;
            Some(std::mem::take(&mut self.suppressed_pending))
        } else {
            self.suppressed_pending += 1;
            self.suppressed_total += 1;
            None
        }
    }

    /// Lines dropped since start.
    pub fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }
}

/// Writes the structured line of one refusal (target `ringws::handshake`, level info):
/// core, client address, path, status, reason label, suppressed lines before it, and the
/// one-line message as the text. Call it only when [`LogLimiter::admit`] said so.
pub fn log_refusal(
    core: usize,
    client: IpAddr,
    path: Option<&str>,
    refusal: &Refusal,
    suppressed_before: u64,
) {
    let path = path.map(|p| one_line(p, MAX_LOGGED_PATH_BYTES));
    tracing::info!(
        target: "ringws::handshake",
        core,
        client = %client,
        path = path.as_deref().unwrap_or("-"),
        status = refusal.reason.status(),
        reason = refusal.reason.label(),
        suppressed_before,
        "handshake refused: {}",
        refusal.message()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_n_per_second_and_suppressed_lines_are_counted() {
        let mut limiter = LogLimiter::new(3);
        let admitted: Vec<_> = (0..10).map(|i| limiter.admit(1_000 + i)).collect();
        assert_eq!(
            admitted,
            [
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
        assert_eq!(limiter.suppressed_total(), 7);
        // The next window's first line reports what was dropped.
        assert_eq!(limiter.admit(2_000), Some(7));
        assert_eq!(limiter.admit(2_001), Some(0));
        assert_eq!(limiter.admit(2_999), Some(0));
        assert_eq!(limiter.admit(2_999), None);
        assert_eq!(limiter.admit(10_000), Some(1));
        assert_eq!(limiter.suppressed_total(), 8);
    }

    #[test]
    fn a_flood_writes_a_bounded_number_of_lines() {
        let mut limiter = LogLimiter::default();
        let mut written = 0;
        // A million refusals over 10 seconds.
        for i in 0..1_000_000u64 {
            if limiter.admit(i / 100_000 * 1000).is_some() {
                written += 1;
            }
        }
        assert_eq!(written, 10 * DEFAULT_LOG_LINES_PER_S);
        assert_eq!(limiter.suppressed_total(), 1_000_000 - u64::from(written));
    }

    #[test]
    fn zero_means_silent() {
        let mut limiter = LogLimiter::new(0);
        assert_eq!(limiter.admit(0), None);
        assert_eq!(limiter.suppressed_total(), 1);
    }
}
