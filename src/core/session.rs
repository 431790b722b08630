//! The chat state machine for one connection: handshake, sending in chunks,
//! acknowledging, RTT measurement and the goodbye.
//!
//! Sans-IO in the style of quinn-proto: the caller feeds what happened
//! (`handle_peer_bytes`, `handle_written`, `handle_input`, `handle_eof`,
//! `handle_timeout`), always with the current `now`, and takes what the
//! session wants done (`poll_transmit`, `poll_event`, `poll_timeout`). This
//! file never reads a clock, touches a descriptor, or prints.
//!
//! The ack path: a complete message's ACK is appended to the outbox before
//! its display event is queued, so a caller that flushes after
//! `handle_peer_bytes` sends every ack before doing any display work. With
//! `Config::stream`, the earlier chunks of a long message are queued for
//! display as they arrive (`Event::MessagePart`), unacknowledged; its last
//! chunk still comes after its ACK. Once the buffers are warm, receiving a
//! message and acknowledging it allocates nothing (`tests/alloc.rs` proves
//! it).
//!
//! Call order for the caller, each turn: `handle_*` for what happened, then
//! `poll_transmit`/`handle_written` until the socket would block, then
//! `poll_event` until `None`, then `poll_timeout` for the next wake-up.

use std::borrow::Cow;
use std::collections::VecDeque;

use std::time::{Duration, Instant};

use crate::core::protocol::{self, ByeReason, Frame, Hello, MAX_CHUNK, ROOM_PROBE, ReceiptStatus};
use crate::core::queue_limit::{self, QueueLimit};
use crate::core::rtt::RttStats;

/// Unsent outbox bytes above which we stop reading the peer (its acks and
/// pongs could not be written anyway) and stop taking input. Message data
/// alone never reaches it (at most the largest queue limit plus a chunk),
/// so two peers sending to each other never both stop reading for it.
const OUT_CAP: usize = 4 * queue_limit::MAX;
/// Accepted-but-unsent message bytes above which we stop taking input,
/// each message charged [`MSG_COST`] on top of its length.
const PENDING_CAP: usize = 1024 * 1024;
/// Messages given an id and not yet acknowledged (queued or in flight)
/// above which we stop taking input.
const MAX_IN_FLIGHT: usize = 64 * 1024;
/// Received message bytes and events waiting for display above which we
/// stop reading the peer and stop taking input, each event charged
/// [`MSG_COST`] on top of its bytes.
const DISPLAY_CAP: usize = 1024 * 1024;
/// What one queued message or event costs besides its bytes: at least its
/// entry in the queue (a `Pending` is 40 bytes, a `Record` 32). Without it
/// an empty message would cost nothing, and a flood of them would never
/// fill a queue capped in bytes.
pub const MSG_COST: usize = 64;
/// Display arena capacity kept after a large message has been shown: a
/// full display queue, so that streaming a long message does not free and
/// fault in the arena every turn.
const ARENA_KEEP: usize = DISPLAY_CAP + MAX_CHUNK;
/// Assembly buffer capacity kept between multi-chunk messages.
const RX_KEEP: usize = 4 * 1024 * 1024;
/// A sent message's buffer at least this large is freed once the message
/// is acknowledged, not as soon as its last chunk is encoded (`spent`).
const SPENT_MIN: usize = 1024 * 1024;

pub use crate::core::deadline::later;
pub use types::{Config, End, Event, InputRefused, RoomAnswer, SessionError, Stats, Transmit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Our HELLO is queued; waiting for the peer's until the deadline.
    Handshake {
        deadline: Instant,
    },
    Open,
    /// Input ended: waiting for outstanding acks, and for a message of the
    /// peer's already arriving, until the deadline.
    Draining {
        deadline: Instant,
    },
    /// BYE sent or received, or the connection failed.
    Closed,
}

#[derive(Debug, Clone, Copy)]
enum Record {
    Connected,
    Sent {
        id: u64,
        len: u64,
    },
    Acked {
        id: u64,
        len: u64,
        rtt: Duration,
    },
    Message {
        id: u64,
        start: usize,
        end: usize,
        continues: bool,
    },
    Part {
        id: u64,
        start: usize,
        end: usize,
    },
    Refused {
        len: u64,
        limit: u64,
    },
    Skipped {
        limit: u64,
    },
    Ended,
    /// Room member (see `session/member.rs`): we joined, a message in the
    /// room envelope (its sender's name is `name_len` bytes at `start`,
    /// its text follows up to `end`), a piece of one, a receipt (its
    /// recipient's name is `name_len` bytes at `start`).
    Joined,
    RoomMessage {
        id: u64,
        start: usize,
        end: usize,
        name_len: u8,
        continues: bool,
    },
    RoomPart {
        id: u64,
        start: usize,
        end: usize,
        name_len: u8,
    },
    Receipt {
        id: u64,
        rtt_ns: u64,
        start: usize,
        name_len: u8,
        status: ReceiptStatus,
    },
}

/// A message accepted but not yet fully encoded into the outbox.
#[derive(Debug)]
struct Pending {
    id: u64,
    data: Vec<u8>,
    /// Bytes of `data` already encoded.
    done: usize,
}

/// A message whose first frame is in the outbox or on the wire.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    id: u64,
    len: u64,
    /// Stream offsets of its first and one past its last byte.
    start: u64,
    end: u64,
    /// When its first byte was handed to the socket.
    sent_at: Option<Instant>,
}

/// One connection's chat state.
pub struct Session {
    cfg: Config,
    state: State,
    end: Option<End>,
    /// Input ended (possibly before the handshake completed).
    input_ended: bool,
    handshake_done: bool,
    peer_name: Vec<u8>,
    peer_max: u64,

    outbox: Vec<u8>,
    out_pos: usize,
    /// Bytes handed to the socket since the connection began.
    written: u64,
    next_id: u64,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    /// The buffer of a large message whose last chunk is encoded, and its
    /// id. Freeing it unmaps every page, which takes about as long as
    /// copying the message into the outbox (docs/PERFORMANCE.md): done at
    /// once, it held back the writes of the message's last half megabyte.
    /// It is freed at the end of the turn that sees its ack.
    /// Received message bytes waiting for display above which no more
    /// peer bytes are taken: `DISPLAY_CAP`, or 0 while held after HELLO.
    display_cap: usize,
    /// Take nothing after the peer's HELLO until `release` (a server's
    /// connection waiting to be granted the chat).
    held: bool,
    spent: Option<(u64, Vec<u8>)>,
    in_flight: VecDeque<InFlight>,
    /// Index in `in_flight` of the first entry without `sent_at`.
    unsent: usize,
    /// How much message data may wait in the outbox (and the kernel).
    queue: QueueLimit,

    /// The message being received: its id, the bytes so far (kept in `rx`
    /// unless streaming), and how many there were.
    rx_id: u64,
    rx: Vec<u8>,
    rx_len: u64,
    /// Complete messages waiting to be shown.
    arena: Vec<u8>,
    events: VecDeque<Record>,

    /// The last sign of life: bytes received, or our data leaving.
    last_heard: Instant,
    /// PINGs sent since then.
    pings: u32,
    /// The last write progress, or when the outbox last became non-empty.
    last_progress: Instant,
    /// When the first message's first byte was written, and when the last
    /// acknowledgment was decoded (for throughput).
    first_written: Option<Instant>,
    last_acked: Option<Instant>,

    stats: Stats,
    rtt: RttStats,

    /// Room hub only (all false/`None` elsewhere): the room PING was sent,
    /// the peer's answer to it, and whether a complete message's ACK waits
    /// for [`Session::handle_delivered`] instead of leaving at once.
    room_probe_sent: bool,
    room_answer: Option<RoomAnswer>,
    defer_acks: bool,
    /// The last message id acknowledged while acks are deferred.
    acked_rx: u64,

    /// Room member only: answer a hub's room PING with JOIN (a client's
    /// session; see [`Session::join_rooms`]), and once we have, the state
    /// of the room envelope being received.
    join_rooms: bool,
    member: Option<Box<member::Member>>,
}

impl Session {
    /// A new session whose HELLO is already queued.
    pub fn new(cfg: Config, now: Instant) -> Session {
        let deadline = later(now, cfg.handshake_timeout);
        let mut s = Session {
            cfg,
            state: State::Handshake { deadline },
            end: None,
            input_ended: false,
            handshake_done: false,
            peer_name: Vec::new(),
            peer_max: 0,
            outbox: Vec::with_capacity(512),
            out_pos: 0,
            written: 0,
            next_id: 1,
            pending: VecDeque::new(),
            pending_bytes: 0,
            spent: None,
            display_cap: DISPLAY_CAP,
            held: false,
            in_flight: VecDeque::with_capacity(64),
            unsent: 0,
            queue: QueueLimit::default(),
            rx_id: 1,
            rx: Vec::new(),
            rx_len: 0,
            arena: Vec::new(),
            events: VecDeque::with_capacity(64),
            last_heard: now,
            pings: 0,
            last_progress: now,
            first_written: None,
            last_acked: None,
            stats: Stats::default(),
            rtt: RttStats::new(),
            room_probe_sent: false,
            room_answer: None,
            defer_acks: false,
            acked_rx: 0,
            join_rooms: false,
            member: None,
        };
        let hello = Frame::Hello(Hello {
            version: protocol::VERSION,
            max_message: s.cfg.max_message,
            name: &s.cfg.name,
        });
        protocol::encode(&hello, &mut s.outbox);
        s
    }

    // ----- inputs -------------------------------------------------------

    /// Decodes and handles every complete frame at the front of `buf`,
    /// stopping early when the display queue or outbox is full
    /// ([`Session::wants_peer_bytes`]). Returns how many bytes were used;
    /// the caller drops them and keeps the rest for later.
    pub fn handle_peer_bytes(&mut self, buf: &[u8], now: Instant) -> usize {
        self.outbox_clock(now);
        if !buf.is_empty() {
            self.alive(now);
        }
        let mut used = 0;
        while self.wants_peer_bytes() {
            match protocol::decode(&buf[used..]) {
                Ok(None) => break,
                Ok(Some((frame, n))) => {
                    used += n;
                    self.handle_frame(frame, now);
                }
                Err(e) => {
                    let err = if matches!(self.state, State::Handshake { .. }) {
                        SessionError::NotDuet {
                            first: buf[used..].iter().take(16).copied().collect(),
                        }
                    } else {
                        SessionError::Protocol(e)
                    };
                    self.fail(err);
                    used = buf.len();
                }
            }
        }
        if self.state == State::Closed {
            // Nothing after the end matters; let the caller drop it all.
            used = buf.len();
        }
        used
    }

    /// The peer closed its side. `leftover` is how many received bytes
    /// did not form a complete frame.
    pub fn handle_eof(&mut self, leftover: usize) {
        if self.state == State::Closed {
            return;
        }
        let mid_message = !matches!(self.state, State::Handshake { .. }) && self.rx_len > 0;
        if leftover > 0 || mid_message {
            self.fail(SessionError::Truncated);
        } else if matches!(self.state, State::Handshake { .. }) {
            self.fail(SessionError::NoHello);
        } else {
            self.fail(SessionError::NoBye);
        }
    }

    /// `n` bytes of [`Session::poll_transmit`]'s slice were written.
    /// Always inlined: it runs after every write, and the plain and the
    /// encrypted writers each call it, so the compiler would not.
    #[inline(always)]
    pub fn handle_written(&mut self, n: usize, now: Instant) {
        debug_assert!(n <= self.outbox.len() - self.out_pos);
        if n > 0 {
            self.last_progress = now;
            // Message bytes leaving show the path and the peer's kernel work,
            // so a long transfer is not mistaken for a dead peer.
            if self.in_flight.back().is_some_and(|m| m.end > self.written) {
                self.alive(now);
            }
        }
        self.out_pos += n;
        self.written += n as u64;
        if self.out_pos == self.outbox.len() {
            self.outbox.clear();
            self.out_pos = 0;
        }
        let more = self.unsent_out() > 0 || self.pending_bytes > 0;
        self.queue.written(n, more, now);
        while let Some(m) = self.in_flight.get_mut(self.unsent) {
            if m.start >= self.written {
                break;
            }
            m.sent_at = Some(now);
            self.first_written.get_or_insert(now);
            self.unsent += 1;
        }
    }

    /// An input record was skipped before it became a message (longer than
    /// our own limit): it counts as refused, so the summary and the exit
    /// status say that something did not get through, and it is reported
    /// as [`Event::Skipped`]. Before the chat is open (or after) there is
    /// no one to count it for: returns false, and the caller says so.
    pub fn handle_input_skipped(&mut self) -> bool {
        if !self.is_open() {
            return false;
        }
        self.stats.refused += 1;
        let limit = self.cfg.max_message;
        self.events.push_back(Record::Skipped { limit });
        true
    }

    /// Offers one message for sending. Messages up to one chunk go straight
    /// into the outbox when nothing is queued ahead of them; larger ones are
    /// kept and chunked as the outbox drains.
    pub fn handle_input(&mut self, msg: Cow<'_, [u8]>, now: Instant) -> Result<u64, InputRefused> {
        if !matches!(self.state, State::Open) {
            return Err(InputRefused::NotOpen);
        }
        self.outbox_clock(now);
        let len = msg.len() as u64;
        if len > self.peer_max {
            self.stats.refused += 1;
            let limit = self.peer_max;
            self.events.push_back(Record::Refused { len, limit });
            return Err(InputRefused::TooLarge { len, limit });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.stats.sent += 1;
        self.events.push_back(Record::Sent { id, len });
        if self.pending.is_empty() && msg.len() <= MAX_CHUNK && self.unsent_out() < self.queue.get()
        {
            self.encode_chunk(id, &msg, 0);
        } else {
            self.pending_bytes += msg.len();
            self.pending.push_back(Pending {
                id,
                data: msg.into_owned(),
                done: 0,
            });
        }
        Ok(id)
    }

    /// Stop taking peer bytes once the peer's HELLO has been handled,
    /// until [`Session::release`]: a server holds every connection whose
    /// handshake is under way, and grants the chat to the first one that
    /// completes it. Nothing the peer sends after its HELLO is acknowledged
    /// before then, so a connection turned away has had no message taken.
    pub fn hold_after_hello(&mut self) {
        self.held = true;
    }

    /// Takes peer bytes again (the chat was granted).
    pub fn release(&mut self) {
        self.held = false;
        self.display_cap = DISPLAY_CAP;
    }

    // ----- outputs ------------------------------------------------------

    /// What to write to the socket next; its bytes are empty when there is
    /// nothing. Inlined: usually the outbox is ready as it is, and only
    /// queued messages or a long-consumed front need `refill`.
    #[inline]
    pub fn poll_transmit(&mut self) -> Transmit<'_> {
        if !self.pending.is_empty() || self.out_pos >= self.queue.get() {
            self.refill();
        }
        Transmit {
            bytes: &self.outbox[self.out_pos..],
            // A message enters `in_flight` as its first chunk is encoded,
            // so one not yet started has its first byte in these bytes.
            starts_message: self.unsent < self.in_flight.len(),
        }
    }

    /// Drops the written front of the outbox once it is long, and encodes
    /// queued messages into it up to the queue limit.
    #[inline(never)]
    fn refill(&mut self) {
        let refill = self.queue.get();
        if self.out_pos >= refill {
            self.outbox.drain(..self.out_pos);
            self.out_pos = 0;
        }
        while self.unsent_out() < refill && self.state != State::Closed {
            let Some(p) = self.pending.front_mut() else {
                break;
            };
            let (id, done) = (p.id, p.done);
            let data = std::mem::take(&mut p.data);
            let n = self.encode_chunk(id, &data, done);
            let p = self.pending.front_mut().expect("front still there");
            p.data = data;
            p.done += n;
            self.pending_bytes -= n;
            if p.done == p.data.len() {
                let p = self.pending.pop_front().expect("front still there");
                if p.data.capacity() >= SPENT_MIN {
                    self.spent = Some((p.id, p.data));
                }
            }
        }
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) may have bytes: a
    /// check the loop makes before a flush, which most turns do not need.
    #[inline]
    pub fn has_transmit(&self) -> bool {
        self.unsent_out() > 0 || (!self.pending.is_empty() && self.state != State::Closed)
    }

    /// The next thing to show, or `None` when all have been taken.
    /// Inlined into its callers, where the match on the event then sees
    /// which record it came from (always: the room's records made it big
    /// enough for the compiler to decline); the end of the queue and a
    /// room member's records are calls.
    #[inline(always)]
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        let Some(rec) = self.events.pop_front() else {
            self.events_taken();
            return None;
        };
        Some(match rec {
            Record::Connected => Event::Connected {
                name: &self.peer_name,
                max_message: self.peer_max,
            },
            Record::Sent { id, len } => Event::Sent { id, len },
            Record::Acked { id, len, rtt } => Event::Acked { id, len, rtt },
            Record::Message {
                id,
                start,
                end,
                continues,
            } => Event::Message {
                id,
                data: &self.arena[start..end],
                continues,
            },
            Record::Part { id, start, end } => Event::MessagePart {
                id,
                data: &self.arena[start..end],
            },
            Record::Refused { len, limit } => Event::Refused { len, limit },
            Record::Skipped { limit } => Event::Skipped { limit },
            Record::Ended => Event::Ended,
            rec => self.room_event(rec),
        })
    }

    /// Every event was taken: the display arena is emptied for the next
    /// turn. Usually that is all (inlined); else a spent message buffer
    /// may be freed and the buffers resized.
    #[inline]
    fn events_taken(&mut self) {
        self.arena.clear();
        if self.spent.is_some()
            || self.arena.capacity() > self.rx.capacity()
            || self.rx.capacity() > ARENA_KEEP
        {
            self.settle_buffers();
        }
    }

    /// Frees the spent message buffer once its message is acknowledged,
    /// and keeps the display arena and the assembly buffer at sizes worth
    /// keeping.
    #[inline(never)]
    fn settle_buffers(&mut self) {
        let acked = |id| self.in_flight.front().is_none_or(|m| m.id > id);
        if self.spent.as_ref().is_some_and(|&(id, _)| acked(id)) {
            self.spent = None;
        }
        if self.rx.is_empty() && self.arena.capacity() > self.rx.capacity() {
            // Give the large buffer back to the assembler, so that the
            // next large message does not grow (and fault in) a new one.
            std::mem::swap(&mut self.arena, &mut self.rx);
        }
        if self.arena.capacity() > ARENA_KEEP {
            self.arena.shrink_to(ARENA_KEEP);
        }
        if self.rx.capacity() > RX_KEEP {
            self.rx.shrink_to(RX_KEEP);
        }
    }

    // ----- state --------------------------------------------------------

    /// The handshake is done and the chat has not ended.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open | State::Draining { .. })
    }

    /// The peer's HELLO arrived at some point (the chat took place).
    pub fn handshake_done(&self) -> bool {
        self.handshake_done
    }

    /// The chat is over (BYE queued or received, or failure). What is left
    /// in the outbox should still be flushed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// How the chat ended, once it has.
    pub fn end(&self) -> Option<&End> {
        self.end.as_ref()
    }

    /// Whether the caller should offer more input to this session. False
    /// while the queued input, the messages awaiting acks, the outbox or
    /// the display queue is full: the caller stops reading stdin, even in
    /// the middle of what it has read (each message offered may be the one
    /// that fills a queue), and its writer is held back.
    #[inline]
    pub fn wants_input(&self) -> bool {
        self.state == State::Open
            && self.pending_bytes + self.pending.len() * MSG_COST < PENDING_CAP
            && self.outstanding() < MAX_IN_FLIGHT as u64
            && self.unsent_out() < OUT_CAP
            && self.display_cost() < DISPLAY_CAP
    }

    /// Whether the caller should read (and pass on) more peer bytes. False
    /// while the display queue or the outbox is full: TCP then pushes back.
    #[inline]
    pub fn wants_peer_bytes(&self) -> bool {
        self.state != State::Closed
            && self.display_cost() < self.display_cap
            && self.unsent_out() < OUT_CAP
    }

    /// Unsent bytes the kernel should hold for this connection at most
    /// (`TCP_NOTSENT_LOWAT`; see `queue_limit`).
    pub fn kernel_unsent_limit(&self) -> usize {
        self.queue.kernel()
    }

    /// Messages given an id and not yet acknowledged.
    pub fn outstanding(&self) -> u64 {
        self.stats.sent - self.stats.acked
    }

    /// From the first byte of the first message handed to the kernel to
    /// the last acknowledgment decoded: the span throughput is measured
    /// over (zero before any acknowledgment).
    pub fn acked_span(&self) -> Duration {
        match (self.first_written, self.last_acked) {
            (Some(a), Some(b)) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            rtt: self.rtt.summary(),
            ..self.stats
        }
    }

    // ----- internals ----------------------------------------------------

    fn unsent_out(&self) -> usize {
        self.outbox.len() - self.out_pos
    }

    /// The display queue's charge: the bytes of the messages waiting to be
    /// shown, and [`MSG_COST`] for each event (an empty message, an ack).
    #[inline]
    fn display_cost(&self) -> usize {
        self.arena.len() + self.events.len() * MSG_COST
    }

    /// Appends the chunk of `data` that starts at `from` as a DATA frame;
    /// returns its length. The first chunk puts the message in flight.
    #[inline]
    fn encode_chunk(&mut self, id: u64, data: &[u8], from: usize) -> usize {
        let n = (data.len() - from).min(MAX_CHUNK);
        let last = from + n == data.len();
        if from == 0 {
            let start = self.written + self.unsent_out() as u64;
            let chunks = data.len().div_ceil(MAX_CHUNK).max(1) as u64;
            let overhead = (protocol::HEADER_LEN + protocol::DATA_FIXED) as u64;
            let end = start + data.len() as u64 + chunks * overhead;
            self.in_flight.push_back(InFlight {
                id,
                len: data.len() as u64,
                start,
                end,
                sent_at: None,
            });
        }
        let chunk = &data[from..from + n];
        protocol::encode(&Frame::Data { id, last, chunk }, &mut self.outbox);
        n
    }

    fn handle_frame(&mut self, frame: Frame<'_>, now: Instant) {
        match (self.state, frame) {
            (State::Closed, _) => {}
            (State::Handshake { .. }, Frame::ForeignHello { version, .. }) => {
                self.fail(SessionError::Version { peer: version });
            }
            (State::Handshake { .. }, Frame::Hello(h)) => {
                debug_assert_eq!(h.version, protocol::VERSION, "decode sorts versions");
                self.peer_name = h.name.to_vec();
                self.peer_max = h.max_message;
                self.state = State::Open;
                self.handshake_done = true;
                self.events.push_back(Record::Connected);
                if self.held {
                    // Nothing after the HELLO is taken until `release`.
                    self.display_cap = 0;
                }
                if self.input_ended {
                    self.handle_input_end(now);
                }
            }
            (_, Frame::Bye { reason, detail }) => {
                self.finish(End::Peer {
                    reason,
                    detail: detail.to_vec(),
                });
            }
            (State::Handshake { .. }, _) => {
                self.fail(SessionError::Unexpected("a frame before HELLO"));
            }
            (_, Frame::Hello(_) | Frame::ForeignHello { .. }) => {
                self.fail(SessionError::Unexpected("a second HELLO"))
            }
            (_, Frame::Data { id, last, chunk }) => self.handle_data(id, last, chunk),
            (_, Frame::Ack { id }) => self.handle_ack(id, now),
            (_, Frame::Ping(v)) if v == ROOM_PROBE && self.join_rooms && self.member.is_none() => {
                self.join_room();
            }
            (_, Frame::Ping(v)) => protocol::encode(&Frame::Pong(v), &mut self.outbox),
            (_, Frame::Pong(v)) => {
                if v == ROOM_PROBE && self.room_probe_sent && self.room_answer.is_none() {
                    self.room_answer = Some(RoomAnswer::Plain);
                }
            }
            (_, Frame::Join(v)) => {
                if v == ROOM_PROBE && self.room_probe_sent && self.room_answer.is_none() {
                    self.room_answer = Some(RoomAnswer::Join);
                } else {
                    self.fail(SessionError::Unexpected("a room frame outside a room"));
                }
            }
            (_, Frame::Receipt { id, status, name }) if self.member.is_some() => {
                self.handle_room_receipt(id, status, name, now);
            }
            (_, Frame::Receipt { .. }) => {
                // Only a hub sends RECEIPT, and only to a peer that sent JOIN.
                self.fail(SessionError::Unexpected("a room frame outside a room"));
            }
        }
    }

    /// The receive half of the ack path: assemble, ack first, then queue
    /// the message for display.
    fn handle_data(&mut self, id: u64, last: bool, chunk: &[u8]) {
        if id != self.rx_id {
            self.fail(SessionError::OutOfOrder {
                expected: self.rx_id,
                got: id,
            });
            return;
        }
        if self.rx_len + chunk.len() as u64 > self.cfg.max_message {
            self.fail(SessionError::TooLarge {
                limit: self.cfg.max_message,
            });
            return;
        }
        if self.member.is_some() {
            return self.handle_room_data(id, last, chunk);
        }
        let continues = self.rx_len > 0 && self.cfg.stream;
        self.rx_len += chunk.len() as u64;
        if !last {
            return self.handle_first_chunks(id, chunk);
        }
        if !self.defer_acks {
            protocol::encode(&Frame::Ack { id }, &mut self.outbox);
        }
        self.rx_id += 1;
        self.rx_len = 0;
        self.stats.received += 1;
        let start = self.arena.len();
        if self.rx.is_empty() {
            self.arena.extend_from_slice(chunk);
        } else {
            self.assemble(chunk);
        }
        let end = self.arena.len();
        self.events.push_back(Record::Message {
            id,
            start,
            end,
            continues,
        });
        // We may have been waiting for this message to leave.
        self.bye_if_drained();
    }

    /// A chunk that is not a message's last: shown as it comes when
    /// streaming, else kept until the last. A call: most messages are one
    /// chunk.
    #[inline(never)]
    fn handle_first_chunks(&mut self, id: u64, chunk: &[u8]) {
        if self.cfg.stream {
            let start = self.arena.len();
            self.arena.extend_from_slice(chunk);
            let end = self.arena.len();
            self.events.push_back(Record::Part { id, start, end });
        } else {
            self.rx.extend_from_slice(chunk);
        }
    }

    /// The last chunk of a message of several: the message goes into the
    /// display arena whole.
    #[inline(never)]
    fn assemble(&mut self, chunk: &[u8]) {
        if self.arena.is_empty() {
            // Hand the message's buffer over instead of copying it.
            std::mem::swap(&mut self.arena, &mut self.rx);
            self.arena.extend_from_slice(chunk);
        } else {
            self.arena.extend_from_slice(&self.rx);
            self.arena.extend_from_slice(chunk);
            self.rx.clear();
        }
    }

    /// The send half of the ack path: match the oldest message in flight.
    fn handle_ack(&mut self, id: u64, now: Instant) {
        let ok = matches!(self.in_flight.front(),
            Some(m) if m.id == id && m.sent_at.is_some() && self.written >= m.end);
        if !ok {
            self.fail(SessionError::StrayAck { id });
            return;
        }
        let m = self.in_flight.pop_front().expect("checked above");
        self.unsent -= 1;
        let rtt = now.saturating_duration_since(m.sent_at.expect("checked above"));
        self.rtt.record(rtt);
        self.stats.acked += 1;
        self.last_acked = Some(now);
        self.events.push_back(Record::Acked {
            id,
            len: m.len,
            rtt,
        });
        self.bye_if_drained();
    }

    /// Leaves once our messages are acknowledged and no message of the
    /// peer's is half received: hanging up in the middle of one would lose
    /// it. The drain deadline bounds both waits.
    fn bye_if_drained(&mut self) {
        if matches!(self.state, State::Draining { .. })
            && self.outstanding() == 0
            && self.rx_len == 0
        {
            self.queue_bye(ByeReason::Normal, b"");
            self.finish(End::Local(ByeReason::Normal));
        }
    }
}

pub use ending::refusal_frames;

mod ending;
mod liveness;
mod member;
mod room;
mod types;

#[cfg(test)]
mod tests;
