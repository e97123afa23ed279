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
//!
//! A body sent without a declared length (chunked: the server renders it as
//! it sends it) is read up to [`READ_AHEAD`] bytes ahead of the check, on a
//! task of its own, which also keeps the body's first and last bytes: once
//! the last byte is in, [`BodyStream::ends`] hands them over, so `pull` can
//! read the page's tail and ask for the next page while the rest of this one
//! is still being checked (see [`crate::pull::ahead`]). A body with a
//! Content-Length was rendered whole before its first byte and is already
//! waiting in the socket: it is read as the check goes, a chunk at a time
//! (reading it ahead measured slower, and cost 8 MiB more memory).

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};
use url::Url;

use super::page::PageError;
use super::sift::{Known, KnownRecords, Sifter};
use super::{Endpoint, Page};

/// Which bodies [`DefenderClient::open`](super::DefenderClient::open) hands
/// over as they arrive; the rest come whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamWhen {
    /// A body declared large, or sent without a declared length.
    Large,
    /// Only a body sent without a declared length (chunked). A server that
    /// knew the length before the first byte had rendered the whole body
    /// first, and the next page overlaps better with such a body received
    /// whole (see [`crate::pull::ahead`]); one sending chunks renders as it
    /// sends, and taking the body in as it arrives overlaps with that.
    Unsized,
}

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
    /// The Content-Length, when the server declared one.
    declared: Option<u64>,
    api_base: Url,
    /// Records handed over so far, and how many of them were kept.
    records: usize,
    kept: usize,
    ends: Option<oneshot::Receiver<Ends>>,
}

/// How far the receiving task reads ahead of the check, in bytes.
pub const READ_AHEAD: usize = 8 << 20;

/// How much room in the read-ahead the receiving task waits for at a time.
const ROOM_STEP: usize = 1 << 20;

// The receiving task may hold up to a step it has not used yet while it waits
// for another: a read-ahead of less than two steps could wait forever (seen
// with a 1 MiB read-ahead).
const _: () = assert!(READ_AHEAD >= 2 * ROOM_STEP);

/// The first bytes of a body kept for [`Ends`], at the most.
const HEAD_BYTES: usize = 16 << 10;

/// The last bytes of a body kept for [`Ends`], at the least (when it has
/// them): enough for the last [`crate::pull::ahead::TAIL_RECORDS`] alerts
/// with evidence in all but odd cases.
const END_BYTES: usize = 512 << 10;

/// A whole body's first and last bytes (the whole body, when it is short).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ends {
    pub head: Vec<u8>,
    pub end: Vec<u8>,
}

impl Ends {
    /// The ends of a body at hand.
    fn of(body: &[u8]) -> Ends {
        Ends {
            head: body[..body.len().min(HEAD_BYTES)].to_vec(),
            end: body[body.len().saturating_sub(END_BYTES)..].to_vec(),
        }
    }
}

enum Source {
    /// A body read as the check goes.
    Http(reqwest::Response),
    /// Chunks read ahead by [`receive`], each with the room it takes in the
    /// read-ahead.
    ReadAhead {
        chunks: mpsc::Receiver<Result<Bytes, String>>,
        room: Arc<Semaphore>,
    },
    /// A body already at hand, handed out `chunk` bytes at a time.
    Memory {
        body: Vec<u8>,
        at: usize,
        chunk: usize,
    },
}

impl<'k> BodyStream<'k> {
    /// The body of `resp`, declared `declared` bytes long (when it was),
    /// sifted against `known`.
    pub(crate) fn http(
        endpoint: Endpoint,
        resp: reqwest::Response,
        known: &'k Known,
        declared: Option<u64>,
        api_base: Url,
    ) -> BodyStream<'k> {
        let (source, ends) = if declared.is_some() {
            (Source::Http(resp), None)
        } else {
            let (chunks_in, chunks) = mpsc::channel(1024);
            let (ends_in, ends) = oneshot::channel();
            let room = Arc::new(Semaphore::new(READ_AHEAD));
            tokio::spawn(receive(resp, chunks_in, Arc::clone(&room), ends_in));
            (Source::ReadAhead { chunks, room }, Some(ends))
        };
        BodyStream {
            endpoint,
            source,
            sifter: Some(Sifter::streaming(endpoint, known)),
            declared,
            api_base,
            records: 0,
            kept: 0,
            ends,
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
        let (ends_in, ends) = oneshot::channel();
        let _ = ends_in.send(Ends::of(&body));
        BodyStream {
            endpoint,
            ends: Some(ends),
            source: Source::Memory {
                body,
                at: 0,
                chunk: chunk.max(1),
            },
            sifter: Some(Sifter::streaming(endpoint, known)),
            declared: Some(declared),
            api_base,
            records: 0,
            kept: 0,
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// The body's ends, once its last byte has arrived (possibly long before
    /// the check reaches it); the receiver errs when the body ends otherwise.
    /// `None` for a body that is not read ahead, and when taken before.
    pub fn ends(&mut self) -> Option<oneshot::Receiver<Ends>> {
        self.ends.take()
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
                        return Err(failed(&e));
                    }
                },
                Source::ReadAhead { chunks, room } => match chunks.recv().await {
                    Some(Ok(c)) => {
                        let pushed = sifter.push(&c);
                        room.add_permits(room_for(&c));
                        Some(pushed)
                    }
                    None => None,
                    Some(Err(e)) => {
                        self.sifter = None;
                        return Err(e);
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
                    if let Some(declared) = self.declared
                        && sifter.len() as u64 != declared
                    {
                        return Err(format!(
                            "the body was cut off: {} of {declared} bytes arrived",
                            sifter.len(),
                        ));
                    }
                    let arrived = sifter.len();
                    let (page, records) = sifter.finish(&self.api_base).map_err(describe)?;
                    tracing::debug!(
                        "{}: a body of {} bytes, streamed, {} of its {} records kept",
                        self.endpoint,
                        arrived,
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

/// What a chunk takes of the read-ahead.
fn room_for(chunk: &Bytes) -> usize {
    chunk.len().min(READ_AHEAD)
}

/// Read `resp`'s body into `chunks` as long as the read-ahead has room, and
/// its ends into `ends` once it is whole. The body ends with the channel's
/// end; a failure is the last message. Stops when the stream is dropped.
async fn receive(
    mut resp: reqwest::Response,
    chunks: mpsc::Sender<Result<Bytes, String>>,
    room: Arc<Semaphore>,
    ends: oneshot::Sender<Ends>,
) {
    let mut head = Vec::new();
    let mut last: std::collections::VecDeque<Bytes> = Default::default();
    let mut last_len = 0usize;
    // Room taken from the read-ahead and not yet used: taken a step at a
    // time, so the check wakes this task once a step, not once a chunk.
    let mut taken = 0usize;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                let need = room_for(&c);
                if taken < need {
                    let more = (need - taken).max(ROOM_STEP);
                    match room.acquire_many(more as u32).await {
                        Ok(permit) => permit.forget(),
                        Err(_) => return,
                    }
                    taken += more;
                }
                taken -= need;
                if head.len() < HEAD_BYTES {
                    head.extend_from_slice(&c[..c.len().min(HEAD_BYTES - head.len())]);
                }
                last_len += c.len();
                last.push_back(c.clone());
                while last
                    .front()
                    .is_some_and(|f| last_len - f.len() >= END_BYTES)
                {
                    last_len -= last.pop_front().map_or(0, |f| f.len());
                }
                if chunks.send(Ok(c)).await.is_err() {
                    return;
                }
            }
            Ok(None) => {
                let mut end = Vec::with_capacity(last_len);
                last.iter().for_each(|c| end.extend_from_slice(c));
                let _ = ends.send(Ends { head, end });
                return;
            }
            Err(e) => {
                let _ = chunks.send(Err(failed(&e))).await;
                return;
            }
        }
    }
}

fn failed(e: &reqwest::Error) -> String {
    format!(
        "the connection failed while the body arrived: {}",
        super::transport::chain(e)
    )
}

fn describe(e: PageError) -> String {
    match e {
        PageError::CutOff(d) => d,
        e => e.detail().to_string(),
    }
}
