//! Properties checked on arbitrary input: the bodies of the fuzz targets in
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
    let frame = match kind % 6 {
        0 => Frame::Hello(Hello {
            version: num(rest) as u16,
            max_message: num(rest),
            name: &tail[..tail.len().min(protocol::MAX_NAME)],
        }),
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
        _ => Frame::Pong(num(rest)),
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
    while let Some((_, used)) = protocol::decode(rest).expect("we only send valid frames") {
        rest = &rest[used..];
    }
    assert!(rest.is_empty(), "a partial frame was transmitted");
    while let Some(e) = s.poll_event() {
        if let Event::Message { data, .. } = e {
            assert!(data.len() <= 100_000);
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

/// Runs every property over the input (for replaying a mixed corpus).
pub fn all(data: &[u8]) {
    decode_chunked(data);
    roundtrip(data);
    session_ops(data);
    escape(data);
}
