//! Taking a large page in as it arrives, writing its new records on the way.
//!
//! An endpoint's first page is usually its largest cost: on a first pull it
//! is tens of megabytes of new alerts, and nothing before it could be
//! overlapped with it. Held whole, it costs its size in fresh memory and its
//! records are checked and written only after its last byte; streamed (see
//! [`crate::api::stream`]), each part is taken in and handed to the writer
//! while the rest arrives, and the body never has to be held. This is done
//! only where the output can be taken back: into a file, whose length before
//! the page is noted. A page that turns out not to be whole — cut off, not
//! JSON, the connection lost, or a record dropped as written that this pull
//! does not remember — has what was written of it cut off the file and the
//! memory put back as it was before the page; `pull` then fetches it again
//! whole, and the ordinary retries and errors apply. A pull killed meanwhile
//! is undone like any other, by the next pull (see [`super::sink`]).

use url::Url;

use super::writer::{Batch, Writer};
use super::{Memory, PullError, Refused, take_in_checked};
use crate::api::{BodyStream, Endpoint};
use crate::time::Timestamp;

/// A page taken in and handed to the writer as it arrived.
pub(super) struct Streamed {
    /// Each record's time, in the order the API sent them.
    pub times: Vec<Option<Timestamp>>,
    /// How many of them were new versions, handed to the writer.
    pub written: u64,
    pub signature: u128,
    pub next_link: Option<Url>,
}

/// Take `stream`'s page in part by part, as [`take_in`](super::take_in) does
/// a whole one, and hand each part's new records to `writer` under `prefix`.
/// On `Err`, neither the output (once the writer is done) nor `memory` shows
/// anything of the page.
pub(super) async fn take_in(
    stream: &mut BodyStream<'_>,
    memory: &mut Memory,
    writer: &mut Writer<'_>,
    prefix: &str,
) -> Result<Streamed, Refused> {
    let endpoint = stream.endpoint();
    let Some(start) = writer.position().await.map_err(pull)? else {
        unreachable!("pages are streamed only into output that can be taken back")
    };
    let before = memory.clone();
    let taken = parts(stream, endpoint, memory, writer, prefix).await;
    if taken.is_err() {
        *memory = before;
        let back = writer.rewind(start).await.map_err(pull)?;
        tracing::debug!(
            "{endpoint}: {back} bytes written of a page that is not whole were taken back"
        );
    }
    taken
}

async fn parts(
    stream: &mut BodyStream<'_>,
    endpoint: Endpoint,
    memory: &mut Memory,
    writer: &mut Writer<'_>,
    prefix: &str,
) -> Result<Streamed, Refused> {
    let mut page = Streamed {
        times: Vec::new(),
        written: 0,
        signature: 0,
        next_link: None,
    };
    loop {
        let part = stream.next().await.map_err(Refused::CutOff)?;
        let mut taken = take_in_checked(endpoint, part.page, Some(part.records), memory)?;
        page.times.append(&mut taken.times);
        page.signature = page.signature.wrapping_add(taken.signature);
        page.written += taken.picks.len() as u64;
        if part.last {
            page.next_link = taken.page.next_link.take();
        }
        writer
            .write(Batch {
                page: taken.page,
                prefix: prefix.to_string(),
                picks: taken.picks,
            })
            .await
            .map_err(Refused::Pull)?;
        if part.last {
            return Ok(page);
        }
    }
}

fn pull(e: impl Into<PullError>) -> Refused {
    Refused::Pull(e.into())
}
