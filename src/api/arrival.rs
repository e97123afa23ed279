//! Checking a large body while it arrives.
//!
//! A page of alerts with evidence is tens of megabytes, which the API takes a
//! tenth of a second or more to send. Checked only once its last byte is in,
//! the page's check (tens of milliseconds) comes after the transfer on every
//! pull's critical path; for a pull of one page, that is most of what it adds
//! to the wire time. So the receiving task hands each chunk, uncopied, to a
//! thread of its own ([`Arrival`]), which appends it to the body and runs the
//! page's [`PageScan`] over what has arrived. When the last byte is in, all
//! but the last chunk is checked and [`Fetched::check`](super::Fetched::check)
//! goes on from there. The receiving task does less than before (no copy), so
//! the last byte is in no later.
//!
//! Small bodies are not worth a thread: [`Arrival::new`] appends them in place.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::Thread;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::Endpoint;
use super::page::PageScan;

/// A body declared at least this large is checked as it arrives.
pub const CHECK_AS_IT_ARRIVES: usize = 1 << 20;

/// What the thread checks at a time: scanning again from the start of a
/// record that was cut by the end of what has arrived costs a little, so not
/// after every chunk.
const FEED_EVERY: usize = 256 << 10;

/// A body being received: in place, or with a thread checking behind.
pub enum Arrival {
    InPlace {
        body: Vec<u8>,
        scan: Option<PageScan>,
    },
    Checked(Checked),
}

/// The body's buffer, shared with the checking thread: the receiver appends
/// to it, within its capacity (so it never moves), and publishes how much is
/// in; the thread reads only what was published. Whoever lets go of it last
/// frees it, unless the receiver took it back.
struct Shared {
    ptr: *mut u8,
    capacity: usize,
    /// Bytes in, published with `Release`.
    len: AtomicUsize,
    /// Set when no more will come: the thread stops and hands its scan back.
    done: AtomicBool,
    /// The receiver took the buffer back as a `Vec`.
    taken: AtomicBool,
}

// SAFETY: the receiver writes only past `len` and the thread reads only below
// it (with Release/Acquire on `len`); the buffer is taken back only after the
// thread has said it is finished with it, and freed once.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        if !*self.taken.get_mut() {
            // SAFETY: the parts of a `Vec` not taken back; no one else holds them.
            drop(unsafe { Vec::from_raw_parts(self.ptr, *self.len.get_mut(), self.capacity) });
        }
    }
}

pub struct Checked {
    shared: Arc<Shared>,
    thread: Thread,
    /// How much was in when the thread was last woken.
    woken_at: usize,
    scan: oneshot::Receiver<PageScan>,
}

impl Drop for Checked {
    fn drop(&mut self) {
        // Received or given up on (a transfer that failed or was cancelled):
        // the thread stops either way.
        self.shared.done.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

impl Arrival {
    /// Receive into `body` (empty, with room for the declared length), with
    /// a checking thread when `declared` is large.
    pub fn new(endpoint: Endpoint, body: Vec<u8>, declared: Option<u64>) -> Arrival {
        if declared.is_none_or(|d| d < CHECK_AS_IT_ARRIVES as u64) {
            return Arrival::InPlace { body, scan: None };
        }
        let mut body = std::mem::ManuallyDrop::new(body);
        let shared = Arc::new(Shared {
            ptr: body.as_mut_ptr(),
            capacity: body.capacity(),
            len: AtomicUsize::new(body.len()),
            done: AtomicBool::new(false),
            taken: AtomicBool::new(false),
        });
        let (tx, scan) = oneshot::channel();
        let theirs = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("check".into())
            .spawn(move || {
                let _ = tx.send(follow(endpoint, &theirs));
            });
        match spawned {
            Ok(t) => Arrival::Checked(Checked {
                shared,
                thread: t.thread().clone(),
                woken_at: 0,
                scan,
            }),
            // No thread to be had: `shared` frees the buffer, so start over
            // with a new one, in place.
            Err(_) => Arrival::InPlace {
                body: Vec::with_capacity(shared.capacity),
                scan: None,
            },
        }
    }

    /// Take in the next chunk.
    pub async fn push(&mut self, chunk: Bytes) {
        if let Arrival::Checked(c) = self {
            let len = c.shared.len.load(Ordering::Relaxed);
            if len + chunk.len() <= c.shared.capacity {
                // SAFETY: within the buffer's capacity and past what the
                // thread may read; only this side writes.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        chunk.as_ptr(),
                        c.shared.ptr.add(len),
                        chunk.len(),
                    );
                }
                let len = len + chunk.len();
                c.shared.len.store(len, Ordering::Release);
                // Woken only when there is a stretch for it to check.
                if len - c.woken_at >= FEED_EVERY {
                    c.woken_at = len;
                    c.thread.unpark();
                }
                return;
            }
            // More than was declared: the buffer must grow, so the thread
            // stops here, and the rest is taken in place.
            let (body, scan) = c.stop().await;
            *self = Arrival::InPlace { body, scan };
        }
        if let Arrival::InPlace { body, .. } = self {
            body.extend_from_slice(&chunk);
        }
    }

    /// The body so far and, when it was checked as it arrived, how far the
    /// check got.
    pub async fn end(self) -> (Vec<u8>, Option<PageScan>) {
        match self {
            Arrival::InPlace { body, scan } => (body, scan),
            Arrival::Checked(mut c) => c.stop().await,
        }
    }
}

impl Checked {
    /// Stop the thread and take the buffer back.
    async fn stop(&mut self) -> (Vec<u8>, Option<PageScan>) {
        self.shared.done.store(true, Ordering::Release);
        self.thread.unpark();
        // The thread sends its scan after its last read of the buffer (or
        // drops the sender, if it panicked): after this, nothing reads it.
        let scan = (&mut self.scan).await.ok();
        let len = self.shared.len.load(Ordering::Relaxed);
        if self.shared.taken.swap(true, Ordering::AcqRel) {
            return (Vec::new(), None);
        }
        // SAFETY: the buffer came from a `Vec` of this capacity, whose first
        // `len` bytes this side wrote; the thread is finished with it, and
        // `taken` says it is ours (once).
        let body = unsafe { Vec::from_raw_parts(self.shared.ptr, len, self.shared.capacity) };
        (body, scan)
    }
}

/// The checking thread: scan what has arrived, a stretch at a time, until
/// told to stop. A body that cannot be a page stops the scan (the check
/// after the last byte says why, from the start).
fn follow(endpoint: Endpoint, shared: &Shared) -> PageScan {
    let mut scan = PageScan::new(endpoint);
    let mut fed = 0;
    let mut broken = false;
    loop {
        let done = shared.done.load(Ordering::Acquire);
        let len = shared.len.load(Ordering::Acquire);
        if done {
            break;
        }
        if broken || len - fed < FEED_EVERY {
            std::thread::park();
            continue;
        }
        // SAFETY: the receiver published `len` bytes (Acquire above) and
        // writes only after them; the buffer lives until this thread sends
        // its scan.
        let body = unsafe { std::slice::from_raw_parts(shared.ptr, len) };
        fed = len;
        if scan.feed(body).is_err() {
            broken = true;
        }
    }
    if broken {
        PageScan::new(endpoint)
    } else {
        scan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::page::PageError;
    use url::Url;

    fn body_of(records: usize) -> Vec<u8> {
        let mut b = String::from("{\"@odata.context\":\"x\",\"value\":[");
        for i in 0..records {
            if i > 0 {
                b.push(',');
            }
            b.push_str(&format!(
                "{{\"id\":\"da{i}\",\"lastUpdateTime\":\"2026-12-01T00:00:{:02}Z\",\"title\":\"é \\\" {}\"}}",
                i % 60,
                "x".repeat(i % 300)
            ));
        }
        b.push_str("]}");
        b.into_bytes()
    }

    async fn arrive(body: &[u8], chunk: usize) -> (Vec<u8>, Option<PageScan>) {
        let mut a = Arrival::new(
            Endpoint::Alerts,
            Vec::with_capacity(body.len()),
            Some(body.len() as u64),
        );
        for c in body.chunks(chunk) {
            a.push(Bytes::copy_from_slice(c)).await;
        }
        a.end().await
    }

    #[tokio::test]
    async fn a_page_checked_as_it_arrives_is_the_page_checked_after() {
        let base = Url::parse("http://localhost").unwrap();
        let body = body_of(12_000);
        assert!(body.len() > CHECK_AS_IT_ARRIVES);
        let whole = PageScan::new(Endpoint::Alerts)
            .finish(body.clone(), &base)
            .unwrap();
        // Chunks that cut records, strings and characters anywhere.
        for chunk in [1 << 10, 7_919, 65_536, 300_007] {
            let (got, scan) = arrive(&body, chunk).await;
            assert_eq!(got, body, "chunks of {chunk}");
            let scan = scan.expect("checked as it arrived");
            let page = scan.finish(got, &base).unwrap();
            assert_eq!(page.len(), whole.len());
            assert!(page.records().eq(whole.records()), "chunks of {chunk}");
            for i in [0, 1, 5_000, 11_999] {
                assert_eq!(page.members(i), whole.members(i));
            }
        }
    }

    #[tokio::test]
    async fn a_cut_off_or_broken_body_is_refused_as_after_the_fact() {
        let base = Url::parse("http://localhost").unwrap();
        let body = body_of(12_000);
        let cut = &body[..body.len() - 5_000];
        let (got, scan) = arrive(cut, 65_536).await;
        let e = scan.unwrap().finish(got, &base).unwrap_err();
        assert!(matches!(e, PageError::CutOff(_)), "{e:?}");

        // Broken early: the scan gives up, and a check from the start says why.
        let mut broken = body.clone();
        let at = broken.windows(3).position(|w| w == b",{\"").unwrap();
        broken[at] = b'x';
        let (got, scan) = arrive(&broken, 65_536).await;
        let e = scan.unwrap().finish(got, &base).unwrap_err();
        assert!(matches!(e, PageError::NotAPage(_)), "{e:?}");
    }

    #[tokio::test]
    async fn small_bodies_arrive_in_place() {
        let body = body_of(3);
        let (got, scan) = arrive(&body, 10).await;
        assert_eq!(got, body);
        assert!(scan.is_none());
    }
}
