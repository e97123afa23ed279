//! `pull`: incremental JSONL ingestion in which every version of every record
//! is written once.
//!
//! Per endpoint:
//! - **alerts** keep a cursor at the largest `lastUpdateTime` seen (server
//!   time, never the host's clock) and re-read a lookback window before it with
//!   `ge`, so records that become visible late and records sharing a timestamp
//!   are not lost; what was already written in that window is remembered by
//!   content fingerprint, so it is not written twice;
//! - **investigations** have no update time: those started within a window are
//!   re-read every time and written when their content changed;
//! - **recommendations** are a snapshot: new and changed ones are written.
//!
//! A page is checked, hashed, remembered and written while the API prepares
//! the next one (see [`ahead`]); a large page read again, such as the window
//! a resumed pull starts with, is sifted as it arrives, so what was written
//! before is not held (see [`crate::api::sift`]); an endpoint's first large
//! page, and every page sent chunked, is written as it arrives (see
//! [`streamed`]). The state moves once, at
//! the end, after the output is durable (see [`sink`]); a pull that fails
//! leaves it as it was.

pub mod ahead;
mod direct;
pub mod early;
pub mod record;
pub mod seen;
pub mod sink;
mod streamed;
pub mod walk;
pub mod writer;

use std::collections::HashSet;

use chrono::Duration;
use tokio::time::Instant;

use crate::api::Opened;
use crate::api::page::PageError;
use crate::api::sift::{Entry, Known, KnownRecords};
use crate::api::{ApiError, Endpoint, Fetched, MAX_TOP, Page, PageRequest, StreamWhen};
use crate::exit::Exit;
use crate::state::EndpointState;
use crate::time::{self, Timestamp};
use record::{Fingerprint, RecordHead};
use seen::Seen;
use sink::{Envelope, SinkError};
use walk::{PageFacts, Walk};
use writer::{Batch, Writer};

/// Anything that hands out pages: the Defender API client, in production.
pub trait PageSource {
    /// The complete body for `req`, not yet checked (`pull` checks it).
    fn fetch(&self, req: &PageRequest) -> impl Future<Output = Result<Fetched, ApiError>>;

    /// [`fetch`](PageSource::fetch), where the records whose fingerprints are
    /// `known` may be dropped as the body arrives (see [`crate::api::sift`]).
    fn fetch_sifting(
        &self,
        req: &PageRequest,
        known: &Known,
    ) -> impl Future<Output = Result<Fetched, ApiError>> {
        let _ = known;
        self.fetch(req)
    }

    /// [`fetch_sifting`](PageSource::fetch_sifting), where a body `when`
    /// picks may instead be handed over as it arrives (see
    /// [`crate::api::stream`]).
    fn open<'k>(
        &self,
        req: &PageRequest,
        known: &'k Known,
        when: StreamWhen,
    ) -> impl Future<Output = Result<Opened<'k>, ApiError>> {
        let _ = when;
        async move {
            let fetched = if known.is_empty() {
                self.fetch(req).await
            } else {
                self.fetch_sifting(req, known).await
            };
            fetched.map(Opened::Whole)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(
        "the API sent {endpoint} a record this tool cannot read ({detail}); nothing of this pull was committed"
    )]
    BadRecord { endpoint: Endpoint, detail: String },
}

impl PullError {
    pub fn exit(&self) -> Exit {
        match self {
            PullError::Api(e) => e.exit(),
            PullError::Sink(e) => e.exit(),
            PullError::State(e) => e.exit(),
            PullError::BadRecord { .. } => Exit::Unavailable,
        }
    }
}

/// How far to look, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where a first pull starts.
    pub since: Timestamp,
    /// How far before the alert cursor to re-read.
    pub lookback: Duration,
    /// Investigations started this long before the newest are re-read.
    pub investigation_window: Duration,
    /// No new page is started after this.
    pub deadline: Option<Instant>,
    pub top: u32,
    /// A page whose body (what is held of it) is at most this many bytes is
    /// small: it is taken in on the pull's own task (a thread costs more than
    /// it saves; a guess its end led to is sent after, not during) and while
    /// the page before it is still being written. Larger ones are taken in
    /// on a blocking thread while the guessed next page is fetched, and only
    /// once the writer is done with the page before.
    pub small_page: usize,
}

impl Options {
    pub fn new(since: Timestamp) -> Options {
        Options {
            since,
            lookback: Duration::minutes(15),
            investigation_window: Duration::days(30),
            deadline: None,
            top: MAX_TOP,
            small_page: SMALL_BODY,
        }
    }
}

/// A body up to this size is small: see [`Options::small_page`].
const SMALL_BODY: usize = 1 << 20;

/// What one endpoint's pull did.
#[derive(Debug, Clone)]
pub struct EndpointOutcome {
    pub endpoint: Endpoint,
    /// The state to commit.
    pub state: EndpointState,
    /// Records the API returned.
    pub read: u64,
    /// Records written (new versions).
    pub written: u64,
    pub pages: u32,
    /// False when the deadline stopped it early (the rest comes next time).
    pub complete: bool,
}

/// What one endpoint's pull remembers from page to page; handed to the
/// thread that takes a page in, and back.
#[derive(Default, Clone)]
struct Memory {
    seen: Seen,
    /// The largest time seen so far.
    newest: Option<Timestamp>,
    /// Recommendations: every key of the snapshot.
    snapshot: HashSet<String, foldhash::fast::RandomState>,
}

/// One page, checked and taken in.
struct Taken {
    page: Page,
    /// Which records are new versions, to write.
    picks: Vec<usize>,
    times: Vec<Option<Timestamp>>,
    signature: u128,
}

/// Why a page was not taken in.
enum Refused {
    /// The body ended early in a way only the full check saw: fetch it again.
    CutOff(String),
    /// A record dropped as known while the body arrived is not one this pull
    /// has: fetch the page again, whole.
    Resift,
    Pull(PullError),
}

/// Check `fetched` and take its records in: each record's head, which are
/// new versions (remembered in `memory` as written), and the page's facts.
/// `memory` changes only when the page is taken in.
fn take_in(endpoint: Endpoint, fetched: Fetched, memory: &mut Memory) -> Result<Taken, Refused> {
    let (page, sifted) = fetched.check_all().map_err(|e| match e {
        PageError::CutOff(d) => Refused::CutOff(d),
        e => Refused::Pull(crate::api::check_failed(endpoint, e).into()),
    })?;
    take_in_checked(endpoint, page, sifted, memory)
}

/// [`take_in`] of a checked page, and for a sifted one the account of
/// every record it had.
fn take_in_checked(
    endpoint: Endpoint,
    page: Page,
    sifted: Option<KnownRecords>,
    memory: &mut Memory,
) -> Result<Taken, Refused> {
    let bad = |detail| Refused::Pull(PullError::BadRecord { endpoint, detail });
    // First every head: nothing is remembered until all of them are read.
    let mut heads = Vec::with_capacity(sifted.as_ref().map_or(page.len(), |s| s.len()));
    let mut read = |entry: Entry<'_>| -> Result<(), Refused> {
        heads.push(match entry {
            Entry::Kept(i) => (
                RecordHead::read(endpoint, page.record(i), page.members(i)).map_err(bad)?,
                Some(i),
            ),
            Entry::Known {
                fingerprint,
                members,
            } => (
                RecordHead::known(endpoint, Fingerprint(fingerprint), members).map_err(bad)?,
                None,
            ),
        });
        Ok(())
    };
    match &sifted {
        Some(records) => records.entries().try_for_each(&mut read)?,
        None => (0..page.len()).map(Entry::Kept).try_for_each(&mut read)?,
    }
    // A dropped record must be one this pull remembers, and must stay so
    // while the page is taken in: no version of it may be kept in the same
    // page (remembering that one would replace it). Otherwise the page is
    // fetched again whole, before the memory changes.
    if sifted.is_some() && heads.iter().any(|(_, kept)| kept.is_none()) {
        let kept: HashSet<&str> = heads
            .iter()
            .filter(|(_, kept)| kept.is_some())
            .map(|(head, _)| head.key.as_str())
            .collect();
        let lacking =
            |head: &RecordHead| !memory.seen.contains(head) || kept.contains(head.key.as_str());
        if heads
            .iter()
            .any(|(head, kept)| kept.is_none() && lacking(head))
        {
            return Err(Refused::Resift);
        }
    }
    let mut times = Vec::with_capacity(heads.len());
    let (mut picks, mut signature) = (Vec::new(), 0u128);
    for (head, kept) in &heads {
        times.push(head.time);
        signature = signature.wrapping_add(head.fingerprint.0);
        if endpoint == Endpoint::Recommendations {
            memory.snapshot.insert(head.key.clone());
        }
        if let Some(t) = head.time {
            memory.newest = Some(memory.newest.map_or(t, |n| n.max(t)));
        }
        // Only a kept record can be new here (the check above).
        if let Some(i) = kept
            && !memory.seen.contains(head)
        {
            picks.push(*i);
            memory.seen.remember(head, memory.newest);
        }
    }
    Ok(Taken {
        page,
        picks,
        times,
        signature,
    })
}

/// The page asked for ahead, `guessed`, when it is the one `walk` asks for
/// next; dropped unused otherwise.
fn take_guess<'k>(
    endpoint: Endpoint,
    walk: &Walk,
    guessed: Option<(PageRequest, Result<Opened<'k>, ApiError>)>,
) -> Result<Option<Opened<'k>>, PullError> {
    match guessed {
        Some((g, opened)) if walk.request() == Some(&g) => Ok(Some(opened?)),
        Some(_) => {
            dropped_guess(endpoint);
            Ok(None)
        }
        None => Ok(None),
    }
}

fn dropped_guess(endpoint: Endpoint) {
    tracing::debug!(
        "{endpoint}: the page led elsewhere than its end suggested; the request made ahead is dropped"
    );
}

/// Memory only: a backfill would otherwise remember every record it wrote
/// until the end. Forget now what the final `forget_before` in
/// [`pull_endpoint`] would forget anyway and the walk cannot be served again
/// (older than its `ge` bound), so what is written does not change.
fn forget_unservable(window: Option<Duration>, walk: &Walk, floor: Timestamp, memory: &mut Memory) {
    if let (Some(w), Some(n), Some(from)) = (window, memory.newest, walk.keyset_from()) {
        memory.seen.forget_before((n - w).min(from).max(floor));
    }
}

/// Where one endpoint's pull starts, from its state and the options.
struct Start {
    /// Nothing before this is asked for.
    floor: Timestamp,
    cursor: Option<Timestamp>,
    /// How far before the cursor is read again.
    window: Option<Duration>,
    walk: Walk,
}

impl Start {
    fn of(endpoint: Endpoint, prior: &EndpointState, opts: &Options) -> Start {
        let floor = prior
            .floor
            .as_deref()
            .and_then(time::parse)
            .unwrap_or(opts.since);
        let cursor = prior.cursor.as_deref().and_then(time::parse);
        let window = match endpoint {
            Endpoint::Alerts => Some(opts.lookback),
            Endpoint::Investigations => Some(opts.investigation_window),
            Endpoint::Recommendations => None,
        };
        let walk = match (endpoint, window) {
            (Endpoint::Alerts, Some(w)) => {
                let from = cursor.map_or(floor, |c| (c - w).max(floor));
                Walk::keyset(endpoint, from, opts.top, prior.page_cap)
            }
            (Endpoint::Investigations, Some(w)) => {
                let from = cursor.map_or(floor, |c| (c - w).max(floor));
                let filter = format!("startTime ge {}", time::odata(from));
                Walk::skip(endpoint, Some(filter), opts.top, prior.page_cap)
            }
            _ => Walk::skip(endpoint, None, opts.top, prior.page_cap),
        };
        Start {
            floor,
            cursor,
            window,
            walk,
        }
    }
}

/// The first request [`pull_endpoint`] makes for `endpoint` from `prior`: it
/// depends on nothing else, so a caller may ask for it early.
pub fn first_request(endpoint: Endpoint, prior: &EndpointState, opts: &Options) -> PageRequest {
    Start::of(endpoint, prior, opts)
        .walk
        .request()
        .cloned()
        .expect("a walk starts with a request")
}

/// Pull one endpoint into `writer`, starting from `prior`. Hands lines to the
/// writer (the last page may still be being written on return); does not
/// commit the sink or the state (the caller finishes the writer, commits the
/// sink, then the state, in that order).
pub async fn pull_endpoint<S: PageSource>(
    source: &S,
    endpoint: Endpoint,
    prior: &EndpointState,
    opts: &Options,
    tenant_id: &str,
    writer: &mut Writer<'_>,
    mut on_page: impl FnMut(u64),
) -> Result<EndpointOutcome, PullError> {
    let mut state = prior.clone();
    let Start {
        floor,
        cursor,
        window,
        mut walk,
    } = Start::of(endpoint, prior, opts);
    let mut memory = Memory {
        seen: Seen::decode(&prior.seen),
        newest: cursor,
        snapshot: HashSet::default(),
    };
    let (mut read, mut written, mut pages, mut complete) = (0u64, 0u64, 0u32, true);
    // Guess the next request only where a page is likely to be followed by
    // another: on a first pull (every record is new, so the walk goes on after
    // every page that has any), or after a page that held something new. A
    // pull that resumes starts by re-reading its lookback window, usually one
    // short page of records already written, after which the walk ends.
    let mut guessing = prior.cursor.is_none();
    // The page for `walk.request()`, when it was asked for ahead.
    let mut ahead: Option<Opened<'_>> = None;
    let mut refetched = false;
    // What this endpoint wrote before, for a page that is not guessed from
    // (its tail must be whole) to drop as it arrives; `None` once a page
    // sifted by it turned out to need a record it dropped.
    let mut known =
        (!memory.seen.is_empty()).then(|| Known::new(memory.seen.fingerprints().map(|f| f.0)));
    let nothing_known = Known::default();
    // A streamed page that was not whole is fetched again whole; what was
    // written of it as it arrived counts as new in the page fetched again
    // (the walk goes on after a short page only if it had something new).
    // An endpoint's first page is streamed when it is large; the pages after
    // it only when the server sends them without a declared length, as it
    // renders them (see `StreamWhen`).
    let mut stream_failed = false;
    let mut written_as_streamed = 0u64;
    while let Some(req) = walk.request().cloned() {
        if opts.deadline.is_some_and(|d| Instant::now() >= d) {
            complete = false;
            break;
        }
        let opened = match (ahead.take(), &known) {
            (Some(o), _) => o,
            (None, k) if !stream_failed => {
                let sift_by = match k {
                    Some(k) if !guessing => k,
                    _ => &nothing_known,
                };
                let when = if pages == 0 {
                    StreamWhen::Large
                } else {
                    StreamWhen::Unsized
                };
                source.open(&req, sift_by, when).await?
            }
            (None, Some(k)) if !guessing => Opened::Whole(source.fetch_sifting(&req, k).await?),
            (None, _) => Opened::Whole(source.fetch(&req).await?),
        };
        let fetched = match opened {
            Opened::Whole(f) => f,
            Opened::Stream(mut s) => {
                let fetched_at = time::rfc3339_seconds(chrono::Utc::now());
                let prefix = Envelope::prefix(endpoint.kind(), tenant_id, &fetched_at);
                let mut page = streamed::Streamed::default();
                // Once its last byte is in, the page's tail tells the next
                // request, asked for while the rest is checked (see `ahead`).
                let ends = s.ends().filter(|_| guessing);
                let (walk_now, nothing_known) = (&walk, &nothing_known);
                let guessed = async move {
                    let ends = ends?.await.ok()?;
                    let guess = ahead::guess_from_ends(walk_now, endpoint, &ends)?;
                    tracing::debug!(
                        "{endpoint}: the page's last byte is in; the next page is asked for from its end while it is checked"
                    );
                    let opened = source
                        .open(&guess, nothing_known, StreamWhen::Unsized)
                        .await;
                    Some((guess, opened))
                };
                let (taken, guessed) = tokio::join!(
                    streamed::take_in(&mut s, &mut memory, writer, &prefix, &mut page),
                    guessed
                );
                drop(s);
                if let Err(refused) = taken {
                    // What was written of it stays written, and is
                    // remembered: fetched again, it is not written twice.
                    let kept = page.written;
                    written += kept;
                    written_as_streamed += kept;
                    let why = match refused {
                        Refused::CutOff(detail) => detail,
                        Refused::Resift => {
                            known = None;
                            "a record dropped as already written is not in this pull's memory"
                                .into()
                        }
                        Refused::Pull(e) => return Err(e),
                    };
                    tracing::info!(
                        "{endpoint}: {why}; the {kept} records written of the page as it arrived are kept, and it is fetched again whole"
                    );
                    stream_failed = true;
                    continue;
                }
                pages += 1;
                let had_new = page.written > 0 || std::mem::take(&mut written_as_streamed) > 0;
                written += page.written;
                read += page.times.len() as u64;
                on_page(page.times.len() as u64);
                walk.advance(PageFacts {
                    times: &page.times,
                    had_new,
                    next_link: page.next_link,
                    signature: page.signature,
                });
                guessing = prior.cursor.is_none() || had_new;
                ahead = take_guess(endpoint, &walk, guessed)?;
                forget_unservable(window, &walk, floor, &mut memory);
                continue;
            }
        };
        let guess = guessing.then(|| ahead::guess(&walk, &fetched)).flatten();
        // Before a large body is taken in, the page before it is written, so
        // at most two large bodies are in memory: this one and the next. A
        // small one (the empty page that ends most walks) goes on while the
        // writer works, so the next endpoint's first request is not held up.
        if fetched.held() > opts.small_page {
            writer.wait().await?;
        }
        let fetched_at = time::rfc3339_seconds(chrono::Utc::now());
        let prefix = Envelope::prefix(endpoint.kind(), tenant_id, &fetched_at);

        let next = async {
            match &guess {
                Some(r) => Some(source.open(r, &nothing_known, StreamWhen::Unsized).await),
                None => None,
            }
        };
        tokio::pin!(next);
        let mut fetched_ahead = None;
        let taken = if fetched.held() <= opts.small_page {
            // Taken in here: it is quick, and a thread would cost more.
            take_in(endpoint, fetched, &mut memory)
        } else {
            // Taken in on another thread while the guessed one is fetched.
            let mut mem = std::mem::take(&mut memory);
            let job = tokio::task::spawn_blocking(move || {
                let taken = take_in(endpoint, fetched, &mut mem);
                (mem, taken)
            });
            tokio::pin!(job);
            let (mem, taken) = loop {
                tokio::select! {
                    biased;
                    r = &mut next, if fetched_ahead.is_none() => fetched_ahead = Some(r),
                    r = &mut job => match r {
                        Ok(done) => break done,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(e) => return Err(PullError::Sink(SinkError::Write {
                            target: "the output".into(),
                            source: std::io::Error::other(e),
                        })),
                    },
                }
            };
            memory = mem;
            taken
        };
        let mut taken = match taken {
            Ok(t) => t,
            Err(Refused::CutOff(detail)) if !refetched => {
                tracing::info!("{endpoint}: {detail}; fetching the page again");
                refetched = true;
                continue;
            }
            Err(Refused::CutOff(detail)) => {
                return Err(ApiError::BadResponse { endpoint, detail }.into());
            }
            Err(Refused::Resift) => {
                tracing::info!(
                    "{endpoint}: a record dropped as already written is not in this pull's memory; fetching the page again, whole"
                );
                known = None;
                continue;
            }
            Err(Refused::Pull(e)) => return Err(e),
        };
        refetched = false;
        stream_failed = false;
        pages += 1;
        let had_new = !taken.picks.is_empty() || std::mem::take(&mut written_as_streamed) > 0;
        written += taken.picks.len() as u64;
        read += taken.times.len() as u64;
        on_page(taken.times.len() as u64);
        walk.advance(PageFacts {
            times: &taken.times,
            had_new,
            next_link: taken.page.next_link.take(),
            signature: taken.signature,
        });
        guessing = prior.cursor.is_none() || had_new;
        writer
            .write(Batch {
                page: taken.page,
                prefix,
                picks: taken.picks,
            })
            .await?;
        if let Some(g) = &guess {
            if walk.request() == Some(g) {
                let opened = match fetched_ahead {
                    Some(r) => r,
                    None => next.await,
                };
                ahead = Some(opened.expect("a guess is fetched")?);
            } else {
                dropped_guess(endpoint);
            }
        }
        forget_unservable(window, &walk, floor, &mut memory);
    }
    let Memory {
        mut seen,
        newest,
        snapshot,
    } = memory;
    if let (Some(w), Some(n)) = (window, newest) {
        seen.forget_before((n - w).max(floor));
    }
    if endpoint == Endpoint::Recommendations && complete {
        seen.retain_keys(&snapshot);
    }
    state.floor = Some(time::odata(floor));
    state.cursor = newest.map(time::odata);
    state.seen = seen.encode();
    if let Some(cap) = walk.learned_cap() {
        state.page_cap = Some(state.page_cap.map_or(cap, |c| c.min(cap)));
    }
    Ok(EndpointOutcome {
        endpoint,
        state,
        read,
        written,
        pages,
        complete,
    })
}

#[cfg(test)]
mod tests;
