//! Room mode end to end (`duet server --room`) with the real binary:
//! fan-out to every other member exactly once and in order, acks and
//! receipts, `/msg`, name clashes, a full room, a member killed mid-chat,
//! and a member that stops reading dropped while the others chat on.

mod common;

use common::*;
use std::net::SocketAddr;

/// The hub's name in these tests.
const HUB: &str = "hub";

/// A room server (JSON lines) named [`HUB`] and its address.
fn room(extra: &[&str]) -> (Duet, SocketAddr) {
    let mut args = vec!["--room", "--name", HUB];
    args.extend_from_slice(extra);
    Duet::server(&args)
}

/// A client named `name` that has been welcomed into the room.
fn member(addr: SocketAddr, name: &str) -> Duet {
    let mut c = Duet::client(addr, &["--name", name]);
    c.expect_event("connected");
    let joined = c.expect_event("joined");
    assert_eq!(joined["name"], HUB, "{joined}");
    let welcome = c.expect_event("message");
    let text = welcome["text"].as_str().unwrap_or_default().to_string();
    if !text.contains("welcome to the room") {
        c.fail(&format!("first message is not the welcome: {text}"));
    }
    c
}

/// The room messages (not the room's `* ` notices) until `n` of them have
/// arrived, each as `<from> text` (the hub's own without its name), and
/// the acks seen meanwhile.
fn collect(c: &mut Duet, n: usize, acks: &mut usize) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        let v = c.next_event();
        match v["event"].as_str() {
            Some("room_ack") => *acks += 1,
            Some("message") => {
                let t = v["text"].as_str().unwrap_or_default();
                let from = v["from"].as_str().unwrap_or_else(|| c.fail("no from"));
                if t.starts_with("* ") {
                } else if from == HUB {
                    got.push(t.to_string());
                } else {
                    got.push(format!("<{from}> {t}"));
                }
            }
            _ => {}
        }
    }
    got
}

fn quit(s: &mut Duet) {
    s.send(b"/quit\n");
    assert_eq!(s.code(), 0, "the room closes cleanly");
}

#[test]
fn three_members_get_each_others_messages_once_in_order_without_echo() {
    let (mut s, addr) = room(&[]);
    let names = ["alice", "bob", "carol"];
    let mut cs: Vec<Duet> = names.iter().map(|n| member(addr, n)).collect();
    for (c, name) in cs.iter_mut().zip(names) {
        for i in 1..=3 {
            c.send(format!("{name} {i}\n").as_bytes());
        }
    }
    for (c, me) in cs.iter_mut().zip(names) {
        let mut acks = 0;
        let got = collect(c, 6, &mut acks);
        for other in names.iter().filter(|n| **n != me) {
            let from: Vec<&String> = got
                .iter()
                .filter(|t| t.starts_with(&format!("<{other}> ")))
                .collect();
            let want: Vec<String> = (1..=3).map(|i| format!("<{other}> {other} {i}")).collect();
            assert_eq!(from, want.iter().collect::<Vec<_>>(), "{me} from {other}");
        }
        assert!(
            !got.iter().any(|t| t.starts_with(&format!("<{me}> "))),
            "{me} got its own message back: {got:?}"
        );
        while acks < 3 {
            c.expect_event("room_ack");
            acks += 1;
        }
    }
    quit(&mut s);
    for c in cs.iter_mut() {
        assert_eq!(c.code(), 0);
    }
}

#[test]
fn msg_reaches_one_member_and_a_clash_gets_a_suffix() {
    let (mut s, addr) = room(&[]);
    let mut a = member(addr, "bob");
    let mut b = Duet::client(addr, &["--name", "bob"]);
    let welcome = b.expect_event("message");
    assert!(
        welcome["text"]
            .as_str()
            .unwrap()
            .contains("you are <bob~2>"),
        "{welcome}"
    );
    s.send(b"/msg bob~2 psst\n");
    s.send(b"to all\n");
    let mut acks = 0;
    assert_eq!(collect(&mut b, 2, &mut acks), ["psst", "to all"]);
    assert_eq!(collect(&mut a, 1, &mut acks), ["to all"]);
    quit(&mut s);
}

#[test]
fn a_full_room_turns_the_next_client_away_as_busy() {
    let (mut s, addr) = room(&["--max-peers", "2"]);
    let _a = member(addr, "alice");
    let _b = member(addr, "bob");
    let mut c = Duet::client(addr, &["--name", "carol"]);
    assert_eq!(c.code(), 4, "busy");
    quit(&mut s);
}

#[test]
fn a_member_killed_mid_chat_leaves_the_others_chatting() {
    let (mut s, addr) = room(&[]);
    let mut a = member(addr, "alice");
    let mut b = member(addr, "bob");
    let mut c = member(addr, "carol");
    c.send(b"about to go\n");
    let mut acks = 0;
    assert_eq!(collect(&mut a, 1, &mut acks), ["<carol> about to go"]);
    c.signal(libc::SIGKILL);
    let _ = c.wait();
    let left = s.expect_line("carol> left");
    assert!(left.contains("notice"), "{left}");
    a.send(b"still here\n");
    let got = collect(&mut b, 2, &mut acks);
    assert_eq!(got, ["<carol> about to go", "<alice> still here"]);
    a.expect_event("room_ack");
    quit(&mut s);
}

/// A fresh `DUET_HOME` for this file's tests.
fn home(name: &str) -> String {
    fresh_home(&format!("room-{name}"))
}

#[test]
fn an_encrypted_room_checks_each_members_key_against_allow() {
    let (hs, ha, hb, hx) = (home("s"), home("a"), home("b"), home("x"));
    let list = format!(
        "{}/room-allow-{}",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    );
    std::fs::write(
        &list,
        format!("{}\n{}\n", fingerprint(&ha), fingerprint(&hb)),
    )
    .unwrap();
    let mut args = SERVER_ARGS.to_vec();
    args.extend_from_slice(&["--room", "--allow", &list]);
    let mut s = Duet::spawn_encrypted(&args, &hs);
    let addr = s.listening_addr().to_string();
    let client = |home: &str, name: &str| {
        let args = ["client", addr.as_str(), "--format", "jsonl", "--name", name];
        Duet::spawn_encrypted(&args, home)
    };
    let mut x = client(&hx, "mallory");
    assert_eq!(x.code(), 5, "a key not in --allow is refused");
    let mut a = client(&ha, "alice");
    assert_eq!(a.expect_event("connected")["encrypted"], true);
    a.expect_event("message");
    let mut b = client(&hb, "bob");
    b.expect_event("message");
    a.send(b"sealed hello\n");
    let mut acks = 0;
    assert_eq!(collect(&mut b, 1, &mut acks), ["<alice> sealed hello"]);
    a.expect_event("room_ack");
    quit(&mut s);
}

/// A member whose output is text (as a person reads it), welcomed.
fn text_member(addr: SocketAddr, name: &str) -> Duet {
    let a = addr.to_string();
    let mut c = Duet::spawn(&["client", &a, "--format", "text", "--name", name]);
    c.expect_line("* joined the room at");
    c.expect_line("welcome to the room");
    c
}

/// The `room_ack` of message `id`, skipping other events.
fn room_ack(c: &mut Duet, id: u64) -> Value {
    loop {
        let v = c.expect_event("room_ack");
        if v["id"] == id {
            return v;
        }
    }
}

/// Names and statuses of a `room_ack`'s recipients, sorted; each
/// delivered one has an RTT.
fn recipients(ack: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = ack["recipients"]
        .as_array()
        .unwrap_or_else(|| panic!("no recipients: {ack}"))
        .iter()
        .map(|r| {
            let status = r["status"].as_str().unwrap_or_default().to_string();
            if status == "delivered" {
                assert!(r["rtt_us"].as_f64().is_some_and(|v| v > 0.0), "{ack}");
            }
            (r["name"].as_str().unwrap_or_default().to_string(), status)
        })
        .collect();
    out.sort();
    out
}

fn pair(name: &str, status: &str) -> (String, String) {
    (name.to_string(), status.to_string())
}

#[test]
fn members_see_who_wrote_each_message_and_how_many_got_theirs() {
    let (mut s, addr) = room(&[]);
    let mut alice = member(addr, "alice");
    let mut bob = member(addr, "bob");
    let mut carol = text_member(addr, "carol");
    s.expect_line("<carol> joined from");

    alice.send(b"hi from alice\n");
    let ack = room_ack(&mut alice, 1);
    assert_eq!(
        (ack["reached"].as_u64(), ack["of"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        recipients(&ack),
        [pair("bob", "delivered"), pair("carol", "delivered")]
    );
    let mut acks = 0;
    assert_eq!(collect(&mut bob, 1, &mut acks), ["<alice> hi from alice"]);
    carol.expect_line("<alice> hi from alice");

    carol.send(b"hi from carol\n");
    let mark = carol.expect_line("\u{2713} #1 ");
    assert!(
        mark.starts_with("\u{2713} #1 2/2 ") && mark.contains(" ms (slowest: <"),
        "{mark}"
    );
    // The hub's JSON names each member's message's sender.
    let shown = s.expect_line("hi from carol");
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        (v["event"].as_str(), v["from"].as_str()),
        (Some("message"), Some("carol"))
    );
    assert_eq!(collect(&mut alice, 1, &mut acks), ["<carol> hi from carol"]);

    // The summary gives each recipient's figures.
    carol.close_stdin();
    let rest = carol.rest();
    assert_eq!(carol.code(), 0);
    let figures: Vec<String> = rest
        .iter()
        .filter(|l| l.starts_with("to <"))
        .cloned()
        .collect();
    assert_eq!(figures.len(), 2, "{figures:?}");
    for (line, name) in figures.iter().zip(["alice", "bob"]) {
        assert!(
            line.starts_with(&format!("to <{name}>: 1 delivered, rtt min/avg/max = ")),
            "{figures:?}"
        );
    }
    alice.close_stdin();
    let summary = alice.expect_event("summary");
    let names: Vec<&str> = summary["recipients"]
        .as_array()
        .unwrap_or_else(|| panic!("{summary}"))
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["bob", "carol"], "{summary}");
    quit(&mut s);
}

/// A member that joins and then never reads: the hub's messages pile up
/// for it until its queue passes the cap, and it is dropped; the others
/// chat on throughout, their messages acknowledged.
#[test]
fn a_member_that_stops_reading_is_dropped_while_the_others_chat_on() {
    let (mut s, addr) = room(&[]);
    let mut alice = member(addr, "alice");
    let mut bob = member(addr, "bob");
    // A member by hand: HELLO, JOIN in answer to the room's PING, then
    // never another read.
    let mut sloth = Raw::connect(addr);
    assert_eq!(sloth.read_frame().0, 0x01, "the hub's HELLO");
    assert_eq!(
        sloth.read_frame(),
        (0x05, b"DUETROOM".to_vec()),
        "room PING"
    );
    sloth.write(&hello(b"sloth", 1 << 30));
    sloth.write(&frame(0x07, b"DUETROOM"));
    s.expect_line("<sloth> joined from");

    // Sloth is one of its recipients: its ack waits for sloth's fate.
    alice.send(b"before the flood\n");
    let mut acks = 0;
    assert_eq!(
        collect(&mut bob, 1, &mut acks),
        ["<alice> before the flood"]
    );

    // The hub floods the room, one message at a time once alice and bob
    // have it, until sloth is dropped.
    let big = format!("{}\n", "x".repeat(256 * 1024));
    let mut dropped = false;
    let mut during = false;
    let mut others: Vec<Value> = Vec::new();
    let mut flooded = 0;
    for i in 0..512 {
        if dropped && during {
            break;
        }
        s.send(big.as_bytes());
        if !dropped {
            flooded += big.len() - 1;
        }
        if i == 2 {
            bob.send(b"during the flood\n");
        }
        for c in [&mut alice, &mut bob] {
            loop {
                let v = c.next_event();
                if v["event"] == "message" && v["len"] == 256 * 1024 {
                    break;
                }
                let text = v["text"].as_str().unwrap_or_default();
                dropped |= text.contains("<sloth> left (dropped: fell behind)");
                during |= text == "during the flood";
                others.push(v);
            }
        }
    }
    assert!(dropped, "sloth was never dropped");
    eprintln!("sloth was dropped after {flooded} bytes");
    assert!(
        flooded > 1024 * 1024,
        "dropped before its queue could pass the cap"
    );
    assert!(during, "bob's message did not reach alice during the flood");
    s.expect_line("<sloth> left (dropped: fell behind)");
    let ack = others
        .iter()
        .find(|v| v["event"] == "room_ack" && v["id"] == 1)
        .cloned()
        .unwrap_or_else(|| room_ack(&mut alice, 1));
    assert_eq!(
        recipients(&ack),
        [pair("bob", "delivered"), pair("sloth", "lost")],
        "{ack}"
    );
    assert_eq!(ack["reached"], 1);

    // After the drop: sloth is no longer a recipient.
    alice.send(b"after the drop\n");
    let ack = room_ack(&mut alice, 2);
    assert_eq!(recipients(&ack), [pair("bob", "delivered")], "{ack}");
    loop {
        let v = bob.expect_event("message");
        if v["text"] == "after the drop" {
            assert_eq!(v["from"], "alice");
            break;
        }
    }
    drop(sloth);
    quit(&mut s);
}

#[test]
fn the_hubs_piped_lines_wait_for_a_member_and_move_at_its_pace() {
    // Far more than a member's queues hold (each line counts 64 bytes
    // beyond its text): none is read before someone is there to get it,
    // and a member that reads is never dropped for the hub's speed.
    const LINES: u32 = 40_000;
    let (mut hub, addr) = room(&[]);
    let mut stdin = hub.take_stdin();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let mut all = String::new();
        for n in 1..=LINES {
            all.push_str(&format!("{n}\n"));
        }
        all.push_str("/quit\n");
        let _ = stdin.write_all(all.as_bytes());
    });
    let mut c = member(addr, "alice");
    for n in 1..=LINES {
        let v = c.expect_event("message");
        if v["from"] != HUB || v["text"] != n.to_string().as_str() {
            c.fail(&format!("expected the hub's line {n}, got {v}"));
        }
    }
    feeder.join().expect("feeder");
    assert_eq!(hub.code(), 0);
    assert_eq!(c.code(), 0);
    assert!(
        !hub.seen.iter().any(|l| l.contains("fell behind")),
        "nobody was dropped"
    );
}
