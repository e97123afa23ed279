//! The OS keyring for real: the Secret Service `.ci/run` starts in a private
//! D-Bus session (gnome-keyring, unlocked).
//!
//! These tests run when `DEFENDER_INGEST_KEYRING_TESTS=1`, and then FAIL (never
//! skip) if the keyring cannot be reached. Without the variable they say so and
//! pass, so `cargo test` on a laptop never writes into the user's own keyring.
//! The one test that needs no keyring (a host without D-Bus) always runs.

use defender_ingest::secrets::{Credentials, KeyringStore, SERVICE, SecretStore};

use crate::common::{Env, unique_key};

const GATE: &str = "DEFENDER_INGEST_KEYRING_TESTS";

/// The real keyring, or `None` (with a note) when the tests are not asked for.
fn keyring() -> Option<KeyringStore> {
    if std::env::var(GATE).ok().as_deref() != Some("1") {
        eprintln!("skipped: set {GATE}=1 (as .ci/run does) to test against the real OS keyring");
        return None;
    }
    let store = KeyringStore::new();
    if let Err(e) = store.load(&unique_key("probe")) {
        panic!("{GATE}=1 but the OS keyring is not reachable: {e}");
    }
    Some(store)
}

/// Whether the raw keyring entry `name` exists (parts are `key#N`).
fn raw_exists(name: &str) -> bool {
    match ::keyring::Entry::new(SERVICE, name)
        .expect("entry")
        .get_password()
    {
        Ok(_) => true,
        Err(::keyring::Error::NoEntry) => false,
        Err(e) => panic!("reading raw entry {name}: {e}"),
    }
}

fn text(n: usize, seed: u8) -> String {
    (0..n)
        .map(|i| (b'A' + ((i + seed as usize) % 26) as u8) as char)
        .collect()
}

#[test]
fn a_12_kb_value_round_trips_and_a_shorter_one_leaves_no_stale_parts() {
    let Some(store) = keyring() else { return };
    let key = unique_key("roundtrip");
    let big = text(12 * 1024, 1);
    store.save(&key, &big).unwrap();
    assert_eq!(store.load(&key).unwrap().as_deref(), Some(big.as_str()));
    assert!(
        raw_exists(&format!("{key}#11")),
        "12 KB is stored in 11 parts"
    );

    let shorter = text(3_000, 7);
    store.save(&key, &shorter).unwrap();
    assert_eq!(store.load(&key).unwrap().as_deref(), Some(shorter.as_str()));
    assert!(raw_exists(&format!("{key}#3")));
    for stale in 4..=11 {
        assert!(!raw_exists(&format!("{key}#{stale}")), "part {stale} left");
    }

    store.save(&key, "tiny").unwrap();
    assert_eq!(store.load(&key).unwrap().as_deref(), Some("tiny"));
    assert!(!raw_exists(&format!("{key}#1")));

    store.save(&key, &big).unwrap();
    store.delete(&key).unwrap();
    assert_eq!(store.load(&key).unwrap(), None);
    assert!(!raw_exists(&key));
    for part in 1..=11 {
        assert!(!raw_exists(&format!("{key}#{part}")), "part {part} left");
    }
    store.delete(&key).unwrap();
}

#[test]
fn a_missing_key_loads_as_none() {
    let Some(store) = keyring() else { return };
    assert_eq!(store.load(&unique_key("missing")).unwrap(), None);
}

#[test]
fn works_from_inside_tokio_runtimes() {
    let Some(store) = keyring() else { return };
    let key = unique_key("runtime");
    let value = text(5_000, 3);
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    multi.block_on(async {
        store.save(&key, &value).unwrap();
        let again = tokio::spawn({
            let key = key.clone();
            async move { KeyringStore::new().load(&key) }
        })
        .await
        .unwrap();
        assert_eq!(again.unwrap().as_deref(), Some(value.as_str()));
    });
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    single.block_on(async {
        assert_eq!(store.load(&key).unwrap().as_deref(), Some(value.as_str()));
        store.delete(&key).unwrap();
    });
    assert_eq!(store.load(&key).unwrap(), None);
}

#[test]
fn logout_removes_the_credentials_and_status_sees_it() {
    let Some(store) = keyring() else { return };
    let env = Env::new();
    let key = unique_key("logout");
    let path = env.seed_profile("default", Some(&key));
    let creds = Credentials {
        refresh_token: Some(text(6_000, 5)),
        client_secret: None,
    };
    creds.save(&store, &key).unwrap();

    let status = |env: &Env| -> serde_json::Value {
        let out = env.cmd().args(["status", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = status(&env);
    assert_eq!(before["authorized"], true, "{before}");
    let printed = before.to_string();
    assert!(!printed.contains(&text(40, 5)) && !printed.contains(&key));

    env.cmd().arg("logout").assert().success();
    assert_eq!(Credentials::load(&store, &key).unwrap(), None);
    assert!(!raw_exists(&format!("{key}#1")));
    assert!(!std::fs::read_to_string(&path).unwrap().contains(&key));
    assert_eq!(status(&env)["authorized"], false);
}

#[cfg(all(unix, not(target_os = "macos")))]
#[test]
fn without_a_session_bus_logout_exits_3_and_names_the_remedies() {
    let env = Env::new();
    let path = env.seed_profile("default", Some(&unique_key("nobus")));
    let before = std::fs::read(&path).unwrap();
    let out = env
        .cmd()
        .arg("logout")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/defender-ingest-bus",
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    for needle in [
        "D-Bus",
        "--flow client-secret",
        "DEFENDER_INGEST_CLIENT_SECRET",
    ] {
        assert!(err.contains(needle), "no `{needle}` in: {err}");
    }
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "state must be untouched"
    );
}
