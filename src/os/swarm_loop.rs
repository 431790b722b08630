//! `duet swarm`'s loop: one thread, one `mio::Poll`, a slab of simulated
//! clients, each a connect in progress (`dial::Dial`) or a connection
//! (`conn::Conn`, with its own `Session` and, unless `--plain`, its own
//! Noise transport). It moves bytes and hands what happened to
//! `core::swarm`, whose rules say who leaves, who joins and who sends; it
//! prints the progress line (stderr, on a terminal) and the summary
//! (stdout). It decides nothing about what a swarm means.
//!
//! A client token is `FIRST_CLIENT + key`; the key stays the same from
//! the connect to the close, and is the swarm's key for the client.

use std::borrow::Cow;
use std::io::{self, ErrorKind as IoKind, IsTerminal, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;
use slab::Slab;

use crate::core::escape::escape_to_string;
use crate::core::exit;
use crate::core::identity::{self as core_identity, Fingerprint, Trust as Known};
use crate::core::protocol::{ByeReason, MAX_NAME};
use crate::core::render::Format;
use crate::core::session::{Config, End, Event, SessionError};
use crate::core::swarm::{Action, ErrorKind, Summary, Swarm, SwarmConfig};
use crate::core::transport::{self, KEY_LEN, Transport};
use crate::os::addr::resolve;
use crate::os::conn::{Clock, Conn, ConnKind};
use crate::os::dial::{Dial, Dialed};
use crate::os::error::{Error, io_msg};
use crate::os::identity;
use crate::os::options::{Security, raise_nofile};

const SIGNALS: Token = Token(0);
const FIRST_CLIENT: usize = 1;
/// How often the progress line is redrawn, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Everything `duet swarm` needs from the command line.
#[derive(Debug, Clone)]
pub struct SwarmOptions {
    pub host: String,
    pub port: u16,
    pub connect_timeout: Duration,
    /// `Plain`, or Noise with an optional `--peer` pin (never an allow
    /// file: the swarm is a client).
    pub security: Security,
    /// Every client's session settings; `name` is the base of the clients'
    /// names (`NAME-1`, `NAME-2`, ...).
    pub session: Config,
    pub format: Format,
    pub swarm: SwarmConfig,
}

/// One simulated client.
enum Client {
    Dialing(Dial),
    Connected(Box<Conn>),
}

/// The swarm's identity and the key it expects of the hub.
struct SwarmTrust {
    private: [u8; KEY_LEN],
    /// `--peer`, or else the key `known_peers` names for the target.
    expect: Expect,
}

enum Expect {
    Pin(Fingerprint),
    /// Checked against `known_peers` in this directory, never written to
    /// it: one simulated client's first contact is not the person's.
    KnownPeers(std::path::PathBuf),
}

impl SwarmTrust {
    fn load(security: &Security) -> Result<Option<SwarmTrust>, Error> {
        let Security::Noise { pin, .. } = security else {
            return Ok(None);
        };
        let home = identity::home().map_err(Error::Identity)?;
        let id = identity::load_or_create(&home).map_err(Error::Identity)?;
        let expect = match pin {
            Some(p) => Expect::Pin(*p),
            None => Expect::KnownPeers(home),
        };
        Ok(Some(SwarmTrust {
            private: *id.private_key(),
            expect,
        }))
    }

    /// The hub's key against `--peer` or known_peers, which a swarm reads
    /// but never writes. A file that cannot be read is this side's
    /// failure, not a refused key.
    fn check(&self, peer: &str, key: &[u8; KEY_LEN]) -> Result<(), SessionError> {
        let fp = Fingerprint::of(key);
        let refused = match &self.expect {
            Expect::Pin(pin) if *pin == fp => return Ok(()),
            Expect::Pin(pin) => {
                format!("the key of {peer} is {fp}, not the one given with --peer ({pin})")
            }
            Expect::KnownPeers(home) => match identity::check_known_peer(home, peer, &fp) {
                Ok(Known::Known { .. }) => return Ok(()),
                Ok(Known::Unknown) => format!(
                    "its key {fp} is not in known_peers, and a swarm does not add it: \
                     give --peer, or connect once with duet client"
                ),
                Ok(Known::Changed { .. }) => format!("the key of {peer} changed: {fp}"),
                Err(e) => return Err(SessionError::KeyCheck(e.to_string())),
            },
        };
        Err(SessionError::KeyRefused(refused))
    }
}

struct SwarmLoop {
    poll: Poll,
    events: Events,
    signals: Signals,
    clients: Slab<Client>,
    swarm: Swarm,
    addrs: Vec<SocketAddr>,
    connect_timeout: Duration,
    session: Config,
    trust: Option<SwarmTrust>,
    /// `HOST:PORT`, as known_peers names the hub.
    peer_name: String,
    /// Stop signals received so far.
    stops: u32,
    /// A run that cannot go on: the message, and the exit code.
    fatal: Option<(String, u8)>,
    /// When the progress line was last drawn; `None` when stderr is not a
    /// terminal.
    progress: Option<Instant>,
    started: Instant,
}

/// Runs the swarm until its duration ends or a stop signal; prints the
/// summary and returns the exit code.
pub fn run(opts: SwarmOptions) -> Result<u8, Error> {
    raise_nofile();
    let addrs = resolve(&opts.host, opts.port)?;
    let target = if opts.host.contains(':') {
        format!("[{}]:{}", opts.host, opts.port)
    } else {
        format!("{}:{}", opts.host, opts.port)
    };
    let trust = SwarmTrust::load(&opts.security)?;
    let io = |what| move |err| Error::Io { what, err };
    let poll = Poll::new().map_err(io("cannot create poll"))?;
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(io("cannot install signal handlers"))?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(io("cannot poll signals"))?;
    let now = Instant::now();
    let mut lp = SwarmLoop {
        poll,
        events: Events::with_capacity(1024),
        signals,
        clients: Slab::with_capacity(opts.swarm.clients),
        swarm: Swarm::new(opts.swarm.clone(), now),
        addrs,
        connect_timeout: opts.connect_timeout,
        session: opts.session.clone(),
        trust,
        peer_name: core_identity::peer_name(&opts.host, opts.port),
        stops: 0,
        fatal: None,
        progress: io::stderr().is_terminal().then_some(now),
        started: now,
    };
    let result = lp.run();
    if lp.progress.is_some() {
        // Clear the progress line before the summary or an error.
        let _ = io::stderr().write_all(b"\r\x1b[K");
    }
    result?;
    if let Some((msg, code)) = lp.fatal.take() {
        return Err(Error::Chat {
            msg: format!("cannot swarm {target}: {msg}"),
            code,
        });
    }
    let mut summary = lp.swarm.summary(Instant::now());
    summary.peak_rss_kib = peak_rss_kib();
    let text = match opts.format {
        Format::Text => summary.text(&target),
        Format::Jsonl => summary.json(&target) + "\n",
    };
    match io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == IoKind::BrokenPipe => {}
        Err(err) => {
            return Err(Error::Io {
                what: "cannot write the summary",
                err,
            });
        }
    }
    Ok(summary.exit_code())
}

impl SwarmLoop {
    fn run(&mut self) -> Result<(), Error> {
        loop {
            self.turn()?;
            if self.fatal.is_some() {
                self.close_all();
                return Ok(());
            }
            if self.swarm.is_done() && self.clients.is_empty() {
                log::debug!("swarm: every connection closed");
                return Ok(());
            }
            if self.stops >= 2 {
                // A second signal: goodbye at once, no waiting.
                self.close_all();
                return Ok(());
            }
        }
    }

    fn turn(&mut self) -> Result<(), Error> {
        let timeout = self.wait_timeout();
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == IoKind::Interrupted => {}
            Err(err) => {
                return Err(Error::Io {
                    what: "poll failed",
                    err,
                });
            }
        }
        let mut clock = Clock::unread();
        let mut signalled = false;
        for ev in self.events.iter() {
            match ev.token() {
                SIGNALS => signalled = true,
                Token(t) => match self.clients.get_mut(t - FIRST_CLIENT) {
                    Some(Client::Dialing(d)) => d.handle_writable(),
                    Some(Client::Connected(c)) => c.handle_event(ev),
                    None => {}
                },
            }
        }
        if signalled {
            let pending: Vec<i32> = self.signals.pending().collect();
            for sig in pending {
                log::info!("got signal {sig}");
                self.stops += 1;
                self.swarm.handle_stop(clock.now());
            }
        }
        self.advance_dials(&mut clock);
        for (_, client) in self.clients.iter_mut() {
            if let Client::Connected(c) = client {
                c.ready(&mut clock);
            }
        }
        if self.trust.is_some() {
            self.check_keys(&mut clock);
        }
        let now = clock.now();
        for (_, client) in self.clients.iter_mut() {
            if let Client::Connected(c) = client {
                c.handle_due(now, &mut clock);
            }
        }
        if self.swarm.poll_timeout().is_some_and(|t| now >= t) {
            self.swarm.handle_timeout(now);
        }
        // Events make actions (and a leave that ends at once, events):
        // each round applies all of them, then takes every event once.
        loop {
            self.take_events(clock.now());
            let mut acted = false;
            while let Some(action) = self.swarm.poll_action() {
                self.apply(action, &mut clock);
                acted = true;
            }
            if !acted {
                break;
            }
        }
        self.dial_new(clock.now());
        self.reap(clock.now());
        if self.swarm.unreachable() && self.fatal.is_none() {
            self.fatal = Some(("connection refused".to_string(), exit::FAILURE));
        }
        self.show_progress(clock.now());
        Ok(())
    }

    /// How long the next wait may block: not at all with work left; else
    /// until the nearest deadline of a connection, a connect, the swarm or
    /// the progress line.
    fn wait_timeout(&self) -> Option<Duration> {
        let mut busy = false;
        let mut nearest = self.swarm.poll_timeout();
        let mut fold = |t: Instant| nearest = Some(nearest.map_or(t, |n: Instant| n.min(t)));
        for (_, client) in self.clients.iter() {
            match client {
                Client::Dialing(d) => {
                    if let Some(t) = d.deadline() {
                        fold(t);
                    }
                }
                Client::Connected(c) => {
                    busy |= c.has_work();
                    c.deadlines(&mut fold);
                }
            }
        }
        if busy {
            return Some(Duration::ZERO);
        }
        if let Some(t) = self.progress {
            fold(t + PROGRESS_EVERY);
        }
        nearest.map(|t| t.saturating_duration_since(Instant::now()))
    }

    /// Moves each connect in progress on: a connection (its session
    /// starts), a failure (counted by kind), or still under way.
    fn advance_dials(&mut self, clock: &mut Clock) {
        let dialing: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| matches!(c, Client::Dialing(_)))
            .map(|(k, _)| k)
            .collect();
        for key in dialing {
            let now = clock.now();
            let Some(Client::Dialing(dial)) = self.clients.get_mut(key) else {
                continue;
            };
            match dial.advance(self.poll.registry(), now) {
                Dialed::Pending => {}
                Dialed::Failed(err) => {
                    self.clients.remove(key);
                    self.connect_failed(key, &err, now);
                }
                Dialed::Connected(stream, addr) => match self.connect(key, stream, addr, now) {
                    Ok(conn) => {
                        self.clients[key] = Client::Connected(Box::new(conn));
                        if let Client::Connected(c) = &mut self.clients[key] {
                            c.ready(clock);
                        }
                    }
                    Err(err) => {
                        self.clients.remove(key);
                        self.connect_failed(key, &err, now);
                    }
                },
            }
        }
    }

    /// A connected socket becomes a client's connection, registered under
    /// its token, with the session named after the client's number.
    fn connect(
        &mut self,
        key: usize,
        stream: mio::net::TcpStream,
        addr: SocketAddr,
        now: Instant,
    ) -> io::Result<Conn> {
        let transport = match &self.trust {
            Some(t) => Some(
                Transport::new(transport::Role::Initiator, &t.private)
                    .map_err(|e| io::Error::other(e.to_string()))?,
            ),
            None => None,
        };
        let mut cfg = self.session.clone();
        let number = self.swarm.number(key).unwrap_or(0);
        let mut name = cfg.name.clone();
        name.extend_from_slice(format!("-{number}").as_bytes());
        name.truncate(MAX_NAME);
        cfg.name = name;
        let mut conn = Conn::new(stream, addr, cfg, now, ConnKind::Chat, transport)?;
        // A swarm's clients join the hub's room as `duet client` does.
        conn.session_mut().join_rooms();
        self.poll.registry().register(
            conn.stream_mut(),
            Token(FIRST_CLIENT + key),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(conn)
    }

    fn connect_failed(&mut self, key: usize, err: &io::Error, now: Instant) {
        log::debug!("swarm client {key}: cannot connect: {}", io_msg(err));
        let kind = if err.kind() == IoKind::ConnectionRefused {
            ErrorKind::Refused
        } else {
            ErrorKind::Connect
        };
        self.swarm.handle_connect_failed(key, kind, now);
    }

    /// Checks each hub key the encrypted handshake has proved. The first
    /// one refused before any was accepted ends the run: every other
    /// client would be refused the same.
    fn check_keys(&mut self, clock: &mut Clock) {
        let Some(trust) = &self.trust else {
            return;
        };
        for (_, client) in self.clients.iter_mut() {
            let Client::Connected(c) = client else {
                continue;
            };
            let Some(key) = c.take_peer_key() else {
                continue;
            };
            match trust.check(&self.peer_name, &key) {
                Ok(()) => c.accept_key(),
                Err(why) => {
                    if !self.swarm.ever_connected() && self.fatal.is_none() {
                        let code = match why {
                            SessionError::KeyCheck(_) => exit::FAILURE,
                            _ => exit::KEY,
                        };
                        self.fatal = Some((why.to_string(), code));
                    }
                    c.refuse_key(why);
                }
            }
            c.ready(clock);
        }
    }

    /// Hands every session's events to the swarm.
    fn take_events(&mut self, now: Instant) {
        let SwarmLoop {
            clients,
            swarm,
            fatal,
            ..
        } = self;
        for (key, client) in clients.iter_mut() {
            let Client::Connected(c) = client else {
                continue;
            };
            let s = c.session_mut();
            let mut ended = false;
            while let Some(ev) = s.poll_event() {
                match ev {
                    Event::Connected { .. } => swarm.handle_connected(key, now),
                    Event::Message { data, .. } => swarm.handle_message(key, data),
                    // The hub's own messages come with no sender's name.
                    Event::RoomMessage { from: [], data, .. } => swarm.handle_message(key, data),
                    Event::RoomMessage { .. } => swarm.handle_message(key, b""),
                    Event::Acked { rtt, .. } => swarm.handle_acked(key, rtt),
                    Event::Ended => ended = true,
                    Event::Sent { .. }
                    | Event::MessagePart { .. }
                    | Event::Refused { .. }
                    | Event::Skipped { .. }
                    | Event::Joined
                    | Event::RoomPart { .. }
                    | Event::Receipt { .. } => {}
                }
            }
            if ended && c.take_end() {
                let s = c.session();
                let end = s.end().cloned().unwrap_or(End::Lost(String::new()));
                if !swarm.ever_connected() && fatal.is_none() {
                    // The very first connection failed before its
                    // handshake: every other would fail the same way.
                    *fatal = first_failure(&end);
                }
                log::debug!("swarm client {key} ended: {end:?}");
                if swarm.stopping() {
                    log::debug!("swarm: {} clients left to end", swarm.connected());
                }
                swarm.handle_ended(key, &end, s.outstanding(), now);
            }
        }
    }

    /// Does what the swarm asked of one client.
    fn apply(&mut self, action: Action, clock: &mut Clock) {
        let now = clock.now();
        match action {
            Action::Leave(key) => {
                if let Some(Client::Connected(c)) = self.clients.get_mut(key) {
                    c.session_mut().handle_input_end(now);
                    c.ready(clock);
                }
            }
            Action::Send { key, body } => {
                let Some(Client::Connected(c)) = self.clients.get_mut(key) else {
                    self.swarm.handle_send_skipped(key);
                    return;
                };
                let s = c.session_mut();
                if s.wants_input() && s.handle_input(Cow::Owned(body), now).is_ok() {
                    self.swarm.handle_sent(key);
                } else {
                    self.swarm.handle_send_skipped(key);
                }
                c.ready(clock);
            }
            Action::Abandon(key) => match self.clients.get_mut(key) {
                // Connected, the hub's HELLO not here yet: goodbye, and
                // the connection closes like any other.
                Some(Client::Connected(c)) => {
                    c.session_mut().close(ByeReason::Normal);
                    c.ready(clock);
                }
                Some(Client::Dialing(_)) => {
                    // The socket closes on drop; the registration goes
                    // with it.
                    self.clients.remove(key);
                }
                None => {}
            },
        }
    }

    /// Starts a connect for every client the swarm is missing.
    fn dial_new(&mut self, now: Instant) {
        while self.swarm.poll_dial(now) {
            let entry = self.clients.vacant_entry();
            let key = entry.key();
            let mut dial = Dial::new(
                self.addrs.clone(),
                self.connect_timeout,
                Token(FIRST_CLIENT + key),
            );
            self.swarm.handle_dialing(key);
            match dial.start(self.poll.registry(), now) {
                Dialed::Failed(err) => self.connect_failed(key, &err, now),
                Dialed::Pending | Dialed::Connected(..) => {
                    entry.insert(Client::Dialing(dial));
                }
            }
        }
    }

    /// Drops connections that finished closing.
    fn reap(&mut self, now: Instant) {
        let done = |c: &Client| matches!(c, Client::Connected(c) if c.is_done(now));
        // Checked every turn; the common answer is "none".
        if !self.clients.iter().any(|(_, c)| done(c)) {
            return;
        }
        let done: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| done(c))
            .map(|(k, _)| k)
            .collect();
        for key in done {
            if let Client::Connected(mut c) = self.clients.remove(key) {
                let _ = self.poll.registry().deregister(c.stream_mut());
            }
        }
    }

    /// Says goodbye on every connection at once and writes what the
    /// sockets take; nothing is waited for.
    fn close_all(&mut self) {
        let mut clock = Clock::unread();
        for (_, client) in self.clients.iter_mut() {
            if let Client::Connected(c) = client {
                c.session_mut().close(ByeReason::Normal);
                c.ready(&mut clock);
            }
        }
        self.take_events(clock.now());
    }

    /// Redraws the progress line on a terminal, at most every
    /// [`PROGRESS_EVERY`].
    fn show_progress(&mut self, now: Instant) {
        let Some(last) = self.progress else {
            return;
        };
        if now < last + PROGRESS_EVERY {
            return;
        }
        self.progress = Some(now);
        let line = Summary::progress(
            self.swarm.counts(),
            self.swarm.connected(),
            now.saturating_duration_since(self.started),
        );
        let _ = write!(io::stderr(), "\r{line}\x1b[K");
    }
}

/// Why a run ends when its first connection failed before any handshake
/// completed, and the exit code; `None` for an end that another client
/// may not meet (a full room's busy, a planned leave).
fn first_failure(end: &End) -> Option<(String, u8)> {
    match end {
        End::Failed(SessionError::KeyRefused(why)) => Some((why.clone(), exit::KEY)),
        End::Failed(e) => Some((e.to_string(), exit::FAILURE)),
        End::Lost(why) => Some((why.clone(), exit::FAILURE)),
        End::Peer {
            reason: ByeReason::KeyRefused,
            ..
        } => Some(("the hub refused this side's key".to_string(), exit::KEY)),
        End::Peer {
            reason: ByeReason::Normal | ByeReason::Busy,
            ..
        }
        | End::Local(_) => None,
        End::Peer { reason, detail } => {
            let detail = escape_to_string(detail);
            let why = if detail.is_empty() {
                format!("the hub said goodbye ({reason})")
            } else {
                format!("the hub said goodbye ({reason}): {detail}")
            };
            Some((why, exit::FAILURE))
        }
    }
}

/// The process's peak resident set size in KiB (`ru_maxrss`).
fn peak_rss_kib() -> Option<u64> {
    // SAFETY: getrusage fills one `rusage` we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    (rc == 0).then(|| u64::try_from(usage.ru_maxrss).unwrap_or(0))
}
