//! Liveness, backpressure and ending well, with the real binary: each test
//! names a fault, checks the promised behaviour, and checks that the server
//! still serves a fresh client afterwards.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Peak resident memory (VmHWM) in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    status_kib(pid, "VmHWM:") as f64 / 1024.0
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// utime + stime in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn raw_hello(addr: SocketAddr) -> Raw {
    let mut raw = Raw::connect(addr);
    assert_eq!(raw.read_frame().0, 0x01);
    raw.write(&hello(b"raw", 1 << 30));
    raw
}

#[test]
fn silent_connection_loses_the_slot_at_the_handshake_deadline() {
    let (mut s, addr) = Duet::server(&["--handshake-timeout", "300ms"]);
    let mut raw = Raw::connect(addr);
    let frames = raw.frames_until_close();
    assert_eq!(frames.first().map(|f| f.0), Some(0x01));
    assert_eq!(
        frames.last().map(|f| (f.0, f.1[0])),
        Some((0x04, 4)),
        "BYE(timeout)"
    );
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("handshake"),
        "{closed}"
    );
    assert_serves(&mut s, addr);
}

#[test]
fn frozen_client_is_detected_by_heartbeats() {
    let (hb, dead) = (Duration::from_millis(200), 2u32);
    let (mut s, addr) = Duet::server(&["--heartbeat", "200ms", "--dead-after", "2"]);
    let mut c = Duet::client(addr, &["--heartbeat", "200ms"]);
    c.expect_event("connected");
    s.expect_event("connected");
    c.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    let closed = s.expect_event("closed");
    let took = stopped.elapsed();
    let reason = closed["reason"].as_str().unwrap();
    assert!(reason.contains("did not answer 2 heartbeats"), "{reason}");
    let bound = hb * (dead + 1);
    // The last sign of life came at most one interval before the stop.
    assert!(took + hb >= bound, "declared dead after only {took:?}");
    assert!(
        took <= bound + Duration::from_secs(3),
        "took {took:?}, bound {bound:?}"
    );
    eprintln!("dead-peer detection: {took:?} (heartbeat {hb:?}, dead after {dead})");
    c.signal(libc::SIGKILL);
    assert_serves(&mut s, addr);
}

#[test]
fn idle_chat_with_heartbeats_stays_up() {
    // Only the client pings, so only the server's PONGs keep it alive.
    let (mut s, addr) = Duet::server(&["--heartbeat", "0"]);
    let mut c = Duet::client(addr, &["--heartbeat", "50ms", "--dead-after", "1"]);
    c.expect_event("connected");
    s.expect_event("connected");
    // Forty heartbeat intervals pass: the time itself is what is tested.
    std::thread::sleep(Duration::from_secs(2));
    c.send(b"after the silence\n");
    assert_eq!(s.expect_event("message")["text"], "after the silence");
    assert_eq!(c.expect_event("ack")["id"], 1);
}

#[test]
fn non_reading_peer_is_cut_off_by_the_write_timeout_with_bounded_memory() {
    // stdin is our own pipe: what duet leaves unread when the chat ends
    // would wait there for the next client, so the test drains it.
    let (read_end, write_end) = pipe();
    let leftover = read_end.try_clone().unwrap();
    let args = [SERVER_ARGS, &["--write-timeout", "1s", "--heartbeat", "0"]].concat();
    let mut s = Duet::spawn_with(&args, Stdin::Fd(read_end), &[]);
    let addr = s.listening_addr();
    let _raw = raw_hello(addr); // never reads
    s.expect_event("connected");
    // Push 80 MiB of 1 MiB lines from a thread: the write blocks whenever
    // duet stops reading stdin, which is the backpressure under test.
    let mut stdin = std::fs::File::from(write_end);
    let writer = std::thread::spawn(move || {
        let line = [b"x".repeat(1 << 20), b"\n".to_vec()].concat();
        for _ in 0..80 {
            if stdin.write_all(&line).is_err() {
                break;
            }
        }
    });
    let closed = s.expect_event("closed");
    let reason = closed["reason"].as_str().unwrap();
    assert!(reason.contains("stopped reading"), "{reason}");
    let peak = peak_rss_mib(s.pid());
    eprintln!("peak RSS with a non-reading peer: {peak:.1} MiB");
    assert!(peak < 48.0, "peak RSS {peak:.1} MiB");
    drain(leftover);
    writer.join().unwrap();
    assert_serves(&mut s, addr);
}

#[test]
fn ack_flood_from_a_peer_that_never_reads_keeps_memory_flat() {
    let (mut s, addr) = Duet::server(&["--write-timeout", "1s", "--heartbeat", "0"]);
    let raw = raw_hello(addr);
    s.expect_event("connected");
    let mut stream = raw.stream.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let mut batch = Vec::new();
        let mut id = 1u64;
        loop {
            batch.clear();
            for _ in 0..10_000 {
                batch.extend_from_slice(&data(id, true, b""));
                id += 1;
            }
            if stream.write_all(&batch).is_err() {
                return id;
            }
        }
    });
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .contains("stopped reading"),
        "{closed}"
    );
    let sent = flood.join().unwrap();
    let peak = peak_rss_mib(s.pid());
    eprintln!("ack flood: {sent} messages offered, peak RSS {peak:.1} MiB");
    assert!(peak < 48.0, "peak RSS {peak:.1} MiB");
    drop(raw);
    assert_serves(&mut s, addr);
}

#[test]
fn endless_stdin_line_is_skipped_not_buffered() {
    let (mut s, addr) = Duet::server(&[]);
    let mut c = Duet::client(addr, &["--max-message", "1MiB"]);
    c.expect_event("connected");
    let mut stdin = c.take_stdin();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'y'; 1 << 20];
        for _ in 0..64 {
            stdin.write_all(&chunk).unwrap();
        }
        stdin.write_all(b"\nafter\n").unwrap();
    });
    let e = c.expect_event("error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("longer than --max-message"),
        "{e}"
    );
    assert_eq!(s.expect_event("message")["text"], "after");
    writer.join().unwrap();
    // The skipped line did not get through: it counts as refused.
    assert_eq!(c.expect_event("summary")["refused"], 1);
    assert_eq!(c.code(), 3);
    let peak = peak_rss_mib(s.pid());
    assert!(peak < 48.0, "server peak {peak:.1} MiB");
}

#[test]
fn undrained_stdout_loses_nothing() {
    use std::process::{Command, Stdio};
    let mut server = Command::new(BIN)
        .args([SERVER_ARGS, &["--once", "--plain"]].concat())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _kill = KillOnDrop(server.id());
    let mut out = server.stdout.take().unwrap();
    let fd = out.as_raw_fd();
    // Read the first line byte by byte, leaving the rest in the pipe.
    let mut first = Vec::new();
    let mut b = [0u8; 1];
    while b[0] != b'\n' {
        out.read_exact(&mut b).unwrap();
        first.push(b[0]);
    }
    let v: Value = serde_json::from_slice(&first).unwrap();
    let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
    let n = 20_000;
    let mut c = Duet::client(addr, &["--linger", "60s"]);
    let input: String = (1..=n).map(|i| format!("message {i}\n")).collect();
    c.send(input.as_bytes());
    c.close_stdin();
    // Nobody reads the server's stdout until its pipe is full.
    eventually("the stdout pipe to fill", || {
        let mut avail: libc::c_int = 0;
        // SAFETY: FIONREAD writes an int.
        unsafe { libc::ioctl(fd, libc::FIONREAD, &mut avail) };
        avail >= 60_000
    });
    let mut all = String::new();
    out.read_to_string(&mut all).unwrap();
    let texts: Vec<String> = all
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == "message")
        .map(|v| v["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts.len(), n);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(t, &format!("message {}", i + 1));
    }
    assert_eq!(c.code(), 0);
    assert_eq!(server.wait().unwrap().code(), Some(0));
}

struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: signalling our own child (harmless if it has exited).
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}

#[test]
fn sigint_and_sigterm_mid_chat_say_goodbye_and_print_the_summary() {
    for (sig, code) in [
        (libc::SIGINT, 130),
        (libc::SIGTERM, 143),
        (libc::SIGHUP, 129),
    ] {
        // To the client.
        let (mut s, addr) = Duet::server(&[]);
        let mut c = Duet::client(addr, &[]);
        c.send(b"before the signal\n");
        assert_eq!(c.expect_event("ack")["id"], 1);
        c.signal(sig);
        let sum = c.expect_event("summary");
        assert_eq!(sum["acked"], 1);
        assert_eq!(c.code(), code, "client, signal {sig}");
        let closed = s.expect_event("closed");
        assert!(
            closed["reason"].as_str().unwrap().contains("left"),
            "{closed}"
        );
        assert!(s.running());

        // To the server.
        let mut c = Duet::client(addr, &[]);
        c.expect_event("connected");
        s.send(b"from the server\n");
        assert_eq!(s.expect_event("ack")["id"], 1);
        s.signal(sig);
        let sum = s.expect_event("summary");
        assert_eq!(sum["acked"], 1);
        assert_eq!(s.code(), code, "server, signal {sig}");
        let closed = c.expect_event("closed");
        assert!(
            closed["reason"].as_str().unwrap().contains("left"),
            "{closed}"
        );
        assert_eq!(c.code(), 0);
    }
}

#[test]
fn sigterm_with_nobody_connected_exits_at_once() {
    let (mut s, _) = Duet::server(&[]);
    s.signal(libc::SIGTERM);
    assert_eq!(s.code(), 143);
}

#[test]
fn restart_on_the_same_port_at_once() {
    let (mut s, addr) = Duet::server(&[]);
    let mut c = Duet::client(addr, &[]);
    c.send(b"x\n");
    c.expect_event("ack");
    s.signal(libc::SIGTERM);
    assert_eq!(s.code(), 143);
    assert_eq!(c.code(), 0);
    let port = addr.port().to_string();
    let mut s2 = Duet::spawn(&[
        "server",
        "--listen",
        "127.0.0.1",
        "--port",
        &port,
        "--format",
        "jsonl",
    ]);
    assert_eq!(s2.listening_addr(), addr);
    assert_serves(&mut s2, addr);
}

#[test]
fn client_killed_mid_message() {
    let (mut s, addr) = Duet::server(&[]);
    // A raw client sends the first chunk of a large message and resets.
    let mut raw = raw_hello(addr);
    raw.write(&data(1, false, &[7u8; 65536]));
    s.expect_event("connected");
    set_linger_zero(&raw.stream);
    drop(raw);
    let closed = s.expect_event("closed");
    let reason = closed["reason"].as_str().unwrap();
    assert!(
        reason.contains("reset") || reason.contains("middle"),
        "{reason}"
    );
    // A real client killed with SIGKILL while sending.
    let mut c = Duet::client(addr, &["--input", "whole"]);
    c.expect_event("connected");
    s.expect_event("connected");
    c.send(&vec![b'z'; 4 << 20]);
    c.signal(libc::SIGKILL);
    s.expect_event("closed");
    assert_serves(&mut s, addr);
}

fn set_linger_zero(stream: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt with a linger struct that outlives the call.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Connects and disconnects `n` times, cycling through a clean goodbye, no
/// bytes at all, and a reset. Resets are not waited for, so connections pile
/// up in the backlog; past 64 at once the server closes new arrivals without
/// a word, which a clean cycle then sees as an immediate end of file.
fn cycles(addr: SocketAddr, n: usize) {
    for i in 0..n {
        let mut raw = Raw::connect(addr);
        match i % 3 {
            0 => {
                let mut header = [0u8; 5];
                if raw.stream.read_exact(&mut header).is_err() {
                    continue; // dropped during a burst
                }
                let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
                raw.stream.read_exact(&mut vec![0; len]).unwrap();
                raw.write(&hello(b"cycle", 1));
                raw.write(&bye(0));
                raw.stream.shutdown(Shutdown::Write).unwrap();
                raw.frames_until_close();
            }
            1 => {
                raw.stream.shutdown(Shutdown::Write).unwrap();
                raw.frames_until_close();
            }
            _ => set_linger_zero(&raw.stream),
        }
    }
}

#[test]
fn seven_thousand_connect_disconnect_cycles_leave_no_trace() {
    let (mut s, addr) = Duet::server(&[]);
    assert_serves(&mut s, addr);
    let pid = s.pid();
    let fds_before = fd_count(pid);
    // The first thousand warm the allocator up; the second must not grow.
    cycles(addr, 1000);
    eventually("descriptors to return to their count", || {
        fd_count(pid) <= fds_before
    });
    let rss_warm = rss_kib(pid);
    cycles(addr, 6000);
    eventually("descriptors to return to their count", || {
        fd_count(pid) <= fds_before
    });
    let rss_after = rss_kib(pid);
    eprintln!(
        "7000 cycles: fds {fds_before} -> {}, RSS after 1000 {rss_warm} KiB, after 7000 {rss_after} KiB",
        fd_count(pid)
    );
    // Allocator high-water marks move by up to about 1.6 MiB with how many
    // connections happen to overlap; a leak of even 1 KiB per connection
    // would add 6 MiB over these 6,000 cycles.
    assert!(
        rss_after < rss_warm + 3072,
        "RSS grew from {rss_warm} to {rss_after} KiB"
    );
    assert_serves(&mut s, addr);
}

#[test]
fn accept_errors_do_not_spin_and_the_server_recovers() {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    // A descriptor limit that leaves room for only a few connections.
    let mut cmd = Command::new(BIN);
    cmd.args(SERVER_ARGS)
        .arg("--plain")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 16,
                rlim_max: 16,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let _kill = KillOnDrop(pid);
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    let v: Value = serde_json::from_str(&first).unwrap();
    let addr: SocketAddr = v["addr"].as_str().unwrap().parse().unwrap();
    let _stdin = child.stdin.take();
    let peers: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect_timeout(&addr, DEADLINE).unwrap())
        .collect();
    // Measure CPU over one second while accepts fail.
    eventually("accepting to fail", || fd_count(pid) >= 16);
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - t0;
    assert!(used <= 20, "{used} ticks of CPU in one second: spinning");
    drop(peers);
    // Reading stdout keeps the server from blocking on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    eventually("descriptors to free up", || fd_count(pid) < 12);
    // The queued dead connections are accepted and dropped first; a client
    // arriving meanwhile may be told "busy", so ask until it is served.
    let mut tries = 0;
    loop {
        let a = addr.to_string();
        let mut c = Duet::spawn_with(&["client", &a], Stdin::Null, &[]);
        match c.code() {
            0 => break,
            4 if tries < 100 => tries += 1,
            other => c.fail(&format!("exit {other}")),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn one_thread_and_no_cpu_while_idle() {
    let (s, _) = Duet::server(&[]);
    let pid = s.pid();
    let threads = status_kib(pid, "Threads:");
    assert_eq!(threads, 1);
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(cpu_ticks(pid) - t0, 0, "CPU used while idle");
}

#[test]
fn frames_before_a_reset_are_still_shown_and_acknowledged() {
    let (mut s, addr) = Duet::server(&[]);
    let mut raw = raw_hello(addr);
    let mut burst = Vec::new();
    for id in 1..=3u64 {
        burst.extend_from_slice(&data(id, true, format!("last words {id}").as_bytes()));
    }
    raw.write(&burst);
    set_linger_zero(&raw.stream);
    drop(raw);
    for id in 1..=3u64 {
        let m = s.expect_event("message");
        assert_eq!(m["text"], format!("last words {id}"));
    }
    let closed = s.expect_event("closed");
    let reason = closed["reason"].as_str().unwrap();
    assert!(
        reason.contains("reset") || reason.contains("without saying goodbye"),
        "{reason}"
    );
    let sum = s.expect_event("summary");
    assert_eq!(sum["received"], 3);
    assert_serves(&mut s, addr);
}

/// Wake-ups per heartbeat interval of a server and of its client. A
/// wake-up is a voluntary context switch: the process slept until
/// something happened.
struct Wakes {
    server: f64,
    client: f64,
}

/// The wake-ups, over `intervals` of them, of a server that pings every
/// `every` and of its silent client (which never pings itself), connected
/// directly or through a relay adding `delay` each way.
fn wakes_per_heartbeat(every: Duration, delay: Option<Duration>, intervals: u32) -> Wakes {
    let heartbeat = format!("{}ms", every.as_millis());
    let (mut s, addr) = Duet::server(&["--heartbeat", &heartbeat]);
    let to = delay.map_or(addr, |d| delaying_relay(addr, d));
    let mut c = Duet::client(to, &["--heartbeat", "0"]);
    c.expect_event("connected");
    s.expect_event("connected");
    let wakes = || [s.pid(), c.pid()].map(|pid| status_kib(pid, "voluntary_ctxt_switches:"));
    let before = wakes();
    std::thread::sleep(every * intervals);
    let after = wakes();
    let per_interval = |i: usize| (after[i] - before[i]) as f64 / f64::from(intervals);
    assert!(c.running() && s.running());
    let w = Wakes {
        server: per_interval(0),
        client: per_interval(1),
    };
    eprintln!(
        "heartbeat {heartbeat}: {:.2} wake-ups per interval in the server, {:.2} in the client",
        w.server, w.client
    );
    w
}

#[test]
fn an_idle_chat_wakes_only_for_its_heartbeats() {
    // Only the server pings, every 100 ms. The client wakes once per PING,
    // so its count says the server pinged once per interval (a timer that
    // is lost, or fires more often than set, shows up there). The server
    // wakes for its timer and for the PONG, and for nothing else (a timer
    // that is never consumed or fires repeatedly shows up here); on a
    // loaded machine the PONG may arrive before the server next sleeps,
    // and one wake-up serves both. A slower path is the next test's.
    let w = wakes_per_heartbeat(Duration::from_millis(100), None, 20);
    assert!(
        (0.8..=1.2).contains(&w.client),
        "the client woke {:.2} times per heartbeat interval (expected 1: one PING each)",
        w.client
    );
    assert!(
        (0.8..=2.5).contains(&w.server),
        "the server woke {:.2} times per heartbeat interval (expected 2, or 1 under load)",
        w.server
    );
}

/// A TCP relay on 127.0.0.1 that delivers everything `delay` late in each
/// direction, for a path slower than loopback. Returns its address; its
/// threads end when either side closes.
fn delaying_relay(to: SocketAddr, delay: Duration) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((client, _)) = listener.accept() else {
            return;
        };
        let Ok(server) = TcpStream::connect(to) else {
            return;
        };
        for s in [&client, &server] {
            s.set_nodelay(true).unwrap();
        }
        let pairs = [
            (client.try_clone().unwrap(), server.try_clone().unwrap()),
            (server, client),
        ];
        for (mut from, mut to) in pairs {
            let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = from.read(&mut buf) {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            });
            std::thread::spawn(move || {
                for (due, bytes) in rx {
                    // The delay is the fault this relay simulates.
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                    if to.write_all(&bytes).is_err() {
                        break;
                    }
                }
                let _ = to.shutdown(Shutdown::Write);
            });
        }
    });
    addr
}

#[test]
fn a_slow_pong_does_not_cost_a_second_wake_up_per_heartbeat() {
    // Through a relay adding ~8 ms of round trip, each PONG moves the next
    // heartbeat that much later than the timer was set for. The timer's
    // tolerance (1/64 of a 1 s wait: 15.6 ms) must take it in the same
    // wake-up: two wake-ups per interval (timer, PONG; 1.75 measured over
    // the window's edges). A fixed 5 ms tolerance measured 2.5.
    let w = wakes_per_heartbeat(Duration::from_secs(1), Some(Duration::from_millis(4)), 8);
    assert!(
        (0.75..=1.25).contains(&w.client),
        "the client woke {:.2} times per heartbeat interval (expected 1: one PING each)",
        w.client
    );
    assert!(
        (0.75..=2.2).contains(&w.server),
        "the server woke {:.2} times per heartbeat interval (expected 2)",
        w.server
    );
}

#[test]
fn large_messages_cross_in_both_directions_at_once() {
    // Each side sends 8 MB while receiving the other's 8 MB: neither may
    // stop reading its peer for the sake of its own queued data, and both
    // messages arrive and are acknowledged. (That a side whose input ended
    // waits for a message half received is checked in the session's tests,
    // where the order of frames can be fixed.)
    const LEN: usize = 8_000_000;
    let opts = ["--input", "whole", "--max-message", "16MiB"];
    let (mut s, addr) = Duet::server(&[&opts[..], &["--once"]].concat());
    let mut c = Duet::client(addr, &opts);
    c.expect_event("connected");
    s.expect_event("connected");
    let feed = |mut stdin: std::process::ChildStdin, byte: u8| {
        std::thread::spawn(move || {
            stdin.write_all(&vec![byte; LEN]).unwrap();
            // Dropping stdin ends the input: the message is complete.
        })
    };
    let server_feed = feed(s.take_stdin(), b's');
    // The server's message is on its way before the client's starts, so
    // the client cannot be done before the server's message has begun.
    s.expect_event("sent");
    let client_feed = feed(c.take_stdin(), b'c');
    server_feed.join().unwrap();
    client_feed.join().unwrap();
    for (side, from) in [(&mut s, 'c'), (&mut c, 's')] {
        let mut got_message = false;
        let mut got_ack = false;
        while !(got_message && got_ack) {
            let v = side.next_event();
            match v["event"].as_str() {
                Some("message") => {
                    assert_eq!(v["len"], LEN);
                    let text = v["text"].as_str().unwrap();
                    assert!(text.len() == LEN && text.chars().all(|ch| ch == from));
                    got_message = true;
                }
                Some("ack") => {
                    assert_eq!(v["id"], 1);
                    got_ack = true;
                }
                _ => {}
            }
        }
    }
    assert_eq!(c.code(), 0);
    assert_eq!(s.code(), 0);
}

/// Bytes waiting in a pipe, from its read end.
fn pipe_queued(fd: &std::os::fd::OwnedFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int we own.
    assert_eq!(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) },
        0
    );
    n as usize
}

/// A stop does not wait on stdout: with stdout a pipe nobody reads, full,
/// SIGTERM still ends the server.
#[test]
fn a_signal_stops_a_server_whose_stdout_is_blocked() {
    let port = dead_port().to_string();
    let (read_end, write_end) = pipe();
    let mut s = Duet::spawn_to(
        &["server", "--listen", "127.0.0.1", "--port", &port, "--once"],
        write_end,
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut raw = None;
    eventually("the server listening", || {
        raw = TcpStream::connect(addr).ok();
        raw.is_some()
    });
    let mut raw = raw.unwrap();
    raw.write_all(&hello(b"flood", 1 << 20)).unwrap();
    // 256 KiB of messages to show: four times what the pipe holds.
    let mut burst = Vec::new();
    for id in 1..=256 {
        burst.extend_from_slice(&data(id, true, &[b'x'; 1024]));
    }
    raw.write_all(&burst).unwrap();
    // A full pipe holds a little under 64 KiB: writes fill it by pages.
    eventually("stdout full", || pipe_queued(&read_end) >= 48 * 1024);
    s.signal(libc::SIGTERM);
    assert_eq!(s.code(), 143, "the signal's exit status");
    drop(read_end);
}

/// A TCP connection to `to` from the loopback address `from` (the
/// server limits greetings per source address).
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only");
    };
    let sockaddr = |ip: [u8; 4], port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(ip),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor we own, with sockaddrs
    // that outlive them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let stream = TcpStream::from_raw_fd(fd);
        let src = sockaddr(from, 0);
        assert_eq!(
            libc::bind(fd, (&src as *const libc::sockaddr_in).cast(), len),
            0
        );
        let dst = sockaddr(to.ip().octets(), to.port());
        assert_eq!(
            libc::connect(fd, (&dst as *const libc::sockaddr_in).cast(), len),
            0
        );
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream
    }
}

/// The first frame from the server (its HELLO), then what follows until
/// it closes.
fn hello_then_rest(s: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    parse_frames(&all)
}

/// Silent connections do not hold the chat: it goes to the first peer to
/// complete its greeting, and the silent ones are then turned away.
#[test]
fn a_silent_connection_does_not_hold_the_chat() {
    let (mut s, addr) = Duet::server(&[]);
    let mut silent: Vec<TcpStream> = (0..3).map(|_| connect_from([127, 0, 0, 2], addr)).collect();
    let mut c = Duet::client(addr, &["--name", "real"]);
    c.expect_event("connected");
    // The silent ones are turned away as the chat is granted, then it
    // opens.
    for conn in &mut silent {
        assert_turned_away(conn, &mut s, "another client greeted first");
    }
    assert_eq!(s.expect_event("connected")["name"], "real");
    c.send(b"through\n");
    assert_eq!(c.expect_event("ack")["id"], 1);
    assert_eq!(s.expect_event("message")["text"], "through");
}

/// `conn` got the server's HELLO and then BYE(busy), and the server's
/// user was told why it was turned away.
fn assert_turned_away(conn: &mut TcpStream, s: &mut Duet, why: &str) {
    let frames = hello_then_rest(conn);
    assert_eq!(frames.first().map(|f| f.0), Some(0x01), "{frames:?}");
    assert_eq!(
        frames.last(),
        Some(&(0x04, vec![1])),
        "BYE(busy): {frames:?}"
    );
    let notice = s.expect_event("notice");
    let says = notice["message"].as_str().unwrap();
    assert!(says.ends_with(why), "{notice}");
}

/// Greetings under way are bounded per source address and in all; past a
/// bound, a connection is turned away at once with BYE(busy), and the
/// server's user is told why.
#[test]
fn greetings_under_way_are_bounded() {
    let (mut s, addr) = Duet::server(&[]);
    let _four: Vec<TcpStream> = (0..4).map(|_| connect_from([127, 0, 0, 2], addr)).collect();
    let mut fifth = connect_from([127, 0, 0, 2], addr);
    let from_there = "too many connections waiting to greet from that address";
    assert_turned_away(&mut fifth, &mut s, from_there);
    // Other addresses still get in, up to 16 greetings in all.
    let _more: Vec<TcpStream> = (3..6)
        .flat_map(|last| (0..4).map(move |_| [127, 0, 0, last]))
        .map(|from| connect_from(from, addr))
        .collect();
    let mut seventeenth = connect_from([127, 0, 0, 9], addr);
    assert_turned_away(
        &mut seventeenth,
        &mut s,
        "too many connections waiting to greet",
    );
}

/// The documented memory bound with `--max-message 1KiB` (README, "Memory";
/// docs/RELIABILITY.md): `16 MiB + 3 × max_message`, of which about 11 MiB
/// are queue caps and buffers and the rest the program itself.
const FLOOD_BOUND_MIB: f64 = 16.0;
/// How long each flood runs before its peak is read: long enough for
/// every queue to reach its cap.
const FLOOD_FOR: Duration = Duration::from_millis(2500);

/// A server whose stdout goes to a pipe that a thread drains (a flood's
/// millions of lines would otherwise pile up in the test's line reader);
/// returns it with its address.
fn server_draining(extra: &[&str]) -> (Duet, SocketAddr) {
    let (read_end, write_end) = pipe();
    let args = [&["server", "--listen", "127.0.0.1", "--port", "0"], extra].concat();
    let s = Duet::spawn_to(&args, write_end);
    let mut out = std::io::BufReader::new(std::fs::File::from(read_end));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    // `* listening on ADDR` or the JSON `listening` event.
    let addr = match serde_json::from_str::<Value>(&first) {
        Ok(v) => v["addr"].as_str().unwrap().to_string(),
        Err(_) => first.trim().rsplit(' ').next().unwrap().to_string(),
    };
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (s, addr.parse().unwrap())
}

/// `/dev/null` for a child's stdout.
fn dev_null() -> std::os::fd::OwnedFd {
    let f = std::fs::OpenOptions::new().write(true).open("/dev/null");
    f.unwrap().into()
}

/// `yes '' | duet client`: every line an empty message. The client stops
/// reading stdin while its window is full, in the middle of a read if it
/// must; memory on both sides stays within the bound, and every message
/// is delivered.
#[test]
fn empty_line_flood_on_stdin_stays_within_the_memory_bound() {
    for format in ["text", "jsonl"] {
        let common = ["--format", format, "--max-message", "1KiB"];
        let (s, addr) = server_draining(&common);
        let target = addr.to_string();
        let args = [&["client", target.as_str()][..], &common].concat();
        let mut c = Duet::spawn_to(&args, dev_null());
        let mut stdin = c.take_stdin();
        let flood = std::thread::spawn(move || {
            let lines = [b'\n'; 64 * 1024];
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < FLOOD_FOR {
                stdin.write_all(&lines).unwrap();
                sent += lines.len() as u64;
            }
            (sent, stdin)
        });
        let (sent, stdin) = flood.join().unwrap();
        let (cp, sp) = (peak_rss_mib(c.pid()), peak_rss_mib(s.pid()));
        eprintln!(
            "--format {format}: {sent} empty lines in {FLOOD_FOR:?}; peak RSS client {cp:.1} MiB, server {sp:.1} MiB"
        );
        drop(stdin);
        assert_eq!(c.code(), 0, "every message delivered");
        assert!(cp < FLOOD_BOUND_MIB, "client peak RSS {cp:.1} MiB");
        assert!(sp < FLOOD_BOUND_MIB, "server peak RSS {sp:.1} MiB");
    }
}

/// A raw peer floods a server with empty DATA messages as fast as it can
/// while reading its acks: the server acknowledges them all and shows
/// them, within the memory bound.
#[test]
fn empty_message_flood_from_the_network_stays_within_the_memory_bound() {
    for format in ["text", "jsonl"] {
        let (mut s, addr) = server_draining(&["--format", format, "--max-message", "1KiB"]);
        let raw = raw_hello(addr);
        let mut reader = raw.stream.try_clone().unwrap();
        let acks = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            let mut total = 0u64;
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                total += n as u64;
            }
            total
        });
        let mut writer = raw.stream.try_clone().unwrap();
        let start = Instant::now();
        let mut batch = Vec::new();
        let mut id = 1u64;
        while start.elapsed() < FLOOD_FOR {
            batch.clear();
            for _ in 0..10_000 {
                batch.extend_from_slice(&data(id, true, b""));
                id += 1;
            }
            writer.write_all(&batch).unwrap();
        }
        let peak = peak_rss_mib(s.pid());
        writer.write_all(&bye(0)).unwrap();
        let acked = acks.join().unwrap() / ack(1).len() as u64;
        eprintln!(
            "--format {format}: {} empty messages in {FLOOD_FOR:?}, {acked} acks read; server peak RSS {peak:.1} MiB",
            id - 1
        );
        assert_eq!(acked, id - 1, "every message acknowledged");
        assert!(peak < FLOOD_BOUND_MIB, "server peak RSS {peak:.1} MiB");
        assert!(s.running());
    }
}

/// What a child wrote on stderr, once it has exited.
fn stderr_after_exit(d: &mut Duet) -> (i32, String) {
    let code = d.code();
    (code, d.stderr())
}

/// `/dev/full` for a child's stdout: every write fails with ENOSPC.
fn dev_full() -> std::os::fd::OwnedFd {
    let f = std::fs::OpenOptions::new().write(true).open("/dev/full");
    f.unwrap().into()
}

/// A stdout that cannot be written is a failure: the client says goodbye
/// (the server sees a normal leave, not a chat going on that nobody
/// reads), prints one line on stderr and exits 1.
#[test]
fn a_client_whose_stdout_fails_says_goodbye_and_exits_1() {
    let (mut s, addr) = Duet::server(&[]);
    let target = addr.to_string();
    let mut c = Duet::spawn_to(&["client", &target], dev_full());
    // Its first line ("connected") cannot be written.
    s.expect_event("connected");
    let closed = s.expect_event("closed");
    let reason = closed["reason"].as_str().unwrap();
    assert!(reason.ends_with("left"), "{closed}");
    let (code, stderr) = stderr_after_exit(&mut c);
    assert_eq!(
        (code, stderr.as_str()),
        (1, "duet: cannot write to stdout: no space left on device\n")
    );
    assert_serves(&mut s, addr);
}

/// The same for a server: it cannot show a chat, so it does not start one.
#[test]
fn a_server_whose_stdout_fails_exits_1() {
    let mut s = Duet::spawn_to(
        &["server", "--listen", "127.0.0.1", "--port", "0"],
        dev_full(),
    );
    let (code, stderr) = stderr_after_exit(&mut s);
    assert_eq!(
        (code, stderr.as_str()),
        (1, "duet: cannot write to stdout: no space left on device\n")
    );
}

/// stdin that cannot be read (a directory): the error goes to stderr, not
/// the chat; the chat ends politely and the exit status says it failed.
#[test]
fn stdin_that_cannot_be_read_is_an_error_and_exit_1() {
    let (mut s, addr) = Duet::server(&[]);
    let target = addr.to_string();
    let dir = std::fs::File::open("/").unwrap();
    let args = ["client", &target, "--format", "jsonl"];
    let mut c = Duet::spawn_with(&args, Stdin::File(dir), &[]);
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().ends_with("left"),
        "{closed}"
    );
    let (code, stderr) = stderr_after_exit(&mut c);
    assert_eq!(
        (code, stderr.as_str()),
        (1, "duet: cannot read stdin: is a directory\n")
    );
    let events: Vec<Value> = c
        .rest()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events.iter().all(|e| e["event"] != "error"),
        "no error line in the chat: {events:?}"
    );
    assert_eq!(events.last().unwrap()["event"], "summary");
    assert_serves(&mut s, addr);
}

/// A stop signal's code wins over "undelivered" (3): the person asked to
/// stop; the summary tells what did not get through.
#[test]
fn a_signal_with_undelivered_messages_exits_with_the_signal_code() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = Duet::client(addr, &[]);
    let (mut peer, _) = listener.accept().unwrap();
    peer.write_all(&hello(b"never-acks", 1 << 20)).unwrap();
    c.expect_event("connected");
    c.send(b"into the void\n");
    c.expect_event("sent");
    c.signal(libc::SIGTERM);
    let summary = c.expect_event("summary");
    assert_eq!(
        (summary["sent"].as_u64(), summary["acked"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(c.code(), 143);
    drop(peer);
}

/// A `--once` server that is finishing its chat starts no other: a client
/// arriving while the last connection closes is turned away (or finds the
/// port closed), and the server exits.
#[test]
fn a_once_server_starts_no_chat_while_it_finishes() {
    let (mut s, addr) = Duet::server(&["--once"]);
    let mut a = Raw::connect(addr);
    a.write(&hello(b"first", 1 << 20));
    a.write(&bye(0));
    // `a` stays open: the chat's connection lingers in its close grace.
    let closed = s.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("left"),
        "{closed}"
    );
    let mut late = Duet::client(addr, &["--name", "late"]);
    let code = late.code();
    assert!(code == 4 || code == 1, "turned away or refused, got {code}");
    assert_eq!(s.code(), 0, "the server ends");
    drop(a);
}

/// Past the connections a busy server keeps while turning them away (64),
/// a plain client is still told it is busy (exit 4), not reset.
#[test]
fn a_client_turned_away_during_a_flood_is_told_busy() {
    let (mut s, addr) = Duet::server(&[]);
    let mut first = Duet::client(addr, &[]);
    first.expect_event("connected");
    s.expect_event("connected");
    // 70 connections that never read nor close: each is turned away and
    // kept until its close grace ends.
    let flood: Vec<TcpStream> = (0..70).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let pid = s.pid();
    eventually("the flood to be held", || fd_count(pid) >= 70);
    let mut late = Duet::client(addr, &[]);
    assert_eq!(late.code(), 4, "{}", late.stderr());
    assert!(late.stderr().contains("busy"), "{}", late.stderr());
    drop(flood);
}
