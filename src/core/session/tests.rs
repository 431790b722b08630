//! Session tests: two sessions wired back to back in memory on a
//! simulated clock, plus hand-made frames for the error paths.

use super::*;
use crate::core::protocol::{DecodeError, decode, encode};
use crate::core::queue_limit;

const MS: Duration = Duration::from_millis(1);

fn cfg(name: &str) -> Config {
    Config::for_tests(name)
}

/// Owned copy of an event, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Connected(Vec<u8>, u64),
    Sent(u64, u64),
    Acked(u64, u64, Duration),
    Message(u64, Vec<u8>),
    /// A streamed message: a piece, and the piece that completes it.
    Part(u64, Vec<u8>),
    Last(u64, Vec<u8>),
    Refused(u64, u64),
    Skipped(u64),
    Ended,
    Joined,
    /// A room message: id, sender, text; `RoomPart` a piece of one.
    Room(u64, Vec<u8>, Vec<u8>),
    RoomPart(u64, Vec<u8>, Vec<u8>),
    Receipt(u64, ReceiptStatus, Vec<u8>, Duration),
}

fn events(s: &mut Session) -> Vec<Ev> {
    let mut out = Vec::new();
    while let Some(e) = s.poll_event() {
        out.push(match e {
            Event::Connected { name, max_message } => Ev::Connected(name.to_vec(), max_message),
            Event::Sent { id, len } => Ev::Sent(id, len),
            Event::Acked { id, len, rtt } => Ev::Acked(id, len, rtt),
            Event::Message {
                id,
                data,
                continues: false,
            } => Ev::Message(id, data.to_vec()),
            Event::Message { id, data, .. } => Ev::Last(id, data.to_vec()),
            Event::MessagePart { id, data } => Ev::Part(id, data.to_vec()),
            Event::Refused { len, limit } => Ev::Refused(len, limit),
            Event::Skipped { limit } => Ev::Skipped(limit),
            Event::Ended => Ev::Ended,
            Event::Joined => Ev::Joined,
            Event::RoomMessage { id, from, data, .. } => Ev::Room(id, from.to_vec(), data.to_vec()),
            Event::RoomPart { id, from, data } => Ev::RoomPart(id, from.to_vec(), data.to_vec()),
            Event::Receipt {
                id,
                status,
                name,
                rtt,
            } => Ev::Receipt(id, status, name.to_vec(), rtt),
        });
    }
    out
}

/// Moves everything `from` wants to send into `to`'s receive buffer,
/// then lets `to` decode what it can.
fn pump(from: &mut Session, wire: &mut Vec<u8>, to: &mut Session, now: Instant) {
    loop {
        let out = from.poll_transmit().bytes;
        if out.is_empty() {
            break;
        }
        let n = out.len();
        wire.extend_from_slice(out);
        from.handle_written(n, now);
    }
    let used = to.handle_peer_bytes(wire, now);
    wire.drain(..used);
}

/// A client and a server with in-memory wires and a fake clock.
struct Pair {
    c: Session,
    s: Session,
    c2s: Vec<u8>,
    s2c: Vec<u8>,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        let now = Instant::now();
        let mut p = Pair {
            c: Session::new(cfg("client"), now),
            s: Session::new(cfg("server"), now),
            c2s: Vec::new(),
            s2c: Vec::new(),
            now,
        };
        p.exchange();
        assert_eq!(
            events(&mut p.c),
            [Ev::Connected(b"server".to_vec(), 1 << 20)]
        );
        assert_eq!(
            events(&mut p.s),
            [Ev::Connected(b"client".to_vec(), 1 << 20)]
        );
        p
    }

    fn c_to_s(&mut self) {
        pump(&mut self.c, &mut self.c2s, &mut self.s, self.now);
    }

    fn s_to_c(&mut self) {
        pump(&mut self.s, &mut self.s2c, &mut self.c, self.now);
    }

    /// Runs both directions until nothing moves.
    fn exchange(&mut self) {
        for _ in 0..10_000 {
            let before = (self.c.written, self.s.written);
            self.c_to_s();
            self.s_to_c();
            if before == (self.c.written, self.s.written) {
                return;
            }
        }
        panic!("no quiescence");
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

fn send(s: &mut Session, msg: &[u8]) -> u64 {
    s.handle_input(Cow::Borrowed(msg), Instant::now())
        .expect("accepted")
}

#[test]
fn message_is_acked_with_the_simulated_rtt() {
    let mut p = Pair::new();
    assert_eq!(send(&mut p.c, b"hello"), 1);
    p.c_to_s(); // first byte leaves at t0
    p.advance(3 * MS);
    p.s_to_c(); // ack decoded at t0 + 3 ms
    assert_eq!(events(&mut p.s), [Ev::Message(1, b"hello".to_vec())]);
    assert_eq!(events(&mut p.c), [Ev::Sent(1, 5), Ev::Acked(1, 5, 3 * MS)]);
    let st = p.c.stats();
    assert_eq!(
        (st.sent, st.acked, st.rtt.n, st.rtt.min),
        (1, 1, 1, 3_000_000)
    );
    assert_eq!(p.s.stats().received, 1);
}

#[test]
fn rtt_starts_when_the_first_byte_is_written_not_when_queued() {
    let mut p = Pair::new();
    send(&mut p.c, b"x");
    p.advance(10 * MS); // queued, not yet written
    let n = p.c.poll_transmit().bytes.len();
    p.c.handle_written(1, p.now); // first byte handed over now
    p.advance(MS);
    p.c.handle_written(n - 1, p.now);
    // Deliver the frame by hand.
    let mut frame = Vec::new();
    encode(
        &Frame::Data {
            id: 1,
            last: true,
            chunk: b"x",
        },
        &mut frame,
    );
    p.s.handle_peer_bytes(&frame, p.now);
    p.advance(2 * MS);
    p.s_to_c();
    let acked: Vec<_> = events(&mut p.c)
        .into_iter()
        .filter(|e| matches!(e, Ev::Acked(..)))
        .collect();
    assert_eq!(acked, [Ev::Acked(1, 1, 3 * MS)]);
}

#[test]
fn transmit_says_which_writes_start_a_message() {
    let mut p = Pair::new();
    let starts = |s: &mut Session| s.poll_transmit().starts_message;
    assert_eq!(p.c.poll_transmit().bytes, b"");
    assert!(!starts(&mut p.c));
    send(&mut p.c, b"first");
    send(&mut p.c, b"second");
    let wire = p.c.poll_transmit().bytes.to_vec();
    let both = wire.len();
    let (_, first) = decode(&wire).unwrap().unwrap();
    assert!(starts(&mut p.c));
    p.c.handle_written(1, p.now);
    // The rest of "first" and all of "second": the second one starts here.
    assert!(starts(&mut p.c));
    p.c.handle_written(first - 1, p.now); // exactly "first"'s frame
    assert!(starts(&mut p.c));
    p.c.handle_written(1, p.now);
    assert!(!starts(&mut p.c), "only the rest of a started message");
    let rest = p.c.poll_transmit().bytes.len();
    p.c.handle_written(rest, p.now);
    assert!(!starts(&mut p.c));
    // The receiver's acks start nothing.
    assert_eq!(p.s.handle_peer_bytes(&wire, p.now), both);
    assert!(!p.s.poll_transmit().bytes.is_empty());
    assert!(!starts(&mut p.s));
    // A message larger than a chunk: only its first chunk's write starts it.
    let big = vec![b'b'; MAX_CHUNK + 10];
    send(&mut p.s, &big);
    assert!(
        starts(&mut p.s),
        "acks first, then the message's first byte"
    );
    let out = p.s.poll_transmit().bytes.len();
    p.s.handle_written(out, p.now);
    assert!(!p.s.poll_transmit().bytes.is_empty(), "the second chunk");
    assert!(!starts(&mut p.s));
}

/// The loop skips a flush when `has_transmit` says there is nothing: it
/// must say yes whenever `poll_transmit` has bytes, through messages both
/// ways, one of many chunks, partial writes and the goodbye.
#[test]
fn has_transmit_never_hides_bytes() {
    fn pump_checked(from: &mut Session, wire: &mut Vec<u8>, to: &mut Session, now: Instant) {
        loop {
            let said = from.has_transmit();
            let out = from.poll_transmit().bytes;
            assert!(said || out.is_empty(), "{} bytes hidden", out.len());
            if out.is_empty() {
                break;
            }
            // Partial writes, as a full socket makes them.
            let n = out.len().min(1000);
            wire.extend_from_slice(&out[..n]);
            from.handle_written(n, now);
        }
        let used = to.handle_peer_bytes(wire, now);
        wire.drain(..used);
    }
    let mut p = Pair::new();
    assert!(!p.c.has_transmit() && !p.s.has_transmit());
    // Queued whole, not encoded yet: the outbox is still empty.
    send(&mut p.c, &vec![b'b'; 5 * MAX_CHUNK + 7]);
    send(&mut p.c, b"small");
    send(&mut p.s, b"the other way");
    for _ in 0..1_000 {
        pump_checked(&mut p.c, &mut p.c2s, &mut p.s, p.now);
        pump_checked(&mut p.s, &mut p.s2c, &mut p.c, p.now);
    }
    assert_eq!(p.c.stats().acked, 2);
    assert_eq!(p.s.stats().acked, 1);
    assert!(!p.c.has_transmit() && !p.s.has_transmit(), "all written");
    p.c.close(ByeReason::Normal);
    assert!(p.c.has_transmit(), "the BYE");
    pump_checked(&mut p.c, &mut p.c2s, &mut p.s, p.now);
    assert!(!p.c.has_transmit());
}

#[test]
fn ack_is_queued_before_the_message_is_shown() {
    let mut p = Pair::new();
    send(&mut p.c, b"ping");
    p.c_to_s();
    // No display work done yet on the server, and the ack is already out.
    let out = p.s.poll_transmit().bytes.to_vec();
    assert_eq!(decode(&out), Ok(Some((Frame::Ack { id: 1 }, out.len()))));
    assert_eq!(events(&mut p.s), [Ev::Message(1, b"ping".to_vec())]);
}

#[test]
fn both_directions_and_ids_count_from_one_per_side() {
    let mut p = Pair::new();
    for i in 0..5u8 {
        send(&mut p.c, &[b'c', i]);
        send(&mut p.s, &[b's', i]);
    }
    p.exchange();
    let c = events(&mut p.c);
    let s = events(&mut p.s);
    for i in 1..=5u64 {
        assert!(c.contains(&Ev::Message(i, vec![b's', i as u8 - 1])));
        assert!(s.contains(&Ev::Message(i, vec![b'c', i as u8 - 1])));
    }
    assert_eq!(p.c.stats().acked, 5);
    assert_eq!(p.s.stats().acked, 5);
    assert_eq!(p.c.outstanding(), 0);
}

#[test]
fn empty_message_and_every_byte_value() {
    let mut p = Pair::new();
    let all: Vec<u8> = (0..=255).collect();
    send(&mut p.c, b"");
    send(&mut p.c, &all);
    p.exchange();
    assert_eq!(
        events(&mut p.s),
        [Ev::Message(1, vec![]), Ev::Message(2, all)]
    );
}

#[test]
fn large_message_is_chunked_and_acks_flow_between_chunks() {
    let mut p = Pair::new();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    send(&mut p.c, &big);
    send(&mut p.s, b"small one");
    // One transmit holds at most a couple of chunks.
    assert!(p.c.poll_transmit().bytes.len() <= queue_limit::MIN + protocol::MAX_BODY + 64);
    // Deliver the server's small message to the client mid-transfer: the
    // client's ack must appear in its outbox ahead of most of the data.
    p.s_to_c();
    p.c_to_s();
    p.exchange();
    assert_eq!(
        events(&mut p.s),
        [
            Ev::Sent(1, 9),
            Ev::Acked(1, 9, Duration::ZERO),
            Ev::Message(1, big)
        ]
    );
    assert_eq!(p.c.stats().acked, 1);
}

#[test]
fn a_large_message_is_freed_after_its_ack_not_when_its_last_chunk_leaves() {
    let mut p = Pair::new();
    let big = vec![5u8; SPENT_MIN];
    send(&mut p.c, &big);
    // Every chunk written, the ack not yet read: the buffer is kept, even
    // through the turns' event polls.
    p.c_to_s();
    while !p.c.pending.is_empty() {
        p.c_to_s();
        events(&mut p.c);
    }
    assert_eq!(p.c.spent.as_ref().map(|(id, _)| *id), Some(1));
    p.exchange();
    assert_eq!(p.c.stats().acked, 1);
    assert!(
        p.c.spent.is_some(),
        "freed at the end of the turn, not in the ack path"
    );
    events(&mut p.c);
    assert!(p.c.spent.is_none());
    assert_eq!(events(&mut p.s), [Ev::Message(1, big)]);
}

#[test]
fn exact_chunk_multiple_completes() {
    let mut p = Pair::new();
    let msg = vec![7u8; 2 * MAX_CHUNK];
    send(&mut p.c, &msg);
    p.exchange();
    assert_eq!(events(&mut p.s), [Ev::Message(1, msg)]);
    assert_eq!(p.c.stats().acked, 1);
}

#[test]
fn message_over_peer_limit_is_refused_locally() {
    let now = Instant::now();
    let mut small = cfg("tiny");
    small.max_message = 4;
    let mut c = Session::new(cfg("c"), now);
    let mut s = Session::new(small, now);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    pump(&mut c, &mut a, &mut s, now);
    pump(&mut s, &mut b, &mut c, now);
    events(&mut c);
    assert_eq!(
        c.handle_input(Cow::Borrowed(b"12345"), now),
        Err(InputRefused::TooLarge { len: 5, limit: 4 })
    );
    assert_eq!(send(&mut c, b"1234"), 1);
    assert_eq!(events(&mut c), [Ev::Refused(5, 4), Ev::Sent(1, 4)]);
    assert_eq!(c.stats().undelivered(), 2); // one in flight, one refused
}

#[test]
fn skipped_input_counts_as_refused_once_open() {
    let now = Instant::now();
    let mut c = Session::new(cfg("c"), now);
    // Before the handshake: nobody to count for; the caller reports it.
    assert!(!c.handle_input_skipped());
    assert_eq!(c.stats().refused, 0);
    let mut s = Session::new(cfg("s"), now);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    pump(&mut c, &mut a, &mut s, now);
    pump(&mut s, &mut b, &mut c, now);
    assert!(c.handle_input_skipped());
    assert_eq!((c.stats().refused, c.stats().undelivered()), (1, 1));
    // Reported after the Connected event of the same turn, in order.
    let evs = events(&mut c);
    let limit = cfg("c").max_message;
    assert!(
        matches!(evs[..], [Ev::Connected(..), Ev::Skipped(l)] if l == limit),
        "{evs:?}"
    );
}

#[test]
fn receiving_over_our_limit_is_an_error() {
    let now = Instant::now();
    let mut s = Session::new(
        Config {
            max_message: 3,
            ..cfg("s")
        },
        now,
    );
    let mut bytes = hello(b"liar", 1 << 30);
    encode(
        &Frame::Data {
            id: 1,
            last: true,
            chunk: b"four",
        },
        &mut bytes,
    );
    s.handle_peer_bytes(&bytes, now);
    assert_eq!(
        s.end(),
        Some(&End::Failed(SessionError::TooLarge { limit: 3 }))
    );
    assert_eq!(last_bye(&mut s), ByeReason::MessageTooLarge);
}

fn hello(name: &[u8], max: u64) -> Vec<u8> {
    let mut v = Vec::new();
    encode(
        &Frame::Hello(Hello {
            version: protocol::VERSION,
            max_message: max,
            name,
        }),
        &mut v,
    );
    v
}

/// The reason of the BYE at the end of the outbox.
fn last_bye(s: &mut Session) -> ByeReason {
    let mut out = s.poll_transmit().bytes;
    let mut reason = None;
    while let Some((f, n)) = decode(out).unwrap() {
        if let Frame::Bye { reason: r, .. } = f {
            reason = Some(r);
        }
        out = &out[n..];
    }
    reason.expect("a BYE was queued")
}

fn server_fed(bytes: &[u8]) -> Session {
    let now = Instant::now();
    let mut s = Session::new(cfg("s"), now);
    s.handle_peer_bytes(bytes, now);
    s
}

#[test]
fn protocol_errors_end_with_bye() {
    let mut stray = hello(b"p", 10);
    encode(&Frame::Ack { id: 1 }, &mut stray);
    let mut ooo = hello(b"p", 10);
    encode(
        &Frame::Data {
            id: 2,
            last: true,
            chunk: b"",
        },
        &mut ooo,
    );
    let mut dup = hello(b"p", 10);
    dup.extend_from_slice(&hello(b"p", 10));
    let mut unknown = hello(b"p", 10);
    unknown.extend_from_slice(&[0, 0, 0, 0, 0x7f]);
    let mut data_first = Vec::new();
    encode(
        &Frame::Data {
            id: 1,
            last: true,
            chunk: b"",
        },
        &mut data_first,
    );
    let cases: Vec<(Vec<u8>, SessionError)> = vec![
        (stray, SessionError::StrayAck { id: 1 }),
        (
            ooo,
            SessionError::OutOfOrder {
                expected: 1,
                got: 2,
            },
        ),
        (dup, SessionError::Unexpected("a second HELLO")),
        (
            unknown,
            SessionError::Protocol(DecodeError::UnknownType(0x7f)),
        ),
        (data_first, SessionError::Unexpected("a frame before HELLO")),
        (
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            SessionError::NotDuet {
                first: b"GET / HTTP/1.1\r\n".to_vec(),
            },
        ),
    ];
    for (bytes, want) in cases {
        let mut s = server_fed(&bytes);
        assert_eq!(s.end(), Some(&End::Failed(want.clone())), "{want}");
        assert!(s.is_closed());
        assert_eq!(last_bye(&mut s), ByeReason::ProtocolError);
    }
}

#[test]
fn version_mismatch_is_named() {
    let mut v = Vec::new();
    encode(
        &Frame::Hello(Hello {
            version: 2,
            max_message: 1,
            name: b"future",
        }),
        &mut v,
    );
    let mut s = server_fed(&v);
    assert_eq!(
        s.end(),
        Some(&End::Failed(SessionError::Version { peer: 2 }))
    );
    assert_eq!(last_bye(&mut s), ByeReason::VersionMismatch);
    assert!(
        s.end()
            .map(|e| format!("{e:?}"))
            .unwrap()
            .contains("Version")
    );
}

/// A later version may lay out HELLO differently after the magic and the
/// version: it still gets BYE(version mismatch), never "not a duet peer".
#[test]
fn version_mismatch_is_found_whatever_the_hello_layout() {
    for rest in [&b""[..], b"x", &[0u8; 300]] {
        let mut v = ((6 + rest.len()) as u32).to_be_bytes().to_vec();
        v.push(protocol::kind::HELLO);
        v.extend_from_slice(b"DUET\x00\x02");
        v.extend_from_slice(rest);
        let mut s = server_fed(&v);
        assert_eq!(
            s.end(),
            Some(&End::Failed(SessionError::Version { peer: 2 })),
            "{} bytes after the version",
            rest.len()
        );
        assert_eq!(last_bye(&mut s), ByeReason::VersionMismatch);
    }
}

#[test]
fn eof_mid_frame_or_mid_message_is_truncation_and_clean_eof_is_no_bye() {
    let mut s = server_fed(&hello(b"p", 1 << 20));
    s.handle_eof(3);
    assert_eq!(s.end(), Some(&End::Failed(SessionError::Truncated)));

    let mut bytes = hello(b"p", 1 << 20);
    encode(
        &Frame::Data {
            id: 1,
            last: false,
            chunk: &[0; 10],
        },
        &mut bytes,
    );
    let mut s = server_fed(&bytes);
    s.handle_eof(0);
    assert_eq!(s.end(), Some(&End::Failed(SessionError::Truncated)));

    let mut s = server_fed(&hello(b"p", 1 << 20));
    s.handle_eof(0);
    assert_eq!(s.end(), Some(&End::Failed(SessionError::NoBye)));
}

#[test]
fn busy_server_says_hello_then_bye_busy() {
    let now = Instant::now();
    let mut srv = Session::new(cfg("srv"), now);
    srv.close(ByeReason::Busy);
    let mut c = Session::new(cfg("c"), now);
    let mut wire = Vec::new();
    pump(&mut srv, &mut wire, &mut c, now);
    assert_eq!(
        c.end(),
        Some(&End::Peer {
            reason: ByeReason::Busy,
            detail: vec![]
        })
    );
    assert!(!c.wants_input());
}

#[test]
fn input_end_waits_for_acks_then_says_bye() {
    let mut p = Pair::new();
    send(&mut p.c, b"a");
    send(&mut p.c, b"b");
    p.c.handle_input_end(p.now);
    assert!(!p.c.is_closed());
    assert!(!p.c.wants_input());
    p.exchange();
    assert_eq!(p.c.end(), Some(&End::Local(ByeReason::Normal)));
    assert_eq!(
        p.s.end(),
        Some(&End::Peer {
            reason: ByeReason::Normal,
            detail: vec![]
        })
    );
    assert_eq!(p.c.stats().undelivered(), 0);
}

#[test]
fn input_end_waits_for_a_message_half_received() {
    let mut p = Pair::new();
    send(&mut p.c, b"a");
    let n = p.c.poll_transmit().bytes.len();
    p.c.handle_written(n, p.now);
    p.c.handle_input_end(p.now);
    // The peer's message starts arriving, then our ack comes between its
    // chunks: leaving now would lose the peer's message.
    let mut bytes = data(1, false, b"first half,");
    encode(&Frame::Ack { id: 1 }, &mut bytes);
    p.c.handle_peer_bytes(&bytes, p.now);
    assert!(!p.c.is_closed(), "left in the middle of the peer's message");
    p.c.handle_peer_bytes(&data(1, true, b" second half"), p.now);
    assert_eq!(p.c.end(), Some(&End::Local(ByeReason::Normal)));
    let out = p.c.poll_transmit().bytes.to_vec();
    let (ack, n) = decode(&out).unwrap().unwrap();
    assert_eq!(ack, Frame::Ack { id: 1 });
    assert!(matches!(
        decode(&out[n..]).unwrap().unwrap().0,
        Frame::Bye { .. }
    ));
    assert!(events(&mut p.c).contains(&Ev::Message(1, b"first half, second half".to_vec())));
}

#[test]
fn linger_deadline_gives_up_on_a_message_that_never_completes() {
    let mut p = Pair::new();
    p.c.handle_input_end(p.now);
    assert!(p.c.is_closed(), "nothing to wait for: leaves at once");
    let mut p = Pair::new();
    p.c.handle_peer_bytes(&data(1, false, b"never finished"), p.now);
    p.c.handle_input_end(p.now);
    let deadline = p.c.poll_timeout().expect("a linger deadline");
    p.c.handle_timeout(deadline - MS);
    assert!(!p.c.is_closed());
    p.c.handle_timeout(deadline);
    assert_eq!(p.c.end(), Some(&End::Local(ByeReason::Normal)));
}

#[test]
fn linger_deadline_gives_up_on_missing_acks() {
    let mut p = Pair::new();
    send(&mut p.c, b"never acked");
    p.c_to_s();
    // The server never answers.
    p.c.handle_input_end(p.now);
    let deadline = p.c.poll_timeout().expect("a linger deadline");
    assert_eq!(deadline, p.now + Duration::from_secs(5));
    p.c.handle_timeout(deadline - MS);
    assert!(!p.c.is_closed());
    p.c.handle_timeout(deadline);
    assert_eq!(p.c.end(), Some(&End::Local(ByeReason::Normal)));
    assert_eq!(p.c.stats().undelivered(), 1);
}

#[test]
fn input_end_before_handshake_drains_once_open() {
    let now = Instant::now();
    let mut c = Session::new(cfg("c"), now);
    let mut s = Session::new(cfg("s"), now);
    c.handle_input_end(now);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    pump(&mut s, &mut b, &mut c, now);
    assert_eq!(c.end(), Some(&End::Local(ByeReason::Normal)));
    pump(&mut c, &mut a, &mut s, now);
    assert!(s.is_closed());
}

#[test]
fn handshake_deadline() {
    let now = Instant::now();
    let mut s = Session::new(cfg("s"), now);
    s.handle_peer_bytes(b"DU", now); // a dribble is not a HELLO
    assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(5)));
    s.handle_timeout(now + Duration::from_secs(5));
    assert_eq!(s.end(), Some(&End::Failed(SessionError::HandshakeTimeout)));
    assert_eq!(last_bye(&mut s), ByeReason::Timeout);
}

#[test]
fn a_fast_transfer_raises_the_queue_limit_and_small_messages_do_not() {
    let mut p = Pair::new();
    let mut t = p.now;
    // Stop-and-wait small messages, written at once.
    for _ in 0..1000 {
        send(&mut p.c, b"0123456789abcdef");
        let n = p.c.poll_transmit().bytes.len();
        t += Duration::from_micros(10);
        p.c.handle_written(n, t);
    }
    assert_eq!(p.c.kernel_unsent_limit(), queue_limit::KERNEL_MIN);
    let small = p.c.poll_transmit().bytes.len();
    // Three 1 MB messages that the kernel takes 64 KiB every 100 µs
    // (655 MB/s).
    for _ in 0..3 {
        send(&mut p.c, &vec![b'x'; 1_000_000]);
    }
    let mut largest = small;
    let mut write = |p: &mut Pair, most: usize, every: Duration| {
        let n = p.c.poll_transmit().bytes.len().min(most);
        largest = largest.max(p.c.poll_transmit().bytes.len());
        // Our own data never fills the outbox to the point where we stop
        // reading the peer: two peers sending to each other would both stop.
        assert!(p.c.wants_peer_bytes());
        t += every;
        p.c.handle_written(n, t);
    };
    for _ in 0..20 {
        write(&mut p, 64 * 1024, Duration::from_micros(100));
    }
    assert_eq!(p.c.kernel_unsent_limit(), queue_limit::MAX);
    // The path slows down (1 KiB every 5 ms) while the outbox still holds
    // a large refill: the limit falls back, the data stays queued, and the
    // peer is still read.
    for _ in 0..5 {
        write(&mut p, 1024, Duration::from_millis(5));
    }
    assert_eq!(p.c.kernel_unsent_limit(), queue_limit::KERNEL_MIN);
    assert!(p.c.poll_transmit().bytes.len() > 4 * queue_limit::MIN);
    while !p.c.poll_transmit().bytes.is_empty() {
        write(&mut p, 64 * 1024, Duration::from_micros(100));
    }
    assert!(largest >= queue_limit::MAX, "outbox refilled to {largest}");
    assert!(largest <= queue_limit::MAX + protocol::MAX_BODY + 64);
}

#[test]
fn ping_is_answered_with_pong() {
    let mut bytes = hello(b"p", 10);
    encode(&Frame::Ping(77), &mut bytes);
    let mut s = server_fed(&bytes);
    let out = s.poll_transmit().bytes.to_vec();
    let (_, n) = decode(&out).unwrap().unwrap(); // our HELLO
    assert_eq!(decode(&out[n..]).unwrap().unwrap().0, Frame::Pong(77));
}

#[test]
fn ack_flood_is_not_read_while_acks_cannot_be_written() {
    // A peer sends thousands of messages and never reads our acks.
    let mut bytes = hello(b"p", 10);
    for id in 1..=200_000u64 {
        encode(
            &Frame::Data {
                id,
                last: true,
                chunk: b"",
            },
            &mut bytes,
        );
    }
    let now = Instant::now();
    let mut s = Session::new(cfg("s"), now);
    // The loop shows the events of each turn; only the outbox stops it.
    let mut used = 0;
    while used < bytes.len() {
        used += s.handle_peer_bytes(&bytes[used..], now);
        events(&mut s);
        if !s.wants_peer_bytes() {
            break;
        }
    }
    assert!(used < bytes.len(), "stopped before the end");
    assert!(!s.wants_peer_bytes());
    assert!(s.poll_transmit().bytes.len() <= OUT_CAP + 64);
    // Once the acks drain, it reads again.
    let n = s.poll_transmit().bytes.len();
    s.handle_written(n, now);
    assert!(s.wants_peer_bytes());
}

#[test]
fn peer_bye_processes_everything_before_it() {
    let mut bytes = hello(b"p", 10);
    encode(
        &Frame::Data {
            id: 1,
            last: true,
            chunk: b"last words",
        },
        &mut bytes,
    );
    encode(
        &Frame::Bye {
            reason: ByeReason::Normal,
            detail: b"",
        },
        &mut bytes,
    );
    encode(
        &Frame::Data {
            id: 2,
            last: true,
            chunk: b"ignored",
        },
        &mut bytes,
    );
    let mut s = server_fed(&bytes);
    assert_eq!(
        events(&mut s),
        [
            Ev::Connected(b"p".to_vec(), 10),
            Ev::Message(1, b"last words".to_vec()),
            Ev::Ended
        ]
    );
}

#[test]
fn stdin_backpressure_caps_pending_bytes() {
    let mut p = Pair::new();
    let chunk = vec![1u8; 100_000];
    let mut accepted = 0;
    while p.c.wants_input() {
        send(&mut p.c, &chunk);
        accepted += 1;
        assert!(accepted < 100, "never pushed back");
    }
    assert!(p.c.pending_bytes <= PENDING_CAP + chunk.len());
    p.exchange();
    assert!(p.c.wants_input());
    assert_eq!(p.c.stats().acked, accepted);
}

/// The cost charged per message covers its queue entry.
#[test]
fn msg_cost_covers_each_queue_entry() {
    use std::mem::size_of;
    for (what, size) in [
        ("Pending", size_of::<Pending>()),
        ("Record", size_of::<Record>()),
    ] {
        assert!(size <= MSG_COST, "{what} is {size} bytes");
    }
}

/// Empty messages cost nothing in bytes: each queue must fill by count.
/// Nothing drains here, so the display queue (a `sent` event for each)
/// fills first.
#[test]
fn empty_messages_fill_the_display_queue_by_count() {
    let mut p = Pair::new();
    let mut accepted = 0usize;
    while p.c.wants_input() {
        send(&mut p.c, b"");
        accepted += 1;
        assert!(accepted <= DISPLAY_CAP, "never pushed back");
    }
    assert_eq!(accepted, DISPLAY_CAP / MSG_COST);
    events(&mut p.c);
    assert!(p.c.wants_input(), "free again once the events were shown");
}

/// With the events shown but nothing written, queued input fills by count.
#[test]
fn empty_messages_fill_the_pending_queue_by_count() {
    let mut p = Pair::new();
    let mut accepted = 0usize;
    while p.c.wants_input() {
        send(&mut p.c, b"");
        events(&mut p.c);
        accepted += 1;
        assert!(accepted <= MAX_IN_FLIGHT, "never pushed back");
    }
    assert!(p.c.pending.len() * MSG_COST >= PENDING_CAP);
    assert!(p.c.pending.len() * MSG_COST < PENDING_CAP + MSG_COST);
    // Both sides show their events each turn, as the loop does.
    for _ in 0..1_000 {
        p.exchange();
        events(&mut p.s);
        events(&mut p.c);
    }
    assert!(p.c.wants_input());
    assert_eq!(p.c.stats().acked, accepted as u64);
}

/// Written but never acknowledged, empty messages stop at the window.
#[test]
fn empty_messages_stop_at_the_window() {
    let mut p = Pair::new();
    let mut accepted = 0u64;
    while p.c.wants_input() {
        send(&mut p.c, b"");
        events(&mut p.c);
        let n = p.c.poll_transmit().bytes.len();
        p.c.handle_written(n, p.now); // lost on the way: never acked
        accepted += 1;
        assert!(accepted <= 2 * MAX_IN_FLIGHT as u64, "never pushed back");
    }
    assert_eq!(accepted, MAX_IN_FLIGHT as u64);
    assert_eq!(p.c.outstanding(), accepted);
}

fn live_cfg(name: &str) -> Config {
    Config {
        heartbeat: Some(Duration::from_secs(5)),
        dead_after: 3,
        write_timeout: Some(Duration::from_secs(30)),
        ..cfg(name)
    }
}

/// Frames in `s`'s outbox, written out so the next call sees new ones.
fn take_frames(s: &mut Session, now: Instant) -> Vec<String> {
    let out = s.poll_transmit().bytes.to_vec();
    s.handle_written(out.len(), now);
    let mut rest = &out[..];
    let mut names = Vec::new();
    while let Some((f, n)) = decode(rest).unwrap() {
        names.push(format!("{f:?}"));
        rest = &rest[n..];
    }
    names
}

fn open_session(cfg: Config, now: Instant) -> Session {
    let mut s = Session::new(cfg, now);
    s.handle_peer_bytes(&hello(b"peer", 1 << 20), now);
    take_frames(&mut s, now);
    events(&mut s);
    s
}

#[test]
fn silent_peer_gets_pings_then_is_declared_dead() {
    let t0 = Instant::now();
    let mut s = open_session(live_cfg("s"), t0);
    let sec = Duration::from_secs(1);
    assert_eq!(s.poll_timeout(), Some(t0 + 5 * sec));
    for (i, at) in [5u32, 10, 15].into_iter().enumerate() {
        let now = t0 + at * sec;
        s.handle_timeout(now - MS);
        assert_eq!(
            take_frames(&mut s, now),
            Vec::<String>::new(),
            "nothing early"
        );
        s.handle_timeout(now);
        assert_eq!(take_frames(&mut s, now), [format!("Ping({})", i + 1)]);
        assert!(!s.is_closed());
    }
    // heartbeat × (dead_after + 1) after the last sign of life:
    assert_eq!(s.poll_timeout(), Some(t0 + 20 * sec));
    s.handle_timeout(t0 + 20 * sec);
    assert_eq!(
        s.end(),
        Some(&End::Failed(SessionError::Dead {
            pings: 3,
            silent: 20 * sec
        }))
    );
    assert_eq!(last_bye(&mut s), ByeReason::Timeout);
}

#[test]
fn any_byte_from_the_peer_resets_the_heartbeat() {
    let t0 = Instant::now();
    let mut s = open_session(live_cfg("s"), t0);
    let sec = Duration::from_secs(1);
    s.handle_timeout(t0 + 5 * sec);
    s.handle_timeout(t0 + 10 * sec);
    assert_eq!(take_frames(&mut s, t0 + 10 * sec).len(), 2);
    // A partial frame is life too.
    let mut pong = Vec::new();
    encode(&Frame::Pong(2), &mut pong);
    let used = s.handle_peer_bytes(&pong[..3], t0 + 12 * sec);
    assert_eq!(used, 0);
    assert_eq!(s.poll_timeout(), Some(t0 + 17 * sec));
    s.handle_timeout(t0 + 30 * sec);
    assert!(!s.is_closed(), "one ping, not dead");
}

#[test]
fn a_long_transfer_is_not_a_dead_peer() {
    let t0 = Instant::now();
    let mut s = open_session(live_cfg("s"), t0);
    s.peer_max = u64::MAX;
    let big = vec![0u8; 4 << 20];
    s.handle_input(Cow::Borrowed(&big), t0).unwrap();
    // 64 KiB leaves every 2 s: slow, but progress; no ack for a minute.
    let mut now = t0;
    for _ in 0..30 {
        now += Duration::from_secs(2);
        s.handle_timeout(now);
        let n = s.poll_transmit().bytes.len().min(64 * 1024);
        s.handle_written(n, now);
    }
    assert!(!s.is_closed(), "{:?}", s.end());
}

#[test]
fn write_stall_ends_the_chat() {
    let t0 = Instant::now();
    let mut s = open_session(live_cfg("s"), t0);
    let sec = Duration::from_secs(1);
    // The peer keeps pinging (so it is alive) but never reads our data.
    s.handle_input(Cow::Borrowed(b"stuck"), t0 + sec).unwrap();
    assert_eq!(s.poll_timeout(), Some(t0 + 5 * sec), "heartbeat first");
    let mut ping = Vec::new();
    encode(&Frame::Ping(1), &mut ping);
    for at in [4u32, 8, 12, 16, 20, 24, 28] {
        s.handle_peer_bytes(&ping, t0 + at * sec);
        s.handle_timeout(t0 + at * sec);
    }
    assert!(!s.is_closed());
    assert_eq!(s.poll_timeout(), Some(t0 + 31 * sec));
    s.handle_timeout(t0 + 31 * sec);
    assert_eq!(
        s.end(),
        Some(&End::Failed(SessionError::WriteStall { after: 30 * sec }))
    );
}

#[test]
fn no_deadlines_when_idle_without_heartbeats() {
    let t0 = Instant::now();
    let s = open_session(cfg("s"), t0);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn eof_before_hello_says_so() {
    let mut s = server_fed(b"");
    s.handle_eof(0);
    assert_eq!(s.end(), Some(&End::Failed(SessionError::NoHello)));
}

#[test]
fn acked_span_runs_from_first_write_to_last_ack() {
    let mut p = Pair::new();
    assert_eq!(p.c.acked_span(), Duration::ZERO);
    send(&mut p.c, b"one");
    p.c_to_s(); // first byte written at t0
    p.advance(2 * MS);
    send(&mut p.c, b"two");
    p.c_to_s();
    p.advance(3 * MS);
    p.s_to_c(); // both acks decoded at t0 + 5 ms
    assert_eq!(p.c.acked_span(), 5 * MS);
}

/// A server that streams, after the handshake with a client that sent
/// `hello(b"c", ..)`; frames are fed raw so chunk boundaries are ours.
fn streaming_server(max_message: u64) -> Session {
    let now = Instant::now();
    let mut s = Session::new(
        Config {
            stream: true,
            max_message,
            ..cfg("s")
        },
        now,
    );
    s.handle_peer_bytes(&hello(b"c", 1 << 30), now);
    assert_eq!(events(&mut s), [Ev::Connected(b"c".to_vec(), 1 << 30)]);
    s.outbox.clear();
    s.out_pos = 0;
    s
}

fn data(id: u64, last: bool, chunk: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&Frame::Data { id, last, chunk }, &mut out);
    out
}

#[test]
fn streamed_message_arrives_in_pieces_and_is_acked_once_complete() {
    let now = Instant::now();
    let mut s = streaming_server(1 << 20);
    s.handle_peer_bytes(&data(1, false, b"one "), now);
    assert_eq!(events(&mut s), [Ev::Part(1, b"one ".to_vec())]);
    assert!(
        s.poll_transmit().bytes.is_empty(),
        "no ack before the last chunk"
    );
    s.handle_peer_bytes(&data(1, false, b"two "), now);
    s.handle_peer_bytes(&data(1, true, b"three"), now);
    assert_eq!(
        events(&mut s),
        [
            Ev::Part(1, b"two ".to_vec()),
            Ev::Last(1, b"three".to_vec())
        ]
    );
    let mut ack = Vec::new();
    encode(&Frame::Ack { id: 1 }, &mut ack);
    assert_eq!(s.poll_transmit().bytes, &ack[..]);
    // A one-chunk message is still one whole event.
    s.handle_peer_bytes(&data(2, true, b"single"), now);
    assert_eq!(events(&mut s), [Ev::Message(2, b"single".to_vec())]);
    assert_eq!(s.stats().received, 2);
}

#[test]
fn streamed_message_counts_against_the_limit_across_pieces() {
    let now = Instant::now();
    let mut s = streaming_server(10);
    s.handle_peer_bytes(&data(1, false, b"123456"), now);
    s.handle_peer_bytes(&data(1, true, b"78901"), now);
    assert_eq!(
        s.end(),
        Some(&End::Failed(SessionError::TooLarge { limit: 10 }))
    );
    assert_eq!(events(&mut s), [Ev::Part(1, b"123456".to_vec()), Ev::Ended]);
}

#[test]
fn eof_inside_a_streamed_message_is_truncation() {
    let now = Instant::now();
    let mut s = streaming_server(1 << 20);
    s.handle_peer_bytes(&data(1, false, b"half"), now);
    s.handle_eof(0);
    assert_eq!(s.end(), Some(&End::Failed(SessionError::Truncated)));
    assert_eq!(events(&mut s), [Ev::Part(1, b"half".to_vec()), Ev::Ended]);
}

#[test]
fn streamed_pieces_waiting_for_display_push_back() {
    let now = Instant::now();
    let mut s = streaming_server(1 << 30);
    let chunk = vec![b'z'; MAX_CHUNK];
    let mut wire = Vec::new();
    for _ in 0..64 {
        wire.extend_from_slice(&data(1, false, &chunk));
    }
    let used = s.handle_peer_bytes(&wire, now);
    // Reading stops once DISPLAY_CAP bytes wait to be shown...
    assert!(!s.wants_peer_bytes());
    assert!(used < wire.len());
    let parts = events(&mut s).len();
    assert_eq!(parts * MAX_CHUNK, DISPLAY_CAP);
    // ...and resumes once they were taken.
    assert!(s.wants_peer_bytes());
    assert!(s.handle_peer_bytes(&wire[used..], now) > 0);
}

#[test]
fn absurd_durations_never_overflow_a_deadline() {
    let t0 = Instant::now();
    let huge = Duration::MAX;
    let cfg = Config {
        linger: huge,
        handshake_timeout: huge,
        heartbeat: Some(Duration::from_secs(u64::MAX / 2)),
        dead_after: 1000,
        write_timeout: Some(huge),
        ..cfg("s")
    };
    let mut s = Session::new(cfg.clone(), t0);
    assert!(
        s.poll_timeout()
            .is_some_and(|t| t > t0 + Duration::from_secs(1 << 32))
    );
    s.handle_timeout(t0 + Duration::from_secs(3600));
    assert!(!s.is_closed(), "a far deadline is not reached");
    s.handle_peer_bytes(&hello(b"peer", 1 << 20), t0);
    s.handle_input(Cow::Borrowed(b"x"), t0).unwrap();
    assert!(s.poll_timeout().is_some_and(|t| t > t0));
    // Unanswered pings multiply the heartbeat: no overflow there either.
    s.pings = 999;
    assert!(s.poll_timeout().is_some());
    s.handle_input_end(t0);
    s.handle_stop(t0, huge);
    s.handle_timeout(t0 + Duration::from_secs(3600));
    assert!(!s.is_closed());
    let mut s = Session::new(cfg, t0);
    s.handle_stop(t0, huge);
    assert!(s.is_closed());
}

#[test]
fn later_saturates_at_the_clock_limit() {
    let t0 = Instant::now();
    assert_eq!(
        later(t0, Duration::from_secs(5)),
        t0 + Duration::from_secs(5)
    );
    let far = later(t0, Duration::MAX);
    assert!(far > t0 + Duration::from_secs(1 << 32));
    assert!(far.checked_add(Duration::from_secs(1 << 40)).is_none());
}

/// The frames in `s`'s outbox, decoded, without writing them.
fn queued(s: &mut Session) -> Vec<(u8, Vec<u8>)> {
    let mut out = s.poll_transmit().bytes;
    let mut frames = Vec::new();
    while let Some((_, n)) = decode(out).unwrap() {
        frames.push((out[4], out[protocol::HEADER_LEN..n].to_vec()));
        out = &out[n..];
    }
    frames
}

#[test]
fn reserved_data_flag_bits_are_a_protocol_error() {
    for flags in [0x02u8, 0x80, 0xff] {
        let mut bytes = hello(b"p", 10);
        let mut d = Vec::new();
        encode(
            &Frame::Data {
                id: 1,
                last: true,
                chunk: b"x",
            },
            &mut d,
        );
        d[protocol::HEADER_LEN + 8] = flags;
        bytes.extend_from_slice(&d);
        let mut s = server_fed(&bytes);
        assert_eq!(
            s.end(),
            Some(&End::Failed(SessionError::Protocol(DecodeError::BadFlags(
                flags
            ))))
        );
        assert_eq!(last_bye(&mut s), ByeReason::ProtocolError);
        assert!(
            !events(&mut s).iter().any(|e| matches!(e, Ev::Message(..))),
            "not delivered"
        );
    }
}

#[test]
fn a_second_hello_of_any_version_is_a_protocol_error() {
    let mut bytes = hello(b"p", 10);
    bytes.extend_from_slice(&[0, 0, 0, 6, protocol::kind::HELLO]);
    bytes.extend_from_slice(b"DUET\x00\x02");
    let mut s = server_fed(&bytes);
    assert_eq!(
        s.end(),
        Some(&End::Failed(SessionError::Unexpected("a second HELLO")))
    );
    assert_eq!(last_bye(&mut s), ByeReason::ProtocolError);
}

/// A peer may follow its HELLO with messages at once, before ours has
/// reached it (it cannot know our limit yet): they are accepted in order.
#[test]
fn messages_right_behind_the_peers_hello_are_accepted() {
    let mut bytes = hello(b"p", 10);
    bytes.extend_from_slice(&data(1, true, b"early"));
    let mut s = server_fed(&bytes);
    assert!(s.is_open());
    assert_eq!(
        events(&mut s),
        [
            Ev::Connected(b"p".to_vec(), 10),
            Ev::Message(1, b"early".to_vec())
        ]
    );
    let frames = queued(&mut s);
    assert_eq!(frames.last().unwrap().0, protocol::kind::ACK);
    // Over our limit, it is BYE(message too large), as at any time.
    let mut bytes = hello(b"p", 10);
    bytes.extend_from_slice(&data(1, true, &[0; 101]));
    let mut small = Session::new(
        Config {
            max_message: 100,
            ..cfg("s")
        },
        Instant::now(),
    );
    small.handle_peer_bytes(&bytes, Instant::now());
    assert_eq!(
        small.end(),
        Some(&End::Failed(SessionError::TooLarge { limit: 100 }))
    );
}

/// Nobody answers a BYE with a BYE, and the FIN that follows a BYE (ours
/// or the peer's) is the normal end, not an error.
#[test]
fn a_bye_is_not_answered_and_the_fin_after_it_is_normal() {
    let mut bytes = hello(b"p", 10);
    encode(
        &Frame::Bye {
            reason: ByeReason::Normal,
            detail: b"",
        },
        &mut bytes,
    );
    let mut s = server_fed(&bytes);
    let kinds: Vec<u8> = queued(&mut s).iter().map(|f| f.0).collect();
    assert_eq!(kinds, [protocol::kind::HELLO], "only our HELLO, no BYE");
    s.handle_eof(0);
    let peer_left = End::Peer {
        reason: ByeReason::Normal,
        detail: vec![],
    };
    assert_eq!(s.end(), Some(&peer_left));

    // We said BYE; the peer's BYE crossing ours, and then its FIN, change
    // nothing.
    let mut s = server_fed(&hello(b"p", 10));
    s.handle_input_end(Instant::now());
    assert_eq!(s.end(), Some(&End::Local(ByeReason::Normal)));
    let mut bye = Vec::new();
    encode(
        &Frame::Bye {
            reason: ByeReason::Normal,
            detail: b"",
        },
        &mut bye,
    );
    s.handle_peer_bytes(&bye, Instant::now());
    s.handle_eof(0);
    assert_eq!(s.end(), Some(&End::Local(ByeReason::Normal)));
    let byes = queued(&mut s)
        .iter()
        .filter(|f| f.0 == protocol::kind::BYE)
        .count();
    assert_eq!(byes, 1);
}

/// The leaving race: a message whose DATA arrives after we said BYE is
/// neither acknowledged nor shown, so the sender, which gets our BYE
/// without its ACK, counts it as not delivered.
#[test]
fn a_message_crossing_our_bye_is_not_delivered_and_its_sender_knows() {
    let mut p = Pair::new();
    send(&mut p.c, b"crossing");
    p.s.handle_input_end(p.now); // nothing outstanding: BYE at once
    assert!(p.s.is_closed());
    p.exchange();
    assert!(
        !events(&mut p.s)
            .iter()
            .any(|e| matches!(e, Ev::Message(..))),
        "the server did not show it"
    );
    assert_eq!(
        p.c.end(),
        Some(&End::Peer {
            reason: ByeReason::Normal,
            detail: vec![]
        })
    );
    let st = p.c.stats();
    assert_eq!((st.sent, st.acked, st.undelivered()), (1, 0, 1));
}

/// A held session takes the peer's HELLO and nothing after it until
/// released: no message is acknowledged before the chat is granted.
#[test]
fn a_held_session_takes_nothing_after_hello_until_released() {
    let now = Instant::now();
    let mut s = Session::new(cfg("server"), now);
    s.hold_after_hello();
    let mut wire = hello(b"client", 1 << 20);
    let hello_len = wire.len();
    encode(
        &Frame::Data {
            id: 1,
            last: true,
            chunk: b"early",
        },
        &mut wire,
    );
    assert_eq!(s.handle_peer_bytes(&wire, now), hello_len);
    assert!(s.handshake_done());
    assert!(!s.wants_peer_bytes(), "held");
    assert_eq!(s.stats().received, 0);
    // Only our own HELLO waits to be sent: no ACK.
    let out = s.poll_transmit().bytes.to_vec();
    assert_eq!(decode(&out).unwrap().map(|(_, n)| n), Some(out.len()));
    s.release();
    assert!(s.wants_peer_bytes());
    assert_eq!(
        s.handle_peer_bytes(&wire[hello_len..], now),
        wire.len() - hello_len
    );
    assert_eq!(s.stats().received, 1);
    assert_eq!(
        events(&mut s),
        vec![
            Ev::Connected(b"client".to_vec(), 1 << 20),
            Ev::Message(1, b"early".to_vec())
        ]
    );
}

// ----- room hub additions ----------------------------------------------

/// Decodes every frame in `bytes`, owned enough for assertions.
fn frames(bytes: &[u8]) -> Vec<String> {
    let mut rest = bytes;
    let mut out = Vec::new();
    while let Some((f, n)) = decode(rest).unwrap() {
        out.push(format!("{f:?}"));
        rest = &rest[n..];
    }
    assert!(rest.is_empty());
    out
}

fn drain_out(s: &mut Session, now: Instant) -> Vec<u8> {
    let out = s.poll_transmit().bytes.to_vec();
    s.handle_written(out.len(), now);
    out
}

#[test]
fn a_plain_peer_answers_the_room_probe_with_pong() {
    let now = Instant::now();
    let mut hub = Session::new(cfg("hub"), now);
    hub.send_room_probe(now);
    let mut peer = Session::new(cfg("bob"), now);
    let (mut h2p, mut p2h) = (Vec::new(), Vec::new());
    pump(&mut hub, &mut h2p, &mut peer, now);
    assert_eq!(hub.room_answer(), None);
    pump(&mut peer, &mut p2h, &mut hub, now);
    assert_eq!(hub.room_answer(), Some(RoomAnswer::Plain));
    // Another PONG of the same value changes nothing.
    let mut pong = Vec::new();
    encode(&Frame::Pong(ROOM_PROBE), &mut pong);
    hub.handle_peer_bytes(&pong, now);
    assert_eq!(hub.room_answer(), Some(RoomAnswer::Plain));
    assert!(hub.is_open());
}

#[test]
fn a_join_answers_the_probe_and_is_an_error_anywhere_else() {
    let now = Instant::now();
    let mut hub = Session::new(cfg("hub"), now);
    hub.send_room_probe(now);
    let mut bytes = Vec::new();
    encode(
        &Frame::Hello(Hello {
            version: 1,
            max_message: 100,
            name: b"j",
        }),
        &mut bytes,
    );
    encode(&Frame::Join(ROOM_PROBE), &mut bytes);
    hub.handle_peer_bytes(&bytes, now);
    assert_eq!(hub.room_answer(), Some(RoomAnswer::Join));
    // A second JOIN, a JOIN without a probe, a RECEIPT: room frames
    // outside a room.
    let mut join = Vec::new();
    encode(&Frame::Join(ROOM_PROBE), &mut join);
    hub.handle_peer_bytes(&join, now);
    let room_err = End::Failed(SessionError::Unexpected("a room frame outside a room"));
    assert_eq!(hub.end(), Some(&room_err));

    let mut p = Pair::new();
    p.s.handle_peer_bytes(&join, p.now);
    assert_eq!(p.s.end(), Some(&room_err));
    let mut receipt = Vec::new();
    encode(
        &Frame::Receipt {
            id: 1,
            status: ReceiptStatus::Delivered,
            name: b"x",
        },
        &mut receipt,
    );
    p.c.handle_peer_bytes(&receipt, p.now);
    assert_eq!(p.c.end(), Some(&room_err));
}

#[test]
fn deferred_acks_leave_only_when_delivered_in_order() {
    let mut p = Pair::new();
    p.s.defer_acks();
    for m in [&b"one"[..], b"two"] {
        p.c.handle_input(Cow::Borrowed(m), p.now).unwrap();
    }
    p.c_to_s();
    assert_eq!(
        events(&mut p.s),
        [
            Ev::Message(1, b"one".to_vec()),
            Ev::Message(2, b"two".to_vec())
        ]
    );
    assert!(drain_out(&mut p.s, p.now).is_empty(), "no ack yet");
    p.now += 3 * MS;
    p.s.handle_delivered(1, p.now);
    p.s_to_c();
    assert_eq!(p.c.outstanding(), 1);
    p.s.handle_delivered(2, p.now);
    p.s_to_c();
    assert_eq!(p.c.outstanding(), 0);
    let acked: Vec<_> = events(&mut p.c)
        .into_iter()
        .filter(|e| matches!(e, Ev::Acked(..)))
        .collect();
    assert_eq!(
        acked,
        [Ev::Acked(1, 3, 3 * MS), Ev::Acked(2, 3, 3 * MS)],
        "the RTT covers the wait for the room"
    );
}

#[test]
fn receipts_and_close_with_are_framed_for_the_peer() {
    let now = Instant::now();
    let mut hub = Session::new(cfg("hub"), now);
    hub.send_room_probe(now);
    let mut bytes = Vec::new();
    encode(
        &Frame::Hello(Hello {
            version: 1,
            max_message: 100,
            name: b"j",
        }),
        &mut bytes,
    );
    encode(&Frame::Join(ROOM_PROBE), &mut bytes);
    hub.handle_peer_bytes(&bytes, now);
    drain_out(&mut hub, now);
    hub.handle_receipt(7, ReceiptStatus::Lost, b"al", now);
    hub.close_with(ByeReason::Timeout, b"you fell behind");
    hub.handle_receipt(8, ReceiptStatus::Delivered, b"al", now);
    assert_eq!(
        frames(&drain_out(&mut hub, now)),
        [
            "Receipt { id: 7, status: Lost, name: [97, 108] }",
            "Bye { reason: Timeout, detail: [121, 111, 117, 32, 102, 101, 108, 108, 32, 98, 101, 104, 105, 110, 100] }",
        ]
    );
    assert_eq!(hub.end(), Some(&End::Local(ByeReason::Timeout)));
}

/// What an idle session holds on the heap: the figure a room's memory per
/// member starts from (docs/ARCHITECTURE.md, "Rooms").
#[test]
fn an_idle_session_is_small_after_shrink_idle() {
    let mut p = Pair::new();
    for _ in 0..3 {
        p.c.handle_input(Cow::Borrowed(b"hello"), p.now).unwrap();
        p.s.handle_input(Cow::Borrowed(b"hello"), p.now).unwrap();
        p.exchange();
    }
    events(&mut p.c);
    events(&mut p.s);
    let warm = p.s.heap_bytes();
    p.s.shrink_idle();
    let idle = p.s.heap_bytes();
    let fresh = Session::new(cfg("fresh"), p.now).heap_bytes();
    eprintln!(
        "session heap: fresh {fresh} B, warm {warm} B, idle {idle} B, struct {} B",
        std::mem::size_of::<Session>()
    );
    assert!(idle < warm);
    // The server measured RTTs, so its histogram stays (see rtt.rs); every
    // buffer is given back.
    assert!(idle <= p.s.rtt.heap_bytes() + 64, "{idle}");
    // One that never measured: its HELLO written, nothing is left.
    let mut quiet = Session::new(cfg("quiet"), p.now);
    drain_out(&mut quiet, p.now);
    quiet.shrink_idle();
    assert!(quiet.heap_bytes() <= 64, "{}", quiet.heap_bytes());
    // It still works: buffers grow again on demand.
    p.s.handle_input(Cow::Borrowed(b"back"), p.now).unwrap();
    p.exchange();
    assert_eq!(p.s.outstanding(), 0);
}

// ----- room member ----------------------------------------------------

/// A client session greeted by a hub (HELLO, then the room PING), its
/// own HELLO and JOIN written; returns what it sent after its HELLO.
fn member(stream: bool, now: Instant) -> (Session, Vec<String>) {
    let mut m = Session::new(
        Config {
            stream,
            ..cfg("bob")
        },
        now,
    );
    m.join_rooms();
    let mut hub = Session::new(cfg("hub"), now);
    hub.send_room_probe(now);
    let greeting = drain_out(&mut hub, now);
    drain_out(&mut m, now);
    assert_eq!(m.handle_peer_bytes(&greeting, now), greeting.len());
    let sent = frames(&drain_out(&mut m, now));
    assert_eq!(
        events(&mut m),
        [Ev::Connected(b"hub".to_vec(), 1 << 20), Ev::Joined]
    );
    assert!(m.in_room());
    (m, sent)
}

#[test]
fn a_client_answers_the_room_probe_with_join_once() {
    let now = Instant::now();
    let (mut m, sent) = member(false, now);
    assert_eq!(sent, [format!("{:?}", Frame::Join(ROOM_PROBE))]);
    // Another room PING is a PING like any other.
    let mut ping = Vec::new();
    encode(&Frame::Ping(ROOM_PROBE), &mut ping);
    m.handle_peer_bytes(&ping, now);
    assert_eq!(
        frames(&drain_out(&mut m, now)),
        [format!("{:?}", Frame::Pong(ROOM_PROBE))]
    );
    // A session not told to join (a server's) answers PONG, and stays
    // out of the room.
    let mut p = Pair::new();
    encode(&Frame::Ping(ROOM_PROBE), &mut p.s2c);
    p.exchange();
    assert!(!p.c.in_room() && !p.s.in_room());
    assert!(p.s.is_open() && p.c.is_open());
}

#[test]
fn room_envelopes_name_the_sender_even_across_chunks() {
    let now = Instant::now();
    let (mut m, _) = member(false, now);
    let mut bytes = data(1, true, b"\x03bobhi");
    // The name cut between two chunks, then the hub's own (empty name).
    bytes.extend(data(2, false, b"\x05ca"));
    bytes.extend(data(2, false, b"rolx"));
    bytes.extend(data(2, true, b"y"));
    bytes.extend(data(3, true, b"\x00* welcome"));
    assert_eq!(m.handle_peer_bytes(&bytes, now), bytes.len());
    let ack = |id| format!("{:?}", Frame::Ack { id });
    assert_eq!(frames(&drain_out(&mut m, now)), [ack(1), ack(2), ack(3)]);
    assert_eq!(
        events(&mut m),
        [
            Ev::Room(1, b"bob".to_vec(), b"hi".to_vec()),
            Ev::Room(2, b"carol".to_vec(), b"xy".to_vec()),
            Ev::Room(3, Vec::new(), b"* welcome".to_vec()),
        ]
    );
    assert!(m.is_open());
}

#[test]
fn a_streamed_room_message_names_its_sender_in_every_piece() {
    let now = Instant::now();
    let (mut m, _) = member(true, now);
    let mut bytes = data(1, false, b"\x02al");
    bytes.extend(data(1, false, b"one "));
    bytes.extend(data(1, true, b"two"));
    m.handle_peer_bytes(&bytes, now);
    assert_eq!(
        events(&mut m),
        [
            Ev::RoomPart(1, b"al".to_vec(), b"one ".to_vec()),
            Ev::Room(1, b"al".to_vec(), b"two".to_vec()),
        ]
    );
}

#[test]
fn a_room_message_shorter_than_its_envelope_is_a_protocol_error() {
    let short = End::Failed(SessionError::Unexpected(
        "a room message shorter than its sender's name",
    ));
    // No name_len at all (an empty message), and a name_len past the end.
    for msg in [&b""[..], b"\x05bob"] {
        let now = Instant::now();
        let (mut m, _) = member(false, now);
        m.handle_peer_bytes(&data(1, true, msg), now);
        assert_eq!(m.end(), Some(&short), "{msg:?}");
        let out = frames(&drain_out(&mut m, now));
        assert!(out[0].starts_with("Bye"), "no ACK for it: {out:?}");
        assert_eq!(m.stats().received, 0);
    }
    // A name that ends exactly where the message does is an empty text.
    let now = Instant::now();
    let (mut m, _) = member(false, now);
    m.handle_peer_bytes(&data(1, true, b"\x03bob"), now);
    assert_eq!(events(&mut m), [Ev::Room(1, b"bob".to_vec(), Vec::new())]);
}

#[test]
fn receipts_come_with_their_rtt_and_only_for_messages_in_flight() {
    let t0 = Instant::now();
    let (mut m, _) = member(false, t0);
    m.handle_input(Cow::Borrowed(b"hi"), t0).unwrap();
    // Not written yet: the hub cannot have forwarded it.
    let receipt = |id, status, name: &[u8]| {
        let mut out = Vec::new();
        encode(&Frame::Receipt { id, status, name }, &mut out);
        out
    };
    drain_out(&mut m, t0);
    events(&mut m);
    m.handle_peer_bytes(&receipt(1, ReceiptStatus::Delivered, b"al"), t0 + MS);
    m.handle_peer_bytes(&receipt(1, ReceiptStatus::Lost, b"eve"), t0 + 2 * MS);
    let mut ack = Vec::new();
    encode(&Frame::Ack { id: 1 }, &mut ack);
    m.handle_peer_bytes(&ack, t0 + 3 * MS);
    assert_eq!(
        events(&mut m),
        [
            Ev::Receipt(1, ReceiptStatus::Delivered, b"al".to_vec(), MS),
            Ev::Receipt(1, ReceiptStatus::Lost, b"eve".to_vec(), 2 * MS),
            Ev::Acked(1, 2, 3 * MS),
        ]
    );
    // Message 1 is acknowledged; 2 was never sent.
    m.handle_peer_bytes(&receipt(2, ReceiptStatus::Delivered, b"al"), t0 + 4 * MS);
    assert_eq!(
        m.end(),
        Some(&End::Failed(SessionError::Unexpected(
            "a receipt for a message that is not in flight"
        )))
    );
}

#[test]
fn a_receipt_before_the_message_was_written_is_an_error() {
    let t0 = Instant::now();
    let (mut m, _) = member(false, t0);
    m.handle_input(Cow::Borrowed(b"hi"), t0).unwrap();
    let mut bytes = Vec::new();
    encode(
        &Frame::Receipt {
            id: 1,
            status: ReceiptStatus::Delivered,
            name: b"al",
        },
        &mut bytes,
    );
    m.handle_peer_bytes(&bytes, t0);
    assert!(matches!(m.end(), Some(End::Failed(_))), "{:?}", m.end());
}
