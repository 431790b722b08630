//! The interactive terminal, tested as a person uses it: `duet client` runs
//! in a tmux pane (its own tmux server, one per test), keys are typed with
//! `send-keys`, and the screen is read with `capture-pane`. The server is a
//! piped child speaking JSON, or a listener that never answers (to test the
//! connecting client), or itself in the pane (to test its prompt). Skipped,
//! saying why, when tmux is missing.

mod common;

use common::*;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A tmux server with one pane running a shell command.
struct Tmux {
    socket: String,
    dir: std::path::PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Tmux {
    /// A private tmux server (not started yet); `None` without tmux.
    fn new() -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("SKIP: tmux is not installed");
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let socket = format!("duet-test-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&socket);
        std::fs::create_dir_all(&dir).unwrap();
        Some(Tmux { socket, dir })
    }

    /// Runs `command` in a 100x24 pane.
    fn run(&self, command: &str) {
        let status = self
            .cmd(&["new-session", "-d", "-x", "100", "-y", "24", "-s", "main"])
            .args([
                "env",
                "TERM=xterm-256color",
                "NO_COLOR=1",
                "bash",
                "--norc",
                "--noprofile",
                "-c",
                command,
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]).args(args);
        c
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn screen(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", "main"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn title(&self) -> String {
        let out = self
            .cmd(&["display-message", "-p", "-t", "main", "#{pane_title}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn resize(&self, columns: u16, rows: u16) {
        let (x, y) = (columns.to_string(), rows.to_string());
        let status = self
            .cmd(&["resize-window", "-t", "main", "-x", &x, "-y", &y])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn type_text(&self, text: &str) {
        self.cmd(&["send-keys", "-t", "main", "-l", text])
            .status()
            .unwrap();
    }

    fn key(&self, key: &str) {
        self.cmd(&["send-keys", "-t", "main", key])
            .status()
            .unwrap();
    }

    /// Waits until the screen contains `needle`; returns the screen.
    fn wait_for(&self, needle: &str) -> String {
        let mut screen = String::new();
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            eventually(&format!("{needle:?} on screen"), || {
                screen = self.screen();
                screen.contains(needle)
            })
        }));
        if found.is_err() {
            panic!("{needle:?} never appeared; screen:\n{}", self.screen());
        }
        screen
    }

    /// The last non-empty line on screen.
    fn last_line(&self) -> String {
        self.screen()
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client in a tmux pane, wrapped in `stty -g` before and after and an
/// exit-status line.
fn client_in_tmux(addr: std::net::SocketAddr, extra: &str) -> Option<Tmux> {
    let t = Tmux::new()?;
    let (before, after) = (t.file("stty.before"), t.file("stty.after"));
    t.run(&format!(
        "stty -g > {before}; {BIN} client --plain {addr} --name cli {extra}; echo EXIT=$?; stty -g > {after}.tmp && mv {after}.tmp {after}; sleep 600"
    ));
    t.wait_for("* connected to");
    Some(t)
}

fn stty_same(t: &Tmux) {
    eventually("stty -g to be written after exit", || {
        std::path::Path::new(&t.file("stty.after")).exists()
    });
    let before = std::fs::read_to_string(t.file("stty.before")).unwrap();
    let after = std::fs::read_to_string(t.file("stty.after")).unwrap();
    assert!(!before.trim().is_empty());
    assert_eq!(before, after, "the terminal settings changed");
}

#[test]
fn typing_is_not_clobbered_by_an_incoming_message() {
    let (mut s, addr) = Duet::server(&["--name", "srv"]);
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    s.expect_event("connected");
    t.type_text("half a sent");
    t.wait_for("> half a sent");
    s.send(b"incoming while you type\n");
    let screen = t.wait_for("<srv> incoming while you type");
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    let n = lines.len();
    assert_eq!(lines[n - 1].trim_end(), "> half a sent", "{screen}");
    assert_eq!(lines[n - 2], "<srv> incoming while you type", "{screen}");
    // Nothing typed was lost: finish the word and send it.
    t.type_text("ence");
    t.key("Enter");
    assert_eq!(s.expect_event("message")["text"], "half a sentence");
    t.wait_for("you> half a sentence");
    // Ctrl-D on the empty line leaves with the summary.
    t.key("C-d");
    let screen = t.wait_for("EXIT=0");
    assert!(
        screen.contains("--- chat with <srv> (plain) ---"),
        "{screen}"
    );
    assert!(screen.contains("1 sent, 1 acknowledged"), "{screen}");
    stty_same(&t);
}

#[test]
fn a_peer_cannot_retitle_or_clear_the_screen() {
    let (mut s, addr) = Duet::server(&["--name", "srv"]);
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    s.expect_event("connected");
    let title = t.title();
    s.send(b"before\n");
    t.wait_for("<srv> before");
    s.send(b"\x1b]2;pwned\x07\x1b[2J\x1b[H\x1b[31mred\n");
    let screen = t.wait_for("pwned");
    assert_eq!(t.title(), title, "the pane title changed");
    assert!(
        screen.contains("* connected to <srv>"),
        "earlier lines were cleared:\n{screen}"
    );
    assert!(screen.contains("<srv> before"), "{screen}");
    assert!(
        screen.contains("<srv> \\x1b]2;pwned\\x07\\x1b[2J\\x1b[H\\x1b[31mred"),
        "{screen}"
    );
    t.key("C-d");
    t.wait_for("EXIT=0");
    stty_same(&t);
}

#[test]
fn sigterm_restores_the_terminal() {
    let (mut s, addr) = Duet::server(&[]);
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    s.expect_event("connected");
    t.type_text("a draft");
    t.wait_for("> a draft");
    let pid = client_pid(addr);
    // SAFETY: signalling the client we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let screen = t.wait_for("EXIT=143");
    assert!(screen.contains("--- chat with"), "{screen}");
    assert!(
        screen.contains("> a draft"),
        "the unsent draft stays on screen:\n{screen}"
    );
    stty_same(&t);
}

#[test]
fn editing_keys_and_commands() {
    let (mut s, addr) = Duet::server(&["--name", "srv"]);
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    s.expect_event("connected");
    // Left, insert, Home, End, Backspace over a wide character.
    t.type_text("wrld");
    t.key("Left");
    t.key("Left");
    t.key("Left");
    t.type_text("o");
    t.key("Home");
    t.type_text("hello ");
    t.key("End");
    t.type_text("\u{4e2d}");
    t.key("BSpace");
    t.type_text("!");
    t.key("Enter");
    assert_eq!(s.expect_event("message")["text"], "hello world!");
    // Up recalls it.
    t.key("Up");
    t.wait_for("> hello world!");
    t.key("C-u");
    // // sends a leading slash; /stats shows the summary; unknown commands are refused.
    t.type_text("//etc");
    t.key("Enter");
    assert_eq!(s.expect_event("message")["text"], "/etc");
    t.type_text("/stats");
    t.key("Enter");
    t.wait_for("--- chat with <srv> (plain) ---");
    t.type_text("/bogus");
    t.key("Enter");
    t.wait_for("unknown command");
    // /send PATH: a file as one message, bytes exact.
    let path = t.file("payload.bin");
    std::fs::write(&path, b"line 1\nline 2\n\xff").unwrap();
    t.type_text(&format!("/send {path}"));
    t.key("Enter");
    let m = s.expect_event("message");
    assert_eq!(message_bytes(&m), b"line 1\nline 2\n\xff");
    t.wait_for("(15 bytes)");
    t.type_text("/quit");
    t.key("Enter");
    t.wait_for("EXIT=0");
    stty_same(&t);
}

/// `/send` reads only a regular file within `--max-message`: a FIFO or a
/// device would block the loop or never end, and an oversized file is
/// refused before it is read, like an oversized input record.
#[test]
fn send_refuses_what_it_cannot_send_whole() {
    let (mut s, addr) = Duet::server(&[]);
    let Some(t) = client_in_tmux(addr, "--max-message 1KiB") else {
        return;
    };
    s.expect_event("connected");
    let fifo = t.file("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let big = t.file("big.bin");
    std::fs::File::create(&big).unwrap().set_len(1025).unwrap();
    for (cmd, expect) in [
        ("/send".to_string(), "usage: /send PATH".to_string()),
        (
            format!("/send {fifo}"),
            format!("cannot send {fifo}: not a regular file"),
        ),
        (
            "/send /dev/zero".to_string(),
            "cannot send /dev/zero: not a regular file".to_string(),
        ),
        (
            format!("/send {big}"),
            "not sent: input record longer than --max-message (1024 bytes) was skipped".to_string(),
        ),
    ] {
        t.type_text(&cmd);
        t.key("Enter");
        t.wait_for(&expect);
    }
    // The loop was never blocked: a message still goes through.
    t.type_text("still here");
    t.key("Enter");
    assert_eq!(s.expect_event("message")["text"], "still here");
    t.type_text("/quit");
    t.key("Enter");
    t.wait_for("1 refused");
    t.wait_for("EXIT=3");
}

/// A label too long for the terminal gives way to "> ": a prompt line that
/// wraps could not be redrawn in place, and the draft would not show.
#[test]
fn a_narrow_terminal_keeps_the_draft_on_one_line() {
    let Some(t) = Tmux::new() else {
        return;
    };
    t.run(&format!(
        "{BIN} server --plain --listen 127.0.0.1 --port 0; sleep 600"
    ));
    t.wait_for("(nobody connected) >");
    t.resize(20, 6);
    t.type_text("hello there");
    eventually("the bare prompt with the draft", || {
        t.last_line() == "> hello there"
    });
    t.resize(60, 6);
    t.wait_for("(nobody connected) > hello there");
    // A line typed with nobody connected is refused, not kept.
    t.key("Enter");
    t.wait_for("not sent: nobody is connected");
}

/// A listener whose accept queue is full: a connect to it gets no answer,
/// so a client stays in its connecting phase. The streams returned hold the
/// queue full.
fn unanswering_listener() -> (std::net::TcpListener, Vec<std::net::TcpStream>) {
    use std::os::fd::AsRawFd;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // SAFETY: listen(2) again on our own socket only shortens its backlog.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let addr = l.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300)) {
            Ok(s) => held.push(s),
            Err(_) => return (l, held),
        }
    }
    panic!("the accept queue never filled");
}

/// While the client connects, its keys work: the prompt says where it is
/// connecting, a line typed early is refused with a reason, a resize is
/// not taken for a signal to stop, and Ctrl-C gives up at once.
#[test]
fn keys_and_resizes_work_while_connecting() {
    let (l, _held) = unanswering_listener();
    let addr = l.local_addr().unwrap();
    let Some(t) = Tmux::new() else {
        return;
    };
    t.run(&format!(
        "{BIN} client --plain {addr} --connect-timeout 60s; echo EXIT=$?; sleep 600"
    ));
    t.wait_for(&format!("(connecting to {addr}) >"));
    t.resize(70, 20);
    t.type_text("early");
    t.key("Enter");
    t.wait_for("not sent: not connected yet");
    t.key("C-c");
    t.wait_for("EXIT=130");
}

/// Connected, but the peer has not said HELLO: a line is refused as early,
/// not as sent to nobody.
#[test]
fn a_line_before_the_handshake_is_refused_as_early() {
    // The kernel completes the TCP handshake; nobody ever answers on it.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let Some(t) = Tmux::new() else {
        return;
    };
    t.run(&format!(
        "{BIN} client --plain {addr} --handshake-timeout 60s; echo EXIT=$?; sleep 600"
    ));
    t.wait_for("(connecting) >");
    t.type_text("early");
    t.key("Enter");
    t.wait_for("not sent: not connected yet");
    // Ctrl-C leaves at once: before the handshake there are no acks to
    // wait for, and no chat to sum up.
    t.key("C-c");
    let screen = t.wait_for("EXIT=0");
    assert!(screen.contains("* chat ended: you left"), "{screen}");
    assert!(!screen.contains("--- chat with"), "{screen}");
}

#[test]
fn no_editor_keeps_the_kernel_line_mode() {
    let (mut s, addr) = Duet::server(&[]);
    let Some(t) = client_in_tmux(addr, "--no-editor") else {
        return;
    };
    s.expect_event("connected");
    t.type_text("plain line");
    t.key("Enter");
    assert_eq!(s.expect_event("message")["text"], "plain line");
    // The kernel echoed it; no prompt is drawn.
    assert!(!t.last_line().starts_with('>'), "{}", t.screen());
    t.key("C-d");
    t.wait_for("EXIT=0");
    stty_same(&t);
}

fn client_pid(addr: std::net::SocketAddr) -> i32 {
    let pids = Command::new("pgrep")
        .args(["-f", &format!("client --plain {addr}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&pids.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .find(|&p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with(BIN.as_bytes()))
        })
        .expect("the client's pid")
}

fn pane_stty(t: &Tmux) -> String {
    let tty = t
        .cmd(&["display-message", "-p", "-t", "main", "#{pane_tty}"])
        .output()
        .unwrap();
    let tty = String::from_utf8_lossy(&tty.stdout).trim().to_string();
    let out = Command::new("stty")
        .args(["-g", "-F", &tty])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn ctrl_z_gives_the_terminal_back_and_resuming_redraws() {
    let (mut s, addr) = Duet::server(&[]);
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    s.expect_event("connected");
    t.type_text("keep me");
    t.wait_for("> keep me");
    let before = std::fs::read_to_string(t.file("stty.before")).unwrap();
    assert_ne!(pane_stty(&t), before.trim(), "the editor's mode is on");
    t.key("C-z");
    let pid = client_pid(addr);
    eventually("the client to stop", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| st.contains(") T "))
    });
    assert_eq!(
        pane_stty(&t),
        before.trim(),
        "stopped with the terminal restored"
    );
    // SAFETY: continuing the client we stopped.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    eventually("cbreak mode again", || pane_stty(&t) != before.trim());
    t.type_text(" please");
    t.key("Enter");
    assert_eq!(s.expect_event("message")["text"], "keep me please");
    t.key("C-d");
    t.wait_for("EXIT=0");
    stty_same(&t);
}

#[test]
fn log_lines_are_printed_above_the_prompt() {
    let (mut s, addr) = Duet::server(&[]);
    let Some(t) = client_in_tmux(addr, "-v") else {
        return;
    };
    s.expect_event("connected");
    t.type_text("draft");
    t.wait_for("> draft");
    // A peer leaving produces log lines at debug level on the client.
    s.signal(libc::SIGTERM);
    let screen = t.wait_for("chat ended");
    let lines: Vec<&str> = screen.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[DEBUG]") || l.starts_with("[INFO]")),
        "{screen}"
    );
    // No log text was written into the prompt line.
    let prompt = lines.iter().rev().find(|l| l.contains("> draft")).unwrap();
    assert!(!prompt.contains('['), "{screen}");
    t.key("C-d");
    t.wait_for("EXIT=0");
}

#[test]
fn a_second_quit_stops_waiting_for_acks() {
    // A server that completes the handshake and never acknowledges.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut raw = Raw { stream };
        raw.write(&hello(b"silent", 1 << 20));
        let mut frames = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut raw.stream, &mut buf) {
            if n == 0 {
                break;
            }
            frames.extend_from_slice(&buf[..n]);
        }
        parse_frames(&frames)
    });
    let Some(t) = client_in_tmux(addr, "--linger 60s") else {
        return;
    };
    t.type_text("anyone?");
    t.key("Enter");
    t.wait_for("(1 unacked) >");
    t.key("C-d"); // waits up to 60 s for the ack...
    t.key("C-c"); // ...unless asked again
    let screen = t.wait_for("EXIT=3");
    assert!(
        screen.contains("1 sent, 0 acknowledged, 1 unacknowledged"),
        "{screen}"
    );
    let frames = peer.join().unwrap();
    assert_eq!(
        frames.last().map(|f| (f.0, f.1[0])),
        Some((0x04, 0)),
        "BYE(normal)"
    );
    stty_same(&t);
}

#[test]
fn term_dumb_keeps_the_kernel_line_mode() {
    let (mut s, addr) = Duet::server(&[]);
    let Some(t) = Tmux::new() else { return };
    t.run(&format!(
        "TERM=dumb {BIN} client --plain {addr}; echo EXIT=$?; sleep 600"
    ));
    t.wait_for("* connected to");
    s.expect_event("connected");
    t.type_text("/quit is just text here");
    t.key("Enter");
    assert_eq!(s.expect_event("message")["text"], "/quit is just text here");
    t.key("C-d");
    t.wait_for("EXIT=0");
}

/// The lines on screen that hold `needle`.
fn count_lines(screen: &str, needle: &str) -> usize {
    screen.lines().filter(|l| l.contains(needle)).count()
}

/// No prompt is left on screen once duet has exited: not the client's
/// "(chat ended) >" when the server leaves...
#[test]
fn the_client_leaves_no_prompt_behind() {
    let (s, addr) = Duet::server(&["--name", "srv"]);
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    t.wait_for("<srv>");
    s.signal(libc::SIGTERM);
    let screen = t.wait_for("EXIT=0");
    assert!(screen.contains("* chat ended: <srv> left"), "{screen}");
    assert!(!screen.contains("(chat ended)"), "{screen}");
    let before_exit = screen
        .lines()
        .take_while(|l| !l.starts_with("EXIT="))
        .last();
    assert!(
        before_exit.is_some_and(|l| !l.trim_start().starts_with('>')),
        "{screen}"
    );
    stty_same(&t);
}

/// ...nor the server's label while a client's HELLO is awaited, which
/// says "greeting", not "connecting" (a server connects to nobody).
#[test]
fn the_server_greets_and_leaves_no_prompt_behind() {
    let Some(t) = Tmux::new() else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    t.run(&format!(
        "{BIN} server --plain --listen 127.0.0.1 --port {port}; echo EXIT=$?; sleep 600"
    ));
    t.wait_for("(nobody connected) >");
    // Connected, silent: no HELLO.
    let _silent = std::net::TcpStream::connect(addr).unwrap();
    t.wait_for("(greeting 127.0.0.1:");
    let pid = Command::new("pgrep")
        .args([
            "-f",
            &format!("server --plain --listen 127.0.0.1 --port {port}"),
        ])
        .output()
        .unwrap();
    for p in String::from_utf8_lossy(&pid.stdout).lines() {
        let p: i32 = p.trim().parse().unwrap();
        if std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c.starts_with(BIN.as_bytes()))
        {
            // SAFETY: signalling the server we started.
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
    }
    let screen = t.wait_for("EXIT=");
    assert!(!screen.contains("(greeting"), "{screen}");
    assert!(!screen.contains("(connecting"), "{screen}");
    assert!(!screen.contains("(nobody connected)"), "{screen}");
}

/// A client turned away as busy says so once, on its error line.
#[test]
fn a_busy_server_is_reported_once() {
    let (mut s, addr) = Duet::server(&[]);
    let _first = Duet::client(addr, &[]);
    s.expect_event("connected");
    let Some(t) = Tmux::new() else {
        return;
    };
    t.run(&format!(
        "{BIN} client --plain {addr}; echo EXIT=$?; sleep 600"
    ));
    let screen = t.wait_for("EXIT=4");
    assert_eq!(count_lines(&screen, "busy"), 1, "{screen}");
    assert!(screen.contains("duet: server is busy"), "{screen}");
    assert!(!screen.contains("chat ended"), "{screen}");
}

/// Ctrl-Z leaves the prompt and draft on screen once, not twice.
#[test]
fn ctrl_z_shows_the_draft_once() {
    let (mut s, addr) = Duet::server(&[]);
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    s.expect_event("connected");
    t.type_text("draft kept once");
    t.wait_for("> draft kept once");
    t.key("C-z");
    let pid = client_pid(addr);
    eventually("the client to stop", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| st.contains(") T "))
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let screen = t.screen();
    assert_eq!(count_lines(&screen, "draft kept once"), 1, "{screen}");
    // SAFETY: continuing the client we stopped.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    t.key("C-u");
    t.key("C-d");
    t.wait_for("EXIT=0");
}

/// Narrowing the terminal below the prompt's width and widening it again
/// leaves no stale copy of the prompt in the transcript.
#[test]
fn a_resize_leaves_no_stale_prompt() {
    let (mut s, addr) = Duet::server(&["--name", "srv"]);
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    s.expect_event("connected");
    t.resize(90, 24);
    let draft = "a draft that is longer than fifty columns, to be wrapped by the terminal";
    t.type_text(draft);
    t.wait_for("to be wrapped by the terminal");
    t.resize(50, 24);
    std::thread::sleep(std::time::Duration::from_millis(300));
    t.resize(90, 24);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // New output, so the screen is redrawn around the prompt.
    s.send(b"after the resizes\n");
    let screen = t.wait_for("<srv> after the resizes");
    assert_eq!(count_lines(&screen, "a draft that"), 1, "{screen}");
    assert_eq!(count_lines(&screen, "by the terminal"), 1, "{screen}");
    t.key("C-u");
    t.key("C-d");
    t.wait_for("EXIT=0");
}

/// The server in a pane: the first screen hints at /help; a second client
/// is reported turned away, with its address; /next ends the chat, says
/// where the server waits, and the next client is served.
#[test]
fn the_server_hints_reports_busy_and_moves_on_with_next() {
    let Some(t) = Tmux::new() else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    t.run(&format!(
        "{BIN} server --plain --listen 127.0.0.1 --port {port} --name srv; echo EXIT=$?; sleep 600"
    ));
    t.wait_for("* type /help for commands, Ctrl-D to leave");
    let mut first = Duet::client(addr, &["--name", "one"]);
    first.expect_event("connected");
    t.wait_for("* connected to <one>");
    let mut busy = Duet::client(addr, &["--name", "two"]);
    assert_eq!(busy.code(), 4);
    t.wait_for("* turned away 127.0.0.1:");
    t.type_text("/next");
    t.key("Enter");
    let closed = first.expect_event("closed");
    assert!(
        closed["reason"].as_str().unwrap().contains("<srv> left"),
        "{closed}"
    );
    assert_eq!(first.code(), 0);
    t.wait_for("* chat ended: you ended it (/next)");
    t.wait_for(&format!("* waiting for the next client on {addr}"));
    let mut next = Duet::client(addr, &["--name", "three"]);
    next.expect_event("connected");
    t.wait_for("* connected to <three>");
    t.type_text("/help");
    t.key("Enter");
    t.wait_for("commands: /next (server)");
    t.key("C-d");
    t.wait_for("EXIT=0");
}

#[test]
fn bell_rings_for_a_message_when_nobody_types() {
    let (mut s, addr) = Duet::server(&["--name", "srv"]);
    let Some(t) = client_in_tmux(addr, "--bell") else {
        return;
    };
    s.expect_event("connected");
    let bell = || {
        let out = t
            .cmd(&["display-message", "-p", "-t", "main", "#{window_bell_flag}"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(bell(), "0");
    // Nothing typed yet: an incoming message rings.
    s.send(b"ring\x07ring\n");
    t.wait_for("<srv> ring");
    eventually("the bell flag", || bell() == "1");
    t.key("C-d");
    t.wait_for("EXIT=0");
}

#[test]
fn a_long_message_s_mark_quotes_it() {
    let (mut s, addr) = Duet::server(&["--name", "srv"]);
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    s.expect_event("connected");
    let long = "a long message that fills most of the row, so its mark cannot go after it inline";
    t.type_text(long);
    t.key("Enter");
    assert_eq!(s.expect_event("message")["text"], long);
    let screen = t.wait_for("\u{2713} ");
    assert!(
        screen.contains(" ms  \"a long message that fill\u{2026}\""),
        "{screen}"
    );
    assert!(!screen.contains("delivered in"), "{screen}");
    t.key("C-d");
    t.wait_for("EXIT=0");
}

#[test]
fn messages_never_acknowledged_are_listed_at_the_end() {
    let (mut s, addr) = Duet::server(&["--name", "srv"]);
    let Some(t) = client_in_tmux(addr, "--linger 1s") else {
        return;
    };
    s.expect_event("connected");
    s.signal(libc::SIGSTOP);
    t.type_text("never acked");
    t.key("Enter");
    t.wait_for("you> never acked");
    t.key("C-d");
    let screen = t.wait_for("EXIT=");
    s.signal(libc::SIGCONT);
    assert!(
        screen.contains("\u{2717} not delivered: \"never acked\""),
        "{screen}"
    );
    assert!(!screen.contains("\u{2713}"), "{screen}");
    stty_same(&t);
}

/// In a room, the mark beside a typed message says how many members got
/// it and who was slowest.
#[test]
fn a_room_members_mark_counts_the_recipients() {
    let (mut s, addr) = Duet::server(&["--room", "--name", "hub"]);
    let mut bob = Duet::client(addr, &["--name", "bob"]);
    bob.expect_event("joined");
    s.expect_line("<bob> joined from");
    let Some(t) = client_in_tmux(addr, "") else {
        return;
    };
    t.wait_for("* joined the room at");
    t.wait_for("welcome to the room");
    t.type_text("hello room");
    t.key("Enter");
    let screen = t.wait_for("\u{2713} 1/1 ");
    let line = screen
        .lines()
        .find(|l| l.contains("\u{2713} 1/1 "))
        .unwrap_or_default();
    assert!(
        line.starts_with("you> hello room   \u{2713} 1/1 "),
        "{screen}"
    );
    assert!(
        line.trim_end().ends_with(" ms (slowest: <bob>)"),
        "{screen}"
    );
    loop {
        let v = bob.expect_event("message");
        if v["text"] == "hello room" {
            assert_eq!(v["from"], "cli");
            break;
        }
    }
    t.key("C-d");
    let screen = t.wait_for("EXIT=0");
    assert!(screen.contains("to <bob>: 1 delivered"), "{screen}");
    stty_same(&t);
    s.send(b"/quit\n");
    assert_eq!(s.code(), 0);
}
