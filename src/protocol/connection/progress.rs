//! The progress rule shared by a message arriving and a queue draining: a transfer may take
//! `timeout`; one that takes longer must keep moving at `rate` on average since it began, judged
//! every half timeout. Bytes that merely trickle are not progress.
//!
//! An arriving message is also held to the rate over each window of half the timeout (the first
//! ending at the timeout), so a sender that stalls after a burst is caught within `timeout` of
//! the stall. A draining queue is not: it moves in the kernel's chunks (a third of the socket's
//! send buffer, up to megabytes, whenever the reader has freed that much), so an honest reader
//! near the minimum rate may see no chunk in a short window.

use super::Tick;

/// A transfer in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    since: Tick,
    /// Also judge each window, not only the average (arriving messages).
    windowed: bool,
    /// Once judged: the start of the current window and the bytes moved by then.
    window: Option<(Tick, u64)>,
}

/// What a judgement found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Fast enough (or not judged yet): the next deadline is [`Progress::deadline`].
    CarryOn,
    TooSlow,
}

fn window_ticks(timeout_ticks: u32) -> u32 {
    (timeout_ticks / 2).max(1)
}

impl Progress {
    /// A message arriving: judged on average and over each window.
    pub fn windowed(now: Tick) -> Progress {
        Progress {
            since: now,
            windowed: true,
            window: None,
        }
    }

    /// A queue draining: judged on average only.
    pub fn average(now: Tick) -> Progress {
        Progress {
            since: now,
            windowed: false,
            window: None,
        }
    }

    /// When the transfer is next judged.
    pub fn deadline(&self, timeout_ticks: u32) -> Tick {
        let window = window_ticks(timeout_ticks);
        match self.window {
            None => self.since.wrapping_add(timeout_ticks - window),
            Some((start, _)) => start.wrapping_add(window),
        }
    }

    /// At the deadline, with `moved` bytes moved since the transfer began: opens the first
    /// window, or judges the one that ended and the average against `rate_per_tick`.
    pub fn judge(
        &mut self,
        now: Tick,
        moved: u64,
        timeout_ticks: u32,
        rate_per_tick: u64,
    ) -> Verdict {
        if let Some((_, base)) = self.window {
            let in_window = rate_per_tick.saturating_mul(u64::from(window_ticks(timeout_ticks)));
            let overall = rate_per_tick.saturating_mul(u64::from(now.wrapping_sub(self.since)));
            if (self.windowed && moved.saturating_sub(base) < in_window) || moved < overall {
                return Verdict::TooSlow;
            }
        }
        self.window = Some((now, moved));
        Verdict::CarryOn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_transfer_carries_on_and_a_stall_after_a_burst_is_caught_within_the_timeout() {
        // timeout 100 ticks, rate 10 bytes per tick: windows of 50 ticks need 500 bytes.
        let mut p = Progress::windowed(0);
        assert_eq!(
            p.deadline(100),
            50,
            "the first window opens half a timeout in"
        );
        assert_eq!(
            p.judge(50, 1_000_000, 100, 10),
            Verdict::CarryOn,
            "not judged yet"
        );
        assert_eq!(p.deadline(100), 100);
        assert_eq!(
            p.judge(100, 1_000_499, 100, 10),
            Verdict::TooSlow,
            "a burst buys nothing"
        );

        let mut steady = Progress::windowed(0);
        for (tick, moved) in [(50, 600), (100, 1200), (150, 1800)] {
            assert_eq!(steady.judge(tick, moved, 100, 10), Verdict::CarryOn);
        }
        assert_eq!(steady.deadline(100), 200);

        // Bursts of 600 bytes per window, then none: the empty window fails.
        let mut bursts = Progress::windowed(0);
        assert_eq!(bursts.judge(50, 600, 100, 10), Verdict::CarryOn);
        assert_eq!(bursts.judge(100, 1200, 100, 10), Verdict::CarryOn);
        assert_eq!(bursts.judge(150, 1800, 100, 10), Verdict::CarryOn);
        assert_eq!(bursts.judge(200, 1800, 100, 10), Verdict::TooSlow);
        // A late burst fills the window but not the average: 600 bytes in 100 ticks.
        let mut late = Progress::windowed(0);
        assert_eq!(late.judge(50, 0, 100, 10), Verdict::CarryOn);
        assert_eq!(late.judge(100, 600, 100, 10), Verdict::TooSlow);

        // A draining queue is judged on its average only: an empty window after a large
        // chunk passes.
        let mut queue = Progress::average(0);
        assert_eq!(queue.judge(50, 0, 100, 10), Verdict::CarryOn);
        assert_eq!(queue.judge(100, 1500, 100, 10), Verdict::CarryOn);
        assert_eq!(
            queue.judge(150, 1500, 100, 10),
            Verdict::CarryOn,
            "1,500 ≥ 10 × 150"
        );
        assert_eq!(
            queue.judge(200, 1500, 100, 10),
            Verdict::TooSlow,
            "1,500 < 10 × 200"
        );
    }

    #[test]
    fn deadlines_wrap_with_the_clock() {
        let p = Progress::windowed(u32::MAX - 10);
        assert_eq!(p.deadline(100), 39);
    }
}
