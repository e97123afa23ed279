//! Reading how a page ends without reading the page: the raw time values of
//! its last records, found by walking backward from the end of a complete body.
//!
//! Keyset paging needs the last record's time (and how many records share it)
//! before it can ask for the next page. Checking a whole page of alerts with
//! evidence takes tens of milliseconds; reading its last few records backward
//! takes microseconds. So `pull` reads the tail first, asks for the next page
//! at once, and checks this page while the API prepares the next one.
//!
//! What this finds is a guess until the page has been checked: it assumes the
//! body is valid JSON, which only the full check settles. `pull` keeps the
//! early request only if the checked page leads to the very same one; a body
//! that fools this reader costs one discarded request, never a wrong record.
//!
//! Walking JSON backward is well defined once the text is known to be valid:
//! inside a string every `"` is escaped, so a `"` preceded by an even number of
//! backslashes is a string's end (or start), and braces outside strings nest.

use std::ops::Range;

use super::json;

/// The last records of a page, as far as they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// Each record's raw time value (the text of the member named as asked,
    /// at the record's top level; `None` where it has none), last record first.
    pub times: Vec<Option<Range<usize>>>,
    /// Whether `times` covers every record of the page (the walk reached the
    /// opening `[` of `value`).
    pub whole: bool,
}

/// [`Tail`] as text: each record's raw time value, last record first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailTimes<'a> {
    pub times: Vec<Option<&'a str>>,
    /// Every record of the page is in `times`.
    pub whole: bool,
}

/// Read up to `at_most` records backward from the end of `body`, a complete
/// page. `None` when the end does not read as a page whose `value` array
/// comes last, or when the page carries an `@odata.nextLink` (the link, not a
/// time, decides what comes next).
pub fn read(body: &[u8], time_field: &str, at_most: usize) -> Option<Tail> {
    read_ends(body, body, time_field, at_most)
}

/// [`read`] of a body known by its ends: `head`, its first bytes, and `body`,
/// its last ones (both may be the whole body). The ranges are into `body`.
/// `None` also when the records asked for begin before `body` does.
pub fn read_ends(head: &[u8], body: &[u8], time_field: &str, at_most: usize) -> Option<Tail> {
    if has_next_link_before_value(head)? {
        return None;
    }
    // The page object's closing brace, then its last members back to `value`.
    let mut end = trim_back(body, body.len());
    if end == 0 || body[end - 1] != b'}' {
        return None;
    }
    end -= 1;
    let array_end = loop {
        let v_end = trim_back(body, end);
        match *body.get(v_end.checked_sub(1)?)? {
            // Taken for `value`'s array; the check confirms it or the guess is dropped.
            b']' => break v_end - 1,
            b'{' => return None,
            _ => {}
        }
        let v_start = value_start(body, v_end)?;
        let colon = trim_back(body, v_start).checked_sub(1)?;
        if body[colon] != b':' {
            return None;
        }
        let n_end = trim_back(body, colon);
        let n_start = value_start(body, n_end)?;
        if json::name_is(&body[n_start..n_end], "@odata.nextLink")
            && &body[v_start..v_end] != b"null"
        {
            return None;
        }
        let sep = trim_back(body, n_start).checked_sub(1)?;
        match body[sep] {
            b',' => end = sep,
            _ => return None,
        }
    };
    // The records, last first.
    let mut times = Vec::new();
    let mut end = trim_back(body, array_end);
    if body.get(end.checked_sub(1)?) == Some(&b'[') {
        return Some(Tail { times, whole: true });
    }
    while times.len() < at_most {
        if body.get(end.checked_sub(1)?) != Some(&b'}') {
            return None;
        }
        let start = value_start(body, end)?;
        let (checked_end, [time]) = json::value(body, start, [time_field]).ok()?;
        if checked_end != end {
            return None;
        }
        times.push(time);
        let Some(before) = trim_back(body, start).checked_sub(1) else {
            // The end of a body begins with this record: enough if it was the last asked for.
            return (times.len() == at_most).then_some(Tail {
                times,
                whole: false,
            });
        };
        match body[before] {
            b',' => end = trim_back(body, before),
            b'[' => return Some(Tail { times, whole: true }),
            _ => return None,
        }
    }
    Some(Tail {
        times,
        whole: false,
    })
}

/// Whether a member before `value` is a non-null `@odata.nextLink` (`None`:
/// the start does not read as a page). Only the few small members before
/// `value` are read.
fn has_next_link_before_value(b: &[u8]) -> Option<bool> {
    let mut i = skip_ws(b, 0)?;
    if b[i] != b'{' {
        return None;
    }
    i = skip_ws(b, i + 1)?;
    loop {
        if b[i] != b'"' {
            return None;
        }
        let name_end = json::string(b, i).ok()?;
        let name = &b[i..name_end];
        let colon = skip_ws(b, name_end)?;
        if b[colon] != b':' {
            return None;
        }
        let v = skip_ws(b, colon + 1)?;
        if json::name_is(name, "value") {
            return Some(false);
        }
        let (v_end, _) = json::value(b, v, []).ok()?;
        if json::name_is(name, "@odata.nextLink") && b[v] != b'n' {
            return Some(true);
        }
        let comma = skip_ws(b, v_end)?;
        if b[comma] != b',' {
            return None;
        }
        i = skip_ws(b, comma + 1)?;
    }
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\n' | b'\r' | b'\t')
}

fn skip_ws(b: &[u8], mut i: usize) -> Option<usize> {
    while is_ws(*b.get(i)?) {
        i += 1;
    }
    Some(i)
}

/// `end` moved back over whitespace: `b[..result]` ends with a non-space byte
/// (or is empty).
fn trim_back(b: &[u8], mut end: usize) -> usize {
    while end > 0 && is_ws(b[end - 1]) {
        end -= 1;
    }
    end
}

/// Where the JSON value that ends just before `end` starts.
fn value_start(b: &[u8], end: usize) -> Option<usize> {
    let last = end.checked_sub(1)?;
    match b[last] {
        b'"' => string_start(b, last),
        b'}' | b']' => container_start(b, last),
        _ => {
            let mut i = last;
            while i > 0 && is_scalar(b[i - 1]) {
                i -= 1;
            }
            is_scalar(b[last]).then_some(i)
        }
    }
}

fn is_scalar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'+' | b'.')
}

/// The opening quote of the string whose closing quote is at `close`.
fn string_start(b: &[u8], close: usize) -> Option<usize> {
    let mut at = close;
    loop {
        at = memchr::memrchr(b'"', &b[..at])?;
        if !escaped(b, at) {
            return Some(at);
        }
    }
}

/// Whether the byte at `at` follows an odd number of backslashes.
fn escaped(b: &[u8], at: usize) -> bool {
    b[..at].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1
}

/// The opening bracket of the object or array whose closing one is at `close`.
fn container_start(b: &[u8], close: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = close + 1;
    while i > 0 {
        i -= 1;
        match b[i] {
            b'"' => i = string_start(b, i)?,
            b'}' | b']' => depth += 1,
            b'{' | b'[' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Endpoint, page};

    fn times(body: &str, at_most: usize) -> Option<(Vec<Option<&str>>, bool)> {
        let t = read(body.as_bytes(), "lastUpdateTime", at_most)?;
        let raw = t
            .times
            .iter()
            .map(|r| r.clone().map(|r| &body[r]))
            .collect();
        Some((raw, t.whole))
    }

    #[test]
    fn reads_the_last_records_times_backward() {
        let body = r#"{"@odata.context":"x","value":[
            {"id":"a","lastUpdateTime":"t1","evidence":[{"lastUpdateTime":"inner"}]},
            {"id":"b}\"]{","s":"\\","lastUpdateTime" : "t2"},
            {"lastUpdateTime":null,"n":-1.5e+3,"o":{"x":[true,false,{}]}},
            {"x":"no time"}
        ]}"#;
        assert_eq!(
            times(body, 10),
            Some((
                vec![None, Some("null"), Some(r#""t2""#), Some(r#""t1""#)],
                true
            ))
        );
        assert_eq!(times(body, 2), Some((vec![None, Some("null")], false)));
        assert_eq!(times(r#"{"value":[ ]}"#, 5), Some((vec![], true)));
    }

    #[test]
    fn members_after_value_are_stepped_over_but_a_next_link_stops_it() {
        let after = r#"{"value":[{"lastUpdateTime":"t"}],"@odata.count":3,"x":"a\"}]","y":null} "#;
        assert_eq!(times(after, 5), Some((vec![Some(r#""t""#)], true)));
        let null_link = r#"{"value":[{"lastUpdateTime":"t"}],"@odata.nextLink":null}"#;
        assert_eq!(times(null_link, 5), Some((vec![Some(r#""t""#)], true)));
        for linked in [
            r#"{"value":[{"lastUpdateTime":"t"}],"@odata.nextLink":"http://x/?$skip=1"}"#,
            r#"{"@odata.nextLink":"http://x/?$skip=1","value":[{"lastUpdateTime":"t"}]}"#,
        ] {
            assert_eq!(times(linked, 5), None, "{linked}");
        }
    }

    #[test]
    fn a_body_known_by_its_ends_reads_as_the_whole_while_the_records_asked_for_are_in_its_end() {
        let records: Vec<String> = (0..40)
            .map(|i| {
                format!(
                    r#"{{"id":"r{i}","lastUpdateTime":"t{i}","pad":"{}"}}"#,
                    "x".repeat(i)
                )
            })
            .collect();
        let body = format!(
            r#"{{"@odata.context":"c","value":[{}]}}"#,
            records.join(",")
        );
        let b = body.as_bytes();
        let whole = read(b, "lastUpdateTime", 5).unwrap();
        let text = |b: &[u8], t: &Tail| -> Vec<Option<String>> {
            t.times
                .iter()
                .map(|r| r.clone().map(|r| String::from_utf8(b[r].to_vec()).unwrap()))
                .collect()
        };
        // Cut anywhere before the last five records, even mid-record or
        // mid-string: the same five times.
        let fifth_last = body.find(r#"{"id":"r35""#).unwrap();
        for cut in [fifth_last, fifth_last - 1, fifth_last - 7, 100, 1] {
            let end = &b[cut..];
            let t = read_ends(&b[..64], end, "lastUpdateTime", 5).unwrap();
            assert_eq!(text(end, &t), text(b, &whole), "cut at {cut}");
            assert!(!t.whole);
        }
        // Asked for more records than the end holds: no tail, not a wrong one.
        let end = &b[fifth_last + 3..];
        assert_eq!(read_ends(&b[..64], end, "lastUpdateTime", 5), None);
        // Every record asked for: whole only when the end reaches `[`.
        let all = read_ends(&b[..64], b, "lastUpdateTime", 100).unwrap();
        assert!(all.whole && all.times.len() == 40);
        assert!(!read_ends(&b[..64], &b[40..], "lastUpdateTime", 100).is_some_and(|t| t.whole));
        // A nextLink before `value`, seen in the head, stops it.
        let linked = format!(r#"{{"@odata.nextLink":"http://x/?$skip=1",{}"#, &body[1..]);
        assert_eq!(
            read_ends(linked.as_bytes(), linked.as_bytes(), "lastUpdateTime", 5),
            None
        );
    }

    #[test]
    fn bodies_that_do_not_end_as_a_page_give_no_tail() {
        for bad in [
            "",
            "{",
            r#"{"value":[{"lastUpdateTime":"t"}]"#,
            r#"{"value":[{"lastUpdateTime":"t"},{"lastUp"#,
            r#"{"value":[{"lastUpdateTime":"t"}}"#,
            r#"<html>}</html>"#,
            r#"{"value":{"a":1}}"#,
            r#"{"other":[]}"#,
            r#"{"value":[1,2]}"#,
        ] {
            assert_eq!(times(bad, 5), None, "{bad}");
        }
    }

    /// On valid pages of every shape, what is read backward is what the full
    /// check finds going forward.
    #[test]
    fn agrees_with_the_full_check_on_generated_pages() {
        let base = url::Url::parse("http://localhost").unwrap();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let pieces = [
            r#""plain""#,
            r#""quote \" inside""#,
            r#""backslash at the end \\""#,
            r#""braces }]{[ and \\\" mixed""#,
            r#""\u00e9 unicode é 漢字""#,
            "-12.5e3",
            "true",
            "null",
            r#"{"lastUpdateTime":"nested, not top level"}"#,
            r#"[1, "]", {"a": "}"}]"#,
            " { } ",
        ];
        for round in 0..400 {
            let n = next(6) as usize;
            let mut records = Vec::new();
            for i in 0..n {
                let mut members = vec![format!(r#""id":"r{i}""#)];
                for _ in 0..next(4) {
                    let v = pieces[next(pieces.len() as u64) as usize];
                    members.push(format!(r#""f{}" : {v}"#, next(9)));
                }
                if next(4) > 0 {
                    let at = next(members.len() as u64 + 1) as usize;
                    members.insert(
                        at,
                        format!(r#""lastUpdateTime":"2026-12-0{}T00:00:00Z""#, 1 + next(9)),
                    );
                }
                records.push(format!(
                    "{{{}}}",
                    members.join(if next(2) == 0 { "," } else { " ,\n " })
                ));
            }
            let trailer = ["", r#","@odata.count":7"#, r#", "z" : {"a":"]"} "#][next(3) as usize];
            let body = format!(
                r#"{{"@odata.context":"c{round}", "value" : [ {} ] {trailer}}}"#,
                records.join(",")
            );
            let page = page::parse(body.as_bytes(), Endpoint::Alerts, &base)
                .unwrap_or_else(|e| panic!("{e:?}: {body}"));
            let forward: Vec<Option<&str>> =
                (0..page.len()).rev().map(|i| page.members(i)[1]).collect();
            let at_most = 1 + next(6) as usize;
            let (backward, whole) = times(&body, at_most).unwrap_or_else(|| panic!("{body}"));
            assert_eq!(backward, forward[..forward.len().min(at_most)], "{body}");
            assert_eq!(whole, n <= at_most, "{body}");
        }
    }
}
