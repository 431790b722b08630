//! Turning chat events into output bytes: a text transcript or JSON lines,
//! and escaping every untrusted byte on the way.
//!
//! Pure code: it appends to a caller's buffer and never writes anywhere.
//! Untrusted bytes (messages, names, BYE details) never reach the output
//! raw: printable UTF-8 passes (emoji included); C0 and C1 controls, DEL,
//! bidi and invisible format characters, backslash, and invalid UTF-8
//! become visible escapes (`\x1b`, `\u{202e}`, `\xff`, `\\`). In JSON the
//! same characters become `\uXXXX` escapes, so a JSON stream printed on a
//! terminal is as safe as the transcript.
//!
//! A peer's name always appears bracketed, `<name>` (escaped, with its
//! spaces and brackets escaped too): its message lines start `<name> `,
//! our own start `you> `, duet's notices `* ` or `--- `, so no name a peer
//! picks (`you`, `*`, a look-alike) can pass for us or for duet.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use crate::core::escape::{
    MAX_UNIT, escape_marked, escape_name, incomplete, incomplete_tail, peer_label, plain_run,
    unit_len,
};
use crate::core::protocol::ReceiptStatus;
use crate::core::rtt::RttSummary;
use crate::core::session::Stats;
use json::jsonl;
pub use json::{base64_into, json_str};

/// Output format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line.
    Jsonl,
}

/// When an event was rendered: wall clock and CLOCK_MONOTONIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Microseconds since the Unix epoch.
    pub wall_us: u64,
    /// CLOCK_MONOTONIC in nanoseconds (comparable with `perf`/`strace -T`).
    pub mono_ns: u64,
}

/// How text lines are dressed for a terminal.
#[derive(Debug, Clone, Default)]
pub struct Style {
    /// ANSI colour: tags and status lines coloured, escapes in reverse video.
    pub color: bool,
    /// A prefix for every line (for `--timestamps`), e.g. `12:34:56 `.
    pub time: Option<String>,
    /// The peer's name and its escaped form for tags, computed once per
    /// chat (`remember_name`) instead of once per line.
    name: Option<(Vec<u8>, Vec<u8>)>,
}

impl Style {
    /// The default style, coloured or not.
    pub fn with_color(color: bool) -> Style {
        Style {
            color,
            ..Style::default()
        }
    }

    /// Escapes `name` for the tags of the chat that starts now.
    pub fn remember_name(&mut self, name: &[u8]) {
        let mut escaped = Vec::with_capacity(name.len());
        escape_name(name, &mut escaped);
        self.name = Some((name.to_vec(), escaped));
    }
}

const SGR_RESET: &str = "\x1b[0m";

/// One thing to show.
#[derive(Debug, Clone, Copy)]
pub enum Line<'a> {
    Listening {
        addr: SocketAddr,
    },
    Connected {
        peer: SocketAddr,
        name: &'a [u8],
        /// The peer's key, when the chat is encrypted.
        key: Option<&'a PeerKey>,
    },
    Sent {
        id: u64,
        len: u64,
    },
    Acked {
        id: u64,
        len: u64,
        rtt: Duration,
    },
    Message {
        id: u64,
        from: &'a [u8],
        data: &'a [u8],
    },
    /// A message in a room, at a member or at the hub: shown as
    /// [`Line::Message`], and its JSON names the sender (`from`).
    RoomMessage {
        id: u64,
        from: &'a [u8],
        data: &'a [u8],
    },
    /// A room member: we joined the room of the hub `name` at `peer`.
    Joined {
        peer: SocketAddr,
        name: &'a [u8],
    },
    Closed {
        reason: &'a str,
    },
    /// A server busy with another chat turned us away: no chat began.
    /// Text output shows nothing (the error line on stderr says it once);
    /// JSON has its `closed` event.
    TurnedAway {
        reason: &'a str,
    },
    Error {
        message: &'a str,
    },
    /// A notice from duet: help, a hint, what the server does next.
    Notice {
        message: &'a str,
    },
    /// The chat's figures. In JSON, `peer` is the address, as in
    /// `connected`, and `name` the name.
    Summary {
        peer: &'a [u8],
        addr: SocketAddr,
        stats: &'a Stats,
        encrypted: bool,
        /// A room member: the RTT figures of each recipient of our
        /// messages, from its receipts (`None` outside a room).
        recipients: Option<&'a [RecipientFigures<'a>]>,
    },
    /// Room mode: one of the hub's own messages reached every recipient
    /// (each acknowledged it, left first, or was too small for it).
    /// `slowest` is the longest RTT among those that acknowledged it.
    Reached {
        id: u64,
        len: u64,
        reached: u64,
        of: u64,
        slowest: Option<(Duration, &'a [u8])>,
        recipients: &'a [(&'a [u8], Result<Duration, ReceiptStatus>)],
    },
    /// `duet bench` results: the summary plus throughput.
    Bench {
        peer: &'a [u8],
        addr: SocketAddr,
        size: u64,
        window: u64,
        elapsed: Duration,
        stats: &'a Stats,
    },
}
/// One recipient's figures in a room member's summary: from the send of
/// each of our messages to its receipt from this recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientFigures<'a> {
    /// Its name in the room; `None` for the recipients beyond those
    /// counted by name, pooled.
    pub name: Option<&'a [u8]>,
    /// Receipts that said delivered.
    pub n: u64,
    pub min: Duration,
    pub avg: Duration,
    pub max: Duration,
}

/// The peer's key in an encrypted chat, as shown when it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerKey {
    /// Its fingerprint, as `duet id` prints it.
    pub fingerprint: String,
    /// The safety code of both keys: the same on both screens.
    pub safety: String,
    /// First contact: the `known_peers` file the key was added to.
    pub remembered: Option<String>,
}

/// Appends `line` to `out` in `format`.
pub fn render(format: Format, line: &Line<'_>, stamp: Stamp, out: &mut Vec<u8>) {
    render_in_pieces(format, line, stamp, &Style::default(), out, &mut |_| {});
}

/// Bytes of a message rendered between calls to the `drain` callback.
pub const PIECE: usize = 256 * 1024;

/// Like [`render`], but a long message is rendered [`PIECE`] bytes at a
/// time, and `drain` is called with the output so far between pieces (it
/// writes and clears it). Output memory stays small whatever the message
/// size; the bytes produced are the same as [`render`]'s.
pub fn render_in_pieces(
    format: Format,
    line: &Line<'_>,
    stamp: Stamp,
    style: &Style,
    out: &mut Vec<u8>,
    drain: &mut dyn FnMut(&mut Vec<u8>),
) {
    match format {
        Format::Text => text(line, style, out, drain),
        Format::Jsonl => jsonl(line, stamp, out, drain),
    }
}

/// Splits `bytes` into pieces of about [`PIECE`] bytes, never inside a
/// UTF-8 sequence (a cut moves back before continuation bytes).
fn pieces(bytes: &[u8], align: usize) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(PIECE);
        if align > 1 {
            if cut < rest.len() {
                cut -= cut % align;
            }
        } else {
            let mut back = 0;
            while cut < rest.len() && back < 3 && rest[cut] & 0xc0 == 0x80 {
                cut -= 1;
                back += 1;
            }
        }
        let (piece, tail) = rest.split_at(cut);
        rest = tail;
        Some(piece)
    })
}

fn text(line: &Line<'_>, style: &Style, out: &mut Vec<u8>, drain: &mut dyn FnMut(&mut Vec<u8>)) {
    let start = out.len();
    match *line {
        Line::Listening { addr } => {
            let _ = writeln!(out, "* listening on {addr}");
        }
        Line::Connected { peer, name, key } => {
            let _ = writeln!(out, "* connected to {} ({peer})", peer_label(name));
            if let Some(k) = key {
                let _ = writeln!(
                    out,
                    "* encrypted; key {}, safety code {}",
                    k.fingerprint, k.safety
                );
                if let Some(path) = &k.remembered {
                    let _ = writeln!(out, "* first contact: key remembered in {path}");
                }
            }
        }
        // The sender sees its own words already; the ack line reports them.
        Line::Sent { .. } => {}
        Line::Acked { id, len, rtt } => {
            out.extend_from_slice(b"* #");
            push_u64(out, id);
            out.extend_from_slice(b" delivered in ");
            push_thousandths(out, rtt.as_nanos() as u64 / 1_000);
            out.extend_from_slice(b" ms (");
            push_u64(out, len);
            out.extend_from_slice(b" B)\n");
        }
        Line::Message { from, data, .. } | Line::RoomMessage { from, data, .. } => {
            // Every physical line carries the tag, so a message cannot
            // forge a line that looks like ours. A whole message renders as
            // the pieces of one shown as it arrives, drained between them.
            let mut state = PartState::default();
            let mut rest = data;
            let mut first = true;
            loop {
                let (piece, tail) = rest.split_at(rest.len().min(PIECE));
                text_part(from, piece, first, tail.is_empty(), style, &mut state, out);
                if out.len() >= PIECE {
                    drain(out);
                }
                if tail.is_empty() {
                    return; // dressed as it went
                }
                (rest, first) = (tail, false);
            }
        }
        Line::Joined { peer, name } => {
            let _ = writeln!(
                out,
                "* joined the room at {peer} (hub {})",
                peer_label(name)
            );
        }
        Line::Closed { reason } => {
            let _ = writeln!(out, "* chat ended: {reason}");
        }
        Line::TurnedAway { .. } => {}
        Line::Error { message } => {
            let _ = writeln!(out, "* error: {message}");
        }
        Line::Notice { message } => {
            let _ = writeln!(out, "* {message}");
        }
        Line::Reached { id, .. } => {
            let _ = writeln!(out, "\u{2713} #{id} {}", reached_text(line));
        }
        Line::Bench {
            peer,
            size,
            window,
            elapsed,
            stats,
            ..
        } => {
            let _ = writeln!(
                out,
                "--- bench with {}: {} messages of {size} B, window {window} ---",
                peer_label(peer),
                stats.sent
            );
            let (msgs, mb) = rates(stats.acked, size, elapsed);
            let _ = writeln!(
                out,
                "{} acknowledged in {:.3} s: {msgs:.0} msgs/s, {mb:.2} MB/s",
                stats.acked,
                elapsed.as_secs_f64()
            );
            rtt_lines(&stats.rtt, out);
        }
        Line::Summary {
            peer,
            stats,
            encrypted,
            recipients,
            ..
        } => {
            let how = if encrypted { "encrypted" } else { "plain" };
            let _ = writeln!(out, "--- chat with {} ({how}) ---", peer_label(peer));
            let lost = stats.sent - stats.acked;
            let _ = write!(
                out,
                "{} sent, {} acknowledged, {} unacknowledged",
                stats.sent, stats.acked, lost
            );
            if stats.refused > 0 {
                let _ = write!(out, ", {} refused", stats.refused);
            }
            let _ = writeln!(out, ", {} received", stats.received);
            rtt_lines(&stats.rtt, out);
            for r in recipients.unwrap_or_default() {
                let who = r.name.map_or("others".to_string(), peer_label);
                let _ = writeln!(
                    out,
                    "to {who}: {} delivered, rtt min/avg/max = {}/{}/{} ms",
                    r.n,
                    ms(r.min.as_nanos() as u64),
                    ms(r.avg.as_nanos() as u64),
                    ms(r.max.as_nanos() as u64)
                );
            }
        }
    }
    dress(out, start, style);
}

/// How far one of our messages got in a room, after its `✓`: `2/3
/// 0.410 ms (slowest: <bob>; not delivered: <eve>)`, or `0/0 (nobody else
/// in the room)`. The text line puts `#id` before it; an interactive
/// prompt puts it beside the message. Empty for any other line.
pub fn reached_text(line: &Line<'_>) -> String {
    let Line::Reached {
        reached,
        of,
        slowest,
        recipients,
        ..
    } = *line
    else {
        return String::new();
    };
    let mut out = format!("{reached}/{of}");
    if let Some((rtt, name)) = slowest {
        let _ = write!(
            out,
            " {} ms (slowest: {}",
            ms(rtt.as_nanos() as u64),
            peer_label(name)
        );
    } else {
        out.push_str(" (");
        if of == 0 {
            out.push_str("nobody else in the room");
        }
    }
    let missed: Vec<String> = recipients
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| peer_label(n))
        .collect();
    if !missed.is_empty() {
        if slowest.is_some() {
            out.push_str("; ");
        }
        let _ = write!(out, "not delivered: {}", missed.join(", "));
    }
    out.push(')');
    out
}

/// Adds the time prefix and colour to the lines written since `start`:
/// status lines (`* `) in yellow, errors in red.
fn dress(out: &mut Vec<u8>, start: usize, style: &Style) {
    if !style.color && style.time.is_none() {
        return;
    }
    let lines = out.split_off(start);
    for line in lines.split_inclusive(|&b| b == b'\n') {
        if let Some(t) = &style.time {
            out.extend_from_slice(t.as_bytes());
        }
        let color = match line {
            _ if !style.color => None,
            l if l.starts_with(b"* error:") => Some("\x1b[31m"),
            l if l.starts_with(b"* ") => Some("\x1b[33m"),
            _ => None,
        };
        match color {
            Some(c) => {
                let body = line.strip_suffix(b"\n").unwrap_or(line);
                out.extend_from_slice(c.as_bytes());
                out.extend_from_slice(body);
                out.extend_from_slice(SGR_RESET.as_bytes());
                out.extend_from_slice(&line[body.len()..]);
            }
            None => out.extend_from_slice(line),
        }
    }
}

/// The ping-style RTT lines, when there are samples.
fn rtt_lines(r: &RttSummary, out: &mut Vec<u8>) {
    if r.n == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "rtt min/avg/max/mdev = {}/{}/{}/{} ms",
        ms(r.min),
        ms(r.avg),
        ms(r.max),
        ms(r.mdev)
    );
    let _ = writeln!(
        out,
        "rtt p50/p90/p99/p99.9 = {}/{}/{}/{} ms",
        ms(r.p50),
        ms(r.p90),
        ms(r.p99),
        ms(r.p999)
    );
}

/// Messages per second and MB (10^6 bytes) per second.
fn rates(acked: u64, size: u64, elapsed: Duration) -> (f64, f64) {
    let secs = elapsed.as_secs_f64();
    if secs == 0.0 {
        return (0.0, 0.0);
    }
    (acked as f64 / secs, (acked * size) as f64 / secs / 1e6)
}

/// Nanoseconds as milliseconds with three decimals.
pub(crate) fn ms(ns: u64) -> String {
    thousandths(ns / 1_000)
}

/// "00" to "99": two decimal digits per table look-up.
const DIGIT_PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// Appends `n` in decimal, two digits at a time: a JSON line carries five
/// numbers of up to 19 digits, on a piped client's path for every message.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if n >= 10 {
        let pair = n as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + n as u8;
    }
    out.extend_from_slice(&digits[i..]);
}

/// Appends `n / 1000` with three decimals: 12345 as `12.345` (nanoseconds
/// as microseconds, or microseconds as milliseconds).
fn push_thousandths(out: &mut Vec<u8>, n: u64) {
    push_u64(out, n / 1000);
    let f = (n % 1000) as u16;
    out.extend_from_slice(&[
        b'.',
        b'0' + (f / 100) as u8,
        b'0' + (f / 10 % 10) as u8,
        b'0' + (f % 10) as u8,
    ]);
}

/// [`push_thousandths`] as a `String`, for the once-per-chat lines.
fn thousandths(n: u64) -> String {
    let mut digits = Vec::with_capacity(24);
    push_thousandths(&mut digits, n);
    String::from_utf8(digits).expect("ASCII digits")
}

/// The tag in front of every line of a peer's message: `<name> `.
fn tag(from: &[u8], style: &Style, out: &mut Vec<u8>) {
    if let Some(t) = &style.time {
        out.extend_from_slice(t.as_bytes());
    }
    if style.color {
        out.extend_from_slice(b"\x1b[1;36m");
    }
    out.push(b'<');
    match &style.name {
        Some((name, escaped)) if name == from => out.extend_from_slice(escaped),
        _ => escape_name(from, out),
    }
    out.push(b'>');
    if style.color {
        out.extend_from_slice(SGR_RESET.as_bytes());
    }
    out.push(b' ');
}

/// What a message shown as it arrives carries from one piece to the next:
/// the start of a unit that a chunk boundary cut (a UTF-8 sequence, or an
/// emoji tag sequence still waiting for its end tag).
#[derive(Debug, Clone)]
pub struct PartState {
    carry: [u8; MAX_UNIT - 1],
    carry_len: usize,
}

impl Default for PartState {
    fn default() -> Self {
        PartState {
            carry: [0; MAX_UNIT - 1],
            carry_len: 0,
        }
    }
}

/// Appends one piece of a message shown as it arrives, in text format:
/// the tag before the `first` piece, a new tagged line after each newline,
/// and the final newline after the `last`. [`render`] shows a whole
/// message as its 256 KiB pieces; cut anywhere else, the pieces render the
/// same bytes (a unit test and the `check::render_parts` property compare
/// them): a UTF-8 sequence or an emoji tag sequence split between two
/// pieces waits in `state` for the rest of it.
pub fn text_part(
    from: &[u8],
    data: &[u8],
    first: bool,
    last: bool,
    style: &Style,
    state: &mut PartState,
    out: &mut Vec<u8>,
) {
    let marks = style.color.then_some(("\x1b[7m", "\x1b[27m"));
    if first {
        tag(from, style, out);
    }
    let mut data = data;
    if state.carry_len > 0 {
        // Finish the units the carried bytes start, with at most one
        // unit's worth of this piece (carried bytes are never a newline).
        let k = state.carry_len;
        let m = data.len().min(MAX_UNIT);
        let mut buf = [0u8; 2 * MAX_UNIT];
        buf[..k].copy_from_slice(&state.carry[..k]);
        buf[k..k + m].copy_from_slice(&data[..m]);
        let joined = &buf[..k + m];
        let mut i = 0;
        while i < k {
            if !last && incomplete(&joined[i..]) {
                // Still cut short (this piece was tiny): all of it waits.
                let rest = &joined[i..];
                state.carry[..rest.len()].copy_from_slice(rest);
                state.carry_len = rest.len();
                return;
            }
            let n = unit_len(&joined[i..]);
            escape_marked(&joined[i..i + n], false, marks, out);
            i += n;
        }
        state.carry_len = 0;
        data = &data[i - k..];
    }
    if !last {
        let cut = incomplete_tail(data);
        let held = &data[cut..];
        state.carry[..held.len()].copy_from_slice(held);
        state.carry_len = held.len();
        data = &data[..cut];
    }
    // One pass: copy plain runs, tag after each newline, escape the rest
    // one unit at a time (a newline is never part of a multi-byte unit).
    let mut i = 0;
    while i < data.len() {
        let run = plain_run(&data[i..], false);
        out.extend_from_slice(&data[i..i + run]);
        i += run;
        match data.get(i) {
            None => break,
            Some(b'\n') => {
                out.push(b'\n');
                tag(from, style, out);
                i += 1;
            }
            Some(_) => {
                let n = unit_len(&data[i..]);
                escape_marked(&data[i..i + n], false, marks, out);
                i += n;
            }
        }
    }
    if last {
        out.push(b'\n');
    }
}

mod json;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::escape::escape_to_string;

    #[test]
    fn a_message_cut_inside_a_character_ends_with_the_bytes_escaped() {
        // What `Display::cut_off` does: an empty last piece after a piece
        // that ended inside "é".
        let style = Style::default();
        let mut state = PartState::default();
        let mut parts = Vec::new();
        text_part(b"p", b"ab\xc3", true, false, &style, &mut state, &mut parts);
        assert_eq!(parts, b"<p> ab", "the lone lead byte waits");
        text_part(b"p", b"", false, true, &style, &mut state, &mut parts);
        let mut whole = Vec::new();
        let line = Line::Message {
            id: 1,
            from: b"p",
            data: b"ab\xc3",
        };
        render(Format::Text, &line, Stamp::default(), &mut whole);
        assert_eq!(parts, whole);
        assert_eq!(parts, b"<p> ab\\xc3\n");
    }

    #[test]
    fn numbers_written_by_hand_match_format() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut values = vec![0, 11, 101, 1001, 12_345, u64::MAX];
        values.extend((0..20).map(|k| 10u64.pow(k)));
        values.extend((1..20).map(|k| 10u64.pow(k) - 1));
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
        }
        for v in values {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(out, v.to_string().as_bytes());
            out.clear();
            push_thousandths(&mut out, v);
            let expected = format!("{}.{:03}", v / 1000, v % 1000);
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    fn esc(b: &[u8]) -> String {
        escape_to_string(b)
    }

    #[test]
    fn escaping_table() {
        let table: &[(&[u8], &str)] = &[
            (b"hello", "hello"),
            (
                "caf\u{e9} \u{1f600} \u{4e2d}\u{6587}".as_bytes(),
                "caf\u{e9} \u{1f600} \u{4e2d}\u{6587}",
            ),
            (b"\x1b]2;pwned\x07", "\\x1b]2;pwned\\x07"),
            (b"\x1b[2J", "\\x1b[2J"),
            (b"a\tb\rc\nd", "a\\tb\\rc\\nd"),
            (b"\x00\x7f", "\\x00\\x7f"),
            (b"back\\slash", "back\\\\slash"),
            ("\u{85}\u{9b}".as_bytes(), "\\u{85}\\u{9b}"),
            ("\u{202e}evil\u{2066}".as_bytes(), "\\u{202e}evil\\u{2066}"),
            (
                "\u{200b}\u{feff}\u{2028}".as_bytes(),
                "\\u{200b}\\u{feff}\\u{2028}",
            ),
            (b"\xff\xfe", "\\xff\\xfe"),
            (b"\xe2\x82", "\\xe2\\x82"), // truncated UTF-8
            (b"ok\xc3(", "ok\\xc3("),
            (b"", ""),
        ];
        for (input, want) in table {
            assert_eq!(esc(input), *want, "{input:?}");
        }
    }

    #[test]
    fn style_adds_time_and_colour_without_touching_the_text() {
        let style = Style {
            color: true,
            time: Some("12:34:56 ".into()),
            ..Style::default()
        };
        let mut out = Vec::new();
        let msg = Line::Message {
            id: 1,
            from: b"bob",
            data: b"hi\n\x1b!",
        };
        render_in_pieces(
            Format::Text,
            &msg,
            Stamp::default(),
            &style,
            &mut out,
            &mut |_| {},
        );
        render_in_pieces(
            Format::Text,
            &Line::Error { message: "bad" },
            Stamp::default(),
            &style,
            &mut out,
            &mut |_| {},
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "12:34:56 \x1b[1;36m<bob>\x1b[0m hi\n\
             12:34:56 \x1b[1;36m<bob>\x1b[0m \x1b[7m\\x1b\x1b[27m!\n\
             12:34:56 \x1b[31m* error: bad\x1b[0m\n"
        );
        // JSON output is never dressed.
        let mut out = Vec::new();
        render_in_pieces(
            Format::Jsonl,
            &msg,
            Stamp::default(),
            &style,
            &mut out,
            &mut |_| {},
        );
        assert!(!out.contains(&0x1b));
    }

    #[test]
    fn rendering_in_pieces_gives_the_same_bytes() {
        let mut big = Vec::new();
        for i in 0..200_000u32 {
            big.extend_from_slice("ab\u{e9}\u{1f600}\n\x1b".as_bytes());
            big.push((i % 251) as u8);
        }
        let text: Vec<u8> = "x\u{e9}".repeat(300_000).into_bytes();
        for data in [&big[..], &text[..], b"small"] {
            for format in [Format::Text, Format::Jsonl] {
                let line = Line::Message {
                    id: 1,
                    from: b"p",
                    data,
                };
                let mut whole = Vec::new();
                render(format, &line, Stamp::default(), &mut whole);
                let (mut out, mut pieced, mut calls) = (Vec::new(), Vec::new(), 0);
                render_in_pieces(
                    format,
                    &line,
                    Stamp::default(),
                    &Style::default(),
                    &mut out,
                    &mut |o| {
                        assert!(o.len() < 4 * PIECE, "piece of {} bytes", o.len());
                        pieced.append(o);
                        calls += 1;
                    },
                );
                pieced.append(&mut out);
                assert!(whole == pieced, "{format:?}, {} bytes", data.len());
                assert!(data.len() < PIECE || calls > 1);
            }
        }
    }

    #[test]
    fn word_at_a_time_scans_agree_with_byte_scans() {
        for b in 0..=255u8 {
            for pos in 0..20 {
                let mut v = vec![b'a'; 20];
                v[pos] = b;
                let plain = (0x20..0x7f).contains(&b) && b != b'\\';
                assert_eq!(
                    plain_run(&v, false),
                    if plain { 20 } else { pos },
                    "{b:#x} at {pos}"
                );
                let nl = plain || b == b'\n';
                assert_eq!(
                    plain_run(&v, true),
                    if nl { 20 } else { pos },
                    "{b:#x} at {pos}"
                );
            }
        }
    }

    #[test]
    fn every_byte_is_escaped_or_printable() {
        let all: Vec<u8> = (0..=255).collect();
        let s = esc(&all);
        assert!(s.chars().all(|c| !c.is_control()), "{s}");
        assert!(s.is_ascii());
    }

    /// A message from `from` rendered as text with `style`.
    fn shown(from: &[u8], data: &[u8], style: &Style) -> String {
        let line = Line::Message { id: 1, from, data };
        let mut out = Vec::new();
        render_in_pieces(
            Format::Text,
            &line,
            Stamp::default(),
            style,
            &mut out,
            &mut |_| {},
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_line_of_a_message_carries_the_tag() {
        assert_eq!(
            shown(b"bob", b"hi\n* connected to mallory\n", &Style::default()),
            "<bob> hi\n<bob> * connected to mallory\n<bob> \n"
        );
    }

    #[test]
    fn names_cannot_imitate_notices() {
        assert_eq!(
            shown(b"* bob left\x1b", b"x", &Style::default()),
            "<*\\x20bob\\x20left\\x1b> x\n"
        );
    }

    /// Whatever name a peer picks, its lines start with `<` and its name
    /// is one bracketed word: never `you> ` (our lines), `* ` or `--- `
    /// (duet's notices), even for look-alikes of "you".
    #[test]
    fn no_name_imitates_you_or_duet() {
        let cases: &[(&[u8], &str)] = &[
            (b"you", "<you> hi\n"),
            (b"*", "<*> hi\n"),
            (
                b"* chat ended: you left",
                "<*\\x20chat\\x20ended:\\x20you\\x20left> hi\n",
            ),
            (b"you> x", "<you\\x3e\\x20x> hi\n"),
            (b"a> <b", "<a\\x3e\\x20\\x3cb> hi\n"),
            (
                b"--- chat with bob ---",
                "<---\\x20chat\\x20with\\x20bob\\x20---> hi\n",
            ),
            ("yo\u{200b}u".as_bytes(), "<yo\\u{200b}u> hi\n"),
            ("yo\u{200d}u".as_bytes(), "<yo\u{200d}u> hi\n"),
            ("\u{443}\u{43e}u".as_bytes(), "<\u{443}\u{43e}u> hi\n"),
            ("\u{202e}uoy".as_bytes(), "<\\u{202e}uoy> hi\n"),
            (b"", "<> hi\n"),
        ];
        for (name, want) in cases {
            let line = shown(name, b"hi", &Style::default());
            assert_eq!(line, *want, "{name:?}");
            assert!(line.starts_with('<') && !line.starts_with("you> "));
            let label = peer_label(name);
            assert_eq!(label.matches('>').count(), 1, "{label}");
            let mut out = Vec::new();
            let connected = Line::Connected {
                peer: "127.0.0.1:1".parse().unwrap(),
                name,
                key: None,
            };
            render(Format::Text, &connected, Stamp::default(), &mut out);
            let want = format!("* connected to {label} (127.0.0.1:1)\n");
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn a_remembered_name_tags_as_the_name_itself_does() {
        let mut style = Style::default();
        style.remember_name(b"* bob\x1b");
        assert_eq!(
            shown(b"* bob\x1b", b"x", &style),
            shown(b"* bob\x1b", b"x", &Style::default())
        );
        assert_eq!(shown(b"* bob\x1b", b"x", &style), "<*\\x20bob\\x1b> x\n");
        // Another name is escaped afresh, not given the remembered tag.
        assert_eq!(shown(b"eve", b"x", &style), "<eve> x\n");
    }

    #[test]
    fn json_escapes_terminal_controls() {
        let mut out = Vec::new();
        json_str("a\"b\\c\n\u{1b}\u{9b}\u{202e}\u{1f600}", &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\n\\u001b\\u009b\\u202e\u{1f600}\""
        );
    }

    #[test]
    fn json_message_text_or_base64() {
        let stamp = Stamp {
            wall_us: 1,
            mono_ns: 2,
        };
        let mut out = Vec::new();
        render(
            Format::Jsonl,
            &Line::Message {
                id: 3,
                from: b"x",
                data: b"hi",
            },
            stamp,
            &mut out,
        );
        render(
            Format::Jsonl,
            &Line::Message {
                id: 4,
                from: b"x",
                data: b"\xff\x00",
            },
            stamp,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"event\":\"message\",\"ts_us\":1,\"mono_ns\":2,\"id\":3,\"len\":2,\"text\":\"hi\"}\n\
             {\"event\":\"message\",\"ts_us\":1,\"mono_ns\":2,\"id\":4,\"len\":2,\"data_b64\":\"/wA=\"}\n"
        );
    }

    #[test]
    fn base64_vectors() {
        for (input, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64_into(input, &mut out);
            assert_eq!(out, want.as_bytes());
        }
    }

    #[test]
    fn summary_is_ping_style() {
        let stats = Stats {
            sent: 3,
            acked: 2,
            received: 1,
            refused: 0,
            rtt: RttSummary {
                n: 2,
                min: 21_000,
                avg: 30_500,
                max: 40_000,
                mdev: 9_500,
                p50: 21_000,
                p90: 40_000,
                p99: 40_000,
                p999: 40_000,
            },
        };
        let mut out = Vec::new();
        render(
            Format::Text,
            &Line::Summary {
                peer: b"bob",
                addr: "127.0.0.1:1".parse().unwrap(),
                stats: &stats,
                encrypted: false,
                recipients: None,
            },
            Stamp::default(),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "--- chat with <bob> (plain) ---\n\
             3 sent, 2 acknowledged, 1 unacknowledged, 1 received\n\
             rtt min/avg/max/mdev = 0.021/0.030/0.040/0.009 ms\n\
             rtt p50/p90/p99/p99.9 = 0.021/0.040/0.040/0.040 ms\n"
        );
    }

    /// `peer` is the address in `summary` as in `connected`; with no round
    /// trip the RTT figures are null.
    #[test]
    fn json_summary_names_the_peer_as_connected_does_and_has_null_rtts_without_samples() {
        let stats = Stats {
            sent: 0,
            acked: 0,
            received: 2,
            refused: 0,
            rtt: RttSummary::default(),
        };
        let addr: SocketAddr = "127.0.0.1:7".parse().unwrap();
        let mut out = Vec::new();
        let connected = Line::Connected {
            peer: addr,
            name: b"bob",
            key: None,
        };
        render(Format::Jsonl, &connected, Stamp::default(), &mut out);
        let summary = Line::Summary {
            peer: b"bob",
            addr,
            stats: &stats,
            encrypted: false,
            recipients: None,
        };
        render(Format::Jsonl, &summary, Stamp::default(), &mut out);
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let tail = ",\"peer\":\"127.0.0.1:7\",\"name\":\"bob\"";
        assert!(
            lines[0].ends_with(&format!("{tail},\"encrypted\":false}}")),
            "{out}"
        );
        assert!(lines[1].contains(tail), "{out}");
        assert!(
            lines[1].ends_with(
                "\"rtt_us\":{\"n\":0,\"min\":null,\"avg\":null,\"max\":null,\"mdev\":null,\
                 \"p50\":null,\"p90\":null,\"p99\":null,\"p999\":null}}"
            ),
            "{out}"
        );
    }

    #[test]
    fn ack_lines() {
        let mut out = Vec::new();
        let line = Line::Acked {
            id: 7,
            len: 5,
            rtt: Duration::from_nanos(231_456),
        };
        render(Format::Text, &line, Stamp::default(), &mut out);
        render(Format::Jsonl, &line, Stamp::default(), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* #7 delivered in 0.231 ms (5 B)\n\
             {\"event\":\"ack\",\"ts_us\":0,\"mono_ns\":0,\"id\":7,\"len\":5,\"rtt_us\":231.456}\n"
        );
    }
}
