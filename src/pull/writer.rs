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
//!
//! A hook given to [`Writer::with_first_write`] runs once, before the first
//! record is written, with the sink (for `--output FILE`: recording in the
//! state where this pull starts appending). A pull that writes nothing — the
//! usual cron run — does not run it.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::JoinHandle;

use super::PullError;
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

type FirstWrite<'a> = Box<dyn FnOnce(&mut Sink) -> Result<(), PullError> + Send + 'a>;

pub struct Writer<'a> {
    sink: Arc<Mutex<Sink>>,
    busy: Option<JoinHandle<Result<(), SinkError>>>,
    first_write: Option<FirstWrite<'a>>,
}

impl<'a> Writer<'a> {
    pub fn new(sink: Sink) -> Writer<'a> {
        Writer {
            sink: Arc::new(Mutex::new(sink)),
            busy: None,
            first_write: None,
        }
    }

    /// Run `hook` before the first record is written (not at all if none is).
    pub fn with_first_write(
        mut self,
        hook: impl FnOnce(&mut Sink) -> Result<(), PullError> + Send + 'a,
    ) -> Writer<'a> {
        self.first_write = Some(Box::new(hook));
        self
    }

    /// Wait for the page being written, then start writing `batch`.
    pub async fn write(&mut self, batch: Batch) -> Result<(), PullError> {
        self.wait().await?;
        if batch.picks.is_empty() {
            return Ok(());
        }
        if let Some(hook) = self.first_write.take() {
            // Nothing is being written now (waited above), so the lock is free.
            let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
            hook(&mut sink)?;
        }
        let sink = Arc::clone(&self.sink);
        self.busy = Some(tokio::task::spawn_blocking(move || {
            let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
            let envelope = Envelope::new(&batch.prefix);
            sink.write_records(&envelope, batch.picks.iter().map(|&i| batch.page.record(i)))?;
            sink.start_writeback();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: &[&str], picks: Vec<usize>) -> Batch {
        Batch {
            page: Page::from_records(crate::api::Endpoint::Alerts, records, None).unwrap(),
            prefix: "{\"data\":".into(),
            picks,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_hook_runs_once_before_the_first_line_and_never_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let (sink, _) = Sink::open_file(&path, None).unwrap();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let mut w = Writer::new(sink).with_first_write(|sink| {
            // Nothing of this pull has reached the file yet.
            assert_eq!(sink.mark().unwrap().unwrap().pending_from, Some(0));
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        });
        w.write(batch(&[r#"{"a":1}"#], vec![])).await.unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 0);
        w.write(batch(&[r#"{"a":1}"#, r#"{"b":2}"#], vec![1]))
            .await
            .unwrap();
        w.write(batch(&[r#"{"c":3}"#], vec![0])).await.unwrap();
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
        w.finish().await.unwrap().commit().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"data\":{\"b\":2}}\n{\"data\":{\"c\":3}}\n"
        );
    }
}
