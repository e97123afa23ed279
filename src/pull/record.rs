//! What `pull` needs to know about one record without owning it: its id, its
//! time, and a fingerprint of its content. The record itself stays raw JSON so
//! it is written out exactly as the API returned it.

use serde::Deserialize;

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

/// Only the fields `pull` reads; everything else is skipped by the parser.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    id: Option<IdValue<'a>>,
    #[serde(rename = "lastUpdateTime", borrow, default)]
    last_update_time: Option<&'a str>,
    #[serde(rename = "startTime", borrow, default)]
    start_time: Option<&'a str>,
}

/// Ids are strings on these endpoints, but be lenient with numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue<'a> {
    Str(#[serde(borrow)] std::borrow::Cow<'a, str>),
    Num(serde_json::Number),
}

impl RecordHead {
    /// Read the head of one record. A record that is not a JSON object is an error.
    pub fn read(endpoint: Endpoint, raw: &str) -> Result<RecordHead, String> {
        let head: Head =
            serde_json::from_str(raw).map_err(|e| format!("a record is not a JSON object: {e}"))?;
        let fingerprint = Fingerprint::of(raw.as_bytes());
        let key = match head.id {
            Some(IdValue::Str(s)) => s.into_owned(),
            Some(IdValue::Num(n)) => n.to_string(),
            None => format!("#{}", fingerprint.to_hex()),
        };
        let time_text = match endpoint {
            Endpoint::Alerts => head.last_update_time,
            Endpoint::Investigations => head.start_time,
            Endpoint::Recommendations => None,
        };
        Ok(RecordHead {
            key,
            time: time_text.and_then(time::parse),
            fingerprint,
        })
    }
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
    fn fingerprint_hex_round_trips() {
        let f = Fingerprint::of(b"abc");
        assert_eq!(Fingerprint::from_hex(&f.to_hex()), Some(f));
        assert_eq!(Fingerprint::from_hex("xyz"), None);
    }
}
