//! Taking a page in as it arrives, writing its new records on the way.
//!
//! An endpoint's first page is usually its largest cost: on a first pull it
//! is tens of megabytes of new alerts, and nothing before it could be
//! overlapped with it. Held whole, it costs its size in fresh memory and its
//! records are checked and written only after its last byte; streamed (see
//! [`crate::api::stream`]), each part is checked, taken in and handed to the
//! writer while the rest arrives, and the body never has to be held. So is
//! every page a server sends without a declared length (chunked): it renders
//! as it sends, and taking the page in as it arrives keeps pace with it
//! (see [`crate::api::StreamWhen`]). Once the last byte is in, the page's end
//! tells the next request, which is sent while the rest is checked (see
//! [`super::ahead`]).
//!
//! A page that turns out not to be whole — cut off, not JSON, the connection
//! lost, or a record dropped as written that this pull does not remember —
//! keeps what it wrote: every record written was checked whole, and each is
//! remembered as written, exactly as the records of a whole page are. `pull`
//! then fetches the page again whole, and what is already written is not
//! written again (the ordinary retries and errors apply). Nothing is taken
//! back from the output, so a shipper tailing the file never sees it shrink.
//! A pull that fails or is killed after that is undone like any other, by the
//! next pull (see [`super::sink`]).

use url::Url;

use super::writer::{Batch, Writer};
use super::{Memory, Refused, take_in_checked};
use crate::api::BodyStream;
use crate::time::Timestamp;

/// A page taken in and handed to the writer as it arrived.
#[derive(Default)]
pub(super) struct Streamed {
    /// Each record's time, in the order the API sent them.
    pub times: Vec<Option<Timestamp>>,
    /// How many of them were new versions, handed to the writer.
    pub written: u64,
    pub signature: u128,
    pub next_link: Option<Url>,
}

/// Take `stream`'s page in part by part into `page`, as
/// [`take_in`](super::take_in) does a whole one, and hand each part's new
/// records to `writer` under `prefix`. On `Err`, the parts taken in before
/// are in `page` (their new records handed to the writer, and remembered as
/// written in `memory`), and nothing of the rest.
pub(super) async fn take_in(
    stream: &mut BodyStream<'_>,
    memory: &mut Memory,
    writer: &mut Writer<'_>,
    prefix: &str,
    page: &mut Streamed,
) -> Result<(), Refused> {
    let endpoint = stream.endpoint();
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
            return Ok(());
        }
    }
}
