//! Liveness: the session's deadlines and what happens when one passes
//! (the handshake and drain deadlines, the heartbeat's PINGs and the dead
//! peer, the write stall), and the signs of life that move them.

use std::time::Instant;

use super::*;
use crate::core::deadline::earliest;

impl Session {
    /// When to call [`Session::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // Folded by hand: the loop asks every turn.
        let own = match self.state {
            State::Handshake { deadline } => return Some(deadline),
            State::Draining { deadline } => Some(deadline),
            State::Open => None,
            State::Closed => return None,
        };
        let beat = self.heartbeat_deadline();
        let stall = self.stall_deadline();
        earliest(earliest(own, stall), beat)
    }

    /// Call when [`Session::poll_timeout`]'s instant has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.outbox_clock(now);
        match self.state {
            State::Handshake { deadline } if now >= deadline => {
                self.fail(SessionError::HandshakeTimeout);
                return;
            }
            State::Draining { deadline } if now >= deadline => {
                self.queue_bye(ByeReason::Normal, b"");
                self.finish(End::Local(ByeReason::Normal));
                return;
            }
            State::Open | State::Draining { .. } => {}
            State::Handshake { .. } | State::Closed => return,
        }
        if self.stall_deadline().is_some_and(|t| now >= t) {
            let after = now.saturating_duration_since(self.last_progress);
            self.fail(SessionError::WriteStall { after });
            return;
        }
        if self.heartbeat_deadline().is_some_and(|t| now >= t) {
            if self.pings >= self.cfg.dead_after {
                let silent = now.saturating_duration_since(self.last_heard);
                let pings = self.pings;
                self.fail(SessionError::Dead { pings, silent });
            } else {
                self.pings += 1;
                let token = self.pings as u64;
                protocol::encode(&Frame::Ping(token), &mut self.outbox);
            }
        }
    }

    /// Any sign of life from the peer resets the heartbeat.
    pub(super) fn alive(&mut self, now: Instant) {
        self.last_heard = now;
        self.pings = 0;
    }

    /// Starts the write-stall clock when bytes are about to be queued into
    /// an empty outbox (called at the top of every input with `now`).
    pub(super) fn outbox_clock(&mut self, now: Instant) {
        if self.unsent_out() == 0 && self.pending.is_empty() {
            self.last_progress = now;
        }
    }

    fn stall_deadline(&self) -> Option<Instant> {
        let waiting = self.unsent_out() > 0 || !self.pending.is_empty();
        waiting.then_some(())?;
        Some(later(self.last_progress, self.cfg.write_timeout?))
    }

    /// The next PING is due one interval after the last sign of life, and
    /// one more interval after each unanswered PING; after `dead_after`
    /// of them, the same deadline declares the peer dead.
    fn heartbeat_deadline(&self) -> Option<Instant> {
        let every = self.cfg.heartbeat?;
        // `pings` is small (it ends the chat at `dead_after`); saturate all
        // the same, as `later` does.
        let wait = match self.pings {
            0 => every,
            n => every.saturating_mul(n + 1),
        };
        Some(later(self.last_heard, wait))
    }
}
