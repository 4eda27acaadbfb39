//! A fixed-bucket log-linear latency histogram: recording is an index computation and an
//! increment, never an allocation.
//!
//! Values below `2^SUB_BITS` get one bucket each (exact). Above that, each power of two is split
//! into `2^(SUB_BITS-1)` equal buckets, so a reported value is within `1 / 2^(SUB_BITS-1)`
//! (0.8 %) of the true one. Values above `MAX_VALUE` land in the last bucket (the exact
//! maximum is tracked separately).

/// Linear resolution bits: 256 exact buckets, then 128 buckets per power of two.
const SUB_BITS: u32 = 8;
const SUB_COUNT: u64 = 1 << SUB_BITS;
const HALF_COUNT: u64 = SUB_COUNT / 2;
/// Largest value bucketed precisely: 2^40 ns is about 18 minutes.
const MAX_EXPONENT: u32 = 40;
pub const MAX_VALUE: u64 = (1 << MAX_EXPONENT) - 1;
/// Buckets: the linear range, then `HALF_COUNT` per power of two from 2^SUB_BITS to 2^39.
const BUCKETS: usize =
    SUB_COUNT as usize + (MAX_EXPONENT - SUB_BITS) as usize * HALF_COUNT as usize;

pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish()
    }
}

fn bucket_of(value: u64) -> usize {
    let value = value.min(MAX_VALUE);
    if value < SUB_COUNT {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let shift = msb - (SUB_BITS - 1);
    let top = value >> shift; // in [HALF_COUNT, SUB_COUNT)
    (SUB_COUNT + u64::from(shift - 1) * HALF_COUNT + (top - HALF_COUNT)) as usize
}

/// The largest value that falls in `bucket`.
fn bucket_high(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < SUB_COUNT {
        return bucket;
    }
    let above = bucket - SUB_COUNT;
    let shift = above / HALF_COUNT + 1;
    let top = above % HALF_COUNT + HALF_COUNT;
    ((top + 1) << shift) - 1
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(value)] += 1;
        self.count += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Exact largest recorded value (0 when empty).
    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.sum as f64 / self.count as f64
    }

    /// The value at quantile `q` (0..=1): the smallest recorded value v such that at least
    /// `ceil(q * count)` samples are <= v, reported as its bucket's upper bound, clamped to the
    /// recorded range. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_high(bucket).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(0.999), 100);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!(h.max(), 100);
        assert!((h.mean() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn large_values_are_within_one_percent() {
        let mut h = Histogram::new();
        // 1 µs .. 10 ms in ns, uniformly: p50 = 5 ms, p99 = 9.9 ms.
        for v in 1..=10_000u64 {
            h.record(v * 1_000);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.01, "p50 {p50}");
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.01, "p99 {p99}");
        assert_eq!(h.quantile(1.0), 10_000_000);
    }

    #[test]
    fn tail_is_not_hidden_by_the_bulk() {
        let mut h = Histogram::new();
        for _ in 0..998 {
            h.record(100);
        }
        h.record(50_000);
        h.record(2_000_000);
        assert_eq!(h.quantile(0.99), 100);
        let p999 = h.quantile(0.999);
        assert!((49_500..=50_500).contains(&p999), "p999 {p999}");
        assert_eq!(h.max(), 2_000_000);
    }

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        // Every value maps into a bucket whose upper bound is >= the value and whose
        // predecessor's upper bound is < the value.
        for v in (0..5_000u64).chain([1 << 20, (1 << 20) + 1, MAX_VALUE - 1, MAX_VALUE]) {
            let b = bucket_of(v);
            assert!(bucket_high(b) >= v, "value {v}");
            assert!(b == 0 || bucket_high(b - 1) < v, "value {v}");
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(30);
        b.record(20);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.quantile(0.5), 20);
        assert_eq!(a.max(), 30);
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }
}
