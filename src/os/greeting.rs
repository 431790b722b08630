//! A one-on-one server's connections before the chat: accepting them,
//! turning them away (busy, or past the bounds on greetings under way),
//! checking the keys the encrypted handshake proved, showing how failed
//! greetings ended, and granting the chat to the first connection whose
//! HELLO came. Part of the loop (`impl Loop`), kept in its own file.

use super::*;

impl Loop {
    pub(super) fn accept_all(&mut self, now: Instant) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let (stream, peer) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.accept_ready = false;
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the connection stays queued; try
                    // again shortly instead of spinning on it.
                    if !self.accept_failing {
                        log::warn!("cannot accept a connection: {}", io_msg(&e));
                        self.accept_failing = true;
                    }
                    self.accept_retry = Some(now + ACCEPT_RETRY);
                    return;
                }
            };
            if std::mem::take(&mut self.accept_failing) {
                log::warn!("accepting connections again");
            }
            let peer = unmap(peer);
            let refusal = self.refusal(peer.ip());
            if refusal.is_some() && self.conns.len() > MAX_CLOSING {
                // Too many already being turned away: nothing is kept for
                // this one. A plain peer still reads why (one nonblocking
                // write of HELLO and BYE(busy), which fits any socket
                // buffer); an encrypted one cannot without a handshake.
                if self.trust.is_none() {
                    let _ = std::io::Write::write(&mut &stream, &self.busy_frames);
                }
                log::debug!("dropped {peer}: {MAX_CLOSING} others are closing");
                continue;
            }
            match self.add_conn(stream, peer, now, refusal.is_some()) {
                Ok(key) => match refusal {
                    Some(why) => self.turn_away(key, why, now),
                    None if self.room.is_some() => self.room_join(key, peer, now),
                    None => {
                        log::info!("accepted {peer}: waiting for its HELLO");
                        self.conns[key].session_mut().hold_after_hello();
                    }
                },
                Err(e) => log::warn!("cannot set up connection from {peer}: {}", io_msg(&e)),
            }
        }
    }

    /// Why a new connection from `ip` is turned away, if it is: a chat is
    /// under way, or too many handshakes are (in all, or from `ip`).
    pub(super) fn refusal(&self, ip: IpAddr) -> Option<Refusal> {
        if self.room.is_some() {
            // A full room is the room's to say (`room_join`).
            return self.room_stopping.then_some(Refusal::Busy);
        }
        if self.active.is_some() {
            return Some(Refusal::Busy);
        }
        let (mut all, mut same) = (0, 0);
        for (_, c) in self.conns.iter().filter(|(_, c)| !c.session().is_closed()) {
            all += 1;
            same += usize::from(c.peer().ip() == ip);
        }
        if all >= MAX_PENDING {
            Some(Refusal::TooManyGreetings)
        } else if same >= MAX_PENDING_PER_SOURCE {
            Some(Refusal::TooManyFromAddress)
        } else {
            None
        }
    }

    /// Says BYE(busy) on connection `key` and tells the server's user.
    pub(super) fn turn_away(&mut self, key: usize, why: Refusal, now: Instant) {
        let conn = &mut self.conns[key];
        let peer = conn.peer();
        log::info!("turned away {peer}: {why:?}");
        // Its end is the notice below, not a chat's end.
        conn.session_mut().close(ByeReason::Busy);
        conn.take_end();
        conn.ready(&mut Clock::at(now));
        self.chat
            .handle_turned_away(peer, why, &mut self.display, now);
    }

    /// Checks each peer key the encrypted handshake has just proved: a
    /// refused key ends that connection with BYE(key refused); an accepted
    /// one is shown with the chat's `connected` line.
    pub(super) fn check_keys(&mut self, now: Instant) {
        let Some(trust) = &self.trust else {
            return;
        };
        for (key, conn) in self.conns.iter_mut() {
            let Some(peer_key) = conn.take_peer_key() else {
                continue;
            };
            let checked = match &self.target {
                Some(target) => trust.check_server(target, &peer_key),
                None => trust.check_client(&peer_key),
            };
            match checked {
                Ok(v) => {
                    conn.accept_key();
                    conn.ready(&mut Clock::at(now));
                    let shown = PeerKey {
                        fingerprint: v.fingerprint.to_string(),
                        safety: v.safety.to_string(),
                        remembered: v.remembered.map(|p| p.display().to_string()),
                    };
                    if Some(key) == self.active {
                        self.chat.handle_peer_key(shown);
                    } else {
                        conn.set_peer_key(shown);
                    }
                }
                Err(why) => {
                    log::info!("refused the key of {}: {why}", conn.peer());
                    conn.refuse_key(why);
                    conn.ready(&mut Clock::at(now));
                }
            }
        }
    }

    /// Shows how each greeting that failed ended (no HELLO in time, not a
    /// duet peer, ...): the server's user sees who tried.
    pub(super) fn show_failed_greetings(&mut self, now: Instant) {
        for (_, conn) in self.conns.iter_mut() {
            if conn.take_end() {
                self.chat
                    .handle_greeting_failed(conn.session(), &mut self.display, now);
            }
        }
    }

    /// With no chat under way, grants it to the first connection whose
    /// handshake has completed, and turns the others away: a connection
    /// that never says HELLO holds nothing.
    pub(super) fn grant_chat(&mut self, now: Instant) {
        let Some(key) = self
            .conns
            .iter()
            .find(|(_, c)| {
                c.key_accepted() && c.session().handshake_done() && !c.session().is_closed()
            })
            .map(|(k, _)| k)
        else {
            return;
        };
        let conn = &mut self.conns[key];
        conn.session_mut().release();
        let peer = conn.peer();
        let peer_key = conn.take_shown_key();
        // What came behind its HELLO is taken now (the backlog).
        conn.ready(&mut Clock::at(now));
        self.start_chat(key, peer);
        if let Some(k) = peer_key {
            self.chat.handle_peer_key(k);
        }
        let others: Vec<usize> = self
            .conns
            .iter()
            .filter(|(k, c)| *k != key && !c.session().is_closed())
            .map(|(k, _)| k)
            .collect();
        for other in others {
            self.turn_away(other, Refusal::Outpaced, now);
        }
    }
}
