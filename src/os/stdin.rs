//! stdin as an event source for the mio loop.
//!
//! Three cases, because epoll treats them differently:
//! - a terminal: we read from our own `/dev/tty` descriptor opened
//!   nonblocking, so fd 0's open file description (usually shared with
//!   stdout and the shell) keeps its flags;
//! - a pipe or socket: registered with mio, fd 0 made nonblocking, and its
//!   original flags put back when this value is dropped (unwinding panics
//!   included);
//! - a regular file, `/dev/null` or a closed stdin, which epoll refuses with
//!   EPERM: read directly, one chunk per loop turn, never blocking for long
//!   because such reads do not wait.
//!
//! Reads go straight to the descriptor (`read(2)`), not through
//! `std::io::Stdin`, whose internal buffer would hide bytes from epoll.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

/// How stdin is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdinKind {
    /// Registered with the poll: read on readiness until `WouldBlock`.
    Polled,
    /// Not pollable (file, /dev/null): read whenever input is wanted.
    Direct,
}

/// The process's standard input, set up for the event loop.
#[derive(Debug)]
pub struct Stdin {
    fd: RawFd,
    /// Our own terminal descriptor, when stdin is the controlling tty.
    tty: Option<File>,
    /// fd 0's flags before we made it nonblocking, to put back.
    restore_flags: Option<i32>,
    kind: StdinKind,
    is_terminal: bool,
}

impl Stdin {
    /// Prepares stdin and registers it with `registry` when epoll allows.
    pub fn setup(registry: &Registry, token: Token) -> io::Result<Stdin> {
        let is_terminal = std::io::stdin().is_terminal();
        let tty = if is_terminal { open_same_tty() } else { None };
        let fd = tty.as_ref().map_or(0, |t| t.as_raw_fd());
        let mut me = Stdin {
            fd,
            tty,
            restore_flags: None,
            kind: StdinKind::Direct,
            is_terminal,
        };
        match registry.register(&mut SourceFd(&fd), token, Interest::READABLE) {
            Ok(()) => {
                me.kind = StdinKind::Polled;
                if me.tty.is_none() {
                    me.restore_flags = Some(set_nonblocking(fd)?);
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                log::debug!("stdin cannot be polled (a file or /dev/null); reading it directly");
            }
            Err(e) => return Err(e),
        }
        Ok(me)
    }

    pub fn kind(&self) -> StdinKind {
        self.kind
    }

    pub fn is_terminal(&self) -> bool {
        self.is_terminal
    }

    /// Stops polling stdin (after end of input).
    pub fn deregister(&self, registry: &Registry) {
        if self.kind == StdinKind::Polled {
            let _ = registry.deregister(&mut SourceFd(&self.fd));
        }
    }
}

impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is valid for buf.len() bytes; the fd stays open.
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        if let Some(flags) = self.restore_flags {
            // SAFETY: restoring the flags we read from fd 0 ourselves.
            unsafe { libc::fcntl(0, libc::F_SETFL, flags) };
        }
    }
}

/// Opens `/dev/tty` nonblocking if it is the same terminal as fd 0.
fn open_same_tty() -> Option<File> {
    let tty = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/tty")
        .ok()?;
    // SAFETY: fd 0 is borrowed only for the metadata call and not closed.
    let stdin = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(0) });
    let same = match (stdin.metadata(), tty.metadata()) {
        (Ok(a), Ok(b)) => a.rdev() == b.rdev(),
        _ => false,
    };
    same.then_some(tty)
}

/// Sets O_NONBLOCK on `fd` and returns the flags it had.
fn set_nonblocking(fd: RawFd) -> io::Result<i32> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we hold.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(flags)
    }
}
