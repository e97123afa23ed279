//! `pull` end to end: the binary against the sandbox tenant over loopback, with
//! the tenant changing between pulls the way a real one does.

use std::time::Duration;

use defender_ingest::sandbox::SandboxConfig;
use defender_ingest::secrets::SecretStore;

use crate::common::connected::{Connected, assert_exactly_once, lines};

fn ok(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    stderr
}

#[test]
fn backfill_then_changes_are_written_exactly_once_and_a_quiet_pull_makes_3_calls() {
    let c = Connected::new(SandboxConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defender.jsonl");

    let before = c.api_calls();
    let stderr = ok(&c.pull_to(&file, &[]));
    assert!(stderr.is_empty(), "a successful pull is silent: {stderr}");
    // Each endpoint's page, and the empty one that ends its walk: the later
    // endpoints' first pages, asked for early, cost no call of their own.
    assert_eq!(c.api_calls() - before, 6);
    let first = lines(&file);
    assert_eq!(first.len(), c.truth().len());
    assert_exactly_once(&first, &c.truth());
    let tenant_id = &c.sb.config().tenant_id;
    for l in &first {
        assert_eq!(l["tenant_id"], *tenant_id);
        assert!(
            ["alert", "investigation", "recommendation"].contains(&l["kind"].as_str().unwrap())
        );
        assert!(defender_ingest::time::parse(l["fetched_at"].as_str().unwrap()).is_some());
    }
    let alert = first.iter().find(|l| l["kind"] == "alert").unwrap();
    assert!(
        alert["data"]["evidence"].is_array(),
        "alerts come with $expand=evidence"
    );

    // The tenant moves: new alerts, updated ones, investigations that change
    // state without a timestamp, recommendations whose counts change.
    let t = c.sb.tenant();
    t.add_alerts(7);
    t.update_alerts(4);
    t.progress_investigations(3);
    t.change_recommendations(2);
    ok(&c.pull_to(&file, &[]));
    let second = lines(&file);
    let new = &second[first.len()..];
    let count = |kind: &str| new.iter().filter(|l| l["kind"] == kind).count();
    assert_eq!(count("alert"), 11, "7 new + 4 updated");
    assert_eq!(count("investigation"), 3);
    assert_eq!(count("recommendation"), 2);
    assert_exactly_once(&second, &c.truth());

    // Nothing changed: nothing written, one call per endpoint.
    let before = c.api_calls();
    ok(&c.pull_to(&file, &[]));
    assert_eq!(lines(&file).len(), second.len());
    assert_eq!(c.api_calls() - before, 3);

    let status = c.status();
    for e in ["alerts", "investigations", "recommendations"] {
        assert!(status["endpoints"][e]["last_pull"].is_string(), "{status}");
    }
    assert!(status["endpoints"]["alerts"]["cursor"].is_string());
}

#[test]
fn stdout_carries_only_the_lines() {
    let c = Connected::new(SandboxConfig {
        alerts: 20,
        ..SandboxConfig::default()
    });
    let out = c.cmd().args(["pull", "--since", "60d"]).output().unwrap();
    ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let n = text
        .lines()
        .inspect(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["data"]["id"].is_string(), "{l}");
        })
        .count();
    assert_eq!(n, c.truth().len());
}

#[test]
fn a_disabled_profile_writes_nothing_and_calls_nothing() {
    let c = Connected::new(SandboxConfig::default());
    c.cmd().arg("disable").assert().success();
    let before = c.sb.requests().len();
    let out = c.cmd().args(["pull"]).output().unwrap();
    let stderr = ok(&out);
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("disabled"), "{stderr}");
    assert_eq!(c.sb.requests().len(), before, "no API or token call");
}

#[test]
fn thirty_alerts_on_one_timestamp_behind_a_capped_server() {
    let c = Connected::new(SandboxConfig {
        alerts: 5,
        ..SandboxConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let t = c.sb.tenant();
    let at = t.now() - chrono::Duration::minutes(1);
    t.add_alerts_at(30, at);
    c.sb.faults().page_cap(Some(10));
    ok(&c.pull_to(&file, &[]));
    assert_exactly_once(&lines(&file), &c.truth());
    // More on the same timestamp later, and an update: still once each.
    t.add_alerts_at(12, at);
    t.update_alerts(2);
    ok(&c.pull_to(&file, &[]));
    ok(&c.pull_to(&file, &[]));
    assert_exactly_once(&lines(&file), &c.truth());
}

#[test]
fn late_alerts_and_a_server_clock_three_hours_behind() {
    let c = Connected::new(SandboxConfig {
        clock_offset: chrono::Duration::hours(-3),
        alerts: 30,
        ..SandboxConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    ok(&c.pull_to(&file, &[]));
    let t = c.sb.tenant();
    t.add_late_alert(Duration::from_secs(2));
    t.add_alerts(3);
    ok(&c.pull_to(&file, &[]));
    let before_late = lines(&file).len();
    std::thread::sleep(Duration::from_millis(2200));
    ok(&c.pull_to(&file, &[]));
    let all = lines(&file);
    assert_eq!(
        all.len(),
        before_late + 1,
        "the late alert arrives once it is visible"
    );
    assert_exactly_once(&all, &c.truth());
    // The cursor is the server's time, not the host's.
    let cursor = c.status()["endpoints"]["alerts"]["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let cursor = defender_ingest::time::parse(&cursor).unwrap();
    assert!(cursor <= t.now() && cursor < chrono::Utc::now() - chrono::Duration::hours(2));
}

#[test]
fn two_pulls_at_once_the_second_exits_6() {
    let c = Connected::new(SandboxConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    c.sb.faults().slow_next(1, Duration::from_secs(3));
    let mut slow = std::process::Command::new(assert_cmd::cargo::cargo_bin("defender-ingest"));
    slow.env_clear()
        .envs(
            c.cmd()
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .args(["pull", "--since", "60d", "--output"])
        .arg(&file);
    let mut child = slow.spawn().unwrap();
    // Wait until the first pull is inside the API (the slow request arrived).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.api_calls() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = c.pull_to(&file, &[]);
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("another `pull`"));
    assert!(child.wait().unwrap().success());
    assert_exactly_once(&lines(&file), &c.truth());
}

#[test]
fn the_api_down_for_good_exits_5_and_moves_nothing() {
    let c = Connected::new(SandboxConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    ok(&c.pull_to(&file, &[]));
    let before = c.status();
    let written = std::fs::read(&file).unwrap();
    c.sb.tenant().add_alerts(5);
    c.sb.faults().api_down(true);
    let out = c.pull_to(&file, &["--max-retries", "2"]);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.status(), before);
    assert_eq!(std::fs::read(&file).unwrap(), written);
    c.sb.faults().api_down(false);
    ok(&c.pull_to(&file, &[]));
    assert_exactly_once(&lines(&file), &c.truth());
}

#[test]
fn verbose_pull_prints_one_summary_line() {
    let c = Connected::new(SandboxConfig {
        alerts: 10,
        ..SandboxConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let out = c.pull_to(&dir.path().join("out.jsonl"), &["-v"]);
    let stderr = ok(&out);
    let summary: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("pulled "))
        .collect();
    assert_eq!(summary.len(), 1, "{stderr}");
    assert!(
        summary[0].contains("alerts 10 written") && summary[0].contains("API calls"),
        "{stderr}"
    );
}

/// With the keyring in play (`.ci/run`): the client secret is stored by
/// `authorize`, pulls work without the environment variable, and once the
/// keyring entry is gone a pull exits 3, says to authorize and writes nothing.
#[test]
fn after_the_keyring_is_emptied_pull_exits_3_and_says_to_authorize() {
    if std::env::var("DEFENDER_INGEST_KEYRING_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: needs DEFENDER_INGEST_KEYRING_TESTS=1 and a Secret Service");
        return;
    }
    let sb = defender_ingest::sandbox::Sandbox::spawn(SandboxConfig::default()).unwrap();
    let env = crate::common::Env::new();
    let cfg = sb.config();
    env.cmd()
        .args([
            "authorize",
            "--flow",
            "client-secret",
            "--client-secret-stdin",
            "--tenant",
        ])
        .args([
            &cfg.tenant_id,
            "--client-id",
            &cfg.client_id,
            "--login-url",
            &sb.url(),
            "--api-url",
            &sb.url(),
        ])
        .write_stdin(format!("{}\n", cfg.client_secret))
        .assert()
        .success();
    env.cmd().arg("enable").assert().success();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let pull = || env.pull_to(&file);
    ok(&pull());
    let written = std::fs::read(&file).unwrap();
    assert!(!written.is_empty());
    // Empty the keyring entry behind the tool's back.
    let toml = std::fs::read_to_string(env.profile_file("default")).unwrap();
    let key = toml
        .lines()
        .find_map(|l| l.strip_prefix("credential_key = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    defender_ingest::secrets::KeyringStore::new()
        .delete(&key)
        .unwrap();
    sb.tenant().add_alerts(3);
    let out = pull();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("authorize"));
    assert_eq!(std::fs::read(&file).unwrap(), written);
}

#[test]
fn a_large_window_read_again_is_sifted_as_it_arrives_and_written_exactly_once() {
    // Enough alerts with evidence that the window read again is a body of
    // over a megabyte, which the client sifts instead of holding whole (and,
    // the output being a file, streams: its new records are written as it
    // arrives).
    let c = Connected::new(SandboxConfig {
        alerts: 600,
        ..SandboxConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defender.jsonl");
    let window = ["--lookback", "90d", "-vv"];
    ok(&c.pull_to(&file, &window));
    let first = lines(&file).len();

    let t = c.sb.tenant();
    t.add_alerts(3);
    t.update_alerts(2);
    let stderr = ok(&c.pull_to(&file, &window));
    let sifted: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("/api/alerts: a body of") && l.contains("records kept"))
        .collect();
    assert_eq!(sifted.len(), 1, "{stderr}");
    assert!(
        sifted[0].contains("streamed, 5 of its 603 records kept"),
        "{}",
        sifted[0]
    );
    let all = lines(&file);
    assert_eq!(all.len() - first, 5);
    assert_exactly_once(&all, &c.truth());

    let stderr = ok(&c.pull_to(&file, &window));
    assert!(stderr.contains("0 of its 603 records kept"), "{stderr}");
    assert_eq!(lines(&file).len(), all.len());
}

#[test]
fn the_later_endpoints_first_pages_are_asked_for_while_alerts_are_pulled() {
    let c = Connected::new(SandboxConfig {
        alerts: 200,
        ..SandboxConfig::default()
    });
    // Four pages of alerts, each answered slowly.
    c.sb.faults().page_cap(Some(50));
    c.sb.faults().slow_next(6, Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defender.jsonl");
    ok(&c.pull_to(&file, &[]));
    assert_exactly_once(&lines(&file), &c.truth());
    let api: Vec<_> =
        c.sb.requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/"))
            .collect();
    let first = |path: &str| {
        api.iter()
            .filter(|r| r.path == path)
            .map(|r| r.at)
            .min()
            .unwrap()
    };
    let last_alerts = api
        .iter()
        .filter(|r| r.path == "/api/alerts")
        .map(|r| r.at)
        .max()
        .unwrap();
    let first_alerts = api.iter().find(|r| r.path == "/api/alerts").unwrap();
    for endpoint in ["/api/investigations", "/api/recommendations"] {
        // Asked for once the first alerts page was answered, long before
        // the alerts walk ended.
        assert!(first(endpoint) > first_alerts.answered, "{api:?}");
        assert!(first(endpoint) < last_alerts, "{endpoint}: {api:?}");
    }
}
