//! Reading stdin for the chat: piped input cut into records for the
//! controller (or the room), and keys for the line editor; how much to read
//! per turn, end of input, and a stdin that fails. Part of the loop (`impl
//! Loop`), kept in its own file.

use super::*;

impl Loop {
    #[inline]
    pub(super) fn wants_stdin(&self) -> bool {
        if let Some(room) = &self.room {
            // Keys are always read; piped lines wait for a member with
            // room for them (a slower one is dropped, not waited for).
            return !self.room_stopping && (self.display.interactive() || room.wants_input());
        }
        let session = self
            .active
            .and_then(|k| self.conns.get(k))
            .map(Conn::session);
        self.chat.wants_input(
            session,
            self.display.interactive(),
            self.stdin.is_terminal(),
        )
    }

    /// stdin has bytes for us: read but not split yet, or to read.
    #[inline(always)]
    pub(super) fn stdin_pending(&self) -> bool {
        !self.stdin_unsplit.is_empty() || (self.stdin_ready && !self.stdin_eof)
    }

    /// Reads stdin if it is ready and wanted, and writes what that queued.
    /// The check is inlined: most turns have nothing to read, and a call
    /// would cost more than the check.
    #[inline(always)]
    pub(super) fn read_stdin(&mut self, clock: &mut Clock) {
        if self.stdin_pending() && self.wants_stdin() {
            self.read_stdin_now(clock);
            self.flush_active(clock);
        }
    }

    /// Splits what is left of the last read into messages for the session
    /// until it takes no more; true when all of it was taken.
    pub(super) fn split_stdin(&mut self, now: Instant) -> bool {
        if self.room.is_some() {
            return self.split_stdin_room(now);
        }
        let Loop {
            splitter,
            stdin_buf,
            stdin_unsplit,
            conns,
            active,
            display,
            chat,
            stdin,
            ..
        } = self;
        let terminal = stdin.is_terminal();
        let mut deliver = |rec| {
            chat.handle_record(rec, active_session(conns, *active), display, now);
            // Checked after every message: each may be the one that fills
            // a queue, and a read of empty lines holds 65,536 of them.
            let session = active_session(conns, *active);
            chat.wants_input(session.map(|s| &*s), false, terminal)
        };
        let used = splitter.push(&stdin_buf[stdin_unsplit.clone()], &mut deliver);
        stdin_unsplit.start += used;
        stdin_unsplit.start == stdin_unsplit.end
    }

    pub(super) fn read_stdin_now(&mut self, clock: &mut Clock) {
        if !self.stdin_unsplit.is_empty() && !self.split_stdin(clock.now()) {
            return;
        }
        // A bounded number of reads per turn, so a fast writer on stdin
        // (whole mode has no session pushback while a message assembles)
        // cannot starve the sockets; `stdin_ready` stays set meanwhile.
        let mut budget = STDIN_READS_PER_TURN;
        while self.stdin_ready && !self.stdin_eof && self.wants_stdin() && budget > 0 {
            budget -= 1;
            let n = match self.stdin.read(&mut self.stdin_buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.stdin_ready = false;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.stdin_failed(e, clock.now());
                    return;
                }
            };
            let now = clock.now();
            if self.display.interactive() {
                if n == 0 {
                    // The terminal hung up.
                    self.stdin_eof = true;
                    self.stdin.deregister(self.poll.registry());
                    self.handle_action(Action::Quit, now);
                    return;
                }
                let actions = self.display.handle_keys(&self.stdin_buf[..n], now);
                for action in actions {
                    self.handle_action(action, now);
                }
                if n < self.stdin_buf.len() {
                    self.stdin_ready = false;
                    return;
                }
                continue;
            }
            if n == 0 {
                let Loop {
                    splitter,
                    conns,
                    active,
                    display,
                    chat,
                    room,
                    ..
                } = self;
                splitter.finish(&mut |rec| {
                    match room.as_mut() {
                        Some(room) => {
                            room_loop::handle_record(room, rec, display, now);
                        }
                        None => {
                            let session = active_session(conns, *active);
                            chat.handle_record(rec, session, display, now);
                        }
                    }
                    true
                });
                self.stdin_eof = true;
                self.stdin.deregister(self.poll.registry());
                log::debug!("stdin ended");
                if self.room.is_some() {
                    // As a one-on-one server does, the room goes on
                    // without the hub's input (`/quit` or a signal ends it).
                    return;
                }
                let session = active_session(&mut self.conns, self.active);
                self.chat.handle_input_end(session, now);
                return;
            }
            let short = n < self.stdin_buf.len() && !self.stdin_hangup;
            if short && self.stdin.kind() == StdinKind::Polled {
                // A short read drained the pipe or terminal: a new edge
                // comes with new bytes, so skip the read that says EAGAIN.
                self.stdin_ready = false;
            }
            self.stdin_unsplit = 0..n;
            if !self.split_stdin(now) || short || self.stdin.kind() == StdinKind::Direct {
                // Stopped mid-read (the rest waits in `stdin_unsplit`), or
                // drained; a file is read one chunk per turn, so sockets
                // are served in between.
                return;
            }
        }
    }

    /// stdin cannot be read: no more input, and the chat ends as at the
    /// end of input (the acks awaited, then BYE); duet then exits with the
    /// error (`io_failure`).
    #[cold]
    pub(super) fn stdin_failed(&mut self, err: io::Error, now: Instant) {
        log::debug!("stdin: {}", io_msg(&err));
        self.stdin_failed = Some(err);
        self.stdin_eof = true;
        self.stdin.deregister(self.poll.registry());
        if self.display.interactive() || self.room.is_some() {
            self.handle_action(Action::Quit, now);
        } else if let Some(s) = active_session(&mut self.conns, self.active) {
            s.handle_input_end(now);
            self.service_active(now);
        }
    }

    /// Why duet must exit 1 whatever became of the chat: stdout or stdin
    /// failed. stdout closed by its reader (`| head -1`) is no failure.
    pub(super) fn io_failure(&mut self) -> Option<Error> {
        if let Some(err) = self.display.take_failure() {
            return Some(Error::Io {
                what: "cannot write to stdout",
                err,
            });
        }
        let err = self.stdin_failed.take()?;
        Some(Error::Io {
            what: "cannot read stdin",
            err,
        })
    }
}
