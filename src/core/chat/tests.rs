//! Controller tests: a client and a server session wired back to back in
//! memory on a simulated clock, each with its own controller, and a screen
//! that records what would be shown.

use super::*;
use crate::core::protocol::ReceiptStatus;
use crate::core::render::{self, Format, Stamp};
use crate::core::session::{Config, SessionError};

const MS: Duration = Duration::from_millis(1);
const ADDR: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    7777,
);

/// Records each shown line as its text rendering.
#[derive(Default)]
struct Recorder {
    lines: Vec<String>,
    /// A message is being shown as it arrives (as the display tracks).
    streaming: bool,
}

impl Screen for Recorder {
    fn show(&mut self, line: &Line<'_>, _now: Instant) {
        let mut out = Vec::new();
        render::render(Format::Text, line, Stamp::default(), &mut out);
        let text = String::from_utf8_lossy(&out);
        self.lines.extend(text.lines().map(str::to_string));
    }

    fn show_part(&mut self, from: &[u8], id: u64, data: &[u8], last: bool, _now: Instant) {
        let from = String::from_utf8_lossy(from);
        self.lines
            .push(format!("part {from} #{id} {} B last={last}", data.len()));
        self.streaming = !last;
    }

    fn cut_off(&mut self, from: &[u8], _now: Instant) {
        if std::mem::take(&mut self.streaming) {
            self.lines
                .push(format!("cut off {}", String::from_utf8_lossy(from)));
        }
    }

    fn echo_sent(&mut self, id: u64, data: &[u8], _now: Instant) {
        self.lines
            .push(format!("echo #{id} {}", String::from_utf8_lossy(data)));
    }
}

impl Recorder {
    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.lines)
    }

    fn has(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.contains(needle))
    }
}

fn session_cfg(name: &str) -> Config {
    Config::for_tests(name)
}

fn chat(role: Role) -> Chat {
    Chat::new(ChatConfig {
        role,
        bench: None,
        max_message: 1 << 20,
        linger: Duration::from_secs(5),
        encrypted: false,
    })
}

/// One side: its controller, its session, what it showed.
struct Side {
    chat: Chat,
    session: Session,
    screen: Recorder,
}

impl Side {
    fn new(role: Role, name: &str, t0: Instant) -> Side {
        let mut chat = chat(role);
        chat.handle_chat_start(ADDR);
        Side {
            chat,
            session: Session::new(session_cfg(name), t0),
            screen: Recorder::default(),
        }
    }

    fn show(&mut self, now: Instant) {
        self.chat
            .handle_events(&mut self.session, &mut self.screen, now);
    }

    fn line(&mut self, text: &str, now: Instant) {
        let Side {
            chat,
            session,
            screen,
        } = self;
        chat.handle_line(text.as_bytes().to_vec(), Some(session), screen, now);
    }
}

/// Moves what `from` has to send into `to`.
fn pump(from: &mut Session, to: &mut Session, now: Instant) {
    let mut wire = Vec::new();
    loop {
        let out = from.poll_transmit().bytes;
        if out.is_empty() {
            break;
        }
        wire.extend_from_slice(out);
        let n = out.len();
        from.handle_written(n, now);
    }
    let used = to.handle_peer_bytes(&wire, now);
    assert_eq!(used, wire.len());
}

/// A client (bob) and a server (alice) past the handshake, their
/// `connected` lines shown.
fn open_pair(t0: Instant) -> (Side, Side) {
    let mut c = Side::new(Role::Client, "bob", t0);
    let mut s = Side::new(Role::Server, "alice", t0);
    pump(&mut c.session, &mut s.session, t0);
    pump(&mut s.session, &mut c.session, t0);
    c.show(t0);
    s.show(t0);
    assert!(c.session.is_open() && s.session.is_open());
    (c, s)
}

#[test]
fn the_connected_line_names_the_peer_and_its_address() {
    let t0 = Instant::now();
    let (mut c, mut s) = open_pair(t0);
    assert_eq!(c.screen.take(), ["* connected to <alice> (127.0.0.1:7777)"]);
    assert_eq!(s.screen.take(), ["* connected to <bob> (127.0.0.1:7777)"]);
}

#[test]
fn a_peer_with_an_empty_name_is_called_peer() {
    let t0 = Instant::now();
    let mut c = Side::new(Role::Client, "bob", t0);
    let mut s = Side::new(Role::Server, "", t0);
    pump(&mut c.session, &mut s.session, t0);
    pump(&mut s.session, &mut c.session, t0);
    c.show(t0);
    assert_eq!(c.screen.take(), ["* connected to <peer> (127.0.0.1:7777)"]);
}

#[test]
fn a_typed_line_is_echoed_sent_acknowledged_and_shown_with_its_sender() {
    let t0 = Instant::now();
    let (mut c, mut s) = open_pair(t0);
    c.screen.take();
    s.screen.take();
    c.line("hello alice", t0);
    assert_eq!(c.screen.take(), ["echo #1 hello alice"]);
    pump(&mut c.session, &mut s.session, t0 + MS);
    s.show(t0 + MS);
    assert_eq!(s.screen.take(), ["<bob> hello alice"]);
    pump(&mut s.session, &mut c.session, t0 + 2 * MS);
    c.show(t0 + 2 * MS);
    // Sent at t0 + 1 ms (the write), acknowledged at t0 + 2 ms.
    assert_eq!(c.screen.take(), ["* #1 delivered in 1.000 ms (11 B)"]);
    assert_eq!(c.session.outstanding(), 0);
}

#[test]
fn commands() {
    let t0 = Instant::now();
    let (mut c, mut s) = open_pair(t0);
    c.screen.take();
    // `//` sends a leading slash.
    c.line("//etc/hosts is a path", t0);
    assert_eq!(c.screen.take(), ["echo #1 /etc/hosts is a path"]);
    c.line("/nonsense", t0);
    assert!(c.screen.take()[0].contains("unknown command (try /help, /quit, /stats, /send PATH"));
    c.line("/help", t0);
    let help = c.screen.take();
    assert_eq!(help.len(), HELP.len());
    for needle in [
        "Ctrl-D",
        "Ctrl-J",
        "/quit",
        "/stats",
        "/send PATH",
        "/next",
        "//",
    ] {
        assert!(
            help.iter().any(|l| l.contains(needle)),
            "{needle}: {help:?}"
        );
    }
    assert!(help.iter().all(|l| l.starts_with("* ")), "{help:?}");
    // /next is the server's.
    c.line("/next", t0);
    assert!(c.screen.take()[0].contains("/next is for a server"));
    assert!(c.session.is_open());
    c.line("/stats", t0);
    let stats = c.screen.take();
    assert!(
        stats[0].contains("--- chat with <alice> (plain) ---"),
        "{stats:?}"
    );
    assert!(stats[1].starts_with("1 sent, 0 acknowledged"), "{stats:?}");
    // /send: usage, then a request for the shell to read the file.
    c.line("/send", t0);
    assert!(c.screen.take()[0].contains("usage: /send PATH"));
    assert_eq!(c.chat.poll_request(), None);
    c.line("/send  notes.txt ", t0);
    assert_eq!(
        c.chat.poll_request(),
        Some(Request::ReadFile {
            path: "notes.txt".into(),
            max: 1 << 20
        })
    );
    assert_eq!(c.chat.poll_request(), None, "asked once");
    c.chat.handle_file(
        "notes.txt",
        Ok(b"line one\nline two".to_vec()),
        Some(&mut c.session),
        &mut c.screen,
        t0,
    );
    assert_eq!(c.screen.take(), ["echo #2 /send notes.txt (17 bytes)"]);
    pump(&mut c.session, &mut s.session, t0);
    assert_eq!(s.session.stats().received, 2);
}

#[test]
fn a_file_the_shell_refused_is_reported_and_a_too_large_one_counts_as_refused() {
    let t0 = Instant::now();
    let (mut c, _s) = open_pair(t0);
    c.screen.take();
    let refused = FileRefused::NotAFile {
        path: "/dev/zero".into(),
    };
    c.chat.handle_file(
        "/dev/zero",
        Err(refused),
        Some(&mut c.session),
        &mut c.screen,
        t0,
    );
    assert_eq!(
        c.screen.take(),
        ["* error: cannot send /dev/zero: not a regular file"]
    );
    let too_large = FileRefused::TooLarge(InputError::too_large(1 << 20));
    c.chat.handle_file(
        "big",
        Err(too_large),
        Some(&mut c.session),
        &mut c.screen,
        t0,
    );
    assert!(c.screen.lines.is_empty(), "the session reports it in order");
    c.show(t0);
    assert!(c.screen.has("not sent:"), "{:?}", c.screen.lines);
    assert_eq!(c.session.stats().refused, 1);
}

#[test]
fn a_line_without_a_chat_says_why_it_was_not_sent() {
    let t0 = Instant::now();
    let mut chat = chat(Role::Client);
    let mut screen = Recorder::default();
    chat.handle_dialing(Some(ADDR));
    chat.handle_line(b"too early".to_vec(), None, &mut screen, t0);
    assert_eq!(screen.take(), ["* error: not sent: not connected yet"]);
    chat.handle_dialing(None);
    chat.handle_line(b"too late".to_vec(), None, &mut screen, t0);
    assert_eq!(screen.take(), ["* error: not sent: nobody is connected"]);
    chat.handle_line(b"/stats".to_vec(), None, &mut screen, t0);
    assert_eq!(screen.take(), ["* error: no chat in progress"]);
    // Connected, but before the peer's HELLO.
    let mut session = Session::new(session_cfg("bob"), t0);
    chat.handle_line(b"hi".to_vec(), Some(&mut session), &mut screen, t0);
    assert_eq!(screen.take(), ["* error: not sent: not connected yet"]);
}

#[test]
fn piped_records_go_to_the_session_and_are_refused_without_one() {
    let t0 = Instant::now();
    let (mut c, _s) = open_pair(t0);
    c.screen.take();
    let Side {
        chat,
        session,
        screen,
    } = &mut c;
    chat.handle_record(Ok(Cow::Borrowed(b"one")), Some(session), screen, t0);
    assert_eq!(session.stats().sent, 1);
    assert!(screen.lines.is_empty(), "piped input is not echoed");
    chat.handle_record(Ok(Cow::Borrowed(b"two")), None, screen, t0);
    assert_eq!(screen.take(), ["* error: not sent: nobody is connected"]);
    chat.handle_record(Err(InputError::too_large(8)), None, screen, t0);
    assert_eq!(
        screen.take(),
        ["* error: not sent: input record longer than --max-message (8 bytes) was skipped"]
    );
    // The end of piped input: a client leaves once its messages are
    // acknowledged.
    chat.handle_input_end(Some(session), t0);
    assert!(!session.wants_input());
}

#[test]
fn prompt_labels() {
    let t0 = Instant::now();
    let server = chat(Role::Server);
    assert_eq!(server.prompt_label(None), "(nobody connected) > ");
    let mut client = chat(Role::Client);
    client.handle_dialing(Some(ADDR));
    assert_eq!(
        client.prompt_label(None),
        "(connecting to 127.0.0.1:7777) > "
    );
    client.handle_dialing(None);
    assert_eq!(client.prompt_label(None), "(chat ended) > ");
    let waiting = Session::new(session_cfg("bob"), t0);
    assert_eq!(client.prompt_label(Some(&waiting)), "(connecting) > ");
    // A server with a client's HELLO still to come is not connecting.
    let mut server = chat(Role::Server);
    server.handle_greeting(Some(ADDR));
    assert_eq!(server.prompt_label(None), "(greeting 127.0.0.1:7777) > ");
    server.handle_greeting(None);
    assert_eq!(server.prompt_label(None), "(nobody connected) > ");
    let (mut c, _s) = open_pair(t0);
    assert_eq!(c.chat.prompt_label(Some(&c.session)), "> ");
    c.line("one", t0);
    c.line("two", t0);
    assert_eq!(c.chat.prompt_label(Some(&c.session)), "(2 unacked) > ");
}

#[test]
fn stdin_is_wanted_by_a_prompt_always_and_otherwise_when_the_session_takes_input() {
    let t0 = Instant::now();
    let server = chat(Role::Server);
    let client = chat(Role::Client);
    assert!(server.wants_input(None, true, true));
    assert!(
        server.wants_input(None, false, true),
        "a typed line is refused"
    );
    assert!(!server.wants_input(None, false, false), "piped input waits");
    assert!(!client.wants_input(None, false, false));
    let (c, _s) = open_pair(t0);
    assert!(client.wants_input(Some(&c.session), false, false));
}

#[test]
fn a_peer_leaving_ends_the_chat_with_a_summary_and_exit_0() {
    let t0 = Instant::now();
    let (mut c, mut s) = open_pair(t0);
    s.screen.take();
    c.session.close(ByeReason::Normal);
    pump(&mut c.session, &mut s.session, t0);
    s.show(t0);
    assert!(s.chat.poll_end(&s.session, &mut s.screen, t0));
    let shown = s.screen.take();
    assert!(
        shown.contains(&"* chat ended: <bob> left".to_string()),
        "{shown:?}"
    );
    assert!(
        shown.contains(&"--- chat with <bob> (plain) ---".to_string()),
        "{shown:?}"
    );
    assert_eq!(s.chat.exit_code(), exit::OK);
    assert_eq!(s.chat.take_error(), None);
}

#[test]
fn undelivered_messages_make_exit_3() {
    let t0 = Instant::now();
    let (mut c, _s) = open_pair(t0);
    c.line("never acked", t0);
    c.session.close(ByeReason::Normal);
    assert!(c.chat.poll_end(&c.session, &mut c.screen, t0));
    assert!(c.screen.has("* chat ended: you left"));
    assert_eq!(c.chat.exit_code(), exit::UNDELIVERED);
}

#[test]
fn a_stop_signal_gives_its_code_whatever_was_delivered() {
    let t0 = Instant::now();
    let (mut c, _s) = open_pair(t0);
    c.line("pending", t0);
    c.chat
        .handle_stop_signal(libc::SIGTERM, Some(&mut c.session), t0);
    assert_eq!(c.chat.stopped(), Some(libc::SIGTERM));
    assert!(!c.session.is_closed(), "the first signal waits for acks");
    c.chat
        .handle_stop_signal(libc::SIGINT, Some(&mut c.session), t0);
    assert!(c.session.is_closed(), "a second closes at once");
    assert_eq!(
        c.chat.stopped(),
        Some(libc::SIGTERM),
        "the first one counts"
    );
    assert!(c.chat.poll_end(&c.session, &mut c.screen, t0));
    assert_eq!(
        c.chat.exit_code(),
        143,
        "the signal's code, even with one message undelivered"
    );
    // With everything delivered, the signal's code.
    let (mut c, _s) = open_pair(t0);
    c.chat
        .handle_stop_signal(libc::SIGTERM, Some(&mut c.session), t0);
    assert!(c.session.is_closed(), "nothing to wait for");
    assert!(c.chat.poll_end(&c.session, &mut c.screen, t0));
    assert_eq!(c.chat.exit_code(), 143);
}

/// Turned away, the client says so once: its error line (stderr). The
/// transcript has no "chat ended" for a chat that never began, and no
/// summary; JSON still has the `closed` event.
#[test]
fn a_busy_server_is_reported_once_with_no_summary_and_exit_4() {
    let t0 = Instant::now();
    let mut c = Side::new(Role::Client, "bob", t0);
    let mut s = Side::new(Role::Server, "alice", t0);
    s.session.close(ByeReason::Busy);
    pump(&mut s.session, &mut c.session, t0);
    c.show(t0);
    assert!(c.chat.poll_end(&c.session, &mut c.screen, t0));
    assert_eq!(c.screen.take(), Vec::<String>::new());
    let mut json = Vec::new();
    let reason = "server is busy with another chat";
    render::render(
        Format::Jsonl,
        &Line::TurnedAway { reason },
        Stamp::default(),
        &mut json,
    );
    assert!(
        String::from_utf8(json)
            .unwrap()
            .starts_with("{\"event\":\"closed\"")
    );
    assert_eq!(c.chat.exit_code(), exit::BUSY);
    assert_eq!(
        c.chat.take_error().as_deref(),
        Some("server is busy with another chat")
    );
}

/// A peer that never said HELLO (not duet, or gone first) had no chat:
/// the end is shown, with no summary of zeros.
#[test]
fn a_chat_that_never_began_has_no_summary() {
    let t0 = Instant::now();
    for role in [Role::Client, Role::Server] {
        let mut side = Side::new(role, "bob", t0);
        side.chat.handle_quit(Some(&mut side.session), t0);
        assert!(side.session.is_closed());
        assert!(side.chat.poll_end(&side.session, &mut side.screen, t0));
        assert_eq!(side.screen.take(), ["* chat ended: you left"], "{role:?}");
    }
}

/// The side that gave up on heartbeats explains it in its BYE from the
/// reader's side: "you did not answer", not "peer did not answer".
#[test]
fn a_heartbeat_timeout_reads_from_the_readers_side() {
    let t0 = Instant::now();
    let (mut c, mut s) = open_pair(t0);
    s.session = {
        let mut cfg = session_cfg("alice");
        cfg.heartbeat = Some(Duration::from_secs(1));
        Session::new(cfg, t0)
    };
    c.session = Session::new(session_cfg("bob"), t0);
    pump(&mut c.session, &mut s.session, t0);
    pump(&mut s.session, &mut c.session, t0);
    c.show(t0);
    c.screen.take();
    // The client never answers the pings.
    let mut now = t0;
    while !s.session.is_closed() {
        now += 500 * MS;
        s.session.handle_timeout(now);
        assert!(now < t0 + Duration::from_secs(60), "never declared dead");
    }
    pump(&mut s.session, &mut c.session, now);
    c.show(now);
    assert!(c.chat.poll_end(&c.session, &mut c.screen, now));
    let shown = c.screen.take();
    assert!(
        shown[0].starts_with(
            "* chat ended: <alice> ended the chat: timeout: you did not answer 3 heartbeats (silent for"
        ),
        "{shown:?}"
    );
    // Locally, the side that noticed says who did not answer: the peer.
    assert!(s.chat.poll_end(&s.session, &mut s.screen, now));
    assert!(
        s.screen.has("peer did not answer 3 heartbeats"),
        "{:?}",
        s.screen.lines
    );
}

/// `/next` ends the server's chat, not the server: the end says so and
/// the server says where it waits for the next client. A busy server says
/// whom it turned away.
#[test]
fn next_ends_the_chat_and_the_server_waits_for_the_next_client() {
    let t0 = Instant::now();
    let (_c, mut s) = open_pair(t0);
    let listen: SocketAddr = "[::]:7777".parse().unwrap();
    s.chat.handle_listening(listen, false, &mut s.screen, t0);
    s.screen.take();
    let other: SocketAddr = "192.0.2.9:4000".parse().unwrap();
    s.chat
        .handle_turned_away(other, Refusal::Busy, &mut s.screen, t0);
    assert_eq!(
        s.screen.take(),
        ["* turned away 192.0.2.9:4000: busy with the chat with <bob>"]
    );
    for (why, says) in [
        (Refusal::Outpaced, "another client greeted first"),
        (
            Refusal::TooManyGreetings,
            "too many connections waiting to greet",
        ),
        (
            Refusal::TooManyFromAddress,
            "too many connections waiting to greet from that address",
        ),
    ] {
        s.chat.handle_turned_away(other, why, &mut s.screen, t0);
        assert_eq!(
            s.screen.take(),
            [format!("* turned away 192.0.2.9:4000: {says}")]
        );
    }
    s.line("/next", t0);
    assert!(s.session.is_closed(), "nothing unacknowledged to wait for");
    assert!(!s.chat.quitting(), "the server stays");
    assert!(s.chat.poll_end(&s.session, &mut s.screen, t0));
    let shown = s.screen.take();
    assert_eq!(shown[0], "* chat ended: you ended it (/next)");
    assert_eq!(
        shown.last().unwrap(),
        "* waiting for the next client on [::]:7777"
    );
    assert_eq!(s.chat.exit_code(), exit::OK);
    // With --once, or after /quit, there is no next client.
    for once in [true, false] {
        let (mut c, mut s) = open_pair(t0);
        s.chat.handle_listening(listen, once, &mut s.screen, t0);
        if !once {
            s.chat.handle_quit(Some(&mut s.session), t0);
        }
        c.session.close(ByeReason::Normal);
        pump(&mut c.session, &mut s.session, t0);
        s.show(t0);
        assert!(s.chat.poll_end(&s.session, &mut s.screen, t0));
        assert!(
            !s.screen.has("waiting for the next"),
            "{:?}",
            s.screen.lines
        );
    }
}

#[test]
fn leaving_waits_for_acks_once_and_closes_when_asked_again() {
    let t0 = Instant::now();
    let (mut c, _s) = open_pair(t0);
    c.line("pending", t0);
    c.chat.handle_quit(Some(&mut c.session), t0);
    assert!(c.chat.quitting());
    assert!(!c.session.is_closed(), "waiting for the ack");
    assert!(!c.session.wants_input(), "input has ended");
    c.chat.handle_quit(Some(&mut c.session), t0 + MS);
    assert!(c.session.is_closed());
    // Before the handshake there is nothing to wait for.
    let mut chat = chat(Role::Client);
    let mut early = Session::new(session_cfg("bob"), t0);
    chat.handle_quit(Some(&mut early), t0);
    assert!(early.is_closed());
    // While connecting, leaving gives up at once, as Ctrl-C does.
    let mut chat = super::tests::chat(Role::Client);
    chat.handle_dialing(Some(ADDR));
    chat.handle_quit(None, t0);
    assert_eq!(chat.stopped(), Some(libc::SIGINT));
}

#[test]
fn the_bench_keeps_its_window_and_ends_its_input_after_the_last() {
    let t0 = Instant::now();
    let (mut c, mut s) = open_pair(t0);
    let mut bench = Chat::new(ChatConfig {
        role: Role::Client,
        bench: Some(BenchSpec {
            count: 5,
            size: 16,
            window: 2,
        }),
        max_message: 1 << 20,
        linger: Duration::from_secs(5),
        encrypted: false,
    });
    bench.handle_chat_start(ADDR);
    bench.feed_bench(&mut c.session, t0);
    assert_eq!(c.session.stats().sent, 2, "the window");
    for round in 1..=3 {
        let now = t0 + round * MS;
        pump(&mut c.session, &mut s.session, now);
        pump(&mut s.session, &mut c.session, now);
        bench.feed_bench(&mut c.session, now);
    }
    assert_eq!(c.session.stats().sent, 5);
    assert!(!c.session.wants_input(), "input ended after the last");
    // No per-message lines in a bench, a bench line at the end.
    bench.handle_events(&mut c.session, &mut c.screen, t0);
    assert!(!c.screen.has("delivered"), "{:?}", c.screen.lines);
}

#[test]
fn how_each_end_reads() {
    let peer = b"bob";
    let cases: &[(End, u64, &str, u8, bool)] = &[
        (
            End::Local(ByeReason::Normal),
            0,
            "you left",
            exit::OK,
            false,
        ),
        (
            End::Local(ByeReason::Normal),
            2,
            "you left",
            exit::UNDELIVERED,
            false,
        ),
        (
            End::Peer {
                reason: ByeReason::Normal,
                detail: Vec::new(),
            },
            0,
            "<bob> left",
            exit::OK,
            false,
        ),
        (
            End::Peer {
                reason: ByeReason::Busy,
                detail: Vec::new(),
            },
            0,
            "server is busy with another chat",
            exit::BUSY,
            true,
        ),
        (
            End::Peer {
                reason: ByeReason::ProtocolError,
                detail: b"bad\x1b[2J".to_vec(),
            },
            0,
            "<bob> ended the chat: protocol error: bad\\x1b[2J",
            exit::FAILURE,
            true,
        ),
        (
            End::Failed(SessionError::HandshakeTimeout),
            0,
            "",
            exit::FAILURE,
            true,
        ),
        (
            End::Lost("connection lost: connection reset by peer".into()),
            0,
            "connection lost: connection reset by peer",
            exit::FAILURE,
            true,
        ),
    ];
    for (end, undelivered, reason, code, error) in cases {
        let e = describe_end(end, peer, *undelivered);
        if !reason.is_empty() {
            assert_eq!(e.reason, *reason, "{end:?}");
        }
        assert_eq!(e.code, *code, "{end:?}");
        assert_eq!(e.error.is_some(), *error, "{end:?}");
        if let Some(err) = &e.error {
            assert_eq!(err, &e.reason, "the error line says what the notice says");
        }
    }
}

#[test]
fn a_message_shown_as_it_arrives_and_cut_off_by_the_end_is_reported() {
    let t0 = Instant::now();
    let mut c = Side::new(Role::Client, "bob", t0);
    let mut s = Side::new(Role::Server, "alice", t0);
    s.session = Session::new(
        Config {
            stream: true,
            ..session_cfg("alice")
        },
        t0,
    );
    pump(&mut c.session, &mut s.session, t0);
    pump(&mut s.session, &mut c.session, t0);
    s.show(t0);
    s.screen.take();
    c.chat.handle_record(
        Ok(Cow::Owned(vec![b'x'; 150_000])),
        Some(&mut c.session),
        &mut c.screen,
        t0,
    );
    let mut wire = Vec::new();
    loop {
        let out = c.session.poll_transmit().bytes;
        if out.is_empty() {
            break;
        }
        wire.extend_from_slice(out);
        let n = out.len();
        c.session.handle_written(n, t0);
    }
    // Only the first chunk arrives, then the connection fails.
    let used = s.session.handle_peer_bytes(&wire[..70_000], t0);
    assert!(used > 0);
    s.show(t0);
    assert_eq!(s.screen.take(), ["part bob #1 65536 B last=false"]);
    s.session.handle_lost("connection lost: reset".into());
    s.show(t0);
    assert_eq!(s.screen.take(), ["cut off bob"]);
}

// ----- a room member ----------------------------------------------------

/// A member (bob) joined to a hub's session, past the greeting, and the
/// hub's session (acks deferred, as a room's).
fn joined_member(t0: Instant) -> (Side, Session) {
    use crate::core::session::RoomAnswer;
    let mut c = Side::new(Role::Client, "bob", t0);
    c.session.join_rooms();
    let mut hub = Session::new(session_cfg("hub"), t0);
    hub.defer_acks();
    hub.send_room_probe(t0);
    pump(&mut c.session, &mut hub, t0);
    pump(&mut hub, &mut c.session, t0);
    pump(&mut c.session, &mut hub, t0);
    assert_eq!(hub.room_answer(), Some(RoomAnswer::Join));
    c.show(t0);
    assert_eq!(
        c.screen.take(),
        [
            "* connected to <hub> (127.0.0.1:7777)",
            "* joined the room at 127.0.0.1:7777 (hub <hub>)"
        ]
    );
    (c, hub)
}

/// `text` from `from` in the room envelope, as the hub forwards it.
fn forward(hub: &mut Session, from: &[u8], text: &[u8], now: Instant) {
    let mut env = Vec::new();
    crate::core::protocol::encode_envelope(from, text, &mut env);
    hub.handle_input(Cow::Owned(env), now).unwrap();
}

#[test]
fn a_room_member_sees_who_wrote_each_message() {
    let t0 = Instant::now();
    let (mut c, mut hub) = joined_member(t0);
    forward(&mut hub, b"", b"* welcome to the room", t0);
    forward(&mut hub, b"al", b"hi bob", t0);
    forward(&mut hub, b"e\x1b]2;x\x07ve", b"two\nlines", t0);
    pump(&mut hub, &mut c.session, t0);
    c.show(t0);
    assert_eq!(
        c.screen.take(),
        [
            "<hub> * welcome to the room",
            "<al> hi bob",
            "<e\\x1b]2;x\\x07ve> two",
            "<e\\x1b]2;x\\x07ve> lines",
        ]
    );
}

#[test]
fn a_room_members_message_shows_how_many_got_it_and_the_slowest() {
    let t0 = Instant::now();
    let (mut c, mut hub) = joined_member(t0);
    c.line("hello room", t0);
    c.line("again", t0);
    assert_eq!(c.screen.take(), ["echo #1 hello room", "echo #2 again"]);
    pump(&mut c.session, &mut hub, t0 + MS);
    hub.handle_receipt(1, ReceiptStatus::Delivered, b"al", t0 + MS);
    hub.handle_receipt(1, ReceiptStatus::Delivered, b"carol", t0 + MS);
    hub.handle_receipt(2, ReceiptStatus::Delivered, b"al", t0 + MS);
    pump(&mut hub, &mut c.session, t0 + 2 * MS);
    hub.handle_receipt(2, ReceiptStatus::Lost, b"carol", t0 + 3 * MS);
    hub.handle_delivered(1, t0 + 3 * MS);
    hub.handle_delivered(2, t0 + 3 * MS);
    pump(&mut hub, &mut c.session, t0 + 4 * MS);
    c.show(t0 + 4 * MS);
    // Sent at 1 ms, acknowledged at 4 ms.
    assert_eq!(
        c.screen.take(),
        [
            "\u{2713} #1 2/2 3.000 ms (slowest: <carol>)",
            "\u{2713} #2 1/2 3.000 ms (slowest: <al>; not delivered: <carol>)",
        ]
    );
    c.line("/stats", t0 + 5 * MS);
    let stats = c.screen.take();
    assert!(
        stats.contains(&"to <al>: 2 delivered, rtt min/avg/max = 1.000/1.000/1.000 ms".into()),
        "{stats:?}"
    );
    assert!(
        stats.contains(&"to <carol>: 1 delivered, rtt min/avg/max = 1.000/1.000/1.000 ms".into()),
        "{stats:?}"
    );
}

#[test]
fn a_room_ack_in_json_lists_each_recipient_with_its_rtt() {
    let recipients: &[(&[u8], member::Fate)] = &[
        (b"al", Ok(Duration::from_micros(410))),
        (b"eve", Err(ReceiptStatus::Lost)),
    ];
    let line = Line::Reached {
        id: 4,
        len: 2,
        reached: 1,
        of: 2,
        slowest: Some((Duration::from_micros(500), b"al")),
        recipients,
    };
    let mut out = Vec::new();
    render::render(Format::Jsonl, &line, Stamp::default(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"event\":\"room_ack\",\"ts_us\":0,\"mono_ns\":0,\"id\":4,\"len\":2,\"reached\":1,\"of\":2,\
         \"rtt_us\":500.000,\"recipients\":[{\"name\":\"al\",\"status\":\"delivered\",\"rtt_us\":410.000},\
         {\"name\":\"eve\",\"status\":\"lost\"}]}\n"
    );
    let msg = Line::RoomMessage {
        id: 1,
        from: b"al",
        data: b"hi",
    };
    let mut out = Vec::new();
    render::render(Format::Jsonl, &msg, Stamp::default(), &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"event\":\"message\",\"ts_us\":0,\"mono_ns\":0,\"id\":1,\"len\":2,\"from\":\"al\",\"text\":\"hi\"}\n"
    );
}

#[test]
fn a_room_member_keeps_figures_for_a_bounded_number_of_names() {
    let mut room = member::RoomView::default();
    for i in 0..(member::NAMES_MAX as u64 + 10) {
        let name = format!("m{i}");
        room.handle_receipt(1, ReceiptStatus::Delivered, name.as_bytes(), MS);
    }
    let figures = room.figures();
    assert_eq!(figures.len(), member::NAMES_MAX + 1);
    assert_eq!(figures.last().unwrap().name, None);
    assert_eq!(figures.last().unwrap().n, 10);
    let tally = room.take(1);
    assert_eq!((tally.reached, tally.of), (74, 74));
    assert_eq!(room.take(1).of, 0, "taken once");
}
