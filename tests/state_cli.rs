//! enable / disable / status against state files the tests write by hand.

use std::fs;

use crate::common::Env;

/// The shared sample profile, as the tests below write it by hand.
fn profile() -> String {
    crate::common::sample_profile("default", None)
}

fn seeded() -> Env {
    let env = Env::new();
    fs::create_dir_all(&env.state_dir).unwrap();
    fs::write(env.profile_file("default"), profile()).unwrap();
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
    let broken = profile().replace("enabled = false", "enabled = fals");
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
        profile().replace("name = \"default\"", "name = \"prod\""),
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

#[test]
fn status_json_has_the_contract_fields_and_no_secret() {
    let env = Env::new();
    env.seed_profile("prod", Some("cred-key-not-a-secret"));
    let out = env
        .cmd()
        .args(["-p", "prod", "status", "--json"])
        .env("DEFENDER_INGEST_CLIENT_SECRET", "s3cr3t-from-env")
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON object on one line");
    assert!(!text.contains("s3cr3t"));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["profile"], "prod");
    assert_eq!(v["tenant_id"], "contoso.onmicrosoft.com");
    assert_eq!(v["enabled"], false);
    // A browser profile is not authorized by a client secret in the env, and
    // an unreachable keyring means "not authorized", not a failure.
    assert_eq!(v["authorized"], false);
    for name in ["alerts", "investigations", "recommendations"] {
        let e = &v["endpoints"][name];
        assert!(
            e.get("cursor").is_some() && e.get("last_pull").is_some(),
            "{name}: {e}"
        );
    }
    assert_eq!(
        v["endpoints"]["alerts"]["last_pull"],
        "2026-12-03T10:00:01Z"
    );
    assert!(v["endpoints"]["investigations"]["cursor"].is_null());
}

#[cfg(unix)]
#[test]
fn state_files_are_0600_and_a_new_state_dir_0700() {
    use std::os::unix::fs::PermissionsExt;
    let env = seeded();
    let path = env.profile_file("default");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    env.cmd().arg("enable").assert().success();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600, "profile file");
    assert_eq!(
        mode(&env.state_dir.join("default.lock")),
        0o600,
        "lock file"
    );

    // A state dir the tool creates itself is private: `enable` on a missing
    // profile takes the state lock first, which creates the dir.
    let fresh = env.home().join("fresh/state");
    env.cmd()
        .args(["enable", "--state-dir"])
        .arg(&fresh)
        .assert()
        .code(3);
    assert_eq!(mode(&fresh), 0o700, "state dir");
}

#[test]
fn concurrent_enable_disable_from_many_processes_never_corrupts_the_file() {
    let env = seeded();
    let before = status(&env);
    let children: Vec<_> = (0..16)
        .map(|i| {
            let mut c = env.std_cmd();
            c.arg(if i % 2 == 0 { "enable" } else { "disable" })
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut after = status(&env);
    after["enabled"] = before["enabled"].clone();
    assert_eq!(after, before);
    let mut names: Vec<String> = fs::read_dir(&env.state_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["default.lock", "default.toml"],
        "no temp files left"
    );
}
