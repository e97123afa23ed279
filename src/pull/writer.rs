//! Writing one page's new records while the next page is fetched.
//!
//! Once a page's records have been read for their ids and times, the next
//! request is known, so `pull` hands the page to a [`Writer`] and goes on to
//! fetch. The writer writes on a blocking thread, one page at a time: before a
//! page is handed over, the previous one must be written, so at most two pages
//! are in memory (the one being written and the one arriving) and a write error
//! stops the pull at the next page. [`Writer::finish`] waits for the last page
//! and gives the [`Sink`] back, to be committed — nothing is made durable, and
//! no state moves, before every page has been written.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;

use super::sink::{Envelope, Sink, SinkError};
use crate::api::Page;

/// The records of one page to write, all under the same envelope.
pub struct Batch {
    pub page: Page,
    /// `Envelope::prefix` for this page.
    pub prefix: String,
    /// Which of the page's records to write, in order.
    pub picks: Vec<usize>,
}

pub struct Writer {
    sink: Arc<Mutex<Sink>>,
    busy: Option<JoinHandle<Result<(), SinkError>>>,
}

impl Writer {
    pub fn new(sink: Sink) -> Writer {
        Writer {
            sink: Arc::new(Mutex::new(sink)),
            busy: None,
        }
    }

    /// Wait for the page being written, then start writing `batch`.
    pub async fn write(&mut self, batch: Batch) -> Result<(), SinkError> {
        self.wait().await?;
        if batch.picks.is_empty() {
            return Ok(());
        }
        let sink = Arc::clone(&self.sink);
        self.busy = Some(tokio::task::spawn_blocking(move || {
            let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
            let envelope = Envelope::new(&batch.prefix);
            for &i in &batch.picks {
                sink.write_record(&envelope, batch.page.record(i))?;
            }
            Ok(())
        }));
        Ok(())
    }

    /// Wait until everything handed over is written.
    pub async fn wait(&mut self) -> Result<(), SinkError> {
        match self.busy.take() {
            None => Ok(()),
            Some(job) => match job.await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => Err(SinkError::Write {
                    target: "the output".into(),
                    source: std::io::Error::other(e),
                }),
            },
        }
    }

    /// Wait for the last page and give the sink back, to be committed.
    pub async fn finish(mut self) -> Result<Sink, SinkError> {
        self.wait().await?;
        let sink = Arc::try_unwrap(self.sink)
            .unwrap_or_else(|_| unreachable!("no write is running after wait()"));
        Ok(sink.into_inner().unwrap_or_else(PoisonError::into_inner))
    }
}
