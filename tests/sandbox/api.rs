//! The sandbox's Defender API: bearer tokens and permissions, every documented
//! alert field (with Microsoft's mixed datetime precision), OData `$filter`,
//! `$orderby`, `$top` and `$skip` as the service applies them, and full pages
//! from a big tenant.

use std::time::Duration;

use defender_ingest::sandbox::SandboxConfig;

use super::{api, api_error, app_token, client, sandbox, sandbox_with, ts, user_tokens, values};

#[tokio::test]
async fn bearer_tokens_and_permissions() {
    let sb = sandbox().await;
    let r = client()
        .get(format!("{}/api/alerts", sb.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(api_error(&r.json().await.unwrap()), "Unauthorized");
    assert_eq!(
        api(&sb, "not.a.token", "/api/alerts", &[]).await.status(),
        401
    );

    let app = app_token(&sb).await;
    let user = user_tokens(&sb).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    for token in [&app, &user] {
        for path in ["/api/alerts", "/api/investigations", "/api/recommendations"] {
            assert_eq!(
                api(&sb, token, path, &[("$top", "1")]).await.status(),
                200,
                "{path}"
            );
        }
    }
    sb.faults().remove_permission("Alert.Read.All");
    for path in ["/api/alerts", "/api/investigations"] {
        let r = api(&sb, &app, path, &[]).await;
        assert_eq!(r.status(), 403);
        assert_eq!(api_error(&r.json().await.unwrap()), "Forbidden");
    }
    assert_eq!(
        api(&sb, &user, "/api/recommendations", &[]).await.status(),
        200
    );
    sb.faults().restore_permission("Alert.Read.All");
    assert_eq!(api(&sb, &app, "/api/alerts", &[]).await.status(), 200);

    sb.faults().expire_access_tokens();
    assert_eq!(api(&sb, &app, "/api/alerts", &[]).await.status(), 401);
    let fresh = app_token(&sb).await;
    assert_eq!(api(&sb, &fresh, "/api/alerts", &[]).await.status(), 200);

    let short = sandbox_with(SandboxConfig {
        access_token_lifetime: Duration::from_secs(1),
        ..SandboxConfig::default()
    })
    .await;
    let t = app_token(&short).await;
    assert_eq!(
        api(&short, &t, "/api/alerts", &[("$top", "1")])
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        api(&short, &t, "/api/alerts", &[("$top", "1")])
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn alerts_carry_every_documented_field_and_mixed_precision() {
    let sb = sandbox().await;
    let t = app_token(&sb).await;
    let all = values(&sb, &t, "/api/alerts", &[("$expand", "evidence")]).await;
    assert_eq!(all.len(), 200);
    for field in [
        "id",
        "incidentId",
        "investigationId",
        "assignedTo",
        "severity",
        "status",
        "classification",
        "determination",
        "investigationState",
        "detectionSource",
        "detectorId",
        "category",
        "threatFamilyName",
        "title",
        "description",
        "alertCreationTime",
        "firstEventTime",
        "lastEventTime",
        "lastUpdateTime",
        "resolvedTime",
        "machineId",
        "computerDnsName",
        "rbacGroupName",
        "aadTenantId",
        "threatName",
        "mitreTechniques",
        "relatedUser",
        "loggedOnUsers",
        "comments",
        "evidence",
    ] {
        assert!(all[0].get(field).is_some(), "{field}");
    }
    assert!(all[0]["id"].as_str().unwrap().starts_with("da"));
    assert!(!all[0]["evidence"].as_array().unwrap().is_empty());
    let fractions: std::collections::BTreeSet<usize> = all
        .iter()
        .map(|a| {
            let s = a["lastUpdateTime"].as_str().unwrap();
            s.split_once('.')
                .map_or(0, |(_, f)| f.trim_end_matches('Z').len())
        })
        .collect();
    assert_eq!(
        fractions,
        [0, 2, 7].into_iter().collect(),
        "mixed precision"
    );
    let statuses: std::collections::BTreeSet<&str> =
        all.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert!(statuses.len() >= 2, "{statuses:?}");
    let oldest = all
        .iter()
        .map(|a| ts(a, "alertCreationTime"))
        .min()
        .unwrap();
    assert!(sb.tenant().now() - oldest > chrono::Duration::days(20));
    // Without $expand the evidence is empty; the ground truth matches the API.
    let plain = values(&sb, &t, "/api/alerts", &[("$top", "5")]).await;
    assert_eq!(plain[0]["evidence"], serde_json::json!([]));
    assert_eq!(sb.tenant().alerts().len(), 200);

    let inv = values(&sb, &t, "/api/investigations", &[]).await;
    assert_eq!(inv.len(), 20);
    for f in [
        "id",
        "startTime",
        "endTime",
        "state",
        "cancelledBy",
        "statusDetails",
        "machineId",
        "computerDnsName",
        "triggeringAlertId",
    ] {
        assert!(inv[0].get(f).is_some(), "{f}");
    }
    let recs = values(&sb, &t, "/api/recommendations", &[]).await;
    assert_eq!(recs.len(), 40);
    for f in [
        "id",
        "productName",
        "recommendationName",
        "weaknesses",
        "vendor",
        "recommendedVersion",
        "recommendationCategory",
        "subCategory",
        "severityScore",
        "publicExploit",
        "activeAlert",
        "associatedThreats",
        "remediationType",
        "status",
        "configScoreImpact",
        "exposureImpact",
        "totalMachineCount",
        "exposedMachinesCount",
        "nonProductivityImpactedAssets",
        "relatedComponent",
    ] {
        assert!(recs[0].get(f).is_some(), "{f}");
    }
    assert!(
        recs.iter()
            .any(|r| r["id"] == "va-_-microsoft-_-windows_10")
    );
}

#[tokio::test]
async fn filter_orderby_top_skip_semantics() {
    let sb = sandbox().await;
    let t = app_token(&sb).await;
    let all = values(&sb, &t, "/api/alerts", &[]).await;
    let mut times: Vec<_> = all.iter().map(|a| ts(a, "lastUpdateTime")).collect();
    times.sort();
    let pivot = times[100];
    // Cursor written with 7 digits, 2 digits, none and no zone: compared as an instant.
    let expected = times.iter().filter(|t| **t >= pivot).count();
    let got = values(
        &sb,
        &t,
        "/api/alerts",
        &[(
            "$filter",
            &format!("lastUpdateTime ge {}", defender_ingest::time::odata(pivot)),
        )],
    )
    .await;
    assert_eq!(got.len(), expected);
    assert!(got.iter().all(|a| ts(a, "lastUpdateTime") >= pivot));
    let whole = pivot.format("%Y-%m-%dT%H:%M:%S").to_string();
    let got = values(
        &sb,
        &t,
        "/api/alerts",
        &[("$filter", &format!("lastUpdateTime gt {whole}"))],
    )
    .await;
    let floor = defender_ingest::time::parse(&whole).unwrap();
    assert_eq!(got.len(), times.iter().filter(|t| **t > floor).count());

    // $orderby asc with $top/$skip pages through everything in order, exactly once.
    let mut paged = Vec::new();
    for skip in (0..200).step_by(30) {
        let skip = skip.to_string();
        paged.extend(
            values(
                &sb,
                &t,
                "/api/alerts",
                &[
                    ("$orderby", "lastUpdateTime asc"),
                    ("$top", "30"),
                    ("$skip", &skip),
                ],
            )
            .await,
        );
    }
    assert_eq!(paged.len(), 200);
    assert!(
        paged
            .windows(2)
            .all(|w| ts(&w[0], "lastUpdateTime") <= ts(&w[1], "lastUpdateTime"))
    );
    let ids: std::collections::BTreeSet<_> = paged
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 200);
    let desc = values(
        &sb,
        &t,
        "/api/alerts",
        &[("$orderby", "alertCreationTime desc"), ("$top", "10")],
    )
    .await;
    assert!(
        desc.windows(2)
            .all(|w| ts(&w[0], "alertCreationTime") >= ts(&w[1], "alertCreationTime"))
    );

    // Ties: one exact lastUpdateTime shared by 7 alerts, ordered by id, stable across pages.
    let tie = sb.tenant().now() - chrono::Duration::hours(1);
    sb.tenant().add_alerts_at(7, tie);
    let q = format!("lastUpdateTime eq {}", defender_ingest::time::odata(tie));
    let tied = values(
        &sb,
        &t,
        "/api/alerts",
        &[("$filter", &q), ("$orderby", "lastUpdateTime")],
    )
    .await;
    assert_eq!(tied.len(), 7);
    let tied_ids: Vec<_> = tied
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = tied_ids.clone();
    sorted.sort();
    assert_eq!(tied_ids, sorted);
    let second = values(
        &sb,
        &t,
        "/api/alerts",
        &[
            ("$filter", &q),
            ("$orderby", "lastUpdateTime"),
            ("$top", "3"),
            ("$skip", "3"),
        ],
    )
    .await;
    assert_eq!(
        second
            .iter()
            .map(|a| a["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        tied_ids[3..6]
    );

    // Other filterable fields, and investigations by startTime.
    let new = values(
        &sb,
        &t,
        "/api/alerts",
        &[("$filter", "status eq 'New' and severity ne 'Informational'")],
    )
    .await;
    assert!(
        new.iter()
            .all(|a| a["status"] == "New" && a["severity"] != "Informational")
    );
    let inv = values(
        &sb,
        &t,
        "/api/investigations",
        &[("$orderby", "startTime desc")],
    )
    .await;
    assert!(
        inv.windows(2)
            .all(|w| ts(&w[0], "startTime") >= ts(&w[1], "startTime"))
    );

    // Errors: Microsoft's shape, 400 ODataError.
    for bad in [
        vec![("$top", "10001")],
        vec![("$top", "-1")],
        vec![("$filter", "lastUpdateTime gt")],
        vec![("$filter", "title eq 'x'")],
        vec![("$orderby", "lastUpdateTime sideways")],
        vec![("$expand", "machines")],
    ] {
        let r = api(&sb, &t, "/api/alerts", &bad).await;
        assert_eq!(r.status(), 400, "{bad:?}");
        assert_eq!(api_error(&r.json().await.unwrap()), "ODataError");
    }
    assert_eq!(
        values(&sb, &t, "/api/alerts", &[("$top", "10000")])
            .await
            .len(),
        207
    );
}

#[tokio::test]
async fn without_orderby_the_order_is_not_time() {
    let sb = sandbox().await;
    let t = app_token(&sb).await;
    let all = values(&sb, &t, "/api/alerts", &[]).await;
    let ascending = all
        .windows(2)
        .filter(|w| ts(&w[0], "lastUpdateTime") <= ts(&w[1], "lastUpdateTime"))
        .count();
    assert!(
        (50..150).contains(&ascending),
        "looks sorted: {ascending}/199"
    );
    // ... but it is stable, so $skip pages do not overlap.
    let again = values(&sb, &t, "/api/alerts", &[]).await;
    assert_eq!(all, again);
}

#[tokio::test]
async fn a_big_tenant_serves_a_full_page() {
    let sb = sandbox_with(SandboxConfig {
        alerts: 0,
        ..SandboxConfig::default()
    })
    .await;
    sb.tenant().bulk_alerts(30_000);
    let t = app_token(&sb).await;
    let page = values(
        &sb,
        &t,
        "/api/alerts",
        &[
            ("$orderby", "lastUpdateTime"),
            ("$top", "10000"),
            ("$expand", "evidence"),
        ],
    )
    .await;
    assert_eq!(page.len(), 10_000);
    assert!(
        page.windows(2)
            .all(|w| ts(&w[0], "lastUpdateTime") <= ts(&w[1], "lastUpdateTime"))
    );
}
