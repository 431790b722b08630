//! The process exit codes, documented in `--help` and the README. The chat
//! controller decides which one a chat ends with; `main` returns it.

pub const OK: u8 = 0;
pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNDELIVERED: u8 = 3;
pub const BUSY: u8 = 4;
/// A key was refused: the peer's is not the one expected, or ours is not
/// accepted by the peer.
pub const KEY: u8 = 5;

/// The code of a process stopped by signal `sig` (129 SIGHUP, 130 SIGINT,
/// 143 SIGTERM), as a shell reports it.
pub fn signalled(sig: i32) -> u8 {
    128u8.saturating_add(u8::try_from(sig).unwrap_or(0))
}
