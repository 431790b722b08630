//! The shell around the core: the only code that touches descriptors,
//! signals, the terminal and the clock. It moves bytes between the OS and
//! the core and holds no chat rules.

pub mod activity;
pub mod addr;
pub mod buf;
pub mod conn;
pub mod dial;
pub mod display;
pub mod error;
pub mod event_loop;
pub mod identity;
pub mod logging;
pub mod options;
pub mod sendfile;
pub mod stdin;
pub mod stopfd;
pub mod swarm_loop;
pub mod terminal;
pub mod timer;
pub mod trust;
