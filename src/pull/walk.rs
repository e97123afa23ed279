//! Which page to ask for next.
//!
//! Two walks. *Keyset* (alerts): order by the time field and continue from
//! the last record's time with `ge`, using `$skip` only to step over the
//! records already seen at exactly that time — so deep `$skip`s never happen
//! and ties are never dropped (`gt` would drop them). *Skip* (investigations,
//! recommendations, which have no usable order): `$skip` through one fixed
//! query. Both follow `@odata.nextLink` when the server sends one.
//!
//! The server may cap pages below `$top` without saying so. A short page is
//! taken as the end unless it held something new, in which case one more page
//! is asked for; when that one is not empty the cap is learned and remembered,
//! so later runs keep going on pages of that size.

use url::Url;

use crate::api::{Endpoint, PageRequest, Query};
use crate::time::{self, Timestamp};

#[derive(Debug, Clone)]
enum Mode {
    Keyset {
        field: &'static str,
        from: Timestamp,
    },
    Skip {
        filter: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct Walk {
    endpoint: Endpoint,
    mode: Mode,
    top: u32,
    cap: Option<u32>,
    skip: u64,
    next: Option<PageRequest>,
    /// The length of the previous page when it was shorter than asked for.
    short: Option<u32>,
    /// A cap seen in this walk.
    learned: Option<u32>,
    last_signature: Option<(usize, u128)>,
}

/// What a page held, as far as the walk cares.
pub struct PageFacts<'a> {
    /// Each record's time, in the order the server sent them.
    pub times: &'a [Option<Timestamp>],
    /// Whether anything in the page was not written before.
    pub had_new: bool,
    pub next_link: Option<Url>,
    /// An order-independent digest of the page's content, to notice a server
    /// that ignores `$skip` and sends the same page forever.
    pub signature: u128,
}

impl Walk {
    /// Walk `endpoint` in time order from `from` (inclusive).
    pub fn keyset(endpoint: Endpoint, from: Timestamp, top: u32, cap: Option<u32>) -> Walk {
        let field = endpoint
            .time_field()
            .expect("keyset walks need a time field");
        let mut w = Walk::new(endpoint, Mode::Keyset { field, from }, top, cap);
        w.next = Some(w.query());
        w
    }

    /// Walk every record matching `filter` with `$skip`.
    pub fn skip(endpoint: Endpoint, filter: Option<String>, top: u32, cap: Option<u32>) -> Walk {
        let mut w = Walk::new(endpoint, Mode::Skip { filter }, top, cap);
        w.next = Some(w.query());
        w
    }

    fn new(endpoint: Endpoint, mode: Mode, top: u32, cap: Option<u32>) -> Walk {
        Walk {
            endpoint,
            mode,
            top,
            cap,
            skip: 0,
            next: None,
            short: None,
            learned: None,
            last_signature: None,
        }
    }

    /// The next request, or `None` when the walk is complete.
    pub fn request(&self) -> Option<&PageRequest> {
        self.next.as_ref()
    }

    /// The time a keyset walk's queries start from (`ge`); it only grows, so a
    /// record older than it is not served again in this walk.
    pub fn keyset_from(&self) -> Option<Timestamp> {
        match &self.mode {
            Mode::Keyset { from, .. } => Some(*from),
            Mode::Skip { .. } => None,
        }
    }

    /// The request that follows a full page, sorted by time, whose last time
    /// is `last`, shared by its last `ties` records: what [`advance`](Walk::advance)
    /// would ask for next after such a page. `None` for walks that are not by
    /// keyset, or follow a `nextLink`, or when `last` is before where the walk
    /// stands (the page would not be sorted).
    pub fn after(&self, last: Timestamp, ties: u64) -> Option<PageRequest> {
        let Mode::Keyset { from, .. } = self.mode else {
            return None;
        };
        if !matches!(self.next, Some(PageRequest::Query(_))) || last < from || ties == 0 {
            return None;
        }
        let mut then = self.clone();
        if let Mode::Keyset { from, .. } = &mut then.mode {
            if last == *from {
                then.skip += ties;
            } else {
                *from = last;
                then.skip = ties;
            }
        }
        Some(then.query())
    }

    /// A page size cap learned in this walk.
    pub fn learned_cap(&self) -> Option<u32> {
        self.learned
    }

    fn query(&self) -> PageRequest {
        let (filter, orderby) = match &self.mode {
            Mode::Keyset { field, from } => (
                Some(format!("{field} ge {}", time::odata(*from))),
                Some(format!("{field} asc")),
            ),
            Mode::Skip { filter } => (filter.clone(), None),
        };
        PageRequest::Query(Query {
            endpoint: self.endpoint,
            filter,
            orderby,
            top: self.top,
            skip: self.skip,
        })
    }

    /// Take in the page just fetched and decide the next request.
    pub fn advance(&mut self, page: PageFacts<'_>) {
        let len = page.times.len() as u32;
        if let Some(prev) = self.short
            && len > 0
        {
            // A short page that was not the end: the server caps pages at `prev`.
            self.learned = Some(self.learned.map_or(prev, |l| l.min(prev)));
        }
        let signature = (page.times.len(), page.signature);
        let repeated = len > 0 && self.last_signature == Some(signature);
        self.last_signature = Some(signature);
        if repeated {
            self.next = None;
            return;
        }
        if let Some(url) = page.next_link {
            self.short = None;
            self.next = Some(PageRequest::Next {
                endpoint: self.endpoint,
                url,
            });
            return;
        }
        let page_size = self
            .top
            .min(self.cap.unwrap_or(u32::MAX))
            .min(self.learned.unwrap_or(u32::MAX));
        let full = len >= page_size;
        if len == 0 || !(full || page.had_new) {
            self.next = None;
            return;
        }
        self.short = (len < self.top).then_some(len);
        match &mut self.mode {
            Mode::Keyset { from, .. } => match last_time_if_sorted(page.times) {
                Some(last) => {
                    let at_last = page.times.iter().filter(|t| **t == Some(last)).count() as u64;
                    if last == *from {
                        self.skip += at_last;
                    } else {
                        *from = last;
                        self.skip = at_last;
                    }
                }
                // The server ignored $orderby (or sent no times): page through
                // this query with $skip instead; the next run re-reads the window.
                None => self.skip += u64::from(len),
            },
            Mode::Skip { .. } => self.skip += u64::from(len),
        }
        self.next = Some(self.query());
    }
}

/// The last time of a page sorted ascending; `None` when it is not sorted or has no times.
fn last_time_if_sorted(times: &[Option<Timestamp>]) -> Option<Timestamp> {
    let mut last: Option<Timestamp> = None;
    for t in times.iter().flatten() {
        if last.is_some_and(|l| *t < l) {
            return None;
        }
        last = Some(*t);
    }
    last
}

#[cfg(test)]
mod tests;
