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
//! The state moves once, at the end, after the output is durable (see
//! [`sink`]); a pull that fails leaves it as it was.

pub mod record;
pub mod seen;
pub mod sink;
pub mod walk;
pub mod writer;

use std::collections::HashSet;

use chrono::Duration;
use tokio::time::Instant;

use crate::api::{ApiError, Endpoint, MAX_TOP, Page, PageRequest};
use crate::exit::Exit;
use crate::state::EndpointState;
use crate::time::{self, Timestamp};
use record::RecordHead;
use seen::Seen;
use sink::{Envelope, SinkError};
use walk::{PageFacts, Walk};
use writer::{Batch, Writer};

/// Anything that hands out pages: the Defender API client, in production.
pub trait PageSource {
    fn page(&self, req: &PageRequest) -> impl Future<Output = Result<Page, ApiError>>;
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
}

impl Options {
    pub fn new(since: Timestamp) -> Options {
        Options {
            since,
            lookback: Duration::minutes(15),
            investigation_window: Duration::days(30),
            deadline: None,
            top: MAX_TOP,
        }
    }
}

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
    let floor = prior
        .floor
        .as_deref()
        .and_then(time::parse)
        .unwrap_or(opts.since);
    let cursor = prior.cursor.as_deref().and_then(time::parse);
    let mut seen = Seen::decode(&prior.seen);
    let mut newest = cursor;
    let window = match endpoint {
        Endpoint::Alerts => Some(opts.lookback),
        Endpoint::Investigations => Some(opts.investigation_window),
        Endpoint::Recommendations => None,
    };
    let mut walk = match (endpoint, window) {
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
    let mut snapshot: HashSet<String> = HashSet::new();
    let (mut read, mut written, mut pages, mut complete) = (0u64, 0u64, 0u32, true);
    let mut times = Vec::new();
    while let Some(req) = walk.request().cloned() {
        if opts.deadline.is_some_and(|d| Instant::now() >= d) {
            complete = false;
            break;
        }
        let mut page = source.page(&req).await?;
        pages += 1;
        let fetched_at = time::rfc3339_seconds(chrono::Utc::now());
        let prefix = Envelope::prefix(endpoint.kind(), tenant_id, &fetched_at);
        times.clear();
        let (mut had_new, mut signature) = (false, 0u128);
        let mut picks = Vec::new();
        for (i, raw) in page.records().enumerate() {
            let head = RecordHead::read(endpoint, raw, page.members(i))
                .map_err(|detail| PullError::BadRecord { endpoint, detail })?;
            times.push(head.time);
            signature = signature.wrapping_add(head.fingerprint.0);
            if endpoint == Endpoint::Recommendations {
                snapshot.insert(head.key.clone());
            }
            if let Some(t) = head.time {
                newest = Some(newest.map_or(t, |n| n.max(t)));
            }
            if !seen.contains(&head) {
                picks.push(i);
                seen.remember(&head, newest);
                written += 1;
                had_new = true;
            }
        }
        read += page.len() as u64;
        on_page(page.len() as u64);
        walk.advance(PageFacts {
            times: &times,
            had_new,
            next_link: page.next_link.take(),
            signature,
        });
        // The next request is known now: write this page while it is fetched.
        writer
            .write(Batch {
                page,
                prefix,
                picks,
            })
            .await?;
        // Memory only: a backfill would otherwise remember every record it
        // wrote until the end. Forget now what the final `forget_before` below
        // would forget anyway and this walk cannot be served again (older than
        // its `ge` bound), so what is written does not change.
        if let (Some(w), Some(n), Some(from)) = (window, newest, walk.keyset_from()) {
            seen.forget_before((n - w).min(from).max(floor));
        }
    }
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
