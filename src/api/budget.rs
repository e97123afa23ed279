//! The client-side call budget: Microsoft allows 100 calls a minute and 1,500
//! an hour per app and tenant; we count our own requests in sliding windows and
//! wait for a free slot rather than send a request that would be throttled.
//!
//! The budget is per [`super::DefenderClient`] and never persisted: a fresh
//! process starts with a full budget and relies on `Retry-After` if another
//! process used the same app.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// One sliding window: at most `limit` sends in any `span`.
#[derive(Debug)]
struct Window {
    limit: u32,
    span: Duration,
    sent: VecDeque<Instant>,
}

impl Window {
    fn prune(&mut self, now: Instant) {
        while let Some(&first) = self.sent.front() {
            if now.saturating_duration_since(first) >= self.span {
                self.sent.pop_front();
            } else {
                break;
            }
        }
    }

    /// When the next send may go, given what was sent so far.
    fn free_at(&mut self, now: Instant) -> Instant {
        self.prune(now);
        if (self.sent.len() as u32) < self.limit {
            now
        } else {
            // The oldest send that still counts must leave the window.
            let idx = self.sent.len() - self.limit as usize;
            self.sent[idx] + self.span
        }
    }
}

/// Sliding windows plus a "throttled until" set by `Retry-After`.
#[derive(Debug)]
pub struct Budget {
    windows: Vec<Window>,
    throttled_until: Option<Instant>,
}

impl Budget {
    pub fn new(per_minute: u32, per_hour: u32) -> Budget {
        let mut windows = Vec::new();
        for (limit, span) in [
            (per_minute, Duration::from_secs(60)),
            (per_hour, Duration::from_secs(3600)),
        ] {
            windows.push(Window {
                limit: limit.max(1),
                span,
                sent: VecDeque::new(),
            });
        }
        Budget {
            windows,
            throttled_until: None,
        }
    }

    /// Take a slot now (`Ok`) or say when one frees up (`Err(at)`); the caller
    /// waits until then and asks again.
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        let mut at = now;
        if let Some(t) = self.throttled_until {
            if t > now {
                at = t;
            } else {
                self.throttled_until = None;
            }
        }
        for w in &mut self.windows {
            at = at.max(w.free_at(now));
        }
        if at > now {
            return Err(at);
        }
        for w in &mut self.windows {
            w.sent.push_back(now);
        }
        Ok(())
    }

    /// The server said not before `until` (a 429's `Retry-After`).
    pub fn throttle_until(&mut self, until: Instant) {
        self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_minute_window_slides() {
        let t0 = Instant::now();
        let mut b = Budget::new(3, 100);
        for _ in 0..3 {
            b.try_acquire(t0).unwrap();
        }
        assert_eq!(b.try_acquire(t0), Err(t0 + Duration::from_secs(60)));
        let t1 = t0 + Duration::from_secs(59);
        assert_eq!(b.try_acquire(t1), Err(t0 + Duration::from_secs(60)));
        let t2 = t0 + Duration::from_secs(60);
        b.try_acquire(t2).unwrap();
        b.try_acquire(t2).unwrap();
        b.try_acquire(t2).unwrap();
        assert_eq!(b.try_acquire(t2), Err(t2 + Duration::from_secs(60)));
    }

    #[test]
    fn hour_window_binds_after_many_minutes() {
        let t0 = Instant::now();
        let mut b = Budget::new(100, 1500);
        let mut now = t0;
        let mut sent = 0u32;
        // Send as fast as the budget allows until it asks for a wait past 20 minutes.
        let blocked_until = loop {
            match b.try_acquire(now) {
                Ok(()) => sent += 1,
                Err(at) if at > t0 + Duration::from_secs(20 * 60) => break at,
                Err(at) => now = at,
            }
        };
        assert_eq!(sent, 1500, "the hour limit stops us after 15 minutes");
        assert_eq!(blocked_until, t0 + Duration::from_secs(3600));
        assert!(now <= t0 + Duration::from_secs(15 * 60));
    }

    #[test]
    fn retry_after_blocks_every_send_until_it_passes() {
        let t0 = Instant::now();
        let mut b = Budget::new(100, 1500);
        b.throttle_until(t0 + Duration::from_secs(7));
        b.throttle_until(t0 + Duration::from_secs(3)); // an earlier one never shortens it
        assert_eq!(b.try_acquire(t0), Err(t0 + Duration::from_secs(7)));
        assert_eq!(
            b.try_acquire(t0 + Duration::from_millis(6999)),
            Err(t0 + Duration::from_secs(7))
        );
        b.try_acquire(t0 + Duration::from_secs(7)).unwrap();
    }
}
