//! Checking that bytes are JSON, and finding where its parts are, without
//! building anything.
//!
//! A page of alerts with evidence is tens of megabytes of JSON, of which `pull`
//! needs only where each record starts and ends and two members of each; the
//! records are written out as received. [`value`] walks one JSON value as a
//! validating parser would — RFC 8259's grammar as `serde_json` accepts it:
//! strings without raw control characters, valid escapes, numbers, literals,
//! at most [`MAX_DEPTH`] levels — but builds nothing, and crosses strings (most
//! of the bytes) with `memchr`. A value that runs off the end of the bytes so
//! far is [`Stop::More`], not an error, so a page can be checked while it is
//! still arriving. UTF-8 is left to the caller: outside strings only ASCII is
//! accepted, so one pass over the whole body settles it.

use std::ops::Range;

/// The deepest nesting accepted (`serde_json`'s default recursion limit).
pub const MAX_DEPTH: usize = 128;

/// Why [`value`] stopped without a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The bytes end inside the value: more bytes may complete it.
    More,
    /// Not JSON: what was expected at byte `at`.
    Invalid { at: usize, expected: &'static str },
}

fn invalid(at: usize, expected: &'static str) -> Stop {
    Stop::Invalid { at, expected }
}

/// Where a value's top-level members of the given names are (first occurrence).
pub type Found<const N: usize> = [Option<Range<usize>>; N];

/// Check the JSON value starting at or after `b[start]` (after whitespace) and
/// return the index just past it. When the value is an object, the raw values
/// of its top-level members named in `names` are located too (names compare
/// unescaped; the first occurrence wins). A value is complete only once the
/// byte after it is seen (a number at the very end could go on), which every
/// value inside a page is.
pub fn value<const N: usize>(
    b: &[u8],
    start: usize,
    names: [&str; N],
) -> Result<(usize, Found<N>), Stop> {
    let mut found: Found<N> = std::array::from_fn(|_| None);
    // Bit k is set when the container at depth k + 1 is an object.
    let mut objects: u128 = 0;
    let mut depth = 0usize;
    // The slot of a wanted member whose value starts at the given index.
    let mut pending: Option<(usize, usize)> = None;
    let mut i = start;
    loop {
        // A value starts at `i`, after whitespace.
        i = ws(b, i)?;
        match b[i] {
            open @ (b'{' | b'[') => {
                if depth == MAX_DEPTH {
                    return Err(invalid(i, "at most 128 levels of nesting"));
                }
                let object = open == b'{';
                objects = if object {
                    objects | 1 << depth
                } else {
                    objects & !(1 << depth)
                };
                depth += 1;
                i = ws(b, i + 1)?;
                if b[i] == if object { b'}' } else { b']' } {
                    depth -= 1;
                    i += 1;
                } else {
                    if object {
                        i = member_name(b, i, depth == 1, &names, &found, &mut pending)?;
                    }
                    continue;
                }
            }
            b'"' => i = string(b, i)?,
            b'-' | b'0'..=b'9' => i = number(b, i)?,
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            _ => return Err(invalid(i, "a JSON value")),
        }
        // A value ends just before `i`: close containers until another value starts.
        loop {
            if depth == 1
                && let Some((slot, from)) = pending.take()
            {
                found[slot] = Some(from..i);
            }
            if depth == 0 {
                return Ok((i, found));
            }
            i = ws(b, i)?;
            let object = objects >> (depth - 1) & 1 == 1;
            match (b[i], object) {
                (b',', true) => {
                    let at = ws(b, i + 1)?;
                    i = member_name(b, at, depth == 1, &names, &found, &mut pending)?;
                    break;
                }
                (b',', false) => {
                    i += 1;
                    break;
                }
                (b'}', true) | (b']', false) => {
                    depth -= 1;
                    i += 1;
                }
                (_, true) => return Err(invalid(i, "`,` or `}`")),
                (_, false) => return Err(invalid(i, "`,` or `]`")),
            }
        }
    }
}

/// `"name" :` at `b[i]`; returns where the member's value starts. At the top
/// level, notes a wanted name in `pending`.
#[inline]
fn member_name<const N: usize>(
    b: &[u8],
    i: usize,
    top: bool,
    names: &[&str; N],
    found: &Found<N>,
    pending: &mut Option<(usize, usize)>,
) -> Result<usize, Stop> {
    if b[i] != b'"' {
        return Err(invalid(i, "a member name (a string)"));
    }
    let (end, escaped) = string_escapes(b, i)?;
    let colon = ws(b, end)?;
    if b[colon] != b':' {
        return Err(invalid(colon, "`:` after a member name"));
    }
    let at = ws(b, colon + 1)?;
    if top && N > 0 {
        let raw = &b[i..end];
        if let Some(slot) = (0..N).find(|&k| found[k].is_none() && is(raw, escaped, names[k])) {
            *pending = Some((slot, at));
        }
    }
    Ok(at)
}

/// Whether the raw JSON string `raw` (quotes included, already checked) is
/// `name`, which has no backslash.
pub fn name_is(raw: &[u8], name: &str) -> bool {
    is(raw, memchr::memchr(b'\\', raw).is_some(), name)
}

#[inline]
fn is(raw: &[u8], escaped: bool, name: &str) -> bool {
    let inner = &raw[1..raw.len() - 1];
    if escaped {
        // Escapes only lengthen the raw text.
        inner.len() > name.len() && serde_json::from_slice::<String>(raw).is_ok_and(|s| s == name)
    } else {
        inner == name.as_bytes()
    }
}

/// Skip whitespace; the index of the next byte, which exists.
#[inline]
fn ws(b: &[u8], mut i: usize) -> Result<usize, Stop> {
    while let Some(&c) = b.get(i) {
        if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            return Ok(i);
        }
        i += 1;
    }
    Err(Stop::More)
}

/// The string starting at `b[i]` (a `"`); the index just past its closing quote.
#[inline]
pub fn string(b: &[u8], i: usize) -> Result<usize, Stop> {
    string_escapes(b, i).map(|(end, _)| end)
}

/// [`string`], and whether the string has escapes.
#[inline]
fn string_escapes(b: &[u8], i: usize) -> Result<(usize, bool), Stop> {
    let (mut j, mut escaped) = (i + 1, false);
    loop {
        j = to_special(b, j);
        match b.get(j) {
            None => return Err(Stop::More),
            Some(b'"') => return Ok((j + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                j = escape(b, j)?;
            }
            Some(_) => {
                return Err(invalid(
                    j,
                    "no raw control character inside a string (they must be escaped)",
                ));
            }
        }
    }
}

/// The index of the first `"`, `\\` or control character at or after `j`
/// (`b.len()` if none): sixteen bytes at a time with SSE2 (part of every
/// x86-64), eight at a time elsewhere. Strings are most of a page's bytes, and
/// most of them are short.
#[inline]
fn to_special(b: &[u8], mut j: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        // SAFETY: SSE2 is in the x86-64 baseline; each unaligned load reads
        // sixteen bytes inside `b` (`j + 16 <= b.len()`).
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let control = _mm_set1_epi8(0x1F);
            while j + 16 <= b.len() {
                let v = _mm_loadu_si128(b.as_ptr().add(j).cast());
                // max(v, 0x1F) == 0x1F exactly for the bytes below 0x20 (unsigned).
                let flagged = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                    _mm_cmpeq_epi8(_mm_max_epu8(v, control), control),
                );
                let mask = _mm_movemask_epi8(flagged) as u32;
                if mask != 0 {
                    return j + mask.trailing_zeros() as usize;
                }
                j += 16;
            }
        }
    }
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A high bit in the lowest flagged byte is exact (borrows only run upwards).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    while let Some(chunk) = b.get(j..j + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let flagged = zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
        if flagged != 0 {
            return j + (flagged.trailing_zeros() / 8) as usize;
        }
        j += 8;
    }
    while let Some(&c) = b.get(j) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return j;
        }
        j += 1;
    }
    j
}

/// The escape at `b[j]` (a `\`); the index just past it.
fn escape(b: &[u8], j: usize) -> Result<usize, Stop> {
    match b.get(j + 1) {
        None => Err(Stop::More),
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(j + 2),
        Some(b'u') => {
            // Four hex digits; any code unit, as serde_json accepts when not decoding.
            for k in j + 2..j + 6 {
                match b.get(k) {
                    None => return Err(Stop::More),
                    Some(c) if c.is_ascii_hexdigit() => {}
                    Some(_) => return Err(invalid(k, "four hex digits after `\\u`")),
                }
            }
            Ok(j + 6)
        }
        Some(_) => Err(invalid(j + 1, "an escape (one of \" \\ / b f n r t u)")),
    }
}

/// The number starting at `b[i]`; the index just past it.
fn number(b: &[u8], i: usize) -> Result<usize, Stop> {
    let mut j = i;
    if b[j] == b'-' {
        j += 1;
    }
    match b.get(j) {
        None => return Err(Stop::More),
        Some(b'0') => j += 1,
        Some(b'1'..=b'9') => j = digits(b, j + 1),
        Some(_) => return Err(invalid(j, "a digit")),
    }
    if b.get(j) == Some(&b'.') {
        j = at_least_one_digit(b, j + 1)?;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        j = at_least_one_digit(b, j)?;
    }
    if j == b.len() {
        // The number may go on in the bytes still to come.
        return Err(Stop::More);
    }
    Ok(j)
}

fn digits(b: &[u8], mut j: usize) -> usize {
    while b.get(j).is_some_and(u8::is_ascii_digit) {
        j += 1;
    }
    j
}

fn at_least_one_digit(b: &[u8], j: usize) -> Result<usize, Stop> {
    match b.get(j) {
        None => Err(Stop::More),
        Some(c) if c.is_ascii_digit() => Ok(digits(b, j + 1)),
        Some(_) => Err(invalid(j, "a digit")),
    }
}

fn literal(b: &[u8], i: usize, word: &'static [u8]) -> Result<usize, Stop> {
    let have = &b[i..b.len().min(i + word.len())];
    if have == word {
        Ok(i + word.len())
    } else if word.starts_with(have) {
        Err(Stop::More)
    } else {
        Err(invalid(i, "a JSON value"))
    }
}

#[cfg(test)]
mod tests;
