//! Splitting stdin bytes into messages: lines, NUL-separated records, or the
//! whole input as one message.
//!
//! Pure code. Records that lie inside one chunk of input are handed out as
//! borrowed slices (no copy); only records that span chunks are assembled in
//! a buffer, which never grows past the record limit: a longer record is
//! reported as an error and skipped up to its separator.
//!
//! The receiver of the records can stop the split after any record (its
//! queues are full): one 64 KiB read of empty lines is 65,536 messages,
//! and none of them may be taken before there is room. The bytes after
//! that record are left to the caller, who offers them again later.

use std::borrow::Cow;
use std::fmt;

/// How stdin is cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    /// One message per `\n`; only that byte is removed. A last
    /// unterminated line is sent at end of input.
    Lines,
    /// One message per NUL byte (as written by `find -print0`).
    Nul,
    /// All of stdin is one message, sent at end of input.
    Whole,
}

impl InputMode {
    fn separator(self) -> Option<u8> {
        match self {
            InputMode::Lines => Some(b'\n'),
            InputMode::Nul => Some(0),
            InputMode::Whole => None,
        }
    }
}

/// Where records go: a message (borrowed from the input when possible) or
/// the reason a record was skipped. It returns whether it takes more
/// records now: `false` stops the split after this one.
pub type Emit<'e, 'a> = dyn FnMut(Result<Cow<'a, [u8]>, InputError>) -> bool + 'e;

/// A record that could not become a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputError {
    /// The record is longer than the limit; it was skipped.
    TooLarge { limit: usize },
}

impl InputError {
    /// A record over a limit given, as `--max-message` is, in a `u64`.
    pub fn too_large(limit: u64) -> InputError {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        InputError::TooLarge { limit }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::TooLarge { limit } => write!(
                f,
                "input record longer than --max-message ({limit} bytes) was skipped"
            ),
        }
    }
}

/// Cuts a byte stream into records.
#[derive(Debug)]
pub struct Splitter {
    mode: InputMode,
    limit: usize,
    /// The part of a record seen so far, when it spans chunks.
    partial: Vec<u8>,
    /// Skipping the rest of an over-long record.
    skipping: bool,
}

impl Splitter {
    pub fn new(mode: InputMode, limit: usize) -> Splitter {
        Splitter {
            mode,
            limit,
            partial: Vec::new(),
            skipping: false,
        }
    }

    /// Feeds the next chunk of input; `emit` receives every record it
    /// completes, in order, until it returns `false`. Returns how many
    /// bytes were used: all of them, or those up to the separator of the
    /// record after which `emit` said stop. The caller keeps the rest and
    /// pushes it again when it takes records again.
    pub fn push<'a>(&mut self, bytes: &'a [u8], emit: &mut Emit<'_, 'a>) -> usize {
        let Some(sep) = self.mode.separator() else {
            if let Err(e) = self.append(bytes) {
                emit(Err(e));
            }
            return bytes.len();
        };
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == sep) {
            let record = &rest[..pos];
            rest = &rest[pos + 1..];
            if self.skipping {
                self.skipping = false;
                continue;
            }
            let more = if self.partial.is_empty() {
                if record.len() > self.limit {
                    emit(Err(InputError::TooLarge { limit: self.limit }))
                } else {
                    emit(Ok(Cow::Borrowed(record)))
                }
            } else {
                let appended = self.append(record);
                // The separator ends the record, over-long or not.
                self.skipping = false;
                match appended {
                    Ok(()) => emit(Ok(Cow::Owned(std::mem::take(&mut self.partial)))),
                    Err(e) => emit(Err(e)),
                }
            };
            if !more {
                return bytes.len() - rest.len();
            }
        }
        if let Err(e) = self.append(rest) {
            emit(Err(e));
        }
        bytes.len()
    }

    /// Signals end of input: the last unterminated record (or, in whole
    /// mode, everything) is emitted. An empty input in whole mode is one
    /// empty message; in the other modes it is none.
    pub fn finish(&mut self, emit: &mut Emit<'_, '_>) {
        let skipping = std::mem::take(&mut self.skipping);
        let record = std::mem::take(&mut self.partial);
        if skipping {
            return;
        }
        if self.mode == InputMode::Whole || !record.is_empty() {
            emit(Ok(Cow::Owned(record)));
        }
    }

    /// Bytes held for a record not yet complete.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Adds to the partial record; the first time it outgrows the limit,
    /// drops it, starts skipping, and says so.
    fn append(&mut self, bytes: &[u8]) -> Result<(), InputError> {
        if self.skipping || bytes.is_empty() {
            return Ok(());
        }
        if self.partial.len() + bytes.len() > self.limit {
            self.partial = Vec::new();
            self.skipping = true;
            return Err(InputError::TooLarge { limit: self.limit });
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `chunks` and returns what came out, errors as `None`.
    fn split(mode: InputMode, limit: usize, chunks: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        let mut s = Splitter::new(mode, limit);
        let mut out = Vec::new();
        let mut emit = |r: Result<Cow<'_, [u8]>, InputError>| {
            out.push(r.ok().map(|c| c.into_owned()));
            true
        };
        for c in chunks {
            s.push(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    fn msgs(list: &[&[u8]]) -> Vec<Option<Vec<u8>>> {
        list.iter().map(|m| Some(m.to_vec())).collect()
    }

    #[test]
    fn lines_remove_only_the_newline() {
        assert_eq!(
            split(InputMode::Lines, 100, &[b"a\r\nb\n\nc"]),
            msgs(&[b"a\r", b"b", b"", b"c"])
        );
        assert_eq!(split(InputMode::Lines, 100, &[b"x\n"]), msgs(&[b"x"]));
        assert_eq!(split(InputMode::Lines, 100, &[]), msgs(&[]));
        assert_eq!(split(InputMode::Lines, 100, &[b"\n"]), msgs(&[b""]));
    }

    #[test]
    fn records_spanning_chunks_are_joined() {
        assert_eq!(
            split(InputMode::Lines, 100, &[b"he", b"llo\nwor", b"", b"ld\n"]),
            msgs(&[b"hello", b"world"])
        );
        let all = b"one\ntwo\nthree";
        for cut in 0..all.len() {
            assert_eq!(
                split(InputMode::Lines, 100, &[&all[..cut], &all[cut..]]),
                msgs(&[b"one", b"two", b"three"]),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn nul_mode_keeps_newlines() {
        assert_eq!(
            split(InputMode::Nul, 100, &[b"a\nb\0c\0"]),
            msgs(&[b"a\nb", b"c"])
        );
    }

    #[test]
    fn whole_mode_is_one_message_even_when_empty() {
        assert_eq!(
            split(InputMode::Whole, 100, &[b"a\n", b"\0b"]),
            msgs(&[b"a\n\0b"])
        );
        assert_eq!(split(InputMode::Whole, 100, &[]), msgs(&[b""]));
    }

    #[test]
    fn limit_is_inclusive_and_long_records_are_skipped() {
        assert_eq!(split(InputMode::Lines, 3, &[b"abc\n"]), msgs(&[b"abc"]));
        assert_eq!(
            split(InputMode::Lines, 3, &[b"abcd\nok\n"]),
            vec![None, Some(b"ok".to_vec())]
        );
        // Spanning chunks, the error comes once and the tail is skipped.
        assert_eq!(
            split(InputMode::Lines, 3, &[b"ab", b"cd", b"ef\nok"]),
            vec![None, Some(b"ok".to_vec())]
        );
        assert_eq!(split(InputMode::Whole, 3, &[b"ab", b"cd"]), vec![None]);
        assert_eq!(split(InputMode::Lines, 3, &[b"ab", b"cd"]), vec![None]);
    }

    /// Stopped after every `every`-th record and pushed the rest again,
    /// the split gives the same records as in one go, and never more than
    /// `every` from one push.
    fn split_stopping(
        mode: InputMode,
        limit: usize,
        chunks: &[&[u8]],
        every: usize,
    ) -> Vec<Option<Vec<u8>>> {
        let mut s = Splitter::new(mode, limit);
        let mut out = Vec::new();
        for c in chunks {
            let mut rest: &[u8] = c;
            loop {
                let mut taken = 0;
                let used = s.push(rest, &mut |r| {
                    out.push(r.ok().map(|c| c.into_owned()));
                    taken += 1;
                    taken < every
                });
                assert!(taken <= every);
                rest = &rest[used..];
                if rest.is_empty() {
                    break;
                }
                assert_eq!(taken, every, "stopped only when told to");
            }
        }
        s.finish(&mut |r| {
            out.push(r.ok().map(|c| c.into_owned()));
            true
        });
        out
    }

    #[test]
    fn a_stopped_split_resumes_where_it_stopped() {
        let cases: &[(InputMode, usize, &[&[u8]])] = &[
            (InputMode::Lines, 100, &[b"\n\n\n\n\n"]),
            (InputMode::Lines, 100, &[b"a\nbb\n\nccc", b"c\nd", b"\n\ne"]),
            (InputMode::Lines, 3, &[b"abcd\nok\nab", b"cd", b"ef\nx\n\n"]),
            (InputMode::Nul, 100, &[b"a\0\0b\nc\0", b"\0"]),
            (InputMode::Whole, 100, &[b"a\n", b"b\0"]),
        ];
        for &(mode, limit, chunks) in cases {
            let whole = split(mode, limit, chunks);
            for every in 1..=4 {
                assert_eq!(
                    split_stopping(mode, limit, chunks, every),
                    whole,
                    "{mode:?} {chunks:?}, stopping every {every}"
                );
            }
        }
        // One read of empty lines: each push takes one record and leaves
        // the rest unread.
        let mut s = Splitter::new(InputMode::Lines, 10);
        let mut n = 0;
        assert_eq!(
            s.push(&[b'\n'; 65_536], &mut |_| {
                n += 1;
                false
            }),
            1
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn buffer_never_exceeds_the_limit() {
        let mut s = Splitter::new(InputMode::Lines, 10);
        let mut errors = 0;
        for _ in 0..1000 {
            s.push(b"0123456", &mut |r| {
                errors += r.is_err() as usize;
                true
            });
            assert!(s.buffered() <= 10);
        }
        assert_eq!(errors, 1);
    }
}
