//! The one event loop: a single thread and a single `mio::Poll` that owns
//! the listener, the connections, stdin and the signal source.
//!
//! This is the only module that uses mio, and, with the display's wall-clock
//! stamps and `timer`, the only one that reads the clock: once per turn
//! when first needed, again right after each socket read and right before
//! each write that starts a message (where RTTs end and begin; see
//! `Clock`), and when the timer is set or the display holds output. Each
//! turn:
//! 1. wait for readiness; the nearest deadline is a timerfd in the same
//!    poll set (`timer`), set again only when a deadline comes earlier;
//! 2. for each connection with readiness: read until it is drained (or until
//!    the session pushes back), hand the bytes to the session, and flush its
//!    outbox at once, so acknowledgments leave before any display work;
//! 3. read stdin into messages (or editor keys) for the open session, and
//!    flush again;
//! 4. fire deadlines, then render every queued event and write stdout once
//!    (with the interactive prompt redrawn after it).
//!
//! Readiness is kept as state (`readable`, `writable`) and cleared only when
//! a source is drained: `WouldBlock`, or, on Linux's edge-triggered epoll, a
//! read shorter than the space offered (new data raises a new edge; a
//! reported hang-up is read through to end of file). A source we stopped
//! reading for backpressure is resumed without waiting for another edge.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGCONT, SIGHUP, SIGINT, SIGTERM, SIGTSTP, SIGWINCH};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::core::editor::Action;
use crate::core::escape;
use crate::core::input::{InputError, InputMode, Splitter};
use crate::core::protocol::{self, ByeReason};
use crate::core::render::{Format, Line};
use crate::core::session::{Config, End, Event, InputRefused, Session, SessionError};
use crate::os::addr::IpLiteral;
use crate::os::buf::ReadBuf;
use crate::os::display::{Display, Prompt};
use crate::os::logging;
use crate::os::stdin::{Stdin, StdinKind};
use crate::os::terminal::{self, Terminal};
use crate::os::timer::Timer;

const LISTENER: Token = Token(0);
const STDIN: Token = Token(1);
const SIGNALS: Token = Token(2);
const TIMER: Token = Token(3);
/// Connection tokens are this plus the connection's slab key.
const FIRST_CONN: usize = 4;

/// Receive buffer size: one maximal frame plus room to read ahead.
const READ_BUF: usize = 2 * (protocol::HEADER_LEN + protocol::MAX_BODY);
/// Receive buffer of a connection turned away as busy (input discarded).
const BUSY_READ_BUF: usize = 4096;
/// Connections being turned away or closed at once, beyond which new
/// arrivals during a chat are closed without HELLO and BYE.
const MAX_CLOSING: usize = 64;
/// Bytes read from stdin per `read` call.
const STDIN_CHUNK: usize = 64 * 1024;
/// Reads of stdin per loop turn before the sockets get their turn.
const STDIN_READS_PER_TURN: u32 = 16;
/// How long a finished connection may take to close after our BYE.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long a stop signal waits for the last acknowledgments.
const STOP_GRACE: Duration = Duration::from_secs(1);
/// Back-off before accepting again after an error such as EMFILE.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Exit codes (documented in `--help` and the README).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNDELIVERED: u8 = 3;
    pub const BUSY: u8 = 4;
}

/// Server or client, with their own settings.
#[derive(Debug, Clone)]
pub enum Mode {
    Server {
        listen: Option<IpLiteral>,
        port: u16,
        once: bool,
    },
    Client {
        host: String,
        port: u16,
        connect_timeout: Duration,
        /// Send generated messages instead of reading stdin.
        bench: Option<BenchSpec>,
    },
}

/// What `duet bench` sends.
#[derive(Debug, Clone, Copy)]
pub struct BenchSpec {
    pub count: u64,
    pub size: usize,
    /// Most messages unacknowledged at once (1 = stop-and-wait).
    pub window: u64,
}

/// `duet bench` in progress: a message generator in place of stdin.
struct Bench {
    spec: BenchSpec,
    payload: Vec<u8>,
    queued: u64,
}

/// Everything the loop needs from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// What every connection's session announces and enforces.
    pub session: Config,
    pub format: Format,
    pub input: InputMode,
    /// Use the line editor when stdin and stdout are terminals.
    pub editor: bool,
    /// `Some(on)` forces colour on or off; `None` decides from the terminal.
    pub color: Option<bool>,
    pub timestamps: bool,
}

/// A failure of the program as a whole, shown as one line.
#[derive(Debug)]
pub enum Error {
    Resolve {
        host: String,
        err: io::Error,
    },
    Connect {
        target: String,
        err: io::Error,
    },
    Bind {
        addr: SocketAddr,
        err: io::Error,
    },
    Io {
        what: &'static str,
        err: io::Error,
    },
    /// The chat ended badly (protocol error, connection lost, busy); the
    /// exit code tells which.
    Chat {
        msg: String,
        code: u8,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Chat { code, .. } => *code,
            _ => exit::FAILURE,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Resolve { host, err } => write!(f, "cannot resolve {host}: {}", io_msg(err)),
            Error::Connect { target, err } => {
                write!(f, "cannot connect to {target}: {}", io_msg(err))
            }
            Error::Bind { addr, err } => write!(f, "cannot listen on {addr}: {}", io_msg(err)),
            Error::Io { what, err } => write!(f, "{what}: {}", io_msg(err)),
            Error::Chat { msg, .. } => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

/// An `io::Error` as a short lower-case phrase, without "(os error N)".
pub fn io_msg(err: &io::Error) -> String {
    let s = match err.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset => "connection reset by peer".to_string(),
        ErrorKind::AddrInUse => "address already in use".to_string(),
        ErrorKind::TimedOut => "timed out".to_string(),
        ErrorKind::BrokenPipe => "broken pipe".to_string(),
        _ => err.to_string(),
    };
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// Runs server or client until done; returns the exit code.
pub fn run(opts: Options) -> Result<u8, Error> {
    // The name is resolved before the loop exists: a lookup can block for
    // seconds, and until the loop installs its handlers and takes the
    // terminal, Ctrl-C (SIGINT) simply ends it.
    let addrs = match &opts.mode {
        Mode::Client { host, port, .. } => resolve(host, *port)?,
        Mode::Server { .. } => Vec::new(),
    };
    let mut lp = Loop::new(opts)?;
    let code = match lp.opts.mode.clone() {
        Mode::Server { listen, port, once } => lp.run_server(listen, port, once),
        Mode::Client {
            host,
            port,
            connect_timeout,
            bench,
        } => {
            if let Some(spec) = bench {
                lp.start_bench(spec);
            }
            lp.run_client(&host, port, addrs, connect_timeout)
        }
    };
    lp.display.flush();
    lp.display.leave_terminal();
    code
}

/// The addresses `host` stands for: an IP literal's one (its zone turned
/// into an interface index), else what the system's resolver says.
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, Error> {
    let resolved = match host.parse::<IpLiteral>() {
        Ok(lit) => lit.socket_addr(port).map(|addr| vec![addr]),
        Err(_) => (host, port).to_socket_addrs().map(Iterator::collect),
    };
    resolved.map_err(|err| Error::Resolve {
        host: host.to_string(),
        err,
    })
}

/// One TCP connection and its chat.
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    peer_name: Vec<u8>,
    rbuf: ReadBuf,
    session: Session,
    readable: bool,
    writable: bool,
    /// The `TCP_NOTSENT_LOWAT` set on the socket.
    kernel_unsent: usize,
    /// Set when the chat is over: finish flushing, shut down our side, and
    /// drop the connection at the peer's EOF or at this deadline.
    closing: Option<Instant>,
    shut_down: bool,
    eof: bool,
    /// The peer's FIN or an error was reported: read until read says so,
    /// even after a short read.
    hangup: bool,
}

/// A turn's reading of the clock. `Instant::now()` costs about 25 ns on
/// these machines, some 0.4% of a one-CPU round trip each time, so a turn
/// reads the clock when something first needs the time, and again only
/// where the time is itself the measurement: right after a socket read
/// (where an RTT ends) and right before a write that starts a message
/// (where one begins), and before each further write of a transfer (where
/// the session times the drain rate and the write progress that the stall
/// deadline counts from). Everything else in the turn
/// shares the latest reading: a receiver reads the clock once per small
/// message, a sender twice.
struct Clock(Option<Instant>);

impl Clock {
    /// Nothing read yet.
    fn unread() -> Clock {
        Clock(None)
    }

    /// A reading the caller already has.
    fn at(now: Instant) -> Clock {
        Clock(Some(now))
    }

    /// The latest reading; the first call reads the clock.
    fn now(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }

    /// A fresh reading, which later calls share.
    fn read(&mut self) -> Instant {
        *self.0.insert(Instant::now())
    }
}

struct Loop {
    opts: Options,
    poll: Poll,
    events: Events,
    signals: Signals,
    /// Wakes the loop for the nearest deadline.
    timer: Timer,
    /// The first stop signal received, and whether we are already stopping.
    stop: Option<i32>,
    listener: Option<TcpListener>,
    listen_addr: Option<SocketAddr>,
    accept_ready: bool,
    accept_retry: Option<Instant>,
    /// Accepting fails (for example EMFILE); warned once per streak.
    accept_failing: bool,
    conns: Slab<Conn>,
    /// The connection whose chat is current (server: at most one).
    active: Option<usize>,
    stdin: Stdin,
    stdin_ready: bool,
    stdin_eof: bool,
    stdin_buf: Box<[u8]>,
    splitter: Splitter,
    display: Display,
    /// Exit code of the last finished chat.
    last_code: u8,
    /// A finished chat's failure, reported by the client as its error.
    last_error: Option<String>,
    bench: Option<Bench>,
    /// The signal source reported readiness this turn.
    signal_ready: bool,
    /// The address a client is connecting to, for the prompt's label.
    connecting: Option<SocketAddr>,
    /// stdin reported a hang-up (its writer closed): read to end of file.
    stdin_hangup: bool,
    /// The person asked to leave (Ctrl-D, Ctrl-C, /quit).
    quit: bool,
}

impl Loop {
    fn new(mut opts: Options) -> Result<Loop, Error> {
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
        let mut display = Display::new(opts.format);
        display.style.color = opts.color.unwrap_or_else(terminal::color_auto);
        display.timestamps = opts.timestamps;
        let is_bench = matches!(opts.mode, Mode::Client { bench: Some(_), .. });
        // SAFETY: isatty only inspects the descriptor.
        let stdout_tty = unsafe { libc::isatty(1) } == 1;
        if opts.editor
            && !is_bench
            && opts.format == Format::Text
            && stdin.is_terminal()
            && stdout_tty
            && !terminal::term_is_dumb()
        {
            let terminal = Terminal::enter(0).map_err(io("cannot set up the terminal"))?;
            for sig in [SIGWINCH, SIGCONT, SIGTSTP] {
                signals
                    .add_signal(sig)
                    .map_err(io("cannot install signal handlers"))?;
            }
            // SAFETY: isatty only inspects the descriptor.
            if unsafe { libc::isatty(2) } == 1 {
                logging::capture(true);
            }
            display.prompt = Some(Prompt::new(terminal));
        }
        // Plain text output can show a long message as it arrives; JSON
        // needs its length and encoding first, and the prompt whole lines.
        opts.session.stream = opts.format == Format::Text && display.prompt.is_none();
        Ok(Loop {
            splitter: Splitter::new(opts.input, limit),
            display,
            opts,
            poll,
            events: Events::with_capacity(64),
            signals,
            timer,
            stop: None,
            listener: None,
            listen_addr: None,
            accept_ready: false,
            accept_retry: None,
            accept_failing: false,
            conns: Slab::new(),
            active: None,
            stdin_ready: stdin.kind() == StdinKind::Direct,
            stdin,
            stdin_eof: false,
            stdin_buf: vec![0u8; STDIN_CHUNK].into_boxed_slice(),
            last_code: exit::OK,
            last_error: None,
            bench: None,
            signal_ready: false,
            connecting: None,
            stdin_hangup: false,
            quit: false,
        })
    }

    // ----- server -------------------------------------------------------

    fn run_server(
        &mut self,
        listen: Option<IpLiteral>,
        port: u16,
        once: bool,
    ) -> Result<u8, Error> {
        let listener = bind(listen, port)?;
        let addr = listener.local_addr().map_err(|err| Error::Io {
            what: "cannot read the listening address",
            err,
        })?;
        self.listener = Some(listener);
        self.listen_addr = Some(addr);
        if let Some(l) = self.listener.as_mut() {
            self.poll
                .registry()
                .register(l, LISTENER, Interest::READABLE)
                .map_err(|err| Error::Io {
                    what: "cannot poll the listener",
                    err,
                })?;
        }
        self.display.show(&Line::Listening { addr }, Instant::now());
        // The prompt is drawn with this first line, before any event.
        self.refresh_label();
        self.display.flush();
        log::info!("listening on {addr}");
        let mut chats = 0u64;
        loop {
            let now = self.turn()?;
            if self.chat_finished(now) {
                chats += 1;
                if once {
                    self.finish_closing()?;
                    return Ok(self.last_code);
                }
            }
            if let (Some(sig), None) = (self.stop, self.active) {
                log::info!("stopping after {chats} chats");
                return Ok(128 + sig as u8);
            }
            if self.quit && self.active.is_none() {
                return Ok(self.last_code);
            }
            if self.display.broken {
                return Ok(self.last_code);
            }
        }
    }

    fn accept_all(&mut self, now: Instant) {
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
            let busy = self.active.is_some();
            if busy && self.conns.len() > MAX_CLOSING {
                // Too many already being turned away: no courtesy, just close.
                log::debug!("dropped {peer}: busy, and {MAX_CLOSING} others are closing");
                continue;
            }
            match self.add_conn(stream, peer, now, busy) {
                Ok(key) if busy => {
                    log::info!("turned away {peer}: busy with another chat");
                    let conn = &mut self.conns[key];
                    conn.closing = Some(now + CLOSE_GRACE);
                    service_conn(conn, &mut Clock::at(now));
                }
                Ok(key) => {
                    log::info!("accepted {peer}");
                    self.active = Some(key);
                }
                Err(e) => log::warn!("cannot set up connection from {peer}: {}", io_msg(&e)),
            }
        }
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
        let mut last_err = io::Error::new(ErrorKind::NotFound, "no addresses");
        let mut connected = None;
        for addr in addrs {
            match self.connect(addr, timeout) {
                Ok(stream) => {
                    connected = Some((stream, addr));
                    break;
                }
                Err(ConnectError::Stopped(sig)) => return Ok(128 + sig as u8),
                Err(ConnectError::Io(e)) => {
                    log::info!("cannot connect to {addr}: {}", io_msg(&e));
                    last_err = e;
                }
            }
        }
        let Some((stream, addr)) = connected else {
            return Err(Error::Connect {
                target,
                err: last_err,
            });
        };
        log::info!("connected to {addr}");
        let now = Instant::now();
        let key = self
            .add_conn(stream, addr, now, false)
            .map_err(|err| Error::Io {
                what: "cannot set up the connection",
                err,
            })?;
        self.active = Some(key);
        loop {
            let now = self.turn()?;
            if self.chat_finished(now) || self.display.broken {
                self.finish_closing()?;
                return match self.last_error.take() {
                    Some(msg) => Err(Error::Chat {
                        msg,
                        code: self.last_code,
                    }),
                    None => Ok(self.last_code),
                };
            }
        }
    }

    /// A nonblocking connect, done when the socket is writable, has no
    /// pending error and has a peer address.
    fn connect(&mut self, addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
        let mut stream = TcpStream::connect(addr)?;
        let token = Token(FIRST_CONN + self.conns.vacant_key());
        self.poll
            .registry()
            .register(&mut stream, token, Interest::WRITABLE)?;
        let deadline = Instant::now() + timeout;
        self.connecting = Some(addr);
        if self.display.prompt.is_some() {
            self.refresh_label();
            self.display.flush();
        }
        let result = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(io::Error::new(ErrorKind::TimedOut, "timed out").into());
            }
            match self.poll.poll(&mut self.events, Some(left)) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(e.into()),
                Ok(()) => {}
            }
            let mut writable = false;
            for ev in self.events.iter() {
                match ev.token() {
                    SIGNALS => self.signal_ready = true,
                    STDIN => {
                        self.stdin_ready = true;
                        self.stdin_hangup |= ev.is_read_closed() || ev.is_error();
                    }
                    t if t == token => writable = true,
                    _ => {}
                }
            }
            let now = Instant::now();
            if self.signal_ready {
                // A resize or Ctrl-Z is handled, not taken for a stop.
                self.handle_signals(now);
            }
            if self.display.prompt.is_some() {
                // Keys work while we wait: the draft can be typed, and
                // Ctrl-C or Ctrl-D gives up at once.
                self.read_stdin(&mut Clock::at(now));
                // With a prompt, `end_turn` would flush too; calling it here
                // as well would cost the turn its inlined copy.
                self.display.flush();
                if self.quit {
                    self.stop.get_or_insert(SIGINT);
                }
            }
            if let Some(sig) = self.stop {
                break Err(ConnectError::Stopped(sig));
            }
            if !writable {
                continue;
            }
            if let Some(e) = stream.take_error()? {
                break Err(e.into());
            }
            match stream.peer_addr() {
                Ok(_) => break Ok(()),
                Err(e) if e.kind() == ErrorKind::NotConnected => continue,
                Err(e) => break Err(e.into()),
            }
        };
        self.connecting = None;
        let _ = self.poll.registry().deregister(&mut stream);
        result.map(|()| stream)
    }

    // ----- the turn -----------------------------------------------------

    fn add_conn(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
        busy: bool,
    ) -> io::Result<usize> {
        stream.set_nodelay(true)?;
        let mut session = Session::new(self.opts.session.clone(), now);
        // Unsent bytes the kernel may hold: small, so that an ack or PONG
        // we queue does not wait behind megabytes of a large message
        // already handed over; raised with the session's queue limit on a
        // fast path (`flush_conn`).
        let kernel_unsent = session.kernel_unsent_limit();
        set_notsent_lowat(&stream, kernel_unsent)?;
        // A connection turned away only has its input discarded: a small
        // buffer keeps a flood of them cheap.
        let rbuf = ReadBuf::with_capacity(if busy { BUSY_READ_BUF } else { READ_BUF });
        if busy {
            session.close(ByeReason::Busy);
        }
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        self.poll.registry().register(
            &mut stream,
            Token(FIRST_CONN + key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        entry.insert(Conn {
            stream,
            peer,
            // Until the peer says its name in HELLO.
            peer_name: b"peer".to_vec(),
            rbuf,
            session,
            readable: false,
            writable: true,
            kernel_unsent,
            closing: None,
            shut_down: false,
            eof: false,
            hangup: false,
        });
        Ok(key)
    }

    /// One poll and everything it makes ready. Returns the turn's `now`.
    fn turn(&mut self) -> Result<Instant, Error> {
        let timeout = self.wait_timeout();
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
        // Woken by the timer, a deadline that moved a little later since it
        // was set counts as reached (see `timer`). Session deadlines are
        // only looked at when the timer fired or the wait had a timeout of
        // its own: the timer is always set for the earliest of them, or
        // else the wait's timeout is.
        let mut due = None;
        let mut deadlines = timeout.is_some();
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
                    deadlines = true;
                }
                Token(t) => {
                    if let Some(conn) = self.conns.get_mut(t - FIRST_CONN) {
                        // Errors and hang-ups surface through read().
                        conn.readable |= ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        conn.hangup |= ev.is_read_closed() || ev.is_error();
                        conn.writable |= ev.is_writable() || ev.is_error();
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
        for (_, conn) in self.conns.iter_mut() {
            service_conn(conn, &mut clock);
        }
        if self.bench.is_some() {
            self.feed_bench(clock.now());
        } else {
            self.read_stdin(&mut clock);
        }
        if let Some(conn) = self.active.and_then(|k| self.conns.get_mut(k)) {
            flush_conn(conn, &mut clock);
        }
        if deadlines {
            let due = due.unwrap_or_else(|| clock.now());
            for (_, conn) in self.conns.iter_mut() {
                if conn.session.poll_timeout().is_some_and(|t| due >= t) {
                    conn.session.handle_timeout(due);
                    service_conn(conn, &mut clock);
                }
            }
        }
        let now = clock.now();
        self.show_events(now);
        self.refresh_label();
        self.display.end_turn(now);
        if self.display.broken {
            // Nobody reads our output any more: leave politely.
            if let Some(conn) = self.active.and_then(|k| self.conns.get_mut(k)) {
                conn.session.close(ByeReason::Normal);
                service_conn(conn, &mut clock);
            }
        }
        self.reap(now);
        Ok(now)
    }

    /// How long the next wait may block: not at all when there is work
    /// left; else until an event, with the timer set for the nearest
    /// deadline (if that fails, the deadline becomes the wait's timeout).
    /// The display's 10 ms hold is the wait's own timeout unless holds
    /// come quickly (see `Display::hold_on_timer`): it starts afresh with
    /// nearly every message a piped client sends, and a slow sender's
    /// holds would each cost a timer that fires early.
    fn wait_timeout(&mut self) -> Option<Duration> {
        let busy_now = (self.stdin_ready && !self.stdin_eof && self.wants_stdin())
            || (self.accept_ready && self.accept_retry.is_none())
            || self
                .conns
                .iter()
                .any(|(_, c)| c.readable && (c.session.wants_peer_bytes() || c.closing.is_some()));
        if busy_now {
            return Some(Duration::ZERO);
        }
        let deadlines = self
            .conns
            .iter()
            .flat_map(|(_, c)| [c.session.poll_timeout(), c.closing].into_iter().flatten());
        let (next, mut wait_until) = split_deadlines(
            deadlines.chain(self.accept_retry).min(),
            self.display.deadline(),
            self.display.hold_on_timer(),
        );
        if let Some(next) = next
            && let Err(e) = self.timer.ensure(next)
        {
            log::debug!("timer: {}", io_msg(&e));
            wait_until = Some(wait_until.map_or(next, |t| t.min(next)));
        }
        wait_until.map(|t| t.saturating_duration_since(Instant::now()))
    }

    fn handle_signals(&mut self, now: Instant) {
        self.signal_ready = false;
        let pending: Vec<i32> = self.signals.pending().collect();
        for sig in pending {
            match sig {
                SIGWINCH => {
                    self.display.resized();
                    continue;
                }
                SIGTSTP => {
                    self.suspend();
                    continue;
                }
                SIGCONT => {
                    self.resume();
                    continue;
                }
                _ => {}
            }
            log::info!("got signal {sig}");
            let again = self.stop.is_some();
            self.stop.get_or_insert(sig);
            let Some(conn) = self.active.and_then(|k| self.conns.get_mut(k)) else {
                continue;
            };
            if again {
                conn.session.close(ByeReason::Normal);
            } else {
                conn.session
                    .handle_stop(now, STOP_GRACE.min(self.opts.session.linger));
            }
            service_conn(conn, &mut Clock::at(now));
        }
    }

    /// What a key in the editor asked for.
    fn handle_action(&mut self, action: Action, now: Instant) {
        match action {
            Action::Send(line) => self.send_typed(line, now),
            Action::Quit => {
                let again = std::mem::replace(&mut self.quit, true);
                let is_client = matches!(self.opts.mode, Mode::Client { .. });
                if let Some(conn) = self.active.and_then(|k| self.conns.get_mut(k)) {
                    if again {
                        // Asked twice: stop waiting for acks.
                        conn.session.close(ByeReason::Normal);
                    } else if is_client && conn.session.handshake_done() {
                        conn.session.handle_input_end(now);
                    } else {
                        // Before the handshake there is nothing to wait for.
                        conn.session
                            .handle_stop(now, STOP_GRACE.min(self.opts.session.linger));
                    }
                    service_conn(conn, &mut Clock::at(now));
                }
            }
            Action::Suspend => self.suspend(),
            Action::ClearScreen => {
                self.display.clear_screen();
            }
        }
    }

    /// A line typed in the editor: a command, or a message.
    fn send_typed(&mut self, line: Vec<u8>, now: Instant) {
        let (msg, what): (Vec<u8>, Option<String>) = match line.strip_prefix(b"/") {
            Some(rest) if rest.starts_with(b"/") => (rest.to_vec(), None),
            Some(b"quit") => return self.handle_action(Action::Quit, now),
            Some(b"stats") => {
                let stats = self
                    .active
                    .and_then(|k| self.conns.get(k))
                    .map(|c| (c.peer_name.clone(), c.session.stats()));
                match stats {
                    Some((peer, stats)) => self.display.show(
                        &Line::Summary {
                            peer: &peer,
                            stats: &stats,
                        },
                        now,
                    ),
                    None => self.display.show(
                        &Line::Error {
                            message: "no chat in progress",
                        },
                        now,
                    ),
                }
                return;
            }
            Some(rest) if rest == b"send" || rest.starts_with(b"send ") => {
                let path = String::from_utf8_lossy(&rest[4..]).trim().to_string();
                match read_file_message(&path, self.opts.session.max_message) {
                    Ok(data) => {
                        let what = format!("/send {path} ({} bytes)", data.len());
                        (data, Some(what))
                    }
                    Err(refused) => {
                        // Too large, it counts as refused, and an open
                        // session reports it among its events.
                        let reported = matches!(refused, FileRefused::TooLarge(_))
                            && self
                                .active
                                .and_then(|k| self.conns.get_mut(k))
                                .is_some_and(|c| c.session.handle_input_skipped());
                        if !reported {
                            let message = refused.to_string();
                            self.display.show(&Line::Error { message: &message }, now);
                        }
                        return;
                    }
                }
            }
            Some(_) => {
                let message =
                    "unknown command (try /quit, /stats, /send PATH; // sends a leading /)";
                self.display.show(&Line::Error { message }, now);
                return;
            }
            None => (line, None),
        };
        let session = self
            .active
            .and_then(|k| self.conns.get_mut(k))
            .map(|c| &mut c.session);
        // Still connecting, or connected and waiting for the peer's HELLO.
        let connecting = self.connecting.is_some()
            || session
                .as_ref()
                .is_some_and(|s| !s.handshake_done() && !s.is_closed());
        let echo = what.as_ref().map_or(&msg[..], |w| w.as_bytes()).to_vec();
        match session.map(|s| s.handle_input(Cow::Owned(msg), now)) {
            Some(Ok(id)) => self.display.echo_sent(id, &echo),
            Some(Err(InputRefused::TooLarge { .. })) => {} // the session reports it
            None | Some(Err(InputRefused::NotOpen)) => {
                let message = if connecting {
                    "not sent: not connected yet"
                } else {
                    "not sent: nobody is connected"
                };
                self.display.show(&Line::Error { message }, now);
            }
        }
    }

    /// Ctrl-Z or SIGTSTP: give the terminal back, stop, and on `fg` take it
    /// again and redraw.
    fn suspend(&mut self) {
        self.display.suspend_terminal();
        // SAFETY: stopping ourselves; execution resumes here on SIGCONT.
        unsafe { libc::raise(libc::SIGSTOP) };
        self.resume();
    }

    fn resume(&mut self) {
        self.display.resume_terminal();
    }

    /// Gives the prompt, if there is one, its current label. Inlined: with
    /// no prompt it is one check per turn, not a call.
    #[inline(always)]
    fn refresh_label(&mut self) {
        if self.display.prompt.is_some() {
            let label = self.prompt_label();
            self.display.set_label(label);
        }
    }

    /// The prompt's label: who we are talking to and what is pending.
    fn prompt_label(&self) -> String {
        let conn = self.active.and_then(|k| self.conns.get(k));
        match conn {
            Some(c) if c.session.is_open() => match c.session.outstanding() {
                0 => "> ".to_string(),
                n => format!("({n} unacked) > "),
            },
            Some(_) => "(connecting) > ".to_string(),
            None if let Some(addr) = self.connecting => format!("(connecting to {addr}) > "),
            None if self.listener.is_some() => "(nobody connected) > ".to_string(),
            None => "(chat ended) > ".to_string(),
        }
    }

    /// `duet bench`: stdin is not read; generated messages are.
    fn start_bench(&mut self, spec: BenchSpec) {
        self.stdin_eof = true;
        self.stdin.deregister(self.poll.registry());
        self.display.per_message = false;
        self.bench = Some(Bench {
            spec,
            payload: (0..spec.size).map(|i| b'a' + (i % 26) as u8).collect(),
            queued: 0,
        });
    }

    /// Offers generated messages while the window and the session allow;
    /// after the last, waits for the acks as a client does at end of input.
    fn feed_bench(&mut self, now: Instant) {
        let (Some(b), Some(conn)) = (
            self.bench.as_mut(),
            self.active.and_then(|k| self.conns.get_mut(k)),
        ) else {
            return;
        };
        let s = &mut conn.session;
        while b.queued < b.spec.count && s.outstanding() < b.spec.window && s.wants_input() {
            if s.handle_input(Cow::Borrowed(&b.payload), now).is_err() {
                // Larger than the server accepts: every message would be
                // refused the same way, so the run ends (exit status 3).
                b.queued = b.spec.count;
                break;
            }
            b.queued += 1;
        }
        if b.queued == b.spec.count && s.is_open() {
            s.handle_input_end(now);
        }
    }

    fn wants_stdin(&self) -> bool {
        if self.display.prompt.is_some() {
            // Keys are always read: Ctrl-C must work while acks are awaited,
            // and a person's typing is no flood to push back on.
            return true;
        }
        match self.active.and_then(|k| self.conns.get(k)) {
            Some(c) => c.session.wants_input(),
            // A server with nobody connected: a line typed on a terminal
            // is read and dropped, with a notice; piped input waits in its
            // pipe (or file) for the next client.
            None => self.listener.is_some() && self.stdin.is_terminal(),
        }
    }

    /// Reads stdin if it is ready and wanted. The check is inlined into
    /// its callers (the turn and the connect wait): most turns have
    /// nothing to read, and a call would cost more than the check.
    #[inline(always)]
    fn read_stdin(&mut self, clock: &mut Clock) {
        if self.stdin_ready && !self.stdin_eof && self.wants_stdin() {
            self.read_stdin_now(clock);
        }
    }

    fn read_stdin_now(&mut self, clock: &mut Clock) {
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
                    let msg = format!("cannot read stdin: {}", io_msg(&e));
                    self.display
                        .show(&Line::Error { message: &msg }, clock.now());
                    0
                }
            };
            let now = clock.now();
            if self.display.prompt.is_some() {
                if n == 0 {
                    // The terminal hung up.
                    self.stdin_eof = true;
                    self.stdin.deregister(self.poll.registry());
                    self.handle_action(Action::Quit, now);
                    return;
                }
                let actions = self.display.handle_keys(&self.stdin_buf[..n]);
                for action in actions {
                    self.handle_action(action, now);
                }
                if n < self.stdin_buf.len() {
                    self.stdin_ready = false;
                    return;
                }
                continue;
            }
            let Loop {
                splitter,
                stdin_buf,
                conns,
                active,
                display,
                ..
            } = self;
            let mut session = active
                .and_then(|k| conns.get_mut(k))
                .map(|c| &mut c.session);
            let mut deliver = |rec: Result<Cow<'_, [u8]>, _>| {
                let msg = match rec {
                    Ok(m) => m,
                    Err(e) => {
                        // An open session reports it among its events.
                        if !session.as_mut().is_some_and(|s| s.handle_input_skipped()) {
                            let message = format!("not sent: {e}");
                            display.show(&Line::Error { message: &message }, now);
                        }
                        return;
                    }
                };
                let sent = session.as_mut().map(|s| s.handle_input(msg, now));
                if let None | Some(Err(InputRefused::NotOpen)) = sent {
                    let message = "not sent: nobody is connected";
                    display.show(&Line::Error { message }, now);
                }
            };
            if n == 0 {
                splitter.finish(&mut deliver);
                self.stdin_eof = true;
                self.stdin.deregister(self.poll.registry());
                log::debug!("stdin ended");
                let is_client = matches!(self.opts.mode, Mode::Client { .. });
                if let (true, Some(k)) = (is_client, self.active) {
                    self.conns[k].session.handle_input_end(now);
                }
                return;
            }
            splitter.push(&stdin_buf[..n], &mut deliver);
            if self.stdin.kind() == StdinKind::Direct {
                // One chunk per turn, so sockets are served in between.
                return;
            }
            if n < self.stdin_buf.len() && !self.stdin_hangup {
                // A short read drained the pipe or terminal: a new edge
                // comes with new bytes, so skip the read that says EAGAIN.
                self.stdin_ready = false;
                return;
            }
        }
    }

    /// Renders every queued session event.
    fn show_events(&mut self, now: Instant) {
        for (_, conn) in self.conns.iter_mut() {
            // A busy server's HELLO arrives with its BYE: no chat began.
            let refused = conn.session.end().is_some_and(turned_away);
            while let Some(ev) = conn.session.poll_event() {
                let d = &mut self.display;
                match ev {
                    Event::Connected { .. } if refused => {}
                    Event::Connected { name, .. } => {
                        // The wire allows an empty name; shown as such it
                        // would make "> hi" look like our own prompt.
                        conn.peer_name = match name {
                            [] => b"peer".to_vec(),
                            name => name.to_vec(),
                        };
                        d.show(
                            &Line::Connected {
                                peer: conn.peer,
                                name: &conn.peer_name,
                            },
                            now,
                        );
                    }
                    Event::Sent { id, len } if d.per_message => {
                        d.show(&Line::Sent { id, len }, now)
                    }
                    Event::Sent { .. } => {}
                    Event::Acked { id, len, rtt } if d.per_message => {
                        d.show(&Line::Acked { id, len, rtt }, now);
                    }
                    Event::Acked { .. } => {}
                    Event::Message {
                        id,
                        data,
                        continues: false,
                    } => {
                        let from = &conn.peer_name;
                        d.show(&Line::Message { id, from, data }, now);
                    }
                    Event::Message { id, data, .. } => {
                        d.show_part(&conn.peer_name, id, data, true, now);
                    }
                    Event::MessagePart { id, data } => {
                        d.show_part(&conn.peer_name, id, data, false, now);
                    }
                    Event::Refused { len, limit } => {
                        let message = format!(
                            "not sent: the message is {len} bytes and {} accepts at most {limit}",
                            escape::escape_to_string(&conn.peer_name)
                        );
                        d.show(&Line::Error { message: &message }, now);
                    }
                    Event::Skipped { limit } => {
                        let message = format!("not sent: {}", InputError::too_large(limit));
                        d.show(&Line::Error { message: &message }, now);
                    }
                    Event::Ended => d.cut_off(&conn.peer_name, now),
                }
            }
        }
    }

    /// After a chat has ended: show how, and the summary; remember the
    /// exit code. Returns true once for each finished chat.
    fn chat_finished(&mut self, now: Instant) -> bool {
        let Some(key) = self.active else {
            return false;
        };
        let conn = &mut self.conns[key];
        let Some(end) = conn.session.end() else {
            return false;
        };
        let stats = conn.session.stats();
        let (reason, code, error) = describe_end(end, &conn.peer_name, stats.undelivered());
        self.display.show(&Line::Closed { reason: &reason }, now);
        let peer = conn.peer_name.clone();
        if turned_away(end) {
            // No chat, so no summary: the closing line says why.
        } else if let Some(b) = &self.bench {
            let elapsed = conn.session.acked_span();
            let line = Line::Bench {
                peer: &peer,
                size: b.spec.size as u64,
                window: b.spec.window,
                elapsed,
                stats: &stats,
            };
            self.display.show(&line, now);
        } else if conn.session.handshake_done() || matches!(self.opts.mode, Mode::Client { .. }) {
            let stats = &stats;
            self.display
                .show(&Line::Summary { peer: &peer, stats }, now);
        }
        self.display.flush();
        self.last_code = match self.stop {
            Some(sig) if code == exit::OK => 128 + sig as u8,
            _ => code,
        };
        self.last_error = error;
        conn.closing.get_or_insert(now + close_grace(&conn.session));
        self.active = None;
        true
    }

    /// Waits until every closing connection is gone (client exit, --once).
    fn finish_closing(&mut self) -> Result<(), Error> {
        while !self.conns.is_empty() {
            self.turn()?;
        }
        Ok(())
    }

    /// Drops connections that finished closing.
    fn reap(&mut self, now: Instant) {
        let active = self.active;
        let done =
            |k: usize, c: &Conn| Some(k) != active && c.closing.is_some_and(|t| c.eof || now >= t);
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
            let _ = self.poll.registry().deregister(&mut conn.stream);
            log::debug!("closed connection from {}", conn.peer);
        }
    }
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

enum ConnectError {
    Io(io::Error),
    Stopped(i32),
}

impl From<io::Error> for ConnectError {
    fn from(e: io::Error) -> Self {
        ConnectError::Io(e)
    }
}

/// Reads what the connection has for its session, then flushes the
/// session's outbox. Called for every connection every turn; it does
/// nothing where there is nothing to do.
fn service_conn(conn: &mut Conn, clock: &mut Clock) {
    if conn.readable {
        read_conn(conn, clock);
    }
    flush_conn(conn, clock);
    if conn.session.is_closed() {
        if conn.closing.is_none() {
            conn.closing = Some(clock.now() + close_grace(&conn.session));
        }
        if !conn.shut_down && conn.session.poll_transmit().bytes.is_empty() {
            let _ = conn.stream.shutdown(Shutdown::Write);
            conn.shut_down = true;
        }
    }
}

/// How long to wait for the peer's FIN after the chat ends: not at all when
/// the peer is unresponsive or the connection already failed.
fn close_grace(session: &Session) -> Duration {
    match session.end() {
        Some(End::Lost(_))
        | Some(End::Failed(SessionError::Dead { .. } | SessionError::WriteStall { .. })) => {
            Duration::ZERO
        }
        _ => CLOSE_GRACE,
    }
}

/// Reads until `WouldBlock`, passing each read to the session, which may
/// push back (then `readable` stays set and we resume next turn).
fn read_conn(conn: &mut Conn, clock: &mut Clock) {
    loop {
        let open = !conn.session.is_closed();
        if open && !conn.session.wants_peer_bytes() {
            return;
        }
        match conn.rbuf.fill_from(&mut conn.stream) {
            Ok(0) => {
                conn.readable = false;
                conn.eof = true;
                conn.session.handle_eof(conn.rbuf.data().len());
                return;
            }
            Ok(_) => {
                // The clock is read right after the read, not at the start
                // of the turn: the RTT ends when the ack is decoded.
                let used = conn
                    .session
                    .handle_peer_bytes(conn.rbuf.data(), clock.read());
                conn.rbuf.consume(used);
                // The ack path: what those frames queued leaves now.
                flush_conn(conn, clock);
                if conn.rbuf.was_short() && !conn.hangup {
                    // Drained: skip the read that would only say EAGAIN.
                    conn.readable = false;
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                conn.readable = false;
                return;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                conn.readable = false;
                conn.eof = true;
                conn.session
                    .handle_lost(format!("connection lost: {}", io_msg(&e)));
                return;
            }
        }
    }
}

/// Writes the session's outbox until it is empty or the socket is full,
/// keeping the socket's `TCP_NOTSENT_LOWAT` at what the session asks for.
/// Two of the three calls per message find nothing to write (what the read
/// or the input queued has already left): that check is inlined into the
/// callers, so those calls cost no function call either.
#[inline]
fn flush_conn(conn: &mut Conn, clock: &mut Clock) {
    if conn.writable && conn.session.has_transmit() {
        write_conn(conn, clock);
    }
}

/// `flush_conn`'s writing part.
#[inline(never)]
fn write_conn(conn: &mut Conn, clock: &mut Clock) {
    let Conn {
        stream,
        session,
        writable,
        kernel_unsent,
        ..
    } = conn;
    let mut socket: &TcpStream = stream;
    flush_to(session, &mut socket, writable, clock, |session| {
        let want = session.kernel_unsent_limit();
        if want != *kernel_unsent {
            // Not fatal: the old mark only keeps the queue smaller.
            match set_notsent_lowat(stream, want) {
                Ok(()) => *kernel_unsent = want,
                Err(e) => log::debug!("TCP_NOTSENT_LOWAT: {}", io_msg(&e)),
            }
        }
    });
}

/// `write_conn`'s write loop, over any writer (the tests use one that
/// takes its time); `written` runs after each write that took bytes.
/// Inlined into its one caller: as a call of its own it cost the ack path
/// 13 instructions per message on each side.
#[inline(always)]
fn flush_to(
    session: &mut Session,
    out: &mut impl Write,
    writable: &mut bool,
    clock: &mut Clock,
    mut written: impl FnMut(&Session),
) {
    let mut writes = 0;
    while *writable {
        let tx = session.poll_transmit();
        if tx.bytes.is_empty() {
            break;
        }
        // The RTT starts when a message's first byte is handed to the
        // kernel: the clock is read just before such a write, not earlier
        // in the turn (the work of encoding a large message in this turn
        // must not count). So is it before each write after the first in
        // a row (a transfer's chunks), where the session times the drain
        // rate and the write progress that the stall deadline counts from.
        // A lone ack shares the turn's reading.
        let handed = if tx.starts_message || writes > 0 {
            clock.read()
        } else {
            clock.now()
        };
        writes += 1;
        match out.write(tx.bytes) {
            Ok(n) => {
                session.handle_written(n, handed);
                written(session);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => *writable = false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                *writable = false;
                session.handle_lost(format!("connection lost: {}", io_msg(&e)));
            }
        }
    }
}

/// Whether the peer was a server that refused us: busy with another chat.
fn turned_away(end: &End) -> bool {
    matches!(
        end,
        End::Peer {
            reason: ByeReason::Busy,
            ..
        }
    )
}

/// How a chat's end is shown, the exit code it implies, and the error line
/// a client prints for it.
fn describe_end(end: &End, peer: &[u8], undelivered: u64) -> (String, u8, Option<String>) {
    let who = escape::escape_to_string(peer);
    let delivered_code = if undelivered == 0 {
        exit::OK
    } else {
        exit::UNDELIVERED
    };
    match end {
        End::Local(_) => ("you left".to_string(), delivered_code, None),
        End::Peer {
            reason: ByeReason::Normal,
            ..
        } => (format!("{who} left"), delivered_code, None),
        End::Peer {
            reason: ByeReason::Busy,
            ..
        } => (
            "server is busy with another chat".to_string(),
            exit::BUSY,
            Some("server is busy with another chat".to_string()),
        ),
        End::Peer { reason, detail } => {
            let mut msg = format!("{who} ended the chat: {reason}");
            if !detail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&escape::escape_to_string(detail));
            }
            (msg.clone(), exit::FAILURE, Some(msg))
        }
        End::Failed(e) => (e.to_string(), exit::FAILURE, Some(e.to_string())),
        End::Lost(msg) => (msg.clone(), exit::FAILURE, Some(msg.clone())),
    }
}

/// Caps the unsent data the kernel accepts from us (Linux 3.12+).
fn set_notsent_lowat(stream: &TcpStream, bytes: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt with a pointer to an int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Why `/send PATH` sends nothing.
#[derive(Debug)]
enum FileRefused {
    NoPath,
    Unreadable {
        path: String,
        err: io::Error,
    },
    /// A FIFO, device or directory: reading it could block the loop or
    /// never end.
    NotAFile {
        path: String,
    },
    /// Over `--max-message`: an input record that is skipped.
    TooLarge(InputError),
}

impl fmt::Display for FileRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileRefused::NoPath => f.write_str("usage: /send PATH"),
            FileRefused::Unreadable { path, err } => {
                write!(f, "cannot read {path}: {}", io_msg(err))
            }
            FileRefused::NotAFile { path } => {
                write!(f, "cannot send {path}: not a regular file")
            }
            FileRefused::TooLarge(e) => write!(f, "not sent: {e}"),
        }
    }
}

/// Reads a regular file of at most `max` bytes for `/send`. The open does
/// not wait for a FIFO's writer, and a file that grows past `max` while it
/// is read is refused, so the loop never blocks for long or reads without
/// end.
fn read_file_message(path: &str, max: u64) -> Result<Vec<u8>, FileRefused> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    if path.is_empty() {
        return Err(FileRefused::NoPath);
    }
    let unreadable = |err| FileRefused::Unreadable {
        path: path.to_string(),
        err,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(FileRefused::NotAFile {
            path: path.to_string(),
        });
    }
    let too_large = || FileRefused::TooLarge(InputError::too_large(max));
    if meta.len() > max {
        return Err(too_large());
    }
    // O_NONBLOCK has no effect on a regular file: this is a plain read
    // from disk, bounded by `max`.
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(max.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(unreadable)?;
    if data.len() as u64 > max {
        return Err(too_large());
    }
    Ok(data)
}

/// Shows an IPv4 peer of a dual-stack listener as IPv4, not `::ffff:a.b.c.d`.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// Binds the listener: the given address, else `[::]` (dual-stack), else
/// `0.0.0.0` when IPv6 is unavailable.
fn bind(listen: Option<IpLiteral>, port: u16) -> Result<TcpListener, Error> {
    let bind_one =
        |addr: SocketAddr| TcpListener::bind(addr).map_err(|err| Error::Bind { addr, err });
    match listen {
        Some(lit) => bind_one(lit.socket_addr(port).map_err(|err| Error::Resolve {
            host: lit.to_string(),
            err,
        })?),
        None => match bind_one((Ipv6Addr::UNSPECIFIED, port).into()) {
            Err(Error::Bind { err, .. })
                if matches!(
                    err.raw_os_error(),
                    Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                ) =>
            {
                bind_one((Ipv4Addr::UNSPECIFIED, port).into())
            }
            other => other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::protocol::{Frame, Hello};

    const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A socket that takes up to `chunk` bytes per write and returns
    /// `spin` after each write starts; full after `writes` writes.
    struct SlowSocket {
        chunk: usize,
        spin: Duration,
        writes: usize,
    }

    impl Write for SlowSocket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.writes == 0 {
                return Err(ErrorKind::WouldBlock.into());
            }
            self.writes -= 1;
            // The time the bytes take to leave: a wait on the clock that
            // the code under test reads, not on another thread.
            let until = Instant::now() + self.spin;
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            Ok(buf.len().min(self.chunk))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A session past the handshake, with the stall timeout on.
    fn open_session(now: Instant) -> Session {
        let mut session = Session::new(
            Config {
                name: b"me".to_vec(),
                max_message: 1 << 20,
                linger: Duration::from_secs(1),
                handshake_timeout: Duration::from_secs(5),
                heartbeat: None,
                dead_after: 3,
                write_timeout: Some(WRITE_TIMEOUT),
                stream: false,
            },
            now,
        );
        let mut hello = Vec::new();
        protocol::encode(
            &Frame::Hello(Hello {
                version: protocol::VERSION,
                max_message: 1 << 20,
                name: b"peer",
            }),
            &mut hello,
        );
        assert_eq!(session.handle_peer_bytes(&hello, now), hello.len());
        assert!(session.is_open());
        session
    }

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

    /// The writes of one flush after the first are stamped with fresh
    /// readings: the session times the drain rate and its write progress
    /// from them. Sharing the first write's reading would make a transfer
    /// that just spent its whole turn writing look stalled since the
    /// turn's start, and its rate unmeasurable.
    #[test]
    fn each_later_write_of_a_flush_reads_the_clock() {
        let spin = Duration::from_millis(1);
        let mut session = open_session(Instant::now());
        session
            .handle_input(Cow::Owned(vec![b'x'; 200_000]), Instant::now())
            .expect("queued");
        let mut socket = SlowSocket {
            chunk: 16 * 1024,
            spin,
            writes: 4,
        };
        let mut writable = true;
        let mut writes_seen = 0;
        let start = Instant::now();
        flush_to(
            &mut session,
            &mut socket,
            &mut writable,
            &mut Clock::unread(),
            |_| writes_seen += 1,
        );
        assert_eq!(writes_seen, 4);
        assert!(!writable, "the socket filled up");
        // The last write started after three spins; the stall deadline
        // counts from it.
        let deadline = session.poll_timeout().expect("data is waiting");
        assert!(
            deadline >= start + 3 * spin + WRITE_TIMEOUT,
            "stall deadline {:?} after the flush began, expected at least {:?}",
            deadline - start,
            3 * spin + WRITE_TIMEOUT
        );
    }
}
