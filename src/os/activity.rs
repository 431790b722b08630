//! Which of a room's connections need the loop, so that a room's turn
//! costs in proportion to the members that had something happen, not to
//! the members there are.
//!
//! Two structures, both keyed by the loop's slab key:
//! - the *marked* keys of a turn, each once: connections with a readiness
//!   event, a deadline due, bytes fed by the room, or work left from the
//!   turn before;
//! - the *deadlines*: a min-heap of `(deadline, key)` with lazy
//!   invalidation. Each key has at most one live entry, its earliest
//!   known deadline (`armed`); a deadline that moves later leaves the
//!   entry where it is (its key is then visited early, finds nothing due,
//!   and is armed again with the later one), as the loop's timerfd does.
//!   Entries whose key no longer has them armed are stale and skipped,
//!   and the heap is rebuilt when they outnumber the live ones.
//!
//! It holds no connection and decides nothing: the room's turn
//! (`os/room_loop.rs`) marks, takes and arms.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// See the module documentation.
#[derive(Default)]
pub struct Activity {
    /// Keys marked since the last `take`, each once.
    keys: Vec<usize>,
    /// Whether each key is in `keys`.
    marked: Vec<bool>,
    /// Each key's live entry in `heap`, if any.
    armed: Vec<Option<Instant>>,
    /// Entries in `armed`.
    live: usize,
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Activity {
    /// Marks `key` for this turn (once, however often it is called).
    pub fn mark(&mut self, key: usize) {
        if key >= self.marked.len() {
            self.marked.resize(key + 1, false);
        }
        if !self.marked[key] {
            self.marked[key] = true;
            self.keys.push(key);
        }
    }

    /// The marked keys, in the order they were marked.
    pub fn marked(&self) -> &[usize] {
        &self.keys
    }

    /// Moves the marked keys into `into` (cleared first) and unmarks them.
    pub fn take(&mut self, into: &mut Vec<usize>) {
        into.clear();
        for &k in &self.keys {
            self.marked[k] = false;
        }
        std::mem::swap(into, &mut self.keys);
    }

    /// Records `key`'s next deadline, if it is earlier than the one it has
    /// on the heap (or it has none).
    pub fn arm(&mut self, key: usize, deadline: Option<Instant>) {
        let Some(t) = deadline else {
            return;
        };
        if key >= self.armed.len() {
            self.armed.resize(key + 1, None);
        }
        match self.armed[key] {
            Some(a) if a <= t => return,
            Some(_) => {}
            None => self.live += 1,
        }
        self.armed[key] = Some(t);
        self.heap.push(Reverse((t, key)));
        if self.heap.len() > 2 * self.live + 64 {
            let armed = &self.armed;
            self.heap.retain(|Reverse((t, k))| armed[*k] == Some(*t));
        }
    }

    /// `key` is gone: its entry, if any, is stale from now on.
    pub fn forget(&mut self, key: usize) {
        if let Some(a) = self.armed.get_mut(key)
            && a.take().is_some()
        {
            self.live -= 1;
        }
    }

    /// The earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.drop_stale();
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// A key whose deadline is at or before `due`, disarmed (arm it again
    /// after visiting it).
    pub fn pop_due(&mut self, due: Instant) -> Option<usize> {
        self.drop_stale();
        let &Reverse((t, key)) = self.heap.peek()?;
        if t > due {
            return None;
        }
        self.heap.pop();
        self.armed[key] = None;
        self.live -= 1;
        Some(key)
    }

    fn drop_stale(&mut self) {
        while let Some(&Reverse((t, key))) = self.heap.peek() {
            if self.armed.get(key).copied().flatten() == Some(t) {
                return;
            }
            self.heap.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn marks_each_key_once_and_takes_them_in_order() {
        let mut a = Activity::default();
        for k in [5, 1, 5, 9, 1] {
            a.mark(k);
        }
        assert_eq!(a.marked(), [5, 1, 9]);
        let mut keys = Vec::new();
        a.take(&mut keys);
        assert_eq!(keys, [5, 1, 9]);
        assert!(a.marked().is_empty());
        a.mark(1);
        assert_eq!(a.marked(), [1]);
    }

    #[test]
    fn deadlines_come_out_in_order_and_stale_ones_are_skipped() {
        let t = Instant::now();
        let s = Duration::from_secs;
        let mut a = Activity::default();
        a.arm(1, Some(t + s(5)));
        a.arm(2, Some(t + s(3)));
        a.arm(3, Some(t + s(4)));
        a.arm(4, None);
        // Later: the earlier entry stays; earlier: it replaces it.
        a.arm(2, Some(t + s(9)));
        a.arm(1, Some(t + s(1)));
        a.forget(3);
        assert_eq!(a.next_deadline(), Some(t + s(1)));
        assert_eq!(a.pop_due(t), None);
        assert_eq!(a.pop_due(t + s(10)), Some(1));
        assert_eq!(a.pop_due(t + s(10)), Some(2));
        assert_eq!(
            a.pop_due(t + s(10)),
            None,
            "3 was forgotten, 1's old entry is stale"
        );
        assert_eq!(a.next_deadline(), None);
        assert_eq!(a.live, 0);
    }

    #[test]
    fn the_heap_stays_bounded_when_deadlines_keep_moving_earlier() {
        let t = Instant::now();
        let mut a = Activity::default();
        for i in 0..10_000u64 {
            a.arm(7, Some(t + Duration::from_secs(1_000_000 - i)));
        }
        assert!(a.heap.len() <= 2 * a.live + 65, "{}", a.heap.len());
        assert_eq!(a.pop_due(t + Duration::from_secs(2_000_000)), Some(7));
        assert_eq!(a.next_deadline(), None);
    }
}
