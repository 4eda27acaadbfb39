//! Per-core counters kept by the reactor.
//!
//! Each core owns one [`CoreStats`]; only that core's thread writes it, so an increment is a
//! relaxed load and store on the core's own cache lines (no locked instruction). Readers on other
//! threads (the metrics exporter, the exit summary) load them relaxed.

use crate::reactor::proxy::PROXY_REFUSALS;
use crate::tls::{TlsFailure, TLS_FAILURES};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::protocol::{MessageKind, RefusalReason};

/// A counter with a single writer.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
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

pub use crate::protocol::connection::Initiator;

/// Close codes counted one by one; any other code is counted as "other", no code as "none".
pub const COUNTED_CLOSE_CODES: [u16; 9] = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011];
const CLOSE_CODE_SLOTS: usize = COUNTED_CLOSE_CODES.len() + 2;

/// The label of close-code slot `i` (the codes, then "other", then "none").
pub fn close_code_label(i: usize) -> String {
    match i {
        i if i < COUNTED_CLOSE_CODES.len() => COUNTED_CLOSE_CODES[i].to_string(),
        i if i == COUNTED_CLOSE_CODES.len() => "other".into(),
        _ => "none".into(),
    }
}

fn close_code_slot(code: Option<u16>) -> usize {
    match code {
        None => CLOSE_CODE_SLOTS - 1,
        Some(c) => COUNTED_CLOSE_CODES
            .iter()
            .position(|&k| k == c)
            .unwrap_or(COUNTED_CLOSE_CODES.len()),
    }
}

/// Accept errors counted by errno.
pub const COUNTED_ACCEPT_ERRNOS: [(i32, &str); 4] = [
    (libc::EMFILE, "EMFILE"),
    (libc::ENFILE, "ENFILE"),
    (libc::ENOMEM, "ENOMEM"),
    (libc::ENOBUFS, "ENOBUFS"),
];

#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CoreStats {
    pub accepted: Counter,
    /// By [`COUNTED_ACCEPT_ERRNOS`] index, then "other".
    accept_errors: [Counter; COUNTED_ACCEPT_ERRNOS.len() + 1],
    pub handshakes_completed: Counter,
    pub handshake_timeouts: Counter,
    refused: [Counter; MAX_REFUSAL_REASONS],
    pub connections_open: Gauge,
    closed: [[Counter; CLOSE_CODE_SLOTS]; 3],
    pub protocol_errors: Counter,
    pub close_timeouts: Counter,
    pub heartbeat_pings_sent: Counter,
    pub heartbeat_timeouts: Counter,
    pub idle_timeouts: Counter,
    pub write_stall_closes: Counter,
    pub message_timeouts: Counter,
    pub slow_consumer_closes: Counter,
    pub rate_limit_closes: Counter,
    pub drained_cleanly: Counter,
    pub drained_forced: Counter,
    /// 1 from the stop signal on (this core is draining).
    pub draining: Gauge,
    /// Open connections the drain sent close 1001.
    pub drain_closes: Counter,
    /// Connections the drain has still to send close 1001 (after the listeners closed).
    pub drain_pending: Gauge,
    /// Messages and payload bytes by [`MessageKind`] (text = 0, binary = 1).
    messages_received: [Counter; 2],
    payload_bytes_received: [Counter; 2],
    messages_sent: [Counter; 2],
    payload_bytes_sent: [Counter; 2],
    /// Bytes written to sockets (frames, handshakes), and read from them.
    pub socket_bytes_sent: Counter,
    pub socket_bytes_received: Counter,
    /// Bytes waiting in outbound queues, and connections that have one.
    pub outbound_queued_bytes: Gauge,
    /// Memory the connections hold in buffers (the budget counts this), and the connections
    /// closed to bring it back under the budget.
    pub memory_held_bytes: Gauge,
    pub memory_sheds_inbound: Counter,
    pub memory_sheds_outbound: Counter,
    pub backpressured_connections: Gauge,
    /// PROXY protocol headers read, and connections refused before one, by
    /// [`crate::reactor::proxy::refusal_label`] index.
    pub proxy_headers: Counter,
    proxy_refusals: [Counter; PROXY_REFUSALS],
    /// TLS handshakes finished, and failed by [`TlsFailure`].
    pub tls_handshakes: Counter,
    tls_failures: [Counter; TLS_FAILURES.len()],
    /// permessage-deflate: connections that negotiated it; bytes of compressed messages
    /// received (on the wire, inflated) and sent (before, after compressing); connections
    /// closed with 1009 for a message inflating past max_message_size.
    pub deflate_connections: Gauge,
    pub deflate_received_compressed_bytes: Counter,
    pub deflate_received_inflated_bytes: Counter,
    pub deflate_sent_uncompressed_bytes: Counter,
    pub deflate_sent_compressed_bytes: Counter,
    pub deflate_inflate_limit_closes: Counter,
    /// io_uring activity.
    pub ring_submissions: Gauge,
    pub ring_completions: Gauge,
    pub ring_cq_overflows: Gauge,
}

impl CoreStats {
    pub fn proxy_refused(&self, reason: usize) {
        self.proxy_refusals[reason].inc();
    }
    pub fn proxy_refusal_count(&self, reason: usize) -> u64 {
        self.proxy_refusals[reason].get()
    }
    pub fn tls_failed(&self, failure: TlsFailure) {
        self.tls_failures[failure as usize].inc();
    }
    pub fn tls_failure_count(&self, failure: TlsFailure) -> u64 {
        self.tls_failures[failure as usize].get()
    }
    #[inline]
    pub fn refused(&self, reason: RefusalReason) {
        self.refused[reason as usize].inc();
    }
    pub fn refused_count(&self, reason: RefusalReason) -> u64 {
        self.refused[reason as usize].get()
    }
    #[inline]
    pub fn closed(&self, initiator: Initiator, code: Option<u16>) {
        self.closed[initiator as usize][close_code_slot(code)].inc();
    }
    /// Closed connections by initiator and close-code slot (see [`close_code_label`]).
    pub fn closed_counts(&self) -> impl Iterator<Item = (Initiator, usize, u64)> + '_ {
        Initiator::ALL.into_iter().flat_map(move |i| {
            (0..CLOSE_CODE_SLOTS).map(move |slot| (i, slot, self.closed[i as usize][slot].get()))
        })
    }
    pub fn accept_error(&self, errno: i32) {
        let i = COUNTED_ACCEPT_ERRNOS
            .iter()
            .position(|&(e, _)| e == errno)
            .unwrap_or(COUNTED_ACCEPT_ERRNOS.len());
        self.accept_errors[i].inc();
    }
    /// Accept errors by errno label ("EMFILE", ..., "other").
    pub fn accept_error_counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        COUNTED_ACCEPT_ERRNOS
            .iter()
            .map(|&(_, l)| l)
            .chain(["other"])
            .zip(self.accept_errors.iter().map(Counter::get))
    }
    #[inline]
    pub fn message_received(&self, kind: MessageKind, payload_bytes: usize) {
        self.messages_received[kind as usize].inc();
        self.payload_bytes_received[kind as usize].add(payload_bytes as u64);
    }
    #[inline]
    pub fn message_sent(&self, kind: MessageKind, payload_bytes: usize) {
        self.messages_sent[kind as usize].inc();
        self.payload_bytes_sent[kind as usize].add(payload_bytes as u64);
    }
    /// (messages, payload bytes) received of `kind`.
    pub fn received(&self, kind: MessageKind) -> (u64, u64) {
        (
            self.messages_received[kind as usize].get(),
            self.payload_bytes_received[kind as usize].get(),
        )
    }
    /// (messages, payload bytes) sent of `kind`.
    pub fn sent(&self, kind: MessageKind) -> (u64, u64) {
        (
            self.messages_sent[kind as usize].get(),
            self.payload_bytes_sent[kind as usize].get(),
        )
    }
}

/// A Prometheus histogram with fixed bucket bounds (seconds), recorded by one core and read at
/// scrape time. A sample is two single-writer [`Counter`] adds and no allocation, so its memory is the same after
/// a billion handshakes as after one, whether or not anything scrapes it.
pub struct SecondsHistogram {
    bounds: &'static [f64],
    /// Count per bucket, not cumulative: `counts[i]` holds samples in (bounds[i-1], bounds[i]];
    /// the last one is above every bound (+Inf).
    counts: Box<[Counter]>,
    sum_nanos: Counter,
}

impl SecondsHistogram {
    /// `bounds` ascending.
    pub fn new(bounds: &'static [f64]) -> SecondsHistogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        SecondsHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| Counter::default()).collect(),
            sum_nanos: Counter::default(),
        }
    }

    pub fn record(&self, seconds: f64) {
        // Prometheus buckets are "less than or equal": the first bound not below the sample.
        let i = self.bounds.partition_point(|&b| b < seconds);
        self.counts[i].inc();
        self.sum_nanos.add((seconds.max(0.0) * 1e9) as u64);
    }

    /// (upper bound, cumulative count) per bucket, +Inf last as `f64::INFINITY`, then the sum in
    /// seconds. The last cumulative count is the sample count.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64) {
        let mut total = 0;
        let buckets = self
            .counts
            .iter()
            .zip(self.bounds.iter().copied().chain([f64::INFINITY]))
            .map(|(c, bound)| {
                total += c.get();
                (bound, total)
            })
            .collect();
        let sum = self.sum_nanos.get() as f64 / 1e9;
        (buckets, sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_histogram_buckets_are_cumulative_and_inclusive() {
        static BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];
        let h = SecondsHistogram::new(&BOUNDS);
        for v in [0.0005, 0.001, 0.002, 0.01, 0.5, 7.0] {
            h.record(v);
        }
        let (buckets, sum) = h.snapshot();
        assert_eq!(
            buckets,
            [(0.001, 2), (0.01, 4), (0.1, 4), (f64::INFINITY, 6)],
            "a sample equal to a bound counts in that bound's bucket"
        );
        assert!((sum - 7.5135).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn closes_are_counted_by_initiator_and_code() {
        let stats = CoreStats::default();
        stats.closed(Initiator::Peer, Some(1000));
        stats.closed(Initiator::Peer, Some(1000));
        stats.closed(Initiator::Server, Some(4321));
        stats.closed(Initiator::Abnormal, None);
        let nonzero: Vec<(Initiator, String, u64)> = stats
            .closed_counts()
            .filter(|c| c.2 > 0)
            .map(|(i, s, n)| (i, close_code_label(s), n))
            .collect();
        assert_eq!(
            nonzero,
            vec![
                (Initiator::Peer, "1000".to_string(), 2),
                (Initiator::Server, "other".to_string(), 1),
                (Initiator::Abnormal, "none".to_string(), 1)
            ]
        );
    }

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
