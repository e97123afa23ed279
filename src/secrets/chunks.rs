//! Values longer than one keyring entry may hold, split over several entries.
//!
//! Windows Credential Manager keeps a password as UTF-16 in a blob of at most
//! 2,560 bytes (1,280 UTF-16 units), and a Microsoft refresh token alone can be
//! longer. So every platform stores a long value the same way: entry `key`
//! holds a small header `{"v":1,"chunks":N,"sha256":"…"}` and entries
//! `key#1` … `key#N` hold the parts, each at most [`PART_UNITS`] UTF-16 units.
//! A short value is stored in `key` as it is (unless it happens to read as a
//! header, which is then chunked like a long one, so reading is unambiguous).
//!
//! A save writes the parts first and the header last, then removes parts left
//! from a longer earlier value; a delete removes the parts first and the header
//! last. The digest in the header turns an interrupted save (new parts under an
//! old header) into a clear "unreadable, authorize again" instead of a garbled
//! secret.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::SecretError;

/// The most UTF-16 units one part holds: 2,400 bytes, under Windows' 2,560.
pub(super) const PART_UNITS: usize = 1200;

/// The most parts one value may have (about 76 KB of ASCII): a bound on what a
/// corrupt header can make `load` read.
pub(super) const MAX_PARTS: usize = 64;

/// Single entries of a credential store, without any size handling.
pub(super) trait Entries {
    fn get(&self, name: &str) -> Result<Option<String>, SecretError>;
    fn set(&self, name: &str, value: &str) -> Result<(), SecretError>;
    /// `Ok(false)` when there was nothing to remove.
    fn remove(&self, name: &str) -> Result<bool, SecretError>;
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    v: u32,
    chunks: usize,
    sha256: String,
}

impl Header {
    fn of(value: &str, chunks: usize) -> Header {
        Header {
            v: 1,
            chunks,
            sha256: digest(value),
        }
    }

    fn parse(text: &str) -> Option<Header> {
        serde_json::from_str::<Header>(text)
            .ok()
            .filter(|h| h.v == 1 && (1..=MAX_PARTS).contains(&h.chunks))
    }
}

fn digest(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn part_name(key: &str, i: usize) -> String {
    format!("{key}#{i}")
}

/// `value` cut on character boundaries into pieces of at most [`PART_UNITS`]
/// UTF-16 units (never empty: an empty value is one empty piece).
fn split(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut units) = (0, 0);
    for (at, c) in value.char_indices() {
        if units + c.len_utf16() > PART_UNITS {
            parts.push(&value[start..at]);
            start = at;
            units = 0;
        }
        units += c.len_utf16();
    }
    parts.push(&value[start..]);
    parts
}

/// How many parts the value now under `key` has (0 when it is stored whole).
fn parts_now(entries: &dyn Entries, key: &str) -> Result<usize, SecretError> {
    Ok(entries
        .get(key)?
        .and_then(|h| Header::parse(&h))
        .map_or(0, |h| h.chunks))
}

pub(super) fn load(entries: &dyn Entries, key: &str) -> Result<Option<String>, SecretError> {
    let Some(head) = entries.get(key)? else {
        return Ok(None);
    };
    let Some(header) = Header::parse(&head) else {
        return Ok(Some(head));
    };
    let corrupt = |detail: String| SecretError::Corrupt {
        key: key.to_string(),
        detail,
    };
    let mut value = String::new();
    for i in 1..=header.chunks {
        match entries.get(&part_name(key, i))? {
            Some(part) => value.push_str(&part),
            None => {
                return Err(corrupt(format!(
                    "part {i} of {} is missing from the keyring",
                    header.chunks
                )));
            }
        }
    }
    if digest(&value) != header.sha256 {
        return Err(corrupt(
            "its parts do not belong together (an interrupted save?)".into(),
        ));
    }
    Ok(Some(value))
}

pub(super) fn save(entries: &dyn Entries, key: &str, value: &str) -> Result<(), SecretError> {
    let before = parts_now(entries, key)?;
    let parts = split(value);
    if parts.len() == 1 && Header::parse(value).is_none() {
        entries.set(key, value)?;
        return remove_parts(entries, key, 1, before);
    }
    if parts.len() > MAX_PARTS {
        return Err(SecretError::Backend {
            action: "save",
            key: key.to_string(),
            detail: format!(
                "the value is too long ({} parts of {PART_UNITS} characters; at most {MAX_PARTS})",
                parts.len()
            ),
        });
    }
    for (i, part) in parts.iter().enumerate() {
        entries.set(&part_name(key, i + 1), part)?;
    }
    let header = serde_json::to_string(&Header::of(value, parts.len())).expect("header serializes");
    entries.set(key, &header)?;
    remove_parts(entries, key, parts.len() + 1, before)
}

pub(super) fn delete(entries: &dyn Entries, key: &str) -> Result<(), SecretError> {
    let before = parts_now(entries, key)?;
    remove_parts(entries, key, 1, before)?;
    entries.remove(key)?;
    Ok(())
}

/// Remove parts `from..`: every one up to `known_last`, and beyond it for as
/// long as parts exist (leftovers of an interrupted save).
fn remove_parts(
    entries: &dyn Entries,
    key: &str,
    from: usize,
    known_last: usize,
) -> Result<(), SecretError> {
    for i in from..=MAX_PARTS + 1 {
        let existed = entries.remove(&part_name(key, i))?;
        if !existed && i > known_last {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// A store that refuses what Windows refuses: more than 1,280 UTF-16 units.
    #[derive(Default)]
    struct Capped {
        map: Mutex<BTreeMap<String, String>>,
    }

    impl Capped {
        fn names(&self) -> Vec<String> {
            self.map.lock().unwrap().keys().cloned().collect()
        }
    }

    impl Entries for Capped {
        fn get(&self, name: &str) -> Result<Option<String>, SecretError> {
            Ok(self.map.lock().unwrap().get(name).cloned())
        }
        fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
            if value.encode_utf16().count() > 1280 {
                return Err(SecretError::Backend {
                    action: "save",
                    key: name.into(),
                    detail: "too long for Windows".into(),
                });
            }
            self.map
                .lock()
                .unwrap()
                .insert(name.to_string(), value.to_string());
            Ok(())
        }
        fn remove(&self, name: &str) -> Result<bool, SecretError> {
            Ok(self.map.lock().unwrap().remove(name).is_some())
        }
    }

    fn long(n: usize) -> String {
        (0..n).map(|i| (b'a' + (i % 26) as u8) as char).collect()
    }

    #[test]
    fn a_16_kb_value_round_trips_in_parts_under_the_windows_cap() {
        let e = Capped::default();
        let value = long(16 * 1024);
        save(&e, "k", &value).unwrap();
        assert_eq!(load(&e, "k").unwrap().as_deref(), Some(value.as_str()));
        assert_eq!(e.names().len(), 1 + (16 * 1024usize).div_ceil(PART_UNITS));
    }

    #[test]
    fn short_values_take_one_entry() {
        let e = Capped::default();
        save(&e, "k", r#"{"refresh_token":"abc"}"#).unwrap();
        assert_eq!(e.names(), ["k"]);
        assert_eq!(
            load(&e, "k").unwrap().as_deref(),
            Some(r#"{"refresh_token":"abc"}"#)
        );
        save(&e, "empty", "").unwrap();
        assert_eq!(load(&e, "empty").unwrap().as_deref(), Some(""));
    }

    #[test]
    fn overwriting_with_shorter_values_leaves_no_stale_parts() {
        let e = Capped::default();
        save(&e, "k", &long(10_000)).unwrap();
        save(&e, "k", &long(3_000)).unwrap();
        assert_eq!(e.names(), ["k", "k#1", "k#2", "k#3"]);
        assert_eq!(load(&e, "k").unwrap(), Some(long(3_000)));
        save(&e, "k", "short").unwrap();
        assert_eq!(e.names(), ["k"]);
        assert_eq!(load(&e, "k").unwrap().as_deref(), Some("short"));
    }

    #[test]
    fn delete_removes_every_part_and_missing_is_fine() {
        let e = Capped::default();
        save(&e, "k", &long(5_000)).unwrap();
        save(&e, "other", "x").unwrap();
        delete(&e, "k").unwrap();
        assert_eq!(e.names(), ["other"]);
        assert_eq!(load(&e, "k").unwrap(), None);
        delete(&e, "k").unwrap();
    }

    #[test]
    fn wide_characters_are_counted_in_utf16_units_and_never_split() {
        let e = Capped::default();
        let value = "é😀漢".repeat(1500);
        save(&e, "k", &value).unwrap();
        assert_eq!(load(&e, "k").unwrap(), Some(value));
        for part in split(&"😀".repeat(2000)) {
            assert!(part.encode_utf16().count() <= PART_UNITS);
        }
    }

    #[test]
    fn a_value_that_reads_as_a_header_still_round_trips() {
        let e = Capped::default();
        let tricky = serde_json::to_string(&Header::of("x", 2)).unwrap();
        save(&e, "k", &tricky).unwrap();
        assert_eq!(load(&e, "k").unwrap(), Some(tricky));
    }

    #[test]
    fn a_missing_or_foreign_part_is_reported_as_corrupt() {
        let e = Capped::default();
        save(&e, "k", &long(3_000)).unwrap();
        e.map
            .lock()
            .unwrap()
            .insert("k#2".into(), "Z".repeat(PART_UNITS));
        assert!(matches!(load(&e, "k"), Err(SecretError::Corrupt { .. })));
        e.remove("k#2").unwrap();
        let err = load(&e, "k").unwrap_err();
        assert!(err.to_string().contains("part 2 of 3"), "{err}");
    }

    #[test]
    fn leftovers_of_an_interrupted_save_are_swept() {
        let e = Capped::default();
        // Parts 1..=5 written, then the process died before the header.
        for i in 1..=5 {
            e.set(&part_name("k", i), "p").unwrap();
        }
        save(&e, "k", &long(2_000)).unwrap();
        assert_eq!(e.names(), ["k", "k#1", "k#2"]);
        delete(&e, "k").unwrap();
        assert!(e.names().is_empty());
    }
}
