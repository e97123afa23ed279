//! `defender-ingest test` as a user runs it: the binary, a profile written by
//! hand, the sandbox tenant with faults, and the contract's `--json` object.

use std::fs;
use std::time::Duration;

use defender_ingest::sandbox::{Sandbox, SandboxConfig};

use crate::common::Env;

fn profile_toml(sb: &Sandbox, authorized_at: &str) -> String {
    let cfg = sb.config();
    format!(
        r#"schema_version = 1
name = "default"
enabled = false
authorized_at = "{authorized_at}"

[connection]
tenant_id = "{tenant}"
client_id = "{client}"
cloud = "global"
flow = "client-secret"
login_url = "{url}"
api_url = "{url}"
scope = "https://api.securitycenter.microsoft.com/.default"

[endpoints.alerts]
cursor = "2026-12-01T09:59:59.1234567Z"
last_pull = "2026-12-01T10:00:01Z"
"#,
        tenant = cfg.tenant_id,
        client = cfg.client_id,
        url = sb.url(),
    )
}

const LONG_AGO: &str = "2026-01-01T00:00:00Z";

fn seeded(sb: &Sandbox, authorized_at: &str) -> Env {
    let env = Env::new();
    fs::create_dir_all(&env.state_dir).unwrap();
    fs::write(env.profile_file("default"), profile_toml(sb, authorized_at)).unwrap();
    env
}

struct Run {
    code: i32,
    json: serde_json::Value,
    stderr: String,
}

fn test_json(env: &Env, sb: &Sandbox) -> Run {
    let out = env
        .cmd()
        .args(["test", "--json"])
        .env("DEFENDER_INGEST_CLIENT_SECRET", &sb.config().client_secret)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stderr}"));
    Run {
        code: out.status.code().unwrap(),
        json,
        stderr,
    }
}

fn statuses(j: &serde_json::Value) -> Vec<String> {
    ["alerts", "investigations", "recommendations"]
        .iter()
        .map(|e| j["endpoints"][e]["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn ok_on_a_disabled_profile_through_throttling_resets_and_cut_off_bodies() {
    let sb = Sandbox::spawn(SandboxConfig::default()).unwrap();
    let env = seeded(&sb, LONG_AGO);
    let before = fs::read(env.profile_file("default")).unwrap();
    let f = sb.faults();
    f.throttle_next(1, 1);
    f.reset_next(1);
    f.truncate_next(1);
    let run = test_json(&env, &sb);
    assert_eq!(run.code, 0, "{}\n{}", run.json, run.stderr);
    assert_eq!(run.json["profile"], "default");
    assert_eq!(run.json["ok"], true);
    assert_eq!(statuses(&run.json), ["ok", "ok", "ok"]);
    for e in ["alerts", "investigations", "recommendations"] {
        assert_eq!(run.json["endpoints"][e]["sampled"], 10, "{e}");
        assert!(run.json["endpoints"][e]["detail"].is_string());
    }
    // Nothing moved: the state file is byte-identical.
    assert_eq!(fs::read(env.profile_file("default")).unwrap(), before);
    // No API request arrived before the Retry-After passed, and the sample asked
    // for the newest records.
    let reqs: Vec<_> = sb
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .collect();
    for pair in reqs.windows(2) {
        if pair[0].status == 429 {
            assert!(pair[1].at.duration_since(pair[0].at) >= Duration::from_secs(1));
        }
    }
    let alerts = reqs.iter().find(|r| r.path == "/api/alerts").unwrap();
    assert!(
        alerts
            .query
            .contains(&("$orderby".into(), "lastUpdateTime desc".into())),
        "{:?}",
        alerts.query
    );
    assert!(alerts.query.contains(&("$top".into(), "10".into())));
}

#[test]
fn empty_tenant_is_ok_and_a_fresh_one_mentions_the_24_hours() {
    let sb = Sandbox::spawn(SandboxConfig {
        alerts: 0,
        investigations: 0,
        recommendations: 0,
        ..SandboxConfig::default()
    })
    .unwrap();
    let env = seeded(&sb, LONG_AGO);
    let run = test_json(&env, &sb);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json["ok"], true);
    assert_eq!(statuses(&run.json), ["empty", "empty", "empty"]);
    assert!(!run.json.to_string().contains("24 hours"));

    let just_now = chrono::Utc::now().to_rfc3339();
    let fresh = seeded(&sb, &just_now);
    let run = test_json(&fresh, &sb);
    assert_eq!(run.code, 0);
    let detail = run.json["endpoints"]["alerts"]["detail"].as_str().unwrap();
    assert!(detail.contains("24 hours"), "{detail}");
}

#[test]
fn a_missing_permission_is_denied_with_exit_4_and_the_consent_url() {
    let sb = Sandbox::spawn(SandboxConfig::default()).unwrap();
    sb.faults()
        .remove_permission("SecurityRecommendation.Read.All");
    let env = seeded(&sb, LONG_AGO);
    let run = test_json(&env, &sb);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(run.json["ok"], false);
    assert_eq!(statuses(&run.json), ["ok", "ok", "denied"]);
    let detail = run.json["endpoints"]["recommendations"]["detail"]
        .as_str()
        .unwrap();
    let consent = format!(
        "{}/{}/adminconsent?client_id={}",
        sb.url(),
        sb.config().tenant_id,
        sb.config().client_id
    );
    assert!(
        detail.contains("SecurityRecommendation.Read.All"),
        "{detail}"
    );
    assert!(detail.contains(&consent), "{detail}");
    assert!(run.stderr.contains("SecurityRecommendation.Read.All"));
}

#[test]
fn without_credentials_it_is_not_authorized() {
    let sb = Sandbox::spawn(SandboxConfig::default()).unwrap();
    let env = seeded(&sb, LONG_AGO);
    let out = env.cmd().args(["test", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["ok"], false);
    assert_eq!(statuses(&j), ["error", "error", "error"]);
    assert!(j.to_string().contains("authorize"), "{j}");
    let api_calls = sb
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/"))
        .count();
    assert_eq!(api_calls, 0);
}

#[test]
fn an_api_that_stays_down_is_exit_5_and_the_table_goes_to_stderr() {
    let sb = Sandbox::spawn(SandboxConfig::default()).unwrap();
    sb.faults().api_down(true);
    let env = seeded(&sb, LONG_AGO);
    let out = env
        .cmd()
        .arg("test")
        .env("DEFENDER_INGEST_CLIENT_SECRET", &sb.config().client_secret)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(out.stdout.is_empty(), "stdout is for data only");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alerts") && err.contains("error"), "{err}");
    assert!(!err.contains(&sb.config().client_secret));
}
