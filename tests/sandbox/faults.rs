//! What the sandbox does to make a client's life hard, on request or by
//! design: failing token endpoint, API faults, throttling at the documented
//! rate, a skewed clock, late alerts and records that change without a
//! timestamp.

use std::time::Duration;

use defender_ingest::sandbox::SandboxConfig;
use serde_json::Value;

use super::{api, api_error, app_token, client, post_token, sandbox, sandbox_with, ts, values};

#[tokio::test]
async fn token_endpoint_faults() {
    let sb = sandbox().await;
    sb.faults().token_fail_next(1, 503);
    let cfg = sb.config().clone();
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", cfg.client_id.as_str()),
        ("client_secret", cfg.client_secret.as_str()),
        ("scope", "https://api.securitycenter.microsoft.com/.default"),
    ];
    let (status, body) = post_token(&sb, &form).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_eq!(post_token(&sb, &form).await.0, 200);
    let grants: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/token"))
        .map(|r| (r.status, r.grant_type))
        .collect();
    assert_eq!(
        grants,
        vec![
            (503, Some("client_credentials".to_string())),
            (200, Some("client_credentials".to_string()))
        ]
    );
}

#[tokio::test]
async fn api_faults() {
    let sb = sandbox().await;
    let t = app_token(&sb).await;
    let f = sb.faults();

    f.throttle_next(2, 7);
    for _ in 0..2 {
        let r = api(&sb, &t, "/api/alerts", &[]).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
        assert_eq!(api_error(&r.json().await.unwrap()), "TooManyRequests");
    }
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 200);

    f.fail_next(2, 503);
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 503);
    assert_eq!(api(&sb, &t, "/api/investigations", &[]).await.status(), 503);
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 200);

    f.reset_next(1);
    let err = client()
        .get(format!("{}/api/alerts", sb.url()))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 200);

    f.truncate_next(1);
    let r = api(&sb, &t, "/api/alerts", &[]).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body is cut off");
    assert_eq!(api(&sb, &t, "/api/alerts", &[]).await.status(), 200);

    f.slow_next(1, Duration::from_millis(700));
    let started = std::time::Instant::now();
    assert_eq!(
        api(&sb, &t, "/api/alerts", &[("$top", "1")]).await.status(),
        200
    );
    assert!(started.elapsed() >= Duration::from_millis(700));

    f.page_cap(Some(15));
    let r: Value = api(&sb, &t, "/api/alerts", &[("$top", "100")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["value"].as_array().unwrap().len(), 15);
    assert!(r.get("@odata.nextLink").is_none());
    f.page_cap(None);

    f.next_link(true);
    let r: Value = api(&sb, &t, "/api/alerts", &[("$top", "150")])
        .await
        .json()
        .await
        .unwrap();
    let next = r["@odata.nextLink"].as_str().unwrap().to_string();
    let r2: Value = client()
        .get(&next)
        .bearer_auth(&t)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r2["value"].as_array().unwrap().len(), 50);
    assert!(r2.get("@odata.nextLink").is_none());
    f.next_link(false);

    f.api_down(true);
    assert_eq!(
        api(&sb, &t, "/api/recommendations", &[]).await.status(),
        503
    );
    f.api_down(false);

    let records = sb.requests();
    assert!(
        records.iter().any(|r| r.status == 0),
        "the reset is recorded"
    );
    assert!(
        records
            .iter()
            .any(|r| r.query.iter().any(|(k, v)| k == "$top" && v == "150"))
    );
}

#[tokio::test]
async fn throttles_at_the_documented_rate() {
    let sb = sandbox_with(SandboxConfig {
        rate_limit_per_minute: Some(5),
        ..SandboxConfig::default()
    })
    .await;
    let t = app_token(&sb).await;
    for _ in 0..5 {
        assert_eq!(
            api(&sb, &t, "/api/alerts", &[("$top", "1")]).await.status(),
            200
        );
    }
    let r = api(&sb, &t, "/api/alerts", &[("$top", "1")]).await;
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait));
    // per endpoint
    assert_eq!(
        api(&sb, &t, "/api/recommendations", &[]).await.status(),
        200
    );
    // Microsoft's 100/min by default
    assert_eq!(SandboxConfig::default().rate_limit_per_minute, Some(100));
}

#[tokio::test]
async fn clock_offset_and_late_alerts() {
    let sb = sandbox_with(SandboxConfig {
        clock_offset: chrono::Duration::hours(-3),
        ..SandboxConfig::default()
    })
    .await;
    let skew = chrono::Utc::now() - sb.tenant().now();
    assert!((skew - chrono::Duration::hours(3)).num_seconds().abs() <= 1);
    let t = app_token(&sb).await;
    let all = values(&sb, &t, "/api/alerts", &[]).await;
    let newest = all.iter().map(|a| ts(a, "lastUpdateTime")).max().unwrap();
    assert!(
        newest <= sb.tenant().now(),
        "nothing after the server's now"
    );

    let before = sb.tenant().now();
    sb.tenant().add_late_alert(Duration::from_millis(1500));
    sb.tenant().add_alerts(2);
    sb.tenant().update_alerts(3);
    let q = format!(
        "lastUpdateTime ge {}",
        defender_ingest::time::odata(before - chrono::Duration::seconds(1))
    );
    let first = values(&sb, &t, "/api/alerts", &[("$filter", &q)]).await;
    assert!((2..=5).contains(&first.len()), "{}", first.len());
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let later = values(&sb, &t, "/api/alerts", &[("$filter", &q)]).await;
    assert_eq!(later.len(), first.len() + 1, "the late alert shows up");
    let late = later
        .iter()
        .find(|a| !first.iter().any(|f| f["id"] == a["id"]))
        .unwrap();
    assert!(ts(late, "lastUpdateTime") < sb.tenant().now() - chrono::Duration::seconds(1));

    // Investigations change state with no timestamp to show it.
    let before: Vec<Value> = sb.tenant().investigations();
    sb.tenant().progress_investigations(5);
    let after = sb.tenant().investigations();
    let changed: Vec<_> = before.iter().zip(&after).filter(|(a, b)| a != b).collect();
    assert!(!changed.is_empty());
    for (a, b) in changed {
        assert_ne!(a["state"], b["state"]);
        assert_eq!(a["startTime"], b["startTime"]);
    }
    let recs = sb.tenant().recommendations();
    sb.tenant().change_recommendations(5);
    assert_ne!(recs, sb.tenant().recommendations());
}
