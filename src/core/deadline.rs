//! Deadline arithmetic that never panics: a deadline too far away for the
//! clock is the latest instant it can hold, which is never reached.

use std::time::{Duration, Instant};

/// `t + d`, or when that overflows the clock's range, the latest instant
/// it can hold on the way there: a deadline that far away is never reached,
/// and arithmetic on it must not panic (the command line bounds durations,
/// but the core does not rely on that).
#[inline]
pub fn later(t: Instant, d: Duration) -> Instant {
    match t.checked_add(d) {
        Some(at) => at,
        None => latest(t, d),
    }
}

/// The earlier of two deadlines, either of which may be absent.
#[inline]
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The latest instant `t + x` with `x <= d` that the clock can hold.
#[cold]
#[inline(never)]
fn latest(t: Instant, d: Duration) -> Instant {
    // Binary search for the largest addend that fits: at most 94 steps
    // (the bits of a `Duration`), and only for absurd durations.
    let (mut fits, mut over) = (Duration::ZERO, d);
    while over - fits > Duration::from_nanos(1) {
        let mid = fits + (over - fits) / 2;
        if t.checked_add(mid).is_some() {
            fits = mid;
        } else {
            over = mid;
        }
    }
    t + fits
}
