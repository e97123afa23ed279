//! Handing a large body over a part at a time, as it arrives.
//!
//! Received whole, a first pull's page of alerts with evidence (tens of
//! megabytes) costs its size in fresh memory, which the kernel zeroes page by
//! page as the body arrives, and its check and its write wait for its last
//! byte. A [`BodyStream`] sifts the body as it arrives instead (see
//! [`sift`](super::sift): checked a window at a time, exactly as a whole
//! body) and hands its records over about a megabyte at a time, so `pull` can
//! write them while the rest arrives. A body that then turns out not to be
//! whole (cut off, not JSON, the connection lost) ends the stream with the
//! reason: `pull` keeps what it wrote of it (each record checked whole, and
//! remembered as written) and fetches the page again whole, so the ordinary
//! retries and errors apply.

use url::Url;

use super::page::PageError;
use super::sift::{Known, KnownRecords, Sifter};
use super::{Endpoint, Page};

/// One part of a streamed body: a page of the records kept since the part
/// before (no `nextLink` but in the last), and the account of every record
/// sifted since (see [`KnownRecords`]).
pub struct Part {
    pub page: Page,
    pub records: KnownRecords,
    /// The body's last part: the stream has ended, and the body was whole.
    pub last: bool,
}

/// A large body being received and sifted (see the module's note).
pub struct BodyStream<'k> {
    endpoint: Endpoint,
    source: Source,
    sifter: Option<Sifter<'k>>,
    declared: u64,
    api_base: Url,
    /// Records handed over so far, and how many of them were kept.
    records: usize,
    kept: usize,
}

enum Source {
    Http(reqwest::Response),
    /// A body already at hand, handed out `chunk` bytes at a time.
    Memory {
        body: Vec<u8>,
        at: usize,
        chunk: usize,
    },
}

impl<'k> BodyStream<'k> {
    /// The body of `resp`, declared `declared` bytes long, sifted against `known`.
    pub(crate) fn http(
        endpoint: Endpoint,
        resp: reqwest::Response,
        known: &'k Known,
        declared: u64,
        api_base: Url,
    ) -> BodyStream<'k> {
        BodyStream {
            endpoint,
            source: Source::Http(resp),
            sifter: Some(Sifter::streaming(endpoint, known)),
            declared,
            api_base,
            records: 0,
            kept: 0,
        }
    }

    /// A body at hand, streamed `chunk` bytes at a time: for page sources
    /// other than the API, and tests. `declared` may differ from its length
    /// (a body cut off).
    pub fn from_body(
        endpoint: Endpoint,
        body: Vec<u8>,
        declared: u64,
        chunk: usize,
        known: &'k Known,
        api_base: Url,
    ) -> BodyStream<'k> {
        BodyStream {
            endpoint,
            source: Source::Memory {
                body,
                at: 0,
                chunk: chunk.max(1),
            },
            sifter: Some(Sifter::streaming(endpoint, known)),
            declared,
            api_base,
            records: 0,
            kept: 0,
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The next part, or why the body is not a whole page (after which the
    /// stream has nothing more).
    pub async fn next(&mut self) -> Result<Part, String> {
        loop {
            let sifter = self
                .sifter
                .as_mut()
                .ok_or_else(|| "the body has ended".to_string())?;
            if let Some((page, records)) = sifter.drain() {
                (self.records, self.kept) = (self.records + records.len(), self.kept + page.len());
                return Ok(Part {
                    page,
                    records,
                    last: false,
                });
            }
            let pushed = match &mut self.source {
                Source::Http(resp) => match resp.chunk().await {
                    Ok(c) => c.map(|c| sifter.push(&c)),
                    Err(e) => {
                        self.sifter = None;
                        return Err(format!(
                            "the connection failed while the body arrived: {}",
                            super::transport::chain(&e)
                        ));
                    }
                },
                Source::Memory { body, at, chunk } => {
                    let end = body.len().min(*at + *chunk);
                    let pushed = (*at < end).then(|| sifter.push(&body[*at..end]));
                    *at = end;
                    pushed
                }
            };
            match pushed {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.sifter = None;
                    return Err(describe(e));
                }
                None => {
                    let sifter = self.sifter.take().expect("checked above");
                    if sifter.len() as u64 != self.declared {
                        return Err(format!(
                            "the body was cut off: {} of {} bytes arrived",
                            sifter.len(),
                            self.declared
                        ));
                    }
                    let (page, records) = sifter.finish(&self.api_base).map_err(describe)?;
                    tracing::debug!(
                        "{}: a body of {} bytes, streamed, {} of its {} records kept",
                        self.endpoint,
                        self.declared,
                        self.kept + page.len(),
                        self.records + records.len()
                    );
                    return Ok(Part {
                        page,
                        records,
                        last: true,
                    });
                }
            }
        }
    }
}

fn describe(e: PageError) -> String {
    match e {
        PageError::CutOff(d) => d,
        e => e.detail().to_string(),
    }
}
