//! Bytes the transport has not taken yet, and the message-rate token bucket: the two pieces of
//! connection state that exist only while needed.

use std::collections::VecDeque;

use super::{Progress, Tick};

/// Bytes the transport refused, in order, with their frame boundaries, and the control frames
/// (ping, pong) waiting to go out ahead of them at the next boundary.
#[derive(Debug, Default)]
pub struct Outbound {
    bytes: Vec<u8>,
    /// The first unsent byte of `bytes`.
    start: usize,
    /// Unsent bytes of each queued frame, in order; the first may be partly sent.
    frames: VecDeque<usize>,
    /// The first frame is partly sent: nothing may go out before its rest.
    head_started: bool,
    /// A heartbeat ping and the answer to the peer's latest ping (RFC 6455 §5.5.3 allows
    /// answering only the latest), encoded; at most two small frames.
    control: Vec<u8>,
    /// The first unsent byte of `control`.
    control_start: usize,
    /// How the queue drains (see [`Progress`]), from when it began.
    pub progress: Progress,
    /// Bytes sent from the queue since it began.
    pub sent_bytes: u64,
}

/// Most bytes the control slot holds: one ping and one pong of at most 125 bytes of payload,
/// each with a client's 6 to 8 byte header.
pub const MAX_CONTROL_QUEUE_BYTES: usize = 2 * (125 + 8);

impl Outbound {
    /// What to send next: the control frames when at a frame boundary, else the queued bytes.
    pub fn unsent(&self) -> &[u8] {
        let control_waits = self.control_start < self.control.len();
        if control_waits && !self.head_started {
            &self.control[self.control_start..]
        } else if control_waits {
            // Only the rest of the started frame: the control frames go at its end.
            let head = self.frames.front().copied().unwrap_or(0);
            &self.bytes[self.start..self.start + head]
        } else {
            &self.bytes[self.start..]
        }
    }

    /// Bytes queued, data and control.
    pub fn len(&self) -> usize {
        self.data_len() + self.control.len() - self.control_start
    }

    /// Bytes of queued data frames (what `max_outbound_buffer` counts).
    pub fn data_len(&self) -> usize {
        self.bytes.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues one frame (`a` then `b`); `started`: its beginning was already sent.
    pub fn push(&mut self, a: &[u8], b: &[u8], started: bool) {
        debug_assert!(
            !started || self.frames.is_empty(),
            "only the head frame can be started"
        );
        // Reclaim the sent prefix before growing, so a long-lived queue does not creep.
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(a);
        self.bytes.extend_from_slice(b);
        self.frames.push_back(a.len() + b.len());
        self.head_started |= started;
    }

    /// Queues a control frame to go ahead of queued data. A pong replaces a pong still waiting.
    pub fn push_control(&mut self, frame: &[u8], is_pong: bool) {
        if is_pong {
            self.drop_waiting_pong();
        }
        if self.control.len() + frame.len() <= MAX_CONTROL_QUEUE_BYTES {
            self.control.extend_from_slice(frame);
        }
    }

    /// Control frames are kept in order ping, pong; a pong is always the last one.
    fn drop_waiting_pong(&mut self) {
        let mut pos = 0;
        while pos < self.control.len() {
            let len = control_frame_len(&self.control[pos..]);
            // A pong partly sent must finish; only one not yet started is replaced.
            if self.control[pos] & 0x0F == 0xA && pos >= self.control_start {
                self.control.drain(pos..pos + len);
                return;
            }
            pos += len;
        }
    }

    /// Heap memory held by the queue.
    pub fn held_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.control.capacity()
            + self.frames.capacity() * std::mem::size_of::<usize>()
    }

    /// `n` bytes of [`Outbound::unsent`] were taken.
    pub fn consume(&mut self, n: usize) {
        self.sent_bytes += n as u64;
        if self.control_start < self.control.len() && !self.head_started {
            self.control_start += n;
            assert!(
                self.control_start <= self.control.len(),
                "consumed past the control frames"
            );
            if self.control_start == self.control.len() {
                self.control.clear();
                self.control_start = 0;
            }
            return;
        }
        self.start += n;
        assert!(self.start <= self.bytes.len(), "consumed past the queue");
        let mut left = n;
        while left > 0 {
            let head = self
                .frames
                .front_mut()
                .expect("queued bytes belong to a frame");
            if *head <= left {
                left -= *head;
                self.frames.pop_front();
                self.head_started = false;
            } else {
                *head -= left;
                left = 0;
                self.head_started = true;
            }
        }
        if self.start == self.bytes.len() {
            // Drained: give the memory back; a queue exists only while backpressured.
            self.bytes = Vec::new();
            self.start = 0;
            self.frames = VecDeque::new();
        }
    }
}

/// Length of the control frame at the start of `frame` (header and payload; ≤ 125 bytes of
/// payload, so the 7-bit length is the length).
fn control_frame_len(frame: &[u8]) -> usize {
    let masked = frame[1] & 0x80 != 0;
    2 + if masked { 4 } else { 0 } + usize::from(frame[1] & 0x7F)
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
        o.push(b"ab", b"cd", false);
        o.consume(3);
        assert_eq!(o.unsent(), b"d");
        o.push(b"e", b"", false);
        assert_eq!(o.unsent(), b"de");
        assert_eq!(o.start, 0, "sent prefix reclaimed");
        o.consume(2);
        assert!(o.is_empty());
        assert_eq!(o.bytes.capacity(), 0, "a drained queue holds no memory");
        assert_eq!(o.sent_bytes, 5);
    }

    #[test]
    fn control_frames_go_ahead_at_the_next_frame_boundary_and_a_pong_replaces_a_pong() {
        let ping = [0x89, 0x00];
        let pong = |b: u8| [0x8A, 0x01, b];
        let mut o = Outbound::default();
        o.push(b"AAAA", b"", true); // the rest of a frame partly sent
        o.push(b"BBBB", b"", false);
        o.push_control(&pong(1), true);
        o.push_control(&ping, false);
        o.push_control(&pong(2), true);
        assert_eq!(
            o.control,
            [0x89, 0x00, 0x8A, 0x01, 2],
            "the latest pong only"
        );
        assert_eq!(o.data_len(), 8);
        assert_eq!(
            o.unsent(),
            b"AAAA",
            "the started frame finishes first, alone"
        );
        o.consume(2);
        assert_eq!(o.unsent(), b"AA");
        o.consume(2);
        assert_eq!(
            o.unsent(),
            [0x89, 0x00, 0x8A, 0x01, 2],
            "at the boundary: control first"
        );
        o.consume(5);
        assert_eq!(o.unsent(), b"BBBB");
        o.consume(4);
        assert!(o.is_empty());
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
