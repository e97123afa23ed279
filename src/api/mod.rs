//! The Defender for Endpoint API client shared by `test` and `pull`.
//!
//! It fetches one page at a time ([`DefenderClient::page`]) and leaves the choice
//! of the next page to the caller, which knows its cursor. Inside a page call it
//! owns everything about talking to the API: the call budget (100/min,
//! 1,500/h), `Retry-After`, retries with backoff, one token refresh on 401, and
//! turning the API's answers into typed errors.

mod body_pool;
mod budget;
mod client;
mod endpoint;
pub mod json;
pub mod odata;
pub mod page;
pub mod retry;
pub mod sift;
pub mod stream;
pub mod tail;
pub(crate) mod transport;

pub use body_pool::BodyPool;
pub use budget::Budget;
pub use client::{DefenderClient, Limits, Opened, Receive, check_failed};
pub use endpoint::Endpoint;
pub use stream::{BodyStream, StreamWhen};

use std::ops::Range;
use url::Url;

use crate::exit::Exit;

/// Microsoft's largest `$top` for these endpoints.
pub const MAX_TOP: u32 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(
        "the API refused {endpoint} (403 Forbidden): the app registration lacks the `{permission}` application/delegated permission, \
         or admin consent for it. Grant it in Entra ID → App registrations → API permissions → WindowsDefenderATP, then grant admin consent."
    )]
    Forbidden {
        endpoint: Endpoint,
        permission: &'static str,
    },
    #[error("the API stayed unavailable for {endpoint} after {attempts} attempts: {detail}")]
    Unavailable {
        endpoint: Endpoint,
        attempts: u32,
        detail: String,
    },
    #[error("the API answered {endpoint} with something that is not a page of records: {detail}")]
    BadResponse { endpoint: Endpoint, detail: String },
    /// A 400 (or another 4xx): our request is wrong, which is a bug on our side.
    #[error("the API rejected the request to {endpoint} ({status}): {message}")]
    Rejected {
        endpoint: Endpoint,
        status: u16,
        message: String,
    },
    #[error(
        "the API answered 404 Not Found for {url}: the API URL is probably wrong. \
         It should be the API base only (e.g. https://api.securitycenter.microsoft.com, no `/api`); \
         check the profile's api_url (`--api-url` on `authorize`)"
    )]
    NotFound { endpoint: Endpoint, url: String },
    #[error(
        "cannot establish a trusted TLS connection to {host}: {detail}. {}",
        crate::net::CA_ADVICE
    )]
    Tls { host: String, detail: String },
    #[error(
        "the proxy {proxy} refused to connect us to the API for {endpoint}: {detail}. \
         Check HTTPS_PROXY / NO_PROXY or `--proxy` (and the proxy's credentials)"
    )]
    Proxy {
        endpoint: Endpoint,
        proxy: String,
        detail: String,
    },
}

impl ApiError {
    pub fn exit(&self) -> Exit {
        match self {
            ApiError::Auth(e) => e.exit(),
            ApiError::Forbidden { .. } => Exit::PermissionDenied,
            ApiError::Unavailable { .. } => Exit::Unavailable,
            ApiError::BadResponse { .. } => Exit::Unavailable,
            ApiError::Rejected { .. } | ApiError::NotFound { .. } => Exit::Error,
            ApiError::Tls { .. } | ApiError::Proxy { .. } => Exit::Unavailable,
        }
    }
}

/// One OData query against one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub endpoint: Endpoint,
    /// `$filter`, already in OData syntax.
    pub filter: Option<String>,
    /// `$orderby`, e.g. `lastUpdateTime asc`.
    pub orderby: Option<String>,
    /// `$top`, at most [`MAX_TOP`].
    pub top: u32,
    /// `$skip`; 0 sends none.
    pub skip: u64,
}

/// What to fetch next: a query, or a server-given `@odata.nextLink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    Query(Query),
    Next { endpoint: Endpoint, url: Url },
}

/// A complete response body that has not been checked as a page yet.
///
/// [`DefenderClient::fetch`] hands these out as soon as the last byte is in;
/// [`Fetched::check`] turns one into a [`Page`] or refuses it. In between,
/// [`Fetched::tail`] reads how it ends (see [`tail`]), which is what lets
/// `pull` ask for the next page while this one is checked. An unchecked body
/// gives its buffer back to the client when dropped, like a page.
#[derive(Debug)]
pub struct Fetched {
    endpoint: Endpoint,
    body: Vec<u8>,
    api_base: Url,
    recycle: Option<BodyPool>,
    /// A body sifted as it arrived: the page of its new records, checked,
    /// and the account of all of them.
    sifted: Option<Box<(Page, sift::KnownRecords)>>,
}

impl Fetched {
    /// A body for `endpoint`; `api_base` decides which `nextLink`s may be followed.
    pub fn new(endpoint: Endpoint, body: Vec<u8>, api_base: Url) -> Fetched {
        Fetched {
            endpoint,
            body,
            api_base,
            recycle: None,
            sifted: None,
        }
    }

    /// A body sifted as it arrived (see [`sift`]), already checked.
    pub(crate) fn sifted(
        endpoint: Endpoint,
        page: Page,
        records: sift::KnownRecords,
        api_base: Url,
    ) -> Fetched {
        let mut f = Fetched::new(endpoint, Vec::new(), api_base);
        f.sifted = Some(Box::new((page, records)));
        f
    }

    /// A body made of `endpoint`'s given records (each a JSON object's text),
    /// as a test source or another producer would hand out.
    pub fn from_records<S: AsRef<str>>(
        endpoint: Endpoint,
        records: impl IntoIterator<Item = S>,
    ) -> Fetched {
        let mut body = String::from("{\"value\":[");
        for (i, r) in records.into_iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(r.as_ref());
        }
        body.push_str("]}");
        Fetched::new(
            endpoint,
            body.into_bytes(),
            Url::parse("http://localhost").expect("a URL"),
        )
    }

    pub(crate) fn recycle_into(mut self, pool: &BodyPool) -> Fetched {
        self.recycle = Some(pool.clone());
        self
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The body as received (empty when sifted).
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The bytes this holds: the body, or the records a sifted body kept.
    pub fn held(&self) -> usize {
        match &self.sifted {
            Some(sifted) => sifted.0.size(),
            None => self.body.len(),
        }
    }

    /// The raw time values of the last records (at most `at_most`), read
    /// backward; a guess until [`check`](Fetched::check) (see [`tail`]).
    /// `None` for endpoints without a time field, pages with a `nextLink`,
    /// and bodies whose end does not read as a page.
    pub fn tail(&self, at_most: usize) -> Option<tail::TailTimes<'_>> {
        let field = self.endpoint.time_field()?;
        let tail = tail::read(&self.body, field, at_most)?;
        let text = |r: std::ops::Range<usize>| std::str::from_utf8(&self.body[r]).ok();
        let mut times = Vec::with_capacity(tail.times.len());
        for t in tail.times {
            times.push(match t {
                Some(r) => Some(text(r)?),
                None => None,
            });
        }
        Some(tail::TailTimes {
            times,
            whole: tail.whole,
        })
    }

    /// Check the whole body and make the page (its buffer still goes back to
    /// the client's pool when the page is dropped).
    pub fn check(self) -> Result<Page, page::PageError> {
        self.check_all().map(|(page, _)| page)
    }

    /// [`check`](Fetched::check), and for a sifted body the account of every
    /// record, the dropped ones included.
    pub fn check_all(mut self) -> Result<(Page, Option<sift::KnownRecords>), page::PageError> {
        if let Some(sifted) = self.sifted.take() {
            let (page, records) = *sifted;
            return Ok((page, Some(records)));
        }
        let body = std::mem::take(&mut self.body);
        let page = page::PageScan::new(self.endpoint).finish(body, &self.api_base)?;
        let page = match self.recycle.take() {
            Some(pool) => page.recycle_into(&pool),
            None => page,
        };
        Ok((page, None))
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        if let Some(pool) = self.recycle.take() {
            pool.give(std::mem::take(&mut self.body));
        }
    }
}

/// Where a record's `id` and time field (see [`Endpoint::time_field`]) are in
/// the page's body, when the record has them at its top level.
pub type Members = [Option<Range<usize>>; 2];

/// One page, as the API returned it: the response body, kept whole, and where
/// each record's raw JSON text sits in it, so records are written out exactly as
/// received without a copy of each (a page costs its body, not twice that).
/// A page from [`DefenderClient`] gives its body's buffer back to the client
/// when dropped, for the next page to arrive into.
#[derive(Debug)]
pub struct Page {
    body: String,
    spans: Vec<Range<usize>>,
    members: Vec<Members>,
    pub next_link: Option<Url>,
    recycle: Option<BodyPool>,
}

impl Page {
    /// A page over `body`, whose records are the given byte ranges of it, with
    /// their members. Each range must be a JSON value inside `body` (the
    /// parser guarantees it).
    pub(crate) fn from_spans(
        body: String,
        spans: Vec<Range<usize>>,
        members: Vec<Members>,
        next_link: Option<Url>,
    ) -> Page {
        debug_assert!(spans.iter().all(|r| body.get(r.clone()).is_some()));
        debug_assert_eq!(spans.len(), members.len());
        Page {
            body,
            spans,
            members,
            next_link,
            recycle: None,
        }
    }

    /// A page of `endpoint`'s given records (each a JSON object's text), as a
    /// test source or another producer would hand out; checked like a body.
    pub fn from_records<S: AsRef<str>>(
        endpoint: Endpoint,
        records: impl IntoIterator<Item = S>,
        next_link: Option<Url>,
    ) -> Result<Page, page::PageError> {
        let mut body = String::from("{\"value\":[");
        for (i, r) in records.into_iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(r.as_ref());
        }
        body.push_str("]}");
        let no_links = Url::parse("http://localhost").expect("a URL");
        let mut page = page::parse(body, endpoint, &no_links)?;
        page.next_link = next_link;
        Ok(page)
    }

    /// Give the body's buffer to `pool` when this page is dropped.
    pub(crate) fn recycle_into(mut self, pool: &BodyPool) -> Page {
        self.recycle = Some(pool.clone());
        self
    }

    /// Each record's raw JSON text, in the order the API sent them.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.spans.iter().map(|r| &self.body[r.clone()])
    }

    /// Record `i`'s raw JSON text.
    pub fn record(&self, i: usize) -> &str {
        &self.body[self.spans[i].clone()]
    }

    /// The raw JSON values of record `i`'s `id` and time field, when present.
    pub fn members(&self, i: usize) -> [Option<&str>; 2] {
        self.members[i].clone().map(|r| r.map(|r| &self.body[r]))
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The bytes of its body.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        if let Some(pool) = self.recycle.take() {
            pool.give(std::mem::take(&mut self.body).into_bytes());
        }
    }
}
