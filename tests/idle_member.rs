//! What an idle room member costs the hub in heap memory, counted by a
//! global allocator that tracks the live bytes of the test's own thread:
//! a room of plain members that joined, chatted and went quiet (the hub's
//! session per member and the room's entry for it), and an established
//! Noise transport (what an encrypted member adds). The receive buffer
//! of a member's connection is given back when idle (`os/buf.rs`, unit
//! tested there), so it adds nothing here.

use std::alloc::{GlobalAlloc, Layout, System};
use std::borrow::Cow;
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use duet::core::chat::Screen;
use duet::core::render::Line;
use duet::core::room::{Room, RoomConfig};
use duet::core::session::{Config, Session};
use duet::os::conn::Conn;

struct Counting;

thread_local! {
    /// Heap bytes allocated and not yet freed by this thread (the test
    /// harness and the other tests allocate on their own threads).
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn add(n: i64) {
    // `try_with`: the thread's locals may be gone while it exits.
    let _ = LIVE.try_with(|l| l.set(l.get() + n));
}

fn live() -> i64 {
    LIVE.with(Cell::get)
}

// SAFETY: forwards to the system allocator, counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes an idle plain member may cost the hub: its connection (which
/// holds its session; the loop's slab holds connections inline), what the
/// session keeps on the heap, and the room's entry for it.
const IDLE_MEMBER_MAX: i64 = 2048;
/// Heap bytes an established Noise transport may hold (an encrypted
/// member's addition).
const TRANSPORT_MAX: i64 = 1024;

fn cfg(name: &str) -> Config {
    Config {
        name: name.as_bytes().to_vec(),
        max_message: 1 << 20,
        linger: Duration::from_secs(5),
        handshake_timeout: Duration::from_secs(5),
        heartbeat: Some(Duration::from_secs(5)),
        dead_after: 3,
        write_timeout: Some(Duration::from_secs(30)),
        stream: false,
    }
}

struct Nowhere;

impl Screen for Nowhere {
    fn show(&mut self, _: &Line<'_>, _: Instant) {}
    fn show_part(&mut self, _: &[u8], _: u64, _: &[u8], _: bool, _: Instant) {}
    fn cut_off(&mut self, _: &[u8], _: Instant) {}
    fn echo_sent(&mut self, _: u64, _: &[u8], _: Instant) {}
}

/// Moves what `from` has to send into `to`.
fn pump(from: &mut Session, to: &mut Session, now: Instant) -> bool {
    let out = from.poll_transmit().bytes.to_vec();
    if out.is_empty() {
        return false;
    }
    from.handle_written(out.len(), now);
    assert_eq!(to.handle_peer_bytes(&out, now), out.len());
    true
}

/// Runs the hub's sessions, the clients' and the room until nothing
/// moves.
fn run(room: &mut Room, hubs: &mut [Session], clients: &mut [Session], now: Instant) {
    let screen = &mut Nowhere;
    loop {
        let mut moved = false;
        for (key, (hub, client)) in hubs.iter_mut().zip(clients.iter_mut()).enumerate() {
            moved |= pump(hub, client, now);
            moved |= pump(client, hub, now);
            while client.poll_event().is_some() {}
            room.handle_events(key, hub, screen, now);
        }
        while let Some(key) = room.poll_woken() {
            moved = true;
            room.feed(key, &mut hubs[key], screen, now);
        }
        if !moved {
            return;
        }
    }
}

#[test]
fn an_idle_room_member_costs_the_hub_little_heap() {
    const N: usize = 200;
    let now = Instant::now();
    let before = live();
    let mut room = Room::new(RoomConfig {
        name: b"hub".to_vec(),
        max_peers: N,
        queue_cap: 1 << 20,
        join_timeout: Duration::from_secs(5),
    });
    let mut hubs = Vec::with_capacity(N);
    let mut clients = Vec::with_capacity(N);
    for key in 0..N {
        let mut hub = Session::new(cfg("hub"), now);
        let addr = SocketAddr::from(([127, 0, 0, 1], 5000 + key as u16));
        room.handle_join(key, addr, &mut hub, now).expect("room");
        hubs.push(hub);
        clients.push(Session::new(cfg(&format!("member{key}")), now));
    }
    run(&mut room, &mut hubs, &mut clients, now);
    assert_eq!(room.members(), N);
    // Some chat, including a message of several chunks, then quiet.
    for (i, c) in clients.iter_mut().enumerate().take(10) {
        let msg = vec![b'x'; if i == 0 { 200_000 } else { 100 }];
        c.handle_input(Cow::Owned(msg), now).expect("taken");
    }
    run(&mut room, &mut hubs, &mut clients, now);
    assert_eq!(room.queued_bytes(), 0);
    for (key, hub) in hubs.iter_mut().enumerate() {
        hub.shrink_idle();
        room.shrink_idle(key);
    }
    drop(clients);
    // The sessions are counted where they are (in `hubs`); in the hub each
    // is inside its connection, which is counted instead.
    let conn_extra = size_of::<Conn>() as i64 - size_of::<Session>() as i64;
    let per_member = (live() - before) / N as i64 + conn_extra;
    let accounted: usize = hubs.iter().map(Session::heap_bytes).sum::<usize>()
        + (0..N).map(|k| room.member_heap_bytes(k)).sum::<usize>();
    eprintln!(
        "idle member: {per_member} bytes (connection struct {} bytes, session struct {}, \
         {} accounted by heap_bytes)",
        size_of::<Conn>(),
        size_of::<Session>(),
        accounted / N
    );
    assert!(
        per_member <= IDLE_MEMBER_MAX,
        "an idle member costs {per_member} bytes, over {IDLE_MEMBER_MAX}"
    );
    drop(hubs);
    drop(room);
}

#[test]
fn an_established_transport_holds_little_heap() {
    use duet::core::transport::{Role, Transport};
    const N: usize = 50;
    let before = live();
    let mut kept = Vec::with_capacity(N);
    for i in 0..N {
        let mut c = Transport::new(Role::Initiator, &[1; 32]).expect("randomness");
        let mut s = Transport::new(Role::Responder, &[2 + i as u8; 32]).expect("randomness");
        duet::check::complete_handshake(&mut c, &mut s);
        let mut wire = Vec::new();
        let mut plain = Vec::new();
        // A record each way, as a chat's first message and its ack.
        wire.clear();
        c.seal(b"hello", &mut wire).expect("sealed");
        assert_eq!(s.handle_ciphertext(&wire, &mut plain), Ok(wire.len()));
        kept.push(s);
    }
    let per_transport = (live() - before) / N as i64;
    eprintln!(
        "established transport: {per_transport} heap bytes (struct {} bytes)",
        std::mem::size_of::<Transport>()
    );
    assert!(
        per_transport <= TRANSPORT_MAX,
        "an established transport holds {per_transport} bytes, over {TRANSPORT_MAX}"
    );
    drop(kept);
}
