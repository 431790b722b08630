//! How much of our own data may wait in front of a control frame we queue,
//! sized from the rate that data drains at (as Linux's byte queue limits
//! size a network card's queue).
//!
//! An ACK or PONG queued during a transfer waits behind the message data in
//! the outbox and behind the kernel's unsent bytes (`TCP_NOTSENT_LOWAT`).
//! Small queues keep that wait short on a slow link. On a fast one they
//! make the sender hand the kernel one 64 KiB chunk per `write`, and on the
//! project's test VM that halves a large message's throughput in some runs
//! (docs/PERFORMANCE.md). So the limit is what drains in `TARGET` at the
//! rate measured while the sender was busy, rounded up to a power of two
//! between [`MIN`] and [`MAX`]: 64 KiB up to 65 MB/s (64 KiB per
//! millisecond), 512 KiB above 262 MB/s (256 KiB per millisecond). The
//! kernel's mark follows it, never below [`KERNEL_MIN`]. Pure: it is told
//! what was written and when.

use std::time::{Duration, Instant};

/// The limit on a slow or idle path.
pub const MIN: usize = 64 * 1024;
/// The limit on a fast path.
pub const MAX: usize = 512 * 1024;
/// How long a control frame may wait behind each queue, at the measured
/// rate.
const TARGET: Duration = Duration::from_millis(1);
/// The least unsent data the kernel is allowed: room for two chunks, so
/// that a full chunk's `write` is not refused while the one before it is
/// still unsent.
pub const KERNEL_MIN: usize = 2 * MIN;

/// The current limit, and the busy stretch being measured.
#[derive(Debug, Clone)]
pub struct QueueLimit {
    limit: usize,
    /// Since when every write has left data waiting, and the bytes written
    /// after that moment.
    busy: Option<(Instant, u64)>,
}

impl Default for QueueLimit {
    fn default() -> Self {
        QueueLimit {
            limit: MIN,
            busy: None,
        }
    }
}

impl QueueLimit {
    /// Bytes of message data the outbox may hold before the next chunk
    /// waits.
    pub fn get(&self) -> usize {
        self.limit
    }

    /// Unsent bytes the kernel may hold (`TCP_NOTSENT_LOWAT`): the limit,
    /// and never less than [`KERNEL_MIN`].
    pub fn kernel(&self) -> usize {
        self.limit.max(KERNEL_MIN)
    }

    /// `n` bytes were written at `now`; `more` when data is still waiting
    /// to be written. Only a stretch of writes that all left data waiting
    /// measures the rate: a sender with nothing to send says nothing about
    /// the path.
    pub fn written(&mut self, n: usize, more: bool, now: Instant) {
        if !more {
            self.busy = None;
            return;
        }
        let Some((since, bytes)) = &mut self.busy else {
            self.busy = Some((now, 0));
            return;
        };
        *bytes += n as u64;
        let elapsed = now.saturating_duration_since(*since);
        if elapsed >= TARGET {
            self.limit = fit(*bytes, elapsed);
            self.busy = Some((now, 0));
        }
    }
}

/// What drains in [`TARGET`] at `bytes` per `elapsed`, rounded up to a
/// power of two within [`MIN`, `MAX`].
fn fit(bytes: u64, elapsed: Duration) -> usize {
    let per_target = u128::from(bytes) * TARGET.as_nanos() / elapsed.as_nanos().max(1);
    let per_target = per_target.min(MAX as u128) as usize;
    per_target.next_power_of_two().clamp(MIN, MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Writes `chunk` bytes every `every` for `total`, always with more
    /// waiting; returns the limit at the end.
    fn busy_for(
        q: &mut QueueLimit,
        start: Instant,
        chunk: usize,
        every: Duration,
        total: Duration,
    ) -> Instant {
        let mut t = start;
        while t < start + total {
            q.written(chunk, true, t);
            t += every;
        }
        t
    }

    #[test]
    fn fit_rounds_the_rate_up_to_a_power_of_two_within_bounds() {
        // 1 ms worth of data at the measured rate.
        assert_eq!(fit(0, MS), MIN);
        assert_eq!(fit(1, 10 * MS), MIN);
        assert_eq!(fit(64 * 1024, MS), 64 * 1024);
        assert_eq!(fit(64 * 1024 + 1, MS), 128 * 1024);
        assert_eq!(fit(200 * 1024, MS), 256 * 1024);
        assert_eq!(fit(256 * 1024, MS), 256 * 1024);
        assert_eq!(fit(256 * 1024 + 1, MS), MAX);
        assert_eq!(fit(300 * 1024, MS), MAX);
        assert_eq!(fit(3_000_000_000, MS), MAX);
        assert_eq!(fit(u64::MAX, Duration::ZERO), MAX);
        // Twice the bytes over twice the time is the same rate.
        assert_eq!(fit(400 * 1024, 2 * MS), 256 * 1024);
    }

    #[test]
    fn a_fast_busy_sender_grows_the_limit_and_a_slow_one_shrinks_it() {
        let mut q = QueueLimit::default();
        let t0 = Instant::now();
        assert_eq!((q.get(), q.kernel()), (MIN, KERNEL_MIN));
        // 64 KiB every 20 µs: 3.3 GB/s.
        let t = busy_for(&mut q, t0, 64 * 1024, Duration::from_micros(20), 2 * MS);
        assert_eq!((q.get(), q.kernel()), (MAX, MAX));
        // The path slows to 64 KiB every 5 ms: 13 MB/s.
        busy_for(&mut q, t, 64 * 1024, 5 * MS, 20 * MS);
        assert_eq!(q.get(), MIN);
    }

    #[test]
    fn writes_that_leave_nothing_waiting_measure_nothing() {
        let mut q = QueueLimit::default();
        let t0 = Instant::now();
        // Small messages as fast as you like: each write empties the queue.
        for k in 0..10_000u32 {
            q.written(16, false, t0 + Duration::from_micros(u64::from(k)));
        }
        assert_eq!(q.get(), MIN);
        // A fast transfer raises it; an idle hour between two busy
        // stretches is not counted as a slow rate.
        let t = busy_for(&mut q, t0, 64 * 1024, Duration::from_micros(20), 2 * MS);
        assert_eq!(q.get(), MAX);
        q.written(10, false, t);
        let later = t + Duration::from_secs(3600);
        q.written(64 * 1024, true, later);
        q.written(64 * 1024, true, later + Duration::from_micros(20));
        assert_eq!(q.get(), MAX);
    }
}
