//! End-to-end chats with the real binary: both directions, volume,
//! binary safety, large messages, several clients, busy, and exit codes.

mod common;

use common::*;
use std::net::SocketAddr;

/// A server printing text, and its listening address (its first line).
fn text_server(extra: &[&str]) -> (Duet, SocketAddr) {
    let mut args = vec!["server", "--listen", "127.0.0.1", "--port", "0"];
    args.extend_from_slice(extra);
    let mut s = Duet::spawn(&args);
    let first = s.next_line();
    let Some(addr) = first.strip_prefix("* listening on ") else {
        s.fail(&format!("first line is not the listening address: {first}"));
    };
    (s, addr.parse().unwrap())
}

/// A server and a connected client; both have seen `connected`.
fn chat(server_args: &[&str], client_args: &[&str]) -> (Duet, Duet, SocketAddr) {
    let (mut s, addr) = Duet::server(server_args);
    let mut c = Duet::client(addr, client_args);
    c.expect_event("connected");
    s.expect_event("connected");
    (s, c, addr)
}

#[test]
fn chat_in_both_directions_with_acks_and_summary() {
    let (mut s, mut c, _) = chat(&["--name", "srv"], &["--name", "cli"]);
    c.send(b"hello from client\n");
    let m = s.expect_event("message");
    assert_eq!(
        (m["id"].as_u64(), m["text"].as_str()),
        (Some(1), Some("hello from client"))
    );
    let a = c.expect_event("ack");
    assert_eq!(a["id"], 1);
    assert!(a["rtt_us"].as_f64().unwrap() > 0.0);

    s.send(b"hello from server\n");
    let m = c.expect_event("message");
    assert_eq!(m["text"], "hello from server");
    assert_eq!(s.expect_event("ack")["id"], 1);

    c.close_stdin();
    let sum = c.expect_event("summary");
    assert_eq!(
        (
            sum["sent"].as_u64(),
            sum["acked"].as_u64(),
            sum["received"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(sum["rtt_us"]["n"], 1);
    assert_eq!(c.code(), 0);
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("<cli> left"),
        "{closed}"
    );
    let sum = s.expect_event("summary");
    assert_eq!(
        (
            sum["sent"].as_u64(),
            sum["acked"].as_u64(),
            sum["received"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert!(s.running(), "server keeps running after the client leaves");
}

#[test]
fn thousand_piped_messages_all_acknowledged_in_order() {
    let (mut s, mut c, _) = chat(&[], &[]);
    let input: String = (1..=1000).map(|i| format!("message {i}\n")).collect();
    c.send(input.as_bytes());
    c.close_stdin();
    for i in 1..=1000u64 {
        let m = s.expect_event("message");
        assert_eq!(m["id"], i);
        assert_eq!(m["text"], format!("message {i}"));
    }
    for i in 1..=1000u64 {
        assert_eq!(c.expect_event("ack")["id"], i);
    }
    let sum = c.expect_event("summary");
    assert_eq!(
        (sum["sent"].as_u64(), sum["acked"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(sum["rtt_us"]["n"], 1000);
    assert_eq!(c.code(), 0);
}

#[test]
fn every_byte_value_arrives_exact() {
    let (mut s, mut c, _) = chat(&[], &["--input", "whole"]);
    let all: Vec<u8> = (0..=255u8).collect();
    c.send(&all);
    c.close_stdin();
    let m = s.expect_event("message");
    assert_eq!(m["len"], 256);
    assert_eq!(message_bytes(&m), all);
    assert_eq!(c.code(), 0);
}

#[test]
fn every_byte_value_is_escaped_in_the_text_transcript() {
    let all: Vec<u8> = (0..=255u8).collect();
    let (mut t, addr) = text_server(&["--once"]);
    let mut c = Duet::client(addr, &["--input", "whole"]);
    c.send(&all);
    c.close_stdin();
    assert_eq!(c.code(), 0);
    let lines = t.rest();
    let body: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("<client> "))
        .collect();
    // \n splits the message into two tagged lines; nothing else is raw.
    assert_eq!(body.len(), 2, "{lines:?}");
    for l in &body {
        assert!(l.chars().all(|c| !c.is_control()), "raw control in {l:?}");
    }
    assert!(body[0].contains("\\x00\\x01") && body[0].contains("\\t"));
    assert!(body[1].contains("\\x1b") && body[1].contains("\\x7f") && body[1].contains("\\xff"));
}

#[test]
fn empty_message() {
    let (mut s, mut c, _) = chat(&[], &[]);
    c.send(b"\n");
    let m = s.expect_event("message");
    assert_eq!((m["len"].as_u64(), m["text"].as_str()), (Some(0), Some("")));
    assert_eq!(c.expect_event("ack")["len"], 0);
}

#[test]
fn ten_megabyte_message_each_way() {
    let (mut s, mut c, _) = chat(&["--input", "whole"], &["--input", "whole"]);
    let big: Vec<u8> = (0..10_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    // Server to client first: the client must still be there to get it.
    // Writes go through threads, as a 10 MB write blocks until duet reads.
    let mut ss = s.take_stdin();
    let down = big.clone();
    let t = std::thread::spawn(move || std::io::Write::write_all(&mut ss, &down));
    let m = c.expect_event("message");
    assert_eq!(m["len"], 10_000_000);
    assert!(message_bytes(&m) == big, "server to client bytes differ");
    assert_eq!(s.expect_event("ack")["len"], 10_000_000);
    t.join().unwrap().unwrap();

    let mut cs = c.take_stdin();
    let up = big.clone();
    let t = std::thread::spawn(move || std::io::Write::write_all(&mut cs, &up));
    let m = s.expect_event("message");
    assert!(message_bytes(&m) == big, "client to server bytes differ");
    assert_eq!(c.expect_event("ack")["len"], 10_000_000);
    t.join().unwrap().unwrap();
    let sum = c.expect_event("summary");
    assert_eq!(
        (sum["acked"].as_u64(), sum["received"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(c.code(), 0);
}

#[test]
fn three_clients_one_after_another() {
    let (mut s, addr) = Duet::server(&[]);
    for i in 1..=3 {
        let name = format!("c{i}");
        let mut c = Duet::client(addr, &["--name", &name]);
        c.send(format!("hi from {name}\n").as_bytes());
        c.close_stdin();
        assert_eq!(c.code(), 0, "client {i}");
        assert_eq!(s.expect_event("connected")["name"], name.as_str());
        let m = s.expect_event("message");
        assert_eq!(
            (m["id"].as_u64(), m["text"].as_str()),
            (Some(1), Some(format!("hi from {name}").as_str()))
        );
        s.expect_event("summary");
    }
    assert!(s.running());
}

#[test]
fn second_client_is_busy_and_the_first_chat_goes_on() {
    let (mut s, mut c1, addr) = chat(&[], &["--name", "first"]);
    let mut c2 = Duet::client(addr, &["--name", "second"]);
    assert_eq!(c2.code(), 4);
    assert!(c2.stderr().contains("busy"), "{}", c2.stderr());
    // Turned away, it had no chat: not "connected", no summary, one
    // "closed" saying why.
    let lines = c2.rest();
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(events.len(), 1, "{lines:?}");
    assert_eq!(events[0]["event"], "closed");
    assert_eq!(events[0]["reason"], "server is busy with another chat");
    // The first chat is undisturbed.
    c1.send(b"still here\n");
    assert_eq!(s.expect_event("message")["text"], "still here");
    assert_eq!(c1.expect_event("ack")["id"], 1);
    s.send(b"and me\n");
    assert_eq!(c1.expect_event("message")["text"], "and me");
    c1.close_stdin();
    assert_eq!(c1.code(), 0);
    // The server never reported the second client as connected.
    let closed = s.expect_event("closed");
    assert!(closed["reason"].as_str().unwrap().contains("first"));
    assert!(!s.seen.iter().any(|l| l.contains("\"second\"")));
}

/// Piped input is not read while nobody is connected: it stays in the pipe
/// and goes to the next client, instead of being dropped line by line.
/// (A line typed on a terminal is refused: `tests/terminal.rs`.)
#[test]
fn server_holds_piped_input_for_the_next_client() {
    let (mut s, addr) = Duet::server(&[]);
    s.send(b"for whoever comes\n");
    let mut c = Duet::client(addr, &[]);
    assert_eq!(c.expect_event("message")["text"], "for whoever comes");
    c.close_stdin();
    assert_eq!(c.code(), 0);
    s.expect_event("closed");
    // Between chats too.
    s.send(b"for the next one\n");
    let mut c = Duet::client(addr, &[]);
    assert_eq!(c.expect_event("message")["text"], "for the next one");
    assert!(
        !s.seen.iter().any(|l| l.contains("nobody is connected")),
        "{:?}",
        s.seen
    );
}

#[test]
fn server_with_stdin_from_dev_null_and_from_a_file() {
    let dir = std::env::temp_dir().join(format!("duet-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("stdin.txt");
    std::fs::write(&file, "from a file\n").unwrap();
    let stdins = [
        Stdin::Null,
        Stdin::File(std::fs::File::open(&file).unwrap()),
    ];
    for stdin in stdins {
        let from_file = matches!(stdin, Stdin::File(_));
        let mut s = Duet::spawn_with(SERVER_ARGS, stdin, &[]);
        let addr = s.listening_addr();
        let mut c = Duet::client(addr, &[]);
        if from_file {
            // Read once a client is there, not dropped before.
            assert_eq!(c.expect_event("message")["text"], "from a file");
        }
        c.send(b"ping\n");
        assert_eq!(s.expect_event("message")["text"], "ping");
        assert_eq!(c.expect_event("ack")["id"], 1);
        c.close_stdin();
        assert_eq!(c.code(), 0);
        assert!(s.running());
    }
}

/// A record over --max-message that is already waiting when the chat opens
/// is reported after `connected`, not before it, and the next goes out.
#[test]
fn a_skipped_first_record_is_reported_after_connected() {
    let (mut s, addr) = Duet::server(&[]);
    let a = addr.to_string();
    let mut c = Duet::spawn(&["client", &a, "--format", "jsonl", "--max-message", "8"]);
    c.send(b"0123456789\nfits\n");
    assert_eq!(c.next_event()["event"], "connected");
    let e = c.next_event();
    assert_eq!(e["event"], "error", "{e}");
    assert_eq!(
        e["message"],
        "not sent: input record longer than --max-message (8 bytes) was skipped"
    );
    assert_eq!(s.expect_event("message")["text"], "fits");
    c.close_stdin();
    assert_eq!(c.code(), 3, "a skipped record counts as undelivered");
}

#[test]
fn client_stdin_from_dev_null_exits_cleanly() {
    let (_s, addr) = Duet::server(&[]);
    let a = addr.to_string();
    let mut c = Duet::spawn_with(&["client", &a], Stdin::Null, &[]);
    assert_eq!(c.code(), 0);
}

#[test]
fn ipv6_loopback() {
    let mut s = Duet::spawn(&[
        "server", "--listen", "::1", "--port", "0", "--format", "jsonl",
    ]);
    let addr = s.listening_addr();
    assert!(addr.is_ipv6());
    let target = format!("[::1]:{}", addr.port());
    let mut c = Duet::spawn(&["client", &target, "--format", "jsonl"]);
    c.send(b"over v6\n");
    assert_eq!(s.expect_event("message")["text"], "over v6");
    assert_eq!(c.expect_event("ack")["id"], 1);
}

/// A zone (`%lo`, or an index) is what a link-local address needs; on `::1`
/// the kernel ignores it, so loopback checks the parsing and resolution.
/// `tests/netns.sh` chats over a real link-local address.
#[test]
fn ipv6_with_a_zone() {
    let mut s = Duet::spawn(&[
        "server", "--listen", "::1%lo", "--port", "0", "--format", "jsonl",
    ]);
    let port = s.listening_addr().port();
    let target = format!("[::1%lo]:{port}");
    let mut c = Duet::spawn(&["client", &target, "--format", "jsonl"]);
    c.send(b"zoned\n");
    assert_eq!(s.expect_event("message")["text"], "zoned");
    assert_eq!(c.expect_event("ack")["id"], 1);

    let mut c = Duet::spawn(&["client", "[fe80::1%no-such-if0]:1"]);
    assert_eq!(c.code(), 1);
    assert_eq!(
        c.stderr(),
        "duet: cannot resolve fe80::1%no-such-if0: no network interface named 'no-such-if0'\n"
    );
}

#[test]
fn default_listener_is_dual_stack() {
    let mut s = Duet::spawn(&["server", "--port", "0", "--format", "jsonl"]);
    let addr = s.listening_addr();
    for host in ["127.0.0.1", "[::1]"] {
        let target = format!("{host}:{}", addr.port());
        let mut c = Duet::spawn(&["client", &target, "--format", "jsonl"]);
        c.send(b"x\n");
        c.close_stdin();
        assert_eq!(c.code(), 0, "via {host}");
    }
}

#[test]
fn hostname_and_port_flag() {
    let (mut s, addr) = Duet::server(&[]);
    let port = addr.port().to_string();
    let mut c = Duet::spawn(&["client", "localhost", "--port", &port, "--format", "jsonl"]);
    c.send(b"by name\n");
    assert_eq!(s.expect_event("message")["text"], "by name");
    // DUET_PORT is the fallback for --port.
    let mut c2 = Duet::spawn_with(
        &["client", "localhost"],
        Stdin::Null,
        &[("DUET_PORT", &port)],
    );
    assert_eq!(c2.code(), 4, "busy, so it reached the same server");
}

#[test]
fn connection_refused_is_exit_1_with_one_line() {
    let target = format!("127.0.0.1:{}", dead_port());
    let mut c = Duet::spawn(&["client", &target]);
    assert_eq!(c.code(), 1);
    let err = c.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("duet: cannot connect to 127.0.0.1:") && err.contains("connection refused"),
        "{err}"
    );
}

#[test]
fn port_in_use_is_exit_1() {
    let (_s, addr) = Duet::server(&[]);
    let port = addr.port().to_string();
    let mut s2 = Duet::spawn(&["server", "--listen", "127.0.0.1", "--port", &port]);
    assert_eq!(s2.code(), 1);
    assert!(
        s2.stderr().contains("address already in use"),
        "{}",
        s2.stderr()
    );
}

#[test]
fn bad_arguments_are_exit_2_with_one_line() {
    // A bare `duet` shows the help instead (on stderr).
    let mut d = Duet::spawn_with(&[], Stdin::Null, &[]);
    assert_eq!(d.code(), 2);
    assert!(
        d.stderr().contains("Usage: duet <COMMAND>"),
        "{}",
        d.stderr()
    );
    let cases: &[&[&str]] = &[
        &["dance"],
        &["server", "--bogus"],
        &["client", "h", "-1"],
        &["client"],
        &["client", "h", "--max-message", "lots"],
        &["client", "h:1", "--port", "2"],
        &["client", "[::1"],
        &["client", "fe80::1%"],
        &["client", "[fe80::1]:7777"],
        &["server", "--port", "70000"],
        &["server", "--listen", "not-an-ip"],
        &["server", "--listen", "127.0.0.1%lo"],
        &["server", "--listen", "fe80::1"],
        &["server", "--format", "xml"],
        &["server", "--linger", "soon"],
    ];
    for args in cases {
        let mut d = Duet::spawn_with(args, Stdin::Null, &[]);
        assert_eq!(d.code(), 2, "duet {args:?}: {}", d.stderr());
        let err = d.stderr();
        assert!(
            err.starts_with("duet: ") && err.lines().count() == 1,
            "duet {args:?}: {err}"
        );
    }
}

#[test]
fn help_shows_exit_codes() {
    let mut d = Duet::spawn_with(&["--help"], Stdin::Null, &[]);
    let out = d.rest().join("\n");
    assert_eq!(d.code(), 0);
    assert!(out.contains("Exit status") && out.contains("busy"), "{out}");
}

#[test]
fn help_shows_the_keys_and_commands() {
    for args in [
        &["--help"][..],
        &["client", "--help"],
        &["server", "--help"],
    ] {
        let mut d = Duet::spawn_with(args, Stdin::Null, &[]);
        let out = d.rest().join("\n");
        assert_eq!(d.code(), 0);
        for needle in [
            "Ctrl-D leave",
            "Ctrl-J",
            "/help",
            "/quit",
            "/send PATH",
            "/next",
        ] {
            assert!(out.contains(needle), "{args:?} lacks {needle}: {out}");
        }
    }
}

#[test]
fn message_over_the_peer_limit_is_refused_and_exit_is_3() {
    let (_s, mut c, _) = chat(&["--max-message", "10"], &[]);
    c.send(b"short\nthis one is far too long\n");
    c.close_stdin();
    let e = c.expect_event("error");
    assert!(e["message"].as_str().unwrap().contains("at most 10"), "{e}");
    let sum = c.expect_event("summary");
    assert_eq!(
        (sum["acked"].as_u64(), sum["refused"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(c.code(), 3);
}

#[test]
fn closed_stdout_ends_quietly() {
    // Like `duet client ... | head -1`: the reader goes away.
    let (mut s, addr) = Duet::server(&[]);
    let a = addr.to_string();
    let mut child = std::process::Command::new(BIN)
        .args(["client", &a, "--format", "jsonl", "--plain"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // nobody reads stdout
    s.expect_event("connected");
    // Its first write to stdout fails: it says goodbye and exits quietly.
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("left"),
        "{closed}"
    );
    let out = wait_output(child);
    assert_eq!(out, (Some(0), String::new()));
}

fn wait_output(mut child: std::process::Child) -> (Option<i32>, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut err = child.stderr.take().unwrap();
    let pid = child.id() as i32;
    std::thread::spawn(move || {
        let mut s = String::new();
        use std::io::Read;
        let _ = err.read_to_string(&mut s);
        let code = child.wait().ok().and_then(|st| st.code());
        let _ = tx.send((code, s));
    });
    rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("did not exit")
    })
}

/// O_NONBLOCK on the open file description behind `fd`.
fn nonblocking(fd: i32) -> bool {
    // SAFETY: F_GETFL on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_GETFL) & libc::O_NONBLOCK != 0 }
}

#[test]
fn stdin_pipe_flags_are_restored_on_exit() {
    use std::os::fd::AsRawFd;
    let (_s, addr) = Duet::server(&[]);
    let (read_end, write_end) = pipe();
    // Our copy shares the open file description with duet's stdin.
    let ours = read_end.try_clone().unwrap();
    assert!(!nonblocking(ours.as_raw_fd()));
    let a = addr.to_string();
    let mut c = Duet::spawn_with(
        &["client", &a, "--format", "jsonl"],
        Stdin::Fd(read_end),
        &[],
    );
    c.expect_event("connected");
    assert!(
        nonblocking(ours.as_raw_fd()),
        "duet reads its pipe nonblocking"
    );
    drop(write_end);
    assert_eq!(c.code(), 0);
    assert!(
        !nonblocking(ours.as_raw_fd()),
        "O_NONBLOCK left set on the shared pipe"
    );
}

#[test]
fn bench_reports_throughput_and_percentiles() {
    let (mut s, addr) = Duet::server(&[]);
    let a = addr.to_string();
    for window in ["1", "64"] {
        let mut b = Duet::spawn_with(
            &[
                "bench", &a, "--count", "500", "--size", "1KiB", "--window", window, "--format",
                "jsonl",
            ],
            Stdin::Null,
            &[],
        );
        let v = b.expect_event("bench");
        assert_eq!(
            (v["sent"].as_u64(), v["acked"].as_u64()),
            (Some(500), Some(500)),
            "{v}"
        );
        let w: u64 = window.parse().unwrap();
        assert_eq!(
            (v["size"].as_u64(), v["window"].as_u64()),
            (Some(1024), Some(w))
        );
        assert!(v["msgs_per_s"].as_f64().unwrap() > 0.0 && v["mb_per_s"].as_f64().unwrap() > 0.0);
        let r = &v["rtt_us"];
        assert_eq!(r["n"], 500);
        assert!(r["min"].as_f64() <= r["p50"].as_f64() && r["p50"].as_f64() <= r["p999"].as_f64());
        assert_eq!(b.code(), 0);
        // The server saw ordinary messages of the generated size.
        let m = s.expect_event("message");
        assert_eq!(m["len"], 1024);
    }
    // A size over the server's limit is refused, not retried forever.
    let (_s2, addr2) = Duet::server(&["--max-message", "10"]);
    let a2 = addr2.to_string();
    let mut b = Duet::spawn_with(&["bench", &a2, "--size", "11"], Stdin::Null, &[]);
    assert_eq!(b.code(), 3);
}

#[test]
fn text_output_shows_a_long_message_as_it_arrives() {
    let (mut s, addr) = text_server(&[]);
    let mut raw = Raw::connect(addr);
    assert_eq!(raw.read_frame().0, 0x01);
    raw.write(&hello(b"raw", 1 << 20));
    // The first chunk ends inside "é": its line shows before the rest is
    // even sent, and the split character comes out whole.
    raw.write(&data(1, false, b"line one\nline \xc3"));
    assert_eq!(s.expect_line("<raw> line"), "<raw> line one");
    raw.write(&data(1, true, b"\xa9t\x1b[2J"));
    assert_eq!(raw.read_frame(), (0x03, 1u64.to_be_bytes().to_vec()));
    assert_eq!(s.next_line(), "<raw> line ét\\x1b[2J");
    // Cut off in the middle: the partial line ends, and the server says so.
    raw.write(&data(2, false, b"never finished"));
    drop(raw);
    assert_eq!(s.next_line(), "<raw> never finished");
    let cut = s.next_line();
    assert!(
        cut.contains("message #2 was cut off after 14 bytes"),
        "{cut}"
    );
    s.expect_line("* chat ended: ");
    let mut next = Raw::connect(addr);
    assert_eq!(next.read_frame().0, 0x01, "the server serves the next peer");
}

/// Out-of-range option values end at once with one line and status 2,
/// instead of running (a duration too large once overflowed the clock at
/// the first connection).
#[test]
fn out_of_range_values_are_one_line_usage_errors() {
    const HUGE: &str = "9223372036854775807s";
    let port = dead_port().to_string();
    let target = format!("127.0.0.1:{port}");
    let server = ["server", "--listen", "127.0.0.1", "--port", "0", "--once"];
    let cases: Vec<Vec<&str>> = vec![
        [&server[..], &["--heartbeat", HUGE]].concat(),
        [&server[..], &["--handshake-timeout", HUGE]].concat(),
        [&server[..], &["--linger", HUGE]].concat(),
        [&server[..], &["--write-timeout", HUGE]].concat(),
        [&server[..], &["--handshake-timeout", "0"]].concat(),
        [&server[..], &["--max-message", "0"]].concat(),
        vec!["client", &target, "--connect-timeout", HUGE],
        vec!["client", &target, "--connect-timeout", "0"],
    ];
    for args in cases {
        let mut d = Duet::spawn_with(&args, Stdin::Null, &[]);
        let code = d.code();
        let err = d.stderr();
        if code != 2 || err.lines().count() != 1 || !err.starts_with("duet: invalid value") {
            d.fail("expected one usage line and status 2");
        }
    }
}
