//! A room member's side of its session (docs/PROTOCOL.md, "Rooms"):
//! answering a hub's room greeting with JOIN, then taking the hub's
//! messages in the room envelope and the RECEIPTs of our own messages.
//! The hub's side is `session/room.rs`.
//!
//! A one-on-one chat never gets here: `handle_frame` and `handle_data`
//! branch once on whether this session has joined a room.

use std::time::Instant;

use super::*;

/// Why a room message is a protocol error: it is too short for the
/// envelope (a message without its `name_len` byte, or shorter than the
/// name that byte announces).
const SHORT_ENVELOPE: &str = "a room message shorter than its sender's name";

/// A RECEIPT for an id that is not one of our messages awaiting its ACK
/// (or whose last byte has not been written yet).
const STRAY_RECEIPT: &str = "a receipt for a message that is not in flight";

/// The envelope of the room message being received: its sender's name,
/// which may arrive across chunks.
#[derive(Debug, Default)]
pub(super) struct Member {
    /// The envelope's `name_len`, once the message's first byte arrived.
    need: Option<u8>,
    /// The sender's name so far.
    from: Vec<u8>,
    /// Pieces of this message were queued for display (streaming).
    streamed: bool,
}

impl Session {
    /// This session answers a hub's room greeting (PING(`DUETROOM`)) with
    /// JOIN, once, and becomes a room member: a client's session. A
    /// server's never does: it answers PONG, as to any PING.
    pub fn join_rooms(&mut self) {
        self.join_rooms = true;
    }

    /// Whether we answered a hub's room greeting with JOIN.
    pub fn in_room(&self) -> bool {
        self.member.is_some()
    }

    /// The hub's room PING arrived: JOIN instead of PONG.
    #[inline(never)]
    pub(super) fn join_room(&mut self) {
        protocol::encode(&Frame::Join(ROOM_PROBE), &mut self.outbox);
        self.member = Some(Box::default());
        self.events.push_back(Record::Joined);
    }

    /// [`Session::handle_data`] for a member, once the chunk passed its
    /// checks: the room envelope taken off each message (its sender's name
    /// kept beside it in the display arena).
    #[inline(never)]
    pub(super) fn handle_room_data(&mut self, id: u64, last: bool, chunk: &[u8]) {
        self.rx_len += chunk.len() as u64;
        let Some(m) = self.member.as_deref_mut() else {
            return;
        };
        let mut data = chunk;
        if m.need.is_none()
            && let Some((&n, rest)) = data.split_first()
        {
            m.need = Some(n);
            m.from.clear();
            data = rest;
        }
        let need = m.need.map_or(usize::MAX, usize::from);
        let take = need.saturating_sub(m.from.len()).min(data.len());
        m.from.extend_from_slice(&data[..take]);
        data = &data[take..];
        if m.from.len() != need {
            if last {
                self.fail(SessionError::Unexpected(SHORT_ENVELOPE));
            }
            return;
        }
        let name_len = m.from.len() as u8;
        if !last {
            if !self.cfg.stream {
                self.rx.extend_from_slice(data);
            } else if !data.is_empty() {
                let start = self.arena.len();
                self.arena.extend_from_slice(&m.from);
                self.arena.extend_from_slice(data);
                let end = self.arena.len();
                m.streamed = true;
                self.events.push_back(Record::RoomPart {
                    id,
                    start,
                    end,
                    name_len,
                });
            }
            return;
        }
        // As in a one-on-one chat: the ACK before anything else.
        protocol::encode(&Frame::Ack { id }, &mut self.outbox);
        let continues = std::mem::take(&mut m.streamed);
        let start = self.arena.len();
        self.arena.extend_from_slice(&m.from);
        self.arena.extend_from_slice(&self.rx);
        self.arena.extend_from_slice(data);
        let end = self.arena.len();
        m.need = None;
        m.from.clear();
        self.rx.clear();
        self.rx_id += 1;
        self.rx_len = 0;
        self.stats.received += 1;
        self.events.push_back(Record::RoomMessage {
            id,
            start,
            end,
            name_len,
            continues,
        });
        self.bye_if_drained();
    }

    /// A RECEIPT: what became of our message `id` at one recipient. It
    /// must name a message in flight whose last byte was written (the hub
    /// cannot have forwarded it before).
    #[inline(never)]
    pub(super) fn handle_room_receipt(
        &mut self,
        id: u64,
        status: ReceiptStatus,
        name: &[u8],
        now: Instant,
    ) {
        let sent_at = self
            .in_flight
            .front()
            .and_then(|first| id.checked_sub(first.id))
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.in_flight.get(i))
            .filter(|m| m.id == id && self.written >= m.end)
            .and_then(|m| m.sent_at);
        let Some(sent_at) = sent_at else {
            self.fail(SessionError::Unexpected(STRAY_RECEIPT));
            return;
        };
        let rtt = now.saturating_duration_since(sent_at);
        let start = self.arena.len();
        let name = &name[..name.len().min(protocol::MAX_NAME)];
        self.arena.extend_from_slice(name);
        self.events.push_back(Record::Receipt {
            id,
            rtt_ns: u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX),
            start,
            name_len: name.len() as u8,
            status,
        });
    }

    /// The event for one of the member's records (`poll_event` maps the
    /// others itself).
    #[inline(never)]
    pub(super) fn room_event(&self, rec: Record) -> Event<'_> {
        match rec {
            Record::Joined => Event::Joined,
            Record::RoomMessage {
                id,
                start,
                end,
                name_len,
                continues,
            } => {
                let (from, data) = self.arena[start..end].split_at(name_len as usize);
                Event::RoomMessage {
                    id,
                    from,
                    data,
                    continues,
                }
            }
            Record::RoomPart {
                id,
                start,
                end,
                name_len,
            } => {
                let (from, data) = self.arena[start..end].split_at(name_len as usize);
                Event::RoomPart { id, from, data }
            }
            Record::Receipt {
                id,
                rtt_ns,
                start,
                name_len,
                status,
            } => Event::Receipt {
                id,
                status,
                name: &self.arena[start..start + name_len as usize],
                rtt: Duration::from_nanos(rtt_ns),
            },
            _ => unreachable!("poll_event maps the one-on-one records itself"),
        }
    }
}
