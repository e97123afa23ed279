//! How long to wait before trying a request again.
//!
//! Transient failures (5xx, timeouts, resets, cut-off bodies) back off
//! exponentially with full jitter, so many hosts behind one app do not retry in
//! step. A `Retry-After` from the server is obeyed exactly, never shortened,
//! plus a small margin for clock granularity.

use std::time::{Duration, SystemTime};

/// Added to every `Retry-After` wait so we never arrive a hair early.
pub const RETRY_AFTER_MARGIN: Duration = Duration::from_millis(250);

/// The backoff before retry number `attempt` (1 for the first retry): a
/// uniformly random duration in `[0, min(cap, base * 2^(attempt-1))]`, where
/// `unit` is a random number in `[0, 1)`.
pub fn full_jitter(attempt: u32, base: Duration, cap: Duration, unit: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let ceiling = base.saturating_mul(1u32 << exp).min(cap);
    ceiling.mul_f64(unit.clamp(0.0, 1.0))
}

/// A random backoff for retry number `attempt`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    full_jitter(attempt, base, cap, rand::random::<f64>())
}

/// Parse a `Retry-After` value: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`), as a wait from `now`. A date in the past
/// is a zero wait; anything unreadable is `None`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some servers send fractional seconds; round up, never down.
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs.ceil()));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    // HTTP-dates have whole seconds; the server meant "not before this second".
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait a `Retry-After` asks for, with the margin added.
pub fn retry_after_wait(value: &str, now: SystemTime) -> Option<Duration> {
    parse_retry_after(value, now).map(|d| d + RETRY_AFTER_MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_is_bounded_by_the_exponential_ceiling() {
        let base = Duration::from_millis(500);
        let cap = Duration::from_secs(30);
        assert_eq!(full_jitter(1, base, cap, 0.0), Duration::ZERO);
        assert_eq!(
            full_jitter(1, base, cap, 0.999_999),
            base.mul_f64(0.999_999)
        );
        assert_eq!(full_jitter(3, base, cap, 0.5), Duration::from_secs(1));
        assert_eq!(full_jitter(4, base, cap, 1.0), Duration::from_secs(4));
        // Capped, and no overflow at absurd attempt numbers.
        assert_eq!(full_jitter(20, base, cap, 1.0), cap);
        assert_eq!(full_jitter(u32::MAX, base, cap, 1.0), cap);
        for attempt in 1..10 {
            let d = backoff(attempt, base, cap);
            assert!(d <= base.saturating_mul(1 << (attempt - 1)).min(cap));
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = httpdate::parse_http_date("Thu, 03 Dec 2026 15:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after("Thu, 03 Dec 2026 15:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Thu, 03 Dec 2026 14:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(
            retry_after_wait("7", now),
            Some(Duration::from_secs(7) + RETRY_AFTER_MARGIN)
        );
    }
}
