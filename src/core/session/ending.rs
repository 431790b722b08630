//! Ending: how a session stops (input ended, a stop signal, a refused
//! key, a lost connection, a local close) and fails, the goodbye it
//! queues, and what a side that refuses the peer's key sends instead.

use super::*;

impl Session {
    /// Input ended: wait for outstanding acks (up to the linger time),
    /// then say goodbye.
    pub fn handle_input_end(&mut self, now: Instant) {
        self.input_ended = true;
        if self.state == State::Open {
            self.drain_until(later(now, self.cfg.linger));
        }
    }

    /// We were asked to stop (a signal): take no more input, wait up to
    /// `grace` for outstanding acks, then say goodbye. Before the handshake
    /// completes there is nothing to wait for.
    pub fn handle_stop(&mut self, now: Instant, grace: Duration) {
        match self.state {
            State::Open => self.drain_until(later(now, grace)),
            State::Draining { deadline } => self.drain_until(deadline.min(later(now, grace))),
            State::Handshake { .. } => self.close(ByeReason::Normal),
            State::Closed => {}
        }
    }

    /// The peer's key, proved by the encrypted handshake, is not accepted
    /// ([`SessionError::KeyRefused`]) or could not be checked
    /// ([`SessionError::KeyCheck`]): the end. Nothing queued is sent (not
    /// even our HELLO, which names us): the caller tells the peer with
    /// [`refusal_frames`].
    pub fn refuse_key(&mut self, why: SessionError) {
        debug_assert!(matches!(
            why,
            SessionError::KeyRefused(_) | SessionError::KeyCheck(_)
        ));
        if self.state == State::Closed {
            return;
        }
        self.outbox.clear();
        self.out_pos = 0;
        self.finish(End::Failed(why));
    }

    /// The encrypted transport under the session failed: BYE(protocol
    /// error) with the reason, if it can still be sealed, and the end.
    pub fn handle_transport_error(&mut self, why: String) {
        self.fail(SessionError::Transport(why));
    }

    /// The connection failed underneath us; no BYE can be sent.
    pub fn handle_lost(&mut self, why: String) {
        if self.state != State::Closed {
            self.outbox.clear();
            self.out_pos = 0;
            self.finish(End::Lost(why));
        }
    }

    /// Leave now with `reason` (for example on a signal).
    pub fn close(&mut self, reason: ByeReason) {
        if self.state != State::Closed {
            self.queue_bye(reason, b"");
            self.finish(End::Local(reason));
        }
    }

    pub(super) fn drain_until(&mut self, deadline: Instant) {
        self.state = State::Draining { deadline };
        self.bye_if_drained();
    }

    pub(super) fn queue_bye(&mut self, reason: ByeReason, detail: &[u8]) {
        protocol::encode(&Frame::Bye { reason, detail }, &mut self.outbox);
    }

    #[cold]
    #[inline(never)]
    pub(super) fn fail(&mut self, err: SessionError) {
        if self.state == State::Closed {
            return;
        }
        let detail = err.for_peer();
        self.queue_bye(err.bye_reason(), detail.as_bytes());
        self.finish(End::Failed(err));
    }

    pub(super) fn finish(&mut self, end: End) {
        self.state = State::Closed;
        self.end = Some(end);
        self.pending.clear();
        self.pending_bytes = 0;
        self.events.push_back(Record::Ended);
    }
}

/// What a side that refuses the peer's key (or cannot check it) sends it,
/// inside the encrypted channel, in place of the session's own frames: the
/// BYE of `why` alone, without our HELLO (its name is not for a peer we do
/// not trust). A BYE is valid before HELLO.
pub fn refusal_frames(why: &SessionError, out: &mut Vec<u8>) {
    let detail = why.for_peer();
    protocol::encode(
        &Frame::Bye {
            reason: why.bye_reason(),
            detail: detail.as_bytes(),
        },
        out,
    );
}
