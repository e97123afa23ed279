//! The slice of OData v4 the Defender API accepts: `$filter` as and-joined
//! comparisons (`eq ne gt ge lt le`) and `$orderby` as `field [asc|desc]`.
//!
//! Datetimes are compared as instants in 100 ns ticks, whatever their written
//! precision (0–7 fractional digits, with or without `Z`), because the API's
//! own values mix 7-digit, 2-digit and whole-second timestamps.

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    /// 100 ns ticks since the Unix epoch.
    Time(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub field: String,
    pub op: Op,
    pub value: Literal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBy {
    pub field: String,
    pub desc: bool,
}

/// A record's value for one field, as the filter sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    Time(i64),
}

pub fn ticks(t: DateTime<Utc>) -> i64 {
    t.timestamp() * 10_000_000 + i64::from(t.nanosecond() % 1_000_000_000) / 100
}

pub fn from_ticks(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(
        t.div_euclid(10_000_000),
        (t.rem_euclid(10_000_000) * 100) as u32,
    )
    .unwrap_or_default()
}

/// Parse an OData/Defender datetime: `2026-12-03T10:00:00[.fffffff][Z|±hh:mm]` or a bare date.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let frac_digits = s
        .split_once('.')
        .map(|(_, r)| r.chars().take_while(|c| c.is_ascii_digit()).count())
        .unwrap_or(0);
    if frac_digits > 7 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(ticks(t.with_timezone(&Utc)));
    }
    if let Ok(n) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(ticks(n.and_utc()));
    }
    if let Ok(n) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M") {
        return Some(ticks(n.and_utc()));
    }
    if let Some(d) = s.strip_suffix('Z').or(Some(s))
        && let Ok(d) = NaiveDate::parse_from_str(d, "%Y-%m-%d")
    {
        return Some(ticks(d.and_hms_opt(0, 0, 0)?.and_utc()));
    }
    None
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut v = String::new();
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            v.push('\'');
                        }
                        Some('\'') => break,
                        Some(c) => v.push(c),
                        None => return Err("unterminated string literal".into()),
                    }
                }
                out.push(Token::Quoted(v));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '(' || c == ')' {
                        break;
                    }
                    if c == '\'' {
                        // datetime'...' / datetimeoffset'...'
                        chars.next();
                        let mut v = String::new();
                        for c in chars.by_ref() {
                            if c == '\'' {
                                break;
                            }
                            v.push(c);
                        }
                        let prefix = w.to_ascii_lowercase();
                        if prefix != "datetime" && prefix != "datetimeoffset" {
                            return Err(format!("unexpected literal prefix `{w}`"));
                        }
                        w = v;
                        break;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
        }
    }
    Ok(out)
}

fn op(word: &str) -> Option<Op> {
    Some(match word.to_ascii_lowercase().as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "gt" => Op::Gt,
        "ge" => Op::Ge,
        "lt" => Op::Lt,
        "le" => Op::Le,
        _ => return None,
    })
}

fn literal(t: Token) -> Result<Literal, String> {
    match t {
        Token::Quoted(s) => Ok(Literal::Str(s)),
        Token::Word(w) => {
            let lw = w.to_ascii_lowercase();
            if lw == "null" {
                return Ok(Literal::Null);
            }
            if lw == "true" || lw == "false" {
                return Ok(Literal::Bool(lw == "true"));
            }
            if w.contains('-') && w.len() >= 10 && w.as_bytes()[4] == b'-' {
                return parse_datetime(&w)
                    .map(Literal::Time)
                    .ok_or_else(|| format!("`{w}` is not a valid DateTimeOffset"));
            }
            let num = w.trim_end_matches(['L', 'l', 'm', 'M', 'd', 'D']);
            num.parse::<f64>()
                .map(Literal::Num)
                .map_err(|_| format!("`{w}` is not a valid literal"))
        }
        _ => Err("unexpected parenthesis".into()),
    }
}

/// Parse a `$filter`: comparisons joined by `and`, parentheses allowed.
pub fn parse_filter(s: &str) -> Result<Vec<Comparison>, String> {
    let tokens = tokenize(s)?;
    let mut depth = 0i32;
    let mut flat = Vec::new();
    for t in tokens {
        match t {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced parentheses".into());
                }
            }
            t => flat.push(t),
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    let mut out = Vec::new();
    let mut it = flat.into_iter();
    loop {
        let field = match it.next() {
            Some(Token::Word(w)) if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => w,
            Some(t) => return Err(format!("expected a property name, found {t:?}")),
            None => return Err("empty filter expression".into()),
        };
        let o = match it.next() {
            Some(Token::Word(w)) => {
                op(&w).ok_or_else(|| format!("unsupported operator `{w}` after `{field}`"))?
            }
            _ => return Err(format!("expected an operator after `{field}`")),
        };
        let value = literal(
            it.next()
                .ok_or_else(|| format!("expected a value after `{field}`"))?,
        )?;
        out.push(Comparison {
            field,
            op: o,
            value,
        });
        match it.next() {
            None => return Ok(out),
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => {}
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("or") => {
                return Err("`or` is not supported; use separate queries".into());
            }
            Some(t) => return Err(format!("expected `and`, found {t:?}")),
        }
    }
}

/// Parse an `$orderby`: `field [asc|desc]`, comma-separated.
pub fn parse_orderby(s: &str) -> Result<Vec<OrderBy>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let (field, desc) = match words.as_slice() {
            [f] => (*f, false),
            [f, d] if d.eq_ignore_ascii_case("asc") => (*f, false),
            [f, d] if d.eq_ignore_ascii_case("desc") => (*f, true),
            _ => return Err(format!("invalid $orderby clause `{}`", part.trim())),
        };
        out.push(OrderBy {
            field: field.to_string(),
            desc,
        });
    }
    Ok(out)
}

/// Order two field values of the same property (nulls first).
pub fn order(a: &FieldValue, b: &FieldValue) -> Ordering {
    use FieldValue::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Less,
        (_, Null) => Ordering::Greater,
        (Time(x), Time(y)) => x.cmp(y),
        (Num(x), Num(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Bool(x), Bool(y)) => x.cmp(y),
        (Str(x), Str(y)) => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
        _ => Ordering::Equal,
    }
}

/// Does `value` satisfy `op lit`?
pub fn matches(value: &FieldValue, op: Op, lit: &Literal) -> bool {
    let ord = match (value, lit) {
        (FieldValue::Null, Literal::Null) => Some(Ordering::Equal),
        (FieldValue::Null, _) | (_, Literal::Null) => None,
        (FieldValue::Time(v), Literal::Time(l)) => Some(v.cmp(l)),
        (FieldValue::Time(v), Literal::Str(s)) => parse_datetime(s).map(|l| v.cmp(&l)),
        (FieldValue::Num(v), Literal::Num(l)) => v.partial_cmp(l),
        (FieldValue::Str(v), Literal::Num(l)) => {
            v.parse::<f64>().ok().and_then(|v| v.partial_cmp(l))
        }
        (FieldValue::Num(v), Literal::Str(s)) => {
            s.parse::<f64>().ok().and_then(|l| v.partial_cmp(&l))
        }
        (FieldValue::Bool(v), Literal::Bool(l)) => Some(v.cmp(l)),
        (FieldValue::Str(v), Literal::Str(l)) => {
            Some(v.to_ascii_lowercase().cmp(&l.to_ascii_lowercase()))
        }
        _ => None,
    };
    match ord {
        None => op == Op::Ne,
        Some(o) => match op {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Gt => o == Ordering::Greater,
            Op::Ge => o != Ordering::Less,
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joined_comparisons() {
        let f = parse_filter(
            "lastUpdateTime ge 2026-12-03T10:00:00.1234567Z and status eq 'New' and incidentId gt 5",
        )
        .unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].field, "lastUpdateTime");
        assert_eq!(f[0].op, Op::Ge);
        assert_eq!(
            f[0].value,
            Literal::Time(parse_datetime("2026-12-03T10:00:00.1234567Z").unwrap())
        );
        assert_eq!(f[1].value, Literal::Str("New".into()));
        assert_eq!(f[2].value, Literal::Num(5.0));
        let g = parse_filter("(alertCreationTime gt 2018-11-22) and (severity ne null)").unwrap();
        assert_eq!(
            g[0].value,
            Literal::Time(parse_datetime("2018-11-22T00:00:00Z").unwrap())
        );
        assert_eq!(g[1].value, Literal::Null);
        let h =
            parse_filter("startTime lt datetimeoffset'2026-01-01T00:00:00Z' and id eq 'O''Neil'")
                .unwrap();
        assert!(matches!(h[0].value, Literal::Time(_)));
        assert_eq!(h[1].value, Literal::Str("O'Neil".into()));
    }

    #[test]
    fn refuses_what_it_does_not_support() {
        for bad in [
            "",
            "status eq",
            "status like 'x'",
            "status eq 'New' or status eq 'Resolved'",
            "status eq 'New",
            "(status eq 'New'",
            "lastUpdateTime gt 2026-13-45T00:00:00Z",
            "lastUpdateTime gt 2026-12-03T10:00:00.12345678Z",
            "status eq New",
            "contains(title, 'x')",
        ] {
            assert!(parse_filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn datetimes_compare_as_instants_whatever_their_precision() {
        let seven = parse_datetime("2026-12-03T10:00:00.1234567Z").unwrap();
        let two = parse_datetime("2026-12-03T10:00:00.12Z").unwrap();
        let none = parse_datetime("2026-12-03T10:00:00Z").unwrap();
        let no_zone = parse_datetime("2026-12-03T10:00:00.12").unwrap();
        assert!(none < two && two < seven);
        assert_eq!(two, no_zone);
        let lit = Literal::Time(two);
        assert!(matches(&FieldValue::Time(seven), Op::Gt, &lit));
        assert!(matches(&FieldValue::Time(two), Op::Ge, &lit));
        assert!(!matches(&FieldValue::Time(two), Op::Gt, &lit));
        assert!(matches(&FieldValue::Time(none), Op::Lt, &lit));
        // a quoted datetime compares against a datetime field as a datetime too
        assert!(matches(
            &FieldValue::Time(seven),
            Op::Gt,
            &Literal::Str("2026-12-03T10:00:00.12Z".into())
        ));
        assert_eq!(
            from_ticks(seven),
            DateTime::parse_from_rfc3339("2026-12-03T10:00:00.1234567Z").unwrap()
        );
    }

    #[test]
    fn strings_numbers_and_nulls() {
        let s = FieldValue::Str("New".into());
        assert!(matches(&s, Op::Eq, &Literal::Str("new".into())));
        assert!(matches(&s, Op::Ne, &Literal::Str("Resolved".into())));
        assert!(matches(&FieldValue::Null, Op::Eq, &Literal::Null));
        assert!(!matches(&FieldValue::Null, Op::Gt, &Literal::Num(1.0)));
        assert!(matches(&FieldValue::Null, Op::Ne, &Literal::Num(1.0)));
        assert!(matches(
            &FieldValue::Str("63017".into()),
            Op::Gt,
            &Literal::Num(63000.0)
        ));
    }

    #[test]
    fn orderby_clauses() {
        assert_eq!(
            parse_orderby("lastUpdateTime desc, id").unwrap(),
            vec![
                OrderBy {
                    field: "lastUpdateTime".into(),
                    desc: true
                },
                OrderBy {
                    field: "id".into(),
                    desc: false
                }
            ]
        );
        assert!(parse_orderby("lastUpdateTime sideways").is_err());
        assert!(parse_orderby("").is_err());
    }
}
