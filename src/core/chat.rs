//! The chat controller: the rules of a chat that are not I/O.
//!
//! It decides what a typed line means (a message or a `/command`), how
//! session events become lines on the screen, when a chat is over, how its
//! end reads and which exit code it leaves, what the prompt's label says,
//! what `duet bench` sends, and what `/send` may send. It never touches a
//! descriptor or reads the clock: the shell hands it the active
//! [`Session`], the time, and (for `/send`) a file's contents or the reason
//! it could not be read.
//!
//! Inputs are `handle_*`; what the shell must do next is `poll_*`
//! ([`Chat::poll_request`], [`Chat::poll_end`]). Lines go to a [`Screen`]
//! as they are made, borrowed: a received message is shown straight from
//! the session's buffer, never copied into a queue of our own.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::core::escape::{escape_to_string, peer_label};
use crate::core::exit;
use crate::core::input::InputError;
use crate::core::protocol::ByeReason;
use crate::core::render::{Line, PeerKey};
use crate::core::session::{End, Event, InputRefused, Session, SessionError};
use member::{Fate, RoomView, Tally};

/// How long a stop (a signal, or leaving before the handshake) waits for
/// the last acknowledgments.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// Where the controller's lines go: the display, or a test's recorder.
pub trait Screen {
    /// One line (or a summary block) about the chat.
    fn show(&mut self, line: &Line<'_>, now: Instant);
    /// The next piece of a message shown as it arrives; `last` when it
    /// completes the message.
    fn show_part(&mut self, from: &[u8], id: u64, data: &[u8], last: bool, now: Instant);
    /// The chat ended while a message was being shown as it arrived.
    fn cut_off(&mut self, from: &[u8], now: Instant);
    /// A message we sent, echoed for the person who typed it, at `now`.
    fn echo_sent(&mut self, id: u64, data: &[u8], now: Instant);
}

/// Which side of the chat we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Waits for clients; stays up between chats.
    Server,
    /// Connects to a server; one chat, then exit.
    Client,
}

/// What `duet bench` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Why a server turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A chat is under way.
    Busy,
    /// Its greeting was under way when another client's completed first.
    Outpaced,
    /// Too many connections have not greeted yet.
    TooManyGreetings,
    /// Too many of those come from its address.
    TooManyFromAddress,
}

/// What the shell must do for the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `/send PATH`: read this file, a regular one of at most `max` bytes,
    /// and pass the result to [`Chat::handle_file`].
    ReadFile { path: String, max: u64 },
}

/// Why `/send PATH` sends nothing.
#[derive(Debug)]
pub enum FileRefused {
    NoPath,
    /// The open or the read failed; `why` is the system's reason.
    Unreadable {
        path: String,
        why: String,
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
            FileRefused::Unreadable { path, why } => write!(f, "cannot read {path}: {why}"),
            FileRefused::NotAFile { path } => {
                write!(f, "cannot send {path}: not a regular file")
            }
            FileRefused::TooLarge(e) => write!(f, "not sent: {e}"),
        }
    }
}

/// The controller's settings.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    pub role: Role,
    pub bench: Option<BenchSpec>,
    /// Our own `--max-message` (what `/send` may read).
    pub max_message: u64,
    /// How long a leaving side waits for acknowledgments.
    pub linger: Duration,
    /// The chat runs over the encrypted transport (not `--plain`).
    pub encrypted: bool,
}

/// The chat controller. See the module documentation.
pub struct Chat {
    role: Role,
    bench: Option<Bench>,
    max_message: u64,
    linger: Duration,
    /// Where a server listens, and whether it goes on after a chat.
    listening: Option<(SocketAddr, bool)>,
    /// `/next`: the server's person ended the chat, to wait for the next.
    next: bool,
    /// The current chat's peer: its address, and its name once its HELLO
    /// has come.
    peer_addr: Option<SocketAddr>,
    peer_name: Vec<u8>,
    /// A client's connect in progress, for the prompt's label.
    dialing: Option<SocketAddr>,
    /// A server's client whose HELLO is awaited, for the prompt's label.
    greeting: Option<SocketAddr>,
    /// The first stop signal received.
    stop: Option<i32>,
    /// The person asked to leave (Ctrl-D, Ctrl-C, /quit).
    quit: bool,
    request: Option<Request>,
    encrypted: bool,
    /// The current peer's key, once checked (encrypted chats).
    peer_key: Option<PeerKey>,
    /// Exit code of the last finished chat.
    code: u8,
    /// A finished chat's failure, reported by the client as its error.
    error: Option<String>,
    /// A room member (we joined the hub's room): receipts and figures.
    room: Option<Box<RoomView>>,
}

impl Chat {
    pub fn new(cfg: ChatConfig) -> Chat {
        Chat {
            role: cfg.role,
            bench: cfg.bench.map(|spec| Bench {
                spec,
                payload: (0..spec.size).map(|i| b'a' + (i % 26) as u8).collect(),
                queued: 0,
            }),
            max_message: cfg.max_message,
            linger: cfg.linger,
            listening: None,
            next: false,
            peer_addr: None,
            peer_name: DEFAULT_PEER.to_vec(),
            dialing: None,
            greeting: None,
            stop: None,
            quit: false,
            request: None,
            encrypted: cfg.encrypted,
            peer_key: None,
            code: exit::OK,
            error: None,
            room: None,
        }
    }

    // ----- inputs -------------------------------------------------------

    /// A client's connect to `addr` began (`Some`) or is over (`None`).
    pub fn handle_dialing(&mut self, addr: Option<SocketAddr>) {
        self.dialing = addr;
    }

    /// The server listens on `addr`; with `once`, for one chat only.
    pub fn handle_listening(
        &mut self,
        addr: SocketAddr,
        once: bool,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        self.listening = Some((addr, !once));
        screen.show(&Line::Listening { addr }, now);
    }

    /// A server is greeting the client at `addr` (the first of those whose
    /// HELLO has not come yet), or none.
    pub fn handle_greeting(&mut self, addr: Option<SocketAddr>) {
        self.greeting = addr;
    }

    /// The current peer's key passed the checks (encrypted chats): shown
    /// with the `connected` line.
    pub fn handle_peer_key(&mut self, key: PeerKey) {
        self.peer_key = Some(key);
    }

    /// A chat with the peer at `addr` begins (its session was just made).
    pub fn handle_chat_start(&mut self, addr: SocketAddr) {
        self.peer_addr = Some(addr);
        self.peer_key = None;
        self.peer_name = DEFAULT_PEER.to_vec();
        self.next = false;
        self.room = None;
    }

    /// A server turned away a client from `addr`: its person is told who
    /// came, from where, and why.
    pub fn handle_turned_away(
        &mut self,
        addr: SocketAddr,
        why: Refusal,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        let why = match why {
            Refusal::Busy => format!("busy with the chat with {}", peer_label(&self.peer_name)),
            Refusal::Outpaced => "another client greeted first".to_string(),
            Refusal::TooManyGreetings => "too many connections waiting to greet".to_string(),
            Refusal::TooManyFromAddress => {
                "too many connections waiting to greet from that address".to_string()
            }
        };
        let message = format!("turned away {addr}: {why}");
        screen.show(&Line::Notice { message: &message }, now);
    }

    /// A connection's greeting failed before it was granted the chat (no
    /// HELLO in time, not a duet peer, gone): shown as that chat's end, with
    /// no summary and no effect on the exit code.
    pub fn handle_greeting_failed(
        &mut self,
        session: &Session,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        if let Some(end) = session.end() {
            let ending = describe_end(end, DEFAULT_PEER, 0);
            screen.show(
                &Line::Closed {
                    reason: &ending.reason,
                },
                now,
            );
        }
    }

    /// Shows every event the active session has queued.
    pub fn handle_events(&mut self, session: &mut Session, screen: &mut impl Screen, now: Instant) {
        // A busy server's HELLO arrives with its BYE: no chat began.
        let refused = session.end().is_some_and(turned_away);
        let per_message = self.bench.is_none();
        while let Some(ev) = session.poll_event() {
            match ev {
                Event::Connected { .. } if refused => {}
                Event::Connected { name, .. } => {
                    // The wire allows an empty name; shown as such it
                    // would make "> hi" look like our own prompt.
                    self.peer_name = match name {
                        [] => DEFAULT_PEER.to_vec(),
                        name => name.to_vec(),
                    };
                    let peer = self.peer_addr.unwrap_or(UNKNOWN_ADDR);
                    let name = &self.peer_name;
                    let key = self.peer_key.as_ref();
                    screen.show(&Line::Connected { peer, name, key }, now);
                }
                Event::Sent { id, len } if per_message => screen.show(&Line::Sent { id, len }, now),
                Event::Acked { id, len, rtt } if let Some(room) = self.room.as_deref_mut() => {
                    let tally = room.take(id);
                    if per_message {
                        show_reached(id, len, rtt, &tally, screen, now);
                    }
                }
                Event::Acked { id, len, rtt } if per_message => {
                    screen.show(&Line::Acked { id, len, rtt }, now);
                }
                Event::Sent { .. } | Event::Acked { .. } => {}
                Event::Message {
                    id,
                    data,
                    continues: false,
                } => {
                    let from = &self.peer_name;
                    screen.show(&Line::Message { id, from, data }, now);
                }
                Event::Message { id, data, .. } => {
                    screen.show_part(&self.peer_name, id, data, true, now);
                }
                Event::MessagePart { id, data } => {
                    screen.show_part(&self.peer_name, id, data, false, now);
                }
                Event::Refused { len, limit } => {
                    let message = format!(
                        "not sent: the message is {len} bytes and {} accepts at most {limit}",
                        peer_label(&self.peer_name)
                    );
                    screen.show(&Line::Error { message: &message }, now);
                }
                Event::Skipped { limit } => {
                    let message = format!("not sent: {}", InputError::too_large(limit));
                    screen.show(&Line::Error { message: &message }, now);
                }
                Event::Ended => match self.room.as_deref() {
                    Some(room) if !room.streaming_from.is_empty() => {
                        screen.cut_off(&room.streaming_from, now);
                    }
                    _ => screen.cut_off(&self.peer_name, now),
                },
                Event::Joined => {
                    self.room = Some(Box::default());
                    let peer = self.peer_addr.unwrap_or(UNKNOWN_ADDR);
                    let name = &self.peer_name;
                    screen.show(&Line::Joined { peer, name }, now);
                }
                Event::RoomMessage {
                    id,
                    from,
                    data,
                    continues,
                } => {
                    // An empty name is the hub's own message.
                    let from = if from.is_empty() {
                        &self.peer_name
                    } else {
                        from
                    };
                    if continues {
                        screen.show_part(from, id, data, true, now);
                    } else {
                        screen.show(&Line::RoomMessage { id, from, data }, now);
                    }
                    if let Some(room) = self.room.as_deref_mut() {
                        room.streaming_from.clear();
                    }
                }
                Event::RoomPart { id, from, data } => {
                    let from = if from.is_empty() {
                        &self.peer_name
                    } else {
                        from
                    };
                    if let Some(room) = self.room.as_deref_mut() {
                        room.streaming_from.clear();
                        room.streaming_from.extend_from_slice(from);
                    }
                    screen.show_part(from, id, data, false, now);
                }
                Event::Receipt {
                    id,
                    status,
                    name,
                    rtt,
                } => {
                    if let Some(room) = self.room.as_deref_mut() {
                        room.handle_receipt(id, status, name, rtt);
                    }
                }
            }
        }
    }

    /// A record of piped input: a message for the session, or one longer
    /// than our limit. Inlined: it is on the piped sender's path.
    #[inline]
    pub fn handle_record(
        &mut self,
        rec: Result<Cow<'_, [u8]>, InputError>,
        session: Option<&mut Session>,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        match rec {
            Ok(msg) => {
                let sent = session.map(|s| s.handle_input(msg, now));
                if let None | Some(Err(InputRefused::NotOpen)) = sent {
                    let message = "not sent: nobody is connected";
                    screen.show(&Line::Error { message }, now);
                }
            }
            Err(e) => {
                // An open session reports it among its events.
                if !session.is_some_and(|s| s.handle_input_skipped()) {
                    let message = format!("not sent: {e}");
                    screen.show(&Line::Error { message: &message }, now);
                }
            }
        }
    }

    /// Piped input ended: a client leaves once what it sent is
    /// acknowledged; a server goes on chatting.
    pub fn handle_input_end(&mut self, session: Option<&mut Session>, now: Instant) {
        if let (Role::Client, Some(s)) = (self.role, session) {
            s.handle_input_end(now);
        }
    }

    /// A line typed in the editor: a command, or a message.
    pub fn handle_line(
        &mut self,
        line: Vec<u8>,
        session: Option<&mut Session>,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        match line.strip_prefix(b"/") {
            Some(rest) if rest.starts_with(b"/") => {
                let msg = rest.to_vec();
                self.send_typed(msg, None, session, screen, now);
            }
            Some(b"quit") => self.handle_quit(session, now),
            Some(b"help") => {
                for message in HELP {
                    screen.show(&Line::Notice { message }, now);
                }
            }
            Some(b"next") => match session {
                _ if self.role == Role::Client => {
                    let message = "/next is for a server (it ends the chat and waits for the next client); /quit leaves";
                    screen.show(&Line::Error { message }, now);
                }
                Some(s) if !s.is_closed() => {
                    // As a server's /quit ends a chat, but the server stays.
                    self.next = true;
                    s.handle_stop(now, STOP_GRACE.min(self.linger));
                }
                _ => {
                    let message = "no chat in progress";
                    screen.show(&Line::Error { message }, now);
                }
            },
            Some(b"stats") => match session {
                Some(s) => {
                    let stats = s.stats();
                    let peer = &self.peer_name;
                    let addr = self.peer_addr.unwrap_or(UNKNOWN_ADDR);
                    let figures = self.room.as_ref().map(|r| r.figures());
                    screen.show(
                        &Line::Summary {
                            peer,
                            addr,
                            stats: &stats,
                            encrypted: self.encrypted,
                            recipients: figures.as_deref(),
                        },
                        now,
                    );
                }
                None => {
                    let message = "no chat in progress";
                    screen.show(&Line::Error { message }, now);
                }
            },
            Some(rest) if rest == b"send" || rest.starts_with(b"send ") => {
                let path = String::from_utf8_lossy(&rest[4..]).trim().to_string();
                if path.is_empty() {
                    self.show_refused(&FileRefused::NoPath, screen, now);
                } else {
                    let max = self.max_message;
                    self.request = Some(Request::ReadFile { path, max });
                }
            }
            Some(_) => {
                let message =
                    "unknown command (try /help, /quit, /stats, /send PATH; // sends a leading /)";
                screen.show(&Line::Error { message }, now);
            }
            None => self.send_typed(line, None, session, screen, now),
        }
    }

    /// The shell's answer to [`Request::ReadFile`].
    pub fn handle_file(
        &mut self,
        path: &str,
        read: Result<Vec<u8>, FileRefused>,
        session: Option<&mut Session>,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        match read {
            Ok(data) => {
                let what = format!("/send {path} ({} bytes)", data.len());
                self.send_typed(data, Some(what), session, screen, now);
            }
            Err(refused) => {
                // Too large, it counts as refused, and an open session
                // reports it among its events.
                let reported = matches!(refused, FileRefused::TooLarge(_))
                    && session.is_some_and(|s| s.handle_input_skipped());
                if !reported {
                    self.show_refused(&refused, screen, now);
                }
            }
        }
    }

    /// Ctrl-D on an empty draft, Ctrl-C, `/quit`, or the terminal hung up.
    pub fn handle_quit(&mut self, session: Option<&mut Session>, now: Instant) {
        let again = std::mem::replace(&mut self.quit, true);
        match session {
            // Asked twice: stop waiting for acks.
            Some(s) if again => s.close(ByeReason::Normal),
            Some(s) if self.role == Role::Client && s.handshake_done() => s.handle_input_end(now),
            // Before the handshake there is nothing to wait for.
            Some(s) => s.handle_stop(now, STOP_GRACE.min(self.linger)),
            // Still connecting: give up at once, as for Ctrl-C.
            None if self.dialing.is_some() => {
                self.stop.get_or_insert(libc::SIGINT);
            }
            None => {}
        }
    }

    /// SIGINT, SIGTERM or SIGHUP: the first waits briefly for the last
    /// acknowledgments, a second closes at once.
    pub fn handle_stop_signal(&mut self, sig: i32, session: Option<&mut Session>, now: Instant) {
        let again = self.stop.is_some();
        self.stop.get_or_insert(sig);
        match session {
            Some(s) if again => s.close(ByeReason::Normal),
            Some(s) => s.handle_stop(now, STOP_GRACE.min(self.linger)),
            None => {}
        }
    }

    /// `duet bench`: offers generated messages while the window and the
    /// session allow; after the last, waits for the acks as a client does
    /// at the end of its input.
    pub fn feed_bench(&mut self, session: &mut Session, now: Instant) {
        let Some(b) = self.bench.as_mut() else {
            return;
        };
        let s = session;
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

    // ----- outputs ------------------------------------------------------

    /// What the shell must do next for the controller.
    pub fn poll_request(&mut self) -> Option<Request> {
        self.request.take()
    }

    /// Once the active session has ended: shows how, and the summary, and
    /// remembers the exit code. True once for each finished chat; the
    /// shell then lets the connection close and makes no more calls with
    /// that session.
    pub fn poll_end(&mut self, session: &Session, screen: &mut impl Screen, now: Instant) -> bool {
        let Some(end) = session.end() else {
            return false;
        };
        let stats = session.stats();
        let mut ending = describe_end(end, &self.peer_name, stats.undelivered());
        if self.next && matches!(end, End::Local(_)) {
            ending.reason = "you ended it (/next)".to_string();
        }
        let reason = &ending.reason;
        if turned_away(end) {
            // No chat began: the client's error line says so, once.
            screen.show(&Line::TurnedAway { reason }, now);
        } else {
            screen.show(&Line::Closed { reason }, now);
        }
        let peer = &self.peer_name;
        let addr = self.peer_addr.unwrap_or(UNKNOWN_ADDR);
        if turned_away(end) || !session.handshake_done() {
            // No chat, so no summary: with a busy server, or a peer that
            // never said HELLO (not duet, or gone first), nothing was said.
        } else if let Some(b) = &self.bench {
            let line = Line::Bench {
                peer,
                addr,
                size: b.spec.size as u64,
                window: b.spec.window,
                elapsed: session.acked_span(),
                stats: &stats,
            };
            screen.show(&line, now);
        } else {
            let figures = self.room.as_ref().map(|r| r.figures());
            screen.show(
                &Line::Summary {
                    peer,
                    addr,
                    stats: &stats,
                    encrypted: self.encrypted,
                    recipients: figures.as_deref(),
                },
                now,
            );
        }
        if let (Role::Server, Some((addr, true)), false, None) =
            (self.role, self.listening, self.quit, self.stop)
        {
            let message = format!("waiting for the next client on {addr}");
            screen.show(&Line::Notice { message: &message }, now);
        }
        // A stop signal's code wins: the person asked to stop, and the
        // summary says what did not get through.
        self.code = match self.stop {
            Some(sig) => exit::signalled(sig),
            None => ending.code,
        };
        self.error = ending.error;
        true
    }

    /// The prompt's label: who we are talking to and what is pending.
    pub fn prompt_label(&self, session: Option<&Session>) -> String {
        match session {
            Some(s) if s.is_open() => match s.outstanding() {
                0 => "> ".to_string(),
                n => format!("({n} unacked) > "),
            },
            // Connected, the server's HELLO awaited.
            Some(_) => "(connecting) > ".to_string(),
            None if let Some(addr) = self.dialing => format!("(connecting to {addr}) > "),
            // A server greets the clients that came to it until one of
            // them has said HELLO.
            None if let Some(addr) = self.greeting => format!("(greeting {addr}) > "),
            None if self.role == Role::Server => "(nobody connected) > ".to_string(),
            None => "(chat ended) > ".to_string(),
        }
    }

    /// Whether stdin should be read now. With a prompt, keys are always
    /// read: Ctrl-C must work while acks are awaited, and a person's typing
    /// is no flood to push back on. A server with nobody connected reads a
    /// terminal (a typed line is dropped, with a notice); piped input
    /// waits in its pipe (or file) for the next client.
    #[inline]
    pub fn wants_input(
        &self,
        session: Option<&Session>,
        interactive: bool,
        terminal: bool,
    ) -> bool {
        if interactive {
            return true;
        }
        match session {
            Some(s) => s.wants_input(),
            None => self.role == Role::Server && terminal,
        }
    }

    /// Whether the chat's messages are generated (`duet bench`).
    pub fn is_bench(&self) -> bool {
        self.bench.is_some()
    }

    /// The first stop signal, if one came (or Ctrl-C while connecting).
    pub fn stopped(&self) -> Option<i32> {
        self.stop
    }

    /// Whether the person asked to leave.
    pub fn quitting(&self) -> bool {
        self.quit
    }

    /// The exit code of the last finished chat.
    pub fn exit_code(&self) -> u8 {
        self.code
    }

    /// The last finished chat's failure, as the client's error line.
    pub fn take_error(&mut self) -> Option<String> {
        self.error.take()
    }

    // ----- helpers ------------------------------------------------------

    /// Sends a typed message (or a file's contents, echoed as `what`).
    fn send_typed(
        &mut self,
        msg: Vec<u8>,
        what: Option<String>,
        session: Option<&mut Session>,
        screen: &mut impl Screen,
        now: Instant,
    ) {
        // Still connecting, or connected and waiting for the peer's HELLO.
        let connecting = self.dialing.is_some()
            || session
                .as_ref()
                .is_some_and(|s| !s.handshake_done() && !s.is_closed());
        let echo = what.as_ref().map_or(&msg[..], |w| w.as_bytes()).to_vec();
        match session.map(|s| s.handle_input(Cow::Owned(msg), now)) {
            Some(Ok(id)) => screen.echo_sent(id, &echo, now),
            Some(Err(InputRefused::TooLarge { .. })) => {} // the session reports it
            None | Some(Err(InputRefused::NotOpen)) => {
                let message = if connecting {
                    "not sent: not connected yet"
                } else {
                    "not sent: nobody is connected"
                };
                screen.show(&Line::Error { message }, now);
            }
        }
    }

    fn show_refused(&self, refused: &FileRefused, screen: &mut impl Screen, now: Instant) {
        let message = refused.to_string();
        screen.show(&Line::Error { message: &message }, now);
    }
}

/// The `✓` line of our message `id` that reached the room, `rtt` being
/// its ACK's (the time to the slowest recipient).
fn show_reached(
    id: u64,
    len: u64,
    rtt: Duration,
    tally: &Tally,
    screen: &mut impl Screen,
    now: Instant,
) {
    let recipients: Vec<(&[u8], Fate)> = tally
        .recipients
        .iter()
        .map(|(n, fate)| (&n[..], *fate))
        .collect();
    let line = Line::Reached {
        id,
        len,
        reached: tally.reached,
        of: tally.of,
        slowest: tally.slowest.as_ref().map(|(_, n)| (rtt, &n[..])),
        recipients: &recipients,
    };
    screen.show(&line, now);
}

/// `/help`: the keys and the commands, as notice lines.
pub const HELP: &[&str] = &[
    "keys: Enter send, Ctrl-J new line, Up/Down earlier lines, Ctrl-L clear the screen, Ctrl-Z suspend",
    "keys: Left/Right, Alt-B/F (by word), Home/End, Ctrl-A/E move; Backspace, Ctrl-W, Ctrl-U/K delete",
    "keys: Ctrl-C clears the draft, and on an empty one leaves; Ctrl-D on an empty draft leaves",
    "commands: /quit leave, /stats the summary so far, /send PATH a file as one message, // a line that starts with /",
    "commands: /next (server) end this chat and wait for the next client",
];

/// The hint on the first screen of an interactive chat.
pub const HINT: &str = "type /help for commands, Ctrl-D to leave";

/// The name shown for a peer before its HELLO, or with an empty name.
const DEFAULT_PEER: &[u8] = b"peer";

/// Shown if a session's events come before the shell named its address
/// (it always does; this keeps the line well-formed regardless).
const UNKNOWN_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

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

/// How a chat's end reads, the exit code it implies, and the error line a
/// client prints for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub reason: String,
    pub code: u8,
    pub error: Option<String>,
}

/// How a chat that ended with `end` reads, with `undelivered` messages.
pub fn describe_end(end: &End, peer: &[u8], undelivered: u64) -> Ending {
    let who = peer_label(peer);
    let delivered_code = if undelivered == 0 {
        exit::OK
    } else {
        exit::UNDELIVERED
    };
    let (reason, code, error) = match end {
        End::Local(_) => ("you left".to_string(), delivered_code, None),
        End::Peer {
            reason: ByeReason::Normal,
            ..
        } => (format!("{who} left"), delivered_code, None),
        End::Peer {
            reason: ByeReason::Busy,
            ..
        } => {
            let msg = "server is busy with another chat".to_string();
            (msg.clone(), exit::BUSY, Some(msg))
        }
        End::Peer { reason, detail } => {
            let mut msg = format!("{who} ended the chat: {reason}");
            if !detail.is_empty() {
                msg.push_str(": ");
                msg.push_str(&escape_to_string(detail));
            }
            let code = match reason {
                ByeReason::KeyRefused => exit::KEY,
                _ => exit::FAILURE,
            };
            (msg.clone(), code, Some(msg))
        }
        End::Failed(e @ SessionError::KeyRefused(_)) => {
            (e.to_string(), exit::KEY, Some(e.to_string()))
        }
        End::Failed(e) => (e.to_string(), exit::FAILURE, Some(e.to_string())),
        End::Lost(msg) => (msg.clone(), exit::FAILURE, Some(msg.clone())),
    };
    Ending {
        reason,
        code,
        error,
    }
}

mod member;

#[cfg(test)]
mod tests;
