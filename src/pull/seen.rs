//! The bounded memory of what was already written: record key → fingerprint
//! (and time), for the records `pull` will read again — the alerts inside the
//! lookback window, the investigations inside their window, the recommendations
//! of the current snapshot. A record whose fingerprint is remembered is not
//! written again; anything else is a new version.
//!
//! In the state file each entry is one line, `fingerprint time id`, sorted by
//! id (the line format is [`SeenLines`]'s).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::BuildHasher;

use super::record::{Fingerprint, RecordHead};
use crate::state::SeenLines;
use crate::time::{self, Timestamp};

#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Keyed by record id. foldhash, not the default SipHash: one lookup
    /// and one insert per record read, and ids are short strings.
    entries: HashMap<String, (Fingerprint, Option<Timestamp>), foldhash::fast::RandomState>,
    /// The lines these entries were decoded from, every one of them, kept
    /// until an entry changes: a pull that changed nothing (the usual no-op)
    /// writes them back as they were instead of encoding them again.
    decoded_from: Option<SeenLines>,
}

/// Equal when they remember the same things, however they were made.
impl PartialEq for Seen {
    fn eq(&self, other: &Seen) -> bool {
        self.entries == other.entries
    }
}

impl Seen {
    /// Decode the state file's lines; lines that do not decode are dropped
    /// (the worst case is one record written again, never one lost).
    pub fn decode(lines: &SeenLines) -> Seen {
        let mut entries = HashMap::with_capacity_and_hasher(lines.line_count(), Default::default());
        let mut whole = true;
        for line in lines.entries_or_gaps() {
            let Some(line) = line else {
                whole = false;
                continue;
            };
            let Some(fp) = Fingerprint::from_hex(line.fingerprint) else {
                whole = false;
                continue;
            };
            let t = match line.time.map(time::parse) {
                Some(None) => {
                    whole = false;
                    continue;
                }
                Some(t) => t,
                None => None,
            };
            whole &= entries.insert(line.id.into_owned(), (fp, t)).is_none();
        }
        Seen {
            entries,
            decoded_from: whole.then(|| lines.clone()),
        }
    }

    pub fn encode(&self) -> SeenLines {
        if let Some(lines) = &self.decoded_from {
            return lines.clone();
        }
        let mut sorted: Vec<_> = self.entries.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut lines = SeenLines::with_capacity(sorted.len());
        let (mut fp_hex, mut t_text) = (String::with_capacity(32), String::with_capacity(28));
        for (key, (fp, t)) in sorted {
            fp_hex.clear();
            let _ = write!(fp_hex, "{:032x}", fp.0);
            let t = t.map(|t| {
                t_text.clear();
                time::write_odata(&mut t_text, t);
                t_text.as_str()
            });
            lines.push(&fp_hex, t, key);
        }
        lines
    }

    /// Whether this exact version was written before.
    /// The fingerprints of every version remembered.
    pub fn fingerprints(&self) -> impl Iterator<Item = Fingerprint> + '_ {
        self.entries.values().map(|(fp, _)| *fp)
    }

    pub fn contains(&self, head: &RecordHead) -> bool {
        self.entries
            .get(&head.key)
            .is_some_and(|(fp, _)| *fp == head.fingerprint)
    }

    /// Remember a version as written. `time` falls back to `default_time` for
    /// records without one, so they still age out of the window.
    pub fn remember(&mut self, head: &RecordHead, default_time: Option<Timestamp>) {
        let entry = (head.fingerprint, head.time.or(default_time));
        if self.entries.insert(head.key.clone(), entry) != Some(entry) {
            self.decoded_from = None;
        }
    }

    /// Forget entries older than `before`: they will not be read again.
    pub fn forget_before(&mut self, before: Timestamp) {
        let len = self.entries.len();
        self.entries
            .retain(|_, (_, t)| t.is_none_or(|t| t >= before));
        if self.entries.len() != len {
            self.decoded_from = None;
        }
    }

    /// Keep only the given keys (a complete snapshot shows which still exist).
    pub fn retain_keys<S: BuildHasher>(&mut self, keep: &HashSet<String, S>) {
        let len = self.entries.len();
        self.entries.retain(|k, _| keep.contains(k));
        if self.entries.len() != len {
            self.decoded_from = None;
        }
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
    use std::path::Path;

    use super::*;
    use crate::state::{Connection, Profile, SCHEMA_VERSION};

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
    fn unchanged_lines_are_written_back_as_they_were_and_changes_show() {
        let mut seen = Seen::default();
        for (k, t) in [("b", "2026-12-03T10:00:00Z"), ("a", "2026-12-03T09:00:00Z")] {
            seen.remember(&head(k, k, Some(t)), None);
        }
        let lines = seen.encode();
        // Not in the canonical order: kept as it is while nothing changes.
        let mut reordered = SeenLines::default();
        for l in lines.entries().collect::<Vec<_>>().iter().rev() {
            reordered.push(l.fingerprint, l.time, &l.id);
        }
        let mut back = Seen::decode(&reordered);
        assert_eq!(back, seen);
        back.remember(&head("a", "a", Some("2026-12-03T09:00:00Z")), None);
        back.forget_before(time::parse("2026-12-03T08:00:00Z").unwrap());
        back.retain_keys(&["a", "b"].map(String::from).into());
        assert_eq!(back.encode(), reordered);
        // Each kind of change is encoded afresh.
        let changes: [&dyn Fn(&mut Seen); 4] = [
            &|s| s.remember(&head("a", "a2", Some("2026-12-03T09:00:00Z")), None),
            &|s| s.remember(&head("c", "c", None), None),
            &|s| s.forget_before(time::parse("2026-12-03T09:30:00Z").unwrap()),
            &|s| s.retain_keys(&["a"].map(String::from).into()),
        ];
        for change in changes {
            let mut s = Seen::decode(&reordered);
            change(&mut s);
            let encoded = s.encode();
            assert_ne!(encoded, reordered);
            assert_eq!(Seen::decode(&encoded), s);
        }
        // Lines that did not all decode are not kept: they are encoded afresh.
        let mut partly = reordered.clone();
        partly.push("nothex", None, "z");
        partly.push(&Fingerprint::of(b"b").to_hex(), None, "b");
        let s = Seen::decode(&partly);
        assert_eq!(s.len(), 2);
        assert_eq!(Seen::decode(&s.encode()), s);
        assert_eq!(s.encode().len(), 2);
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
        let fp = Fingerprint::of(b"x").to_hex();
        let mut lines = SeenLines::default();
        lines.push("nothex", Some("2026-12-03T10:00:00Z"), "a");
        lines.push(&fp, Some("not-a-time"), "b");
        lines.push(&fp, None, "c");
        lines.push(&fp[1..], None, "d");
        let seen = Seen::decode(&lines);
        assert_eq!(seen.len(), 1);
        assert!(seen.contains(&head("c", "x", None)));
    }

    fn profile() -> Profile {
        Profile::new(
            "p",
            Connection {
                tenant_id: "t".into(),
                client_id: "c".into(),
                cloud: crate::cloud::Cloud::Global,
                flow: crate::cli::Flow::ClientSecret,
                login_url: "http://127.0.0.1:1".into(),
                api_url: "http://127.0.0.1:1".into(),
                scope: "s".into(),
            },
        )
    }

    #[test]
    fn hostile_ids_survive_the_state_file() {
        let ids = [
            "plain",
            "spaces in the id ",
            r#"quotes " ' ''' """ '"#,
            "newline\nand\r\ncrlf and a backslash \\ and \\n",
            "unicode é 漢字 🚀 \u{2028}",
            "control \u{0} \u{1b} \u{7f} \t",
            "",
            "ends with a quote'",
            "ends with two quotes''",
            "ends with a double quote\"",
        ];
        let mut seen = Seen::default();
        for (i, id) in ids.iter().enumerate() {
            let t = (i % 2 == 0).then_some("2026-12-03T10:00:00.1234567Z");
            seen.remember(&head(id, &format!("v{i}"), t), None);
        }
        let mut p = profile();
        p.endpoint_mut("alerts").seen = seen.encode();
        let text = p.to_toml();
        let back = Profile::parse(&text, Path::new("p.toml")).unwrap();
        assert_eq!(back, p, "{text}");
        let back = Seen::decode(&back.endpoint("alerts").unwrap().seen);
        assert_eq!(back.len(), ids.len());
        assert_eq!(back, seen);
    }

    #[test]
    fn the_table_form_of_earlier_versions_is_read() {
        let fp = Fingerprint::of(b"v1").to_hex();
        let text = format!(
            r#"schema_version = 1
name = "p"
enabled = true

[connection]
tenant_id = "t"
client_id = "c"
cloud = "global"
flow = "client-secret"
login_url = "http://127.0.0.1:1"
api_url = "http://127.0.0.1:1"
scope = "s"

[endpoints.alerts]
cursor = "2026-12-03T10:00:00.0000000Z"

[endpoints.alerts.seen]
da1 = "{fp}@2026-12-03T10:00:00.1234567Z"
"id with spaces\nand a newline" = "{fp}"
bad = "nothex@2026-12-03T10:00:00Z"
"#
        );
        let p = Profile::parse(&text, Path::new("p.toml")).unwrap();
        assert_eq!(p.schema_version, SCHEMA_VERSION);
        let seen = Seen::decode(&p.endpoint("alerts").unwrap().seen);
        assert_eq!(seen.len(), 2);
        assert!(seen.contains(&head("da1", "v1", None)));
        assert!(seen.contains(&head("id with spaces\nand a newline", "v1", None)));
        // Written back in the current form, and read again the same.
        let text = p.to_toml();
        assert!(text.contains("schema_version = 2") && !text.contains("[endpoints.alerts.seen]"));
        assert_eq!(Profile::parse(&text, Path::new("p.toml")).unwrap(), p);
    }
}
