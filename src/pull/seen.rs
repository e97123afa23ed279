//! The bounded memory of what was already written: record key → fingerprint
//! (and time), for the records `pull` will read again — the alerts inside the
//! lookback window, the investigations inside their window, the recommendations
//! of the current snapshot. A record whose fingerprint is remembered is not
//! written again; anything else is a new version.
//!
//! In the state file each entry is one line: `"id" = "fingerprint@time"`.

use std::collections::{BTreeMap, HashMap};

use super::record::{Fingerprint, RecordHead};
use crate::time::{self, Timestamp};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    entries: HashMap<String, (Fingerprint, Option<Timestamp>)>,
}

impl Seen {
    /// Decode the state file's map; entries that do not decode are dropped
    /// (the worst case is one record written again, never one lost).
    pub fn decode(map: &BTreeMap<String, String>) -> Seen {
        let entries = map
            .iter()
            .filter_map(|(k, v)| {
                let (fp, t) = match v.split_once('@') {
                    Some((fp, t)) => (fp, Some(time::parse(t)?)),
                    None => (v.as_str(), None),
                };
                Some((k.clone(), (Fingerprint::from_hex(fp)?, t)))
            })
            .collect();
        Seen { entries }
    }

    pub fn encode(&self) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|(k, (fp, t))| {
                let v = match t {
                    Some(t) => format!("{}@{}", fp.to_hex(), time::odata(*t)),
                    None => fp.to_hex(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Whether this exact version was written before.
    pub fn contains(&self, head: &RecordHead) -> bool {
        self.entries
            .get(&head.key)
            .is_some_and(|(fp, _)| *fp == head.fingerprint)
    }

    /// Remember a version as written. `time` falls back to `default_time` for
    /// records without one, so they still age out of the window.
    pub fn remember(&mut self, head: &RecordHead, default_time: Option<Timestamp>) {
        self.entries.insert(
            head.key.clone(),
            (head.fingerprint, head.time.or(default_time)),
        );
    }

    /// Forget entries older than `before`: they will not be read again.
    pub fn forget_before(&mut self, before: Timestamp) {
        self.entries
            .retain(|_, (_, t)| t.is_none_or(|t| t >= before));
    }

    /// Keep only the given keys (a complete snapshot shows which still exist).
    pub fn retain_keys(&mut self, keep: &std::collections::HashSet<String>) {
        self.entries.retain(|k, _| keep.contains(k));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(key: &str, content: &str, t: Option<&str>) -> RecordHead {
        RecordHead {
            key: key.into(),
            time: t.and_then(time::parse),
            fingerprint: Fingerprint::of(content.as_bytes()),
        }
    }

    #[test]
    fn versions_are_told_apart_and_survive_encoding() {
        let mut seen = Seen::default();
        let v1 = head("a", "v1", Some("2026-12-03T10:00:00.1234567Z"));
        let v2 = head("a", "v2", Some("2026-12-03T10:05:00Z"));
        seen.remember(&v1, None);
        assert!(seen.contains(&v1) && !seen.contains(&v2));
        let back = Seen::decode(&seen.encode());
        assert_eq!(back, seen);
        seen.remember(&v2, None);
        assert!(!seen.contains(&v1) && seen.contains(&v2));
    }

    #[test]
    fn forgetting_is_by_time() {
        let mut seen = Seen::default();
        seen.remember(&head("old", "x", Some("2026-12-03T09:00:00Z")), None);
        seen.remember(&head("new", "y", Some("2026-12-03T10:00:00Z")), None);
        seen.remember(&head("untimed", "z", None), None);
        seen.forget_before(time::parse("2026-12-03T09:30:00Z").unwrap());
        assert_eq!(seen.len(), 2);
        assert!(!seen.contains(&head("old", "x", None)));
    }

    #[test]
    fn undecodable_entries_are_dropped() {
        let mut map = BTreeMap::new();
        map.insert("a".to_string(), "nothex@2026-12-03T10:00:00Z".to_string());
        map.insert(
            "b".to_string(),
            format!("{}@not-a-time", Fingerprint::of(b"x").to_hex()),
        );
        map.insert("c".to_string(), Fingerprint::of(b"x").to_hex());
        assert_eq!(Seen::decode(&map).len(), 1);
    }
}
