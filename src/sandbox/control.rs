//! The index page and `/_sandbox/...`: HTTP switches for people driving
//! `defender-ingest sandbox` from scripts (evolve the tenant, inject faults).
//!
//! `POST /_sandbox/tick`, `POST /_sandbox/alerts?add=N&update=N&late_secs=S`,
//! `POST /_sandbox/faults/{throttle?n=&retry_after=, fail?n=&status=, reset?n=,
//! truncate?n=, slow?n=&ms=, page_cap?n=, next_link?on=, expire_access_tokens,
//! revoke_refresh_tokens, remove_permission?name=, restore_permission?name=,
//! deny_consent?on=, api_down?on=, token_fail?n=&status=, clear}`.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::Shared;
use super::http::{self, Body};

pub(crate) fn index(shared: &Shared) -> Response<Body> {
    let c = &shared.cfg;
    let b = &shared.base_url;
    http::html(
        StatusCode::OK,
        format!(
            "<!doctype html><title>defender-ingest sandbox</title>\
             <h1>defender-ingest sandbox tenant</h1>\
             <p>A local Entra ID and Microsoft Defender for Endpoint API with synthetic data, for trying and testing defender-ingest.</p>\
             <ul><li>Tenant: {tid} ({dom})</li><li>Client id: {cid}</li>\
             <li>Sign-in: {b}/{tid}/oauth2/v2.0/authorize, /token, /devicecode</li>\
             <li>API: <code>{b}/api/alerts</code>, <code>{b}/api/investigations</code>, <code>{b}/api/recommendations</code></li>\
             <li>Device sign-in: <a href=\"/devicelogin\">{b}/devicelogin</a></li>\
             <li>Server time: {now}; alerts: {n}</li></ul>",
            tid = c.tenant_id,
            dom = c.tenant_domain,
            cid = c.client_id,
            now = shared.tenant.now_string(),
            n = shared.tenant.alert_count(),
        ),
    )
}

pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    if req.method() != Method::POST {
        return http::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &super::api::error_body("BadRequest", "control endpoints take POST"),
        );
    }
    let q = http::query_pairs(&req);
    let num = |k: &str, d: u64| {
        q.iter()
            .find(|(n, _)| n == k)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(d)
    };
    let text = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let on = || text("on").is_none_or(|v| v != "false" && v != "0");
    let f = &shared.faults;
    let t = &shared.tenant;
    let path = req
        .uri()
        .path()
        .trim_start_matches("/_sandbox/")
        .to_string();
    match path.as_str() {
        "tick" => t.tick(),
        "alerts" => {
            t.add_alerts(num("add", 0) as usize);
            t.update_alerts(num("update", 0) as usize);
            if let Some(s) = text("late_secs").and_then(|v| v.parse().ok()) {
                t.add_late_alert(Duration::from_secs(s));
            }
        }
        "faults/throttle" => f.throttle_next(num("n", 1) as u32, num("retry_after", 1)),
        "faults/fail" => f.fail_next(num("n", 1) as u32, num("status", 503) as u16),
        "faults/reset" => f.reset_next(num("n", 1) as u32),
        "faults/truncate" => f.truncate_next(num("n", 1) as u32),
        "faults/slow" => f.slow_next(num("n", 1) as u32, Duration::from_millis(num("ms", 5000))),
        "faults/page_cap" => f.page_cap(text("n").and_then(|v| v.parse().ok())),
        "faults/next_link" => f.next_link(on()),
        "faults/expire_access_tokens" => f.expire_access_tokens(),
        "faults/revoke_refresh_tokens" => f.revoke_refresh_tokens(),
        "faults/remove_permission" => f.remove_permission(&text("name").unwrap_or_default()),
        "faults/restore_permission" => f.restore_permission(&text("name").unwrap_or_default()),
        "faults/deny_consent" => f.deny_consent(on()),
        "faults/api_down" => f.api_down(on()),
        "faults/token_fail" => f.token_fail_next(num("n", 1) as u32, num("status", 503) as u16),
        "faults/clear" => f.clear(),
        _ => {
            return http::json(
                StatusCode::NOT_FOUND,
                &super::api::error_body("NotFound", &format!("no control `{path}`")),
            );
        }
    }
    http::json(
        StatusCode::OK,
        &json!({"ok": true, "alerts": t.alert_count(), "now": t.now_string()}),
    )
}
