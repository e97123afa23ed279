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

/// Bodies smaller than this are not worth pooling.
const LARGE: usize = 1 << 20;

/// A shared stack of emptied body buffers.
#[derive(Debug, Clone, Default)]
pub struct BodyPool {
    idle: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl BodyPool {
    /// An empty buffer with room for at least `capacity` bytes: for a large
    /// body, the smallest idle one that fits (else the largest, grown), or a
    /// new one. Growth is exact plus a little headroom (`reserve` would
    /// double a 33 MB buffer for a page one byte larger than the last). A
    /// small body gets a new buffer: were it to take an idle large one, it
    /// would hold it (an endpoint's first page, asked for early, is held
    /// through the endpoint before it), and the next large body would need a
    /// new one: one large body more in memory.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        if capacity < LARGE {
            return Vec::with_capacity(capacity);
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        // Sorted by capacity: the first that fits, else the largest.
        let fits = idle.iter().position(|b| b.capacity() >= capacity);
        let pick = fits.or_else(|| idle.len().checked_sub(1));
        match pick.map(|i| idle.remove(i)) {
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
        if buf.capacity() < LARGE {
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
        const MB: usize = 1 << 20;
        let pool = BodyPool::default();
        let mut a = pool.take(2 * MB);
        a.extend_from_slice(b"old body");
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take(MB);
        assert!(b.is_empty() && b.capacity() >= 2 * MB);
        assert_eq!(b.as_ptr(), ptr, "the same allocation is reused");
        // Grown to what is asked (and a sixteenth), not doubled.
        pool.give(b);
        let c = pool.take(8 * MB);
        assert!(c.capacity() >= 8 * MB && c.capacity() < 8 * MB * 5 / 4);
        pool.give(c);
        for _ in 0..3 {
            pool.give(vec![0u8; 2 * MB]);
        }
        assert_eq!(pool.idle(), 2);
        pool.give(Vec::new());
        assert_eq!(pool.idle(), 2);
    }

    #[test]
    fn a_small_body_leaves_the_large_buffers_to_large_ones() {
        const MB: usize = 1 << 20;
        let pool = BodyPool::default();
        pool.give(Vec::with_capacity(40 * MB));
        pool.give(Vec::with_capacity(36 * MB));
        // A small body gets a buffer of its own, and it is not kept after.
        let small = pool.take(150_000);
        assert!(small.capacity() < MB);
        assert_eq!(pool.idle(), 2);
        pool.give(small);
        assert_eq!(pool.idle(), 2);
        // A large body gets the smallest that fits.
        let big = pool.take(35 * MB);
        assert!(big.capacity() >= 35 * MB && big.capacity() < 40 * MB);
        let bigger = pool.take(38 * MB);
        assert!(bigger.capacity() >= 40 * MB);
        assert_eq!(pool.idle(), 0);
    }
}
