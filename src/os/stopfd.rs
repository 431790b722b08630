//! A descriptor that becomes readable at the first stop signal and stays
//! so: an eventfd that a signal handler adds one to. The display polls it
//! beside stdout, so that a wait for a reader who never reads cannot hold
//! up a stop. The loop's own signal source still receives every signal.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use signal_hook::SigId;

/// The eventfd and the handlers that write to it.
pub struct StopFd {
    fd: OwnedFd,
    ids: Vec<SigId>,
}

impl StopFd {
    /// Installs handlers for `signals` that mark the descriptor readable.
    pub fn new(signals: &[i32]) -> io::Result<StopFd> {
        // SAFETY: eventfd returns a fresh descriptor or -1.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is ours from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut stop = StopFd {
            fd,
            ids: Vec::new(),
        };
        for &sig in signals {
            // SAFETY: the handler only calls write(2), which is
            // async-signal-safe, on a descriptor that stays open until
            // the handler is unregistered (`Drop`).
            let id = unsafe {
                signal_hook::low_level::register(sig, move || {
                    let one: u64 = 1;
                    libc::write(raw, (&one as *const u64).cast(), 8);
                })
            }?;
            stop.ids.push(id);
        }
        Ok(stop)
    }

    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for StopFd {
    fn drop(&mut self) {
        // The handlers go before the descriptor they write to closes.
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
