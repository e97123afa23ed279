//! How an endpoint's `seen` memory sits in the state file: one TOML string
//! per endpoint with one line per record, `fingerprint time id`.
//!
//! It used to be a TOML table with one `"id" = "fingerprint@time"` pair per
//! record; with thousands of records in a lookback window, parsing and
//! writing that table was most of the state file's cost on every pull. One
//! string is a single token to the TOML parser and writer, and its lines are
//! split here by hand. Files in the table form are still read (and written
//! back in this form by the next pull).
//!
//! The fingerprint and the time never contain spaces, so the id is the rest
//! of the line, spaces and all; in it `\` is written `\\`, a line feed `\n`
//! and a carriage return `\r`, so every record stays on its line. Whatever
//! TOML itself needs escaping (quotes, control characters) the TOML writer
//! escapes. A line that does not read back is skipped: the record it stood
//! for is written once more, never lost.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The time field of a record that has none.
const NO_TIME: &str = "-";

/// An endpoint's remembered records, in the file's text form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenLines {
    text: String,
}

/// One remembered record, as read from a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenLine<'a> {
    pub fingerprint: &'a str,
    pub time: Option<&'a str>,
    pub id: Cow<'a, str>,
}

impl SeenLines {
    /// Room for about `records` lines.
    pub fn with_capacity(records: usize) -> SeenLines {
        SeenLines {
            text: String::with_capacity(records * 96),
        }
    }

    /// Add a record. `fingerprint` and `time` are single words (no spaces or
    /// line breaks, not empty); anything else would not read back, so such a
    /// record is not added (it is written again, at worst).
    pub fn push(&mut self, fingerprint: &str, time: Option<&str>, id: &str) {
        let word = |w: &str| !w.is_empty() && !w.contains([' ', '\n', '\r']);
        if !word(fingerprint) || !time.is_none_or(word) || time == Some(NO_TIME) {
            return;
        }
        self.text.push_str(fingerprint);
        self.text.push(' ');
        self.text.push_str(time.unwrap_or(NO_TIME));
        self.text.push(' ');
        if id.contains(['\\', '\n', '\r']) {
            for c in id.chars() {
                match c {
                    '\\' => self.text.push_str("\\\\"),
                    '\n' => self.text.push_str("\\n"),
                    '\r' => self.text.push_str("\\r"),
                    c => self.text.push(c),
                }
            }
        } else {
            self.text.push_str(id);
        }
        self.text.push('\n');
    }

    /// Every line that reads back, in file order.
    pub fn entries(&self) -> impl Iterator<Item = SeenLine<'_>> {
        self.entries_or_gaps().flatten()
    }

    /// Every line in file order, `None` for one that does not read back
    /// (blank lines are not lines).
    pub fn entries_or_gaps(&self) -> impl Iterator<Item = Option<SeenLine<'_>>> {
        self.text
            .split('\n')
            .filter(|l| !l.trim().is_empty())
            .map(read_line)
    }

    /// An upper bound of the number of records, cheaply (for capacity).
    pub fn line_count(&self) -> usize {
        memchr::memchr_iter(b'\n', self.text.as_bytes()).count() + 1
    }

    /// How many records are remembered.
    pub fn len(&self) -> usize {
        self.entries().count()
    }

    pub fn is_empty(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// The text as it goes into the file.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Lines as read from the file.
    pub fn from_text(text: &str) -> SeenLines {
        SeenLines {
            text: text.to_string(),
        }
    }
}

fn read_line(line: &str) -> Option<SeenLine<'_>> {
    // A file edited on Windows may have gained CRs; the id's own are escaped.
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (fingerprint, rest) = line.split_once(' ')?;
    let (time, id) = rest.split_once(' ')?;
    if fingerprint.is_empty() || time.is_empty() {
        return None;
    }
    let time = (time != NO_TIME).then_some(time);
    Some(SeenLine {
        fingerprint,
        time,
        id: unescape(id)?,
    })
}

fn unescape(id: &str) -> Option<Cow<'_, str>> {
    if !id.contains('\\') {
        return Some(Cow::Borrowed(id));
    }
    let mut out = String::with_capacity(id.len());
    let mut chars = id.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(Cow::Owned(out))
}

impl Serialize for SeenLines {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for SeenLines {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SeenLines, D::Error> {
        d.deserialize_any(SeenVisitor)
    }
}

struct SeenVisitor;

impl<'de> Visitor<'de> for SeenVisitor {
    type Value = SeenLines;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "a string of `fingerprint time id` lines (or a table of \"id\" = \"fingerprint@time\")",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SeenLines, E> {
        Ok(SeenLines {
            text: v.to_string(),
        })
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<SeenLines, E> {
        Ok(SeenLines { text: v })
    }

    /// The table form of earlier versions: `"id" = "fingerprint@time"`, or
    /// just the fingerprint for a record without a time.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SeenLines, A::Error> {
        let mut entries = BTreeMap::new();
        while let Some((id, value)) = map.next_entry::<String, String>()? {
            entries.insert(id, value);
        }
        let mut lines = SeenLines::with_capacity(entries.len());
        for (id, value) in &entries {
            match value.split_once('@') {
                Some((fingerprint, time)) => lines.push(fingerprint, Some(time), id),
                None => lines.push(value, None, id),
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_ids_stay_on_their_line_and_read_back() {
        let ids = [
            "da638000000000000000_-1234567890",
            "with spaces  and  double  spaces ",
            " leading space",
            "",
            "quote\" single' triple''' \"\"\" end'",
            "back\\slash \\n not a newline \\",
            "line\nfeed and\r\ncrlf\r",
            "tab\tnul\u{0}bell\u{7}del\u{7f}",
            "unicode é 漢字 🚀 \u{2028} \u{feff}",
            "- looks like a time",
            "ends with a quote'",
            "ends with a backslash\\",
        ];
        let mut lines = SeenLines::default();
        for (i, id) in ids.iter().enumerate() {
            let time = (i % 2 == 0).then_some("2026-12-03T10:00:00.1234567Z");
            lines.push("00ff", time, id);
        }
        assert_eq!(lines.text.lines().count(), ids.len());
        let back: Vec<SeenLine> = lines.entries().collect();
        assert_eq!(back.len(), ids.len());
        for (i, (line, id)) in back.iter().zip(ids).enumerate() {
            assert_eq!(line.id, id);
            assert_eq!(line.fingerprint, "00ff");
            assert_eq!(line.time.is_some(), i % 2 == 0);
        }
        assert_eq!(lines.len(), ids.len());
    }

    #[test]
    fn lines_that_do_not_read_back_are_skipped_not_misread() {
        let lines = SeenLines {
            text: [
                "00ff 2026-12-03T10:00:00Z good",
                "00ff 2026-12-03T10:00:00Z",
                "00ff",
                "",
                " 2026-12-03T10:00:00Z no fingerprint",
                "00ff  no time",
                "00ff - bad \\escape",
                "00ff - dangling \\",
                "00ff - crlf file\r",
                "00ff - last line without a newline",
            ]
            .join("\n"),
        };
        let ids: Vec<String> = lines.entries().map(|l| l.id.into_owned()).collect();
        assert_eq!(
            ids,
            ["good", "crlf file", "last line without a newline"].map(String::from)
        );
    }

    #[test]
    fn words_that_would_not_read_back_are_not_written() {
        let mut lines = SeenLines::default();
        lines.push("00 ff", None, "a");
        lines.push("", None, "b");
        lines.push("00ff", Some("2026-12-03 10:00:00Z"), "c");
        lines.push("00ff", Some("-"), "d");
        lines.push("00ff", Some(""), "e");
        assert!(lines.is_empty());
    }
}
