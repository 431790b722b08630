//! Room tests: several plain client sessions, each wired in memory to its
//! own hub-side session, the hub sessions driven by one `Room`, on a
//! simulated clock, with a screen that records the hub's lines.

use std::borrow::Cow;

use super::*;
use crate::core::protocol::{Frame, Hello, ROOM_PROBE, decode, encode};
use crate::core::render::{self, Format, Stamp};
use crate::core::session::Config;

const MS: Duration = Duration::from_millis(1);

#[derive(Default)]
struct Recorder {
    lines: Vec<String>,
    json: Vec<String>,
}

impl Screen for Recorder {
    fn show(&mut self, line: &Line<'_>, _now: Instant) {
        let mut out = Vec::new();
        render::render(Format::Text, line, Stamp::default(), &mut out);
        self.lines
            .extend(String::from_utf8_lossy(&out).lines().map(str::to_string));
        let mut out = Vec::new();
        render::render(Format::Jsonl, line, Stamp::default(), &mut out);
        self.json
            .push(String::from_utf8_lossy(&out).trim_end().to_string());
    }
    fn show_part(&mut self, _: &[u8], _: u64, _: &[u8], _: bool, _: Instant) {}
    fn cut_off(&mut self, _: &[u8], _: Instant) {}
    fn echo_sent(&mut self, id: u64, data: &[u8], _: Instant) {
        self.lines
            .push(format!("echo #{id} {}", String::from_utf8_lossy(data)));
    }
}

impl Recorder {
    fn has(&self, needle: &str) -> bool {
        self.lines.iter().any(|l| l.contains(needle))
    }
}

fn cfg(name: &str) -> Config {
    Config::for_tests(name)
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One connection: the client's session (or a raw peer), the hub's
/// session for it, and the bytes on the wire each way.
struct Link {
    client: Option<Session>,
    hub: Session,
    up: Vec<u8>,
    down: Vec<u8>,
    /// What the client received: messages as text, acks as ids.
    got: Vec<String>,
    acked: Vec<u64>,
    /// The client stops reading (a slow member).
    stalled: bool,
    closed: bool,
}

struct Net {
    room: Room,
    links: BTreeMap<usize, Link>,
    screen: Recorder,
    now: Instant,
    next: usize,
}

impl Net {
    fn new(max_peers: usize) -> Net {
        Net {
            room: Room::new(RoomConfig {
                name: b"hub".to_vec(),
                max_peers,
                queue_cap: 64 * 1024,
                join_timeout: Duration::from_secs(5),
            }),
            links: BTreeMap::new(),
            screen: Recorder::default(),
            now: Instant::now(),
            next: 0,
        }
    }

    /// A plain client named `name` connects; returns its key.
    fn connect(&mut self, name: &str) -> Result<usize, RoomFull> {
        let client = Session::new(cfg(name), self.now);
        self.connect_with(Some(client))
    }

    fn connect_with(&mut self, client: Option<Session>) -> Result<usize, RoomFull> {
        let key = self.next;
        self.next += 1;
        let mut hub = Session::new(cfg("hub"), self.now);
        let port = 5000 + key as u16;
        self.room.handle_join(key, addr(port), &mut hub, self.now)?;
        self.links.insert(
            key,
            Link {
                client,
                hub,
                up: Vec::new(),
                down: Vec::new(),
                got: Vec::new(),
                acked: Vec::new(),
                stalled: false,
                closed: false,
            },
        );
        Ok(key)
    }

    fn say(&mut self, key: usize, text: &str) {
        let l = self.links.get_mut(&key).unwrap();
        let c = l.client.as_mut().unwrap();
        c.handle_input(Cow::Borrowed(text.as_bytes()), self.now)
            .unwrap();
    }

    /// Runs every connection and the room until nothing moves.
    fn run(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            let keys: Vec<usize> = self.links.keys().copied().collect();
            for key in keys {
                let l = self.links.get_mut(&key).unwrap();
                if l.closed {
                    continue;
                }
                // Hub to client.
                loop {
                    let t = l.hub.poll_transmit().bytes;
                    if t.is_empty() || (l.stalled && l.down.len() > 256 * 1024) {
                        break;
                    }
                    let n = t.len();
                    l.down.extend_from_slice(t);
                    l.hub.handle_written(n, self.now);
                    moved = true;
                }
                if let Some(c) = l.client.as_mut()
                    && !l.stalled
                {
                    let used = c.handle_peer_bytes(&l.down, self.now);
                    l.down.drain(..used);
                    while let Some(e) = c.poll_event() {
                        match e {
                            Event::Message { data, .. } => {
                                l.got.push(String::from_utf8_lossy(data).into_owned())
                            }
                            Event::Acked { id, .. } => l.acked.push(id),
                            _ => {}
                        }
                    }
                    loop {
                        let t = c.poll_transmit().bytes;
                        if t.is_empty() {
                            break;
                        }
                        let n = t.len();
                        l.up.extend_from_slice(t);
                        c.handle_written(n, self.now);
                        moved = true;
                    }
                }
                let used = l.hub.handle_peer_bytes(&l.up, self.now);
                l.up.drain(..used);
                self.room
                    .handle_events(key, &mut l.hub, &mut self.screen, self.now);
            }
            while let Some(key) = self.room.poll_woken() {
                if let Some(l) = self.links.get_mut(&key) {
                    self.room.feed(key, &mut l.hub, &mut self.screen, self.now);
                    moved = true;
                }
            }
            for key in self.links.keys().copied().collect::<Vec<_>>() {
                if self.room.has_queued(key) {
                    let l = self.links.get_mut(&key).unwrap();
                    self.room.feed(key, &mut l.hub, &mut self.screen, self.now);
                }
            }
            while let Some(d) = self.room.poll_drop() {
                let l = self.links.get_mut(&d.key).unwrap();
                l.hub.close_with(d.reason, d.detail.as_bytes());
                l.closed = true;
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("the room never settled");
    }

    fn got(&self, key: usize) -> Vec<String> {
        self.links[&key].got.clone()
    }

    /// What `key` received, without the room's own notices.
    fn chat(&self, key: usize) -> Vec<String> {
        self.got(key)
            .into_iter()
            .filter(|m| !m.starts_with("* "))
            .collect()
    }
}

fn three() -> (Net, usize, usize, usize) {
    let mut n = Net::new(64);
    let a = n.connect("alice").unwrap();
    let b = n.connect("bob").unwrap();
    let c = n.connect("carol").unwrap();
    n.run();
    assert_eq!(n.room.members(), 3);
    (n, a, b, c)
}

#[test]
fn every_member_gets_every_other_members_messages_once_in_order_without_echo() {
    let (mut n, a, b, c) = three();
    n.say(a, "a1");
    n.say(b, "b1");
    n.say(a, "a2");
    n.run();
    assert_eq!(n.chat(a), ["<bob> b1"]);
    assert_eq!(n.chat(b), ["<alice> a1", "<alice> a2"]);
    // Each sender's order holds; senders interleave as they arrive.
    let from = |who: &str| -> Vec<String> {
        n.chat(c)
            .into_iter()
            .filter(|m| m.starts_with(who))
            .collect()
    };
    assert_eq!(from("<alice>"), ["<alice> a1", "<alice> a2"]);
    assert_eq!(from("<bob>"), ["<bob> b1"]);
    assert_eq!(n.chat(c).len(), 3);
    // The hub shows them too.
    assert!(n.screen.has("<alice> a1"));
    assert!(n.screen.has("<bob> b1"));
    // Each sender's messages reached the room: acked, in order.
    assert_eq!(n.links[&a].acked, [1, 2]);
    assert_eq!(n.links[&b].acked, [1]);
}

#[test]
fn a_sender_is_acked_only_when_every_recipient_acked() {
    let (mut n, a, b, _c) = three();
    n.links.get_mut(&b).unwrap().stalled = true;
    n.say(a, "hi");
    n.run();
    assert!(n.links[&a].acked.is_empty(), "bob has not acknowledged");
    n.links.get_mut(&b).unwrap().stalled = false;
    n.run();
    assert_eq!(n.links[&a].acked, [1]);
}

#[test]
fn the_hubs_lines_go_to_all_and_reach_the_room_with_a_check_line() {
    let (mut n, a, b, c) = three();
    for k in [a, b, c] {
        n.links.get_mut(&k).unwrap().stalled = true;
    }
    n.room.handle_line(b"hello room", &mut n.screen, n.now);
    n.run();
    n.now += 2 * MS;
    for k in [a, b, c] {
        n.links.get_mut(&k).unwrap().stalled = false;
    }
    n.run();
    for k in [a, b, c] {
        assert_eq!(n.chat(k), ["hello room"], "no prefix: the hub's own");
    }
    let check = n.screen.lines.iter().find(|l| l.starts_with('✓')).unwrap();
    assert!(check.starts_with("✓ #"), "{check}");
    assert!(check.contains(" 3/3 2.000 ms (slowest: <"), "{check}");
    let json = n
        .screen
        .json
        .iter()
        .find(|l| l.contains("room_ack"))
        .unwrap();
    assert!(json.contains("\"reached\":3,\"of\":3"), "{json}");
    assert!(
        json.contains("{\"name\":\"alice\",\"status\":\"delivered\",\"rtt_us\":2000.000}"),
        "{json}"
    );
}

#[test]
fn a_double_slash_sends_a_line_that_starts_with_a_slash() {
    let (mut n, a, _, _) = three();
    n.room
        .handle_line(b"//etc/hosts is a file", &mut n.screen, n.now);
    n.run();
    assert_eq!(n.chat(a), ["/etc/hosts is a file"]);
}

#[test]
fn msg_and_at_reach_one_member_and_an_unknown_name_is_an_error() {
    let (mut n, a, b, c) = three();
    n.room.handle_line(b"/msg bob psst", &mut n.screen, n.now);
    n.room.handle_line(b"@carol hey", &mut n.screen, n.now);
    n.room.handle_line(b"@dave hey", &mut n.screen, n.now);
    n.run();
    assert_eq!(n.chat(a), Vec::<String>::new());
    assert_eq!(n.chat(b), ["psst"]);
    assert_eq!(n.chat(c), ["hey"]);
    assert!(n.screen.has("* error: no member named <dave>"));
    assert!(n.screen.has("1/1"));
}

#[test]
fn a_name_clash_gets_a_suffix_and_the_member_is_told() {
    let mut n = Net::new(64);
    let a = n.connect("bob").unwrap();
    let b = n.connect("bob").unwrap();
    let h = n.connect("hub").unwrap();
    let e = n.connect("").unwrap();
    n.run();
    assert!(n.got(a)[0].contains("you are <bob>"));
    assert!(
        n.got(b)[0].contains("you are <bob~2>; here: <bob>"),
        "{:?}",
        n.got(b)
    );
    assert!(n.got(h)[0].contains("you are <hub~2>"));
    assert!(n.got(e)[0].contains("you are <peer>"));
    n.say(b, "hi");
    n.run();
    assert_eq!(n.chat(a), ["<bob~2> hi"]);
    assert!(
        n.screen
            .has("<bob~2> joined from 127.0.0.1:5001, plain client")
    );
    assert!(n.got(a).iter().any(|m| m == "* <bob~2> joined"));
}

#[test]
fn clashing_names_take_the_first_free_suffix_even_after_one_is_freed() {
    let mut n = Net::new(64);
    let keys: Vec<usize> = (0..5).map(|_| n.connect("bob").unwrap()).collect();
    n.run();
    assert!(n.got(keys[4])[0].contains("you are <bob~5>"));
    n.room.handle_leave(keys[2], &mut n.screen, n.now);
    n.links.get_mut(&keys[2]).unwrap().closed = true;
    let again = n.connect("bob").unwrap();
    n.run();
    let next = n.connect("bob").unwrap();
    n.run();
    assert!(
        n.got(again)[0].contains("you are <bob~3>"),
        "{:?}",
        n.got(again)
    );
    assert!(
        n.got(next)[0].contains("you are <bob~6>"),
        "{:?}",
        n.got(next)
    );
    n.room.handle_line(b"/msg bob~6 psst", &mut n.screen, n.now);
    n.room
        .handle_line(b"/msg <bob~3> hey", &mut n.screen, n.now);
    n.run();
    assert_eq!(n.chat(next), ["psst"]);
    assert_eq!(n.chat(again), ["hey"]);
}

#[test]
fn who_lists_names_addresses_and_last_rtt() {
    let (mut n, ..) = three();
    n.room.handle_line(b"x", &mut n.screen, n.now);
    n.run();
    n.screen.lines.clear();
    n.room.handle_line(b"/who", &mut n.screen, n.now);
    assert_eq!(
        n.screen.lines,
        [
            "* <alice> 127.0.0.1:5000 last RTT 0.000 ms",
            "* <bob> 127.0.0.1:5001 last RTT 0.000 ms",
            "* <carol> 127.0.0.1:5002 last RTT 0.000 ms",
            "* 3 in the room besides you",
        ]
    );
}

#[test]
fn a_member_leaving_mid_fanout_counts_as_lost_and_the_others_are_told() {
    let (mut n, a, b, c) = three();
    n.links.get_mut(&b).unwrap().stalled = true;
    n.say(a, "hi");
    n.room.handle_line(b"from hub", &mut n.screen, n.now);
    n.run();
    assert!(n.links[&a].acked.is_empty());
    // bob's connection dies.
    n.links.get_mut(&b).unwrap().hub.handle_lost("reset".into());
    n.run();
    n.links.get_mut(&b).unwrap().closed = true;
    assert_eq!(
        n.links[&a].acked,
        [1],
        "acked once the room is accounted for"
    );
    assert!(n.screen.has("<bob> left (reset)"));
    assert!(n.got(c).iter().any(|m| m == "* <bob> left (reset)"));
    assert!(
        n.screen
            .has("2/3 0.000 ms (slowest: <carol>; not delivered: <bob>)"),
        "{:?}",
        n.screen.lines
    );
    assert_eq!(n.room.members(), 2);
    // Leaving twice changes nothing.
    n.room.handle_leave(b, &mut n.screen, n.now);
    assert_eq!(n.room.members(), 2);
}

#[test]
fn a_member_that_falls_behind_is_dropped_and_the_others_go_on() {
    let (mut n, a, b, c) = three();
    n.links.get_mut(&b).unwrap().stalled = true;
    let big = "x".repeat(60 * 1024);
    for _ in 0..80 {
        n.say(a, &big);
        n.run();
    }
    assert!(n.links[&b].closed, "bob was dropped");
    assert!(n.screen.has("<bob> left (dropped: fell behind)"));
    let bye = n.links[&b].hub.end().cloned();
    assert_eq!(bye, Some(End::Local(ByeReason::Timeout)));
    assert_eq!(n.room.members(), 2);
    n.say(c, "still here");
    n.run();
    assert!(n.chat(a).contains(&"<carol> still here".to_string()));
    assert_eq!(
        n.links[&a].acked.len(),
        80,
        "every message reached the room"
    );
    assert!(n.room.queued_bytes() <= 2 * 64 * 1024);
}

#[test]
fn a_flood_of_empty_lines_fills_a_slow_members_queue_too() {
    let (mut n, a, b, c) = three();
    n.links.get_mut(&b).unwrap().stalled = true;
    // Each queued message costs its queue entry as well as its bytes, so
    // empty ones reach the cap (64 KiB at 64 bytes each here) once the
    // hub's session for bob holds all it takes.
    for _ in 0..100_000 {
        n.room.handle_line(b"", &mut n.screen, n.now);
        n.run();
        if n.links[&b].closed {
            break;
        }
    }
    assert!(n.links[&b].closed, "bob was dropped");
    assert!(n.screen.has("<bob> left (dropped: fell behind)"));
    assert_eq!(n.room.members(), 2);
    assert!(n.room.queued_bytes() <= 2 * 64 * 1024);
    assert!(!n.links[&a].closed && !n.links[&c].closed);
}

#[test]
fn the_hubs_input_waits_for_a_member_and_runs_a_window_ahead_of_the_fastest() {
    let mut n = Net::new(64);
    // Nobody there: commands are taken, the first message is held.
    assert!(n.room.wants_input());
    assert!(n.room.handle_piped_line(b"/who", &mut n.screen, n.now));
    assert!(!n.room.handle_piped_line(b"first", &mut n.screen, n.now));
    assert!(!n.room.wants_input(), "a line is held");
    let a = n.connect("alice").unwrap();
    assert!(!n.room.wants_input(), "alice has not answered the greeting");
    n.run();
    assert_eq!(
        n.chat(a),
        ["first"],
        "the held line went to the first member"
    );
    assert!(n.room.wants_input());
    // Alice stops reading: a window of the hub's lines, and no more.
    n.links.get_mut(&a).unwrap().stalled = true;
    let mut taken = 0;
    while n.room.wants_input() {
        n.room.handle_line(b"x", &mut n.screen, n.now);
        n.run();
        taken += 1;
        assert!(taken <= HUB_WINDOW, "the hub kept taking input");
    }
    assert_eq!(taken, HUB_WINDOW);
    // Bob reads: the hub goes on at his pace, and alice falls behind.
    let b = n.connect("bob").unwrap();
    n.run();
    assert!(n.room.wants_input(), "bob has room");
    n.room.handle_line(b"for bob too", &mut n.screen, n.now);
    n.run();
    assert!(n.chat(b).contains(&"for bob too".to_string()));
    n.links.get_mut(&a).unwrap().stalled = false;
    n.run();
    assert_eq!(n.chat(a).len(), HUB_WINDOW + 2, "alice got all of it");
}

#[test]
fn an_input_budget_ends_at_half_a_window_or_a_quarter_of_the_cap() {
    let taken = |room: &Room, len: usize| {
        let mut b = room.input_budget();
        (1..).take_while(|_| b.take(len)).count() + 1
    };
    let room = Room::new(RoomConfig {
        name: b"hub".to_vec(),
        max_peers: 1,
        queue_cap: QUEUE_CAP,
        join_timeout: Duration::from_secs(5),
    });
    assert_eq!(taken(&room, 0), HUB_WINDOW / 2, "short lines: the window");
    assert_eq!(taken(&room, 4096 - MSG_COST), 64, "long ones: 256 KiB");
    // 16 KiB here (64 KiB / 4), each empty line costing 64 bytes.
    assert_eq!(taken(&Net::new(64).room, 0), 256);
}

#[test]
fn a_member_that_says_goodbye_just_left_and_the_others_are_told() {
    let (mut n, a, b, _c) = three();
    let l = n.links.get_mut(&a).unwrap();
    l.client.as_mut().unwrap().close(ByeReason::Normal);
    n.run();
    assert!(n.screen.has("<alice> left"));
    assert!(!n.screen.has("<alice> left ("), "no reason for a goodbye");
    assert!(
        n.got(b).iter().any(|m| m == "* <alice> left"),
        "{:?}",
        n.got(b)
    );
}

#[test]
fn max_peers_turns_the_next_connection_away() {
    let mut n = Net::new(2);
    n.connect("a").unwrap();
    n.connect("b").unwrap();
    assert_eq!(n.connect("c"), Err(RoomFull { max_peers: 2 }));
}

#[test]
fn a_peer_that_never_answers_the_room_ping_is_dropped_at_the_deadline() {
    let mut n = Net::new(8);
    let k = n.connect_with(None).unwrap();
    // A raw peer sends HELLO and nothing else.
    let mut hello = Vec::new();
    encode(
        &Frame::Hello(Hello {
            version: 1,
            max_message: 1 << 20,
            name: b"mute",
        }),
        &mut hello,
    );
    n.links.get_mut(&k).unwrap().up = hello;
    n.run();
    assert_eq!(n.room.members(), 0);
    let at = n.room.poll_timeout().unwrap();
    assert_eq!(at, n.now + Duration::from_secs(5));
    n.now = at;
    n.room.handle_timeout(&mut n.screen, n.now);
    let d = n.room.poll_drop().unwrap();
    assert_eq!(d.key, k);
    assert_eq!(d.detail, "you did not answer the room's greeting");
    assert_eq!(n.room.poll_timeout(), None);
}

#[test]
fn a_join_member_gets_envelopes_and_receipts_before_its_ack() {
    let (mut n, a, _b, _c) = three();
    let j = n.connect_with(None).unwrap();
    let mut up = Vec::new();
    encode(
        &Frame::Hello(Hello {
            version: 1,
            max_message: 1 << 20,
            name: b"jo",
        }),
        &mut up,
    );
    encode(&Frame::Join(ROOM_PROBE), &mut up);
    n.links.get_mut(&j).unwrap().up = up;
    n.run();
    assert!(n.screen.has("<jo> joined from 127.0.0.1:5003"));
    // jo acknowledges what it got so far and sends a message.
    let frames = |bytes: &[u8]| {
        let mut rest = bytes;
        let mut out = Vec::new();
        while let Some((f, used)) = decode(rest).unwrap() {
            out.push(format!("{f:?}"));
            rest = &rest[used..];
        }
        out
    };
    let down = std::mem::take(&mut n.links.get_mut(&j).unwrap().down);
    let got = frames(&down);
    assert_eq!(got[1], format!("Ping({ROOM_PROBE})"), "{got:?}");
    let mut up = Vec::new();
    for id in 1..=got.iter().filter(|f| f.contains("last: true")).count() as u64 {
        encode(&Frame::Ack { id }, &mut up);
    }
    encode(
        &Frame::Data {
            id: 1,
            last: true,
            chunk: b"yo",
        },
        &mut up,
    );
    n.links.get_mut(&j).unwrap().up = up;
    n.run();
    assert_eq!(n.chat(a).last().unwrap(), "<jo> yo");
    let got = frames(&n.links[&j].down);
    let tail: Vec<&String> = got
        .iter()
        .filter(|f| f.starts_with("Receipt") || f.starts_with("Ack"))
        .collect();
    assert_eq!(tail.len(), 4, "{got:?}");
    assert!(
        tail[..3]
            .iter()
            .all(|f| f.contains("id: 1, status: Delivered"))
    );
    assert_eq!(tail[3], "Ack { id: 1 }");
    // A message from alice reaches jo in the envelope.
    n.say(a, "hey");
    n.run();
    let got = frames(&n.links[&j].down);
    let last = got.last().unwrap();
    assert!(
        last.contains("chunk: [5, 97, 108, 105, 99, 101, 104, 101, 121]"),
        "{last}"
    );
}

#[test]
fn a_message_right_behind_its_senders_join_gets_receipts_and_follows_the_joined_notice() {
    let (mut n, a, _b, _c) = three();
    let j = n.connect_with(None).unwrap();
    let mut up = Vec::new();
    let hello = Hello {
        version: 1,
        max_message: 1 << 20,
        name: b"jo",
    };
    encode(&Frame::Hello(hello), &mut up);
    n.links.get_mut(&j).unwrap().up = up;
    n.run();
    // JOIN and the first message in one read, as a piped client sends them.
    let mut up = Vec::new();
    encode(&Frame::Join(ROOM_PROBE), &mut up);
    let data = Frame::Data {
        id: 1,
        last: true,
        chunk: b"yo",
    };
    encode(&data, &mut up);
    n.links.get_mut(&j).unwrap().up = up;
    n.run();
    let joined = n
        .screen
        .lines
        .iter()
        .position(|l| l.contains("<jo> joined"));
    let said = n.screen.lines.iter().position(|l| l.contains("yo"));
    assert!(joined.is_some() && joined < said, "{:?}", n.screen.lines);
    assert_eq!(n.chat(a).last().unwrap(), "<jo> yo");
    let mut rest = &n.links[&j].down[..];
    let mut receipts = 0;
    while let Some((f, used)) = decode(rest).unwrap() {
        receipts += usize::from(matches!(f, Frame::Receipt { id: 1, .. }));
        rest = &rest[used..];
    }
    assert_eq!(receipts, 3, "one per recipient");
}

#[test]
fn a_message_over_a_members_limit_is_refused_for_it_alone() {
    let mut n = Net::new(8);
    let a = n.connect("a").unwrap();
    let mut small = cfg("small");
    small.max_message = 8;
    let s = n.connect_with(Some(Session::new(small, n.now))).unwrap();
    n.run();
    n.say(a, "longer than eight");
    n.run();
    assert_eq!(n.links[&a].acked, [1], "refused counts as accounted for");
    assert!(n.chat(s).is_empty());
    n.room.handle_line(b"0123456789", &mut n.screen, n.now);
    n.run();
    assert!(
        n.screen
            .has("1/2 0.000 ms (slowest: <a>; not delivered: <small>)"),
        "{:?}",
        n.screen.lines
    );
}

#[test]
fn the_summary_has_per_member_and_overall_figures() {
    let (mut n, a, ..) = three();
    // A peer still greeting (HELLO, no answer to the room's PING) is not
    // a member, and not in the summary.
    let g = n.connect_with(None).unwrap();
    let hello = Hello {
        version: 1,
        max_message: 1 << 20,
        name: b"gus",
    };
    encode(&Frame::Hello(hello), &mut n.links.get_mut(&g).unwrap().up);
    n.say(a, "x");
    n.now += MS;
    n.run();
    n.screen.lines.clear();
    n.room.summary(&mut n.screen, n.now);
    let s = n.screen.lines.join("\n");
    assert!(s.starts_with("* --- room: 3 joined,"), "{s}");
    assert!(s.contains("<bob>: "), "{s}");
    assert!(!s.contains("<gus>"), "{s}");
    assert!(s.contains("* all: rtt min/avg/max/mdev = "), "{s}");
}

#[test]
fn quit_and_help_and_unknown_commands() {
    let (mut n, ..) = three();
    n.room.handle_line(b"/nope", &mut n.screen, n.now);
    assert!(n.screen.has("* error: unknown command /nope (try /help)"));
    n.room.handle_line(b"/help", &mut n.screen, n.now);
    assert!(n.screen.has("/msg NAME TEXT"));
    assert!(!n.room.quitting());
    n.room.handle_line(b"/quit", &mut n.screen, n.now);
    assert!(n.room.quitting());
}
