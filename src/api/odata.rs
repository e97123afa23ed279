//! OData query strings for the Defender API: `$filter`, `$orderby`, `$top`,
//! `$skip`, `$expand`, percent-encoded, with datetimes written the way the API
//! compares them (7 fractional digits, `Z`).
//!
//! The filter helpers ([`ge`], [`gt`], [`and`], ...) exist so the pull code never
//! concatenates OData by hand: string literals are quoted and escaped here, and
//! datetimes always go through [`crate::time::odata`].

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use url::Url;

use super::{MAX_TOP, Query};
use crate::time::{self, Timestamp};

/// Everything but RFC 3986 unreserved characters is encoded (a space is `%20`,
/// never `+`, which some OData servers read literally).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The query options of `q`, in the order they are sent, not yet encoded.
pub fn pairs(q: &Query) -> Vec<(&'static str, String)> {
    let mut out = Vec::with_capacity(5);
    if let Some(f) = q.filter.as_deref().filter(|f| !f.is_empty()) {
        out.push(("$filter", f.to_string()));
    }
    if let Some(o) = q.orderby.as_deref().filter(|o| !o.is_empty()) {
        out.push(("$orderby", o.to_string()));
    }
    out.push(("$top", q.top.clamp(1, MAX_TOP).to_string()));
    if q.skip > 0 {
        out.push(("$skip", q.skip.to_string()));
    }
    if let Some(e) = q.endpoint.expand() {
        out.push(("$expand", e.to_string()));
    }
    out
}

/// The encoded query string of `q` (without the leading `?`).
pub fn query_string(q: &Query) -> String {
    pairs(q)
        .into_iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(&v, QUERY_VALUE)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The full URL of `q` under the API base: `{base}/api/alerts?$filter=...`.
/// A path on the base (a gateway prefix) is kept.
pub fn url(base: &Url, q: &Query) -> Url {
    let mut u = base.clone();
    let prefix = base.path().trim_end_matches('/');
    u.set_path(&format!("{prefix}{}", q.endpoint.path()));
    u.set_fragment(None);
    u.set_query(Some(&query_string(q)));
    u
}

/// `field ge 2026-12-03T15:00:00.0000000Z`
pub fn ge(field: &str, t: Timestamp) -> String {
    compare(field, "ge", t)
}

/// `field gt 2026-12-03T15:00:00.0000000Z`
pub fn gt(field: &str, t: Timestamp) -> String {
    compare(field, "gt", t)
}

/// `field le 2026-12-03T15:00:00.0000000Z`
pub fn le(field: &str, t: Timestamp) -> String {
    compare(field, "le", t)
}

/// `field lt 2026-12-03T15:00:00.0000000Z`
pub fn lt(field: &str, t: Timestamp) -> String {
    compare(field, "lt", t)
}

/// `field eq 2026-12-03T15:00:00.0000000Z`
pub fn eq_time(field: &str, t: Timestamp) -> String {
    compare(field, "eq", t)
}

fn compare(field: &str, op: &str, t: Timestamp) -> String {
    format!("{field} {op} {}", time::odata(t))
}

/// `field eq 'value'`, with `'` doubled as OData requires.
pub fn eq_str(field: &str, value: &str) -> String {
    format!("{field} eq {}", quote(value))
}

/// An OData string literal: `'it''s'`.
pub fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The conjunction of the non-empty clauses, each parenthesised when there is
/// more than one; `None` when there is none.
pub fn and<I, S>(clauses: I) -> Option<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let parts: Vec<String> = clauses
        .into_iter()
        .map(Into::into)
        .filter(|s| !s.trim().is_empty())
        .collect();
    match parts.len() {
        0 => None,
        1 => parts.into_iter().next(),
        _ => Some(
            parts
                .iter()
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" and "),
        ),
    }
}

/// `$orderby` value: `field asc`.
pub fn asc(field: &str) -> String {
    format!("{field} asc")
}

/// `$orderby` value: `field desc`.
pub fn desc(field: &str) -> String {
    format!("{field} desc")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Endpoint;

    fn t(s: &str) -> Timestamp {
        time::parse(s).unwrap()
    }

    fn q(endpoint: Endpoint) -> Query {
        Query {
            endpoint,
            filter: None,
            orderby: None,
            top: MAX_TOP,
            skip: 0,
        }
    }

    #[test]
    fn alerts_expand_evidence_and_skip_zero_is_omitted() {
        let mut alerts = q(Endpoint::Alerts);
        alerts.filter = Some(ge("lastUpdateTime", t("2026-12-03T10:00:00.12Z")));
        alerts.orderby = Some(asc("lastUpdateTime"));
        assert_eq!(
            query_string(&alerts),
            "$filter=lastUpdateTime%20ge%202026-12-03T10%3A00%3A00.1200000Z\
             &$orderby=lastUpdateTime%20asc&$top=10000&$expand=evidence"
        );
        alerts.skip = 20;
        assert!(query_string(&alerts).contains("&$skip=20&"));
        let recs = q(Endpoint::Recommendations);
        assert_eq!(query_string(&recs), "$top=10000");
    }

    #[test]
    fn url_keeps_base_prefix_and_decodes_back() {
        let base = Url::parse("http://127.0.0.1:8400/gw/").unwrap();
        let mut inv = q(Endpoint::Investigations);
        inv.filter = and([
            ge("startTime", t("2026-12-03T10:00:00Z")),
            eq_str("state", "it's+odd&x=y"),
        ]);
        inv.top = 50_000;
        let u = url(&base, &inv);
        assert_eq!(u.path(), "/gw/api/investigations");
        let got: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(
            got,
            vec![
                (
                    "$filter".to_string(),
                    "(startTime ge 2026-12-03T10:00:00.0000000Z) and (state eq 'it''s+odd&x=y')"
                        .to_string()
                ),
                ("$top".to_string(), "10000".to_string()),
            ]
        );
        let plain = url(&Url::parse("https://api.example.com").unwrap(), &inv);
        assert_eq!(plain.path(), "/api/investigations");
    }

    #[test]
    fn and_skips_empty_and_single_is_bare() {
        assert_eq!(and(Vec::<String>::new()), None);
        assert_eq!(and(["a eq 1", ""]), Some("a eq 1".to_string()));
        assert_eq!(
            and(["a eq 1", "b eq 2"]),
            Some("(a eq 1) and (b eq 2)".into())
        );
        assert_eq!(
            lt("x", t("2026-01-01T00:00:00.1234567Z")),
            "x lt 2026-01-01T00:00:00.1234567Z"
        );
    }
}
