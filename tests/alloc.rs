//! The ack path allocates nothing once warm: a counting global allocator
//! watches two sessions exchange small messages in memory, a session
//! receive a long message in streamed pieces, and two Noise transports
//! seal and open records of every size into buffers the caller keeps.

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;
use std::time::{Duration, Instant};

use duet::core::session::{Config, Event, Session};

struct Counting;

thread_local! {
    /// Only the test's own thread is counted, into its own counter: the
    /// test harness and the other tests allocate on their threads meanwhile.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    if COUNTED.with(|c| c.get()) {
        ALLOCS.with(|a| a.set(a.get() + 1));
    }
}

fn allocs() -> u64 {
    ALLOCS.with(|a| a.get())
}

// SAFETY: forwards to the system allocator, counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn cfg() -> Config {
    Config {
        name: b"x".to_vec(),
        max_message: 1 << 20,
        linger: Duration::from_secs(1),
        handshake_timeout: Duration::from_secs(1),
        heartbeat: Some(Duration::from_secs(5)),
        dead_after: 3,
        write_timeout: Some(Duration::from_secs(30)),
        stream: false,
    }
}

/// Moves `from`'s outbox into `to` through a preallocated wire buffer.
fn pump(from: &mut Session, wire: &mut Vec<u8>, to: &mut Session, now: Instant) {
    wire.clear();
    let out = from.poll_transmit().bytes;
    let n = out.len();
    wire.extend_from_slice(out);
    from.handle_written(n, now);
    let used = to.handle_peer_bytes(wire, now);
    assert_eq!(used, n);
}

/// Takes every event, as the display would, and returns the message bytes seen.
fn drain(s: &mut Session) -> usize {
    let mut bytes = 0;
    while let Some(e) = s.poll_event() {
        if let Event::Message { data, .. } | Event::MessagePart { data, .. } = e {
            bytes += data.len();
        }
    }
    bytes
}

/// One stop-and-wait round trip: `a` sends, `b` receives and acks.
fn round_trip(a: &mut Session, b: &mut Session, wire: &mut Vec<u8>, msg: &[u8], now: Instant) {
    a.handle_input(Cow::Borrowed(msg), now).expect("accepted");
    pump(a, wire, b, now);
    assert_eq!(drain(b), msg.len());
    pump(b, wire, a, now);
    drain(a);
}

#[test]
fn receive_and_ack_path_does_not_allocate_once_warm() {
    let now = Instant::now();
    let mut a = Session::new(cfg(), now);
    let mut b = Session::new(cfg(), now);
    let mut wire = Vec::with_capacity(1 << 20);
    pump(&mut a, &mut wire, &mut b, now);
    pump(&mut b, &mut wire, &mut a, now);
    drain(&mut a);
    drain(&mut b);
    let msg = [0x5a_u8; 1024];
    for size in [0, 16, 1024] {
        for _ in 0..100 {
            round_trip(&mut a, &mut b, &mut wire, &msg[..size], now);
            round_trip(&mut b, &mut a, &mut wire, &msg[..size], now);
        }
    }
    COUNTED.with(|c| c.set(true));
    let before = allocs();
    for size in [0, 16, 1024] {
        for _ in 0..1000 {
            round_trip(&mut a, &mut b, &mut wire, &msg[..size], now);
            round_trip(&mut b, &mut a, &mut wire, &msg[..size], now);
        }
    }
    let n = allocs() - before;
    COUNTED.with(|c| c.set(false));
    assert_eq!(n, 0, "6000 warm round trips allocated {n} times");
    assert_eq!(a.stats().acked, 3300);
}

#[test]
fn streamed_receive_does_not_allocate_once_warm() {
    use duet::core::protocol::{Frame, MAX_CHUNK, encode};
    let now = Instant::now();
    let mut a = Session::new(cfg(), now);
    let mut b = Session::new(
        Config {
            stream: true,
            ..cfg()
        },
        now,
    );
    let mut wire = Vec::with_capacity(1 << 20);
    pump(&mut a, &mut wire, &mut b, now);
    pump(&mut b, &mut wire, &mut a, now);
    drain(&mut b);
    // A message of four chunks, its frames written by hand (the sending
    // session's copy of a large message is not on the receive path).
    let chunk = vec![0x5a_u8; MAX_CHUNK];
    let mut receive = |id: u64, wire: &mut Vec<u8>| {
        wire.clear();
        for i in 0..4 {
            let frame = Frame::Data {
                id,
                last: i == 3,
                chunk: &chunk,
            };
            encode(&frame, wire);
        }
        assert_eq!(b.handle_peer_bytes(wire, now), wire.len());
        assert_eq!(drain(&mut b), 4 * MAX_CHUNK);
        let n = b.poll_transmit().bytes.len();
        assert_eq!(n, 13, "one ACK");
        b.handle_written(n, now);
    };
    for id in 1..=10 {
        receive(id, &mut wire);
    }
    COUNTED.with(|c| c.set(true));
    let before = allocs();
    for id in 11..=1010 {
        receive(id, &mut wire);
    }
    let n = allocs() - before;
    COUNTED.with(|c| c.set(false));
    assert_eq!(n, 0, "1000 warm streamed messages allocated {n} times");
}

/// Two established transports, handshake done in memory.
fn transports() -> (
    duet::core::transport::Transport,
    duet::core::transport::Transport,
) {
    use duet::core::transport::{Role, Transport};
    let mut c = Transport::new(Role::Initiator, &[1; 32]).expect("randomness");
    let mut s = Transport::new(Role::Responder, &[2; 32]).expect("randomness");
    duet::check::complete_handshake(&mut c, &mut s);
    (c, s)
}

#[test]
fn sealing_and_opening_records_does_not_allocate_once_warm() {
    let (mut c, mut s) = transports();
    // The caller's buffers, kept across turns (cleared, not dropped).
    let mut wire = Vec::with_capacity(1 << 18);
    let mut plain = Vec::with_capacity(1 << 18);
    let msg = vec![0x5a_u8; 200_000];
    let mut round = |c: &mut duet::core::transport::Transport,
                     s: &mut duet::core::transport::Transport,
                     size: usize| {
        wire.clear();
        plain.clear();
        c.seal(&msg[..size], &mut wire).expect("established");
        assert_eq!(s.handle_ciphertext(&wire, &mut plain), Ok(wire.len()));
        assert_eq!(plain.len(), size);
    };
    for size in [0, 16, 1024, 65_519, 65_520, 200_000] {
        round(&mut c, &mut s, size);
        round(&mut s, &mut c, size);
    }
    COUNTED.with(|f| f.set(true));
    let before = allocs();
    for size in [0, 16, 1024, 65_519, 65_520, 200_000] {
        for _ in 0..50 {
            round(&mut c, &mut s, size);
            round(&mut s, &mut c, size);
        }
    }
    let n = allocs() - before;
    COUNTED.with(|f| f.set(false));
    assert_eq!(n, 0, "600 warm seal/open rounds allocated {n} times");
}
