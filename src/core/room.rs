//! The room controller: the rules across the connections of a room
//! (`duet server --room`), as quinn's `Endpoint` holds the rules across
//! its connections while each `Connection` keeps its own state.
//!
//! Each member keeps its own [`Session`]; the room never owns one. The
//! shell hands the room one session at a time, keyed by the shell's slab
//! key, with what happened to it ([`Room::handle_events`]); the room
//! decides what that means for the others and queues it per member: a
//! forwarded message, an ACK or a RECEIPT for a sender. The shell then
//! drains each woken member's queue into its session with [`Room::feed`],
//! which hands messages over only while the session wants input, so each
//! member has its own bounded queue: a member whose queue passes the cap
//! is dropped ([`Room::poll_drop`]) and the others go on. Memory is
//! bounded by members × (cap + the session's own caps).
//!
//! The protocol is docs/PROTOCOL.md, "Rooms": the hub's DUETROOM PING and
//! the answer that makes a peer a member, unique names, the room envelope
//! or the `<name> ` prefix, and ACKs deferred until a message has reached
//! every recipient, with a RECEIPT per recipient for a member that sent
//! JOIN.
//!
//! It never touches a descriptor, reads the clock or prints: lines go to a
//! [`Screen`].
//!
//! This file holds who is in the room (joining, names, commands, leaving,
//! drops); a message's way to its recipients and back is `room/fanout.rs`,
//! the figures, `/who` and the summary are `room/report.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::core::chat::Screen;
use crate::core::escape::peer_label;
use crate::core::protocol::{self, ByeReason};
use crate::core::render::Line;
use crate::core::rtt::RttStats;
use crate::core::session::{End, Event, MSG_COST, RoomAnswer, Session, later};
use fanout::{Fanout, Out};
use report::Figures;

/// Default `--max-peers`.
pub const DEFAULT_MAX_PEERS: usize = 64;
/// Message bytes that may wait for one member beyond what its session
/// holds (the session takes up to 1 MiB of pending input and 2 MiB of
/// outbox): past it the member is dropped as too slow.
pub const QUEUE_CAP: usize = 1024 * 1024;

/// Messages of the hub's own that may wait for its fastest member's ack
/// before the hub takes more input (see [`Room::wants_input`]).
pub const HUB_WINDOW: usize = 1024;

/// What is left of [`Room::input_budget`].
#[derive(Debug, Clone, Copy)]
pub struct InputBudget {
    lines: usize,
    bytes: usize,
}

impl InputBudget {
    /// Counts a line of `len` bytes taken (its length plus [`MSG_COST`]);
    /// true while more may be taken.
    pub fn take(&mut self, len: usize) -> bool {
        self.lines = self.lines.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(len + MSG_COST);
        self.lines > 0 && self.bytes > 0
    }
}

/// The room's settings.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// The hub's own name (its HELLO name): taken in the room.
    pub name: Vec<u8>,
    /// Members at most; the next connection is turned away (busy).
    pub max_peers: usize,
    /// See [`QUEUE_CAP`].
    pub queue_cap: usize,
    /// How long a peer has to answer the room's PING after its HELLO.
    pub join_timeout: Duration,
}

/// Why [`Room::handle_join`] turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomFull {
    pub max_peers: usize,
}

/// A member to disconnect: the shell calls
/// `session.close_with(reason, detail)` on its session, flushes what it
/// can and closes the connection. The room has already counted it gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drop {
    pub key: usize,
    pub reason: ByeReason,
    /// For the peer to read (the BYE's detail).
    pub detail: String,
}

struct Peer {
    addr: SocketAddr,
    /// Its name in the room, once its HELLO arrived.
    name: Option<Vec<u8>>,
    /// The largest message it accepts.
    max_message: u64,
    /// Its answer to the room's PING: a member from then on.
    answer: Option<RoomAnswer>,
    /// Until when it may answer (from its HELLO).
    join_deadline: Option<Instant>,
    queue: VecDeque<Out>,
    /// Message bytes in `queue`.
    queued: usize,
    /// Messages handed to its session: the session's id and the fanout.
    in_session: VecDeque<(u64, u64)>,
    /// Its own messages still reaching the room, in its order.
    sending: VecDeque<u64>,
    figures: Figures,
}

impl Peer {
    fn is_member(&self) -> bool {
        self.answer.is_some()
    }
}

/// The room controller. See the module documentation.
pub struct Room {
    cfg: RoomConfig,
    peers: BTreeMap<usize, Peer>,
    fans: HashMap<u64, Fanout>,
    next_fan: u64,
    /// The hub's own message ids (for its `✓` lines).
    next_own: u64,
    /// A line of the hub's piped input that came while nobody was there
    /// (see [`Room::handle_piped_line`]).
    held: Option<Vec<u8>>,
    /// Members whose queue has something: the shell calls `feed` for them.
    woken: VecDeque<usize>,
    /// Every peer's name in the room (once its HELLO arrived), and its key.
    names: HashMap<Vec<u8>, usize>,
    /// For a name that clashed: the suffix to try first next time (every
    /// one below it is taken). Forgotten when a suffixed name is freed.
    next_suffix: HashMap<Vec<u8>, u64>,
    /// Peers waiting to answer the room's PING: `(join_deadline, key)` in
    /// deadline order; an entry whose peer left or answered is stale and
    /// skipped. The front is always live (see `prune_joins`).
    joins: VecDeque<(Instant, usize)>,
    drops: VecDeque<Drop>,
    quit: bool,
    /// Every recipient's RTT, for the summary.
    overall: RttStats,
    forwarded: u64,
    joined: u64,
    /// Figures of members that have left: name and figures (at most the
    /// last 64, for the summary).
    departed: VecDeque<(Vec<u8>, Figures)>,
}

impl Room {
    pub fn new(cfg: RoomConfig) -> Room {
        Room {
            cfg,
            peers: BTreeMap::new(),
            fans: HashMap::new(),
            next_fan: 1,
            next_own: 1,
            held: None,
            woken: VecDeque::new(),
            names: HashMap::new(),
            next_suffix: HashMap::new(),
            joins: VecDeque::new(),
            drops: VecDeque::new(),
            quit: false,
            overall: RttStats::new(),
            forwarded: 0,
            joined: 0,
            departed: VecDeque::new(),
        }
    }

    // ----- inputs -------------------------------------------------------

    /// A connection was accepted; its session is new (HELLO queued, stream
    /// off). Prepares it for the room (deferred acks, the room's PING) or,
    /// when the room is full, turns it away: the shell then closes the
    /// session with BYE(busy).
    pub fn handle_join(
        &mut self,
        key: usize,
        addr: SocketAddr,
        session: &mut Session,
        now: Instant,
    ) -> Result<(), RoomFull> {
        if self.peers.len() >= self.cfg.max_peers {
            return Err(RoomFull {
                max_peers: self.cfg.max_peers,
            });
        }
        session.defer_acks();
        session.skip_rtt_histogram();
        session.send_room_probe(now);
        self.peers.insert(
            key,
            Peer {
                addr,
                name: None,
                max_message: 0,
                answer: None,
                join_deadline: None,
                queue: VecDeque::new(),
                queued: 0,
                in_session: VecDeque::new(),
                sending: VecDeque::new(),
                figures: Figures::default(),
            },
        );
        Ok(())
    }

    /// Takes every event of member `key`'s session, then its answer to the
    /// room's PING: names, messages to forward, acknowledgments that become
    /// receipts, its end.
    pub fn handle_events(
        &mut self,
        key: usize,
        session: &mut Session,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        if !self.peers.contains_key(&key) {
            // Dropped already: what it still says does not matter.
            while session.poll_event().is_some() {}
            return;
        }
        // A peer's answer may have come in the same read as its first
        // messages: it is a member before they are handed on.
        self.admit_if_answered(key, session, screen, now);
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Connected { name, max_message } => {
                    let name = self.unique_name(name);
                    self.names.insert(name.clone(), key);
                    let join_deadline = later(now, self.cfg.join_timeout);
                    let p = self.peers.get_mut(&key).expect("checked above");
                    p.name = Some(name);
                    p.max_message = max_message;
                    p.join_deadline = Some(join_deadline);
                    // Deadlines come in order (one timeout, time goes
                    // forward); the search keeps the order in any case.
                    let at = self.joins.partition_point(|&(t, _)| t <= join_deadline);
                    self.joins.insert(at, (join_deadline, key));
                }
                Event::Message { id, data, .. } => {
                    let from = self.peers[&key].name.clone().unwrap_or_default();
                    screen.show(
                        &Line::RoomMessage {
                            id,
                            from: &from,
                            data,
                        },
                        now,
                    );
                    self.forward(key, id, &from, data, screen, now);
                }
                Event::Acked { id, rtt, .. } => self.handle_acked(key, id, rtt, screen, now),
                Event::Ended => {
                    let why = session.end().map(describe).unwrap_or_default();
                    self.leave(key, &why, screen, now);
                    return;
                }
                Event::Sent { .. }
                | Event::MessagePart { .. }
                | Event::Refused { .. }
                | Event::Skipped { .. }
                // A hub's sessions never join a room themselves.
                | Event::Joined
                | Event::RoomMessage { .. }
                | Event::RoomPart { .. }
                | Event::Receipt { .. } => {}
            }
        }
        self.admit_if_answered(key, session, screen, now);
    }

    /// A named peer that answered the room's PING becomes a member.
    fn admit_if_answered(
        &mut self,
        key: usize,
        session: &Session,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        let p = self.peers.get_mut(&key).expect("a peer of the room");
        if !p.is_member()
            && p.name.is_some()
            && let Some(answer) = session.room_answer()
        {
            p.answer = Some(answer);
            p.join_deadline = None;
            self.prune_joins();
            self.admit(key, screen, now);
        }
    }

    /// The connection of `key` is gone (closed, reset, or dropped by the
    /// shell). Idempotent: a member already counted gone is ignored.
    pub fn handle_leave(&mut self, key: usize, screen: &mut impl Screen, now: Instant) {
        self.leave(key, "connection closed", screen, now);
    }

    /// A line of the hub's piped input: as [`Room::handle_line`], except
    /// that a message for everyone is held while no member is there to
    /// get it, and goes to the first one that joins. False when it was
    /// held: no more input is wanted until then ([`Room::wants_input`]).
    pub fn handle_piped_line(
        &mut self,
        line: &[u8],
        screen: &mut impl Screen,
        now: Instant,
    ) -> bool {
        let command =
            line.starts_with(b"@") || (line.starts_with(b"/") && !line.starts_with(b"//"));
        if !command && !self.peers.values().any(Peer::is_member) {
            self.held = Some(line.to_vec());
            return false;
        }
        self.handle_line(line, screen, now);
        true
    }

    /// A line typed or piped on the hub: a message to everyone, or a
    /// command (`/who`, `/msg NAME text`, `@NAME text`, `/quit`, `/help`).
    pub fn handle_line(&mut self, line: &[u8], screen: &mut impl Screen, now: Instant) {
        let text = std::str::from_utf8(line).unwrap_or("");
        let trimmed = text.trim_end();
        if trimmed == "/who" {
            self.who(screen, now);
        } else if trimmed == "/quit" {
            self.quit = true;
        } else if trimmed == "/help" {
            let help = "room commands: /who lists the members, /msg NAME TEXT (or @NAME TEXT) \
                        sends to one, /quit closes the room; any other line goes to everyone (// for one \
                        that starts with /)";
            screen.show(&Line::Notice { message: help }, now);
        } else if let Some(rest) = text
            .strip_prefix("/msg ")
            .or_else(|| text.strip_prefix('@'))
        {
            let (name, msg) = rest.split_once(' ').unwrap_or((rest, ""));
            match self.member_named(name.as_bytes()) {
                Some(key) => {
                    let id = self.own_id();
                    screen.echo_sent(id, msg.as_bytes(), now);
                    self.send_own(id, msg.as_bytes(), Some(key), false, screen, now);
                }
                None => {
                    let message = format!("no member named {}", peer_label(name.as_bytes()));
                    screen.show(&Line::Error { message: &message }, now);
                }
            }
        } else if trimmed.starts_with('/') && !trimmed.starts_with("//") {
            let message = format!("unknown command {trimmed} (try /help)");
            screen.show(&Line::Error { message: &message }, now);
        } else {
            // As in a chat, `//` starts a message that starts with `/`.
            let line = if line.starts_with(b"//") {
                &line[1..]
            } else {
                line
            };
            let id = self.own_id();
            screen.echo_sent(id, line, now);
            self.send_own(id, line, None, false, screen, now);
        }
    }

    /// Call when [`Room::poll_timeout`]'s instant has passed: peers that
    /// did not answer the room's PING in time are dropped.
    pub fn handle_timeout(&mut self, screen: &mut impl Screen, now: Instant) {
        let mut late = Vec::new();
        while let Some(&(t, key)) = self.joins.front()
            && now >= t
        {
            self.joins.pop_front();
            if self
                .peers
                .get(&key)
                .is_some_and(|p| p.join_deadline == Some(t))
            {
                late.push(key);
            }
        }
        self.prune_joins();
        for key in late {
            self.drop_peer(
                key,
                ByeReason::Timeout,
                "you did not answer the room's greeting".into(),
                "did not answer the room's greeting",
                screen,
                now,
            );
        }
    }

    // ----- outputs ------------------------------------------------------

    /// A member with something queued for its session: call [`Room::feed`].
    pub fn poll_woken(&mut self) -> Option<usize> {
        self.woken.pop_front()
    }

    /// A member to disconnect, and why (see [`Drop`]).
    pub fn poll_drop(&mut self) -> Option<Drop> {
        self.drops.pop_front()
    }

    /// Whether [`Room::poll_woken`] or [`Room::poll_drop`] has something:
    /// a member's leaving, handled after the shell's turn, queues notices
    /// for the others that should not wait for the next wake-up.
    pub fn has_work(&self) -> bool {
        !self.woken.is_empty() || !self.drops.is_empty()
    }

    /// When to call [`Room::handle_timeout`] next (the earliest answer
    /// deadline). Sessions have their own deadlines besides.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.joins.front().map(|&(t, _)| t)
    }

    /// Gives back the memory of member `key`'s empty queues (an idle
    /// member); they grow again on demand.
    pub fn shrink_idle(&mut self, key: usize) {
        if let Some(p) = self.peers.get_mut(&key) {
            if p.queue.is_empty() {
                p.queue = VecDeque::new();
            }
            if p.in_session.is_empty() {
                p.in_session = VecDeque::new();
            }
            if p.sending.is_empty() {
                p.sending = VecDeque::new();
            }
        }
    }

    /// Heap bytes the room holds for member `key`: its entry and its
    /// name and queues, capacities included, not the messages the queue
    /// shares with other members.
    pub fn member_heap_bytes(&self, key: usize) -> usize {
        self.peers.get(&key).map_or(0, |p| {
            std::mem::size_of::<(usize, Peer)>()
                + p.name.as_ref().map_or(0, Vec::capacity)
                + p.queue.capacity() * std::mem::size_of::<Out>()
                + p.in_session.capacity() * std::mem::size_of::<(u64, u64)>()
                + p.sending.capacity() * std::mem::size_of::<u64>()
        })
    }

    /// The hub's person asked to close the room (`/quit`): the shell stops
    /// every session (`handle_stop`), waits for them to close, shows
    /// [`Room::summary`] and exits.
    pub fn quitting(&self) -> bool {
        self.quit
    }

    /// Whether member `key` has anything queued for its session.
    pub fn has_queued(&self, key: usize) -> bool {
        self.peers.get(&key).is_some_and(|p| !p.queue.is_empty())
    }

    /// Whether the hub's own input may be taken now: no line is held for
    /// want of a member ([`Room::handle_piped_line`]), and with members
    /// there, the one furthest ahead has fewer than [`HUB_WINDOW`]
    /// messages waiting for its ack and room in its queue. The hub's
    /// stdin moves at the pace of its fastest member, a short way ahead
    /// of it, so the members' own messages do not wait behind a flood;
    /// slower members fall behind and are dropped at the cap, never
    /// holding the hub up.
    pub fn wants_input(&self) -> bool {
        if self.held.is_some() {
            return false;
        }
        let mut members = self.peers.values().filter(|p| p.is_member()).peekable();
        if members.peek().is_none() {
            // Commands are taken; the first message is held.
            return true;
        }
        members.any(|p| {
            p.in_session.len() + p.queue.len() < HUB_WINDOW && p.queued < self.cfg.queue_cap / 2
        })
    }

    /// How much of the hub's input to take before [`Room::wants_input`]
    /// is asked again: half a window of lines, and a quarter of a
    /// member's cap, so the hub alone never pushes a member past it.
    pub fn input_budget(&self) -> InputBudget {
        InputBudget {
            lines: HUB_WINDOW / 2,
            bytes: self.cfg.queue_cap / 4,
        }
    }

    /// Connections the room holds: members and peers still greeting.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    /// Members (peers that answered the room's PING).
    pub fn members(&self) -> usize {
        self.peers.values().filter(|p| p.is_member()).count()
    }

    /// Message bytes queued for sessions, over all members (at most
    /// members × (cap + one message)).
    pub fn queued_bytes(&self) -> usize {
        self.peers.values().map(|p| p.queued).sum()
    }

    // ----- internals ----------------------------------------------------

    fn own_id(&mut self) -> u64 {
        let id = self.next_own;
        self.next_own += 1;
        id
    }

    /// Its HELLO name if free, else the first free `NAME~2`, `NAME~3`, …
    /// The hub's own name is taken; an empty name is `peer`.
    fn unique_name(&mut self, wanted: &[u8]) -> Vec<u8> {
        let base: &[u8] = if wanted.is_empty() { b"peer" } else { wanted };
        let (hub, names) = (&self.cfg.name, &self.names);
        let taken = |n: &[u8]| n == hub.as_slice() || names.contains_key(n);
        if !taken(base) {
            return base.to_vec();
        }
        let from = self.next_suffix.get(base).copied().unwrap_or(2);
        let (i, name) = (from..)
            .map(|i| {
                let suffix = format!("~{i}");
                // Keep within the 255 bytes a name may have.
                let keep = base.len().min(protocol::MAX_NAME - suffix.len());
                (i, [&base[..keep], suffix.as_bytes()].concat())
            })
            .find(|(_, n)| !taken(n))
            .expect("some suffix is free");
        self.next_suffix.insert(base.to_vec(), i + 1);
        name
    }

    fn member_named(&self, name: &[u8]) -> Option<usize> {
        let name = name.strip_prefix(b"<").unwrap_or(name);
        let name = name.strip_suffix(b">").unwrap_or(name);
        let key = *self.names.get(name)?;
        self.peers.get(&key).filter(|p| p.is_member()).map(|_| key)
    }

    /// A peer answered the room's PING: it is a member now.
    fn admit(&mut self, key: usize, screen: &mut impl Screen, now: Instant) {
        self.joined += 1;
        let p = &self.peers[&key];
        let name = p.name.clone().unwrap_or_default();
        let label = peer_label(&name);
        let how = match p.answer {
            Some(RoomAnswer::Join) => "",
            _ => ", plain client",
        };
        let notice = format!("{label} joined from {}{how}", p.addr);
        screen.show(&Line::Notice { message: &notice }, now);
        let others: Vec<String> = self
            .peers
            .iter()
            .filter(|&(&k, p)| k != key && p.is_member())
            .filter_map(|(_, p)| Some(peer_label(p.name.as_deref()?)))
            .collect();
        let here = if others.is_empty() {
            "nobody else yet".to_string()
        } else {
            others.join(", ")
        };
        let welcome = format!("* welcome to the room: you are {label}; here: {here}");
        let id = self.own_id();
        self.send_own(id, welcome.as_bytes(), Some(key), true, screen, now);
        let joined = format!("* {label} joined");
        let id = self.own_id();
        self.send_own_except(id, joined.as_bytes(), key, screen, now);
        if let Some(line) = self.held.take() {
            let id = self.own_id();
            self.send_own(id, &line, None, false, screen, now);
        }
    }

    /// Removes `key` and tells the room; its pending deliveries are lost.
    fn drop_peer(
        &mut self,
        key: usize,
        reason: ByeReason,
        detail: String,
        why: &str,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        if self.peers.contains_key(&key) {
            self.drops.push_back(Drop {
                key,
                reason,
                detail,
            });
            self.leave(key, &format!("dropped: {why}"), screen, now);
        }
    }

    /// Drops stale entries from the front of `joins`, so that its front
    /// is a peer still waiting to answer.
    fn prune_joins(&mut self) {
        while let Some(&(t, key)) = self.joins.front() {
            if self
                .peers
                .get(&key)
                .is_some_and(|p| p.join_deadline == Some(t))
            {
                return;
            }
            self.joins.pop_front();
        }
    }

    fn leave(&mut self, key: usize, why: &str, screen: &mut impl Screen, now: Instant) {
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        self.prune_joins();
        if let Some(name) = &p.name {
            self.names.remove(name);
            // A suffix below a hint may be free now.
            if name.contains(&b'~') || self.next_suffix.len() > self.peers.len() {
                self.next_suffix.clear();
            }
        }
        let name = p.name.clone().unwrap_or_default();
        self.abandon(&p, &name, screen, now);
        if p.is_member() {
            let label = peer_label(&name);
            // A goodbye needs no reason; anything else says why.
            let why = if why.is_empty() {
                String::new()
            } else {
                format!(" ({why})")
            };
            let notice = format!("{label} left{why}");
            screen.show(&Line::Notice { message: &notice }, now);
            let text = format!("* {label} left{why}");
            let id = self.own_id();
            self.send_own(id, text.as_bytes(), None, true, screen, now);
            if self.departed.len() == 64 {
                self.departed.pop_front();
            }
            self.departed.push_back((name, p.figures));
        }
    }
}

fn describe(end: &End) -> String {
    match end {
        End::Peer { .. } | End::Local(ByeReason::Normal) => String::new(),
        End::Local(r) => format!("closed: {r}"),
        End::Failed(e) => e.to_string(),
        End::Lost(why) => why.clone(),
    }
}

mod fanout;
mod report;

#[cfg(test)]
mod tests;
