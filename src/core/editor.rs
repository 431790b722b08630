//! The interactive line editor: keys in, draft and screen bytes out.
//!
//! Pure code, fed with the bytes the terminal sends (the event loop reads
//! them) and rendering the prompt line into a buffer, so every key is
//! unit-tested without a terminal. It knows printable UTF-8, the usual
//! readline keys (word moves included), arrow-key escape sequences,
//! bracketed paste, and display widths (wide CJK and emoji take two
//! columns, a tab reaches the next tab stop). A long draft scrolls
//! horizontally on one row. It never writes anywhere.

use std::fmt::Write as _;

/// The most bytes of one bracketed paste kept in the draft.
const MAX_PASTE: usize = 16 << 20;

/// What a key asks the program to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this draft (Enter on a draft that is not empty).
    Send(Vec<u8>),
    /// Leave (Ctrl-C or Ctrl-D on an empty draft).
    Quit,
    /// Stop the process (Ctrl-Z).
    Suspend,
    /// Clear the screen and redraw (Ctrl-L).
    ClearScreen,
}

/// Parser state for escape sequences that may arrive split across reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pending {
    None,
    /// Saw ESC.
    Esc,
    /// Inside `ESC [` or `ESC O`, collecting parameter bytes.
    Csi(Vec<u8>),
    /// Between `ESC [200~` and `ESC [201~`.
    Paste,
}

/// The editor: draft, cursor, history of this run.
#[derive(Debug)]
pub struct Editor {
    draft: String,
    /// Byte offset of the cursor in `draft`, always on a char boundary.
    cursor: usize,
    history: Vec<String>,
    /// Position while browsing history (`history.len()` = the live draft).
    browse: usize,
    /// The live draft, kept while browsing history.
    stash: String,
    pending: Pending,
    /// Bytes of an incomplete UTF-8 character or paste terminator.
    partial: Vec<u8>,
}

impl Default for Editor {
    fn default() -> Self {
        Self::new()
    }
}

impl Editor {
    pub fn new() -> Editor {
        Editor {
            draft: String::new(),
            cursor: 0,
            history: Vec::new(),
            browse: 0,
            stash: String::new(),
            pending: Pending::None,
            partial: Vec::new(),
        }
    }

    pub fn draft(&self) -> &str {
        &self.draft
    }

    /// Cursor position as a byte offset into the draft.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Feeds bytes from the terminal; returns the actions they complete.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Vec<Action> {
        let mut actions = Vec::new();
        for &b in bytes {
            if let Some(a) = self.handle_byte(b) {
                actions.push(a);
            }
        }
        actions
    }

    fn handle_byte(&mut self, b: u8) -> Option<Action> {
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::Paste => {
                self.pending = Pending::Paste;
                self.paste_byte(b);
                return None;
            }
            Pending::Esc => {
                match b {
                    b'[' | b'O' => self.pending = Pending::Csi(vec![b]),
                    // Alt-B / Alt-F, as xterm sends them (ESC prefix).
                    b'b' => self.word_left(),
                    b'f' => self.word_right(),
                    // Other Alt-<key> and a lone ESC are ignored.
                    _ => {}
                }
                return None;
            }
            Pending::Csi(mut seq) => {
                seq.push(b);
                if (0x40..=0x7e).contains(&b) && seq.len() > 1 {
                    return self.sequence(&seq);
                }
                if seq.len() < 16 {
                    self.pending = Pending::Csi(seq);
                }
                return None;
            }
            Pending::None => {}
        }
        if !self.partial.is_empty() || b >= 0x80 {
            self.partial.push(b);
            match std::str::from_utf8(&self.partial) {
                Ok(s) => {
                    let s = s.to_string();
                    self.partial.clear();
                    self.insert(&s);
                }
                Err(e) if e.error_len().is_some() => {
                    // Not UTF-8: show the replacement character.
                    self.partial.clear();
                    self.insert("\u{fffd}");
                }
                Err(_) => {} // wait for the rest of the character
            }
            return None;
        }
        match b {
            0x1b => self.pending = Pending::Esc,
            b'\r' => return self.enter(),
            b'\n' => self.insert("\n"), // Ctrl-J
            0x7f | 0x08 => self.backspace(),
            0x01 => self.cursor = 0,
            0x05 => self.cursor = self.draft.len(),
            0x02 => self.left(),
            0x06 => self.right(),
            0x15 => {
                self.draft.drain(..self.cursor);
                self.cursor = 0;
            }
            0x0b => self.draft.truncate(self.cursor),
            0x17 => self.delete_word(),
            0x0c => return Some(Action::ClearScreen),
            0x1a => return Some(Action::Suspend),
            0x03 => {
                if self.draft.is_empty() {
                    return Some(Action::Quit);
                }
                self.draft.clear();
                self.cursor = 0;
            }
            0x04 => {
                if self.draft.is_empty() {
                    return Some(Action::Quit);
                }
                self.delete();
            }
            0x10 => self.history_up(),
            0x0e => self.history_down(),
            b'\t' => self.insert("\t"),
            0x20..=0x7e => {
                let mut buf = [0u8; 4];
                self.insert((b as char).encode_utf8(&mut buf));
            }
            _ => {} // other control keys do nothing
        }
        None
    }

    /// A complete `ESC [ ...` or `ESC O ...` sequence (leading ESC removed).
    fn sequence(&mut self, seq: &[u8]) -> Option<Action> {
        match &seq[1..] {
            b"A" => self.history_up(),
            b"B" => self.history_down(),
            b"C" => self.right(),
            b"D" => self.left(),
            // Ctrl-Right / Ctrl-Left (and Alt-Right / Alt-Left) in xterm.
            b"1;5C" | b"1;3C" => self.word_right(),
            b"1;5D" | b"1;3D" => self.word_left(),
            b"H" | b"1~" | b"7~" => self.cursor = 0,
            b"F" | b"4~" | b"8~" => self.cursor = self.draft.len(),
            b"3~" => self.delete(),
            b"200~" => self.pending = Pending::Paste,
            _ => {}
        }
        None
    }

    /// Inside a bracketed paste everything is text (newlines included)
    /// until `ESC [201~`; the paste is inserted whole when it ends.
    fn paste_byte(&mut self, b: u8) {
        const END: &[u8] = b"\x1b[201~";
        self.partial.push(b);
        if self.partial.len() > MAX_PASTE + END.len() {
            // An enormous paste: keep its start, and a window just large
            // enough to recognise the terminator.
            self.partial.remove(MAX_PASTE);
        }
        if !self.partial.ends_with(END) {
            return;
        }
        self.partial.truncate(self.partial.len() - END.len());
        let bytes = std::mem::take(&mut self.partial);
        let mut text = String::from_utf8_lossy(&bytes)
            .replace("\r\n", "\n")
            .replace('\r', "\n");
        // A copied line usually brings its newline along: it would only
        // add an empty last line to the message.
        if text.ends_with('\n') {
            text.pop();
        }
        self.insert(&text);
        self.pending = Pending::None;
    }

    /// Enter: the draft is sent, unless it is empty (a stray Enter sends
    /// nothing; piped input is not read by the editor and keeps its empty
    /// lines).
    fn enter(&mut self) -> Option<Action> {
        let line = std::mem::take(&mut self.draft);
        self.cursor = 0;
        self.browse = self.history.len();
        if line.is_empty() {
            return None;
        }
        if self.history.last() != Some(&line) {
            self.history.push(line.clone());
            self.browse = self.history.len();
        }
        Some(Action::Send(line.into_bytes()))
    }

    pub fn insert(&mut self, s: &str) {
        self.draft.insert_str(self.cursor, s);
        self.cursor += s.len();
    }

    fn prev_boundary(&self) -> usize {
        self.draft[..self.cursor]
            .char_indices()
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.draft[self.cursor..]
            .chars()
            .next()
            .map_or(self.cursor, |c| self.cursor + c.len_utf8())
    }

    fn left(&mut self) {
        self.cursor = self.prev_boundary();
    }

    fn right(&mut self) {
        self.cursor = self.next_boundary();
    }

    /// Alt-B, Ctrl-Left: to the start of this word or the one before (a
    /// word is a run of letters and digits, as in readline).
    fn word_left(&mut self) {
        let before = self.draft[..self.cursor].trim_end_matches(|c: char| !c.is_alphanumeric());
        self.cursor = before.trim_end_matches(char::is_alphanumeric).len();
    }

    /// Alt-F, Ctrl-Right: to the end of this word or the next one.
    fn word_right(&mut self) {
        let after = &self.draft[self.cursor..];
        let word = after.trim_start_matches(|c: char| !c.is_alphanumeric());
        let rest = word.trim_start_matches(char::is_alphanumeric);
        self.cursor = self.draft.len() - rest.len();
    }

    fn backspace(&mut self) {
        let start = self.prev_boundary();
        self.draft.drain(start..self.cursor);
        self.cursor = start;
    }

    fn delete(&mut self) {
        let end = self.next_boundary();
        self.draft.drain(self.cursor..end);
    }

    /// Ctrl-W: the word before the cursor, and the spaces after it.
    fn delete_word(&mut self) {
        let before = &self.draft[..self.cursor];
        let trimmed = before.trim_end_matches(char::is_whitespace);
        let start = trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8());
        self.draft.drain(start..self.cursor);
        self.cursor = start;
    }

    fn history_up(&mut self) {
        if self.browse == 0 {
            return;
        }
        if self.browse == self.history.len() {
            self.stash = std::mem::take(&mut self.draft);
        }
        self.browse -= 1;
        self.draft = self.history[self.browse].clone();
        self.cursor = self.draft.len();
    }

    fn history_down(&mut self) {
        if self.browse >= self.history.len() {
            return;
        }
        self.browse += 1;
        self.draft = if self.browse == self.history.len() {
            std::mem::take(&mut self.stash)
        } else {
            self.history[self.browse].clone()
        };
        self.cursor = self.draft.len();
    }

    /// Whether a prompt label `label_width` columns wide leaves the draft
    /// enough room on a terminal `columns` wide. When it does not, the
    /// caller shows the bare `> ` instead, so that the line never wraps:
    /// a wrapped prompt cannot be cleared and redrawn in place.
    pub fn label_fits(label_width: usize, columns: usize) -> bool {
        label_width + 1 + MIN_DRAFT_COLUMNS <= columns
    }

    /// Appends the prompt line to `out`: carriage return, `prompt`, the
    /// visible window of the draft, clear to end of line, and the cursor
    /// moved to its column. `prompt` is plain text of `prompt_width`
    /// columns (it may hold colour sequences). Control characters in the
    /// draft show as `^X`, newlines as `⏎`, a tab as spaces to the next
    /// tab stop (every 8 columns of the draft). Returns the cursor's column.
    pub fn render(
        &self,
        prompt: &str,
        prompt_width: usize,
        columns: usize,
        out: &mut Vec<u8>,
    ) -> usize {
        let room = columns.saturating_sub(prompt_width + 1).max(1);
        let mut col = 0;
        let cells: Vec<(usize, usize, String)> = self
            .draft
            .char_indices()
            .map(|(i, c)| {
                let (w, text) = match c {
                    '\t' => {
                        let w = TAB_STOP - col % TAB_STOP;
                        (w, " ".repeat(w))
                    }
                    c => (cell_width(c), cell_text(c)),
                };
                col += w;
                (i, w, text)
            })
            .collect();
        // Columns from the start of the draft to the cursor.
        let cursor_col: usize = cells
            .iter()
            .take_while(|(i, _, _)| *i < self.cursor)
            .map(|(_, w, _)| w)
            .sum();
        // Scroll so that the cursor stays visible, a third of the way in
        // from the right edge when scrolling is needed.
        let total: usize = cells.iter().map(|(_, w, _)| w).sum();
        let skip = if total <= room || cursor_col < room {
            0
        } else {
            cursor_col + 1 - room * 2 / 3
        }
        .min(total);
        let mut col = 0;
        let mut shown = String::new();
        let mut shown_width = 0;
        for (_, w, text) in &cells {
            if col >= skip && shown_width + w <= room {
                shown.push_str(text);
                shown_width += w;
            }
            col += w;
        }
        out.extend_from_slice(b"\r");
        out.extend_from_slice(prompt.as_bytes());
        out.extend_from_slice(shown.as_bytes());
        out.extend_from_slice(b"\x1b[K\r");
        let to = prompt_width + cursor_col.saturating_sub(skip);
        if to > 0 {
            let _ = write!(StrBuf(out), "\x1b[{to}C");
        }
        to
    }
}

/// Columns between tab stops in the draft.
const TAB_STOP: usize = 8;

/// The fewest columns of draft a prompt label may leave (see
/// [`Editor::label_fits`]).
const MIN_DRAFT_COLUMNS: usize = 10;

/// `write!` into a byte vector.
struct StrBuf<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for StrBuf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// How a draft character is drawn.
fn cell_text(c: char) -> String {
    match c {
        '\n' => "\u{23ce}".to_string(),
        c if (c as u32) < 0x20 => format!("^{}", (c as u8 + 0x40) as char),
        '\u{7f}' => "^?".to_string(),
        c if c.is_control() || is_bidi(c) => format!("<{:x}>", c as u32),
        c => c.to_string(),
    }
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// Columns a draft character takes on screen (a tab's depends on where
/// it starts; [`Editor::render`] places it).
pub fn cell_width(c: char) -> usize {
    match c {
        '\n' => 1,
        c if (c as u32) < 0x20 || c == '\u{7f}' => 2,
        c if c.is_control() || is_bidi(c) => cell_text(c).len(),
        c => char_width(c),
    }
}

/// Display width of a printable character: 0 for combining marks,
/// zero-width characters and tag characters (drawn only as part of a
/// flag such as England's), 2 for East Asian wide and fullwidth characters
/// and emoji, 1 otherwise (a compact form of wcwidth).
pub fn char_width(c: char) -> usize {
    let u = c as u32;
    let zero = matches!(u,
        0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x0610..=0x061A
        | 0x064B..=0x065F | 0x0E31 | 0x0E34..=0x0E3A | 0x1AB0..=0x1AFF
        | 0x1DC0..=0x1DFF | 0x200B..=0x200D | 0x20D0..=0x20FF | 0xFE00..=0xFE0F
        | 0xFE20..=0xFE2F | 0xE0020..=0xE007F | 0xE0100..=0xE01EF);
    if zero {
        return 0;
    }
    let wide = matches!(u,
        0x1100..=0x115F | 0x231A..=0x231B | 0x2329..=0x232A | 0x23E9..=0x23EC
        | 0x23F0 | 0x23F3 | 0x25FD..=0x25FE | 0x2614..=0x2615 | 0x2648..=0x2653
        | 0x267F | 0x2693 | 0x26A1 | 0x26AA..=0x26AB | 0x26BD..=0x26BE
        | 0x26C4..=0x26C5 | 0x26CE | 0x26D4 | 0x26EA | 0x26F2..=0x26F3 | 0x26F5
        | 0x26FA | 0x26FD | 0x2705 | 0x270A..=0x270B | 0x2728 | 0x274C | 0x274E
        | 0x2753..=0x2755 | 0x2757 | 0x2795..=0x2797 | 0x27B0 | 0x27BF
        | 0x2B1B..=0x2B1C | 0x2B50 | 0x2B55 | 0x2E80..=0x303E | 0x3041..=0x33FF
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xA000..=0xA4CF | 0xA960..=0xA97F
        | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE10..=0xFE19 | 0xFE30..=0xFE6F
        | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6 | 0x1F004 | 0x1F0CF | 0x1F18E
        | 0x1F191..=0x1F19A | 0x1F200..=0x1F251 | 0x1F300..=0x1F64F
        | 0x1F680..=0x1F6FF | 0x1F7E0..=0x1F7EB | 0x1F90C..=0x1F9FF
        | 0x1FA70..=0x1FAFF | 0x20000..=0x3FFFD);
    if wide { 2 } else { 1 }
}

/// Display width of a string of printable characters.
pub fn str_width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(keys: &[u8]) -> (Editor, Vec<Action>) {
        let mut e = Editor::new();
        let a = e.handle_bytes(keys);
        (e, a)
    }

    fn state(keys: &[u8]) -> (String, usize) {
        let (e, _) = typed(keys);
        (e.draft.clone(), e.cursor)
    }

    #[test]
    fn typing_and_enter() {
        let (e, a) = typed(b"hello\r");
        assert_eq!(a, [Action::Send(b"hello".to_vec())]);
        assert_eq!(e.draft(), "");
    }

    #[test]
    fn enter_on_an_empty_draft_sends_nothing() {
        let (_, a) = typed(b"\r");
        assert_eq!(a, []);
        let (_, a) = typed(b"x\x7f\r\ry\r");
        assert_eq!(a, [Action::Send(b"y".to_vec())]);
        // A draft of spaces is not empty: it is sent.
        let (_, a) = typed(b" \r");
        assert_eq!(a, [Action::Send(b" ".to_vec())]);
    }

    #[test]
    fn word_moves() {
        // Alt-B / Alt-F (ESC b / ESC f), Ctrl-Left / Ctrl-Right
        // (CSI 1;5D / CSI 1;5C), Alt-Left / Alt-Right (CSI 1;3D / 1;3C).
        let text = b"one two, three";
        for (left, right) in [
            (&b"\x1bb"[..], &b"\x1bf"[..]),
            (b"\x1b[1;5D", b"\x1b[1;5C"),
            (b"\x1b[1;3D", b"\x1b[1;3C"),
        ] {
            let keys = |moves: &[&[u8]]| [&text[..], &moves.concat()].concat();
            assert_eq!(state(&keys(&[left])).1, 9, "{left:?}");
            assert_eq!(state(&keys(&[left, left])).1, 4);
            assert_eq!(state(&keys(&[left, left, left, left])).1, 0);
            assert_eq!(state(&keys(&[b"\x01", right])).1, 3, "{right:?}");
            assert_eq!(state(&keys(&[b"\x01", right, right])).1, 7);
            assert_eq!(state(&keys(&[b"\x01", right, right, right, right])).1, 14);
        }
        // Words of any script; the move lands on a character boundary.
        assert_eq!(
            state("caf\u{e9} \u{4e2d}\u{6587}\x1bb\x1bbX".as_bytes()),
            ("Xcaf\u{e9} \u{4e2d}\u{6587}".into(), 1)
        );
        // Split across reads.
        let mut e = Editor::new();
        e.handle_bytes(b"ab cd\x1b[1;");
        e.handle_bytes(b"5DX");
        assert_eq!(e.draft(), "ab Xcd");
    }

    #[test]
    fn insert_anywhere_and_move() {
        assert_eq!(state(b"hllo\x1b[D\x1b[D\x1b[De"), ("hello".into(), 2));
        assert_eq!(state(b"world\x01hello \x05!"), ("hello world!".into(), 12));
        assert_eq!(state(b"ab\x1b[H>\x1b[F<"), (">ab<".into(), 4));
        assert_eq!(state(b"ab\x1bOH>\x1b[4~<"), (">ab<".into(), 4));
        assert_eq!(state(b"ab\x02\x02\x02\x06x"), ("axb".into(), 2));
        // Right at the end and left at the start do nothing.
        assert_eq!(state(b"\x1b[Dab\x1b[C\x1b[C"), ("ab".into(), 2));
    }

    #[test]
    fn backspace_and_delete_take_whole_characters() {
        assert_eq!(state("caf\u{e9}\x7f".as_bytes()), ("caf".into(), 3));
        assert_eq!(state("a\u{1f600}b\x1b[D\x7f".as_bytes()), ("ab".into(), 1));
        assert_eq!(
            state("a\u{4e2d}b\x01\x1b[C\x1b[3~".as_bytes()),
            ("ab".into(), 1)
        );
        assert_eq!(state(b"\x7f\x7f"), ("".into(), 0));
        assert_eq!(state(b"ab\x01\x04"), ("b".into(), 0));
    }

    #[test]
    fn kill_keys() {
        assert_eq!(state(b"hello world\x1b[D\x1b[D\x15"), ("ld".into(), 0));
        assert_eq!(
            state(b"hello world\x1b[D\x1b[D\x0b"),
            ("hello wor".into(), 9)
        );
        assert_eq!(state(b"one two  \x17"), ("one ".into(), 4));
        assert_eq!(state(b"one two\x17\x17"), ("".into(), 0));
    }

    #[test]
    fn utf8_split_across_reads() {
        let mut e = Editor::new();
        let bytes = "\u{1f600}".as_bytes();
        e.handle_bytes(&bytes[..2]);
        assert_eq!(e.draft(), "");
        e.handle_bytes(&bytes[2..]);
        assert_eq!(e.draft(), "\u{1f600}");
        e.handle_bytes(b"\xff");
        assert_eq!(e.draft(), "\u{1f600}\u{fffd}");
    }

    #[test]
    fn escape_sequence_split_across_reads() {
        let mut e = Editor::new();
        e.handle_bytes(b"ab\x1b");
        e.handle_bytes(b"[");
        e.handle_bytes(b"D");
        e.handle_bytes(b"X");
        assert_eq!(e.draft(), "aXb");
    }

    #[test]
    fn ctrl_j_inserts_a_newline_and_enter_sends_both_lines() {
        let (_, a) = typed(b"one\ntwo\r");
        assert_eq!(a, [Action::Send(b"one\ntwo".to_vec())]);
    }

    #[test]
    fn bracketed_paste_is_one_message() {
        let (e, a) = typed(b"\x1b[200~line 1\r\nline 2\rline 3\x1b[201~");
        assert!(a.is_empty());
        assert_eq!(e.draft(), "line 1\nline 2\nline 3");
        // A paste holding ESC that is not the terminator keeps it.
        let (e, _) = typed(b"\x1b[200~a\x1b[2Jb\x1b[201~c");
        assert_eq!(e.draft(), "a\x1b[2Jbc");
        // The terminator split across reads.
        let mut e = Editor::new();
        e.handle_bytes(b"\x1b[200~xy\x1b[20");
        e.handle_bytes(b"1~z");
        assert_eq!(e.draft(), "xyz");
    }

    #[test]
    fn a_paste_ending_in_a_newline_adds_no_empty_line() {
        let (e, _) = typed(b"\x1b[200~copied line\r\n\x1b[201~");
        assert_eq!(e.draft(), "copied line");
        let (e, _) = typed(b"\x1b[200~one\ntwo\n\x1b[201~");
        assert_eq!(e.draft(), "one\ntwo");
        // Only the last newline goes: a blank line inside stays.
        let (e, _) = typed(b"\x1b[200~one\n\n\x1b[201~");
        assert_eq!(e.draft(), "one\n");
    }

    #[test]
    fn history_of_this_run() {
        let mut e = Editor::new();
        e.handle_bytes(b"first\rsecond\rdraft");
        e.handle_bytes(b"\x1b[A");
        assert_eq!(e.draft(), "second");
        e.handle_bytes(b"\x1b[A\x1b[A");
        assert_eq!(e.draft(), "first");
        e.handle_bytes(b"\x1b[B");
        assert_eq!(e.draft(), "second");
        e.handle_bytes(b"\x1b[B");
        assert_eq!(e.draft(), "draft", "the live draft comes back");
        e.handle_bytes(b"\x1b[B");
        assert_eq!(e.draft(), "draft");
    }

    #[test]
    fn quit_and_clear() {
        assert_eq!(typed(b"\x04").1, [Action::Quit]);
        assert_eq!(typed(b"\x03").1, [Action::Quit]);
        // Ctrl-C on a draft clears it; a second one quits.
        let (e, a) = typed(b"oops\x03");
        assert!(a.is_empty());
        assert_eq!(e.draft(), "");
        assert_eq!(typed(b"x\x03\x03").1, [Action::Quit]);
        assert_eq!(typed(b"\x0c").1, [Action::ClearScreen]);
        assert_eq!(typed(b"\x1a").1, [Action::Suspend]);
    }

    #[test]
    fn long_labels_give_way_on_narrow_terminals() {
        let label = "(nobody connected) > ";
        assert!(Editor::label_fits(str_width(label), 80));
        assert!(Editor::label_fits(str_width(label), 32));
        assert!(!Editor::label_fits(str_width(label), 31));
        assert!(!Editor::label_fits(str_width(label), 12));
        assert!(Editor::label_fits(2, 13));
    }

    #[test]
    fn widths() {
        assert_eq!(str_width("abc"), 3);
        assert_eq!(str_width("\u{4e2d}\u{6587}"), 4);
        assert_eq!(str_width("\u{1f600}"), 2);
        assert_eq!(str_width("e\u{301}"), 1);
        assert_eq!(cell_width('\x1b'), 2);
        // The flag of England is one emoji: its tags take no column.
        assert_eq!(
            str_width("\u{1f3f4}\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}"),
            2
        );
    }

    fn rendered(e: &Editor, cols: usize) -> String {
        let mut out = Vec::new();
        e.render("> ", 2, cols, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn render_places_the_cursor() {
        let (e, _) = typed(b"hi\x1b[D");
        assert_eq!(rendered(&e, 80), "\r> hi\x1b[K\r\x1b[3C");
        let (e, _) = typed("\u{4e2d}x".as_bytes());
        assert_eq!(rendered(&e, 80), "\r> \u{4e2d}x\x1b[K\r\x1b[5C");
        let (e, _) = typed(b"a\nb\x1b");
        assert_eq!(rendered(&e, 80), "\r> a\u{23ce}b\x1b[K\r\x1b[5C");
        let (e, _) = typed(b"\x1b[200~\x1b]2;x\x07\x1b[201~");
        assert_eq!(rendered(&e, 80), "\r> ^[]2;x^G\x1b[K\r\x1b[10C");
    }

    #[test]
    fn tabs_show_as_spaces_to_the_next_tab_stop() {
        let (e, _) = typed(b"a\tb");
        assert_eq!(
            rendered(&e, 80),
            format!("\r> a{}b\x1b[K\r\x1b[11C", " ".repeat(7))
        );
        let (e, _) = typed(b"\t\tabcdefgh\tc\x01");
        assert_eq!(
            rendered(&e, 80),
            format!(
                "\r> {}abcdefgh{}c\x1b[K\r\x1b[2C",
                " ".repeat(16),
                " ".repeat(8)
            )
        );
        // The draft itself keeps the tab.
        assert_eq!(e.draft(), "\t\tabcdefgh\tc");
    }

    #[test]
    fn long_drafts_scroll_on_one_row() {
        let long: String = (0..100)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let (e, _) = typed(long.as_bytes());
        let r = rendered(&e, 40);
        let visible = r.trim_start_matches("\r> ").split('\x1b').next().unwrap();
        assert!(visible.len() <= 37, "{} columns shown", visible.len());
        assert!(long.ends_with(visible), "the end of the draft is visible");
        // Home shows the start again.
        let mut e = e;
        e.handle_bytes(b"\x01");
        let r = rendered(&e, 40);
        assert!(r.starts_with("\r> abcdefg"));
        assert!(r.ends_with("\r\x1b[2C"));
    }

    #[test]
    fn wide_characters_never_overflow_the_row() {
        let (e, _) = typed("\u{1f600}".repeat(50).as_bytes());
        let r = rendered(&e, 21);
        let visible = r.trim_start_matches("\r> ").split('\x1b').next().unwrap();
        assert!(str_width(visible) <= 18, "{}", str_width(visible));
    }
}
