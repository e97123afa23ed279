//! What `pull` needs to know about one record without owning it: its id, its
//! time, and a fingerprint of its content. The record itself stays raw JSON so
//! it is written out exactly as the API returned it; the page parser has
//! already found where its `id` and time are.

use crate::api::Endpoint;
use crate::time::{self, Timestamp};

/// The id, time and content fingerprint of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHead {
    /// The record's `id`; a record without one is keyed by its fingerprint.
    pub key: String,
    /// The endpoint's time field (`lastUpdateTime`, `startTime`), when present and parseable.
    pub time: Option<Timestamp>,
    /// 128-bit hash of the record's bytes: a new value means a new version.
    pub fingerprint: Fingerprint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u128);

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint(xxhash_rust::xxh3::xxh3_128(bytes))
    }

    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    pub fn from_hex(s: &str) -> Option<Fingerprint> {
        (s.len() == 32)
            .then(|| u128::from_str_radix(s, 16).ok())
            .flatten()
            .map(Fingerprint)
    }
}

impl RecordHead {
    /// The head of one record of `endpoint`, from its raw JSON text and the raw
    /// values of its top-level `id` and time field as the page parser found
    /// them ([`Page::members`](crate::api::Page::members)). An id or time of the
    /// wrong type is an error.
    pub fn read(
        endpoint: Endpoint,
        raw: &str,
        members: [Option<&str>; 2],
    ) -> Result<RecordHead, String> {
        RecordHead::known(endpoint, Fingerprint::of(raw.as_bytes()), members)
    }

    /// The head of a record whose fingerprint is already known, from the raw
    /// values of its `id` and time field (as for [`read`](RecordHead::read)).
    pub fn known(
        endpoint: Endpoint,
        fingerprint: Fingerprint,
        [id, time_raw]: [Option<&str>; 2],
    ) -> Result<RecordHead, String> {
        let key = match id.map(id_text).transpose()? {
            Some(Some(k)) => k,
            _ => format!("#{}", fingerprint.to_hex()),
        };
        let time = read_time(endpoint, time_raw)?;
        Ok(RecordHead {
            key,
            time,
            fingerprint,
        })
    }
}

/// A record's time from the raw value of the endpoint's time field: `None`
/// when absent, `null` or not a datetime; an error when not a string.
pub fn read_time(endpoint: Endpoint, raw: Option<&str>) -> Result<Option<Timestamp>, String> {
    match (endpoint.time_field(), raw) {
        (None, _) | (_, None | Some("null")) => Ok(None),
        (Some(field), Some(t)) => {
            Ok(time::parse(&string_value(t).ok_or_else(|| {
                format!("`{field}` is not a string: {}", preview(t))
            })?))
        }
    }
}

/// An id: a string (ids are strings on these endpoints) or, leniently, a
/// number; `null` is no id.
fn id_text(raw: &str) -> Result<Option<String>, String> {
    match raw.as_bytes()[0] {
        b'"' => Ok(string_value(raw)),
        b'n' if raw == "null" => Ok(None),
        b'-' | b'0'..=b'9' => serde_json::from_str::<serde_json::Number>(raw)
            .map(|n| Some(n.to_string()))
            .map_err(|e| format!("`id` is not a number: {e}")),
        _ => Err(format!("`id` is not a string or number: {}", preview(raw))),
    }
}

/// The text of a raw JSON string (`None` if it is not a string).
fn string_value(raw: &str) -> Option<String> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str(raw).ok()
    } else {
        Some(inner.to_string())
    }
}

fn preview(raw: &str) -> String {
    raw.chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Page;

    /// The head of a record as it comes out of a page.
    fn head(endpoint: Endpoint, record: &str) -> Result<RecordHead, String> {
        let page = Page::from_records(endpoint, [record], None).unwrap();
        RecordHead::read(endpoint, page.record(0), page.members(0))
    }

    #[test]
    fn reads_id_time_and_fingerprint() {
        let r =
            r#"{"id":"da1","title":"x","lastUpdateTime":"2026-12-03T10:00:00.12Z","evidence":[]}"#;
        let h = head(Endpoint::Alerts, r).unwrap();
        assert_eq!(h.key, "da1");
        assert_eq!(h.time, time::parse("2026-12-03T10:00:00.12Z"));
        let changed =
            r#"{"id":"da1","title":"y","lastUpdateTime":"2026-12-03T10:00:00.12Z","evidence":[]}"#;
        assert_ne!(
            h.fingerprint,
            head(Endpoint::Alerts, changed).unwrap().fingerprint
        );
    }

    #[test]
    fn investigations_use_start_time_and_records_without_id_are_keyed_by_content() {
        let r = r#"{"startTime":"2026-12-03T10:00:00Z","lastUpdateTime":"2020-01-01T00:00:00Z"}"#;
        let h = head(Endpoint::Investigations, r).unwrap();
        assert_eq!(h.time, time::parse("2026-12-03T10:00:00Z"));
        assert!(h.key.starts_with('#'));
        let rec = head(Endpoint::Recommendations, r).unwrap();
        assert_eq!(rec.time, None, "recommendations have no time field");
    }

    #[test]
    fn ids_and_times_decode_like_json() {
        let h = head(
            Endpoint::Alerts,
            r#"{"evidence":[{"id":"inner","lastUpdateTime":"2020-01-01T00:00:00Z"}], "id" : "d\"a\u00e9", "lastUpdateTime" : "2026-12-03T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(h.key, "d\"aé");
        assert_eq!(h.time, time::parse("2026-12-03T10:00:00Z"));
        let n = head(Endpoint::Investigations, r#"{"id":42,"startTime":null}"#).unwrap();
        assert_eq!((n.key.as_str(), n.time), ("42", None));
        let none = head(Endpoint::Recommendations, r#"{"id":null}"#).unwrap();
        assert!(none.key.starts_with('#'));
        assert!(head(Endpoint::Alerts, r#"{"id":{"a":1}}"#).is_err());
        assert!(head(Endpoint::Alerts, r#"{"id":"a","lastUpdateTime":5}"#).is_err());
    }

    #[test]
    fn fingerprint_hex_round_trips() {
        let f = Fingerprint::of(b"abc");
        assert_eq!(Fingerprint::from_hex(&f.to_hex()), Some(f));
        assert_eq!(Fingerprint::from_hex("xyz"), None);
    }
}
