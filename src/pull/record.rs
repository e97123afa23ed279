//! What `pull` needs to know about one record without owning it: its id, its
//! time, and a fingerprint of its content. The record itself stays raw JSON so
//! it is written out exactly as the API returned it.

use super::scan;
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
    /// Read the head of one record (valid JSON, as the page parser checked). A
    /// record that is not a JSON object, or whose id or time field has the wrong
    /// type, is an error. Only the top level is scanned, up to both fields.
    pub fn read(endpoint: Endpoint, raw: &str) -> Result<RecordHead, String> {
        let time_field = match endpoint {
            Endpoint::Alerts => "lastUpdateTime",
            Endpoint::Investigations => "startTime",
            Endpoint::Recommendations => "",
        };
        let [id, time_raw] = scan::members(raw, ["id", time_field])
            .map_err(|e| format!("a record is not a JSON object: {}", e.0))?;
        let fingerprint = Fingerprint::of(raw.as_bytes());
        let key = match id.map(id_text).transpose()? {
            Some(Some(k)) => k,
            _ => format!("#{}", fingerprint.to_hex()),
        };
        let time = match time_raw.filter(|_| !time_field.is_empty()) {
            None | Some("null") => None,
            Some(t) => time::parse(
                &string_value(t)
                    .ok_or_else(|| format!("`{time_field}` is not a string: {}", preview(t)))?,
            ),
        };
        Ok(RecordHead {
            key,
            time,
            fingerprint,
        })
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

    fn raw(s: &str) -> &str {
        s
    }

    #[test]
    fn reads_id_time_and_fingerprint() {
        let r = raw(
            r#"{"id":"da1","title":"x","lastUpdateTime":"2026-12-03T10:00:00.12Z","evidence":[]}"#,
        );
        let h = RecordHead::read(Endpoint::Alerts, r).unwrap();
        assert_eq!(h.key, "da1");
        assert_eq!(h.time, time::parse("2026-12-03T10:00:00.12Z"));
        let changed = raw(
            r#"{"id":"da1","title":"y","lastUpdateTime":"2026-12-03T10:00:00.12Z","evidence":[]}"#,
        );
        assert_ne!(
            h.fingerprint,
            RecordHead::read(Endpoint::Alerts, changed)
                .unwrap()
                .fingerprint
        );
    }

    #[test]
    fn investigations_use_start_time_and_records_without_id_are_keyed_by_content() {
        let r =
            raw(r#"{"startTime":"2026-12-03T10:00:00Z","lastUpdateTime":"2020-01-01T00:00:00Z"}"#);
        let h = RecordHead::read(Endpoint::Investigations, r).unwrap();
        assert_eq!(h.time, time::parse("2026-12-03T10:00:00Z"));
        assert!(h.key.starts_with('#'));
        assert!(RecordHead::read(Endpoint::Alerts, raw("[1,2]")).is_err());
    }

    #[test]
    fn ids_and_times_decode_like_json() {
        let h = RecordHead::read(
            Endpoint::Alerts,
            r#"{"evidence":[{"id":"inner","lastUpdateTime":"2020-01-01T00:00:00Z"}], "id" : "d\"a\u00e9", "lastUpdateTime" : "2026-12-03T10:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(h.key, "d\"aé");
        assert_eq!(h.time, time::parse("2026-12-03T10:00:00Z"));
        let n =
            RecordHead::read(Endpoint::Investigations, r#"{"id":42,"startTime":null}"#).unwrap();
        assert_eq!((n.key.as_str(), n.time), ("42", None));
        let none = RecordHead::read(Endpoint::Recommendations, r#"{"id":null}"#).unwrap();
        assert!(none.key.starts_with('#'));
        assert!(RecordHead::read(Endpoint::Alerts, r#"{"id":{"a":1}}"#).is_err());
        assert!(RecordHead::read(Endpoint::Alerts, r#"{"id":"a","lastUpdateTime":5}"#).is_err());
    }

    #[test]
    fn fingerprint_hex_round_trips() {
        let f = Fingerprint::of(b"abc");
        assert_eq!(Fingerprint::from_hex(&f.to_hex()), Some(f));
        assert_eq!(Fingerprint::from_hex("xyz"), None);
    }
}
