//! Per-client-address token buckets on handshakes, in a fixed-size table per core.
//!
//! The table is a set-associative cache: an address hashes (with a per-table random key, so
//! nobody can aim many addresses at one set) to a set of [`WAYS`] slots. A new address takes a
//! free slot of its set or evicts one: first a bucket that has refilled completely (forgetting
//! it changes nothing), else the least recently seen. Lookup and eviction look at [`WAYS`]
//! slots, and the memory is allocated once, whatever the number of source addresses.
//! IPv6 clients are limited per /64, the block one subscriber usually gets: limiting single
//! IPv6 addresses would let anyone walk around the limit.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::net::IpAddr;

use super::trusted_proxies::canonical;

/// Default `handshake_rate_table_size`.
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// Slots per set; the capacity is rounded up to a multiple of it.
pub const WAYS: usize = 8;
/// One token, in the milli-tokens buckets count in.
const TOKEN_MILLI: u64 = 1000;

/// Which bucket an address draws from: IPv4 addresses singly, IPv6 addresses by /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct BucketKey(u128);

impl BucketKey {
    fn of(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => BucketKey(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => BucketKey(u128::from(v6) & !u128::from(u64::MAX)),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: BucketKey,
    /// Milli-tokens available at `updated_ms`.
    tokens_milli: u64,
    updated_ms: u64,
    /// The limiter's check counter when this address was last seen; 0: the slot is free.
    last_seen: u64,
}

const FREE: Slot = Slot {
    key: BucketKey(0),
    tokens_milli: 0,
    updated_ms: 0,
    last_seen: 0,
};

/// One core's handshake limiter. `rate_per_s == 0` switches it off.
#[derive(Debug)]
pub struct HandshakeRateLimiter {
    rate_per_s: u32,
    burst: u32,
    slots: Box<[Slot]>,
    sets: usize,
    hasher: RandomState,
    /// Checks so far: the recency clock (starts at 1 so 0 can mean free).
    checks: u64,
    len: usize,
}

impl HandshakeRateLimiter {
    /// `rate_per_s` handshakes per second per address, up to `burst` at once, tracking at most
    /// `capacity` addresses (rounded up to a multiple of [`WAYS`]). Memory is allocated here,
    /// once; nothing when the limiter is off.
    pub fn new(rate_per_s: u32, burst: u32, capacity: usize) -> Self {
        let sets = capacity.max(1).div_ceil(WAYS);
        let slots = if rate_per_s == 0 { 0 } else { sets * WAYS };
        HandshakeRateLimiter {
            rate_per_s,
            burst: burst.max(1),
            slots: vec![FREE; slots].into_boxed_slice(),
            sets,
            hasher: RandomState::new(),
            checks: 0,
            len: 0,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.rate_per_s > 0
    }

    /// Takes one token for a handshake from `ip` at `now_ms` (any monotonic milliseconds).
    /// `Err(seconds)`: refuse with 429 and `Retry-After: seconds` (at least 1).
    pub fn check(&mut self, ip: IpAddr, now_ms: u64) -> Result<(), u32> {
        if !self.is_enabled() {
            return Ok(());
        }
        self.checks += 1;
        let key = BucketKey::of(ip);
        let full = u64::from(self.burst) * TOKEN_MILLI;
        let rate = u64::from(self.rate_per_s);
        let set = (self.hasher.hash_one(key) % self.sets as u64) as usize;
        let ways = &mut self.slots[set * WAYS..(set + 1) * WAYS];
        let entry = match ways.iter().position(|s| s.last_seen != 0 && s.key == key) {
            Some(way) => &mut ways[way],
            None => {
                let way = victim(ways, now_ms, rate, full);
                if ways[way].last_seen == 0 {
                    self.len += 1;
                    debug_assert!(self.len <= self.sets * WAYS);
                }
                ways[way] = Slot {
                    key,
                    tokens_milli: full,
                    updated_ms: now_ms,
                    last_seen: 0,
                };
                &mut ways[way]
            }
        };
        entry.last_seen = self.checks;
        let elapsed_ms = now_ms.saturating_sub(entry.updated_ms);
        // rate tokens per second = rate milli-tokens per millisecond.
        entry.tokens_milli = entry
            .tokens_milli
            .saturating_add(elapsed_ms.saturating_mul(rate))
            .min(full);
        entry.updated_ms = entry.updated_ms.max(now_ms);
        if entry.tokens_milli >= TOKEN_MILLI {
            entry.tokens_milli -= TOKEN_MILLI;
            return Ok(());
        }
        let wait_ms = (TOKEN_MILLI - entry.tokens_milli).div_ceil(rate);
        Err(u32::try_from(wait_ms.div_ceil(1000))
            .unwrap_or(u32::MAX)
            .max(1))
    }

    /// Addresses tracked now; never more than [`capacity`](Self::capacity).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most addresses ever tracked (0 when off).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// The way of a full or partly free set to (re)use: a free one, else the least recently seen
/// of the refilled buckets, else the least recently seen.
fn victim(ways: &[Slot], now_ms: u64, rate: u64, full: u64) -> usize {
    let refilled = |slot: &Slot| {
        slot.tokens_milli
            .saturating_add(now_ms.saturating_sub(slot.updated_ms).saturating_mul(rate))
            >= full
    };
    let oldest = |keep: &dyn Fn(&Slot) -> bool| {
        (0..ways.len())
            .filter(|&way| keep(&ways[way]))
            .min_by_key(|&way| ways[way].last_seen)
    };
    oldest(&|slot| slot.last_seen == 0)
        .or_else(|| oldest(&refilled))
        .or_else(|| oldest(&|_| true))
        .expect("a set has WAYS slots")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn off_admits_everything_and_tracks_nothing() {
        let mut limiter = HandshakeRateLimiter::new(0, 20, 4096);
        assert!(!limiter.is_enabled());
        for i in 0..10_000 {
            assert_eq!(limiter.check(v4(i), 0), Ok(()));
        }
        assert_eq!(limiter.len(), 0);
    }

    #[test]
    fn burst_then_refill_at_the_rate() {
        let mut limiter = HandshakeRateLimiter::new(2, 5, 16);
        let ip = v4(1);
        for _ in 0..5 {
            assert_eq!(limiter.check(ip, 1_000), Ok(()));
        }
        assert_eq!(limiter.check(ip, 1_000), Err(1));
        // 2 per second: one token after 500 ms.
        assert_eq!(limiter.check(ip, 1_499), Err(1));
        assert_eq!(limiter.check(ip, 1_500), Ok(()));
        assert_eq!(limiter.check(ip, 1_500), Err(1));
        // A long pause refills only up to the burst.
        let later = 1_000_000;
        for _ in 0..5 {
            assert_eq!(limiter.check(ip, later), Ok(()));
        }
        assert!(limiter.check(ip, later).is_err());
        // Other addresses have their own buckets.
        assert_eq!(limiter.check(v4(2), later), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        // 1 per 10 s is not expressible; 1 per second with burst 1: one second to wait.
        let mut limiter = HandshakeRateLimiter::new(1, 1, 4);
        assert_eq!(limiter.check(v4(9), 0), Ok(()));
        assert_eq!(limiter.check(v4(9), 0), Err(1));
        assert_eq!(limiter.check(v4(9), 999), Err(1));
        assert_eq!(limiter.check(v4(9), 1000), Ok(()));
        let mut fast = HandshakeRateLimiter::new(1000, 1, 4);
        assert_eq!(fast.check(v4(9), 0), Ok(()));
        assert_eq!(fast.check(v4(9), 0), Err(1), "never less than 1 s");
    }

    #[test]
    fn time_going_backwards_never_adds_tokens() {
        let mut limiter = HandshakeRateLimiter::new(1, 1, 4);
        assert_eq!(limiter.check(v4(3), 5_000), Ok(()));
        assert!(limiter.check(v4(3), 0).is_err());
        assert!(limiter.check(v4(3), 5_500).is_err());
        assert_eq!(limiter.check(v4(3), 6_000), Ok(()));
    }

    #[test]
    fn table_is_bounded_under_100000_distinct_addresses() {
        let capacity = 4096;
        let mut limiter = HandshakeRateLimiter::new(1, 2, capacity);
        let table: *const Slot = limiter.slots.as_ptr();
        for i in 0..100_000u32 {
            let ip = v4(0x7f00_0000 | i); // 127.0.0.0/8
            assert_eq!(limiter.check(ip, u64::from(i / 1000)), Ok(()));
            assert!(limiter.len() <= capacity);
        }
        assert_eq!(limiter.len(), capacity);
        assert_eq!(limiter.capacity(), capacity);
        assert_eq!(
            limiter.slots.as_ptr(),
            table,
            "the table is never reallocated"
        );
        for i in 0..100_000u64 {
            let ip = IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64));
            let _ = limiter.check(ip, 200 + i / 1000);
            assert!(limiter.len() <= capacity);
        }
        assert_eq!(limiter.len(), capacity);
        assert_eq!(
            std::mem::size_of_val(&*limiter.slots),
            capacity * std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn a_busy_address_survives_a_flood_of_new_ones() {
        let mut limiter = HandshakeRateLimiter::new(1, 3, 64);
        let busy = v4(0x0a00_0001);
        for _ in 0..3 {
            assert_eq!(limiter.check(busy, 0), Ok(()));
        }
        // A flood of one-off addresses, all at the same instant, interleaved with the busy one:
        // fewer new addresses than a set has ways arrive between two of its handshakes.
        for i in 0..10_000 {
            let _ = limiter.check(v4(0x7f00_0000 | i), 0);
            if i % 4 == 0 {
                assert!(
                    limiter.check(busy, 0).is_err(),
                    "evicting the busy address would hand it a fresh bucket ({i})"
                );
            }
        }
    }

    #[test]
    fn ipv6_is_limited_per_64_and_mapped_v4_as_v4() {
        let mut limiter = HandshakeRateLimiter::new(1, 1, 16);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(limiter.check(a, 0), Ok(()));
        assert!(limiter.check(b, 0).is_err(), "same /64");
        assert_eq!(limiter.check(other, 0), Ok(()));
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(limiter.check(v4, 0), Ok(()));
        assert!(limiter.check(mapped, 0).is_err());
        assert_eq!(limiter.len(), 3);
    }

    #[test]
    fn capacity_rounds_up_to_whole_sets() {
        let mut limiter = HandshakeRateLimiter::new(5, 5, 0);
        assert_eq!(limiter.capacity(), WAYS);
        for i in 0..100 {
            assert_eq!(limiter.check(v4(i), 0), Ok(()));
            assert!(limiter.len() <= WAYS);
        }
        assert_eq!(limiter.len(), WAYS);
        assert_eq!(HandshakeRateLimiter::new(5, 5, 4097).capacity(), 4104);
        assert_eq!(
            HandshakeRateLimiter::new(0, 5, 4096).capacity(),
            0,
            "off: nothing allocated"
        );
    }

    #[test]
    fn refilled_buckets_are_forgotten_before_drained_ones() {
        // One set only: WAYS addresses drain their buckets, then newcomers arrive much later.
        let mut limiter = HandshakeRateLimiter::new(1, 1, WAYS);
        for i in 0..WAYS as u32 {
            assert_eq!(limiter.check(v4(i), 0), Ok(()));
        }
        // At 500 ms nobody has refilled: the least recently seen (address 0) is evicted.
        assert_eq!(limiter.check(v4(100), 500), Ok(()));
        assert!(
            limiter.check(v4(1), 500).is_err(),
            "address 1 kept its drained bucket"
        );
        assert_eq!(limiter.check(v4(0), 500), Ok(()), "address 0 was forgotten");
    }
}
