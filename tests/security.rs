//! The default transport, encrypted and mutually authenticated, with the
//! real binary: what an eavesdropper sees, trust on first use and pins,
//! allow lists, tampering, and mixing `--plain` with the default. Each
//! side has its own identity (`DUET_HOME` in a fresh directory).

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// A fresh `DUET_HOME` for this file's tests.
fn home(name: &str) -> String {
    fresh_home(&format!("security-{name}"))
}

fn server(home: &str, extra: &[&str]) -> (Duet, SocketAddr) {
    let mut args = SERVER_ARGS.to_vec();
    if extra.contains(&"--port") {
        // SERVER_ARGS ends with `--port 0 --format jsonl`.
        args.retain(|a| *a != "--port" && *a != "0");
    }
    args.extend_from_slice(extra);
    let mut s = Duet::spawn_encrypted(&args, home);
    let addr = s.listening_addr();
    (s, addr)
}

fn client(addr: SocketAddr, home: &str, extra: &[&str]) -> Duet {
    let a = addr.to_string();
    let mut args = vec!["client", a.as_str(), "--format", "jsonl"];
    args.extend_from_slice(extra);
    Duet::spawn_encrypted(&args, home)
}

/// Changes bytes in flight: the offset of `bytes` in the stream, and them.
type Tamper = Box<dyn Fn(usize, &mut [u8]) + Send>;

/// A relay between a client and `to` that records every byte it passes
/// and lets `tamper` change them on the way to the server.
struct Relay {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Relay {
    fn new(to: SocketAddr, tamper: impl Fn(usize, &mut [u8]) + Send + 'static) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        thread::spawn(move || {
            let (c, _) = l.accept().unwrap();
            let s = TcpStream::connect(to).unwrap();
            let pipe = |mut from: TcpStream,
                        mut into: TcpStream,
                        log: Arc<Mutex<Vec<u8>>>,
                        tamper: Option<Tamper>| {
                thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    let mut at = 0;
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        if let Some(t) = &tamper {
                            t(at, &mut buf[..n]);
                        }
                        at += n;
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                        if into.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = into.shutdown(std::net::Shutdown::Write);
                })
            };
            let up = pipe(
                c.try_clone().unwrap(),
                s.try_clone().unwrap(),
                log.clone(),
                Some(Box::new(tamper)),
            );
            let down = pipe(s, c, log, None);
            let _ = up.join();
            let _ = down.join();
        });
        Relay { addr, seen }
    }

    fn seen(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn an_eavesdropper_sees_no_text_name_or_hello() {
    let (hs, hc) = (home("eaves-s"), home("eaves-c"));
    let (mut s, addr) = server(&hs, &["--name", "alicealice"]);
    let relay = Relay::new(addr, |_, _| {});
    let mut c = client(relay.addr, &hc, &["--name", "bobbobbob"]);
    let connected = c.expect_event("connected");
    assert_eq!(connected["encrypted"], true);
    assert_eq!(connected["fingerprint"], fingerprint(&hs));
    let server_side = s.expect_event("connected");
    assert_eq!(server_side["safety_code"], connected["safety_code"]);
    c.send(b"the treasure is under the old oak\n");
    assert_eq!(c.expect_event("ack")["id"], 1);
    assert_eq!(
        s.expect_event("message")["text"],
        "the treasure is under the old oak"
    );
    c.close_stdin();
    assert_eq!(c.code(), 0);
    let seen = relay.seen();
    assert!(
        seen.len() > 200,
        "the relay saw the chat: {} bytes",
        seen.len()
    );
    for secret in [
        &b"treasure"[..],
        b"old oak",
        b"alicealice",
        b"bobbobbob",
        b"DUET",
    ] {
        assert!(
            !contains(&seen, secret),
            "{:?} crossed in the clear",
            String::from_utf8_lossy(secret)
        );
    }
}

#[test]
fn a_changed_server_key_is_refused_with_exit_5_naming_known_peers() {
    let (first, second, hc) = (home("tofu-1"), home("tofu-2"), home("tofu-c"));
    let port = dead_port().to_string();
    let listen = ["--port", port.as_str(), "--once"];
    let (mut s1, addr) = server(&first, &listen);
    let mut c = client(addr, &hc, &[]);
    let connected = c.expect_event("connected");
    assert!(
        connected["remembered_in"]
            .as_str()
            .unwrap()
            .ends_with("known_peers"),
        "{connected}"
    );
    c.close_stdin();
    assert_eq!(c.code(), 0);
    assert_eq!(s1.code(), 0);
    // Another identity on the same address.
    let (mut s2, addr2) = server(&second, &listen);
    assert_eq!(addr, addr2);
    let mut c = client(addr, &hc, &[]);
    assert_eq!(c.code(), 5);
    let err = c.stderr();
    assert!(err.contains("known_peers"), "{err}");
    assert!(err.contains("line 1"), "{err}");
    let closed = s2.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("key"),
        "{closed}"
    );
    // A pin overrides known_peers: the right one chats, a wrong one is
    // refused the same way.
    let mut pinned = client(addr, &hc, &["--peer", &fingerprint(&second)]);
    pinned.expect_event("connected");
    pinned.close_stdin();
    assert_eq!(pinned.code(), 0);
    assert_eq!(s2.code(), 0);
    let (_s3, addr3) = server(&second, &[]);
    let mut wrong = client(addr3, &hc, &["--peer", &fingerprint(&first)]);
    assert_eq!(wrong.code(), 5);
    assert!(wrong.stderr().contains("--peer"), "{}", wrong.stderr());
}

/// A known_peers file this side cannot use is its own failure (exit 1,
/// naming the file), not a refused key: the server is told only that the
/// client left, and serves the next one.
#[test]
fn a_known_peers_file_that_cannot_be_read_is_exit_1_not_a_refused_key() {
    let (hs, hc) = (home("unreadable-s"), home("unreadable-c"));
    let (mut s, addr) = server(&hs, &[]);
    std::fs::create_dir_all(&hc).unwrap();
    let known = format!("{hc}/known_peers");
    let cases: [(&str, &dyn Fn()); 2] = [
        ("line 1", &|| {
            std::fs::write(&known, "not a known_peers line\n").unwrap()
        }),
        ("directory", &|| {
            std::fs::remove_file(&known).unwrap();
            std::fs::create_dir(&known).unwrap();
        }),
    ];
    for (says, make) in cases {
        make();
        let mut c = client(addr, &hc, &[]);
        assert_eq!(c.code(), 1, "{says}");
        let err = c.stderr();
        assert!(err.contains("cannot check the key of"), "{err}");
        assert!(err.contains("known_peers"), "{err}");
        assert!(err.contains(says), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        let closed = s.expect_event("closed");
        assert!(
            !closed["reason"].as_str().unwrap().contains("key"),
            "{closed}"
        );
    }
    // The server still serves: a client with a usable home chats.
    let mut ok = client(addr, &home("unreadable-ok"), &[]);
    ok.expect_event("connected");
    ok.close_stdin();
    assert_eq!(ok.code(), 0);
}

#[test]
fn a_flipped_bit_ends_the_chat_and_the_server_serves_the_next() {
    let (hs, hc) = (home("flip-s"), home("flip-c"));
    let (mut s, addr) = server(&hs, &[]);
    // Flip a bit well after the handshake (34 + 64 bytes from the client)
    // and its HELLO: in the record of the first message.
    let relay = Relay::new(addr, |at, bytes| {
        if (at..at + bytes.len()).contains(&200) {
            bytes[200 - at] ^= 0x01;
        }
    });
    let mut c = client(relay.addr, &hc, &[]);
    c.expect_event("connected");
    c.send(&[b'x'; 300]);
    c.send(b"\n");
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .contains("message authentication failed"),
        "{closed}"
    );
    assert_eq!(c.code(), 1);
    assert!(
        c.stderr().contains("message authentication failed"),
        "{}",
        c.stderr()
    );
    // The server goes on.
    let mut next = client(addr, &hc, &[]);
    next.send(b"still there?\n");
    next.close_stdin();
    assert_eq!(next.code(), 0);
    assert_eq!(s.expect_event("message")["text"], "still there?");
}

#[test]
fn allow_lets_in_only_listed_keys_and_half_handshakes_hold_nothing() {
    let (hs, good, bad) = (home("allow-s"), home("allow-good"), home("allow-bad"));
    let list = format!("{}/allow", env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(&list, format!("# the one friend\n{}\n", fingerprint(&good))).unwrap();
    let (mut s, addr) = server(&hs, &["--allow", &list]);
    // A silent connection and a half handshake (message 1 only).
    let _silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&[0, 32]).unwrap();
    half.write_all(&[7u8; 32]).unwrap();
    let mut refused = client(addr, &bad, &[]);
    assert_eq!(refused.code(), 5);
    assert!(
        refused.stderr().contains("key refused"),
        "{}",
        refused.stderr()
    );
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("--allow"),
        "{closed}"
    );
    let mut friend = client(addr, &good, &[]);
    friend.expect_event("connected");
    assert_eq!(
        s.expect_event("connected")["fingerprint"],
        fingerprint(&good)
    );
    friend.close_stdin();
    assert_eq!(friend.code(), 0);
}

#[test]
fn plain_against_encrypted_says_which_flag_on_both_sides() {
    let (hs, hc) = (home("mix-s"), home("mix-c"));
    // A plain client, an encrypted server.
    let (mut s, addr) = server(&hs, &[]);
    let a = addr.to_string();
    let mut c = Duet::spawn(&["client", &a, "--format", "jsonl"]);
    assert_eq!(c.code(), 1);
    assert!(c.stderr().contains("--plain"), "{}", c.stderr());
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("--plain"),
        "{closed}"
    );
    // An encrypted client, a plain server.
    let (mut s, addr) = Duet::server(&[]);
    let mut c = client(addr, &hc, &[]);
    assert_eq!(c.code(), 1);
    assert!(c.stderr().contains("--plain"), "{}", c.stderr());
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("--plain"),
        "{closed}"
    );
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let h = home("mode");
    fingerprint(&h);
    let key = format!("{h}/key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut s = Duet::spawn_encrypted(&["server", "--listen", "127.0.0.1", "--port", "0"], &h);
    assert_eq!(s.code(), 1);
    let err = s.stderr();
    assert!(err.contains("chmod 600"), "{err}");
    assert!(err.contains(&key), "{err}");
}

/// A client turned away by a busy encrypted server is told so (exit 4),
/// after the handshake, like a plain one; the running chat goes on.
#[test]
fn an_encrypted_server_turns_a_second_client_away_as_busy() {
    let (hs, h1, h2) = (home("busy-s"), home("busy-1"), home("busy-2"));
    let (mut s, addr) = server(&hs, &[]);
    let mut first = client(addr, &h1, &[]);
    first.expect_event("connected");
    s.expect_event("connected");
    let mut second = client(addr, &h2, &[]);
    assert_eq!(second.code(), 4);
    assert!(second.stderr().contains("busy"), "{}", second.stderr());
    first.send(b"still here\n");
    assert_eq!(first.expect_event("ack")["id"], 1);
    assert_eq!(s.expect_event("message")["text"], "still here");
}
