//! The terminal in interactive mode: a cbreak-style termios setting,
//! bracketed paste, the window size, and putting all of it back.
//!
//! `Terminal::enter` saves the termios of the terminal and switches off
//! canonical input, echo, signal keys (Ctrl-C, Ctrl-Z arrive as bytes for
//! the editor), IEXTEN, XON/XOFF and CR-to-NL translation (so Enter and
//! Ctrl-J differ), keeping output post-processing so `\n` still starts a
//! new line. The saved state is restored by `suspend` and on `Drop`, which
//! runs on every exit path that unwinds: normal exit, errors, panics, and
//! signals (which the event loop turns into a normal exit).

use std::io;
use std::io::IsTerminal as _;
use std::os::fd::RawFd;

/// Bracketed paste on / off (xterm): pastes arrive between markers.
const PASTE_ON: &[u8] = b"\x1b[?2004h";
const PASTE_OFF: &[u8] = b"\x1b[?2004l";

/// The terminal, switched to cbreak mode while this value lives.
pub struct Terminal {
    fd: RawFd,
    saved: libc::termios,
    active: bool,
}

impl Terminal {
    /// Saves `fd`'s termios and enters cbreak mode.
    pub fn enter(fd: RawFd) -> io::Result<Terminal> {
        // SAFETY: tcgetattr fills the termios we own.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut t = Terminal {
            fd,
            saved,
            active: false,
        };
        t.resume()?;
        Ok(t)
    }

    /// (Re-)applies cbreak mode, after `enter` or a suspension.
    pub fn resume(&mut self) -> io::Result<()> {
        let mut raw = self.saved;
        raw.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG | libc::IEXTEN);
        raw.c_iflag &= !(libc::ICRNL | libc::INLCR | libc::IXON);
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: tcsetattr with a termios derived from the saved one.
        if unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        write_all_fd(1, PASTE_ON);
        self.active = true;
        Ok(())
    }

    /// Puts the terminal back as it was (before stopping, and at exit).
    pub fn suspend(&mut self) {
        if self.active {
            write_all_fd(1, PASTE_OFF);
            // SAFETY: restoring the termios saved from this descriptor.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
            self.active = false;
        }
    }

    /// Columns of the terminal on stdout (80 if unknown).
    pub fn columns() -> usize {
        // SAFETY: TIOCGWINSZ fills the winsize we own.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col > 0 {
            ws.ws_col as usize
        } else {
            80
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.suspend();
    }
}

/// Best-effort write of terminal control bytes (the terminal is ours).
fn write_all_fd(fd: RawFd, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing from a valid slice.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Whether colour should be used on stdout for `--color auto`.
pub fn color_auto() -> bool {
    stdout_is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && !term_is_dumb()
}

pub fn term_is_dumb() -> bool {
    std::env::var("TERM").is_ok_and(|t| t == "dumb")
}

/// Whether stdout is a terminal.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}

/// Whether stderr is a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}
