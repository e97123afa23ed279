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
    if let Some(t) = parse_canonical(s.as_bytes()) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Format for an OData `$filter`: `2026-12-03T15:00:00.1234567Z`.
pub fn odata(t: Timestamp) -> String {
    let mut s = String::with_capacity(28);
    write_odata(&mut s, t);
    s
}

/// [`odata`], appended to `out` (no allocation for the common four-digit years).
pub fn write_odata(out: &mut String, t: Timestamp) {
    use chrono::{Datelike, Timelike};
    let ticks = t.nanosecond() % 1_000_000_000 / 100;
    let year = t.year();
    if !(0..=9999).contains(&year) || t.nanosecond() >= 1_000_000_000 {
        out.push_str(&format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S")));
        return;
    }
    let mut b = *b"0000-00-00T00:00:00.0000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    put(20, 7, ticks);
    out.push_str(std::str::from_utf8(&b).expect("ASCII digits"));
}

/// The common shape, `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`, without chrono's
/// general parser (state files and pages hold thousands of these); anything
/// else (offsets, lowercase, leap seconds, no zone) is left to it.
fn parse_canonical(s: &[u8]) -> Option<Timestamp> {
    if s.len() < 20 || s[s.len() - 1] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        s[r].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if seps.iter().any(|&(i, c)| s[i] != c) {
        return None;
    }
    let nanos = match &s[19..s.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20..s.len() - 1)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let second = num(17..19)?;
    if second >= 60 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(num(11..13)?, num(14..16)?, second, nanos)?;
    Some(date.and_time(time).and_utc())
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
    fn the_fast_paths_agree_with_chrono() {
        let slow = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                .or_else(|| {
                    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                        .ok()
                        .map(|n| n.and_utc())
                })
        };
        for s in [
            "2026-12-03T10:00:00Z",
            "2026-12-03T10:00:00.1Z",
            "2026-12-03T10:00:00.12Z",
            "2026-12-03T10:00:00.1234567Z",
            "2026-12-03T10:00:00.123456789Z",
            "2026-12-03T10:00:00.1234567891Z",
            "2024-02-29T23:59:59.9999999Z",
            "2026-02-29T10:00:00Z",
            "2026-13-03T10:00:00Z",
            "2026-12-03T24:00:00Z",
            "2026-12-03T10:60:00Z",
            "2016-12-31T23:59:60Z",
            "2026-12-03T10:00:00.Z",
            "2026-12-03t10:00:00z",
            "2026-12-03T10:00:00+01:00",
            "2026-12-03T10:00:00.5",
            "2026-12-03 10:00:00Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.9999999Z",
            "2026-1a-03T10:00:00Z",
            "+2026-12-03T10:00:00Z",
            "2026-12-03T10:00:00ZZ",
            "",
            "Z",
        ] {
            assert_eq!(parse(s), slow(s), "{s}");
            if let Some(t) = parse(s) {
                let ticks = chrono::Timelike::nanosecond(&t) % 1_000_000_000 / 100;
                let chrono_odata = format!("{}.{ticks:07}Z", t.format("%Y-%m-%dT%H:%M:%S"));
                assert_eq!(odata(t), chrono_odata, "{s}");
            }
        }
        let far = parse("2026-12-03T10:00:00Z").unwrap() + chrono::Duration::days(3_000_000);
        assert_eq!(odata(far), "+10240-08-23T10:00:00.0000000Z");
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
