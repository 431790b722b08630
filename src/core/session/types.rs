//! The session's vocabulary: what it is configured with, how it fails,
//! how a chat ends, what it asks the caller to show and to write. The
//! state machine that produces them is `session.rs`.

use std::fmt;
use std::time::Duration;

use crate::core::protocol::{self, ByeReason, DecodeError, ReceiptStatus};
use crate::core::rtt::RttSummary;

/// What this side announces and enforces.
#[derive(Debug, Clone)]
pub struct Config {
    /// Display name sent in HELLO (at most 255 bytes).
    pub name: Vec<u8>,
    /// Largest message we accept from the peer.
    pub max_message: u64,
    /// How long to wait for outstanding acks after input ends.
    pub linger: Duration,
    /// How long the peer has to complete the handshake.
    pub handshake_timeout: Duration,
    /// Send PING after this long without a sign of life from the peer;
    /// `None` disables heartbeats.
    pub heartbeat: Option<Duration>,
    /// Declare the peer gone when this many PINGs in a row go unanswered.
    pub dead_after: u32,
    /// Give up when queued bytes make no write progress for this long;
    /// `None` waits forever.
    pub write_timeout: Option<Duration>,
    /// Hand a message of several chunks to the display chunk by chunk
    /// ([`Event::MessagePart`]) instead of assembling it first: memory
    /// stays bounded whatever the message size, and no fresh memory has to
    /// be faulted in for it.
    pub stream: bool,
}

/// Why a connection failed.
#[cfg(test)]
impl Config {
    /// The settings the core's tests share: 1 MiB messages, 5 s of linger
    /// and handshake, no heartbeat, no write timeout, whole messages.
    pub(crate) fn for_tests(name: &str) -> Config {
        Config {
            name: name.as_bytes().to_vec(),
            max_message: 1 << 20,
            linger: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            heartbeat: None,
            dead_after: 3,
            write_timeout: None,
            stream: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The first bytes are not a duet HELLO: another protocol is talking.
    NotDuet { first: Vec<u8> },
    /// The peer speaks another protocol version.
    Version { peer: u16 },
    /// The peer's frames break the protocol.
    Protocol(DecodeError),
    /// A frame that is valid but not allowed here.
    Unexpected(&'static str),
    /// DATA for a message other than the next one.
    OutOfOrder { expected: u64, got: u64 },
    /// The peer sent more than the limit we announced.
    TooLarge { limit: u64 },
    /// An ACK that does not match the oldest message in flight.
    StrayAck { id: u64 },
    /// The connection ended inside a frame or message.
    Truncated,
    /// The peer closed the connection without BYE.
    NoBye,
    /// The peer closed the connection before sending HELLO.
    NoHello,
    /// The peer did not finish the handshake in time.
    HandshakeTimeout,
    /// Heartbeats went unanswered: the peer or the path is gone.
    Dead { pings: u32, silent: Duration },
    /// Queued bytes made no write progress: the peer stopped reading.
    WriteStall { after: Duration },
    /// The encrypted handshake proved a key this side does not accept; the
    /// text says whose and why (it names the file and line that say so).
    KeyRefused(String),
    /// This side could not tell whether it accepts the peer's key: its own
    /// `known_peers` file could not be read, parsed or appended to. The
    /// text names the file.
    KeyCheck(String),
    /// The encrypted transport failed (a record did not authenticate, a
    /// handshake message was wrong, the peer runs with --plain, ...).
    Transport(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::NotDuet { first } => write!(
                f,
                "peer does not speak duet (it sent \"{}\")",
                crate::core::escape::escape_to_string(first)
            ),
            SessionError::Version { peer } => write!(
                f,
                "peer speaks duet protocol version {peer}, this duet speaks {}",
                protocol::VERSION
            ),
            SessionError::Protocol(e) => write!(f, "protocol error from peer: {e}"),
            SessionError::Unexpected(what) => write!(f, "protocol error from peer: {what}"),
            SessionError::OutOfOrder { expected, got } => write!(
                f,
                "protocol error from peer: data for message {got}, expected {expected}"
            ),
            SessionError::TooLarge { limit } => {
                write!(f, "peer sent a message over our limit of {limit} bytes")
            }
            SessionError::StrayAck { id } => write!(
                f,
                "protocol error from peer: acknowledgment for message {id}, which is not in flight"
            ),
            SessionError::Truncated => f.write_str("connection ended in the middle of a frame"),
            SessionError::NoBye => f.write_str("peer closed the connection without saying goodbye"),
            SessionError::NoHello => f.write_str(
                "peer closed the connection before the handshake (overloaded, or not a duet peer)",
            ),
            SessionError::HandshakeTimeout => f.write_str("peer did not complete the handshake"),
            SessionError::Dead { pings, silent } => write!(
                f,
                "peer did not answer {pings} heartbeats (silent for {:.1} s); connection considered dead",
                silent.as_secs_f64()
            ),
            SessionError::WriteStall { after } => write!(
                f,
                "peer stopped reading: no write progress for {:.1} s",
                after.as_secs_f64()
            ),
            SessionError::KeyRefused(why)
            | SessionError::KeyCheck(why)
            | SessionError::Transport(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for SessionError {}

impl SessionError {
    /// The error as the peer reads it in our BYE's detail: from its side,
    /// so "you did not answer 3 heartbeats", not "peer did not …" (the
    /// peer would take "peer" for us).
    pub fn for_peer(&self) -> String {
        match self {
            SessionError::Version { peer } => format!(
                "you speak duet protocol version {peer}, this duet speaks {}",
                protocol::VERSION
            ),
            SessionError::Protocol(e) => format!("protocol error in what you sent: {e}"),
            SessionError::Unexpected(what) => format!("protocol error in what you sent: {what}"),
            SessionError::OutOfOrder { expected, got } => format!(
                "protocol error in what you sent: data for message {got}, expected {expected}"
            ),
            SessionError::TooLarge { limit } => {
                format!("you sent a message over my limit of {limit} bytes")
            }
            SessionError::StrayAck { id } => format!(
                "protocol error in what you sent: acknowledgment for message {id}, which is not in flight"
            ),
            SessionError::HandshakeTimeout => "you did not complete the handshake".to_string(),
            SessionError::Dead { pings, silent } => format!(
                "you did not answer {pings} heartbeats (silent for {:.1} s)",
                silent.as_secs_f64()
            ),
            SessionError::WriteStall { after } => format!(
                "you stopped reading: no write progress for {:.1} s",
                after.as_secs_f64()
            ),
            SessionError::KeyRefused(_) => "your key is not the one expected here".to_string(),
            SessionError::KeyCheck(_) => "I could not check your key (my own files)".to_string(),
            SessionError::Transport(why) => why.clone(),
            // Never sent: the connection is gone, or the peer is not duet.
            SessionError::NotDuet { .. }
            | SessionError::Truncated
            | SessionError::NoBye
            | SessionError::NoHello => self.to_string(),
        }
    }

    pub(super) fn bye_reason(&self) -> ByeReason {
        match self {
            SessionError::Version { .. } => ByeReason::VersionMismatch,
            SessionError::TooLarge { .. } => ByeReason::MessageTooLarge,
            SessionError::HandshakeTimeout
            | SessionError::Dead { .. }
            | SessionError::WriteStall { .. } => ByeReason::Timeout,
            SessionError::KeyRefused(_) => ByeReason::KeyRefused,
            // Nothing the peer did: for it, we left.
            SessionError::KeyCheck(_) => ByeReason::Normal,
            _ => ByeReason::ProtocolError,
        }
    }
}

/// How a chat ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// We said goodbye.
    Local(ByeReason),
    /// The peer said goodbye; `detail` is its free text, untrusted.
    Peer { reason: ByeReason, detail: Vec<u8> },
    /// The peer broke the protocol or did not complete the handshake.
    Failed(SessionError),
    /// The connection itself failed (reset, write error); the text says how.
    Lost(String),
}

/// Something to show, borrowed from the session until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// The handshake completed.
    Connected { name: &'a [u8], max_message: u64 },
    /// A message was accepted for sending and given an id.
    Sent { id: u64, len: u64 },
    /// The peer acknowledged message `id`.
    Acked { id: u64, len: u64, rtt: Duration },
    /// A complete message arrived (its ack is already queued). With
    /// `continues`, it was streamed ([`Config::stream`]): earlier
    /// [`Event::MessagePart`]s carried the start, and `data` is the rest.
    Message {
        id: u64,
        data: &'a [u8],
        continues: bool,
    },
    /// The next piece of a message still arriving (only with
    /// [`Config::stream`]); not acknowledged yet. If the chat ends before
    /// its [`Event::Message`], the message was cut off.
    MessagePart { id: u64, data: &'a [u8] },
    /// A message was not sent: it is larger than the peer accepts.
    Refused { len: u64, limit: u64 },
    /// An input record was not sent: it is longer than our own limit
    /// ([`Config::max_message`]), and was skipped before it became a
    /// message. Queued in order with the other events, so that it is shown
    /// after the `Connected` of the turn that opened the chat.
    Skipped { limit: u64 },
    /// The chat is over; see [`Session::end`].
    Ended,
    /// We answered a hub's room greeting with JOIN: from now on the
    /// peer's messages come as [`Event::RoomMessage`] and our own get
    /// [`Event::Receipt`]s before their ack.
    Joined,
    /// A complete message in a room: `from` is its sender's name in the
    /// room (empty for the hub itself), untrusted. `continues` as for
    /// [`Event::Message`].
    RoomMessage {
        id: u64,
        from: &'a [u8],
        data: &'a [u8],
        continues: bool,
    },
    /// The next piece of a room message still arriving, as
    /// [`Event::MessagePart`].
    RoomPart {
        id: u64,
        from: &'a [u8],
        data: &'a [u8],
    },
    /// What became of our message `id` at the room member `name`
    /// (untrusted); `rtt` runs from the message's first byte written to
    /// this receipt's arrival. Every receipt of a message comes before its
    /// [`Event::Acked`].
    Receipt {
        id: u64,
        status: ReceiptStatus,
        name: &'a [u8],
        rtt: Duration,
    },
}

/// What [`Session::poll_transmit`] asks the caller to write, borrowed from
/// the session until the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit<'a> {
    /// The bytes, in order; empty when there is nothing to write.
    pub bytes: &'a [u8],
    /// Writing all of them would hand a message's first byte to the
    /// kernel. Its RTT starts at that write, so the caller reads the clock
    /// just before it and passes that to [`Session::handle_written`]; for
    /// any other write (acks, pongs, the rest of a message) an earlier
    /// reading in the same turn will do.
    pub starts_message: bool,
}

/// Why `handle_input` did not take a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRefused {
    /// The session is not open (no handshake yet, or ended).
    NotOpen,
    /// Larger than the peer's announced limit; reported as an event too.
    TooLarge { len: u64, limit: u64 },
}

/// How a peer answered a hub's room greeting
/// ([`Session::send_room_probe`]; docs/PROTOCOL.md, "Rooms").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomAnswer {
    /// PONG: a plain version-1 peer; messages reach it with a text prefix.
    Plain,
    /// JOIN: it takes the room envelope and RECEIPT frames.
    Join,
}

/// Counters for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Messages accepted for sending (given an id).
    pub sent: u64,
    /// Of those, acknowledged by the peer.
    pub acked: u64,
    /// Messages received from the peer (and acknowledged).
    pub received: u64,
    /// Messages refused locally as larger than the peer accepts, and input
    /// records skipped as longer than our own `--max-message`.
    pub refused: u64,
    pub rtt: RttSummary,
}

impl Stats {
    /// Messages that did not get through: never acknowledged or refused.
    pub fn undelivered(&self) -> u64 {
        self.sent - self.acked + self.refused
    }
}
