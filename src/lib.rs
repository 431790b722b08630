//! duet: a one-on-one terminal chat over TCP with per-message
//! acknowledgments and round-trip times.
//!
//! Two layers, and the arrows run one way (`main → cli → os → core`):
//! - [`core`] is pure: protocol, session, input splitting, RTT statistics,
//!   escaping, rendering, the line editor and the chat controller take
//!   bytes and `now` and return bytes, events, lines and deadlines.
//! - [`os`] touches the OS: the event loop (and `duet swarm`'s loop of
//!   simulated clients), one connection's buffers, the display (the only
//!   writer of stdout in a chat), stdin, the terminal, the timer, logging
//!   and address parsing.
//!
//! See `docs/ARCHITECTURE.md`.

#[doc(hidden)]
pub mod check;
pub mod cli;
pub mod core;
pub mod os;
