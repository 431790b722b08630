//! `Timer`: the loop's wake-up for deadlines, a timerfd in the poll set
//! that is re-armed only when a deadline comes *earlier* than the one it
//! is set for.
//!
//! Passing the nearest deadline to every `epoll_wait` as its timeout makes
//! the kernel arm and cancel a timer on each wait: with heartbeats on, that
//! is every turn, every message, and a measurable part of a one-CPU round
//! trip (figures in docs/PERFORMANCE.md). Deadlines mostly move later (each message pushes the next
//! heartbeat back), so a timer that is left armed wakes the loop at most
//! once too early per deadline, and the loop re-arms it then. A deadline
//! found close after such a wake-up (within [`Timer::fired`]'s tolerance:
//! 1/64 of how long the timer ran, at least 5 ms) is handled at once: after
//! a PING, the PONG moves the next heartbeat later by one round trip, and
//! waking twice for it would show up as an extra wake-up per heartbeat in
//! an idle strace.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// The least tolerance [`Timer::fired`] gives.
const EARLY: Duration = Duration::from_millis(5);

pub struct Timer {
    fd: OwnedFd,
    /// The deadline the timer is set for, if it is set.
    armed: Option<Instant>,
    /// When it was set.
    set_at: Instant,
}

impl Timer {
    pub fn new(registry: &Registry, token: Token) -> io::Result<Timer> {
        // SAFETY: plain syscall; the descriptor is owned from here on.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        registry.register(&mut SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Timer {
            fd,
            armed: None,
            set_at: Instant::now(),
        })
    }

    /// Makes sure the loop wakes up no later than `at`. Reads the clock
    /// and makes a syscall only when `at` is before what is set. The
    /// check is inlined (the loop asks every turn, and the answer is
    /// nearly always "already set"); setting the timer is a call.
    #[inline]
    pub fn ensure(&mut self, at: Instant) -> io::Result<()> {
        if self.armed.is_some_and(|armed| armed <= at) {
            return Ok(());
        }
        self.arm(at)
    }

    #[inline(never)]
    fn arm(&mut self, at: Instant) -> io::Result<()> {
        // A zero value would disarm the timer: wait at least 1 ns.
        let now = Instant::now();
        let wait = at
            .saturating_duration_since(now)
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: wait.as_secs() as libc::time_t,
                tv_nsec: wait.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not asked for.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed = Some(at);
        self.set_at = now;
        Ok(())
    }

    /// The timer was reported readable at `now`: consume the expiry. It is
    /// unset until the next `ensure`. Returns how much later than `now` a
    /// deadline may lie and still be handled in this wake-up: 1/64 of how
    /// long the timer ran (78 ms for a 5 s heartbeat), at least 5 ms.
    pub fn fired(&mut self, now: Instant) -> Duration {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into our buffer; EAGAIN (a stale
        // readiness) is fine to ignore.
        unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
        self.armed = None;
        (now.saturating_duration_since(self.set_at) / 64).max(EARLY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll};

    #[test]
    fn wakes_for_the_earliest_deadline_and_rearms_only_for_earlier_ones() {
        let mut poll = Poll::new().unwrap();
        let mut t = Timer::new(poll.registry(), Token(7)).unwrap();
        let mut events = Events::with_capacity(4);
        let start = Instant::now();
        let ms = Duration::from_millis;
        t.ensure(start + ms(300)).unwrap();
        t.ensure(start + ms(10_000)).unwrap(); // later: left as it is
        assert_eq!(t.armed, Some(start + ms(300)));
        t.ensure(start + ms(20)).unwrap(); // earlier: set again
        assert_eq!(t.armed, Some(start + ms(20)));
        poll.poll(&mut events, Some(ms(5_000))).unwrap();
        assert!(events.iter().any(|e| e.token() == Token(7)));
        let woke = start.elapsed();
        assert!(woke >= ms(20) && woke < ms(300), "woke after {woke:?}");
        let tolerance = t.fired(Instant::now());
        assert_eq!(tolerance, EARLY, "1/64 of 20 ms is less than the floor");
        assert_eq!(t.armed, None);
        // Unset, it stays quiet.
        poll.poll(&mut events, Some(ms(50))).unwrap();
        assert!(events.is_empty());
    }
}
