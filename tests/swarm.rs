//! `duet swarm` end to end with the real binary: simulated clients with
//! churn against a plain room hub fed numbered lines, the hub's
//! descriptors back to where they were afterwards, acknowledged messages
//! with `--rate`, and usage errors.

mod common;

use common::*;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// A plain room hub (JSON lines) whose stdin a thread feeds with the
/// numbers 1, 2, 3, ... (one line every 2 ms, paced, not synchronising
/// anything) until the returned flag is set.
fn chatty_hub() -> (Duet, SocketAddr, Arc<AtomicBool>, thread::JoinHandle<()>) {
    let (mut hub, addr) = Duet::server(&["--room", "--max-peers", "200"]);
    let mut stdin = hub.take_stdin();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let feeder = thread::spawn(move || {
        let mut n = 1u64;
        while !flag.load(Ordering::Relaxed) {
            if writeln!(stdin, "{n}").and_then(|()| stdin.flush()).is_err() {
                return;
            }
            n += 1;
            thread::sleep(Duration::from_millis(2));
        }
    });
    (hub, addr, stop, feeder)
}

/// Runs `duet swarm ADDR --plain --format jsonl ARGS` to its end; returns
/// the summary and the exit code.
fn swarm(addr: SocketAddr, args: &[&str]) -> (Value, i32, Duet) {
    let a = addr.to_string();
    let mut all = vec!["swarm", a.as_str(), "--plain", "--format", "jsonl"];
    all.extend_from_slice(args);
    let mut s = Duet::spawn(&all);
    let summary = s.next_event();
    if summary["event"] != "swarm" {
        s.fail(&format!("not a swarm summary: {summary}"));
    }
    let code = s.code();
    (summary, code, s)
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no count {key} in {v}"))
}

/// The descriptors `pid` holds now.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_churning_swarm_loses_nothing_and_leaves_the_hub_as_it_found_it() {
    let (mut hub, addr, stop, feeder) = chatty_hub();
    let baseline = fds(hub.pid());
    let (v, code, s) = swarm(
        addr,
        &[
            "--clients",
            "20",
            "--lifetime",
            "200ms..600ms",
            "--duration",
            "3s",
        ],
    );
    if code != 0 {
        s.fail(&format!("exit {code}: {v}"));
    }
    assert!(n(&v, "connects") > 20, "churn replaced clients: {v}");
    assert_eq!(n(&v, "connects"), n(&v, "disconnects"), "{v}");
    assert_eq!(n(&v, "leaves"), n(&v, "disconnects"), "all planned: {v}");
    assert_eq!(n(&v, "lost"), 0, "{v}");
    assert!(n(&v, "received") > 0, "{v}");
    assert!(n(&v, "numbered") > 0, "the hub's numbers were checked: {v}");
    assert_eq!(n(&v, "errors_total"), 0, "{v}");
    let by_kind: u64 = v["errors"]
        .as_object()
        .expect("errors by kind")
        .values()
        .map(|e| e.as_u64().unwrap_or(1))
        .sum();
    assert_eq!(by_kind, 0, "{v}");
    assert!(n(&v, "peak_rss_kib") > 0, "{v}");
    // Every connection the swarm made is closed on the hub's side too.
    let pid = hub.pid();
    eventually("the hub's descriptors back to their baseline", || {
        fds(pid) == baseline
    });
    stop.store(true, Ordering::Relaxed);
    hub.signal(libc::SIGTERM);
    let _ = hub.wait();
    let _ = feeder.join();
}

#[test]
fn with_a_rate_every_message_is_acknowledged_with_a_fan_out_rtt() {
    let (mut hub, addr, stop, feeder) = chatty_hub();
    let (v, code, s) = swarm(
        addr,
        &["--clients", "4", "--rate", "20", "--duration", "1s"],
    );
    if code != 0 {
        s.fail(&format!("exit {code}: {v}"));
    }
    let sent = n(&v, "sent");
    assert!(sent > 0, "{v}");
    assert_eq!(n(&v, "acked"), sent, "{v}");
    assert_eq!(n(&v, "lost"), 0, "{v}");
    let rtt = &v["rtt_ms"];
    assert_eq!(rtt["n"].as_u64(), Some(sent), "{v}");
    let f = |k: &str| rtt[k].as_f64().unwrap_or_else(|| panic!("rtt {k}: {v}"));
    assert!(f("min") > 0.0, "{v}");
    assert!(
        f("min") <= f("p50") && f("p50") <= f("p99") && f("p99") <= f("max"),
        "{v}"
    );
    stop.store(true, Ordering::Relaxed);
    hub.signal(libc::SIGTERM);
    let _ = hub.wait();
    let _ = feeder.join();
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        &["--clients", "0"][..],
        &["--clients", "3", "--lifetime", "600ms..200ms"],
        &["--clients", "3", "--lifetime", "0..1s"],
        &["--clients", "3", "--lifetime", "1s"],
        &["--clients", "3", "--rate", "0"],
        &["--clients", "3", "--duration", "0"],
        &["--clients", "100000000"],
        &[],
    ] {
        let mut all = vec!["swarm", "127.0.0.1:9", "--plain"];
        all.extend_from_slice(args);
        let mut s = Duet::spawn(&all);
        let code = s.code();
        let err = s.stderr();
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("duet: "), "{args:?}: {err}");
        assert!(s.rest().is_empty(), "{args:?}: nothing on stdout");
    }
}

#[test]
fn nothing_listening_is_one_error_line() {
    let port = dead_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let mut s = Duet::spawn(&["swarm", &addr, "--plain", "--clients", "5"]);
    assert_eq!(s.code(), 1);
    let err = s.stderr();
    assert_eq!(
        err.trim_end(),
        format!("duet: cannot swarm {addr}: connection refused"),
        "{err}"
    );
}

#[test]
fn a_stop_signal_ends_a_run_without_duration_with_its_summary() {
    let (mut hub, addr, stop, feeder) = chatty_hub();
    let a = addr.to_string();
    let mut s = Duet::spawn(&[
        "swarm",
        &a,
        "--plain",
        "--format",
        "jsonl",
        "--clients",
        "3",
    ]);
    for _ in 0..3 {
        hub.expect_line("joined");
    }
    s.signal(libc::SIGINT);
    let v = s.next_event();
    assert_eq!(v["event"], "swarm", "{v}");
    assert_eq!(n(&v, "connects"), 3, "{v}");
    assert_eq!(n(&v, "leaves"), 3, "{v}");
    assert_eq!(n(&v, "lost"), 0, "{v}");
    assert_eq!(s.code(), 0, "{v}");
    stop.store(true, Ordering::Relaxed);
    hub.signal(libc::SIGTERM);
    let _ = hub.wait();
    let _ = feeder.join();
}

#[test]
fn an_encrypted_swarm_needs_the_hubs_key_and_never_records_it() {
    let (hub_home, swarm_home) = (fresh_home("swarm-hub"), fresh_home("swarm-clients"));
    let hub_key = fingerprint(&hub_home);
    let other_key = fingerprint(&swarm_home);
    let mut args = SERVER_ARGS.to_vec();
    args.push("--room");
    let mut hub = Duet::spawn_encrypted(&args, &hub_home);
    let addr = hub.listening_addr().to_string();
    let run = |extra: &[&str]| {
        let mut all = vec![
            "swarm",
            addr.as_str(),
            "--format",
            "jsonl",
            "--clients",
            "3",
            "--rate",
            "10",
            "--duration",
            "500ms",
        ];
        all.extend_from_slice(extra);
        Duet::spawn_encrypted(&all, &swarm_home)
    };
    // Not in known_peers, and no --peer: refused, one line, exit 5.
    let mut s = run(&[]);
    assert_eq!(s.code(), 5);
    let err = s.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not in known_peers"), "{err}");
    // The wrong --peer: the same.
    let mut s = run(&["--peer", &other_key]);
    assert_eq!(s.code(), 5, "{}", s.stderr());
    // A plain swarm against an encrypted hub: told so, one line, exit 1.
    let mut s = run(&["--plain"]);
    assert_eq!(s.code(), 1);
    let err = s.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--plain"), "{err}");
    // The right one: the run goes through.
    let mut s = run(&["--peer", &hub_key]);
    let v = s.next_event();
    assert_eq!(s.code(), 0, "{v}");
    assert_eq!(n(&v, "connects"), 3, "{v}");
    assert!(n(&v, "acked") > 0, "{v}");
    assert!(
        !std::path::Path::new(&swarm_home)
            .join("known_peers")
            .exists(),
        "a swarm never writes known_peers"
    );
    hub.signal(libc::SIGTERM);
    let _ = hub.wait();
}

#[test]
fn a_full_room_of_64_or_more_tells_the_next_ones_it_is_busy() {
    // As many members as connections the hub may be closing at once: a
    // full room still says BYE(busy) to those it turns away.
    let (mut hub, addr) = Duet::server(&["--room", "--max-peers", "64"]);
    let (v, code, _s) = swarm(addr, &["--clients", "70", "--duration", "1s"]);
    assert_eq!(code, 1, "turned-away clients are errors: {v}");
    assert!(n(&v["errors"], "busy") > 0, "{v}");
    assert_eq!(n(&v["errors"], "before_hello"), 0, "{v}");
    hub.send(b"/quit\n");
    assert_eq!(hub.code(), 0);
}
