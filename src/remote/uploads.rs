//! The upload queue: results stored locally wait here for a worker to send them. Bounded
//! (a dead or slow remote must not grow the daemon): when full, new uploads are dropped and
//! counted. `wait_idle` is what `zcfs remote flush` waits on.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::hash::Digest;
use crate::store::manifest::Entry;

/// One stored result to send: its pack, then its manifest entry.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: Digest,
    pub entry: Entry,
    pub size: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Upload>,
    bytes: u64,
    in_flight: usize,
    closed: bool,
}

pub struct Queue {
    state: Mutex<State>,
    changed: Condvar,
    max_items: usize,
    max_bytes: u64,
}

impl Queue {
    pub fn new(max_items: usize, max_bytes: u64) -> Queue {
        Queue {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            max_items: max_items.max(1),
            max_bytes,
        }
    }

    /// Queues an upload; `false` (dropped) if the queue is full or closed.
    pub fn push(&self, u: Upload) -> bool {
        let mut s = self.state.lock();
        if s.closed
            || s.queue.len() >= self.max_items
            || (!s.queue.is_empty() && s.bytes + u.size > self.max_bytes)
        {
            return false;
        }
        s.bytes += u.size;
        s.queue.push_back(u);
        self.changed.notify_all();
        true
    }

    /// Queues an upload, waiting for room (`zcfs remote push` must not drop anything).
    /// `false` if the queue closed meanwhile.
    pub fn push_waiting(&self, u: Upload) -> bool {
        let mut s = self.state.lock();
        loop {
            if s.closed {
                return false;
            }
            if s.queue.len() < self.max_items
                && (s.queue.is_empty() || s.bytes + u.size <= self.max_bytes)
            {
                s.bytes += u.size;
                s.queue.push_back(u);
                self.changed.notify_all();
                return true;
            }
            self.changed.wait(&mut s);
        }
    }

    /// The next upload, waiting for one; `None` once closed and empty. The caller calls
    /// [`Queue::done`] when it is finished with it.
    pub fn pop(&self) -> Option<Upload> {
        let mut s = self.state.lock();
        loop {
            if let Some(u) = s.queue.pop_front() {
                s.bytes -= u.size;
                s.in_flight += 1;
                self.changed.notify_all();
                return Some(u);
            }
            if s.closed {
                return None;
            }
            self.changed.wait(&mut s);
        }
    }

    pub fn done(&self) {
        let mut s = self.state.lock();
        s.in_flight -= 1;
        self.changed.notify_all();
    }

    /// Waits until nothing is queued or in flight; `false` on timeout.
    pub fn wait_idle(&self, max: Duration) -> bool {
        let until = Instant::now() + max;
        let mut s = self.state.lock();
        while !s.queue.is_empty() || s.in_flight > 0 {
            if self.changed.wait_until(&mut s, until).timed_out() {
                return s.queue.is_empty() && s.in_flight == 0;
            }
        }
        true
    }

    /// Queued and in flight.
    pub fn pending(&self) -> (usize, u64, usize) {
        let s = self.state.lock();
        (s.queue.len(), s.bytes, s.in_flight)
    }

    /// Stops the workers once the queue is empty; later pushes are dropped.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(n: u8, size: u64) -> Upload {
        Upload {
            key: Digest([n; 32]),
            entry: Entry {
                inputs: Default::default(),
                pack: Digest([n; 32]),
                created: 0,
            },
            size,
        }
    }

    #[test]
    fn bounded_by_count_and_bytes_and_drained_in_order() {
        let q = Queue::new(3, 100);
        assert!(q.push(up(1, 60)));
        assert!(!q.push(up(2, 60)), "over the bytes");
        assert!(q.push(up(3, 40)));
        assert!(q.push(up(4, 0)));
        assert!(!q.push(up(5, 0)), "over the count");
        assert!(!q.wait_idle(Duration::from_millis(10)));
        let a = q.pop().unwrap();
        assert_eq!(a.key, Digest([1; 32]));
        assert_eq!(q.pending(), (2, 40, 1));
        q.done();
        q.pop().unwrap();
        q.done();
        q.pop().unwrap();
        q.done();
        assert!(q.wait_idle(Duration::from_millis(10)));
        // A single item larger than the byte bound still goes through an empty queue.
        assert!(q.push(up(6, 1000)));
        q.close();
        assert!(q.pop().is_some());
        q.done();
        assert!(q.pop().is_none());
        assert!(!q.push(up(7, 1)));
    }
}
