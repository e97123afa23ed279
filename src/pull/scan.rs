//! Finding a few top-level members of one JSON object without parsing the rest.
//!
//! `pull` needs only a record's `id` and its time field, and the page parser has
//! already checked that the record is valid JSON. Deserializing it again would
//! walk every byte of its evidence; this scanner walks the object's top level,
//! skips nested values by counting brackets outside strings, and stops as soon
//! as every wanted member was found (the time field comes before the evidence).
//! Values are handed back as their raw JSON text; decoding them is the caller's.

/// Why a text is not an object the scanner can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError(pub String);

/// For each of `wanted` (unescaped member names), the raw JSON text of its value
/// at the top level of `obj`, or `None`. The first occurrence of a name wins.
/// `obj` must be valid JSON; anything that is not an object is an error.
pub fn members<'a, const N: usize>(
    obj: &'a str,
    wanted: [&str; N],
) -> Result<[Option<&'a str>; N], ScanError> {
    let b = obj.as_bytes();
    let mut found: [Option<&'a str>; N] = [None; N];
    let mut left = N;
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(ScanError("not a JSON object".into()));
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Ok(found);
    }
    while left > 0 {
        // "key"
        if b.get(i) != Some(&b'"') {
            return Err(ScanError(format!("expected a member name at byte {i}")));
        }
        let key_end = skip_string(b, i)?;
        let key = &obj[i..key_end];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return Err(ScanError(format!("expected `:` at byte {i}")));
        }
        i = skip_ws(b, i + 1);
        let value_end = skip_value(b, i)?;
        let name = key_name(key);
        let slot = wanted
            .iter()
            .position(|w| name.as_deref() == Some(*w))
            .filter(|&k| found[k].is_none());
        if let Some(k) = slot {
            found[k] = Some(&obj[i..value_end]);
            left -= 1;
        }
        i = skip_ws(b, value_end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => break,
            _ => return Err(ScanError(format!("expected `,` or `}}` at byte {i}"))),
        }
    }
    Ok(found)
}

/// A raw, quoted member name, unescaped (borrowed when it has no escapes).
fn key_name(raw: &str) -> Option<std::borrow::Cow<'_, str>> {
    let inner = &raw[1..raw.len() - 1];
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Into::into)
    } else {
        Some(inner.into())
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\n' | b'\r' | b'\t')) {
        i += 1;
    }
    i
}

/// `b[i]` is `"`; the index just past the closing quote.
fn skip_string(b: &[u8], i: usize) -> Result<usize, ScanError> {
    let mut j = i + 1;
    while let Some(k) = b
        .get(j..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        j += k;
        if b[j] == b'"' {
            return Ok(j + 1);
        }
        j += 2;
    }
    Err(ScanError("a string does not end".into()))
}

/// The index just past the value starting at `b[i]`.
fn skip_value(b: &[u8], i: usize) -> Result<usize, ScanError> {
    match b.get(i) {
        Some(b'"') => skip_string(b, i),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            Err(ScanError("a nested value does not end".into()))
        }
        Some(_) => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            if j == i {
                Err(ScanError(format!("expected a value at byte {i}")))
            } else {
                Ok(j)
            }
        }
        None => Err(ScanError("the object ends early".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// What serde_json says the top-level `id` and `t` are, as JSON values.
    fn by_serde(obj: &str) -> [Option<Value>; 2] {
        let v: Value = serde_json::from_str(obj).unwrap();
        ["id", "t"].map(|k| v.get(k).cloned())
    }

    fn by_scan(obj: &str) -> [Option<Value>; 2] {
        members(obj, ["id", "t"])
            .unwrap()
            .map(|raw| raw.map(|r| serde_json::from_str(r).unwrap()))
    }

    #[test]
    fn agrees_with_serde_on_tricky_objects() {
        for obj in [
            r#"{"id":"a","t":"2026-12-03T10:00:00Z"}"#,
            r#"{}"#,
            "  {  }  ",
            r#"{"x":1}"#,
            // The same names nested, before and after the top-level ones.
            r#"{"ev":[{"id":"inner","t":"x"}],"id":"outer","n":{"t":{"id":1}},"t":"top"}"#,
            r#"{"n":{"id":"inner"}}"#,
            // Escaped quotes and brackets inside strings, and escaped keys.
            r#"{"s":"a \" } ] { [ \\","id":"q\"uote","t":"\\"}"#,
            r#"{"\u0069d":"escaped key","t":"\u0032026"}"#,
            r#"{"i\"d":"not id","id":"yes"}"#,
            // Whitespace everywhere, numbers, literals, empty containers.
            "{\n  \"a\" : [ 1 , 2.5e-3 , true , null , { } , [ ] ] ,\n\t\"id\"\r\n:\n 42 , \"t\" : null\n}",
            r#"{"id":-0.5e+10,"t":false}"#,
            r#"{"id":[],"t":{}}"#,
            // Unicode, raw and escaped.
            r#"{"é":"ü","id":"\ud83d\ude00 ✓","t":"日本"}"#,
        ] {
            assert_eq!(by_scan(obj), by_serde(obj), "{obj}");
        }
    }

    #[test]
    fn stops_at_the_first_occurrence_and_refuses_non_objects() {
        let [id] = members(r#"{"id":"first","id":"second"}"#, ["id"]).unwrap();
        assert_eq!(id, Some(r#""first""#));
        for bad in ["[1,2]", "\"id\"", "1", "", "null"] {
            assert!(members(bad, ["id"]).is_err(), "{bad}");
        }
    }
}
