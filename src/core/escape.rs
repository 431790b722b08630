//! Escaping untrusted bytes for a terminal: the one place that decides
//! which characters may reach the screen as they are.
//!
//! Pure code: it appends to a caller's buffer. The policy, written out in
//! docs/ARCHITECTURE.md ("Display"), in short: C0 and C1 controls, DEL,
//! the bidi controls, every invisible format character (category Cf, bar
//! ZWNJ and ZWJ), the line and paragraph separators, backslash and invalid
//! UTF-8 become visible escapes (`\x1b`, `\u{202e}`, `\xff`, `\\`); all
//! else passes, emoji sequences included (ZWJ, variation selectors,
//! modifiers, and tag characters inside an emoji tag sequence such as the
//! flag of England). Used by `render` for messages and names, and by
//! `session` for the peer's BYE details.

use std::io::Write as _;

/// Whether a character must not reach a terminal as is. Tag characters
/// are unsafe on their own; [`tag_sequence_len`] finds the emoji tag
/// sequences they may be shown in.
///
/// Unsafe: C0, DEL, C1; every format character (general category Cf, as
/// of Unicode 16) except ZWNJ U+200C and ZWJ U+200D, which join emoji and
/// letters; the unassigned U+2065 among the bidi and invisible controls;
/// the whole tag block U+E0000–E007F; the line and paragraph separators
/// U+2028/U+2029, which end a line on some terminals and not on others.
pub(crate) fn is_unsafe(c: char) -> bool {
    let u = c as u32;
    if u < 0xad {
        return c.is_control(); // C0, DEL, C1
    }
    matches!(u,
        0x00ad // soft hyphen
        | 0x0600..=0x0605 | 0x061c | 0x06dd | 0x070f | 0x0890..=0x0891 | 0x08e2 // Arabic, Syriac
        | 0x180e // Mongolian vowel separator
        | 0x200b | 0x200e..=0x200f // zero width space, LRM, RLM
        | 0x2028..=0x202e // line/paragraph separators, bidi embeddings and overrides
        | 0x2060..=0x206f // word joiner, invisible operators, bidi isolates, deprecated
        | 0xfeff | 0xfff9..=0xfffb // BOM, interlinear annotations
        | 0x110bd | 0x110cd | 0x13430..=0x1343f | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a
        | 0xe0000..=0xe007f) // tags
}

/// The base of an emoji tag sequence (WAVING BLACK FLAG).
const TAG_BASE: &[u8] = "\u{1f3f4}".as_bytes();
/// The end of an emoji tag sequence (CANCEL TAG).
const TAG_END: char = '\u{e007f}';
/// The most tag characters between base and end: a CLDR subdivision id
/// (`gbeng`, `usca`) has at most seven.
const MAX_TAG_SPEC: usize = 7;
/// The longest unit the escaper takes at once: a whole tag sequence.
pub(crate) const MAX_UNIT: usize = TAG_BASE.len() + 4 * MAX_TAG_SPEC + 4;

/// A tag digit or lowercase tag letter, as subdivision flags use.
fn is_tag_spec(c: char) -> bool {
    matches!(c, '\u{e0030}'..='\u{e0039}' | '\u{e0061}'..='\u{e007a}')
}

/// The length in bytes of the emoji tag sequence `bytes` starts with, if
/// it starts with one: U+1F3F4, one to seven tag digits or lowercase tag
/// letters, U+E007F (UTS #51's flags of subdivisions, such as England's).
/// Tag characters anywhere else can smuggle invisible text, and are escaped.
pub(crate) fn tag_sequence_len(bytes: &[u8]) -> Option<usize> {
    let rest = bytes.strip_prefix(TAG_BASE)?;
    let mut n = 0;
    for chunk in rest.chunks(4).take(MAX_TAG_SPEC + 1) {
        match first_char(chunk) {
            Some(TAG_END) if n > 0 => return Some(TAG_BASE.len() + 4 * n + 4),
            Some(c) if is_tag_spec(c) && n < MAX_TAG_SPEC => n += 1,
            _ => return None,
        }
    }
    None
}

/// Whether `bytes` is the start of a UTF-8 sequence that needs more bytes.
fn utf8_incomplete(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(e) if e.valid_up_to() == 0 && e.error_len().is_none())
}

/// Whether more bytes after `bytes` could change the unit it starts with:
/// it is an unfinished UTF-8 sequence, or U+1F3F4 and tag characters that
/// an end tag could still make a tag sequence. At most `MAX_UNIT - 1` bytes.
pub(crate) fn incomplete(bytes: &[u8]) -> bool {
    if utf8_incomplete(bytes) {
        return true;
    }
    let Some(rest) = bytes.strip_prefix(TAG_BASE) else {
        return false;
    };
    let mut n = 0;
    for chunk in rest.chunks(4) {
        if chunk.len() < 4 {
            return utf8_incomplete(chunk);
        }
        match first_char(chunk) {
            Some(c) if is_tag_spec(c) && n < MAX_TAG_SPEC => n += 1,
            _ => return false,
        }
    }
    true
}

/// Where an unfinished unit at the end of `bytes` starts (`bytes.len()`
/// when there is none): the earliest start that [`incomplete`] holds for.
pub(crate) fn incomplete_tail(bytes: &[u8]) -> usize {
    let from = bytes.len().saturating_sub(MAX_UNIT - 1);
    (from..bytes.len())
        .find(|&p| bytes[p] >= 0xc0 && incomplete(&bytes[p..]))
        .unwrap_or(bytes.len())
}

/// How many bytes the escaper takes as one unit at the front of `bytes`:
/// a whole emoji tag sequence, a whole character, or one byte that is not
/// valid UTF-8.
pub(crate) fn unit_len(bytes: &[u8]) -> usize {
    if bytes[0] < 0x80 {
        1
    } else if let Some(n) = tag_sequence_len(bytes) {
        n
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
        if let Some(n) = tag_sequence_len(&bytes[i..]) {
            out.extend_from_slice(&bytes[i..i + n]);
            i += n;
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
        let chars: Vec<char> = chunk.valid().chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            if c == '\u{1f3f4}' {
                let spec = chars[j..].iter().take_while(|&&t| is_tag_spec(t)).count();
                if (1..=MAX_TAG_SPEC).contains(&spec) && chars.get(j + spec) == Some(&TAG_END) {
                    for &t in &chars[j - 1..=j + spec] {
                        let mut b = [0u8; 4];
                        out.extend_from_slice(t.encode_utf8(&mut b).as_bytes());
                    }
                    j += spec + 1;
                    continue;
                }
            }
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

/// A peer's name as it goes between the brackets of `<name>`: escaped,
/// and so are spaces, `<` and `>` (`\x20`, `\x3c`, `\x3e`), so the
/// bracketed name is one visible word that no name can close early.
pub(crate) fn escape_name(name: &[u8], out: &mut Vec<u8>) {
    let special = |b: &u8| matches!(b, b' ' | b'<' | b'>');
    // Names are short and usually plain: copy them as they are.
    if plain_run(name, false) == name.len() && !name.iter().any(special) {
        out.extend_from_slice(name);
        return;
    }
    let start = out.len();
    escape_into(name, false, out);
    let mut i = start;
    while i < out.len() {
        let code: &[u8; 4] = match out[i] {
            b' ' => b"\\x20",
            b'<' => b"\\x3c",
            b'>' => b"\\x3e",
            _ => {
                i += 1;
                continue;
            }
        };
        out.splice(i..i + 1, *code);
        i += 4;
    }
}

/// A peer's name as every text line shows it: `<name>`, escaped as
/// [`escape_name`] does. Our own lines (`you> `) and duet's notices (`* `,
/// `--- `) never start with `<`, and a name cannot close its bracket, so
/// no name imitates them, whatever it looks like.
pub fn peer_label(name: &[u8]) -> String {
    let mut out = Vec::with_capacity(name.len() + 2);
    out.push(b'<');
    escape_name(name, &mut out);
    out.push(b'>');
    String::from_utf8(out).expect("escaping produces UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy as a table, written apart from `is_unsafe`: every
    /// range escaped on its own (docs/ARCHITECTURE.md, "Display").
    const ESCAPED: &[(u32, u32, &str)] = &[
        (0x00, 0x1f, "C0 controls"),
        (
            0x5c,
            0x5c,
            "backslash (escaped so escapes stay unambiguous)",
        ),
        (0x7f, 0x9f, "DEL and C1 controls"),
        (0xad, 0xad, "soft hyphen"),
        (0x0600, 0x0605, "Arabic number signs"),
        (0x061c, 0x061c, "Arabic letter mark (bidi)"),
        (0x06dd, 0x06dd, "Arabic end of ayah"),
        (0x070f, 0x070f, "Syriac abbreviation mark"),
        (0x0890, 0x0891, "Arabic pound and piastre marks above"),
        (0x08e2, 0x08e2, "Arabic disputed end of ayah"),
        (0x180e, 0x180e, "Mongolian vowel separator"),
        (0x200b, 0x200b, "zero width space"),
        (0x200e, 0x200f, "LRM, RLM (bidi)"),
        (0x2028, 0x2029, "line and paragraph separators"),
        (0x202a, 0x202e, "bidi embeddings and overrides"),
        (0x2060, 0x2064, "word joiner, invisible operators"),
        (0x2065, 0x2065, "unassigned, default ignorable"),
        (0x2066, 0x2069, "bidi isolates"),
        (0x206a, 0x206f, "deprecated format characters"),
        (0xfeff, 0xfeff, "zero width no-break space (BOM)"),
        (0xfff9, 0xfffb, "interlinear annotation"),
        (0x110bd, 0x110bd, "Kaithi number sign"),
        (0x110cd, 0x110cd, "Kaithi number sign above"),
        (0x13430, 0x1343f, "Egyptian hieroglyph format controls"),
        (0x1bca0, 0x1bca3, "shorthand format controls"),
        (0x1d173, 0x1d17a, "musical symbol format controls"),
        (
            0xe0000,
            0xe007f,
            "tag characters (outside an emoji tag sequence)",
        ),
    ];

    /// Ranges shown as they are, next to escaped ones or easily mistaken
    /// for them.
    const SHOWN: &[(u32, u32, &str)] = &[
        (0x20, 0x5b, "printable ASCII before the backslash"),
        (0x5d, 0x7e, "printable ASCII after it"),
        (0xa0, 0xac, "Latin-1 punctuation"),
        (0x200c, 0x200d, "ZWNJ and ZWJ (Persian words, joined emoji)"),
        (0x180b, 0x180d, "Mongolian variation selectors"),
        (0x180f, 0x180f, "Mongolian variation selector four"),
        (0xfe00, 0xfe0f, "variation selectors"),
        (0x1f3fb, 0x1f3ff, "emoji modifiers (skin tones)"),
        (0xe0100, 0xe01ef, "variation selectors supplement"),
    ];

    fn escaped_by_table(u: u32) -> bool {
        ESCAPED.iter().any(|&(lo, hi, _)| (lo..=hi).contains(&u))
    }

    fn json(s: &str) -> String {
        let mut out = Vec::new();
        crate::core::render::json_str(s, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_policy_table_on_both_sides_of_every_boundary() {
        for &(lo, hi, what) in ESCAPED.iter().chain(SHOWN) {
            let probes = [lo.checked_sub(1), Some(lo), Some(hi), hi.checked_add(1)];
            for c in probes.into_iter().flatten().filter_map(char::from_u32) {
                let u = c as u32;
                let s = c.to_string();
                let want = if !escaped_by_table(u) {
                    s.clone()
                } else if c == '\\' {
                    "\\\\".to_string()
                } else if let Some(e) = [('\n', "\\n"), ('\r', "\\r"), ('\t', "\\t")]
                    .iter()
                    .find(|(k, _)| *k == c)
                {
                    e.1.to_string()
                } else if u < 0x80 {
                    format!("\\x{u:02x}")
                } else {
                    format!("\\u{{{u:x}}}")
                };
                assert_eq!(escape_to_string(s.as_bytes()), want, "U+{u:04X} ({what})");
                let mut slow = Vec::new();
                escape_reference(s.as_bytes(), false, &mut slow);
                assert_eq!(
                    String::from_utf8(slow).unwrap(),
                    want,
                    "reference, U+{u:04X}"
                );
                // JSON escapes the same characters (and its own two).
                let raw_in_json = json(&s) == format!("\"{s}\"");
                let json_own = matches!(c, '"' | '\\');
                assert_eq!(
                    raw_in_json,
                    !escaped_by_table(u) && !json_own,
                    "JSON, U+{u:04X} ({what})"
                );
            }
        }
    }

    #[test]
    fn emoji_and_joining_scripts_are_shown_as_they_are() {
        for s in [
            "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467} family",
            "\u{634}\u{6a9}\u{631}\u{200c}\u{647}\u{627}",
            "\u{1f44d}\u{1f3fd}",
            "\u{2764}\u{fe0f}",
            "\u{8fbb}\u{e0100}",
            // The flags of England and of a seven-letter subdivision.
            "\u{1f3f4}\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}",
            "\u{1f3f4}\u{e0061}\u{e0062}\u{e0063}\u{e0064}\u{e0031}\u{e0032}\u{e0033}\u{e007f}!",
        ] {
            assert_eq!(escape_to_string(s.as_bytes()), s);
            assert_eq!(json(s), format!("\"{s}\""));
        }
    }

    #[test]
    fn tag_characters_outside_a_flag_are_escaped() {
        let flag = "\u{1f3f4}";
        for (s, want) in [
            // Tags with no flag: invisible ASCII ("hi").
            ("\u{e0068}\u{e0069}", "\\u{e0068}\\u{e0069}"),
            // No end tag, or an end tag with nothing before it.
            (
                "\u{1f3f4}\u{e0067}\u{e0062}x",
                "\u{1f3f4}\\u{e0067}\\u{e0062}x",
            ),
            ("\u{1f3f4}\u{e007f}", "\u{1f3f4}\\u{e007f}"),
            // An upper-case tag letter, a tag space.
            (
                "\u{1f3f4}\u{e0047}\u{e007f}",
                "\u{1f3f4}\\u{e0047}\\u{e007f}",
            ),
            (
                "\u{1f3f4}\u{e0020}\u{e007f}",
                "\u{1f3f4}\\u{e0020}\\u{e007f}",
            ),
        ] {
            assert_eq!(escape_to_string(s.as_bytes()), want, "{s:?}");
        }
        // Eight tag letters are more than any subdivision has.
        let eight = format!("{flag}{}\u{e007f}", "\u{e0061}".repeat(8));
        assert_eq!(
            escape_to_string(eight.as_bytes()),
            format!("{flag}{}\\u{{e007f}}", "\\u{e0061}".repeat(8))
        );
        // JSON escapes a tag as a surrogate pair.
        assert_eq!(json("\u{e0068}"), "\"\\udb40\\udc68\"");
    }

    #[test]
    fn units_and_unfinished_units() {
        let england = "\u{1f3f4}\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}";
        let b = england.as_bytes();
        assert_eq!(tag_sequence_len(b), Some(b.len()));
        assert_eq!(unit_len(b), b.len());
        assert!(b.len() <= MAX_UNIT);
        for cut in 1..b.len() {
            assert!(incomplete(&b[..cut]), "cut at {cut}");
            assert_eq!(incomplete_tail(&b[..cut]), 0, "cut at {cut}");
            assert_eq!(unit_len(&b[..cut]), if cut < 4 { 1 } else { 4 });
        }
        assert!(!incomplete(b));
        assert_eq!(incomplete_tail(b), b.len());
        assert!(!incomplete("\u{1f3f4}x".as_bytes()));
        assert_eq!(incomplete_tail("a\u{1f3f4}".as_bytes()), 1);
        assert_eq!(incomplete_tail("\u{1f3f4}\u{1f3f4}".as_bytes()), 4);
    }

    #[test]
    fn mixed_sequences_agree_with_the_reference_in_any_pieces() {
        // Every string of up to four of these fragments, through the
        // same properties the fuzz targets check.
        let frags: [&[u8]; 7] = [
            "\u{1f3f4}".as_bytes(),
            "\u{e0067}".as_bytes(),
            "\u{e007f}".as_bytes(),
            "\u{e0047}".as_bytes(),
            "\u{200d}".as_bytes(),
            b"a\n",
            b"\xf3\xa0",
        ];
        let mut stack = vec![(Vec::new(), 0)];
        while let Some((s, n)) = stack.pop() {
            crate::check::escape(&s);
            if n < 4 {
                for f in frags {
                    stack.push(([&s[..], f].concat(), n + 1));
                }
            }
        }
    }
}
