//! The API client against the sandbox tenant over loopback: full pages, the
//! call budget, `Retry-After`, retries of resets / cut-off bodies / 5xx, and
//! every failure turned into the right typed error.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use defender_ingest::api::{
    ApiError, DefenderClient, Endpoint, Limits, MAX_TOP, PageRequest, Query, odata,
};
use defender_ingest::auth::Session;
use defender_ingest::exit::Exit;
use defender_ingest::sandbox::{Sandbox, SandboxConfig};
use url::Url;

const SCOPE: &str = "https://api.securitycenter.microsoft.com/.default";

/// A client-credentials token straight from the sandbox's token endpoint.
async fn token(sb: &Sandbox) -> String {
    let cfg = sb.config();
    let resp = reqwest::Client::new()
        .post(format!("{}/{}/oauth2/v2.0/token", sb.url(), cfg.tenant_id))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", cfg.client_id.as_str()),
            ("client_secret", cfg.client_secret.as_str()),
            ("scope", SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "token: {}", resp.status());
    let body: serde_json::Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// Fast retries, so fault tests take milliseconds of backoff.
fn quick() -> Limits {
    Limits {
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(200),
        ..Limits::default()
    }
}

async fn client_with(sb: &Sandbox, base: &str, limits: Limits) -> DefenderClient {
    let http = defender_ingest::net::client(&Default::default()).unwrap();
    let session = Arc::new(Session::with_token(token(sb).await));
    DefenderClient::new(http, Url::parse(base).unwrap(), session, limits)
}

async fn client(sb: &Sandbox, limits: Limits) -> DefenderClient {
    client_with(sb, &sb.url(), limits).await
}

fn query(endpoint: Endpoint, top: u32) -> PageRequest {
    PageRequest::Query(Query {
        endpoint,
        filter: None,
        orderby: endpoint.time_field().map(odata::asc),
        top,
        skip: 0,
    })
}

fn spawn(cfg: SandboxConfig) -> Sandbox {
    Sandbox::spawn(cfg).expect("sandbox starts")
}

fn api_requests(sb: &Sandbox) -> Vec<defender_ingest::sandbox::RequestRecord> {
    sb.requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .collect()
}

#[derive(serde::Deserialize)]
struct AlertKey {
    id: String,
    #[serde(rename = "lastUpdateTime")]
    last_update_time: String,
}

/// Keyset paging on lastUpdateTime with `$skip` only within the run of equal
/// timestamps at the page's end: 25,000 alerts in three full pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_thousand_alerts_come_down_in_three_full_pages() {
    let sb = spawn(SandboxConfig {
        alerts: 25_000,
        ..SandboxConfig::default()
    });
    let c = client(&sb, quick()).await;
    let mut ids = HashSet::new();
    let mut cursor: Option<(defender_ingest::time::Timestamp, u64)> = None;
    let mut sizes = Vec::new();
    loop {
        let filter = cursor.map(|(t, _)| odata::ge("lastUpdateTime", t));
        let skip = cursor.map_or(0, |(_, n)| n);
        let page = c
            .page(&PageRequest::Query(Query {
                endpoint: Endpoint::Alerts,
                filter,
                orderby: Some(odata::asc("lastUpdateTime")),
                top: MAX_TOP,
                skip,
            }))
            .await
            .unwrap();
        sizes.push(page.len());
        let keys: Vec<AlertKey> = page
            .records()
            .map(|r| serde_json::from_str(r).unwrap())
            .collect();
        for k in &keys {
            ids.insert(k.id.clone());
        }
        let Some(last) = keys.last() else { break };
        let last_t = defender_ingest::time::parse(&last.last_update_time).unwrap();
        let ties = keys
            .iter()
            .rev()
            .take_while(|k| defender_ingest::time::parse(&k.last_update_time) == Some(last_t))
            .count() as u64;
        cursor = Some(match cursor {
            Some((t, n)) if t == last_t => (t, n + ties),
            _ => (last_t, ties),
        });
        if (keys.len() as u32) < MAX_TOP {
            break;
        }
    }
    assert_eq!(sizes, vec![10_000, 10_000, 5_000]);
    assert_eq!(ids.len(), 25_000);
    assert_eq!(c.calls(), 3);
    let reqs = api_requests(&sb);
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert!(
            r.query.contains(&("$expand".into(), "evidence".into())),
            "{:?}",
            r.query
        );
        assert!(r.query.contains(&("$top".into(), "10000".into())));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_arrives_before_retry_after_has_passed() {
    let sb = spawn(SandboxConfig::default());
    let c = client(&sb, quick()).await;
    sb.faults().throttle_next(2, 1);
    let page = c.page(&query(Endpoint::Alerts, 50)).await.unwrap();
    assert_eq!(page.len(), 50);
    // The wait holds every endpoint back, not only the throttled one.
    c.page(&query(Endpoint::Recommendations, 5)).await.unwrap();
    let reqs = api_requests(&sb);
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![429, 429, 200, 200]
    );
    for pair in reqs.windows(2) {
        if pair[0].status == 429 {
            let gap = pair[1].at.duration_since(pair[0].at);
            assert!(gap >= Duration::from_secs(1), "only {gap:?} after a 429");
        }
    }
    assert_eq!(c.calls(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_cut_off_bodies_and_5xx_are_retried_to_a_whole_page() {
    let sb = spawn(SandboxConfig::default());
    let c = client(&sb, quick()).await;
    let clean = c.page(&query(Endpoint::Alerts, 100)).await.unwrap();
    let f = sb.faults();
    f.reset_next(1);
    f.truncate_next(1);
    f.fail_next(2, 503);
    let page = c.page(&query(Endpoint::Alerts, 100)).await.unwrap();
    let raw =
        |p: &defender_ingest::api::Page| p.records().map(|r| r.to_string()).collect::<Vec<_>>();
    assert_eq!(raw(&page), raw(&clean), "never a partial page");
    // reset, 503, 503, cut-off body, then the whole page.
    assert_eq!(c.calls(), 1 + 5);
    let statuses: Vec<u16> = api_requests(&sb).iter().map(|r| r.status).collect();
    assert_eq!(statuses[1..], [0, 503, 503, 200, 200], "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_times_out_and_is_retried() {
    let sb = spawn(SandboxConfig::default());
    let http = defender_ingest::net::client(&defender_ingest::net::HttpOptions {
        request_timeout: Duration::from_millis(700),
        ..Default::default()
    })
    .unwrap();
    let c = DefenderClient::new(
        http,
        Url::parse(&sb.url()).unwrap(),
        Arc::new(Session::with_token(token(&sb).await)),
        quick(),
    );
    sb.faults().slow_next(1, Duration::from_secs(3));
    let page = c.page(&query(Endpoint::Investigations, 5)).await.unwrap();
    assert_eq!(page.len(), 5);
    assert_eq!(c.calls(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_failure_is_unavailable_after_bounded_attempts() {
    let sb = spawn(SandboxConfig::default());
    let c = client(
        &sb,
        Limits {
            max_attempts: 3,
            ..quick()
        },
    )
    .await;
    sb.faults().fail_next(100, 502);
    let err = c.page(&query(Endpoint::Alerts, 10)).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Unavailable { attempts: 3, .. }),
        "{err}"
    );
    assert_eq!(err.exit(), Exit::Unavailable);
    assert_eq!(c.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_the_limit_fails_at_once_and_says_how_long() {
    let sb = spawn(SandboxConfig::default());
    let c = client(
        &sb,
        Limits {
            max_retry_time: Duration::from_secs(5),
            ..quick()
        },
    )
    .await;
    sb.faults().throttle_next(1, 600);
    let started = std::time::Instant::now();
    let err = c.page(&query(Endpoint::Alerts, 10)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    let msg = err.to_string();
    assert!(msg.contains("429") && msg.contains("600"), "{msg}");
    assert_eq!(err.exit(), Exit::Unavailable);
    assert_eq!(c.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_budget_is_not_overdrawn_and_the_deadline_ends_the_wait() {
    let sb = spawn(SandboxConfig::default());
    let c = client(
        &sb,
        Limits {
            per_minute: 2,
            ..quick()
        },
    )
    .await;
    c.set_deadline(tokio::time::Instant::now() + Duration::from_secs(2));
    c.page(&query(Endpoint::Alerts, 1)).await.unwrap();
    c.page(&query(Endpoint::Alerts, 1)).await.unwrap();
    let err = c.page(&query(Endpoint::Alerts, 1)).await.unwrap_err();
    assert!(err.to_string().contains("deadline"), "{err}");
    assert_eq!(err.exit(), Exit::Unavailable);
    assert_eq!(c.calls(), 2);
    assert_eq!(api_requests(&sb).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_names_the_permission() {
    let sb = spawn(SandboxConfig::default());
    sb.faults()
        .remove_permission("SecurityRecommendation.Read.All");
    let c = client(&sb, quick()).await;
    c.page(&query(Endpoint::Alerts, 1)).await.unwrap();
    let err = c
        .page(&query(Endpoint::Recommendations, 1))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("SecurityRecommendation.Read.All"),
        "{err}"
    );
    assert_eq!(err.exit(), Exit::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_token_that_cannot_be_refreshed_is_not_authorized() {
    let sb = spawn(SandboxConfig::default());
    let c = client(&sb, quick()).await;
    sb.faults().expire_access_tokens();
    let err = c.page(&query(Endpoint::Alerts, 1)).await.unwrap_err();
    assert_eq!(err.exit(), Exit::NotAuthorized, "{err}");
    assert_eq!(c.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_path_is_a_clear_404() {
    let sb = spawn(SandboxConfig::default());
    let c = client_with(&sb, &format!("{}/wrong/", sb.url()), quick()).await;
    let err = c.page(&query(Endpoint::Alerts, 1)).await.unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("API URL"), "{err}");
    assert_eq!(err.exit(), Exit::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_not_retried_and_says_what_to_do() {
    let sb = spawn(SandboxConfig {
        tls: true,
        ..SandboxConfig::default()
    });
    // Without the sandbox CA: refused, once, with the remedy.
    let http = defender_ingest::net::client(&Default::default()).unwrap();
    let c = DefenderClient::new(
        http,
        Url::parse(&sb.url()).unwrap(),
        Arc::new(Session::with_token("t")),
        quick(),
    );
    let err = c.page(&query(Endpoint::Alerts, 1)).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ApiError::Tls { .. }), "{msg}");
    assert!(msg.contains("localhost"), "{msg}");
    assert!(msg.contains("unknown issuer"), "{msg}");
    assert!(
        msg.contains("--ca-bundle") && msg.contains("SSL_CERT_FILE"),
        "{msg}"
    );
    assert_eq!(c.calls(), 1);
    assert_eq!(err.exit(), Exit::Unavailable);

    // With it: works.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sb.ca_pem().unwrap()).unwrap();
    let http = defender_ingest::net::client(
        &defender_ingest::net::HttpOptions::default().with_ca_bundle(ca),
    )
    .unwrap();
    let token = {
        let resp = http
            .post(format!(
                "{}/{}/oauth2/v2.0/token",
                sb.url(),
                sb.config().tenant_id
            ))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", sb.config().client_id.as_str()),
                ("client_secret", sb.config().client_secret.as_str()),
                ("scope", SCOPE),
            ])
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = resp.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    };
    let c = DefenderClient::new(
        http,
        Url::parse(&sb.url()).unwrap(),
        Arc::new(Session::with_token(token)),
        quick(),
    );
    assert_eq!(c.page(&query(Endpoint::Alerts, 3)).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_link_is_followed_on_the_same_host() {
    let sb = spawn(SandboxConfig::default());
    sb.faults().next_link(true);
    let c = client(&sb, quick()).await;
    let mut first = c.page(&query(Endpoint::Alerts, 150)).await.unwrap();
    let mut seen: HashSet<String> = first.records().map(|r| r.to_string()).collect();
    let mut next = first.next_link.take();
    while let Some(url) = next {
        let mut p = c
            .page(&PageRequest::Next {
                endpoint: Endpoint::Alerts,
                url,
            })
            .await
            .unwrap();
        seen.extend(p.records().map(|r| r.to_string()));
        next = p.next_link.take();
    }
    assert_eq!(seen.len(), sb.config().alerts);
    // A nextLink to another host is refused before any request.
    let before = c.calls();
    let err = c
        .page(&PageRequest::Next {
            endpoint: Endpoint::Alerts,
            url: Url::parse("https://evil.example.com/api/alerts?$skip=150").unwrap(),
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("evil.example.com"), "{err}");
    assert_eq!(c.calls(), before);
}
