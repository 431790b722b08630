//! Everything the shell needs from the command line, as `cli` builds it.

use std::path::PathBuf;
use std::time::Duration;

use crate::core::chat::BenchSpec;
use crate::core::identity::Fingerprint;
use crate::core::input::InputMode;
use crate::core::render::Format;
use crate::core::session::Config;
use crate::os::addr::IpLiteral;

/// Server or client, with their own settings.
#[derive(Debug, Clone)]
pub enum Mode {
    Server {
        listen: Option<IpLiteral>,
        port: u16,
        once: bool,
    },
    Client {
        host: String,
        port: u16,
        connect_timeout: Duration,
        /// Send generated messages instead of reading stdin.
        bench: Option<BenchSpec>,
    },
}

/// Whether the chat is encrypted, and whom it trusts.
#[derive(Debug, Clone)]
pub enum Security {
    /// `--plain`: protocol v1 in the clear, nobody authenticated.
    Plain,
    /// Noise, mutually authenticated. A client checks the server's key
    /// against `pin` if given, else against known_peers (remembering it on
    /// first contact); a server with `allow` lets in only those keys.
    Noise {
        pin: Option<Fingerprint>,
        allow: Option<PathBuf>,
    },
}

/// Everything the loop needs from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub security: Security,
    /// What every connection's session announces and enforces.
    pub session: Config,
    pub format: Format,
    pub input: InputMode,
    /// Use the line editor when stdin and stdout are terminals.
    pub editor: bool,
    /// `--bell`: ring the terminal bell for a message that comes in while
    /// the person is not typing (interactive mode only).
    pub bell: bool,
    /// `Some(on)` forces colour on or off; `None` decides from the terminal.
    pub color: Option<bool>,
    pub timestamps: bool,
    /// `duet server --room`: the room's settings (the loop's room turn is
    /// `os::room_loop`, its rules `core::room`).
    pub room: Option<RoomOptions>,
}

/// `duet server --room`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomOptions {
    /// `--max-peers`: members at most (checked against the open-file limit).
    pub max_peers: usize,
}

/// RLIMIT_NOFILE's hard limit: what the soft limit can be raised to.
/// `None` when it cannot be read or is unlimited.
pub fn nofile_hard_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    // `rlim_t` is not `u64` on every platform.
    #[allow(clippy::unnecessary_cast)]
    let hard = lim.rlim_max as u64;
    (rc == 0 && lim.rlim_max != libc::RLIM_INFINITY).then_some(hard)
}

/// Raises RLIMIT_NOFILE's soft limit to its hard limit (a room holds one
/// descriptor per member). A failure is logged: the room then finds its
/// limit at accept (EMFILE), which the loop backs off from.
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one `rlimit` we own.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 || lim.rlim_cur == lim.rlim_max {
        return;
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        log::warn!(
            "cannot raise the open-file limit: {}",
            std::io::Error::last_os_error()
        );
    }
}
