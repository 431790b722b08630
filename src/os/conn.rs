//! One TCP connection: its socket, its receive buffer, its session, and
//! the readiness kept as state between turns. Its methods move bytes
//! between the socket and the session; the loop calls [`Conn::ready`]
//! after an event and the conn does the rest.
//!
//! Readiness is cleared only when a source is drained: `WouldBlock`, or,
//! on Linux's edge-triggered epoll, a read shorter than the space offered
//! (new data raises a new edge; a reported hang-up is read through to end
//! of file). Bytes already read but declined by the session (its display
//! queue or outbox was full) are its `backlog`: they are offered again as
//! soon as the session wants them, without waiting for another edge.
//!
//! The code here is on the ack path and is shaped around what the
//! compiler inlines: the session calls made for every message are inlined
//! into `ready` (the decoding because `offer` is its one call site), and
//! rare work (closing) sits behind an inlined check in a cold function. Instruction counts per message are in
//! docs/PERFORMANCE.md; `benches/syscalls.sh` measures them.

use std::io::{self, ErrorKind, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::TcpStream;

use crate::core::protocol::{self, ByeReason};
use crate::core::render::PeerKey;
use crate::core::session::{Config, End, Session, SessionError};
use crate::core::transport::{self, Transport, TransportError};
use crate::os::buf::ReadBuf;
use crate::os::error::io_msg;

/// Receive buffer size: one maximal frame plus room to read ahead.
const READ_BUF: usize = 2 * (protocol::HEADER_LEN + protocol::MAX_BODY);
/// Receive buffer of a connection turned away as busy (input discarded).
const BUSY_READ_BUF: usize = 4096;
/// How long a finished connection may take to close after our BYE.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A turn's reading of the clock. A turn reads the clock when something
/// first needs the time, and again only where the time is itself the
/// measurement: right after a socket read (where an RTT ends), right
/// before a write that starts a message (where one begins), and before
/// each further write of a transfer (where the session times the drain
/// rate and the write progress that the stall deadline counts from).
/// Everything else in the turn shares the latest reading. Each reading
/// costs a measurable part of a one-CPU round trip (docs/PERFORMANCE.md).
pub struct Clock(Option<Instant>);

impl Clock {
    /// Nothing read yet.
    pub fn unread() -> Clock {
        Clock(None)
    }

    /// A reading the caller already has.
    pub fn at(now: Instant) -> Clock {
        Clock(Some(now))
    }

    /// The latest reading; the first call reads the clock.
    pub fn now(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }

    /// A fresh reading, which later calls share.
    pub fn read(&mut self) -> Instant {
        *self.0.insert(Instant::now())
    }
}

/// What a connection is for, which decides its receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// A one-on-one chat (or a greeting that may become one): a fixed
    /// buffer for one maximal frame and read-ahead, allocated once.
    Chat,
    /// Turned away: BYE(busy) at once, input discarded through a small
    /// fixed buffer, so that a flood of them stays cheap.
    Busy,
    /// A room member: the same largest buffer, but grown on demand and
    /// given back when idle ([`Conn::shrink_idle`]).
    Member,
}

/// One TCP connection and its chat.
pub struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    rbuf: ReadBuf,
    session: Session,
    readable: bool,
    writable: bool,
    /// `rbuf` holds complete frames the session declined (it pushed
    /// back): offer them again once it wants bytes.
    backlog: bool,
    /// The `TCP_NOTSENT_LOWAT` set on the socket.
    kernel_unsent: usize,
    /// Set when the chat is over: finish flushing, shut down our side, and
    /// drop the connection at the peer's EOF or at this deadline.
    closing: Option<Instant>,
    shut_down: bool,
    eof: bool,
    /// The peer's FIN or an error was reported: read until read says so,
    /// even after a short read.
    hangup: bool,
    /// How the session ended has been shown (or needs no showing).
    end_shown: bool,
    /// The encrypted transport between the socket and the session; `None`
    /// with `--plain`.
    crypto: Option<Box<Crypto>>,
}

/// A connection's Noise state and its buffers.
struct Crypto {
    transport: Transport,
    /// Decrypted bytes the session has not taken yet.
    plain: Vec<u8>,
    /// Sealed records (or handshake messages) not written yet, from
    /// `out_pos`.
    out: Vec<u8>,
    out_pos: usize,
    /// The peer's key has been handed over for checking.
    key_taken: bool,
    /// The checked key, kept until the chat is granted (a server's
    /// connection still greeting).
    shown: Option<PeerKey>,
    /// The peer's key was accepted: the session's bytes (our HELLO first,
    /// with our name) may be sealed.
    verified: bool,
    /// The peer's key was refused: only the refusal leaves.
    refused: bool,
}

/// What `Conn::open_records` made of the received bytes.
enum Opened {
    /// No plaintext for the session.
    Nothing,
    Plaintext,
    /// A record did not open: the plaintext before it still counts.
    Failed(TransportError),
}

/// Plaintext sealed per batch: the ciphertext waiting for the socket is
/// at most one batch, so the session's outbox stays the queue.
const SEAL_BATCH: usize = 256 * 1024;

impl Conn {
    /// A connected socket with a fresh session. A connection turned away
    /// ([`ConnKind::Busy`]) says BYE(busy) at once.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        cfg: Config,
        now: Instant,
        kind: ConnKind,
        transport: Option<Transport>,
    ) -> io::Result<Conn> {
        stream.set_nodelay(true)?;
        let mut session = Session::new(cfg, now);
        // Unsent bytes the kernel may hold: small, so that an ack or PONG
        // we queue does not wait behind megabytes of a large message
        // already handed over; raised with the session's queue limit.
        let kernel_unsent = session.kernel_unsent_limit();
        set_notsent_lowat(&stream, kernel_unsent)?;
        if kind == ConnKind::Busy {
            session.close(ByeReason::Busy);
        }
        Ok(Conn {
            stream,
            peer,
            rbuf: match kind {
                ConnKind::Chat => ReadBuf::with_capacity(READ_BUF),
                ConnKind::Busy => ReadBuf::with_capacity(BUSY_READ_BUF),
                ConnKind::Member => ReadBuf::growable(READ_BUF),
            },
            session,
            readable: false,
            writable: true,
            backlog: false,
            kernel_unsent,
            closing: None,
            shut_down: false,
            eof: false,
            hangup: false,
            end_shown: false,
            crypto: transport.map(|transport| {
                let mut c = Box::new(Crypto {
                    transport,
                    plain: Vec::new(),
                    out: Vec::new(),
                    out_pos: 0,
                    key_taken: false,
                    shown: None,
                    verified: false,
                    refused: false,
                });
                // The initiator's first handshake message leaves at once.
                c.transport.poll_handshake(&mut c.out);
                c
            }),
        })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn session_mut(&mut self) -> &mut Session {
        &mut self.session
    }

    pub fn stream_mut(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Gives back the memory of buffers that are empty: the receive
    /// buffer, the encrypted transport's plaintext and sealed buffers, and
    /// the session's ([`Session::shrink_idle`]). For a room member between
    /// messages; each grows again on demand.
    pub fn shrink_idle(&mut self) {
        self.session.shrink_idle();
        self.rbuf.release();
        if let Some(c) = self.crypto.as_mut() {
            if c.plain.is_empty() {
                c.plain = Vec::new();
            }
            if c.out_pos == c.out.len() {
                c.out = Vec::new();
                c.out_pos = 0;
            }
        }
    }

    /// Heap bytes this connection holds that it can account for: the
    /// receive buffer, the session's buffers, and the transport's buffers
    /// (not the Noise library's own state, which is measured in
    /// `tests/idle_member.rs`).
    pub fn heap_bytes(&self) -> usize {
        self.rbuf.capacity()
            + self.session.heap_bytes()
            + self.crypto.as_ref().map_or(0, |c| {
                std::mem::size_of::<Crypto>() + c.plain.capacity() + c.out.capacity()
            })
    }

    /// Records what a readiness event says. Errors and hang-ups surface
    /// through `read`.
    #[inline]
    pub fn handle_event(&mut self, ev: &Event) {
        let closed = ev.is_read_closed() || ev.is_error();
        self.readable |= ev.is_readable() || closed;
        self.hangup |= closed;
        self.writable |= ev.is_writable() || ev.is_error();
    }

    /// Whether the next wait must not block: bytes to read (or to offer
    /// again) that the session wants, or a closing connection to read to
    /// its end.
    #[inline]
    pub fn has_work(&self) -> bool {
        (self.readable || self.backlog)
            && (self.session.wants_peer_bytes() || self.closing.is_some())
    }

    /// Passes the session's deadline and the close deadline, if any, to
    /// `fold`.
    #[inline]
    pub fn deadlines(&self, mut fold: impl FnMut(Instant)) {
        if let Some(t) = self.session.poll_timeout() {
            fold(t);
        }
        if let Some(t) = self.closing {
            fold(t);
        }
    }

    /// Reads what the socket has for the session, then flushes the
    /// session's outbox. Called for every connection every turn; it does
    /// nothing where there is nothing to do.
    pub fn ready(&mut self, clock: &mut Clock) {
        if self.readable || self.backlog {
            self.read(clock);
        }
        self.flush(clock);
        self.after_close(clock);
    }

    /// Fires the session's deadline if `due`, then services it.
    pub fn handle_due(&mut self, due: Instant, clock: &mut Clock) {
        if self.session.poll_timeout().is_some_and(|t| due >= t) {
            self.session.handle_timeout(due);
            self.ready(clock);
        }
    }

    /// Once the session is closed: start the close deadline, and shut
    /// down our side when the last bytes (our BYE) have left. The check
    /// is inlined: it runs for every connection every turn.
    #[inline]
    pub fn after_close(&mut self, clock: &mut Clock) {
        if self.session.is_closed() {
            self.closed(clock);
        }
    }

    #[cold]
    #[inline(never)]
    fn closed(&mut self, clock: &mut Clock) {
        if self.closing.is_none() {
            self.closing = Some(clock.now() + close_grace(&self.session));
        }
        let sent_all = match &self.crypto {
            None => self.session.poll_transmit().bytes.is_empty(),
            // Before the handshake completes, the session's BYE cannot be
            // sealed: only the transport's own bytes can leave.
            Some(c) => {
                c.out_pos == c.out.len()
                    && (c.transport.error().is_some()
                        || (c.transport.is_established()
                            && (c.verified || c.refused)
                            && self.session.poll_transmit().bytes.is_empty()))
            }
        };
        if !self.shut_down && sent_all {
            let _ = self.stream.shutdown(Shutdown::Write);
            self.shut_down = true;
        }
    }

    /// The chat on this connection is over (the controller showed it): let
    /// the connection close within its grace.
    pub fn finish(&mut self, now: Instant) {
        self.closing.get_or_insert(now + close_grace(&self.session));
    }

    /// True once, when the session has ended and its end was not shown
    /// yet: the caller shows it (or decides it needs no showing).
    pub fn take_end(&mut self) -> bool {
        let take = !self.end_shown && self.session.end().is_some();
        self.end_shown |= take;
        take
    }

    /// Closed after the chat: the peer's EOF came, or the grace ran out.
    pub fn is_done(&self, now: Instant) -> bool {
        self.closing.is_some_and(|t| self.eof || now >= t)
    }

    /// Reads until `WouldBlock`, passing each read to the session, which
    /// may push back (then the unread part waits in `rbuf` as backlog, or
    /// `readable` stays set, and we resume next turn). The backlog is
    /// offered first, through the same call as fresh bytes: one call site
    /// keeps the session's decoding inlined here.
    fn read(&mut self, clock: &mut Clock) {
        loop {
            let open = !self.session.is_closed();
            if open && !self.session.wants_peer_bytes() {
                return;
            }
            if !open && self.rbuf.free() == 0 {
                // A closed session takes nothing more; a hostile peer's
                // record larger than a turned-away connection's small
                // buffer is dropped, not read into a full buffer.
                let all = self.rbuf.data().len();
                self.rbuf.consume(all);
            }
            let fresh = !self.backlog;
            let now = if self.backlog {
                self.backlog = false;
                clock.now()
            } else {
                if !self.readable {
                    return;
                }
                match self.rbuf.fill_from(&mut self.stream) {
                    Ok(0) => {
                        self.readable = false;
                        self.eof = true;
                        self.handle_eof();
                        return;
                    }
                    // The clock is read right after the read, not at the
                    // start of the turn: the RTT ends when the ack is
                    // decoded.
                    Ok(_) => clock.read(),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        self.readable = false;
                        return;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.readable = false;
                        self.eof = true;
                        self.session
                            .handle_lost(format!("connection lost: {}", io_msg(&e)));
                        return;
                    }
                }
            };
            self.offer(now);
            // The ack path: what those frames queued leaves now.
            self.flush(clock);
            if fresh && self.rbuf.was_short() && !self.hangup {
                // Drained: skip the read that would only say EAGAIN.
                self.readable = false;
            }
            if self.backlog {
                return;
            }
        }
    }

    /// The peer closed its side: the transport says whether that cut a
    /// record or the handshake, else the session whether it cut a frame.
    fn handle_eof(&mut self) {
        let leftover = self.rbuf.data().len();
        match self.crypto.as_mut() {
            None => self.session.handle_eof(leftover),
            Some(c) => match c.transport.handle_eof(leftover) {
                Err(e) if !self.session.is_closed() => self.session.handle_lost(e.to_string()),
                Err(_) => {}
                Ok(()) => self.session.handle_eof(c.plain.len()),
            },
        }
    }

    /// Hands the received bytes to the session (opened first when
    /// encrypted); what it declines while pushing back becomes the backlog.
    /// This is the session's only call of `handle_peer_bytes` in the
    /// program, which is what lets the compiler inline the decoding here,
    /// on the ack path: keep it that way, encrypted bytes included.
    #[inline]
    fn offer(&mut self, now: Instant) {
        let failed = if self.crypto.is_some() {
            match self.open_records() {
                Opened::Nothing => return,
                Opened::Plaintext => None,
                Opened::Failed(e) => Some(e),
            }
        } else {
            if !self.session.handshake_done() && self.refuse_encrypted_peer() {
                return;
            }
            None
        };
        let Conn {
            rbuf,
            session,
            crypto,
            ..
        } = self;
        let bytes = match crypto {
            None => rbuf.data(),
            Some(c) => &c.plain[..],
        };
        let used = session.handle_peer_bytes(bytes, now);
        let left = match crypto {
            None => {
                rbuf.consume(used);
                !rbuf.data().is_empty()
            }
            Some(c) => {
                c.plain.drain(..used);
                if let Some(e) = failed {
                    // What was opened before the bad record was genuine
                    // and has been taken; the rest is not.
                    c.plain.clear();
                    session.handle_transport_error(e.to_string());
                    return;
                }
                !c.plain.is_empty()
            }
        };
        self.backlog = left && !self.session.wants_peer_bytes();
    }

    /// A plain side whose peer opens with a Noise handshake: say which
    /// flag to use instead of "not a duet peer".
    #[cold]
    fn refuse_encrypted_peer(&mut self) -> bool {
        match transport::encrypted_peer(self.rbuf.data()) {
            Some(e) => {
                self.session.handle_transport_error(e.to_string());
                self.rbuf.consume(self.rbuf.data().len());
                true
            }
            None => false,
        }
    }

    /// Opens the received records into the plaintext the session takes
    /// from (`offer`). A bad record drops everything received after it.
    fn open_records(&mut self) -> Opened {
        let Some(c) = self.crypto.as_mut() else {
            return Opened::Nothing;
        };
        match c
            .transport
            .handle_ciphertext(self.rbuf.data(), &mut c.plain)
        {
            Ok(n) => self.rbuf.consume(n),
            Err(e) => {
                self.rbuf.consume(self.rbuf.data().len());
                return Opened::Failed(e);
            }
        }
        if c.plain.is_empty() {
            Opened::Nothing
        } else {
            Opened::Plaintext
        }
    }

    /// The peer's static key, once, when the encrypted handshake has
    /// proved it: the caller checks it (and refuses it through the
    /// session if it must).
    pub fn take_peer_key(&mut self) -> Option<[u8; transport::KEY_LEN]> {
        let c = self.crypto.as_mut()?;
        if c.key_taken || !c.transport.is_established() {
            return None;
        }
        c.key_taken = true;
        c.transport.remote_static()
    }

    /// The peer's key passed the checks: the session's bytes may leave.
    pub fn accept_key(&mut self) {
        if let Some(c) = self.crypto.as_mut() {
            c.verified = true;
        }
    }

    /// The peer's key was refused or could not be checked: it is told so
    /// (the BYE alone, sealed) and nothing of the session's leaves.
    pub fn refuse_key(&mut self, why: SessionError) {
        if let Some(c) = self.crypto.as_mut() {
            c.refused = true;
            // Our last handshake message goes first, if it has not left.
            if c.out_pos == c.out.len() {
                c.out.clear();
                c.out_pos = 0;
            }
            c.transport.poll_handshake(&mut c.out);
            let mut frames = Vec::new();
            crate::core::session::refusal_frames(&why, &mut frames);
            if let Err(e) = c.transport.seal(&frames, &mut c.out) {
                log::debug!("cannot seal the refusal: {e}");
            }
        }
        self.session.refuse_key(why);
    }

    /// Whether the chat may begin on this connection as far as keys go:
    /// plain, or the peer's key was accepted.
    pub fn key_accepted(&self) -> bool {
        self.crypto.as_ref().is_none_or(|c| c.verified)
    }

    /// Keeps the checked peer key until the chat is granted.
    pub fn set_peer_key(&mut self, key: PeerKey) {
        if let Some(c) = self.crypto.as_mut() {
            c.shown = Some(key);
        }
    }

    /// The checked peer key kept by `set_peer_key`.
    pub fn take_shown_key(&mut self) -> Option<PeerKey> {
        self.crypto.as_mut()?.shown.take()
    }

    /// Writes the session's outbox until it is empty or the socket is
    /// full. Most calls find nothing to write (what the read or the input
    /// queued has already left): that check is inlined into the callers.
    #[inline]
    pub fn flush(&mut self, clock: &mut Clock) {
        if self.crypto.is_some() {
            if self.writable {
                self.write_sealed(clock);
            }
        } else if self.writable && self.session.has_transmit() {
            self.write(clock);
        }
    }

    /// `flush` through the encrypted transport: handshake messages first,
    /// then the session's bytes sealed a batch at a time, each batch
    /// written before the next is sealed. A sealed batch counts as written
    /// for the session (its RTT starts there, just before the write).
    #[inline(never)]
    fn write_sealed(&mut self, clock: &mut Clock) {
        let Conn {
            stream,
            session,
            writable,
            kernel_unsent,
            crypto: Some(c),
            ..
        } = self
        else {
            return;
        };
        let mut socket: &TcpStream = stream;
        let mut batches = 0;
        // The kernel's share follows the session's queue limit, as on the
        // plain path.
        let want = session.kernel_unsent_limit();
        if want != *kernel_unsent {
            match set_notsent_lowat(stream, want) {
                Ok(()) => *kernel_unsent = want,
                Err(e) => log::debug!("TCP_NOTSENT_LOWAT: {}", io_msg(&e)),
            }
        }
        while *writable {
            if c.out_pos == c.out.len() {
                c.out.clear();
                c.out_pos = 0;
                c.transport.poll_handshake(&mut c.out);
                if c.out.is_empty() && c.transport.is_established() && c.verified {
                    let tx = session.poll_transmit();
                    if tx.bytes.is_empty() {
                        break;
                    }
                    let take = tx.bytes.len().min(SEAL_BATCH);
                    let handed = if tx.starts_message || batches > 0 {
                        clock.read()
                    } else {
                        clock.now()
                    };
                    batches += 1;
                    if let Err(e) = c.transport.seal(&tx.bytes[..take], &mut c.out) {
                        session.handle_lost(format!("connection lost: {e}"));
                        break;
                    }
                    session.handle_written(take, handed);
                }
                if c.out.is_empty() {
                    break;
                }
            }
            match socket.write(&c.out[c.out_pos..]) {
                Ok(0) => {
                    *writable = false;
                    session.handle_lost("connection lost: the socket took no bytes".to_string());
                }
                Ok(n) => c.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => *writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    *writable = false;
                    session.handle_lost(format!("connection lost: {}", io_msg(&e)));
                }
            }
        }
    }

    /// `flush`'s writing part, keeping the socket's `TCP_NOTSENT_LOWAT` at
    /// what the session asks for.
    #[inline(never)]
    fn write(&mut self, clock: &mut Clock) {
        let Conn {
            stream,
            session,
            writable,
            kernel_unsent,
            ..
        } = self;
        let mut socket: &TcpStream = stream;
        flush_to(session, &mut socket, writable, clock, |session| {
            let want = session.kernel_unsent_limit();
            if want != *kernel_unsent {
                // Not fatal: the old mark only keeps the queue smaller.
                match set_notsent_lowat(stream, want) {
                    Ok(()) => *kernel_unsent = want,
                    Err(e) => log::debug!("TCP_NOTSENT_LOWAT: {}", io_msg(&e)),
                }
            }
        });
    }
}

/// `Conn::write`'s loop, over any writer (the tests use one that takes its
/// time); `written` runs after each write that took bytes. Inlined into
/// its one caller, which is on the ack path.
#[inline(always)]
pub(crate) fn flush_to(
    session: &mut Session,
    out: &mut impl Write,
    writable: &mut bool,
    clock: &mut Clock,
    mut written: impl FnMut(&Session),
) {
    let mut writes = 0;
    // `has_transmit` first: a write usually takes everything, and the
    // check is cheaper than the call that would find nothing more.
    while *writable && session.has_transmit() {
        let tx = session.poll_transmit();
        if tx.bytes.is_empty() {
            break;
        }
        // The RTT starts when a message's first byte is handed to the
        // kernel: the clock is read just before such a write, not earlier
        // in the turn (the work of encoding a large message in this turn
        // must not count). So is it before each write after the first in
        // a row (a transfer's chunks), where the session times the drain
        // rate and the write progress that the stall deadline counts from.
        // A lone ack shares the turn's reading.
        let handed = if tx.starts_message || writes > 0 {
            clock.read()
        } else {
            clock.now()
        };
        writes += 1;
        match out.write(tx.bytes) {
            // A write that takes nothing of a non-empty buffer would
            // repeat for ever: the connection is unusable.
            Ok(0) => {
                *writable = false;
                session.handle_lost("connection lost: the socket took no bytes".to_string());
            }
            Ok(n) => {
                session.handle_written(n, handed);
                written(session);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => *writable = false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                *writable = false;
                session.handle_lost(format!("connection lost: {}", io_msg(&e)));
            }
        }
    }
}

/// How long to wait for the peer's FIN after the chat ends: not at all when
/// the peer is unresponsive or the connection already failed.
fn close_grace(session: &Session) -> Duration {
    match session.end() {
        Some(End::Lost(_))
        | Some(End::Failed(SessionError::Dead { .. } | SessionError::WriteStall { .. })) => {
            Duration::ZERO
        }
        _ => CLOSE_GRACE,
    }
}

/// Caps the unsent data the kernel accepts from us (Linux 3.12+).
fn set_notsent_lowat(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt with a pointer to an int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::protocol::{Frame, Hello};
    use std::borrow::Cow;

    const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A socket that takes up to `chunk` bytes per write and returns
    /// `spin` after each write starts; full after `writes` writes.
    struct SlowSocket {
        chunk: usize,
        spin: Duration,
        writes: usize,
    }

    impl Write for SlowSocket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.writes == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.writes -= 1;
            // The time the bytes take to leave: a wait on the clock that
            // the code under test reads, not on another thread.
            let until = Instant::now() + self.spin;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            Ok(buf.len().min(self.chunk))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A session past the handshake, with the stall timeout on.
    fn open_session(now: Instant) -> Session {
        let mut session = Session::new(
            Config {
                name: b"me".to_vec(),
                max_message: 1 << 20,
                linger: Duration::from_secs(1),
                handshake_timeout: Duration::from_secs(5),
                heartbeat: None,
                dead_after: 3,
                write_timeout: Some(WRITE_TIMEOUT),
                stream: false,
            },
            now,
        );
        let mut hello = Vec::new();
        protocol::encode(
            &Frame::Hello(Hello {
                version: protocol::VERSION,
                max_message: 1 << 20,
                name: b"peer",
            }),
            &mut hello,
        );
        assert_eq!(session.handle_peer_bytes(&hello, now), hello.len());
        assert!(session.is_open());
        session
    }

    /// The writes of one flush after the first are stamped with fresh
    /// readings: the session times the drain rate and its write progress
    /// from them. Sharing the first write's reading would make a transfer
    /// that just spent its whole turn writing look stalled since the
    /// turn's start, and its rate unmeasurable.
    #[test]
    fn each_later_write_of_a_flush_reads_the_clock() {
        let spin = Duration::from_millis(1);
        let mut session = open_session(Instant::now());
        session
            .handle_input(Cow::Owned(vec![b'x'; 200_000]), Instant::now())
            .expect("queued");
        let mut socket = SlowSocket {
            chunk: 16 * 1024,
            spin,
            writes: 4,
        };
        let mut writable = true;
        let mut writes_seen = 0;
        let start = Instant::now();
        flush_to(
            &mut session,
            &mut socket,
            &mut writable,
            &mut Clock::unread(),
            |_| writes_seen += 1,
        );
        assert_eq!(writes_seen, 4);
        assert!(!writable, "the socket filled up");
        // The last write started after three spins; the stall deadline
        // counts from it.
        let deadline = session.poll_timeout().expect("data is waiting");
        assert!(
            deadline >= start + 3 * spin + WRITE_TIMEOUT,
            "stall deadline {:?} after the flush began, expected at least {:?}",
            deadline - start,
            3 * spin + WRITE_TIMEOUT
        );
    }

    /// A writer that takes nothing: `Ok(0)` with bytes pending.
    struct Stuck {
        calls: usize,
    }

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            assert!(self.calls < 100, "write called again and again");
            Ok(0)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A zero-byte write with bytes pending ends the connection; it is not
    /// retried for ever.
    #[test]
    fn a_write_that_takes_nothing_loses_the_connection() {
        let now = Instant::now();
        let mut session = open_session(now);
        session
            .handle_input(Cow::Borrowed(b"hello"), now)
            .expect("queued");
        let mut out = Stuck { calls: 0 };
        let mut writable = true;
        flush_to(
            &mut session,
            &mut out,
            &mut writable,
            &mut Clock::at(now),
            |_| {},
        );
        assert_eq!(out.calls, 1);
        assert!(!writable);
        assert!(
            matches!(session.end(), Some(End::Lost(why)) if why.contains("took no bytes")),
            "{:?}",
            session.end()
        );
    }
}
