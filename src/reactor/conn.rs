//! Per-connection state, kept in the core's slab. An idle upgraded connection is just [`Conn`]:
//! everything else lives in [`Extra`], allocated only while a frame is split across reads, a
//! message is in flight, the kernel refuses bytes, or a rate-limit bucket is not full.

use std::os::fd::RawFd;

use crate::protocol::Reader;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the HTTP upgrade request.
    Handshake,
    /// Upgraded: frames flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (frames are still parsed, data ignored).
    Closing,
    /// We are done talking (refusal sent, or the connection failed): our side is shut down once
    /// the outbound bytes are flushed, and input is discarded until EOF or the close timeout.
    Lingering,
}

/// Bits of [`Conn::flags`].
pub mod flags {
    /// A one-shot POLLOUT is armed in the ring.
    pub const WRITE_ARMED: u8 = 1 << 0;
    /// Shut down our sending side as soon as the outbound queue drains.
    pub const SHUTDOWN_AFTER_FLUSH: u8 = 1 << 1;
    /// Release the connection as soon as the outbound queue drains.
    pub const RELEASE_AFTER_FLUSH: u8 = 1 << 2;
    /// A heartbeat ping is out and no frame has arrived since.
    pub const AWAITING_PONG: u8 = 1 << 3;
}

/// Bytes the kernel has not taken yet, in order. `start` is the first unsent byte.
#[derive(Default)]
pub struct Outbound {
    pub bytes: Vec<u8>,
    pub start: usize,
    /// Tick of the last time the queue was created or made progress (write-stall timeout).
    pub progress_tick: u32,
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
        debug_assert!(self.start <= self.bytes.len());
        if self.start == self.bytes.len() {
            // Drained: give the memory back; a queue exists only while backpressured.
            self.bytes = Vec::new();
            self.start = 0;
        }
    }
}

/// A token bucket counted in thousandths of a message, refilled per timer tick.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenBucket {
    pub milli_tokens: u64,
    pub refill_tick: u32,
}

impl TokenBucket {
    pub fn full(burst: u32, now_tick: u32) -> TokenBucket {
        TokenBucket {
            milli_tokens: burst as u64 * 1000,
            refill_tick: now_tick,
        }
    }

    /// Takes one message; false when the bucket is empty. `rate_milli_per_tick` is the refill.
    pub fn take(&mut self, burst: u32, rate_milli_per_tick: u64, now_tick: u32) -> bool {
        let elapsed = now_tick.wrapping_sub(self.refill_tick) as u64;
        let cap = burst as u64 * 1000;
        self.milli_tokens = (self.milli_tokens + elapsed * rate_milli_per_tick).min(cap);
        self.refill_tick = now_tick;
        if self.milli_tokens < 1000 {
            return false;
        }
        self.milli_tokens -= 1000;
        true
    }

    pub fn is_full(&self, burst: u32, rate_milli_per_tick: u64, now_tick: u32) -> bool {
        let elapsed = now_tick.wrapping_sub(self.refill_tick) as u64;
        self.milli_tokens + elapsed * rate_milli_per_tick >= burst as u64 * 1000
    }
}

/// Per-connection state that exists only while needed.
pub struct Extra {
    /// Unconsumed input: a partial request head, frame header or control frame.
    pub pending: Vec<u8>,
    /// The reader of a message in flight.
    pub reader: Reader,
    pub outbound: Outbound,
    /// Present while the message rate limit is on and the bucket is not full.
    pub bucket: Option<TokenBucket>,
}

impl Extra {
    pub fn new() -> Box<Extra> {
        Box::new(Extra {
            pending: Vec::new(),
            reader: Reader::default(),
            outbound: Outbound::default(),
            bucket: None,
        })
    }

    /// True when nothing here carries state: the box can be freed.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && self.reader.is_idle()
            && self.outbound.is_empty()
            && self.bucket.is_none()
    }
}

/// One connection. Kept small: this is the per-connection memory of an idle server.
pub struct Conn {
    pub fd: RawFd,
    pub generation: u32,
    /// Tick of the last frame (of any kind) received: heartbeats ping only silent peers.
    pub last_rx_tick: u32,
    /// Tick of the last application message received (the idle timeout).
    pub last_msg_tick: u32,
    pub phase: Phase,
    pub flags: u8,
    /// The close code we sent (0 before any), for counting closes we initiated.
    pub sent_close_code: u16,
    pub extra: Option<Box<Extra>>,
}

impl Conn {
    pub fn new(fd: RawFd, generation: u32, now_tick: u32) -> Conn {
        Conn {
            fd,
            generation,
            last_rx_tick: now_tick,
            last_msg_tick: now_tick,
            phase: Phase::Handshake,
            flags: 0,
            sent_close_code: 0,
            extra: None,
        }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn outbound_len(&self) -> usize {
        self.extra.as_ref().map_or(0, |e| e.outbound.len())
    }

    pub fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Extra::new)
    }

    /// Frees the extra state if it holds nothing.
    pub fn shrink(&mut self) {
        if self.extra.as_ref().is_some_and(|e| e.is_idle()) {
            self.extra = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_fits_in_32_bytes() {
        // The budget of an idle upgraded connection is 64 B in all (slab entry + timer node).
        assert!(
            std::mem::size_of::<Conn>() <= 32,
            "Conn is {} bytes",
            std::mem::size_of::<Conn>()
        );
        // The slab's private entry enum wraps it in Occupied/Vacant; Conn leaves room for its tag.
        assert!(
            std::mem::size_of::<Option<Conn>>() <= 32,
            "Option<Conn> is {} bytes",
            std::mem::size_of::<Option<Conn>>()
        );
    }

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
        assert!(
            b.take(burst, per_tick, 100)
                && b.take(burst, per_tick, 100)
                && b.take(burst, per_tick, 100)
        );
        assert!(
            !b.take(burst, per_tick, 100),
            "refill is capped at the burst"
        );
    }
}
