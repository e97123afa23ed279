//! The checker against serde_json: the same verdict on valid, cut-off and
//! corrupted JSON, and the same members found.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::IgnoredAny;
use serde_json::Value;

use super::*;

/// Our verdict on a whole document: `Ok` when it is one value and whitespace.
fn ours(doc: &[u8]) -> Result<(), Stop> {
    let end = match value(doc, 0, []) {
        Ok((end, _)) => end,
        // A number at the very end is complete once something follows it.
        Err(Stop::More) => {
            let mut b = doc.to_vec();
            b.push(b' ');
            value(&b, 0, []).map_err(|_| Stop::More)?.0
        }
        Err(e) => return Err(e),
    };
    match doc
        .get(end..)
        .unwrap_or_default()
        .iter()
        .position(|c| !c.is_ascii_whitespace())
    {
        None => Ok(()),
        Some(k) => Err(invalid(end + k, "the end")),
    }
}

fn serde_accepts(doc: &[u8]) -> Result<(), serde_json::Error> {
    serde_json::from_slice::<IgnoredAny>(doc).map(|_| ())
}

fn agree(doc: &[u8]) {
    let (a, b) = (ours(doc), serde_accepts(doc));
    let text = String::from_utf8_lossy(doc);
    match (&a, &b) {
        (Ok(()), Ok(())) => {}
        // serde_json calls some cuts invalid ("1." at the end): both refuse,
        // and that every cut asks for more is checked on its own below.
        (Err(Stop::More), Err(_)) => {}
        (Err(Stop::Invalid { .. }), Err(e)) if !e.is_eof() => {}
        _ => panic!("ours {a:?}, serde_json {b:?} on {text:?}"),
    }
}

#[test]
fn agrees_with_serde_on_hand_picked_documents() {
    for doc in [
        "{}",
        "[]",
        "0",
        "-0",
        "1.5",
        "-12.5e+3",
        "1E5",
        "1e-0",
        "true",
        "false",
        "null",
        r#""""#,
        r#""a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D\uDE00""#,
        r#""\ud800""#,
        " \t\r\n[ 1 , { \"a\" : [ ] } ]\n",
        r#"{"a":{"b":{"c":[1,[2,[3]]]}}}"#,
        "\"é ✓ 日本\"",
        // Invalid.
        "01",
        "1.",
        ".5",
        "-",
        "+1",
        "1e",
        "1e+",
        "0x10",
        "NaN",
        "Infinity",
        "tru",
        "nul",
        "truex",
        "[1,]",
        "[,1]",
        "{,}",
        r#"{"a":1,}"#,
        r#"{"a" 1}"#,
        r#"{a:1}"#,
        "{'a':1}",
        r#"{"a":1 "b":2}"#,
        "[1 2]",
        r#""\x""#,
        r#""\u12g4""#,
        "\"a\u{1}b\"",
        "\"tab\there\"",
        "[1]]",
        "{}}",
        "[",
        "{",
        "\"abc",
        r#"{"a":"#,
        "[1,",
        "\u{feff}{}",
        "[\u{a0}1]",
        "/* c */ 1",
        "[1] x",
        "",
        "   ",
    ] {
        agree(doc.as_bytes());
    }
}

#[test]
fn every_cut_of_a_valid_document_asks_for_more() {
    let doc = r#"{"id":"da1","n":-12.5e+3,"ok":true,"none":null,"s":"a\"\\\u00e9 ✓","ev":[{"x":[1,{}]},[]],"e":{}}"#
        .as_bytes();
    for cut in 0..doc.len() {
        assert_eq!(value(&doc[..cut], 0, []), Err(Stop::More), "cut at {cut}");
    }
    assert_eq!(value(doc, 0, []).map(|(end, _)| end), Ok(doc.len()));
}

#[test]
fn nesting_is_limited() {
    let nest = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
    assert!(ours(nest(MAX_DEPTH).as_bytes()).is_ok());
    assert!(matches!(
        ours(nest(MAX_DEPTH + 1).as_bytes()),
        Err(Stop::Invalid { at, .. }) if at == MAX_DEPTH
    ));
}

/// A random JSON value, small and shallow, with the characters that matter.
fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    let strings = [
        "", "a", "id", "é", "\"", "\\", "/", "\n", "\u{1}", "日本", "😀", "x y", "}]",
    ];
    match rng.random_range(0..if depth > 3 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => Value::from(rng.random_range(-1_000_000i64..1_000_000)),
        3 => Value::from(rng.random::<f64>() * 10f64.powi(rng.random_range(-30..30))),
        4 => Value::from(strings[rng.random_range(0..strings.len())]),
        5 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.random_range(0..4))
                .map(|_| {
                    let k = strings[rng.random_range(0..strings.len())].to_string();
                    (k, random_value(rng, depth + 1))
                })
                .collect(),
        ),
    }
}

#[test]
fn agrees_with_serde_on_random_and_corrupted_documents() {
    let mut rng = StdRng::seed_from_u64(6);
    let alphabet = b"{}[]:,\"\\ \n\t0123456789-+.eEtrufalsn\x01\x1f\x7f";
    for round in 0..4000 {
        let v = random_value(&mut rng, 0);
        let text = if round % 2 == 0 {
            serde_json::to_vec(&v).unwrap()
        } else {
            serde_json::to_vec_pretty(&v).unwrap()
        };
        assert!(ours(&text).is_ok(), "{}", String::from_utf8_lossy(&text));
        let mut bad = text.clone();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..=bad.len());
            match rng.random_range(0..3) {
                0 if at < bad.len() => {
                    bad.remove(at);
                }
                1 if at < bad.len() => bad[at] = alphabet[rng.random_range(0..alphabet.len())],
                _ => bad.insert(at, alphabet[rng.random_range(0..alphabet.len())]),
            }
        }
        agree(&bad);
        // And every cut of the valid text.
        let cut = rng.random_range(0..text.len());
        agree(&text[..cut]);
    }
}

/// What serde_json says the top-level `id` and `t` are.
fn by_serde(obj: &str) -> [Option<Value>; 2] {
    let v: Value = serde_json::from_str(obj).unwrap();
    ["id", "t"].map(|k| v.get(k).cloned())
}

fn by_us(obj: &str) -> [Option<Value>; 2] {
    let b = format!("{obj} ");
    let (_, found) = value(b.as_bytes(), 0, ["id", "t"]).unwrap();
    found.map(|r| r.map(|r| serde_json::from_str(&b[r]).unwrap()))
}

#[test]
fn finds_top_level_members_like_serde() {
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
        r#"{"id":{"t":1},"t":[{"id":2}]}"#,
        // Unicode, raw and escaped.
        r#"{"é":"ü","id":"\ud83d\ude00 ✓","t":"日本"}"#,
    ] {
        assert_eq!(by_us(obj), by_serde(obj), "{obj}");
    }
}

#[test]
fn the_first_occurrence_wins_and_only_objects_have_members() {
    let b = br#"{"id":"first","id":"second"} "#;
    let (_, [id]) = value(b, 0, ["id"]).unwrap();
    assert_eq!(&b[id.unwrap()], br#""first""#);
    let b = br#"[{"id":"inner"}] "#;
    assert_eq!(value(b, 0, ["id"]).unwrap().1, [None]);
}

#[test]
fn the_wide_string_scan_stops_where_a_plain_loop_does() {
    // Sixteen- and eight-byte steps, then bytes: a special byte at every
    // offset of a long run, of each kind, among bytes that are not special
    // (UTF-8 continuation bytes above 0x7F included: they must not pass for
    // control characters), from every start.
    let plain = |b: &[u8], j: usize| {
        (j..b.len())
            .find(|&k| b[k] == b'"' || b[k] == b'\\' || b[k] < 0x20)
            .unwrap_or(b.len())
    };
    let filler: Vec<u8> = "aé€\u{7f}~ 0".bytes().cycle().take(70).collect();
    for special in [b'"', b'\\', 0x00, 0x1F, b'\n'] {
        for at in 0..filler.len() {
            let mut b = filler.clone();
            b[at] = special;
            for start in 0..=at.min(20) {
                assert_eq!(
                    to_special(&b, start),
                    plain(&b, start),
                    "{special:#x} at {at}"
                );
            }
        }
    }
    for start in 0..=filler.len() {
        assert_eq!(to_special(&filler, start), filler.len());
    }
}
