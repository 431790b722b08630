//! What a room's hub asks of each member's session: the room greeting
//! and its answer, acks held until a message reached the room, receipts,
//! a goodbye with a reason of the room's, and giving idle memory back.
//! The rules across members are `core::room`'s.

use std::time::Instant;

use super::*;

impl Session {
    /// A hub's room greeting: PING(`DUETROOM`) right behind our HELLO. The
    /// peer's answer is [`Session::room_answer`] once it has arrived.
    pub fn send_room_probe(&mut self, now: Instant) {
        self.outbox_clock(now);
        self.room_probe_sent = true;
        protocol::encode(&Frame::Ping(ROOM_PROBE), &mut self.outbox);
    }

    /// How the peer answered [`Session::send_room_probe`], if it has.
    pub fn room_answer(&self) -> Option<RoomAnswer> {
        self.room_answer
    }

    /// A complete message is no longer acknowledged at once: its ACK waits
    /// for [`Session::handle_delivered`] (a hub acknowledges a message
    /// when it has reached the room).
    pub fn defer_acks(&mut self) {
        self.defer_acks = true;
    }

    /// Keep no RTT histogram (see [`RttStats::skip_histogram`]): a hub's
    /// session per member, whose percentiles nobody reads (the room keeps
    /// its own figures), so that an idle member does not carry one.
    pub fn skip_rtt_histogram(&mut self) {
        self.rtt.skip_histogram();
    }

    /// Message `id`, received complete, has reached everyone it was for:
    /// acknowledge it now. Ids come in order, each once (the hub keeps
    /// them so); after the chat has ended nothing is sent.
    pub fn handle_delivered(&mut self, id: u64, now: Instant) {
        debug_assert!(self.defer_acks, "acks are not deferred");
        debug_assert!(
            id == self.acked_rx + 1 && id < self.rx_id,
            "ack {id} out of order"
        );
        self.acked_rx = id;
        if self.state != State::Closed {
            self.outbox_clock(now);
            protocol::encode(&Frame::Ack { id }, &mut self.outbox);
        }
    }

    /// Tells a peer that sent JOIN what became of its message `id` at the
    /// recipient `name`.
    pub fn handle_receipt(&mut self, id: u64, status: ReceiptStatus, name: &[u8], now: Instant) {
        debug_assert_eq!(self.room_answer, Some(RoomAnswer::Join));
        if self.state != State::Closed {
            self.outbox_clock(now);
            let frame = Frame::Receipt { id, status, name };
            protocol::encode(&frame, &mut self.outbox);
        }
    }

    /// Leave now with `reason` and a detail written for the peer (a hub
    /// dropping a member that fell behind).
    pub fn close_with(&mut self, reason: ByeReason, detail: &[u8]) {
        if self.state != State::Closed {
            self.queue_bye(reason, detail);
            self.finish(End::Local(reason));
        }
    }

    /// Gives back the memory of buffers that are empty (an idle room
    /// member): a hub calls it when a member has been quiet for a while.
    /// They grow again on demand.
    pub fn shrink_idle(&mut self) {
        if self.unsent_out() == 0 {
            self.outbox = Vec::new();
            self.out_pos = 0;
        }
        if self.in_flight.is_empty() {
            self.in_flight = VecDeque::new();
        }
        if self.events.is_empty() {
            self.events = VecDeque::new();
            self.arena = Vec::new();
        }
        if self.rx_len == 0 {
            self.rx = Vec::new();
        }
        if self.pending.is_empty() {
            self.pending = VecDeque::new();
        }
    }

    /// Bytes this session holds on the heap, capacities included (for a
    /// hub's memory accounting and the idle-member measurement).
    pub fn heap_bytes(&self) -> usize {
        self.outbox.capacity()
            + self.in_flight.capacity() * std::mem::size_of::<InFlight>()
            + self.events.capacity() * std::mem::size_of::<Record>()
            + self.arena.capacity()
            + self.rx.capacity()
            + self.pending.capacity() * std::mem::size_of::<Pending>()
            + self
                .pending
                .iter()
                .map(|p| p.data.capacity())
                .sum::<usize>()
            + self.spent.as_ref().map_or(0, |(_, v)| v.capacity())
            + self.cfg.name.capacity()
            + self.peer_name.capacity()
            + self.rtt.heap_bytes()
    }
}
