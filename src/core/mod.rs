//! The pure core: no file descriptor, no clock, no printing. Everything
//! here takes bytes and `now: Instant` and returns bytes to send, events to
//! show and the next deadline, so it is tested without sockets and fuzzed.

pub mod chat;
pub mod deadline;
pub mod editor;
pub mod escape;
pub mod exit;
pub mod identity;
pub mod input;
pub mod protocol;
pub mod queue_limit;
pub mod render;
pub mod room;
pub mod rtt;
pub mod session;
pub mod swarm;
pub mod transport;
