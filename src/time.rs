//! Microsoft's timestamps, parsed and compared as instants.
//!
//! The Defender API mixes 7-digit, 2-digit and no fractional seconds (and the odd
//! value without a zone), so string comparison is wrong; `$filter` values are
//! written back with the full 7 digits (100 ns ticks) so a `ge` on a cursor
//! selects exactly the record it came from.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

/// Parse a Defender/Entra datetime: RFC 3339 with any number of fractional
/// digits, or the same without an offset (taken as UTC).
pub fn parse(s: &str) -> Option<Timestamp> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Format for an OData `$filter`: `2026-12-03T15:00:00.1234567Z`.
pub fn odata(t: Timestamp) -> String {
    use chrono::Timelike;
    let ticks = t.nanosecond() % 1_000_000_000 / 100;
    format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S"))
}

/// Format for people and the state file.
pub fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `2026-12-03T15:00:00Z`: whole seconds, for `fetched_at`.
pub fn rfc3339_seconds(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parse `--since`: a duration back from `now` (`7d`, `12h`, `90m`) or an RFC 3339 time.
pub fn parse_since(s: &str, now: Timestamp) -> Result<Timestamp, String> {
    if let Some(t) = parse(s) {
        return Ok(t);
    }
    let d = parse_duration(s)?;
    Ok(now - d)
}

/// Parse a duration such as `15m`, `7d`, `12h`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<chrono::Duration, String> {
    let std = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration or an RFC 3339 time ({e}); try `7d`, `12h` or `2026-11-01T00:00:00Z`")
    })?;
    chrono::Duration::from_std(std).map_err(|_| format!("`{s}` is too long a duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_precision_compares_as_instants() {
        let a = parse("2026-12-03T10:00:00.1234567Z").unwrap();
        let b = parse("2026-12-03T10:00:00.12Z").unwrap();
        let c = parse("2026-12-03T10:00:00Z").unwrap();
        let d = parse("2026-12-03T10:00:00.5").unwrap();
        assert!(c < b && b < a && a < d);
        // As strings, "…00Z" sorts after "…00.12Z": the reason this module exists.
        assert!("2026-12-03T10:00:00Z" > "2026-12-03T10:00:00.12Z");
    }

    #[test]
    fn odata_keeps_ticks() {
        let a = parse("2026-12-03T10:00:00.1234567Z").unwrap();
        assert_eq!(odata(a), "2026-12-03T10:00:00.1234567Z");
        assert_eq!(parse(&odata(a)), Some(a));
        let c = parse("2026-12-03T10:00:00Z").unwrap();
        assert_eq!(odata(c), "2026-12-03T10:00:00.0000000Z");
    }

    #[test]
    fn since_accepts_durations_and_times() {
        let now = parse("2026-12-03T10:00:00Z").unwrap();
        assert_eq!(
            parse_since("7d", now).unwrap(),
            parse("2026-11-26T10:00:00Z").unwrap()
        );
        assert_eq!(
            parse_since("12h", now).unwrap(),
            parse("2026-12-02T22:00:00Z").unwrap()
        );
        assert_eq!(
            parse_since("2026-11-01T00:00:00Z", now).unwrap(),
            parse("2026-11-01T00:00:00Z").unwrap()
        );
        assert!(parse_since("yesterday", now).unwrap_err().contains("7d"));
    }
}
