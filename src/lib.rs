//! duet: a one-on-one terminal chat over TCP with per-message
//! acknowledgments and round-trip times.
//!
//! The pure core (`protocol`, `session`, `queue_limit`, `rtt`, `input`,
//! `render`, `editor`) takes bytes and `now` and returns bytes, events and
//! deadlines. `event_loop` (with its `timer`) is the only code that touches
//! mio, `display` the only code that writes to stdout, `stdin` and
//! `terminal` own the descriptors' settings, and `main` only maps results
//! to exit codes. See `docs/ARCHITECTURE.md`.

pub mod addr;
pub mod buf;
#[doc(hidden)]
pub mod check;
pub mod cli;
pub mod display;
pub mod editor;
pub mod event_loop;
pub mod input;
pub mod logging;
pub mod protocol;
pub mod queue_limit;
pub mod render;
pub mod rtt;
pub mod session;
pub mod stdin;
pub mod terminal;
pub mod timer;
