//! `close_on_token_expiry`: when a connection's token (`exp` of its JWT) expires, the connection
//! is closed with 4001 ([`EXPIRED_CODE`]) so the client fetches a new token and reconnects.
//!
//! Tokens issued together expire together; closing all their connections in the same instant
//! would bring all their clients back at once. Each close is therefore moved a pseudo-random
//! offset within `token_expiry_close_window` after the expiry, derived from the connection
//! (no random number generator on the path, and the same connection always gets the same
//! offset, which keeps tests reproducible).
//!
//! One queue per core, sans IO: the reactor schedules a connection when it opens, forgets it
//! when it closes (so the queue holds only open connections), and pops what is due with its
//! own clock.

use std::collections::{BTreeSet, HashMap};

/// The close code: in the 4000-4999 range for applications (RFC 6455 §7.4.2).
pub const EXPIRED_CODE: u16 = 4001;
/// The close reason the client sees.
pub const EXPIRED_REASON: &str = "token expired: refresh the token and reconnect";

/// One core's connections with an expiring token, by when to close them.
#[derive(Debug, Default)]
pub struct ExpiryQueue {
    window_ms: u64,
    /// (close at, key, generation), soonest first.
    order: BTreeSet<(u64, u32, u32)>,
    /// key → (generation, close at), to forget a connection that closed.
    by_key: HashMap<u32, (u32, u64)>,
}

impl ExpiryQueue {
    /// A queue that spreads closes over `window_ms` after each expiry.
    pub fn new(window_ms: u64) -> ExpiryQueue {
        ExpiryQueue {
            window_ms,
            ..ExpiryQueue::default()
        }
    }

    /// Schedules the connection `(key, generation)` whose token expires at `exp_unix_s`.
    pub fn schedule(&mut self, key: u32, generation: u32, exp_unix_s: u64) {
        self.forget(key, generation);
        let jitter = if self.window_ms == 0 {
            0
        } else {
            spread(key, generation, exp_unix_s) % self.window_ms
        };
        let at = exp_unix_s.saturating_mul(1000).saturating_add(jitter);
        self.order.insert((at, key, generation));
        self.by_key.insert(key, (generation, at));
    }

    /// Forgets a connection that closed (a no-op when it was not scheduled).
    pub fn forget(&mut self, key: u32, generation: u32) {
        if let Some(&(g, at)) = self.by_key.get(&key) {
            if g == generation {
                self.by_key.remove(&key);
                self.order.remove(&(at, key, generation));
            }
        }
    }

    /// The next connection due at `now_unix_ms`, removed from the queue.
    pub fn pop_due(&mut self, now_unix_ms: u64) -> Option<(u32, u32)> {
        let &(at, key, generation) = self.order.first()?;
        if at > now_unix_ms {
            return None;
        }
        self.order.pop_first();
        self.by_key.remove(&key);
        Some((key, generation))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// A well-mixed 64-bit value from the connection (splitmix64's finaliser).
fn spread(key: u32, generation: u32, exp: u64) -> u64 {
    let mut z = (u64::from(key) << 32 | u64::from(generation)) ^ exp.rotate_left(17);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_come_after_the_expiry_within_the_window_spread_out() {
        let mut queue = ExpiryQueue::new(10_000);
        let exp = 1_700_000_000;
        for key in 0..1000 {
            queue.schedule(key, 1, exp);
        }
        assert_eq!(queue.pop_due(exp * 1000 - 1), None, "nothing before exp");
        let mut seconds = [0usize; 10];
        let mut last = 0;
        for now in (exp * 1000..=exp * 1000 + 10_000).step_by(100) {
            while let Some((key, generation)) = queue.pop_due(now) {
                assert_eq!(generation, 1);
                assert!(key < 1000);
                seconds[((now - exp * 1000) / 1000).min(9) as usize] += 1;
                last = now;
            }
        }
        assert!(queue.is_empty());
        assert!(last > exp * 1000 + 9000, "spread to the end of the window");
        for (second, closed) in seconds.iter().enumerate() {
            assert!(
                (50..=150).contains(closed),
                "second {second}: {closed} of 1000"
            );
        }
    }

    #[test]
    fn closed_connections_are_forgotten_and_generations_kept_apart() {
        let mut queue = ExpiryQueue::new(0);
        queue.schedule(1, 1, 100);
        queue.schedule(2, 1, 50);
        queue.forget(1, 2); // another connection in the same slot: not this one
        assert_eq!(queue.len(), 2);
        queue.forget(1, 1);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop_due(49_999), None);
        assert_eq!(queue.pop_due(50_000), Some((2, 1)));
        assert_eq!(queue.pop_due(u64::MAX), None);
        queue.schedule(3, 1, u64::MAX);
        assert_eq!(
            queue.pop_due(u64::MAX),
            Some((3, 1)),
            "saturates, no overflow"
        );
    }
}
