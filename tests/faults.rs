//! Misbehaving peers, written by hand on raw sockets: the server answers
//! with the right BYE, reports why, stays up, and serves the next client.

mod common;

use common::*;
use std::io::Read;
use std::net::SocketAddr;

const BYE: u8 = 0x04;
const PROTOCOL_ERROR: u8 = 2;
const MESSAGE_TOO_LARGE: u8 = 3;
const VERSION_MISMATCH: u8 = 5;

/// Connects, checks the server's HELLO, sends `bytes`, and returns the
/// frames the server sent before closing.
fn bad_peer(addr: SocketAddr, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut raw = Raw::connect(addr);
    let (kind, body) = raw.read_frame();
    assert_eq!(kind, 0x01, "server speaks first with HELLO");
    assert_eq!(&body[..4], b"DUET");
    raw.write(bytes);
    raw.frames_until_close()
}

fn assert_bye(frames: &[(u8, Vec<u8>)], reason: u8) -> String {
    let last = frames.last().expect("a BYE before the close");
    assert_eq!((last.0, last.1[0]), (BYE, reason), "{frames:?}");
    String::from_utf8_lossy(&last.1[1..]).into_owned()
}

#[test]
fn oversized_length_is_refused_from_the_header() {
    let (mut s, addr) = Duet::server(&[]);
    let mut bytes = hello(b"raw", 1 << 20);
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x02]);
    let frames = bad_peer(addr, &bytes);
    let detail = assert_bye(&frames, PROTOCOL_ERROR);
    assert!(detail.contains("body length 4294967295"), "{detail}");
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .contains("protocol error"),
        "{closed}"
    );
    assert_serves(&mut s, addr);
}

#[test]
fn limit_plus_one_length_is_refused() {
    let (mut s, addr) = Duet::server(&[]);
    let mut bytes = hello(b"raw", 1 << 20);
    // DATA bodies are at most 9 + 65536 bytes.
    bytes.extend_from_slice(&(9 + 65536 + 1u32).to_be_bytes());
    bytes.push(0x02);
    assert_bye(&bad_peer(addr, &bytes), PROTOCOL_ERROR);
    s.expect_event("closed");
    assert_serves(&mut s, addr);
}

#[test]
fn http_request_instead_of_hello() {
    let (mut s, addr) = Duet::server(&[]);
    let frames = bad_peer(addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let detail = assert_bye(&frames, PROTOCOL_ERROR);
    assert!(detail.contains("does not speak duet"), "{detail}");
    let closed = s.expect_event("closed");
    let reason = closed["reason"].as_str().unwrap();
    assert!(
        reason.contains("does not speak duet") && reason.contains("GET / HTTP/1.1\\r\\n"),
        "{reason}"
    );
    assert_serves(&mut s, addr);
}

#[test]
fn tls_client_hello_instead_of_hello() {
    let (mut s, addr) = Duet::server(&[]);
    let tls = [
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    assert_bye(&bad_peer(addr, &tls), PROTOCOL_ERROR);
    s.expect_event("closed");
    assert_serves(&mut s, addr);
}

#[test]
fn truncated_frame_then_close() {
    let (mut s, addr) = Duet::server(&[]);
    let mut raw = Raw::connect(addr);
    raw.read_frame();
    let mut bytes = hello(b"raw", 1 << 20);
    let d = data(1, true, b"hello");
    bytes.extend_from_slice(&d[..d.len() - 2]);
    raw.write(&bytes);
    raw.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .contains("middle of a frame"),
        "{closed}"
    );
    assert_serves(&mut s, addr);
}

#[test]
fn unknown_frame_type() {
    let (mut s, addr) = Duet::server(&[]);
    let mut bytes = hello(b"raw", 1 << 20);
    bytes.extend_from_slice(&frame(0x7e, b""));
    let detail = assert_bye(&bad_peer(addr, &bytes), PROTOCOL_ERROR);
    assert!(detail.contains("unknown frame type 0x7e"), "{detail}");
    s.expect_event("closed");
    assert_serves(&mut s, addr);
}

#[test]
fn wrong_version_is_named_on_both_sides() {
    let (mut s, addr) = Duet::server(&[]);
    let mut h = hello(b"future", 1 << 20);
    h[9..11].copy_from_slice(&2u16.to_be_bytes());
    let detail = assert_bye(&bad_peer(addr, &h), VERSION_MISMATCH);
    assert!(detail.contains("version 2"), "{detail}");
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("version 2"),
        "{closed}"
    );
    assert_serves(&mut s, addr);
}

/// docs/PROTOCOL.md promises that a later version keeps the header and
/// HELLO's first 6 body bytes, so that this check works whatever follows.
#[test]
fn a_later_version_with_another_hello_layout_gets_version_mismatch() {
    let (mut s, addr) = Duet::server(&[]);
    for rest in [&b""[..], &[0xee; 500]] {
        let body = [&b"DUET\x00\x02"[..], rest].concat();
        let detail = assert_bye(&bad_peer(addr, &frame(0x01, &body)), VERSION_MISMATCH);
        assert!(detail.contains("version 2"), "{detail}");
        s.expect_event("closed");
    }
    assert_serves(&mut s, addr);
}

#[test]
fn message_over_the_announced_limit() {
    let (mut s, addr) = Duet::server(&["--max-message", "100"]);
    let mut raw = Raw::connect(addr);
    let (_, body) = raw.read_frame();
    assert_eq!(
        u64::from_be_bytes(body[6..14].try_into().unwrap()),
        100,
        "HELLO announces the limit"
    );
    let mut bytes = hello(b"raw", 1 << 20);
    bytes.extend_from_slice(&data(1, true, &[b'x'; 101]));
    raw.write(&bytes);
    assert_bye(&raw.frames_until_close(), MESSAGE_TOO_LARGE);
    s.expect_event("closed");
    assert_serves(&mut s, addr);
}

#[test]
fn ack_for_nothing_and_duplicate_hello() {
    let (mut s, addr) = Duet::server(&[]);
    for extra in [ack(1), hello(b"again", 1)] {
        let mut bytes = hello(b"raw", 1 << 20);
        bytes.extend_from_slice(&extra);
        assert_bye(&bad_peer(addr, &bytes), PROTOCOL_ERROR);
        s.expect_event("closed");
    }
    assert_serves(&mut s, addr);
}

#[test]
fn thousand_frames_in_one_write_and_one_dribbled_byte_by_byte() {
    let (mut s, addr) = Duet::server(&[]);
    let mut raw = Raw::connect(addr);
    raw.read_frame();
    let mut bytes = hello(b"raw", 1 << 20);
    for id in 1..=1000u64 {
        bytes.extend_from_slice(&data(id, true, format!("m{id}").as_bytes()));
    }
    raw.write(&bytes);
    for id in 1..=1000u64 {
        let (kind, body) = raw.read_frame();
        assert_eq!(
            (kind, u64::from_be_bytes(body[..8].try_into().unwrap())),
            (0x03, id)
        );
    }
    for b in data(1001, true, b"dribble") {
        raw.write(&[b]);
    }
    let (kind, body) = raw.read_frame();
    assert_eq!(
        (kind, u64::from_be_bytes(body[..8].try_into().unwrap())),
        (0x03, 1001)
    );
    raw.write(&bye(0));
    let m = (0..1001).map(|_| s.expect_event("message")).last().unwrap();
    assert_eq!(m["text"], "dribble");
    s.expect_event("summary");
    assert_serves(&mut s, addr);
}

#[test]
fn peer_closing_without_bye_is_reported_and_server_goes_on() {
    let (mut s, addr) = Duet::server(&[]);
    let mut raw = Raw::connect(addr);
    raw.read_frame();
    raw.write(&hello(b"raw", 1 << 20));
    s.expect_event("connected");
    drop(raw);
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .contains("without saying goodbye"),
        "{closed}"
    );
    assert_serves(&mut s, addr);
}

/// The wire allows an empty name. Shown bare it would read "> hi", like
/// the prompt or one's own line, so the peer is called "peer".
#[test]
fn a_peer_with_an_empty_name_is_called_peer() {
    let mut s = Duet::spawn(&["server", "--listen", "127.0.0.1", "--port", "0"]);
    let first = s.next_line();
    let addr: SocketAddr = first
        .strip_prefix("* listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| s.fail(&format!("not the listening line: {first}")));
    let mut raw = Raw::connect(addr);
    raw.read_frame();
    let mut bytes = hello(b"", 1 << 20);
    bytes.extend(data(1, true, b"hi"));
    raw.write(&bytes);
    assert_eq!(raw.read_frame(), (0x03, 1u64.to_be_bytes().to_vec()));
    let connected = s.expect_line("* connected to");
    assert!(
        connected.starts_with("* connected to <peer> (127.0.0.1:"),
        "{connected}"
    );
    assert_eq!(s.next_line(), "<peer> hi");
}

/// A fake server: accepts one client and completes the handshake.
fn fake_server() -> (std::net::TcpListener, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn accept(l: &std::net::TcpListener) -> Raw {
    let (stream, _) = l.accept().unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut raw = Raw { stream };
    raw.write(&hello(b"fake", 1 << 20));
    assert_eq!(raw.read_frame().0, 0x01);
    raw
}

#[test]
fn client_eof_waits_for_the_ack() {
    let (l, addr) = fake_server();
    let mut c = Duet::client(addr, &[]);
    let mut raw = accept(&l);
    c.send(b"wait for me\n");
    c.close_stdin();
    let (kind, body) = raw.read_frame();
    assert_eq!((kind, &body[9..]), (0x02, &b"wait for me"[..]));
    // stdin has ended; the client must still be waiting for this ack.
    raw.write(&ack(1));
    let frames = raw.frames_until_close();
    assert_eq!(frames, vec![(BYE, vec![0])], "BYE(normal) after the ack");
    let sum = c.expect_event("summary");
    assert_eq!(sum["acked"], 1);
    assert_eq!(c.code(), 0);
}

#[test]
fn client_gives_up_after_linger_and_exits_3() {
    let (l, addr) = fake_server();
    let mut c = Duet::client(addr, &["--linger", "200ms"]);
    let mut raw = accept(&l);
    c.send(b"one\ntwo\n");
    c.close_stdin();
    // Never acknowledge.
    let frames = raw.frames_until_close();
    assert_eq!(frames.last(), Some(&(BYE, vec![0])));
    let sum = c.expect_event("summary");
    assert_eq!(
        (sum["sent"].as_u64(), sum["acked"].as_u64()),
        (Some(2), Some(0))
    );
    assert_eq!(c.code(), 3);
}

#[test]
fn client_reports_a_server_that_breaks_the_protocol() {
    let (l, addr) = fake_server();
    let mut c = Duet::client(addr, &[]);
    let mut raw = accept(&l);
    raw.write(&ack(99));
    assert_bye(&raw.frames_until_close(), PROTOCOL_ERROR);
    assert_eq!(c.code(), 1);
    let err = c.stderr();
    assert!(err.contains("acknowledgment for message 99"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn client_connecting_to_something_that_is_not_duet() {
    let (l, addr) = fake_server();
    let mut c = Duet::client(addr, &[]);
    let (mut stream, _) = l.accept().unwrap();
    std::io::Write::write_all(&mut stream, b"SSH-2.0-OpenSSH_9.2\r\n").unwrap();
    let mut sink = Vec::new();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = stream.read_to_end(&mut sink);
    assert_eq!(c.code(), 1);
    assert!(
        c.stderr()
            .contains("does not speak duet (it sent \"SSH-2.0-OpenSSH_"),
        "{}",
        c.stderr()
    );
}

#[test]
fn client_reports_connection_reset() {
    let (l, addr) = fake_server();
    let mut c = Duet::client(addr, &[]);
    let raw = accept(&l);
    c.send(b"x\n");
    // Close with unread data: the kernel sends RST.
    drop(raw);
    assert_eq!(c.code(), 1);
    let err = c.stderr();
    assert!(
        err.contains("connection reset") || err.contains("without saying goodbye"),
        "{err}"
    );
}

/// Frames that arrive right behind the end of a message large enough to
/// fill the receiver's display queue are handled once the queue drains,
/// without waiting for more bytes: here a PING behind the last chunk of a
/// 2 MiB message, in the same write, is answered.
#[test]
fn a_frame_behind_a_large_message_is_handled_without_more_bytes() {
    let (l, addr) = fake_server();
    let mut c = Duet::client(addr, &[]);
    let mut raw = accept(&l);
    raw.stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let chunks = 32; // 2 MiB, twice the display queue's cap
    for _ in 0..chunks - 1 {
        raw.write(&data(1, false, &chunk));
    }
    let mut tail = data(1, true, &chunk);
    tail.extend_from_slice(&frame(0x05, &7u64.to_be_bytes()));
    raw.write(&tail);
    let msg = c.expect_event("message");
    assert_eq!(msg["len"], 2 << 20);
    let mut seen = Vec::new();
    loop {
        let (kind, body) = raw.read_frame();
        seen.push(kind);
        if kind == 0x06 {
            assert_eq!(body, 7u64.to_be_bytes(), "PONG echoes the PING");
            break;
        }
        assert!(seen.len() < 10, "no PONG among {seen:?}");
    }
    assert_eq!(seen, vec![0x03, 0x06], "the ACK, then the PONG");
}
