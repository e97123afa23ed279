//! Shared test harness: a sealed environment for running the binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

/// A temporary HOME and state dir; every command built from it sees only them.
pub struct Env {
    pub home: TempDir,
    pub state_dir: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let home = tempfile::tempdir().expect("temp home");
        let state_dir = home.path().join("state");
        Env { home, state_dir }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// `defender-ingest` with a sealed environment. The D-Bus session address is
    /// kept so keyring tests reach the private session `.ci/run` starts.
    pub fn cmd(&self) -> Command {
        let mut c = Command::from_std(self.std_cmd());
        c.timeout(std::time::Duration::from_secs(120));
        c
    }

    /// The same sealed command as [`Env::cmd`], as a `std::process::Command`
    /// (for spawning several at once).
    pub fn std_cmd(&self) -> std::process::Command {
        let bin = assert_cmd::cargo::cargo_bin("defender-ingest");
        let mut c = std::process::Command::new(bin);
        c.env_clear()
            .env("HOME", self.home())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("XDG_STATE_HOME", self.home().join(".local/state"))
            .env("XDG_DATA_HOME", self.home().join(".local/share"))
            .env("XDG_CONFIG_HOME", self.home().join(".config"))
            .env("DEFENDER_INGEST_STATE_DIR", &self.state_dir)
            .env("NO_COLOR", "1");
        for keep in [
            "DBUS_SESSION_BUS_ADDRESS",
            "XDG_RUNTIME_DIR",
            "DEFENDER_INGEST_KEYRING_TESTS",
        ] {
            if let Some(v) = std::env::var_os(keep) {
                c.env(keep, v);
            }
        }
        c
    }

    /// `pull --since 60d --output FILE`, run to the end.
    pub fn pull_to(&self, file: &Path) -> std::process::Output {
        self.cmd()
            .args(["pull", "--since", "60d", "--output"])
            .arg(file)
            .output()
            .unwrap()
    }

    pub fn profile_file(&self, profile: &str) -> PathBuf {
        self.state_dir.join(format!("{profile}.toml"))
    }

    /// Write [`sample_profile`] as profile `name`, with `credential_key` when given.
    pub fn seed_profile(&self, name: &str, credential_key: Option<&str>) -> PathBuf {
        std::fs::create_dir_all(&self.state_dir).expect("state dir");
        let path = self.profile_file(name);
        std::fs::write(&path, sample_profile(name, credential_key)).expect("seed profile");
        path
    }
}

/// A complete, hand-written profile file as `authorize` would leave it (after
/// one pull of alerts), disabled.
pub fn sample_profile(name: &str, credential_key: Option<&str>) -> String {
    let key = credential_key
        .map(|k| format!("credential_key = \"{k}\"\n"))
        .unwrap_or_default();
    format!(
        r#"schema_version = 1
name = "{name}"
enabled = false
authorized_at = "2026-12-03T10:00:00Z"
{key}
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
"#
    )
}

/// A keyring key no other test (or test run) uses.
pub fn unique_key(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "test-{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub mod connected;
pub mod proxy;
