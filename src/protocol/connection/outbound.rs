//! Bytes the transport has not taken yet, and the message-rate token bucket: the two pieces of
//! connection state that exist only while needed.

use super::Tick;

/// Bytes the transport refused, in order. `start` is the first unsent byte.
#[derive(Debug, Default)]
pub struct Outbound {
    bytes: Vec<u8>,
    start: usize,
    /// Tick of the last time the queue was created or made progress (write-stall timeout).
    pub progress_tick: Tick,
}

impl Outbound {
    pub fn unsent(&self) -> &[u8] {
        &self.bytes[self.start..]
    }

    pub fn len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, a: &[u8], b: &[u8]) {
        // Reclaim the sent prefix before growing, so a long-lived queue does not creep.
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(a);
        self.bytes.extend_from_slice(b);
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        assert!(self.start <= self.bytes.len(), "consumed past the queue");
        if self.start == self.bytes.len() {
            // Drained: give the memory back; a queue exists only while backpressured.
            self.bytes = Vec::new();
            self.start = 0;
        }
    }
}

/// A token bucket counted in thousandths of a message, refilled per tick.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenBucket {
    pub milli_tokens: u64,
    pub refill_tick: Tick,
}

impl TokenBucket {
    pub fn full(burst: u32, now: Tick) -> TokenBucket {
        TokenBucket {
            milli_tokens: burst as u64 * 1000,
            refill_tick: now,
        }
    }

    /// Takes one message; false when the bucket is empty. `rate_milli_per_tick` is the refill.
    pub fn take(&mut self, burst: u32, rate_milli_per_tick: u64, now: Tick) -> bool {
        let elapsed = now.wrapping_sub(self.refill_tick) as u64;
        let cap = burst as u64 * 1000;
        self.milli_tokens = (self.milli_tokens + elapsed * rate_milli_per_tick).min(cap);
        self.refill_tick = now;
        if self.milli_tokens < 1000 {
            return false;
        }
        self.milli_tokens -= 1000;
        true
    }

    pub fn is_full(&self, burst: u32, rate_milli_per_tick: u64, now: Tick) -> bool {
        let elapsed = now.wrapping_sub(self.refill_tick) as u64;
        self.milli_tokens + elapsed * rate_milli_per_tick >= burst as u64 * 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_keeps_order_and_frees_memory_when_drained() {
        let mut o = Outbound::default();
        o.push(b"ab", b"cd");
        o.consume(3);
        assert_eq!(o.unsent(), b"d");
        o.push(b"e", b"");
        assert_eq!(o.unsent(), b"de");
        assert_eq!(o.start, 0, "sent prefix reclaimed");
        o.consume(2);
        assert!(o.is_empty());
        assert_eq!(o.bytes.capacity(), 0, "a drained queue holds no memory");
    }

    #[test]
    fn token_bucket_allows_the_burst_then_the_rate() {
        // 10 messages/s = 1 message per 100 ms tick = 1000 milli-tokens per tick; burst 3.
        let (burst, per_tick) = (3, 1000);
        let mut b = TokenBucket::full(burst, 0);
        assert!((0..3).all(|_| b.take(burst, per_tick, 0)));
        assert!(!b.take(burst, per_tick, 0), "burst exhausted");
        assert!(b.take(burst, per_tick, 1), "one tick refills one message");
        assert!(!b.take(burst, per_tick, 1));
        assert!(!b.is_full(burst, per_tick, 2));
        assert!(b.is_full(burst, per_tick, 4));
        assert!((0..3).all(|_| b.take(burst, per_tick, 100)));
        assert!(
            !b.take(burst, per_tick, 100),
            "refill is capped at the burst"
        );
    }
}
