//! Test harness: spawns the real `duet` binary with piped stdio, reads its
//! stdout line by line on a thread, puts a deadline on every wait, and
//! kills the child on drop. Failing tests print the command and both
//! streams.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use serde_json::Value;

/// Generous: CI machines are slow and shared. Only failures wait this long.
pub const DEADLINE: Duration = Duration::from_secs(30);

pub const BIN: &str = env!("CARGO_BIN_EXE_duet");

/// A server on 127.0.0.1, a free port, JSON lines out.
pub const SERVER_ARGS: &[&str] = &[
    "server",
    "--listen",
    "127.0.0.1",
    "--port",
    "0",
    "--format",
    "jsonl",
];

/// `args` with `--plain` for a chat: most tests exercise the chat over the
/// v1 wire, which their raw peers speak and read; `tests/security.rs` runs
/// duet's default, encrypted transport (`Duet::spawn_encrypted`).
fn plain(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    if matches!(args.first(), Some(&"server" | &"client" | &"bench")) {
        v.push("--plain".to_string());
    }
    v
}

/// The `DUET_HOME` every test's duet shares: one identity, made once
/// before any test's duet runs (so that two first uses do not race), and
/// one `known_peers`. Every server has the same key, so trust on first use
/// never sees a key change between tests that reuse a port.
pub fn duet_home() -> &'static str {
    static HOME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOME.get_or_init(|| {
        let home = format!("{}/duet-home", env!("CARGO_TARGET_TMPDIR"));
        let out = Command::new(BIN)
            .arg("id")
            .env("DUET_HOME", &home)
            .stdin(Stdio::null())
            .output()
            .expect("duet id");
        assert!(out.status.success(), "duet id: {out:?}");
        home
    })
}

/// A fresh, empty `DUET_HOME` under the tests' temporary directory.
pub fn fresh_home(name: &str) -> String {
    let dir = format!(
        "{}/{name}-{}",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    );
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `duet id` with its identity in `home`: the fingerprint it prints.
pub fn fingerprint(home: &str) -> String {
    let out = Command::new(BIN)
        .arg("id")
        .env("DUET_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("duet id");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running duet process.
pub struct Duet {
    pub args: Vec<String>,
    pid: u32,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line seen so far (for failure messages).
    pub seen: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    /// Signalled when stderr reaches end of file.
    stderr_done: Receiver<()>,
    exit: Receiver<ExitStatus>,
    status: Option<ExitStatus>,
}

pub enum Stdin {
    Piped,
    Null,
    File(std::fs::File),
    Fd(std::os::fd::OwnedFd),
}

impl Duet {
    pub fn spawn(args: &[&str]) -> Duet {
        Duet::spawn_with(args, Stdin::Piped, &[])
    }

    pub fn spawn_with(args: &[&str], stdin: Stdin, env: &[(&str, &str)]) -> Duet {
        Duet::spawn_full(&plain(args), stdin, env, None)
    }

    /// A duet with its default transport, encrypted (the other helpers add
    /// `--plain`), and its identity in `home`.
    pub fn spawn_encrypted(args: &[&str], home: &str) -> Duet {
        Duet::spawn_full(args, Stdin::Piped, &[("DUET_HOME", home)], None)
    }

    /// A child whose stdout is `stdout` (say, a pipe the test never
    /// reads) instead of the line reader's pipe: its lines are not seen.
    pub fn spawn_to(args: &[&str], stdout: std::os::fd::OwnedFd) -> Duet {
        Duet::spawn_full(&plain(args), Stdin::Piped, &[], Some(stdout))
    }

    fn spawn_full(
        args: &[impl AsRef<std::ffi::OsStr> + std::fmt::Display],
        stdin: Stdin,
        env: &[(&str, &str)],
        stdout: Option<std::os::fd::OwnedFd>,
    ) -> Duet {
        let given_stdout = stdout.is_some();
        let mut cmd = Command::new(BIN);
        cmd.env("DUET_HOME", duet_home());
        cmd.args(args)
            .stdout(stdout.map_or_else(Stdio::piped, Stdio::from))
            .stderr(Stdio::piped())
            .env_remove("DUET_PORT")
            .env_remove("DUET_NAME")
            .env_remove("DUET_FORMAT");
        for (k, v) in env {
            cmd.env(k, v);
        }
        match stdin {
            Stdin::Piped => cmd.stdin(Stdio::piped()),
            Stdin::Null => cmd.stdin(Stdio::null()),
            Stdin::File(f) => cmd.stdin(Stdio::from(f)),
            Stdin::Fd(fd) => cmd.stdin(Stdio::from(fd)),
        };
        let mut child: Child = cmd.spawn().expect("spawn duet");
        let pid = child.id();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        assert_eq!(stdout.is_some(), !given_stdout);
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let (line_tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let Some(stdout) = stdout else {
                return;
            };
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while let Ok(n) = r.read_until(b'\n', &mut buf) {
                if n == 0 {
                    break;
                }
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches('\n')
                    .to_string();
                buf.clear();
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let (stderr_tx, stderr_done) = mpsc::channel();
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
            let _ = stderr_tx.send(());
        });
        let (exit_tx, exit) = mpsc::channel();
        thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        Duet {
            args: args.iter().map(|s| s.to_string()).collect(),
            pid,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
            stderr_done,
            exit,
            status: None,
        }
    }

    /// A server on 127.0.0.1 with a free port and JSON output.
    pub fn server(extra: &[&str]) -> (Duet, SocketAddr) {
        let mut args = SERVER_ARGS.to_vec();
        args.extend_from_slice(extra);
        let mut s = Duet::spawn(&args);
        let addr = s.listening_addr();
        (s, addr)
    }

    /// Reads the first line, which must announce the listening address.
    pub fn listening_addr(&mut self) -> SocketAddr {
        let first = self.next_line();
        let v: Value = serde_json::from_str(&first)
            .unwrap_or_else(|e| self.fail(&format!("first line is not JSON ({e}): {first}")));
        assert_eq!(v["event"], "listening", "{first}");
        v["addr"].as_str().unwrap().parse().unwrap()
    }

    pub fn client(addr: SocketAddr, extra: &[&str]) -> Duet {
        let a = addr.to_string();
        let mut args = vec!["client", a.as_str(), "--format", "jsonl"];
        args.extend_from_slice(extra);
        Duet::spawn(&args)
    }

    pub fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        if let Err(e) = stdin.write_all(bytes).and_then(|()| stdin.flush()) {
            self.fail(&format!("cannot write to duet's stdin: {e}"));
        }
    }

    /// Hands stdin over (for writing from another thread).
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.stdin.take().expect("stdin still open")
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line, within the deadline.
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(DEADLINE) {
            Ok(l) => {
                self.seen.push(l.clone());
                l
            }
            Err(RecvTimeoutError::Timeout) => self.fail("no stdout line before the deadline"),
            Err(RecvTimeoutError::Disconnected) => {
                self.fail("stdout closed while waiting for a line")
            }
        }
    }

    /// The next JSON event.
    pub fn next_event(&mut self) -> Value {
        let l = self.next_line();
        serde_json::from_str(&l).unwrap_or_else(|e| self.fail(&format!("not JSON ({e}): {l}")))
    }

    /// Skips events until one named `event`, which it returns.
    pub fn expect_event(&mut self, event: &str) -> Value {
        loop {
            let v = self.next_event();
            if v["event"] == event {
                return v;
            }
        }
    }

    /// Skips stdout lines until one that contains `needle`.
    pub fn expect_line(&mut self, needle: &str) -> String {
        loop {
            let l = self.next_line();
            if l.contains(needle) {
                return l;
            }
        }
    }

    /// All remaining stdout lines until the process closes stdout.
    pub fn rest(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match self.lines.recv_timeout(DEADLINE) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    out.push(l);
                }
                Err(RecvTimeoutError::Disconnected) => return out,
                Err(RecvTimeoutError::Timeout) => {
                    self.fail("stdout not closed before the deadline")
                }
            }
        }
    }

    /// Waits for the exit, within the deadline.
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        match self.exit.recv_timeout(DEADLINE) {
            Ok(s) => {
                self.status = Some(s);
                // Let the reader collect everything the process wrote.
                let _ = self.stderr_done.recv_timeout(DEADLINE);
                s
            }
            Err(_) => self.fail("did not exit before the deadline"),
        }
    }

    /// Waits for the exit and returns its code (panics on a signal death).
    pub fn code(&mut self) -> i32 {
        let s = self.wait();
        s.code()
            .unwrap_or_else(|| self.fail(&format!("killed by a signal: {s:?}")))
    }

    /// Whether the process is still running right now.
    pub fn running(&mut self) -> bool {
        match self.exit.try_recv() {
            Ok(s) => {
                self.status = Some(s);
                false
            }
            Err(_) => self.status.is_none(),
        }
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.pid as i32, sig) };
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Panics with the command and everything it printed.
    pub fn fail(&self, why: &str) -> ! {
        panic!(
            "{why}\ncommand: duet {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args.join(" "),
            self.seen.join("\n"),
            self.stderr()
        );
    }
}

impl Drop for Duet {
    fn drop(&mut self) {
        if self.running() {
            self.signal(libc::SIGKILL);
        }
        if !thread::panicking() && self.stderr().contains("panicked") {
            self.fail("the process panicked");
        }
    }
}

/// A free port on 127.0.0.1 with nothing listening (bound, then released).
pub fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A raw TCP peer for speaking (or breaking) the protocol by hand.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("raw connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw { stream }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("raw write");
    }

    /// Reads frames until the peer closes; returns them encoded as
    /// (type, body) pairs. Stops early on an error such as a reset.
    pub fn frames_until_close(&mut self) -> Vec<(u8, Vec<u8>)> {
        let mut all = Vec::new();
        let _ = self.stream.read_to_end(&mut all);
        parse_frames(&all)
    }

    /// Reads exactly one frame.
    pub fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).expect("frame header");
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).expect("frame body");
        (header[4], body)
    }
}

/// Splits a byte stream into (type, body) frames; a trailing partial frame
/// is ignored.
pub fn parse_frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 5 {
        let len = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if b.len() < 5 + len {
            break;
        }
        out.push((b[4], b[5..5 + len].to_vec()));
        b = &b[5 + len..];
    }
    out
}

pub fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.push(kind);
    v.extend_from_slice(body);
    v
}

pub fn hello(name: &[u8], max: u64) -> Vec<u8> {
    let mut body = b"DUET".to_vec();
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&max.to_be_bytes());
    body.push(name.len() as u8);
    body.extend_from_slice(name);
    frame(0x01, &body)
}

pub fn data(id: u64, last: bool, chunk: &[u8]) -> Vec<u8> {
    let mut body = id.to_be_bytes().to_vec();
    body.push(last as u8);
    body.extend_from_slice(chunk);
    frame(0x02, &body)
}

pub fn ack(id: u64) -> Vec<u8> {
    frame(0x03, &id.to_be_bytes())
}

pub fn bye(reason: u8) -> Vec<u8> {
    frame(0x04, &[reason])
}

/// Decodes standard base64 (for `data_b64`).
pub fn b64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("bad base64 {c}"),
    };
    let mut out = Vec::new();
    for q in s.as_bytes().chunks(4) {
        let n = q.iter().enumerate().fold(0u32, |n, (i, &c)| {
            if c == b'=' {
                n
            } else {
                n | (val(c) as u32) << (18 - 6 * i)
            }
        });
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = q.iter().filter(|&&c| c != b'=').count() - 1;
        out.extend_from_slice(&bytes[..keep]);
    }
    out
}

/// The bytes of a `message` event.
pub fn message_bytes(v: &Value) -> Vec<u8> {
    if let Some(t) = v["text"].as_str() {
        t.as_bytes().to_vec()
    } else {
        b64(v["data_b64"].as_str().expect("text or data_b64"))
    }
}

/// Waits, within the deadline, until `cond` holds (for conditions that
/// have no event to wait on, such as a process's thread count).
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A pipe, close-on-exec so that no other test's child inherits an end:
/// (read end, write end).
pub fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Reads and discards from `fd` until end of file, waiting at most
/// `DEADLINE` for each read; `fd` may be nonblocking (duet sets its stdin
/// so, and a copy of the descriptor shares that).
pub fn drain(fd: std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let mut pfd = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd that lives across the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, DEADLINE.as_millis() as i32) };
        assert!(ready > 0, "nothing to read for {DEADLINE:?}");
        match file.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("drain: {e}"),
        }
    }
}

/// A real client can still chat with the server `s` (after a fault).
/// Connections a fault left queued in the listen backlog are served first,
/// so a client arriving meanwhile may be told "busy" (exit 4): it asks
/// again.
pub fn assert_serves(s: &mut Duet, addr: SocketAddr) {
    for _ in 0..100 {
        let mut c = Duet::client(addr, &[]);
        c.send(b"are you still there?\n");
        c.close_stdin();
        match c.code() {
            4 => continue,
            0 => {}
            other => c.fail(&format!("exit {other}")),
        }
        assert_eq!(c.expect_event("ack")["id"], 1);
        assert_eq!(s.expect_event("message")["text"], "are you still there?");
        s.expect_event("summary");
        return;
    }
    s.fail("the server answered busy 100 times");
}
