//! Turning one response body into a [`Page`], or refusing it.
//!
//! A body is a page only if it is complete JSON of the shape
//! `{"value": [ {...}, ... ], "@odata.nextLink": "..."}`; anything else (cut off,
//! an HTML error page from a proxy, another shape) is an error and never a
//! partial page. Records are kept as their raw JSON text, so memory is bounded
//! by one page and output is byte-for-byte what the API sent.

use std::ops::Range;

use url::Url;

use super::json::{self, Stop};
use super::{Endpoint, Members, Page};

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

/// The members read from each record: its `id` and the endpoint's time field
/// (none for recommendations).
fn wanted(endpoint: Endpoint) -> [&'static str; 2] {
    ["id", endpoint.time_field().unwrap_or("")]
}

/// A body being checked as it arrives. [`PageScan::feed`] takes the bytes so
/// far and goes as far as complete values allow, so by the time the last byte
/// is in, almost all of the page has been checked; [`PageScan::finish`] checks
/// the rest and makes the [`Page`].
#[derive(Debug)]
pub struct PageScan {
    names: [&'static str; 2],
    /// Everything before this was checked; the phase says what comes next.
    at: usize,
    phase: Phase,
    spans: Vec<Range<usize>>,
    members: Vec<Members>,
    next_link: Option<Range<usize>>,
    has_value: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the opening `{`.
    Open,
    /// At a member's name.
    Member,
    /// At the next record of `value`.
    Record,
    /// After a member's value: `,` or `}`.
    AfterMember,
    /// After the closing `}`: only whitespace may follow.
    Closed,
}

impl PageScan {
    pub fn new(endpoint: Endpoint) -> PageScan {
        PageScan {
            names: wanted(endpoint),
            at: 0,
            phase: Phase::Open,
            spans: Vec::new(),
            members: Vec::new(),
            next_link: None,
            has_value: false,
        }
    }

    /// Check what can be checked of `body`, the bytes received so far (each
    /// call with the same bytes and more). A body that cannot become a page is
    /// refused at once.
    pub fn feed(&mut self, body: &[u8]) -> Result<(), PageError> {
        loop {
            match self.step(body) {
                Ok(()) => {}
                Err(Stop::More) => return Ok(()),
                Err(Stop::Invalid { at, expected }) => {
                    return Err(PageError::NotAPage(format!(
                        "not a page: at byte {at} of {}, expected {expected}; the body starts with {}",
                        body.len(),
                        preview(body)
                    )));
                }
            }
        }
    }

    /// Check the rest of the complete `body` and make the page.
    pub fn finish(mut self, body: Vec<u8>, api_base: &Url) -> Result<Page, PageError> {
        self.feed(&body)?;
        self.settle(body.len(), &body)?;
        let next_link = match self.next_link.clone() {
            None => None,
            Some(raw) => next_link(&body[raw], api_base)?,
        };
        // Outside strings only ASCII was accepted; this settles the strings.
        let body = String::from_utf8(body).map_err(|e| {
            let (valid, len) = (e.utf8_error().valid_up_to(), e.as_bytes().len());
            PageError::NotAPage(format!(
                "the body is not UTF-8 after {valid} of {len} bytes; it starts with {}",
                preview(e.as_bytes())
            ))
        })?;
        Ok(Page::from_spans(body, self.spans, self.members, next_link))
    }

    /// Whether what was fed, `len` bytes starting with `start`, is a whole
    /// page: closed, with a `value` array.
    pub(crate) fn settle(&self, len: usize, start: &[u8]) -> Result<(), PageError> {
        if self.phase != Phase::Closed {
            return Err(PageError::CutOff(format!(
                "the body ends early after {len} bytes"
            )));
        }
        if !self.has_value {
            return Err(PageError::NotAPage(format!(
                "the body has no `value` array of records; it starts with {}",
                preview(start)
            )));
        }
        Ok(())
    }

    /// The records found since this was last called, as ranges of what was
    /// fed, with their members.
    pub(crate) fn take_records(&mut self) -> (Vec<Range<usize>>, Vec<Members>) {
        (
            std::mem::take(&mut self.spans),
            std::mem::take(&mut self.members),
        )
    }

    /// Where `@odata.nextLink`'s value is in what was fed, once found.
    pub(crate) fn take_next_link(&mut self) -> Option<Range<usize>> {
        self.next_link.take()
    }

    /// Everything fed before this offset is checked (and no longer needed
    /// once its records and link are taken).
    pub(crate) fn checked_to(&self) -> usize {
        self.at
    }

    /// The first `by` bytes fed were dropped (`by` at most
    /// [`checked_to`](PageScan::checked_to), records and link taken): go on
    /// counting from there.
    pub(crate) fn rebase(&mut self, by: usize) {
        debug_assert!(by <= self.at && self.spans.is_empty() && self.next_link.is_none());
        self.at -= by;
    }

    /// One step from `self.at`, taken whole or not at all.
    fn step(&mut self, b: &[u8]) -> Result<(), Stop> {
        let (at, phase) = match self.phase {
            Phase::Open => {
                let i = ws(b, self.at)?;
                expect(b, i, b'{', "`{` (a page is a JSON object)")?;
                let i = ws(b, i + 1)?;
                match b[i] {
                    b'}' => (i + 1, Phase::Closed),
                    _ => (i, Phase::Member),
                }
            }
            Phase::Member => {
                let i = self.at;
                expect(b, i, b'"', "a member name")?;
                let end = json::string(b, i)?;
                let colon = ws(b, end)?;
                expect(b, colon, b':', "`:`")?;
                let v = ws(b, colon + 1)?;
                let name = &b[i..end];
                if json::name_is(name, "value") {
                    if self.has_value {
                        return Err(invalid(i, "one `value` member, not two"));
                    }
                    expect(b, v, b'[', "`[` (`value` is an array of records)")?;
                    let r = ws(b, v + 1)?;
                    self.has_value = true;
                    match b[r] {
                        b']' => (r + 1, Phase::AfterMember),
                        _ => (r, Phase::Record),
                    }
                } else {
                    let (end, _) = json::value(b, v, [])?;
                    if json::name_is(name, "@odata.nextLink") {
                        self.next_link = match b[v] {
                            b'"' => Some(v..end),
                            b'n' => None,
                            _ => return Err(invalid(v, "a string (the next page's URL)")),
                        };
                    }
                    (end, Phase::AfterMember)
                }
            }
            Phase::Record => {
                let i = self.at;
                expect(b, i, b'{', "a JSON object (each record of `value` is one)")?;
                let (end, found) = json::value(b, i, self.names)?;
                let j = ws(b, end)?;
                let next = match b[j] {
                    b',' => (ws(b, j + 1)?, Phase::Record),
                    b']' => (j + 1, Phase::AfterMember),
                    _ => return Err(invalid(j, "`,` or `]`")),
                };
                self.spans.push(i..end);
                self.members.push(found);
                next
            }
            Phase::AfterMember => {
                let i = ws(b, self.at)?;
                match b[i] {
                    b',' => (ws(b, i + 1)?, Phase::Member),
                    b'}' => (i + 1, Phase::Closed),
                    _ => return Err(invalid(i, "`,` or `}`")),
                }
            }
            Phase::Closed => {
                return match ws(b, self.at) {
                    Ok(i) => Err(invalid(i, "nothing after the page's closing `}`")),
                    Err(e) => {
                        self.at = b.len();
                        Err(e)
                    }
                };
            }
        };
        self.at = at;
        self.phase = phase;
        Ok(())
    }
}

/// The page a raw `@odata.nextLink` value points to, if it may be followed.
pub(crate) fn next_link(raw: &[u8], api_base: &Url) -> Result<Option<Url>, PageError> {
    let link: String = serde_json::from_slice(raw)
        .map_err(|e| PageError::NotAPage(format!("@odata.nextLink is not a URL: {e}")))?;
    match link.as_str() {
        "" => Ok(None),
        l => check_next_link(l, api_base).map(Some),
    }
}

fn invalid(at: usize, expected: &'static str) -> Stop {
    Stop::Invalid { at, expected }
}

fn ws(b: &[u8], mut i: usize) -> Result<usize, Stop> {
    while let Some(c) = b.get(i) {
        if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            return Ok(i);
        }
        i += 1;
    }
    Err(Stop::More)
}

fn expect(b: &[u8], i: usize, c: u8, expected: &'static str) -> Result<(), Stop> {
    if b[i] == c {
        Ok(())
    } else {
        Err(invalid(i, expected))
    }
}

/// Whether a complete body ends as a page must: with `}` (after whitespace).
/// A body cut off mid-way almost never does; [`PageScan`] settles the rest.
pub fn looks_whole(body: &[u8]) -> bool {
    body.iter()
        .rev()
        .find(|c| !matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        == Some(&b'}')
}

/// Parse a complete `endpoint` body. `api_base` decides which `nextLink`s may
/// be followed. The page keeps `body` and points into it; records are not copied.
pub fn parse(
    body: impl Into<Vec<u8>>,
    endpoint: Endpoint,
    api_base: &Url,
) -> Result<Page, PageError> {
    PageScan::new(endpoint).finish(body.into(), api_base)
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
        let page = parse(body, Endpoint::Alerts, &base()).unwrap();
        assert_eq!(page.len(), 2);
        let records: Vec<&str> = page.records().collect();
        assert_eq!(
            records,
            [r#"{"id":"a","n":1.50,"s":"\u00e9"}"#, r#"{"id":"b"}"#]
        );
        assert!(page.next_link.is_none());
        let empty = parse(br#"{"value":[]}"#, Endpoint::Alerts, &base()).unwrap();
        assert!(empty.is_empty());
        // Whitespace and escapes around and inside records are kept as sent.
        let spaced = parse(
            &b"{ \"value\" : [ {\"a\": \"x\\\"]\"} ,\n{\"b\":[1, {}]} ] }"[..],
            Endpoint::Alerts,
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
                matches!(
                    parse(&full[..cut], Endpoint::Alerts, &base()),
                    Err(PageError::CutOff(_))
                ),
                "{cut}"
            );
        }
        // Cut inside a multi-byte character: still a cut-off body.
        let e = "{\"value\":[{\"id\":\"é\"}]}".as_bytes();
        let mid = e.iter().position(|&b| b >= 0x80).unwrap() + 1;
        assert!(matches!(
            parse(&e[..mid], Endpoint::Alerts, &base()),
            Err(PageError::CutOff(_))
        ));
        assert!(matches!(
            parse(&b"{\"value\":[\xff]}"[..], Endpoint::Alerts, &base()),
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
                matches!(
                    parse(bad, Endpoint::Alerts, &base()),
                    Err(PageError::NotAPage(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let html = parse(b"<html>Proxy error</html>", Endpoint::Alerts, &base()).unwrap_err();
        assert!(html.detail().contains("<html>Proxy error"), "{html:?}");
    }

    #[test]
    fn next_link_only_to_the_same_origin() {
        let ok = br#"{"value":[],"@odata.nextLink":"https://API.securitycenter.microsoft.com:443/api/alerts?$skip=10"}"#;
        let page = parse(ok, Endpoint::Alerts, &base()).unwrap();
        assert_eq!(page.next_link.as_ref().unwrap().query(), Some("$skip=10"));
        for foreign in [
            "https://evil.example.com/api/alerts",
            "http://api.securitycenter.microsoft.com/api/alerts",
            "https://api.securitycenter.microsoft.com:8443/api/alerts",
        ] {
            let body = format!(r#"{{"value":[],"@odata.nextLink":"{foreign}"}}"#);
            assert!(
                matches!(
                    parse(body.as_bytes(), Endpoint::Alerts, &base()),
                    Err(PageError::ForeignNextLink(_))
                ),
                "{foreign}"
            );
        }
    }
}
