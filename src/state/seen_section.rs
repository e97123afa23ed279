//! The `[seen]` table at the end of a state file, written and read by hand.
//!
//! Each endpoint's remembered records are one string of lines (see
//! [`SeenLines`](super::SeenLines)), hundreds of kilobytes when a lookback
//! window holds thousands of alerts. The `toml` crate takes milliseconds to
//! write and read strings that long, on every pull. So the profile's other
//! fields go through `toml`, and the `[seen]` table, always last, is written
//! here as multi-line literal strings:
//!
//! ```toml
//! [seen]
//! alerts = '''
//! 0f3a… 2026-12-03T10:00:00.1234567Z da638…
//! '''
//! ```
//!
//! The file stays plain TOML either way. Reading takes the fast path only
//! when the table is exactly in the shape written here (and nothing before it
//! could be part of it); anything else — a hand edit, a string a literal
//! cannot hold — is left to the `toml` crate, which reads the same document.

use std::collections::BTreeMap;

/// The header that starts the table; always on a line of its own.
const HEADER: &str = "\n[seen]\n";

/// Append the `[seen]` table for `entries` (endpoint name → lines) to a
/// document that does not define `seen` itself. Nothing is written when
/// every entry is empty.
pub fn write<'a>(out: &mut String, entries: impl IntoIterator<Item = (&'a str, &'a str)>) {
    let mut started = false;
    for (name, text) in entries {
        if text.is_empty() {
            continue;
        }
        if !started {
            out.push_str(HEADER);
            started = true;
        }
        if is_bare_key(name) && fits_literal(text) {
            out.push_str(name);
            out.push_str(" = '''\n");
            out.push_str(text);
            out.push_str("'''\n");
        } else {
            // `toml` chooses the key's quoting and the string's escapes.
            let one = BTreeMap::from([(name, text)]);
            out.push_str(&toml::to_string(&one).expect("strings always serialize"));
        }
    }
}

/// Split `text` into the document before a `[seen]` table written by
/// [`write`] and that table's entries; `None` when the file does not end in
/// such a table, or anything before it might define `seen` too.
pub fn split(text: &str) -> Option<(&str, Vec<(&str, &str)>)> {
    let at = text.rfind(HEADER)?;
    let head = &text[..=at];
    if head.lines().any(|l| {
        let l = l.trim_start().trim_start_matches(['[', '"', '\'']);
        l.starts_with("seen")
    }) {
        return None;
    }
    let mut rest = &text[at + HEADER.len()..];
    let mut entries: Vec<(&str, &str)> = Vec::new();
    loop {
        rest = rest.trim_start_matches(['\n', '\r']);
        if rest.is_empty() {
            return Some((head, entries));
        }
        let (name, after) = rest.split_once(" = '''")?;
        if !is_bare_key(name) || entries.iter().any(|(n, _)| *n == name) {
            return None;
        }
        // TOML drops the line break right after the opening quotes.
        let body = after
            .strip_prefix('\n')
            .or_else(|| after.strip_prefix("\r\n"))?;
        let end = memchr::memmem::find(body.as_bytes(), b"'''")?;
        let (content, after) = (&body[..end], &body[end + 3..]);
        if !(after.is_empty() || after.starts_with('\n') || after.starts_with("\r\n"))
            || !literal_chars(content)
        {
            return None;
        }
        entries.push((name, content));
        rest = after;
    }
}

fn is_bare_key(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `text` can be written as `'''\n{text}'''` and read back the same.
fn fits_literal(text: &str) -> bool {
    text.ends_with('\n') && !text.contains("'''") && literal_chars(text)
}

/// TOML's rule for multi-line literal strings: no control characters but
/// tabs and line breaks (a carriage return only before a line feed).
fn literal_chars(text: &str) -> bool {
    let b = text.as_bytes();
    b.iter().enumerate().all(|(i, &c)| match c {
        b'\t' | b'\n' => true,
        b'\r' => b.get(i + 1) == Some(&b'\n'),
        0..0x20 | 0x7f => false,
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document(entries: &[(&str, &str)]) -> String {
        let mut out = String::from("name = \"p\"\n\n[endpoints.alerts]\ncursor = \"x\"\n");
        write(&mut out, entries.iter().copied());
        out
    }

    /// What `toml` itself reads from the document's `[seen]` table.
    fn by_toml(text: &str) -> Vec<(String, String)> {
        let doc: toml::Table = text.parse().expect(text);
        doc.get("seen")
            .and_then(|s| s.as_table())
            .map(|t| {
                t.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn what_is_written_is_toml_and_reads_back_by_hand_the_same() {
        let entries = [
            ("alerts", "00ff - a\n00ff - b with spaces \n"),
            ("investigations", "00ff - unicode é 漢字 🚀 \"quotes\" ''\n"),
        ];
        let text = document(&entries);
        assert!(text.contains("alerts = '''\n00ff - a\n"), "{text}");
        let (head, read) = split(&text).expect("the fast path takes it");
        assert!(head.ends_with("cursor = \"x\"\n\n"));
        assert_eq!(read, entries);
        let mut sorted: Vec<_> = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        sorted.sort();
        assert_eq!(by_toml(&text), sorted);
    }

    #[test]
    fn what_a_literal_cannot_hold_is_left_to_toml() {
        let entries = [
            ("alerts", "00ff - ''' three quotes\n"),
            ("investigations", "00ff - control \u{1} char\n"),
            ("recommendations", "no final line break"),
            ("odd name", "00ff - x\n"),
            ("cr", "00ff - lone \r cr\n"),
        ];
        let text = document(&entries);
        assert!(split(&text).is_none(), "{text}");
        let mut want: Vec<_> = entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        want.sort();
        assert_eq!(by_toml(&text), want);
    }

    #[test]
    fn only_the_exact_shape_takes_the_fast_path() {
        let ok = document(&[("alerts", "00ff - a\n")]);
        assert!(split(&ok).is_some());
        for bad in [
            // Something else after the table.
            format!("{ok}[outputs]\n"),
            format!("{ok}x = 1\n"),
            // The same key twice.
            format!("{ok}alerts = '''\nb\n'''\n"),
            // Anything before the table that could define `seen` too.
            format!("seen = {{}}\n{ok}"),
            format!("[seen.alerts]\n{ok}"),
            format!("\"seen\".x = 1\n{ok}"),
            // A closing quote run that is not the end of the string.
            ok.replace("a\n'''", "a''''"),
            // Not the last table.
            ok.replace("[seen]", "[other]"),
        ] {
            assert!(split(&bad).is_none(), "{bad}");
        }
    }
}
