//! The display: everything that reaches stdout, and the interactive prompt.
//!
//! Events are rendered (by `render`) into one buffer per loop turn and
//! written with as few `write` calls as stdout allows. stdout stays a
//! blocking descriptor: if its reader pauses, the loop waits here and TCP
//! flow control holds the peer back. In interactive mode the display owns
//! the `Editor` and the `Terminal`: output is printed above the prompt, and
//! the prompt with the draft is redrawn after it in the same write.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::mem::ManuallyDrop;
use std::os::fd::{FromRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::core::chat::{self, Screen};
use crate::core::editor::{self, Editor};
use crate::core::escape;
use crate::core::render::{self, Format, Line, Stamp, Style};
use crate::os::error::io_msg;
use crate::os::logging;
use crate::os::stopfd::StopFd;
use crate::os::terminal::Terminal;

/// How long output made only of `sent` events may wait for the next
/// turn's output, to be written together.
const SENT_HOLD: Duration = Duration::from_millis(10);

/// A hold that begins within this long of the previous hold's beginning
/// is a quick one: its deadline goes on the loop's timer (see
/// [`Display::hold_on_timer`]).
const QUICK_HOLD: Duration = Duration::from_micros(30);

/// `sent` records kept unrendered at most: a sender with a full window
/// has up to 65,536 messages unacknowledged, and a `sent` line for each
/// would wait here.
const SENT_MAX: usize = 4096;

/// With `--bell`, a message that comes in after this long without a key
/// typed rings the terminal bell.
pub const BELL_IDLE: Duration = Duration::from_secs(10);

/// Typed messages whose delivery marks are kept at most (typing is slow;
/// this only bounds the memory a stuck peer could make us keep).
const UNACKED_MAX: usize = 4096;

/// Characters of a message quoted in its delivery mark.
const QUOTE_CHARS: usize = 24;

/// Undelivered messages listed one per line at most; more share one line.
const UNDELIVERED_LINES: usize = 3;

/// How long a reading of the wall clock serves for stamping lines.
const WALL_REREAD: Duration = Duration::from_secs(1);

/// stdout, written once per turn with everything rendered in that turn.
pub struct Display {
    format: Format,
    out: Vec<u8>,
    stdout: ManuallyDrop<File>,
    /// stdout cannot be written any more: its reader closed it
    /// (`BrokenPipe`: end quietly) or the write failed (say so, exit 1).
    /// Nothing more is written.
    broken: Option<std::io::Error>,
    style: Style,
    /// Prefix text lines with the local time.
    timestamps: bool,
    /// Interactive mode: the line editor's prompt, redrawn after output.
    prompt: Option<Prompt>,
    /// Since when `sent`-only output has been held back (see `end_turn`).
    held_since: Option<Instant>,
    /// When the last hold began, and whether it began quickly after the
    /// one before it.
    last_hold: Option<Instant>,
    quick_hold: bool,
    /// `sent` lines (JSON only) not rendered yet: id, length, when sent.
    /// They are rendered just before the next other line, or when held
    /// output is written. So a stop-and-wait sender renders its `sent`
    /// line after the ack has been read, with the `ack` line, and not
    /// while the message's round trip runs: on one CPU the peer cannot
    /// answer until we sleep, so rendering then would lengthen the RTT.
    sent: Vec<SentRecord>,
    mono_base: ClockBase,
    /// A wall-clock reading (µs since the epoch) and the instant it was
    /// taken: lines are stamped with it plus the time since (see `wall_at`).
    wall_base: ClockBase,
    /// Reads the wall clock (`wall_us`; a test's own clock in tests).
    wall_clock: fn() -> u64,
    /// A message being shown as it arrives.
    part: Option<Streaming>,
    /// Readable once a stop signal has come: from then on, output that
    /// cannot be written at once is dropped instead of waited for.
    stop: Option<StopFd>,
    /// stdout's flags before we made it nonblocking, to put back.
    stdout_flags: Option<libc::c_int>,
}

/// A `sent` line kept as a record until it is rendered.
#[derive(Debug, Clone, Copy)]
struct SentRecord {
    id: u64,
    len: u64,
    /// When the message was sent: the line's stamp.
    at: Instant,
}

/// A clock's reading (`value`) and the instant it was taken: later stamps
/// are the reading plus the monotonic time since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClockBase {
    at: Instant,
    value: u64,
}

/// Our message on the line just above the prompt, for its inline mark.
struct LastSent {
    id: u64,
    /// The bytes printed for it.
    text: Vec<u8>,
    /// Their width in columns.
    width: usize,
}

/// A message being shown as it arrives (`Display::show_part`).
struct Streaming {
    id: u64,
    /// Its bytes shown so far.
    shown: u64,
    /// The renderer's state between pieces.
    state: render::PartState,
}

impl Display {
    /// A display for `format`, coloured or not, with or without local-time
    /// stamps on text lines.
    pub fn new(format: Format, color: bool, timestamps: bool) -> Display {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes into the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let base = Instant::now();
        Display {
            format,
            out: Vec::with_capacity(64 * 1024),
            // SAFETY: fd 1 stays open for the life of the process; the
            // ManuallyDrop keeps us from closing it.
            stdout: ManuallyDrop::new(unsafe { File::from_raw_fd(1) }),
            broken: None,
            mono_base: ClockBase {
                at: base,
                value: ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
            },
            wall_base: ClockBase {
                at: base,
                value: wall_us(),
            },
            wall_clock: wall_us,
            style: Style::with_color(color),
            timestamps,
            prompt: None,
            held_since: None,
            last_hold: None,
            quick_hold: false,
            sent: Vec::new(),
            part: None,
            stop: None,
            stdout_flags: None,
        }
    }

    /// Makes a stop signal cut short any wait for stdout: `stop` becomes
    /// readable when one comes. A pipe or socket on stdout is made
    /// nonblocking for this (its flags are put back when the display is
    /// dropped); a file never blocks for long, and a terminal's stdout
    /// shares its description with the shell's, so it is left as it is.
    pub fn stop_on(&mut self, stop: StopFd) {
        self.stop = Some(stop);
        // SAFETY: fstat fills a stat we own; fcntl only reads or sets
        // fd 1's status flags.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(1, &mut st) != 0 {
                return;
            }
            let kind = st.st_mode & libc::S_IFMT;
            if kind != libc::S_IFIFO && kind != libc::S_IFSOCK {
                return;
            }
            let flags = libc::fcntl(1, libc::F_GETFL);
            if flags >= 0
                && flags & libc::O_NONBLOCK == 0
                && libc::fcntl(1, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
            {
                self.stdout_flags = Some(flags);
            }
        }
    }

    /// Interactive mode: a prompt with the line editor, on a terminal;
    /// with `bell`, an incoming message after [`BELL_IDLE`] without typing
    /// rings the terminal bell.
    pub fn set_prompt(&mut self, mut prompt: Prompt, bell: bool) {
        prompt.bell = bell;
        self.prompt = Some(prompt);
    }

    /// Rings the bell for an incoming message at `now` if [`should_ring`]
    /// says so, once a turn. The bell is our own byte, written with the
    /// turn's output; the peer's bytes stay escaped.
    fn ring_for_message(&mut self, now: Instant) {
        if let Some(p) = &mut self.prompt
            && !p.rang
            && should_ring(p.bell, true, p.last_key, now)
        {
            p.rang = true;
            self.out.push(0x07);
        }
    }

    /// Whether the line editor's prompt is on screen (a person types).
    #[inline]
    pub fn interactive(&self) -> bool {
        self.prompt.is_some()
    }

    /// Whether stdout cannot be written any more.
    #[inline]
    pub fn is_broken(&self) -> bool {
        self.broken.is_some()
    }

    /// Why stdout could not be written, unless its reader just closed it
    /// (`| head -1`), which is no failure.
    pub fn take_failure(&mut self) -> Option<std::io::Error> {
        self.broken.take_if(|e| e.kind() != ErrorKind::BrokenPipe)
    }

    pub fn show(&mut self, line: &Line<'_>, now: Instant) {
        if self.is_broken() {
            return;
        }
        if let Line::Sent { id, len } = *line {
            if self.format == Format::Jsonl {
                if self.sent.len() >= SENT_MAX {
                    self.render_sent();
                }
                self.sent.push(SentRecord { id, len, at: now });
            }
            return;
        }
        self.render(line, now);
    }

    /// Renders the `sent` lines recorded so far, each stamped with the
    /// time it was sent. The check is inlined: most calls find none.
    #[inline]
    fn render_sent(&mut self) {
        if !self.sent.is_empty() {
            self.render_sent_now();
        }
    }

    #[inline(never)]
    fn render_sent_now(&mut self) {
        // Taken out while rendering borrows the display; put back, so its
        // capacity is kept and a warm display does not allocate.
        let mut sent = std::mem::take(&mut self.sent);
        for &SentRecord { id, len, at } in &sent {
            self.render(&Line::Sent { id, len }, at);
        }
        sent.clear();
        self.sent = sent;
    }

    /// Renders `line`, after any `sent` lines recorded before it.
    fn render(&mut self, line: &Line<'_>, now: Instant) {
        self.render_sent();
        let stamp = match self.format {
            Format::Text => Stamp::default(),
            Format::Jsonl => Stamp {
                wall_us: self.wall_at(now),
                mono_ns: self.mono_base.value
                    + now.saturating_duration_since(self.mono_base.at).as_nanos() as u64,
            },
        };
        if self.timestamps {
            self.style.time = Some(local_time(self.wall_at(now)));
        }
        if let Line::Connected { name, .. } = line {
            self.style.remember_name(name);
        }
        if let Line::Message { .. } | Line::RoomMessage { .. } = line {
            self.ring_for_message(now);
        }
        if let Some(p) = &mut self.prompt {
            let last = p.last_sent.take();
            if let Line::Closed { .. } | Line::TurnedAway { .. } = line
                && !p.unacked.is_empty()
            {
                // The chat is over: what was never acknowledged is said so.
                let quotes: Vec<String> = p.unacked.drain(..).map(|(_, q)| q).collect();
                p.erase(&mut self.out);
                let time = self.style.time.clone().unwrap_or_default();
                undelivered_lines(&quotes, &time, self.style.color, &mut self.out);
            }
            // A delivery mark: `✓ 0.406 ms`, or in a room `✓ 2/2 0.410 ms
            // (slowest: <bob>)`.
            let mark = match line {
                Line::Acked { id, rtt, .. } => Some((
                    *id,
                    format!("\u{2713} {} ms", render::ms(rtt.as_nanos() as u64)),
                )),
                Line::Reached { id, .. } => {
                    Some((*id, format!("\u{2713} {}", render::reached_text(line))))
                }
                _ => None,
            };
            let quote = mark.as_ref().and_then(|(id, _)| {
                let i = p.unacked.iter().position(|(sent, _)| sent == id)?;
                Some(p.unacked.remove(i).1)
            });
            if let (Some((id, mark)), Some(last)) = (&mark, last) {
                let LastSent {
                    id: sent,
                    text,
                    width,
                } = last;
                // Our message is still the line above the prompt: mark it
                // delivered in place.
                if *id == sent && width + 6 + mark.chars().count() < p.columns {
                    self.begin_output();
                    self.out.extend_from_slice(b"\x1b[1A\r\x1b[K");
                    self.out.extend_from_slice(&text);
                    if self.style.color {
                        let _ = writeln!(self.out, "   \x1b[32m{mark}\x1b[0m");
                    } else {
                        let _ = writeln!(self.out, "   {mark}");
                    }
                    return;
                }
            }
            if let (Some((_, mark)), Some(quote)) = (&mark, quote) {
                // Not inline: a mark line that says which message it is.
                p.erase(&mut self.out);
                let time = self.style.time.clone().unwrap_or_default();
                mark_line(mark, &quote, &time, self.style.color, &mut self.out);
                return;
            }
        }
        self.begin_output();
        let Display {
            format,
            out,
            stdout,
            broken,
            style,
            stop,
            ..
        } = self;
        let stop = stop.as_ref().map(StopFd::raw);
        render::render_in_pieces(*format, line, stamp, style, out, &mut |out| {
            write_out(stdout, out, broken, stop);
        });
        if out.len() >= render::PIECE {
            // Many short lines in one turn (a flood of empty messages or
            // acks): written as they add up, not held until the turn ends.
            write_out(stdout, out, broken, stop);
        }
    }

    /// Shows the next piece of a message as it arrives (text output, no
    /// prompt); `last` when it completes the message.
    pub fn show_part(&mut self, from: &[u8], id: u64, data: &[u8], last: bool, now: Instant) {
        if self.is_broken() {
            return;
        }
        self.render_sent();
        let first = self.part.as_ref().is_none_or(|p| p.id != id);
        if first && self.timestamps {
            self.style.time = Some(local_time(self.wall_at(now)));
        }
        let part = match &mut self.part {
            Some(p) if !first => p,
            p => p.insert(Streaming {
                id,
                shown: 0,
                state: render::PartState::default(),
            }),
        };
        part.shown += data.len() as u64;
        render::text_part(
            from,
            data,
            first,
            last,
            &self.style,
            &mut part.state,
            &mut self.out,
        );
        if last {
            self.part = None;
        }
        if self.out.len() >= render::PIECE {
            let stop = self.stop.as_ref().map(StopFd::raw);
            write_out(&mut self.stdout, &mut self.out, &mut self.broken, stop);
        }
    }

    /// The chat ended while a message was being shown as it arrived: end
    /// its line and say that it was cut off (it was never acknowledged).
    pub fn cut_off(&mut self, from: &[u8], now: Instant) {
        let Some(Streaming {
            id,
            shown,
            mut state,
        }) = self.part.take()
        else {
            return;
        };
        render::text_part(
            from,
            b"",
            false,
            true,
            &self.style,
            &mut state,
            &mut self.out,
        );
        let message = format!("message #{id} was cut off after {shown} bytes (not acknowledged)");
        self.show(&Line::Error { message: &message }, now);
    }

    /// The wall clock at `now`, in µs since the epoch: the last reading of
    /// it plus the monotonic time since. The wall clock is read again once
    /// a second has passed (so a step in it shows within a second), not for
    /// every line: a piped client stamps two lines per message, and each
    /// reading has a cost on the ack path (docs/PERFORMANCE.md).
    fn wall_at(&mut self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.wall_base.at);
        if since >= WALL_REREAD {
            self.wall_base = ClockBase {
                at: now,
                value: (self.wall_clock)(),
            };
            return self.wall_base.value;
        }
        self.wall_base.value + since.as_micros() as u64
    }

    /// In interactive mode, the first output of a turn clears the prompt
    /// line it will be printed over.
    pub fn begin_output(&mut self) {
        if let Some(p) = self.prompt.as_mut() {
            p.erase(&mut self.out);
        }
    }

    /// Echoes a message we sent at `now`, above the prompt, and remembers
    /// it for the inline delivery mark. Every line carries the tag, and
    /// with `--timestamps` the time it was sent.
    pub fn echo_sent(&mut self, id: u64, data: &[u8], now: Instant) {
        self.begin_output();
        let tag = if self.style.color {
            "\x1b[1;32myou>\x1b[0m "
        } else {
            "you> "
        };
        let marks = self.style.color.then_some(("\x1b[7m", "\x1b[27m"));
        let time = if self.timestamps {
            local_time(self.wall_at(now))
        } else {
            String::new()
        };
        let mut lines = Vec::new();
        for (i, part) in data.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                lines.push(b'\n');
            }
            lines.extend_from_slice(time.as_bytes());
            lines.extend_from_slice(tag.as_bytes());
            escape::escape_marked(part, false, marks, &mut lines);
        }
        self.out.extend_from_slice(&lines);
        self.out.push(b'\n');
        if let Some(p) = &mut self.prompt {
            if p.unacked.len() < UNACKED_MAX {
                p.unacked.push((id, quote(data)));
            }
            let width = time.len() + 5 + editor::str_width(&escape::escape_to_string(data));
            p.last_sent = (!data.contains(&b'\n')).then_some(LastSent {
                id,
                text: lines,
                width,
            });
        }
    }

    /// Writes what this turn rendered, in as few `write` calls as the pipe
    /// allows, with the prompt redrawn after it in the same write. stdout
    /// is left blocking: if its reader pauses, the loop waits here and TCP
    /// flow control holds the peer back.
    pub fn flush(&mut self) {
        if let Some(p) = self.prompt.as_mut().filter(|p| p.hint) {
            // The first screen with a prompt says where help is.
            p.hint = false;
            let message = chat::HINT;
            self.show(&Line::Notice { message }, Instant::now());
        }
        self.render_sent();
        self.held_since = None;
        if let Some(p) = &mut self.prompt {
            p.rang = false;
            let held = logging::take_held();
            if !held.is_empty() {
                p.erase(&mut self.out);
                self.out.extend_from_slice(&held);
                p.last_sent = None;
            }
            if !self.out.is_empty() || p.dirty {
                p.erase(&mut self.out);
                let mut label = p.label.as_str();
                let mut width = editor::str_width(label);
                if !Editor::label_fits(width, p.columns) {
                    (label, width) = ("> ", 2);
                }
                let label = if self.style.color {
                    format!("\x1b[1m{label}\x1b[0m")
                } else {
                    label.to_string()
                };
                p.cursor_col = p.editor.render(&label, width, p.columns, &mut self.out);
                p.drawn_at = p.columns;
                p.visible = true;
                p.dirty = false;
            }
        }
        let stop = self.stop.as_ref().map(StopFd::raw);
        write_out(&mut self.stdout, &mut self.out, &mut self.broken, stop);
        if self.out.capacity() > 4 * render::PIECE {
            self.out.shrink_to(render::PIECE);
        }
        if self.sent.capacity() > 4096 {
            self.sent.shrink_to(64);
        }
    }

    /// The end of a loop turn: write what it rendered, except that output
    /// made only of `sent` events is held for up to [`SENT_HOLD`], so that
    /// a stop-and-wait sender writes its `sent` and `ack` lines in one
    /// `write` when the ack comes back within that time. Inlined: both
    /// the one-on-one turn and a room's call it, and on the former's ack
    /// path a call costs more than its usual answer (nothing to write).
    #[inline(always)]
    pub fn end_turn(&mut self, now: Instant) {
        if self.out.is_empty() && self.sent.is_empty() && self.prompt.is_none() {
            // Nothing to write: what `flush` would do, without its call
            // (every turn of `duet bench` ends here).
            self.held_since = None;
            return;
        }
        // Only `sent` lines are held, as records (anything rendered is
        // rendered after them, and written): here they are all there is.
        let hold = self.prompt.is_none()
            && self.out.is_empty()
            && self.held_since.is_none_or(|t| now < t + SENT_HOLD);
        if hold {
            if self.held_since.is_none() {
                self.quick_hold = self
                    .last_hold
                    .is_some_and(|t| now.saturating_duration_since(t) < QUICK_HOLD);
                self.last_hold = Some(now);
                self.held_since = Some(now);
            }
            return;
        }
        self.flush();
    }

    /// When held output must be written at the latest.
    pub fn deadline(&self) -> Option<Instant> {
        self.held_since.map(|t| t + SENT_HOLD)
    }

    /// Whether the loop's timer should carry the hold's deadline, rather
    /// than the wait's own timeout. A wait with a timeout makes the kernel
    /// arm and cancel a timer for that wait, for every message of a
    /// stop-and-wait sender (docs/PERFORMANCE.md). The loop's
    /// timer is left armed and serves every hold until it fires, but that
    /// costs three or four syscalls (the wake-up, reading it, setting it
    /// again, once or twice), and it fires 10 ms after a run of holds has
    /// ended. So it is worth it
    /// only when holds follow each other quickly, each within
    /// [`QUICK_HOLD`] of the one before: at full speed, once per 10 ms for
    /// hundreds of messages; a slow sender keeps the timeout and makes no
    /// syscall for its holds.
    pub fn hold_on_timer(&self) -> bool {
        self.held_since.is_some() && self.quick_hold
    }

    /// Keys typed in interactive mode: the editor's actions.
    pub fn handle_keys(&mut self, bytes: &[u8], now: Instant) -> Vec<editor::Action> {
        match &mut self.prompt {
            Some(p) => {
                p.dirty = true;
                p.last_key = Some(now);
                p.editor.handle_bytes(bytes)
            }
            None => Vec::new(),
        }
    }

    /// Ctrl-L.
    pub fn clear_screen(&mut self) {
        self.out.extend_from_slice(b"\x1b[H\x1b[2J");
        if let Some(p) = &mut self.prompt {
            p.visible = false;
            p.dirty = true;
        }
    }

    /// SIGWINCH: measure the terminal again and redraw.
    pub fn resized(&mut self) {
        if let Some(p) = &mut self.prompt {
            p.columns = Terminal::columns();
            p.dirty = true;
        }
    }

    /// Before stopping: the terminal as it was, the prompt and draft left
    /// on screen once, and the cursor on the next line for the shell.
    pub fn suspend_terminal(&mut self) {
        self.flush();
        if let Some(p) = &mut self.prompt {
            p.terminal.suspend();
            self.out.extend_from_slice(b"\r\n");
            p.visible = false;
            p.dirty = true;
            // Written as it is: a flush would draw the prompt again below.
            let stop = self.stop.as_ref().map(StopFd::raw);
            write_out(&mut self.stdout, &mut self.out, &mut self.broken, stop);
        }
    }

    /// After continuing: cbreak mode again, and a redraw.
    pub fn resume_terminal(&mut self) {
        if let Some(p) = &mut self.prompt {
            if let Err(e) = p.terminal.resume() {
                log::warn!("cannot set up the terminal again: {}", io_msg(&e));
            }
            p.columns = Terminal::columns();
            p.dirty = true;
        }
    }

    /// At exit: the prompt line is cleared (its label would be stale once
    /// we are gone); an unsent draft stays, after a bare `> `, with a new
    /// line below it for the shell. The terminal is given back.
    pub fn leave_terminal(&mut self) {
        self.flush();
        if let Some(mut p) = self.prompt.take() {
            p.erase(&mut self.out);
            if !p.editor.draft().is_empty() {
                p.editor.render("> ", 2, p.columns, &mut self.out);
                self.out.extend_from_slice(b"\r\n");
            }
            let stop = self.stop.as_ref().map(StopFd::raw);
            write_out(&mut self.stdout, &mut self.out, &mut self.broken, stop);
            p.terminal.suspend();
            logging::capture(false);
        }
    }

    /// Sets the prompt's label (redrawn at the next flush if it changed).
    pub fn set_label(&mut self, label: String) {
        if let Some(p) = self.prompt.as_mut().filter(|p| p.label != label) {
            p.label = label;
            p.dirty = true;
        }
    }
}

impl Screen for Display {
    fn show(&mut self, line: &Line<'_>, now: Instant) {
        Display::show(self, line, now);
    }

    fn show_part(&mut self, from: &[u8], id: u64, data: &[u8], last: bool, now: Instant) {
        Display::show_part(self, from, id, data, last, now);
    }

    fn cut_off(&mut self, from: &[u8], now: Instant) {
        Display::cut_off(self, from, now);
    }

    fn echo_sent(&mut self, id: u64, data: &[u8], now: Instant) {
        Display::echo_sent(self, id, data, now);
    }
}

/// The interactive prompt at the bottom of the screen.
pub struct Prompt {
    editor: Editor,
    terminal: Terminal,
    label: String,
    columns: usize,
    /// The prompt is on screen (the cursor is on its line).
    visible: bool,
    /// Redraw at the next flush even without new output.
    dirty: bool,
    /// The line just above the prompt is our message: its id, the bytes
    /// printed, and their width (for the inline delivery mark).
    last_sent: Option<LastSent>,
    /// The terminal's width when the prompt was drawn, and the cursor's
    /// column then (see [`Prompt::erase`]).
    drawn_at: usize,
    cursor_col: usize,
    /// The hint (`chat::HINT`) is still to be shown.
    hint: bool,
    /// Our messages not acknowledged yet, oldest first, each with the start
    /// of its text (see [`quote`]), for its delivery mark.
    unacked: Vec<(u64, String)>,
    /// `--bell`; when a key was last typed; whether this turn has rung.
    bell: bool,
    last_key: Option<Instant>,
    rang: bool,
}

impl Prompt {
    /// A fresh prompt on a terminal already in cbreak mode.
    pub fn new(terminal: Terminal) -> Prompt {
        Prompt {
            editor: Editor::new(),
            terminal,
            label: String::new(),
            columns: Terminal::columns(),
            visible: false,
            dirty: true,
            last_sent: None,
            drawn_at: 0,
            cursor_col: 0,
            hint: true,
            unacked: Vec::new(),
            bell: false,
            last_key: None,
            rang: false,
        }
    }

    /// Erases the prompt from the screen, if it is there. After a resize,
    /// a terminal that rewraps its lines (tmux, VTE, kitty, iTerm2,
    /// Windows Terminal) has wrapped a prompt wider than the new width
    /// onto several rows, the cursor on one of them: erasing goes up to
    /// the first of them and clears to the end of the screen.
    fn erase(&mut self, out: &mut Vec<u8>) {
        if !self.visible {
            return;
        }
        self.visible = false;
        let rows = match self.columns {
            0 => 0,
            c if c != self.drawn_at => self.cursor_col / c,
            _ => 0,
        };
        out.extend_from_slice(b"\r");
        if rows > 0 {
            let _ = write!(out, "\x1b[{rows}A");
        }
        out.extend_from_slice(b"\x1b[J");
    }
}

/// Whether an incoming message at `now` rings the bell: with `--bell`, in
/// interactive mode, when no key has been typed for [`BELL_IDLE`] (or
/// none yet).
pub fn should_ring(bell: bool, interactive: bool, last_key: Option<Instant>, now: Instant) -> bool {
    bell && interactive && last_key.is_none_or(|k| now.saturating_duration_since(k) >= BELL_IDLE)
}

/// The start of a message we sent, escaped (so a newline shows as `\n`)
/// and cut to [`QUOTE_CHARS`] characters with `…`, between quotes: what
/// its delivery mark shows so it says which message it belongs to.
fn quote(data: &[u8]) -> String {
    let escaped = escape::escape_to_string(data);
    let mut chars = escaped.chars();
    let mut q: String = chars.by_ref().take(QUOTE_CHARS).collect();
    if chars.next().is_some() {
        q.push('\u{2026}');
    }
    format!("\"{q}\"")
}

/// A delivery mark on a line of its own: `✓ 0.406 ms  "the start…"`.
fn mark_line(mark: &str, quote: &str, time: &str, color: bool, out: &mut Vec<u8>) {
    if color {
        let _ = writeln!(out, "{time}\x1b[32m{mark}\x1b[0m  {quote}");
    } else {
        let _ = writeln!(out, "{time}{mark}  {quote}");
    }
}

/// The chat ended with these messages unacknowledged: one
/// `✗ not delivered: "…"` line each, or one line for them all when there
/// are more than [`UNDELIVERED_LINES`].
fn undelivered_lines(quotes: &[String], time: &str, color: bool, out: &mut Vec<u8>) {
    let (on, off) = if color {
        ("\x1b[31m", "\x1b[0m")
    } else {
        ("", "")
    };
    if quotes.len() <= UNDELIVERED_LINES {
        for q in quotes {
            let _ = writeln!(out, "{time}{on}\u{2717} not delivered:{off} {q}");
        }
    } else if let [first, .., last] = quotes {
        let n = quotes.len();
        let _ = writeln!(
            out,
            "{time}{on}\u{2717} {n} messages not delivered:{off} {first} to {last}"
        );
    }
}

/// `HH:MM:SS ` in local time.
fn local_time(wall_us: u64) -> String {
    let t = (wall_us / 1_000_000) as libc::time_t;
    // SAFETY: localtime_r fills the tm we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&t, &mut tm) };
    format!("{:02}:{:02}:{:02} ", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// Microseconds since the Unix epoch.
fn wall_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Some(flags) = self.stdout_flags {
            // SAFETY: puts back fd 1's status flags as we found them.
            unsafe { libc::fcntl(1, libc::F_SETFL, flags) };
        }
    }
}

/// Writes and clears `out`; when stdout cannot be written, keeps why in
/// `broken` and drops the output. Once `stop` is readable (a stop signal
/// came), what stdout cannot take at once is dropped: a stop never waits
/// on stdout.
fn write_out(
    stdout: &mut File,
    out: &mut Vec<u8>,
    broken: &mut Option<std::io::Error>,
    stop: Option<RawFd>,
) {
    let mut done = 0;
    while done < out.len() && broken.is_none() {
        match stdout.write(&out[done..]) {
            Ok(0) => *broken = Some(ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if !wait_writable(1, stop) {
                    log::debug!("stopping: {} bytes of output dropped", out.len() - done);
                    break;
                }
            }
            Err(e) => *broken = Some(e),
        }
    }
    out.clear();
}

/// Blocks until `fd` is writable (true) or `stop` is readable (false).
fn wait_writable(fd: RawFd, stop: Option<RawFd>) -> bool {
    let mut fds = [
        libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        },
        libc::pollfd {
            // A negative descriptor is ignored by poll.
            fd: stop.unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two pollfds we own. EINTR and the like just return to the
    // caller, which tries the write again.
    unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
    fds[1].revents == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_stamps_follow_the_monotonic_clock_and_reread_each_second() {
        let mut d = Display::new(Format::Jsonl, false, false);
        let t0 = Instant::now();
        d.wall_base = ClockBase {
            at: t0,
            value: 1_000_000,
        };
        assert_eq!(d.wall_at(t0), 1_000_000);
        assert_eq!(d.wall_at(t0 + Duration::from_micros(250_500)), 1_250_500);
        assert_eq!(d.wall_at(t0 + Duration::from_millis(999)), 1_999_000);
        // An older instant than the reading does not go back before it.
        d.wall_base = ClockBase {
            at: t0 + Duration::from_millis(5),
            value: 1_000_000,
        };
        assert_eq!(d.wall_at(t0), 1_000_000);
        // A second on, the wall clock is read again.
        let later = t0 + WALL_REREAD + Duration::from_millis(5);
        let stamp = d.wall_at(later);
        let wall = wall_us();
        assert!(
            stamp <= wall && wall - stamp < 60_000_000,
            "{stamp} vs {wall}"
        );
        assert_eq!(
            d.wall_base,
            ClockBase {
                at: later,
                value: stamp
            }
        );
    }

    /// The wall clock of `stamps_of_our_own_lines_are_true_after_idling`.
    static FAKE_WALL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    fn fake_wall() -> u64 {
        FAKE_WALL.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// With `--timestamps`, a line we send after idling carries the time
    /// it was sent, not the time of the last line shown before the idle.
    #[test]
    fn stamps_of_our_own_lines_are_true_after_idling() {
        use std::sync::atomic::Ordering::Relaxed;
        let mut d = Display::new(Format::Text, false, true);
        d.wall_clock = fake_wall;
        let t0 = Instant::now();
        let start = 1_800_000_000_500_000; // µs since the epoch, half a second in
        FAKE_WALL.store(start, Relaxed);
        d.wall_base = ClockBase {
            at: t0,
            value: start,
        };
        d.show(&Line::Error { message: "before" }, t0);
        let first = String::from_utf8(std::mem::take(&mut d.out)).unwrap();
        assert_eq!(first, format!("{}* error: before\n", local_time(start)));
        // Twelve seconds idle, by both clocks; then a line is sent.
        let idle = Duration::from_secs(12);
        FAKE_WALL.store(start + idle.as_micros() as u64, Relaxed);
        d.echo_sent(1, b"after", t0 + idle);
        let echoed = String::from_utf8(std::mem::take(&mut d.out)).unwrap();
        let want = local_time(start + idle.as_micros() as u64);
        assert_eq!(echoed, format!("{want}you> after\n"));
        // Within the second, stamps follow the monotonic clock.
        d.echo_sent(2, b"soon", t0 + idle + Duration::from_millis(700));
        let echoed = String::from_utf8(std::mem::take(&mut d.out)).unwrap();
        let want = local_time(start + 12_700_000);
        assert_ne!(want, local_time(start + 12_000_000), "the next second");
        assert_eq!(echoed, format!("{want}you> soon\n"));
    }

    /// A JSON display whose stdout is a pipe; returns the pipe's other end
    /// (nonblocking), to read what was written.
    fn piped(t0: Instant) -> (Display, File) {
        let mut d = Display::new(Format::Jsonl, false, false);
        d.mono_base = ClockBase {
            at: t0,
            value: 1_000,
        };
        d.wall_base = ClockBase {
            at: t0,
            value: 1_000,
        };
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills in two descriptors that we then own.
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK) },
            0
        );
        // SAFETY: both descriptors are fresh and owned from here on; the
        // ManuallyDrop's leak of the write end is fine in a test.
        let (read, write) = unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        d.stdout = ManuallyDrop::new(write);
        (d, read)
    }

    /// What was written to the pipe so far, as lines.
    fn written(pipe: &mut File) -> Vec<String> {
        let mut buf = vec![0u8; 64 * 1024];
        match std::io::Read::read(pipe, &mut buf) {
            Ok(n) => String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(str::to_string)
                .collect(),
            Err(e) if e.kind() == ErrorKind::WouldBlock => Vec::new(),
            Err(e) => panic!("reading the pipe: {e}"),
        }
    }

    const US: Duration = Duration::from_micros(1);

    #[test]
    fn a_mark_quotes_the_start_of_its_message() {
        assert_eq!(quote(b"hi"), "\"hi\"");
        assert_eq!(
            quote(b"first words of the message, and more"),
            "\"first words of the messa\u{2026}\""
        );
        assert_eq!(quote(b"two\nlines"), "\"two\\nlines\"");
        // A peer cannot be quoted here, but our own control bytes are
        // escaped all the same.
        let bel = escape::escape_to_string(b"\x07");
        assert_ne!(bel, "\x07");
        assert_eq!(quote(b"\x07"), format!("\"{bel}\""));
        let mut out = Vec::new();
        mark_line(
            "\u{2713} 0.406 ms",
            &quote(b"first words of the message, and more"),
            "",
            false,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\u{2713} 0.406 ms  \"first words of the messa\u{2026}\"\n"
        );
    }

    #[test]
    fn undelivered_messages_are_listed_at_the_end() {
        let quotes: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|m| quote(m.as_bytes()))
            .collect();
        let mut out = Vec::new();
        undelivered_lines(&quotes[..2], "", false, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\u{2717} not delivered: \"a\"\n\u{2717} not delivered: \"b\"\n"
        );
        let mut out = Vec::new();
        undelivered_lines(&quotes, "12:00:00 ", false, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "12:00:00 \u{2717} 4 messages not delivered: \"a\" to \"d\"\n"
        );
        let mut out = Vec::new();
        undelivered_lines(&[], "", false, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn the_bell_rings_only_when_asked_interactive_and_idle() {
        let t0 = Instant::now();
        let idle = t0 + BELL_IDLE;
        assert!(should_ring(true, true, None, t0), "nothing typed yet");
        assert!(should_ring(true, true, Some(t0), idle));
        assert!(!should_ring(true, true, Some(t0), idle - US), "typing");
        assert!(!should_ring(false, true, Some(t0), idle), "no --bell");
        assert!(!should_ring(true, false, None, idle), "not interactive");
        // A key typed "after" now (clocks read in another order) is recent.
        assert!(!should_ring(true, true, Some(idle), t0));
    }

    #[test]
    fn a_sent_line_waits_unrendered_and_leaves_with_the_ack_stamped_when_sent() {
        let t0 = Instant::now();
        let (mut d, mut pipe) = piped(t0);
        d.show(&Line::Sent { id: 1, len: 16 }, t0);
        assert!(d.out.is_empty(), "not rendered yet");
        d.end_turn(t0 + US);
        assert_eq!(d.deadline(), Some(t0 + US + SENT_HOLD), "held");
        assert!(written(&mut pipe).is_empty());
        let rtt = 8 * US;
        d.show(
            &Line::Acked {
                id: 1,
                len: 16,
                rtt,
            },
            t0 + rtt,
        );
        d.end_turn(t0 + rtt);
        let lines = written(&mut pipe);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with(r#"{"event":"sent","ts_us":1000,"mono_ns":1000,"id":1,"#));
        assert!(lines[1].starts_with(r#"{"event":"ack","ts_us":1008,"mono_ns":9000,"id":1,"#));
        assert_eq!(d.deadline(), None);
        assert!(d.sent.is_empty());
    }

    #[test]
    fn a_held_sent_line_is_written_when_its_hold_ends() {
        let t0 = Instant::now();
        let (mut d, mut pipe) = piped(t0);
        d.show(&Line::Sent { id: 1, len: 16 }, t0);
        d.end_turn(t0);
        d.show(&Line::Sent { id: 2, len: 16 }, t0 + 5 * US);
        d.end_turn(t0 + SENT_HOLD - US);
        assert!(written(&mut pipe).is_empty(), "still within the hold");
        d.end_turn(t0 + SENT_HOLD);
        let lines = written(&mut pipe);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains(r#""event":"sent","ts_us":1000,"#));
        assert!(lines[1].contains(r#""event":"sent","ts_us":1005,"#));
    }

    #[test]
    fn text_output_records_no_sent_lines() {
        let mut d = Display::new(Format::Text, false, false);
        let t0 = Instant::now();
        d.show(&Line::Sent { id: 1, len: 16 }, t0);
        d.end_turn(t0);
        assert!(d.sent.is_empty() && d.out.is_empty());
        assert_eq!(d.deadline(), None);
    }

    /// A flood of short lines in one turn neither piles up `sent`
    /// records nor grows the output buffer past a piece.
    #[test]
    fn a_flood_of_lines_keeps_the_buffers_small() {
        let t0 = Instant::now();
        let mut d = Display::new(Format::Jsonl, false, false);
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null");
        d.stdout = ManuallyDrop::new(null.expect("/dev/null"));
        for id in 0..100_000 {
            d.show(&Line::Sent { id, len: 0 }, t0);
            assert!(d.sent.len() <= SENT_MAX);
            assert!(d.out.len() < render::PIECE + 1024);
        }
        let rtt = Duration::from_micros(5);
        for id in 0..100_000 {
            d.show(&Line::Acked { id, len: 0, rtt }, t0);
            assert!(d.out.len() < render::PIECE + 1024);
        }
        assert!(!d.is_broken());
    }

    /// Holds go on the loop's timer only when each begins within
    /// `QUICK_HOLD` of the one before.
    #[test]
    fn only_quick_holds_go_on_the_timer() {
        let t0 = Instant::now();
        let (mut d, mut pipe) = piped(t0);
        let hold_at = |d: &mut Display, at: Instant, id: u64| {
            d.show(&Line::Sent { id, len: 16 }, at);
            d.end_turn(at);
            let on_timer = d.hold_on_timer();
            let rtt = 5 * US;
            d.show(&Line::Acked { id, len: 16, rtt }, at + rtt);
            d.end_turn(at + rtt);
            assert!(!d.hold_on_timer(), "nothing held after the ack");
            on_timer
        };
        assert!(!hold_at(&mut d, t0, 1), "the first hold");
        let quick = t0 + QUICK_HOLD - US;
        assert!(hold_at(&mut d, quick, 2));
        assert!(!hold_at(&mut d, quick + QUICK_HOLD, 3), "not quick");
        assert!(hold_at(&mut d, quick + QUICK_HOLD + 20 * US, 4));
        assert_eq!(written(&mut pipe).len(), 8);
    }
}
