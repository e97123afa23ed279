//! The page check on its own: how fast one page of 10,000 alerts with
//! evidence, as the sandbox serves it, is checked (our JSON scanner, the
//! record spans and their `id` and time, UTF-8), on one core. The pull
//! benchmark's CPU column is the whole job; this is its largest part.
//!
//!     cargo bench --bench check
//!
//! Prints the best of 20 runs. Not a test: nothing here asserts on time.

mod common;

use std::time::Instant;

use defender_ingest::api::sift::Known;
use defender_ingest::api::{BodyStream, Endpoint, Fetched};
use defender_ingest::sandbox::{Sandbox, SandboxConfig};

fn main() {
    let sb = Sandbox::spawn(SandboxConfig {
        alerts: 10_000,
        rate_limit_per_minute: None,
        ..SandboxConfig::default()
    })
    .expect("sandbox");
    let bearer = format!("Authorization: Bearer {}", common::access_token(&sb));
    let page_url = format!("{}/api/alerts?$top=10000&$expand=evidence", sb.url());
    let body = common::curl(&["-H", &bearer, &page_url]);
    let base = url::Url::parse(&sb.url()).unwrap();

    let mut best = f64::MAX;
    let mut records = 0;
    for _ in 0..20 {
        let fetched = Fetched::new(Endpoint::Alerts, body.clone(), base.clone());
        let started = Instant::now();
        let page = fetched.check().expect("a valid page");
        best = best.min(started.elapsed().as_secs_f64());
        records = page.len();
    }
    println!(
        "checked {records} alerts with evidence, {:.1} MB: best of 20 {:.1} ms, {:.2} GB/s",
        body.len() as f64 / 1e6,
        best * 1e3,
        body.len() as f64 / best / 1e9
    );

    // The same body streamed (sifted a window at a time as it arrives, in
    // 64 KiB chunks, as a first pull takes its first page in).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let known = Known::default();
    let mut best = f64::MAX;
    for _ in 0..20 {
        let mut stream = BodyStream::from_body(
            Endpoint::Alerts,
            body.clone(),
            body.len() as u64,
            64 << 10,
            &known,
            base.clone(),
        );
        let started = Instant::now();
        let mut n = 0;
        rt.block_on(async {
            loop {
                let part = stream.next().await.expect("a valid page");
                n += part.page.len();
                if part.last {
                    break;
                }
            }
        });
        best = best.min(started.elapsed().as_secs_f64());
        assert_eq!(n, records);
    }
    println!(
        "streamed the same page in 64 KiB chunks: best of 20 {:.1} ms, {:.2} GB/s",
        best * 1e3,
        body.len() as f64 / best / 1e9
    );
}
