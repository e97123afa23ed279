//! enable / disable / status against state files the tests write by hand.

use std::fs;

use crate::common::Env;

const PROFILE: &str = r#"schema_version = 1
name = "default"
enabled = false
authorized_at = "2026-12-03T10:00:00Z"

[connection]
tenant_id = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
cloud = "global"
flow = "browser"
login_url = "https://login.microsoftonline.com"
api_url = "https://api.securitycenter.microsoft.com"
scope = "https://api.securitycenter.microsoft.com/.default"

[endpoints.alerts]
cursor = "2026-12-03T09:59:59.1234567Z"
last_pull = "2026-12-03T10:00:01Z"
"#;

fn seeded() -> Env {
    let env = Env::new();
    fs::create_dir_all(&env.state_dir).unwrap();
    fs::write(env.profile_file("default"), PROFILE).unwrap();
    env
}

fn status(env: &Env) -> serde_json::Value {
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn enable_disable_round_trip_keeps_everything_else() {
    let env = seeded();
    let before = status(&env);
    assert_eq!(before["enabled"], false);
    env.cmd().arg("enable").assert().success();
    let on = status(&env);
    assert_eq!(on["enabled"], true);
    env.cmd().arg("disable").assert().success();
    let off = status(&env);
    assert_eq!(off, before);
    assert_eq!(
        off["endpoints"]["alerts"]["cursor"],
        "2026-12-03T09:59:59.1234567Z"
    );
    assert_eq!(off["tenant_id"], "contoso.onmicrosoft.com");
}

#[test]
fn corrupt_state_exits_1_names_the_file_and_is_untouched() {
    let env = seeded();
    let path = env.profile_file("default");
    let broken = PROFILE.replace("enabled = false", "enabled = fals");
    fs::write(&path, &broken).unwrap();
    for args in [&["enable"][..], &["disable"], &["status", "--json"]] {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&path.display().to_string()) && err.contains("line 3"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
        assert_eq!(fs::read_to_string(&path).unwrap(), broken);
    }
}

#[test]
fn missing_profile_says_to_authorize() {
    let env = Env::new();
    let out = env.cmd().args(["-p", "nope", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("authorize"));
}

#[test]
fn global_options_work_after_the_subcommand() {
    let env = seeded();
    let other = env.home().join("elsewhere");
    fs::create_dir_all(&other).unwrap();
    fs::write(
        other.join("prod.toml"),
        PROFILE.replace("name = \"default\"", "name = \"prod\""),
    )
    .unwrap();
    env.cmd()
        .args(["enable", "--profile", "prod", "--state-dir"])
        .arg(&other)
        .assert()
        .success();
    assert!(
        fs::read_to_string(other.join("prod.toml"))
            .unwrap()
            .contains("enabled = true")
    );
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    env.cmd().args(["pull", "--no-such-flag"]).assert().code(2);
    env.cmd().args(["-p", "../etc", "status"]).assert().code(2);
}
