//! Turning one response body into a [`Page`], or refusing it.
//!
//! A body is a page only if it is complete JSON of the shape
//! `{"value": [ {...}, ... ], "@odata.nextLink": "..."}`; anything else (cut off,
//! an HTML error page from a proxy, another shape) is an error and never a
//! partial page. Records are kept as their raw JSON text, so memory is bounded
//! by one page and output is byte-for-byte what the API sent.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;
use url::Url;

use super::Page;

/// Why a body is not a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    /// The body ends early: a connection cut mid-body. Worth retrying.
    CutOff(String),
    /// The body is complete but is not a page. Retrying will not help.
    NotAPage(String),
    /// `@odata.nextLink` points somewhere the token must not go.
    ForeignNextLink(String),
}

impl PageError {
    pub fn detail(&self) -> &str {
        match self {
            PageError::CutOff(d) | PageError::NotAPage(d) | PageError::ForeignNextLink(d) => d,
        }
    }
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "@odata.nextLink", borrow, default)]
    next_link: Option<Cow<'a, str>>,
}

/// Parse a complete body. `api_base` decides which `nextLink`s may be followed.
/// The page keeps `body` and points into it; records are not copied.
pub fn parse(body: impl Into<Vec<u8>>, api_base: &Url) -> Result<Page, PageError> {
    let body = String::from_utf8(body.into()).map_err(|e| {
        let (valid, len) = (e.utf8_error().valid_up_to(), e.as_bytes().len());
        let detail = format!("the body is not UTF-8 after {valid} of {len} bytes");
        match e.utf8_error().error_len() {
            // A character cut in two at the very end: the body was cut off.
            None => PageError::CutOff(detail),
            Some(_) => PageError::NotAPage(format!(
                "{detail}; it starts with {}",
                preview(e.as_bytes())
            )),
        }
    })?;
    let (spans, next_link) = {
        let parsed: Body = serde_json::from_str(&body).map_err(|e| {
            if e.is_eof() {
                PageError::CutOff(format!(
                    "the body ends early after {} bytes ({e})",
                    body.len()
                ))
            } else {
                PageError::NotAPage(format!(
                    "{e}; the body starts with {}",
                    preview(body.as_bytes())
                ))
            }
        })?;
        if let Some((i, _)) = parsed
            .value
            .iter()
            .enumerate()
            .find(|(_, r)| !r.get().starts_with('{'))
        {
            return Err(PageError::NotAPage(format!(
                "record {i} of `value` is not a JSON object"
            )));
        }
        let next_link = match parsed.next_link.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(check_next_link(s, api_base)?),
        };
        let base = body.as_ptr() as usize;
        let spans: Vec<Range<usize>> = parsed
            .value
            .iter()
            .map(|r| {
                // Borrowed from `body`, so the offset is the distance between the pointers.
                let start = r.get().as_ptr() as usize - base;
                start..start + r.get().len()
            })
            .collect();
        (spans, next_link)
    };
    Ok(Page::from_spans(body, spans, next_link))
}

/// A `nextLink` is followed only to the API base's own scheme, host and port,
/// so the bearer token is never sent elsewhere.
pub fn check_next_link(link: &str, api_base: &Url) -> Result<Url, PageError> {
    let url = Url::parse(link)
        .map_err(|e| PageError::NotAPage(format!("@odata.nextLink `{link}` is not a URL: {e}")))?;
    if same_origin(&url, api_base) {
        Ok(url)
    } else {
        Err(PageError::ForeignNextLink(format!(
            "@odata.nextLink points to {}, not the API at {}; not following it (the access token would leave the API)",
            origin(&url),
            origin(api_base)
        )))
    }
}

/// Same scheme, host and (effective) port.
pub fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

fn origin(u: &Url) -> String {
    u.origin().ascii_serialization()
}

/// The first bytes of a body, for messages: printable ASCII only.
pub fn preview(body: &[u8]) -> String {
    if body.is_empty() {
        return "(empty body)".into();
    }
    let text: String = String::from_utf8_lossy(&body[..body.len().min(80)])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!(
        "`{}`{}",
        text.trim(),
        if body.len() > 80 { "…" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://api.securitycenter.microsoft.com").unwrap()
    }

    #[test]
    fn a_page_keeps_records_verbatim() {
        let body =
            br#"{"@odata.context":"x","value":[{"id":"a","n":1.50,"s":"\u00e9"},{"id":"b"}]}"#;
        let page = parse(body, &base()).unwrap();
        assert_eq!(page.len(), 2);
        let records: Vec<&str> = page.records().collect();
        assert_eq!(
            records,
            [r#"{"id":"a","n":1.50,"s":"\u00e9"}"#, r#"{"id":"b"}"#]
        );
        assert!(page.next_link.is_none());
        let empty = parse(br#"{"value":[]}"#, &base()).unwrap();
        assert!(empty.is_empty());
        // Whitespace and escapes around and inside records are kept as sent.
        let spaced = parse(
            &b"{ \"value\" : [ {\"a\": \"x\\\"]\"} ,\n{\"b\":[1, {}]} ] }"[..],
            &base(),
        )
        .unwrap();
        let records: Vec<&str> = spaced.records().collect();
        assert_eq!(records, [r#"{"a": "x\"]"}"#, r#"{"b":[1, {}]}"#]);
    }

    #[test]
    fn cut_off_is_retryable_and_other_shapes_are_not() {
        let full = br#"{"value":[{"id":"a"},{"id":"b"}]}"#;
        for cut in [10, 20, full.len() - 1] {
            assert!(
                matches!(parse(&full[..cut], &base()), Err(PageError::CutOff(_))),
                "{cut}"
            );
        }
        // Cut inside a multi-byte character: still a cut-off body.
        let e = "{\"value\":[{\"id\":\"é\"}]}".as_bytes();
        let mid = e.iter().position(|&b| b >= 0x80).unwrap() + 1;
        assert!(matches!(
            parse(&e[..mid], &base()),
            Err(PageError::CutOff(_))
        ));
        assert!(matches!(
            parse(&b"{\"value\":[\xff]}"[..], &base()),
            Err(PageError::NotAPage(_))
        ));
        for bad in [
            &b"<html><body>Proxy error</body></html>"[..],
            br#"{"values":[]}"#,
            br#"[{"id":"a"}]"#,
            br#"{"value":{"id":"a"}}"#,
            br#"{"value":[1,2]}"#,
            br#"{"value":[]} trailing"#,
        ] {
            assert!(
                matches!(parse(bad, &base()), Err(PageError::NotAPage(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let html = parse(b"<html>Proxy error</html>", &base()).unwrap_err();
        assert!(html.detail().contains("<html>Proxy error"), "{html:?}");
    }

    #[test]
    fn next_link_only_to_the_same_origin() {
        let ok = br#"{"value":[],"@odata.nextLink":"https://API.securitycenter.microsoft.com:443/api/alerts?$skip=10"}"#;
        let page = parse(ok, &base()).unwrap();
        assert_eq!(page.next_link.unwrap().query(), Some("$skip=10"));
        for foreign in [
            "https://evil.example.com/api/alerts",
            "http://api.securitycenter.microsoft.com/api/alerts",
            "https://api.securitycenter.microsoft.com:8443/api/alerts",
        ] {
            let body = format!(r#"{{"value":[],"@odata.nextLink":"{foreign}"}}"#);
            assert!(
                matches!(
                    parse(body.as_bytes(), &base()),
                    Err(PageError::ForeignNextLink(_))
                ),
                "{foreign}"
            );
        }
    }
}
