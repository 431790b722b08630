//! Escaping untrusted bytes for a terminal: the one place that decides
//! which characters may reach the screen as they are.
//!
//! Pure code: it appends to a caller's buffer. Printable UTF-8 passes
//! (emoji included); C0 and C1 controls, DEL, bidi and invisible format
//! characters, backslash, and invalid UTF-8 become visible escapes
//! (`\x1b`, `\u{202e}`, `\xff`, `\\`). Used by `render` for messages and
//! names, and by `session` for the peer's BYE details.

use std::io::Write as _;

/// Whether a character must not reach a terminal as is.
pub(crate) fn is_unsafe(c: char) -> bool {
    c.is_control() // C0, DEL, C1
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

/// Whether `bytes` is the start of a UTF-8 sequence that needs more bytes.
pub(crate) fn incomplete(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
}

/// Where an unfinished UTF-8 sequence at the end of `bytes` starts
/// (`bytes.len()` when there is none).
pub(crate) fn incomplete_tail(bytes: &[u8]) -> usize {
    (1..=bytes.len().min(3))
        .map(|back| bytes.len() - back)
        .find(|&p| incomplete(&bytes[p..]))
        .unwrap_or(bytes.len())
}

/// How many bytes the escaper takes as one unit at the front of `bytes`:
/// a whole character, or one byte that is not valid UTF-8.
pub(crate) fn char_len(bytes: &[u8]) -> usize {
    if bytes[0] < 0x80 {
        1
    } else {
        first_char(bytes).map_or(1, |c| c.len_utf8())
    }
}

/// Appends `bytes` with every unsafe character escaped. With
/// `newline_ok`, `\n` passes as is; otherwise it is escaped too.
///
/// Runs of printable ASCII are copied in bulk; only other bytes are
/// decoded one character at a time (this is on the display path of every
/// message, and a 100 MB message should not take a second to show).
pub fn escape_into(bytes: &[u8], newline_ok: bool, out: &mut Vec<u8>) {
    escape_marked(bytes, newline_ok, None, out);
}

/// [`escape_into`], with each escape wrapped in `marks` (for example
/// reverse video on a terminal).
pub fn escape_marked(
    bytes: &[u8],
    newline_ok: bool,
    marks: Option<(&str, &str)>,
    out: &mut Vec<u8>,
) {
    if plain_run(bytes, newline_ok) == bytes.len() {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len());
    let push_escape = |c: char, out: &mut Vec<u8>| {
        if let Some((on, _)) = marks {
            out.extend_from_slice(on.as_bytes());
        }
        push_escape(c, out);
        if let Some((_, off)) = marks {
            out.extend_from_slice(off.as_bytes());
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let run = plain_run(&bytes[i..], newline_ok);
        out.extend_from_slice(&bytes[i..i + run]);
        i += run;
        let Some(&b) = bytes.get(i) else {
            break;
        };
        if b < 0x80 {
            push_escape(b as char, out);
            i += 1;
            continue;
        }
        match first_char(&bytes[i..]) {
            Some(c) => {
                if is_unsafe(c) {
                    push_escape(c, out);
                } else {
                    out.extend_from_slice(&bytes[i..i + c.len_utf8()]);
                }
                i += c.len_utf8();
            }
            None => {
                if let Some((on, _)) = marks {
                    out.extend_from_slice(on.as_bytes());
                }
                let _ = write!(out, "\\x{b:02x}");
                if let Some((_, off)) = marks {
                    out.extend_from_slice(off.as_bytes());
                }
                i += 1;
            }
        }
    }
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any byte of `w` is zero (the classic bit trick).
fn has_zero(w: u64) -> bool {
    w.wrapping_sub(ONES) & !w & HIGHS != 0
}

/// Whether any byte of `w` is below 0x20, above 0x7e, or a backslash:
/// a byte that printable-ASCII copying must stop at.
fn has_special(w: u64) -> bool {
    let below = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    let above = (w.wrapping_add(ONES) | w) & HIGHS; // 0x7f + 1 sets the high bit
    below | above != 0 || has_zero(w ^ (ONES * u64::from(b'\\')))
}

/// Length of the run of bytes at the front of `bytes` that are shown as is:
/// printable ASCII other than backslash (and `\n` when `newline_ok`).
/// Checks eight bytes at a time.
pub(crate) fn plain_run(bytes: &[u8], newline_ok: bool) -> usize {
    let mut i = 0;
    // 64 bytes at a time first, branch-free inside the block: a loop the
    // compiler turns into vector compares (this is the display path of a
    // 100 MB message). 0x20..=0x7e is exactly where `b + 1`, as a signed
    // byte, is above 0x20.
    while let Some(block) = bytes.get(i..i + 64) {
        let mut special = false;
        for &b in block {
            let printable = (b.wrapping_add(1) as i8) > 0x20;
            let ok = (printable & (b != b'\\')) | (newline_ok & (b == b'\n'));
            special |= !ok;
        }
        if special {
            break;
        }
        i += 64;
    }
    while let Some(word) = bytes.get(i..i + 8) {
        let w = u64::from_ne_bytes(word.try_into().expect("8 bytes"));
        if has_special(w) {
            break;
        }
        i += 8;
    }
    let plain = |b: u8| (0x20..0x7f).contains(&b) && b != b'\\' || (newline_ok && b == b'\n');
    i + bytes[i..]
        .iter()
        .position(|&b| !plain(b))
        .unwrap_or(bytes.len() - i)
}

/// The character that `bytes` starts with, if it starts with valid UTF-8.
pub(crate) fn first_char(bytes: &[u8]) -> Option<char> {
    let window = &bytes[..bytes.len().min(4)];
    let valid = match std::str::from_utf8(window) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&window[..e.valid_up_to()]).expect("valid prefix"),
    };
    valid.chars().next()
}

/// The visible escape for one character that must not be shown raw.
fn push_escape(c: char, out: &mut Vec<u8>) {
    let _ = match c {
        '\\' => write!(out, "\\\\"),
        '\n' => write!(out, "\\n"),
        '\r' => write!(out, "\\r"),
        '\t' => write!(out, "\\t"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    };
}

/// The straightforward char-by-char escaper that `escape_into` must match
/// (kept for the fuzz properties in `check`).
#[doc(hidden)]
pub fn escape_reference(bytes: &[u8], newline_ok: bool, out: &mut Vec<u8>) {
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if (is_unsafe(c) || c == '\\') && !(newline_ok && c == '\n') {
                push_escape(c, out);
            } else {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
}

/// `bytes` escaped for one line (newlines escaped too).
pub fn escape_to_string(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len());
    escape_into(bytes, false, &mut out);
    String::from_utf8(out).expect("escaping produces UTF-8")
}

/// A peer's name as a tag: escaped, spaces too, so it cannot imitate one
/// of our `* ` notice lines.
pub(crate) fn escape_name(name: &[u8], out: &mut Vec<u8>) {
    // Names are short and usually plain: copy them as they are.
    if plain_run(name, false) == name.len() && !name.contains(&b' ') {
        out.extend_from_slice(name);
        return;
    }
    let start = out.len();
    escape_into(name, false, out);
    let mut i = start;
    while i < out.len() {
        if out[i] == b' ' {
            out.splice(i..i + 1, *b"\\x20");
            i += 4;
        } else {
            i += 1;
        }
    }
}
