//! The chat's event loop: a single thread and a single `mio::Poll` that owns
//! the listener, a client's connect in progress, the connections, stdin,
//! the signal source and the timer. It registers sources, waits, and moves
//! bytes between descriptors and the core; the chat's rules are the
//! controller's (`core::chat`), a connection's reading and writing is
//! `conn`'s. (`duet swarm` runs its own loop, `swarm_loop`.)
//!
//! Each turn:
//! 1. wait for readiness; the nearest deadline is a timerfd in the same
//!    poll set (`timer`), set again only when a deadline comes earlier;
//! 2. signals, then new connections (server) or the connect in progress
//!    (client);
//! 3. each connection with readiness reads until drained (or until its
//!    session pushes back) and flushes at once, so acknowledgments leave
//!    before any display work;
//! 4. stdin (or the bench's generator) feeds the controller, and what
//!    that queued on the active connection is flushed;
//! 5. deadlines fire; the controller turns the session's events into
//!    lines, and the display writes stdout once, with the prompt after it.

use std::io::{self, ErrorKind, Read};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCONT, SIGHUP, SIGINT, SIGTERM, SIGTSTP, SIGWINCH};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::core::chat::{Chat, ChatConfig, Refusal, Request, Role};
use crate::core::editor::Action;
use crate::core::exit;
use crate::core::identity;
use crate::core::input::Splitter;
use crate::core::protocol::ByeReason;
use crate::core::render::{Format, PeerKey};
use crate::core::room::{QUEUE_CAP, Room, RoomConfig};
use crate::core::session::{Config, Session};
use crate::core::transport::{self, Transport};
use crate::os::addr::{IpLiteral, bind, resolve, unmap};
use crate::os::conn::{Clock, Conn, ConnKind};
use crate::os::dial::{Dial, Dialed};
use crate::os::display::{Display, Prompt};
use crate::os::error::{Error, io_msg};
use crate::os::logging;
use crate::os::options::{Mode, Options};
use crate::os::sendfile::read_file_message;
use crate::os::stdin::{Stdin, StdinKind};
use crate::os::stopfd::StopFd;
use crate::os::terminal::{self, Terminal};
use crate::os::timer::Timer;
use crate::os::trust::Trust;

const LISTENER: Token = Token(0);
const STDIN: Token = Token(1);
const SIGNALS: Token = Token(2);
const TIMER: Token = Token(3);
/// A client's connect in progress.
const DIAL: Token = Token(4);
/// Connection tokens are this plus the connection's slab key.
const FIRST_CONN: usize = 5;

/// Connections being turned away or closed at once, beyond which new
/// arrivals during a chat are closed without HELLO and BYE.
const MAX_CLOSING: usize = 64;
/// Handshakes a server lets run at once while nobody holds the chat; the
/// chat goes to the first to complete.
const MAX_PENDING: usize = 16;
/// Of those, how many may come from one address.
const MAX_PENDING_PER_SOURCE: usize = 4;
/// Bytes read from stdin per `read` call.
const STDIN_CHUNK: usize = 64 * 1024;
/// Reads of stdin per loop turn before the sockets get their turn.
const STDIN_READS_PER_TURN: u32 = 16;
/// Back-off before accepting again after an error such as EMFILE.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Room mode's turn (`server --room`): kept apart so that the one-on-one
/// path branches once per turn.
#[path = "room_loop.rs"]
mod room_loop;

/// A one-on-one server's accepting, greeting and granting of its chat,
/// and the key checks before it.
#[path = "greeting.rs"]
mod greeting;

/// Reading stdin (piped records or the editor's keys) for the controller.
#[path = "input_feed.rs"]
mod input_feed;

/// Runs server or client until done; returns the exit code.
pub fn run(opts: Options) -> Result<u8, Error> {
    // The name is resolved before the loop exists: a lookup can block for
    // seconds, and until the loop installs its handlers and takes the
    // terminal, Ctrl-C (SIGINT) simply ends it.
    let addrs = match &opts.mode {
        Mode::Client { host, port, .. } => resolve(host, *port)?,
        Mode::Server { .. } => Vec::new(),
    };
    let mut lp = Loop::new(&opts)?;
    let code = match opts.mode {
        Mode::Server { listen, port, .. } if lp.room.is_some() => lp.run_room(listen, port),
        Mode::Server { listen, port, once } => lp.run_server(listen, port, once),
        Mode::Client {
            host,
            port,
            connect_timeout,
            ..
        } => lp.run_client(&host, port, addrs, connect_timeout),
    };
    lp.display.flush();
    lp.display.leave_terminal();
    code
}

struct Loop {
    session_cfg: Config,
    poll: Poll,
    events: Events,
    signals: Signals,
    /// Wakes the loop for the nearest deadline.
    timer: Timer,
    listener: Option<TcpListener>,
    accept_ready: bool,
    accept_retry: Option<Instant>,
    /// Accepting fails (for example EMFILE); warned once per streak.
    accept_failing: bool,
    dial: Option<Dial>,
    /// The client's connect failed on every address.
    dial_failed: Option<io::Error>,
    conns: Slab<Conn>,
    /// The connection whose chat is current (at most one).
    active: Option<usize>,
    stdin: Stdin,
    stdin_ready: bool,
    stdin_eof: bool,
    /// stdin reported a hang-up (its writer closed): read to end of file.
    stdin_hangup: bool,
    /// Reading stdin failed (say, it is a directory): the chat ends, and
    /// so does duet, with this error.
    stdin_failed: Option<io::Error>,
    stdin_buf: Box<[u8]>,
    /// The part of `stdin_buf` read but not split yet: the session stopped
    /// taking messages in the middle of a read (its queues were full).
    /// Offered again, before any new read, once it takes them again.
    stdin_unsplit: std::ops::Range<usize>,
    splitter: Splitter,
    display: Display,
    chat: Chat,
    /// This side's identity and whom it trusts; `None` with `--plain`.
    trust: Option<Trust>,
    /// A client's `HOST:PORT` as typed, the name known_peers keys on.
    target: Option<String>,
    /// A plain server's HELLO and BYE(busy), for a connection turned away
    /// when nothing more can be kept for it.
    busy_frames: Vec<u8>,
    /// The signal source reported readiness this turn.
    signal_ready: bool,
    /// The last wait did not block, or its timeout was set for a deadline
    /// (the timer could not be): deadlines are looked at after it.
    deadline_in_wait: bool,
    /// `server --room`: the room's rules; `None` one-on-one.
    room: Option<Room>,
    /// The room is closing: every session was asked to stop.
    room_stopping: bool,
    /// Room mode's state between turns: which members need the next one.
    room_work: room_loop::RoomWork,
}

/// The active connection's session, from the loop's fields (so that the
/// controller and the display can be borrowed beside it).
fn active_session(conns: &mut Slab<Conn>, active: Option<usize>) -> Option<&mut Session> {
    active.and_then(|k| conns.get_mut(k)).map(Conn::session_mut)
}

impl Loop {
    fn new(opts: &Options) -> Result<Loop, Error> {
        let io = |what| move |err| Error::Io { what, err };
        let poll = Poll::new().map_err(io("cannot create poll"))?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(io("cannot install signal handlers"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(io("cannot poll signals"))?;
        let stdin = Stdin::setup(poll.registry(), STDIN).map_err(io("cannot set up stdin"))?;
        let timer = Timer::new(poll.registry(), TIMER).map_err(io("cannot create a timer"))?;
        let limit = usize::try_from(opts.session.max_message).unwrap_or(usize::MAX);
        let (role, bench) = match opts.mode {
            Mode::Server { .. } => (Role::Server, None),
            Mode::Client { bench, .. } => (Role::Client, bench),
        };
        let color = opts.color.unwrap_or_else(terminal::color_auto);
        let mut display = Display::new(opts.format, color, opts.timestamps);
        if opts.editor
            && bench.is_none()
            && opts.format == Format::Text
            && stdin.is_terminal()
            && terminal::stdout_is_terminal()
            && !terminal::term_is_dumb()
        {
            let terminal = Terminal::enter(0).map_err(io("cannot set up the terminal"))?;
            for sig in [SIGWINCH, SIGCONT, SIGTSTP] {
                signals
                    .add_signal(sig)
                    .map_err(io("cannot install signal handlers"))?;
            }
            if terminal::stderr_is_terminal() {
                logging::capture(true);
            }
            display.set_prompt(Prompt::new(terminal), opts.bell);
        }
        let stop = StopFd::new(&[SIGINT, SIGTERM, SIGHUP]);
        display.stop_on(stop.map_err(io("cannot install signal handlers"))?);
        let mut session_cfg = opts.session.clone();
        // Plain text output can show a long message as it arrives; JSON
        // needs its length and encoding first, and the prompt whole lines.
        session_cfg.stream = opts.format == Format::Text && !display.interactive();
        let trust = Trust::load(&opts.security)?;
        let chat = Chat::new(ChatConfig {
            encrypted: trust.is_some(),
            role,
            bench,
            max_message: opts.session.max_message,
            linger: opts.session.linger,
        });
        let room = opts.room.map(|r| {
            crate::os::options::raise_nofile();
            Room::new(RoomConfig {
                name: session_cfg.name.clone(),
                max_peers: r.max_peers,
                queue_cap: QUEUE_CAP,
                join_timeout: session_cfg.handshake_timeout,
            })
        });
        let mut lp = Loop {
            room,
            room_stopping: false,
            room_work: room_loop::RoomWork::default(),
            splitter: Splitter::new(opts.input, limit),
            display,
            chat,
            session_cfg,
            poll,
            events: Events::with_capacity(64),
            signals,
            timer,
            listener: None,
            accept_ready: false,
            accept_retry: None,
            accept_failing: false,
            dial: None,
            trust,
            target: None,
            dial_failed: None,
            conns: Slab::new(),
            active: None,
            stdin_ready: stdin.kind() == StdinKind::Direct,
            stdin,
            stdin_eof: false,
            stdin_hangup: false,
            stdin_failed: None,
            stdin_buf: vec![0u8; STDIN_CHUNK].into_boxed_slice(),
            stdin_unsplit: 0..0,
            signal_ready: false,
            deadline_in_wait: false,
            busy_frames: busy_frames(&opts.session),
        };
        if lp.chat.is_bench() {
            // `duet bench`: stdin is not read; generated messages are.
            lp.stdin_eof = true;
            lp.stdin.deregister(lp.poll.registry());
        }
        Ok(lp)
    }

    // ----- server -------------------------------------------------------

    fn run_server(
        &mut self,
        listen: Option<IpLiteral>,
        port: u16,
        once: bool,
    ) -> Result<u8, Error> {
        if !self.listen(listen, port, once)? {
            // Nobody will see a chat: stdout failed, or was closed.
            return self.io_failure().map_or(Ok(exit::OK), Err);
        }
        let mut chats = 0u64;
        loop {
            let now = self.turn()?;
            if self.chat_finished(now) {
                chats += 1;
                if once {
                    self.finish_closing()?;
                    return Ok(self.chat.exit_code());
                }
            }
            if let (Some(sig), None) = (self.chat.stopped(), self.active) {
                log::info!("stopping after {chats} chats");
                return Ok(exit::signalled(sig));
            }
            let failed = self.display.is_broken() || self.stdin_failed.is_some();
            if (failed || self.chat.quitting()) && self.active.is_none() {
                self.finish_closing()?;
                return match self.io_failure() {
                    Some(e) => Err(e),
                    None => Ok(self.chat.exit_code()),
                };
            }
        }
    }

    /// Binds, registers the listener and says where it listens; false
    /// when stdout is already broken.
    fn listen(&mut self, listen: Option<IpLiteral>, port: u16, once: bool) -> Result<bool, Error> {
        let mut listener = bind(listen, port)?;
        let addr = listener.local_addr().map_err(|err| Error::Io {
            what: "cannot read the listening address",
            err,
        })?;
        self.poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|err| Error::Io {
                what: "cannot poll the listener",
                err,
            })?;
        self.listener = Some(listener);
        self.chat
            .handle_listening(addr, once, &mut self.display, Instant::now());
        // The prompt is drawn with this first line, before any event.
        self.refresh_label();
        self.display.flush();
        if self.display.is_broken() {
            return Ok(false);
        }
        log::info!("listening on {addr}");
        Ok(true)
    }

    // ----- client -------------------------------------------------------

    fn run_client(
        &mut self,
        host: &str,
        port: u16,
        addrs: Vec<SocketAddr>,
        timeout: Duration,
    ) -> Result<u8, Error> {
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let connect_failed = |err| Error::Connect {
            target: target.clone(),
            err,
        };
        self.target = Some(identity::peer_name(host, port));
        let mut dial = Dial::new(addrs, timeout, DIAL);
        if let Dialed::Failed(err) = dial.start(self.poll.registry(), Instant::now()) {
            return Err(connect_failed(err));
        }
        self.chat.handle_dialing(dial.trying());
        self.dial = Some(dial);
        // The prompt says where we are connecting before the first wait.
        if self.display.interactive() {
            self.refresh_label();
            self.display.flush();
        }
        loop {
            let now = self.turn()?;
            if let Some(err) = self.dial_failed.take() {
                return Err(connect_failed(err));
            }
            if self.dial.is_some()
                && let Some(sig) = self.chat.stopped()
            {
                // Given up while connecting.
                return Ok(exit::signalled(sig));
            }
            if self.chat_finished(now) || self.display.is_broken() {
                self.finish_closing()?;
                if let Some(e) = self.io_failure() {
                    return Err(e);
                }
                return match self.chat.take_error() {
                    Some(msg) => Err(Error::Chat {
                        msg,
                        code: self.chat.exit_code(),
                    }),
                    None => Ok(self.chat.exit_code()),
                };
            }
        }
    }

    /// Moves the connect in progress on: connected (the chat begins),
    /// failed, or still under way.
    fn advance_dial(&mut self, now: Instant) {
        let Some(dial) = self.dial.as_mut() else {
            return;
        };
        let connected = match dial.advance(self.poll.registry(), now) {
            Dialed::Pending => {
                self.chat.handle_dialing(dial.trying());
                return;
            }
            Dialed::Failed(err) => Err(err),
            Dialed::Connected(stream, addr) => self
                .add_conn(stream, addr, now, false)
                .map(|key| (key, addr)),
        };
        self.dial = None;
        self.chat.handle_dialing(None);
        match connected {
            Ok((key, addr)) => {
                // A client joins a room if the server is a room's hub.
                self.conns[key].session_mut().join_rooms();
                self.start_chat(key, addr);
            }
            Err(err) => self.dial_failed = Some(err),
        }
    }

    // ----- the turn -----------------------------------------------------

    fn add_conn(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
        busy: bool,
    ) -> io::Result<usize> {
        let transport = match &self.trust {
            Some(trust) => {
                let role = match self.listener {
                    Some(_) => transport::Role::Responder,
                    None => transport::Role::Initiator,
                };
                let t = Transport::new(role, trust.private_key())
                    .map_err(|e| io::Error::other(e.to_string()))?;
                Some(t)
            }
            None => None,
        };
        let kind = match (busy, &self.room) {
            (true, _) => ConnKind::Busy,
            (false, Some(_)) => ConnKind::Member,
            (false, None) => ConnKind::Chat,
        };
        let mut conn = Conn::new(stream, peer, self.session_cfg.clone(), now, kind, transport)?;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            conn.stream_mut(),
            Token(FIRST_CONN + key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(conn);
        if self.room.is_some() {
            self.room_work.activity.mark(key);
        }
        Ok(key)
    }

    fn start_chat(&mut self, key: usize, peer: SocketAddr) {
        self.active = Some(key);
        self.chat.handle_chat_start(peer);
    }

    /// Waits up to `timeout`, takes what became ready (readiness flags,
    /// each connection's event, a room member marked when `room`), then
    /// handles signals and accepts. Returns the turn's clock and, when the
    /// timer fired, the instant its deadlines count as reached (one that
    /// moved a little later since the timer was set counts, see `timer`).
    #[inline(always)]
    pub(super) fn wait(
        &mut self,
        timeout: Option<Duration>,
        room: bool,
    ) -> Result<(Clock, Option<Instant>), Error> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(Error::Io {
                    what: "poll failed",
                    err,
                });
            }
        }
        let mut clock = Clock::unread();
        let mut due = None;
        for ev in self.events.iter() {
            match ev.token() {
                LISTENER => self.accept_ready = true,
                STDIN => {
                    self.stdin_ready = true;
                    self.stdin_hangup |= ev.is_read_closed() || ev.is_error();
                }
                SIGNALS => self.signal_ready = true,
                TIMER => {
                    let now = clock.now();
                    due = Some(now + self.timer.fired(now));
                }
                DIAL => {
                    if let Some(d) = self.dial.as_mut() {
                        d.handle_writable();
                    }
                }
                Token(t) => {
                    let key = t - FIRST_CONN;
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.handle_event(ev);
                        if room {
                            self.room_work.activity.mark(key);
                        }
                    }
                }
            }
        }
        if self.signal_ready {
            self.handle_signals(clock.now());
        }
        if self.accept_ready && self.accept_retry.is_none_or(|t| clock.now() >= t) {
            self.accept_retry = None;
            self.accept_all(clock.now());
        }
        Ok((clock, due))
    }

    /// One poll and everything it makes ready. Returns the turn's `now`.
    fn turn(&mut self) -> Result<Instant, Error> {
        let timeout = self.wait_timeout();
        let (mut clock, due) = self.wait(timeout, false)?;
        // Session deadlines are only looked at when the timer fired, when
        // the wait's timeout was set for one because the timer could not
        // be, or after a wait that did not block: the timer is always set
        // for the earliest of them.
        let deadlines = self.deadline_in_wait || due.is_some();
        if self.dial.is_some() && self.chat.stopped().is_none() {
            self.advance_dial(clock.now());
        }
        for (_, conn) in self.conns.iter_mut() {
            conn.ready(&mut clock);
        }
        if self.trust.is_some() {
            self.check_keys(clock.now());
        }
        if self.active.is_none() && self.listener.is_some() && !self.conns.is_empty() {
            self.show_failed_greetings(clock.now());
            self.grant_chat(clock.now());
        }
        if self.chat.is_bench() {
            if let Some(s) = active_session(&mut self.conns, self.active) {
                self.chat.feed_bench(s, clock.now());
            }
            self.flush_active(&mut clock);
        } else {
            self.read_stdin(&mut clock);
        }
        if deadlines {
            let due = due.unwrap_or_else(|| clock.now());
            for (_, conn) in self.conns.iter_mut() {
                conn.handle_due(due, &mut clock);
            }
        }
        let now = clock.now();
        self.show_events(now);
        self.refresh_label();
        self.display.end_turn(now);
        if self.display.is_broken() {
            // Nobody reads our output any more: leave politely.
            if let Some(conn) = self.active.and_then(|k| self.conns.get_mut(k)) {
                conn.session_mut().close(ByeReason::Normal);
                conn.ready(&mut clock);
            }
        }
        self.reap(now);
        Ok(now)
    }

    /// How long the next wait may block: not at all when there is work
    /// left; else until an event, with the timer set for the nearest
    /// deadline (if that fails, the deadline becomes the wait's timeout).
    /// The display's hold is the wait's own timeout unless holds come
    /// quickly (see `Display::hold_on_timer`).
    fn wait_timeout(&mut self) -> Option<Duration> {
        let busy_now = (self.stdin_pending() && self.wants_stdin())
            || (self.accept_ready && self.accept_retry.is_none())
            || self.conns.iter().any(|(_, c)| c.has_work());
        self.deadline_in_wait = busy_now;
        if busy_now {
            return Some(Duration::ZERO);
        }
        // The nearest deadline, folded by hand: this runs every turn.
        let mut nearest = self.accept_retry;
        let mut fold = |t: Instant| nearest = Some(nearest.map_or(t, |n| n.min(t)));
        for (_, c) in self.conns.iter() {
            c.deadlines(&mut fold);
        }
        if let Some(t) = self.dial.as_ref().and_then(Dial::deadline) {
            fold(t);
        }
        self.wait_for(nearest)
    }

    /// The wait's timeout for the nearest deadline of the sessions (or the
    /// room) and the display's: the timer is set for the first, and the
    /// display's hold is the wait's own timeout unless holds come quickly.
    /// If the timer cannot be set, its deadline becomes the timeout.
    /// Inlined: the one-on-one turn's wait runs it for every message.
    #[inline(always)]
    fn wait_for(&mut self, nearest: Option<Instant>) -> Option<Duration> {
        let (next, mut wait_until) = split_deadlines(
            nearest,
            self.display.deadline(),
            self.display.hold_on_timer(),
        );
        if let Some(next) = next
            && let Err(e) = self.timer.ensure(next)
        {
            log::debug!("timer: {}", io_msg(&e));
            wait_until = Some(wait_until.map_or(next, |t| t.min(next)));
            self.deadline_in_wait = true;
        }
        wait_until.map(|t| t.saturating_duration_since(Instant::now()))
    }

    fn handle_signals(&mut self, now: Instant) {
        self.signal_ready = false;
        let pending: Vec<i32> = self.signals.pending().collect();
        for sig in pending {
            match sig {
                SIGWINCH => self.display.resized(),
                SIGTSTP => self.suspend(),
                SIGCONT => self.display.resume_terminal(),
                _ if self.room.is_some() => {
                    log::info!("got signal {sig}");
                    self.chat.handle_stop_signal(sig, None, now);
                    self.stop_room(now);
                }
                _ => {
                    log::info!("got signal {sig}");
                    let session = active_session(&mut self.conns, self.active);
                    self.chat.handle_stop_signal(sig, session, now);
                    self.service_active(now);
                }
            }
        }
    }

    /// Writes what the input (stdin, the bench's generator) queued on the
    /// active connection, and closes it if the input ended the chat.
    fn flush_active(&mut self, clock: &mut Clock) {
        if let Some(conn) = self.active.and_then(|k| self.conns.get_mut(k)) {
            conn.flush(clock);
            conn.after_close(clock);
        }
    }

    /// After the controller changed the active session outside a read:
    /// write what it queued, and close if it ended.
    fn service_active(&mut self, now: Instant) {
        if let Some(conn) = self.active.and_then(|k| self.conns.get_mut(k)) {
            conn.ready(&mut Clock::at(now));
        }
    }

    /// Ctrl-Z or SIGTSTP: give the terminal back, stop, and on `fg` take it
    /// again and redraw.
    fn suspend(&mut self) {
        self.display.suspend_terminal();
        // SAFETY: stopping ourselves; execution resumes here on SIGCONT.
        unsafe { libc::raise(libc::SIGSTOP) };
        self.display.resume_terminal();
    }

    /// What a key in the editor asked for.
    fn handle_action(&mut self, action: Action, now: Instant) {
        if self.room.is_some() {
            return self.room_action(action, now);
        }
        let session = active_session(&mut self.conns, self.active);
        match action {
            Action::Send(line) => {
                self.chat.handle_line(line, session, &mut self.display, now);
                while let Some(Request::ReadFile { path, max }) = self.chat.poll_request() {
                    let read = read_file_message(&path, max);
                    let session = active_session(&mut self.conns, self.active);
                    self.chat
                        .handle_file(&path, read, session, &mut self.display, now);
                }
            }
            Action::Quit => self.chat.handle_quit(session, now),
            Action::Suspend => self.suspend(),
            Action::ClearScreen => self.display.clear_screen(),
        }
        self.service_active(now);
    }

    /// Gives the prompt, if there is one, its current label. Inlined: with
    /// no prompt it is one check per turn, not a call.
    #[inline(always)]
    fn refresh_label(&mut self) {
        if self.display.interactive() {
            let greeting = match self.active {
                Some(_) => None,
                None => self
                    .conns
                    .iter()
                    .find(|(_, c)| !c.session().is_closed())
                    .map(|(_, c)| c.peer()),
            };
            self.chat.handle_greeting(greeting);
            let session = self
                .active
                .and_then(|k| self.conns.get(k))
                .map(Conn::session);
            let label = self.chat.prompt_label(session);
            self.display.set_label(label);
        }
    }

    /// Renders the active session's events. A connection being turned
    /// away or closed has nothing to show; what it queued goes with it.
    fn show_events(&mut self, now: Instant) {
        if let Some(conn) = self.active.and_then(|k| self.conns.get_mut(k)) {
            self.chat
                .handle_events(conn.session_mut(), &mut self.display, now);
        }
    }

    /// After the active chat has ended: the controller shows how and
    /// decides the exit code; the connection is left to close. Returns
    /// true once for each finished chat. Asked after every turn: the
    /// common answer, "not yet", is an inlined check.
    #[inline]
    fn chat_finished(&mut self, now: Instant) -> bool {
        let ended = self
            .active
            .and_then(|k| self.conns.get(k))
            .is_some_and(|c| c.session().end().is_some());
        ended && self.end_chat(now)
    }

    #[inline(never)]
    fn end_chat(&mut self, now: Instant) -> bool {
        let Some(conn) = self.active.and_then(|k| self.conns.get_mut(k)) else {
            return false;
        };
        if !self.chat.poll_end(conn.session(), &mut self.display, now) {
            return false;
        }
        self.display.flush();
        // Its end was shown as the chat's.
        conn.take_end();
        conn.finish(now);
        self.active = None;
        true
    }

    /// Waits until every closing connection is gone (client exit, --once).
    /// Nothing new starts meanwhile: the listener is closed, connections
    /// still greeting are turned away, and a chat that is somehow under
    /// way is let end like any other.
    fn finish_closing(&mut self) -> Result<(), Error> {
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
            self.accept_ready = false;
            let greeting: Vec<usize> = self
                .conns
                .iter()
                .filter(|(k, c)| Some(*k) != self.active && !c.session().is_closed())
                .map(|(k, _)| k)
                .collect();
            let now = Instant::now();
            for key in greeting {
                self.turn_away(key, Refusal::Busy, now);
            }
        }
        while !self.conns.is_empty() {
            let now = self.turn()?;
            self.chat_finished(now);
        }
        Ok(())
    }

    /// Drops connections that finished closing.
    fn reap(&mut self, now: Instant) {
        let active = self.active;
        let done = |k: usize, c: &Conn| Some(k) != active && c.is_done(now);
        // Checked every turn; the common answer is "none".
        if !self.conns.iter().any(|(k, c)| done(k, c)) {
            return;
        }
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(k, c)| done(*k, c))
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let mut conn = self.conns.remove(key);
            if let Some(room) = self.room.as_mut() {
                room.handle_leave(key, &mut self.display, now);
            }
            let _ = self.poll.registry().deregister(conn.stream_mut());
            log::debug!("closed connection from {}", conn.peer());
        }
    }
}

/// A server's HELLO followed by BYE(busy).
fn busy_frames(cfg: &Config) -> Vec<u8> {
    use crate::core::protocol::{self, Frame, Hello};
    let mut out = Vec::new();
    protocol::encode(
        &Frame::Hello(Hello {
            version: protocol::VERSION,
            max_message: cfg.max_message,
            name: &cfg.name,
        }),
        &mut out,
    );
    protocol::encode(
        &Frame::Bye {
            reason: ByeReason::Busy,
            detail: b"",
        },
        &mut out,
    );
    out
}

/// The deadline for the loop's timer and the wait's own timeout, from the
/// nearest deadline of the sessions and the loop, and the display's hold
/// (on the timer only when holds come quickly).
fn split_deadlines(
    next: Option<Instant>,
    hold: Option<Instant>,
    hold_on_timer: bool,
) -> (Option<Instant>, Option<Instant>) {
    match hold {
        Some(hold) if hold_on_timer => (Some(next.map_or(hold, |t| t.min(hold))), None),
        _ => (next, hold),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_display_hold_goes_on_the_timer_only_when_told() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let (heartbeat, hold) = (Some(t + ms(5_000)), Some(t + ms(10)));
        assert_eq!(split_deadlines(heartbeat, hold, false), (heartbeat, hold));
        assert_eq!(split_deadlines(heartbeat, hold, true), (hold, None));
        assert_eq!(split_deadlines(None, hold, true), (hold, None));
        // A session deadline before the hold stays the timer's.
        let soon = Some(t + ms(1));
        assert_eq!(split_deadlines(soon, hold, true), (soon, None));
        assert_eq!(split_deadlines(heartbeat, None, true), (heartbeat, None));
        assert_eq!(split_deadlines(None, None, false), (None, None));
    }
}
