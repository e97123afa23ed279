//! Writing one page's new records while the next page is fetched.
//!
//! Once a page's records have been read for their ids and times, the next
//! request is known, so `pull` hands the page to a [`Writer`] and goes on to
//! fetch. The writer writes on a blocking thread, one page at a time, in the
//! order handed over. A few pages may queue behind the one being written;
//! before one more is handed over, all must be written. `pull` takes a large
//! page in only when nothing is being written (small ones, such as the page
//! that ends a walk, go on meanwhile), so at most two large pages are in
//! memory: the one being written and the one arriving. A write error stops
//! the pull at the next wait. [`Writer::finish`] waits for the last page and
//! gives the [`Sink`] back, to be committed — nothing is made durable, and no
//! state moves, before every page has been written.
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
    /// How many batches `busy` writes after the one being written.
    queued: usize,
    first_write: Option<FirstWrite<'a>>,
}

/// Batches that may queue behind the one being written (all small: see the
/// module's note).
const QUEUE: usize = 4;

/// A write job's result, its panic carried on.
fn settle(joined: Result<Result<(), SinkError>, tokio::task::JoinError>) -> Result<(), SinkError> {
    match joined {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(SinkError::Write {
            target: "the output".into(),
            source: std::io::Error::other(e),
        }),
    }
}

impl<'a> Writer<'a> {
    pub fn new(sink: Sink) -> Writer<'a> {
        Writer {
            sink: Arc::new(Mutex::new(sink)),
            busy: None,
            queued: 0,
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

    /// Start writing `batch` after what is being written. A few batches may
    /// queue behind the one being written (`pull` takes a large page in only
    /// when nothing is being written, so queued ones are small); before one
    /// more, this waits.
    pub async fn write(&mut self, batch: Batch) -> Result<(), PullError> {
        if batch.picks.is_empty() {
            // Nothing to write: the page being written goes on (its error, if
            // any, stops the pull at the next wait).
            return Ok(());
        }
        if self.queued == QUEUE {
            self.wait().await?;
        }
        if let Some(hook) = self.first_write.take() {
            // No batch with records was handed over before this one, so
            // nothing is being written and the lock is free.
            let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
            hook(&mut sink)?;
        }
        let sink = Arc::clone(&self.sink);
        let write = move || {
            let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
            let envelope = Envelope::new(&batch.prefix);
            sink.write_records(&envelope, batch.picks.iter().map(|&i| batch.page.record(i)))?;
            sink.start_writeback();
            Ok(())
        };
        self.busy = Some(match self.busy.take() {
            None => tokio::task::spawn_blocking(write),
            Some(before) => {
                self.queued += 1;
                tokio::spawn(async move {
                    settle(before.await)?;
                    settle(tokio::task::spawn_blocking(write).await)
                })
            }
        });
        Ok(())
    }

    /// Wait until everything handed over is written.
    pub async fn wait(&mut self) -> Result<(), SinkError> {
        self.queued = 0;
        match self.busy.take() {
            None => Ok(()),
            Some(job) => settle(job.await),
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_batches_are_written_in_order_and_the_queue_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let (sink, _) = Sink::open_file(&path, None).unwrap();
        let mut w = Writer::new(sink);
        // A large batch first, then small ones queued behind it.
        let big: Vec<String> = (0..20_000)
            .map(|i| format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(200)))
            .collect();
        let refs: Vec<&str> = big.iter().map(String::as_str).collect();
        w.write(batch(&refs, (0..refs.len()).collect()))
            .await
            .unwrap();
        for i in 0..3 * QUEUE {
            w.write(batch(&[&format!(r#"{{"small":{i}}}"#)], vec![0]))
                .await
                .unwrap();
            assert!(w.queued <= QUEUE, "{} queued", w.queued);
        }
        w.finish().await.unwrap().commit().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000 + 3 * QUEUE);
        assert!(lines[19_999].contains(r#""n":19999"#));
        for i in 0..3 * QUEUE {
            assert_eq!(lines[20_000 + i], format!(r#"{{"data":{{"small":{i}}}}}"#));
        }
    }
}
