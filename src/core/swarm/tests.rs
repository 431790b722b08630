//! The swarm's rules on a simulated clock: lifetimes and replacement,
//! the send schedule, what counts as lost and as an error, the summary.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(clients: usize) -> SwarmConfig {
    SwarmConfig {
        clients,
        lifetime: None,
        duration: None,
        rate: None,
        seed: 7,
    }
}

/// Dials every client the swarm asks for under keys from `next_key`.
fn dial_all(s: &mut Swarm, now: Instant, next_key: &mut usize) -> Vec<usize> {
    let mut keys = Vec::new();
    while s.poll_dial(now) {
        s.handle_dialing(*next_key);
        keys.push(*next_key);
        *next_key += 1;
    }
    keys
}

#[test]
fn the_same_seed_draws_the_same_lifetimes_within_the_range() {
    let (lo, hi) = (ms(200), ms(600));
    let mut a = SplitMix::new(42);
    let mut b = SplitMix::new(42);
    for _ in 0..1000 {
        let d = a.duration(lo, hi);
        assert_eq!(d, b.duration(lo, hi));
        assert!(d >= lo && d <= hi, "{d:?}");
    }
    assert_ne!(SplitMix::new(1).next_u64(), SplitMix::new(2).next_u64());
    assert_eq!(SplitMix::new(3).duration(ms(5), ms(5)), ms(5));
    assert_eq!(SplitMix::new(3).up_to(0), 0);
}

/// Connects the clients under `keys` (the hub's HELLO arrived).
fn connect_all(s: &mut Swarm, keys: &[usize], now: Instant) {
    for &k in keys {
        s.handle_connected(k, now);
    }
}

fn actions(s: &mut Swarm) -> Vec<Action> {
    std::iter::from_fn(|| s.poll_action()).collect()
}

fn left() -> End {
    End::Local(ByeReason::Normal)
}

#[test]
fn clients_leave_after_their_lifetime_and_are_replaced_at_once() {
    let t0 = Instant::now();
    let mut cfg = config(3);
    cfg.lifetime = Some(Lifetime {
        min: ms(200),
        max: ms(600),
    });
    let mut s = Swarm::new(cfg, t0);
    let mut next = 0;
    let first = dial_all(&mut s, t0, &mut next);
    assert_eq!(first, [0, 1, 2]);
    assert!(!s.poll_dial(t0), "three are connecting");
    connect_all(&mut s, &first, t0);
    assert_eq!(s.connected(), 3);
    let due = s.poll_timeout().expect("a lifetime ends");
    assert!(due >= t0 + ms(200) && due <= t0 + ms(600), "{:?}", due - t0);
    assert!(actions(&mut s).is_empty());
    s.handle_timeout(due);
    let leaving = actions(&mut s);
    assert!(!leaving.is_empty());
    for a in &leaving {
        assert!(matches!(a, Action::Leave(_)), "{a:?}");
    }
    // Replaced as soon as they start to leave, before they are gone.
    let replacements = dial_all(&mut s, due, &mut next);
    assert_eq!(replacements.len(), leaving.len());
    let gone = leaving.len() as u64;
    for a in leaving {
        let Action::Leave(k) = a else { unreachable!() };
        s.handle_ended(k, &left(), 0, due);
    }
    let c = s.counts();
    assert_eq!((c.connects, c.leaves, c.disconnects), (3, gone, gone));
    assert_eq!(c.errors_total(), 0);
    // Every client leaves within the range.
    s.handle_timeout(t0 + ms(600));
    let rest: Vec<usize> = actions(&mut s)
        .into_iter()
        .map(|a| match a {
            Action::Leave(k) => k,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(rest.len() + s.counts().leaves as usize, 3);
}

#[test]
fn without_a_lifetime_clients_stay_until_the_end_of_the_run() {
    let t0 = Instant::now();
    let mut cfg = config(2);
    cfg.duration = Some(Duration::from_secs(3));
    let mut s = Swarm::new(cfg, t0);
    let mut next = 0;
    let keys = dial_all(&mut s, t0, &mut next);
    connect_all(&mut s, &keys, t0 + ms(1));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    s.handle_timeout(t0 + ms(2999));
    assert!(actions(&mut s).is_empty());
    s.handle_timeout(t0 + Duration::from_secs(3));
    assert!(s.stopping());
    assert_eq!(actions(&mut s), [Action::Leave(0), Action::Leave(1)]);
    assert!(!s.poll_dial(t0 + Duration::from_secs(3)), "no replacement");
    assert!(!s.is_done());
    for k in keys {
        s.handle_ended(k, &left(), 0, t0 + Duration::from_secs(3));
    }
    assert!(s.is_done());
    let sum = s.summary(t0 + Duration::from_secs(4));
    assert_eq!(sum.exit_code(), exit::OK);
    assert_eq!(sum.duration, Duration::from_secs(4));
}

#[test]
fn a_stop_abandons_connects_under_way_and_counts_nothing_for_them() {
    let t0 = Instant::now();
    let mut s = Swarm::new(config(2), t0);
    let mut next = 0;
    let keys = dial_all(&mut s, t0, &mut next);
    s.handle_connected(keys[0], t0);
    s.handle_stop(t0);
    assert_eq!(actions(&mut s), [Action::Leave(0), Action::Abandon(1)]);
    s.handle_ended(0, &left(), 0, t0);
    assert!(s.is_done());
    let c = s.counts();
    assert_eq!((c.attempts, c.connects, c.leaves), (2, 1, 1));
    assert_eq!(c.errors_total(), 0);
}

#[test]
fn each_client_sends_at_the_rate_with_its_own_phase() {
    let t0 = Instant::now();
    let mut cfg = config(2);
    cfg.rate = Some(10.0);
    let mut s = Swarm::new(cfg, t0);
    let mut next = 0;
    let keys = dial_all(&mut s, t0, &mut next);
    connect_all(&mut s, &keys, t0);
    let mut sends = 0;
    let mut t = t0;
    while t < t0 + Duration::from_secs(1) {
        t += ms(1);
        if s.poll_timeout().is_some_and(|d| t >= d) {
            s.handle_timeout(t);
        }
        for a in actions(&mut s) {
            let Action::Send { key, body } = a else {
                panic!("{a:?}");
            };
            assert!(body.starts_with(b"swarm "), "{body:?}");
            s.handle_sent(key);
            sends += 1;
        }
    }
    // 10 per second each, give or take the phase.
    assert!((18..=22).contains(&sends), "{sends}");
    assert_eq!(s.counts().sent, sends);
}

#[test]
fn own_messages_never_acknowledged_are_lost_and_acks_give_the_rtt() {
    let t0 = Instant::now();
    let mut s = Swarm::new(config(1), t0);
    let mut next = 0;
    let keys = dial_all(&mut s, t0, &mut next);
    connect_all(&mut s, &keys, t0);
    s.handle_sent(0);
    s.handle_sent(0);
    s.handle_acked(0, ms(3));
    s.handle_stop(t0);
    s.handle_ended(0, &left(), 1, t0);
    let sum = s.summary(t0);
    assert_eq!(sum.counts.lost(), 1);
    assert_eq!(sum.rtt.n, 1);
    assert_eq!(sum.rtt.min, 3_000_000);
    assert_eq!(sum.exit_code(), exit::UNDELIVERED);
}

#[test]
fn gaps_in_the_hubs_numbered_messages_are_lost_and_repeats_are_errors() {
    let t0 = Instant::now();
    let mut s = Swarm::new(config(2), t0);
    let mut next = 0;
    let keys = dial_all(&mut s, t0, &mut next);
    connect_all(&mut s, &keys, t0);
    // Each client's run starts where it joined.
    for m in [
        &b"41"[..],
        b"* swarm-2 joined",
        b"42",
        b"<swarm-2> hi",
        b"43",
    ] {
        s.handle_message(0, m);
    }
    for m in [&b"42"[..], b"43"] {
        s.handle_message(1, m);
    }
    assert_eq!(s.counts().lost(), 0);
    assert_eq!(s.counts().received, 7);
    assert_eq!(s.counts().numbered, 5);
    s.handle_message(0, b"46");
    assert_eq!(s.counts().gaps, 2);
    s.handle_message(1, b"43");
    assert_eq!(s.counts().error(ErrorKind::Order), 1);
    // Not numbers: a sign, a space, too many digits.
    for m in [&b"+44"[..], b"44 ", b"123456789012345678901", b""] {
        s.handle_message(1, m);
    }
    s.handle_message(1, b"44");
    assert_eq!(s.counts().gaps, 2);
}

#[test]
fn ends_count_by_kind_and_busy_or_refused_waits_before_dialing_again() {
    let t0 = Instant::now();
    let mut s = Swarm::new(config(1), t0);
    let mut next = 0;
    dial_all(&mut s, t0, &mut next);
    s.handle_connect_failed(0, ErrorKind::Refused, t0);
    assert!(s.unreachable(), "the first connect was refused");

    let mut s = Swarm::new(config(1), t0);
    let mut next = 0;
    dial_all(&mut s, t0, &mut next);
    s.handle_connected(0, t0);
    let busy = End::Peer {
        reason: ByeReason::Busy,
        detail: Vec::new(),
    };
    s.handle_ended(0, &busy, 0, t0);
    assert!(!s.poll_dial(t0), "waits after busy");
    assert_eq!(s.poll_timeout(), Some(t0 + REDIAL_AFTER));
    assert!(s.poll_dial(t0 + REDIAL_AFTER));
    s.handle_dialing(1);
    s.handle_connect_failed(1, ErrorKind::Refused, t0 + REDIAL_AFTER);
    assert!(!s.unreachable(), "it had connected before");
    assert_eq!(s.counts().error(ErrorKind::Busy), 1);
    assert_eq!(s.counts().error(ErrorKind::Refused), 1);
    assert_eq!(s.summary(t0).exit_code(), exit::FAILURE);

    // A connection closed before the hub's HELLO: turned away under load.
    assert!(s.poll_dial(t0 + REDIAL_AFTER * 2));
    s.handle_dialing(2);
    s.handle_ended(2, &End::Failed(SessionError::NoHello), 0, t0);
    assert_eq!(s.counts().error(ErrorKind::BeforeHello), 1);
    assert_eq!(s.counts().disconnects, 1, "it never connected");

    let hub_bye = End::Peer {
        reason: ByeReason::Normal,
        detail: Vec::new(),
    };
    assert_eq!(ErrorKind::of_end(&hub_bye, true), None);
    assert_eq!(
        ErrorKind::of_end(&hub_bye, false),
        Some(ErrorKind::HubClosed)
    );
    assert_eq!(ErrorKind::of_end(&left(), true), None);
    assert_eq!(
        ErrorKind::of_end(&End::Lost("reset".into()), true),
        Some(ErrorKind::Lost)
    );
    assert_eq!(
        ErrorKind::of_end(&End::Failed(SessionError::NoBye), false),
        Some(ErrorKind::Lost)
    );
    assert_eq!(
        ErrorKind::of_end(&End::Failed(SessionError::HandshakeTimeout), false),
        Some(ErrorKind::Timeout)
    );
    let dropped = End::Peer {
        reason: ByeReason::Timeout,
        detail: b"you fell behind".to_vec(),
    };
    assert_eq!(ErrorKind::of_end(&dropped, true), Some(ErrorKind::Dropped));
}

#[test]
fn the_json_summary_names_every_count_and_kind() {
    let t0 = Instant::now();
    let mut s = Swarm::new(config(1), t0);
    s.handle_dialing(0);
    s.handle_connected(0, t0);
    s.handle_acked(0, ms(2));
    let mut sum = s.summary(t0 + ms(1500));
    sum.peak_rss_kib = Some(1234);
    let line = sum.json("h\"x:1");
    let v: serde_json::Value = serde_json::from_str(&line).expect(&line);
    assert_eq!(v["event"], "swarm");
    assert_eq!(v["target"], "h\"x:1");
    assert_eq!(v["connects"], 1);
    assert_eq!(v["duration_s"], 1.5);
    assert_eq!(v["peak_rss_kib"], 1234);
    assert_eq!(v["rtt_ms"]["max"], 2.0);
    for k in ErrorKind::ALL {
        assert_eq!(v["errors"][k.name()], 0, "{line}");
    }
    let text = sum.text("h:1");
    assert!(
        text.starts_with("--- swarm h:1: 1 clients, 1.50 s ---\n"),
        "{text}"
    );
    assert!(text.contains("errors: none"), "{text}");
    assert!(text.contains("min/avg/p50/p99/max = 2.000/"), "{text}");
}
