//! End-to-end latency and throughput of duet against the physical limit,
//! measured side by side in one run on 127.0.0.1.
//!
//! Variants, interleaved round by round (A B C A B C ...) so that drift on a
//! noisy machine shows up as spread rather than as a bias:
//! - raw: a blocking `std::net::TcpStream` ping-pong with TCP_NODELAY, the
//!   same frames duet sends (DATA chunks, 13-byte ACK), between two
//!   processes (this binary re-executed as the echo side);
//! - mio floor (16 B and 1 KiB): the same exchange between two bare `mio`
//!   loops, no session; "+display": the same, the echo side also writing
//!   each turn's messages to /dev/null in one `write`, as a receiver that
//!   shows messages must; "+render": the same with each message rendered by
//!   duet's own renderer (escaped, tagged), as duet shows it; "+session"
//!   (16 B and 1 KiB): the same loop with duet's sans-IO `Session` doing
//!   the protocol (handshake, framing, acks, bookkeeping) before the
//!   renderer, that is `duet server` without its event loop and display;
//! - bench: `duet server` (stdout to /dev/null) driven by `duet bench`;
//! - duet server alone (16 B and 1 KiB): the same `duet server` driven by
//!   the bare `mio` sender of the floor (after a HELLO), so that duet's
//!   cost over "+render" splits into the receiver's share and the sender's;
//! - client: `duet client --format jsonl` fed one message at a time through
//!   a stdin pipe, the next written after the previous ack is read;
//! - relay: the client path's limit, a blocking relay (this binary again)
//!   in duet client's place: the same driver, pipes and raw echo side;
//! - mio relay (16 B and 1 KiB): the client path's floor, the relay as a
//!   bare `mio` loop talking to the "+display" echo: what any one-thread
//!   event-loop client path costs before doing anything of its own.
//!
//! Run: `cargo bench --bench e2e` (add `-- --quick` for one short round).
//! Figures are printed, never asserted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use duet::core::protocol::{self, ByeReason, Frame, Hello};
use serde_json::Value;

const DUET: &str = env!("CARGO_BIN_EXE_duet");
const CHUNK: usize = 64 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--raw-echo") {
        raw_echo_server();
        return;
    }
    if args.iter().any(|a| a == "--mio-echo") {
        mio_echo_server(Show::Nothing);
        return;
    }
    if args.iter().any(|a| a == "--mio-echo-shown") {
        mio_echo_server(Show::Raw);
        return;
    }
    if args.iter().any(|a| a == "--mio-echo-rendered") {
        mio_echo_server(Show::Rendered);
        return;
    }
    if args.iter().any(|a| a == "--mio-echo-session") {
        mio_session_echo_server();
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--raw-relay") {
        raw_relay(&args[i + 1]);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--mio-relay") {
        mio_relay(&args[i + 1]);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = if quick { 1 } else { 3 };
    let scale = if quick { 10 } else { 1 };

    let echoes = Echoes {
        raw: RawEcho::start("--raw-echo"),
        floor: RawEcho::start("--mio-echo"),
        shown: RawEcho::start("--mio-echo-shown"),
        rendered: RawEcho::start("--mio-echo-rendered"),
        session: RawEcho::start("--mio-echo-session"),
        duet: DuetServer::start(),
    };
    let (raw, duet) = (&echoes.raw, &echoes.duet);
    println!("duet e2e benchmark: {rounds} round(s), variants interleaved; RTTs in µs");
    println!("machine: {}", machine());

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placements: &[Placement] = if cpus >= 2 {
        &[Placement::OneCpu, Placement::TwoCpus, Placement::Unpinned]
    } else {
        &[Placement::Unpinned]
    };
    for &place in placements {
        // The large sizes only where the sender and receiver can overlap.
        let sizes: &[(usize, usize, usize)] = if place == Placement::TwoCpus || cpus < 2 {
            &[
                (16, 5000 / scale, 2000 / scale),
                (1024, 5000 / scale, 2000 / scale),
                (64 * 1024, 1000 / scale, 500 / scale),
                (1024 * 1024, 100 / scale, 50 / scale),
            ]
        } else {
            &[
                (16, 5000 / scale, 2000 / scale),
                (1024, 5000 / scale, 2000 / scale),
            ]
        };
        stop_and_wait(&echoes, place, sizes, rounds);
    }

    // Throughput: sender and receiver on CPUs of their own.
    let bulk = if cpus >= 2 {
        Placement::TwoCpus
    } else {
        Placement::Unpinned
    };
    place_all(&echoes, bulk);
    println!();
    println!("Throughput, {}", bulk.name());
    println!();
    println!("Pipelined 64 B messages (msgs/s)");
    let n = 200_000 / scale;
    let (mut r, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        r.push(raw.pipelined(64, n));
        b.push(duet.bench_rate(64, n as u64, 1000).0);
    }
    r.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (rm, bm) = (r[r.len() / 2], b[b.len() / 2]);
    println!(
        "  raw, one write per message: {rm:>10.0}   per round {}",
        list(&r, 0)
    );
    println!(
        "  duet bench, window 1000:    {bm:>10.0}   per round {}   ratio {:.2}",
        list(&b, 0),
        bm / rm
    );

    println!();
    println!("One 100 MB message (MB/s)");
    let big = 100_000_000 / scale;
    let (mut r, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        r.push(raw.one_big(big));
        b.push(duet.bench_rate(big, 1, 1).1);
    }
    r.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (rm, bm) = (r[r.len() / 2], b[b.len() / 2]);
    println!("  raw:        {rm:>8.0}   per round {}", list(&r, 0));
    println!(
        "  duet bench: {bm:>8.0}   per round {}   ratio {:.2}",
        list(&b, 0),
        bm / rm
    );
    println!("  duet server peak RSS: {:.1} MiB", duet.peak_rss_mib());
}

/// Where the processes run. On a VM, waking a task on an idle vCPU can cost
/// tens of microseconds, so the scheduler's choice decides a small
/// message's RTT; pinning gives every variant the same placement.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Placement {
    /// Every process on CPU 0: the RTT is the CPU work of both sides.
    OneCpu,
    /// The receiving side on CPU 1, the sender (and the client path's
    /// driver) on CPU 0: every message and ack crosses CPUs.
    TwoCpus,
    /// Wherever the scheduler puts them.
    Unpinned,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::OneCpu => "one CPU (all processes on CPU 0)",
            Placement::TwoCpus => "two CPUs (receiver on CPU 1, sender on CPU 0)",
            Placement::Unpinned => "unpinned (the scheduler decides)",
        }
    }

    /// CPUs for the sender (this process and its children) and the receiver.
    fn cpus(self) -> (Option<usize>, Option<usize>) {
        match self {
            Placement::OneCpu => (Some(0), Some(0)),
            Placement::TwoCpus => (Some(0), Some(1)),
            Placement::Unpinned => (None, None),
        }
    }
}

/// Pins `pid` (0: this process) to one CPU, or lets it run on any.
fn pin(pid: u32, cpu: Option<usize>) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: `set` is a plain bitmask owned by this frame; the calls only
    // write or read it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        match cpu {
            Some(c) => libc::CPU_SET(c, &mut set),
            None => (0..n).for_each(|c| libc::CPU_SET(c, &mut set)),
        }
        libc::sched_setaffinity(
            pid as libc::pid_t,
            std::mem::size_of::<libc::cpu_set_t>(),
            &set,
        )
    };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// Applies a placement: this process (and the children it spawns from now
/// on) as the sender, every echo server as a receiver.
fn place_all(echoes: &Echoes, place: Placement) {
    let (sender, receiver) = place.cpus();
    pin(0, sender);
    pin(echoes.raw.child.id(), receiver);
    pin(echoes.floor.child.id(), receiver);
    pin(echoes.shown.child.id(), receiver);
    pin(echoes.rendered.child.id(), receiver);
    pin(echoes.session.child.id(), receiver);
    pin(echoes.duet.child.id(), receiver);
}

/// The receiving sides, each a long-lived process.
struct Echoes {
    raw: RawEcho,
    floor: RawEcho,
    shown: RawEcho,
    rendered: RawEcho,
    session: RawEcho,
    duet: DuetServer,
}

/// One stop-and-wait table: raw, the bare-loop floor without and with a
/// display write and with duet's renderer (small sizes), duet bench, duet
/// server driven by the bare sender (small sizes), duet client, the raw
/// relay and the mio relay (small sizes) interleaved round by round, all
/// under the same placement.
fn stop_and_wait(
    echoes: &Echoes,
    place: Placement,
    sizes: &[(usize, usize, usize)],
    rounds: usize,
) {
    place_all(echoes, place);
    // Per size: its name and each round's raw, floor, floor shown, bench,
    // client, relay, mio relay, floor rendered, duet server alone and floor
    // with duet's session figures.
    type Row = (String, [Vec<Stats>; 10]);
    let mut table: Vec<Row> = Vec::new();
    for &(size, n, n_client) in sizes {
        let mut v: [Vec<Stats>; 10] = Default::default();
        for _ in 0..rounds {
            v[0].push(Stats::of(echoes.raw.ping_pong(size, n)));
            if size <= 1024 {
                v[1].push(Stats::of(mio_ping_pong(echoes.floor.addr, size, n, false)));
                v[2].push(Stats::of(mio_ping_pong(echoes.shown.addr, size, n, false)));
                v[7].push(Stats::of(mio_ping_pong(
                    echoes.rendered.addr,
                    size,
                    n,
                    false,
                )));
                v[9].push(Stats::of(mio_ping_pong(echoes.session.addr, size, n, true)));
            }
            v[3].push(echoes.duet.bench_stop_and_wait(size, n));
            if size <= 1024 {
                let addr = echoes.duet.addr.parse().unwrap();
                v[8].push(Stats::of(mio_ping_pong(addr, size, n, true)));
            }
            v[4].push(Stats::of(echoes.duet.client_path(size, n_client)));
            v[5].push(Stats::of(echoes.raw.relay_path(size, n_client)));
            if size <= 1024 {
                v[6].push(Stats::of(echoes.shown.relay_path(size, n_client)));
            }
        }
        table.push((human(size), v));
    }
    println!();
    println!(
        "Stop-and-wait RTT, {} (median over rounds of each round's p50 / p99; ±: spread of p50 across rounds; ×: p50 or p99 over raw's)",
        place.name()
    );
    println!(
        "{:>8} | {:>20} | {:>14} {:>5} | {:>14} {:>5} | {:>14} {:>5} | {:>14} {:>5} | {:>20} {:>5} {:>5} | {:>14} {:>5} | {:>20} {:>5} | {:>14} {:>5} {:>5} | {:>14} {:>5} {:>5}",
        "size",
        "raw p50 / p99",
        "mio floor p50",
        "×",
        "+display p50",
        "×",
        "+render p50",
        "×",
        "+session p50",
        "×",
        "duet bench p50 / p99",
        "p50×",
        "p99×",
        "server alone",
        "×",
        "duet client p50/p99",
        "p50×",
        "raw relay p50",
        "×",
        "c/rel",
        "mio relay p50",
        "×",
        "c/mrel"
    );
    for (name, [r, f, d, b, c, y, m, e, a, z]) in &table {
        let (rp50, rp99) = (median(r, |s| s.p50), median(r, |s| s.p99));
        let (bp50, bp99) = (median(b, |s| s.p50), median(b, |s| s.p99));
        let (cp50, cp99) = (median(c, |s| s.p50), median(c, |s| s.p99));
        let yp50 = median(y, |s| s.p50);
        let floor = |f: &Vec<Stats>| {
            if f.is_empty() {
                format!("{:>14} {:>5}", "-", "")
            } else {
                let fp50 = median(f, |s| s.p50);
                format!("{fp50:>10.1} {:>3} {:>5.2}", spread(f), fp50 / rp50)
            }
        };
        let (floor, shown, rendered, session, mio_relay, alone) =
            (floor(f), floor(d), floor(e), floor(z), floor(m), floor(a));
        let c_over_m = if m.is_empty() {
            String::new()
        } else {
            format!("{:.2}", cp50 / median(m, |s| s.p50))
        };
        println!(
            "{:>8} | {:>6.1} / {:>6.1} {:>4} | {floor} | {shown} | {rendered} | {session} | {:>6.1} / {:>6.1} {:>4} {:>5.2} {:>5.2} | {alone} | {:>6.1} / {:>6.1} {:>4} {:>5.2} | {:>10.1} {:>3} {:>5.2} {:>5.2} | {mio_relay} {c_over_m:>5}",
            name,
            rp50,
            rp99,
            spread(r),
            bp50,
            bp99,
            spread(b),
            bp50 / rp50,
            bp99 / rp99,
            cp50,
            cp99,
            spread(c),
            cp50 / rp50,
            yp50,
            spread(y),
            yp50 / rp50,
            cp50 / yp50
        );
    }
    for (name, [r, f, d, b, c, y, m, e, a, z]) in &table {
        let l = |v: &Vec<Stats>| {
            v.iter()
                .map(|s| format!("{:.1}", s.p50))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "  {name}: p50 per round: raw [{}]  floor [{}]  +display [{}]  +render [{}]  +session [{}]  bench [{}]  server alone [{}]  client [{}]  relay [{}]  mio relay [{}]",
            l(r),
            l(f),
            l(d),
            l(e),
            l(z),
            l(b),
            l(a),
            l(c),
            l(y),
            l(m)
        );
    }
}

fn list(v: &[f64], digits: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.digits$}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn human(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs, {model}, Linux {}", kernel.trim())
}

/// p50 and p99 of one run, in µs.
#[derive(Clone, Copy)]
struct Stats {
    p50: f64,
    p99: f64,
}

impl Stats {
    fn of(mut us: Vec<f64>) -> Stats {
        us.sort_by(f64::total_cmp);
        let at = |p: f64| us[((us.len() as f64 * p).ceil() as usize).clamp(1, us.len()) - 1];
        Stats {
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

fn median(v: &[Stats], f: impl Fn(&Stats) -> f64) -> f64 {
    let mut x: Vec<f64> = v.iter().map(f).collect();
    x.sort_by(f64::total_cmp);
    x[x.len() / 2]
}

fn spread(v: &[Stats]) -> String {
    let lo = v.iter().map(|s| s.p50).fold(f64::MAX, f64::min);
    let hi = v.iter().map(|s| s.p50).fold(0.0, f64::max);
    if v.len() < 2 {
        String::new()
    } else {
        format!("±{:.0}%", (hi - lo) / (hi + lo) * 100.0)
    }
}

/// duet's frames for one message: DATA chunks of at most 64 KiB.
fn frames(id: u64, msg: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 14 * (msg.len() / CHUNK + 1));
    let mut chunks: Vec<&[u8]> = msg.chunks(CHUNK).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    for (i, c) in chunks.iter().enumerate() {
        out.extend_from_slice(&((9 + c.len()) as u32).to_be_bytes());
        out.push(0x02);
        out.extend_from_slice(&id.to_be_bytes());
        out.push((i == last) as u8);
        out.extend_from_slice(c);
    }
    out
}

// ----- raw: blocking sockets, two processes ------------------------------

/// The echo side, in its own process: acknowledges every complete message.
fn raw_echo_server() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("{}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    for stream in listener.incoming() {
        let mut s = stream.unwrap();
        s.set_nodelay(true).unwrap();
        let mut header = [0u8; 5];
        let mut body = vec![0u8; 9 + CHUNK];
        loop {
            if s.read_exact(&mut header).is_err() {
                break;
            }
            let len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
            s.read_exact(&mut body[..len]).unwrap();
            if body[8] & 1 == 1 {
                let mut ack = [0u8; 13];
                ack[..5].copy_from_slice(&[0, 0, 0, 8, 3]);
                ack[5..].copy_from_slice(&body[..8]);
                s.write_all(&ack).unwrap();
            }
        }
    }
}

struct RawEcho {
    child: Child,
    addr: SocketAddr,
    /// How it was started: `--raw-echo` or one of the `--mio-echo*` loops.
    flag: &'static str,
}

impl RawEcho {
    /// `flag`: `--raw-echo` (blocking), or `--mio-echo`, `--mio-echo-shown`
    /// or `--mio-echo-rendered` (bare event loops; see `mio_echo_server`).
    fn start(flag: &'static str) -> RawEcho {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg(flag)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        RawEcho {
            addr: line.trim().parse().unwrap(),
            child,
            flag,
        }
    }

    /// The same driver feeding a relay to this echo side: the blocking
    /// one for the raw echo, the `mio` one for the bare loops.
    fn relay_path(&self, size: usize, n: usize) -> Vec<f64> {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        let flag = if self.flag == "--raw-echo" {
            "--raw-relay"
        } else {
            "--mio-relay"
        };
        cmd.args([flag, &self.addr.to_string()]);
        drive_path(cmd, size, n)
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// Stop-and-wait: RTT in µs of each message, from the first write to
    /// the ack read.
    fn ping_pong(&self, size: usize, n: usize) -> Vec<f64> {
        let mut s = self.connect();
        let msg = vec![b'r'; size];
        let mut ack = [0u8; 13];
        let mut out = Vec::with_capacity(n);
        for id in 1..=n as u64 {
            let f = frames(id, &msg);
            let t = Instant::now();
            s.write_all(&f).unwrap();
            s.read_exact(&mut ack).unwrap();
            out.push(t.elapsed().as_secs_f64() * 1e6);
        }
        out
    }

    /// Messages per second, one `write` per message, acks read by a thread.
    fn pipelined(&self, size: usize, n: usize) -> f64 {
        let mut s = self.connect();
        let mut r = s.try_clone().unwrap();
        let t = Instant::now();
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 13 * 1024];
            let mut need = 13 * n;
            while need > 0 {
                let k = r.read(&mut buf).unwrap();
                assert!(k > 0);
                need -= k;
            }
        });
        let msg = vec![b'p'; size];
        for id in 1..=n as u64 {
            s.write_all(&frames(id, &msg)).unwrap();
        }
        reader.join().unwrap();
        n as f64 / t.elapsed().as_secs_f64()
    }

    /// MB/s for one message of `size` bytes, until its ack.
    fn one_big(&self, size: usize) -> f64 {
        let mut s = self.connect();
        let f = frames(1, &vec![b'b'; size]);
        let mut ack = [0u8; 13];
        let t = Instant::now();
        s.write_all(&f).unwrap();
        s.read_exact(&mut ack).unwrap();
        size as f64 / t.elapsed().as_secs_f64() / 1e6
    }
}

impl Drop for RawEcho {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- floor: a bare mio loop on both sides -----------------------------------

/// What the bare echo does with each message after acking it.
#[derive(Clone, Copy)]
enum Show {
    Nothing,
    Raw,
    Rendered,
}

/// A connected socket as a bare loop's only source: nonblocking,
/// `TCP_NODELAY`, registered for reading.
fn mio_source(s: TcpStream) -> (mio::net::TcpStream, mio::Poll, mio::Events) {
    s.set_nodelay(true).unwrap();
    s.set_nonblocking(true).unwrap();
    let mut s = mio::net::TcpStream::from_std(s);
    let poll = mio::Poll::new().unwrap();
    poll.registry()
        .register(&mut s, mio::Token(0), mio::Interest::READABLE)
        .unwrap();
    (s, poll, mio::Events::with_capacity(8))
}

/// What a bare echo side shows with and where: duet's text style with the
/// peer named, /dev/null, the turn's lines, and its listener (whose address
/// is printed for the parent).
struct EchoSide {
    style: duet::core::render::Style,
    display: std::fs::File,
    shown: Vec<u8>,
    listener: TcpListener,
}

impl EchoSide {
    fn open() -> EchoSide {
        let mut style = duet::core::render::Style::default();
        style.remember_name(b"peer");
        let display = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        EchoSide {
            style,
            display,
            shown: Vec::with_capacity(4 * CHUNK),
            listener,
        }
    }
}

/// A message rendered as `duet server` shows it (escaped, tagged).
fn render_message(style: &duet::core::render::Style, id: u64, data: &[u8], shown: &mut Vec<u8>) {
    let line = duet::core::render::Line::Message {
        id,
        from: b"peer",
        data,
    };
    duet::core::render::render_in_pieces(
        duet::core::render::Format::Text,
        &line,
        duet::core::render::Stamp::default(),
        style,
        shown,
        &mut |_| {},
    );
}

/// The echo side as a bare event loop, in its own process: edge-triggered
/// `epoll_wait`, reads until a short read, and acks each complete message
/// at once. No session: what any single-threaded `mio` design costs before
/// doing anything of its own. Unless `show` is `Nothing`, the turn's
/// messages are then written to `/dev/null` in one `write`: as `peer> ` and
/// the bytes unescaped (`Raw`, the least a receiver that shows messages must
/// add), or rendered by duet's own text renderer (`Rendered`: escaped and
/// tagged, the display work duet itself does, without its session or loop).
fn mio_echo_server(show: Show) {
    let mut side = EchoSide::open();
    for stream in side.listener.incoming() {
        let (mut s, mut poll, mut events) = mio_source(stream.unwrap());
        let mut buf = vec![0u8; 4 * CHUNK];
        let mut have = 0;
        'conn: loop {
            poll.poll(&mut events, None).unwrap();
            loop {
                let room = buf.len() - have;
                let n = match s.read(&mut buf[have..]) {
                    Ok(0) => break 'conn,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => break 'conn,
                };
                have += n;
                let mut at = 0;
                while have - at >= 5 {
                    let len = u32::from_be_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
                    if have - at < 5 + len {
                        break;
                    }
                    if buf[at + 13] & 1 == 1 {
                        let mut ack = [0u8; 13];
                        ack[..5].copy_from_slice(&[0, 0, 0, 8, 3]);
                        ack[5..].copy_from_slice(&buf[at + 5..at + 13]);
                        assert_eq!(s.write(&ack).unwrap(), 13);
                    }
                    let data = &buf[at + 14..at + 5 + len];
                    match show {
                        Show::Nothing => {}
                        Show::Raw => {
                            side.shown.extend_from_slice(b"peer> ");
                            side.shown.extend_from_slice(data);
                            side.shown.push(b'\n');
                        }
                        Show::Rendered => render_message(&side.style, 1, data, &mut side.shown),
                    }
                    at += 5 + len;
                }
                buf.copy_within(at..have, 0);
                have -= at;
                if n < room {
                    break; // drained: the next edge comes with new data
                }
            }
            if !side.shown.is_empty() {
                side.display.write_all(&side.shown).unwrap();
                side.shown.clear();
            }
        }
    }
}

/// "+session": the bare loop of `mio_echo_server` with duet's own sans-IO
/// `Session` doing the protocol, as `duet server` configures it (HELLO,
/// framing, the ack, RTT and liveness bookkeeping, the message handed over
/// as an event), each message rendered as in "+render" and each turn's
/// lines written to /dev/null in one `write`. That is `duet server`
/// without its event loop and display: against "+render" it measures the
/// session, against "server alone" the loop. Deadlines are not served
/// (the run is shorter than the first heartbeat), and the sender is the
/// same bare loop, after a HELLO.
fn mio_session_echo_server() {
    use duet::core::session::{Config, Event, Session};
    let mut side = EchoSide::open();
    // Writes what the session has to send (nonblocking; small here), with
    // the turn's clock reading, as duet shares one per turn.
    let flush = |s: &mut mio::net::TcpStream, session: &mut Session, now: Instant| loop {
        let out = session.poll_transmit().bytes;
        if out.is_empty() {
            return;
        }
        match s.write(out) {
            Ok(n) => session.handle_written(n, now),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("session echo: {e}"),
        }
    };
    for stream in side.listener.incoming() {
        let (mut s, mut poll, mut events) = mio_source(stream.unwrap());
        let mut session = Session::new(
            Config {
                name: b"server".to_vec(),
                max_message: 16 << 20,
                linger: Duration::from_secs(5),
                handshake_timeout: Duration::from_secs(10),
                heartbeat: Some(Duration::from_secs(5)),
                dead_after: 3,
                write_timeout: Some(Duration::from_secs(30)),
                stream: true,
            },
            Instant::now(),
        );
        let mut buf = duet::os::buf::ReadBuf::with_capacity(2 * CHUNK);
        flush(&mut s, &mut session, Instant::now()); // our HELLO
        'conn: loop {
            poll.poll(&mut events, None).unwrap();
            loop {
                match buf.fill_from(&mut s) {
                    Ok(0) => break 'conn,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => break 'conn,
                }
                let now = Instant::now();
                let used = session.handle_peer_bytes(buf.data(), now);
                buf.consume(used);
                flush(&mut s, &mut session, now); // the ack
                if buf.was_short() {
                    break; // drained: the next edge comes with new data
                }
            }
            while let Some(ev) = session.poll_event() {
                if let Event::Message { id, data, .. } = ev {
                    render_message(&side.style, id, data, &mut side.shown);
                }
            }
            if !side.shown.is_empty() {
                side.display.write_all(&side.shown).unwrap();
                side.shown.clear();
            }
            if session.is_closed() {
                flush(&mut s, &mut session, Instant::now());
                break;
            }
        }
    }
}

/// Stop-and-wait against the bare loop, driven by a bare loop: write the
/// frames, `epoll_wait`, read the ack (small messages only: one `write`).
fn mio_ping_pong(addr: SocketAddr, size: usize, n: usize, hello: bool) -> Vec<f64> {
    let mut std = TcpStream::connect(addr).unwrap();
    if hello {
        handshake(&mut std);
    }
    let end = hello.then(|| std.try_clone().unwrap());
    let (mut s, mut poll, mut events) = mio_source(std);
    let msg = vec![b'm'; size];
    let mut out = Vec::with_capacity(n);
    for id in 1..=n as u64 {
        let f = frames(id, &msg);
        let t = Instant::now();
        assert_eq!(s.write(&f).unwrap(), f.len());
        let mut ack = [0u8; 13];
        let mut got = 0;
        while got < 13 {
            poll.poll(&mut events, None).unwrap();
            match s.read(&mut ack[got..]) {
                Ok(0) => panic!("mio echo closed"),
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("mio echo: {e}"),
            }
        }
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    if let Some(mut end) = end {
        goodbye(&mut end);
    }
    out
}

/// duet's handshake, blocking, before the bare sender's loop: our HELLO,
/// then the server's HELLO read and dropped. See `goodbye` for the end.
fn handshake(s: &mut TcpStream) {
    let hello = Frame::Hello(Hello {
        version: protocol::VERSION,
        max_message: 16 << 20,
        name: b"bench",
    });
    let mut out = Vec::new();
    protocol::encode(&hello, &mut out);
    s.write_all(&out).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match protocol::decode(&got) {
            Ok(Some((Frame::Hello(_), _))) => return,
            Ok(None) => {}
            other => panic!("duet server did not answer with HELLO: {other:?}"),
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "duet server closed before its HELLO");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Ends a chat begun by `handshake`: BYE (normal), then everything the
/// server still sends is read until it closes, so the server has finished
/// this chat before the next variant connects.
fn goodbye(s: &mut TcpStream) {
    s.set_nonblocking(false).unwrap();
    let mut bye = Vec::new();
    let frame = Frame::Bye {
        reason: ByeReason::Normal,
        detail: b"",
    };
    protocol::encode(&frame, &mut bye);
    s.write_all(&bye).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

// ----- the client path: a driver, a pipe each way, and a relay -------------

/// Feeds `relay` (a `duet client --format jsonl`, or the raw relay) one
/// line at a time through its stdin pipe, the next after the previous `ack`
/// line is read from its stdout; returns the RTT of each message in µs as
/// the relay reports it.
fn drive_path(mut relay: Command, size: usize, n: usize) -> Vec<f64> {
    let mut c = relay
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = vec![b'c'; size.max(1) - 1];
    line.push(b'\n');
    let mut rtts = Vec::with_capacity(n);
    let mut buf = String::new();
    let mut expect = |out: &mut BufReader<_>, event: &str| -> Value {
        loop {
            buf.clear();
            out.read_line(&mut buf).unwrap();
            assert!(!buf.is_empty(), "relay ended early");
            if buf.contains(event) {
                return serde_json::from_str(&buf).unwrap();
            }
        }
    };
    expect(&mut out, "\"connected\"");
    for _ in 0..n {
        stdin.write_all(&line).unwrap();
        let v = expect(&mut out, "\"event\":\"ack\"");
        rtts.push(v["rtt_us"].as_f64().unwrap());
    }
    drop(stdin);
    let _ = c.wait();
    rtts
}

/// The raw relay, in its own process: blocking reads of stdin lines, each
/// sent as one message to the raw echo side at `addr`, and one JSON line
/// per ack written to stdout with the RTT from the frame's `write` to the
/// ack's `read`, as duet client measures it.
fn raw_relay(addr: &str) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut stdin = BufReader::with_capacity(256 * 1024, std::io::stdin().lock());
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(b"{\"event\":\"connected\"}\n").unwrap();
    let (mut line, mut ack, mut id) = (Vec::new(), [0u8; 13], 0u64);
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line).unwrap() == 0 {
            return;
        }
        id += 1;
        let f = frames(id, line.strip_suffix(b"\n").unwrap_or(&line));
        let t = Instant::now();
        s.write_all(&f).unwrap();
        s.read_exact(&mut ack).unwrap();
        let rtt = t.elapsed().as_secs_f64() * 1e6;
        let out = format!("{{\"event\":\"ack\",\"id\":{id},\"rtt_us\":{rtt:.3}}}\n");
        stdout.write_all(out.as_bytes()).unwrap();
    }
}

/// The client path's floor, in its own process: the raw relay's job done
/// by a bare `mio` loop, stdin (nonblocking, read directly) and the socket
/// in one `epoll`, as any one-thread event-loop client must. Stop-and-wait
/// small messages only: a line arrives in one read and its frame leaves in
/// one write, and after a whole ACK nothing more is expected, so no read
/// ends in EAGAIN.
fn mio_relay(addr: &str) {
    let (mut s, mut poll, mut events) = mio_source(TcpStream::connect(addr).unwrap());
    // SAFETY: fcntl on fd 0, which stays open for the life of the process.
    unsafe {
        let flags = libc::fcntl(0, libc::F_GETFL);
        libc::fcntl(0, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    poll.registry()
        .register(
            &mut mio::unix::SourceFd(&0),
            mio::Token(1),
            mio::Interest::READABLE,
        )
        .unwrap();
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(b"{\"event\":\"connected\"}\n").unwrap();
    let (mut line, mut have) = (vec![0u8; 64 * 1024], 0);
    let (mut ack, mut got) = ([0u8; 13], 0);
    let (mut id, mut sent_at) = (0u64, Instant::now());
    loop {
        poll.poll(&mut events, None).unwrap();
        for ev in events.iter() {
            if ev.token() == mio::Token(1) {
                let room = line.len() - have;
                // SAFETY: reads into the unused tail of `line`, which we own.
                let n = unsafe { libc::read(0, line[have..].as_mut_ptr().cast(), room) };
                match n {
                    0 => return,
                    n if n < 0 => continue, // EAGAIN: a spurious edge
                    n => have += n as usize,
                }
                while let Some(end) = line[..have].iter().position(|&b| b == b'\n') {
                    id += 1;
                    let f = frames(id, &line[..end]);
                    sent_at = Instant::now();
                    assert_eq!(s.write(&f).unwrap(), f.len());
                    line.copy_within(end + 1..have, 0);
                    have -= end + 1;
                }
            } else {
                loop {
                    match s.read(&mut ack[got..]) {
                        Ok(0) => return,
                        Ok(k) => got += k,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("mio relay: {e}"),
                    }
                    if got == ack.len() {
                        got = 0;
                        let rtt = sent_at.elapsed().as_secs_f64() * 1e6;
                        let out =
                            format!("{{\"event\":\"ack\",\"id\":{id},\"rtt_us\":{rtt:.3}}}\n");
                        stdout.write_all(out.as_bytes()).unwrap();
                        break;
                    }
                }
            }
        }
    }
}

// ----- duet -----------------------------------------------------------------

struct DuetServer {
    child: Child,
    addr: String,
}

impl DuetServer {
    fn start() -> DuetServer {
        // Pick a free port, then hand it to the server, whose stdout goes
        // to /dev/null as in a profiling session.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(DUET)
            .args([
                "server",
                "--listen",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args(["--max-message", "128MiB"])
            // The floors and "server alone" speak protocol v1 to it; the
            // encrypted default is measured by benches/encrypted.sh.
            .arg("--plain")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "duet server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        // That probe connection was a chat; let it finish.
        std::thread::sleep(Duration::from_millis(100));
        DuetServer { child, addr }
    }

    fn bench_json(&self, size: usize, n: u64, window: u64) -> Value {
        let out = Command::new(DUET)
            .args([
                "bench",
                &self.addr,
                "--plain",
                "--format",
                "jsonl",
                "--max-message",
                "128MiB",
            ])
            .args(["--count", &n.to_string(), "--size", &size.to_string()])
            .args(["--window", &window.to_string()])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "duet bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("\"event\":\"bench\""))
            .unwrap();
        serde_json::from_str(line).unwrap()
    }

    fn bench_stop_and_wait(&self, size: usize, n: usize) -> Stats {
        let v = self.bench_json(size, n as u64, 1);
        Stats {
            p50: v["rtt_us"]["p50"].as_f64().unwrap(),
            p99: v["rtt_us"]["p99"].as_f64().unwrap(),
        }
    }

    /// (msgs/s, MB/s)
    fn bench_rate(&self, size: usize, n: u64, window: u64) -> (f64, f64) {
        let v = self.bench_json(size, n, window);
        (
            v["msgs_per_s"].as_f64().unwrap(),
            v["mb_per_s"].as_f64().unwrap(),
        )
    }

    /// A real client fed through a stdin pipe, one line at a time after the
    /// previous ack; returns duet's reported RTT of each message in µs.
    fn client_path(&self, size: usize, n: usize) -> Vec<f64> {
        let mut cmd = Command::new(DUET);
        cmd.args([
            "client",
            &self.addr,
            "--plain",
            "--format",
            "jsonl",
            "--max-message",
            "128MiB",
        ]);
        drive_path(cmd, size, n)
    }

    fn peak_rss_mib(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }
}

impl Drop for DuetServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
