//! Per-core counters kept by the reactor.
//!
//! Each core owns one [`CoreStats`]; only that core's thread writes it, so an increment is a
//! relaxed load and store on the core's own cache lines (no locked instruction). Readers on other
//! threads (the metrics exporter, the exit summary) load them relaxed.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::RefusalReason;

/// A counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A gauge with a single writer.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Most refusal reasons the counter table holds; checked against the enum in a test.
pub const MAX_REFUSAL_REASONS: usize = 32;

#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CoreStats {
    pub accepted: Counter,
    pub accept_errors: Counter,
    pub handshakes_completed: Counter,
    pub handshake_timeouts: Counter,
    refused: [Counter; MAX_REFUSAL_REASONS],
    pub connections_open: Gauge,
    pub closed_by_peer: Counter,
    pub closed_by_server: Counter,
    pub closed_abnormally: Counter,
    pub protocol_errors: Counter,
    pub close_timeouts: Counter,
    pub messages_received: Counter,
    pub bytes_received: Counter,
    pub messages_sent: Counter,
    pub bytes_sent: Counter,
    pub backpressured: Counter,
}

impl CoreStats {
    #[inline]
    pub fn refused(&self, reason: RefusalReason) {
        self.refused[reason as usize].inc();
    }
    pub fn refused_count(&self, reason: RefusalReason) -> u64 {
        self.refused[reason as usize].get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_reason_has_a_counter_of_its_own() {
        assert!(RefusalReason::ALL.len() <= MAX_REFUSAL_REASONS);
        let stats = CoreStats::default();
        for (i, r) in RefusalReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                stats.refused(*r);
            }
        }
        for (i, r) in RefusalReason::ALL.iter().enumerate() {
            assert_eq!(stats.refused_count(*r), i as u64 + 1, "{r:?}");
        }
    }
}
