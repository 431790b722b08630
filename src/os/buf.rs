//! `ReadBuf`: the receive buffer between a nonblocking reader and the
//! frame decoder.
//!
//! A fixed-capacity `Vec<u8>` with a window of unread bytes. `fill_from`
//! makes one `read` call into the free space (compacting with `copy_within`
//! first when the tail is short), and `consume` advances past decoded bytes.
//! The capacity is set once and never grows: it only has to hold one
//! maximal frame, because the decoder consumes every complete frame before
//! the next read. The write side lives in the session's outbox, which is
//! flushed by the event loop.

use std::io::{self, Read};

/// Receive buffer with a fixed capacity.
#[derive(Debug)]
pub struct ReadBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The last read returned less than the space it was offered.
    short: bool,
}

impl ReadBuf {
    pub fn with_capacity(cap: usize) -> ReadBuf {
        ReadBuf {
            buf: vec![0u8; cap].into_boxed_slice(),
            start: 0,
            end: 0,
            short: false,
        }
    }

    /// Unread bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` bytes at the front as used.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Whether the last `fill_from` got less than it asked for: on Linux a
    /// socket or pipe then had nothing more queued at that moment, and new
    /// data will raise a new edge-triggered event, so another read that
    /// would only return `WouldBlock` can be skipped.
    pub fn was_short(&self) -> bool {
        self.short
    }

    /// Free space after the unread bytes, once compacted.
    pub fn free(&self) -> usize {
        self.buf.len() - (self.end - self.start)
    }

    /// One `read` into the free space. `Ok(0)` means end of stream, unless
    /// the buffer is full (a caller bug: consume before reading again).
    pub fn fill_from<R: Read>(&mut self, src: &mut R) -> io::Result<usize> {
        debug_assert!(self.free() > 0, "ReadBuf full: consume before reading");
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = self.buf.len() - self.end;
        let n = src.read(&mut self.buf[self.end..])?;
        self.short = n < room;
        self.end += n;
        debug_assert!(self.end <= self.buf.len());
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_consume_and_compact() {
        let mut b = ReadBuf::with_capacity(8);
        let mut src: &[u8] = b"abcdefghijkl";
        assert_eq!(b.fill_from(&mut src).unwrap(), 8);
        assert!(!b.was_short());
        assert_eq!(b.data(), b"abcdefgh");
        b.consume(6);
        assert_eq!(b.free(), 6);
        // Tail is full, so this read compacts "gh" to the front first.
        assert_eq!(b.fill_from(&mut src).unwrap(), 4);
        assert!(b.was_short());
        assert_eq!(b.data(), b"ghijkl");
        b.consume(6);
        assert!(b.data().is_empty());
        assert_eq!(b.fill_from(&mut src).unwrap(), 0);
    }

    #[test]
    fn consume_all_resets_to_the_front() {
        let mut b = ReadBuf::with_capacity(4);
        let mut src: &[u8] = b"abcd";
        b.fill_from(&mut src).unwrap();
        b.consume(4);
        assert_eq!(b.free(), 4);
        let mut src: &[u8] = b"wxyz";
        assert_eq!(b.fill_from(&mut src).unwrap(), 4);
        assert_eq!(b.data(), b"wxyz");
    }
}
