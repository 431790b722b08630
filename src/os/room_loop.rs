//! Room mode's part of the loop (`duet server --room`): the room's own
//! turn, accepting into the room, handing each member's session to
//! `core::room`, feeding what the room queued for each member, dropping
//! whom it drops, giving an idle member's memory back, and closing the
//! room. The rules are the room controller's; this file only moves
//! sessions and bytes between it and the connections. The one-on-one
//! turn never enters here: a room runs `turn_in_room` instead of `turn`.
//!
//! A room's turn visits only the members marked in `os/activity.rs`:
//! those with a readiness event, a deadline due, something fed by the
//! room, or work left from the turn before. An idle member costs nothing
//! per turn, and its next deadline sits in the activity's heap.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::{Loop, MAX_CLOSING};
use crate::core::chat::Refusal;
use crate::core::chat::Screen;
use crate::core::editor::Action;
use crate::core::exit;
use crate::core::input::InputError;
use crate::core::render::{Line, PeerKey};
use crate::core::room::Room;
use crate::core::session::Session;
use crate::os::activity::Activity;
use crate::os::addr::IpLiteral;
use crate::os::conn::Clock;
use crate::os::display::Display;
use crate::os::error::Error;
use std::net::SocketAddr;

impl Loop {
    /// `duet server --room`: serves the room until `/quit` or a signal
    /// (not the end of stdin), then waits for every member to close and shows
    /// the room's summary.
    pub(super) fn run_room(&mut self, listen: Option<IpLiteral>, port: u16) -> Result<u8, Error> {
        if !self.listen(listen, port, false)? {
            return self.io_failure().map_or(Ok(exit::OK), Err);
        }
        loop {
            let now = self.turn_in_room()?;
            let failed = self.display.is_broken() || self.stdin_failed.is_some();
            let quit = self.room.as_ref().is_some_and(|r| r.quitting());
            if (failed || quit) && !self.room_stopping {
                self.stop_room(now);
            }
            if self.room_stopping && self.conns.is_empty() {
                if let Some(room) = self.room.as_ref() {
                    room.summary(&mut self.display, now);
                }
                self.display.flush();
                if let Some(e) = self.io_failure() {
                    return Err(e);
                }
                return Ok(self.chat.stopped().map_or(exit::OK, exit::signalled));
            }
        }
    }

    /// A connection accepted into room mode: the room prepares its session
    /// (the room's PING, deferred acks) or, when full, it is turned away.
    pub(super) fn room_join(&mut self, key: usize, peer: SocketAddr, now: Instant) {
        let Some(room) = self.room.as_mut() else {
            return;
        };
        match room.handle_join(key, peer, self.conns[key].session_mut(), now) {
            Ok(()) => {
                log::info!("accepted {peer} into the room");
                self.conns[key].ready(&mut Clock::at(now));
            }
            Err(full) => {
                log::info!("room full ({} members)", full.max_peers);
                // Connections the room does not hold are being turned away.
                let closing = self.conns.len().saturating_sub(room.peers() + 1);
                if closing >= MAX_CLOSING {
                    // As for any refusal under a flood: nothing is kept
                    // for this one; a plain peer still reads why.
                    let mut conn = self.conns.remove(key);
                    let _ = self.poll.registry().deregister(conn.stream_mut());
                    self.room_work.activity.forget(key);
                    if self.trust.is_none() {
                        let _ = std::io::Write::write(&mut conn.stream_mut(), &self.busy_frames);
                    }
                    return;
                }
                self.turn_away(key, Refusal::Busy, now);
            }
        }
    }

    /// Asks every session to stop (acks awaited for a while, then BYE); a
    /// second call (a second signal) closes them at once.
    pub(super) fn stop_room(&mut self, now: Instant) {
        let again = std::mem::replace(&mut self.room_stopping, true);
        let grace = self.session_cfg.linger;
        let mut clock = Clock::at(now);
        for (key, conn) in self.conns.iter_mut() {
            self.room_work.activity.mark(key);
            let s = conn.session_mut();
            if again {
                s.close(crate::core::protocol::ByeReason::Normal);
            } else {
                s.handle_stop(now, grace);
            }
            conn.ready(&mut clock);
        }
    }

    /// One poll and everything it made ready, in room mode: as `turn`,
    /// for the marked members only. Returns the turn's `now`.
    fn turn_in_room(&mut self) -> Result<Instant, Error> {
        let timeout = self.room_wait_timeout();
        let (mut clock, due) = self.wait(timeout, true)?;
        // Deadlines are looked at when the timer fired or the wait had a
        // timeout of its own.
        let deadlines = timeout.is_some() || due.is_some();
        for i in 0..self.room_work.activity.marked().len() {
            let key = self.room_work.activity.marked()[i];
            if let Some(conn) = self.conns.get_mut(key) {
                conn.ready(&mut clock);
            }
        }
        if self.trust.is_some() {
            self.room_check_keys(clock.now());
        }
        self.read_stdin(&mut clock);
        if deadlines {
            let due = due.unwrap_or_else(|| clock.now());
            while let Some(key) = self.room_work.activity.pop_due(due) {
                self.room_work.activity.mark(key);
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.handle_due(due, &mut clock);
                }
            }
            if let Some(room) = self.room.as_mut()
                && room.poll_timeout().is_some_and(|t| due >= t)
            {
                room.handle_timeout(&mut self.display, due);
            }
        }
        let now = clock.now();
        self.room_turn(&mut clock);
        self.refresh_label();
        self.display.end_turn(now);
        self.settle(now);
        self.room_work.give_back_freed(now);
        Ok(now)
    }

    /// As `wait_timeout`, from the members' work and deadlines kept in
    /// `activity` instead of a look at every connection.
    fn room_wait_timeout(&mut self) -> Option<Duration> {
        let busy_now = (self.stdin_pending() && self.wants_stdin())
            || (self.accept_ready && self.accept_retry.is_none())
            || self.room_work.busy;
        if busy_now {
            return Some(Duration::ZERO);
        }
        let mut nearest = self.accept_retry;
        let mut fold = |t: Instant| nearest = Some(nearest.map_or(t, |n| n.min(t)));
        if let Some(t) = self.room_work.activity.next_deadline() {
            fold(t);
        }
        if let Some(t) = self.room.as_ref().and_then(Room::poll_timeout) {
            fold(t);
        }
        if let Some(t) = self.room_work.trim_deadline() {
            fold(t);
        }
        self.wait_for(nearest)
    }

    /// `check_keys` for the marked members (a handshake completes only on
    /// a read): an accepted key lets the member's bytes leave, a refused
    /// one ends the connection with BYE(key refused).
    fn room_check_keys(&mut self, now: Instant) {
        let Loop {
            trust: Some(trust),
            conns,
            room_work,
            ..
        } = self
        else {
            return;
        };
        for &key in room_work.activity.marked() {
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let Some(peer_key) = conn.take_peer_key() else {
                continue;
            };
            match trust.check_client(&peer_key) {
                Ok(v) => {
                    conn.accept_key();
                    conn.ready(&mut Clock::at(now));
                    conn.set_peer_key(PeerKey {
                        fingerprint: v.fingerprint.to_string(),
                        safety: v.safety.to_string(),
                        remembered: v.remembered.map(|p| p.display().to_string()),
                    });
                }
                Err(why) => {
                    log::info!("refused the key of {}: {why}", conn.peer());
                    conn.refuse_key(why);
                    conn.ready(&mut Clock::at(now));
                }
            }
        }
    }

    /// The end of a room's turn, for each member it marked: close those
    /// done closing, keep those with work left marked for the next turn,
    /// give the others' empty buffers back, and put each one's next
    /// deadline in the activity's heap.
    fn settle(&mut self, now: Instant) {
        let mut keys = std::mem::take(&mut self.room_work.settling);
        self.room_work.activity.take(&mut keys);
        self.room_work.busy = false;
        for &key in &keys {
            let Some(conn) = self.conns.get_mut(key) else {
                self.room_work.activity.forget(key);
                continue;
            };
            if conn.is_done(now) {
                let mut conn = self.conns.remove(key);
                self.room_work.freed += conn.heap_bytes();
                self.room_work.activity.forget(key);
                if let Some(room) = self.room.as_mut() {
                    room.handle_leave(key, &mut self.display, now);
                }
                let _ = self.poll.registry().deregister(conn.stream_mut());
                log::debug!("closed connection from {}", conn.peer());
                continue;
            }
            if conn.has_work() {
                self.room_work.activity.mark(key);
                self.room_work.busy = true;
            } else {
                let held = conn.heap_bytes();
                conn.shrink_idle();
                self.room_work.freed += held.saturating_sub(conn.heap_bytes());
                if let Some(room) = self.room.as_mut() {
                    room.shrink_idle(key);
                }
            }
            let mut next = None;
            conn.deadlines(|t| next = Some(next.map_or(t, |n: Instant| n.min(t))));
            self.room_work.activity.arm(key, next);
        }
        self.room_work.settling = keys;
        // A member that left queued notices for the others.
        self.room_work.busy |= self.room.as_ref().is_some_and(Room::has_work);
    }

    /// The room's share of a turn, for the marked members: their sessions'
    /// events to the room, then what the room queued for each member into
    /// its session, then the members it drops, until nothing moves.
    pub(super) fn room_turn(&mut self, clock: &mut Clock) {
        let now = clock.now();
        let Loop {
            room: Some(room),
            conns,
            display,
            room_work: RoomWork { activity, .. },
            ..
        } = self
        else {
            return;
        };
        loop {
            let mut moved = false;
            // Marked members' events, including those that feeding and
            // dropping queued in the last round.
            for i in 0..activity.marked().len() {
                let key = activity.marked()[i];
                if let Some(conn) = conns.get_mut(key) {
                    room.handle_events(key, conn.session_mut(), display, now);
                }
            }
            while let Some(key) = room.poll_woken() {
                moved = true;
                activity.mark(key);
                if let Some(conn) = conns.get_mut(key) {
                    room.feed(key, conn.session_mut(), display, now);
                    conn.flush(clock);
                    conn.after_close(clock);
                }
            }
            while let Some(drop) = room.poll_drop() {
                moved = true;
                activity.mark(drop.key);
                if let Some(conn) = conns.get_mut(drop.key) {
                    log::info!("dropped {} from the room: {}", conn.peer(), drop.detail);
                    conn.session_mut()
                        .close_with(drop.reason, drop.detail.as_bytes());
                    // The room has shown it.
                    conn.take_end();
                    conn.flush(clock);
                    conn.after_close(clock);
                }
            }
            // Members whose session took no more last time and drained
            // since: that takes activity of their own (a write, an ack),
            // so they are marked.
            for i in 0..activity.marked().len() {
                let key = activity.marked()[i];
                let Some(conn) = conns.get_mut(key) else {
                    continue;
                };
                if room.has_queued(key) && wants(conn.session()) {
                    moved = true;
                    room.feed(key, conn.session_mut(), display, now);
                    conn.flush(clock);
                    conn.after_close(clock);
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Stdin's lines in room mode: each goes to the room.
    pub(super) fn split_stdin_room(&mut self, now: Instant) -> bool {
        let Loop {
            splitter,
            stdin_buf,
            stdin_unsplit,
            display,
            room: Some(room),
            ..
        } = self
        else {
            return true;
        };
        // Checked again each turn (`wants_stdin`): a read of empty lines
        // holds 65,536 of them, more than a member's queue takes.
        let mut budget = room.input_budget();
        let used = splitter.push(&stdin_buf[stdin_unsplit.clone()], &mut |rec| {
            let len = rec.as_ref().map_or(0, |line| line.len());
            handle_record(room, rec, &mut Piped(display), now) && budget.take(len)
        });
        stdin_unsplit.start += used;
        stdin_unsplit.start == stdin_unsplit.end
    }

    /// What a key in the editor asked for, in room mode.
    pub(super) fn room_action(&mut self, action: Action, now: Instant) {
        match action {
            Action::Send(line) => {
                if let Some(room) = self.room.as_mut() {
                    room.handle_line(line.as_ref(), &mut self.display, now);
                }
            }
            Action::Quit => self.stop_room(now),
            Action::Suspend => self.suspend(),
            Action::ClearScreen => self.display.clear_screen(),
        }
    }
}

/// Buffer bytes idle members must have given back before the heap's free
/// pages are returned to the OS, and how often that may happen at most.
const TRIM_AFTER_FREED: usize = 1024 * 1024;
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Room mode's state between turns.
#[derive(Default)]
pub(super) struct RoomWork {
    /// The members that need this turn, and their deadlines.
    pub(super) activity: Activity,
    /// A member has work left: the next wait must not block.
    busy: bool,
    /// The keys of the turn that ended, reused between turns.
    settling: Vec<usize>,
    /// Buffer bytes idle members gave back since the heap was last
    /// trimmed.
    freed: usize,
    /// When the heap may be trimmed next.
    trim_after: Option<Instant>,
}

impl RoomWork {
    /// After a turn that left nothing to do: once idle members (and
    /// closed connections) have given back enough (a burst of traffic has passed), hand the allocator's
    /// free pages back to the OS, at most every [`TRIM_EVERY`]. The
    /// allocator keeps freed memory for reuse, so without this the
    /// server's resident memory would stay at the burst's peak.
    /// When a trim that is due waits for [`TRIM_EVERY`] to pass: the loop
    /// wakes for it, so a room that went quiet (or empty) right after a
    /// burst still gives its memory back.
    fn trim_deadline(&self) -> Option<Instant> {
        self.trim_after.filter(|_| self.freed >= TRIM_AFTER_FREED)
    }

    fn give_back_freed(&mut self, now: Instant) {
        if self.busy || self.freed < TRIM_AFTER_FREED || self.trim_after.is_some_and(|t| now < t) {
            return;
        }
        self.freed = 0;
        self.trim_after = Some(now + TRIM_EVERY);
        trim_heap();
    }
}

/// Returns the heap's free pages to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only walks and releases glibc's own free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

/// One record of the hub's input: a line for the room, or why it was not
/// sent. False when the room wants no more input for now (a line held
/// until a member joins).
pub(super) fn handle_record(
    room: &mut Room,
    rec: Result<Cow<'_, [u8]>, InputError>,
    screen: &mut impl Screen,
    now: Instant,
) -> bool {
    match rec {
        Ok(line) => room.handle_piped_line(&line, screen, now),
        Err(e) => {
            let message = format!("not sent: {e}");
            screen.show(&Line::Error { message: &message }, now);
            true
        }
    }
}

/// The display for piped lines: as in a one-on-one chat, only a typed
/// line is echoed (`you> ...`); a piped one is not, and never in JSON.
struct Piped<'a>(&'a mut Display);

impl Screen for Piped<'_> {
    fn show(&mut self, line: &Line<'_>, now: Instant) {
        self.0.show(line, now);
    }

    fn show_part(&mut self, from: &[u8], id: u64, data: &[u8], last: bool, now: Instant) {
        self.0.show_part(from, id, data, last, now);
    }

    fn cut_off(&mut self, from: &[u8], now: Instant) {
        self.0.cut_off(from, now);
    }

    fn echo_sent(&mut self, _id: u64, _data: &[u8], _now: Instant) {}
}

/// Whether a member's session takes messages now (or is closed, so that
/// what waits for it is counted lost).
fn wants(s: &Session) -> bool {
    s.wants_input() || !s.is_open()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_given_back_after_a_trim_waits_for_its_own_wake_up() {
        let t0 = Instant::now();
        let mut w = RoomWork {
            freed: TRIM_AFTER_FREED,
            ..RoomWork::default()
        };
        assert_eq!(w.trim_deadline(), None, "never trimmed: at the turn's end");
        w.give_back_freed(t0);
        assert_eq!((w.freed, w.trim_after), (0, Some(t0 + TRIM_EVERY)));
        // Members leave right after: too soon to trim again, so the loop
        // must wake for it rather than wait for traffic that may not come.
        w.freed = 3 * TRIM_AFTER_FREED;
        w.give_back_freed(t0 + Duration::from_secs(1));
        assert_eq!(w.trim_deadline(), Some(t0 + TRIM_EVERY));
        w.give_back_freed(t0 + TRIM_EVERY);
        assert_eq!((w.freed, w.trim_deadline()), (0, None));
    }
}
