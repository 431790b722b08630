//! The swarm's rules (`duet swarm`): how many simulated clients should be
//! connected, when each one leaves (a lifetime drawn from a seeded PRNG)
//! and is replaced, when each one sends (`--rate`), and what counts as a
//! connect, a loss or an error, by kind. The fan-out RTT of the clients'
//! own messages goes into one [`RttStats`].
//!
//! Sans-IO like the session and the room: the shell keys clients by its
//! slab key and feeds what happened (`handle_dialing`, `handle_connected`,
//! `handle_message`, `handle_acked`, `handle_ended`, `handle_timeout`,
//! `handle_stop`), always with `now`; it takes what the swarm wants done
//! (`poll_dial`, `poll_action`, `poll_timeout`) and, at the end, the
//! [`Summary`]. Each client keeps its own `Session` in the shell; the swarm
//! never owns one. It never touches a descriptor, reads the clock or
//! prints.
//!
//! Definitions (also in `duet swarm --help` and the README):
//! - *connects*: handshakes completed (the hub's HELLO arrived);
//!   *disconnects*: those connections' ends, whatever the reason; *leaves*:
//!   the planned ones (lifetime over, or the end of the run).
//! - *lost*: a client's own messages never acknowledged by the hub when its
//!   connection ended, plus the gaps in the hub's numbered messages: a
//!   message whose whole body is a decimal number must be one more than
//!   the previous such message the same client received. Messages of the
//!   hub's that cross a client's goodbye are not lost: the protocol's
//!   leaving race, where the hub knows they were not delivered.
//! - *RTT*: from a client's message's first byte handed to the kernel to
//!   the hub's ACK of it. A hub acknowledges a message once it has reached
//!   every other member, so this is the room's fan-out time.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::core::deadline::later;
use crate::core::exit;
use crate::core::protocol::ByeReason;
use crate::core::rtt::{RttStats, RttSummary};
use crate::core::session::{End, SessionError};

/// Wait before dialing again after a connect failed or a connection ended
/// in an error, so that a refusing hub is not hammered in a tight loop.
pub const REDIAL_AFTER: Duration = Duration::from_millis(100);
/// The largest `--rate`, per client.
pub const MAX_RATE: f64 = 10_000.0;

/// A small, seeded pseudo-random generator (SplitMix64): the same seed
/// gives the same lifetimes and send phases.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=n` (without the bias of a modulo).
    pub fn up_to(&mut self, n: u64) -> u64 {
        if n == u64::MAX {
            return self.next_u64();
        }
        ((self.next_u64() as u128 * (n as u128 + 1)) >> 64) as u64
    }

    /// Uniform in `min..=max` (`min` if `max` is smaller).
    pub fn duration(&mut self, min: Duration, max: Duration) -> Duration {
        let span = max.saturating_sub(min);
        let span_ns = u64::try_from(span.as_nanos()).unwrap_or(u64::MAX);
        min + Duration::from_nanos(self.up_to(span_ns))
    }
}

/// `--lifetime MIN..MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub min: Duration,
    pub max: Duration,
}

/// What `duet swarm` runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct SwarmConfig {
    /// Clients kept connected.
    pub clients: usize,
    /// Each client leaves after a lifetime drawn uniformly from this
    /// range; `None`: they stay until the end.
    pub lifetime: Option<Lifetime>,
    /// The run ends after this long; `None`: at a stop signal.
    pub duration: Option<Duration>,
    /// Messages per second each client sends; `None`: none.
    pub rate: Option<f64>,
    pub seed: u64,
}

/// Why a connection failed or ended other than as planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The connect was refused (nothing listening).
    Refused,
    /// The connect failed otherwise (timed out, unreachable, ...).
    Connect,
    /// The hub said it is busy (a full room).
    Busy,
    /// The hub said goodbye while the client meant to stay.
    HubClosed,
    /// The hub ended the connection with an error of its own (a member
    /// that fell behind, a protocol error it saw, a refused key).
    Dropped,
    /// The connection broke: reset, or closed without goodbye.
    Lost,
    /// The hub closed the connection before its HELLO: a full room under
    /// a flood of connections closes new ones at once, and an overloaded
    /// hub may reset them.
    BeforeHello,
    /// The hub broke the protocol (or the encrypted transport failed).
    Protocol,
    /// The hub did not complete the handshake, answer heartbeats, or read.
    Timeout,
    /// The hub's key is not the one expected.
    Key,
    /// A numbered message of the hub's came again or out of order.
    Order,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Refused,
        ErrorKind::Connect,
        ErrorKind::Busy,
        ErrorKind::HubClosed,
        ErrorKind::Dropped,
        ErrorKind::Lost,
        ErrorKind::BeforeHello,
        ErrorKind::Protocol,
        ErrorKind::Timeout,
        ErrorKind::Key,
        ErrorKind::Order,
    ];

    /// The name in the summary and the JSON object.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Busy => "busy",
            ErrorKind::HubClosed => "hub_closed",
            ErrorKind::Dropped => "dropped",
            ErrorKind::Lost => "lost",
            ErrorKind::BeforeHello => "before_hello",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Key => "key",
            ErrorKind::Order => "order",
        }
    }

    fn index(self) -> usize {
        ErrorKind::ALL
            .iter()
            .position(|&k| k == self)
            .expect("every kind is listed")
    }

    /// How a connection's end counts: `None` for a planned leave.
    pub fn of_end(end: &End, leaving: bool) -> Option<ErrorKind> {
        match end {
            End::Local(ByeReason::Normal) => None,
            End::Peer {
                reason: ByeReason::Normal,
                ..
            } if leaving => None,
            End::Peer {
                reason: ByeReason::Normal,
                ..
            } => Some(ErrorKind::HubClosed),
            End::Peer {
                reason: ByeReason::Busy,
                ..
            } => Some(ErrorKind::Busy),
            End::Peer { .. } => Some(ErrorKind::Dropped),
            End::Local(_) => Some(ErrorKind::Protocol),
            End::Lost(_) => Some(ErrorKind::Lost),
            End::Failed(e) => Some(match e {
                SessionError::NoBye | SessionError::Truncated | SessionError::NoHello => {
                    ErrorKind::Lost
                }
                SessionError::HandshakeTimeout
                | SessionError::Dead { .. }
                | SessionError::WriteStall { .. } => ErrorKind::Timeout,
                SessionError::KeyRefused(_) => ErrorKind::Key,
                _ => ErrorKind::Protocol,
            }),
        }
    }
}

/// What the shell is asked to do to one client's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Its lifetime is over: `handle_input_end` (acks awaited up to the
    /// linger time, then BYE; it keeps reading and acknowledging meanwhile).
    Leave(usize),
    /// Offer this message (`handle_input`); if the session does not take
    /// it, call [`Swarm::handle_send_skipped`].
    Send { key: usize, body: Vec<u8> },
    /// The run is over and this client is still connecting: drop it.
    Abandon(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Connecting, or waiting for the hub's HELLO.
    Dialing,
    Open,
    /// Asked to leave; its end is expected.
    Leaving,
}

#[derive(Debug)]
struct Client {
    number: u64,
    state: State,
    leave_at: Option<Instant>,
    next_send: Option<Instant>,
    /// Messages this client has sent.
    seq: u64,
    /// The last of the hub's numbered messages it received.
    last_number: Option<u64>,
}

/// The counts a run ends with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub attempts: u64,
    pub connects: u64,
    pub disconnects: u64,
    pub leaves: u64,
    pub received: u64,
    /// Of those, the hub's numbered messages (checked for gaps).
    pub numbered: u64,
    pub sent: u64,
    pub acked: u64,
    /// Sends skipped because the client's session was full (not lost:
    /// they never became messages).
    pub skipped: u64,
    /// Own messages never acknowledged when their connection ended.
    pub unacked: u64,
    /// Gaps in the hub's numbered messages.
    pub gaps: u64,
    pub errors: [u64; ErrorKind::ALL.len()],
}

impl Counts {
    pub fn lost(&self) -> u64 {
        self.unacked + self.gaps
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    pub fn error(&self, kind: ErrorKind) -> u64 {
        self.errors[kind.index()]
    }
}

/// The swarm controller.
pub struct Swarm {
    cfg: SwarmConfig,
    rng: SplitMix,
    started: Instant,
    stop_at: Option<Instant>,
    stopping: bool,
    clients: BTreeMap<usize, Client>,
    /// Not before this instant is the next client dialed.
    next_dial: Instant,
    next_number: u64,
    /// A connection has completed its handshake at some point.
    ever_connected: bool,
    /// The first connect was refused before any had succeeded.
    unreachable: bool,
    actions: VecDeque<Action>,
    counts: Counts,
    rtt: RttStats,
}

impl Swarm {
    pub fn new(cfg: SwarmConfig, now: Instant) -> Swarm {
        let stop_at = cfg.duration.map(|d| later(now, d));
        let rng = SplitMix::new(cfg.seed);
        Swarm {
            cfg,
            rng,
            started: now,
            stop_at,
            stopping: false,
            clients: BTreeMap::new(),
            next_dial: now,
            next_number: 1,
            ever_connected: false,
            unreachable: false,
            actions: VecDeque::new(),
            counts: Counts::default(),
            rtt: RttStats::new(),
        }
    }

    // ----- inputs -------------------------------------------------------

    /// The shell started a connect for a new client under `key` (after
    /// [`Swarm::poll_dial`]). Returns the client's number, for its name.
    pub fn handle_dialing(&mut self, key: usize) -> u64 {
        debug_assert!(!self.clients.contains_key(&key), "key {key} in use");
        let number = self.next_number;
        self.next_number += 1;
        self.counts.attempts += 1;
        self.clients.insert(
            key,
            Client {
                number,
                state: State::Dialing,
                leave_at: None,
                next_send: None,
                seq: 0,
                last_number: None,
            },
        );
        number
    }

    /// The connect of `key` failed (`kind` is `Refused` or `Connect`). It
    /// is replaced after [`REDIAL_AFTER`].
    pub fn handle_connect_failed(&mut self, key: usize, kind: ErrorKind, now: Instant) {
        if self.clients.remove(&key).is_none() {
            return;
        }
        if self.stopping {
            return;
        }
        self.count_error(kind);
        if kind == ErrorKind::Refused && !self.ever_connected {
            self.unreachable = true;
        }
        self.next_dial = later(now, REDIAL_AFTER);
    }

    /// The hub's HELLO arrived on `key`: the client is connected, its
    /// lifetime and send schedule start now.
    pub fn handle_connected(&mut self, key: usize, now: Instant) {
        let leave_at = self
            .cfg
            .lifetime
            .map(|l| later(now, self.rng.duration(l.min, l.max)));
        let next_send = self.cfg.rate.map(|rate| {
            let every = interval(rate);
            // A random phase, so that the clients do not send in step.
            later(now, self.rng.duration(Duration::ZERO, every))
        });
        let stopping = self.stopping;
        let Some(c) = self.clients.get_mut(&key) else {
            return;
        };
        self.counts.connects += 1;
        self.ever_connected = true;
        if stopping {
            c.state = State::Leaving;
            self.actions.push_back(Action::Leave(key));
            return;
        }
        c.state = State::Open;
        c.leave_at = leave_at;
        c.next_send = next_send;
    }

    /// A message arrived on `key` (its ack is already on its way).
    pub fn handle_message(&mut self, key: usize, data: &[u8]) {
        self.counts.received += 1;
        let Some(number) = parse_number(data) else {
            return;
        };
        self.counts.numbered += 1;
        let Some(c) = self.clients.get_mut(&key) else {
            return;
        };
        let last = c.last_number.replace(number);
        match last {
            Some(prev) if number > prev => self.counts.gaps += number - prev - 1,
            Some(_) => {
                c.last_number = last;
                self.count_error(ErrorKind::Order);
            }
            None => {}
        }
    }

    /// The hub acknowledged one of `key`'s messages after `rtt`.
    pub fn handle_acked(&mut self, _key: usize, rtt: Duration) {
        self.counts.acked += 1;
        self.rtt.record(rtt);
    }

    /// `key`'s session took the message of [`Action::Send`].
    pub fn handle_sent(&mut self, _key: usize) {
        self.counts.sent += 1;
    }

    /// `key`'s session did not take the message of [`Action::Send`] (it
    /// was full, or no longer open).
    pub fn handle_send_skipped(&mut self, _key: usize) {
        self.counts.skipped += 1;
    }

    /// `key`'s session ended as `end`, with `unacked` of its own messages
    /// never acknowledged. A client that did not mean to leave is
    /// replaced after [`REDIAL_AFTER`], so that a hub that turns clients
    /// away is not hammered.
    pub fn handle_ended(&mut self, key: usize, end: &End, unacked: u64, now: Instant) {
        let Some(c) = self.clients.remove(&key) else {
            return;
        };
        let leaving = c.state == State::Leaving;
        if c.state != State::Dialing {
            self.counts.disconnects += 1;
        }
        self.counts.unacked += unacked;
        let kind = match ErrorKind::of_end(end, leaving) {
            Some(ErrorKind::Lost) if c.state == State::Dialing => Some(ErrorKind::BeforeHello),
            kind => kind,
        };
        match kind {
            None if c.state == State::Dialing => {}
            None => self.counts.leaves += 1,
            Some(kind) => {
                self.count_error(kind);
                self.next_dial = later(now, REDIAL_AFTER);
            }
        }
    }

    /// Call when [`Swarm::poll_timeout`]'s instant has passed: lifetimes
    /// that are over become [`Action::Leave`], sends that are due
    /// [`Action::Send`], and the end of the run [`Swarm::handle_stop`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stop_at.is_some_and(|t| now >= t) {
            self.handle_stop(now);
            return;
        }
        let every = self.cfg.rate.map(interval);
        for (&key, c) in self.clients.iter_mut() {
            if c.state != State::Open {
                continue;
            }
            if c.leave_at.is_some_and(|t| now >= t) {
                c.state = State::Leaving;
                self.actions.push_back(Action::Leave(key));
                continue;
            }
            if let (Some(t), Some(every)) = (c.next_send, every)
                && now >= t
            {
                c.seq += 1;
                let body = format!("swarm {} {}", c.number, c.seq).into_bytes();
                self.actions.push_back(Action::Send { key, body });
                // Keep the rate; a client far behind (a stalled loop)
                // starts again from now rather than sending a burst.
                let next = later(t, every);
                c.next_send = Some(if next < now { later(now, every) } else { next });
            }
        }
    }

    /// The run is over (its duration, or a stop signal): every connected
    /// client leaves, every connect under way is abandoned.
    pub fn handle_stop(&mut self, _now: Instant) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        let mut abandoned = Vec::new();
        for (&key, c) in self.clients.iter_mut() {
            match c.state {
                State::Open => {
                    c.state = State::Leaving;
                    self.actions.push_back(Action::Leave(key));
                }
                State::Dialing => abandoned.push(key),
                State::Leaving => {}
            }
        }
        for key in abandoned {
            self.clients.remove(&key);
            self.actions.push_back(Action::Abandon(key));
        }
    }

    // ----- outputs ------------------------------------------------------

    /// Whether the shell should start a connect for a new client now (then
    /// call [`Swarm::handle_dialing`]). Clients that are leaving do not
    /// count: each is replaced as soon as it starts to leave.
    pub fn poll_dial(&self, now: Instant) -> bool {
        !self.stopping
            && !self.unreachable
            && now >= self.next_dial
            && self.staying() < self.cfg.clients
    }

    /// The next thing to do to a client's session.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When to call [`Swarm::handle_timeout`] next; the redial back-off is
    /// included while a client is missing.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopping {
            return None;
        }
        let mut next = self.stop_at;
        let mut fold = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        for c in self.clients.values().filter(|c| c.state == State::Open) {
            if let Some(t) = c.leave_at {
                fold(t);
            }
            if let Some(t) = c.next_send {
                fold(t);
            }
        }
        if self.staying() < self.cfg.clients && !self.unreachable {
            fold(self.next_dial);
        }
        next
    }

    /// The first connect was refused and none ever succeeded: nothing is
    /// listening there. The shell ends the run with one error line.
    pub fn unreachable(&self) -> bool {
        self.unreachable
    }

    /// The run was stopped and every client has gone.
    pub fn is_done(&self) -> bool {
        self.stopping && self.clients.is_empty()
    }

    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// A client's number (its name is `NAME-number`).
    pub fn number(&self, key: usize) -> Option<u64> {
        self.clients.get(&key).map(|c| c.number)
    }

    /// Some connection has completed its handshake.
    pub fn ever_connected(&self) -> bool {
        self.ever_connected
    }

    /// Clients connected now (handshake done, not gone yet).
    pub fn connected(&self) -> usize {
        self.clients
            .values()
            .filter(|c| c.state != State::Dialing)
            .count()
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// The run's figures at `now`.
    pub fn summary(&self, now: Instant) -> Summary {
        Summary {
            clients: self.cfg.clients,
            duration: now.saturating_duration_since(self.started),
            counts: self.counts.clone(),
            rtt: self.rtt.summary(),
            peak_rss_kib: None,
        }
    }

    // ----- internals ----------------------------------------------------

    /// Clients connecting or connected that are not leaving.
    fn staying(&self) -> usize {
        self.clients
            .values()
            .filter(|c| c.state != State::Leaving)
            .count()
    }

    fn count_error(&mut self, kind: ErrorKind) {
        self.counts.errors[kind.index()] += 1;
    }
}

/// The time between two messages of one client at `rate` per second.
fn interval(rate: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / rate).unwrap_or(Duration::from_secs(1))
}

/// A body that is a decimal number and nothing else (as `seq` prints):
/// one of the hub's numbered messages.
fn parse_number(data: &[u8]) -> Option<u64> {
    if data.is_empty() || data.len() > 20 || !data.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// What a run ends with, printed once on stdout.
#[derive(Debug, Clone)]
pub struct Summary {
    pub clients: usize,
    pub duration: Duration,
    pub counts: Counts,
    pub rtt: RttSummary,
    /// The process's peak resident set (getrusage), filled in by the shell.
    pub peak_rss_kib: Option<u64>,
}

impl Summary {
    /// 0 when nothing was lost and nothing failed; 3 when a message was
    /// lost; 1 when a connection failed or ended in an error.
    pub fn exit_code(&self) -> u8 {
        if self.counts.lost() > 0 {
            exit::UNDELIVERED
        } else if self.counts.errors_total() > 0 {
            exit::FAILURE
        } else {
            exit::OK
        }
    }

    /// The ping-style block of text.
    pub fn text(&self, target: &str) -> String {
        let c = &self.counts;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "--- swarm {target}: {} clients, {:.2} s ---",
            self.clients,
            self.duration.as_secs_f64()
        );
        let _ = writeln!(
            s,
            "{} connects, {} disconnects ({} planned leaves), {} received ({} numbered), {} sent, {} acked, {} lost",
            c.connects,
            c.disconnects,
            c.leaves,
            c.received,
            c.numbered,
            c.sent,
            c.acked,
            c.lost()
        );
        let errors: Vec<String> = ErrorKind::ALL
            .iter()
            .filter(|&&k| c.error(k) > 0)
            .map(|&k| format!("{} {}", c.error(k), k.name()))
            .collect();
        if errors.is_empty() {
            s.push_str("errors: none\n");
        } else {
            let _ = writeln!(s, "errors: {}", errors.join(", "));
        }
        if self.rtt.n > 0 {
            let r = &self.rtt;
            let _ = writeln!(
                s,
                "fan-out rtt min/avg/p50/p99/max = {}/{}/{}/{}/{} ms ({} acks)",
                ms(r.min),
                ms(r.avg),
                ms(r.p50),
                ms(r.p99),
                ms(r.max),
                r.n
            );
        }
        if let Some(kib) = self.peak_rss_kib {
            let _ = writeln!(s, "peak rss {kib} KiB");
        }
        s
    }

    /// One JSON line: `{"event":"swarm",...}`.
    pub fn json(&self, target: &str) -> String {
        let c = &self.counts;
        let mut out = Vec::new();
        out.extend_from_slice(b"{\"event\":\"swarm\",\"target\":");
        crate::core::render::json_str(target, &mut out);
        let mut s = String::from_utf8(out).unwrap_or_default();
        let _ = write!(
            s,
            ",\"clients\":{},\"duration_s\":{:.3},\"attempts\":{},\"connects\":{},\
             \"disconnects\":{},\"leaves\":{},\"received\":{},\"numbered\":{},\"sent\":{},\"acked\":{},\
             \"skipped\":{},\"lost\":{},\"lost_unacked\":{},\"lost_gaps\":{},\"errors\":{{",
            self.clients,
            self.duration.as_secs_f64(),
            c.attempts,
            c.connects,
            c.disconnects,
            c.leaves,
            c.received,
            c.numbered,
            c.sent,
            c.acked,
            c.skipped,
            c.lost(),
            c.unacked,
            c.gaps,
        );
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(s, "{sep}\"{}\":{}", k.name(), c.error(*k));
        }
        let r = &self.rtt;
        let _ = write!(
            s,
            "}},\"errors_total\":{},\"rtt_ms\":{{\"n\":{},\"min\":{},\"avg\":{},\"p50\":{},\
             \"p99\":{},\"max\":{}}}",
            c.errors_total(),
            r.n,
            ms(r.min),
            ms(r.avg),
            ms(r.p50),
            ms(r.p99),
            ms(r.max)
        );
        match self.peak_rss_kib {
            Some(kib) => {
                let _ = write!(s, ",\"peak_rss_kib\":{kib}}}");
            }
            None => s.push_str(",\"peak_rss_kib\":null}"),
        }
        s
    }

    /// The progress line (without `\r`), for a terminal on stderr.
    pub fn progress(counts: &Counts, connected: usize, elapsed: Duration) -> String {
        format!(
            "swarm {:.1} s: {connected} connected, {} connects, {} leaves, {} received, {} acked, {} lost, {} errors",
            elapsed.as_secs_f64(),
            counts.connects,
            counts.leaves,
            counts.received,
            counts.acked,
            counts.lost(),
            counts.errors_total()
        )
    }
}

/// Nanoseconds as milliseconds with three decimals.
fn ms(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e6)
}

#[cfg(test)]
mod tests;
