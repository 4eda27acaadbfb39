//! The memory budget: what a core's connections hold in buffers (partial input, messages being
//! received, outbound queues, request heads), as the connections report it. Near the budget new
//! upgrades are refused (503, `memory_budget`); past it the connections holding the most are
//! shed until the core is back under it, so the process never runs out of memory whatever its
//! clients send or fail to read.

use super::event_loop::Reactor;
use crate::app::App;
use crate::protocol::connection::Tick;

/// Free memory is handed back to the system (malloc_trim) when a core's held memory has fallen
/// below a quarter of a peak of at least this much.
const TRIM_AFTER_PEAK_BYTES: u64 = 16 << 20;

/// Upgrades are refused from this share of the budget on (per mille): the last tenth is room
/// for the connections already open.
pub const REFUSE_FROM_PER_MILLE: u64 = 900;
/// Shedding stops at this share of the budget, so it does not run again at the next byte.
const SHED_DOWN_TO_PER_MILLE: u64 = 800;

/// Whether this core's connections hold enough that a new one should be refused.
pub fn near_budget(held_bytes: u64, budget_bytes: u64) -> bool {
    held_bytes.saturating_mul(1000) >= budget_bytes.saturating_mul(REFUSE_FROM_PER_MILLE)
}

impl<A: App> Reactor<A> {
    /// Sheds the connections holding the most while the core is over its budget. Runs once per
    /// loop pass; the scan of the slots happens only when over the budget.
    pub(super) fn enforce_budget(&mut self) {
        let budget = self.io.settings.memory_budget_bytes;
        let held = self.io.stats.memory_held_bytes.get();
        self.trim_after_peak(held);
        if held <= budget {
            return;
        }
        let target = budget.saturating_mul(SHED_DOWN_TO_PER_MILLE) / 1000;
        let mut holders: Vec<(usize, u32)> = self
            .io
            .conns
            .iter()
            .filter(|(_, slot)| !slot.conn.is_released())
            .map(|(key, slot)| (slot.conn.held_bytes(), key as u32))
            .filter(|&(bytes, _)| bytes > 0)
            .collect();
        holders.sort_unstable_by(|a, b| b.cmp(a));
        let now: Tick = self.io.now_tick;
        for (_, key) in holders {
            if self.io.stats.memory_held_bytes.get() <= target {
                break;
            }
            self.io
                .with_conn(key, |conn, cfg, _, out| conn.shed(now, cfg, out));
        }
        tracing::warn!(
            core = self.io.core,
            held_bytes = held,
            budget_bytes = budget,
            now_held_bytes = self.io.stats.memory_held_bytes.get(),
            "over the memory budget: closed the connections holding the most"
        );
    }
}

impl<A: App> Reactor<A> {
    /// After a burst (slow readers, large messages) the buffers are freed, but the allocator
    /// keeps the pages: give them back once the core holds less than a quarter of its peak.
    fn trim_after_peak(&mut self, held: u64) {
        self.held_peak_bytes = self.held_peak_bytes.max(held);
        if self.held_peak_bytes >= TRIM_AFTER_PEAK_BYTES && held < self.held_peak_bytes / 4 {
            crate::sys::process::trim_free_memory();
            tracing::debug!(
                core = self.io.core,
                peak_bytes = self.held_peak_bytes,
                held_bytes = held,
                "memory given back"
            );
            self.held_peak_bytes = held;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_are_refused_in_the_last_tenth_of_the_budget() {
        assert!(!near_budget(899, 1000));
        assert!(near_budget(900, 1000));
        assert!(near_budget(5000, 1000));
        assert!(near_budget(u64::MAX, u64::MAX));
    }
}
