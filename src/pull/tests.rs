//! The pull loop against an in-memory page source that applies `ge` filters,
//! ascending order, `$skip` and a page cap like the API. End-to-end behaviour
//! over HTTP is tested against the sandbox in `tests/pull.rs`.

use std::cell::{Cell, RefCell};

use super::sink::Sink;
use super::*;

struct Pages {
    records: RefCell<Vec<(String, Timestamp, String)>>,
    cap: usize,
    calls: RefCell<u32>,
    /// Serve each page with its last record first: sorted at its end, not
    /// at its start (a server that half ignores `$orderby`).
    rotate: Cell<bool>,
    /// Pages fetched sifted.
    sifted: Cell<u32>,
    /// Sift as if these fingerprints were known too (a stale snapshot).
    also_known: RefCell<Vec<u128>>,
    /// Hand bodies over as streams when asked to (see [`PageSource::open`]).
    stream: Cell<bool>,
    /// Pages handed over as streams.
    streamed: Cell<u32>,
    /// Cut the next streamed body off after this many bytes (negative:
    /// this many before its end).
    cut_stream: Cell<Option<isize>>,
    /// Streamed bodies arrive in chunks of this many bytes.
    stream_chunk: Cell<usize>,
}

impl Pages {
    fn new(cap: usize) -> Pages {
        Pages {
            records: RefCell::new(Vec::new()),
            cap,
            calls: RefCell::new(0),
            rotate: Cell::new(false),
            sifted: Cell::new(0),
            also_known: RefCell::new(Vec::new()),
            stream: Cell::new(false),
            streamed: Cell::new(0),
            cut_stream: Cell::new(None),
            stream_chunk: Cell::new(64 << 10),
        }
    }

    /// `n` alerts `a00`, `a01`, … one second apart from 10:00:00, served
    /// in pages of `cap`.
    fn one_a_second(cap: usize, n: usize) -> Pages {
        let src = Pages::new(cap);
        for i in 0..n {
            src.put(
                &format!("a{i:02}"),
                &format!("2026-12-02T10:00:{i:02}Z"),
                "v1",
            );
        }
        src
    }

    fn put(&self, id: &str, t: &str, body: &str) {
        let mut r = self.records.borrow_mut();
        r.retain(|(i, _, _)| i != id);
        r.push((id.to_string(), time::parse(t).unwrap(), body.to_string()));
    }
}

impl PageSource for Pages {
    async fn fetch(&self, req: &PageRequest) -> Result<Fetched, ApiError> {
        *self.calls.borrow_mut() += 1;
        let PageRequest::Query(q) = req else {
            panic!("no nextLink here")
        };
        let from = q
            .filter
            .as_deref()
            .map(|f| time::parse(f.rsplit(' ').next().unwrap()).unwrap());
        let mut rows: Vec<_> = self
            .records
            .borrow()
            .iter()
            .filter(|(_, t, _)| from.is_none_or(|f| *t >= f))
            .cloned()
            .collect();
        rows.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        let records = rows
            .into_iter()
            .skip(q.skip as usize)
            .take((q.top as usize).min(self.cap))
            .map(|(id, t, body)| {
                let field = q.endpoint.time_field().unwrap_or("x");
                format!(
                    r#"{{"id":"{id}","{field}":"{}","body":"{body}"}}"#,
                    time::odata(t)
                )
            })
            .collect::<Vec<_>>();
        let mut records = records;
        if self.rotate.get() && !records.is_empty() {
            records.rotate_right(1);
        }
        Ok(Fetched::from_records(q.endpoint, records))
    }

    async fn fetch_sifting(&self, req: &PageRequest, known: &Known) -> Result<Fetched, ApiError> {
        self.sifted.set(self.sifted.get() + 1);
        let whole = self.fetch(req).await?;
        let endpoint = whole.endpoint();
        let page = whole.check().unwrap();
        let also = self.also_known.borrow();
        let known = Known::new(
            page.records()
                .map(|r| xxhash_rust::xxh3::xxh3_128(r.as_bytes()))
                .filter(|fp| known.contains(*fp) || also.contains(fp)),
        );
        // The page's body again, sifted in chunks as the client would.
        let body = format!(
            "{{\"value\":[{}]}}",
            page.records().collect::<Vec<_>>().join(",")
        );
        let mut sifter = crate::api::sift::Sifter::new(endpoint, &known, body.len());
        for chunk in body.as_bytes().chunks(100) {
            sifter.push(chunk).unwrap();
        }
        let base = url::Url::parse("http://localhost").unwrap();
        let (page, records) = sifter.finish(&base).unwrap();
        Ok(Fetched::sifted(endpoint, page, records, base))
    }

    async fn open<'k>(
        &self,
        req: &PageRequest,
        known: &'k Known,
        when: StreamWhen,
    ) -> Result<Opened<'k>, ApiError> {
        // Pages come with a declared length: only `Large` streams them.
        if !self.stream.get() || when == StreamWhen::Unsized {
            return if known.is_empty() {
                self.fetch(req).await
            } else {
                self.fetch_sifting(req, known).await
            }
            .map(Opened::Whole);
        }
        self.streamed.set(self.streamed.get() + 1);
        let whole = self.fetch(req).await?;
        let endpoint = whole.endpoint();
        let page = whole.check().unwrap();
        let mut body = format!(
            "{{\"value\":[{}]}}",
            page.records().collect::<Vec<_>>().join(",")
        )
        .into_bytes();
        let declared = body.len() as u64;
        if let Some(at) = self.cut_stream.take() {
            let at = match at {
                ..0 => body.len() - at.unsigned_abs(),
                _ => at.unsigned_abs(),
            };
            body.truncate(at);
        }
        let base = url::Url::parse("http://localhost").unwrap();
        Ok(Opened::Stream(Box::new(crate::api::BodyStream::from_body(
            endpoint,
            body,
            declared,
            self.stream_chunk.get(),
            known,
            base,
        ))))
    }
}

async fn run(
    source: &Pages,
    prior: &EndpointState,
    endpoint: Endpoint,
) -> (EndpointOutcome, Vec<String>) {
    run_with(source, prior, endpoint, |_| {}).await
}

async fn run_with(
    source: &Pages,
    prior: &EndpointState,
    endpoint: Endpoint,
    options: impl FnOnce(&mut Options),
) -> (EndpointOutcome, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let (sink, _) = Sink::open_file(&path, None).unwrap();
    let mut writer = Writer::new(sink);
    let mut opts = Options::new(time::parse("2026-11-01T00:00:00Z").unwrap());
    opts.top = 10_000;
    options(&mut opts);
    let out = pull_endpoint(source, endpoint, prior, &opts, "t", &mut writer, |_| {})
        .await
        .unwrap();
    writer.finish().await.unwrap().commit().unwrap();
    let lines = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{}:{}",
                v["data"]["id"].as_str().unwrap(),
                v["data"]["body"].as_str().unwrap()
            )
        })
        .collect();
    (out, lines)
}

#[tokio::test(flavor = "current_thread")]
async fn thirty_ties_behind_a_capped_server_are_written_once() {
    let src = Pages::new(10);
    for i in 0..30 {
        src.put(&format!("a{i:02}"), "2026-12-02T10:00:00.5Z", "v1");
    }
    let (first, lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    assert_eq!(lines.len(), 30);
    assert_eq!(first.state.page_cap, Some(10));
    // Nothing changed: nothing written, and the pages of 10 are still walked.
    let (second, lines) = run(&src, &first.state, Endpoint::Alerts).await;
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(second.read, 30);
    // One update and one late arrival inside the lookback window.
    src.put("a05", "2026-12-02T10:01:00Z", "v2");
    src.put("late", "2026-12-02T09:50:00Z", "v1");
    let (third, lines) = run(&src, &second.state, Endpoint::Alerts).await;
    assert_eq!(lines, vec!["late:v1", "a05:v2"]);
    assert_eq!(
        third.state.cursor.as_deref(),
        Some("2026-12-02T10:01:00.0000000Z")
    );
    // The memory is bounded by the window: everything here is inside it.
    assert_eq!(third.state.seen.len(), 31);
}

#[tokio::test(flavor = "current_thread")]
async fn memory_is_pruned_to_the_lookback_window() {
    let src = Pages::new(10_000);
    for i in 0..50 {
        src.put(
            &format!("a{i}"),
            &format!("2026-12-02T{:02}:00:00Z", i % 24),
            "v1",
        );
    }
    let (out, lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    assert_eq!(lines.len(), 50);
    // A short page that held new records is followed by one more (empty)
    // call, in case the server caps pages.
    assert_eq!(out.pages, 2);
    // Only the records within 15 minutes of the newest (23:00) are remembered.
    assert_eq!(out.state.seen.len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn recommendations_write_new_and_changed_and_forget_removed() {
    let src = Pages::new(10_000);
    src.put("r1", "2026-12-01T00:00:00Z", "5 exposed");
    src.put("r2", "2026-12-01T00:00:00Z", "1 exposed");
    let (first, lines) = run(&src, &EndpointState::default(), Endpoint::Recommendations).await;
    assert_eq!(lines.len(), 2);
    src.put("r1", "2026-12-01T00:00:00Z", "6 exposed");
    src.records.borrow_mut().retain(|r| r.0 != "r2");
    let (second, lines) = run(&src, &first.state, Endpoint::Recommendations).await;
    assert_eq!(lines, vec!["r1:6 exposed"]);
    assert_eq!(second.state.seen.len(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn asking_ahead_adds_no_call_when_pages_are_sorted() {
    // Pages taken in on the pull's task (small), and on a thread while the
    // guessed next one is fetched (as large ones are).
    for small_page in [SMALL_BODY, 0] {
        let src = Pages::one_a_second(10, 25);
        let small = |o: &mut Options| o.small_page = small_page;
        let (first, lines) =
            run_with(&src, &EndpointState::default(), Endpoint::Alerts, small).await;
        assert_eq!(lines.len(), 25);
        // Pages of 10, 10 and 5, then the one more call a short page with news
        // gets: the minimum, though each next page was asked for ahead.
        assert_eq!((*src.calls.borrow(), first.pages), (4, 4));
        // Resuming with nothing new re-reads the lookback window (all 25, in the
        // learned pages of 10) and asks nothing ahead: one call per page.
        *src.calls.borrow_mut() = 0;
        let (second, lines) = run_with(&src, &first.state, Endpoint::Alerts, small).await;
        assert!(lines.is_empty());
        assert_eq!((*src.calls.borrow(), second.pages), (3, 3));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_page_that_leads_elsewhere_than_its_end_drops_the_request_made_ahead() {
    let src = Pages::one_a_second(10, 25);
    src.rotate.set(true);
    // Pages taken in on a thread while the guessed next one is fetched (as
    // large ones are).
    let (out, lines) = run_with(&src, &EndpointState::default(), Endpoint::Alerts, |o| {
        o.small_page = 0
    })
    .await;
    // Every record once, whatever was asked ahead.
    let mut ids: Vec<&str> = lines.iter().map(|l| l.split(':').next().unwrap()).collect();
    ids.sort_unstable();
    let want: Vec<String> = (0..25).map(|i| format!("a{i:02}")).collect();
    assert_eq!(ids, want);
    assert_eq!(
        out.state.cursor.as_deref(),
        Some("2026-12-02T10:00:24.0000000Z")
    );
    // The unsorted pages send the walk to $skip paging; each guess made from
    // a page's sorted-looking end was a request too many, and only that.
    assert!(
        *src.calls.borrow() > out.pages,
        "{} calls",
        src.calls.borrow()
    );
    assert!(
        *src.calls.borrow() <= 2 * out.pages,
        "{} calls",
        src.calls.borrow()
    );
    // Small pages are taken in before a guess is sent: a wrong one never is.
    *src.calls.borrow_mut() = 0;
    let (out, lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    assert_eq!(lines.len(), 25);
    assert_eq!(*src.calls.borrow(), out.pages);
}

#[tokio::test(flavor = "current_thread")]
async fn a_sifted_page_writes_what_a_whole_one_would() {
    let src = Pages::one_a_second(10_000, 40);
    let (first, lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    assert_eq!(lines.len(), 40);
    assert_eq!(
        src.sifted.get(),
        0,
        "nothing to sift against on a first pull"
    );
    // Resuming: the window is read again, sifted against what was written.
    src.put("a07", "2026-12-02T10:00:50Z", "v2");
    src.put("late", "2026-12-02T10:00:03Z", "v1");
    let (second, lines) = run(&src, &first.state, Endpoint::Alerts).await;
    assert_eq!(lines, vec!["late:v1", "a07:v2"]);
    assert_eq!(second.read, 41);
    assert!(src.sifted.get() >= 1);
    // Nothing new: nothing written, and the facts of every record count.
    let (third, lines) = run(&src, &second.state, Endpoint::Alerts).await;
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!((third.read, third.pages), (41, 1));
    assert_eq!(third.state.cursor, second.state.cursor);
}

#[tokio::test(flavor = "current_thread")]
async fn a_record_dropped_that_the_pull_lacks_is_fetched_again_whole() {
    let src = Pages::one_a_second(10_000, 20);
    let (first, _) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    // A new version the sifter wrongly takes for known.
    src.put("a03", "2026-12-02T10:00:30Z", "v2");
    let stale = r#"{"id":"a03","lastUpdateTime":"2026-12-02T10:00:30.0000000Z","body":"v2"}"#;
    src.also_known
        .borrow_mut()
        .push(xxhash_rust::xxh3::xxh3_128(stale.as_bytes()));
    *src.calls.borrow_mut() = 0;
    let (second, lines) = run(&src, &first.state, Endpoint::Alerts).await;
    assert_eq!(lines, vec!["a03:v2"]);
    assert_eq!(second.read, 20);
    // The sifted fetch, then the page again, whole, then the walk's end:
    // one call more than without the stale fingerprint.
    assert_eq!(src.sifted.get(), 1);
    assert_eq!(*src.calls.borrow(), 3);
    src.put("a04", "2026-12-02T10:00:31Z", "v2");
    *src.calls.borrow_mut() = 0;
    let (_, lines) = run(&src, &second.state, Endpoint::Alerts).await;
    assert_eq!(lines, vec!["a04:v2"]);
    assert_eq!((src.sifted.get(), *src.calls.borrow()), (2, 2));
}

/// `n` alerts of about a kilobyte each, a second apart, served in pages of
/// `cap`: a first page of several megabytes, handed over in several parts
/// when streamed.
fn large_alerts(cap: usize, n: usize) -> Pages {
    let src = Pages::new(cap);
    for i in 0..n {
        src.put(
            &format!("a{i:04}"),
            &format!(
                "2026-12-02T{:02}:{:02}:{:02}Z",
                i / 3600,
                i / 60 % 60,
                i % 60
            ),
            &format!("v1 {}", "x".repeat(1_000 + i % 7)),
        );
    }
    src
}

#[tokio::test(flavor = "current_thread")]
async fn a_streamed_first_page_is_written_as_a_whole_one_would_be() {
    let src = large_alerts(10_000, 3_000);
    let (whole, whole_lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    assert_eq!(src.streamed.get(), 0);
    src.stream.set(true);
    let (streamed, lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    assert_eq!(src.streamed.get(), 1, "only the first page is streamed");
    assert_eq!(lines.len(), 3_000);
    assert_eq!(lines, whole_lines);
    assert_eq!(streamed.state, whole.state);
    assert_eq!((streamed.read, streamed.written), (3_000, 3_000));
    // Resumed, streamed again against its memory: only the new version.
    src.put("a0100", "2026-12-02T00:50:00Z", "v2");
    let (_, lines) = run(&src, &streamed.state, Endpoint::Alerts).await;
    assert_eq!(lines, vec!["a0100:v2"]);
    assert_eq!(src.streamed.get(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_streamed_page_cut_off_keeps_what_it_wrote_and_is_fetched_again_whole() {
    let src = large_alerts(10_000, 3_000);
    let (_, whole_lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    let calls = *src.calls.borrow();
    src.stream.set(true);
    // Cut off after two and a half megabytes: two parts were written, and
    // stay written; fetched again whole, the page writes only the rest.
    src.cut_stream.set(Some(5 << 19));
    let (out, lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    assert_eq!(src.cut_stream.get(), None, "the stream was cut");
    assert_eq!(lines, whole_lines, "every record once, in order");
    assert_eq!(out.written, 3_000);
    assert_eq!(*src.calls.borrow() - calls, calls + 1, "one call more");
}

#[tokio::test(flavor = "current_thread")]
async fn a_short_page_written_whole_as_it_streamed_and_then_cut_off_still_leads_on() {
    // The server caps pages at 1,100, which the pull (asking for 10,000)
    // does not know: the first page is short, and after a short page the
    // walk goes on only if it had something new. Cut off at its last byte,
    // after every record in it was written as it arrived, the page fetched
    // again has nothing new in it; the walk must still go on.
    let src = large_alerts(1_100, 3_300);
    let (_, whole_lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    src.stream.set(true);
    src.stream_chunk.set(4 << 20);
    src.cut_stream.set(Some(-1));
    let (out, lines) = run(&src, &EndpointState::default(), Endpoint::Alerts).await;
    assert_eq!(src.cut_stream.get(), None, "the stream was cut");
    assert_eq!(lines.len(), 3_300);
    assert_eq!(lines, whole_lines, "every record once, in order");
    assert_eq!((out.read, out.written), (3_300, 3_300));
}
