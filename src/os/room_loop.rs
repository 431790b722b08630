//! Room mode's part of the loop (`duet server --room`): accepting into the
//! room, handing each member's session to `core::room`, feeding what the
//! room queued for each member, dropping whom it drops, and closing the
//! room. The rules are the room controller's; this file only moves
//! sessions and bytes between it and the connections. The one-on-one
//! turn never enters here: `Loop` branches once per turn on `room`.

use std::borrow::Cow;
use std::time::Instant;

use super::{Loop, MAX_CLOSING};
use crate::core::chat::Refusal;
use crate::core::chat::Screen;
use crate::core::editor::Action;
use crate::core::exit;
use crate::core::input::InputError;
use crate::core::render::Line;
use crate::core::room::Room;
use crate::core::session::Session;
use crate::os::addr::IpLiteral;
use crate::os::conn::Clock;
use crate::os::display::Display;
use crate::os::error::Error;
use std::net::SocketAddr;

impl Loop {
    /// `duet server --room`: serves the room until `/quit`, the end of
    /// stdin or a signal, then waits for every member to close and shows
    /// the room's summary.
    pub(super) fn run_room(&mut self, listen: Option<IpLiteral>, port: u16) -> Result<u8, Error> {
        if !self.listen(listen, port, false)? {
            return self.io_failure().map_or(Ok(exit::OK), Err);
        }
        loop {
            let now = self.turn()?;
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
                if self.conns.len() > MAX_CLOSING {
                    // As for any refusal under a flood: no courtesy.
                    let mut conn = self.conns.remove(key);
                    let _ = self.poll.registry().deregister(conn.stream_mut());
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
        for (_, conn) in self.conns.iter_mut() {
            let s = conn.session_mut();
            if again {
                s.close(crate::core::protocol::ByeReason::Normal);
            } else {
                s.handle_stop(now, grace);
            }
            conn.ready(&mut clock);
        }
    }

    /// The room's share of a turn: every session's events to the room,
    /// then what the room queued for each member into its session, then
    /// the members it drops.
    pub(super) fn room_turn(&mut self, clock: &mut Clock) {
        let now = clock.now();
        let Loop {
            room: Some(room),
            conns,
            display,
            ..
        } = self
        else {
            return;
        };
        for (key, conn) in conns.iter_mut() {
            room.handle_events(key, conn.session_mut(), display, now);
        }
        loop {
            let mut moved = false;
            while let Some(key) = room.poll_woken() {
                moved = true;
                if let Some(conn) = conns.get_mut(key) {
                    room.feed(key, conn.session_mut(), display, now);
                    conn.flush(clock);
                    conn.after_close(clock);
                }
            }
            while let Some(drop) = room.poll_drop() {
                moved = true;
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
            // since.
            for (key, conn) in conns.iter_mut() {
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
        let used = splitter.push(&stdin_buf[stdin_unsplit.clone()], &mut |rec| {
            handle_record(room, rec, &mut Piped(display), now);
            true
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

/// One record of the hub's input: a line for the room, or why it was not
/// sent.
pub(super) fn handle_record(
    room: &mut Room,
    rec: Result<Cow<'_, [u8]>, InputError>,
    screen: &mut impl Screen,
    now: Instant,
) {
    match rec {
        Ok(line) => room.handle_line(&line, screen, now),
        Err(e) => {
            let message = format!("not sent: {e}");
            screen.show(&Line::Error { message: &message }, now);
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
