//! `ReadBuf`: the receive buffer between a nonblocking reader and the
//! frame decoder.
//!
//! A byte buffer with a window of unread bytes. `fill_from` makes one
//! `read` call into the free space (compacting with `copy_within` first
//! when the tail is short), and `consume` advances past decoded bytes. It
//! only has to hold one maximal frame, because the decoder consumes every
//! complete frame before the next read.
//!
//! A one-on-one chat's buffer is fixed: allocated once at its largest and
//! never grown, so the warm read path does no allocation. A room member's
//! is *growable*: it starts empty, grows (doubling, in the rare branch
//! that compacts) up to the same largest size while a frame does not fit,
//! and [`ReadBuf::release`] gives it back when it is empty, so an idle
//! member holds no receive buffer. The write side lives in the session's
//! outbox, which is flushed by the event loop.

use std::io::{self, Read};

/// The first allocation of a growable buffer.
const GROW_FROM: usize = 4096;

/// Receive buffer: fixed, or growable up to a maximum.
#[derive(Debug)]
pub struct ReadBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The last read returned less than the space it was offered.
    short: bool,
    /// The most `buf` may hold: its length when fixed.
    max: usize,
}

impl ReadBuf {
    /// A fixed buffer of `cap` bytes, allocated now.
    pub fn with_capacity(cap: usize) -> ReadBuf {
        ReadBuf {
            buf: vec![0u8; cap].into_boxed_slice(),
            start: 0,
            end: 0,
            short: false,
            max: cap,
        }
    }

    /// An empty buffer that grows on demand up to `max` bytes.
    pub fn growable(max: usize) -> ReadBuf {
        ReadBuf {
            buf: Box::default(),
            start: 0,
            end: 0,
            short: false,
            max,
        }
    }

    /// Bytes allocated.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Gives the memory back if nothing is unread; the next `fill_from`
    /// allocates again (from a small size, growing up to the maximum).
    pub fn release(&mut self) {
        if self.start == self.end && !self.buf.is_empty() {
            self.buf = Box::default();
            self.start = 0;
            self.end = 0;
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

    /// Free space after the unread bytes, once compacted (and grown).
    pub fn free(&self) -> usize {
        self.max - (self.end - self.start)
    }

    /// One `read` into the free space. `Ok(0)` means end of stream, unless
    /// the buffer is full (a caller bug: consume before reading again).
    pub fn fill_from<R: Read>(&mut self, src: &mut R) -> io::Result<usize> {
        debug_assert!(self.free() > 0, "ReadBuf full: consume before reading");
        if self.end == self.buf.len() {
            self.make_room();
        }
        let room = self.buf.len() - self.end;
        let n = src.read(&mut self.buf[self.end..])?;
        self.short = n < room;
        self.end += n;
        debug_assert!(self.end <= self.buf.len());
        Ok(n)
    }

    /// The tail is full: grow a growable buffer that is over half full of
    /// unread bytes, else move the unread bytes to the front.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self) {
        let unread = self.end - self.start;
        if self.buf.len() < self.max && unread * 2 >= self.buf.len() {
            let len = (self.buf.len() * 2).clamp(GROW_FROM, self.max);
            let mut grown = vec![0u8; len].into_boxed_slice();
            grown[..unread].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = grown;
        } else {
            self.buf.copy_within(self.start..self.end, 0);
        }
        self.end = unread;
        self.start = 0;
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
    fn a_growable_buffer_grows_to_its_max_and_is_given_back() {
        let mut b = ReadBuf::growable(3 * GROW_FROM);
        assert_eq!(b.capacity(), 0);
        assert_eq!(b.free(), 3 * GROW_FROM);
        let frame = vec![7u8; 3 * GROW_FROM];
        let mut src: &[u8] = &frame;
        // A frame larger than the buffer: it grows while the frame is
        // incomplete, never past the maximum.
        assert_eq!(b.fill_from(&mut src).unwrap(), GROW_FROM);
        assert_eq!(b.capacity(), GROW_FROM);
        assert_eq!(b.fill_from(&mut src).unwrap(), GROW_FROM);
        assert_eq!(b.capacity(), 2 * GROW_FROM);
        assert_eq!(b.fill_from(&mut src).unwrap(), GROW_FROM);
        assert_eq!(b.capacity(), 3 * GROW_FROM);
        assert_eq!(b.data(), &frame[..]);
        assert_eq!(b.free(), 0);
        // Not given back while bytes are unread.
        b.consume(10);
        b.release();
        assert_eq!(b.capacity(), 3 * GROW_FROM);
        b.consume(b.data().len());
        b.release();
        assert_eq!(b.capacity(), 0);
        let mut src: &[u8] = b"abc";
        assert_eq!(b.fill_from(&mut src).unwrap(), 3);
        assert!(b.was_short());
        assert_eq!(b.data(), b"abc");
        assert_eq!(b.capacity(), GROW_FROM);
    }

    #[test]
    fn a_growable_buffer_compacts_rather_than_grows_when_mostly_read() {
        let mut b = ReadBuf::growable(4 * GROW_FROM);
        let data = vec![1u8; 2 * GROW_FROM];
        let mut src: &[u8] = &data;
        b.fill_from(&mut src).unwrap();
        b.consume(GROW_FROM - 10);
        b.fill_from(&mut src).unwrap();
        assert_eq!(b.capacity(), GROW_FROM, "10 bytes unread: compacted");
        assert_eq!(b.data().len(), GROW_FROM);
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
