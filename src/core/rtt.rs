//! Round-trip-time statistics: exact min/avg/max/mdev and percentiles.
//!
//! Pure and allocation-free after the first sample: samples go into a fixed
//! log-linear histogram (64 buckets per power of two, so a reported
//! percentile is within 1% of the true sample; 15 KiB, allocated at the
//! first sample so that a session that never measures, such as an idle room
//! member, does not carry it), plus exact running sums for the ping-style
//! figures. Recording a sample allocates only the first time, so it is safe
//! on a warm ack path.

use std::time::Duration;

/// Values below this many nanoseconds get one bucket each.
const LINEAR: u64 = 128;
/// Sub-buckets per power of two above `LINEAR`.
const SUB: u64 = 64;
/// Enough buckets for every `u64` nanosecond value.
const BUCKETS: usize = (LINEAR + 57 * SUB) as usize;

/// Summary figures in nanoseconds, as printed at the end of a chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RttSummary {
    pub n: u64,
    pub min: u64,
    pub avg: u64,
    pub max: u64,
    /// Mean deviation as `ping` reports it: sqrt(mean(x²) - mean(x)²).
    pub mdev: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
}

/// Collected RTT samples.
pub struct RttStats {
    n: u64,
    min: u64,
    max: u64,
    sum: u128,
    sum_sq: u128,
    counts: Box<[u32]>,
    /// Keep no histogram (percentiles read as the maximum): see
    /// [`RttStats::skip_histogram`].
    no_histogram: bool,
}

impl Default for RttStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RttStats {
    pub fn new() -> RttStats {
        RttStats {
            n: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
            sum_sq: 0,
            counts: Box::default(),
            no_histogram: false,
        }
    }

    /// Never allocate the histogram: min/avg/max/mdev stay exact, the
    /// percentiles read as the maximum. For figures nobody asks percentiles of (a
    /// room hub's session per member; the room keeps its own).
    pub fn skip_histogram(&mut self) {
        self.no_histogram = true;
        self.counts = Box::default();
    }

    /// Heap bytes held (the histogram).
    pub fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.counts)
    }

    /// Records one round trip.
    pub fn record(&mut self, rtt: Duration) {
        let ns = u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX);
        self.n += 1;
        self.min = self.min.min(ns);
        self.max = self.max.max(ns);
        self.sum += ns as u128;
        self.sum_sq += (ns as u128) * (ns as u128);
        if self.counts.is_empty() && !self.grow() {
            return;
        }
        let slot = &mut self.counts[bucket(ns)];
        *slot = slot.saturating_add(1);
    }

    /// Allocates the histogram, unless it is skipped; true if there is
    /// one.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) -> bool {
        if !self.no_histogram {
            self.counts = vec![0u32; BUCKETS].into_boxed_slice();
        }
        !self.no_histogram
    }

    /// The figures so far; all zero when nothing was recorded.
    pub fn summary(&self) -> RttSummary {
        if self.n == 0 {
            return RttSummary::default();
        }
        let n = self.n as u128;
        let avg = self.sum / n;
        let var = (self.sum_sq / n).saturating_sub(avg * avg);
        RttSummary {
            n: self.n,
            min: self.min,
            avg: avg as u64,
            max: self.max,
            mdev: isqrt(var) as u64,
            p50: self.percentile(50.0),
            p90: self.percentile(90.0),
            p99: self.percentile(99.0),
            p999: self.percentile(99.9),
        }
    }

    /// The smallest recorded value such that at least `p` percent of the
    /// samples are at or below it (to bucket precision, clamped to min/max).
    fn percentile(&self, p: f64) -> u64 {
        let rank = ((p / 100.0) * self.n as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                return bucket_value(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

fn bucket(ns: u64) -> usize {
    if ns < LINEAR {
        return ns as usize;
    }
    let bits = 64 - ns.leading_zeros() as u64; // 8..=64
    let shift = bits - 7; // keep the top 7 bits: 64..=127
    let top = ns >> shift;
    (LINEAR + (shift - 1) * SUB + (top - SUB)) as usize
}

/// The middle of bucket `i`'s range.
fn bucket_value(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let shift = (i - LINEAR) / SUB + 1;
    let top = (i - LINEAR) % SUB + SUB;
    let low = top << shift;
    low + ((1u64 << shift) >> 1)
}

fn isqrt(v: u128) -> u128 {
    if v < 2 {
        return v;
    }
    let mut x = (v as f64).sqrt() as u128;
    while x * x > v {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= v {
        x += 1;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(v: u64) -> Duration {
        Duration::from_micros(v)
    }

    #[test]
    fn empty_is_all_zero() {
        assert_eq!(RttStats::new().summary(), RttSummary::default());
    }

    #[test]
    fn without_a_histogram_the_ping_figures_stay_exact_and_nothing_is_allocated() {
        let mut s = RttStats::new();
        s.skip_histogram();
        for v in [10, 20, 30, 40] {
            s.record(us(v));
        }
        assert_eq!(s.heap_bytes(), 0);
        let r = s.summary();
        assert_eq!(
            (r.n, r.min, r.avg, r.max, r.mdev),
            (4, 10_000, 25_000, 40_000, 11_180)
        );
        assert_eq!(r.p50, 40_000);
    }

    #[test]
    fn ping_style_figures() {
        let mut s = RttStats::new();
        for v in [10, 20, 30, 40] {
            s.record(us(v));
        }
        let r = s.summary();
        assert_eq!((r.n, r.min, r.avg, r.max), (4, 10_000, 25_000, 40_000));
        // population standard deviation of 10,20,30,40 µs = 11.180 µs
        assert_eq!(r.mdev, 11_180);
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let mut s = RttStats::new();
        s.record(Duration::from_nanos(123_456));
        let r = s.summary();
        assert_eq!(
            (r.p50, r.p90, r.p99, r.p999, r.mdev),
            (123_456, 123_456, 123_456, 123_456, 0)
        );
    }

    #[test]
    fn percentiles_within_one_percent() {
        let mut s = RttStats::new();
        for v in 1..=1000u64 {
            s.record(us(v));
        }
        let r = s.summary();
        for (got, want) in [(r.p50, 500_000), (r.p90, 900_000), (r.p99, 990_000)] {
            let err = (got as f64 - want as f64).abs() / want as f64;
            assert!(err < 0.01, "got {got} want {want}");
        }
        assert_eq!(r.min, 1_000);
        assert_eq!(r.max, 1_000_000);
    }

    #[test]
    fn buckets_are_monotonic_and_cover_u64() {
        let mut last = 0;
        for ns in (0..5000u64).chain([u64::MAX / 2, u64::MAX - 1, u64::MAX]) {
            let b = bucket(ns);
            assert!(b >= last && b < BUCKETS, "{ns} -> {b}");
            last = b;
        }
        for i in 0..BUCKETS {
            assert_eq!(bucket(bucket_value(i)), i, "bucket {i}");
        }
    }

    #[test]
    fn huge_values_saturate_instead_of_overflowing() {
        let mut s = RttStats::new();
        s.record(Duration::MAX);
        s.record(Duration::ZERO);
        let r = s.summary();
        assert_eq!((r.min, r.max), (0, u64::MAX));
    }
}
