//! Reusing response-body buffers from one page to the next.
//!
//! A page of alerts with evidence is a body of tens of megabytes. Allocating a
//! fresh buffer for each one costs a page fault per 4 KiB as the body arrives
//! and gives the memory back to the system only for the next page to fault it
//! in again; it also leaves the peak memory to the allocator's whims. `pull`
//! holds at most two pages at once (one being written, one arriving), so the
//! client keeps the buffers of finished pages and fills them again: the
//! memory a pull uses is two bodies, whatever the number of pages.

use std::sync::{Arc, Mutex, PoisonError};

/// Buffers idle between pages; more are dropped.
const KEEP: usize = 2;

/// A shared stack of emptied body buffers.
#[derive(Debug, Clone, Default)]
pub struct BodyPool {
    idle: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl BodyPool {
    /// An empty buffer with room for at least `capacity` bytes: the largest
    /// idle one, grown if needed, or a new one. Growth is exact plus a little
    /// headroom (`reserve` would double a 33 MB buffer for a page one byte
    /// larger than the last).
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        match idle.pop() {
            Some(mut buf) => {
                buf.clear();
                if buf.capacity() < capacity {
                    buf.reserve_exact(with_headroom(capacity));
                }
                buf
            }
            None => fresh(with_headroom(capacity)),
        }
    }

    /// Give a buffer back for a later page.
    pub fn give(&self, buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < KEEP {
            idle.push(buf);
            // The largest last, so `take` hands it out first.
            idle.sort_by_key(Vec::capacity);
        }
    }

    /// How many buffers are idle.
    pub fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Pages of one endpoint differ in size by a few percent: room for 1/16 more.
fn with_headroom(capacity: usize) -> usize {
    capacity.saturating_add(capacity / 16)
}

/// A new buffer. A large one is backed by huge pages where the system allows
/// it: a 33 MB body then costs a few dozen page faults as it arrives, not
/// eight thousand.
fn fresh(capacity: usize) -> Vec<u8> {
    tracing::trace!("a new body buffer of {capacity} bytes");
    let buf = Vec::with_capacity(capacity);
    #[cfg(target_os = "linux")]
    if capacity >= HUGE << 2 {
        let start = (buf.as_ptr() as usize).next_multiple_of(HUGE);
        let end = (buf.as_ptr() as usize + capacity) / HUGE * HUGE;
        if end > start {
            // SAFETY: advice only, on whole pages inside this allocation; it
            // changes how they are backed, never their contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    buf
}

/// Transparent huge pages on x86-64 and most arm64 systems.
#[cfg(target_os = "linux")]
const HUGE: usize = 2 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_and_at_most_two_are_kept() {
        let pool = BodyPool::default();
        let mut a = pool.take(100);
        a.extend_from_slice(b"old body");
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take(10);
        assert!(b.is_empty() && b.capacity() >= 100);
        assert_eq!(b.as_ptr(), ptr, "the same allocation is reused");
        // Grown to what is asked (and a sixteenth), not doubled.
        pool.give(b);
        let c = pool.take(1 << 20);
        assert!(c.capacity() >= 1 << 20 && c.capacity() < (1 << 20) * 5 / 4);
        pool.give(c);
        pool.take(0);
        for _ in 0..3 {
            pool.give(vec![0u8; 8]);
        }
        assert_eq!(pool.idle(), 2);
        pool.give(Vec::new());
        assert_eq!(pool.idle(), 2);
    }
}
