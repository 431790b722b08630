//! Room mode's deadlines and quiet members with the real binary: the
//! room's turn visits only members with activity, so these check that
//! the deadlines kept aside still fire (the greeting's, heartbeats, a
//! dead member's) for the right member only, and that a member that went
//! quiet (its buffers given back) still chats.

mod common;

use common::*;
use std::time::{Duration, Instant};

const PING: u8 = 0x05;
const PONG: u8 = 0x06;
const BYE: u8 = 0x04;
const ROOM_PROBE: &[u8] = b"DUETROOM";

/// A raw peer that says HELLO and reads the hub's HELLO and room PING.
fn greeted(addr: std::net::SocketAddr, name: &[u8]) -> Raw {
    let mut r = Raw::connect(addr);
    r.write(&hello(name, 1 << 20));
    assert_eq!(r.read_frame().0, 0x01, "the hub's HELLO");
    assert_eq!(
        r.read_frame(),
        (PING, ROOM_PROBE.to_vec()),
        "the room's PING"
    );
    r
}

#[test]
fn a_peer_that_never_answers_the_greeting_is_dropped_and_the_others_stay() {
    let (mut s, addr) = Duet::server(&["--room", "--handshake-timeout", "1s"]);
    let mut a = greeted(addr, b"alice");
    a.write(&frame(PONG, ROOM_PROBE));
    s.expect_line("joined from");
    let started = Instant::now();
    let mut b = greeted(addr, b"bob");
    let frames = b.frames_until_close();
    let waited = started.elapsed();
    let bye = frames
        .iter()
        .find(|(t, _)| *t == BYE)
        .unwrap_or_else(|| panic!("no BYE: {frames:?}"));
    assert_eq!(bye.1[0], 4, "timeout");
    assert!(
        String::from_utf8_lossy(&bye.1[1..]).contains("did not answer the room's greeting"),
        "{bye:?}"
    );
    assert!(
        waited >= Duration::from_millis(900),
        "dropped after {waited:?}"
    );
    // The member that answered is still in the room.
    a.write(&data(1, true, b"still here"));
    s.expect_line("still here");
    // It leaves before the room closes: nothing of the room's waits for
    // an acknowledgment it will never send.
    drop(a);
    s.expect_line("alice> left");
    s.send(b"/quit\n");
    assert_eq!(s.code(), 0);
}

#[test]
fn a_silent_member_is_declared_dead_and_a_quiet_one_still_chats() {
    let (mut s, addr) = Duet::server(&["--room", "--heartbeat", "200ms", "--dead-after", "2"]);
    let mut alice = Duet::client(addr, &["--name", "alice"]);
    alice.expect_event("connected");
    let mut silent = greeted(addr, b"silent");
    silent.write(&frame(PONG, ROOM_PROBE));
    let frames = silent.frames_until_close();
    let pings: Vec<&Vec<u8>> = frames
        .iter()
        .filter(|(t, _)| *t == PING)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(
        pings,
        [&1u64.to_be_bytes().to_vec(), &2u64.to_be_bytes().to_vec()],
        "two heartbeats before the verdict: {frames:?}"
    );
    let bye = frames.last().expect("frames");
    assert_eq!((bye.0, bye.1[0]), (BYE, 4), "BYE(timeout) last: {frames:?}");
    s.expect_line("silent> left");
    // Alice stays through several heartbeats of quiet, answering them.
    std::thread::sleep(Duration::from_millis(1000));
    let mut bob = Duet::client(addr, &["--name", "bob"]);
    bob.expect_event("connected");
    alice.send(b"after the quiet\n");
    loop {
        let v = bob.next_event();
        if v["event"] == "message" && v["from"] == "alice" && v["text"] == "after the quiet" {
            break;
        }
    }
    alice.expect_event("room_ack");
    s.send(b"/quit\n");
    assert_eq!(s.code(), 0);
    assert_eq!(alice.code(), 0);
    assert_eq!(bob.code(), 0);
}
