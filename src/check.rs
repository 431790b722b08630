//! Properties checked on arbitrary input (frames, sessions, escaping, the
//! command line, the encrypted transport): the bodies of the fuzz targets in
//! `fuzz/`, and of `tests/properties.rs`, which replays the fuzz corpus and
//! a seeded random stream on stable Rust so CI checks the same things.
//!
//! Each function takes raw bytes, never panics on valid behaviour, and
//! panics (an assertion) when a property breaks.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use crate::core::escape;
use crate::core::protocol::{self, ByeReason, Frame, Hello};
use crate::core::render;
use crate::core::session::{Config, Event, Session};
use crate::core::transport::{self, Role, Transport, TransportError};

/// Decoding in arbitrary chunks gives the same frames, the same error and
/// the same leftover as decoding all at once. The first byte picks the
/// chunk sizes.
pub fn decode_chunked(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let whole = decode_all(input, &[input.len().max(1)]);
    let sizes: Vec<usize> = (0..8)
        .map(|i| 1 + ((seed as usize >> i) & 0x7) * 3)
        .collect();
    let chunked = decode_all(input, &sizes);
    assert_eq!(whole, chunked);
}

type Decoded = (Vec<(u8, Vec<u8>)>, Option<protocol::DecodeError>, usize);

/// Feeds `input` in chunks of the given sizes (cycled) to a buffer that is
/// decoded until it needs more; returns the frames (as type and re-encoded
/// bytes), the error if any, and the bytes left.
fn decode_all(input: &[u8], sizes: &[usize]) -> Decoded {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match protocol::decode(&buf) {
                Ok(None) => break,
                Ok(Some((frame, used))) => {
                    assert!(used >= protocol::HEADER_LEN && used <= buf.len());
                    let mut re = Vec::new();
                    protocol::encode(&frame, &mut re);
                    assert_eq!(&re[..], &buf[..used], "re-encoding changes the frame");
                    frames.push((buf[4], re));
                    buf.drain(..used);
                }
                Err(e) => return (frames, Some(e), buf.len() + rest.len()),
            }
        }
    }
    (frames, None, buf.len())
}

/// Any frame built from the input encodes and decodes to itself.
pub fn roundtrip(data: &[u8]) {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let num = |b: &[u8]| {
        let mut a = [0u8; 8];
        let n = b.len().min(8);
        a[..n].copy_from_slice(&b[..n]);
        u64::from_be_bytes(a)
    };
    let tail = rest.get(8..).unwrap_or(&[]);
    let frame = match kind % 8 {
        // A version-1 HELLO, or (high bit set, another version) a HELLO
        // whose body after the version is opaque.
        0 => match num(rest) as u16 {
            version if kind & 0x80 != 0 && version != protocol::VERSION => Frame::ForeignHello {
                version,
                rest: &tail[..tail.len().min(protocol::MAX_BODY - protocol::HELLO_PREFIX)],
            },
            _ => Frame::Hello(Hello {
                version: protocol::VERSION,
                max_message: num(rest),
                name: &tail[..tail.len().min(protocol::MAX_NAME)],
            }),
        },
        1 => Frame::Data {
            id: num(rest),
            last: kind & 0x80 != 0,
            chunk: &tail[..tail.len().min(protocol::MAX_CHUNK)],
        },
        2 => Frame::Ack { id: num(rest) },
        3 => Frame::Bye {
            reason: ByeReason::from_code(kind >> 3),
            detail: &tail[..tail.len().min(protocol::MAX_BYE_DETAIL)],
        },
        4 => Frame::Ping(num(rest)),
        5 => Frame::Pong(num(rest)),
        6 => Frame::Join(num(rest)),
        _ => Frame::Receipt {
            id: num(rest),
            status: crate::core::protocol::ReceiptStatus::from_code(kind >> 3),
            name: &tail[..tail.len().min(protocol::MAX_NAME)],
        },
    };
    let mut buf = Vec::new();
    protocol::encode(&frame, &mut buf);
    assert_eq!(protocol::decode(&buf), Ok(Some((frame, buf.len()))));
}

/// Drives a session with arbitrary operations: peer bytes, input, partial
/// writes, time passing, end of input, EOF. Checks that it never panics,
/// that what it transmits is always well-formed frames, that
/// `has_transmit` never says no while there are bytes to send, and that
/// its counters stay consistent.
pub fn session_ops(data: &[u8]) {
    let t0 = Instant::now();
    let mut now = t0;
    let cfg = Config {
        name: b"fuzz".to_vec(),
        max_message: 100_000,
        linger: Duration::from_millis(500),
        handshake_timeout: Duration::from_secs(1),
        heartbeat: Some(Duration::from_millis(200)),
        dead_after: 2,
        write_timeout: Some(Duration::from_secs(2)),
        stream: data.first().is_some_and(|b| b & 1 == 1),
    };
    let mut s = Session::new(cfg, now);
    // Let the first operations reach an open session more often than not.
    let mut peer = Vec::new();
    protocol::encode(
        &Frame::Hello(Hello {
            version: protocol::VERSION,
            max_message: 70_000,
            name: b"peer",
        }),
        &mut peer,
    );
    // A client's session, greeted as a room's hub greets it, half the
    // time: the member's paths (envelopes, receipts) get fuzzed too.
    let joins = data.first().is_some_and(|b| b & 2 == 2);
    if joins {
        s.join_rooms();
        protocol::encode(&Frame::Ping(protocol::ROOM_PROBE), &mut peer);
    }
    let mut rx = Vec::new(); // bytes the session has not consumed yet
    let mut wire = Vec::new(); // everything it transmitted
    let mut ops = data;
    if ops.first().is_some_and(|b| b & 1 == 0) {
        s.handle_peer_bytes(&peer, now);
    }
    while let Some((&op, rest)) = ops.split_first() {
        let n = rest.first().copied().unwrap_or(0) as usize;
        let take = (n % 32).min(rest.len());
        let arg = &rest[..take];
        ops = &rest[take..];
        match op % 8 {
            0 | 1 => {
                rx.extend_from_slice(arg);
                let used = s.handle_peer_bytes(&rx, now);
                assert!(used <= rx.len());
                rx.drain(..used);
            }
            2 => {
                let big = arg.first().is_some_and(|b| b & 0x80 != 0);
                let msg: Cow<'_, [u8]> = if big {
                    // 16,000 to 70,825 bytes: one chunk or two, or over
                    // the peer's limit of 70,000.
                    Cow::Owned(vec![0xab; 16_000 + n * 215])
                } else {
                    Cow::Borrowed(arg)
                };
                let _ = s.handle_input(msg, now);
            }
            3 => {
                // The loop skips a flush when this says no.
                let said = s.has_transmit();
                let out = s.poll_transmit().bytes;
                assert!(said || out.is_empty(), "has_transmit hid bytes");
                let k = out.len().min(n * 97 + 1);
                wire.extend_from_slice(&out[..k]);
                s.handle_written(k, now);
            }
            4 => {
                now += Duration::from_millis(n as u64 * 10);
                s.handle_timeout(now);
            }
            5 => s.handle_input_end(now),
            6 => while s.poll_event().is_some() {},
            _ => {
                if arg.first() == Some(&0) {
                    s.handle_eof(rx.len());
                } else if arg.first() == Some(&1) {
                    s.close(ByeReason::Normal);
                }
            }
        }
        let st = s.stats();
        assert!(st.acked <= st.sent);
        if let Some(t) = s.poll_timeout() {
            assert!(t >= t0);
        }
    }
    // Everything it ever transmitted is a sequence of valid frames.
    loop {
        let said = s.has_transmit();
        let out = s.poll_transmit().bytes;
        assert!(said || out.is_empty(), "has_transmit hid bytes");
        if out.is_empty() {
            break;
        }
        let k = out.len();
        wire.extend_from_slice(out);
        s.handle_written(k, now);
    }
    let mut rest = &wire[..];
    let mut sent_joins = 0;
    while let Some((frame, used)) = protocol::decode(rest).expect("we only send valid frames") {
        if let Frame::Join(v) = frame {
            assert_eq!(v, protocol::ROOM_PROBE, "JOIN answers the room's PING only");
            sent_joins += 1;
        }
        rest = &rest[used..];
    }
    assert!(rest.is_empty(), "a partial frame was transmitted");
    assert!(
        sent_joins <= 1 && (joins || sent_joins == 0),
        "JOIN sent unasked"
    );
    while let Some(e) = s.poll_event() {
        match e {
            Event::Message { data, .. } => assert!(data.len() <= 100_000),
            Event::RoomMessage { from, data, .. } => {
                assert!(from.len() <= protocol::MAX_NAME && data.len() < 100_000);
            }
            Event::Receipt { name, .. } => assert!(name.len() <= protocol::MAX_NAME),
            _ => {}
        }
    }
}

/// Escaped output never holds a character the display policy escapes (tag
/// characters only inside an emoji tag sequence), is valid UTF-8,
/// and JSON strings hold no raw control characters.
pub fn escape(data: &[u8]) {
    for newline_ok in [false, true] {
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        escape::escape_into(data, newline_ok, &mut fast);
        escape::escape_reference(data, newline_ok, &mut slow);
        assert_eq!(fast, slow, "fast escaper disagrees with the reference");
    }
    let s = escape::escape_to_string(data);
    for c in s.chars() {
        assert!(!c.is_control(), "control {c:?} in {s:?}");
        assert!(
            !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'),
            "bidi in {s:?}"
        ); // Tag characters pass only inside an emoji tag sequence.
        assert!(
            !escape::is_unsafe(c) || ('\u{e0000}'..='\u{e007f}').contains(&c),
            "unsafe {c:?} in {s:?}"
        );
    }
    let mut tagged = Vec::new();
    escape::escape_into(data, true, &mut tagged);
    assert!(
        tagged.iter().all(|&b| b == b'\n' || b >= 0x20 && b != 0x7f),
        "raw control byte"
    );
    let mut json = Vec::new();
    render::json_str(&String::from_utf8_lossy(data), &mut json);
    let json = String::from_utf8(json).expect("JSON is UTF-8");
    assert!(json.chars().all(|c| !c.is_control()), "control in {json:?}");
    render_parts(data);
}

/// A message shown as it arrives, cut into pieces anywhere, renders exactly
/// as the whole message does (tags, escapes, split UTF-8 sequences).
pub fn render_parts(data: &[u8]) {
    let step = usize::from(data.first().copied().unwrap_or(0) % 7) + 1;
    for color in [false, true] {
        let mut style = render::Style::default();
        style.color = color;
        let line = render::Line::Message {
            id: 1,
            from: b"p q",
            data,
        };
        let mut whole = Vec::new();
        render::render_in_pieces(
            render::Format::Text,
            &line,
            render::Stamp::default(),
            &style,
            &mut whole,
            &mut |_| {},
        );
        for size in [1, step, 3 * step + 1] {
            let mut parts = Vec::new();
            let mut state = render::PartState::default();
            let mut pieces: Vec<&[u8]> = data.chunks(size).collect();
            let last = pieces.pop().unwrap_or(b"");
            for (i, piece) in pieces.iter().enumerate() {
                render::text_part(b"p q", piece, i == 0, false, &style, &mut state, &mut parts);
            }
            let first = pieces.is_empty();
            render::text_part(b"p q", last, first, true, &style, &mut state, &mut parts);
            assert_eq!(
                String::from_utf8_lossy(&parts),
                String::from_utf8_lossy(&whole),
                "pieces of {size} render differently"
            );
        }
    }
}

/// Words the `cli` property builds command lines from: the subcommands,
/// every option, and values on both sides of each limit.
const CLI_WORDS: &[&str] = &[
    "server",
    "client",
    "bench",
    "h",
    "127.0.0.1:9",
    "[::1]",
    "--listen",
    "--port",
    "-p",
    "--once",
    "--input",
    "nul",
    "--no-editor",
    "--name",
    "--format",
    "jsonl",
    "--max-message",
    "--linger",
    "--handshake-timeout",
    "--heartbeat",
    "--dead-after",
    "--write-timeout",
    "--connect-timeout",
    "--count",
    "--size",
    "--window",
    "--color",
    "-v",
    "-q",
    "--timestamps",
    "--help",
    "0",
    "1",
    "0s",
    "0.0",
    "250ms",
    "1.5s",
    "1440m",
    "1441m",
    "86400",
    "86400.001",
    "9223372036854775807s",
    "18446744073709551615",
    "1e400",
    "-1",
    "NaN",
    "inf",
    "4GiB",
    "4294967297",
    "16MiB",
    "0KiB",
    "1000",
    "1001",
    "65536",
    "--",
    "=",
    "",
];

/// Any command line parses into options or is a usage error, never a
/// panic, and the options it gives drive a session whose deadlines stay
/// within the clock's range. Each byte picks a word from [`CLI_WORDS`];
/// `0xff` takes the bytes up to the next NUL as a word of its own. The
/// whole input is also given to the duration and size parsers, whose
/// answers must stay within their documented limits.
pub fn cli(data: &[u8]) {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStrExt;

    use clap::Parser;

    use crate::cli::{self, Cli};

    let text = String::from_utf8_lossy(data);
    if let Ok(d) = cli::parse_duration(&text) {
        assert!(d <= cli::MAX_DURATION, "{text:?} gave {d:?}");
    }
    if let Ok(d) = cli::parse_timeout(&text) {
        assert!(
            !d.is_zero() && d <= cli::MAX_DURATION,
            "{text:?} gave {d:?}"
        );
    }
    if let Ok(n) = cli::parse_max_message(&text) {
        assert!(
            (1..=cli::MAX_MESSAGE_LIMIT).contains(&n),
            "{text:?} gave {n}"
        );
    }
    let mut args = vec![OsString::from("duet")];
    let mut rest = data;
    while let Some((&b, tail)) = rest.split_first() {
        if b == 0xff {
            let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
            args.push(OsStr::from_bytes(&tail[..end]).to_owned());
            rest = tail.get(end + 1..).unwrap_or(&[]);
        } else {
            args.push(CLI_WORDS[usize::from(b) % CLI_WORDS.len()].into());
            rest = tail;
        }
    }
    let Ok(parsed) = Cli::try_parse_from(args) else {
        return;
    };
    let Ok(opts) = parsed.into_options() else {
        return;
    };
    let cfg = opts.session;
    assert!(cfg.max_message >= 1);
    for d in [cfg.linger, cfg.handshake_timeout] {
        assert!(d <= cli::MAX_DURATION);
    }
    assert!(!cfg.handshake_timeout.is_zero());
    let t0 = Instant::now();
    let mut s = Session::new(cfg, t0);
    let mut hello = Vec::new();
    protocol::encode(
        &Frame::Hello(Hello {
            version: protocol::VERSION,
            max_message: u64::MAX,
            name: b"peer",
        }),
        &mut hello,
    );
    s.handle_peer_bytes(&hello, t0);
    let _ = s.handle_input(Cow::Borrowed(b"x"), t0);
    let far = t0 + 2 * cli::MAX_DURATION;
    for _ in 0..1100 {
        let Some(t) = s.poll_timeout() else { break };
        assert!(t >= t0);
        if t > far {
            break;
        }
        s.handle_timeout(t);
    }
    s.handle_input_end(far);
    s.handle_stop(far, cli::MAX_DURATION);
    s.handle_timeout(far + 2 * cli::MAX_DURATION);
}

/// Fixed keys, so a fuzz input always meets the same transports.
const CHECK_KEYS: [[u8; 32]; 4] = [[1; 32], [2; 32], [3; 32], [4; 32]];

/// A transport with fixed static and ephemeral keys.
fn check_transport(role: Role) -> Transport {
    let (s, e) = match role {
        Role::Initiator => (&CHECK_KEYS[0], &CHECK_KEYS[2]),
        Role::Responder => (&CHECK_KEYS[1], &CHECK_KEYS[3]),
    };
    Transport::new_for_testing_only(role, s, transport::PROLOGUE, e).expect("fixed keys")
}

/// Feeds `input` to `t` through a receive buffer in chunks of the given
/// sizes (cycled), as a connection would, checking at every step that
/// nothing panics, no more is consumed than given, no more plaintext
/// comes out than was consumed, a partial record left over is under one
/// record, and an error stays. Returns the plaintext and the error.
fn feed_transport(
    t: &mut Transport,
    input: &[u8],
    sizes: &[usize],
) -> (Vec<u8>, Option<TransportError>) {
    let mut rx = Vec::new();
    let mut plain = Vec::new();
    let mut consumed = 0;
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        rx.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        let before = plain.len();
        match t.handle_ciphertext(&rx, &mut plain) {
            Ok(used) => {
                assert!(used <= rx.len());
                assert!(plain.len() - before <= used, "plaintext from nowhere");
                consumed += used;
                rx.drain(..used);
                assert!(rx.len() < transport::LEN_PREFIX + transport::MAX_RECORD);
            }
            Err(e) => {
                assert_eq!(t.error(), Some(e));
                assert_eq!(t.handle_ciphertext(b"", &mut plain), Err(e), "not sticky");
                consumed += rx.len();
                assert!(plain.len() <= consumed);
                return (plain, Some(e));
            }
        }
        assert!(plain.len() <= consumed, "more plaintext than ciphertext");
    }
    if !t.is_established() {
        assert!(plain.is_empty(), "plaintext before the handshake");
    }
    (plain, t.handle_eof(rx.len()).err())
}

/// The handshake on arbitrary bytes: the first byte picks the side and
/// the chunking; the rest goes to a responder, to an initiator, or to a
/// responder after a genuine message 1 (so message 3 and records are
/// reached). Never a panic, bounded memory and output, and never a
/// handshake completed on forged bytes.
pub fn handshake(data: &[u8]) {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let sizes = [1 + usize::from(sel >> 4), 7, 33, 1];
    let mut t = match sel % 3 {
        0 => check_transport(Role::Responder),
        1 => check_transport(Role::Initiator),
        _ => {
            let mut c = check_transport(Role::Initiator);
            let mut s = check_transport(Role::Responder);
            let mut m1 = Vec::new();
            c.poll_handshake(&mut m1);
            assert_eq!(s.handle_ciphertext(&m1, &mut Vec::new()), Ok(m1.len()));
            s
        }
    };
    let mut out = Vec::new();
    t.poll_handshake(&mut out);
    feed_transport(&mut t, input, &sizes);
    t.poll_handshake(&mut out);
    // At most our own messages (and a plain BYE to a v1 peer).
    assert!(out.len() <= 2 * (transport::LEN_PREFIX + 96) + 300);
    // Completing it would take X25519 and ChaChaPoly computed by the input.
    assert!(!t.is_established(), "forged bytes completed the handshake");
}

/// The record layer on arbitrary bytes, after a genuine handshake: forged
/// records never yield plaintext; and a genuine stream sealed from the
/// input, with one byte changed (or none), yields only a prefix of what
/// was sealed (all of it when unchanged).
pub fn records(data: &[u8]) {
    let Some((&sel, input)) = data.split_first() else {
        return;
    };
    let sizes = [1 + usize::from(sel & 0x3f), 5, 100];

    // Forged records: no plaintext, ever.
    let (_, mut s) = check_pair();
    let (plain, _) = feed_transport(&mut s, input, &sizes);
    assert!(plain.is_empty(), "a forged record opened");

    // A genuine stream, cut into seal calls at the input's own bytes,
    // with one bit flipped when the selector's high bit is set.
    let (mut c, mut s) = check_pair();
    let mut sealed = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = (usize::from(rest[0]) * 3 + 1).min(rest.len());
        c.seal(&rest[..n], &mut sealed).expect("established");
        rest = &rest[n..];
    }
    assert_eq!(sealed.len(), transport_len(input));
    let flip = sel & 0x80 != 0 && !sealed.is_empty();
    if flip {
        let at = usize::from(sel & 0x7f) * 7 % sealed.len();
        sealed[at] ^= 1 << (sel % 8);
    }
    let (plain, err) = feed_transport(&mut s, &sealed, &sizes);
    assert!(
        input.starts_with(&plain),
        "a changed stream gave other plaintext"
    );
    if !flip {
        assert_eq!((plain.as_slice(), err), (input, None));
    } else {
        assert!(
            err.is_some() || plain.len() < input.len(),
            "a flip went unnoticed"
        );
    }
}

/// What `records` seals from `input`: its seal calls' records.
fn transport_len(input: &[u8]) -> usize {
    let mut total = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let n = (usize::from(rest[0]) * 3 + 1).min(rest.len());
        total += transport::sealed_len(n);
        rest = &rest[n..];
    }
    total
}

/// An initiator and a responder with fixed keys, handshake done.
fn check_pair() -> (Transport, Transport) {
    let mut c = check_transport(Role::Initiator);
    let mut s = check_transport(Role::Responder);
    complete_handshake(&mut c, &mut s);
    (c, s)
}

/// Runs the Noise XX handshake between initiator `c` and responder `s` in
/// memory, its three messages each handed over whole; panics if it does
/// not complete.
pub fn complete_handshake(c: &mut Transport, s: &mut Transport) {
    let mut wire = Vec::new();
    for step in 0..3 {
        wire.clear();
        let (from, to) = if step == 1 {
            (&mut *s, &mut *c)
        } else {
            (&mut *c, &mut *s)
        };
        from.poll_handshake(&mut wire);
        assert_eq!(to.handle_ciphertext(&wire, &mut Vec::new()), Ok(wire.len()));
    }
    assert!(c.is_established() && s.is_established());
}

/// Runs every frame, session and escaping property over the input (for
/// replaying a mixed corpus). `cli` is left out: building the command line
/// parser costs far more than these, and a raw byte stream rarely makes a
/// command line; so are `handshake` and `records`, each of which costs
/// X25519 operations. `tests/properties.rs` drives those on their own.
pub fn all(data: &[u8]) {
    decode_chunked(data);
    roundtrip(data);
    session_ops(data);
    escape(data);
}
